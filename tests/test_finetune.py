"""v24 微调：基础模型的形状、词表、权重；只用这位词人留下的词训练，留出的词验证（和 scripts/style.py 同一个规则）；
检查点记着微调自哪个模型；不认识的词人、太少的词、没有基础模型都是一行说明。
v25 LoRA：第 0 步就是基础模型，只有 LoRA 在变，合进权重前后算出一样的打分；检查点里只有 LoRA，--sample、--resume 照常。"""

import argparse

import pytest
import style
import torch
from conftest import (
    in_process,
    load,
    one_line_error,
    samples,
    steps,
    stopping_at,
    tiny_args,
    trained_checkpoint,
    version,
)

V23, V24, V25 = version(23), version(24), version(25)
pytestmark = pytest.mark.skipif(V24 is None, reason="v24 还没有")


@pytest.fixture(scope="module")
def base(tmp_path_factory, small_corpus):
    """小语料上训练 30 步的 v23：当基础模型（小语料里柳永 189 首、李煜 41 首）。"""
    return trained_checkpoint(tmp_path_factory.mktemp("base"), V23, small_corpus, max_iters=30, n_layer=1, n_kv_head=1)


def test_the_poets_held_out_pieces_are_never_trained_on(base, small_corpus):
    text = small_corpus.read_text(encoding="utf-8")
    module = load(V24)
    vars(module).update(init_from=str(base), poet="柳永")
    _, tokenizer, splits = module.finetune_data(argparse.Namespace(given=set()), text)
    trained, validated = (tokenizer.decode(splits[name].tolist()) for name in ("train", "val"))
    finetune, judged, held = style.split_poet(text, "柳永")  # scripts/style.py 的规则：两边分出的是同一批词
    assert held == [p for p in style.split_held_out(text)[1] if style.author(p) == "柳永"]
    assert len(held) == 18 and all(piece in validated and piece not in trained for piece in held)
    assert len(finetune) == 95 and all(piece in trained for piece in finetune)
    assert len(judged) == 76 and not any(piece in trained + validated for piece in judged)  # 分类器的词：微调从不看
    assert "李煜" not in trained + validated  # 只有他的词
    assert module.n_layer == 1 and module.n_kv_head == 1  # 形状来自基础模型
    assert module.prompts.split(",")[0].endswith(" 柳永")


def test_finetune_starts_from_the_base_and_records_it(base, small_corpus, tmp_path):
    args = [*tiny_args(V24, max_iters=6, eval_interval=3), f"--data={small_corpus}", f"--out_dir={tmp_path}",
            f"--init_from={base}", "--poet=柳永"]
    r = in_process(V24, *args)
    assert r.returncode == 0, r.stderr
    assert "微调：从" in r.stdout and "柳永 的 95 首词训练，留出的 18 首验证" in r.stdout
    text = small_corpus.read_text(encoding="utf-8")
    finetune, _, held = style.split_poet(text, "柳永")
    mine = sum(len(piece) for piece in finetune + held)
    size = int(r.stdout.split("语料 ")[1].split(" 字")[0].replace(",", ""))
    assert mine * 0.9 < size < mine * 1.1 < len(text)  # 说的是他的微调的词和留出的词有多少字，不是整个语料
    assert [s for s, _, _ in steps(r.stdout)] == [0, 3, 6]
    state = torch.load(tmp_path / f"{V24.stem}.pt", weights_only=True)
    assert state["hyperparameters"]["init_from"] == str(base) and state["hyperparameters"]["poet"] == "柳永"
    assert state["vocab"] == torch.load(base, weights_only=True)["vocab"]  # 词表来自基础模型
    tunes = samples(r.stdout)  # 训练完从他最常用的三个词牌写；--sample 也从这三个写（检查点里记着）
    assert len(tunes) == 3 and all(prompt.endswith(" 柳永") for prompt in tunes)
    sample = in_process(V24, f"--out_dir={tmp_path}", "--sample", "--max_new_tokens=4")
    assert sample.returncode == 0, sample.stderr
    assert list(samples(sample.stdout)) == list(tunes)
    few = in_process(V24, *args, "--poet=李煜", "--max_iters=1")
    assert few.returncode == 0 and "注意：李煜 只有 41 首词" in few.stdout


def test_finetune_step_0_is_the_base_model_and_never_encodes_the_whole_corpus(base, small_corpus, tmp_path,
                                                                               monkeypatch):
    """--max_iters=0：存下的就是第 0 步的模型，每个权重都和基础模型的一样（不读基础模型的权重就是随机的）。
    微调只编码他的词：整个语料一次也不编码（编码的只有写词的开头）。"""
    module = load(V24)
    encoded = []
    real = module.Tokenizer.encode
    monkeypatch.setattr(module.Tokenizer, "encode", lambda self, s: encoded.append(len(s)) or real(self, s))
    r = in_process(V24, *tiny_args(V24, max_iters=0), f"--data={small_corpus}", f"--out_dir={tmp_path}",
                   f"--init_from={base}", "--poet=柳永", module=module)
    assert r.returncode == 0, r.stderr
    state, weights = torch.load(tmp_path / f"{V24.stem}.pt", weights_only=True), torch.load(base, weights_only=True)
    assert state["step"] == 0 and state["model"].keys() == weights["model"].keys()
    assert all(torch.equal(state["model"][name], weights["model"][name]) for name in weights["model"])
    assert encoded and max(encoded) < 20  # 只有三个开头（“词牌 柳永”）


