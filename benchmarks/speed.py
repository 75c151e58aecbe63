"""Speed benchmarks, measured side by side in one process.

    python benchmarks/speed.py [--rounds 5] [--episodes 10] [--compile]

Runs interleaved rounds (A, B, C, C, B, A, ...) so machine noise hits every
contender alike, and reports each one's best round and the ratios. CPU only.
Everything runs with the settings a user gets by default (no process-wide
malloc setting) unless --keep-freed-memory; the allocator table compares both
in fresh processes. Writes benchmarks/results/speed.json and .md, naming the
CPU (model and precision flags). The measurements live with their concern,
and each of those scripts, run alone, updates its sections of the results:

- training speed, ``speed_training.py``: meta-training throughput against
  plain PyTorch loops and easyfsl (1), achieved GFLOP/s (5), the speed levers
  of one training step (6), two trainings in turn or side by side (7);
- prediction speed, ``speed_prediction.py``: predict against the raw forward
  (2), fit latency (3), the identity encoder against NearestCentroid (4);
- memory allocator, ``speed_allocator.py``: glibc's default malloc against
  keep_freed_memory() in fresh processes (8);
- inference precision, ``inference.py`` (with Omniglot data): predict's
  images/s and agreement with float32 at each inference_dtype (9).
"""

from __future__ import annotations

import argparse
import json

import inference
import speed_allocator
import speed_prediction
import speed_training
import torch
from _common import (
    RESULTS,
    environment,
    fake_omniglot,
    machine_line,
    markdown_table,
    write_results,
)

from sklearn_protonet.runtime import keep_freed_memory


def inference_rows(data_home, rounds: int, n_episodes: int) -> dict:
    """9. benchmarks/inference.py's CPU report, or why it was not run."""
    try:
        return inference.measure("cpu", data_home, rounds, n_episodes)
    except FileNotFoundError as error:
        return {"not_measured": f"no Omniglot data: {error}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    speed_training.add_arguments(parser)
    parser.add_argument("--data-home", default=None, help="Omniglot data home")
    parser.add_argument(
        "--inference-episodes", type=int, default=100, help="per cell, section 9"
    )
    args = parser.parse_args(argv)
    keep_memory = args.keep_freed_memory and keep_freed_memory()
    torch.manual_seed(0)
    X, y = fake_omniglot()
    rounds, n = args.rounds, args.episodes
    training = speed_training.measure(X, y, rounds, n, args.compile, keep_memory)
    report = {
        "meta_training": training["meta_training"],
        **speed_prediction.measure(X, y, rounds),
        **{key: training[key] for key in ("gflops", "levers", "two_trainings")},
        "allocator": speed_allocator.allocator(rounds),
        "inference": inference_rows(args.data_home, rounds, args.inference_episodes),
        "environment": environment(
            keep_freed_memory=keep_memory, rounds=rounds, episodes_per_timing=n
        ),
    }
    write_results("speed", report, render(report))
    print(render(report))
    return 0


def update_sections(part: dict, env: dict, command: str) -> None:
    """Put ``part`` (some of the report's sections, measured alone by
    ``command`` in ``env``) into speed.json, keep the other sections, and
    rewrite speed.md; its caption names the sections measured apart."""
    path = RESULTS / "speed.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run python benchmarks/speed.py first")
    report = json.loads(path.read_text(encoding="utf-8"))
    report.update(part)
    report.setdefault("measured_apart", {}).update(
        {section: {"command": command, **env} for section in part}
    )
    write_results("speed", report, render(report))
    print(render(report))


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
    apart = report.get("measured_apart", {})
    if apart:
        caption += " Measured apart: " + "; ".join(
            f"{section} by `{facts['command']}` on {machine_line(facts)}, "
            f"{facts['date']}"
            for section, facts in apart.items()
        )
        caption += "."
    rows = speed_training.rows(report)[:-1]  # meta-training, first
    rows += speed_prediction.rows(report)
    rows += speed_training.rows(report)[-1:]  # then the GFLOP/s row
    tables = [
        markdown_table(["measurement", "value", "ratio"], rows),
        *speed_allocator.tables(report),
        *speed_training.tables(report),
    ]
    if "not_measured" in report["inference"]:
        tables.append(f"Inference precision: {report['inference']['not_measured']}")
    else:
        tables.append(inference.tables(report["inference"]))
    return "\n\n".join([caption, *tables])


if __name__ == "__main__":
    raise SystemExit(main())
