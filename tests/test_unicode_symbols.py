"""The Unicode symbols data set: loader, images, metadata parsed from names,
reproducible rendering, and zero-shot learning on it end to end."""

import importlib.util
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_protonet.datasets import load_unicode_symbols
from sklearn_protonet.datasets._unicode_symbols import FAMILIES, symbol_metadata
from sklearn_protonet.modules import MLP
from sklearn_protonet.zero_shot import (
    ZeroShotEncoders,
    ZeroShotPrototypicalClassifier,
    ZeroShotTrainer,
)

ROOT = Path(__file__).resolve().parents[1]
CORE_FONTS = {
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "DejaVuSerif",
    "DejaVuSerif-Bold",
}


@pytest.fixture(scope="module")
def symbols():
    return load_unicode_symbols()


def test_loader_shapes_and_values(symbols):
    n = len(symbols.target)
    assert symbols.images.shape == (n, 28, 28)
    assert symbols.data.shape == (n, 784) and symbols.data.dtype == np.float32
    assert np.shares_memory(symbols.data, symbols.images)
    names, counts = np.unique(symbols.target, return_counts=True)
    np.testing.assert_array_equal(symbols.target_names, names)
    assert len(names) > 700 and set(counts) == {6}
    # Ink 1.0 on 0.0, every image inked, in steps of 1/255.
    assert symbols.data.min() == 0.0 and symbols.data.max() == 1.0
    assert (symbols.data.max(axis=1) > 0.5).all()
    np.testing.assert_allclose(
        symbols.data * 255, np.rint(symbols.data * 255), atol=1e-4
    )
    assert set(symbols.fonts) <= CORE_FONTS and len(symbols.fonts) == n
    assert list(symbols.metadata.index) == list(names)
    assert list(symbols.family.index) == list(names)
    assert set(symbols.family) == set(FAMILIES)
    X, y = load_unicode_symbols(return_X_y=True)
    np.testing.assert_array_equal(X, symbols.data)
    np.testing.assert_array_equal(y, symbols.target)
    assert "Bitstream Vera" in symbols.DESCR


def test_description_counts_match_the_data(symbols):
    lines = symbols.DESCR.splitlines()
    assert f"{len(symbols.target_names)} Unicode symbols" in symbols.DESCR
    per_class = len(symbols.target) // len(symbols.target_names)
    assert f"each rendered {per_class} times" in symbols.DESCR
    for name, count in symbols.family.value_counts().items():
        line = next(line for line in lines if line.startswith(f"``{name}``"))
        assert f" {count} " in line or f" {count}:" in line, (name, count, line)


def test_shipped_file_is_small():
    path = ROOT / "sklearn_protonet" / "datasets" / "data" / "unicode_symbols.npz"
    assert path.stat().st_size < 600_000


def test_metadata_is_parsed_from_the_unicode_names(symbols):
    table = symbols.metadata
    # Each label is the official name of the symbol's code point.
    for name, code in symbols.code_point.items():
        assert unicodedata.name(chr(code)) == name
    np.testing.assert_array_equal(
        table.to_numpy(), symbol_metadata(symbols.code_point.tolist()).to_numpy()
    )
    assert not table.duplicated().any(), "two symbols share a metadata row"
    assert ((table == 0) | (table == 1) | table.columns.str.startswith("block_")).all(
        axis=None
    )
    one_hot = table.filter(like="family_")
    assert (one_hot.sum(axis=1) == 1).all()


def test_braille_dots_match_the_code_points(symbols):
    # Unicode encodes dot k of a Braille cell as bit k-1 of (code - U+2800):
    # an independent check of what the parser read off the names.
    braille = symbols.code_point[symbols.family == "braille"]
    dots = symbols.metadata.loc[
        braille.index, [f"braille_dot_{k}" for k in range(1, 9)]
    ]
    bits = (braille.to_numpy()[:, None] - 0x2800) >> np.arange(8) & 1
    np.testing.assert_array_equal(dots.to_numpy(), bits)


def test_dominoes_and_cards_match_the_code_points(symbols):
    table = symbols.metadata
    for name, code in symbols.code_point[symbols.family == "domino"].items():
        row = table.loc[name]
        # Horizontal tiles from U+1F031, vertical from U+1F063: 7 * a + b.
        start = 0x1F063 if row["domino_vertical"] else 0x1F031
        if row["domino_back"]:
            assert code == start - 1
            continue
        first, second = divmod(code - start, 7)
        assert row[f"domino_first_{first}"] == row[f"domino_second_{second}"] == 1
        assert row.filter(like="domino_first_").sum() == 1
    suits = {0xA: "spades", 0xB: "hearts", 0xC: "diamonds", 0xD: "clubs"}
    ranks = "ace two three four five six seven eight nine ten jack knight queen king"
    for name, code in symbols.code_point[symbols.family == "card"].items():
        low = code & 0xF
        if 1 <= low <= 14:
            row = table.loc[name]
            assert row[f"card_suit_{suits[(code >> 4) & 0xF]}"] == 1
            assert row[f"card_rank_{ranks.split()[low - 1]}"] == 1


