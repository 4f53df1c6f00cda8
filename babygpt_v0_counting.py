"""babygpt v0：语言模型就是数数，只用 Python 自带的东西、不用 PyTorch（第 2 章）

本版新内容
  数一数训练集（ci.txt 的前 90%）里每个字后面跟着什么字、各跟了几次，就得到一个二元模型（bigram）：
  “春”后面跟“风”多少次、跟“江”多少次……写词时，看最后一个字，按这些次数的比例抽下一个字。
  验证损失和其他版本打印的是同一个数：验证集（后 10%）上每个字的交叉熵，-ln P(下一个字 | 这个字) 的平均。

  平滑（两句话）：训练集里没见过的组合，概率不能是 0（ln 0 是负无穷）。所以每个字后面都加上 k 个
  “虚拟的”字，按每个字在训练集里的出现频率分配：P(b|a) = (次数(a,b) + k·P(b)) / (次数(a) + k)。
  k = 300 是在验证集上试出来的（k=1：5.61，10：5.31，100：5.10，300：5.08，1000：5.14）；
  严格的做法是从训练集里另留一份来挑 k，这里为了简单没有这样做。

  为什么不用一张 6104 × 6104 的表：那是 3,700 万个格子（Python 的整数表要约 300 MB），可训练集里
  真正出现过的组合只有几十万种。这里每个字只记它后面真的出现过的字（字典套字典），省内存也省时间。

运行
  python babygpt_v0_counting.py                    # 数数、算验证损失、写词；不需要装任何东西
  python babygpt_v0_counting.py --help             # 列出所有参数和默认值

下一版：v1 做什么不一样
  v1（babygpt_v1.py）学的是同一张“这个字后面跟什么字”的表，只是不再数数：表里的数是参数，
  用梯度下降一点一点调，让验证损失变小。v0 的损失就是 v1 要追上的地板；之后每一版加一个想法，
  让模型能看更多的字，才能比数数做得更好。

实测
  2 核 CPU（AMD EPYC），默认设置：验证损失 5.08（2026-12-07，docs/exercises/2.v0.txt）
"""

import argparse
import itertools
import math
import os
import random
import sys
import time
from collections import Counter

# ---------------- 参数（都可以在命令行改）----------------
max_new_tokens = 100  # 每个开头续写多少个字
seed = 1337  # 随机种子：同样的命令写出同样的词
temperature = 1.0  # 温度：小于 1 更保守，大于 1 更放得开，0 = 每次选最常跟着的字
smoothing = 300.0  # 平滑的 k：每个字后面加几个“虚拟的”字
prompts = "春江,往事"  # 用这些开头写词，逗号分隔


def count(text):
    """数数：unigram[字] = 出现几次；bigram[前一个字][后一个字] = 这个组合出现几次；
    followed[前一个字] = 它后面一共跟了几个字。"""
    unigram = Counter(text)
    bigram = {}
    for (a, b), times in Counter(itertools.pairwise(text)).items():
        bigram.setdefault(a, {})[b] = times
    followed = {a: sum(followers.values()) for a, followers in bigram.items()}
    return unigram, bigram, followed


def validation_loss(val, unigram, bigram, followed):
    """验证集上的交叉熵：每个字 -ln P(下一个字 | 这个字) 的平均，和其他版本打印的验证损失是同一个数。"""
    total = sum(unigram.values())
    loss = 0.0
    for a, b in itertools.pairwise(val):
        p_b = (unigram.get(b, 0) + 1) / (total + VOCAB_SIZE)  # 字本身的频率（也加 1：没出现过的字不是 0）
        p = (bigram.get(a, {}).get(b, 0) + smoothing * p_b) / (followed.get(a, 0) + smoothing)  # 平滑过的 P(b|a)
        loss -= math.log(p)
    return loss / (len(val) - 1)


def next_char(a, unigram, bigram):
    """看最后一个字，按它后面各个字出现的次数抽下一个字（温度改变次数的比例）。"""
    followers = bigram.get(a) or unigram  # 训练集里没出现在前面的字：按字本身的频率抽
    if temperature == 0:
        return max(followers, key=followers.get)
    chars = list(followers)
    weights = [followers[ch] ** (1 / temperature) for ch in chars]
    return random.choices(chars, weights)[0]


