"""EpisodicTrainer: episodic meta-training with skorch's machinery."""

import copy

import numpy as np
import pytest
import torch
from skorch.callbacks import Checkpoint, EarlyStopping, ProgressBar
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from sklearn_protonet import (
    ClassSplit,
    EpisodicTrainer,
    PrototypicalClassifier,
    paper_lr_schedule,
)
from sklearn_protonet.episodes import EpisodeDataset
from sklearn_protonet.model_selection import EpisodicSplit, episodic_score
from sklearn_protonet.modules import MLP, Conv4

from .conftest import tiny_trainer


def test_history_records_episodic_train_and_validation_scores(digits):
    trainer = tiny_trainer(train_split=ClassSplit(0.3, random_state=0), n_way=3)
    trainer.fit(digits["X_base"], digits["y_base"])
    for key in ["train_loss", "train_acc", "valid_loss", "valid_acc", "dur"]:
        assert len(trainer.history[:, key]) == trainer.max_epochs
    assert all(0 <= acc <= 1 for acc in trainer.history[:, "valid_acc"])
    # Each epoch is episodes_per_epoch episodes of n_way * (n_shot + n_query).
    batches = trainer.history[-1, "batches"]
    train_sizes = [b["train_batch_size"] for b in batches if "train_batch_size" in b]
    assert train_sizes == [3 * (2 + 2)] * trainer.episodes_per_epoch


def test_class_split_holds_out_whole_classes():
    X = torch.zeros(40, 2)
    codes = np.repeat(np.arange(10), 4)
    train, valid = ClassSplit(0.3, random_state=0)(
        EpisodeDataset(X, codes, np.arange(10))
    )
    assert len(valid.classes) == 3 and len(train.classes) == 7
    assert not set(train.classes) & set(valid.classes)
    assert len(train) + len(valid) == 40


def test_meta_training_learns_an_embedding_where_classes_cluster(digits):
    """Episodes on unseen samples of the base classes: the meta-trained encoder
    beats its own untrained initialisation by a wide margin. (Transfer to new
    classes is tested on Omniglot, where it is the point of the benchmark.)"""
    X, y = digits["X_base"], digits["y_base"]
    train = np.arange(len(y)) % 2 == 0
    cv = EpisodicSplit(5, 1, 10, n_episodes=100, random_state=0)
    params = dict(n_way=10, n_shot=5, n_query=5, episodes_per_epoch=50)
    untrained = tiny_trainer(**params, max_epochs=0).fit(X[train], y[train])
    trained = tiny_trainer(**params, max_epochs=4).fit(X[train], y[train])
    before, _ = episodic_score(
        PrototypicalClassifier(untrained), X[~train], y[~train], cv
    )
    after, half = episodic_score(
        PrototypicalClassifier(trained), X[~train], y[~train], cv
    )
    # Measured: 0.67 untrained against 0.95 trained (half-widths <= 0.02).
    assert after > before + 0.1, (before, after, half)


def test_nca_loss_learns_and_keeps_the_episodes(digits):
    """episode_loss="nca" trains on the same episodes (same sizes in the
    history) and learns an embedding where unseen samples cluster."""
    X, y = digits["X_base"], digits["y_base"]
    train = np.arange(len(y)) % 2 == 0
    cv = EpisodicSplit(5, 1, 10, n_episodes=100, random_state=0)
    params = dict(n_way=10, n_shot=1, n_query=2, episodes_per_epoch=50)
    untrained = tiny_trainer(**params, max_epochs=0).fit(X[train], y[train])
    nca = tiny_trainer(**params, max_epochs=4, episode_loss="nca")
    nca.fit(X[train], y[train])
    sizes = {b["train_batch_size"] for b in nca.history[-1, "batches"]}
    assert sizes == {10 * 3}
    before, _ = episodic_score(
        PrototypicalClassifier(untrained), X[~train], y[~train], cv
    )
    after, half = episodic_score(PrototypicalClassifier(nca), X[~train], y[~train], cv)
    assert after > before + 0.1, (before, after, half)
    # Another loss, another run from the same seed.
    prototypical = tiny_trainer(**params, max_epochs=1).fit(X[train], y[train])
    assert prototypical.history[0, "train_loss"] != nca.history[0, "train_loss"]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nca_loss_trains_with_every_pair_metric(digits, metric):
    # Each row's distance to itself (0) is in the matrix the loss reads: its
    # gradient must stay finite (sqrt's at 0 is not).
    trainer = tiny_trainer(
        n_way=5, n_shot=1, n_query=1, max_epochs=1, episode_loss="nca", metric=metric
    )
    trainer.fit(digits["X_base"], digits["y_base"])
    assert np.isfinite(trainer.history[:, "train_loss"]).all()


