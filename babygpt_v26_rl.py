"""babygpt v26：强化学习，用尺子当奖励（第 8 章的“接下来”；讲它的第 9 章还在写）

本版新内容
  预训练（v1–v23）学“下一个字是什么”，微调（v24、v25）学“一位词人的下一个字”：都是照着真词猜字。
  第三种训练法不给答案，只给分数：模型自己写，一个程序打分，写得好的多这样写，写得差的少这样写（强化学习）。
  我们的打分程序就是第二把尺子 scripts/form.py：句式、押韵、平仄。每一步（见 practise）：
  1. 每个词牌（rl_tunes）从开头“<词牌> ”起写一组 group_size 首（一起写，用 KV 缓存），写到第一个空行；
  2. 尺子给每首打分，奖励 = 句式、押韵、平仄三个分数的加权和（reward_clause、reward_rhyme、reward_tones）；
  3. 优势 = 奖励 − 这一组的平均（normalize=1 时再除以组里的标准差）：同一个词牌的几首比一比，比平均好的是正数；
     一组的奖励全一样（都好或都差）就没有可学的：跳过，记下跳过了几组；
  4. 损失 = −优势 × 写出的每个字的对数概率，对所有写出的字求平均；反向、走一步。
     写词的正是现在的模型（on-policy），每写一组只更新一次：不用 PPO 的比值裁剪；
  5. kl 大于 0 时再加一项：离基础模型（出发时的模型）越远罚得越多（KL 散度）。
  尺子是 import 进来的（只有这一版 import 项目里的模块）：这一课讲的就是“量格律的尺子变成了奖励”，
  奖励要和 form.py 量出来的分数一模一样，抄一份就可能两边不一样。
  每次评估时再看四个“看守”：验证损失（离基础模型走了多远）、distinct-2（写的词还多不多样）、
  抄了多少（连续 8 个字原样出现在训练集里）、跳过的组几成。奖励在涨、看守却坏了，就是模型钻了尺子的空子。
  group_size=0 就是 v25（微调一位词人）。

运行（每个版本都一样）
  python 本文件                          训练，然后从 --prompts 的开头写词
  python 本文件 --help                   列出所有超参数和默认值
  python 本文件 --sample --interactive   不训练：用存好的检查点写词，自己输入开头
  出发点是一个 v23 的检查点，例如 python scripts/form_curve.py --minutes 30 留下的最后一个；然后：
  python babygpt_v26_rl.py --init_from=checkpoints/form_curve_30/step1575.pt --max_iters=300 --eval_interval=25 --eval_iters=10 --batch_size=32 --learning_rate=1e-3 --min_lr=1e-4 --warmup_iters=10 --dropout=0
  python scripts/form.py --checkpoint checkpoints/babygpt_v26_rl.pt

和上一版比较
  diff -u babygpt_v25_lora.py babygpt_v26_rl.py
"""

