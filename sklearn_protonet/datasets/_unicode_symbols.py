"""Unicode symbols rendered from DejaVu fonts, with metadata parsed from their names.

The class metadata of this data set is nobody's handiwork: every attribute
is read off the character's official Unicode name (``unicodedata.name``),
whose grammar encodes the symbol's parts: which arms of a box-drawing
character are light, heavy or double, which dots of a Braille cell are
raised, the pips on each half of a domino tile, a card's rank and suit.
"""

from __future__ import annotations

import re
import unicodedata
from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._base import load_descr

__all__ = ["FAMILIES", "load_unicode_symbols", "symbol_metadata"]

#: The Unicode blocks of each family (first and last code point, inclusive).
FAMILIES: dict[str, tuple[int, int]] = {
    "arrow": (0x2190, 0x21FF),
    "box": (0x2500, 0x257F),
    "block": (0x2580, 0x259F),
    "shape": (0x25A0, 0x25FF),
    "braille": (0x2800, 0x28FF),
    "domino": (0x1F030, 0x1F09F),
    "card": (0x1F0A0, 0x1F0FF),
}

_SIZE = 28
_ARMS = ("up", "down", "left", "right")
_WEIGHTS = {"LIGHT": "light", "SINGLE": "light", "HEAVY": "heavy", "DOUBLE": "double"}
_SPANS = {
    "UP": ("up",),
    "DOWN": ("down",),
    "LEFT": ("left",),
    "RIGHT": ("right",),
    "VERTICAL": ("up", "down"),
    "HORIZONTAL": ("left", "right"),
}
_DASHES = {"DOUBLE": 2, "TRIPLE": 3, "QUADRUPLE": 4}
_NUMBERS = {"ONE": 1, "TWO": 2, "THREE": 3, "FIVE": 5, "SEVEN": 7}
_RANKS = (
    "ACE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN JACK KNIGHT QUEEN KING".split()
)
_SUITS = ("SPADES", "HEARTS", "DIAMONDS", "CLUBS")
# Nominal ink coverage of the three shades, as the Unicode charts draw them.
_SHADES = {"LIGHT": 0.25, "MEDIUM": 0.5, "DARK": 0.75}


def family_of(code_point: int) -> str | None:
    """The family whose block holds ``code_point``, or None."""
    for family, (first, last) in FAMILIES.items():
        if first <= code_point <= last:
            return family
    return None


def _box(name: str) -> dict[str, float]:
    """Arms and their weights: ``BOX DRAWINGS UP HEAVY AND RIGHT DOWN LIGHT``.

    Each clause between ``AND``s names directions (``VERTICAL`` is up and
    down) and at most one weight; a clause without one takes the weight of
    the clause before (``LIGHT DOWN AND RIGHT``).
    """
    words = name.removeprefix("BOX DRAWINGS ").split()
    out: dict[str, float] = {}
    if "DIAGONAL" in words:
        rest = " ".join(words)
        out["box_diagonal_rising"] = float("UPPER RIGHT" in rest or "CROSS" in rest)
        out["box_diagonal_falling"] = float("UPPER LEFT" in rest or "CROSS" in rest)
        return out
    for count_word, count in _DASHES.items():
        if f"{count_word} DASH" in " ".join(words):
            out[f"box_dashes_{count}"] = 1.0
            words = [w for w in words if w not in (count_word, "DASH")]
    if "ARC" in words:
        out["box_arc"] = 1.0
        words.remove("ARC")
    weight = None
    clauses = " ".join(words).split(" AND ")
    for clause in clauses:
        tokens = clause.split()
        named = [_WEIGHTS[t] for t in tokens if t in _WEIGHTS]
        weight = named[0] if named else weight
        for token in tokens:
            for arm in _SPANS.get(token, ()):
                out[f"box_{arm}_{weight}"] = 1.0
    return out


def _fraction(words: list[str]) -> float:
    """``HALF``, ``ONE QUARTER``, ``THREE EIGHTHS``... as a number."""
    if "HALF" in words:
        return 0.5
    count = next(_NUMBERS[w] for w in words if w in _NUMBERS)
    return count / (4 if words[-1].startswith("QUARTER") else 8)


