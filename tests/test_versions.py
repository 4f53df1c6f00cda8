"""每个版本都能独立运行、损失下降、检查点能读回；相邻版本只差一个想法。"""

import ast
import difflib
import io
import itertools
import re
import tokenize

import pytest
import torch
from conftest import ROOT, VERSIONS, in_process, load, one_line_error, run, samples, steps, tiny_args, version
from versions import hyperparameters, number

ALLOWED_IMPORTS = {"argparse", "contextlib", "copy", "datetime", "math", "os", "signal", "socket", "sys", "time", "urllib.request",
                   "warnings", "torch", "torch.nn", "torch.nn.functional", "torch.distributed", "torch.nn.parallel",
                   "wandb"}
MARKERS = ("# ---------------- 1. 分词器", "# ---------------- 2. 模型", "# ---------------- 3. 取数据",
           "# ---------------- 4. 训练", "# ================ 脚手架")
# 每一步的代码改动（不算文档字符串和注释）最多几行：多数版本 25 行，v12（wandb，先试连服务器、连不上就不登录）41，v13（KV 缓存）45，
# v14（六种加速，注意力整个换成融合的写法，bf16 做不了时的一行报错，再加上开训前两种精度都量、float32 优先、
# bf16 快过 1.25 倍才用并说出为什么，检查点记下用的精度、续训接着用）115，
# v15（DDP：进程组、全局 batch 的切分、梯度累积、一起停，各进程用 0 号进程量出的精度）65；从 GPT 到 LLaMA：v16 RMSNorm 15，v17 RoPE 35，
# v18 SwiGLU 15，v19 GQA 25；怎样训练得好：v20 学习率计划 20，v21 梯度裁剪 10（进度行的梯度范数在没走过一步时是“—”），
# v22 Muon 53（Optimizers 的 zero_grad、没有梯度的参数不动、正交化用训练的精度；形状一样的矩阵叠起来一起正交化：
# 小模型上快，多 2 行；迭代里的乘法和加法用 baddbmm 一次算完，多 1 行；两个优化器在 make_optimizer 里建好，
# v23 的规则要用它给每个候选大小建一个）；v23 --minutes 88（规则本身，再加上扫描里胜出的两处：
# 从词的开头切段、嵌入表和输出层共用，见 docs/reports/budget.md；挑精度的规则从 train 搬进 pick_precision，规则也用它，bf16 要快过 1.5 倍；
# 机器忙、分钟少时量完最小的就不再量，量完按剩下的时间再比一次，不够时说至少要几分钟；
# torchrun 时只有 0 号进程量、挑，广播给其他进程）；v24 微调 43（基础模型的形状、词表和权重，
# 一位词人的词按留出规则分成训练和验证，默认从他的词牌写，--sample 也从检查点里记着的词牌写；微调时不编码整个语料，if/else 多几行）；
# v25 LoRA 44（LoRA 本身，冻住的权重不进检查点，写词前合进权重；只有 AdamW 时 make_optimizer 不建 Muon；--sample 时也要读基础模型，读它的那几行成了一个函数；
# 钩子是 LoRA 的方法，measure_time 复制模型时副本连着副本的 A、B；DDP 不每步广播冻住的基础模型）；
# v26 强化学习 200（一批一起写到空行、快的抽字、对数概率、打分（再乘不重复的字几成，不然模型只写“时”“处”）、组里的优势、跳过的组、KL、评估时的四个看守和进度行，
# 训练循环里“猜下一个字”的那几行缩进到 else 下面）
DIFF_LIMIT = {12: 41, 13: 45, 14: 115, 15: 65, 16: 15, 17: 35, 18: 15, 19: 25, 20: 20, 21: 10, 22: 53, 23: 88, 24: 43,
              25: 44, 26: 200}
LLAMA = {16: "RMSNorm", 17: "RoPE", 18: "SwiGLU", 19: "GQA"}
RECIPE = {20: ({"warmup_iters", "min_lr"}, "get_lr"), 21: ({"grad_clip"}, "clip_grad_norm_"),
          22: (set(), "orthogonalize")}  # 新的超参数、这一步的想法在代码里叫什么


def sections(path):
    """按标记切开：[开头（超参数）, 分词器, 模型, 取数据/评估/挑字, 训练和写词, 脚手架]"""
    source = path.read_text(encoding="utf-8")
    cuts = [0, *(source.index(marker) for marker in MARKERS), len(source)]
    return [source[a:b] for a, b in itertools.pairwise(cuts)]


