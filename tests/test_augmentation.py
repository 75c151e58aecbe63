"""The training-time augmentation layers: RandomAffine, RandomResolution and
RandomStrokeWidth (the robust encoder's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_protonet.modules import (
    Conv4,
    RandomAffine,
    RandomResolution,
    RandomStrokeWidth,
)

from .conftest import _small_trainer

SHAPE = (1, 16, 16)


def _strokes(n=6):
    """Thin light strokes on black: one row and one column per image."""
    images = torch.zeros(n, *SHAPE)
    for i in range(n):
        images[i, 0, 3 + i % 10, 2:14] = 1.0
        images[i, 0, 2:14, 8 - i % 6] = 0.8
    return images


@pytest.mark.parametrize(
    "layer", [RandomResolution(SHAPE, 4, 8, p=1.0), RandomStrokeWidth(SHAPE, p=1.0)]
)
def test_layers_change_images_in_training_only_and_keep_shapes(layer):
    images = _strokes()
    assert layer.eval()(images) is images
    out = layer.train()(images)
    assert out.shape == images.shape
    assert all(not torch.equal(a, b) for a, b in zip(out, images, strict=True))
    flat = images.reshape(len(images), -1)
    assert layer(flat).shape == flat.shape


def test_random_affine_transforms_in_training_only():
    torch.manual_seed(0)
    images = torch.rand(6, *SHAPE)
    affine = RandomAffine(SHAPE, max_shift=2, max_rotation=15, max_scale=0.15)
    assert affine.eval()(images) is images
    out = affine.train()(images)
    assert out.shape == images.shape and not torch.allclose(out, images)
    # Flat rows come back flat; no change at all gives the image back.
    assert affine(images.reshape(6, -1)).shape == (6, int(np.prod(SHAPE)))
    still = RandomAffine(SHAPE, max_shift=0, max_rotation=0, max_scale=0).train()
    torch.testing.assert_close(still(images), images, atol=1e-5, rtol=0)


def test_random_resolution_blurs_and_keeps_each_images_peak():
    images = _strokes()
    out = RandomResolution(SHAPE, 4, 6, p=1.0).train()(images)
    torch.testing.assert_close(out.amax((1, 2, 3)), images.amax((1, 2, 3)))
    # Blurred: the strokes spread over more pixels, with softer edges.
    assert ((out > 0.05).sum((1, 2, 3)) > (images > 0.05).sum((1, 2, 3))).all()
    variation = (out.diff(dim=-1).abs().sum() + out.diff(dim=-2).abs().sum()) / (
        images.diff(dim=-1).abs().sum() + images.diff(dim=-2).abs().sum()
    )
    assert variation < 0.9
    # Shrinking to the full size and back is no change at all.
    same = RandomResolution(SHAPE, 16, 16, p=1.0).train()(images)
    torch.testing.assert_close(same, images)


def test_random_resolution_degrades_the_chosen_share():
    torch.manual_seed(0)
    images = _strokes(400)
    out = RandomResolution(SHAPE, 4, 8, p=0.25).train()(images)
    changed = (out - images).abs().amax((1, 2, 3)) > 0
    assert 0.15 < changed.float().mean() < 0.35
    assert RandomResolution(SHAPE, p=0.0).train()(images) is images


def test_random_stroke_width_is_a_grey_level_dilation():
    image = torch.zeros(1, *SHAPE)
    image[0, 0, 5, 5] = 0.7
    out = RandomStrokeWidth(SHAPE, p=1.0).train()(image)
    expected = torch.zeros(1, *SHAPE)
    expected[0, 0, 4:7, 4:7] = 0.7
    torch.testing.assert_close(out, expected)


def test_seeded_global_generator_gives_the_same_draws():
    layers = nn.Sequential(RandomStrokeWidth(SHAPE), RandomResolution(SHAPE, 4, 8))
    images = _strokes(50)
    torch.manual_seed(3)
    first = layers.train()(images)
    torch.manual_seed(3)
    np.testing.assert_array_equal(layers(images).numpy(), first.numpy())


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RandomResolution(SHAPE, 8, 4), "min_size <= max_size"),
        (lambda: RandomResolution(SHAPE, 4, 32), "height and width"),
        (lambda: RandomResolution(SHAPE, 0, 4), "1 <= min_size"),
        (lambda: RandomResolution(SHAPE, p=1.5), "p must be in"),
        (lambda: RandomStrokeWidth(SHAPE, p=-0.1), "p must be in"),
    ],
)
def test_bad_settings_name_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _augmented_conv4():
    return nn.Sequential(
        RandomStrokeWidth(SHAPE, p=0.5),
        RandomResolution(SHAPE, 4, 8, p=0.5),
        Conv4(input_shape=SHAPE, hidden_channels=4, n_blocks=2),
    )


def test_trainer_with_augmentation_layers_is_reproducible():
    """Meta-training draws the augmentations from the trainer's seeded
    generator, not torch's global one: two fits with one random_state give
    the same encoder wherever the global generator stands."""
    rng = np.random.RandomState(0)
    X = rng.rand(80, 256).astype(np.float32)
    y = np.repeat(np.arange(8), 10)

    def fit(global_draws):
        torch.rand(global_draws)  # the caller's global generator moves on
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same initial weights
            module = _augmented_conv4()
        trainer = _small_trainer(
            module, dict(episodes_per_epoch=3, max_epochs=2), dict(n_way=4, n_shot=1)
        )
        return trainer.fit(X, y).transform(X[:5])

    np.testing.assert_array_equal(fit(1), fit(7))
