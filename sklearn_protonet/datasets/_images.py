"""Loading a folder of images with one sub-folder per class."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.base import clone

from ..preprocessing import ImageReader
from ._base import image_bunch

__all__ = ["load_image_folder"]

IMAGE_EXTENSIONS = (
    ".bmp",
    ".gif",
    ".jpeg",
    ".jpg",
    ".pgm",
    ".png",
    ".ppm",
    ".tif",
    ".tiff",
    ".webp",
)

_DESCR = """Image folder
------------
Images read from {path}: {n_images} images in {n_classes} classes, one
sub-folder per class (the layout of torchvision's ImageFolder and Keras's
image_dataset_from_directory). Read by {reader}.
"""


def load_image_folder(
    path,
    *,
    size: int | tuple[int, int] | None = None,
    color_mode: str = "grayscale",
    value_range: tuple[float, float] = (0.0, 1.0),
    polarity: str | None = None,
    denoise: int | None = None,
    background: str | None = None,
    contrast: float | None = None,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    max_images: int = 100_000,
    max_pixels: int = 50_000_000,
    n_jobs: int | None = None,
    reader: ImageReader | None = None,
    return_X_y: bool = False,
):
    """Load images stored as ``path/<class name>/<image file>``.

    Parameters
    ----------
    path : str or path-like
        The folder holding one sub-folder per class. Files directly in
        ``path``, hidden files and files whose extension is not in
        ``extensions`` are ignored.
    size, color_mode, value_range, polarity, max_pixels, n_jobs
        How each image is read: see
        :class:`~sklearn_protonet.preprocessing.ImageReader`.
    denoise, background, contrast
        How each image is brought to an encoder's expectation of background
        and contrast (photographs and scans: grey or shaded paper, faint ink,
        noise): see :class:`~sklearn_protonet.preprocessing.ImageReader`;
        ``ImageReader.from_encoder(encoder)`` holds the values an encoder's
        input contract asks for (or pass it as ``reader``). ``None``
        (default) leaves the images as read.
    extensions : tuple of str, default=IMAGE_EXTENSIONS
        File name endings (case-insensitive) read as images.
    reader : ImageReader or None, default=None
        Read the files with (a clone of) this reader instead, e.g.
        ``ImageReader.from_encoder(encoder)`` for the images an encoder's
        input contract asks for; the reading parameters above must then be
        left at their defaults (set them on the reader).
    max_images : int, default=100_000
        Refuse folders with more images than this, before reading any: a
        few-shot support set is small, and the images are held in memory.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    Bunch
        ``data`` (n, C * H * W) float32 rows, ``images`` (n, C, H, W), ``target``
        (the class folder names, as strings), ``target_names`` (sorted),
        ``filenames`` (the paths, as strings) and ``DESCR``. Images are in
        sorted class then file name order; ``data`` is a view of ``images``.
        Or ``(data, target)`` with ``return_X_y``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder.
    ValueError
        If there are fewer than two classes with images, a class folder holds
        no image, there are too many images, or a file cannot be read (the
        error names it).

    Examples
    --------
    >>> from sklearn_protonet.datasets import load_image_folder
    >>> bunch = load_image_folder("my_images", size=28)  # doctest: +SKIP
    >>> bunch.images.shape  # doctest: +SKIP
    (40, 1, 28, 28)

    Photographed symbols, read as a pretrained encoder expects them:

    >>> from sklearn_protonet.preprocessing import ImageReader
    >>> from sklearn_protonet.pretrained import load_pretrained
    >>> reader = ImageReader.from_encoder(load_pretrained("omniglot-conv4-robust"))
    >>> bunch = load_image_folder("my_photos", reader=reader)  # doctest: +SKIP
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"No image folder at {str(root)!r}: path must be a folder holding "
            "one sub-folder of images per class."
        )
    if not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images must be a positive int, got {max_images!r}.")
    suffixes = tuple(e.lower() for e in extensions)
    class_dirs = sorted(
        d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
    )
    filenames, target = [], []
    for class_dir in class_dirs:
        files = sorted(
            f
            for f in class_dir.iterdir()
            if f.is_file()
            and not f.name.startswith(".")
            and f.name.lower().endswith(suffixes)
        )
        if not files:
            raise ValueError(
                f"The class folder {str(class_dir)!r} holds no image file (with "
                f"extensions {suffixes}); add images or remove the folder."
            )
        filenames += [os.fspath(f) for f in files]
        target += [class_dir.name] * len(files)
        if len(filenames) > max_images:
            raise ValueError(
                f"{str(root)!r} holds more than max_images={max_images} images; "
                "raise max_images or load a subset."
            )
    if len(class_dirs) < 2:
        raise ValueError(
            f"{str(root)!r} holds {len(class_dirs)} class folder(s), "
            f"{[d.name for d in class_dirs]}; few-shot classification needs at "
            "least 2, each a sub-folder of images named after its class."
        )
    settings = {
        "size": size,
        "color_mode": color_mode,
        "value_range": value_range,
        "polarity": polarity,
        "denoise": denoise,
        "background": background,
        "contrast": contrast,
        "max_pixels": max_pixels,
        "n_jobs": n_jobs,
    }
    if reader is None:
        reader = ImageReader(**settings)
    else:
        defaults = ImageReader().get_params()
        changed = [name for name, value in settings.items() if value != defaults[name]]
        if changed:
            raise ValueError(
                f"Pass either reader or reading parameters, not both: got a reader "
                f"and {changed}; set them on the reader instead, e.g. "
                "ImageReader.from_encoder(encoder, n_jobs=4)."
            )
        reader = clone(reader)
    images = reader.fit_transform(filenames)
    descr = _DESCR.format(
        path=str(root),
        n_images=len(filenames),
        n_classes=len(class_dirs),
        reader=" ".join(repr(reader).split()),
    )
    return image_bunch(
        images,
        np.asarray(target),
        descr,
        return_X_y,
        target_names=np.asarray([d.name for d in class_dirs]),
        filenames=np.asarray(filenames),
    )
