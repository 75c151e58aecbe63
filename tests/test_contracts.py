"""The input contract's background and contrast, and the warnings they give."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.contracts import (
    InputContract,
    InputContractWarning,
    background_surface,
    contract_violations,
    get_input_contract,
    warn_on_violations,
)
from sklearn_protonet.datasets._omniglot import INPUT_CONTRACT
from sklearn_protonet.modules import Conv4
from sklearn_protonet.pretrained import list_pretrained, load_pretrained

OMNIGLOT = InputContract((1, 28, 28), (0.0, 1.0), "light-on-dark")


def _strokes(n=6, seed=0) -> np.ndarray:
    """Light strokes on exact black, like Omniglot's images."""
    rng = np.random.RandomState(seed)
    X = np.zeros((n, 1, 28, 28), np.float32)
    for i in range(n):
        row, col = rng.randint(4, 16, size=2)
        X[i, 0, row : row + 10, col : col + 2] = 1.0
        X[i, 0, row + 4 : row + 6, col - 3 : col + 5] = 1.0
    return X


def test_new_fields_default_to_what_the_shipped_encoders_were_trained_on():
    assert (OMNIGLOT.background, OMNIGLOT.contrast) == ("uniform", "full")
    assert OMNIGLOT.figure_on_ground
    assert not InputContract(shape=(1, 28, 28)).figure_on_ground
    # A file written before the fields existed reads with their defaults.
    old = {"shape": [1, 28, 28], "value_range": [0.0, 1.0], "polarity": "light-on-dark"}
    assert InputContract.from_dict(old) == OMNIGLOT == INPUT_CONTRACT
    for name in list_pretrained():
        assert get_input_contract(load_pretrained(name)) == OMNIGLOT
    anything = InputContract(value_range=(0, 1), background=None, contrast=None)
    assert InputContract.from_dict(json.loads(json.dumps(anything.to_dict()))) == (
        anything
    )
    with pytest.raises(ValueError, match="background must be one of"):
        InputContract(background="white")
    with pytest.raises(ValueError, match="contrast must be one of"):
        InputContract(contrast=1.0)
    with pytest.raises(ValueError, match=r"unknown input contract fields \['ink'\]"):
        InputContract.from_dict({**old, "ink": 1})


def test_a_saved_encoder_keeps_background_and_contrast(tmp_path):
    from sklearn_protonet.persistence import load_encoder, save_encoder

    module = Conv4((1, 28, 28), hidden_channels=4, n_blocks=1)
    module.input_contract = InputContract(
        (1, 28, 28), (0, 1), "dark-on-light", background=None, contrast="full"
    )
    save_encoder(module, tmp_path / "encoder.safetensors")
    loaded = get_input_contract(load_encoder(tmp_path / "encoder.safetensors"))
    assert loaded == module.input_contract


@pytest.mark.parametrize(
    "degrade, match",
    [
        (lambda X: 0.3 + 0.7 * X, r"100% of the images have a background up to 0\.30"),
        (
            lambda X: X + np.linspace(0, 0.4, 28, dtype=np.float32),
            "have a background up to",
        ),
        (lambda X: 0.3 * X, "have faint strokes"),
    ],
)
def test_images_breaking_background_or_contrast_warn(degrade, match):
    X, y = _strokes(), [0, 1, 2, 0, 1, 2]
    encoder = load_pretrained("omniglot-conv4-robust")
    with pytest.warns(InputContractWarning, match=match):
        PrototypicalClassifier(encoder).fit(degrade(X), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PrototypicalClassifier(encoder).fit(X, y)


def test_only_clear_breaks_are_reported():
    X = _strokes()
    rng = np.random.RandomState(0)
    slightly_noisy = X + 0.05 * rng.rand(*X.shape).astype(np.float32)
    assert contract_violations(slightly_noisy, OMNIGLOT) == []
    assert contract_violations(0.7 * X, OMNIGLOT) == []  # strokes still strong
    # Two grey images out of six: not most of them.
    some_grey = X.copy()
    some_grey[:2] += 0.3
    assert contract_violations(some_grey, OMNIGLOT) == []
    # Reversed polarity is reported alone: its fix comes first.
    (problem,) = contract_violations(1.0 - X, OMNIGLOT)
    assert "look dark-on-light" in problem
    # Contracts that state no background or contrast ask nothing of them.
    anything = InputContract((1, 28, 28), (0, 1), "light-on-dark", None, None)
    assert contract_violations(0.3 + 0.2 * X, anything) == []
    assert contract_violations(0.3 + 0.2 * X, InputContract((1, 28, 28))) == []


def test_ink_on_paper_contracts_are_judged_the_other_way():
    paper = 1.0 - _strokes()
    ink_on_paper = InputContract((1, 28, 28), (0, 1), "dark-on-light")
    assert contract_violations(paper, ink_on_paper) == []
    problems = contract_violations(paper * 0.7, ink_on_paper)
    assert len(problems) == 1 and "away from 1" in problems[0]


def test_the_warning_names_what_it_checked():
    grey = 0.3 + 0.7 * _strokes()
    with pytest.warns(InputContractWarning, match="^The queries do not look like"):
        warn_on_violations(grey, OMNIGLOT, what="queries")
    with pytest.warns(InputContractWarning, match="^The support set does not look"):
        warn_on_violations(grey, OMNIGLOT)
    # Flat rows are images too; a large batch is judged on a sample of it.
    with pytest.warns(InputContractWarning, match="background"):
        warn_on_violations(np.repeat(grey.reshape(6, -1), 500, axis=0), OMNIGLOT)


def test_background_surface_follows_shading_and_ignores_strokes():
    shading = np.linspace(0.0, 0.4, 28, dtype=np.float32)[None, :, None]
    X = _strokes()[:, 0] + shading
    surface = background_surface(X)
    np.testing.assert_allclose(surface, np.broadcast_to(shading, X.shape), atol=0.05)
    thick = np.zeros((1, 28, 28), np.float32)
    thick[0, 6:22, 6:22] = 1.0  # a blob covering whole tiles
    assert background_surface(thick).max() < 0.35
    flat = background_surface(0.2 + 0.8 * _strokes()[:, 0], flat=True)
    np.testing.assert_allclose(flat, 0.2, atol=1e-6)
