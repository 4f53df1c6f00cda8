"""阶梯报告：在同一预算下训练 babygpt 的每个版本，回答“这个想法带来了什么”。

用法
  python scripts/ladder.py                       # 每个版本用自己的默认设置（在 CPU 上，给 GPU 的大版本用 README 的 CPU 命令）
  python scripts/ladder.py --steps 500           # 每个版本都训练 500 步
  python scripts/ladder.py --seconds 60          # 每个版本训练 60 秒（到时像按 Ctrl-C 一样停下）
  python scripts/ladder.py --only v1,v2 --set n_embed=32 --out /tmp/ladder   # 共用一套配置，只跑两个版本（图也写进 /tmp/ladder）
  python scripts/ladder.py --same                # 同一套超参数（README 的 CPU 命令）、同样 3000 步：只差想法

输出：报告在 --out 目录（默认 docs/reports/），图在 --pictures 目录（默认 docs/，章节直接放这些图；
给了 --out 而没给 --pictures 时，图和报告放在一起）
  ladder.md    表格：参数量、训练速度、损失、用时、“春江”开头的第一首（图用相对路径链接）
  ladder.png   验证损失随步数、随秒数的曲线，每个版本一条
  ladder.json  原始数据；在 GPU 上跑出的 ladder.json 可以用 --gpu 并进表格（docs/reports/ladder_gpu.json）；
               --render 只用已有的 ladder.json 重画表格和图，不再训练
  --same 时写 ladder_same.json、ladder_same.png、ladder_bars.png、form.png，ladder.md 里加上“同一配置”一节（v0 数数的损失是地板）
结果文件只在全部跑完后一次性替换（先写临时文件再改名），中途中断不会留下半截结果。
"""

import argparse
import datetime
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import form
import torch
from versions import (
    REPORTS,
    ROOT,
    cpu_command,
    flags,
    hyperparameters,
    link,
    machine,
    number,
    parse_samples,
    parse_steps,
    pictures_dir,
    pyplot,
    versions,
)

PARAMS = re.compile(r"模型参数 ([\d,]+) 个")
DEVICE = re.compile(r"^设备：(\w+)")
TIMING = re.compile(r"^用时 ([\d.]+) 秒，其中评估 ([\d.]+) 秒")


def applicable(args, script):
    """共用设置只传给有这个参数的版本：比如 --set n_layer=2 不传给还没有 n_layer 的 v1..v5。"""
    return [arg for arg in args if arg[2:].split("=", 1)[0] in flags(script)]


def gpu_sized(script):
    """默认设置是给 GPU 的版本（v11 起）：在 CPU 上改用 README 的 CPU 命令。"""
    return hyperparameters(script)["n_embed"] >= 256


def version_args(script, shared, on_cpu):
    """传给一个版本的参数。大版本在 CPU 上先用 CPU 命令；共用设置写在后面，同名参数以它为准（argparse 取最后一个）。"""
    cpu_defaults = cpu_command(script) if on_cpu and gpu_sized(script) else []
    return [*cpu_defaults, *applicable(shared, script)]


def same_args(script, shared):
    """--same：大家共用 README 的 CPU 命令；后来的版本新加的超参数（v20 的 min_lr……）取它自己 CPU 命令里的值。"""
    names = {arg[2:].split("=", 1)[0] for arg in shared}
    own = [arg for arg in cpu_command(script) if arg[2:].split("=", 1)[0] not in names]
    return [*own, *applicable(shared, script)]


def fmt_seconds(s):
    return f"{int(s // 60)}m{int(s % 60):02d}s" if s >= 60 else f"{s:.0f}s"


class CtrlC:
    """Ctrl-C 时：转给正在训练的版本（它存好检查点、写完词就退出），接着把它的输出读完，再退出，什么也不写。

    不能一收到 Ctrl-C 就不读了：版本脚本往管道里写，管道满了它就一直卡在 print 上，永远退不出来。
    终端里按 Ctrl-C 时子进程自己也收到一次；脚本把 1 秒内重复的 Ctrl-C 当成同一次。"""

    pressed = False
    child = None

    @classmethod
    def handler(cls, *_):
        cls.pressed = True
        if cls.child and cls.child.poll() is None:
            cls.child.send_signal(signal.SIGINT)
            timer = threading.Timer(GRACE_SECONDS, kill_if_running, (cls.child,))  # 过一会儿还不退出就强行结束
            timer.daemon = True
            timer.start()


