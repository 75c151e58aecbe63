"""The scikit-learn contract with fitted encoders, output API, reprs, sparse
input: the cases of an outside audit, each as a class of cases."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.modules import MLP

from .conftest import tiny_trainer


def _snapshot(trainer) -> tuple[str, dict, int]:
    """What a user could observe of a trainer: parameters, weights, history."""
    params = repr(sorted(trainer.get_params(deep=False).items(), key=str))
    weights = {k: v.clone() for k, v in trainer.module_.state_dict().items()}
    return params, weights, len(trainer.history)


def _assert_unchanged(trainer, snapshot):
    params, weights, epochs = _snapshot(trainer)
    assert params == snapshot[0]
    assert epochs == snapshot[2]
    assert weights.keys() == snapshot[1].keys()
    for name, value in weights.items():
        assert torch.equal(value, snapshot[1][name]), name


@pytest.fixture
def own_trainer(digits):
    """A fitted trainer of the test's own (the session one is shared)."""
    trainer = tiny_trainer(n_way=5, episodes_per_epoch=5, max_epochs=1)
    return trainer.fit(digits["X_base"], digits["y_base"])


def _frozen_encoders(trainer):
    return {
        "trainer": trainer,
        "frozen-estimator": FrozenEstimator(trainer),
    }


# -- 1. a fitted encoder is frozen -------------------------------------------

NESTED = [
    {"encoder__lr": 0.5},
    {"encoder__module__out_features": 8},
    {"encoder__max_epochs": 1, "encoder__n_way": 2},
    {"encoder__callbacks__print_log": None},
    {"encoder__estimator__lr": 0.5},
]


@pytest.mark.parametrize("kind", ["trainer", "frozen-estimator"])
@pytest.mark.parametrize("params", NESTED, ids=lambda p: ",".join(p))
@pytest.mark.parametrize("via_clone", [False, True])
def test_fitted_encoder_params_cannot_be_set(own_trainer, kind, params, via_clone):
    encoder = _frozen_encoders(own_trainer)[kind]
    clf = PrototypicalClassifier(encoder)
    if via_clone:
        clf = clone(clf)
        assert clf.encoder is encoder  # shared, never copied
    before = _snapshot(own_trainer)
    with pytest.raises(ValueError, match=r"is frozen.*clone\(trainer\)"):
        clf.set_params(**params)
    _assert_unchanged(own_trainer, before)


def test_replacing_the_encoder_sets_the_new_ones_params(own_trainer):
    """set_params(encoder=unfitted, encoder__lr=...) targets the new encoder."""
    unfitted = tiny_trainer()
    clf = PrototypicalClassifier(own_trainer)
    clf.set_params(encoder=unfitted, encoder__lr=0.5)
    assert clf.encoder is unfitted and unfitted.lr == 0.5
    with pytest.raises(ValueError, match="is frozen"):
        PrototypicalClassifier().set_params(encoder=own_trainer, encoder__lr=0.5)


def test_unfitted_encoder_params_are_tunable():
    trainer = tiny_trainer()
    clf = clone(PrototypicalClassifier(trainer)).set_params(encoder__lr=0.5)
    assert clf.encoder.lr == 0.5 and trainer.lr != 0.5


@pytest.mark.parametrize("kind", ["trainer", "frozen-estimator"])
def test_grid_search_over_encoder_params_of_a_fitted_encoder_fails_alike(
    own_trainer, digits, kind
):
    """n_jobs=1 (shared encoder) and n_jobs=2 (pickled copies) agree: both
    refuse, and the user's trainer is unchanged."""
    before = _snapshot(own_trainer)
    clf = PrototypicalClassifier(_frozen_encoders(own_trainer)[kind])
    grid = {"encoder__lr": [1e-3, 1e-2], "encoder__module__out_features": [8, 16]}
    for n_jobs in (1, 2):
        search = GridSearchCV(clf, grid, cv=2, n_jobs=n_jobs, error_score="raise")
        with pytest.raises(ValueError, match="is frozen"):
            search.fit(digits["X_novel"][:60], digits["y_novel"][:60])
        _assert_unchanged(own_trainer, before)


