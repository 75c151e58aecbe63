"""Zero-shot prototypes: a class's prototype from its metadata, not its examples.

Prototypical Networks extend to zero-shot learning (Snell et al., 2017,
section 2.6): each class comes with a metadata vector (attributes, a
description's embedding), a second encoder maps it into the embedding space,
and that point is the class's prototype. Both encoders are meta-trained
together on episodes of classes with their metadata and query examples
(:class:`ZeroShotTrainer`); :class:`ZeroShotPrototypicalClassifier` then
classifies samples of classes never seen with an example, and can blend the
metadata with a few examples when there are some.

One module per job: ``_metadata`` (validation), ``_pair`` (the two
encoders), ``_episodes`` (data and episodes), ``_callbacks``, ``_trainer``
and ``_classifier``.
"""

from ._classifier import ZeroShotPrototypicalClassifier
from ._metadata import check_metadata
from ._pair import ZeroShotEncoders
from ._trainer import ZeroShotTrainer

__all__ = [
    "ZeroShotEncoders",
    "ZeroShotPrototypicalClassifier",
    "ZeroShotTrainer",
    "check_metadata",
]
