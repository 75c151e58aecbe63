"""Speed on a busy machine: the library's defaults against the best fixed
thread count, with none, one and two other processes keeping cores busy.

    python benchmarks/contention.py                 # about 15 minutes on 2 cores
    python benchmarks/contention.py --rounds 1 --paths predict --output-dir /tmp/x

Each path runs in a fresh Python process, as a user runs it:

- ``demo``: the README's ``python -m sklearn_protonet``, the whole command
  (imports included);
- ``predict``: ``PrototypicalClassifier(load_pretrained("omniglot-conv4-1shot"))``
  fitted on a 20-way 1-shot support set of the shipped Omniglot sample,
  predicting its 2,000 images;
- ``adapted fit``: ``PrototypicalClassifier(load_pretrained(
  "omniglot-conv4-robust"), fine_tune_steps=60)`` fitted on a 10-way
  5-shot support set of the sample;
- ``meta-training``: ``EpisodicTrainer(Conv4)``, 40 episodes of 20-way
  1-shot with 5 queries on the sample.

In the worker process each path runs once untimed (kernels chosen, memory
allocated) and once timed; the demo is timed from the outside. Settings:
``default`` (nothing set: the library follows the load,
``sklearn_protonet._threads``), ``OMP_NUM_THREADS=k`` for every ``k``
from 1 to the number of cores (a count fixed by the user), and, to tell
the causes apart, all cores with OpenMP's threads sleeping at once instead
of spinning while they wait (``OMP_WAIT_POLICY=PASSIVE``). Situations: no
other process, then one and two busy loops (a Python ``while True`` each, in
their own processes, started before and stopped after the situation's
runs). Within a situation, settings alternate round by round (order
reversed every other round); a path's time is the median over rounds.

Reports, per situation and path, the seconds of each setting and the speed
of the defaults relative to the best fixed count (best seconds / default
seconds; at least 0.8 is the target). Writes ``contention.json`` and
``contention.md`` into ``--output-dir`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, environment, machine_line, markdown_table, publish

PATHS = ("demo", "predict", "adapted fit", "meta-training")
WORKER_PATHS = PATHS[1:]


def _spin() -> None:
    while True:
        pass


# -- the worker: one fresh process per setting ---------------------------------


def _support(y: np.ndarray, n_way: int, n_shot: int) -> np.ndarray:
    """Row indices of the first ``n_shot`` examples of the first ``n_way``
    classes."""
    return np.concatenate([np.flatnonzero(y == c)[:n_shot] for c in range(n_way)])


def worker_calls() -> dict:
    """Each worker path as a call, its data prepared."""
    import torch

    from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
    from sklearn_protonet.datasets import load_omniglot_sample
    from sklearn_protonet.modules import Conv4
    from sklearn_protonet.pretrained import load_pretrained

    X, y = load_omniglot_sample(return_X_y=True)
    y = np.unique(y, return_inverse=True)[1]
    paper, robust = (
        load_pretrained(f"omniglot-conv4-{name}") for name in ("1shot", "robust")
    )
    one_shot, five_shot = _support(y, 20, 1), _support(y, 10, 5)

    def predict():
        PrototypicalClassifier(paper).fit(X[one_shot], y[one_shot]).predict(X)

    def adapted_fit():
        PrototypicalClassifier(robust, fine_tune_steps=60, random_state=0).fit(
            X[five_shot], y[five_shot]
        )

    def meta_training():
        torch.manual_seed(0)
        EpisodicTrainer(
            Conv4,
            n_way=20,
            n_shot=1,
            n_query=5,
            episodes_per_epoch=40,
            max_epochs=1,
            train_split=None,
            verbose=0,
            random_state=0,
        ).fit(X, y)

    return {
        "predict": predict,
        "adapted fit": adapted_fit,
        "meta-training": meta_training,
    }


def run_worker(paths: list[str]) -> None:
    """Print the seconds of each path (after one untimed run) as JSON."""
    calls = worker_calls()
    seconds = {}
    for path in paths:
        calls[path]()
        start = time.perf_counter()
        calls[path]()
        seconds[path] = time.perf_counter() - start
    print(json.dumps(seconds))


# -- the driver ---------------------------------------------------------------


def settings_for(cores: int) -> dict[str, dict]:
    """Each setting's environment variables."""
    fixed = {
        f"OMP_NUM_THREADS={k}": {"OMP_NUM_THREADS": str(k)} for k in range(1, cores + 1)
    }
    passive = {"OMP_NUM_THREADS": str(cores), "OMP_WAIT_POLICY": "PASSIVE"}
    return {"default": {}, **fixed, f"{cores} threads, passive wait": passive}


def _is_fixed_count(setting: str) -> bool:
    return setting.startswith("OMP_NUM_THREADS=")


def _environment_for(variables: dict) -> dict:
    unset = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {**env, **variables}


def run_setting(variables: dict, paths: list[str]) -> dict:
    """Seconds of each path of ``paths`` with the environment ``variables``."""
    env = _environment_for(variables)
    seconds = {}
    if "demo" in paths:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sklearn_protonet", "--no-progress"],
            env=env,
            check=True,
            capture_output=True,
        )
        seconds["demo"] = time.perf_counter() - start
    in_worker = [path for path in paths if path in WORKER_PATHS]
    if in_worker:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", ",".join(in_worker)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        seconds.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return seconds


