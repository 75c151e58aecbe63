"""An estimator's parameters as JSON and back, driven by the estimator itself.

What a file holds is what ``get_params(deep=False)`` returns, less the
parameters the estimator class lists in ``_unsaved_params`` (its encoder,
saved as weights; its device, chosen at load). Reading a file checks the
names against the estimator's own parameters and rebuilds nested estimators
only of the classes its ``_parameter_constraints`` allow; the values are then
validated by the estimator's ``_validate_params``, as ``fit`` validates them.
A new parameter therefore touches the estimator only.
"""

from __future__ import annotations

import json
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator

__all__ = ["params_from_json", "params_to_json"]

_MAX_DEPTH = 4  # nested estimators: a parameter holder inside a classifier


def params_to_json(estimator: BaseEstimator) -> dict:
    """``estimator``'s saved parameters as JSON values.

    A value JSON cannot hold and that is no estimator (a ``RandomState``
    instance) is written as None.
    """
    unsaved = getattr(type(estimator), "_unsaved_params", frozenset())
    return {
        name: _to_json(value)
        for name, value in estimator.get_params(deep=False).items()
        if name not in unsaved
    }


def _to_json(value):
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, bool, Integral, Real)):
        return value
    if isinstance(value, BaseEstimator):
        return {"estimator": type(value).__name__, "params": params_to_json(value)}
    return None


def params_from_json(cls: type, text, _depth: int = 0) -> dict:
    """Constructor arguments of ``cls`` from :func:`params_to_json`'s output
    (a JSON string or its parsed object), names and kinds checked.

    Raises
    ------
    ValueError
        Naming the parameter at fault.
    """
    params = json.loads(text) if isinstance(text, str) else text
    if not isinstance(params, dict):
        raise ValueError(f"params must be an object, got {type(params).__name__}")
    unsaved = getattr(cls, "_unsaved_params", frozenset())
    known = set(cls().get_params(deep=False)) - set(unsaved)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"params: unknown parameters {unknown} of {cls.__name__}")
    kwargs = {}
    for name, value in params.items():
        if isinstance(value, dict):
            value = _estimator_from_json(cls, name, value, _depth)
        elif isinstance(value, list):
            raise ValueError(f"params.{name}: a list is no parameter value")
        kwargs[name] = value
    return kwargs


def _estimator_from_json(cls: type, name: str, spec: dict, depth: int):
    """A nested estimator of a class that ``cls``'s constraints allow."""
    if depth >= _MAX_DEPTH:
        raise ValueError(f"params.{name}: estimators nested too deep")
    allowed = {
        option.__name__: option
        for option in getattr(cls, "_parameter_constraints", {}).get(name, [])
        if isinstance(option, type) and issubclass(option, BaseEstimator)
    }
    kind = spec.get("estimator")
    if set(spec) != {"estimator", "params"} or kind not in allowed:
        raise ValueError(
            f"params.{name}: must be one of the estimators {sorted(allowed)}, got "
            f"{spec!r}"
        )
    nested = allowed[kind](**params_from_json(allowed[kind], spec["params"], depth + 1))
    nested._validate_params()
    return nested
