"""Sphinx configuration of the sklearn-protonet documentation.

Build with ``make -C docs html`` (warnings are errors). The gallery examples
under ``examples/`` are executed; ``make -C docs html-noplot`` skips them.
The Omniglot example reads the data home from ``SKLEARN_PROTONET_DATA``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import warnings
from pathlib import Path

import matplotlib
from sphinx import addnodes
from sphinx.ext import autosummary as _autosummary

matplotlib.use("Agg")  # before anything imports pyplot

import sklearn_protonet  # noqa: E402
from sklearn_protonet.__main__ import build_parser as cli_parser  # noqa: E402

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"
# The Omniglot experiment is a script of the repository, not of the package:
# its profiles table is read from benchmarks/omniglot.py.
sys.path.insert(0, str(ROOT / "benchmarks"))
import omniglot  # noqa: E402

# -- Project information -----------------------------------------------------

project = "sklearn-protonet"
author = "sklearn-protonet developers"
copyright = "sklearn-protonet developers"
version = sklearn_protonet.__version__
release = version

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # MathJax ships with the site, so formulas render without a network.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    # The changelog and the contributing guide are Markdown files at the root.
    "myst_parser",
]

# Links to the projects we build on. Each published inventory is tried
# first; without a network the build falls back to the inventory of the
# names these pages use, written by docs/make_inventories.py.
intersphinx_mapping = {
    name: (url, (None, f"_inventories/{name}.inv"))
    for name, url in {
        "python": "https://docs.python.org/3",
        "numpy": "https://numpy.org/doc/stable",
        "pandas": "https://pandas.pydata.org/docs",
        "sklearn": "https://scikit-learn.org/stable",
        "torch": "https://docs.pytorch.org/docs/stable",
        "skorch": "https://skorch.readthedocs.io/en/stable",
    }.items()
}
intersphinx_timeout = 10

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_generated",
    "_inventories",
    "Thumbs.db",
    ".DS_Store",
]
root_doc = "index"
default_role = "literal"

# -- API reference: autodoc, autosummary, numpydoc ---------------------------

autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections already give the types
# The class template documents the methods itself; numpydoc's own member
# tables would list every inherited skorch / torch method.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Types in Parameters and Returns sections link to their documentation.
numpydoc_xref_param_type = True
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "DataFrame": "pandas.DataFrame",
    "Tensor": "torch.Tensor",
    "Bunch": "sklearn.utils.Bunch",
    "Path": "pathlib.Path",
    "FrozenEstimator": "sklearn.frozen.FrozenEstimator",
    "EpisodicTrainer": "sklearn_protonet.EpisodicTrainer",
    "PrototypicalClassifier": "sklearn_protonet.PrototypicalClassifier",
    "EpisodicSplit": "sklearn_protonet.model_selection.EpisodicSplit",
}
# Words of type descriptions that are not names to link.
# (shape names included: they are sizes, not objects).
numpydoc_xref_ignore = {
    *("of", "or", "and", "shape", "default", "optional", "dtype"),
    *("n", "n_samples", "n_features", "n_features_in_", "n_classes"),
    *("n_way", "n_shot", "n_query", "n_episodes", "embedding_dim"),
}


# Autosummary's one-line summaries end at the first ". "; "eq." (as in
# "(eq. 1 and 2 of the paper)") abbreviates, it does not end the sentence.
_autosummary.WELL_KNOWN_ABBREVIATIONS = (
    *_autosummary.WELL_KNOWN_ABBREVIATIONS,
    "eq.",
    "Eq.",
)


def _defining_module(modname: str, fullname: str) -> str | None:
    """The module that defines ``modname.fullname`` (``ClassSplit``, shown
    as ``sklearn_protonet.ClassSplit``, lives in ``sklearn_protonet.episodes``)."""
    try:
        obj = importlib.import_module(modname)
        for part in fullname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return getattr(obj, "__module__", None)


def _canonical_anchors(app, doctree):
    """Give each documented object an anchor under its defining module.

    The "[docs]" back-links of the highlighted source pages (viewcode) are
    ``#<module>.<name>``, but viewcode keeps one module name per source file,
    the documented one of whichever object it met first: with
    ``sklearn_protonet.ClassSplit`` and ``sklearn_protonet.episodes.EpisodeSampler``
    both from episodes.py, one of them pointed to an anchor that did not
    exist. With this anchor on every object and :func:`_viewcode_refnames`,
    every back-link names the defining module and finds its anchor.
    """
    for signature in doctree.findall(addnodes.desc_signature):
        modname, fullname = signature.get("module"), signature.get("fullname")
        if not modname or not fullname:
            continue
        defining = _defining_module(modname, fullname)
        anchor = f"{defining}.{fullname}"
        if defining and defining != modname and anchor not in signature["ids"]:
            signature["ids"].append(anchor)


def _viewcode_refnames(app, *args):
    """Back-links of each source page name its own module (see above)."""
    modules = getattr(app.env, "_viewcode_modules", {})
    for modname, entry in modules.items():
        if isinstance(entry, tuple) and len(entry) == 4:
            modules[modname] = (*entry[:3], modname)
    return []


def _escape_trailing_underscores(app, what, name, obj, options, lines):
    """Shape strings such as ``(n_features_in_,)`` in docstrings are plain
    text, but reStructuredText reads ``n_features_in_`` as a link to a target
    of that name; render them as literals instead."""
    for i, line in enumerate(lines):
        lines[i] = re.sub(r"(?<![`\w])\((\w+_),\)", r"(``\1``,)", line)


# Figures of the user guide are drawn by gallery examples; a build that does
# not run them (make html-noplot) gets a placeholder in their place.
_GALLERY_FIGURE = re.compile(
    r"^\s*\.\. (?:figure|image):: ((?:\.\./)*auto_examples/\S+\.png)", re.M
)


def _placeholder_figures(app):
    if app.config.sphinx_gallery_conf["plot_gallery"]:
        return
    import matplotlib.pyplot as plt

    for page in DOCS.rglob("*.rst"):
        for target in _GALLERY_FIGURE.findall(page.read_text(encoding="utf-8")):
            image = (page.parent / target).resolve()
            if image.is_file():
                continue
            image.parent.mkdir(parents=True, exist_ok=True)
            fig = plt.figure(figsize=(6.4, 1.2))
            fig.text(
                0.5,
                0.5,
                "This figure is drawn by an example of the gallery:\n"
                "build the documentation with make html to see it.",
                ha="center",
                va="center",
            )
            fig.savefig(image)
            plt.close(fig)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_trailing_underscores)
    app.connect("doctree-read", _canonical_anchors)
    # Before viewcode writes the source pages (its handler has priority 500).
    app.connect("html-collect-pages", _viewcode_refnames, priority=400)
    # After sphinx-gallery's own builder-inited step, which reads plot_gallery.
    app.connect("builder-inited", _placeholder_figures, priority=900)


# -- Gallery -----------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "subsection_order": [
        "../examples/basics",
        "../examples/meta_training",
        "../examples/applications",
    ],
    "within_subsection_order": "FileNameSortKey",
    # Every example is executed at build time, and a failure stops the build.
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "doc_module": ("sklearn_protonet",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"sklearn_protonet": None},
    "show_memory": False,
    "min_reported_time": 0,
    "remove_config_comments": True,
}

# Keep the rendered example output free of a harmless backend notice.
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="FigureCanvasAgg is non-interactive, and thus cannot be shown",
)

# -- HTML output -------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-protonet {version}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    # The error table needs the page's whole width.
    "secondary_sidebar_items": {
        "**": ["page-toc", "sourcelink"],
        "user_guide/errors": [],
    },
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {
    # The API pages: the names in api.rst's groups, not one flat list.
    "api": ["api-sidebar.html"],
    "generated/*": ["api-sidebar.html"],
    "index": [],
    "install": [],
    "reproduce": [],
    "performance": [],
    "developers/layout": [],
    "faq": [],
    "changelog": [],
    "contributing": [],
}
html_show_sourcelink = True


def _api_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """api.rst's sections and the names of their autosummary tables:
    ``[(section, [(name, page), ...]), ...]`` for the API sidebar."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    lines = (DOCS / "api.rst").read_text(encoding="utf-8").splitlines()
    in_table = False
    for line, below in zip(lines, [*lines[1:], ""], strict=True):
        if below and set(below) == {"="} and line.strip() and len(below) >= len(line):
            if line != "API reference":
                groups.append((line, []))
            in_table = False
        elif line.startswith(".. autosummary::"):
            in_table = True
        elif in_table and line.startswith("   ") and not line.strip().startswith(":"):
            name = line.strip()
            if groups and name:
                groups[-1][1].append((name, f"generated/sklearn_protonet.{name}"))
        elif in_table and line and not line.startswith(" "):
            in_table = False
    return [(title, names) for title, names in groups if names]


