"""The pair of encoders: samples and class metadata into one space."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._encoders import eval_mode
from .._inputs import as_tensor

__all__ = ["ZeroShotEncoders", "embed_metadata"]


class ZeroShotEncoders(nn.Module):
    """The pair of encoders of zero-shot Prototypical Networks.

    ``forward`` embeds samples (so the pair is an encoder like any other for
    :class:`~sklearn_protonet.EpisodicTrainer`'s ``transform``), and
    :meth:`embed_metadata` maps class metadata into the same space.

    Parameters
    ----------
    sample_encoder : torch.nn.Module
        E.g. :class:`~sklearn_protonet.modules.Conv4` or
        :class:`~sklearn_protonet.modules.MLP`.
    metadata_encoder : torch.nn.Module
        Maps metadata rows to embeddings of the sample encoder's width, e.g.
        ``MLP(out_features=...)`` or ``torch.nn.Linear``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_protonet.modules import MLP
    >>> from sklearn_protonet.zero_shot import ZeroShotEncoders
    >>> pair = ZeroShotEncoders(MLP(64, out_features=8), torch.nn.Linear(5, 8))
    >>> pair(torch.zeros(3, 64)).shape, pair.embed_metadata(torch.zeros(2, 5)).shape
    (torch.Size([3, 8]), torch.Size([2, 8]))
    """

    def __init__(self, sample_encoder: nn.Module, metadata_encoder: nn.Module):
        super().__init__()
        self.sample_encoder = sample_encoder
        self.metadata_encoder = metadata_encoder

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.sample_encoder(X)

    def embed_metadata(self, metadata: torch.Tensor) -> torch.Tensor:
        """Prototypes of the classes described by ``metadata`` rows."""
        return self.metadata_encoder(metadata)


def embed_metadata(module, values: np.ndarray, device) -> torch.Tensor:
    """Metadata rows embedded by a pair's metadata encoder, float64 on CPU."""
    with eval_mode(module), torch.inference_mode():
        out = module.embed_metadata(as_tensor(values).to(device))
    return out.double().cpu()
