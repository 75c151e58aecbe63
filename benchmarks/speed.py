"""Speed benchmarks, measured side by side in one process.

    python benchmarks/speed.py [--rounds 5] [--episodes 10] [--compile]

Runs interleaved rounds (A, B, C, C, B, A, ...) so machine noise hits every
contender alike, and reports each one's best round and the ratios. CPU only.
Writes benchmarks/results/speed.json and .md:

1. meta-training throughput on Conv4 with the paper's episode (60-way,
   5 support + 5 query, 1x28x28): EpisodicTrainer (default settings, and the
   best settings: bfloat16 mixed precision) against a plain PyTorch episodic
   loop with the same module;
2. PrototypicalClassifier.predict / predict_proba against the raw module's
   forward under torch.inference_mode on the same 10,000 images, in one call
   and in calls of the classifier's batch_size (ratios to the faster);
3. fit latency for 5-way 5-shot and 1,000-way 5-shot support sets;
4. the identity encoder against sklearn's NearestCentroid, fit + predict of
   100,000 x 100 with 10 classes;
5. achieved GFLOP/s of Conv4 forward+backward against a large float32 matmul;
6. each speed lever's effect on one training step of that episode, added
   one at a time (``--compile`` adds torch.compile, which compiles for about
   a minute first);
7. two trainings (bfloat16) one after the other on all threads against the
   same two side by side in two processes of one thread each;
8. one training step in fresh processes with glibc's default malloc against
   sklearn_protonet.runtime.keep_freed_memory().

Sections 1-7 run with keep_freed_memory() applied (as the command line
does), unless --default-malloc.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from _common import environment, markdown_table, write_results
from joblib import Parallel, delayed
from sklearn.neighbors import NearestCentroid
from torch import nn

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.distances import episode_logits
from sklearn_protonet.episodes import EpisodeSampler, episode_target
from sklearn_protonet.modules import Conv4
from sklearn_protonet.runtime import keep_freed_memory

N_WAY, N_SHOT, N_QUERY = 60, 5, 5
EPISODE_IMAGES = N_WAY * (N_SHOT + N_QUERY)


def fake_omniglot(n_classes: int = 1200, per_class: int = 20, seed: int = 0):
    """Omniglot-shaped data in memory (speed does not depend on the pixels)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n_classes * per_class, 784)) > 0.8).astype(np.float32)
    return X, np.repeat(np.arange(n_classes), per_class)


