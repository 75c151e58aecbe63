"""Zero-shot prototypes from class metadata: estimator, trainer, attribute table."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import NearestCentroid

from sklearn_protonet.datasets import load_digit_attributes
from sklearn_protonet.modules import MLP
from sklearn_protonet.zero_shot import (
    ZeroShotEncoders,
    ZeroShotPrototypicalClassifier,
    ZeroShotTrainer,
)

SEEN, UNSEEN = [0, 1, 2, 3, 4, 6, 7], [5, 8, 9]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def _trainer(**params):
    torch.manual_seed(0)
    pair = ZeroShotEncoders(
        MLP(64, hidden_sizes=(32,), out_features=16),
        MLP(12, hidden_sizes=(16,), out_features=16),
    )
    defaults = dict(
        n_way=4,
        n_query=5,
        episodes_per_epoch=20,
        max_epochs=2,
        random_state=0,
        verbose=0,
    )
    return ZeroShotTrainer(pair, **{**defaults, **params})


@pytest.fixture(scope="module")
def trained(digits):
    X, y = digits
    seen = np.isin(y, SEEN)
    return _trainer(max_epochs=3).fit(
        X[seen], y[seen], metadata=load_digit_attributes()
    )


def test_attribute_table():
    table = load_digit_attributes()
    assert table.shape == (10, 12)
    assert list(table.index) == list(range(10))
    assert table.index.name == "digit"
    assert np.isfinite(table.to_numpy()).all()
    # Every digit is told apart by its attributes.
    assert len(np.unique(table.to_numpy(), axis=0)) == 10


def test_identity_is_nearest_centroid():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), np.repeat(["a", "b", "c"], 10)
    queries = rng.normal(size=(50, 4))
    zero_shot = ZeroShotPrototypicalClassifier().fit(X, y)
    np.testing.assert_array_equal(
        zero_shot.predict(queries), NearestCentroid().fit(X, y).predict(queries)
    )


def test_fit_on_a_frame_indexed_by_class(trained, digits):
    X, y = digits
    unseen = np.isin(y, UNSEEN)
    metadata = load_digit_attributes().loc[UNSEEN]
    clf = ZeroShotPrototypicalClassifier(trained).fit(metadata)
    np.testing.assert_array_equal(clf.classes_, UNSEEN)
    assert clf.prototypes_.shape == (3, 16)
    # n_features_in_ describes the samples predict takes (the encoder's
    # input), not the metadata table.
    assert clf.n_features_in_ == X.shape[1]
    assert not hasattr(clf, "feature_names_in_")
    with pytest.raises(ValueError, match="X has 3 features, but"):
        clf.predict(X[:2, :3])
    assert clf.predict(X[unseen]).shape == (unseen.sum(),)
    proba = clf.predict_proba(X[unseen][:5])
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    # The same pair as a module or as a frozen trainer: the same prototypes.
    for encoder in (trained.module_, FrozenEstimator(trained)):
        other = ZeroShotPrototypicalClassifier(encoder).fit(metadata)
        np.testing.assert_allclose(other.prototypes_, clf.prototypes_)


def test_trainer_learns(trained):
    losses = trained.history[:, "train_loss"]
    assert losses[-1] < losses[0]


def test_trainer_is_deterministic(digits):
    X, y = digits
    first, second = (
        _trainer(max_epochs=1, episodes_per_epoch=5).fit(
            X, y, metadata=load_digit_attributes()
        )
        for _ in range(2)
    )
    np.testing.assert_array_equal(
        first.history[:, "train_loss"], second.history[:, "train_loss"]
    )
    np.testing.assert_allclose(
        first.transform_metadata(load_digit_attributes()),
        second.transform_metadata(load_digit_attributes()),
    )


def test_trainer_validates_on_held_out_classes(digits):
    from sklearn_protonet import ClassSplit

    X, y = digits
    trainer = _trainer(
        n_way=3,
        max_epochs=1,
        episodes_per_epoch=5,
        valid_episodes=5,
        train_split=ClassSplit(3, random_state=0),
    )
    trainer.fit(X, y, metadata=load_digit_attributes())
    assert np.isfinite(trainer.history[:, "valid_acc"]).all()


def test_metadata_weight_blends_examples(trained, digits):
    X, y = digits
    metadata = load_digit_attributes().loc[UNSEEN]
    support = np.flatnonzero(np.isin(y, UNSEEN))[:30]
    meta_only = ZeroShotPrototypicalClassifier(trained).fit(metadata)
    heavy = ZeroShotPrototypicalClassifier(trained, metadata_weight=1e9).fit(
        metadata, X_support=X[support], y_support=y[support]
    )
    np.testing.assert_allclose(heavy.prototypes_, meta_only.prototypes_, atol=1e-5)
    light = ZeroShotPrototypicalClassifier(trained, metadata_weight=1e-9).fit(
        metadata, X_support=X[support], y_support=y[support]
    )
    embedded = trained.transform(X[support])
    means = [embedded[y[support] == c].mean(0) for c in UNSEEN]
    np.testing.assert_allclose(light.prototypes_, means, atol=1e-5)
    # A class without examples keeps its metadata prototype.
    some = support[y[support] != 9]
    partial = ZeroShotPrototypicalClassifier(trained).fit(
        metadata, X_support=X[some], y_support=y[some]
    )
    np.testing.assert_allclose(partial.prototypes_[2], meta_only.prototypes_[2])


def _frame(**changes):
    table = load_digit_attributes().loc[UNSEEN].copy()
    for column, value in changes.items():
        table[column] = value
    return table


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda t: ZeroShotPrototypicalClassifier(t).fit(
                _frame(shape=["round", "round", "bar"])
            ),
            r"columns \['shape'\] are not numeric; encode them first",
        ),
        (
            lambda t: ZeroShotPrototypicalClassifier(t).fit(
                _frame(closed_loops=[1.0, np.nan, 0.0])
            ),
            r"missing or infinite values for classes \['8'\] in columns "
            r"\['closed_loops'\]; impute them",
        ),
        (
            lambda t: ZeroShotPrototypicalClassifier(t).fit(_frame().to_numpy()),
            r"requires y to be passed, but the target y is None",
        ),
        (
            lambda t: ZeroShotPrototypicalClassifier(t).fit(
                _frame(), X_support=np.zeros((1, 64)), y_support=[3]
            ),
            r"classes \[3\] in y_support have no metadata row",
        ),
        (
            lambda t: ZeroShotPrototypicalClassifier(t).fit(
                _frame(), X_support=np.zeros((1, 64))
            ),
            r"Pass both X_support and y_support, or neither",
        ),
        (
            lambda t: ZeroShotPrototypicalClassifier(_trainer()).fit(_frame()),
            r"not fitted yet: meta-train it first",
        ),
        (
            lambda t: ZeroShotPrototypicalClassifier(t).fit(_frame().iloc[:1]),
            r"at least 2 classes, got 1 class",
        ),
    ],
)
def test_classifier_bad_input(trained, call, match):
    with pytest.raises(ValueError, match=match):
        call(trained)


def test_classifier_rejects_other_encoders():
    with pytest.raises(TypeError, match="ZeroShotEncoders module or a fitted"):
        ZeroShotPrototypicalClassifier(MLP(4)).fit(_frame())


def test_trainer_bad_input(digits):
    X, y = digits
    table = load_digit_attributes()
    with pytest.raises(ValueError, match=r"classes \[9\] in y have no metadata row"):
        _trainer().fit(X, y, metadata=table.drop(index=9))
    with pytest.raises(ValueError, match="needs X, y and metadata"):
        _trainer().fit(X, y)
    doubled = pd.concat([table, table.loc[[3]]])
    with pytest.raises(ValueError, match=r"several rows for classes \[3\]"):
        _trainer().fit(X, y, metadata=doubled)
    nan = table.assign(loop_upper=table["loop_upper"].where(table.index != 2))
    with pytest.raises(
        ValueError, match=r"classes \['2'\] in columns \['loop_upper'\]"
    ):
        _trainer().fit(X, y, metadata=nan)
    with pytest.raises(TypeError, match="wrap the encoders in ZeroShotEncoders"):
        ZeroShotTrainer(MLP(64), verbose=0).fit(X, y, metadata=table)
    with pytest.raises(ValueError, match="episode_loss must be 'prototypical'"):
        _trainer(episode_loss="nca").fit(X, y, metadata=table)


def test_no_partial_fit_and_no_rejection():
    # Prototypes come from metadata: nothing to grow incrementally and no
    # support set to calibrate a rejection threshold on.
    assert not hasattr(ZeroShotPrototypicalClassifier(), "partial_fit")
    rng = np.random.default_rng(0)
    metadata = pd.DataFrame(rng.normal(size=(3, 4)), index=["a", "b", "c"])
    far = 1e3 * rng.normal(size=(5, 4))
    labels = ZeroShotPrototypicalClassifier().fit(metadata).predict(far)
    assert set(labels) <= {"a", "b", "c"}
