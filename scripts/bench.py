"""训练速度的基准：v14 的每一步加速各值多少；v13 以后每个版本训练多快，离这颗芯片的峰值多远。

用法
  python scripts/bench.py                    # 本机的设备（CUDA，其次 CPU），结果写进 docs/reports/speed.md
  python scripts/bench.py --device=cpu --seconds 0.5 --compare_seconds 0.3 --rounds 1 --loss_steps 5 --out /tmp/s.md
                                             # 快速试一下脚本本身（数字没有意义）
  python scripts/bench.py --compare v15,v19 --out /tmp/s.md   # 只做第 2 部分，只比这几个版本
  python scripts/bench.py --compare v14,v15,v19,v21,v22 --sizes "CPU 命令,教程尺寸" --out docs/reports/speed_muon.md

做什么
  1. v14 的每一步加速：在同一个进程、同一台设备上，按顺序一步一步加上 v14 的加速，每一行都比上一行多一种：
       v13（上一版）-> 融合 QKV + SDPA -> 词表补到 64 的倍数 -> TF32 -> bf16 -> 融合 AdamW -> torch.compile
     每行先跑几步预热（不计时），再计时，算出每秒训练多少字；torch.compile 的编译时间单独列出，并算出训练多久才划算。
     设备上不起作用的一步（CPU 上的 TF32）标“不适用”。再用同一条命令训练 v13 和 v14（真的跑脚本），比较验证损失。
  2. 每个版本（v13 起）：三种尺寸，每个版本 float32 和 bf16 都量，版本轮流量几轮（A、B、C、A、B、C……）取中位数；
     每个版本用它自己的优化器（v22 起 Muon + AdamW）和梯度裁剪（v21 起），和脚本训练时一样；
     每行给出字/秒、--dtype=auto 会选哪种、和 v15 比、优化器的一步占训练一步的几成，以及占这台设备上大矩阵乘法实测速度（当作峰值）的几成。
  尺寸：CPU 上是 README 的 CPU 命令、教程尺寸（4 层、128 宽）和 v11 的完整模型（batch_size 8，短跑）；
  GPU 上是 v11 的完整配置。
"""

import argparse
import datetime
import os
import shlex
import subprocess
import sys
import tempfile
import time

import torch
from versions import REPORTS, ROOT, load, machine, number, parse_steps, versions, write_report

SIZES = {  # 名字 -> (超参数, 比较验证损失时训练几步)
    "CPU 命令": ({"batch_size": 16, "block_size": 64, "n_embed": 64, "n_layer": 3, "n_head": 4, "dropout": 0.0}, 300),
    "教程尺寸": ({"batch_size": 12, "block_size": 64, "n_embed": 128, "n_layer": 4, "n_head": 4, "dropout": 0.2}, 300),
    "笔记本尺寸": ({"batch_size": 32, "block_size": 128, "n_embed": 256, "n_layer": 4, "n_head": 8, "dropout": 0.1}, 300),
    "完整模型，batch 8": ({"batch_size": 8, "block_size": 256, "n_embed": 384, "n_layer": 6, "n_head": 6,
                          "dropout": 0.2}, 40),
    "完整配置": ({"batch_size": 64, "block_size": 256, "n_embed": 384, "n_layer": 6, "n_head": 6, "dropout": 0.2}, 500),
}
VOCAB_SIZE = 6104  # ci.txt 的词表
AUTO_MARGIN = 1.5  # 和脚本的 train() 一样：--dtype=auto 时 bf16 要快过 float32 这么多倍才用


def synchronize(device):
    getattr(torch, device).synchronize()


