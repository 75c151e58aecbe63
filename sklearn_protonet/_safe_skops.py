"""A skops file checked before and after ``skops.io`` loads it.

``skops.io.load`` runs no code from the file, but it trusts the archive's
sizes: it reads each member whole, ``numpy.load`` allocates whatever an
``.npy`` header declares, ``json.loads`` and the node tree recurse as deep as
the schema nests, and the loaded estimator's parameters and fitted
attributes are whatever the schema says. This module makes a skops load the
same promise as the package's safetensors load (:mod:`._safe_load`):

- before skops reads anything, :func:`check_archive` bounds the archive held
  in memory: the members' sizes from the central directory (before anything
  is inflated; read back through a reader that counts the inflated bytes, so
  a member whose declared size lies is stopped), compression methods, every
  ``.npy`` header against the bytes that follow it (also inside ``.npz``
  members), and the schema's nesting depth and number of JSON values (counted
  on the text, before it is parsed), including the tree skops would expand
  from repeated references;
- after skops has built the object, :func:`check_loaded` checks every
  estimator's parameters against its own ``_parameter_constraints`` as
  ``fit`` does, and the package's fitted classifiers for consistency.

Every problem is a ``ValueError`` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import zipfile
from numbers import Integral

import numpy as np

from ._safe_load import check_params, label_problem

__all__ = ["check_archive", "check_loaded", "limits"]

# The inflated members may hold at most this many bytes per byte of the file
# (plus _SLACK): the memory a load takes is in proportion to the file's size.
# dump writes members uncompressed (ratio 1).
_MAX_INFLATION = 10
_SLACK = 1 << 20
_MAX_MEMBERS = 10_000
# JSON nesting: a pipeline of estimators nests about 20 levels; skops and
# json recurse once or more per level.
_MAX_DEPTH = 64
# JSON values (scalars and containers), a base plus one per 16 bytes of file.
_MAX_VALUES = 100_000
_VALUES_PER_BYTE = 1 / 16
_READ_CHUNK = 1 << 20
_NPY_HEAD = 1 << 16  # bytes read to parse an .npy header (numpy's limit: 10k)
_ZIP_MAGIC = b"PK"
_NPY_MAGIC = b"\x93NUMPY"
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# '[' and '{' to +1, ']' and '}' to -1 (as int8), every other byte to 0.
_BRACKETS = bytes(1 if b in b"[{" else 255 if b in b"]}" else 0 for b in range(256))


def limits(n_bytes: int) -> dict:
    """The bounds a file of ``n_bytes`` bytes is held to."""
    return {
        "inflated_bytes": _MAX_INFLATION * n_bytes + _SLACK,
        "members": _MAX_MEMBERS,
        "json_depth": _MAX_DEPTH,
        "json_values": _MAX_VALUES + int(n_bytes * _VALUES_PER_BYTE),
    }


class _Fail:
    def __init__(self, path):
        self.path = path

    def __call__(self, field: str, problem: str) -> ValueError:
        return ValueError(
            f"{self.path} is a damaged skops file: field {field!r}: {problem}"
        )


# -- the archive, before skops reads it ----------------------------------------


def check_archive(path, data: bytes) -> None:
    """Check the skops archive ``data`` (the bytes of the file at ``path``).

    Raises
    ------
    ValueError
        If ``data`` is not a zip archive, or exceeds :func:`limits`, naming
        the file and the member or field at fault.
    """
    fail = _Fail(path)
    bounds = limits(len(data))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a skops file ({error}); write it with "
            "sklearn_protonet.persistence.dump."
        ) from None
    with archive:
        budget = _Budget(fail, bounds["inflated_bytes"], len(data))
        infos = _check_members(fail, archive, "", budget)
        if "schema.json" not in infos:
            raise fail("schema.json", "missing: not a skops file")
        for name, info in infos.items():
            content = _read_member(fail, archive, info, "", keep=False)
            if name == "schema.json":
                continue
            if content.startswith(_NPY_MAGIC):
                _check_npy(fail, name, content, info.file_size)
            elif content.startswith(_ZIP_MAGIC):
                # .npz of a sparse matrix: a zip inside the zip, checked alike.
                whole = _read_member(fail, archive, info, "", keep=True)
                _check_npz(fail, name, whole, budget)
        schema = _read_member(fail, archive, infos["schema.json"], "", keep=True)
    _check_schema(fail, schema, infos, bounds)


class _Budget:
    """Inflated bytes counted against the file's allowance."""

    def __init__(self, fail, allowed: int, n_bytes: int):
        self.fail, self.allowed, self.n_bytes, self.used = fail, allowed, n_bytes, 0

    def spend(self, field: str, n: int) -> None:
        self.used += n
        if self.used > self.allowed:
            raise self.fail(
                field,
                f"the archive's members inflate to {self.used} bytes or more, over "
                f"the {self.allowed} bytes allowed for a file of {self.n_bytes} "
                f"bytes ({_MAX_INFLATION} per byte, plus {_SLACK}); save it again "
                "with sklearn_protonet.persistence.dump (uncompressed)",
            )


