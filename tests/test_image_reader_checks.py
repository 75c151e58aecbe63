"""ImageReader through scikit-learn's estimator checks.

A 2-D numeric array is read as rows of pixels (one-pixel-high images), so the
checks run on ImageReader like on any transformer. With ``input_range=None``
(float pixels taken as they are) every check passes; the default reader
refuses float pixels outside [0, 1], which most checks send, and those
checks are declared below, each failing with exactly that refusal.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_protonet.preprocessing import ImageReader

_RANGE = (
    "float pixels outside input_range=(0, 1) are refused (a guard against "
    "0-255 floats read as 0-1); the check sends standardised or shifted "
    "values: ImageReader(input_range=None) passes it"
)
#: The checks that send float values outside [0, 1] to fit or transform.
_OUT_OF_RANGE_CHECKS = (
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

ESTIMATORS = [
    ImageReader(input_range=None),
    ImageReader(input_range=None, flatten=True, size=(1, 4)),
    ImageReader(input_range=None, polarity="light-on-dark", contrast=99.0),
    ImageReader(),
]


def expected_failed_checks(reader: ImageReader) -> dict[str, str]:
    """The declared failures of ``reader``, each with its reason."""
    if reader.input_range is None:
        return {}
    return dict.fromkeys(_OUT_OF_RANGE_CHECKS, _RANGE)


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


@parametrize_with_checks(ESTIMATORS)
def test_image_reader_passes_the_estimator_checks(estimator, check):
    reason = expected_failed_checks(estimator).get(_check_name(check))
    if reason is None:
        check(estimator)
        return
    # A declared failure must be exactly the range refusal, nothing else.
    with pytest.raises((ValueError, AssertionError)) as raised:
        check(estimator)
    messages = [str(error) for error in _causes(raised.value)]
    assert any("or set input_range" in message for message in messages), messages
    pytest.xfail(reason)


def _causes(error: BaseException | None):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__
