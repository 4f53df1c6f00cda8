"""README 和各章：链接都通、每个版本都有一章讲它、每章的“试一试”都有量出来的答案，引用的输出和代码都真有。

不跑训练：只读 README.md、docs/ 和 docs/exercises/ 里的记录（scripts/exercises.py 跑出来的）。
"""

import re
import sys
from pathlib import Path

import pytest
from conftest import ROOT, versions

sys.path.insert(0, str(ROOT / "scripts"))
import exercises

DOCS = ROOT / "docs"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]_*.md"))
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
DETAILS = re.compile(r"<details>(.*?)</details>", re.DOTALL)
RECORD = re.compile(r"exercises/([\w.]+)\.txt")
MARKED_BLOCK = re.compile(r"<!-- (输出|代码)：(\S+) -->\n```\w*\n(.*?)\n```", re.DOTALL)
DECIMAL = re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])")


def relative_links(page):
    """一页里所有的相对链接和图片（去掉 #锚点）；网址、纯锚点不算。"""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # 代码块里的方括号不是链接
    found = []
    for match in LINK.finditer(text):
        target = (match[1] or match[2]).split("#")[0]
        if target and not re.match(r"[a-z]+:", target):
            found.append(target)
    return found


def chapter_number(path):
    return int(path.name[:2])


def test_the_readme_is_a_door_not_a_book():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md 有 {len(lines)} 行，最多 250 行：细节放进 docs/ 的章节"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_picture_resolves(page):
    missing = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} 里这些链接指向不存在的文件：{missing}"


def test_there_is_a_chapter_per_part_numbered_as_the_readme_links_them():
    assert len(CHAPTERS) >= 8
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in CHAPTERS:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith(f"# 第 {chapter_number(path)} 章"), f"{path.name} 的标题要以“第 N 章”开头：{first}"
        assert f"docs/{path.name}" in readme, f"README 没有链接 {path.name}"


def test_every_version_script_is_taught_in_the_chapter_its_docstring_names():
    linked = {chapter_number(path): {Path(t).name for t in relative_links(path)} for path in CHAPTERS}
    for script in versions().values():
        first_line = script.read_text(encoding="utf-8").splitlines()[0]
        named = re.search(r"第 (\d+) 章", first_line)
        assert named, f"{script.name} 的第一行要写明哪一章讲它：{first_line}"
        assert script.name in linked.get(int(named[1]), set()), f"{script.name} 说第 {named[1]} 章讲它，那一章却没有链接它"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_each_chapter_is_a_chapter(path):
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert 200 <= len(lines) <= 400, f"{path.name} 有 {len(lines)} 行，一章 200–400 行"
    assert "## 小结" in text
    tail = text.split("## 试一试", 1)
    assert len(tail) == 2, f"{path.name} 没有“## 试一试”"
    answers = [block for block in DETAILS.findall(tail[1]) if "答案" in block]
    assert len(answers) >= 3, f"{path.name} 的试一试只有 {len(answers)} 个答案，至少 3 个"
    for block in answers:
        assert RECORD.search(block), f"{path.name} 的一个答案没有链接它的记录（exercises/<编号>.txt）：{block[:80]}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_in_an_answer_is_in_its_record(path):
    text = path.read_text(encoding="utf-8")
    for block in DETAILS.findall(text):
        ids = RECORD.findall(block)
        if not ids:
            continue
        records = "\n".join(exercises.record_path(i).read_text(encoding="utf-8") for i in ids
                            if exercises.record_path(i).exists())
        assert records, f"{path.name}：记录 {ids} 还不存在（python scripts/exercises.py --only {','.join(ids)}）"
        shown = re.sub(r"exercises/[\w.]+\.txt|--\w+=\S+|runs/\S+", "", block)  # 命令和路径里的数不是答案
        missing = [n for n in DECIMAL.findall(shown) if n not in records]
        assert not missing, f"{path.name}：答案里的 {missing} 不在记录 {ids} 里"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_quoted_output_and_code_are_really_there(page):
    text = page.read_text(encoding="utf-8")
    for kind, source, body in MARKED_BLOCK.findall(text):
        target = page.parent / source if kind == "输出" else ROOT / source  # 输出相对这一页，代码相对仓库
        assert target.exists(), f"{page.name}：{source} 不存在"
        have = {line.strip() for line in target.read_text(encoding="utf-8").splitlines()}
        missing = [line for line in body.splitlines()
                   if line.strip() and line.strip() not in {"……", "..."} and line.strip() not in have]
        assert not missing, f"{page.name}：这几行不在 {source} 里：{missing[:3]}"


def test_every_exercise_has_a_record_of_its_current_commands():
    runs = exercises.registry()
    assert runs
    for run in runs:
        recorded = exercises.recorded_commands(run["id"])
        assert recorded is not None, f"练习 {run['id']} 还没有记录：python scripts/exercises.py --only {run['id']}"
        assert recorded == list(run["commands"]), \
            f"练习 {run['id']} 的命令改了，记录是旧的：python scripts/exercises.py --only {run['id']}"
        record = exercises.record_path(run["id"]).read_text(encoding="utf-8")
        if not run.get("allow_error"):
            codes = re.findall(r"（退出码 (\d+)，", record)
            assert codes and set(codes) == {"0"}, f"练习 {run['id']} 的命令没有都成功（退出码 {codes}）"
    registered = {run["id"] for run in runs}
    orphans = [p.name for p in exercises.FOLDER.glob("*.txt") if p.stem not in registered]
    assert not orphans, f"这些记录没有登记的练习：{orphans}"


def test_every_exercise_is_answered_in_its_chapter():
    texts = {chapter_number(p): p.read_text(encoding="utf-8") for p in CHAPTERS}
    for run in exercises.registry():
        chapter = int(run["id"].split(".")[0])
        if re.fullmatch(r"\d+\.\d+", run["id"]):  # 练习（正文里的运行叫 3.v7 这样）
            assert f"exercises/{run['id']}.txt" in texts.get(chapter, ""), \
                f"练习 {run['id']} 在第 {chapter} 章里没有答案"


def test_records_are_where_the_exercise_script_writes_them(tmp_path):
    (tmp_path / "ch09.toml").write_text('[[run]]\nid = "9.1"\ntitle = "打印"\n'
                                        'commands = ["python -c \\"print(1.25)\\""]\n', encoding="utf-8")
    run = exercises.registry(tmp_path)[0]
    assert not exercises.is_current(run, tmp_path)
    exercises.run_one(run, tmp_path)
    record = exercises.record_path("9.1", tmp_path).read_text(encoding="utf-8")
    assert "1.25" in record and "（退出码 0，" in record
    assert exercises.is_current(run, tmp_path)
    changed = {**run, "commands": ['python -c "print(2)"']}
    assert not exercises.is_current(changed, tmp_path)
