"""Pretrained encoders shipped with the package, stored as safetensors.

safetensors holds tensors and string metadata only, so loading a weights file
never runs code from it (unlike pickle).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from sklearn.frozen import FrozenEstimator

from ..modules import Conv4
from ..trainer import EpisodicTrainer

__all__ = ["list_pretrained", "load_encoder", "load_pretrained", "save_encoder"]

_FORMAT = "sklearn-protonet-encoder/1"


def list_pretrained() -> list[str]:
    """Names accepted by :func:`load_pretrained`."""
    folder = resources.files(__name__)
    return sorted(
        p.name.removesuffix(".safetensors")
        for p in folder.iterdir()
        if p.name.endswith(".safetensors")
    )


def save_encoder(trainer: EpisodicTrainer, path, metadata: dict | None = None) -> None:
    """Write a trained Conv4 encoder's weights and configuration as safetensors.

    Parameters
    ----------
    trainer : EpisodicTrainer
        A fitted trainer whose module is a :class:`~sklearn_protonet.modules.Conv4`.
    path : str or Path
    metadata : dict, default=None
        JSON-serialisable facts to keep beside the weights (accuracy, profile...).
    """
    module = trainer.module_
    if not isinstance(module, Conv4):
        raise TypeError(f"save_encoder supports Conv4 modules, got {type(module)}.")
    config = {
        "input_shape": list(module.input_shape),
        "hidden_channels": module.hidden_channels,
        "n_blocks": module.n_blocks,
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(
        tensors,
        str(path),
        metadata={
            "format": _FORMAT,
            "module": "Conv4",
            "config": json.dumps(config),
            "metric": trainer.metric,
            "info": json.dumps(metadata or {}),
        },
    )


def load_encoder(path, device: str = "cpu") -> FrozenEstimator:
    """Load an encoder written by :func:`save_encoder`.

    Parameters
    ----------
    path : str or Path
    device : str, default="cpu"

    Returns
    -------
    FrozenEstimator
        Wrapping a fitted :class:`~sklearn_protonet.EpisodicTrainer`; its
        ``transform`` embeds, ``fit`` does nothing, and ``clone`` returns it
        unchanged, so it is safe inside pipelines and grid searches.

    Raises
    ------
    ValueError
        If the file is not a sklearn-protonet encoder or is damaged.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise FileNotFoundError(f"No encoder file at {path}.")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, ValueError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(
            f"{path} is not a readable safetensors file ({error}). Re-download "
            "or re-create it with save_encoder."
        ) from error
    if metadata.get("format") != _FORMAT or metadata.get("module") != "Conv4":
        raise ValueError(
            f"{path} is a safetensors file but not a sklearn-protonet encoder "
            f"(metadata {metadata!r}); create it with save_encoder."
        )
    config = json.loads(metadata["config"])
    trainer = EpisodicTrainer(
        Conv4,
        module__input_shape=tuple(config["input_shape"]),
        module__hidden_channels=config["hidden_channels"],
        module__n_blocks=config["n_blocks"],
        metric=metadata.get("metric", "sqeuclidean"),
        device=device,
        verbose=0,
    ).initialize()
    try:
        trainer.module_.load_state_dict(tensors)
    except RuntimeError as error:
        raise ValueError(f"{path} does not hold Conv4 weights: {error}") from error
    trainer.module_.to(device).eval()
    trainer.pretrained_info_ = json.loads(metadata.get("info", "{}"))
    return FrozenEstimator(trainer)


def load_pretrained(name: str = "omniglot-conv4-1shot", device: str = "cpu"):
    """A pretrained, frozen encoder shipped with the package.

    Parameters
    ----------
    name : str, default="omniglot-conv4-1shot"
        One of :func:`list_pretrained`. ``"omniglot-conv4-1shot"`` and
        ``"omniglot-conv4-5shot"`` are Conv4 meta-trained on Omniglot's
        Vinyals ``trainval`` classes (28x28 images, strokes 1.0 on 0.0, as
        :func:`~sklearn_protonet.datasets.load_omniglot` returns them) with
        1 and 5 support images per class; as in the paper, use the one whose
        shot matches your support set (one example per class: ``1shot``).
    device : str, default="cpu"

    Returns
    -------
    FrozenEstimator
        See :func:`load_encoder`. ``.estimator.pretrained_info_`` holds its
        measured test accuracy.

    Examples
    --------
    >>> from sklearn_protonet import PrototypicalClassifier
    >>> from sklearn_protonet.pretrained import load_pretrained
    >>> clf = PrototypicalClassifier(load_pretrained("omniglot-conv4-1shot"))
    """
    names = list_pretrained()
    if name not in names:
        raise ValueError(f"Unknown pretrained encoder {name!r}; choose from {names}.")
    with resources.as_file(resources.files(__name__) / f"{name}.safetensors") as path:
        return load_encoder(path, device=device)
