"""Shared fixtures: small, fast data and encoders."""

import os
import sys
from pathlib import Path

# A fixed thread count: the library otherwise follows the load of the machine
# (sklearn_protonet._threads), and seeded training compares bit for bit only
# on the same number of threads. tests/test_threads.py tests that policy.
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

from sklearn_protonet import EpisodicTrainer
from sklearn_protonet.datasets._base import _resolve_data_home
from sklearn_protonet.demo import load_digits_split
from sklearn_protonet.modules import MLP, Conv4

ROOT = Path(__file__).resolve().parents[1]
# The benchmark scripts (the Omniglot experiment) import their shared helper
# as a sibling module, as when run as ``python benchmarks/<name>.py``.
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(autouse=True)
def _two_threads():
    # The CI machine has 2 cores; more threads only add contention.
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits():
    """Rotated digits split into base (0-4) and novel (5-9) classes."""
    return dict(load_digits_split())


def _small_trainer(module, defaults: dict, params: dict) -> EpisodicTrainer:
    """A seeded trainer of tiny 3-way 2-shot 2-query episodes, no validation."""
    episodes = dict(
        n_way=3, n_shot=2, n_query=2, train_split=None, verbose=0, random_state=0
    )
    return EpisodicTrainer(module=module, **{**episodes, **defaults, **params})


def tiny_trainer(**params) -> EpisodicTrainer:
    """An MLP meta-trainer with a budget of a second or so."""
    defaults = dict(
        module__hidden_sizes=(32,),
        module__out_features=16,
        episodes_per_epoch=5,
        valid_episodes=5,
        max_epochs=2,
    )
    return _small_trainer(params.pop("module", MLP), defaults, params)


@pytest.fixture(scope="session")
def fitted_trainer(digits):
    """An MLP meta-trained on the digits' base classes."""
    trainer = tiny_trainer(n_way=5, episodes_per_epoch=20, max_epochs=3)
    return trainer.fit(digits["X_base"], digits["y_base"])


SPLITS = ("train", "val", "trainval", "test")
OMNIGLOT_FILES = [
    "omniglot/images_background.zip",
    "omniglot/images_evaluation.zip",
    *(f"omniglot/splits/vinyals/{split}.txt" for split in SPLITS),
]


def omniglot_data_home() -> Path:
    """The data home the library itself would use: $SKLEARN_PROTONET_DATA,
    else ~/sklearn_protonet_data. Tests never download into it.

    Missing data fails the test in CI (which must run it) and skips it elsewhere.
    """
    home = _resolve_data_home()
    missing = [rel for rel in OMNIGLOT_FILES if not (home / rel).is_file()]
    if missing:
        message = f"Omniglot data not found in {home} (missing {missing})"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run these tests)")
        pytest.skip(message)
    return home


def tiny_conv4_trainer(**params) -> EpisodicTrainer:
    """A narrow Conv4 on 8x8 images: BatchNorm makes train and eval mode differ."""
    defaults = dict(
        module__input_shape=(1, 8, 8),
        module__hidden_channels=4,
        module__n_blocks=3,
        episodes_per_epoch=3,
        max_epochs=1,
    )
    return _small_trainer(params.pop("module", Conv4), defaults, params)


@pytest.fixture(scope="session")
def omniglot(tmp_path_factory):
    """Omniglot trainval and test splits, decoded once per session.

    The cache goes to $SKLEARN_PROTONET_CACHE, else to a temporary folder:
    tests never write into the (shared, read-only) data home.
    """
    import os

    from sklearn_protonet.datasets import load_omniglot

    home = omniglot_data_home()
    cache = os.environ.get("SKLEARN_PROTONET_CACHE") or str(
        tmp_path_factory.mktemp("cache")
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKLEARN_PROTONET_CACHE", cache)
        X_train, y_train = load_omniglot("trainval", data_home=home, return_X_y=True)
        X_test, y_test = load_omniglot("test", data_home=home, return_X_y=True)
    return {
        "X_train": X_train,
        "y_train": y_train,
        "X_test": X_test,
        "y_test": y_test,
        "home": home,
        "cache": cache,  # holds the decoded arrays: later loads take seconds
    }
