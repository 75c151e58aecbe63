"""The developer layout page tells the truth about the package."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location(
        "import_graph", ROOT / "tools" / "import_graph.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_graph_on_the_layout_page_is_current():
    assert _tool().main(["--check"]) == 0


def test_every_module_is_on_the_layout_page():
    text = (ROOT / "docs" / "developers" / "layout.rst").read_text()
    package = ROOT / "sklearn_protonet"
    for path in package.glob("*.py"):
        if path.name in {"__init__.py"}:
            continue
        assert f"``{path.name}``" in text, path.name


def test_every_module_states_its_job():
    for path in (ROOT / "sklearn_protonet").rglob("*.py"):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and docstring.strip(), path
