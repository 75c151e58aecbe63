"""Across domains: Omniglot's shipped encoders on digits and on printed symbols.

    python benchmarks/cross_domain.py                       # 500 episodes a shot
    python benchmarks/cross_domain.py --domain printed      # printed symbols
    python benchmarks/cross_domain.py --episodes 50 --n-jobs 2 --output-dir /tmp/x

Two domains no encoder saw in training:

- ``digits`` (the default): scikit-learn's 8x8 digits upsampled (bilinear)
  to Omniglot's 28x28, light strokes on black as the encoders expect;
- ``printed``: the 2,076 symbol classes of ``real_conditions.py`` (Latin,
  Greek, Cyrillic, Armenian, Georgian, arrows, mathematical and technical
  symbols, shapes, dingbats, Braille) printed cleanly from the DejaVu fonts,
  20 of each (``real_conditions.printed_symbols`` says how), read to 28x28
  the same way.

For 10-way 1-shot and 5-shot episodes with 15 queries per class (the same
episodes for every column), the accuracy with 95 % intervals of:

- ``pixels``: nearest centroid on the raw 28x28 pixels (the identity encoder);
- ``frozen``: the shipped encoder of the matching shot, as shipped;
- ``l2`` and ``cl2n``: the frozen encoder with each embedding normalisation;
- ``adapted``: ``fine_tune_steps`` of support-set adaptation
  (:mod:`sklearn_protonet.adaptation`), seeded by the episode;
- ``adapted+cl2n``: the same adapted encoder with ``normalization="cl2n"``;
- ``robust`` and ``robust adapted``: the shipped ``omniglot-conv4-robust``
  encoder (meta-trained on randomly rotated, thickened and blurred
  characters: ``python benchmarks/omniglot.py --profile robust``), frozen and
  with the same adaptation;
- ``symbols``: the shipped ``omniglot-conv4-symbols`` encoder (the robust
  recipe with photographed images' conditions too: ``python
  benchmarks/omniglot.py --profile symbols``), frozen;
- ``ensemble``: the shipped ``omniglot-conv4-ensemble``, the paper's, the
  robust and the symbols encoders joined side by side (``python
  benchmarks/ensemble.py``), frozen;
- ``one-encoder``: the shipped ``omniglot-conv4-one-encoder``, the paper's
  encoder beside two members trained in 30 minutes on degraded characters,
  one also in the conditions of photographs (``python
  benchmarks/omniglot.py --profile one-encoder``), frozen: the own-images
  default.

On printed symbols only the frozen columns run (``FROZEN``), and there is no
latency line.

``--columns`` recomputes some columns only, on the same episodes, and keeps
the others from the results file (the report says which and when).

On digits, then the latency: the median wall time of ``fit`` with adaptation (of the
robust encoder) for a
10-way 5-shot support set, measured in this process with 2 torch threads
after the episodes (so workers do not compete with it). Writes
``cross_domain.json`` and ``cross_domain.md`` (``cross_domain_printed.*`` for
printed symbols) into ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    RESULTS,
    cell,
    digits_read_28,
    environment,
    interval,
    markdown_table,
    publish,
    write_results,
)
from joblib import Parallel, delayed

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.pretrained import load_pretrained

N_WAY, N_QUERY = 10, 15
#: The adaptation recipe measured here (classifier parameters).
ADAPTATION = {"fine_tune_steps": 60, "fine_tune_augmentation": "affine"}
COLUMNS = (
    "pixels",
    "frozen",
    "l2",
    "cl2n",
    "adapted",
    "adapted+cl2n",
    "robust",
    "robust adapted",
    "symbols",
    "ensemble",
    "one-encoder",
)
#: The columns without adaptation (the printed symbols' columns).
FROZEN = ("pixels", "frozen", "robust", "symbols", "ensemble", "one-encoder")
#: Targets for an adapted encoder (accuracy in %, by shot) and fit's latency.
TARGETS = {1: 72.0, 5: 92.0, "latency_s": 5.0}


def classifiers(shot: int, adaptation: dict) -> dict[str, PrototypicalClassifier]:
    encoder = load_pretrained(f"omniglot-conv4-{shot}shot")
    robust = load_pretrained("omniglot-conv4-robust")
    symbols = load_pretrained("omniglot-conv4-symbols")
    ensemble = load_pretrained("omniglot-conv4-ensemble")
    one_encoder = load_pretrained("omniglot-conv4-one-encoder")
    return {
        "pixels": PrototypicalClassifier(),
        "frozen": PrototypicalClassifier(encoder),
        "l2": PrototypicalClassifier(encoder, normalization="l2"),
        "cl2n": PrototypicalClassifier(encoder, normalization="cl2n"),
        "adapted": PrototypicalClassifier(encoder, **adaptation),
        "robust": PrototypicalClassifier(robust),
        "robust adapted": PrototypicalClassifier(robust, **adaptation),
        "symbols": PrototypicalClassifier(symbols),
        "ensemble": PrototypicalClassifier(ensemble),
        "one-encoder": PrototypicalClassifier(one_encoder),
    }


def run_episodes(
    X, y, shot: int, episodes: list, adaptation: dict, columns=COLUMNS
) -> list[dict]:
    """Accuracy of each of ``columns`` on each ``(episode number, support,
    query)``."""
    torch.set_num_threads(1)  # one episode per worker: no oversubscription
    models = {k: m for k, m in classifiers(shot, adaptation).items() if k in columns}
    rows = []
    for number, support, query in episodes:
        row = {}
        for name, model in models.items():
            if name.endswith("adapted"):
                model.set_params(random_state=number)
            flat = name == "pixels"
            Xs = X[support].reshape(len(support), -1) if flat else X[support]
            Xq = X[query].reshape(len(query), -1) if flat else X[query]
            row[name] = model.fit(Xs, y[support]).score(Xq, y[query])
        if "adapted+cl2n" in columns:
            # The encoder adapted above, frozen, with the centring normalisation.
            adapted = models["adapted"].encoder_
            cl2n = PrototypicalClassifier(adapted, normalization="cl2n")
            row["adapted+cl2n"] = cl2n.fit(X[support], y[support]).score(
                X[query], y[query]
            )
        rows.append({name: row[name] for name in columns})
    return rows


#: The adaptation settings compared by --ablation: classifier parameters,
#: "encoder": "robust" for omniglot-conv4-robust instead of the paper's encoder,
#: and "transductive": True to fit with the episode's queries as unlabeled
#: rows (y = -1; with refinement_steps they refine the prototypes).
ABLATION = {
    "30 steps, shifts": {"fine_tune_steps": 30},
    "60 steps, affine": {"fine_tune_steps": 60, "fine_tune_augmentation": "affine"},
    "60 steps, affine, every layer": {
        "fine_tune_steps": 60,
        "fine_tune_augmentation": "affine",
        "fine_tune_layers": None,
    },
    "100 steps, affine, lr 3e-3": {
        "fine_tune_steps": 100,
        "fine_tune_augmentation": "affine",
        "fine_tune_lr": 3e-3,
    },
    "60 steps, affine, cl2n": {
        "fine_tune_steps": 60,
        "fine_tune_augmentation": "affine",
        "normalization": "cl2n",
    },
    "60 steps, affine, shifts of 3": {
        "fine_tune_steps": 60,
        "fine_tune_augmentation": "affine",
        "fine_tune_shift": 3,
    },
    "robust encoder, frozen": {"encoder": "robust"},
    "robust encoder, 20 steps, affine": {
        "encoder": "robust",
        "fine_tune_steps": 20,
        "fine_tune_augmentation": "affine",
    },
    "robust encoder, 60 steps, affine": {
        "encoder": "robust",
        "fine_tune_steps": 60,
        "fine_tune_augmentation": "affine",
    },
    "robust encoder, queries as unlabeled rows (soft k-means)": {
        "encoder": "robust",
        "transductive": True,
        "refinement_steps": 3,
        "refinement": "soft_kmeans",
    },
    "robust encoder, queries as unlabeled rows (masked)": {
        "encoder": "robust",
        "transductive": True,
        "refinement_steps": 3,
    },
}


def ablation_episodes(X, y, shot: int, episodes: list) -> list[dict]:
    """Accuracy of each ABLATION setting on each ``(number, support, query)``."""
    torch.set_num_threads(1)
    encoders = {
        "paper": load_pretrained(f"omniglot-conv4-{shot}shot"),
        "robust": load_pretrained("omniglot-conv4-robust"),
    }
    rows = []
    for number, support, query in episodes:
        row = {}
        for name, settings in ABLATION.items():
            settings = dict(settings)
            encoder = encoders[settings.pop("encoder", "paper")]
            rows_fitted = support
            labels = y[support]
            if settings.pop("transductive", False):
                rows_fitted = np.concatenate([support, query])
                labels = np.concatenate([labels, np.full(len(query), -1)])
            model = PrototypicalClassifier(encoder, random_state=number, **settings)
            model.fit(X[rows_fitted], labels)
            row[name] = model.score(X[query], y[query])
        rows.append(row)
    return rows


def ablation(X, y, shots, n_episodes: int, n_jobs: int, output_dir) -> str:
    """The ABLATION table (same episodes as the main table, fewer of them)."""
    results = {}
    for shot in shots:
        rows = episode_rows(X, y, shot, n_episodes, n_jobs, ablation_episodes)
        results[str(shot)] = {
            name: interval([row[name] for row in rows]) for name in ABLATION
        }
    rows = [[name, *(cell(results[str(s)][name]) for s in shots)] for name in ABLATION]
    markdown = "\n".join(
        [
            "# Cross-domain adaptation settings: Omniglot encoders on digits",
            "",
            f"10-way accuracy in % with 95 % intervals over {n_episodes} episodes "
            f"({N_QUERY} queries per class), the first episodes of the main "
            "table. Produced by `python benchmarks/cross_domain.py --ablation`.",
            "",
            markdown_table(["adaptation", *(f"{s}-shot" for s in shots)], rows),
        ]
    )
    record = environment(
        benchmark="cross_domain_ablation",
        settings=ABLATION,
        n_episodes=n_episodes,
        accuracy=results,
    )
    write_results("cross_domain_ablation", record, markdown, output_dir)
    return markdown


def episode_rows(X, y, shot: int, n_episodes: int, n_jobs: int, work, *args):
    """``work(X, y, shot, episodes, *args)`` over the benchmark's episodes of
    ``shot``, in chunks on ``n_jobs`` workers; the rows it returns, in one list."""
    split = EpisodicSplit(
        n_way=N_WAY,
        n_shot=shot,
        n_query=N_QUERY,
        n_episodes=n_episodes,
        random_state=shot,
    )
    episodes = [(i, s, q) for i, (s, q) in enumerate(split.split(X, y))]
    n_chunks = max(1, min(len(episodes), 4 * max(1, n_jobs)))
    chunks = [episodes[i::n_chunks] for i in range(n_chunks)]
    results = Parallel(n_jobs=n_jobs)(
        delayed(work)(X, y, shot, chunk, *args) for chunk in chunks
    )
    return [row for chunk in results for row in chunk]


def evaluate(
    X, y, shot: int, n_episodes: int, n_jobs: int, adaptation: dict, columns=COLUMNS
):
    rows = episode_rows(
        X, y, shot, n_episodes, n_jobs, run_episodes, adaptation, columns
    )
    return {name: interval([row[name] for row in rows]) for name in columns}


def kept_columns(previous: dict, accuracy: dict, adaptation: dict) -> dict:
    """``accuracy`` (some columns, recomputed) completed with the other
    columns of the ``previous`` record, which must come from the same
    episodes: same shots, episode counts, adaptation and episode shape."""
    same = (
        previous.get("adaptation") == adaptation
        and previous.get("n_way") == N_WAY
        and previous.get("n_query") == N_QUERY
        and set(previous.get("accuracy", {})) == set(accuracy)
        and all(
            {c["n"] for c in previous["accuracy"][shot].values()}
            == {c["n"] for c in cells.values()}
            for shot, cells in accuracy.items()
        )
    )
    if not same:
        raise SystemExit(
            "--columns recomputes some columns and keeps the others from the "
            "existing results, which were made with other settings (shots, "
            "episodes or adaptation): run every column instead."
        )
    return {
        shot: {
            name: cells.get(name, previous["accuracy"][shot].get(name))
            for name in COLUMNS
            if name in cells or name in previous["accuracy"][shot]
        }
        for shot, cells in accuracy.items()
    }


def latency(X, y, repeats: int, adaptation: dict) -> dict:
    """Median seconds of ``fit`` with adaptation, 10-way 5-shot, 2 threads.

    A frozen ``fit`` is timed alternately with it: on a shared machine the
    ratio of the two is steadier than either time.
    """
    torch.set_num_threads(2)
    split = EpisodicSplit(N_WAY, 5, 1, n_episodes=repeats, random_state=1234)
    models = classifiers(5, adaptation)
    seconds = {"robust adapted": [], "robust": []}
    for i, (support, _) in enumerate(split.split(X, y)):
        models["robust adapted"].set_params(random_state=i)
        for name in seconds:
            start = time.perf_counter()
            models[name].fit(X[support], y[support])
            seconds[name].append(time.perf_counter() - start)
    adapted, frozen = seconds["robust adapted"], seconds["robust"]
    return {
        "median_s": statistics.median(adapted),
        "min_s": min(adapted),
        "max_s": max(adapted),
        "frozen_median_s": statistics.median(frozen),
        "repeats": repeats,
        "torch_threads": 2,
        "load_average_1min": os.getloadavg()[0],
    }


#: Row labels of the report, one per column of results.
LABELS = {
    "pixels": "pixels (nearest centroid)",
    "frozen": "paper's encoder, frozen",
    "l2": "paper's encoder, l2",
    "cl2n": "paper's encoder, cl2n",
    "adapted": "paper's encoder, adapted",
    "adapted+cl2n": "paper's encoder, adapted, cl2n",
    "robust": "robust encoder, frozen",
    "robust adapted": "robust encoder, adapted",
    "symbols": "symbols encoder, frozen",
    "ensemble": "ensemble encoder (paper's + robust + symbols), frozen",
    "one-encoder": "one-encoder (paper's + two trained in 30 min), frozen",
}


def printed_read_28() -> tuple[np.ndarray, np.ndarray]:
    """The clean printed symbols read by ``ImageReader(size=28)``, as
    ``digits_read_28`` reads the digits."""
    from real_conditions import printed_symbols

    from sklearn_protonet.preprocessing import ImageReader

    images, labels = printed_symbols()
    return ImageReader(size=28).fit_transform(images / 255.0), labels


#: Each domain: its title, its images and labels, its results' file name.
DOMAINS = {
    "digits": ("digits", digits_read_28, "cross_domain"),
    "printed": ("printed symbols", printed_read_28, "cross_domain_printed"),
}


def report(record: dict) -> str:
    """The markdown of a results record: one row per setting, one column per
    shot (narrow enough for a phone)."""
    domain = record.get("domain", "digits")
    shots = list(record["accuracy"])
    header = ["encoder", *(f"{N_WAY}-way {shot}-shot" for shot in shots)]
    rows = [
        [LABELS[name], *(cell(cells[name]) for cells in record["accuracy"].values())]
        for name in COLUMNS
        if all(name in cells for cells in record["accuracy"].values())
    ]
    episodes = {c["n"] for cells in record["accuracy"].values() for c in cells.values()}
    lines = [
        f"# Cross-domain: Omniglot encoders on {DOMAINS[domain][0]} (28x28)",
        "",
        f"Accuracy in % with 95 % intervals over "
        f"{', '.join(map(str, sorted(episodes)))} episodes "
        f"({N_QUERY} queries per class)"
        + (f". adapted: {record['adaptation']}." if "latency" in record else "."),
        "",
        markdown_table(header, rows),
        "",
    ]
    if len(set(record.get("column_dates", {}).values())) > 1:
        by_date = {}
        for column, date in record["column_dates"].items():
            by_date.setdefault(date, []).append(column)
        runs = "; ".join(
            f"{date}: {', '.join(columns)}" for date, columns in sorted(by_date.items())
        )
        lines += [
            f"Columns by the run that computed them, on the same episodes: {runs}.",
            "",
        ]
    if "latency" not in record:
        return "\n".join(lines)
    lat = record["latency"]
    targets = []
    for column in ("adapted", "robust adapted"):
        reached = {
            shot: cells[column]["mean"] for shot, cells in record["accuracy"].items()
        }
        met = all(reached[s] >= TARGETS[int(s)] for s in shots)
        values = " / ".join(f"{reached[s]:.1f}" for s in shots)
        targets.append(f"{column} {values} ({'met' if met else 'missed'})")
    lines += [
        f"fit of the robust encoder with adaptation, 10-way 5-shot, "
        f"{lat['torch_threads']} torch "
        f"threads: median {lat['median_s']:.2f} s over {lat['repeats']} fits "
        f"(min {lat['min_s']:.2f}, max {lat['max_s']:.2f}; a frozen fit "
        f"{lat['frozen_median_s']:.2f} s, timed alternately; 1-min load "
        f"average {lat['load_average_1min']:.1f} on "
        f"{record['machine']['cpu_count']} cores: a shared machine slows it).",
        "",
        "Targets for an adapted encoder, "
        + " and ".join(f">= {TARGETS[int(s)]:g} % at {s}-shot" for s in shots)
        + f", fit <= {TARGETS['latency_s']:g} s: "
        + "; ".join(targets)
        + ".",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--domain",
        choices=list(DOMAINS),
        default="digits",
        help="digits, or printed symbols (frozen columns only)",
    )
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument(
        "--fine-tune-steps", type=int, default=ADAPTATION["fine_tune_steps"]
    )
    parser.add_argument("--latency-repeats", type=int, default=15)
    parser.add_argument("--output-dir", default=str(RESULTS))
    parser.add_argument(
        "--columns",
        nargs="+",
        choices=COLUMNS,
        default=None,
        help="recompute only these columns (on the same episodes) and keep the "
        "others from the results file in --output-dir",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="compare the adaptation settings of ABLATION instead (use with "
        "--episodes 40)",
    )
    args = parser.parse_args(argv)
    if args.ablation:
        X, y = digits_read_28()
        print(ablation(X, y, args.shots, args.episodes, args.n_jobs, args.output_dir))
        return {}
    adaptation = {**ADAPTATION, "fine_tune_steps": args.fine_tune_steps}
    digits = args.domain == "digits"
    columns = tuple(args.columns or (COLUMNS if digits else FROZEN))
    if not digits and not set(columns) <= set(FROZEN):
        parser.error(f"--domain {args.domain} runs the columns {FROZEN} only")
    if "adapted+cl2n" in columns and "adapted" not in columns:
        columns += ("adapted",)  # adapted+cl2n reuses the adapted encoder
    _, read, name = DOMAINS[args.domain]
    X, y = read()
    started = time.perf_counter()
    accuracy = {
        str(shot): evaluate(X, y, shot, args.episodes, args.n_jobs, adaptation, columns)
        for shot in args.shots
    }
    previous = None
    if args.columns:
        previous = json.loads((Path(args.output_dir) / f"{name}.json").read_text())
        accuracy = kept_columns(previous, accuracy, adaptation)
    extra = {}
    if digits:
        extra["latency"] = latency(X, y, args.latency_repeats, adaptation)
    record = environment(
        benchmark="cross_domain",
        domain=args.domain,
        adaptation=adaptation,
        n_way=N_WAY,
        n_query=N_QUERY,
        n_jobs=args.n_jobs,
        targets={str(k): v for k, v in TARGETS.items()},
        accuracy=accuracy,
        episodes_seconds=time.perf_counter() - started,
        **extra,
    )
    record["column_dates"] = column_dates(previous, accuracy, columns, record["date"])
    return publish(name, record, report, args.output_dir)


def column_dates(previous: dict | None, accuracy: dict, columns, date: str) -> dict:
    """The date of the run that computed each column: ``date`` for
    ``columns``, the ``previous`` record's for the columns kept from it
    (records from before ``column_dates`` name their recomputed columns and
    the run the others come from)."""
    names = next(iter(accuracy.values()))
    if previous is None:
        return dict.fromkeys(names, date)
    dates = previous.get("column_dates")
    if dates is None:
        older = previous.get("other_columns_from", previous["date"])
        dates = dict.fromkeys(names, older)
        dates.update(
            dict.fromkeys(previous.get("recomputed_columns", []), previous["date"])
        )
    return {name: date if name in columns else dates[name] for name in names}


if __name__ == "__main__":
    main()
