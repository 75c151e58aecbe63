"""The meta-trainer: a skorch net whose batches are episodes (Algorithm 1).

:class:`EpisodicTrainer` is a skorch ``NeuralNet``: each step samples
``n_way`` classes with ``n_shot`` + ``n_query`` examples each
(:mod:`~sklearn_protonet.episodes`), embeds them, builds one prototype per
class from the support examples and takes a cross-entropy step on the
queries' negative distances (eq. 1-2, :mod:`~sklearn_protonet.distances`).
Everything else (callbacks, history, checkpoints, progress bars,
learning-rate schedules) is plain skorch.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import (
    Callback,
    EarlyStopping,
    EpochTimer,
    PassthroughScoring,
    PrintLog,
)
from skorch.dataset import Dataset
from skorch.utils import is_dataset
from torch import nn

from . import contracts
from ._encoders import (
    DeviceName,
    check_device_available,
    eval_mode,
    has_lazy_parameters,
    iter_embeddings,
    materialize,
    module_device,
)
from ._geometry import DEFAULT_METRIC, check_capabilities, get_metric, metric_names
from ._inputs import as_tensor, check_samples
from ._io import atomic_writer
from ._numerics import check_finite_loss, check_finite_weights
from ._rng import seeded_global, training_generators, uses_global_rng
from ._sklearn_contract import check_encoder_input, record_input, sklearn_signature
from ._sparse import iter_dense
from ._threads import load_aware_threads, recheck_load
from .callbacks import DivergenceCheck, EpisodeAccuracy
from .distances import episode_logits
from .episodes import (
    ClassSplit,
    EpisodeDataset,
    EpisodeLoader,
    EpisodeSampler,
    as_episode_dataset,
    make_rng,
)
from .runtime import freed_memory_kept

__all__ = ["EpisodicTrainer"]


#: The rules between the trainer's parameters and its metric's capabilities
#: (``_geometry.check_capabilities``).
_NEEDS = (
    ("episode_loss", lambda v: v == "nca", "pair_trainable", "compares rows with rows"),
)


def _is_callback_list(value) -> bool:
    """Whether skorch can initialise ``value`` as the ``callbacks`` parameter."""
    if value is None or (isinstance(value, str) and value == "disable"):
        return True
    if not isinstance(value, list):
        return False
    named = [
        item[1] if isinstance(item, tuple) and len(item) == 2 else item
        for item in value
    ]
    return all(isinstance(item, (Callback, type)) for item in named)


def _is_early_stop(error: KeyboardInterrupt) -> bool:
    """Whether skorch's ``EarlyStopping`` raised ``error`` to end training."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    frame = None if tb is None else tb.tb_frame
    return frame is not None and isinstance(frame.f_locals.get("self"), EarlyStopping)


class EpisodicTrainer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, NeuralNet):
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
        Applied to the logits of ``episode_loss`` and the rows' codes.
    optimizer : default=torch.optim.Adam
        As in the paper.
    lr : float, default=1e-3
        As in the paper. For its halving every 2,000 episodes add
        ``paper_lr_schedule()`` to ``callbacks``.
    max_epochs : int, default=10
    n_way : int, default=5
        Classes per training episode (the paper uses 60 on Omniglot).
    n_shot : int, default=5
        Support examples per class and training episode (the paper matches
        the shot used at test time).
    n_query : int, default=5
        Query examples per class and training episode.
    episodes_per_epoch : int, default=100
    valid_n_way : int or None, default=None
        Classes per validation episode; ``None`` uses ``n_way``, capped at the
        number of validation classes.
    valid_n_shot, valid_n_query : int or None, default=None
        ``None`` uses ``n_shot`` / ``n_query``.
    valid_episodes : int, default=100
        Validation episodes per epoch. They are the same episodes every epoch,
        so the epochs' scores are comparable.
    metric : {"sqeuclidean", "euclidean", "cosine", "gaussian"}, \