import argparse
import contextlib
import copy
import datetime
import math
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
learning_rate = 3e-4  # 最高学习率（升温结束时）：AdamW 用它；Muon 按矩阵的形状换算成同样大小的更新
warmup_iters = 100  # 开头用多少步把学习率从 0 线性升到 learning_rate
min_lr = 3e-5  # 之后按余弦降下来，最后降到这么多（默认是 learning_rate 的十分之一；改了 learning_rate，这个也要跟着改）
grad_clip = 1.0  # 所有梯度合起来的长度（范数）超过它，就等比例缩到它（0 = 不裁剪，只量）
n_embed = 384  # 每个字的向量有多少维
n_head = 6  # 注意力头的个数
n_kv_head = 2  # k、v 的头数（GQA）：每 n_head / n_kv_head 个 q 头共用一份 k、v；等于 n_head 就是普通的多头注意力
n_layer = 6  # 叠几个 Transformer 块
dropout = 0.2  # 训练时随机置零的比例
minutes = 0.0  # 有几分钟：大于 0 时按实测的速度挑模型大小、定步数（见 plan_budget）；0 = 用上面写的大小，训练 max_iters 步
piece_start = 0.5  # 每批里多少比例的文本段从一首词的开头（词牌那一行）切起；其余的照旧从任意位置切
init_from = ""  # 微调：从这个检查点（基础模型）接着训练，只用 poet 的词；空着 = 从头训练
poet = "辛弃疾"  # 微调时用谁的词（有 init_from 时）
lora_rank = 4  # 微调时 LoRA 的秩 r：块里每个矩阵旁边只训练 r 维的一条小路；0 = 所有权重都训练（第 24 版的微调）
# （256 宽时 r = 4 训练 1.5% 的参数，r = 8 是 2.9%：风格分差不多，见 docs/08_finetune.md）
lora_alpha = 16  # LoRA 那条路乘 α / r：换 r 时步子大小不变，学习率不用重调
group_size = 8  # 强化学习（有 init_from 时）：每个词牌一步写几首，一组里比一比；0 = 不做强化学习，像 v25 一样微调
rl_tunes = "浣溪沙,鹧鸪天,菩萨蛮,西江月,减字木兰花,蝶恋花,清平乐,点绛唇"  # 每一步从这些词牌各写一组（尺子认得的八个）
reward_clause = 1.0  # 奖励里句式（字数对的句子几成）的分量
reward_rhyme = 1.0  # 押韵（韵脚押上几成）的分量：句式不对的词没有韵脚可比，记 0，所以先得学会句式
reward_tones = 1.0  # 平仄（定了的位置守住几成）的分量：也是句式对了才有
fresh = 1  # 1 = 奖励再乘以这首词里不重复的字占几成（真词平均 96%）；0 = 不乘：模型会发现翻来覆去写“时”“处”最省事
normalize = 1  # 优势除以组里奖励的标准差（1）或者不除（0）
kl = 0.0  # 离基础模型多远的罚分的系数（KL 散度）；0 = 不罚
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
POSITIVE = ("batch_size", "block_size", "eval_interval", "eval_iters", "learning_rate", "n_embed", "n_head", "n_kv_head",
            "n_layer")


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
FUSED_GQA = "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")  # 这个 PyTorch 的注意力能不能直接做 GQA
class MultiHeadAttention(nn.Module):
    """n_head 个因果自注意力头一起算：每个位置只看它自己和前面的字"""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.num_heads, self.num_kv_heads = num_heads, n_kv_head
        self.qkv = nn.Linear(n_embed, (num_heads + 2 * n_kv_head) * head_size, bias=False)  # 一次算出 n_head 个 q、n_kv_head 个 k 和 v
        self.proj = nn.Linear(num_heads * head_size, n_embed)  # 投影：把各头的结果混合起来
        self.dropout = nn.Dropout(dropout)
        # RoPE：第 i 对数每隔一个位置转 θ_i 弧度；位置 m 转 m·θ_i。预先算好每个位置的 cos、sin（不是参数，不存进检查点）
        theta = 10000 ** (-torch.arange(0, head_size, 2) / head_size)  # (hs/2,)
        angles = torch.outer(torch.arange(block_size).float(), theta)  # (block_size, hs/2)
        # 每个 cos 重复两遍（c0 c0 c1 c1 ……），sin 前一个取负（−s0 s0 −s1 s1 ……）：和 t 的 x0 y0 x1 y1 …… 一一对齐
        self.register_buffer("cos", angles.cos().repeat_interleave(2, dim=-1), persistent=False)  # (block_size, hs)
        self.register_buffer("sin", torch.stack((-angles.sin(), angles.sin()), dim=-1).flatten(-2), persistent=False)

    def rotate(self, t, past):
        """RoPE：把 t 的每一对数 (x, y) 按位置转一个角度，变成 (x·cos − y·sin, x·sin + y·cos)。
        t: (B, nh, T, hs)，位置从 past 数起"""
        cos, sin = self.cos[past:past + t.shape[2]], self.sin[past:past + t.shape[2]]  # (T, hs)
        swapped = t.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # 每一对里换个位置：y0 x0 y1 x1 ……
        # 快：两个乘法、一个加法（小模型上每多一个运算都要多花一次调用的时间）。等于下面三行：
        #   x, y = t[..., 0::2], t[..., 1::2]
        #   torch.stack((x * cos - y * sin, x * sin + y * cos), dim=-1).flatten(-2)   （cos、sin 是 (T, hs/2)）
        return (t * cos + swapped * sin).type_as(t)  # (B, nh, T, hs)：偶数位 x·cos − y·sin，奇数位 y·cos + x·sin

    def forward(self, x, cache=None):
        B, T, C = x.shape  # batch, time, channels = n_embed；用缓存时 T 只是新来的字
        hs = C // self.num_heads  # head_size
        q, k, v = self.qkv(x).split([C, self.num_kv_heads * hs, self.num_kv_heads * hs], dim=2)  # (B, T, C)、(B, T, nkv·hs) × 2
        q = q.view(B, T, self.num_heads, hs).transpose(1, 2)  # (B, nh, T, hs)
        k, v = (t.view(B, T, self.num_kv_heads, hs).transpose(1, 2) for t in (k, v))  # (B, nkv, T, hs)：只有 n_kv_head 份
        past = cache["length"] if cache is not None else 0  # 新来的字排在缓存里的字后面
        q, k = self.rotate(q, past), self.rotate(k, past)  # 只转 q 和 k：它们的点乘只取决于两个字隔了几个位置
        if cache is not None:  # KV 缓存：以前的字的 k、v 存着不重算，接上新来的字的
            if self in cache:
                k = torch.cat((cache[self][0], k), dim=2)  # (B, nkv, S, hs)，S = 以前的字 + 新来的字
                v = torch.cat((cache[self][1], v), dim=2)  # (B, nkv, S, hs)
            cache[self] = (k, v)  # 缓存里只存 n_kv_head 份：小 n_head / n_kv_head 倍
        groups = self.num_heads // self.num_kv_heads  # 每组几个 q 头
        if FUSED_GQA:  # 快：PyTorch 2.5 起，融合的注意力自己让同组的 q 头共用一份 k、v，不用复制
            shared = {"enable_gqa": groups > 1}
        else:  # 把 k、v 复制 groups 份：(B, nh, S, hs)，同组的 q 头用同一份（和上面算的一样，测试比较过）
            k, v, shared = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1), {}
        # 快：融合的注意力（GPU 上是 flash attention），不生成 (T, S) 的权重矩阵。写词时要么整段一起算
        # （T = S，挡住未来），要么只来一个字（T = 1，缓存里的字都在它前面，不用挡）
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout if self.training else 0.0, is_causal=T > 1,
                                             **shared)
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, nh, T, hs) -> (B, T, C)：各头拼起来
        return self.dropout(self.proj(out))  # (B, T, n_embed)


class FeedForward(nn.Module):
    """逐位置的前馈网络（SwiGLU）：w2(silu(w1·x) * w3·x)，w3·x 是门，每一维决定放多少过去"""

    def __init__(self, n_embed):
        super().__init__()
        # 隐藏层为什么是 8/3 倍：三个 n_embed × hidden 的矩阵 = 3·n·(8n/3) = 8n²，正好是原来两个 n × 4n 的矩阵
        hidden = 8 * n_embed // 3
        self.w1 = nn.Linear(n_embed, hidden, bias=False)  # 经过 SiLU 的一路
        self.w3 = nn.Linear(n_embed, hidden, bias=False)  # 门
        self.w2 = nn.Linear(hidden, n_embed, bias=False)  # 投影回 n_embed
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))  # (B, T, hidden) -> (B, T, n_embed)


class RMSNorm(nn.Module):
    """均方根归一化：每个字的向量除以它的均方根，再乘一个学出来的权重；不减均值，没有偏置"""

    def __init__(self, n_embed):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embed))  # 每一维一个缩放，从 1 开始

    def forward(self, x):
        if hasattr(F, "rms_norm"):  # 快：PyTorch 2.4 起有融合的 RMSNorm，算的就是下面两行（测试比较过）
            return F.rms_norm(x, self.weight.shape, self.weight, eps=1e-5)
        # (B, T, n_embed)：除以每个字的均方根（mean 得到 (B, T, 1)）；加 1e-5 防止除以 0
        return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5) * self.weight


