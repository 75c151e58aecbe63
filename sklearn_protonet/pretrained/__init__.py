"""Pretrained encoders shipped with the package: the weight files and their loader.

The files are written by :func:`sklearn_protonet.persistence.save_encoder`
(safetensors: tensors and JSON metadata only, so loading one never runs
code) and read by :func:`~sklearn_protonet.persistence.load_encoder`.
"""

from __future__ import annotations

from importlib import resources

from ..persistence import load_encoder

__all__ = ["list_pretrained", "load_pretrained"]


def list_pretrained() -> list[str]:
    """Names accepted by :func:`load_pretrained`."""
    folder = resources.files(__name__)
    return sorted(
        p.name.removesuffix(".safetensors")
        for p in folder.iterdir()
        if p.name.endswith(".safetensors")
    )


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
        ``"omniglot-conv4-robust"`` is a Conv4 meta-trained on the same
        classes with random rotations, thicker strokes and blur
        (:class:`~sklearn_protonet.modules.RandomResolution`): a little less
        accurate on Omniglot, much more on images unlike it (handwritten
        digits: ``benchmarks/cross_domain.py``, :ref:`own_data`).
        ``"omniglot-conv4-symbols"`` adds, in training,
        the conditions of photographed and scanned symbols (blur, grey and
        unevenly lit paper, faint ink, sensor noise:
        :class:`~sklearn_protonet.modules.RandomPaper`): far ahead of the
        robust encoder on such photographs, a little behind it on clean
        digits and on Omniglot (``benchmarks/real_conditions.py``,
        ``benchmarks/cross_domain.py``). ``"omniglot-conv4-ensemble"`` is
        the ``1shot``, ``robust`` and ``symbols`` encoders side by side in
        one grouped Conv4 (:meth:`~sklearn_protonet.modules.Conv4.side_by_side`,
        ``benchmarks/ensemble.py``). ``"omniglot-conv4-one-encoder"``, the
        one to start from for your own symbol images, is made the same way
        in 30 minutes of training on 2 CPU cores: the paper's 1-shot encoder
        beside two Conv4s meta-trained at once on degraded characters, one
        of them also in the conditions of photographs (``python
        benchmarks/omniglot.py --profile one-encoder``): above the paper on
        Omniglot in every cell, above the robust encoder and the ensemble on
        digits, at or above them on printed symbols and photographs
        (``benchmarks/held_out_domains.py``), at three Conv4s' cost.
    device : str, default="cpu"

    Returns
    -------
    FrozenEstimator
        See :func:`~sklearn_protonet.persistence.load_encoder`.
        ``.estimator.pretrained_info_`` holds its measured test accuracy.

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
