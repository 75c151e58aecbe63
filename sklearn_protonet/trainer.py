"""Episodic meta-training of an encoder with skorch (the paper's Algorithm 1).

:class:`EpisodicTrainer` is a skorch ``NeuralNet`` whose batches are
episodes: each step samples ``n_way`` classes with ``n_support`` + ``n_query``
examples each, embeds them, builds one prototype per class from the support
examples and takes a cross-entropy step on the queries' negative distances
(eq. 1-2). Everything else (callbacks, history, checkpoints, progress bars,
learning-rate schedules) is plain skorch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import (
    Callback,
    EpochTimer,
    LRScheduler,
    PassthroughScoring,
    PrintLog,
)
from skorch.dataset import Dataset
from skorch.utils import is_dataset
from torch import nn

from ._embedding import (
    as_tensor,
    has_lazy_parameters,
    iter_embeddings,
    materialize,
    module_device,
    numeric_input,
)
from .callbacks import EpisodeLRScheduler
from .distances import METRICS, class_prototypes, pairwise_distances
from .episodes import EpisodeSampler, make_rng

__all__ = [
    "ClassSplit",
    "EpisodeDataset",
    "EpisodicTrainer",
    "episode_logits",
    "paper_lr_schedule",
]


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
        dataset = _as_episode_dataset(dataset)
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
        way = torch.arange(sampler.n_way)
        self.target = {
            "support": way.repeat_interleave(sampler.n_support),
            "query": way.repeat_interleave(sampler.n_query),
        }

    def __len__(self) -> int:
        return self.n_episodes

    def __iter__(self) -> Iterator[tuple[torch.Tensor, dict]]:
        rng = self.make_rng()
        for _ in range(self.n_episodes):
            support, query = self.sampler.sample(rng)
            index = as_tensor(np.concatenate([support.ravel(), query.ravel()]))
            yield self.dataset.X[index], self.target


def episode_logits(
    embeddings: torch.Tensor, target: dict, metric: str = "sqeuclidean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of an episode's queries over its prototypes (eq. 1-2).

    Parameters
    ----------
    embeddings : Tensor of shape (n_support_rows + n_query_rows, d)
        Support rows first, then query rows, as :class:`EpisodeLoader` stacks them.
    target : dict
        ``{"support": codes, "query": codes}``, episode-local class codes.
    metric : str, default="sqeuclidean"

    Returns
    -------
    logits : Tensor of shape (n_query_rows, n_way)
        Negative distances.
    query_codes : LongTensor of shape (n_query_rows,)
    """
    support_codes, query_codes = target["support"], target["query"]
    n_support_rows = len(support_codes)
    prototypes = class_prototypes(
        embeddings[:n_support_rows], support_codes, int(support_codes.max()) + 1
    )
    return -pairwise_distances(embeddings[n_support_rows:], prototypes, metric), (
        query_codes
    )


class EpisodeAccuracy(Callback):
    """Records each episode's query accuracy as ``train_acc`` / ``valid_acc``."""

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        with torch.no_grad():
            target = {k: v.to(y_pred.device) for k, v in batch[1].items()}
            logits, codes = episode_logits(y_pred.detach(), target, net.metric)
            accuracy = (logits.argmax(1) == codes).float().mean().item()
        net.history.record_batch("train_acc" if training else "valid_acc", accuracy)


def paper_lr_schedule(step_size: int = 2000, gamma: float = 0.5) -> LRScheduler:
    """The paper's schedule: halve the learning rate every 2,000 episodes.

    Returns a skorch ``LRScheduler`` callback stepping once per episode; pass
    it in ``callbacks``. It is an
    :class:`~sklearn_protonet.callbacks.EpisodeLRScheduler`, so a run resumed
    from a ``Checkpoint`` continues the schedule at the episode where it stopped.
    """
    return EpisodeLRScheduler(
        policy=torch.optim.lr_scheduler.StepLR,
        step_size=step_size,
        gamma=gamma,
        step_every="batch",
    )


def _as_episode_dataset(dataset) -> EpisodeDataset:
    if isinstance(dataset, EpisodeDataset):
        return dataset
    if isinstance(dataset, Dataset) and dataset.y is not None:
        return _encode(dataset.X, dataset.y)
    raise TypeError(
        "Episodic training and validation need labelled data: pass X and y, "
        "or an EpisodeDataset / skorch Dataset with y, "
        f"got {type(dataset).__name__}."
    )


def _encode(X, y) -> EpisodeDataset:
    with numeric_input("X"):
        X = check_array(X, dtype=np.float32, allow_nd=True, input_name="X")
    y = column_or_1d(np.asarray(y), warn=True)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}; they must match.")
    encoder = LabelEncoder().fit(y)
    return EpisodeDataset(as_tensor(X), encoder.transform(y), encoder.classes_)


