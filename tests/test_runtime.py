"""Process-wide runtime settings."""

import platform
import subprocess
import sys

import pytest

from sklearn_protonet import runtime


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


def test_keep_freed_memory_changes_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert runtime.keep_freed_memory() is False
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert runtime.keep_freed_memory() is False
