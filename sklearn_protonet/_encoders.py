"""Running encoders: the module behind an encoder, its device, eval mode, chunks.

Every estimator that embeds (the classifier, the trainer's ``transform``,
persistence) asks this module which ``torch.nn.Module`` an encoder holds and
runs it here, so the answer and the inference rules live in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from sklearn.frozen import FrozenEstimator
from sklearn.utils._param_validation import Options
from skorch import NeuralNet
from torch import nn
from torch.nn.parameter import UninitializedParameter

from ._rng import seeded_global
from ._threads import load_aware_threads, recheck_load
from .runtime import freed_memory_kept

__all__ = [
    "DeviceName",
    "check_device_available",
    "encoder_module",
    "eval_mode",
    "has_lazy_parameters",
    "iter_embeddings",
    "materialize",
    "module_device",
    "one_thread",
    "resolve_device",
]

# Modules in eval_mode: id -> [number of users, saved training flags].
_EVAL_USERS: dict[int, list] = {}
_EVAL_LOCK = threading.Lock()


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode and restore each submodule's flag after.

    Restoring matters: the classifier borrows modules it does not own. Threads
    sharing a module count as one user: the flags are saved by the first to
    enter and restored by the last to leave, so no thread restores train mode
    (dropout, BatchNorm batch statistics) under another one still embedding.
    """
    with _EVAL_LOCK:
        users = _EVAL_USERS.get(id(module))
        if users is None:
            flags = [(m, m.training) for m in module.modules()]
            users = _EVAL_USERS[id(module)] = [0, flags]
            module.eval()
        users[0] += 1
    try:
        yield module
    finally:
        with _EVAL_LOCK:
            users[0] -= 1
            if users[0] == 0:
                del _EVAL_USERS[id(module)]
                for m, training in users[1]:
                    m.training = training


@contextmanager
def one_thread() -> Iterator[None]:
    """torch computes on one intra-op thread in this block (this thread's
    setting, restored after).

    For memory-bound arithmetic on small chunks (the identity encoder's
    distances) extra threads gain nothing, and on a machine whose cores are
    busy each parallel region waits for a descheduled thread:
    several times slower (``benchmarks/identity_busy.py``).
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU if it has none)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if not isinstance(tensor, UninitializedParameter):
            return tensor.device
    return torch.device("cpu")


def has_lazy_parameters(module: nn.Module) -> bool:
    return any(isinstance(p, UninitializedParameter) for p in module.parameters())


def materialize(module: nn.Module, example: torch.Tensor, seed: int) -> None:
    """Give a lazy module (``nn.LazyLinear``...) its shapes with a dry run.

    The dry run draws the initial weights; seeding it makes a lazy encoder
    as reproducible as an eager one.
    """
    with seeded_global(seed), eval_mode(module), torch.no_grad():
        module(example[:1].to(module_device(module)))


def iter_embeddings(
    module: nn.Module, X: torch.Tensor, batch_size: int, device: torch.device | str
) -> Iterator[torch.Tensor]:
    """Embed ``X`` in batches of ``batch_size`` rows.

    Yields float tensors on ``device`` of shape (batch, d). Raises a clear error
    when the module does not return one vector per row.
    """
    # Large activations freed and reallocated chunk after chunk: malloc keeps
    # them for the loop (2x faster on CPU, benchmarks/speed.py).
    # The thread count follows the cores other processes leave idle (_threads).
    threads = load_aware_threads() if str(device) == "cpu" else nullcontext()
    with eval_mode(module), torch.inference_mode(), freed_memory_kept(), threads:
        for start in range(0, len(X), batch_size):
            recheck_load()
            out = module(X[start : start + batch_size].to(device, non_blocking=True))
            if not isinstance(out, torch.Tensor) or out.dim() != 2:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
                raise ValueError(
                    f"The encoder must return a 2-D tensor (one embedding per row), "
                    f"got {shape}. Flatten its output, e.g. end it with "
                    "torch.nn.Flatten()."
                )
            yield out


def encoder_module(encoder) -> nn.Module | None:
    """The ``torch.nn.Module`` that embeds for ``encoder``, or None.

    ``encoder`` may be a module, a fitted skorch net (such as
    :class:`~sklearn_protonet.EpisodicTrainer`: its ``module_``), either
    wrapped in :class:`~sklearn.frozen.FrozenEstimator`, or anything else (a
    scikit-learn transformer, the identity ``None``), which has no module.
    """
    if isinstance(encoder, FrozenEstimator):
        encoder = encoder.estimator
    if isinstance(encoder, NeuralNet):
        return encoder.module_
    return encoder if isinstance(encoder, nn.Module) else None


def resolve_device(
    module: nn.Module | None, device: str | torch.device | None
) -> torch.device:
    """Where embedding runs: the module's own device (CPU for no module, or
    ``device`` when given); a ``device`` that contradicts the module's
    weights is an error naming the fix."""
    if module is None:
        return torch.device(device or "cpu")
    own = module_device(module)
    if device is not None and torch.device(device) != own:
        raise ValueError(
            f"device={device!r} but the encoder's weights are on "
            f"{own}. Move the encoder (encoder.to({str(device)!r})) or "
            "leave device=None to use the encoder's device."
        )
    return own


class DeviceName(Options):
    """scikit-learn parameter constraint: a string torch parses as a device
    (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...).

    Checked with the other parameters, so a typo fails at ``fit`` (and the
    trainer's ``set_params``) with scikit-learn's message naming ``device``,
    not deep inside torch. (An ``Options`` subclass: scikit-learn accepts no
    other kind of custom constraint.)
    """

    def __init__(self):
        super().__init__(str, set())

    def is_satisfied_by(self, val) -> bool:
        if not isinstance(val, str):
            return False
        try:
            torch.device(val)
        except (RuntimeError, ValueError):
            return False
        return True

    def __str__(self) -> str:
        return "a torch device name such as 'cpu', 'cuda' or 'cuda:0'"


def check_device_available(device, estimator: str) -> None:
    """Refuse a device this machine does not have, naming the fix."""
    if device is None:
        return
    kind = torch.device(device)
    available = {
        "cuda": torch.cuda.is_available,
        "mps": lambda: torch.backends.mps.is_available(),
        "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available(),
    }.get(kind.type)
    if available is not None and not available():
        raise ValueError(
            f"{estimator}(device={str(device)!r}): this machine's PyTorch has no "
            f"{kind.type.upper()} device (torch.{kind.type}.is_available() is "
            "False). Use device='cpu', or install a PyTorch build for your "
            "accelerator."
        )
    if kind.type == "cuda" and kind.index is not None:
        count = torch.cuda.device_count()
        if kind.index >= count:
            raise ValueError(
                f"{estimator}(device={str(device)!r}): this machine has {count} "
                f"CUDA device(s), numbered 0 to {count - 1}. Use one of them, "
                "e.g. device='cuda:0'."
            )
