"""scripts/form.py：词牌格律这把尺子。小语料上的分数和手算的一样；手写的词押错一个韵、破两处平仄，分数正好是那样；
真语料上天花板高于 0.9，v0 和随机的字低于它。"""

from collections import Counter

import form
from conftest import ROOT, in_process, one_line_error, samples, tiny_args

SIX_SEVENS = "一二三四五六七，一二三四五六七。\n一二三四五六七，一二三四五六七。\n一二三四五六七，一二三四五六七。"
SHORT = "一二三，四五。"


def tiny_corpus():
    """浣溪沙：训练集里 7×6 的 4 首、3-2 的 3 首、5 字一句的 2 首（不到 3 首，不算数）；验证集 2 首。"""
    train = [SIX_SEVENS] * 4 + [SHORT] * 3 + ["一二三四五。"] * 2
    val = [SIX_SEVENS, "一二三四五六七，一二三四五六七。"]
    blocks = [f"浣溪沙 某{i}\n{body}" for i, body in enumerate(train)]
    text = "\n\n".join(blocks)
    filler = "\n\n".join(f"别的 某\n{'字' * 40}。" for _ in range(60))  # 把最后两首推进后 10%（验证集）
    text = text + "\n\n" + filler + "\n\n" + "\n\n".join(f"浣溪沙 后{i}\n{body}" for i, body in enumerate(val))
    return text


def test_shapes_and_the_attested_ones():
    assert form.shape(SIX_SEVENS) == (7,) * 6
    assert form.shape("一二，三\n四五六。") == (2, 1, 3)  # 没有标点的换行也断句
    train, val = form.split(tiny_corpus())
    shapes = form.attested(train)["浣溪沙"]
    assert shapes == Counter({(7,) * 6: 4, (3, 2): 3})  # 5 字一句的只有 2 首：不算
    assert [body for name, body, _, _ in val if name == "浣溪沙"] == [SIX_SEVENS, "一二三四五六七，一二三四五六七。"]


def test_scores_computed_by_hand():
    shapes = Counter({(7,) * 6: 4, (3, 2): 3})
    assert form.score((7,) * 6, shapes) == (1, 1.0, (7,) * 6)  # 合律
    fit, clause, nearest = form.score((7, 7, 8, 7, 5, 8), shapes)  # 差一点：第 1、2、4 句对
    assert (fit, clause, nearest) == (0, 3 / 6, (7,) * 6)
    assert form.score((7,) * 5, shapes) == (0, 5 / 6, (7,) * 6)  # 少一句：那一句算错
    assert form.score((7,) * 7, shapes) == (0, 6 / 7, (7,) * 6)  # 多一句：也算错
    assert form.score((3, 9), shapes) == (0, 1 / 2, (3, 2))  # 最近的是 3-2（第 1 句对）
    assert form.score((), shapes)[:2] == (0, 0.0)


class FakeWriter:
    """按顺序交出写好的词，像模型一样从开头写起。"""

    def __init__(self, texts):
        self.texts = texts

    def knows(self, prompt):
        return prompt.startswith("浣溪沙")

    def write(self, prompt, count, length, seed):
        return [prompt + text for text in self.texts[:count]]


def test_evaluate_on_written_pieces():
    written = [f"某人\n{SIX_SEVENS}\n\n浣溪沙 下一首\n……",  # 合律；空行后面的不算
               "某人\n一二三四五六七，一二三四五六七八，一二三四五六七。\n一二三四五六七，一二三四五，一二三四五六七八。",
               "某人\n一二三四五六七，一二三四五六七。\n一二三四五六七，一二三四五六七。\n一二三四五六七。"]  # 少一句
    results = form.evaluate(FakeWriter(written), tiny_corpus(), 3, seed=0)
    mine = results["浣溪沙"]
    assert [p["shape"] for p in mine["pieces"]] == [(7,) * 6, (7, 8, 7, 7, 5, 8), (7,) * 5]
    assert mine["exact"] == 1 / 3
    assert abs(mine["clause"] - (1 + 3 / 6 + 5 / 6) / 3) < 1e-12
    assert results["鹧鸪天"] is None  # 写不出开头的词牌不算
    found = form.overall(results)
    assert (found["exact"], found["clause"]) == (1 / 3, mine["clause"])
    roof = form.ceiling(tiny_corpus())["浣溪沙"]
    assert roof["exact"] == 1 / 2 and roof["clause"] == (1 + 2 / 6) / 2  # 验证集：一首合律，一首只有两句


