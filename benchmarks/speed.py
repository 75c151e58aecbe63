"""Speed benchmarks, measured side by side in one process.

    python benchmarks/speed.py [--rounds 3] [--episodes 10] [--device cpu]

Runs interleaved rounds (A, B, C, A, B, C, ...) so machine noise hits every
contender alike, and reports medians and ratios. Writes
benchmarks/results/speed[-<device>].json and .md:

1. meta-training throughput on Conv4 with the paper's episode (60-way,
   5 support + 5 query, 1x28x28): EpisodicTrainer (default settings, and the
   best settings: bfloat16 mixed precision) against a plain PyTorch episodic
   loop with the same module;
2. PrototypicalClassifier.predict / predict_proba against the raw module's
   forward under torch.inference_mode on the same batch;
3. fit latency for 5-way 5-shot and 1,000-way 5-shot support sets;
4. the identity encoder against sklearn's NearestCentroid, fit + predict of
   100,000 x 100 with 10 classes;
5. achieved GFLOP/s of Conv4 forward+backward against a large float32 matmul.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sklearn
import skorch
import torch
from sklearn.neighbors import NearestCentroid

import sklearn_protonet
from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.episodes import EpisodeSampler
from sklearn_protonet.modules import Conv4
from sklearn_protonet.trainer import episode_logits

RESULTS = Path(__file__).resolve().parent / "results"
N_WAY, N_SUPPORT, N_QUERY = 60, 5, 5


def fake_omniglot(n_classes: int = 1200, per_class: int = 20, seed: int = 0):
    """Omniglot-shaped data in memory (speed does not depend on the pixels)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n_classes * per_class, 784)) > 0.8).astype(np.float32)
    return X, np.repeat(np.arange(n_classes), per_class)


