"""Command line: few-shot demos that run offline, in seconds to minutes.

``sklearn-protonet`` (or ``python -m sklearn_protonet``) scores the pretrained
Omniglot encoders against nearest centroid on pixels, on the characters
shipped with the package; ``sklearn-protonet digits`` meta-trains an encoder
on scikit-learn's digits first.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence

# Only the standard library and the light script options at start-up: PyTorch,
# skorch and scikit-learn take seconds to import, and '--help' or a mistyped
# option should answer at once. Each command imports what it runs.
from .script_options import add_script_options, apply_script_options

DEFAULT_COMMAND = "pretrained"

EXAMPLES = """\
examples:
  # the pretrained encoders against pixels, on the shipped sample (seconds)
  {prog}
  # 5-way 1-shot only, on more episodes
  {prog} pretrained --ways 5 --shots 1 --episodes 1000
  # meta-train on the digits 0-4, then test on the digits 5-9 (a minute or two)
  {prog} digits
  # the options of one command
  {prog} digits --help
"""


def _percent(mean: float, half_width: float) -> str:
    return f"{100 * mean:.1f} ± {100 * half_width:.1f}"


def _check_episodes(y, args: argparse.Namespace) -> None:
    """Refuse, before any work, episodes the data cannot fill."""
    import numpy as np

    classes, counts = np.unique(y, return_counts=True)
    if max(args.ways) > len(classes) or max(args.shots) + args.queries > counts.min():
        raise SystemExit(
            f"error: the test data has {len(classes)} classes of at least "
            f"{counts.min()} examples: --ways must be at most {len(classes)} and "
            f"each of --shots plus --queries at most {counts.min()}."
        )


def _progress(args: argparse.Namespace, **params):
    """A progress bar on stderr (the results go to stdout), off with
    --no-progress; tqdm is the one skorch's ProgressBar draws with."""
    from tqdm.auto import tqdm

    return tqdm(disable=not args.progress, file=sys.stderr, leave=False, **params)


def _embed(encoder, X, bar, chunk: int = 250):
    """``encoder.transform(X)`` in chunks, one step of ``bar`` each."""
    import numpy as np

    parts = []
    for start in range(0, len(X), chunk):
        parts.append(encoder.transform(X[start : start + chunk]))
        bar.update(len(parts[-1]))
    return np.concatenate(parts)


def _comparison(methods: dict, y, args: argparse.Namespace):
    """Score each method on the same episodes.

    ``methods`` maps a row name to a function of the shot that returns the
    estimator and the features it classifies. Returns the table (a
    DataFrame of mean and half-width pairs) and its text.
    """
    import pandas as pd

    from ._threads import load_aware_threads
    from .model_selection import EpisodicSplit, episodic_score

    cells = [(way, shot) for way in args.ways for shot in args.shots]
    scores, table = {}, {}
    with _progress(
        args, total=len(methods) * len(cells) * args.episodes, unit="episode"
    ) as bar:
        for name, estimator_and_X in methods.items():
            row = table[name] = {}
            for way, shot in cells:
                bar.set_description(f"{name.split(' ')[0]}, {way}-way {shot}-shot")
                # One seeded splitter per cell: every method sees the same
                # episodes.
                cv = EpisodicSplit(way, shot, args.queries, args.episodes, args.seed)
                estimator, X = estimator_and_X(shot)
                # scikit-learn's NearestCentroid computes on OpenMP threads of
                # its own: on the cores other processes leave idle, as torch.
                with warnings.catch_warnings(), load_aware_threads(other_pools=True):
                    # NearestCentroid warns about zero-variance features; harmless.
                    warnings.simplefilter("ignore", UserWarning)
                    warnings.simplefilter("ignore", RuntimeWarning)
                    score = episodic_score(estimator, X, y, cv)
                scores[name, (way, shot)] = score
                row[f"{way}-way {shot}-shot"] = _percent(*score)
                bar.update(args.episodes)
    text = (
        f"Accuracy (%) over {args.episodes} episodes per cell, {args.queries} "
        "queries per class, with 95% confidence intervals:\n\n"
        + pd.DataFrame.from_dict(table, orient="index").to_string()
    )
    return scores, text


def _encoder_for_shot(shot: int) -> str:
    """The shipped encoder meta-trained with the shot closest to ``shot``."""
    from .pretrained import list_pretrained

    # The paper's encoders, one per training shot (not omniglot-conv4-robust).
    matches = (re.fullmatch(r"omniglot-conv4-(\d+)shot", n) for n in list_pretrained())
    trained = {int(m.group(1)): m.group(0) for m in matches if m}
    return trained[min(trained, key=lambda k: (abs(k - shot), k))]


