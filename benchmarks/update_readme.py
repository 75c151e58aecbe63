"""Copy the measured tables into README.md (between their markers).

    python benchmarks/update_readme.py [--check]

The tables are written by benchmarks/omniglot.py (omniglot-cpu.md) and
benchmarks/speed.py (speed.md); nothing here is typed by hand. --check exits
1 when the README is out of date (used by the tests).
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: README marker name -> the results file copied between its markers.
TABLES = {"omniglot-table": "omniglot-cpu.md", "speed-table": "speed.md"}


def rendered_readme() -> str:
    readme = (ROOT / "README.md").read_text()
    for marker, filename in TABLES.items():
        start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        block = f"{start}\n{(RESULTS / filename).read_text().strip()}\n{end}"
        head, rest = readme.split(start, 1)
        readme = head + block + rest.split(end, 1)[1]
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    new = rendered_readme()
    if args.check:
        return int(new != (ROOT / "README.md").read_text())
    (ROOT / "README.md").write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
