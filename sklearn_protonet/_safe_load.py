"""Checks of a saved file's metadata against its tensors, before anything is built.

:mod:`~sklearn_protonet.persistence` reads files that may come from anyone.
safetensors guarantees that reading runs no code; this module guarantees the
rest: every metadata field is parsed and checked (type, range, and agreement
with the tensors actually in the file: shapes, counts, dtypes, sizes) before
a module, an array or a NumPy dtype is built from it. Whatever the metadata
says, the memory a load takes is then bounded by the file's own size, and a
tampered file is refused with a ``ValueError`` naming the file and the field.
"""

from __future__ import annotations

import json
import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import (
    InvalidParameterError,
    validate_parameter_constraints,
)

__all__ = ["check_file", "check_params", "damaged", "label_problem"]

_PREFIX = "module."
# Label dtypes a classifier file can name; their item size is bounded below.
_CLASS_DTYPE_KINDS = "biufUO"
_MAX_INPUT_DIMS = 8
_MIN_ITEMSIZE_BOUND = 1024  # bytes: '<U256'
# Floating-point tensors a file may hold (no float8, no complex).
_FLOAT_DTYPES = {torch.float16, torch.bfloat16, torch.float32, torch.float64}
_CONFIG_KEYS = {
    "MLP": {"in_features", "hidden_sizes", "out_features", "dropout"},
    "Conv4": {"input_shape", "hidden_channels", "n_blocks", "channels_last"},
}
# Arguments a file may leave out (their defaults): older files lack them.
_OPTIONAL_KEYS = {"MLP": set(), "Conv4": {"groups"}}


def damaged(path, content: str, field: str, problem: str) -> ValueError:
    """The one message for a file that fails a check."""
    return ValueError(f"{path} is a damaged {content} file: field {field!r}: {problem}")


