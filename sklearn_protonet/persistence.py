"""Saving encoders and classifiers: one safetensors format, no code run on loading.

``pickle`` and ``joblib`` round-trip every estimator of the package exactly,
but loading a pickle runs whatever code the file names, so a file from an
untrusted source can take over the machine. This module is the one place
that writes and reads the package's files, in one safetensors format
(tensors plus JSON metadata; reading one never runs code):

- :func:`save_encoder` / :func:`load_encoder`: a trained encoder (a fitted
  :class:`~sklearn_protonet.EpisodicTrainer`, or a ``torch.nn.Module``); the
  shipped :mod:`~sklearn_protonet.pretrained` encoders are such files;
- :func:`save_classifier` / :func:`load_classifier`: a fitted
  :class:`~sklearn_protonet.PrototypicalClassifier` with its encoder's weights.

Both hold the encoder the same way: its weights under ``module.`` and a
description (class and constructor arguments) from which a known module
(:class:`~sklearn_protonet.modules.Conv4`, :class:`~sklearn_protonet.modules.MLP`)
is rebuilt; any other architecture is given by the caller, so the code always
comes from the caller, never from the file.

:func:`dump` / :func:`load` use ``skops.io`` for estimators without torch
content (the identity encoder, scikit-learn transformers as encoders,
pipelines around them), loading only the types in :data:`TRUSTED_TYPES` plus
those you list. skops cannot represent a ``torch.Tensor``, and a skorch net
stores its module, optimizer and criterion as a *pickle* inside its state,
which skorch unpickles when the state is restored: :func:`load` refuses such
files.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from . import __version__
from ._encoders import encoder_module
from ._geometry import DEFAULT_METRIC
from ._io import atomic_writer
from ._safe_load import check_file, damaged
from ._safe_skops import check_archive, check_loaded
from ._schema import params_from_json, params_to_json
from .classifier import PrototypicalClassifier, restore_fitted
from .contracts import InputContract
from .modules import MLP, Conv4
from .trainer import EpisodicTrainer

__all__ = [
    "TRUSTED_TYPES",
    "dump",
    "load",
    "load_classifier",
    "load_encoder",
    "save_classifier",
    "save_encoder",
]

#: Types of this package that :func:`load` trusts besides skops's defaults
#: (scikit-learn, NumPy and builtin containers).
TRUSTED_TYPES: tuple[str, ...] = ("sklearn_protonet.classifier.PrototypicalClassifier",)

FORMAT = "sklearn-protonet/2"
_PREFIX = "module."
# Types whose restoring unpickles (skorch nets keep torch objects as a pickle).
_UNPICKLING_PREFIXES = ("skorch.", "sklearn_protonet.trainer.")
_CLASS_DTYPE_KINDS = "biufUO"
# The module classes a file can name and have rebuilt (no code from the file).
_BUILDERS: dict[str, type[nn.Module]] = {"Conv4": Conv4, "MLP": MLP}


# -- describing and rebuilding a module ----------------------------------------


def _describe_module(module: nn.Module) -> dict:
    """The class of ``module`` and, for a known class, its constructor arguments.

    Returns ``{"class": qualified name, "builder": "Conv4" | "MLP" | None,
    "config": dict | None}``; :func:`_build_module` rebuilds a known module.
    """
    name = f"{type(module).__module__}.{type(module).__qualname__}"
    if type(module) is Conv4:
        config = {
            "input_shape": list(module.input_shape),
            "hidden_channels": module.hidden_channels,
            "n_blocks": module.n_blocks,
            "channels_last": module.channels_last,
        }
        if module.groups != 1:  # files of ungrouped ones stay as they were
            config["groups"] = module.groups
        return {"class": name, "builder": "Conv4", "config": config}
    if type(module) is MLP:
        first = next(m for m in module.layers if isinstance(m, nn.Linear))
        config = {
            "in_features": first.in_features,
            "hidden_sizes": list(module.hidden_sizes),
            "out_features": module.out_features,
            "dropout": module.dropout,
        }
        return {"class": name, "builder": "MLP", "config": config}
    return {"class": name, "builder": None, "config": None}


def _build_module(spec: dict) -> nn.Module | None:
    """A fresh module of a known class from :func:`_describe_module`'s
    description, or None for an unknown class."""
    builder = spec.get("builder")
    if builder is None:
        return None
    if builder not in _BUILDERS or not isinstance(spec.get("config"), dict):
        raise ValueError(f"unknown encoder builder {builder!r}")
    return _BUILDERS[builder](**spec["config"])


def _module_for(spec: dict, module: nn.Module | None, path, argument: str):
    """The caller's ``module``, else the one the description rebuilds."""
    if module is None and spec["builder"] is None:
        raise _CannotRebuild(
            f"{path} holds a {spec['class']} encoder, which cannot be rebuilt "
            f"from the file; pass {argument}=<a module of that architecture> to "
            "receive the weights."
        )
    module = _build_module(spec) if module is None else module
    if not isinstance(module, nn.Module):
        raise TypeError(f"{argument} must be a torch.nn.Module, got {type(module)}")
    return module


