"""Non-finite numbers, never a silent NaN: checks and overflow-free arithmetic.

The classifier's numbers can leave float64's range in three ways, each
handled here: an encoder that returns NaN or inf (a diverged meta-training,
inputs far outside its range) is an error naming the rows; inputs near
float64's limit (1e308) overflow the squared distances and the class sums,
which are then computed on rescaled values; a tiny ``temperature`` (1e-310)
overflows ``distance / temperature``, which is computed so that the nearest
prototype's logit is exactly 0 and the others are at worst ``-inf``, never
NaN. The meta-trainer's check of its loss lives here too.
"""

from __future__ import annotations

import torch

__all__ = [
    "check_finite_embeddings",
    "check_finite_loss",
    "check_finite_weights",
    "decision",
    "logits",
    "stable_prototypes",
]


def check_finite_embeddings(embeddings: torch.Tensor, start: int, what: str) -> None:
    """Raise if an encoder's output holds NaN or inf (rows from ``start``)."""
    bad = ~torch.isfinite(embeddings).all(1)
    if bool(bad.any()):
        rows = (torch.nonzero(bad).flatten() + start).tolist()
        raise ValueError(
            f"The encoder returned NaN or infinite embeddings for {len(rows)} "
            f"row(s) of {what} (rows {rows[:5]}{'...' if len(rows) > 5 else ''}). "
            "Its weights may be non-finite (a diverged meta-training: lower the "
            "learning rate) or the inputs far outside the range it was trained "
            "on: scale them as the training data were."
        )


def check_finite_loss(loss: torch.Tensor, epoch: int, batch: int, lr) -> None:
    """Stop a meta-training whose loss is no longer finite."""
    value = loss.detach()
    if not bool(torch.isfinite(value)):
        raise FloatingPointError(
            f"Meta-training diverged: the loss is {value.item()} at epoch {epoch}, "
            f"episode {batch}. The likely cause is a learning rate too high for "
            f"the encoder (lr={lr}): lower it (the paper uses 1e-3), or check "
            "the training data for extreme or non-finite values."
        )


def check_finite_weights(module: torch.nn.Module, epoch: int, lr) -> None:
    """Stop a meta-training that ends with non-finite weights (a last step
    whose loss was finite but whose update was not)."""
    tensors = [*module.named_parameters(), *module.named_buffers()]
    for name, tensor in tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise FloatingPointError(
                f"Meta-training diverged: the encoder's {name} holds NaN or "
                f"infinite values after epoch {epoch}. The likely cause is a "
                f"learning rate too high for the encoder (lr={lr}): lower it "
                "(the paper uses 1e-3)."
            )


def stable_prototypes(function, embeddings: torch.Tensor, *args, **kwargs):
    """``function(embeddings, ...)`` (class means), rescaled when the sums
    overflow: a mean is never larger than its largest value."""
    prototypes = function(embeddings, *args, **kwargs)
    if bool(torch.isfinite(prototypes).all()):
        return prototypes
    scale = embeddings.abs().max()
    if not bool(torch.isfinite(scale)) or scale == 0:
        return prototypes
    labels, n_classes, *rest = args
    weights = rest[0] if rest else None
    if weights is not None:  # a weighted mean does not change with the weights' scale
        weights = weights / weights.max()
    return function(embeddings / scale, labels, n_classes, weights, **kwargs) * scale


def _times(values: torch.Tensor, factor: float) -> torch.Tensor:
    """``values * factor`` where 0 stays 0 even when ``factor`` is inf."""
    if factor == 1.0:
        return values
    return torch.where(values == 0, 0.0, values * factor)


def logits(distances: torch.Tensor, factor: float, temperature: float) -> torch.Tensor:
    """``-distance / temperature`` shifted so each row's largest is 0.

    Softmax and log-softmax are unchanged by the shift; without it, a tiny
    temperature turns every entry of a row into ``-inf`` and the softmax
    into NaN.
    """
    shifted = distances - distances.min(1, keepdim=True).values
    return -_times(shifted, factor) / temperature


def decision(distances: torch.Tensor, factor: float, temperature: float):
    """``-distance / temperature`` (``-inf`` at worst, never NaN); with two
    classes, the score of the second minus that of the first."""
    if distances.shape[1] == 2:
        return _times(distances[:, 0] - distances[:, 1], factor) / temperature
    return -_times(distances, factor) / temperature
