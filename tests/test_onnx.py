"""ONNX export: onnxruntime's labels equal ``predict`` and its probabilities
``predict_proba`` (1e-5) for every exportable configuration, on random data
and on the shipped Omniglot sample with the shipped encoder; pipelines convert
in one skl2onnx call; what has no graph is refused by name; an exported file
holds standard operators only and is served without importing torch."""

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet._encoders import encoder_module
from sklearn_protonet.covariance import GaussianEncoder, ShrunkCovariance
from sklearn_protonet.datasets import load_omniglot_sample
from sklearn_protonet.modules import MLP, Conv4
from sklearn_protonet.pretrained import load_pretrained

if os.environ.get("CI") and importlib.util.find_spec("skl2onnx") is None:
    pytest.fail("CI installs the [onnx] extra: these tests must run there")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
sp_onnx = pytest.importorskip("sklearn_protonet.onnx")

METRICS = ("sqeuclidean", "euclidean", "cosine", "mahalanobis", "gaussian")
NORMALIZATIONS = (None, "l2", "cl2n")
STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}
# Every metric with every normalisation but one: centring [embedding,
# precision] (cl2n) gives metric="gaussian" negative precisions, whose
# "distances" are -inf or tied at 0, so rounding picks the label.
CONFIGURATIONS = [
    (metric, normalization)
    for metric in (*METRICS, "mahalanobis-full")
    for normalization in NORMALIZATIONS
    if (metric, normalization) != ("gaussian", "cl2n")
]


def _run(model, X):
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (name,) = [i.name for i in session.get_inputs()]
    return session.run(None, {name: X})


def _assert_same(model, estimator, X, atol=1e-5, share_beyond=0.0):
    """onnxruntime's outputs equal the estimator's: every label, and the
    probabilities within ``atol`` (but for a ``share_beyond`` of the cells,
    which stay within ``10 * atol``)."""
    labels, probabilities = _run(model, X)
    expected = estimator.predict(X)
    assert labels.shape == expected.shape
    mismatched = np.flatnonzero(labels != expected)
    assert len(mismatched) == 0, f"{len(mismatched)} labels differ: {mismatched[:5]}"
    difference = np.abs(probabilities - estimator.predict_proba(X))
    assert difference.shape == probabilities.shape
    assert (difference > atol).mean() <= share_beyond, difference.max()
    assert difference.max() <= 10 * atol


def _data(n_features=6, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), 6)
    X = centres[y] + rng.normal(size=(len(y), n_features))
    queries = rng.normal(scale=2.0, size=(300, n_features))
    return X.astype(np.float32), y, queries.astype(np.float32)


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return MLP(6, hidden_sizes=(16,), out_features=8).eval()


@pytest.fixture(scope="module")
def gaussian_mlp():
    torch.manual_seed(1)
    module = GaussianEncoder(MLP(6, hidden_sizes=(16,), out_features=8), 8)
    nn.init.normal_(module.head.weight)  # precisions that differ by example
    return module.eval()


def _classifier(encoder, metric, normalization, **params):
    covariance = None
    if metric == "mahalanobis-full":
        metric, covariance = "mahalanobis", ShrunkCovariance("full")
    return PrototypicalClassifier(
        encoder,
        metric=metric,
        normalization=normalization,
        covariance=covariance,
        **params,
    )


@pytest.mark.parametrize("encoder", ["identity", "mlp"])
@pytest.mark.parametrize("metric,normalization", CONFIGURATIONS)
def test_random_data_every_configuration(
    encoder, metric, normalization, mlp, gaussian_mlp
):
    X, y, queries = _data()
    if encoder == "identity":
        module = None
        if metric == "gaussian":  # [embedding, precision]: positive precisions
            X, queries = np.abs(X), np.abs(queries)
    else:
        module = gaussian_mlp if metric == "gaussian" else mlp
    labels = np.array(["ant", "bee", "cat", "dog"])[y]
    clf = _classifier(module, metric, normalization, temperature=0.5).fit(X, labels)
    _assert_same(sp_onnx.to_onnx(clf, X[:1]), clf, queries)


