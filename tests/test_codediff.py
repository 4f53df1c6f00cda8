"""scripts/codediff.py：只数代码行；文档字符串、注释、空行改了不算，改一行算两行。"""

import subprocess
import sys

from conftest import ROOT

CODEDIFF = ROOT / "scripts" / "codediff.py"

OLD = '''"""旧的说明。"""
x = 1  # 一个数
y = "# 字符串里的井号不是注释"


def f():
    return x + y
'''

NEW = '''"""新的说明，改了，也多了一行。

不算数。
"""
x = 1  # 注释改了也不算

y = "# 字符串里的井号不是注释"
z = 3


def f():
    return x + y + z
'''


def test_it_counts_only_changed_code_lines(tmp_path):
    old, new = tmp_path / "old.py", tmp_path / "new.py"
    old.write_text(OLD, encoding="utf-8")
    new.write_text(NEW, encoding="utf-8")
    # 加了 z = 3（+1），return 那一行改了（-1 +1）：3 行；说明、注释、空行的改动不算
    r = subprocess.run([sys.executable, CODEDIFF, old, new], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "3"
    r = subprocess.run([sys.executable, CODEDIFF, old, old], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "0"
