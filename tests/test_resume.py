"""Interrupted meta-training: KeyboardInterrupt keeps the work done, and a run
resumed from a skorch ``Checkpoint`` continues exactly where it stopped
(history, episodes, learning-rate schedule, weights).

The module is an MLP without dropout, so training draws random numbers only
for the episodes (NumPy, seeded by ``[seed_, 1, len(history)]``); modules that
draw torch random numbers while training (dropout, ``RandomShift``) resume
reproducibly but on another stream than the uninterrupted run.
"""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, Checkpoint, LoadInitState, LRScheduler

from sklearn_protonet import paper_lr_schedule
from sklearn_protonet.callbacks import EpisodeLRScheduler, trained_episodes

from .conftest import tiny_trainer

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
