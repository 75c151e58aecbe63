"""Grouped Conv4: several encoders side by side in one module and one file."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import Conv4
from sklearn_protonet.persistence import load_encoder, save_encoder

from .test_safe_loading import rewrite


def _trained_like(seed: int, **kwargs) -> Conv4:
    """A Conv4 in eval mode with random weights and BatchNorm statistics, as
    a trained one has (a fresh one's are all the same)."""
    torch.manual_seed(seed)
    module = Conv4(**kwargs)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    return module.eval()


@pytest.mark.parametrize(
    ("input_shape", "weights"),
    [((1, 28, 28), [1.0, 0.5, 2.0]), ((2, 20, 18), None)],
)
def test_side_by_side_is_the_members_embeddings_one_after_the_other(
    input_shape, weights
):
    members = [_trained_like(s, input_shape=input_shape) for s in range(3)]
    joined = Conv4.side_by_side(members, weights).eval()
    assert (joined.hidden_channels, joined.groups) == (192, 3)
    X = torch.rand(7, *input_shape)
    factors = weights or [1.0, 1.0, 1.0]
    expected = torch.cat([m(X) * w for m, w in zip(members, factors, strict=True)], 1)
    torch.testing.assert_close(joined(X), expected, rtol=1e-5, atol=1e-5)


def test_side_by_side_keeps_the_members_training_mode():
    members = [Conv4(), Conv4()]
    assert Conv4.side_by_side(members).training
    assert not Conv4.side_by_side([m.eval() for m in members]).training


@pytest.mark.parametrize(
    ("members", "weights", "error", "match"),
    [
        ([], None, TypeError, "one or more Conv4"),
        ([torch.nn.Linear(2, 2)], None, TypeError, "one or more Conv4"),
        ([Conv4(), Conv4(hidden_channels=32)], None, ValueError, "same input_shape"),
        ([Conv4(), Conv4(input_shape=(1, 20, 20))], None, ValueError, "same"),
        ([Conv4(hidden_channels=4, groups=2)], None, ValueError, "ungrouped"),
        ([Conv4(), Conv4()], [1.0], ValueError, "one positive number per member"),
        ([Conv4(), Conv4()], [1.0, 0.0], ValueError, "weights must be"),
        ([Conv4(), Conv4()], [1.0, float("inf")], ValueError, "weights must be"),
        ([Conv4(), Conv4()], [float("nan"), 1.0], ValueError, "weights must be"),
    ],
)
def test_side_by_side_refuses_what_it_cannot_join(members, weights, error, match):
    with pytest.raises(error, match=match):
        Conv4.side_by_side(members, weights)


@pytest.mark.parametrize("groups", [0, 3, -2])
def test_groups_must_divide_the_channels(groups):
    with pytest.raises(ValueError, match="groups must be a positive divisor"):
        Conv4(hidden_channels=64, groups=groups)


def test_grouped_encoder_round_trips_through_safetensors(tmp_path):
    shape = (1, 16, 16)
    joined = Conv4.side_by_side([_trained_like(s, input_shape=shape) for s in (0, 1)])
    save_encoder(joined, tmp_path / "joined.safetensors")
    loaded = load_encoder(tmp_path / "joined.safetensors")
    assert loaded.estimator.get_params()["module__groups"] == 2
    X = np.random.default_rng(0).random((9, 256), dtype=np.float32)
    with torch.no_grad():
        expected = joined.eval()(torch.from_numpy(X)).numpy()
    np.testing.assert_array_equal(loaded.transform(X), expected)
    # Files of ungrouped encoders stay as they were: no groups field.
    save_encoder(Conv4(input_shape=shape), tmp_path / "plain.safetensors")
    with safe_open(str(tmp_path / "plain.safetensors"), framework="pt") as handle:
        assert "groups" not in json.loads(handle.metadata()["module"])["config"]


@pytest.mark.parametrize("groups", [0, 5, True, "2", 2.0, None])
def test_a_crafted_groups_field_is_refused(groups, tmp_path):
    joined = Conv4.side_by_side([Conv4(input_shape=(1, 16, 16)) for _ in range(2)])
    save_encoder(joined, tmp_path / "joined.safetensors")
    with safe_open(str(tmp_path / "joined.safetensors"), framework="pt") as handle:
        spec = json.loads(handle.metadata()["module"])
    spec["config"]["groups"] = groups
    path = rewrite(
        tmp_path / "joined.safetensors",
        tmp_path / "crafted.safetensors",
        metadata={"module": json.dumps(spec)},
    )
    with pytest.raises(ValueError, match="field 'module.config.groups'") as info:
        load_encoder(path)
    assert str(path) in str(info.value)


def test_grouped_encoder_adapts_and_classifies():
    members = [_trained_like(s, input_shape=(1, 16, 16)) for s in (0, 1)]
    joined = Conv4.side_by_side(members)
    rng = np.random.default_rng(0)
    X = rng.random((12, 256), dtype=np.float32)
    y = np.repeat([0, 1, 2], 4)
    frozen = PrototypicalClassifier(joined).fit(X, y)
    adapted = PrototypicalClassifier(joined, fine_tune_steps=2, random_state=0)
    adapted.fit(X, y)
    assert frozen.predict(X).shape == adapted.predict(X).shape == (12,)
    # Adaptation fine-tunes a copy: the encoder passed in is unchanged.
    torch.testing.assert_close(
        joined(torch.from_numpy(X)),
        torch.cat([m(torch.from_numpy(X)) for m in members], 1),
    )


def test_modules_pickled_before_groups_existed_save_and_join(tmp_path):
    old = _trained_like(0, input_shape=(1, 16, 16))
    del old.__dict__["groups"]  # as unpickled from a file of an earlier version
    save_encoder(old, tmp_path / "old.safetensors")
    assert load_encoder(tmp_path / "old.safetensors").estimator.module_.groups == 1
    assert Conv4.side_by_side([old, old]).groups == 2
