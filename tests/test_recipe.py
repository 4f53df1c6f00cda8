"""怎样训练得好（issue 21）：v20 学习率先升温再余弦衰减，v21 梯度裁剪，v22 Muon。每个想法按定义检查。"""

import itertools
import math

import pytest
import torch
from conftest import assert_picture, in_process, load, steps, stopping_at, tiny_args, version

V20, V21, V22 = version(20), version(21), version(22)
pytestmark = pytest.mark.skipif(V22 is None, reason="v22 还没有")


def test_lr_schedule_warms_up_then_follows_half_a_cosine_down_to_min_lr():
    module = load(V20)
    vars(module).update(learning_rate=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    lr = [module.get_lr(step) for step in range(131)]
    assert lr[0] == pytest.approx(0.1) and lr[4] == pytest.approx(0.5) and lr[9] == pytest.approx(1.0)  # 线性升温
    assert lr[10] == pytest.approx(1.0) and lr[60] == pytest.approx(0.55) and lr[110] == pytest.approx(0.1)
    assert lr[35] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)  # 降了四分之一的路程
    assert all(a > b for a, b in itertools.pairwise(lr[10:111]))  # 升温以后一直往下
    assert all(x == pytest.approx(0.1) for x in lr[110:])  # 训练超过 max_iters（续训）就停在 min_lr


def test_step_line_shows_the_learning_rate_and_the_gradient_norm(small_corpus, tmp_path):
    module = load(V21)
    out = in_process(V21, *tiny_args(V21, max_iters=20, warmup_iters=5, learning_rate=0.01, min_lr=0.001),
                     f"--data={small_corpus}", f"--out_dir={tmp_path}", module=module).stdout
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [int(line.split()[1].split("/")[0]) for line in lines] == [0, 10, 20]
    for step, line in zip((0, 10, 20), lines, strict=True):
        assert f" | 学习率 {module.get_lr(step):.2e} | 梯度范数 " in line
    assert module.get_lr(0) == pytest.approx(0.002) and module.get_lr(20) == pytest.approx(0.001)
    norms = [line.rsplit(" ", 1)[1] for line in lines]
    assert norms[0] == "—" and all(float(n) > 0 for n in norms[1:])  # 第 0 步还没有梯度：不是 nan（nan 是发散）


@pytest.mark.parametrize("path", [V20, V22], ids=lambda p: p.stem)
def test_resume_continues_the_schedule_exactly(path, small_corpus, tmp_path, monkeypatch):
    """一次 40 步的训练在第 20 步停下、--resume 续完，和一口气训练 40 步完全一样（学习率计划、两份优化器状态都接上）。"""
    args = [*tiny_args(path, max_iters=40, warmup_iters=10, dropout=0.1), f"--data={small_corpus}"]
    stopped = load(path)
    monkeypatch.setattr(stopped, "Progress", stopping_at(stopped, 20))
    in_process(path, *args, f"--out_dir={tmp_path / 'split'}", module=stopped)
    assert torch.load(tmp_path / "split" / f"{path.stem}.pt", weights_only=True)["step"] == 20
    resumed = steps(in_process(path, *args, f"--out_dir={tmp_path / 'split'}", "--resume").stdout)
    straight = steps(in_process(path, *args, f"--out_dir={tmp_path / 'straight'}").stdout)
    assert resumed == straight[2:] and [s for s, _, _ in resumed] == [20, 30, 40]
    a, b = (torch.load(tmp_path / d / f"{path.stem}.pt", weights_only=True) for d in ("split", "straight"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])


def test_checkpoint_holds_both_optimizers(small_corpus, tmp_path):
    in_process(V22, *tiny_args(V22, max_iters=3, eval_interval=3), f"--data={small_corpus}", f"--out_dir={tmp_path}")
    state = torch.load(tmp_path / f"{V22.stem}.pt", weights_only=True)
    muon, adamw = state["optimizer"]
    model = state["model"]
    matrices = [k for k in model if k.startswith("blocks.") and model[k].ndim == 2]
    assert len(muon["state"]) == len(matrices) > 0 and len(adamw["state"]) == len(model) - len(matrices)
    assert all(set(s) == {"momentum_buffer"} for s in muon["state"].values())
    assert all({"exp_avg", "exp_avg_sq"} <= set(s) for s in adamw["state"].values())


def grad_norm(parameters):
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None])).item()


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_huge_gradient_is_cut_to_grad_clip(grad_clip, small_corpus, tmp_path, monkeypatch):
    """损失乘 1e6，梯度就大 1e6 倍：裁剪后 AdamW 看到的总范数正好是 grad_clip；grad_clip=0 时原样不动。"""
    module = load(V21)

    class Huge(module.BabyGPT):
        def forward(self, idx, targets=None, cache=None):
            logits, loss = super().forward(idx, targets, cache)
            return logits, None if loss is None else loss * 1e6

    seen, original = [], torch.optim.AdamW.step
    def step(self, *a, **k):
        seen.append(grad_norm(p for group in self.param_groups for p in group["params"]))
        return original(self, *a, **k)
    monkeypatch.setattr(module, "BabyGPT", Huge)
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    monkeypatch.setattr(module, "time_one_step", lambda *a: (0.001, 0.0))  # 开训前量时间的那几步（在副本上）不算
    out = in_process(V21, *tiny_args(V21, max_iters=3, eval_interval=3), f"--grad_clip={grad_clip}",
                     f"--data={small_corpus}", f"--out_dir={tmp_path}", module=module).stdout
    shown = float(out.split("梯度范数 ")[-1].split()[0])  # 第 3 步的进度行：裁剪前的范数
    assert len(seen) == 3 and shown > 1e4
    if grad_clip:
        assert seen == [pytest.approx(grad_clip, rel=1e-4)] * 3
    else:
        assert seen[-1] == pytest.approx(shown, rel=1e-2)


