"""Support-set fine-tuning: adapting a private copy of the encoder to a new domain.

An encoder meta-trained on one domain (Omniglot's strokes) loses much of its
accuracy on another (handwritten digits). The support set itself can close
part of the gap (Hu et al., CVPR 2022, "Pushing the limits of simple
pipelines for few-shot learning"):

1. the BatchNorm statistics are re-estimated on the support set and shifted
   copies of it, which alone removes much of the shift in feature scale
   between the domains (AdaBN; Li et al., 2016);
2. the last layers take a few Adam steps on pseudo-episodes: two randomly
   augmented views of the support set (shifted, or also rotated and scaled),
   the first giving the prototypes, the second the queries. One example per
   class is enough. When the encoder is a sequence of layers (``Conv4``,
   ``nn.Sequential``), the frozen leading layers run once per view, in the
   same pass that re-estimates BatchNorm, rather than at every step, which
   makes each step several times cheaper.

Everything happens on a deep copy: the user's encoder is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from tqdm.auto import tqdm

from ._rng import seeded_global, training_generators, uses_global_rng
from ._threads import load_aware_threads, recheck_load
from .distances import class_prototypes, pairwise_distances
from .modules import Conv4, RandomAffine, RandomShift

__all__ = ["AUGMENTATIONS", "adapt_encoder"]

#: Values of ``augmentation``: random shifts only, or random rotations
#: (up to 15 degrees) and scalings (up to 15 %) as well.
AUGMENTATIONS = ("shift", "affine")

#: Most support images the adaptation uses (a random subset of larger sets):
#: bounds its time and memory whatever the size of the support set.
MAX_IMAGES = 128
#: Augmented views of each support image (the first is the image itself).
N_VIEWS = 8


def trainable_layers(module: nn.Module, n_layers: int | None) -> list[nn.Module]:
    """The last ``n_layers`` layers holding parameters (all when None)."""
    layers = [
        m
        for m in module.modules()
        if next(m.parameters(recurse=False), None) is not None
    ]
    return layers if n_layers is None else layers[-n_layers:]


@contextmanager
def _batchnorm_reestimation(module: nn.Module) -> Iterator[None]:
    """Within: forward passes replace BatchNorm's running statistics by their
    average, and normalise with their own batch's statistics (AdaBN).

    Only the BatchNorm layers switch to training mode; dropout stays off.
    """
    norms = [
        m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    saved = [(m, m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes
        m.train()
    try:
        yield
    finally:
        for m, momentum, training in saved:
            m.momentum, m.training = momentum, training


def _split(module: nn.Module, trainable: list[nn.Module]):
    """``(frozen_prefix, rest)`` of a layer sequence, or None if not one.

    The prefix holds the leading layers without trainable parameters; it
    needs no gradient, so its outputs can be computed once and reused.
    """
    if isinstance(module, Conv4):
        layers, first = list(module.encoder), module.as_images
        last = [nn.Flatten()]
    elif isinstance(module, nn.Sequential):
        layers, first, last = list(module), None, []
    else:
        return None
    inside = set()
    for layer in trainable:
        inside |= {id(m) for m in layer.modules()}
    cut = next(
        (
            i
            for i, layer in enumerate(layers)
            if any(id(m) in inside for m in layer.modules())
        ),
        len(layers),
    )
    prefix = nn.Sequential(*layers[:cut])
    if first is not None:
        prefix = nn.Sequential(_Call(first), *prefix)
    return prefix, nn.Sequential(*layers[cut:], *last)


class _Call(nn.Module):
    """A function as a layer (to prepend Conv4's input reshaping)."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.function(X)


def adapt_encoder(
    module: nn.Module,
    images: torch.Tensor,
    codes: torch.Tensor,
    *,
    steps: int,
    lr: float,
    max_shift: int,
    n_layers: int | None,
    metric: str,
    seed: int,
    augmentation: str = "shift",
    progress: bool = False,
) -> nn.Module:
    """Fine-tune a copy of ``module`` on pseudo-episodes from the support set.

    Parameters
    ----------
    module : torch.nn.Module
        The encoder; it is copied, never modified.
    images : Tensor of shape (n, C, H, W)
        The support images, on the module's device.
    codes : LongTensor of shape (n,)
        Class codes in ``[0, n_classes)``.
    steps : int
        Adam steps; 0 only re-estimates the BatchNorm statistics.
    lr : float
        Adam's learning rate.
    max_shift : int
        Largest random shift of the augmented views, in pixels.
    n_layers : int or None
        Train only the last ``n_layers`` layers holding parameters (None: all).
    metric : str
        Distance of the pseudo-episodes' loss, as in the classifier.
    seed : int
        Seeds the augmentations and subsampling: equal seeds, equal results.
    augmentation : {"shift", "affine"}, default="shift"
        How the views differ: random shifts of up to ``max_shift`` pixels, or
        those with random rotations (up to 15 degrees) and scalings (up to
        15 %) of each image.
    progress : bool, default=False
        Show a progress bar of the steps (tqdm, on stderr) with the loss.

    Returns
    -------
    torch.nn.Module
        The adapted copy, in eval mode, without gradients.
    """
    adapted = copy.deepcopy(module).eval()
    device = images.device
    generator = torch.Generator().manual_seed(seed)
    if len(images) > MAX_IMAGES:
        keep = torch.randperm(len(images), generator=generator)[:MAX_IMAGES]
        images, codes = images[keep.to(device)], codes[keep.to(device)]
    _, codes = torch.unique(codes, return_inverse=True)
    n_classes = int(codes.max()) + 1
    adapted.requires_grad_(False)
    trainable = trainable_layers(adapted, n_layers)
    params = [p for layer in trainable for p in layer.parameters()]
    split = _split(adapted, trainable)
    prefix, rest = split if split is not None else (nn.Identity(), adapted)
    views = RandomAffine if augmentation == "affine" else RandomShift
    augment = views(images.shape[1:], max_shift).train()
    # The augmentation draws from this fit's own generator; a module drawing from
    # torch's global one is trained seeded and one at a time (_rng).
    shared = seeded_global(seed) if uses_global_rng(adapted) else nullcontext()
    with shared, training_generators(seed), load_aware_threads():
        # One pass over each view re-estimates BatchNorm and computes the
        # frozen prefix's outputs, reused by every step.
        inputs = []
        with _batchnorm_reestimation(adapted), torch.no_grad():
            for view in range(N_VIEWS):
                inputs.append(prefix(images if view == 0 else augment(images)))
                rest(inputs[-1])
        inputs = torch.stack(inputs)  # (view, image, ...)
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=lr)
        rows = torch.arange(len(images), device=device)
        bar = tqdm(
            range(steps),
            desc="Adapting the encoder to the support set",
            unit="step",
            disable=not progress,
            leave=False,
        )
        for _ in bar:
            recheck_load()
            # Two different views of each image: prototypes from the first,
            # queries from the second. BatchNorm keeps the support statistics.
            first = torch.randint(0, N_VIEWS, (len(rows),), generator=generator)
            other = torch.randint(1, N_VIEWS, (len(rows),), generator=generator)
            first, other = first.to(device), ((first + other) % N_VIEWS).to(device)
            embedded = rest(torch.cat([inputs[first, rows], inputs[other, rows]]))
            support, queries = embedded[: len(rows)], embedded[len(rows) :]
            prototypes = class_prototypes(support, codes, n_classes)
            logits = -pairwise_distances(queries, prototypes, metric)
            loss = nn.functional.cross_entropy(logits, codes)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if progress:  # .item() waits for the device: only when shown
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return adapted.eval().requires_grad_(False)
