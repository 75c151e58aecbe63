"""Non-finite numbers, never a silent NaN.

A diverged meta-training stops with an error naming the epoch; an encoder
that returns NaN or inf is an error naming the rows; and probabilities,
log-probabilities and decision values are free of NaN for any valid
temperature and any finite input, up to float64's limit.
"""

from __future__ import annotations

import itertools

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from skorch.callbacks import Callback

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import MLP

from .conftest import tiny_trainer

RNG = np.random.RandomState(0)
X = RNG.randn(40, 6)
Y = np.repeat(["a", "b", "c", "d"], 10)


@pytest.mark.parametrize("through_classifier", [False, True])
def test_diverged_meta_training_stops_naming_the_epoch(through_classifier):
    trainer = tiny_trainer(lr=1e12, episodes_per_epoch=20, max_epochs=3)
    with pytest.raises(
        FloatingPointError, match=r"diverged: the loss is nan at epoch 1"
    ) as info:
        if through_classifier:
            PrototypicalClassifier(trainer).fit(X, Y)
        else:
            trainer.fit(X, Y)
    assert "learning rate too high" in str(info.value)
    assert "lr=1000000000000.0" in str(info.value)


class _PoisonWeights(Callback):
    """The last update makes a weight NaN, though every loss was finite."""

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == net.max_epochs:
            with torch.no_grad():
                net.module_.layers[0].bias[0] = float("nan")


def test_non_finite_weights_after_training_stop_it():
    trainer = tiny_trainer(max_epochs=2, callbacks=[_PoisonWeights()])
    with pytest.raises(
        FloatingPointError, match=r"layers.0.bias holds NaN .*after epoch 2"
    ):
        trainer.fit(X, Y)


def _nan_module():
    module = MLP(in_features=6, hidden_sizes=(4,), out_features=3)
    with torch.no_grad():
        module.layers[0].weight[0, 0] = float("nan")
    return module


def test_non_finite_embeddings_at_fit_are_an_error():
    with pytest.raises(ValueError, match=r"NaN or infinite embeddings for 40 row"):
        PrototypicalClassifier(_nan_module()).fit(X, Y)


def test_non_finite_embeddings_at_predict_are_an_error():
    module = MLP(in_features=6, hidden_sizes=(4,), out_features=3)
    clf = PrototypicalClassifier(module, batch_size=7).fit(X, Y)
    with torch.no_grad():
        module.layers[0].weight.fill_(float("inf"))
    for method in ("predict", "predict_proba", "decision_function", "transform"):
        with pytest.raises(ValueError, match=r"rows \[0, 1, 2, 3, 4\]\.\.\."):
            getattr(clf, method)(X)


TEMPERATURES = [5e-324, 1e-310, 1e-300, 1e-8, 1.0, 1e300, 1.7e308]
SCALES = [1e-300, 1.0, 1e150, 1e300, 1e307]


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_probabilities_never_nan(metric, n_classes):
    """Any temperature x any input scale: no NaN anywhere, rows of
    predict_proba sum to 1, and predictions do not depend on the scale."""
    keep = np.isin(Y, ["a", "b", "c", "d"][:n_classes])
    X_, y_ = X[keep], Y[keep]
    reference = PrototypicalClassifier(metric=metric).fit(X_, y_).predict(X_)
    for temperature, scale in itertools.product(TEMPERATURES, SCALES):
        Xs = np.clip(X_ * scale, -1.7e308, 1.7e308)
        clf = PrototypicalClassifier(metric=metric, temperature=temperature)
        clf.fit(Xs, y_)
        case = (temperature, scale)
        assert np.isfinite(clf.prototypes_).all(), case
        proba = clf.predict_proba(Xs)
        assert not np.isnan(proba).any(), case
        np.testing.assert_allclose(proba.sum(1), 1.0, err_msg=str(case))
        log_proba = clf.predict_log_proba(Xs)
        assert not np.isnan(log_proba).any(), case
        assert not np.isnan(clf.decision_function(Xs)).any(), case
        predicted = clf.predict(Xs)
        # Where the probabilities are not all tied (huge temperatures round
        # them to 1 / n_classes), their largest is the prediction.
        clear = (proba == proba.max(1, keepdims=True)).sum(1) == 1
        np.testing.assert_array_equal(
            predicted[clear], clf.classes_[proba[clear].argmax(1)]
        )
        if scale >= 1.0:  # tiny scales underflow (denormals): ties may change
            np.testing.assert_array_equal(predicted, reference, err_msg=str(case))


