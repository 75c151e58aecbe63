"""skorch callbacks for episodic meta-training."""

from __future__ import annotations

import warnings

from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import ReduceLROnPlateau

__all__ = ["EpisodeLRScheduler", "trained_episodes"]


def trained_episodes(history) -> int:
    """Number of training episodes (optimizer steps) recorded in a skorch history.

    Counts the batches that recorded a ``train_loss``, so an epoch cut short
    by ``KeyboardInterrupt`` counts the episodes it did train, and validation
    episodes are not counted.
    """
    return sum(
        "train_loss" in batch for row in history for batch in row.get("batches", [])
    )


class EpisodeLRScheduler(LRScheduler):
    """A skorch ``LRScheduler`` that resumes its schedule where a run stopped.

    skorch's ``LRScheduler`` rebuilds the PyTorch scheduler at each
    ``fit``/``partial_fit`` with ``last_epoch = len(history) - 1``: the number
    of *epochs*, even when it steps every batch. A run resumed from a
    ``Checkpoint`` (or continued with ``partial_fit``) therefore restarts a
    per-episode schedule at the wrong step. This subclass builds the scheduler
    at the first training episode, after ``LoadInitState`` (wherever it sits
    among the callbacks) has restored the history and optimizer, and replays
    the schedule from the initial learning rate over the episodes already
    trained, so the learning rate equals that of an uninterrupted run.

    Parameters are those of ``skorch.callbacks.LRScheduler``. The replay
    applies to ``step_every="batch"`` with a schedule that needs no score;
    other configurations behave as skorch's ``LRScheduler``.
    """

    def _replays(self) -> bool:
        return self.step_every == "batch" and self.policy_ is not ReduceLROnPlateau

    def on_train_begin(self, net, **kwargs):
        if not self._replays():
            return super().on_train_begin(net, **kwargs)
        self.lr_scheduler_ = None  # built at the first training episode

    def on_batch_begin(self, net, training=False, **kwargs):
        if not training or self.lr_scheduler_ is not None or not self._replays():
            return
        episodes = trained_episodes(net.history)
        for group in net.optimizer_.param_groups:
            # A restored optimizer keeps the schedule's starting point in
            # ``initial_lr``; a fresh one starts from its ``lr``.
            group["lr"] = group.setdefault("initial_lr", group["lr"])
        kwargs = {**self.kwargs, "last_epoch": -1}
        self.lr_scheduler_ = self.policy_(net.optimizer_, **kwargs)
        with warnings.catch_warnings():
            # "lr_scheduler.step() before optimizer.step()": intended here.
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(episodes):
                self.lr_scheduler_.step()
        self.batch_idx_ = episodes