def interleaved(contenders: dict[str, Callable[[], float]], rounds: int):
    """Run each contender once per round, in turn, reversing the order every
    other round; return each one's best time.

    On a shared machine noise only ever adds time, so the best of several
    rounds estimates the undisturbed cost; reversing the order cancels any
    advantage of running first or after a particular contender.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds):
        names = list(contenders) if round_ % 2 == 0 else list(contenders)[::-1]
        for name in names:
            times[name].append(contenders[name]())
    return {name: min(t) for name, t in times.items()}


def plain_loop(X: torch.Tensor, y: np.ndarray, n_episodes: int, seed: int):
    """The fair baseline: the same module, loss and optimizer, in plain PyTorch."""
    torch.manual_seed(seed)
    module = Conv4()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    sampler = EpisodeSampler(y, N_WAY, N_SHOT, N_QUERY)
    rng = np.random.default_rng(seed)
    target = episode_target(N_WAY, N_SHOT, N_QUERY)
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
        n_shot=N_SHOT,
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


def _single_threaded_run(X, y, n_episodes, seed, keep_memory):
    torch.set_num_threads(1)
    if keep_memory:
        keep_freed_memory()
    return trainer_run(X, y, n_episodes, seed, autocast_dtype="bfloat16")


def two_trainings(X, y, n_episodes: int, keep_memory: bool):
    """Timers for two trainings in turn (all threads) and side by side."""
    workers = Parallel(n_jobs=2, max_nbytes=None)

    def in_turn():
        start = time.perf_counter()
        for seed in (0, 1):
            trainer_run(X, y, n_episodes, seed, autocast_dtype="bfloat16")
        return time.perf_counter() - start

    def side_by_side():
        start = time.perf_counter()
        workers(
            delayed(_single_threaded_run)(X, y, n_episodes, seed, keep_memory)
            for seed in (0, 1)
        )
        return time.perf_counter() - start

    side_by_side()  # start the worker processes outside the timings
    return {
        "in turn, all threads each": in_turn,
        "side by side, 1 thread each": side_by_side,
    }


def _step_seconds_in_fresh_process(keep_memory: bool) -> dict[str, float]:
    if keep_memory:
        keep_freed_memory()
    torch.manual_seed(0)
    episode = (torch.rand(EPISODE_IMAGES, 784) > 0.8).float()
    return {
        dtype: training_step(Conv4(), episode, autocast=dtype == "bfloat16")()
        for dtype in ("float32", "bfloat16")
    }


def allocator(rounds: int) -> dict:
    """Seconds per training step in fresh processes (malloc settings cannot
    be undone within one), default malloc against keep_freed_memory()."""
    times: dict[bool, list[dict]] = {False: [], True: []}
    for round_ in range(rounds):
        for keep in (False, True) if round_ % 2 == 0 else (True, False):
            with ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")
            ) as pool:
                times[keep].append(
                    pool.submit(_step_seconds_in_fresh_process, keep).result()
                )
    out = {}
    for dtype in ("float32", "bfloat16"):
        default = min(t[dtype] for t in times[False])
        kept = min(t[dtype] for t in times[True])
        out[dtype] = {
            "default_malloc_seconds": default,
            "keep_freed_memory_seconds": kept,
            "speed_up": default / kept,
        }
    return out


def conv4_flops_per_image(input_shape=(1, 28, 28), channels=64, n_blocks=4) -> float:
    """Multiply-adds x 2 of Conv4's convolutions for one image (forward)."""
    c_in, h, w = input_shape
    flops = 0.0
    for _ in range(n_blocks):
        flops += 2 * h * w * channels * c_in * 9
        c_in, h, w = channels, h // 2, w // 2
    return flops


def papers_block_order(module: Conv4) -> Conv4:
    """Conv4 with the paper's [conv, BatchNorm, ReLU, max-pool] order (ours
    pools before the ReLU, which computes the same function)."""
    for block in module.encoder:
        block[2], block[3] = nn.ReLU(), nn.MaxPool2d(2)
    return module


