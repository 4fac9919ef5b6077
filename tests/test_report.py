"""What each printed value is (pnag.cli._report): accuracy and latency kinds, a table's noise in words."""

from types import SimpleNamespace

import pytest

from pnag.cli._report import accuracy_column, accuracy_kind, device_words, noisy, table_noise


def _run(accuracy: str):
    return SimpleNamespace(config=SimpleNamespace(accuracy=accuracy, latency_samples=None))


@pytest.mark.parametrize("spec, measured, kind", [
    ("dataset:ofa-mbv3-w1.0-imagenet", True, "measured"), ("dataset:ofa-mbv3-w1.0-imagenet", False, "predicted"),
    ("ofa-predictor", True, "predicted"),  # the source is a predictor: its own table is predicted too
    ("nb201-exact:cifar10", False, "measured"), ("proxy:synflow", True, "proxy"),
    ("proxy:synflow", False, "predicted-proxy")])
def test_accuracy_kinds(spec, measured, kind):
    assert accuracy_kind(_run(spec), measured) == kind


def test_a_proxy_column_is_a_score():
    assert accuracy_column(_run("proxy:zico")) == "zico_score"
    assert accuracy_column(_run("nb201:cifar10")) == "accuracy_%"


def _table(spread: float, fit: float):
    entry = {"median_ms": 1.0, "iqr_ms": spread}
    net = {"measured_ms": 10.0, "sum_ms": 10.0 * (1 + fit), "iqr_ms": 10 * spread}
    data = {"rounds": 5, "entries": {"a": entry, "b": entry}, "calibration": {"archs": [net]},
            "correction": {"a": 1.0, "b": 0.0}}
    env = {"cpu_model": "Some CPU", "backend_version": "torch 2.13.0", "threads": 1, "cores": 2, "batch": 1,
           "resolution": 224}
    return SimpleNamespace(data=data, env=env, device="Some CPU")


def test_table_noise_in_words_and_the_noisy_flag():
    quiet, busy = _table(0.04, 0.01), _table(0.5, 0.3)
    text = table_noise(quiet)
    assert "2 layer entries x 5 rounds" in text and "entries vary 4.0 % between rounds" in text
    assert "whole networks 4.0 %" in text and "table vs whole network 1.0 % error" in text
    assert not noisy(quiet) and noisy(busy)
    assert device_words(quiet) == "Some CPU, torch 2.13.0, 1 thread of 2 cores, batch 1, 224 px"
    assert table_noise(SimpleNamespace(device="Note10")) == "" and device_words(SimpleNamespace(device="Note10")) == \
        "Note10"
