"""v23 的扫描：几种大小 × 几种字数（× dropout），每一次都从头训练、学习率计划拉满；量验证损失，也量格律。

用法
  OMP_NUM_THREADS=1 python scripts/budget_sweep.py                   # 跑表里还没跑的，一次一个（边工作边跑：给它一个核）
  python scripts/budget_sweep.py --jobs 12 --device cuda              # 有 GPU 时同时跑 12 个
  python scripts/budget_sweep.py --list                                # 只列出哪些跑过、哪些没跑、哪些今天的 v23 做不出
  python scripts/budget_sweep.py --fit                                 # 不训练：拟合损失模型，写 docs/reports/budget.md 和 docs/budget.png
  python scripts/budget_sweep.py --speeds                              # 不训练：量这台机器上每个大小的速度（budget.md 的最后一节用）

为什么按字数、不按分钟
  看了 D 个字以后的损失，和在哪台机器上、旁边还跑着什么都几乎无关（同样的精度、同样的种子）。所以扫描可以分几次、
  在不同的机器上跑：每跑完一次，结果就追加一行 JSON 到 docs/reports/budget_runs.jsonl；再运行时跳过已经有的（接着跑，不重来）。
  每次的 batch 32、block 128、升温 1/30 的步数、余弦降到十分之一，和 v23 的 --minutes 一样；评估用 50 批（更准），
  只在一半和最后评估，只在最后存检查点。
  学习率和 v23 的 --minutes 不一样：表里 46 次有 42 次用 2e-3（降到 2e-4）；另外 4 次是 128 宽、256 宽在 8M 字上的
  1e-3 和 4e-3，两个宽度都是 4e-3 最好，所以 v23 的 --minutes 用 4e-3（降到 4e-4）。

今天的 v23 做得出哪几行
  docs/reports/budget_runs.jsonl 的 46 次用的 v23 还有 --tie（嵌入表和输出层共用）和 --decay_2d（二维权重衰减）两个开关，
  默认都关，piece_start 默认 0（不从词的开头切）。今天的 v23 总是共用那张表，没有这两个开关，piece_start 默认 0.5。
  所以这里每次都写明 --piece_start（表里没写的是 0），不传 --tie、--decay_2d：命令对今天的 v23 都有效
  （tests/test_budget.py 用 v23 自己的参数解析检查每一条）。按开关算，今天的 v23 照原样做得出的只有共用表的那一行
  （e256-7.99949M-drop0.1-lr0.002-tie1）；其余 45 行都不共用表（其中一行还有 decay_2d），它做不出：
  --list 标出它们，扫描跳过它们，不会把共用表的结果记成不共用的。
"""

import argparse
import ast
import contextlib
import functools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from versions import PICTURES, REPORTS, ROOT, link, machine, parse_steps, pyplot, write_report

SCRIPT = ROOT / "babygpt_v23_budget.py"
RESULTS = REPORTS / "budget_runs.jsonl"
TOKENS_PER_STEP = 32 * 128  # batch_size × block_size


def v23_sizes():
    """{宽度: (n_layer, n_head, n_kv_head)}：直接读 v23 里的 SIZES（只读源码，不用 import torch），不另抄一份。"""
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "SIZES")
    return {size[0]: size[1:] for size in ast.literal_eval(node.value)}


SIZES = v23_sizes()
TRAIN_CHARACTERS = 1_856_457  # ci.txt 的前 90%：多于这么多字，训练集就看了不止一遍


def cannot_make(run):
    """今天的 v23 照这一次的设置做不出来的原因；做得出就是 None。"""
    if run.get("decay_2d"):
        return "今天的 v23 没有 --decay_2d"
    if not run.get("tie"):
        return "今天的 v23 总是共用嵌入表和输出层，这一次不共用"
    return None


def run_key(run):
    """一次训练的名字：同样的设置同样的名字，跳过已经跑过的就靠它。"""
    extras = "".join(f"-{k}{run[k]:g}" for k in ("tie", "piece_start", "decay_2d") if run.get(k))
    return (f"e{run['n_embed']}-{run['tokens'] / 1e6:g}M-drop{run['dropout']:g}-lr{run['lr']:g}" + extras)


