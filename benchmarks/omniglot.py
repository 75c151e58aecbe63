"""The paper's Omniglot experiment (Snell et al. 2017, Table 1), end to end.

    python benchmarks/omniglot.py --profile ten-minutes  # 10 min of training, 2 cores
    python benchmarks/omniglot.py --profile ten-minutes-pair  # two encoders, joined
    python benchmarks/omniglot.py --profile fast     # < 20 min on 2 CPU cores
    python benchmarks/omniglot.py --profile cpu      # ~45 min on 2 CPU cores
    python benchmarks/omniglot.py --profile paper --device cuda
    python benchmarks/omniglot.py --profile smoke    # minutes: learning happens
    python benchmarks/omniglot.py --profile robust   # an encoder for other domains
    python benchmarks/omniglot.py --profile symbols  # and for images as they come
    python benchmarks/omniglot.py --profile one-encoder  # every domain, 30 min
    python benchmarks/omniglot.py --profile one-encoder-scratch  # both members trained

Meta-trains Conv4 on the Vinyals ``trainval`` classes with 60-way episodes
(30-way for fast, 90-way with the all-pairs loss for ten-minutes), then
evaluates 1,000 test episodes for 5-way and 20-way, 1-shot and 5-shot.
Writes benchmarks/results/omniglot-<profile>.json and .md; with
--save-weights DIR, also the trained encoders as
DIR/omniglot-conv4-<shot>shot.safetensors, or under the profile's name
(DIR/omniglot-conv4-robust.safetensors for the robust profile; the
one-encoder profile's members, the shipped paper's encoder and the two it
trains, joined side by side as DIR/omniglot-conv4-one-encoder.safetensors).
The shipped ones were made with --save-weights sklearn_protonet/pretrained.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _common import environment, frozen_embeddings, markdown_table, write_results
from joblib import Parallel, delayed
from skorch.callbacks import Callback, ProgressBar
from torch import nn

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier, runtime
from sklearn_protonet.callbacks import (
    _warmup_cosine,
    cosine_lr_schedule,
    one_cycle_lr_schedule,
    paper_lr_schedule,
    trained_episodes,
)
from sklearn_protonet.datasets import load_omniglot
from sklearn_protonet.datasets._omniglot import INPUT_CONTRACT
from sklearn_protonet.hardware import training_autocast_dtype
from sklearn_protonet.model_selection import EpisodicSplit, episodic_score
from sklearn_protonet.modules import (
    Conv4,
    RandomAffine,
    RandomBlur,
    RandomNoise,
    RandomPaper,
    RandomResolution,
    RandomStrokeWidth,
)
from sklearn_protonet.persistence import save_encoder
from sklearn_protonet.pretrained import load_pretrained
from sklearn_protonet.script_options import add_script_options, apply_script_options

#: Table 1 of the paper and a public PyTorch reimplementation (orobix), in %.
PAPER = {
    "5-way 1-shot": 98.8,
    "5-way 5-shot": 99.7,
    "20-way 1-shot": 96.0,
    "20-way 5-shot": 98.9,
}
OROBIX = {
    "5-way 1-shot": 98.5,
    "5-way 5-shot": 99.6,
    "20-way 1-shot": 95.1,
    "20-way 5-shot": 98.6,
}
CELLS = [(5, 1), (5, 5), (20, 1), (20, 5)]
#: Images that set the factor of each member of a joined encoder.
N_SCALE_IMAGES = 5000


@dataclass(frozen=True)
class ModelRecipe:
    """How to meta-train one Conv4 encoder on Omniglot.

    ``n_shot`` is the training shot; the paper matches it to the test shot,
    so a profile trains one encoder per shot it is scored on.
    """

    n_shot: int
    n_episodes: int
    halve_every: int = 2000
    n_way: int = 60
    n_query: int = 5
    lr: float = 1e-3
    max_minutes: float | None = None
    #: None (float32), "bfloat16", or "auto": the precision that pays on the
    #: machine (sklearn_protonet.hardware.training_autocast_dtype).
    autocast_dtype: str | None = None
    #: "step" (the paper's halving every ``halve_every`` episodes), "cosine"
    #: (warm-up then cosine decay over ``n_episodes``), "cosine-budget" (the
    #: same decay over whichever ends first, ``n_episodes`` or
    #: ``max_minutes``: sized to the machine, ``CosineOverBudget``) or
    #: "one-cycle".
    schedule: str = "step"
    warmup_episodes: int = 0
    #: Meta-train on randomly degraded images (``robust_augmentation``): an
    #: encoder for other domains than Omniglot's crisp strokes.
    augment: bool = False
    #: With ``augment``, also the conditions of photographed images: blur,
    #: grey and unevenly lit paper, faint ink, sensor noise.
    conditions: bool = False
    #: Train small: the Conv4 sees the 28x28 inputs resized to (height,
    #: width) by a ``Resized`` layer before it; at 20x20 an episode trains
    #: nearly twice as fast (benchmarks/time_to_accuracy.py; not saved).
    resize_to: tuple[int, int] | None = None
    #: The trainer's ``episode_loss``: "prototypical" (the paper's) or
    #: "nca" (every row of an episode against every other row).
    episode_loss: str = "prototypical"

    @property
    def label(self) -> str:
        """The training shot, and the augmentation if any: ``"1-shot"``,
        ``"1-shot augmented"``, ``"1-shot augmented + conditions"``."""
        label = f"{self.n_shot}-shot"
        if self.augment:
            label += " augmented" + (" + conditions" if self.conditions else "")
        return label


@dataclass(frozen=True)
class TrainingProfile:
    """A training budget: the encoders to train and how many test episodes.

    ``n_jobs`` encoders train side by side in separate processes, each on
    ``torch threads // n_jobs`` threads. On 2 CPU cores that does nearly as
    many episodes per second as training them one after the other on both
    cores (0.9x to 1.0x, ``benchmarks/speed.py``), and lets each encoder use
    the whole time limit instead of a share fixed in advance.
    """

    name: str
    models: tuple[ModelRecipe, ...]
    n_test_episodes: int = 1000
    n_jobs: int = 1
    #: ``--save-weights`` file name (``{shot}`` is the training shot).
    weights_name: str = "omniglot-conv4-{shot}shot"
    #: Join the encoders side by side into one (``join_side_by_side``),
    #: which scores every cell and is saved as one file: members trained on
    #: different images, one encoder.
    joined: bool = False
    #: Shipped encoders (``load_pretrained`` names) that a joined profile
    #: takes as they are, in front of the members it trains: the paper's
    #: encoder, meta-trained once by the ``cpu`` profile, need not be
    #: trained again to serve Omniglot's clean strokes.
    starts_from: tuple[str, ...] = ()
    #: How a joined profile weighs its members (``join_side_by_side``):
    #: "norm" or "within-class".
    member_scaling: str = "norm"


#: The fast profile's encoder (the robust profile's with augmentation).
FAST_RECIPE = ModelRecipe(
    n_shot=1,
    n_episodes=20_000,
    n_way=30,
    lr=2e-3,
    schedule="cosine",
    warmup_episodes=200,
    max_minutes=19,
    autocast_dtype="auto",
)

#: Ten minutes of training on 2 cores (AVX2, float32): the fast recipe's
#: schedule sized to the episodes that fit, on 90-way episodes of two images
#: a class, each image compared with every other by the all-pairs ("nca")
#: loss: the paper's episodes compare 90 queries with 90 support images.
TEN_MINUTE_RECIPE = replace(
    FAST_RECIPE,
    n_way=90,
    n_query=1,
    episode_loss="nca",
    n_episodes=5500,
    max_minutes=10,
)

#: The one-encoder profile's trained members, side by side on one core each
#: for 27.5 minutes: the ten-minute recipe on degraded characters
#: (``robust_augmentation``), one of them also in the conditions of
#: photographs (``conditions``), each cosine schedule sized to the episodes
#: the machine trains in that time (``CosineOverBudget``).
ONE_ENCODER_MEMBER = replace(
    TEN_MINUTE_RECIPE,
    n_episodes=40_000,
    max_minutes=27.5,
    augment=True,
    schedule="cosine-budget",
)
ONE_ENCODER_MEMBERS = (ONE_ENCODER_MEMBER, replace(ONE_ENCODER_MEMBER, conditions=True))
#: What 30 minutes give without the paper's encoder: the ten-minute recipe
#: on clean characters, then on degraded ones for twice as long.
ONE_ENCODER_SCRATCH_MEMBERS = (
    replace(TEN_MINUTE_RECIPE, n_episodes=5100, max_minutes=9.5),
    replace(TEN_MINUTE_RECIPE, n_episodes=9200, max_minutes=19, augment=True),
)

PROFILES = {
    # The paper's schedule: 1-shot and 5-shot training, halving every 2,000
    # episodes; meant for a GPU.
    "paper": TrainingProfile(
        "paper",
        models=(
            ModelRecipe(n_shot=1, n_episodes=40_000),
            ModelRecipe(n_shot=5, n_episodes=40_000),
        ),
    ),
    # Training + evaluation within 45 minutes on 2 CPU cores: both encoders
    # at once, one core each, in bfloat16 mixed precision where the CPU
    # computes it natively (float32 elsewhere), the halving
    # schedule compressed to the episodes that fit when malloc keeps freed
    # memory (this script's default).
    "cpu": TrainingProfile(
        "cpu",
        models=(
            ModelRecipe(
                n_shot=1,
                n_episodes=12_000,
                halve_every=3000,
                max_minutes=39,
                autocast_dtype="auto",
            ),
            ModelRecipe(
                n_shot=5,
                n_episodes=7500,
                halve_every=1875,
                max_minutes=39,
                autocast_dtype="auto",
            ),
        ),
        n_jobs=2,
    ),
    # The paper's accuracy within 20 minutes on 2 CPU cores, everything
    # included: one 1-shot encoder for every cell (it scores the 5-shot cells
    # as well as the cpu profile's 5-shot encoder; one per shot doubles the
    # time), 30-way episodes at twice the rate with warm-up and cosine decay
    # sized to the budget (benchmarks/time_to_accuracy.py compares it with
    # the halving schedule), in the precision that pays on the machine.
    "fast": TrainingProfile("fast", models=(FAST_RECIPE,)),
    # Aims at the paper's accuracy after ten minutes of training on 2 CPU
    # cores: the fast profile's recipe on episodes where every image meets
    # every other (benchmarks/time_to_accuracy.py, recipe nca-10min).
    "ten-minutes": TrainingProfile("ten-minutes", models=(TEN_MINUTE_RECIPE,)),
    # The ten-minute recipe twice, side by side on one core each (two
    # processes on one thread each do more episodes per second in all than
    # one process on two threads), the two encoders joined into one.
    "ten-minutes-pair": TrainingProfile(
        "ten-minutes-pair",
        models=(replace(TEN_MINUTE_RECIPE, n_episodes=3000),) * 2,
        n_jobs=2,
        weights_name="omniglot-conv4-ten-minutes-pair",
        joined=True,
    ),
    # An encoder for other domains (users' own images): the fast profile's
    # recipe on randomly rotated, scaled, thickened and blurred characters
    # (robust_augmentation). Omniglot itself loses a little; digits gain
    # much (benchmarks/cross_domain.py). Shipped as omniglot-conv4-robust.
    "robust": TrainingProfile(
        "robust",
        models=(replace(FAST_RECIPE, n_episodes=12_000, max_minutes=25, augment=True),),
        weights_name="omniglot-conv4-robust",
    ),
    # One encoder for symbols as they come: the robust recipe with the
    # conditions of photographed images added (blur, grey paper, faint ink,
    # noise), by episodes rather than minutes. Shipped as
    # omniglot-conv4-symbols, the own-images default.
    "symbols": TrainingProfile(
        "symbols",
        models=(
            replace(
                FAST_RECIPE,
                n_episodes=12_000,
                max_minutes=None,
                augment=True,
                conditions=True,
            ),
        ),
        weights_name="omniglot-conv4-symbols",
    ),
    # One encoder for every symbol domain in at most 30 minutes on 2 cores:
    # the paper's shipped encoder (Omniglot's clean strokes) joined side by
    # side with two members trained at once, one core each, on degraded
    # characters, one also in photographs' conditions, for all the time
    # there is (benchmarks/held_out_domains.py scores it on other domains).
    # Shipped as omniglot-conv4-one-encoder, the own-images default.
    "one-encoder": TrainingProfile(
        "one-encoder",
        models=ONE_ENCODER_MEMBERS,
        n_jobs=2,
        weights_name="omniglot-conv4-one-encoder",
        joined=True,
        starts_from=("omniglot-conv4-1shot",),
        member_scaling="within-class",
    ),
    # 30 minutes with both members trained, one after the other (clean,
    # then degraded characters): at the paper's level on Omniglot, below
    # the robust encoder on digits.
    "one-encoder-scratch": TrainingProfile(
        "one-encoder-scratch",
        models=ONE_ENCODER_SCRATCH_MEMBERS,
        weights_name="omniglot-conv4-one-encoder-scratch",
        joined=True,
    ),
    # A couple of minutes: proves that learning happens (tests, smoke runs).
    # One 5-shot encoder serves every cell.
    "smoke": TrainingProfile(
        "smoke",
        models=(ModelRecipe(n_shot=5, n_episodes=150, n_way=20, halve_every=10_000),),
        n_test_episodes=200,
    ),
}


def robust_augmentation(shape=(1, 28, 28), conditions: bool = False) -> nn.Sequential:
    """The ``robust`` profile's training-time augmentation, layers to put
    before the encoder (identities in evaluation mode): rotations up to 15
    degrees, scalings up to 15 % and shifts up to 2 pixels; strokes a pixel
    thicker for 30 % of the images; half of them shrunk to 7 to 14 pixels and
    enlarged back (blurred). With ``conditions`` (the ``symbols`` profile),
    a fifth of the images each also get a Gaussian blur, grey unevenly lit
    paper with faint ink, and sensor noise."""
    layers = [
        RandomAffine(shape, max_shift=2),
        RandomStrokeWidth(shape, p=0.3),
        RandomResolution(shape, min_size=7, max_size=14, p=0.5),
    ]
    if conditions:
        layers += [
            RandomBlur(shape, p=0.2),
            RandomPaper(shape, p=0.2),
            RandomNoise(shape, p=0.2),
        ]
    return nn.Sequential(*layers)


def encoder_for_shot(encoders: dict[int, object], n_shot: int):
    """The encoder trained with ``n_shot`` support examples, else the one
    trained with the nearest shot."""
    return encoders[min(encoders, key=lambda k: (abs(k - n_shot), -k))]


def cells_served(shots) -> dict[int, list[str]]:
    """Training shot -> the Table 1 cells its encoder scores."""
    by_shot = {shot: shot for shot in shots}
    shots = list(by_shot)
    return {
        shot: [
            f"{n_way}-way {n_shot}-shot"
            for n_way, n_shot in CELLS
            if encoder_for_shot(by_shot, n_shot) == shot
        ]
        for shot in shots
    }


class WallClockBudget(Callback):
    """Stops training (keeping the weights) once ``minutes`` have passed."""

    def __init__(self, minutes: float | None):
        self.minutes = minutes

    def on_train_begin(self, net, **kwargs):
        self.start_ = time.perf_counter()

    def on_batch_end(self, net, training=False, **kwargs):
        if self.minutes and time.perf_counter() - self.start_ > 60 * self.minutes:
            # skorch ends fit cleanly on KeyboardInterrupt, as EarlyStopping does.
            raise KeyboardInterrupt


class CosineOverBudget(Callback):
    """Warm-up, then cosine decay over whichever budget ends first.

    The rate rises linearly over ``warmup_episodes`` episodes, then decays
    from ``lr`` to ``floor * lr`` following the larger of two fractions: of
    the ``n_episodes`` trained and of the ``minutes`` spent since the
    warm-up. A run that its time limit stops (``WallClockBudget``) thus
    ends at the floor like a run that completes its episodes: the schedule
    is sized to the episodes the machine trains in the time, slow or fast.
    """

    def __init__(
        self, n_episodes: int, warmup_episodes: int, minutes: float, floor: float
    ):
        self.n_episodes = n_episodes
        self.warmup_episodes = warmup_episodes
        self.minutes = minutes
        self.floor = floor

    def on_train_begin(self, net, **kwargs):
        self.episode_ = 0
        self.end_ = time.perf_counter() + 60 * self.minutes  # WallClockBudget's
        self.warm_at_ = None  # when the warm-up ended

    def on_batch_begin(self, net, training=False, **kwargs):
        if not training:
            return
        step = self.episode_
        if step >= self.warmup_episodes:
            now = time.perf_counter()
            if self.warm_at_ is None:
                self.warm_at_ = now
            # The time spent, as the episode of the decay it amounts to.
            spent = (now - self.warm_at_) / max(1e-9, self.end_ - self.warm_at_)
            decay = self.n_episodes - self.warmup_episodes
            step = max(step, self.warmup_episodes + spent * decay)
        factor = _warmup_cosine(step, self.n_episodes, self.warmup_episodes, self.floor)
        for group in net.optimizer_.param_groups:
            group["lr"] = net.lr * factor
        self.episode_ += 1


def _print_prefixed(prefix: str, text: str) -> None:
    for line in text.splitlines():
        print(f"[{prefix}] {line}", flush=True)


def lr_schedule(recipe: ModelRecipe):
    """The recipe's learning-rate schedule, as a per-episode callback."""
    if recipe.schedule == "step":
        return paper_lr_schedule(recipe.halve_every)
    if recipe.schedule == "cosine":
        return cosine_lr_schedule(recipe.n_episodes, recipe.warmup_episodes, 0.01)
    if recipe.schedule == "cosine-budget":
        if recipe.max_minutes is None:
            raise ValueError(
                "schedule='cosine-budget' decays over max_minutes as well as "
                "n_episodes: give the recipe max_minutes."
            )
        return CosineOverBudget(
            recipe.n_episodes, recipe.warmup_episodes, recipe.max_minutes, 0.01
        )
    if recipe.schedule == "one-cycle":
        return one_cycle_lr_schedule(recipe.n_episodes, max_lr=recipe.lr)
    raise ValueError(
        "schedule must be 'step', 'cosine', 'cosine-budget' or 'one-cycle', got "
        f"{recipe.schedule!r}."
    )