def write(prompt, unigram, bigram):
    start = time.time()
    text = prompt
    for _ in range(max_new_tokens):
        text += next_char(text[-1], unigram, bigram)
    speed = max_new_tokens / max(time.time() - start, 1e-9)
    print(f"\n--- {prompt} ---\n{text}\n（{speed:,.0f} 字/秒）", flush=True)


def main():
    global VOCAB_SIZE
    args = parse_args()
    random.seed(seed)
    start = time.time()
    text = read_text(args.data)
    VOCAB_SIZE = len(set(text))  # 词表：语料里出现过的所有字（和其他版本一样）
    starts = prompts.split(",")
    if not all(starts):
        fail(f"--prompts={prompts} 里有空的开头：每个开头至少一个字，用逗号分隔")
    missing = " ".join(sorted({ch for ch in "".join(starts) if ch not in set(text)}))
    if missing:
        fail(f"开头里的字不在词表里：{missing}（换成语料里有的字）")
    n = int(0.9 * len(text))  # 前 90% 训练，后 10% 验证
    train, val = text[:n], text[n:]
    if min(len(train), len(val)) < 2:
        fail("语料太短：训练集和验证集（后 10%）都要至少两个字")
    unigram, bigram, followed = count(train)
    pairs = sum(len(followers) for followers in bigram.values())
    print(f"语料 {len(text):,} 字，词表 {VOCAB_SIZE:,} 字；训练集里出现过 {pairs:,} 种两字组合"
          f"（一张满表要 {VOCAB_SIZE * VOCAB_SIZE:,} 格）")
    loss = validation_loss(val, unigram, bigram, followed)
    print(f"验证损失 {loss:.4f}（验证集 {len(val) - 1:,} 个两字组合的平均交叉熵；数数加算损失用了 {time.time() - start:.1f} 秒）")
    for prompt in starts:
        write(prompt, unigram, bigram)


# ================ 脚手架：命令行、读文件（和其他版本一样的一行中文报错）================
PARAMETERS = {k: v for k, v in dict(globals()).items() if k.islower() and not k.startswith("_") and type(v) in (int, float, str)}
HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB_SIZE = 0


def keep_printing():  # 控制台编码不了的字（GBK 里没有“・”）印成“?”，而不是让 print 报错、弄丢训练
    for stream in (sys.stdout, sys.stderr):  # 想看到每个字：用 UTF-8 模式，见 docs/01_setup.md 的常见问题
        if hasattr(stream, "reconfigure"):  # Jupyter 的输出流没有 reconfigure，它本来就是 UTF-8
            stream.reconfigure(errors="replace")


def fail(message):  # 一行中文报错，不打印 traceback，退出码 1
    print(f"错误：{message}", file=sys.stderr)
    sys.exit(1)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # argparse 默认打印英文用法，这里换成一行中文，退出码仍是 2
        print(f"错误：命令行参数不对（{message}）。用 --help 查看可用参数。", file=sys.stderr)
        sys.exit(2)


def parse_args():
    keep_printing()
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            allow_abbrev=False)
    for name, value in PARAMETERS.items():
        parser.add_argument(f"--{name}", type=type(value), default=value, help=f"默认 {value}")
    parser.add_argument("--data", default=os.path.join(HERE, "ci.txt"), help="语料文件（UTF-8），默认 ci.txt")
    args = parser.parse_args()
    for name in PARAMETERS:  # 数不能为负；平滑的 k 还不能为 0（没见过的组合会是 0 概率）
        value = getattr(args, name)
        if type(value) is not str and (value < 0 or (value == 0 and name == "smoothing")):
            parser.error(f"--{name}={value} 超出范围：{'必须大于 0' if name == 'smoothing' else '不能为负'}")
    globals().update({name: getattr(args, name) for name in PARAMETERS})
    return args


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:  # Windows 默认编码不是 UTF-8，必须写明
            text = f.read()
    except FileNotFoundError:
        fail(f"找不到语料文件 {path}")
    except UnicodeDecodeError:
        fail(f"语料文件 {path} 不是 UTF-8 编码")
    except OSError as e:
        fail(f"读不了语料文件 {path}（{e.strerror}）")
    if not text:
        fail(f"语料文件 {path} 是空的")
    return text


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C：一行说明，不打印 traceback
        print("\n已中断（Ctrl-C）。", file=sys.stderr)
        sys.exit(130)
