"""
=============================================
Your own images: a folder, a Pipeline, a copy
=============================================

A folder of images, a few per class, is the usual starting point. This
example writes one (scikit-learn's handwritten digits, as dark ink on white
paper PNGs, one sub-folder per digit), reads it with
:func:`~sklearn_protonet.datasets.load_image_folder`, classifies file paths
with :class:`~sklearn_protonet.preprocessing.ImageReader` and
:class:`~sklearn_protonet.PrototypicalClassifier` in a Pipeline, and compares
the paper's pretrained Omniglot encoder, frozen and adapted to the support
set, with the robust encoder meta-trained on degraded characters.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.contracts import get_input_contract
from sklearn_protonet.datasets import load_image_folder
from sklearn_protonet.model_selection import EpisodicSplit
from sklearn_protonet.preprocessing import ImageReader
from sklearn_protonet.pretrained import load_pretrained

torch.set_num_threads(2)

# %%
# A folder of images
# ------------------
#
# Twenty scans per digit, written as 8x8 PNGs with dark ink on white paper,
# in the layout torchvision's ``ImageFolder`` and Keras use:
# ``root/<class>/<file>``.

digits = load_digits()
root = Path(tempfile.mkdtemp()) / "digits"
for digit in range(10):
    (root / str(digit)).mkdir(parents=True)
    for i, image in enumerate(digits.images[digits.target == digit][:20]):
        ink_on_paper = (255 - image * 255 / 16).astype(np.uint8)
        Image.fromarray(ink_on_paper).save(root / str(digit) / f"{i:02d}.png")

# %%
# Polarity and size: what the encoder expects
# -------------------------------------------
#
# The shipped encoder was trained on Omniglot: 28x28 single-channel images
# with light strokes (1.0) on a dark background (0.0). Its weights record
# this *input contract*; images that break it are embedded badly, and
# ``fit`` warns when a support set clearly does (inverted polarity, values
# in 0-255 instead of 0-1) and fails with the fix when the size is wrong.

encoder = load_pretrained("omniglot-conv4-5shot")
print(get_input_contract(encoder))

# %%
# ``load_image_folder`` resizes, converts and inverts as asked; the polarity
# option inverts the images whose border (the background) is lighter than
# their centre.

bunch = load_image_folder(root, size=28, polarity="light-on-dark")
print(bunch.images.shape, bunch.target_names)

fig, axes = plt.subplots(2, 5, figsize=(7, 3))
for column, i in enumerate(range(0, len(bunch.filenames), 40)):
    axes[0, column].imshow(
        Image.open(bunch.filenames[i]), cmap="gray", vmin=0, vmax=255
    )
    axes[1, column].imshow(bunch.images[i, 0], cmap="gray", vmin=0, vmax=1)
    axes[0, column].set_title("file", fontsize=8)
    axes[1, column].set_title("as read", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()

# %%
# Classifying file paths in a Pipeline
# ------------------------------------
#
# :meth:`~sklearn_protonet.preprocessing.ImageReader.from_encoder` takes
# size, channels, value range and polarity from the encoder's contract,
# so the Pipeline goes straight from paths to predictions. Five images per
# digit are the support set.

paths, labels = bunch.filenames, bunch.target
support = np.concatenate([np.flatnonzero(labels == c)[:5] for c in bunch.target_names])
query = np.setdiff1d(np.arange(len(paths)), support)
frozen = make_pipeline(
    ImageReader.from_encoder(encoder), PrototypicalClassifier(encoder)
)
frozen.fit(paths[support], labels[support])
print(f"frozen encoder: {frozen.score(paths[query], labels[query]):.1%}")

# %%
# Adapting a copy of the encoder to the support set
# -------------------------------------------------
#
# Digits are not Omniglot characters: over random episodes the frozen encoder
# scores below nearest centroid on the raw pixels (:ref:`own_data`).
# ``fine_tune_steps`` makes ``fit`` adapt a private copy of the encoder
# first: it re-estimates the BatchNorm statistics on the support set, then
# trains the last two blocks for a few steps on pseudo-episodes made of two
# randomly shifted (here also rotated and scaled) views of the support set.
# The encoder you passed is never modified, ``random_state`` makes it
# reproducible, and one example per class is enough.
#
# The other remedy is an encoder that was never as narrow:
# ``omniglot-conv4-robust`` was meta-trained on the same characters randomly
# rotated, scaled, thickened and blurred, the ways users' images differ from
# Omniglot's crisp strokes. It reads the same images (same contract), and
# adapts the same way.
#
# Below, the same four 10-way 5-shot episodes scored six ways. The
# normalisations (``normalization="l2"`` or ``"cl2n"``, SimpleShot's
# centring then L2) cost nothing, so they are worth a try on a validation
# episode; adaptation costs a fraction of a second per ``fit`` and helps most
# across domains; the robust encoder helps most of all.
# ``benchmarks/cross_domain.py`` measures all of them over 500 episodes, at
# 1-shot and 5-shot (see :ref:`own_data`).

X, y = bunch.images, bunch.target
robust = load_pretrained("omniglot-conv4-robust")
adaptation = {"fine_tune_steps": 60, "fine_tune_augmentation": "affine"}
models = {
    "pixels": PrototypicalClassifier(),
    "frozen": PrototypicalClassifier(encoder),
    "cl2n": PrototypicalClassifier(encoder, normalization="cl2n"),
    "adapted": PrototypicalClassifier(encoder, **adaptation),
    "robust": PrototypicalClassifier(robust),
    "robust\nadapted": PrototypicalClassifier(robust, **adaptation),
}
scores = {name: [] for name in models}
for episode, (s, q) in enumerate(
    EpisodicSplit(n_way=10, n_shot=5, n_query=10, n_episodes=4, random_state=0).split(
        X, y
    )
):
    for name, model in models.items():
        if model.fine_tune_steps:  # each episode's adaptation seeded
            model.set_params(random_state=episode)
        scores[name].append(model.fit(X[s], y[s]).score(X[q], y[q]))

fig, ax = plt.subplots(figsize=(6, 3))
means = [100 * np.mean(v) for v in scores.values()]
errors = [100 * np.std(v) for v in scores.values()]
colors = ["grey", "C0", "C1", "C2", "C3", "C4"]
bars = ax.bar(list(scores), means, yerr=errors, color=colors)
ax.bar_label(bars, fmt="%.0f", label_type="center", color="white")
ax.set_ylabel("accuracy (%)")
ax.set_ylim(50, 105)
ax.set_title("10-way 5-shot on digits: paper's vs robust Omniglot encoder")
fig.tight_layout()
plt.show()

# %%
# A torchvision backbone with your own weights
# --------------------------------------------
#
# Any ``torch.nn.Module`` that maps a batch of images to a batch of vectors
# is an encoder. For colour photos, a network pretrained on ImageNet is a
# better start than Omniglot's; install the ``vision`` extra
# (``pip install "sklearn-protonet[vision]"``), load the weights on your
# machine, and remove the classification head::
#
#     import torchvision
#     from torch import nn
#
#     backbone = torchvision.models.resnet18(weights="IMAGENET1K_V1")
#     backbone.fc = nn.Identity()  # 512-d embeddings instead of 1000 logits
#     normalize = torchvision.transforms.Normalize(
#         mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]
#     )
#     encoder = nn.Sequential(normalize, backbone).eval()
#     model = make_pipeline(
#         ImageReader(size=224, color_mode="rgb", n_jobs=4),
#         PrototypicalClassifier(encoder, device="cuda", fine_tune_steps=20,
#                                fine_tune_layers=6),
#     )
#
# ``device="cuda"`` runs on a GPU when the module is there (move it with
# ``encoder.to("cuda")``); ``fine_tune_layers`` bounds how much of a large
# network the adaptation trains.
