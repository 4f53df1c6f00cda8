"""注意力在看哪里：读一个训练好的检查点，把一行词在每一层、每一个头上的注意力权重画成热力图。

用法
  python scripts/attention.py                                   # 默认：v13 的检查点，开头“春江”，画到 docs/attention.png
  python scripts/attention.py --version v10 --text "明月几时有，把酒问青天。" --out /tmp/a.png
  python scripts/attention.py --checkpoint checkpoints/babygpt_v13_kv_cache.pt --write 30

只能画“手写注意力”的版本（v3 到 v13：每个头是一个 Head，有 query、key、tril）；v14 起注意力是融合的
scaled_dot_product_attention，不生成权重矩阵。图上每一格：行是“正在猜下一个字的位置”，列是它看的字，
颜色越深看得越多；每一行加起来是 1。汉字要用中文字体：Linux、macOS、Windows 上常见的都会自动找到。
"""

import argparse
import sys
import warnings
from pathlib import Path

import torch
from versions import ROOT, find_cjk_font, load, versions


def fail(message):
    print(f"错误：{message}", file=sys.stderr)
    sys.exit(1)


def attention_weights(module, model, idx):
    """跑一遍模型，返回 [[第 0 层第 0 个头的权重 (T, T), ...], ...]：按层、按头。"""
    heads = [m for m in model.modules() if isinstance(m, module.Head)]
    inputs = {}
    hooks = [h.register_forward_pre_hook(lambda head, args: inputs.__setitem__(head, args[0])) for h in heads]
    with torch.no_grad():
        model(idx)
        weights = []
        for head in heads:  # 和 Head.forward 里一样算 wei：q·k 缩放、挡住未来、softmax
            x = inputs[head]
            T = x.shape[1]
            wei = head.query(x) @ head.key(x).transpose(-2, -1) * head.key.out_features ** -0.5
            wei = wei.masked_fill(head.tril[:T, :T] == 0, float("-inf")).softmax(dim=-1)
            weights.append(wei[0])
    for hook in hooks:
        hook.remove()
    per_layer = len(heads) // max(getattr(module, "n_layer", 1), 1)
    return [weights[i:i + per_layer] for i in range(0, len(weights), per_layer)]


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
    parser.add_argument("--version", default="v13", help="哪个版本（v3 到 v13），默认 v13")
    parser.add_argument("--checkpoint", help="检查点文件，默认 checkpoints/<版本的脚本名>.pt")
    parser.add_argument("--text", default="春江", help="要看的一行字（或开头），默认“春江”")
    parser.add_argument("--write", type=int, default=0, help="先用模型（贪心）续写几个字，再看整行，默认 0")
    parser.add_argument("--out", default=str(ROOT / "docs" / "attention.png"), help="图片写到这里，默认 docs/attention.png")
    args = parser.parse_args()

    found = versions()
    if args.version not in found:
        fail(f"没有版本 {args.version}（有：{', '.join(found)}）")
    module = load(found[args.version])
    if not hasattr(module, "Head"):
        fail(f"{args.version} 没有手写的注意力头（Head）：选 v3 到 v13")
    path = Path(args.checkpoint or ROOT / "checkpoints" / f"{found[args.version].stem}.pt")
    if not path.exists():
        fail(f"没有检查点 {path}：先训练一次（python {found[args.version].name}）")
    with warnings.catch_warnings():  # PyTorch 2.1 读检查点时会多打印一条无害的 TypedStorage 警告
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        state = torch.load(path, map_location="cpu", weights_only=True)
    vars(module).update(state["hyperparameters"], temperature=0, top_k=0, dropout=0.0)
    tokenizer = module.Tokenizer("".join(state["vocab"]))
    missing = [ch for ch in args.text if ch not in tokenizer.stoi]
    if missing:
        fail(f"这些字不在词表里：{' '.join(missing)}")
    model = module.BabyGPT(tokenizer.vocab_size)
    model.load_state_dict(state["model"])
    model.eval()
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
