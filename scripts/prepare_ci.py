"""从 npm 包 chinese-poetry@2.0.1 生成 ci.txt（确定性，结果与提交的 ci.txt 逐字节相同）。

用法:
    python scripts/prepare_ci.py                      # 用 npm pack 下载并解包
    python scripts/prepare_ci.py /path/to/package     # 用已解包的目录（含 dist/）
    python scripts/prepare_ci.py /path/to/package --out ci.txt
"""

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "chinese-poetry@2.0.1"
ROOT = Path(__file__).resolve().parent.parent


def source_files(dist):
    # 先南唐词，再宋词 ci.song.0 ... ci.song.21000，按数字排序（不是字符串排序）
    files = [dist / "wudaishici" / "nantang" / "poetrys.json"]
    songci = [p for p in (dist / "songci").glob("ci.song.*.json") if p.stem.split(".")[-1].isdigit()]
    files += sorted(songci, key=lambda p: int(p.stem.split(".")[-1]))
    return files


def build_corpus(dist):
    pieces = []
    for path in source_files(dist):
        for item in json.loads(path.read_text(encoding="utf-8")):
            lines = [f"{item['rhythmic']} {item['author']}"] + item["paragraphs"]
            pieces.append("".join(line + "\n" for line in lines))
    # 词与词之间空一行
    return "\n".join(pieces), len(pieces)


def fetch_package(workdir):
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    tgz = next(Path(workdir).glob("chinese-poetry-*.tgz"))
    with tarfile.open(tgz) as tar:
        tar.extractall(workdir, filter="data")
    return Path(workdir) / "package"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", nargs="?", help="已解包的 chinese-poetry 目录（含 dist/）；省略则用 npm pack 下载")
    parser.add_argument("--out", default=str(ROOT / "ci.txt"), help="输出文件（默认: 项目根目录的 ci.txt）")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(args.package) if args.package else fetch_package(tmp)
        dist = package / "dist"
        if not dist.is_dir():
            sys.exit(f"错误: {package} 里没有 dist/ 目录")
        text, count = build_corpus(dist)
    out = Path(args.out)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_bytes(text.encode("utf-8"))
    tmp_out.replace(out)
    print(f"{out}: {count} 首词, {len(text)} 字符, {len(set(text))} 种字符, {len(text.encode('utf-8'))} 字节")


if __name__ == "__main__":
    main()
