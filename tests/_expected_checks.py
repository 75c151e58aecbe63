"""The scikit-learn estimator checks each public estimator is expected to
fail, each with its reason, by estimator, encoder kind and configuration.

``tests/test_sklearn_checks.py`` runs the checks; a declared failure with a
message in ``FAILURE_MESSAGES`` must fail with that message and nothing else,
and one whose reason is in ``MUST_FAIL`` must fail. The same declarations
work as scikit-learn's ``parametrize_with_checks(...,
expected_failed_checks=expected_failed_checks)``.
"""

from __future__ import annotations

import math

from sklearn.frozen import FrozenEstimator
from torch import nn

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet._encoders import encoder_module
from sklearn_protonet._sklearn_contract import first_layer_width, is_fitted
from sklearn_protonet.contracts import get_input_contract
from sklearn_protonet.preprocessing import ImageReader
from sklearn_protonet.zero_shot import ZeroShotTrainer

# -- PrototypicalClassifier ---------------------------------------------------

#: The message of a sample width an encoder cannot take (scikit-learn's own
#: "X has 3 features, but EpisodicTrainer is expecting 2 features as input").
WIDTH_ERROR = r"X has \d+ features, but \w+ is expecting \d+ features as input"

_FIXED_WIDTH = (
    "The encoder is fitted (or a module whose first layer fixes its width): it "
    "embeds samples of n_features_in_ values only, while this check fits on "
    "data of its own width; PrototypicalClassifier refuses other widths with "
    "scikit-learn's message 'X has k features, but ... is expecting n "
    "features as input'. tests/test_sklearn_checks.py asserts that this, and "
    "nothing else, is why the check fails."
)
# The checks whose data (2, 3, 4, 5, 10, 30 or 1 columns, iris) reach fit.
_WIDTH_CHECKS = (
    "check_array_api_input",
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_decision_proba_consistency",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_partial_fit_n_features",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
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
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
    "check_sample_weights_list",
    "check_sample_weights_not_an_array",
    "check_sample_weights_not_overwritten",
    "check_sample_weights_pandas_series",
    "check_sample_weights_shape",
    "check_supervised_y_2d",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
)
#: The width of the data of width checks that send one width only.
_CHECK_WIDTHS = {
    "check_methods_sample_order_invariance": 3,
    "check_methods_subset_invariance": 3,
}
_FLOAT32_ROUNDING = (
    "The encoder computes in float32 and PyTorch's matrix products round "
    "differently in the last bit for different batch sizes (about 3e-7 "
    "relative), above this check's rtol of 1e-7; the predicted classes agree. "
    "test_classifier.py::test_subset_invariance_float32 checks it at float32 "
    "tolerance."
)
_HASH_OF_MODULES = (
    "joblib.hash of a torch.nn.Module (or of a net holding one) differs between "
    "it and its deepcopy (torch serialises tensors with a per-copy id), so this "
    "check reports a mutation even for an untouched encoder. "
    "test_sklearn_contract.py checks the property on parameters and weights."
)
_REPEATED_ROWS_CHANGE_EPISODES = (
    "sample_weight weights the prototypes, which is equivalent to repeating "
    "rows; but an unfitted trainer is first meta-trained on (X, y), and its "
    "episodes sample rows uniformly, so repeated rows change the episodes and "
    "hence the learned encoder. The module configuration passes this check, "
    "which covers the prototype weighting."
)


_FLOAT32_WEIGHTS = (
    "A module embeds in float32, and PyTorch's matrix products round "
    "differently in the last bit for a row in different batches (about 2e-7 "
    "relative), so a repeated row and a row of weight 2 give prototypes that "
    "differ by more than this check's rtol of 1e-7 on some data; the class "
    "sums themselves weigh exactly (test_prototypes.py checks weights and "
    "repeats on the identity, in float64)."
)
_UNKNOWN_COLUMN = (
    "With unknown_label the unknown label is the last column of classes_, "
    "predict_proba and decision_function (a binary problem has three "
    "columns), and it must be of the labels' kind: a check that compares "
    "classes_ with y's labels, expects one score column for two classes, or "
    "passes string labels with unknown_label=-1 fails by design "
    "(test_contract_features.py checks that predict is every score's argmax)."
)
_LEAVE_ONE_OUT_WEIGHTS = (
    "The rejection threshold is a quantile of leave-one-out distances: a row "
    "of weight 2 leaves the class whole when it is left out, while its repeat "
    "stays in when its twin is left out, so weights and repeats calibrate "
    "different thresholds (and so different unknown-column probabilities)."
)
_MINUS_ONE_MARKS_UNLABELED = (
    "With refinement_steps > 0, unlabeled_label=-1 (scikit-learn's "
    "semi-supervised marker) makes rows labelled -1 unlabeled, and this check "
    "labels a binary problem {-1, 1}: one class is left. "
    "test_contract_features.py fits {-1, 1} with another marker."
)
_REJECTION = {
    "check_classifiers_train": _UNKNOWN_COLUMN,
    "check_classifiers_classes": _UNKNOWN_COLUMN,
    "check_decision_proba_consistency": _UNKNOWN_COLUMN,
    "check_estimator_sparse_array": _UNKNOWN_COLUMN,
    "check_estimator_sparse_matrix": _UNKNOWN_COLUMN,
    "check_sample_weight_equivalence_on_dense_data": _LEAVE_ONE_OUT_WEIGHTS,
    "check_sample_weight_equivalence_on_sparse_data": _LEAVE_ONE_OUT_WEIGHTS,
}


