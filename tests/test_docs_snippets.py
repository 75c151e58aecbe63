"""The documentation's code runs as written.

The own-data guide's snippets run in order, as a reader goes down the page,
in a folder holding ``my_images/`` (Omniglot characters of the shipped
sample saved as dark-on-light PNG files, like scans) and ``resnet18.pth``;
torchvision is replaced by a small stand-in network of the same interface,
so neither it nor a download is needed. The front page leads with the
README's first snippet (run by test_readme.py) and meta-trains on digits.
"""

from __future__ import annotations

import re
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sklearn_protonet.contracts import InputContractWarning
from sklearn_protonet.datasets import load_omniglot_sample

from .test_readme import SNIPPETS as README_SNIPPETS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(page: str) -> list[str]:
    """The ``.. code-block:: python`` blocks of an rst page, dedented."""
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = []
    for body in re.findall(
        r"^\.\. code-block:: python\n\n((?:(?: {3,}.*)?\n)+)", text, re.M
    ):
        lines = body.rstrip("\n").splitlines()
        indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
        blocks.append("\n".join(line[indent:] for line in lines) + "\n")
    return blocks


def _write_folder(root: Path, n_classes: int = 5, shot: int = 4) -> None:
    """``root/<class>/<n>.png``: characters drawn dark on white at 105x105."""
    X, y = load_omniglot_sample(return_X_y=True)
    for label in np.unique(y)[:n_classes]:
        folder = root / label.replace("/", "-")
        folder.mkdir(parents=True)
        for i, pixels in enumerate(X[y == label][:shot]):
            image = Image.fromarray(np.uint8(255 - 255 * pixels.reshape(28, 28)))
            image.resize((105, 105)).save(folder / f"{i:03d}.png")


def _stand_in_torchvision() -> types.ModuleType:
    """torchvision's names the guide uses, on a network small enough for a test."""

    def resnet18():
        net = nn.Sequential(
            nn.Conv2d(3, 8, 7, stride=8), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        net.fc = nn.Linear(8, 1000)  # the head the guide drops; runs last
        return net

    def normalize(mean, std):
        mean, std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
        return _Lambda(lambda X: (X - mean) / std)

    module = types.ModuleType("torchvision")
    module.models = types.SimpleNamespace(resnet18=resnet18)
    module.transforms = types.SimpleNamespace(Normalize=normalize)
    return module


class _Lambda(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, X):
        return self.function(X)


@pytest.mark.slow
def test_own_data_guide_snippets_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_folder(tmp_path / "my_images")
    torchvision = _stand_in_torchvision()
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    torch.save(torchvision.models.resnet18().state_dict(), "resnet18.pth")

    blocks = python_blocks("user_guide/own_data.rst")
    assert len(blocks) >= 5
    assert "import torch\n" in blocks[-1]  # the backbone snippet stands alone
    namespace: dict = {}
    with warnings.catch_warnings():
        # Read as the guide says, the images meet the encoders' contract.
        warnings.simplefilter("error", InputContractWarning)
        for index, block in enumerate(blocks):
            exec(compile(block, f"own_data.rst snippet {index}", "exec"), namespace)
    bunch = namespace["bunch"]
    assert bunch.images.shape == (20, 1, 28, 28)
    # light strokes on a dark background, as the shipped encoders expect
    assert np.median(bunch.images) < 0.5
    # The backbone pipeline fits and predicts on the folder's files.
    model, files = namespace["model"], namespace["files"]
    support = namespace["support"]
    model.fit(files[support], namespace["labels"][support])
    assert model.predict(files).shape == (len(files),)


def test_front_page_leads_with_the_readme_own_images_snippet():
    blocks = python_blocks("index.rst")
    assert blocks[0] == README_SNIPPETS[0]


@pytest.mark.slow
def test_front_page_meta_training_snippet_runs(capsys):
    exec(compile(python_blocks("index.rst")[1], "index.rst snippet 1", "exec"), {})
    accuracy = re.search(r"10-way 5-shot accuracy: ([\d.]+)%", capsys.readouterr().out)
    assert accuracy and float(accuracy.group(1)) > 50
