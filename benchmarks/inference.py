"""Inference speed and agreement of each precision, on Omniglot's test set.

    python benchmarks/inference.py [--device cuda] [--data-home DIR] [--episodes 200]

For each ``inference_dtype`` that the device offers (CPU: float32, bfloat16,
int8; CUDA: float32, float16, bfloat16), with the shipped pretrained Conv4
encoders:

1. images/s of ``PrototypicalClassifier(inference_dtype=...).predict`` on
   10,000 test images, next to the float32 module's raw forward pass (best
   of interleaved rounds, so machine noise hits every contender alike);
2. agreement of its predictions with float32's on the queries of 5-way and
   20-way, 1-shot and 5-shot test episodes (each episode fitted on its own
   support set, as a user would), and its accuracy with a 95 % interval.

Writes benchmarks/results/inference-<device>.json and .md (or into
--output-dir). Used by benchmarks/speed.py for its CPU rows.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from _common import (
    environment,
    interleaved,
    machine_line,
    markdown_table,
    timed,
    write_results,
)
from sklearn.base import clone

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet._encoders import encoder_module
from sklearn_protonet.datasets import load_omniglot
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.pretrained import load_pretrained

DTYPES = {
    "cpu": ("float32", "bfloat16", "int8"),
    "cuda": ("float32", "float16", "bfloat16"),
}
CELLS = [(5, 1), (5, 5), (20, 1), (20, 5)]


def throughput(module, X, y, dtypes, device, rounds: int) -> dict:
    """images/s of predict per dtype, and of the float32 raw forward."""
    batch = X[:10_000]
    support = np.concatenate([np.flatnonzero(y == c)[:5] for c in np.unique(y)[:5]])
    base = PrototypicalClassifier(module)  # embeds on the module's device
    fitted = {
        dtype: clone(base).set_params(inference_dtype=dtype).fit(X[support], y[support])
        for dtype in dtypes
    }
    images = torch.from_numpy(batch)

    def raw_forward():
        with torch.inference_mode():
            for first in range(0, len(images), base.batch_size):
                module(images[first : first + base.batch_size].to(device))

    contenders = {"float32 raw forward": timed(raw_forward)}
    for dtype, clf in fitted.items():
        contenders[f"predict, {dtype}"] = timed(lambda clf=clf: clf.predict(batch))
    raw_forward()  # warm-up: kernels chosen, memory mapped
    seconds = interleaved(contenders, rounds)
    raw = seconds["float32 raw forward"]
    return {
        name: {"images_per_s": len(batch) / s, "vs_float32_raw_forward": raw / s}
        for name, s in seconds.items()
    }


def agreement(encoders, X, y, dtypes, n_episodes: int) -> dict:
    """Per cell and dtype: agreement with float32 and accuracy (%)."""
    out: dict = {}
    for n_way, n_shot in CELLS:
        module = encoders[n_shot]
        split = EpisodicSplit(n_way, n_shot, 15, n_episodes, random_state=0)
        hits = {dtype: [] for dtype in dtypes}
        same = {dtype: 0 for dtype in dtypes}
        total = 0
        for support, query in split.split(X, y):
            predictions = {
                dtype: PrototypicalClassifier(module, inference_dtype=dtype)
                .fit(X[support], y[support])
                .predict(X[query])
                for dtype in dtypes
            }
            total += len(query)
            for dtype, predicted in predictions.items():
                hits[dtype].append(np.mean(predicted == y[query]))
                same[dtype] += int(np.sum(predicted == predictions["float32"]))
        cell = f"{n_way}-way {n_shot}-shot"
        out[cell] = {
            dtype: {
                "agreement_with_float32": same[dtype] / total,
                "accuracy": 100 * float(np.mean(hits[dtype])),
                "ci95": 100 * 1.96 * float(np.std(hits[dtype])) / np.sqrt(n_episodes),
                "queries": total,
            }
            for dtype in dtypes
        }
    return out


def measure(device: str, data_home, rounds: int, n_episodes: int) -> dict:
    """The report: throughput and agreement per dtype on ``device``."""
    dtypes = DTYPES["cuda" if device.startswith("cuda") else "cpu"]
    X, y = load_omniglot("test", data_home=data_home, return_X_y=True)
    X = X.astype(np.float32)
    encoders = {
        shot: load_pretrained(f"omniglot-conv4-{shot}shot", device=device)
        for shot in (1, 5)
    }
    encoders = {shot: encoder_module(e) for shot, e in encoders.items()}
    return {
        "throughput": throughput(encoders[5], X, y, dtypes, device, rounds),
        "agreement": agreement(encoders, X, y, dtypes, n_episodes),
    }


def tables(report: dict) -> str:
    """The throughput and agreement tables of ``measure``'s report."""
    speed = markdown_table(
        ["inference, 10,000 Omniglot images", "images/s", "vs float32 raw forward"],
        [
            [name, f"{r['images_per_s']:.0f}", f"{r['vs_float32_raw_forward']:.2f}x"]
            for name, r in report["throughput"].items()
        ],
    )
    cells = report["agreement"]
    dtypes = list(next(iter(cells.values())))
    rows = [
        [
            dtype,
            *(
                f"{c[dtype]['agreement_with_float32']:.2%} / "
                f"{c[dtype]['accuracy']:.1f} ± {c[dtype]['ci95']:.1f}"
                for c in cells.values()
            ),
        ]
        for dtype in dtypes
    ]
    agree = markdown_table(["agreement with float32 / accuracy (%)", *cells], rows)
    return f"{speed}\n\n{agree}"


def render(report: dict, env: dict) -> str:
    caption = (
        f"{machine_line(env)}, device {env['device']}, {env['date']}; best of "
        f"{env['rounds']} interleaved rounds; agreement over "
        f"{env['episodes']} test episodes per cell. Produced by "
        f"`python benchmarks/inference.py --device {env['device']}`."
    )
    return f"{caption}\n\n{tables(report)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-home", default=None, help="Omniglot data home")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=200, help="per cell")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    report = measure(args.device, args.data_home, args.rounds, args.episodes)
    env = environment(device=args.device, rounds=args.rounds, episodes=args.episodes)
    markdown = render(report, env)
    name = f"inference-{torch.device(args.device).type}"
    write_results(name, {**report, "environment": env}, markdown, args.output_dir)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
