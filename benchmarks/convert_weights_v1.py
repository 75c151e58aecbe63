"""Convert encoder files of the first format (``sklearn-protonet-encoder/1``)
to the package's one safetensors format, keeping their metadata.

    python benchmarks/convert_weights_v1.py sklearn_protonet/pretrained/*.safetensors

The shipped Omniglot encoders were trained and written by
``benchmarks/omniglot.py`` before :mod:`sklearn_protonet.persistence` held
encoders and classifiers in one format; this rewrote them in place (the
weights, the metric and the recorded accuracies are unchanged). Files already
in the current format are left alone.
"""

from __future__ import annotations

import argparse
import json
import sys

from safetensors import safe_open

from sklearn_protonet import EpisodicTrainer
from sklearn_protonet.modules import Conv4
from sklearn_protonet.persistence import FORMAT, save_encoder

OLD_FORMAT = "sklearn-protonet-encoder/1"


def convert(path: str) -> bool:
    """Rewrite one file in the current format; False when it already is."""
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    if metadata.get("format") == FORMAT:
        return False
    if metadata.get("format") != OLD_FORMAT or metadata.get("module") != "Conv4":
        raise ValueError(f"{path} is not a {OLD_FORMAT} Conv4 file: {metadata}")
    config = json.loads(metadata["config"])
    trainer = EpisodicTrainer(
        Conv4,
        **{f"module__{key}": value for key, value in config.items()},
        metric=metadata.get("metric", "sqeuclidean"),
        verbose=0,
    ).initialize()
    trainer.module_.load_state_dict(tensors, strict=True)
    save_encoder(trainer, path, metadata=json.loads(metadata.get("info", "{}")))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    for path in parser.parse_args(argv).paths:
        print(f"{path}: {'converted' if convert(path) else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
