"""
================================================================
Tabular data: pandas, a Pipeline and GridSearchCV
================================================================

Few-shot learning on a table: meta-train an
:class:`~sklearn_protonet.modules.MLP` encoder on the rows of some classes,
then recognise other classes from five rows each. Everything stays
scikit-learn: a pandas ``DataFrame`` in, a ``Pipeline`` whose first step is
a frozen scaler, and ``GridSearchCV`` over the classifier's ``metric`` and
``temperature`` with few-shot episodes as cross-validation splits.
"""

import matplotlib.pyplot as plt
import pandas as pd
import torch
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_protonet import EpisodicTrainer, PrototypicalClassifier
from sklearn_protonet.model_selection import EpisodicSplit, episodic_score
from sklearn_protonet.modules import MLP

torch.set_num_threads(2)

# %%
# A table with many classes
# -------------------------
#
# 30 classes of 100 rows and 50 numeric columns, of which only 8 carry class
# information; the other 42 are noise. Which columns matter is shared by all
# classes, old and new: that is what an encoder can learn from the base
# classes and carry over. Meta-learning needs many classes to learn it from.

X, y = make_classification(
    n_samples=3000,
    n_features=50,
    n_informative=8,
    n_redundant=0,
    n_classes=30,
    n_clusters_per_class=1,
    class_sep=1.5,
    random_state=0,
)
df = pd.DataFrame(X, columns=[f"x{i:02d}" for i in range(X.shape[1])])
df["label"] = [f"class {c:02d}" for c in y]
df.head()

# %%
# The first 20 classes are the base classes; the last 10 play the new classes
# that only get a few labelled rows.

base_classes = sorted(df["label"].unique())[:20]
is_base = df["label"].isin(base_classes)
features = df.columns.drop("label")
X_base, y_base = df.loc[is_base, features], df.loc[is_base, "label"]
X_new, y_new = df.loc[~is_base, features], df.loc[~is_base, "label"]
print(f"base: {y_base.nunique()} classes, new: {y_new.nunique()} classes")

# %%
# Scale with the base classes, meta-train the encoder
# ---------------------------------------------------
#
# The scaler is fitted once, on the base classes, and frozen: refitting it on
# a five-row support set would move the inputs away from what the encoder
# learnt on. ``set_output(transform="pandas")`` keeps the column names.
#
# :class:`~sklearn_protonet.modules.MLP` infers its input width from the data.

scaler = StandardScaler().set_output(transform="pandas").fit(X_base)
trainer = EpisodicTrainer(
    MLP,
    module__hidden_sizes=(32,),
    module__out_features=16,
    n_way=10,
    n_shot=5,
    n_query=10,
    episodes_per_epoch=100,
    max_epochs=8,
    train_split=None,
    verbose=0,
    random_state=0,
)
trainer.fit(scaler.transform(X_base), y_base)

# %%
# A pipeline that never retrains what is fitted
# ---------------------------------------------
#
# ``FrozenEstimator`` keeps the scaler as fitted; the fitted trainer is kept
# by ``PrototypicalClassifier`` itself, whose ``clone`` shares a fitted
# encoder instead of resetting it. So fitting the pipeline only computes
# prototypes, and every clone ``GridSearchCV`` makes reuses the same encoder.

pipe = make_pipeline(FrozenEstimator(scaler), PrototypicalClassifier(trainer))
pipe  # noqa: B018  (displays the pipeline)

# %%
# Does the encoder help?
# ----------------------
#
# ``EpisodicSplit`` is a cross-validation splitter: each split is a 5-way
# 5-shot episode of the new classes, whose support rows fit the pipeline and
# whose query rows score it. The baseline is the same pipeline with the
# identity encoder: class means of the scaled columns, noise included.

cv = EpisodicSplit(n_way=5, n_shot=5, n_query=15, n_episodes=50, random_state=0)
baseline = make_pipeline(FrozenEstimator(scaler), PrototypicalClassifier())
scores = {
    "identity encoder": episodic_score(baseline, X_new, y_new, cv),
    "meta-trained MLP": episodic_score(pipe, X_new, y_new, cv),
}
for name, (mean, half_width) in scores.items():
    print(f"{name:>16}: {mean:.1%} ± {half_width:.1%}")

# %%
# Grid search over episodes of the new classes
# --------------------------------------------
#
# The same episodes now score every combination of ``metric`` and
# ``temperature``. ``temperature`` never changes predictions, so accuracy
# cannot choose it; the log loss, which scores probabilities, can.

search = GridSearchCV(
    pipe,
    param_grid={
        "prototypicalclassifier__metric": ["sqeuclidean", "euclidean", "cosine"],
        "prototypicalclassifier__temperature": [0.1, 0.3, 1.0, 3.0, 10.0],
    },
    scoring={"accuracy": "accuracy", "log_loss": "neg_log_loss"},
    refit="log_loss",
    cv=cv,
)
search.fit(X_new, y_new)
print("best:", search.best_params_)

# %%
# The results as a DataFrame
# --------------------------

results = pd.DataFrame(search.cv_results_).rename(
    columns=lambda c: c.replace("param_prototypicalclassifier__", "")
)
table = results.pivot_table(
    index="metric",
    columns="temperature",
    values=["mean_test_accuracy", "mean_test_log_loss"],
)
table.round(3)

# %%
# Each metric's accuracy is the same at every temperature (the dashed line is
# the identity encoder; ``"euclidean"`` predicts as ``"sqeuclidean"`` does, so
# their lines coincide); the log loss has a best temperature per metric.
# ``"cosine"`` distances lie in [0, 2], much smaller than squared distances,
# so it needs a lower temperature.

fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
temperatures = table["mean_test_accuracy"].columns
for metric in table.index:
    acc_ax.plot(
        temperatures, 100 * table.loc[metric, "mean_test_accuracy"], "o-", label=metric
    )
    loss_ax.plot(
        temperatures, -table.loc[metric, "mean_test_log_loss"], "o-", label=metric
    )
acc_ax.axhline(
    100 * scores["identity encoder"][0], color="0.4", ls="--", label="identity"
)
acc_ax.set(
    xscale="log",
    xlabel="temperature",
    ylabel="accuracy (%)",
    title="Accuracy: the temperature changes nothing",
)
loss_ax.set(
    xscale="log",
    xlabel="temperature",
    ylabel="log loss (lower is better)",
    title="Log loss: the temperature matters",
)
for ax in (acc_ax, loss_ax):
    ax.grid(alpha=0.3)
    ax.legend(title="metric")
fig.tight_layout()
plt.show()

# %%
# ``search.best_estimator_`` was refitted on all the rows of the new classes.
# Its classifier checks the column names of what it is given, as any
# scikit-learn estimator fitted on a DataFrame does.

best = search.best_estimator_
print(best[-1].feature_names_in_[:5], "...")
best.predict(X_new.head())
