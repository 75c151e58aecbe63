"""Batch prediction over dask arrays and DataFrames, block by block.

A fitted estimator (a :class:`~sklearn_protonet.PrototypicalClassifier`, or a
pipeline ending in one) is applied to each block of a dask collection on the
workers of a ``dask.distributed`` cluster, or on the threads of the local dask
scheduler. The estimator enters the task graph once, as a single node that
every block depends on, so each worker receives the fitted encoder once,
however many blocks it predicts; ``dask_ml.wrappers.ParallelPostFit`` puts it
into every block's task instead and reports a wrong number of columns for
``transform``.

Needs the ``dask`` extra: ``pip install "sklearn-protonet[dask]"``.
"""

from __future__ import annotations

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["apply", "predict", "predict_proba", "transform"]

METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
)


def _call(block, estimator, method: str):
    return getattr(estimator, method)(block)


def _first_row(X):
    """One row of ``X`` in memory, to check columns and learn the output."""
    if isinstance(X, da.Array):
        # Zeros of the right shape and dtype: nothing of X is computed.
        return np.zeros((1, *X.shape[1:]), dtype=X.dtype)
    row = X.head(1, npartitions=-1)
    if len(row) == 0:
        raise ValueError("X is empty: there is nothing to predict.")
    return row


def apply(estimator, X, method: str = "predict") -> da.Array:
    """Apply a fitted estimator's method to every block of a dask collection.

    Lazy: returns a dask array; call ``.compute()`` (or store it) to run it.
    The columns are checked at once, on one row, with the estimator's own
    error message, before any work is sent.

    Parameters
    ----------
    estimator : fitted estimator
        A fitted :class:`~sklearn_protonet.PrototypicalClassifier`, or any
        fitted scikit-learn estimator or pipeline with ``method``.
    X : dask.array.Array or dask.dataframe.DataFrame or dask.dataframe.Series
        Samples, one per row (N-D arrays of images too); a DataFrame or
        Series goes to the estimator one pandas partition at a time (e.g. a
        column of image paths for a pipeline that reads them).
    method : {"predict", "predict_proba", "predict_log_proba", \
"decision_function", "transform"}, default="predict"

    Returns
    -------
    dask.array.Array
        Rows in the order of ``X``: ``(n_samples,)`` for ``predict``,
        ``(n_samples, n_outputs)`` otherwise. Row counts are unknown
        (``nan``) for DataFrame input, as for ``DataFrame.to_dask_array()``.

    Raises
    ------
    TypeError
        If ``X`` is not a dask collection.
    ValueError
        If ``X`` has the wrong number of columns (the estimator's message).

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from sklearn_protonet import PrototypicalClassifier
    >>> from sklearn_protonet.dask import predict
    >>> clf = PrototypicalClassifier().fit([[0.0, 0.0], [5.0, 5.0]], ["a", "b"])
    >>> X = da.from_array(np.array([[4.0, 4.0], [0.0, 1.0], [6.0, 5.0]]), chunks=2)
    >>> predict(clf, X).compute()
    array(['b', 'a', 'b'], dtype='<U1')
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if not hasattr(estimator, method):
        raise AttributeError(
            f"{type(estimator).__name__} has no method {method!r}; choose one of "
            f"the estimator's own methods among {METHODS}."
        )
    check_is_fitted(estimator)
    if isinstance(X, da.Array):
        if X.ndim < 2:
            raise ValueError(
                f"X must have one sample per row (2-D or more), got a {X.ndim}-D "
                "dask array; reshape it with X.reshape(-1, 1) for one feature."
            )
        if any(len(chunks) > 1 for chunks in X.chunks[1:]):
            # Blocks hold whole samples: split rows only.
            X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    elif not isinstance(X, dd.DataFrame | dd.Series):
        raise TypeError(
            "X must be a dask Array, DataFrame or Series, got "
            f"{type(X).__name__}; call estimator.{method}(X) for data in memory."
        )
    out = np.asarray(_call(_first_row(X), estimator, method))
    meta = np.empty((0, *out.shape[1:]), dtype=out.dtype)
    # A single graph node: each worker gets the estimator once, not per block.
    # pure=False names it at random rather than hashing the whole estimator
    # (its pickled weights), which took longer than predicting small inputs.
    remote = dask.delayed(estimator, pure=False, traverse=False)
    if isinstance(X, da.Array):
        return X.map_blocks(
            _call,
            remote,
            method,
            chunks=(X.chunks[0], *((size,) for size in out.shape[1:])),
            drop_axis=list(range(out.ndim, X.ndim)),
            meta=meta,
        )
    return X.map_partitions(_call, remote, method, meta=meta)


def predict(estimator, X) -> da.Array:
    """``estimator.predict`` over each block of ``X``; see :func:`apply`.

    Parameters
    ----------
    estimator : fitted classifier
    X : dask.array.Array, dask.dataframe.DataFrame or dask.dataframe.Series
        The samples to classify, in blocks of rows.

    Returns
    -------
    dask.array.Array of shape (n_samples,)
        The predicted classes, lazily.
    """
    return apply(estimator, X, "predict")


def predict_proba(estimator, X) -> da.Array:
    """``estimator.predict_proba`` over each block of ``X``; see :func:`apply`.

    Parameters
    ----------
    estimator : fitted classifier
        With a ``predict_proba`` method.
    X : dask.array.Array, dask.dataframe.DataFrame or dask.dataframe.Series

    Returns
    -------
    dask.array.Array of shape (n_samples, n_classes)
        The class probabilities, lazily; columns follow ``classes_``.
    """
    return apply(estimator, X, "predict_proba")


def transform(estimator, X) -> da.Array:
    """``estimator.transform`` (the embeddings) over each block of ``X``; see
    :func:`apply`.

    Parameters
    ----------
    estimator : fitted classifier or transformer
    X : dask.array.Array, dask.dataframe.DataFrame or dask.dataframe.Series

    Returns
    -------
    dask.array.Array of shape (n_samples, embedding_dim)
        The embeddings, lazily.
    """
    return apply(estimator, X, "transform")
