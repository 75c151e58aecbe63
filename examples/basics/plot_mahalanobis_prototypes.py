"""
=========================================
Prototypes that know their class's spread
=========================================

A prototype is a class mean; the plain squared distance treats every class
as a round cloud of the same size. When the classes are elongated, a
query can be nearer the mean of the wrong class. ``metric="mahalanobis"``
estimates each class's covariance from the support set, shrunk towards the
pooled covariance so that a few examples suffice
(:class:`~sklearn_protonet.covariance.ShrunkCovariance`), and measures
distances in units of that spread.

The encoder here is the identity, so the support set *is* the embedding.
"""

import matplotlib.pyplot as plt
import numpy as np

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.covariance import ShrunkCovariance

# %%
# Two elongated classes, five examples each
# -----------------------------------------
#
# Both classes stretch along the same slanted direction, and their means
# are closer across that direction than along it.

rng = np.random.default_rng(0)
stretch = np.array([[2.0, 1.6], [0.25, -0.3]])  # long axis, short axis


def sample(center, n):
    return center + rng.normal(size=(n, 2)) @ stretch


centers = {"a": np.array([0.0, 0.0]), "b": np.array([1.2, -1.4])}
X = np.concatenate([sample(c, 5) for c in centers.values()])
y = np.repeat(list(centers), 5)
X_test = np.concatenate([sample(c, 500) for c in centers.values()])
y_test = np.repeat(list(centers), 500)

models = {
    "squared Euclidean": PrototypicalClassifier(),
    "Mahalanobis, full, auto shrinkage": PrototypicalClassifier(
        metric="mahalanobis", covariance=ShrunkCovariance("full")
    ),
}
for name, model in models.items():
    model.fit(X, y)
    print(f"{name}: test accuracy {model.score(X_test, y_test):.3f}")
print("shrinkage towards the pooled covariance:", models[name].shrinkage_)

# %%
# Decision regions
# ----------------
#
# The plain distance splits the plane by the perpendicular bisector of the
# two means; the Mahalanobis metric bends the boundary along the classes'
# shared long axis, where the test points actually lie.

grid = np.stack(
    np.meshgrid(np.linspace(-6, 7, 200), np.linspace(-7, 6, 200)), -1
).reshape(-1, 2)
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
for ax, (name, model) in zip(axes, models.items(), strict=True):
    regions = (model.predict(grid) == "b").reshape(200, 200)
    ax.contourf(
        grid[:, 0].reshape(200, 200),
        grid[:, 1].reshape(200, 200),
        regions,
        levels=[-0.5, 0.5, 1.5],
        colors=["#dbe9f6", "#fde0c5"],
    )
    for label, color in (("a", "tab:blue"), ("b", "tab:orange")):
        test = X_test[y_test == label][::10]
        ax.scatter(*test.T, s=4, color=color, alpha=0.3)
        ax.scatter(*X[y == label].T, s=40, color=color, edgecolor="k")
    ax.scatter(*model.prototypes_.T, marker="*", s=250, color="k")
    ax.set_title(f"{name}\naccuracy {model.score(X_test, y_test):.2f}")
    ax.set_aspect("equal")
fig.tight_layout()
plt.show()
