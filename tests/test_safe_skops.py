"""Hostile skops files: ``persistence.load`` refuses them, naming the file and
the field, in bounded memory and time.

Four layers, as for the safetensors files (``test_safe_loading.py``): crafted
archives (members that inflate, or lie about their size; ``.npy`` headers
declaring more than they hold; schemas nested 10^5 deep; references that
expand exponentially; a member read by thousands of nodes), tampered
estimators (invalid parameters, swapped or duplicated fitted attributes, an
encoder that is a number), a sweep of junk values over every node of valid
schemas (only a load or a ``ValueError``), and a fresh process that loads
every hostile file, skops and safetensors, and measures its peak memory.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import skops.io as sio
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_protonet import PrototypicalClassifier, persistence

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.RandomState(0)
X = RNG.rand(12, 6)
Y = np.repeat(["a", "b", "c"], 4)
MIB = 1 << 20


def _estimators() -> dict:
    return {
        "identity": PrototypicalClassifier(temperature=2.0),
        "pipeline": make_pipeline(
            StandardScaler(), PrototypicalClassifier(unknown_label="unknown")
        ),
        "pca": PrototypicalClassifier(PCA(3, random_state=0)),
    }


def write_valid(folder: Path) -> dict[str, Path]:
    """One valid skops file of each kind (also used by the memory probe)."""
    files = {}
    for name, estimator in _estimators().items():
        files[name] = folder / f"{name}.skops"
        persistence.dump(estimator.fit(X, Y), files[name])
    files["sparse"] = folder / "sparse.skops"
    sio.dump({"matrix": sp.random(50, 40, density=0.1, format="csr", random_state=0)},
             files["sparse"])  # fmt: skip
    return files


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(out: Path, content: dict, deflated=(), method=zipfile.ZIP_DEFLATED):
    """An archive of ``content`` (bytes, or a callable writing a stream);
    the members named in ``deflated`` are compressed with ``method``."""
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in content.items():
            compress = method if name in deflated else zipfile.ZIP_STORED
            info = zipfile.ZipInfo(name)
            info.compress_type = compress
            with archive.open(info, "w") as handle:
                if callable(data):
                    data(handle)
                else:
                    handle.write(data)
    return out


def _stream(head: bytes, n_bytes: int, fill=b" ", tail=b""):
    """Writes ``head``, ``n_bytes`` of ``fill`` in 1 MiB blocks, ``tail``:
    a member of any inflated size in little memory."""

    def write(handle):
        handle.write(head)
        block = fill * (MIB // len(fill))
        for _ in range(n_bytes // len(block)):
            handle.write(block)
        handle.write(tail)

    return write


def forge_size(path: Path, name: str, size: int) -> Path:
    """Rewrite the uncompressed size ``name`` declares (local header and
    central directory), leaving its data as it is."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(encoded)] == encoded:
                data[start + offset : start + offset + 4] = struct.pack("<I", size)
            start += 4
    path.write_bytes(bytes(data))
    return path


def forge_encrypted(path: Path, name: str) -> Path:
    """Set the "encrypted" flag of ``name`` in both of its headers."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(encoded)] == encoded:
                data[start + offset] |= 0x1
            start += 4
    path.write_bytes(bytes(data))
    return path


def schema_of(path: Path) -> dict:
    return json.loads(members(path)["schema.json"])


def with_schema(path: Path, out: Path, schema) -> Path:
    content = members(path)
    content["schema.json"] = json.dumps(schema).encode()
    return write_zip(out, content)


def _attrs(schema: dict) -> dict:
    """The attribute nodes of a classifier's state (or the pipeline's last
    step's)."""
    content = schema["content"]["content"]
    if "steps" in content:
        step = content["steps"]["content"][-1]["content"][1]
        return step["content"]["content"]
    return content


# Where a public fitted attribute's node sits in the classifier's state (its
# fitted snapshot is saved as plain data); parameters sit at the top.
_PATHS = {
    "classes_": ("_fitted_data", "classes"),
    "prototypes_": ("_fitted_data", "support", "prototypes"),
    "prototype_sums_": ("_fitted_data", "support", "prototype_sums"),
    "encoder_": ("_fitted_data", "embedder", "encoder"),
}


