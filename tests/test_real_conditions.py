"""benchmarks/real_conditions.py: its photographs and its tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import real_conditions  # benchmarks/, on the path by tests/conftest.py


def test_photographs_are_seeded_and_distinct_classes():
    classes = real_conditions.symbol_classes(limit=30)
    assert len({char for char, _ in classes}) == 30
    assert all(real_conditions.FONTS[0] in faces for _, faces in classes)
    char, faces = classes[5]
    first = real_conditions.degrade(char, faces, np.random.default_rng((0, 5, 1)))
    again = real_conditions.degrade(char, faces, np.random.default_rng((0, 5, 1)))
    other = real_conditions.degrade(char, faces, np.random.default_rng((0, 5, 2)))
    np.testing.assert_array_equal(first, again)
    assert first.shape == (64, 64) and first.dtype == np.uint8
    assert not np.array_equal(first, other)
    # Dark ink on lighter paper, never pure white paper or black ink only.
    assert np.median(first) > np.percentile(first, 1) + 20


def test_printed_symbols_are_clean_light_on_dark_prints():
    images, labels = real_conditions.printed_symbols(per_class=2)
    n_classes = len(real_conditions.symbol_classes())
    assert images.shape == (2 * n_classes, 64, 64) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.repeat(np.arange(n_classes), 2))
    # Black paper, white ink, nothing in between but the glyphs' edges.
    assert np.median(images) == 0 and images.max() == 255
    assert not np.array_equal(images[0], images[1])  # two prints of one class


@pytest.mark.slow
def test_benchmark_writes_its_tables(tmp_path):
    record = real_conditions.main(
        [
            "--classes=24",
            "--episodes=2",
            "--adapted-episodes=2",
            "--omniglot-episodes=0",
            "--shots",
            "1",
            f"--output-dir={tmp_path}",
        ]
    )
    rows = {**real_conditions.ROWS, **real_conditions.STEPS}
    assert set(record["accuracy"]["1"]) == set(rows)
    assert all(cell["n"] == 2 for cell in record["accuracy"]["1"].values())
    markdown = (tmp_path / "real_conditions.md").read_text()
    assert "normalised pixels" in markdown and "What each step" in markdown
    assert (
        json.loads((tmp_path / "real_conditions.json").read_text())["n_classes"] == 24
    )


def test_symbols_encoder_reads_photographs_the_robust_one_cannot():
    """omniglot-conv4-symbols was meta-trained with the photographs'
    conditions (grey paper, faint ink, blur, noise): on photographs as read,
    before any normalisation, it is far ahead of the robust encoder."""
    from sklearn.model_selection import cross_val_score

    from sklearn_protonet import PrototypicalClassifier
    from sklearn_protonet.model_selection import EpisodicSplit
    from sklearn_protonet.pretrained import load_pretrained

    photos, y, _ = real_conditions.symbol_photographs(limit=60)
    images = real_conditions.read_all(photos)["as read"]
    cv = EpisodicSplit(10, 1, 5, n_episodes=20, random_state=0)
    means = {
        name: cross_val_score(
            PrototypicalClassifier(load_pretrained(f"omniglot-conv4-{name}")),
            images,
            y,
            cv=cv,
        ).mean()
        for name in ("robust", "symbols")
    }
    assert means["symbols"] > means["robust"] + 0.2, means
