"""On a real dask cluster (two worker processes, started and closed here):
searches and episodic evaluation equal the serial runs, the fitted encoder
travels once, batch prediction equals in-memory prediction, and faults end in
a result or a clear error, never a silently partial one."""

import os
import socket
import time

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.model_selection import (
    EpisodicSplit,
    episodic_score,
    mean_confidence_interval,
)
from sklearn_protonet.modules import MLP

from .conftest import tiny_trainer

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")
sp_dask = pytest.importorskip("sklearn_protonet.dask")

GRID = {"encoder__lr": [1e-3, 1e-2]}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def base(digits):
    return digits["X_base"][::2], digits["y_base"][::2]


def _search(**trainer_params) -> GridSearchCV:
    encoder = tiny_trainer(max_epochs=1, **trainer_params)
    return GridSearchCV(PrototypicalClassifier(encoder), GRID, cv=2)


@pytest.fixture(scope="module")
def serial_search(base):
    return _search().fit(*base)


def _assert_same_search(search, serial):
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(search.cv_results_[key], serial.cv_results_[key])
    assert search.best_params_ == serial.best_params_


def test_grid_search_on_dask_equals_serial(client, base, serial_search):
    search = _search()
    with joblib.parallel_config(backend="dask"):
        search.set_params(n_jobs=-1).fit(*base)
    _assert_same_search(search, serial_search)


def test_cross_val_and_episodic_score_on_dask_equal_serial(
    client, digits, fitted_trainer
):
    X, y = digits["X_novel"], digits["y_novel"]
    clf = PrototypicalClassifier(fitted_trainer)
    cv = EpisodicSplit(n_way=5, n_shot=1, n_query=5, n_episodes=8, random_state=0)
    serial_scores = cross_val_score(clf, X, y, cv=cv)
    serial = episodic_score(clf, X, y, cv)
    with joblib.parallel_config(backend="dask"):
        scores = cross_val_score(clf, X, y, cv=cv, n_jobs=-1)
        on_dask = episodic_score(clf, X, y, cv, n_jobs=-1)
    np.testing.assert_array_equal(scores, serial_scores)
    assert on_dask == serial
    assert serial == mean_confidence_interval(serial_scores)


# -- the fitted encoder travels once -------------------------------------------

UNPICKLED = 0  # per process: how many times a CountingMLP was unpickled


class CountingMLP(MLP):
    def __setstate__(self, state):
        global UNPICKLED
        UNPICKLED += 1
        super().__setstate__(state)


def _unpickled() -> int:
    return UNPICKLED


def test_episodic_score_sends_the_fitted_encoder_once_per_job(client, digits):
    trainer = tiny_trainer(module=CountingMLP, max_epochs=1)
    trainer.fit(digits["X_base"], digits["y_base"])
    clf = PrototypicalClassifier(trainer)
    X, y = digits["X_novel"], digits["y_novel"]
    cv = EpisodicSplit(n_way=5, n_shot=1, n_query=5, n_episodes=40, random_state=0)
    before = client.run(_unpickled)
    with joblib.parallel_config(backend="dask"):
        on_dask = episodic_score(clf, X, y, cv, n_jobs=-1)
    after = client.run(_unpickled)
    # Two worker threads, two tasks: the encoder travels at most twice for
    # 40 episodes (cross_val_score sends it with every batch of episodes).
    assert 1 <= sum(after[w] - before[w] for w in after) <= 2
    assert on_dask == episodic_score(clf, X, y, cv)


def test_batch_prediction_sends_the_estimator_once_per_worker(client, digits):
    trainer = tiny_trainer(module=CountingMLP, max_epochs=1)
    trainer.fit(digits["X_base"], digits["y_base"])
    clf = PrototypicalClassifier(trainer).fit(digits["X_novel"], digits["y_novel"])
    X = da.from_array(digits["X_novel"], chunks=50)  # 18 blocks
    before = client.run(_unpickled)
    labels = sp_dask.predict(clf, X).compute()
    after = client.run(_unpickled)
    assert all(after[worker] - before[worker] <= 1 for worker in after)
    np.testing.assert_array_equal(labels, clf.predict(digits["X_novel"]))


# -- thread budget -----------------------------------------------------------


class RecordThreads(Callback):
    """Records torch's thread count and the worker's thread budget."""

    def on_epoch_begin(self, net, **kwargs):
        net.history.record("torch_threads", torch.get_num_threads())
        worker = distributed.get_worker()
        net.history.record("worker_threads", worker.state.nthreads)


def test_meta_training_in_a_search_keeps_the_worker_thread_budget(client, base):
    clf = PrototypicalClassifier(
        tiny_trainer(max_epochs=1, callbacks=[RecordThreads()])
    )
    with joblib.parallel_config(backend="dask"):
        result = cross_validate(clf, *base, cv=2, n_jobs=-1, return_estimator=True)
    for estimator in result["estimator"]:
        history = estimator.encoder_.history
        assert history[-1, "torch_threads"] <= history[-1, "worker_threads"] == 1


# -- batch prediction ---------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(digits, fitted_trainer):
    X, y = digits["X_novel"], digits["y_novel"]
    return PrototypicalClassifier(fitted_trainer).fit(X[::4], y[::4]), X


@pytest.mark.parametrize("method", ["predict", "predict_proba", "transform"])
def test_prediction_over_a_dask_array_equals_in_memory(client, fitted, method):
    clf, X = fitted
    lazy = sp_dask.apply(clf, da.from_array(X, chunks=(100, 16)), method)
    expected = getattr(clf, method)(X)
    assert lazy.shape == expected.shape  # known before computing
    np.testing.assert_array_equal(lazy.compute(), expected)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "transform"])
