"""The training-time augmentation layers: RandomAffine, RandomResolution and
RandomStrokeWidth (the robust encoder's), RandomBlur, RandomPaper and
RandomNoise (the symbols encoder's image conditions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_protonet.modules import (
    Conv4,
    RandomAffine,
    RandomBlur,
    RandomNoise,
    RandomPaper,
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
    "layer",
    [
        RandomResolution(SHAPE, 4, 8, p=1.0),
        RandomStrokeWidth(SHAPE, p=1.0),
        RandomBlur(SHAPE, p=1.0),
        RandomPaper(SHAPE, p=1.0),
        RandomNoise(SHAPE, p=1.0),
    ],
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


def test_random_blur_spreads_strokes_and_keeps_each_images_peak():
    images = _strokes()
    out = RandomBlur(SHAPE, (1.0, 1.0), p=1.0).train()(images)
    torch.testing.assert_close(out.amax((1, 2, 3)), images.amax((1, 2, 3)))
    assert ((out > 0.05).sum((1, 2, 3)) > (images > 0.05).sum((1, 2, 3))).all()
    # One point spreads as a separable Gaussian: symmetric, widest at sigma.
    point = torch.zeros(1, *SHAPE)
    point[0, 0, 8, 8] = 1.0
    spread = RandomBlur(SHAPE, (1.0, 1.0), p=1.0).train()(point)[0, 0]
    torch.testing.assert_close(spread, spread.T)
    ratio = spread[8, 9] / spread[8, 8]
    torch.testing.assert_close(ratio, torch.tensor(np.exp(-0.5), dtype=ratio.dtype))


def test_random_paper_grey_background_below_faint_ink():
    images = _strokes(200)
    layer = RandomPaper(SHAPE, max_background=0.3, max_shading=0.2, p=1.0)
    out = layer.train()(images)
    background, ink = out[images == 0], out[images == 1.0]
    # The centre's level plus half a diagonal's change at most.
    assert background.min() >= 0 and background.max() <= 0.3 + 0.2 * 0.5**0.5 + 1e-6
    assert background.mean() > 0.05  # grey, not black
    assert ink.min() >= 0.4 - 1e-6 and ink.max() <= 1.0
    # Every image's ink stays at least as bright as its own background.
    for image, source in zip(out, images, strict=True):
        assert image[source == 1.0].min() >= image[source == 0].max() - 1e-6


def test_random_noise_stays_in_range_with_the_drawn_strength():
    images = torch.full((300, *SHAPE), 0.5)
    out = RandomNoise(SHAPE, max_std=0.2, p=1.0).train()(images)
    assert out.min() >= 0 and out.max() <= 1
    stds = (out - images).flatten(1).std(1)
    assert 0.0 <= stds.min() < 0.03 and 0.17 < stds.max() <= 0.22
    assert RandomNoise(SHAPE, max_std=0.0).train()(images) is images


@pytest.mark.parametrize(
    "layer",
    [RandomBlur(SHAPE, p=0.25), RandomPaper(SHAPE, p=0.25), RandomNoise(SHAPE, p=0.25)],
)
def test_conditions_change_the_chosen_share(layer):
    torch.manual_seed(0)
    images = _strokes(400)
    changed = (layer.train()(images) - images).abs().amax((1, 2, 3)) > 0
    assert 0.15 < changed.float().mean() < 0.35


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
        (lambda: RandomBlur(SHAPE, (2.0, 1.0)), "sigma must be"),
        (lambda: RandomBlur(SHAPE, (0.0, 1.0)), "sigma must be"),
        (lambda: RandomBlur(SHAPE, p=2), "RandomBlur's p must be in"),
        (lambda: RandomPaper(SHAPE, max_background=1.5), "max_background must be"),
        (lambda: RandomPaper(SHAPE, min_contrast=-1), "min_contrast must be"),
        (lambda: RandomPaper(SHAPE, p=-1), "RandomPaper's p must be in"),
        (lambda: RandomNoise(SHAPE, max_std=-0.1), "max_std must be >= 0"),
        (lambda: RandomNoise(SHAPE, p=1.1), "RandomNoise's p must be in"),
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