def training_precision(recipe: ModelRecipe, device: str) -> str | None:
    """The recipe's autocast dtype, with "auto" decided for this machine."""
    if recipe.autocast_dtype != "auto":
        return recipe.autocast_dtype
    return training_autocast_dtype(
        device, module=Conv4(), example=torch.rand(600, 784), n_steps=2
    )


def with_time_budget(profile: TrainingProfile, minutes: float) -> TrainingProfile:
    """``profile`` with its training stopped after ``minutes`` in all: encoders
    trained one after the other share the budget, side by side each gets it."""
    rounds = -(-len(profile.models) // profile.n_jobs)
    models = tuple(
        replace(recipe, max_minutes=minutes / rounds) for recipe in profile.models
    )
    return replace(profile, models=models)


def recipe_module(recipe: ModelRecipe, random_state: int):
    """What ``recipe`` meta-trains: the Conv4 class (the trainer builds and
    seeds it), or a Conv4 whose initial weights are drawn here from
    ``random_state``, after the augmentation layers if any (save_weights
    keeps the Conv4 only)."""
    if not recipe.augment and recipe.resize_to is None:
        return Conv4
    with torch.random.fork_rng():
        torch.manual_seed(random_state)
        layers = []
        if recipe.augment:
            layers.append(robust_augmentation(conditions=recipe.conditions))
        if recipe.resize_to is None:
            return nn.Sequential(*layers, Conv4())
        small = (1, *recipe.resize_to)
        return nn.Sequential(*layers, Resized(recipe.resize_to), Conv4(small))


class Resized(nn.Module):
    """28x28 images (rows or ``(n, 1, 28, 28)``) resized to ``size``,
    antialiased bilinear: a recipe's ``resize_to``."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.size = tuple(size)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        images = X.reshape(len(X), *INPUT_CONTRACT.shape)
        return nn.functional.interpolate(
            images, size=self.size, mode="bilinear", antialias=True
        )


def train_omniglot(
    X: np.ndarray,
    y: np.ndarray,
    recipe: ModelRecipe,
    *,
    random_state: int = 0,
    device: str = "cpu",
    progress: bool = True,
    log_prefix: str | None = None,
    callbacks: tuple = (),
) -> EpisodicTrainer:
    """Meta-train Conv4 on Omniglot images (rows of 784 pixels) per ``recipe``;
    returns the fitted trainer. ``log_prefix`` prefixes skorch's per-epoch log
    lines (when several runs share a console); ``callbacks`` are added to the
    recipe's."""
    episodes_per_epoch = min(100, recipe.n_episodes)
    callbacks = [
        lr_schedule(recipe),
        WallClockBudget(recipe.max_minutes),
        *callbacks,
    ]
    if progress:
        # skorch sizes its bar from len(dataset); an epoch here is episodes.
        callbacks.append(ProgressBar(batches_per_epoch=episodes_per_epoch))
    extra = {}
    if log_prefix is not None:
        extra["callbacks__print_log__sink"] = partial(_print_prefixed, log_prefix)
    module = recipe_module(recipe, random_state)
    trainer = EpisodicTrainer(
        module,
        n_way=recipe.n_way,
        n_shot=recipe.n_shot,
        n_query=recipe.n_query,
        lr=recipe.lr,
        episodes_per_epoch=episodes_per_epoch,
        max_epochs=int(np.ceil(recipe.n_episodes / episodes_per_epoch)),
        train_split=None,
        callbacks=callbacks,
        device=device,
        random_state=random_state,
        autocast_dtype=training_precision(recipe, device),
        episode_loss=recipe.episode_loss,
        **extra,
    )
    return trainer.fit(X, y)


def _timed_training(X, y, recipe, threads, keep_memory, **kwargs):
    if threads is not None:
        torch.set_num_threads(threads)
    if keep_memory:  # in this process, which may be a worker
        runtime.keep_freed_memory()
    start = time.perf_counter()
    trainer = train_omniglot(X, y, recipe, **kwargs)
    return trainer, time.perf_counter() - start


def train_profile(
    X: np.ndarray,
    y: np.ndarray,
    profile: TrainingProfile,
    *,
    random_state: int = 0,
    device: str = "cpu",
    progress: bool = True,
    keep_freed_memory: bool = False,
) -> tuple[list[EpisodicTrainer], list[float]]:
    """Meta-train every encoder of ``profile``, ``profile.n_jobs`` at a time.

    With ``keep_freed_memory=True`` each training process calls
    :func:`sklearn_protonet.runtime.keep_freed_memory` first.

    Returns the fitted trainers and their wall-clock training seconds, both
    in the order of ``profile.models``.
    """
    # Members of a joined encoder start from different weights and see
    # different episodes: copies of one run would add little to each other.
    seeds = [
        random_state + i if profile.joined else random_state
        for i in range(len(profile.models))
    ]
    kwargs = dict(device=device)
    keep = keep_freed_memory
    if profile.n_jobs == 1:
        runs = [
            _timed_training(
                X, y, recipe, None, keep, progress=progress, random_state=seed, **kwargs
            )
            for recipe, seed in zip(profile.models, seeds, strict=True)
        ]
    else:
        threads = max(1, torch.get_num_threads() // profile.n_jobs)
        runs = Parallel(n_jobs=profile.n_jobs)(
            delayed(_timed_training)(
                X,
                y,
                recipe,
                threads,
                keep,
                progress=False,
                log_prefix=label,
                random_state=seed,
                **kwargs,
            )
            for recipe, seed, label in zip(
                profile.models, seeds, member_labels(profile.models), strict=True
            )
        )
    return [trainer for trainer, _ in runs], [elapsed for _, elapsed in runs]


def member_labels(recipes) -> list[str]:
    """Each recipe's label, numbered from the second time it recurs:
    ``["1-shot", "1-shot (2)"]``."""
    labels = []
    for recipe in recipes:
        seen = sum(recipe.label == other.label for other in recipes[: len(labels)])
        labels.append(recipe.label + (f" ({seen + 1})" if seen else ""))
    return labels


def trained_conv4(trainer: EpisodicTrainer) -> Conv4:
    """The Conv4 a trainer meta-trained, without the augmentation layers in
    front of it (they only act in training)."""
    module = trainer.module_
    return module[-1] if isinstance(module, nn.Sequential) else module


def join_side_by_side(
    members: list[Conv4],
    X: np.ndarray,
    random_state: int,
    y: np.ndarray | None = None,
    scaling: str = "norm",
) -> tuple[Conv4, list[float]]:
    """The members as one Conv4 (:meth:`Conv4.side_by_side`) with Omniglot's
    input contract, and the factor of each, measured on seeded training rows
    (``N_SCALE_IMAGES``):

    - ``scaling="norm"``: the inverse root-mean-square norm of its embeddings
      of rows of ``X``: a squared distance is the sum of the members' squared
      distances, each member's embeddings of the same size;
    - ``scaling="within-class"``: the inverse root-mean-square distance of an
      embedding to its class mean, on every row of seeded classes of ``y``:
      each member's distances are counted in units of its own spread within
      a class, as a Gaussian model of each member's classes would weigh them.
      Members trained with different losses can differ in scale and in offset
      (an embedding shared by all images adds to the norm, not to distances):
      the norm would let one of them outweigh the others.
    """
    rng = np.random.default_rng(random_state)
    if scaling == "norm":
        rows = X[rng.choice(len(X), size=min(N_SCALE_IMAGES, len(X)), replace=False)]
        codes = None
    elif scaling == "within-class":
        if y is None:
            raise ValueError("scaling='within-class' needs the labels y of X.")
        classes, counts = np.unique(y, return_counts=True)
        n_classes = min(len(classes), max(2, round(N_SCALE_IMAGES / counts.mean())))
        chosen = np.isin(y, rng.choice(classes, size=n_classes, replace=False))
        rows = X[chosen]
        _, codes = np.unique(y[chosen], return_inverse=True)
    else:
        raise ValueError(f"scaling={scaling!r} is not one of 'norm' or 'within-class'.")
    weights = []
    for member in members:
        embedded = frozen_embeddings(member, rows)
        if codes is not None:  # distances to the class means
            means = np.stack([embedded[codes == c].mean(0) for c in range(n_classes)])
            embedded = embedded - means[codes]
        weights.append(float(1 / np.sqrt(np.mean(np.sum(embedded**2, axis=1)))))
    joined = Conv4.side_by_side(members, weights).eval().requires_grad_(False)
    joined.input_contract = INPUT_CONTRACT
    return joined, weights


def evaluate_omniglot(
    encoders, X: np.ndarray, y: np.ndarray, n_episodes: int = 1000, random_state=0
) -> dict[str, dict[str, float]]:
    """Accuracy (%) and 95% CI half-width for the four cells of Table 1.

    ``encoders`` is one encoder for every cell, or a dict training shot ->
    encoder, each cell using :func:`encoder_for_shot`. Each encoder embeds
    the test images once: in eval mode an image's embedding does not depend
    on the episode it is in, so scoring episodes on the embeddings is the same
    protocol as refitting on raw pixels, only faster.
    """
    if not isinstance(encoders, dict):
        encoders = {0: encoders}
    embeddings = {
        shot: frozen_embeddings(encoder, X) for shot, encoder in encoders.items()
    }
    results = {}
    for n_way, n_shot in CELLS:
        cv = EpisodicSplit(n_way, n_shot, 15, n_episodes, random_state=random_state)
        X_cell = encoder_for_shot(embeddings, n_shot)
        mean, half = episodic_score(PrototypicalClassifier(), X_cell, y, cv)
        results[f"{n_way}-way {n_shot}-shot"] = {
            "accuracy": round(100 * mean, 2),
            "ci95": round(100 * half, 2),
        }
    return results


def results_table(results: dict[str, dict[str, float]], label: str) -> str:
    """Markdown table of our cells beside the paper's and orobix's."""
    header = ["Omniglot test accuracy (%)", *PAPER]
    ours = [f"{r['accuracy']:.1f} ± {r['ci95']:.1f}" for r in results.values()]
    rows = [
        [label, *ours],
        ["Snell et al. 2017 (paper)", *map(str, PAPER.values())],
        ["orobix reimplementation", *map(str, OROBIX.values())],
    ]
    return markdown_table(header, rows)


def save_weights(
    profile: TrainingProfile,
    trainers: list[EpisodicTrainer],
    results: dict,
    trained: dict,
    folder,
    joined: dict | None = None,
) -> None:
    """Each encoder as ``<folder>/<profile.weights_name>.safetensors``
    (``omniglot-conv4-<shot>shot``, ``omniglot-conv4-robust``: the names
    ``load_pretrained`` knows), with the accuracy of its cells; a joined
    profile's one encoder (``joined``: its ``module``, ``members`` and
    ``member_weights``) as one file."""
    if any(recipe.resize_to is not None for recipe in profile.models):
        raise ValueError(
            "save_weights: a recipe with resize_to trains a Conv4 of the resized "
            "size behind a Resized layer, which an encoder file does not hold; "
            "train without resize_to to save the encoder."
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if joined is not None:
        save_encoder(
            joined["module"],
            folder / f"{profile.weights_name}.safetensors",
            metadata={
                "results": results,
                "profile": profile.name,
                "members": joined["members"],
                "member_weights": joined["member_weights"],
                "member_scaling": profile.member_scaling,
                "episodes_trained": trained,
            },
        )
        return
    served = cells_served(recipe.n_shot for recipe in profile.models)
    for recipe, trainer in zip(profile.models, trainers, strict=True):
        shot, module = recipe.n_shot, trained_conv4(trainer)
        # The weights record the images they expect (size, range, polarity).
        module.input_contract = INPUT_CONTRACT
        # Augmentation layers only act in training: the Conv4 behind them is
        # saved alone (with the default metric, theirs).
        save_encoder(
            trainer if module is trainer.module_ else module,
            folder / f"{profile.weights_name.format(shot=shot)}.safetensors",
            metadata={
                "results": {cell: results[cell] for cell in served[shot]},
                "profile": profile.name,
                "training_shot": shot,
                "episodes_trained": trained[recipe.label],
            },
        )


def run(args: argparse.Namespace) -> str:
    """Train, evaluate, write the results (and weights); returns a summary."""
    profile = PROFILES[args.profile]
    if args.time_budget is not None:
        profile = with_time_budget(profile, args.time_budget)
    X_train, y_train = load_omniglot(
        "trainval", data_home=args.data_home, return_X_y=True
    )
    X_test, y_test = load_omniglot("test", data_home=args.data_home, return_X_y=True)
    start = time.perf_counter()
    trainers, seconds = train_profile(
        X_train,
        y_train,
        profile,
        random_state=args.seed,
        device=args.device,
        progress=args.progress,
        keep_freed_memory=not args.default_malloc,
    )
    labels = member_labels(profile.models)
    trained = {
        label: trained_episodes(t.history)
        for label, t in zip(labels, trainers, strict=True)
    }
    joined = None
    if profile.joined:
        shipped = [
            load_pretrained(name).estimator.module_ for name in profile.starts_from
        ]
        module, weights = join_side_by_side(
            shipped + [trained_conv4(t) for t in trainers],
            X_train,
            args.seed,
            y=y_train,
            scaling=profile.member_scaling,
        )
        members = [*profile.starts_from, *labels]
        joined = {"module": module, "members": members, "member_weights": weights}
        encoders, served = module, dict.fromkeys(labels, list(PAPER))
    else:
        encoders = {r.n_shot: t for r, t in zip(profile.models, trainers, strict=True)}
        by_shot = cells_served(encoders)
        served = {r.label: by_shot[r.n_shot] for r in profile.models}
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    results = evaluate_omniglot(
        encoders, X_test, y_test, profile.n_test_episodes, args.seed
    )
    eval_seconds = time.perf_counter() - start
    episodes = ", ".join(f"{n:,} {label}" for label, n in trained.items())
    label = f"sklearn-protonet, `{profile.name}` profile (episodes: {episodes})"
    table = results_table(results, label)
    record = {
        "profile": asdict(profile),
        "models": {
            label: {
                "episodes_trained": trained[label],
                "train_seconds": round(elapsed, 1),
                "cells": served[label],
            }
            for label, elapsed in zip(labels, seconds, strict=True)
        },
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "results": results,
        "paper": PAPER,
        "orobix": OROBIX,
        **environment(
            random_state=args.seed,
            device=args.device,
            keep_freed_memory=not args.default_malloc,
        ),
    }
    if joined is not None:
        record["member_weights"] = joined["member_weights"]
    write_results(f"omniglot-{profile.name}", record, table, args.output_dir)
    if args.save_weights is not None:
        save_weights(profile, trainers, results, trained, args.save_weights, joined)
    return (
        f"Trained {episodes} episodes in {train_seconds / 60:.1f} min; "
        f"evaluated in {eval_seconds:.0f} s.\n\n{table}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/omniglot.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="cpu",
        help="training budget: ten-minutes (10 min of training, 2 cores; "
        "ten-minutes-pair: two encoders at once, joined), "
        "fast (< 20 min, 2 cores), cpu (~45 min, 2 cores), "
        "paper (GPU), smoke (minutes); robust: an encoder for other domains, "
        "symbols: and for photographs; one-encoder: the paper's encoder "
        "joined with two trained on degraded characters and photographs' "
        "conditions, for every symbol domain (<= 30 min, 2 cores); "
        "one-encoder-scratch: the paper's trained too",
    )
    parser.add_argument("--data-home", default=None, help="Omniglot data home")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="MINUTES",
        help="stop training after MINUTES in all (keeping the weights)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where omniglot-<profile>.json and .md go (default: benchmarks/results)",
    )
    parser.add_argument(
        "--save-weights",
        default=None,
        metavar="DIR",
        help="write each encoder to DIR/omniglot-conv4-<shot>shot.safetensors "
        "(robust profile: DIR/omniglot-conv4-robust.safetensors; one-encoder: "
        "DIR/omniglot-conv4-one-encoder.safetensors)",
    )
    add_script_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_script_options(args)
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