default="sqeuclidean"
        Distance in the loss; keep it equal to the classifier's ``metric``.
        ``"gaussian"`` trains a
        :class:`~sklearn_protonet.covariance.GaussianEncoder` (Gaussian
        Prototypical Networks).
    episode_loss : {"prototypical", "nca"}, default="prototypical"
        ``"prototypical"``: the paper's loss, the queries' logits over the
        support means. ``"nca"``: every row of the episode against every
        other row (neighbourhood component analysis, as Laenen & Bertinetto,
        2021, train prototypical networks): the same episodes and encoder,
        more comparisons per image. On Omniglot it learns faster per episode
        (``benchmarks/time_to_accuracy.py``). Not with ``metric="gaussian"``.
    train_split : callable or None, default=ClassSplit(0.2)
        Held-out *classes* for validation (``valid_loss``, ``valid_acc`` in
        ``history``). ``None`` trains on everything without validation;
        skorch's ``predefined_split(Dataset(X_val, y_val))`` uses given classes.
    batch_size : int, default=256
        Rows per forward pass in ``transform`` (episodes set their own size).
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the episodes, the dropout and
        shifts during training, and the classes a ``ClassSplit`` without
        ``random_state`` holds out, so a run on CPU is reproducible, on any
        thread, bit for bit on the same number of torch threads. On a busy
        machine the library computes on the cores other processes leave
        idle, and another thread count sums in another order: set
        ``OMP_NUM_THREADS`` for bit-for-bit reruns there. A ``module``
        passed as an instance keeps the weights it was built with: pass the
        class (and ``module__*`` arguments), or seed torch before building
        the instance.
    autocast_dtype : {None, "bfloat16", "float16"}, default=None
        Run the encoder's forward pass during meta-training under
        ``torch.autocast`` with this dtype (mixed precision); weights,
        distances and the loss stay float32, and ``transform`` always embeds
        in float32. Whether it pays depends on the hardware: on GPUs and on
        CPUs with AMX bfloat16 tiles it is faster; with AVX-512 bfloat16
        alone it may be faster or slower than float32 (measure it), and on
        AVX2-only CPUs (most AMD, older Intel) bfloat16 is emulated
        and several times *slower*.
        :func:`~sklearn_protonet.hardware.training_autocast_dtype` picks
        the value for the machine at hand.
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
    interrupted_ : bool
        Whether the last ``fit`` / ``partial_fit`` was interrupted
        (``KeyboardInterrupt``, Ctrl-C): skorch then returns the partly
        trained net, as with any skorch net. ``EarlyStopping`` is not an
        interruption.
    n_features_in_ : int
        Number of columns of the (2-D, array, DataFrame or sparse) samples
        meta-trained on; ``transform`` and
        :class:`~sklearn_protonet.PrototypicalClassifier` refuse other widths
        with scikit-learn's message. Not set for N-D images or skorch
        datasets (the module checks their shape).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when meta-trained on a DataFrame with string columns.

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
        n_shot: int = 5,
        n_query: int = 5,
        episodes_per_epoch: int = 100,
        valid_n_way: int | None = None,
        valid_n_shot: int | None = None,
        valid_n_query: int | None = None,
        valid_episodes: int = 100,
        metric: str = DEFAULT_METRIC,
        episode_loss: str = "prototypical",
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
        self.n_shot = n_shot
        self.n_query = n_query
        self.episodes_per_epoch = episodes_per_epoch
        self.valid_n_way = valid_n_way
        self.valid_n_shot = valid_n_shot
        self.valid_n_query = valid_n_query
        self.valid_episodes = valid_episodes
        self.metric = metric
        self.episode_loss = episode_loss
        self.random_state = random_state
        self.autocast_dtype = autocast_dtype

    _parameter_constraints: dict = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "n_way": [Interval(Integral, 2, None, closed="left")],
        "n_shot": [Interval(Integral, 1, None, closed="left")],
        "n_query": [Interval(Integral, 1, None, closed="left")],
        "episodes_per_epoch": [Interval(Integral, 1, None, closed="left")],
        "valid_n_way": [None, Interval(Integral, 2, None, closed="left")],
        "valid_n_shot": [None, Interval(Integral, 1, None, closed="left")],
        "valid_n_query": [None, Interval(Integral, 1, None, closed="left")],
        "valid_episodes": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions(set(metric_names(trainable=True)))],
        "episode_loss": [StrOptions({"prototypical", "nca"})],
        "batch_size": [
            Interval(Integral, 1, None, closed="left"),
            Options(Integral, {-1}),
        ],
        "random_state": ["random_state"],
        "autocast_dtype": [None, StrOptions({"bfloat16", "float16"})],
        # None: the module stays where it is (accelerate places it).
        "device": [None, DeviceName(), torch.device],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            # A function of the subclass's own to carry the merged signature
            # (never set it on a mixin's __init__, shared with other classes).
            def __init__(self, *args, **kwargs):
                super(cls, self).__init__(*args, **kwargs)

            cls.__init__ = __init__
        cls.__init__.__signature__ = sklearn_signature(cls)

    # scikit-learn's repr (changed parameters only, nested estimators wrapped)
    # instead of skorch's, which shows the module alone.
    __repr__ = BaseEstimator.__repr__

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_"; private ones
        # (_params_to_validate, _sklearn_output_config) are no parameters.
        return [name for name in super()._get_param_names() if name[0] != "_"]

    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("episode_accuracy", EpisodeAccuracy()),
            ("divergence_check", DivergenceCheck()),
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

    def _validate_params(self):
        """Check the episodic parameters (scikit-learn's constraints and
        messages), then skorch's argument names.

        skorch runs this hook in ``initialize`` (so in ``fit``); ``set_params``
        checks the new values too. The episode sampler checks only what needs
        the data (enough classes, enough examples per class).
        """
        self._check_scalar_params()
        super()._validate_params()

    def _check_scalar_params(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            {name: getattr(self, name) for name in self._parameter_constraints},
            caller_name=type(self).__name__,
        )
        check_capabilities(self, get_metric(self.metric), _NEEDS)
        if not _is_callback_list(self.callbacks):
            raise InvalidParameterError(
                f"The 'callbacks' parameter of {type(self).__name__} must be None, "
                "'disable' or a list of skorch callbacks (instances, classes or "
                f"(name, callback) tuples). Got {self.callbacks!r} instead."
            )
        check_device_available(self.device, type(self).__name__)

    def set_params(self, **kwargs):
        """Set parameters (skorch's ``set_params``); values are checked by
        ``fit``, as in scikit-learn.

        skorch initialises the callbacks when ``callbacks`` or a
        ``callbacks__*`` parameter is set, from the list stored *before* the
        call; the new list is stored first, and one that is no list of
        callbacks is stored as it is and refused by ``fit`` with the
        parameter's name.
        """
        if not self.initialized_:
            # skorch refuses a torch module or optimizer as an attribute
            # outside initialize; before it, a module instance is a value
            # like any other (set_params(**get_params()) must round-trip).
            for key in ("module", "criterion", "optimizer"):
                if isinstance(kwargs.get(key), (nn.Module, torch.optim.Optimizer)):
                    vars(self)[key] = kwargs.pop(key)
        if "callbacks" in kwargs:
            self.callbacks = kwargs["callbacks"]
        if not _is_callback_list(self.callbacks):
            for key in [key for key in kwargs if key.startswith("callbacks")]:
                setattr(self, key, kwargs.pop(key))
        return super().set_params(**kwargs)

    def initialize(self):
        """Initialise module, criterion, optimizer and callbacks, seeded by
        ``random_state``."""
        # Before building anything (skorch's hook runs at the end, again).
        self._check_scalar_params()
        self.seed_ = int(make_rng(self.random_state).integers(2**31 - 1))
        # Initial weights come from torch's global generator: seeded, one
        # thread at a time, the caller's state restored (_rng).
        with seeded_global(self.seed_):
            return super().initialize()

    def get_dataset(self, X, y=None):
        """Labelled data becomes an :class:`EpisodeDataset`; other data is
        left to skorch."""
        if is_dataset(X) or y is None:
            return super().get_dataset(X, y)
        return EpisodeDataset.from_labelled(X, y)

    def get_split_datasets(self, X, y=None, **fit_params):
        """skorch's split; a :class:`ClassSplit` without ``random_state``
        holds out classes drawn from the trainer's seed, so a seeded trainer
        gives the same model with the default ``train_split``."""
        split = self.train_split
        if not (isinstance(split, ClassSplit) and split.random_state is None):
            return super().get_split_datasets(X, y, **fit_params)
        rng = np.random.default_rng([self.seed_, 2])
        self.train_split = ClassSplit(split.valid_size, random_state=rng)
        try:
            return super().get_split_datasets(X, y, **fit_params)
        finally:
            self.train_split = split

    def get_iterator(self, dataset, training=False):
        """Episodes for labelled data (training, validation); plain batches
        otherwise."""
        if not training and not isinstance(dataset, EpisodeDataset):
            if not (isinstance(dataset, Dataset) and dataset.y is not None):
                return super().get_iterator(dataset, training=training)
        dataset = as_episode_dataset(dataset)
        if training:
            sampler = EpisodeSampler(
                dataset.codes, self.n_way, self.n_shot, self.n_query, dataset.classes
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
        try:
            sampler = EpisodeSampler(
                dataset.codes,
                n_way,
                self.valid_n_shot or self.n_shot,
                self.valid_n_query or self.n_query,
                dataset.classes,
            )
        except ValueError as error:
            raise ValueError(
                f"Validation episodes cannot be drawn from the held-out classes: "
                f"{error} For validation episodes, set valid_n_way, valid_n_shot "
                "and valid_n_query, or change train_split."
            ) from error
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
        self._check_labelled(X, y)
        if not self.initialized_:
            self.initialize()
        record_input(self, X, reset=not hasattr(self, "n_features_in_"))
        dataset = self.get_dataset(X, y)
        # freed_memory_kept: each step frees and reallocates activations of
        # tens of MB; malloc keeps them while training (1.5x faster on CPU).
        # Dropout and shifts draw from this fit's own generator; modules that
        # draw from torch's global one train seeded and one at a time (_rng).
        seed = self.seed_ + len(self.history)
        shared = seeded_global(seed) if uses_global_rng(self.module_) else nullcontext()
        # The thread count follows the cores other processes leave idle,
        # checked again before each episode (_threads).
        on_cpu = module_device(self.module_).type == "cpu"
        threads = load_aware_threads() if on_cpu else nullcontext()
        with shared, training_generators(seed), freed_memory_kept(), threads:
            if has_lazy_parameters(self.module_):
                materialize(self.module_, as_episode_dataset(dataset).X, self.seed_)
                self.initialize_optimizer()
            super().partial_fit(dataset, None, classes, **fit_params)
        check_finite_weights(self.module_, len(self.history), self.lr)
        return self

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop, recording an interruption in ``interrupted_``.

        skorch ends training quietly on ``KeyboardInterrupt`` (Ctrl-C, or
        ``EarlyStopping``'s way of stopping), and so does this trainer; it
        also records whether the stop was an interruption (anything but
        ``EarlyStopping``), which
        :class:`~sklearn_protonet.PrototypicalClassifier` refuses to build on.
        """
        self.interrupted_ = False
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as error:
            self.interrupted_ = not _is_early_stop(error)
            raise

    def fit(self, X, y=None, **fit_params):
        """Meta-train the encoder on labelled samples of the base classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Samples, or a skorch ``Dataset`` holding X and y.
        y : array-like of shape (n_samples,)
            Class labels (ints or strings). Each class used for training needs
            at least ``n_shot + n_query`` samples.

        Returns
        -------
        self
        """
        self._check_labelled(X, y)
        record_input(self, X, reset=True)
        return super().fit(X, y, **fit_params)

    def _check_labelled(self, X, y) -> None:
        """Refuse samples without labels, in scikit-learn's words."""
        if y is None and not is_dataset(X):
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target "
                "y is None: episodes are drawn class by class, so meta-training "
                "needs the samples' labels (or a skorch Dataset holding X and y)."
            )

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        """skorch's, and the thread count for the load measured since the
        last episode (other processes start and stop during a long run)."""
        recheck_load()
        super().on_batch_begin(net, batch=batch, training=training, **kwargs)

    def infer(self, x, **fit_params):
        """The module's forward pass, under autocast when ``autocast_dtype``
        is set; embeddings come back as float32 for the distances."""
        dtype = self.autocast_dtype
        device_type = torch.device(self.device).type
        with torch.autocast(
            device_type, dtype=getattr(torch, dtype or "float32"), enabled=bool(dtype)
        ):
            return super().infer(x, **fit_params).float()

    def episode_logits(self, y_pred, target) -> tuple[torch.Tensor, torch.Tensor]:
        """The queries' logits over the episode's prototypes, and their codes."""
        target = {k: v.to(y_pred.device) for k, v in target.items()}
        return episode_logits(y_pred, target, self.metric)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Cross-entropy of the queries over the episode's prototypes, or of
        every row over its neighbours' classes (``episode_loss="nca"``)."""
        if self.episode_loss == "nca":
            target = {k: v.to(y_pred.device) for k, v in y_true.items()}
            logits = get_metric(self.metric).neighbour_logits(y_pred, target)
        else:
            logits = self.episode_logits(y_pred, y_true)
        loss = self.criterion_(*logits)
        # A diverged run stops here, naming the epoch, instead of recording
        # NaN losses and ending with NaN weights.
        epoch = len(self.history)
        batch = len(self.history[-1, "batches"]) if epoch else 0
        check_finite_loss(loss, epoch, batch, self.lr)
        return loss

    # -- checkpoints ----------------------------------------------------------

    def save_params(
        self,
        f_params=None,
        f_optimizer=None,
        f_criterion=None,
        f_history=None,
        use_safetensors=False,
        **kwargs,
    ):
        """skorch's ``save_params``, each file written atomically.

        A file given by name is written to a temporary file renamed over it
        when complete, so a process killed while saving (by skorch's
        ``Checkpoint`` too) leaves the previous file or the new one, never a
        truncated one. For a checkpoint whose files are all of one epoch, use
        :class:`~sklearn_protonet.callbacks.AtomicCheckpoint`.
        """
        files = {
            "f_params": f_params,
            "f_optimizer": f_optimizer,
            "f_criterion": f_criterion,
            "f_history": f_history,
            **kwargs,
        }
        named = {k: v for k, v in files.items() if isinstance(v, (str, os.PathLike))}
        rest = {k: v for k, v in files.items() if k not in named}
        if not named or any(v is not None for v in rest.values()):
            super().save_params(**rest, use_safetensors=use_safetensors)
        for key, path in named.items():
            with atomic_writer(path) as handle:
                if key == "f_history":  # skorch's History.to_file, to a binary file
                    handle.write(json.dumps(self.history.to_list()).encode())
                else:
                    super().save_params(
                        **{key: handle}, use_safetensors=use_safetensors
                    )

    def load_params(
        self,
        f_params=None,
        f_optimizer=None,
        f_criterion=None,
        f_history=None,
        checkpoint=None,
        use_safetensors=False,
        **kwargs,
    ):
        """skorch's ``load_params``; a file that cannot be loaded is a
        ``ValueError`` naming it.

        From a ``checkpoint``, every file is looked for before any is
        loaded: none there raises ``FileNotFoundError`` (``LoadInitState``
        then starts afresh), some missing is a ``ValueError`` naming them.
        An :class:`~sklearn_protonet.callbacks.AtomicCheckpoint` gives the
        files its manifest committed, each checked.
        """
        files = {
            "f_params": f_params,
            "f_optimizer": f_optimizer,
            "f_criterion": f_criterion,
            "f_history": f_history,
            **kwargs,
        }
        files = {k: v for k, v in files.items() if v is not None}
        if checkpoint is not None:
            if not self.initialized_:
                self.initialize()
            found = self._checkpoint_files(checkpoint, use_safetensors)
            files = {**found, **files}  # explicit arguments win, as in skorch
        if not files:
            return super().load_params(use_safetensors=use_safetensors)
        # The history first, as skorch does.
        for key in sorted(files, key=lambda key: key != "f_history"):
            self._load_file(key, files[key], use_safetensors)
        return None

    def _load_file(self, key: str, path, use_safetensors: bool) -> None:
        """skorch's ``load_params`` for one file, errors naming the file."""
        try:
            super().load_params(**{key: path}, use_safetensors=use_safetensors)
        except FileNotFoundError:
            raise
        except Exception as error:  # noqa: BLE001  (any unpickling error)
            what = "module parameters" if key == "f_params" else key[2:]
            detail = f"{type(error).__name__}: {error}".rstrip(": ")
            if isinstance(path, (str, os.PathLike)) and os.path.exists(path):
                detail += f"; the file has {os.path.getsize(path)} bytes"
            raise ValueError(
                f"{type(self).__name__} cannot load its {what} from {path} "
                f"({detail}). The file is incomplete (a run "
                "killed while writing it, with a version that wrote files in "
                "place) or not this trainer's; checkpoints of "
                "sklearn_protonet.callbacks.AtomicCheckpoint are always complete."
            ) from error

    def _checkpoint_files(self, checkpoint, use_safetensors: bool) -> dict:
        """A checkpoint's files (``f_*`` name to path), all of them there."""
        committed = getattr(checkpoint, "committed_files", None)
        files = committed() if committed is not None else None
        where = checkpoint.dirname or "."
        if files is None:  # skorch's Checkpoint (or no checkpoint yet)
            history = checkpoint.f_history_ if checkpoint.f_history else None
            if history is not None and os.path.exists(history):
                # skorch formats the other names with the saved history.
                self._load_file("f_history", history, use_safetensors)
            try:
                files = dict(checkpoint.get_formatted_files(self))
            except IndexError:  # an empty history: no file name to format
                raise FileNotFoundError(
                    f"No checkpoint in {where}: {history} does not exist."
                ) from None
            if history is not None:
                files["f_history"] = history
        files = {k: v for k, v in files.items() if v and k != "f_pickle"}
        paths = [v for v in files.values() if isinstance(v, (str, os.PathLike))]
        missing = [str(path) for path in paths if not os.path.exists(path)]
        if missing and len(missing) == len(files):
            raise FileNotFoundError(
                f"No checkpoint in {where}: {missing} do not exist."
            )
        if missing:
            raise ValueError(
                f"The checkpoint in {where} is incomplete: {', '.join(missing)} "
                "missing while its other files are there. Restore them, or "
                "delete the checkpoint's files to start afresh."
            )
        return files

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
        record_input(self, X, reset=False)
        if sp.issparse(X):  # dense blocks of batch_size rows: bounded memory
            X = check_samples(X, accept_sparse="csr")
            blocks = iter_dense(X, self.batch_size)
            return np.concatenate([self.transform(block) for block in blocks])
        X = check_samples(X)
        if not hasattr(self, "n_features_in_"):  # fitted on a Dataset, or loaded
            check_encoder_input(self.module_, X.shape[1:], None, type(self).__name__)
        X = as_tensor(X)
        # device=None (accelerate places the module): embed where it lives.
        device = module_device(self.module_) if self.device is None else self.device
        chunks = iter_embeddings(self.module_, X, self.batch_size, device)
        return torch.cat([c.cpu() for c in chunks]).numpy()

    @property
    def _n_features_out(self) -> int:
        """The embedding width (columns of ``transform``), from one forward
        pass of a zero sample: a module does not state it."""
        check_is_fitted(self)
        shape = getattr(contracts.get_input_contract(self.module_), "shape", None)
        if hasattr(self, "n_features_in_"):
            shape = (self.n_features_in_,)
        if shape is None:
            raise AttributeError(
                "The embedding width of this EpisodicTrainer is unknown: it was "
                "fitted on a Dataset of N-D samples. transform(X) some samples "
                "to see it."
            )
        device = module_device(self.module_)
        with eval_mode(self.module_), torch.inference_mode():
            return int(self.module_(torch.zeros((1, *shape), device=device)).shape[1])

    def _predicts_classes(self) -> bool:
        raise AttributeError(
            f"{type(self).__name__} learns an embedding, not classes: use "
            "PrototypicalClassifier(encoder=trainer).fit(X_support, y_support)"
            ".predict(X), or trainer.transform(X) for the embeddings."
        )

    # skorch's NeuralNet defines both; hidden, as scikit-learn hides the
    # methods an estimator does not support (hasattr is False).
    @available_if(_predicts_classes)
    def predict(self, X):  # noqa: D102
        raise NotImplementedError  # unreachable: available_if hides it

    @available_if(_predicts_classes)
    def predict_proba(self, X):  # noqa: D102
        raise NotImplementedError  # unreachable: available_if hides it

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # fit and transform take sparse rows (embedded in dense blocks).
        tags.input_tags.sparse = True
        tags.target_tags.required = True
        # transform embeds in float32 whatever the input's dtype.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


EpisodicTrainer.__init__.__signature__ = sklearn_signature(EpisodicTrainer)
