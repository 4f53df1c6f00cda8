"""CPU 上的加速（issue 20）：每一种快的写法都和慢的那份算得一样；老 PyTorch 上退回慢的那份；
--dtype=auto 真的量了再选；main() 结束时把原来的 Ctrl-C 处理还回去（Jupyter 里 %run 以后照常能中断内核）。

快的写法要新一点的 PyTorch（F.rms_norm 2.4 起，enable_gqa 2.5 起，CPU 上融合的 AdamW 2.4 起）：老 PyTorch 上跳过
“快的和慢的一样”，但慢的那份（手写的 RMSNorm、复制 k、v 的 GQA、普通的 AdamW）照样按定义检查。"""

import signal

import pytest
import torch
import torch.nn.functional as F
from conftest import VERSIONS, in_process, load, steps, tiny_args, tiny_module, version
from versions import number

LLAMA = [p for p in VERSIONS if number(p) in (16, 17, 18, 19)]
V19 = version(19)
FAST = [p for p in VERSIONS if number(p) >= 14]
TORCH = tuple(int(part) for part in torch.__version__.split(".")[:2])
NEEDS_RMS_NORM = pytest.mark.skipif(not hasattr(F, "rms_norm"), reason=f"F.rms_norm 要 PyTorch 2.4 起（这里是 {torch.__version__}）")


def sentinel(*_):  # 测试进程自己的 Ctrl-C 处理：脚本跑完以后必须还是它
    raise KeyboardInterrupt


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.stem)
def test_main_gives_back_the_ctrl_c_handler_it_found(path, small_corpus, tmp_path, monkeypatch):
    """训练一步就够：只看写词时装着谁的 Ctrl-C 处理、main() 结束后还回去没有。"""
    previous = signal.signal(signal.SIGINT, sentinel)
    try:
        module = load(path)
        seen = []  # 训练中装着的是脚本自己的处理
        monkeypatch.setattr(module, "write", lambda *a, **k: seen.append(signal.getsignal(signal.SIGINT)) or "")
        r = in_process(path, *tiny_args(path, max_iters=1, eval_interval=1, eval_iters=1), f"--data={small_corpus}",
                       f"--out_dir={tmp_path}", module=module)
        assert r.returncode == 0, r.stderr
        assert seen and seen[0] is not sentinel and signal.getsignal(signal.SIGINT) is sentinel
        r = in_process(path, "--block_size=0", module=module)  # 出错退出（sys.exit）时也还回去
        assert r.returncode == 2 and "错误" in r.stderr and signal.getsignal(signal.SIGINT) is sentinel
    finally:
        signal.signal(signal.SIGINT, previous)


def test_get_batch_in_one_gather_equals_the_slices():
    """get_batch 在每个版本里一字不差（test_versions.py），测 v1 的就够了。"""
    module = load(VERSIONS[0])
    module.block_size = 5
    data = torch.arange(100) * 3
    offsets = torch.tensor([0, 7, 94, 41])
    x, y = module.get_batch(data, offsets)
    assert torch.equal(x, torch.stack([data[i:i + 5] for i in offsets.tolist()]))
    assert torch.equal(y, torch.stack([data[i + 1:i + 6] for i in offsets.tolist()]))


@NEEDS_RMS_NORM
@pytest.mark.parametrize("path", LLAMA, ids=lambda p: p.stem)
def test_fused_rms_norm_equals_the_formula(path, monkeypatch):
    norm = load(path).RMSNorm(16)
    torch.manual_seed(0)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(2, 3, 16) * 5
    fused = norm(x)
    monkeypatch.delattr(F, "rms_norm")  # 像 PyTorch 2.1：只有手写的公式
    torch.testing.assert_close(fused, norm(x), rtol=1e-5, atol=1e-6)
    assert not torch.equal(fused, x)


@pytest.mark.skipif(V19 is None or not load(V19).FUSED_GQA,
                    reason=f"enable_gqa 要 PyTorch 2.5 起（这里是 {torch.__version__}）")
