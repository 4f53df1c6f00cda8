"""v0：只用 Python 自带的东西数数；验证损失算得对；写出的词从开头开始；报错是一行中文。"""

import math
import sys

import pytest
from conftest import ROOT, in_process, load, one_line_error, run_command, samples

V0 = ROOT / "babygpt_v0_counting.py"
pytestmark = pytest.mark.skipif(not V0.exists(), reason="v0 还没有")
NO_TORCH = ("import runpy, sys; sys.modules['torch'] = sys.modules['numpy'] = None; "  # import torch 会失败
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def test_runs_without_torch_and_beats_nothing_but_counting():
    r = run_command([sys.executable, "-c", NO_TORCH, V0, "--max_new_tokens=20"], timeout=120)
    assert r.returncode == 0, r.stderr
    loss = float(r.stdout.split("验证损失 ")[1].split("（")[0])
    assert 4.9 < loss < 5.3  # 随机猜是 ln(6104) ≈ 8.72；数数能到 5.08 左右
    written = samples(r.stdout)
    assert set(written) == {"春江", "往事"}
    assert all(text.startswith(prompt) and len(text) == len(prompt) + 20 for prompt, text in written.items())


def test_validation_loss_is_the_smoothed_bigram_cross_entropy():
    v0 = load(V0)
    v0.VOCAB_SIZE, v0.smoothing = 3, 2.0
    unigram, bigram, followed = v0.count("abab" + "aab")  # 训练集
    assert bigram == {"a": {"b": 3, "a": 1}, "b": {"a": 2}} and followed == {"a": 4, "b": 2}
    # 手算：P(b) = (3+1)/(7+3)，P(b|a) = (3 + 2·0.4)/(4 + 2)；P(c) = 1/10，P(c|b) = (0 + 2·0.1)/(2 + 2)
    expected = -(math.log((3 + 2 * 0.4) / 6) + math.log((0 + 2 * 0.1) / 4)) / 2
    assert math.isclose(v0.validation_loss("abc", unigram, bigram, followed), expected)


def test_greedy_follows_the_most_frequent_next_character():
    v0 = load(V0)
    v0.temperature = 0
    unigram, bigram, _ = v0.count("春风春风春江")
    assert v0.next_char("春", unigram, bigram) == "风"  # 风 2 次，江 1 次


@pytest.mark.parametrize("args, words, code", [(["--temperature=-1"], ["temperature"], 2),
                                               (["--smoothing=0"], ["smoothing"], 2),
                                               (["--prompts=春江,龘"], ["龘"], 1),
                                               (["--data=/no/such/file.txt"], ["找不到"], 1)])
def test_bad_input_is_one_line(args, words, code):
    one_line_error(in_process(V0, *args), code, *words)
