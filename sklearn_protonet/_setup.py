"""Setting up a classifier's encoder for a support set: meta-training an
unfitted trainer, materialising a lazy module, adapting a copy to the
support images."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from torch import nn

from . import adaptation, contracts
from ._encoders import encoder_module, has_lazy_parameters, materialize, resolve_device
from ._inputs import as_tensor
from ._rng import draw_seed
from ._sklearn_contract import is_fitted

__all__ = ["adapted_encoder", "fitted_encoder"]


def fitted_encoder(encoder, X: np.ndarray, y: np.ndarray):
    """The encoder ready to embed ``X``: as given when it is fitted (or the
    identity), a materialised copy of a lazy module, or a clone of an
    unfitted trainer meta-trained on ``(X, y)``."""
    if encoder is None:
        return None
    if isinstance(encoder, nn.Module):
        if has_lazy_parameters(encoder):
            # A lazy module takes its shape here; work on a copy so the
            # user's module (a parameter) is left untouched.
            encoder = clone(encoder, safe=False)
            materialize(encoder, as_tensor(X), seed=0)
        return encoder
    if not hasattr(encoder, "transform"):
        raise TypeError(
            "encoder must be None, a torch.nn.Module, an EpisodicTrainer or a "
            f"scikit-learn transformer, got {type(encoder).__name__}."
        )
    if is_fitted(encoder):
        return encoder
    trained = clone(encoder).fit(X, y)
    if getattr(trained, "interrupted_", False) is True:
        # skorch swallows Ctrl-C and returns a partly trained net; a
        # classifier on it would look fitted.
        epochs = len(getattr(trained, "history_", []))
        raise KeyboardInterrupt(
            f"The encoder's meta-training was interrupted at epoch {epochs} of "
            f"{trained.max_epochs}, so the classifier is not fitted. To use a "
            "partly trained encoder, fit the trainer yourself (trainer.fit(X, y) "
            "keeps skorch's behaviour: it returns the net trained so far) and "
            "pass the fitted trainer as the encoder."
        )
    # A stated contract of the trained encoder (a module's own shape check
    # says more, e.g. Conv4's).
    contract = contracts.get_input_contract(trained, infer_shape=False)
    if contract is not None:
        contracts.check_sample_shape(X.shape[1:], contract)
    return trained


def adapted_encoder(
    encoder,
    X: np.ndarray,
    codes: np.ndarray,
    *,
    steps: int,
    shift: int,
    layers: int | None,
    device,
    random_state,
    **options,
) -> nn.Module:
    """A copy of the encoder's module adapted to the support images by
    :func:`sklearn_protonet.adaptation.adapt_encoder`.

    ``steps`` (which the errors name), ``shift`` and ``layers`` are its
    ``steps``, ``max_shift`` and ``n_layers``; ``device`` and
    ``random_state`` place the support images and give the seed; the other
    ``options`` (``lr``, ``augmentation``, ``metric``, ``progress``) go to it
    as they are.
    """
    module = encoder_module(encoder)
    if module is None:
        raise ValueError(
            f"fine_tune_steps={steps} needs a torch module encoder to fine-tune, "
            f"got {type(encoder).__name__}; use fine_tune_steps=0."
        )
    shape = getattr(contracts.get_input_contract(module), "shape", None)
    if X.ndim == 4 or (X.ndim == 3 and shape is None):
        shape = (X.shape[1], *X.shape[2:]) if X.ndim == 4 else (1, *X.shape[1:])
    if shape is None:
        raise ValueError(
            "fine_tune_steps > 0 augments the support images by shifting them, "
            f"but samples of shape {X.shape[1:]} are not images and the encoder "
            "states no input shape. Pass X as (n, channels, height, width) images."
        )
    size, given = int(np.prod(shape)), int(np.prod(X.shape[1:]))
    if size != given:
        raise ValueError(
            f"X has {given} features, but PrototypicalClassifier is expecting "
            f"{size} features as input: the encoder adapted by fine_tune_steps "
            f"takes images of shape {tuple(shape)}."
        )
    device = resolve_device(module, device)
    seed = draw_seed(random_state)  # NumPy's global state untouched
    return adaptation.adapt_encoder(
        module,
        as_tensor(X).reshape(len(X), *shape).to(device),
        as_tensor(codes.astype(np.int64)).to(device),
        steps=steps,
        max_shift=shift,
        n_layers=layers,
        seed=int(seed),
        **options,
    )
