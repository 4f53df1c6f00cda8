"""v21 的梯度裁剪到底裁了几步？在这个进程里跑 v21，记下每一步裁剪前的梯度范数。

用法
  python scripts/clipping.py            # 两次运行：同一配置（阶梯的 3000 步）和学习率 0.1（600 步）
  python scripts/clipping.py --steps 300 --out /tmp/clip   # 试一下：只跑 300 步（json 和图都写进 /tmp/clip）

每次运行和学习者敲的命令一样（v21 的 CPU 命令，float32，CPU 上结果每次一样），只是把
torch.nn.utils.clip_grad_norm_ 包了一层：它返回裁剪前的范数，这里一步一个记下来。
输出：docs/reports/clipping.json（每一步的范数、裁了几步、最后的验证损失）和 docs/grad_norm.png（范数随步数，横线是 grad_clip）。
"""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from versions import REPORTS, cpu_command, load, machine, parse_steps, pictures_dir, pyplot, versions

RUNS = {  # 名字 -> 在 v21 的 CPU 命令之上改的参数
    "同一配置（学习率 6e-3）": [],
    "学习率 0.1": ["--learning_rate=0.1", "--min_lr=0.01", "--eval_interval=50"],
}


def run(script, args, steps):
    """跑一次，返回 (每一步裁剪前的范数, 进度行)。"""
    module = load(script)
    norms, clip = [], torch.nn.utils.clip_grad_norm_

    def recording(parameters, max_norm, *rest, **kwargs):
        norm = clip(parameters, max_norm, *rest, **kwargs)
        norms.append(norm.item())
        return norm

    out = io.StringIO()
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(out):
        command = [*cpu_command(script), *args, f"--max_iters={steps}", "--dtype=float32", "--max_new_tokens=1",
                   f"--out_dir={scratch}"]
        old_argv, old_clip = sys.argv, torch.nn.utils.clip_grad_norm_
        sys.argv, torch.nn.utils.clip_grad_norm_ = [str(script), *command], recording
        os.environ["WANDB_MODE"] = "disabled"
        try:
            module.main()
        finally:
            sys.argv, torch.nn.utils.clip_grad_norm_ = old_argv, old_clip
    command = [a for a in command if not a.startswith("--out_dir")]
    return norms, parse_steps(out.getvalue()), f"python {script.name} {' '.join(command)}"


def picture(report, path):
    plt, label = pyplot()
    runs = report["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.8))
    for ax, (name, run) in zip(axes, runs.items(), strict=True):
        ax.plot(range(len(run["norms"])), run["norms"], linewidth=0.6, color="tab:blue",
                label=label("裁剪前的梯度范数", "gradient norm before clipping"))
        ax.axhline(report["grad_clip"], color="tab:red", linestyle="--",
                   label=label(f"grad_clip = {report['grad_clip']}：线以上的步被裁剪", f"grad_clip = {report['grad_clip']}"))
        ax.set_yscale("log")
        ax.set_xlabel(label("训练步数", "step"))
        ax.set_title(label(f"{name}：{run['clipped']} / {len(run['norms'])} 步被裁剪",
                           f"{run['clipped']} of {len(run['norms'])} steps clipped"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(label("v21 每一步裁剪前的梯度范数（v21 的 CPU 命令，float32）", "v21: gradient norm at every step"))
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="每次运行都只跑这么多步（默认：同一配置 3000 步，学习率 0.1 600 步）")
    parser.add_argument("--out", default=str(REPORTS), help="clipping.json 写到这个目录，默认 docs/reports/")
    parser.add_argument("--pictures", help="grad_norm.png 写到这个目录（默认：没给 --out 时 docs/，给了就和 json 放在一起）")
    args = parser.parse_args()
    script = versions()["v21"]
    grad_clip = load(script).grad_clip
    report = {"machine": machine(), "grad_clip": grad_clip, "runs": {}}
    for (name, extra), steps in zip(RUNS.items(), (3000, 600), strict=True):
        norms, evals, command = run(script, extra, args.steps or steps)
        clipped = [step for step, norm in enumerate(norms) if norm > grad_clip]  # 第 step 步（从 0 数）的那次更新
        report["runs"][name] = {"command": command, "norms": [round(n, 4) for n in norms], "clipped": len(clipped),
                                "clipped_steps": clipped, "max_norm": max(norms), "final_val_loss": evals[-1]["val_loss"]}
        print(f"{name}：{len(clipped)} / {len(norms)} 步被裁剪（范数 > {grad_clip}），最大 {max(norms):.2f}，"
              f"最后的验证损失 {evals[-1]['val_loss']:.4f}；第一次在第 {clipped[0] if clipped else '—'} 步", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "clipping.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    pictures = pictures_dir(out, args.pictures)  # 试跑（--out 别处）不覆盖 docs/ 里的图
    pictures.mkdir(parents=True, exist_ok=True)
    picture(report, pictures / "grad_norm.png")
    print(f"写好了：{out / 'clipping.json'}、{pictures / 'grad_norm.png'}")


if __name__ == "__main__":
    main()
