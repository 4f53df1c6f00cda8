"""第二把尺子：模型写的词合不合词牌的格律（每一句几个字）？只用语料本身来量。

用法
  python scripts/form.py --checkpoint checkpoints/babygpt_v19_gqa.pt      # 任何版本（v1 起）的检查点
  python scripts/form.py --counting                                       # v0：用它自己数出来的次数写
  python scripts/form.py --checkpoint ... --pieces 50 --temperature 0.7 --json   # json 给 scripts/ladder.py 用

量什么
  一首词按一个词牌（曲调）写，词牌定了每一句几个字：浣溪沙是六句、每句七个字，鹧鸪天是 7-7-7-7-3-3-7-7-7。
  “句”：词的正文（作者那一行以后）在 ，。？！、；： 和换行处切开，每一段的字数（□ 也算一个字）；这一串字数叫“句式”。
  某个词牌的句式“有据可查”：训练集（ci.txt 的前 90%，只算完全落在里面的词）里这个词牌用这个句式的词至少 3 首。
  对八个最常见、格律最整齐的词牌，从开头“<词牌> ”（词牌名加一个空格，和 ci.txt 里一样）起各写 N 首（默认 20，
  种子固定），模型自己写出作者、换行、正文；写到第一个空行（一首词结束）为止。每首词算两个数：
  - 合律：它的句式是这个词牌有据可查的句式之一（1 或 0）；
  - 句子分：和“最近的”有据可查的句式逐句比较（第 1 句比第 1 句……），字数相同的句子数 ÷ 两者中较长的句数：
    少写的、多写的句子都算错。“最近的”= 让这个分数最高的那个句式；一样高时取训练集里用得最多的那个。
  都对词牌求平均，再对八个词牌求平均（每个词牌一样重）。
  天花板：验证集（后 10%，只算完全落在里面的词）里这八个词牌的真词，用同样的算法打分；
  地板：v0（数数的二元模型）用同样的开头、同样的办法写出来的词。
"""

import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

from versions import ROOT, from_checkpoint, load, versions

TUNES = ["浣溪沙", "鹧鸪天", "菩萨蛮", "西江月", "减字木兰花", "蝶恋花", "清平乐", "点绛唇"]
CLAUSE = re.compile(r"[，。？！、；：\n]")  # 句子在这些标点和换行处断开
MIN_COUNT = 3  # 训练集里至少几首，才算“有据可查”


def pieces(text):
    """[(词牌, 正文, 起点, 终点), ...]：ci.txt 里每首词一项。一首词是“词牌 作者”一行、再几行正文，词之间空一行。"""
    found, position = [], 0
    for block in text.split("\n\n"):
        head, _, body = block.partition("\n")
        found.append((head.split(" ")[0], body, position, position + len(block)))
        position += len(block) + 2
    return found


def shape(body):
    """句式：每一句的字数。shape("一二三，四五。\n六。") == (3, 2, 1)"""
    return tuple(len(clause) for clause in CLAUSE.split(body) if clause)


def split(text):
    """训练集和验证集的词：和训练脚本一样在 90% 处切开，只要完全落在一边的词（跨过切口的那首不要）。"""
    n = int(0.9 * len(text))
    everything = pieces(text)
    return [p for p in everything if p[3] <= n], [p for p in everything if p[2] >= n]


def attested(train, tunes=TUNES, min_count=MIN_COUNT):
    """{词牌: Counter(句式 -> 训练集里的首数)}，只留至少 min_count 首的句式。"""
    counts = {tune: Counter(shape(body) for name, body, _, _ in train if name == tune) for tune in tunes}
    return {tune: Counter({s: c for s, c in counted.items() if c >= min_count}) for tune, counted in counts.items()}


def score(piece_shape, shapes):
    """(合律 0/1, 句子分, 最近的句式)：见文件开头的说明。shapes: Counter(句式 -> 首数)"""
    def agreement(candidate):
        same = sum(a == b for a, b in zip(piece_shape, candidate, strict=False))
        return same / max(len(piece_shape), len(candidate), 1)
    nearest = max(shapes, key=lambda s: (agreement(s), shapes[s]), default=())
    return int(piece_shape in shapes), agreement(nearest) if nearest else 0.0, nearest


def body_of(written, prompt):
    """模型从 prompt 起写的一段 -> 这首词的正文：去掉开头和作者那一行，到第一个空行为止。"""
    text = written[len(prompt):].split("\n\n")[0]
    return text.partition("\n")[2]


