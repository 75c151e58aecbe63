"""Steps that can take more than a few seconds show progress, and can be silenced.

The command line's bars are tested in test_cli.py; the meta-trainer's is
skorch's ProgressBar.
"""

from __future__ import annotations

import pytest
import torch

from sklearn_protonet.adaptation import adapt_encoder
from sklearn_protonet.modules import Conv4


def _adapt(progress: bool):
    torch.manual_seed(0)
    module = Conv4((1, 8, 8), n_blocks=2, hidden_channels=4)
    images = torch.rand(6, 1, 8, 8)
    codes = torch.tensor([0, 0, 1, 1, 2, 2])
    return adapt_encoder(
        module,
        images,
        codes,
        steps=3,
        lr=1e-3,
        max_shift=1,
        n_layers=None,
        metric="euclidean",
        seed=0,
        progress=progress,
    )


@pytest.mark.parametrize("progress", [False, True])
def test_adapt_encoder_shows_its_steps_only_when_asked(progress, capsys):
    adapted = _adapt(progress)
    out, err = capsys.readouterr()
    assert out == ""
    if progress:
        # The bar is drawn at once with its total; later redraws (the step
        # count, the loss) are rate-limited by tqdm, so fast steps may skip them.
        assert "Adapting the encoder to the support set" in err and "0/3" in err
    else:
        assert err == ""
    # The bar changes nothing in what is computed.
    other = _adapt(not progress).state_dict()
    for name, value in adapted.state_dict().items():
        assert torch.equal(value, other[name]), name


@pytest.mark.parametrize("verbose", [0, 1])
def test_classifier_fit_with_adaptation_shows_progress_when_verbose(verbose, capsys):
    import numpy as np

    from sklearn_protonet import PrototypicalClassifier
    from sklearn_protonet.modules import Conv4

    rng = np.random.default_rng(0)
    X = rng.random((6, 1, 8, 8)).astype(np.float32)
    PrototypicalClassifier(
        Conv4(input_shape=(1, 8, 8), n_blocks=2, hidden_channels=4),
        fine_tune_steps=3,
        random_state=0,
        verbose=verbose,
    ).fit(X, [0, 0, 1, 1, 2, 2])
    err = capsys.readouterr().err
    assert ("Adapting the encoder to the support set" in err) == bool(verbose)
