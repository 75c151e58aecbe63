"""Bad input: a specific exception whose message names the parameter and the fix."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.modules import MLP

from .conftest import tiny_trainer

X4 = np.arange(24, dtype=float).reshape(8, 3)
Y4 = np.repeat([0, 1, 2, 3], 2)


def test_n_way_larger_than_the_classes(digits):
    with pytest.raises(ValueError, match=r"n_way=50 is larger than the 10 classes"):
        tiny_trainer(n_way=50).fit(digits["X_base"], digits["y_base"])


def test_classes_with_too_few_examples_are_named():
    X = np.random.RandomState(0).rand(30, 4)
    y = np.array(["a"] * 10 + ["b"] * 10 + ["small"] * 3 + ["tiny"] * 7)
    with pytest.raises(ValueError, match=r"'small' \(3\)") as error:
        tiny_trainer(n_support=3, n_query=5).fit(X, y)
    assert "n_support + n_query = 8" in str(error.value)
    assert "'tiny' (7)" in str(error.value)


def test_class_with_one_example_during_meta_training():
    X = np.random.RandomState(0).rand(9, 4)
    y = np.array([0] * 4 + [1] * 4 + [2])
    with pytest.raises(ValueError, match=r"have fewer: 2 \(1\)"):
        tiny_trainer(n_support=1, n_query=1).fit(X, y)


@pytest.mark.parametrize("name", ["n_support", "n_query"])
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_shots(digits, name, value):
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
        tiny_trainer(**{name: value}).fit(digits["X_base"], digits["y_base"])


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        PrototypicalClassifier().predict(X4)
    with pytest.raises(NotFittedError):
        tiny_trainer().transform(X4)


def test_wrong_number_of_features():
    clf = PrototypicalClassifier().fit(X4, Y4)
    with pytest.raises(ValueError, match="X has 2 features, but PrototypicalClassifier"):
        clf.predict(X4[:, :2])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf(bad):
    X = X4.copy()
    X[1, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        PrototypicalClassifier().fit(X, Y4)
    with pytest.raises(ValueError, match="NaN|infinity"):
        PrototypicalClassifier().fit(X4, Y4).predict(X)
    with pytest.raises(ValueError, match="NaN|infinity"):
        tiny_trainer().fit(X, Y4)


def test_empty_support_set():
    with pytest.raises(ValueError, match="0 sample"):
        PrototypicalClassifier().fit(np.empty((0, 3)), [])


def test_single_class_support_set():
    with pytest.raises(ValueError, match="at least 2 classes"):
        PrototypicalClassifier().fit(X4, np.zeros(8))


def test_unknown_metric():
    with pytest.raises(InvalidParameterError, match="'metric' parameter"):
        PrototypicalClassifier(metric="manhattan").fit(X4, Y4)
    with pytest.raises(ValueError, match="metric must be one of"):
        tiny_trainer(metric="manhattan").fit(X4, Y4)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_non_positive_temperature(temperature):
    with pytest.raises(InvalidParameterError, match="'temperature' parameter"):
        PrototypicalClassifier(temperature=temperature).fit(X4, Y4)


def test_encoder_output_not_2d():
    class Unflattened(torch.nn.Module):
        def forward(self, X):
            return X[:, None, :]

    with pytest.raises(ValueError, match="2-D tensor.*torch.nn.Flatten"):
        PrototypicalClassifier(Unflattened()).fit(X4, Y4)


def test_unusable_encoder_type():
    with pytest.raises(TypeError, match="encoder must be None, a torch.nn.Module"):
        PrototypicalClassifier(encoder="conv4").fit(X4, Y4)


def test_sample_weight_errors():
    with pytest.raises(ValueError, match="sample_weight"):
        PrototypicalClassifier().fit(X4, Y4, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sums to zero for classes \\[3\\]"):
        PrototypicalClassifier().fit(X4, Y4, sample_weight=[1, 1, 1, 1, 1, 1, 0, 0])


def test_encoder_on_another_device_than_asked():
    clf = PrototypicalClassifier(MLP(in_features=3), device="meta")
    with pytest.raises(ValueError, match="device='meta' but the encoder's weights"):
        clf.fit(X4, Y4)


def test_episodic_split_errors():
    with pytest.raises(ValueError, match="n_shot \\+ n_query = 16"):
        list(EpisodicSplit(2, 1, 15).split(X4, Y4))
    with pytest.raises(ValueError, match="n_way=5 is larger than the 4 classes"):
        list(EpisodicSplit(5, 1, 1).split(X4, Y4))
