"""The allocator: malloc settings that keep freed memory for reuse.

Kept apart from the estimators: they change the whole Python process, so a
script or the command line opts in, never an estimator behind the user's back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

__all__ = [
    "freed_memory_kept",
    "keep_freed_memory",
    "release_freed_memory",
]

# mallopt parameters and glibc's defaults for them, from <malloc.h>/malloc.c.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_KEEP_TRIM_THRESHOLD = 2**30
#: Set to "0" to stop the estimators from applying :func:`freed_memory_kept`.
SCOPED_MALLOC_ENV = "SKLEARN_PROTONET_SCOPED_MALLOC"
#: Seconds :func:`freed_memory_kept` keeps its settings (and the memory) after
#: the last block leaves, so that back-to-back calls reuse that memory
#: instead of paying the kernel for it again (jemalloc's decay, in spirit).
RELEASE_DELAY_SECONDS = 2.0

_scope_lock = threading.Lock()
_scope_users = 0
_kept_for_good = False
# The pending release (a timer) while the settings outlive their last block.
_release_timer: threading.Timer | None = None


@cache
def _glibc():
    """glibc's ``mallopt`` and ``malloc_trim``, or None elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return mallopt, malloc_trim


@cache
def _malloc_chosen_at_start() -> bool:
    """Whether ``MALLOC_MMAP_MAX_`` or ``MALLOC_TRIM_THRESHOLD_`` chose glibc's
    settings when this process started.

    glibc reads them once, at start-up, so the start-up environment is what
    counts: variables set later in ``os.environ`` (dask's nanny sets
    ``MALLOC_TRIM_THRESHOLD_`` for the workers it spawns) changed nothing here.
    """
    names = (b"MALLOC_MMAP_MAX_", b"MALLOC_TRIM_THRESHOLD_")
    try:
        with open("/proc/self/environ", "rb") as file:
            entries = file.read().split(b"\0")
    except OSError:  # no procfs: the current environment is the best guess
        entries = [f"{k}={v}".encode() for k, v in os.environ.items()]
    return any(
        entry.partition(b"=")[0] in names and entry.partition(b"=")[2]
        for entry in entries
    )


def _keep(mallopt) -> bool:
    # mallopt returns 1 on success.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _KEEP_TRIM_THRESHOLD)
    )


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse, process-wide.

    Every training step allocates and frees activations of tens of megabytes.
    By default glibc serves blocks that large with fresh ``mmap`` calls and
    gives them back to the system when freed, so each step pays the kernel
    for zeroed pages again; CPU meta-training of Conv4 spends a third to a
    half of its time there. This asks ``malloc`` to serve them from its heap
    and keep freed memory (``mallopt(M_MMAP_MAX, 0)`` and a 1 GiB
    ``M_TRIM_THRESHOLD``), which makes CPU training steps faster for a
    somewhat higher resident memory (``benchmarks/speed.py`` measures it).
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
    global _kept_for_good
    libc = _glibc()
    if libc is None:
        return False
    _kept_for_good = _keep(libc[0])
    return _kept_for_good


@contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Apply :func:`keep_freed_memory`'s malloc settings inside a ``with`` block.

    Within the block, glibc's ``malloc`` serves large blocks from its heap and
    keeps freed memory for reuse, so repeated forward passes stop paying the
    kernel for fresh zeroed pages. On leaving it, the settings go back to
    glibc's defaults (``M_MMAP_MAX`` 65536, ``M_TRIM_THRESHOLD`` 128 KiB) and
    ``malloc_trim(0)`` returns the kept memory to the system. The estimators
    wrap their heavy loops in it (``PrototypicalClassifier`` embedding,
    ``EpisodicTrainer`` training and ``transform``), which is why their
    defaults run at the speed of :func:`keep_freed_memory`
    (``benchmarks/speed.py``).

    What a user may notice: while a block runs, *other threads* of the
    process get the same settings (malloc's settings are process-wide); and
    after the first block glibc no longer adapts its mmap threshold on its own
    (any ``mallopt`` call switches that off), which changes nothing measurable
    for this package. Nested and concurrent blocks count as one: the last to
    leave restores, :data:`RELEASE_DELAY_SECONDS` (2 s) later, so that
    back-to-back calls (``predict`` in a loop, cross-validation folds) reuse
    the memory the previous one freed; a block entered within that delay
    cancels the release. Nothing is done when :func:`keep_freed_memory` was
    applied, when the ``MALLOC_MMAP_MAX_`` or ``MALLOC_TRIM_THRESHOLD_``
    environment variables chose the settings at the process's start, when
    ``SKLEARN_PROTONET_SCOPED_MALLOC=0``, or where the C library is not glibc.

    Yields
    ------
    bool
        Whether this block changed the settings (or shares a block that did).

    Examples
    --------
    >>> from sklearn_protonet.runtime import freed_memory_kept
    >>> with freed_memory_kept():
    ...     pass  # embed, train...
    """
    global _scope_users, _release_timer
    libc = _glibc()
    if (
        libc is None
        or _kept_for_good
        or _malloc_chosen_at_start()
        or os.environ.get(SCOPED_MALLOC_ENV) == "0"
    ):
        yield False
        return
    with _scope_lock:
        if _release_timer is not None:  # still applied: cancel the release
            _release_timer.cancel()
            _release_timer = None
        elif _scope_users == 0:
            _keep(libc[0])
        _scope_users += 1
    try:
        yield True
    finally:
        with _scope_lock:
            _scope_users -= 1
            if _scope_users == 0:
                if RELEASE_DELAY_SECONDS > 0:
                    _release_timer = threading.Timer(
                        RELEASE_DELAY_SECONDS, _release_if_unused
                    )
                    _release_timer.daemon = True  # never holds up exit
                    _release_timer.start()
                else:
                    _release()


def _release() -> None:
    """Cancel a pending release, put glibc's default settings back and return
    the kept memory to the system (called with the lock held)."""
    global _release_timer
    if _release_timer is not None and _release_timer is not threading.current_thread():
        _release_timer.cancel()
    _release_timer = None
    libc = _glibc()
    if libc is None or _kept_for_good:
        return
    mallopt, malloc_trim = libc
    mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
    mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
    malloc_trim(0)


def _release_if_unused() -> None:
    with _scope_lock:
        # A block entered since cancelled this timer (and may have left again,
        # starting another): only the current timer restores.
        if _release_timer is threading.current_thread() and _scope_users == 0:
            _release()


def release_freed_memory() -> None:
    """Return what :func:`freed_memory_kept` keeps now, not after its delay.

    Restores glibc's default settings and trims the heap at once when no
    block is running (a no-op otherwise, and after
    :func:`keep_freed_memory`). For services that want the memory back the
    moment a request is done.

    Examples
    --------
    >>> from sklearn_protonet.runtime import release_freed_memory
    >>> release_freed_memory()
    """
    with _scope_lock:
        if _scope_users == 0 and _release_timer is not None:
            _release()


def _after_fork_in_child() -> None:
    # A fork copies neither the timer's thread nor a lock's owner: the child
    # gets a fresh lock and restores now what the timer would have.
    global _scope_lock
    _scope_lock = threading.Lock()
    if _release_timer is not None:
        _release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
