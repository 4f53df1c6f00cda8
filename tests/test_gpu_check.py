"""scripts/gpu_check.py：在 CPU 上用 --quick 把每一部分都走一遍（GPU 上是同一份代码，尺寸换成完整配置）。

在测试进程里跑它的 main()（in_process）。第 5 部分真的起进程跑 v14；第 2 部分的两次 v14 在测试进程里跑，
torch.compile 换成不编译的一份：这里只查这一部分的做法和表格（冷的编译缓存上编译要十几秒）。torch.compile 本身
在 tests/test_fast.py 里真的编译一次最小的模型。第 3 部分的 torchrun 在 tests/test_ddp.py 里真的跑过同样的命令，
这里换成假的 run_script，只检查命令和表格。"""

import re
import time

import gpu_check
import torch
from conftest import ROOT, in_process
from versions import parse_steps

SCRIPT = ROOT / "scripts" / "gpu_check.py"


def quick(tmp_path, parts):
    out = tmp_path / "gpu_check.md"
    r = in_process(SCRIPT, "--device=cpu", "--quick", f"--parts={parts}", f"--out={out}", module=gpu_check)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = out.read_text(encoding="utf-8")
    done = len(parts.split(","))
    assert f"{done} 部分成功，0 部分失败" in report and "**失败**" not in report
    assert re.findall(r"^## (\d)\.", report, re.MULTILINE) == parts.split(",")
    return report


def test_compile_part_trains_twice_and_compares(tmp_path, monkeypatch):
    asked = []  # 哪些模型被要求编译

    def run_script(command, device, env_extra=None):
        began = time.time()
        r = in_process(command[0], *command[1:], f"--device={device}")
        assert r.returncode == 0, r.stderr
        return parse_steps(r.stdout), r.stdout, time.time() - began
    monkeypatch.setattr(gpu_check, "run_script", run_script)
    monkeypatch.setattr(torch, "compile", lambda model: asked.append(model) or model)
    report = quick(tmp_path, "2")
    assert len(asked) == 1  # 只有 --compile=1 那次要求编译
    compiled = re.search(r"^\| 1 \| ([\d.]+) 秒 \| ([\d,]+) \| ([\d.]+) \|$", report, re.MULTILINE)
    plain = re.search(r"^\| 0 \| ([\d.]+) 秒 \| ([\d,]+) \| ([\d.]+) \|$", report, re.MULTILINE)
    assert compiled and plain and abs(float(compiled[3]) - float(plain[3])) < 0.01


def test_speed_writing_and_long_run_parts(tmp_path):
    report = quick(tmp_path, "1,4,5")
    speeds = re.findall(r"^\| (v13（上一版）|\+ [^|]+) \| ([\d,]+|不适用) \|", report, re.MULTILINE)
    assert speeds[0][0] == "v13（上一版）" and int(speeds[0][1].replace(",", "")) > 0
    assert dict(speeds)["+ TF32"] == "不适用"  # CPU 上没有 TF32
    cached = re.findall(r"^\| (v\d+) \| [^|]+ \| 用 \| [\d,]+ \| ([\d.]+) [KM]iB \|$", report, re.MULTILINE)
    assert {tag for tag, _ in cached} >= {"v13", "v14"} and all(float(size) > 0 for _, size in cached)
    long_run = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| [\d,]+ \|$", report, re.MULTILINE)
    assert [int(step) for step, _, _ in long_run] == [0, 6, 12, 18, 24, 30]
    assert float(long_run[-1][2]) < float(long_run[0][2])  # 验证损失在降


def test_ddp_part_runs_torchrun_and_one_process_with_the_same_command(tmp_path, monkeypatch):
    commands = []

    def run_script(command, device, env_extra=None):
        commands.append([str(c) for c in command])
        loss = 5.4321 if "torch.distributed.run" in commands[-1] else 5.4322
        return [{"step": 0, "val_loss": 7.0, "tokens_per_sec": 0}, {"step": 20, "val_loss": loss, "tokens_per_sec": 1234}], \
            "\n--- 春江 ---\n春江水\n", 1.5
    monkeypatch.setattr(gpu_check, "run_script", run_script)
    lines = gpu_check.part_ddp(gpu_check.versions(), gpu_check.TINY, "cpu", True, tmp_path)
    torchrun, one = commands
    assert torchrun[:4] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert torchrun[4:] == one and one[0].endswith("babygpt_v15_ddp.py") and "--max_iters=20" in one
    assert "| 1 | — | 1.5 秒 | 1,234 | 5.4322 |" in lines and "| 2 | gloo | 1.5 秒 | 1,234 | 5.4321 |" in lines
