"""v14：融合的注意力和手写的一样；补出来的字永远写不出来；torch.compile 算得和不编译一样，失败时照常训练。"""

import re
import shutil

import pytest
import torch
from conftest import in_process, one_line_error, tiny_args, tiny_module, version

V13, V14 = version(13), version(14)
pytestmark = pytest.mark.skipif(V14 is None, reason="v14 还没有")


def test_sdpa_attention_equals_the_hand_written_one():
    old, new = tiny_module(V13, n_layer=1), tiny_module(V14, n_layer=1)
    torch.manual_seed(0)
    hand = old.MultiHeadAttention(2, 8).eval()
    fused = new.MultiHeadAttention(2, 8).eval()
    with torch.no_grad():  # 把手写版每个头的 q、k、v 拼成融合版的一个 Linear：[所有头的 q; 所有头的 k; 所有头的 v]
        fused.qkv.weight.copy_(torch.cat([torch.cat([getattr(h, name).weight for h in hand.heads])
                                          for name in ("query", "key", "value")]))
        fused.proj.load_state_dict(hand.proj.state_dict())
        x = torch.randn(3, 8, 16)
        torch.testing.assert_close(fused(x), hand(x), rtol=1e-5, atol=1e-6)
        # 用缓存一个字一个字地算，也和整段一起算的一样
        cache = {}
        steps = [fused(x[:, :5], cache)]
        steps += [fused(x[:, t:t + 1], cache) for t in range(5, 8)]
        torch.testing.assert_close(torch.cat(steps, dim=1), hand(x), rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in fused.parameters()) == sum(p.numel() for p in hand.parameters())  # 同一个模型


def test_padding_is_never_written():
    module = tiny_module(V14, n_layer=1, temperature=1.0)
    model = module.BabyGPT(50).eval()
    assert model.lm_head.out_features == 64
    with torch.no_grad():
        model.lm_head.bias[50:] = 100.0  # 补出来的 14 个“字”分数极高：要是没切掉，几乎每次都会抽到它们
        logits, _ = model(torch.zeros((1, 4), dtype=torch.long))
        written = model.generate(torch.zeros((4, 1), dtype=torch.long), 30)
    assert logits.shape == (1, 4, 50)
    assert written.max() < 50


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("cl")),
                    reason="没有 C++ 编译器：CPU 上的 torch.compile 要用它")
def test_torch_compile_gives_the_same_loss_and_gradients():
    """整套测试里唯一一次真的编译（最小的模型：一层、16 维）：compiled() 编译前向和反向，
    训练一步的损失和每个参数的梯度都和不编译的一样。编译缓存是冷的时候要十秒左右。"""
    module = tiny_module(V14, n_layer=1, batch_size=2)
    torch.manual_seed(0)
    model = module.BabyGPT(50)
    fast = module.compiled(model, "cpu", torch.autocast("cpu", enabled=False))
    assert fast is not model  # 编译成功了（失败时 compiled() 说一行，返回原来的模型）
    x, y = torch.randint(50, (2, 8)), torch.randint(50, (2, 8))
    _, loss = fast(x, y)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    _, plain = model(x, y)
    plain.backward()
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-5)
    for compiled_grad, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(compiled_grad, p.grad, rtol=1e-4, atol=1e-5)


def test_compile_failure_is_one_line_and_training_goes_on(capsys, monkeypatch):
    module = tiny_module(V14, n_layer=1, batch_size=2)
    model = module.BabyGPT(50)

    def broken(*args, **kwargs):
        raise RuntimeError("Compiler: cl is not found\nmore details")
    monkeypatch.setattr(torch, "compile", broken)
    assert module.compiled(model, "cpu", torch.autocast("cpu", enabled=False)) is model
    monkeypatch.setattr(torch, "compile", lambda m: lambda *a: broken())  # 编译常常在第一次调用时才失败
    assert module.compiled(model, "cpu", torch.autocast("cpu", enabled=False)) is model
    out = capsys.readouterr().out.splitlines()
    assert out == ["torch.compile 用不了（RuntimeError：Compiler: cl is not found），不编译，照常训练"] * 2


def test_bf16_trains_and_bad_settings_are_one_line(small_corpus, tmp_path):
    r = in_process(V14, *tiny_args(V14, max_iters=20), "--dtype=bfloat16", f"--data={small_corpus}", f"--out_dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert re.search(r"加速：精度 bfloat16（实测 bfloat16 [0-9,]+ 字/秒），torch.compile 关", r.stdout), r.stdout
    for flag in ("--dtype=half", "--compile=yes"):
        bad = in_process(V14, *tiny_args(V14), flag, f"--data={small_corpus}", f"--out_dir={tmp_path}")
        one_line_error(bad, 1, f"{flag} 不对")
        assert bad.stderr.startswith(f"错误：{flag} 不对")
