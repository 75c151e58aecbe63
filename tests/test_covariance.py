"""Variance-aware prototypes: shrunk class covariances and Gaussian encoders."""

import numpy as np
import pytest
import torch
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.covariance import (
    GaussianEncoder,
    ShrunkCovariance,
    mahalanobis_distances,
    precision_weighted_prototypes,
)
from sklearn_protonet.distances import episode_logits
from sklearn_protonet.modules import MLP

RNG = np.random.default_rng(0)
# Three classes of 8 points in 4-d, spread differently per dimension.
SCALES = np.array([[1.0, 0.1, 1.0, 1.0], [0.1, 1.0, 1.0, 1.0], [1.0, 1.0, 0.1, 0.1]])
X3 = np.concatenate([RNG.normal(c, s, (8, 4)) for c, s in enumerate(SCALES)])
Y3 = np.repeat([0, 1, 2], 8)


def _precisions(X, y, **params):
    X = torch.as_tensor(X, dtype=torch.float64)
    labels = torch.as_tensor(y)
    means = torch.stack([X[labels == c].mean(0) for c in range(labels.max() + 1)])
    return ShrunkCovariance(**params).precisions(X, labels, means)


@pytest.mark.parametrize("structure", ["diag", "full"])
def test_mahalanobis_distances_match_the_definition(structure):
    queries, prototypes = torch.randn(5, 3, dtype=torch.float64), torch.randn(2, 3)
    prototypes = prototypes.double()
    if structure == "diag":
        precisions = torch.rand(2, 3, dtype=torch.float64) + 0.5
        full = torch.diag_embed(precisions)
    else:
        root = torch.randn(2, 3, 3, dtype=torch.float64)
        full = precisions = root @ root.transpose(1, 2) + torch.eye(3)
    diff = queries[:, None, :] - prototypes[None]
    expected = torch.einsum("nkd,kde,nke->nk", diff, full, diff)
    got = mahalanobis_distances(queries, prototypes, precisions)
    torch.testing.assert_close(got, expected)


def test_one_shot_mahalanobis_is_the_plain_distance():
    """No class has spread at 1-shot: the metric falls back to the identity."""
    X, y = RNG.normal(size=(5, 6)), np.arange(5)
    queries = RNG.normal(size=(20, 6))
    plain = PrototypicalClassifier().fit(X, y)
    for structure in ("diag", "full"):
        clf = PrototypicalClassifier(
            metric="mahalanobis", covariance=ShrunkCovariance(structure)
        ).fit(X, y)
        np.testing.assert_allclose(clf.shrinkage_, 1.0)
        np.testing.assert_allclose(
            clf.predict_proba(queries), plain.predict_proba(queries), atol=1e-9
        )


def test_no_shrinkage_gives_the_class_covariances():
    precisions, shrinkage = _precisions(X3, Y3, shrinkage=0.0, structure="full")
    np.testing.assert_array_equal(shrinkage, 0.0)
    for c in range(3):
        covariance = np.cov(X3[Y3 == c].T)
        np.testing.assert_allclose(np.linalg.inv(precisions[c]), covariance, rtol=1e-6)


def test_full_shrinkage_to_identity_gives_the_mean_variance():
    precisions, _ = _precisions(X3, Y3, shrinkage=1.0, target="identity")
    residuals = X3 - np.stack([X3[Y3 == c].mean(0) for c in Y3])
    mu = (residuals**2).sum() / (len(X3) - 3) / 4
    np.testing.assert_allclose(precisions, 1.0 / mu, rtol=1e-6)


def test_auto_pooled_shrinkage_agrees_with_ledoit_wolf_on_many_samples():
    """One class's covariance towards the scaled identity: Ledoit and Wolf's
    setting, which sets the pooled target."""
    X = RNG.normal(size=(2000, 5)) * [1.0, 2.0, 0.5, 1.0, 3.0]
    precisions, _ = _precisions(X, np.zeros(len(X), dtype=int), shrinkage=1.0)
    variances = X.var(0, ddof=1)
    mu = variances.mean()
    beta = (1.0 / precisions[0].numpy() - variances) / (mu - variances)
    np.testing.assert_allclose(beta, ledoit_wolf_shrinkage(X), atol=0.01)


def test_auto_class_shrinkage_counts_the_target_as_d_examples():
    y = np.repeat([0, 1], [3, 9])
    _, shrinkage = _precisions(RNG.normal(size=(12, 4)), y)
    np.testing.assert_allclose(shrinkage, [4 / (4 + 2), 4 / (4 + 8)])


def test_two_shot_full_precisions_stay_finite():
    """Two examples give a rank-one class covariance; shrinkage keeps it usable."""
    X, y = RNG.normal(size=(6, 8)), np.repeat([0, 1, 2], 2)
    for structure in ("diag", "full"):
        precisions, _ = _precisions(X, y, structure=structure)
        assert np.isfinite(precisions.numpy()).all()
        clf = PrototypicalClassifier(
            metric="mahalanobis", covariance=ShrunkCovariance(structure)
        )
        assert clf.fit(X, y).score(X, y) == 1.0


def test_mahalanobis_learns_per_class_spread():
    """Diagonal class variances separate what the means alone do not."""
    X_test = np.concatenate([RNG.normal(c, s, (200, 4)) for c, s in enumerate(SCALES)])
    y_test = np.repeat([0, 1, 2], 200)
    X = np.concatenate([RNG.normal(c, s, (30, 4)) for c, s in enumerate(SCALES)])
    y = np.repeat([0, 1, 2], 30)
    plain = PrototypicalClassifier().fit(X, y).score(X_test, y_test)
    maha = PrototypicalClassifier(metric="mahalanobis").fit(X, y).score(X_test, y_test)
    qda = QuadraticDiscriminantAnalysis(reg_param=0.1).fit(X, y).score(X_test, y_test)
    assert maha > plain + 0.02
    assert abs(maha - qda) < 0.1


