"""Inference in reduced precision: an encoder run in bfloat16, float16 or
int8, and the bound that tells which int8 decisions to check in float32.

Which precision pays depends on the CPU (:mod:`sklearn_protonet.hardware`).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from ._encoders import module_device

__all__ = [
    "INFERENCE_DTYPES",
    "inference_module",
    "relative_error",
    "uncertain_rows",
]

#: Values of ``PrototypicalClassifier(inference_dtype=...)``.
INFERENCE_DTYPES = ("float32", "bfloat16", "float16", "int8")


class _Autocast(nn.Module):
    """Runs a module under ``torch.autocast``; float32 embeddings out."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, device_type: str):
        super().__init__()
        self.module, self.dtype, self.device_type = module, dtype, device_type

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(X).float()


class _QuantizedConv4(nn.Module):
    """Conv4's input checks and reshaping, then its int8 convolutions."""

    def __init__(self, conv4: nn.Module, quantized_encoder: nn.Module):
        super().__init__()
        self.conv4, self.quantized = conv4, quantized_encoder

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.quantized(self.conv4.as_images(X)).flatten(start_dim=1)


def _int8(module: nn.Module, calibration: torch.Tensor, batch_size: int):
    """Static int8 quantisation with PyTorch's FX graph mode, calibrated on
    ``calibration`` (activation ranges); BatchNorm folds into the convolutions."""
    # Imported here: the quantisation stack is large and rarely needed.
    from torch.ao.quantization import (
        MinMaxObserver,
        PerChannelMinMaxObserver,
        QConfig,
        get_default_qconfig_mapping,
    )
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from .modules import Conv4

    if module_device(module).type != "cpu":
        raise ValueError(
            "inference_dtype='int8' runs on CPU only; the encoder is on "
            f"{module_device(module)}. Use inference_dtype='float16' or 'bfloat16' "
            "on a GPU."
        )
    # Conv4 checks and reshapes its input with Python control flow, which FX
    # cannot trace: quantise its convolutional stack and keep the checks.
    target = module.encoder if isinstance(module, Conv4) else module
    engine = torch.backends.quantized.engine
    with warnings.catch_warnings():
        # PyTorch points FX quantisation users to torchao; it still works.
        warnings.filterwarnings("ignore", module=r"torch\.ao\.quantization")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        example = calibration[:1]
        if isinstance(module, Conv4):
            example = module.as_images(example)
        # Min-max ranges rather than the default histograms: a support set can
        # be a handful of images, and clipping its extremes clipped queries
        # (lower agreement with float32, and slower to convert).
        qconfig = QConfig(
            activation=MinMaxObserver.with_args(reduce_range=True),
            weight=PerChannelMinMaxObserver.with_args(
                dtype=torch.qint8, qscheme=torch.per_channel_symmetric
            ),
        )
        mapping = get_default_qconfig_mapping(engine).set_global(qconfig)
        try:
            prepared = prepare_fx(
                copy.deepcopy(target).eval(), mapping, example_inputs=(example,)
            )
        except Exception as error:  # noqa: BLE001  (FX raises many kinds)
            raise ValueError(
                f"inference_dtype='int8' could not quantise the encoder "
                f"{type(module).__name__}: {error}. int8 needs a module that "
                "torch.fx can trace (no Python control flow on tensor values); "
                "use inference_dtype='float32' or 'bfloat16' for this encoder."
            ) from error
        with torch.inference_mode(False), torch.no_grad():
            for start in range(0, len(calibration), batch_size):
                chunk = calibration[start : start + batch_size]
                prepared(module.as_images(chunk) if target is not module else chunk)
        quantized = convert_fx(prepared)
    if isinstance(module, Conv4):
        return _QuantizedConv4(module, quantized)
    return quantized