@pytest.mark.parametrize("cache", [False, True], ids=["whole", "kv_cache"])
def test_enable_gqa_equals_copying_k_and_v(cache, monkeypatch):
    module = tiny_module(V19, block_size=16, n_embed=32, n_head=4, n_kv_head=2)  # 2 个 q 头一组
    torch.manual_seed(0)
    model = module.BabyGPT(30).eval()
    idx = torch.randint(30, (2, 6), generator=torch.Generator().manual_seed(1))

    def logits():
        if not cache:
            return model(idx)[0]
        store = {}  # 先整段算 3 个字，再一个一个来（写词时的 KV 缓存）
        return torch.cat([model(idx[:, :3], cache=store)[0]] + [model(idx[:, t:t + 1], cache=store)[0]
                                                                 for t in range(3, 6)], dim=1)

    fused = logits()
    monkeypatch.setattr(module, "FUSED_GQA", False)  # 像 PyTorch 2.4 以前：把 k、v 复制给每个 q 头
    torch.testing.assert_close(fused, logits(), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(V19 is None, reason="v19 还没有")
def test_copying_k_and_v_is_attention_with_the_kv_heads_repeated(monkeypatch):
    """慢的那份（老 PyTorch 上用的）按定义：2 个 k、v 头各复制给组里的 2 个 q 头，就是 4 个 k、v 头的普通注意力，
    第 i 个头用第 i // 2 份 k、v 的权重。"""
    module = tiny_module(V19, block_size=16, n_embed=32, n_head=4, n_layer=1)
    monkeypatch.setattr(module, "FUSED_GQA", False)
    torch.manual_seed(0)
    module.n_kv_head = 2
    grouped = module.MultiHeadAttention(4, 8).eval()
    module.n_kv_head = 4
    plain = module.MultiHeadAttention(4, 8).eval()
    with torch.no_grad():
        q, k, v = grouped.qkv.weight.split([32, 16, 16])  # 每个头 8 行
        copied = [w.view(2, 8, 32).repeat_interleave(2, dim=0).reshape(32, 32) for w in (k, v)]
        plain.qkv.weight.copy_(torch.cat([q, *copied]))
        plain.proj.load_state_dict(grouped.proj.state_dict())
        x = torch.randn(2, 6, 32)
        torch.testing.assert_close(grouped(x), plain(x), rtol=1e-5, atol=1e-6)


def optimizers_seen(module, monkeypatch, refuse_fused):
    """把 torch.optim.AdamW 换成记下参数的一份；refuse_fused 时像 PyTorch 2.3 以前那样在 CPU 上拒绝 fused=True。"""
    seen, real = [], torch.optim.AdamW

    def adamw(params, **kwargs):
        seen.append(kwargs.get("fused"))
        if refuse_fused and kwargs.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, **kwargs)

    monkeypatch.setattr(module.torch.optim, "AdamW", adamw)
    return seen


@pytest.mark.parametrize("path", FAST, ids=lambda p: p.stem)
def test_fused_adamw_on_cpu_with_a_fallback_for_old_pytorch(path, small_corpus, tmp_path, monkeypatch):
    module = load(path)
    args = [*tiny_args(path, max_iters=4, eval_interval=2), f"--data={small_corpus}"]
    seen = optimizers_seen(module, monkeypatch, refuse_fused=False)
    fused_losses = steps(in_process(path, *args, f"--out_dir={tmp_path / 'fused'}", module=module).stdout)
    # PyTorch 2.4 起 CPU 上有融合的 AdamW：用它；更老的拒绝 fused=True，脚本换成普通的
    assert seen == ([True] if TORCH >= (2, 4) else [True, None])
    seen = optimizers_seen(module, monkeypatch, refuse_fused=True)
    out = in_process(path, *args, f"--out_dir={tmp_path / 'plain'}", module=module)
    assert seen == [True, None] and "Traceback" not in out.stderr  # 被拒绝后用普通的 AdamW，照常训练
    plain_losses = steps(out.stdout)
    assert [s[0] for s in plain_losses] == [s[0] for s in fused_losses] == [0, 2, 4]  # 两次都训练完了
    assert [s[2] for s in plain_losses] == pytest.approx([s[2] for s in fused_losses], abs=2e-4)  # 损失一样


@pytest.mark.parametrize("ratio, picked", [(1.4, "float32"), (1.6, "bfloat16"), (0.8, "float32")])
def test_auto_dtype_prefers_float32_unless_bf16_is_clearly_faster(ratio, picked, small_corpus, tmp_path, monkeypatch):
    """两种精度都量；bf16 要快过 1.5 倍（量时间的误差之上）才用它，否则用每次结果都一样的 float32，并说出为什么。"""
    path = FAST[0]
    module = load(path)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)

    def fake_step(model, optimizer, x, amp, device):  # 假的计时：一段 float32 要 3 毫秒，bf16 快 ratio 倍；优化器 0
        return x.shape[0] * 0.003 / (ratio if isinstance(amp, torch.autocast) else 1), 0.0

    monkeypatch.setattr(module, "time_one_step", fake_step)
    out = in_process(path, *tiny_args(path, max_iters=2, eval_interval=2, dtype="auto", block_size=12),
                     f"--data={small_corpus}", f"--out_dir={tmp_path}", module=module).stdout.splitlines()
    line = next(line for line in out if line.startswith("加速："))
    bf16 = f"{4 * 12 / (4 * 0.003 / ratio):,.0f}"  # 一步 4 段、每段 12 个字
    assert line == (f"加速：精度 {picked}（实测 float32 4,000 字/秒、bfloat16 {bf16} 字/秒：bf16 快 {ratio:.2f} 倍，"
                    f"{'超过' if picked == 'bfloat16' else '不到'} 1.5 倍），torch.compile 关")
    assert next(line for line in out if line.startswith("预计用时")).startswith("预计用时：float32 约 ")
    assert torch.load(tmp_path / f"{path.stem}.pt", weights_only=True)["hyperparameters"]["dtype"] == picked
