"""ONNX export: a fitted classifier as one graph, served by onnxruntime without torch.

A fitted :class:`~sklearn_protonet.PrototypicalClassifier` is an encoder and
a handful of prototypes. :func:`to_onnx` writes both into one ONNX model of
standard operators: the encoder's graph (exported by torch's own ONNX
exporter, with a dynamic batch axis), the normalisation, the distances to the
prototypes, ``softmax(-distance / temperature)`` and the label of the nearest
prototype (outputs ``label`` and ``probabilities``, as skl2onnx's
classifiers). onnxruntime then serves it in a process that never imports
torch.

Importing this module registers the classifier with skl2onnx (a shape
calculator and a converter), so that ``skl2onnx.to_onnx`` converts a
:class:`~sklearn.pipeline.Pipeline` holding the classifier, scikit-learn
steps before it included, in one call.

The graph computes what ``predict`` and ``predict_proba`` compute, in the
same precisions: a torch encoder in float32 (normalised in float32), the
identity in float64, distances and softmax in float64 (the probabilities
are returned in the input's type). What has no fixed inference graph is
refused by a ``ValueError`` that names the setting (:func:`check_exportable`).
Two numerical safeguards of ``predict`` are not in the graph: rescaling
distances that overflow float64 (inputs beyond about 1e150) and the int8
recheck (int8 is refused).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
import weakref
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

try:
    import onnx
    import skl2onnx
    from onnx import TensorProto, numpy_helper
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )
    from skl2onnx.common.utils import check_input_and_output_numbers
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sklearn_protonet.onnx needs onnx, onnxscript, onnxruntime and skl2onnx: "
        "pip install 'sklearn-protonet[onnx]'."
    ) from error

from ._encoders import encoder_module, eval_mode, module_device
from ._geometry import get_metric
from .classifier import PrototypicalClassifier

__all__ = ["MIN_OPSET", "check_exportable", "to_onnx"]

#: The lowest ONNX opset exported: torch's exporter writes opset 18 or later,
#: where the reductions take their axes as an input.
MIN_OPSET = 18

_ALIAS = "SklearnProtonetPrototypicalClassifier"
_NORMALIZATIONS = (None, "l2", "cl2n")
# F.normalize's floor under a norm: a zero vector stays zero.
_NORM_EPS = 1e-12
# normalization.normalize rescales rows whose largest value is outside these
# bounds before taking their norm (float64 only: float32 never reaches them).
_HUGE, _TINY = 1e150, 1e-150
_ONNX_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
}


def _label_kind(clf) -> str:
    """``"int"`` or ``"str"``: the ONNX type of the labels (classes_)."""
    classes = np.asarray(clf.classes_)
    if classes.dtype.kind in "iu":
        return "int"
    if classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes):
        return "str"
    raise ValueError(
        f"classes_ of dtype {classes.dtype} cannot be ONNX labels: ONNX "
        "classifiers return int64 or string labels. Fit on integer or string "
        "labels (e.g. y.astype(int) or y.astype(str))."
    )


def check_exportable(clf: PrototypicalClassifier) -> None:
    """Raise a ``ValueError`` naming the setting if ``clf`` has no ONNX graph.

    Exported: the identity encoder (``None``), a ``torch.nn.Module``, or a
    fitted skorch net such as :class:`~sklearn_protonet.EpisodicTrainer`
    (also inside :class:`~sklearn.frozen.FrozenEstimator`), whose module
    torch's ONNX exporter handles; every ``metric`` and ``normalization``;
    ``temperature``; open-set rejection (``unknown_label`` of the labels'
    type); integer or string labels. Refused: other encoders (scikit-learn
    transformers: make them a pipeline step before a classifier with
    ``encoder=None``), ``inference_dtype`` other than ``"float32"``.

    Parameters
    ----------
    clf : PrototypicalClassifier
        A fitted classifier.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``clf`` is not fitted.
    ValueError
        Naming the parameter or fitted attribute that cannot be exported.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_protonet import PrototypicalClassifier
    >>> from sklearn_protonet.onnx import check_exportable
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]], dtype=np.float32)
    >>> check_exportable(PrototypicalClassifier().fit(X, [0, 0, 1]))
    """
    if not isinstance(clf, PrototypicalClassifier):
        raise TypeError(f"Expected a PrototypicalClassifier, got {type(clf).__name__}.")
    check_is_fitted(clf, "prototypes_")
    get_metric(clf.metric)  # every registered metric has a fixed graph
    if clf.normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization={clf.normalization!r} has no ONNX graph.")
    if clf.inference_dtype != "float32":
        raise ValueError(
            f"inference_dtype={clf.inference_dtype!r} cannot be exported: the "
            "ONNX graph is the float32 encoder's, whose predictions are not "
            f"those of {clf.inference_dtype} inference. Fit with "
            "inference_dtype='float32' to export."
        )
    if clf.encoder_ is not None and encoder_module(clf.encoder_) is None:
        raise ValueError(
            f"encoder_ of type {type(clf.encoder_).__name__} cannot be exported: "
            "only the identity (encoder=None), torch modules and fitted skorch "
            "nets are. For a scikit-learn transformer, make it a Pipeline step "
            "before PrototypicalClassifier(encoder=None) and convert the "
            "pipeline."
        )
    kind = _label_kind(clf)
    label = clf.unknown_label
    if label is not None:
        fits = (
            isinstance(label, str)
            if kind == "str"
            else isinstance(label, Integral) and not isinstance(label, bool)
        )
        if not fits:
            wanted = "a str" if kind == "str" else "an int"
            raise ValueError(
                f"unknown_label={label!r} cannot be an ONNX label next to "
                f"classes_ of dtype {clf.classes_.dtype}: the labels would mix "
                f"types. Use {wanted} unknown_label, as the classes are."
            )
        if getattr(clf, "threshold_", None) is None:
            raise ValueError(
                f"unknown_label={label!r} was set after fit, so there is no "
                "threshold_ to export. Call fit again."
            )


class _Graph:
    """Adds named nodes and constants to skl2onnx's container."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def name(self, hint: str) -> str:
        return self.scope.get_unique_variable_name(hint)

    def const(self, hint: str, value) -> str:
        array = np.asarray(value)
        name = self.name(hint)
        if array.dtype.kind in "UO":
            self.container.add_initializer(
                name,
                TensorProto.STRING,
                list(array.shape),
                [str(s).encode("utf-8") for s in array.ravel()],
            )
        else:
            tensor = numpy_helper.from_array(
                np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
            )
            self.container.add_initializer(
                name, _ONNX_TYPES[array.dtype], list(array.shape), tensor
            )
        return name

    def op(self, op_type: str, inputs, hint: str | None = None, output=None, **attrs):
        output = output or self.name(hint or op_type.lower())
        self.container.add_node(
            op_type,
            list(inputs),
            [output],
            name=self.scope.get_unique_operator_name(op_type),
            **attrs,
        )
        return output

    def axes(self, *axes: int) -> str:
        return self.const("axes", np.array(axes, dtype=np.int64))


