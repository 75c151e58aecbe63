"""The offline demo data: scikit-learn's 8x8 digits, rotations as new classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.datasets import load_digits

from ._base import image_bunch, load_descr

__all__ = ["load_rotated_digits"]


def load_rotated_digits(
    digits: Sequence[int] = tuple(range(10)),
    rotations: Sequence[int] = (0, 90),
    *,
    return_X_y: bool = False,
):
    """Load the 8x8 digits with rotated copies as extra classes.

    Parameters
    ----------
    digits : sequence of int, default=0..9
        Which digits to keep.
    rotations : sequence of int, default=(0, 90)
        Counter-clockwise angles, multiples of 90; each makes a new class.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    Bunch with ``data`` (n, 64) float32 in [0, 1], ``images`` (n, 8, 8),
    ``target`` (class names such as ``"3/rot090"``), ``target_names`` and
    ``DESCR``; or ``(data, target)``.

    Examples
    --------
    >>> from sklearn_protonet.datasets import load_rotated_digits
    >>> X, y = load_rotated_digits(digits=[0, 1], return_X_y=True)
    >>> X.shape, sorted(set(y.tolist()))
    ((720, 64), ['0/rot000', '0/rot090', '1/rot000', '1/rot090'])
    """
    bad = [r for r in rotations if r % 90]
    if bad:
        raise ValueError(f"rotations must be multiples of 90 degrees, got {bad}.")
    raw = load_digits()
    keep = np.isin(raw.target, digits)
    images = (raw.images[keep] / 16.0).astype(np.float32)
    labels = raw.target[keep]
    all_images, all_targets = [], []
    for angle in rotations:
        all_images.append(np.rot90(images, k=angle // 90, axes=(1, 2)))
        all_targets.append(np.char.add(labels.astype(str), f"/rot{angle % 360:03d}"))
    images = np.ascontiguousarray(np.concatenate(all_images))
    target = np.concatenate(all_targets)
    return image_bunch(images, target, load_descr("rotated_digits"), return_X_y)
