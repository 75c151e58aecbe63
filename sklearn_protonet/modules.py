"""Encoder modules: the paper's ``Conv4`` for images and an ``MLP`` for tables,
and the image augmentation layers to put before an encoder in meta-training.

All take the flat 2-D arrays that scikit-learn passes around; ``Conv4`` and
the ``Random*`` layers reshape them to images through ``input_shape``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from . import _rng

__all__ = [
    "MLP",
    "Conv4",
    "RandomAffine",
    "RandomBlur",
    "RandomNoise",
    "RandomPaper",
    "RandomResolution",
    "RandomShift",
    "RandomStrokeWidth",
]


def _conv_block(in_channels: int, out_channels: int, groups: int = 1) -> nn.Sequential:
    # ReLU and max-pooling commute (both are monotone), so pooling first gives
    # the paper's block exactly, outputs and gradients, with the ReLU and its
    # backward pass on a quarter of the values: ~1.2x faster training on CPU.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, groups=groups),
        nn.BatchNorm2d(out_channels),
        nn.MaxPool2d(2),
        nn.ReLU(),
    )


class Conv4(nn.Module):
    """The embedding network of Snell et al. (2017).

    ``n_blocks`` blocks of [3x3 convolution, BatchNorm, ReLU, 2x2 max-pool],
    flattened. With the defaults a 1x28x28 image becomes a 64-d embedding.
    Inputs may be flat rows, ``(n, C, H, W)`` images, or ``(n, H, W)`` images
    when there is one channel.
    (The max-pool runs before the ReLU: the two commute, so the function is
    the same and the ReLU touches a quarter of the values.)

    Parameters
    ----------
    input_shape : tuple of int, default=(1, 28, 28)
        ``(channels, height, width)`` of one image. Rows of a 2-D input are
        reshaped to it, so flattened images can come straight from a
        DataFrame or ``load_omniglot().data``.
    hidden_channels : int, default=64
        Filters in every convolution.
    n_blocks : int, default=4
        Number of convolutional blocks (4 in the paper). Each halves the
        image, so small images need fewer (3 for 8x8 digits).
    channels_last : bool, default=True
        Keep weights and activations in the channels-last memory layout,
        which oneDNN's CPU convolutions run faster (``benchmarks/speed.py``
        measures it). The results are the same.
    groups : int, default=1
        Independent networks side by side: every block after the first
        convolves ``hidden_channels // groups`` channels per group, so group
        ``g`` only ever sees its own channels of the first block, and the
        embedding is the groups' embeddings one after the other.
        :meth:`side_by_side` builds one from separately trained encoders.

    Examples
    --------
    >>> import torch
    >>> from sklearn_protonet.modules import Conv4
    >>> Conv4()(torch.zeros(2, 784)).shape
    torch.Size([2, 64])
    """

    #: Also the value of modules pickled before ``groups`` existed.
    groups: int = 1

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        hidden_channels: int = 64,
        n_blocks: int = 4,
        channels_last: bool = True,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if groups < 1 or hidden_channels % groups:
            raise ValueError(
                f"groups must be a positive divisor of hidden_channels="
                f"{hidden_channels}, got {groups!r}."
            )
        if len(input_shape) != 3:
            raise ValueError(
                f"input_shape must be (channels, height, width), got {input_shape!r}."
            )
        self.input_shape = tuple(int(s) for s in input_shape)
        self.hidden_channels, self.n_blocks = hidden_channels, n_blocks
        self.channels_last, self.groups = channels_last, groups
        channels, height, width = self.input_shape
        if min(height, width) < 2**n_blocks:
            raise ValueError(
                f"input_shape {self.input_shape} is too small for n_blocks="
                f"{n_blocks}: each block halves the image, so height and width "
                f"must be at least {2**n_blocks}. Use fewer blocks."
            )
        blocks = [_conv_block(channels, hidden_channels)]
        blocks += [
            _conv_block(hidden_channels, hidden_channels, groups)
            for _ in range(n_blocks - 1)
        ]
        self.encoder = nn.Sequential(*blocks)
        self.n_features_in = channels * height * width
        self.memory_format = (
            torch.channels_last if channels_last else torch.contiguous_format
        )
        self.to(memory_format=self.memory_format)

    def as_images(self, X: torch.Tensor) -> torch.Tensor:
        """``X`` checked and reshaped to ``(n, *input_shape)``, in the
        module's memory layout."""
        if X.dim() == 2:
            if X.shape[1] != self.n_features_in:
                raise ValueError(
                    f"Conv4 expects rows of {self.n_features_in} values "
                    f"(input_shape={self.input_shape}), got {X.shape[1]}. "
                    "Set input_shape to the size of your images."
                )
            X = X.reshape(X.shape[0], *self.input_shape)
        elif X.dim() == 3 and (1, *X.shape[1:]) == self.input_shape:
            X = X[:, None]  # (n, H, W) single-channel images
        elif tuple(X.shape[1:]) != self.input_shape:
            raise ValueError(
                f"Conv4 expects images of shape {self.input_shape}, got "
                f"{tuple(X.shape[1:])}. Set input_shape to the size of your images."
            )
        return X.contiguous(memory_format=self.memory_format)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Embed a batch of images.

        Parameters
        ----------
        X : Tensor of shape (n, C * H * W), (n, C, H, W) or (n, H, W)
            Flattened rows or images of ``input_shape`` (``(n, H, W)`` when
            there is one channel).

        Returns
        -------
        Tensor of shape (n, embedding_dim)
            ``hidden_channels`` times the size left after the poolings
            (64 for 28x28 images and the defaults).
        """
        return self.encoder(self.as_images(X)).flatten(start_dim=1)

    @classmethod
    def side_by_side(
        cls, members: Sequence[Conv4], weights: Sequence[float] | None = None
    ) -> Conv4:
        """One grouped ``Conv4`` that computes several ``Conv4`` at once.

        Its embedding is each member's embedding times its weight, the
        members in order (squared distances between embeddings are then the
        weighted sum of the members' squared distances): an ensemble of
        separately trained encoders that is one module, one file and one
        input contract.

        Parameters
        ----------
        members : sequence of Conv4
            Ungrouped, with the same ``input_shape``, ``hidden_channels`` and
            ``n_blocks``.
        weights : sequence of float, optional
            A positive factor per member (default 1.0 each).

        Returns
        -------
        Conv4
            With ``hidden_channels`` and ``groups`` multiplied by the number
            of members, in the first member's mode (evaluation or training).
        """
        members = list(members)
        weights = [1.0] * len(members) if weights is None else list(weights)
        if not members or any(not isinstance(m, Conv4) for m in members):
            raise TypeError("members must be one or more Conv4 modules.")
        first = members[0]
        layout = (first.input_shape, first.hidden_channels, first.n_blocks, 1)
        for m in members:
            if (m.input_shape, m.hidden_channels, m.n_blocks, m.groups) != layout:
                raise ValueError(
                    "members must be ungrouped Conv4 with the same input_shape, "
                    "hidden_channels and n_blocks."
                )
        if len(weights) != len(members) or not all(
            math.isfinite(w) and w > 0 for w in weights
        ):
            raise ValueError(
                f"weights must be one positive number per member ({len(members)}), "
                f"got {weights!r}."
            )
        joined = cls(
            first.input_shape,
            first.hidden_channels * len(members),
            first.n_blocks,
            first.channels_last,
            groups=len(members),
        )
        last = len(joined.encoder) - 1
        states = [m.state_dict() for m in members]
        with torch.no_grad():
            for name, tensor in joined.state_dict().items():
                parts = [state[name] for state in states]
                if name.startswith(f"encoder.{last}.1.") and name.endswith(
                    ("weight", "bias")
                ):
                    # BatchNorm's affine output times w: max-pool and ReLU
                    # commute with a positive factor, so the embedding is w times.
                    parts = [p * w for p, w in zip(parts, weights, strict=True)]
                if tensor.dim() == 0:  # num_batches_tracked
                    tensor.copy_(parts[0])
                else:
                    tensor.copy_(torch.cat(parts))
        return joined.train(first.training)


class Dropout(nn.Dropout):
    """``nn.Dropout`` drawing from the fit's own generator while a trainer
    trains (:mod:`sklearn_protonet._rng`), torch's global one otherwise."""

    draws_from_owned_generator = True

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        generator = _rng.generator(X.device) if self.training and self.p > 0 else None
        if generator is None:
            return super().forward(X)
        if self.p >= 1:
            return X * 0.0
        keep = torch.empty_like(X).bernoulli_(1 - self.p, generator=generator)
        return X * keep / (1 - self.p)


class MLP(nn.Module):
    """A multi-layer perceptron encoder for tabular data.

    Parameters
    ----------
    in_features : int or None, default=None
        Number of input columns. ``None`` infers it from the first batch
        (a lazy first layer), so one module fits any table.
    hidden_sizes : sequence of int, default=(128,)
        Width of each hidden layer; every hidden layer is followed by ReLU.
    out_features : int, default=64
        Size of the embedding.
    dropout : float, default=0.0
        Dropout probability after each hidden layer (active only in
        training mode, so embeddings for prediction are deterministic).

    Examples
    --------
    >>> import torch
    >>> from sklearn_protonet.modules import MLP
    >>> MLP(out_features=8)(torch.zeros(3, 5)).shape
    torch.Size([3, 8])
    """

    def __init__(
        self,
        in_features: int | None = None,
        hidden_sizes: Sequence[int] = (128,),
        out_features: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden_sizes = tuple(int(size) for size in hidden_sizes)
        self.out_features, self.dropout = out_features, dropout
        layers: list[nn.Module] = []
        width = in_features
        for size in [*hidden_sizes, out_features]:
            layers.append(
                nn.LazyLinear(size) if width is None else nn.Linear(width, size)
            )
            layers += [nn.ReLU(), Dropout(dropout)]
            width = size
        # No activation on the embedding itself: distances need signed features.
        self.layers = nn.Sequential(*layers[:-2])

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Embed a batch of rows (other dimensions are flattened first).

        Parameters
        ----------
        X : Tensor of shape (n, in_features)

        Returns
        -------
        Tensor of shape (n, out_features)
        """
        return self.layers(X.flatten(start_dim=1))


class _ImageAugmentation(nn.Module):
    """Base of the augmentation layers: random changes to each image in
    training mode only (like dropout), so meta-training sees altered copies
    while embeddings for prediction stay deterministic.

    Subclasses implement ``_augment(images, generator)`` on ``(n, C, H, W)``
    images, drawing only from ``generator``; ``p`` is the probability that
    an image is changed (the layers that change every image leave it at 1),
    and ``_changes_images()`` whether the settings change anything at all.
    """

    def __init__(self, input_shape: Sequence[int], p: float = 1.0) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}'s p must be in [0, 1], got {p}.")
        self.p = p

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Change each image at random in training mode; return X unchanged
        in evaluation mode.

        Parameters
        ----------
        X : Tensor of shape (n, C * H * W) or (n, C, H, W)

        Returns
        -------
        Tensor of the shape of X
        """
        if not self.training or not self._changes_images():
            return X
        flat = X.dim() == 2
        images = X.reshape(len(X), *self.input_shape) if flat else X
        generator = _rng.generator(X.device)  # the trainer's, else global
        out = self._augment(images, generator)
        return out.reshape(X.shape) if flat else out

    def _changes_images(self) -> bool:
        return self.p > 0

    def _augment(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        raise NotImplementedError


class RandomShift(_ImageAugmentation):
    """Data augmentation: shift each image by a random number of pixels.

    Active only in training mode (like dropout), so meta-training sees
    shifted copies while embeddings for prediction stay deterministic. Put it
    first in an ``nn.Sequential`` before the encoder.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; 2-D inputs are reshaped.
    max_shift : int, default=1
        Largest shift in pixels, in each direction; vacated pixels are zero.
    """

    def __init__(self, input_shape: Sequence[int], max_shift: int = 1) -> None:
        super().__init__(input_shape)
        self.max_shift = max_shift

    def _changes_images(self) -> bool:
        return self.max_shift != 0

    def _augment(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        n, _, height, width = images.shape
        s = self.max_shift
        padded = nn.functional.pad(images, (s, s, s, s))
        dy, dx = torch.randint(
            0, 2 * s + 1, (2, n, 1), device=images.device, generator=generator
        )
        rows = (torch.arange(height, device=images.device) + dy)[:, :, None]
        cols = (torch.arange(width, device=images.device) + dx)[:, None, :]
        batch = torch.arange(n, device=images.device)[:, None, None]
        # Advanced indexing puts the indexed dims first: (n, H, W, C).
        shifted = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
        return shifted.contiguous()


class RandomAffine(_ImageAugmentation):
    """Data augmentation: rotate, scale and shift each image at random.

    Like :class:`RandomShift`, active only in training mode; evaluation
    returns the input unchanged. Each image gets its own rotation in
    ``[-max_rotation, max_rotation]`` degrees, scale in
    ``[1 - max_scale, 1 + max_scale]`` and shift in
    ``[-max_shift, max_shift]`` pixels, applied with bilinear sampling
    (:func:`torch.nn.functional.grid_sample`); pixels from outside the image
    are zero.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; 2-D inputs are reshaped.
    max_shift : float, default=2
        Largest shift in pixels, in each direction.
    max_rotation : float, default=15
        Largest rotation in degrees, either way.
    max_scale : float, default=0.15
        Largest relative change of size, either way.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        max_shift: float = 2,
        max_rotation: float = 15,
        max_scale: float = 0.15,
    ) -> None:
        super().__init__(input_shape)
        self.max_shift = max_shift
        self.max_rotation = max_rotation
        self.max_scale = max_scale

    def _augment(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        n, _, height, width = images.shape
        # Uniform in [-1, 1): angle, scale and the two shifts of each image.
        u = torch.rand(4, n, device=images.device, generator=generator) * 2 - 1
        angle = torch.deg2rad(u[0] * self.max_rotation)
        scale = 1 + u[1] * self.max_scale
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        # affine_grid works in [-1, 1] coordinates: a pixel is 2 / size.
        dx, dy = u[2] * self.max_shift * 2 / width, u[3] * self.max_shift * 2 / height
        theta = torch.stack(
            [torch.stack([cos, -sin, dx], 1), torch.stack([sin, cos, dy], 1)], 1
        ).to(images.dtype)
        grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
        return nn.functional.grid_sample(images, grid, align_corners=False)


class RandomResolution(_ImageAugmentation):
    """Data augmentation: lower the resolution of some images at random.

    In training mode each image is, with probability ``p``, shrunk to a
    random size between ``min_size`` and ``max_size`` pixels (area averaging)
    and enlarged back (bilinear), then rescaled so that its brightest pixel
    keeps its value. Meta-training with it teaches an encoder to recognise
    blurred, low-resolution images (scans, thumbnails, small source images
    upsampled), which makes it transfer to other domains than its training
    set's; see ``omniglot-conv4-robust`` in
    :mod:`sklearn_protonet.pretrained`. Evaluation mode returns the input
    unchanged.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; 2-D inputs are reshaped.
    min_size, max_size : int, default=7, 14
        Range of the side, in pixels, of the shrunk image (both included,
        drawn uniformly for each image); at most the image's height and
        width.
    p : float, default=0.5
        Probability that an image is degraded.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        min_size: int = 7,
        max_size: int = 14,
        p: float = 0.5,
    ) -> None:
        super().__init__(input_shape, p)
        if not 1 <= min_size <= max_size <= min(self.input_shape[1:]):
            raise ValueError(
                "RandomResolution needs 1 <= min_size <= max_size <= the image's "
                f"height and width {self.input_shape[1:]}, got min_size={min_size}, "
                f"max_size={max_size}."
            )
        self.min_size, self.max_size = int(min_size), int(max_size)

    def _augment(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        n, device = len(images), images.device
        chosen = torch.rand(n, device=device, generator=generator) < self.p
        sides = torch.randint(
            self.min_size, self.max_size + 1, (n,), device=device, generator=generator
        )
        out = images.clone()
        for side in sides[chosen].unique().tolist():
            rows = chosen & (sides == side)
            small = nn.functional.interpolate(
                images[rows], size=(side, side), mode="area"
            )
            blurred = nn.functional.interpolate(
                small, size=images.shape[2:], mode="bilinear", align_corners=False
            )
            out[rows] = _with_peak_of(blurred, images[rows])
        return out


class RandomStrokeWidth(_ImageAugmentation):
    """Data augmentation: thicken the light strokes of some images at random.

    In training mode each image is, with probability ``p``, replaced by its
    3x3 grey-level dilation (a maximum filter): light strokes on a dark
    background grow by a pixel on each side, as pens, scans and upsampled
    small images draw them thicker than Omniglot's. Evaluation mode returns
    the input unchanged. (For dark strokes on a light background, invert the
    images first, as the shipped encoders expect anyway.)

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; 2-D inputs are reshaped.
    p : float, default=0.3
        Probability that an image is thickened.
    """

    def __init__(self, input_shape: Sequence[int], p: float = 0.3) -> None:
        super().__init__(input_shape, p)

    def _augment(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        thick = nn.functional.max_pool2d(images, 3, stride=1, padding=1)
        return torch.where(_chosen(images, self.p, generator), thick, images)


def _with_peak_of(blurred: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``blurred`` rescaled to each image's brightest value: blurring dims
    thin strokes."""
    peak = images.amax((1, 2, 3), keepdim=True)
    return blurred * (peak / blurred.amax((1, 2, 3), keepdim=True).clamp_min(1e-12))


def _chosen(
    images: torch.Tensor, p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """A ``(n, 1, 1, 1)`` mask: which images a layer changes."""
    draws = torch.rand(len(images), device=images.device, generator=generator)
    return (draws < p)[:, None, None, None]


def _uniform(
    images: torch.Tensor,
    low: float,
    high: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One draw in ``[low, high)`` per image, shaped ``(n, 1, 1, 1)``."""
    u = torch.rand(len(images), device=images.device, generator=generator)
    return (low + (high - low) * u).to(images.dtype)[:, None, None, None]


class RandomBlur(_ImageAugmentation):
    """Data augmentation: blur some images with a Gaussian of random width.

    In training mode each image is, with probability ``p``, convolved with a
    Gaussian whose standard deviation is drawn uniformly in the range
    ``sigma`` (out-of-focus photographs, soft pens), then rescaled so that
    its brightest pixel keeps its value. Evaluation mode returns the input
    unchanged.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; 2-D inputs are reshaped.
    sigma : (float, float), default=(0.5, 1.5)
        Smallest and largest standard deviation of the Gaussian, in pixels.
    p : float, default=0.3
        Probability that an image is blurred.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        sigma: tuple[float, float] = (0.5, 1.5),
        p: float = 0.3,
    ) -> None:
        super().__init__(input_shape, p)
        low, high = sigma
        if not 0 < low <= high:
            raise ValueError(
                f"RandomBlur's sigma must be (low, high) with 0 < low <= high, "
                f"got {sigma}."
            )
        self.sigma = (float(low), float(high))

    def _augment(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        n, channels, height, width = images.shape
        sigma = _uniform(images, *self.sigma, generator).reshape(n)
        radius = int(3 * self.sigma[1] + 0.5)
        offsets = torch.arange(-radius, radius + 1, device=images.device)
        kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)
        kernel = (kernel / kernel.sum(1, keepdim=True)).to(images.dtype)
        # Separable: each image its own 1-D kernel, rows then columns, as a
        # grouped convolution over the n * C image planes.
        planes = images.reshape(1, n * channels, height, width)
        weights = kernel.repeat_interleave(channels, 0)[:, None]
        planes = nn.functional.conv2d(
            planes, weights[:, :, None, :], padding=(0, radius), groups=n * channels
        )
        planes = nn.functional.conv2d(
            planes, weights[:, :, :, None], padding=(radius, 0), groups=n * channels
        )
        blurred = _with_peak_of(planes.reshape(images.shape), images)
        return torch.where(_chosen(images, self.p, generator), blurred, images)


class RandomPaper(_ImageAugmentation):
    """Data augmentation: faint ink on grey, unevenly lit paper.

    In training mode each image is, with probability ``p``, given a
    background that is not black and ink that is not at full brightness: a
    grey level drawn in ``[0, max_background]`` at the centre that changes
    linearly in a random direction, by up to ``max_shading`` per image
    width along it (the background stays in ``[0, 1]``), and ink
    whose brightness is drawn in ``[min_contrast, 1]``, never below the
    background. Images are light strokes on a dark background, as the
    shipped encoders expect. Evaluation mode returns the input unchanged.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; 2-D inputs are reshaped.
    max_background : float, default=0.3
        Highest grey level of the background.
    max_shading : float, default=0.2
        Largest change of background level per image width, in the
        direction of the fall-off.
    min_contrast : float, default=0.4
        Lowest brightness of the ink.
    p : float, default=0.3
        Probability that an image is changed.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        max_background: float = 0.3,
        max_shading: float = 0.2,
        min_contrast: float = 0.4,
        p: float = 0.3,
    ) -> None:
        super().__init__(input_shape, p)
        for name, value in [
            ("max_background", max_background),
            ("max_shading", max_shading),
            ("min_contrast", min_contrast),
        ]:
            if not 0 <= value <= 1:
                raise ValueError(
                    f"RandomPaper's {name} must be in [0, 1], got {value}."
                )
        self.max_background = float(max_background)
        self.max_shading = float(max_shading)
        self.min_contrast = float(min_contrast)

    def _augment(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        n, _, height, width = images.shape
        level = _uniform(images, 0.0, self.max_background, generator)
        shading = _uniform(images, 0.0, self.max_shading, generator)
        angle = _uniform(images, 0.0, 2 * torch.pi, generator)
        ys = torch.linspace(-0.5, 0.5, height, device=images.device, dtype=images.dtype)
        xs = torch.linspace(-0.5, 0.5, width, device=images.device, dtype=images.dtype)
        ramp = (
            xs[None, None, None, :] * angle.cos()
            + ys[None, None, :, None] * angle.sin()
        )
        background = (level + shading * ramp).clamp(0, 1)
        ink = torch.maximum(
            _uniform(images, self.min_contrast, 1.0, generator), background
        )
        paper = background + (ink - background) * images.clamp(0, 1)
        return torch.where(_chosen(images, self.p, generator), paper, images)


class RandomNoise(_ImageAugmentation):
    """Data augmentation: sensor noise on some images.

    In training mode each image is, with probability ``p``, given additive
    Gaussian noise whose standard deviation is drawn uniformly in
    ``[0, max_std]``, the result clipped to ``[0, 1]``. Evaluation mode
    returns the input unchanged.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; 2-D inputs are reshaped.
    max_std : float, default=0.1
        Largest standard deviation of the noise.
    p : float, default=0.3
        Probability that an image is changed.
    """

    def __init__(
        self, input_shape: Sequence[int], max_std: float = 0.1, p: float = 0.3
    ) -> None:
        super().__init__(input_shape, p)
        if not max_std >= 0:
            raise ValueError(f"RandomNoise's max_std must be >= 0, got {max_std}.")
        self.max_std = float(max_std)

    def _changes_images(self) -> bool:
        return self.p > 0 and self.max_std > 0

    def _augment(
        self, images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        std = _uniform(images, 0.0, self.max_std, generator)
        noise = torch.randn(
            images.shape, device=images.device, dtype=images.dtype, generator=generator
        )
        noisy = (images + std * noise).clamp(0, 1)
        return torch.where(_chosen(images, self.p, generator), noisy, images)
