"""第三把尺子：这首词像不像某一位词人写的？只用语料本身来量（和 scripts/form.py 一样）。

用法
  python scripts/style.py --write-corpus data/ci_base.txt     # 写出去掉留出词的语料：给 v24 的基础模型预训练用
  python scripts/style.py                                     # 分类器的天花板和误报（默认词人 辛弃疾）
  python scripts/style.py --checkpoint checkpoints/babygpt_v24_finetune.pt   # 一个检查点写的词：风格分、抄了多少
  python scripts/style.py --checkpoint ... --poet 苏轼 --json

三份词（一位词人的词按在 ci.txt 里的顺序编号 1、2、3……）
  留出的词：第 10、20、30……首（HOLD_EVERY）。基础模型的预训练、分类器、微调都不用它们；天花板在它们上面量。
  微调的词：其余的单数号（1、3、5……）。v24、v25 只用它们接着训练。
  分类器的词：其余的双数号（2、4、6……）。只有分类器用它们认“这位词人”。
  分类器和微调从不看同一首词：一个把微调的词背下来的模型，风格分顶多是分类器认他没见过的词的那几成
  （下面的“照抄微调的词能得几分”），不会因为背得多就越来越高。
  规则短，v24 里也写了一遍，两边算出同样的词；tests/test_finetune.py 检查两边一样。

分类器：朴素贝叶斯，v0 的表亲（纯 Python，数数）
  只看正文（“词牌 作者”那一行不算，不然看作者名就行了），特征是每个字和每两个相邻的字。
  两类：这位词人的词（只用分类器的词）、其他人的词（留出的以外都用）。一首词的分数 = 两类下出现这些特征的对数概率之差，
  按特征个数平均。平滑不是加一，是狄利克雷先验：每一类都补上一共 SMOOTHING = 10,000 次假想的出现，
  按两类合起来的频率分给各个特征（见 NaiveBayes；加一平滑会把词人那一类的每个特征都压得很低）。
  两类一样看待（不按首数加先验：其他人的词多三十倍，加了先验就几乎从不说“是他”）。分数大于 0 就算他的。
  天花板：他的留出词里有几成被认成他的；误报：别人的留出词里有几成被认成他的。
  照抄微调的词能得几分：他的微调的词里有几成被认成他的（分类器也没见过它们）。
  每个比例都带标准误差 √(p(1−p)/n)：100 首词的比例大约 ±4 到 5 个百分点，差得比这小的两个数分不出高低。

一个模型的风格分
  开头是这位词人最常用的 TUNE_COUNT 个词牌，各跟着他的名字，和 ci.txt 的标题行一样（“鹧鸪天 辛弃疾”），
  每个写 N 首（默认 20，种子固定），写到第一个空行。风格分 = 被认成他写的那几成。
  基础模型用同样的开头（提示里已经有作者名），它的风格分是地板：微调得比“提示里写上名字”更像才算数。
抄了多少
  写出的正文里每一段连续 8 个字（COPY_RUN，跨过换行：换行去掉再数），有几成原样出现在他的某一首词里；
  再给出最长的原样照抄有几个字。像他不等于抄他：和基础模型比。
"""

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

from versions import ROOT

HOLD_EVERY = 10  # 每位词人的第 10、20、30……首留出来
TUNE_COUNT = 5  # 风格分用这位词人最常用的几个词牌
COPY_RUN = 8  # 连续几个字原样出现算“抄”
SMOOTHING = 10_000  # 狄利克雷平滑补几次（见 NaiveBayes）：大了天花板高、误报也多


def pieces(text):
    """ci.txt 里的每首词（“词牌 作者”一行，再几行正文），不带词之间的空行。"""
    return [block for block in text.strip("\n").split("\n\n") if block]


def author(piece):
    return piece.partition("\n")[0].rsplit(" ", 1)[-1]


def split_held_out(text):
    """(留下的词, 留出的词)：每位词人按在语料里的顺序，第 10、20、30……首留出来。"""
    seen, kept, held = Counter(), [], []
    for piece in pieces(text):
        seen[author(piece)] += 1
        (held if seen[author(piece)] % HOLD_EVERY == 0 else kept).append(piece)
    return kept, held


def split_poet(text, poet):
    """这位词人的 (微调的词, 分类器的词, 留出的词)：第 10、20……首留出；其余的单数号给微调，双数号给分类器。"""
    mine = [piece for piece in pieces(text) if author(piece) == poet]
    numbered = list(enumerate(mine, 1))
    return ([p for i, p in numbered if i % HOLD_EVERY and i % 2], [p for i, p in numbered if i % HOLD_EVERY and not i % 2],
            [p for i, p in numbered if not i % HOLD_EVERY])


def base_corpus(text):
    """去掉留出词的语料，格式和 ci.txt 一样：基础模型在它上面预训练。"""
    return "\n\n".join(split_held_out(text)[0]) + "\n"


def body(piece):
    """正文：去掉“词牌 作者”那一行。"""
    return piece.partition("\n")[2]


