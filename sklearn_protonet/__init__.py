"""Few-shot classification with Prototypical Networks as a scikit-learn estimator.

- :class:`PrototypicalClassifier` fits one prototype per class on a small
  support set and predicts the nearest one.
- :class:`EpisodicTrainer` meta-trains its encoder episode by episode with skorch.
"""

from .callbacks import paper_lr_schedule
from .classifier import PrototypicalClassifier
from .episodes import ClassSplit
from .trainer import EpisodicTrainer

__version__ = "0.1.0"

__all__ = [
    "ClassSplit",
    "EpisodicTrainer",
    "PrototypicalClassifier",
    "paper_lr_schedule",
    "__version__",
]
