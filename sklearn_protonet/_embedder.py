"""The embedder: a fitted encoder run in chunks, on its device, in its precision.

Built once by ``fit``, it owns everything about turning rows into
embeddings: which module embeds (none for the identity), the device, rows
per chunk, sparse rows (dense blocks of bounded size, or kept sparse for the
identity's exact arithmetic), the check that embeddings are finite, the
thread policy, and the inference precision (an autocast wrapper, or an int8
copy whose uncertain decisions are embedded again in float32). The
estimators ask it for embeddings and know nothing of dtypes or chunks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import scipy.sparse as sp
import torch

from ._encoders import encoder_module, iter_embeddings, one_thread, resolve_device
from ._inference import inference_module, relative_error
from ._inputs import as_tensor
from ._numerics import check_finite_embeddings
from ._sparse import dense_rows, iter_dense

__all__ = ["Embedder", "fill_rows"]


def fill_rows(chunks: Iterator[np.ndarray], n_rows: int) -> np.ndarray:
    """Write row chunks into one preallocated array.

    The peak memory is the output plus one chunk; concatenating a list of
    chunks would hold the output twice (benchmarks/memory.py).
    """
    out, start = None, 0
    for chunk in chunks:
        if out is None:
            out = np.empty((n_rows, *chunk.shape[1:]), dtype=chunk.dtype)
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    return out


class Embedder:
    """Embeds validated rows with a fitted encoder.

    Parameters
    ----------
    encoder : None, torch.nn.Module or fitted estimator
        ``None`` is the identity (rows are their own embeddings, in float64).
    batch_size : int
        Rows embedded at a time.
    device : str, torch.device or None
        Where embedding runs; ``None`` follows the encoder's weights.
    inference_dtype : {"float32", "bfloat16", "float16", "int8"}
        The precision of a module encoder; int8 is calibrated on
        ``calibration``.
    calibration : ndarray, default=None
        Rows whose activations set int8's ranges (the support set).
    keep_sparse : bool, default=False
        Yield sparse rows as they are (the identity encoder with a metric
        computed exactly on sparse rows); otherwise dense blocks.
    recheck_int8 : bool, default=True
        With int8: prototypes from float32 embeddings, and uncertain query
        decisions embedded again in float32 (the metric has a bound on how
        far int8 moves a decision).
    """

    def __init__(
        self,
        encoder,
        *,
        batch_size: int,
        device,
        inference_dtype: str,
        calibration: np.ndarray | None = None,
        keep_sparse: bool = False,
        recheck_int8: bool = True,
    ) -> None:
        self.encoder = encoder
        self.module = encoder_module(encoder)
        self.device = resolve_device(self.module, device)
        self.batch_size = batch_size
        self.keep_sparse = keep_sparse and encoder is None
        self.inference_dtype = inference_dtype
        self.recheck_int8 = recheck_int8
        self.int8_error: float | None = None
        self.fast_module = None
        # int8's calibration rows: an int8 copy cannot be pickled, so a
        # restored embedder quantises again from them (the same int8 model).
        self.calibration = None
        if self.module is None:
            if inference_dtype != "float32":
                raise ValueError(
                    f"inference_dtype={inference_dtype!r} applies to torch encoders "
                    f"only, but the encoder is {type(encoder).__name__}; use "
                    "inference_dtype='float32'."
                )
        elif inference_dtype != "float32":
            if inference_dtype == "int8":
                self.calibration = np.array(dense_rows(calibration, np.float32))
            self._set_fast_module()

    def _set_fast_module(self) -> None:
        rows = None if self.calibration is None else as_tensor(self.calibration)
        self.fast_module = inference_module(
            self.module, self.inference_dtype, rows, self.batch_size
        )

    _STATE = (
        "encoder",
        "batch_size",
        "keep_sparse",
        "inference_dtype",
        "recheck_int8",
        "int8_error",
        "calibration",
    )

    def to_dict(self) -> dict:
        """The embedder as plain data (the device follows the encoder's
        weights when it is restored)."""
        return {name: getattr(self, name) for name in self._STATE}

    @classmethod
    def from_dict(cls, data: dict) -> Embedder:
        """The embedder written by :meth:`to_dict`."""
        unknown = sorted(set(data) - set(cls._STATE))
        if unknown:
            raise ValueError(f"unknown embedder fields {unknown}")
        new = cls.__new__(cls)
        for name in cls._STATE:
            setattr(new, name, data[name])
        new.module = encoder_module(new.encoder)
        new.device = resolve_device(new.module, None)
        new.fast_module = None
        if new.module is not None and new.inference_dtype != "float32":
            new._set_fast_module()
        return new

    @property
    def is_identity(self) -> bool:
        return self.encoder is None

    def threads(self) -> AbstractContextManager:
        """One torch thread for the identity's memory-bound arithmetic: more
        only contend for a busy machine's cores (benchmarks/identity_busy.py)."""
        return one_thread() if self.is_identity else nullcontext()

    def rechecks(self) -> bool:
        """Whether int8 decisions are checked again in float32."""
        return (
            self.recheck_int8
            and self.inference_dtype == "int8"
            and self.fast_module is not None
        )

    def iter(self, X, *, exact: bool = False) -> Iterator:
        """Embeddings of ``X`` chunk by chunk, checked finite.

        Tensors on the device (float64 for the identity, float32 from a
        module), or sparse rows with ``keep_sparse``. With ``exact``, the
        encoder's own float32 module embeds whatever the inference dtype.
        """
        if self.keep_sparse and sp.issparse(X):
            for start in range(0, X.shape[0], self.batch_size):
                yield X[start : start + self.batch_size]
            return
        start = 0
        for chunk in self._chunks(X, exact):
            if not self.is_identity:  # the identity's rows were validated
                check_finite_embeddings(chunk, start, "X")
            start += len(chunk)
            yield chunk

    def _chunks(self, X, exact: bool) -> Iterator[torch.Tensor]:
        if sp.issparse(X):  # dense blocks of batch_size rows: bounded memory
            dtype = np.float64 if self.is_identity else np.float32
            for block in iter_dense(X, self.batch_size, dtype):
                yield from self._chunks(block, exact)
            return
        module = self.module if exact or self.fast_module is None else self.fast_module
        if module is not None:
            yield from iter_embeddings(
                module, as_tensor(X), self.batch_size, self.device
            )
            return
        for start in range(0, len(X), self.batch_size):
            chunk = X[start : start + self.batch_size]
            if self.is_identity:
                # float64 chunk by chunk: X itself is never copied whole.
                flat = chunk.reshape(len(chunk), -1)
                yield as_tensor(flat).to(self.device, torch.float64)
            else:
                embedded = np.asarray(self.encoder.transform(chunk))
                yield as_tensor(embedded).to(self.device)

    def support(self, X) -> tuple[torch.Tensor, float | None]:
        """All embeddings of validated support rows in float64, and the int8
        error measured on them (None unless int8 is rechecked).

        With int8, the prototypes come from the float32 embeddings; the error
        is the int8 ones' largest relative error against them.
        """
        if self.is_identity and not sp.issparse(X):  # the rows: no copy
            flat = X.reshape(len(X), -1)
            return as_tensor(flat).to(self.device, torch.float64), None
        embeddings = torch.cat(list(self.iter(dense_rows(X)))).double()
        if not self.rechecks():
            return embeddings, None
        exact = torch.cat(list(self.iter(dense_rows(X), exact=True))).double()
        return exact, relative_error(embeddings, exact)

    def with_error(self, error: float | None) -> Embedder:
        """A copy whose int8 error is the larger of its own and ``error``."""
        if error is None:
            return self
        new = copy.copy(self)
        new.int8_error = max(self.int8_error or 0.0, error)
        return new

    def iter_normalized(
        self,
        X,
        normalize: Callable,
        uncertain: Callable | None = None,
    ) -> Iterator:
        """Embeddings of ``X`` passed through ``normalize``, chunk by chunk.

        With int8, ``uncertain(embeddings, normalized, error)`` names the rows
        whose nearest prototype the int8 error could change: they are
        embedded again in float32, so predictions agree with float32's.
        """
        recheck = (
            uncertain is not None and self.rechecks() and self.int8_error is not None
        )
        start = 0
        for embeddings in self.iter(X):
            normalized = normalize(embeddings)
            if recheck:
                rows = uncertain(embeddings, normalized, self.int8_error)
                if len(rows):
                    again = X[start + rows.cpu().numpy()]
                    exact = torch.cat(list(self.iter(again, exact=True)))
                    normalized = normalized.clone()
                    normalized[rows] = normalize(exact.to(normalized.dtype))
            start += embeddings.shape[0]
            yield normalized
