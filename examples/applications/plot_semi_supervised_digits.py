"""
=================================================
Unlabeled examples sharpen one-shot prototypes
=================================================

One labelled drawing per digit is a poor prototype when the encoder was
trained on another domain (here the shipped Omniglot encoder on
scikit-learn's digits, upsampled to 28x28). Unlabeled digits are free: mark
them ``-1`` in ``y`` and set ``refinement_steps``, and
:class:`~sklearn_protonet.PrototypicalClassifier` refines its prototypes
with soft k-means over them (Ren et al., 2018; see :ref:`semi_supervised`).

The figure shows the accuracy of 10-way 1-shot episodes as the number of
unlabeled examples per class grows, for the labelled prototypes alone,
plain soft k-means, its masked variant, and the guarded refinement (the
default), which also stands aside when the pool cannot help.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.preprocessing import ImageReader
from sklearn_protonet.pretrained import load_pretrained

torch.set_num_threads(2)

# %%
# Embed every digit once
# ----------------------
#
# The classifier with the shipped encoder embeds; the episodes below then
# work on the embeddings with the identity encoder (the same prototypes,
# without embedding an image twice).

digits = load_digits()
images = ImageReader(size=28).fit_transform(digits.images / 16.0)
encoder = load_pretrained("omniglot-conv4-1shot")
Z = PrototypicalClassifier(encoder).fit(images[:2], [0, 1]).transform(images)
y = digits.target

# %%
# One labelled example, some unlabeled ones, and queries
# ------------------------------------------------------

rng = np.random.default_rng(0)
unlabeled_counts = [0, 2, 5, 10, 20]
methods = {
    "soft k-means": {"refinement_steps": 2, "refinement": "soft_kmeans"},
    "masked soft k-means": {"refinement_steps": 2, "refinement": "masked"},
    "guarded (default)": {"refinement_steps": 2, "refinement": "guarded"},
}
n_episodes = 40
accuracy = {
    name: np.zeros(len(unlabeled_counts)) for name in ["labelled only", *methods]
}
for _ in range(n_episodes):
    order = [rng.permutation(np.flatnonzero(y == digit)) for digit in range(10)]
    support = np.array([rows[0] for rows in order])
    queries = np.concatenate([rows[-15:] for rows in order])
    # Without unlabeled rows, all of them are the labelled prototypes.
    labelled = PrototypicalClassifier().fit(Z[support], y[support])
    accuracy["labelled only"] += labelled.score(Z[queries], y[queries]) / n_episodes
    for i, count in enumerate(unlabeled_counts):
        unlabeled = np.concatenate([rows[1 : 1 + count] for rows in order])
        X = Z[np.r_[support, unlabeled]]
        labels = np.r_[y[support], np.full(len(unlabeled), -1)]
        for name, params in methods.items():
            clf = PrototypicalClassifier(**params).fit(X, labels)
            accuracy[name][i] += clf.score(Z[queries], y[queries]) / n_episodes

# %%
# Accuracy against the number of unlabeled examples
# -------------------------------------------------
#
# With no unlabeled rows they are all the same classifier. Plain soft
# k-means lets every unlabeled digit pull on some prototype, also the ones
# it is wrongly assigned to; the masked variant keeps the rows that are
# about as far from two prototypes out, and gains from the others; the
# guarded one also stands aside while too few classes have a row of their
# own (few unlabeled examples), so it never falls below the labelled line.
# ``benchmarks/semi_supervised.py`` measures the 10-unlabeled point over
# 500 episodes, with intervals.

fig, ax = plt.subplots(figsize=(6, 4))
for name, values in accuracy.items():
    ax.plot(unlabeled_counts, 100 * values, marker="o", label=name)
ax.set_xlabel("unlabeled examples per class")
ax.set_ylabel(f"accuracy (%), {n_episodes} episodes")
ax.set_title("Digits, 10-way 1-shot, Omniglot encoder")
ax.legend()
fig.tight_layout()
plt.show()
