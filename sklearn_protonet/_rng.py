"""Randomness owned by the estimators: same seed, same model, on any thread.

torch's global generator is one per process: two seeded fits in two threads
that seed it and draw from it interleave their draws (different models from
run to run), and ``torch.random.fork_rng`` restoring it in one thread undoes
another's draws (the caller's global state changes). This module keeps every
random draw of a fit on generators the fit owns:

- the training draws (dropout of :class:`~sklearn_protonet.modules.MLP`,
  :class:`~sklearn_protonet.modules.RandomShift`) come from a per-thread
  ``torch.Generator`` that :func:`training_generators` seeds for the
  duration of the training (:func:`generator` hands it to the modules);
- the draws torch makes from its global generator, which no argument can
  redirect (the initial weights of ``nn.Linear``..., ``nn.Dropout`` of
  other modules), happen inside :func:`seeded_global`: one thread at a time,
  seeded, the caller's state restored after;
- NumPy draws come from ``numpy.random.Generator`` objects (:func:`draw_seed`
  never touches NumPy's global state, even for ``random_state=None``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import nn

__all__ = [
    "draw_seed",
    "generator",
    "seeded_global",
    "training_generators",
    "uses_global_rng",
]

# Held while torch's global generator is seeded for a fit.
_GLOBAL_LOCK = threading.RLock()
_LOCAL = threading.local()


def draw_seed(random_state) -> int:
    """A seed from ``random_state`` (None, int, RandomState or Generator)
    that never draws from NumPy's global generator: None takes fresh
    entropy from the system instead."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return int(check_random_state(random_state).randint(2**31 - 1))


@contextmanager
def seeded_global(seed: int) -> Iterator[None]:
    """torch's global generators seeded with ``seed`` for the block, one
    thread at a time, and restored after (CPU, and CUDA when in use)."""
    devices = (
        list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    )
    with _GLOBAL_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def training_generators(seed: int) -> Iterator[None]:
    """During the block, :func:`generator` returns generators of this
    thread seeded from ``seed`` (one per device, created on first use)."""
    previous = getattr(_LOCAL, "state", None)
    _LOCAL.state = (seed, {})
    try:
        yield
    finally:
        _LOCAL.state = previous


def generator(device: torch.device | str) -> torch.Generator | None:
    """The generator the current thread's training draws from on ``device``,
    or None outside :func:`training_generators` (torch's global one)."""
    state = getattr(_LOCAL, "state", None)
    if state is None:
        return None
    seed, generators = state
    device = torch.device(device)
    key = str(device)
    if key not in generators:
        generators[key] = torch.Generator(device=device).manual_seed(seed)
    return generators[key]


# Layers without randomness, or drawing through generator() (ours).
_RNG_FREE_PREFIXES = ("torch.nn.modules.", "sklearn_protonet.")
_GLOBAL_DRAWERS = (nn.modules.dropout._DropoutNd, nn.RReLU)


def uses_global_rng(module: nn.Module) -> bool:
    """Whether training ``module`` may draw from torch's global generator:
    it holds torch's dropout layers or classes of unknown code (yours)."""
    for sub in module.modules():
        if getattr(sub, "draws_from_owned_generator", False):
            continue
        if isinstance(sub, _GLOBAL_DRAWERS):
            return True
        if not type(sub).__module__.startswith(_RNG_FREE_PREFIXES):
            return True
    return False
