"""一条命令验证 GPU 上的路径：v14 的加速（bf16、TF32、融合 AdamW、torch.compile）、v15 的 NCCL、KV 缓存，写一份报告。

用法
  python scripts/gpu_check.py                           # 在 GPU 上：全部跑一遍（一块 H200 上 314 秒），写 docs/reports/gpu_check.md
  python scripts/gpu_check.py --device=cpu --quick      # 在 CPU 上用很小的尺寸把每一部分都走一遍（本机半分钟多）
  python scripts/gpu_check.py --device=cpu --parts=4 --out=docs/reports/writing_cpu.md   # 只量完整尺寸的写词速度和 KV 缓存

做什么（按顺序，都在这一个进程和它启动的子进程里）
  1. 训练速度：v13 和 v14 在 v11 的完整配置下的字/秒，一步一步加上 v14 的每种加速（和 scripts/bench.py 同一套）。
  2. v14 --compile=1 从头到尾训练一次：总用时（含编译）和训练速度。
  3. v15：torchrun --nproc_per_node=<所有 GPU>（CUDA 上用 NCCL，CPU 上两个进程用 gloo）训练几百步。
  4. 写词速度：完整尺寸的模型，写 200 个字，用和不用 KV 缓存；v19 比较 GQA（n_kv_head=2）和不用 GQA（= n_head）。
  5. v14 的完整配置训练 5000 步，验证损失和经典 T4 记录的 3.98 比较。
报告写成一个 Markdown 文件；每一部分失败只记一行原因，不影响后面的部分。
"""

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench import SIZES, speed_rows
from versions import REPORTS, ROOT, hyperparameters, load, machine, parse_samples, parse_steps, versions, write_report

FULL = SIZES["完整配置"][0]  # v11 的完整配置
TINY = {"batch_size": 4, "block_size": 32, "n_embed": 32, "n_layer": 1, "n_head": 4, "dropout": 0.0}  # 一层：CPU 上编译得快些


def run_script(command, device, env_extra=None):
    """运行一个版本脚本（或 torchrun），返回 (评估行, 输出, 用时秒)；失败时抛出 RuntimeError（一行原因）。"""
    env = {**os.environ, "WANDB_MODE": "disabled", **(env_extra or {})}
    start = time.time()
    r = subprocess.run([sys.executable, *map(str, command), f"--device={device}"], capture_output=True, text=True,
                       encoding="utf-8", env=env, check=False, cwd=ROOT, stdin=subprocess.DEVNULL)
    seconds = time.time() - start
    if r.returncode != 0 or not parse_steps(r.stdout):
        raise RuntimeError(f"退出码 {r.returncode}：{(r.stderr.strip().splitlines() or [''])[-1][:200]}")
    return parse_steps(r.stdout), r.stdout, seconds


def size_args(size, steps, eval_interval, eval_iters, out_dir):
    return [*(f"--{k}={v}" for k, v in size.items()), f"--max_iters={steps}", f"--eval_interval={eval_interval}",
            f"--eval_iters={eval_iters}", "--max_new_tokens=50", f"--out_dir={out_dir}"]


def part_speed(found, size, device, quick):
    v13, v14 = load(found["v13"]), load(found["v14"])
    rows = speed_rows(v13, v14, size, device, 0.2 if quick else 10, 1 if quick else 3, with_compile=not quick)
    base = rows[0][1]
    lines = ["| 加速 | 字/秒 | 比上一行 | 比 v13 | 编译用时 |", "|---|---:|---:|---:|---:|"]
    for name, speed, gain, compile_seconds in rows:
        lines.append(f"| {name} | 不适用 | | | |" if speed is None else
                     f"| {name} | {speed:,.0f} | {gain:.2f}× | {speed / base:.2f}× | "
                     f"{f'{compile_seconds:.1f} 秒' if compile_seconds else ''} |")
    if quick:
        lines.append("\n--quick：这里不编译（CPU 上编译一次要半分钟），torch.compile 见第 2 部分。")
    return lines


