"""第二把尺子：模型写的词守不守词牌的格律？句式（每一句几个字）、押韵、平仄，都只用语料本身来定。

用法
  python scripts/form.py --checkpoint checkpoints/babygpt_v19_gqa.pt      # 任何版本（v1 起）的检查点
  python scripts/form.py --counting                                       # v0：用它自己数出来的次数写
  python scripts/form.py --checkpoint ... --pieces 50 --temperature 0.7 --json   # json 给 scripts/ladder.py 用
  python scripts/form.py --mark 浣溪沙 --text "一曲新词酒一杯。去年天气旧亭台。……"   # 给一首（自己写的）词标出格律

一首词按一个词牌（曲调）写，词牌定了三样东西，诗人读词也看这三样：
  句式：每一句几个字。浣溪沙六句、每句七个字；鹧鸪天 7-7-7-7-3-3-7-7-7。
  押韵：哪几句的末字押韵（韵脚），押的是同一“部”的字；有的词牌中途换韵（菩萨蛮两句一换）。
  平仄：句中哪些位置必须是平声字、哪些必须是仄声字（其余可平可仄）。
字的读音查韵书：词林正韵（scripts/cilin_rhyme.txt），19 部，每部分平声、仄声（上、去）、入声字；入声算仄。
一个字有几种读法（在几部里，或又平又仄），哪一种对上都算对。韵书里没有的字是“不知道”：不算对也不算错。
词牌要什么，只看训练集的真词（韵书只管字怎么读）：
  “句”：词的正文（作者那一行以后）在 ，。？！、；： 和换行处切开，每一段的字数（□ 也算一个字）；这一串字数叫“句式”。
  有据可查的句式：训练集（ci.txt 的前 90%，只算完全落在里面的词）里这个词牌用这个句式的词至少 3 首。
  韵脚：同一个句式里，两句的末字在至少一半（RHYME_SHARE）的真词里同部，就算这两句押韵；连起来的几句是一组韵
    （一组内同部；换韵的词牌自己会分成几组）。
  定了的平仄：同一个句式里，某个位置至少九成（TONE_AGREE）的真词读得成平（或仄）、且至少 TONE_MIN 首用了
    韵书里有的字，这个位置就定为平（或仄）；其余的是“中”（可平可仄）。
每首词的分数：
  - 合律：句式是这个词牌有据可查的句式之一（1 或 0）；
  - 句子分：和“最近的”有据可查的句式逐句比较，字数相同的句子数 ÷ 两者中较长的句数（少写、多写的句子都算错）；
  - 押韵：韵脚里押上的几成。一组韵押的是组里最多韵脚共有的那一部（至少两个韵脚共有才算押上）；
  - 平仄：定了的位置守住的几成；
  - 全合：合律、每个韵脚都押上、定了的平仄至少守住九成（FULL_TONES）。
  句式不合的词，押韵和平仄都记 0（没有对得上的格律可比）。都对词牌求平均，再对八个词牌求平均（每个词牌一样重）。
对照：
  天花板：验证集（后 10%，只算完全落在里面的词）里这八个词牌的真词，用同样的算法打分；
  地板：v0（数数的二元模型）用同样的开头、同样的办法写出来的词；
  随机字：把验证集真词的每个字换成随机的字（按训练集里字的频率抽），标点和换行不动：句式全对，押韵和平仄是碰运气。
"""

import argparse
import json
import random
import re
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

from versions import ROOT, from_checkpoint, load, versions

TUNES = ["浣溪沙", "鹧鸪天", "菩萨蛮", "西江月", "减字木兰花", "蝶恋花", "清平乐", "点绛唇"]
CLAUSE = re.compile(r"[，。？！、；：\n]")  # 句子在这些标点和换行处断开
MIN_COUNT = 3  # 训练集里至少几首，才算“有据可查”
RHYME_BOOK = Path(__file__).with_name("cilin_rhyme.txt")  # 词林正韵：来源和许可证写在文件开头
RHYME_SHARE = 0.5  # 两句的末字在至少这么多成的真词里同部，才算这个词牌在这两句押韵
TONE_AGREE = 0.9  # 一个位置至少这么多成的真词读得成同一个声调，才算定了平仄（这个数怎么选：见 tone_thresholds）
TONE_MIN = 10  # 至少这么多首真词在这个位置用了韵书里有的字，才定它的平仄（少了，碰巧一样的太多）
FULL_TONES = 0.9  # 全合：句式对、每个韵脚都押上、定了的平仄至少守住这么多成


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


