"""v23：--minutes 按实测速度挑大小、定步数；词的开头切出的段、共用的嵌入表；扫描脚本跳过跑过的。"""

import json
import re
import sys
import time
import types

import budget_sweep
import pytest
import torch
from conftest import VERSIONS, in_process, load, tiny_args, version
from versions import number

V23 = version(23)
pytestmark = pytest.mark.skipif(V23 is None, reason="v23 还没有")
TINY_SIZES = ((16, 1, 2, 1), (32, 2, 2, 1))


def fake_timing(module, calls):
    """假的计时：一步的秒数和宽度成正比（一步 n_embed 毫秒），评估一次 10 步那么久；记下量了哪些宽度。"""
    def measure_time(model, optimizer, step, device, precisions):
        calls.append(module.n_embed)
        return {name: module.n_embed / 1000 for name in precisions}, {name: module.n_embed / 100 for name in precisions}
    return measure_time


@pytest.mark.parametrize("minutes", [0.5, 3.0, 30.0])
def test_the_rule_picks_the_size_with_the_lowest_predicted_loss(minutes, monkeypatch, capsys):
    module = load(V23)
    calls = []
    monkeypatch.setattr(module, "measure_time", fake_timing(module, calls))
    began = time.time()
    monkeypatch.setattr(module, "STARTED", began)
    module.minutes = minutes
    args = type("Args", (), {"given": set()})()
    amps = module.plan_budget(args, "cpu", {"float32": None}, vocab_size=100, unique=10_000_000)
    took = time.time() - began  # 建几个候选模型也要时间：规则按量完时剩下的时间定步数
    assert list(amps) == ["float32"]
    chosen, max_iters, eval_interval = (module.n_embed, module.n_layer), module.max_iters, module.eval_interval

    def expected(size):  # 和规则同样的算法，自己再算一遍：剩下的时间（留 5%）减去 11 次评估，除以一步
        n_embed, n_layer = size[:2]
        steps = int((minutes * 60 * 0.95 - took - 11 * n_embed / 100) / (n_embed / 1000))
        vars(module).update(n_embed=n_embed, n_layer=n_layer, n_head=size[2], n_kv_head=size[3])
        params = sum(p.numel() for name, p in module.BabyGPT(100).named_parameters() if name.startswith("blocks."))
        return (module.predicted_loss(params, steps * 32 * 128, 10_000_000) if steps > 0 else float("inf")), steps, size
    losses = [expected(size) for size in module.SIZES]
    _, steps, size = min(losses)
    assert chosen == size[:2]
    slack = took / (size[0] / 1000) + 1  # 规则还为训练前再量一次留了时间（量这个大小用了多久），最多是整个规则用的时间
    assert steps - slack <= max_iters <= steps + slack
    assert eval_interval == max(1, max_iters // 10) and module.batch_size == 32
    widths = [s[0] for s in module.SIZES]
    assert size[0] in calls and calls == widths[:len(calls)]  # 从小往大量
    if minutes >= 3:  # 时间够时量到大一号就停；半分钟时忙的机器上量完一个就可能停（量下一个会吃掉五分之一的时间）
        assert calls == widths[:module.SIZES.index(size) + 2]
    out = capsys.readouterr().out  # 说的是真正要训练的步数的预测（不是量的时候算的）
    params = int(re.search(r"块里 ([\d,]+) 个参数", out)[1].replace(",", ""))
    assert f"{max_iters} 步" in out and f"预测验证损失 {module.predicted_loss(params, max_iters * 32 * 128, 10_000_000):.2f}" in out
    said = module.predicted_loss(params, max_iters * 32 * 128, 10_000_000)
    fewest, most = max(1, int(steps - slack)), int(steps + slack) + 1  # 机器忙时量得慢，步数在 slack 里，预测跟着变
    assert module.predicted_loss(params, most * 32 * 128, 10_000_000) - 1e-9 <= said
    assert said <= module.predicted_loss(params, fewest * 32 * 128, 10_000_000) + 1e-9


def test_more_minutes_pick_a_bigger_model_and_an_explicit_flag_wins(monkeypatch):
    module = load(V23)
    monkeypatch.setattr(module, "measure_time", fake_timing(module, []))
    args = type("Args", (), {"given": set()})()
    picked = []
    for minutes in (0.5, 30.0):
        monkeypatch.setattr(module, "STARTED", time.time())
        module.minutes = minutes
        module.plan_budget(args, "cpu", {"float32": None}, vocab_size=100, unique=10_000_000)
        picked.append(module.n_embed)
    assert picked[0] < picked[1]
    args.given = {"n_layer"}
    module.n_layer = 1
    module.plan_budget(args, "cpu", {"float32": None}, vocab_size=100, unique=10_000_000)
    assert module.n_layer == 1  # 命令行写明的不动


def test_predicted_loss_falls_with_size_and_tokens_and_repeated_tokens_are_worth_less():
    module = load(V23)
    unique = 1_000_000
    assert module.predicted_loss(2e6, 5e6, unique) < module.predicted_loss(1e6, 5e6, unique)
    assert module.predicted_loss(1e6, 2e6, unique) < module.predicted_loss(1e6, 1e6, unique)
    fresh = module.predicted_loss(1e6, 4e6, 1e9)  # 语料够大：4M 字都没重复
    assert module.predicted_loss(1e6, 4e6, unique) > fresh  # 同样 4M 字，其中 3M 是重复看的


def test_too_few_minutes_is_one_line(monkeypatch, capsys):
    module = load(V23)
    monkeypatch.setattr(module, "measure_time", fake_timing(module, []))
    monkeypatch.setattr(module, "STARTED", time.time())
    module.minutes = 0.001
    with pytest.raises(SystemExit):
        module.plan_budget(type("Args", (), {"given": set()})(), "cpu", {"float32": None}, 100, 1000)
    assert "太短" in capsys.readouterr().err


def test_the_plan_tells_the_tokens_actually_trained(monkeypatch, capsys):
    """命令行写明了 batch_size、block_size：说出的字数、每个参数几个字、训练集几遍都按写明的算，不按规则的 32 × 128。"""
    module = load(V23)
    monkeypatch.setattr(module, "measure_time", fake_timing(module, []))
    monkeypatch.setattr(module, "STARTED", time.time())
    module.minutes, module.batch_size, module.block_size = 3.0, 8, 16
    module.plan_budget(type("Args", (), {"given": {"batch_size", "block_size"}})(), "cpu", {"float32": None}, 100,
                       100_000)
    out = capsys.readouterr().out
    assert module.batch_size == 8 and module.block_size == 16
    params = int(re.search(r"块里 ([\d,]+) 个参数", out)[1].replace(",", ""))
    tokens = module.max_iters * 8 * 16
    assert (f"{module.max_iters} 步看 {tokens / 1e6:.1f}M 字（每个参数 {tokens / params:.1f} 字，"
            f"训练集 {tokens / 100_000:.1f} 遍") in out, out


@pytest.mark.parametrize("ratio, expected", [(1.2, "float32"), (2.0, "bfloat16")])
def test_the_rule_takes_bf16_only_when_training_would(ratio, expected, monkeypatch, capsys):
    """规则和训练前挑精度用同一个函数：bf16 只快 1.2 倍时用 float32（步数按 float32 的速度定），快 2 倍才用 bf16。"""
    module = load(V23)

    def measure_time(model, optimizer, step, device, precisions):
        step = module.n_embed / 1000
        return {"float32": step, "bfloat16": step / ratio}, {"float32": step * 10, "bfloat16": step * 10 / ratio}
    monkeypatch.setattr(module, "measure_time", measure_time)
    monkeypatch.setattr(module, "STARTED", time.time())
    module.minutes = 3.0
    amps = module.plan_budget(type("Args", (), {"given": set()})(), "cpu", {"float32": "f", "bfloat16": "b"}, 100,
                              10_000_000)
    assert list(amps) == [expected] and module.dtype == expected
    assert module.pick_precision({"float32": ratio, "bfloat16": 1.0})[0] == expected
    speed = 32 * 128 / (module.n_embed / 1000 / (ratio if expected == "bfloat16" else 1))
    assert f"{expected} 实测 {speed:,.0f} 字/秒" in capsys.readouterr().out


def slow_machine(module, monkeypatch, seconds_per_width):
    """一台很忙的机器（假的钟，不真的等）：量一个大小要 n_embed × seconds_per_width 秒，一步 n_embed 毫秒，
    评估一次 10 步那么久。返回量过的宽度和钟。"""
    clock, calls = [1000.0], []
    monkeypatch.setattr(module, "time", types.SimpleNamespace(time=lambda: clock[0]))
    monkeypatch.setattr(module, "STARTED", clock[0])

    def measure_time(model, optimizer, step, device, precisions):
        calls.append(module.n_embed)
        clock[0] += module.n_embed * seconds_per_width
        return {name: module.n_embed / 1000 for name in precisions}, {name: module.n_embed / 100 for name in precisions}
    monkeypatch.setattr(module, "measure_time", measure_time)
    return calls, clock


def test_a_short_budget_on_a_busy_machine_still_trains_the_smallest(monkeypatch):
    """--minutes=1，量一个大小要 6 秒（64 宽）、大的更久：量完最小的就不再量（再量就用掉两成以上的分钟），训练最小的。"""
    module = load(V23)
    calls, clock = slow_machine(module, monkeypatch, 6 / 64)
    module.minutes = 1.0
    module.plan_budget(type("Args", (), {"given": set()})(), "cpu", {"float32": None}, 100, 10_000_000)
    assert calls == [64] and module.n_embed == 64 and module.max_iters >= 10
    assert clock[0] - module.STARTED <= 0.2 * 60  # 量速度只用了不到两成的时间
    steps = (0.95 * 60 - (clock[0] - module.STARTED) - 11 * 0.64 - 6) / 0.064  # 剩下的时间都拿来训练
    assert steps - 1 <= module.max_iters <= steps


def test_too_few_minutes_on_a_busy_machine_says_how_many_would_do(monkeypatch, capsys):
    """量最小的就要 50 秒：1 分钟不够，一行说至少要几分钟；给它说的分钟数就能训练，少 0.1 分钟还不行。"""
    args = type("Args", (), {"given": set()})()
    module = load(V23)
    slow_machine(module, monkeypatch, 50 / 64)
    module.minutes = 1.0
    with pytest.raises(SystemExit):
        module.plan_budget(args, "cpu", {"float32": None}, 100, 10_000_000)
    err = capsys.readouterr().err
    need = float(re.search(r"至少要 --minutes=([\d.]+)", err)[1])
    assert "太短" in err and len(err.strip().splitlines()) == 1 and need > 1
    for minutes, works in ((need, True), (round(need - 0.1, 1), False)):
        module = load(V23)
        slow_machine(module, monkeypatch, 50 / 64)
        module.minutes = minutes
        if works:
            module.plan_budget(args, "cpu", {"float32": None}, 100, 10_000_000)
            assert module.n_embed == 64 and module.max_iters >= 10
        else:
            with pytest.raises(SystemExit):
                module.plan_budget(args, "cpu", {"float32": None}, 100, 10_000_000)


@pytest.mark.parametrize("script", [p for p in VERSIONS if number(p) >= 23], ids=lambda p: p.stem)
def test_a_corpus_without_newlines_trains(script, small_corpus, tmp_path):
    """语料里一个换行也没有：没有词的开头可切，照常训练（不是 KeyError 的 traceback）。"""
    corpus = tmp_path / "one_line.txt"
    corpus.write_text(small_corpus.read_text(encoding="utf-8").replace("\n", "")[:3000], encoding="utf-8")
    r = in_process(script, *tiny_args(script, max_iters=2, eval_interval=2, eval_iters=1), f"--data={corpus}",
                   f"--out_dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / f"{script.stem}.pt").exists() and "step     2/2" in r.stdout


def test_a_minutes_run_ends_within_its_budget(small_corpus, tmp_path, monkeypatch):
    """真的跑：给 4.2 秒，从开始到存好检查点、写完词，在 4.2 秒的 0.6 到 1.3 倍以内。
    规则只在开头量一次速度。测试时旁边还跑着别的测试，中途多起一个进程抢核，训练就比量的时候慢：
    界限再乘上“量的速度 ÷ 实际的速度”（最后一行进度的字/秒，不含评估）。单独跑时 10 分钟的命令用了 10.2 分钟
    （docs/reports/minutes_runs）。写明的 batch、block、eval_iters 照用：一步很快，步数多。"""
    module = load(V23)
    monkeypatch.setattr(module, "SIZES", TINY_SIZES)
    args = [f"--data={small_corpus}", f"--out_dir={tmp_path}", "--minutes=0.07", "--device=cpu", "--max_new_tokens=8",
            "--dtype=float32", "--batch_size=8", "--block_size=32", "--eval_iters=1"]
    monkeypatch.setattr(module, "STARTED", time.time())
    r = in_process(V23, *args, module=module)
    took = time.time() - module.STARTED
    assert "--minutes=0.07：选 n_embed=" in r.stdout and (tmp_path / "babygpt_v23_budget.pt").exists(), r.stderr
    assert module.max_iters >= 10 and f"step {module.max_iters:>5}/{module.max_iters}" in r.stdout
    planned = float(re.search(r"实测 ([\d,]+) 字/秒，", r.stdout)[1].replace(",", ""))
    realized = float(re.findall(r"\| ([\d,]+) 字/秒 \|", r.stdout)[-1].replace(",", ""))
    slower = planned / realized
    assert 4.2 * 0.6 * min(1.0, slower) < took < 4.2 * 1.3 * max(1.0, slower), (took, slower)


def test_windows_start_at_a_piece_and_the_embedding_is_shared(small_corpus, tmp_path, monkeypatch):
    module = load(V23)
    seen = []
    real = module.get_batch

    def get_batch(data, offsets):
        if torch.is_grad_enabled():  # 训练的批（评估在 no_grad 里）
            seen.append((data, offsets.clone()))
        return real(data, offsets)
    monkeypatch.setattr(module, "get_batch", get_batch)
    r = in_process(V23, *tiny_args(V23, max_iters=5, eval_iters=1, eval_interval=5), "--piece_start=1",
                   f"--data={small_corpus}", f"--out_dir={tmp_path}", module=module)
    assert r.returncode == 0, r.stderr
    text = small_corpus.read_text(encoding="utf-8")
    train = text[:int(0.9 * len(text))]
    trained = [offsets for data, offsets in seen if len(data) == len(train)]
    starts = [int(i) for offsets in trained for i in offsets]
    assert len(trained) >= 5 and all(train[i - 2:i] == "\n\n" for i in starts)  # 每一段都从一首词的开头（空行后）切起
    model = module.BabyGPT(50)
    assert model.lm_head.weight is model.token_embedding_table.weight
    state = torch.load(tmp_path / "babygpt_v23_budget.pt", weights_only=True)
    assert torch.equal(state["model"]["lm_head.weight"], state["model"]["token_embedding_table.weight"])


def test_sweep_skips_what_is_done_and_appends_each_result(tmp_path, monkeypatch):
    runs = [{"n_embed": 64, "tokens": 4096 * k, "dropout": 0.0, "lr": 2e-3, "tie": 1} for k in (1, 2, 3)]
    results = tmp_path / "runs.jsonl"
    results.write_text(json.dumps({"key": budget_sweep.run_key(runs[1])}) + "\n", encoding="utf-8")
    trained = []

    def train_and_score(run, device):
        trained.append(run["tokens"])
        return {"key": budget_sweep.run_key(run), "val_loss": 5.0, "form": {"1.0": {"exact": 0}, "0.8": {"exact": 0}},
                "train_seconds": 1.0}
    monkeypatch.setattr(budget_sweep, "plan", lambda: runs)
    monkeypatch.setattr(budget_sweep, "train_and_score", train_and_score)
    args = type("Args", (), {"results": str(results), "max_tokens": None, "only": None, "stop_after": None,
                             "jobs": 1, "device": "cpu"})()
    budget_sweep.sweep(args)
    assert trained == [4096, 4096 * 3]
    assert budget_sweep.done_keys(results) == {budget_sweep.run_key(r) for r in runs}
    budget_sweep.sweep(args)  # 再跑一次：都跑过了
    assert trained == [4096, 4096 * 3]
    # 不共用嵌入表的（表里大多数行）今天的 v23 做不出：不跑，免得把共用表的结果记成不共用的
    monkeypatch.setattr(budget_sweep, "plan", lambda: [{**runs[0], "tokens": 4096 * 9, "tie": 0}])
    budget_sweep.sweep(args)
    assert trained == [4096, 4096 * 3]


def test_every_command_the_sweep_emits_parses_with_v23s_own_arguments(tmp_path, monkeypatch):
    """扫描给 v23 的每一条命令，v23 自己的参数解析都认（只解析，不训练）：--tie、--decay_2d 今天的 v23 没有。
    没写 piece_start 的那些次写明 0（表里的 v23 默认不从词的开头切，今天的默认 0.5）。"""
    module = load(V23)
    plan = budget_sweep.plan()
    assert any(budget_sweep.cannot_make(run) is None for run in plan)
    for run in plan:
        command = budget_sweep.command(run, str(tmp_path), "cpu")
        assert command[1] == str(V23)
        monkeypatch.setattr(sys, "argv", [str(x) for x in command[1:]])
        module.parse_args()  # 参数不对时 v23 打印一行中文、SystemExit(2)
        assert (module.n_embed, module.learning_rate, module.dropout) == (run["n_embed"], run["lr"], run["dropout"])
        assert module.piece_start == run.get("piece_start", 0)
        assert module.max_iters * 32 * 128 == run["tokens"]


@pytest.mark.parametrize("faster, precision", [(1.2, "float32"), (2.0, "bfloat16")])
def test_the_sweep_report_picks_the_precision_as_v23_does(faster, precision):
    constants = {"E": 2.8, "A": 25.4, "alpha": 0.25, "B": 843.0, "beta": 0.45, "repeat_decay": 15}
    speeds = {"64": {"float32": {"step": 0.02 * faster, "eval": 0.5}, "bfloat16": {"step": 0.02, "eval": 0.5}}}
    (option,) = budget_sweep.picks(constants, speeds, minutes_list=(5,))[5]
    assert option[3] == precision  # bf16 快 1.2 倍还用 float32：和 v23 的 --dtype=auto 一样要快过 1.5 倍