def _block(name: str) -> dict[str, float]:
    """Ink in each quadrant of the cell: ``LOWER THREE EIGHTHS BLOCK``,
    ``QUADRANT UPPER LEFT AND LOWER RIGHT``, ``MEDIUM SHADE``."""
    words = name.split()
    quadrants = ("upper_left", "upper_right", "lower_left", "lower_right")
    if words[-1] == "SHADE":
        density = _SHADES[words[0]]
        return {"block_shade": 1.0} | {f"block_{q}": density for q in quadrants}
    if words[0] == "QUADRANT":
        parts = " ".join(words[1:]).split(" AND ")
        return {f"block_{p.lower().replace(' ', '_')}": 1.0 for p in parts}
    # A bar along one edge: the cell [0, 1]^2 with y down, clipped per quadrant.
    x0, x1, y0, y1 = 0.0, 1.0, 0.0, 1.0
    if words[0] != "FULL":
        size = _fraction(words[1:-1])
        edge = words[0]
        if edge == "UPPER":
            y1 = size
        elif edge == "LOWER":
            y0 = 1 - size
        elif edge == "LEFT":
            x1 = size
        else:
            x0 = 1 - size
    out = {}
    for q in quadrants:
        qy = (0.0, 0.5) if q.startswith("upper") else (0.5, 1.0)
        qx = (0.0, 0.5) if q.endswith("left") else (0.5, 1.0)
        width = max(0.0, min(x1, qx[1]) - max(x0, qx[0]))
        height = max(0.0, min(y1, qy[1]) - max(y0, qy[0]))
        if width * height:
            out[f"block_{q}"] = width * height * 4
    return out


def _braille(name: str) -> dict[str, float]:
    """Raised dots: ``BRAILLE PATTERN DOTS-1245`` (``BLANK``: none)."""
    match = re.search(r"DOTS-(\d+)$", name)
    dots = match.group(1) if match else ""
    return {f"braille_dot_{d}": 1.0 for d in dots} | {"braille_cell": 1.0}


def _domino(name: str) -> dict[str, float]:
    """Orientation and pips: ``DOMINO TILE VERTICAL-03-05``, ``... BACK``."""
    out = {"domino_vertical": float("VERTICAL" in name)}
    match = re.search(r"-(\d\d)-(\d\d)$", name)
    if match is None:
        out["domino_back"] = 1.0
        return out
    out[f"domino_first_{int(match.group(1))}"] = 1.0
    out[f"domino_second_{int(match.group(2))}"] = 1.0
    return out


def _card(name: str) -> dict[str, float]:
    """Rank and suit: ``PLAYING CARD SEVEN OF HEARTS``; backs and jokers."""
    words = name.removeprefix("PLAYING CARD ").split()
    if words[-1] in _SUITS:
        return {
            f"card_rank_{words[0].lower()}": 1.0,
            f"card_suit_{words[-1].lower()}": 1.0,
        }
    return {f"card_{'_'.join(words).lower().replace('-', '_')}": 1.0}


# Words that open a new part of a name: "LEFTWARDS ARROW WITH HOOK" is an
# arrow (the head) with a hook; "UPWARDS ARROW LEFTWARDS OF DOWNWARDS ARROW"
# is an upwards arrow and, in its "OF" part, a downwards one.
_CONNECTIVES = {"WITH", "OVER", "OF", "TO", "FROM", "ON", "CONTAINING"}


def _words(name: str) -> list[str]:
    """The words of a name, each tagged with the part it is in:
    ``word_<WORD>`` before the first connective, ``word_<CONNECTIVE>_<WORD>``
    after one."""
    part, out = "", []
    for word in re.split(r"[ -]", name):
        if word in _CONNECTIVES:
            part = f"{word}_"
        else:
            out.append(f"word_{part}{word}")
    return out


def symbol_metadata(code_points) -> pd.DataFrame:
    """Attributes of each symbol, parsed from its Unicode name.

    Every family has its own columns (``box_up_heavy``, ``braille_dot_3``,
    ``domino_first_5``, ``card_suit_hearts``...), zero for the other
    families, after a one-hot ``family_<name>`` block. Arrows and geometric
    shapes, whose names follow no fixed grammar, are described by the words
    of their names, tagged with the part of the name they are in:
    ``word_LEFTWARDS`` and ``word_HARPOON`` for the head of ``LEFTWARDS
    HARPOON WITH BARB UPWARDS``, ``word_WITH_BARB`` and ``word_WITH_UPWARDS``
    for the rest.

    Parameters
    ----------
    code_points : sequence of int
        Code points of the families in ``FAMILIES``.

    Returns
    -------
    DataFrame of shape (n_symbols, n_attributes)
        Indexed by the symbols' Unicode names, float columns (most 0/1; the
        quadrants of block elements hold the fraction of the quadrant inked).
    """
    names = [unicodedata.name(chr(c)) for c in code_points]
    families = [family_of(c) for c in code_points]
    if None in families:
        bad = [hex(c) for c, f in zip(code_points, families, strict=True) if f is None]
        raise ValueError(f"code points {bad[:10]} are in none of {list(FAMILIES)}.")
    parsers = {
        "box": _box,
        "block": _block,
        "braille": _braille,
        "domino": _domino,
        "card": _card,
    }
    rows = []
    for name, family in zip(names, families, strict=True):
        row = {f"family_{family}": 1.0}
        if family in parsers:
            row |= parsers[family](name)
        else:
            row |= dict.fromkeys(_words(name), 1.0)
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index(names, name="symbol")).fillna(0.0)
    family_columns = [f"family_{f}" for f in FAMILIES if f"family_{f}" in table]
    rest = sorted(c for c in table.columns if c not in family_columns)
    return table[family_columns + rest].astype(float)


