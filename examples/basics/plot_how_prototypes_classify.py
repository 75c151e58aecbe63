"""
======================================
How prototypes classify a query point
======================================

A prototypical network embeds every example, averages the embedded support
examples of each class into a single point, the class *prototype*, and
labels a query by its distances to the prototypes: the nearest prototype
wins, and a softmax over the negative (squared) distances gives the class
probabilities.

This example draws that picture in two dimensions. The identity plays the
encoder (``encoder=None``), so the "embedding space" is simply the plane;
meta-training an encoder is what makes real data look like this in its
embedding space.
"""

import matplotlib.pyplot as plt
import numpy as np

from sklearn_protonet import PrototypicalClassifier

# %%
# A 3-way 5-shot support set
# --------------------------
#
# Three classes with five labelled examples each: this is the whole training
# set of the classifier.

rng = np.random.default_rng(0)
centres = np.array([[0.0, 2.2], [2.0, -1.2], [-2.0, -1.0]])
class_names = np.array(["alpha", "beta", "gamma"])
X_support = np.concatenate([c + rng.normal(scale=0.7, size=(5, 2)) for c in centres])
y_support = np.repeat(class_names, 5)

clf = PrototypicalClassifier().fit(X_support, y_support)

# %%
# ``fit`` only averages: each prototype is the mean of its class's support
# examples.

for name, prototype in zip(clf.classes_, clf.prototypes_, strict=True):
    mean = X_support[y_support == name].mean(axis=0)
    print(f"{name:>5}: prototype {prototype.round(2)}, class mean {mean.round(2)}")

# %%
# A query point
# -------------
#
# The query is assigned to the nearest prototype. Its class probabilities are
# ``softmax(-distance / temperature)`` with the squared Euclidean distance,
# the paper's choice.

query = np.array([[0.3, 0.2]])
squared_distances = ((clf.prototypes_ - query) ** 2).sum(axis=1)
proba = clf.predict_proba(query)[0]
print("squared distances:", squared_distances.round(2))
print("probabilities:    ", proba.round(3))
print("prediction:       ", clf.predict(query)[0])

# %%
# The picture
# -----------
#
# Left: the support examples (small markers), the prototypes (stars), the
# query (black cross) and its distances to the prototypes. The shaded regions
# show which prototype is nearest to each point of the plane; with the
# squared Euclidean distance their borders are straight lines, so the
# classifier is linear in the embedding. Right: the query's probabilities.

colors = np.array(["tab:blue", "tab:orange", "tab:green"])
markers = ["o", "s", "^"]

xx, yy = np.meshgrid(np.linspace(-4.5, 4.5, 300), np.linspace(-3.5, 4.5, 300))
grid = np.column_stack([xx.ravel(), yy.ravel()])
codes = np.searchsorted(clf.classes_, clf.predict(grid)).reshape(xx.shape)

fig, (ax, bar_ax) = plt.subplots(
    1, 2, figsize=(10, 4.8), gridspec_kw={"width_ratios": [1.6, 1]}
)
ax.contourf(xx, yy, codes, levels=[-0.5, 0.5, 1.5, 2.5], colors=colors, alpha=0.12)
ax.contour(xx, yy, codes, levels=[0.5, 1.5], colors="0.4", linewidths=0.8)
for k, name in enumerate(clf.classes_):
    members = X_support[y_support == name]
    ax.scatter(*members.T, c=colors[k], marker=markers[k], s=40, label=name)
    ax.scatter(
        *clf.prototypes_[k],
        c=colors[k],
        marker="*",
        s=450,
        edgecolors="black",
        linewidths=1.2,
        zorder=3,
    )
    ax.plot(
        [query[0, 0], clf.prototypes_[k, 0]],
        [query[0, 1], clf.prototypes_[k, 1]],
        ls="--",
        c=colors[k],
        lw=1.2,
    )
    middle = (query[0] + clf.prototypes_[k]) / 2
    ax.annotate(
        f"$d^2$={squared_distances[k]:.1f}",
        middle,
        textcoords="offset points",
        xytext=(4, 4),
        fontsize=9,
        color=colors[k],
    )
ax.scatter(*query.T, c="black", marker="X", s=120, zorder=4, label="query")
ax.scatter([], [], c="white", marker="*", s=200, edgecolors="black", label="prototype")
ax.set(xlabel="embedding dimension 1", ylabel="embedding dimension 2")
ax.set_title("Support examples, prototypes and a query")
ax.legend(loc="lower right", fontsize=9)
ax.set_aspect("equal")

bar_ax.bar(clf.classes_, proba, color=colors)
for k, p in enumerate(proba):
    bar_ax.text(k, p + 0.02, f"{p:.2f}", ha="center")
bar_ax.set(ylim=(0, 1.1), ylabel="predict_proba", title="softmax(-distance)")
fig.tight_layout()
plt.show()

# %%
# With a meta-trained encoder, nothing changes but the space: the examples
# are first mapped by the encoder, and meta-training has shaped that mapping
# so that classes it has never seen still form tight clusters around their
# means. See
# :ref:`sphx_glr_auto_examples_meta_training_plot_embedding_novel_classes.py`.