def test_the_poets_tunes_are_ordered_by_count_then_by_first_appearance(base, capsys):
    """一样多的词牌按在语料里第一次出现的顺序排：每次运行都一样（用 set 排的话，顺序随 PYTHONHASHSEED 变）。"""
    tunes = ["丙调", "甲调", "丁调", "乙调", "戊调", "己调", "庚调", "辛调", "壬调"]
    pieces = ["乙调 某乙\n往事。"] * 11 + [f"{tune} 某甲\n春江花月。" for tune in ["癸调", *tunes, "癸调"]]
    module = load(V24)
    vars(module).update(init_from=str(base), poet="某甲")
    module.finetune_data(argparse.Namespace(given=set()), "\n\n".join(pieces) + "\n")
    # 从微调的词（单数号：癸、甲、乙、己、辛、癸）里数：癸调两首在前；其余各一首，甲调、乙调先出现
    assert module.prompts == "癸调 某甲,甲调 某甲,乙调 某甲"
    vars(module).update(poet="某丙")
    with pytest.raises(SystemExit):  # 词人也一样：都是 11 首，先出现的某乙在前
        module.finetune_data(argparse.Namespace(given=set()), "\n\n".join(pieces) + "\n")
    assert "首数最多的十位：某乙、某甲" in capsys.readouterr().err


def test_unknown_poet_and_missing_base_are_one_line(base, small_corpus, tmp_path):
    where = [f"--data={small_corpus}", f"--out_dir={tmp_path}"]
    one_line_error(in_process(V24, *tiny_args(V24), *where, f"--init_from={base}", "--poet=某某"), 1,
                   "没有 某某 的词", "柳永、李煜")
    one_line_error(in_process(V24, *tiny_args(V24), *where, f"--init_from={tmp_path / 'none.pt'}"), 1, "没有基础模型")


def base_and_lora(base, **overrides):
    """在测试进程里建两个模型：读进权重的基础模型（v25 不加 LoRA），和加了 LoRA 的 v25 模型。"""
    state = torch.load(base, weights_only=True)
    shape = {k: state["hyperparameters"][k] for k in ("n_embed", "n_layer", "n_head", "n_kv_head", "block_size")}
    plain, module = load(V25), load(V25)
    vars(plain).update(shape, dropout=0.0, lora_rank=0)
    vars(module).update(shape, dropout=0.0, init_from=str(base), **overrides)
    reference = plain.BabyGPT(len(state["vocab"]))
    reference.load_state_dict(state["model"])
    return module, reference, module.BabyGPT(len(state["vocab"])), state