def max_new_tokens(train, tune):
    """写多少个字才够一首：训练集里这个词牌最长的一首（连作者行）再加 20 个字。"""
    return max((len(body) + 12 for name, body, _, _ in train if name == tune), default=80) + 20


class NeuralWriter:
    """用一个版本（v1 起）的检查点写词：模型、词表和超参数都来自检查点，和 --sample 一样。"""

    def __init__(self, checkpoint, version, temperature):
        import torch
        self.torch = torch
        self.module, self.model, self.tokenizer, state = from_checkpoint(
            versions()[version], checkpoint, temperature=temperature, top_k=0, kv_cache=1)
        self.steps = state["step"]

    def knows(self, prompt):
        return all(ch in self.tokenizer.stoi for ch in prompt)

    def write(self, prompt, count, length, seed):
        self.torch.manual_seed(seed)
        idx = self.torch.tensor([self.tokenizer.encode(prompt)] * count)  # (count, T)：一次写 count 首
        return [self.tokenizer.decode(row) for row in self.model.generate(idx, length).tolist()]


def checkpoint_writer(checkpoint, version, temperature):
    """命令行给的检查点 -> NeuralWriter；版本默认从文件名看出来（babygpt_v19_gqa.pt 是 v19）。出错时一行中文退出。
    scripts/style.py 也用它。"""
    path = Path(checkpoint)
    version = version or (re.match(r"babygpt_(v\d+)", path.name) or [None, None])[1]
    if version not in versions() or version == "v0":
        sys.exit(f"错误：看不出 {path.name} 是哪个版本的检查点：用 --version 写明，例如 --version v19")
    if not path.exists():
        sys.exit(f"错误：没有检查点 {path}：先训练一次（python {versions()[version].name}）")
    writer = NeuralWriter(path, version, temperature)
    writer.version = version
    return writer


class CountingWriter:
    """v0：在训练集上数数，用它自己的 next_char 一个字一个字地抽。"""

    def __init__(self, text, temperature):
        self.module = load(versions()["v0"])
        self.module.temperature = temperature
        self.unigram, self.bigram, _ = self.module.count(text[:int(0.9 * len(text))])
        self.steps = None

    def knows(self, prompt):
        return all(ch in self.unigram for ch in prompt)

    def write(self, prompt, count, length, seed):
        random.seed(seed)
        written = []
        for _ in range(count):
            text = prompt
            for _ in range(length):
                text += self.module.next_char(text[-1], self.unigram, self.bigram)
            written.append(text)
        return written


def judge(bodies, shapes):
    """一个词牌的一组正文 -> {"exact", "clause", "pieces": [(正文, 句式, 合律, 句子分, 最近的句式)]}"""
    scored = []
    for body in bodies:
        piece_shape = shape(body)
        fit, clause, nearest = score(piece_shape, shapes)
        scored.append((body, piece_shape, fit, clause, nearest))
    count = max(len(scored), 1)
    return {"exact": sum(s[2] for s in scored) / count, "clause": sum(s[3] for s in scored) / count, "pieces": scored}


def evaluate(writer, text, count, seed):
    """{词牌: judge(...)}，加上 "overall"：八个词牌的平均。写不出开头（词表里没有）的词牌记 None。"""
    train, _ = split(text)
    shapes = attested(train)
    results = {}
    for i, tune in enumerate(TUNES):
        prompt = f"{tune} "
        if not writer.knows(prompt):
            results[tune] = None
            continue
        written = writer.write(prompt, count, max_new_tokens(train, tune), seed + i)
        results[tune] = judge([body_of(w, prompt) for w in written], shapes[tune])
    return results


def ceiling(text):
    """验证集里这八个词牌的真词。"""
    train, val = split(text)
    shapes = attested(train)
    return {tune: judge([body for name, body, _, _ in val if name == tune], shapes[tune]) for tune in TUNES}


def overall(results):
    done = [r for r in results.values() if r is not None]
    if not done:
        return {"exact": None, "clause": None}
    return {key: sum(r[key] for r in done) / len(done) for key in ("exact", "clause")}


def percent(x):
    return "—" if x is None else f"{x:.0%}"