# Exported encoder graphs, by module identity and a fingerprint of its
# weights: converting one encoder with several heads (metrics, temperatures,
# pipelines) runs torch's exporter, seconds per call, once.
_EXPORTED: dict[tuple, tuple] = {}
_EXPORTED_MAX = 8


def _fingerprint(module: torch.nn.Module) -> str:
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _export_module(module: torch.nn.Module, input_shape, opset: int) -> onnx.ModelProto:
    """The module's ONNX graph (torch's exporter), batch axis dynamic."""
    key = (id(module), tuple(input_shape), opset)
    fingerprint = _fingerprint(module)
    cached = _EXPORTED.get(key)
    if cached is not None and cached[0]() is module and cached[1] == fingerprint:
        return cached[2]
    model = _run_exporter(module, input_shape, opset)
    if len(_EXPORTED) >= _EXPORTED_MAX:
        _EXPORTED.pop(next(iter(_EXPORTED)))
    _EXPORTED[key] = (weakref.ref(module), fingerprint, model)
    return model


def _run_exporter(module: torch.nn.Module, input_shape, opset: int) -> onnx.ModelProto:
    if module_device(module).type != "cpu":
        module = copy.deepcopy(module).cpu()  # the classifier's own stays put
    example = torch.zeros((2, *input_shape), dtype=torch.float32)
    batch = torch.export.Dim("batch")
    # The exporter logs a warning per torchvision operator it cannot register.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with eval_mode(module), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=({0: batch},),
                input_names=["X"],
                output_names=["embedding"],
                verbose=False,
            )
    except Exception as error:
        raise ValueError(
            f"encoder_ ({type(module).__name__}) could not be exported by "
            f"torch.onnx.export (opset {opset}): {error}"
        ) from error
    finally:
        registration.setLevel(level)
    model = program.model_proto
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    domains = {node.domain for node in model.graph.node} - {"", "ai.onnx"}
    if domains or model.functions:
        raise ValueError(
            f"encoder_ ({type(module).__name__}) exports to operators outside "
            f"ONNX's standard set (domains {sorted(domains)}): it has no "
            "portable ONNX graph."
        )
    return model


