"""Bad input: a specific exception whose message names the parameter and the fix.

Every case is one row of :data:`ERROR_CASES`; one parametrized test runs them
all, and ``docs/generate_error_table.py`` turns the same rows into the table
of ``docs/user_guide/errors.rst``, so the documentation cannot disagree with
the code.
"""

from __future__ import annotations

import functools
import io
import json
import runpy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback, Checkpoint, LoadInitState

from sklearn_protonet import (
    ClassSplit,
    EpisodicTrainer,
    PrototypicalClassifier,
    persistence,
)
from sklearn_protonet.callbacks import AtomicCheckpoint
from sklearn_protonet.datasets import load_image_folder
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.modules import MLP, Conv4
from sklearn_protonet.persistence import load_classifier, load_encoder
from sklearn_protonet.preprocessing import ImageReader
from sklearn_protonet.pretrained import load_pretrained
from sklearn_protonet.zero_shot import ZeroShotPrototypicalClassifier

from .conftest import tiny_trainer

ROOT = Path(__file__).resolve().parents[1]

# Four classes of two examples: enough for the classifier, too few for episodes.
X4 = np.arange(24, dtype=float).reshape(8, 3)
Y4 = np.repeat([0, 1, 2, 3], 2)
# Four classes of ten examples: enough for 3-way 2-shot 2-query episodes.
X40 = np.random.RandomState(0).rand(40, 6)
Y40 = np.repeat(["a", "b", "c", "d"], 10)


@dataclass(frozen=True)
class ErrorCase:
    """One row of the bad-input table.

    Attributes
    ----------
    id : str
        Test id and anchor of the row.
    case : str
        What the user did, in words (the documentation's first column).
    trigger : callable
        Does it; takes no argument.
    exception : type
        The exception it must raise (subclasses are not accepted).
    match : str
        Regular expression searched in the message.
    fix : str
        What to do instead (the documentation's last column).
    """

    id: str
    case: str
    trigger: Callable[[], object]
    exception: type[BaseException]
    match: str
    fix: str


def _with(X, row, col, value):
    X = X.copy()
    X[row, col] = value
    return X


class _Unflattened(torch.nn.Module):
    def forward(self, X):
        return X[:, None, :]


class _Branching(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 3)

    def forward(self, X):
        return self.linear(X) if X.sum() > 0 else -self.linear(X)


def _frame(columns="abc"):
    return pd.DataFrame(X4, columns=list(columns))


def _fitted_on_frame():
    return PrototypicalClassifier().fit(_frame(), Y4)


_TOO_SMALL_X = np.random.RandomState(0).rand(30, 4)
_TOO_SMALL_Y = np.array(["a"] * 10 + ["b"] * 10 + ["small"] * 3 + ["tiny"] * 7)
_ONE_EXAMPLE_Y = np.array([0] * 4 + [1] * 4 + [2])
_NON_NUMERIC = np.array([["a", "b", "c"]] * 8, dtype=object)


@functools.cache
def _fitted_trainer(columns: str | None = None) -> EpisodicTrainer:
    """A trainer meta-trained on X40 (a DataFrame with ``columns``)."""
    X = X40 if columns is None else pd.DataFrame(X40, columns=list(columns))
    return tiny_trainer().fit(X, Y40)


def _labels_with(value, n_missing=10, dtype=object):
    y = Y40.astype(object)
    y[-n_missing:] = value
    return y.astype(dtype)


def _image_folder(*classes: str, sizes=(8,), corrupt=False) -> Path:
    """A temporary folder with one sub-folder per class of small PNGs; an
    empty class name makes an empty class folder."""
    root = Path(tempfile.mkdtemp())
    for name in classes:
        (root / name).mkdir()
        for i, size in enumerate(sizes if name else ()):
            Image.fromarray(np.zeros((size, size), np.uint8)).save(
                root / name / f"{i}.png"
            )
    if corrupt:
        (root / classes[0] / "broken.png").write_bytes(b"not a png")
    return root


# -- non-finite numbers, interruption, tampered files, downloads ----


class _Interrupt(Callback):
    """Ctrl-C at the end of the second epoch."""

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 2:
            raise KeyboardInterrupt


def _nan_mlp():
    module = MLP(in_features=6, hidden_sizes=(4,), out_features=3)
    with torch.no_grad():
        module.layers[0].weight.fill_(float("nan"))
    return module


def _tampered(kind: str, **metadata) -> Path:
    """A classifier (or encoder) file with some metadata fields replaced."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from sklearn_protonet.persistence import save_classifier, save_encoder

    path = Path(tempfile.mkdtemp()) / f"{kind}.safetensors"
    module = MLP(in_features=6, hidden_sizes=(4,), out_features=3)
    if kind == "classifier":
        save_classifier(PrototypicalClassifier(module).fit(X40, Y40), path)
    else:
        save_encoder(module, path)
    with safe_open(str(path), framework="pt") as handle:
        old = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    save_file(tensors, str(path), metadata={**old, **metadata})
    return path


def _spec_with(**config) -> str:
    spec = {"class": "sklearn_protonet.modules.MLP", "builder": "MLP"}
    spec["config"] = {"in_features": 6, "hidden_sizes": [4], "out_features": 3,
                      "dropout": 0.0, **config}  # fmt: skip
    return json.dumps(spec)


def _hostile_skops(case_id: str) -> Path:
    """One crafted skops file of ``tests/test_safe_skops.py``."""
    from .test_safe_skops import hostile_files, write_valid

    folder = Path(tempfile.mkdtemp())
    return hostile_files(write_valid(folder), folder, only=(case_id,))[0][1]


def _bomb_png() -> str:
    """A PNG whose header claims 40000x40000 pixels (a 57-byte file)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 40_000, 40_000, 1, 0, 0, 0, 0)
    path = Path(tempfile.mkdtemp()) / "bomb.png"
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return str(path)


def _download_error_page():
    from unittest import mock

    from sklearn_protonet.datasets import _base, load_omniglot

    page = io.BytesIO(b"<!DOCTYPE html><html>Too many requests</html>")
    with mock.patch.object(_base, "_open_url", lambda url: page):
        load_omniglot("train", data_home=tempfile.mkdtemp())


def _checkpoint(kind, folder: str):
    """A 1-epoch checkpoint of ``kind`` in ``folder``."""
    checkpoint = kind(monitor=None, dirname=folder)
    tiny_trainer(max_epochs=1, callbacks=[checkpoint]).fit(X40, Y40)
    return checkpoint


def _resume(checkpoint):
    tiny_trainer(max_epochs=1, callbacks=[LoadInitState(checkpoint)]).fit(X40, Y40)