class Block(nn.Module):
    """一个 Transformer 块：先交流（注意力），再思考（前馈）"""

    def __init__(self, n_embed, n_head):
        super().__init__()
        self.attention = MultiHeadAttention(n_head, n_embed // n_head)
        self.feed_forward = FeedForward(n_embed)
        self.ln1 = RMSNorm(n_embed)
        self.ln2 = RMSNorm(n_embed)

    def forward(self, x, cache=None):
        x = x + self.attention(self.ln1(x), cache)  # (B, T, n_embed)：残差，捷径直通
        x = x + self.feed_forward(self.ln2(x))  # (B, T, n_embed)
        return x


class BabyGPT(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        if n_embed % n_head:  # 每个头分到 n_embed // n_head 维，必须正好分完
            fail(f"n_embed={n_embed} 必须是 n_head={n_head} 的整数倍")
        if n_head % n_kv_head:  # 每组的 q 头要一样多
            fail(f"n_kv_head={n_kv_head} 必须能整除 n_head={n_head}")
        if dropout >= 1:  # 全部置零，就什么也学不到了
            fail(f"dropout={dropout} 必须小于 1")
        padded = vocab_size + (-vocab_size) % 64  # 快：补到 64 的倍数，矩阵乘法更规整
        self.token_embedding_table = nn.Embedding(padded, n_embed)  # 每个字一个 n_embed 维向量；补的几行永远查不到
        self.blocks = nn.Sequential(*[Block(n_embed, n_head) for _ in range(n_layer)])
        self.ln_f = RMSNorm(n_embed)  # 最后一层的 RMSNorm
        self.vocab_size = vocab_size
        self.lm_head = nn.Linear(n_embed, padded)
        self.lm_head.weight = self.token_embedding_table.weight  # 共用一张表：读进来的字和要打分的字是同一批字
        nn.init.normal_(self.lm_head.weight, std=0.02)  # 从小数开始（nn.Embedding 默认的 N(0, 1) 当打分太大）
        if init_from and lora_rank:  # 第 25 版：读进基础模型、冻住，块里的每个矩阵旁边加 LoRA（见 add_lora）
            add_lora(self)

    def forward(self, idx, targets=None, cache=None):
        B, T = idx.shape  # batch（几段文本），time（每段几个字）
        past = cache.setdefault("length", 0) if cache is not None else 0  # 缓存里已经有几个字
        x = self.token_embedding_table(idx)  # (B, T, n_embed)：这是什么字（没有位置表了）
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
# Newton–Schulz 迭代：把矩阵 G = U S V^T 的奇异值 S 都推到 1 附近，得到约等于 U V^T 的“正交化”矩阵。
# 只做矩阵乘法，不做 SVD：GPU、CPU 上都快。系数 (a, b, c) 来自 Keller Jordan 的 Muon。
# G 是一叠形状一样的矩阵 (k, m, n)（Muon 把各层同样形状的叠在一起）：每个各自正交化，一次批量矩阵乘法算完 k 个
def orthogonalize(G, steps=5, a=3.4445, b=-4.7750, c=2.0315):
    X = (G.mT if G.size(-2) > G.size(-1) else G)  # 转成“矮胖”的 (m, n)，m <= n：X @ X.mT 只有 (m, m)
    X = X.to(torch.bfloat16 if dtype == "bfloat16" else torch.float32)  # 和训练同一种精度：做不了 bf16 的设备（老的 MPS）用 float32
    X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=1e-7)  # 先缩到最大的奇异值不超过 1（每个矩阵各自缩）
    for _ in range(steps):  # 每一轮：奇异值 s -> a·s + b·s³ + c·s⁵，小的很快变大，大的压回 1 附近
        A = X @ X.mT  # (k, m, m)：.mT 只转最后两维
        # 快：baddbmm 把乘法和加法并成一次调用。这两行等于 X = a * X + (b * A + c * A @ A) @ X
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # b·A + c·A·A：(k, m, m)
        X = torch.baddbmm(X, B, X, beta=a)  # a·X + B·X：(k, m, n)
    return (X.mT if G.size(-2) > G.size(-1) else X).to(G.dtype)  # 转回 G 的形状


class Muon(torch.optim.Optimizer):  # 动量照旧攒，但每一步走的是正交化以后的动量。只用在二维的权重矩阵上
    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]  # 这一步没有梯度的参数不动（torch.optim 的优化器都这样）
            # 快：形状一样的矩阵（每层各有一个）叠起来一起正交化。小模型上一个一个算，花在调用上的时间比算的还多
            for shape in dict.fromkeys(p.shape for p in params):
                same, updates = [p for p in params if p.shape == shape], []
                for p in same:
                    buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))  # 梯度的滑动平均（动量）
                    buf.lerp_(p.grad, 1 - group["momentum"])
                    updates.append(p.grad.lerp(buf, group["momentum"]))  # Nesterov 动量：(out, in)
                for p, update in zip(same, orthogonalize(torch.stack(updates)), strict=True):  # 正交化 (k, out, in)
                    p.mul_(1 - group["lr"] * group["weight_decay"])  # 权重衰减，和 AdamW 一样
                    p.add_(update, alpha=-group["lr"] * 0.2 * max(p.shape) ** 0.5)  # 0.2·√max(out, in)：步子和 AdamW 一样大


class Optimizers:  # Muon 和 AdamW 合在一起：对训练循环和检查点来说，就像一个优化器
    def __init__(self, *optimizers):
        self.optimizers = optimizers

    @property
    def param_groups(self):  # 每次现取：load_state_dict（--resume）会换掉优化器里的 param_groups
        return [group for o in self.optimizers for group in o.param_groups]

    def step(self):
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none=True):
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return [o.state_dict() for o in self.optimizers]

    def load_state_dict(self, states):
        for o, state in zip(self.optimizers, states, strict=True):
            o.load_state_dict(state)


def make_optimizer(model, device):
    # 块里的二维权重矩阵交给 Muon；嵌入表、输出层、RMSNorm 的权重还用 AdamW
    matrices = [p for name, p in model.named_parameters() if name.startswith("blocks.") and p.ndim == 2]
    others = [p for name, p in model.named_parameters() if not (name.startswith("blocks.") and p.ndim == 2)]
    try:  # 快：融合的 AdamW，一次更新所有参数（CPU 上要 PyTorch 2.4 起，更老的只在 CUDA 上有）
        adamw = torch.optim.AdamW(others, lr=learning_rate, fused=device in ("cuda", "cpu"))
    except RuntimeError:
        adamw = torch.optim.AdamW(others, lr=learning_rate)
    # Muon 的动量 0.95、权重衰减 0.01：常用的值，衰减和 AdamW 的默认值一样
    muon = [Muon(matrices, {"lr": learning_rate, "momentum": 0.95, "weight_decay": 0.01})] if matrices else []
    return Optimizers(*muon, adamw)  # LoRA（第 25 版）时块里没有要训练的大矩阵：只有 AdamW


