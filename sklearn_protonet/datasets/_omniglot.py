"""Loader for the Omniglot handwritten characters data set."""

from __future__ import annotations

import hashlib
import numbers
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from sklearn.utils import Bunch

from .._io import atomic_writer
from ..contracts import InputContract
from ._base import (
    DATA_HOME_ENV,
    _resolve_cache_home,
    _resolve_data_home,
    download,
    get_cache_home,
    has_write_bits,
    image_bunch,
    load_descr,
    sha256,
)

__all__ = ["load_omniglot"]

VINYALS_SUBSETS = ("train", "val", "trainval", "test")
LAKE_SUBSETS = ("background", "evaluation")
SUBSETS = VINYALS_SUBSETS + LAKE_SUBSETS

# Lake's two archives, in the order their characters are stored in the cache:
# part -> (file name, alphabets, characters, images).
_ZIPS = {
    "background": ("images_background.zip", 30, 964, 19_280),
    "evaluation": ("images_evaluation.zip", 20, 659, 13_180),
}
_SPLIT_SIZES = {"train": 4112, "val": 688, "trainval": 4800, "test": 1692}
_N_DRAWERS = 20
_ORIGINAL_SIZE = 105
_ROTATIONS = (0, 90, 180, 270)
#: The images ``load_omniglot`` returns, which encoders trained on them expect.
INPUT_CONTRACT = InputContract(
    shape=(1, 28, 28), value_range=(0.0, 1.0), polarity="light-on-dark"
)

_ZIP_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{}"
_SPLIT_URL = (
    "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/"
    "data/omniglot/splits/vinyals/{}.txt"
)

# The SHA-256 of every file a download fetches: a download whose content
# differs (an error page, a truncated transfer) is deleted, never kept.
_SHA256 = {
    "images_background.zip": (
        "2a854eb0e6b18622816595088f56955117f0ab45b51a725ff4b2ec00fb99838d"
    ),
    "images_evaluation.zip": (
        "e2b3fe1211f8cd16064cd1aa93b6840ef4e724062311c34534b30e0fe25d30d9"
    ),
    "test.txt": "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204",
    "train.txt": "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0",
    "trainval.txt": "5276ae50c755596d0bff7f2284e85625695549a85ee6e36b6491ad1e5d1cc26a",
    "val.txt": "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a",
}

# Bump whenever the content or layout of the cache file changes.
_CACHE_VERSION = 2
# The cache's arrays that its own checksum ("content_sha256") covers.
_CACHE_CONTENT = (
    "version",
    "image_size",
    "source_sha256",
    "names",
    "drawers",
    "images",
)

_MEMBER_RE = re.compile(
    r"^images_(?P<part>background|evaluation)/(?P<alphabet>[^/]+)/"
    r"(?P<character>character\d+)/(?P<char_id>\d{4})_(?P<drawer>\d{2})\.png$"
)
_SPLIT_RE = re.compile(r"^(?P<character>[^/]+/character\d+)/rot(?P<rot>\d{3})$")


def _omniglot_dir(root: Path) -> Path:
    return root / "omniglot"


def _zip_relpath(part: str) -> str:
    return f"omniglot/{_ZIPS[part][0]}"


def _split_relpath(name: str) -> str:
    return f"omniglot/splits/vinyals/{name}.txt"


def _required_files(subset: str) -> dict[str, str]:
    """Files (relative to the data home) a subset needs, with their URLs."""
    # Both archives are always needed: the cache holds every character.
    files = {_zip_relpath(part): _ZIP_URL.format(_ZIPS[part][0]) for part in _ZIPS}
    if subset in VINYALS_SUBSETS:
        files[_split_relpath(subset)] = _SPLIT_URL.format(subset)
    return files


def _expected_layout() -> str:
    lines = [f"    {_zip_relpath(part)}" for part in _ZIPS]
    lines += [f"    {_split_relpath(name)}" for name in VINYALS_SUBSETS]
    return "\n".join(lines)


