"""glibc's malloc against ``keep_freed_memory()``, in fresh processes (part
of ``python benchmarks/speed.py``; run alone, it updates its section of
benchmarks/results/speed.json and .md):

8. in fresh processes, glibc's default malloc against
   sklearn_protonet.runtime.keep_freed_memory(): a raw training step, the
   raw forward in 1,024-row calls and predict (which keeps freed memory only
   while it runs, runtime.freed_memory_kept).

    python benchmarks/speed_allocator.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from _common import environment, fake_omniglot, markdown_table, timed
from speed_prediction import raw_forward
from speed_training import EPISODE_IMAGES, training_step

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import Conv4
from sklearn_protonet.runtime import keep_freed_memory

#: The key of speed.json this script measures.
SECTIONS = ("allocator",)


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
        "raw forward, 1024-row calls (4,096 images)": raw_forward(module, batch, 1024),
        "predict (4,096 images)": timed(lambda: clf.predict(batch)),
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


def tables(report: dict) -> list[str]:
    """The allocator table and default predict against the best setting."""
    allocator = dict(report["allocator"])
    versus_best = allocator.pop("default predict vs best configuration")
    return [
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
        "configuration for embedding those images."
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    from speed import update_sections

    env = environment(keep_freed_memory=False, rounds=args.rounds)
    update_sections(
        {"allocator": allocator(args.rounds)},
        env,
        "python benchmarks/speed_allocator.py",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
