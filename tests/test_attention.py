"""scripts/attention.py：从一个训练过的小检查点画出每层每个头的注意力；没有中文字体时一行说明。"""

import pytest
from conftest import (
    ROOT,
    VERSIONS,
    assert_picture,
    in_process,
    load,
    one_line_error,
    run,
    tiny_module,
    trained_checkpoint,
    version,
)
from versions import find_cjk_font, number

ATTENTION = ROOT / "scripts" / "attention.py"
V6 = version(6)  # 手写注意力，2 层 × 2 个头（tiny_args）


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_corpus):
    return trained_checkpoint(tmp_path_factory.mktemp("attention"), V6, small_corpus, max_iters=20)


def draw(checkpoint, out, *args):
    return run(ATTENTION, "--version=v6", f"--checkpoint={checkpoint}", f"--out={out}", *args)


def test_draws_every_layer_and_head(checkpoint, tmp_path):
    r = draw(checkpoint, tmp_path / "a.png", "--text=春江花月夜", "--write=5")
    if find_cjk_font() is None:  # 没有中文字体：一行说明怎么装，不画满是方框的图
        one_line_error(r, 1, "找不到中文字体")
        assert not (tmp_path / "a.png").exists()
        return
    assert r.returncode == 0, r.stderr
    assert "2 层 × 2 个头，10 个字" in r.stdout
    assert_picture(tmp_path / "a.png")
    assert "missing from font" not in r.stderr  # 汉字都有字形，不是方框


def test_attention_rows_are_causal_distributions(checkpoint):
    import attention
    import torch

    module = load(V6)
    state = torch.load(checkpoint, weights_only=True)
    vars(module).update(state["hyperparameters"])
    model = module.BabyGPT(len(state["vocab"]))
    model.load_state_dict(state["model"])
    weights = attention.attention_weights(module, model.eval(), torch.tensor([[1, 2, 3, 4, 5]]))
    assert len(weights) == 2 and all(len(layer) == 2 for layer in weights)
    for wei in (w for layer in weights for w in layer):
        assert wei.shape == (5, 5)
        torch.testing.assert_close(wei.sum(dim=-1), torch.ones(5))  # 每一行加起来是 1
        assert torch.all(wei.triu(diagonal=1) == 0)  # 看不到后面的字


def test_versions_without_attention_are_a_clear_error(tmp_path):
    r = in_process(ATTENTION, "--version=v2")
    assert r.returncode == 1 and r.stderr == "错误：v2 还没有注意力：选 v3 或更新的版本\n"


@pytest.mark.parametrize("path", [p for p in VERSIONS if number(p) in (14, 17, 19)], ids=lambda p: p.stem)
def test_fused_attention_weights_give_the_layers_own_output(path):
    """v14 起没有权重矩阵：attention.py 自己算的权重（v17 转过 q、k，v19 的 k、v 按组共用）乘上 v、再投影，
    要正好等于那一层真正的输出。"""
    import attention
    import torch

    module = tiny_module(path, n_head=4, n_kv_head=2)
    torch.manual_seed(0)
    model = module.BabyGPT(30).eval()
    layers = [m for m in model.modules() if isinstance(m, module.MultiHeadAttention)]
    seen = {}
    hooks = [m.register_forward_hook(lambda m, args, out: seen.__setitem__(m, (args[0], out))) for m in layers]
    weights = attention.attention_weights(module, model, torch.randint(30, (1, 8)))
    for hook in hooks:
        hook.remove()
    assert len(weights) == 2 and all(len(layer) == 4 for layer in weights)
    for layer, m in zip(weights, layers, strict=True):
        x, out = seen[m]
        kv_heads = getattr(m, "num_kv_heads", 4)
        v = m.qkv(x).split([16, 4 * kv_heads, 4 * kv_heads], dim=2)[2].view(1, 8, kv_heads, 4).transpose(1, 2)
        v = v.repeat_interleave(4 // kv_heads, dim=1)[0]  # (nh, T, hs)
        mixed = torch.cat([wei @ v[h] for h, wei in enumerate(layer)], dim=-1)  # (T, C)：各头拼起来
        torch.testing.assert_close(m.proj(mixed)[None], out, rtol=1e-5, atol=1e-5)
        for wei in layer:
            assert torch.all(wei.triu(diagonal=1) == 0)
