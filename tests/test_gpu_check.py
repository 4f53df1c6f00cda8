"""scripts/gpu_check.py：在 CPU 上用 --quick 把每一部分都走一遍（GPU 上是同一份代码，尺寸换成完整配置）。"""

import re

from conftest import ROOT, run


def test_every_part_runs_on_cpu_in_quick_mode(tmp_path):
    out = tmp_path / "gpu_check.md"
    r = run(ROOT / "scripts" / "gpu_check.py", "--device=cpu", "--quick", f"--out={out}", timeout=170)
    assert r.returncode == 0, r.stderr[-2000:]
    report = out.read_text(encoding="utf-8")
    assert "5 部分成功，0 部分失败" in report and "**失败**" not in report
    assert [m for m in re.findall(r"^## (\d)\.", report, re.MULTILINE)] == ["1", "2", "3", "4", "5"]
    speeds = re.findall(r"^\| (v13（上一版）|\+ [^|]+) \| ([\d,]+|不适用) \|", report, re.MULTILINE)
    assert speeds[0][0] == "v13（上一版）" and int(speeds[0][1].replace(",", "")) > 0
    assert dict(speeds)["+ TF32"] == "不适用"  # CPU 上没有 TF32
    compiled = re.search(r"^\| 1 \| ([\d.]+) 秒 \| ([\d,]+) \| ([\d.]+) \|$", report, re.MULTILINE)
    plain = re.search(r"^\| 0 \| ([\d.]+) 秒 \| ([\d,]+) \| ([\d.]+) \|$", report, re.MULTILINE)
    assert compiled and plain and abs(float(compiled[3]) - float(plain[3])) < 0.01  # 编译不改变结果
    ddp = re.findall(r"^\| (\d) \| (—|gloo) \| [\d.]+ 秒 \| [\d,]+ \| ([\d.]+) \|$", report, re.MULTILINE)
    assert [(n, backend) for n, backend, _ in ddp] == [("1", "—"), ("2", "gloo")]
    assert abs(float(ddp[0][2]) - float(ddp[1][2])) <= 1e-3  # 两个进程和一个进程的损失一样
    cached = re.findall(r"^\| (v\d+) \| [^|]+ \| 用 \| [\d,]+ \| ([\d.]+) MiB \|$", report, re.MULTILINE)
    assert {tag for tag, _ in cached} >= {"v13", "v14"} and all(float(size) > 0 for _, size in cached)
    long_run = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| [\d,]+ \|$", report, re.MULTILINE)
    assert [int(step) for step, _, _ in long_run] == [0, 6, 12, 18, 24, 30]
    assert float(long_run[-1][2]) < float(long_run[0][2])  # 验证损失在降