@pytest.mark.parametrize("kind", ["trainer", "frozen-estimator"])
def test_grid_search_with_a_fitted_encoder_is_the_same_on_any_n_jobs(
    own_trainer, digits, kind
):
    before = _snapshot(own_trainer)
    clf = PrototypicalClassifier(_frozen_encoders(own_trainer)[kind])
    grid = {"temperature": [0.5, 2.0], "normalization": [None, "l2"]}
    X, y = digits["X_novel"][:120], digits["y_novel"][:120]
    results = []
    for n_jobs in (1, 2):
        search = GridSearchCV(clf, grid, cv=3, n_jobs=n_jobs, scoring="neg_log_loss")
        search.fit(X, y)
        results.append(search.cv_results_["mean_test_score"])
        assert search.best_estimator_.encoder_ is clf.encoder  # refit: shared
        _assert_unchanged(own_trainer, before)
    np.testing.assert_array_equal(results[0], results[1])


def test_cross_val_score_with_a_fitted_encoder(own_trainer, digits):
    before = _snapshot(own_trainer)
    X, y = digits["X_novel"][:120], digits["y_novel"][:120]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = [
        cross_val_score(PrototypicalClassifier(own_trainer), X, y, cv=cv, n_jobs=n)
        for n in (1, 2)
    ]
    np.testing.assert_array_equal(scores[0], scores[1])
    _assert_unchanged(own_trainer, before)


def test_grid_search_retrains_an_unfitted_trainer_and_leaves_it_unfitted(digits):
    trainer = tiny_trainer(n_way=3, episodes_per_epoch=2, max_epochs=1)
    search = GridSearchCV(
        PrototypicalClassifier(trainer), {"encoder__lr": [1e-3, 1e-2]}, cv=2
    )
    search.fit(digits["X_base"][:200], digits["y_base"][:200])
    assert not hasattr(trainer, "module_") or not trainer.initialized_
    assert search.best_estimator_.encoder_ is not trainer
    assert search.best_estimator_.encoder_.lr == search.best_params_["encoder__lr"]


# -- 2. input width and feature names of fitted encoders ---------------------

WIDTH = r"X has 3 features, but \w+ is expecting 6 features as input"


def _trainer_on(X, y):
    return tiny_trainer().fit(X, y)


@pytest.fixture(scope="module")
def table():
    return np.random.RandomState(0).rand(40, 6), np.repeat(list("abcd"), 10)


def test_trainer_records_and_checks_its_input_width(table):
    X, y = table
    trainer = _trainer_on(X, y)
    assert trainer.n_features_in_ == 6 and not hasattr(trainer, "feature_names_in_")
    with pytest.raises(ValueError, match=WIDTH.replace(r"\w+", "EpisodicTrainer")):
        trainer.transform(X[:, :3])
    with pytest.raises(ValueError, match=r"X has 7 features"):
        trainer.partial_fit(np.hstack([X, X[:, :1]]), y)
    assert trainer.fit(X[:, :3], y).n_features_in_ == 3  # fit starts afresh


def test_trainer_records_feature_names(table):
    X, y = table
    frame = pd.DataFrame(X, columns=list("abcdef"))
    trainer = _trainer_on(frame, y)
    np.testing.assert_array_equal(trainer.feature_names_in_, list("abcdef"))
    with pytest.raises(ValueError, match="feature names should match"):
        trainer.transform(frame.rename(columns={"f": "g"}))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        trainer.transform(X)