def tokens_per_second(module, size, device, seconds, warmup, *, pad=True, tf32=False, bf16=False, fused=False,
                      compile_model=False, own_optimizer=False):
    """按 v14（或 v13）训练循环的写法，预热 warmup 步后计时训练约 seconds 秒，返回 (字/秒, 编译秒数, 优化器占一步的几成)。
    own_optimizer：用这个版本自己的优化器（v22 起 make_optimizer：Muon + AdamW）和梯度裁剪（v21 起），和脚本训练时一样。"""
    vars(module).update(size, learning_rate=3e-4, dtype="bfloat16" if bf16 else "float32")  # v22 的正交化看 dtype
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(0)
    model = module.BabyGPT(VOCAB_SIZE)
    if not pad and hasattr(model, "vocab_size"):
        model.lm_head = torch.nn.Linear(module.n_embed, VOCAB_SIZE)  # 不补：输出层正好 6104 个字
    model.to(device)
    if own_optimizer and hasattr(module, "make_optimizer"):
        optimizer = module.make_optimizer(model, device)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=fused)
    clip = own_optimizer and getattr(module, "grad_clip", 0)
    amp = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)
    data = torch.randint(VOCAB_SIZE, (8, 2, size["batch_size"], size["block_size"]), device=device)
    compile_seconds = 0.0
    if compile_model:
        start = time.time()
        model = module.compiled(model, device, amp)  # v14 自己的写法：编译一遍真的形状
        synchronize(device)
        compile_seconds = time.time() - start
    step, optimizer_seconds = 0, 0.0
    while True:
        if step == warmup:
            synchronize(device)
            start, optimizer_seconds = time.time(), 0.0
        elif step > warmup and step % 5 == 0:  # 每 5 步看一次表（看表要等 GPU 算完）
            synchronize(device)
            if time.time() - start >= seconds:
                break
        with amp:
            _, loss = model(data[step % 8, 0], data[step % 8, 1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if own_optimizer:  # 单独量优化器的一步（要先等 GPU 算完反向传播）
            synchronize(device)
            began = time.time()
        optimizer.step()
        if own_optimizer:
            synchronize(device)
            optimizer_seconds += time.time() - began
        step += 1
    elapsed = time.time() - start
    return (step - warmup) * size["batch_size"] * size["block_size"] / elapsed, compile_seconds, optimizer_seconds / elapsed


def speed_rows(v13, v14, size, device, seconds, warmup, with_compile=True):
    cuda = device == "cuda"
    bf16_ok = bf16_supported(device)
    fused_ok = fused_adamw_supported(device)
    rows = [("v13（上一版）", v13, {}, True), ("+ 融合 QKV + SDPA", v14, {"pad": False}, True),
            ("+ 词表补到 64 的倍数", v14, {}, True), ("+ TF32", v14, {"tf32": True}, cuda),
            ("+ bf16 自动混合精度", v14, {"tf32": cuda, "bf16": True}, bf16_ok),
            ("+ 融合 AdamW", v14, {"tf32": cuda, "bf16": bf16_ok, "fused": True}, fused_ok),
            ("+ torch.compile", v14, {"tf32": cuda, "bf16": bf16_ok, "fused": fused_ok, "compile_model": True},
             with_compile)]
    results, previous = [], None
    for name, module, options, applies in rows:
        if not applies:
            results.append((name, None, None, 0.0))
            continue
        speed, compile_seconds, _ = tokens_per_second(module, size, device, seconds, warmup, **options)
        results.append((name, speed, speed / (previous or speed), compile_seconds))
        previous = speed
        print(f"  {name}：{speed:,.0f} 字/秒（比上一行 {results[-1][2]:.2f}×）", flush=True)
    return results


def final_val_loss(script, size, steps, device):
    """真的跑一次脚本：同样的命令，steps 步以后的验证损失。"""
    args = [f"--{k}={v}" for k, v in size.items()] + [f"--max_iters={steps}", f"--eval_interval={steps}",
                                                        "--eval_iters=10", "--max_new_tokens=1", f"--device={device}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    with tempfile.TemporaryDirectory(prefix="bench_") as out_dir:  # 检查点用完即删
        r = subprocess.run([sys.executable, str(script), *args, f"--out_dir={out_dir}"], capture_output=True, text=True,
                           encoding="utf-8", env=env, check=False, cwd=ROOT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        sys.exit(f"错误：{script.name} 失败：{r.stderr.strip()[-300:]}")
    return parse_steps(r.stdout)[-1]["val_loss"], " ".join(args)


def fused_adamw_supported(device):
    """这台设备上有没有融合的 AdamW：CUDA 上一直有，CPU 上 PyTorch 2.4 起有（和 v14 起的版本一样，试建一个就知道）。"""
    if device not in ("cuda", "cpu"):
        return False
    try:
        torch.optim.AdamW([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return True
    except RuntimeError:
        return False


def bf16_supported(device):
    """这台设备能不能做 bf16 自动混合精度（和各版本的 pick_dtype 同一个判断）。"""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return device == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def matmul_peak(device):
    """(这台设备上大矩阵乘法实测的最快速度 FLOP/秒, 说明)：拿它当“峰值”。
    按说明书算（核数 × 时钟 × 每周期运算数）会错：同是 AVX512-BF16，AMD Zen 4 把 512 位的指令拆成两个 256 位来做，
    Zen 5（服务器版）是真的 512 位，每周期多算一倍；虚拟机里读到的是标称时钟，没有睿频。实测的就是这台机器此刻做得到的。"""
    n = 8192 if device == "cuda" else 2048  # GPU 要大矩阵才跑得满；CPU 上 2048 已经够（再大反而慢一点）
    rates = {}
    for dtype in (torch.float32, torch.bfloat16) if bf16_supported(device) else (torch.float32,):
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        a @ b  # 预热
        times = []
        for _ in range(5):
            synchronize(device)
            start = time.perf_counter()
            a @ b
            synchronize(device)
            times.append(time.perf_counter() - start)
        rates[str(dtype).removeprefix("torch.")] = 2 * n ** 3 / min(times)
    best = max(rates, key=rates.get)
    said = "、".join(f"{name} {rate / 1e12:.2f}" for name, rate in rates.items())
    return rates[best], (f"本机 {n}×{n} 矩阵乘法实测最快的那种（{said} TFLOP/秒，"
                         f"{torch.get_num_threads() if device == 'cpu' else 1} 个{'线程' if device == 'cpu' else ' GPU'}）"
                         f"= {rates[best] / 1e12:.2f} TFLOP/秒")


def flop_per_token(model, size):
    """训练一个字要多少次浮点运算：6N + 12·L·T·C（Kaplan 等 2020、PaLM 附录 B 的估计）。
    N 是做矩阵乘法的参数：所有 nn.Linear 的权重和偏置（不算嵌入表：查表不是乘法；算输出层，
    v23 起输出层和嵌入表共用一张表，model.parameters() 只数一次，这里照样算进输出层）；6 = 前向 2 + 反向 4；
    12·L·T·C 是注意力里 q·k 和 权重·v 两个乘法（L 层，T = block_size，C = n_embed），不按因果遮掩减半。"""
    matmul_parameters = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters())
    return 6 * matmul_parameters + 12 * size["n_layer"] * size["block_size"] * size["n_embed"]


def compare(tags, found, device, seconds, warmup, rounds, sizes):
    """几个版本轮流量训练速度（A、B、C、A、B、C……，同一个进程），每个版本 float32 和 bf16 都量。
    轮流量，机器忙闲的变化对每个版本都一样；比值比单独的字/秒可靠。返回报告的几行。"""
    modules = {tag: load(found[tag]) for tag in tags}
    precisions = ["float32", "bfloat16"] if bf16_supported(device) else ["float32"]
    peak, how = matmul_peak(device)
    text = [(f"每个版本、每种精度每轮先跑 {warmup} 步预热，再计时约 {seconds:g} 秒；{rounds} 轮轮流量，取中位数。不编译；"
             "v14 起用融合 AdamW，v13 用普通 AdamW，v21 起裁剪梯度，v22 起 Muon + AdamW（都和脚本一样）。数据是随机的字（速度和内容无关），词表 6,104（ci.txt）。"),
            (f"“--dtype=auto”一列是脚本开训前会选的那种：float32 优先，bf16 要快过 {AUTO_MARGIN} 倍才用"
             "（v14 起；v13 只有 float32）。"),
            (f"峰值：{how}。每字运算量 = 6N + 12·L·T·C（N：各个 nn.Linear 的参数，算输出层、不算嵌入表），"
             "“峰值占比” = 字/秒 × 每字运算量 ÷ 峰值（用 auto 那一列）。\n")]
    for name in sizes:
        size = SIZES[name][0]
        print(f"{name}：{size}", flush=True)
        speeds = {(tag, p): [] for tag in tags for p in precisions}
        shares = {(tag, p): [] for tag in tags for p in precisions}  # 优化器的一步占训练一步的几成
        for _ in range(rounds):
            for tag, module in modules.items():
                for precision in precisions:
                    vars(module).update(size)
                    speed, _, share = tokens_per_second(
                        module, size, device, seconds, warmup, bf16=precision == "bfloat16",
                        fused=number(found[tag]) >= 14 and fused_adamw_supported(device), own_optimizer=True)
                    speeds[tag, precision].append(speed)
                    shares[tag, precision].append(share)
                    print(f"  {tag} {precision}：{speed:,.0f} 字/秒，优化器占 {share:.0%}", flush=True)
        median = {key: sorted(values)[rounds // 2] for key, values in speeds.items()}
        share = {key: sorted(values)[rounds // 2] for key, values in shares.items()}
        best = {tag: (median[tag, "bfloat16"], "bfloat16")
                if number(found[tag]) >= 14 and median.get((tag, "bfloat16"), 0) > AUTO_MARGIN * median[tag, "float32"]
                else (median[tag, "float32"], "float32") for tag in tags}
        base_tag = "v15" if "v15" in tags else tags[0]
        text += [f"### {name}（" + "，".join(f"{k} {v}" for k, v in size.items()) + "）\n",
                 "| 版本 | 参数量 | 每字运算量 | " + " | ".join(f"{p} 字/秒" for p in precisions) +
                 f" | --dtype=auto | 比 {base_tag} | 优化器占一步 | 峰值占比 | 各轮（auto 那种） |",
                 "|---|---:|---:|" + "---:|" * len(precisions) + "---|---:|---:|---:|---|"]
        for tag, module in modules.items():
            vars(module).update(size)
            model = module.BabyGPT(VOCAB_SIZE)
            parameters = sum(p.numel() for p in model.parameters())
            flop = flop_per_token(model, size)
            speed, precision = best[tag]
            fraction = f"{speed * flop / peak:.1%}（{speed * flop / 1e12:.2f} TFLOP/秒）" if peak else "—"
            text.append(f"| {tag} | {parameters:,} | {flop / 1e6:.1f} M | " +
                        " | ".join(f"{median[tag, p]:,.0f}" for p in precisions) +
                        f" | {precision} | {speed / best[base_tag][0]:.2f}× | {share[tag, precision]:.0%} | {fraction} | "
                        f"{' / '.join(f'{x:,.0f}' for x in speeds[tag, precision])} |")
        text.append("")
    return text


def ladder(found, device, args):
    """第 1 部分：v14 的加速一步一步加上去（和 v13 比），再比较同样命令训练后的验证损失。返回报告的几行。"""
    v13, v14 = load(found["v13"]), load(found["v14"])
    text = ["## 1. v14 的每一步加速\n",
            (f"每行先跑 {args.warmup} 步预热（不计时），再计时约 {args.seconds:g} 秒；每一行在上一行的基础上多加一种加速。"
             "torch.compile 的编译时间不算在速度里，单独列出，并算出训练多久以后编译才划算。\n")]
    for name in ["完整配置"] if device == "cuda" else ["CPU 命令", "完整模型，batch 8"]:
        size, loss_steps = SIZES[name]
        loss_steps = args.loss_steps or loss_steps
        print(f"{name}：{size}", flush=True)
        rows = speed_rows(v13, v14, size, device, args.seconds, args.warmup)
        base = rows[0][1]
        text += [f"### {name}（" + "，".join(f"{k} {v}" for k, v in size.items()) + "）\n",
                 "| 加速 | 字/秒 | 比上一行 | 比 v13 | 编译用时 |", "|---|---:|---:|---:|---:|"]
        for row_name, speed, gain, compile_seconds in rows:
            if speed is None:
                text.append(f"| {row_name} | 不适用 | | | |")
            else:
                text.append(f"| {row_name} | {speed:,.0f} | {gain:.2f}× | {speed / base:.2f}× | "
                            f"{f'{compile_seconds:.0f} 秒' if compile_seconds else ''} |")
        compiled, plain = rows[-1], [row for row in rows[:-1] if row[1]][-1]
        if compiled[1]:  # 编译用时 c 秒、快了 r 倍：训练 t 秒以后，c + t / r < t，即 t > c / (1 - 1/r)
            if compiled[1] > plain[1]:
                text.append(f"\ntorch.compile 快 {compiled[1] / plain[1]:.2f}×：算上编译的 {compiled[3]:.0f} 秒，"
                            f"训练超过 {compiled[3] / (1 - plain[1] / compiled[1]) / 60:.1f} 分钟才划算。")
            else:
                text.append("\ntorch.compile 在这里不快（再算上编译的时间，怎么都不划算）。")
        text.append(f"\nv14 的 --dtype=auto 在开训前把 {'、'.join(v14.pick_dtype(device))} 都量一遍，bf16 快过 {AUTO_MARGIN} 倍才用；"
                    f"--compile=auto 在 {device} 上{'开' if device == 'cuda' else '关'}。\n")
        losses = {tag: final_val_loss(found[tag], size, loss_steps, device) for tag in ("v13", "v14")}
        text.append(f"同样的命令训练 {loss_steps} 步后的验证损失：v13 {losses['v13'][0]:.3f}，v14 {losses['v14'][0]:.3f}"
                    f"（差 {abs(losses['v13'][0] - losses['v14'][0]):.3f}；命令参数 `{losses['v14'][1]}`）。\n")
        print(text[-1], flush=True)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], help="默认：有 CUDA 用 CUDA，否则 CPU")
    parser.add_argument("--seconds", type=float, default=5, help="第 1 部分每行计时多少秒（默认 5）")
    parser.add_argument("--compare_seconds", type=float, default=3, help="第 2 部分每个版本每轮计时多少秒（默认 3）")
    parser.add_argument("--warmup", type=int, default=3, help="每行先跑几步不计时（默认 3）")
    parser.add_argument("--loss_steps", type=int, help="比较验证损失时训练几步（默认：CPU 命令 300，完整模型 40，GPU 500）")
    parser.add_argument("--out", default=str(REPORTS / "speed.md"), help="结果写到这里（默认 docs/reports/speed.md）")
    parser.add_argument("--compare", help="只做第 2 部分，只比较这几个版本（逗号分隔，如 v15,v19）")
    parser.add_argument("--rounds", type=int, default=3, help="第 2 部分轮流量几轮（默认 3）")
    parser.add_argument("--sizes", help="第 2 部分只量这几种尺寸（逗号分隔，如 \"CPU 命令,教程尺寸\"）")
    args = parser.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    found = versions()
    tags = args.compare.split(",") if args.compare else [tag for tag in found if number(found[tag]) >= 13]
    if unknown := [tag for tag in tags if tag not in found or number(found[tag]) < 13]:
        sys.exit(f"错误：不能比较这些版本：{', '.join(unknown)}（要 v13 或更新的）")
    if "v14" not in found:
        sys.exit("错误：还没有 babygpt_v14_fast.py")
    began = time.time()
    text = ["# 训练速度\n", f"- 命令：`python scripts/bench.py {shlex.join(sys.argv[1:])}`".rstrip(),
            f"- 机器：{machine(device)}（设备 {device}，{torch.get_num_threads()} 个线程）",
            f"- 日期：{datetime.date.today().isoformat()}\n"]
    if not args.compare:
        text += ladder(found, device, args)
    sizes = ["完整配置"] if device == "cuda" else ["CPU 命令", "教程尺寸", "完整模型，batch 8"]
    if args.sizes:
        sizes = args.sizes.split(",")
        if unknown := [name for name in sizes if name not in SIZES]:
            sys.exit(f"错误：没有这种尺寸：{', '.join(unknown)}（有：{'、'.join(SIZES)}）")
    text += [f"## {'2. ' if not args.compare else ''}每个版本的训练速度（{'、'.join(tags)}）\n",
             *compare(tags, found, device, args.compare_seconds, args.warmup, args.rounds, sizes)]
    text.append(f"总用时 {time.time() - began:.0f} 秒。")
    write_report(args.out, text)


if __name__ == "__main__":
    main()
