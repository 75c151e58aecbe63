"""Saving fitted estimators without trusting pickle on the way back.

``pickle`` and ``joblib`` round-trip every estimator of the package exactly,
but loading a pickle runs whatever code the file names, so a file from an
untrusted source can take over the machine. This module offers two loaders
that never unpickle:

- :func:`save_classifier` / :func:`load_classifier`: a fitted
  :class:`~sklearn_protonet.PrototypicalClassifier`, including its encoder's
  weights, as one safetensors file (tensors plus JSON metadata). Works for
  every encoder kind except scikit-learn transformers.
- :func:`dump` / :func:`load`: ``skops.io`` for estimators without torch
  content (the identity encoder, scikit-learn transformers as encoders,
  pipelines around them), loading only the types in :data:`TRUSTED_TYPES`
  plus those you list.

Why not skops for torch encoders: skops cannot represent a ``torch.Tensor``
(dumping a classifier with a module encoder fails), and a skorch net, such as
:class:`~sklearn_protonet.EpisodicTrainer`, stores its module, optimizer and
criterion as a *pickle* inside its state, which skorch unpickles when the
state is restored. A skops file holding a trainer would therefore run pickle
code as soon as the trainer's type is trusted; :func:`load` refuses such
files. For a trainer alone, use skorch's ``save_params`` / ``load_params``
(``torch.load(weights_only=True)``) or
:func:`sklearn_protonet.pretrained.save_encoder` (safetensors).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from sklearn.utils.validation import check_is_fitted
from torch import nn

from . import __version__
from .classifier import PrototypicalClassifier
from .modules import MLP, Conv4

__all__ = [
    "TRUSTED_TYPES",
    "dump",
    "load",
    "load_classifier",
    "save_classifier",
]

#: Types of this package that :func:`load` trusts besides skops's defaults
#: (scikit-learn, NumPy and builtin containers).
TRUSTED_TYPES: tuple[str, ...] = ("sklearn_protonet.classifier.PrototypicalClassifier",)

_FORMAT = "sklearn-protonet-classifier/1"
# Types whose restoring unpickles (skorch nets keep torch objects as a pickle).
_UNPICKLING_PREFIXES = ("skorch.", "sklearn_protonet.trainer.")
_CLASS_DTYPE_KINDS = "biufUO"


# -- skops ---------------------------------------------------------------------


def dump(estimator, file: str | os.PathLike) -> None:
    """Write an estimator with ``skops.io``, refusing torch content.

    Parameters
    ----------
    estimator : estimator
        E.g. a fitted ``PrototypicalClassifier`` with the identity encoder or
        a scikit-learn transformer as encoder, or a pipeline around one.
    file : str or path-like

    Raises
    ------
    TypeError
        If the estimator holds torch modules or a skorch net: such a file could
        only be loaded by unpickling. Use :func:`save_classifier` instead.
    """
    sio = _skops()
    try:
        data = sio.dumps(estimator)
    except RuntimeError as error:  # torch.Tensor has no skops representation
        raise TypeError(
            f"skops cannot store this estimator's torch tensors ({error}); use "
            "sklearn_protonet.persistence.save_classifier instead."
        ) from error
    unsafe = _unpickling_types(sio.get_untrusted_types(data=data))
    if unsafe:
        raise TypeError(
            f"The estimator holds {unsafe}, which skorch restores by unpickling, "
            "so a skops file would not be safe to load; use "
            "sklearn_protonet.persistence.save_classifier instead."
        )
    Path(file).write_bytes(data)


def load(file: str | os.PathLike, trusted: Iterable[str] = TRUSTED_TYPES):
    """Load a file written by :func:`dump`, running no code from it.

    Parameters
    ----------
    file : str or path-like
    trusted : iterable of str, default=TRUSTED_TYPES
        Type names allowed besides skops's defaults. Check a file's needs
        with ``skops.io.get_untrusted_types(file=...)`` before widening it.

    Returns
    -------
    estimator

    Raises
    ------
    skops.io.exceptions.UntrustedTypesFoundException
        If the file names a type that is not trusted (a ``TypeError``).
    ValueError
        If the file is not a skops file, or holds a skorch net (restoring one
        unpickles, whatever ``trusted`` says).
    """
    import zipfile

    sio = _skops()
    try:
        types = sio.get_untrusted_types(file=file)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{file} is not a skops file ({error}); write it with "
            "sklearn_protonet.persistence.dump."
        ) from error
    unsafe = _unpickling_types(types)
    if unsafe:
        raise ValueError(
            f"{file} holds {unsafe}; restoring it would unpickle data from the "
            "file, so it is refused. Save such estimators with save_classifier."
        )
    return sio.load(file, trusted=list(trusted))


def _skops():
    try:
        import skops.io
    except ImportError as error:  # an optional dependency
        raise ImportError(
            "dump and load need skops: pip install skops. save_classifier and "
            "load_classifier work without it."
        ) from error
    return skops.io


def _unpickling_types(types: Iterable[str]) -> list[str]:
    return sorted(t for t in types if t.startswith(_UNPICKLING_PREFIXES))


# -- safetensors bundle -------------------------------------------------------


def _module_spec(module: nn.Module) -> dict:
    """How to rebuild a module without code from the file: known classes only."""
    name = f"{type(module).__module__}.{type(module).__qualname__}"
    if type(module) is Conv4:
        config = {
            "input_shape": list(module.input_shape),
            "hidden_channels": module.hidden_channels,
            "n_blocks": module.n_blocks,
        }
        return {"class": name, "builder": "Conv4", "config": config}
    if type(module) is MLP:
        linears = [m for m in module.layers if isinstance(m, nn.Linear)]
        dropouts = [m.p for m in module.layers if isinstance(m, nn.Dropout)]
        config = {
            "in_features": linears[0].in_features,
            "hidden_sizes": [m.out_features for m in linears[:-1]],
            "out_features": linears[-1].out_features,
            "dropout": dropouts[0] if dropouts else 0.0,
        }
        return {"class": name, "builder": "MLP", "config": config}
    return {"class": name, "builder": None, "config": None}


def _build(spec: dict) -> nn.Module | None:
    builders = {"Conv4": Conv4, "MLP": MLP}
    builder = spec.get("builder")
    if builder is None:
        return None
    if builder not in builders or not isinstance(spec.get("config"), dict):
        raise ValueError(f"unknown encoder builder {builder!r}")
    config = dict(spec["config"])
    if builder == "MLP":
        config["hidden_sizes"] = tuple(config["hidden_sizes"])
    else:
        config["input_shape"] = tuple(config["input_shape"])
    return builders[builder](**config)


def _classes_to_json(classes: np.ndarray) -> str:
    if classes.dtype.kind not in _CLASS_DTYPE_KINDS:
        raise TypeError(f"Cannot store class labels of dtype {classes.dtype}.")
    values = classes.tolist()
    try:
        return json.dumps({"dtype": classes.dtype.str, "values": values})
    except TypeError as error:
        raise TypeError(
            f"Class labels must be numbers or strings to be saved: {error}"
        ) from error


def _classes_from_json(text: str) -> np.ndarray:
    spec = json.loads(text)
    dtype = np.dtype(str(spec["dtype"]))
    if dtype.kind not in _CLASS_DTYPE_KINDS or not isinstance(spec["values"], list):
        raise ValueError(f"unsupported class labels {spec!r}")
    if dtype.kind == "O":
        classes = np.empty(len(spec["values"]), dtype=object)
        classes[:] = spec["values"]
        return classes
    return np.asarray(spec["values"], dtype=dtype)


def save_classifier(classifier: PrototypicalClassifier, path) -> None:
    """Write a fitted classifier and its encoder's weights as one safetensors file.

    The file holds tensors (prototypes, encoder weights) and JSON metadata
    only; :func:`load_classifier` reads it without unpickling anything.

    Parameters
    ----------
    classifier : PrototypicalClassifier
        Fitted; its encoder is the identity, a ``torch.nn.Module``, or a
        (frozen) ``EpisodicTrainer``.
    path : str or path-like

    Raises
    ------
    TypeError
        If the encoder is a scikit-learn transformer (use :func:`dump`) or the
        class labels are neither numbers nor strings.
    """
    if not isinstance(classifier, PrototypicalClassifier):
        raise TypeError(
            f"save_classifier saves a PrototypicalClassifier, got "
            f"{type(classifier).__name__}; use dump for other estimators."
        )
    check_is_fitted(classifier)
    tensors = {
        "prototypes": torch.from_numpy(np.ascontiguousarray(classifier.prototypes_))
    }
    if classifier.encoder_ is None:
        encoder = {"kind": "identity"}
    else:
        module = classifier._embedding_module()
        if module is None:
            raise TypeError(
                f"The encoder {type(classifier.encoder_).__name__} is not a torch "
                "module; save the classifier with sklearn_protonet.persistence.dump "
                "(skops) instead."
            )
        encoder = {"kind": "module", **_module_spec(module)}
        for key, value in module.state_dict().items():
            tensors[f"encoder.{key}"] = value.detach().cpu().contiguous()
    names = getattr(classifier, "feature_names_in_", None)
    metadata = {
        "format": _FORMAT,
        "version": __version__,
        "params": json.dumps(
            {
                "metric": classifier.metric,
                "temperature": float(classifier.temperature),
                "batch_size": int(classifier.batch_size),
            }
        ),
        "classes": _classes_to_json(classifier.classes_),
        "n_features_in": str(int(classifier.n_features_in_)),
        "input_shape": json.dumps([int(s) for s in classifier.input_shape_]),
        "feature_names_in": json.dumps(None if names is None else names.tolist()),
        "encoder": json.dumps(encoder),
    }
    save_file(tensors, str(path), metadata=metadata)


def load_classifier(
    path, encoder: nn.Module | None = None, device: str | torch.device = "cpu"
) -> PrototypicalClassifier:
    """Load a classifier written by :func:`save_classifier`, running no code.

    Parameters
    ----------
    path : str or path-like
    encoder : torch.nn.Module, default=None
        A module of the saved architecture, to receive the saved weights.
        Needed only when the encoder is not a :class:`~sklearn_protonet.modules.
        Conv4` or :class:`~sklearn_protonet.modules.MLP` (those are rebuilt
        from the file's configuration): the code comes from you, never from
        the file.
    device : str or torch.device, default="cpu"
        Where the encoder's weights go.

    Returns
    -------
    PrototypicalClassifier
        Fitted, with the same predictions as the saved one. Its ``encoder``
        is the trained module itself (frozen), also when the saved classifier
        held an ``EpisodicTrainer``.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a classifier written by :func:`save_classifier`, is
        damaged or inconsistent, or its weights do not fit ``encoder``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No classifier file at {path}.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable safetensors file ({error}); write it with "
            "sklearn_protonet.persistence.save_classifier."
        ) from error
    if metadata.get("format") != _FORMAT:
        raise ValueError(
            f"{path} is not a sklearn-protonet classifier file (format "
            f"{metadata.get('format')!r}, expected {_FORMAT!r}); write it with "
            "save_classifier."
        )
    try:
        classifier = _restore(metadata, tensors, encoder, device)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is a damaged classifier file: {error}") from error
    return classifier