def interleaved(contenders: dict[str, Callable[[], float]], rounds: int):
    """Run each contender once per round, in turn; return median seconds."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            times[name].append(run())
    return {name: statistics.median(t) for name, t in times.items()}


def plain_loop(X: torch.Tensor, y: np.ndarray, n_episodes: int, seed: int):
    """The fair baseline: the same module, loss and optimizer, in plain PyTorch."""
    torch.manual_seed(seed)
    module = Conv4()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    sampler = EpisodeSampler(y, N_WAY, N_SUPPORT, N_QUERY)
    rng = np.random.default_rng(seed)
    target = {
        "support": torch.arange(N_WAY).repeat_interleave(N_SUPPORT),
        "query": torch.arange(N_WAY).repeat_interleave(N_QUERY),
    }
    module.train()
    start = time.perf_counter()
    for _ in range(n_episodes):
        support, query = sampler.sample(rng)
        index = torch.from_numpy(np.concatenate([support.ravel(), query.ravel()]))
        logits, codes = episode_logits(module(X[index]), target)
        loss = torch.nn.functional.cross_entropy(logits, codes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def trainer_run(X: np.ndarray, y: np.ndarray, n_episodes: int, seed: int, **params):
    trainer = EpisodicTrainer(
        Conv4,
        n_way=N_WAY,
        n_support=N_SUPPORT,
        n_query=N_QUERY,
        episodes_per_epoch=n_episodes,
        max_epochs=1,
        train_split=None,
        verbose=0,
        random_state=seed,
        **params,
    ).initialize()
    start = time.perf_counter()
    trainer.partial_fit(X, y)
    return time.perf_counter() - start


def conv4_flops_per_image(input_shape=(1, 28, 28), channels=64, n_blocks=4) -> float:
    """Multiply-adds x 2 of Conv4's convolutions for one image (forward)."""
    c_in, h, w = input_shape
    flops = 0.0
    for _ in range(n_blocks):
        flops += 2 * h * w * channels * c_in * 9
        c_in, h, w = channels, h // 2, w // 2
    return flops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=10, help="per timing")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.device != "cpu":
        raise SystemExit("Only --device cpu is implemented in this script.")
    torch.manual_seed(0)
    X, y = fake_omniglot()
    X_tensor = torch.from_numpy(X)
    images = N_WAY * (N_SUPPORT + N_QUERY)
    report: dict = {}

    # 1. Meta-training throughput.
    n = args.episodes
    seconds = interleaved(
        {
            "plain PyTorch loop": lambda: plain_loop(X_tensor, y, n, 0),
            "EpisodicTrainer (default)": lambda: trainer_run(X, y, n, 0),
            "EpisodicTrainer (bfloat16 autocast)": lambda: trainer_run(
                X, y, n, 0, autocast_dtype="bfloat16"
            ),
        },
        args.rounds,
    )
    report["meta_training"] = {
        name: {
            "seconds_per_episode": s / n,
            "episodes_per_s": n / s,
            "images_per_s": n * images / s,
            "vs_plain_loop": seconds["plain PyTorch loop"] / s,
        }
        for name, s in seconds.items()
    }

    # 2. Prediction throughput on one batch of 10,000 images.
    module = Conv4().eval()
    batch = X[:10_000]
    support = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(5)])
    clf = PrototypicalClassifier(module).fit(X[support], y[support])

    def raw_forward():
        start = time.perf_counter()
        with torch.inference_mode():
            module(torch.from_numpy(batch))
        return time.perf_counter() - start

    def timed(method):
        def run():
            start = time.perf_counter()
            getattr(clf, method)(batch)
            return time.perf_counter() - start

        return run

    seconds = interleaved(
        {
            "raw module forward": raw_forward,
            "predict": timed("predict"),
            "predict_proba": timed("predict_proba"),
        },
        args.rounds,
    )
    report["prediction"] = {
        name: {
            "images_per_s": len(batch) / s,
            "vs_raw_forward": seconds["raw module forward"] / s,
        }
        for name, s in seconds.items()
    }

    # 3. fit latency.
    def fit_latency(n_way: int):
        idx = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(n_way)])

        def run():
            start = time.perf_counter()
            PrototypicalClassifier(module).fit(X[idx], y[idx])
            return time.perf_counter() - start

        return run

    seconds = interleaved(
        {"5-way 5-shot": fit_latency(5), "1000-way 5-shot": fit_latency(1000)},
        args.rounds,
    )
    report["fit_latency_ms"] = {name: 1000 * s for name, s in seconds.items()}

    # 4. Identity encoder against NearestCentroid.
    rng = np.random.default_rng(0)
    X_tab = rng.normal(size=(100_000, 100))
    y_tab = rng.integers(0, 10, 100_000)

    def fit_predict(estimator):
        def run():
            start = time.perf_counter()
            estimator.fit(X_tab, y_tab).predict(X_tab)
            return time.perf_counter() - start

        return run

    seconds = interleaved(
        {
            "NearestCentroid": fit_predict(NearestCentroid()),
            "PrototypicalClassifier()": fit_predict(PrototypicalClassifier()),
        },
        args.rounds,
    )
    report["identity_vs_nearest_centroid"] = {
        name: {"seconds": s, "vs_nearest_centroid": s / seconds["NearestCentroid"]}
        for name, s in seconds.items()
    }

    # 5. Achieved GFLOP/s: Conv4 forward+backward (3x the forward FLOPs) and a
    # large float32 matmul, the machine's practical peak.
    size = 2048
    a, b = torch.randn(size, size), torch.randn(size, size)

    def matmul():
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        return time.perf_counter() - start

    train_module = Conv4()
    episode = X_tensor[:images]

    def conv4_step():
        start = time.perf_counter()
        for _ in range(3):
            train_module(episode).sum().backward()
        return time.perf_counter() - start

    seconds = interleaved({"matmul": matmul, "conv4": conv4_step}, args.rounds)
    matmul_gflops = 5 * 2 * size**3 / seconds["matmul"] / 1e9
    conv4_gflops = 3 * 3 * images * conv4_flops_per_image() / seconds["conv4"] / 1e9
    report["gflops"] = {
        "float32 matmul 2048x2048": matmul_gflops,
        "Conv4 forward+backward": conv4_gflops,
        "conv4_fraction_of_matmul": conv4_gflops / matmul_gflops,
    }

    report["environment"] = {
        "sklearn_protonet": sklearn_protonet.__version__,
        "torch": torch.__version__,
        "skorch": skorch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "episodes_per_timing": args.episodes,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render(report)
    (RESULTS / "speed.md").write_text(markdown + "\n")
    print(markdown)
    return 0


def render(report: dict) -> str:
    lines = ["| measurement | value | ratio |", "| --- | --- | --- |"]
    for name, r in report["meta_training"].items():
        lines.append(
            f"| meta-training, {name} | {r['episodes_per_s']:.2f} episodes/s "
            f"({r['images_per_s']:.0f} images/s) "
            f"| {r['vs_plain_loop']:.2f}x plain loop |"
        )
    for name, r in report["prediction"].items():
        lines.append(
            f"| prediction, {name} | {r['images_per_s']:.0f} images/s "
            f"| {r['vs_raw_forward']:.2f}x raw forward |"
        )
    for name, ms in report["fit_latency_ms"].items():
        lines.append(f"| fit latency, {name} | {ms:.1f} ms | |")
    for name, r in report["identity_vs_nearest_centroid"].items():
        lines.append(
            f"| 100,000 x 100 fit + predict, {name} | {r['seconds']:.3f} s "
            f"| {r['vs_nearest_centroid']:.2f}x NearestCentroid's time |"
        )
    g = report["gflops"]
    lines.append(
        f"| Conv4 forward+backward | {g['Conv4 forward+backward']:.1f} GFLOP/s "
        f"| {g['conv4_fraction_of_matmul']:.2f}x a float32 matmul "
        f"({g['float32 matmul 2048x2048']:.1f} GFLOP/s) |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
