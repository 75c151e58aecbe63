"""The command line: both demos on small budgets, help texts and refusals."""

import re
import subprocess
import sys

import pytest

from sklearn_protonet.__main__ import build_parser, main


def _cells(out: str, row: str) -> list[float]:
    line = next(line for line in out.splitlines() if line.startswith(row))
    return [float(cell) for cell in re.findall(r"([\d.]+) ±", line)]


def test_default_command_scores_the_shipped_encoders_on_the_sample(capsys):
    assert main(["--episodes", "5", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"5-way 1-shot +5-way 5-shot +20-way 1-shot +20-way 5-shot", out)
    assert "over 5 episodes per cell" in out
    encoder = _cells(out, "PrototypicalClassifier (pretrained Conv4)")
    pixels = _cells(out, "NearestCentroid (raw pixels)")
    # The point of the demo: the meta-learned embedding wins by tens of points.
    assert len(encoder) == len(pixels) == 4
    assert all(e > p + 20 for e, p in zip(encoder, pixels, strict=True))


def test_digits_command_prints_the_comparison_table(capsys):
    argv = ["digits", "--epochs", "1", "--train-episodes", "5", "--episodes", "20"]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert len(_cells(out, "PrototypicalClassifier (meta-trained Conv4)")) == 2
    assert len(_cells(out, "NearestCentroid (raw pixels)")) == 2
    assert re.search(r"5-way 1-shot +5-way 5-shot", out)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--epochs", "3"],
            "'pretrained' does not take --epochs (an option of 'digits')",
        ),
        (["pretrained", "--train-episodes=3"], "does not take --train-episodes"),
        (["digits", "--device", "cuda"], "'digits' does not take --device"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["--episodes", "0"], "must be a positive integer, got 0"),
        (["--episode", "5"], "unrecognized arguments"),  # no abbreviations
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_inapplicable_options_are_refused_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_episodes_the_sample_cannot_fill_are_refused_before_any_work():
    with pytest.raises(SystemExit, match="--ways must be at most 100"):
        main(["--ways", "101"])
    with pytest.raises(SystemExit, match=r"--shots plus --queries at most 20"):
        main(["--shots", "6", "--queries", "15"])


def test_help_shows_commands_examples_and_defaults():
    parser = build_parser("sklearn-protonet")
    text = parser.format_help()
    assert text.startswith("usage: sklearn-protonet")
    assert "pretrained" in text and "digits" in text
    assert "examples:" in text and "\n  sklearn-protonet digits\n" in text
    for name, defaults in {
        "pretrained": ["(default: [5, 20])", "(default: 200)", "(default: cpu)"],
        "digits": ["(default: [5])", "(default: 1000)", "(default: 5)"],
    }.items():
        sub = parser.command_parsers[name].format_help()
        assert all(d in sub for d in defaults), sub
        # Every option says what it does.
        assert not re.search(r"^  --\S+( \S+)?\n(?!\s{10,})", sub, re.M), sub


@pytest.mark.parametrize(
    "argv0, prog",
    [
        ("/usr/bin/sklearn-protonet", "sklearn-protonet"),
        ("/site-packages/sklearn_protonet/__main__.py", "python -m sklearn_protonet"),
    ],
)
def test_prog_is_the_command_the_user_typed(argv0, prog, monkeypatch):
    monkeypatch.setattr(sys, "argv", [argv0])
    assert build_parser().format_usage().startswith(f"usage: {prog} ")


def test_python_dash_m_help_names_itself():
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_protonet", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("usage: python -m sklearn_protonet")
