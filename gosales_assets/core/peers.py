"""The simple alternatives a sales team would use instead of the engine ("peers"), scored on the model's own
out-of-fold rows, and the comparison the promotion gate makes with them.

Peers (higher score = more likely to buy):
- `recency`: the most recent buyers first (never bought: last);
- `frequency`: invoice lines in the last 12 months;
- `monetary`: revenue in the last 12 months;
- `rfm_logistic`: a logistic regression on ~10 RFM / tenure / breadth features (signed log, standardized), fitted
  fold by fold on the same customer-grouped folds as the candidate, so its scores are out-of-fold too.

An absolute AUC floor set for one business says little about another; what a rep needs is a list better than the
one they would build themselves. So the gate asks whether the candidate is not worse than the best peer beyond a
margin, on the same rows, with a paired bootstrap interval of the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from gosales_assets.core.metrics import roc_auc

PEERS = ("recency", "frequency", "monetary", "rfm_logistic")
# (feature, sign): the heuristic peers are one feature each.
HEURISTICS = {
    "recency": ("rfm__all__recency_days__all", -1.0),
    "frequency": ("rfm__all__txn_count__12m", 1.0),
    "monetary": ("rfm__all__revenue_sum__12m", 1.0),
}
RFM_FEATURES = (
    "rfm__all__recency_days__all", "rfm__all__txn_count__3m", "rfm__all__txn_count__12m", "rfm__all__txn_count__24m",
    "rfm__all__revenue_sum__3m", "rfm__all__revenue_sum__12m", "rfm__all__revenue_sum__24m",
    "rfm__all__sku_count__12m", "life__all__tenure_days__all", "life__all__active_months__24m",
)


def heuristic_score(frame: pl.DataFrame, peer: str) -> np.ndarray:
    """A heuristic peer's score per row: its feature times its sign; a missing value ranks last (below every
    known one)."""
    feature, sign = HEURISTICS[peer]
    if feature not in frame.columns:
        raise ValueError(f"peer {peer!r} needs the feature {feature!r}, which the frame does not have")
    x = frame.get_column(feature).cast(pl.Float64).to_numpy() * sign
    known = np.isfinite(x)
    floor = (x[known].min() - 1.0) if known.any() else 0.0
    return np.where(known, x, floor)


def _rfm_matrix(frame: pl.DataFrame) -> np.ndarray:
    cols = [c for c in RFM_FEATURES if c in frame.columns]
    if not cols:
        raise ValueError(f"none of the RFM features {RFM_FEATURES} is in the frame")
    raw = frame.select(cols).cast(pl.Float64).to_numpy()
    never = ~np.isfinite(raw)
    # a missing value means "never bought": the longest time ago for day counts, nothing for amounts and counts;
    # an indicator column lets the model tell those customers apart
    longest = np.array([np.nanmax(np.where(never[:, j], np.nan, raw[:, j])) if "days" in c and (~never[:, j]).any()
                        else 0.0 for j, c in enumerate(cols)])
    x = np.where(never, longest, raw)
    x = np.sign(x) * np.log1p(np.abs(x))  # heavy tails
    return np.hstack([x, never.any(axis=1, keepdims=True).astype(float)])


def rfm_logistic_oof(frame: pl.DataFrame, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold scores of the RFM logistic regression on the candidate's folds (deterministic: lbfgs, L2)."""
    from sklearn.linear_model import LogisticRegression  # here: scikit-learn only where a model is fitted

    x = _rfm_matrix(frame)
    out = np.full(y.shape[0], np.nan)
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        if np.unique(y[train]).size < 2:
            out[test] = float(y[train].mean()) if train.any() else 0.0
            continue
        mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
        sd[sd == 0] = 1.0
        model = LogisticRegression(C=1.0, max_iter=1000)
        model.fit((x[train] - mu) / sd, y[train])
        out[test] = model.predict_proba((x[test] - mu) / sd)[:, 1]
    return out


def peer_scores(frame: pl.DataFrame, y: np.ndarray, folds: np.ndarray) -> dict[str, np.ndarray]:
    """Every peer's out-of-fold score on the rows of `frame` (same order as `y` and `folds`)."""
    scores = {peer: heuristic_score(frame, peer) for peer in HEURISTICS}
    scores["rfm_logistic"] = rfm_logistic_oof(frame, y, folds)
    return scores


