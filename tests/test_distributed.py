"""Scale-out: sharding without padding, and ``pnag eval`` under torchrun equal to one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pnag.cli import main
from pnag.evaluate.distributed import DistContext, all_reduce_sum, init_distributed, shard_batches

from pnag.nn.supernet import random_supernet

from test_evaluate import ARCH, make_imagefolder

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n, batch, world", [(31, 8, 2), (31, 8, 3), (5, 8, 2), (0, 4, 2), (100, 10, 4)])
def test_shard_batches_partition_without_padding(n, batch, world):
    shards = [shard_batches(n, batch, r, world) for r in range(world)]
    flat = sorted(i for s in shards for b in s for i in b)
    assert flat == list(range(n))
    single = shard_batches(n, batch)
    # every rank's batches are batches of the one-process run (same images per batch)
    assert sorted(tuple(b) for s in shards for b in s) == sorted(tuple(b) for b in single)


def test_single_process_context(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = init_distributed("cpu")
    assert ctx == DistContext() and ctx.is_main and not ctx.distributed
    assert all_reduce_sum(ctx, [3, 4]) == [3, 4]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_torchrun_two_processes_equal_one(tmp_path, capsys, monkeypatch):
    data = make_imagefolder(tmp_path / "imagenet", classes=10, per_class=3)
    state = random_supernet(1.2, seed=5).state_dict()
    state["classifier.linear.bias"][10:] = -1e4  # predictions among the 10 classes: non-trivial counts
    ckpt = tmp_path / "ofa.pth"
    torch.save(state, ckpt)
    common = ["eval", str(data), "--supernet", str(ckpt), "--arch", ARCH, "--resolution", "128",
              "--calib-images", "14", "--calib-batch-size", "5", "--batch-size", "4", "--device", "cpu",
              "--json", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert main([*common, "--workers", "1", "--output", str(tmp_path / "one.json")]) == 0  # with a loader worker
    one = capsys.readouterr()
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "pnag", *common,
                          "--workers", "0", "--output", str(tmp_path / "two.json")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert two.returncode == 0, two.stderr
    r1, r2 = json.loads(one.out), json.loads(two.stdout)  # rank 0 alone prints: one JSON document
    assert r1 == r2
    assert json.loads((tmp_path / "two.json").read_text()) == r1
    assert (r1["images"], r1["skipped"], r1["calib_images"]) == (30, 1, 14)
    assert r1["correct5"] > 0