def plan():
    """要跑的，重要的排在前面（时间不够时先有它们）。"""
    runs = []

    def add(n_embed, millions, dropout=None, lr=2e-3, **extras):
        tokens = int(millions * 1e6) // TOKENS_PER_STEP * TOKENS_PER_STEP
        if dropout is None:  # 这次扫描的规则：看了不止一遍就用 0.1（v23 的 --minutes 按大小定，见 docs/reports/budget.md）
            dropout = 0.1 if tokens > TRAIN_CHARACTERS else 0.0
        runs.append({"n_embed": n_embed, "tokens": tokens, "dropout": dropout, "lr": lr, **extras})

    for millions in (2, 4, 8, 16, 1):  # 主表：大小 × 字数，dropout 按 v23 的规则
        for n_embed in (64, 128, 192, 256, 384):
            add(n_embed, millions)
    for millions in (4, 8, 16):  # 第三个轴：看了不止一遍时，dropout 0 和 0.2
        for n_embed in (128, 192, 256, 384):
            for dropout in (0.0, 0.2):
                add(n_embed, millions, dropout)
    for variant in ({"piece_start": 1.0}, {"piece_start": 0.5}, {"tie": 1}, {"decay_2d": 0.1}):  # 挑中的大小附近的几个想法
        for n_embed, millions in ((256, 8), (192, 16)):
            add(n_embed, millions, **variant)
    for n_embed, millions in ((128, 8), (256, 8)):  # 学习率：2e-3 的一半和两倍
        for lr in (1e-3, 4e-3):
            add(n_embed, millions, lr=lr)
    for n_embed, millions in ((512, 8), (512, 16), (512, 32), (256, 32), (384, 32), (192, 32)):  # 再大、再多（GPU 上）
        add(n_embed, millions)
    return runs


