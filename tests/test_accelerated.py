"""AcceleratedEpisodicTrainer: the plain trainer's result in one CPU process,
mixed precision from the accelerator, and a real two-process run."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_protonet import ClassSplit, PrototypicalClassifier, paper_lr_schedule

from .conftest import tiny_trainer

accelerate = pytest.importorskip("accelerate")
accelerated = pytest.importorskip("sklearn_protonet.accelerated")

PARAMS = dict(
    n_way=4,
    episodes_per_epoch=4,
    valid_episodes=3,
    max_epochs=2,
    train_split=ClassSplit(2, random_state=0),
)


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    # accelerate keeps one state per process (precision, device); each test
    # chooses its own, as separate scripts would.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _accelerated(**params):
    """The accelerated twin of ``tiny_trainer(**PARAMS, **params)``."""
    accelerator = params.pop("accelerator", None) or accelerate.Accelerator(cpu=True)
    plain = tiny_trainer(**{**PARAMS, **params}).get_params(deep=False)
    # Accelerate places the module: skorch's device stays None.
    plain = {k: v for k, v in plain.items() if k != "device" and not k.startswith("_")}
    return accelerated.AcceleratedEpisodicTrainer(accelerator=accelerator, **plain)


def test_one_cpu_process_trains_exactly_as_the_plain_trainer(digits):
    X, y = digits["X_base"], digits["y_base"]
    schedule = dict(callbacks=[paper_lr_schedule(step_size=3)])
    plain = tiny_trainer(**PARAMS, **schedule).fit(X, y)
    trainer = _accelerated(**schedule).fit(X, y)
    assert type(trainer.module_) is type(plain.module_)  # unwrapped after training
    for key, value in plain.module_.state_dict().items():
        torch.testing.assert_close(
            trainer.module_.state_dict()[key], value, rtol=0, atol=0
        )
    for column in ("train_loss", "valid_loss", "valid_acc"):
        assert trainer.history[:, column] == plain.history[:, column]
    np.testing.assert_array_equal(trainer.transform(X), plain.transform(X))
    novel = digits["X_novel"], digits["y_novel"]
    clf = PrototypicalClassifier(_accelerated()).fit(*novel)
    reference = PrototypicalClassifier(tiny_trainer(**PARAMS)).fit(*novel)
    np.testing.assert_array_equal(
        clf.predict_proba(novel[0]), reference.predict_proba(novel[0])
    )


class RecordDtypes(Callback):
    """Records the dtype of the first layer's outputs during training."""

    def on_train_begin(self, net, **kwargs):
        self.dtypes = set()
        first = next(m for m in net.module_.modules() if isinstance(m, torch.nn.Linear))
        first.register_forward_hook(lambda m, i, out: self.dtypes.add(out.dtype))


def test_mixed_precision_comes_from_the_accelerator(digits):
    record = RecordDtypes()
    accelerator = accelerate.Accelerator(cpu=True, mixed_precision="bf16")
    trainer = _accelerated(accelerator=accelerator, callbacks=[record])
    trainer.fit(digits["X_base"], digits["y_base"])
    assert torch.bfloat16 in record.dtypes
    assert np.isfinite(trainer.history[:, "train_loss"]).all()
    assert all(p.dtype == torch.float32 for p in trainer.module_.parameters())
    assert trainer.transform(digits["X_novel"][:5]).dtype == np.float32


def test_autocast_dtype_is_refused_in_favour_of_the_accelerator(digits):
    trainer = _accelerated(autocast_dtype="bfloat16")
    with pytest.raises(ValueError, match="mixed_precision='bf16'"):
        trainer.fit(digits["X_base"], digits["y_base"])


SCRIPT = """
import sys

from accelerate import Accelerator

from sklearn_protonet import ClassSplit
from sklearn_protonet.accelerated import AcceleratedEpisodicTrainer
from sklearn_protonet.datasets import load_rotated_digits
from sklearn_protonet.modules import MLP

X, y = load_rotated_digits(return_X_y=True)
accelerator = Accelerator(cpu=True)
trainer = AcceleratedEpisodicTrainer(
    MLP, accelerator=accelerator, module__hidden_sizes=(32,),
    module__out_features=16, n_way=4, episodes_per_epoch=3,
    valid_episodes=2, max_epochs=2, random_state=0,
    train_split=ClassSplit(4, random_state=0),
)
trainer.fit(X, y)
total = sum(float(p.detach().sum()) for p in trainer.module_.parameters())
# One file per process: the ranks' printed lines can interleave.
rank = f"{accelerator.process_index}/{accelerator.num_processes}"
with open(f"rank-{rank.replace('/', '-of-')}.txt", "w") as file:
    file.write(f"rank {rank} {total:.6f}")
"""


def test_two_processes_train_one_model(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    two = subprocess.run(
        [*run, "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    ranks = sorted(path.read_text() for path in tmp_path.glob("rank-*-of-2.txt"))
    assert [r.split()[1] for r in ranks] == ["0/2", "1/2"]
    # Gradients are averaged: both processes end with the same weights...
    assert ranks[0].split()[2] == ranks[1].split()[2]
    # ...trained on twice the episodes of one process, so different ones.
    single = (tmp_path / "rank-0-of-1.txt").read_text()
    assert single.split()[1] == "0/1" and single.split()[2] != ranks[0].split()[2]
    # Only the main process prints the training log.
    assert two.stdout.count("train_loss") == 1
