"""Parallel use: process-based joblib (loky) model selection, and prediction
from several threads on one fitted classifier."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from joblib import parallel_config
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.model_selection import EpisodicSplit

from .conftest import tiny_conv4_trainer, tiny_trainer


@pytest.fixture(scope="module")
def data(digits):
    return digits["X_novel"], digits["y_novel"]


def test_grid_search_with_loky_processes(digits):
    X, y = digits["X_base"][::2], digits["y_base"][::2]
    search = GridSearchCV(
        PrototypicalClassifier(tiny_trainer(max_epochs=1)),
        {"encoder__lr": [1e-3, 1e-2], "metric": ["sqeuclidean", "cosine"]},
        cv=2,
    )
    with parallel_config(backend="loky"):
        parallel = search.set_params(n_jobs=2).fit(X, y)
    serial = GridSearchCV(**{**search.get_params(deep=False), "n_jobs": 1}).fit(X, y)
    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_estimator_.encoder_.history  # meta-trained in the refit


def test_cross_val_score_with_loky_processes(data, fitted_trainer):
    X, y = data
    clf = PrototypicalClassifier(fitted_trainer)
    cv = EpisodicSplit(n_way=5, n_shot=1, n_query=5, n_episodes=6, random_state=0)
    with parallel_config(backend="loky"):
        parallel = cross_val_score(clf, X, y, cv=cv, n_jobs=2)
    serial = cross_val_score(clf, X, y, cv=cv, n_jobs=1)
    np.testing.assert_allclose(parallel, serial)


@pytest.mark.parametrize("encoder", ["identity", "conv4-trainer"])
def test_two_threads_predict_like_one(encoder, data, digits):
    X, y = data
    if encoder == "identity":
        clf = PrototypicalClassifier(batch_size=7).fit(X[::3], y[::3])
    else:
        trainer = tiny_conv4_trainer(
            module__hidden_channels=8, n_way=5, episodes_per_epoch=5
        ).fit(digits["X_base"], digits["y_base"])
        # As skorch leaves it after training: in train mode.
        assert trainer.module_.training
        clf = PrototypicalClassifier(trainer, batch_size=7).fit(X[::3], y[::3])
    expected_labels = clf.predict(X)
    expected_proba = clf.predict_proba(X)

    def work(_):
        return clf.predict(X), clf.predict_proba(X)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(work, range(8)))
    for labels, proba in results:
        np.testing.assert_array_equal(labels, expected_labels)
        np.testing.assert_array_equal(proba, expected_proba)
    if encoder != "identity":
        # The borrowed module is left as it was found, buffers included.
        module = clf.encoder_.module_
        assert module.training
        assert all(m.training for m in module.modules())
        state = {k: v.clone() for k, v in module.state_dict().items()}
        clf.predict(X)
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[key]), key
