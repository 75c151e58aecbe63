"""Reading images, from files or from memory, into the arrays an encoder takes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from PIL import Image, ImageOps, UnidentifiedImageError
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_memory

from .contracts import POLARITIES, get_input_contract, reversed_polarity

__all__ = ["ImageReader"]

_COLOR_MODES = {"grayscale": 1, "rgb": 3}
# Pillow modes whose pixels are 8-bit: Pillow converts them (palette,
# CMYK, alpha...) to "L" or "RGB" itself.
_EIGHT_BIT_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"}
_EIGHT_BIT_MODES |= {"CMYK", "YCbCr", "LAB", "HSV"}
_INTEGER_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow


def _pair(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, Integral):
        return int(size), int(size)
    return int(size[0]), int(size[1])


class ImageReader(TransformerMixin, BaseEstimator):
    """Turn image files (or images in memory) into an encoder's input array.

    A stateless transformer: ``fit`` only checks the parameters, and
    ``transform`` reads, converts and resizes every image, so
    ``make_pipeline(ImageReader(size=28), PrototypicalClassifier(encoder))``
    classifies file paths. Files are decoded by Pillow, in parallel threads
    with ``n_jobs``; EXIF orientation is applied, palette, 16-bit, CMYK and
    alpha images are converted. Nothing is cached unless ``memory`` is given.

    Parameters
    ----------
    size : int, (height, width) or None, default=None
        Resize every image to this size (bilinear, with antialiasing when
        shrinking; the aspect ratio is not kept). ``None`` keeps the sizes,
        which must then all be equal.
    color_mode : {"grayscale", "rgb"}, default="grayscale"
        One channel (luma) or three.
    value_range : (float, float), default=(0.0, 1.0)
        Black and white are mapped to these values (after ``polarity``).
    polarity : {"light-on-dark", "dark-on-light"} or None, default=None
        Make the foreground lighter (or darker) than the background by
        inverting the images whose border pixels, taken as background, say
        otherwise; ``None`` leaves the images as they are. Omniglot's encoders
        expect ``"light-on-dark"``; scans of ink on paper are dark-on-light.
    flatten : bool, default=False
        Return rows of ``C * H * W`` values instead of ``(C, H, W)`` images
        (for scikit-learn estimators that need 2-D input).
    max_pixels : int, default=50_000_000
        Largest accepted image, in pixels (width times height), checked from
        the file header before decoding: a guard against decompression bombs
        and runaway memory.
    n_jobs : int or None, default=None
        Threads decoding in parallel (joblib; -1 uses all processors).
    memory : None, str or joblib.Memory, default=None
        Cache the decoded files there, keyed by path, modification time and
        the reading parameters. ``None`` caches nothing.

    Attributes
    ----------
    n_features_in_ : int
        Always 1: one path (or image) per sample.

    See Also
    --------
    sklearn_protonet.datasets.load_image_folder : reads a folder per class.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_protonet.preprocessing import ImageReader
    >>> images = np.zeros((2, 8, 8), dtype=np.uint8)  # in memory, or file paths
    >>> ImageReader(size=(4, 4)).fit_transform(images).shape
    (2, 1, 4, 4)
    """

    _parameter_constraints: dict = {
        "size": [None, Interval(Integral, 1, None, closed="left"), tuple, list],
        "color_mode": [StrOptions(set(_COLOR_MODES))],
        "value_range": [tuple, list],
        "polarity": [None, StrOptions(set(POLARITIES))],
        "flatten": ["boolean"],
        "max_pixels": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [None, Integral],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
    }

    def __init__(
        self,
        *,
        size: int | tuple[int, int] | None = None,
        color_mode: str = "grayscale",
        value_range: tuple[float, float] = (0.0, 1.0),
        polarity: str | None = None,
        flatten: bool = False,
        max_pixels: int = 50_000_000,
        n_jobs: int | None = None,
        memory=None,
    ) -> None:
        self.size = size
        self.color_mode = color_mode
        self.value_range = value_range
        self.polarity = polarity
        self.flatten = flatten
        self.max_pixels = max_pixels
        self.n_jobs = n_jobs
        self.memory = memory

    @classmethod
    def from_encoder(cls, encoder, **params) -> ImageReader:
        """A reader producing the images ``encoder``'s input contract asks for.

        Parameters
        ----------
        encoder : torch.nn.Module or estimator
            E.g. :func:`~sklearn_protonet.pretrained.load_pretrained`'s result.
        **params
            Other parameters, or overrides of those taken from the contract.

        Returns
        -------
        ImageReader

        Examples
        --------
        >>> from sklearn_protonet.pretrained import load_pretrained
        >>> from sklearn_protonet.preprocessing import ImageReader
        >>> ImageReader.from_encoder(load_pretrained())
        ImageReader(polarity='light-on-dark', size=(28, 28))
        """
        contract = get_input_contract(encoder)
        if contract is None:
            raise ValueError(
                f"The encoder {type(encoder).__name__} states no input contract; "
                "create ImageReader(size=..., color_mode=...) yourself."
            )
        settings = {}
        if contract.shape is not None:
            channels, height, width = contract.shape
            modes = {n: mode for mode, n in _COLOR_MODES.items()}
            if channels not in modes:
                raise ValueError(
                    f"The encoder takes {channels}-channel images; ImageReader "
                    "reads 1 (grayscale) or 3 (rgb)."
                )
            settings.update(size=(height, width), color_mode=modes[channels])
        if contract.value_range is not None:
            settings["value_range"] = contract.value_range
        if contract.polarity is not None:
            settings["polarity"] = contract.polarity
        return cls(**{**settings, **params})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        tags.input_tags.string = True
        return tags

    def _check_params(self) -> None:
        self._validate_params()
        size = self.size
        if isinstance(size, (tuple, list)) and (
            len(size) != 2 or not all(isinstance(s, Integral) and s > 0 for s in size)
        ):
            raise ValueError(
                "size must be an int or (height, width) of positive ints, got "
                f"{size!r}."
            )
        value_range = self.value_range
        if (
            len(value_range) != 2
            or not all(isinstance(v, Real) for v in value_range)
            or not value_range[0] < value_range[1]
        ):
            raise ValueError(
                "value_range must be (low, high) numbers with low < high, got "
                f"{value_range!r}."
            )
        check_memory(self.memory)

    def fit(self, X=None, y=None) -> ImageReader:
        """Check the parameters; nothing is learnt.

        Parameters
        ----------
        X, y : ignored

        Returns
        -------
        self : ImageReader
        """
        self._check_params()
        self.n_features_in_ = 1
        return self

    def transform(self, X) -> np.ndarray:
        """Read the images.

        Parameters
        ----------
        X : list, array, Series or one-column DataFrame of paths, or images
            File paths (str or path-like), PIL images, or a numeric array of
            images: ``(n, H, W)`` grey, ``(n, H, W, C)`` or ``(n, C, H, W)``
            with C in {1, 3, 4} (when the layout is unambiguous). Integer
            arrays must be uint8 or uint16; float arrays hold values in
            [0, 1].

        Returns
        -------
        ndarray of float32, shape (n, C, H, W), or (n, C * H * W) with ``flatten``
        """
        self._check_params()
        items = _as_items(X)
        size = _pair(self.size)
        read = _read_item
        memory = check_memory(self.memory)
        if memory.location is not None:
            read = memory.cache(_read_item)
        settings = (size, self.color_mode, self.max_pixels)
        images = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(read)(item, _stamp(item), *settings) for item in items
        )
        if not images:
            raise ValueError("X holds no images; pass at least one path or image.")
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            first = images[0].shape
            odd = next(i for i, image in enumerate(images) if image.shape != first)
            raise ValueError(
                f"The images have different sizes ({_name(items[0])} is "
                f"{first[1]}x{first[2]}, {_name(items[odd])} is "
                f"{images[odd].shape[1]}x{images[odd].shape[2]}, height x width); "
                "set size=(height, width) to resize them all."
            )
        out = np.stack(images)
        if self.polarity is not None:
            flip = reversed_polarity(out.mean(axis=1), self.polarity)
            out[flip] = 1.0 - out[flip]
        low, high = (float(v) for v in self.value_range)
        if (low, high) != (0.0, 1.0):
            out = out * np.float32(high - low) + np.float32(low)
        return out.reshape(len(out), -1) if self.flatten else out


def _name(item) -> str:
    return repr(str(item)) if isinstance(item, (str, os.PathLike)) else "an image"


def _stamp(item) -> tuple | None:
    """What identifies a file's content for the cache (None for images)."""
    if not isinstance(item, (str, os.PathLike)):
        return None
    try:
        stat = os.stat(item)
    except OSError:
        return None
    return str(Path(item).resolve()), stat.st_mtime_ns, stat.st_size


