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
    out, err = capsys.readouterr()
    # Progress goes to stderr (the results alone to stdout), step by step.
    assert "Embedding with omniglot-conv4-1shot" in err
    assert "NearestCentroid, 20-way 5-shot" in err
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
    out, err = capsys.readouterr()
    assert err == ""  # --no-progress: no bar, neither training's nor scoring's
    ours = _cells(out, "PrototypicalClassifier (meta-trained Conv4)")
    pixels = _cells(out, "NearestCentroid (raw pixels)")
    assert len(ours) == len(pixels) == 2
    assert re.search(r"5-way 1-shot +5-way 5-shot", out)
    # The table is read out in words: each cell's gain, and why it is small.
    gain = re.search(r"5-way 1-shot: ([+-][\d.]+) points", out)
    assert gain and float(gain.group(1)) == pytest.approx(ours[0] - pixels[0], abs=0.11)
    assert "Why the gap is small" in out


def test_progress_bars_can_be_silenced(capsys):
    assert (
        main(["--episodes", "2", "--ways", "5", "--shots", "1", "--no-progress"]) == 0
    )
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv", [["--help"], ["digits", "--help"], ["--episodes", "0"], ["--version"]]
)
def test_help_and_argument_errors_answer_before_importing_torch(argv):
    """--help and a mistyped option answer at once: nothing heavy is imported
    (benchmarks/startup.py measures the time)."""
    code = (
        "import sys\n"
        "from sklearn_protonet.__main__ import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'skorch', 'sklearn', 'numpy', 'pandas', 'scipy'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]", result.stdout


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