def example(results, want_fit):
    """一首合律的，或一首最接近合律（句子分最高）却不合律的：(词牌, 正文, 句式, 最近的句式, 句子分)"""
    best = None
    for tune, result in results.items():
        for body, piece_shape, fit, clause, nearest in (result or {"pieces": []})["pieces"]:
            if fit == want_fit and body and (best is None or clause > best[4]):
                best = (tune, body, piece_shape, nearest, clause)
    return best


def report(name, results, roof, floor):
    pieces = len(next(r for r in results.values() if r)["pieces"])
    lines = [f"{name}：每个词牌写 {pieces} 首", "",
             "| 词牌 | 合律 | 句子分 | 天花板（验证集的真词）：合律 | 句子分 | 地板（v0 数数）：合律 | 句子分 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    rows = [(tune, results[tune], roof[tune], floor[tune]) for tune in TUNES]
    rows.append(("平均", overall(results), overall(roof), overall(floor)))
    for tune, mine, c, f in rows:
        mine_cells = "词表里没有 | —" if mine is None else f"{percent(mine['exact'])} | {percent(mine['clause'])}"
        lines.append(f"| {tune} | {mine_cells} | {percent(c['exact'])} | {percent(c['clause'])} | "
                     f"{percent(f['exact']) if f else '—'} | {percent(f['clause']) if f else '—'} |")
    for title, want in (("合律的一首", 1), ("最接近合律、却不合律的一首", 0)):
        found = example(results, want)
        lines += ["", f"{title}：" + ("（没有）" if found is None else found[0])]
        if found:
            tune, body, piece_shape, nearest, clause = found
            lines += [body, f"句式 {'-'.join(map(str, piece_shape))}" +
                      ("" if want else f"；最近的 {'-'.join(map(str, nearest))}（句子分 {clause:.0%}）")]
    return "\n".join(lines)


def summary(results):
    """--json 的内容：每个词牌和平均的两个数，加上每首的句式。"""
    return {"overall": overall(results),
            "tunes": {tune: None if r is None else {"exact": r["exact"], "clause": r["clause"],
                                                    "shapes": ["-".join(map(str, p[1])) for p in r["pieces"]]}
                      for tune, r in results.items()}}


def measure(argv=None):
    """命令行参数 -> (参数, 语料, 结果, 名字)；出错时一行中文退出（sys.exit）。scripts/ladder.py 在它自己的进程里调用。"""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="一个版本（v1 起）的检查点，例如 checkpoints/babygpt_v19_gqa.pt")
    which.add_argument("--counting", action="store_true", help="量 v0（数数）写的词")
    parser.add_argument("--version", help="检查点是哪个版本的（默认从文件名看出来，例如 babygpt_v19_gqa.pt 是 v19）")
    parser.add_argument("--data", default=str(ROOT / "ci.txt"), help="语料（定格律用），默认 ci.txt")
    parser.add_argument("--pieces", type=int, default=20, help="每个词牌写几首，默认 20")
    parser.add_argument("--temperature", type=float, default=1.0, help="写词的温度，默认 1.0")
    parser.add_argument("--seed", type=int, default=1337, help="随机种子，默认 1337")
    parser.add_argument("--json", action="store_true", help="只打印 json（合律率、句子分、每首的句式）")
    args = parser.parse_args(argv)
    if args.pieces < 1 or args.temperature <= 0:
        sys.exit("错误：--pieces 至少 1，--temperature 要大于 0")
    try:
        text = Path(args.data).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        sys.exit(f"错误：读不了语料 {args.data}（{e}）")
    if args.counting:
        writer, name = CountingWriter(text, args.temperature), "v0（数数）"
    else:
        writer = checkpoint_writer(args.checkpoint, args.version, args.temperature)
        name = f"{writer.version}（训练了 {writer.steps} 步）"
    results = evaluate(writer, text, args.pieces, args.seed)
    if all(r is None for r in results.values()):
        sys.exit("错误：这个模型的词表里一个词牌名都没有（是在别的语料上训练的吗？）")
    return args, text, results, name


def as_json(results, text):
    """--json 打印的内容：summary 加上验证集的天花板。"""
    return {**summary(results), "ceiling": overall(ceiling(text))}


def main():
    args, text, results, name = measure()
    if args.json:
        print(json.dumps(as_json(results, text), ensure_ascii=False))
        return
    floor = evaluate(CountingWriter(text, args.temperature), text, args.pieces, args.seed)
    print(report(name, results, ceiling(text), floor))


if __name__ == "__main__":
    main()