def features(text):
    """每个字和每两个相邻的字（换行不算字，也不跨行配对）。"""
    found = []
    for line in text.split("\n"):
        found += list(line) + [line[i:i + 2] for i in range(len(line) - 1)]
    return found


class NaiveBayes:
    """两类（这位词人 / 其他人）的朴素贝叶斯：数每类里每个特征出现几次。
    一类没见过的特征不给它一个极小的数：按两类合起来的频率补上 SMOOTHING 次（狄利克雷平滑），
    词人的词少，用“加一”平滑会把他的每个特征都压得很低，分类器就从不说“是他”。"""

    def __init__(self, poet_texts, other_texts):
        self.counts = [Counter(f for t in texts for f in features(t)) for texts in (poet_texts, other_texts)]
        self.totals = [sum(c.values()) for c in self.counts]
        self.both = self.counts[0] + self.counts[1]
        self.vocabulary = len(self.both) + 1  # +1：两类都没见过的特征

    def log_odds(self, text):
        """每个特征平均的 log P(特征 | 这位词人) − log P(特征 | 其他人)：大于 0 就算他的。
        按特征个数平均：长的词不会因为长就更像谁。"""
        found = features(text)
        odds = 0.0
        for f in found:
            background = (self.both[f] + 1) / (sum(self.totals) + self.vocabulary)
            poet, other = ((count[f] + SMOOTHING * background) / (total + SMOOTHING)
                           for count, total in zip(self.counts, self.totals, strict=True))
            odds += math.log(poet / other)
        return odds / max(len(found), 1)

    def is_poet(self, text):
        return self.log_odds(text) > 0


def classifier(text, poet):
    """分类器（他那一类只用分类器的词，别人那一类用别人留下的词），和 {"held": 他的留出词, "finetune": 他的微调的词,
    "others": 别人的留出词} 的正文。"""
    finetune, mine, held = split_poet(text, poet)
    kept, held_all = split_held_out(text)
    model = NaiveBayes([body(p) for p in mine], [body(p) for p in kept if author(p) != poet])
    return model, {"held": [body(p) for p in held], "finetune": [body(p) for p in finetune],
                   "others": [body(p) for p in held_all if author(p) != poet]}


def share(model, texts):
    return sum(model.is_poet(t) for t in texts) / max(len(texts), 1)


def error(p, n):
    """比例 p（n 首里）的标准误差。"""
    return (p * (1 - p) / n) ** 0.5 if n else 0.0


def copied(texts, poet_pieces, run=COPY_RUN):
    """(写出的正文里连续 run 个字原样出现在他的词里的比例, 最长的原样照抄有几个字)。换行去掉再数：跨行照抄也算。"""
    flat = lambda t: t.replace("\n", "")
    source = "|".join(flat(body(p)) for p in poet_pieces)  # “|”：不让一首的末尾和下一首的开头连成一段
    grams = {source[i:i + run] for i in range(len(source) - run + 1)}
    windows = [flat(t)[i:i + run] for t in texts for i in range(len(flat(t)) - run + 1)]
    longest = 0
    for line in map(flat, texts):
        for start in range(len(line)):  # 从每个位置起，往后能在原文里找到多长
            length = longest + 1
            while start + length <= len(line) and line[start:start + length] in source:
                longest, length = length, length + 1
    return sum(w in grams for w in windows) / max(len(windows), 1), longest


def top_tunes(text, poet, count=TUNE_COUNT):
    """这位词人（留下的词里）最常用的 count 个词牌。"""
    tunes = Counter(p.partition("\n")[0].rsplit(" ", 1)[0] for p in split_held_out(text)[0] if author(p) == poet)
    return [tune for tune, _ in tunes.most_common(count)]


def known_poets(text, count=10):
    """首数最多的 count 位词人（“无名氏”不算一位）。"""
    return [name for name, _ in Counter(author(p) for p in pieces(text) if author(p) != "无名氏").most_common(count)]


