"""Process-wide settings a training script opts into: allocator, threads, options.

Kept apart from the estimators: they change the whole Python process, so a
script or the command line opts in, never an estimator behind the user's back.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import platform

__all__ = ["add_script_options", "apply_script_options", "keep_freed_memory"]

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse, process-wide.

    Every training step allocates and frees activations of tens of megabytes.
    By default glibc serves blocks that large with fresh ``mmap`` calls and
    gives them back to the system when freed, so each step pays the kernel
    for zeroed pages again; CPU meta-training of Conv4 spends a third to a
    half of its time there. This asks ``malloc`` to serve them from its heap
    and keep freed memory (``mallopt(M_MMAP_MAX, 0)`` and a 1 GiB
    ``M_TRIM_THRESHOLD``), which made a Conv4 training step 1.5x to 1.8x
    faster on a 2-core CPU, for a somewhat higher resident memory
    (``benchmarks/speed.py``).
    Memory freed by the process is reused by it rather than returned to the
    system, so call it in processes that train, not in long-lived services.

    It cannot be undone within the process. The same settings can be given
    from outside as the environment variables ``MALLOC_MMAP_MAX_=0`` and
    ``MALLOC_TRIM_THRESHOLD_=1073741824``; preloading jemalloc or tcmalloc has
    a similar effect.

    Returns
    -------
    bool
        True when the settings were applied; False where the C library is not
        glibc (macOS, Windows, musl), where nothing is changed.

    Examples
    --------
    >>> from sklearn_protonet.runtime import keep_freed_memory
    >>> applied = keep_freed_memory()  # once, at the start of a training script
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**30))


def add_script_options(parser: argparse.ArgumentParser) -> None:
    """Add the training scripts' runtime options to ``parser``:
    ``--no-progress`` (``args.progress`` False: no progress bar),
    ``--threads N`` (torch threads) and ``--default-malloc`` (skip
    :func:`keep_freed_memory`, which a script applies by default).

    Used by ``python -m sklearn_protonet`` and the repository's benchmarks.
    """
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: all cores)"
    )
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep the C library's default malloc settings (by default the "
        "script calls sklearn_protonet.runtime.keep_freed_memory(), which makes "
        "CPU training 1.5x to 1.8x faster)",
    )


def apply_script_options(args: argparse.Namespace) -> None:
    """Apply the options of :func:`add_script_options` to this process."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.default_malloc:
        keep_freed_memory()
