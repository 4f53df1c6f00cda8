"""babygpt v15：多块 GPU、多台机器一起训练（torchrun + DistributedDataParallel）（第 4 章）

本版新内容
  python 本文件 照样是一个进程；torchrun --standalone --nproc_per_node=N 本文件 启动 N 个进程，
  每个进程一块 GPU（CUDA 上用 NCCL），没有 GPU 时用 CPU（gloo），多台机器用 torchrun 的 rendezvous 参数。
  --batch_size 是全局的 batch：每个进程用同样的种子抽出同样的 batch_size 个起点，各取自己那一份；
  DistributedDataParallel（DDP）在反向传播时把各进程的梯度求平均，所以同一条命令，一个进程和 N 个进程
  画出的损失曲线一样（差在浮点误差以内；有 dropout 时各进程的随机数不同，只是统计上一样）。
  一份放不下时用 --micro_batch_size 切成小批、梯度累积：只在最后一个小批同步梯度。
  只有 0 号进程评估、打印、记 wandb、存检查点、写词；谁按了 Ctrl-C，大家在同一步一起停。

运行（每个版本都一样）
  python 本文件                          训练，然后从 --prompts 的开头写词
  python 本文件 --help                   列出所有超参数和默认值
  python 本文件 --sample --interactive   不训练：用存好的检查点写词，自己输入开头
  CPU 上用缩小的配置（第 4 章的 CPU 命令）：
  python babygpt_v15_ddp.py --batch_size=16 --block_size=64 --n_embed=64 --n_layer=3 --n_head=4 --dropout=0 --learning_rate=6e-3 --max_iters=5000 --eval_interval=500 --eval_iters=20

和上一版比较
  diff -u babygpt_v14_fast.py babygpt_v15_ddp.py

实测
  （见 docs/04_full_size.md）
"""

import argparse
import contextlib
import copy
import datetime
import os
import signal
import socket
import sys
import time
import urllib.request
import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
import wandb
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

# ---------------- 超参数（都可以在命令行改，例如 --max_iters=300）----------------
batch_size = 64  # 每一步同时训练多少段文本
block_size = 256  # 每段文本多少个字（模型一次最多看多少个字）
max_iters = 5000  # 训练多少步
eval_interval = 500  # 每隔多少步评估一次损失
eval_iters = 50  # 评估时每个数据集用多少批求平均
learning_rate = 3e-4  # AdamW 的学习率
n_embed = 384  # 每个字的向量有多少维
n_head = 6  # 注意力头的个数
n_layer = 6  # 叠几个 Transformer 块
dropout = 0.2  # 训练时随机置零的比例
# 写词（用 --sample 时，从 seed 起的这几个可以随意改；上面的由检查点决定）
seed = 1337  # 随机种子：同样的命令在 CPU 上得到同样的损失
max_new_tokens = 100  # 每个开头续写多少个字
temperature = 1.0  # 温度：小于 1 更保守，大于 1 更放得开，0 = 每次选最可能的字
top_k = 0  # 只在最可能的 k 个字里抽（0 = 不限）
kv_cache = 1  # 写词时用 KV 缓存（0 = 不用，用来比较速度）
dtype = "auto"  # 训练用的精度：float32、bfloat16，auto = 这台设备上实测最快的
compile = "auto"  # torch.compile：1 = 编译，0 = 不编译，auto = 只在 CUDA 上编译（实测见 docs/reports/speed.md）
micro_batch_size = 0  # 每个进程一次前向最多算几段（0 = 一次算完自己那份）；显存不够时改小，梯度累积
prompts = "春江,往事"  # 用这些开头写词，逗号分隔
wandb_mode = ""  # wandb 记录方式：online、offline 或 disabled；空着 = 登录过就在线，没登录就离线
# 这些必须大于 0，其余的数不能为负（命令行给错了，脚本用一行中文说明）
POSITIVE = ("batch_size", "block_size", "eval_interval", "eval_iters", "learning_rate", "n_embed", "n_head", "n_layer")


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
class MultiHeadAttention(nn.Module):
    """n_head 个因果自注意力头一起算：每个位置只看它自己和前面的字"""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(n_embed, 3 * num_heads * head_size, bias=False)  # 快：一次算出所有头的 q、k、v
        self.proj = nn.Linear(num_heads * head_size, n_embed)  # 投影：把各头的结果混合起来
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, cache=None):
        B, T, C = x.shape  # batch, time, channels = n_embed；用缓存时 T 只是新来的字
        q, k, v = self.qkv(x).split(C, dim=2)  # 各 (B, T, C)
        q, k, v = (t.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if cache is not None:  # KV 缓存：以前的字的 k、v 存着不重算，接上新来的字的
            if self in cache:
                k = torch.cat((cache[self][0], k), dim=2)  # (B, nh, S, hs)，S = 以前的字 + 新来的字
                v = torch.cat((cache[self][1], v), dim=2)  # (B, nh, S, hs)
            cache[self] = (k, v)
        # 快：融合的注意力（GPU 上是 flash attention），不生成 (T, S) 的权重矩阵。写词时要么整段一起算
        # （T = S，挡住未来），要么只来一个字（T = 1，缓存里的字都在它前面，不用挡）
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout if self.training else 0.0, is_causal=T > 1)
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, nh, T, hs) -> (B, T, C)：各头拼起来
        return self.dropout(self.proj(out))  # (B, T, n_embed)


