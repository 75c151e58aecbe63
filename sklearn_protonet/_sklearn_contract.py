"""The scikit-learn contract where skorch or wrapped encoders bend it: reprs,
parameter names, frozen fitted encoders, input widths and feature names.

The estimators call these helpers in a line or two each, so the rules live in
one place.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
)
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from ._encoders import encoder_module

__all__ = [
    "check_encoder_input",
    "check_frozen_encoder_params",
    "is_frozen_encoder",
    "record_input",
    "sklearn_signature",
]

_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def sklearn_signature(cls) -> inspect.Signature:
    """``cls.__init__``'s signature with the keyword parameters of every
    ``__init__`` along the MRO (the nearest default wins).

    A skorch net passes most parameters to ``NeuralNet.__init__`` through
    ``**kwargs``; scikit-learn's repr compares each parameter with the default
    in the signature and would otherwise print all of them as changed. The
    merged signature also documents every parameter in ``help()``.
    """
    own = inspect.signature(cls.__init__)
    head = [p for p in own.parameters.values() if p.kind not in _SKIPPED_KINDS]
    head = [p for p in head if p.kind != inspect.Parameter.KEYWORD_ONLY]
    names = {p.name for p in head}
    keywords = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind in _SKIPPED_KINDS or param.name in names:
                continue
            keywords.setdefault(
                param.name, param.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            )
    var = [p for p in own.parameters.values() if p.kind in _SKIPPED_KINDS]
    var_positional = [p for p in var if p.kind == inspect.Parameter.VAR_POSITIONAL]
    var_keyword = [p for p in var if p.kind == inspect.Parameter.VAR_KEYWORD]
    return own.replace(
        parameters=[*head, *var_positional, *keywords.values(), *var_keyword]
    )


def is_fitted(estimator) -> bool:
    """``check_is_fitted`` as a boolean."""
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def is_frozen_encoder(encoder) -> bool:
    """Whether ``encoder`` is a fitted estimator, which a classifier shares
    with its clones and never changes (a module is copied by ``clone``)."""
    if encoder is None or isinstance(encoder, nn.Module):
        return False
    return hasattr(encoder, "get_params") and is_fitted(encoder)


def check_frozen_encoder_params(estimator, params: dict) -> None:
    """Refuse ``set_params(encoder__...)`` on a fitted (frozen) encoder.

    ``clone`` shares a fitted encoder between a classifier and its clones, so
    setting its parameters through one of them would change the user's
    trainer, every clone's, and (skorch re-initialises on ``module__*``)
    discard its training; the result would also depend on whether
    ``GridSearchCV`` ran in this process or pickled the estimator to
    another. The rule is therefore the same everywhere: a fitted encoder is
    frozen.
    """
    nested = sorted(key for key in params if key.startswith("encoder__"))
    if not nested:
        return
    encoder = params.get("encoder", estimator.encoder)
    if not is_frozen_encoder(encoder):
        return
    # Setting a parameter to the value it has changes nothing: the round trip
    # est.set_params(**est.get_params(deep=True)) works, also in a Pipeline.
    current = encoder.get_params(deep=True)
    nested = [
        key
        for key in nested
        if not _same(params[key], current.get(key[len("encoder__") :], _MISSING))
    ]
    if not nested:
        return
    raise ValueError(
        f"Cannot set {', '.join(nested)} on {type(estimator).__name__}: its "
        f"encoder, a fitted {type(encoder).__name__}, is frozen. The classifier "
        "and its clones (GridSearchCV, cross_val_score) share a fitted encoder "
        "and never change or retrain it. To tune meta-training, give the "
        "classifier an unfitted trainer, e.g. "
        "PrototypicalClassifier(sklearn.base.clone(trainer)), which every fit "
        "meta-trains anew with encoder__* set; to change the fitted trainer "
        "itself, call trainer.set_params(...) on it directly."
    )


_MISSING = object()


def _same(value, current, depth: int = 0) -> bool:
    """Whether ``value`` is the parameter's current value (objects with
    parameters, such as skorch's default callbacks, which are made anew on
    each ``get_params``, compare by their parameters)."""
    if value is current:
        return True
    if current is _MISSING or type(value) is not type(current):
        return False
    if hasattr(value, "get_params") and not isinstance(value, type) and depth < 3:
        mine, theirs = value.get_params(deep=False), current.get_params(deep=False)
        return mine.keys() == theirs.keys() and all(
            _same(mine[key], theirs[key], depth + 1) for key in mine
        )
    try:
        return bool(value == current)
    except Exception:  # noqa: BLE001  (arrays, modules: no single truth value)
        return False


def first_layer_width(module: nn.Module) -> tuple[int, str] | None:
    """The flattened sample size a module takes, when its first layer tells.

    The first submodule stating an image ``input_shape`` (``Conv4``,
    ``RandomShift``) gives ``C * H * W``; otherwise a first weighted layer
    that is a (materialised) ``nn.Linear`` gives its ``in_features``. Any
    other first layer tells nothing: the module checks its input itself.
    """
    for sub in module.modules():
        shape = getattr(sub, "input_shape", None)
        if isinstance(shape, tuple) and len(shape) == 3:
            return int(np.prod(shape)), f"{type(sub).__name__}(input_shape={shape})"
        if next(sub.parameters(recurse=False), None) is not None:
            lazy = isinstance(sub, LazyModuleMixin) or any(
                isinstance(p, UninitializedParameter) for p in sub.parameters()
            )
            if isinstance(sub, nn.Linear) and not lazy:
                return sub.in_features, f"its first layer, {sub}"
            return None
    return None


def check_encoder_input(
    encoder, sample_shape: tuple[int, ...], feature_names, owner: str
) -> None:
    """Refuse samples the encoder cannot embed, with scikit-learn's messages.

    A fitted estimator (a trainer, a transformer, either inside
    ``FrozenEstimator``) recorded ``n_features_in_`` and
    ``feature_names_in_`` when it was fitted: scikit-learn's own checks run
    against them. A module states its width through its first layer
    (:func:`first_layer_width`). Without this, a wrong width fails deep in
    torch ("mat1 and mat2 shapes cannot be multiplied").

    Parameters
    ----------
    encoder : None, torch.nn.Module or fitted estimator
    sample_shape : tuple of int
        ``X.shape[1:]`` of the validated input.
    feature_names : ndarray of str or None
        The input's column names (``feature_names_in_`` of the caller).
    owner : str
        The estimator that holds the encoder, for the message.
    """
    holder = encoder.estimator if isinstance(encoder, FrozenEstimator) else encoder
    if holder is None:
        return
    if not isinstance(holder, nn.Module) and (
        not hasattr(holder, "fit") or not is_fitted(holder)
    ):
        return  # fitted on this very X first, or no encoder (fit says so)
    n_features = int(np.prod(sample_shape))
    if not isinstance(holder, nn.Module) and hasattr(holder, "n_features_in_"):
        if len(sample_shape) == 1:
            _check_n_features(holder, np.empty((0, *sample_shape)), reset=False)
        elif n_features != holder.n_features_in_:
            raise ValueError(
                f"X has samples of shape {tuple(sample_shape)} ({n_features} "
                f"values), but {owner}'s encoder, {type(holder).__name__}, is "
                f"expecting {holder.n_features_in_} features as input."
            )
        names = None if feature_names is None else pd.DataFrame(columns=feature_names)
        _check_feature_names(holder, names, reset=False)
        return
    module = encoder_module(encoder)
    width = None if module is None else first_layer_width(module)
    if width is not None and "input_shape" in width[1]:
        return  # image modules check their input themselves, naming the shape
    if width is not None and width[0] != n_features:
        raise ValueError(
            f"X has {n_features} features, but {owner} is expecting {width[0]} "
            f"features as input: its encoder, {type(module).__name__}, takes "
            f"{width[0]} values per sample ({width[1]}). Give X that many "
            "columns, or an encoder built for your data."
        )


def record_input(estimator, X, *, reset: bool) -> None:
    """Record (``reset``) or check ``n_features_in_`` / ``feature_names_in_``
    of an estimator that also takes skorch datasets, with scikit-learn's
    messages.

    Only tables (2-D arrays, DataFrames, lists of rows, 2-D tensors) have
    features; N-D images are left to the module's own shape check (Conv4
    names the shape it expects), and datasets to skorch.
    """
    table = isinstance(X, (np.ndarray, torch.Tensor, list, tuple)) or sp.issparse(X)
    if not table and not hasattr(X, "columns"):
        return
    n_dims = len(X.shape) if hasattr(X, "shape") else np.ndim(X)
    if n_dims != 2:
        if reset:  # an image-trained encoder: no stale table width
            for name in ("n_features_in_", "feature_names_in_"):
                estimator.__dict__.pop(name, None)
        return
    _check_n_features(estimator, X, reset=reset)
    _check_feature_names(estimator, X, reset=reset)