def part_compile(found, size, device, quick, out_dir):
    steps = 20 if quick else 300
    args = size_args(size, steps, steps, 2 if quick else 20, out_dir)
    lines = ["| --compile | 总用时（含启动、编译、评估、写词） | 训练速度（字/秒） | 验证损失 |", "|---|---:|---:|---:|"]
    for flag in ("0", "1"):
        evals, out, seconds = run_script([found["v14"], *args, f"--compile={flag}"], device)
        if flag == "1" and "torch.compile 用不了" in out:
            raise RuntimeError(next(line for line in out.splitlines() if "torch.compile 用不了" in line))
        lines.append(f"| {flag} | {seconds:.1f} 秒 | {evals[-1]['tokens_per_sec']:,.0f} | {evals[-1]['val_loss']:.3f} |")
    lines.append(f"\n命令参数：`{' '.join(a for a in args if not a.startswith('--out_dir'))}`，{steps} 步。")
    return lines


def part_ddp(found, size, device, quick, out_dir):
    processes = torch.cuda.device_count() if device == "cuda" else 2
    steps = 20 if quick else 300
    batch = {**size, "batch_size": max(size["batch_size"] // processes, 1) * processes}  # 全局 batch 要能被进程数整除
    args = size_args(batch, steps, steps // 2, 2 if quick else 20, out_dir)
    torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", found["v15"], *args]
    evals, out, seconds = run_script(torchrun, device, {"OMP_NUM_THREADS": "1"})
    one, _, one_seconds = run_script([found["v15"], *args], device)
    backend = "NCCL" if device == "cuda" else "gloo"
    return ["| 进程 | 后端 | 用时 | 训练速度（字/秒） | 验证损失 |", "|---:|---|---:|---:|---:|",
            f"| 1 | — | {one_seconds:.1f} 秒 | {one[-1]['tokens_per_sec']:,.0f} | {one[-1]['val_loss']:.4f} |",
            f"| {processes} | {backend} | {seconds:.1f} 秒 | {evals[-1]['tokens_per_sec']:,.0f} | {evals[-1]['val_loss']:.4f} |",
            f"\n{steps} 步，全局 batch {batch['batch_size']}；写出的词：{len(parse_samples(out))} 首（只有 0 号进程写）。"]


def part_writing(found, size, device, quick):
    """完整尺寸（没训练过的）模型写 200 个字的速度：用和不用 KV 缓存；有 n_kv_head 的版本再比较 GQA。"""
    new_tokens = 40 if quick else 200
    lines = ["| 版本 | 设置 | KV 缓存 | 字/秒 | 缓存大小 |", "|---|---|---|---:|---:|"]
    for tag in [t for t in ("v13", "v14", "v19") if t in found]:
        module = load(found[tag])
        settings = [{}] if "n_kv_head" not in hyperparameters(found[tag]) else \
            [{"n_kv_head": size["n_head"]}, {"n_kv_head": 2 if size["n_head"] % 2 == 0 else 1}]
        for extra in settings:
            vars(module).update(size, **extra, temperature=1.0, top_k=0)
            torch.manual_seed(0)
            model = module.BabyGPT(6104).to(device).eval()
            for kv in (0, 1):
                module.kv_cache = kv
                idx = torch.zeros((1, 1), dtype=torch.long, device=device)
                model.generate(idx, 5)  # 预热
                start = time.time()
                model.generate(idx, new_tokens)
                getattr(torch, device).synchronize()
                speed = new_tokens / (time.time() - start)
                cache = {}
                with torch.no_grad():
                    model(torch.zeros((1, size["block_size"]), dtype=torch.long, device=device), cache=cache)
                nbytes = sum(t.numel() * t.element_size() for kv_pair in cache.values() if isinstance(kv_pair, tuple)
                             for t in kv_pair)
                label = ", ".join(f"{k}={v}" for k, v in extra.items()) or "—"
                size_text = f"{nbytes / 2**20:.2f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.1f} KiB"
                lines.append(f"| {tag} | {label} | {'用' if kv else '不用'} | {speed:,.0f} | {size_text if kv else ''} |")
    lines.append(f"\n从一个字开始写 {new_tokens} 个字（block_size {size['block_size']}）；缓存大小是写满 block_size 个字时"
                 "所有层的 k、v。")
    return lines


def part_long(found, size, device, quick, out_dir):
    steps = 30 if quick else 5000
    args = size_args(size, steps, steps // 5 if quick else 500, 2 if quick else 50, out_dir)
    evals, out, seconds = run_script([found["v14"], *args], device)
    lines = ["| 步数 | 训练损失 | 验证损失 | 训练速度（字/秒） |", "|---:|---:|---:|---:|"]
    lines += [f"| {e['step']} | {e['train_loss']:.4f} | {e['val_loss']:.4f} | {e['tokens_per_sec']:,.0f} |" for e in evals]
    first = next(iter(parse_samples(out).values()), "")
    lines += [f"\n用时 {seconds / 60:.1f} 分钟。经典的 T4 记录：5000 步验证损失约 3.98。",
              f"命令参数：`{' '.join(a for a in args if not a.startswith('--out_dir'))}`", "", "写出的第一首：", "",
              *(f"> {line}" for line in first.splitlines())]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], help="默认：有 CUDA 用 CUDA，否则 CPU")
    parser.add_argument("--quick", action="store_true", help="每一部分都用很小的尺寸、很少的步数（试这个脚本本身）")
    parser.add_argument("--out", default=str(REPORTS / "gpu_check.md"), help="报告写到这里（默认 docs/reports/gpu_check.md）")
    parser.add_argument("--parts", default="1,2,3,4,5", help="只做这几部分（逗号分隔），例如 --parts=4 只量写词和 KV 缓存")
    args = parser.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("错误：这台机器上的 PyTorch 用不了 CUDA")
    found = versions()
    size = TINY if args.quick else FULL
    began = time.time()
    scratch = tempfile.TemporaryDirectory(prefix="gpu_check_")  # 各部分训练出的检查点放这里，结束时删掉
    out_dir = Path(scratch.name)
    parts = [("1. 训练速度：v13 和 v14 的每种加速", lambda: part_speed(found, size, device, args.quick)),
             ("2. v14 用 torch.compile 从头到尾训练", lambda: part_compile(found, size, device, args.quick, out_dir)),
             ("3. v15 多进程（torchrun）", lambda: part_ddp(found, size, device, args.quick, out_dir)),
             ("4. 写词速度和 KV 缓存", lambda: part_writing(found, size, device, args.quick)),
             ("5. v14 完整配置的长跑", lambda: part_long(found, size, device, args.quick, out_dir))]
    text = [f"# GPU 检查{'' if device == 'cuda' else '（这次在 CPU 上）'}\n", f"- 命令：`python scripts/gpu_check.py {' '.join(sys.argv[1:])}`".rstrip(),
            f"- 机器：{machine(device)}（设备 {device}{'，GPU ' + str(torch.cuda.device_count()) + ' 块' if device == 'cuda' else ''}）",
            f"- 日期：{datetime.date.today().isoformat()}",
            f"- 尺寸：{'很小（--quick：只试脚本，数字没有意义）' if args.quick else 'v11 的完整配置'}："
            + "，".join(f"{k} {v}" for k, v in size.items()) + "\n"]
    chosen = args.parts.split(",")
    if not set(chosen) <= {str(i) for i in range(1, len(parts) + 1)}:
        sys.exit(f"错误：--parts={args.parts} 不对：只能是 1 到 {len(parts)} 的数，逗号分隔")
    parts = [part for i, part in enumerate(parts, 1) if str(i) in chosen]
    failed = 0
    for title, part in parts:
        print(title, flush=True)
        part_began = time.time()
        try:
            lines = part()
        except (RuntimeError, KeyError) as e:  # 一部分失败，记下原因，接着做下一部分
            failed += 1
            lines = [f"**失败**：{e}"]
        text += [f"## {title}\n", *lines, f"\n（这一部分用时 {time.time() - part_began:.0f} 秒）\n"]
        print("\n".join(lines), flush=True)
    scratch.cleanup()
    text.append(f"总用时 {time.time() - began:.0f} 秒；{len(parts) - failed} 部分成功，{failed} 部分失败。")
    write_report(args.out, text)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
