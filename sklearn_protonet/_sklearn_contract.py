"""The scikit-learn contract where skorch or wrapped encoders bend it: reprs,
parameter names, frozen fitted encoders, input widths and feature names.

The estimators call these helpers in a line or two each, so the rules live in
one place (issue 11 of the project's tracker lists the cases they fix).
"""

from __future__ import annotations

import inspect

__all__ = ["sklearn_signature"]

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
