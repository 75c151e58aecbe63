"""The scikit-learn contract of the opt-in features, from the user's side:
rejection, partial_fit's classes, the unlabeled marker, deep parameters of a
fitted encoder, images alike in fit and predict, zero-shot's input width and
a classifier served from several threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import make_blobs
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.contracts import InputContractWarning
from sklearn_protonet.modules import MLP
from sklearn_protonet.pretrained import load_pretrained


@pytest.fixture
def blobs():
    X, y = make_blobs(n_samples=305, centers=5, n_features=4, random_state=0)
    return X, y


# -- 1. rejection keeps predict, predict_proba and decision_function in step --


@pytest.mark.parametrize("unknown", [-1, 99])
def test_rejection_outputs_agree_on_every_row(blobs, unknown):
    X, y = blobs
    clf = PrototypicalClassifier(unknown_label=unknown, rejection_quantile=0.8)
    clf.fit(X[:100], y[:100])
    queries = np.r_[X[100:], 20 * np.random.default_rng(0).normal(size=(50, 4))]
    labels = clf.predict(queries)
    assert set(labels) >= {unknown} and unknown == clf.classes_[-1]
    for scores in (
        clf.predict_proba(queries),
        clf.predict_log_proba(queries),
        clf.decision_function(queries),
    ):
        np.testing.assert_array_equal(clf.classes_[scores.argmax(1)], labels)
    # The unknown column rises exactly where the nearest prototype is beyond
    # the threshold.
    rejected = -clf.score_samples(queries) > clf.threshold_
    np.testing.assert_array_equal(labels == unknown, rejected)


def test_string_labels_with_a_string_unknown_label_score():
    X, y = make_blobs(n_samples=60, centers=3, random_state=0)
    names = np.array(["ant", "bee", "cat"])[y]
    clf = PrototypicalClassifier(unknown_label="other").fit(X, names)
    assert clf.predict(X).dtype.kind == "U"
    assert 0.0 <= clf.score(X, names) <= 1.0


# -- 2. partial_fit the scikit-learn way --------------------------------------


def test_partial_fit_classes_fix_the_columns_like_sgd(blobs):
    X, y = blobs
    first = np.isin(y, [0, 1])
    clf = PrototypicalClassifier().partial_fit(X[first], y[first], classes=[0, 1, 2])
    sgd = SGDClassifier(random_state=0).partial_fit(
        X[first], y[first], classes=[0, 1, 2]
    )
    np.testing.assert_array_equal(clf.classes_, sgd.classes_)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    # A class without an example is never predicted and has probability 0.
    assert (proba[:, 2] == 0).all() and 2 not in set(clf.predict(X))
    # Its first examples make it a class like the others.
    third = y == 2
    clf.partial_fit(X[third], y[third])
    assert 2 in set(clf.predict(X[third]))
    # Later labels outside classes are refused, as by SGDClassifier.
    with pytest.raises(ValueError, match="not in the classes given"):
        clf.partial_fit(X[:2], [0, 4])
    with pytest.raises(ValueError, match="is not the same as on the first call"):
        clf.partial_fit(X[:2], [0, 1], classes=[0, 1])


def test_partial_fit_first_batch_of_one_class_with_classes(blobs):
    X, y = blobs
    clf = PrototypicalClassifier().partial_fit(X[y == 3], y[y == 3], classes=[3, 4])
    assert set(clf.predict(X)) == {3}
    with pytest.raises(ValueError, match="at least 2 classes in y"):
        PrototypicalClassifier().partial_fit(X[y == 3], y[y == 3])


@pytest.mark.parametrize(
    "params",
    [{"unknown_label": -1}, {"refinement_steps": 2}, {"metric": "mahalanobis"}],
)
def test_partial_fit_is_hidden_where_it_cannot_work(params):
    clf = PrototypicalClassifier(**params)
    assert not hasattr(clf, "partial_fit")
    assert hasattr(PrototypicalClassifier(), "partial_fit")


# -- 3. the unlabeled marker ---------------------------------------------------


def test_binary_minus_one_plus_one_with_refinement(blobs):
    X, y = blobs
    two = np.isin(y, [0, 1])
    labels = np.where(y[two] == 0, -1, 1)
    # -1 is a real class here: another marker keeps refinement usable.
    marked = labels.copy()
    marked[10:] = 0
    clf = PrototypicalClassifier(refinement_steps=3, unlabeled_label=0)
    clf.fit(X[two], marked)
    np.testing.assert_array_equal(clf.classes_, [-1, 1])
    assert clf.score(X[two], labels) > 0.9


def test_minus_one_is_an_ordinary_label_without_refinement(blobs):
    X, y = blobs
    labels = np.where(y == 0, -1, y)
    clf = PrototypicalClassifier().fit(X, labels)
    assert -1 in clf.classes_


def test_unlabeled_rows_refine_with_the_default_marker(blobs):
    X, y = blobs
    labels = y.copy()
    labels[5:] = -1
    clf = PrototypicalClassifier(refinement_steps=2).fit(X, labels)
    assert -1 not in clf.classes_


# -- 6. deep parameters of a fitted encoder ------------------------------------


def test_set_params_round_trip_with_a_fitted_encoder(blobs):
    X, y = blobs
    trainer = EpisodicTrainer(
        MLP,
        module__in_features=4,
        module__out_features=3,
        n_way=3,
        n_shot=1,
        n_query=2,
        max_epochs=1,
        episodes_per_epoch=2,
        train_split=None,
        verbose=0,
    ).fit(X.astype(np.float32), y)
    clf = PrototypicalClassifier(trainer)
    clf.set_params(**clf.get_params(deep=True))
    pipe = make_pipeline(StandardScaler(), PrototypicalClassifier(trainer))
    pipe.set_params(**pipe.get_params(deep=True))
    with pytest.raises(ValueError, match="is frozen"):
        clf.set_params(encoder__lr=0.5)


# -- 8. images alike in fit and predict ---------------------------------------


def _omniglot_like(n, seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
        row = rng.integers(4, 20)
        images[i, row : row + 3, 4:24] = 1.0
    return images


def test_lists_of_pil_images_in_fit_and_predict():
    images = (_omniglot_like(6) * 255).astype(np.uint8)
    pil = [Image.fromarray(image) for image in images]
    clf = PrototypicalClassifier()
    clf.fit(pil, [0, 0, 1, 1, 2, 2])
    assert clf.predict(pil).shape == (6,)


def test_file_paths_point_to_the_image_reader():
    with pytest.raises(ValueError, match="ImageReader"):
        PrototypicalClassifier().fit(np.array([["a.png"], ["b.png"]]), [0, 1])


def test_wrong_image_size_at_predict_explains_the_contract():
    encoder = load_pretrained("omniglot-conv4-1shot")
    clf = PrototypicalClassifier(encoder).fit(
        _omniglot_like(4).reshape(4, -1), [0, 0, 1, 1]
    )
    with pytest.raises(ValueError, match=r"input contract|\(1, 28, 28\)"):
        clf.predict(np.zeros((2, 64), np.float32))


def test_value_range_is_checked_at_predict_too():
    encoder = load_pretrained("omniglot-conv4-1shot")
    support = _omniglot_like(4).reshape(4, -1)
    clf = PrototypicalClassifier(encoder).fit(support, [0, 0, 1, 1])
    with pytest.warns(InputContractWarning, match="queries"):
        clf.predict(support * 255)


# -- 9. zero-shot's fitted attributes describe predict's X ---------------------


def test_zero_shot_identity_width_is_the_samples():
    import pandas as pd

    from sklearn_protonet.zero_shot import ZeroShotPrototypicalClassifier

    metadata = pd.DataFrame({"x": [0.0, 5.0], "y": [0.0, 5.0]}, index=["a", "b"])
    clf = ZeroShotPrototypicalClassifier().fit(metadata)
    assert clf.n_features_in_ == 2
    with pytest.raises(ValueError, match="X has 3 features"):
        clf.predict(np.zeros((1, 3)))


# -- 10. a serving classifier shared by threads -------------------------------


def test_predict_while_partial_fit_adds_classes_never_mixes_states():
    rng = np.random.default_rng(0)
    centres = 10.0 * rng.normal(size=(40, 8))
    clf = PrototypicalClassifier().partial_fit(centres[:2], [0, 1])
    queries = centres[:2]
    errors, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            labels = clf.predict(queries)
            # Every state has classes 0 and 1 at their centres: a reader that
            # saw new classes with old prototypes would predict others.
            if list(labels) != [0, 1]:
                errors.append(labels)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for c in range(2, 40):
            clf.partial_fit(centres[c : c + 1], [c])
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not errors
    assert len(clf.classes_) == 40


# -- rules between parameters, from the metric's capabilities ------------------


@pytest.mark.parametrize(
    "params, first, second",
    [
        ({"metric": "gaussian", "normalization": "cl2n"}, "normalization", "metric"),
        (
            {"metric": "mahalanobis", "refinement_steps": 2},
            "refinement_steps",
            "metric",
        ),
        (
            {"metric": "mahalanobis", "fine_tune_steps": 2, "encoder": MLP()},
            "fine_tune_steps",
            "metric",
        ),
    ],
)
def test_impossible_combinations_are_refused_naming_both(params, first, second):
    X = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=rf"{first}=.*{second}="):
        PrototypicalClassifier(**params).fit(X, [0, 0, 1, 1, 2, 2, 3, 3])
