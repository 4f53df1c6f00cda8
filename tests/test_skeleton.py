"""babygpt_v1.py 的骨架：命令行、报错、检查点、续训、Ctrl-C、设备选择。

骨架在每个版本里一字不差（见 test_versions.py），所以这里只测 v1。
"""

import importlib.util
import math
import signal
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, run, samples, steps, tiny_args

V1 = ROOT / "babygpt_v1.py"


def test_trains_and_writes_from_prompts(small_corpus, tmp_path):
    r = run(V1, *tiny_args(V1, max_iters=60, eval_interval=20), f"--data={small_corpus}", f"--out_dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    log = steps(r.stdout)
    assert [s for s, _, _ in log] == [0, 20, 40, 60]
    vocab_size = len(set(small_corpus.read_text(encoding="utf-8")))
    assert abs(log[0][1] - math.log(vocab_size)) < 0.5  # 随机初始化：损失约为 ln(词表大小)
    assert log[-1][1] < log[0][1] - 1.0 and log[-1][2] < log[0][2] - 0.5
    written = samples(r.stdout)
    assert set(written) == {"春江", "往事"}
    for prompt, text in written.items():
        assert text.startswith(prompt) and len(text) > len(prompt)
    assert "设备：cpu" in r.stdout


def test_same_command_same_losses(small_corpus, tmp_path):
    args = [*tiny_args(V1), f"--data={small_corpus}"]
    first = run(V1, *args, f"--out_dir={tmp_path / 'a'}")
    second = run(V1, *args, f"--out_dir={tmp_path / 'b'}")
    assert steps(first.stdout) == steps(second.stdout) and len(steps(first.stdout)) == 4
    third = run(V1, *args, "--seed=7", f"--out_dir={tmp_path / 'c'}")
    assert steps(third.stdout) != steps(first.stdout)


def test_checkpoint_and_resume(small_corpus, tmp_path):
    data = f"--data={small_corpus}"
    straight = run(V1, *tiny_args(V1, max_iters=40), data, f"--out_dir={tmp_path / 'straight'}")
    first = run(V1, *tiny_args(V1, max_iters=20), data, f"--out_dir={tmp_path / 'split'}")
    state = torch.load(tmp_path / "split" / "babygpt_v1.pt")
    assert state["step"] == 20
    assert state["vocab"] == sorted(set(small_corpus.read_text(encoding="utf-8")))
    assert state["hyperparameters"]["max_iters"] == 20 and state["hyperparameters"]["n_embed"] == 16
    assert "token_embedding_table.weight" in state["model"] and state["optimizer"]["state"]
    assert not list((tmp_path / "split").glob("*.tmp"))

    resumed = run(V1, *tiny_args(V1, max_iters=40), data, f"--out_dir={tmp_path / 'split'}", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "从检查点" in resumed.stdout and "第 20 步" in resumed.stdout
    # 续训的第一行就是第 20 步，损失和上次结束时一模一样（同样的权重，同样的评估批次）
    assert steps(resumed.stdout)[0] == steps(first.stdout)[-1]
    # 权重、优化器状态、随机数都接上了：和一口气训 40 步的结果相同
    assert steps(resumed.stdout)[-1] == steps(straight.stdout)[-1]
    assert torch.load(tmp_path / "split" / "babygpt_v1.pt")["step"] == 40


def test_ctrl_c_saves_checkpoint_and_still_writes(small_corpus, tmp_path):
    args = tiny_args(V1, max_iters=100000, eval_interval=50)
    proc = subprocess.Popen([sys.executable, str(V1), *args, f"--data={small_corpus}", f"--out_dir={tmp_path}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
    for line in proc.stdout:  # 等训练真的开始了再按 Ctrl-C
        if line.startswith("step") and not line.startswith("step     0/"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "收到 Ctrl-C" in out
    saved = torch.load(tmp_path / "babygpt_v1.pt")["step"]
    assert 50 <= saved < 100000
    assert f"第 {saved} 步" in out
    assert set(samples(out)) == {"春江", "往事"}


def test_help_lists_every_option_with_default():
    r = run(V1, "--help")
    assert r.returncode == 0
    for name, default in [("batch_size", "32"), ("block_size", "64"), ("learning_rate", "0.003"),
                          ("prompts", "春江,往事"), ("seed", "1337")]:
        assert f"--{name}" in r.stdout
    for option in ("--device", "--data", "--out_dir", "--resume"):
        assert option in r.stdout


def one_line_error(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("错误："), r.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("args, words", [
    (["--no_such_thing=1"], ["--no_such_thing"]),
    (["--batch_size=abc"], ["abc"]),
    (["--learning_rate", "fast"], ["fast"]),
    (["--block_size=-3"], ["block_size"]),
    (["--eval_interval=0"], ["eval_interval"]),
    (["--device=tpu"], ["tpu"]),
])
def test_bad_arguments_exit_2_in_one_line(args, words):
    one_line_error(run(V1, *args), 2, *words)


def test_bad_corpus_files(tmp_path):
    missing = tmp_path / "missing.txt"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("春江花月夜".encode("gbk") * 100)
    short = tmp_path / "short.txt"
    short.write_text("春江花月夜，往事知多少。\n" * 3, encoding="utf-8")
    for path, word in [(missing, "找不到"), (empty, "空的"), (gbk, "UTF-8"), (short, "太短")]:
        one_line_error(run(V1, f"--data={path}", f"--out_dir={tmp_path}"), 1, word)
    assert gbk.read_bytes() == "春江花月夜".encode("gbk") * 100  # 坏文件原样不动


def test_prompt_not_in_vocabulary_names_the_characters(small_corpus, tmp_path):
    r = run(V1, f"--data={small_corpus}", f"--out_dir={tmp_path}", "--prompts=春江,龘靐")
    one_line_error(r, 1, "龘", "靐")
    assert not (tmp_path / "babygpt_v1.pt").exists()  # 在训练之前就报错
    one_line_error(run(V1, f"--data={small_corpus}", f"--out_dir={tmp_path}", "--prompts=春江,"), 1, "空的开头")


def test_resume_errors(small_corpus, tmp_path):
    data = f"--data={small_corpus}"
    one_line_error(run(V1, *tiny_args(V1), data, f"--out_dir={tmp_path}", "--resume"), 1, "没有检查点")
    assert run(V1, *tiny_args(V1), data, f"--out_dir={tmp_path}").returncode == 0
    other = tmp_path / "other.txt"
    other.write_text(small_corpus.read_text(encoding="utf-8") + "龘", encoding="utf-8")
    one_line_error(run(V1, *tiny_args(V1), f"--data={other}", f"--out_dir={tmp_path}", "--resume"), 1, "词表")
    one_line_error(run(V1, *tiny_args(V1, n_embed=8), data, f"--out_dir={tmp_path}", "--resume"), 1, "形状")
    (tmp_path / "babygpt_v1.pt").write_bytes(b"not a checkpoint")
    one_line_error(run(V1, *tiny_args(V1), data, f"--out_dir={tmp_path}", "--resume"), 1, "读不出来")


@pytest.fixture
def v1_module():
    spec = importlib.util.spec_from_file_location("babygpt_v1_under_test", V1)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # 只定义函数和类；训练在 main() 里，不会开始
    return module


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_device_is_chosen_cuda_then_mps_then_cpu(v1_module, monkeypatch, capsys, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert v1_module.pick_device(None) == expected
    assert v1_module.pick_device("cpu") == "cpu"
    assert f"设备：{expected}" in capsys.readouterr().out


def test_asking_for_an_absent_device_is_a_clear_error(v1_module, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        v1_module.pick_device("cuda")
    assert exit_info.value.code == 1
    if not torch.cuda.is_available():
        one_line_error(run(V1, "--device=cuda"), 1, "cuda")
