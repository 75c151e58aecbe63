"""Encoders on symbol domains that Omniglot's training never shows, frozen.

    python benchmarks/held_out_domains.py        # the shipped ensemble and robust
    python benchmarks/held_out_domains.py --encoder DIR/my-encoder.safetensors

Scores each encoder, frozen, on the episodes of the published benchmarks:

- digits: ``cross_domain.py``'s 10-way episodes, 15 queries per class, 500
  a shot;
- printed symbols: ``cross_domain.py --domain printed``'s, the same shape;
- photographed symbols through the default reader
  (``ImageReader.from_encoder(encoder)``): ``real_conditions.py``'s 20-way
  episodes, 5 queries per class, 200 a shot.

The encoders: the shipped ``omniglot-conv4-one-encoder`` (the own-images
default, ``python benchmarks/omniglot.py --profile one-encoder``),
``omniglot-conv4-ensemble``, ``omniglot-conv4-robust`` (whose digits
accuracy is the target of an encoder for every symbol domain), and each
``--encoder`` file, such as the one ``python benchmarks/omniglot.py
--profile one-encoder --save-weights DIR`` writes. Each embeds a domain's
images once: in evaluation mode an image's embedding does not depend on its
episode, so this is the protocol of those scripts' frozen rows, and gives
their numbers.

Writes ``held_out_domains.json`` and ``.md`` into ``--output-dir``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from _common import (
    cell,
    digits_read_28,
    environment,
    frozen_embeddings,
    interval,
    markdown_table,
    publish,
)
from cross_domain import printed_read_28
from real_conditions import symbol_photographs
from sklearn.model_selection import cross_val_score

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.contracts import InputContractWarning
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.persistence import load_encoder
from sklearn_protonet.preprocessing import ImageReader
from sklearn_protonet.pretrained import load_pretrained

SHIPPED = (
    "omniglot-conv4-one-encoder",
    "omniglot-conv4-ensemble",
    "omniglot-conv4-robust",
)
#: Each domain: its title, (n_way, n_query, episodes a shot), as published.
DOMAINS = {
    "digits": ("digits (10-way)", (10, 15, 500)),
    "printed": ("printed symbols (10-way)", (10, 15, 500)),
    "photographed": ("photographed symbols, default reader (20-way)", (20, 5, 200)),
}
SHOTS = (1, 5)
#: The digits accuracy (%) of omniglot-conv4-robust, by shot: what an
#: encoder for every symbol domain must reach.
DIGITS_TARGET = {1: 84.1, 5: 95.5}


def domain_images() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each domain's images (photographs as taken, 64x64) and labels."""
    photos, labels, _ = symbol_photographs()
    return {
        "digits": digits_read_28(),
        "printed": printed_read_28(),
        "photographed": (photos, labels),
    }


def domain_scores(encoder, images, y, domain: str) -> dict[str, dict]:
    """Per shot, the interval of the frozen encoder's episode accuracies."""
    if domain == "photographed":
        images = ImageReader.from_encoder(encoder).fit_transform(images)
    embedded = frozen_embeddings(encoder, images)
    n_way, n_query, n_episodes = DOMAINS[domain][1]
    return {
        str(shot): interval(
            cross_val_score(
                PrototypicalClassifier(),
                embedded,
                y,
                cv=EpisodicSplit(n_way, shot, n_query, n_episodes, random_state=shot),
            )
        )
        for shot in SHOTS
    }


def report(record: dict) -> str:
    header = ["encoder"] + [
        f"{DOMAINS[d][0]}, {shot}-shot" for d in DOMAINS for shot in SHOTS
    ]
    rows = [
        [f"`{name}`"] + [cell(scores[d][str(shot)]) for d in DOMAINS for shot in SHOTS]
        for name, scores in record["accuracy"].items()
    ]
    target = ", ".join(f"{v} % at {k}-shot" for k, v in DIGITS_TARGET.items())
    command = " ".join(
        ["python benchmarks/held_out_domains.py"]
        + (["--encoder", *record["encoder_files"]] if record["encoder_files"] else [])
    )
    return (
        "# Held-out symbol domains, frozen encoders\n\n"
        "Accuracy in % with 95 % intervals, the episodes of "
        "`benchmarks/cross_domain.py` (digits, printed symbols) and "
        "`benchmarks/real_conditions.py` (photographs), the same for every row. "
        f"Produced by `{command}` on {record['date']}"
        f" in {record['seconds']:.0f} s.\n\n"
        + markdown_table(header, rows)
        + f"\n\nDigits target (omniglot-conv4-robust's accuracy): {target}.\n"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/held_out_domains.py",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--encoder",
        nargs="+",
        default=[],
        metavar="FILE",
        help="encoder files (.safetensors) to score beside the shipped ones",
    )
    parser.add_argument(
        "--output-dir", default=None, help="default: benchmarks/results"
    )
    args = parser.parse_args(argv)
    encoders = {name: load_pretrained(name) for name in SHIPPED}
    encoders.update({Path(f).name: load_encoder(f) for f in args.encoder})
    started = time.perf_counter()
    images = domain_images()
    accuracy = {}
    with warnings.catch_warnings():
        # The photographs go through the reader; digits are read as published.
        warnings.simplefilter("ignore", InputContractWarning)
        for name, encoder in encoders.items():
            accuracy[name] = {
                domain: domain_scores(encoder, X, y, domain)
                for domain, (X, y) in images.items()
            }
    record = environment(
        benchmark="held_out_domains",
        domains={
            d: dict(zip(("n_way", "n_query", "episodes"), shape, strict=True))
            for d, (_, shape) in DOMAINS.items()
        },
        encoder_files=[Path(f).name for f in args.encoder],
        digits_target=DIGITS_TARGET,
        accuracy=accuracy,
        seconds=time.perf_counter() - started,
    )
    return publish("held_out_domains", record, report, args.output_dir)


if __name__ == "__main__":
    main()
