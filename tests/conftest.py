"""测试共用的小工具：像学习者一样用子进程运行脚本，再读它打印的数字。"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = sorted(ROOT.glob("babygpt_v*.py"), key=lambda p: int(re.match(r"babygpt_v(\d+)", p.name).group(1)))
STEP_LINE = re.compile(r"^step\s+(\d+)/(\d+) \| 训练损失 ([\d.]+) \| 验证损失 ([\d.]+) \| ([\d,]+) 字/秒", re.MULTILINE)


def tiny_args(script, **overrides):
    """几秒钟就能跑完的超参数；大版本（有 n_head / n_layer）也缩小。"""
    source = Path(script).read_text(encoding="utf-8")
    args = {"batch_size": 4, "block_size": 16, "n_embed": 16, "max_iters": 30, "eval_interval": 10,
            "eval_iters": 2, "max_new_tokens": 8, "learning_rate": 1e-2, "device": "cpu"}
    if "\nn_head = " in source:
        args["n_head"] = 2
    if "\nn_layer = " in source:
        args["n_layer"] = 2
    args.update(overrides)
    return [f"--{k}={v}" for k, v in args.items()]


def run(script, *args, env=None, timeout=180):
    return subprocess.run([sys.executable, str(script), *map(str, args)], check=False, capture_output=True, text=True,
                          encoding="utf-8", stdin=subprocess.DEVNULL, timeout=timeout, env=env)


def steps(stdout):
    """[(step, train_loss, val_loss), ...]，按打印顺序。"""
    return [(int(m[1]), float(m[3]), float(m[4])) for m in STEP_LINE.finditer(stdout)]


def samples(stdout):
    """{开头: 写出的词}。脚本打印的是 "\n--- 开头 ---\n" + 词 + "\n"，词里可以有换行。"""
    parts = re.split(r"^--- (.+) ---\n", stdout, flags=re.MULTILINE)
    texts = [text.removesuffix("\n\n") if i + 2 < len(parts) else text.removesuffix("\n")
             for i, text in enumerate(parts) if i % 2 == 0][1:]
    return dict(zip(parts[1::2], texts, strict=True))


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """ci.txt 开头的几十首词：词表小，训练快，但格式和真语料一样。"""
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    cut = text.index("\n\n", 30000) + 1
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(text[:cut], encoding="utf-8")
    return path
