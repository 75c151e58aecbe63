"""Training speed, measured side by side in one process (part of
``python benchmarks/speed.py``; run alone, it updates its sections of
benchmarks/results/speed.json and .md):

1. meta-training throughput on Conv4 with the paper's episode (60-way,
   5 support + 5 query, 1x28x28): EpisodicTrainer (default, and bfloat16
   mixed precision) against plain PyTorch episodic loops with our Conv4 and
   with a straightforward ``torch.nn`` Conv4 (contiguous layout, ReLU before
   max-pool), and easyfsl's PrototypicalNetworks with the straightforward
   module and easyfsl's own TaskSampler when easyfsl is installed
   (``pip install --no-deps easyfsl==1.5.0``: its requirements pull the
   newest torchvision, which pulls a CUDA torch; see import_easyfsl);
5. achieved GFLOP/s of Conv4 forward+backward against a large float32 matmul;
6. each speed lever's effect on one training step of that episode, added
   one at a time (``--compile`` adds torch.compile, which compiles for about
   a minute first);
7. two trainings one after the other on all threads against the same two
   side by side in two processes of one thread each.

    python benchmarks/speed_training.py [--rounds 5] [--episodes 10] [--compile]
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from _common import environment, fake_omniglot, interleaved, markdown_table, timed
from joblib import Parallel, delayed
from torch import nn

from sklearn_protonet import EpisodicTrainer
from sklearn_protonet.distances import episode_logits
from sklearn_protonet.episodes import EpisodeSampler, episode_target
from sklearn_protonet.modules import Conv4
from sklearn_protonet.runtime import keep_freed_memory

N_WAY, N_SHOT, N_QUERY = 60, 5, 5
PLAIN = "plain PyTorch loop, straightforward torch.nn Conv4"
EASYFSL = "easyfsl PrototypicalNetworks, straightforward torch.nn Conv4"
EPISODE_IMAGES = N_WAY * (N_SHOT + N_QUERY)
#: The keys of speed.json this script measures.
SECTIONS = ("meta_training", "gflops", "levers", "two_trainings")


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

    seconds = interleaved({"matmul": timed(matmul), "conv4": timed(conv4_step)}, rounds)
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


def measure(X, y, rounds: int, n: int, compile_: bool, keep_memory: bool) -> dict:
    """This script's sections of the report, on ``fake_omniglot`` rows."""
    episode = torch.from_numpy(X[:EPISODE_IMAGES])
    return {
        "meta_training": meta_training(X, y, n, rounds),
        "gflops": gflops(episode, rounds),
        "levers": levers(episode, rounds, compile_),
        "two_trainings": trainings_in_turn_or_side_by_side(
            X, y, n, rounds, keep_memory
        ),
    }


def rows(report: dict) -> list[list[str]]:
    """The meta-training and GFLOP/s rows of the speed table."""
    out = []
    for name, r in report["meta_training"].items():
        if "not_measured" in r:
            out.append([f"meta-training, {name}", "not measured", r["not_measured"]])
            continue
        note = f" ({r['note']})" if "note" in r else ""
        out.append(
            [
                f"meta-training, {name}{note}",
                f"{r['episodes_per_s']:.2f} episodes/s "
                f"({r['images_per_s']:.0f} images/s)",
                f"{r['vs_trainer_default']:.2f}x EpisodicTrainer (default)",
            ]
        )
    g = report["gflops"]
    out.append(
        [
            "Conv4 forward+backward",
            f"{g['Conv4 forward+backward']:.1f} GFLOP/s",
            f"{g['conv4_fraction_of_matmul']:.2f}x a float32 matmul "
            f"({g['float32 matmul 2048x2048']:.1f} GFLOP/s)",
        ]
    )
    return out


def tables(report: dict) -> list[str]:
    """The speed levers' and the two trainings' tables."""
    return [
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


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of the training timings (speed.py takes them too)."""
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=10, help="per timing")
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile (slow)"
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="apply keep_freed_memory() process-wide for the timings in this "
        "process (default: the settings a user gets)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = add_arguments(parser).parse_args(argv)
    from speed import update_sections

    keep_memory = args.keep_freed_memory and keep_freed_memory()
    torch.manual_seed(0)
    X, y = fake_omniglot()
    part = measure(X, y, args.rounds, args.episodes, args.compile, keep_memory)
    env = environment(
        keep_freed_memory=keep_memory,
        rounds=args.rounds,
        episodes_per_timing=args.episodes,
    )
    update_sections(part, env, "python benchmarks/speed_training.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