@pytest.mark.parametrize(
    "name, arms",
    [
        ("BOX DRAWINGS LIGHT HORIZONTAL", {"left": "light", "right": "light"}),
        ("BOX DRAWINGS LIGHT DOWN AND RIGHT", {"down": "light", "right": "light"}),
        (
            "BOX DRAWINGS UP HEAVY AND RIGHT DOWN LIGHT",
            {"up": "heavy", "right": "light", "down": "light"},
        ),
        (
            "BOX DRAWINGS DOWN SINGLE AND HORIZONTAL DOUBLE",
            {"down": "light", "left": "double", "right": "double"},
        ),
        (
            "BOX DRAWINGS DOUBLE VERTICAL AND LEFT",
            {"up": "double", "down": "double", "left": "double"},
        ),
        (
            "BOX DRAWINGS LIGHT LEFT AND HEAVY RIGHT",
            {"left": "light", "right": "heavy"},
        ),
        ("BOX DRAWINGS HEAVY DOUBLE DASH VERTICAL", {"up": "heavy", "down": "heavy"}),
    ],
)
def test_box_drawing_arms(symbols, name, arms):
    row = symbols.metadata.loc[name]
    found = {
        arm: weight
        for arm in ("up", "down", "left", "right")
        for weight in ("light", "heavy", "double")
        if row[f"box_{arm}_{weight}"] == 1
    }
    assert found == arms
    assert row["box_dashes_2"] == float("DOUBLE DASH" in name)


def test_every_box_arm_has_one_weight(symbols):
    box = symbols.metadata[symbols.family == "box"]
    for arm in ("up", "down", "left", "right"):
        assert (box.filter(regex=f"^box_{arm}_").sum(axis=1) <= 1).all()
    # Every box-drawing symbol has arms or diagonals.
    assert (
        box.filter(regex="^box_(up|down|left|right|diagonal)").sum(axis=1) > 0
    ).all()


def test_blocks_and_half_lines_keep_their_place_in_the_cell(symbols):
    # Drawn in the font's cell, not cropped to the ink: position is kept.
    def ink(name):
        return symbols.images[symbols.target == name].mean(axis=0)

    lower = ink("LOWER HALF BLOCK")
    assert lower[14:].sum() > 3 * lower[:14].sum()
    left = ink("BOX DRAWINGS LIGHT LEFT")
    assert left[:, :14].sum() > 3 * left[:, 14:].sum()
    quadrant = symbols.metadata.loc["QUADRANT UPPER LEFT AND LOWER RIGHT"]
    assert quadrant[["block_upper_left", "block_lower_right"]].tolist() == [1, 1]
    assert quadrant[["block_upper_right", "block_lower_left"]].tolist() == [0, 0]


def test_generator_reproduces_the_shipped_images():
    spec = importlib.util.spec_from_file_location(
        "make_unicode_symbols", ROOT / "tools" / "make_unicode_symbols.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    if not all((tool.FONTS / f"{f}.ttf").is_file() for f in CORE_FONTS):
        pytest.skip("fonts-dejavu-core is not installed")
    only = {0x2190, 0x2503, 0x2596, 0x25B2, 0x2835, 0x1F05B, 0x1F0B7}
    fresh = tool.build(only=only)
    with np.load(tool.OUT, allow_pickle=False) as shipped:
        keep = np.isin(shipped["code_points"], list(only))
        np.testing.assert_array_equal(
            fresh["code_points"], shipped["code_points"][keep]
        )
        np.testing.assert_array_equal(fresh["fonts"], shipped["fonts"][keep])
        # FreeType releases may differ in a grey level here and there.
        diff = np.abs(fresh["images"].astype(int) - shipped["images"][keep])
        assert diff.mean() < 1.0


def test_zero_shot_on_held_out_braille_end_to_end(symbols):
    """Meta-train on most Braille cells, classify the others from their dots."""
    braille = symbols.family.index[symbols.family == "braille"].to_numpy()
    rng = np.random.default_rng(0)
    unseen = rng.choice(braille, 10, replace=False)
    seen = np.isin(symbols.target, braille) & ~np.isin(symbols.target, unseen)
    test = np.isin(symbols.target, unseen)
    metadata = symbols.metadata.filter(like="braille_dot_")
    torch.manual_seed(0)
    pair = ZeroShotEncoders(
        MLP(784, hidden_sizes=(64,), out_features=16),
        MLP(metadata.shape[1], hidden_sizes=(16,), out_features=16),
    )
    trainer = ZeroShotTrainer(
        pair,
        n_way=10,
        n_query=5,
        episodes_per_epoch=30,
        max_epochs=4,
        random_state=0,
        verbose=0,
    )
    trainer.fit(symbols.data[seen], symbols.target[seen], metadata=metadata)
    with warnings.catch_warnings():
        # One metadata row per class: scikit-learn's "many classes" hint.
        warnings.filterwarnings("ignore", message="The number of unique classes")
        clf = ZeroShotPrototypicalClassifier(trainer).fit(metadata.loc[unseen])
    predicted = clf.predict(symbols.data[test])
    assert set(predicted) <= set(unseen)
    assert clf.score(symbols.data[test], symbols.target[test]) > 0.4  # chance 0.1
