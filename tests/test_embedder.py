"""The identity encoder works chunk by chunk, on one torch thread: no float64
copy of all of X, and no thread contention on a busy machine
(``benchmarks/identity_busy.py`` measures the speed)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestCentroid

from sklearn_protonet import PrototypicalClassifier, _encoders
from sklearn_protonet._embedder import Embedder

RNG = np.random.RandomState(0)
X = RNG.rand(20_000, 784).astype(np.float32)  # 63 MB; as float64: 125 MB
Y = RNG.randint(0, 10, len(X))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "transform"])
def test_float32_input_is_not_copied_whole(method):
    clf = PrototypicalClassifier(batch_size=1000).fit(X[:200], Y[:200])
    getattr(clf, method)(X[:100])  # warm up
    tracemalloc.start()
    try:
        out = getattr(clf, method)(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The output, plus chunks: far below a float64 copy of X (125 MB).
    chunk = 1000 * 784 * 8
    assert peak < out.nbytes + 4 * chunk, peak / 2**20


def test_chunks_are_batch_size_rows_of_float64():
    embedder = Embedder(None, batch_size=3000, device=None, inference_dtype="float32")
    seen = [(len(chunk), chunk.dtype) for chunk in embedder.iter(X)]
    assert seen == [(3000, torch.float64)] * 6 + [(2000, torch.float64)]


def test_float32_input_agrees_with_nearest_centroid():
    expected = NearestCentroid().fit(X[:500], Y[:500]).predict(X[500:3000])
    clf = PrototypicalClassifier(batch_size=700).fit(X[:500], Y[:500])
    np.testing.assert_array_equal(clf.predict(X[500:3000]), expected)
    assert clf.prototypes_.dtype == np.float64


def test_identity_runs_on_one_thread_and_restores_the_setting(monkeypatch):
    torch.set_num_threads(2)
    counts = []
    real = _encoders.one_thread

    def spy():
        with real():
            counts.append(torch.get_num_threads())
            yield

    import contextlib

    monkeypatch.setattr(
        "sklearn_protonet._embedder.one_thread", contextlib.contextmanager(spy)
    )
    clf = PrototypicalClassifier().fit(X[:200], Y[:200])
    clf.predict(X[:500])
    clf.predict_proba(X[:500])
    assert counts == [1, 1, 1]
    assert torch.get_num_threads() == 2
