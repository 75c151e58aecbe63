"""Validation accuracy against wall-clock training minutes, old and new recipes.

    python benchmarks/time_to_accuracy.py [--minutes 20] [--recipes old new]
        [--device cpu] [--data-home DIR] [--eval-every 250] [--output-dir DIR]

Meta-trains a 1-shot Conv4 on Omniglot's Vinyals ``train`` classes with each
recipe, one after the other on all threads, and every ``--eval-every``
episodes scores 20-way 1-shot episodes (the hardest cell of Table 1) on the
held-out ``val`` classes. The clock counts training only: it stops while the
encoder is scored, and training stops once ``--minutes`` of it have passed.
Writes benchmarks/results/time_to_accuracy.json, .md and .png (the curve of
each recipe), naming the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict

from _common import environment, machine_line, markdown_table, write_results
from omniglot import ModelRecipe, train_omniglot
from skorch.callbacks import Callback

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.callbacks import trained_episodes
from sklearn_protonet.datasets import load_omniglot
from sklearn_protonet.model_selection import EpisodicSplit, episodic_score

#: "old" is the ``cpu`` profile's 1-shot recipe; "new" the candidate levers:
#: warm-up + cosine decay over the budget, twice the rate, 30-way episodes
#: (half the images per step of 60-way), precision chosen by the machine.
RECIPES = {
    "old": ModelRecipe(
        n_shot=1, n_episodes=12_000, halve_every=3000, autocast_dtype="auto"
    ),
    "new": ModelRecipe(
        n_shot=1,
        n_episodes=12_000,
        n_way=30,
        lr=2e-3,
        schedule="cosine",
        warmup_episodes=200,
        autocast_dtype="auto",
    ),
}


class ValidationCurve(Callback):
    """Scores held-out classes every ``every`` episodes; stops at ``minutes``.

    Records ``(training minutes, episodes, accuracy %, 95 % half-width)``;
    the time spent scoring is not counted as training time.
    """

    def __init__(self, X_val, y_val, every: int, minutes: float, n_episodes: int):
        self.X_val, self.y_val = X_val, y_val
        self.every, self.minutes, self.n_episodes = every, minutes, n_episodes

    def on_train_begin(self, net, **kwargs):
        self.points_, self.paused_ = [], 0.0
        self.start_ = time.perf_counter()
        self._score(net)

    def _training_seconds(self) -> float:
        return time.perf_counter() - self.start_ - self.paused_

    def _score(self, net) -> None:
        begin = time.perf_counter()
        seconds = self._training_seconds()
        embeddings = (
            PrototypicalClassifier(net)
            .fit(self.X_val[:2], [0, 1])
            .transform(self.X_val)
        )
        split = EpisodicSplit(20, 1, 15, self.n_episodes, random_state=0)
        mean, half = episodic_score(
            PrototypicalClassifier(), embeddings, self.y_val, split
        )
        self.points_.append(
            {
                "minutes": seconds / 60,
                "episodes": trained_episodes(net.history),
                "accuracy": 100 * mean,
                "ci95": 100 * half,
            }
        )
        self.paused_ += time.perf_counter() - begin

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        episodes = trained_episodes(net.history)
        if episodes % self.every == 0:
            self._score(net)
        if self._training_seconds() > 60 * self.minutes:
            self._score(net)
            raise KeyboardInterrupt  # skorch ends fit cleanly, keeping weights


def run_recipe(recipe, X, y, X_val, y_val, args) -> list[dict]:
    curve = ValidationCurve(
        X_val, y_val, args.eval_every, args.minutes, args.val_episodes
    )
    train_omniglot(
        X,
        y,
        recipe,
        random_state=args.seed,
        device=args.device,
        progress=False,
        callbacks=(curve,),
    )
    return curve.points_


def figure(curves: dict, path, caption: str) -> None:
    """Accuracy against minutes, one line per recipe, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        minutes = [p["minutes"] for p in points]
        accuracy = [p["accuracy"] for p in points]
        ax.plot(minutes, accuracy, marker="o", markersize=3, label=f"{name} recipe")
    ax.axhline(
        96.0, color="grey", linestyle="--", linewidth=1, label="paper, 20w1s test"
    )
    ax.set_xlabel("training minutes (wall clock, scoring excluded)")
    ax.set_ylabel("20-way 1-shot accuracy on val classes (%)")
    ax.set_title(caption, fontsize=7)
    ax.legend()
    fig.tight_layout()
    partial = path.with_name(f".{path.name}.partial")  # atomic: write, rename
    fig.savefig(partial, dpi=120, format="png")
    plt.close(fig)
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument(
        "--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES)
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--eval-every", type=int, default=250, help="episodes")
    parser.add_argument("--val-episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    X, y = load_omniglot("train", data_home=args.data_home, return_X_y=True)
    X_val, y_val = load_omniglot("val", data_home=args.data_home, return_X_y=True)
    curves = {
        name: run_recipe(RECIPES[name], X, y, X_val, y_val, args)
        for name in args.recipes
    }
    env = environment(device=args.device, seed=args.seed, minutes=args.minutes)
    caption = f"{machine_line(env)}, device {args.device}, {env['date']}"
    rows = [
        [
            name,
            f"{points[-1]['minutes']:.1f}",
            f"{points[-1]['episodes']:,}",
            f"{points[-1]['accuracy']:.1f} ± {points[-1]['ci95']:.1f}",
            f"{max(p['accuracy'] for p in points):.1f}",
        ]
        for name, points in curves.items()
    ]
    table = markdown_table(
        ["recipe", "minutes", "episodes", "final val 20w1s (%)", "best (%)"], rows
    )
    markdown = (
        f"{caption}. Produced by `python benchmarks/time_to_accuracy.py "
        f"--minutes {args.minutes:g} --device {args.device}`.\n\n{table}"
    )
    record = {
        "recipes": {name: asdict(RECIPES[name]) for name in args.recipes},
        "curves": curves,
        **env,
    }
    path = write_results("time_to_accuracy", record, markdown, args.output_dir)
    figure(curves, path.with_suffix(".png"), caption)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
