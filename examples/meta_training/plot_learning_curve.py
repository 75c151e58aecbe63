"""
===========================================================
Meta-training curves, validated on held-out classes
===========================================================

:class:`~sklearn_protonet.EpisodicTrainer` is a skorch ``NeuralNet``, so its
``history`` records, per epoch, the loss and the episode accuracy on the
training classes and on validation classes. Few-shot validation must measure
how well the encoder serves *new* classes, so
:class:`~sklearn_protonet.ClassSplit` holds out whole classes instead of
some images of every class.

Here skorch's ``EarlyStopping`` watches ``valid_acc`` and keeps the weights
of the best epoch.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from skorch.callbacks import EarlyStopping

from sklearn_protonet import ClassSplit
from sklearn_protonet.datasets import load_rotated_digits
from sklearn_protonet.demo import digits_trainer

torch.set_num_threads(2)

# %%
# Training and validation classes
# -------------------------------
#
# The digits 0 to 4 in four rotations make 20 base classes. ``ClassSplit``
# holds 6 of them out for validation: every validation episode draws 5 of
# those 6 classes, which the encoder never trains on. The validation episodes
# are the same at every epoch, so the epochs' scores are comparable.

X, y = load_rotated_digits(
    digits=range(5), rotations=(0, 90, 180, 270), return_X_y=True
)
print(f"{len(np.unique(y))} classes, {len(y)} images")

# The encoder is that of :func:`~sklearn_protonet.demo.digits_trainer` (two
# Conv4 blocks after a random shift), here with 5-way episodes and a
# validation split.

trainer = digits_trainer(
    n_way=5,
    episodes_per_epoch=40,
    valid_episodes=40,
    max_epochs=10,
    train_split=ClassSplit(valid_size=6, random_state=0),
    callbacks=[
        EarlyStopping(
            monitor="valid_acc", lower_is_better=False, patience=3, load_best=True
        ),
    ],
)

# %%
# skorch prints one line per epoch (in a terminal, it highlights the best
# scores so far).

trainer.fit(X, y)

# %%
# Reading ``history``
# -------------------
#
# ``history[:, key]`` gives one value per epoch. ``train_acc`` and
# ``valid_acc`` are the mean query accuracies of the epoch's episodes.

history = trainer.history
epochs = history[:, "epoch"]
best = int(np.argmax(history[:, "valid_acc"]))

fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
loss_ax.plot(epochs, history[:, "train_loss"], "o-", label="train_loss")
loss_ax.plot(epochs, history[:, "valid_loss"], "o-", label="valid_loss")
loss_ax.set(
    xlabel="epoch (40 episodes)",
    ylabel="cross-entropy of the queries",
    title="Episodic loss",
)
loss_ax.legend()

acc_ax.plot(epochs, history[:, "train_acc"], "o-", label="train_acc (training classes)")
acc_ax.plot(epochs, history[:, "valid_acc"], "o-", label="valid_acc (held-out classes)")
acc_ax.axvline(epochs[best], color="0.5", ls="--", lw=1)
acc_ax.annotate(
    f"best valid_acc {history[best, 'valid_acc']:.1%}",
    (epochs[best], history[best, "valid_acc"]),
    xytext=(-10, -40),
    textcoords="offset points",
    ha="right",
    arrowprops={"arrowstyle": "->", "color": "0.4"},
)
acc_ax.set(
    xlabel="epoch (40 episodes)",
    ylabel="5-way 5-shot query accuracy",
    title="Episode accuracy",
)
acc_ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %%
# Accuracy on the held-out classes rises fast, then levels off; that plateau,
# not the training accuracy, tells how well the encoder serves new classes.
# Training accuracy starts lower because it is measured while the encoder
# learns and on randomly shifted images. ``EarlyStopping`` stops once
# ``valid_acc`` has not improved for 3 epochs and, with ``load_best=True``,
# the trainer ends with the weights of the epoch marked above. Once the
# settings are chosen, meta-train on all base classes (``train_split=None``)
# for the final encoder.
