"""Ctrl-C during a classifier's meta-training.

skorch swallows ``KeyboardInterrupt`` in ``fit`` and returns the net trained
so far. A bare trainer keeps that behaviour (and says so in
``interrupted_``); a classifier re-raises and is left unfitted, so it never
looks fitted on a fraction of the meta-training. ``EarlyStopping``, which
stops skorch by raising ``KeyboardInterrupt`` too, is not an interruption.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, EarlyStopping

from sklearn_protonet import PrototypicalClassifier

from .conftest import tiny_trainer

RNG = np.random.RandomState(0)
X = RNG.randn(40, 6).astype(np.float32)
Y = np.repeat(["a", "b", "c", "d"], 10)


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Python's own Ctrl-C handler, also where the tests were started with
    SIGINT ignored (a background job of a non-interactive shell), in which
    case Python installs none and a real SIGINT would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class CtrlC(Callback):
    """Interrupts at the end of epoch ``at``: a raised KeyboardInterrupt or a
    real SIGINT delivered to the process (as Ctrl-C does)."""

    def __init__(self, at=2, how="raise"):
        self.at, self.how = at, how

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.at:
            if self.how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("how", ["raise", "sigint"])
def test_bare_trainer_keeps_skorchs_behaviour(how):
    trainer = tiny_trainer(max_epochs=5, callbacks=[CtrlC(2, how)])
    assert trainer.fit(X, Y) is trainer  # no exception: skorch's way
    assert trainer.interrupted_ is True
    assert len(trainer.history) == 2
    trainer.transform(X)


@pytest.mark.parametrize("how", ["raise", "sigint"])
def test_classifier_reraises_and_is_not_fitted(how):
    clf = PrototypicalClassifier(tiny_trainer(max_epochs=5))
    clf.fit(X, Y)  # fitted once...
    clf.set_params(encoder=tiny_trainer(max_epochs=5, callbacks=[CtrlC(2, how)]))
    with pytest.raises(KeyboardInterrupt, match="interrupted at epoch 2 of 5"):
        clf.fit(X, Y)
    # ...and after the interrupted fit nothing of either fit is left.
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)
    assert not [k for k in vars(clf) if k.endswith("_") and not k.startswith("_")]
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_early_stopping_is_not_an_interruption():
    stop = EarlyStopping(monitor="train_loss", patience=1, threshold=10.0)
    trainer = tiny_trainer(max_epochs=6, callbacks=[stop])
    clf = PrototypicalClassifier(trainer).fit(X, Y)
    assert clf.encoder_.interrupted_ is False
    assert len(clf.encoder_.history) < 6
    clf.predict(X)


def test_a_complete_training_is_not_interrupted():
    clf = PrototypicalClassifier(tiny_trainer(max_epochs=2)).fit(X, Y)
    assert clf.encoder_.interrupted_ is False