html_context = {"api_groups": _api_groups()}


# -- Pages generated from the package and the benchmark results --------------


def _rst_cell(text: str) -> str:
    """Markdown inline code becomes reStructuredText literal text."""
    return re.sub(r"`([^`]+)`", r"``\1``", text.strip())


def _markdown_table_to_rst(markdown: str) -> str:
    """Each GitHub-flavoured Markdown table in ``markdown`` as an rst
    ``list-table`` (other text is dropped)."""
    tables, rows = [], []
    for line in [*markdown.splitlines(), ""]:
        line = line.strip()
        if not line.startswith("|"):
            if rows:
                tables.append(rows)
                rows = []
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the header separator
        rows.append(cells)
    out = []
    for rows in tables:
        out += [".. list-table::", "   :header-rows: 1", "   :class: results", ""]
        for row in rows:
            out.append(f"   * - {_rst_cell(row[0])}")
            out.extend(f"     - {_rst_cell(cell)}" for cell in row[1:])
        out.append("")
    return "\n".join(out)


RESULTS = ROOT / "benchmarks" / "results"


def _benchmark_tables(name: str, command: str) -> str:
    """The tables of ``benchmarks/results/<name>.md``, or a note naming the
    ``command`` that writes it."""
    md = RESULTS / f"{name}.md"
    if not md.is_file():
        return (
            f".. note::\n\n   ``benchmarks/results/{name}.md`` was not found when "
            f"this page was built: run ``{command}``.\n"
        )
    return _markdown_table_to_rst(md.read_text(encoding="utf-8"))