@pytest.fixture(scope="module")
def omniglot():
    sample = load_omniglot_sample()
    drawing = np.arange(len(sample.target)) % 20
    shot = drawing < 5  # 100-way 5-shot; 6 queries per character
    query = drawing >= 14
    return {
        "X": sample.data[shot],
        "y": sample.target[shot],
        "queries": sample.data[query],
        "encoder": load_pretrained("omniglot-conv4-1shot"),
    }


@pytest.fixture(scope="module")
def gaussian_conv4(omniglot):
    # The shipped Conv4 with a precision head (seeded, not zero: the
    # precisions differ by image).
    torch.manual_seed(0)
    module = GaussianEncoder(encoder_module(omniglot["encoder"]), 64)
    nn.init.normal_(module.head.weight, std=0.1)
    return module.eval()


@pytest.mark.parametrize("metric,normalization", CONFIGURATIONS)
def test_omniglot_sample_shipped_encoder(
    omniglot, gaussian_conv4, metric, normalization
):
    encoder = gaussian_conv4 if metric == "gaussian" else omniglot["encoder"]
    clf = _classifier(encoder, metric, normalization)
    clf.fit(omniglot["X"], omniglot["y"])
    model = sp_onnx.to_onnx(clf, omniglot["X"][:1])
    # torch's float32 convolutions are 4e-6 off float64's on these
    # embeddings, onnxruntime's 1e-6 (benchmarks/onnx_serving.py): the
    # precision-weighted distances of the variance-aware metrics amplify
    # that into a few probabilities (<= 0.01 %) beyond 1e-5 near ties.
    variance = metric in ("mahalanobis", "mahalanobis-full", "gaussian")
    share = 1e-4 if variance else 0.0
    _assert_same(model, clf, omniglot["queries"], share_beyond=share)


def test_omniglot_images_open_set_and_temperature(omniglot):
    # (n, 28, 28) images in, rejection of the sample's last 20 characters.
    images = omniglot["X"].reshape(-1, 28, 28)
    queries = omniglot["queries"].reshape(-1, 28, 28)
    known = np.isin(omniglot["y"], np.unique(omniglot["y"])[:80])
    clf = PrototypicalClassifier(
        omniglot["encoder"], temperature=8.0, unknown_label="unknown"
    ).fit(images[known], omniglot["y"][known])
    labels = clf.predict(queries)
    assert (labels == "unknown").any() and (labels != "unknown").any()
    _assert_same(sp_onnx.to_onnx(clf, images[:1]), clf, queries)


def test_open_set_integer_labels_and_double_input(mlp):
    X, y, queries = _data()
    clf = PrototypicalClassifier(mlp, unknown_label=-1, rejection_quantile=0.5)
    clf.fit(X, y)
    assert (clf.predict(queries) == -1).any()
    model = sp_onnx.to_onnx(clf, X[:1].astype(np.float64))
    labels, probabilities = _run(model, queries.astype(np.float64))
    assert labels.dtype == np.int64 and probabilities.dtype == np.float64
    _assert_same(model, clf, queries.astype(np.float64))


def test_identity_in_float64_agrees_to_the_last_digits():
    X, y, queries = _data()
    clf = PrototypicalClassifier(metric="euclidean").fit(X.astype(np.float64), y)
    model = sp_onnx.to_onnx(clf, X[:1].astype(np.float64))
    _assert_same(model, clf, queries.astype(np.float64), atol=1e-12)


def test_dynamic_batch_size(mlp):
    X, y, queries = _data()
    clf = PrototypicalClassifier(mlp).fit(X, y)
    model = sp_onnx.to_onnx(clf, X[:1])
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert not batch.HasField("dim_value")  # symbolic
    for n in (1, 7, 300):
        _assert_same(model, clf, queries[:n])


