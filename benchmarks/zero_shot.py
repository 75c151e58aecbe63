"""Zero-shot Unicode symbols from the metadata in their names.

    python benchmarks/zero_shot.py [--splits 2] [--episodes 300] [--test-episodes 280]

The data set is ``load_unicode_symbols``: 782 symbols (arrows, box drawing,
block elements, geometric shapes, Braille patterns, domino tiles, playing
cards) rendered from the DejaVu fonts, 6 images each, with attributes parsed
from their Unicode names. Each split holds out 30 % of every family's
symbols, at random; a ZeroShotTrainer meta-trains the documented pair (a
Conv4 for the images, an MLP for the metadata rows) on the other symbols'
images and rows. Then the held-out symbols are classified:

- in 10-way episodes of held-out symbols, drawn from any families or from
  one family at a time (intervals: 95 % over the episodes of all splits):
  from their metadata alone; by the attribute regression baseline (ridge
  from pixels to attributes, fitted on the training symbols' images, then
  the nearest episode class's row); from one image per class with the
  meta-trained encoder, and with raw pixels; and from one image and the
  metadata, as the estimator blends them (one prototype per class) and as
  the sum of the two classifiers' scores;
- all held-out symbols of one family at once, from their metadata alone
  (intervals: 95 % over those symbols).

Writes benchmarks/results/zero_shot.json and .md.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
import torch
from _common import environment, markdown_table, write_results
from _common import interval as percent_interval
from sklearn.linear_model import Ridge

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.datasets import load_unicode_symbols
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.modules import MLP, Conv4
from sklearn_protonet.zero_shot import (
    ZeroShotEncoders,
    ZeroShotPrototypicalClassifier,
    ZeroShotTrainer,
)

HELD_OUT = 0.3
N_WAY = 10
N_QUERY = 5  # of the 6 images, one is the support example in 1-shot rows
TRAIN = {"n_way": 60, "n_query": 3, "lr": 1e-3, "episodes_per_epoch": 100}

ROWS = {
    "zero_shot": "metadata alone (ZeroShotPrototypicalClassifier)",
    "attribute_regression": "attribute regression + nearest class (baseline)",
    "chance": "chance",
    "one_shot_encoder": "1 image per class, meta-trained encoder",
    "one_shot_pixels": "1 image per class, raw pixels",
    "one_shot_blended": "1 image + metadata: blended prototypes (metadata_weight=1)",
    "one_shot_blended_light": "1 image + metadata: blended, metadata_weight=0.25",
    "one_shot_summed": "1 image + metadata: summed scores of the two classifiers",
}
DIFFERENCES = {
    "metadata alone minus baseline": ("zero_shot", "attribute_regression"),
    "blended prototypes minus 1 image": ("one_shot_blended", "one_shot_encoder"),
    "blended prototypes minus metadata alone": ("one_shot_blended", "zero_shot"),
    "summed scores minus 1 image": ("one_shot_summed", "one_shot_encoder"),
    "summed scores minus metadata alone": ("one_shot_summed", "zero_shot"),
}
SETTINGS = {
    "mixed": "10 held-out symbols of any families",
    "same_family": "10 held-out symbols of one family",
}


def split_classes(family: pd.Series, seed: int) -> np.ndarray:
    """The held-out symbols: ``HELD_OUT`` of each family, drawn at random."""
    rng = np.random.default_rng(seed)
    held = []
    for name in sorted(family.unique()):
        members = np.sort(family.index[family == name].to_numpy())
        k = max(2, round(HELD_OUT * len(members)))
        held += rng.choice(members, k, replace=False).tolist()
    return np.sort(np.array(held))


def train(X, y, metadata, episodes: int, seed: int) -> ZeroShotTrainer:
    torch.manual_seed(seed)
    pair = ZeroShotEncoders(
        sample_encoder=Conv4(),
        metadata_encoder=MLP(metadata.shape[1], hidden_sizes=(256,), out_features=64),
    )
    trainer = ZeroShotTrainer(
        pair,
        max_epochs=max(1, episodes // TRAIN["episodes_per_epoch"]),
        random_state=seed,
        verbose=0,
        **TRAIN,
    )
    return trainer.fit(X, y, metadata=metadata)


def nearest_row(predicted: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
    """The class whose metadata row is nearest each predicted row."""
    table = rows.to_numpy()
    distances = ((predicted[:, None, :] - table[None]) ** 2).sum(-1)
    return rows.index.to_numpy()[distances.argmin(1)]


def episode_splits(y, family, n_episodes: int, seed: int) -> dict[str, list]:
    """Support and query indices of the 1-shot episodes of each setting:
    classes of any families, and classes of one family (as many episodes
    for each family)."""
    mixed = list(
        EpisodicSplit(N_WAY, 1, N_QUERY, n_episodes, random_state=seed).split(y, y)
    )
    same = []
    names = sorted(family.unique())
    for k, name in enumerate(names):
        rows = np.flatnonzero(np.isin(y, family.index[family == name]))
        cv = EpisodicSplit(
            N_WAY, 1, N_QUERY, n_episodes // len(names), random_state=seed + k
        )
        same += [(rows[s], rows[q]) for s, q in cv.split(y[rows], y[rows])]
    return {"mixed": mixed, "same_family": same}


def episodes(trainer, ridge, X, y, metadata, splits: list) -> dict:
    """Accuracy of every row of ROWS in each episode; the same queries for
    all. "Summed scores" adds the decision functions (negative squared
    distances) of the image classifier and the metadata classifier: a
    product of the two softmax experts."""
    scores = {key: [] for key in ROWS if key != "chance"}
    for support, query in splits:
        classes = np.unique(y[support])
        rows = metadata.loc[classes]
        Xq, yq = X[query], y[query]
        metadata_only = ZeroShotPrototypicalClassifier(trainer).fit(rows)
        from_metadata = metadata_only.decision_function(Xq)
        scores["zero_shot"].append(_accuracy(classes, from_metadata, yq))
        guess = nearest_row(ridge.predict(Xq), rows)
        scores["attribute_regression"].append(float((guess == yq).mean()))
        encoder = PrototypicalClassifier(trainer).fit(X[support], y[support])
        from_image = encoder.decision_function(Xq)
        scores["one_shot_encoder"].append(_accuracy(classes, from_image, yq))
        pixels = PrototypicalClassifier().fit(X[support], y[support])
        scores["one_shot_pixels"].append(pixels.score(Xq, yq))
        blended = ZeroShotPrototypicalClassifier(trainer).fit(
            rows, X_support=X[support], y_support=y[support]
        )
        scores["one_shot_blended"].append(blended.score(Xq, yq))
        light = ZeroShotPrototypicalClassifier(trainer, metadata_weight=0.25).fit(
            rows, X_support=X[support], y_support=y[support]
        )
        scores["one_shot_blended_light"].append(light.score(Xq, yq))
        summed = from_image + from_metadata
        scores["one_shot_summed"].append(_accuracy(classes, summed, yq))
    return scores


def _accuracy(classes: np.ndarray, scores: np.ndarray, y: np.ndarray) -> float:
    return float((classes[scores.argmax(1)] == y).mean())


def per_family(trainer, ridge, X, y, metadata, family) -> dict:
    """Per held-out symbol: the share of its images classified right among
    all held-out symbols of its family, from metadata alone and by the
    baseline."""
    out = {}
    for name in sorted(family.unique()):
        classes = np.intersect1d(family.index[family == name], np.unique(y))
        rows = metadata.loc[classes]
        mask = np.isin(y, classes)
        clf = ZeroShotPrototypicalClassifier(trainer).fit(rows)
        right = pd.Series(clf.predict(X[mask]) == y[mask]).groupby(y[mask]).mean()
        guess = nearest_row(ridge.predict(X[mask]), rows)
        base = pd.Series(guess == y[mask]).groupby(y[mask]).mean()
        out[name] = {
            "classes": len(classes),
            "zero_shot": right.tolist(),
            "attribute_regression": base.tolist(),
        }
    return out


def run_split(symbols, split: int, train_episodes: int, test_episodes: int) -> dict:
    held = split_classes(symbols.family, split)
    test = np.isin(symbols.target, held)
    X, y, metadata = symbols.data, symbols.target, symbols.metadata
    start = time.perf_counter()
    trainer = train(X[~test], y[~test], metadata, train_episodes, split)
    seconds = time.perf_counter() - start
    ridge = Ridge(alpha=1.0).fit(X[~test], metadata.loc[y[~test]].to_numpy())
    Xt, yt = X[test], y[test]
    settings = episode_splits(yt, symbols.family, test_episodes, 1000 + split)
    return {
        "held_out": len(held),
        "trained_on": int(len(np.unique(y[~test]))),
        "train_seconds": round(seconds, 1),
        "last_train_accuracy": float(trainer.history[-1, "train_acc"]),
        "episodes": {
            name: episodes(trainer, ridge, Xt, yt, metadata, cv)
            for name, cv in settings.items()
        },
        "families": per_family(trainer, ridge, Xt, yt, metadata, symbols.family),
    }


def interval(values) -> dict:
    """The harness's interval in %, rounded to 2 decimals (this file's keys)."""
    result = percent_interval(values)
    return {"accuracy": round(result["mean"], 2), "ci95": round(result["ci95"], 2)}


def summarise(splits: list[dict]) -> dict:
    out = {}
    for setting in SETTINGS:
        pooled = {
            key: np.concatenate([s["episodes"][setting][key] for s in splits])
            for key in splits[0]["episodes"][setting]
        }
        result = {key: interval(values) for key, values in pooled.items()}
        result["chance"] = {"accuracy": round(100 / N_WAY, 2), "ci95": 0.0}
        result["n_episodes"] = len(pooled["zero_shot"])
        result["differences"] = {
            label: interval(pooled[a] - pooled[b])
            for label, (a, b) in DIFFERENCES.items()
        }
        out[setting] = result
    families = {}
    for name in splits[0]["families"]:
        parts = [s["families"][name] for s in splits]
        families[name] = {
            "classes": int(np.mean([p["classes"] for p in parts])),
            "zero_shot": interval(np.concatenate([p["zero_shot"] for p in parts])),
            "attribute_regression": interval(
                np.concatenate([p["attribute_regression"] for p in parts])
            ),
        }
    out["families"] = families
    return out


def compact(split: dict) -> dict:
    """A split's record for the JSON file: each list of per-episode or
    per-symbol accuracies replaced by its mean and 95 % interval."""
    return {
        **split,
        "episodes": {
            setting: {key: interval(values) for key, values in scores.items()}
            for setting, scores in split["episodes"].items()
        },
        "families": {
            name: {
                key: value if key == "classes" else interval(value)
                for key, value in facts.items()
            }
            for name, facts in split["families"].items()
        },
    }


def cell(result: dict, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{result['accuracy']:{sign}.1f} ± {result['ci95']:.1f}"


def report(summary: dict, n_splits: int) -> str:
    """The episodes table (both settings side by side) and the families table."""
    header = [
        f"held-out symbols, {N_WAY}-way 1-shot episodes, {n_splits} class "
        "split(s) (% accuracy, 95 % CI over episodes)",
        *(
            f"{label} ({summary[key]['n_episodes']} episodes)"
            for key, label in SETTINGS.items()
        ),
    ]
    rows = [
        [label, *(cell(summary[setting][key]) for setting in SETTINGS)]
        for key, label in ROWS.items()
    ]
    rows += [
        [
            f"{label} (paired)",
            *(
                cell(summary[setting]["differences"][label], True)
                for setting in SETTINGS
            ),
        ]
        for label in DIFFERENCES
    ]
    text = markdown_table(header, rows)
    header = [
        "family: all its held-out symbols at once (% accuracy, 95 % CI over symbols)",
        "held-out symbols",
        "chance",
        "metadata alone",
        "attribute regression",
    ]
    rows = [
        [
            name,
            str(facts["classes"]),
            f"{100 / facts['classes']:.1f}",
            cell(facts["zero_shot"]),
            cell(facts["attribute_regression"]),
        ]
        for name, facts in summary["families"].items()
    ]
    return text + "\n\n" + markdown_table(header, rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=2, help="class splits")
    parser.add_argument("--episodes", type=int, default=300, help="training")
    parser.add_argument(
        "--test-episodes", type=int, default=280, help="per setting and split"
    )
    args = parser.parse_args(argv)
    # Zero-shot fits take one metadata row per class, which scikit-learn's
    # target check takes for a possible regression target and says so.
    warnings.filterwarnings("ignore", message="The number of unique classes")
    start, load = time.perf_counter(), os.getloadavg()
    symbols = load_unicode_symbols()
    splits = [
        run_split(symbols, s, args.episodes, args.test_episodes)
        for s in range(args.splits)
    ]
    summary = summarise(splits)
    text = report(summary, args.splits)
    record = environment(
        splits=[compact(split) for split in splits],
        summary=summary,
        n_splits=args.splits,
        train_episodes=args.episodes,
        test_episodes=args.test_episodes,
        recipe=TRAIN,
        held_out_share=HELD_OUT,
        wall_seconds=round(time.perf_counter() - start, 1),
        load_average_at_start_and_end=[round(load[0], 1), round(os.getloadavg()[0], 1)],
        note=(
            "Each split meta-trains on 70 % of each family's symbols and tests "
            "on the other 30 %; the metadata is parsed from the Unicode names. "
            "The machine (2 CPU cores) was shared with other jobs."
        ),
    )
    write_results("zero_shot", record, text)
    print(text)


if __name__ == "__main__":
    main()