@pytest.mark.parametrize(
    "make_encoder",
    [
        lambda X, y: _trainer_on(X, y),
        lambda X, y: FrozenEstimator(_trainer_on(X, y)),
        lambda X, y: torch.nn.Linear(6, 2),
        lambda X, y: torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU()),
        lambda X, y: MLP(in_features=6, hidden_sizes=(4,)),
        lambda X, y: _trainer_on(X, y).module_,  # a trainer's module alone
    ],
    ids=["trainer", "frozen", "linear", "sequential", "mlp", "module-of-trainer"],
)
@pytest.mark.parametrize("method", ["fit", "transform-after-fit"])
def test_wrong_width_is_refused_with_sklearns_message(table, make_encoder, method):
    X, y = table
    clf = PrototypicalClassifier(make_encoder(X, y))
    if method == "fit":
        with pytest.raises(ValueError, match=r"X has 3 features, but \w+ is expect"):
            clf.fit(X[:, :3], y)
    else:
        clf.fit(X, y)
        with pytest.raises(ValueError, match=r"X has 3 features, but \w+ is expect"):
            clf.transform(X[:, :3])


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 4, 4)])
def test_image_encoders_state_their_width(shape):
    """Image modules name the shape they take (their own check)."""
    from sklearn_protonet.modules import Conv4, RandomShift

    n = int(np.prod(shape))
    y = np.repeat([0, 1], 3)
    X = np.random.RandomState(0).rand(6, n + 1)
    for encoder in [
        Conv4(input_shape=shape, n_blocks=2, hidden_channels=4),
        torch.nn.Sequential(
            RandomShift(shape), Conv4(input_shape=shape, n_blocks=2, hidden_channels=4)
        ),
    ]:
        with pytest.raises(ValueError, match=f"rows of {n} values.*got {n + 1}"):
            PrototypicalClassifier(encoder).fit(X, y)
        PrototypicalClassifier(encoder).fit(X[:, :n], y)  # flat rows
        PrototypicalClassifier(encoder).fit(X[:, :n].reshape(6, *shape), y)


def test_classifier_checks_names_against_the_encoders(table):
    X, y = table
    frame = pd.DataFrame(X, columns=list("abcdef"))
    trainer = _trainer_on(frame, y)
    with pytest.raises(ValueError, match="feature names should match"):
        PrototypicalClassifier(trainer).fit(frame[list("bacdef")], y)
    with pytest.warns(UserWarning, match="EpisodicTrainer was fitted with feature"):
        PrototypicalClassifier(trainer).fit(X, y)
    PrototypicalClassifier(trainer).fit(frame, y)  # same names: silent


# -- 3. scikit-learn's output API ---------------------------------------------


def _output_estimators(digits):
    X, y = digits["X_novel"][:60], digits["y_novel"][:60]
    trainer = tiny_trainer(n_way=5, episodes_per_epoch=2, max_epochs=1)
    return (
        X,
        y,
        {
            "identity": PrototypicalClassifier(),
            "module": PrototypicalClassifier(MLP(hidden_sizes=(8,), out_features=4)),
            "trainer-in-classifier": PrototypicalClassifier(clone(trainer)),
            "l2": PrototypicalClassifier(normalization="l2"),
            "trainer": clone(trainer),
        },
    )


@pytest.mark.parametrize(
    "name", ["identity", "module", "trainer-in-classifier", "l2", "trainer"]
)
@pytest.mark.parametrize("how", ["set_output", "config_context", "pipeline"])
def test_pandas_output(digits, name, how):
    import sklearn
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, estimators = _output_estimators(digits)
    estimator = estimators[name]
    prefix = type(estimator).__name__.lower()
    if how == "pipeline":
        estimator = make_pipeline(StandardScaler(), estimator)
    if how == "config_context":
        with sklearn.config_context(transform_output="pandas"):
            out, again = estimator.fit_transform(X, y), estimator.transform(X[:5])
    else:
        estimator.set_output(transform="pandas")
        out, again = estimator.fit_transform(X, y), estimator.transform(X[:5])
    names = estimator.get_feature_names_out()
    assert isinstance(out, pd.DataFrame) and isinstance(again, pd.DataFrame)
    assert list(out.columns) == list(names) == list(again.columns)
    assert list(names) == [f"{prefix}{i}" for i in range(out.shape[1])]
    plain = clone(estimator).set_output(transform="default").fit(X, y).transform(X)
    np.testing.assert_allclose(out.to_numpy(), plain, rtol=1e-6)
    if how == "pipeline" and name != "trainer":
        assert len(estimator.predict(X[:5])) == 5  # predict is unaffected