GRACE_SECONDS = 20  # 收到 Ctrl-C 以后，版本脚本最多还有这么多秒存检查点、写词


def kill_if_running(proc):
    if proc.poll() is None:
        proc.kill()


def run_version(tag, script, args, budget_seconds, env, position):
    """跑一个版本，边跑边报进度；返回从它的输出里读出的结果。"""
    command = [sys.executable, "-u", str(script), *args]
    result = {"version": tag, "script": script.name, "args": args, "evals": [], "samples": {}}
    start = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                            stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    CtrlC.child = proc
    if CtrlC.pressed:  # Ctrl-C 正好落在启动它的那一刻
        CtrlC.handler()
    errors = []  # stderr 另开一个线程读：两个管道哪个满了都会卡住子进程
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    reader.start()
    timer = None
    if budget_seconds:  # 时间到了就像学习者按 Ctrl-C：脚本存好检查点、写完词再退出
        timer = threading.Timer(budget_seconds, proc.send_signal, (signal.SIGINT,))
        timer.start()
    lines = []
    try:
        for line in proc.stdout:  # 一直读到子进程关掉输出（退出）为止，Ctrl-C 以后也读
            lines.append(line)
            if CtrlC.pressed:
                continue
            if parsed := parse_steps(line):
                evaluation = parsed[0]
                step, total = evaluation.pop("step"), evaluation.pop("total")
                result["evals"].append({"step": step, **evaluation})
                done = step - result["evals"][0]["step"]
                eta = budget_seconds - (time.time() - start) if budget_seconds else \
                    (time.time() - start) / done * (total - step) if done else None
                left = f"本版还需约 {fmt_seconds(max(eta, 0))}" if eta is not None else "开始训练"
                print(f"  [{position}] {tag} step {step}/{total} | 验证损失 {evaluation['val_loss']:.4f} | {left}",
                      flush=True)
            elif m := PARAMS.search(line):
                result["parameters"] = int(m[1].replace(",", ""))
            elif m := DEVICE.match(line):
                result["device"] = m[1]
            elif m := TIMING.match(line):
                result["train_loop_seconds"], result["eval_seconds"] = float(m[1]), float(m[2])
        proc.wait()
        reader.join()
    finally:
        CtrlC.child = None
        if timer:
            timer.cancel()
        kill_if_running(proc)  # 出了别的错（比如打印进度失败）：不留下还在训练的子进程
        proc.wait()
    if CtrlC.pressed:
        raise KeyboardInterrupt
    stderr = "".join(errors)
    if proc.returncode != 0 or not result["evals"]:
        sys.exit(f"错误：{script.name} 失败（退出码 {proc.returncode}）：{stderr.strip()[-500:]}")
    result["samples"] = parse_samples("".join(lines))
    final = result["evals"][-1]
    result.update(steps=final["step"], final_train_loss=final["train_loss"], final_val_loss=final["val_loss"],
                  tokens_per_sec=final["tokens_per_sec"], wall_seconds=round(time.time() - start, 1))
    return result


def first_line(text, width=24):
    line = next((s for s in text.splitlines() if s.strip()), "")
    return (line[:width] + ("…" if len(line) > width else "")).replace("|", "｜")


