"""v15：torchrun 起两个进程（CPU 上用 gloo），和一个进程的同一条命令损失一样；每个进程最后的参数一样；
只有 0 号进程存检查点、写词。"""

import json
import os
import sys

import pytest
import torch
from conftest import in_process, one_line_error, run_command, samples, steps, tiny_args, version

V15, V23 = version(15), version(23)
pytestmark = pytest.mark.skipif(V15 is None, reason="v15 还没有")
HELPER = """
import os, sys, torch
sys.path.insert(0, {scripts!r})
from versions import load
v15 = load({script!r})
sys.argv = [{script!r}, *{args!r}]
trained = v15.train
def train(*args, **kwargs):  # main() 照常跑；训练完的参数每个进程另存一份，好比较
    model, tokenizer = trained(*args, **kwargs)
    torch.save(model.state_dict(), os.path.join({ranks!r}, f"rank{{os.environ['RANK']}}.pt"))
    return model, tokenizer
v15.train = train
v15.main()
"""


PLAN_HELPER = """
import json, os, sys
sys.path.insert(0, {scripts!r})
from versions import load
v23 = load({script!r})
sys.argv = [{script!r}, *{args!r}]
v23.SIZES = ((16, 1, 2, 1), (32, 2, 2, 1))
rank, calls = int(os.environ["RANK"]), []
def measure_time(model, optimizer, step, device, precisions):  # 假的计时：1 号进程量得慢一倍，各挑各的话步数就对不上
    calls.append(v23.n_embed)
    step = v23.n_embed / 80 * (1 + rank)
    return {{name: step for name in precisions}}, {{name: step / 10 for name in precisions}}
v23.measure_time = measure_time
v23.main()
chosen = {{name: getattr(v23, name) for name in ("n_embed", "n_layer", "max_iters", "eval_interval", "dtype")}}
with open(os.path.join({ranks!r}, f"rank{{rank}}.json"), "w") as f:
    json.dump({{**chosen, "calls": calls}}, f)
"""


def torchrun(*args, processes=2, timeout=180):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}  # 两个进程各用一个线程，不抢核
    return run_command([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                        *args], env=env, timeout=timeout)


def tiny(**overrides):
    return tiny_args(V15, batch_size=8, max_iters=30, dropout=0.0, **overrides)


def test_two_processes_with_gradient_accumulation_give_the_losses_of_one(small_corpus, tmp_path):
    """torchrun 两个进程跑 v15 的 main()，每个进程一份 4 段，--micro_batch_size=2 切成两个小批（只在第二个同步梯度）：
    每一次评估的损失都和一个进程不切小批时一样；两个进程最后的参数一模一样；只有 0 号进程打印、存检查点、写词。"""
    (tmp_path / "ranks").mkdir()
    args = [*tiny(micro_batch_size=2), f"--data={small_corpus}", f"--out_dir={tmp_path / 'two'}"]
    helper = tmp_path / "helper.py"
    helper.write_text(HELPER.format(scripts=str(V15.parent / "scripts"), script=str(V15), args=args,
                                    ranks=str(tmp_path / "ranks")), encoding="utf-8")
    two = torchrun(helper)
    assert two.returncode == 0, two.stderr[-2000:]
    assert "Traceback" not in two.stderr
    assert [s for s, _, _ in steps(two.stdout)] == [0, 10, 20, 30]  # 只有 0 号进程打印：每一步只有一行
    assert two.stdout.count("--- 春江 ---") == 1 and set(samples(two.stdout)) == {"春江", "往事"}
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["babygpt_v15_ddp.pt"]  # 只有一个检查点
    assert torch.load(tmp_path / "two" / "babygpt_v15_ddp.pt", weights_only=True)["step"] == 30
    ranks = [torch.load(tmp_path / "ranks" / f"rank{i}.pt", weights_only=True) for i in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and len(ranks[0]) > 10
    assert all(torch.equal(ranks[0][name], ranks[1][name]) for name in ranks[0])

    one = in_process(V15, *tiny(), f"--data={small_corpus}", f"--out_dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr
    for (s1, train1, val1), (s2, train2, val2) in zip(steps(one.stdout), steps(two.stdout), strict=True):
        assert s1 == s2 and abs(train1 - train2) <= 1e-4 and abs(val1 - val2) <= 1e-4


def test_batch_must_split_evenly(small_corpus, tmp_path, monkeypatch):
    """像 torchrun 起了两个进程（环境变量里有 RANK；进程组是假的，不用真的等另一个进程）：batch 5 分不匀，一行报错。"""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda *a, **k: None)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 0)
    r = in_process(V15, *tiny_args(V15, batch_size=5), f"--data={small_corpus}", f"--out_dir={tmp_path}")
    one_line_error(r, 1, "--batch_size=5 要能被进程数 2 整除")


@pytest.mark.skipif(V23 is None, reason="v23 还没有")
def test_minutes_under_torchrun_every_process_trains_the_plan_of_process_0(small_corpus, tmp_path):
    """v23 --minutes 用 torchrun 两个进程：只有 0 号进程量速度、挑大小和步数，1 号进程（量得慢一倍）照用它挑的。
    各挑各的话，两个进程的步数不一样，训练会卡住（这里 60 秒就算失败）。"""
    (tmp_path / "ranks").mkdir()
    args = ["--minutes=0.3", "--device=cpu", "--dtype=float32", "--batch_size=8", "--block_size=16", "--eval_iters=1",
            "--max_new_tokens=8", f"--data={small_corpus}", f"--out_dir={tmp_path / 'out'}"]
    helper = tmp_path / "helper.py"
    helper.write_text(PLAN_HELPER.format(scripts=str(V23.parent / "scripts"), script=str(V23), args=args,
                                         ranks=str(tmp_path / "ranks")), encoding="utf-8")
    r = torchrun(helper, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    zero, one = (json.loads((tmp_path / "ranks" / f"rank{i}.json").read_text(encoding="utf-8")) for i in (0, 1))
    assert zero.pop("calls")[:-1] and one.pop("calls") == [one["n_embed"]]  # 1 号进程只量了训练前的那一次
    assert zero == one and zero["max_iters"] >= 10
    assert f"step {zero['max_iters']:>5}/{zero['max_iters']}" in r.stdout
