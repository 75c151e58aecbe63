"""Numeric precision for speed: which precision pays on this machine, and
encoders run in bfloat16, float16 or int8 for inference.

Reduced precision is a speed lever only where the hardware computes it
natively. On x86 CPUs, bfloat16 matrix units (AMX) make bfloat16 autocast
pay; AVX-512 bfloat16 instructions alone paid on an AMD EPYC (training and
inference 1.7x to 1.9x float32) and gave mixed results on an Intel Xeon
(faster or slower than float32 depending on the allocator), which is why
:func:`training_autocast_dtype` times a step there; on AVX2-only CPUs bfloat16
is emulated and several times *slower* than float32. int8 convolutions
(FBGEMM/oneDNN, through PyTorch's quantization) are fast on every x86 CPU
with AVX2. :func:`cpu_info` reads what the machine has;
:func:`training_autocast_dtype` and :func:`inference_module` act on it.
"""

from __future__ import annotations

import copy
import os
import platform
import time
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch
from torch import nn

from ._encoders import module_device

__all__ = [
    "INFERENCE_DTYPES",
    "cpu_info",
    "inference_module",
    "relative_error",
    "uncertain_rows",
    "training_autocast_dtype",
]

#: Values of ``PrototypicalClassifier(inference_dtype=...)``.
INFERENCE_DTYPES = ("float32", "bfloat16", "float16", "int8")

# The /proc/cpuinfo flags that decide which precision is fast on x86.
_PRECISION_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@cache
def cpu_info() -> dict:
    """The CPU model and the instruction-set flags that matter for precision.

    Returns
    -------
    dict
        ``model`` (e.g. ``"AMD EPYC 7B13"``; ``platform.processor()`` where
        ``/proc/cpuinfo`` is absent), ``flags`` (the subset of
        ``avx2, fma, avx512f, avx512_vnni, avx_vnni, avx512_bf16, avx512_fp16,
        amx_tile, amx_bf16, amx_int8`` the CPU reports, Linux only),
        ``torch_capability`` (the vector instruction set PyTorch's own
        kernels use, e.g. ``"AVX2"``) and ``logical_cpus``.

    Examples
    --------
    >>> from sklearn_protonet.precision import cpu_info
    >>> sorted(cpu_info())
    ['flags', 'logical_cpus', 'model', 'torch_capability']
    """
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name":
            model = value.strip()
        elif key == "flags":
            present = set(value.split())
            flags = [flag for flag in _PRECISION_FLAGS if flag in present]
            break
    return {
        "model": model,
        "flags": flags,
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "logical_cpus": os.cpu_count(),
    }


def _timed_steps(step: Callable[[], None], n_steps: int) -> float:
    step()  # warm-up: first calls pick kernels and allocate
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    return (time.perf_counter() - start) / n_steps


def training_autocast_dtype(
    device: str | torch.device = "cpu",
    *,
    module: nn.Module | None = None,
    example: torch.Tensor | None = None,
    n_steps: int = 2,
) -> str | None:
    """The ``autocast_dtype`` that trains fastest here: ``"bfloat16"`` or None.

    Decided by the hardware where it is clear-cut, measured where it is not:

    - CUDA: ``"bfloat16"`` when the GPU supports it (tensor cores), else None;
    - CPU with AMX bfloat16 tiles (``amx_bf16``): ``"bfloat16"``;
    - CPU without any bfloat16 instructions (AVX2 only, most AMD and older
      Intel CPUs): None, float32 -- bfloat16 would be emulated, several times
      slower;
    - CPU with ``avx512_bf16`` but no AMX: it depends on the allocator and the
      model (a 60-way Conv4 step measured from 0.88x to 1.15x float32), so
      when ``module`` and ``example`` are given, ``n_steps`` forward-backward
      passes of each precision are timed on a copy of ``module`` and the
      faster wins; without them, None.

    Parameters
    ----------
    device : str or torch.device, default="cpu"
    module : torch.nn.Module or None, default=None
        The encoder to time (a deep copy is trained, the module is untouched).
    example : Tensor or None, default=None
        One training batch for ``module`` (e.g. an episode's images).
    n_steps : int, default=2
        Timed steps per precision, after one warm-up step.

    Returns
    -------
    {"bfloat16", None}
        The value for :class:`~sklearn_protonet.EpisodicTrainer`'s
        ``autocast_dtype``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else None
    if device.type != "cpu":
        return None
    flags = set(cpu_info()["flags"])
    if "amx_bf16" in flags:
        return "bfloat16"
    if "avx512_bf16" not in flags or module is None or example is None:
        return None
    seconds = {}
    for dtype in (None, "bfloat16"):
        trial = copy.deepcopy(module).to(device).train()

        def step(trial=trial, dtype=dtype):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(dtype)):
                out = trial(example.to(device))
            out.float().square().mean().backward()

        seconds[dtype] = _timed_steps(step, n_steps)
    return min(seconds, key=seconds.get)


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
        # (on Omniglot: 99.90 % agreement with float32 instead of 99.93 %, and
        # 3x longer to convert).
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
    metric: str,
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
    of one length practically never flips: on Omniglot test episodes the
    rows it leaves alone agreed with float32 on every query measured
    (``benchmarks/inference.py``), while a third of the worst-case margin
    already re-embedded up to 30 % of the queries.

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
        Reduced-precision embeddings of the queries.
    normalized : Tensor of shape (n, d)
        The same after the classifier's ``normalization``.
    prototypes : Tensor of shape (k, d)
        The classifier's prototypes (normalised).
    metric : {"sqeuclidean", "euclidean", "cosine"}
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
    if metric == "cosine":
        bound = 2 * bound / normalized.norm(dim=1).clamp_min(1e-12)
        points = torch.nn.functional.normalize(normalized, dim=1)
        centres = torch.nn.functional.normalize(prototypes, dim=1)
    if centres.shape[0] < 2:
        return torch.arange(0, device=embeddings.device)
    distances = torch.cdist(points.double(), centres.double())
    nearest = distances.topk(2, dim=1, largest=False).values
    return torch.nonzero(nearest[:, 1] - nearest[:, 0] <= bound).flatten()
