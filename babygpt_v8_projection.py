"""babygpt v8：投影层（projection）

本版新内容
  多头拼接之后加一个输出投影（proj），把各头的结果混合后再走回残差
  捷径；前馈层先加宽到 4 * n_embed，再投影回 n_embed。

运行
  python babygpt_v8_projection.py                # 默认设置
  python babygpt_v8_projection.py --help         # 列出所有超参数和默认值

和上一版比较
  diff -u babygpt_v7_residual_connection.py babygpt_v8_projection.py

实测
  本机 2 核 CPU，默认设置：1000 步，验证损失 5.30，用时 1 分 10 秒（2026-11-28，scripts/ladder.py）
"""

import argparse
import os
import signal
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

# ---------------- 超参数（都可以在命令行改，例如 --max_iters=300）----------------
batch_size = 32  # 每一步同时训练多少段文本
block_size = 32  # 每段文本多少个字（模型一次最多看多少个字）
max_iters = 1000  # 训练多少步
eval_interval = 100  # 每隔多少步评估一次损失
eval_iters = 10  # 评估时每个数据集用多少批求平均
learning_rate = 1e-2  # AdamW 的学习率
n_embed = 32  # 每个字的向量有多少维
n_head = 4  # 注意力头的个数
n_layer = 3  # 叠几个 Transformer 块
max_new_tokens = 100  # 每个开头续写多少个字
seed = 1337  # 随机种子：同样的命令在 CPU 上得到同样的损失
prompts = "春江,往事"  # 用这些开头写词，逗号分隔


# ---------------- 1. 分词器：字 <-> 整数 ----------------
class Tokenizer:
    def __init__(self, text):
        self.chars = sorted(set(text))  # 词表：语料里出现过的所有字，排好序
        self.vocab_size = len(self.chars)
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, s):
        return [self.stoi[ch] for ch in s]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


# ---------------- 2. 模型 ----------------
class Head(nn.Module):
    """一个因果自注意力头：每个位置只看它自己和前面的字"""

    def __init__(self, head_size):
        super().__init__()
        self.key = nn.Linear(n_embed, head_size, bias=False)
        self.query = nn.Linear(n_embed, head_size, bias=False)
        self.value = nn.Linear(n_embed, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))  # 下三角：挡住后面的字

    def forward(self, x):
        T = x.shape[1]  # x: (B, T, C) = (batch, time, channels = n_embed)
        k = self.key(x)  # (B, T, head_size)：我有什么
        q = self.query(x)  # (B, T, head_size)：我在找什么
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, T)：缩放，softmax 才不会太尖
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # (B, T, T)：看不到未来的字
        wei = F.softmax(wei, dim=-1)  # (B, T, T)：每一行加起来是 1
        v = self.value(x)  # (B, T, head_size)：我交出去的内容
        return wei @ v  # (B, T, T) @ (B, T, head_size) -> (B, T, head_size)


class MultiHeadAttention(nn.Module):
    """几个注意力头并行，各看各的，输出拼起来"""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
        self.proj = nn.Linear(num_heads * head_size, n_embed)  # 投影：把各头的结果混合起来

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, num_heads * head_size)
        return self.proj(out)  # (B, T, n_embed)


class FeedForward(nn.Module):
    """逐位置的前馈网络：每个字各自消化注意力收集来的信息"""

    def __init__(self, n_embed):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embed, 4 * n_embed),  # 先加宽 4 倍
            nn.ReLU(),  # 非线性：没有它，两层线性层叠起来还是线性
            nn.Linear(4 * n_embed, n_embed),  # 再投影回 n_embed
        )

    def forward(self, x):
        return self.net(x)  # (B, T, n_embed)


class Block(nn.Module):
    """一个 Transformer 块：先交流（注意力），再思考（前馈）"""

    def __init__(self, n_embed, n_head):
        super().__init__()
        self.attention = MultiHeadAttention(n_head, n_embed // n_head)
        self.feed_forward = FeedForward(n_embed)

    def forward(self, x):
        x = x + self.attention(x)  # (B, T, n_embed)：残差，捷径直通
        x = x + self.feed_forward(x)  # (B, T, n_embed)
        return x


class BabyGPT(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embed)  # 每个字一个 n_embed 维向量
        self.position_embedding_table = nn.Embedding(block_size, n_embed)  # 每个位置一个 n_embed 维向量
        self.blocks = nn.Sequential(*[Block(n_embed, n_head) for _ in range(n_layer)])
        self.lm_head = nn.Linear(n_embed, vocab_size)  # 向量 -> 下一个字的打分

    def forward(self, idx, targets=None):
        B, T = idx.shape  # batch（几段文本），time（每段几个字）
        tok_emb = self.token_embedding_table(idx)  # (B, T, n_embed)：这是什么字
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, n_embed)：它在第几位
        x = tok_emb + pos_emb  # (B, T, n_embed)：广播相加
        x = self.blocks(x)  # (B, T, n_embed)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -block_size:]  # (B, T)：位置表只有 block_size 行，只看最后 block_size 个字
            logits, _ = self(idx_cond)  # (B, T, vocab_size)
            probs = F.softmax(logits[:, -1, :], dim=-1)  # 只用最后一个位置的打分：(B, vocab_size)
            idx_next = torch.multinomial(probs, num_samples=1)  # 按概率抽一个字：(B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
        return idx


