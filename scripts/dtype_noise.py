"""--dtype=auto 凭什么选：同一条命令量十次，float32 和 bf16 的倍数上下差多少（量时间的误差）。

用法
  python scripts/dtype_noise.py                 # CPU 命令和教程尺寸各量 10 次，写 docs/reports/dtype_noise.md
  python scripts/dtype_noise.py --runs 3 --out /tmp/n.md

每一次都是一个新进程（和学习者每次敲命令一样），用 v14 自己的 announce_time：在模型和优化器的副本上
float32、bf16 轮流训练几步，取中位数。要在没有别的程序抢 CPU 的时候跑；只在有 bf16 指令的 CPU 上有意义。
"""

import argparse
import contextlib
import datetime
import io
import json
import subprocess
import sys
from pathlib import Path

from versions import REPORTS, ROOT, load, machine, versions, write_report

SIZES = {
    "README 的 CPU 命令": {"batch_size": 16, "block_size": 64, "n_embed": 64, "n_layer": 3, "n_head": 4, "dropout": 0.0},
    "教程尺寸": {"batch_size": 12, "block_size": 64, "n_embed": 128, "n_layer": 4, "n_head": 4, "dropout": 0.2},
}


def measure_once(size, version):
    """在这个进程里量一次：返回 {精度: 字/秒}。"""
    import torch
    module = load(versions()[version])
    vars(module).update(SIZES[size])
    torch.manual_seed(1337)
    model = module.BabyGPT(6104)  # ci.txt 的词表
    optimizer = torch.optim.AdamW(model.parameters(), lr=module.learning_rate, fused=True)  # v14 的优化器
    amps = {"float32": contextlib.nullcontext(), "bfloat16": torch.autocast("cpu", dtype=torch.bfloat16)}
    with contextlib.redirect_stdout(io.StringIO()):
        seconds = module.announce_time(model, optimizer, 0, "cpu", amps)
    return {name: module.batch_size * module.block_size / s for name, s in seconds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="每种尺寸量几次（每次一个新进程），默认 10")
    parser.add_argument("--out", default=str(REPORTS / "dtype_noise.md"))
    parser.add_argument("--version", default="v14", help="用哪个版本的模型（默认 v14；优化器都是融合的 AdamW）")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # 子进程：只量一次，打印 json
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_once(args.child, args.version)))
        return
    lines = ["| 尺寸 | 每次的倍数（float32 用时 ÷ bf16 用时） | 最小 | 中位数 | 最大 | 上下差（相对中位数） |",
             "|---|---|---:|---:|---:|---:|"]
    for size in SIZES:
        ratios = []
        for _ in range(args.runs):
            r = subprocess.run([sys.executable, __file__, "--child", size, "--version", args.version], capture_output=True, text=True,
                               encoding="utf-8", check=True, cwd=ROOT)
            speed = json.loads(r.stdout)
            ratios.append(speed["bfloat16"] / speed["float32"])
            print(f"{size}：{ratios[-1]:.2f}", flush=True)
        middle = sorted(ratios)[len(ratios) // 2]
        lines.append(f"| {size} | {' '.join(f'{r:.2f}' for r in ratios)} | {min(ratios):.2f} | {middle:.2f} | "
                     f"{max(ratios):.2f} | {min(ratios) / middle - 1:+.0%} / {max(ratios) / middle - 1:+.0%} |")
    write_report(Path(args.out), [
        "# --dtype=auto 的依据：量时间的误差\n",
        f"- 命令：`python scripts/dtype_noise.py --runs {args.runs} --version {args.version}`", f"- 机器：{machine()}",
        f"- 日期：{datetime.date.today().isoformat()}\n",
        (f"每次一个新进程（和每次敲一遍命令一样），用 {args.version} 自己的 announce_time：float32、bf16 在模型和优化器的副本上"
         "轮流训练几步，取中位数；词表 6,104（ci.txt）。倍数 > 1 是 bf16 快。\n"), *lines, "",
        ("同一条命令、同一台机器，倍数也会差这么多，而且偏向一边：有时一整次 float32 都量得慢。所以 `--dtype=auto` "
         "只在 bf16 快过 1.5 倍时才用它，否则用 float32（CPU 上每次结果都一样）。倍数落在 1.5 附近的配置，两次仍可能选得不一样；"
         "要逐位可重复，写明 `--dtype=float32`。")])


if __name__ == "__main__":
    main()