def run_pretrained(args: argparse.Namespace) -> str:
    """Score the shipped Omniglot encoders and pixels on the shipped sample."""
    import numpy as np
    from sklearn.neighbors import NearestCentroid

    from ._threads import fix_thread_count
    from .classifier import PrototypicalClassifier
    from .datasets import load_omniglot_sample
    from .pretrained import load_pretrained

    if args.threads:
        fix_thread_count(args.threads)
    X, y = load_omniglot_sample(return_X_y=True)
    _check_episodes(y, args)
    names = {shot: _encoder_for_shot(shot) for shot in args.shots}
    print(
        f"Embedding {len(X):,} drawings of {len(np.unique(y))} Omniglot characters "
        "that the encoders never saw in training (shipped with the package), "
        f"with {', '.join(sorted(set(names.values())))}...",
        flush=True,
    )
    # The encoders are frozen, so each image is embedded once and the
    # episodes classify embeddings: the same predictions, many times faster.
    encoders = sorted(set(names.values()))
    with _progress(args, total=len(encoders) * len(X), unit="image") as bar:
        embedded = {}
        for name in encoders:
            bar.set_description(f"Embedding with {name}")
            embedded[name] = _embed(load_pretrained(name, device=args.device), X, bar)
    _, text = _comparison(
        {
            "PrototypicalClassifier (pretrained Conv4)": lambda shot: (
                PrototypicalClassifier(),
                embedded[names[shot]],
            ),
            "NearestCentroid (raw pixels)": lambda shot: (NearestCentroid(), X),
        },
        y,
        args,
    )
    return text


#: The digits demo's rows.
_DIGITS_ENCODER = "PrototypicalClassifier (meta-trained Conv4)"
_DIGITS_PIXELS = "NearestCentroid (raw pixels)"


#: Below this many points of gain in every cell, the digits demo says why.
_SMALL_GAIN = 5.0


def _digits_verdict(scores: dict, args: argparse.Namespace, n_base: int) -> str:
    """What the table shows, in words: each cell's gain, and why it is small."""
    lines, gains = [], []
    for cell in [(way, shot) for way in args.ways for shot in args.shots]:
        (ours, ours_ci), (pixels, pixels_ci) = (
            scores[_DIGITS_ENCODER, cell],
            scores[_DIGITS_PIXELS, cell],
        )
        gain, margin = 100 * (ours - pixels), 100 * (ours_ci + pixels_ci)
        gains.append(gain)
        apart = (
            "the 95% intervals do not overlap"
            if abs(gain) > margin
            else "the 95% intervals overlap: no clear difference"
        )
        lines.append(
            f"{cell[0]}-way {cell[1]}-shot: {gain:+.1f} points for the "
            f"meta-trained encoder ({apart})."
        )
    if max(gains) >= _SMALL_GAIN:
        return "\n".join(lines)
    return (
        "\n".join(lines)
        + f"""

Why the gap is small: meta-training learns what tells classes apart from
the base classes it sees, and here these are only {n_base} (5 digits, each also
turned by 90 degrees) of 8x8 pixels. On such small, clean digits raw pixels
are already a good space for nearest centroid, and an encoder meta-trained
on so few classes has little to add. With thousands of base classes it
does: the shipped encoders, meta-trained on Omniglot, beat pixels by tens
of points ('{_prog()} pretrained')."""
    )


def run_digits(args: argparse.Namespace) -> str:
    """Meta-train on digits 0-4, evaluate episodes of digits 5-9."""
    import numpy as np
    from sklearn.neighbors import NearestCentroid
    from skorch.callbacks import ProgressBar

    from .classifier import PrototypicalClassifier
    from .demo import digits_trainer, load_digits_split

    apply_script_options(args)
    data = load_digits_split()
    _check_episodes(data.y_novel, args)
    progress = ProgressBar(batches_per_epoch=args.train_episodes)
    trainer = digits_trainer(
        args.seed,
        episodes_per_epoch=args.train_episodes,
        max_epochs=args.epochs,
        callbacks=[progress] if args.progress else None,
    )
    n_base = len(np.unique(data.y_base))
    print(
        f"Meta-training Conv4 on {n_base} base classes "
        f"({args.epochs} epochs x {args.train_episodes} episodes of 10-way "
        "5-shot)...",
        flush=True,
    )
    start = time.perf_counter()
    trainer.fit(data.X_base, data.y_base)
    print(f"Trained in {time.perf_counter() - start:.0f} s.\n", flush=True)
    # As in the pretrained demo: the meta-trained encoder is frozen from here
    # on, so the novel digits are embedded once and each episode classifies
    # embeddings (what PrototypicalClassifier(trainer) computes per episode).
    embedded = trainer.transform(data.X_novel)
    scores, text = _comparison(
        {
            _DIGITS_ENCODER: lambda shot: (PrototypicalClassifier(), embedded),
            _DIGITS_PIXELS: lambda shot: (NearestCentroid(), data.X_novel),
        },
        data.y_novel,
        args,
    )
    return f"{text}\n\n{_digits_verdict(scores, args, n_base)}"


