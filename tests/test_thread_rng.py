"""Seeded fits in threads equal the same fits run one after another, and a
fit leaves the caller's global torch and NumPy generators as they were."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from joblib import Parallel, delayed
from torch import nn

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import (
    MLP,
    Conv4,
    RandomResolution,
    RandomShift,
    RandomStrokeWidth,
)

from .conftest import _small_trainer, tiny_trainer

RNG = np.random.RandomState(0)
X = RNG.rand(60, 64).astype(np.float32)
Y = np.repeat(list("abcdef"), 10)


class _Mine(nn.Module):
    """A module of unknown code with torch's own dropout (global generator)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 16), nn.Dropout(0.3), nn.Linear(16, 8))

    def forward(self, X):
        return self.net(X)


def _augmented_conv4(*augmentation):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # an instance keeps the weights it was built with
        return nn.Sequential(
            *augmentation,
            Conv4(input_shape=(1, 8, 8), hidden_channels=4, n_blocks=2),
        )


_SHIFTING = _augmented_conv4(RandomShift((1, 8, 8), max_shift=1))
# The robust encoder's layers (benchmarks/omniglot.py --profile robust).
_DEGRADING = _augmented_conv4(
    RandomStrokeWidth((1, 8, 8), p=0.5), RandomResolution((1, 8, 8), 3, 6, p=0.5)
)


def _trainer(module, seed, **params):
    defaults = dict(episodes_per_epoch=5, max_epochs=3, random_state=seed)
    return _small_trainer(module, defaults, params)


ENCODERS = {
    "mlp-dropout": lambda seed: tiny_trainer(
        module=MLP, module__dropout=0.5, random_state=seed, max_epochs=3
    ),
    "conv4-shift": lambda seed: _trainer(copy.deepcopy(_SHIFTING), seed),
    "conv4-degrade": lambda seed: _trainer(copy.deepcopy(_DEGRADING), seed),
    "own-module": lambda seed: _trainer(_Mine, seed),
}


def _fit(kind, seed):
    clf = PrototypicalClassifier(ENCODERS[kind](seed)).fit(X, Y)
    return clf.encoder_.transform(X[:12]), clf.predict_proba(X)


def _same(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


JOBS = [(kind, seed) for kind in ENCODERS for seed in (0, 1)] * 2


@pytest.mark.parametrize("backend", ["threads", "joblib-threading"])
def test_seeded_fits_in_threads_equal_serial_fits(backend):
    serial = {job: _fit(*job) for job in dict.fromkeys(JOBS)}
    if backend == "threads":
        results = [None] * len(JOBS)

        def run(i, job):
            results[i] = _fit(*job)

        threads = [
            threading.Thread(target=run, args=(i, j)) for i, j in enumerate(JOBS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        results = Parallel(n_jobs=4, backend="threading")(
            delayed(_fit)(*job) for job in JOBS
        )
    for job, result in zip(JOBS, results, strict=True):
        _same(result, serial[job])


def test_different_seeds_give_different_models():
    assert not np.array_equal(_fit("mlp-dropout", 0)[0], _fit("mlp-dropout", 1)[0])


@pytest.mark.parametrize("kind", list(ENCODERS))
@pytest.mark.parametrize("seed", [0, None])
def test_fit_leaves_global_generators_unchanged(kind, seed):
    # Support-set fine-tuning (RandomShift views, subsampling) too.
    fine_tuned = PrototypicalClassifier(
        Conv4(input_shape=(1, 8, 8), hidden_channels=4, n_blocks=2),
        fine_tune_steps=2,
        random_state=seed,
    )
    torch.manual_seed(1234)
    np.random.seed(1234)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    PrototypicalClassifier(ENCODERS[kind](seed)).fit(X, Y)
    fine_tuned.fit(X.reshape(-1, 1, 8, 8), Y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1])
    assert after[2:] == numpy_state[2:]


def test_default_class_split_follows_the_trainers_seed():
    """The default train_split (ClassSplit without random_state) holds out
    the same classes for the same trainer seed, so seeded fits are equal."""
    from sklearn_protonet import ClassSplit, EpisodicTrainer

    def fit(seed):
        trainer = EpisodicTrainer(
            MLP, n_way=3, n_shot=2, n_query=2, episodes_per_epoch=3,
            valid_episodes=2, valid_n_way=2, max_epochs=1, verbose=0,
            random_state=seed, train_split=ClassSplit(0.4),
        )  # fmt: skip
        return trainer.fit(X, Y).transform(X[:5])

    np.testing.assert_array_equal(fit(0), fit(0))
    assert not np.array_equal(fit(0), fit(1))