# ---------------- 第 23 版：有几分钟，就挑这几分钟里学得最好的大小 ----------------
# 候选的大小 (n_embed, n_layer, n_head, n_kv_head)，都用 batch_size=32、block_size=128（一首词连词牌一般不到 128 字）
SIZES = ((64, 3, 4, 2), (128, 4, 4, 2), (192, 4, 6, 2), (256, 4, 8, 2), (384, 6, 6, 2), (512, 8, 8, 2))
# 损失模型 L(N, D) = E + A / N^α + B / D'^β（Chinchilla 的形式），常数是在 ci.txt 上拟合的（docs/reports/budget.md）。
# N = 块里的参数个数（不算嵌入表），D' = 有效字数：训练集只有 U 个字，第二遍、第三遍看的字越来越不值钱（Muennighoff 等 2023）：
# D' = U + U·R*·(1 − e^(−R/R*))，R = D/U − 1 是多看了几遍
LOSS_E, LOSS_A, LOSS_ALPHA, LOSS_B, LOSS_BETA, REPEAT_DECAY = 2.80, 25.4, 0.25, 843, 0.45, 15
STARTED = time.time()  # --minutes 从这里算起（import torch 之后）


def predicted_loss(params, tokens, unique):
    repeats = max(tokens / unique - 1, 0)
    effective = min(tokens, unique) + unique * REPEAT_DECAY * (1 - math.exp(-repeats / REPEAT_DECAY))
    return LOSS_E + LOSS_A / params ** LOSS_ALPHA + LOSS_B / effective ** LOSS_BETA


def pick_precision(seconds):  # 挑精度（v14 起在 train 里，这一版成了函数：--minutes 的规则也用它）。返回 (精度, 为什么)
    if len(seconds) == 1:  # 只量了一种：就用它
        return next(iter(seconds)), ""
    # 两种都量了：float32 优先（CPU 上每次结果一样），bf16 要明显更快才用
    margin = 1.5  # 同一条命令在 2 核机器上量十次，倍数比中位数高出可达四成多（docs/reports/dtype_noise.md）：差得少时两次会选得不一样
    ratio = seconds["float32"] / seconds["bfloat16"]
    precision = "bfloat16" if ratio > margin else "float32"
    return precision, f"：bf16 快 {ratio:.2f} 倍，{'超过' if ratio > margin else '不到'} {margin} 倍"