class FeedForward(nn.Module):
    """逐位置的前馈网络：每个字各自消化注意力收集来的信息"""

    def __init__(self, n_embed):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embed, 4 * n_embed),  # 先加宽 4 倍
            nn.ReLU(),  # 非线性：没有它，两层线性层叠起来还是线性
            nn.Linear(4 * n_embed, n_embed),  # 再投影回 n_embed
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)  # (B, T, n_embed)


class Block(nn.Module):
    """一个 Transformer 块：先交流（注意力），再思考（前馈）"""

    def __init__(self, n_embed, n_head):
        super().__init__()
        self.attention = MultiHeadAttention(n_head, n_embed // n_head)
        self.feed_forward = FeedForward(n_embed)
        self.ln1 = nn.LayerNorm(n_embed)
        self.ln2 = nn.LayerNorm(n_embed)

    def forward(self, x, cache=None):
        x = x + self.attention(self.ln1(x), cache)  # (B, T, n_embed)：残差，捷径直通
        x = x + self.feed_forward(self.ln2(x))  # (B, T, n_embed)
        return x


class BabyGPT(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        if n_embed % n_head:  # 每个头分到 n_embed // n_head 维，必须正好分完
            fail(f"n_embed={n_embed} 必须是 n_head={n_head} 的整数倍")
        if dropout >= 1:  # 全部置零，就什么也学不到了
            fail(f"dropout={dropout} 必须小于 1")
        self.token_embedding_table = nn.Embedding(vocab_size, n_embed)  # 每个字一个 n_embed 维向量
        self.position_embedding_table = nn.Embedding(block_size, n_embed)  # 每个位置一个 n_embed 维向量
        self.blocks = nn.Sequential(*[Block(n_embed, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embed)  # 最后一层的 LayerNorm
        self.vocab_size = vocab_size
        self.lm_head = nn.Linear(n_embed, vocab_size + (-vocab_size) % 64)  # 快：补到 64 的倍数，矩阵乘法更规整

    def forward(self, idx, targets=None, cache=None):
        B, T = idx.shape  # batch（几段文本），time（每段几个字）
        past = cache.setdefault("length", 0) if cache is not None else 0  # 缓存里已经有几个字
        tok_emb = self.token_embedding_table(idx)  # (B, T, n_embed)：这是什么字
        pos_emb = self.position_embedding_table(torch.arange(past, past + T, device=idx.device))  # (T, n_embed)：排在缓存里的字后面
        x = tok_emb + pos_emb  # (B, T, n_embed)：广播相加
        for block in self.blocks:
            x = block(x, cache)  # (B, T, n_embed)
        if cache is not None:
            cache["length"] = past + T
        x = self.ln_f(x)  # (B, T, n_embed)
        logits = self.lm_head(x)[:, :, :self.vocab_size]  # (B, T, vocab_size)：补的字不抽、不算损失
        loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.view(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        cache = {}
        for _ in range(max_new_tokens):
            if kv_cache and cache and idx.shape[1] <= block_size:
                logits, _ = self(idx[:, -1:], cache=cache)  # 只算新来的一个字：(B, 1, vocab_size)
            else:  # 第一步、不用缓存、或者超出了位置表：整段重算，只看最后 block_size 个字
                cache = {}
                logits, _ = self(idx[:, -block_size:], cache=cache if kv_cache else None)  # (B, T, vocab_size)
            idx_next = pick_next(logits[:, -1, :])  # 只用最后一个位置的打分挑一个字：(B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
        return idx


# ---------------- 3. 取数据、评估、挑下一个字 ----------------
def get_batch(data, offsets):
    # offsets: (B,) 每段文本的起点。第 b 段是 data[i : i + block_size]，i = offsets[b]
    index = offsets.to(data.device)[:, None] + torch.arange(block_size, device=data.device)  # (B, T)：每段每个字的位置
    return data[index], data[index + 1]  # x, y：(B, T)；y 是每个位置的“下一个字”。一次取完，不用 Python 循环


@torch.no_grad()
def estimate_loss(model, splits, eval_offsets):
    model.eval()  # 评估模式：有 dropout 的版本在这里关掉它
    losses = {}
    for name, data in splits.items():  # "train" 和 "val"
        batch_losses = []
        for offsets in eval_offsets[name]:  # eval_iters 批，每批 batch_size 段
            _, loss = model(*get_batch(data, offsets))
            batch_losses.append(loss)
        losses[name] = torch.stack(batch_losses).mean().item()
    model.train()  # 回到训练模式
    return losses


def pick_next(logits):
    """按打分挑下一个字。logits: (B, vocab_size) -> (B, 1)"""
    if temperature == 0:  # 贪心：每次都选最可能的字，同样的开头总写出同样的词
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature  # 温度小于 1 拉大差距（更保守），大于 1 缩小差距（更放得开）
    if top_k:  # 只在打分最高的 top_k 个字里抽，其余的概率变成 0
        kth_best = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    probs = F.softmax(logits, dim=-1)  # (B, vocab_size)：每一行加起来是 1
    return torch.multinomial(probs, num_samples=1)  # 按概率抽一个字：(B, 1)


# ---------------- 4. 训练 ----------------
def pick_dtype(device, args):  # 要比较的精度：只有一种就用它；两种（--dtype=auto）就在开始训练前都量一量
    wanted = dtype
    if args.resume and wanted == "auto":  # 续训：用检查点训练时的精度（命令行写明了 float32 或 bfloat16 就用写明的）
        wanted = read_checkpoint(args, "先不加 --resume 训练一次")["hyperparameters"]["dtype"]
    if wanted not in ("auto", "float32", "bfloat16"):
        fail(f"--dtype={wanted} 不对：只能是 auto、float32 或 bfloat16")
    if wanted == "bfloat16":  # 先试一下：老显卡、老 PyTorch 的 MPS 做不了 bf16 混合精度，说一行，不要深处的 traceback
        try:
            with torch.autocast(device, dtype=torch.bfloat16):
                (torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)).sum().item()
        except RuntimeError as e:
            fail(f"--dtype=bfloat16 在 {device} 上用不了（{str(e).strip().splitlines()[0][:80]}）：改用 --dtype=float32")
    if wanted != "auto":
        return [wanted]
    if device == "cuda":
        return ["bfloat16" if torch.cuda.is_bf16_supported() else "float32"]
    # CPU：有 bf16 指令（AVX512-BF16、AMX）时两种都量：大模型 bf16 快得多，小模型、小词表时 float32 反而快（见 docs/reports/speed.md）；
    # 没有时（只有 AVX2）bf16 慢得多，不用量；MPS 上没实测过 bf16，用 float32
    return ["float32", "bfloat16"] if device == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported() else ["float32"]


def compiled(model, device, amp):
    """torch.compile：第一次调用时编译（要几十秒）。编译不了（Windows 没有编译器、老显卡、MPS……）就说一行，不编译。"""
    try:
        fast_model = torch.compile(model)
        x, y = (torch.zeros((batch_size, block_size), dtype=torch.long, device=device) for _ in range(2))
        with torch.random.fork_rng(devices=[]), amp:  # 用真的形状编译一遍；不动随机数。x、y 是两个张量，和训练时一样，
            fast_model(x, y)[1].backward()  # 用同一个张量当输入和目标编译的图，训练时对不上，还得再编译一次
        model.zero_grad(set_to_none=True)
        return fast_model
    except Exception as e:  # noqa: BLE001 编译失败的原因五花八门，都换成一行
        print(f"torch.compile 用不了（{type(e).__name__}：{str(e).strip().splitlines()[0][:100]}），不编译，照常训练")
        return model


def start_ddp(device):
    """torchrun 启动时（环境变量里有 RANK）加入进程组。返回 (我是第几个进程, 一共几个进程)；python 直接运行是 (0, 1)。"""
    if "RANK" not in os.environ:
        return 0, 1
    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # 每个进程一块 GPU
    # 一个进程出了事，其他的最多等 10 分钟（torchrun 自己会先把它们都停掉）
    dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=datetime.timedelta(minutes=10))
    if batch_size % dist.get_world_size():
        fail(f"--batch_size={batch_size} 要能被进程数 {dist.get_world_size()} 整除：每个进程分到一样多")
    return dist.get_rank(), dist.get_world_size()


def train(args, device, rank, world_size):
    text = read_text(args.data)
    tokenizer = Tokenizer(text)
    check_prompts(tokenizer, prompts.split(","))
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long, device=device)
    n = int(0.9 * len(data))  # 前 90% 训练，后 10% 验证
    splits = {"train": data[:n], "val": data[n:]}
    check_length(splits)
    # 评估每次都用同一组批次，前后的损失才能直接比较
    generator = torch.Generator().manual_seed(seed)
    eval_offsets = {name: torch.randint(len(d) - block_size, (eval_iters, batch_size), generator=generator)
                    for name, d in splits.items()}

    model = BabyGPT(tokenizer.vocab_size).to(device)
    try:  # 快：融合的 AdamW，一次更新所有参数（CPU 上要 PyTorch 2.4 起，更老的只在 CUDA 上有）
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, fused=device in ("cuda", "cpu"))
    except RuntimeError:
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    print(f"语料 {len(text):,} 字，词表 {tokenizer.vocab_size:,} 字；模型参数 {sum(p.numel() for p in model.parameters()):,} 个")
    step = load_checkpoint(args, model, optimizer, tokenizer) if args.resume else 0
    torch.backends.cuda.matmul.allow_tf32 = True  # 快：GPU 上 float32 矩阵乘法用 TF32
    # 快：bf16 混合精度。float32 时不建 autocast：老 PyTorch 在 MPS 上连 enabled=False 的 autocast 都建不了
    amps = {name: torch.autocast(device, dtype=torch.bfloat16) if name == "bfloat16" else contextlib.nullcontext()
            for name in pick_dtype(device, args)}
    seconds = announce_time(model, optimizer, step, device, amps)  # 先量一量要多久（每种精度都量）：配置对这台机器太大时马上说
    if world_size > 1:  # 每个进程量得不一样：都用 0 号进程量的，大家选同一种精度
        shared = [seconds]
        dist.broadcast_object_list(shared, src=0)
        seconds = shared[0]
    if compile not in ("auto", "0", "1"):
        fail(f"--compile={compile} 不对：只能是 auto、0 或 1")
    use_compile = compile == "1" or (compile == "auto" and device == "cuda")
    measured = "、".join(f"{name} {batch_size * block_size / s:,.0f} 字/秒" for name, s in seconds.items())
    precision, why = next(iter(seconds)), "：续训，用检查点训练时的精度" if args.resume and dtype == "auto" else ""  # 只量了一种：就用它
    if len(seconds) == 2:  # 两种都量了：float32 优先（CPU 上每次结果一样），bf16 要明显更快才用
        margin = 1.5  # 同一条命令在 2 核机器上量十次，倍数比中位数高出可达四成多（docs/reports/dtype_noise.md）：差得少时两次会选得不一样
        ratio = seconds["float32"] / seconds["bfloat16"]
        precision = "bfloat16" if ratio > margin else "float32"
        why = f"：bf16 快 {ratio:.2f} 倍，{'超过' if ratio > margin else '不到'} {margin} 倍"
    globals()["dtype"] = precision  # 检查点里记下真正用的精度：--resume 接着用它，续训才和一口气训完一样
    print(f"加速：精度 {precision}（实测 {measured}{why}），torch.compile {'开' if use_compile else '关'}")
    amp = amps[precision]
    fast_model = compiled(model, device, amp) if use_compile else model  # 和 model 是同一份参数
    train_model = DDP(fast_model) if world_size > 1 else fast_model  # DDP：反向传播时把各进程的梯度求平均
    share = batch_size // world_size  # 每个进程算多少段
    synced = None  # 最后一次和其他进程对齐是在第几步

    with Progress(step, device) as progress:  # 计时，接住 Ctrl-C（见脚手架）
        while True:  # Ctrl-C 只做个记号：这一步做完，所有进程一起停，检查点才完整
            if rank == 0 and (step % eval_interval == 0 or step == max_iters):  # 只有 0 号进程评估、打印
                with progress.evaluating(), amp:  # 评估不算进训练速度；评估中按 Ctrl-C 会立刻停下
                    losses = estimate_loss(fast_model, splits, eval_offsets)
                print(progress.line(step, losses), flush=True)  # 步数、损失、速度、已用和还需的时间
                wandb.log({"train_loss": losses["train"], "val_loss": losses["val"], "tokens_per_sec": progress.speed}, step)
            if world_size > 1:  # 谁按了 Ctrl-C，大家在同一步一起停（少了一个进程，其他的会一直等它）
                stop = torch.tensor([float(progress.stopped)], device=device)
                dist.all_reduce(stop, op=dist.ReduceOp.MAX)
                progress.stopped, synced = bool(stop), step
            if step == max_iters or progress.stopped:
                break
            offsets = torch.randint(len(splits["train"]) - block_size, (batch_size,))  # 全局的 batch：每个进程抽得一样
            parts = offsets[rank * share:(rank + 1) * share].split(micro_batch_size or share)  # 我那一份，切成小批
            optimizer.zero_grad(set_to_none=True)
            for i, part in enumerate(parts):
                if world_size > 1:  # 梯度累积：只在最后一个小批反向传播时同步梯度
                    train_model.require_backward_grad_sync = i == len(parts) - 1
                xb, yb = get_batch(splits["train"], part)  # (b, T), (b, T)
                with amp:
                    _, loss = train_model(xb, yb)  # 前向：算出这个小批的损失
                (loss * len(part) / share).backward()  # 反向：按小批的大小加权，合起来是我这一份的平均
            optimizer.step()  # 沿梯度反方向走一小步
            step += 1
    if world_size > 1 and rank == 0 and synced != step:  # 0 号进程评估时被 Ctrl-C 打断：补上其他进程在等的那次同步
        dist.all_reduce(torch.ones(1, device=device), op=dist.ReduceOp.MAX)
    if rank == 0:
        save_checkpoint(args, model, optimizer, tokenizer, step)
    return model, tokenizer


# ---------------- 5. 写词 ----------------
def write(model, tokenizer, prompt, device):
    """从 prompt 开始续写 max_new_tokens 个字，打印出来，后面跟着写的速度。"""
    idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)  # (1, T)
    start = time.time()
    text = tokenizer.decode(model.generate(idx, max_new_tokens)[0].tolist())
    speed = max_new_tokens / max(time.time() - start, 1e-9)
    print(f"\n--- {prompt} ---\n{text}\n（{speed:,.0f} 字/秒）", flush=True)
    return text


