"""The input an encoder expects (its input contract), and checking data against it.

A pretrained encoder only works on images like those it was trained on:
Omniglot's encoders expect 28x28 single-channel images with light strokes
reaching 1.0 on a uniform background of exactly 0.0. The contract records
these facts with the weights, so that
:class:`~sklearn_protonet.preprocessing.ImageReader` can produce such images
and :class:`~sklearn_protonet.PrototypicalClassifier` can warn when images
clearly break them.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np
from sklearn.frozen import FrozenEstimator

from ._encoders import encoder_module

__all__ = [
    "InputContract",
    "InputContractWarning",
    "background_surface",
    "get_input_contract",
]

POLARITIES = ("light-on-dark", "dark-on-light")
BACKGROUNDS = ("uniform",)
CONTRASTS = ("full",)
#: Tiles per side of the grid on which an image's background is estimated.
BACKGROUND_TILES = 4
#: How far (a fraction of the value range) most images' background may sit
#: from the contract's background, and how far short of full strokes their
#: ink may stop, before a warning: only clear breaks are reported.
BACKGROUND_TOLERANCE = 0.15
CONTRAST_TOLERANCE = 0.5
#: The percentile of an image taken as its ink level (robust to a few hot
#: pixels, yet reached by the strokes of a small glyph).
INK_PERCENTILE = 99.5


class InputContractWarning(UserWarning):
    """The data break the encoder's input contract (range, polarity, background...)."""


