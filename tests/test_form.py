"""scripts/form.py：词牌格律这把尺子。小语料上的分数和手算的一样；真语料上天花板高于 0.9，v0 的合律率低于它。"""

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
    assert [p[1] for p in mine["pieces"]] == [(7,) * 6, (7, 8, 7, 7, 5, 8), (7,) * 5]
    assert mine["exact"] == 1 / 3
    assert abs(mine["clause"] - (1 + 3 / 6 + 5 / 6) / 3) < 1e-12
    assert results["鹧鸪天"] is None  # 写不出开头的词牌不算
    assert form.overall(results) == {"exact": 1 / 3, "clause": mine["clause"]}
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
    text = form.report("测试", results, form.ceiling(tiny_corpus()), results)
    assert "| 浣溪沙 | 50% | 67% | 50% | 67% | 50% | 67% |" in text  # 第二首 7-8-7 和 7×6 比：对 2 句，2/6
    assert "| 鹧鸪天 | 词表里没有 | — |" in text
    assert f"合律的一首：浣溪沙\n{SIX_SEVENS}\n句式 7-7-7-7-7-7" in text
    assert "句式 7-8-7；最近的 7-7-7-7-7-7（句子分 33%）" in text
    r = in_process(ROOT / "scripts" / "form.py", "--checkpoint", tmp_path / "babygpt_v19_gqa.pt")
    one_line_error(r, 1, "没有检查点")
