"""scripts/ladder.py：两个版本、很小的预算，表格的每一行、图片都真的写出来了；中断时不留半截结果。"""

import json
import os
import signal
import sys
import time

import pytest
from conftest import ROOT, assert_picture, descendants, in_process, started

LADDER = ROOT / "scripts" / "ladder.py"
TINY = ["--steps", "20", "--set", "batch_size=4", "--set", "block_size=16", "--set", "n_embed=16",
        "--set", "eval_interval=10", "--set", "eval_iters=2", "--set", "max_new_tokens=12", "--set", "n_layer=2"]


@pytest.fixture
def ladder_here():
    """在测试进程里跑 ladder.py 的 main()（版本照样各起一个进程）；它装的 Ctrl-C 处理，跑完换回原来的。"""
    previous = signal.getsignal(signal.SIGINT)
    yield lambda *args: in_process(LADDER, *args)
    signal.signal(signal.SIGINT, previous)


def test_two_versions_make_a_table_and_a_picture(small_corpus, tmp_path, ladder_here):
    r = ladder_here("--only", "v1,v3", *TINY, "--set", f"data={small_corpus}", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[1/2] babygpt_v1.py" in r.stdout and "v3 step 20/20" in r.stdout  # 边跑边报进度

    report = json.loads((tmp_path / "ladder.json").read_text(encoding="utf-8"))
    md = (tmp_path / "ladder.md").read_text(encoding="utf-8")
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in md.splitlines() if line.startswith("| babygpt_")]
    assert [row[0] for row in rows] == ["babygpt_v1.py", "babygpt_v3_self_attention.py"]
    for row, result in zip(rows, report["results"], strict=True):
        assert [e["step"] for e in result["evals"]] == [0, 10, 20]
        assert row[1] == f"{result['parameters']:,}" and result["parameters"] > 0
        assert row[3] == "20"
        assert float(row[5].strip("*")) == round(result["final_val_loss"], 3) < result["evals"][0]["val_loss"]
        assert row[7].endswith("%") and row[8].startswith("春江") and result["samples"]["春江"].startswith("春江")
    assert report["results"][0]["parameters"] < report["results"][1]["parameters"]  # v3 多了位置表和注意力
    assert "python scripts/ladder.py --only v1,v3" in md and f"{os.cpu_count()} 核" in md  # 命令和机器都写明
    assert "没有 GPU" in md

    assert assert_picture(tmp_path / "ladder.png", min_width=1000).shape[0] >= 500
    assert not list(tmp_path.glob(".*.tmp"))


def test_interrupted_run_leaves_old_results_alone(small_corpus, tmp_path):
    """Ctrl-C 给 ladder.py：它转给正在训练的版本，把版本的输出读完，几秒内退出，什么也不写。
    版本每一步都评估、打印（eval_interval=1），管道很快就满：以前 ladder 不再读，版本就卡在 print 上，永远不退出。"""
    (tmp_path / "ladder.md").write_text("上一次的结果", encoding="utf-8")
    command = [sys.executable, LADDER, "--only", "v1,v2", *TINY, "--steps", "100000", "--set", "eval_interval=1",
               "--set", f"data={small_corpus}", "--out", tmp_path]
    with started(command) as proc:
        for line in proc.stdout:
            if "v1 step 10/" in line:
                break
        time.sleep(2)  # 这几秒不读 ladder 的输出：它卡在 print 上，版本的管道跟着满
        proc.send_signal(signal.SIGINT)
        pressed = time.time()
        _, err = proc.communicate(timeout=60)
        assert time.time() - pressed < 20
        assert not descendants(proc.pid)  # 版本脚本也退出了
    assert proc.returncode != 0 and "中断" in err and "Traceback" not in err
    assert (tmp_path / "ladder.md").read_text(encoding="utf-8") == "上一次的结果"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ladder.md"]


def test_big_versions_keep_the_cpu_command_when_steps_or_settings_are_given():
    """--steps / --set 不会把 v11 在 CPU 上变回给 GPU 的配置（以前会，一跑就是几个小时）。"""
    from ladder import version_args
    from versions import versions

    v1, v11 = versions()["v1"], versions()["v11"]
    shared = ["--max_iters=500", "--n_layer=2"]
    on_cpu = version_args(v11, shared, on_cpu=True)
    assert on_cpu[:3] == ["--batch_size=16", "--block_size=64", "--n_embed=64"] and on_cpu[-2:] == shared
    assert version_args(v11, shared, on_cpu=False) == shared  # GPU 上用默认的完整配置
    assert version_args(v1, shared, on_cpu=True) == ["--max_iters=500"]  # v1 没有 n_layer，也不需要 CPU 命令