def test_orthogonalize_pushes_every_singular_value_near_one():
    module = load(V22)
    orthogonalize = lambda G: module.orthogonalize(G[None])[0]  # 一叠里只有一个矩阵
    torch.manual_seed(0)
    for shape in ((32, 96), (96, 32)):
        U, _, V = torch.linalg.svd(torch.randn(shape), full_matrices=False)
        G = U @ torch.diag(torch.logspace(-1, 1, 32)) @ V  # 奇异值从 0.1 到 10，差一百倍
        s = torch.linalg.svdvals(orthogonalize(G))
        assert orthogonalize(G).shape == shape and 0.6 < s.min() and s.max() < 1.25, s
        far = torch.linalg.svdvals(orthogonalize(U @ torch.diag(torch.logspace(-2, 1, 32)) @ V))
        assert far.max() / far.min() < 5  # 差一千倍的也拉近到几倍以内（5 轮迭代只推到这里，Muon 要的就是这个）
        D = U.T @ orthogonalize(G) @ V.T  # 方向不变：在 G 自己的奇异向量下看，还是对角的
        assert (D - torch.diag(torch.diag(D))).norm() < 0.05 * D.norm()


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason=f"torch.optim.Muon 要 PyTorch 2.9 起（这里是 {torch.__version__}）")
def test_muon_matches_torch_optim_muon():
    module = load(V22)
    module.dtype = "bfloat16"  # bf16 训练时的正交化：和 torch.optim.Muon 一样在 bf16 里迭代
    torch.manual_seed(0)
    for shape in ((24, 64), (64, 24)):
        start = torch.randn(shape)
        ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
        mine = module.Muon([ours], {"lr": 0.02, "momentum": 0.95, "weight_decay": 0.01})
        torch_muon = torch.optim.Muon([theirs], lr=0.02, momentum=0.95, weight_decay=0.01, nesterov=True,
                                      adjust_lr_fn="match_rms_adamw")
        for _ in range(3):
            grad = torch.randn(shape)
            ours.grad, theirs.grad = grad.clone(), grad.clone()
            mine.step()
            torch_muon.step()
        moved_ours, moved_theirs = ours.detach() - start, theirs.detach() - start
        # 两边都在 bf16 里迭代，舍入的次数不同（它用 addmm）：和 float64 算的比，各差 2%～4%
        assert (moved_ours - moved_theirs).norm() < 0.05 * moved_theirs.norm()
        assert torch.allclose(mine.state[ours]["momentum_buffer"], torch_muon.state[theirs]["momentum_buffer"])


def test_orthogonalize_runs_in_the_training_precision():
    """float32 训练（MPS、只有 AVX2 的 CPU、--dtype=float32）时正交化也在 float32 里迭代：和 float64 算的几乎一样；
    bf16 训练时在 bf16 里迭代，差到百分之几。"""
    module = load(V22)
    torch.manual_seed(0)
    G = torch.randn(2, 24, 64)  # 一叠两个
    exact = G.double() / G.double().norm(dim=(-2, -1), keepdim=True)  # float64 的参考：照公式写的 5 轮
    for _ in range(5):
        A = exact @ exact.mT
        exact = 3.4445 * exact + (-4.7750 * A + 2.0315 * A @ A) @ exact
    module.dtype = "float32"
    assert module.orthogonalize(G).dtype == torch.float32
    assert (module.orthogonalize(G).double() - exact).norm() < 1e-5 * exact.norm()
    module.dtype = "bfloat16"
    assert (module.orthogonalize(G).double() - exact).norm() > 1e-3 * exact.norm()


def test_muon_leaves_parameters_without_a_gradient_alone_and_optimizers_zero_both():
    module = load(V22)
    torch.manual_seed(0)
    used, unused = torch.nn.Parameter(torch.randn(8, 16)), torch.nn.Parameter(torch.randn(8, 16))
    bias = torch.nn.Parameter(torch.randn(8))
    before = unused.detach().clone()
    optimizer = module.Optimizers(module.Muon([used, unused], {"lr": 0.02, "momentum": 0.95, "weight_decay": 0.01}),
                                  torch.optim.AdamW([bias], lr=0.01))
    (used.sum() + bias.sum()).backward()  # unused 没有梯度（.grad 是 None），像这一步没用上的参数
    optimizer.step()
    assert torch.equal(unused.detach(), before) and unused not in optimizer.optimizers[0].state
    optimizer.zero_grad(set_to_none=True)
    assert used.grad is None and bias.grad is None


def test_lr_picture_uses_v20s_own_schedule_at_its_cpu_command(tmp_path):
    import recipe_pictures
    module, rates = recipe_pictures.schedule(V20, 3000)
    assert (module.learning_rate, module.min_lr, module.warmup_iters) == (6e-3, 6e-4, 100)
    assert rates[99] == pytest.approx(6e-3) and rates[3000] == pytest.approx(6e-4) and len(rates) == 3001
    evals = [{"step": s, "val_loss": 7 - s / 1000} for s in (0, 1500, 3000)]
    report = {"results": [{"version": v, "steps": 3000, "evals": evals, "final_val_loss": 4.0} for v in ("v19", "v20")]}
    recipe_pictures.lr_picture(report, tmp_path / "lr.png")
    assert_picture(tmp_path / "lr.png")