def wandb_server_reachable():  # 网络被挡住时，不必等 wandb.login、wandb.init 自己超时
    url = urllib.request.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    try:
        socket.create_connection((url.hostname, url.port or (80 if url.scheme == "http" else 443)), timeout=5).close()
        return True
    except OSError:
        return bool(urllib.request.getproxies())  # 走代理时直连试不出来，交给 wandb.init 去试


def start_wandb():
    """开始记录这次训练。没登录就写离线记录；连不上 wandb 的服务器也改成离线，照样训练。"""
    mode = wandb_mode or os.environ.get("WANDB_MODE") or None  # --wandb_mode 优先，其次环境变量 WANDB_MODE
    if mode not in (None, "online", "offline", "disabled"):
        fail(f"--wandb_mode={mode} 不对：只能是 online、offline 或 disabled")
    if mode in (None, "online") and not wandb_server_reachable():  # 先试连（最多 5 秒）：连不上就不登录，登录也要问服务器
        print("wandb：连不上服务器，改成离线记录（训练照常；以后能上网时用下面的 wandb sync 上传）")
        mode = "offline"
    logged_in = mode in (None, "online") and wandb.login(prompt=False, verify=False)  # 看本机有没有存 API key，从不提问
    if mode == "online" and not logged_in:
        fail("wandb 要在线记录，但还没登录：先运行 wandb login，或者用 --wandb_mode=offline")
    mode = mode or ("online" if logged_in else "offline")
    config = {name: globals()[name] for name in HYPERPARAMETERS}
    try:  # 连得上服务器，也最多等 15 秒
        run = wandb.init(project="babygpt", config=config, mode=mode, settings=wandb.Settings(init_timeout=15))
    except wandb.errors.CommError:
        print("wandb：连不上服务器，改成离线记录（训练照常；以后能上网时用下面的 wandb sync 上传）")
        run = wandb.init(project="babygpt", config=config, mode="offline")
    except wandb.errors.Error as e:
        fail(f"wandb 启动失败（{e}）；可以用 --wandb_mode=offline 或 --wandb_mode=disabled")
    if run.settings.mode == "offline":
        print(f"wandb：离线记录写在本机；想上传到网页：wandb login，然后 wandb sync {run.settings.sync_dir}")


