"""The Omniglot sample shipped in the package: content, origin, packaging."""

import fnmatch
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from sklearn_protonet.datasets import load_omniglot_sample

ROOT = Path(__file__).resolve().parents[1]


def test_sample_is_100_characters_of_20_drawings():
    sample = load_omniglot_sample()
    assert sample.images.shape == (2000, 28, 28)
    assert sample.data.shape == (2000, 784) and sample.data.dtype == np.float32
    assert np.shares_memory(sample.data, sample.images)
    names, counts = np.unique(sample.target, return_counts=True)
    assert len(names) == 100 and set(counts) == {20}
    np.testing.assert_array_equal(sample.target_names, names)
    # Strokes 1.0 on 0.0, in steps of 1/255 like load_omniglot's images.
    assert sample.data.min() == 0.0 and sample.data.max() == 1.0
    np.testing.assert_allclose(sample.data * 255, np.rint(sample.data * 255), atol=1e-4)
    assert all(name.count("/") == 1 for name in names)  # Alphabet/characterNN
    X, y = load_omniglot_sample(return_X_y=True)
    np.testing.assert_array_equal(X, sample.data)
    np.testing.assert_array_equal(y, sample.target)


def test_licence_and_attribution_ship_with_the_sample():
    folder = resources.files("sklearn_protonet.datasets")
    licence = (folder / "data" / "OMNIGLOT_LICENSE.txt").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Copyright (c) 2015 Brenden Lake" in licence
    descr = load_omniglot_sample().DESCR
    assert "MIT licence" in descr and "Lake, Salakhutdinov and Tenenbaum" in descr


def test_package_data_entries_cover_the_shipped_files():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["sklearn_protonet"]
    package = ROOT / "sklearn_protonet"
    for path in [*package.glob("datasets/data/*"), *package.glob("datasets/descr/*")]:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


@pytest.mark.omniglot
def test_sample_is_unseen_test_characters_exactly_as_loaded(omniglot):
    sample = load_omniglot_sample()
    trained = {name.rsplit("/", 1)[0] for name in np.unique(omniglot["y_train"])}
    assert not trained & set(sample.target_names)
    for name in sample.target_names[::10]:
        rows = omniglot["y_test"] == f"{name}/rot000"
        np.testing.assert_array_equal(
            sample.data[sample.target == name], omniglot["X_test"][rows]
        )