# ---------------- 3. 取数据与评估 ----------------
def get_batch(data, offsets):
    # offsets: (B,) 每段文本的起点。x 是这些段落，y 是每个位置的“下一个字”
    index = offsets.to(data.device)[:, None] + torch.arange(block_size, device=data.device)  # (B, T)
    return data[index], data[index + 1]


@torch.no_grad()
def estimate_loss(model, splits, eval_offsets):
    model.eval()  # 评估模式（以后加了 dropout 时，它在这里关掉）
    losses = {name: torch.stack([model(*get_batch(data, o))[1] for o in eval_offsets[name]]).mean().item()
              for name, data in splits.items()}
    model.train()
    return losses


# ---------------- 4. 训练，5. 写词 ----------------
def main():
    args = parse_args()  # 命令行改过的超参数在这里生效（见文件末尾的脚手架）
    device = pick_device(args.device)
    torch.manual_seed(seed)

    text = read_text(args.data)
    tokenizer = Tokenizer(text)
    check_prompts(tokenizer)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long, device=device)
    n = int(0.9 * len(data))  # 前 90% 训练，后 10% 验证
    splits = {"train": data[:n], "val": data[n:]}
    check_length(splits)
    # 评估每次都用同一组批次，前后的损失才能直接比较
    generator = torch.Generator().manual_seed(seed)
    eval_offsets = {name: torch.randint(len(d) - block_size, (eval_iters, batch_size), generator=generator)
                    for name, d in splits.items()}

    model = BabyGPT(tokenizer.vocab_size).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    print(f"语料 {len(text):,} 字，词表 {tokenizer.vocab_size:,} 字；模型参数 {sum(p.numel() for p in model.parameters()):,} 个")
    step = load_checkpoint(args, model, optimizer, tokenizer) if args.resume else 0

    progress = Progress(step, device)
    progress.report(step, lambda: estimate_loss(model, splits, eval_offsets))
    stop = []  # Ctrl-C 只做个记号：这一步做完再停，检查点才完整
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    while step < max_iters and not stop:
        offsets = torch.randint(len(splits["train"]) - block_size, (batch_size,))
        xb, yb = get_batch(splits["train"], offsets)
        _, loss = model(xb, yb)  # 前向：算出损失
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # 反向：算出每个参数的梯度
        optimizer.step()  # 沿梯度反方向走一小步
        step += 1
        if step % eval_interval == 0 or step == max_iters:
            progress.report(step, lambda: estimate_loss(model, splits, eval_offsets))
    progress.finish(stop)
    save_checkpoint(args, model, optimizer, tokenizer, step)

    model.eval()
    for prompt in prompts.split(","):
        idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)  # (1, T)
        text = tokenizer.decode(model.generate(idx, max_new_tokens)[0].tolist())
        print(f"\n--- {prompt} ---\n{text}")


# ================ 脚手架：命令行、设备、读文件、进度、检查点 ================
# 每个版本这部分一字不差，学模型时可以跳过。
HYPERPARAMETERS = {k: v for k, v in dict(globals()).items() if not k.startswith("_") and type(v) in (int, float, str)}
HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message):  # 一行中文报错，不打印 traceback，退出码 1
    print(f"错误：{message}", file=sys.stderr)
    sys.exit(1)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # argparse 默认打印英文用法，这里换成一行中文，退出码仍是 2
        print(f"错误：命令行参数不对（{message}）。用 --help 查看可用参数。", file=sys.stderr)
        sys.exit(2)


def parse_args():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in HYPERPARAMETERS.items():
        parser.add_argument(f"--{name}", type=type(value), default=value, help=f"默认 {value}")
    parser.add_argument("--device", choices=["cpu", "cuda", "mps"], help="默认自动选择：CUDA，其次 MPS，最后 CPU")
    parser.add_argument("--data", default=os.path.join(HERE, "ci.txt"), help="语料文件（UTF-8），默认 ci.txt")
    parser.add_argument("--out_dir", default=os.path.join(HERE, "checkpoints"), help="检查点目录，默认 checkpoints/")
    parser.add_argument("--resume", action="store_true", help="从检查点接着训练")
    args = parser.parse_args()
    for name in HYPERPARAMETERS:  # 数值不能为负；除了下面几个，也不能为 0；dropout 要小于 1
        value = getattr(args, name)
        zero_ok = name in ("max_iters", "max_new_tokens", "seed", "dropout")
        if type(value) is not str and (value < 0 or (value == 0 and not zero_ok) or (name == "dropout" and value >= 1)):
            parser.error(f"--{name}={value} 超出范围")
    if "n_head" in HYPERPARAMETERS and args.n_embed % args.n_head:
        parser.error(f"n_embed={args.n_embed} 必须是 n_head={args.n_head} 的整数倍")
    globals().update({name: getattr(args, name) for name in HYPERPARAMETERS})
    return args


