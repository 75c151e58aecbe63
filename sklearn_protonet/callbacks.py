"""skorch callbacks for episodic meta-training: accuracy, divergence,
schedules, episode counts."""

from __future__ import annotations

import math
import warnings
from collections import deque
from functools import partial
from numbers import Integral, Real

import torch
from skorch.callbacks import Callback, LRScheduler
from torch.optim.lr_scheduler import ReduceLROnPlateau

from .distances import episode_logits

__all__ = [
    "DivergenceCheck",
    "EpisodeAccuracy",
    "EpisodeLRScheduler",
    "cosine_lr_schedule",
    "one_cycle_lr_schedule",
    "paper_lr_schedule",
    "trained_episodes",
]


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


def paper_lr_schedule(step_size: int = 2000, gamma: float = 0.5) -> LRScheduler:
    """The paper's schedule: halve the learning rate every 2,000 episodes.

    Returns a skorch ``LRScheduler`` callback stepping once per episode; pass
    it in ``callbacks``. It is an
    :class:`~sklearn_protonet.callbacks.EpisodeLRScheduler`, so a run resumed
    from a ``Checkpoint`` continues the schedule at the episode where it
    stopped.
    """
    return EpisodeLRScheduler(
        policy=torch.optim.lr_scheduler.StepLR,
        step_size=step_size,
        gamma=gamma,
        step_every="batch",
    )


