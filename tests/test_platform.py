"""学习者的各种机器：GBK 控制台、老 PyTorch 的 Mac（MPS）；失败的测试不留下进程。

这台机器上跑不了的路径在这里模拟：Python 按 GBK 输出（PYTHONIOENCODING=gbk，和中文 Windows 上输出到文件、
管道时一样），torch.autocast 像 PyTorch 2.1/2.2 在 MPS 上那样一建就报错。
"""

import argparse
import os
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, VERSIONS, descendants, in_process, load, run, samples, started, tiny_args
from versions import number

V0 = ROOT / "babygpt_v0_counting.py"
NOT_IN_GBK = "・"  # ci.txt 里有 2,377 个（词牌名“摊破丑奴儿・采桑子”），GBK 里没有


@pytest.fixture(scope="module")
def corpus_with_dot(tmp_path_factory, small_corpus):
    path = tmp_path_factory.mktemp("gbk") / "dot.txt"
    text = small_corpus.read_text(encoding="utf-8")
    path.write_text(f"摊破丑奴儿{NOT_IN_GBK}采桑子 无名氏\n春江花月夜。\n\n" + text, encoding="utf-8")
    return path


def gbk_env():
    return {**os.environ, "PYTHONIOENCODING": "gbk", "WANDB_MODE": "disabled"}


@pytest.mark.parametrize("path", [VERSIONS[0], VERSIONS[-1]], ids=lambda p: p.stem)
def test_gbk_console_never_crashes(path, corpus_with_dot, tmp_path):
    """输出到管道、按 GBK 编码：写出的词里有 GBK 没有的字，脚本照样写完每一首（那个字印成“?”）。"""
    title = f"摊破丑奴儿{NOT_IN_GBK}采桑子"
    r = run(path, *tiny_args(path, max_iters=10, max_new_tokens=30), f"--prompts=春江,{title}", "--interactive",
            f"--data={corpus_with_dot}", f"--out_dir={tmp_path}", env=gbk_env(), encoding="gbk", stdin="往事\n")
    assert r.returncode == 0, r.stderr
    assert set(samples(r.stdout)) == {"春江", "摊破丑奴儿?采桑子", "往事"}  # 每一首都写出来了，包括交互输入的
    assert len(samples(r.stdout)["摊破丑奴儿?采桑子"]) == len(title) + 30


def test_gbk_error_messages_and_v0_never_crash(small_corpus, tmp_path):
    bad = run(VERSIONS[0], *tiny_args(VERSIONS[0]), "--prompts=🌸", f"--data={small_corpus}",  # 语料和 GBK 里都没有
              f"--out_dir={tmp_path}", env=gbk_env(), encoding="gbk")
    assert bad.returncode == 1 and bad.stderr == "错误：开头里的字不在词表里：?（换成语料里有的字）\n"
    v0 = run(V0, "--max_new_tokens=20", f"--prompts={NOT_IN_GBK}", env=gbk_env(), encoding="gbk")
    assert v0.returncode == 0, v0.stderr
    assert set(samples(v0.stdout)) == {"?"} and len(samples(v0.stdout)["?"]) == 21


def raising_autocast(*args, **kwargs):  # PyTorch 2.1/2.2 在 MPS 上：先查设备类型，enabled=False 也报错
    raise RuntimeError("User specified an unsupported autocast device_type 'mps'")


@pytest.mark.parametrize("path", [p for p in VERSIONS if number(p) in (14, 15)] + VERSIONS[-1:], ids=lambda p: p.stem)
def test_float32_builds_no_autocast(path, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "autocast", raising_autocast)
    out = in_process(path, *tiny_args(path, max_iters=10), f"--data={small_corpus}", f"--out_dir={tmp_path}").stdout
    assert "加速：精度 float32" in out and set(samples(out)) == {"春江", "往事"}
    assert torch.load(tmp_path / f"{path.stem}.pt", weights_only=True)["step"] == 10


