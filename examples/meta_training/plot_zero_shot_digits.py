"""
=================================================
Zero-shot digits from a table of their attributes
=================================================

Can a classifier recognise a digit it has never seen an image of, from a
description alone? Here the description is
:func:`~sklearn_protonet.datasets.load_digit_attributes`, a hand-written
table of 12 visual attributes per digit (closed loops, vertical stroke,
curves opening left...). A :class:`~sklearn_protonet.zero_shot.ZeroShotTrainer`
meta-trains an image encoder and an attribute encoder together on seven
digits; the other three are then classified from their attribute rows only.

Ten classes are very few for zero-shot learning (the mapping from
attributes to prototypes is learnt from seven rows), so expect a modest
result; ``benchmarks/zero_shot.py`` measures the method where it can show,
on hundreds of Unicode symbols whose metadata is parsed from their names
(:func:`~sklearn_protonet.datasets.load_unicode_symbols`).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import ConfusionMatrixDisplay

from sklearn_protonet.datasets import load_digit_attributes
from sklearn_protonet.modules import MLP
from sklearn_protonet.zero_shot import (
    ZeroShotEncoders,
    ZeroShotPrototypicalClassifier,
    ZeroShotTrainer,
)

# %%
# The attribute table
# -------------------

attributes = load_digit_attributes()
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.imshow(attributes.to_numpy(), cmap="Greys", vmin=0, vmax=2)
ax.set_xticks(range(attributes.shape[1]), attributes.columns, rotation=60, ha="right")
ax.set_yticks(range(10), attributes.index)
ax.set_ylabel("digit")
ax.set_title("Hand-written attributes (0, 0.5, 1; loops counted)")
fig.tight_layout()

# %%
# Meta-train on seven digits
# --------------------------
#
# Digits 2, 5 and 8 are held out: no image of them is used for training.

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
unseen = [2, 5, 8]
seen = ~np.isin(y, unseen)

torch.manual_seed(0)
pair = ZeroShotEncoders(
    sample_encoder=MLP(64, hidden_sizes=(64,), out_features=32),
    metadata_encoder=torch.nn.Linear(attributes.shape[1], 32),
)
trainer = ZeroShotTrainer(
    pair, n_way=5, n_query=10, max_epochs=2, random_state=0, verbose=0
)
trainer.fit(X[seen], y[seen], metadata=attributes)
print("last training episodes' accuracy:", trainer.history[-1, "train_acc"])

# %%
# Classify the unseen digits from their attributes
# ------------------------------------------------
#
# ``fit`` receives only the three attribute rows; the images of 2, 5 and 8
# are seen for the first time by ``predict``.

clf = ZeroShotPrototypicalClassifier(trainer).fit(attributes.loc[unseen])
accuracy = clf.score(X[~seen], y[~seen])
print(f"zero-shot accuracy on {unseen}: {accuracy:.2f} (chance 0.33)")
ConfusionMatrixDisplay.from_estimator(clf, X[~seen], y[~seen], colorbar=False)
plt.title(f"Zero-shot, attributes only: accuracy {accuracy:.2f}")

# %%
# One example per class, with and without the attributes
# ------------------------------------------------------
#
# With a single image of each new digit, the prototype can blend the image
# with the attribute row (``metadata_weight`` is how many images the row is
# worth).

rng = np.random.default_rng(0)
support = np.array([rng.choice(np.flatnonzero(y == d)) for d in unseen])
query = np.setdiff1d(np.flatnonzero(~seen), support)
for weight in (1e-6, 1.0):
    blended = ZeroShotPrototypicalClassifier(trainer, metadata_weight=weight)
    blended.fit(attributes.loc[unseen], X_support=X[support], y_support=y[support])
    print(
        f"metadata_weight={weight:g}: accuracy {blended.score(X[query], y[query]):.2f}"
    )
plt.show()
