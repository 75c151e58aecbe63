"""Speed benchmarks, measured side by side in one process.

    python benchmarks/speed.py [--rounds 5] [--episodes 10] [--compile]

Runs interleaved rounds (A, B, C, C, B, A, ...) so machine noise hits every
contender alike, and reports each one's best round and the ratios. CPU only.
Everything runs with the settings a user gets by default (no process-wide
malloc setting) unless --keep-freed-memory; the allocator table compares both
in fresh processes. Writes benchmarks/results/speed.json and .md, naming the
CPU (model and precision flags):

1. meta-training throughput on Conv4 with the paper's episode (60-way,
   5 support + 5 query, 1x28x28): EpisodicTrainer (default, and bfloat16
   mixed precision) against plain PyTorch episodic loops with our Conv4 and
   with a straightforward ``torch.nn`` Conv4 (contiguous layout, ReLU before
   max-pool), and easyfsl's PrototypicalNetworks with the straightforward
   module and easyfsl's own TaskSampler when easyfsl is installed
   (``pip install --no-deps easyfsl==1.5.0``: its requirements pull the
   newest torchvision, which pulls a CUDA torch; see import_easyfsl);
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
7. two trainings one after the other on all threads against the same two
   side by side in two processes of one thread each;
8. in fresh processes, glibc's default malloc against
   sklearn_protonet.runtime.keep_freed_memory(): a raw training step, the
   raw forward in 1,024-row calls and predict (which keeps freed memory only
   while it runs, runtime.freed_memory_kept);
9. (with Omniglot data) predict's images/s and agreement with float32 at
   each inference_dtype, from benchmarks/inference.py.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import random
import sys
import time
import types
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import inference
import numpy as np
import torch
from _common import environment, machine_line, markdown_table, write_results
from joblib import Parallel, delayed
from sklearn.neighbors import NearestCentroid
from torch import nn

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.distances import episode_logits
from sklearn_protonet.episodes import EpisodeSampler, episode_target
from sklearn_protonet.modules import Conv4
from sklearn_protonet.runtime import keep_freed_memory

N_WAY, N_SHOT, N_QUERY = 60, 5, 5
PLAIN = "plain PyTorch loop, straightforward torch.nn Conv4"
EASYFSL = "easyfsl PrototypicalNetworks, straightforward torch.nn Conv4"
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


def straightforward_conv4() -> Conv4:
    """Conv4 as a user would write it in ``torch.nn``: contiguous layout and
    the paper's [conv, BatchNorm, ReLU, max-pool] order, float32."""
    return papers_block_order(Conv4(channels_last=False))


def plain_loop(
    X: torch.Tensor, y: np.ndarray, n_episodes: int, seed: int, make_module=Conv4
):
    """A plain PyTorch episodic loop: same loss and optimizer as the trainer."""
    torch.manual_seed(seed)
    module = make_module()
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


def import_easyfsl():
    """easyfsl's ``PrototypicalNetworks``, ``TaskSampler`` and
    ``FewShotDataset``, its own code, unchanged.

    easyfsl's package ``__init__`` files import every method and dataset it
    has, and some of those import torchvision (its ResNets, ImageFolder),
    which the methods timed here never use. torchvision's PyPI wheels link
    CUDA libraries that a CPU-only torch lacks, so on such a machine the
    packages are entered without their ``__init__`` files and only the
    modules needed are imported. Raises ImportError when easyfsl is absent.
    """
    try:
        from easyfsl.datasets import FewShotDataset
        from easyfsl.methods import PrototypicalNetworks
        from easyfsl.samplers import TaskSampler
    except (ImportError, RuntimeError):  # torchvision fails with RuntimeError
        spec = importlib.util.find_spec("easyfsl")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("easyfsl is not installed") from None
        root = Path(spec.submodule_search_locations[0])
        for name in (
            "easyfsl",
            "easyfsl.datasets",
            "easyfsl.methods",
            "easyfsl.samplers",
        ):
            package = types.ModuleType(name)
            package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
            sys.modules[name] = package
        FewShotDataset = importlib.import_module(
            "easyfsl.datasets.few_shot_dataset"
        ).FewShotDataset
        # What task_sampler imports from the package.
        sys.modules["easyfsl.datasets"].FewShotDataset = FewShotDataset
        PrototypicalNetworks = importlib.import_module(
            "easyfsl.methods.prototypical_networks"
        ).PrototypicalNetworks
        TaskSampler = importlib.import_module(
            "easyfsl.samplers.task_sampler"
        ).TaskSampler
    return PrototypicalNetworks, TaskSampler, FewShotDataset