def _resume_from_cut_checkpoint():
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = _checkpoint(Checkpoint, folder)
        Path(folder, "criterion.pt").write_bytes(b"")
        _resume(checkpoint)


def _resume_from_altered_checkpoint():
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = _checkpoint(AtomicCheckpoint, folder)
        with open(Path(folder, "optimizer.pt"), "ab") as handle:
            handle.write(b"0")
        _resume(checkpoint)


ERROR_CASES: list[ErrorCase] = [
    # -- meta-training episodes -------------------------------------------
    ErrorCase(
        "trainer-n-way-too-large",
        "``EpisodicTrainer(n_way=50)`` on data with 4 classes",
        lambda: tiny_trainer(n_way=50).fit(X40, Y40),
        ValueError,
        r"n_way=50 is larger than the 4 classes available; lower n_way",
        "Lower ``n_way`` to at most the number of base classes, or add classes.",
    ),
    ErrorCase(
        "trainer-classes-too-small",
        "Classes with fewer than ``n_shot + n_query`` examples",
        lambda: tiny_trainer(n_shot=3, n_query=5).fit(_TOO_SMALL_X, _TOO_SMALL_Y),
        ValueError,
        r"n_shot \+ n_query = 8 examples per class, but 2 classes have fewer: "
        r"'small' \(3\), 'tiny' \(7\)",
        "Lower ``n_shot``/``n_query``, or drop the named classes.",
    ),
    ErrorCase(
        "trainer-class-with-one-example",
        "A class with a single example during meta-training",
        lambda: tiny_trainer(n_shot=1, n_query=1).fit(
            X4[[*range(8), 0]], _ONE_EXAMPLE_Y
        ),
        ValueError,
        r"n_shot \+ n_query = 2 examples per class, but 1 classes have fewer: "
        r"2 \(1\)",
        "Every training class needs ``n_shot + n_query`` examples: drop "
        "singleton classes (or hold them out for the support set).",
    ),
    ErrorCase(
        "trainer-validation-classes-too-small",
        "Held-out validation classes too small for the validation episodes",
        lambda: tiny_trainer(
            train_split=ClassSplit(2, random_state=0), valid_n_query=20
        ).fit(X40[:, :4].repeat(2, axis=0)[:40], np.repeat(list("abcdef"), 7)[:40]),
        ValueError,
        r"Validation episodes cannot be drawn from the held-out classes: Episodes "
        r"need n_shot \+ n_query = 22 examples per class.*set valid_n_way, "
        r"valid_n_shot and valid_n_query, or change train_split",
        "Lower ``valid_n_shot``/``valid_n_query`` (or ``n_shot``/``n_query``), "
        "or hold out larger classes.",
    ),
    *[
        ErrorCase(
            f"trainer-{name}-{value}",
            f"``EpisodicTrainer({name}={value})``",
            lambda name=name, value=value: tiny_trainer(**{name: value}).fit(X40, Y40),
            InvalidParameterError,
            rf"The '{name}' parameter of EpisodicTrainer must be an int in the "
            rf"range \[{low}, inf\)\. Got {value} instead",
            f"Pass ``{name}`` >= {low}.",
        )
        for name, low in (("n_way", 2), ("n_shot", 1), ("n_query", 1))
        for value in (0, -1)
    ],
    ErrorCase(
        "trainer-unknown-metric",
        "``EpisodicTrainer(metric='manhattan')``",
        lambda: tiny_trainer(metric="manhattan").fit(X40, Y40),
        InvalidParameterError,
        r"The 'metric' parameter of EpisodicTrainer must be a str among",
        "Use ``'sqeuclidean'`` (the paper's), ``'euclidean'``, ``'cosine'`` or "
        "``'gaussian'`` (with a ``GaussianEncoder``).",
    ),
    ErrorCase(
        "trainer-unknown-episode-loss",
        "``EpisodicTrainer(episode_loss='triplet')``",
        lambda: tiny_trainer(episode_loss="triplet").fit(X40, Y40),
        InvalidParameterError,
        r"The 'episode_loss' parameter of EpisodicTrainer must be a str among",
        "Use ``'prototypical'`` (the paper's) or ``'nca'``.",
    ),
    ErrorCase(
        "trainer-nca-gaussian",
        "``EpisodicTrainer(episode_loss='nca', metric='gaussian')``",
        lambda: tiny_trainer(episode_loss="nca", metric="gaussian").fit(X40, Y40),
        ValueError,
        r"episode_loss='nca' compares rows with rows, which metric='gaussian' "
        r"cannot serve; use the default episode_loss, or metric in",
        "Train a ``GaussianEncoder`` with the default ``episode_loss``.",
    ),
    ErrorCase(
        "trainer-set-params-checked",
        "``trainer.set_params(n_query=0)``, then ``fit``",
        lambda: tiny_trainer().set_params(n_query=0).fit(X40, Y40),
        InvalidParameterError,
        r"The 'n_query' parameter of EpisodicTrainer must be an int in the "
        r"range \[1, inf\)\. Got 0 instead",
        "Pass ``n_query`` >= 1; ``set_params`` stores values, ``fit`` checks "
        "them (scikit-learn's convention).",
    ),
    ErrorCase(
        "trainer-nan",
        "NaN in the meta-training data",
        lambda: tiny_trainer().fit(_with(X40, 1, 1, np.nan), Y40),
        ValueError,
        r"Input X contains NaN",
        "Impute or drop missing values before training.",
    ),
    ErrorCase(
        "trainer-inf",
        "Infinity in the meta-training data",
        lambda: tiny_trainer().fit(_with(X40, 1, 1, np.inf), Y40),
        ValueError,
        r"Input X contains infinity",
        "Clip or drop infinite values before training.",
    ),
    ErrorCase(
        "trainer-non-numeric",
        "Strings in the meta-training data",
        lambda: tiny_trainer().fit(_NON_NUMERIC, Y4),
        ValueError,
        r"X must be numeric, but could not convert string to float.*OneHotEncoder",
        "Encode text and categorical columns first (``OneHotEncoder`` in a "
        "``Pipeline``).",
    ),
    ErrorCase(
        "trainer-conv4-wrong-image-size",
        "8x8 images (64 values a row) for a 28x28 ``Conv4``",
        lambda: EpisodicTrainer(
            Conv4, n_way=3, n_shot=2, n_query=2, train_split=None, verbose=0
        ).fit(np.zeros((40, 64), np.float32), Y40),
        ValueError,
        r"Conv4 expects rows of 784 values \(input_shape=\(1, 28, 28\)\), got 64\. "
        r"Set input_shape",
        "Set ``module__input_shape`` to the images' ``(channels, height, width)`` "
        "(and fewer ``module__n_blocks`` for small images).",
    ),
    ErrorCase(
        "trainer-transform-before-fit",
        "``EpisodicTrainer.transform`` before ``fit``",
        lambda: tiny_trainer().transform(X4),
        NotFittedError,
        r"This EpisodicTrainer instance is not fitted yet. Call 'fit'",
        "Meta-train it with ``fit`` first, or load trained weights.",
    ),
    # -- the classifier -------------------------------------------------------
    ErrorCase(
        "predict-before-fit",
        "``PrototypicalClassifier.predict`` before ``fit``",
        lambda: PrototypicalClassifier().predict(X4),
        NotFittedError,
        r"This PrototypicalClassifier instance is not fitted yet. Call 'fit'",
        "Fit it on a labelled support set first.",
    ),
    ErrorCase(
        "fit-without-y",
        "``fit(X)`` without labels",
        lambda: PrototypicalClassifier().fit(X4, None),
        ValueError,
        r"requires y to be passed.*give the class label",
        "Pass the support set's labels: ``fit(X, y)``.",
    ),
    ErrorCase(
        "empty-support-set",
        "An empty support set",
        lambda: PrototypicalClassifier().fit(np.empty((0, 3)), []),
        ValueError,
        r"Found array with 0 sample\(s\)",
        "Give at least one example of each of at least 2 classes.",
    ),
    ErrorCase(
        "single-class",
        "A support set with one class",
        lambda: PrototypicalClassifier().fit(X4, np.zeros(8)),
        ValueError,
        r"needs at least 2 classes in y.*Add support examples of other classes",
        "Add support examples of other classes.",
    ),
    ErrorCase(
        "wrong-number-of-features",
        "``predict`` on rows with another number of columns than ``fit``",
        lambda: PrototypicalClassifier().fit(X4, Y4).predict(X4[:, :2]),
        ValueError,
        r"X has 2 features, but PrototypicalClassifier is expecting 3 features",
        "Transform the query rows exactly as the support rows.",
    ),
    ErrorCase(
        "wrong-sample-shape",
        "``predict`` on images of another shape than ``fit``",
        lambda: (
            PrototypicalClassifier()
            .fit(np.zeros((8, 1, 4, 4)), Y4)
            .predict(np.zeros((8, 1, 2, 8)))
        ),
        ValueError,
        r"X has samples of shape \(1, 2, 8\), but PrototypicalClassifier was "
        r"fitted on samples of shape \(1, 4, 4\)",
        "Reshape the queries like the support set.",
    ),
    ErrorCase(
        "columns-differ-from-fit",
        "``predict`` with a DataFrame whose columns differ from ``fit``",
        lambda: _fitted_on_frame().predict(_frame("abz")),
        ValueError,
        r"The feature names should match those that were passed during fit",
        "Rename or select the columns seen in ``fit`` (``feature_names_in_``).",
    ),
    ErrorCase(
        "columns-reordered",
        "``predict`` with the ``fit`` columns in another order",
        lambda: _fitted_on_frame().predict(_frame("cba")),
        ValueError,
        r"Feature names must be in the same order as they were in fit",
        "Reorder: ``X[clf.feature_names_in_]``.",
    ),
    *[
        ErrorCase(
            f"{where}-{name}",
            f"{label} in the {'support set' if where == 'fit' else 'queries'}",
            trigger,
            ValueError,
            rf"Input X contains {label}",
            "Impute, clip or drop such values first (e.g. ``SimpleImputer``).",
        )
        for name, label, bad in (
            ("nan", "NaN", _with(X4, 1, 1, np.nan)),
            ("inf", "infinity", _with(X4, 1, 1, np.inf)),
        )
        for where, trigger in (
            ("fit", lambda bad=bad: PrototypicalClassifier().fit(bad, Y4)),
            (
                "predict",
                lambda bad=bad: PrototypicalClassifier().fit(X4, Y4).predict(bad),
            ),
        )
    ],
    ErrorCase(
        "fit-non-numeric",
        "Strings in the support set",
        lambda: PrototypicalClassifier().fit(_NON_NUMERIC, Y4),
        ValueError,
        r"X must be numeric, but could not convert string to float.*OneHotEncoder",
        "Encode text and categorical columns first (``OneHotEncoder`` in a "
        "``Pipeline``).",
    ),
    ErrorCase(
        "predict-non-numeric",
        "Strings in the queries",
        lambda: PrototypicalClassifier().fit(X4, Y4).predict(_NON_NUMERIC),
        ValueError,
        r"X must be numeric, but could not convert string to float",
        "Encode the queries as the support set was encoded.",
    ),
    ErrorCase(
        "conv4-wrong-image-size",
        "8x8 images (64 values a row) for a 28x28 ``Conv4`` encoder",
        lambda: PrototypicalClassifier(Conv4()).fit(np.zeros((8, 64)), Y4),
        ValueError,
        r"Conv4 expects rows of 784 values \(input_shape=\(1, 28, 28\)\), got 64\. "
        r"Set input_shape",
        "Build ``Conv4(input_shape=(1, 8, 8), n_blocks=3)`` for the images' size.",
    ),
    ErrorCase(
        "conv4-wrong-image-shape",
        "28x28 image arrays for a 16x16 ``Conv4`` encoder",
        lambda: PrototypicalClassifier(Conv4(input_shape=(1, 16, 16))).fit(
            np.zeros((8, 1, 28, 28)), Y4
        ),
        ValueError,
        r"Conv4 expects images of shape \(1, 16, 16\), got \(1, 28, 28\)",
        "Set ``input_shape`` to the images' ``(channels, height, width)``.",
    ),
    ErrorCase(
        "unknown-metric",
        "``PrototypicalClassifier(metric='manhattan')``",
        lambda: PrototypicalClassifier(metric="manhattan").fit(X4, Y4),
        InvalidParameterError,
        r"The 'metric' parameter of PrototypicalClassifier must be a str among",
        "Use ``'sqeuclidean'``, ``'euclidean'`` or ``'cosine'``.",
    ),
    *[
        ErrorCase(
            f"temperature-{value}",
            f"``PrototypicalClassifier(temperature={value})``",
            lambda value=value: PrototypicalClassifier(temperature=value).fit(X4, Y4),
            InvalidParameterError,
            r"The 'temperature' parameter of PrototypicalClassifier must be a "
            r"float in the range \(0.0, inf\)",
            "Pass a temperature > 0 (1.0 is the paper's softmax).",
        )
        for value in (0.0, -1.0)
    ],
    ErrorCase(
        "batch-size-0",
        "``PrototypicalClassifier(batch_size=0)``",
        lambda: PrototypicalClassifier(batch_size=0).fit(X4, Y4),
        InvalidParameterError,
        r"The 'batch_size' parameter of PrototypicalClassifier must be an int "
        r"in the range \[1, inf\)",
        "Pass a positive number of rows per chunk.",
    ),
    ErrorCase(
        "encoder-output-not-2d",
        "An encoder module returning more than one dimension per row",
        lambda: PrototypicalClassifier(_Unflattened()).fit(X4, Y4),
        ValueError,
        r"The encoder must return a 2-D tensor.*torch.nn.Flatten",
        "End the module with ``torch.nn.Flatten()``.",
    ),
    ErrorCase(
        "unusable-encoder",
        "``encoder='conv4'`` (neither module nor transformer)",
        lambda: PrototypicalClassifier(encoder="conv4").fit(X4, Y4),
        TypeError,
        r"encoder must be None, a torch.nn.Module, an EpisodicTrainer or a "
        r"scikit-learn transformer, got str",
        "Pass ``Conv4()``, a trainer or a transformer, not a name.",
    ),
    ErrorCase(
        "sample-weight-length",
        "``sample_weight`` with another length than ``X``",
        lambda: PrototypicalClassifier().fit(X4, Y4, sample_weight=np.ones(3)),
        ValueError,
        r"Invalid sample_weight: sample_weight.shape == \(3,\), expected \(8,\)!"
        r" Pass one weight per row of X, shape \(8,\), or None",
        "Pass one weight per row of ``X``.",
    ),
    ErrorCase(
        "sample-weight-negative",
        "A negative ``sample_weight``",
        lambda: PrototypicalClassifier().fit(X4, Y4, sample_weight=-np.ones(8)),
        ValueError,
        r"sample_weight must be non-negative, got -1.0; use 0 to ignore a sample",
        "Use weights >= 0.",
    ),
    ErrorCase(
        "sample-weight-zero-class",
        "``sample_weight`` summing to 0 over a class",
        lambda: PrototypicalClassifier().fit(
            X4, Y4, sample_weight=[1, 1, 1, 1, 1, 1, 0, 0]
        ),
        ValueError,
        r"sample_weight sums to zero for classes \[3\].*Give each class a "
        r"positive weight",
        "Give each class a positive total weight, or drop the class.",
    ),
    ErrorCase(
        "encoder-on-another-device",
        "An encoder whose weights are on another device than ``device``",
        lambda: PrototypicalClassifier(MLP(in_features=3), device="meta").fit(X4, Y4),
        ValueError,
        r"device='meta' but the encoder's weights are on cpu\. Move the encoder "
        r"\(encoder.to\('meta'\)\) or leave device=None",
        "Move the encoder (``encoder.to(device)``) or leave ``device=None``; "
        "the data always follows the encoder.",
    ),
    ErrorCase(
        "inference-dtype-without-module",
        "``inference_dtype`` other than float32 with an encoder that is not a "
        "torch module (the identity, a scikit-learn transformer)",
        lambda: PrototypicalClassifier(inference_dtype="int8").fit(X4, Y4),
        ValueError,
        r"inference_dtype='int8' applies to torch encoders only.*use "
        r"inference_dtype='float32'",
        "Leave ``inference_dtype='float32'``; reduced precision speeds up torch "
        "encoders only.",
    ),
    ErrorCase(
        "int8-untraceable-encoder",
        "``inference_dtype='int8'`` with a module whose ``forward`` branches on "
        "tensor values",
        lambda: PrototypicalClassifier(_Branching(), inference_dtype="int8").fit(
            X4, Y4
        ),
        ValueError,
        r"int8 needs a module that torch\.fx can trace",
        "Use ``inference_dtype='float32'`` or ``'bfloat16'`` for this encoder, or "
        "move the branching out of ``forward``.",
    ),
    # -- the evaluation protocol ----------------------------------------------
    ErrorCase(
        "episodic-split-too-few-examples",
        "``EpisodicSplit`` asking more examples than a class has",
        lambda: list(EpisodicSplit(2, 1, 15).split(X4, Y4)),
        ValueError,
        r"n_shot \+ n_query = 16 examples per class, but 4 classes have fewer",
        "Lower ``n_shot``/``n_query``.",
    ),
    ErrorCase(
        "episodic-split-n-way-too-large",
        "``EpisodicSplit(n_way=5)`` on 4 classes",
        lambda: list(EpisodicSplit(5, 1, 1).split(X4, Y4)),
        ValueError,
        r"n_way=5 is larger than the 4 classes available; lower n_way",
        "Lower ``n_way`` to at most the number of classes.",
    ),
    ErrorCase(
        "episodic-split-n-shot-0",
        "``EpisodicSplit(n_shot=0)``",
        lambda: list(EpisodicSplit(2, 0, 1).split(X4, Y4)),
        InvalidParameterError,
        r"The 'n_shot' parameter of EpisodicSplit must be an int in the range "
        r"\[1, inf\)\. Got 0 instead",
        "Pass ``n_shot`` >= 1.",
    ),
    # -- images and your own data ---------------------------------------------
    ErrorCase(
        "image-folder-missing",
        "``load_image_folder`` on a path that is not a folder",
        lambda: load_image_folder("no/such/folder"),
        FileNotFoundError,
        r"No image folder at 'no/such/folder': path must be a folder holding one "
        r"sub-folder of images per class",
        "Give the folder that holds one sub-folder per class.",
    ),
    ErrorCase(
        "image-folder-single-class",
        "``load_image_folder`` on a folder with one class sub-folder",
        lambda: load_image_folder(_image_folder("a")),
        ValueError,
        r"holds 1 class folder\(s\), \['a'\]; few-shot classification needs at "
        r"least 2",
        "Add a sub-folder of images for each other class.",
    ),
    ErrorCase(
        "image-folder-empty-class",
        "A class sub-folder without image files",
        lambda: load_image_folder(_image_folder("a", "b", sizes=())),
        ValueError,
        r"The class folder .* holds no image file .*add images or remove the folder",
        "Add images to the folder, or remove it.",
    ),
    ErrorCase(
        "image-file-unreadable",
        "A corrupt, truncated or non-image file among the images",
        lambda: load_image_folder(_image_folder("a", "b", corrupt=True)),
        ValueError,
        r"Cannot read the image file '.*broken.png'",
        "Repair or remove the named file.",
    ),
    ErrorCase(
        "image-sizes-differ",
        "Images of different sizes without ``size``",
        lambda: load_image_folder(_image_folder("a", "b", sizes=(8, 12))),
        ValueError,
        r"The images have different sizes .*set size=\(height, width\) to resize "
        r"them all",
        "Pass ``size=(height, width)``.",
    ),
    ErrorCase(
        "image-reader-single-path",
        "``ImageReader().transform`` on one path instead of a list",
        lambda: ImageReader().transform("image.png"),
        ValueError,
        r"X must hold one path or image per sample, got a single str; wrap it in a "
        r"list",
        "Pass a list (or array, Series, one-column DataFrame) of paths.",
    ),
    ErrorCase(
        "image-reader-float-range",
        "Float images with values in 0-255",
        lambda: ImageReader().transform(np.full((2, 4, 4), 255.0)),
        ValueError,
        r"Float images must hold values in \[0, 1\], got \[255, 255\]; rescale "
        r"them \(e.g. divide by 255\)",
        "Divide by 255, or pass uint8 arrays.",
    ),
    ErrorCase(
        "image-reader-ambiguous-layout",
        "An image array whose channel axis cannot be told",
        lambda: ImageReader().transform(np.zeros((2, 3, 5, 3))),
        ValueError,
        r"Cannot tell the image layout of an array of shape \(2, 3, 5, 3\)",
        "Pass ``(n, H, W)``, ``(n, H, W, C)`` or ``(n, C, H, W)`` arrays.",
    ),
    ErrorCase(
        "encoder-contract-size",
        "Images of another size than a pretrained encoder's input contract (in "
        "``fit`` and in ``predict``)",
        lambda: PrototypicalClassifier(load_pretrained()).fit(
            np.zeros((2, 1, 20, 20)), [0, 1]
        ),
        ValueError,
        r"X has samples of shape \(1, 20, 20\), but PrototypicalClassifier is "
        r"expecting images of shape \(1, 28, 28\).*input contract.*"
        r"ImageReader.from_encoder\(encoder\)",
        "Resize the images, e.g. ``ImageReader.from_encoder(encoder)`` in a Pipeline.",
    ),
    ErrorCase(
        "fine-tune-without-module",
        "``fine_tune_steps`` with an encoder that is not a torch module",
        lambda: PrototypicalClassifier(fine_tune_steps=5).fit(X4, Y4),
        ValueError,
        r"fine_tune_steps=5 needs a torch module encoder to fine-tune, got NoneType",
        "Use a module encoder, or ``fine_tune_steps=0``.",
    ),
    # -- variance-aware metrics and zero-shot metadata ----------------------
    ErrorCase(
        "gaussian-metric-without-precisions",
        "``metric='gaussian'`` with an encoder that outputs no precisions",
        lambda: PrototypicalClassifier(metric="gaussian").fit(X4, Y4),
        ValueError,
        r"metric='gaussian' needs an encoder whose output is \[embedding, "
        r"precision\].*wrap the encoder in .*GaussianEncoder",
        "Wrap the encoder in ``GaussianEncoder`` and meta-train it with "
        "``metric='gaussian'``, or use another metric.",
    ),
    ErrorCase(
        "zero-shot-non-numeric-metadata",
        "Class metadata with a text column",
        lambda: ZeroShotPrototypicalClassifier().fit(
            _frame().assign(c=list("xyxyxyxy")).groupby(Y4).first()
        ),
        ValueError,
        r"columns \['c'\] are not numeric; encode them first",
        "One-hot encode categories (``pandas.get_dummies``) before ``fit``.",
    ),
    ErrorCase(
        "zero-shot-nan-metadata",
        "Class metadata with a missing value",
        lambda: ZeroShotPrototypicalClassifier().fit(
            pd.DataFrame({"a": [1.0, np.nan], "b": [0.0, 1.0]}, index=["x", "y"])
        ),
        ValueError,
        r"missing or infinite values for classes \['y'\] in columns \['a'\]",
        "Impute the missing attributes or drop the column.",
    ),
    ErrorCase(
        "zero-shot-class-without-metadata",
        "A support example of a class that has no metadata row",
        lambda: ZeroShotPrototypicalClassifier().fit(
            _frame().groupby(Y4).first(), X_support=X4[:1], y_support=[7]
        ),
        ValueError,
        r"classes \[7\] in y_support have no metadata row",
        "Add a metadata row for every class of ``y_support``.",
    ),
    # -- non-finite numbers, interruption, tampered files ---------
    ErrorCase(
        "diverged-meta-training",
        "A meta-training whose loss becomes NaN (a learning rate far too high)",
        lambda: tiny_trainer(lr=1e12, episodes_per_epoch=20, max_epochs=3).fit(
            X40, Y40
        ),
        FloatingPointError,
        r"Meta-training diverged: the loss is nan at epoch 1.*learning rate too "
        r"high for the encoder \(lr=1000000000000.0\): lower it",
        "Lower ``lr`` (the paper's is 1e-3); check the data for extreme values.",
    ),
    ErrorCase(
        "diverged-finite-meta-training",
        "A meta-training whose loss explodes but stays finite (``lr=1e4``)",
        lambda: tiny_trainer(lr=1e4, episodes_per_epoch=20, max_epochs=2).fit(X40, Y40),
        FloatingPointError,
        r"Meta-training diverged: at epoch 1, episode 20, the mean loss of the "
        r"last 20 episodes is .*, more than 100 times its starting value .*"
        r"learning rate too high for the encoder \(lr=10000.0\): lower it",
        "Lower ``lr``; to train regardless (the rule is ``DivergenceCheck``'s), "
        "pass ``callbacks__divergence_check=None``.",
    ),
    ErrorCase(
        "checkpoint-cut-file",
        "Resuming (``LoadInitState``) from a checkpoint whose ``criterion.pt`` "
        "is empty (a run killed while skorch wrote it in place)",
        lambda: _resume_from_cut_checkpoint(),
        ValueError,
        r"EpisodicTrainer cannot load its criterion from .*criterion.pt "
        r"\(EOFError; the file has 0 bytes\)",
        "Restore the file or delete the checkpoint's files; files the trainer "
        "writes now are never cut, and ``AtomicCheckpoint``'s checkpoints are "
        "whole.",
    ),
    ErrorCase(
        "atomic-checkpoint-altered",
        "Resuming from an ``AtomicCheckpoint`` one of whose files was changed "
        "after it was written",
        lambda: _resume_from_altered_checkpoint(),
        ValueError,
        r"The checkpoint in .* is incomplete: .*optimizer.pt is not the file its "
        r"manifest .*checkpoint.json lists",
        "Restore the file, or delete the checkpoint's files to start afresh.",
    ),
    ErrorCase(
        "non-finite-embeddings",
        "An encoder that returns NaN or infinite embeddings",
        lambda: PrototypicalClassifier(_nan_mlp()).fit(X40, Y40),
        ValueError,
        r"The encoder returned NaN or infinite embeddings for 40 row\(s\) of X "
        r"\(rows \[0, 1, 2, 3, 4\]\.\.\.\)",
        "Retrain the encoder with a lower learning rate, or scale the inputs as "
        "its training data were.",
    ),
    ErrorCase(
        "interrupted-meta-training",
        "Ctrl-C (``KeyboardInterrupt``) while a classifier meta-trains its encoder",
        lambda: PrototypicalClassifier(
            tiny_trainer(max_epochs=5, callbacks=[_Interrupt()])
        ).fit(X40, Y40),
        KeyboardInterrupt,
        r"meta-training was interrupted at epoch 2 of 5, so the classifier is not "
        r"fitted.*fit the trainer yourself",
        "Refit; or fit the trainer itself (skorch keeps the partial training) "
        "and pass the fitted trainer.",
    ),
    ErrorCase(
        "file-huge-label-dtype",
        "A classifier file whose labels claim a huge dtype (``<U500000000``)",
        lambda: load_classifier(
            _tampered(
                "classifier",
                classes=json.dumps({"dtype": "<U500000000", "values": list("abcd")}),
            )
        ),
        ValueError,
        r"is a damaged classifier file: field 'classes.dtype': '<U500000000' "
        r"does not fit labels",
        "Do not load the file: it was altered. Save the classifier again.",
    ),
    ErrorCase(
        "file-layer-sizes",
        "An encoder file whose description claims layers its weights lack",
        lambda: load_encoder(
            _tampered("encoder", module=_spec_with(hidden_sizes=[20000, 20000]))
        ),
        ValueError,
        r"is a damaged encoder file: field 'module.config.hidden_sizes': \[20000, "
        r"20000\] does not match the 4 weight tensors in the file",
        "Do not load the file: it was altered. Save the encoder again.",
    ),
    ErrorCase(
        "file-not-json",
        "A file whose metadata field is not JSON",
        lambda: load_classifier(_tampered("classifier", params="{not json")),
        ValueError,
        r"is a damaged classifier file: field 'params': not JSON",
        "Do not load the file: it was altered. Save the classifier again.",
    ),
    ErrorCase(
        "file-missing-field",
        "A file lacking a metadata field",
        lambda: load_encoder(_tampered("encoder", module="null")),
        ValueError,
        r"is a damaged encoder file: field 'module': an encoder file needs a module",
        "Do not load the file: it was altered. Save the encoder again.",
    ),
    ErrorCase(
        "file-labels-after-cast",
        "A classifier file whose labels merge once cast to their dtype "
        "(``[0, 1, 1.0]`` as float)",
        lambda: load_classifier(
            _tampered(
                "classifier", classes='{"dtype": "<f8", "values": [0, 1, 1.0, 3]}'
            )
        ),
        ValueError,
        r"is a damaged classifier file: field 'classes.values': labels repeat",
        "Do not load the file: it was altered. Save the classifier again.",
    ),
    *[
        ErrorCase(
            f"skops-{case_id}",
            case,
            lambda case_id=case_id: persistence.load(_hostile_skops(case_id)),
            ValueError,
            match,
            "Do not load the file: it was altered. Save the estimator again with "
            "``persistence.dump``.",
        )
        for case_id, case, match in [
            (
                "schema-inflates-to-256-mib",
                "A skops file whose members inflate far beyond its size",
                r"is a damaged skops file: field 'schema.json': the archive's members "
                r"inflate to .* bytes or more, over the .* bytes allowed",
            ),
            (
                "npy-header-declares-30-gib",
                "A skops file whose array header declares more than it holds",
                r"is a damaged skops file: field '.*\.npy': the header declares "
                r"shape \(4000000000,\) of float64 \(32000000000 bytes\), but .* "
                r"bytes follow it",
            ),
            (
                "schema-nested-100000-deep",
                "A skops file whose schema nests 100,000 levels deep",
                r"is a damaged skops file: field 'schema.json': nested .* levels "
                r"deep, more than 64",
            ),
            (
                "negative-temperature",
                "A skops file of a classifier with ``temperature=-1``",
                r"is a damaged skops file: field 'estimator.temperature': The "
                r"'temperature' parameter of PrototypicalClassifier must be a float "
                r"in the range \(0.0, inf\)",
            ),
            (
                "encoder-is-42",
                "A skops file of a classifier whose ``encoder_`` is a number",
                r"is a damaged skops file: field 'estimator.encoder_': must be None "
                r"or a fitted scikit-learn transformer, got int 42",
            ),
        ]
    ],
    ErrorCase(
        "save-to-missing-folder",
        "Saving a model into a folder that does not exist",
        lambda: persistence.save_encoder(
            MLP(in_features=6), Path(tempfile.mkdtemp()) / "missing" / "model.st"
        ),
        FileNotFoundError,
        r"No such file or directory: '.*/missing/model\.st'",
        "Create the folder first; the error names the file you asked for.",
    ),
    ErrorCase(
        "image-decompression-bomb",
        "An image of 40000x40000 pixels (a decompression bomb)",
        lambda: ImageReader().transform([_bomb_png()]),
        ValueError,
        r"The image file '.*bomb\.png' is too large to decode safely \(Image size "
        r"\(1600000000 pixels\) exceeds limit",
        "Do not read it; if the image is genuine, raise "
        "``PIL.Image.MAX_IMAGE_PIXELS`` and ``max_pixels``.",
    ),
    ErrorCase(
        "download-checksum",
        "A download that is not the expected file (an error page, a truncated "
        "transfer)",
        _download_error_page,
        FileNotFoundError,
        r"is not the expected one: its SHA-256 is .*It was deleted, nothing was "
        r"kept",
        "Try again later, or download the files by hand into the data home.",
    ),
]


