"""The Omniglot sample shipped inside the package: 100 unseen characters."""

from __future__ import annotations

from importlib import resources

import numpy as np

from ._base import image_bunch, load_descr

__all__ = ["load_omniglot_sample"]

_N_IMAGES = 2000
_SIZE = 28


def load_omniglot_sample(*, return_X_y: bool = False):
    """Load 100 Omniglot test characters x 20 drawings, shipped with the package.

    =================  ==========================================
    Classes            100 (characters of the Vinyals ``test``
                       split, upright)
    Samples per class  20
    Samples total      2,000
    Dimensionality     784 (28x28 images)
    Features           float32 in [0, 1], stroke = 1.0
    =================  ==========================================

    The pretrained encoders were meta-trained on other characters and
    alphabets, so this sample is enough to try them, offline, in seconds.
    The whole data set comes from :func:`load_omniglot`.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        data : ndarray of shape (2000, 784), dtype float32
            The flattened images, a view of ``images``.
        images : ndarray of shape (2000, 28, 28), dtype float32
            The images, strokes 1.0 on a background of 0.0.
        target : ndarray of shape (2000,), dtype str
            The character of each image, ``Alphabet/characterNN``.
        target_names : ndarray of shape (100,), dtype str
            The sorted unique character names.
        DESCR : str
            A description of the sample, its source and its licence.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` and ``target`` as described above.

    See Also
    --------
    load_omniglot : the full data set, from the data home.

    Examples
    --------
    >>> from sklearn_protonet.datasets import load_omniglot_sample
    >>> sample = load_omniglot_sample()
    >>> sample.images.shape, len(sample.target_names)
    ((2000, 28, 28), 100)
    """
    package = resources.files(__package__)
    with resources.as_file(package / "data" / "omniglot_sample.npz") as path:
        with np.load(path, allow_pickle=False) as npz:
            pixels, target = npz["images"], npz["target"]
    if pixels.shape != (_N_IMAGES, _SIZE, _SIZE) or target.shape != (_N_IMAGES,):
        raise OSError(
            f"The shipped Omniglot sample is damaged (images {pixels.shape}, "
            f"target {target.shape}); reinstall sklearn-protonet."
        )
    images = pixels.astype(np.float32) / 255
    return image_bunch(images, target, load_descr("omniglot_sample"), return_X_y)
