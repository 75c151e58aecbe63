"""The scikit-learn contract where skorch or wrapped encoders bend it: reprs,
parameter names, frozen fitted encoders, input widths and feature names.

The estimators call these helpers in a line or two each, so the rules live in
one place (issue 11 of the project's tracker lists the cases they fix).
"""

from __future__ import annotations

import inspect

from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

__all__ = [
    "check_frozen_encoder_params",
    "is_frozen_encoder",
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


def _is_fitted(estimator) -> bool:
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
    return hasattr(encoder, "get_params") and _is_fitted(encoder)


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