def test_feature_names_out_need_a_fit():
    from sklearn.exceptions import NotFittedError

    for estimator in (PrototypicalClassifier(), tiny_trainer()):
        with pytest.raises(NotFittedError):
            estimator.get_feature_names_out()


# -- 4. reprs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params, shown",
    [
        ({"n_way": 20, "lr": 0.01}, "lr=0.01, module=<class 'sklearn_protonet."),
        ({"device": "cpu", "verbose": 1}, "EpisodicTrainer(module=<class"),
        ({"module__hidden_sizes": (8,), "max_epochs": 3}, "module__hidden_sizes=(8,)"),
        ({"callbacks": [], "train_split": None}, "train_split=None"),
    ],
)
def test_trainer_repr_shows_changed_parameters_like_sklearn(params, shown):
    text = repr(EpisodicTrainer(MLP, **params))
    assert text.startswith("EpisodicTrainer(") and shown in text
    for name, value in params.items():
        default = (name == "device" and value == "cpu") or (
            name == "verbose" and value == 1
        )
        assert (f"{name}=" in text) != default, (name, text)
    assert "_params_to_validate" not in text


def test_nested_repr_wraps_and_hides_private_attributes(own_trainer):
    for clf in (
        PrototypicalClassifier(EpisodicTrainer(MLP, n_way=20, lr=0.01)),
        PrototypicalClassifier(own_trainer, temperature=2.0),
        PrototypicalClassifier(FrozenEstimator(own_trainer)),
    ):
        text = repr(clf)
        lines = text.splitlines()
        # Wrapped as scikit-learn wraps nested estimators: one parameter per
        # line once a line is full (the audit found one 557-character line).
        assert len(lines) > 1 and max(map(len, lines)) <= 130, text
        assert "_params_to_validate" not in text
        assert not [k for k in clf.get_params(deep=True) if "__" in k and "___" in k]
        assert not any(k.split("__")[-1].startswith("_") for k in clf.get_params())


@pytest.mark.parametrize(
    "make",
    [
        lambda t: EpisodicTrainer(MLP, n_way=20, lr=0.01),
        lambda t: PrototypicalClassifier(clone(t)),
        lambda t: PrototypicalClassifier(t),
        lambda t: PrototypicalClassifier(FrozenEstimator(t)).fit(
            np.random.rand(4, 64), [0, 0, 1, 1]
        ),
        lambda t: t,
        lambda t: PrototypicalClassifier(MLP(hidden_sizes=(4,))),
    ],
)
def test_html_repr_has_no_memory_addresses(own_trainer, make):
    html = make(own_trainer)._repr_html_()
    assert not re.findall(r"0x[0-9a-fA-F]{6,}", html)
    assert "_params_to_validate" not in html


def test_clone_of_the_trainer_keeps_every_parameter(own_trainer):
    params = own_trainer.get_params(deep=False)
    assert params == clone(own_trainer).get_params(deep=False) or repr(
        sorted(params.items(), key=str)
    ) == repr(sorted(clone(own_trainer).get_params(deep=False).items(), key=str))
    assert not [name for name in params if name.startswith("_")]


# -- 5. sparse input -----------------------------------------------------------


def _sparse_data(n=240, d=3000, density=0.01, seed=0):
    """Random CSR rows (built directly: scipy's sparse.random samples among
    all n x d cells, which takes minutes for a million columns)."""
    import scipy.sparse as sp

    rng = np.random.RandomState(seed)
    nnz = int(n * d * density)
    rows, cols = rng.randint(0, n, nnz), rng.randint(0, d, nnz)
    X = sp.csr_matrix((rng.rand(nnz), (rows, cols)), shape=(n, d))
    return X, rng.randint(0, 4, n)