def test_real_corpus_ceiling_and_counting_floor():
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    roof = form.overall(form.ceiling(text))
    assert roof["exact"] > 0.9 and roof["clause"] > roof["exact"]
    floor = form.overall(form.evaluate(form.CountingWriter(text, 1.0), text, 5, seed=1337))
    assert floor["exact"] < roof["exact"] and floor["clause"] < 0.5


def test_a_tune_name_with_its_space_is_a_prompt(small_corpus, tmp_path):
    """--prompts="浣溪沙 " 和交互输入的“鹧鸪天 ”：后面的空格留着，模型接着写作者（和 ci.txt 里一样）。"""
    v1 = ROOT / "babygpt_v1.py"
    r = in_process(v1, *tiny_args(v1, max_iters=10), "--prompts=浣溪沙 ", "--interactive", f"--data={small_corpus}",
                   f"--out_dir={tmp_path}", stdin="鹧鸪天 \n")
    assert r.returncode == 0, r.stderr
    assert set(samples(r.stdout)) == {"浣溪沙 ", "鹧鸪天 "}
    assert all(text.startswith(prompt) for prompt, text in samples(r.stdout).items())


def test_report_is_a_table_with_examples_and_the_cli_says_what_is_wrong(tmp_path):
    written = [f"某人\n{SIX_SEVENS}", "某人\n一二三四五六七，一二三四五六七八，一二三四五六七。"]
    results = form.evaluate(FakeWriter(written), tiny_corpus(), 2, seed=0)
    text = form.report("测试", results, form.ceiling(tiny_corpus()), results, None)
    # 第二首 7-8-7 和 7×6 比：对 2 句，2/6；“一二三……”的字韵书里大多有，韵脚“七”在同一部：押上
    assert "| 浣溪沙 | 50% | 67% |" in text
    assert "| 鹧鸪天 | 词表里没有 | — | — | — | — |" in text
    assert "合律的一首（押韵、平仄最好的）：浣溪沙\n一二三四五六七" in text
    assert "句式 7-8-7；最近的 7-7-7-7-7-7（句子分 33%）" in text
    assert "对照" not in text  # 没给随机字的对照，就不印那一行
    r = in_process(ROOT / "scripts" / "form.py", "--checkpoint", tmp_path / "babygpt_v19_gqa.pt")
    one_line_error(r, 1, "没有检查点")


# ---------- 押韵和平仄 ----------

QIN_GUAN = "漠漠轻寒上小楼。\n晓阴无赖似穷秋。\n淡烟流水画屏幽。\n自在飞花轻似梦，无边丝雨细如愁。\n宝帘闲挂小银钩。"
# 浣溪沙 7×6：第 1、2、3、5、6 句押韵（秦观这首押第十二部：楼秋幽愁钩），平仄是训练集里九成以上的真词都守的位置
HUANXISHA = form.Pattern([[0, 1, 2, 4, 5]], ["中仄平平仄仄平", "中平中仄仄平平", "中平中仄仄平平",
                                            "中仄中平平仄仄", "中平中仄仄平平", "中平中仄仄平平"])


def test_the_rhyme_book_loads_and_covers_the_corpus():
    parts, tones = form.rhyme_book()
    assert len({p for ps in parts.values() for p in ps}) == 19 and len(parts) > 5000
    assert tones["月"] == {"仄"} and parts["月"] == ["第十八部"]  # 入声算仄
    assert tones["看"] == {"平", "仄"}  # 又平又仄
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    han = Counter(ch for ch in text if "\u4e00" <= ch <= "\u9fff")
    covered = sum(n for ch, n in han.items() if ch in parts) / sum(han.values())
    both = sum(n for ch, n in han.items() if len(tones.get(ch, ())) == 2) / sum(han.values())
    assert 0.985 < covered < 0.99 and 0.08 < both < 0.10  # 98.9%；约 9% 的字（按次数）又平又仄


def test_a_real_piece_keeps_its_form_and_one_wrong_rhyme_two_wrong_tones_score_exactly_so():
    marks = form.mark(QIN_GUAN, HUANXISHA)
    assert form.form_scores(marks) == (1.0, 1.0)
    assert [m["rhyme"] for m in marks] == [("第十二部", True)] * 3 + [None] + [("第十二部", True)] * 2
    wrong = (QIN_GUAN.replace("穷秋", "穷年")  # 第 2 句的韵脚换成第七部的“年”（也是平声：只错韵）
             .replace("轻寒", "雪寒")  # 第 1 句第 3 字应平，“雪”是入声（仄）
             .replace("淡烟", "淡月"))  # 第 3 句第 2 字应平，“月”也是入声
    marks = form.mark(wrong, HUANXISHA)
    fixed = sum(t != "中" for line in HUANXISHA.tones for t in line)
    assert fixed == 31
    assert form.form_scores(marks) == (4 / 5, (fixed - 2) / fixed)
    assert marks[1]["rhyme"] == ("第七部", False)
    assert [m["broken"] for m in marks if m["broken"]] == [[(2, "雪", "平")], [(1, "月", "平")]]


