"""Scaling out with dask: prediction throughput and what travels to the workers.

Two measurements, run side by side in one invocation:

1. **Batch prediction** of ``--n-images`` Omniglot-sized images (28 x 28,
   float32) with the pretrained Omniglot Conv4 encoder, 20 prototypes:
   ``clf.predict`` in this one process (1 torch thread, then 2), against
   :func:`sklearn_protonet.dask.predict` on a ``LocalCluster`` of 2 worker
   processes with 1 thread each. The images are generated block by block
   from fixed seeds, in memory here and on the workers there (persisted
   before the clock starts), so both sides predict the same pixels and the
   labels are checked equal. Memory: the peak resident memory of this
   process during its prediction (above its level before), and of each
   worker, sampled every 0.2 s.
2. **The fitted encoder's trips to the workers** during an episodic
   evaluation on the cluster (``--n-episodes`` 20-way 1-shot episodes):
   ``cross_val_score`` (without and with joblib's ``scatter=[clf, X, y]``)
   against :func:`~sklearn_protonet.model_selection.episodic_score`. Each
   worker counts how many times it deserialised the encoder; times the
   encoder's pickled size, that is the bytes it received.

Usage::

    nice -n 5 python benchmarks/scale.py            # writes results/scale.{json,md}
    python benchmarks/scale.py --n-images 20000 --n-episodes 40 --no-write
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import threading
import time

import numpy as np
import torch

# This folder is on sys.path (the script's own), and the spawned dask workers
# inherit it: they import _scale_counting by name.
from _common import (
    MB,
    environment,
    markdown_table,
    peak_resident_bytes,
    resident_bytes,
    write_results,
)
from _scale_counting import CountingConv4, unpickled

from sklearn_protonet import PrototypicalClassifier

PIXELS = 28 * 28
N_CLASSES = 20


def images(block: int, size: int) -> np.ndarray:
    """``size`` images of block number ``block``, the same wherever made."""
    return np.random.default_rng([0, block]).random((size, PIXELS), dtype=np.float32)


def block_sizes(n_images: int, chunk: int) -> list[int]:
    return [min(chunk, n_images - start) for start in range(0, n_images, chunk)]


def classifier(encoder) -> PrototypicalClassifier:
    support = np.random.default_rng(1).random((N_CLASSES, PIXELS), dtype=np.float32)
    return PrototypicalClassifier(encoder).fit(support, np.arange(N_CLASSES))


def pretrained_encoder():
    from sklearn_protonet.pretrained import load_pretrained

    return load_pretrained("omniglot-conv4-1shot")


def in_process(clf, X: np.ndarray, threads: int) -> tuple[dict, np.ndarray]:
    """Prediction in this process with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    clf.predict(X[:256])  # warm-up
    before, start = resident_bytes(), time.perf_counter()
    labels = clf.predict(X)
    seconds = time.perf_counter() - start
    peak = peak_resident_bytes()
    return {
        "setting": f"1 process, {threads} torch thread{'s' * (threads > 1)}",
        "seconds": seconds,
        "images_per_s": len(X) / seconds,
        "peak_memory_mb": {"this process": max(peak - before, 0) / MB},
    }, labels


class WorkerMemory:
    """Peak resident memory of each worker, sampled in the background."""

    def __init__(self, client, every: float = 0.2):
        self.client, self.every = client, every
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            for worker, rss in self.client.run(resident_bytes).items():
                self.peak[worker] = max(self.peak.get(worker, 0), rss)
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def on_cluster(client, clf, n_images: int, chunk: int) -> tuple[dict, np.ndarray]:
    """Prediction with sklearn_protonet.dask on the cluster's workers."""
    import dask
    import dask.array as da
    from distributed import get_task_stream, wait

    from sklearn_protonet.dask import predict

    sizes = block_sizes(n_images, chunk)
    blocks = [
        da.from_delayed(dask.delayed(images)(i, s), (s, PIXELS), np.float32)
        for i, s in enumerate(sizes)
    ]
    X = da.concatenate(blocks).persist()
    wait(X)
    # Warm-up on every worker: imports, torch's first calls.
    client.run(clf.predict, np.zeros((256, PIXELS), np.float32))
    with WorkerMemory(client) as memory, get_task_stream(client) as stream:
        start = time.perf_counter()
        labels = predict(clf, X).compute()
        seconds = time.perf_counter() - start
    # Seconds the workers spent computing blocks: against 2 x wall time, it
    # tells slow computing (a busy machine) from scheduling overhead.
    busy = sum(
        part["stop"] - part["start"]
        for task in stream.data
        if "_call" in str(task["key"])
        for part in task["startstops"]
        if part["action"] == "compute"
    )
    return {
        "setting": "dask LocalCluster, 2 workers x 1 thread",
        "seconds": seconds,
        "images_per_s": n_images / seconds,
        "peak_memory_mb": {
            f"worker {i}": rss / MB for i, rss in enumerate(memory.peak.values())
        },
        "data_per_worker_mb": n_images * PIXELS * 4 / len(memory.peak) / MB,
        "worker_busy_seconds": busy,
    }, labels