def _encoders_at_a_time(n_jobs: int) -> str:
    return "one encoder at a time" if n_jobs == 1 else f"{n_jobs} encoders at a time"


def _precision_words(dtype: str | None) -> str:
    if dtype == "auto":
        return "chosen for the machine (``training_autocast_dtype``)"
    return dtype or "none"


def _cpu_words(machine: dict) -> str:
    """The CPU and what it computes bfloat16 with (what "auto" precision
    and the speed of training depend on)."""
    flags = set(machine.get("cpu_flags", []))
    if "amx_bf16" in flags:
        kind = "AMX bfloat16 tiles"
    elif "avx512_bf16" in flags:
        kind = "AVX-512 bfloat16, no AMX"
    elif "avx2" in flags:
        kind = "AVX2, no bfloat16 instructions"
    else:
        kind = "instruction set not recorded"
    return f"{machine.get('cpu_model', machine.get('processor', '?'))} ({kind})"


def _schedule_words(model: dict) -> str:
    """How a recipe's learning rate moves, in words."""
    lr = model.get("lr", 1e-3)
    schedule = model.get("schedule", "step")
    if schedule in ("cosine", "cosine-budget"):
        over = (
            "over the episodes or the time limit, whichever ends first"
            if schedule == "cosine-budget"
            else "over the episodes"
        )
        return (
            f"learning rate {lr:g} after {model.get('warmup_episodes', 0):,} "
            f"warm-up episodes, then cosine decay {over}"
        )
    return f"learning rate {lr:g} halved every {model['halve_every']:,}"


