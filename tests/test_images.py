"""Reading images: the folder loader and the ImageReader transformer."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from PIL import Image
from sklearn.pipeline import make_pipeline

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.contracts import InputContract, InputContractWarning
from sklearn_protonet.datasets import load_image_folder
from sklearn_protonet.modules import Conv4
from sklearn_protonet.preprocessing import ImageReader
from sklearn_protonet.pretrained import load_pretrained


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _square(value_inside: int, value_outside: int, size: int = 8) -> np.ndarray:
    image = np.full((size, size), value_outside, dtype=np.uint8)
    image[2:-2, 2:-2] = value_inside
    return image


@pytest.fixture
def folder(tmp_path):
    """Two classes: bright squares and bright crosses on black, 8x8."""
    cross = np.zeros((8, 8), dtype=np.uint8)
    cross[3:5, :] = cross[:, 3:5] = 255
    for i in range(3):
        _save(tmp_path / "square" / f"{i}.png", _square(255, 0))
        _save(tmp_path / "cross" / f"{i}.png", np.roll(cross, i - 1, axis=1))
    (tmp_path / "README.txt").write_text("not a class")
    (tmp_path / "cross" / "notes.txt").write_text("not an image")
    return tmp_path


def test_load_image_folder_returns_a_bunch(folder):
    bunch = load_image_folder(folder, size=(6, 10))
    assert bunch.images.shape == (6, 1, 6, 10)
    assert bunch.data.shape == (6, 60)
    assert bunch.images.dtype == np.float32
    assert bunch.target.tolist() == ["cross"] * 3 + ["square"] * 3
    assert bunch.target_names.tolist() == ["cross", "square"]
    assert bunch.filenames[0].endswith("0.png") and "cross" in bunch.filenames[0]
    assert "2 classes" in bunch.DESCR
    X, y = load_image_folder(folder, return_X_y=True)
    assert X.shape == (6, 64) and 0.0 <= X.min() and X.max() == 1.0


def test_folder_classified_from_paths_in_a_pipeline(folder):
    bunch = load_image_folder(folder)
    for paths in (
        list(bunch.filenames),
        pd.Series(bunch.filenames),
        pd.DataFrame({"path": bunch.filenames}),
        bunch.filenames.reshape(-1, 1),
        [Path(p) for p in bunch.filenames],
    ):
        model = make_pipeline(ImageReader(flatten=True), PrototypicalClassifier())
        assert model.fit(paths, bunch.target).score(paths, bunch.target) == 1.0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda root: root / "missing", "No image folder at"),
        (lambda root: root, "holds 0 class folder"),
    ],
)
def test_folder_errors(tmp_path, make, match):
    with pytest.raises((FileNotFoundError, ValueError), match=match):
        load_image_folder(make(tmp_path))


def test_folder_with_an_empty_class_or_one_class(tmp_path):
    _save(tmp_path / "a" / "0.png", _square(255, 0))
    with pytest.raises(ValueError, match=r"holds 1 class folder\(s\), \['a'\]"):
        load_image_folder(tmp_path)
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match=r"class folder '.*b' holds no image file"):
        load_image_folder(tmp_path)


def test_folder_is_bounded(folder):
    with pytest.raises(ValueError, match="more than max_images=4 images"):
        load_image_folder(folder, max_images=4)
    with pytest.raises(
        ValueError, match=r"0\.png' has 8x8 pixels, more than max_pixels=10"
    ):
        load_image_folder(folder, max_pixels=10)


def test_unreadable_files_are_named(tmp_path):
    good = _save(tmp_path / "good.png", _square(255, 0))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "text.png"
    text.write_text("hello")
    for bad in (truncated, text):
        with pytest.raises(ValueError, match=f"Cannot read the image file '{bad}'"):
            ImageReader().transform([good, bad])
    with pytest.raises(FileNotFoundError, match="No image file at '.*nothing.png'"):
        ImageReader().transform([tmp_path / "nothing.png"])


def test_mixed_sizes_need_a_size(tmp_path):
    small = _save(tmp_path / "small.png", _square(255, 0, size=8))
    large = _save(tmp_path / "large.png", _square(255, 0, size=12))
    with pytest.raises(
        ValueError,
        match=r"different sizes.*large.png' is 12x12.*"
        r"set size=\(height, width\)",
    ):
        ImageReader().transform([small, large])
    assert ImageReader(size=10).transform([small, large]).shape == (2, 1, 10, 10)


def test_modes_16_bit_palette_rgba_and_grey_agree(tmp_path):
    grey = _square(200, 0)
    files = [
        _save(tmp_path / "grey.png", grey),
        _save(tmp_path / "rgb.png", np.repeat(grey[:, :, None], 3, axis=2)),
        _save(
            tmp_path / "rgba.png",
            np.dstack([grey, grey, grey, np.full_like(grey, 255)]),
        ),
        _save(tmp_path / "sixteen.png", grey.astype(np.uint16) * 257),
    ]
    palette = tmp_path / "palette.png"
    Image.fromarray(grey).convert("P").save(palette)
    files.append(palette)
    assert Image.open(files[3]).mode.startswith("I")
    assert Image.open(palette).mode == "P"
    images = ImageReader().transform(files)
    np.testing.assert_allclose(
        images, np.broadcast_to(grey / 255.0, images.shape), atol=1 / 255
    )
    rgb = ImageReader(color_mode="rgb").transform(files)
    assert rgb.shape == (5, 3, 8, 8)
    np.testing.assert_allclose(rgb[:, 0], rgb[:, 2], atol=1 / 255)


def test_exif_rotation_is_applied(tmp_path):
    image = np.zeros((8, 16), dtype=np.uint8)
    image[:, :4] = 255  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, exif=exif, quality=95)
    (read,) = ImageReader().transform([path])[:, 0]
    assert read.shape == (16, 8)
    assert read[:4].mean() > 0.9 and read[-4:].mean() < 0.1  # white on top


def test_in_memory_images_and_layouts():
    grey = np.random.RandomState(0).rand(4, 6, 5).astype(np.float32)
    reader = ImageReader()
    np.testing.assert_allclose(reader.transform(grey)[:, 0], grey, rtol=1e-6)
    np.testing.assert_allclose(reader.transform(grey[:, None])[:, 0], grey, rtol=1e-6)
    np.testing.assert_allclose(reader.transform(grey[..., None])[:, 0], grey, rtol=1e-6)
    as_uint8 = (grey * 255).astype(np.uint8)
    pil = [Image.fromarray(image) for image in as_uint8]
    np.testing.assert_allclose(reader.transform(pil), reader.transform(as_uint8))
    flat = ImageReader(flatten=True, value_range=(-1, 1)).transform(grey)
    np.testing.assert_allclose(flat, grey.reshape(4, -1) * 2 - 1, rtol=1e-5)
    with pytest.raises(ValueError, match="Cannot tell the image layout"):
        reader.transform(np.zeros((2, 3, 5, 3)))
    with pytest.raises(ValueError, match="Float images must hold values in"):
        reader.transform(grey * 255)
    with pytest.raises(ValueError, match="other than uint8 and uint16 must hold"):
        reader.transform((grey * 255).astype(np.int64))
    with pytest.raises(ValueError, match="got a single str; wrap it in a list"):
        reader.transform("image.png")
    with pytest.raises(ValueError, match="one column of paths"):
        reader.transform(pd.DataFrame({"a": ["x"], "b": ["y"]}))


def test_polarity_inverts_dark_on_light_images():
    ink_on_paper = _square(0, 255)[None]  # black square on white
    strokes = _square(255, 0)[None]
    light = ImageReader(polarity="light-on-dark").transform(
        np.concatenate([ink_on_paper, strokes])
    )
    np.testing.assert_allclose(light[0], light[1])
    assert light[0, 0, 0, 0] == 0.0  # the background is dark


def test_reader_is_stateless_and_caches_only_when_asked(tmp_path):
    path = _save(tmp_path / "a.png", _square(255, 0))
    reader = ImageReader()
    first = reader.fit_transform([path])
    _save(path, _square(128, 0))
    assert reader.transform([path]).max() == pytest.approx(128 / 255)
    cached = ImageReader(memory=str(tmp_path / "cache"))
    assert cached.transform([path]).max() == pytest.approx(128 / 255)
    assert any((tmp_path / "cache").rglob("*"))
    _save(path, _square(255, 0))  # a new modification time: read again
    assert cached.transform([path]).max() == 1.0
    assert first.max() == 1.0


def test_parallel_reading_matches_sequential(folder):
    files = sorted(str(p) for p in folder.rglob("*.png"))
    np.testing.assert_array_equal(
        ImageReader(n_jobs=2, size=5).transform(files),
        ImageReader(n_jobs=1, size=5).transform(files),
    )


def test_jpeg_bytes_in_memory_are_not_paths():
    buffer = io.BytesIO()
    Image.fromarray(_square(255, 0)).save(buffer, format="PNG")
    with pytest.raises(TypeError, match="Cannot read a bytes as an image"):
        ImageReader().transform([buffer.getvalue()])


# -- background, contrast and noise: images as they come --------------------


def _photo(seed=0, size=40, paper=0.8, shading=0.3, ink=0.35, noise=0.03):
    """A dark bar printed faintly on grey, unevenly lit, noisy paper."""
    rng = np.random.RandomState(seed)
    ramp = np.linspace(-0.5, 0.5, size)[None, :]
    image = np.broadcast_to(paper - shading * ramp, (size, size)).copy()
    image[8:32, 18:23] *= 1 - ink
    image += rng.normal(0, noise, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def _stroke_and_paper(image):
    return image[0, 8:20, 13:15].mean(), np.delete(image[0], np.s_[4:24], 1).mean()


def test_from_encoder_brings_photos_to_the_contract():
    encoder = load_pretrained("omniglot-conv4-robust")
    reader = ImageReader.from_encoder(encoder)
    assert (reader.background, reader.contrast, reader.denoise) == ("uneven", 99.5, 3)
    photos = np.stack([_photo(seed) for seed in range(4)])
    images = reader.fit_transform(photos)
    stroke, paper = _stroke_and_paper(images[0])
    assert stroke > 0.9 and paper < 0.03
    as_read = ImageReader.from_encoder(
        encoder, background=None, contrast=None, denoise=None
    ).fit_transform(photos)
    stroke, paper = _stroke_and_paper(as_read[0])
    assert stroke < 0.6 and paper > 0.15
    # What the reader makes meets the contract; what it read does not.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PrototypicalClassifier(encoder).fit(images, [0, 1, 0, 1])
    with pytest.warns(InputContractWarning, match="background up to"):
        PrototypicalClassifier(encoder).fit(as_read, [0, 1, 0, 1])


def test_each_step_can_be_turned_off():
    photo = _photo()[None]
    base = {"size": 28, "polarity": "light-on-dark"}
    flat = ImageReader(**base, background="flat").transform(photo)[0, 0]
    uneven = ImageReader(**base, background="uneven").transform(photo)[0, 0]
    # Shading: one level per image leaves one side grey, a surface does not.
    assert flat[:, -3:].mean() > 0.08 and uneven[:, -3:].mean() < 0.03
    assert abs(uneven[:, :3].mean() - uneven[:, -3:].mean()) < 0.02
    faint = uneven[8:20, 13:15].mean()
    stretched = ImageReader(**base, background="uneven", contrast=99.5).transform(photo)
    assert faint < 0.5 < 0.9 < stretched[0, 0, 8:20, 13:15].mean()
    noisy = ImageReader(**base, background="uneven").transform(photo)
    clean = ImageReader(**base, background="uneven", denoise=3).transform(photo)
    background = np.s_[0, 0, :, :6]
    assert clean[background].std() < 0.6 * noisy[background].std()
    with pytest.raises(ValueError, match="denoise must be an odd window size"):
        ImageReader(denoise=4).transform(photo)


def test_denoising_leaves_clean_images_alone():
    """A median filter erodes thin strokes: clean images are not filtered."""
    thin = np.zeros((1, 28, 28), np.float32)
    thin[0, 4:24, 14] = 1.0  # one pixel wide, no noise
    np.testing.assert_array_equal(ImageReader(denoise=3).transform(thin)[0], thin)
    noisy = thin + np.random.RandomState(0).uniform(0, 0.1, thin.shape)
    noisy = noisy.clip(0, 1).astype(np.float32)
    assert not np.array_equal(ImageReader(denoise=3).transform(noisy)[0], noisy)


def test_normalisation_keeps_each_images_polarity_without_one():
    ink_on_paper = _photo()[None]
    out = ImageReader(size=28, background="uneven", contrast=99.5).transform(
        ink_on_paper
    )[0, 0]
    assert out[:, :4].mean() > 0.97 and out[8:20, 13:15].mean() < 0.1
    blank = np.full((1, 8, 8), 0.4, np.float32)  # no strokes: nothing to stretch
    np.testing.assert_allclose(
        ImageReader(background="flat", contrast=99.5).transform(blank), 0.0
    )


def test_from_encoder_follows_the_contract_fields():
    module = Conv4((1, 28, 28), hidden_channels=4, n_blocks=1)
    assert ImageReader.from_encoder(module).background is None  # no polarity
    module.input_contract = InputContract(
        (1, 28, 28), (0, 1), "light-on-dark", background=None, contrast="full"
    )
    reader = ImageReader.from_encoder(module)
    assert (reader.background, reader.denoise, reader.contrast) == (None, None, 99.5)
    reader = ImageReader.from_encoder(load_pretrained(), denoise=None)
    assert (reader.background, reader.denoise) == ("uneven", None)


def test_load_image_folder_normalises_like_the_reader(tmp_path):
    for c, column in (("a", 10), ("b", 25)):
        for i in range(2):
            image = (255 * _photo(seed=i)).astype(np.uint8)
            _save(tmp_path / c / f"{i}.png", np.roll(image, column - 20, axis=1))
    bunch = load_image_folder(
        tmp_path,
        size=28,
        polarity="light-on-dark",
        background="uneven",
        contrast=99.5,
        denoise=3,
    )
    reader = ImageReader(
        size=28, polarity="light-on-dark", background="uneven", contrast=99.5, denoise=3
    )
    np.testing.assert_array_equal(bunch.images, reader.transform(bunch.filenames))
    assert "background='uneven'" in bunch.DESCR and bunch.images.max() == 1.0
    from_reader = load_image_folder(tmp_path, reader=reader)
    np.testing.assert_array_equal(from_reader.images, bunch.images)
    assert not hasattr(reader, "n_features_in_")  # a clone read them
    with pytest.raises(ValueError, match=r"not both: got a reader and \['size'\]"):
        load_image_folder(tmp_path, size=28, reader=reader)


# -- a transformer like any other --------------------------------------------


def test_nan_and_inf_are_refused_in_fit_and_transform():
    images = np.random.RandomState(0).rand(3, 5, 5)
    for bad in (np.nan, np.inf):
        broken = images.copy()
        broken[1, 2, 2] = bad
        for method in (ImageReader().fit, ImageReader().transform):
            with pytest.raises(ValueError, match="NaN or infinity"):
                method(broken)


def test_input_range_and_rows_of_pixels():
    grey = np.random.RandomState(0).rand(3, 4, 6).astype(np.float32)
    scaled = ImageReader(input_range=(0, 255)).transform(grey * 255)
    np.testing.assert_allclose(scaled, ImageReader().transform(grey), rtol=1e-5)
    twelve_bit = (grey * 4095).astype(np.int32)
    assert ImageReader(input_range=(0, 4095)).transform(twelve_bit).max() <= 1.0
    raw = ImageReader(input_range=None).transform(grey * 7 - 3)
    np.testing.assert_allclose(raw[:, 0], grey * 7 - 3, rtol=1e-5)
    rows = grey.reshape(3, -1)  # 2-D numbers: rows of pixels
    reader = ImageReader(flatten=True).fit(rows)
    np.testing.assert_array_equal(reader.transform(rows), rows)
    assert reader.n_features_in_ == 24 and reader.image_size_ == (1, 24)
    with pytest.raises(ValueError, match="X has 5 features, but ImageReader is"):
        reader.transform(rows[:, :5])
    with pytest.raises(ValueError, match="Reshape your data"):
        ImageReader().transform(rows[0])
    with pytest.raises(TypeError, match="sparse data are not images"):
        ImageReader().fit(sp.csr_matrix(rows))


def test_feature_names_and_pandas_output_in_a_pipeline():
    encoder = load_pretrained("omniglot-conv4-robust")
    images = np.zeros((4, 40, 40), np.uint8)
    for i in range(4):
        images[i, 5:35, 8 + 8 * i : 12 + 8 * i] = 255  # a bar per class
    y = [0, 1, 2, 3]
    reader = ImageReader.from_encoder(encoder, flatten=True)
    names = reader.get_feature_names_out()
    assert (
        len(names) == 784
        and names[0] == "pixel_0_0_0"
        and names[-1] == ("pixel_0_27_27")
    )
    frame = reader.set_output(transform="pandas").fit_transform(images)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(names)
    model = make_pipeline(
        ImageReader.from_encoder(encoder, flatten=True), PrototypicalClassifier(encoder)
    ).set_output(transform="pandas")
    assert model.fit(images, y).score(images, y) == 1.0
    with pytest.raises(ValueError, match="set flatten=True"):
        ImageReader(size=28).get_feature_names_out()
    with pytest.raises(ValueError, match="before it knows the image size"):
        ImageReader(flatten=True).get_feature_names_out()
    fitted = ImageReader(flatten=True).fit(images)
    assert len(fitted.get_feature_names_out()) == 1600
