"""Real meta-training on Omniglot, and the shipped pretrained encoder."""

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import omniglot  # noqa: E402  (the module, for its recipes)
import pytest
import torch
from omniglot import (  # benchmarks/omniglot.py, the experiment
    PAPER,
    PROFILES,
    ModelRecipe,
    TrainingProfile,
    evaluate_omniglot,
    train_omniglot,
)
from omniglot import main as omniglot_main
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.contracts import get_input_contract
from sklearn_protonet.datasets._omniglot import INPUT_CONTRACT
from sklearn_protonet.model_selection import EpisodicSplit, mean_confidence_interval
from sklearn_protonet.modules import Conv4
from sklearn_protonet.persistence import FORMAT, load_encoder, save_encoder
from sklearn_protonet.pretrained import list_pretrained, load_pretrained

pytestmark = [pytest.mark.omniglot, pytest.mark.slow]


@pytest.fixture(scope="module")
def short_run(omniglot):
    """100 episodes of 20-way 5-shot: about 30 s on 2 cores."""
    recipe = ModelRecipe(n_shot=5, n_episodes=100, n_way=20, halve_every=10_000)
    return train_omniglot(
        omniglot["X_train"], omniglot["y_train"], recipe, progress=False
    )


def test_short_meta_training_learns_to_classify_new_characters(short_run, omniglot):
    X, y = omniglot["X_test"], omniglot["y_test"]
    cv = EpisodicSplit(5, 5, 15, n_episodes=100, random_state=0)
    trained = cross_val_score(PrototypicalClassifier(short_run), X, y, cv=cv)
    pixels = cross_val_score(PrototypicalClassifier(), X, y, cv=cv)
    # Measured on test characters (never seen in training), 100 episodes:
    # raw pixels ~ 0.74, after 100 training episodes ~ 0.95 (half-widths
    # < 0.01 and ~0.02). 0.90 is far above anything pixels or an untrained
    # network reach, and far enough below the measured value not to flake.
    assert trained.mean() > 0.90, (trained.mean(), pixels.mean())
    assert trained.mean() > pixels.mean() + 0.1


def test_evaluation_on_embeddings_equals_refitting_on_pixels(short_run, omniglot):
    """evaluate_omniglot embeds the test set once; the episodes give the same
    scores as the plain cross_val_score protocol on pixels."""
    X, y = omniglot["X_test"], omniglot["y_test"]
    n = 30
    fast = evaluate_omniglot(short_run, X, y, n_episodes=n, random_state=0)
    cv = EpisodicSplit(5, 1, 15, n_episodes=n, random_state=0)
    plain = mean_confidence_interval(
        cross_val_score(PrototypicalClassifier(short_run), X, y, cv=cv)
    )
    assert fast["5-way 1-shot"]["accuracy"] == pytest.approx(100 * plain[0], abs=0.01)


@pytest.mark.parametrize(
    ("name", "shot"),
    [
        ("omniglot-conv4-1shot", 1),
        ("omniglot-conv4-5shot", 5),
        ("omniglot-conv4-robust", 1),
        ("omniglot-conv4-symbols", 1),
    ],
)
def test_pretrained_encoder_reaches_its_documented_accuracy(omniglot, name, shot):
    assert name in list_pretrained()
    encoder = load_pretrained(name)
    info = encoder.estimator.pretrained_info_
    assert info["training_shot"] == shot
    documented = info["results"][f"5-way {shot}-shot"]
    X, y = omniglot["X_test"], omniglot["y_test"]
    embeddings = encoder.transform(X)
    cv = EpisodicSplit(5, shot, 15, n_episodes=200, random_state=123)
    mean, half = mean_confidence_interval(
        cross_val_score(PrototypicalClassifier(), embeddings, y, cv=cv)
    )
    # Not significantly below the documented (1,000-episode) figure.
    assert 100 * (mean + half) >= documented["accuracy"], (mean, half, documented)
    # Frozen: cloning keeps it, fitting does nothing.
    assert clone(encoder) is encoder