def test_sample_weights_count_as_repeated_rows():
    weights = RNG.integers(1, 4, len(X3))
    repeated = np.repeat(np.arange(len(X3)), weights)
    for structure in ("diag", "full"):
        covariance = ShrunkCovariance(structure)
        weighted = PrototypicalClassifier(metric="mahalanobis", covariance=covariance)
        weighted.fit(X3, Y3, sample_weight=weights)
        copied = PrototypicalClassifier(metric="mahalanobis", covariance=covariance)
        copied.fit(X3[repeated], Y3[repeated])
        np.testing.assert_allclose(weighted.precisions_, copied.precisions_)
        np.testing.assert_allclose(weighted.shrinkage_, copied.shrinkage_)


def test_precision_weighted_prototypes():
    embeddings = torch.tensor([[0.0, 0.0], [4.0, 2.0], [1.0, 1.0]])
    precisions = torch.tensor([[1.0, 3.0], [3.0, 1.0], [2.0, 2.0]])
    prototypes, totals = precision_weighted_prototypes(
        embeddings, precisions, torch.tensor([0, 0, 1]), 2
    )
    torch.testing.assert_close(prototypes, torch.tensor([[3.0, 0.5], [1.0, 1.0]]))
    torch.testing.assert_close(totals, torch.tensor([[4.0, 4.0], [2.0, 2.0]]))


@pytest.mark.parametrize("covariance", ["diagonal", "radius"])
def test_gaussian_encoder_starts_as_the_plain_network(covariance):
    torch.manual_seed(0)
    inner = MLP(in_features=6, hidden_sizes=(8,), out_features=4)
    encoder = GaussianEncoder(inner, embedding_dim=4, covariance=covariance)
    X = torch.randn(10, 6)
    out = encoder(X)
    assert out.shape == (10, 8)
    torch.testing.assert_close(out[:, :4], inner(X))
    assert (out[:, 4:] >= 1).all()
    codes = torch.tensor([0, 0, 1, 1, 2, 2])
    target = {"support": codes, "query": torch.zeros(4, dtype=torch.long)}
    logits, _ = episode_logits(out.detach(), target, "gaussian")
    embedded = inner(X).detach()
    means = torch.stack([embedded[:6][codes == c].mean(0) for c in range(3)])
    plain = -torch.cdist(embedded[6:], means).square()
    torch.testing.assert_close(logits.argmax(1), plain.argmax(1))
    torch.testing.assert_close(
        logits, plain * 2 * (1 + np.log(2)), rtol=1e-4, atol=1e-4
    )


def test_gaussian_encoder_rejects_a_wrong_width():
    encoder = GaussianEncoder(MLP(in_features=3, out_features=5), embedding_dim=4)
    with pytest.raises(ValueError, match="set embedding_dim to the encoder's output"):
        encoder(torch.zeros(2, 3))


def test_gaussian_meta_training_learns_and_is_deterministic(digits):
    def train():
        torch.manual_seed(0)
        module = GaussianEncoder(
            MLP(in_features=64, hidden_sizes=(32,), out_features=16), embedding_dim=16
        )
        trainer = EpisodicTrainer(
            module,
            metric="gaussian",
            n_way=5,
            n_shot=2,
            n_query=2,
            episodes_per_epoch=10,
            max_epochs=3,
            train_split=None,
            verbose=0,
            random_state=0,
        )
        return trainer.fit(digits["X_base"], digits["y_base"])

    first, second = train(), train()
    losses = first.history[:, "train_loss"]
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(losses, second.history[:, "train_loss"])
    head = first.module_.head.weight
    assert head.abs().sum() > 0  # the precision head was trained
    clf = PrototypicalClassifier(first, metric="gaussian")
    clf.fit(digits["X_novel"][::10], digits["y_novel"][::10])
    assert clf.prototypes_.shape == (10, 16)
    assert clf.precisions_.shape == (10, 16)
    assert clf.transform(digits["X_novel"][:3]).shape == (3, 32)
    assert clf.score(digits["X_novel"], digits["y_novel"]) > 0.3


def test_gaussian_metric_needs_precision_columns():
    with pytest.raises(ValueError, match="wrap the encoder in .*GaussianEncoder"):
        PrototypicalClassifier(metric="gaussian").fit(np.zeros((4, 3)), [0, 0, 1, 1])


@pytest.mark.parametrize("structure", ["diag", "full"])
def test_save_and_load_keep_the_precisions(tmp_path, structure):
    from sklearn_protonet.persistence import load_classifier, save_classifier

    covariance = ShrunkCovariance(structure, shrinkage=0.4)
    clf = PrototypicalClassifier(metric="mahalanobis", covariance=covariance)
    clf.fit(X3, Y3)
    save_classifier(clf, tmp_path / "clf.safetensors")
    loaded = load_classifier(tmp_path / "clf.safetensors")
    assert loaded.covariance.get_params() == covariance.get_params()
    np.testing.assert_array_equal(loaded.precisions_, clf.precisions_)
    np.testing.assert_array_equal(loaded.shrinkage_, clf.shrinkage_)
    np.testing.assert_array_equal(loaded.predict_proba(X3), clf.predict_proba(X3))