def test_same_configuration_mode_with_the_counting_floor(small_corpus, tmp_path, ladder_here):
    r = ladder_here("--same", "--only", "v1,v3", *TINY, "--set", f"data={small_corpus}", "--out", tmp_path, "--form", "1")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "ladder_same.json").read_text(encoding="utf-8"))
    assert [x["script"] for x in report["results"]] == ["babygpt_v1.py", "babygpt_v3_self_attention.py"]
    for result in report["results"]:  # CPU 命令的 learning_rate、eval_iters 等一样；--set 的更小尺寸优先
        assert "--learning_rate=6e-3" in result["args"] and "--block_size=16" in result["args"]
        assert [e["step"] for e in result["evals"]] == [0, 10, 20]
    assert "--n_layer=2" not in report["results"][0]["args"]  # v1 没有 n_layer
    assert 4.9 < report["counting"]["val_loss"] < 5.3  # v0 在整个 ci.txt 上数数
    md = (tmp_path / "ladder.md").read_text(encoding="utf-8")
    assert "## 同一配置：只差想法" in md and "babygpt_v0_counting.py（数数，不训练）" in md
    assert f"**{report['results'][1]['final_val_loss']:.3f}**" in md
    assert_picture(tmp_path / "ladder_same.png")
    # 第二把尺子：每个版本（和 v0）都量了格律，表格里有这两列，另画一张 form.png
    for result in [*report["results"], report["counting"]]:
        form = result["form"]
        assert set(form["tunes"]) == {"浣溪沙", "鹧鸪天", "菩萨蛮", "西江月", "减字木兰花", "蝶恋花", "清平乐", "点绛唇"}
        assert all(len(tune["shapes"]) == 1 for tune in form["tunes"].values())  # --form 1：每个词牌一首
        assert 0 <= form["overall"]["exact"] <= form["overall"]["clause"] <= 1 and form["ceiling"]["exact"] > 0.9
        cool = result["form_t08"]  # 温度 0.8 也量了：每格“1.0 / 0.8”
        assert f"| {form['overall']['exact']:.0%} / {cool['overall']['exact']:.0%} | " \
               f"{form['overall']['clause']:.0%} / {cool['overall']['clause']:.0%} |" in md
    assert "| 合律（温度 1.0 / 0.8） | 句子分（1.0 / 0.8） |" in md and "天花板是验证集里的真词" in md
    assert_picture(tmp_path / "form.png")
    import matplotlib.image  # 柱状图：每个版本一根柱子，图上有不止一种颜色（不是一张白图）
    bars = matplotlib.image.imread(tmp_path / "ladder_bars.png")
    assert bars.shape[0] > 300 and len({tuple(p) for p in bars[::7, ::7, :3].reshape(-1, 3).round(2).tolist()}) > 5
    assert "![每个版本 3000 步的验证损失和比上一版的变化](ladder_bars.png)" in md


def test_merge_replaces_only_the_versions_run_again(tmp_path):
    """--merge：这次跑的版本换掉上一次的同名版本，其余原样保留、按版本号排好，每个结果记着来自哪一次。"""
    from ladder import merged, provenance

    run_info = {"command": "python scripts/ladder.py --same", "machine": "甲机器", "date": "2026-11-28",
                "total_seconds": 100.0}
    old = {**run_info, "results": [{"version": v, "final_val_loss": loss} for v, loss in
                                   (("v1", 5.2), ("v2", 5.3), ("v10", 4.7))]}
    (tmp_path / "ladder_same.json").write_text(json.dumps(old), encoding="utf-8")
    new = {**run_info, "command": "python scripts/ladder.py --same --merge --only v2,v19", "date": "2026-11-29",
           "total_seconds": 30.0, "results": [{"version": "v19", "final_val_loss": 4.6},
                                               {"version": "v2", "final_val_loss": 5.25}]}
    report = merged(new, tmp_path / "ladder_same.json")
    assert [(r["version"], r["final_val_loss"], r["run"]) for r in report["results"]] == \
        [("v1", 5.2, 0), ("v2", 5.25, 1), ("v10", 4.7, 0), ("v19", 4.6, 1)]
    assert report["total_seconds"] == 130.0 and report["runs_used"] == [0, 1]
    lines = provenance(report)
    assert lines[0].startswith("- 第 1 次（表里的 v1、v10）：`python scripts/ladder.py --same`；甲机器；2026-11-28")
    assert lines[1].startswith("- 第 2 次（表里的 v2、v19）：`python scripts/ladder.py --same --merge --only v2,v19`")
    assert "只在同一次的版本之间比" in lines[2]  # 两次的速度放在一张表里，要说清楚不能跨次比

    # 再重跑 v19：第 2 次的命令里有 v19，表里的 v19 却来自第 3 次，括号里要写明，不能只写“v2”让命令和它对不上
    (tmp_path / "ladder_same.json").write_text(json.dumps(report), encoding="utf-8")
    again = {**run_info, "command": "python scripts/ladder.py --same --merge --only v19", "date": "2026-11-30",
             "total_seconds": 10.0, "results": [{"version": "v19", "final_val_loss": 4.5}]}
    lines = provenance(merged(again, tmp_path / "ladder_same.json"))
    assert lines[1].startswith("- 第 2 次（表里的 v2；它跑的 v19 用第 3 次的）：`python scripts/ladder.py --same --merge --only v2,v19`")
    assert lines[2].startswith("- 第 3 次（表里的 v19）：")


def test_a_run_of_neighbouring_versions_is_written_as_a_span():
    from ladder import grouped
    order = [f"v{i}" for i in range(1, 23)]
    assert grouped([f"v{i}" for i in range(14, 22)], order) == "v14–v21"
    assert grouped(["v1", "v2", "v5"], order) == "v1、v2、v5"


def test_same_configuration_takes_new_hyperparameters_from_each_versions_own_cpu_command():
    import ladder
    from versions import cpu_command, versions
    found = versions()
    same = [*cpu_command(found["v11"]), "--max_iters=3000"]
    assert ladder.same_args(found["v19"], same) == ladder.applicable(same, found["v19"])  # v19 没有新参数
    assert ladder.same_args(found["v3"], same) == ladder.applicable(same, found["v3"])  # 没有 CPU 命令的小版本
    v20 = ladder.same_args(found["v20"], same)
    assert v20 == ["--min_lr=6e-4", *same] and "--learning_rate=6e-3" in v20  # 降到 CPU 命令学习率的十分之一
