"""``pnag collect --accuracy supernet:CKPT --imagenet DIR``, in one process and under torchrun (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pnag.cli import main
from pnag.nn.supernet import random_supernet

from test_distributed import _free_port
from test_evaluate import make_imagefolder

ROOT = Path(__file__).resolve().parents[1]
N_CLASSES = 4


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("imagenet"), classes=N_CLASSES, per_class=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """Random width-1.0 supernet weights whose logits favour the test classes (accuracies not all 0)."""
    state = random_supernet(1.0, seed=7).state_dict()
    state["classifier.linear.bias"][N_CLASSES:] = -1e4
    path = tmp_path_factory.mktemp("ckpt") / "ofa_w10.pth"
    torch.save(state, path)
    return path


def _args(imagenet: Path, ckpt: Path, out: Path, samples: int = 2) -> list[str]:
    return ["collect", "--space", "mbv3", "--samples", str(samples), "--seed", "0", "--width", "1.0",
            "--resolution", "128", "--accuracy", f"supernet:{ckpt}", "--imagenet", str(imagenet),
            "--calib-images", "4", "--batch-size", "3", "--workers", "0", "--device", "cpu",
            "--out", str(out), "--no-progress"]


def _records(path: Path) -> list[dict]:
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["pnag_collect"] == 1 and lines[0]["accuracy"].startswith("supernet:")
    return lines[1:]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "pnag", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_collect_supernet_one_process_equals_torchrun(imagenet, checkpoint, tmp_path, capsys, no_torchrun_env):
    one = tmp_path / "one.jsonl"
    assert main(_args(imagenet, checkpoint, one)) == 0
    assert "2 distinct records (0 already there, 2 added)" in capsys.readouterr().out
    recs = _records(one)
    assert len(recs) == 2 and len({json.dumps(r["arch"], sort_keys=True) for r in recs}) == 2
    for r in recs:
        acc = r["accuracy"]
        assert acc["unit"] == "%" and 0.0 <= acc["value"] <= 100.0
        assert "imagenet-val" in acc["measured_on"] and "calibrated on 4 train images" in acc["measured_on"]
    # 8 readable val images (one corrupt, skipped): top-1 is a multiple of 12.5 %
    assert all(r["accuracy"]["value"] % 12.5 == 0 for r in recs)
    assert any(r["accuracy"]["value"] > 0 for r in recs)  # the biased classifier gets some right

    # the same command under torchrun, 2 ranks: the same archs and accuracies, written once (rank 0)
    two = tmp_path / "two.jsonl"
    first = _torchrun(_args(imagenet, checkpoint, two, samples=1))  # header + 1 record under torchrun
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("distinct records") == 1  # rank 0 alone prints
    assert len(_records(two)) == 1
    resumed = _torchrun(_args(imagenet, checkpoint, two))  # resume to 2 under torchrun
    assert resumed.returncode == 0, resumed.stderr
    assert "2 distinct records (1 already there, 1 added)" in resumed.stdout
    assert resumed.stdout.count("distinct records") == 1
    assert _records(two) == recs  # exactly N records: none repeated by rank 1


def test_collect_supernet_needs_imagenet(tmp_path, capsys, no_torchrun_env):
    out = tmp_path / "c.jsonl"
    args = ["collect", "--samples", "1", "--accuracy", "supernet:random", "--out", str(out), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--imagenet" in err and "Traceback" not in err
    assert not out.exists()


def test_collect_supernet_folder_without_splits(tmp_path, capsys, no_torchrun_env):
    (tmp_path / "data" / "val").mkdir(parents=True)
    out = tmp_path / "c.jsonl"
    args = ["collect", "--samples", "1", "--accuracy", "supernet:random", "--imagenet", str(tmp_path / "data"),
            "--out", str(out), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train" in err and "Traceback" not in err
    assert not out.exists()
