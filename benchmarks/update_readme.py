"""Copy the measured Omniglot table into README.md (between its markers).

    python benchmarks/update_readme.py [--check]

The table itself is written by benchmarks/omniglot.py; nothing here is typed
by hand. --check exits 1 when the README is out of date (used by the tests).
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- omniglot-table:start -->", "<!-- omniglot-table:end -->"


def rendered_readme(profile: str = "cpu") -> str:
    readme = (ROOT / "README.md").read_text()
    table = (ROOT / "benchmarks" / "results" / f"omniglot-{profile}.md").read_text()
    block = f"{START}\n{table.strip()}\n{END}"
    return re.sub(re.escape(START) + ".*?" + re.escape(END), block, readme, flags=re.S)


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
