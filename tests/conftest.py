"""测试共用的小工具：像学习者一样用子进程运行脚本，再读它打印的数字。

读输出、找版本、查某个版本有哪些参数：都用 scripts/versions.py 那一份（scripts/ladder.py 也用它）。
"""

import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

# pytest-xdist 每个核一个进程；每个进程（和它启动的脚本）再开几个线程，两核上就互相抢得很慢：一个线程就够
os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from versions import ROOT, flags, load, parse_samples, parse_steps, versions

VERSIONS = [path for tag, path in versions().items() if tag != "v0"]  # 神经网络的版本（v0 是数数，另测）


def version(n):
    """第 n 版的脚本；还没有这一版就是 None（测试用 skipif 跳过）。"""
    return versions().get(f"v{n}")


__all__ = ["ROOT", "VERSIONS", "assert_picture", "descendants", "in_process", "load", "one_line_error", "run",
           "run_command", "samples", "started", "steps", "stopping_at", "tiny_args", "tiny_module", "trained_checkpoint",
           "version"]


def tiny_args(script, **overrides):
    """几秒钟就能跑完的超参数；大版本（有 n_head / n_layer）也缩小。只传这个版本有的参数。"""
    args = {"batch_size": 4, "block_size": 16, "n_embed": 16, "max_iters": 30, "eval_interval": 10,
            "eval_iters": 2, "max_new_tokens": 8, "learning_rate": 1e-2, "device": "cpu", "n_head": 2, "n_layer": 2,
            "dtype": "float32", "warmup_iters": 2, "min_lr": 1e-3}
    args.update(overrides)
    known = flags(script)
    return [f"--{k}={v}" for k, v in args.items() if k in known]


def tiny_module(script, **overrides):
    """读进一个版本，把决定模型大小的超参数改得很小（overrides 再改），在测试进程里直接建模型、算数。"""
    module = load(script)
    vars(module).update({"block_size": 8, "n_embed": 16, "n_head": 2, "n_layer": 2, "dropout": 0.0, "temperature": 0,
                         "top_k": 0, "kv_cache": 1, **overrides})
    return module


def in_process(script, *args, module=None, stdin="", env=None):
    """像 run(script, *args) 一样，但在这个进程里跑 main()：省掉起进程、导入 torch 的一两秒。
    返回一样的 CompletedProcess：sys.exit 的字符串印到 stderr、退出码 1（和 Python 一样），argparse 的退出码照旧。
    没处理的异常照样抛出：测试失败，就像命令行上的 traceback。module：先改过的模块（默认重新读一份 script）；
    env：整个换掉环境变量（和 run 的 env 一样），默认只加上 WANDB_MODE=disabled。
    跑完后 sys.argv、标准输入输出、环境变量都还原。"""
    module = module or load(script)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    env = env if env is not None else {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled")}
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            mock.patch.object(sys, "argv", [str(script), *map(str, args)]), \
            mock.patch.object(sys, "stdin", io.StringIO(stdin)), mock.patch.dict(os.environ, env, clear=True):
        try:
            module.main()
        except SystemExit as e:
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess([str(script), *args], code, out.getvalue(), err.getvalue())


def trained_checkpoint(folder, script, corpus, **overrides):
    """在 folder 里用 corpus 训练一个很小的 script（tiny_args，再按 overrides 改），返回它存下的检查点。"""
    r = in_process(script, *tiny_args(script, **overrides), f"--data={corpus}", f"--out_dir={folder}")
    assert r.returncode == 0, r.stderr
    return folder / f"{script.stem}.pt"


def one_line_error(r, code, *words):
    """r（run 或 in_process 的结果）以退出码 code 结束，stderr 只有一行“错误：……”，含有每个 words，没有 traceback。"""
    assert r.returncode == code, (r.returncode, r.stdout[-1000:], r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("错误："), r.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def assert_picture(path, min_width=300):
    """path 是一张有内容的 PNG：至少 min_width 像素宽，而且画上了彩色的东西（线、柱子、热图），
    不是一张白图、也不是只有黑白的坐标轴和字。返回像素 (高, 宽, 通道)。"""
    import matplotlib.image
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)[..., :3]
    colored = (pixels.max(axis=-1) - pixels.min(axis=-1) > 0.15).mean()  # R、G、B 差得多的像素：不是灰色
    assert pixels.shape[1] >= min_width and colored > 0.005, (pixels.shape, colored)
    return pixels


def stopping_at(module, stop_at):
    """像在第 stop_at 步按了 Ctrl-C：脚本在这一步停下、存检查点（Progress 的子类，只改 line）。
    v20 起学习率计划取决于 max_iters：要比较“停下再续训”和“一口气训完”，两次的 max_iters 得一样。"""
    class Stopping(module.Progress):
        def line(self, step, losses, *rest):  # rest：v26 还给一共训练了几个字
            self.stopped = self.stopped or step == stop_at
            return super().line(step, losses, *rest)
    return Stopping


def descendants(pid):
    """pid 的所有子孙进程（读 /proc；没有 /proc 的系统上是 []）。torchrun 的 worker 自己另开会话，杀进程组杀不到。"""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # 进程刚好结束了
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop(proc):
    """杀掉 proc、它的整个进程组和所有子孙进程，再收尸。测试结束（通过、失败、超时都一样）时调用。"""
    for pid in descendants(proc.pid):  # 先记下子孙：父进程一死，它们就挂到 init 下面，找不到了
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)  # 进程组号 = proc 的 pid（start_new_session）
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            stream.close()


@contextlib.contextmanager
def started(command, *, encoding="utf-8", stdin=subprocess.DEVNULL, **kwargs):
    """启动一个进程（自己一个进程组），用完、出错或超时都连同它的子孙一起杀掉：失败的测试不留下进程。"""
    proc = subprocess.Popen([str(c) for c in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin,
                            text=True, encoding=encoding, start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        stop(proc)


def run_command(command, *, env=None, timeout=180, stdin=None, encoding="utf-8", cwd=None):
    """像 subprocess.run，但超时或出错时一个进程也不留下。"""
    with started(command, env=env, cwd=cwd, encoding=encoding,
                 stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL) as proc:
        out, err = proc.communicate(stdin, timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(script, *args, **kwargs):
    """像学习者一样运行一个脚本：python 脚本 参数……"""
    return run_command([sys.executable, script, *args], **kwargs)


def steps(stdout):
    """[(step, train_loss, val_loss), ...]，按打印顺序。"""
    return [(s["step"], s["train_loss"], s["val_loss"]) for s in parse_steps(stdout)]


samples = parse_samples


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """ci.txt 开头的几十首词：词表小，训练快，但格式和真语料一样。"""
    text = (ROOT / "ci.txt").read_text(encoding="utf-8")
    cut = text.index("\n\n", 30000) + 1
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(text[:cut], encoding="utf-8")
    return path