def _slot(schema: dict, attribute: str) -> tuple[dict, str]:
    """The dict holding ``attribute``'s node, and its key there."""
    nodes, path = _attrs(schema), _PATHS.get(attribute, (attribute,))
    for step in path[:-1]:
        nodes = nodes[step]["content"]
    return nodes, path[-1]


def _json_node(value, node_id) -> dict:
    return {"__class__": type(value).__name__, "__module__": "builtins",
            "__loader__": "JsonNode", "content": json.dumps(value), "is_json": True,
            "__id__": node_id}  # fmt: skip


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _array_member(path: Path, attribute: str) -> str:
    nodes, key = _slot(schema_of(path), attribute)
    return nodes[key]["file"]


def _nested_lists(depth: int) -> bytes:
    """``depth`` list nodes, each the only item of the one above."""
    node = '{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", '
    inner = node + '"content": []}'
    return (
        '{"protocol": 2, '
        + node[1:]
        + '"content": ['
        + (node + '"content": [') * (depth - 1)
        + inner
        + "]}" * depth
    ).encode()


def _reference_dag(levels: int) -> dict:
    """Lists whose two items are the previous list, the second time by
    reference: 2^levels nodes for skops to walk, from a few kB of JSON."""

    def state(i, content):
        return {"__class__": "list", "__module__": "builtins",
                "__loader__": "ListNode", "content": content,
                "__id__": i + 1}  # fmt: skip

    node = state(0, [])
    for i in range(1, levels):
        node = state(i, [node, state(i - 1, [])])
    return {**node, "protocol": 2}


