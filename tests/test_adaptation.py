"""Input contracts, embedding normalisation and support-set adaptation."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _common import digits_read_28  # benchmarks/, on the path by conftest.py
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from torch import nn

from sklearn_protonet import PrototypicalClassifier, pretrained
from sklearn_protonet.contracts import (
    InputContract,
    InputContractWarning,
    get_input_contract,
)
from sklearn_protonet.datasets._omniglot import INPUT_CONTRACT
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.modules import MLP, Conv4
from sklearn_protonet.persistence import load_classifier, save_classifier
from sklearn_protonet.preprocessing import ImageReader
from sklearn_protonet.pretrained import load_pretrained

SHAPE = (1, 12, 12)


def _images(n_classes=3, shot=2, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Bright bars at class-specific rows on black, slightly jittered."""
    rng = np.random.RandomState(seed)
    X = np.zeros((n_classes * shot, *SHAPE), dtype=np.float32)
    y = np.repeat(np.arange(n_classes), shot)
    for i, c in enumerate(y):
        row = 2 + 3 * c + rng.randint(0, 2)
        X[i, 0, row : row + 2, 2:-2] = 1.0
    return X + 0.05 * rng.rand(*X.shape).astype(np.float32), y


def _conv4(seed=0) -> Conv4:
    torch.manual_seed(seed)
    return Conv4(SHAPE, hidden_channels=8, n_blocks=2)