def _add_encoder(graph: _Graph, model: onnx.ModelProto, X: str) -> str:
    """Copy an exported encoder's graph into the container, renamed; returns
    the name of its output."""
    source = model.graph
    renamed = {source.input[0].name: X}
    for tensor in source.initializer:
        name = renamed[tensor.name] = graph.name("encoder_" + tensor.name)
        copied = numpy_helper.from_array(numpy_helper.to_array(tensor))
        graph.container.add_initializer(
            name, tensor.data_type, list(tensor.dims), copied
        )

    def rename(value: str) -> str:
        if value == "":  # an omitted optional input
            return value
        if value not in renamed:
            renamed[value] = graph.name("encoder_" + value)
        return renamed[value]

    for node in source.node:
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        ):
            raise ValueError(
                f"encoder_'s ONNX graph has control flow ({node.op_type}), which "
                "is not copied: export an encoder without data-dependent branches."
            )
        graph.container.add_node(
            node.op_type,
            [rename(v) for v in node.input],
            [rename(v) for v in node.output],
            op_domain=node.domain,
            name=graph.scope.get_unique_operator_name("encoder_" + node.op_type),
        )
        graph.container.nodes[-1].attribute.extend(node.attribute)
    return renamed[source.output[0].name]


def _rows_normalized(graph: _Graph, e: str, dtype, eps_hint="eps") -> str:
    """``F.normalize(e, dim=1)``: rows over ``max(norm, 1e-12)``."""
    norm = graph.op("ReduceL2", [e, graph.axes(1)], "norm", keepdims=1)
    floor = graph.const(eps_hint, np.array(_NORM_EPS, dtype=dtype))
    return graph.op("Div", [e, graph.op("Max", [norm, floor])], "normalized")


def _unit_max(graph: _Graph, e: str, dtype) -> str:
    """Rows divided by their largest magnitude (rows of zeros left as they are)."""
    largest = graph.op(
        "ReduceMax", [graph.op("Abs", [e]), graph.axes(1)], "largest", keepdims=1
    )
    zero = graph.const("zero", np.array(0.0, dtype=dtype))
    one = graph.const("one", np.array(1.0, dtype=dtype))
    positive = graph.op("Greater", [largest, zero])
    return graph.op("Div", [e, graph.op("Where", [positive, largest, one])])