def done_keys(path):
    if not path.exists():
        return set()
    return {json.loads(line)["key"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def command(run, out_dir, device):
    n_layer, n_head, n_kv_head = SIZES[run["n_embed"]]
    steps = run["tokens"] // TOKENS_PER_STEP
    args = {"batch_size": 32, "block_size": 128, "n_embed": run["n_embed"], "n_layer": n_layer, "n_head": n_head,
            "n_kv_head": n_kv_head, "max_iters": steps, "eval_interval": max(1, steps // 2), "eval_iters": 50,
            "warmup_iters": max(1, steps // 30), "learning_rate": run["lr"], "min_lr": run["lr"] / 10,
            "dropout": run["dropout"], "dtype": "bfloat16", "compile": 0, "prompts": "春江", "max_new_tokens": 20,
            "wandb_mode": "disabled", "out_dir": out_dir,
            "piece_start": run.get("piece_start", 0)}  # 表里的 v23 默认 0，今天的默认 0.5：写明
    # tie、decay_2d 不传：今天的 v23 没有这两个开关（总是共用），做不出的那几次 sweep 不跑（见 cannot_make）
    if device:
        args["device"] = device
    return [sys.executable, str(SCRIPT), *(f"--{k}={v}" for k, v in args.items())]


def form(checkpoint, temperature):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "form.py"), "--checkpoint", checkpoint,
                          "--temperature", str(temperature), "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["overall"]


def train_and_score(run, device):
    """训练一次、量格律（温度 1.0 和 0.8），返回要存的一行。"""
    with tempfile.TemporaryDirectory() as out_dir:
        began = time.time()
        done = subprocess.run(command(run, out_dir, device), capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{run_key(run)} 训练失败：{done.stderr.strip()[-500:]}")
        evals = parse_steps(done.stdout)
        trained = time.time() - began
        checkpoint = str(Path(out_dir) / f"{SCRIPT.stem}.pt")
        scores = {str(t): form(checkpoint, t) for t in (1.0, 0.8)}
    params = next(int(line.split("模型参数 ")[1].split(" ")[0].replace(",", "")) for line in done.stdout.splitlines()
                  if "模型参数" in line)
    return {"key": run_key(run), **run, "params": params, "steps": run["tokens"] // TOKENS_PER_STEP,
            "val_loss": evals[-1]["val_loss"], "train_loss": evals[-1]["train_loss"], "evals": evals,
            "form": scores, "train_seconds": round(trained, 1), "device": device or "auto",
            "machine": machine(device), "date": date.today().isoformat()}


def sweep(args):
    results = Path(args.results)
    todo = [run for run in plan() if run_key(run) not in done_keys(results)]
    gone = [run for run in todo if cannot_make(run)]
    if gone:
        print(f"跳过 {len(gone)} 次：今天的 v23 做不出（不共用嵌入表的、--decay_2d 的；python scripts/budget_sweep.py --list）")
    todo = [run for run in todo if not cannot_make(run)]
    if args.max_tokens:
        todo = [run for run in todo if run["tokens"] <= args.max_tokens]
    if args.only:
        todo = [run for run in todo if run["n_embed"] in {int(x) for x in args.only.split(",")}]
    print(f"还要跑 {len(todo)} 次（已有 {len(done_keys(results))} 次，在 {results}）", flush=True)
    lock, stop_at = threading.Lock(), time.time() + args.stop_after if args.stop_after else None

    def one(run):
        if stop_at and time.time() > stop_at:
            return
        try:
            row = train_and_score(run, args.device)
        except (RuntimeError, subprocess.CalledProcessError, StopIteration, IndexError) as e:
            print(f"失败：{run_key(run)}：{e}", flush=True)
            return
        with lock, results.open("a", encoding="utf-8") as f:  # 跑完一次写一行：中途停下，跑完的都不丢
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{row['key']}: 验证损失 {row['val_loss']:.4f}，合律 {row['form']['1.0']['exact']:.0%}"
              f"（温度 0.8：{row['form']['0.8']['exact']:.0%}），{row['train_seconds']:.0f} 秒", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))


# ---------------- 拟合和报告 ----------------
@functools.cache
def v23():
    """v23 这个脚本（当模块读进来，不训练）：规则里的函数用它自己的，不抄一份。"""
    from versions import load
    return load(SCRIPT)


@functools.cache
def block_params(n_embed):
    """块里的参数个数（不算嵌入表和输出层：它们随词表变，和“模型有多大”关系不大）：用 v23 自己的模型数，和它的规则一样。"""
    n_layer, n_head, n_kv_head = SIZES[n_embed]
    script = v23()
    vars(script).update(n_embed=n_embed, n_layer=n_layer, n_head=n_head, n_kv_head=n_kv_head)
    return sum(p.numel() for name, p in script.BabyGPT(100).named_parameters() if name.startswith("blocks."))


def effective(tokens, repeat_decay, unique=TRAIN_CHARACTERS):
    """Muennighoff 等 2023：多看的第 R 遍越来越不值钱。D' = U + U·R*·(1 − e^(−R/R*))，R = D/U − 1。"""
    if tokens <= unique or repeat_decay == math.inf:
        return tokens
    return unique + unique * repeat_decay * (1 - math.exp(-(tokens / unique - 1) / repeat_decay))


def main_table(rows):
    """{(宽度, 字数): 这一格最好的一次}：学习率 2e-3、没有别的改动；dropout 取最好的那个（规则要学的是它）。"""
    best = {}
    for row in rows:
        if row["lr"] != 2e-3 or any(row.get(k) for k in ("tie", "piece_start", "decay_2d")):
            continue
        cell = (row["n_embed"], row["tokens"])
        if cell not in best or row["val_loss"] < best[cell]["val_loss"]:
            best[cell] = row
    return best


def fit(points):
    """L(N, D) = E + A/N^α + B/D'^β：α、β、R* 在格子上搜，E、A、B 用最小二乘（非负）。返回 (均方根误差, 常数)。"""
    import torch
    losses = torch.tensor([loss for _, _, loss in points], dtype=torch.float64)
    found = None
    grid = [x / 100 for x in range(5, 151, 5)]
    for repeat_decay in (1, 2, 3, 5, 8, 15, 30, math.inf):
        for alpha in grid:
            for beta in grid:
                X = torch.tensor([[1.0, n ** -alpha, effective(d, repeat_decay) ** -beta] for n, d, _ in points],
                                 dtype=torch.float64)
                solution = torch.linalg.lstsq(X, losses[:, None]).solution.flatten()
                if (solution < 0).any():
                    continue
                rmse = ((X @ solution - losses) ** 2).mean().sqrt().item()
                if found is None or rmse < found[0]:
                    E, A, B = solution.tolist()
                    found = (rmse, {"E": E, "A": A, "alpha": alpha, "B": B, "beta": beta, "repeat_decay": repeat_decay})
    return found


def predict(c, n, d):
    return c["E"] + c["A"] / n ** c["alpha"] + c["B"] / effective(d, c["repeat_decay"]) ** c["beta"]


def measure_speeds(device):
    """每个大小训练一步、评估一次各要几秒（v23 自己的 measure_time，每种精度都量）：写进 docs/reports/budget_speeds.json。"""
    import torch
    from versions import load
    v23 = load(SCRIPT)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    names = ["float32"] + (["bfloat16"] if device == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported() else [])
    amps = {n: torch.autocast(device, dtype=torch.bfloat16) if n == "bfloat16" else contextlib.nullcontext()
            for n in names}
    vocab = len(set((ROOT / "ci.txt").read_text(encoding="utf-8")))
    speeds = {}
    for n_embed, (n_layer, n_head, n_kv_head) in SIZES.items():
        vars(v23).update(batch_size=32, block_size=128, eval_iters=10, n_embed=n_embed, n_layer=n_layer, n_head=n_head,
                         n_kv_head=n_kv_head, dropout=0.1 if n_embed >= 256 else 0.0)  # 和 v23 的规则一样
        model = v23.BabyGPT(vocab).to(device)
        seconds, evals = v23.measure_time(model, v23.make_optimizer(model, device), 0, device, amps)
        speeds[n_embed] = {name: {"step": seconds[name], "eval": evals[name]} for name in names}
        print(n_embed, {name: f"{TOKENS_PER_STEP / seconds[name]:,.0f} 字/秒" for name in names}, flush=True)
    out = REPORTS / "budget_speeds.json"
    out.write_text(json.dumps({"machine": machine(device), "device": device, "date": date.today().isoformat(),
                               "command": "python scripts/budget_sweep.py --speeds", "speeds": speeds},
                              ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"写好了：{out}")


def picks(constants, speeds, minutes_list=(5, 10, 20, 30)):
    """v23 的规则在这台机器上会挑什么：{分钟: [(宽度, 字数, 预测损失, 精度), …]}，预测最好的在前，每个宽度一个。
    和 v23 一样：留 5%，评估 11 次；不算 v23 开训前量各个大小用掉的时间（那要在真的跑的时候才知道）。"""
    chosen = {}
    for minutes in minutes_list:
        options = {}
        for n_embed, by_precision in speeds.items():
            # 精度和 v23 挑得一样（同一个函数）：bf16 要快过 1.5 倍才用，不是谁快用谁
            name = v23().pick_precision({p: t["step"] for p, t in by_precision.items()})[0]
            t = by_precision[name]
            steps = int((minutes * 60 * 0.95 - 11 * t["eval"]) / t["step"])
            if steps > 0:
                tokens = steps * TOKENS_PER_STEP
                options[int(n_embed)] = (int(n_embed), tokens, predict(constants, block_params(int(n_embed)), tokens), name)
        chosen[minutes] = sorted(options.values(), key=lambda option: option[2])
    return chosen


PLAN_LINE = re.compile(r"^--minutes=([\d.]+)：选 n_embed=(\d+)、.*?(\w+) 实测 ([\d,]+) 字/秒，(\d+) 步看 ([\d.]+)M 字.*?训练集 ([\d.]+) 遍.*?"
                       r"预测验证损失 ([\d.]+)", re.MULTILINE)


def minutes_runs(folder=REPORTS / "minutes_runs"):
    """真的跑过的 --minutes（scripts/form_curve.py 存下的输出）：每次挑了什么、最后的验证损失。"""
    found = []
    for path in sorted(folder.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        plan_line, steps = PLAN_LINE.search(text), parse_steps(text)
        if plan_line and steps:
            minutes, n_embed, dtype, speed, iters, tokens, passes, predicted = plan_line.groups()
            found.append({"file": path.name, "minutes": float(minutes), "n_embed": int(n_embed), "steps": int(iters),
                          "dtype": dtype, "speed": int(speed.replace(",", "")),
                          "tokens": float(tokens), "passes": float(passes), "predicted": float(predicted),
                          "val_loss": steps[-1]["val_loss"]})
    return found


def report(results):
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
    table = main_table(rows)
    cells = sorted(table)
    # 2M 字的那一列只跑了 dropout 0.1（这次扫描的规则），比 dropout 0 差：不拿来拟合（见 docs/reports/budget.md）
    points = [(block_params(e), d, table[(e, d)]["val_loss"]) for e, d in cells if not 1.5e6 < d < 2.5e6]
    rmse, c = fit(points)
    widths = sorted({e for e, _ in cells})
    budgets = sorted({d for _, d in cells})
    pct = "{:.0%}".format
    at_2e3 = sum(r["lr"] == 2e-3 for r in rows)
    makeable = [r["key"] for r in rows if not cannot_make(r)]
    lines = ["# v23：几分钟能训练多大的模型", "",
             f"由 `python scripts/budget_sweep.py --fit` 从 [budget_runs.jsonl]({results.name}) 生成。", "",
             (f"扫描：{len(rows)} 次训练，每次从头训练、学习率计划拉满（batch 32、block 128、升温 1/30 的步数、"
              "余弦降到十分之一），在 GPU 上跑（bf16）；看了 D 个字以后的损失和机器几乎无关。"
              f"学习率：{at_2e3} 次用 2e-3（降到 2e-4），另外 {len(rows) - at_2e3} 次是下面“同一个大小”一节里的 1e-3、4e-3；"
              "v23 的 --minutes 用 4e-3（降到 4e-4）。"),
             f"机器：{rows[0]['machine']}。", "",
             ("这些训练用的 v23 还有 --tie（嵌入表和输出层共用）、--decay_2d（二维权重衰减）两个开关，默认都关，"
              "也默认不从词的开头切段；今天的 v23 总是共用那张表，没有这两个开关。所以今天的 v23 照原样做得出的只有 "
              f"{len(makeable)} 行（{'、'.join(makeable)}），其余 {len(rows) - len(makeable)} 行做不出"
              "（`python scripts/budget_sweep.py --list` 标出它们，扫描跳过它们）。"), "",
             "## 验证损失（每格取 dropout 最好的那次）、合律（温度 1.0 / 0.8）", "",
             "| 宽度（块里的参数） | " + " | ".join(f"{d / 1e6:.0f}M 字" for d in budgets) + " |",
             "|---|" + "---:|" * len(budgets)]
    for e in widths:
        cells_text = []
        for d in budgets:
            r = table.get((e, d))
            cells_text.append("—" if r is None else
                              f"{r['val_loss']:.3f}（{pct(r['form']['1.0']['exact'])} / {pct(r['form']['0.8']['exact'])}）")
        lines.append(f"| {e}（{block_params(e) / 1e6:.2f}M） | " + " | ".join(cells_text) + " |")
    lines += ["", "## 拟合", "",
              (f"L(N, D) = {c['E']:.2f} + {c['A']:.1f}/N^{c['alpha']:.2f} + {c['B']:.0f}/D'^{c['beta']:.2f}，"
               f"D' = U + U·R*·(1 − e^(−R/R*))，R* = {c['repeat_decay']}，U = {TRAIN_CHARACTERS:,}（训练集的字数）。"),
              f"N 是块里的参数（不算嵌入表和输出层）。{len(points)} 个点，均方根误差 {rmse:.3f}。", "",
              f"![验证损失和看的字数，每个宽度一条线，虚线是拟合]({link(PICTURES / 'budget.png', results.parent)})", "",
              "| 宽度 | 字数 | 实测 | 拟合 |", "|---|---:|---:|---:|"]
    for n_embed, d in cells:
        if not 1.5e6 < d < 2.5e6:
            lines.append(f"| {n_embed} | {d / 1e6:.0f}M | {table[(n_embed, d)]['val_loss']:.3f} | "
                         f"{predict(c, block_params(n_embed), d):.3f} |")
    lines += ["", (f"拟合不算好：均方根误差 {rmse:.3f}，而相邻两个大小差 0.1 左右。它系统地低估了大模型看很多遍以后的损失"
              "（256 宽 16M 字：实测 4.051），可见重复的代价不只是“有效字数”变少，还有背下来（训练损失比验证损失低 1.0）。"
              "R* 在 8 到 ∞ 之间拟合得差不多好，数据定不下它；取最好的 15，和 Muennighoff 等拟合的 15.4 相近。"
              "规则只用它来给同样分钟数下的几个大小排先后；排得对不对，要看下面 --minutes 的实测。")]
    runs = minutes_runs(results.parent / "minutes_runs")
    lines += ["", "## dropout（第三个轴）", "", "| 宽度 | 字数 | 训练集几遍 | dropout 0 | 0.1 | 0.2 |", "|---|---:|---:|---:|---:|---:|"]
    plain = [r for r in rows if r["lr"] == 2e-3 and not any(r.get(k) for k in ("tie", "piece_start", "decay_2d"))]
    for e, d in sorted({(r["n_embed"], r["tokens"]) for r in plain if r["tokens"] > 3e6}):
        by = {r["dropout"]: r["val_loss"] for r in plain if (r["n_embed"], r["tokens"]) == (e, d)}
        if len(by) > 1:
            lines.append(f"| {e} | {d / 1e6:.0f}M | {d / TRAIN_CHARACTERS:.1f} | " +
                         " | ".join(f"{by[x]:.3f}" if x in by else "—" for x in (0.0, 0.1, 0.2)) + " |")
    wide = [r for r in runs if r["n_embed"] >= 256]
    lines += ["", ("看不到四遍时 dropout 0 总是最好；看了四遍以上，只有块里参数多于 2M 的（256、384 宽）用 0.1 更好。"
              "v23 在量速度以前就得定下 dropout（开着它每步慢一成），所以只按大小定：256 宽起用 0.1"
              + ("（实测的 --minutes 里挑中 256 宽以上的：" + "、".join(
                  f"--minutes={r['minutes']:g} 看了 {r['passes']:g} 遍" for r in wide) + "）" if wide else "") +
              "。2M 字那一列按这次扫描的规则（多于一遍就用 0.1）只跑了 0.1，比 0 差，所以没拿来拟合。")]
    lines += ["", "## 同一个大小（256 宽、8M 字）上的几个想法", "",
              "| 改动 | 块外参数 | 验证损失 | 训练损失 | 合律 1.0 | 合律 0.8 | 句子分 1.0 |", "|---|---:|---:|---:|---:|---:|---:|"]
    names = {"": "不改（学习率 2e-3、dropout 0.1）", "lr0.001": "学习率 1e-3", "lr0.004": "学习率 4e-3",
             "piece_start0.5": "一半的段从词的开头切", "piece_start1": "所有的段从词的开头切",
             "tie1": "嵌入表和输出层共用", "decay_2d0.1": "二维权重衰减 0.1，一维不衰减"}
    for r in rows:
        if r["n_embed"] == 256 and r["tokens"] == 7999488 and r["dropout"] == 0.1:
            tag = ("lr" + f"{r['lr']:g}" if r["lr"] != 2e-3 else "") + "".join(
                f"{k}{r[k]:g}" for k in ("tie", "piece_start", "decay_2d") if r.get(k))
            lines.append(f"| {names.get(tag, tag)} | {r['params'] - block_params(256):,} | {r['val_loss']:.4f} | "
                         f"{r['train_loss']:.4f} | {pct(r['form']['1.0']['exact'])} | {pct(r['form']['0.8']['exact'])} | "
                         f"{pct(r['form']['1.0']['clause'])} |")
    lines += ["", ("v23 用了三样：学习率 4e-3（128 宽上也是 4e-3 最好）、一半的段从词的开头切、嵌入表和输出层共用。"
              "从词的开头切让验证损失差了 0.03（验证集的段是从任意位置切的），合律却从 23% 到 82%："
              "写词时模型正是从词牌那一行写起，它得见过足够多从头开始的词。两把尺子在这里说的不一样，v23 听格律的："
              "这一步的目标是写出合律的词，而 0.03 的损失还不到相邻两个大小之差的一半。"
              "权重衰减只好了 0.016、格律没变，没有用。三样合在一起没有在 GPU 上单独量过；"
              "[第 7 章](../07_minutes.md)里 v23 的两次 --minutes（[form_curve_10.json](form_curve_10.json)、"
              "[form_curve_30.json](form_curve_30.json)）就是它们合在一起的结果。")]
    lines += ["", "## 全部的训练", "", "| 名字 | 验证损失 | 训练损失 | 合律 1.0 | 合律 0.8 | 句子分 1.0 |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["n_embed"], r["tokens"], r["key"])):
        lines.append(f"| {r['key']} | {r['val_loss']:.4f} | {r['train_loss']:.4f} | {pct(r['form']['1.0']['exact'])} | "
                     f"{pct(r['form']['0.8']['exact'])} | {pct(r['form']['1.0']['clause'])} |")
    speeds_file = results.parent / "budget_speeds.json"
    if speeds_file.exists():
        lines += picks_section(c, json.loads(speeds_file.read_text(encoding="utf-8")), runs)
    draw(table, c, widths)
    write_report(results.parent / "budget.md", lines)
    print(json.dumps(c))


def picks_section(c, speeds, runs):
    """最后一节：用另一次量的速度，规则会挑什么（最好的和次好的）；再和真的跑过的 --minutes 对一对。"""
    lines = ["", f"## 规则在这台机器上挑什么（{speeds['machine']}，{speeds['date']}，`{speeds['command']}`）", "",
             "| 分钟 | 宽度 | 精度 | 字数 | 训练集的几遍 | 每个参数几个字 | 预测验证损失 | 次好的（预测） |",
             "|---:|---:|---|---:|---:|---:|---:|---|"]
    ranked = picks(c, speeds["speeds"])
    for minutes, options in ranked.items():
        n_embed, tokens, loss, name = options[0]
        runner = f"{options[1][0]} 宽（{options[1][2]:.2f}）" if len(options) > 1 else "—"
        lines.append(f"| {minutes} | {n_embed} | {name} | {tokens / 1e6:.1f}M | {tokens / TRAIN_CHARACTERS:.1f} | "
                     f"{tokens / block_params(n_embed):.1f} | {loss:.2f} | {runner} |")
    lines += ["", ("这张表照 v23 的规则算（留 5%，评估 11 次），速度取自上面那一次 `--speeds`；"
                   "它不算 v23 开训前量各个大小用掉的时间（每个大小训练几步，最多两成分钟），所以给的字数偏多。")]
    if runs:
        lines += ["", "真的跑过的 --minutes（`python scripts/form_curve.py --minutes N` 存下的输出）：", "",
                  "| 记录 | 分钟 | 挑的宽度 | 它量到的速度 | 步数 | 字数 | 训练集的几遍 | 预测验证损失 | 实测验证损失 |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        for r in runs:
            lines.append(f"| [{r['file']}](minutes_runs/{r['file']}) | {r['minutes']:g} | {r['n_embed']} | {r['dtype']} {r['speed']:,} 字/秒 | {r['steps']:,} | "
                         f"{r['tokens']:g}M | {r['passes']:g} | {r['predicted']:.2f} | {r['val_loss']:.3f} |")
        for minutes, options in ranked.items():
            chose = sorted({r["n_embed"] for r in runs if r["minutes"] == minutes})
            if chose and chose != [options[0][0]]:
                gap = options[1][2] - options[0][2] if len(options) > 1 else 0
                lines += ["", (f"{minutes} 分钟：表里挑 {options[0][0]} 宽，实测挑的是 {'、'.join(map(str, chose))} 宽。"
                               f"表里最好的两个大小预测只差 {gap:.3f}；v23 按它开训前在这台机器上量到的速度挑（“它量到的速度”一栏），"
                               "那一刻机器慢了、或者量速度用掉的时间不同，挑的就会换：以真的跑出来的为准。")]
    fast = speeds["speeds"]
    ratio = fast["64"]["bfloat16"]["step"] / fast["128"]["bfloat16"]["step"] if "bfloat16" in fast["64"] else None
    lines += ["", ("每个参数只看几个字，远少于 Chinchilla 的约 20 个。一是这里按分钟算，不按算力算："
                   "小模型的一步大半花在嵌入表和输出层上（词表 6,104 个字），宽度从 64 到 128，块里的参数多了 5 倍，"
                   + (f"每步只慢了 {1 / ratio:.1f} 倍" if ratio else "每步却慢得不多") +
                   "，大一些的模型更划算；二是语料只有 186 万字，看了四遍以上就开始背。")]
    return lines


def draw(table, c, widths):
    plt, label = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for e in widths:
        ds = sorted(d for w, d in table if w == e)
        line, = ax.plot([d / 1e6 for d in ds], [table[(e, d)]["val_loss"] for d in ds], "o-", label=f"{e}")
        grid = [ds[0] * (ds[-1] / ds[0]) ** (i / 40) for i in range(41)]
        ax.plot([d / 1e6 for d in grid], [predict(c, block_params(e), d) for d in grid], "--", color=line.get_color())
    ax.axvline(TRAIN_CHARACTERS / 1e6, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(label("训练看的字数（百万，对数坐标；灰线 = 训练集看一遍）", "tokens seen (millions, log; grey = one epoch)"))
    ax.set_ylabel(label("验证损失", "val loss"))
    ax.legend(title=label("宽度（虚线 = 拟合）", "width (dashed = fit)"))
    fig.tight_layout()
    fig.savefig(PICTURES / "budget.png", dpi=110)
    print(f"写好了：{PICTURES / 'budget.png'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(RESULTS), help="结果文件（一行一次），默认 docs/reports/budget_runs.jsonl")
    parser.add_argument("--jobs", type=int, default=1, help="同时跑几个（GPU 上可以十几个；CPU 上 1 个）")
    parser.add_argument("--device", help="传给 v23 的 --device（默认它自己选）")
    parser.add_argument("--only", help="只跑这些宽度，例如 128,256")
    parser.add_argument("--max_tokens", type=float, help="只跑不超过这么多字的")
    parser.add_argument("--stop_after", type=float, help="这么多秒以后不再开始新的一次（跑着的跑完）")
    parser.add_argument("--list", action="store_true", help="只列出哪些跑过、哪些没跑")
    parser.add_argument("--speeds", action="store_true", help="不训练：用 v23 自己的计时量每个大小在这台机器上的速度")
    parser.add_argument("--fit", action="store_true", help="不训练：拟合、写 docs/reports/budget.md 和 docs/budget.png")
    args = parser.parse_args()
    if args.list:
        done = done_keys(Path(args.results))
        for run in plan():
            why = cannot_make(run)
            print(("✓ " if run_key(run) in done else "✗ " if why else "  ") + run_key(run) +
                  (f"（{why}）" if why and run_key(run) not in done else ""))
        return
    if args.speeds:
        measure_speeds(args.device)
        return
    if args.fit:
        report(Path(args.results))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sweep(args)


if __name__ == "__main__":
    main()