def markdown(report, gpu, pictures=""):
    rows = ["| 版本 | 参数量 | 训练速度（字/秒） | 步数 | 训练损失 | 验证损失 | 用时 | 评估占比 | “春江”开头的第一首（节选） |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["results"]:
        sample = r["samples"].get("春江", "")
        rows.append(f"| {r['script']} | {r['parameters']:,} | {r['tokens_per_sec']:,.0f} | {r['steps']:,} | "
                    f"{r['final_train_loss']:.3f} | **{r['final_val_loss']:.3f}** | {fmt_seconds(r['wall_seconds'])} | "
                    f"{r['eval_seconds'] / r['wall_seconds']:.0%} | {first_line(sample)} |")
    text = [f"# babygpt 阶梯报告\n\n每个版本在同一预算下训练：{report['budget']}。\n",
            f"- 命令：`{report['command']}`",
            f"- 机器：{report['machine']}（设备 {report['device']}）",
            f"- 日期：{report['date']}；总用时 {fmt_seconds(report['total_seconds'])}\n",
            *rows, "", f"![验证损失曲线]({pictures}ladder.png)\n",
            ("“用时”是整个脚本的墙钟时间（含启动、读语料、评估、写词）；训练速度不含评估时间；"
             "评估占比 = estimate_loss 的时间 / 用时。"
             "验证集是 ci.txt 的后 10%，每次评估用同一组批次，所以各版本、各步之间的损失可以直接比较。\n")]
    text.append("## GPU\n")
    if gpu:
        g = gpu["results"][0]
        text += [(f"{g['script']} 的完整配置（默认超参数，参数 {' '.join(g['args'])}）在一块 {gpu['device_name']} 上"
                 f"（主机：{gpu['machine']}；{gpu['date']}）：\n"),
                 "| 版本 | 设备 | 步数 | 训练速度（字/秒） | 训练损失 | 验证损失 | 用时 |", "|---|---|---:|---:|---:|---:|---:|",
                 (f"| {g['script']} | {gpu['device_name']} | {g['steps']:,} | {g['tokens_per_sec']:,.0f} | "
                  f"{g['final_train_loss']:.3f} | **{g['final_val_loss']:.3f}** | {fmt_seconds(g['wall_seconds'])} |"),
                 f"\n命令：`{gpu['command']}`\n"]
    else:
        text.append("这次没有 GPU 可用，所以这里没有 GPU 的数字（不做估计）。\n")
    return "\n".join(text)


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(13, 5.5))
    colors = plt.cm.tab20.colors
    for i, r in enumerate(report["results"]):
        label = r["script"].removeprefix("babygpt_").removesuffix(".py")  # 默认字体没有汉字，标签用英文
        style = {"color": colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20], "marker": ".", "label": label,
                 "linestyle": "--" if i >= 10 else "-"}
        by_step.plot([e["step"] for e in r["evals"]], [e["val_loss"] for e in r["evals"]], **style)
        by_time.plot([e["seconds"] for e in r["evals"]], [e["val_loss"] for e in r["evals"]], **style)
    for ax, xlabel in ((by_step, "training step"), (by_time, "seconds (wall clock)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation loss")
        ax.grid(alpha=0.3)
        low = min(e["val_loss"] for r in report["results"] for e in r["evals"])
        ax.set_ylim(low - 0.1, min(low + 3.5, max(e["val_loss"] for r in report["results"] for e in r["evals"])) + 0.1)
    by_step.set_title("validation loss vs step")
    by_time.set_title("validation loss vs time")
    by_time.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"babygpt ladder: {report['budget_en']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def run_form(args, tag):
    """scripts/form.py 的 measure（在这个进程里，省掉起进程、导入 torch）：合律率和句子分（另加验证集的天花板）。
    量不了（比如词表里没有词牌名）就是 None。"""
    try:
        _, text, results, _ = form.measure([*map(str, args)])
    except SystemExit as e:
        print(f"  {tag}：量不了格律（{str(e.code)[-200:]}）", flush=True)
        return None
    found = form.as_json(results, text)
    print(f"  {tag}：合律 {found['overall']['exact']:.0%}，句子分 {found['overall']['clause']:.0%}", flush=True)
    return found


def run_counting(script):
    """v0（纯 Python 数数）：它的验证损失是神经网络要打败的地板。"""
    start = time.time()
    r = subprocess.run([sys.executable, str(script), "--max_new_tokens=30"], capture_output=True, text=True,
                       encoding="utf-8", check=False, cwd=ROOT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        sys.exit(f"错误：{script.name} 失败：{r.stderr.strip()[-300:]}")
    return {"script": script.name, "val_loss": float(re.search(r"验证损失 ([\d.]+)", r.stdout)[1]),
            "wall_seconds": round(time.time() - start, 1), "samples": parse_samples(r.stdout)}


FORM_TEMPERATURES = {"form": 1.0, "form_t08": 0.8}  # 结果里的键 -> 写词的温度


def form_cells(result):
    """合律、句子分两列，每列“温度 1.0 / 温度 0.8”；押韵、平仄、全合一列（温度 1.0）。没量过的写 —。"""
    cells = []
    for measure in ("exact", "clause"):
        found = [f"{result[key]['overall'][measure]:.0%}" if result.get(key) else "—" for key in FORM_TEMPERATURES]
        cells.append(" / ".join(found))
    overall = (result.get("form") or {}).get("overall", {})
    cells.append(" / ".join(f"{overall[m]:.0%}" if overall.get(m) is not None else "—" for m in ("rhyme", "tones", "full")))
    return " | ".join(cells)


def form_note(report, pictures=""):
    """格律两列的说明，和验证集真词的天花板。"""
    form = next((r["form"] for r in report["results"] if r.get("form")), None)
    if form is None:
        return ""
    ceiling = form["ceiling"]
    pieces = max(len(tune["shapes"]) for tune in form["tunes"].values() if tune)
    return (f"“合律”“句子分”是第二把尺子（`scripts/form.py`）：每个版本训练完，从八个常见词牌（浣溪沙、鹧鸪天……）的"
            f"“<词牌> ”开头各写 {pieces} 首，"
            f"看每一句的字数合不合这个词牌（合律 = 整首的句式在训练集里有据可查；句子分 = 和最近的句式逐句比，字数对的句子占几成），"
            "再看押韵、平仄（句式不合的词记 0，所以这两个数不会高过合律；全合 = 句式、韵脚、平仄都守住）。"
            "每格两个数：写词的温度 1.0 / 0.8（0.8 更保守，常见的字更常被挑中）。"
            f"天花板是验证集里的真词：合律 {ceiling['exact']:.0%}，句子分 {ceiling['clause']:.0%}。"
            f"图：[form.png]({pictures}form.png)。\n")


def grouped(tags, order):
    """["v14", "v15", …, "v21"] -> "v14–v21"：在 order（表里的顺序）里连着的三个以上写成一段，其余用顿号隔开。"""
    spans, at = [], {tag: i for i, tag in enumerate(order)}
    for tag in tags:
        if spans and at[tag] == at[spans[-1][-1]] + 1:
            spans[-1].append(tag)
        else:
            spans.append([tag])
    return "、".join(f"{s[0]}–{s[-1]}" if len(s) >= 3 else "、".join(s) for s in spans)


def ran_versions(command):
    """一次运行的命令里 --only 的版本（没写 --only 就是 None：跑了全部）。"""
    words = command.split()
    return words[words.index("--only") + 1].split(",") if "--only" in words[:-1] else None


def provenance(report):
    """命令、机器、日期；--merge 出来的报告有几次运行，每次一行，写明表里哪些版本来自这一次；
    这一次跑过、表里却换成了后来一次的版本，也写明（免得命令里的版本和括号里的对不上）。"""
    if "runs" not in report:
        return [f"- 命令：`{report['command']}`", f"- 机器：{report['machine']}（设备 {report['device']}）",
                f"- 日期：{report['date']}；总用时 {fmt_seconds(report['total_seconds'])}\n"]
    order = [r["version"] for r in report["results"]]
    source = {r["version"]: r["run"] for r in report["results"]}
    lines = []
    for i in report["runs_used"]:
        run = report["runs"][i]
        tags = [r["version"] for r in report["results"] if r["run"] == i]
        elsewhere = [tag for tag in ran_versions(run["command"]) or [] if tag in source and source[tag] != i]
        note = "".join(f"；它跑的 {tag} 用第 {source[tag] + 1} 次的" for tag in elsewhere)
        lines.append(f"- 第 {i + 1} 次（表里的 {grouped(tags, order)}{note}）：`{run['command']}`；{run['machine']}；"
                     f"{run['date']}，用时 {fmt_seconds(run['total_seconds'])}")
    if len(report["runs_used"]) > 1:  # 损失每次都一样（CPU 上 float32 逐位可重复），速度不是
        lines.append("- 训练速度和用时只在同一次的版本之间比：每次机器的忙闲不同。")
    return [*lines, "- v0 的数数来自最后一次。\n"]


def same_markdown(report, pictures=""):
    v0 = report["counting"]
    rows = [("| 版本 | 参数量 | 训练速度（字/秒） | 步数 | 训练损失 | 验证损失 | 比上一版 | 比 v0 数数 | 合律（温度 1.0 / 0.8） | "
             "句子分（1.0 / 0.8） | 押韵 / 平仄 / 全合（1.0） | 用时 |"),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            (f"| {v0['script']}（数数，不训练） | | | | | **{v0['val_loss']:.3f}** | | | {form_cells(v0)} | "
            f"{fmt_seconds(v0['wall_seconds'])} |")]
    previous = None
    for r in report["results"]:
        change = f"{r['final_val_loss'] - previous:+.3f}" if previous is not None else ""
        rows.append(f"| {r['script']} | {r['parameters']:,} | {r['tokens_per_sec']:,.0f} | {r['steps']:,} | "
                    f"{r['final_train_loss']:.3f} | **{r['final_val_loss']:.3f}** | {change} | "
                    f"{r['final_val_loss'] - v0['val_loss']:+.3f} | {form_cells(r)} | {fmt_seconds(r['wall_seconds'])} |")
        previous = r["final_val_loss"]
    return "\n".join([
        "## 同一配置：只差想法\n",
        (f"每个版本用同一套超参数（README 的 CPU 命令里这个版本有的那些）训练同样多的步数：{report['budget']}。"
        "两行之间唯一的不同就是那一版的想法。v0 不训练，只数数：它的验证损失是一条横线，神经网络要先打败它。\n"),
        *provenance(report), *rows, "", f"![每个版本 3000 步的验证损失和比上一版的变化]({pictures}ladder_bars.png)\n",
        f"![同一配置下的验证损失曲线]({pictures}ladder_same.png)\n", form_note(report, pictures),
        ("“比上一版”是验证损失的变化（负数 = 这一版的想法让损失降了）。v10 起的 dropout 在这条命令里是 0"
        "（3000 步远没到过拟合），所以 v10 和 v9 一样；v11、v12、v13、v15 的训练代码和上一版相同，数字也相同。"
        "v14 起的版本用 `--set dtype=float32` 跑（`--dtype=auto` 是开训前量出来的，两次可能选得不一样）；"
        "v14 的 q、k、v 合成一个 Linear、输出层补到 64 的倍数，初始的随机数取法变了，所以和 v13 差一点。"
        "训练速度是每个版本跑一次的读数，同一台机器上前后能差三成，比速度要用 scripts/bench.py。\n")])


def plot_same(report, path):
    plt, label = pyplot()
    fig, ax = plt.subplots(figsize=(12, 6.5))
    colors = plt.cm.tab20.colors
    for i, r in enumerate(report["results"]):
        ax.plot([e["step"] for e in r["evals"]], [e["val_loss"] for e in r["evals"]], marker=".",
                color=colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20], linestyle=("-", "--", "-.")[min(i // 10, 1)
                                                                                                   + (i >= 15)],
                label=r["script"].removeprefix("babygpt_").removesuffix(".py"))
    v0 = report["counting"]["val_loss"]
    ax.axhline(v0, color="black", linewidth=2, linestyle=":", label=label(f"v0 数数（{v0:.2f}）", f"v0 counting ({v0:.2f})"))
    finals = [r["final_val_loss"] for r in report["results"]]
    ax.set_ylim(min(finals + [v0]) - 0.15, max(finals + [v0]) + 1.2)
    ax.set_xlabel(label("训练步数", "training step"))
    ax.set_ylabel(label("验证损失", "validation loss"))
    ax.set_title(label(f"同一配置、同样步数（{report['budget'].split('，')[0]}）：每个想法带来了什么",
                       "same configuration, same steps: what each idea buys"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def plot_bars(report, path):
    """docs/ladder_bars.png：每个版本一根柱子（3000 步的验证损失），v0 数数的地板是一条横线，
    柱子上写着比上一版降了（绿）还是升了（红）多少。比 23 条曲线一眼好读。"""
    plt, label = pyplot()
    results = report["results"]
    losses = [r["final_val_loss"] for r in results]
    changes = [None] + [b - a for a, b in itertools.pairwise(losses)]
    colors = ["tab:gray" if c is None or abs(c) < 0.0005 else "tab:green" if c < 0 else "tab:red" for c in changes]
    fig, ax = plt.subplots(figsize=(13, 5.5))
    x = range(len(results))
    ax.bar(x, losses, color=colors, width=0.7)
    v0 = report["counting"]["val_loss"]
    ax.axhline(v0, color="black", linestyle=":", linewidth=1.5,
               label=label(f"地板：v0 数数（{v0:.3f}）", f"floor: v0 counting ({v0:.3f})"))
    for i, (loss, change) in enumerate(zip(losses, changes)):
        text = f"{loss:.3f}" if change is None else "±0" if abs(change) < 0.0005 else f"{change:+.3f}"
        ax.text(i, loss + 0.02, text, ha="center", va="bottom", fontsize=8, rotation=90)
    ax.set_xticks(list(x), [r["version"] for r in results])
    low, high = min(losses + [v0]), max(losses + [v0])
    ax.set_ylim(low - 0.3, high + 0.35)
    ax.set_ylabel(label("验证损失（越低越好）", "validation loss (lower is better)"))
    ax.set_title(label(f"同一配置、同样步数（{report['budget'].split('，')[0]}）：柱子上是比上一版的变化（绿 = 降，红 = 升）",
                       "same configuration, same steps: change against the previous version (green = better)"))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def plot_form(report, path):
    """docs/form.png：每个版本的合律率和句子分，验证集的真词（天花板）和 v0 数数（地板）画成横线。"""
    plt, label = pyplot()
    measured = [r for r in report["results"] if r.get("form")]
    names = [r["version"] for r in measured]
    fig, ax = plt.subplots(figsize=(12, 5.5))
    x = range(len(measured))
    for key, zh, en, color in (("exact", "合律率", "exact fit", "tab:red"), ("clause", "句子分", "clause score", "tab:blue")):
        ax.plot(x, [r["form"]["overall"][key] for r in measured], marker="o", color=color,
                label=label(f"{zh}（温度 1.0）", f"{en} (T=1.0)"))
        cool = [(i, r["form_t08"]["overall"][key]) for i, r in enumerate(measured) if r.get("form_t08")]
        if cool:  # 温度 0.8：量过的版本才画
            ax.plot(*zip(*cool, strict=True), marker="s", color=color, alpha=0.5, linestyle="--",
                    label=label(f"{zh}（温度 0.8）", f"{en} (T=0.8)"))
        ceiling = measured[0]["form"]["ceiling"][key]
        ax.axhline(ceiling, color=color, linestyle="--", linewidth=1,
                   label=label(f"{zh}的天花板：验证集的真词（{ceiling:.0%}）", f"{en} ceiling: real ci ({ceiling:.0%})"))
        floor = (report["counting"].get("form") or {}).get("overall", {}).get(key)
        if floor is not None:
            ax.axhline(floor, color=color, linestyle=":", linewidth=1.5,
                       label=label(f"{zh}的地板：v0 数数（{floor:.0%}）", f"{en} floor: v0 counting ({floor:.0%})"))
    ax.set_xticks(list(x), names)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(label("版本（同一配置、同样步数）", "version (same configuration, same steps)"))
    ax.set_ylabel(label("比例", "share"))
    ax.set_title(label("第二把尺子：写出的词合不合词牌的格律（八个常见词牌的平均）",
                       "second yardstick: does the model keep the form of the tune"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="只跑这些版本，逗号分隔，例如 v1,v2,v10")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="每个版本都训练这么多步（覆盖 max_iters）")
    budget.add_argument("--seconds", type=float, help="每个版本训练这么多秒")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="传给每个版本的参数（共用一套配置），可以写多次，例如 --set n_embed=32 --set data=小.txt")
    parser.add_argument("--device", help="传给每个版本的 --device（默认各脚本自动选择）")
    parser.add_argument("--out", default=str(REPORTS), help="报告（md、json）写到这里，默认 docs/reports/")
    parser.add_argument("--pictures", help="图写到这里（默认：没给 --out 时 docs/，给了就和报告放在一起）")
    parser.add_argument("--gpu", help="在 GPU 上用本工具跑出的 ladder.json，并进报告的 GPU 一节（默认：--out 里有 ladder_gpu.json 就用它）")
    parser.add_argument("--render", metavar="LADDER_JSON", help="不训练，只用已有的 ladder.json 重新画表格和图")
    parser.add_argument("--same", action="store_true", help="每个版本用同一套超参数（README 的 CPU 命令），默认 3000 步")
    parser.add_argument("--form", type=int, default=20,
                        help="--same 时每个版本训练完，每个词牌写几首量格律（scripts/form.py；默认 20，0 = 不量）")
    parser.add_argument("--merge", action="store_true",
                        help="只重跑 --only 的版本，其余版本沿用 --out 里上一次的结果（报告里写明每个版本来自哪一次）")
    args = parser.parse_args()
    gpu = json.loads(Path(args.gpu).read_text(encoding="utf-8")) if args.gpu else None
    if args.render:
        write_outputs(json.loads(Path(args.render).read_text(encoding="utf-8")), gpu, Path(args.out), same=args.same,
                      pictures=args.pictures)
        return

    available = {tag: path for tag, path in versions().items() if number(path) >= 1}  # v0 不是神经网络，另算
    chosen = args.only.split(",") if args.only else list(available)
    unknown = [tag for tag in chosen if tag not in available]
    if unknown:
        sys.exit(f"错误：没有这些版本：{', '.join(unknown)}（有：{', '.join(available)}）")
    if any("=" not in item for item in args.set):
        sys.exit("错误：--set 要写成 NAME=VALUE")
    shared = [f"--{item}" for item in args.set] + ([f"--device={args.device}"] if args.device else [])
    if args.steps:
        shared.append(f"--max_iters={args.steps}")
    if args.seconds:
        shared.append("--max_iters=1000000000")
    if args.same:  # 同一套超参数：README 的 CPU 命令（取自 v11 的说明），步数默认 3000
        same = cpu_command(available["v11"])
        shared = [a for a in same if not a.startswith("--max_iters=")] + [f"--max_iters={args.steps or 3000}"] + shared

    on_cpu = args.device == "cpu" or (not args.device and not torch.cuda.is_available()
                                      and not torch.backends.mps.is_available())
    results, start = [], time.time()
    signal.signal(signal.SIGINT, CtrlC.handler)  # Ctrl-C：等正在跑的版本停好，再退出，不写结果
    with tempfile.TemporaryDirectory() as scratch:  # 检查点和 wandb 记录放临时目录，跑完即删
        env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": scratch, "WANDB_SILENT": "true"}
        try:
            for i, tag in enumerate(chosen, 1):
                if CtrlC.pressed:
                    raise KeyboardInterrupt
                done = time.time() - start
                left = done / (i - 1) * (len(chosen) - i + 1) if i > 1 else None
                print(f"[{i}/{len(chosen)}] {available[tag].name}" + (f"（全部还需约 {fmt_seconds(left)}）" if left else ""),
                      flush=True)
                run_args = [*(same_args(available[tag], shared) if args.same else
                              version_args(available[tag], shared, on_cpu)), f"--out_dir={scratch}"]
                result = run_version(tag, available[tag], run_args, args.seconds, env, f"{i}/{len(chosen)}")
                result["args"] = [a for a in run_args if not a.startswith("--out_dir=")]
                if args.same and args.form:  # 第二把尺子：它写的词合不合词牌的格律（温度 1.0 和 0.8 各量一次）
                    checkpoint = ["--checkpoint", Path(scratch) / f"{available[tag].stem}.pt", "--version", tag]
                    for key, temperature in FORM_TEMPERATURES.items():
                        result[key] = run_form([*checkpoint, "--pieces", args.form, "--temperature", temperature], tag)
                results.append(result)
            counting = run_counting(versions()["v0"]) if args.same and "v0" in versions() else None
            if counting and args.form:
                for key, temperature in FORM_TEMPERATURES.items():
                    counting[key] = run_form(["--counting", "--pieces", args.form, "--temperature", temperature], "v0")
            if CtrlC.pressed:  # 在两个版本之间按的
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.exit("\n中断：没有写任何结果（原来的报告和图原样保留）。")

    if args.same:
        budget = f"{args.steps or 3000} 步，" + " ".join(a for a in shared if not a.startswith("--max_iters="))
        budget_en = f"{args.steps or 3000} steps"
    elif args.seconds:
        budget, budget_en = f"每个版本 {args.seconds:g} 秒", f"{args.seconds:g} s per version"
    elif args.steps:
        budget, budget_en = f"每个版本 {args.steps} 步", f"{args.steps} steps per version"
    else:
        budget = "每个版本的默认设置" + ("（v11 起的大版本用 README 的 CPU 命令）" if on_cpu else "")
        budget_en = "each version's defaults"
    if args.set and not args.same:
        budget += "，共用设置 " + " ".join(f"--{s}" for s in args.set)
        budget_en += ", shared " + " ".join(f"--{s}" for s in args.set if not s.startswith("data="))
    devices = sorted({r.get("device", "?") for r in results})
    report = {"budget": budget, "budget_en": budget_en, "command": "python scripts/ladder.py " + " ".join(sys.argv[1:]),
              "machine": machine(), "device": "、".join(devices), "date": datetime.date.today().isoformat(),
              "total_seconds": round(time.time() - start, 1), "results": results}
    if "cuda" in devices:
        report["device_name"] = torch.cuda.get_device_name(0)
    if counting:
        report["counting"] = counting
    if args.merge:
        report = merged(report, Path(args.out) / ("ladder_same.json" if args.same else "ladder.json"))

    write_outputs(report, gpu, Path(args.out), same=args.same, pictures=args.pictures)


def merged(report, old_path):
    """--merge：这次跑的版本换掉（或加进）上一次报告里的同名版本，其余版本的结果原样保留，按版本号排好。
    每个结果记着它来自哪一次运行（命令、日期、机器），表格下面一一列出。"""
    if not old_path.exists():
        sys.exit(f"错误：--merge 要有上一次的 {old_path}")
    old = json.loads(old_path.read_text(encoding="utf-8"))
    runs = old.get("runs") or [{key: old[key] for key in ("command", "machine", "date", "total_seconds")}]
    this_run = {key: report[key] for key in ("command", "machine", "date", "total_seconds")}
    for result in old["results"]:
        result.setdefault("run", 0)
    for result in report["results"]:
        result["run"] = len(runs)
    fresh = {r["version"] for r in report["results"]}
    results = [r for r in old["results"] if r["version"] not in fresh] + report["results"]
    results.sort(key=lambda r: int(r["version"][1:]))
    used = sorted({r["run"] for r in results})
    return {**report, "results": results, "runs": [*runs, this_run], "runs_used": used,
            "total_seconds": sum(run["total_seconds"] for run in [*runs, this_run])}


def write_outputs(report, gpu, out, same=False, pictures=None):
    """写 ladder.md 和这次的 json（在 out）、png（在 pictures）。ladder.md 两节都有：各版本默认设置（ladder.json）、
    同一配置（ladder_same.json）。"""
    pictures = pictures_dir(out, pictures)
    if gpu is None and (out / "ladder_gpu.json").exists():  # 没给 --gpu：沿用报告旁边的 GPU 结果，重跑 CPU 的几节不把它丢掉
        gpu = json.loads((out / "ladder_gpu.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    pictures.mkdir(parents=True, exist_ok=True)
    prefix = link(pictures, out) + "/" if pictures.resolve() != out.resolve() else ""  # ladder.md 里图的相对路径
    kind = "ladder_same" if same else "ladder"
    other = out / ("ladder.json" if same else "ladder_same.json")
    other = json.loads(other.read_text(encoding="utf-8")) if other.exists() else None
    default_report, same_report = (other, report) if same else (report, other)
    names = [f"{kind}.json", "ladder.md", f"{kind}.png"]
    if same and report.get("counting"):
        names.append("ladder_bars.png")
    if same and any(r.get("form") for r in report["results"]):
        names.append("form.png")
    where = {name: pictures if name.endswith(".png") else out for name in names}
    tmp = {name: where[name] / f".{name}.tmp" for name in names}
    tmp[f"{kind}.json"].write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    text = markdown(default_report, gpu, prefix) if default_report else "# babygpt 阶梯报告\n"
    if same_report and same_report.get("counting"):
        text += "\n" + same_markdown(same_report, prefix)
    tmp["ladder.md"].write_text(text, encoding="utf-8")
    (plot_same if same else plot)(report, tmp[f"{kind}.png"])
    if "form.png" in tmp:
        plot_form(report, tmp["form.png"])
    if "ladder_bars.png" in tmp:
        plot_bars(report, tmp["ladder_bars.png"])
    for name, path in tmp.items():  # 文件都写好了才一起换上
        os.replace(path, where[name] / name)
    print(f"写好了：{out / 'ladder.md'}、{out / f'{kind}.json'}、{pictures / f'{kind}.png'}")


if __name__ == "__main__":
    main()
