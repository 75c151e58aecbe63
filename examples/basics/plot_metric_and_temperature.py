"""
=====================================
Choosing the metric and temperature
=====================================

:class:`~sklearn_protonet.PrototypicalClassifier` has two knobs that act
after the encoder:

- ``metric`` decides what "nearest" means: ``"sqeuclidean"`` (the paper's
  choice and the default), ``"euclidean"`` or ``"cosine"``;
- ``temperature`` divides the negative distances before the softmax of
  ``predict_proba``: it makes probabilities sharper or softer and never
  changes ``predict``.

This example shows both on two-dimensional toy data, with the identity as
encoder.
"""

import matplotlib.pyplot as plt
import numpy as np

from sklearn_protonet import PrototypicalClassifier

# %%
# Two classes that differ in length more than in direction
# ---------------------------------------------------------
#
# Class ``near`` sits close to the origin and class ``far`` further out,
# in roughly the same direction.

rng = np.random.default_rng(0)
X = np.concatenate(
    [
        [0.8, 0.5] + rng.normal(scale=0.25, size=(5, 2)),
        [3.0, 2.6] + rng.normal(scale=0.5, size=(5, 2)),
    ]
)
y = np.repeat(["near", "far"], 5)

# %%
# Decision regions of each metric
# -------------------------------
#
# ``"sqeuclidean"`` and ``"euclidean"`` rank prototypes identically, so they
# always predict the same class: their regions are separated by the same
# straight line. ``"cosine"`` only looks at directions, so it splits the
# plane by angle around the origin and mixes up these two classes, whose
# examples point in nearly the same direction. It suits embeddings whose
# length carries no information, and matches an encoder meta-trained with
# ``metric="cosine"``.

xx, yy = np.meshgrid(np.linspace(-1, 5, 250), np.linspace(-1, 5, 250))
grid = np.column_stack([xx.ravel(), yy.ravel()])

fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, metric in zip(axes, ["sqeuclidean", "cosine"], strict=True):
    clf = PrototypicalClassifier(metric=metric).fit(X, y)
    is_far = (clf.predict(grid) == "far").reshape(xx.shape)
    ax.contourf(
        xx,
        yy,
        is_far,
        levels=[-0.5, 0.5, 1.5],
        colors=["tab:blue", "tab:red"],
        alpha=0.15,
    )
    for name, color in [("near", "tab:blue"), ("far", "tab:red")]:
        ax.scatter(*X[y == name].T, c=color, label=name, s=30)
        prototype = clf.prototypes_[clf.classes_ == name][0]
        ax.scatter(*prototype, c=color, marker="*", s=350, edgecolors="black")
    accuracy = clf.score(X, y)
    ax.set_title(f'metric="{metric}" (support accuracy {accuracy:.0%})')
    ax.set_aspect("equal")
    ax.legend(loc="upper left")
fig.tight_layout()
plt.show()

# %%
# Temperature and probabilities
# -----------------------------
#
# Along the segment joining the two prototypes, the probability of ``far``
# goes from 0 to 1. The temperature sets how abruptly; the crossing point,
# hence every prediction, stays where it is. ``"euclidean"`` gives a softer
# curve than ``"sqeuclidean"`` at the same temperature because its distances
# are smaller.

clf = PrototypicalClassifier().fit(X, y)
near, far = list(clf.classes_).index("near"), list(clf.classes_).index("far")
start, end = clf.prototypes_[near], clf.prototypes_[far]
t = np.linspace(-0.25, 1.25, 200)
segment = start + t[:, None] * (end - start)

fig, ax = plt.subplots(figsize=(7, 4.2))
for metric, temperature, style in [
    ("sqeuclidean", 0.3, "-"),
    ("sqeuclidean", 1.0, "-"),
    ("sqeuclidean", 5.0, "-"),
    ("euclidean", 1.0, "--"),
]:
    clf.set_params(metric=metric, temperature=temperature)
    ax.plot(
        t,
        clf.predict_proba(segment)[:, far],
        style,
        label=f"{metric}, temperature={temperature}",
    )
ax.axvline(0.5, c="0.5", lw=0.8)
ax.set(
    xlabel="position between the prototypes (0 = near, 1 = far)",
    ylabel='predict_proba of "far"',
    title="Temperature changes sharpness only",
)
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

# %%
# How to choose
# -------------
#
# Use the metric the encoder was meta-trained with (the ``metric`` of
# :class:`~sklearn_protonet.EpisodicTrainer`, squared Euclidean by default):
# the loss shaped the embedding for it. Tune ``temperature`` only when the
# probabilities matter (log loss, calibration, thresholds), by scoring
# episodes with ``scoring="neg_log_loss"``, as in
# :ref:`sphx_glr_auto_examples_applications_plot_grid_search_tabular.py`.