def _restore(metadata: dict, tensors: dict, encoder, device) -> PrototypicalClassifier:
    params = json.loads(metadata["params"])
    spec = json.loads(metadata["encoder"])
    classes = _classes_from_json(metadata["classes"])
    prototypes = tensors.pop("prototypes").numpy()
    input_shape = tuple(int(s) for s in json.loads(metadata["input_shape"]))
    n_features = int(metadata["n_features_in"])
    names = json.loads(metadata["feature_names_in"])
    if prototypes.dtype != np.float64 or prototypes.ndim != 2:
        raise ValueError(f"prototypes of dtype {prototypes.dtype}, {prototypes.ndim}-D")
    if len(prototypes) != len(classes) or len(classes) < 2:
        raise ValueError(f"{len(prototypes)} prototypes for {len(classes)} classes")
    if not input_shape or input_shape[0] != n_features:
        raise ValueError(f"input shape {input_shape} for {n_features} features")
    if names is not None and len(names) != n_features:
        raise ValueError(f"{len(names)} feature names for {n_features} features")

    module = None
    if spec["kind"] == "module":
        module = encoder if encoder is not None else _build(spec)
        if module is None:
            raise ValueError(
                f"the encoder is a {spec['class']}, which cannot be rebuilt from "
                "the file; pass encoder=<a module of that architecture> to "
                "load_classifier."
            )
        if not isinstance(module, nn.Module):
            raise TypeError(f"encoder must be a torch.nn.Module, got {type(module)}")
        prefix = "encoder."
        state = {
            k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)
        }
        if len(state) != len(tensors):
            raise ValueError(f"unexpected tensors {sorted(set(tensors) - set(state))}")
        module.load_state_dict(state, strict=True)
        module.to(device).eval().requires_grad_(False)
    elif spec["kind"] != "identity" or tensors:
        raise ValueError(f"unknown encoder {spec!r} or unexpected tensors")
    elif prototypes.shape[1] != int(np.prod(input_shape)):
        raise ValueError(
            f"prototypes of {prototypes.shape[1]} features, X of {n_features}"
        )

    classifier = PrototypicalClassifier(
        module,
        metric=params["metric"],
        temperature=params["temperature"],
        batch_size=params["batch_size"],
    )
    classifier._validate_params()
    classifier.classes_ = classes
    classifier.prototypes_ = prototypes
    classifier.encoder_ = module
    classifier.input_shape_ = input_shape
    classifier.n_features_in_ = n_features
    if names is not None:
        classifier.feature_names_in_ = np.asarray(names, dtype=object)
    return classifier