def training_step(module: nn.Module, episode: torch.Tensor, autocast: bool):
    """One episodic step on ``episode`` (support rows first), as a timer."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    target = episode_target(N_WAY, N_SHOT, N_QUERY)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            embeddings = module(episode).float()
        logits, codes = episode_logits(embeddings, target)
        loss = torch.nn.functional.cross_entropy(logits, codes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up (and compilation, for a compiled module)

    def run(n_steps: int = 3) -> float:
        start = time.perf_counter()
        for _ in range(n_steps):
            step()
        return (time.perf_counter() - start) / n_steps

    return run


def levers(episode: torch.Tensor, rounds: int, compile_: bool) -> dict:
    """Seconds per training step as each lever is added, side by side."""
    torch.manual_seed(0)
    variants = {
        "paper's block order, contiguous layout, float32": (
            papers_block_order(Conv4(channels_last=False)),
            False,
        ),
        "+ channels_last": (papers_block_order(Conv4()), False),
        "+ max-pool before ReLU (Conv4 default)": (Conv4(), False),
        "+ bfloat16 autocast": (Conv4(), True),
    }
    if compile_:
        variants["+ torch.compile"] = (torch.compile(Conv4()), True)
    steps = {
        name: training_step(module, episode, autocast)
        for name, (module, autocast) in variants.items()
    }
    seconds = interleaved(steps, rounds)
    first = next(iter(seconds.values()))
    previous = first
    out = {}
    for name, s in seconds.items():
        out[name] = {
            "seconds_per_step": s,
            "vs_previous": previous / s,
            "vs_first": first / s,
        }
        previous = s
    return out


def meta_training(X, y, n: int, rounds: int) -> dict:
    """1. Meta-training throughput against the plain PyTorch loop."""
    X_tensor = torch.from_numpy(X)
    seconds = interleaved(
        {
            "plain PyTorch loop": lambda: plain_loop(X_tensor, y, n, 0),
            "EpisodicTrainer (default)": lambda: trainer_run(X, y, n, 0),
            "EpisodicTrainer (bfloat16 autocast)": lambda: trainer_run(
                X, y, n, 0, autocast_dtype="bfloat16"
            ),
        },
        rounds,
    )
    return {
        name: {
            "seconds_per_episode": s / n,
            "episodes_per_s": n / s,
            "images_per_s": n * EPISODE_IMAGES / s,
            "vs_plain_loop": seconds["plain PyTorch loop"] / s,
        }
        for name, s in seconds.items()
    }


def _timer(call: Callable[[], object]) -> Callable[[], float]:
    def run():
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    return run


def _raw_forward(module: nn.Module, batch: np.ndarray, rows: int):
    """The module alone, ``rows`` images per call."""

    def call():
        with torch.inference_mode():
            images = torch.from_numpy(batch)
            for first in range(0, len(images), rows):
                module(images[first : first + rows])

    return _timer(call)


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
            one_call: _raw_forward(module, batch, len(batch)),
            chunked: _raw_forward(module, batch, clf.batch_size),
            "predict": _timer(lambda: clf.predict(batch)),
            "predict_proba": _timer(lambda: clf.predict_proba(batch)),
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
        return _timer(lambda: PrototypicalClassifier(module).fit(X[idx], y[idx]))

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
        return _timer(lambda: estimator.fit(X_tab, y_tab).predict(X_tab))

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


def gflops(episode: torch.Tensor, rounds: int) -> dict:
    """5. Achieved GFLOP/s: Conv4 forward+backward (3x the forward FLOPs)
    against a large float32 matmul, the machine's practical peak."""
    size = 2048
    a, b = torch.randn(size, size), torch.randn(size, size)

    def matmul():
        for _ in range(5):
            a @ b

    module = Conv4()

    def conv4_step():
        for _ in range(3):
            module(episode).sum().backward()

    seconds = interleaved(
        {"matmul": _timer(matmul), "conv4": _timer(conv4_step)}, rounds
    )
    matmul_gflops = 5 * 2 * size**3 / seconds["matmul"] / 1e9
    conv4_gflops = (
        3 * 3 * EPISODE_IMAGES * conv4_flops_per_image() / seconds["conv4"] / 1e9
    )
    return {
        "float32 matmul 2048x2048": matmul_gflops,
        "Conv4 forward+backward": conv4_gflops,
        "conv4_fraction_of_matmul": conv4_gflops / matmul_gflops,
    }


def trainings_in_turn_or_side_by_side(X, y, n, rounds, keep_memory) -> dict:
    """7. Two trainings: in turn on all threads, or side by side."""
    seconds = interleaved(two_trainings(X, y, n, keep_memory), rounds)
    return {
        name: {
            "seconds": s,
            "episodes_per_s": 2 * n / s,
            "vs_in_turn": seconds["in turn, all threads each"] / s,
        }
        for name, s in seconds.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=10, help="per timing")
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile (slow)"
    )
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="run sections 1-7 without keep_freed_memory()",
    )
    args = parser.parse_args()
    keep_memory = not args.default_malloc and keep_freed_memory()
    torch.manual_seed(0)
    X, y = fake_omniglot()
    episode = torch.from_numpy(X[:EPISODE_IMAGES])
    rounds, n = args.rounds, args.episodes
    report = {
        "meta_training": meta_training(X, y, n, rounds),
        "prediction": prediction(X, y, rounds),
        "fit_latency_ms": fit_latency(X, y, rounds),
        "identity_vs_nearest_centroid": identity_vs_nearest_centroid(rounds),
        "gflops": gflops(episode, rounds),
        "levers": levers(episode, rounds, args.compile),
        "two_trainings": trainings_in_turn_or_side_by_side(
            X, y, n, rounds, keep_memory
        ),
        "allocator": allocator(rounds),
        "environment": environment(
            keep_freed_memory=keep_memory, rounds=rounds, episodes_per_timing=n
        ),
    }
    markdown = render(report)
    write_results("speed", report, markdown)
    print(markdown)
    return 0