def _ensure_files(root: Path, subset: str, download_if_missing: bool) -> None:
    """Make sure the files ``subset`` needs are in ``root``, downloading them."""
    required = _required_files(subset)
    missing = [rel for rel in required if not (root / rel).is_file()]
    if not missing:
        return

    def not_found(reason: str) -> FileNotFoundError:
        listing = "\n".join(f"    {root / rel}" for rel in missing)
        return FileNotFoundError(
            f"Omniglot data not found in the data home {root}.\n"
            f"Missing file(s):\n{listing}\n{reason}\n"
            f"Set the data home with load_omniglot(data_home=...) or the "
            f"{DATA_HOME_ENV} environment variable. It must contain:\n"
            f"{_expected_layout()}\n"
            "(the zips from https://github.com/brendenlake/omniglot, python/ "
            "folder; the split files from "
            "https://github.com/jakesnell/prototypical-networks, "
            "data/omniglot/splits/vinyals/)."
        )

    if not download_if_missing:
        raise not_found("download_if_missing=False, so nothing was downloaded.")
    for rel in missing:
        try:
            download(required[rel], root / rel, _SHA256[Path(rel).name])
        except OSError as exc:  # urllib.error.URLError is an OSError too
            raise not_found(
                f"Downloading {required[rel]} to {root / rel} failed: {exc}"
            ) from exc


def _scan_zip(path: Path, part: str) -> list[tuple[str, list[str], list[int]]]:
    """List and check the characters of one of Lake's archives.

    Returns ``(name, members, drawers)`` per character, where ``name`` is
    ``Alphabet/characterNN``, sorted by alphabet then character folder, and
    ``members``/``drawers`` are sorted by drawer id.
    """
    _, n_alphabets, n_characters, n_images = _ZIPS[part]
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise OSError(f"Cannot read the Omniglot archive {path}: {exc}") from exc

    characters: dict[str, dict[int, str]] = {}
    for member in names:
        parts = member.split("/")
        # Skip folders and the metadata some archivers add (__MACOSX, ._*).
        if member.endswith("/") or any(
            p.startswith(".") or p == "__MACOSX" for p in parts
        ):
            continue
        match = _MEMBER_RE.match(member)
        if match is None or match["part"] != part:
            if not member.lower().endswith(".png"):
                continue
            raise OSError(
                f"Unexpected entry {member!r} in the Omniglot archive {path}; "
                f"expected images_{part}/<Alphabet>/characterNN/XXXX_YY.png."
            )
        name = f"{match['alphabet']}/{match['character']}"
        drawers = characters.setdefault(name, {})
        drawer = int(match["drawer"])
        if drawer in drawers:
            raise OSError(
                f"Duplicate drawer {drawer:02d} for {name} in the Omniglot "
                f"archive {path}: {drawers[drawer]!r} and {member!r}."
            )
        drawers[drawer] = member

    found_images = sum(len(d) for d in characters.values())
    found_alphabets = len({name.split("/")[0] for name in characters})
    if (found_alphabets, len(characters), found_images) != (
        n_alphabets,
        n_characters,
        n_images,
    ):
        raise OSError(
            f"The Omniglot archive {path} holds {found_alphabets} alphabets, "
            f"{len(characters)} characters and {found_images} images; expected "
            f"{n_alphabets} alphabets, {n_characters} characters and "
            f"{n_images} images. Delete it to download it again."
        )
    expected_drawers = list(range(1, _N_DRAWERS + 1))
    for name, drawers in characters.items():
        if sorted(drawers) != expected_drawers:
            raise OSError(
                f"Character {name} in the Omniglot archive {path} has drawers "
                f"{sorted(drawers)}; expected 1 to {_N_DRAWERS}."
            )
    return [
        (name, [characters[name][d] for d in expected_drawers], expected_drawers)
        for name in sorted(characters)
    ]


def _scan_zips(folder: Path) -> dict[str, list[tuple[str, list[str], list[int]]]]:
    return {part: _scan_zip(folder / _ZIPS[part][0], part) for part in _ZIPS}


def _preprocess(image: Image.Image, image_size: int) -> list[np.ndarray]:
    """Return the four rotations of one PNG, inverted and resized, as uint8.

    Each rotation is applied *before* resizing: Pillow's BOX kernel is not
    mirror-symmetric at fractional scales (105 -> 28 is 3.75), so rotating the
    resized image with ``np.rot90`` differs from resizing the rotated one by up
    to 112/255 on most images.
    """
    if image.size != (_ORIGINAL_SIZE, _ORIGINAL_SIZE):
        raise ValueError(f"image is {image.size}, expected 105x105")
    # Mode "1" holds strokes as 0 on a background of 1; convert to 8 bits
    # first, since Pillow resizes mode "1" images with NEAREST whatever the
    # filter asked for.
    inverted = ImageOps.invert(image.convert("L"))
    size = (image_size, image_size)
    return [
        np.asarray(inverted.rotate(angle).resize(size, Image.Resampling.BOX))
        for angle in _ROTATIONS
    ]