def measure_situation(busy: int, settings: dict, paths, rounds: int) -> dict:
    """Median seconds per setting and path with ``busy`` busy loops running."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    for spinner in spinners:
        spinner.start()
    try:
        times = {setting: {path: [] for path in paths} for setting in settings}
        for round_ in range(rounds):
            order = list(settings) if round_ % 2 == 0 else list(settings)[::-1]
            for setting in order:
                for path, seconds in run_setting(settings[setting], paths).items():
                    times[setting][path].append(seconds)
        load = os.getloadavg()[0]
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()
    medians = {
        setting: {path: float(np.median(t)) for path, t in per_path.items()}
        for setting, per_path in times.items()
    }
    return {"busy_loops": busy, "load_average_1min": load, "seconds": medians}


def speeds(situation: dict) -> dict:
    """Per path: the best fixed setting, and the defaults' speed relative to
    it (best seconds / default seconds)."""
    seconds = situation["seconds"]
    fixed = [s for s in seconds if _is_fixed_count(s)]
    out = {}
    for path, default in seconds["default"].items():
        best = min(fixed, key=lambda s: seconds[s][path])
        out[path] = {"best": best, "relative_speed": seconds[best][path] / default}
    return out


SITUATION_NAMES = {0: "quiet", 1: "one core busy", 2: "two cores busy"}


def report(record: dict) -> str:
    env = record["environment"]
    settings = record["settings"]
    rows = []
    for situation in record["situations"]:
        name = SITUATION_NAMES.get(situation["busy_loops"], situation["busy_loops"])
        rel = speeds(situation)
        for path in record["paths"]:
            rows.append(
                [
                    name,
                    path,
                    *(f"{situation['seconds'][s][path]:.2f}" for s in settings),
                    f"{rel[path]['relative_speed']:.2f}x",
                ]
            )
    worst = min(
        r["relative_speed"] for s in record["situations"] for r in speeds(s).values()
    )
    header = [
        "situation",
        "path",
        *(f"{s} (s)" for s in settings),
        "defaults vs best fixed",
    ]
    runs = record.get("runs")
    measured = (
        " Measured: "
        + "; ".join(f"{path} on {date}" for path, date in runs.items())
        + "."
        if runs and len(set(runs.values())) > 1
        else ""
    )
    return (
        f"Median seconds over {record['rounds']} interleaved rounds, each in a "
        f"fresh process; busy loops are other processes spinning on a core. "
        f"Machine: {machine_line(env)}. `default` sets nothing (the library "
        "follows the load); `OMP_NUM_THREADS=k` fixes torch's threads; passive "
        "wait: all cores, OpenMP's waiting threads sleeping instead of spinning. "
        "The last column is the best fixed count's seconds over the defaults' "
        "(at least 0.8x wanted; above 1 the defaults beat every fixed count)."
        + measured
        + "\n\n"
        + markdown_table(header, rows)
        + f"\n\nWorst: {worst:.2f}x.\n"
    )


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds per situation")
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated, among: {', '.join(PATHS)}",
    )
    parser.add_argument(
        "--busy", default="0,1,2", help="busy loops per situation, comma-separated"
    )
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument(
        "--keep-other-paths",
        action="store_true",
        help="keep the paths not in --paths from the results file in --output-dir "
        "(the report says which run measured each path)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        run_worker(args.worker.split(","))
        return None
    paths = [p.strip() for p in args.paths.split(",")]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown --paths {unknown}; choose among {list(PATHS)}")
    cores = len(os.sched_getaffinity(0))
    settings = settings_for(cores)
    situations = [
        measure_situation(int(busy), settings, paths, args.rounds)
        for busy in args.busy.split(",")
    ]
    record = {
        "environment": environment(),
        "rounds": args.rounds,
        "settings": list(settings),
        "paths": paths,
        "situations": situations,
    }
    if args.keep_other_paths:
        record = with_other_paths(record, Path(args.output_dir or RESULTS))
    return publish("contention", record, report, args.output_dir)


def with_other_paths(record: dict, folder: Path) -> dict:
    """``record`` completed with the paths it did not measure, from the
    results file in ``folder`` (same settings, rounds and situations); the
    record says which paths come from which run."""
    previous = json.loads((folder / "contention.json").read_text())
    same = (
        previous["settings"] == record["settings"]
        and previous["rounds"] == record["rounds"]
        and [s["busy_loops"] for s in previous["situations"]]
        == [s["busy_loops"] for s in record["situations"]]
    )
    if not same:
        raise SystemExit(
            "--keep-other-paths: the results file was made with other settings, "
            "rounds or situations; measure every path instead."
        )
    runs = previous.get(
        "runs", dict.fromkeys(previous["paths"], previous["environment"]["date"])
    )
    paths = [p for p in PATHS if p in record["paths"] or p in previous["paths"]]
    for old, new in zip(previous["situations"], record["situations"], strict=True):
        for setting, seconds in new["seconds"].items():
            kept = old["seconds"][setting]
            new["seconds"][setting] = {p: seconds.get(p, kept.get(p)) for p in paths}
    date = record["environment"]["date"]
    record["runs"] = {**runs, **{p: date for p in record["paths"]}}
    record["paths"] = paths
    return record


if __name__ == "__main__":
    main()