def test_same_random_state_same_run(digits):
    X, y = digits["X_base"], digits["y_base"]
    first = tiny_trainer(random_state=3, train_split=ClassSplit(0.3, random_state=0))
    second = tiny_trainer(random_state=3, train_split=ClassSplit(0.3, random_state=0))
    first.fit(X, y)
    second.fit(X, y)
    assert first.history[:, "train_loss"] == second.history[:, "train_loss"]
    assert first.history[:, "valid_acc"] == second.history[:, "valid_acc"]
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    other = tiny_trainer(random_state=4).fit(X, y)
    assert other.history[:, "train_loss"] != first.history[:, "train_loss"]


def test_transform_shape_and_eval_mode(fitted_trainer, digits):
    embeddings = fitted_trainer.transform(digits["X_novel"])
    assert embeddings.shape == (len(digits["X_novel"]), 16)
    np.testing.assert_array_equal(
        embeddings, fitted_trainer.transform(digits["X_novel"])
    )


def test_conv4_embeds_28x28_images_to_64_dimensions():
    assert Conv4()(torch.zeros(3, 784)).shape == (3, 64)
    assert Conv4((1, 8, 8), n_blocks=3)(torch.zeros(2, 1, 8, 8)).shape == (2, 64)
    with pytest.raises(ValueError, match="input_shape"):
        Conv4()(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="n_blocks"):
        Conv4((1, 8, 8))


def test_progress_bar_checkpoint_and_early_stopping(digits, tmp_path):
    checkpoint = Checkpoint(monitor="valid_acc_best", dirname=str(tmp_path))
    stopper = EarlyStopping(
        monitor="valid_acc", lower_is_better=False, patience=2, threshold=10.0
    )
    trainer = tiny_trainer(
        max_epochs=10,
        train_split=ClassSplit(0.3, random_state=0),
        callbacks=[ProgressBar(), checkpoint, stopper],
    ).fit(digits["X_base"], digits["y_base"])
    # An impossible threshold: stops after the patience runs out.
    assert len(trainer.history) == 3
    assert (tmp_path / "params.pt").exists()
    restored = tiny_trainer(train_split=ClassSplit(0.3, random_state=0)).initialize()
    restored.load_params(checkpoint=checkpoint)
    best_epoch = int(np.argmax(trainer.history[:, "valid_acc"]))
    assert trainer.history[best_epoch, "valid_acc_best"]


def test_paper_lr_schedule_halves_per_episode_count(digits):
    trainer = tiny_trainer(
        episodes_per_epoch=4, max_epochs=3, callbacks=[paper_lr_schedule(step_size=5)]
    ).fit(digits["X_base"], digits["y_base"])
    # 12 episodes, halved after episodes 5 and 10.
    assert trainer.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 / 4)


def test_predefined_validation_classes(digits):
    valid = Dataset(digits["X_novel"], digits["y_novel"])
    trainer = tiny_trainer(train_split=predefined_split(valid), valid_n_way=5)
    trainer.fit(digits["X_base"], digits["y_base"])
    assert len(trainer.history[:, "valid_acc"]) == trainer.max_epochs


def test_lazy_mlp_trains_and_keyboard_interrupt_keeps_weights(digits):
    class Interrupt(EarlyStopping):
        def on_epoch_end(self, net, **kwargs):
            raise KeyboardInterrupt

    trainer = tiny_trainer(module=MLP, max_epochs=5, callbacks=[Interrupt()])
    trainer.fit(digits["X_base"], digits["y_base"])
    assert len(trainer.history) == 1
    assert trainer.transform(digits["X_novel"][:3]).shape == (3, 16)


def test_partial_fit_continues_the_history(digits):
    trainer = tiny_trainer().fit(digits["X_base"], digits["y_base"])
    trainer.partial_fit(digits["X_base"], digits["y_base"])
    assert len(trainer.history) == 2 * trainer.max_epochs


def test_trainer_is_no_classifier(fitted_trainer, digits):
    # Hidden (hasattr is False), with a pointer to the classifier as cause.
    assert not hasattr(fitted_trainer, "predict")
    with pytest.raises(AttributeError) as info:
        fitted_trainer.predict(digits["X_novel"])
    assert "PrototypicalClassifier" in str(info.value.__cause__)


def test_string_and_integer_labels(digits):
    X = digits["X_base"]
    codes = np.unique(digits["y_base"], return_inverse=True)[1]
    by_name = tiny_trainer().fit(X, digits["y_base"])
    by_code = tiny_trainer().fit(X, codes)
    assert by_name.history[:, "train_loss"] == by_code.history[:, "train_loss"]
    assert isinstance(by_name, EpisodicTrainer)


