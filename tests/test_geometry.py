"""The metric registry: one object per metric, its distances and capabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet._geometry import get_metric, metric_names

RNG = np.random.default_rng(0)


def test_names_follow_capabilities():
    assert set(metric_names()) == {
        "sqeuclidean",
        "euclidean",
        "cosine",
        "mahalanobis",
        "gaussian",
    }
    assert set(metric_names(sparse_exact=True)) == {
        "sqeuclidean",
        "euclidean",
        "cosine",
    }
    assert "mahalanobis" not in metric_names(trainable=True)
    assert "gaussian" in metric_names(trainable=True)
    assert set(metric_names(variance_aware=True)) == {"mahalanobis", "gaussian"}
    # The estimators' allowed values come from the registry.
    constraint = PrototypicalClassifier._parameter_constraints["metric"][0]
    assert set(constraint.options) == set(metric_names())


def test_unknown_name_lists_the_metrics():
    with pytest.raises(ValueError, match="metric must be one of"):
        get_metric("manhattan")


@pytest.mark.parametrize("name", ["sqeuclidean", "euclidean", "cosine"])
def test_rowwise_is_the_diagonal_of_pairwise(name):
    metric = get_metric(name)
    points = torch.as_tensor(RNG.normal(size=(6, 4)))
    prototypes = torch.as_tensor(RNG.normal(size=(6, 4)))
    torch.testing.assert_close(
        metric.rowwise(points, prototypes),
        metric.pairwise(points, prototypes).diagonal(),
    )


@pytest.mark.parametrize("name", ["sqeuclidean", "euclidean", "cosine"])
def test_neighbour_logits_are_the_nca_probabilities(name):
    """softmax(logits[i]) is, for each class, the share of exp(-d) that row i
    gives the other rows of that class, written out pair by pair."""
    metric = get_metric(name)
    # Episode order: support rows class by class, then query rows (here one
    # class has a query fewer).
    target = {
        "support": torch.tensor([0, 1, 2]),
        "query": torch.tensor([0, 0, 1, 2, 2]),
    }
    embeddings = torch.as_tensor(RNG.normal(size=(8, 4)))
    logits, codes = metric.neighbour_logits(embeddings, target)
    assert codes.tolist() == [0, 1, 2, 0, 0, 1, 2, 2]
    expected = torch.zeros(8, 3, dtype=embeddings.dtype)
    for i in range(8):
        weights = [
            torch.exp(-metric.pairwise(embeddings[i : i + 1], embeddings[j : j + 1]))
            for j in range(8)
        ]
        total = sum(w for j, w in enumerate(weights) if j != i)
        for j in range(8):
            if j != i:
                expected[i, codes[j]] += (weights[j] / total).squeeze()
    torch.testing.assert_close(logits.softmax(1), expected)


@pytest.mark.parametrize("name", ["sqeuclidean", "euclidean", "cosine"])
def test_neighbour_logits_keep_finite_gradients_when_classes_are_far(name):
    """A class so far from a row that its exponentials underflow must not
    give NaN gradients (the log of an underflowed sum would)."""
    metric = get_metric(name)
    target = {"support": torch.tensor([0, 1]), "query": torch.tensor([0, 1])}
    embeddings = torch.tensor(
        [[0.0, 0.0], [1e3, 0.0], [0.1, 0.0], [1e3, 1.0]], requires_grad=True
    )
    logits, codes = metric.neighbour_logits(embeddings, target)
    loss = torch.nn.functional.cross_entropy(logits, codes)
    loss.backward()
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
    assert torch.isfinite(embeddings.grad).all()


def test_variance_aware_metrics_cannot_train_on_pairs():
    assert set(metric_names(pair_trainable=True)) == {
        "sqeuclidean",
        "euclidean",
        "cosine",
    }


@pytest.mark.parametrize("name", ["sqeuclidean", "euclidean", "cosine"])
def test_products_give_the_dense_distances(name):
    """The sparse path's formula equals the dense one."""
    metric = get_metric(name)
    queries, prototypes = RNG.normal(size=(5, 3)), RNG.normal(size=(4, 3))
    dense = metric.pairwise(torch.as_tensor(queries), torch.as_tensor(prototypes))
    from_products = metric.from_products(
        queries @ prototypes.T,
        np.square(queries).sum(1),
        np.square(prototypes).sum(1),
    )
    np.testing.assert_allclose(from_products, dense.numpy(), atol=1e-12)


@pytest.mark.parametrize(
    "name, factor", [("sqeuclidean", 1e300 * 1e300), ("euclidean", 1e300)]
)
def test_overflowing_distances_are_rescaled(name, factor):
    queries = torch.tensor([[1e300, 0.0]], dtype=torch.float64)
    prototypes = torch.tensor([[0.0, 0.0], [-1e300, 0.0]], dtype=torch.float64)
    d, f = get_metric(name).scaled_pairwise(queries, prototypes)
    assert torch.isfinite(d).all() and f == pytest.approx(factor)
    assert d.argmin(1).item() == 0


def test_variance_metrics_need_precisions_for_pairwise():
    from sklearn_protonet.distances import pairwise_distances

    with pytest.raises(ValueError, match="precisions"):
        pairwise_distances(torch.zeros(1, 2), torch.zeros(2, 2), "mahalanobis")