def test_identity_inputs_at_the_float64_limit():
    X_ = np.array(
        [[1e308, -1e308], [1.5e308, -1.7e308], [-1e308, 1e308], [-1.7e308, 1.6e308]]
    )
    clf = PrototypicalClassifier().fit(X_, [0, 0, 1, 1])
    np.testing.assert_allclose(
        clf.prototypes_, [[1.25e308, -1.35e308], [-1.35e308, 1.3e308]]
    )
    np.testing.assert_array_equal(clf.predict(X_), [0, 0, 1, 1])
    np.testing.assert_array_equal(
        clf.predict_proba(X_), [[1, 0], [1, 0], [0, 1], [0, 1]]
    )
    np.testing.assert_array_equal(
        clf.decision_function(X_), [-np.inf, -np.inf, np.inf, np.inf]
    )


@pytest.mark.parametrize("normalization", [None, "l2", "cl2n"])
@pytest.mark.parametrize("weighted", [False, True])
def test_extreme_inputs_and_weights_with_normalization(normalization, weighted):
    """Inputs near float64's limit (and huge sample weights) give the
    predictions of the same inputs at a moderate scale."""
    weights = np.linspace(1e300, 1.7e308, len(X)) if weighted else None
    reference = PrototypicalClassifier(normalization=normalization)
    reference.fit(X, Y, sample_weight=None if weights is None else weights / 1e300)
    clf = PrototypicalClassifier(normalization=normalization)
    clf.fit(X * 1e307, Y, sample_weight=weights)
    assert np.isfinite(clf.prototypes_).all()
    proba = clf.predict_proba(X * 1e307)
    assert not np.isnan(proba).any()
    np.testing.assert_array_equal(clf.predict(X * 1e307), reference.predict(X))


@settings(max_examples=200, deadline=None)
@given(
    X_=hnp.arrays(
        np.float64,
        st.tuples(st.integers(4, 12), st.integers(1, 4)),
        elements=st.floats(-1.7e308, 1.7e308, allow_nan=False, allow_infinity=False),
    ),
    temperature=st.floats(5e-324, 1.7e308, exclude_min=False),
    metric=st.sampled_from(["sqeuclidean", "euclidean", "cosine"]),
    normalization=st.sampled_from([None, "l2", "cl2n"]),
)
def test_any_finite_input_and_temperature_give_no_nan(
    X_, temperature, metric, normalization
):
    """Property: whatever the finite inputs and temperature, no NaN."""
    y_ = np.arange(len(X_)) % 2
    clf = PrototypicalClassifier(
        metric=metric, temperature=temperature, normalization=normalization
    ).fit(X_, y_)
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        assert not np.isnan(getattr(clf, method)(X_)).any(), method
    np.testing.assert_allclose(clf.predict_proba(X_).sum(1), 1.0)


@pytest.mark.parametrize("scale", [1.0, 1e150, 1e300])
def test_mahalanobis_at_extreme_scales_answers_or_says_why(scale):
    """The covariance metric: probabilities without NaN, or a clear error."""
    clf = PrototypicalClassifier(metric="mahalanobis", temperature=1e-310)
    try:
        proba = clf.fit(X * scale, Y).predict_proba(X * scale)
    except ValueError as error:
        assert "too large for float64 arithmetic" in str(error)
    else:
        assert not np.isnan(proba).any()
