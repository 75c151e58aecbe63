"""PrototypicalClassifier: the estimator API, encoders, and the sklearn tool chain."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.modules import MLP, Conv4

from .conftest import tiny_trainer


@pytest.fixture
def blobs():
    X, y = make_blobs(n_samples=120, centers=4, n_features=6, random_state=0)
    return X, y


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.module_.state_dict().items()}


def _assert_same_weights(before, trainer):
    after = trainer.module_.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


def test_identity_encoder_equals_nearest_centroid(blobs):
    X, y = blobs
    ours = PrototypicalClassifier().fit(X[:60], y[:60])
    theirs = NearestCentroid().fit(X[:60], y[:60])
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.prototypes_, theirs.centroids_)


def test_probabilities_are_a_softmax_over_negative_distances(blobs):
    X, y = blobs
    clf = PrototypicalClassifier(temperature=3.0).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(X))
    np.testing.assert_allclose(np.log(proba), clf.predict_log_proba(X), atol=1e-10)
    sq = ((X[:, None, :] - clf.prototypes_[None]) ** 2).sum(-1)
    expected = np.exp(-sq / 3.0 - (-sq / 3.0).max(1, keepdims=True))
    np.testing.assert_allclose(proba, expected / expected.sum(1, keepdims=True))


def test_one_shot_support_set_gives_finite_probabilities(blobs):
    X, y = blobs
    first = np.unique(y, return_index=True)[1]
    clf = PrototypicalClassifier().fit(X[first], y[first])
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    assert (clf.predict(X[first]) == y[first]).all()


def test_temperature_changes_sharpness_not_predictions(blobs):
    X, y = blobs
    sharp = PrototypicalClassifier(temperature=0.1).fit(X, y)
    soft = PrototypicalClassifier(temperature=100.0).fit(X, y)
    np.testing.assert_array_equal(sharp.predict(X), soft.predict(X))
    assert sharp.predict_proba(X).max(1).mean() > soft.predict_proba(X).max(1).mean()


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
def test_metrics(blobs, metric):
    X, y = blobs
    clf = PrototypicalClassifier(metric=metric).fit(X, y)
    assert clf.score(X, y) > 0.9


def test_decision_function_shapes(blobs):
    X, y = blobs
    multi = PrototypicalClassifier().fit(X, y)
    assert multi.decision_function(X).shape == (len(X), 4)
    binary = PrototypicalClassifier().fit(X[y < 2], y[y < 2])
    scores = binary.decision_function(X[y < 2])
    assert scores.shape == (np.sum(y < 2),)
    np.testing.assert_array_equal(
        binary.classes_[(scores > 0).astype(int)], binary.predict(X[y < 2])
    )


def test_sample_weight_gives_weighted_means(blobs):
    X, y = blobs
    weights = np.random.RandomState(0).uniform(0.1, 2.0, len(y))
    clf = PrototypicalClassifier().fit(X, y, sample_weight=weights)
    for code, label in enumerate(clf.classes_):
        mask = y == label
        np.testing.assert_allclose(
            clf.prototypes_[code], np.average(X[mask], axis=0, weights=weights[mask])
        )


def test_transform_is_the_embedding(blobs):
    X, y = blobs
    module = MLP(in_features=6, out_features=5)
    clf = PrototypicalClassifier(module).fit(X, y)
    with torch.no_grad():
        expected = module.eval()(torch.as_tensor(X, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(clf.transform(X), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(clf.fit_transform(X, y), expected, rtol=1e-5, atol=1e-6)


def test_module_encoder_is_not_mutated(blobs):
    X, y = blobs
    module = MLP(in_features=6, out_features=5).train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    PrototypicalClassifier(module).fit(X, y).predict(X)
    assert module.training, "the module's training flag must be restored"
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key])


def test_lazy_module_is_materialised_on_a_copy(blobs):
    X, y = blobs
    module = MLP(out_features=5)
    clf = PrototypicalClassifier(module).fit(X, y)
    assert clf.encoder_ is not module
    assert isinstance(module.layers[0], torch.nn.LazyLinear)
    # Deterministic: two fits give the same embedding.
    again = PrototypicalClassifier(module).fit(X, y)
    np.testing.assert_array_equal(clf.transform(X), again.transform(X))


def test_subset_invariance_float32(fitted_trainer, digits):
    clf = PrototypicalClassifier(fitted_trainer).fit(
        digits["X_novel"][::7], digits["y_novel"][::7]
    )
    X = digits["X_novel"][:200]
    whole = clf.decision_function(X)
    parts = np.concatenate(
        [clf.decision_function(X[i : i + 7]) for i in range(0, 200, 7)]
    )
    np.testing.assert_allclose(whole, parts, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        clf.predict(X),
        np.concatenate([clf.predict(X[i : i + 7]) for i in range(0, 200, 7)]),
    )


def test_batch_size_does_not_change_results(fitted_trainer, digits):
    X, y = digits["X_novel"], digits["y_novel"]
    small = PrototypicalClassifier(fitted_trainer, batch_size=3).fit(X[::5], y[::5])
    large = PrototypicalClassifier(fitted_trainer, batch_size=4096).fit(X[::5], y[::5])
    np.testing.assert_allclose(
        small.predict_proba(X), large.predict_proba(X), atol=1e-5
    )


def test_image_arrays_with_conv4():
    rng = np.random.RandomState(0)
    images = rng.rand(12, 1, 28, 28).astype(np.float32)
    labels = np.repeat(["a", "b", "c"], 4)
    torch.manual_seed(0)
    clf = PrototypicalClassifier(Conv4()).fit(images, labels)
    assert clf.prototypes_.shape == (3, 64)
    flat = PrototypicalClassifier(clf.encoder).fit(images.reshape(12, -1), labels)
    np.testing.assert_allclose(clf.prototypes_, flat.prototypes_, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        clf.predict(rng.rand(2, 1, 14, 14))


# -- a meta-trained encoder in the scikit-learn tool chain ---------------------


def test_clone_keeps_a_fitted_trainer(fitted_trainer):
    clf = PrototypicalClassifier(fitted_trainer)
    assert clone(clf).encoder is fitted_trainer
    # An unfitted trainer is cloned the ordinary way.
    fresh = tiny_trainer()
    assert clone(PrototypicalClassifier(fresh)).encoder is not fresh


def test_grid_search_and_cross_validation_never_retrain(fitted_trainer, digits):
    weights = _weights(fitted_trainer)
    n_epochs = len(fitted_trainer.history)
    X, y = digits["X_novel"], digits["y_novel"]
    search = GridSearchCV(
        PrototypicalClassifier(fitted_trainer),
        {"metric": ["sqeuclidean", "cosine"], "temperature": [0.5, 2.0]},
        cv=EpisodicSplit(5, 5, 5, n_episodes=4, random_state=0),
    ).fit(X, y)
    scores = cross_val_score(
        search.best_estimator_, X, y, cv=EpisodicSplit(5, 1, 5, 10, random_state=0)
    )
    assert scores.mean() > 0.5
    assert search.best_estimator_.encoder_ is fitted_trainer
    assert len(fitted_trainer.history) == n_epochs
    _assert_same_weights(weights, fitted_trainer)


def test_frozen_estimator_encoder(fitted_trainer, digits):
    weights = _weights(fitted_trainer)
    X, y = digits["X_novel"], digits["y_novel"]
    frozen = PrototypicalClassifier(FrozenEstimator(fitted_trainer))
    plain = PrototypicalClassifier(fitted_trainer)
    np.testing.assert_array_equal(
        clone(frozen).fit(X[::4], y[::4]).predict(X),
        plain.fit(X[::4], y[::4]).predict(X),
    )
    _assert_same_weights(weights, fitted_trainer)


def test_unfitted_trainer_is_meta_trained_on_a_clone(digits):
    trainer = tiny_trainer()
    clf = PrototypicalClassifier(trainer).fit(digits["X_base"], digits["y_base"])
    assert not trainer.initialized_, "the parameter itself stays unfitted"
    assert isinstance(clf.encoder_, EpisodicTrainer)
    assert len(clf.encoder_.history) == trainer.max_epochs


def test_grid_search_over_meta_training_parameters(digits):
    X, y = digits["X_base"], digits["y_base"]
    search = GridSearchCV(
        PrototypicalClassifier(tiny_trainer()),
        {"encoder__lr": [1e-3, 1e-2], "encoder__max_epochs": [1, 2]},
        cv=3,
    ).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert (
        len(search.best_estimator_.encoder_.history)
        == (search.best_params_["encoder__max_epochs"])
    )


def test_grid_search_with_processes(fitted_trainer, digits):
    X, y = digits["X_novel"], digits["y_novel"]
    grid = {"metric": ["sqeuclidean", "cosine"]}
    cv = EpisodicSplit(5, 5, 5, n_episodes=3, random_state=0)
    serial = GridSearchCV(PrototypicalClassifier(fitted_trainer), grid, cv=cv).fit(X, y)
    parallel = GridSearchCV(
        PrototypicalClassifier(fitted_trainer), grid, cv=cv, n_jobs=2
    ).fit(X, y)
    np.testing.assert_allclose(
        serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"]
    )


def test_pipeline_with_scaler(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), PrototypicalClassifier(MLP(out_features=8)))
    assert pipe.fit(X, y).score(X, y) > 0.9


def test_pandas_input_with_string_labels(blobs):
    X, y = blobs
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    labels = pd.Series(np.array(["ant", "bee", "cat", "dog"])[y])
    clf = PrototypicalClassifier().fit(frame, labels)
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert set(clf.predict(frame)) <= {"ant", "bee", "cat", "dog"}
    assert clf.score(frame, labels) > 0.9


@pytest.mark.parametrize("kind", ["identity", "module", "trainer"])
def test_pickle_round_trip(kind, blobs, fitted_trainer, digits):
    if kind == "trainer":
        X, y = digits["X_novel"], digits["y_novel"]
        clf = PrototypicalClassifier(fitted_trainer)
    else:
        X, y = blobs
        clf = PrototypicalClassifier(None if kind == "identity" else MLP())
    clf.fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict(X), clf.predict(X))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_one_shot_support_sets_fit_without_a_regression_warning():
    # 30 classes of one example each: scikit-learn's heuristic would call y
    # continuous-looking; for a few-shot support set that is the normal case.
    X = np.arange(60, dtype=float).reshape(30, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PrototypicalClassifier().fit(X, [f"class {i}" for i in range(30)])
