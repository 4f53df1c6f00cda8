"""训练速度的基准：v14 的每一步加速各值多少，和它的上一版（v13）比。

用法
  python scripts/bench.py                    # 本机的设备（CUDA，其次 CPU），结果写进 docs/speed.md
  python scripts/bench.py --device=cpu --seconds 1 --loss_steps 5 --out /tmp/speed.md   # 快速试一下
  python scripts/bench.py --compare v15,v16,v17,v18,v19 --seconds 5   # 几个版本轮流量训练速度，写 docs/speed_llama.md

做什么
  1. 速度：在同一个进程、同一台设备上，按顺序一步一步加上 v14 的加速，每一行都比上一行多一种：
       v13（上一版）-> 融合 QKV + SDPA -> 词表补到 64 的倍数 -> TF32 -> bf16 -> 融合 AdamW -> torch.compile
     每行先跑几步预热（不计时），再计时约 10 秒，算出每秒训练多少字；torch.compile 的编译时间单独列出。
     设备上不起作用的一步（CPU 上的 TF32 和融合 AdamW）标“不适用”。
  2. 损失：用同一条命令训练 v13 和 v14（真的跑脚本），比较同样步数后的验证损失。
  尺寸：CPU 上是 README 的 CPU 命令和 v11 的完整模型（batch_size 8，短跑）；GPU 上是 v11 的完整配置。
"""

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from versions import ROOT, hyperparameters, load, machine, number, parse_steps, versions, write_report

SIZES = {  # 名字 -> (超参数, 比较验证损失时训练几步)
    "CPU 命令": ({"batch_size": 16, "block_size": 64, "n_embed": 64, "n_layer": 3, "n_head": 4, "dropout": 0.0}, 300),
    "完整模型，batch 8": ({"batch_size": 8, "block_size": 256, "n_embed": 384, "n_layer": 6, "n_head": 6,
                          "dropout": 0.2}, 40),
    "完整配置": ({"batch_size": 64, "block_size": 256, "n_embed": 384, "n_layer": 6, "n_head": 6, "dropout": 0.2}, 500),
}
VOCAB_SIZE = 6104  # ci.txt 的词表


def synchronize(device):
    getattr(torch, device).synchronize()