def _normalize(graph: _Graph, clf, e: str, dtype) -> str:
    """``normalization.normalize`` of the classifier's setting."""
    if clf.normalization is None:
        return e
    if clf.normalization == "cl2n":
        # The classifier casts the float64 mean to the embeddings' dtype.
        mean = np.asarray(clf.embedding_mean_, dtype=np.float64).astype(dtype)
        e = graph.op("Sub", [e, graph.const("embedding_mean", mean)], "centred")
    if dtype == np.float64:
        # Rows near float64's limits would overflow (underflow) their norm:
        # when any row of the batch is, every row is first divided by its
        # largest magnitude, as normalization.normalize does.
        largest = graph.op(
            "ReduceMax", [graph.op("Abs", [e]), graph.axes(1)], "largest", keepdims=1
        )
        zero = graph.const("zero", np.array(0.0, dtype=dtype))
        huge = graph.op("Greater", [largest, graph.const("huge", np.array(_HUGE))])
        tiny = graph.op(
            "And",
            [
                graph.op("Greater", [largest, zero]),
                graph.op("Less", [largest, graph.const("tiny", np.array(_TINY))]),
            ],
        )
        extreme = graph.op(
            "Cast", [graph.op("Or", [huge, tiny])], to=TensorProto.DOUBLE
        )
        anywhere = graph.op(
            "Greater", [graph.op("ReduceMax", [extreme], keepdims=0), zero]
        )
        e = graph.op("Where", [anywhere, _unit_max(graph, e, dtype), e], "rescaled")
    return _rows_normalized(graph, e, dtype)


def _torch_normalize(rows: np.ndarray) -> np.ndarray:
    """Prototypes as the cosine distance sees them (``_unit_max`` then
    ``F.normalize``), computed by torch as ``predict`` computes them."""
    tensor = torch.as_tensor(np.asarray(rows, dtype=np.float64))
    largest = tensor.abs().amax(1, keepdim=True)
    tensor = tensor / torch.where(largest > 0, largest, 1.0)
    return torch.nn.functional.normalize(tensor, dim=1).numpy()


def _distances(graph: _Graph, clf, q: str) -> str:
    """Distances (n, k) of float64 queries to the prototypes, as ``predict``
    computes them."""
    prototypes = np.asarray(clf.prototypes_, dtype=np.float64)
    zero = graph.const("zero", np.array(0.0))
    metric = get_metric(clf.metric)
    if metric.angular:
        unit = _rows_normalized(graph, _unit_max(graph, q, np.float64), np.float64)
        similarity = graph.op(
            "MatMul",
            [unit, graph.const("prototypes_t", _torch_normalize(prototypes).T)],
        )
        return graph.op("Sub", [graph.const("one", np.array(1.0)), similarity], "d")
    if metric.variance_aware:
        if metric.precision_in_output:  # the embedding half of the output
            q = graph.op(
                "Slice",
                [
                    q,
                    graph.const("start", np.array([0], dtype=np.int64)),
                    graph.const("end", np.array([prototypes.shape[1]], dtype=np.int64)),
                    graph.axes(1),
                ],
                "embedding",
            )
        precisions = np.asarray(clf.precisions_, dtype=np.float64)
        if precisions.ndim == 3:
            # (q - p_c)^T P_c (q - p_c) for every class at once: (k, n, d).
            diff = graph.op(
                "Sub",
                [
                    graph.op("Unsqueeze", [q, graph.axes(0)]),
                    graph.const("prototypes", prototypes[:, None, :]),
                ],
                "diff",
            )
            weighted = graph.op("MatMul", [diff, graph.const("precisions", precisions)])
            squared = graph.op(
                "ReduceSum",
                [graph.op("Mul", [weighted, diff]), graph.axes(2)],
                keepdims=0,
            )
            return graph.op(
                "Max", [graph.op("Transpose", [squared], perm=[1, 0]), zero], "d"
            )
        # Diagonal precisions: three matrix products, as covariance computes them.
        terms = (
            graph.op(
                "MatMul",
                [graph.op("Mul", [q, q]), graph.const("precisions_t", precisions.T)],
            ),
            graph.op(
                "MatMul",
                [q, graph.const("weighted_t", -2.0 * (precisions * prototypes).T)],
            ),
            graph.const(
                "offsets",
                (torch.as_tensor(precisions) * torch.as_tensor(prototypes).square())
                .sum(1)
                .numpy(),
            ),
        )
        return graph.op("Max", [_sum(graph, terms), zero], "d")
    # |q|^2 - 2 q.p + |p|^2, clamped at 0 (distances.pairwise_distances).
    terms = (
        graph.op("ReduceSumSquare", [q, graph.axes(1)], "square_norms", keepdims=1),
        graph.op("MatMul", [q, graph.const("prototypes_t", -2.0 * prototypes.T)]),
        graph.const(
            "prototype_norms", torch.as_tensor(prototypes).square().sum(1).numpy()
        ),
    )
    squared = graph.op("Max", [_sum(graph, terms), zero], "squared")
    if metric.scale_power == 2:
        return squared
    return graph.op("Sqrt", [squared], "d")


