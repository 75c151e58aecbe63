"""Start-up time of the command line and of the package's import.

    python benchmarks/startup.py [--repeats N]

Each case runs in a fresh Python process, the cases interleaved round by
round so that a busy machine slows them alike; the median wall time over
the rounds is reported. Cases:

- ``sklearn-protonet --help``, a mistyped option and ``--version``: the
  command line answers before importing PyTorch, skorch or scikit-learn;
- ``import torch, sklearn.base``: the baseline, what any PyTorch and
  scikit-learn program pays;
- ``from sklearn_protonet import PrototypicalClassifier, EpisodicTrainer``:
  the package's estimators, with everything they import; its ratio to the
  baseline is the cost of the package itself.

Writes ``results/startup.json`` and ``results/startup.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import environment, markdown_table, write_results

CLI = "from sklearn_protonet.__main__ import main; import sys; sys.exit(main())"
CASES = {
    "sklearn-protonet --help": [CLI, "--help"],
    "sklearn-protonet --episodes 0 (an argument error)": [CLI, "--episodes", "0"],
    "sklearn-protonet --version": [CLI, "--version"],
    "import torch, sklearn.base (baseline)": ["import torch, sklearn.base"],
    "from sklearn_protonet import PrototypicalClassifier, EpisodicTrainer": [
        "from sklearn_protonet import PrototypicalClassifier, EpisodicTrainer"
    ],
}
BASELINE = "import torch, sklearn.base (baseline)"
PACKAGE = "from sklearn_protonet import PrototypicalClassifier, EpisodicTrainer"


def _wall(code_and_args: list[str]) -> float:
    """Seconds one fresh interpreter takes to run the case and exit."""
    code, *args = code_and_args
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds per case")
    args = parser.parse_args(argv)

    for case in CASES.values():  # warm the file cache: not what is measured
        _wall(case)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, case in CASES.items():
            times[name].append(_wall(case))
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = medians[PACKAGE] / medians[BASELINE]
    load = os.getloadavg()[0]
    record = environment(
        repeats=args.repeats,
        load_average_1min=load,
        seconds=times,
        median_seconds=medians,
        package_vs_baseline=ratio,
    )
    rows = [
        [f"`{name}`", f"{medians[name]:.2f}", f"{min(times[name]):.2f}"]
        for name in CASES
    ]
    markdown = (
        markdown_table(["case (fresh process)", "median (s)", "fastest (s)"], rows)
        + f"\n\nThe package's estimators import in {ratio:.2f}x the time of "
        f"PyTorch and scikit-learn alone; {args.repeats} interleaved rounds, "
        f"{record['machine']['cpu_count']} CPUs, 1-minute load average "
        f"{load:.1f} ({record['date']}).\n"
    )
    write_results("startup", record, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
