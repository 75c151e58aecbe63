"""The same ``random_state`` gives the same meta-training and predictions on
CPU: twice in one process, and in a fresh Python process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from sklearn_protonet import ClassSplit, PrototypicalClassifier, paper_lr_schedule
from sklearn_protonet.modules import MLP

ROOT = Path(__file__).resolve().parents[1]


def run(random_state: int) -> dict:
    """Meta-train with validation, then fit and predict; everything as JSON.

    Imported by the fresh process too, so both run the same code.
    """
    from sklearn_protonet import EpisodicTrainer

    rng = np.random.RandomState(0)
    centers = rng.normal(size=(12, 8)) * 3
    y = np.repeat(np.arange(12), 10)
    X = (centers[y] + rng.normal(size=(len(y), 8))).astype(np.float32)
    base, novel = y < 8, y >= 8
    trainer = EpisodicTrainer(
        MLP,
        module__hidden_sizes=(32,),
        module__out_features=16,
        module__dropout=0.2,  # torch random numbers in training, too
        n_way=4,
        n_shot=2,
        n_query=3,
        episodes_per_epoch=6,
        valid_episodes=4,
        max_epochs=3,
        train_split=ClassSplit(0.25, random_state=0),
        callbacks=[("lr", paper_lr_schedule(step_size=5))],
        verbose=0,
        random_state=random_state,
    ).fit(X[base], y[base])
    history = [
        {k: v for k, v in row.items() if k not in ("dur", "batches")}
        | {
            "batches": [
                {k: v for k, v in b.items() if k != "dur"} for b in row["batches"]
            ]
        }
        for row in trainer.history
    ]
    clf = PrototypicalClassifier(trainer).fit(X[novel][::5], y[novel][::5])
    return {
        "history": json.loads(json.dumps(history, default=float)),
        "weights": {
            k: v.double().sum().item() for k, v in trainer.module_.state_dict().items()
        },
        "predict": clf.predict(X[novel]).tolist(),
        "proba": clf.predict_proba(X[novel]).round(6).tolist(),
    }


def test_same_random_state_same_run_in_process():
    first, second = run(0), run(0)
    assert first == second
    assert run(1)["history"] != first["history"]


def test_same_random_state_same_run_in_a_fresh_process():
    code = (
        "import json, torch; torch.set_num_threads(2); "
        "from tests.test_determinism import run; print(json.dumps(run(0)))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    assert torch.get_num_threads() == 2  # as in the fresh process
    assert fresh == json.loads(json.dumps(run(0)))