def test_pipeline_converts_in_one_skl2onnx_call(mlp):
    X, y, queries = _data()
    pipe = make_pipeline(
        StandardScaler(), PrototypicalClassifier(mlp, metric="cosine")
    ).fit(X * 3.0 + 1.0, y)
    model = skl2onnx.to_onnx(
        pipe, X[:1], options={PrototypicalClassifier: {"zipmap": False}}
    )
    _assert_same(model, pipe, queries * 3.0 + 1.0)
    # skl2onnx's default for classifiers: labels and a list of dictionaries.
    session = ort.InferenceSession(skl2onnx.to_onnx(pipe, X[:1]).SerializeToString())
    labels, dictionaries = session.run(None, {"X": queries[:3]})
    np.testing.assert_array_equal(labels, pipe.predict(queries[:3]))
    expected = pipe.predict_proba(queries[:3])
    for row, probabilities in zip(dictionaries, expected, strict=True):
        assert list(row) == list(pipe.classes_)
        np.testing.assert_allclose(list(row.values()), probabilities, atol=1e-5)


def test_adapted_encoder_exports_the_adapted_copy():
    # fine_tune_steps: encoder_ is the support-adapted copy (BatchNorm
    # statistics and last layers changed), which the graph must hold.
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    X, y = rng.random((12, 256), dtype=np.float32), np.repeat([0, 1, 2], 4)
    encoder = Conv4((1, 16, 16), hidden_channels=8, n_blocks=2)
    clf = PrototypicalClassifier(encoder, fine_tune_steps=3, random_state=0)
    clf.fit(X, y)
    assert clf.encoder_ is not encoder
    _assert_same(sp_onnx.to_onnx(clf, X[:1]), clf, rng.random((40, 256), np.float32))


def test_same_encoder_reexported_after_its_weights_change():
    X, y, queries = _data()
    torch.manual_seed(0)
    module = MLP(6, hidden_sizes=(16,), out_features=8).eval()
    clf = PrototypicalClassifier(module).fit(X, y)
    _assert_same(sp_onnx.to_onnx(clf, X[:1]), clf, queries)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(-1.5)
    clf.fit(X, y)
    _assert_same(sp_onnx.to_onnx(clf, X[:1]), clf, queries)


def _domains(model):
    return {o.domain for o in model.opset_import} | {n.domain for n in model.graph.node}


def test_crafted_model_file_uses_standard_operators_only(tmp_path):
    # A classifier built to exercise every part of the graph: a random
    # Conv4, cl2n, full Mahalanobis, string labels, open-set rejection.
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    X = rng.random((12, 1, 16, 16), dtype=np.float32)
    y = np.repeat(["x", "y", "z"], 4)
    clf = PrototypicalClassifier(
        Conv4((1, 16, 16), hidden_channels=8, n_blocks=2),
        metric="mahalanobis",
        covariance=ShrunkCovariance("full"),
        normalization="cl2n",
        unknown_label="?",
    ).fit(X, y)
    path = tmp_path / "crafted.onnx"
    onnx.save(sp_onnx.to_onnx(clf, X[:1]), path)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert _domains(model) <= STANDARD_DOMAINS
    assert not model.functions
    assert not any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for node in model.graph.node
        for a in node.attribute
    )
    queries = rng.random((40, 1, 16, 16), dtype=np.float32)
    _assert_same(model, clf, queries)


