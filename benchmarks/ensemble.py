"""One encoder for every symbol domain: three meta-trained Conv4 joined side by side.

    python benchmarks/ensemble.py                        # the shipped members
    python benchmarks/ensemble.py --members-from DIR     # members you trained
    python benchmarks/ensemble.py --save-weights sklearn_protonet/pretrained

The members are the encoders of three profiles of ``benchmarks/omniglot.py``,
each meta-trained on Omniglot's ``trainval`` classes only:

- ``omniglot-conv4-1shot`` (``--profile cpu``): the paper's recipe, the best
  on Omniglot's clean strokes;
- ``omniglot-conv4-robust`` (``--profile robust``): rotated, thickened and
  blurred characters, the best on clean drawings unlike Omniglot's;
- ``omniglot-conv4-symbols`` (``--profile symbols``): the conditions of
  photographs too (grey paper, faint ink, blur, noise).

To rebuild everything, run those three commands with ``--save-weights DIR``,
then this script with ``--members-from DIR``. ``Conv4.side_by_side`` joins
them into one Conv4, three groups of 64 channels (a 192-d embedding), with
each member's embedding scaled to a root-mean-square norm of 1 on 5,000
seeded images of the training classes: squared distances are then the sum
of the members' distances, each member weighing the same. No image of a
domain the encoder is judged on (Omniglot's test classes, digits, printed
symbols) sets anything.

Evaluates the four cells of the paper's Table 1 on 1,000 test episodes
(``omniglot.py``'s protocol and seed) and writes ``omniglot-ensemble.json``
and ``.md`` into ``--output-dir``; with ``--save-weights DIR``, the joined
encoder as ``DIR/omniglot-conv4-ensemble.safetensors``. Other domains:
``benchmarks/cross_domain.py`` and ``benchmarks/real_conditions.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import environment, markdown_table, write_results
from omniglot import N_SCALE_IMAGES, PAPER, evaluate_omniglot, join_side_by_side

from sklearn_protonet.datasets import load_omniglot
from sklearn_protonet.persistence import load_encoder, save_encoder
from sklearn_protonet.pretrained import load_pretrained
from sklearn_protonet.script_options import add_script_options, apply_script_options

MEMBERS = ("omniglot-conv4-1shot", "omniglot-conv4-robust", "omniglot-conv4-symbols")
NAME = "omniglot-conv4-ensemble"


def joined_encoder(folder: Path | None, X_train: np.ndarray, random_state: int):
    """The members' files (from ``folder``, else the shipped ones), their
    weights, and the Conv4 that joins them."""
    files = {
        name: load_pretrained(name)
        if folder is None
        else load_encoder(Path(folder) / f"{name}.safetensors")
        for name in MEMBERS
    }
    modules = [member.estimator.module_ for member in files.values()]
    joined, weights = join_side_by_side(modules, X_train, random_state)
    return files, weights, joined


def report(record: dict) -> str:
    header = ["encoder", *PAPER]
    rows = []
    for name, results in record["members"].items():
        rows.append([f"`{name}` (member)", *(_cell(results, c) for c in PAPER)])
    rows.append([f"`{NAME}`", *(f"**{_cell(record['results'], c)}**" for c in PAPER)])
    rows.append(["Snell et al. 2017 (paper)", *(f"{v}" for v in PAPER.values())])
    weights = ", ".join(
        f"{name} {w:.4f}" for name, w in zip(MEMBERS, record["weights"], strict=True)
    )
    return (
        "# One encoder for every symbol domain: Omniglot test\n\n"
        f"Accuracy in % with 95 % intervals over {record['n_test_episodes']:,} test "
        "episodes per cell (15 queries per class, seed "
        f"{record['random_state']}), the same episodes for every row. "
        f"Produced by `python benchmarks/ensemble.py` on {record['date']}.\n\n"
        + markdown_table(header, rows)
        + f"\n\nMember weights (inverse RMS embedding norm on {N_SCALE_IMAGES:,} "
        f"training images): {weights}. Joining took {record['join_seconds']} s.\n"
    )


def _cell(results: dict, cell: str) -> str:
    if cell not in results:
        return ""
    return f"{results[cell]['accuracy']:.1f} ± {results[cell]['ci95']:.1f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/ensemble.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--members-from",
        default=None,
        metavar="DIR",
        help=f"read the members as DIR/<name>.safetensors for name in {MEMBERS} "
        "(default: the shipped encoders)",
    )
    parser.add_argument("--data-home", default=None, help="Omniglot data home")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--save-weights", default=None, metavar="DIR")
    add_script_options(parser)
    args = parser.parse_args(argv)
    apply_script_options(args)
    X_train, _ = load_omniglot("trainval", data_home=args.data_home, return_X_y=True)
    start = time.perf_counter()
    files, weights, joined = joined_encoder(args.members_from, X_train, args.seed)
    join_seconds = round(time.perf_counter() - start, 1)
    X_test, y_test = load_omniglot("test", data_home=args.data_home, return_X_y=True)
    results = evaluate_omniglot(joined, X_test, y_test, args.episodes, args.seed)
    members = {
        name: evaluate_omniglot(member, X_test, y_test, args.episodes, args.seed)
        for name, member in files.items()
    }
    record = {
        "members": members,
        "weights": weights,
        "results": results,
        "n_test_episodes": args.episodes,
        "join_seconds": join_seconds,
        "paper": PAPER,
        **environment(random_state=args.seed),
    }
    markdown = report(record)
    write_results("omniglot-ensemble", record, markdown, args.output_dir)
    print(markdown)
    if args.save_weights is not None:
        folder = Path(args.save_weights)
        folder.mkdir(parents=True, exist_ok=True)
        save_encoder(
            joined,
            folder / f"{NAME}.safetensors",
            metadata={
                "results": results,
                "members": list(MEMBERS),
                "member_weights": weights,
                "profile": "ensemble",
            },
        )
    return record


if __name__ == "__main__":
    main()