def _warmup_cosine(episode: int, n_episodes: int, warmup: int, floor: float) -> float:
    if episode < warmup:
        return (episode + 1) / warmup
    progress = min(1.0, (episode - warmup) / max(1, n_episodes - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def cosine_lr_schedule(
    n_episodes: int, warmup_episodes: int = 0, final_fraction: float = 0.0
) -> LRScheduler:
    """Linear warm-up, then cosine decay to ``final_fraction`` of the rate.

    Over ``n_episodes`` the learning rate rises linearly from ``lr /
    warmup_episodes`` to ``lr`` in ``warmup_episodes`` episodes, then follows
    half a cosine down to ``final_fraction * lr`` at episode ``n_episodes``
    (and stays there). Unlike the paper's halving, the rate approaches its
    floor smoothly by the end of a fixed budget, so a short run still ends
    at a small rate. Resumes like :func:`paper_lr_schedule`.

    Parameters
    ----------
    n_episodes : int
        Length of the schedule in training episodes.
    warmup_episodes : int, default=0
    final_fraction : float, default=0.0
        Rate at the end, as a fraction of ``lr``.

    Returns
    -------
    EpisodeLRScheduler
        A callback stepping once per episode.
    """
    if not 0 <= warmup_episodes < n_episodes:
        raise ValueError(
            f"warmup_episodes must be in [0, n_episodes={n_episodes}), got "
            f"{warmup_episodes}."
        )
    if not 0 <= final_fraction <= 1:
        raise ValueError(f"final_fraction must be in [0, 1], got {final_fraction}.")
    return EpisodeLRScheduler(
        policy=torch.optim.lr_scheduler.LambdaLR,
        lr_lambda=partial(
            _warmup_cosine,
            n_episodes=n_episodes,
            warmup=warmup_episodes,
            floor=final_fraction,
        ),
        step_every="batch",
    )


def one_cycle_lr_schedule(
    n_episodes: int, max_lr: float, pct_start: float = 0.3
) -> LRScheduler:
    """Smith's one-cycle schedule (``torch.optim.lr_scheduler.OneCycleLR``).

    The rate rises from ``max_lr / 25`` to ``max_lr`` over the first
    ``pct_start`` of ``n_episodes``, then anneals (cosine) to ``max_lr /
    1e4`` at episode ``n_episodes``; Adam's first momentum coefficient
    cycles inversely. The trainer's ``lr`` is ignored. Training past
    ``n_episodes`` is an error in PyTorch, so give the trainer at most
    ``n_episodes`` episodes.

    Returns
    -------
    EpisodeLRScheduler
        A callback stepping once per episode.
    """
    return EpisodeLRScheduler(
        policy=torch.optim.lr_scheduler.OneCycleLR,
        max_lr=max_lr,
        # +1: the scheduler steps after every episode, the last one included.
        total_steps=n_episodes + 1,
        pct_start=pct_start,
        step_every="batch",
    )


class EpisodeAccuracy(Callback):
    """Records each episode's query accuracy as ``train_acc`` / ``valid_acc``."""

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        with torch.no_grad():
            target = {k: v.to(y_pred.device) for k, v in batch[1].items()}
            logits, codes = episode_logits(y_pred.detach(), target, net.metric)
            accuracy = (logits.argmax(1) == codes).float().mean().item()
        net.history.record_batch("train_acc" if training else "valid_acc", accuracy)


class DivergenceCheck(Callback):
    """Stops a meta-training whose loss has diverged while staying finite.

    A learning rate far too high makes the loss explode (1e20 with
    ``lr=1e4``) long before it overflows to inf or NaN, which the trainer
    catches on its own. The rule: training stops with ``FloatingPointError``
    once the mean training loss of the last ``window`` episodes is above
    ``factor`` times the *starting value*. The starting value is the loss of
    the first training episode in the net's history (before any update, also
    after a resume from a checkpoint or a ``partial_fit``), but at least
    ``log(n_way)``, the loss of a uniform guess, so that a run starting from
    an already trained encoder (a loss near 0) is not stopped by ordinary
    noise. A mean, not a count of bad episodes: a diverged encoder's
    embeddings are so large that an episode's loss is either about 0 (every
    query nearest its own prototype) or enormous, so a diverged run still
    has many episodes of loss 0.

    :class:`~sklearn_protonet.EpisodicTrainer` has this callback by default
    under the name ``"divergence_check"``: turn it off with
    ``callbacks__divergence_check=None`` or change its rule with, e.g.,
    ``callbacks__divergence_check__factor=1e4``.

    Parameters
    ----------
    factor : float, default=100.0
        How many times its starting value the mean loss must exceed.
        ``tests/test_trainer.py`` measures the margin on the digits.
    window : int, default=20
        Over how many consecutive training episodes the loss is averaged;
        no check before that many episodes of the current ``fit``.
    """

    def __init__(self, factor: float = 100.0, window: int = 20):
        self.factor = factor
        self.window = window

    def initialize(self):
        if not (isinstance(self.factor, Real) and self.factor > 1):
            raise ValueError(
                f"DivergenceCheck's factor must be a number > 1, got {self.factor!r}."
            )
        if not (isinstance(self.window, Integral) and self.window >= 1):
            raise ValueError(
                f"DivergenceCheck's window must be an int >= 1, got {self.window!r}."
            )
        self.start_, self.recent_ = None, deque(maxlen=self.window)
        return self

    def on_train_begin(self, net, **kwargs):
        # The history may be another one now (LoadInitState, partial_fit):
        # its start is read at the first episode.
        self.start_, self.recent_ = None, deque(maxlen=self.window)

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        batches = net.history[-1, "batches"]
        loss = batches[-1].get("train_loss")
        if loss is None:
            return
        if self.start_ is None:
            self.start_ = _first_train_loss(net.history)
        self.recent_.append(loss)
        n_way = getattr(net, "n_way", None)
        reference = max(self.start_, math.log(n_way) if n_way else 0.0)
        mean = sum(self.recent_) / len(self.recent_)
        if len(self.recent_) < self.window or not mean > self.factor * reference:
            return
        episode = sum("train_loss" in batch for batch in batches)
        rates = {group["lr"] for group in net.optimizer_.param_groups}
        lr = f"lr={net.lr}"
        if rates != {net.lr}:  # a schedule changed it
            lr += f", now {', '.join(f'{rate:.3g}' for rate in sorted(rates))}"
        raise FloatingPointError(
            f"Meta-training diverged: at epoch {len(net.history)}, episode "
            f"{episode}, the mean loss of the last {self.window} episodes is "
            f"{mean:.3g}, more than {self.factor:g} times its starting value "
            f"({reference:.3g}). The likely cause is a learning rate too high "
            f"for the encoder ({lr}): lower it (the paper uses 1e-3), or check "
            "the training data for extreme values. To train regardless, pass "
            "callbacks__divergence_check=None."
        )


def _first_train_loss(history) -> float:
    """The loss of the first training episode recorded in ``history``."""
    for row in history:
        for batch in row.get("batches", []):
            if "train_loss" in batch:
                return float(batch["train_loss"])
    raise ValueError("The history holds no training episode yet.")