def hostile_files(
    valid: dict[str, Path], folder: Path, only: tuple[str, ...] | None = None
) -> list[tuple[str, Path, str | tuple[str, str]]]:
    """(id, file, field named in the message) for every crafted skops file
    (or the ``only`` ones)."""
    identity, pipeline = valid["identity"], valid["pipeline"]
    cases = []

    def add(case_id, field, make):
        if only is None or case_id in only:
            cases.append((case_id, make(folder / f"{case_id}.skops"), field))

    schema_text = members(identity)["schema.json"]
    # -- sizes: nothing inflated before it is counted -----------------------
    add("schema-inflates-to-256-mib", "schema.json", lambda out: write_zip(
        out, {**members(identity),
              "schema.json": _stream(schema_text[:-1], 256 * MIB, tail=b"}")},
        deflated={"schema.json"}))  # fmt: skip
    add("schema-declares-1-gib", "schema.json", lambda out: forge_size(
        write_zip(out, members(identity), deflated={"schema.json"}),
        "schema.json", 1 << 30))  # fmt: skip
    add("schema-lies-about-its-size", "schema.json", lambda out: forge_size(
        write_zip(out, {**members(identity),
                        "schema.json": _stream(schema_text[:-1], 64 * MIB,
                                               tail=b"}")},
                  deflated={"schema.json"}),
        "schema.json", len(schema_text)))  # fmt: skip
    prototypes = _array_member(identity, "prototypes_")
    header = _npy(np.zeros((100 * MIB // 8,)))[:128]
    add("npy-inflates-to-800-mib", prototypes, lambda out: write_zip(
        out, {**members(identity), prototypes: _stream(header, 800 * MIB, b"\0")},
        deflated={prototypes}))  # fmt: skip
    add("stored-npy-declares-1-gib", prototypes, lambda out: forge_size(
        write_zip(out, members(identity)), prototypes, 1 << 30))  # fmt: skip
    add("stored-npy-lies-about-its-size", prototypes, lambda out: forge_size(
        write_zip(out, members(identity)), prototypes, 100))  # fmt: skip
    big_header = _npy(np.zeros((3, 6)))
    big_header = big_header.replace(b"(3, 6)", b"(4000000000,)".ljust(6))
    add("npy-header-declares-30-gib", prototypes, lambda out: write_zip(
        out, {**members(identity), prototypes: big_header}))  # fmt: skip
    add("encrypted-member", prototypes, lambda out: forge_encrypted(
        write_zip(out, members(identity)), prototypes))  # fmt: skip
    add("bzip2-member", prototypes, lambda out: write_zip(
        out, members(identity), deflated={prototypes},
        method=zipfile.ZIP_BZIP2))  # fmt: skip
    sparse_member = next(n for n in members(valid["sparse"]) if n.endswith(".npz"))

    def npz_bomb(out):
        inner = io.BytesIO()
        write_zip(inner, {"data.npy": _stream(_npy(np.zeros(MIB))[:128], 64 * MIB,
                                              b"\0")},
                  deflated={"data.npy"})  # fmt: skip
        return write_zip(out, {**members(valid["sparse"]),
                               sparse_member: inner.getvalue()})  # fmt: skip

    add("npz-member-inflates", f"{sparse_member}/data.npy", npz_bomb)
    # -- the schema: nesting, values, references ----------------------------
    deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    add("schema-nested-100000-deep", "schema.json", lambda out: write_zip(
        out, {**members(identity), "schema.json": deep}))  # fmt: skip
    add(
        "3000-nested-list-nodes",
        "schema.json",
        lambda out: write_zip(
            out, {**members(identity), "schema.json": _nested_lists(3000)}
        ),
    )
    add("json-node-nested-100000-deep", "schema.json", lambda out: with_schema(
        identity, out, {**_json_node(0, 1), "content": "[" * 100_000 + "]" * 100_000,
                        "protocol": 2}))  # fmt: skip
    add("json-node-with-400000-values", "schema.json", lambda out: with_schema(
        identity, out, {**_json_node(0, 1), "content": "[" + "{}," * 400_000 + "0]",
                        "protocol": 2}))  # fmt: skip
    add(
        "references-expand-to-2^40-nodes",
        "schema.json",
        lambda out: with_schema(identity, out, _reference_dag(40)),
    )
    many = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
            "content": [{"__class__": "ndarray", "__module__": "numpy",
                         "__loader__": "NdArrayNode", "type": "numpy",
                         "file": "big.npy"}] * 2000, "protocol": 2}  # fmt: skip
    add("one-member-read-2000-times", "schema.json", lambda out: write_zip(
        out, {"big.npy": _npy(np.zeros(MIB // 8)),
              "schema.json": json.dumps(many).encode()}))  # fmt: skip
    add("member-missing", "schema.json", lambda out: write_zip(
        out, {"schema.json": json.dumps({**many, "content": many["content"][:1]})
              .encode()}))  # fmt: skip

    # -- the estimator: parameters and fitted attributes ---------------------
    def tamper(base, out, **changes):
        schema = schema_of(base)
        original = json.loads(json.dumps(schema))
        for i, (name, change) in enumerate(changes.items()):
            if callable(change):  # a node of the original state, by attribute
                nodes, key = _slot(original, change())
                change = nodes[key]
            nodes, key = _slot(schema, name)
            nodes[key] = {**change, "__id__": 10**6 + i}  # not a shared node
        return with_schema(base, out, schema)

    add(
        "negative-temperature",
        "estimator.temperature",
        lambda out: tamper(identity, out, temperature=_json_node(-1.0, 0)),
    )
    add("pipeline-nan-quantile", "estimator.steps[1][1].rejection_quantile",
        lambda out: tamper(pipeline, out,
                           rejection_quantile=_json_node(float("nan"), 0)))  # fmt: skip
    add(
        "unknown-metric",
        "estimator.metric",
        lambda out: tamper(identity, out, metric=_json_node("os.system", 0)),
    )
    add("swapped-classes-and-prototypes",
        ("estimator.classes_", "prototypes must be float64"),
        lambda out: tamper(
        identity, out, classes_=lambda: "prototypes_",
        prototypes_=lambda: "classes_"))  # fmt: skip
    add(
        "encoder-is-42",
        "estimator.encoder_",
        lambda out: tamper(identity, out, encoder_=_json_node(42, 0)),
    )

    def replace_array(base, out, attribute, array):
        content = members(base)
        content[_array_member(base, attribute)] = _npy(array)
        return write_zip(out, content)

    for case_id, expected, attribute, array in [
        ("duplicate-classes", ("estimator.classes_", "classes repeat"), "classes_",
         np.array(["a", "a", "c"])),
        ("nan-label", ("estimator.classes_", "classes hold NaN"), "classes_",
         np.array([0.0, np.nan, 2.0])),
        ("nan-prototypes", ("estimator.prototypes_", "prototypes hold NaN"),
         "prototypes_", np.full((3, 6), np.nan)),
        ("float32-prototypes",
         ("estimator.prototypes_", "prototypes must be float64"), "prototypes_",
         np.zeros((3, 6), np.float32)),
    ]:  # fmt: skip
        add(case_id, expected, functools.partial(
            lambda out, attribute, array: replace_array(identity, out, attribute,
                                                        array),
            attribute=attribute, array=array))  # fmt: skip
    add(
        "prototypes-of-another-width",
        ("estimator.prototypes_", "prototype_sums must be float64"),
        lambda out: replace_array(identity, out, "prototypes_", np.zeros((3, 5))),
    )
    add(
        "sums-of-another-shape",
        ("estimator.prototype_sums_", "prototype_sums must be float64"),
        lambda out: replace_array(identity, out, "prototype_sums_", np.zeros((2, 6))),
    )
    return cases


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return write_valid(tmp_path_factory.mktemp("valid"))


@pytest.fixture(scope="module")
def hostile(valid, tmp_path_factory):
    return hostile_files(valid, tmp_path_factory.mktemp("hostile"))


def _trusting(path: Path) -> list[str]:
    return [*persistence.TRUSTED_TYPES, *sio.get_untrusted_types(file=path)]


def test_valid_files_load(valid):
    estimators = _estimators()
    for name, path in valid.items():
        loaded = persistence.load(path, trusted=_trusting(path))
        if name == "sparse":
            assert loaded["matrix"].nnz == 200
        else:
            expected = estimators[name].fit(X, Y)
            np.testing.assert_array_equal(loaded.predict(X), expected.predict(X))
            np.testing.assert_array_equal(
                loaded.predict_proba(X), expected.predict_proba(X)
            )


def test_hostile_files_are_refused_naming_file_and_field(hostile):
    for case_id, path, field in hostile:
        with pytest.raises(ValueError) as info:
            persistence.load(path)
        assert info.type is ValueError, (case_id, info.value)
        message = str(info.value)
        # A tuple: the field, or what the classifier's own check of its
        # fitted state (run as skops restores it) says first.
        field, said = field if isinstance(field, tuple) else (field, None)
        named = f"field {field!r}" in message or (said is not None and said in message)
        assert str(path) in message and named, (
            case_id,
            message[:300],
        )


JUNK = [None, -1, 0, 1e308, float("nan"), "x", [], {}, [[1]], {"a": 1}, True]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.InconsistentVersionWarning")
@pytest.mark.parametrize("name", ["identity", "pipeline"])
def test_any_junk_in_any_node_is_a_value_error(name, valid, tmp_path):
    """Replace each node of a valid schema (its content, or the node itself)
    with junk: a load or a ValueError naming the file, never another
    exception (UntrustedTypesFoundException aside: the junk named a type)."""
    from skops.io.exceptions import UntrustedTypesFoundException

    base = schema_of(valid[name])
    paths = []

    def visit(value, path):
        if isinstance(value, dict):
            paths.append(path)
            for key, child in value.items():
                if isinstance(child, (dict, list)):
                    visit(child, (*path, key))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                visit(child, (*path, i))

    visit(base, ())
    out = tmp_path / "junk.skops"
    for path in paths[1:]:
        for key, junk in [("content", j) for j in JUNK] + [(None, j) for j in JUNK[:6]]:
            schema = json.loads(json.dumps(base))
            parent = schema
            for step in path[:-1]:
                parent = parent[step]
            if key is None:
                parent[path[-1]] = junk
            else:
                parent[path[-1]]["content"] = junk
            with_schema(valid[name], out, schema)
            try:
                persistence.load(out)
            except UntrustedTypesFoundException:
                pass
            except ValueError as error:
                assert str(out) in str(error), (path, key, junk, error)


def test_limits_scale_with_the_file():
    from sklearn_protonet._safe_skops import limits

    small, large = limits(1000), limits(10 * MIB)
    assert small["inflated_bytes"] == 10 * 1000 + MIB
    assert large["json_values"] > small["json_values"] >= 100_000


_MEMORY_PROBE = """
import json, re, resource, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from sklearn_protonet import persistence

files = json.loads(Path({listing!r}).read_text())
loaders = {{"skops": persistence.load, "encoder": persistence.load_encoder,
           "classifier": persistence.load_classifier}}
for kind, path in files["valid"]:  # warm up: imports, allocator, first loads
    loaders[kind](path)

def status(field):
    text = Path("/proc/self/status").read_text()
    return int(re.search(field + r":\\s+(\\d+)", text).group(1))

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:  # Linux: reset the peak (VmHWM) to the current size, so a peak below
    Path("/proc/self/clear_refs").write_text("5")  # the warm-up's shows too
    rss_before = status("VmRSS")
except OSError:
    rss_before = None
refused = 0
for kind, path in files["hostile"]:
    try:
        loaders[kind](path)
    except ValueError:
        refused += 1
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hwm = None if rss_before is None else status("VmHWM")
print(json.dumps({{"before_kib": before, "after_kib": after, "refused": refused,
                  "rss_before_kib": rss_before, "hwm_kib": hwm}}))
"""


def test_every_hostile_file_costs_bounded_memory(valid, hostile, tmp_path):
    """In a fresh process that only loads: refusing every hostile file
    (skops and safetensors: 256 MiB schemas, 800 MiB arrays, 30 GiB
    headers, 2 GB labels, 2^40-node trees...) raises the peak memory
    (``ru_maxrss``) by under 32 MiB. The files are written by this process,
    so that the loading process's peak before them is its imports'."""
    from tests import test_safe_loading as safetensors_cases

    tensors = safetensors_cases.write_valid(tmp_path)
    crafted = []
    for case_id, kind, metadata, changed, drop, _ in safetensors_cases.crafted_cases(
        tensors
    ):
        path = tmp_path / f"{case_id}.safetensors"
        safetensors_cases.rewrite(tensors[kind], path, metadata, changed, drop)
        crafted.append(("encoder" if kind.endswith("encoder") else "classifier", path))
    files = {
        "valid": [("skops", valid["identity"]), ("skops", valid["pipeline"])]
        + [("encoder" if k.endswith("encoder") else "classifier", p)
           for k, p in tensors.items()],
        "hostile": [("skops", path) for _, path, _ in hostile] + crafted,
    }  # fmt: skip
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps(files, default=str))
    code = _MEMORY_PROBE.format(root=str(ROOT), listing=str(listing))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    growth_mib = (report["after_kib"] - report["before_kib"]) / 1024
    print(
        f"{len(files['hostile'])} hostile files: ru_maxrss {report['before_kib'] >> 10}"
        f" MiB after imports and valid loads, {report['after_kib'] >> 10} MiB after "
        f"the hostile ones (growth {growth_mib:.1f} MiB)"
    )
    assert report["refused"] == len(files["hostile"])
    assert growth_mib < 32, report
    if report["hwm_kib"] is not None:
        # The peak while loading the hostile files, from the size before them.
        during_mib = (report["hwm_kib"] - report["rss_before_kib"]) / 1024
        print(
            f"VmRSS {report['rss_before_kib'] >> 10} MiB before them, peak "
            f"{report['hwm_kib'] >> 10} MiB while loading them (+{during_mib:.1f} MiB)"
        )
        assert during_mib < 32, report