def no_bf16_tensors(monkeypatch):
    """像老 macOS、老 PyTorch 的 MPS：张量一变成 bf16 就报错（在训练的某一步深处）。"""
    def refuse(*_):
        raise TypeError("MPS: bfloat16 is not supported on this macOS")
    to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "bfloat16", refuse)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: refuse() if torch.bfloat16 in (*a, k.get("dtype"))
                        else to(self, *a, **k))


@pytest.mark.parametrize("path", [p for p in VERSIONS if "orthogonalize" in p.read_text(encoding="utf-8")],
                         ids=lambda p: p.stem)
def test_muon_trains_where_bf16_is_not_available(path, small_corpus, tmp_path, monkeypatch):
    """Muon 的正交化用训练的精度：MPS 上训练是 float32，正交化也是，不碰 bf16。"""
    monkeypatch.setattr(torch, "autocast", raising_autocast)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # auto 只剩 float32，像 MPS
    no_bf16_tensors(monkeypatch)
    out = in_process(path, *tiny_args(path, max_iters=6, dtype="auto"), f"--data={small_corpus}",
                     f"--out_dir={tmp_path}").stdout
    assert "加速：精度 float32" in out and [int(line.split()[1].split("/")[0]) for line in out.splitlines()
                                           if line.startswith("step ")] == [0, 6]


@pytest.mark.parametrize("path", [p for p in VERSIONS if number(p) >= 14][:1], ids=lambda p: p.stem)
def test_bf16_where_it_cannot_run_is_one_line(path, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "autocast", raising_autocast)
    r = in_process(path, *tiny_args(path, dtype="bfloat16"), f"--data={small_corpus}", f"--out_dir={tmp_path}")
    assert r.returncode == 1
    assert r.stderr == ("错误：--dtype=bfloat16 在 cpu 上用不了（User specified an unsupported autocast "
                                       "device_type 'mps'）：改用 --dtype=float32\n")
    assert not list(tmp_path.iterdir())
    module = load(path)
    fresh = argparse.Namespace(resume=False)
    assert module.dtype == "auto" and module.pick_dtype("mps", fresh) == ["float32"]  # MPS 上没量过 bf16：默认 float32，不用量


GRANDCHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_failing_test_leaves_no_process(tmp_path):
    """started()：超时（测试失败）时，连另开会话的孙进程（像 torchrun 的 worker）一起杀掉。"""
    with pytest.raises(TimeoutError), started([sys.executable, "-c", GRANDCHILD]) as proc:
        grandchild = int(proc.stdout.readline())
        assert grandchild in descendants(proc.pid)
        raise TimeoutError  # 测试在这里失败
    time.sleep(0.2)
    for pid in (proc.pid, grandchild):
        try:
            state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue  # 已经没有了
        assert state == "Z", (pid, state)  # 只剩等人收尸的僵尸，不再运行


def test_reports_name_the_cpu_features_the_speed_depends_on():
    """v14 的 --dtype=auto 和 bf16 那一行的加速取决于 CPU 有没有 bf16 指令：报告的“机器”一行写明。"""
    from versions import cpu_features, machine

    assert cpu_features(["fma", "avx2", "avx512f", "avx512_bf16"]) == "有 AVX512-BF16"
    assert cpu_features(["avx2", "amx_bf16", "avx512_bf16"]) == "有 AMX-BF16、AVX512-BF16"
    assert cpu_features(["sse4_2", "avx2"]) == "只有 AVX2（没有 AVX512-BF16）"
    cpuinfo = Path("/proc/cpuinfo")  # 只有 Linux 有；Mac、Windows 上“机器”一行只写处理器的名字
    if cpuinfo.exists():
        flags = next(line for line in cpuinfo.read_text(encoding="utf-8").splitlines() if line.startswith("flags"))
        assert f"（{cpu_features(flags.split())}）" in machine()
