"""Tests for the Omniglot loader and the data/cache home helpers.

Decoding all 32,460 images takes about 10 s on 2 cores, so this file decodes
them exactly twice: once for a module-wide writable copy of the data home
(every other load of it is a cache hit) and once for the read-only / corrupt
cache test. Loaders always run on temporary copies of the data home, so the
real one is never written to.
"""

from __future__ import annotations

import io
import re
import shutil
import time
import urllib.error
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from sklearn_protonet.datasets import _base, _omniglot, get_data_home, load_omniglot
from sklearn_protonet.datasets._base import get_cache_home

from .conftest import OMNIGLOT_FILES, omniglot_data_home

ZIPS = ("images_background.zip", "images_evaluation.zip")
SPLITS = ("train", "val", "trainval", "test")
REQUIRED = OMNIGLOT_FILES
CACHE_NAME = _omniglot._cache_name(28)


def _copy_home(src: Path, dst: Path) -> Path:
    """Copy only the input files, so the copy starts without any cache."""
    for rel in REQUIRED:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dst / rel)
    return dst


@pytest.fixture(scope="module")
def source_home() -> Path:
    return omniglot_data_home()


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    """An empty cache home for the whole module."""
    path = tmp_path_factory.mktemp("cache_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKLEARN_PROTONET_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def data_home(source_home, cache_home, tmp_path_factory) -> Path:
    return _copy_home(source_home, tmp_path_factory.mktemp("data_home"))


@pytest.fixture(scope="module")
def first_load(data_home):
    """The one load of the module data home that decodes the images."""
    start = time.perf_counter()
    bunch = load_omniglot("train", data_home=data_home)
    return bunch, time.perf_counter() - start


@pytest.fixture(scope="module")
def train(first_load):
    return first_load[0]


@pytest.fixture(scope="module")
def test_set(data_home, first_load):
    return load_omniglot("test", data_home=data_home)


def _no_decode(*args, **kwargs):
    raise AssertionError("decoded the images although a cache was expected")


@pytest.fixture
def no_decode(monkeypatch):
    """Fail if a load decodes the images instead of reading a cache."""

    monkeypatch.setattr(_omniglot, "_decode", _no_decode)


def _reference(source_home: Path, name: str, drawer: int, angle: int) -> np.ndarray:
    """One image computed independently: invert, PIL rotate, BOX resize."""
    for zip_name in ZIPS:
        with zipfile.ZipFile(source_home / "omniglot" / zip_name) as zf:
            prefix = f"{zip_name[:-4]}/{name}/"
            suffix = f"_{drawer:02d}.png"
            members = [
                m for m in zf.namelist() if m.startswith(prefix) and m.endswith(suffix)
            ]
            if not members:
                continue
            (member,) = members
            with Image.open(io.BytesIO(zf.read(member))) as image:
                image = ImageOps.invert(image.convert("L")).rotate(angle)
                return (
                    np.asarray(image.resize((28, 28), Image.Resampling.BOX)) / 255
                ).astype(np.float32)
    raise AssertionError(f"{name} not found")


def _class_block(bunch, name: str) -> np.ndarray:
    (idx,) = np.nonzero(bunch.target == name)
    assert len(idx) == 20 and np.array_equal(idx, np.arange(idx[0], idx[0] + 20))
    return bunch.images[idx]


# --------------------------------------------------------------------- loader


@pytest.mark.parametrize("subset", ["nope", "Train", "", None, 3])
def test_bad_subset(subset, tmp_path):
    with pytest.raises(ValueError, match="subset") as info:
        load_omniglot(subset, data_home=tmp_path)
    for choice in ("train", "val", "trainval", "test", "background", "evaluation"):
        assert repr(choice) in str(info.value)


@pytest.mark.parametrize("image_size", [0, 106, 28.0, True])
def test_bad_image_size(image_size, tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        load_omniglot("train", data_home=tmp_path, image_size=image_size)


def test_missing_data_error(tmp_path):
    home = tmp_path / "no_data_here"
    with pytest.raises(FileNotFoundError) as info:
        load_omniglot("test", data_home=home, download_if_missing=False)
    msg = str(info.value)
    assert isinstance(info.value, OSError)
    assert str(home) in msg
    assert "data_home=" in msg and "SKLEARN_PROTONET_DATA" in msg
    for rel in REQUIRED:
        assert rel in msg
    assert "download_if_missing=False" in msg
    assert not home.exists()  # looking must not create anything


def test_missing_data_uses_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_PROTONET_DATA", str(tmp_path / "from_env"))
    with pytest.raises(FileNotFoundError, match="from_env"):
        load_omniglot("background", download_if_missing=False)


def test_download_failure(tmp_path, monkeypatch):
    def offline(url):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(_base, "_open_url", offline)
    with pytest.raises(FileNotFoundError) as info:
        load_omniglot("train", data_home=tmp_path)
    msg = str(info.value)
    assert "no network" in msg and str(tmp_path) in msg
    assert "https://raw.githubusercontent.com/brendenlake/omniglot" in msg
    assert "SKLEARN_PROTONET_DATA" in msg
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, *args):
            if self.tell() > 0:
                raise ConnectionResetError("connection lost")
            return super().read(4)

    monkeypatch.setattr(_base, "_open_url", lambda url: Broken(b"PK\x03\x04..."))
    with pytest.raises(FileNotFoundError, match="connection lost"):
        load_omniglot("train", data_home=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_atomic_cache_write(tmp_path, monkeypatch):
    def explode(fh, **arrays):
        fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(_omniglot.np, "savez_compressed", explode)
    with pytest.raises(KeyboardInterrupt):
        _omniglot._atomic_write_npz(tmp_path / CACHE_NAME, {"a": np.zeros(3)})
    assert list(tmp_path.iterdir()) == []


def _small_cache(tmp_path):
    """A cache file of the real layout at 1x1 pixels (no data needed)."""
    n_chars = sum(z[2] for z in _omniglot._ZIPS.values())
    rng = np.random.RandomState(0)
    base = {
        "version": np.array(_omniglot._CACHE_VERSION),
        "image_size": np.array(1),
        "source_sha256": np.array("0" * 64),
        "names": np.array([f"Alphabet/character{i:02d}" for i in range(n_chars)]),
        "drawers": np.tile(np.arange(1, 21, dtype=np.uint8), (n_chars, 1)),
        "images": rng.randint(0, 256, (n_chars, 4, 20, 1, 1), dtype=np.uint8),
    }
    base["content_sha256"] = np.array(_omniglot._content_sha256(base))
    path = tmp_path / _omniglot._cache_name(1)
    _omniglot._atomic_write_npz(path, base)
    return path, base


def _rewrite_npz(path, arrays):
    with np.load(path) as npz:
        content = {key: npz[key] for key in npz.files}
    path.unlink()
    np.savez_compressed(path, **{**content, **arrays})


def _one_pixel_off(images):
    images = images.copy()
    images[0, 0, 0, 0, 0] ^= 1
    return images


@pytest.mark.parametrize(
    "tamper",
    [
        lambda base: {"images": 255 - base["images"]},  # inverted pixels
        lambda base: {"images": _one_pixel_off(base["images"])},
        lambda base: {"names": base["names"][::-1].copy()},
        lambda base: {"drawers": base["drawers"][:, ::-1].copy()},
        lambda base: {"content_sha256": np.array("f" * 64)},
    ],
    ids=["inverted", "one-pixel", "names", "drawers", "checksum"],
)
def test_cache_checksum_refuses_an_altered_cache(tmp_path, tamper):
    """The cache carries the SHA-256 of its own content: edits that keep
    every shape and the archives' hash are caught on reading."""
    path, base = _small_cache(tmp_path)
    source = str(base["source_sha256"])
    read = _omniglot._read_cache(path, 1, source)
    np.testing.assert_array_equal(read["images"], base["images"])
    _rewrite_npz(path, tamper(base))
    with pytest.warns(UserWarning, match="does not match its own checksum"):
        assert _omniglot._read_cache(path, 1, source) is None


@pytest.mark.omniglot
@pytest.mark.slow
def test_altered_cache_is_rebuilt_from_the_archives(
    train, data_home, monkeypatch, tmp_path
):
    """Inverted pixels in the cache are not used: the loader decodes again
    (here: returns the pixels it decoded first) and rewrites the cache."""
    cache = data_home / "omniglot" / CACHE_NAME
    with np.load(cache) as npz:
        original = npz["images"]
    _rewrite_npz(cache, {"images": 255 - original})
    decoded = []

    def decode(folder, entries, image_size):
        decoded.append(image_size)
        return original

    monkeypatch.setattr(_omniglot, "_decode", decode)
    with pytest.warns(UserWarning, match="does not match its own checksum"):
        again = load_omniglot("train", data_home=data_home)
    assert decoded == [28]
    np.testing.assert_array_equal(again.data, train.data)
    with np.load(cache) as npz:  # rewritten, with a valid checksum
        np.testing.assert_array_equal(npz["images"], original)
    monkeypatch.setattr(_omniglot, "_decode", _no_decode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_omniglot("train", data_home=data_home)  # a cache hit, no warning


@pytest.mark.omniglot
def test_zip_count_mismatch(source_home, tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_PROTONET_CACHE", str(tmp_path / "cache"))
    home = _copy_home(source_home, tmp_path / "home")
    bad = home / "omniglot" / "images_evaluation.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for drawer in range(1, 21):
            zf.writestr(
                f"images_evaluation/Angelic/character01/0965_{drawer:02d}.png", b""
            )
    with pytest.raises(OSError, match="images_evaluation.zip") as info:
        load_omniglot("evaluation", data_home=home)
    assert "1 alphabets, 1 characters and 20 images" in str(info.value)
    assert "659 characters" in str(info.value)


@pytest.mark.omniglot
def test_split_with_unknown_class(source_home, tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_PROTONET_CACHE", str(tmp_path / "cache"))
    home = _copy_home(source_home, tmp_path / "home")
    split = home / "omniglot" / "splits" / "vinyals" / "val.txt"
    lines = split.read_text().splitlines()
    split.write_text("\n".join(["Klingon/character01/rot000", *lines[1:]]) + "\n")
    # Fails on the split check, before any (slow) decoding.
    with pytest.raises(OSError, match="Klingon/character01/rot000") as info:
        load_omniglot("val", data_home=home)
    assert str(split) in str(info.value)


@pytest.mark.omniglot
@pytest.mark.slow
def test_train(train, first_load, data_home):
    assert train.data.shape == (4112 * 20, 28 * 28)
    assert train.images.shape == (4112 * 20, 28, 28)
    assert train.data.dtype == np.float32 and train.images.dtype == np.float32
    assert np.shares_memory(train.data, train.images)
    np.testing.assert_array_equal(train.data, train.images.reshape(len(train.data), -1))
    assert train.data.min() == 0.0 and train.data.max() == 1.0
    # 8-bit resize: every value is a multiple of 1/255.
    sample = train.data[::97]
    np.testing.assert_allclose(sample * 255, np.round(sample * 255), atol=1e-4)
    # Mostly background: strokes are the minority.
    assert 0.03 < train.data.mean() < 0.3
    assert train.target.shape == (4112 * 20,) and train.target.dtype.kind == "U"
    assert len(train.target_names) == 4112
    assert list(train.target_names) == sorted(set(train.target))
    pattern = re.compile(r"^[^/]+/character\d{2}/rot(000|090|180|270)$")
    assert all(pattern.match(name) for name in train.target_names)
    # Classes in split-file order, 20 images each, contiguous.
    split = (data_home / "omniglot/splits/vinyals/train.txt").read_text().split()
    np.testing.assert_array_equal(train.target, np.repeat(split, 20))
    assert "BOX" in train.DESCR and "train" in train.DESCR
    # The writable data home got the cache.
    assert (data_home / "omniglot" / CACHE_NAME).is_file()
    print(f"first load (decode + cache write): {first_load[1]:.1f} s")


@pytest.mark.omniglot
@pytest.mark.slow
def test_cache_hit(train, first_load, data_home, no_decode):
    start = time.perf_counter()
    again = load_omniglot("train", data_home=data_home)
    elapsed = time.perf_counter() - start
    print(f"cached load: {elapsed:.2f} s")
    assert elapsed < 10
    np.testing.assert_array_equal(again.data, train.data)
    np.testing.assert_array_equal(again.target, train.target)
    np.testing.assert_array_equal(again.target_names, train.target_names)


@pytest.mark.omniglot
@pytest.mark.slow
def test_test_subset(test_set, train):
    assert test_set.data.shape == (1692 * 20, 784)
    assert len(test_set.target_names) == 1692
    chars = {name.rsplit("/", 1)[0] for name in test_set.target_names}
    assert len(chars) == 423
    assert not chars & {name.rsplit("/", 1)[0] for name in train.target_names}


@pytest.mark.omniglot
@pytest.mark.slow
def test_trainval_is_train_then_val(train, data_home, no_decode):
    val = load_omniglot("val", data_home=data_home)
    trainval = load_omniglot("trainval", data_home=data_home)
    assert len(val.target_names) == 688 and len(trainval.target_names) == 4800
    n = len(train.target)
    assert len(trainval.target) == n + len(val.target)
    # Compared in two halves rather than against a 300 MB concatenation.
    np.testing.assert_array_equal(trainval.data[:n], train.data)
    np.testing.assert_array_equal(trainval.data[n:], val.data)
    np.testing.assert_array_equal(trainval.target[:n], train.target)
    np.testing.assert_array_equal(trainval.target[n:], val.target)


@pytest.mark.omniglot
@pytest.mark.slow
def test_lake_subsets(data_home, no_decode):
    pattern = re.compile(r"^[^/]+/character\d{2}$")
    names = {}
    for subset, n_chars, n_alphabets in [
        ("background", 964, 30),
        ("evaluation", 659, 20),
    ]:
        bunch = load_omniglot(subset, data_home=data_home)
        assert bunch.data.shape == (n_chars * 20, 784)
        assert len(bunch.target_names) == n_chars
        assert all(pattern.match(name) for name in bunch.target_names)
        assert len({name.split("/")[0] for name in bunch.target_names}) == n_alphabets
        # Sorted by alphabet then character folder.
        assert list(dict.fromkeys(bunch.target)) == sorted(bunch.target_names)
        names[subset] = set(bunch.target_names)
    assert not names["background"] & names["evaluation"]
    # The Vinyals split uses every one of the 1,623 characters.
    splits = data_home / "omniglot" / "splits" / "vinyals"
    vinyals = {
        line.rsplit("/", 1)[0]
        for split in ("trainval", "test")
        for line in (splits / f"{split}.txt").read_text().split()
    }
    assert len(vinyals) == 1623
    assert vinyals == names["background"] | names["evaluation"]


@pytest.mark.omniglot
@pytest.mark.slow
def test_pixels_and_rotations(train, source_home):
    name = train.target[0].rsplit("/", 1)[0]
    blocks = {
        angle: _class_block(train, f"{name}/rot{angle:03d}")
        for angle in (0, 90, 180, 270)
    }
    for angle, block in blocks.items():
        for drawer in (1, 7, 20):
            expected = _reference(source_home, name, drawer, angle)
            np.testing.assert_array_equal(block[drawer - 1], expected)
    # PIL's rotation of the 105x105 image is exactly np.rot90 (counter-
    # clockwise) ...
    with zipfile.ZipFile(source_home / "omniglot" / ZIPS[1]) as zf:
        member = next(m for m in zf.namelist() if m.endswith(".png"))
        with Image.open(io.BytesIO(zf.read(member))) as image:
            full = ImageOps.invert(image.convert("L"))
            np.testing.assert_array_equal(
                np.asarray(full.rotate(90)), np.rot90(np.asarray(full))
            )
    # ... but Pillow's BOX resize is not mirror-symmetric at 105 -> 28, so
    # the loader rotates before resizing. The resized rot090 images are still
    # np.rot90 (counter-clockwise, not clockwise) of rot000 up to that kernel
    # asymmetry.
    for k, angle in enumerate((90, 180, 270), start=1):
        ccw = np.abs(blocks[angle] - np.rot90(blocks[0], k, axes=(1, 2))).mean()
        cw = np.abs(blocks[angle] - np.rot90(blocks[0], -k, axes=(1, 2))).mean()
        assert ccw < 0.05
        if angle != 180:
            assert ccw < cw / 2


@pytest.mark.omniglot
@pytest.mark.slow
def test_return_X_y(train, data_home, no_decode):
    X, y = load_omniglot("train", data_home=data_home, return_X_y=True)
    np.testing.assert_array_equal(X, train.data)
    np.testing.assert_array_equal(y, train.target)


@pytest.mark.omniglot
@pytest.mark.slow
def test_download(source_home, data_home, first_load, tmp_path, monkeypatch, no_decode):
    """Missing files are fetched from the canonical URLs (no network used)."""
    requested = []

    def fake_open(url):
        requested.append(url)
        if "brendenlake" in url:
            return open(source_home / "omniglot" / url.rsplit("/", 1)[1], "rb")
        return open(
            source_home / "omniglot/splits/vinyals" / url.rsplit("/", 1)[1], "rb"
        )

    monkeypatch.setattr(_base, "_open_url", fake_open)
    home = tmp_path / "new_home"
    (home / "omniglot").mkdir(parents=True)
    # A cache made from the same archives, so that no decoding is needed.
    shutil.copyfile(data_home / "omniglot" / CACHE_NAME, home / "omniglot" / CACHE_NAME)
    val = load_omniglot("val", data_home=home)
    assert len(val.target_names) == 688
    base = "https://raw.githubusercontent.com/"
    assert sorted(requested) == sorted(
        [
            base + "brendenlake/omniglot/master/python/images_background.zip",
            base + "brendenlake/omniglot/master/python/images_evaluation.zip",
            base + "jakesnell/prototypical-networks/master/data/omniglot/splits/"
            "vinyals/val.txt",
        ]
    )
    for rel in REQUIRED[:2] + ["omniglot/splits/vinyals/val.txt"]:
        assert (home / rel).read_bytes() == (source_home / rel).read_bytes()
    assert not [p for p in home.rglob("*.part")]


@pytest.mark.omniglot
@pytest.mark.slow
def test_read_only_home_and_corrupt_cache(source_home, test_set, tmp_path, monkeypatch):
    """Second (and last) decode of this file: corrupt caches are rebuilt, and
    a read-only data home sends the new cache to the cache home."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SKLEARN_PROTONET_CACHE", str(cache))
    home = _copy_home(source_home, tmp_path / "ro_home")
    folder = home / "omniglot"
    (folder / CACHE_NAME).write_bytes(b"PK\x03\x04 truncated")  # corrupt, in home
    (cache / CACHE_NAME).write_bytes(b"not an npz at all")  # corrupt, in cache
    for path in (folder / "splits" / "vinyals", folder / "splits", folder):
        path.chmod(0o555)
    try:
        probe = folder / ".probe"
        try:
            probe.write_bytes(b"")
        except OSError:
            pass  # really read-only
        else:
            # root ignores permission bits: make writes there fail as a
            # read-only folder would.
            probe.unlink()
            real_write = _omniglot._atomic_write_npz

            def write(path, arrays):
                if Path(path).parent == folder:
                    raise PermissionError(13, "Permission denied", str(path))
                real_write(path, arrays)

            monkeypatch.setattr(_omniglot, "_atomic_write_npz", write)

        with pytest.warns(UserWarning, match="unreadable Omniglot cache"):
            rebuilt = load_omniglot("test", data_home=home)
        np.testing.assert_array_equal(rebuilt.data, test_set.data)
        np.testing.assert_array_equal(rebuilt.target, test_set.target)
        assert (folder / CACHE_NAME).read_bytes() == b"PK\x03\x04 truncated"
        with np.load(cache / CACHE_NAME) as npz:
            assert npz["images"].shape == (1623, 4, 20, 28, 28)
        assert sorted(p.name for p in cache.iterdir()) == [CACHE_NAME]

        # Next load reads the cache home, without decoding.
        monkeypatch.setattr(_omniglot, "_decode", _no_decode)
        with pytest.warns(UserWarning, match="unreadable Omniglot cache"):
            again = load_omniglot("test", data_home=home)
        np.testing.assert_array_equal(again.data, test_set.data)
    finally:
        for path in (folder, folder / "splits", folder / "splits" / "vinyals"):
            path.chmod(0o755)


# ------------------------------------------------------------- home helpers


def test_get_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_PROTONET_DATA", str(tmp_path / "env_home"))
    assert get_data_home() == tmp_path / "env_home"
    assert (tmp_path / "env_home").is_dir()
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"
    assert get_data_home(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.delenv("SKLEARN_PROTONET_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert get_data_home() == tmp_path / "user" / "sklearn_protonet_data"
    assert get_data_home("~/elsewhere") == tmp_path / "user" / "elsewhere"
    # A location that cannot be created is returned, not an error.
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert get_data_home(blocker / "sub") == blocker / "sub"


def test_get_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("SKLEARN_PROTONET_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert get_cache_home() == tmp_path / "user" / ".cache" / "sklearn_protonet"
    assert get_cache_home().is_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_cache_home() == tmp_path / "xdg" / "sklearn_protonet"
    monkeypatch.setenv("SKLEARN_PROTONET_CACHE", str(tmp_path / "mine"))
    assert get_cache_home() == tmp_path / "mine"
    assert (tmp_path / "mine").is_dir()
