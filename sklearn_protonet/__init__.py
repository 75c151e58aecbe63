"""Few-shot classification with Prototypical Networks as a scikit-learn estimator.

- :class:`PrototypicalClassifier` fits one prototype per class on a small
  support set and predicts the nearest one.
- :class:`EpisodicTrainer` meta-trains its encoder episode by episode with skorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

# The names above are imported on first use (PEP 562), not with the package:
# ``sklearn-protonet --help`` and ``import sklearn_protonet.runtime`` then
# answer without loading PyTorch and skorch, which take seconds.
_LAZY = {
    "ClassSplit": "episodes",
    "EpisodicTrainer": "trainer",
    "PrototypicalClassifier": "classifier",
    "paper_lr_schedule": "callbacks",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    try:  # ``sklearn_protonet.modules`` after a bare ``import sklearn_protonet``
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise  # a submodule that exists but fails to import
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
