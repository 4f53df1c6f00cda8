"""v26 强化学习：按优势更新真的让奖励变高（一个玩具奖励）；奖励全一样的组跳过；第 0 步 KL 是 0；
抽字和 pick_next 抽的是同一个分布；停下再 --resume 和一口气跑完一样；奖励就是 scripts/form.py 的分数；
不认识的词牌、一组不到 2 首、没有基础模型都是一行说明。"""

import argparse
import contextlib
import copy

import form
import pytest
import torch
from conftest import (
    in_process,
    load,
    one_line_error,
    samples,
    steps,
    stopping_at,
    tiny_args,
    trained_checkpoint,
    version,
)

V23, V26 = version(23), version(26)
pytestmark = pytest.mark.skipif(V26 is None, reason="v26 还没有")


@pytest.fixture(scope="module")
def base(tmp_path_factory, small_corpus):
    """小语料上训练 30 步的 v23（块长 48：写得下一小段词）：强化学习的出发点。"""
    return trained_checkpoint(tmp_path_factory.mktemp("base"), V23, small_corpus, max_iters=30, n_layer=1, n_kv_head=1,
                              block_size=48)


def toy(**settings):
    """很小的 v26，词表只有几个字，从随机的权重开始。"""
    module = load(V26)
    vars(module).update({"block_size": 16, "n_embed": 16, "n_head": 2, "n_kv_head": 1, "n_layer": 1, "dropout": 0.0,
                         "temperature": 1.0, "top_k": 0, "group_size": 8, "normalize": 1, "kl": 0.0,
                         "learning_rate": 1e-2, "init_from": "", **settings})
    tokenizer = module.Tokenizer("甲乙丙丁戊，。\n ")
    torch.manual_seed(0)
    return module, module.BabyGPT(tokenizer.vocab_size), tokenizer


def test_the_update_raises_a_toy_reward():
    """玩具奖励：开头以后第一行正好 3 个字得 1 分，差一个字扣 0.25。几十步以后，平均奖励明显变高。"""
    module, model, tokenizer = toy()

    def judge(tune, written):
        first = written[len(tune) + 1:].split("\n")[0]
        return max(0.0, 1 - 0.25 * abs(len(first) - 3)), {}
    yardstick = {"tunes": ["甲", "乙"], "judge": judge, "limits": {"甲": 10, "乙": 10}}
    optimizer = module.make_optimizer(model, "cpu")
    rewards = []
    for _ in range(40):
        optimizer.zero_grad(set_to_none=True)
        rewards.append(module.practise(model, None, tokenizer, yardstick, "cpu", contextlib.nullcontext())["reward"])
        optimizer.step()
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    assert last > first + 0.25 and last > 0.7, (first, last)


def test_advantages_are_against_the_group_mean_and_equal_groups_are_skipped():
    module = load(V26)
    rewards = torch.tensor([0.5, 0.5, 0.5, 0.0, 1.0, 0.5])
    module.normalize = 0
    found, skipped = module.advantages(rewards, [(0, 3), (3, 6)])
    assert skipped == 1 and found.tolist() == [0.0, 0.0, 0.0, -0.5, 0.5, 0.0]
    module.normalize = 1
    found, skipped = module.advantages(rewards, [(0, 3), (3, 6)])
    assert skipped == 1 and found[3:].tolist() == pytest.approx([-1.0, 1.0, 0.0])  # 除以组里的标准差 0.5


def test_writing_stops_at_the_blank_line_and_only_written_characters_are_learned():
    module, model, tokenizer = toy()
    pieces = []
    yardstick = {"tunes": ["甲", "乙丙"], "judge": lambda tune, written: (pieces.append((tune, written)) or 0.0, {}),
                 "limits": {"甲": 12, "乙丙": 5}}
    idx, mask, rewards, _, groups = module.write_and_score(model, tokenizer, yardstick, "cpu")
    assert groups == [(0, 8), (8, 16)] and rewards.shape == (16,)
    for b, (tune, written) in enumerate(pieces):
        assert written.startswith(f"{tune} ")
        body = written[len(tune) + 1:]
        assert "\n\n" not in body[:-2] and len(body) <= yardstick["limits"][tune]  # 第一个空行或字数到了就停
        assert int(mask[b].sum()) == len(body)  # 要学的正是模型写的字：不含开头和补上的
        assert tokenizer.decode(idx[b, :len(written)].tolist()) == written


def test_draw_samples_from_the_same_distribution_as_pick_next():
    module = load(V26)
    module.temperature, module.top_k = 0.7, 0
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0]]).expand(40000, 4)
    torch.manual_seed(0)
    counts = torch.bincount(module.draw(logits).flatten(), minlength=4) / 40000
    assert counts.tolist() == pytest.approx(torch.softmax(logits[0] / 0.7, -1).tolist(), abs=0.01)


