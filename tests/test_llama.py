"""从 GPT 到 LLaMA：v16 RMSNorm、v17 RoPE、v18 SwiGLU、v19 GQA，每个想法按定义检查。"""

import math

import pytest
import torch
from conftest import load, tiny_module, version
from versions import hyperparameters

V15, V16, V17, V18, V19 = (version(n) for n in (15, 16, 17, 18, 19))
pytestmark = pytest.mark.skipif(V19 is None, reason="v19 还没有")


def tiny(path, **overrides):  # 4 个头，每个头 4 维
    return tiny_module(path, block_size=16, n_head=4, **overrides)


def test_rmsnorm_is_x_over_root_mean_square_times_weight():
    norm = tiny(V16).RMSNorm(4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
    x = torch.tensor([[3.0, -4.0, 0.0, 12.0]])  # 均方根 = sqrt((9 + 16 + 0 + 144) / 4) = 6.5
    expected = torch.tensor([[3 / 6.5, -8 / 6.5, 0.0, -12 / 6.5]])
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    assert [name for name, _ in norm.named_parameters()] == ["weight"]  # 没有偏置
    v15_norms = sum(isinstance(m, torch.nn.LayerNorm) for m in tiny(V15).BabyGPT(30).modules())
    model = tiny(V16).BabyGPT(30)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    assert sum(type(m).__name__ == "RMSNorm" for m in model.modules()) == v15_norms == 2 * 2 + 1


def test_rope_score_depends_only_on_the_distance_and_keeps_length():
    module = tiny(V17)
    attention = module.MultiHeadAttention(1, 8)
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)  # 一个 q、一个 k：(B, nh, T, hs)

    def score(m, n):
        return (attention.rotate(q, m) * attention.rotate(k, n)).sum().item()

    for m, n in ((5, 2), (3, 3), (1, 7)):
        for shift in (1, 4, 8):
            assert math.isclose(score(m, n), score(m + shift, n + shift), rel_tol=1e-5, abs_tol=1e-5)
    assert not math.isclose(score(5, 2), score(5, 3), rel_tol=1e-3)  # 距离变了，分数就变
    for position in range(16):
        torch.testing.assert_close(attention.rotate(q, position).norm(), q.norm())  # 转动不改变长度
    torch.testing.assert_close(attention.rotate(q, 0), q)  # 位置 0 不转
    # 第一对数 (x, y) 在位置 m 转 m·θ_0 = m 弧度
    x, y = q[0, 0, 0, 0].item(), q[0, 0, 0, 1].item()
    turned = attention.rotate(q, 2)[0, 0, 0, :2]
    torch.testing.assert_close(turned, torch.tensor([x * math.cos(2) - y * math.sin(2), x * math.sin(2) + y * math.cos(2)]))
    assert not any("position" in name for name, _ in module.BabyGPT(30).named_parameters())  # 位置表没有了


def test_swiglu_has_the_parameters_of_the_old_feed_forward():
    defaults = hyperparameters(V18)
    assert defaults["n_embed"] == 384
    old = load(V17).FeedForward(384)
    new = load(V18).FeedForward(384)
    weights = lambda ff: sum(p.numel() for p in ff.parameters() if p.dim() == 2)
    biases = lambda ff: sum(p.numel() for p in ff.parameters() if p.dim() == 1)
    assert new.w1.out_features == 1024 and weights(new) == weights(old) == 8 * 384 * 384  # 3·384·1024 = 2·384·1536
    assert biases(new) == 0 and biases(old) == 4 * 384 + 384  # 和 LLaMA 一样不用偏置
    x = torch.randn(2, 3, 384)
    with torch.no_grad():
        expected = new.w2(torch.nn.functional.silu(new.w1(x)) * new.w3(x))
        torch.testing.assert_close(new.eval()(x), expected)


def test_gqa_with_as_many_kv_heads_as_heads_is_the_old_attention():
    old, new = tiny(V18), tiny(V19, n_kv_head=4)
    torch.manual_seed(0)
    before = old.MultiHeadAttention(4, 4).eval()
    after = new.MultiHeadAttention(4, 4).eval()
    after.load_state_dict(before.state_dict())  # 形状一样：同样的权重
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        torch.testing.assert_close(after(x), before(x))


def test_gqa_cache_holds_only_the_kv_heads_and_writes_the_same_text():
    module = tiny(V19, n_kv_head=2)
    torch.manual_seed(0)
    model = module.BabyGPT(40).eval()
    full_heads = sum(p.numel() for p in tiny(V18).BabyGPT(40).parameters())
    assert sum(p.numel() for p in model.parameters()) < full_heads  # k、v 的投影变小了
    cache = {}
    with torch.no_grad():
        model(torch.arange(6)[None] % 40, cache=cache)
    kv = [value for key, value in cache.items() if key != "length"]
    assert len(kv) == 2 and all(k.shape == v.shape == (1, 2, 6, 4) for k, v in kv)  # (B, n_kv_head, T, hs)
    for seed in range(3):
        torch.manual_seed(seed)
        model = module.BabyGPT(40).eval()
        prompt = torch.randint(40, (2, 3))
        written = {}
        for kv_cache in (0, 1):
            module.kv_cache = kv_cache
            written[kv_cache] = model.generate(prompt, 5 * module.block_size)  # 远远超出 block_size
        assert written[0].shape == (2, 3 + 80) and torch.equal(written[0], written[1])


def test_bad_n_kv_head_is_one_line(capsys):
    module = tiny(V19, n_kv_head=3)
    with pytest.raises(SystemExit) as exit_info:
        module.BabyGPT(40)
    assert exit_info.value.code == 1 and capsys.readouterr().err == "错误：n_kv_head=3 必须能整除 n_head=4\n"
