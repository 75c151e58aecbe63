"""Saving and loading: pickle/joblib round trips, and the loaders that never
unpickle (safetensors bundles, skops with a trusted list, torch weights_only).

The "no code run" checks use a live payload: an object whose unpickling
creates a marker file. Each test first proves the payload works with plain
pickle, then that the safe loader refuses the file and the marker never
appears.
"""

import io
import json
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.decomposition import PCA
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skops.io.exceptions import UntrustedTypesFoundException

from sklearn_protonet import PrototypicalClassifier, persistence
from sklearn_protonet.modules import MLP, Conv4
from sklearn_protonet.persistence import load_encoder, save_encoder

from .conftest import tiny_conv4_trainer, tiny_trainer


class _Payload:
    """Unpickling it creates ``marker``: code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _payload_bytes(marker: Path) -> bytes:
    data = pickle.dumps(_Payload(marker))
    pickle.loads(data)  # the payload is live...
    assert marker.exists()
    marker.unlink()  # ...and the marker is reset for the loader under test
    return data


@pytest.fixture
def support(digits):
    X, y = digits["X_novel"], digits["y_novel"]
    return X[::4], y[::4], X[1::7]


def _round_trips(obj):
    yield pickle.loads(pickle.dumps(obj))
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    buffer.seek(0)
    yield joblib.load(buffer)


# -- pickle and joblib --------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["identity", "module", "fitted-trainer", "unfitted-trainer"]
)
def test_classifier_pickle_and_joblib_round_trips(kind, support, fitted_trainer):
    X, y, queries = support
    encoder = {
        "identity": None,
        "module": MLP(in_features=X.shape[1], hidden_sizes=(16,), out_features=8),
        "fitted-trainer": fitted_trainer,
        "unfitted-trainer": tiny_trainer(max_epochs=1),
    }[kind]
    clf = PrototypicalClassifier(encoder).fit(X, y)
    for loaded in _round_trips(clf):
        np.testing.assert_array_equal(loaded.predict(queries), clf.predict(queries))
        np.testing.assert_array_equal(
            loaded.predict_proba(queries), clf.predict_proba(queries)
        )


def test_meta_trained_encoder_pickle_and_joblib_round_trips(fitted_trainer, support):
    X, y, queries = support
    for loaded in _round_trips(fitted_trainer):
        np.testing.assert_array_equal(loaded.transform(X), fitted_trainer.transform(X))
        assert loaded.history.to_list() == fitted_trainer.history.to_list()
        clf = PrototypicalClassifier(loaded).fit(X, y)
        reference = PrototypicalClassifier(fitted_trainer).fit(X, y)
        np.testing.assert_array_equal(clf.predict(queries), reference.predict(queries))


# -- safetensors bundle ----------------------------------------------------------


class _Custom(torch.nn.Module):
    """A module the bundle cannot rebuild by itself."""

    def __init__(self, n_in=64):
        super().__init__()
        self.linear = torch.nn.Linear(n_in, 5)

    def forward(self, X):
        return self.linear(X)


def _bundle_encoders(fitted_trainer):
    torch.manual_seed(0)
    return {
        "identity": None,
        "mlp": MLP(in_features=64, hidden_sizes=(16, 8), out_features=4, dropout=0.1),
        "conv4": Conv4(input_shape=(1, 8, 8), hidden_channels=4, n_blocks=3),
        "fitted-trainer": fitted_trainer,
        "frozen-trainer": FrozenEstimator(fitted_trainer),
        "custom": _Custom(),
    }


@pytest.mark.parametrize(
    "kind", ["identity", "mlp", "conv4", "fitted-trainer", "frozen-trainer", "custom"]
)
def test_save_and_load_classifier(kind, support, fitted_trainer, tmp_path):
    X, y, queries = support
    clf = PrototypicalClassifier(
        _bundle_encoders(fitted_trainer)[kind], temperature=2.5
    )
    clf.fit(X, y)
    path = tmp_path / "clf.safetensors"
    persistence.save_classifier(clf, path)
    if kind == "custom":
        with pytest.raises(ValueError, match="pass encoder=<a module"):
            persistence.load_classifier(path)
        loaded = persistence.load_classifier(path, encoder=_Custom())
    else:
        loaded = persistence.load_classifier(path)
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.prototypes_, clf.prototypes_)
    np.testing.assert_array_equal(loaded.predict(queries), clf.predict(queries))
    np.testing.assert_array_equal(
        loaded.predict_proba(queries), clf.predict_proba(queries)
    )
    np.testing.assert_array_equal(loaded.transform(queries), clf.transform(queries))
    assert loaded.get_params()["temperature"] == 2.5


@pytest.mark.parametrize(
    "labels",
    [
        np.array([5, 6, 7, 8, 9] * 4),
        np.array(["cat", "dog", "émeu", "fox", "gnu"] * 4),
        np.array(["cat", "dog", "émeu", "fox", "gnu"] * 4, dtype=object),
        np.array([1.0, 2.0, 3.0, 4.0, 5.0] * 4),
        np.array([True, False] * 10),
    ],
    ids=["int", "str", "object", "float", "bool"],
)
def test_bundle_keeps_labels_and_feature_names(labels, tmp_path):
    X = pd.DataFrame(np.random.RandomState(0).rand(20, 3), columns=["a", "b", "c"])
    clf = PrototypicalClassifier().fit(X, labels)
    persistence.save_classifier(clf, tmp_path / "clf.safetensors")
    loaded = persistence.load_classifier(tmp_path / "clf.safetensors")
    assert loaded.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    with pytest.raises(ValueError, match="feature names should match"):
        loaded.predict(X.rename(columns={"c": "z"}))


def test_bundle_refuses_transformer_encoders(tmp_path):
    X, y = np.random.RandomState(0).rand(20, 4), np.repeat([0, 1], 10)
    clf = PrototypicalClassifier(PCA(2)).fit(X, y)
    with pytest.raises(TypeError, match="persistence.dump"):
        persistence.save_classifier(clf, tmp_path / "clf.safetensors")


def _rewrite(path: Path, metadata=None, tensors=None) -> None:
    with safe_open(str(path), framework="pt") as handle:
        old_metadata = handle.metadata()
        old_tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    save_file(
        {**old_tensors, **(tensors or {})},
        str(path),
        metadata={**old_metadata, **(metadata or {})},
    )


def _encoder_spec(**spec) -> dict:
    return {"module": json.dumps({"class": "x", **spec})}


TAMPERED = {
    "metric": (
        {"params": '{"metric": "os.system", "temperature": 1, "batch_size": 8}'},
        None,
    ),
    "temperature": (
        {"params": '{"metric": "cosine", "temperature": -1, "batch_size": 8}'},
        None,
    ),
    "json": ({"classes": "{not json"}, None),
    "class-count": ({"classes": '{"dtype": "<i8", "values": [1, 2, 3]}'}, None),
    "class-dtype": ({"classes": '{"dtype": "|V8", "values": [1, 2]}'}, None),
    "builder": (_encoder_spec(builder="os.system", config={}), None),
    "config": (_encoder_spec(builder="MLP", config={"evil": 1}), None),
    "weights": (None, {"module.layers.0.weight": torch.zeros(3, 3)}),
    "extra-tensor": (None, {"payload": torch.zeros(1)}),
    "prototypes": (None, {"prototypes": torch.zeros(4, 3, dtype=torch.float32)}),
    "identity-prototypes": (None, {"prototypes": torch.zeros(5, 3).double()}),
}


@pytest.mark.parametrize("tamper", list(TAMPERED))
def test_tampered_bundle_fails_cleanly(tamper, support, tmp_path):
    X, y, _ = support
    if tamper.startswith("identity-"):
        clf = PrototypicalClassifier()
    else:
        clf = PrototypicalClassifier(
            MLP(in_features=64, hidden_sizes=(8,), out_features=4)
        )
    path = tmp_path / "clf.safetensors"
    persistence.save_classifier(clf.fit(X, y), path)
    _rewrite(path, *TAMPERED[tamper])
    with pytest.raises(ValueError, match="is a damaged classifier file"):
        persistence.load_classifier(path)


def test_foreign_and_corrupt_files_fail_cleanly(tmp_path):
    pickled = tmp_path / "payload.pkl"
    pickled.write_bytes(_payload_bytes(tmp_path / "marker"))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        persistence.load_classifier(pickled)
    assert not (tmp_path / "marker").exists()

    other = tmp_path / "encoder.safetensors"
    X = np.random.RandomState(0).rand(40, 64).astype(np.float32)
    save_encoder(tiny_conv4_trainer().fit(X, np.repeat(np.arange(4), 10)), other)
    with pytest.raises(ValueError, match="not a sklearn-protonet classifier file"):
        persistence.load_classifier(other)

    truncated = tmp_path / "truncated.safetensors"
    clf = PrototypicalClassifier().fit(X, np.repeat(np.arange(4), 10))
    persistence.save_classifier(clf, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        persistence.load_classifier(truncated)
    with pytest.raises(FileNotFoundError):
        persistence.load_classifier(tmp_path / "missing.safetensors")


# -- skops ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["identity", "pipeline", "pca-encoder"])
def test_skops_round_trip_with_the_trusted_list(kind, support, tmp_path):
    X, y, queries = support
    estimator = {
        "identity": PrototypicalClassifier(metric="cosine"),
        "pipeline": make_pipeline(StandardScaler(), PrototypicalClassifier()),
        "pca-encoder": PrototypicalClassifier(PCA(8, random_state=0).fit(X)),
    }[kind].fit(X, y)
    path = tmp_path / "model.skops"
    persistence.dump(estimator, path)
    assert set(sio.get_untrusted_types(file=path)) <= set(persistence.TRUSTED_TYPES)
    loaded = persistence.load(path)
    np.testing.assert_array_equal(loaded.predict(queries), estimator.predict(queries))
    np.testing.assert_array_equal(
        loaded.predict_proba(queries), estimator.predict_proba(queries)
    )
    with pytest.raises(UntrustedTypesFoundException):
        persistence.load(path, trusted=())


def test_skops_cannot_hold_torch_encoders(support, fitted_trainer, tmp_path):
    X, y, _ = support
    module = PrototypicalClassifier(MLP(in_features=64, out_features=4)).fit(X, y)
    with pytest.raises(TypeError, match="save_classifier"):
        persistence.dump(module, tmp_path / "module.skops")
    trainer = PrototypicalClassifier(fitted_trainer).fit(X, y)
    with pytest.raises(TypeError, match="restores by unpickling"):
        persistence.dump(trainer, tmp_path / "trainer.skops")
    # The reason: skorch keeps the module, optimizer and criterion as a pickle
    # in the net's state, unpickled when the state is restored.
    state = fitted_trainer.__getstate__()
    assert pickle.loads(state["__cuda_dependent_attributes__"]).keys() >= {"module_"}
    # A skops file of a trainer (written by skops directly) is refused on load.
    path = tmp_path / "raw.skops"
    sio.dump(trainer, path)
    with pytest.raises(ValueError, match="would unpickle data from the file"):
        persistence.load(path, trusted=sio.get_untrusted_types(file=path))


def test_tampered_and_foreign_skops_files_fail_cleanly(support, tmp_path):
    X, y, _ = support
    path = tmp_path / "model.skops"
    persistence.dump(PrototypicalClassifier().fit(X, y), path)
    # Point the root object at a function that would run code.
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    schema["__module__"], schema["__class__"] = "os", "system"
    members["schema.json"] = json.dumps(schema).encode()
    tampered = tmp_path / "tampered.skops"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(UntrustedTypesFoundException, match="os.system"):
        persistence.load(tampered)

    pickled = tmp_path / "payload.skops"
    pickled.write_bytes(_payload_bytes(tmp_path / "marker"))
    with pytest.raises(ValueError, match="is not a skops file"):
        persistence.load(pickled)
    assert not (tmp_path / "marker").exists()


# -- torch weights (skorch) and safetensors encoders ----------------------------


def test_trainer_weights_load_with_weights_only(
    fitted_trainer, support, tmp_path, monkeypatch
):
    X, _, _ = support
    files = {
        "f_params": tmp_path / "params.pt",
        "f_optimizer": tmp_path / "optimizer.pt",
        "f_history": tmp_path / "history.json",
    }
    fitted_trainer.save_params(**files)
    calls = []
    original = torch.load
    monkeypatch.setattr(
        torch, "load", lambda *a, **kw: calls.append(kw) or original(*a, **kw)
    )
    fresh = tiny_trainer(n_way=5).initialize()
    fresh.load_params(**files)
    assert calls and all(kw.get("weights_only") is True for kw in calls)
    np.testing.assert_array_equal(fresh.transform(X), fitted_trainer.transform(X))
    assert fresh.history.to_list() == fitted_trainer.history.to_list()

    # A parameter file holding a pickle payload is refused, and nothing runs:
    # the trainer's ValueError names the file, from torch's refusal.
    payload = tmp_path / "payload.pt"
    torch.save(_Payload(tmp_path / "marker"), payload)
    with pytest.raises(ValueError, match="payload.pt.*Weights only load failed"):
        fresh.load_params(f_params=payload)
    assert not (tmp_path / "marker").exists()


def test_trainer_accepts_torch_load_kwargs():
    trainer = tiny_trainer(torch_load_kwargs={"weights_only": True})
    assert trainer.get_params()["torch_load_kwargs"] == {"weights_only": True}
    assert tiny_trainer().torch_load_kwargs is None  # skorch: weights_only=True


def test_conv4_encoder_through_safetensors(tmp_path):
    X = np.random.RandomState(0).rand(40, 64).astype(np.float32)
    trainer = tiny_conv4_trainer().fit(X, np.repeat(np.arange(4), 10))
    save_encoder(trainer, tmp_path / "conv4.safetensors")
    loaded = load_encoder(tmp_path / "conv4.safetensors")
    np.testing.assert_array_equal(loaded.transform(X), trainer.transform(X))


# -- partial_fit's running sums, refinement and rejection ------------


@pytest.mark.parametrize("kind", ["identity", "mlp"])
def test_bundle_keeps_running_sums_and_rejection(kind, support, tmp_path):
    X, y, queries = support
    encoder = None if kind == "identity" else MLP(hidden_sizes=(8,), out_features=4)
    y_unlabeled = np.where(np.arange(len(y)) % 5 == 4, "-1", y)  # string labels
    clf = PrototypicalClassifier(
        encoder, refinement_steps=2, unknown_label="unknown", rejection_quantile=0.5
    ).fit(X, y_unlabeled)
    path = tmp_path / "clf.safetensors"
    persistence.save_classifier(clf, path)
    loaded = persistence.load_classifier(path)
    for name in ("prototype_sums_", "prototype_totals_", "prototypes_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(clf, name))
    assert loaded.threshold_ == clf.threshold_
    assert loaded.get_params()["unknown_label"] == "unknown"
    assert loaded.get_params()["refinement_steps"] == 2
    np.testing.assert_array_equal(loaded.predict(queries), clf.predict(queries))
    assert (clf.predict(queries) == "unknown").any()
    np.testing.assert_array_equal(
        loaded.score_samples(queries), clf.score_samples(queries)
    )


def test_loaded_classifier_continues_partial_fit(support, tmp_path):
    X, y, queries = support
    clf = PrototypicalClassifier().partial_fit(X[:10], y[:10])
    path = tmp_path / "clf.safetensors"
    persistence.save_classifier(clf, path)
    loaded = persistence.load_classifier(path)
    loaded.partial_fit(X[10:], y[10:])
    clf.partial_fit(X[10:], y[10:])
    np.testing.assert_allclose(loaded.prototypes_, clf.prototypes_)
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)


def test_file_without_running_sums_is_refused(support, tmp_path):
    """The running sums are part of the fitted state: a file without them is
    damaged (no defaults stand in for them)."""
    X, y, queries = support
    clf = PrototypicalClassifier().fit(X, y)
    path = tmp_path / "clf.safetensors"
    persistence.save_classifier(clf, path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {
            k: handle.get_tensor(k)
            for k in handle.keys()
            if not k.startswith("prototype_")
        }
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ValueError, match="prototype_sums"):
        persistence.load_classifier(path)


@pytest.mark.parametrize(
    "tamper",
    [
        {"threshold": "0.5"},  # a threshold without unknown_label
        {"prototype_sums": torch.zeros(2, 2, dtype=torch.float64)},
    ],
    ids=["threshold", "sums-shape"],
)
def test_tampered_running_state_fails_cleanly(tamper, support, tmp_path):
    X, y, _ = support
    path = tmp_path / "clf.safetensors"
    persistence.save_classifier(PrototypicalClassifier().fit(X, y), path)
    metadata = {k: v for k, v in tamper.items() if isinstance(v, str)}
    tensors = {k: v for k, v in tamper.items() if not isinstance(v, str)}
    _rewrite(path, metadata or None, tensors or None)
    with pytest.raises(ValueError, match="is a damaged classifier file"):
        persistence.load_classifier(path)