def test_served_in_a_process_that_never_imports_torch(tmp_path, mlp):
    X, y, queries = _data()
    pipe = make_pipeline(StandardScaler(), PrototypicalClassifier(mlp)).fit(X, y)
    onnx.save(sp_onnx.to_onnx(pipe, X[:1]), tmp_path / "model.onnx")
    np.save(tmp_path / "queries.npy", queries)
    child = textwrap.dedent(
        """
        import sys
        for name in ("torch", "sklearn_protonet", "skorch", "skl2onnx"):
            sys.modules[name] = None  # any import of them raises ImportError
        import numpy as np
        import onnxruntime as ort

        session = ort.InferenceSession(sys.argv[1] + "/model.onnx")
        queries = np.load(sys.argv[1] + "/queries.npy")
        labels, probabilities = session.run(None, {"X": queries})
        np.save(sys.argv[1] + "/labels.npy", labels)
        np.save(sys.argv[1] + "/probabilities.npy", probabilities)
        loaded = [
            name
            for name, module in sys.modules.items()
            if module is not None and name.split(".")[0] in ("torch", "sklearn")
        ]
        print(len(loaded))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["0"]
    np.testing.assert_array_equal(
        np.load(tmp_path / "labels.npy"), pipe.predict(queries)
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "probabilities.npy"), pipe.predict_proba(queries), atol=1e-5
    )


def _python_blocks(page: Path) -> list[str]:
    """The ``.. code-block:: python`` blocks of an rst page, dedented."""
    text = page.read_text(encoding="utf-8")
    bodies = re.findall(
        r"^\.\. code-block:: python\n\n((?:(?: {3,}.*)?\n)+)", text, re.M
    )
    return [textwrap.dedent(body.rstrip("\n")) + "\n" for body in bodies]


def test_deploying_page_runs_as_written(tmp_path, monkeypatch):
    # Export as the page does; serve in a process where torch cannot be
    # imported; convert again with skl2onnx directly.
    page = Path(__file__).resolve().parents[1] / "docs/user_guide/deploying.rst"
    export, serve, direct = _python_blocks(page)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(export, "deploying.rst export", "exec"), namespace)
    blocked = (
        "import sys\nsys.modules['torch'] = sys.modules['sklearn_protonet'] = None\n"
    )
    collect = (
        "\nnp.save('labels.npy', labels)\nnp.save('probabilities.npy', probabilities)\n"
    )
    subprocess.run([sys.executable, "-c", blocked + serve + collect], check=True)
    pipe, X, support = namespace["pipe"], namespace["X"], namespace["support"]
    np.testing.assert_array_equal(np.load("labels.npy"), pipe.predict(X[~support]))
    np.testing.assert_allclose(
        np.load("probabilities.npy"), pipe.predict_proba(X[~support]), atol=1e-5
    )
    exec(compile(direct, "deploying.rst skl2onnx", "exec"), namespace)
    _assert_same(namespace["model"], pipe, X[~support])


# -- refusals ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_refuses_reduced_precision_inference(dtype, mlp):
    X, y, _ = _data()
    clf = PrototypicalClassifier(mlp, inference_dtype=dtype).fit(X, y)
    with pytest.raises(ValueError, match=f"inference_dtype='{dtype}'"):
        sp_onnx.to_onnx(clf, X[:1])


def test_refuses_a_transformer_encoder():
    X, y, _ = _data()
    clf = PrototypicalClassifier(PCA(3).fit(X)).fit(X, y)
    with pytest.raises(ValueError, match="encoder_ of type PCA.*Pipeline step"):
        sp_onnx.to_onnx(clf, X[:1])


def test_refuses_a_module_torch_cannot_export():
    class Branching(nn.Module):
        def forward(self, X):
            if X.sum() > 0:  # data-dependent: no fixed graph
                return X
            return -X

    X, y, _ = _data()
    clf = PrototypicalClassifier(Branching()).fit(X, y)
    with pytest.raises(ValueError, match=r"encoder_ \(Branching\) could not be"):
        sp_onnx.to_onnx(clf, X[:1])


def test_refuses_float_labels():
    X, y, _ = _data()
    clf = PrototypicalClassifier().fit(X, y.astype(float))
    with pytest.raises(ValueError, match="classes_ of dtype float64"):
        sp_onnx.to_onnx(clf, X[:1])


def test_refuses_old_opsets_unfitted_and_non_float_input():
    X, y, _ = _data()
    with pytest.raises(NotFittedError):
        sp_onnx.to_onnx(PrototypicalClassifier(), X[:1])
    clf = PrototypicalClassifier().fit(X, y)
    with pytest.raises(ValueError, match="target_opset=15"):
        sp_onnx.to_onnx(clf, X[:1], target_opset=15)
    with pytest.raises(ValueError, match="float or double"):
        sp_onnx.to_onnx(clf, X[:1].astype(np.int64))
    with pytest.raises(TypeError, match="PrototypicalClassifier or a Pipeline"):
        sp_onnx.to_onnx(StandardScaler().fit(X), X[:1])
