"""scripts/style.py：第三把尺子。留出的词规则、两位词人的小语料上分得清、照抄查得出来、ci.txt 从不改写。"""

import json

import style
from conftest import ROOT, in_process, one_line_error, tiny_args

STYLE = ROOT / "scripts" / "style.py"


def tiny_corpus(count=30):
    """甲只用“风花雪月”，乙只用“山水云烟”，丙两样都用一点；每人 count 首，轮流排。"""
    words = {"甲": "风花雪月春", "乙": "山水云烟石", "丙": "风山花水月"}
    pieces = []
    for i in range(count):
        for poet, chars in words.items():
            line = "".join(chars[(i * 3 + k * k) % 5] for k in range(7))
            pieces.append(f"调{i} {poet}\n{line}，{line[::-1]}。")
    return "\n\n".join(pieces) + "\n"


def test_every_tenth_piece_of_each_poet_is_held_out_of_the_base_corpus():
    text = tiny_corpus()
    kept, held = style.split_held_out(text)
    assert len(kept) + len(held) == 90 and len(held) == 9  # 每人 30 首：第 10、20、30 首
    for poet in "甲乙丙":
        mine = [p for p in style.pieces(text) if style.author(p) == poet]
        assert [p for p in held if style.author(p) == poet] == mine[9::10]
    base = style.base_corpus(text)
    assert base.endswith("。\n") and not any(piece in base.split("\n\n") for piece in held)
    assert style.pieces(base) == kept


def test_the_classifier_never_sees_what_the_finetune_trains_on():
    text = tiny_corpus()
    finetune, judged, held = style.split_poet(text, "甲")
    mine = [p for p in style.pieces(text) if style.author(p) == "甲"]
    assert held == mine[9::10] and finetune == [p for i, p in enumerate(mine, 1) if i % 10 and i % 2]
    assert len(finetune) == 15 and len(judged) == 12 and not set(finetune) & set(judged)
    assert sorted(finetune + judged + held) == sorted(mine)


def test_the_classifier_tells_two_poets_apart():
    text = tiny_corpus()
    model, sets = style.classifier(text, "甲")
    mine, others = sets["held"], sets["others"]
    assert len(mine) == 3 and len(others) == 6 and len(sets["finetune"]) == 15
    assert style.share(model, mine) == 1.0  # 甲的留出词都认成甲的
    assert all(not model.is_poet(t) for t in others if "山" in t and "风" not in t)  # 乙的一首也不认
    assert model.log_odds("风花雪月") > 0 > model.log_odds("山水云烟")


def test_a_copy_is_found_and_its_length_measured():
    poet = ["调 甲\n一二三四五六七八九十，甲乙丙丁。"]
    rate, longest = style.copied(["三四五六七八九十\n天地玄黄宇宙洪荒"], poet)
    assert longest == 8 and rate == 1 / 9  # 换行去掉后 16 个字、9 段：只有第一段是抄的
    assert style.copied(["天地玄黄宇宙洪荒"], poet) == (0.0, 0)
    across = style.copied(["一二三四\n五六七八九"], poet)  # 跨过换行的照抄也算
    assert across == (1.0, 9)
    assert style.copied(["十，甲乙丙丁。调"], ["调 甲\n一二三四五六七八九十，甲乙丙丁。", "调 乙\n调子"])[1] == 7


def test_write_corpus_never_touches_ci_txt(tmp_path):
    one_line_error(in_process(STYLE, f"--write-corpus={ROOT / 'ci.txt'}"), 1, "ci.txt")
    data = tmp_path / "tiny.txt"
    data.write_text(tiny_corpus(), encoding="utf-8")
    r = in_process(STYLE, f"--data={data}", f"--write-corpus={tmp_path / 'out' / 'base.txt'}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "base.txt").read_text(encoding="utf-8") == style.base_corpus(tiny_corpus())
    assert "81 首；留出 9 首" in r.stdout and not list((tmp_path / "out").glob("*.tmp"))


def test_a_checkpoint_gets_a_style_score_a_copy_rate_and_a_form_score(tmp_path):
    """在小语料上训练几十步的 v1：量它用甲最常用的词牌、带上“甲”写的词（每个词牌 2 首）。"""
    data = tmp_path / "tiny.txt"
    data.write_text(tiny_corpus(), encoding="utf-8")
    v1 = ROOT / "babygpt_v1.py"
    trained = in_process(v1, *tiny_args(v1, max_iters=30, prompts="风花"), f"--data={data}", f"--out_dir={tmp_path}")
    assert trained.returncode == 0, trained.stderr
    r = in_process(STYLE, f"--data={data}", "--poet=甲", f"--checkpoint={tmp_path / 'babygpt_v1.pt'}", "--pieces=2",
                   "--json")
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert found["poet"] == "甲" and found["ceiling"] == 1.0 and found["held_out"] == 3
    assert found["finetune_pieces"] == 15 and found["classifier_pieces"] == 12 and found["ceiling_error"] == 0.0
    model = found["model"]
    assert len(model["tunes"]) == style.TUNE_COUNT and all(t.startswith("调") for t in model["tunes"])
    assert abs(model["style_error"] - (model["style"] * (1 - model["style"]) / model["pieces"]) ** 0.5) < 1e-12
    for key in ("style", "copy", "exact"):
        assert 0 <= model[key] <= 1
    assert model["longest_copy"] >= 0 and isinstance(model["example"], str)
    one_line_error(in_process(STYLE, f"--data={data}", "--poet=丁"), 1, "没有 丁 的词", "甲、乙、丙")