# -- partial_fit, semi-supervised prototypes, open-set rejection -----
_X3 = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
ERROR_CASES += [
    ErrorCase(
        "partial-fit-n-features",
        "``partial_fit`` with a different number of features than before",
        lambda: PrototypicalClassifier().partial_fit(X4, Y4).partial_fit(X4[:, :2], Y4),
        ValueError,
        r"X has 2 features, but PrototypicalClassifier is expecting 3 features",
        "Give every call rows of the same features as the first.",
    ),
    ErrorCase(
        "partial-fit-label-kind",
        "``partial_fit`` with string labels after numeric ones",
        lambda: (
            PrototypicalClassifier().partial_fit(X4, Y4).partial_fit(X4[:2], ["a", "b"])
        ),
        ValueError,
        r"give labels of the same kind \(numbers or strings\) in every call",
        "Keep the labels of one kind across calls.",
    ),
    ErrorCase(
        "partial-fit-mahalanobis",
        "``partial_fit`` with ``metric='mahalanobis'``",
        lambda: PrototypicalClassifier(metric="mahalanobis").partial_fit(X4, Y4),
        AttributeError,
        r"This 'PrototypicalClassifier' has no attribute 'partial_fit'",
        "Use ``fit`` on all examples (the shrunk class covariances are not "
        "running sums; the error's cause says so), or another metric.",
    ),
    ErrorCase(
        "partial-fit-unknown-label",
        "``partial_fit`` with ``unknown_label`` or ``refinement_steps`` set",
        lambda: PrototypicalClassifier(unknown_label=-1).partial_fit(X4, Y4),
        AttributeError,
        r"This 'PrototypicalClassifier' has no attribute 'partial_fit'",
        "Use ``fit`` on the whole support set (the threshold and the "
        "refinement need it at once); the error's cause names the parameter.",
    ),
    ErrorCase(
        "partial-fit-new-label-fixed-classes",
        "A later ``partial_fit`` with a label outside the first call's ``classes``",
        lambda: (
            PrototypicalClassifier()
            .partial_fit(X4, Y4, classes=[0, 1, 2, 3])
            .partial_fit(X4[:2], [0, 7])
        ),
        ValueError,
        r"y has labels \[7\] that are not in the classes given to the first call",
        "Fit again with every class in ``classes`` (as scikit-learn's "
        "incremental estimators require).",
    ),
    ErrorCase(
        "unknown-label-kind",
        "``unknown_label='unknown'`` with integer labels",
        lambda: PrototypicalClassifier(unknown_label="unknown").fit(X4, Y4),
        ValueError,
        r"unknown_label='unknown' must be of the labels' kind",
        "Give a label of the same kind as ``y`` that no class has (``-1``).",
    ),
    ErrorCase(
        "fine-tune-variance-metric",
        "``fine_tune_steps > 0`` with a variance-aware metric",
        lambda: PrototypicalClassifier(
            MLP(in_features=4, out_features=2), metric="mahalanobis", fine_tune_steps=2
        ).fit(X4, Y4),
        ValueError,
        r"fine_tune_steps=2 fine-tunes on mean prototypes, which "
        r"metric='mahalanobis' cannot serve",
        "Use ``fine_tune_steps=0``, or a metric with mean prototypes.",
    ),
    ErrorCase(
        "image-paths-as-X",
        "An array of image file paths as ``X``",
        lambda: PrototypicalClassifier().fit(np.array([["a.png"], ["b.png"]]), [0, 1]),
        ValueError,
        r"These look like image file paths: read them with "
        r"sklearn_protonet.preprocessing.ImageReader",
        "Put ``ImageReader.from_encoder(encoder)`` before the classifier.",
    ),
    ErrorCase(
        "partial-fit-classes",
        "``partial_fit`` with labels missing from ``classes``",
        lambda: PrototypicalClassifier().partial_fit(X4, Y4, classes=[0, 1]),
        ValueError,
        r"y has labels \[2, 3\] that are not in classes",
        "Include every label in ``classes``, or pass ``classes=None``.",
    ),
    ErrorCase(
        "semi-supervised-all-unlabeled",
        "Every row marked unlabeled (``-1``) with ``refinement_steps > 0``",
        lambda: PrototypicalClassifier(refinement_steps=2).fit(X4, [-1] * 8),
        ValueError,
        r"Every row of y is marked unlabeled \(-1\)",
        "Give labeled examples of at least two classes.",
    ),
    ErrorCase(
        "semi-supervised-variance-metric",
        "``refinement_steps > 0`` with a variance-aware metric",
        lambda: PrototypicalClassifier(refinement_steps=1, metric="mahalanobis").fit(
            X4, Y4
        ),
        ValueError,
        r"refinement_steps=1 refines mean prototypes, which metric='mahalanobis' "
        r"cannot serve",
        "Use ``metric='sqeuclidean'`` (or ``euclidean``, ``cosine``).",
    ),
    ErrorCase(
        "semi-supervised-bad-refinement",
        "``PrototypicalClassifier(refinement='kmeans')``",
        lambda: PrototypicalClassifier(refinement="kmeans").fit(X4, Y4),
        InvalidParameterError,
        r"The 'refinement' parameter of PrototypicalClassifier must be a str "
        r"among",
        "Use ``'guarded'``, ``'masked'`` or ``'soft_kmeans'``.",
    ),
    ErrorCase(
        "open-set-label-collision",
        "``unknown_label`` equal to a class label",
        lambda: PrototypicalClassifier(unknown_label=2).fit(X4, Y4),
        ValueError,
        r"unknown_label=2 is also a class label in y",
        "Choose a label no class has (e.g. ``-1`` or ``'unknown'``).",
    ),
    ErrorCase(
        "open-set-one-shot",
        "``unknown_label`` with one support example per class",
        lambda: PrototypicalClassifier(unknown_label=-1).fit(_X3, [0, 1, 2]),
        ValueError,
        r"need two support examples of some class, but every class has one",
        "Add a second example to some class (the threshold is calibrated by "
        "leave-one-out), or use ``unknown_label=None``.",
    ),
    ErrorCase(
        "open-set-bad-quantile",
        "``PrototypicalClassifier(rejection_quantile=1.5)``",
        lambda: PrototypicalClassifier(unknown_label=-1, rejection_quantile=1.5).fit(
            X4, Y4
        ),
        InvalidParameterError,
        r"The 'rejection_quantile' parameter of PrototypicalClassifier must be a "
        r"float in the range \[0.0, 1.0\]",
        "Pass a quantile in [0, 1] (the share of known examples to accept).",
    ),
    ErrorCase(
        "open-set-set-after-fit",
        "``unknown_label`` set with ``set_params`` after ``fit``",
        lambda: (
            PrototypicalClassifier()
            .fit(X4, Y4)
            .set_params(unknown_label=-1)
            .predict(X4)
        ),
        NotFittedError,
        r"the rejection threshold is calibrated by fit\. Call fit again",
        "Refit after setting ``unknown_label``.",
    ),
    # -- the scikit-learn contract: labels, devices, widths, frozen encoders --
    *[
        ErrorCase(
            f"{who}-missing-labels-{kind}",
            f"``{who_name}.fit`` with ``{kind}`` labels among the classes",
            trigger,
            ValueError,
            r"y contains 10 missing label\(s\) \(None or NaN\) at rows "
            r"\[30, 31, 32, 33, 34, \.\.\.\]; "
            rf"{who_name} needs the class of every row",
            "Drop the unlabelled rows (``mask = pd.notna(y)``), or give them a class.",
        )
        for who, who_name, fit in (
            ("trainer", "EpisodicTrainer", lambda y: tiny_trainer().fit(X40, y)),
            (
                "classifier",
                "PrototypicalClassifier",
                lambda y: PrototypicalClassifier().fit(X40, y),
            ),
        )
        for kind, trigger in (
            ("None", lambda fit=fit: fit(_labels_with(None))),
            ("NaN", lambda fit=fit: fit(_labels_with(np.nan))),
            (
                "float-NaN",
                lambda fit=fit: fit(
                    np.r_[np.repeat([1.0, 2.0, 3.0], 10), [np.nan] * 10]
                ),
            ),
        )
    ],
    ErrorCase(
        "mixed-label-kinds",
        "Labels mixing strings and numbers in an object array",
        lambda: tiny_trainer().fit(X40, _labels_with(7, n_missing=1)),
        ValueError,
        r"y mixes strings with \['int'\] labels; EpisodicTrainer needs labels "
        r"of one kind",
        "Convert them all to strings, e.g. ``y.astype(str)``.",
    ),
    *[
        ErrorCase(
            f"{who}-device-typo",
            f"``{who}(device='gpu')``",
            trigger,
            InvalidParameterError,
            rf"The 'device' parameter of {who} must be None, a torch device name "
            r"such as 'cpu', 'cuda' or 'cuda:0'",
            "Use a torch device name: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``.",
        )
        for who, trigger in (
            ("EpisodicTrainer", lambda: tiny_trainer(device="gpu").fit(X40, Y40)),
            (
                "PrototypicalClassifier",
                lambda: PrototypicalClassifier(device="gpu").fit(X4, Y4),
            ),
        )
    ],
    ErrorCase(
        "trainer-set-params-device-typo",
        "``trainer.set_params(device='gpu')``, then ``fit``",
        lambda: tiny_trainer().set_params(device="gpu").fit(X40, Y40),
        InvalidParameterError,
        r"The 'device' parameter of EpisodicTrainer must be None, a torch device",
        "Use a torch device name; ``fit`` checks the value ``set_params`` stored.",
    ),
    *[
        ErrorCase(
            f"{who}-device-not-on-this-machine",
            f"``{who}(device='cuda:99')``: no such accelerator on this machine",
            trigger,
            ValueError,
            rf"{who}\(device='cuda:99'\): this machine",
            "Use ``device='cpu'``, a device this machine has, or a PyTorch build "
            "for your accelerator.",
        )
        for who, trigger in (
            (
                "EpisodicTrainer",
                lambda: tiny_trainer().set_params(device="cuda:99").fit(X40, Y40),
            ),
            (
                "PrototypicalClassifier",
                lambda: PrototypicalClassifier(device="cuda:99").fit(X4, Y4),
            ),
        )
    ],
    ErrorCase(
        "frozen-encoder-set-params",
        "``PrototypicalClassifier(fitted_trainer).set_params(encoder__lr=0.1)`` "
        "(also in a ``GridSearchCV``)",
        lambda: PrototypicalClassifier(_fitted_trainer()).set_params(encoder__lr=0.1),
        ValueError,
        r"Cannot set encoder__lr on PrototypicalClassifier: its encoder, a fitted "
        r"EpisodicTrainer, is frozen",
        "Tune the classifier's own parameters; to tune meta-training pass an "
        "unfitted trainer, ``PrototypicalClassifier(clone(trainer))``.",
    ),
    ErrorCase(
        "trainer-transform-wrong-width",
        "``trainer.transform`` on rows of another width than meta-training's",
        lambda: _fitted_trainer().transform(X40[:, :3]),
        ValueError,
        r"X has 3 features, but EpisodicTrainer is expecting 6 features as input",
        "Transform the rows exactly as the meta-training rows.",
    ),
    ErrorCase(
        "fitted-encoder-wrong-width",
        "``PrototypicalClassifier(fitted_trainer).fit`` on rows of another width",
        lambda: PrototypicalClassifier(_fitted_trainer()).fit(X4, Y4),
        ValueError,
        r"X has 3 features, but EpisodicTrainer is expecting 6 features as input",
        "Give the support set the columns the encoder was trained on.",
    ),
    ErrorCase(
        "module-encoder-wrong-width",
        "A module whose first layer is ``nn.Linear(6, ...)`` on 3 columns",
        lambda: PrototypicalClassifier(torch.nn.Linear(6, 2)).fit(X4, Y4),
        ValueError,
        r"X has 3 features, but PrototypicalClassifier is expecting 6 features "
        r"as input: its encoder, Linear, takes 6 values per sample",
        "Give X that many columns, or build the module for your data.",
    ),
    ErrorCase(
        "encoder-feature-names-differ",
        "A support DataFrame whose columns differ from the encoder's training",
        lambda: PrototypicalClassifier(_fitted_trainer("abcdef")).fit(
            pd.DataFrame(X40, columns=list("abcdez")), Y40
        ),
        ValueError,
        r"The feature names should match those that were passed during fit",
        "Select and order the columns as in meta-training.",
    ),
]


def _load_generator():
    """The docs script, as a module (it imports ERROR_CASES lazily)."""
    return runpy.run_path(str(ROOT / "docs" / "generate_error_table.py"))


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.id for c in ERROR_CASES])
def test_bad_input(case: ErrorCase):
    with pytest.raises(case.exception, match=case.match) as error:
        case.trigger()
    # The exact type: a subclass would make the documented type a lie.
    assert error.type is case.exception
    # The documentation shows the pattern as text: each piece is in the message.
    for piece in _load_generator()["excerpt"](case.match).split(" … "):
        assert piece in str(error.value)


def test_ids_are_unique():
    ids = [case.id for case in ERROR_CASES]
    assert len(ids) == len(set(ids))


def test_error_table_in_the_docs_is_up_to_date():
    """docs/user_guide/errors.rst is generated from ERROR_CASES."""
    committed = (ROOT / "docs" / "user_guide" / "errors.rst").read_text()
    assert committed == _load_generator()["render"](ERROR_CASES), (
        "docs/user_guide/errors.rst is stale: run python docs/generate_error_table.py"
    )
