"""The CPU's instruction sets, and the training precision that pays on them.

Reduced precision is a speed lever only where the hardware computes it
natively. On x86 CPUs, bfloat16 matrix units (AMX) make bfloat16 autocast
pay; AVX-512 bfloat16 instructions alone pay on some CPUs and not on others
(faster or slower than float32 depending on the allocator and the model),
which is why
:func:`training_autocast_dtype` times a step there; on AVX2-only CPUs bfloat16
is emulated and several times *slower* than float32. int8 convolutions
(FBGEMM/oneDNN, through PyTorch's quantization) are fast on every x86 CPU
with AVX2. :func:`cpu_info` reads what the machine has;
:func:`training_autocast_dtype` acts on it for meta-training, and the
classifier's ``inference_dtype`` for prediction.
"""

from __future__ import annotations

import copy
import os
import platform
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch
from torch import nn

__all__ = ["cpu_info", "training_autocast_dtype"]

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
    >>> from sklearn_protonet.hardware import cpu_info
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
      model (faster or slower than float32), so
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