def _sum(graph: _Graph, terms) -> str:
    """``(a + b) + c``, left to right as torch adds them."""
    return graph.op("Add", [graph.op("Add", list(terms[:2])), terms[2]])


def _shape_calculator(operator) -> None:
    clf = operator.raw_operator
    check_exportable(clf)
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=2)
    input_type = operator.inputs[0].type
    if not isinstance(input_type, (FloatTensorType, DoubleTensorType)):
        raise ValueError(
            f"PrototypicalClassifier's ONNX input must be float or double, got "
            f"{type(input_type).__name__}: pass float32 rows (X.astype(np.float32))."
        )
    n = operator.inputs[0].get_first_dimension()
    label_type = Int64TensorType if _label_kind(clf) == "int" else StringTensorType
    operator.outputs[0].type = label_type([n])
    operator.outputs[1].type = type(input_type)([n, len(clf.classes_)])


def _converter(scope, operator, container) -> None:
    clf = operator.raw_operator
    graph = _Graph(scope, container)
    opset = container.target_opset_onnx
    if opset < MIN_OPSET:
        raise ValueError(
            f"target_opset={opset} is too old for PrototypicalClassifier's graph: "
            f"use target_opset >= {MIN_OPSET} (torch's exporter writes opset 18 "
            "or later)."
        )
    X = operator.inputs[0].full_name
    double_input = isinstance(operator.inputs[0].type, DoubleTensorType)
    module = encoder_module(clf.encoder_)
    if module is None:  # the identity embeds in float64
        dtype = np.float64
        e = graph.op("Flatten", [X], "rows", axis=1)
        if not double_input:
            e = graph.op("Cast", [e], "rows64", to=TensorProto.DOUBLE)
    else:  # a torch module embeds in float32
        dtype = np.float32
        if double_input:
            X = graph.op("Cast", [X], "X32", to=TensorProto.FLOAT)
        model = _export_module(module, tuple(clf.input_shape_), opset)
        e = _add_encoder(graph, model, X)
    e = _normalize(graph, clf, e, dtype)
    if dtype != np.float64:
        e = graph.op("Cast", [e], "embedding64", to=TensorProto.DOUBLE)
    d = _distances(graph, clf, e)

    label, probabilities = (o.full_name for o in operator.outputs)
    kind = _label_kind(clf)
    classes = np.asarray(clf.classes_, dtype=np.int64 if kind == "int" else object)
    if clf.unknown_label is not None and len(classes) == len(clf.prototypes_) + 1:
        # Rejection as a last column of classes_: a virtual prototype at
        # distance threshold_ from every query.
        rows = graph.op("Shape", [d], "rows", start=0, end=1)
        column = graph.op(
            "Expand",
            [
                graph.const("threshold", np.array([[float(clf.threshold_)]])),
                graph.op(
                    "Concat",
                    [rows, graph.const("one_column", np.array([1], dtype=np.int64))],
                    axis=0,
                ),
            ],
            "threshold_column",
        )
        d = graph.op("Concat", [d, column], "d_unknown", axis=1)
    # The label of the nearest prototype (first on ties, as torch's argmin).
    nearest = graph.op("ArgMin", [d], "nearest", axis=1, keepdims=0)
    if clf.unknown_label is None or len(classes) == len(clf.prototypes_) + 1:
        graph.op(
            "Gather", [graph.const("classes", classes), nearest], output=label, axis=0
        )
    else:
        # Rejection as a relabelling of the queries farther than threshold_
        # from every prototype.
        known = graph.op("Gather", [graph.const("classes", classes), nearest], axis=0)
        farthest = graph.op(
            "ReduceMin", [d, graph.axes(1)], "nearest_distance", keepdims=0
        )
        reject = graph.op(
            "Greater",
            [farthest, graph.const("threshold", np.array(float(clf.threshold_)))],
        )
        # (Not classes.dtype: a "<U1" would cut "unknown" to "u".)
        unknown = np.array(
            clf.unknown_label, dtype=object if kind == "str" else np.int64
        )
        graph.op(
            "Where",
            [reject, graph.const("unknown_label", unknown), known],
            output=label,
        )
    # softmax((-(d - min d)) / temperature) (_numerics.logits).
    shifted = graph.op(
        "Sub", [d, graph.op("ReduceMin", [d, graph.axes(1)], "closest", keepdims=1)]
    )
    logits = graph.op(
        "Div",
        [
            graph.op("Neg", [shifted]),
            graph.const("temperature", np.array(float(clf.temperature))),
        ],
        "logits",
    )
    softmax = graph.op("Softmax", [logits], "softmax", axis=1)
    graph.op(
        "Cast",
        [softmax],
        output=probabilities,
        to=TensorProto.DOUBLE if double_input else TensorProto.FLOAT,
    )


