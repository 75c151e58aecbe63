"""Render the Unicode symbols data set shipped with the package from the DejaVu fonts.

    python tools/make_unicode_symbols.py [--fonts DIR] [--check]

For every named code point of the families in
``sklearn_protonet.datasets._unicode_symbols.FAMILIES`` (arrows, box drawing,
block elements, geometric shapes, Braille patterns, domino tiles, playing
cards), finds which of the six fonts of Debian's ``fonts-dejavu-core`` map
it to a glyph (their ``cmap`` tables, read with fontTools), and renders
``RENDERINGS`` images of it with Pillow, cycling through those fonts with a
small jitter of size and position, seeded by the code point. Symbols no
font covers, or whose glyph leaves no ink (``BRAILLE PATTERN BLANK``), are
left out.

Each symbol is drawn in its font's cell, not cropped to its ink: the cell
(the advance width by the line height) is scaled to fit the image and
centred, so a half line (``BOX DRAWINGS LIGHT LEFT``) stays on its side and
``LOWER HALF BLOCK`` stays low. Drawn at 4x and reduced with Pillow's BOX
filter to 28x28, ink 255 on 0, like Omniglot's images.

Writes ``sklearn_protonet/datasets/data/unicode_symbols.npz`` (``images``
uint8, ``code_points``, ``fonts``). ``--check`` compares the shipped file
with a fresh rendering instead (exit status 1 when they differ; FreeType
versions may differ in the last grey level).
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from sklearn_protonet.datasets._base import atomic_writer
from sklearn_protonet.datasets._unicode_symbols import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "sklearn_protonet" / "datasets" / "data" / "unicode_symbols.npz"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
# The six fonts of fonts-dejavu-core: every Debian machine with DejaVu has them.
CORE = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "DejaVuSerif",
    "DejaVuSerif-Bold",
)
RENDERINGS = 6
SIZE = 28
SUPERSAMPLE = 4
# The cell's longer side fills this fraction of the image before jitter.
FILL = 0.86
SCALE_JITTER = (0.9, 1.05)
SHIFT_JITTER = 1.5  # pixels of the 28x28 image, each way
SEED = 0


def covered(folder: Path) -> dict[int, list[str]]:
    """Code point -> the core fonts whose cmap has it, for named code points."""
    cmaps = {font: TTFont(folder / f"{font}.ttf").getBestCmap() for font in CORE}
    out = {}
    for first, last in FAMILIES.values():
        for code in range(first, last + 1):
            fonts = [f for f in CORE if code in cmaps[f]]
            if fonts and unicodedata.name(chr(code), None):
                out[code] = fonts
    return out


def render(path: Path, char: str, scale: float, dx: float, dy: float) -> np.ndarray:
    """One 28x28 uint8 image of ``char``: its cell scaled and centred."""
    big = SIZE * SUPERSAMPLE
    reference = ImageFont.truetype(str(path), 1000)
    ascent, descent = reference.getmetrics()
    advance = reference.getlength(char)
    size = 1000 * FILL * scale * big / max(advance, ascent + descent)
    font = ImageFont.truetype(str(path), max(1, round(size)))
    ascent, descent = font.getmetrics()
    advance = font.getlength(char)
    x = big / 2 - advance / 2 + dx * SUPERSAMPLE
    baseline = big / 2 - (ascent + descent) / 2 + ascent + dy * SUPERSAMPLE
    image = Image.new("L", (big, big), 0)
    ImageDraw.Draw(image).text((x, baseline), char, fill=255, font=font, anchor="ls")
    small = image.resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def build(folder: Path = FONTS, only=None) -> dict[str, np.ndarray]:
    """The data set's arrays: ``images`` (n, 28, 28) uint8, ``code_points``
    and ``fonts`` (n,), RENDERINGS rows per symbol in code point order.
    ``only``: render just these code points (each symbol's jitter is seeded
    by its code point, so a subset renders as in the whole set)."""
    images, codes, fonts = [], [], []
    for code, available in sorted(covered(folder).items()):
        if only is not None and code not in only:
            continue
        rng = np.random.default_rng([SEED, code])
        jitter = rng.uniform(-1, 1, size=(RENDERINGS, 2)) * SHIFT_JITTER
        scales = rng.uniform(*SCALE_JITTER, size=RENDERINGS)
        drawn = [
            render(
                folder / f"{available[k % len(available)]}.ttf",
                chr(code),
                scales[k],
                *jitter[k],
            )
            for k in range(RENDERINGS)
        ]
        if min(int(d.max()) for d in drawn) == 0:
            continue  # no ink (a blank pattern): nothing to learn from
        images += drawn
        codes += [code] * RENDERINGS
        fonts += [available[k % len(available)] for k in range(RENDERINGS)]
    return {
        "images": np.stack(images),
        "code_points": np.array(codes, dtype=np.int32),
        "fonts": np.array(fonts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fonts", type=Path, default=FONTS, help="DejaVu folder")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    missing = [f for f in CORE if not (args.fonts / f"{f}.ttf").is_file()]
    if missing:
        raise SystemExit(
            f"{missing} not found in {args.fonts}: install fonts-dejavu-core."
        )
    arrays = build(args.fonts)
    if args.check:
        with np.load(OUT, allow_pickle=False) as shipped:
            same = all(np.array_equal(shipped[k], v) for k, v in arrays.items())
        print("up to date" if same else f"{OUT} differs from a fresh rendering")
        return 0 if same else 1
    with atomic_writer(OUT) as out:
        np.savez_compressed(out, **arrays)
    n = len(np.unique(arrays["code_points"]))
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes): {n} symbols")
    return 0


if __name__ == "__main__":
    sys.exit(main())
