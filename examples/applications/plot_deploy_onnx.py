"""
=====================================================
Deploying without torch: the classifier as ONNX model
=====================================================

A fitted :class:`~sklearn_protonet.PrototypicalClassifier` is exported by
:func:`sklearn_protonet.onnx.to_onnx` to one ONNX model: the encoder, the
normalisation, the distances to the prototypes, the softmax and the labels.
`onnxruntime <https://onnxruntime.ai>`__ serves it in a process that never
imports torch. Here the shipped Omniglot encoder classifies characters it
never saw, from one drawing of each (see :ref:`deploying`; needs the
``onnx`` extra).
"""

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnx
import torch

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.datasets import load_omniglot_sample
from sklearn_protonet.onnx import to_onnx
from sklearn_protonet.pretrained import load_pretrained

torch.set_num_threads(2)

# %%
# Fit and export
# --------------
#
# Twenty characters of the shipped sample, one drawing of each as the
# support set; the other drawings are the queries. The example row given to
# ``to_onnx`` sets the model's input: float32 rows of 784 pixels, any
# number of them.

sample = load_omniglot_sample()
characters = sample.target_names[:20]
rows = np.flatnonzero(np.isin(sample.target, characters))
drawing = np.arange(len(rows)) % 20
support, queries = rows[drawing == 0], rows[drawing > 0]
X_support, y_support = sample.data[support], sample.target[support]
X_query, y_query = sample.data[queries], sample.target[queries]

clf = PrototypicalClassifier(load_pretrained("omniglot-conv4-1shot"))
clf.fit(X_support, y_support)

folder = Path(tempfile.mkdtemp())
model = to_onnx(clf, X_support[:1])
onnx.save(model, folder / "omniglot.onnx")
print(f"{(folder / 'omniglot.onnx').stat().st_size / 1e6:.2f} MB,", end=" ")
print("operators:", sorted({node.op_type for node in model.graph.node}))

# %%
# Serve it without torch
# ----------------------
#
# A child process loads the file with onnxruntime. ``torch`` and
# ``sklearn_protonet`` are blocked from import there: importing either would
# raise, so the predictions below come from onnxruntime alone.

np.save(folder / "queries.npy", X_query)
server = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = sys.modules["sklearn_protonet"] = None
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(sys.argv[1] + "/omniglot.onnx")
    X = np.load(sys.argv[1] + "/queries.npy")
    labels, probabilities = session.run(None, {"X": X})
    np.save(sys.argv[1] + "/labels.npy", labels.astype(str))
    np.save(sys.argv[1] + "/probabilities.npy", probabilities)
    """
)
subprocess.run([sys.executable, "-c", server, str(folder)], check=True)
labels = np.load(folder / "labels.npy")
probabilities = np.load(folder / "probabilities.npy")

# %%
# The same predictions as ``predict``
# -----------------------------------

agree = np.mean(labels == clf.predict(X_query))
difference = np.abs(probabilities - clf.predict_proba(X_query)).max()
print(f"labels equal to predict: {100 * agree:.1f} %")
print(f"largest probability difference: {difference:.1e}")
print(f"accuracy, 20-way 1-shot: {100 * np.mean(labels == y_query):.1f} %")

# %%
# Some queries with the label onnxruntime gave them (red when wrong).

fig, axes = plt.subplots(2, 8, figsize=(8, 2.6))
shown = np.linspace(0, len(X_query) - 1, 16).astype(int)
for ax, i in zip(axes.flat, shown, strict=True):
    ax.imshow(X_query[i].reshape(28, 28), cmap="gray_r")
    right = labels[i] == y_query[i]
    ax.set_title(labels[i].split("/")[1], fontsize=7, color="k" if right else "r")
    ax.axis("off")
fig.suptitle("onnxruntime's labels (character numbers)", fontsize=9)
plt.show()