update_registered_converter(
    PrototypicalClassifier,
    _ALIAS,
    _shape_calculator,
    _converter,
    # skl2onnx asks every classifier for "nocl" (labels as class indices):
    # the labels here are always the classes themselves.
    options={"zipmap": [True, False, "columns"], "nocl": [False]},
)


def to_onnx(
    estimator,
    X,
    *,
    zipmap: bool | str = False,
    target_opset: int | None = None,
) -> onnx.ModelProto:
    """A fitted classifier, or a Pipeline ending in one, as an ONNX model.

    A thin call of :func:`skl2onnx.to_onnx` (this module registers the
    classifier's converter with skl2onnx): scikit-learn steps before the
    classifier are converted by skl2onnx, the classifier by this module. The
    model's input takes rows of ``X``'s type (float32 or float64) and any
    number of them; its outputs are ``label`` (int64 or string) and
    ``probabilities`` (n, n_classes), columns in the order of ``classes_``.

    Parameters
    ----------
    estimator : PrototypicalClassifier or Pipeline
        Fitted; a pipeline's last step is the classifier.
    X : array-like of shape (n_samples, n_features)
        Example input (one row is enough): its dtype and width set the
        model's input type. Pass float32 for torch encoders.
    zipmap : bool or "columns", default=False
        skl2onnx's ZipMap option: False returns the probabilities as one
        tensor; True as a list of ``{label: probability}`` dictionaries
        (outputs ``output_label``, ``output_probability``).
    target_opset : int, default=None
        The ONNX opset (at least :data:`MIN_OPSET`); None: skl2onnx's
        latest tested opset.

    Returns
    -------
    onnx.ModelProto
        Save it with ``onnx.save(model, "model.onnx")``; serve it with
        ``onnxruntime.InferenceSession``.

    Raises
    ------
    ValueError
        If the classifier has a setting with no ONNX graph
        (:func:`check_exportable`).

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from sklearn_protonet import PrototypicalClassifier
    >>> from sklearn_protonet.onnx import to_onnx
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]], dtype=np.float32)
    >>> clf = PrototypicalClassifier().fit(X, ["a", "a", "b"])
    >>> model = to_onnx(clf, X[:1])
    >>> session = ort.InferenceSession(model.SerializeToString())
    >>> label, probabilities = session.run(None, {"X": X})
    >>> label
    array(['a', 'a', 'b'], dtype=object)
    """
    options = {PrototypicalClassifier: {"zipmap": zipmap}}
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if not isinstance(final, PrototypicalClassifier):
        raise TypeError(
            "to_onnx converts a PrototypicalClassifier or a Pipeline ending in "
            f"one, got {type(final).__name__}; use skl2onnx.to_onnx for other "
            "models."
        )
    check_exportable(final)
    return skl2onnx.to_onnx(
        estimator,
        np.asarray(X)[:1],
        options=options,
        target_opset=target_opset,
        initial_types=None,
    )
