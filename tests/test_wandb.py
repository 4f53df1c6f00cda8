"""v12 的 wandb：没账号、没网络、stdin 关着也能跑，离线记录里的数字和屏幕上打印的一致。

真的启动 wandb 的测试（离线、在线、连不上）各起一个进程：wandb 的设置在一个进程里只建一次（wandb.setup），
换了 HOME 不一定重读。
不启动它的（disabled、参数不对）在测试进程里跑。"""

import json
import os
import socket
import struct
import time
import zlib

import pytest
from conftest import ROOT, VERSIONS, in_process, run, samples, steps, tiny_args

V12 = ROOT / "babygpt_v12_wandb.py"
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
pytestmark = pytest.mark.skipif(V12 not in VERSIONS, reason="v12 还没有")


def wandb_records(path):
    """读 .wandb 文件（LevelDB 式的日志）：7 字节文件头，之后是 32 KiB 的块，块里是一条条记录。"""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0)
    pos, payload = 7, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # 块尾放不下一个记录头：是填充
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        assert crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))), f"CRC 不对：位置 {pos}"
        pos += 7 + length
        payload = chunk if kind in (FULL, FIRST) else payload + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            yield record


def items(entries):
    return {"/".join(e.nested_key) if e.nested_key else e.key: json.loads(e.value_json) for e in entries}


@pytest.fixture
def clean_env(tmp_path):
    """没有 API key、没有 ~/.netrc、没设 WANDB_MODE：一个从没用过 wandb 的学习者。"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    (tmp_path / "home").mkdir()
    (tmp_path / "wandb_dir").mkdir()
    env.update(HOME=str(tmp_path / "home"), USERPROFILE=str(tmp_path / "home"), WANDB_DIR=str(tmp_path / "wandb_dir"))
    return env


def logged(run_file):
    """离线记录里的 (history, config)：history 按步数分组。"""
    history, config = {}, {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = items(record.history.item)
            history.setdefault(row.get("_step"), {}).update(row)
        elif kind == "config":
            config.update(items(record.config.update))
        elif kind == "run":
            config.update(items(record.run.config.update))
    return history, {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in config.items()}


def test_offline_run_without_account_logs_what_was_printed(clean_env, small_corpus, tmp_path):
    r = run(V12, *tiny_args(V12, max_iters=20), f"--data={small_corpus}", f"--out_dir={tmp_path / 'ckpt'}",
            env=clean_env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "wandb login" in r.stdout and "wandb sync" in r.stdout
    runs = list((tmp_path / "wandb_dir" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    assert f"wandb sync {runs[0].parent}" in r.stdout

    history, config = logged(runs[0])
    printed = steps(r.stdout)
    assert [s for s, _, _ in printed] == [0, 10, 20]
    for step, train, val in printed:
        assert round(history[step]["val_loss"], 4) == val and round(history[step]["train_loss"], 4) == train
        assert history[step]["tokens_per_sec"] >= 0
    # 写出的词记成一张表（prompt, text），表的内容就是屏幕上的词
    table_rows = [row for row in history.values() if row.get("samples/_type") == "table-file"]
    assert len(table_rows) == 1
    table = json.loads((runs[0].parent / "files" / table_rows[0]["samples/path"]).read_text(encoding="utf-8"))
    assert table["columns"] == ["prompt", "text"]
    assert {prompt: text for prompt, text in table["data"]} == samples(r.stdout)
    assert config["n_embed"] == 16 and config["batch_size"] == 4 and config["max_iters"] == 20
    for name in ("block_size", "learning_rate", "n_head", "n_layer", "dropout", "seed", "prompts"):
        assert name in config


@pytest.mark.parametrize("how", ["env", "flag"])
def test_disabled_writes_nothing(how, clean_env, small_corpus, tmp_path):
    extra = ["--wandb_mode=disabled"] if how == "flag" else []
    clean_env["WANDB_MODE"] = "disabled" if how == "env" else "offline"  # 命令行的 --wandb_mode 优先
    r = in_process(V12, *tiny_args(V12, max_iters=10), *extra, f"--data={small_corpus}", f"--out_dir={tmp_path / 'ckpt'}",
                   env=clean_env)
    assert r.returncode == 0, r.stderr
    assert steps(r.stdout)[-1][0] == 10
    assert list((tmp_path / "wandb_dir").iterdir()) == []
    assert "wandb sync" not in r.stdout


def test_online_without_login_is_a_clear_error(clean_env, small_corpus, tmp_path):
    """服务器连得上（这里是本机上一个只接受连接的端口），但没登录：--wandb_mode=online 是一行报错。"""
    with socket.create_server(("127.0.0.1", 0)) as server:
        clean_env["WANDB_BASE_URL"] = f"http://127.0.0.1:{server.getsockname()[1]}"
        r = run(V12, *tiny_args(V12), "--wandb_mode=online", f"--data={small_corpus}", f"--out_dir={tmp_path}",
                env=clean_env, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "wandb login" in r.stderr.strip().splitlines()[-1]


def test_unreachable_server_falls_back_to_offline_and_trains(clean_env, small_corpus, tmp_path):
    """有 API key，但服务器连不上（这里是 127.0.0.1 上没人听的端口）：先试连，连不上就不登录（登录也要问服务器，
    要白等 5 秒），几秒内改成离线，照样训练，记录不丢。"""
    clean_env.update(WANDB_API_KEY="x" * 40, WANDB_BASE_URL="http://127.0.0.1:9")
    began = time.time()
    r = run(V12, *tiny_args(V12, max_iters=20), f"--data={small_corpus}", f"--out_dir={tmp_path / 'ckpt'}",
            env=clean_env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert time.time() - began < 15
    lines = r.stdout.splitlines()
    fallback = next(i for i, line in enumerate(lines) if line.startswith("wandb：连不上服务器，改成离线记录"))
    assert lines[fallback + 1].startswith("wandb：离线记录写在本机") and "wandb sync" in lines[fallback + 1]
    runs = list((tmp_path / "wandb_dir" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    history, _ = logged(runs[0])
    assert [round(history[s]["val_loss"], 4) for s in (0, 10, 20)] == [v for _, _, v in steps(r.stdout)]


def test_bad_wandb_mode_is_one_line(clean_env, small_corpus, tmp_path):
    r = in_process(V12, *tiny_args(V12), "--wandb_mode=sometimes", f"--data={small_corpus}", f"--out_dir={tmp_path}",
                   env=clean_env)
    assert r.returncode == 1 and r.stderr == "错误：--wandb_mode=sometimes 不对：只能是 online、offline 或 disabled\n"
