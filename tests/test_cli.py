"""The README's main command, on a tiny budget."""

from sklearn_protonet.__main__ import main


def test_digits_command_prints_the_comparison_table(capsys):
    assert (
        main(
            [
                "--epochs",
                "1",
                "--episodes",
                "5",
                "--eval-episodes",
                "20",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| PrototypicalClassifier (meta-trained Conv4) |" in out
    assert "| NearestCentroid (raw pixels) |" in out
    assert "5-way 1-shot | 5-way 5-shot" in out
