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
    table = out.split("95% CI:")[1].splitlines()
    assert table[2].split()[:2] == ["5-way", "1-shot"]
    assert "5-way 5-shot" in table[2]
    assert table[3].startswith("PrototypicalClassifier (meta-trained Conv4)")
    assert table[4].startswith("NearestCentroid (raw pixels)")
    assert table[3].count("±") == table[4].count("±") == 2
