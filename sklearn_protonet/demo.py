"""The digits demo, defined once: base and novel classes, and a small meta-trainer.

The command line (``python -m sklearn_protonet``), the gallery and the tests
all use this recipe: scikit-learn's 8x8 digits 0-4 are the *base* classes a
Conv4 is meta-trained on and digits 5-9 the *novel* classes it has never
seen, each also turned by 90 degrees as a class of its own
(:func:`~sklearn_protonet.datasets.load_rotated_digits`). It needs no
download and trains in seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import Bunch
from torch import nn

from .datasets import load_rotated_digits
from .modules import Conv4, RandomShift
from .trainer import EpisodicTrainer

__all__ = ["DIGITS_SHAPE", "digits_trainer", "load_digits_split"]

#: ``(channels, height, width)`` of one digit.
DIGITS_SHAPE = (1, 8, 8)


def load_digits_split(rotations=(0, 90)) -> Bunch:
    """The rotated digits, split into base (0-4) and novel (5-9) classes.

    Parameters
    ----------
    rotations : sequence of int, default=(0, 90)
        Counter-clockwise angles; each makes a class of its own.

    Returns
    -------
    Bunch
        ``X_base``, ``y_base`` (to meta-train on) and ``X_novel``,
        ``y_novel`` (to learn from a few examples); rows of 64 pixels in
        [0, 1], labels such as ``"3/rot090"``.

    Examples
    --------
    >>> from sklearn_protonet.demo import load_digits_split
    >>> split = load_digits_split()
    >>> len(set(split.y_base)), len(set(split.y_novel))
    (10, 10)
    """
    X, y = load_rotated_digits(rotations=rotations, return_X_y=True)
    base = np.array([int(label[0]) < 5 for label in y])
    return Bunch(X_base=X[base], y_base=y[base], X_novel=X[~base], y_novel=y[~base])


def digits_trainer(random_state: int | None = 0, **params) -> EpisodicTrainer:
    """The demo's meta-trainer: a two-block Conv4 for 8x8 digits.

    The encoder is ``nn.Sequential(RandomShift(max_shift=1), Conv4(n_blocks=2))``
    (two blocks suit 8x8 images; the shift augments the training images by
    up to a pixel), trained on 10-way episodes of 5 support and 10 query
    images per class, without validation split.

    Parameters
    ----------
    random_state : int or None, default=0
        Seeds the encoder's initial weights (the module is built here, before
        the trainer's own seeding applies) and the trainer's episodes.
    **params
        Any :class:`~sklearn_protonet.EpisodicTrainer` parameter, overriding
        the demo's (e.g. ``max_epochs``, ``episodes_per_epoch``, ``verbose``).

    Returns
    -------
    EpisodicTrainer
        Unfitted.
    """
    with torch.random.fork_rng(devices=[]):
        if random_state is not None:
            torch.manual_seed(random_state)
        module = nn.Sequential(
            RandomShift(DIGITS_SHAPE, max_shift=1), Conv4(DIGITS_SHAPE, n_blocks=2)
        )
    defaults = dict(n_way=10, n_shot=5, n_query=10, train_split=None)
    return EpisodicTrainer(module, random_state=random_state, **{**defaults, **params})