def _check_members(fail, archive, prefix: str, budget: _Budget) -> dict:
    """The members by name, from the central directory: count, names,
    compression and declared sizes, before anything is inflated."""
    infos = archive.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise fail(
            f"{prefix}archive", f"{len(infos)} members, more than {_MAX_MEMBERS}"
        )
    by_name = {}
    for info in infos:
        name = prefix + info.filename
        if info.filename in by_name:
            raise fail(name, "member appears twice in the archive")
        if info.flag_bits & 0x1:
            raise fail(name, "member is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2 and lzma inflate a block at once, whatever the reader asks.
            raise fail(
                name,
                f"compression method {info.compress_type} (only stored or deflated)",
            )
        budget.spend(name, info.file_size)
        by_name[info.filename] = info
    return by_name


def _read_member(fail, archive, info, prefix: str, keep: bool) -> bytes:
    """A member's bytes (``keep``) or its first bytes, read through a
    reader that counts what it inflates: never more than the declared size."""
    name = prefix + info.filename
    if info.compress_type == zipfile.ZIP_STORED:
        # Stored bytes inflate to themselves: only the head is needed (the
        # rest is read, and its CRC-32 checked, when skops reads it).
        if info.compress_size != info.file_size:
            raise fail(
                name,
                f"a stored member of {info.compress_size} bytes declares "
                f"{info.file_size}",
            )
        if not keep:
            try:
                with archive.open(info) as handle:
                    return handle.read(_NPY_HEAD)
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                ValueError,
                RuntimeError,
            ) as error:
                raise fail(name, f"unreadable member ({error})") from None
    chunks, total, kept = [], 0, 0
    try:
        with archive.open(info) as handle:
            while chunk := handle.read(_READ_CHUNK):
                total += len(chunk)
                if total > info.file_size:
                    break
                if keep or kept < _NPY_HEAD:
                    chunks.append(chunk)
                    kept += len(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as error:
        # zipfile checks each member's CRC-32 and stops at its declared size.
        raise fail(name, f"unreadable member ({error})") from None
    if total > info.file_size:
        raise fail(name, f"inflates to more than its declared {info.file_size} bytes")
    if total != info.file_size:
        raise fail(name, f"holds {total} bytes, not its declared {info.file_size}")
    return b"".join(chunks)


def _check_npy(fail, name: str, head: bytes, size: int) -> None:
    """An ``.npy`` header: the bytes it declares are the bytes that follow."""
    handle = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"format version {version} is not read")
    except (ValueError, EOFError, SyntaxError, TypeError) as error:
        raise fail(name, f"not a readable .npy array ({error})") from None
    if dtype.hasobject:
        raise fail(name, f"an array of dtype {dtype} holds Python objects")
    count = math.prod(shape)
    declared, present = count * dtype.itemsize, size - handle.tell()
    if declared != present or (count and not dtype.itemsize):
        raise fail(
            name,
            f"the header declares shape {shape} of {dtype} ({declared} bytes), "
            f"but {present} bytes follow it",
        )


def _check_npz(fail, name: str, data: bytes, budget: _Budget) -> None:
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise fail(name, f"not a readable .npz archive ({error})") from None
    with inner:
        for inner_name, info in _check_members(fail, inner, f"{name}/", budget).items():
            head = _read_member(fail, inner, info, f"{name}/", keep=False)
            if head.startswith(_NPY_MAGIC):
                _check_npy(fail, f"{name}/{inner_name}", head, info.file_size)


def _check_schema(fail, text: bytes, infos: dict, bounds: dict) -> None:
    """Depth and number of values counted on the text, before it is parsed;
    then the JSON that nodes hold as text (skops parses it too), the tree
    skops would walk (repeated references expanded) and the members its nodes
    read."""
    values = _check_json_text(fail, "schema.json", text, bounds["json_values"])
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise fail("schema.json", f"not JSON ({error})") from None
    read = 0
    for state in _states(schema):
        content = state.get("content")
        if state.get("__loader__") == "JsonNode" and isinstance(content, str):
            values += _check_json_text(
                fail, "schema.json", content.encode(), bounds["json_values"] - values
            )
        file = state.get("file")
        if isinstance(file, str):
            if file not in infos:
                raise fail(
                    "schema.json", f"names member {file!r}, which the archive lacks"
                )
            read += infos[file].file_size
            if read > bounds["inflated_bytes"]:
                raise fail(
                    "schema.json",
                    f"its nodes read {read} bytes of members or more, over the "
                    f"{bounds['inflated_bytes']} allowed",
                )
    size = _tree_size(schema, {}, bounds["json_values"])
    if size > bounds["json_values"]:
        raise fail(
            "schema.json",
            f"its references expand to {size} nodes or more, over the "
            f"{bounds['json_values']} allowed",
        )


