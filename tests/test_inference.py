"""Reduced-precision inference and the choice of precision per machine."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_protonet import PrototypicalClassifier, _inference, hardware
from sklearn_protonet.modules import MLP, Conv4


def _images(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 784, generator=generator) > 0.8).float()


def test_cpu_info_reports_model_and_known_flags():
    info = hardware.cpu_info()
    assert isinstance(info["model"], str) and info["model"]
    assert set(info["flags"]) <= set(hardware._PRECISION_FLAGS)
    assert info["torch_capability"] == torch.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize(
    "flags, expected",
    [(["avx2", "amx_tile", "amx_bf16"], "bfloat16"), (["avx2", "fma"], None)],
)
def test_training_dtype_follows_the_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(hardware, "cpu_info", lambda: {"flags": flags})
    assert hardware.training_autocast_dtype("cpu") == expected


def test_training_dtype_is_measured_when_the_flags_do_not_decide(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_info", lambda: {"flags": ["avx512_bf16"]})
    # Without a module to time there is nothing to measure: float32.
    assert hardware.training_autocast_dtype("cpu") is None
    module = MLP(in_features=784, hidden_sizes=(16,), out_features=8)
    before = [p.clone() for p in module.parameters()]
    chosen = hardware.training_autocast_dtype(
        "cpu", module=module, example=_images(8), n_steps=1
    )
    assert chosen in (None, "bfloat16")
    # The timing trains a copy: the module itself is untouched.
    after = list(module.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_float32_is_the_module_itself():
    module = Conv4()
    assert _inference.inference_module(module, "float32") is module


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_reduced_precision_stays_close_to_float32(dtype):
    torch.manual_seed(0)
    module = Conv4().eval()
    X = _images(48)
    fast = _inference.inference_module(module, dtype, calibration=X[:32])
    with torch.inference_mode():
        reference, out = module(X), fast(X)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    relative = (out - reference).norm(dim=1) / reference.norm(dim=1)
    assert relative.max() < 0.1
    # The module keeps its float32 weights: int8 quantised a copy.
    assert next(module.parameters()).dtype == torch.float32


def test_int8_quantises_linear_encoders_too():
    torch.manual_seed(0)
    module = MLP(in_features=20, hidden_sizes=(32,), out_features=8).eval()
    X = torch.randn(64, 20)
    quantized = _inference.inference_module(module, "int8", calibration=X)
    with torch.inference_mode():
        assert torch.allclose(quantized(X), module(X), atol=0.1, rtol=0.1)


def test_int8_checks_inputs_like_the_module():
    quantized = _inference.inference_module(Conv4().eval(), "int8", _images(8))
    with pytest.raises(ValueError, match="Conv4 expects rows of 784 values"):
        quantized(torch.zeros(2, 10))


class _DataDependent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, X):
        if X.sum() > 0:  # Python control flow on values: not traceable
            return self.linear(X)
        return -self.linear(X)


def test_int8_names_untraceable_modules():
    with pytest.raises(ValueError, match="int8 needs a module that torch.fx can"):
        _inference.inference_module(_DataDependent(), "int8", torch.randn(4, 4))


def test_int8_needs_calibration_and_dtype_is_checked():
    with pytest.raises(ValueError, match="needs calibration inputs"):
        _inference.inference_module(Conv4(), "int8")
    with pytest.raises(ValueError, match="dtype must be one of"):
        _inference.inference_module(Conv4(), "int4")


def _glyphs():
    """Five noisy copies of five random glyphs: class structure an untrained
    Conv4 keeps, so predictions are not coin flips; and a 5-shot support."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(5), 40)
    glyphs = rng.random((5, 784)) > 0.8
    X = (glyphs[y] ^ (rng.random((200, 784)) > 0.95)).astype(np.float32)
    support = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(5)])
    return X, y, support


def test_classifier_int8_agrees_with_float32():
    torch.manual_seed(0)
    module = Conv4().eval()
    X, y, support = _glyphs()
    exact = PrototypicalClassifier(module).fit(X[support], y[support])
    fast = clone(exact).set_params(inference_dtype="int8")
    fast.fit(X[support], y[support])
    assert fast.inference_module_ is not module
    assert exact.inference_module_ is None  # float32: the module itself
    np.testing.assert_array_equal(fast.predict(X), exact.predict(X))
    # Prototypes come from float32 embeddings.
    np.testing.assert_allclose(fast.prototypes_, exact.prototypes_, rtol=1e-6)
    assert exact.int8_error_ is None and 0 < fast.int8_error_ < 1


def _assume_int8_error(clf, error):
    """Replace the int8 error the embedder measured on the support set."""
    embedder = copy.copy(clf._fitted.embedder)
    embedder.int8_error = error
    clf._fitted = dataclasses.replace(clf._fitted, embedder=embedder)


@pytest.mark.parametrize(
    "params",
    [{}, {"metric": "cosine"}, {"normalization": "l2"}, {"normalization": "cl2n"}],
)
def test_int8_embeds_uncertain_queries_again_in_float32(params):
    torch.manual_seed(0)
    X, y, support = _glyphs()
    exact = PrototypicalClassifier(Conv4().eval(), **params).fit(X[support], y[support])
    fast = clone(exact).set_params(inference_dtype="int8").fit(X[support], y[support])
    # Every row uncertain: every query is embedded in float32, as float32 does.
    _assume_int8_error(fast, np.inf)
    np.testing.assert_allclose(
        fast.decision_function(X), exact.decision_function(X), rtol=1e-5
    )
    # No error assumed: no row is embedded again, int8's own scores remain.
    _assume_int8_error(fast, 0.0)
    assert not np.allclose(
        fast.decision_function(X), exact.decision_function(X), rtol=1e-5
    )


def test_classifier_rejects_reduced_precision_without_a_module():
    X, y = np.random.RandomState(0).rand(6, 3), [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="applies to torch encoders only"):
        PrototypicalClassifier(inference_dtype="int8").fit(X, y)
    with pytest.raises(InvalidParameterError, match="inference_dtype"):
        PrototypicalClassifier(inference_dtype="int4").fit(X, y)


def test_saved_classifiers_keep_autocast_and_refuse_int8(tmp_path):
    from sklearn_protonet.persistence import load_classifier, save_classifier

    torch.manual_seed(0)
    X, y = _images(10).numpy(), np.repeat([0, 1], 5)
    clf = PrototypicalClassifier(Conv4(), inference_dtype="bfloat16").fit(X, y)
    save_classifier(clf, tmp_path / "bf16.safetensors")
    loaded = load_classifier(tmp_path / "bf16.safetensors")
    assert loaded.inference_dtype == "bfloat16"
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    clf.set_params(inference_dtype="int8").fit(X, y)
    with pytest.raises(ValueError, match="cannot save an inference_dtype='int8'"):
        save_classifier(clf, tmp_path / "int8.safetensors")