def pick_device(asked):
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if asked and not available[asked]:
        fail(f"要求用 {asked}，但这台机器上的 PyTorch 用不了它（见 README 的“常见问题”）")
    device = asked or next(name for name in ("cuda", "mps", "cpu") if available[name])
    print(f"设备：{device}")
    return device


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:  # Windows 默认编码不是 UTF-8，必须写明
            text = f.read()
    except FileNotFoundError:
        fail(f"找不到语料文件 {path}")
    except UnicodeDecodeError:
        fail(f"语料文件 {path} 不是 UTF-8 编码")
    except OSError as e:
        fail(f"读不了语料文件 {path}（{e.strerror}）")
    if not text:
        fail(f"语料文件 {path} 是空的")
    return text


def check_length(splits):
    if min(len(d) for d in splits.values()) <= block_size:
        fail(f"语料太短：训练集和验证集（后 10%）都要多于 block_size={block_size} 个字")


def check_prompts(tokenizer):
    if not all(prompts.split(",")):
        fail(f"--prompts={prompts} 里有空的开头：每个开头至少一个字，用逗号分隔")
    missing = sorted({ch for ch in prompts if ch != "," and ch not in tokenizer.stoi})
    if missing:
        fail(f"开头里的字不在词表里：{' '.join(missing)}（换成语料里有的字）")


def fmt_seconds(s):
    return f"{int(s // 60)}m{int(s % 60):02d}s" if s >= 60 else f"{s:.1f}s"


class Progress:  # 打印步数、损失、训练速度（不含评估时间）、已用时间和预计剩余时间
    def __init__(self, step, device):
        self.first_step, self.device = step, device
        self.start = self.mark = time.time()
        self.train_seconds = self.eval_seconds = 0.0

    def report(self, step, evaluate):
        getattr(torch, self.device).synchronize()  # GPU 是异步的：先等它算完再看表
        now = time.time()
        self.train_seconds += now - self.mark
        losses = evaluate()
        done = step - self.first_step
        speed = done * batch_size * block_size / max(self.train_seconds, 1e-9)
        elapsed = time.time() - self.start
        eta = fmt_seconds(elapsed / done * (max_iters - step)) if done else "?"
        print(f"step {step:>5}/{max_iters} | 训练损失 {losses['train']:.4f} | 验证损失 {losses['val']:.4f} | "
              f"{speed:,.0f} 字/秒 | 已用 {fmt_seconds(elapsed)} | 还需 {eta}", flush=True)
        self.mark = time.time()  # 从这里重新计训练时间：评估和打印不算在内
        self.eval_seconds += self.mark - now

    def finish(self, stop):
        total = time.time() - self.start
        if stop:
            print("收到 Ctrl-C：停止训练，保存检查点，再写几首词。")
        print(f"用时 {total:.1f} 秒，其中评估 {self.eval_seconds:.1f} 秒（{self.eval_seconds / total:.0%}）")


def checkpoint_path(args):
    return os.path.join(args.out_dir, os.path.splitext(os.path.basename(__file__))[0] + ".pt")


def save_checkpoint(args, model, optimizer, tokenizer, step):
    path = checkpoint_path(args)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "hyperparameters": {name: globals()[name] for name in HYPERPARAMETERS},
             "vocab": tokenizer.chars, "rng_state": torch.get_rng_state()}
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        torch.save(state, path + ".tmp")  # 先写临时文件再改名：中途出错也不会留下半个检查点
        os.replace(path + ".tmp", path)
    except OSError as e:
        fail(f"检查点写不进 {path}（{e.strerror}）")
    print(f"检查点已保存：{path}（第 {step} 步）")


def load_checkpoint(args, model, optimizer, tokenizer):
    path = checkpoint_path(args)
    if not os.path.exists(path):
        fail(f"没有检查点 {path}：先不加 --resume 训练一次")
    try:
        state = torch.load(path, map_location="cpu")
    except Exception:  # noqa: BLE001 坏文件可能抛出各种异常，都换成一行中文
        fail(f"检查点 {path} 读不出来（文件坏了？）")
    if state["vocab"] != tokenizer.chars:
        fail(f"检查点的词表和语料 {args.data} 的词表不一样：--data 要和训练时相同")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError):
        fail(f"检查点的模型形状和现在的超参数对不上（训练时是 {state['hyperparameters']}）")
    torch.set_rng_state(state["rng_state"])  # 连随机数也接上：续训和一口气训完结果相同（CPU 上）
    print(f"从检查点 {path} 的第 {state['step']} 步接着训练")
    return state["step"]


if __name__ == "__main__":
    main()