def _decode(
    folder: Path,
    entries: Mapping[str, Sequence[tuple[str, list[str], list[int]]]],
    image_size: int,
) -> np.ndarray:
    """Decode every character of both archives; shape (n_chars, 4, 20, s, s)."""
    n_chars = sum(len(chars) for chars in entries.values())
    shape = (n_chars, len(_ROTATIONS), _N_DRAWERS, image_size, image_size)
    images = np.empty(shape, dtype=np.uint8)
    i = 0
    for part, chars in entries.items():
        path = folder / _ZIPS[part][0]
        with zipfile.ZipFile(path) as zf:
            for _, members, _ in chars:
                for j, member in enumerate(members):
                    try:
                        with zf.open(member) as fh, Image.open(fh) as image:
                            rotations = _preprocess(image, image_size)
                    except (OSError, ValueError, zipfile.BadZipFile) as exc:
                        raise OSError(
                            f"Cannot decode {member} in the Omniglot archive "
                            f"{path}: {exc}"
                        ) from exc
                    for k, rotated in enumerate(rotations):
                        images[i, k, j] = rotated
                i += 1
    return images


def _cache_name(image_size: int) -> str:
    return f"omniglot_{image_size}px_v{_CACHE_VERSION}.npz"


def _content_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """The SHA-256 of the cache's content: each array's name, dtype, shape
    and bytes, so that an edited pixel, name or shape changes it."""
    digest = hashlib.sha256()
    for key in _CACHE_CONTENT:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _read_cache(path: Path, image_size: int, source: str) -> dict[str, Any] | None:
    """Return the cache's arrays, or None when it is unreadable, stale or
    altered (its content does not match its own checksum)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        n_chars = sum(z[2] for z in _ZIPS.values())
        shape = (n_chars, len(_ROTATIONS), _N_DRAWERS, image_size, image_size)
        valid = (
            int(arrays["version"]) == _CACHE_VERSION
            and int(arrays["image_size"]) == image_size
            and str(arrays["source_sha256"]) == source
            and arrays["images"].shape == shape
            and arrays["images"].dtype == np.uint8
            and arrays["names"].shape == (n_chars,)
            and arrays["names"].dtype.kind == "U"
            and arrays["drawers"].shape == (n_chars, _N_DRAWERS)
        )
        altered = valid and str(arrays["content_sha256"]) != _content_sha256(arrays)
    except Exception as exc:  # a corrupt file can fail in many ways
        warnings.warn(
            f"Ignoring the unreadable Omniglot cache {path} ({exc!r}); "
            "decoding the images again.",
            stacklevel=3,
        )
        return None
    if altered:
        warnings.warn(
            f"Ignoring the Omniglot cache {path}: its content does not match "
            "its own checksum, so it was changed after it was written; "
            "decoding the images again from the archives.",
            stacklevel=3,
        )
        return None
    return arrays if valid else None


def _atomic_write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as a compressed npz, atomically."""
    with atomic_writer(path) as fh:
        # Mostly-zero images compress ~8x (102 MB -> 12 MB at 28 px) and
        # still load in well under a second.
        np.savez_compressed(fh, **arrays)