def paired_auc_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, *, n_boot: int = 500, seed: int = 0
                          ) -> tuple[float | None, float | None, float | None]:
    """AUC(a) − AUC(b) on the same rows and its 95 % paired bootstrap interval (rows resampled with replacement,
    positives and negatives separately so every resample has both classes). None when undefined."""
    base_a, base_b = roc_auc(y, a), roc_auc(y, b)
    if base_a is None or base_b is None:
        return None, None, None
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        diffs[i] = roc_auc(y[idx], a[idx]) - roc_auc(y[idx], b[idx])
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return base_a - base_b, float(lo), float(hi)


@dataclass(frozen=True)
class PeerComparison:
    candidate_auc: float | None
    peer_aucs: dict[str, float | None]
    best_peer: str | None
    difference: float | None          # candidate − best peer (AUC)
    interval: tuple[float | None, float | None]
    margin: float
    passed: bool
    detail: str
    diagnosis: str | None = None      # set when the candidate is below chance
    values: dict = field(default_factory=dict)


def compare_with_peers(y: np.ndarray, candidate: np.ndarray, peers: dict[str, np.ndarray], *, margin: float,
                       n_boot: int = 500, seed: int = 0, folds: np.ndarray | None = None) -> PeerComparison:
    """Whether the candidate is not worse than the best peer beyond `margin` (AUC, same rows), with the interval."""
    y = np.asarray(y).astype(int)
    cand = roc_auc(y, candidate)
    aucs = {name: roc_auc(y, s) for name, s in peers.items()}
    known = {k: v for k, v in aucs.items() if v is not None}
    best = max(sorted(known), key=lambda k: known[k]) if known else None
    diff, lo, hi = (paired_auc_difference(y, candidate, peers[best], n_boot=n_boot, seed=seed) if best
                    else (None, None, None))
    passed = diff is not None and diff >= -margin
    if diff is None:
        detail = "no peer comparison possible (one class only)"
    else:
        verb = "beats" if diff > 0 else "trails" if diff < 0 else "ties"
        detail = (f"AUC {cand:.4f} {verb} the best peer ({best}, {known[best]:.4f}) by {abs(diff):.4f} "
                  f"(95 % interval of the difference [{lo:+.4f}, {hi:+.4f}]; margin {margin:g})")
    diagnosis = below_chance_diagnosis(y, candidate, known, folds) if cand is not None and cand < 0.5 else None
    values = {"candidate_auc": cand, "best_peer": best, "best_peer_auc": known.get(best) if best else None,
              "auc_vs_best_peer": diff, "interval_low": lo, "interval_high": hi, "peer_margin": margin,
              **{f"peer_auc_{k}": v for k, v in aucs.items()}}
    return PeerComparison(cand, aucs, best, diff, (lo, hi), margin, passed, detail, diagnosis, values)


def below_chance_diagnosis(y: np.ndarray, candidate: np.ndarray, peer_aucs: dict[str, float],
                           folds: np.ndarray | None) -> str:
    """Words for a model that ranks buyers worse than chance in cross-validation: how much worse, how stable across
    folds, how many positives, and whether the simple peers do better (then the features rank backwards)."""
    auc = roc_auc(y, candidate)
    positives = int(y.sum())
    per_fold = []
    if folds is not None:
        for f in np.unique(folds):
            m = folds == f
            a = roc_auc(y[m], candidate[m])
            if a is not None:
                per_fold.append(round(a, 3))
    best = max(peer_aucs.values(), default=None)
    parts = [f"cross-validated AUC {auc:.3f} is below chance (0.5) on {positives} positives of {y.size} rows"]
    if per_fold:
        below = sum(a < 0.5 for a in per_fold)
        parts.append(f"{below} of {len(per_fold)} folds below chance ({per_fold})")
    if best is not None and best > 0.5:
        parts.append(f"the simple peers reach {best:.3f}: the model's features rank these buyers backwards "
                     "(often a small expansion population, most customers already owning the division)")
    elif positives < 50:
        parts.append("too few positives to learn an ordering; consider a longer label window")
    return "; ".join(parts)
