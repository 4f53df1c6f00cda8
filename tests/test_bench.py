"""scripts/bench.py 第 2 部分：每个版本用自己的优化器（v22 起 Muon），表里有“优化器占一步”一列。"""

import bench
import pytest
from conftest import load, version

V14, V22 = version(14), version(22)


@pytest.mark.skipif(V22 is None, reason="v22 还没有")
def test_each_version_trains_with_its_own_optimizer_and_its_share_is_reported(monkeypatch):
    module = load(V22)
    muon_steps = []
    original = module.Muon.step
    monkeypatch.setattr(module.Muon, "step", lambda self: muon_steps.append(1) or original(self))
    speed, _, share = bench.tokens_per_second(module, bench.SIZES["CPU 命令"][0], "cpu", 0.05, 1, own_optimizer=True)
    assert speed > 0 and 0 < share < 1 and len(muon_steps) >= 2  # 预热一步，再计时至少一步

    text = bench.compare(["v14", "v22"], {"v14": V14, "v22": V22}, "cpu", 0.05, 1, 1, ["CPU 命令"])
    header = next(line for line in text if line.startswith("| 版本 |"))
    column = header.split(" | ").index("优化器占一步")
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in text if line.startswith("| v")}
    assert set(rows) == {"v14", "v22"} and all(row[column].endswith("%") for row in rows.values())
    peak = header.split(" | ").index("峰值占比")  # 峰值是开头实测的大矩阵乘法速度：每行都有占比
    assert any("矩阵乘法实测" in line for line in text) and all("TFLOP/秒" in row[peak] for row in rows.values())


@pytest.mark.skipif(version(23) is None, reason="v23 还没有")
def test_flop_count_keeps_the_output_layer_when_it_shares_the_embedding_table():
    """v23 的输出层和嵌入表共用一张表：参数少了一张表，可每个字的运算量一点没少，和 v22 一样。"""
    size = bench.SIZES["CPU 命令"][0]
    flop = {}
    for v in (22, 23):
        module = load(version(v))
        vars(module).update(size)
        flop[v] = bench.flop_per_token(module.BabyGPT(bench.VOCAB_SIZE), size)
    assert flop[22] == flop[23]