@pytest.mark.skipif(V25 is None, reason="v25 还没有")
def test_lora_starts_as_the_base_trains_only_the_adapters_and_merges_exactly(base, capsys):
    module, reference, model, state = base_and_lora(base)
    assert "LoRA：r = 4，基础模型的 " in capsys.readouterr().out
    x = torch.randint(len(state["vocab"]), (2, 8), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x)[0], reference(x)[0])  # B 从 0 开始：第 0 步就是基础模型
    names = [name for name, _ in model.named_parameters()]
    assert names and all(name.startswith("adapters.") and name[-2:] in (".A", ".B") for name in names)
    assert list(model.state_dict()) == names  # 检查点里只有 LoRA
    linears = [m for m in model.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert len(model.adapters) == len(linears) == 5 * module.n_layer  # qkv、proj、w1、w2、w3
    assert sum(p.numel() for p in model.parameters()) == sum(4 * (m.in_features + m.out_features) for m in linears)

    optimizer = module.make_optimizer(model, "cpu")
    for _ in range(3):
        _, loss = model(x, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = reference.state_dict()
    frozen = {name: b for name, b in model.named_buffers() if name in weights}
    assert len(frozen) == len(weights) and all(torch.equal(b, weights[name]) for name, b in frozen.items())  # 一个没动
    assert all(a.B.abs().sum() > 0 for a in model.adapters)
    model.eval()
    before = model(x)[0]
    assert not torch.allclose(before, reference(x)[0])
    for adapter in model.adapters:
        adapter.merge()
    assert torch.allclose(model(x)[0], before, atol=1e-5)  # 合进 W 以后：打分一样
    assert not torch.equal(model.blocks[0].attention.qkv.weight, reference.blocks[0].attention.qkv.weight)


@pytest.mark.skipif(V25 is None, reason="v25 还没有")
def test_lora_checkpoint_is_small_and_writes_resumes_and_needs_its_base(base, small_corpus, tmp_path, monkeypatch):
    own_base = tmp_path / "base.pt"
    own_base.write_bytes(base.read_bytes())
    args = [*tiny_args(V25, max_iters=6, eval_interval=3), f"--data={small_corpus}", f"--out_dir={tmp_path}",
            f"--init_from={own_base}", "--poet=柳永", "--learning_rate=1e-2"]
    straight = in_process(V25, *args)
    assert straight.returncode == 0, straight.stderr
    assert "LoRA：r = 4，基础模型的 " in straight.stdout and "要训练的模型参数 " in straight.stdout
    assert [s for s, _, _ in steps(straight.stdout)] == [0, 3, 6]
    checkpoint = tmp_path / f"{V25.stem}.pt"
    assert checkpoint.stat().st_size * 4 < own_base.stat().st_size  # 只存 LoRA（和它的优化器状态）
    state = torch.load(checkpoint, weights_only=True)
    assert state["step"] == 6 and all(k.startswith("adapters.") for k in state["model"])

    sample = in_process(V25, f"--out_dir={tmp_path}", "--sample", "--max_new_tokens=8")
    assert sample.returncode == 0, sample.stderr
    written = samples(sample.stdout)  # 从只有 LoRA 的检查点写词：和训练完时一样，从他的三个词牌写
    assert "LoRA：r = 4" in sample.stdout and list(written) == list(samples(straight.stdout)) and all(written.values())

    first = load(V25)  # 在第 3 步停下，再续训到第 6 步：和一口气训完一样
    monkeypatch.setattr(first, "Progress", stopping_at(first, 3))
    split = [*args, f"--out_dir={tmp_path / 'split'}"]
    assert in_process(V25, *split, module=first).returncode == 0
    resumed = in_process(V25, *split, "--resume")
    assert steps(resumed.stdout)[-1] == steps(straight.stdout)[-1]

    own_base.unlink()
    one_line_error(in_process(V25, f"--out_dir={tmp_path}", "--sample"), 1, "没有基础模型")


@pytest.mark.skipif(V25 is None, reason="v25 还没有")
def test_measuring_trains_a_copy_of_the_adapters_and_leaves_the_real_ones_alone(base, monkeypatch, capsys):
    """measure_time 在模型的副本上训练几步：副本的钩子要连着副本的 A、B（不是原来的），原来的 A、B 和梯度一点不动。"""
    module, _, model, _ = base_and_lora(base)
    vars(module).update(batch_size=4, eval_iters=1, micro_batch_size=0)
    optimizer = module.make_optimizer(model, "cpu")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    copies = []
    real = module.time_one_step

    def time_one_step(copy, *args):
        copies.append(copy)
        return real(copy, *args)
    monkeypatch.setattr(module, "time_one_step", time_one_step)
    module.measure_time(model, optimizer, 0, "cpu", {"float32": module.contextlib.nullcontext()})
    assert all(torch.equal(p, before[name]) and p.grad is None for name, p in model.named_parameters())
    trained = copies[-1]
    assert trained is not model and all(a.B.abs().sum() > 0 for a in trained.adapters)  # 副本的 A、B 真的在训练
    linear = trained.blocks[0].attention.qkv
    assert next(iter(linear._forward_hooks.values())).__self__ is trained.adapters[0]


@pytest.mark.skipif(V25 is None, reason="v25 还没有")
def test_lora_under_ddp_does_not_broadcast_the_frozen_base_every_step(base, small_corpus, tmp_path, monkeypatch):
    """像 torchrun 起了两个进程（进程组、DDP 都是假的，只记下 DDP 的参数）：冻住的基础模型是 buffer，
    各进程都一样、从来不变，DDP 不用每次前向都广播它（broadcast_buffers=False）。"""
    module, made = load(V25), []
    monkeypatch.setenv("RANK", "0")
    for name, fake in {"init_process_group": lambda *a, **k: None, "get_world_size": lambda: 2, "get_rank": lambda: 0,
                       "broadcast_object_list": lambda *a, **k: None, "all_reduce": lambda *a, **k: None,
                       "barrier": lambda: None, "destroy_process_group": lambda: None}.items():
        monkeypatch.setattr(torch.distributed, name, fake)
    monkeypatch.setattr(module, "DDP", lambda model, **kwargs: made.append(kwargs) or model)
    r = in_process(V25, *tiny_args(V25, max_iters=2, eval_interval=2, eval_iters=1), f"--data={small_corpus}",
                   f"--out_dir={tmp_path}", f"--init_from={base}", "--poet=柳永", module=module)
    assert r.returncode == 0, r.stderr
    assert made == [{"broadcast_buffers": False}]