def test_bfloat16_mixed_precision_training(digits):
    trainer = tiny_trainer(autocast_dtype="bfloat16").fit(
        digits["X_base"], digits["y_base"]
    )
    assert all(np.isfinite(trainer.history[:, "train_loss"]))
    embeddings = trainer.transform(digits["X_novel"][:5])
    assert embeddings.dtype == np.float32
    assert next(trainer.module_.parameters()).dtype == torch.float32


def test_unknown_autocast_dtype(digits):
    with pytest.raises(
        ValueError, match="The 'autocast_dtype' parameter of EpisodicTrainer"
    ):
        tiny_trainer(autocast_dtype="int8").fit(digits["X_base"], digits["y_base"])


def test_conv4_memory_layout_does_not_change_results():
    torch.manual_seed(0)
    fast = Conv4().eval()
    plain = Conv4(channels_last=False).eval()
    plain.load_state_dict(fast.state_dict())
    X = torch.rand(4, 784)
    torch.testing.assert_close(fast(X), plain(X), rtol=1e-4, atol=1e-5)


def test_conv4_pools_before_relu_exactly_as_the_papers_block():
    # The paper's block is conv, BatchNorm, ReLU, max-pool; Conv4 pools first
    # (faster). Outputs and gradients must be those of the paper's order.
    torch.manual_seed(0)
    ours = Conv4(channels_last=False)
    papers = copy.deepcopy(ours)
    for block in papers.encoder:
        block[2], block[3] = nn.ReLU(), nn.MaxPool2d(2)
    assert [type(m) for m in papers.encoder[0]] == [
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.ReLU,
        nn.MaxPool2d,
    ]
    X = (torch.rand(32, 784) > 0.8).float()
    ours(X).square().sum().backward()
    papers(X).square().sum().backward()
    torch.testing.assert_close(ours(X), papers(X), rtol=0, atol=0)
    for mine, theirs in zip(ours.parameters(), papers.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=0, atol=0)


def _window_means(trainer, window: int) -> list[float]:
    losses = [
        b["train_loss"]
        for r in trainer.history
        for b in r["batches"]
        if "train_loss" in b
    ]
    return [np.mean(losses[i - window : i]) for i in range(window, len(losses) + 1)]


def test_a_diverged_finite_loss_stops_training(digits):
    """lr=1e4 drives the loss to 1e20 and beyond, finite: stopped, naming the
    epoch and the learning rate, as a non-finite loss is."""
    lr = 1e4
    params = dict(lr=lr, n_way=5, episodes_per_epoch=20, max_epochs=2)
    with pytest.raises(FloatingPointError) as info:
        tiny_trainer(**params).fit(digits["X_base"], digits["y_base"])
    message = str(info.value)
    assert f"lr={lr}" in message and "Meta-training diverged: at epoch 1" in message
    assert "callbacks__divergence_check=None" in message
    # Without the check, fit returns a diverged encoder (finite losses).
    unchecked = tiny_trainer(**params, callbacks__divergence_check=None)
    unchecked.fit(digits["X_base"], digits["y_base"])
    assert np.isfinite(unchecked.history[:, "train_loss"]).all()
    assert (
        max(_window_means(unchecked, 20))
        > 1e15 * unchecked.history[0, "batches", 0, "train_loss"]
    )


@pytest.mark.parametrize("n_way, n_shot", [(5, 5), (3, 1)])
def test_divergence_rule_leaves_a_margin_to_healthy_runs(digits, n_way, n_shot):
    """At ten times the paper's rate the 20-episode mean loss stays ten times
    below the rule's threshold (measured: at most 1.7 times the start)."""
    trainer = tiny_trainer(
        lr=1e-2,
        n_way=n_way,
        n_shot=n_shot,
        n_query=5,
        episodes_per_epoch=20,
        max_epochs=5,
    ).fit(digits["X_base"], digits["y_base"])
    check = dict(trainer.callbacks_)["divergence_check"]
    reference = max(trainer.history[0, "batches", 0, "train_loss"], np.log(n_way))
    assert max(_window_means(trainer, check.window)) < check.factor / 10 * reference


def test_divergence_check_starts_from_the_history_and_can_be_tuned(digits):
    X, y = digits["X_base"], digits["y_base"]
    trainer = tiny_trainer(n_way=5, episodes_per_epoch=10, max_epochs=1).fit(X, y)
    # A partial_fit at a diverging rate compares with the first fit's start.
    trainer.set_params(lr=1e4, max_epochs=3, callbacks__divergence_check__window=5)
    with pytest.raises(FloatingPointError, match="the last 5 episodes"):
        trainer.partial_fit(X, y)
    with pytest.raises(ValueError, match="DivergenceCheck's factor must be"):
        tiny_trainer(callbacks__divergence_check__factor=0.5).fit(X, y)
