"""scikit-learn's estimator checks on the meta-trainers themselves.

``EpisodicTrainer`` (and ``ZeroShotTrainer``, its subclass) is a public
estimator: a transformer whose ``fit`` meta-trains an encoder and whose
``transform`` embeds. It runs every check scikit-learn has for it, with
settings that keep each fit to a few tiny episodes. The expected failures
are inherent to skorch, declared below with their reasons: every other check
must pass. The checks run in under a minute on two cores.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_protonet import EpisodicTrainer
from sklearn_protonet.modules import MLP
from sklearn_protonet.zero_shot import ZeroShotEncoders, ZeroShotTrainer

_SKORCH_INIT = (
    "skorch's NeuralNet.__init__ sets history_, initialized_ and "
    "virtual_params_ and stores each module__*/optimizer__* argument as an "
    "attribute; every skorch net fails this check."
)

_SKORCH_MODULE_INSTANCE = (
    "skorch trains a module passed as an instance in place and keeps it from "
    "one fit to the next (it builds a fresh module only from a class): fit "
    "changes the parameter, and a second fit starts from the trained "
    "weights. Pass the module class and its module__* arguments for a fresh "
    "start at each fit (the first configuration passes these checks)."
)

#: Check name to reason: the checks the trainers are expected to fail.
EXPECTED_FAILED_CHECKS = {"check_no_attributes_set_in_init": _SKORCH_INIT}
_INSTANCE_FAILED_CHECKS = {
    **EXPECTED_FAILED_CHECKS,
    **dict.fromkeys(
        [
            "check_estimators_overwrite_params",
            "check_fit_idempotent",
            "check_pipeline_consistency",
            # fit_transform, then fit and transform: the second fit goes on
            # from the first one's weights (within atol=0.01 or not).
            "check_transformer_data_not_an_array",
            "check_transformer_general",
        ],
        _SKORCH_MODULE_INSTANCE,
    ),
}


def expected_failed_checks(trainer) -> dict[str, str]:
    """The checks ``trainer`` is expected to fail, each with its reason."""
    if isinstance(trainer.module, torch.nn.Module):
        return _INSTANCE_FAILED_CHECKS
    return EXPECTED_FAILED_CHECKS


# Tiny budgets: 2-way episodes of one support and one query example (the
# checks' data have 2 or 3 classes), two episodes, one epoch, no validation.
_FAST = dict(
    n_way=2,
    n_shot=1,
    n_query=1,
    episodes_per_epoch=2,
    max_epochs=1,
    train_split=None,
    verbose=0,
    random_state=0,
)
_MLP = dict(module__hidden_sizes=(8,), module__out_features=4)

TRAINERS = [
    EpisodicTrainer(MLP, **_MLP, **_FAST),
    EpisodicTrainer(MLP, **_MLP, **_FAST, metric="cosine", autocast_dtype="bfloat16"),
    EpisodicTrainer(MLP(hidden_sizes=(8,), out_features=4), **_FAST),
]


@parametrize_with_checks(TRAINERS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


ZERO_SHOT_TRAINERS = [
    ZeroShotTrainer(
        ZeroShotEncoders,
        module__sample_encoder=MLP(hidden_sizes=(8,), out_features=4),
        module__metadata_encoder=MLP(hidden_sizes=(8,), out_features=4),
        **{k: v for k, v in _FAST.items() if k != "n_shot"},
    ),
]


_NEEDS_METADATA = (
    "ZeroShotTrainer.fit(X, y, metadata=...) learns from class metadata, one "
    "row per class of y: scikit-learn's checks call fit(X, y) with labels of "
    "their own and no metadata, so every check that fits stops at the "
    "trainer's ValueError asking for it (test_zero_shot.py fits it with "
    "metadata; test_trainer_checks.py checks EpisodicTrainer, whose fit it "
    "shares, in full)."
)
ZERO_SHOT_FAILED_CHECKS = {
    **EXPECTED_FAILED_CHECKS,
    **dict.fromkeys(
        (
            "check_complex_data",
            "check_dict_unchanged",
            "check_dont_overwrite_parameters",
            "check_dtype_object",
            "check_estimator_sparse_array",
            "check_estimator_sparse_matrix",
            "check_estimator_sparse_tag",
            "check_estimators_dtypes",
            "check_estimators_empty_data_messages",
            "check_estimators_fit_returns_self",
            "check_estimators_nan_inf",
            "check_estimators_overwrite_params",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_fit2d_1feature",
            "check_fit2d_1sample",
            "check_fit2d_predict1d",
            "check_fit_check_is_fitted",
            "check_fit_idempotent",
            "check_fit_score_takes_y",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_n_features_in",
            "check_n_features_in_after_fitting",
            "check_pipeline_consistency",
            "check_positive_only_tag_during_fit",
            "check_readonly_memmap_input",
            "check_requires_y_none",
            "check_transformer_data_not_an_array",
            "check_transformer_general",
            "check_transformer_preserve_dtypes",
        ),
        _NEEDS_METADATA,
    ),
}


@parametrize_with_checks(
    ZERO_SHOT_TRAINERS, expected_failed_checks=lambda _: ZERO_SHOT_FAILED_CHECKS
)
def test_zero_shot_trainer_sklearn_estimator_checks(estimator, check):
    """The zero-shot trainer runs scikit-learn's checks too; those that fit
    fail only because fit needs class metadata (declared)."""
    check(estimator)


def test_no_predict_but_a_pointer_to_the_classifier():
    trainer = EpisodicTrainer(MLP, **_MLP, **_FAST)
    for method in ("predict", "predict_proba"):
        assert not hasattr(trainer, method)
        with pytest.raises(AttributeError) as info:
            getattr(trainer, method)
        assert "PrototypicalClassifier(encoder=trainer)" in str(info.value.__cause__)


def test_tags_say_what_the_trainer_does():
    """Sparse rows are meta-trained on and embedded; embeddings are float32."""
    trainer = EpisodicTrainer(MLP, **_MLP, **_FAST)
    tags = trainer.__sklearn_tags__()
    assert tags.input_tags.sparse and tags.target_tags.required
    assert tags.transformer_tags.preserves_dtype == ["float32"]
    rng = np.random.RandomState(0)
    X, y = (
        sp.random(30, 6, density=0.5, format="csr", random_state=0),
        rng.randint(0, 3, 30),
    )
    assert trainer.fit(X, y).transform(X).dtype == np.float32
    assert trainer.transform(X.toarray().astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("value", [-1, 3.0, "helloworld", [1], {}])
def test_invalid_callbacks_are_refused_by_fit_not_set_params(value):
    trainer = EpisodicTrainer(MLP, **_MLP, **_FAST).set_params(callbacks=value)
    assert trainer.callbacks == value
    X, y = np.random.RandomState(0).rand(12, 3), np.repeat([0, 1, 2], 4)
    with pytest.raises(ValueError, match="The 'callbacks' parameter"):
        trainer.fit(X, y)


def test_set_params_stores_and_fit_validates():
    trainer = EpisodicTrainer(MLP, **_MLP, **_FAST).set_params(n_query=0)
    assert trainer.n_query == 0
    X, y = np.random.RandomState(0).rand(12, 3), np.repeat([0, 1, 2], 4)
    with pytest.raises(ValueError, match="The 'n_query' parameter of EpisodicTrainer"):
        trainer.fit(X, y)
    trainer.set_params(n_query=1, callbacks=[])  # a valid list initialises
    assert trainer.fit(X, y).transform(X).shape == (12, 4)


def test_fit_without_labels_says_so():
    X = pd.DataFrame(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="requires y to be passed"):
        EpisodicTrainer(MLP, **_MLP, **_FAST).fit(X)


def test_set_params_round_trips_a_module_instance():
    """skorch refuses a module instance set as an attribute outside its
    initialisation; before it, set_params(**get_params()) round-trips."""
    trainer = EpisodicTrainer(MLP(hidden_sizes=(8,), out_features=4), **_FAST)
    trainer.set_params(**trainer.get_params(deep=False))
    other = MLP(hidden_sizes=(8,), out_features=3)
    assert trainer.set_params(module=other).module is other
    X, y = np.random.RandomState(0).rand(12, 3), np.repeat([0, 1, 2], 4)
    assert trainer.fit(X, y).transform(X).shape == (12, 3)
