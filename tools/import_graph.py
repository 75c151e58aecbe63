"""Print the package's internal import graph, as docs/developers/layout.rst shows it.

    python tools/import_graph.py [--check | --write]

One line per module that imports others of the package (module-level and
function-level imports alike): ``module ─> imported, ...``. ``--check``
compares the block in ``docs/developers/layout.rst`` with a fresh one and
exits with status 1 when they differ; ``--write`` puts a fresh one there.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sklearn_protonet"
LAYOUT = ROOT / "docs" / "developers" / "layout.rst"
START, END = ".. import-graph:start", ".. import-graph:end"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def _imports(path: Path, name: str) -> set[str]:
    """Package modules imported by the module at ``path`` (relative imports)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        target = [*base, *(node.module.split(".") if node.module else [])]
        if node.module is None:  # from . import a, b
            found.update(".".join([*target, alias.name]) for alias in node.names)
        else:
            found.add(".".join(target))
    known = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    result = set()
    for module in found:
        while module and module not in known:
            module = module.rpartition(".")[0]
        if module and module != name:
            result.add(module)
    return result


def graph() -> str:
    lines = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        imported = _imports(path, name)
        if imported:
            lines.append(f"{name} ─> {', '.join(sorted(imported))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare with layout.rst")
    mode.add_argument("--write", action="store_true", help="update layout.rst")
    args = parser.parse_args(argv)
    fresh = graph()
    text = LAYOUT.read_text()
    if args.write:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        block = "\n".join("   " + line for line in fresh.splitlines())
        LAYOUT.write_text(
            f"{head}{START}\n\n.. code-block:: none\n\n{block}\n\n{END}{tail}"
        )
        return 0
    if not args.check:
        print(fresh)
        return 0
    block = text.split(START, 1)[1].split(END, 1)[0]
    committed = "\n".join(line.strip() for line in block.splitlines() if "─>" in line)
    if committed != fresh:
        print(
            "docs/developers/layout.rst's import graph is stale; run "
            "python tools/import_graph.py --write."
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
