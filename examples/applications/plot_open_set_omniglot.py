"""
======================================================
Rejecting characters of classes nobody labelled
======================================================

In deployment, queries arrive from classes that are not in the support set.
:meth:`~sklearn_protonet.PrototypicalClassifier.score_samples` says how
typical a query is of the known classes (the negative distance to its
nearest prototype), and ``unknown_label`` turns it into a reject option,
with a threshold calibrated on the support set alone by leave-one-out (see
:ref:`open_set`).

Here: 5-way 5-shot episodes of Omniglot's test characters with the shipped
5-shot encoder, 15 queries of each known class and 15 of each of 5 unknown
classes. The Omniglot images are read by
:func:`~sklearn_protonet.datasets.load_omniglot` from the data home
(``SKLEARN_PROTONET_DATA``; downloaded when missing).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.datasets import load_omniglot
from sklearn_protonet.pretrained import load_pretrained

torch.set_num_threads(2)

# %%
# Episodes of known and unknown characters
# ----------------------------------------

X, y = load_omniglot("test", return_X_y=True)
encoder = load_pretrained("omniglot-conv4-5shot")
classes = np.unique(y)
rng = np.random.default_rng(0)
n_shot, n_query = 5, 15
known_scores, unknown_scores, thresholds, rates = [], [], [], []
for _ in range(10):
    chosen = rng.choice(classes, 10, replace=False)
    rows = [rng.permutation(np.flatnonzero(y == c)) for c in chosen]
    support = np.concatenate([r[:n_shot] for r in rows[:5]])
    known = np.concatenate([r[n_shot : n_shot + n_query] for r in rows[:5]])
    unknown = np.concatenate([r[:n_query] for r in rows[5:]])
    clf = PrototypicalClassifier(encoder, unknown_label="unknown")
    clf.fit(X[support], y[support])
    known_scores.append(clf.score_samples(X[known]))
    unknown_scores.append(clf.score_samples(X[unknown]))
    thresholds.append(clf.threshold_)
    rates.append(
        (
            (clf.predict(X[known]) != "unknown").mean(),
            (clf.predict(X[unknown]) == "unknown").mean(),
        )
    )

accepted, rejected = 100 * np.mean(rates, axis=0)
auroc = np.mean(
    [
        roc_auc_score(np.r_[np.ones(len(k)), np.zeros(len(u))], np.r_[k, u])
        for k, u in zip(known_scores, unknown_scores, strict=True)
    ]
)
print(
    f"AUROC {auroc:.4f}; known accepted {accepted:.1f} %, unknown rejected "
    f"{rejected:.1f} %"
)

# %%
# Scores of known and unknown queries, and the threshold
# ------------------------------------------------------
#
# Each episode has its own threshold; the scores are divided by it, so the
# rejection boundary is at -1 for all of them: to its left, ``predict``
# answers ``"unknown"``.

known_rel = np.concatenate(
    [s / t for s, t in zip(known_scores, thresholds, strict=True)]
)
unknown_rel = np.concatenate(
    [s / t for s, t in zip(unknown_scores, thresholds, strict=True)]
)
fig, ax = plt.subplots(figsize=(6, 4))
bins = np.linspace(min(known_rel.min(), unknown_rel.min()), 0, 40)
ax.hist(known_rel, bins=bins, alpha=0.6, label="queries of known classes")
ax.hist(unknown_rel, bins=bins, alpha=0.6, label="queries of unknown classes")
ax.axvline(-1.0, color="black", linestyle="--", label="calibrated threshold")
ax.set_xlabel("score_samples / threshold_")
ax.set_ylabel("queries")
ax.set_title(
    f"Omniglot 5-way 5-shot: {accepted:.0f} % known accepted, "
    f"{rejected:.0f} % unknown rejected",
    fontsize=10,
)
ax.legend()
fig.tight_layout()
plt.show()
