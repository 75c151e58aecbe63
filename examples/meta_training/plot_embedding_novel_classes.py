"""
=================================================
Embedding classes the encoder has never seen
=================================================

Meta-train a small convolutional encoder on the digits 0 to 4, then embed the
digits 5 to 9, which it never saw, and look at the embedding in two
dimensions (its first two principal components) with the prototypes that
five examples per class give, beside the same picture for the raw pixels.

A prototypical network works when each new class forms a compact cluster
around its prototype; this is how to look at whether it does. On these tiny
8x8 digits, with a few seconds of meta-training on five digits, the answer
is "about as well as the pixels already do": the example shows the tools, not
a large gain (see
:ref:`sphx_glr_auto_examples_applications_plot_pretrained_omniglot.py` for
that).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.demo import digits_trainer, load_digits_split

torch.set_num_threads(2)

# %%
# Base and novel classes
# ----------------------
#
# :func:`~sklearn_protonet.datasets.load_rotated_digits` makes each digit
# turned by 90 degrees a class of its own, as the paper does with Omniglot's
# rotations: 10 base classes (digits 0-4, upright and turned) to meta-train
# on, and 10 novel classes (digits 5-9) to learn from a few examples.

data = load_digits_split()
X_base, y_base = data.X_base, data.y_base
X_novel, y_novel = data.X_novel, data.y_novel
print(f"{len(np.unique(y_base))} base classes, {len(np.unique(y_novel))} novel classes")

# %%
# Meta-training
# -------------
#
# Each training step is a 10-way episode: 5 support and 10 query images per
# class, a prototype per class from the support images, and a cross-entropy
# step on the queries' distances. Two convolutional blocks suit 8x8 images;
# :class:`~sklearn_protonet.modules.RandomShift` shifts the training images by
# up to one pixel (the recipe of :func:`~sklearn_protonet.demo.digits_trainer`,
# which ``python -m sklearn_protonet`` uses too). Four epochs of 50 episodes
# take a few seconds.

trainer = digits_trainer(episodes_per_epoch=50, max_epochs=4, verbose=0)
trainer.fit(X_base, y_base)

# %%
# Prototypes of the novel digits from five examples each
# ------------------------------------------------------
#
# We keep the upright novel digits, pick five support examples per class and
# compare the prototypes on raw pixels (``encoder=None``) with those in the
# meta-trained embedding. The rest of the images are queries.

upright = np.char.endswith(y_novel, "rot000")
X_new, y_new = X_novel[upright], y_novel[upright]
rng = np.random.default_rng(0)
support = np.concatenate(
    [rng.choice(np.flatnonzero(y_new == c), 5, replace=False) for c in np.unique(y_new)]
)
query = np.setdiff1d(np.arange(len(y_new)), support)

classifiers = {
    "raw pixels": PrototypicalClassifier(),
    "meta-trained embedding": PrototypicalClassifier(trainer),
}
for name, clf in classifiers.items():
    clf.fit(X_new[support], y_new[support])
    accuracy = clf.score(X_new[query], y_new[query])
    print(f"{name:>22}: 5-way 5-shot accuracy on {len(query)} queries {accuracy:.1%}")

# %%
# The two spaces in two dimensions
# --------------------------------
#
# ``transform`` returns the embedding the classifier measures distances in;
# a PCA of it keeps its two main directions. Stars are the prototypes and
# circled points the support examples.

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, (name, clf) in zip(axes, classifiers.items(), strict=True):
    embedding = clf.transform(X_new)
    pca = PCA(n_components=2).fit(embedding)
    points = pca.transform(embedding)
    prototypes = pca.transform(clf.prototypes_.astype(embedding.dtype))
    for k, label in enumerate(clf.classes_):
        color = plt.cm.tab10(k)
        members = y_new == label
        ax.scatter(*points[members].T, s=8, color=color, alpha=0.5, label=label[0])
        ax.scatter(
            *points[support][y_new[support] == label].T,
            s=50,
            facecolors="none",
            edgecolors=color,
            linewidths=1.5,
        )
        ax.scatter(
            *prototypes[k],
            marker="*",
            s=400,
            color=color,
            edgecolors="black",
            linewidths=1.2,
            zorder=3,
        )
    ax.set(
        title=name,
        xlabel="first principal component",
        ylabel="second principal component",
        xticks=[],
        yticks=[],
    )
axes[1].legend(title="digit", loc="best", markerscale=2)
fig.suptitle("Novel digits 5-9: images (dots), 5-shot prototypes (stars)")
fig.tight_layout()
plt.show()

# %%
# The encoder never saw a 5, 6, 7, 8 or 9 while training, yet it maps them
# to clusters about as separable as the pixels are: in both pictures the 6s
# stand apart while other digits overlap. Two principal components show only
# part of a 256-dimensional embedding, so clusters that overlap here can
# still be apart in the full space: the accuracies printed above are the
# measure that counts.
