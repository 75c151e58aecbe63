"""Prediction speed, measured side by side in one process (part of
``python benchmarks/speed.py``; run alone, it updates its sections of
benchmarks/results/speed.json and .md):

2. PrototypicalClassifier.predict / predict_proba against the raw module's
   forward under torch.inference_mode on the same 10,000 images, in one call
   and in calls of the classifier's batch_size (ratios to the faster);
3. fit latency for 5-way 5-shot and 1,000-way 5-shot support sets;
4. the identity encoder against sklearn's NearestCentroid, fit + predict of
   100,000 x 100 with 10 classes.

    python benchmarks/speed_prediction.py [--rounds 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import environment, fake_omniglot, interleaved, timed
from sklearn.neighbors import NearestCentroid
from torch import nn

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import Conv4

#: The keys of speed.json this script measures.
SECTIONS = ("prediction", "fit_latency_ms", "identity_vs_nearest_centroid")


def raw_forward(module: nn.Module, batch: np.ndarray, rows: int):
    """The module alone, ``rows`` images per call."""

    def call():
        with torch.inference_mode():
            images = torch.from_numpy(batch)
            for first in range(0, len(images), rows):
                module(images[first : first + rows])

    return timed(call)


def prediction(X, y, rounds: int) -> dict:
    """2. predict / predict_proba against the raw forward on 10,000 images,
    in one call and in calls of the classifier's batch_size (its speed
    depends on how cheaply the process gets 2 GB of activations)."""
    module = Conv4().eval()
    batch = X[:10_000]
    support = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(5)])
    clf = PrototypicalClassifier(module).fit(X[support], y[support])
    one_call = "raw module forward, one call"
    chunked = f"raw module forward, {clf.batch_size}-row calls"
    seconds = interleaved(
        {
            one_call: raw_forward(module, batch, len(batch)),
            chunked: raw_forward(module, batch, clf.batch_size),
            "predict": timed(lambda: clf.predict(batch)),
            "predict_proba": timed(lambda: clf.predict_proba(batch)),
        },
        rounds,
    )
    best_raw = min(seconds[one_call], seconds[chunked])
    return {
        name: {"images_per_s": len(batch) / s, "vs_best_raw_forward": best_raw / s}
        for name, s in seconds.items()
    }


def fit_latency(X, y, rounds: int) -> dict:
    """3. fit latency of 5-shot support sets, in milliseconds."""
    module = Conv4().eval()

    def fit(n_way: int):
        idx = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(n_way)])
        return timed(lambda: PrototypicalClassifier(module).fit(X[idx], y[idx]))

    seconds = interleaved(
        {"5-way 5-shot": fit(5), "1000-way 5-shot": fit(1000)}, rounds
    )
    return {name: 1000 * s for name, s in seconds.items()}


def identity_vs_nearest_centroid(rounds: int) -> dict:
    """4. The identity encoder against NearestCentroid, 100,000 x 100."""
    rng = np.random.default_rng(0)
    X_tab = rng.normal(size=(100_000, 100))
    y_tab = rng.integers(0, 10, 100_000)

    def fit_predict(estimator):
        return timed(lambda: estimator.fit(X_tab, y_tab).predict(X_tab))

    seconds = interleaved(
        {
            "NearestCentroid": fit_predict(NearestCentroid()),
            "PrototypicalClassifier()": fit_predict(PrototypicalClassifier()),
        },
        rounds,
    )
    return {
        name: {"seconds": s, "vs_nearest_centroid": s / seconds["NearestCentroid"]}
        for name, s in seconds.items()
    }


def measure(X, y, rounds: int) -> dict:
    """This script's sections of the report, on ``fake_omniglot`` rows."""
    return {
        "prediction": prediction(X, y, rounds),
        "fit_latency_ms": fit_latency(X, y, rounds),
        "identity_vs_nearest_centroid": identity_vs_nearest_centroid(rounds),
    }


def rows(report: dict) -> list[list[str]]:
    """The prediction, fit latency and identity-encoder rows of the table."""
    out = [
        [
            f"prediction, {name}",
            f"{r['images_per_s']:.0f} images/s",
            f"{r['vs_best_raw_forward']:.2f}x the faster raw forward",
        ]
        for name, r in report["prediction"].items()
    ]
    out += [
        [f"fit latency, {name}", f"{ms:.1f} ms", ""]
        for name, ms in report["fit_latency_ms"].items()
    ]
    out += [
        [
            f"100,000 x 100 fit + predict, {name}",
            f"{r['seconds']:.3f} s",
            f"{r['vs_nearest_centroid']:.2f}x NearestCentroid's time",
        ]
        for name, r in report["identity_vs_nearest_centroid"].items()
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    from speed import update_sections

    torch.manual_seed(0)
    X, y = fake_omniglot()
    env = environment(keep_freed_memory=False, rounds=args.rounds)
    update_sections(
        measure(X, y, args.rounds), env, "python benchmarks/speed_prediction.py"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
