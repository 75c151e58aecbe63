"""Images as they come: printed symbols photographed on grey, shaded paper.

    python benchmarks/real_conditions.py                    # 200 episodes a shot
    python benchmarks/real_conditions.py --episodes 20 --n-jobs 2 --output-dir /tmp/x

The images, seeded and rebuilt on every run (nothing is downloaded):

- **classes**: the code points of ``BLOCKS`` (Latin, Greek, Cyrillic,
  Armenian, Georgian, arrows, mathematical operators, technical symbols,
  shapes, miscellaneous symbols, dingbats, Braille) that DejaVu Sans draws
  (not its missing-glyph box) with enough ink; code points whose clean 28x28
  rendering, thresholded at one half, equals an earlier one's (Latin, Greek
  and Cyrillic capital A...) are dropped, so each class looks different.
- **examples**: ``PER_CLASS`` images of each class, each from a font drawn
  among the DejaVu faces of ``FONTS`` that have the glyph (sans, serif,
  mono, condensed, bold, oblique, extra light), at a random size, stroke
  thickening, offset, rotation and shear, then photographed: blurred,
  printed with faint to full ink on grey paper lit unevenly, with sensor
  noise, as 8-bit 64x64 dark-on-light images (``degrade`` says exactly
  how; every draw comes from ``numpy.random.default_rng((SEED, class,
  example))``).

For 20-way episodes with 5 queries per class, 1-shot and 5-shot (the same
episodes for every row), the accuracy with 95 % intervals
(:func:`~sklearn_protonet.model_selection.mean_confidence_interval`) of:

- nearest centroid (``PrototypicalClassifier()``) on the pixels as the
  reader read them before it normalised images (size, range, polarity:
  ``ImageReader.from_encoder(encoder, background=None, contrast=None,
  denoise=None)``), the paper's 1-shot encoder, ``omniglot-conv4-robust``,
  the robust encoder with ``fine_tune_steps=60`` and affine views,
  ``omniglot-conv4-symbols`` (meta-trained with these conditions too:
  ``python benchmarks/omniglot.py --profile symbols``),
  ``omniglot-conv4-ensemble`` (the paper's, the robust and the symbols
  encoders side by side: ``python benchmarks/ensemble.py``) and
  ``omniglot-conv4-one-encoder`` (the paper's beside two members trained
  in 30 minutes on degraded characters, one also in these conditions:
  ``python benchmarks/omniglot.py --profile one-encoder``), on those images;
- nearest centroid and the encoders on normalised images: each
  image's median subtracted and its contrast stretched
  (``ImageReader.from_encoder(encoder, background="flat", denoise=None)``),
  the few lines anyone would write;
- nearest centroid and the encoders on the images of the default
  reader (``ImageReader.from_encoder(encoder)``: noisy images denoised,
  uneven background subtracted, contrast stretched), the one-encoder's
  being the own-data guide's path, and that path with the same adaptation; the
  symbols encoder also without denoising (it reads through noise);
- what each step of that reader buys: the one-encoder on the default
  reader's images with one step off (``STEPS``).

Rows with adaptation cost about twenty times the others: they run on the
first ``--adapted-episodes`` episodes only.

Then the clean control: Omniglot's test characters (Vinyals split, from the
data home), 20-way, through the default reader or as loaded, one-encoder,
on the same episodes: the normalisation must cost nothing there.
Writes ``real_conditions.json`` and ``real_conditions.md`` into
``--output-dir``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, cell, environment, interval, markdown_table, publish
from joblib import Parallel, delayed
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.contracts import InputContractWarning
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.preprocessing import ImageReader
from sklearn_protonet.pretrained import load_pretrained

SEED = 0
N_WAY, N_QUERY = 20, 5
PER_CLASS = 10
CANVAS = 64
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-ExtraLight.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
)
#: Unicode blocks the classes come from (first and last code point).
BLOCKS = (
    (0x0021, 0x007E),  # Basic Latin
    (0x00A1, 0x00FF),  # Latin-1 Supplement
    (0x0100, 0x017F),  # Latin Extended-A
    (0x0180, 0x024F),  # Latin Extended-B
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x04FF),  # Cyrillic
    (0x0531, 0x0587),  # Armenian
    (0x10A0, 0x10FF),  # Georgian
    (0x2190, 0x21FF),  # Arrows
    (0x2200, 0x22FF),  # Mathematical Operators
    (0x2300, 0x23FF),  # Miscellaneous Technical
    (0x25A0, 0x25FF),  # Geometric Shapes
    (0x2600, 0x26FF),  # Miscellaneous Symbols
    (0x2700, 0x27BF),  # Dingbats
    (0x2800, 0x28FF),  # Braille
)
#: The ranges of the photographing conditions (uniform draws).
CONDITIONS = {
    "font_size_px": (30, 46),
    "stroke_width_px": (0, 2),  # integers: thick ink
    "offset_px": (-3, 3),
    "rotation_deg": (-8, 8),
    "shear": (-0.15, 0.15),
    "blur_radius_px": (0.0, 1.8),
    "paper": (0.55, 0.95),  # grey level of the paper, white = 1
    "shading": (0.0, 0.3),  # linear light fall-off across the page
    "ink": (0.25, 0.9),  # fraction of the paper's light the ink absorbs
    "noise_sigma": (0.02, 0.08),  # Gaussian sensor noise
}
#: The adaptation recipe measured here (classifier parameters).
ADAPTATION = {"fine_tune_steps": 60, "fine_tune_augmentation": "affine"}
#: The reader of each row's images (parameters over ``from_encoder``'s).
READERS = {
    "as read": {"background": None, "contrast": None, "denoise": None},
    "normalised": {"background": "flat", "denoise": None},
    "default": {},
    # The default reader with one step turned off or changed (STEPS).
    "no denoising": {"denoise": None},
    "flat background": {"background": "flat"},
    "no background": {"background": None},
    "no contrast": {"contrast": None},
}
#: The encoder the own-data guide starts from, and the shipped encoders
#: it is compared with.
OWN_IMAGES = "omniglot-conv4-one-encoder"
ROBUST, SYMBOLS = "omniglot-conv4-robust", "omniglot-conv4-symbols"
ENSEMBLE = "omniglot-conv4-ensemble"
#: Rows: (label, images, encoder name or None for pixels, adaptation).
ROWS = {
    "pixels": ("nearest centroid, pixels as read", "as read", None, False),
    "paper": ("paper's 1-shot encoder", "as read", "omniglot-conv4-1shot", False),
    "robust": ("`omniglot-conv4-robust`", "as read", ROBUST, False),
    "robust adapted": ("robust, `fine_tune_steps=60`, affine", "as read", ROBUST, True),
    "symbols": ("`omniglot-conv4-symbols`", "as read", SYMBOLS, False),
    "ensemble": ("`omniglot-conv4-ensemble`", "as read", ENSEMBLE, False),
    "one-encoder": ("`omniglot-conv4-one-encoder`", "as read", OWN_IMAGES, False),
    "pixels normalised": (
        "nearest centroid, normalised pixels (median subtracted, contrast stretched)",
        "normalised",
        None,
        False,
    ),
    "robust normalised": (
        "robust, on those normalised images",
        "normalised",
        ROBUST,
        False,
    ),
    "symbols normalised": (
        "symbols, on those normalised images",
        "normalised",
        SYMBOLS,
        False,
    ),
    "one-encoder normalised": (
        "one-encoder, on those normalised images",
        "normalised",
        OWN_IMAGES,
        False,
    ),
    "pixels default": (
        "nearest centroid, pixels of the default reader",
        "default",
        None,
        False,
    ),
    "robust default": (
        "`ImageReader.from_encoder(robust)` + robust",
        "default",
        ROBUST,
        False,
    ),
    "symbols default": (
        "`ImageReader.from_encoder(symbols)` + symbols",
        "default",
        SYMBOLS,
        False,
    ),
    "symbols no denoising": (
        "`ImageReader.from_encoder(symbols, denoise=None)` + symbols",
        "no denoising",
        SYMBOLS,
        False,
    ),
    "default path": (
        "**default path**: `ImageReader.from_encoder(one_encoder)` + one-encoder",
        "default",
        OWN_IMAGES,
        False,
    ),
    "default path adapted": (
        "default path, `fine_tune_steps=60`, affine",
        "default",
        OWN_IMAGES,
        True,
    ),
}


#: What each step of the default reader buys: the own-images encoder on the
#: default reader's images with one step off (same episodes as ROWS).
STEPS = {
    "default path": (
        "default reader (denoise=3, uneven background, contrast=99.5)",
        "default",
        OWN_IMAGES,
        False,
    ),
    "no denoising": (
        "without denoising (denoise=None)",
        "no denoising",
        OWN_IMAGES,
        False,
    ),
    "flat background": (
        "one background level per image (background='flat')",
        "flat background",
        OWN_IMAGES,
        False,
    ),
    "no background": (
        "without background subtraction (background=None)",
        "no background",
        OWN_IMAGES,
        False,
    ),
    "no contrast": (
        "without contrast stretch (contrast=None)",
        "no contrast",
        OWN_IMAGES,
        False,
    ),
}


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), size)


def _has_glyph(font: ImageFont.FreeTypeFont, char: str, missing: bytes) -> bool:
    mask = font.getmask(char)
    return mask.getbbox() is not None and bytes(mask) != missing


def symbol_classes(limit: int | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """The classes: ``(character, fonts that draw it)``, in code point order
    (the first ``limit`` of them)."""
    fonts = {name: _font(name, 40) for name in FONTS}
    missing = {name: bytes(f.getmask(chr(0x0378))) for name, f in fonts.items()}
    seen, classes = set(), []
    for first, last in BLOCKS:
        for code_point in range(first, last + 1):
            char = chr(code_point)
            if not _has_glyph(fonts[FONTS[0]], char, missing[FONTS[0]]):
                continue
            clean = _render(char, FONTS[0], 38, 0, (0, 0), 0.0, 0.0)
            small = np.asarray(clean.resize((28, 28), Image.Resampling.BILINEAR))
            if (small > 64).sum() < 12:  # too little ink to tell apart (dots)
                continue
            key = np.packbits(small > 127).tobytes()
            if key in seen:
                continue
            seen.add(key)
            faces = tuple(n for n in FONTS if _has_glyph(fonts[n], char, missing[n]))
            classes.append((char, faces))
            if limit is not None and len(classes) == limit:
                return classes
    return classes


def _render(char, font_name, size, stroke, offset, rotation, shear) -> Image.Image:
    """``char`` drawn white on black, centred on the canvas, then rotated and
    sheared about the centre."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    centre = CANVAS / 2
    draw.text(
        (centre + offset[0], centre + offset[1]),
        char,
        fill=255,
        font=_font(font_name, size),
        anchor="mm",
        stroke_width=stroke,
        stroke_fill=255,
    )
    angle = np.deg2rad(rotation)
    cos, sin = np.cos(angle), np.sin(angle)
    # Output pixel -> input pixel, about the centre: rotation then shear.
    a, b, d, e = cos, sin + shear * cos, -sin, cos - shear * sin
    c = centre - a * centre - b * centre
    f = centre - d * centre - e * centre
    return image.transform(
        image.size,
        Image.Transform.AFFINE,
        (a, b, c, d, e, f),
        Image.Resampling.BILINEAR,
    )


