"""ImageFolder reading, the evaluation transform, BN recalibration, top-k and ``pnag eval``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pnag.cli import main
from pnag.errors import DataError
from pnag.evaluate.imagefolder import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, ImageFolder, find_split
from pnag.evaluate.imagenet import (CALIB_SEED, calibration_indices, evaluate_imagefolder, recalibrate_bn,
                                    topk_correct)
from pnag.nn.supernet import random_supernet

ARCH = "2,2,2,2,2:3,3,0,0,5,5,0,0,7,7,0,0,3,3,0,0,5,5,0,0:3,3,0,0,4,4,0,0,6,6,0,0,3,3,0,0,4,4,0,0"


def make_imagefolder(root: Path, classes: int = 10, per_class: int = 3, seed: int = 0) -> Path:
    """train/ and val/ with small random JPEG/PNG images, plus one corrupt file in val's last class."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in range(classes):
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True)
            for i in range(per_class):
                a = rng.integers(0, 256, (int(rng.integers(40, 72)), int(rng.integers(40, 72)), 3), dtype=np.uint8)
                Image.fromarray(a).save(d / (f"{i}.jpg" if i % 2 else f"{i}.png"))
    last = sorted(p.name for p in (root / "val").iterdir())[-1]
    (root / "val" / last / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return root


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A random width-1.2 supernet whose logits favour the 10 test classes (non-trivial top-1/top-5)."""
    state = random_supernet(1.2, seed=5).state_dict()
    state["classifier.linear.bias"][10:] = -1e4
    path = tmp_path_factory.mktemp("ckpt") / "ofa_w12.pth"
    torch.save({"state_dict": state}, path)
    return path


def test_transform_resizes_crops_and_normalises():
    t = EvalTransform(224)
    assert t.resize == 256
    img = Image.new("RGB", (300, 200), (255, 0, 128))
    x = t(img)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    want = (torch.tensor([255, 0, 128]) / 255.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x[:, 100, 100], want, atol=1e-6)
    # the centre crop of the bilinear resize (shorter side 256, 300x200 -> 384x256)
    grad = Image.fromarray(np.tile(np.arange(300, dtype=np.uint8)[None, :, None], (200, 1, 3)))
    ref = np.asarray(grad.resize((384, 256), Image.BILINEAR))[16:240, 80:304, 0] / 255.0
    got = t(grad)[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    assert np.allclose(got.numpy(), ref, atol=1e-5)
    assert EvalTransform(128).resize == 147  # ceil(128 / 0.875)


def test_imagefolder_labels_and_corrupt_images(imagenet):
    ds = ImageFolder(imagenet / "val", EvalTransform(64))
    assert ds.classes == [f"n{c:08d}" for c in range(10)]
    assert len(ds) == 31
    labels = [lab for _, lab in ds.samples]
    assert labels == sorted(labels) and labels.count(9) == 4
    bad = [i for i, (p, _) in enumerate(ds.samples) if p.endswith("corrupt.jpg")]
    x, label, ok = ds[bad[0]]
    assert not ok and label == 9 and x.shape == (3, 64, 64)
    assert ds[0][2]


def test_missing_split_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        find_split(tmp_path / "nope", "val")
    with pytest.raises(DataError, match=r"val.*missing"):
        find_split(tmp_path, "val")
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        ImageFolder(tmp_path / "val", EvalTransform(32))
    (tmp_path / "val" / "a").mkdir()
    with pytest.raises(DataError, match="no images"):
        ImageFolder(tmp_path / "val", EvalTransform(32))


def test_calibration_indices_follow_the_published_seed():
    idx = calibration_indices(50, 20)
    assert idx == torch.randperm(50, generator=torch.Generator().manual_seed(CALIB_SEED))[:20].tolist()
    assert idx == calibration_indices(50, 20) and len(set(idx)) == 20
    assert calibration_indices(50, 20, seed=1) != idx


def test_recalibrate_bn_averages_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2),
                          nn.Flatten(), nn.Dropout(0.5))
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(n, 3, 8, 8, generator=g) * 2 + 1 for n in (5, 5, 3)]
    before = model[1].running_mean.clone()
    used = recalibrate_bn(model, batches)
    assert used == 13 and not model.training
    h = [model[0](b).detach().double() for b in batches]
    mean = sum(x.mean((0, 2, 3)) * x.size(0) for x in h) / 13
    var = sum(x.var((0, 2, 3), unbiased=False) * x.size(0) for x in h) / 13
    assert not torch.allclose(before, model[1].running_mean)
    assert torch.allclose(model[1].running_mean.double(), mean, atol=1e-5)
    assert torch.allclose(model[1].running_var.double(), var, atol=1e-5)
    # deterministic: a second calibration on the same images gives the same statistics
    stats = [b.clone() for b in model.buffers()]
    recalibrate_bn(model, batches)
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers()))


def test_topk_correct():
    logits = torch.tensor([[0.0, 1, 2, 3, 4, 5, 6], [6.0, 5, 4, 3, 2, 1, 0], [0.0, 0, 9, 1, 2, 3, 4]])
    labels = torch.tensor([6, 3, 0])  # top-1 hit; top-5 hit only; miss
    assert topk_correct(logits, labels) == (1, 2)
    assert topk_correct(logits, labels, torch.tensor([False, True, True])) == (0, 1)


def test_evaluate_counts_and_skips(imagenet):
    net = random_supernet(1.0, seed=0).get_active_subnet().eval()
    r = evaluate_imagefolder(net, imagenet, crop=64, batch_size=7, workers=0, progress=False)
    assert (r.images, r.skipped) == (30, 1)
    assert r.top1 == pytest.approx(100 * r.correct1 / 30) and r.correct1 <= r.correct5 <= 30


def run_cli(args, capsys):
    status = main(args)
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_supernet_json(imagenet, checkpoint, capsys, tmp_path):
    out_file = tmp_path / "r.json"
    args = ["eval", str(imagenet), "--supernet", str(checkpoint), "--arch", ARCH, "--resolution", "128",
            "--calib-images", "12", "--calib-batch-size", "5", "--batch-size", "8", "--workers", "0", "--json",
            "--quiet", "--output", str(out_file)]
    status, out, err = run_cli(args, capsys)
    assert status == 0, err
    r = json.loads(out)
    assert {"top1", "top5", "images", "skipped"} <= set(r)
    assert (r["images"], r["skipped"], r["calib_images"]) == (30, 1, 12)
    assert 0 < r["correct5"] and r["top5"] == pytest.approx(100 * r["correct5"] / 30)
    assert json.loads(out_file.read_text()) == r
    assert "1 unreadable image" in err
    status, out2, _ = run_cli(args[:-3] + ["--calib-images", "0"], capsys)  # keep the supernet's BN statistics
    assert status == 0 and json.loads(out2)["calib_images"] == 0 and json.loads(out2)["images"] == 30


@pytest.mark.parametrize("extra, message", [
    (["--supernet", "random"], "needs --arch"),
    (["--arch", ARCH], "needs --supernet"),
    (["--supernet", "random", "--arch", "1,2,3"], "arch"),
    (["--supernet", "random", "--arch", ARCH, "--width", "1.1"], "--width"),
    (["--supernet", "random", "--arch", ARCH, "--calib-images", "-1"], "--calib-images"),
    (["--models", "pnag_cpu_30", "--supernet", "random", "--arch", ARCH], "--models"),
])
def test_cli_bad_arguments_exit_2(imagenet, capsys, extra, message):
    status, _, err = run_cli(["eval", str(imagenet), *extra, "--workers", "0"], capsys)
    assert status == 2 and message in err and "Traceback" not in err


def test_cli_missing_folders_exit_2(tmp_path, capsys):
    status, _, err = run_cli(["eval", str(tmp_path / "none"), "--supernet", "random", "--arch", ARCH], capsys)
    assert status == 2 and "is not a folder" in err
    make_imagefolder(tmp_path / "only_val", classes=2, per_class=1)
    import shutil

    shutil.rmtree(tmp_path / "only_val" / "train")
    status, _, err = run_cli(["eval", str(tmp_path / "only_val"), "--supernet", "random", "--arch", ARCH], capsys)
    assert status == 2 and "train" in err and "missing" in err


def test_cli_wrong_checkpoint_exit_2(imagenet, checkpoint, capsys):
    status, _, err = run_cli(["eval", str(imagenet), "--supernet", str(checkpoint), "--width", "1.0", "--arch", ARCH,
                              "--workers", "0"], capsys)
    assert status == 2 and "first_conv.conv.weight" in err and "ofa_mbv3_d234_e346_k357_w1.0" in err


def test_cli_zoo_model_random_weights(imagenet, capsys, tmp_path):
    status, out, err = run_cli(["eval", str(imagenet), "--models", "pnag_cpu_30", "--no-pretrained",
                                "--resolution", "64", "--workers", "0", "--json", "--quiet"], capsys)
    assert status == 0, err
    r = json.loads(out)
    assert r["model"] == "pnag_cpu_30" and (r["images"], r["skipped"]) == (30, 1)
    status, _, err = run_cli(["eval", str(imagenet), "--models", "nope"], capsys)
    assert status == 2 and "nope" in err
    status, _, err = run_cli(["eval", str(imagenet), "--models", "pnag_cpu_30", "--weights-dir", str(tmp_path)], capsys)
    assert status == 2 and "no weights for pnag_cpu_30" in err
    from pnag import zoo

    torch.save(zoo.create_model("pnag_cpu_30", pretrained=False).state_dict(), tmp_path / "pnag_cpu_30.pt")
    status, out, err = run_cli(["eval", str(imagenet), "--models", "pnag_cpu_30", "--weights-dir", str(tmp_path),
                                "--resolution", "64", "--workers", "0", "--json", "--quiet"], capsys)
    assert status == 0, err
    assert json.loads(out)["images"] == 30


def test_collect_accuracy_source(imagenet, monkeypatch):
    from pnag import sources  # the one accuracy grammar of every command
    from pnag.evaluate.imagenet import evaluate_supernet_arch
    from pnag.space.mbv3 import MBV3Space, parse_arch

    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    space = MBV3Space(width=1.0, resolution=128)
    opts = {"imagenet": imagenet, "calib_images": 6, "workers": 0, "batch_size": 16, "device": "cpu", "seed": 3}
    src = sources.get_accuracy_source("supernet:random", space, opts)
    arch = parse_arch(ARCH, width=1.0, resolution=128)
    got = src.accuracy([arch])
    want = evaluate_supernet_arch(random_supernet(1.0, seed=3), arch, imagenet, calib_images=6, batch_size=16,
                                  progress=False)
    assert src.unit == "%" and got.tolist() == [want.top1]
    with pytest.raises(DataError, match="is not a folder"):
        sources.get_accuracy_source("supernet:random", space, {**opts, "imagenet": imagenet / "nope"})
    with pytest.raises(Exception, match="--imagenet"):
        sources.get_accuracy_source("supernet:random", space, {})


def test_supernet_sources_register_one_exit_handler(imagenet, monkeypatch):
    """Each supernet source under torchrun needs the process group left at exit: once per process, not once
    per source (issue 18), and not at all where it made no group."""
    import atexit
    import importlib

    from pnag import sources
    from pnag.space.mbv3 import MBV3Space

    D = importlib.import_module("pnag.evaluate.distributed")  # the module (pnag.evaluate.distributed is a function)

    registered = []
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **kw: registered.append(fn))
    monkeypatch.setattr(D, "_LEAVE_AT_EXIT", False, raising=False)
    space = MBV3Space(width=1.0, resolution=128)
    opts = {"imagenet": imagenet, "calib_images": 0, "workers": 0, "device": "cpu"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    for _ in range(2):  # one process, no group: nothing to leave
        sources.get_accuracy_source("supernet:random", space, opts)
    assert registered == []
    # under torchrun the first source makes the group; a stand-in for it, so that no group is needed here
    monkeypatch.setattr(D, "init_distributed", lambda device="auto": D.DistContext(0, 2, 0, torch.device("cpu"), True))
    for _ in range(3):
        sources.get_accuracy_source("supernet:random", space, opts)
    assert len(registered) == 1
