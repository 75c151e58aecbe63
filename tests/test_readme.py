"""The README's commands and snippets stay true, and its figures are measured."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sklearn_protonet.__main__ import _parse, build_parser

from .conftest import omniglot_data_home

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)
COMMANDS = re.findall(r"```bash\n(.*?)```", README, re.S)


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 2


def test_the_first_snippet_needs_no_data_home():
    assert "load_omniglot(" not in SNIPPETS[0]


@pytest.mark.slow
@pytest.mark.omniglot
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, monkeypatch, omniglot):
    monkeypatch.setenv("SKLEARN_PROTONET_DATA", str(omniglot_data_home()))
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {})


def test_ci_runs_the_readme_test_command_verbatim():
    command = re.findall(r"```bash\n(.*?)\n```", _section("Run the tests"), re.S)
    assert command == ['pip install -e ".[tests]" && pytest']
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command[0] in ci


def test_readme_demo_command_is_the_command_line():
    block = re.findall(r"```bash\n(.*?)\n```", _section("The demo"), re.S)
    command, _, alternative = block[0].partition("#")
    assert shlex.split(command) == ["sklearn-protonet"]
    assert "python -m sklearn_protonet" in alternative
    args = _parse(build_parser("sklearn-protonet"), shlex.split(command)[1:])
    assert args.command == "pretrained"


def test_readme_results_match_the_benchmark_results():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "update_readme.py"), "--check"],
        check=False,
    )
    assert result.returncode == 0, "run python benchmarks/update_readme.py"