def code_lines(source):
    """去掉模块文档字符串、注释和空行后的代码行（和 scripts/codediff.py 一样数）。"""
    body = ast.parse(source).body
    skip = set()
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    comments = {tok.start[0]: tok.start[1] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    lines = []
    for no, line in enumerate(source.splitlines(), 1):
        line = line[:comments[no]].rstrip() if no in comments else line.rstrip()
        if no not in skip and line.strip():
            lines.append(line)
    return lines


def changed_lines(old, new):
    return [d for d in difflib.ndiff(code_lines(old), code_lines(new)) if d[:2] in ("- ", "+ ")]


def test_versions_are_numbered_without_gaps():
    numbers = [number(p) for p in VERSIONS]
    assert numbers == list(range(1, len(numbers) + 1))
    assert {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} <= set(numbers)


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.stem)
def test_standalone(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    # 唯一的例外：v26 的奖励就是第二把尺子，import scripts/form.py（这一课讲的正是尺子变成奖励；两份代码可能量得不一样）
    allowed = ALLOWED_IMPORTS | ({"form"} if number(path) == 26 else set())
    assert imported <= allowed, imported - allowed
    assert not imported & {p.stem for p in ROOT.glob("*.py")}


@pytest.mark.parametrize("path", VERSIONS[1:], ids=lambda p: p.stem)
def test_shared_parts_are_word_for_word_identical(path):
    """分词器、取数据/评估/挑字、脚手架：每个版本都和 v1 一字不差（注释也算）。"""
    first, this = sections(VERSIONS[0]), sections(path)
    for i in (1, 3, 5):
        diff = [line for line in difflib.unified_diff(first[i].splitlines(), this[i].splitlines(), lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert diff == [], "\n".join(diff)


@pytest.mark.parametrize("older, newer", list(itertools.pairwise(VERSIONS)), ids=lambda p: p.stem)
def test_each_step_is_small(older, newer):
    changed = changed_lines(older.read_text(encoding="utf-8"), newer.read_text(encoding="utf-8"))
    assert 0 < len(changed) <= DIFF_LIMIT.get(number(newer), 25), "\n".join(changed)


def test_v12_changes_only_wandb():
    """v11 -> v12：改动的每一行都和 wandb 有关，而且都在学习者读的地方（训练循环、main、新写的 wandb 函数）。"""
    v11, v12 = version(11), version(12)
    old, new = sections(v11), sections(v12)
    assert old[1:4] + old[5:] == new[1:4] + new[5:]  # 分词器、模型、取数据、脚手架：一字不差
    tree = ast.parse(new[4])
    wandb_functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and "wandb" in n.name]
    assert {f.name for f in wandb_functions} == {"start_wandb", "wandb_server_reachable"}
    loop_and_main = new[4].splitlines()
    for f in reversed(wandb_functions):
        del loop_and_main[f.lineno - 1:f.end_lineno]
    changed = changed_lines(old[4], "\n".join(loop_and_main))
    added = [line[2:].strip() for line in changed if line.startswith("+")]
    removed = [line[2:].strip() for line in changed if line.startswith("-")]
    assert added and all("wandb" in line or "samples" in line for line in added), "\n".join(changed)
    assert all(any(line in new_line for new_line in added) for line in removed), removed  # 删掉的行只是被包进了新行
    head = changed_lines(old[0], new[0])
    assert sorted(head) == ["+ import socket", "+ import urllib.request", "+ import wandb",
                            '+ wandb_mode = ""'], head


def test_shared_defaults_and_full_configuration():
    defaults = {number(p): hyperparameters(p) for p in VERSIONS}
    shared = ("batch_size", "block_size", "max_iters", "eval_interval", "eval_iters", "learning_rate", "n_embed")
    for name in shared:  # v1..v10 用同一套默认值，diff 里只有想法
        assert len({defaults[n][name] for n in range(1, 11)}) == 1, name
    full = {"n_layer": 6, "n_head": 6, "n_embed": 384, "block_size": 256, "batch_size": 64, "learning_rate": 3e-4,
            "dropout": 0.2}
    for n in defaults:
        if n >= 11:
            assert {k: defaults[n][k] for k in full} == full
        assert defaults[n]["prompts"] == "春江,往事" and defaults[n]["temperature"] == 1.0 and defaults[n]["top_k"] == 0


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.stem)
def test_trains_writes_and_checkpoint_reloads(path, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    r = run(path, *tiny_args(path, max_iters=30), f"--data={small_corpus}", f"--out_dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    log = steps(r.stdout)
    assert [s for s, _, _ in log] == [0, 10, 20, 30]
    assert log[-1][1] < log[0][1] - 0.5 and log[-1][2] < log[0][2]
    assert set(samples(r.stdout)) == {"春江", "往事"}
    for prompt, text in samples(r.stdout).items():
        assert text.startswith(prompt) and len(text) == len(prompt) + 8

    # 检查点原样读回（weights_only：只有张量和普通数据），用脚本自己的类和函数重建模型，
    # 再算一遍验证损失，和脚本最后打印的一致
    state = torch.load(tmp_path / f"{path.stem}.pt", weights_only=True)
    module = load(path)
    vars(module).update(state["hyperparameters"])
    tokenizer = module.Tokenizer(small_corpus.read_text(encoding="utf-8"))
    assert tokenizer.chars == state["vocab"] and state["step"] == 30
    model = module.BabyGPT(tokenizer.vocab_size)
    model.load_state_dict(state["model"])  # strict：少一个、多一个参数都会报错
    data = torch.tensor(tokenizer.encode(small_corpus.read_text(encoding="utf-8")))
    splits = {"train": data[:int(0.9 * len(data))], "val": data[int(0.9 * len(data)):]}
    generator = torch.Generator().manual_seed(module.seed)
    offsets = {name: torch.randint(len(d) - module.block_size, (module.eval_iters, module.batch_size),
                                   generator=generator) for name, d in splits.items()}
    losses = module.estimate_loss(model, splits, offsets)
    assert (round(losses["train"], 4), round(losses["val"], 4)) == log[-1][1:]


@pytest.mark.parametrize("path", [p for p in VERSIONS if "dropout" in hyperparameters(p)][:1] +
                         [p for p in VERSIONS if "n_head" in hyperparameters(p)][:1], ids=lambda p: p.stem)
def test_checks_come_with_the_hyperparameter(path, small_corpus, tmp_path):
    """n_head（v4 起）和 dropout（v10 起）的检查在引入它们的版本的模型里；v1 的代码里没有这两个名字。"""
    v1_code = "\n".join(code_lines(VERSIONS[0].read_text(encoding="utf-8")))
    assert "n_head" not in v1_code and "dropout" not in v1_code
    bad = "--dropout=1" if "dropout" in hyperparameters(path) else "--n_embed=15"
    r = in_process(path, *tiny_args(path), bad, f"--data={small_corpus}", f"--out_dir={tmp_path}")
    one_line_error(r, 1)
    assert re.fullmatch(r"错误：(dropout=1\.0 必须小于 1|n_embed=15 必须是 n_head=2 的整数倍)\n", r.stderr), r.stderr


@pytest.mark.parametrize("older, newer", [(a, b) for a, b in itertools.pairwise(VERSIONS) if number(b) in LLAMA],
                         ids=lambda p: p.stem)
def test_llama_steps_change_only_the_model(older, newer):
    """v16..v19：只有模型（和 v19 的新超参数 n_kv_head）变了；分词器、取数据、训练、写词、脚手架一字不差。"""
    old, new = sections(older), sections(newer)
    assert old[1] == new[1] and old[3:] == new[3:]
    before, after = hyperparameters(older), hyperparameters(newer)  # 开头只多了 n_kv_head（v19）
    assert {k: v for k, v in after.items() if k != "n_kv_head"} == before
    assert [n for n in load(newer).POSITIVE if n != "n_kv_head"] == list(load(older).POSITIVE)
    assert [line for line in changed_lines(old[0], new[0]) if line.startswith("+ import")] == []
    assert changed_lines(old[2], new[2])  # 模型确实变了
    assert LLAMA[number(newer)] in ast.get_docstring(ast.parse(new[0]))


@pytest.mark.parametrize("older, newer", [(a, b) for a, b in itertools.pairwise(VERSIONS) if number(b) in RECIPE],
                         ids=lambda p: p.stem)
def test_recipe_steps_change_only_the_training_loop_and_the_optimizer(older, newer):
    """v20..v22：模型、分词器、取数据、脚手架一字不差；开头只多了这一步的超参数；改的都在“4. 训练”里。"""
    old, new = sections(older), sections(newer)
    assert old[1:4] == new[1:4] and old[5] == new[5]
    added, idea = RECIPE[number(newer)]
    before, after = hyperparameters(older), hyperparameters(newer)
    assert set(after) - set(before) == added and set(before) <= set(after)
    assert all(after[k] == before[k] for k in before)
    head = [line for line in changed_lines(old[0], new[0]) if not line.startswith("+ import math")]
    assert all(line.startswith("+ ") and line[2:].split(" = ")[0] in added for line in head), head
    assert changed_lines(old[4], new[4]) and idea in new[4] and idea not in old[4]
    training = new[4][:new[4].index("\ndef write(")]  # 写词（write）和 main() 不变
    assert old[4][old[4].index("\ndef write("):] == new[4][new[4].index("\ndef write("):]
    assert idea in training