class _CannotRebuild(ValueError):
    """A file names an architecture the package cannot build (not an error
    in the file: the caller passes the module)."""


def _load_weights(module: nn.Module, tensors: dict, device) -> nn.Module:
    """``module`` with the file's weights, on ``device``, in eval mode and
    without gradients."""
    unexpected = sorted(k for k in tensors if not k.startswith(_PREFIX))
    if unexpected:
        raise ValueError(f"unexpected tensors {unexpected}")
    state = {k[len(_PREFIX) :]: v for k, v in tensors.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"its weights do not fit a {type(module).__name__}: {error}"
        ) from error
    return module.to(device).eval().requires_grad_(False)


# -- the file format -----------------------------------------------------------


def _write(path, tensors: dict, metadata: dict) -> None:
    """One safetensors file, written atomically."""
    metadata = {"format": FORMAT, "version": __version__, **metadata}
    with atomic_writer(Path(path)) as handle:
        handle.write(safetensors_bytes(tensors, metadata=metadata))


def _read(path, content: str, writer: str) -> tuple[dict, dict]:
    """The metadata and tensors of a file holding ``content``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {content} file at {path}.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable safetensors file ({error}); write it with "
            f"sklearn_protonet.persistence.{writer}."
        ) from error
    found = (metadata.get("format"), metadata.get("content"))
    if found != (FORMAT, content):
        raise ValueError(
            f"{path} is not a sklearn-protonet {content} file (format {found[0]!r}, "
            f"content {found[1]!r}; expected {FORMAT!r}, {content!r}); write it "
            f"with sklearn_protonet.persistence.{writer}."
        )
    return metadata, tensors


def _contract_to_json(module: nn.Module | None) -> str:
    """The input contract a module carries (``input_contract``), as JSON."""
    contract = getattr(module, "input_contract", None)
    return json.dumps(
        contract.to_dict() if isinstance(contract, InputContract) else None
    )


def _set_contract(module: nn.Module, metadata: dict) -> None:
    contract = json.loads(metadata.get("input_contract", "null"))
    if contract is not None:
        module.input_contract = InputContract.from_dict(contract)


def _module_tensors(module: nn.Module) -> dict:
    return {
        _PREFIX + key: value.detach().cpu().contiguous()
        for key, value in module.state_dict().items()
    }


# -- encoders ------------------------------------------------------------------


def save_encoder(encoder, path, metadata: dict | None = None) -> None:
    """Write a trained encoder's weights and description as safetensors.

    Parameters
    ----------
    encoder : EpisodicTrainer, FrozenEstimator or torch.nn.Module
        A fitted trainer (possibly frozen) or a module.
    path : str or path-like
    metadata : dict, default=None
        JSON-serialisable facts to keep beside the weights (accuracy,
        training recipe...); :func:`load_encoder` returns them as
        ``pretrained_info_``.

    Raises
    ------
    TypeError
        If ``encoder`` holds no torch module.
    """
    module = encoder_module(encoder)
    if module is None:
        raise TypeError(
            "save_encoder saves a fitted EpisodicTrainer or a torch.nn.Module, "
            f"got {type(encoder).__name__}."
        )
    estimator = getattr(encoder, "estimator", encoder)
    _write(
        path,
        _module_tensors(module),
        {
            "content": "encoder",
            "module": json.dumps(_describe_module(module)),
            "input_contract": _contract_to_json(module),
            "metric": getattr(estimator, "metric", DEFAULT_METRIC),
            "info": json.dumps(metadata or {}),
        },
    )


def load_encoder(path, device: str = "cpu", module: nn.Module | None = None):
    """Load an encoder written by :func:`save_encoder`, running no code.

    Parameters
    ----------
    path : str or path-like
    device : str, default="cpu"
    module : torch.nn.Module, default=None
        A module of the saved architecture, to receive the weights. Needed
        only when it is not a :class:`~sklearn_protonet.modules.Conv4` or
        :class:`~sklearn_protonet.modules.MLP` (those are rebuilt from the
        file's description).

    Returns
    -------
    FrozenEstimator
        Wrapping a fitted :class:`~sklearn_protonet.EpisodicTrainer`; its
        ``transform`` embeds, ``fit`` does nothing, and ``clone`` returns it
        unchanged, so it is safe inside pipelines and grid searches.
        ``.estimator.pretrained_info_`` holds the saved ``metadata``.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a sklearn-protonet encoder, is damaged, or its
        weights do not fit the architecture.
    """
    metadata, tensors = _read(path, "encoder", "save_encoder")
    # Every field checked against the tensors before anything is built.
    spec = check_file(path, "encoder", metadata, tensors, _BUILDERS)
    if spec is None:
        raise damaged(path, "encoder", "module", "an encoder file needs a module")
    if module is None and spec["builder"] in _BUILDERS:
        # Built by the trainer from its class and arguments, so that its
        # parameters (get_params, repr) describe the architecture.
        config = {f"module__{k}": v for k, v in spec["config"].items()}
        trainer = EpisodicTrainer(_BUILDERS[spec["builder"]], **config)
    else:
        trainer = EpisodicTrainer(_module_for(spec, module, path, "module"))
    try:
        info = json.loads(metadata.get("info", "{}"))
        trainer.set_params(metric=metadata["metric"], device=device, verbose=0)
        _load_weights(trainer.initialize().module_, tensors, device)
        _set_contract(trainer.module_, metadata)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is a damaged encoder file: {error}") from error
    trainer.pretrained_info_ = info
    return FrozenEstimator(trainer)


# -- classifiers ---------------------------------------------------------------


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
    if type(classifier) is not PrototypicalClassifier:
        raise TypeError(
            f"save_classifier saves a PrototypicalClassifier, got "
            f"{type(classifier).__name__}; use dump for other estimators."
        )
    check_is_fitted(classifier)
    if classifier.inference_dtype == "int8":
        raise ValueError(
            "save_classifier cannot save an inference_dtype='int8' classifier: "
            "its int8 encoder is calibrated on the support set, which the file "
            "does not hold. Save it fitted with inference_dtype='float32' and "
            "refit with set_params(inference_dtype='int8') after loading, or "
            "use pickle/joblib."
        )
    fitted = classifier._snapshot()
    tensors = fitted.support.to_tensors()
    module = encoder_module(classifier.encoder_)
    if classifier.encoder_ is not None and module is None:
        raise TypeError(
            f"The encoder {type(classifier.encoder_).__name__} is not a torch "
            "module; save the classifier with sklearn_protonet.persistence.dump "
            "(skops) instead."
        )
    if module is not None:
        tensors.update(_module_tensors(module))
    names = getattr(classifier, "feature_names_in_", None)
    metadata = {
        "content": "classifier",
        "module": json.dumps(None if module is None else _describe_module(module)),
        "params": json.dumps(params_to_json(classifier)),
        "threshold": json.dumps(fitted.support.threshold),
        "input_contract": _contract_to_json(module),
        "classes": _classes_to_json(fitted.classes),
        "n_features_in": str(int(classifier.n_features_in_)),
        "input_shape": json.dumps([int(s) for s in fitted.input_shape]),
        "feature_names_in": json.dumps(None if names is None else names.tolist()),
    }
    _write(path, tensors, metadata)


def load_classifier(
    path, encoder: nn.Module | None = None, device: str | torch.device = "cpu"
) -> PrototypicalClassifier:
    """Load a classifier written by :func:`save_classifier`, running no code.

    Parameters
    ----------
    path : str or path-like
    encoder : torch.nn.Module, default=None
        A module of the saved architecture, to receive the saved weights.
        Needed only when the encoder is not a
        :class:`~sklearn_protonet.modules.Conv4` or
        :class:`~sklearn_protonet.modules.MLP` (those are rebuilt from the
        file's description): the code comes from you, never from the file.
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
    metadata, tensors = _read(path, "classifier", "save_classifier")
    # Every field checked against the tensors before anything is built.
    spec = check_file(path, "classifier", metadata, tensors, _BUILDERS)
    try:
        if spec is not None:
            encoder = _module_for(spec, encoder, path, "encoder")
        return _restore(metadata, tensors, encoder, device)
    except _CannotRebuild:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is a damaged classifier file: {error}") from error


def _restore(metadata: dict, tensors: dict, encoder, device) -> PrototypicalClassifier:
    classes = _classes_from_json(metadata["classes"])
    input_shape = tuple(int(s) for s in json.loads(metadata["input_shape"]))
    n_features = int(metadata["n_features_in"])
    names = json.loads(metadata["feature_names_in"])
    module = None
    state = {name: tensors.pop(name) for name in list(tensors) if "." not in name}
    if encoder is not None:
        module = _load_weights(encoder, tensors, device)
        _set_contract(module, metadata)
    elif tensors:
        raise ValueError(f"weights {sorted(tensors)} for the identity encoder")
    classifier = PrototypicalClassifier(
        module, **params_from_json(PrototypicalClassifier, metadata["params"])
    )
    restore_fitted(
        classifier,
        state,
        classes=classes,
        input_shape=input_shape,
        threshold=json.loads(metadata.get("threshold", "null")),
    )
    classifier.n_features_in_ = n_features
    if names is not None:
        classifier.feature_names_in_ = np.asarray(names, dtype=object)
    return classifier


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
    with atomic_writer(Path(file)) as handle:
        handle.write(data)


def load(file: str | os.PathLike, trusted: Iterable[str] = TRUSTED_TYPES):
    """Load a file written by :func:`dump`, running no code from it.

    The file is checked before skops reads it and the estimator after skops
    has built it, with the promise of :func:`load_classifier`: memory in
    proportion to the file's size (member sizes, ``.npy`` headers and the
    schema's nesting checked before anything is inflated or allocated),
    every parameter checked as ``fit`` checks it, and the fitted attributes
    of a :class:`~sklearn_protonet.PrototypicalClassifier` checked for
    consistency (see :ref:`reliability`).

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
        If the file is not a skops file, is damaged or inconsistent (the
        message names the file and the field), or holds a skorch net
        (restoring one unpickles, whatever ``trusted`` says).
    """
    from skops.io.exceptions import UntrustedTypesFoundException

    sio = _skops()
    with open(file, "rb") as handle:  # held once: checked and loaded alike
        data = handle.read()
    check_archive(file, data)
    try:
        types = sio.get_untrusted_types(data=data)
    except Exception as error:  # any malformed schema: skops's own errors vary
        raise ValueError(
            f"{file} is a damaged skops file: {type(error).__name__}: {error}"
        ) from error
    unsafe = _unpickling_types(types)
    if unsafe:
        raise ValueError(
            f"{file} holds {unsafe}; restoring it would unpickle data from the "
            "file, so it is refused. Save such estimators with save_classifier."
        )
    try:
        estimator = sio.load(io.BytesIO(data), trusted=list(trusted))
    except UntrustedTypesFoundException:
        raise
    except Exception as error:
        raise ValueError(
            f"{file} is a damaged skops file: {type(error).__name__}: {error}"
        ) from error
    check_loaded(file, estimator, (PrototypicalClassifier,))
    return estimator


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
