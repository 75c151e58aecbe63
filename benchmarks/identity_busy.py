"""The identity encoder against NearestCentroid on a busy machine.

    python benchmarks/identity_busy.py [--rounds 5]

Fit + predict of 100,000 x 100 float64 rows with 10 classes (as in
``benchmarks/speed.py``), side by side in interleaved rounds, for:

- ``NearestCentroid`` (scikit-learn, NumPy's BLAS);
- ``PrototypicalClassifier()``, the default: the identity's arithmetic on
  one torch thread (``_encoders.one_thread``);
- the same on all of torch's threads (``one_thread`` replaced by a no-op).

Each under three conditions: torch's default threads (one per core) with a
busy-loop process occupying one core, one torch thread with that busy
process, and torch's default threads without it. Reports the median over
rounds of each round's time ratio to NearestCentroid (noise is the
phenomenon measured, so the median rather than the best) and the median
seconds. Writes ``benchmarks/results/identity_busy.json`` and ``.md``. Takes
about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from contextlib import nullcontext

import numpy as np
import torch
from _common import environment, machine_line, markdown_table, write_results
from sklearn.neighbors import NearestCentroid

import sklearn_protonet.classifier as classifier_module
from sklearn_protonet import PrototypicalClassifier

N_ROWS, N_FEATURES, N_CLASSES = 100_000, 100, 10


def _spin() -> None:
    while True:
        pass


def _seconds(fit_predict) -> float:
    start = time.perf_counter()
    fit_predict()
    return time.perf_counter() - start


def _all_threads(X, y):
    """The identity as it once ran: on all of torch's threads."""
    real = classifier_module.one_thread
    classifier_module.one_thread = nullcontext
    try:
        PrototypicalClassifier().fit(X, y).predict(X)
    finally:
        classifier_module.one_thread = real


def measure(X, y, rounds: int) -> dict:
    contenders = {
        "NearestCentroid": lambda: NearestCentroid().fit(X, y).predict(X),
        "PrototypicalClassifier (one torch thread, default)": lambda: (
            PrototypicalClassifier().fit(X, y).predict(X)
        ),
        "PrototypicalClassifier (all torch threads, before)": lambda: _all_threads(
            X, y
        ),
    }
    times = {name: [] for name in contenders}
    for round_ in range(rounds):
        names = list(contenders) if round_ % 2 == 0 else list(contenders)[::-1]
        for name in names:
            times[name].append(_seconds(contenders[name]))
    reference = np.array(times["NearestCentroid"])
    return {
        name: {
            "median_seconds": float(np.median(t)),
            "median_ratio_to_nearest_centroid": float(
                np.median(np.array(t) / reference)
            ),
            "worst_ratio_to_nearest_centroid": float(np.max(np.array(t) / reference)),
        }
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    y = rng.integers(0, N_CLASSES, N_ROWS)
    default_threads = torch.get_num_threads()
    conditions = [
        (f"{default_threads} torch threads, one core busy", default_threads, True),
        ("1 torch thread, one core busy", 1, True),
        (f"{default_threads} torch threads, no busy process", default_threads, False),
    ]
    results = {}
    for name, threads, busy in conditions:
        torch.set_num_threads(threads)
        spinner = multiprocessing.Process(target=_spin, daemon=True) if busy else None
        if spinner is not None:
            spinner.start()
        try:
            load = os.getloadavg()[0]
            results[name] = {
                "torch_threads": threads,
                "busy_process": busy,
                "load_average_1min": load,
                "contenders": measure(X, y, args.rounds),
            }
        finally:
            if spinner is not None:
                spinner.terminate()
                spinner.join()
    torch.set_num_threads(default_threads)
    env = environment(rounds=args.rounds, shape=[N_ROWS, N_FEATURES])
    record = {"environment": env, "conditions": results}
    rows = [
        [
            condition,
            contender,
            f"{r['median_seconds']:.3f}",
            f"{r['median_ratio_to_nearest_centroid']:.2f}x",
            f"{r['worst_ratio_to_nearest_centroid']:.2f}x",
        ]
        for condition, c in results.items()
        for contender, r in c["contenders"].items()
    ]
    markdown = (
        f"Fit + predict of {N_ROWS:,} x {N_FEATURES} rows, {N_CLASSES} classes; "
        f"median of {args.rounds} interleaved rounds. Machine: "
        f"{machine_line(env)}; other processes were running "
        "(load averages in the JSON file).\n\n"
        + markdown_table(
            [
                "condition",
                "estimator",
                "median s",
                "median ratio to NearestCentroid",
                "worst ratio",
            ],
            rows,
        )
    )
    write_results("identity_busy", record, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