def transfers(client, n_episodes: int) -> dict:
    """How often the encoder reaches the workers in an episodic evaluation."""
    import joblib
    from sklearn.model_selection import cross_val_score

    from sklearn_protonet.model_selection import EpisodicSplit, episodic_score

    # The pretrained, frozen trainer, its Conv4 swapped for a counting twin:
    # clones share a fitted encoder, so only trips to the workers count.
    encoder = pretrained_encoder()
    counting = CountingConv4(input_shape=(1, 28, 28))
    counting.load_state_dict(encoder.estimator.module_.state_dict())
    encoder.estimator.module_ = counting.eval()
    clf = PrototypicalClassifier(encoder)
    X = images(10**6, 50 * N_CLASSES)
    y = np.repeat(np.arange(50), N_CLASSES)
    cv = EpisodicSplit(n_way=20, n_shot=1, n_query=5, n_episodes=n_episodes)
    runs = {
        "cross_val_score": lambda: cross_val_score(clf, X, y, cv=cv, n_jobs=-1),
        "cross_val_score, scatter=[clf, X, y]": lambda: cross_val_score(
            clf, X, y, cv=cv, n_jobs=-1
        ),
        "episodic_score": lambda: episodic_score(clf, X, y, cv, n_jobs=-1),
    }
    size = len(pickle.dumps(counting))
    out = {"encoder_pickled_bytes": size, "n_episodes": n_episodes, "runs": []}
    for name, run in runs.items():
        scatter = [clf, X, y] if "scatter" in name else None
        before = client.run(unpickled)
        start = time.perf_counter()
        with joblib.parallel_config(backend="dask", scatter=scatter):
            run()
        seconds = time.perf_counter() - start
        after = client.run(unpickled)
        trips = sum(after[w] - before[w] for w in after)
        out["runs"].append(
            {"how": name, "seconds": seconds, "trips": trips, "mb": trips * size / MB}
        )
    return out


def versions() -> dict:
    import dask
    import distributed

    return environment(
        dask=dask.__version__,
        distributed=distributed.__version__,
        load_average_at_start=os.getloadavg(),
    )


def render(report: dict) -> str:
    rows = [
        [
            r["setting"],
            f"{r['images_per_s']:,.0f}",
            f"{r['seconds']:.1f}",
            ", ".join(f"{k}: {v:,.0f}" for k, v in r["peak_memory_mb"].items()),
        ]
        for r in report["prediction"]
    ]
    table = markdown_table(
        ["Prediction, 28x28 images", "images/s", "seconds", "peak memory (MB)"], rows
    )
    t = report["transfers"]
    trips = markdown_table(
        ["Episodic evaluation on the cluster", "encoder trips", "MB sent", "seconds"],
        [
            [r["how"], str(r["trips"]), f"{r['mb']:.1f}", f"{r['seconds']:.1f}"]
            for r in t["runs"]
        ],
    )
    env = report["environment"]
    return (
        f"# Scaling out with dask\n\n{report['n_images']:,} images of 28x28 "
        f"float32, in blocks of {report['chunk']:,}; Conv4 encoder, "
        f"{N_CLASSES} prototypes. Worker memory is the whole worker process "
        "(Python, torch, its share of the images: "
        f"{report['prediction'][-1]['data_per_worker_mb']:,.0f} MB). The "
        f"machine has {env['machine']['cpu_count']} cores (load average "
        f"{env['load_average_at_start'][0]:.1f} at the start; the run was "
        "niced): compare the rows with each other, not with other machines."
        "\n\n"
        f"{table}\n\n{t['n_episodes']} episodes of 20-way 1-shot; the encoder "
        f"pickles to {t['encoder_pickled_bytes'] / MB:.2f} MB.\n\n{trips}\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--n-episodes", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.n_images < 1 or args.chunk < 1 or args.n_episodes < 2:
        parser.error("--n-images and --chunk must be >= 1, --n-episodes >= 2.")

    from distributed import Client, LocalCluster

    clf = classifier(pretrained_encoder())
    sizes = block_sizes(args.n_images, args.chunk)
    X = np.concatenate([images(i, s) for i, s in enumerate(sizes)])
    report = {
        "n_images": args.n_images,
        "chunk": args.chunk,
        "environment": versions(),
        "prediction": [],
    }
    expected = None
    for threads in (1, 2):
        row, labels = in_process(clf, X, threads)
        report["prediction"].append(row)
        print(row, flush=True)
        expected = labels if expected is None else expected
        assert np.array_equal(labels, expected)
    del X
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        row, labels = on_cluster(client, clf, args.n_images, args.chunk)
        assert np.array_equal(labels, expected), "cluster labels differ"
        report["prediction"].append(row)
        print(row, flush=True)
        report["transfers"] = transfers(client, args.n_episodes)
        print(report["transfers"], flush=True)
    print(render(report))
    if not args.no_write:
        write_results("scale", report, render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