def test_prediction_over_a_dask_dataframe_equals_in_memory(client, fitted, method):
    clf, X = fitted
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    clf = PrototypicalClassifier(clf.encoder).fit(frame[::4], clf.predict(X[::4]))
    lazy = sp_dask.apply(clf, dd.from_pandas(frame, npartitions=5), method)
    np.testing.assert_array_equal(lazy.compute(), getattr(clf, method)(frame))


def test_prediction_over_images_as_an_nd_dask_array(client, digits):
    from sklearn_protonet.modules import Conv4

    from .conftest import tiny_conv4_trainer

    images = digits["X_novel"].reshape(-1, 1, 8, 8).astype(np.float32)
    trainer = tiny_conv4_trainer().fit(
        digits["X_base"].reshape(-1, 1, 8, 8), digits["y_base"]
    )
    assert isinstance(trainer.module_, Conv4)
    clf = PrototypicalClassifier(trainer).fit(images[::4], digits["y_novel"][::4])
    lazy = sp_dask.predict_proba(clf, da.from_array(images, chunks=(64, 1, 4, 8)))
    np.testing.assert_array_equal(lazy.compute(), clf.predict_proba(images))


def test_prediction_over_a_dask_column_of_image_paths(client, digits, tmp_path):
    # What a user predicting image files does: a pipeline that reads the paths
    # (ImageReader) and classifies, applied to a dask Series of file names.
    from PIL import Image
    from sklearn.pipeline import make_pipeline

    from sklearn_protonet.preprocessing import ImageReader

    from .conftest import tiny_conv4_trainer

    pixels = (digits["X_novel"][:120] * 255 / 16).astype(np.uint8)
    paths = []
    for i, image in enumerate(pixels.reshape(-1, 8, 8)):
        paths.append(str(tmp_path / f"{i:03d}.png"))
        Image.fromarray(image).save(paths[-1])
    trainer = tiny_conv4_trainer().fit(
        digits["X_base"].reshape(-1, 1, 8, 8), digits["y_base"]
    )
    model = make_pipeline(
        ImageReader(size=(8, 8)), PrototypicalClassifier(trainer)
    ).fit(paths[::4], digits["y_novel"][:120:4])
    column = dd.from_pandas(pd.Series(paths, name="path"), npartitions=4)
    for method in ("predict", "predict_proba"):
        lazy = sp_dask.apply(model, column, method)
        np.testing.assert_array_equal(lazy.compute(), getattr(model, method)(paths))


def test_parallel_post_fit_agrees(client, fitted):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    clf, X = fitted
    labels = wrappers.ParallelPostFit(clf).predict(da.from_array(X, chunks=100))
    np.testing.assert_array_equal(labels.compute(), clf.predict(X))


def test_wrong_number_of_columns_fails_before_any_work(fitted):
    clf, X = fitted
    with pytest.raises(ValueError, match="X has 10 features, but Prototypical"):
        sp_dask.predict(clf, da.from_array(X[:, :10], chunks=100))
    frame = dd.from_pandas(pd.DataFrame(X[:, :10]), npartitions=2)
    with pytest.raises(ValueError, match="X has 10 features"):
        sp_dask.predict(clf, frame)


def test_bad_collections_and_methods_are_refused(fitted):
    clf, X = fitted
    with pytest.raises(TypeError, match="dask Array, DataFrame or Series"):
        sp_dask.predict(clf, X)
    with pytest.raises(ValueError, match="method must be one of"):
        sp_dask.apply(clf, da.from_array(X), "fit")
    with pytest.raises(ValueError, match="2-D or more"):
        sp_dask.predict(clf, da.from_array(X[:, 0]))
    with pytest.raises(AttributeError, match="no method 'predict_proba'"):
        sp_dask.predict_proba(StandardScaler().fit(X), da.from_array(X))


# -- faults ------------------------------------------------------------------


class KillWorker(Callback):
    """Kills the dask worker process running the meta-training, once: when
    the file ``marker`` does not exist yet (it is created first)."""

    def __init__(self, marker):
        self.marker = marker

    def on_train_begin(self, net, **kwargs):
        try:
            distributed.get_worker()
        except ValueError:  # not on a worker: the refit in this process
            return
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)


def _on_both_workers(client) -> None:
    # With one worker thread, joblib would run the fits in this process.
    client.wait_for_workers(2, timeout=120)
    assert joblib.effective_n_jobs(-1) == 2


def test_search_survives_a_killed_worker(client, base, serial_search, tmp_path):
    search = _search(callbacks=[KillWorker(str(tmp_path / "killed"))])
    # scatter: the data on every worker, so it outlives the killed one (joblib
    # would otherwise place it on one worker, and lose it with that worker).
    with joblib.parallel_config(backend="dask", scatter=list(base)):
        _on_both_workers(client)
        try:
            search.set_params(n_jobs=-1).fit(*base)
        except distributed.client.FutureCancelledError:
            # dask sometimes gives up the killed worker's retried task
            # ("already forgotten"): the search then fails with dask's error,
            # a clear failure rather than a silently partial cv_results_.
            assert (tmp_path / "killed").exists()
            assert not hasattr(search, "cv_results_")
            client.wait_for_workers(2, timeout=120)
            return
    assert (tmp_path / "killed").exists()
    _assert_same_search(search, serial_search)
    client.wait_for_workers(2, timeout=120)


def test_unreachable_scheduler_fails_within_the_timeout():
    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{free.getsockname()[1]}"
    start = time.monotonic()
    with pytest.raises(OSError, match=f"{address}.*after 2 s"):
        distributed.Client(address, timeout="2s")
    assert time.monotonic() - start < 30
