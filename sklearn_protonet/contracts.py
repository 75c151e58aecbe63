"""The input an encoder expects (its input contract), and checking data against it.

A pretrained encoder only works on images like those it was trained on:
Omniglot's encoders expect 28x28 single-channel images with light strokes
(1.0) on a dark background (0.0). The contract records these facts with the
weights, so that :class:`~sklearn_protonet.preprocessing.ImageReader` can
produce such images and :class:`~sklearn_protonet.PrototypicalClassifier` can
warn when a support set clearly breaks them.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.frozen import FrozenEstimator

from ._encoders import encoder_module

__all__ = ["InputContract", "InputContractWarning", "get_input_contract"]

POLARITIES = ("light-on-dark", "dark-on-light")


class InputContractWarning(UserWarning):
    """The data break the encoder's input contract (range, polarity...)."""


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

    Examples
    --------
    >>> from sklearn_protonet.contracts import InputContract
    >>> InputContract(shape=(1, 28, 28), value_range=(0.0, 1.0)).to_dict()
    {'shape': [1, 28, 28], 'value_range': [0.0, 1.0], 'polarity': None}
    """

    shape: tuple[int, int, int] | None = None
    value_range: tuple[float, float] | None = None
    polarity: str | None = None

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

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (for weight files' metadata)."""
        out = asdict(self)
        for key in ("shape", "value_range"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict) -> InputContract:
        """The inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = set(data) - {"shape", "value_range", "polarity"}
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


def contract_violations(X: np.ndarray, contract: InputContract) -> list[str]:
    """What clearly breaks the contract in ``X``, each with its fix.

    Only clear breaks are reported: values far outside the range (e.g. 0-255
    for a 0-1 encoder), and a polarity opposite to the contract's for most
    images (judged from the border pixels, which are background in centred
    images).
    """
    problems = []
    if X.size == 0:
        return problems
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
    if contract.polarity is not None and contract.shape is not None:
        images = _as_images(X, contract.shape)
        if images is not None:
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
    return problems


def warn_on_violations(X: np.ndarray, contract: InputContract | None) -> None:
    """Emit one :class:`InputContractWarning` listing the clear violations."""
    if contract is None:
        return
    problems = contract_violations(X, contract)
    if problems:
        warnings.warn(
            "The support set does not look like the encoder's training images: "
            + " ".join(problems),
            InputContractWarning,
            stacklevel=3,
        )


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
