"""How many torch threads to compute on when other processes keep cores busy.

torch cuts each operator's work into one equal share per intra-op thread and
waits for the last share, OpenMP's threads spinning while they wait. On a
machine where another process holds a core, the thread that shares that
core gets part of it, the other spins on the free core waiting for it, and
two threads run slower than one: measured by ``benchmarks/contention.py``
(passive waiting would help there, but it must be set before torch starts
and slows a quiet machine). A laptop is
rarely idle, so the library does not keep torch's default (one thread per
core) blindly: before each chunk of embedding, each step of support-set
adaptation and each episode of meta-training it counts the cores that other
processes leave idle, from the kernel's CPU accounting (``/proc/stat``, the
cores this process may run on) minus this process's own CPU time, and
computes on that many threads, never more than torch's current setting.

A thread count the user chose is kept: set ``OMP_NUM_THREADS`` (or pass
``--threads`` to the scripts) and nothing changes it. Where ``/proc/stat``
cannot be read (macOS, Windows) torch's setting is kept too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from threadpoolctl import threadpool_limits

#: Shortest window that measures the load: ``/proc/stat`` counts in ticks
#: of 10 ms, so shorter windows round to whole cores.
_MIN_WINDOW = 0.04
#: Older measurements no longer tell the current load: measure afresh.
_MAX_AGE = 10.0

_lock = threading.Lock()
_last: tuple[float, float, float] | None = None  # wall, busy CPU s, own CPU s
_decided: float | None = None  # idle cores at the last measurement
_fixed = False
_depth = 0
_limit = 0


def fix_thread_count(count: int) -> None:
    """Compute on ``count`` torch threads from now on, whatever the load
    (the scripts' ``--threads``): the user chose it."""
    global _fixed
    torch.set_num_threads(count)
    _fixed = True


def _adaptive() -> bool:
    return not _fixed and "OMP_NUM_THREADS" not in os.environ


def _busy_seconds() -> float | None:
    """CPU seconds spent by every process on the cores this one may use,
    idle and I/O wait excluded (steal included: a virtual machine's host
    took them), or None where the kernel does not say."""
    try:
        allowed = {f"cpu{core}".encode() for core in os.sched_getaffinity(0)}
        with open("/proc/stat", "rb") as handle:
            lines = handle.read().splitlines()
    except (OSError, AttributeError):
        return None
    ticks = 0
    for line in lines[1:]:
        fields = line.split()
        if not fields or not fields[0].startswith(b"cpu"):
            break
        if fields[0] in allowed:
            # user nice system idle iowait irq softirq steal
            values = [int(v) for v in fields[1:9]]
            ticks += sum(values) - values[3] - values[4]
    return ticks / os.sysconf("SC_CLK_TCK")


_clock = time.monotonic
_own_seconds = time.process_time  # every thread of this process


def _measure() -> float | None:
    """The idle cores since the last measurement, or None when unknown (the
    first one, or the last too old); within 40 ms of the last measurement
    (``/proc/stat`` counts in 10 ms ticks) nothing is read and the last
    result stands, so calls in a loop stay cheap."""
    global _last, _decided
    wall = _clock()
    if _last is not None and wall - _last[0] < _MIN_WINDOW:
        return _decided
    busy = _busy_seconds()
    if busy is None:
        return None
    last, _last = _last, (wall, busy, _own_seconds())
    if last is None or wall - last[0] > _MAX_AGE:
        _decided = None
        return None
    elapsed, busy, own = (b - a for a, b in zip(last, _last, strict=True))
    others = max(0.0, busy - own) / elapsed
    _decided = max(0.0, len(os.sched_getaffinity(0)) - others)
    return _decided


def threads_for_load(limit: int) -> int:
    """The thread count to compute on now: the cores other processes left
    idle since the last call, rounded, between 1 and ``limit``; ``limit``
    when that is unknown (nothing measured in the last 10 s: the next call
    knows)."""
    with _lock:
        idle = _measure()
    return limit if idle is None else max(1, min(limit, int(idle + 0.5)))


@contextmanager
def load_aware_threads(other_pools: bool = False) -> Iterator[None]:
    """torch computes on :func:`threads_for_load` threads in this block, and
    :func:`recheck_load` decides again inside it (each chunk, step or
    epoch); torch's setting is restored after. In nested blocks the
    outermost decides. With ``other_pools``, the OpenMP and BLAS thread
    pools of other libraries (scikit-learn's, NumPy's) get the count decided
    on entry too, through ``threadpoolctl``, when it is below torch's."""
    global _depth, _limit
    if _depth or not _adaptive():
        yield
        return
    _depth, _limit = 1, torch.get_num_threads()
    try:
        recheck_load()
        count = torch.get_num_threads()
        with (
            threadpool_limits(limits=count)
            if other_pools and count < _limit
            else nullcontext()
        ):
            yield
    finally:
        _depth = 0
        if torch.get_num_threads() != _limit:
            torch.set_num_threads(_limit)


def recheck_load() -> None:
    """Inside :func:`load_aware_threads`, set the thread count for the load
    measured since the last decision (cheap: one read of ``/proc/stat`` at
    most every 40 ms)."""
    if _depth:
        count = threads_for_load(_limit)
        if count != torch.get_num_threads():
            torch.set_num_threads(count)


# A first reading now: the first heavy call after the import (which takes
# seconds) then measures the load over the time since.
_measure()
