"""skorch callbacks for episodic meta-training: accuracy, divergence,
schedules, episode counts, checkpoints written all or nothing."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import pickle
import warnings
from collections import deque
from functools import partial
from numbers import Integral, Real

import torch
from skorch.callbacks import Callback, Checkpoint, LRScheduler
from skorch.callbacks.training import _check_f_arguments
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ._io import atomic_writer
from .distances import episode_logits

__all__ = [
    "AtomicCheckpoint",
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


class AtomicCheckpoint(Checkpoint):
    """skorch's ``Checkpoint``, each checkpoint written all or nothing.

    skorch writes a checkpoint's files (``params.pt``, ``optimizer.pt``,
    ``criterion.pt``, ``history.json``) one after the other, in place: a
    process killed meanwhile (``SIGTERM``, ``SIGKILL``, a node preempted)
    leaves a truncated file, or files of two different epochs, and
    ``LoadInitState`` then fails deep in torch's unpickler, or resumes from
    a mix. This subclass takes the same parameters and writes

    1. every file of the new checkpoint beside the committed ones, as
       ``<name>.next`` (each through a temporary file renamed when complete);
    2. the manifest ``<fn_prefix>checkpoint.json``, listing each file's name,
       size and SHA-256, atomically: this is the commit;
    3. each ``<name>.next`` renamed over ``<name>``.

    Loading (``LoadInitState(checkpoint)`` or
    ``trainer.load_params(checkpoint=checkpoint)`` on an
    :class:`~sklearn_protonet.EpisodicTrainer`) reads the manifest first: a
    process killed before step 2 leaves the previous checkpoint in force, one
    killed during step 3 is completed from the ``.next`` files, so a resume
    always continues from the last committed epoch. A file that matches
    neither (altered or deleted by hand) is a ``ValueError`` naming it.

    Unlike skorch's ``Checkpoint``, which reports a failed save through its
    ``sink`` and trains on, a save that fails (a full disk) raises: a run
    believed to be checkpointed must be.

    Parameters are those of ``skorch.callbacks.Checkpoint``; ``f_*`` must be
    file names (in ``dirname``), not open files.
    """

    @property
    def manifest_(self) -> str:
        """Path of the manifest that commits a checkpoint."""
        return os.path.join(self.dirname, self.fn_prefix + "checkpoint.json")

    def _targets(self, net) -> dict[str, str]:
        """The files of a checkpoint now: skorch's ``f_*`` name to its path."""
        module_files, other_files = _check_f_arguments(
            type(self).__name__, **self._f_kwargs()
        )
        targets = {}
        for key, value in module_files.items():
            name = "f_params" if key == "module_" else "f_" + key[:-1]
            targets[name] = self._format_target(net, value, -1)
        if other_files.get("f_history") is not None:
            targets["f_history"] = self.f_history_
        if other_files.get("f_pickle"):
            targets["f_pickle"] = self._format_target(net, other_files["f_pickle"], -1)
        for name, target in targets.items():
            if not isinstance(target, (str, os.PathLike)):
                raise TypeError(
                    f"AtomicCheckpoint writes files by name: {name} must be a "
                    f"file name, got {type(target).__name__}."
                )
        return targets

    def save_model(self, net):
        """Write the checkpoint's files, then commit them with the manifest."""
        targets = self._targets(net)
        written = [path + ".next" for path in targets.values()] + [self.manifest_]
        for path in written:  # temporary files of a writer killed last time
            folder, name = os.path.split(path)
            for stale in glob.glob(
                os.path.join(glob.escape(folder or "."), f".{glob.escape(name)}.*.part")
            ):
                with contextlib.suppress(OSError):
                    os.unlink(stale)
        for name, path in targets.items():  # 1. stage
            staged = path + ".next"
            if name == "f_pickle":
                with atomic_writer(staged) as handle:
                    pickle.dump(net, handle)
            else:
                net.save_params(**{name: staged}, use_safetensors=self.use_safetensors)
        entries = {
            name: {"file": os.path.basename(path), **_digest(path + ".next")}
            for name, path in targets.items()
        }
        manifest = json.dumps({"format": 1, "files": entries}, indent=1)
        with atomic_writer(self.manifest_) as handle:  # 2. commit
            handle.write(manifest.encode())
        for path in targets.values():  # 3. put in place
            os.replace(path + ".next", path)

    def committed_files(self) -> dict[str, str] | None:
        """The committed checkpoint's files (``f_*`` name to path), each
        checked against the manifest; ``None`` without a manifest.

        Files a killed process left as ``.next`` after committing are put in
        place here.

        Raises
        ------
        ValueError
            If a file matches the manifest neither under its name nor as
            ``.next``, or the manifest is unreadable; the message names the
            file.
        """
        try:
            with open(self.manifest_, "rb") as handle:
                manifest = json.loads(handle.read())
            entries = manifest["files"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"The checkpoint manifest {self.manifest_} is unreadable "
                f"({type(error).__name__}: {error}): it was altered after it "
                "was written. Delete the checkpoint folder's files to start "
                "afresh."
            ) from error
        files = {}
        for name, entry in entries.items():
            path = os.path.join(self.dirname, entry["file"])
            expected = {"size": entry["size"], "sha256": entry["sha256"]}
            if _digest(path) != expected:
                staged = path + ".next"
                if _digest(staged) != expected:
                    raise ValueError(
                        f"The checkpoint in {self.dirname or '.'} is incomplete: "
                        f"{path} is not the file its manifest {self.manifest_} "
                        f"lists ({expected['size']} bytes, SHA-256 "
                        f"{expected['sha256'][:12]}...), and no complete "
                        f"{os.path.basename(staged)} is there either. It was "
                        "changed or deleted after the checkpoint was written; "
                        "restore it, or delete the checkpoint's files to start "
                        "afresh."
                    )
                os.replace(staged, path)  # committed, then killed: finish
            files[name] = path
        return files


def _digest(path: str) -> dict | None:
    """A file's size and SHA-256, or None if it does not exist."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            size = handle.tell()
    except FileNotFoundError:
        return None
    return {"size": size, "sha256": digest.hexdigest()}
