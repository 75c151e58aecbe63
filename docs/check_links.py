"""Check every internal link of the built documentation.

    make -C docs html-noplot   # or html
    python docs/check_links.py [HTML_DIR]

Reads each ``.html`` file under HTML_DIR (default docs/_build/html) and
checks that every relative link (``href`` and ``src``) names a file that
exists and, when it has a ``#fragment``, an element with that ``id`` (or an
``<a name=...>``) in that file. The "[docs]" back-links of the highlighted
source pages (``_modules/``) and the "[source]" links of the API pages are
such links. Links to other sites are not fetched. Exits 1 and lists the
broken links when there are any.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent


class _Page(HTMLParser):
    """The anchors a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if attributes.get(name):
                self.anchors.add(attributes[name])
        for name in ("href", "src"):
            value = attributes.get(name)
            if value and not (tag == "link" and attributes.get("rel") == "preload"):
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def _pages(html: Path) -> list[Path]:
    """The site's pages: not the theme's template fragments under _static/."""
    return [
        path
        for path in sorted(html.rglob("*.html"))
        if path.relative_to(html).parts[0] not in ("_static", "_sources")
    ]


def broken_links(html: Path) -> dict[str, list[str]]:
    """``{page: [link, ...]}`` of the links that lead nowhere."""
    pages = {path: _parse(path) for path in _pages(html)}
    broken = defaultdict(list)
    for path, page in list(pages.items()):
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue  # another site, or inline data
            target = (
                (path.parent / unquote(parts.path)).resolve() if parts.path else path
            )
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken[str(path.relative_to(html))].append(f"{link} (no such file)")
                continue
            fragment = unquote(parts.fragment)
            if not fragment or target.suffix != ".html":
                continue
            if target not in pages:  # a file outside the tree
                pages[target] = _parse(target)
            if fragment not in pages[target].anchors:
                broken[str(path.relative_to(html))].append(f"{link} (no such anchor)")
    return dict(broken)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "html",
        nargs="?",
        type=Path,
        default=DOCS / "_build" / "html",
        help="the built site (default: docs/_build/html)",
    )
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        parser.error(f"no built site in {args.html}: run make -C docs html first")
    broken = broken_links(args.html)
    for page, links in broken.items():
        for link in links:
            print(f"{page}: {link}")
    n_pages = len(_pages(args.html))
    n_broken = sum(map(len, broken.values()))
    print(f"{n_broken} broken link(s) in {n_pages} pages.")
    return int(bool(broken))


if __name__ == "__main__":
    sys.exit(main())
