"""Interrupted meta-training: KeyboardInterrupt keeps the work done, and a run
resumed from a skorch ``Checkpoint`` continues exactly where it stopped
(history, episodes, learning-rate schedule, weights).

The module is an MLP without dropout, so training draws random numbers only
for the episodes (NumPy, seeded by ``[seed_, 1, len(history)]``); modules that
draw torch random numbers while training (dropout, ``RandomShift``) resume
reproducibly but on another stream than the uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, Checkpoint, LoadInitState, LRScheduler

from sklearn_protonet import paper_lr_schedule
from sklearn_protonet.callbacks import (
    AtomicCheckpoint,
    EpisodeLRScheduler,
    trained_episodes,
)

from .conftest import ROOT, tiny_trainer

X = np.random.RandomState(0).rand(60, 6).astype(np.float32)
Y = np.repeat(np.arange(6), 10)
EPISODES_PER_EPOCH = 5
STEP_SIZE = 3  # halve the learning rate every 3 episodes: several halvings


class RecordEpisodes(Callback):
    """Keeps each training episode's input rows."""

    def initialize(self):
        self.episodes_ = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.episodes_.append(batch[0].clone())


class Snapshot(Callback):
    """Copies the weights after a given number of training episodes."""

    def __init__(self, after: int):
        self.after = after

    def on_batch_end(self, net, training=False, **kwargs):
        if training and trained_episodes(net.history) == self.after:
            self.weights_ = _weights(net)


class Interrupt(Callback):
    """Raises KeyboardInterrupt after a given number of training episodes."""

    def __init__(self, after: int):
        self.after = after

    def on_batch_end(self, net, training=False, **kwargs):
        if training and trained_episodes(net.history) == self.after:
            raise KeyboardInterrupt


def _weights(net) -> dict:
    return {k: v.detach().clone() for k, v in net.module_.state_dict().items()}


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _trainer(max_epochs, *callbacks, scheduler=None):
    return tiny_trainer(
        max_epochs=max_epochs,
        episodes_per_epoch=EPISODES_PER_EPOCH,
        callbacks=[
            ("lr", scheduler or paper_lr_schedule(step_size=STEP_SIZE)),
            ("episodes", RecordEpisodes()),
            *callbacks,
        ],
    )


def _batch_lrs(net) -> list[float]:
    return [lr for epoch in net.history[:, "batches", :, "event_lr"] for lr in epoch]


def _lr(net) -> float:
    return net.optimizer_.param_groups[0]["lr"]