def plan_budget(args, device, amps, vocab_size, unique):
    # --minutes：从小到大，每个候选大小真的训练几步量速度，换算成剩下的时间能看多少字，挑预测的验证损失最低的；
    # 再按这个字数定 max_iters（学习率计划跟着拉长）和评估间隔。命令行写明的超参数照用，不改。
    fixed = {"batch_size": 32, "block_size": 128, "eval_iters": 10, "learning_rate": 4e-3, "min_lr": 4e-4}
    deadline = STARTED + minutes * 60 * 0.95  # 留 5% 给存检查点、写词
    measured = []  # 量过的大小：(每步秒数, 11 次评估的秒数, 量它用的秒数, 块里的参数, 精度, 超参数)

    def steps_left(size):  # 按现在剩下的时间能训练几步：评估 11 次（开头和每十分之一），训练前再量一次（announce_time）
        return int((deadline - time.time() - size[1] - size[2]) / size[0])

    def loss(size):  # 预测的验证损失；训练不了 10 步的不算
        steps = steps_left(size)
        return predicted_loss(size[3], steps * batch_size * block_size, unique) if steps >= 10 else math.inf

    with torch.random.fork_rng(devices=[]):  # 量速度用的随机数不算：和直接写明挑中的大小，训练结果一样
        for size in SIZES:
            # 大一号的量起来更久（算它要上一个的两倍）：量完要用掉两成以上的分钟就不量了。机器忙、分钟少时量的时间最不值
            if measured and time.time() + 2 * measured[-1][2] > STARTED + minutes * 60 * 0.2:
                break
            settings = {**fixed, **dict(zip(("n_embed", "n_layer", "n_head", "n_kv_head"), size))}
            settings["dropout"] = 0.1 if size[0] >= 256 else 0.0  # 256 宽起的会背，用 dropout（量速度前就得定：开着它每步慢一成）
            globals().update({name: value for name, value in settings.items() if name not in args.given})
            model, began = BabyGPT(vocab_size).to(device), time.time()
            seconds, evals = measure_time(model, make_optimizer(model, device), 0, device, amps)  # 每种精度都量（见脚手架）
            name = pick_precision(seconds)[0]  # 和训练前挑精度同一个规则：bf16 要快过 1.5 倍才用
            params = sum(p.numel() for name, p in model.named_parameters() if name.startswith("blocks."))
            measured.append((seconds[name], evals[name] * 11, time.time() - began, params, name, settings))
            if min(measured, key=loss) is not measured[-1]:  # 大一号的预测反而更差：再大的只会更差，不用再量
                break
    best = min(measured, key=loss)  # 按量完以后剩下的时间再比一次；都训练不了 10 步时是最小的那个
    step_seconds, evals, took, params, name, settings = best
    steps = steps_left(best)
    if steps < 10:  # 说清楚要几分钟才够：已经用掉的，加上最小的模型评估、再量一次、训练 10 步（这台机器现在这么忙时）
        need = (time.time() - STARTED + evals + took + 10 * step_seconds) / 0.95 / 60
        fail(f"--minutes={minutes:g} 太短：这台机器现在连最小的模型也训练不了 10 步，至少要 --minutes={math.ceil(need * 10) / 10:g}")
    settings.update(max_iters=steps, eval_interval=max(1, steps // 10), warmup_iters=max(1, steps // 30), dtype=name)
    globals().update({k: v for k, v in settings.items() if k not in args.given})
    tokens = max_iters * batch_size * block_size  # 真正训练的字数：命令行写明的 batch_size、block_size、max_iters 照用
    print(f"--minutes={minutes:g}：选 n_embed={n_embed}、n_layer={n_layer}（块里 {params:,} 个参数），{dtype} 实测"
          f" {batch_size * block_size / step_seconds:,.0f} 字/秒，{max_iters} 步看 {tokens / 1e6:.1f}M 字（每个参数"
          f" {tokens / params:.1f} 字，训练集 {tokens / unique:.1f} 遍，dropout {dropout}），"
          f"预测验证损失 {predicted_loss(params, tokens, unique):.2f}")
    return {dtype: amps[dtype]}


# ---------------- 第 24 版：从基础模型出发，只用一位词人的词接着训练 ----------------
def read_base():
    if not os.path.exists(init_from):
        fail(f"没有基础模型 {init_from}：先训练一个（见文件开头的命令）")
    return torch.load(init_from, map_location="cpu", weights_only=True)


def finetune_data(args, text):  # 返回 (基础模型的检查点, 它的分词器, {"train": 他的微调的词, "val": 他留出的词})
    base = read_base()
    shape = ("n_embed", "n_layer", "n_head", "n_kv_head", "block_size")  # 模型的形状来自基础模型
    globals().update({name: base["hyperparameters"][name] for name in shape})
    pieces = text.strip("\n").split("\n\n")  # 一首词：“词牌 作者”一行，再几行正文；词之间空一行
    authors = [piece.partition("\n")[0].rsplit(" ", 1)[-1] for piece in pieces]
    mine = [piece for piece, name in zip(pieces, authors, strict=True) if name == poet]
    if not mine:
        # dict.fromkeys：按第一次出现的顺序去重（set 的顺序每次运行都可能不同）；sorted 不打乱一样多的：先出现的在前
        most = sorted(dict.fromkeys(a for a in authors if a != "无名氏"), key=authors.count, reverse=True)[:10]
        fail(f"语料里没有 {poet} 的词；首数最多的十位：{'、'.join(most)}")
    if len(mine) < 100:
        print(f"注意：{poet} 只有 {len(mine)} 首词：几十步就会背下来，写出的多半是照抄；验证集只有 {len(mine) // 10} 首，损失也不准")
    # 第 10、20……首留出验证；其余的单数号微调，双数号留给第三把尺子的分类器（和 scripts/style.py 一样）
    kept, held = [p for i, p in enumerate(mine, 1) if i % 10 and i % 2], mine[9::10]
    if "prompts" not in args.given:  # 从他最常用的三个词牌写，跟着他的名字（ci.txt 的标题行就是这样）
        tunes = [piece.partition("\n")[0].rsplit(" ", 1)[0] for piece in kept]
        favourite = sorted(dict.fromkeys(tunes), key=tunes.count, reverse=True)[:3]  # 一样多的：先出现的在前，每次都一样
        globals()["prompts"] = ",".join(f"{tune} {poet}" for tune in favourite)
    tokenizer = Tokenizer("".join(base["vocab"]))
    known = lambda ps: [tokenizer.stoi[ch] for ch in "\n\n".join(ps) + "\n\n" if ch in tokenizer.stoi]  # 没见过的字跳过
    print(f"微调：从 {init_from} 出发，{poet} 的 {len(kept)} 首词训练，留出的 {len(held)} 首验证")
    return base, tokenizer, {name: torch.tensor(known(ps), dtype=torch.long) for name, ps in (("train", kept), ("val", held))}


# ---------------- 第 25 版：LoRA：基础模型冻住，只训练块里每个矩阵旁边的一条低秩小路 ----------------
class LoRA(nn.Module):  # LoRA（Hu 等 2021）：冻住的矩阵 W 旁边加一条路，输出从 W·x 变成 W·x + (α/r)·B·A·x
    # A: (r, 输入维)，B: (输出维, r)，r 远小于两边：要训练的只有 r·(输入维 + 输出维) 个数，W 有 输入维·输出维 个

    def __init__(self, linear):
        super().__init__()
        self.A = nn.Parameter(torch.randn(lora_rank, linear.in_features) / linear.in_features ** 0.5)  # 随机的方向
        self.B = nn.Parameter(torch.zeros(linear.out_features, lora_rank))  # 从 0 开始：第 0 步和基础模型一模一样
        self.linear = [linear]  # 放在列表里：W 属于基础模型，不算 LoRA 的一部分
        # linear 每次算完 W·x，PyTorch 就调用这个钩子，它的返回值代替 linear 的输出：加上这条路
        self.hook = linear.register_forward_hook(self.add)

    def add(self, linear, inputs, output):  # 是方法不是 lambda：deepcopy 模型（measure_time）时，副本的钩子连着副本的 A、B
        return output + self(inputs[0])

    def forward(self, x):  # x: (B, T, 输入维)
        return (x @ self.A.T) @ self.B.T * (lora_alpha / lora_rank)  # 先降到 (B, T, r)，再升回 (B, T, 输出维)

    def merge(self):  # 写词前合进 W：W + (α/r)·B·A 还是同样大的矩阵，算出来一样，每个字少走这条路
        self.linear[0].weight += (self.B @ self.A * (lora_alpha / lora_rank)).detach()
        self.hook.remove()


def add_lora(model):
    load_weights(model, read_base(), f"基础模型 {init_from}")
    frozen = sum(p.numel() for p in model.parameters())  # 基础模型有多少个参数
    for module in list(model.modules()):  # 冻住：权重从参数变成不存盘的 buffer：不训练，检查点里也不存（基础模型里有）
        for name, weight in list(module.named_parameters(recurse=False)):
            delattr(module, name)
            module.register_buffer(name, weight.detach(), persistent=False)
    # 块里的矩阵：注意力的 qkv、proj，前馈的 w1、w2、w3
    model.adapters = nn.ModuleList(LoRA(linear) for linear in model.blocks.modules() if isinstance(linear, nn.Linear))
    print(f"LoRA：r = {lora_rank}，基础模型的 {frozen:,} 个参数冻住，要训练的 A、B 只有它的 {sum(p.numel() for p in model.parameters()) / frozen:.1%}")


# ---------------- 第 26 版：强化学习：自己写，尺子打分，好的多写、差的少写 ----------------
def practice_data(args, text):  # 返回 (基础模型的检查点, 它的分词器, {"train": 前 90%, "val": 后 10%}, 尺子)
    base = read_base()
    shape = ("n_embed", "n_layer", "n_head", "n_kv_head", "block_size")  # 模型的形状来自基础模型
    globals().update({name: base["hyperparameters"][name] for name in shape})
    if temperature <= 0:
        fail(f"--temperature={temperature}：强化学习要按概率抽字（温度大于 0），每组的几首才会不一样")
    if top_k:
        fail(f"--top_k={top_k}：强化学习按完整的概率抽字，学的也是这个概率：用 --top_k=0")
    if group_size < 2:
        fail(f"--group_size={group_size}：一组至少 2 首，才有得比（0 = 不做强化学习）")
    sys.path.insert(0, os.path.join(HERE, "scripts"))  # 尺子：scripts/form.py（第二把尺子），一字不改地拿来当奖励
    import form
    train_set, shapes, patterns = form.rules(text)  # 每个词牌要什么：只看训练集的真词（和 form.py 一样）
    tunes = rl_tunes.split(",")
    if unknown := [tune for tune in tunes if tune not in form.TUNES]:
        fail(f"--rl_tunes 里的 {'、'.join(unknown)} 尺子不认得：只能是 {'、'.join(form.TUNES)}")
    if "prompts" not in args.given:  # 训练完从前三个词牌写
        globals()["prompts"] = ",".join(f"{tune} " for tune in tunes[:3])
    tokenizer = Tokenizer("".join(base["vocab"]))
    check_prompts(tokenizer, [f"{tune} " for tune in tunes])
    data = torch.tensor([tokenizer.stoi[ch] for ch in text if ch in tokenizer.stoi], dtype=torch.long)
    n = int(0.9 * len(data))  # 和基础模型一样切：验证集是它没见过的后 10%
    flat = "|".join(body.replace("\n", "") for _, body, _, _ in train_set)  # 抄了多少：训练集里每一段连续 8 个字
    seen = {flat[i:i + 8] for i in range(len(flat) - 7)}

    def judge(tune, written):  # 一首写出的词 -> (奖励, {句式、押韵、平仄……})
        body = form.body_of(written, f"{tune} ")
        piece = form.judge_piece(body, shapes[tune], patterns[tune])
        weights = {"clause": reward_clause, "rhyme": reward_rhyme, "tones": reward_tones}
        reward = sum(w * piece[key] for key, w in weights.items()) / max(sum(weights.values()), 1e-9)
        han = [ch for ch in body if "\u4e00" <= ch <= "\u9fff"]
        piece["fresh"] = len(set(han)) / max(len(han), 1)  # 不重复的字占几成
        return reward * (piece["fresh"] if fresh else 1), piece

    limits = {tune: min(form.max_new_tokens(train_set, tune), block_size - len(tune) - 1) for tune in tunes}
    yardstick = {"tunes": tunes, "judge": judge, "limits": limits, "seen": seen, "body_of": form.body_of}
    return base, tokenizer, {"train": data[:n], "val": data[n:]}, yardstick


def draw(logits):
    """按概率抽一个字，和 pick_next 抽的一样（温度照用，不用 top_k）。logits: (B, vocab_size) -> (B, 1)
    快：每行只要一个 0 到 1 之间的随机数 u，挑累计概率第一个超过 u 的字。torch.multinomial 给词表里每个字
    都生成一个随机数（6,000 多个），写一批词的时间有三分之一花在这里"""
    cumulative = F.softmax(logits.float() / temperature, dim=-1).cumsum(dim=-1)  # (B, vocab_size)，最后一个约等于 1
    u = torch.rand(len(logits), 1, device=logits.device) * cumulative[:, -1:]  # (B, 1)
    return torch.searchsorted(cumulative, u, right=True).clamp(max=logits.shape[-1] - 1)  # (B, 1)


@torch.no_grad()
def write_group(model, prompts, limit, newline, device):
    """从几个一样长的开头一起写，每首写到第一个空行（或 limit 个字）。返回 (开头的个数, T) 的字，T 是最长的那首。"""
    model.eval()
    idx = torch.tensor(prompts, device=device)  # (B, 开头的字数)
    cache = {}
    logits, _ = model(idx, cache=cache)  # 开头整段算一次，以后每次只算新来的一个字（KV 缓存）
    ended = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    for _ in range(limit):
        idx = torch.cat((idx, draw(logits[:, -1, :])), dim=1)  # (B, T+1)
        ended |= (idx[:, -1] == newline) & (idx[:, -2] == newline)  # 连着两个换行：这首写完了
        if ended.all():
            break
        logits, _ = model(idx[:, -1:], cache=cache)  # (B, 1, vocab_size)
    model.train()
    return idx


def log_probs(model, idx):
    """每个字在它前面的字之后被写出的对数概率。idx: (B, T) -> (B, T-1)，第 t 个是 idx[:, t+1] 的"""
    logits, _ = model(idx[:, :-1])  # (B, T-1, vocab_size)
    return F.log_softmax(logits.float() / temperature, dim=-1).gather(-1, idx[:, 1:, None]).squeeze(-1)  # 按写词时的温度


def write_and_score(model, tokenizer, yardstick, device):
    """每个词牌写一组。返回 (字 (B, T)，要学的位置 (B, T-1)，每首的奖励 (B,)，每首的分数，每组从第几首到第几首)"""
    newline, tunes = tokenizer.stoi["\n"], yardstick["tunes"]
    rows, rewards, pieces, groups = [], [], [], []
    lengths = sorted({len(tune) for tune in tunes})  # 快：开头一样长的词牌一起写（浣溪沙、鹧鸪天……一批，减字木兰花一批）
    for same in ([tune for tune in tunes if len(tune) == length] for length in lengths):
        prompts = [tokenizer.encode(f"{tune} ") for tune in same for _ in range(group_size)]
        written = write_group(model, prompts, max(yardstick["limits"][tune] for tune in same), newline, device).tolist()
        for i, tune in enumerate(same):
            groups.append((len(rows), len(rows) + group_size))
            for row in written[i * group_size:(i + 1) * group_size]:
                start = len(tune) + 1
                row = row[:start + yardstick["limits"][tune]]  # 这个词牌最多写这么多字
                end = tokenizer.decode(row).find("\n\n", start)  # 第一个空行以后的字不算：那是下一首了
                row = row[:end + 2] if end >= 0 else row
                reward, piece = yardstick["judge"](tune, tokenizer.decode(row))
                rows.append((start, row))
                rewards.append(reward)
                pieces.append({**piece, "tune": tune, "text": tokenizer.decode(row)})
    longest = max(len(row) for _, row in rows)
    idx = torch.tensor([row + [newline] * (longest - len(row)) for _, row in rows], device=device)  # (B, T)：短的补上换行
    mask = torch.zeros(len(rows), longest - 1, device=device)  # (B, T-1)：模型写的字是 1；开头和补上的是 0
    for b, (start, row) in enumerate(rows):
        mask[b, start - 1:len(row) - 1] = 1
    return idx, mask, torch.tensor(rewards), pieces, groups


def advantages(rewards, groups):
    """优势 = 奖励 − 组里的平均（normalize=1 时再除以组里的标准差）。一组奖励全一样：这组的优势都是 0，跳过。"""
    found, skipped = torch.zeros_like(rewards), 0
    for start, end in groups:
        group = rewards[start:end]
        if group.max() - group.min() < 1e-6:  # 没有谁比谁好：学不到东西
            skipped += 1
            continue
        found[start:end] = (group - group.mean()) / (group.std() if normalize else 1)  # 组里的平均当基线
    return found, skipped


def practise(model, reference, tokenizer, yardstick, device, amp):
    """强化学习的一步（不含优化器那一步）：写、打分、算损失、反向。返回这一步的数。"""
    with amp:
        idx, mask, rewards, _, groups = write_and_score(model, tokenizer, yardstick, device)
    advantage, skipped = advantages(rewards, groups)
    advantage = advantage.to(device)
    model.eval()  # 不用 dropout：求梯度的概率正是刚才写词时的概率
    with amp:
        mine = log_probs(model, idx)  # (B, T-1)
    # REINFORCE：优势大于 0 的词，把它的每个字的概率往上推；小于 0 的往下压。对所有写出的字求平均
    loss = -(advantage[:, None] * mine * mask).sum() / mask.sum()
    if kl:  # 离基础模型越远罚得越多（见 divergence）
        loss = loss + kl * divergence(reference, idx, mine, mask)
    loss.backward()
    model.train()
    return {"reward": rewards.mean().item(), "skipped": skipped / len(groups), "chars": int(mask.sum().item())}


def divergence(reference, idx, mine, mask):
    """KL(现在的模型 ‖ 基础模型) 的 k3 估计 e^(r−m) − (r−m) − 1（总是 ≥ 0，期望正是 KL），对写出的字求平均。
    r、m：基础模型、现在的模型写出这些字的对数概率 (B, T-1)；梯度只经过 m"""
    with torch.no_grad():
        gap = log_probs(reference, idx) - mine  # r − m
    gap = gap + mine.detach() - mine  # 值不变，对 m 求导是 −1
    return ((gap.exp() - gap - 1) * mask).sum() / mask.sum()


@torch.no_grad()
def guards(model, reference, tokenizer, yardstick, device):
    """评估时：每个词牌写一组（种子固定，不动训练用的随机数），量奖励、三个分数和四个看守。"""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        idx, mask, rewards, pieces, _ = write_and_score(model, tokenizer, yardstick, device)
    model.eval()
    found = {"reward": rewards.mean().item(), "kl": divergence(reference, idx, log_probs(model, idx), mask).item()}
    model.train()
    for key in ("exact", "rhyme", "tones", "full"):
        found[key] = sum(p[key] for p in pieces) / len(pieces)
    bodies = [yardstick["body_of"](p["text"], f"{p['tune']} ").replace("\n", "") for p in pieces]
    pairs = [body[i:i + 2] for body in bodies for i in range(len(body) - 1)]
    found["distinct"] = len(set(pairs)) / max(len(pairs), 1)  # distinct-2：两个相邻的字，不重样的几成
    runs = [body[i:i + 8] for body in bodies for i in range(len(body) - 7)]
    found["copied"] = sum(run in yardstick["seen"] for run in runs) / max(len(runs), 1)  # 连续 8 个字在训练集里
    found["example"] = max(pieces, key=lambda p: (p["full"], p["rhyme"] + p["tones"], p["clause"]))["text"]
    return found


def get_lr(step):
    """第 step 步的学习率：先线性升温 warmup_iters 步，再沿余弦曲线从 learning_rate 降到 min_lr（在 max_iters 步降完）。"""
    if step < warmup_iters:  # 刚开始参数是随机的，梯度又大又乱：步子先小后大
        return learning_rate * (step + 1) / warmup_iters
    progress = min(1.0, (step - warmup_iters) / max(1, max_iters - warmup_iters))  # 升温以后走了几成：0 -> 1
    return min_lr + (learning_rate - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))  # 1 -> 0 的半个余弦


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
    practising = bool(init_from and group_size)  # 第 26 版：强化学习
    if practising:  # 整个语料照旧切成训练集、验证集：验证损失看模型离基础模型走了多远；还有尺子（见 practice_data）
        base, tokenizer, splits, yardstick = practice_data(args, text)
        splits, n = {name: d.to(device) for name, d in splits.items()}, len(splits["train"])
    elif init_from:  # 第 24 版：微调，用基础模型的词表和这位词人的词（整个语料不用编码）
        base, tokenizer, splits = finetune_data(args, text)
        splits, n = {name: d.to(device) for name, d in splits.items()}, len(splits["train"])
    else:
        tokenizer = Tokenizer(text)
        data = torch.tensor(tokenizer.encode(text), dtype=torch.long, device=device)
        n = int(0.9 * len(data))  # 前 90% 训练，后 10% 验证
        splits = {"train": data[:n], "val": data[n:]}
    check_prompts(tokenizer, prompts.split(","))
    amps = {name: torch.autocast(device, dtype=torch.bfloat16) if name == "bfloat16" else contextlib.nullcontext()
            for name in pick_dtype(device, args)}  # 快：bf16 混合精度（float32 时不建 autocast，见下）
    if minutes:  # 第 23 版：按分钟数挑大小、定步数
        if rank == 0:  # 只有 0 号进程量、挑：每个进程量得不一样，各挑各的，大小和步数就对不上了
            amps = plan_budget(args, device, amps, tokenizer.vocab_size, n)
        if world_size > 1:  # 其他进程照用 0 号进程挑的超参数和精度
            plan = [{name: globals()[name] for name in HYPERPARAMETERS}]
            dist.broadcast_object_list(plan, src=0)
            globals().update(plan[0])
            amps = {dtype: amps[dtype]}
    check_length(splits)
    # 评估每次都用同一组批次，前后的损失才能直接比较
    generator = torch.Generator().manual_seed(seed)
    eval_offsets = {name: torch.randint(len(d) - block_size, (eval_iters, batch_size), generator=generator)
                    for name, d in splits.items()}

    model = BabyGPT(tokenizer.vocab_size).to(device)
    if init_from and not lora_rank:  # 基础模型的权重：从它学会的一切出发（优化器从头来；LoRA 的见 add_lora）
        load_weights(model, base, f"基础模型 {init_from}")
    reference = copy.deepcopy(model).eval() if practising else None  # 第 26 版：出发时的模型留一份，量走了多远（KL）
    if practising and world_size > 1:
        fail("第 26 版的强化学习只用一个进程：用 python 运行，不用 torchrun")
    optimizer = make_optimizer(model, device)
    # 词和词之间空一行：空行后面就是一首词的开头。语料里没有换行时用 -1（哪个字也不是）：没有开头可切，照常训练
    newline, train_data = tokenizer.stoi.get("\n", -1), splits["train"].cpu()
    starts = ((train_data[:-2] == newline) & (train_data[1:-1] == newline)).nonzero().flatten() + 2
    starts = starts[starts < len(train_data) - block_size]  # 每首词开头的位置
    print(f"语料 {sum(len(d) for d in splits.values()):,} 字，词表 {tokenizer.vocab_size:,} 字；要训练的模型参数 {sum(p.numel() for p in model.parameters()):,} 个")
    step = load_checkpoint(args, model, optimizer, tokenizer) if args.resume else 0
    torch.backends.cuda.matmul.allow_tf32 = True  # 快：GPU 上 float32 矩阵乘法用 TF32
    # 老 PyTorch 在 MPS 上连 enabled=False 的 autocast 都建不了：float32 时不建 autocast
    seconds = announce_time(model, optimizer, step, device, amps)  # 先量一量要多久（每种精度都量）：配置对这台机器太大时马上说
    if world_size > 1:  # 每个进程量得不一样：都用 0 号进程量的，大家选同一种精度
        shared = [seconds]
        dist.broadcast_object_list(shared, src=0)
        seconds = shared[0]
    if compile not in ("auto", "0", "1"):
        fail(f"--compile={compile} 不对：只能是 auto、0 或 1")
    use_compile = compile == "1" or (compile == "auto" and device == "cuda")
    measured = "、".join(f"{name} {batch_size * block_size / s:,.0f} 字/秒" for name, s in seconds.items())
    precision, why = pick_precision(seconds)  # 第 23 版：和 --minutes 的规则同一个函数
    why = "：续训，用检查点训练时的精度" if args.resume and dtype == "auto" else why
    globals()["dtype"] = precision  # 检查点里记下真正用的精度：--resume 接着用它，续训才和一口气训完一样
    print(f"加速：精度 {precision}（实测 {measured}{why}），torch.compile {'开' if use_compile else '关'}")
    if practising:  # 第 26 版：上面是按“猜下一个字”的一步估计的
        print(f"强化学习：每一步 {len(yardstick['tunes'])} 个词牌各写 {group_size} 首、打分、学一次；先要写词，"
              "比上面估计的慢：实际用时看每次评估打印的“已用”和“还需”")
    amp = amps[precision]
    fast_model = compiled(model, device, amp) if use_compile else model  # 和 model 是同一份参数
    # DDP：反向传播时把各进程的梯度求平均。buffer（冻住的基础模型、RoPE 的 cos、sin）各进程都一样、从来不变：
    # 不用每次前向都从 0 号进程广播一遍（256 宽的基础模型每步约 17 MB）
    train_model = DDP(fast_model, broadcast_buffers=False) if world_size > 1 else fast_model
    share = batch_size // world_size  # 每个进程算多少段
    synced = None  # 最后一次和其他进程对齐是在第几步
    grad_norm = None  # 上一步裁剪前的梯度范数（第 0 步、刚续训时还没走过一步：打印“—”）
    chars, skipped = 0, []  # 第 26 版：一共写了（也训练了）几个字；上次评估以来每一步跳过的组几成

    with Progress(step, device) as progress:  # 计时，接住 Ctrl-C（见脚手架）
        while True:  # Ctrl-C 只做个记号：这一步做完，所有进程一起停，检查点才完整
            if rank == 0 and (step % eval_interval == 0 or step == max_iters):  # 只有 0 号进程评估、打印
                with progress.evaluating(), amp:  # 评估不算进训练速度；评估中按 Ctrl-C 会立刻停下
                    losses = estimate_loss(fast_model, splits, eval_offsets)
                    watch = guards(model, reference, tokenizer, yardstick, device) if practising else {}
                norm = "—" if grad_norm is None else f"{grad_norm:.2f}"
                line = progress.line(step, losses, chars if practising else None)
                if practising:  # 第 26 版：奖励和它的几个分数，四个看守
                    watch["skipped"] = sum(skipped) / max(len(skipped), 1)
                    line += (f" | 奖励 {watch['reward']:.3f}（合律 {watch['exact']:.0%}，押韵 {watch['rhyme']:.0%}，"
                             f"平仄 {watch['tones']:.0%}，全合 {watch['full']:.0%}） | distinct-2 {watch['distinct']:.1%} | "
                             f"抄 {watch['copied']:.1%} | 跳过 {watch['skipped']:.0%} | KL {watch['kl']:.4f}")
                    skipped = []
                print(f"{line} | 学习率 {get_lr(step):.2e} | 梯度范数 {norm}", flush=True)
                wandb.log({"train_loss": losses["train"], "val_loss": losses["val"], "tokens_per_sec": progress.speed,
                           "lr": get_lr(step), "grad_norm": None if grad_norm is None else grad_norm.item(),
                           **{k: v for k, v in watch.items() if k != "example"}}, step)
                if minutes and 0 < step < max_iters:  # 每次评估都存检查点：看得到词的格律怎样一点点学出来（见 docs/07_minutes.md）
                    save_checkpoint(args, model, optimizer, tokenizer, step)
            if world_size > 1:  # 谁按了 Ctrl-C，大家在同一步一起停（少了一个进程，其他的会一直等它）
                stop = torch.tensor([float(progress.stopped)], device=device)
                dist.all_reduce(stop, op=dist.ReduceOp.MAX)
                progress.stopped, synced = bool(stop), step
            if step == max_iters or progress.stopped:
                break
            for group in optimizer.param_groups:  # 这一步的学习率（见 get_lr）
                group["lr"] = get_lr(step)
            optimizer.zero_grad(set_to_none=True)
            if practising:  # 第 26 版：这一步不猜语料的下一个字：自己写一组组词，尺子打分，按优势反向（见 practise）
                done = practise(model, reference, tokenizer, yardstick, device, amp)
                chars, skipped = chars + done["chars"], skipped + [done["skipped"]]
            else:
                offsets = torch.randint(len(splits["train"]) - block_size, (batch_size,))  # 全局的 batch：每个进程抽得一样
                if piece_start and len(starts):  # 一部分段从一首词的开头切起：写词时也是从词牌那一行写起（见 docs/reports/budget.md）
                    chosen = torch.rand(batch_size) < piece_start
                    offsets[chosen] = starts[torch.randint(len(starts), (int(chosen.sum()),))]
                parts = offsets[rank * share:(rank + 1) * share].split(micro_batch_size or share)  # 我那一份，切成小批
                for i, part in enumerate(parts):
                    if world_size > 1:  # 梯度累积：只在最后一个小批反向传播时同步梯度
                        train_model.require_backward_grad_sync = i == len(parts) - 1
                    xb, yb = get_batch(splits["train"], part)  # (b, T), (b, T)
                    with amp:
                        _, loss = train_model(xb, yb)  # 前向：算出这个小批的损失
                    (loss * len(part) / share).backward()  # 反向：按小批的大小加权，合起来是我这一份的平均
            # 梯度裁剪：把所有参数的梯度看成一个长向量，长度超过 grad_clip 就整体缩短，方向不变；返回缩短前的长度
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
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
            if init_from and "prompts" not in args.given:  # 第 24 版：微调过的模型和训练完时一样，从他的词牌写（检查点里记着）
                globals()["prompts"] = read_checkpoint(args, "")["hyperparameters"]["prompts"]
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
        for adapter in getattr(model, "adapters", []):  # 第 25 版：LoRA 合进权重再写词
            adapter.merge()
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