def _write_cache(folder: Path, name: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write the cache in the data home when possible, else in the cache home.

    The data home counts as writable when it has write bits and a real write
    succeeds: ``os.access`` says yes to root on read-only-permission folders
    and cannot see read-only mounts.
    """
    errors = []
    targets = [folder, None] if has_write_bits(folder) else [None]
    for target in targets:  # None: the cache home, created on demand
        try:
            _atomic_write_npz((target or get_cache_home()) / name, arrays)
            return
        except OSError as exc:
            errors.append(f"{target or 'cache home'}: {exc}")
    warnings.warn(
        "Could not write the Omniglot cache, so the next load will decode the "
        "images again (" + "; ".join(errors) + ").",
        stacklevel=3,
    )


def _load_base(folder: Path, image_size: int) -> tuple[dict[str, Any] | None, str]:
    """Look for a valid cache in the data home, then in the cache home."""
    source = sha256([folder / _ZIPS[part][0] for part in _ZIPS])
    # Only look in the cache home here: creating it is left to the writer.
    candidates = [
        folder / _cache_name(image_size),
        _resolve_cache_home() / _cache_name(image_size),
    ]
    for path in candidates:
        try:
            found = path.is_file()
        except OSError:  # e.g. a cache home we may not even list
            found = False
        if found:
            arrays = _read_cache(path, image_size, source)
            if arrays is not None:
                return arrays, source
    return None, source


def _read_split(
    path: Path, subset: str, known: Mapping[str, int]
) -> tuple[list[int], list[int], list[str]]:
    """Parse a Vinyals split file into character and rotation indices."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise OSError(f"Cannot read the Omniglot split file {path}: {exc}") from exc
    lines = [line for line in lines if line]
    chars, rots, bad = [], [], []
    for line in lines:
        match = _SPLIT_RE.match(line)
        rot = int(match["rot"]) if match else -1
        if match is None or rot not in _ROTATIONS or match["character"] not in known:
            bad.append(line)
            continue
        chars.append(known[match["character"]])
        rots.append(_ROTATIONS.index(rot))
    if bad:
        shown = ", ".join(repr(b) for b in bad[:5])
        raise OSError(
            f"The Omniglot split file {path} names {len(bad)} class(es) that are "
            f"not <Alphabet>/characterNN/rotDDD with a character of the archives "
            f"and DDD in 000, 090, 180, 270, e.g. {shown}."
        )
    if len(lines) != _SPLIT_SIZES[subset] or len(set(lines)) != len(lines):
        raise OSError(
            f"The Omniglot split file {path} lists {len(lines)} classes "
            f"({len(set(lines))} distinct); expected {_SPLIT_SIZES[subset]} "
            "distinct classes. Delete it to download it again."
        )
    return chars, rots, lines


def load_omniglot(
    subset: str = "trainval",
    *,
    data_home: str | os.PathLike[str] | None = None,
    download_if_missing: bool = True,
    return_X_y: bool = False,
    image_size: int = 28,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load the Omniglot handwritten characters data set.

    =================  ==========================================
    Subsets            train, val, trainval, test (Vinyals split,
                       rotations are classes); background,
                       evaluation (Lake's split, no rotations)
    Classes            4,112 / 688 / 4,800 / 1,692; 964 / 659
    Samples per class  20
    Dimensionality     ``image_size ** 2`` (784 by default)
    Features           float32 in [0, 1], stroke = 1.0
    =================  ==========================================

    The data are read from ``<data_home>/omniglot/``: Lake's two archives
    ``images_background.zip`` and ``images_evaluation.zip`` (read directly,
    never extracted) and, for the Vinyals subsets,
    ``splits/vinyals/<subset>.txt``.

    Every image is inverted (strokes 1.0 on a background of 0.0), rotated for
    the ``rotDDD`` classes (counter-clockwise, as PIL's ``Image.rotate``),
    and then resized from 105x105 to ``image_size`` with Pillow's BOX filter,
    i.e. area averaging (see Notes).

    Parameters
    ----------
    subset : {"train", "val", "trainval", "test", "background", \
"evaluation"}, default="trainval"
        Which classes to load. The first four are the split of Vinyals et al.
        (2016), in which each rotation of a character by 0, 90, 180 or 270
        degrees is its own class, named ``Alphabet/characterNN/rotDDD``.
        ``"background"`` and ``"evaluation"`` are Lake's original split,
        without rotations, with classes named ``Alphabet/characterNN``.
    data_home : str or path-like, default=None
        The data home. By default the ``SKLEARN_PROTONET_DATA`` environment
        variable, else ``~/sklearn_protonet_data``; see
        :func:`~sklearn_protonet.datasets.get_data_home`.
    download_if_missing : bool, default=True
        If the files are missing, download them into the data home.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    image_size : int, default=28
        Side of the square output images, from 1 to 105.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        data : ndarray of shape (n_samples, image_size ** 2), dtype float32
            The flattened images, a view of ``images``.
        images : ndarray of shape (n_samples, image_size, image_size), \
dtype float32
            The images, strokes 1.0 on a background of 0.0.
        target : ndarray of shape (n_samples,), dtype str
            The class name of each image.
        target_names : ndarray of shape (n_classes,), dtype str
            The sorted unique class names.
        DESCR : str
            A description of the data set and of its preprocessing.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` and ``target`` as described above.

    Raises
    ------
    ValueError
        If ``subset`` or ``image_size`` is not valid.
    FileNotFoundError
        If files are missing and ``download_if_missing`` is False or the
        download fails. The message names the folder searched and the files
        it must hold.
    OSError
        If an archive or a split file does not hold what is expected.

    Notes
    -----
    Images are ordered by class and, within a class, by drawer id. Classes
    follow the split file for the Vinyals subsets, and are sorted by alphabet
    then character folder for Lake's.

    Pillow's BOX filter averages, for each output pixel, the input pixels
    whose centres fall inside that pixel's footprint (105 / ``image_size``
    input pixels wide). It runs on the 8-bit image, so values are multiples
    of 1/255. Rotation is applied before resizing because the filter is not
    mirror-symmetric at fractional scales: ``np.rot90`` of a resized
    ``rot000`` image is close to, but not exactly, the ``rot090`` image.

    The first call decodes all 32,460 images once (about 10 s) and caches
    the result as ``omniglot_<image_size>px_v<version>.npz``: uint8 pixels
    (the exact 8-bit output of the resize) of every character of both
    archives in all four rotations, about 12 MB at 28x28. It is written in
    ``<data_home>/omniglot/`` when that folder is writable, else in
    :func:`~sklearn_protonet.datasets.get_cache_home`. Later calls read the
    cache, after checking it against the SHA-256 of the two archives and
    against the SHA-256 of its own content, stored in it when it was
    written; an unreadable, stale or altered cache is ignored (with a
    warning) and rebuilt from the archives.

    References
    ----------
    .. [1] B. M. Lake, R. Salakhutdinov and J. B. Tenenbaum, "Human-level
       concept learning through probabilistic program induction", Science
       350(6266), 2015.
    .. [2] O. Vinyals, C. Blundell, T. Lillicrap, K. Kavukcuoglu and
       D. Wierstra, "Matching Networks for One Shot Learning", NeurIPS 2016.
    .. [3] J. Snell, K. Swersky and R. Zemel, "Prototypical Networks for
       Few-shot Learning", NeurIPS 2017.

    Examples
    --------
    >>> from sklearn_protonet.datasets import load_omniglot
    >>> omniglot = load_omniglot("test")  # doctest: +SKIP
    >>> omniglot.images.shape  # doctest: +SKIP
    (33840, 28, 28)
    >>> omniglot.target[0]  # doctest: +SKIP
    'Gurmukhi/character42/rot000'
    """
    if not isinstance(subset, str) or subset not in SUBSETS:
        raise ValueError(
            f"subset must be one of {', '.join(map(repr, SUBSETS))}; got {subset!r}."
        )
    if (
        not isinstance(image_size, numbers.Integral)
        or isinstance(image_size, bool)
        or not 1 <= image_size <= _ORIGINAL_SIZE
    ):
        raise ValueError(
            f"image_size must be an int from 1 to {_ORIGINAL_SIZE}; got {image_size!r}."
        )
    image_size = int(image_size)

    root = _resolve_data_home(data_home)
    folder = _omniglot_dir(root)
    _ensure_files(root, subset, download_if_missing)

    base, source = _load_base(folder, image_size)
    entries = None
    if base is None:
        # Checking the archives first is cheap and catches a bad download
        # before the slow decoding.
        entries = _scan_zips(folder)
        names = np.array([name for chars in entries.values() for name, _, _ in chars])
    else:
        names = base["names"]
    index = {str(name): i for i, name in enumerate(names)}

    if subset in VINYALS_SUBSETS:
        char_idx, rot_idx, class_names = _read_split(
            root / _split_relpath(subset), subset, index
        )
    else:
        parts = list(_ZIPS)
        start = sum(_ZIPS[p][2] for p in parts[: parts.index(subset)])
        char_idx = list(range(start, start + _ZIPS[subset][2]))
        rot_idx = [0] * len(char_idx)
        class_names = [str(names[i]) for i in char_idx]

    if base is None:
        assert entries is not None
        base = {
            "version": np.array(_CACHE_VERSION),
            "image_size": np.array(image_size),
            "source_sha256": np.array(source),
            "names": names,
            "drawers": np.array(
                [d for chars in entries.values() for _, _, d in chars], dtype=np.uint8
            ),
            "images": _decode(folder, entries, image_size),
        }
        base["content_sha256"] = np.array(_content_sha256(base))
        _write_cache(folder, _cache_name(image_size), base)

    images = base["images"][np.asarray(char_idx), np.asarray(rot_idx)]
    images = images.reshape(-1, image_size, image_size).astype(np.float32)
    images /= 255  # float32 division keeps 0 and 255 exactly 0.0 and 1.0
    target = np.repeat(np.array(class_names), _N_DRAWERS)
    descr = load_descr("omniglot").format(
        subset=subset,
        n_classes=len(class_names),
        n_samples=len(target),
        size=image_size,
    )
    return image_bunch(images, target, descr, return_X_y)
