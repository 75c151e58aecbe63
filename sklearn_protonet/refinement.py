"""Semi-supervised prototypes: refinement by unlabeled rows that stands aside
when they cannot help.

Soft k-means (Ren et al., ICLR 2018, "Meta-Learning for Semi-Supervised
Few-Shot Classification") moves each prototype towards the unlabeled rows
assigned to it. It helps when every class of the support set has unlabeled
rows and those rows are the only ones in the pool. Real pools break both:
some classes have no unlabeled rows, so their prototypes are pulled into
other classes' clusters; rows of other domains sit far from every prototype
and still drag them. ``"guarded"`` (the default) adds two checks to the
masked soft k-means, both computed once from the *labeled* prototypes:

- **reach**: a row counts only if it is within ``reach`` times the distance
  from its nearest prototype to that prototype's nearest other prototype
  (rows of another domain are left out whatever their distance ratios say);
- **coverage**: a class is *covered* when some unlabeled row is confidently
  its own (nearest to it, with a distance ratio to the second nearest below
  ``coverage_ratio``). When fewer than the fraction ``coverage`` of the
  classes are covered, the pool does not look like the support set's
  classes and the refinement stands aside: the labeled prototypes are
  returned unchanged.

Every function works on a classifier's running class terms ``(sums,
totals)`` (``prototypes = sums / totals``), in pure torch, so a fitted
support state can call it as it is.
"""

from __future__ import annotations

import torch

from ._geometry import DEFAULT_METRIC, get_metric
from .distances import pairwise_distances

__all__ = [
    "COVERAGE",
    "COVERAGE_RATIO",
    "MASK_SLOPE",
    "MASK_THRESHOLD",
    "REACH",
    "REFINEMENTS",
    "soft_kmeans",
]

#: Accepted values of ``refinement``: the default first.
REFINEMENTS = ("guarded", "masked", "soft_kmeans")

#: The mask's distance-ratio threshold and slope, chosen on Omniglot's
#: validation classes with distractors.
MASK_THRESHOLD, MASK_SLOPE = 0.8, 20.0

#: How far from its nearest prototype a row may lie and still count, in
#: units of that prototype's distance to its nearest other prototype
#: (squared distances).
REACH = 4.0

#: A class is covered when an unlabeled row is nearest to it with a ratio of
#: squared distances (nearest over second nearest) below COVERAGE_RATIO; the
#: guarded refinement runs when at least the fraction COVERAGE of the classes
#: are covered (chosen on the digits and Omniglot with other episodes than
#: benchmarks/semi_supervised.py's).
COVERAGE_RATIO, COVERAGE = 0.6, 0.7


