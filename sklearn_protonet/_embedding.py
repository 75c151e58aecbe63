"""Running an encoder module for inference: batched, eval mode, no autograd."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

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
    with torch.random.fork_rng(devices=[]), eval_mode(module), torch.no_grad():
        torch.manual_seed(seed)
        module(example[:1].to(module_device(module)))


def iter_embeddings(
    module: nn.Module, X: torch.Tensor, batch_size: int, device: torch.device | str
) -> Iterator[torch.Tensor]:
    """Embed ``X`` in batches of ``batch_size`` rows.

    Yields float tensors on ``device`` of shape (batch, d). Raises a clear error
    when the module does not return one vector per row.
    """
    with eval_mode(module), torch.inference_mode():
        for start in range(0, len(X), batch_size):
            out = module(X[start : start + batch_size].to(device, non_blocking=True))
            if not isinstance(out, torch.Tensor) or out.dim() != 2:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
                raise ValueError(
                    f"The encoder must return a 2-D tensor (one embedding per row), "
                    f"got {shape}. Flatten its output, e.g. end it with "
                    "torch.nn.Flatten()."
                )
            yield out


@contextmanager
def numeric_input(name: str = "X") -> Iterator[None]:
    """Re-raise NumPy's "could not convert string to float" naming the input
    and the fix."""
    try:
        yield
    except ValueError as error:
        if "could not convert" not in str(error):
            raise
        raise ValueError(
            f"{name} must be numeric, but {error}. Encode text and categorical "
            "columns first, e.g. with a ColumnTransformer and OneHotEncoder in "
            "a Pipeline before this estimator."
        ) from error


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """A tensor view of a NumPy array (no copy when it is contiguous).

    Read-only arrays (memory maps) are viewed too: the package only reads its
    inputs, so torch's warning about non-writable arrays is silenced.
    """
    X = np.ascontiguousarray(X)
    if X.flags.writeable:
        return torch.from_numpy(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(X)
