"""The README's commands and snippets stay true, and its figures are measured."""

import re
import shlex
import subprocess
import sys
import tempfile
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


def test_readme_leads_with_a_shipped_encoder_on_image_files():
    """What works first: a shipped encoder reading a folder of image files,
    then the demo, then meta-training."""
    assert "load_pretrained(" in SNIPPETS[0] and "ImageReader" in SNIPPETS[0]
    assert ".png" in SNIPPETS[0]
    sections = re.findall(r"^## (.+)$", README, re.M)
    order = ["Install", "Your own images", "The demo", "Meta-train your own encoder"]
    assert [title for title in sections if title in order] == order


def _run_snippet(index: int) -> None:
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {})


@pytest.mark.slow
def test_readme_first_snippet_runs_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its folder, here
    monkeypatch.setenv("SKLEARN_PROTONET_DATA", str(tmp_path / "no-data-home"))
    _run_snippet(0)
    accuracy = re.search(r"20-way 1-shot accuracy: ([\d.]+)%", capsys.readouterr().out)
    assert accuracy and float(accuracy.group(1)) > 80  # pixels: far below


@pytest.mark.slow
@pytest.mark.omniglot
@pytest.mark.parametrize("index", range(1, len(SNIPPETS)))
def test_readme_snippet_runs(index, monkeypatch, omniglot):
    monkeypatch.setenv("SKLEARN_PROTONET_DATA", str(omniglot_data_home()))
    _run_snippet(index)


def test_ci_runs_the_readme_test_command_verbatim():
    command = re.findall(r"```bash\n(.*?)\n```", _section("Run the tests"), re.S)
    assert command == ['pip install -e ".[tests]" && pytest']
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command[0] in ci


def test_ci_sets_no_variable_the_readme_does_not():
    """CI runs the tests in an environment no richer than a user's."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    exported = re.findall(r"^\s*export\s+(\w+)=", ci, re.M)
    assert exported, "the data home is given to CI by a variable"
    assert [name for name in exported if f"`{name}`" not in README] == []


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