def soft_kmeans(
    sums: torch.Tensor,
    totals: torch.Tensor,
    unlabeled: torch.Tensor,
    steps: int,
    *,
    metric: str = DEFAULT_METRIC,
    weights: torch.Tensor | None = None,
    refinement: str = "guarded",
    mask_threshold: float = MASK_THRESHOLD,
    mask_slope: float = MASK_SLOPE,
    reach: float | None = REACH,
    coverage: float = COVERAGE,
    coverage_ratio: float = COVERAGE_RATIO,
    per_class: bool = False,
    labeled: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine prototypes with soft k-means over unlabeled embeddings.

    Each step assigns every unlabeled row ``j`` to every class ``c`` softly,
    ``z[j, c] = softmax_c(-d(x_j, p_c))``, and recomputes each prototype as
    ``(sums[c] + sum_j w_j m[j, c] z[j, c] x_j) / (totals[c] + sum_j w_j
    m[j, c] z[j, c])``: the labeled rows with their weight, the unlabeled
    ones with their soft assignment (Ren et al. 2018, eq. 3-4).

    ``refinement`` sets ``m``:

    - ``"soft_kmeans"``: ``m = 1``, every row joins every prototype;
    - ``"masked"``: ``m[j, c] = sigmoid(-slope (r[j, c] - threshold))``,
      where ``r[j, c]`` is ``d(x_j, p_c)`` over the distance from ``x_j`` to
      its *second* nearest prototype. A row of class ``c`` lies much nearer
      ``p_c`` than any other prototype (``r`` well below 1); a row of a
      class outside the support set lies about as far from its two nearest
      (``r`` near 1). The ratio is scale-free, so one threshold serves
      different embeddings.
    - ``"guarded"``: the mask of ``"masked"`` on squared distances (the same
      thresholds for every metric), times 0 for rows out of ``reach``; and
      the whole refinement stands aside (``sums, totals`` are returned)
      unless at least the fraction ``coverage`` of the classes have an
      unlabeled row confidently their own (see the module's docstring).

    Masks, reach and coverage are computed once, from the *labeled*
    prototypes, so that rows cannot drag the prototypes and then pass them.

    Parameters
    ----------
    sums, totals : Tensor
        The labeled rows' class sums (:func:`~sklearn_protonet.prototypes.class_sums`,
        not "gaussian"); totals of shape (k,).
    unlabeled : Tensor of shape (m, d)
        Unlabeled embeddings, normalised as the labeled ones.
    steps : int
        Refinement steps; 0 returns ``sums, totals`` unchanged.
    metric : {"sqeuclidean", "euclidean", "cosine"}, default="sqeuclidean"
    weights : Tensor of shape (m,), default=None
        The unlabeled rows' sample weights (a row of weight 2 counts as the
        row twice; weight 0 as no row).
    refinement : {"guarded", "masked", "soft_kmeans"}, default="guarded"
    mask_threshold, mask_slope : float
        ``threshold`` and ``slope`` of the mask (how hard it is).
    reach : float or None, default=REACH
        ``"guarded"``: a row counts only if its squared distance to its
        nearest prototype is at most ``reach`` times that prototype's
        squared distance to its nearest other prototype. None: no limit.
    coverage : float, default=COVERAGE
        ``"guarded"``: the fraction of classes that must be covered; 0
        refines whatever the pool.
    coverage_ratio : float, default=COVERAGE_RATIO
        ``"guarded"``: the ratio of squared distances (nearest over second
        nearest) below which a row is confidently its nearest class's own.
    per_class : bool, default=False
        ``"guarded"``: instead of standing aside as a whole, refine only the
        covered classes and leave the others alone (measured, and not the
        default: see :ref:`semi_supervised`).
    labeled : (rows, codes, weights) or None, default=None
        The labeled embeddings behind ``sums, totals``, their class codes
        and sample weights (None: 1). When every class has two labeled rows
        or more, a *held-out check* runs first: the labeled rows are split
        into folds holding one row of each class; for each fold the
        refinement is run without it, and the refinement stands aside
        unless it lowers the held-out rows' (weighted) log-loss summed over
        the folds.

    Returns
    -------
    sums, totals : Tensor
        The refined terms: ``sums / totals`` are the refined prototypes.
    """
    if refinement not in REFINEMENTS:
        raise ValueError(
            f"refinement={refinement!r} is not one of {REFINEMENTS}; use "
            f"{REFINEMENTS[0]!r}."
        )
    if steps == 0 or len(unlabeled) == 0:
        return sums, totals
    settings = {
        "metric": metric,
        "weights": weights,
        "refinement": refinement,
        "mask_threshold": mask_threshold,
        "mask_slope": mask_slope,
        "reach": reach,
        "coverage": coverage,
        "coverage_ratio": coverage_ratio,
        "per_class": per_class,
    }
    if labeled is not None and not _held_out_check(
        sums, totals, unlabeled, steps, labeled, settings
    ):
        return sums, totals
    w = torch.ones_like(unlabeled[:, 0]) if weights is None else weights.to(unlabeled)
    anchors = _as_prototypes(sums, totals)
    if refinement == "soft_kmeans":
        mask = w[:, None].expand(-1, len(anchors))
    else:
        distances = pairwise_distances(unlabeled, anchors, metric)
        if refinement == "masked":
            mask = w[:, None] * _mask(distances, mask_threshold, mask_slope)
        else:
            guard = _guard(
                _squared(distances, metric),
                _squared(pairwise_distances(anchors, anchors, metric), metric),
                w,
                mask_threshold,
                mask_slope,
                reach,
                coverage,
                coverage_ratio,
                per_class,
            )
            if guard is None:
                return sums, totals
            mask = guard
    refined_sums, refined_totals = sums, totals
    for _ in range(steps):
        prototypes = _as_prototypes(refined_sums, refined_totals)
        d = pairwise_distances(unlabeled, prototypes, metric)
        z = torch.softmax(-d, dim=1) * mask
        refined_sums = sums + z.T @ unlabeled
        refined_totals = totals + z.sum(0)
    return refined_sums, refined_totals


def _as_prototypes(sums: torch.Tensor, totals: torch.Tensor) -> torch.Tensor:
    return sums / totals[:, None]


def _squared(d: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances on the squared scale: euclidean squared; sqeuclidean and
    cosine (``1 - cos``, half the squared distance of unit vectors) as they
    are. Ratios of them then mean the same for every metric."""
    return d.square() if get_metric(metric).scale_power == 1 else d