def tokens_per_second(module, size, device, seconds, warmup, *, pad=True, tf32=False, bf16=False, fused=False,
                      compile_model=False):
    """按 v14（或 v13）训练循环的写法，预热 warmup 步后计时训练约 seconds 秒，返回 (字/秒, 编译秒数)。"""
    vars(module).update(size, learning_rate=3e-4)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(0)
    model = module.BabyGPT(VOCAB_SIZE)
    if not pad and hasattr(model, "vocab_size"):
        model.lm_head = torch.nn.Linear(module.n_embed, VOCAB_SIZE)  # 不补：输出层正好 6104 个字
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=fused)
    amp = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)
    data = torch.randint(VOCAB_SIZE, (8, 2, size["batch_size"], size["block_size"]), device=device)
    compile_seconds = 0.0
    if compile_model:
        start = time.time()
        model = module.compiled(model, device, amp)  # v14 自己的写法：编译一遍真的形状
        synchronize(device)
        compile_seconds = time.time() - start
    step = 0
    while True:
        if step == warmup:
            synchronize(device)
            start = time.time()
        elif step > warmup and step % 5 == 0:  # 每 5 步看一次表（看表要等 GPU 算完）
            synchronize(device)
            if time.time() - start >= seconds:
                break
        with amp:
            _, loss = model(data[step % 8, 0], data[step % 8, 1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
    return (step - warmup) * size["batch_size"] * size["block_size"] / (time.time() - start), compile_seconds


def speed_rows(v13, v14, size, device, seconds, warmup, with_compile=True):
    cuda = device == "cuda"
    bf16_ok = torch.cuda.is_bf16_supported() if cuda else device == "cpu"
    rows = [("v13（上一版）", v13, {}, True), ("+ 融合 QKV + SDPA", v14, {"pad": False}, True),
            ("+ 词表补到 64 的倍数", v14, {}, True), ("+ TF32", v14, {"tf32": True}, cuda),
            ("+ bf16 自动混合精度", v14, {"tf32": cuda, "bf16": True}, bf16_ok),
            ("+ 融合 AdamW", v14, {"tf32": cuda, "bf16": bf16_ok, "fused": True}, cuda),
            ("+ torch.compile", v14, {"tf32": cuda, "bf16": bf16_ok, "fused": cuda, "compile_model": True}, with_compile)]
    results, previous = [], None
    for name, module, options, applies in rows:
        if not applies:
            results.append((name, None, None, 0.0))
            continue
        speed, compile_seconds = tokens_per_second(module, size, device, seconds, warmup, **options)
        results.append((name, speed, speed / (previous or speed), compile_seconds))
        previous = speed
        print(f"  {name}：{speed:,.0f} 字/秒（比上一行 {results[-1][2]:.2f}×）", flush=True)
    return results


def final_val_loss(script, size, steps, device):
    """真的跑一次脚本：同样的命令，steps 步以后的验证损失。"""
    args = [f"--{k}={v}" for k, v in size.items()] + [f"--max_iters={steps}", f"--eval_interval={steps}",
                                                        "--eval_iters=10", "--max_new_tokens=1", f"--device={device}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_{os.getpid()}"
    r = subprocess.run([sys.executable, str(script), *args, f"--out_dir={out_dir}"], capture_output=True, text=True,
                       encoding="utf-8", env=env, check=False, cwd=ROOT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        sys.exit(f"错误：{script.name} 失败：{r.stderr.strip()[-300:]}")
    return parse_steps(r.stdout)[-1]["val_loss"], " ".join(args)


def compare(tags, found, device, seconds, warmup, rounds, out):
    """--compare：几个版本轮流量训练速度（A、B、C、A、B、C……，同一个进程），每个版本用它自己的默认精度。
    轮流量，机器忙闲的变化对每个版本都一样；比值比单独的字/秒可靠。"""
    modules = {tag: load(found[tag]) for tag in tags}
    text = [f"# 训练速度：{'、'.join(tags)}\n", f"- 命令：`python scripts/bench.py {' '.join(sys.argv[1:])}`",
            f"- 机器：{machine(device)}（设备 {device}，{torch.get_num_threads()} 个线程）",
            f"- 日期：{datetime.date.today().isoformat()}",
            (f"- 每个版本每轮先跑 {warmup} 步预热，再计时约 {seconds:g} 秒；{rounds} 轮轮流量，取中位数。"
             "精度用各版本 --dtype=auto 在这台设备上的选择，不编译。\n")]
    for name in ("CPU 命令", "完整模型，batch 8"):
        size = SIZES[name][0]
        print(f"{name}：{size}", flush=True)
        speeds = {tag: [] for tag in tags}
        for _ in range(rounds):
            for tag, module in modules.items():
                vars(module).update(size)
                bf16 = module.pick_dtype(device) == "bfloat16"
                speeds[tag].append(tokens_per_second(module, size, device, seconds, warmup, bf16=bf16)[0])
                print(f"  {tag}：{speeds[tag][-1]:,.0f} 字/秒", flush=True)
        base = sorted(speeds[tags[0]])[rounds // 2]
        text += [f"## {name}（" + "，".join(f"{k} {v}" for k, v in size.items()) + "）\n",
                 f"| 版本 | 参数量 | 字/秒（中位数） | 各轮 | 比 {tags[0]} |", "|---|---:|---:|---|---:|"]
        for tag, module in modules.items():
            vars(module).update(size)
            parameters = sum(p.numel() for p in module.BabyGPT(VOCAB_SIZE).parameters())
            median = sorted(speeds[tag])[rounds // 2]
            text.append(f"| {tag} | {parameters:,} | {median:,.0f} | {' / '.join(f'{x:,.0f}' for x in speeds[tag])} | "
                        f"{median / base:.2f}× |")
        text.append("")
    write_report(out, text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], help="默认：有 CUDA 用 CUDA，否则 CPU")
    parser.add_argument("--seconds", type=float, default=10, help="每行计时多少秒（默认 10）")
    parser.add_argument("--warmup", type=int, default=3, help="每行先跑几步不计时（默认 3）")
    parser.add_argument("--loss_steps", type=int, help="比较验证损失时训练几步（默认：CPU 命令 300，完整模型 40，GPU 500）")
    parser.add_argument("--out", default=str(ROOT / "docs" / "speed.md"), help="结果写到这里（默认 docs/speed.md）")
    parser.add_argument("--compare", help="只比较这几个版本的训练速度（逗号分隔，如 v15,v16），写到 --out")
    parser.add_argument("--rounds", type=int, default=3, help="--compare 时轮流量几轮（默认 3）")
    args = parser.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    found = versions()
    if args.compare:
        tags = args.compare.split(",")
        if unknown := [tag for tag in tags if tag not in found or number(found[tag]) < 14]:
            sys.exit(f"错误：不能比较这些版本：{', '.join(unknown)}（要 v14 或更新的）")
        out = Path(args.out if args.out != parser.get_default("out") else ROOT / "docs" / "speed_llama.md")
        compare(tags, found, device, args.seconds, args.warmup, args.rounds, out)
        return
    if "v14" not in found:
        sys.exit("错误：还没有 babygpt_v14_fast.py")
    v13, v14 = load(found["v13"]), load(found["v14"])
    sizes = ["完整配置"] if device == "cuda" else ["CPU 命令", "完整模型，batch 8"]
    began = time.time()
    text = ["# v14 的训练速度\n", f"- 命令：`python scripts/bench.py {' '.join(sys.argv[1:])}`".rstrip(),
            f"- 机器：{machine(device)}（设备 {device}，{torch.get_num_threads()} 个线程）",
            f"- 日期：{datetime.date.today().isoformat()}",
            (f"- 每行先跑 {args.warmup} 步预热（不计时），再计时约 {args.seconds:g} 秒；每一行在上一行的基础上多加一种加速。"
            "torch.compile 的编译时间不算在速度里，单独列出。\n")]
    for name in sizes:
        size, loss_steps = SIZES[name]
        loss_steps = args.loss_steps or loss_steps
        print(f"{name}：{size}", flush=True)
        rows = speed_rows(v13, v14, size, device, args.seconds, args.warmup)
        base = rows[0][1]
        text += [f"## {name}（" + "，".join(f"{k} {v}" for k, v in size.items()) + "）\n",
                 "| 加速 | 字/秒 | 比上一行 | 比 v13 | 编译用时 |", "|---|---:|---:|---:|---:|"]
        for row_name, speed, gain, compile_seconds in rows:
            if speed is None:
                text.append(f"| {row_name} | 不适用 | | | |")
            else:
                text.append(f"| {row_name} | {speed:,.0f} | {gain:.2f}× | {speed / base:.2f}× | "
                            f"{f'{compile_seconds:.0f} 秒' if compile_seconds else ''} |")
        v14_defaults = hyperparameters(found["v14"])
        vars(v14).update(size)
        used = v14.pick_dtype(device)  # v14 自己的选择（--dtype=auto）
        compile_on = v14_defaults["compile"] == "1" or (v14_defaults["compile"] == "auto" and device == "cuda")
        text.append(f"\nv14 的默认设置（--dtype=auto、--compile=auto）在这里用 {used}，"
                    f"torch.compile {'开' if compile_on else '关'}。\n")
        losses = {tag: final_val_loss(found[tag], size, loss_steps, device) for tag in ("v13", "v14")}
        text.append(f"同样的命令训练 {loss_steps} 步后的验证损失：v13 {losses['v13'][0]:.3f}，v14 {losses['v14'][0]:.3f}"
                    f"（差 {abs(losses['v13'][0] - losses['v14'][0]):.3f}；命令参数 `{losses['v14'][1]}`）。\n")
        print(text[-1], flush=True)
    text.append(f"总用时 {time.time() - began:.0f} 秒。")
    write_report(args.out, text)


if __name__ == "__main__":
    main()
