"""The zero-shot trainer's skorch callback."""

from __future__ import annotations

import torch
from skorch.callbacks import Callback

__all__ = ["ZeroShotAccuracy"]


class ZeroShotAccuracy(Callback):
    """Records each episode's query accuracy as ``train_acc`` / ``valid_acc``."""

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        with torch.no_grad():
            logits, codes = net.episode_logits(y_pred.detach(), batch[1])
            accuracy = (logits.argmax(1) == codes).float().mean().item()
        net.history.record_batch("train_acc" if training else "valid_acc", accuracy)
