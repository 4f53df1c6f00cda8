"""测试共用的小工具：像学习者一样用子进程运行脚本，再读它打印的数字。

读输出、找版本、查某个版本有哪些参数：都用 scripts/versions.py 那一份（scripts/ladder.py 也用它）。
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# pytest-xdist 每个核一个进程；每个进程（和它启动的脚本）再开几个线程，两核上就互相抢得很慢：一个线程就够
os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from versions import ROOT, flags, load, parse_samples, parse_steps, versions

VERSIONS = [path for tag, path in versions().items() if tag != "v0"]  # 神经网络的版本（v0 是数数，另测）
__all__ = ["ROOT", "VERSIONS", "load", "run", "samples", "steps", "tiny_args"]


def tiny_args(script, **overrides):
    """几秒钟就能跑完的超参数；大版本（有 n_head / n_layer）也缩小。只传这个版本有的参数。"""
    args = {"batch_size": 4, "block_size": 16, "n_embed": 16, "max_iters": 30, "eval_interval": 10,
            "eval_iters": 2, "max_new_tokens": 8, "learning_rate": 1e-2, "device": "cpu", "n_head": 2, "n_layer": 2,
            "dtype": "float32"}
    args.update(overrides)
    known = flags(script)
    return [f"--{k}={v}" for k, v in args.items() if k in known]


def run(script, *args, env=None, timeout=180, stdin=None):
    return subprocess.run([sys.executable, str(script), *map(str, args)], check=False, capture_output=True, text=True,
                          encoding="utf-8", input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          timeout=timeout, env=env)


def steps(stdout):
    """[(step, train_loss, val_loss), ...]，按打印顺序。"""
    return [(s["step"], s["train_loss"], s["val_loss"]) for s in parse_steps(stdout)]


samples = parse_samples


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """ci.txt 开头的几十首词：词表小，训练快，但格式和真语料一样。"""
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    cut = text.index("\n\n", 30000) + 1
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(text[:cut], encoding="utf-8")
    return path