def test_ensemble_is_the_shipped_members_side_by_side(omniglot):
    """omniglot-conv4-ensemble: the members it names, joined with the weights
    it records, and its documented 20-way 1-shot accuracy."""
    encoder = load_pretrained("omniglot-conv4-ensemble")
    info = encoder.estimator.pretrained_info_
    members = [load_pretrained(name).estimator.module_ for name in info["members"]]
    joined = Conv4.side_by_side(members, info["member_weights"]).eval()
    X, y = omniglot["X_test"], omniglot["y_test"]
    with torch.no_grad():
        expected = joined(torch.from_numpy(X[:300])).numpy()
    np.testing.assert_allclose(encoder.transform(X[:300]), expected, atol=1e-5)
    assert get_input_contract(encoder) == INPUT_CONTRACT
    documented = info["results"]["20-way 1-shot"]
    cv = EpisodicSplit(20, 1, 15, n_episodes=200, random_state=123)
    mean, half = mean_confidence_interval(
        cross_val_score(PrototypicalClassifier(), encoder.transform(X), y, cv=cv)
    )
    assert 100 * (mean + half) >= documented["accuracy"], (mean, half, documented)


def test_one_encoder_is_the_paper_encoder_beside_two_trained_members(omniglot):
    """omniglot-conv4-one-encoder (the own-images default): the shipped
    paper's encoder, scaled by its recorded factor, beside the two members the
    one-encoder profile trains; Omniglot's input contract; its documented
    accuracy, not significantly below on 200 episodes of two cells."""
    encoder = load_pretrained("omniglot-conv4-one-encoder")
    info = encoder.estimator.pretrained_info_
    assert info["profile"] == "one-encoder"
    assert info["members"] == [
        "omniglot-conv4-1shot",
        "1-shot augmented",
        "1-shot augmented + conditions",
    ]
    assert encoder.estimator.module_.groups == 3
    assert get_input_contract(encoder) == INPUT_CONTRACT
    X, y = omniglot["X_test"], omniglot["y_test"]
    embedded = encoder.transform(X)
    paper = load_pretrained("omniglot-conv4-1shot").transform(X[:300])
    np.testing.assert_allclose(
        embedded[:300, :64], info["member_weights"][0] * paper, rtol=1e-4, atol=1e-5
    )
    for n_way, shot in ((20, 1), (5, 5)):
        documented = info["results"][f"{n_way}-way {shot}-shot"]
        cv = EpisodicSplit(n_way, shot, 15, n_episodes=200, random_state=123)
        mean, half = mean_confidence_interval(
            cross_val_score(PrototypicalClassifier(), embedded, y, cv=cv)
        )
        assert 100 * (mean + half) >= documented["accuracy"], (mean, half, documented)


def test_one_encoder_beats_the_robust_encoder_on_digits():
    """On digits no training image resembles, the own-images default scores
    above omniglot-conv4-robust (the target of an encoder for every symbol
    domain), frozen, on the same 10-way 1-shot episodes."""
    from _common import digits_read_28  # benchmarks/_common.py

    X, y = digits_read_28()
    cv = EpisodicSplit(10, 1, 15, n_episodes=200, random_state=7)
    scores = {
        name: cross_val_score(
            PrototypicalClassifier(), load_pretrained(name).transform(X), y, cv=cv
        )
        for name in ("omniglot-conv4-one-encoder", "omniglot-conv4-robust")
    }
    gain, half = mean_confidence_interval(
        scores["omniglot-conv4-one-encoder"] - scores["omniglot-conv4-robust"]
    )
    assert gain - half > 0, (gain, half)


def test_ensemble_script_rebuilds_the_shipped_file(omniglot, tmp_path):
    """benchmarks/ensemble.py from the shipped members: its table, and a file
    equal tensor for tensor to the shipped one (the weights are seeded). The
    script reads Omniglot from the data home the fixture checked."""
    import ensemble  # benchmarks/ensemble.py

    record = ensemble.main(
        ["--episodes=5", f"--output-dir={tmp_path}", f"--save-weights={tmp_path}"]
    )
    assert set(record["members"]) == set(ensemble.MEMBERS)
    assert "omniglot-conv4-ensemble" in (tmp_path / "omniglot-ensemble.md").read_text()
    shipped = load_pretrained("omniglot-conv4-ensemble").estimator.module_
    rebuilt = load_encoder(tmp_path / "omniglot-conv4-ensemble.safetensors")
    for name, tensor in rebuilt.estimator.module_.state_dict().items():
        assert torch.equal(tensor, shipped.state_dict()[name]), name


def test_save_and_load_encoder_round_trip(short_run, omniglot, tmp_path):
    path = tmp_path / "encoder.safetensors"
    save_encoder(short_run, path, metadata={"note": "test"})
    loaded = load_encoder(path)
    X = omniglot["X_test"][:50]
    np.testing.assert_array_equal(loaded.transform(X), short_run.transform(X))
    assert loaded.estimator.pretrained_info_ == {"note": "test"}