@pytest.mark.parametrize("normalization", [None, "l2", "cl2n"])
@pytest.mark.parametrize(
    "metric", ["sqeuclidean", "euclidean", "cosine", "mahalanobis"]
)
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_identity_matches_dense(normalization, metric, fmt):
    X, y = _sparse_data(d=40 if metric == "mahalanobis" else 3000)
    X = X.asformat(fmt)
    weights = np.random.RandomState(1).rand(len(y)) + 0.1
    params = dict(metric=metric, normalization=normalization, batch_size=50)
    sparse = PrototypicalClassifier(**params).fit(X, y, sample_weight=weights)
    dense = PrototypicalClassifier(**params).fit(X.toarray(), y, sample_weight=weights)
    np.testing.assert_allclose(sparse.prototypes_, dense.prototypes_, atol=1e-12)
    np.testing.assert_array_equal(sparse.predict(X), dense.predict(X.toarray()))
    for method in ("predict_proba", "decision_function", "transform"):
        a, b = getattr(sparse, method)(X), getattr(dense, method)(X.toarray())
        a = a.toarray() if hasattr(a, "toarray") else a
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_sparse_identity_agrees_with_nearest_centroid():
    from sklearn.neighbors import NearestCentroid

    X, y = _sparse_data()
    ours = PrototypicalClassifier().fit(X, y)
    theirs = NearestCentroid().fit(X, y)
    np.testing.assert_allclose(ours.prototypes_, theirs.centroids_, atol=1e-15)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_sparse_identity_is_never_densified(monkeypatch):
    """A million TF-IDF-like columns: densifying would take 16 GB; the sparse
    path's peak is the prototypes plus one chunk of distances."""
    import tracemalloc

    import sklearn_protonet._sparse as sparse_module

    def refuse(*args, **kwargs):
        raise AssertionError("the identity path densified sparse rows")

    monkeypatch.setattr(sparse_module, "dense_rows", refuse)
    monkeypatch.setattr(sparse_module, "iter_dense", refuse)
    X, y = _sparse_data(n=2000, d=1_000_000, density=2e-5)
    tracemalloc.start()
    try:
        for normalization in (None, "l2", "cl2n"):
            clf = PrototypicalClassifier(normalization=normalization, metric="cosine")
            clf.fit(X, y).predict_proba(X)
            clf.transform(X) if normalization != "cl2n" else None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200e6, peak  # prototypes: 4 x 1e6 float64 = 32 MB


class _RowCounter(torch.nn.Module):
    """Records the largest batch it embeds."""

    def __init__(self, d):
        super().__init__()
        self.linear = torch.nn.Linear(d, 3)
        self.largest = 0

    def forward(self, X):
        self.largest = max(self.largest, len(X))
        return self.linear(X)


@pytest.mark.parametrize("batch_size", [7, 64])
def test_sparse_rows_reach_modules_in_dense_chunks(batch_size):
    X, y = _sparse_data(n=300, d=500)
    module = _RowCounter(500)
    clf = PrototypicalClassifier(module, batch_size=batch_size).fit(X, y)
    module.largest = 0
    dense = PrototypicalClassifier(module, batch_size=batch_size).fit(X.toarray(), y)
    for method in ("predict_proba", "transform"):
        np.testing.assert_allclose(
            getattr(clf, method)(X), getattr(dense, method)(X.toarray()), rtol=1e-6
        )
    assert module.largest == batch_size


def test_trainer_takes_sparse_rows():
    X, y = _sparse_data(n=200, d=300, density=0.05)
    labels = np.array(list("abcd"))[y]
    trainer = tiny_trainer(batch_size=16).fit(X, labels)
    assert trainer.n_features_in_ == 300
    np.testing.assert_array_equal(trainer.transform(X), trainer.transform(X.toarray()))
    clf = PrototypicalClassifier(tiny_trainer()).fit(X, labels)
    assert clf.predict(X).shape == (200,)


# -- 6. labels and devices, alike in both estimators ----------------------------

