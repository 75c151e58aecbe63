"""docs/check_links.py finds links to missing pages and anchors."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
_spec = importlib.util.spec_from_file_location("check_links", DOCS / "check_links.py")
check_links = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_links)


def test_broken_anchors_and_pages_are_found(tmp_path):
    (tmp_path / "generated").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="generated/a.html#mod.A">ok</a> <a href="#top">ok</a>'
        '<h1 id="top">x</h1> <a href="https://example.org/#x">elsewhere</a>'
        '<a href="generated/a.html#mod.B">no anchor</a> <a href="gone.html">no page</a>'
    )
    (tmp_path / "generated" / "a.html").write_text(
        '<dt id="mod.A"><span id="pkg.mod.A"></span></dt><a href="../index.html">up</a>'
    )
    # The theme's template fragments are not pages.
    (tmp_path / "_static" / "macros.html").write_text('<a href="{{ x }}">t</a>')
    assert check_links.broken_links(tmp_path) == {
        "index.html": [
            "generated/a.html#mod.B (no such anchor)",
            "gone.html (no such file)",
        ]
    }
    assert check_links.main([str(tmp_path)]) == 1
    (tmp_path / "index.html").write_text('<a href="generated/a.html#pkg.mod.A">ok</a>')
    assert check_links.main([str(tmp_path)]) == 0
