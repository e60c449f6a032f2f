"""vjepa.eval.probe.linear_probe: known answers, agreement with scikit-learn, determinism, bad inputs."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from vjepa.core.errors import DataError, VJepaError
from vjepa.eval.probe import linear_probe


def blobs(n_train=400, n_val=200, dim=20, classes=5, spread=10.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = spread * rng.standard_normal((classes, dim))
    yt, yv = rng.integers(0, classes, n_train), rng.integers(0, classes, n_val)
    xt = (centres[yt] + rng.standard_normal((n_train, dim))).astype(np.float32)
    xv = (centres[yv] + rng.standard_normal((n_val, dim))).astype(np.float32)
    return xt, yt, xv, yv


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def test_separated_blobs_are_classified_perfectly():
    result = linear_probe(*blobs(), num_classes=5)
    assert result["top1"] == 1.0 and result["train_top1"] == 1.0
    assert result["top5"] == 1.0  # 5 classes: top-5 is top-min(5, 5)
    assert 1 <= result["steps"] <= 100
    assert set(result) == {"top1", "top5", "steps", "train_top1"}


@pytest.mark.slow
@pytest.mark.parametrize("weight_decay", [1e-4, 1e-2])
def test_agrees_with_scikit_learn_on_digits(digits, weight_decay):
    """Mean CE + wd/2 ||W||^2 has the minimiser of sklearn's C * sum CE + ||W||^2 / 2 with C = 1 / (wd N)."""
    xt, yt, xv, yv = digits
    ours = linear_probe(xt, yt, xv, yv, num_classes=10, weight_decay=weight_decay)
    scaler = StandardScaler().fit(xt)
    clf = LogisticRegression(C=1.0 / (weight_decay * len(xt)), max_iter=5000, tol=1e-8)
    clf.fit(scaler.transform(xt), yt)
    assert abs(ours["top1"] - clf.score(scaler.transform(xv), yv)) <= 0.02
    assert abs(ours["train_top1"] - clf.score(scaler.transform(xt), yt)) <= 0.02
    assert ours["top1"] > 0.85  # the task is learnt, not just matched
    assert ours["top5"] >= ours["top1"]


def test_noise_labels_give_chance_accuracy():
    rng = np.random.default_rng(1)
    xt, xv = rng.standard_normal((3000, 20)), rng.standard_normal((3000, 20))
    yt, yv = rng.integers(0, 5, 3000), rng.integers(0, 5, 3000)
    result = linear_probe(xt, yt, xv, yv, num_classes=5)
    assert result["top1"] < 0.35  # chance is 0.2; the standard error with 3000 samples is ~0.007


def test_deterministic(digits):
    first = linear_probe(*digits, num_classes=10)
    assert linear_probe(*digits, num_classes=10) == first


def test_top5_is_top_k_with_fewer_classes():
    xt, yt, xv, yv = blobs(classes=3, spread=0.3)  # overlapping: top-1 < 1, but top-3 of 3 classes is 1
    result = linear_probe(xt, yt, xv, yv, num_classes=3)
    assert result["top1"] < 1.0 and result["top5"] == 1.0


def test_steps_budget_is_respected(digits):
    assert linear_probe(*digits, num_classes=10, steps=3)["steps"] <= 3


def test_constant_train_feature_is_harmless():
    """A feature constant on the train set (std floored to 1e-6) that varies on val must not blow up."""
    xt, yt, xv, yv = blobs(classes=5, spread=0.5)
    base = linear_probe(xt, yt, xv, yv, num_classes=5)
    xt2 = np.hstack([xt, np.zeros((len(xt), 1), np.float32)])
    xv2 = np.hstack([xv, np.full((len(xv), 1), 5.0, np.float32)])
    result = linear_probe(xt2, yt, xv2, yv, num_classes=5)
    assert result["top1"] == pytest.approx(base["top1"], abs=0.01)


def _bad_cases():
    xt, yt, xv, yv = blobs(n_train=40, n_val=20, classes=5)
    nan, inf = xt.copy(), xv.copy()
    nan[3, 2], inf[0, 0] = np.nan, np.inf
    return {
        "dimension": (xt, yt, xv[:, :10], yv, {}),
        "length": (xt, yt[:-1], xv, yv, {}),
        "length ": (xt, yt, xv, yv[:5], {}),
        "range": (xt, np.where(yt == 0, 5, yt), xv, yv, {}),
        "range ": (xt, yt, xv, yv - 1, {}),
        "non-finite": (nan, yt, xv, yv, {}),
        "non-finite ": (xt, yt, inf, yv, {}),
        "steps": (xt, yt, xv, yv, {"steps": 0}),
        "empty": (xt[:0], yt[:0], xv, yv, {}),
        "integer": (xt, yt.astype(np.float32), xv, yv, {}),
    }


@pytest.mark.parametrize("word", list(_bad_cases()))
def test_bad_inputs_raise_data_error_before_fitting(monkeypatch, word):
    def no_fit(*args, **kwargs):
        raise AssertionError("the fit started before the inputs were checked")

    monkeypatch.setattr(torch.optim, "LBFGS", no_fit)
    xt, yt, xv, yv, kw = _bad_cases()[word]
    with pytest.raises(DataError, match=word.strip()) as info:
        linear_probe(xt, yt, xv, yv, **{"num_classes": 5, **kw})
    assert isinstance(info.value, VJepaError)
