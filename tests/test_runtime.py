"""Process-wide runtime settings."""

import os
import platform
import subprocess
import sys

import pytest

from sklearn_protonet import runtime


def _without_malloc_settings() -> dict:
    """This environment minus what makes the scoped settings stand down
    (glibc's MALLOC_* variables, the package's switch): the child process
    measures the scoped settings whatever the caller's shell exports."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MALLOC_") and name != runtime.SCOPED_MALLOC_ENV
    }


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="keep_freed_memory only changes glibc's malloc",
)
def test_keep_freed_memory_applies_and_training_still_works():
    # In a fresh process: the setting is process-wide and cannot be undone.
    code = """
import numpy as np
from sklearn_protonet import EpisodicTrainer
from sklearn_protonet.modules import MLP
from sklearn_protonet.runtime import keep_freed_memory
assert keep_freed_memory() is True
X = np.random.default_rng(0).normal(size=(200, 8)).astype("float32")
y = np.repeat(np.arange(10), 20)
EpisodicTrainer(MLP, max_epochs=1, episodes_per_epoch=5, train_split=None,
                verbose=0).fit(X, y)
print("trained")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "trained" in result.stdout


@pytest.fixture
def _libc_unknown():
    runtime._glibc.cache_clear()  # the C library is looked up once, cached
    yield
    runtime._glibc.cache_clear()


@pytest.mark.usefixtures("_libc_unknown")
def test_keep_freed_memory_changes_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert runtime.keep_freed_memory() is False
    with runtime.freed_memory_kept() as applied:
        assert applied is False
    runtime._glibc.cache_clear()
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert runtime.keep_freed_memory() is False


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="freed_memory_kept only changes glibc's malloc",
)
def test_freed_memory_kept_keeps_memory_inside_and_returns_it_after():
    # In a fresh process, so the measured heap is this test's alone.
    code = """
import ctypes, time, numpy as np
from sklearn_protonet import runtime
from sklearn_protonet.runtime import freed_memory_kept
runtime.RELEASE_DELAY_SECONDS = 0.5
names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
size = 2**27  # 128 MiB: glibc maps blocks this large by default
with freed_memory_kept() as outer, freed_memory_kept() as inner:
    assert outer and inner, "the scoped settings stood down"
    block = np.ones(size // 8)
    assert libc.mallinfo2().hblkhd < size  # from the heap, not mmap
    del block
    assert libc.mallinfo2().fordblks >= size  # freed, kept for reuse
assert libc.mallinfo2().fordblks >= size  # still kept just after leaving...
with freed_memory_kept():  # ...for the next block to reuse
    block = np.ones(size // 8)
    assert libc.mallinfo2().hblkhd < size
    del block
runtime.release_freed_memory()  # at once, on request
assert libc.mallinfo2().arena < size
block = np.ones(size // 8)
assert libc.mallinfo2().hblkhd >= size  # glibc's default again: mmap
del block
with freed_memory_kept():
    block = np.ones(size // 8)
    del block
import os
child = os.fork()  # the timer's thread is not forked: the child restores now
if child == 0:
    block = np.ones(size // 8)
    os._exit(0 if libc.mallinfo2().hblkhd >= size else 1)
assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0, "child kept"
time.sleep(1.5)
assert libc.mallinfo2().arena < size  # returned on its own after the delay
block = np.ones(size // 8)
assert libc.mallinfo2().hblkhd >= size
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=_without_malloc_settings(),
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_freed_memory_kept_can_be_switched_off(monkeypatch):
    monkeypatch.setenv(runtime.SCOPED_MALLOC_ENV, "0")
    with runtime.freed_memory_kept() as applied:
        assert applied is False


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="freed_memory_kept only changes glibc's malloc",
)
def test_freed_memory_kept_reads_the_start_up_environment():
    # glibc reads MALLOC_* once at start-up: setting them later (dask's nanny
    # does, for its workers) chose nothing for this process; a process
    # started with one keeps glibc's choice. Fresh processes: other tests
    # may have applied keep_freed_memory() to this one.
    code = (
        "import os, sys\n"
        "if sys.argv[1] == 'later':\n"
        "    os.environ['MALLOC_TRIM_THRESHOLD_'] = '65536'\n"
        "from sklearn_protonet.runtime import freed_memory_kept\n"
        "with freed_memory_kept() as applied:\n"
        "    print(applied)\n"
    )
    for when, started_with, expected in (
        ("later", {}, "True"),
        ("at-start", {"MALLOC_TRIM_THRESHOLD_": "65536"}, "False"),
    ):
        result = subprocess.run(
            [sys.executable, "-c", code, when],
            capture_output=True,
            text=True,
            env={**_without_malloc_settings(), **started_with},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected, when