def easyfsl_loop():
    """A timer factory for easyfsl's PrototypicalNetworks, or the reason it
    cannot run here; and a note on how its episodes were drawn.

    easyfsl trains with episodes from its ``TaskSampler`` through a
    DataLoader; where that sampler does not work with the installed torch
    (easyfsl 1.5.0 passes ``data_source`` to ``Sampler.__init__``, which
    torch no longer takes), the episodes come from this package's sampler and
    the note says so.
    """
    try:
        PrototypicalNetworks, TaskSampler, FewShotDataset = import_easyfsl()
    except ImportError as error:
        return None, f"easyfsl does not import: {error}"

    class Images(FewShotDataset):
        def __init__(self, X: torch.Tensor, y: np.ndarray):
            self.X, self.y = X, [int(label) for label in y]

        def __getitem__(self, item: int):
            return self.X[item], self.y[item]

        def __len__(self) -> int:
            return len(self.y)

        def get_labels(self) -> list[int]:
            return self.y

    def easyfsl_episodes(X, y, n_episodes, seed):
        random.seed(seed)  # TaskSampler draws from Python's random
        sampler = TaskSampler(Images(X, y), N_WAY, N_SHOT, N_QUERY, n_episodes)
        loader = torch.utils.data.DataLoader(
            Images(X, y),
            batch_sampler=sampler,
            collate_fn=sampler.episodic_collate_fn,
        )
        for support, support_labels, query, query_labels, _ in loader:
            yield support, support_labels, query, query_labels

    def our_episodes(X, y, n_episodes, seed):
        sampler = EpisodeSampler(y, N_WAY, N_SHOT, N_QUERY)
        rng = np.random.default_rng(seed)
        target = episode_target(N_WAY, N_SHOT, N_QUERY)
        for _ in range(n_episodes):
            support, query = sampler.sample(rng)
            yield (
                X[torch.from_numpy(support.ravel())],
                target["support"],
                X[torch.from_numpy(query.ravel())],
                target["query"],
            )

    note = "easyfsl's TaskSampler"
    try:
        TaskSampler(Images(torch.zeros(1), np.zeros(1)), 1, 1, 0, 1)
        episodes = easyfsl_episodes
    except TypeError as error:
        note = f"this package's episodes: easyfsl's TaskSampler fails ({error})"
        episodes = our_episodes

    def run(X: torch.Tensor, y: np.ndarray, n_episodes: int, seed: int) -> float:
        torch.manual_seed(seed)
        model = PrototypicalNetworks(straightforward_conv4())
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        start = time.perf_counter()
        tasks = episodes(X, y, n_episodes, seed)
        for support, support_labels, query, query_labels in tasks:
            model.process_support_set(support, support_labels)
            loss = torch.nn.functional.cross_entropy(model(query), query_labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start

    return run, note


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


def _fresh_process_timings(keep_memory: bool) -> dict[str, float]:
    """Seconds of each allocator-sensitive operation in this (fresh) process."""
    if keep_memory:
        keep_freed_memory()
    torch.manual_seed(0)
    X, y = fake_omniglot(n_classes=100, per_class=41)
    episode = torch.from_numpy(X[:EPISODE_IMAGES])
    out = {
        f"training step, {dtype}": training_step(
            Conv4(), episode, autocast=dtype == "bfloat16"
        )()
        for dtype in ("float32", "bfloat16")
    }
    module = Conv4().eval()
    batch = X[:4096]
    support = np.arange(0, 41 * 10, 41)  # one image of each of 10 classes
    clf = PrototypicalClassifier(module).fit(X[support], y[support])
    timers = {
        "raw forward, 1024-row calls (4,096 images)": _raw_forward(module, batch, 1024),
        "predict (4,096 images)": _timer(lambda: clf.predict(batch)),
    }
    for name, timer in timers.items():
        timer()  # warm-up
        out[name] = min(timer() for _ in range(3))
    return out


def allocator(rounds: int) -> dict:
    """Fresh processes (malloc settings cannot be undone within one), default
    malloc against keep_freed_memory(); and default predict against the best
    way to embed those images in either configuration."""
    times: dict[bool, list[dict]] = {False: [], True: []}
    for round_ in range(rounds):
        for keep in (False, True) if round_ % 2 == 0 else (True, False):
            with ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")
            ) as pool:
                times[keep].append(pool.submit(_fresh_process_timings, keep).result())
    out = {}
    for name in times[False][0]:
        default = min(t[name] for t in times[False])
        kept = min(t[name] for t in times[True])
        out[name] = {
            "default_malloc_seconds": default,
            "keep_freed_memory_seconds": kept,
            "speed_up": default / kept,
        }
    embedding = [name for name in out if "4,096" in name]
    best = min(
        min(out[n]["default_malloc_seconds"], out[n]["keep_freed_memory_seconds"])
        for n in embedding
    )
    out["default predict vs best configuration"] = (
        best / out["predict (4,096 images)"]["default_malloc_seconds"]
    )
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
    contenders = {
        "EpisodicTrainer (default)": lambda: trainer_run(X, y, n, 0),
        "plain PyTorch loop, our Conv4": lambda: plain_loop(X_tensor, y, n, 0),
        PLAIN: lambda: plain_loop(X_tensor, y, n, 0, straightforward_conv4),
        "EpisodicTrainer (bfloat16 autocast)": lambda: trainer_run(
            X, y, n, 0, autocast_dtype="bfloat16"
        ),
    }
    easyfsl, easyfsl_note = easyfsl_loop()
    if easyfsl is not None:
        contenders[EASYFSL] = lambda: easyfsl(X_tensor, y, n, 0)
    seconds = interleaved(contenders, rounds)
    out = {
        name: {
            "seconds_per_episode": s / n,
            "episodes_per_s": n / s,
            "images_per_s": n * EPISODE_IMAGES / s,
            "vs_trainer_default": seconds["EpisodicTrainer (default)"] / s,
        }
        for name, s in seconds.items()
    }
    if easyfsl is None:
        out[EASYFSL] = {"not_measured": easyfsl_note}
    else:
        out[EASYFSL]["note"] = easyfsl_note
    return out


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


