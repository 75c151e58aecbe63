"""scikit-learn's own estimator checks, over every kind of encoder.

Every kind of encoder and every opt-in configuration runs through
``parametrize_with_checks``; the expected failures are declared in
``tests/_expected_checks.py``, each with its reason, and every other check
must pass. A fitted encoder takes one sample width
only, so the checks that fit on data of their own width fail: each such
failure must be exactly scikit-learn's width error, nothing else. (A declared
check may pass: float32 rounding depends on the batch, and a check whose data
happen to have the encoder's width runs in full.)
"""

import copy
import re
from unittest import SkipTest

import joblib
import numpy as np
import pytest
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import MLP, Conv4
from sklearn_protonet.pretrained import load_pretrained

from ._expected_checks import (
    _FIXED_WIDTH,
    WIDTH_ERROR,
    expected_failed_checks,
)
from .conftest import tiny_conv4_trainer, tiny_trainer


def test_joblib_hash_of_a_module_is_not_deepcopy_stable():
    """The premise of the overwrite-params expected failure."""
    module = torch.nn.Linear(2, 3)
    assert joblib.hash(module) != joblib.hash(copy.deepcopy(module))


def _fitted_trainers():
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], 10)
    mlp = tiny_trainer(n_way=2, n_shot=1, n_query=1).fit(rng.rand(30, 2), y)
    conv4 = tiny_conv4_trainer(
        n_way=2,
        n_shot=1,
        n_query=1,
        module__input_shape=(1, 4, 4),
        module__n_blocks=2,
    ).fit(rng.rand(30, 16), y)
    return mlp, conv4


_MLP, _CONV4 = _fitted_trainers()


def _mlp():
    return MLP(hidden_sizes=(16,), out_features=8)


def _estimators():
    """Every kind of encoder and every opt-in feature, with module weights
    drawn from a fixed seed: a check must not pass or fail by the global
    generator's state when the test module is imported."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return [
            # Every kind of encoder ...
            PrototypicalClassifier(),
            PrototypicalClassifier(MLP(hidden_sizes=(16,), out_features=8)),
            PrototypicalClassifier(torch.nn.Sequential(torch.nn.LazyLinear(4))),
            PrototypicalClassifier(load_pretrained("omniglot-conv4-1shot")),
            PrototypicalClassifier(tiny_trainer(n_way=2, n_shot=1, n_query=1)),
            PrototypicalClassifier(_MLP),
            PrototypicalClassifier(_CONV4),
            PrototypicalClassifier(FrozenEstimator(_MLP)),
            PrototypicalClassifier(torch.nn.Sequential(torch.nn.Linear(3, 4))),
            # ... and every opt-in feature (the metrics' own configurations, with
            # their covariance and Gaussian encoders, are in test_covariance.py).
            PrototypicalClassifier(unknown_label=-1),
            PrototypicalClassifier(refinement_steps=2),
            PrototypicalClassifier(refinement_steps=2, unlabeled_label=-2),
            PrototypicalClassifier(normalization="l2"),
            PrototypicalClassifier(normalization="cl2n"),
            PrototypicalClassifier(metric="euclidean"),
            PrototypicalClassifier(metric="cosine"),
            PrototypicalClassifier(_mlp(), inference_dtype="bfloat16"),
            PrototypicalClassifier(_mlp(), inference_dtype="int8"),
            PrototypicalClassifier(
                Conv4(input_shape=(1, 4, 4), n_blocks=2, hidden_channels=4),
                fine_tune_steps=2,
                random_state=0,
            ),
        ]


ESTIMATORS = _estimators()


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


def _causes(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    reason = expected_failed_checks(estimator).get(_check_name(check))
    if reason is None:
        check(estimator)
        return
    try:
        check(estimator)
    except SkipTest as skip:
        # scikit-learn's own skip (check_array_api_input without SciPy's array
        # API support, SCIPY_ARRAY_API unset), not a failure of the estimator.
        pytest.skip(str(skip))
    except Exception as error:  # noqa: BLE001
        if reason == _FIXED_WIDTH:  # exactly the width error, nothing else
            messages = [str(e) for e in _causes(error)]
            assert any(re.search(WIDTH_ERROR, m) for m in messages), messages
        pytest.xfail(reason)