def test_kl_is_zero_at_step_0_and_grows_when_the_model_moves():
    module, model, tokenizer = toy(kl=0.5)
    reference = copy.deepcopy(model).eval()
    yardstick = {"tunes": ["甲"], "judge": lambda tune, written: (len(written) / 10, {}), "limits": {"甲": 10}}
    idx, mask, *_ = module.write_and_score(model, tokenizer, yardstick, "cpu")
    assert module.divergence(reference, idx, module.log_probs(model, idx), mask).item() == 0.0
    optimizer = module.make_optimizer(model, "cpu")
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        module.practise(model, reference, tokenizer, yardstick, "cpu", contextlib.nullcontext())
        optimizer.step()
    assert module.divergence(reference, idx, module.log_probs(model, idx), mask).item() > 1e-4


def rl_args(base, corpus, out, **overrides):
    settings = {"max_iters": 4, "eval_interval": 2, "batch_size": 4, "group_size": 3, "rl_tunes": "浣溪沙,菩萨蛮",
                "learning_rate": 3e-3, "min_lr": 3e-4, **overrides}
    return [*tiny_args(V26, **settings), f"--data={corpus}", f"--out_dir={out}", f"--init_from={base}", "--dropout=0"]


def test_rl_from_a_base_prints_its_guards_and_resumes_like_a_straight_run(base, small_corpus, tmp_path, monkeypatch):
    straight = in_process(V26, *rl_args(base, small_corpus, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    lines = [line for line in straight.stdout.splitlines() if line.startswith("step")]
    assert len(lines) == 3 and all("奖励" in line and "distinct-2" in line and "抄" in line and "跳过" in line
                                   for line in lines)
    assert "KL 0.0000" in lines[0] and "0 字/秒" in lines[0]
    assert list(samples(straight.stdout)) == ["浣溪沙 ", "菩萨蛮 "]  # 训练完从前几个词牌写
    first = load(V26)
    monkeypatch.setattr(first, "Progress", stopping_at(first, 2))  # 第 2 步像按了 Ctrl-C：存检查点
    stopped = in_process(V26, *rl_args(base, small_corpus, tmp_path / "split"), module=first)
    assert stopped.returncode == 0 and "收到 Ctrl-C" in stopped.stdout
    assert torch.load(tmp_path / "split" / f"{V26.stem}.pt", weights_only=True)["step"] == 2
    resumed = in_process(V26, *rl_args(base, small_corpus, tmp_path / "split"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert steps(resumed.stdout)[-1] == steps(straight.stdout)[-1]
    assert lines[-1].split("| 奖励")[1] == [line for line in resumed.stdout.splitlines()
                                          if line.startswith("step")][-1].split("| 奖励")[1]


def test_the_reward_is_the_form_yardsticks_score(base, small_corpus):
    """奖励 = form.py 给这首词的句式、押韵、平仄三个分数的加权平均（用的就是 form.py 的代码），再乘不重复的字占几成。"""
    text = small_corpus.read_text(encoding="utf-8")
    module = load(V26)
    vars(module).update(init_from=str(base), reward_clause=2.0, reward_rhyme=1.0, reward_tones=1.0)

    *_, yardstick = module.practice_data(argparse.Namespace(given=set()), text)
    _, shapes, patterns = form.rules(text)
    real = next(body for tune, body, _, _ in form.split(text)[0] if tune == "浣溪沙" and form.shape(body) in shapes[tune])
    reward, piece = yardstick["judge"]("浣溪沙", f"浣溪沙 某人\n{real}\n\n")
    expected = form.judge_piece(real, shapes["浣溪沙"], patterns["浣溪沙"])
    assert {key: piece[key] for key in expected} == expected and piece["exact"] == 1
    han = [ch for ch in real if "\u4e00" <= ch <= "\u9fff"]
    assert piece["fresh"] == len(set(han)) / len(han) < 1  # 这首有重复的字
    assert reward == pytest.approx((2 * expected["clause"] + expected["rhyme"] + expected["tones"]) / 4 * piece["fresh"])
    module.fresh = 0
    assert yardstick["judge"]("浣溪沙", f"浣溪沙 某人\n{real}\n\n")[0] == pytest.approx(reward / piece["fresh"])


@pytest.mark.parametrize(("flag", "words"), [("--rl_tunes=浣溪沙,沁园春", ("沁园春", "尺子不认得")),
                                             ("--group_size=1", ("group_size", "至少 2")),
                                             ("--top_k=5", ("top_k",)),
                                             ("--temperature=0", ("temperature",))])
def test_bad_rl_settings_are_one_line(base, small_corpus, tmp_path, flag, words):
    one_line_error(in_process(V26, *rl_args(base, small_corpus, tmp_path), flag), 1, *words)


def test_a_missing_base_is_one_line(small_corpus, tmp_path):
    one_line_error(in_process(V26, *rl_args(tmp_path / "nope.pt", small_corpus, tmp_path)), 1, "没有基础模型")
