"""Prediction works in chunks of ``batch_size`` rows (benchmarks/memory.py
measures the memory this saves); chunking never changes the results."""

import numpy as np
import pytest

import sklearn_protonet._geometry as geometry
from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import MLP


@pytest.mark.parametrize("encoder", ["identity", "module"])
@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "predict_log_proba", "decision_function"]
)
def test_distances_are_computed_in_chunks(method, encoder, monkeypatch):
    rng = np.random.RandomState(0)
    X, y = rng.rand(60, 5), np.repeat(np.arange(6), 10)
    module = None if encoder == "identity" else MLP(in_features=5, out_features=4)
    whole = PrototypicalClassifier(module, batch_size=1000).fit(X, y)
    chunked = PrototypicalClassifier(module, batch_size=7).fit(X, y)
    expected = getattr(whole, method)(X)

    shapes = []
    original = geometry._squared

    def spy(queries, prototypes):
        shapes.append(tuple(queries.shape))
        return original(queries, prototypes)

    monkeypatch.setattr(geometry, "_squared", spy)
    result = getattr(chunked, method)(X)
    assert [s[0] for s in shapes] == [7] * 8 + [4]
    assert result.dtype == expected.dtype and result.shape == expected.shape
    if method == "predict":
        np.testing.assert_array_equal(result, expected)
    else:  # matrix products round differently in the last bit with the batch
        rtol = 1e-12 if encoder == "identity" else 1e-5
        np.testing.assert_allclose(result, expected, rtol=rtol, atol=rtol)


def test_transform_in_chunks_equals_one_batch():
    X, y = np.random.RandomState(0).rand(60, 5), np.repeat(np.arange(6), 10)
    whole = PrototypicalClassifier(batch_size=1000).fit(X, y).transform(X)
    chunked = PrototypicalClassifier(batch_size=7).fit(X, y).transform(X)
    np.testing.assert_array_equal(whole, chunked)
    assert chunked.dtype == np.float64
