"""v13 的 KV 缓存：写出的字和不用缓存时一字不差（远远超出 block_size 也一样）；训练和 v12 完全相同。"""

import pytest
import torch
from conftest import VERSIONS, in_process, samples, steps, tiny_args, tiny_module, version
from versions import number

V12, V13 = version(12), version(13)
WITH_CACHE = [p for p in VERSIONS if number(p) >= 13]  # v13 起的每个版本都有 KV 缓存
pytestmark = pytest.mark.skipif(V13 is None, reason="v13 还没有")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("path", WITH_CACHE, ids=lambda p: p.stem)
def test_greedy_text_is_the_same_with_and_without_the_cache(path, seed):
    module = tiny_module(path)
    torch.manual_seed(seed)
    model = module.BabyGPT(40).eval()
    prompt = torch.randint(40, (2, 3))  # 两段开头一起写
    written = {}
    for kv_cache in (0, 1):
        module.kv_cache = kv_cache
        written[kv_cache] = model.generate(prompt, 5 * module.block_size)  # 写到 block_size 的 5 倍以上
    assert written[0].shape == (2, 3 + 40)
    assert torch.equal(written[0], written[1])


def test_the_cache_holds_each_head_once_and_counts_positions():
    module = tiny_module(V13)
    model = module.BabyGPT(40).eval()
    cache = {}
    with torch.no_grad():
        full, _ = model(torch.arange(6)[None] % 40)
        first, _ = model(torch.arange(5)[None] % 40, cache=cache)
        last, _ = model(torch.tensor([[5]]), cache=cache)  # 只喂第 6 个字，位置接着排
    heads = [m for m in model.modules() if isinstance(m, module.Head)]
    assert cache["length"] == 6 and set(cache) == {"length", *heads} and len(heads) == 4
    assert all(k.shape == (1, 6, 8) and v.shape == (1, 6, 8) for k, v in (cache[h] for h in heads))
    torch.testing.assert_close(last[0, -1], full[0, -1])  # 和整段一起算的最后一个位置一样
    torch.testing.assert_close(first[0], full[0, :5])


def test_training_is_unchanged_and_the_command_line_agrees(small_corpus, tmp_path):
    args = [*tiny_args(V13, max_iters=60, eval_interval=20), f"--data={small_corpus}"]
    trained = {v: in_process(v, *args, f"--out_dir={tmp_path}") for v in (V12, V13)}
    assert all(r.returncode == 0 for r in trained.values()), trained[V13].stderr
    assert steps(trained[V12].stdout) == steps(trained[V13].stdout) and len(steps(trained[V13].stdout)) == 4

    # 命令行：--kv_cache=0 和 1，贪心写 50 个字（block_size 是 16），写出的词一样
    written = [samples(in_process(V13, "--sample", f"--out_dir={tmp_path}", "--temperature=0", "--max_new_tokens=50",
                                  f"--kv_cache={kv}").stdout) for kv in (0, 1)]
    assert written[0] == written[1] and len(written[0]) == 2
    assert all(len(text) == len(prompt) + 50 for prompt, text in written[0].items())