def inference_module(
    module: nn.Module,
    dtype: str,
    calibration: torch.Tensor | None = None,
    batch_size: int = 256,
) -> nn.Module:
    """``module`` as it runs for inference in ``dtype``; float32 outputs.

    Parameters
    ----------
    module : torch.nn.Module
        A trained encoder; it is not modified (int8 quantises a copy).
    dtype : {"float32", "bfloat16", "float16", "int8"}
        ``"float32"`` returns ``module`` itself. ``"bfloat16"`` and
        ``"float16"`` wrap it in ``torch.autocast`` (fast on GPUs and on CPUs
        with AMX; slow on AVX2-only CPUs, see :func:`cpu_info`). ``"int8"``
        quantises weights and activations to 8 bits (CPU only), with the
        activation ranges observed on ``calibration``: the fastest choice on
        AVX2 CPUs, at a cost of about a second when the module is converted.
    calibration : Tensor or None, default=None
        Inputs whose activations set int8's ranges (the support set); needed
        for ``"int8"`` only.
    batch_size : int, default=256
        Rows per calibration pass.

    Returns
    -------
    torch.nn.Module
        In eval mode.
    """
    if dtype not in INFERENCE_DTYPES:
        raise ValueError(f"dtype must be one of {INFERENCE_DTYPES}, got {dtype!r}.")
    if dtype == "float32":
        return module
    if dtype == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("inference_dtype='int8' needs calibration inputs.")
        return _int8(module, calibration, batch_size).eval()
    device_type = module_device(module).type
    wrapper = _Autocast(module, getattr(torch, dtype), device_type)
    # The wrapper's own flag only: .eval() would recurse into the user's
    # module and leave it in eval mode (embedding sets eval mode and restores).
    wrapper.training = False
    return wrapper


def relative_error(approximate: torch.Tensor, exact: torch.Tensor) -> float:
    """The largest relative error of a row: ``|approximate - exact| / |exact|``.

    Parameters
    ----------
    approximate : Tensor of shape (n, d)
        Embeddings in reduced precision (e.g. int8).
    exact : Tensor of shape (n, d)
        The same rows' float32 embeddings.

    Returns
    -------
    float
        The largest ratio of L2 norms over the rows; 0.0 for no rows.
    """
    if len(exact) == 0:
        return 0.0
    error = (approximate - exact).norm(dim=1)
    return float((error / exact.norm(dim=1).clamp_min(1e-12)).max())


def uncertain_rows(
    embeddings: torch.Tensor,
    normalized: torch.Tensor,
    prototypes: torch.Tensor,
    *,
    angular: bool,
    normalization: str | None,
    mean: torch.Tensor | None,
    error: float,
) -> torch.Tensor:
    """Rows whose nearest prototype could differ in float32: indices.

    ``embeddings`` are reduced-precision embeddings, ``normalized`` the same
    after the classifier's normalisation, ``error`` the largest relative
    error of such embeddings measured on the support set
    (:func:`relative_error`). A row is uncertain when the distances to its
    two nearest prototypes differ by at most its own error's length: that
    error times the row's norm, carried through the normalisation
    (Euclidean distances rank like ``"sqeuclidean"``'s; ``"cosine"`` ranks
    like Euclidean distances between unit vectors).

    Only an error pointing along the line between the two prototypes moves
    the difference by its whole length (twice, at worst); an int8 error
    points in no particular direction of the embedding space, so a margin
    of one length practically never flips (``benchmarks/inference.py``
    measures the agreement with float32), while the worst-case margin would
    embed many queries again.

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
        Reduced-precision embeddings of the queries.
    normalized : Tensor of shape (n, d)
        The same after the classifier's ``normalization``.
    prototypes : Tensor of shape (k, d)
        The classifier's prototypes (normalised).
    angular : bool
        Whether the metric compares directions only (cosine).
    normalization : {None, "l2", "cl2n"}
    mean : Tensor of shape (d,) or None
        The support set's mean embedding, for ``"cl2n"``.
    error : float
        The largest relative error measured on the support set.

    Returns
    -------
    Tensor of shape (m,)
        Indices of the uncertain rows.
    """
    norms = embeddings.norm(dim=1)
    bound = error * norms
    if normalization == "l2":
        bound = 2 * bound / norms.clamp_min(1e-12)
    elif normalization == "cl2n":
        centred = (embeddings - mean).norm(dim=1).clamp_min(1e-12)
        bound = 2 * bound / centred
    points, centres = normalized, prototypes
    if angular:
        bound = 2 * bound / normalized.norm(dim=1).clamp_min(1e-12)
        points = torch.nn.functional.normalize(normalized, dim=1)
        centres = torch.nn.functional.normalize(prototypes, dim=1)
    if centres.shape[0] < 2:
        return torch.arange(0, device=embeddings.device)
    distances = torch.cdist(points.double(), centres.double())
    nearest = distances.topk(2, dim=1, largest=False).values
    return torch.nonzero(nearest[:, 1] - nearest[:, 0] <= bound).flatten()
