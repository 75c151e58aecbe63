"""The meta-trainer as a scikit-learn estimator: no predict, its tags,
parameters that ``set_params`` stores and ``fit`` validates.

scikit-learn's own estimator checks on the trainers run in
``tests/test_sklearn_checks.py``.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sklearn_protonet import EpisodicTrainer
from sklearn_protonet.modules import MLP

# Tiny budgets (scikit-learn's checks on the trainers use them too): 2-way
# episodes of one support and one query example (the checks' data have 2 or
# 3 classes), two episodes, one epoch, no validation.
_FAST = dict(
    n_way=2,
    n_shot=1,
    n_query=1,
    episodes_per_epoch=2,
    max_epochs=1,
    train_split=None,
    verbose=0,
    random_state=0,
)
_MLP = dict(module__hidden_sizes=(8,), module__out_features=4)


def test_no_predict_but_a_pointer_to_the_classifier():
    trainer = EpisodicTrainer(MLP, **_MLP, **_FAST)
    for method in ("predict", "predict_proba"):
        assert not hasattr(trainer, method)
        with pytest.raises(AttributeError) as info:
            getattr(trainer, method)
        assert "PrototypicalClassifier(encoder=trainer)" in str(info.value.__cause__)


def test_tags_say_what_the_trainer_does():
    """Sparse rows are meta-trained on and embedded; embeddings are float32."""
    trainer = EpisodicTrainer(MLP, **_MLP, **_FAST)
    tags = trainer.__sklearn_tags__()
    assert tags.input_tags.sparse and tags.target_tags.required
    assert tags.transformer_tags.preserves_dtype == ["float32"]
    rng = np.random.RandomState(0)
    X, y = (
        sp.random(30, 6, density=0.5, format="csr", random_state=0),
        rng.randint(0, 3, 30),
    )
    assert trainer.fit(X, y).transform(X).dtype == np.float32
    assert trainer.transform(X.toarray().astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("value", [-1, 3.0, "helloworld", [1], {}])
def test_invalid_callbacks_are_refused_by_fit_not_set_params(value):
    trainer = EpisodicTrainer(MLP, **_MLP, **_FAST).set_params(callbacks=value)
    assert trainer.callbacks == value
    X, y = np.random.RandomState(0).rand(12, 3), np.repeat([0, 1, 2], 4)
    with pytest.raises(ValueError, match="The 'callbacks' parameter"):
        trainer.fit(X, y)


def test_set_params_stores_and_fit_validates():
    trainer = EpisodicTrainer(MLP, **_MLP, **_FAST).set_params(n_query=0)
    assert trainer.n_query == 0
    X, y = np.random.RandomState(0).rand(12, 3), np.repeat([0, 1, 2], 4)
    with pytest.raises(ValueError, match="The 'n_query' parameter of EpisodicTrainer"):
        trainer.fit(X, y)
    trainer.set_params(n_query=1, callbacks=[])  # a valid list initialises
    assert trainer.fit(X, y).transform(X).shape == (12, 4)


def test_fit_without_labels_says_so():
    X = pd.DataFrame(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="requires y to be passed"):
        EpisodicTrainer(MLP, **_MLP, **_FAST).fit(X)


def test_set_params_round_trips_a_module_instance():
    """skorch refuses a module instance set as an attribute outside its
    initialisation; before it, set_params(**get_params()) round-trips."""
    trainer = EpisodicTrainer(MLP(hidden_sizes=(8,), out_features=4), **_FAST)
    trainer.set_params(**trainer.get_params(deep=False))
    other = MLP(hidden_sizes=(8,), out_features=3)
    assert trainer.set_params(module=other).module is other
    X, y = np.random.RandomState(0).rand(12, 3), np.repeat([0, 1, 2], 4)
    assert trainer.fit(X, y).transform(X).shape == (12, 3)