class _Checker:
    def __init__(self, path, content: str, metadata: dict, tensors: dict):
        self.path, self.content = path, content
        self.metadata, self.tensors = metadata, tensors

    def fail(self, field: str, problem: str) -> ValueError:
        return damaged(self.path, self.content, field, problem)

    def json(self, field: str, default=None, required: bool = True):
        if field not in self.metadata:
            if required:
                raise self.fail(field, "missing")
            return default
        try:
            return json.loads(self.metadata[field])
        except (TypeError, ValueError, RecursionError) as error:
            # JSONDecodeError is a ValueError; nesting bombs recurse too deep.
            raise self.fail(field, f"not JSON ({type(error).__name__})") from None

    def integer(self, field: str, value, low: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
            raise self.fail(field, f"must be an integer >= {low}, got {value!r}")
        return int(value)

    def tensor(self, name: str) -> torch.Tensor:
        if name not in self.tensors:
            raise self.fail(name, "tensor missing")
        return self.tensors[name]


def _finite(check: _Checker) -> None:
    for name, tensor in check.tensors.items():
        if tensor.is_complex() or (
            tensor.is_floating_point() and tensor.dtype not in _FLOAT_DTYPES
        ):
            raise check.fail(name, f"unsupported dtype {tensor.dtype}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise check.fail(name, "holds NaN or infinite values")


def _check_config(check: _Checker, spec: dict) -> None:
    """Types and ranges of a known builder's arguments, and the count of
    tensors they imply, before any module (even on the meta device) is built."""
    builder, config = spec["builder"], spec["config"]
    field = "module.config"
    keys, optional = _CONFIG_KEYS[builder], _OPTIONAL_KEYS[builder]
    if not isinstance(config, dict) or not keys <= set(config) <= keys | optional:
        raise check.fail(
            field,
            f"{builder} takes {sorted(keys)} (and optionally {sorted(optional)}), got "
            f"{sorted(config) if isinstance(config, dict) else config!r}",
        )
    n_weights = sum(k.startswith(_PREFIX) for k in check.tensors)
    if builder == "MLP":
        sizes = config["hidden_sizes"]
        if not isinstance(sizes, list) or 2 * (len(sizes) + 1) != n_weights:
            raise check.fail(
                f"{field}.hidden_sizes",
                f"{sizes!r} does not match the {n_weights} weight tensors in the file",
            )
        for i, size in enumerate(sizes):
            check.integer(f"{field}.hidden_sizes[{i}]", size)
        check.integer(f"{field}.in_features", config["in_features"])
        check.integer(f"{field}.out_features", config["out_features"])
        dropout = config["dropout"]
        if not isinstance(dropout, Real) or not 0 <= dropout < 1:
            raise check.fail(f"{field}.dropout", f"must be in [0, 1), got {dropout!r}")
    else:
        n_blocks = check.integer(f"{field}.n_blocks", config["n_blocks"])
        if 7 * n_blocks != n_weights:  # conv weight, bias; 5 BatchNorm tensors
            raise check.fail(
                f"{field}.n_blocks",
                f"{n_blocks} does not match the {n_weights} weight tensors in the file",
            )
        channels = check.integer(f"{field}.hidden_channels", config["hidden_channels"])
        groups = check.integer(f"{field}.groups", config.get("groups", 1))
        if channels % groups:
            raise check.fail(
                f"{field}.groups",
                f"{groups} does not divide hidden_channels {channels}",
            )
        shape = config["input_shape"]
        if not isinstance(shape, list) or len(shape) != 3:
            raise check.fail(
                f"{field}.input_shape", f"must be [C, H, W], got {shape!r}"
            )
        for i, size in enumerate(shape):
            check.integer(f"{field}.input_shape[{i}]", size)
        if min(shape[1:]) < 2**n_blocks:
            raise check.fail(
                f"{field}.input_shape",
                f"{shape} is smaller than {n_blocks} blocks of pooling allow",
            )
        if not isinstance(config["channels_last"], bool):
            raise check.fail(f"{field}.channels_last", "must be true or false")


def _check_weights(check: _Checker, spec: dict, builders: dict) -> torch.nn.Module:
    """The module the description builds, on the meta device (no memory),
    compared tensor by tensor (names, shapes, dtypes) with the file."""
    with torch.device("meta"):
        try:
            skeleton = builders[spec["builder"]](**spec["config"])
        except (TypeError, ValueError) as error:
            raise check.fail("module.config", str(error)) from None
    expected = {_PREFIX + k: v for k, v in skeleton.state_dict().items()}
    found = {k: v for k, v in check.tensors.items() if k.startswith(_PREFIX)}
    if set(expected) != set(found):
        missing = sorted(set(expected) - set(found))[:5]
        extra = sorted(set(found) - set(expected))[:5]
        raise check.fail(
            "module", f"tensors do not match: missing {missing}, unexpected {extra}"
        )
    for name, want in expected.items():
        got = found[name]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise check.fail(
                name,
                f"{tuple(got.shape)} {got.dtype} where the description "
                f"(module.config) gives {tuple(want.shape)} {want.dtype}",
            )
    return skeleton


def _check_spec(check: _Checker, builders: dict) -> dict | None:
    spec = check.json("module")
    if spec is None:
        return None
    if not isinstance(spec, dict) or not {"class", "builder", "config"} <= set(spec):
        raise check.fail("module", f"must describe class, builder, config: {spec!r}")
    if not isinstance(spec["class"], str):
        raise check.fail("module.class", f"must be a string, got {spec['class']!r}")
    builder = spec["builder"]
    if builder is not None and (
        not isinstance(builder, str) or builder not in builders
    ):
        raise check.fail(
            "module.builder",
            f"unknown encoder builder {builder!r} (known: {sorted(builders)})",
        )
    if builder is not None:
        _check_config(check, spec)
        _check_weights(check, spec, builders)
    return spec


def _check_contract(check: _Checker, spec: dict | None) -> None:
    from .contracts import InputContract

    contract = check.json("input_contract", required=False)
    if contract is None:
        return
    try:
        if not isinstance(contract, dict):
            raise TypeError(f"must be an object, got {contract!r}")
        contract = InputContract.from_dict(contract)
    except (TypeError, ValueError) as error:
        raise check.fail("input_contract", str(error)) from None
    if spec is not None and spec["builder"] == "Conv4" and contract.shape is not None:
        shape = tuple(spec["config"]["input_shape"])
        if contract.shape != shape:
            raise check.fail(
                "input_contract.shape",
                f"{contract.shape} disagrees with the Conv4's input_shape {shape}",
            )


def _embedding_dim(spec: dict) -> int | None:
    """What a known builder's module outputs per sample."""
    config = spec["config"]
    if spec["builder"] == "MLP":
        return config["out_features"]
    if spec["builder"] == "Conv4":
        _, height, width = config["input_shape"]
        scale = 2 ** config["n_blocks"]
        return config["hidden_channels"] * (height // scale) * (width // scale)
    return None


def _input_size(spec: dict) -> int | None:
    config = spec["config"]
    if spec["builder"] == "MLP":
        return config["in_features"]
    if spec["builder"] == "Conv4":
        return math.prod(config["input_shape"])
    return None


def _check_classes(check: _Checker, n_classes: int) -> None:
    spec = check.json("classes")
    if not isinstance(spec, dict) or set(spec) != {"dtype", "values"}:
        raise check.fail("classes", "must hold exactly 'dtype' and 'values'")
    values = spec["values"]
    if not isinstance(values, list) or len(values) != n_classes:
        raise check.fail(
            "classes.values",
            f"must list one label per prototype ({n_classes}), got "
            f"{len(values) if isinstance(values, list) else type(values).__name__}",
        )
    for value in values:
        if isinstance(value, (list, dict)) or value is None:
            raise check.fail("classes.values", f"labels must be scalars, got {value!r}")
    dtype = spec["dtype"]
    # A dtype's item size is bounded by the labels it holds (with slack for
    # a dtype wider than its labels, as np.unique keeps it), so '<U500000000'
    # (2 GB per label) is refused before NumPy allocates anything.
    bound = max(_MIN_ITEMSIZE_BOUND, 4 * max(len(str(v)) for v in values))
    try:
        if not isinstance(dtype, str) or len(dtype) > 16:
            raise TypeError
        parsed = np.dtype(dtype)
    except (TypeError, ValueError):
        raise check.fail("classes.dtype", f"not a NumPy dtype: {dtype!r}") from None
    if parsed.kind not in _CLASS_DTYPE_KINDS or parsed.itemsize > bound:
        raise check.fail(
            "classes.dtype",
            f"{dtype!r} does not fit labels {values[:3]!r}... (kinds "
            f"{_CLASS_DTYPE_KINDS!r}, item size at most {bound} bytes)",
        )
    if not all(_LABEL_KINDS[parsed.kind](v) for v in values):
        raise check.fail("classes.values", f"labels do not match dtype {dtype!r}")
    # Labels are judged as the classifier will hold them: after the cast,
    # which could otherwise truncate ('<U1'), round (1.5 as an int) or merge
    # them (1 and 1.0) behind a check of the JSON values.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            classes = _cast_labels(values, parsed)
    except (OverflowError, ValueError, TypeError, RuntimeWarning) as error:
        raise check.fail(
            "classes.values", f"labels do not fit dtype {dtype!r} ({error})"
        ) from None
    if not _same_labels(classes, values):
        raise check.fail(
            "classes.values",
            f"labels change when cast to dtype {dtype!r}: {values[:5]!r}... "
            f"become {classes[:5].tolist()!r}...",
        )
    problem = label_problem(classes)
    if problem is not None:
        raise check.fail("classes.values", problem)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


# The JSON values each label dtype kind takes.
_LABEL_KINDS = {
    "b": lambda v: isinstance(v, bool),
    "i": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "u": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "f": _is_number,
    "U": lambda v: isinstance(v, str),
    "O": lambda v: isinstance(v, str) or _is_number(v),
}


def _cast_labels(values: list, dtype: np.dtype) -> np.ndarray:
    """The labels as an array of ``dtype``, as the loader builds them."""
    if dtype.kind == "O":
        classes = np.empty(len(values), dtype=object)
        classes[:] = values
        return classes
    return np.asarray(values, dtype=dtype)


def _same_labels(classes: np.ndarray, values: list) -> bool:
    """Whether the cast kept every label's value (and type, for objects)."""
    cast = classes.tolist()
    return all(
        a == b or (a != a and b != b)  # NaN is refused later, by its own rule
        for a, b in zip(cast, values, strict=True)
    )


def label_problem(classes) -> str | None:
    """What makes ``classes`` unlike the ``classes_`` that ``fit`` makes, or
    None: ``fit`` refuses missing labels (NaN), labels mixing strings and
    numbers and continuous (non-integral float) labels, and stores the
    distinct labels sorted, at least two."""
    from sklearn.utils.multiclass import type_of_target

    if not isinstance(classes, np.ndarray) or classes.ndim != 1:
        return f"must be a 1-D array of labels, got {type(classes).__name__}"
    if classes.dtype.kind not in _CLASS_DTYPE_KINDS:
        return f"labels of dtype {classes.dtype} (kinds {_CLASS_DTYPE_KINDS!r})"
    if len(classes) < 2:
        return f"{len(classes)} label(s): a classifier needs at least 2 classes"
    items = classes.tolist()
    if any(v is None or (isinstance(v, float) and v != v) for v in items):
        return "holds a missing label (None or NaN), which fit refuses"
    if classes.dtype.kind == "O":
        if not all(isinstance(v, str) or _is_number(v) for v in items):
            return "labels must be strings or numbers"
        if any(isinstance(v, str) for v in items) and not all(
            isinstance(v, str) for v in items
        ):
            return "labels mix strings and numbers, which fit refuses"
    try:
        kind = type_of_target(classes)
    except (TypeError, ValueError) as error:
        return f"labels fit would refuse ({error})"
    if kind not in ("binary", "multiclass"):
        return f"labels of type {kind!r}, which fit refuses (classes, not values)"
    try:
        unique = np.unique(classes)
    except TypeError as error:
        return f"labels cannot be sorted ({error})"
    if len(unique) != len(classes):
        return f"labels repeat: {len(classes)} labels, {len(unique)} distinct"
    if not all(a == b for a, b in zip(unique.tolist(), items, strict=True)):
        return "labels are not sorted as fit stores them (np.unique)"
    return None


def check_params(fail, field: str, estimator) -> None:
    """Each of ``estimator``'s parameters checked against its class's
    ``_parameter_constraints``, as ``fit`` checks them, and so for nested
    estimators (``covariance=``); ``fail(field, problem)`` makes the error,
    naming ``<field>.<parameter>``."""
    constraints = getattr(type(estimator), "_parameter_constraints", None)
    if not isinstance(constraints, dict):
        return
    try:
        params = estimator.get_params(deep=False)
    except Exception as error:  # a loaded object may lack any attribute
        raise fail(field, f"parameters unreadable ({error!r})") from None
    for name, value in params.items():
        if name not in constraints or constraints[name] == "no_validation":
            continue
        try:
            validate_parameter_constraints(
                {name: constraints[name]},
                {name: value},
                caller_name=type(estimator).__name__,
            )
        except InvalidParameterError as error:
            raise fail(f"{field}.{name}", str(error)) from None
        if hasattr(value, "get_params") and not isinstance(value, type):
            check_params(fail, f"{field}.{name}", value)


def check_file(path, content: str, metadata: dict, tensors: dict, builders: dict):
    """Check a ``content`` file ("encoder" or "classifier") in full.

    Raises ``ValueError`` naming the file and the field at fault; returns
    the checked module description (None for the identity).
    """
    check = _Checker(path, content, metadata, tensors)
    _finite(check)
    spec = _check_spec(check, builders)
    _check_contract(check, spec)
    if content == "encoder":
        info = check.json("info", default={}, required=False)
        if not isinstance(info, dict):
            raise check.fail("info", f"must be an object, got {type(info).__name__}")
        if not isinstance(metadata.get("metric"), str):
            raise check.fail("metric", "missing")
        return spec
    _check_classifier(check, spec)
    return spec


def _check_saved_params(check: _Checker, params) -> None:
    """The saved parameters: names the classifier has, and values checked
    against its own ``_parameter_constraints`` as ``fit`` checks them. A
    nested estimator (saved as an object) is checked when it is built."""
    from .classifier import PrototypicalClassifier as cls

    if not isinstance(params, dict):
        raise check.fail("params", f"must be an object, got {type(params).__name__}")
    unsaved = set(getattr(cls, "_unsaved_params", ()))
    unknown = sorted(set(params) - (set(cls().get_params(deep=False)) - unsaved))
    if unknown:
        raise check.fail("params", f"unknown parameters {unknown!r}")
    constraints = cls._parameter_constraints
    for name, value in params.items():
        options = constraints.get(name, "no_validation")
        nested = isinstance(value, dict) and any(
            isinstance(option, type) for option in options
        )
        if options == "no_validation" or nested:
            continue
        try:
            validate_parameter_constraints(
                {name: options}, {name: value}, caller_name=cls.__name__
            )
        except InvalidParameterError as error:
            raise check.fail(f"params.{name}", str(error)) from None


def _check_classifier(check: _Checker, spec: dict | None) -> None:
    params = check.json("params")
    _check_saved_params(check, params)

    prototypes = check.tensor("prototypes")
    if prototypes.dtype != torch.float64 or prototypes.dim() != 2:
        raise check.fail(
            "prototypes",
            f"must be 2-D float64, got {prototypes.dim()}-D {prototypes.dtype}",
        )
    n_classes, dim = prototypes.shape
    if n_classes < 2 or dim < 1:
        raise check.fail("prototypes", f"shape {tuple(prototypes.shape)}")
    _check_classes(check, n_classes)

    n_features = check.json("n_features_in")
    check.integer("n_features_in", n_features)
    shape = check.json("input_shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= _MAX_INPUT_DIMS:
        raise check.fail("input_shape", f"must be a list of sizes, got {shape!r}")
    for i, size in enumerate(shape):
        check.integer(f"input_shape[{i}]", size)
    if shape[0] != n_features:
        raise check.fail("input_shape", f"{shape} for {n_features} features")
    names = check.json("feature_names_in", required=False)
    if names is not None and (
        not isinstance(names, list)
        or len(names) != n_features
        or not all(isinstance(n, str) for n in names)
    ):
        raise check.fail("feature_names_in", f"must be {n_features} strings")

    # The input and the embedding agree with the encoder the file describes.
    if spec is None:
        if math.prod(shape) != dim:
            raise check.fail(
                "input_shape", f"{shape} but identity prototypes of {dim} features"
            )
    elif spec["builder"] is not None:
        size, out = _input_size(spec), _embedding_dim(spec)
        if math.prod(shape) != size:
            raise check.fail(
                "input_shape",
                f"{shape} ({math.prod(shape)} values) but the {spec['builder']} "
                f"takes {size} values per sample (module.config)",
            )
        if out != dim:
            raise check.fail(
                "prototypes",
                f"{dim} features but the {spec['builder']} embeds in {out} "
                "(module.config)",
            )

    mean = check.tensors.get("embedding_mean")
    if mean is not None and (
        mean.dtype != torch.float64 or tuple(mean.shape) != (dim,)
    ):
        raise check.fail("embedding_mean", f"must be float64 of shape ({dim},)")
    precisions = check.tensors.get("precisions")
    if precisions is not None and (
        precisions.dtype != torch.float64
        or tuple(precisions.shape) not in {(n_classes, dim), (n_classes, dim, dim)}
    ):
        raise check.fail("precisions", f"shape {tuple(precisions.shape)}")
    shrinkage = check.tensors.get("shrinkage")
    if shrinkage is not None and tuple(shrinkage.shape) != (n_classes,):
        raise check.fail("shrinkage", f"shape {tuple(shrinkage.shape)}")
    _check_running_sums(check, n_classes, dim)
    _check_rejection(check, params)


def _check_running_sums(check: _Checker, n_classes: int, dim: int) -> None:
    """partial_fit's running sums: both or neither, shaped as the prototypes."""
    sums = check.tensors.get("prototype_sums")
    totals = check.tensors.get("prototype_totals")
    if (sums is None) != (totals is None):
        field = "prototype_totals" if totals is None else "prototype_sums"
        raise check.fail(field, "missing (the running sums come as a pair)")
    if sums is None:
        return
    if sums.dtype != torch.float64 or tuple(sums.shape) != (n_classes, dim):
        raise check.fail(
            "prototype_sums",
            f"must be float64 of shape ({n_classes}, {dim}), got "
            f"{sums.dtype} {tuple(sums.shape)}",
        )
    if totals.dtype != torch.float64 or tuple(totals.shape) not in {
        (n_classes,),
        (n_classes, dim),
    }:
        raise check.fail(
            "prototype_totals",
            f"must be float64 of shape ({n_classes},) or ({n_classes}, {dim}), "
            f"got {totals.dtype} {tuple(totals.shape)}",
        )
    if bool((totals <= 0).any()):
        raise check.fail("prototype_totals", "must be positive")


def _finite_number(value) -> bool:
    """A JSON number that is a finite float64 (huge integers are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_rejection(check: _Checker, params: dict) -> None:
    """Open-set rejection: a finite threshold exactly when the parameter
    that turns it on (unknown_label) is set."""
    from .classifier import PrototypicalClassifier as cls

    label = params.get(cls._rejection_param)
    threshold = check.json("threshold", default=None, required=False)
    if threshold is not None and (not _finite_number(threshold) or threshold < 0):
        raise check.fail("threshold", f"must be a finite distance, got {threshold!r}")
    if (threshold is None) != (label is None):
        raise check.fail(
            "threshold", f"{threshold!r} does not go with unknown_label {label!r}"
        )
