"""Zero-shot episode data: samples with one metadata row per class, and the
episodes drawn from them (queries and their classes' metadata)."""

from __future__ import annotations

import numpy as np
import torch

from .._inputs import as_tensor
from ..episodes import EpisodeDataset

__all__ = ["ZeroShotDataset", "ZeroShotEpisodes"]


class ZeroShotDataset(EpisodeDataset):
    """Samples with class codes, plus one metadata row per class."""

    def __init__(self, X, codes, classes, metadata: torch.Tensor):
        super().__init__(X, codes, classes)
        self.metadata = metadata

    def subset(self, class_codes: np.ndarray) -> ZeroShotDataset:
        part = super().subset(class_codes)
        rows = self.metadata[as_tensor(np.sort(class_codes))]
        return ZeroShotDataset(part.X, part.codes, part.classes, rows)


class ZeroShotEpisodes:
    """Yields ``n_episodes`` zero-shot episodes as skorch batches.

    Each draws ``n_way`` classes and ``n_query`` examples of each; the batch is
    ``(queries, {"metadata": rows of the classes, "query": local codes})``.
    """

    def __init__(self, dataset: ZeroShotDataset, n_way, n_query, n_episodes, seed):
        counts = np.bincount(dataset.codes, minlength=len(dataset.classes))
        short = dataset.classes[counts < n_query].tolist()
        if len(dataset.classes) < n_way or short:
            raise ValueError(
                f"Zero-shot episodes need n_way={n_way} classes with n_query="
                f"{n_query} examples each; there are {len(dataset.classes)} "
                f"classes, and these have fewer examples: {short[:10]}. Lower "
                "n_way or n_query."
            )
        self.dataset, self.n_way, self.n_query = dataset, n_way, n_query
        self.n_episodes, self.seed = n_episodes, seed
        self.members = [np.flatnonzero(dataset.codes == c) for c in range(len(counts))]
        self.target = torch.arange(n_way).repeat_interleave(n_query)

    def __len__(self) -> int:
        return self.n_episodes

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.n_episodes):
            classes = rng.choice(len(self.members), self.n_way, replace=False)
            index = np.concatenate(
                [
                    rng.choice(self.members[c], self.n_query, replace=False)
                    for c in classes
                ]
            )
            yield (
                self.dataset.X[as_tensor(index)],
                {
                    "metadata": self.dataset.metadata[as_tensor(classes)],
                    "query": self.target,
                },
            )