def degrade(char: str, faces: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """One photograph of ``char``: a uint8 ``(CANVAS, CANVAS)`` dark-on-light
    image, every condition drawn uniformly from ``CONDITIONS`` by ``rng``."""

    def draw(name):
        low, high = CONDITIONS[name]
        return rng.uniform(low, high)

    font_name = faces[rng.integers(len(faces))]
    size = int(round(draw("font_size_px")))
    low, high = CONDITIONS["stroke_width_px"]
    stroke = int(rng.integers(low, high + 1))
    offset = (draw("offset_px"), draw("offset_px"))
    glyph = _render(
        char, font_name, size, stroke, offset, draw("rotation_deg"), draw("shear")
    )
    glyph = glyph.filter(ImageFilter.GaussianBlur(draw("blur_radius_px")))
    ink = np.asarray(glyph, dtype=np.float32) / 255.0
    # Paper: a grey level, lit unevenly by a linear fall-off in a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:CANVAS, 0:CANVAS] / (CANVAS - 1) - 0.5
    ramp = xs * np.cos(angle) + ys * np.sin(angle)
    paper = draw("paper") - draw("shading") * ramp
    photo = paper * (1.0 - draw("ink") * ink)
    photo = photo + rng.normal(0.0, draw("noise_sigma"), photo.shape)
    return np.clip(np.round(photo * 255), 0, 255).astype(np.uint8)


def symbol_photographs(limit: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """All photographs ``(n, CANVAS, CANVAS)`` uint8, their class codes, and
    the number of classes (the first ``limit`` classes)."""
    classes = symbol_classes(limit)
    images = np.empty((len(classes) * PER_CLASS, CANVAS, CANVAS), dtype=np.uint8)
    for k, (char, faces) in enumerate(classes):
        for i in range(PER_CLASS):
            rng = np.random.default_rng((SEED, k, i))
            images[k * PER_CLASS + i] = degrade(char, faces, rng)
    return images, np.repeat(np.arange(len(classes)), PER_CLASS), len(classes)


#: The ranges of a clean print's drawing (uniform draws): ``printed_symbols``.
PRINT = {
    "font_size_px": (30, 46),
    "offset_px": (-3, 3),
    "rotation_deg": (-5, 5),
    "shear": (-0.1, 0.1),
}


def printed_symbols(per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The same classes printed cleanly: ``per_class`` uint8 ``(CANVAS,
    CANVAS)`` light-on-dark images of each, a font drawn among the faces that
    have the glyph, the size, offset, rotation and shear of ``PRINT``, no
    stroke thickening, blur, paper or noise (draws from
    ``numpy.random.default_rng((SEED, 1, class, example))``); and the
    class codes."""
    classes = symbol_classes()
    images = np.empty((len(classes) * per_class, CANVAS, CANVAS), dtype=np.uint8)
    for k, (char, faces) in enumerate(classes):
        for i in range(per_class):
            rng = np.random.default_rng((SEED, 1, k, i))
            draw = {name: rng.uniform(*PRINT[name]) for name in PRINT}
            images[k * per_class + i] = _render(
                char,
                faces[rng.integers(len(faces))],
                int(round(draw["font_size_px"])),
                0,
                (draw["offset_px"], rng.uniform(*PRINT["offset_px"])),
                draw["rotation_deg"],
                draw["shear"],
            )
    return images, np.repeat(np.arange(len(classes)), per_class)


def read_all(photos: np.ndarray) -> dict[str, np.ndarray]:
    """The photographs through each reader of ``READERS``."""
    encoder = load_pretrained(OWN_IMAGES)
    return {
        name: ImageReader.from_encoder(encoder, **params).fit_transform(photos)
        for name, params in READERS.items()
    }


def run_episodes(
    images: dict, y, shot: int, episodes: list, rows, adapted_episodes: int
) -> list[dict]:
    """Accuracy of every row on each ``(episode number, support, query)``;
    rows with adaptation only on the first ``adapted_episodes`` episodes."""
    torch.set_num_threads(1)  # one chunk of episodes per worker
    # The images "as read" break the input contract on purpose.
    warnings.simplefilter("ignore", InputContractWarning)
    encoders = {name: load_pretrained(name) for *_, name, _ in rows.values() if name}
    results = []
    for number, support, query in episodes:
        result = {}
        for key, (_, reader, encoder, adapted) in rows.items():
            if adapted and number >= adapted_episodes:
                continue
            X = images[reader]
            if encoder is None:
                X = X.reshape(len(X), -1)
                model = PrototypicalClassifier()
            else:
                settings = {**ADAPTATION, "random_state": number} if adapted else {}
                model = PrototypicalClassifier(encoders[encoder], **settings)
            model.fit(X[support], y[support])
            result[key] = model.score(X[query], y[query])
        results.append(result)
    return results


def episode_rows(images, y, shot, n_episodes, n_jobs, rows, seed, adapted_episodes=0):
    """``run_episodes`` over the episodes of ``shot``, in chunks on workers."""
    split = EpisodicSplit(
        n_way=N_WAY,
        n_shot=shot,
        n_query=N_QUERY,
        n_episodes=n_episodes,
        random_state=seed,
    )
    first = next(iter(images.values()))
    episodes = [(i, s, q) for i, (s, q) in enumerate(split.split(first, y))]
    n_chunks = max(1, min(len(episodes), 4 * max(1, n_jobs)))
    chunks = [episodes[i::n_chunks] for i in range(n_chunks)]
    done = Parallel(n_jobs=n_jobs)(
        delayed(run_episodes)(images, y, shot, chunk, rows, adapted_episodes)
        for chunk in chunks
    )
    return [row for chunk in done for row in chunk]


#: The clean control: Omniglot test, as loaded or through the default reader.
OMNIGLOT_ROWS = {
    "as loaded": (
        "Omniglot test as loaded, one-encoder",
        "as loaded",
        OWN_IMAGES,
        False,
    ),
    "default reader": (
        "through the default reader, one-encoder",
        "default",
        OWN_IMAGES,
        False,
    ),
}


def omniglot_control(shots, n_episodes: int, n_jobs: int) -> dict | None:
    """Accuracy on Omniglot's test characters with and without the default
    reader's normalisation (None without the data set)."""
    from sklearn_protonet.datasets import load_omniglot

    try:
        bunch = load_omniglot("test")
    except (OSError, ValueError) as error:
        print(f"Omniglot control skipped: {error}")
        return None
    X = bunch.images.astype(np.float32)  # (n, 28, 28) in [0, 1]
    encoder = load_pretrained(OWN_IMAGES)
    images = {
        "as loaded": X[:, None],
        "default": ImageReader.from_encoder(encoder).fit_transform(X),
    }
    y = np.unique(bunch.target, return_inverse=True)[1]
    out = {}
    for shot in shots:
        rows = episode_rows(images, y, shot, n_episodes, n_jobs, OMNIGLOT_ROWS, shot)
        cells = {k: interval([r[k] for r in rows]) for k in OMNIGLOT_ROWS}
        diff = [r["default reader"] - r["as loaded"] for r in rows]
        cells["difference"] = interval(diff)
        out[str(shot)] = cells
    change = np.abs(images["default"] - images["as loaded"])
    out["pixel_change"] = {"mean": float(change.mean()), "max": float(change.max())}
    return out


def _table(record_cells: dict, rows: dict, first: str) -> str:
    shots = list(record_cells)
    header = [first, *(f"{s}-shot" for s in shots)]
    body = [
        [label, *(cell(record_cells[s][key]) for s in shots)]
        for key, (label, *_) in rows.items()
    ]
    return markdown_table(header, body)


def report(record: dict) -> str:
    accuracy = record["accuracy"]
    shots = list(accuracy)
    lines = [
        "# Printed symbols in real conditions",
        "",
        f"{N_WAY}-way accuracy in % with 95 % intervals, {N_QUERY} queries per "
        f"class, over {record['episodes']} episodes a shot "
        f"({record['adapted_episodes']} for the rows with adaptation, "
        f"{record['adaptation']}), the same episodes for every row: "
        f"{record['n_classes']} symbol classes rendered from the DejaVu fonts, "
        f"{PER_CLASS} photographs of each on grey, unevenly lit paper with faint "
        "or thick ink, rotation, shear, blur and sensor noise "
        "(`benchmarks/real_conditions.py` says exactly how).",
        "",
        _table(accuracy, ROWS, f"{N_WAY}-way, {N_QUERY} queries per class"),
    ]
    gaps = []
    for s in shots:
        cells = accuracy[s]
        default = cells["default path"]["mean"]
        best = max(cells["pixels normalised"]["mean"], cells["pixels default"]["mean"])
        gaps.append(
            f"{s}-shot {default - cells['pixels normalised']['mean']:+.1f} points "
            f"over nearest centroid on the normalised pixels "
            f"({default - best:+.1f} over the better of the two pixel rows)"
        )
    lines += ["", "The default path: " + "; ".join(gaps) + "."]
    lines += [
        "",
        "What each step of the default reader buys (one-encoder, same episodes):",
        "",
        _table(accuracy, STEPS, "reader"),
    ]
    control = dict(record.get("omniglot_control") or {})
    change = control.pop("pixel_change", None)
    if control:
        rows = {**OMNIGLOT_ROWS, "difference": ("difference, same episodes",)}
        lines += [
            "",
            "Clean images lose nothing: Omniglot's test characters (Vinyals "
            f"split), {N_WAY}-way, {N_QUERY} queries per class, "
            f"{record['omniglot_episodes']} episodes a shot, one-encoder, as "
            "loaded and through the default reader:",
            "",
            _table(control, rows, "Omniglot test"),
        ]
        if change is not None:
            lines += [
                "",
                f"The default reader changes Omniglot's pixels by "
                f"{change['mean']:.2g} on average (at most {change['max']:.2g}).",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument(
        "--adapted-episodes",
        type=int,
        default=40,
        help="episodes (the first ones) for the rows with adaptation, which "
        "cost about 20 times the others",
    )
    parser.add_argument("--omniglot-episodes", type=int, default=100)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument(
        "--classes", type=int, default=None, help="only the first classes (tests)"
    )
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--output-dir", default=str(RESULTS))
    args = parser.parse_args(argv)
    adapted_episodes = min(args.adapted_episodes, args.episodes)
    if min(args.episodes, adapted_episodes) < 2 or args.omniglot_episodes == 1:
        parser.error("an interval needs at least 2 episodes")
    started = time.perf_counter()
    photos, y, n_classes = symbol_photographs(args.classes)
    images = read_all(photos)
    prepared = time.perf_counter() - started
    rows = {**ROWS, **STEPS}
    accuracy = {}
    for shot in args.shots:
        done = episode_rows(
            images, y, shot, args.episodes, args.n_jobs, rows, shot, adapted_episodes
        )
        accuracy[str(shot)] = {
            key: interval([r[key] for r in done if key in r]) for key in rows
        }
    control = None
    if args.omniglot_episodes:
        control = omniglot_control(args.shots, args.omniglot_episodes, args.n_jobs)
    record = environment(
        benchmark="real_conditions",
        seed=SEED,
        n_classes=n_classes,
        per_class=PER_CLASS,
        canvas=CANVAS,
        fonts=FONTS,
        blocks=[[hex(a), hex(b)] for a, b in BLOCKS],
        conditions=CONDITIONS,
        readers=READERS,
        adaptation=ADAPTATION,
        n_way=N_WAY,
        n_query=N_QUERY,
        episodes=args.episodes,
        adapted_episodes=adapted_episodes,
        omniglot_episodes=args.omniglot_episodes,
        n_jobs=args.n_jobs,
        accuracy=accuracy,
        omniglot_control=control,
        prepare_seconds=prepared,
        seconds=time.perf_counter() - started,
        load_average_1min=os.getloadavg()[0],
    )
    return publish("real_conditions", record, report, args.output_dir)


if __name__ == "__main__":
    main()
