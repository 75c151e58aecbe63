"""Episode data: N-way K-shot episodes drawn from labelled samples.

Shared by the meta-trainer (training and validation episodes) and by
:class:`~sklearn_protonet.model_selection.EpisodicSplit` (evaluation), so a
model is trained and judged on episodes drawn the same way. The vocabulary is
the literature's: ``n_way`` classes per episode, ``n_shot`` support and
``n_query`` query examples per class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from skorch.dataset import Dataset

from ._inputs import as_tensor, check_labels, check_samples
from ._sparse import dense_rows

__all__ = [
    "ClassSplit",
    "EpisodeDataset",
    "EpisodeLoader",
    "EpisodeSampler",
    "as_episode_dataset",
    "episode_target",
    "make_rng",
]


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

    The numbers themselves are validated by the caller (the trainer and the
    splitter check their parameters); the sampler checks what needs the
    data: enough classes, and enough examples in each.

    Parameters
    ----------
    codes : array-like of int, shape (n_samples,)
        Class code of each sample, in ``[0, n_classes)``.
    n_way, n_shot, n_query : int
        Classes per episode, and support / query examples per class.
    class_names : sequence, default=None
        Names used in error messages instead of the codes.

    Raises
    ------
    ValueError
        If an episode cannot be drawn: fewer classes than ``n_way``, or
        classes with fewer than ``n_shot + n_query`` examples (named).
    """

    def __init__(
        self,
        codes,
        n_way: int,
        n_shot: int,
        n_query: int,
        class_names: Sequence | None = None,
    ) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        counts = np.bincount(codes)
        present = np.flatnonzero(counts)
        if n_way > len(present):
            raise ValueError(
                f"n_way={n_way} is larger than the {len(present)} classes "
                f"available; lower n_way to at most {len(present)} or give "
                "more classes."
            )
        needed = n_shot + n_query
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
                f"Episodes need n_shot + n_query = {needed} examples per class, "
                f"but {len(short)} classes have fewer: {shown}{more}. "
                "Lower n_shot/n_query, or drop those classes."
            )
        self.n_way, self.n_shot, self.n_query = int(n_way), int(n_shot), int(n_query)
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
        support : ndarray of shape (n_way, n_shot)
        query : ndarray of shape (n_way, n_query)
            Row ``i`` of both holds the examples of the episode's ``i``-th class.
        """
        classes = rng.choice(self.classes, size=self.n_way, replace=False)
        counts = self.counts[classes]
        keys = rng.random((self.n_way, self.members.shape[1]))
        keys[np.arange(self.members.shape[1]) >= counts[:, None]] = 2.0  # padding last
        take = np.argsort(keys, axis=1)[:, : self.n_shot + self.n_query]
        picked = self.members[classes[:, None], take]
        return picked[:, : self.n_shot], picked[:, self.n_shot :]


class EpisodeDataset(torch.utils.data.Dataset):
    """Samples held as one tensor plus integer class codes.

    Episodes are gathered from ``X`` by index, so no per-sample Python runs
    while training.

    Parameters
    ----------
    X : Tensor of shape (n_samples, ...)
    codes : ndarray of int, shape (n_samples,)
        Class code of each sample, in ``[0, len(classes))``.
    classes : ndarray
        The label behind each code (for messages).
    """

    def __init__(self, X: torch.Tensor, codes: np.ndarray, classes: np.ndarray):
        self.X, self.codes, self.classes = X, np.asarray(codes), np.asarray(classes)

    @classmethod
    def from_labelled(cls, X, y, estimator: str = "EpisodicTrainer") -> EpisodeDataset:
        """Checked float32 samples and their labels (ints or strings)."""
        # Sparse rows are densified: episodes index the samples as a tensor.
        X = dense_rows(check_samples(X, accept_sparse="csr"))
        y = check_labels(y, estimator)
        if len(y) != len(X):
            raise ValueError(
                f"X has {len(X)} rows but y has {len(y)}; they must match."
            )
        encoder = LabelEncoder().fit(y)
        return cls(as_tensor(X), encoder.transform(y), encoder.classes_)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.codes[i]

    def subset(self, class_codes: np.ndarray) -> EpisodeDataset:
        """The samples of some classes, with their codes renumbered from 0."""
        keep = np.isin(self.codes, class_codes)
        codes = np.searchsorted(np.sort(class_codes), self.codes[keep])
        return EpisodeDataset(
            self.X[as_tensor(np.flatnonzero(keep))],
            codes,
            self.classes[np.sort(class_codes)],
        )


def as_episode_dataset(dataset) -> EpisodeDataset:
    """An :class:`EpisodeDataset`, or a labelled skorch ``Dataset`` made one."""
    if isinstance(dataset, EpisodeDataset):
        return dataset
    if isinstance(dataset, Dataset) and dataset.y is not None:
        return EpisodeDataset.from_labelled(dataset.X, dataset.y)
    raise TypeError(
        "Episodic training and validation need labelled data: pass X and y, "
        "or an EpisodeDataset / skorch Dataset with y, "
        f"got {type(dataset).__name__}."
    )


class ClassSplit:
    """Hold out whole classes for validation.

    Few-shot validation must measure generalisation to *new* classes, so
    unlike skorch's ``ValidSplit`` this never splits the samples of a class.

    Parameters
    ----------
    valid_size : float or int, default=0.2
        Fraction (float in (0, 1)) or number (int) of classes held out.
    random_state : int, RandomState or None, default=None
        Which classes are held out.
    """

    def __init__(self, valid_size: float | int = 0.2, random_state=None):
        self.valid_size = valid_size
        self.random_state = random_state

    def __call__(self, dataset, y=None, groups=None):
        dataset = as_episode_dataset(dataset)
        n_classes = len(dataset.classes)
        size = self.valid_size
        n_valid = int(np.ceil(size * n_classes)) if isinstance(size, float) else size
        if not 2 <= n_valid <= n_classes - 2:
            raise ValueError(
                f"ClassSplit(valid_size={size!r}) holds out {n_valid} of the "
                f"{n_classes} classes, but validation episodes need at least 2 "
                "classes and training at least 2 more; change valid_size or pass "
                "train_split=None to train without validation."
            )
        valid = make_rng(self.random_state).choice(n_classes, n_valid, replace=False)
        train = np.setdiff1d(np.arange(n_classes), valid)
        return dataset.subset(train), dataset.subset(valid)

    def __repr__(self) -> str:
        return f"ClassSplit(valid_size={self.valid_size!r})"


class EpisodeLoader:
    """Yields ``n_episodes`` episodes as skorch batches ``(X, target)``.

    ``X`` stacks the support examples then the queries, class by class;
    ``target`` is ``{"support": codes, "query": codes}`` with episode-local
    class codes. A fresh generator from ``make_rng`` is used at each pass.
    """

    def __init__(
        self,
        dataset: EpisodeDataset,
        sampler: EpisodeSampler,
        n_episodes: int,
        make_rng: Callable[[], np.random.Generator],
    ):
        self.dataset, self.sampler = dataset, sampler
        self.n_episodes, self.make_rng = n_episodes, make_rng
        self.target = episode_target(sampler.n_way, sampler.n_shot, sampler.n_query)

    def __len__(self) -> int:
        return self.n_episodes

    def __iter__(self) -> Iterator[tuple[torch.Tensor, dict]]:
        rng = self.make_rng()
        for _ in range(self.n_episodes):
            support, query = self.sampler.sample(rng)
            index = as_tensor(np.concatenate([support.ravel(), query.ravel()]))
            yield self.dataset.X[index], self.target


def episode_target(n_way: int, n_shot: int, n_query: int) -> dict:
    """Episode-local class codes of an episode's rows, support rows first:
    ``{"support": LongTensor (n_way * n_shot,), "query": LongTensor
    (n_way * n_query,)}``, class by class."""
    way = torch.arange(n_way)
    return {
        "support": way.repeat_interleave(n_shot),
        "query": way.repeat_interleave(n_query),
    }
