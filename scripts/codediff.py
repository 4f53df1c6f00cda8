"""数两个 Python 文件之间改了几行代码。

不算模块的文档字符串、注释、空行和行尾的注释：数的是这一步在程序里改了什么，不是说明文字改了多少。
改了一行算两行（删掉旧的一行、加上新的一行），和 diff -u 里以 - 和 + 开头的行一样数。

用法
  python scripts/codediff.py 旧.py 新.py        # 打印一个整数
  python scripts/codediff.py babygpt_v5_feedforward.py babygpt_v6_block.py
"""

import ast
import difflib
import io
import sys
import tokenize


def code_lines(path):
    """这个文件里算数的代码行：去掉模块文档字符串、注释（用分词器找，字符串里的 # 不算）和空行。"""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    skip = set()
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    comments = {tok.start[0]: tok.start[1] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    lines = []
    for no, line in enumerate(source.splitlines(), 1):
        if no in skip:
            continue
        line = (line[:comments[no]] if no in comments else line).rstrip()
        if line.strip():
            lines.append(line)
    return lines


def changed(old, new):
    """old 到 new 删掉和加上的代码行一共几行。"""
    return sum(1 for d in difflib.ndiff(code_lines(old), code_lines(new)) if d[:2] in ("- ", "+ "))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("用法：python scripts/codediff.py 旧.py 新.py")
    print(changed(sys.argv[1], sys.argv[2]))
