"""What every benchmark script shares: the results folder, Markdown tables,
the machine and versions record, and atomic writing of results files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
import skorch
import torch

import sklearn_protonet
from sklearn_protonet.datasets._base import atomic_writer
from sklearn_protonet.hardware import cpu_info

RESULTS = Path(__file__).resolve().parent / "results"


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