# ---------- 押韵和平仄：韵书说字怎么读，训练集的真词说词牌要什么 ----------

@lru_cache(maxsize=4)
def rhyme_book(path=RHYME_BOOK):
    """(部, 声调)：{字: 它在哪几部（按韵书的顺序）}，{字: 它读得成的声调，"平"、"仄" 或两个都有}。入声算仄。"""
    parts, tones = {}, {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        part, tone, chars = line.split(" ")
        for ch in chars:
            parts.setdefault(ch, [])
            if part not in parts[ch]:
                parts[ch].append(part)
            tones.setdefault(ch, set()).add("平" if tone == "平" else "仄")
    return parts, tones


def clauses(body):
    """正文的每一句（在标点和换行处切开），和 shape 切得一样。"""
    return [clause for clause in CLAUSE.split(body) if clause]


class Pattern:
    """一个词牌的一个句式要什么：groups 是几组韵脚（每组是押韵的那几句的序号），tones 是每一句每个位置的平、仄或中。"""

    def __init__(self, groups, tones):
        self.groups, self.tones = groups, tones

    def __repr__(self):
        return f"Pattern(groups={self.groups}, tones={self.tones})"


def learn_pattern(bodies, book=None, agree=TONE_AGREE):
    """同一个词牌、同一个句式的一组真词 -> Pattern（见文件开头：韵脚和定了的平仄）。"""
    parts, tones = book or rhyme_book()
    split_up = [clauses(body) for body in bodies]
    count = len(split_up[0])
    linked = list(range(count))  # 并查集：押韵的两句连在一起

    def root(i):
        while linked[i] != i:
            i = linked[i]
        return i

    for i in range(count):
        for j in range(i + 1, count):
            ends = [(c[i][-1], c[j][-1]) for c in split_up if c[i][-1] in parts and c[j][-1] in parts]
            shared = sum(bool(set(parts[a]) & set(parts[b])) for a, b in ends)
            if ends and shared / len(ends) >= RHYME_SHARE:
                linked[root(j)] = root(i)
    groups = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    rhyming = [members for members in groups.values() if len(members) > 1]
    fixed = []
    for i in range(count):
        line = ""
        for k in range(len(split_up[0][i])):
            read = [tones[c[i][k]] for c in split_up if c[i][k] in tones]
            level, oblique = (sum(t in r for r in read) / max(len(read), 1) for t in ("平", "仄"))
            if len(read) < TONE_MIN or max(level, oblique) < agree:
                line += "中"
            else:
                line += "平" if level >= oblique else "仄"
        fixed.append(line)
    return Pattern(rhyming, fixed)


def learn_patterns(train, shapes, book=None, agree=TONE_AGREE):
    """{词牌: {句式: Pattern}}：每个有据可查的句式，用训练集里这个词牌、这个句式的真词定。"""
    found = {}
    for tune, counted in shapes.items():
        bodies = {}
        for name, body, _, _ in train:
            if name == tune and shape(body) in counted:
                bodies.setdefault(shape(body), []).append(body)
        found[tune] = {s: learn_pattern(b, book, agree) for s, b in bodies.items()}
    return found


def mark(body, pattern, book=None):
    """一首句式对得上的词，逐句标出格律：[{"text", "tones"（这一句要的平仄）, "broken": [(位置, 字, 要的声调)],
    "rhyme": None（不是韵脚）或 (部, 押上了吗：True / False / None = 韵书里没有这个字)}]。"""
    parts, tones = book or rhyme_book()
    split_up = clauses(body)
    marks = [{"text": text, "tones": want, "rhyme": None,
              "judged": sum(t != "中" and ch in tones for ch, t in zip(text, want, strict=True)),
              "broken": [(k, ch, t) for k, (ch, t) in enumerate(zip(text, want, strict=True))
                         if t != "中" and ch in tones and t not in tones[ch]]}
             for text, want in zip(split_up, pattern.tones, strict=True)]
    for group in pattern.groups:
        ends = {i: split_up[i][-1] for i in group}
        known = [i for i in group if ends[i] in parts]
        shared = Counter(part for i in known for part in parts[ends[i]])
        order = {part: n for n, part in enumerate(dict.fromkeys(p for i in known for p in parts[ends[i]]))}
        best = max(shared, key=lambda part: (shared[part], -order[part]), default=None)
        for i in group:
            if ends[i] not in parts or len(known) < 2:
                marks[i]["rhyme"] = (None, None)  # 韵书里没有，或同组只剩它一个知道读音：不算
            else:
                rhymed = shared[best] >= 2 and best in parts[ends[i]]
                marks[i]["rhyme"] = (best if rhymed else parts[ends[i]][0], rhymed)
    return marks


def form_scores(marks):
    """(押韵, 平仄)：押上的韵脚几成、守住的定了的位置几成。一个也没法判（都不知道读音）时记 1：不算错。"""
    rhymes = [m["rhyme"][1] for m in marks if m["rhyme"] and m["rhyme"][1] is not None]
    fixed = sum(m["judged"] for m in marks)
    broken = sum(len(m["broken"]) for m in marks)
    return (sum(rhymes) / len(rhymes) if rhymes else 1.0), ((fixed - broken) / fixed if fixed else 1.0)


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


KEYS = ("exact", "clause", "rhyme", "tones", "full")  # 每首词的五个分数：合律、句子分、押韵、平仄、全合


def judge_piece(body, shapes, patterns, book=None):
    """一首词的正文 -> {"body", "shape", "nearest", "marks"（句式合律时才有）, 和 KEYS 里的五个分数}。"""
    piece_shape = shape(body)
    fit, clause, nearest = score(piece_shape, shapes)
    found = {"body": body, "shape": piece_shape, "nearest": nearest, "exact": fit, "clause": clause,
             "rhyme": 0.0, "tones": 0.0, "full": 0, "marks": None}
    if fit:
        found["marks"] = mark(body, patterns[piece_shape], book)
        found["rhyme"], found["tones"] = form_scores(found["marks"])
        found["full"] = int(found["rhyme"] == 1.0 and found["tones"] >= FULL_TONES)
    return found


def judge(bodies, shapes, patterns, book=None):
    """一个词牌的一组正文 -> {KEYS 里每个分数的平均, "pieces": [judge_piece(...)], "unknown": 韵书里没有的字几成}"""
    parts = (book or rhyme_book())[0]
    scored = [judge_piece(body, shapes, patterns, book) for body in bodies]
    count = max(len(scored), 1)
    han = [ch for body in bodies for ch in body if "\u4e00" <= ch <= "\u9fff" or ch == "□"]
    return {**{key: sum(p[key] for p in scored) / count for key in KEYS}, "pieces": scored,
            "unknown": sum(ch not in parts for ch in han) / max(len(han), 1)}


@lru_cache(maxsize=2)
def rules(text):
    """(训练集, 有据可查的句式, 每个句式的 Pattern)：只看训练集的真词。同一份语料只算一次。"""
    train, _ = split(text)
    shapes = attested(train)
    return train, shapes, learn_patterns(train, shapes)


def evaluate(writer, text, count, seed):
    """{词牌: judge(...)}。写不出开头（词表里没有）的词牌记 None。"""
    train, shapes, patterns = rules(text)
    results = {}
    for i, tune in enumerate(TUNES):
        prompt = f"{tune} "
        if not writer.knows(prompt):
            results[tune] = None
            continue
        written = writer.write(prompt, count, max_new_tokens(train, tune), seed + i)
        results[tune] = judge([body_of(w, prompt) for w in written], shapes[tune], patterns[tune])
    return results


def real_bodies(text, tune):
    """验证集里这个词牌的真词的正文。"""
    return [body for name, body, _, _ in split(text)[1] if name == tune]


def ceiling(text):
    """验证集里这八个词牌的真词。"""
    _, shapes, patterns = rules(text)
    return {tune: judge(real_bodies(text, tune), shapes[tune], patterns[tune]) for tune in TUNES}


def random_characters(text, seed=0):
    """对照：验证集的真词，每个字换成随机的字（按训练集里汉字的频率抽），标点和换行不动。句式全对，韵和平仄碰运气。"""
    train, shapes, patterns = rules(text)
    counted = Counter(ch for _, body, _, _ in train for ch in body if "\u4e00" <= ch <= "\u9fff")
    chars, weights = zip(*sorted(counted.items()), strict=True)
    rng = random.Random(seed)
    results = {}
    for tune in TUNES:
        poured = []
        for body in real_bodies(text, tune):
            picks = iter(rng.choices(chars, weights, k=len(body)))
            poured.append("".join(ch if CLAUSE.match(ch) else next(picks) for ch in body))
        results[tune] = judge(poured, shapes[tune], patterns[tune])
    return results


def tone_thresholds(text, values=(0.7, 0.8, 0.85, 0.9, 0.95, 0.98)):
    """TONE_AGREE 怎么选：每个门槛下定了几成位置、验证集真词守住几成、随机的字碰上几成（都只算合律的词）。
    门槛低，定了的位置多，真词也常常“破”；门槛高，只剩几乎不变的位置，随机的字也更难碰上，但定下的位置少。"""
    train, shapes, _ = rules(text)
    poured = random_characters(text)
    rows = []
    for agree in values:
        patterns = learn_patterns(train, shapes, agree=agree)
        positions = [t for tune in TUNES for p in patterns[tune].values() for line in p.tones for t in line]
        found = {"agree": agree, "fixed": sum(t != "中" for t in positions) / len(positions)}
        for name, pieces in (("real", {t: real_bodies(text, t) for t in TUNES}),
                             ("random", {t: [x["body"] for x in poured[t]["pieces"]] for t in TUNES})):
            scored = [judge_piece(b, shapes[t], patterns[t]) for t in TUNES for b in pieces[t]]
            fits = [x for x in scored if x["exact"]]
            found[name] = sum(x["tones"] for x in fits) / len(fits)
            found[f"{name}_full"] = sum(x["full"] for x in fits) / len(fits)
        rows.append(found)
    return rows


def overall(results):
    """八个词牌的平均（每个词牌一样重），加上“合律的词里”的押韵和平仄（rhyme_fit、tones_fit）和不知道读音的字几成。"""
    done = [r for r in results.values() if r is not None]
    if not done:
        return {key: None for key in (*KEYS, "rhyme_fit", "tones_fit", "unknown")}
    found = {key: sum(r[key] for r in done) / len(done) for key in (*KEYS, "unknown")}
    fits = [p for r in done for p in r["pieces"] if p["exact"]]
    for key in ("rhyme", "tones"):
        found[f"{key}_fit"] = sum(p[key] for p in fits) / len(fits) if fits else None
    return found


def percent(x):
    return "—" if x is None else f"{x:.0%}"


def example(results, want_fit):
    """一首合律的（押韵和平仄最好的），或一首最接近合律（句子分最高）却不合律的：judge_piece 的结果加上 "tune"。"""
    best = None
    for tune, result in results.items():
        for piece in (result or {"pieces": []})["pieces"]:
            rank = (piece["full"], piece["rhyme"] + piece["tones"]) if want_fit else (piece["clause"],)
            if piece["exact"] == want_fit and piece["body"] and (best is None or rank > best[0]):
                best = (rank, {**piece, "tune": tune})
    return best and best[1]


def show_marks(marks):
    """逐句：这一句、它要的平仄（平、仄、中 = 可平可仄）、韵脚押上没有（和它的部）、破了的平仄。"""
    width = max(len(m["text"]) for m in marks)
    lines = []
    for m in marks:
        cells = [m["text"] + "\u3000" * (width - len(m["text"])), m["tones"] + "\u3000" * (width - len(m["tones"]))]
        if m["rhyme"]:
            part, ok = m["rhyme"]
            cells.append(f"韵 {m['text'][-1]}：" + ("韵书里没有" if ok is None else f"{part}{'，押上' if ok else '，没押上'}"))
        if m["broken"]:
            cells.append("破：" + "、".join(f"第 {k + 1} 字“{ch}”应{t}" for k, ch, t in m["broken"]))
        lines.append("  ".join(cells))
    return lines


def verdict(piece):
    """一首合律的词最后那一行：句式、押韵、平仄、全合没有。"""
    return (f"句式 {'-'.join(map(str, piece['shape']))}；押韵 {percent(piece['rhyme'])}，平仄 {percent(piece['tones'])}，"
            f"{'全合' if piece['full'] else '不是全合'}")


def report(name, results, roof, floor, chance):
    pieces = len(next(r for r in results.values() if r)["pieces"])
    lines = [f"{name}：每个词牌写 {pieces} 首", "",
             "| 词牌 | 合律 | 句子分 | 押韵 | 平仄 | 全合 |", "|---|---:|---:|---:|---:|---:|"]
    for tune in TUNES:
        mine = results[tune]
        lines.append(f"| {tune} | " + ("词表里没有 | — | — | — | —" if mine is None else
                                       " | ".join(percent(mine[key]) for key in KEYS)) + " |")
    lines += ["", "八个词牌的平均（句式不合的词，押韵、平仄记 0；括号里是只算合律的词）：", "",
              "| | 合律 | 句子分 | 押韵 | 平仄 | 全合 | 韵书里没有的字 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, found in ((name, results), ("天花板：验证集的真词", roof), ("地板：v0 数数", floor),
                         ("对照：真词的句式里填随机的字", chance)):
        if found is None:
            continue
        o = overall(found)
        cells = [percent(o["exact"]), percent(o["clause"]), f"{percent(o['rhyme'])}（{percent(o['rhyme_fit'])}）",
                 f"{percent(o['tones'])}（{percent(o['tones_fit'])}）", percent(o["full"]), f"{o['unknown']:.1%}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for title, want in (("合律的一首（押韵、平仄最好的）", 1), ("最接近合律、却不合律的一首", 0)):
        found = example(results, want)
        lines += ["", f"{title}：" + ("（没有）" if found is None else found["tune"])]
        if found and want:
            lines += show_marks(found["marks"]) + [verdict(found)]
        elif found:
            lines += [found["body"], (f"句式 {'-'.join(map(str, found['shape']))}；最近的 "
                                      f"{'-'.join(map(str, found['nearest']))}（句子分 {found['clause']:.0%}）")]
    return "\n".join(lines)


def summary(results):
    """--json 的内容：每个词牌和平均的分数，加上每首的句式。"""
    return {"overall": overall(results),
            "tunes": {tune: None if r is None else {**{key: r[key] for key in (*KEYS, "unknown")},
                                                    "shapes": ["-".join(map(str, p["shape"])) for p in r["pieces"]]}
                      for tune, r in results.items()}}


def measure(argv=None):
    """命令行参数 -> (参数, 语料, 结果, 名字)；出错时一行中文退出（sys.exit）。scripts/ladder.py 在它自己的进程里调用。"""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=not {"--tone-thresholds", "--mark"} & set(argv or sys.argv))
    which.add_argument("--checkpoint", help="一个版本（v1 起）的检查点，例如 checkpoints/babygpt_v19_gqa.pt")
    which.add_argument("--counting", action="store_true", help="量 v0（数数）写的词")
    parser.add_argument("--version", help="检查点是哪个版本的（默认从文件名看出来，例如 babygpt_v19_gqa.pt 是 v19）")
    parser.add_argument("--data", default=str(ROOT / "ci.txt"), help="语料（定格律用），默认 ci.txt")
    parser.add_argument("--pieces", type=int, default=20, help="每个词牌写几首，默认 20")
    parser.add_argument("--temperature", type=float, default=1.0, help="写词的温度，默认 1.0")
    parser.add_argument("--seed", type=int, default=1337, help="随机种子，默认 1337")
    parser.add_argument("--json", action="store_true", help="只打印 json（合律、句子分、押韵、平仄、全合，每首的句式）")
    parser.add_argument("--mark", metavar="词牌", help="不写词：给 --text 的那首词标出格律（八个词牌之一）")
    parser.add_argument("--text", help="和 --mark 一起：一首词的正文（句子用 ，。 或换行隔开）")
    parser.add_argument("--tone-thresholds", action="store_true",
                        help="不写词：打印定平仄的门槛（TONE_AGREE）取不同的值时，真词和随机的字各守住几成")
    args = parser.parse_args(argv)
    if args.pieces < 1 or args.temperature <= 0:
        sys.exit("错误：--pieces 至少 1，--temperature 要大于 0")
    try:
        text = Path(args.data).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        sys.exit(f"错误：读不了语料 {args.data}（{e}）")
    if args.tone_thresholds or args.mark:
        if args.mark and (args.mark not in TUNES or not args.text):
            sys.exit(f"错误：--mark 要一个词牌（{'、'.join(TUNES)}）和 --text（词的正文）")
        return args, text, None, None
    if args.counting:
        writer, name = CountingWriter(text, args.temperature), "v0（数数）"
    else:
        writer = checkpoint_writer(args.checkpoint, args.version, args.temperature)
        name = f"{writer.version}（训练了 {writer.steps} 步）"
    results = evaluate(writer, text, args.pieces, args.seed)
    if all(r is None for r in results.values()):
        sys.exit("错误：这个模型的词表里一个词牌名都没有（是在别的语料上训练的吗？）")
    return args, text, results, name


def full_report(name, results, text, temperature, count, seed):
    """report 加上天花板、地板（v0 用同样的温度、首数、种子写）和随机字的对照：python scripts/form.py 打印的就是它。"""
    floor = evaluate(CountingWriter(text, temperature), text, count, seed)
    return report(name, results, ceiling(text), floor, random_characters(text))


def as_json(results, text):
    """--json 打印的内容：summary 加上验证集的天花板。"""
    return {**summary(results), "ceiling": overall(ceiling(text)), "random_characters": overall(random_characters(text))}


def main():
    args, text, results, name = measure()
    if args.mark:
        _, shapes, patterns = rules(text)
        piece = judge_piece(args.text.strip(), shapes[args.mark], patterns[args.mark])
        shown = "-".join(map(str, piece["shape"]))
        if not piece["exact"]:
            sys.exit(f"错误：{args.mark}没有 {shown} 这种句式（训练集里至少 {MIN_COUNT} 首才算）；最近的 "
                     f"{'-'.join(map(str, piece['nearest']))}，句子分 {piece['clause']:.0%}")
        print("\n".join(show_marks(piece["marks"]) + [verdict(piece)]))
        return
    if args.tone_thresholds:
        print("| 门槛 | 定了的位置 | 真词守住 | 真词全合 | 随机的字碰上 | 随机的字全合 |\n|---:|---:|---:|---:|---:|---:|")
        for row in tone_thresholds(text):
            print(f"| {row['agree']:.0%} | {row['fixed']:.0%} | {row['real']:.1%} | {row['real_full']:.0%} | "
                  f"{row['random']:.1%} | {row['random_full']:.1%} |")
        print("（只算句式合律的词；验证集的真词，和把它们的字换成随机字的对照）")
        return
    if args.json:
        print(json.dumps(as_json(results, text), ensure_ascii=False))
        return
    print(full_report(name, results, text, args.temperature, args.pieces, args.seed))


if __name__ == "__main__":
    main()