def _check_json_text(fail, field: str, text: bytes, allowed: int) -> int:
    """The number of values in JSON ``text`` (at most ``allowed``), and its
    depth (at most ``_MAX_DEPTH``), counted without parsing it."""
    stripped = _STRING.sub(b'""', text)
    opened = stripped.count(b"[") + stripped.count(b"{")
    closed = stripped.count(b"]") + stripped.count(b"}")
    values = opened + stripped.count(b",") + 1
    if values > allowed:
        raise fail(
            field,
            f"{values} JSON values or more, over the number allowed for a file "
            "of this size",
        )
    if opened != closed:
        raise fail(field, "not JSON: brackets do not balance")
    steps = np.frombuffer(stripped.translate(_BRACKETS), dtype=np.int8)
    del stripped
    depth = np.cumsum(steps[steps != 0], dtype=np.int32)
    if len(depth) and (depth.min() < 0 or depth.max() > _MAX_DEPTH):
        raise fail(
            field, f"nested {int(depth.max())} levels deep, more than {_MAX_DEPTH}"
        )
    return values


def _tree_size(value, memo: dict, limit: int) -> int:
    """The number of nodes skops walks: a state whose ``__id__`` was seen
    before stands for the whole earlier subtree (skops shares the node, but
    walks it again for every reference when it audits types)."""
    if isinstance(value, dict):
        saved = value.get("__id__")
        key = saved if isinstance(saved, (int, str)) else None
        if key is not None and key in memo:
            return memo[key]
        size = 1
        for child in value.values():
            size += _tree_size(child, memo, limit)
            if size > limit:
                return size
        if key is not None:
            memo[key] = size
        return size
    if isinstance(value, list):
        size = 1
        for child in value:
            size += _tree_size(child, memo, limit)
            if size > limit:
                return size
        return size
    return 1


def _states(schema):
    """Every JSON object in the schema (the nodes' states)."""
    stack = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


# -- the loaded object ---------------------------------------------------------


def check_loaded(path, estimator, classifiers: tuple[type, ...]) -> None:
    """Check the object skops built from the file at ``path``: every
    estimator's parameters as ``fit`` checks them, and each fitted instance
    of ``classifiers`` for consistency.

    Raises
    ------
    ValueError
        Naming the file and the attribute at fault (``estimator.steps[1][1]
        .temperature``).
    """
    fail = _Fail(path)
    for field, value in _estimators(estimator):
        check_params(fail, field, value)
        if isinstance(value, classifiers):
            _check_fitted_classifier(fail, field, value)


def _estimators(root):
    """``(attribute path, estimator)`` for every object with ``get_params``
    reachable from ``root`` through attributes, lists, tuples and dicts."""
    seen, stack = set(), [("estimator", root)]
    while stack:
        field, value = stack.pop()
        if id(value) in seen or isinstance(value, (str, bytes, np.ndarray)):
            continue
        seen.add(id(value))
        if hasattr(value, "get_params") and not isinstance(value, type):
            yield field, value
            children = getattr(value, "__dict__", {}).items()
            stack.extend((f"{field}.{k}", v) for k, v in children)
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{field}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, dict):
            stack.extend((f"{field}[{k!r}]", v) for k, v in value.items())


def _fitted(estimator, name: str):
    """A fitted attribute, or None where it is absent (a property of an
    unfitted estimator may raise)."""
    try:
        return getattr(estimator, name, None)
    except Exception:
        return None


def _mirrored_parameter_problem(clf) -> tuple[str, str] | None:
    """A constructor parameter that the fitted snapshot mirrors (one of its
    fields has the parameter's name: the unknown label) and that disagrees
    with it, as (parameter, why), or None."""
    snapshot = vars(clf).get("_fitted")
    if not dataclasses.is_dataclass(snapshot) or isinstance(snapshot, type):
        return None
    params = clf.get_params(deep=False)
    for name in (f.name for f in dataclasses.fields(snapshot) if f.name in params):
        fitted, given = getattr(snapshot, name), params[name]
        if type(fitted) is not type(given) or fitted != given:
            return name, (
                f"the parameter {_describe(given)} disagrees with the fitted "
                f"state's {_describe(fitted)}"
            )
    return None