def main():
    with ctrl_c_handled():  # Ctrl-C 怎么处理（见脚手架）；main() 结束时还原
        args = parse_args()  # 命令行改过的超参数在这里生效（见文件末尾的脚手架）
        if os.environ.get("RANK", "0") != "0":  # torchrun 启动的其他进程不打印：只有 0 号进程说话
            sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 进程结束时自然关闭
        device = pick_device(args.device)
        rank, world_size = start_ddp(device)
        torch.manual_seed(seed)  # 每个进程同一个种子：抽出同样的全局 batch，模型的初始参数也一样
        if args.sample:  # 不训练：读出存好的模型，直接写词
            model, tokenizer = load_for_writing(args, device)
        else:
            if rank == 0:
                start_wandb()  # 记录这次训练：超参数、每次评估的损失、写出的词
            model, tokenizer = train(args, device, rank, world_size)
        if world_size > 1:  # 训练完了：等 0 号进程存好检查点，大家一起退出进程组，不留下等待的进程
            dist.barrier()
            dist.destroy_process_group()
        if rank != 0:  # 写词只让 0 号进程来
            return
        model.eval()  # 写词时关掉训练才用的随机性（dropout）
        samples = wandb.Table(columns=["prompt", "text"])
        for prompt in prompts.split(","):
            samples.add_data(prompt, write(model, tokenizer, prompt, device))
        if wandb.run:  # 训练了才有记录；写完的词也记进去，再把记录收好尾
            wandb.log({"samples": samples})
            wandb.finish()
        if args.interactive:  # 一行一个开头，空行或 Ctrl-D 结束
            for prompt in ask_for_prompts(tokenizer):
                write(model, tokenizer, prompt, device)