def _omniglot_results(profile: str = "cpu") -> str:
    """A CPU reproduction's table and facts, or a note when not yet run."""
    text = _benchmark_tables(
        f"omniglot-{profile}", f"python benchmarks/omniglot.py --profile {profile}"
    )
    record = RESULTS / f"omniglot-{profile}.json"
    if (RESULTS / f"omniglot-{profile}.md").is_file() and record.is_file():
        facts = json.loads(record.read_text(encoding="utf-8"))
        machine = facts.get("machine", {})
        versions = facts.get("versions", {})
        lines = [
            f"- ``{name}`` member: the shipped encoder, taken as it is "
            "(``load_pretrained``), not trained again"
            for name in facts["profile"].get("starts_from", [])
        ]
        joined = facts["profile"].get("joined", False)
        # One entry of "models" per recipe, in the profile's order.
        for model, (label, run) in zip(
            facts["profile"]["models"], facts["models"].items(), strict=True
        ):
            # Results written before the n_support -> n_shot rename say n_support.
            shot = f"{model.get('n_shot', model.get('n_support'))}-shot"
            role = "member" if joined else "encoder"
            lines.append(
                f"- {label} {role} (scores the {', '.join(run.get('cells', []))} "
                f"cells): {model['n_episodes']:,} episodes of {model['n_way']}-way "
                f"{shot} planned, {model.get('episode_loss', 'prototypical')} "
                f"loss, {_schedule_words(model)}, time limit "
                f"{model['max_minutes']} min, "
                f"mixed precision {_precision_words(model['autocast_dtype'])}; "
                f"trained {run.get('episodes_trained', 0):,} episodes in "
                f"{run.get('train_seconds', 0) / 60:.1f} min"
            )
        if joined:
            weights = ", ".join(f"{w:.4f}" for w in facts["member_weights"])
            scale = {
                "norm": "inverse RMS embedding norm",
                "within-class": "inverse RMS distance to the class mean",
            }[facts["profile"].get("member_scaling", "norm")]
            lines.append(
                "- Joined side by side into one encoder "
                "(``Conv4.side_by_side``), member factors "
                f"{weights} ({scale} on training images)"
            )
        lines += [
            f"- Wall clock: training {facts['train_seconds'] / 60:.1f} min "
            f"({_encoders_at_a_time(facts.get('profile', {}).get('n_jobs', 1))}); "
            f"evaluation {facts['eval_seconds']:.0f} s",
            f"- Machine: {_cpu_words(machine)}, "
            f"{machine.get('torch_threads', '?')} torch threads, device "
            f"``{facts.get('device', machine.get('device', '?'))}``",
            "- Versions: " + ", ".join(f"{name} {v}" for name, v in versions.items()),
            f"- Seed: ``random_state={facts.get('random_state')}``",
        ]
        text += "\n" + "\n".join(lines) + "\n"
        gaps = {
            cell: facts["paper"][cell] - result["accuracy"]
            for cell, result in facts.get("results", {}).items()
            if cell in facts.get("paper", {})
        }
        if gaps and max(gaps.values()) <= 0:
            text += "\nEvery cell is at the paper's figure or above.\n"
        elif gaps:
            cell = max(gaps, key=gaps.get)
            ours = facts["results"][cell]["accuracy"]
            text += (
                f"\nThe largest gap to the paper is in {cell}: {ours:.1f} % "
                f"against {facts['paper'][cell]:.1f} %.\n"
            )
    return text


