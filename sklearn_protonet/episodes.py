"""Sampling N-way K-shot episodes from integer class codes.

Shared by the meta-trainer (training and validation episodes) and by
:class:`~sklearn_protonet.model_selection.EpisodicSplit` (evaluation), so a
model is trained and judged on episodes drawn the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["EpisodeSampler", "make_rng"]


def make_rng(random_state) -> np.random.Generator:
    """A NumPy ``Generator`` from ``None``, an int, a ``RandomState`` or a
    ``Generator``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


class EpisodeSampler:
    """Draws the indices of N-way episodes with K support and Q query
    examples per class, without replacement inside an episode.

    Parameters
    ----------
    codes : array-like of int, shape (n_samples,)
        Class code of each sample, in ``[0, n_classes)``.
    n_way, n_support, n_query : int
        Classes per episode, and support / query examples per class.
    class_names : sequence, default=None
        Names used in error messages instead of the codes.
    param_names : tuple of str, default=("n_way", "n_support", "n_query")
        How the caller calls these three numbers, for error messages.

    Raises
    ------
    ValueError
        If an episode cannot be drawn: fewer classes than ``n_way``, or
        classes with fewer than ``n_support + n_query`` examples (named).
    """

    def __init__(
        self,
        codes,
        n_way: int,
        n_support: int,
        n_query: int,
        class_names: Sequence | None = None,
        param_names: tuple[str, str, str] = ("n_way", "n_support", "n_query"),
    ) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        way_name, support_name, query_name = param_names
        for name, value, low in (
            (way_name, n_way, 2),
            (support_name, n_support, 1),
            (query_name, n_query, 1),
        ):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        counts = np.bincount(codes)
        present = np.flatnonzero(counts)
        if n_way > len(present):
            raise ValueError(
                f"{way_name}={n_way} is larger than the {len(present)} classes "
                f"available; lower {way_name} to at most {len(present)} or give "
                "more classes."
            )
        needed = n_support + n_query
        short = present[counts[present] < needed]
        if len(short):
            names = short if class_names is None else np.asarray(class_names)[short]
            names = names.tolist()  # plain Python reprs: 'a', not np.str_('a')
            shown = ", ".join(
                f"{n!r} ({counts[c]})"
                for n, c in zip(names[:10], short[:10], strict=True)
            )
            more = f" and {len(short) - 10} more" if len(short) > 10 else ""
            raise ValueError(
                f"Episodes need {support_name} + {query_name} = {needed} examples "
                f"per class, but {len(short)} classes have fewer: {shown}{more}. "
                f"Lower {support_name}/{query_name}, or drop those classes."
            )
        self.n_way, self.n_support, self.n_query = int(n_way), n_support, n_query
        self.classes = present
        # members[c, :counts[c]] are the sample indices of class c, padded by -1,
        # so one episode is a single vectorised gather, not a Python loop.
        order = np.argsort(codes, kind="stable")
        self.counts = counts
        self.members = np.full((len(counts), counts.max()), -1, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(len(codes)) - np.repeat(starts, counts)
        self.members[codes[order], rank] = order

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Indices of one episode.

        Returns
        -------
        support : ndarray of shape (n_way, n_support)
        query : ndarray of shape (n_way, n_query)
            Row ``i`` of both holds the examples of the episode's ``i``-th class.
        """
        classes = rng.choice(self.classes, size=self.n_way, replace=False)
        counts = self.counts[classes]
        keys = rng.random((self.n_way, self.members.shape[1]))
        keys[np.arange(self.members.shape[1]) >= counts[:, None]] = 2.0  # padding last
        take = np.argsort(keys, axis=1)[:, : self.n_support + self.n_query]
        picked = self.members[classes[:, None], take]
        return picked[:, : self.n_support], picked[:, self.n_support :]
