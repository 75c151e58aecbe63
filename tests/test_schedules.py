"""Learning-rate schedules for a fixed budget of episodes."""

import numpy as np
import pytest

from sklearn_protonet.callbacks import cosine_lr_schedule, one_cycle_lr_schedule

from .conftest import tiny_trainer

X = np.random.default_rng(0).normal(size=(60, 6)).astype("float32")
Y = np.repeat(np.arange(6), 10)


def _rates(trainer):
    trainer.fit(X, Y)
    return trainer.optimizer_.param_groups[0]["lr"]


def test_cosine_warms_up_then_ends_at_its_floor():
    schedule = cosine_lr_schedule(10, warmup_episodes=2, final_fraction=0.1)
    trainer = tiny_trainer(lr=0.01, callbacks=[schedule], episodes_per_epoch=5)
    assert _rates(trainer) == pytest.approx(0.001)


def test_cosine_checks_its_arguments():
    with pytest.raises(ValueError, match="warmup_episodes must be in"):
        cosine_lr_schedule(10, warmup_episodes=10)
    with pytest.raises(ValueError, match="final_fraction must be in"):
        cosine_lr_schedule(10, final_fraction=2)


def test_one_cycle_anneals_below_its_peak():
    schedule = one_cycle_lr_schedule(10, max_lr=0.01)
    trainer = tiny_trainer(callbacks=[schedule], episodes_per_epoch=5)
    assert _rates(trainer) < 0.01 / 25
