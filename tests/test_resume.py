"""续训：检查点已经训够了就不再训练，只写词；检查点记着训练用的精度，续训接着用它；还没走过一步时没有梯度范数。"""

import signal

import pytest
import torch
from conftest import VERSIONS, in_process, load, samples, steps, stopping_at, tiny_args
from versions import hyperparameters, number

FAST = [p for p in VERSIONS if number(p) >= 14]


@pytest.fixture
def at_most_60_seconds():
    """没修好时，续训会一直训下去：60 秒后让测试失败，而不是卡住整套测试。"""
    def too_long(*_):
        raise TimeoutError("续训停不下来")
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.stem)
def test_resume_past_max_iters_writes_without_training(path, small_corpus, tmp_path, at_most_60_seconds):
    where = [f"--data={small_corpus}", f"--out_dir={tmp_path}"]
    in_process(path, *tiny_args(path, max_iters=6, eval_interval=3), *where)
    trained = torch.load(tmp_path / f"{path.stem}.pt", weights_only=True)
    out = in_process(path, *tiny_args(path, max_iters=4, eval_interval=3), *where, "--resume").stdout
    assert "检查点已经训练了 6 步，不少于 --max_iters=4：不再训练，直接写词（想接着训练，把 --max_iters 调大）" in out
    assert [s for s, _, _ in steps(out)] == [6] and "还需 -" not in out  # 只评估一次，不训练
    assert set(samples(out)) == {"春江", "往事"}
    again = torch.load(tmp_path / f"{path.stem}.pt", weights_only=True)
    assert again["step"] == 6 and all(torch.equal(again["model"][k], v) for k, v in trained["model"].items())


def first_run_in_bf16(module, monkeypatch):
    """让 --dtype=auto 量出 bf16 快 2 倍（假的计时），这样第一次训练用 bf16。"""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(module, "time_one_step", lambda model, optimizer, x, amp, device: (
        x.shape[0] * (0.001 if isinstance(amp, torch.autocast) else 0.002), 0.0))


@pytest.mark.parametrize("path", [FAST[0], FAST[-1]], ids=lambda p: p.stem)
def test_resume_uses_the_precision_the_checkpoint_trained_in(path, small_corpus, tmp_path, monkeypatch):
    args = [*tiny_args(path, max_iters=8, eval_interval=4, dtype="auto"), f"--data={small_corpus}"]
    straight = load(path)
    first_run_in_bf16(straight, monkeypatch)
    assert "加速：精度 bfloat16" in in_process(path, *args, f"--out_dir={tmp_path / 'straight'}", module=straight).stdout
    assert torch.load(tmp_path / "straight" / f"{path.stem}.pt", weights_only=True)["hyperparameters"]["dtype"] == \
        "bfloat16"

    first = load(path)
    first_run_in_bf16(first, monkeypatch)
    monkeypatch.setattr(first, "Progress", stopping_at(first, 4))  # 在第 4 步停下
    in_process(path, *args, f"--out_dir={tmp_path / 'split'}", module=first)
    resumed = load(path)  # 续训：这次量出来 float32 更快，但检查点说 bf16，就用 bf16，不再量
    monkeypatch.setattr(resumed, "time_one_step", lambda model, optimizer, x, amp, device: (
        x.shape[0] * (0.003 if isinstance(amp, torch.autocast) else 0.001), 0.0))
    out = in_process(path, *args, f"--out_dir={tmp_path / 'split'}", "--resume", module=resumed).stdout
    line = out.split("加速：")[1].splitlines()[0]
    assert line.startswith("精度 bfloat16（实测 bfloat16 ") and "float32" not in line and "续训，用检查点训练时的精度" in line
    a, b = (torch.load(tmp_path / d / f"{path.stem}.pt", weights_only=True) for d in ("split", "straight"))
    assert a["step"] == b["step"] == 8
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])  # 和一口气用 bf16 训完一模一样

    # 命令行写明了 --dtype：就用写明的
    out = in_process(path, *args, "--max_iters=12", "--dtype=float32", f"--out_dir={tmp_path / 'split'}", "--resume").stdout
    assert "加速：精度 float32（实测 float32 " in out


@pytest.mark.parametrize("path", [p for p in VERSIONS if "grad_clip" in hyperparameters(p)], ids=lambda p: p.stem)
def test_gradient_norm_is_a_dash_until_a_step_has_run(path, small_corpus, tmp_path):
    args = [f"--data={small_corpus}", f"--out_dir={tmp_path}"]
    out = in_process(path, *tiny_args(path, max_iters=4, eval_interval=2), *args).stdout
    out += in_process(path, *tiny_args(path, max_iters=6, eval_interval=2), *args, "--resume").stdout
    norms = [line.rsplit(" ", 1)[1] for line in out.splitlines() if line.startswith("step ")]
    assert norms[0] == "—" and norms[3] == "—"  # 第 0 步；续训后的第 4 步（这次还没走过一步）
    assert all(float(n) > 0 for i, n in enumerate(norms) if i not in (0, 3)) and len(norms) == 5