def evaluate(writer, text, poet, count, seed):
    """一个写词的（form.NeuralWriter）用这位词人最常用的词牌、带上他的名字写词：
    {"style", "copy", "longest_copy", "exact", "tunes": {词牌: 首数}, "example": 一首}"""
    import form
    model = classifier(text, poet)[0]
    train = form.split(text)[0]  # 合不合律：和 scripts/form.py 同一个算法（训练集里有据可查的句式）
    tunes = top_tunes(text, poet)
    shapes = form.attested(train, tunes)
    patterns = form.learn_patterns(train, shapes)  # 押韵和平仄：也和 form.py 同一个算法
    bodies, fits = [], []
    for i, tune in enumerate(tunes):
        prompt = f"{tune} {poet}"
        if not writer.knows(prompt):
            sys.exit(f"错误：这个模型的词表里没有“{prompt}”里的字（是在别的语料上训练的吗？）")
        longest = max(len(body(p)) for p in pieces(text) if p.startswith(prompt + "\n"))
        for written in writer.write(prompt, count, longest + 20, seed + i):
            bodies.append(form.body_of(written, prompt))
            fits.append(form.judge_piece(bodies[-1], shapes[tune], patterns[tune]))
    rate, longest_copy = copied(bodies, [p for p in pieces(text) if author(p) == poet])
    liked = [b for b in bodies if model.is_poet(b)]
    style = len(liked) / len(bodies)
    return {"style": style, "style_error": error(style, len(bodies)), "pieces": len(bodies), "copy": rate,
            "longest_copy": longest_copy, **{key: sum(f[key] for f in fits) / len(fits) for key in ("exact", "rhyme", "tones", "full")},
            "tunes": tunes,
            "example": max(liked or bodies, key=model.log_odds)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "ci.txt"), help="语料（留出词、分类器都按它算），默认 ci.txt")
    parser.add_argument("--write-corpus", help="把去掉留出词的语料写到这里（不是 ci.txt），然后退出")
    parser.add_argument("--poet", default="辛弃疾", help="哪位词人，默认 辛弃疾")
    parser.add_argument("--checkpoint", help="一个版本（v1 起）的检查点：量它写的词")
    parser.add_argument("--version", help="检查点是哪个版本的（默认从文件名看出来）")
    parser.add_argument("--pieces", type=int, default=20, help="每个词牌写几首，默认 20")
    parser.add_argument("--temperature", type=float, default=1.0, help="写词的温度，默认 1.0")
    parser.add_argument("--seed", type=int, default=1337, help="随机种子，默认 1337")
    parser.add_argument("--json", action="store_true", help="只打印 json")
    args = parser.parse_args()
    try:
        text = Path(args.data).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        sys.exit(f"错误：读不了语料 {args.data}（{e}）")
    if args.write_corpus:
        out = Path(args.write_corpus)
        if out.resolve() == Path(args.data).resolve() or out.resolve() == (ROOT / "ci.txt").resolve():
            sys.exit("错误：--write-corpus 不能写回语料本身（ci.txt 从不改写）")
        kept, held = split_held_out(text)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(base_corpus(text), encoding="utf-8")
        tmp.replace(out)
        print(f"写好了：{out}（{len(kept):,} 首；留出 {len(held):,} 首，每位词人的第 {HOLD_EVERY}、{2 * HOLD_EVERY}……首）")
        return
    if args.poet not in {author(p) for p in pieces(text)}:
        sys.exit(f"错误：语料里没有 {args.poet} 的词；首数最多的十位：{'、'.join(known_poets(text))}")
    if args.pieces < 1 or args.temperature <= 0:
        sys.exit("错误：--pieces 至少 1，--temperature 要大于 0")
    model, sets = classifier(text, args.poet)
    found = {"poet": args.poet, "held_out": len(sets["held"]), "finetune_pieces": len(sets["finetune"]),
             "classifier_pieces": len(split_poet(text, args.poet)[1])}
    for key, which in (("ceiling", "held"), ("copying_finetune", "finetune"), ("false_positives", "others")):
        found[key] = share(model, sets[which])
        found[f"{key}_error"] = error(found[key], len(sets[which]))
    if args.checkpoint:
        import form
        found["model"] = evaluate(form.checkpoint_writer(args.checkpoint, args.version, args.temperature), text,
                                  args.poet, args.pieces, args.seed)
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
        return
    pm = lambda key, digits=0: f"{found[key]:.{digits}%} ± {found[key + '_error']:.{digits}%}"
    print(f"{args.poet}：分类器只学了他的 {found['classifier_pieces']} 首（双数号），从没见过微调的词和留出的词。\n"
          f"  天花板（他的 {found['held_out']} 首留出词认成他的）：{pm('ceiling')}\n"
          f"  照抄微调的词能得几分（他的 {found['finetune_pieces']} 首微调的词认成他的）：{pm('copying_finetune')}\n"
          f"  误报（别人的 {len(sets['others']):,} 首留出词认成他的）：{pm('false_positives', 1)}")
    if "model" in found:
        m = found["model"]
        print(f"\n| 检查点 | 风格分 | 合律 | 押韵 | 平仄 | 全合 | 抄（连续 {COPY_RUN} 个字） | 最长照抄 |\n"
              f"|---|---:|---:|---:|---:|---:|---:|---:|\n"
              f"| {args.checkpoint} | {m['style']:.0%} ± {m['style_error']:.0%} | {m['exact']:.0%} | {m['rhyme']:.0%} | "
              f"{m['tones']:.0%} | {m['full']:.0%} | {m['copy']:.1%} | {m['longest_copy']} 字 |\n\n"
              f"风格分：写出的 {m['pieces']} 首里被分类器认成他写的几成（± 是标准误差）。"
              f"词牌：{'、'.join(m['tunes'])}，每个 {args.pieces} 首。最像他的一首：\n\n{m['example']}")


if __name__ == "__main__":
    main()
