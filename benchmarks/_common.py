"""What every benchmark script shares: the results folder, Markdown tables,
the machine and versions record, atomic writing of results files, the
confidence interval, interleaved timing, memory readings and the data
loaders that more than one script uses."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sklearn
import skorch
import torch

import sklearn_protonet
from sklearn_protonet.datasets._base import atomic_writer
from sklearn_protonet.hardware import cpu_info
from sklearn_protonet.model_selection import mean_confidence_interval

RESULTS = Path(__file__).resolve().parent / "results"
MB = 2**20


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def environment(**extra) -> dict:
    """Versions, machine and date of a run, plus the script's own ``extra``
    facts (seed, settings...). The CPU's model and precision flags are
    recorded because results differ from machine to machine."""
    cpu = cpu_info()
    return {
        "versions": {
            "sklearn_protonet": sklearn_protonet.__version__,
            "torch": torch.__version__,
            "skorch": skorch.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu["model"],
            # The instruction sets that decide which precision is fast.
            "cpu_flags": cpu["flags"],
            "torch_cpu_capability": cpu["torch_capability"],
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **extra,
    }


def machine_line(env: dict) -> str:
    """One line naming the machine of ``environment()``'s record, for captions."""
    machine = env["machine"]
    flags = ", ".join(machine.get("cpu_flags") or []) or "flags unknown"
    gpu = f"; GPU {machine['gpu']}" if machine.get("gpu") else ""
    return (
        f"{machine.get('cpu_model', machine['processor'])} ({flags}), "
        f"{machine['cpu_count']} CPUs, torch {env['versions']['torch']} with "
        f"{machine['torch_threads']} threads{gpu}"
    )


def write_results(
    name: str, record: dict, markdown: str, folder: Path | None = None
) -> Path:
    """Write ``<folder>/<name>.json`` and ``<name>.md`` atomically (default
    folder: ``benchmarks/results``); returns the JSON file's path."""
    folder = Path(folder or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, text in (
        (".json", json.dumps(record, indent=2) + "\n"),
        (".md", markdown.rstrip("\n") + "\n"),
    ):
        with atomic_writer(folder / f"{name}{suffix}") as handle:
            handle.write(text.encode("utf-8"))
    return folder / f"{name}.json"


def publish(
    name: str, record: dict, report: Callable[[dict], str], folder=None
) -> dict:
    """Write ``record`` and its Markdown ``report(record)`` as ``name`` (see
    :func:`write_results`), print the Markdown; returns ``record``."""
    markdown = report(record)
    write_results(name, record, markdown, folder)
    print(markdown)
    return record


def interval(scores, percent: bool = True) -> dict:
    """Mean and 95 % half-width of per-episode ``scores`` (the library's
    :func:`~sklearn_protonet.model_selection.mean_confidence_interval`), in %
    unless ``percent=False``, with the number of episodes ``n``."""
    scale = 100.0 if percent else 1.0
    mean, half = mean_confidence_interval(scale * np.asarray(scores, dtype=float))
    return {"mean": mean, "ci95": half, "n": len(scores)}


def cell(result: dict) -> str:
    """An :func:`interval` as a table cell: mean ± half-width."""
    return f"{result['mean']:.1f} ± {result['ci95']:.1f}"


def timed(call: Callable[[], object]) -> Callable[[], float]:
    """``call`` as a contender of :func:`interleaved`: it returns the seconds
    the call took (waiting for the GPU's queue when there is one)."""

    def run() -> float:
        start = time.perf_counter()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return run


def interleaved(contenders: dict[str, Callable[[], float]], rounds: int) -> dict:
    """Run each contender once per round, in turn, reversing the order every
    other round; return each one's best time in seconds.

    Each contender returns the seconds it measured (see :func:`timed`). On a
    shared machine noise only ever adds time, so the best of several rounds
    estimates the undisturbed cost; reversing the order cancels any advantage
    of running first or after a particular contender.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds):
        names = list(contenders) if round_ % 2 == 0 else list(contenders)[::-1]
        for name in names:
            times[name].append(contenders[name]())
    return {name: min(t) for name, t in times.items()}


def resident_bytes() -> int:
    """This process's resident memory now, in bytes (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    """This process's peak resident memory so far, in bytes (``ru_maxrss``,
    which Linux reports in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def frozen_embeddings(encoder, X: np.ndarray) -> np.ndarray:
    """``encoder``'s embeddings of ``X``, as a frozen classifier's
    ``transform`` computes them (the two rows it is fitted on only make it
    fitted: in evaluation mode an embedding depends on its image alone)."""
    from sklearn_protonet import PrototypicalClassifier

    return PrototypicalClassifier(encoder).fit(X[:2], [0, 1]).transform(X)


def digits_read_28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits read by ``ImageReader(size=28)`` as a user's
    images would be: ``(n, 1, 28, 28)`` in [0, 1], and the labels."""
    from sklearn.datasets import load_digits

    from sklearn_protonet.preprocessing import ImageReader

    digits = load_digits()
    images = ImageReader(size=28).fit_transform(digits.images / 16.0)
    return images, digits.target


def fake_omniglot(n_classes: int = 1200, per_class: int = 20, seed: int = 0):
    """Omniglot-shaped random rows in memory, ``(n, 784)`` float32 of 0 and 1,
    and their labels (for timings: speed does not depend on the pixels)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n_classes * per_class, 784)) > 0.8).astype(np.float32)
    return X, np.repeat(np.arange(n_classes), per_class)