def load_unicode_symbols(*, return_X_y: bool = False):
    """Load Unicode symbols rendered from the DejaVu fonts, with their metadata.

    ========================  ===============================================
    Classes                   one per Unicode symbol (arrows, box drawing,
                              block elements, geometric shapes, Braille
                              patterns, domino tiles, playing cards)
    Renderings per class      6 (fonts, weights and small jitter)
    Dimensionality            784 (28x28 images)
    Features                  float32 in [0, 1], ink = 1.0
    Metadata                  attributes parsed from ``unicodedata.name``
    ========================  ===============================================

    The data set for zero-shot learning with class metadata nobody typed:
    ``metadata`` holds one row per class, parsed from the character's
    Unicode name when the data set is loaded. The images were rendered
    with Pillow by ``tools/make_unicode_symbols.py`` in the source
    repository (see ``DESCR``); nothing is downloaded.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)``, the flat images and each one's
        symbol, without the metadata.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        data : ndarray of shape (n_images, 784), dtype float32
            The flattened images, a view of ``images``.
        images : ndarray of shape (n_images, 28, 28), dtype float32
            The images, ink 1.0 on a background of 0.0.
        target : ndarray of shape (n_images,), dtype str
            The Unicode name of each image's symbol.
        target_names : ndarray of shape (n_classes,), dtype str
            The sorted unique names.
        fonts : ndarray of shape (n_images,), dtype str
            The DejaVu font each image was rendered with.
        metadata : DataFrame of shape (n_classes, n_attributes)
            The parsed attributes, indexed by name (rows in
            ``target_names`` order).
        family : Series of shape (n_classes,)
            Each class's family (``"box"``, ``"braille"``...), by name.
        code_point : Series of shape (n_classes,)
            Each class's code point, by name.
        DESCR : str
            A description of the data set, its source and its licence.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` and ``target`` as described above.

    Examples
    --------
    >>> from sklearn_protonet.datasets import load_unicode_symbols
    >>> symbols = load_unicode_symbols()
    >>> symbols.images.shape[1:], symbols.metadata.shape[0] == len(symbols.target_names)
    ((28, 28), True)
    >>> row = symbols.metadata.loc["BOX DRAWINGS UP HEAVY AND RIGHT DOWN LIGHT"]
    >>> row[["box_up_heavy", "box_right_light", "box_down_light"]].tolist()
    [1.0, 1.0, 1.0]
    >>> row[["box_up_light", "box_left_light", "box_left_heavy"]].tolist()
    [0.0, 0.0, 0.0]
    """
    package = resources.files(__package__)
    with resources.as_file(package / "data" / "unicode_symbols.npz") as path:
        with np.load(path, allow_pickle=False) as npz:
            pixels, points, fonts = npz["images"], npz["code_points"], npz["fonts"]
    n = len(pixels)
    if pixels.shape[1:] != (_SIZE, _SIZE) or points.shape != (n,) or len(fonts) != n:
        raise OSError(
            f"The shipped Unicode symbols are damaged (images {pixels.shape}, code "
            f"points {points.shape}); reinstall sklearn-protonet."
        )
    images = pixels.astype(np.float32) / 255
    names = np.array([unicodedata.name(chr(c)) for c in points.tolist()])
    if return_X_y:
        return images.reshape(n, -1), names
    classes, first = np.unique(names, return_index=True)
    class_points = points[first].tolist()
    index = pd.Index(classes, name="symbol")
    return Bunch(
        data=images.reshape(n, -1),
        images=images,
        target=names,
        target_names=classes,
        fonts=fonts.astype(str),
        metadata=symbol_metadata(class_points),
        family=pd.Series([family_of(c) for c in class_points], index=index),
        code_point=pd.Series(class_points, index=index),
        DESCR=load_descr("unicode_symbols"),
    )