class EpisodicTrainer(NeuralNet):
    """Meta-trains an encoder as a prototypical network, episode by episode.

    A skorch ``NeuralNet``: every skorch parameter, callback and method works
    (``ProgressBar``, ``Checkpoint``, ``EarlyStopping``, ``LRScheduler``,
    ``history``, ``save_params``...). ``fit(X, y)`` takes labelled samples of the
    *base* classes; an epoch is ``episodes_per_epoch`` episodes. Once fitted,
    ``transform`` embeds new samples, and the trainer can be passed as the
    ``encoder`` of :class:`~sklearn_protonet.PrototypicalClassifier`.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The encoder, e.g. :class:`~sklearn_protonet.modules.Conv4`; pass its
        arguments as ``module__input_shape=...`` the skorch way.
    criterion : default=torch.nn.CrossEntropyLoss
        Applied to the queries' logits (negative distances) and codes.
    optimizer : default=torch.optim.Adam
        As in the paper.
    lr : float, default=1e-3
        As in the paper. For its halving every 2,000 episodes add
        ``paper_lr_schedule()`` to ``callbacks``.
    max_epochs : int, default=10
    n_way : int, default=5
        Classes per training episode (the paper uses 60 on Omniglot).
    n_support : int, default=5
        Support examples per class and training episode (the paper matches
        the shot used at test time).
    n_query : int, default=5
        Query examples per class and training episode.
    episodes_per_epoch : int, default=100
    valid_n_way : int or None, default=None
        Classes per validation episode; ``None`` uses ``n_way``, capped at the
        number of validation classes.
    valid_n_support, valid_n_query : int or None, default=None
        ``None`` uses ``n_support`` / ``n_query``.
    valid_episodes : int, default=100
        Validation episodes per epoch. They are the same episodes every epoch,
        so the epochs' scores are comparable.
    metric : {"sqeuclidean", "euclidean", "cosine"}, default="sqeuclidean"
        Distance in the loss; keep it equal to the classifier's ``metric``.
    train_split : callable or None, default=ClassSplit(0.2)
        Held-out *classes* for validation (``valid_loss``, ``valid_acc`` in
        ``history``). ``None`` trains on everything without validation;
        skorch's ``predefined_split(Dataset(X_val, y_val))`` uses given classes.
    batch_size : int, default=256
        Rows per forward pass in ``transform`` (episodes set their own size).
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation and the episodes, so a run on CPU is
        reproducible. A ``module`` passed as an instance keeps the weights it
        was built with: pass the class (and ``module__*`` arguments), or seed
        torch before building the instance.
    autocast_dtype : {None, "bfloat16", "float16"}, default=None
        Run the encoder's forward pass during meta-training under
        ``torch.autocast`` with this dtype (mixed precision). ``"bfloat16"``
        roughly doubles Conv4's training speed on CPUs with bfloat16
        instructions (``benchmarks/speed.py``); weights, distances and the
        loss stay float32, and ``transform`` always embeds in float32.
    **kwargs
        Any other ``NeuralNet`` argument (``callbacks``, ``device``,
        ``verbose``, ``module__*``, ``optimizer__*``...).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained encoder.
    history_ : skorch.History
        Per epoch: ``train_loss``, ``train_acc``, ``valid_loss``, ``valid_acc``
        (episodic, on held-out classes), ``dur``.
    seed_ : int
        The seed drawn from ``random_state`` at initialisation.

    Examples
    --------
    >>> from sklearn_protonet import EpisodicTrainer
    >>> from sklearn_protonet.modules import MLP
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> trainer = EpisodicTrainer(MLP, max_epochs=2, verbose=0, random_state=0)
    >>> trainer.fit(X[y < 8] / 16, y[y < 8]).transform(X[y >= 8] / 16).shape
    (354, 64)
    """

    def __init__(
        self,
        module,
        *args,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr: float = 1e-3,
        max_epochs: int = 10,
        n_way: int = 5,
        n_support: int = 5,
        n_query: int = 5,
        episodes_per_epoch: int = 100,
        valid_n_way: int | None = None,
        valid_n_support: int | None = None,
        valid_n_query: int | None = None,
        valid_episodes: int = 100,
        metric: str = "sqeuclidean",
        train_split=ClassSplit(0.2),  # noqa: B008  (skorch's convention)
        batch_size: int = 256,
        random_state=None,
        autocast_dtype: str | None = None,
        **kwargs,
    ):
        super().__init__(
            module,
            *args,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            train_split=train_split,
            batch_size=batch_size,
            **kwargs,
        )
        self.n_way = n_way
        self.n_support = n_support
        self.n_query = n_query
        self.episodes_per_epoch = episodes_per_epoch
        self.valid_n_way = valid_n_way
        self.valid_n_support = valid_n_support
        self.valid_n_query = valid_n_query
        self.valid_episodes = valid_episodes
        self.metric = metric
        self.random_state = random_state
        self.autocast_dtype = autocast_dtype

    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("episode_accuracy", EpisodeAccuracy()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            (
                "train_acc",
                PassthroughScoring(
                    name="train_acc", lower_is_better=False, on_train=True
                ),
            ),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("valid_acc", PassthroughScoring(name="valid_acc", lower_is_better=False)),
            ("print_log", PrintLog()),
        ]

    # -- set-up ---------------------------------------------------------------

    def initialize(self):
        """Initialise module, criterion, optimizer and callbacks, seeded by
        ``random_state``."""
        if self.metric not in METRICS:
            raise ValueError(
                f"metric must be one of {METRICS}, got {self.metric!r}; "
                "set metric='sqeuclidean' as in the paper."
            )
        if self.autocast_dtype not in (None, "bfloat16", "float16"):
            raise ValueError(
                "autocast_dtype must be None, 'bfloat16' or 'float16', got "
                f"{self.autocast_dtype!r}."
            )
        self.seed_ = int(make_rng(self.random_state).integers(2**31 - 1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            return super().initialize()

    def get_dataset(self, X, y=None):
        """Labelled data becomes an :class:`EpisodeDataset`; other data is
        left to skorch."""
        if is_dataset(X) or y is None:
            return super().get_dataset(X, y)
        return _encode(X, y)

    def get_iterator(self, dataset, training=False):
        """Episodes for labelled data (training, validation); plain batches
        otherwise."""
        if not training and not isinstance(dataset, EpisodeDataset):
            if not (isinstance(dataset, Dataset) and dataset.y is not None):
                return super().get_iterator(dataset, training=training)
        dataset = _as_episode_dataset(dataset)
        if training:
            sampler = EpisodeSampler(
                dataset.codes,
                self.n_way,
                self.n_support,
                self.n_query,
                dataset.classes,
            )
            # Seeded by the epoch number, so a resumed run draws the episodes
            # the uninterrupted run would have drawn.
            return EpisodeLoader(
                dataset,
                sampler,
                self.episodes_per_epoch,
                lambda: np.random.default_rng([self.seed_, 1, len(self.history)]),
            )
        n_way = self.valid_n_way or min(self.n_way, len(dataset.classes))
        sampler = EpisodeSampler(
            dataset.codes,
            n_way,
            self.valid_n_support or self.n_support,
            self.valid_n_query or self.n_query,
            dataset.classes,
            param_names=("valid_n_way", "valid_n_support", "valid_n_query"),
        )
        # The same validation episodes every epoch: comparable scores.
        return EpisodeLoader(
            dataset,
            sampler,
            self.valid_episodes,
            lambda: np.random.default_rng([self.seed_, 0]),
        )

    # -- training -------------------------------------------------------------

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue meta-training on labelled data (see ``fit``)."""
        if not self.initialized_:
            self.initialize()
        dataset = self.get_dataset(X, y)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_ + len(self.history))
            if has_lazy_parameters(self.module_):
                materialize(self.module_, _as_episode_dataset(dataset).X, self.seed_)
                self.initialize_optimizer()
            return super().partial_fit(dataset, None, classes, **fit_params)

    def fit(self, X, y=None, **fit_params):
        """Meta-train the encoder on labelled samples of the base classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Samples, or a skorch ``Dataset`` holding X and y.
        y : array-like of shape (n_samples,)
            Class labels (ints or strings). Each class used for training needs
            at least ``n_support + n_query`` samples.

        Returns
        -------
        self
        """
        return super().fit(X, y, **fit_params)

    def infer(self, x, **fit_params):
        """The module's forward pass, under autocast when ``autocast_dtype``
        is set; embeddings come back as float32 for the distances."""
        dtype = self.autocast_dtype
        device_type = torch.device(self.device).type
        with torch.autocast(
            device_type, dtype=getattr(torch, dtype or "float32"), enabled=bool(dtype)
        ):
            return super().infer(x, **fit_params).float()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Cross-entropy of the queries over the episode's prototypes."""
        y_true = {k: v.to(y_pred.device) for k, v in y_true.items()}
        logits, codes = episode_logits(y_pred, y_true, self.metric)
        return self.criterion_(logits, codes)

    # -- inference ------------------------------------------------------------

    def transform(self, X) -> np.ndarray:
        """Embed samples with the trained encoder (eval mode, no autograd).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)

        Returns
        -------
        ndarray of shape (n_samples, embedding_dim)
        """
        check_is_fitted(self)
        with numeric_input("X"):
            X = check_array(X, dtype=np.float32, allow_nd=True, input_name="X")
        X = as_tensor(X)
        # device=None (accelerate places the module): embed where it lives.
        device = module_device(self.module_) if self.device is None else self.device
        chunks = iter_embeddings(self.module_, X, self.batch_size, device)
        return torch.cat([c.cpu() for c in chunks]).numpy()

    def predict(self, X):
        raise AttributeError(
            "EpisodicTrainer learns an embedding, not classes: use "
            "PrototypicalClassifier(encoder=trainer).fit(X_support, y_support)"
            ".predict(X), or trainer.transform(X) for the embeddings."
        )

    predict_proba = predict
