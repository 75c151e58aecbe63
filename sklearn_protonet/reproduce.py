"""The paper's Omniglot experiment (Snell et al. 2017, Table 1), end to end.

Meta-trains Conv4 on the Vinyals ``trainval`` classes with 60-way episodes,
then evaluates 1,000 test episodes for 5-way and 20-way, 1-shot and 5-shot.
Used by ``python -m sklearn_protonet --dataset omniglot`` and
``benchmarks/omniglot.py``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sklearn
import skorch
import torch
from skorch.callbacks import Callback, ProgressBar

from . import EpisodicTrainer, PrototypicalClassifier, __version__
from .model_selection import EpisodicSplit, episodic_score
from .modules import Conv4
from .trainer import paper_lr_schedule

__all__ = [
    "PAPER",
    "PROFILES",
    "TrainingProfile",
    "evaluate_omniglot",
    "train_omniglot",
]

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


@dataclass(frozen=True)
class TrainingProfile:
    """How long and how to meta-train. One model serves all four cells."""

    name: str
    n_episodes: int
    n_way: int = 60
    n_support: int = 5
    n_query: int = 5
    lr: float = 1e-3
    halve_every: int = 2000
    max_minutes: float | None = None
    autocast_dtype: str | None = None
    n_test_episodes: int = 1000


PROFILES = {
    # The paper's schedule; meant for a GPU.
    "paper": TrainingProfile("paper", n_episodes=40_000, halve_every=2000),
    # Fits training + evaluation in 45 minutes on 2 CPU cores: the same
    # episodes in bfloat16 mixed precision (about 2x faster on CPU), with the
    # halving schedule compressed to the shorter run.
    "cpu": TrainingProfile(
        "cpu",
        n_episodes=6000,
        halve_every=1500,
        max_minutes=40,
        autocast_dtype="bfloat16",
    ),
    # A couple of minutes: proves that learning happens (tests, smoke runs).
    "smoke": TrainingProfile(
        "smoke", n_episodes=150, n_way=20, halve_every=10_000, n_test_episodes=200
    ),
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


def train_omniglot(
    X: np.ndarray,
    y: np.ndarray,
    profile: TrainingProfile,
    *,
    random_state: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> EpisodicTrainer:
    """Meta-train Conv4 on Omniglot images (rows of 784 pixels)."""
    episodes_per_epoch = min(100, profile.n_episodes)
    callbacks = [
        paper_lr_schedule(profile.halve_every),
        WallClockBudget(profile.max_minutes),
    ]
    if progress:
        # skorch sizes its bar from len(dataset); an epoch here is episodes.
        callbacks.append(ProgressBar(batches_per_epoch=episodes_per_epoch))
    trainer = EpisodicTrainer(
        Conv4,
        n_way=profile.n_way,
        n_support=profile.n_support,
        n_query=profile.n_query,
        lr=profile.lr,
        episodes_per_epoch=episodes_per_epoch,
        max_epochs=int(np.ceil(profile.n_episodes / episodes_per_epoch)),
        train_split=None,
        callbacks=callbacks,
        device=device,
        random_state=random_state,
        autocast_dtype=profile.autocast_dtype,
    )
    return trainer.fit(X, y)


def evaluate_omniglot(
    encoder, X: np.ndarray, y: np.ndarray, n_episodes: int = 1000, random_state=0
) -> dict[str, dict[str, float]]:
    """Accuracy (%) and 95% CI half-width for the four cells of Table 1.

    The test images are embedded once: in eval mode each image's embedding
    does not depend on the episode it is in, so scoring episodes on the
    embeddings is the same protocol as refitting on raw pixels, only faster.
    """
    embeddings = PrototypicalClassifier(encoder).fit(X[:2], [0, 1]).transform(X)
    results = {}
    for n_way, n_shot in CELLS:
        cv = EpisodicSplit(n_way, n_shot, 15, n_episodes, random_state=random_state)
        mean, half = episodic_score(PrototypicalClassifier(), embeddings, y, cv)
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
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def run_omniglot(
    profile_name: str,
    *,
    data_home=None,
    output_dir: str | Path | None = None,
    weights_path: str | Path | None = None,
    device: str = "cpu",
    random_state: int = 0,
    progress: bool = True,
) -> str:
    """Train, evaluate, and write ``omniglot-<profile>.json`` / ``.md``."""
    from .datasets import load_omniglot

    profile = PROFILES[profile_name]
    X_train, y_train = load_omniglot("trainval", data_home=data_home, return_X_y=True)
    X_test, y_test = load_omniglot("test", data_home=data_home, return_X_y=True)
    start = time.perf_counter()
    trainer = train_omniglot(
        X_train,
        y_train,
        profile,
        random_state=random_state,
        device=device,
        progress=progress,
    )
    train_seconds = time.perf_counter() - start
    n_trained = sum(len(row["batches"]) for row in trainer.history)
    start = time.perf_counter()
    results = evaluate_omniglot(
        trainer, X_test, y_test, profile.n_test_episodes, random_state
    )
    eval_seconds = time.perf_counter() - start
    label = f"sklearn-protonet, `{profile.name}` profile ({n_trained} episodes)"
    table = results_table(results, label)
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "profile": asdict(profile),
            "episodes_trained": n_trained,
            "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(eval_seconds, 1),
            "results": results,
            "paper": PAPER,
            "orobix": OROBIX,
            "versions": {
                "sklearn_protonet": __version__,
                "torch": torch.__version__,
                "skorch": skorch.__version__,
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
            "machine": {
                "processor": platform.processor() or platform.machine(),
                "torch_threads": torch.get_num_threads(),
                "device": device,
            },
            "random_state": random_state,
        }
        stem = output_dir / f"omniglot-{profile.name}"
        stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        stem.with_suffix(".md").write_text(table + "\n")
    if weights_path is not None:
        from .pretrained import save_encoder

        save_encoder(
            trainer,
            weights_path,
            metadata={
                "results": results,
                "profile": profile.name,
                "episodes_trained": n_trained,
            },
        )
    return (
        f"Trained {n_trained} episodes in {train_seconds / 60:.1f} min; "
        f"evaluated in {eval_seconds:.0f} s.\n\n{table}"
    )