_X40 = np.random.RandomState(0).rand(40, 6)


def _fit_either(estimator: str, X, y, **params):
    if estimator == "trainer":
        return tiny_trainer(**params).fit(X, y)
    return PrototypicalClassifier(**params).fit(X, y)


def _missing_labels():
    base = np.repeat(list("abcd"), 10).astype(object)
    cases = {}
    for name, value in [("None", None), ("nan", np.nan), ("pd.NA", pd.NA)]:
        y = base.copy()
        y[[3, 17]] = value
        cases[f"object-{name}"] = y
    y = np.repeat([0.0, 1.0, 2.0, 3.0], 10)
    y[5] = np.nan
    cases["float-nan"] = y
    cases["list-None"] = [*base[:-1].tolist(), None]
    cases["series-None"] = pd.Series([*base[:-1].tolist(), None])
    cases["categorical-nan"] = pd.Series(pd.Categorical([*base[:-1].tolist(), None]))
    return cases


@pytest.mark.parametrize("estimator", ["trainer", "classifier"])
@pytest.mark.parametrize("labels", list(_missing_labels()), ids=str)
def test_missing_labels_are_refused_by_both(estimator, labels):
    y = _missing_labels()[labels]
    with pytest.raises(ValueError, match=r"missing label\(s\) \(None or NaN\) at rows"):
        _fit_either(estimator, _X40, y)


@pytest.mark.parametrize("estimator", ["trainer", "classifier"])
def test_mixed_label_kinds_are_refused_by_both(estimator):
    y = np.repeat(list("abcd"), 10).astype(object)
    y[:10] = 1
    with pytest.raises(ValueError, match=r"y mixes strings with \['int'\] labels"):
        _fit_either(estimator, _X40, y)


@pytest.mark.parametrize("estimator", ["trainer", "classifier"])
@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", "CPU0", 3, 1.5])
def test_device_typos_name_the_parameter(estimator, device):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="The 'device' parameter"):
        _fit_either(estimator, _X40, np.repeat(list("abcd"), 10), device=device)


@pytest.mark.parametrize("estimator", ["trainer", "classifier"])
@pytest.mark.parametrize("device", ["cuda:99", "mps", torch.device("cuda", 99)])
def test_devices_this_machine_lacks_are_refused(estimator, device):
    kind = torch.device(device).type
    if kind == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match=r"device=.*this machine"):
        _fit_either(estimator, _X40, np.repeat(list("abcd"), 10), device=device)
    if estimator == "trainer":  # set_params stores it, fit refuses it
        trainer = tiny_trainer().set_params(device=device)
        with pytest.raises(ValueError, match=r"device=.*this machine"):
            trainer.fit(_X40, np.repeat(list("abcd"), 10))


@pytest.mark.parametrize("device", ["cpu", "cpu:0", torch.device("cpu"), None])
def test_valid_devices_are_accepted(device):
    y = np.repeat(list("abcd"), 10)
    PrototypicalClassifier(device=device).fit(_X40, y).predict(_X40)
    if device is not None:
        tiny_trainer(device=device).fit(_X40, y).transform(_X40)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"inference_dtype": "int8"},
        {"inference_dtype": "bfloat16"},
        {"normalization": "cl2n", "metric": "cosine"},
        {"metric": "mahalanobis"},
    ],
    ids=str,
)
def test_fitting_and_predicting_never_change_a_fitted_encoder(
    own_trainer, digits, params
):
    """Nothing the classifier does changes the user's trainer (item 1)."""
    before = _snapshot(own_trainer)
    own_trainer.module_.train()  # a user's trainer left in train mode stays so
    X, y = digits["X_novel"][:50], digits["y_novel"][:50]
    for encoder in (own_trainer, FrozenEstimator(own_trainer)):
        clf = PrototypicalClassifier(encoder, **params).fit(X, y)
        clf.predict_proba(X)
        clf.transform(X)
        clone(clf).fit(X, y)
    _assert_unchanged(own_trainer, before)
    assert own_trainer.module_.training
