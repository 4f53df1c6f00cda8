"""babygpt_v1.py 的骨架：命令行、报错、检查点、续训、Ctrl-C、设备选择、--sample、--interactive。

骨架在每个版本里一字不差（见 test_versions.py），所以这里只测 v1。多数检查在测试进程里跑 main()（in_process，
和命令行上看到的退出码、输出一样）；Ctrl-C 要发信号给一个真的进程，那几个测试才起子进程。
"""

import math
import re
import signal
import sys
import time

import pytest
import torch
from conftest import (
    ROOT,
    VERSIONS,
    in_process,
    load,
    one_line_error,
    samples,
    started,
    steps,
    tiny_args,
    trained_checkpoint,
)
from versions import hyperparameters, parse_writing_speeds

V1 = ROOT / "babygpt_v1.py"


def test_trains_and_writes_from_prompts(small_corpus, tmp_path):
    r = in_process(V1, *tiny_args(V1, max_iters=60, eval_interval=20), f"--data={small_corpus}", f"--out_dir={tmp_path}")
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
    first = in_process(V1, *args, f"--out_dir={tmp_path / 'a'}")
    second = in_process(V1, *args, f"--out_dir={tmp_path / 'b'}")
    assert steps(first.stdout) == steps(second.stdout) and len(steps(first.stdout)) == 4
    third = in_process(V1, *args, "--seed=7", f"--out_dir={tmp_path / 'c'}")
    assert steps(third.stdout) != steps(first.stdout)


def test_checkpoint_and_resume(small_corpus, tmp_path):
    data = f"--data={small_corpus}"
    straight = in_process(V1, *tiny_args(V1, max_iters=40), data, f"--out_dir={tmp_path / 'straight'}")
    first = in_process(V1, *tiny_args(V1, max_iters=20), data, f"--out_dir={tmp_path / 'split'}")
    state = torch.load(tmp_path / "split" / "babygpt_v1.pt", weights_only=True)
    assert state["step"] == 20
    assert state["vocab"] == sorted(set(small_corpus.read_text(encoding="utf-8")))
    assert state["hyperparameters"]["max_iters"] == 20 and state["hyperparameters"]["n_embed"] == 16
    assert "token_embedding_table.weight" in state["model"] and state["optimizer"]["state"]
    assert not list((tmp_path / "split").glob("*.tmp"))

    resumed = in_process(V1, *tiny_args(V1, max_iters=40), data, f"--out_dir={tmp_path / 'split'}", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "从检查点" in resumed.stdout and "第 20 步" in resumed.stdout
    # 续训的第一行就是第 20 步，损失和上次结束时一模一样（同样的权重，同样的评估批次）
    assert steps(resumed.stdout)[0] == steps(first.stdout)[-1]
    # 权重、优化器状态、随机数都接上了：和一口气训 40 步的结果相同
    assert steps(resumed.stdout)[-1] == steps(straight.stdout)[-1]
    assert torch.load(tmp_path / "split" / "babygpt_v1.pt", weights_only=True)["step"] == 40


def start(args, tmp_path):
    """启动 v1（with 语句里用）：测试结束时连同子进程一起杀掉。"""
    return started([sys.executable, V1, *args, f"--out_dir={tmp_path}"])


def read_until(proc, prefix):
    """读输出直到某一行以 prefix 开头；返回读过的行。"""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"没等到 {prefix!r}：{seen}")


def test_ctrl_c_during_training_saves_checkpoint_and_still_writes(small_corpus, tmp_path):
    with start([*tiny_args(V1, max_iters=100000, eval_interval=50), f"--data={small_corpus}"], tmp_path) as proc:
        read_until(proc, "step    50/")  # 等训练真的开始了再按 Ctrl-C
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "收到 Ctrl-C" in out
    saved = torch.load(tmp_path / "babygpt_v1.pt", weights_only=True)["step"]
    assert 50 <= saved < 100000
    assert f"第 {saved} 步" in out
    assert set(samples(out)) == {"春江", "往事"}


