"""Reading images, from files or from memory, into the arrays an encoder takes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_memory

from .contracts import (
    INK_PERCENTILE,
    POLARITIES,
    background_surface,
    get_input_contract,
    reversed_polarity,
)

__all__ = ["ImageReader"]

_COLOR_MODES = {"grayscale": 1, "rgb": 3}
# Pillow modes whose pixels are 8-bit: Pillow converts them (palette,
# CMYK, alpha...) to "L" or "RGB" itself.
_EIGHT_BIT_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"}
_EIGHT_BIT_MODES |= {"CMYK", "YCbCr", "LAB", "HSV"}
_INTEGER_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow
_BACKGROUNDS = ("flat", "uneven")
#: What ``from_encoder`` turns on for an encoder whose contract asks for a
#: uniform background and full contrast (measured in
#: benchmarks/real_conditions.py).
_NORMALISATION = {"background": "uneven", "contrast": INK_PERCENTILE, "denoise": 3}


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
    input_range : (float, float) or None, default=(0.0, 1.0)
        The range of float images given in memory (and of 32-bit float image
        files), and of integer images other than uint8 and uint16 (which are
        scaled by their type's range): mapped to [0, 1] before anything else,
        values outside it refused (a guard against 0-255 floats read as
        0-1); e.g. ``(0, 4095)`` for 12-bit images in int32. ``None`` takes
        such pixels as they are, any finite values, without scaling.
    value_range : (float, float), default=(0.0, 1.0)
        Black and white are mapped to these values (after ``polarity``).
    polarity : {"light-on-dark", "dark-on-light"} or None, default=None
        Make the foreground lighter (or darker) than the background by
        inverting the images whose border pixels, taken as background, say
        otherwise; ``None`` leaves the images as they are. Omniglot's encoders
        expect ``"light-on-dark"``; scans of ink on paper are dark-on-light.
    denoise : int or None, default=None
        Replace each pixel of a noisy image by the median of its ``denoise``
        x ``denoise`` neighbourhood (Pillow's ``MedianFilter``, odd sizes),
        after resizing: removes sensor noise and specks. An image is noisy
        when its noise (the median absolute difference to its filtered self)
        exceeds 1 % of its ink contrast, so clean images, whose thin strokes
        the filter would erode, are left as they are. ``None`` leaves every
        image.
    background : {"flat", "uneven"} or None, default=None
        Subtract each image's background, so that it sits at the background
        end of ``value_range`` (0 for light-on-dark images): ``"flat"``, one
        level per image (its median: grey paper); ``"uneven"``, a smooth
        surface estimated on a 4x4 grid of tiles (shading, vignetting,
        uneven light; :func:`~sklearn_protonet.contracts.background_surface`).
        Which side is background is the ``polarity`` (judged per image from
        the border when ``polarity`` is None). ``None`` leaves the images.
    contrast : float or None, default=None
        Stretch each image so that this percentile of its pixels (above the
        background) becomes full ink, clipping beyond: faint strokes and
        grey ink reach the full value, as in Omniglot. A high percentile
        (e.g. 99.5) keeps a few hot pixels from setting the scale. ``None``
        leaves the contrast.
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
        1 (one path or image per sample), or the width of the rows of
        pixels of a 2-D numeric array passed to ``fit``.
    image_size_ : (int, int) or None
        ``(height, width)`` of the images of an array passed to ``fit``
        (before resizing); None when ``fit`` saw files or nothing.

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
        "input_range": [None, tuple, list],
        "value_range": [tuple, list],
        "polarity": [None, StrOptions(set(POLARITIES))],
        "denoise": [None, Interval(Integral, 3, None, closed="left")],
        "background": [None, StrOptions(set(_BACKGROUNDS))],
        "contrast": [None, Interval(Real, 50, 100, closed="right")],
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
        input_range: tuple[float, float] | None = (0.0, 1.0),
        value_range: tuple[float, float] = (0.0, 1.0),
        polarity: str | None = None,
        denoise: int | None = None,
        background: str | None = None,
        contrast: float | None = None,
        flatten: bool = False,
        max_pixels: int = 50_000_000,
        n_jobs: int | None = None,
        memory=None,
    ) -> None:
        self.size = size
        self.color_mode = color_mode
        self.input_range = input_range
        self.value_range = value_range
        self.polarity = polarity
        self.denoise = denoise
        self.background = background
        self.contrast = contrast
        self.flatten = flatten
        self.max_pixels = max_pixels
        self.n_jobs = n_jobs
        self.memory = memory

    @classmethod
    def from_encoder(cls, encoder, **params) -> ImageReader:
        """A reader producing the images ``encoder``'s input contract asks for.

        Size, channels, value range and polarity come from the contract; when
        it states a uniform background (``background="uniform"``) and full
        contrast (``contrast="full"``), as the shipped encoders' do, the
        reader also denoises noisy images (``denoise=3``), subtracts an
        uneven background (``background="uneven"``) and stretches the
        contrast (``contrast=99.5``), so that photographed or scanned symbols
        look like the encoder's training images. Pass any of them as ``None``
        to turn that step off.

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
        ImageReader(background='uneven', contrast=99.5, denoise=3,
                    polarity='light-on-dark', size=(28, 28))
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
        if contract.figure_on_ground:
            if contract.background == "uniform":
                settings["background"] = _NORMALISATION["background"]
                settings["denoise"] = _NORMALISATION["denoise"]
            if contract.contrast == "full":
                settings["contrast"] = _NORMALISATION["contrast"]
        return cls(**{**settings, **params})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        # 2-D numeric arrays are rows of pixels (one-pixel-high images), so
        # scikit-learn's checks can run; 1-D arrays and lists of paths are
        # read too, but declaring one_d_array would make every check pass
        # 1-D numbers, which are neither paths nor images.
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True
        # Pixels come out as float32 whatever goes in.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the pixels of flat rows, ``pixel_<channel>_<row>_<column>``.

        They need ``flatten=True`` and a fixed ``size`` (or the size of the
        images ``fit`` saw, for arrays of images): they are what
        ``set_output(transform="pandas")`` names the columns.

        Parameters
        ----------
        input_features : ignored
            The input is one path or image per sample, not features.

        Returns
        -------
        ndarray of str, shape (C * H * W,)
        """
        if not self.flatten:
            raise ValueError(
                "ImageReader names its output features only for flat rows: set "
                "flatten=True (images of shape (C, H, W) are not a table)."
            )
        size = _pair(self.size) or getattr(self, "image_size_", None)
        if size is None:
            raise ValueError(
                "ImageReader cannot name its output features before it knows the "
                "image size: set size=(height, width), or fit it on the images."
            )
        channels = _COLOR_MODES[self.color_mode]
        return np.asarray(
            [
                f"pixel_{c}_{row}_{col}"
                for c in range(channels)
                for row in range(size[0])
                for col in range(size[1])
            ],
            dtype=object,
        )

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
        for name in ("input_range", "value_range"):
            value = getattr(self, name)
            if value is not None and (
                len(value) != 2
                or not all(isinstance(v, Real) for v in value)
                or not value[0] < value[1]
            ):
                raise ValueError(
                    f"{name} must be (low, high) numbers with low < high, got "
                    f"{value!r}."
                )
        if self.denoise is not None and self.denoise % 2 == 0:
            raise ValueError(
                f"denoise must be an odd window size (3, 5...), got {self.denoise}."
            )
        check_memory(self.memory)

    def fit(self, X=None, y=None) -> ImageReader:
        """Check the parameters; nothing is learnt from the pixels.

        Parameters
        ----------
        X : images or paths, optional
            For arrays of images, their size is kept (``image_size_``, which
            names the output features when ``size`` is None); files are not
            opened.
        y : ignored

        Returns
        -------
        self : ImageReader
        """
        self._check_params()
        self.n_features_in_ = 1
        self.image_size_ = None
        _refuse_sparse(X)
        if isinstance(X, np.ndarray) and X.dtype.kind not in "OUS":
            # Images in memory are checked now (layout, dtype, values), as
            # transform would; files are only opened by transform.
            items = _split_array(X)
            if not items:
                raise ValueError("X holds no images; pass at least one image.")
            for item in items:
                _check_pixels(item, self.input_range)
            self.image_size_ = tuple(int(s) for s in items[0].shape[:2])
            if X.ndim == 2:
                self.n_features_in_ = X.shape[1]
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
        self._check_width(X)
        size = _pair(self.size)
        read = _read_item
        memory = check_memory(self.memory)
        if memory.location is not None:
            read = memory.cache(_read_item)
        input_range = None if self.input_range is None else tuple(self.input_range)
        settings = (size, self.color_mode, self.max_pixels, input_range)
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
        out = self._normalise(out)
        low, high = (float(v) for v in self.value_range)
        if (low, high) != (0.0, 1.0):
            out = out * np.float32(high - low) + np.float32(low)
        return out.reshape(len(out), -1) if self.flatten else out

    def _check_width(self, X) -> None:
        """Rows of pixels as wide as those ``fit`` saw, as scikit-learn asks
        of a fitted transformer (images and paths have no width to check)."""
        fitted = getattr(self, "image_size_", None)
        if fitted is None or fitted[0] != 1 or getattr(X, "ndim", 0) != 2:
            return
        if getattr(X, "dtype", None) is None or X.dtype.kind in "OUS":
            return
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but ImageReader is expecting "
                f"{self.n_features_in_} features as input: it was fitted on rows "
                f"of {self.n_features_in_} pixels."
            )

    def _normalise(self, images: np.ndarray) -> np.ndarray:
        """Denoise, subtract the background and stretch the contrast of
        ``(n, C, H, W)`` images in [0, 1], as the parameters ask."""
        if self.denoise is None and self.background is None and self.contrast is None:
            return images
        # Work with the foreground up: invert images whose background is
        # light (all of them after polarity="dark-on-light"), and back after.
        grey = images.mean(axis=1)
        if self.polarity is not None:
            dark = np.full(len(images), self.polarity == "dark-on-light")
        else:
            dark = reversed_polarity(grey, "light-on-dark")
        images[dark] = 1.0 - images[dark]
        n, channels, height, width = images.shape
        planes = images.reshape(n * channels, height, width)
        if self.denoise is not None:
            _denoise(planes, self.denoise)
        if self.background is not None:
            surface = background_surface(planes, flat=self.background == "flat")
            np.clip(planes - surface, 0.0, 1.0, out=planes)
        if self.contrast is not None:
            ink = np.percentile(images.reshape(n, -1), self.contrast, axis=1)
            # An image without strokes (ink at the background) stays as it is.
            scale = np.where(ink > 1e-3, 1.0 / np.maximum(ink, 1e-3), 1.0)
            images *= scale.astype(np.float32)[:, None, None, None]
            np.clip(images, 0.0, 1.0, out=images)
        images[dark] = 1.0 - images[dark]
        return images


#: Images whose noise is below this fraction of their ink contrast are not
#: denoised: a median filter erodes thin strokes, which costs clean images
#: (Omniglot's) more than it gains (benchmarks/real_conditions.py).
_NOISE_FLOOR = 0.01


def _denoise(planes: np.ndarray, size: int) -> None:
    """Median-filter, in place, the ``(n, H, W)`` planes that are noisy.

    An image's noise is estimated robustly as the median absolute difference
    between it and its median-filtered self (scaled to a Gaussian's sigma):
    zero for clean images, whatever their strokes; it is compared with the
    image's ink contrast (the 99.5th percentile above the median).
    """
    median = ImageFilter.MedianFilter(size)
    filtered = np.stack(
        [np.asarray(Image.fromarray(plane, "F").filter(median)) for plane in planes]
    )
    flat = planes.reshape(len(planes), -1)
    noise = 1.4826 * np.median(np.abs(flat - filtered.reshape(len(planes), -1)), axis=1)
    contrast = np.percentile(flat, INK_PERCENTILE, axis=1) - np.median(flat, axis=1)
    noisy = noise > _NOISE_FLOOR * np.maximum(contrast, 1e-3)
    planes[noisy] = filtered[noisy]


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


def _refuse_sparse(X) -> None:
    if sp.issparse(X):
        raise TypeError(
            "ImageReader reads images, and sparse data are not images: pass a "
            "dense array (X.toarray()) of pixels, or file paths."
        )


def _as_items(X) -> Sequence:
    """One path or image per sample, from the many shapes X may take."""
    _refuse_sparse(X)
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
    if not isinstance(X, (np.ndarray, Sequence)) and hasattr(X, "__array__"):
        X = np.asarray(X)
    if isinstance(X, list) and X and isinstance(X[0], (list, tuple)):
        X = np.asarray(X)  # nested lists of numbers: an array
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 2:
        if X.shape[1] > 1:  # numbers in an object array, not a column of paths
            X = X.astype(np.float64)
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
    if X.ndim == 2:  # rows of pixels: one-pixel-high grey images
        if X.shape[1] == 0:
            raise ValueError(
                f"0 feature(s) (shape={X.shape}) while a minimum of 1 is "
                "required: rows of pixels need at least one pixel."
            )
        return list(X[:, None, :])
    if X.ndim == 3:
        return list(X)
    if X.ndim == 4:
        last, second = X.shape[3] in (1, 3, 4), X.shape[1] in (1, 3, 4)
        if last and not second:
            return list(X)
        if second and not last:
            return list(np.moveaxis(X, 1, 3))
    if X.ndim == 1:
        raise ValueError(
            f"A 1-D array of {X.dtype} numbers, shape {X.shape}, is neither file "
            "paths nor images. Reshape your data: X.reshape(1, -1) for one row "
            "of pixels, or pass (n, height, width) images or a list of paths."
        )
    raise ValueError(
        f"Cannot tell the image layout of an array of shape {X.shape}: pass "
        "(n, height, width) grey images, (n, height, width, channels) or "
        "(n, channels, height, width) with 1, 3 or 4 channels (a 2-D array is "
        "read as rows of pixels, one-pixel-high images); reshape flat rows of "
        "images to one of these first."
    )


def _read_item(item, stamp, size, color_mode, max_pixels, input_range) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1]. ``stamp`` keys the cache."""
    if isinstance(item, (str, os.PathLike)):
        return _read_file(item, size, color_mode, max_pixels, input_range)
    if isinstance(item, Image.Image):
        return _convert(ImageOps.exif_transpose(item), size, color_mode, input_range)
    if isinstance(item, np.ndarray):
        return _convert_array(item, size, color_mode, input_range)
    raise TypeError(
        f"Cannot read a {type(item).__name__} as an image: give file paths, PIL "
        "images or numeric arrays."
    )


def _read_file(path, size, color_mode, max_pixels, input_range) -> np.ndarray:
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
                return _convert(
                    ImageOps.exif_transpose(image), size, color_mode, input_range
                )
    except Image.DecompressionBombError as error:
        # Pillow refuses, as it opens it, an image of more than twice its
        # MAX_IMAGE_PIXELS: the max_pixels refusal, naming the file.
        raise ValueError(
            f"The image file {str(path)!r} is too large to decode safely "
            f"({error}); max_pixels={max_pixels}. If the image is genuine, raise "
            "PIL.Image.MAX_IMAGE_PIXELS and max_pixels."
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"Cannot read the image file {str(path)!r}: {error}. Check that it is "
            "an image Pillow reads (PNG, JPEG, BMP, GIF, TIFF...) and not truncated."
        ) from error
    raise ValueError(
        f"The image file {str(path)!r} has {too_large} pixels, more than "
        f"max_pixels={max_pixels}; raise max_pixels if the image is genuine."
    )


def _convert(image: Image.Image, size, color_mode, input_range) -> np.ndarray:
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
        return _convert_array(array, size, color_mode, input_range)
    if image.mode.startswith("I;16"):
        scale = 65535.0
    else:  # "I": 32-bit integers, which 16-bit files often decode to
        scale = 65535.0 if array.max(initial=0) <= 65535 else float(2**32 - 1)
    return _convert_array(
        array.astype(np.float32) / np.float32(scale), size, color_mode, (0.0, 1.0)
    )


def _check_pixels(array: np.ndarray, input_range) -> None:
    """Refuse arrays whose values are not pixels: other dtypes, non-finite
    numbers, floats (and integers other than uint8, uint16) outside
    ``input_range``."""
    kind = array.dtype.kind
    if kind == "c":
        raise ValueError(
            "Complex data not supported: images hold real intensities in [0, 1]."
        )
    if kind == "f" and not np.isfinite(array).all():
        raise ValueError(
            "Input images contain NaN or infinity: float images must hold "
            "finite values in [0, 1]; fill or drop the missing pixels first."
        )
    if kind not in "uif" or input_range is None or not array.size:
        return
    if kind in "ui" and array.dtype in _INTEGER_MAX:
        return  # uint8 and uint16 are scaled by their own range
    low, high = input_range
    if array.min() >= low and array.max() <= high:
        return
    if kind == "f":
        raise ValueError(
            f"Float images must hold values in [{low:g}, {high:g}], got "
            f"[{array.min():g}, {array.max():g}]; rescale them (e.g. divide "
            "by 255), or set input_range to their range (e.g. (0, 255); "
            "None takes them as they are)."
        )
    raise ValueError(
        f"Integer images other than uint8 and uint16 must hold values "
        f"in [{low:g}, {high:g}] (input_range), got [{array.min()}, "
        f"{array.max()}] in {array.dtype}; set input_range to their "
        "range, e.g. (0, 4095) for 12-bit images, or convert them to "
        "uint8."
    )


def _convert_array(array: np.ndarray, size, color_mode, input_range) -> np.ndarray:
    """A (H, W) or (H, W, C) array as float32 (C, H, W) in [0, 1] (or as they
    are, for floats with ``input_range=None``)."""
    _check_pixels(array, input_range)
    if array.dtype in _INTEGER_MAX:
        array = array.astype(np.float32) / np.float32(_INTEGER_MAX[array.dtype])
    elif array.dtype.kind in "uif" and input_range not in (None, (0.0, 1.0)):
        low, high = input_range
        array = ((array - low) / (high - low)).astype(np.float32)
    else:
        array = array.astype(np.float32, copy=False)
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
