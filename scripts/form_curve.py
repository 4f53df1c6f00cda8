"""看格律怎样一点点学出来：跑一次 v23 --minutes=N，每次评估存下的检查点都留一份，再逐个用 scripts/form.py 量。

用法（机器上别的都停下：墙上的时间就是结果）
  python scripts/form_curve.py --minutes 30   # 写 docs/reports/form_curve_30.json 和 docs/reports/minutes_runs/ 里的两个文件：
                                              # v23 的输出 v23_30min.txt、最后那个检查点的 form.py 报告 v23_30min_form.txt
  python scripts/form_curve.py --rescore 30   # 不训练：用留下的检查点（checkpoints/form_curve_30/）重新量，尺子改了以后用
  python scripts/form_curve.py --render docs/reports/form_curve_10.json docs/reports/form_curve_30.json   # 不训练，只重画图

每个点：从开始算起的分钟、验证损失，和 form.py 的分数：合律、句子分、押韵、平仄、全合（温度 1.0 和 0.8，每个词牌 20 首，
种子固定，和 form.py 的默认一样）。每次评估存下的检查点留在 checkpoints/form_curve_N/（stepS.pt；最后一个也是 v26 的起点）。
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import form
from versions import PICTURES, REPORTS, ROOT, machine, parse_samples, parse_steps, pyplot

SCRIPT = ROOT / "babygpt_v23_budget.py"


def run(minutes, keep):
    """跑 v23，边跑边把每次存下的检查点复制到 keep/：[(秒, 第几步, 路径)]，加上全部输出和总用时。"""
    command = [sys.executable, str(SCRIPT), f"--minutes={minutes:g}", "--wandb_mode=disabled",
               f"--out_dir={keep / 'run'}", "--prompts=浣溪沙 ,鹧鸪天 ,往事"]
    began = time.time()
    saved, lines = [], []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8") as p:
        for line in p.stdout:
            print(line, end="", flush=True)
            lines.append(line)
            if line.startswith("检查点已保存："):
                step = int(line.rsplit("第 ", 1)[1].split(" ")[0])
                copy = keep / f"step{step}.pt"
                shutil.copy(keep / "run" / f"{SCRIPT.stem}.pt", copy)
                saved.append((time.time() - began, step, copy))
    if p.returncode:
        sys.exit(f"错误：v23 失败了（退出码 {p.returncode}）")
    return saved, "".join(lines), time.time() - began


def score(checkpoint, text):
    result = {}
    for temperature in (1.0, 0.8):
        results = form.evaluate(form.NeuralWriter(checkpoint, "v23", temperature), text, 20, 1337)
        result[str(temperature)] = form.overall(results)
        if temperature == 1.0:  # 一首合律的、一首最接近合律却不合律的（form.py 的报告里也有）
            result["examples"] = {"fit": form.example(results, 1), "near_miss": form.example(results, 0)}
    return result


def draw(curves, out):
    """最长的一次画深色、带图例；更短的几次画成淡色，同样的颜色和线型。"""
    plt, label = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.4))
    second = ax.twinx()
    longest = max(curves, key=float)
    for minutes, curve in sorted(curves.items(), key=lambda item: float(item[0])):
        points, main_run = curve["points"], minutes == longest
        x = [p["minutes"] for p in points]
        style = {"alpha": 1.0 if main_run else 0.35}
        name = (lambda zh, en: label(zh, en)) if main_run else (lambda zh, en: None)
        ax.plot(x, [p["form"]["1.0"]["exact"] * 100 for p in points], "o-", color="C0", **style,
                label=name("合律，温度 1.0", "exact fit, T=1.0"))
        ax.plot(x, [p["form"]["0.8"]["exact"] * 100 for p in points], "s--", color="C0", **style,
                label=name("合律，温度 0.8", "exact fit, T=0.8"))
        ax.plot(x, [p["form"]["1.0"]["clause"] * 100 for p in points], "o-", color="C2", **style,
                label=name("句子分，温度 1.0", "clause score, T=1.0"))
        if "rhyme" in points[-1]["form"]["1.0"]:  # 押韵和全合（尺子读韵书以后才有）
            ax.plot(x, [p["form"]["1.0"]["rhyme"] * 100 for p in points], "^-", color="C1", **style,
                    label=name("押韵，温度 1.0", "rhyme, T=1.0"))
            ax.plot(x, [p["form"]["1.0"]["full"] * 100 for p in points], "d-", color="C4", **style,
                    label=name("全合（句式、韵、平仄），温度 1.0", "full form, T=1.0"))
        second.plot(x, [p["val_loss"] for p in points], "x:", color="C3", **style,
                    label=name("验证损失（右轴）", "val loss (right axis)"))
        ax.annotate(label(f"{minutes} 分钟", f"{minutes} min"), (x[-1], points[-1]["form"]["1.0"]["exact"] * 100),
                    textcoords="offset points", xytext=(-10, -16), fontsize=8, color="C0", **style)
        ceiling = curve["ceiling"]
    ax.axhline(ceiling["exact"] * 100, color="C0", lw=0.8, ls="-.")
    ax.axhline(ceiling["clause"] * 100, color="C2", lw=0.8, ls="-.")
    for key, color in (("rhyme", "C1"), ("full", "C4")):
        if key in ceiling:
            ax.axhline(ceiling[key] * 100, color=color, lw=0.8, ls="-.")
    ax.text(0.3, 96.5, label("点划线：天花板（验证集的真词）", "dash-dot: ceiling (real pieces)"),
            fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_xlabel(label("从开始算起的分钟（2 核 CPU；淡色是更短的一次）", "minutes since start (2 CPU cores; faint = shorter run)"))
    ax.set_ylabel("%")
    second.set_ylabel(label("验证损失", "val loss"))
    handles = ax.get_legend_handles_labels()[0] + second.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8)  # 图例放在图下：不挡线
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"写好了：{out}")


def yardsticks(text):
    """曲线旁边的两条线：天花板（验证集的真词）和随机字的对照。"""
    return {"ceiling": form.overall(form.ceiling(text)), "random_characters": form.overall(form.random_characters(text))}


def write_report(checkpoint, text, name, steps):
    """最后一个检查点的 form.py 报告（和 python scripts/form.py --checkpoint 打印的一样），存进 minutes_runs/。"""
    writer = form.NeuralWriter(checkpoint, "v23", 1.0)
    results = form.evaluate(writer, text, 20, 1337)
    out = REPORTS / "minutes_runs" / f"v23_{name}min_form.txt"
    out.write_text(form.full_report(f"v23 --minutes={name}（训练了 {steps} 步）", results, text, 1.0, 20, 1337) + "\n",
                   encoding="utf-8")
    print(f"写好了：{out}")


def rescore(name):
    """尺子改了：用 checkpoints/form_curve_N/ 里留下的检查点重新量每个点，改写 json（训练的数不动）。"""
    path = REPORTS / f"form_curve_{name}.json"
    keep = ROOT / "checkpoints" / f"form_curve_{name}"
    if not path.exists():
        sys.exit(f"错误：没有 {path}：先跑 python scripts/form_curve.py --minutes {name}")
    result = json.loads(path.read_text(encoding="utf-8"))
    missing = [p["step"] for p in result["points"] if not (keep / f"step{p['step']}.pt").exists()]
    if missing:
        sys.exit(f"错误：{keep} 里没有第 {missing[0]} 步的检查点（只有在这台机器上跑过 --minutes {name} 才有）")
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    for point in result["points"]:
        point["form"] = score(keep / f"step{point['step']}.pt", text)
        print(point["step"], json.dumps(point["form"]["1.0"], ensure_ascii=False), flush=True)
    result.update(yardsticks(text))
    result["rescored"] = date.today().isoformat()
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"写好了：{path}")
    last = result["points"][-1]["step"]
    write_report(keep / f"step{last}.pt", text, name, last)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, help="给 v23 几分钟")
    parser.add_argument("--rescore", help="不训练：重新量 docs/reports/form_curve_N.json 里每个点留下的检查点，例如 --rescore 30")
    parser.add_argument("--render", nargs="+", help="不训练：用这些 docs/reports/form_curve_*.json 重画 docs/form_curve.png")
    args = parser.parse_args()
    if args.render:
        curves = {json.loads(Path(p).read_text(encoding="utf-8"))["minutes"]: json.loads(Path(p).read_text(
            encoding="utf-8")) for p in args.render}
        draw(curves, PICTURES / "form_curve.png")
        return
    if args.rescore:
        rescore(args.rescore)
        return
    if not args.minutes:
        sys.exit("错误：给 --minutes、--rescore 或 --render")
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    name = f"{args.minutes:g}"
    keep = ROOT / "checkpoints" / f"form_curve_{name}"
    keep.mkdir(parents=True, exist_ok=True)
    saved, output, wall = run(args.minutes, keep)
    evals = {e["step"]: e for e in parse_steps(output)}
    points = []
    for seconds, step, checkpoint in saved:
        points.append({"minutes": round(seconds / 60, 2), "step": step, "val_loss": evals[step]["val_loss"],
                       "train_loss": evals[step]["train_loss"], "form": score(checkpoint, text)})
        print(json.dumps(points[-1], ensure_ascii=False), flush=True)
    logs = REPORTS / "minutes_runs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"v23_{name}min.txt").write_text(output, encoding="utf-8")
    result = {"minutes": name, "command": f"python scripts/form_curve.py --minutes {name}", "wall_seconds": round(wall, 1),
              "machine": machine("cpu"), "date": date.today().isoformat(), **yardsticks(text),
              "samples": parse_samples(output), "points": points}
    path = REPORTS / f"form_curve_{name}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"写好了：{path}（墙上时间 {wall / 60:.2f} 分钟）")
    write_report(saved[-1][2], text, name, saved[-1][1])


if __name__ == "__main__":
    main()
