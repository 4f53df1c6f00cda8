"""每一章“试一试”的答案，和章节里给出的运行输出：都由这个脚本真的跑出来，记在 docs/exercises/ 里。

  python scripts/exercises.py --list            # 列出所有练习和运行（编号、标题、命令）
  python scripts/exercises.py --only 3.2        # 只跑 3.2（可以逗号分隔几个），重写 docs/exercises/3.2.txt
  python scripts/exercises.py                   # 跑所有还没有记录的、命令改了的（其余跳过：可以分几次跑完）
  python scripts/exercises.py --chapter 3       # 只跑第 3 章还没有记录的
  python scripts/exercises.py --force           # 全部重跑（代码改了以后，答案要重新量）

每一章的练习写在 docs/exercises/chNN.toml 里（一章一个文件）：

  [[run]]
  id = "3.2"                                  # 章号.编号；章节正文里给出的运行用“章号.v版本”，如 3.v7
  title = "v7 叠到 6 层"
  commands = ["python babygpt_v7_residual_connection.py --n_layer=6 --out_dir=runs/3.2"]
  stdin = "明月\\n"                            # 可选：送给最后一条命令的标准输入

命令在仓库的根目录运行，和学习者在终端里敲的一样（python 换成运行这个脚本的 Python，torchrun 换成
python -m torch.distributed.run）；检查点写到 runs/ 下（不进 git）。记录里是每条命令和它打印的全部内容、
用时、机器；章节里的答案只引用记录里的数（tests/test_docs.py 检查）。
"""

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
import tomllib
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "docs" / "exercises"
LIMIT_SECONDS = 180  # 一个练习在 2 核 CPU 上最多跑 3 分钟：超过了就是练习出得不好，记录里写明


def registry(folder=FOLDER):
    """所有 chNN.toml 里的练习，按章、按文件里的顺序。"""
    runs = []
    for path in sorted(folder.glob("ch*.toml")):
        with open(path, "rb") as f:
            for run in tomllib.load(f).get("run", []):
                runs.append({**run, "file": path.name})
    ids = [run["id"] for run in runs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        sys.exit(f"练习编号重复了：{', '.join(repeated)}")
    return runs


def record_path(run_id, folder=FOLDER):
    return folder / f"{run_id}.txt"


def recorded_commands(run_id, folder=FOLDER):
    """记录里跑过的命令（“$ ”开头的行）；没有记录是 None。"""
    path = record_path(run_id, folder)
    if not path.exists():
        return None
    return [line[2:] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("$ ")]


def is_current(run, folder=FOLDER):
    """有记录，而且记录里的命令就是现在登记的命令（命令改了，答案就要重新量）。"""
    return recorded_commands(run["id"], folder) == list(run["commands"])


def argv(command):
    """一条命令 -> 参数列表：python 换成这个 Python，torchrun 换成它的模块。"""
    words = shlex.split(command)
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    if words[0] == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", *words[1:]]
    return words


def machine_line():
    sys.path.insert(0, str(ROOT / "scripts"))
    from versions import machine
    threads = os.environ.get("OMP_NUM_THREADS")
    busy = f"；OMP_NUM_THREADS={threads}（用时偏长，只能当上限）" if threads else ""
    return f"{machine()}；{date.today().isoformat()}{busy}"


def run_one(run, folder=FOLDER):
    """跑一个练习的每条命令，把命令、输出、用时写进记录（先写临时文件再改名）。返回用时（秒）。"""
    lines = [f"# {run['id']} {run['title']}", f"# 重跑：python scripts/exercises.py --only {run['id']}",
             f"# 机器：{machine_line()}", ""]
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled"), "PYTHONUTF8": "1"}
    began = time.time()
    for i, command in enumerate(run["commands"]):
        stdin = run.get("stdin", "") if i == len(run["commands"]) - 1 else ""
        lines.append(f"$ {command}")
        started = time.time()
        done = subprocess.run(argv(command), check=False, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True,
                              encoding="utf-8", errors="replace")
        output = (done.stdout + done.stderr).rstrip("\n").replace(f"{ROOT}{os.sep}", "")  # 记录里只有仓库里的相对路径
        lines += [output] if output else []
        lines.append(f"（退出码 {done.returncode}，用时 {time.time() - started:.1f} 秒）")
        lines.append("")
    seconds = time.time() - began
    note = "" if seconds <= LIMIT_SECONDS else f"；超过了 {LIMIT_SECONDS} 秒的限度"
    lines.append(f"# 一共用时 {seconds:.1f} 秒{note}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = record_path(run["id"], folder).with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(record_path(run["id"], folder))
    return seconds


def main():
    parser = argparse.ArgumentParser(description="跑各章“试一试”的练习，把打印的东西记在 docs/exercises/")
    parser.add_argument("--only", help="只跑这些编号（逗号分隔），有记录也重跑")
    parser.add_argument("--chapter", type=int, help="只跑这一章的")
    parser.add_argument("--force", action="store_true", help="有记录的也重跑")
    parser.add_argument("--list", action="store_true", help="只列出练习，不跑")
    parser.add_argument("--reverse", action="store_true", help="从最后一章往前跑（两个核各跑一个时用）")
    args = parser.parse_args()
    runs = registry()
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in {run["id"] for run in runs}]
        if unknown:
            sys.exit(f"没有这个练习：{', '.join(unknown)}（python scripts/exercises.py --list 列出全部）")
        runs = [run for run in runs if run["id"] in wanted]
    elif args.chapter is not None:
        runs = [run for run in runs if run["id"].split(".")[0] == str(args.chapter)]
    if args.list:
        for run in runs:
            done = "有记录" if is_current(run) else "还没跑（或命令改了）"
            print(f"{run['id']:>6}  {run['title']}（{done}）")
            for command in run["commands"]:
                print(f"        {command}")
        return
    todo = [run for run in runs if args.only or args.force or not is_current(run)]
    if args.reverse:  # 章倒过来，一章里面还是按顺序（后面的练习可能用前面练习的检查点）
        chapters = sorted({run["file"] for run in todo}, reverse=True)
        todo = [run for chapter in chapters for run in todo if run["file"] == chapter]
    print(f"要跑 {len(todo)} 个（{platform.python_version()}）；跑完一个就写一个记录，中途停下不丢已经跑完的")
    locks = ROOT / "runs" / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    for run in todo:
        lock = locks / run["id"]
        try:  # 另一个进程正在跑这一个：跳过
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue
        if not (args.only or args.force) and is_current(run):  # 另一个进程刚跑完它
            lock.unlink(missing_ok=True)
            continue
        print(f"{run['id']} {run['title']} ...", flush=True)
        try:
            seconds = run_one(run)
        except KeyboardInterrupt:
            sys.exit("\n已中断（Ctrl-C）：这一个没有记录，跑完的那些记录都在。")
        finally:
            lock.unlink(missing_ok=True)
        print(f"  {seconds:.0f} 秒 → {record_path(run['id']).relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