def test_both_readings_match_either_and_an_unknown_character_is_not_counted():
    both = QIN_GUAN.replace("无边", "无看")  # 第 5 句第 2 字应平，“看”又平又仄：算对
    assert form.form_scores(form.mark(both, HUANXISHA)) == (1.0, 1.0)
    unknown = QIN_GUAN.replace("宝帘", "宝䕷").replace("小楼", "小䕷")  # 韵书里没有的字：一处定了的平仄、一个韵脚
    marks = form.mark(unknown, HUANXISHA)
    assert sum(m["judged"] for m in marks) == 31 - 1 - 1  # “䕷”在两个定了的位置上（第 1 句末字也定了平）
    assert marks[0]["rhyme"] == (None, None) and form.form_scores(marks) == (1.0, 1.0)


def test_the_tunes_rules_come_from_the_training_pieces_rhyme_changes_included():
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    _, shapes, patterns = form.rules(text)
    assert patterns["浣溪沙"][(7,) * 6].groups == HUANXISHA.groups
    assert patterns["鹧鸪天"][(7, 7, 7, 7, 3, 3, 7, 7, 7)].groups == [[0, 1, 3, 5, 6, 8]]
    assert patterns["菩萨蛮"][(7, 7, 5, 5, 5, 5, 5, 5)].groups == [[0, 1], [2, 3], [4, 5], [6, 7]]  # 两句一换韵
    assert patterns["清平乐"][(4, 5, 7, 6, 6, 6, 6, 6)].groups == [[0, 1, 2, 3], [4, 5, 7]]  # 上片仄韵，下片换平韵
    assert patterns["西江月"][(6, 6, 7, 6, 6, 6, 7, 6)].groups == [[1, 2, 3, 5, 6, 7]]  # 平仄同部通押
    learned = patterns["浣溪沙"][(7,) * 6].tones
    assert all(line[-1] == want[-1] for line, want in zip(learned, HUANXISHA.tones, strict=True))  # 句末的平仄
    # 一个词牌换韵：四组各押各的部，都押上就是 100%；当成一组只有最多的那一部算押上（织碧立急都在第十七部）：一半
    pusaman = "平林漠漠烟如织，寒山一带伤心碧。\n暝色入高楼。有人楼上愁。\n玉阶空伫立。宿鸟归飞急。\n何处是归程。长亭更短亭。"
    piece = form.judge_piece(pusaman, shapes["菩萨蛮"], patterns["菩萨蛮"])
    assert piece["exact"] == 1 and piece["rhyme"] == 1.0
    one_group = form.Pattern([list(range(8))], patterns["菩萨蛮"][(7, 7, 5, 5, 5, 5, 5, 5)].tones)
    assert form.form_scores(form.mark(pusaman, one_group))[0] == 4 / 8


def test_ceiling_above_chance_and_a_piece_that_does_not_fit_scores_zero():
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    roof, chance = form.overall(form.ceiling(text)), form.overall(form.random_characters(text))
    assert chance["exact"] == roof["exact"]  # 随机的字填进真词的句式：句式一样
    assert roof["rhyme"] > 0.8 and chance["rhyme"] < 0.3 and roof["tones"] > 0.85 and chance["tones"] < 0.6
    assert roof["full"] > 0.6 and chance["full"] < 0.01 and roof["unknown"] < 0.02
    _, shapes, patterns = form.rules(text)
    short = form.judge_piece(QIN_GUAN.rsplit("\n", 1)[0], shapes["浣溪沙"], patterns["浣溪沙"])  # 少了最后一句
    assert (short["exact"], short["rhyme"], short["tones"], short["full"]) == (0, 0.0, 0.0, 0)


def test_mark_a_piece_from_the_command_line():
    r = in_process(ROOT / "scripts" / "form.py", "--mark", "浣溪沙", "--text", QIN_GUAN.replace("穷秋", "穷年"))
    assert r.returncode == 0, r.stderr
    assert "晓阴无赖似穷年  中平中仄仄平平  韵 年：第七部，没押上" in r.stdout
    assert "句式 7-7-7-7-7-7；押韵 80%，平仄 100%，不是全合" in r.stdout
    one_line_error(in_process(ROOT / "scripts" / "form.py", "--mark", "浣溪沙", "--text", "一二三。"), 1, "没有 3 这种句式")
    one_line_error(in_process(ROOT / "scripts" / "form.py", "--mark", "虞美人", "--text", "一二三。"), 1, "--mark 要一个词牌")