@dataclass(frozen=True)
class InputContract:
    """What one input image of an encoder looks like; ``None`` means "any".

    Parameters
    ----------
    shape : tuple of int or None, default=None
        ``(channels, height, width)``.
    value_range : tuple of float or None, default=None
        ``(low, high)``: the values of the background and of full strokes.
    polarity : {"light-on-dark", "dark-on-light"} or None, default=None
        Whether the foreground (strokes, objects) is brighter than the
        background (Omniglot as the loader returns it) or darker (ink on paper).
    background : {"uniform"} or None, default="uniform"
        ``"uniform"``: the training images' background is flat, at the
        background end of ``value_range`` (``low`` for ``"light-on-dark"``,
        as Omniglot's exact zeros), not grey, shaded or noisy. ``None``: any
        background. Like ``contrast``, it describes figure-on-ground images,
        so it applies only when ``polarity`` and ``value_range`` are stated.
        The default is what the shipped encoders were trained on, so weight
        files written before this field existed read as they were meant.
    contrast : {"full"} or None, default="full"
        ``"full"``: the strokes of every training image reach the foreground
        end of ``value_range`` (1.0 for Omniglot), faint ink never. ``None``:
        any contrast.

    Examples
    --------
    >>> from sklearn_protonet.contracts import InputContract
    >>> InputContract(shape=(1, 28, 28), value_range=(0.0, 1.0)).to_dict()
    {'shape': [1, 28, 28], 'value_range': [0.0, 1.0], 'polarity': None, \
'background': 'uniform', 'contrast': 'full'}
    """

    shape: tuple[int, int, int] | None = None
    value_range: tuple[float, float] | None = None
    polarity: str | None = None
    background: str | None = "uniform"
    contrast: str | None = "full"

    def __post_init__(self) -> None:
        if self.shape is not None:
            shape = tuple(int(s) for s in self.shape)
            if len(shape) != 3 or min(shape) < 1:
                raise ValueError(
                    f"shape must be (channels, height, width), got {self.shape!r}."
                )
            object.__setattr__(self, "shape", shape)
        if self.value_range is not None:
            low, high = (float(v) for v in self.value_range)
            if not low < high:
                raise ValueError(
                    f"value_range must be (low, high) with low < high, got "
                    f"{self.value_range!r}."
                )
            object.__setattr__(self, "value_range", (low, high))
        if self.polarity not in (None, *POLARITIES):
            raise ValueError(
                f"polarity must be one of {POLARITIES} or None, got {self.polarity!r}."
            )
        if self.background not in (None, *BACKGROUNDS):
            raise ValueError(
                f"background must be one of {BACKGROUNDS} or None, got "
                f"{self.background!r}."
            )
        if self.contrast not in (None, *CONTRASTS):
            raise ValueError(
                f"contrast must be one of {CONTRASTS} or None, got {self.contrast!r}."
            )

    @property
    def figure_on_ground(self) -> bool:
        """Whether ``background`` and ``contrast`` apply: images of a
        foreground on a background, with a known value range and polarity."""
        return self.polarity is not None and self.value_range is not None

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (for weight files' metadata)."""
        out = asdict(self)
        for key in ("shape", "value_range"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict) -> InputContract:
        """The inverse of :meth:`to_dict`; unknown keys are an error, missing
        ones take their defaults (files written before a field existed)."""
        unknown = set(data) - {field.name for field in fields(cls)}
        if unknown:
            raise ValueError(f"unknown input contract fields {sorted(unknown)}")
        return cls(**data)


def get_input_contract(encoder, *, infer_shape: bool = True) -> InputContract | None:
    """The input contract an encoder carries, or ``None`` when it states none.

    Looked up, in order: an ``input_contract`` attribute of the encoder (a
    module, a fitted trainer or a transformer, also inside a
    ``FrozenEstimator``), then of the module behind it; a module with an
    ``input_shape`` (such as :class:`~sklearn_protonet.modules.Conv4`) gives
    a contract on the shape alone. Weight files keep the contract
    (:func:`~sklearn_protonet.persistence.save_encoder`).

    Parameters
    ----------
    encoder : None, torch.nn.Module or estimator
    infer_shape : bool, default=True
        Whether a module's ``input_shape`` makes a contract when none is
        stated (False: stated contracts only).

    Returns
    -------
    InputContract or None

    Examples
    --------
    >>> from sklearn_protonet.contracts import get_input_contract
    >>> from sklearn_protonet.pretrained import load_pretrained
    >>> get_input_contract(load_pretrained()).polarity
    'light-on-dark'
    """
    module = encoder_module(encoder)
    if isinstance(encoder, FrozenEstimator):
        encoder = encoder.estimator
    for holder in (encoder, module):
        contract = getattr(holder, "input_contract", None)
        if isinstance(contract, InputContract):
            return contract
    shape = getattr(module, "input_shape", None)
    if infer_shape and isinstance(shape, tuple) and len(shape) == 3:
        # Without a polarity, background and contrast do not apply.
        return InputContract(shape=shape)
    return None


def check_sample_shape(sample_shape: tuple[int, ...], contract: InputContract) -> None:
    """Raise a clear error when samples cannot be the contract's images.

    Accepted: ``(C, H, W)``, ``(H, W)`` for one channel, and flat rows of
    ``C * H * W`` values.
    """
    if contract.shape is None:
        return
    channels, height, width = contract.shape
    accepted = {contract.shape, (channels * height * width,)}
    if channels == 1:
        accepted.add((height, width))
    if tuple(sample_shape) in accepted:
        return
    raise ValueError(
        f"The encoder takes images of shape {contract.shape} (channels, height, "
        f"width; its input contract), but the samples have shape "
        f"{tuple(sample_shape)}. Resize and convert the images, e.g. with "
        "sklearn_protonet.preprocessing.ImageReader.from_encoder(encoder) in a "
        "Pipeline before the classifier."
    )


#: At most this many images are examined for a warning (evenly spaced rows):
#: the judgement is about most images, and large query batches stay cheap.
MAX_CHECKED_IMAGES = 1024


def contract_violations(X: np.ndarray, contract: InputContract) -> list[str]:
    """What clearly breaks the contract in ``X``, each with its fix.

    Only clear breaks are reported: values far outside the range (e.g. 0-255
    for a 0-1 encoder); a polarity opposite to the contract's for most images
    (judged from the border pixels, which are background in centred images);
    then, when range and polarity hold, a background far from the contract's
    (grey paper, shading) or ink far short of full strokes, for most images
    (:func:`background_surface`, :func:`ink_levels`).
    """
    problems = []
    if X.size == 0:
        return problems
    if len(X) > MAX_CHECKED_IMAGES:
        X = X[np.linspace(0, len(X) - 1, MAX_CHECKED_IMAGES).astype(int)]
    if contract.value_range is not None:
        low, high = contract.value_range
        span = high - low
        x_min, x_max = float(X.min()), float(X.max())
        if x_max > high + 0.5 * span or x_min < low - 0.5 * span:
            hint = " (divide 0-255 images by 255)" if x_max > 2 and high <= 1 else ""
            problems.append(
                f"values span [{x_min:g}, {x_max:g}] but the encoder expects "
                f"[{low:g}, {high:g}]: rescale them{hint}, or read the images "
                f"with ImageReader(value_range=({low:g}, {high:g}))."
            )
    images = None
    if contract.shape is not None:
        images = _as_images(X, contract.shape)
    if contract.polarity is not None and images is not None:
        inverted = float(reversed_polarity(images, contract.polarity).mean())
        if inverted > 0.5:
            other = [p for p in POLARITIES if p != contract.polarity][0]
            problems.append(
                f"{inverted:.0%} of the images look {other} (border pixels "
                f"{'brighter' if other == 'dark-on-light' else 'darker'} "
                f"than the rest) but the encoder expects {contract.polarity}: "
                "invert them (e.g. high + low - X) or read them with "
                f"polarity={contract.polarity!r}: load_image_folder(..., "
                f"polarity={contract.polarity!r}), ImageReader(polarity="
                f"{contract.polarity!r}) or ImageReader.from_encoder(encoder)."
            )
    if not problems and images is not None and contract.figure_on_ground:
        problems += _appearance_violations(images, contract)
    return problems


def _appearance_violations(images: np.ndarray, contract: InputContract) -> list[str]:
    """Background and contrast breaks of ``(n, H, W)`` images whose range and
    polarity meet the contract."""
    problems = []
    low, high = contract.value_range
    # Foreground up, background down, in units of the value range.
    ground = (images - low) / (high - low)
    if contract.polarity == "dark-on-light":
        ground = 1.0 - ground
    surface = background_surface(ground.astype(np.float32, copy=False))
    if contract.background == "uniform":
        offset = np.abs(surface).reshape(len(surface), -1).max(axis=1)
        share = float((offset > BACKGROUND_TOLERANCE).mean())
        if share > 0.5:
            end = low if contract.polarity == "light-on-dark" else high
            problems.append(
                f"{share:.0%} of the images have a background up to "
                f"{float(np.median(offset)):.2f} (median over images, in units "
                f"of the value range) away from {end:g}, where the encoder was "
                "trained on a uniform background at exactly "
                f"{end:g} (grey paper, shading and noise break it): subtract "
                "it, e.g. read the images with ImageReader.from_encoder(encoder) "
                "or ImageReader(background='uneven', contrast=99.5)."
            )
    if contract.contrast == "full":
        ink = ink_levels(ground - surface)
        share = float((ink < CONTRAST_TOLERANCE).mean())
        if share > 0.5:
            problems.append(
                f"{share:.0%} of the images have faint strokes (median ink "
                f"level {float(np.median(ink)):.2f} of the value range above "
                "their background) where the encoder was trained on strokes "
                "reaching the full value: stretch their contrast, e.g. read "
                "them with ImageReader.from_encoder(encoder) or "
                "ImageReader(contrast=99.5)."
            )
    return problems


def warn_on_violations(
    X: np.ndarray, contract: InputContract | None, what: str = "support set"
) -> None:
    """Emit one :class:`InputContractWarning` listing the clear violations.

    Parameters
    ----------
    X : ndarray
        Images, as ``(n, C, H, W)``, ``(n, H, W)`` or flat rows.
    contract : InputContract or None
        Nothing is checked when None.
    what : str, default="support set"
        What ``X`` is, for the message (e.g. ``"queries"`` in ``predict``).
    """
    if contract is None:
        return
    problems = contract_violations(np.asarray(X), contract)
    if problems:
        verb = "do" if what.endswith("s") and not what.endswith("set") else "does"
        warnings.warn(
            f"The {what} {verb} not look like the encoder's training images: "
            + " ".join(problems),
            InputContractWarning,
            stacklevel=3,
        )


def background_surface(
    images: np.ndarray, tiles: int = BACKGROUND_TILES, flat: bool = False
) -> np.ndarray:
    """A smooth estimate of each image's background.

    ``images`` are ``(n, H, W)`` grey images whose foreground is brighter
    than their background (invert ink on paper first). Each image is cut
    into ``tiles`` x ``tiles`` tiles and a tile's level is its median; the
    grid of levels is median-filtered over each tile's 3x3 neighbourhood, so
    a tile mostly covered by strokes takes its neighbours' level, then
    interpolated linearly between tile centres (grey paper, shading and
    vignetting alike). With ``flat``, one level per image: its median.

    Returns
    -------
    ndarray of float32, shape (n, H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_protonet.contracts import background_surface
    >>> ramp = np.tile(np.linspace(0.1, 0.4, 28, dtype=np.float32), (1, 28, 1))
    >>> ramp[:, 10:18, 12:16] = 1.0  # a stroke on shaded paper
    >>> surface = background_surface(ramp)
    >>> float(abs(surface - np.linspace(0.1, 0.4, 28)).max()) < 0.02
    True
    """
    n, height, width = images.shape
    if flat or min(height, width) < 2 * tiles:
        level = np.median(images.reshape(n, -1), axis=1).astype(np.float32)
        return np.broadcast_to(level[:, None, None], images.shape).copy()
    rows = np.array_split(np.arange(height), tiles)
    cols = np.array_split(np.arange(width), tiles)
    grid = np.empty((n, tiles, tiles), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            tile = images[:, r[0] : r[-1] + 1, c[0] : c[-1] + 1]
            grid[:, i, j] = np.median(tile.reshape(n, -1), axis=1)
    padded = np.pad(grid, ((0, 0), (1, 1), (1, 1)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    grid = np.median(windows.reshape(n, tiles, tiles, 9), axis=-1)
    along_rows = _linear_weights(height, [r.mean() for r in rows])
    along_cols = _linear_weights(width, [c.mean() for c in cols])
    surface = np.einsum("hi,nij,wj->nhw", along_rows, grid, along_cols)
    return surface.astype(np.float32, copy=False)


def ink_levels(foreground: np.ndarray) -> np.ndarray:
    """Each image's ink level: the ``INK_PERCENTILE``-th percentile of its
    pixels above the background, ``(n, H, W)`` -> ``(n,)``."""
    flat = foreground.reshape(len(foreground), -1)
    return np.percentile(flat, INK_PERCENTILE, axis=1).astype(np.float32)


def _linear_weights(length: int, centres: list[float]) -> np.ndarray:
    """``(length, len(centres))`` weights interpolating values given at
    ``centres`` linearly to every pixel, and extrapolating the outer slopes
    to the borders (light falling off towards an edge keeps falling)."""
    pixels = np.arange(length, dtype=np.float64)
    eye = np.eye(len(centres))
    weights = np.stack([np.interp(pixels, centres, e) for e in eye], axis=1)
    for end, (inner, outer) in (
        (pixels < centres[0], (1, 0)),
        (pixels > centres[-1], (-2, -1)),
    ):
        a, b = centres[inner], centres[outer]
        t = (pixels[end] - b) / (b - a)  # how far beyond the outer centre
        weights[end] = 0.0
        weights[end, outer] = 1.0 + t
        weights[end, inner] = -t
    return weights.astype(np.float32)


def reversed_polarity(images: np.ndarray, polarity: str) -> np.ndarray:
    """Per image (``(n, H, W)`` grey values): whether its polarity is reversed.

    The border (outermost rows and columns) is taken as background; an image
    is reversed when its background is brighter than its mean for
    ``"light-on-dark"`` (darker for ``"dark-on-light"``). Uniform images are
    never reversed.
    """
    border = np.concatenate(
        [images[:, 0], images[:, -1], images[:, 1:-1, 0], images[:, 1:-1, -1]], axis=1
    ).mean(axis=1)
    mean = images.reshape(len(images), -1).mean(axis=1)
    tolerance = 1e-6 * (np.abs(mean) + 1)
    if polarity == "light-on-dark":
        return border > mean + tolerance
    return border < mean - tolerance


def _as_images(X: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray | None:
    """``X`` as ``(n, H, W)`` grey images, or None when it is not images."""
    channels, height, width = shape
    if X[0].size != channels * height * width or min(height, width) < 3:
        return None
    images = X.reshape(len(X), channels, height, width)
    return images.mean(axis=1)