# ================ 脚手架：命令行、设备、读文件、进度、Ctrl-C、检查点 ================
# 每个版本这部分一字不差，学模型时可以跳过。
HYPERPARAMETERS = {k: v for k, v in dict(globals()).items() if k.islower() and not k.startswith("_") and type(v) in (int, float, str)}
# 写词的超参数（从 seed 起）用 --sample 时可以随意改；前面的决定模型，来自检查点
WRITING = list(HYPERPARAMETERS)[list(HYPERPARAMETERS).index("seed"):]
HERE = os.path.dirname(os.path.abspath(__file__))


def keep_printing():  # 控制台编码不了的字（GBK 里没有“・”）印成“?”，而不是让 print 报错、弄丢训练
    for stream in (sys.stdout, sys.stderr):  # 想看到每个字：用 UTF-8 模式，见 docs/01_setup.md 的常见问题
        if hasattr(stream, "reconfigure"):  # Jupyter 的输出流没有 reconfigure，它本来就是 UTF-8
            stream.reconfigure(errors="replace")


def fail(message):  # 一行中文报错，不打印 traceback，退出码 1
    print(f"错误：{message}", file=sys.stderr)
    sys.exit(1)


def exit_now(*_):  # Ctrl-C（训练中的第一次除外，见 Progress）：立刻退出，不打印 traceback
    print("\n已中断（Ctrl-C）。", file=sys.stderr, flush=True)
    sys.exit(130)


