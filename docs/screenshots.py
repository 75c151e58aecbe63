"""Screenshot built documentation pages at desktop and phone width.

    make -C docs html-noplot   # or html
    python docs/screenshots.py [PAGE ...] [--out DIR] [--height PIXELS]

Each PAGE (a path under docs/_build/html without ``.html``; by default a
set covering every kind of page) is opened in headless Chromium at 1280 px
and at 390 px wide, and saved as ``<out>/<page>-<width>.png`` (default out:
docs/_build/screenshots). Look at them to check how the pages read: tables
that overflow, clipped code, formulas left as raw LaTeX.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
HTML = DOCS / "_build" / "html"
PAGES = [
    "index",
    "install",
    "user_guide/few_shot",
    "user_guide/errors",
    "api",
    "generated/sklearn_protonet.PrototypicalClassifier",
    "developers/layout",
    "generated/sklearn_protonet.modules.Conv4",
    "faq",
    "changelog",
    "reproduce",
    "performance",
]
WIDTHS = {"desktop": 1280, "phone": 390}


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("No Chromium found (Debian: apt-get install chromium).")


def screenshot(browser: str, page: Path, out: Path, width: int, height: int) -> None:
    """One headless screenshot of ``page`` (an HTML file) into ``out``."""
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            # Offline: nothing may come from the network.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=5000",  # let MathJax typeset
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", default=PAGES, help="pages to take")
    parser.add_argument("--out", type=Path, default=DOCS / "_build" / "screenshots")
    parser.add_argument("--height", type=int, default=2400, help="window height")
    args = parser.parse_args(argv)
    browser = _browser()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.pages:
        page = HTML / f"{name}.html"
        if not page.is_file():
            raise SystemExit(f"{page} not found: build the docs first.")
        for label, width in WIDTHS.items():
            out = args.out / f"{name.replace('/', '-')}-{label}.png"
            screenshot(browser, page, out, width, args.height)
            print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
