"""Semi-supervised refinement (sklearn_protonet.refinement): soft k-means, its
mask, and the guarded default's reach and coverage checks."""

import numpy as np
import pytest
import torch

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet._support import as_prototypes, class_sums
from sklearn_protonet.distances import pairwise_distances
from sklearn_protonet.refinement import REFINEMENTS, _guard, _squared, soft_kmeans

METRICS = ["sqeuclidean", "euclidean", "cosine"]


def _blobs(seed=0, n_unlabeled=20):
    """Two classes whose one labeled example each is off-centre."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0]])
    X_labeled = centres + np.array([[1.5, 1.5], [-1.5, -1.5]])
    codes = rng.integers(0, 2, n_unlabeled)
    X_unlabeled = centres[codes] + 0.5 * rng.normal(size=(n_unlabeled, 2))
    return centres, X_labeled, X_unlabeled


def _clusters(n_classes=5, per_class=8, seed=0, dim=6, spread=0.6):
    """Well separated classes: centres, one off-centre labeled example each,
    and ``per_class`` unlabeled rows of each."""
    rng = np.random.default_rng(seed)
    centres = 6 * rng.normal(size=(n_classes, dim))
    labeled = centres + rng.normal(size=(n_classes, dim))
    codes = np.repeat(np.arange(n_classes), per_class)
    unlabeled = centres[codes] + spread * rng.normal(size=(len(codes), dim))
    return torch.tensor(centres), torch.tensor(labeled), torch.tensor(unlabeled), codes


def _refine(labeled, unlabeled, steps=3, **kwargs):
    sums, totals = class_sums(
        kwargs.get("metric", "sqeuclidean"),
        labeled,
        torch.arange(len(labeled)),
        len(labeled),
    )
    return as_prototypes(*soft_kmeans(sums, totals, unlabeled, steps, **kwargs))


@pytest.mark.parametrize("refinement", ["soft_kmeans", "masked"])
def test_refinement_moves_prototypes_towards_the_unlabeled_clusters(refinement):
    centres, X_labeled, X_unlabeled = _blobs()
    X = np.vstack([X_labeled, X_unlabeled])
    y = np.r_[[0, 1], [-1] * len(X_unlabeled)]
    plain = PrototypicalClassifier().fit(X_labeled, [0, 1])
    refined = PrototypicalClassifier(refinement_steps=3, refinement=refinement)
    refined.fit(X, y)
    np.testing.assert_array_equal(refined.classes_, [0, 1])
    before = np.linalg.norm(plain.prototypes_ - centres, axis=1)
    after = np.linalg.norm(refined.prototypes_ - centres, axis=1)
    assert (after < before / 2).all()


def test_guarded_refines_a_pool_of_every_class():
    centres, labeled, unlabeled, _ = _clusters()
    refined = _refine(labeled, unlabeled)
    before = (labeled - centres).norm(dim=1)
    after = (refined - centres).norm(dim=1)
    assert (after < before / 2).all()


def test_guarded_stands_aside_when_classes_are_missing_from_the_pool():
    # Rows of 2 of 5 classes: the other prototypes would be pulled towards
    # them (the masked refinement moves them); the guarded one changes nothing.
    centres, labeled, unlabeled, codes = _clusters()
    pool = unlabeled[codes < 2]
    assert torch.equal(_refine(labeled, pool), labeled)
    masked = _refine(labeled, pool, refinement="masked")
    assert not torch.allclose(masked, labeled)
    # Without the coverage check, it refines as the masked refinement would.
    assert not torch.allclose(_refine(labeled, pool, coverage=0.0), labeled)


def test_guarded_per_class_moves_only_the_covered_classes():
    centres, labeled, unlabeled, codes = _clusters()
    refined = _refine(labeled, unlabeled[codes < 2], per_class=True)
    torch.testing.assert_close(refined[2:], labeled[2:])
    assert (
        (refined[:2] - centres[:2]).norm(dim=1)
        < (labeled[:2] - centres[:2]).norm(dim=1)
    ).all()


def test_reach_keeps_rows_of_another_domain_out():
    # Far rows, a little nearer one prototype than the others: the mask lets
    # part of their weight through; out of reach, they count nothing.
    centres, labeled, unlabeled, _ = _clusters()
    far = (
        labeled[0] + 40.0 + 0.1 * torch.randn(30, labeled.shape[1], dtype=labeled.dtype)
    )
    with_far = torch.cat([unlabeled, far])
    torch.testing.assert_close(_refine(labeled, with_far), _refine(labeled, unlabeled))
    no_reach = _refine(labeled, with_far, reach=None)
    assert not torch.allclose(no_reach, _refine(labeled, unlabeled))


@pytest.mark.parametrize("refinement", REFINEMENTS)
@pytest.mark.parametrize("metric", METRICS)
def test_sample_weights_are_repeats(refinement, metric):
    """Weight 2 is the row twice; weight 0 is no row."""
    _, labeled, unlabeled, _ = _clusters(per_class=3)
    weights = torch.ones(len(unlabeled), dtype=unlabeled.dtype)
    weights[0], weights[1] = 2.0, 0.0
    repeated = torch.cat([unlabeled[:1], unlabeled[:1], unlabeled[2:]])
    kwargs = {"metric": metric, "refinement": refinement}
    torch.testing.assert_close(
        _refine(labeled, unlabeled, weights=weights, **kwargs),
        _refine(labeled, repeated, **kwargs),
    )


def test_zero_steps_or_no_rows_return_the_terms_unchanged():
    sums, totals = class_sums(
        "sqeuclidean", torch.tensor([[0.0], [4.0]]), torch.tensor([0, 1]), 2
    )
    unlabeled = torch.tensor([[1.0], [1.0]])
    for refinement in REFINEMENTS:
        same = soft_kmeans(sums, totals, unlabeled, 0, refinement=refinement)
        assert same[0] is sums and same[1] is totals
        same = soft_kmeans(sums, totals, unlabeled[:0], 3, refinement=refinement)
        assert same[0] is sums and same[1] is totals


def test_unlabeled_rows_and_sample_weight():
    """A zero-weight unlabeled row changes nothing in the classifier."""
    _, X_labeled, X_unlabeled = _blobs()
    X = np.vstack([X_labeled, X_unlabeled, [[100.0, 100.0]]])
    y = np.r_[[0, 1], [-1] * (len(X) - 2)]
    weights = np.r_[np.ones(len(X) - 1), 0.0]
    a = PrototypicalClassifier(refinement_steps=2).fit(X, y, weights)
    b = PrototypicalClassifier(refinement_steps=2).fit(X[:-1], y[:-1])
    np.testing.assert_allclose(a.prototypes_, b.prototypes_)


def test_masked_refinement_ignores_distractors():
    centres, X_labeled, X_unlabeled = _blobs()
    # A distractor cluster about as far from both labeled examples.
    distractors = np.array([7.0, 4.0]) + 0.3 * np.random.default_rng(1).normal(
        size=(30, 2)
    )
    X = np.vstack([X_labeled, X_unlabeled, distractors])
    y = np.r_[[0, 1], [-1] * (len(X) - 2)]
    errors = {}
    for refinement in ("soft_kmeans", "masked"):
        clf = PrototypicalClassifier(refinement_steps=3, refinement=refinement)
        errors[refinement] = np.linalg.norm(
            clf.fit(X, y).prototypes_ - centres, axis=1
        ).max()
    assert errors["masked"] < errors["soft_kmeans"] / 2


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_guard_thresholds_mean_the_same_for_every_metric(metric):
    """The guard works on squared distances: euclidean squared, cosine as
    half the squared distance of unit vectors, so on unit embeddings every
    metric keeps the same rows with the same masks."""
    _, labeled, unlabeled, _ = _clusters(dim=4, spread=2.0)
    labeled = labeled / labeled.norm(dim=1, keepdim=True)
    unlabeled = unlabeled / unlabeled.norm(dim=1, keepdim=True)
    w = torch.ones(len(unlabeled), dtype=unlabeled.dtype)

    def guard(name):
        d = _squared(pairwise_distances(unlabeled, labeled, name), name)
        between = _squared(pairwise_distances(labeled, labeled, name), name)
        return _guard(d, between, w, 0.8, 20.0, 4.0, 0.0, 0.6, True)

    torch.testing.assert_close(guard(metric), guard("sqeuclidean"))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("normalization", [None, "l2", "cl2n"])
@pytest.mark.parametrize("refinement", ["guarded", "soft_kmeans", "masked"])
def test_classifier_prototypes_are_the_functions(metric, normalization, refinement):
    """The classifier refines its normalised float64 class sums with this
    function: the same prototypes, for every metric and normalisation."""
    _, X_labeled, X_unlabeled = _blobs(n_unlabeled=12)
    X = np.vstack([X_labeled, X_unlabeled]) + [1.0, 2.0]  # off the origin
    y = np.r_[[0, 1], [-1] * len(X_unlabeled)]
    clf = PrototypicalClassifier(
        metric=metric,
        normalization=normalization,
        refinement_steps=3,
        refinement=refinement,
    ).fit(X, y)
    Z = torch.tensor(X)
    if normalization == "cl2n":
        Z = Z - torch.tensor(clf.embedding_mean_)
    if normalization is not None:
        Z = Z / Z.norm(dim=1, keepdim=True)
    refined = _refine(Z[:2], Z[2:], metric=metric, refinement=refinement)
    np.testing.assert_allclose(clf.prototypes_, refined.numpy(), rtol=1e-10)


def _two_shot(centres, seed=1, spread=3.0):
    """Two labeled rows of each class, off its centre, and their codes."""
    rng = np.random.default_rng(seed)
    codes = torch.arange(len(centres)).repeat_interleave(2)
    noise = rng.normal(size=(len(codes), centres.shape[1]))
    rows = centres[codes] + spread * torch.tensor(noise)
    return rows, codes


def test_held_out_check_keeps_a_refinement_that_helps():
    centres, _, unlabeled, _ = _clusters(seed=3)
    rows, codes = _two_shot(centres)
    sums, totals = class_sums("sqeuclidean", rows, codes, len(centres))
    for refinement in REFINEMENTS:
        plain = soft_kmeans(sums, totals, unlabeled, 3, refinement=refinement)
        checked = soft_kmeans(
            sums,
            totals,
            unlabeled,
            3,
            refinement=refinement,
            labeled=(rows, codes, None),
        )
        torch.testing.assert_close(checked, plain)
        assert not torch.equal(checked[0], sums)


def test_held_out_check_stands_aside_when_the_refinement_hurts():
    # Plain soft k-means with rows of one class only drags every prototype
    # towards it: the held-out rows of the other classes say so.
    centres, _, unlabeled, codes_u = _clusters(seed=3, per_class=30)
    rows, codes = _two_shot(centres)
    sums, totals = class_sums("sqeuclidean", rows, codes, len(centres))
    pool = unlabeled[codes_u == 0]
    kwargs = {"refinement": "soft_kmeans"}
    assert not torch.equal(soft_kmeans(sums, totals, pool, 3, **kwargs)[0], sums)
    same = soft_kmeans(sums, totals, pool, 3, labeled=(rows, codes, None), **kwargs)
    assert same[0] is sums and same[1] is totals


@pytest.mark.parametrize("pool_classes", [1, 5])
def test_held_out_check_ignores_labeled_rows_of_weight_zero(pool_classes):
    centres, _, unlabeled, codes_u = _clusters(seed=3, per_class=30)
    rows, codes = _two_shot(centres)
    pool = unlabeled[codes_u < pool_classes]
    sums, totals = class_sums("sqeuclidean", rows, codes, len(centres))
    # A far-off row of class 0 with weight 0, first of its class.
    extra_rows = torch.cat([rows[:1] + 50.0, rows])
    extra_codes = torch.cat([codes[:1], codes])
    weights = torch.cat([torch.zeros(1), torch.ones(len(rows))]).double()
    for refinement in REFINEMENTS:
        kwargs = {"refinement": refinement}
        torch.testing.assert_close(
            soft_kmeans(
                sums,
                totals,
                pool,
                3,
                labeled=(extra_rows, extra_codes, weights),
                **kwargs,
            ),
            soft_kmeans(sums, totals, pool, 3, labeled=(rows, codes, None), **kwargs),
        )


def test_held_out_check_needs_two_rows_of_every_class():
    """With one labeled row of some class there is nothing to hold out: the
    refinement runs as without the check."""
    centres, labeled, unlabeled, codes_u = _clusters(per_class=30)
    pool = unlabeled[codes_u == 0]
    codes = torch.arange(len(centres))
    sums, totals = class_sums("sqeuclidean", labeled, codes, len(centres))
    kwargs = {"refinement": "soft_kmeans"}
    torch.testing.assert_close(
        soft_kmeans(sums, totals, pool, 3, labeled=(labeled, codes, None), **kwargs),
        soft_kmeans(sums, totals, pool, 3, **kwargs),
    )


def test_unknown_refinement_names_the_choices():
    sums, totals = class_sums(
        "sqeuclidean", torch.tensor([[0.0], [4.0]]), torch.tensor([0, 1]), 2
    )
    with pytest.raises(ValueError, match="refinement='kmeans' is not one of"):
        soft_kmeans(sums, totals, torch.tensor([[1.0]]), 1, refinement="kmeans")


def test_semi_supervised_benchmark_pools():
    """benchmarks/semi_supervised.py: support, unlabeled and queries never
    share a row; each pool has its shape; distractors come from classes
    outside the episode."""
    import semi_supervised

    y = np.repeat(np.arange(30), 40)
    for shape in semi_supervised.SHAPES:
        for support, unlabeled, distractors, query, query_y in semi_supervised.episodes(
            y, 10, 5, 10, shape, n_episodes=4, seed=0, others=y
        ):
            rows = np.r_[support, unlabeled, distractors, query]
            assert len(np.unique(rows)) == len(rows)
            np.testing.assert_array_equal(y[support][query_y], y[query])
            episode = set(y[support])
            assert set(y[unlabeled]) <= episode
            present = len(set(y[unlabeled]))
            if shape in ("balanced", "distractors"):
                assert len(unlabeled) == 50 and present == 10
            elif shape in semi_supervised.PRESENT:
                fraction = semi_supervised.PRESENT[shape]
                per_class = round(5 / fraction)
                n_present = round(10 * fraction)
                assert len(unlabeled) == n_present * per_class
                assert present == n_present
            elif shape == "skewed":
                assert (
                    len(
                        np.unique(
                            np.bincount(y[unlabeled], minlength=30)[list(episode)]
                        )
                    )
                    > 3
                )
            elif shape == "tiny":
                assert len(unlabeled) == semi_supervised.TINY
            if shape == "distractors":
                assert len(distractors) == 25
                assert not set(y[distractors]) & episode
                assert len(set(y[distractors])) == semi_supervised.DISTRACTOR_CLASSES
            else:
                assert len(distractors) == 0


def test_semi_supervised_benchmark_runs_end_to_end(tmp_path, monkeypatch):
    """The benchmark's evaluation and report on small random embeddings."""
    import semi_supervised

    rng = np.random.default_rng(0)
    labels = {
        "digits": np.repeat(np.arange(10), 30),
        "omniglot": np.repeat(np.arange(25), 20),
    }
    embeddings = {}
    for data, (encoders, *_) in semi_supervised.DATA.items():
        for encoder in encoders:
            for part in (data, "omniglot"):
                centres = rng.normal(size=(labels[part].max() + 1, 8))
                embeddings[encoder, part] = centres[labels[part]] + 0.3 * rng.normal(
                    size=(len(labels[part]), 8)
                )
    accuracy = semi_supervised.evaluate(embeddings, labels, n_episodes=3, seed=0)
    held_out = semi_supervised.evaluate(
        embeddings,
        labels,
        n_episodes=3,
        seed=0,
        shots=semi_supervised.HELD_OUT_SHOTS,
        blocks=semi_supervised.HELD_OUT_DATA,
        shapes=semi_supervised.HELD_OUT_SHAPES,
        columns=semi_supervised.HELD_OUT,
    )
    assert len(accuracy) == sum(
        len(encoders) for encoders, *_ in semi_supervised.DATA.values()
    ) * len(semi_supervised.SHAPES)
    verdict = semi_supervised.verdict(accuracy, "guarded")
    assert verdict["worst_setting"] in accuracy
    record = {
        "accuracy": accuracy,
        "held_out": held_out,
        "steps": semi_supervised.STEPS,
        "verdicts": {"guarded": verdict},
        "versions": {"torch": torch.__version__},
        "machine": {"processor": "x", "cpu_count": 1, "torch_threads": 1},
    }
    markdown = semi_supervised.report(record)
    assert markdown.count("| digits 10-way 1-shot, paper: classes missing |") == 2
    assert markdown.count("| digits 10-way 2-shot, robust: skewed |") == 1
