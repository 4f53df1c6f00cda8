"""v26 强化学习的曲线：读 v26 打印的进度行，画奖励的几个分数、验证损失和 distinct-2 随步数的变化。

用法
  python scripts/rl_curve.py docs/reports/rl_runs/main.txt docs/reports/rl_runs/no_kl.txt   # 写 docs/rl_curve.png
第一个文件画深色，后面的画淡色、虚线（比较用）。每个文件是 v26 的完整输出（python babygpt_v26_rl.py ... > 文件）。
"""

import argparse
import re
import sys
from pathlib import Path

from versions import PICTURES, parse_steps, pyplot

GUARDS = re.compile(r"^step\s+(\d+)/\d+ .*?奖励 ([\d.]+)（合律 (\d+)%，押韵 (\d+)%，平仄 (\d+)%，全合 (\d+)%） \| "
                    r"distinct-2 ([\d.]+)% \| 抄 ([\d.]+)% \| 跳过 (\d+)% \| KL ([\d.]+)", re.MULTILINE)
KEYS = ("reward", "exact", "rhyme", "tones", "full", "distinct", "copied", "skipped", "kl")


def parse_guards(stdout):
    """v26 每次评估的一行 -> [{"step", "reward", "exact", "rhyme", "tones", "full", "distinct", "copied", "skipped",
    "kl", "val_loss"}]：百分数还是百分数（0–100），奖励和 KL 是原来的数。"""
    losses = {s["step"]: s["val_loss"] for s in parse_steps(stdout)}
    return [{"step": int(m[1]), **dict(zip(KEYS, map(float, m.groups()[1:]), strict=True)), "val_loss": losses[int(m[1])]}
            for m in GUARDS.finditer(stdout)]


def draw(runs, out):
    """runs: {名字: parse_guards(...)}，第一个画深色。"""
    plt, label = pyplot()
    fig, (form_axis, guard_axis) = plt.subplots(1, 2, figsize=(11, 4.6))
    loss_axis = guard_axis.twinx()
    for n, (name, points) in enumerate(runs.items()):
        style = {"alpha": 1.0, "lw": 1.8} if n == 0 else {"alpha": 0.45, "lw": 1.2, "ls": "--"}
        tag = "" if n == 0 else f"（{name}）"
        x = [p["step"] for p in points]
        for key, color, zh, en in (("exact", "C0", "合律", "exact fit"), ("rhyme", "C1", "押韵", "rhyme"),
                                   ("tones", "C2", "平仄", "tones"), ("full", "C4", "全合", "full form")):
            form_axis.plot(x, [p[key] for p in points], color=color, **style,
                           label=label(zh + tag, en + (f" ({name})" if n else "")))
        guard_axis.plot(x, [p["distinct"] for p in points], color="C5", **style,
                        label=label("distinct-2" + tag, "distinct-2" + (f" ({name})" if n else "")))
        loss_axis.plot(x, [p["val_loss"] for p in points], color="C3", **style,
                       label=label("验证损失（右轴）" + tag, "val loss (right)" + (f" ({name})" if n else "")))
    form_axis.set_ylim(0, 100)
    form_axis.set_ylabel("%")
    form_axis.set_xlabel(label("强化学习的步数", "RL steps"))
    form_axis.set_title(label("尺子的分数（每个词牌 8 首，种子固定）", "yardstick scores (8 pieces per tune, fixed seed)"),
                        fontsize=10)
    guard_axis.set_ylim(0, 100)
    guard_axis.set_ylabel("%")
    loss_axis.set_ylabel(label("验证损失", "val loss"))
    guard_axis.set_xlabel(label("强化学习的步数", "RL steps"))
    guard_axis.set_title(label("看守：写得还多样吗，离基础模型多远", "guards: variety and drift"), fontsize=10)
    form_axis.legend(fontsize=7, loc="lower right", ncol=2)
    handles = guard_axis.get_legend_handles_labels()[0] + loss_axis.get_legend_handles_labels()[0]
    guard_axis.legend(handles=handles, fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"写好了：{out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="v26 的输出文件；第一个画深色")
    parser.add_argument("--out", default=str(PICTURES / "rl_curve.png"))
    args = parser.parse_args()
    runs = {}
    for path in map(Path, args.runs):
        try:
            points = parse_guards(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            sys.exit(f"错误：读不了 {path}（{e}）")
        if not points:
            sys.exit(f"错误：{path} 里没有 v26 的进度行（奖励、distinct-2……）")
        runs[path.stem] = points
    draw(runs, Path(args.out))


if __name__ == "__main__":
    main()
