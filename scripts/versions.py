"""babygpt 的版本脚本：找到它们，知道每个版本有哪些参数，读懂它们打印的东西。

scripts/ 里的工具和 tests/ 都用这一份，不各写各的。
"""

import ast
import contextlib
import functools
import importlib.util
import os
import platform
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "docs" / "reports"  # 量出来的报告（表格、原始数据、运行记录）：不在学习的路上，章节引用它们
PICTURES = ROOT / "docs"  # 图片留在 docs/：章节直接放它们
STEP_LINE = re.compile(r"^step\s+(\d+)/(\d+) \| 训练损失 ([\d.]+) \| 验证损失 ([\d.]+) \| ([\d,]+) 字/秒 \| 已用 (\S+)",
                       re.MULTILINE)
SAMPLE = re.compile(r"^--- ([^\n]+) ---\n(.*?)\n（([\d,]+) 字/秒）$", re.MULTILINE | re.DOTALL)
SCAFFOLDING_FLAGS = {"device", "data", "out_dir", "resume", "sample", "interactive"}


def number(path):
    return int(re.match(r"babygpt_v(\d+)", Path(path).name)[1])


def versions():
    """{"v1": Path(babygpt_v1.py), ...}，按版本号排好。"""
    found = sorted(ROOT.glob("babygpt_v*.py"), key=number)
    return {f"v{number(p)}": p for p in found}


def load(path):
    """把版本脚本当模块读进来：只定义函数和类；训练在 main() 里，不会开始。"""
    spec = importlib.util.spec_from_file_location(Path(path).stem + "_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def from_checkpoint(script, checkpoint, **settings):
    """用版本脚本自己的类读回它的检查点（只读张量和普通数据）：返回 (模块, 模型, 分词器, 检查点)。
    模型的超参数和词表来自检查点，和 --sample 一样；settings 再改写词时的设置（temperature 等）。"""
    import torch
    with warnings.catch_warnings():  # PyTorch 2.1 读检查点时会多打印一条无害的 TypedStorage 警告
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    module = load(script)
    vars(module).update(state["hyperparameters"], **settings)
    tokenizer = module.Tokenizer("".join(state["vocab"]))
    with contextlib.redirect_stdout(sys.stderr):  # v25 建模型时说一句 LoRA 的事：别混进 --json 的输出
        model = module.BabyGPT(tokenizer.vocab_size)
    model.load_state_dict(state["model"])
    return module, model.eval(), tokenizer, state


@functools.cache
def parsed(path, modified):
    """脚本的语法树。按 (路径, 修改时间) 记住：测试里一个版本要查几十次参数，文件一改就重新读。"""
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def syntax_tree(path):
    return parsed(Path(path).resolve(), Path(path).stat().st_mtime_ns)


def hyperparameters(path):
    """脚本开头的超参数和默认值：模块里小写名字、值是数或字符串的赋值。"""
    tree = syntax_tree(path)
    found = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.islower() and isinstance(node.value, ast.Constant)
                and type(node.value.value) in (int, float, str)):
            found[node.targets[0].id] = node.value.value
    return found


def flags(path):
    """这个版本认识的所有命令行参数（不带 --）。"""
    return set(hyperparameters(path)) | SCAFFOLDING_FLAGS


def cpu_command(path):
    """文件开头说明里给 CPU 的缩小命令（v11 起才有）的参数；没有就是 []。"""
    doc = ast.get_docstring(syntax_tree(path)) or ""
    lines = [line.split() for line in doc.splitlines() if line.strip().startswith(f"python {Path(path).name} --")]
    return lines[0][2:] if lines else []


def seconds(text):
    """进度行里的时间："35ms"、"12.3s"、"1m07s" 或 "2h05m"。"""
    if m := re.fullmatch(r"(\d+)ms", text):
        return int(m[1]) / 1000
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?", text)
    return int(m[1] or 0) * 3600 + int(m[2] or 0) * 60 + float(m[3] or 0)


def parse_steps(stdout):
    """每次评估打印的一行：[{"step", "total", "train_loss", "val_loss", "tokens_per_sec", "seconds"}, ...]"""
    return [{"step": int(m[1]), "total": int(m[2]), "train_loss": float(m[3]), "val_loss": float(m[4]),
             "tokens_per_sec": float(m[5].replace(",", "")), "seconds": seconds(m[6])}
            for m in STEP_LINE.finditer(stdout)]


def parse_samples(stdout):
    """写出的词：{开头: 词}。脚本打印 "--- 开头 ---"、词（可以有换行）、再一行 "（123 字/秒）"。"""
    return {m[1]: m[2] for m in SAMPLE.finditer(stdout)}


def parse_writing_speeds(stdout):
    """每首词后面的写词速度（字/秒），按打印顺序。"""
    return [float(m[3].replace(",", "")) for m in SAMPLE.finditer(stdout)]


# 常见的中文字体：Linux（Noto、思源、文泉驿）、macOS（苹方、冬青、黑体）、Windows（微软雅黑、黑体、宋体）
CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Droid Sans Fallback", "PingFang SC", "Hiragino Sans GB", "Heiti SC", "STHeiti", "Songti SC",
             "Microsoft YaHei", "SimHei", "SimSun", "Arial Unicode MS"]


def find_cjk_font():
    """本机装了的第一个中文字体的名字（给 matplotlib 用）；一个都没有就是 None。"""
    from matplotlib import font_manager
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def cpu_features(flags):
    """CPU 速度取决于的指令集（/proc/cpuinfo 的 flags）：有没有 bf16 指令决定 v14 的 --dtype=auto 选什么、快多少。"""
    found = [name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    if found:
        return "有 " + "、".join(found)
    return "只有 AVX2（没有 AVX512-BF16）" if "avx2" in flags else "没有 AVX2"


def machine(device=None):
    """这台机器的一句话说明（处理器和它的 bf16 指令、核数、Python、PyTorch；在 CUDA 上再加显卡），写进报告里。"""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        cpu += f"（{cpu_features(next(line for line in lines if line.startswith('flags')).split())}）"
    except (OSError, StopIteration):
        pass
    gpu = f"，{torch.cuda.get_device_name(0)}" if device == "cuda" else ""
    return f"{cpu}，{os.cpu_count()} 核{gpu}，Python {platform.python_version()}，PyTorch {torch.__version__}"


def pictures_dir(out, given=None):
    """报告写进 out 时，图片写到哪里：写明了就用它；报告进 docs/reports/ 时图片进 docs/（章节放它们）；
    报告写到别处（试跑）时图片和报告放在一起，不覆盖 docs/ 里的图。"""
    if given:
        return Path(given)
    return PICTURES if Path(out).resolve() == REPORTS else Path(out)


def link(picture, page_dir):
    """从 page_dir 里的报告链接到图片 picture 的相对路径（Markdown 用 /）。"""
    return Path(os.path.relpath(Path(picture).resolve(), Path(page_dir).resolve())).as_posix()


def write_report(path, lines):
    """把报告（一行一项）写成 Markdown 文件：先写临时文件再改名，中途出错不留下半份报告。"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".tmp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".tmp").replace(out)
    print(f"写好了：{out}")


def pyplot():
    """matplotlib（不开窗口）和一个 label(中文, 英文)：找得到中文字体就用中文标签，找不到就用英文，免得汉字变方框。"""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    font = find_cjk_font()
    if font:
        plt.rcParams["font.sans-serif"] = [font]
    return plt, (lambda zh, en: zh) if font else (lambda zh, en: en)