def _state(module: nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


# -- contracts ---------------------------------------------------------------


def test_contract_round_trips_and_validates():
    contract = InputContract((1, 28, 28), (0, 1), "light-on-dark")
    assert InputContract.from_dict(contract.to_dict()) == contract
    with pytest.raises(ValueError, match="polarity must be one of"):
        InputContract(polarity="dark")
    with pytest.raises(ValueError, match="low < high"):
        InputContract(value_range=(1, 0))
    with pytest.raises(ValueError, match="unknown input contract fields"):
        InputContract.from_dict({"size": 3})


def test_a_conv4_states_its_shape_and_a_module_its_contract():
    assert get_input_contract(_conv4()) == InputContract(shape=SHAPE)
    assert get_input_contract(MLP()) is None
    module = MLP()
    module.input_contract = InputContract(value_range=(0, 1))
    assert get_input_contract(module).value_range == (0.0, 1.0)


def _contracted() -> Conv4:
    module = _conv4()
    module.input_contract = InputContract(SHAPE, (0.0, 1.0), "light-on-dark")
    return module


@pytest.mark.parametrize(
    "transform, match",
    [
        (
            lambda X: 1.0 - X,
            r"look dark-on-light.*ImageReader\(polarity='light-on-dark'\)",
        ),
        (
            lambda X: 255 * X,
            r"values span \[.*\] but the encoder expects \[0, 1\].*255",
        ),
    ],
)
def test_support_sets_breaking_the_contract_warn(transform, match):
    X, y = _images()
    with pytest.warns(InputContractWarning, match=match):
        PrototypicalClassifier(_contracted()).fit(transform(X), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PrototypicalClassifier(_contracted()).fit(X, y)


def test_wrong_image_size_names_the_contract_and_the_fix():
    X, y = _images()
    with pytest.raises(
        ValueError,
        match=r"takes images of shape \(1, 12, 12\).*"
        r"ImageReader.from_encoder",
    ):
        PrototypicalClassifier(_contracted()).fit(X[:, :, :10, :10], y)


def test_image_arrays_of_every_unambiguous_layout_agree():
    X, y = _images()
    module = _conv4()
    expected = PrototypicalClassifier(module).fit(X, y).prototypes_
    for layout in (X[:, 0], X.reshape(len(X), -1)):
        np.testing.assert_allclose(
            PrototypicalClassifier(module).fit(layout, y).prototypes_,
            expected,
            rtol=1e-5,
        )


def test_reader_takes_its_settings_from_the_encoder(tmp_path):
    X, y = _images()
    module = _contracted()
    paths = []
    for i, image in enumerate(X[:, 0]):
        paths.append(tmp_path / f"{i}.png")
        # Dark ink on white paper, at twice the size: the reader fixes both.
        Image.fromarray((255 * (1 - image.clip(0, 1))).astype(np.uint8)).resize(
            (24, 24)
        ).save(paths[-1])
    reader = ImageReader.from_encoder(module)
    assert reader.get_params()["size"] == (12, 12)
    model = make_pipeline(reader, PrototypicalClassifier(module))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no contract warning
        assert model.fit(paths, y).score(paths, y) == 1.0
    with pytest.raises(ValueError, match="states no input contract"):
        ImageReader.from_encoder(MLP())


# -- normalisation -----------------------------------------------------------


def test_normalisations_apply_alike_to_prototypes_and_queries():
    X, y = np.random.RandomState(0).rand(20, 5) + 3, np.repeat([0, 1], 10)
    l2 = PrototypicalClassifier(normalization="l2").fit(X, y)
    np.testing.assert_allclose(np.linalg.norm(l2.transform(X), axis=1), 1.0)
    cl2n = PrototypicalClassifier(normalization="cl2n").fit(X, y)
    np.testing.assert_allclose(cl2n.embedding_mean_, X.mean(axis=0))
    centred = X - X.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(cl2n.transform(X), unit)
    np.testing.assert_allclose(cl2n.prototypes_[1], unit[10:].mean(axis=0))
    distances = ((unit[:, None] - cl2n.prototypes_[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(cl2n.predict(X), distances.argmin(1))
    assert PrototypicalClassifier().fit(X, y).embedding_mean_ is None
    keep = np.tile(np.r_[np.ones(5), np.zeros(5)], 2)
    weighted = PrototypicalClassifier(normalization="cl2n").fit(
        X, y, sample_weight=keep
    )
    np.testing.assert_allclose(weighted.embedding_mean_, X[keep == 1].mean(axis=0))


# -- adaptation --------------------------------------------------------------


def test_adaptation_never_touches_the_users_encoder():
    X, y = _images()
    module = _conv4().train()
    before = _state(module)
    model = PrototypicalClassifier(module, fine_tune_steps=3, random_state=0).fit(X, y)
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert module.training and all(p.requires_grad for p in module.parameters())
    assert model.encoder_ is not module
    assert not any(p.requires_grad for p in model.encoder_.parameters())


def test_adaptation_is_deterministic_and_one_shot_works():
    X, y = _images(shot=1)
    fits = [
        PrototypicalClassifier(_conv4(), fine_tune_steps=3, random_state=seed).fit(X, y)
        for seed in (0, 0, 1)
    ]
    np.testing.assert_array_equal(fits[0].prototypes_, fits[1].prototypes_)
    assert not np.array_equal(fits[0].prototypes_, fits[2].prototypes_)
    frozen = PrototypicalClassifier(_conv4()).fit(X, y)
    assert not np.allclose(frozen.prototypes_, fits[0].prototypes_)


@pytest.mark.parametrize("augmentation", ["shift", "affine"])
def test_each_augmentation_is_deterministic_and_changes_the_adaptation(augmentation):
    X, y = _images(shot=1)

    def fit(seed):
        return PrototypicalClassifier(
            _conv4(),
            fine_tune_steps=3,
            fine_tune_augmentation=augmentation,
            random_state=seed,
        ).fit(X, y)

    first, again = fit(0), fit(0)
    np.testing.assert_array_equal(first.prototypes_, again.prototypes_)
    other = PrototypicalClassifier(
        _conv4(),
        fine_tune_steps=3,
        fine_tune_augmentation={"shift": "affine", "affine": "shift"}[augmentation],
        random_state=0,
    ).fit(X, y)
    assert not np.allclose(first.prototypes_, other.prototypes_)


def test_unknown_augmentation_names_the_parameter():
    X, y = _images()
    with pytest.raises(ValueError, match="fine_tune_augmentation"):
        PrototypicalClassifier(_conv4(), fine_tune_augmentation="flip").fit(X, y)


def test_adaptation_trains_only_the_last_layers_and_reestimates_batchnorm():
    X, y = _images()
    module = _conv4()
    adapted = (
        PrototypicalClassifier(
            module,
            fine_tune_steps=2,
            fine_tune_layers=2,
            fine_tune_lr=0.1,
            random_state=0,
        )
        .fit(X, y)
        .encoder_
    )
    first, last = module.encoder[0], module.encoder[-1]
    new_first, new_last = adapted.encoder[0], adapted.encoder[-1]
    assert torch.equal(first[0].weight, new_first[0].weight)  # conv 1 frozen
    assert not torch.equal(first[1].running_mean, new_first[1].running_mean)
    assert not torch.equal(last[0].weight, new_last[0].weight)  # conv 2 trained
    all_layers = (
        PrototypicalClassifier(
            module,
            fine_tune_steps=2,
            fine_tune_layers=None,
            fine_tune_lr=0.1,
            random_state=0,
        )
        .fit(X, y)
        .encoder_
    )
    assert not torch.equal(first[0].weight, all_layers.encoder[0][0].weight)


def test_adaptation_uses_a_bounded_subset_of_large_support_sets(monkeypatch):
    from sklearn_protonet import adaptation

    seen = []
    monkeypatch.setattr(adaptation, "MAX_IMAGES", 5)
    monkeypatch.setattr(
        adaptation, "class_prototypes", lambda e, c, k: seen.append(len(e)) or e[:k]
    )
    X, y = _images(n_classes=3, shot=4)
    PrototypicalClassifier(_conv4(), fine_tune_steps=2, random_state=0).fit(X, y)
    assert seen == [5, 5]


def test_adaptation_needs_a_module_and_images():
    X, y = _images()
    with pytest.raises(ValueError, match="needs a torch module encoder"):
        PrototypicalClassifier(fine_tune_steps=1).fit(X.reshape(len(X), -1), y)
    with pytest.raises(ValueError, match=r"not images and the encoder states no input"):
        PrototypicalClassifier(MLP(in_features=144), fine_tune_steps=1).fit(
            X.reshape(len(X), -1), y
        )


class _BackboneWithHead(nn.Module):
    """A stand-in for a torchvision classifier: features, pooling, head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 1000)

    def forward(self, X):
        return self.fc(torch.flatten(self.pool(self.features(X)), 1))


def test_any_backbone_with_its_head_removed_on_rgb_images():
    torch.manual_seed(0)
    backbone = _BackboneWithHead()
    backbone.fc = nn.Identity()  # as for torchvision's resnet18().fc
    rgb = np.random.RandomState(0).rand(6, 3, 20, 30).astype(np.float32)
    X = ImageReader(color_mode="rgb", size=(16, 16)).fit_transform(rgb)
    y = np.repeat([0, 1, 2], 2)
    frozen = PrototypicalClassifier(backbone).fit(X, y)
    assert frozen.transform(X).shape == (6, 8)
    adapted = PrototypicalClassifier(
        backbone, fine_tune_steps=2, fine_tune_layers=None, random_state=0
    ).fit(X, y)
    assert adapted.predict(X).shape == (6,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_adaptation_on_cuda():
    X, y = _images()
    module = _conv4().to("cuda")
    model = PrototypicalClassifier(
        module, device="cuda", fine_tune_steps=2, random_state=0
    ).fit(X, y)
    assert next(model.encoder_.parameters()).device.type == "cuda"
    assert model.predict(X).shape == (len(X),)


# -- the shipped encoders and persistence --------------------------------------


def test_shipped_encoders_state_omniglots_contract_and_warn():
    encoder = load_pretrained("omniglot-conv4-1shot")
    assert get_input_contract(encoder) == INPUT_CONTRACT
    X = np.zeros((2, 1, 28, 28), np.float32)
    X[:, :, 10:18, 12:16] = 1.0  # a light stroke on black
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PrototypicalClassifier(encoder).fit(X, [0, 1])
    with pytest.warns(InputContractWarning, match="look dark-on-light"):
        PrototypicalClassifier(encoder).fit(1.0 - X, [0, 1])


def test_robust_encoder_transfers_to_digits_where_the_paper_ones_do_not():
    """The shipped robust encoder, meta-trained on degraded characters, beats
    both nearest centroid on pixels and the paper's 1-shot encoder on digits
    upsampled to 28x28 (benchmarks/cross_domain.py, 500 episodes: about 84 %
    against 65 % and 58 %; half-widths here about 3 points)."""
    digits = load_digits()
    X = ImageReader(size=28).fit_transform(digits.images / 16.0)
    y = digits.target
    cv = EpisodicSplit(n_way=10, n_shot=1, n_query=15, n_episodes=20, random_state=0)
    robust = load_pretrained("omniglot-conv4-robust")
    assert get_input_contract(robust) == INPUT_CONTRACT
    paper = load_pretrained("omniglot-conv4-1shot")
    scores = {
        "robust": cross_val_score(PrototypicalClassifier(robust), X, y, cv=cv),
        "paper": cross_val_score(PrototypicalClassifier(paper), X, y, cv=cv),
        "pixels": cross_val_score(
            PrototypicalClassifier(), X.reshape(len(X), -1), y, cv=cv
        ),
    }
    means = {name: values.mean() for name, values in scores.items()}
    assert means["robust"] > max(means["paper"], means["pixels"]) + 0.08, means


def test_adapted_normalised_classifier_round_trips(tmp_path):
    X, y = _images()
    module = _contracted()
    model = PrototypicalClassifier(
        module, normalization="cl2n", fine_tune_steps=2, random_state=3
    ).fit(X, y)
    save_classifier(model, tmp_path / "model.safetensors")
    loaded = load_classifier(tmp_path / "model.safetensors")
    assert loaded.get_params()["fine_tune_steps"] == 2
    assert loaded.fine_tune_augmentation == model.fine_tune_augmentation
    assert loaded.normalization == "cl2n" and loaded.random_state == 3
    np.testing.assert_array_equal(loaded.embedding_mean_, model.embedding_mean_)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert get_input_contract(loaded.encoder_) == module.input_contract


def test_cross_domain_benchmark_writes_its_tables(tmp_path):
    """benchmarks/cross_domain.py end to end on a couple of episodes: every
    column and ablation row scored, the targets line, both files written."""
    import cross_domain  # benchmarks/cross_domain.py

    record = cross_domain.main(
        [
            "--episodes=2",
            "--shots",
            "1",
            "--latency-repeats=1",
            f"--output-dir={tmp_path}",
        ]
    )
    assert set(record["accuracy"]["1"]) == set(cross_domain.COLUMNS)
    markdown = (tmp_path / "cross_domain.md").read_text()
    assert "robust encoder, adapted" in markdown and "Targets for" in markdown
    cross_domain.main(
        ["--ablation", "--episodes=2", "--shots", "1", f"--output-dir={tmp_path}"]
    )
    ablation = json.loads((tmp_path / "cross_domain_ablation.json").read_text())
    assert set(ablation["accuracy"]["1"]) == set(cross_domain.ABLATION)
    printed = cross_domain.main(
        ["--domain=printed", "--episodes=2", "--shots", "1", f"--output-dir={tmp_path}"]
    )
    assert set(printed["accuracy"]["1"]) == set(cross_domain.FROZEN)
    markdown = (tmp_path / "cross_domain_printed.md").read_text()
    assert "on printed symbols" in markdown and "Targets for" not in markdown
    with pytest.raises(SystemExit):  # no adaptation on printed symbols
        cross_domain.main(["--domain=printed", "--columns", "adapted"])
    # Recomputing a column keeps the others, each with its run's date.
    first = printed["column_dates"]
    assert set(first.values()) == {printed["date"]}
    again = cross_domain.main(
        [
            "--domain=printed",
            "--episodes=2",
            "--shots",
            "1",
            "--columns",
            "robust",
            f"--output-dir={tmp_path}",
        ]
    )
    assert again["accuracy"]["1"]["pixels"] == printed["accuracy"]["1"]["pixels"]
    assert again["column_dates"] == {**first, "robust": again["date"]}


def test_cross_domain_dates_columns_of_records_before_column_dates():
    import cross_domain  # benchmarks/cross_domain.py

    accuracy = {"1": dict.fromkeys(["pixels", "robust", "ensemble", "new"])}
    older = {
        "date": "D2",
        "recomputed_columns": ["ensemble"],
        "other_columns_from": "D1",
    }
    dates = cross_domain.column_dates(older, accuracy, ("new",), "D3")
    assert dates == {"pixels": "D1", "robust": "D1", "ensemble": "D2", "new": "D3"}


def test_held_out_domains_scores_as_the_published_benchmarks(monkeypatch, tmp_path):
    """benchmarks/held_out_domains.py embeds each domain once and scores the
    episodes on the embeddings: the same accuracy, episode for episode, as
    cross_domain.py's frozen column fitting on the images; then end to end
    on a couple of episodes (digits standing in for every domain)."""
    import cross_domain  # benchmarks/
    import held_out_domains

    monkeypatch.setitem(held_out_domains.DOMAINS, "digits", ("digits", (10, 15, 4)))
    X, y = digits_read_28()
    robust = load_pretrained("omniglot-conv4-robust")
    ours = held_out_domains.domain_scores(robust, X, y, "digits")
    for shot in (1, 5):
        split = EpisodicSplit(10, shot, 15, n_episodes=4, random_state=shot)
        episodes = [(i, s, q) for i, (s, q) in enumerate(split.split(X, y))]
        rows = cross_domain.run_episodes(X, y, shot, episodes, {}, ("robust",))
        published = 100 * np.mean([row["robust"] for row in rows])
        assert ours[str(shot)]["mean"] == pytest.approx(published, abs=1e-9)
        assert ours[str(shot)]["n"] == 4

    small = (X[:400], y[:400])
    monkeypatch.setattr(
        held_out_domains,
        "domain_images",
        lambda: dict.fromkeys(held_out_domains.DOMAINS, small),
    )
    for domain, (title, _) in list(held_out_domains.DOMAINS.items()):
        monkeypatch.setitem(held_out_domains.DOMAINS, domain, (title, (5, 3, 2)))
    path = tmp_path / "mine.safetensors"
    shipped = Path(pretrained.__file__).parent / "omniglot-conv4-robust.safetensors"
    shutil.copy(shipped, path)
    record = held_out_domains.main(["--encoder", str(path), f"--output-dir={tmp_path}"])
    assert list(record["accuracy"]) == [*held_out_domains.SHIPPED, "mine.safetensors"]
    markdown = (tmp_path / "held_out_domains.md").read_text()
    assert "`mine.safetensors`" in markdown and "--encoder" in markdown
    assert (
        record["accuracy"]["mine.safetensors"]
        == record["accuracy"]["omniglot-conv4-robust"]
    )
