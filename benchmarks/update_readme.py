"""Write the measured results into README.md (between their markers).

    python benchmarks/update_readme.py [--demo] [--check]

Nothing between the markers is typed by hand: the demo's output comes from
``benchmarks/results/demo.md`` (``--demo`` reruns the demo command to write
it), the headline lines from the JSON results of benchmarks/omniglot.py and
benchmarks/speed.py; the full tables are on the documentation's pages.
--check exits 1 when the README is out of date (used by the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

from sklearn_protonet.datasets._base import atomic_writer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS_URL = "https://sklearn-protonet.readthedocs.io/en/latest"
DEMO_COMMAND = "python -m sklearn_protonet"


def _read(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def _percent(cell: dict) -> str:
    return f"{cell['accuracy']:.1f} %"


def omniglot_headline() -> str:
    """One line on the paper's Omniglot protocol, from omniglot-cpu.json."""
    facts = _read("omniglot-cpu.json")
    ours, paper = facts["results"], facts["paper"]
    cells = ["5-way 1-shot", "20-way 1-shot"]
    measured = ", ".join(f"{_percent(ours[c])} {c}" for c in cells)
    published = ", ".join(f"{paper[c]:.1f} %" for c in cells)
    minutes = facts["train_seconds"] / 60
    return (
        f"**Omniglot, the paper's protocol:** {measured} (paper: {published}), "
        f"meta-trained in {minutes:.0f} minutes on "
        f"{facts['machine'].get('torch_threads', '?')} CPU threads; "
        f"[all four cells and how they were measured]({DOCS_URL}/reproduce.html)."
    )


def speed_headline() -> str:
    """One line on training and prediction speed, from speed.json."""
    facts = _read("speed.json")
    training, env = facts["meta_training"], facts["environment"]
    predict = facts["prediction"]["predict"]["vs_best_raw_forward"]
    if "vs_plain_loop" in training["EpisodicTrainer (default)"]:  # before 0.2
        default = training["EpisodicTrainer (default)"]["vs_plain_loop"]
        trains = f"trains at {default:.2f}x the speed of a plain PyTorch loop"
        machine = f"{env.get('cpu_count', '?')} CPUs, with keep_freed_memory()"
        settings = ""
    else:  # rows hold each contender's speed relative to the trainer's
        plain = training["plain PyTorch loop, straightforward torch.nn Conv4"]
        ours = training["plain PyTorch loop, our Conv4"]
        trains = (
            f"trains at {1 / plain['vs_trainer_default']:.2f}x the speed of a "
            "plain PyTorch loop with a straightforward Conv4 "
            f"({1 / ours['vs_trainer_default']:.2f}x with our Conv4)"
        )
        machine = env["machine"].get("cpu_model", "?")
        settings = ", with the defaults"
    return (
        f"**Speed{settings}:** `EpisodicTrainer` {trains} and `predict` "
        f"runs at {predict:.2f}x the raw module's forward pass "
        f"({machine}, {env.get('date', '?')}); "
        f"[all measurements]({DOCS_URL}/performance.html)."
    )


def demo_output() -> str:
    """The demo command's output, as recorded in results/demo.md."""
    return (RESULTS / "demo.md").read_text(encoding="utf-8").strip()


#: README marker name -> the function that writes what goes between them.
BLOCKS = {
    "demo-output": lambda: f"```text\n$ {DEMO_COMMAND}\n{demo_output()}\n```",
    "omniglot-headline": omniglot_headline,
    "speed-headline": speed_headline,
}


def rendered_readme() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for marker, render in BLOCKS.items():
        start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        if start not in readme or end not in readme:
            raise SystemExit(f"README.md lacks the markers {start} ... {end}")
        head, rest = readme.split(start, 1)
        readme = f"{head}{start}\n{render()}\n{end}{rest.split(end, 1)[1]}"
    return readme


def _write_atomic(path: Path, text: str) -> None:
    with atomic_writer(path) as out:
        out.write(text.encode("utf-8"))


def record_demo() -> None:
    """Run the demo command with its defaults; keep what it prints."""
    from sklearn_protonet.__main__ import main as demo

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        demo([])
    _write_atomic(RESULTS / "demo.md", out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="rerun the demo first")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    if args.demo:
        record_demo()
    new = rendered_readme()
    if args.check:
        return int(new != (ROOT / "README.md").read_text(encoding="utf-8"))
    _write_atomic(ROOT / "README.md", new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