def _mask(d: torch.Tensor, threshold: float, slope: float) -> torch.Tensor:
    """Soft membership of each unlabeled row in each class (see soft_kmeans)."""
    if d.shape[1] < 2:
        return torch.ones_like(d)
    second = d.topk(2, dim=1, largest=False).values[:, 1:2]
    ratio = d / second.clamp_min(torch.finfo(d.dtype).tiny)
    return torch.sigmoid(-slope * (ratio - threshold))


def _guard(
    d: torch.Tensor,
    between: torch.Tensor,
    w: torch.Tensor,
    threshold: float,
    slope: float,
    reach: float | None,
    coverage: float,
    coverage_ratio: float,
    per_class: bool,
) -> torch.Tensor | None:
    """The guarded refinement's weights ``w m`` (rows by classes) from the
    squared distances ``d`` of the rows to the labeled prototypes and
    ``between`` the prototypes; None when it stands aside."""
    n_classes = d.shape[1]
    if n_classes < 2:
        return w[:, None] * torch.ones_like(d)
    nearest = d.topk(2, dim=1, largest=False)
    tiny = torch.finfo(d.dtype).tiny
    ratio = nearest.values[:, 0] / nearest.values[:, 1].clamp_min(tiny)
    owner = nearest.indices[:, 0]
    counts = w > 0
    if reach is not None:
        gap = between.masked_fill(
            torch.eye(n_classes, dtype=torch.bool, device=d.device), float("inf")
        ).amin(1)
        counts = counts & (nearest.values[:, 0] <= reach * gap[owner])
    confident = counts & (ratio < coverage_ratio)
    covered = torch.zeros(n_classes, dtype=torch.bool, device=d.device)
    covered[owner[confident]] = True
    mask = (w * counts)[:, None] * _mask(d, threshold, slope)
    if per_class:
        return mask * covered
    if covered.sum() < coverage * n_classes:
        return None
    return mask


def _held_out_check(sums, totals, unlabeled, steps, labeled, settings) -> bool:
    """Whether the refinement lowers the log-loss of held-out labeled rows
    (True when some class has fewer than two rows to hold one out)."""
    rows, codes, row_weights = labeled
    if row_weights is None:
        row_weights = torch.ones_like(rows[:, 0])
    row_weights = row_weights.to(rows)
    n_classes = len(sums)
    positive = row_weights > 0
    counts = torch.bincount(codes[positive], minlength=n_classes)
    if len(counts) > n_classes or int(counts.min()) < 2:
        return True
    # Fold of each row of positive weight: its rank among its class's such
    # rows, modulo the fewest (every fold holds one row of each class out);
    # rows of weight 0 count nowhere and are never held out.
    kept = codes[positive]
    order = torch.argsort(kept, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(kept)
    rank[order] = torch.arange(len(kept), device=kept.device) - starts[kept[order]]
    folds = torch.full_like(codes, -1)
    folds[positive] = rank % int(counts.min())
    metric = settings["metric"]
    plain = refined = 0.0
    for fold in range(int(counts.min())):
        held = folds == fold
        w = row_weights[held]
        fold_sums = sums.index_add(0, codes[held], -rows[held] * w[:, None])
        fold_totals = totals.index_add(0, codes[held], -w)
        if bool((fold_totals <= 0).any()):
            return True
        refined_terms = soft_kmeans(
            fold_sums, fold_totals, unlabeled, steps, **settings
        )
        plain += _log_loss(rows[held], codes[held], w, fold_sums, fold_totals, metric)
        refined += _log_loss(rows[held], codes[held], w, *refined_terms, metric)
    return refined < plain


def _log_loss(rows, codes, w, sums, totals, metric) -> float:
    logits = -pairwise_distances(rows, _as_prototypes(sums, totals), metric)
    losses = torch.nn.functional.cross_entropy(logits, codes, reduction="none")
    return float((losses * w).sum())