def fixed_width(encoder) -> int | None:
    """The one width of samples an encoder embeds, or None if any: what a
    fitted estimator recorded as ``n_features_in_``, or what its module
    (image encoders record no width) states by its first layer or its input
    contract."""
    holder = encoder.estimator if isinstance(encoder, FrozenEstimator) else encoder
    if holder is None:
        return None
    if not isinstance(holder, nn.Module):
        if not is_fitted(holder):
            return None
        if hasattr(holder, "n_features_in_"):
            return holder.n_features_in_
    module = encoder_module(holder)
    if module is None:
        return None
    first_layer = first_layer_width(module)  # (width, the layer that sets it)
    if first_layer is not None:
        return first_layer[0]
    contract = get_input_contract(module, infer_shape=False)
    if contract is not None and contract.shape is not None:
        return math.prod(contract.shape)
    return None


def _classifier_failures(estimator: PrototypicalClassifier) -> dict[str, str]:
    """The checks a ``PrototypicalClassifier`` is expected to fail: empty
    for the identity encoder with default settings."""
    failures = {}
    if estimator.unknown_label is not None:
        failures.update(_REJECTION)
    if estimator.refinement_steps > 0 and estimator.unlabeled_label == -1:
        failures["check_classifiers_classes"] = _MINUS_ONE_MARKS_UNLABELED
    encoder = estimator.encoder
    if encoder is None:
        return failures
    failures["check_methods_subset_invariance"] = _FLOAT32_ROUNDING
    holder = encoder.estimator if isinstance(encoder, FrozenEstimator) else encoder
    if isinstance(holder, nn.Module) or is_fitted(holder):
        failures["check_estimators_overwrite_params"] = _HASH_OF_MODULES
        for data in ("dense", "sparse"):
            failures[f"check_sample_weight_equivalence_on_{data}_data"] = (
                _FLOAT32_WEIGHTS
            )
    else:
        for data in ("dense", "sparse"):
            failures[f"check_sample_weight_equivalence_on_{data}_data"] = (
                _REPEATED_ROWS_CHANGE_EPISODES
            )
    width = fixed_width(encoder)
    if width is not None:
        for check in _WIDTH_CHECKS:
            # A check whose data has the encoder's width reaches the encoder:
            # it fails, if at all, for its own reason (float32 rounding).
            if _CHECK_WIDTHS.get(check) != width:
                failures[check] = _FIXED_WIDTH
    return failures


# -- EpisodicTrainer and ZeroShotTrainer --------------------------------------

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
_TRAINER = {"check_no_attributes_set_in_init": _SKORCH_INIT}
_TRAINER_OF_AN_INSTANCE = {
    **_TRAINER,
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
_NEEDS_METADATA = (
    "ZeroShotTrainer.fit(X, y, metadata=...) learns from class metadata, one "
    "row per class of y: scikit-learn's checks call fit(X, y) with labels of "
    "their own and no metadata, so every check that fits stops at the "
    "trainer's ValueError asking for it (test_zero_shot.py fits it with "
    "metadata; EpisodicTrainer, whose fit it shares, runs these checks in "
    "full)."
)
_ZERO_SHOT_TRAINER = {
    **_TRAINER,
    **dict.fromkeys(
        (
            "check_array_api_input",
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
            "check_transformer_data_not_an_array",
            "check_transformer_general",
            "check_transformer_preserve_dtypes",
        ),
        _NEEDS_METADATA,
    ),
}


def _trainer_failures(trainer: EpisodicTrainer) -> dict[str, str]:
    """The checks a trainer is expected to fail: what skorch does."""
    if isinstance(trainer, ZeroShotTrainer):
        return _ZERO_SHOT_TRAINER
    if isinstance(trainer.module, nn.Module):
        return _TRAINER_OF_AN_INSTANCE
    return _TRAINER


# -- ImageReader --------------------------------------------------------------

_OUT_OF_RANGE = (
    "float pixels outside input_range=(0, 1) are refused (a guard against "
    "0-255 floats read as 0-1); the check sends standardised or shifted "
    "values: ImageReader(input_range=None) passes it"
)
#: The checks that send float values outside [0, 1] to fit or transform.
_OUT_OF_RANGE_CHECKS = (
    "check_array_api_input",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
)


def _reader_failures(reader: ImageReader) -> dict[str, str]:
    """The checks an ``ImageReader`` is expected to fail: none when it
    takes float pixels as they are."""
    if reader.input_range is None:
        return {}
    return dict.fromkeys(_OUT_OF_RANGE_CHECKS, _OUT_OF_RANGE)


# -- Every estimator ----------------------------------------------------------

#: Reason to the message its failure must show, in the error or one it was
#: raised from: the check fails for that reason and no other.
FAILURE_MESSAGES = {
    _FIXED_WIDTH: WIDTH_ERROR,
    _OUT_OF_RANGE: "or set input_range",
}
#: Reasons whose checks must fail: every such check sends what the estimator
#: refuses. (The others may pass on some data or batches.)
MUST_FAIL = frozenset({_OUT_OF_RANGE})


def expected_failed_checks(estimator) -> dict[str, str]:
    """The scikit-learn estimator checks ``estimator`` is expected to fail,
    each with its reason (scikit-learn >= 1.6 takes them as
    ``check_estimator(..., expected_failed_checks=...)`` and
    ``parametrize_with_checks(..., expected_failed_checks=...)``).

    Parameters
    ----------
    estimator : PrototypicalClassifier, ZeroShotPrototypicalClassifier, \
EpisodicTrainer, ZeroShotTrainer or ImageReader

    Returns
    -------
    dict of str to str
        Check name to reason; empty for an estimator that passes every
        check.
    """
    if isinstance(estimator, PrototypicalClassifier):
        return _classifier_failures(estimator)
    if isinstance(estimator, EpisodicTrainer):
        return _trainer_failures(estimator)
    if isinstance(estimator, ImageReader):
        return _reader_failures(estimator)
    return {}
