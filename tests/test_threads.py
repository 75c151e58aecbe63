"""The thread count follows the cores that other processes leave idle."""

import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_protonet import PrototypicalClassifier, _threads
from sklearn_protonet.modules import Conv4

from .conftest import tiny_trainer


class FakeStat:
    """The clock and CPU accounting ``_threads`` reads: each reading of the
    clock comes 100 ms after the last, in which other processes kept
    ``others`` cores busy and this one ``own`` cores."""

    def __init__(self, others: float, own: float = 0.0):
        self.others, self.own = others, own
        self.wall, self.busy, self.mine = 1000.0, 0.0, 0.0

    def clock(self):
        self.pause(0.1)
        return self.wall

    def pause(self, seconds):
        self.wall += seconds
        self.busy += seconds * (self.others + self.own)
        self.mine += seconds * self.own

    def install(self, monkeypatch):
        monkeypatch.setattr(_threads, "_clock", self.clock)
        monkeypatch.setattr(_threads, "_busy_seconds", lambda: self.busy)
        monkeypatch.setattr(_threads, "_own_seconds", lambda: self.mine)
        return self


@pytest.fixture
def adaptive(monkeypatch):
    """The policy on (conftest fixes the count for the other tests), with
    two cores and no measurement yet."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "_fixed", False)
    monkeypatch.setattr(_threads, "_last", None)
    monkeypatch.setattr(_threads, "_decided", None)
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: {0, 1})
    torch.set_num_threads(2)
    yield monkeypatch
    torch.set_num_threads(2)


@pytest.mark.parametrize(
    "others, own, expected",
    [(0.0, 0.0, 2), (0.1, 1.9, 2), (1.0, 0.0, 1), (0.7, 1.3, 1), (2.0, 0.0, 1)],
)
def test_threads_for_load_counts_the_cores_others_leave_idle(
    adaptive, others, own, expected
):
    FakeStat(others, own).install(adaptive)
    assert _threads.threads_for_load(2) == 2  # nothing measured yet: the limit
    assert _threads.threads_for_load(2) == expected
    assert _threads.threads_for_load(1) == 1  # never above the limit


def test_an_old_measurement_is_not_trusted(adaptive):
    stat = FakeStat(1.0).install(adaptive)
    _threads.threads_for_load(2)
    stat.pause(60)  # a minute without a reading
    assert _threads.threads_for_load(2) == 2
    assert _threads.threads_for_load(2) == 1


def test_readings_closer_than_the_tick_keep_the_last_decision(adaptive):
    stat = FakeStat(1.0).install(adaptive)
    _threads.threads_for_load(2)
    assert _threads.threads_for_load(2) == 1
    stat.others = 0.0
    stat.pause(-0.09)  # the next reading comes 10 ms after the last
    assert _threads.threads_for_load(2) == 1
    assert _threads.threads_for_load(2) == 2  # 100 ms later


def test_block_sets_and_restores_the_thread_count(adaptive):
    FakeStat(1.0).install(adaptive)
    _threads.threads_for_load(2)
    with pytest.raises(RuntimeError, match="inside"):
        with _threads.load_aware_threads():
            assert torch.get_num_threads() == 1
            with _threads.load_aware_threads():  # nested: the outer decides
                assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("fix", ["environment", "script option"])
def test_a_thread_count_the_user_chose_is_kept(adaptive, fix):
    FakeStat(2.0).install(adaptive)
    if fix == "environment":
        adaptive.setenv("OMP_NUM_THREADS", "2")
    else:
        _threads.fix_thread_count(2)
    _threads.threads_for_load(2)
    with _threads.load_aware_threads():
        _threads.recheck_load()
        assert torch.get_num_threads() == 2


def test_meta_training_rechecks_before_each_episode(adaptive, digits):
    stat = FakeStat(0.0).install(adaptive)
    counts = []

    def record(net, **kwargs):
        counts.append(torch.get_num_threads())
        stat.others = 1.0  # another process starts after the first episode

    trainer = tiny_trainer(
        episodes_per_epoch=4, max_epochs=1, callbacks=[("record", _Record(record))]
    )
    trainer.fit(digits["X_base"], digits["y_base"])
    assert counts[:2] == [2, 1]
    assert torch.get_num_threads() == 2  # restored


def test_prediction_is_the_same_on_any_thread_count(adaptive):
    rng = np.random.default_rng(0)
    X, y = rng.random((120, 784), dtype=np.float32), np.repeat(np.arange(4), 30)
    torch.manual_seed(0)
    clf = PrototypicalClassifier(Conv4()).fit(X[::2], y[::2])
    stat = FakeStat(0.0).install(adaptive)
    _threads.threads_for_load(2)
    quiet = clf.predict_proba(X[1::2])
    stat.others = 1.0
    np.testing.assert_array_equal(clf.predict_proba(X[1::2]), quiet)


def test_a_busy_process_is_measured(adaptive):
    if len(_threads.os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    adaptive.undo()  # the real machine, the real /proc/stat
    if _threads._busy_seconds() is None:
        pytest.skip("the kernel does not expose /proc/stat")

    def idle_over(seconds):
        _threads._last = None
        _threads._measure()
        time.sleep(seconds)
        return _threads._measure()

    before = idle_over(0.5)
    if before < 1.2:
        pytest.skip(f"other work leaves {before:.1f} cores idle: no core to fill")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started
        during = idle_over(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert during < before - 0.5


class _Record(Callback):
    """Calls ``function`` at each batch's start."""

    def __init__(self, function):
        self.function = function

    def on_batch_begin(self, net, **kwargs):
        self.function(net, **kwargs)


def test_other_pools_follow_the_load_on_request(adaptive):
    from threadpoolctl import threadpool_info

    def pools():
        return {p["internal_api"]: p["num_threads"] for p in threadpool_info()}

    before = pools()
    stat = FakeStat(1.0).install(adaptive)
    _threads.threads_for_load(2)
    with _threads.load_aware_threads(other_pools=True):
        assert set(pools().values()) == {1}
    assert pools() == before
    stat.others = 0.0
    _threads.threads_for_load(2)
    with _threads.load_aware_threads(other_pools=True):
        assert pools() == before  # a quiet machine: nothing capped