def render(report: dict) -> str:
    env = report["environment"]
    machine, versions = env["machine"], env["versions"]
    malloc = "keep_freed_memory()" if env["keep_freed_memory"] else "default"
    caption = (
        f"{machine['cpu_count']} CPUs ({machine['processor']}), torch "
        f"{versions['torch']} with {machine['torch_threads']} threads, "
        f"{env['date']}; best of "
        f"{env['rounds']} interleaved rounds; malloc: {malloc} (last table: "
        "both). Produced by `python benchmarks/speed.py`."
    )
    rows = [
        [
            f"meta-training, {name}",
            f"{r['episodes_per_s']:.2f} episodes/s ({r['images_per_s']:.0f} images/s)",
            f"{r['vs_plain_loop']:.2f}x plain loop",
        ]
        for name, r in report["meta_training"].items()
    ]
    rows += [
        [
            f"prediction, {name}",
            f"{r['images_per_s']:.0f} images/s",
            f"{r['vs_best_raw_forward']:.2f}x the faster raw forward",
        ]
        for name, r in report["prediction"].items()
    ]
    rows += [
        [f"fit latency, {name}", f"{ms:.1f} ms", ""]
        for name, ms in report["fit_latency_ms"].items()
    ]
    rows += [
        [
            f"100,000 x 100 fit + predict, {name}",
            f"{r['seconds']:.3f} s",
            f"{r['vs_nearest_centroid']:.2f}x NearestCentroid's time",
        ]
        for name, r in report["identity_vs_nearest_centroid"].items()
    ]
    g = report["gflops"]
    rows.append(
        [
            "Conv4 forward+backward",
            f"{g['Conv4 forward+backward']:.1f} GFLOP/s",
            f"{g['conv4_fraction_of_matmul']:.2f}x a float32 matmul "
            f"({g['float32 matmul 2048x2048']:.1f} GFLOP/s)",
        ]
    )
    tables = [
        markdown_table(["measurement", "value", "ratio"], rows),
        markdown_table(
            ["training step, 60-way 5+5 Conv4", "s / step", "speed-up", "total"],
            [
                [
                    name,
                    f"{r['seconds_per_step']:.3f}",
                    f"{r['vs_previous']:.2f}x",
                    f"{r['vs_first']:.2f}x",
                ]
                for name, r in report["levers"].items()
            ],
        ),
        markdown_table(
            ["two 60-way 5+5 trainings (bfloat16)", "episodes/s", "speed-up"],
            [
                [name, f"{r['episodes_per_s']:.2f}", f"{r['vs_in_turn']:.2f}x"]
                for name, r in report["two_trainings"].items()
            ],
        ),
        markdown_table(
            [
                "training step in a fresh process",
                "default malloc",
                "keep_freed_memory()",
                "speed-up",
            ],
            [
                [
                    dtype,
                    f"{r['default_malloc_seconds']:.3f} s",
                    f"{r['keep_freed_memory_seconds']:.3f} s",
                    f"{r['speed_up']:.2f}x",
                ]
                for dtype, r in report["allocator"].items()
            ],
        ),
    ]
    return "\n\n".join([caption, *tables])


if __name__ == "__main__":
    raise SystemExit(main())
