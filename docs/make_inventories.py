"""Write the offline intersphinx inventories in docs/_inventories/.

    python docs/make_inventories.py

The documentation links names such as ``sklearn.neighbors.NearestCentroid``
or ``torch.nn.Module`` to their projects' pages through intersphinx. The
projects' published inventories (``objects.inv``) need the internet, which a
build machine may not have; ``docs/conf.py`` tries them first and falls
back to the files written here. Each file lists the names in ``NAMES`` with
the page address the project's documentation uses for them, after checking
that every name exists in the installed package (a renamed or removed name
stops the script). Rerun it when adding a name the docs refer to.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import sys
import zlib
from pathlib import Path

from sklearn_protonet.datasets._base import atomic_writer

OUT = Path(__file__).resolve().parent / "_inventories"

# Page address patterns: "{name}" is the full dotted name.
SKLEARN = "modules/generated/{name}.html#{name}"
NUMPY = "reference/generated/{name}.html#{name}"
PANDAS = "reference/api/{name}.html#{name}"
TORCH = "generated/{name}.html#{name}"

#: project -> (package whose version is recorded, {name: page pattern}).
NAMES: dict[str, tuple[str, dict[str, str]]] = {
    "sklearn": (
        "sklearn",
        {
            name: SKLEARN
            for name in [
                "sklearn.base.BaseEstimator",
                "sklearn.base.ClassifierMixin",
                "sklearn.base.TransformerMixin",
                "sklearn.base.clone",
                "sklearn.compose.ColumnTransformer",
                "sklearn.decomposition.PCA",
                "sklearn.exceptions.NotFittedError",
                "sklearn.frozen.FrozenEstimator",
                "sklearn.linear_model.LogisticRegression",
                "sklearn.model_selection.BaseCrossValidator",
                "sklearn.model_selection.GridSearchCV",
                "sklearn.model_selection.cross_val_score",
                "sklearn.model_selection.cross_validate",
                "sklearn.model_selection.train_test_split",
                "sklearn.neighbors.KNeighborsClassifier",
                "sklearn.neighbors.NearestCentroid",
                "sklearn.pipeline.Pipeline",
                "sklearn.pipeline.make_pipeline",
                "sklearn.preprocessing.FunctionTransformer",
                "sklearn.preprocessing.OneHotEncoder",
                "sklearn.preprocessing.StandardScaler",
                "sklearn.utils.Bunch",
            ]
        },
    ),
    "numpy": (
        "numpy",
        {
            "numpy.ndarray": NUMPY,
            "numpy.memmap": NUMPY,
            "numpy.load": NUMPY,
            "numpy.savez_compressed": NUMPY,
            "numpy.random.Generator": "reference/random/generator.html#{name}",
            "numpy.random.default_rng": "reference/random/generator.html#{name}",
            "numpy.random.RandomState": "reference/random/legacy.html#{name}",
            # Linked by numpydoc from "array-like" and "scalar" in docstrings.
            "term:array_like": "glossary.html#term-array_like",
            "label:arrays.scalars": "reference/arrays.scalars.html#arrays-scalars",
        },
    ),
    "pandas": (
        "pandas",
        {"pandas.DataFrame": PANDAS, "pandas.Series": PANDAS},
    ),
    "torch": (
        "torch",
        {
            "torch.Tensor": "tensors.html#{name}",
            "torch.device": "tensor_attributes.html#{name}",
            "torch.dtype": "tensor_attributes.html#{name}",
            "torch.autocast": "amp.html#{name}",
            "torch.optim.Optimizer": "optim.html#{name}",
            "torch.nn.Module": TORCH,
            "torch.nn.Sequential": TORCH,
            "torch.nn.CrossEntropyLoss": TORCH,
            "torch.optim.Adam": TORCH,
            "torch.manual_seed": TORCH,
            "torch.set_num_threads": TORCH,
        },
    ),
    "skorch": (
        "skorch",
        {
            "skorch.net.NeuralNet": "net.html#{name}",
            "skorch.classifier.NeuralNetClassifier": "classifier.html#{name}",
            "skorch.callbacks.Callback": "callbacks.html#{name}",
            "skorch.callbacks.Checkpoint": "callbacks.html#{name}",
            "skorch.callbacks.EarlyStopping": "callbacks.html#{name}",
            "skorch.callbacks.EpochScoring": "callbacks.html#{name}",
            "skorch.callbacks.LRScheduler": "callbacks.html#{name}",
            "skorch.callbacks.ProgressBar": "callbacks.html#{name}",
            "skorch.dataset.ValidSplit": "dataset.html#{name}",
            "skorch.helper.predefined_split": "helper.html#{name}",
            "skorch.history.History": "history.html#{name}",
        },
    ),
    "python": (
        "sys",
        {
            "pathlib.Path": "library/pathlib.html#{name}",
            "os.PathLike": "library/os.html#{name}",
            # What numpydoc links the plain type words of docstrings to.
            "None": "library/constants.html#{name}",
            "True": "library/constants.html#{name}",
            "False": "library/constants.html#{name}",
            "int": "library/functions.html#{name}",
            "float": "library/functions.html#{name}",
            "callable": "library/functions.html#{name}",
            "str": "library/stdtypes.html#{name}",
            "list": "library/stdtypes.html#{name}",
            "tuple": "library/stdtypes.html#{name}",
            "dict": "library/stdtypes.html#{name}",
            "label:bltin-boolean-values": "library/stdtypes.html#bltin-boolean-values",
            "term:iterable": "glossary.html#term-iterable",
            "term:sequence": "glossary.html#term-sequence",
            "term:generator": "glossary.html#term-generator",
        },
    ),
}


#: project -> the name its inventory header gives.
TITLES = {
    "sklearn": "scikit-learn",
    "numpy": "NumPy",
    "pandas": "pandas",
    "torch": "PyTorch",
    "skorch": "skorch",
    "python": "Python",
}


def _resolve(name: str):
    """Import the object a dotted name stands for, or raise ImportError."""
    if hasattr(builtins, name):
        return getattr(builtins, name)
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def _role(obj) -> str:
    if obj is None or isinstance(obj, bool):
        return "py:data"
    if inspect.ismodule(obj):
        return "py:module"
    if inspect.isclass(obj):
        return "py:exception" if issubclass(obj, BaseException) else "py:class"
    return "py:function"


def _version(package: str) -> str:
    if package == "sys":
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    return importlib.import_module(package).__version__.split("+")[0]


def inventory(project: str) -> bytes:
    """The objects.inv (format version 2) of one project."""
    package, names = NAMES[project]
    lines = []
    for name, pattern in sorted(names.items()):
        kind, _, label = name.partition(":")
        if label:  # a glossary term or a section label: nothing to import
            role = {"term": "std:term", "label": "std:label"}[kind]
            lines.append(f"{label} {role} -1 {pattern} -")
            continue
        try:
            role = _role(_resolve(name))
        except (ImportError, AttributeError) as exc:
            raise SystemExit(
                f"{name} is not in the installed {package}: {exc}"
            ) from exc
        uri = pattern.format(name=name).replace(f"#{name}", "#$")
        lines.append(f"{name} {role} 1 {uri} -")
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {TITLES[project]}\n"
        f"# Version: {_version(package)}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    return header.encode() + zlib.compress(("\n".join(lines) + "\n").encode())


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for project in NAMES:
        with atomic_writer(OUT / f"{project}.inv") as out:
            out.write(inventory(project))
        print(f"{OUT / project}.inv: {len(NAMES[project][1])} names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
