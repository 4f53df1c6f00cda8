"""五分钟 PyTorch 入门：读懂 babygpt 需要的全部 PyTorch 知识。

运行：python pytorch_5min.py（CPU 上几秒钟）

一共五步：
  1. 张量（tensor）和运算：+、*、@、shape
  2. 模型：继承 nn.Module
  3. 自动求导：loss.backward()
  4. 设备：.to(device)，自动选 CUDA、MPS 或 CPU
  5. 优化器：optimizer.step()
最后把它们合起来：从带噪声的数据里学出 y = 2x + 1。
"""

import torch
from torch import nn

torch.manual_seed(0)  # 固定随机种子：每次运行结果一样

# ---------------- 1. 张量和运算 ----------------
a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # 2 行 2 列
b = torch.ones(2, 2)
print("a.shape =", tuple(a.shape))  # (2, 2)
print("a + b =", (a + b).tolist())  # 逐元素相加
print("a * b =", (a * b).tolist())  # 逐元素相乘
print("a @ b =", (a @ b).tolist())  # 矩阵乘法：(2, 2) @ (2, 2) -> (2, 2)

# ---------------- 2. 模型：nn.Module ----------------
class Line(nn.Module):
    """y = w * x + b，w 和 b 是要学的参数"""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(1))  # nn.Parameter：告诉 PyTorch 这是要学的数
        self.b = nn.Parameter(torch.zeros(1))

    def forward(self, x):  # model(x) 会调用 forward
        return self.w * x + self.b


# ---------------- 3. 自动求导 ----------------
x = torch.tensor(3.0, requires_grad=True)
y = x**2
y.backward()  # 自动算出 dy/dx = 2x
print("d(x²)/dx 在 x=3 处 =", x.grad.item())  # 6.0

# ---------------- 4. 设备：有 GPU 就用 GPU ----------------
if torch.cuda.is_available():
    device = "cuda"  # NVIDIA 显卡
elif torch.backends.mps.is_available():
    device = "mps"  # Apple 芯片
else:
    device = "cpu"
print("设备：", device)


# ---------------- 合起来：学 y = 2x + 1 ----------------
xs = torch.linspace(-1, 1, 200, device=device)  # 数据和模型必须在同一个设备上
ys = 2 * xs + 1 + 0.1 * torch.randn(200, device=device)  # 真实规律加一点噪声

model = Line().to(device)  # .to(device)：把参数搬到设备上
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # 5. 优化器：沿梯度反方向改参数

for step in range(300):
    loss = ((model(xs) - ys) ** 2).mean()  # 均方误差：预测和真实差多少
    optimizer.zero_grad()  # 梯度会累加，所以每步先清零
    loss.backward()  # 3. 算出 loss 对 w、b 的梯度
    optimizer.step()  # 5. w -= lr * w.grad，b 同理
    if step % 100 == 0:
        print(f"step {step:3d} | loss {loss.item():.4f}")

print(f"学到的 w = {model.w.item():.3f}（真实值 2）")
print(f"学到的 b = {model.b.item():.3f}（真实值 1）")