def _check_fitted_classifier(fail, field: str, clf) -> None:
    """The public fitted attributes agree with one another as ``fit`` leaves
    them: labels by fit's rules, one finite float64 prototype per class, an
    encoder of a kind the classifier takes, input shape and feature names."""
    classes, prototypes = _fitted(clf, "classes_"), _fitted(clf, "prototypes_")
    if classes is None and prototypes is None:
        return  # not fitted: nothing to agree
    if (
        not isinstance(prototypes, np.ndarray)
        or prototypes.dtype != np.float64
        or prototypes.ndim != 2
    ):
        raise fail(
            f"{field}.prototypes_",
            f"must be a 2-D float64 array, got {_describe(prototypes)}",
        )
    n_classes, dim = prototypes.shape
    # With open-set rejection, classes_ ends with unknown_label, the label of
    # a virtual prototype at the threshold's distance (no row of its own).
    threshold = _fitted(clf, "threshold_")
    rejecting = threshold is not None
    known = classes
    if rejecting and isinstance(classes, np.ndarray) and len(classes) == n_classes + 1:
        known = classes[:-1]
        unknown = classes[-1:].tolist()[0]
        if unknown in known.tolist():
            raise fail(
                f"{field}.classes_", f"ends with {unknown!r}, which is also a class"
            )
    problem = label_problem(known)
    if problem is not None:
        raise fail(f"{field}.classes_", problem)
    if n_classes != len(known) or dim < 1:
        raise fail(
            f"{field}.prototypes_",
            f"shape {prototypes.shape} for {len(known)} classes (classes_"
            f"{', less unknown_label' if known is not classes else ''})",
        )
    if not np.isfinite(prototypes).all():
        raise fail(f"{field}.prototypes_", "holds NaN or infinite values")

    encoder = _fitted(clf, "encoder_")
    if encoder is not None and (
        isinstance(encoder, type) or not callable(getattr(encoder, "transform", None))
    ):
        raise fail(
            f"{field}.encoder_",
            f"must be None or a fitted scikit-learn transformer, got "
            f"{_describe(encoder)}",
        )
    problem = _mirrored_parameter_problem(clf)
    if problem is not None:
        raise fail(f"{field}.{problem[0]}", problem[1])

    n_features, shape = _fitted(clf, "n_features_in_"), _fitted(clf, "input_shape_")
    if (
        isinstance(n_features, bool)
        or not isinstance(n_features, Integral)
        or n_features < 1
    ):
        raise fail(
            f"{field}.n_features_in_", f"must be a positive int, got {n_features!r}"
        )
    if (
        not isinstance(shape, tuple)
        or not shape
        or not all(
            isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in shape
        )
        or shape[0] != n_features
    ):
        raise fail(
            f"{field}.input_shape_",
            f"must be a tuple of sizes starting with n_features_in_={n_features}, "
            f"got {shape!r}",
        )
    if encoder is None and math.prod(shape) != dim:
        raise fail(
            f"{field}.prototypes_",
            f"{dim} features, but the identity encoder gives {math.prod(shape)} "
            f"(input_shape_ {shape})",
        )
    names = _fitted(clf, "feature_names_in_")
    if names is not None and (
        not isinstance(names, np.ndarray)
        or names.shape != (n_features,)
        or not all(isinstance(n, str) for n in names.tolist())
    ):
        raise fail(f"{field}.feature_names_in_", f"must be {n_features} strings")

    for name, want in (
        ("embedding_mean_", (dim,)),
        ("prototype_sums_", (n_classes, dim)),
        ("prototype_totals_", None),
        ("precisions_", None),
    ):
        value = _fitted(clf, name)
        if value is None:
            continue
        if (
            not isinstance(value, np.ndarray)
            or value.dtype != np.float64
            or (want is not None and value.shape != want)
            or (want is None and value.shape[:1] != (n_classes,))
        ):
            raise fail(
                f"{field}.{name}", f"does not fit the prototypes: {_describe(value)}"
            )
        if not np.isfinite(value).all():
            raise fail(f"{field}.{name}", "holds NaN or infinite values")
    totals = _fitted(clf, "prototype_totals_")
    if totals is not None and (totals <= 0).any():
        raise fail(f"{field}.prototype_totals_", "must be positive")
    threshold = _fitted(clf, "threshold_")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (float, int, np.floating))
        or not math.isfinite(threshold)
        or threshold < 0
    ):
        raise fail(
            f"{field}.threshold_", f"must be a finite distance, got {threshold!r}"
        )


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-D {value.dtype} array of shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:80]
