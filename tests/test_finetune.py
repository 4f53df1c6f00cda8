"""v24 微调：基础模型的形状、词表、权重；只用这位词人留下的词训练，留出的词验证（和 scripts/style.py 同一个规则）；
检查点记着微调自哪个模型；不认识的词人、太少的词、没有基础模型都是一行说明。"""

import argparse

import pytest
import style
import torch
from conftest import in_process, load, one_line_error, steps, tiny_args, version

V23, V24 = version(23), version(24)
pytestmark = pytest.mark.skipif(V24 is None, reason="v24 还没有")


@pytest.fixture(scope="module")
def base(tmp_path_factory, small_corpus):
    """小语料上训练 30 步的 v23：当基础模型（小语料里柳永 189 首、李煜 41 首）。"""
    out = tmp_path_factory.mktemp("base")
    r = in_process(V23, *tiny_args(V23, max_iters=30, n_layer=1, n_kv_head=1), f"--data={small_corpus}",
                   f"--out_dir={out}")
    assert r.returncode == 0, r.stderr
    return out / f"{V23.stem}.pt"


def test_the_poets_held_out_pieces_are_never_trained_on(base, small_corpus):
    text = small_corpus.read_text(encoding="utf-8")
    module = load(V24)
    vars(module).update(init_from=str(base), poet="柳永")
    _, tokenizer, splits = module.finetune_data(argparse.Namespace(given=set()), text)
    trained, validated = (tokenizer.decode(splits[name].tolist()) for name in ("train", "val"))
    kept, held = style.split_held_out(text)  # scripts/style.py 的规则：两边留出的是同一批词
    held = [p for p in held if style.author(p) == "柳永"]
    assert len(held) == 18 and all(piece in validated and piece not in trained for piece in held)
    assert all(piece in trained for piece in kept if style.author(piece) == "柳永")
    assert "李煜" not in trained + validated  # 只有他的词
    assert module.n_layer == 1 and module.n_kv_head == 1  # 形状来自基础模型
    assert module.prompts.split(",")[0].endswith(" 柳永")


def test_finetune_starts_from_the_base_and_records_it(base, small_corpus, tmp_path):
    args = [*tiny_args(V24, max_iters=6, eval_interval=3), f"--data={small_corpus}", f"--out_dir={tmp_path}",
            f"--init_from={base}", "--poet=柳永"]
    r = in_process(V24, *args)
    assert r.returncode == 0, r.stderr
    assert "微调：从" in r.stdout and "柳永 的 171 首词训练，留出的 18 首验证" in r.stdout
    assert [s for s, _, _ in steps(r.stdout)] == [0, 3, 6]
    state = torch.load(tmp_path / f"{V24.stem}.pt", weights_only=True)
    assert state["hyperparameters"]["init_from"] == str(base) and state["hyperparameters"]["poet"] == "柳永"
    assert state["vocab"] == torch.load(base, weights_only=True)["vocab"]  # 词表来自基础模型
    few = in_process(V24, *args, "--poet=李煜", "--max_iters=1")
    assert few.returncode == 0 and "注意：李煜 只有 41 首词" in few.stdout


def test_unknown_poet_and_missing_base_are_one_line(base, small_corpus, tmp_path):
    where = [f"--data={small_corpus}", f"--out_dir={tmp_path}"]
    one_line_error(in_process(V24, *tiny_args(V24), *where, f"--init_from={base}", "--poet=某某"), 1,
                   "没有 某某 的词", "柳永、李煜")
    one_line_error(in_process(V24, *tiny_args(V24), *where, f"--init_from={tmp_path / 'none.pt'}"), 1, "没有基础模型")
