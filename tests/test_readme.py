"""The README's Python snippets run, and its tables are the measured ones."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import omniglot_data_home

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.slow
@pytest.mark.omniglot
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, monkeypatch, tmp_path, omniglot):
    monkeypatch.setenv("SKLEARN_PROTONET_DATA", str(omniglot_data_home()))
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {})


def test_readme_table_matches_the_benchmark_results():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "update_readme.py"), "--check"],
        check=False,
    )
    assert result.returncode == 0, "run python benchmarks/update_readme.py"