@contextlib.contextmanager
def ctrl_c_handled():  # main() 里按 Ctrl-C：立刻退出（训练时见 Progress）；结束时把原来的处理还回去
    previous = signal.getsignal(signal.SIGINT)  # Jupyter 里 %run 以后，“中断内核”照常能用
    signal.signal(signal.SIGINT, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # argparse 默认打印英文用法，这里换成一行中文，退出码仍是 2
        print(f"错误：命令行参数不对（{message}）。用 --help 查看可用参数。", file=sys.stderr)
        sys.exit(2)


def parse_args():
    keep_printing()
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            allow_abbrev=False)
    for name, value in HYPERPARAMETERS.items():
        parser.add_argument(f"--{name}", type=type(value), default=value, help=f"默认 {value}")
    parser.add_argument("--device", choices=["cpu", "cuda", "mps"], help="默认自动选择：CUDA，其次 MPS，最后 CPU")
    parser.add_argument("--data", default=os.path.join(HERE, "ci.txt"), help="语料文件（UTF-8），默认 ci.txt")
    parser.add_argument("--out_dir", default=os.path.join(HERE, "checkpoints"), help="检查点目录，默认 checkpoints/")
    parser.add_argument("--resume", action="store_true", help="从检查点接着训练")
    parser.add_argument("--sample", action="store_true", help="不训练：读检查点，直接写词")
    parser.add_argument("--interactive", action="store_true", help="写完后一行一个开头接着写，空行或 Ctrl-D 结束")
    args = parser.parse_args()
    for name in HYPERPARAMETERS:  # 数不能为负；POSITIVE 里的（见超参数）还不能为 0
        value = getattr(args, name)
        if type(value) is not str and (value < 0 or (value == 0 and name in POSITIVE)):
            parser.error(f"--{name}={value} 超出范围：{'必须大于 0' if name in POSITIVE else '不能为负'}")
    if args.sample and args.resume:
        parser.error("--sample 和 --resume 不能一起用")
    args.given = {a[2:].split("=")[0] for a in sys.argv[1:] if a.startswith("--")}  # 命令行写明了的参数
    globals().update({name: getattr(args, name) for name in HYPERPARAMETERS})
    return args


def pick_device(asked):
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if asked and not available[asked]:
        fail(f"要求用 {asked}，但这台机器上的 PyTorch 用不了它（见 docs/01_setup.md 的“常见问题”）")
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


def missing_characters(tokenizer, text):
    return " ".join(sorted({ch for ch in text if ch not in tokenizer.stoi}))


def check_prompts(tokenizer, starts):
    if not all(starts):
        fail(f"--prompts={prompts} 里有空的开头：每个开头至少一个字，用逗号分隔")
    if missing := missing_characters(tokenizer, "".join(starts)):
        fail(f"开头里的字不在词表里：{missing}（换成语料里有的字）")


def ask_for_prompts(tokenizer):  # --interactive：一行一个开头；空行、Ctrl-D（Windows：Ctrl-Z 回车）或 Ctrl-C 结束
    while True:
        try:
            prompt = input("\n请输入开头：").rstrip("\r")  # 空格留着：“浣溪沙 ”后面的空格让模型接着写作者
        except EOFError:
            print()
            return
        if not prompt.strip():
            return
        if missing := missing_characters(tokenizer, prompt):
            print(f"这些字不在词表里：{missing}。换几个字再试。")
            continue
        yield prompt


def fmt_seconds(s):
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s < 0.1:  # 小模型一步只要几毫秒
        return f"{s * 1000:.0f}ms"
    return f"{int(s // 60)}m{int(s % 60):02d}s" if s >= 60 else f"{s:.1f}s"


def synchronize(device):  # GPU 是异步的：先等它算完再看表
    getattr(torch, device).synchronize()


def time_one_step(model, optimizer, x, amp, device):  # 训练一步要几秒：(前向加反向, 优化器走一步)
    start = time.time()
    with amp:
        loss = model(x, x)[1]
    loss.backward()
    synchronize(device)
    middle = time.time()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return middle - start, time.time() - middle


