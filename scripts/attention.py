"""注意力在看哪里：读一个训练好的检查点，把一行词在每一层、每一个头上的注意力权重画成热力图。

用法
  python scripts/attention.py                                   # 默认：v13 的检查点，开头“春江”，画到 docs/attention.png
  python scripts/attention.py --version v10 --text "明月几时有，把酒问青天。" --out /tmp/a.png
  python scripts/attention.py --checkpoint checkpoints/babygpt_v13_kv_cache.pt --write 30

v3 起的每个版本都能画。v3 到 v13 的每个头是一个 Head（有 query、key、tril），照它的 forward 算权重；v14 起注意力是
融合的 scaled_dot_product_attention，不生成权重矩阵，这里用那一层自己的 qkv 算出 q、k（v17 起按位置转过，v19 起
同组的头共用 k），再自己算 softmax(q·kᵀ/√hs)。图上每一格：行是“正在猜下一个字的位置”，列是它看的字，
颜色越深看得越多；每一行加起来是 1。汉字要用中文字体：Linux、macOS、Windows 上常见的都会自动找到。
"""

import argparse
import sys
from pathlib import Path

import torch
from versions import ROOT, find_cjk_font, from_checkpoint, load, versions


def fail(message):
    print(f"错误：{message}", file=sys.stderr)
    sys.exit(1)


def attention_weights(module, model, idx):
    """跑一遍模型，返回 [[第 0 层第 0 个头的权重 (T, T), ...], ...]：按层、按头。"""
    fused = not hasattr(module, "Head")  # v14 起：一个 MultiHeadAttention 用 qkv 一次算出所有头，不存权重
    layers = [m for m in model.modules() if isinstance(m, module.MultiHeadAttention if fused else module.Head)]
    inputs = {}
    hooks = [m.register_forward_pre_hook(lambda layer, args: inputs.__setitem__(layer, args[0])) for m in layers]
    with torch.no_grad():
        model(idx)
        weights = [fused_weights(m, inputs[m]) if fused else [head_weights(m, inputs[m])] for m in layers]
    for hook in hooks:
        hook.remove()
    weights = [wei for layer in weights for wei in layer]  # 先摊平成一个个头，再按层分组
    per_layer = len(weights) // max(getattr(module, "n_layer", 1), 1)
    return [weights[i:i + per_layer] for i in range(0, len(weights), per_layer)]


def head_weights(head, x):
    """v3..v13 的一个 Head：和 Head.forward 里一样算 wei：q·k 缩放、挡住未来、softmax。x: (1, T, C) -> (T, T)"""
    T = x.shape[1]
    wei = head.query(x) @ head.key(x).transpose(-2, -1) * head.key.out_features ** -0.5
    return wei.masked_fill(head.tril[:T, :T] == 0, float("-inf")).softmax(dim=-1)[0]


def fused_weights(attention, x):
    """v14 起的融合注意力不生成权重矩阵：用这一层自己的 qkv 算出 q、k（v17 起按位置转过，v19 起 k 按组共用），
    再自己算 softmax(q·kᵀ / √hs)，挡住未来。x: (1, T, C) -> [每个头的 (T, T)]"""
    _, T, C = x.shape
    heads = attention.num_heads
    kv_heads = getattr(attention, "num_kv_heads", heads)
    hs = C // heads
    q, k, _ = attention.qkv(x).split([C, kv_heads * hs, kv_heads * hs], dim=2)
    q = q.view(1, T, heads, hs).transpose(1, 2)  # (1, nh, T, hs)
    k = k.view(1, T, kv_heads, hs).transpose(1, 2)  # (1, nkv, T, hs)
    if hasattr(attention, "rotate"):  # RoPE（v17 起）：和 forward 里一样，从位置 0 数起
        q, k = attention.rotate(q, 0), attention.rotate(k, 0)
    k = k.repeat_interleave(heads // kv_heads, dim=1)  # (1, nh, T, hs)
    wei = q @ k.transpose(-2, -1) * hs ** -0.5  # (1, nh, T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    return list(wei.masked_fill(future, float("-inf")).softmax(dim=-1)[0])


def draw(weights, chars, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    font = find_cjk_font()
    if font is None:
        fail("找不到中文字体，图上的汉字会变成方框。装一个再画：Debian/Ubuntu 用 sudo apt install fonts-noto-cjk，"
             "macOS 和 Windows 自带（苹方、微软雅黑）")
    plt.rcParams["font.sans-serif"] = [font]
    layers, heads = len(weights), len(weights[0])
    size = 0.28 * len(chars) + 1
    fig, axes = plt.subplots(layers, heads, figsize=(size * heads, size * layers), squeeze=False)
    for layer, row in enumerate(weights):
        for head, wei in enumerate(row):
            ax = axes[layer][head]
            ax.imshow(wei.numpy(), cmap="Blues", vmin=0, vmax=1)
            ax.set_xticks(range(len(chars)), chars, fontsize=8)
            ax.set_yticks(range(len(chars)), chars, fontsize=8)
            ax.set_title(f"第 {layer + 1} 层 第 {head + 1} 个头", fontsize=10)
            if head == 0:
                ax.set_ylabel("正在猜下一个字的位置")
            if layer == layers - 1:
                ax.set_xlabel("它看的字")
    fig.suptitle(title, fontsize=14)
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # 上面留出总标题的位置
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=60, format="png")
    plt.close(fig)
    tmp.replace(path)  # 画好了才换上，中途失败不留半张图


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="v13", help="哪个版本（v3 起），默认 v13")
    parser.add_argument("--checkpoint", help="检查点文件，默认 checkpoints/<版本的脚本名>.pt")
    parser.add_argument("--text", default="春江", help="要看的一行字（或开头），默认“春江”")
    parser.add_argument("--write", type=int, default=0, help="先用模型（贪心）续写几个字，再看整行，默认 0")
    parser.add_argument("--out", default=str(ROOT / "docs" / "attention.png"), help="图片写到这里，默认 docs/attention.png")
    args = parser.parse_args()

    found = versions()
    if args.version not in found:
        fail(f"没有版本 {args.version}（有：{', '.join(found)}）")
    module = load(found[args.version])
    if not hasattr(module, "Head") and not hasattr(module, "MultiHeadAttention"):
        fail(f"{args.version} 还没有注意力：选 v3 或更新的版本")
    path = Path(args.checkpoint or ROOT / "checkpoints" / f"{found[args.version].stem}.pt")
    if not path.exists():
        fail(f"没有检查点 {path}：先训练一次（python {found[args.version].name}）")
    module, model, tokenizer, state = from_checkpoint(found[args.version], path, temperature=0, top_k=0, dropout=0.0)
    missing = [ch for ch in args.text if ch not in tokenizer.stoi]
    if missing:
        fail(f"这些字不在词表里：{' '.join(missing)}")
    idx = torch.tensor([tokenizer.encode(args.text)])
    if args.write:
        idx = model.generate(idx, args.write)
    idx = idx[:, -module.block_size:]
    chars = list(tokenizer.decode(idx[0].tolist()).replace("\n", "／"))
    weights = attention_weights(module, model, idx)
    draw(weights, chars, args.out, f"{found[args.version].name}（训练了 {state['step']} 步）的注意力")
    print(f"画好了：{args.out}（{len(weights)} 层 × {len(weights[0])} 个头，{len(chars)} 个字）")


if __name__ == "__main__":
    main()
