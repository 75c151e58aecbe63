"""Open-set rejection: queries of unknown classes among known ones.

    python benchmarks/open_set.py                           # 500 episodes a shot
    python benchmarks/open_set.py --episodes 50 --output-dir /tmp/x

Each episode draws 10 of Omniglot's test classes (Vinyals split): 5 *known*
classes give the support set (``n_shot`` examples each) and 15 queries
each; 5 *unknown* classes give 15 queries each and no support. With the
shipped encoder of the matching shot (embeddings computed once per image):

- AUROC of ``score_samples`` (known queries positive, unknown negative);
- with ``unknown_label=-1`` and the default ``rejection_quantile``, the
  share of known queries accepted and of unknown queries rejected, the
  threshold calibrated on the support set alone (leave-one-out distances);
- the closed-set accuracy of the known queries (``unknown_label=None``).

At 1-shot, the threshold cannot be calibrated (no class has two examples:
``fit`` refuses), so only the AUROC and accuracy are reported. Writes
``open_set.json`` and ``open_set.md`` into ``--output-dir``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import (
    RESULTS,
    environment,
    frozen_embeddings,
    interval,
    machine_line,
    markdown_table,
    publish,
)
from sklearn.metrics import roc_auc_score

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.datasets import load_omniglot
from sklearn_protonet.pretrained import load_pretrained

N_KNOWN, N_UNKNOWN, N_QUERY = 5, 5, 15
#: The issue's targets at 5-shot.
TARGETS = {"auroc": 0.99, "known_accepted": 95.0, "unknown_rejected": 90.0}


def embed(X: np.ndarray, shot: int) -> np.ndarray:
    encoder = load_pretrained(f"omniglot-conv4-{shot}shot")
    return frozen_embeddings(encoder, X).astype(np.float64)


def episodes(y, shot: int, n_episodes: int, seed: int):
    """``(support, support labels, queries, known mask)`` per episode."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    rows = {c: np.flatnonzero(y == c) for c in classes}
    for _ in range(n_episodes):
        chosen = rng.choice(classes, N_KNOWN + N_UNKNOWN, replace=False)
        support, labels, query, known = [], [], [], []
        for code, c in enumerate(chosen):
            order = rng.permutation(rows[c])
            if code < N_KNOWN:
                support.extend(order[:shot])
                labels.extend([code] * shot)
                query.extend(order[shot : shot + N_QUERY])
                known.extend([True] * N_QUERY)
            else:
                query.extend(order[:N_QUERY])
                known.extend([False] * N_QUERY)
        yield np.array(support), np.array(labels), np.array(query), np.array(known)


def evaluate(Z, y, shot: int, n_episodes: int, seed: int) -> dict:
    auroc, accepted, rejected, accuracy = [], [], [], []
    for support, labels, query, known in episodes(y, shot, n_episodes, seed):
        closed = PrototypicalClassifier().fit(Z[support], labels)
        scores = closed.score_samples(Z[query])
        auroc.append(roc_auc_score(known, scores))
        known_y = np.repeat(labels[::shot], N_QUERY)
        accuracy.append(closed.score(Z[query][known], known_y))
        if shot > 1:
            clf = PrototypicalClassifier(unknown_label=-1).fit(Z[support], labels)
            rejected_rows = clf.predict(Z[query]) == -1
            accepted.append(1.0 - rejected_rows[known].mean())
            rejected.append(rejected_rows[~known].mean())
    # The AUROC stays a fraction; the rates are in %.
    result = {
        "auroc": interval(auroc, percent=False),
        "accuracy_known": interval(accuracy),
    }
    if accepted:
        result["known_accepted"] = interval(accepted)
        result["unknown_rejected"] = interval(rejected)
    return result


def report(record: dict) -> str:
    header = [
        "setting",
        "AUROC of score_samples",
        "known accepted (%)",
        "unknown rejected (%)",
        "closed-set accuracy (%)",
    ]
    rows = []
    for shot, cells in record["results"].items():

        def cell(key: str, cells: dict = cells) -> str:
            if key not in cells:
                return "n/a (one example per class)"
            return f"{cells[key]['mean']:.1f} ± {cells[key]['ci95']:.1f}"

        rows.append(
            [
                f"5-way {shot}-shot",
                f"{cells['auroc']['mean']:.4f} ± {cells['auroc']['ci95']:.4f}",
                cell("known_accepted"),
                cell("unknown_rejected"),
                cell("accuracy_known"),
            ]
        )
    n = {c["auroc"]["n"] for c in record["results"].values()}
    return "\n".join(
        [
            "# Open-set rejection: known and unknown Omniglot classes",
            "",
            f"{sorted(n)} episodes a shot; each: 5 known classes (support and "
            f"{N_QUERY} queries each) and 5 unknown classes ({N_QUERY} queries "
            "each), Omniglot test classes, the shipped encoder of the matching "
            "shot. 95 % intervals. Threshold: `unknown_label=-1`, "
            f"`rejection_quantile={record['rejection_quantile']}` of the support "
            "set's leave-one-out distances. Targets at 5-shot: AUROC >= "
            f"{TARGETS['auroc']}, known accepted >= {TARGETS['known_accepted']} %, "
            f"unknown rejected >= {TARGETS['unknown_rejected']} %.",
            "",
            markdown_table(header, rows),
            "",
            f"Machine: {machine_line(record)}.",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 1])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    X, y = load_omniglot("test", return_X_y=True)
    results = {
        str(shot): evaluate(embed(X, shot), y, shot, args.episodes, args.seed)
        for shot in args.shots
    }
    record = environment(
        benchmark="open_set",
        seed=args.seed,
        rejection_quantile=PrototypicalClassifier().rejection_quantile,
        targets=TARGETS,
        results=results,
    )
    record["seconds"] = time.perf_counter() - started
    return publish("open_set", record, report, args.output_dir)


if __name__ == "__main__":
    main()