def time_forward(model, x, amp, device):  # 评估时的一次前向（不求梯度）要几秒
    start = time.time()
    with torch.no_grad(), amp:
        model(x, x)
    synchronize(device)
    return time.time() - start


def median(values):
    return sorted(values)[len(values) // 2]


def measure_time(model, optimizer, step, device, precisions):  # 返回 ({精度: 训练一步的秒数}, {精度: 评估一次的秒数})
    """precisions = {精度: autocast}（v14 起有两种）：每种都量。
    在模型和优化器的副本上真的训练几步（前向、反向、优化器），再量评估的前向；量完副本就扔掉，训练结果和不量一样。"""
    model, optimizer = copy.deepcopy((model, optimizer))  # 一起复制：副本优化器管的正是副本模型的参数
    rng = torch.get_rng_state()  # 副本照训练时的样子跑（开着 dropout，CPU 上每步慢不少）；量完把用掉的随机数还回去
    one = min(time_one_step(model, optimizer, torch.zeros((1, block_size), dtype=torch.long, device=device), amp,
                            device)[0] for amp in precisions.values() for _ in range(2))  # 先用 1 段预热、粗量
    rows = max(1, min(globals().get("micro_batch_size") or batch_size, int(0.5 / max(one, 1e-9))))  # 一次最多约半秒
    x = torch.zeros((rows, block_size), dtype=torch.long, device=device)
    timings = {name: [] for name in precisions}
    for _ in range(3):  # 热身：开头几步要分配内存、准备内核，比以后慢（float32 在 CPU 上要好几步才稳）
        for amp in precisions.values():
            time_one_step(model, optimizer, x, amp, device)
    began = time.time()
    for rounds in range(1, 31):
        for name, amp in precisions.items():  # 轮流量：机器忽快忽慢时，每种精度赶上的一样多
            timings[name].append(time_one_step(model, optimizer, x, amp, device))
        spent = time.time() - began
        if rounds >= 3 and spent > min(0.5 * len(precisions), spent / rounds * (max_iters - step) / 100):
            break  # 至少 3 轮；再量到每种半秒，但不超过训练本身的百分之一
    seconds, evals = {}, {}
    model.eval()  # 评估时不用 dropout
    for name, amp in precisions.items():
        passes, updates = zip(*timings[name])  # 取中位数：偶尔一步被别的程序打断，不影响
        seconds[name] = median(passes) / rows * batch_size + median(updates)  # 前向反向按段数换算；优化器一步和段数无关
        forward = median([time_forward(model, x, amp, device) for _ in range(3)])
        evals[name] = forward / rows * batch_size * eval_iters * 2  # 评估：只有前向，训练集、验证集各 eval_iters 批
    torch.set_rng_state(rng)
    return seconds, evals


def announce_time(model, optimizer, step, device, precisions=None):  # 训练前量一步要多久，估计总用时，免得学习者对着不动的屏幕干等
    """返回 {精度: 每步秒数}；没给 precisions 就只量 float32。"""
    seconds, evals = measure_time(model, optimizer, step, device, precisions or {"float32": contextlib.nullcontext()})
    totals, said = [], []
    for name, step_seconds in seconds.items():
        total = step_seconds * (max_iters - step) + evals[name] * ((max_iters - step) // eval_interval + 1)
        text = f"约 {fmt_seconds(total)}（每步约 {fmt_seconds(step_seconds)}，每次评估约 {fmt_seconds(evals[name])}）"
        totals.append(total)
        said.append(text if len(seconds) == 1 else f"{name} {text}")  # 两种精度都说；用哪种见下一行
    print("预计用时" + ("" if len(said) == 1 else "：") + "；".join(said))
    if min(totals) > 3600:  # 文件开头的说明里有给 CPU 的缩小命令（v11 起）就给出它
        command = f"python {os.path.basename(__file__)} --"
        smaller = [line.strip() for line in __doc__.splitlines() if line.strip().startswith(command)]
        print(f"注意：这个配置对这台机器（{device}）太大。" + (f"想几分钟跑完，用给 CPU 的缩小命令：\n  {smaller[0]}"
              if smaller else "想快一些，把 batch_size、block_size、n_embed 或 max_iters 改小。"))
        print("也可以就这样跑下去：随时按 Ctrl-C 停下，检查点会保存。", flush=True)
    return seconds


class Progress:  # 训练时计时、打印进度；第一次 Ctrl-C 只做记号（评估中则立刻停下），第二次立刻退出
    def __init__(self, step, device):
        self.first_step, self.device = step, device
        self.stopped = self.evaluating_now = False
        self.train_seconds = self.eval_seconds = 0.0

    def __enter__(self):
        self.start = self.mark = time.time()
        signal.signal(signal.SIGINT, self.ctrl_c)
        return self

    def ctrl_c(self, *_):
        if not self.stopped:
            self.stopped, self.first_press = True, time.time()
            if self.evaluating_now:  # 评估不改动模型，可以立刻打断
                raise KeyboardInterrupt
        elif time.time() - self.first_press > 1:  # 1 秒内重复收到的不算：torchrun 会把同一次 Ctrl-C 再转发给每个进程
            exit_now()

    @contextlib.contextmanager
    def evaluating(self):
        synchronize(self.device)
        now = time.time()
        self.train_seconds += now - self.mark
        self.evaluating_now = True
        try:
            yield
        finally:
            self.evaluating_now = False
            self.mark = time.time()  # 从这里重新计训练时间：评估不算在内
            self.eval_seconds += self.mark - now

    def line(self, step, losses, chars=None):  # chars：开训以来一共训练了几个字（默认每步 batch_size × block_size 个）
        done = step - self.first_step
        chars = done * batch_size * block_size if chars is None else chars  # 第 26 版每步写的词长短不一，自己数
        self.speed = chars / max(self.train_seconds, 1e-9)  # 字/秒，不含评估
        self.elapsed = time.time() - self.start
        eta = fmt_seconds(self.elapsed / done * (max_iters - step)) if done else "?"
        return (f"step {step:>5}/{max_iters} | 训练损失 {losses['train']:.4f} | 验证损失 {losses['val']:.4f} | "
                f"{self.speed:,.0f} 字/秒 | 已用 {fmt_seconds(self.elapsed)} | 还需 {eta}")

    def __exit__(self, kind, *_):
        signal.signal(signal.SIGINT, exit_now)  # 训练结束以后，Ctrl-C 立刻退出
        if kind not in (None, KeyboardInterrupt):
            return False
        total = time.time() - self.start
        if self.stopped:
            print("收到 Ctrl-C：停止训练，保存检查点，再写几首词。")
        print(f"用时 {total:.1f} 秒，其中评估 {self.eval_seconds:.1f} 秒（{self.eval_seconds / max(total, 1e-9):.0%}）")
        return True  # 评估中按的 Ctrl-C 到这里为止


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
    finally:
        if os.path.exists(path + ".tmp"):  # 写到一半被打断：删掉半个文件
            os.remove(path + ".tmp")
    print(f"检查点已保存：{path}（第 {step} 步）")


def read_checkpoint(args, how_to_make_one):
    path = checkpoint_path(args)
    if not os.path.exists(path):
        fail(f"没有检查点 {path}：{how_to_make_one}")
    try:
        with warnings.catch_warnings():  # PyTorch 2.1 读检查点时会多打印一条无害的 TypedStorage 警告
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            return torch.load(path, map_location="cpu", weights_only=True)  # 只读张量和普通数据，不执行文件里的代码
    except Exception:  # noqa: BLE001 坏文件可能抛出各种异常，都换成一行中文
        fail(f"检查点 {path} 读不出来（文件坏了？）")


def load_weights(model, state, what):
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, ValueError):
        fail(f"检查点的模型形状和{what}对不上（检查点里是 {state['hyperparameters']}）")


def load_checkpoint(args, model, optimizer, tokenizer):
    state = read_checkpoint(args, "先不加 --resume 训练一次")
    if state["vocab"] != tokenizer.chars:
        fail(f"检查点的词表和语料 {args.data} 的词表不一样：--data 要和训练时相同")
    load_weights(model, state, "现在的超参数")
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng_state"])  # 连随机数也接上：续训和一口气训完结果相同（CPU 上）
    if state["step"] >= max_iters:  # 已经训够了：训练循环在这一步评估一次就停，不会一直训下去
        print(f"检查点已经训练了 {state['step']} 步，不少于 --max_iters={max_iters}：不再训练，直接写词"
              "（想接着训练，把 --max_iters 调大）")
        globals()["max_iters"] = state["step"]
    else:
        print(f"从检查点 {checkpoint_path(args)} 的第 {state['step']} 步接着训练")
    return state["step"]


def load_for_writing(args, device):  # --sample：模型的超参数和词表都来自检查点，命令行不用再写
    state = read_checkpoint(args, f"先训练一次（python {os.path.basename(__file__)}），训练完会自动保存")
    for name, value in state["hyperparameters"].items():
        if name in WRITING or name not in HYPERPARAMETERS:
            continue
        if name in args.given and globals()[name] != value:
            fail(f"--{name}={globals()[name]} 和检查点里的 {name}={value} 不一样：用 --sample 时模型由检查点决定，去掉这个参数")
        globals()[name] = value
    tokenizer = Tokenizer("".join(state["vocab"]))
    check_prompts(tokenizer, prompts.split(","))
    model = BabyGPT(tokenizer.vocab_size).to(device)
    load_weights(model, state, "这个脚本")
    print(f"从检查点 {checkpoint_path(args)} 读出模型（训练了 {state['step']} 步）")
    return model, tokenizer


if __name__ == "__main__":
    main()
