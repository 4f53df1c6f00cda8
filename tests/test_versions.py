"""v1..v12：每个版本都能独立运行、损失下降、检查点能续训；相邻版本只差一个想法。"""

import ast
import difflib
import importlib.util
import itertools
import re

import pytest
import torch
from conftest import ROOT, VERSIONS, run, samples, steps, tiny_args

ALLOWED_IMPORTS = {"argparse", "os", "signal", "sys", "time", "torch", "torch.nn", "torch.nn.functional", "wandb"}
# 一个版本可以改的部分：文档字符串、超参数、模型。其余（分词器、取数据、训练、脚手架）必须一字不差
SECTIONS = ("# ---------------- 超参数", "# ---------------- 1. 分词器", "# ---------------- 2. 模型",
            "# ---------------- 3. 取数据与评估")


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_wandb_functions(source):
    """去掉名字里带 wandb 的函数（v12 新增的脚手架）。"""
    lines = source.splitlines(keepends=True)
    for node in reversed(ast.parse(source).body):
        if isinstance(node, ast.FunctionDef) and "wandb" in node.name:
            del lines[node.lineno - 1:node.end_lineno]
    return "".join(lines)


def parts(path):
    """(可以改的部分, 必须相同的部分)，都按行切开。"""
    source = without_wandb_functions(path.read_text(encoding="utf-8"))
    body = source[source.index('"""', 3) + 3:]  # 去掉文档字符串
    cut = [body.index(marker) for marker in SECTIONS]
    changeable = body[:cut[1]] + body[cut[2]:cut[3]]
    fixed = body[cut[1]:cut[2]] + body[cut[3]:]
    return changeable.splitlines(), fixed.splitlines()


def code_lines(lines):
    return [re.sub(r"\s*#.*$", "", line) for line in lines if line.strip() and not line.strip().startswith("#")]


def test_all_twelve_versions_are_there():
    assert [int(re.match(r"babygpt_v(\d+)", p.name).group(1)) for p in VERSIONS] == list(range(1, len(VERSIONS) + 1))
    assert len(VERSIONS) >= 11


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.stem)
def test_standalone(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    project_modules = {p.stem for p in ROOT.glob("*.py")}
    assert not imported & project_modules


@pytest.mark.parametrize("older, newer", list(itertools.pairwise(VERSIONS)), ids=lambda p: p.stem)
def test_neighbours_differ_only_in_their_idea(older, newer):
    old_changeable, old_fixed = parts(older)
    new_changeable, new_fixed = parts(newer)
    changed = [line for line in difflib.unified_diff(old_fixed, new_fixed, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---")) and line[1:].strip()]
    if "wandb" in newer.name:  # v12 只许多出 wandb 的代码
        changed = [line for line in changed if "wandb" not in line]
    assert changed == [], "\n".join(changed)
    model_diff = [line for line in difflib.ndiff(code_lines(old_changeable), code_lines(new_changeable))
                  if line[:1] in "+-"]
    assert 0 < len(model_diff) <= 25 or "wandb" in newer.name, "\n".join(model_diff)


def test_shared_defaults_and_full_configuration():
    modules = {p.stem: load(p) for p in VERSIONS}
    shared = ("batch_size", "block_size", "max_iters", "eval_interval", "eval_iters", "learning_rate", "n_embed")
    middle = [m for name, m in modules.items() if int(re.match(r"babygpt_v(\d+)", name).group(1)) <= 10]
    for name in shared:  # v1..v10 用同一套默认值，diff 里只有想法
        assert len({getattr(m, name) for m in middle}) == 1, name
    v11 = modules["babygpt_v11_hyper_params"]
    assert (v11.n_layer, v11.n_head, v11.n_embed, v11.block_size, v11.batch_size, v11.learning_rate, v11.dropout) \
        == (6, 6, 384, 256, 64, 3e-4, 0.2)
    for m in modules.values():
        assert m.prompts == "春江,往事" and isinstance(m.seed, int)


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

    # 检查点原样读回：用脚本自己的类和函数重建模型，再算一遍验证损失，和脚本最后打印的一致
    state = torch.load(tmp_path / f"{path.stem}.pt")
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