def _cross_domain_results() -> str:
    """The cross-domain table, with its episodes, recipe and fit's latency."""
    text = _benchmark_tables("cross_domain", "python benchmarks/cross_domain.py")
    record = RESULTS / "cross_domain.json"
    if (RESULTS / "cross_domain.md").is_file() and record.is_file():
        facts = json.loads(record.read_text(encoding="utf-8"))
        cells = next(iter(facts["accuracy"].values()))
        lat = facts["latency"]
        text += (
            f"\nAccuracy in % with 95 % intervals over {cells['pixels']['n']} "
            f"episodes; adapted: ``{facts['adaptation']}``. ``fit`` of the "
            f"robust encoder with adaptation, 10-way 5-shot, "
            f"{lat['torch_threads']} torch threads: "
            f"median {lat['median_s']:.2f} s over {lat['repeats']} fits (a "
            f"frozen ``fit``: {lat['frozen_median_s']:.2f} s), on "
            f"{facts['machine']['cpu_count']} cores with a 1-minute load "
            f"average of {lat['load_average_1min']:.1f} ({facts['date']}).\n"
        )
    return text


def _profiles_table() -> str:
    fields = [
        ("n_shot", "training shot"),
        ("n_episodes", "training episodes"),
        ("n_way", "classes per episode"),
        ("n_query", "queries / class"),
        ("episode_loss", "episode loss"),
        ("lr", "learning rate"),
        ("schedule", "lr schedule"),
        ("halve_every", "lr halved every (step)"),
        ("max_minutes", "time limit (min)"),
        ("autocast_dtype", "mixed precision"),
        ("augment", "degraded images (robust)"),
        ("conditions", "photographs' conditions (symbols)"),
    ]
    out = [".. list-table::", "   :header-rows: 1", ""]
    out.append("   * - profile")
    out.extend(f"     - {label}" for _, label in fields)
    out.append("     - joined with (shipped)")
    out.append("     - encoders at a time")
    out.append("     - test episodes / cell")
    for name, profile in omniglot.PROFILES.items():
        for model in profile.models:
            out.append(f"   * - ``{name}``")
            for field, _ in fields:
                value = getattr(model, field)
                if value is None:
                    shown = "none"
                elif isinstance(value, bool):
                    shown = "yes" if value else "no"
                elif isinstance(value, str):
                    shown = f"``{value}``"
                elif field == "halve_every" and model.schedule != "step":
                    shown = "--"
                else:
                    shown = f"{value:,}"
                out.append(f"     - {shown}")
            shipped = ", ".join(f"``{name}``" for name in profile.starts_from)
            out.append(f"     - {shipped or '--'}")
            out.append(f"     - {profile.n_jobs}")
            out.append(f"     - {profile.n_test_episodes:,}")
    return "\n".join(out) + "\n"


