"""Peak memory of prediction: bounded chunks against one big batch.

Every case runs in a fresh Python process (so earlier cases leave no
high-water mark behind) and reports how far the process's peak resident
memory (``ru_maxrss``) rose above its resident memory just before the call,
i.e. the memory the call itself needed, output included. The data are made
first (identity encoder: rows of 64 float64 features) and a classifier is
fitted with 1,000 prototypes.

Cases:

- ``predict`` of 1,000,000 rows in chunks of ``batch_size=1024`` (the
  default), the main case: its output is one label per row.
- ``predict`` in one batch (``batch_size >= n``): the distance matrix alone
  is n x k float64 (8 GB at n = 1e6), more than this machine holds with the
  temporaries, so it is measured at n = 100,000 and 200,000 and extrapolated
  linearly.
- ``predict_proba`` of 100,000 rows, chunked and in one batch: the output
  itself is n x k (800 MB here), which no chunking can avoid.
- ``transform`` of 1,000,000 rows (output n x 64).
- the naive broadcast ``((X[:, None] - P[None]) ** 2).sum(-1)``, which
  builds n x k x d tensors (512 GB at n = 1e6): measured at n = 250, 500 and
  1,000 and extrapolated.

Usage::

    python benchmarks/memory.py                # all cases; writes results/
    python benchmarks/memory.py --case predict --n 1000000 --batch-size 1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import (
    MB,
    RESULTS,
    environment,
    markdown_table,
    peak_resident_bytes,
    resident_bytes,
    write_results,
)

N_PROTOTYPES = 1000
DIM = 64
THREADS = 2


def run_case(case: str, n: int, batch_size: int) -> dict:
    """One measurement, in this process."""
    import numpy as np
    import torch

    from sklearn_protonet import PrototypicalClassifier

    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    support = rng.standard_normal((2 * N_PROTOTYPES, DIM))
    labels = np.repeat(np.arange(N_PROTOTYPES), 2)
    clf = PrototypicalClassifier(batch_size=batch_size).fit(support, labels)
    X = rng.standard_normal((n, DIM))  # float64, no temporary copy
    if case == "naive-broadcast":
        queries = torch.from_numpy(X)
        prototypes = torch.from_numpy(clf.prototypes_)

        def call():
            return (queries[:, None, :] - prototypes[None]).square().sum(-1).argmin(1)

    else:
        method = getattr(clf, case)

        def call():
            return method(X)

    if case == "naive-broadcast":
        (queries[:2, None, :] - prototypes[None]).square().sum(-1).argmin(1)
    else:
        method(X[:2])  # warm-up: lazy initialisation is not the call's memory
    before, start = resident_bytes(), time.perf_counter()
    out = call()
    seconds = time.perf_counter() - start
    extra = max(peak_resident_bytes() - before, 0)
    return {
        "case": case,
        "n": n,
        "batch_size": batch_size,
        "input_mb": X.nbytes / MB,
        "output_mb": out.numel() * out.element_size() / MB
        if isinstance(out, torch.Tensor)
        else out.nbytes / MB,
        "extra_peak_mb": extra / MB,
        "seconds": seconds,
    }


def _in_fresh_process(case: str, n: int, batch_size: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--case",
        case,
        "--n",
        str(n),
        "--batch-size",
        str(batch_size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"{case:16s} n={n:>9,d} batch_size={batch_size:>9,d}: "
        f"+{result['extra_peak_mb']:9.1f} MB peak, output "
        f"{result['output_mb']:8.1f} MB, {result['seconds']:6.2f} s",
        flush=True,
    )
    return result


def _extrapolate(points: list[dict], n: int) -> float:
    """Linear fit of extra peak memory against n, evaluated at n (MB)."""
    import numpy as np

    ns = np.array([p["n"] for p in points], dtype=float)
    mbs = np.array([p["extra_peak_mb"] for p in points])
    slope, intercept = np.polyfit(ns, mbs, 1)
    return float(slope * n + intercept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case")
    parser.add_argument("--n", type=int)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.n, args.batch_size)))
        return

    big = 1_000_000
    results = {
        "predict_chunked": _in_fresh_process("predict", big, 1024),
        "predict_unchunked": [
            _in_fresh_process("predict", n, n) for n in (100_000, 200_000)
        ],
        "predict_proba_chunked": _in_fresh_process("predict_proba", 100_000, 1024),
        "predict_proba_unchunked": _in_fresh_process("predict_proba", 100_000, 100_000),
        "transform_chunked": _in_fresh_process("transform", big, 1024),
        "naive_broadcast": [
            _in_fresh_process("naive-broadcast", n, n) for n in (250, 500, 1000)
        ],
    }
    results["predict_unchunked_extrapolated_mb"] = _extrapolate(
        results["predict_unchunked"], big
    )
    results["naive_broadcast_extrapolated_mb"] = _extrapolate(
        results["naive_broadcast"], big
    )
    results["setup"] = {
        "n_prototypes": N_PROTOTYPES,
        "dim": DIM,
        "dtype": "float64 (identity encoder)",
        "torch_threads": THREADS,
        "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "command": "python benchmarks/memory.py",
        **environment(),
    }
    write_results("memory", results, _markdown(results))
    print(f"Wrote {RESULTS / 'memory.json'} and memory.md")


def _markdown(r: dict) -> str:
    s = r["setup"]

    def row(label, p, note=""):
        return [
            label,
            f"{p['n']:,}",
            f"{p['batch_size']:,}",
            f"{p['input_mb']:.0f}",
            f"{p['output_mb']:.1f}",
            f"{p['extra_peak_mb']:.1f}",
            f"{p['seconds']:.2f}",
            note,
        ]

    lines = [
        "# Peak memory of prediction",
        "",
        f"Identity encoder, {s['dim']} float64 features, {s['n_prototypes']:,} "
        f"prototypes; {s['machine']['cpu_count']} CPUs, {s['memory_gb']:.0f} GB RAM, "
        f"torch {s['versions']['torch']} with {s['torch_threads']} threads; "
        f"{s['date']}. Produced by "
        f"`{s['command']}`.",
        "",
        "*Extra peak* is how far the process's peak resident memory (ru_maxrss) "
        "rose above its resident memory just before the call, in a fresh process "
        "per case: the memory the call needed, output included, input excluded. "
        "Seconds are indicative only (2 shared cores).",
        "",
        markdown_table(
            [
                "case",
                "n",
                "batch_size",
                "input MB",
                "output MB",
                "extra peak MB",
                "seconds",
                "note",
            ],
            [
                row("predict, chunked (default)", r["predict_chunked"], "main case"),
                *[row("predict, one batch", p) for p in r["predict_unchunked"]],
                row(
                    "predict_proba, chunked",
                    r["predict_proba_chunked"],
                    "output is n x k",
                ),
                row("predict_proba, one batch", r["predict_proba_unchunked"]),
                row("transform, chunked", r["transform_chunked"], "output is n x d"),
                *[
                    row("naive broadcast n x k x d", p, "reference, not the library")
                    for p in r["naive_broadcast"]
                ],
            ],
        ),
        "",
        "Extrapolated to n = 1,000,000 (linear fit of the rows above):",
        "",
        f"- `predict` in one batch (`batch_size >= n`): about "
        f"{r['predict_unchunked_extrapolated_mb'] / 1024:.1f} GB (the n x k "
        "float64 distance matrix is 7.5 GiB by itself, plus temporaries of the "
        "same size); not run at this size, which would take most of this "
        "machine's memory.",
        f"- the naive broadcast: about "
        f"{r['naive_broadcast_extrapolated_mb'] / 1024:,.0f} GB "
        "(1e6 x 1e3 x 64 x 8 bytes = 512 GB per n x k x d tensor; the "
        "difference and its square are one each). The library never builds "
        "it: distances are `|q|^2 - 2 q.p + |p|^2`, one matrix product per "
        "chunk.",
        "",
        f"Chunked `predict` of 1,000,000 rows needed "
        f"{r['predict_chunked']['extra_peak_mb']:.0f} MB beyond its "
        f"{r['predict_chunked']['input_mb']:.0f} MB input: the labels it returns "
        "plus the work on one chunk (each temporary is batch_size x k float64, "
        "8 MB). `predict_proba` returns an n x k "
        "array (8 GB for 1e6 x 1e3 in float64): chunking bounds the work "
        "memory, not the output, so for very large n call it on slices of X.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
