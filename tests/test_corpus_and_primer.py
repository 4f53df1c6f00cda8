"""ci.txt 的数字和指纹；scripts/prepare_ci.py 的规则；pytorch_5min.py 真的学会了 y = 2x + 1。"""

import hashlib
import json
import re

from conftest import ROOT, run


def test_ci_txt_figures_and_sha256():
    raw = (ROOT / "ci.txt").read_bytes()
    text = raw.decode("utf-8")
    assert len(raw) == 5_742_880
    assert len(text) == 2_062_731
    assert len(set(text)) == 6_104
    assert len(text.split("\n\n")) == 21_095
    assert hashlib.sha256(raw).hexdigest() == "628bd99b88d7c4129ac36cc5f86b40c9071423529227e03f07e4359d7ed7ce69"
    assert text.startswith("应天长 李璟\n一钩初月临妆镜，蝉鬓凤钗慵不整。\n") and not text.startswith("\ufeff")


def write_json(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")


def test_prepare_ci_order_format_and_exclusions(tmp_path):
    dist = tmp_path / "package" / "dist"
    ci = lambda tune, author, *lines: {"rhythmic": tune, "author": author, "paragraphs": list(lines)}
    write_json(dist / "wudaishici" / "nantang" / "poetrys.json", [ci("应天长", "李璟", "一钩初月临妆镜。")])
    write_json(dist / "songci" / "ci.song.0.json", [ci("甲", "零", "第一句。", "第二句。")])
    write_json(dist / "songci" / "ci.song.2000.json", [ci("乙", "二千", "二。")])
    write_json(dist / "songci" / "ci.song.10000.json", [ci("丙", "一万", "万。")])  # 按数字排在 2000 之后
    write_json(dist / "songci" / "ci.song.2019y.json", [ci("不要", "我", "繁體。")])
    write_json(dist / "songci" / "宋词三百首.json", [ci("重复", "我", "重复。")])
    write_json(dist / "songci" / "author.song.json", [{"name": "某人", "description": "不是词"}])
    out = tmp_path / "out.txt"
    r = run(ROOT / "scripts" / "prepare_ci.py", tmp_path / "package", f"--out={out}")
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8") == (
        "应天长 李璟\n一钩初月临妆镜。\n\n甲 零\n第一句。\n第二句。\n\n乙 二千\n二。\n\n丙 一万\n万。\n")
    assert "4 首词" in r.stdout


def test_pytorch_5min_learns_the_line():
    r = run(ROOT / "pytorch_5min.py")
    assert r.returncode == 0, r.stderr
    w = float(re.search(r"学到的 w = ([-\d.]+)", r.stdout)[1])
    b = float(re.search(r"学到的 b = ([-\d.]+)", r.stdout)[1])
    assert abs(w - 2) < 0.05 and abs(b - 1) < 0.05
    assert "a @ b = [[3.0, 3.0], [7.0, 7.0]]" in r.stdout and "= 6.0" in r.stdout