def _help(build_parser, prog: str, commands=()) -> str:
    """``prog --help`` and each ``prog COMMAND --help``, as a console shows them."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        parser = build_parser(prog)
        texts = [f"$ {prog} --help\n{parser.format_help()}"]
        for name in commands:
            sub = parser.command_parsers[name]
            texts.append(f"$ {prog} {name} --help\n{sub.format_help()}")
        return "\n".join(texts)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _write_if_changed(path: Path, text: str) -> None:
    # Rewriting an unchanged file would make Sphinx re-read every page.
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


GENERATED.mkdir(exist_ok=True)
_write_if_changed(GENERATED / "omniglot_results.rst", _omniglot_results())
_write_if_changed(GENERATED / "omniglot_fast_results.rst", _omniglot_results("fast"))
_write_if_changed(
    GENERATED / "omniglot_robust_results.rst", _omniglot_results("robust")
)
_write_if_changed(
    GENERATED / "omniglot_symbols_results.rst", _omniglot_results("symbols")
)
_write_if_changed(
    GENERATED / "omniglot_ensemble_results.rst",
    _benchmark_tables("omniglot-ensemble", "python benchmarks/ensemble.py"),
)
_write_if_changed(GENERATED / "profiles.rst", _profiles_table())
_write_if_changed(
    GENERATED / "cli_help.txt",
    _help(cli_parser, "sklearn-protonet", ("pretrained", "digits")),
)
_write_if_changed(
    GENERATED / "omniglot_help.txt",
    _help(lambda prog: omniglot.build_parser(), "python benchmarks/omniglot.py"),
)
_write_if_changed(GENERATED / "cross_domain.rst", _cross_domain_results())
_write_if_changed(
    GENERATED / "cross_domain_printed.rst",
    _benchmark_tables(
        "cross_domain_printed", "python benchmarks/cross_domain.py --domain printed"
    ),
)
_write_if_changed(
    GENERATED / "cross_domain_ablation.rst",
    _benchmark_tables(
        "cross_domain_ablation",
        "python benchmarks/cross_domain.py --ablation --episodes 40",
    ),
)
_write_if_changed(
    GENERATED / "real_conditions.rst",
    _benchmark_tables("real_conditions", "python benchmarks/real_conditions.py"),
)
_write_if_changed(
    GENERATED / "time_to_accuracy.rst",
    _benchmark_tables("time_to_accuracy", "python benchmarks/time_to_accuracy.py"),
)
_write_if_changed(
    GENERATED / "time_to_accuracy_10min.rst",
    _benchmark_tables(
        "time_to_accuracy_10min",
        "python benchmarks/time_to_accuracy.py --minutes 10 --recipes new-10min "
        "20x20-10min --results-name time_to_accuracy_10min",
    ),
)
_write_if_changed(
    GENERATED / "time_to_accuracy_nca.rst",
    _benchmark_tables(
        "time_to_accuracy_nca",
        "python benchmarks/time_to_accuracy.py --minutes 10 --recipes new-10min "
        "nca-10min --results-name time_to_accuracy_nca",
    ),
)
_write_if_changed(
    GENERATED / "omniglot_ten_minutes_results.rst", _omniglot_results("ten-minutes")
)
_write_if_changed(
    GENERATED / "omniglot_ten_minutes_pair_results.rst",
    _omniglot_results("ten-minutes-pair"),
)
_write_if_changed(
    GENERATED / "omniglot_one_encoder_results.rst", _omniglot_results("one-encoder")
)
_write_if_changed(
    GENERATED / "omniglot_one_encoder_scratch_results.rst",
    _omniglot_results("one-encoder-scratch"),
)
_write_if_changed(
    GENERATED / "held_out_domains.rst",
    _benchmark_tables(
        "held_out_domains",
        "python benchmarks/held_out_domains.py",
    ),
)
_write_if_changed(
    GENERATED / "speed.rst", _benchmark_tables("speed", "python benchmarks/speed.py")
)
_write_if_changed(
    GENERATED / "memory.rst", _benchmark_tables("memory", "python benchmarks/memory.py")
)
_write_if_changed(
    GENERATED / "scale.rst", _benchmark_tables("scale", "python benchmarks/scale.py")
)
_write_if_changed(
    GENERATED / "identity_busy.rst",
    _benchmark_tables("identity_busy", "python benchmarks/identity_busy.py"),
)
_write_if_changed(
    GENERATED / "contention.rst",
    _benchmark_tables("contention", "python benchmarks/contention.py"),
)
_write_if_changed(
    GENERATED / "gaussian.rst",
    _benchmark_tables("gaussian", "python benchmarks/gaussian.py --train"),
)
_write_if_changed(
    GENERATED / "zero_shot.rst",
    _benchmark_tables("zero_shot", "python benchmarks/zero_shot.py"),
)
_write_if_changed(
    GENERATED / "onnx_serving.rst",
    _benchmark_tables("onnx_serving", "python benchmarks/onnx_serving.py"),
)
# Semi-supervised prototypes and open-set rejection.
for _name in ("semi_supervised", "open_set"):
    _write_if_changed(
        GENERATED / f"{_name}.rst",
        _benchmark_tables(_name, f"python benchmarks/{_name}.py"),
    )