def inference_rows(data_home, rounds: int, n_episodes: int) -> dict:
    """9. benchmarks/inference.py's CPU report, or why it was not run."""
    try:
        return inference.measure("cpu", data_home, rounds, n_episodes)
    except FileNotFoundError as error:
        return {"not_measured": f"no Omniglot data: {error}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=10, help="per timing")
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile (slow)"
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="apply keep_freed_memory() process-wide for sections 1-7 "
        "(default: the settings a user gets)",
    )
    parser.add_argument("--data-home", default=None, help="Omniglot data home")
    parser.add_argument(
        "--inference-episodes", type=int, default=100, help="per cell, section 9"
    )
    args = parser.parse_args()
    keep_memory = args.keep_freed_memory and keep_freed_memory()
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
        "inference": inference_rows(args.data_home, rounds, args.inference_episodes),
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
    malloc = (
        "keep_freed_memory() for the first tables"
        if env["keep_freed_memory"]
        else "the defaults a user gets (no process-wide malloc setting)"
    )
    caption = (
        f"{machine_line(env)}, {env['date']}; best of {env['rounds']} "
        f"interleaved rounds; {malloc}; the allocator table compares both. "
        "Produced by `python benchmarks/speed.py`."
    )
    rows = []
    for name, r in report["meta_training"].items():
        if "not_measured" in r:
            rows.append([f"meta-training, {name}", "not measured", r["not_measured"]])
            continue
        note = f" ({r['note']})" if "note" in r else ""
        rows.append(
            [
                f"meta-training, {name}{note}",
                f"{r['episodes_per_s']:.2f} episodes/s "
                f"({r['images_per_s']:.0f} images/s)",
                f"{r['vs_trainer_default']:.2f}x EpisodicTrainer (default)",
            ]
        )
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
    allocator = dict(report["allocator"])
    versus_best = allocator.pop("default predict vs best configuration")
    tables = [
        markdown_table(["measurement", "value", "ratio"], rows),
        markdown_table(
            [
                "in a fresh process",
                "default malloc",
                "keep_freed_memory()",
                "speed-up",
            ],
            [
                [
                    name,
                    f"{r['default_malloc_seconds']:.3f} s",
                    f"{r['keep_freed_memory_seconds']:.3f} s",
                    f"{r['speed_up']:.2f}x",
                ]
                for name, r in allocator.items()
            ],
        )
        + f"\n\nDefault predict: {versus_best:.2f}x the speed of the best "
        "configuration for embedding those images.",
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
    ]
    if "not_measured" in report["inference"]:
        tables.append(f"Inference precision: {report['inference']['not_measured']}")
    else:
        tables.append(inference.tables(report["inference"]))
    return "\n\n".join([caption, *tables])


if __name__ == "__main__":
    raise SystemExit(main())