class _Formatter(
    argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter
):
    """Keep the texts' line breaks; show each option's default when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help  # flags and "not set" need no "(default: ...)"
        return super()._get_help_string(action)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _prog() -> str:
    # ``python -m sklearn_protonet`` runs this file as __main__.py: name the
    # command the user typed, not the file.
    if os.path.basename(sys.argv[0]) == "__main__.py":
        return "python -m sklearn_protonet"
    return os.path.basename(sys.argv[0]) or "sklearn-protonet"


def _add_command(commands, name: str, summary: str, description: str, run):
    parser = commands.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.set_defaults(run=run)
    return parser


def _add_evaluation_options(parser, *, ways: list[int], episodes: int) -> None:
    """The test episodes' options, shared by both commands (own defaults)."""
    group = parser.add_argument_group("test episodes")
    group.add_argument(
        "--ways", type=_positive, nargs="+", default=ways, help="classes per episode"
    )
    group.add_argument(
        "--shots", type=_positive, nargs="+", default=[1, 5], help="examples per class"
    )
    group.add_argument(
        "--queries", type=_positive, default=15, help="query examples per class"
    )
    group.add_argument(
        "--episodes", type=_positive, default=episodes, help="episodes per table cell"
    )
    group.add_argument("--seed", type=int, default=0, help="random seed")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line parser: one subcommand per demo."""
    prog = prog or _prog()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Few-shot classification demos of sklearn-protonet; both run "
        f"offline.\nWithout a command, runs '{DEFAULT_COMMAND}'.",
        epilog=EXAMPLES.format(prog=prog),
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(
        dest="command", title="commands", metavar="COMMAND"
    )

    pretrained = _add_command(
        commands,
        "pretrained",
        "the shipped Omniglot encoders against pixels (seconds)",
        """\
Score the Omniglot encoders shipped with the package against NearestCentroid
on raw pixels, on 100 Omniglot characters that no encoder saw in training
(shipped too): N-way K-shot episodes, accuracy with 95% confidence intervals.
Each K-shot column uses the encoder meta-trained with the closest shot.""",
        run_pretrained,
    )
    _add_evaluation_options(pretrained, ways=[5, 20], episodes=200)
    pretrained.add_argument(
        "--device", default="cpu", help="where the encoders run: cpu, cuda, ..."
    )
    pretrained.add_argument(
        "--threads",
        type=_positive,
        help="torch threads (default: one per core that other processes leave idle)",
    )
    pretrained.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars"
    )

    digits = _add_command(
        commands,
        "digits",
        "meta-train Conv4 on digits 0-4, test on 5-9 (a minute or two)",
        """\
Meta-train a small Conv4 on scikit-learn's 8x8 digits 0-4 (each also turned by
90 degrees, as a class of its own), then score it against NearestCentroid on
raw pixels on episodes of the digits 5-9. Runs on the CPU.""",
        run_digits,
    )
    training = digits.add_argument_group("meta-training")
    training.add_argument(
        "--epochs", type=_positive, default=5, help="meta-training epochs"
    )
    training.add_argument(
        "--train-episodes",
        type=_positive,
        default=100,
        help="10-way 5-shot training episodes per epoch",
    )
    add_script_options(training)
    _add_evaluation_options(digits, ways=[5], episodes=1000)
    parser.command_parsers = {"pretrained": pretrained, "digits": digits}
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse, defaulting to the pretrained demo and naming misplaced options."""
    argv = list(argv)
    if not argv or (
        argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")
    ):
        argv.insert(0, DEFAULT_COMMAND)
    args, extra = parser.parse_known_args(argv)
    if extra:
        options = [word.split("=")[0] for word in extra if word.startswith("-")]
        # argparse has no public list of a parser's options; this table is
        # stable across the Python versions we support.
        homes = {
            option: [
                name
                for name, sub in parser.command_parsers.items()
                if option in sub._option_string_actions
            ]
            for option in options
        }
        elsewhere = [
            f"{o} (an option of '{' and '.join(h)}')" for o, h in homes.items() if h
        ]
        if elsewhere:
            parser.error(
                f"'{args.command}' does not take {', '.join(elsewhere)}; see "
                f"'{parser.prog} {args.command} --help' for its options."
            )
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = _parse(parser, sys.argv[1:] if argv is None else argv)
    print(args.run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