def _as_items(X) -> Sequence:
    """One path or image per sample, from the many shapes X may take."""
    if hasattr(X, "iloc"):  # pandas
        if getattr(X, "ndim", 1) == 2:
            if X.shape[1] != 1:
                raise ValueError(
                    f"ImageReader reads one column of paths, got a DataFrame with "
                    f"columns {list(X.columns)}; select it, e.g. "
                    "ColumnTransformer([('image', ImageReader(), 'path')])."
                )
            X = X.iloc[:, 0]
        return list(X.to_numpy())
    if isinstance(X, (str, os.PathLike, Image.Image)):
        raise ValueError(
            "X must hold one path or image per sample, got a single "
            f"{type(X).__name__}; wrap it in a list."
        )
    if isinstance(X, np.ndarray) and X.dtype.kind not in "OUS":
        return _split_array(X)
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(
                f"An array of paths must be 1-D (or one column), got shape {X.shape}."
            )
        return list(X)
    if not isinstance(X, Sequence):
        raise TypeError(
            "X must be a list, array, pandas Series or one-column DataFrame of "
            f"paths or images, got {type(X).__name__}."
        )
    return list(X)


def _split_array(X: np.ndarray) -> list[np.ndarray]:
    """A numeric batch of images as a list of (H, W) or (H, W, C) arrays."""
    if X.ndim == 3:
        return list(X)
    if X.ndim == 4:
        last, second = X.shape[3] in (1, 3, 4), X.shape[1] in (1, 3, 4)
        if last and not second:
            return list(X)
        if second and not last:
            return list(np.moveaxis(X, 1, 3))
    raise ValueError(
        f"Cannot tell the image layout of an array of shape {X.shape}: pass "
        "(n, height, width) grey images, (n, height, width, channels) or "
        "(n, channels, height, width) with 1, 3 or 4 channels; reshape flat "
        "rows to one of these first."
    )