def test_loading_a_tampered_or_foreign_file_fails_cleanly(short_run, tmp_path):
    good = tmp_path / "good.safetensors"
    save_encoder(short_run, good)
    data = bytearray(good.read_bytes())
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(data[:8]) + b"{not json" + bytes(data[17:]))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_encoder(tampered)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_encoder(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(ValueError, match="not a sklearn-protonet encoder file"):
        load_encoder(foreign)
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"x": 1}, pickled)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_encoder(pickled)
    wrong_shapes = tmp_path / "wrong.safetensors"
    with safe_open(str(good), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == FORMAT and metadata["content"] == "encoder"
    save_file(
        {"module.encoder.0.0.weight": torch.zeros(2)}, str(wrong_shapes), metadata
    )
    # The description (4 blocks) is checked against the one tensor in the file.
    with pytest.raises(ValueError, match="is a damaged encoder file: field"):
        load_encoder(wrong_shapes)
    classifier_file = tmp_path / "classifier.safetensors"
    save_file(
        {"prototypes": torch.zeros(2)},
        str(classifier_file),
        {**metadata, "content": "classifier"},
    )
    with pytest.raises(ValueError, match="not a sklearn-protonet encoder file"):
        load_encoder(classifier_file)


def _run_experiment(monkeypatch, profile, omniglot, output, weights) -> None:
    """benchmarks/omniglot.py with ``profile`` (in PROFILES for the run)."""
    monkeypatch.setitem(PROFILES, profile.name, profile)
    monkeypatch.setenv("SKLEARN_PROTONET_CACHE", omniglot["cache"])
    omniglot_main(
        [
            f"--profile={profile.name}",
            f"--data-home={omniglot['home']}",
            f"--output-dir={output}",
            f"--save-weights={weights}",
            "--no-progress",
            "--default-malloc",  # leave this test process's malloc alone
        ]
    )


def test_experiment_trains_one_encoder_per_shot_side_by_side(
    monkeypatch, omniglot, tmp_path, capsys
):
    """The reproduction end to end on a tiny budget: two encoders in two
    processes, each scoring the cells of its own shot, results and weights
    written."""
    recipes = tuple(
        ModelRecipe(n_shot=shot, n_episodes=10, n_way=10, halve_every=5)
        for shot in (1, 5)
    )
    profile = TrainingProfile("tiny", recipes, n_test_episodes=20, n_jobs=2)
    _run_experiment(monkeypatch, profile, omniglot, tmp_path, tmp_path / "weights")
    assert "10 1-shot, 10 5-shot" in capsys.readouterr().out
    record = json.loads((tmp_path / "omniglot-tiny.json").read_text())
    assert record["models"]["1-shot"]["cells"] == ["5-way 1-shot", "20-way 1-shot"]
    assert record["models"]["5-shot"]["cells"] == ["5-way 5-shot", "20-way 5-shot"]
    assert record["models"]["5-shot"]["episodes_trained"] == 10
    assert (tmp_path / "omniglot-tiny.md").read_text().count("|") > 20
    for shot in (1, 5):
        encoder = load_encoder(
            tmp_path / "weights" / f"omniglot-conv4-{shot}shot.safetensors"
        )
        info = encoder.estimator.pretrained_info_
        assert info["training_shot"] == shot and info["episodes_trained"] == 10
        assert set(info["results"]) == set(record["models"][f"{shot}-shot"]["cells"])
        cell = f"5-way {shot}-shot"
        assert info["results"][cell] == record["results"][cell]


def test_robust_profile_saves_the_encoder_without_its_augmentation(
    monkeypatch, omniglot, tmp_path
):
    """The robust profile meta-trains behind the augmentation layers and
    saves the Conv4 alone, under the name load_pretrained knows."""
    recipe = replace(
        PROFILES["robust"].models[0], n_episodes=10, n_way=10, warmup_episodes=2
    )
    profile = replace(PROFILES["robust"], models=(recipe,), n_test_episodes=20)
    _run_experiment(monkeypatch, profile, omniglot, tmp_path, tmp_path)
    encoder = load_encoder(tmp_path / "omniglot-conv4-robust.safetensors")
    module = encoder.estimator.module_
    assert type(module).__name__ == "Conv4"
    assert get_input_contract(encoder) == INPUT_CONTRACT
    assert encoder.estimator.pretrained_info_["episodes_trained"] == 10
    record = json.loads((tmp_path / "omniglot-robust.json").read_text())
    assert record["profile"]["models"][0]["augment"] is True


def test_members_of_one_recipe_get_labels_of_their_own():
    """Labels key the results: a recipe trained twice is numbered."""
    twice = omniglot.PROFILES["ten-minutes-pair"].models
    assert omniglot.member_labels(twice) == ["1-shot", "1-shot (2)"]
    cpu = omniglot.PROFILES["cpu"].models
    assert omniglot.member_labels(cpu) == ["1-shot", "5-shot"]
    one = omniglot.PROFILES["one-encoder"].models
    assert omniglot.member_labels(one) == [
        "1-shot augmented",
        "1-shot augmented + conditions",
    ]


def _budget_rates(monkeypatch, seconds_per_episode: float, n_steps: int):
    """The rates CosineOverBudget(1,000 episodes, 2 of warm-up, 1 minute)
    sets over ``n_steps`` episodes of a clock moving that fast."""
    clock = [0.0]
    monkeypatch.setattr(omniglot.time, "perf_counter", lambda: clock[0])
    schedule = omniglot.CosineOverBudget(1000, 2, minutes=1, floor=0.01)
    net = SimpleNamespace(lr=0.01, optimizer_=SimpleNamespace(param_groups=[{}]))
    schedule.on_train_begin(net)
    rates = []
    for _ in range(n_steps):
        schedule.on_batch_begin(net, training=True)
        rates.append(net.optimizer_.param_groups[0]["lr"])
        clock[0] += seconds_per_episode
    return rates


def test_budget_schedule_decays_over_whichever_budget_ends_first(monkeypatch):
    """A slow machine (1 s an episode: the minute ends after 60 episodes)
    and a fast one (the 1,000 episodes end first) both warm up, pass half
    the rate half-way and end at the floor."""
    slow = _budget_rates(monkeypatch, 1.0, 61)
    assert slow[:2] == pytest.approx([0.005, 0.01])
    assert slow[31] == pytest.approx(0.01 * (0.01 + 0.99 * 0.5))  # 29 of 58 s
    assert slow[60] == pytest.approx(0.0001)
    fast = _budget_rates(monkeypatch, 0.0, 1001)
    assert fast[:2] == pytest.approx([0.005, 0.01])
    assert fast[501] == pytest.approx(0.01 * (0.01 + 0.99 * 0.5))  # 499 of 998
    assert fast[1000] == pytest.approx(0.0001)


def test_budget_schedule_needs_a_time_limit():
    recipe = replace(PROFILES["one-encoder"].models[0], max_minutes=None)
    with pytest.raises(ValueError, match="give the recipe max_minutes"):
        omniglot.lr_schedule(recipe)


def test_joining_names_what_it_cannot_scale_by():
    X = np.zeros((4, 1, 28, 28), dtype=np.float32)
    with pytest.raises(ValueError, match="scaling='spread' is not one of"):
        omniglot.join_side_by_side([Conv4()], X, 0, scaling="spread")
    with pytest.raises(ValueError, match="needs the labels y"):
        omniglot.join_side_by_side([Conv4()], X, 0, scaling="within-class")


def test_one_encoder_profile_joins_the_shipped_encoder_with_its_member(
    monkeypatch, omniglot, tmp_path
):
    """The one-encoder profile takes the paper's shipped encoder as it is,
    trains its members on degraded characters (one also in photographs'
    conditions), side by side, and saves the three side by side: one file
    scoring every cell, naming its members and their factors, each member's
    part of the embedding scaled to a root-mean-square distance of 1 to its
    class mean on training images, the first part the shipped encoder's
    embedding."""
    members = tuple(
        replace(recipe, n_episodes=10, n_way=10, warmup_episodes=2)
        for recipe in PROFILES["one-encoder"].models
    )
    profile = replace(PROFILES["one-encoder"], models=members, n_test_episodes=20)
    _run_experiment(monkeypatch, profile, omniglot, tmp_path, tmp_path)
    record = json.loads((tmp_path / "omniglot-one-encoder.json").read_text())
    trained = ["1-shot augmented", "1-shot augmented + conditions"]
    assert list(record["models"]) == trained
    for label in trained:
        assert record["models"][label]["cells"] == list(PAPER)
        assert record["models"][label]["episodes_trained"] == 10
    assert record["profile"]["models"][1]["conditions"] is True
    encoder = load_encoder(tmp_path / "omniglot-conv4-one-encoder.safetensors")
    info = encoder.estimator.pretrained_info_
    assert info["members"] == ["omniglot-conv4-1shot", *trained]
    assert info["member_weights"] == record["member_weights"]
    assert info["results"] == record["results"]
    assert get_input_contract(encoder) == INPUT_CONTRACT
    module = encoder.estimator.module_
    assert type(module).__name__ == "Conv4" and module.groups == 3
    assert info["member_scaling"] == "within-class"
    X, y = omniglot["X_train"][:2000], omniglot["y_train"][:2000]
    parts = encoder.transform(X).reshape(2000, 3, 64)
    _, codes = np.unique(y, return_inverse=True)
    means = np.stack([parts[codes == c].mean(0) for c in range(codes.max() + 1)])
    spread = np.sqrt(np.mean(np.sum((parts - means[codes]) ** 2, axis=2), axis=0))
    np.testing.assert_allclose(spread, 1.0, rtol=0.15)
    paper = load_pretrained("omniglot-conv4-1shot").transform(X)
    np.testing.assert_allclose(
        parts[:, 0], record["member_weights"][0] * paper, rtol=1e-4, atol=1e-5
    )


def test_ten_minutes_profile_trains_with_the_all_pairs_loss(
    monkeypatch, omniglot, tmp_path
):
    """The ten-minutes profile's recipe reaches the trainer with its loss
    and episodes (90-way, two images a class) and is recorded with them."""
    built = []

    def recording(*args, **kwargs):
        trainer = EpisodicTrainer(*args, **kwargs)
        built.append(trainer)
        return trainer

    # (The fixture named omniglot hides the module: patch it by name.)
    monkeypatch.setattr("omniglot.EpisodicTrainer", recording)
    recipe = replace(
        PROFILES["ten-minutes"].models[0], n_episodes=10, warmup_episodes=2
    )
    profile = replace(PROFILES["ten-minutes"], models=(recipe,), n_test_episodes=20)
    _run_experiment(monkeypatch, profile, omniglot, tmp_path, tmp_path)
    (trainer,) = built
    assert trainer.episode_loss == "nca"
    assert (trainer.n_way, trainer.n_shot, trainer.n_query) == (90, 1, 1)
    assert trainer.history[-1, "batches"][-1]["train_batch_size"] == 180
    record = json.loads((tmp_path / "omniglot-ten-minutes.json").read_text())
    assert record["profile"]["models"][0]["episode_loss"] == "nca"


@pytest.mark.parametrize(
    "recipe",
    [
        omniglot.PROFILES["symbols"].models[0],
        replace(omniglot.FAST_RECIPE, resize_to=(20, 20)),
        replace(omniglot.FAST_RECIPE, augment=True, resize_to=(20, 20)),
    ],
)
def test_recipes_built_before_the_trainer_start_from_their_seed(recipe):
    """Augmented and resizing recipes build their module before the trainer:
    its initial weights come from the seed, not torch's global generator."""
    torch.manual_seed(1)
    first = omniglot.recipe_module(recipe, random_state=0)
    torch.manual_seed(2)
    again = omniglot.recipe_module(recipe, random_state=0)
    other = omniglot.recipe_module(recipe, random_state=1)
    weights = [list(m.state_dict().values()) for m in (first, again, other)]
    assert all(map(torch.equal, weights[0], weights[1]))
    assert not all(map(torch.equal, weights[0], weights[2]))
    # Training small: a Resized layer, then a Conv4 of that size.
    size = recipe.resize_to or (28, 28)
    assert first[-1].input_shape == (1, *size)
    assert first(torch.rand(3, 784)).shape == (3, 64)
    assert isinstance(first[-2], omniglot.Resized) == (recipe.resize_to is not None)
    assert omniglot.recipe_module(omniglot.FAST_RECIPE, 0) is omniglot.Conv4


def test_recipes_that_train_small_are_not_saved(tmp_path):
    """Their Conv4 alone expects the resized images: a file of it would
    carry Omniglot's 28x28 input contract, so save_weights refuses."""
    recipe = replace(omniglot.FAST_RECIPE, resize_to=(20, 20))
    profile = omniglot.TrainingProfile("small", models=(recipe,))
    with pytest.raises(ValueError, match="train without resize_to"):
        omniglot.save_weights(profile, [None], {}, {}, tmp_path)
    assert not any(tmp_path.iterdir())