def test_too_big_is_said_at_once_and_ctrl_c_stops_the_first_evaluation(small_corpus, tmp_path):
    """评估慢得出奇（eval_iters 极大）：开头几行就说要多久、给出缩小命令；第一次评估中按 Ctrl-C 立刻停下。"""
    began = time.time()
    # 30 次评估、每次几百万批：估计远超一小时（只靠一次评估的长度，快机器上可能不到一小时）
    with start([*tiny_args(V1, eval_iters=2_000_000, eval_interval=1), f"--data={small_corpus}"], tmp_path) as proc:
        early = read_until(proc, "注意：")
        early += [next(proc.stdout)]
        assert time.time() - began < 30 and not any(line.startswith("step") for line in early)
        estimate = next(line for line in early if line.startswith("预计用时约"))
        assert re.search(r"约 \d+h\d\dm", estimate), estimate  # 超过一小时
        assert "把 batch_size、block_size、n_embed 或 max_iters 改小" in early[-2]  # v1 的说明里没有 CPU 命令
        assert early[-1].startswith("也可以就这样跑下去")
        time.sleep(1)  # 警告打印完马上就开始第一次评估（要几百秒）；警告之前按 Ctrl-C 是“立刻退出”，不是这里要测的
        pressed = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert time.time() - pressed < 20 and proc.returncode == 0 and "Traceback" not in err, err
    assert "收到 Ctrl-C" in out and "step" not in out  # 一次评估都没做完
    assert torch.load(tmp_path / "babygpt_v1.pt", weights_only=True)["step"] == 0
    assert set(samples(out)) == {"春江", "往事"}


def test_v11_defaults_on_a_cpu_say_so_with_the_cpu_command(capsys):
    """v11 的完整配置（给 GPU 的）在 CPU 上：估计要十几个小时以上，并给出说明里（也是第 4 章里）的 CPU 命令。"""
    v11 = next(p for p in ROOT.glob("babygpt_v11_*.py"))
    module = load(v11)
    torch.manual_seed(0)
    model = module.BabyGPT(6104)
    module.announce_time(model, torch.optim.AdamW(model.parameters()), 0, "cpu")
    out = capsys.readouterr().out.splitlines()
    hours = int(re.match(r"预计用时约 (\d+)h", out[0])[1])
    assert hours >= 10 and out[1].startswith("注意：这个配置对这台机器（cpu）太大")
    command = out[2].strip()
    assert command.startswith("python babygpt_v11_hyper_params.py --batch_size=16 ")
    assert command in \
        (ROOT / "docs" / "04_full_size.md").read_text(encoding="utf-8")


def test_ctrl_c_while_writing_exits_at_once(small_corpus, tmp_path):
    with start([*tiny_args(V1, max_new_tokens=10**8), f"--data={small_corpus}"], tmp_path) as proc:
        read_until(proc, "检查点已保存")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip() == "已中断（Ctrl-C）。", err
    assert samples(out) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["babygpt_v1.pt"]  # 没有半个文件


def test_help_lists_every_option_with_default():
    r = in_process(V1, "--help")
    assert r.returncode == 0
    help_text = " ".join(r.stdout.split())  # argparse 会折行
    defaults = hyperparameters(V1)
    assert {"batch_size", "block_size", "learning_rate", "seed", "prompts", "temperature", "top_k"} <= set(defaults)
    for name, default in defaults.items():
        assert re.search(rf"--{name} {name.upper()}\s+默认 {re.escape(str(default))}(\s|$)", help_text), name
    for option in ("--device", "--data", "--out_dir", "--resume", "--sample", "--interactive"):
        assert option in r.stdout
    assert "--__" not in r.stdout  # __name__、__doc__ 也全是小写字母：不是超参数


@pytest.mark.parametrize("script", VERSIONS, ids=lambda p: p.stem)
def test_no_module_dunder_is_a_hyperparameter(script):
    assert not [name for name in load(script).HYPERPARAMETERS if name.startswith("_")]


@pytest.mark.parametrize("args, words", [
    (["--no_such_thing=1"], ["--no_such_thing"]),
    (["--batch_size=abc"], ["abc"]),
    (["--learning_rate", "fast"], ["fast"]),
    (["--block_size=-3"], ["block_size"]),
    (["--eval_interval=0"], ["eval_interval"]),
    (["--device=tpu"], ["tpu"]),
])
def test_bad_arguments_exit_2_in_one_line(args, words):
    one_line_error(in_process(V1, *args), 2, *words)


def test_bad_corpus_files(tmp_path):
    missing = tmp_path / "missing.txt"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("春江花月夜".encode("gbk") * 100)
    short = tmp_path / "short.txt"
    short.write_text("春江花月夜，往事知多少。\n" * 3, encoding="utf-8")
    for path, word in [(missing, "找不到"), (empty, "空的"), (gbk, "UTF-8"), (short, "太短")]:
        one_line_error(in_process(V1, f"--data={path}", f"--out_dir={tmp_path / 'out'}"), 1, word)
    assert not (tmp_path / "out").exists()  # 训练之前就报错：检查点目录都没建


def test_prompt_not_in_vocabulary_names_the_characters(small_corpus, tmp_path):
    r = in_process(V1, f"--data={small_corpus}", f"--out_dir={tmp_path}", "--prompts=春江,龘靐")
    one_line_error(r, 1, "龘", "靐")
    assert not (tmp_path / "babygpt_v1.pt").exists()  # 在训练之前就报错
    one_line_error(in_process(V1, f"--data={small_corpus}", f"--out_dir={tmp_path}", "--prompts=春江,"), 1, "空的开头")