def _read_item(item, stamp, size, color_mode, max_pixels) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1]. ``stamp`` keys the cache."""
    if isinstance(item, (str, os.PathLike)):
        return _read_file(item, size, color_mode, max_pixels)
    if isinstance(item, Image.Image):
        return _convert(ImageOps.exif_transpose(item), size, color_mode)
    if isinstance(item, np.ndarray):
        return _convert_array(item, size, color_mode)
    raise TypeError(
        f"Cannot read a {type(item).__name__} as an image: give file paths, PIL "
        "images or numeric arrays."
    )


def _read_file(path, size, color_mode, max_pixels) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No image file at {str(path)!r}.")
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                too_large = f"{image.width}x{image.height}"
            else:
                too_large = None
                if size is not None and image.format == "JPEG":
                    # libjpeg decodes at a reduced scale: much faster for photos.
                    mode = "L" if color_mode == "grayscale" else "RGB"
                    image.draft(mode, (2 * size[1], 2 * size[0]))
                image.load()  # decode now, inside the error handling
                return _convert(ImageOps.exif_transpose(image), size, color_mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"Cannot read the image file {str(path)!r}: {error}. Check that it is "
            "an image Pillow reads (PNG, JPEG, BMP, GIF, TIFF...) and not truncated."
        ) from error
    raise ValueError(
        f"The image file {str(path)!r} has {too_large} pixels, more than "
        f"max_pixels={max_pixels}; raise max_pixels if the image is genuine."
    )


def _convert(image: Image.Image, size, color_mode) -> np.ndarray:
    """A PIL image as float32 (C, H, W) in [0, 1], in color_mode and size."""
    if image.mode in _EIGHT_BIT_MODES:
        if image.mode in ("P", "PA"):  # palettes may hold transparency
            image = image.convert("RGBA")
        image = image.convert("L" if color_mode == "grayscale" else "RGB")
        if size is not None:
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / np.float32(255)
        return array[None] if array.ndim == 2 else np.moveaxis(array, 2, 0)
    # 16-bit and 32-bit integer, and float images: scale, then convert ourselves.
    array = np.asarray(image)
    if image.mode == "F":
        scale = 1.0
    elif image.mode.startswith("I;16"):
        scale = 65535.0
    else:  # "I": 32-bit integers, which 16-bit files often decode to
        scale = 65535.0 if array.max(initial=0) <= 65535 else float(2**32 - 1)
    return _convert_array(
        array.astype(np.float32) / np.float32(scale), size, color_mode
    )


def _convert_array(array: np.ndarray, size, color_mode) -> np.ndarray:
    """A (H, W) or (H, W, C) array as float32 (C, H, W) in [0, 1]."""
    if array.dtype.kind in "ui":
        if array.dtype not in _INTEGER_MAX:
            raise ValueError(
                f"Integer images must be uint8 or uint16 (so their range is "
                f"known), got {array.dtype}; convert them to floats in [0, 1]."
            )
        array = array.astype(np.float32) / np.float32(_INTEGER_MAX[array.dtype])
    elif array.dtype.kind == "b":
        array = array.astype(np.float32)
    else:
        array = array.astype(np.float32, copy=False)
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(
                f"Float images must hold values in [0, 1], got [{array.min():g}, "
                f"{array.max():g}]; rescale them (e.g. divide by 255)."
            )
    if array.ndim == 3:
        if array.shape[2] == 4:  # drop alpha
            array = array[:, :, :3]
        if color_mode == "grayscale":
            array = array[:, :, 0] if array.shape[2] == 1 else array @ _LUMA
    if array.ndim == 2 and color_mode == "rgb":
        array = np.repeat(array[:, :, None], 3, axis=2)
    channels = [array] if array.ndim == 2 else list(np.moveaxis(array, 2, 0))
    if size is not None:
        channels = [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(c)).resize(
                    (size[1], size[0]), Image.Resampling.BILINEAR
                )
            )
            for c in channels
        ]
    return np.stack(channels).astype(np.float32, copy=False)
