"""Command-line options of the training scripts: threads, allocator, progress.

Kept apart from the estimators: they change the whole Python process, so a
script or the command line opts in, never an estimator behind the user's back.
"""

from __future__ import annotations

import argparse

from .runtime import keep_freed_memory

__all__ = ["add_script_options", "apply_script_options"]


def add_script_options(parser: argparse.ArgumentParser) -> None:
    """Add the training scripts' runtime options to ``parser``:
    ``--no-progress`` (``args.progress`` False: no progress bar),
    ``--threads N`` (torch threads) and ``--default-malloc`` (skip
    :func:`~sklearn_protonet.runtime.keep_freed_memory`, which a script
    applies by default).

    Used by ``python -m sklearn_protonet`` and the repository's benchmarks.
    """
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: one per core that other processes leave idle)",
    )
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep the C library's default malloc settings (by default the "
        "script calls sklearn_protonet.runtime.keep_freed_memory(), which makes "
        "CPU training faster)",
    )


def apply_script_options(args: argparse.Namespace) -> None:
    """Apply the options of :func:`add_script_options` to this process."""
    from ._threads import fix_thread_count

    if args.threads:
        fix_thread_count(args.threads)
    if not args.default_malloc:
        keep_freed_memory()
