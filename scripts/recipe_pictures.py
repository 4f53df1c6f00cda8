"""第 6 章（怎样训练得好）的两张图。

用法
  python scripts/recipe_pictures.py                      # docs/lr_schedule.png：v20 的学习率 + 同一配置下 v19、v20 的验证损失
  python scripts/recipe_pictures.py --lr 1e-1 --clip docs/reports/recipe_runs/v20_lr0.1.txt docs/reports/recipe_runs/v21_lr0.1.txt
                                                          # 再画 docs/grad_clip.png：学习率很大时 v20（不裁剪）和 v21（裁剪）的损失
学习率的曲线用 v20 自己的 get_lr 算（和训练时同一个函数）；损失来自 docs/reports/ladder_same.json（scripts/ladder.py --same）
和两个版本脚本打印的进度行。
"""

import argparse
import json
import math
from pathlib import Path

from versions import PICTURES, REPORTS, cpu_command, load, parse_steps, pyplot, versions


def schedule(script, steps):
    """v20 在 --same 配置下每一步的学习率：用脚本自己的 get_lr，超参数取它 CPU 命令里的值。"""
    module = load(script)
    for arg in cpu_command(script):
        name, value = arg[2:].split("=", 1)
        if isinstance(getattr(module, name, None), float):
            setattr(module, name, float(value))
    module.max_iters = steps
    return module, [module.get_lr(step) for step in range(steps + 1)]


def lr_picture(report, out):
    plt, label = pyplot()
    found = {r["version"]: r for r in report["results"]}
    steps = found["v20"]["steps"]
    module, rates = schedule(versions()["v20"], steps)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.plot(range(steps + 1), rates, label=label("v20：升温再余弦衰减", "v20: warmup + cosine"))
    left.axhline(module.learning_rate, color="gray", linestyle="--", label=label("v19：一直不变", "v19: constant"))
    left.set_xlabel(label("训练步数", "step"))
    left.set_ylabel(label("学习率", "learning rate"))
    left.set_title(label(f"学习率（前 {module.warmup_iters} 步升温，降到 {module.min_lr:g}）",
                         f"learning rate (warmup {module.warmup_iters}, floor {module.min_lr:g})"))
    for tag in ("v19", "v20"):
        evals = found[tag]["evals"]
        right.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], marker=".",
                   label=label(f"{tag}（{found[tag]['final_val_loss']:.3f}）", f"{tag} ({found[tag]['final_val_loss']:.3f})"))
    right.set_ylim(min(found[t]["final_val_loss"] for t in ("v19", "v20")) - 0.1, 6.0)
    right.set_xlabel(label("训练步数", "step"))
    right.set_ylabel(label("验证损失", "validation loss"))
    right.set_title(label("同一配置下的验证损失", "validation loss, same configuration"))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"写好了：{out}")


def clip_picture(logs, lr, out):
    plt, label = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, path in zip(("v20", "v21"), logs, strict=True):
        rows = parse_steps(Path(path).read_text(encoding="utf-8"))
        loss = [r["val_loss"] for r in rows]
        ax.plot([r["step"] for r in rows], [v if math.isfinite(v) else float("nan") for v in loss], marker=".",
                label=label(f"{name}（{'不裁剪' if name == 'v20' else '梯度范数裁到 1.0'}）",
                            f"{name} ({'no clipping' if name == 'v20' else 'clip at 1.0'})"))
    ax.set_xlabel(label("训练步数", "step"))
    ax.set_ylabel(label("验证损失", "validation loss"))
    ax.set_title(label(f"学习率 {lr}：裁剪让大学习率也稳得住", f"learning rate {lr}: clipping keeps it stable"))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"写好了：{out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", default=str(REPORTS / "ladder_same.json"))
    parser.add_argument("--clip", nargs=2, metavar=("V20_LOG", "V21_LOG"), help="v20、v21 同一条大学习率命令的输出")
    parser.add_argument("--lr", default="?", help="--clip 那两次用的学习率（写进标题）")
    parser.add_argument("--out", default=str(PICTURES), help="图片写到这个目录，默认 docs/")
    args = parser.parse_args()
    lr_picture(json.loads(Path(args.ladder).read_text(encoding="utf-8")), Path(args.out) / "lr_schedule.png")
    if args.clip:
        clip_picture(args.clip, args.lr, Path(args.out) / "grad_clip.png")


if __name__ == "__main__":
    main()
