"""Tampered files: the safe loaders refuse them, naming the file and the field,
before building anything from the metadata.

Three layers of cases: the audit's crafted files (huge layer sizes, huge
label dtypes, NaN prototypes...), a sweep that replaces every metadata field
and every tensor of valid files with junk (the loaders may only succeed or
raise ``ValueError``), and a memory bound measured in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import MLP, Conv4
from sklearn_protonet.persistence import (
    load_classifier,
    load_encoder,
    save_classifier,
    save_encoder,
)

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.RandomState(0)
X_FLAT = RNG.rand(12, 6).astype(np.float32)
X_IMAGES = RNG.rand(12, 64).astype(np.float32)
Y = np.repeat(["a", "b", "c"], 4)


def _mlp():
    return MLP(in_features=6, hidden_sizes=(5,), out_features=4)


def _conv4():
    return Conv4(input_shape=(1, 8, 8), hidden_channels=3, n_blocks=3)


def write_valid(folder: Path) -> dict[str, Path]:
    """One valid file of each kind (also used by the memory-bound subprocess)."""
    files = {
        "mlp-classifier": folder / "mlp-clf.safetensors",
        "conv4-classifier": folder / "conv4-clf.safetensors",
        "identity-classifier": folder / "id-clf.safetensors",
        "mlp-encoder": folder / "mlp-enc.safetensors",
        "conv4-encoder": folder / "conv4-enc.safetensors",
    }
    save_classifier(
        PrototypicalClassifier(_mlp()).fit(X_FLAT, Y), files["mlp-classifier"]
    )
    save_classifier(
        PrototypicalClassifier(_conv4()).fit(X_IMAGES, Y), files["conv4-classifier"]
    )
    # With running sums and a rejection threshold, so the sweep reaches them.
    save_classifier(
        PrototypicalClassifier(unknown_label="unknown").fit(X_FLAT, Y),
        files["identity-classifier"],
    )
    save_encoder(_mlp(), files["mlp-encoder"])
    save_encoder(_conv4(), files["conv4-encoder"])
    return files


def _contents(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}


def rewrite(path: Path, out: Path, metadata=None, tensors=None, drop=()) -> Path:
    old_metadata, old_tensors = _contents(path)
    tensors = {**old_tensors, **(tensors or {})}
    metadata = {**old_metadata, **(metadata or {})}
    for key in drop:
        metadata.pop(key, None)
        tensors.pop(key, None)
    save_file(tensors, str(out), metadata=metadata)
    return out


def _load(kind: str, path: Path):
    return (load_encoder if kind.endswith("encoder") else load_classifier)(path)


def _module_json(path: Path, **config) -> dict:
    spec = json.loads(_contents(path)[0]["module"])
    spec["config"].update(config)
    return {"module": json.dumps(spec)}


def _params_json(path: Path, **changes) -> dict:
    params = json.loads(_contents(path)[0]["params"])
    return {"params": json.dumps({**params, **changes})}


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return write_valid(tmp_path_factory.mktemp("valid"))


def crafted_cases(valid: dict[str, Path]):
    """(id, kind, metadata, tensors, drop, field named in the message)."""
    mlp_c, conv_c = valid["mlp-classifier"], valid["conv4-classifier"]
    mlp_e, conv_e = valid["mlp-encoder"], valid["conv4-encoder"]
    nan = torch.full((3, 4), float("nan"), dtype=torch.float64)
    return [
        ("huge-hidden-sizes", "mlp-classifier",
         _module_json(mlp_c, hidden_sizes=[20000, 20000]), None, (),
         "module.config.hidden_sizes"),
        ("huge-hidden-sizes-encoder", "mlp-encoder",
         _module_json(mlp_e, hidden_sizes=[20000]), None, (),
         "module.layers.0.weight"),
        ("huge-hidden-channels", "conv4-encoder",
         _module_json(conv_e, hidden_channels=3000), None, (),
         "module.encoder.0.0.weight"),
        ("huge-n-blocks", "conv4-classifier",
         _module_json(conv_c, n_blocks=10**9), None, (), "module.config.n_blocks"),
        ("huge-label-dtype", "mlp-classifier",
         {"classes": json.dumps({"dtype": "<U500000000", "values": ["a", "b", "c"]})},
         None, (), "classes.dtype"),
        ("non-json-params", "mlp-classifier", {"params": "{oops"}, None, (), "params"),
        ("non-json-module", "mlp-encoder", {"module": "]"}, None, (), "module"),
        ("non-json-info", "mlp-encoder", {"info": "{"}, None, (), "info"),
        ("missing-classes", "mlp-classifier", None, None, ("classes",), "classes"),
        ("missing-input-shape", "identity-classifier", None, None, ("input_shape",),
         "input_shape"),
        ("missing-metric", "conv4-encoder", None, None, ("metric",), "metric"),
        ("missing-prototypes", "mlp-classifier", None, None, ("prototypes",),
         "prototypes"),
        ("unknown-builder", "mlp-classifier",
         {"module": json.dumps({"class": "os.system", "builder": "os.system",
                                "config": {}})}, None, (), "module.builder"),
        ("unknown-config-key", "mlp-encoder", _module_json(mlp_e, evil=1), None, (),
         "module.config"),
        ("nan-prototypes", "mlp-classifier", None, {"prototypes": nan}, (),
         "prototypes"),
        ("inf-weights", "mlp-encoder", None,
         {"module.layers.0.bias": torch.full((5,), float("inf"))}, (),
         "module.layers.0.bias"),
        ("non-scalar-labels", "mlp-classifier",
         {"classes": json.dumps({"dtype": "|O", "values": [[1], [2], [3]]})}, None,
         (), "classes.values"),
        ("labels-of-another-dtype", "mlp-classifier",
         {"classes": json.dumps({"dtype": "<i8", "values": ["a", "b", "c"]})}, None,
         (), "classes.values"),
        ("label-count", "mlp-classifier",
         {"classes": json.dumps({"dtype": "<U1", "values": ["a", "b"]})}, None, (),
         "classes.values"),
        ("conv4-channels-vs-weights", "conv4-classifier",
         _module_json(conv_c, input_shape=[3, 8, 8]), None, (),
         "module.encoder.0.0.weight"),
        ("conv4-size-vs-prototypes", "conv4-classifier",
         _module_json(conv_c, input_shape=[1, 16, 16]), None, (), "input_shape"),
        ("conv4-size-vs-contract", "conv4-encoder",
         {"input_contract": json.dumps({"shape": [1, 28, 28], "value_range": None,
                                        "polarity": None})}, None, (),
         "input_contract.shape"),
        ("mlp-width-vs-input", "mlp-classifier",
         {"input_shape": "[7]", "n_features_in": "7"}, None, (), "input_shape"),
        ("feature-names", "identity-classifier",
         {"feature_names_in": '["x"]'}, None, (), "feature_names_in"),
        ("negative-n-features", "identity-classifier", {"n_features_in": "-6"}, None,
         (), "n_features_in"),
        ("nan-threshold", "identity-classifier", {"threshold": "NaN"}, None, (),
         "threshold"),
        ("threshold-without-unknown-label", "mlp-classifier", {"threshold": "1.5"},
         None, (), "threshold"),
        ("unknown-label-without-threshold", "identity-classifier", None, None,
         ("threshold",), "threshold"),
        ("sums-without-totals", "identity-classifier", None, None,
         ("prototype_totals",), "prototype_totals"),
        ("sums-of-another-shape", "identity-classifier", None,
         {"prototype_sums": torch.zeros((2, 6), dtype=torch.float64)}, (),
         "prototype_sums"),
        ("zero-totals", "identity-classifier", None,
         {"prototype_totals": torch.zeros(3, dtype=torch.float64)}, (),
         "prototype_totals"),
        ("unknown-param", "identity-classifier",
         {"params": json.dumps({"__class__": "os.system"})}, None, (), "params"),
        # Labels are judged after the cast to their dtype, by fit's rules.
        *[(f"labels-{name}", "mlp-classifier",
           {"classes": json.dumps({"dtype": dtype, "values": values})}, None, (),
           "classes.values")
          for name, dtype, values in [
              ("int-and-float-one", "<i8", [0, 1, 1.0]),
              ("floats-as-int", "<i8", [0, 1.5, 1.7]),
              ("float-duplicates", "<f8", [0, 1, 1.0]),
              ("bool-from-ints", "|b1", [0, 1, 2]),
              ("bool-duplicates", "|b1", [False, True, True]),
              ("truncated-by-dtype", "<U1", ["ab", "ac", "b"]),
              ("nan", "<f8", [0.0, float("nan"), 2.0]),
              ("overflow-u1", "|u1", [0, 1, 256]),
              ("overflow-i8", "<i8", [0, 1, 10**20]),
              ("huge-float-as-int", "<i8", [0, 1, 1e20]),
              ("unsorted", "<i8", [2, 1, 0]),
              ("continuous", "<f8", [0.5, 1.5, 2.5]),
              ("mixed-objects", "|O", ["a", 1, 2]),
          ]],
        ("float8-prototypes", "mlp-classifier", None,
         {"prototypes": torch.zeros(3, 4).to(torch.float8_e4m3fn)}, (), "prototypes"),
        ("negative-temperature", "identity-classifier",
         _params_json(valid["identity-classifier"], temperature=-1), None, (),
         "params.temperature"),
        ("nan-quantile", "identity-classifier",
         _params_json(valid["identity-classifier"], rejection_quantile=float("nan")),
         None, (), "params.rejection_quantile"),
        ("list-unknown-label", "identity-classifier",
         _params_json(valid["identity-classifier"], unknown_label=[1]), None, (),
         "params.unknown_label"),
    ]  # fmt: skip


def test_crafted_files_are_refused_naming_file_and_field(valid, tmp_path):
    for case_id, kind, metadata, tensors, drop, field in crafted_cases(valid):
        path = rewrite(valid[kind], tmp_path / f"{case_id}.safetensors",
                       metadata, tensors, drop)  # fmt: skip
        with pytest.raises(ValueError) as info:
            _load(kind, path)
        assert info.type is ValueError, case_id
        message = str(info.value)
        assert str(path) in message and f"field {field!r}" in message, (
            case_id,
            message,
        )


def test_valid_files_load(valid):
    for kind, path in valid.items():
        _load(kind, path)


JUNK = ["", "null", "[]", "{}", "1e308", "-1", "0", '"x"', "[1e9, 1e9]", "{oops",
        json.dumps({"dtype": "<U9999999999", "values": None}), "[[1]]", "true",
        "NaN", "9" * 400, "9" * 5000, "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 50_000 + "1" + "}" * 50_000]  # fmt: skip


@pytest.mark.parametrize(
    "kind",
    ["mlp-classifier", "conv4-classifier", "identity-classifier", "mlp-encoder"],
)
def test_any_junk_in_any_field_is_a_value_error(kind, valid, tmp_path):
    """The class of problem: whatever a field holds, a clean ValueError (or a
    load, when the junk happens to be valid), never another exception."""
    metadata, tensors = _contents(valid[kind])
    variants = [({key: junk}, None, ()) for key in metadata for junk in JUNK]
    spec = json.loads(metadata["module"])
    if spec is not None:
        for key in spec["config"]:
            for junk in JUNK[1:9]:
                variants.append((_module_json(valid[kind], **{key: json.loads(junk)}),
                                 None, ()))  # fmt: skip
    for name, tensor in tensors.items():
        variants += [
            (None, None, (name,)),
            (None, {name: tensor.flatten()[:1].clone()}, ()),
            (None, {name: tensor.to(torch.float16)}, ()),
            (None, {name: torch.zeros(*tensor.shape, 2)}, ()),
        ]
    for i, (meta, new_tensors, drop) in enumerate(variants):
        path = rewrite(valid[kind], tmp_path / f"{i}.safetensors", meta, new_tensors,
                       drop)  # fmt: skip
        try:
            _load(kind, path)
        except ValueError as error:
            assert str(path) in str(error), (meta, drop, error)
        path.unlink()


_MEMORY_PROBE = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.test_safe_loading import crafted_cases, rewrite, write_valid, _load

folder = Path({folder!r})
valid = write_valid(folder)
for kind, path in valid.items():  # warm up: imports, allocator, first loads
    _load(kind, path)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for case_id, kind, metadata, tensors, drop, field in crafted_cases(valid):
    path = rewrite(valid[kind], folder / "bad.safetensors", metadata, tensors, drop)
    try:
        _load(kind, path)
    except ValueError:
        pass
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_growth_kib": after - before}}))
"""


def test_crafted_files_cost_bounded_memory(tmp_path):
    """In a fresh process: refusing every crafted file (1.5 GB hidden layers,
    a 2 GB-per-label dtype...) raises the peak memory by under 32 MiB."""
    code = _MEMORY_PROBE.format(root=str(ROOT), folder=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    growth = json.loads(result.stdout.strip().splitlines()[-1])["peak_growth_kib"]
    assert growth < 32 * 1024, f"peak memory grew by {growth} KiB"
