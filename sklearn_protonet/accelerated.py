"""Meta-training on several GPUs or machines, and in mixed precision, with accelerate.

:class:`AcceleratedEpisodicTrainer` is :class:`~sklearn_protonet.EpisodicTrainer`
with skorch's ``AccelerateMixin``: Hugging Face accelerate places the module,
wraps it for distributed data parallel training when the script runs under
``accelerate launch``, and applies the mixed precision of its ``Accelerator``.

Needs the ``accelerate`` extra: ``pip install "sklearn-protonet[accelerate]"``.
"""

from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNet
from skorch.hf import AccelerateMixin
from torch import nn

from .trainer import EpisodicTrainer

__all__ = ["AcceleratedEpisodicTrainer"]


def _has_trainable_parameters(criterion) -> bool:
    return isinstance(criterion, nn.Module) and any(
        p.requires_grad for p in criterion.parameters()
    )


class AcceleratedEpisodicTrainer(AccelerateMixin, EpisodicTrainer):
    """:class:`~sklearn_protonet.EpisodicTrainer` run by Hugging Face accelerate.

    Write the training script once; ``python script.py`` trains on one device
    and ``accelerate launch script.py`` on every GPU (or machine) of the
    accelerate configuration. Each process draws its own episodes and the
    gradients are averaged across processes at each step, so one step sees
    ``num_processes`` episodes: an epoch trains on
    ``episodes_per_epoch * num_processes`` episodes, and a learning-rate
    schedule counted in steps (``paper_lr_schedule``) advances once per step.
    Validation episodes are the same on every process.

    In one process the result equals :class:`~sklearn_protonet.EpisodicTrainer`
    with the same parameters and ``random_state``, weight for weight, when
    the accelerator uses full precision.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The encoder, as for :class:`~sklearn_protonet.EpisodicTrainer`.
    accelerator : accelerate.Accelerator
        Its ``mixed_precision`` (``"no"``, ``"bf16"``, ``"fp16"``) replaces
        ``autocast_dtype``, which must stay ``None``.
    device : None, default=None
        Accelerate places the module and the episodes; leave it ``None``.
    unwrap_after_train : bool, default=True
        Unwrap the module after training (skorch's ``AccelerateMixin``
        option), so the trainer can be saved and used as a classifier's encoder.
    **kwargs
        Every other :class:`~sklearn_protonet.EpisodicTrainer` parameter.

    See Also
    --------
    sklearn_protonet.EpisodicTrainer : the same training in one process.

    Notes
    -----
    The accelerator's process group is created by ``accelerate launch``
    (or ``torchrun``); run the whole script, including ``fit``, in every
    process. Only the main process prints the training log.

    Examples
    --------
    >>> from accelerate import Accelerator
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_protonet.accelerated import AcceleratedEpisodicTrainer
    >>> from sklearn_protonet.modules import MLP
    >>> X, y = load_digits(return_X_y=True)
    >>> trainer = AcceleratedEpisodicTrainer(
    ...     MLP, accelerator=Accelerator(cpu=True), max_epochs=1, verbose=0,
    ...     random_state=0,
    ... )
    >>> trainer.fit(X[y < 8] / 16, y[y < 8]).transform(X[y >= 8] / 16).shape
    (354, 64)
    """

    def _validate_params(self):
        super()._validate_params()
        if self.autocast_dtype is not None:
            raise ValueError(
                f"autocast_dtype={self.autocast_dtype!r}: AcceleratedEpisodicTrainer "
                "takes mixed precision from its accelerator; leave autocast_dtype="
                "None and pass Accelerator(mixed_precision='bf16') (or 'fp16')."
            )

    def _initialize_callbacks(self):
        # skorch's PrintLog ignores verbose=0 for any sink but print, and the
        # mixin's 'auto' sink is the accelerator's print: keep print when silent.
        if self.callbacks__print_log__sink == "auto" and not self.verbose:
            self.callbacks__print_log__sink = print
        return super()._initialize_callbacks()

    def initialize(self):
        """Initialise as :class:`~sklearn_protonet.EpisodicTrainer` does, seeded
        by ``random_state``; the accelerator receives the parts in ``fit_loop``."""
        # AccelerateMixin.initialize re-implements NeuralNet.initialize, which
        # would skip EpisodicTrainer's checks and seeding, and prepares the
        # module at once, before a lazy module has its shapes from the data.
        EpisodicTrainer.initialize(self)
        self._wrapped_with_accelerator = False
        return self

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's training loop, with module, criterion and optimizer
        prepared by the accelerator (once lazy modules have their shapes)."""
        self._initialize_accelerator()
        return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def _initialize_accelerator(self):
        # Distributed data parallel refuses modules without trainable
        # parameters, such as the cross-entropy criterion: prepare only the
        # criteria that have some.
        criteria = self._criteria
        self._criteria = [
            name
            for name in criteria
            if _has_trainable_parameters(getattr(self, name + "_"))
        ]
        try:
            return super()._initialize_accelerator()
        finally:
            self._criteria = criteria

    def get_iterator(self, dataset, training=False):
        """Episodes as :class:`~sklearn_protonet.EpisodicTrainer` draws them;
        with several processes, each draws its own training episodes."""
        iterator = super().get_iterator(dataset, training=training)
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        if training and world > 1:
            # One process keeps the plain trainer's episodes exactly.
            iterator.make_rng = lambda: np.random.default_rng(
                [self.seed_, 1, len(self.history), rank]
            )
        return iterator

    def infer(self, x, **fit_params):
        """The module's forward pass on the accelerator's device, as float32.

        Mixed precision comes from the accelerator (it wraps the module's
        forward); ``EpisodicTrainer``'s own autocast is not used.
        """
        x = x.to(self.accelerator.device)
        return NeuralNet.infer(self, x, **fit_params).float()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The episode's loss, with distances in float32 as in the plain trainer."""
        with torch.autocast(y_pred.device.type, enabled=False):
            return super().get_loss(y_pred.float(), y_true, X=X, training=training)

    def evaluation_step(self, batch, training=False):
        """Embed one validation episode in this process.

        Every process scores the same validation episodes, so nothing is
        gathered across processes (skorch's mixin would concatenate the
        episodes' embeddings and mismatch the episode's labels).
        """
        return EpisodicTrainer.evaluation_step(self, batch, training=training)