def test_resume_errors(small_corpus, tmp_path):
    data = f"--data={small_corpus}"
    one_line_error(in_process(V1, *tiny_args(V1), data, f"--out_dir={tmp_path}", "--resume"), 1, "没有检查点")
    assert in_process(V1, *tiny_args(V1), data, f"--out_dir={tmp_path}").returncode == 0
    other = tmp_path / "other.txt"
    other.write_text(small_corpus.read_text(encoding="utf-8") + "龘", encoding="utf-8")
    one_line_error(in_process(V1, *tiny_args(V1), f"--data={other}", f"--out_dir={tmp_path}", "--resume"), 1, "词表")
    one_line_error(in_process(V1, *tiny_args(V1, n_embed=8), data, f"--out_dir={tmp_path}", "--resume"), 1, "形状")
    (tmp_path / "babygpt_v1.pt").write_bytes(b"not a checkpoint")
    one_line_error(in_process(V1, *tiny_args(V1), data, f"--out_dir={tmp_path}", "--resume"), 1, "读不出来")


@pytest.fixture
def v1_module():
    return load(V1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_corpus):
    """训练 200 步的 v1 检查点，给 --sample 的测试用。"""
    return trained_checkpoint(tmp_path_factory.mktemp("trained"), V1, small_corpus, max_iters=200, eval_interval=100,
                              n_embed=32).parent


def test_sample_without_checkpoint_says_how_to_make_one(tmp_path):
    one_line_error(in_process(V1, "--sample", f"--out_dir={tmp_path}"), 1, "没有检查点", "python babygpt_v1.py")


def test_sample_uses_the_checkpoint_and_rejects_a_contradicting_flag(trained):
    r = in_process(V1, "--sample", f"--out_dir={trained}", "--max_new_tokens=30", "--prompts=春江,明月")
    assert r.returncode == 0, r.stderr
    assert "step" not in r.stdout and "训练了 200 步" in r.stdout  # 没有训练，n_embed=32 来自检查点
    written = samples(r.stdout)
    assert set(written) == {"春江", "明月"} and all(len(t) == len(p) + 30 for p, t in written.items())
    assert len(parse_writing_speeds(r.stdout)) == 2 and min(parse_writing_speeds(r.stdout)) > 0
    one_line_error(in_process(V1, "--sample", f"--out_dir={trained}", "--n_embed=64"), 1, "--n_embed=64", "n_embed=32")
    assert in_process(V1, "--sample", f"--out_dir={trained}", "--n_embed=32", "--max_new_tokens=1").returncode == 0


def test_temperature_zero_is_greedy_and_deterministic(trained):
    greedy = [samples(in_process(V1, "--sample", f"--out_dir={trained}", "--temperature=0", f"--seed={seed}").stdout)
              for seed in (1, 2)]
    assert greedy[0] == greedy[1] and len(greedy[0]) == 2
    drawn = [samples(in_process(V1, "--sample", f"--out_dir={trained}", f"--seed={seed}").stdout) for seed in (1, 2)]
    assert drawn[0] != drawn[1]  # 温度 1：不同的种子写出不一样的词


def test_pick_next_top_k_and_temperature(v1_module):
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.5, -1.0]]).repeat(2000, 1)
    torch.manual_seed(0)
    v1_module.temperature, v1_module.top_k = 1.0, 2
    assert set(v1_module.pick_next(logits).flatten().tolist()) == {1, 3}  # 只在最高的两个里抽，两个都抽到过
    v1_module.top_k = 0
    assert set(v1_module.pick_next(logits).flatten().tolist()) == {0, 1, 2, 3, 4}
    v1_module.temperature = 0
    assert v1_module.pick_next(logits).flatten().tolist() == [1] * 2000
    v1_module.temperature = 0.1  # 温度很低：几乎总是最高的那个
    assert (v1_module.pick_next(logits) == 1).float().mean() > 0.9


def test_interactive_from_a_pipe(trained):
    r = in_process(V1, "--sample", "--interactive", f"--out_dir={trained}", "--max_new_tokens=5", "--temperature=0",
            stdin="明月\n龘靐春\n西风\n")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert list(samples(r.stdout)) == ["春江", "往事", "明月", "西风"]  # 坏开头之后照样问下去，EOF 结束
    assert r.stdout.count("请输入开头：") == 4
    assert "这些字不在词表里：靐 龘" in r.stdout
    stopped = in_process(V1, "--sample", "--interactive", f"--out_dir={trained}", "--max_new_tokens=5", stdin="明月\n\n西风\n")
    assert list(samples(stopped.stdout)) == ["春江", "往事", "明月"]  # 空行结束


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
        one_line_error(in_process(V1, "--device=cuda"), 1, "cuda")