def test_keyboard_interrupt_keeps_weights_and_history():
    stop = 2 * EPISODES_PER_EPOCH + 2  # two episodes into the third epoch
    reference = _trainer(4, ("snapshot", Snapshot(stop))).fit(X, Y)
    interrupted = _trainer(4, ("stop", Interrupt(stop))).fit(X, Y)  # no raise

    assert len(interrupted.history) == 3
    assert trained_episodes(interrupted.history) == stop
    assert interrupted.history[:2, "train_loss"] == reference.history[:2, "train_loss"]
    assert "train_loss" not in interrupted.history[-1]  # the cut epoch has no total
    _assert_same_weights(
        _weights(interrupted), dict(reference.callbacks_)["snapshot"].weights_
    )
    assert _lr(interrupted) == pytest.approx(1e-3 * 0.5 ** (stop // STEP_SIZE))
    assert interrupted.transform(X).shape == (len(X), 16)


@pytest.mark.parametrize("load_first", [False, True], ids=["load-last", "load-first"])
def test_resume_from_checkpoint_continues_history_schedule_and_episodes(
    tmp_path, load_first
):
    full = _trainer(4).fit(X, Y)
    _trainer(2, ("checkpoint", Checkpoint(monitor=None, dirname=tmp_path))).fit(X, Y)

    checkpoint = Checkpoint(monitor=None, dirname=tmp_path)
    load = ("load", LoadInitState(checkpoint))
    resumed = _trainer(2, ("checkpoint", checkpoint))
    # LoadInitState may come before or after the scheduler in the callbacks.
    resumed.callbacks.insert(0 if load_first else len(resumed.callbacks), load)
    resumed.fit(X, Y)

    assert len(resumed.history) == 4
    assert resumed.history[:, "train_loss"] == full.history[:, "train_loss"]
    assert resumed.history[:, "train_acc"] == full.history[:, "train_acc"]
    assert _batch_lrs(resumed) == _batch_lrs(full)
    assert _lr(resumed) == _lr(full) == 1e-3 * 0.5 ** (20 // STEP_SIZE)
    episodes = dict(full.callbacks_)["episodes"].episodes_
    resumed_episodes = dict(resumed.callbacks_)["episodes"].episodes_
    assert len(resumed_episodes) == 2 * EPISODES_PER_EPOCH
    for a, b in zip(resumed_episodes, episodes[-len(resumed_episodes) :], strict=True):
        assert torch.equal(a, b)
    _assert_same_weights(_weights(resumed), _weights(full))


def test_resume_with_load_params_and_partial_fit(tmp_path):
    full = _trainer(4).fit(X, Y)
    checkpoint = Checkpoint(monitor=None, dirname=tmp_path)
    _trainer(2, ("checkpoint", checkpoint)).fit(X, Y)

    resumed = _trainer(4).initialize()
    resumed.load_params(checkpoint=checkpoint)
    resumed.partial_fit(X, Y, epochs=2)
    assert resumed.history[:, "train_loss"] == full.history[:, "train_loss"]
    assert _batch_lrs(resumed) == _batch_lrs(full)
    _assert_same_weights(_weights(resumed), _weights(full))


def test_partial_fit_continues_the_schedule():
    full = _trainer(3).fit(X, Y)
    stepwise = _trainer(1).fit(X, Y)
    stepwise.partial_fit(X, Y)
    stepwise.partial_fit(X, Y)
    assert _batch_lrs(stepwise) == _batch_lrs(full)
    assert stepwise.history[:, "train_loss"] == full.history[:, "train_loss"]


def test_skorch_lr_scheduler_restarts_a_per_batch_schedule(tmp_path):
    """What EpisodeLRScheduler fixes: skorch resumes it at step len(history)-1."""

    def stock():
        return LRScheduler(
            policy=torch.optim.lr_scheduler.StepLR,
            step_size=STEP_SIZE,
            gamma=0.5,
            step_every="batch",
        )

    full = _trainer(4, scheduler=stock()).fit(X, Y)
    checkpoint = Checkpoint(monitor=None, dirname=tmp_path)
    _trainer(2, ("checkpoint", checkpoint), scheduler=stock()).fit(X, Y)
    resumed = _trainer(2, ("checkpoint", checkpoint), scheduler=stock())
    resumed.callbacks.insert(0, ("load", LoadInitState(checkpoint)))
    resumed.fit(X, Y)
    assert _batch_lrs(resumed) != _batch_lrs(full)
    assert isinstance(paper_lr_schedule(), EpisodeLRScheduler)


# -- killed while checkpointing -----------------------------------------------

# A meta-training that checkpoints after every one-episode epoch (so that most
# of its time is spent writing checkpoints) and resumes from the checkpoint
# with LoadInitState: the documented way to survive a killed process.
_CHILD = """
import sys
from sklearn.datasets import load_digits
from skorch.callbacks import Callback, Checkpoint, LoadInitState
from sklearn_protonet import EpisodicTrainer
from sklearn_protonet.callbacks import AtomicCheckpoint
from sklearn_protonet.modules import MLP

kind, dirname, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
X, y = load_digits(return_X_y=True)

class Started(Callback):
    def on_epoch_begin(self, net, **kwargs):
        print("epoch", len(net.history), flush=True)

checkpoint = {"atomic": AtomicCheckpoint, "skorch": Checkpoint}[kind](
    monitor=None, dirname=dirname
)
trainer = EpisodicTrainer(
    MLP, module__hidden_sizes=(32,), module__out_features=16, n_way=3, n_shot=2,
    n_query=2, episodes_per_epoch=1, max_epochs=epochs, train_split=None,
    verbose=0, random_state=0,
    callbacks=[checkpoint, LoadInitState(checkpoint), Started()],
)
try:
    trainer.fit(X / 16, y)
except ValueError as error:
    print("ValueError:", error, flush=True)
    sys.exit(3)
print("done", len(trainer.history), trainer.history[:, "epoch"], flush=True)
"""


def _run(kind, dirname, epochs, kill=None):
    """Run the child; with ``kill=(signal, delay)``, send the signal that many
    seconds after its first epoch began. Returns its exit code and output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, kind, str(dirname), str(epochs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = []
    if kill is not None:
        lines.append(child.stdout.readline())  # training has begun
        time.sleep(kill[1])
        child.send_signal(kill[0])
    out, _ = child.communicate(timeout=120)
    return child.returncode, "".join(lines) + out


# Several moments in the run, each signal: first epochs, later ones, and
# (one-episode epochs) mostly while a checkpoint is being written.
KILLS = [
    (signal.SIGKILL, 0.0),
    (signal.SIGTERM, 0.05),
    (signal.SIGKILL, 0.15),
    (signal.SIGTERM, 0.4),
]


def test_atomic_checkpoint_resumes_after_any_kill(tmp_path):
    """Killed again and again, each run resumes from the last committed
    checkpoint: epochs numbered without gap or repeat, to the end."""
    for kill in KILLS:
        code, out = _run("atomic", tmp_path, 1000, kill)
        assert code == -kill[0], out  # killed by the signal, no error before
    code, out = _run("atomic", tmp_path, 2)
    assert code == 0, out
    done = out.splitlines()[-1].split(" ", 2)
    n_epochs = int(done[1])
    assert n_epochs > 2  # it did resume from the killed runs' checkpoints
    assert done[2] == str(list(range(1, n_epochs + 1)))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers


def test_skorch_checkpoint_of_the_trainer_never_holds_a_cut_file(tmp_path):
    """skorch's own Checkpoint writes through the trainer's save_params, which
    writes each file atomically: after any kill, a resume continues (its files
    may come from two consecutive epochs; AtomicCheckpoint's may not)."""
    for kill in KILLS[1:3]:
        code, out = _run("skorch", tmp_path, 1000, kill)
        assert code == -kill[0], out
        for path in tmp_path.iterdir():
            assert path.stat().st_size > 0, path
    code, out = _run("skorch", tmp_path, 2)
    assert code == 0, out


def _checkpointed(tmp_path, checkpoint, epochs=2):
    return _trainer(epochs, ("checkpoint", checkpoint)).fit(X, Y)


def _resume(checkpoint, epochs=1):
    resumed = _trainer(epochs, ("load", LoadInitState(checkpoint)))
    return resumed.fit(X, Y)


def test_a_cut_file_is_named_not_a_bare_eoferror(tmp_path):
    """What a process killed mid-write left before files were written
    atomically: criterion.pt at 0 bytes, a cut history. The resume names the
    file instead of failing in torch's unpickler with a bare EOFError."""
    checkpoint = Checkpoint(monitor=None, dirname=str(tmp_path))
    _checkpointed(tmp_path, checkpoint)
    (tmp_path / "criterion.pt").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"criterion.pt \(EOFError; the file has 0 bytes"
    ):
        _resume(checkpoint)
    (tmp_path / "history.json").write_text('[{"epoch": 1, "batches": [')
    with pytest.raises(ValueError, match=r"history.json \(JSONDecodeError"):
        _resume(checkpoint)


def test_skorch_checkpoint_with_a_missing_file_is_named(tmp_path):
    checkpoint = Checkpoint(monitor=None, dirname=str(tmp_path))
    _checkpointed(tmp_path, checkpoint)
    (tmp_path / "optimizer.pt").unlink()
    with pytest.raises(ValueError, match=r"incomplete: .*optimizer.pt missing"):
        _resume(checkpoint)


def test_atomic_checkpoint_completes_a_commit_cut_short(tmp_path):
    """Killed after the manifest (the commit) but before every .next file was
    put in place: the resume puts them in place and continues from the
    committed epoch."""
    checkpoint = AtomicCheckpoint(monitor=None, dirname=str(tmp_path))
    reference = _checkpointed(tmp_path, checkpoint, epochs=3)
    old = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    second = _trainer(
        1, ("checkpoint", checkpoint), ("load", LoadInitState(checkpoint))
    )
    second.fit(X, Y)  # epoch 4, committed
    for name in ("params.pt", "history.json"):  # as if killed before renaming
        (tmp_path / f"{name}.next").write_bytes((tmp_path / name).read_bytes())
        (tmp_path / name).write_bytes(old[name])
    resumed = _resume(AtomicCheckpoint(monitor=None, dirname=str(tmp_path)))
    assert len(resumed.history) == 5
    assert resumed.history[:3, "train_loss"] == reference.history[:, "train_loss"]
    assert not list(tmp_path.glob("*.next"))


def test_atomic_checkpoint_names_a_file_its_manifest_does_not_list(tmp_path):
    checkpoint = AtomicCheckpoint(monitor=None, dirname=str(tmp_path))
    _checkpointed(tmp_path, checkpoint)
    manifest = json.loads((tmp_path / "checkpoint.json").read_text())
    assert set(manifest["files"]) == {
        "f_params",
        "f_optimizer",
        "f_criterion",
        "f_history",
    }
    with open(tmp_path / "optimizer.pt", "ab") as handle:
        handle.write(b"0")
    with pytest.raises(ValueError, match=r"incomplete: .*optimizer.pt is not the"):
        _resume(checkpoint)


def test_atomic_checkpoint_without_files_starts_afresh(tmp_path):
    checkpoint = AtomicCheckpoint(monitor=None, dirname=str(tmp_path / "none"))
    assert len(_resume(checkpoint, epochs=2).history) == 2
