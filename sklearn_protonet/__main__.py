"""Command line: the digits demo, meta-training then few-shot evaluation.

``python -m sklearn_protonet`` meta-trains a small Conv4 on the base classes
of :mod:`~sklearn_protonet.demo` and scores few-shot episodes of the novel
classes against scikit-learn's ``NearestCentroid`` on raw pixels. Offline,
in about a minute on 2 CPU cores. (The paper's Omniglot experiment is a
script of the repository: ``python benchmarks/omniglot.py``.)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestCentroid
from skorch.callbacks import ProgressBar

from . import PrototypicalClassifier
from .demo import digits_trainer, load_digits_split
from .model_selection import EpisodicSplit, episodic_score
from .runtime import add_script_options, apply_script_options


def _percent(mean: float, half_width: float) -> str:
    return f"{100 * mean:.1f} ± {100 * half_width:.1f}"


def run_digits(args: argparse.Namespace) -> str:
    """Meta-train on digits 0-4, evaluate episodes of digits 5-9."""
    data = load_digits_split()
    progress = ProgressBar(batches_per_epoch=args.episodes)
    callbacks = [progress] if args.progress else None
    trainer = digits_trainer(
        args.seed,
        episodes_per_epoch=args.episodes,
        max_epochs=args.epochs,
        callbacks=callbacks,
    )
    print(
        f"Meta-training Conv4 on {len(np.unique(data.y_base))} base classes "
        f"({args.epochs} epochs x {args.episodes} episodes of 10-way 5-shot)..."
    )
    start = time.perf_counter()
    trainer.fit(data.X_base, data.y_base)
    print(f"Trained in {time.perf_counter() - start:.0f} s.\n")

    methods = {
        "PrototypicalClassifier (meta-trained Conv4)": PrototypicalClassifier(trainer),
        "NearestCentroid (raw pixels)": NearestCentroid(),
    }
    table = {}
    for name, estimator in methods.items():
        for shot in args.shots:
            cv = EpisodicSplit(args.n_way, shot, 15, args.eval_episodes, args.seed)
            with warnings.catch_warnings():
                # NearestCentroid warns about zero-variance pixels (1-shot); harmless.
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                score = episodic_score(estimator, data.X_novel, data.y_novel, cv)
            table.setdefault(name, {})[f"{args.n_way}-way {shot}-shot"] = _percent(
                *score
            )
    frame = pd.DataFrame.from_dict(table, orient="index")
    return (
        f"Accuracy (%) on {len(np.unique(data.y_novel))} novel classes, "
        f"{args.eval_episodes} episodes of 15 queries per class, 95% CI:\n\n"
        + frame.to_string()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_protonet",
        description="Meta-train a prototypical network on digits and evaluate "
        "few-shot episodes of digits it has never seen.",
    )
    parser.add_argument("--epochs", type=int, default=5, help="meta-training epochs")
    parser.add_argument(
        "--episodes", type=int, default=100, help="training episodes per epoch"
    )
    parser.add_argument("--n-way", type=int, default=5, help="classes per test episode")
    parser.add_argument(
        "--shots", type=int, nargs="+", default=[1, 5], help="support examples"
    )
    parser.add_argument("--eval-episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    add_script_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_script_options(args)
    print(run_digits(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
