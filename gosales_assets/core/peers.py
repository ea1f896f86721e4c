"""The simple alternatives a sales team would use instead of the engine ("peers"), scored on the model's own
out-of-fold rows, and the comparison the promotion gate makes with them.

Peers (higher score = more likely to buy):
- `recency`: the most recent buyers first (never bought: last);
- `frequency`: invoice lines in the last 12 months;
- `monetary`: revenue in the last 12 months;
- `rfm_logistic`: a logistic regression on ~10 RFM / tenure / breadth features (signed log, standardized), fitted
  fold by fold on the same customer-grouped folds as the candidate, so its scores are out-of-fold too, and on the
  same rows: where the candidate's fits sampled a cutoff's negatives (weighted back), so do the regression's.

An absolute AUC floor set for one business says little about another; what a rep needs is a list better than the
one they would build themselves. So the gate asks whether the candidate is not worse than the best peer beyond a
margin, on the same rows, with a paired interval of the difference (DeLong's by default).

The same peers also order a division's customers at a cutoff whatever its model's verdict (`score_peers`, the
`peer_scores` asset): the heuristics need nothing fitted, and the RFM logistic regression is refitted on all of the
model's training rows (the candidate's sample of them: `fit_rfm_logistic`; its coefficients, its fill values and the
peer that was best in the model's cross-validation are the model's `peers.json`, `peer_record`). So forward
validation can report every peer beside the engine on the same rows, and whitespace can list a held or skipped
division by its best peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from gosales_assets.core.metrics import Z95, paired_auc_delong, roc_auc

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
# Every column a peer reads (the heuristics' features and the regression's inputs).
PEER_COLUMNS = tuple(dict.fromkeys([*(feature for feature, _ in HEURISTICS.values()), *RFM_FEATURES]))


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


def _rfm_columns(frame: pl.DataFrame) -> list[str]:
    cols = [c for c in RFM_FEATURES if c in frame.columns]
    if not cols:
        raise ValueError(f"none of the RFM features {RFM_FEATURES} is in the frame")
    return cols


def _rfm_fill(raw: np.ndarray, cols: list[str]) -> np.ndarray:
    """What a missing value stands for ("never bought"): the longest time seen for day counts, 0 for amounts and
    counts."""
    never = ~np.isfinite(raw)
    return np.array([np.nanmax(np.where(never[:, j], np.nan, raw[:, j])) if "days" in c and (~never[:, j]).any()
                     else 0.0 for j, c in enumerate(cols)])


def _rfm_matrix(frame: pl.DataFrame, cols: list[str] | None = None, fill: np.ndarray | None = None) -> np.ndarray:
    """The RFM regression's inputs: missing values filled (`fill`, default: learned from `frame` itself), signed
    log, plus an indicator column for rows with any missing value (so the model can tell those customers apart)."""
    cols = _rfm_columns(frame) if cols is None else cols
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"the RFM regression needs the feature(s) {missing}, which the frame does not have")
    raw = frame.select(cols).cast(pl.Float64).to_numpy()
    never = ~np.isfinite(raw)
    fill = _rfm_fill(raw, cols) if fill is None else np.asarray(fill, dtype=float)
    x = np.where(never, fill, raw)
    x = np.sign(x) * np.log1p(np.abs(x))  # heavy tails
    return np.hstack([x, never.any(axis=1, keepdims=True).astype(float)])


def _fit_rows(y: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows the RFM regression is fitted on and their weights: those the candidate's fits used (`weights`, its
    fit weight per row, 0 for a negative it sampled out; None or all 1: every row, unweighted)."""
    if weights is None:
        return np.ones(y.shape[0], dtype=bool), None
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != y.shape or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("fit weights must be one finite, non-negative number per row")
    if (weights == 1.0).all():
        return np.ones(y.shape[0], dtype=bool), None
    return weights > 0, weights


def _standardizer(x: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the inputs (weighted: those of the rows the weights stand for); std 0 → 1."""
    if w is None:
        mu, sd = x.mean(axis=0), x.std(axis=0)
    else:
        mu = np.average(x, axis=0, weights=w)
        sd = np.sqrt(np.average(np.square(x - mu), axis=0, weights=w))
    sd[sd == 0] = 1.0
    return mu, sd


def rfm_logistic_oof(frame: pl.DataFrame, y: np.ndarray, folds: np.ndarray,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold scores of the RFM logistic regression on the candidate's folds (deterministic: lbfgs, L2). With
    the candidate's fit `weights` (`_fit_rows`) each fold is fitted on the rows and weights the candidate's own fits
    used — like is compared with like, at the cost of the sample instead of every row — and every held-out row is
    scored."""
    from sklearn.linear_model import LogisticRegression  # here: scikit-learn only where a model is fitted

    x = _rfm_matrix(frame)
    fit_rows, w = _fit_rows(y, weights)
    out = np.full(y.shape[0], np.nan)
    for f in np.unique(folds):
        train, test = (folds != f) & fit_rows, folds == f
        if np.unique(y[train]).size < 2:
            out[test] = float(np.average(y[train], weights=None if w is None else w[train])) if train.any() else 0.0
            continue
        w_train = None if w is None else w[train]
        mu, sd = _standardizer(x[train], w_train)
        model = LogisticRegression(C=1.0, max_iter=1000)
        model.fit((x[train] - mu) / sd, y[train], sample_weight=w_train)
        out[test] = model.predict_proba((x[test] - mu) / sd)[:, 1]
    return out


def peer_scores(frame: pl.DataFrame, y: np.ndarray, folds: np.ndarray,
                weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every peer's out-of-fold score on the rows of `frame` (same order as `y` and `folds`; `weights`: the candidate's
    fit weights, `rfm_logistic_oof`)."""
    scores = {peer: heuristic_score(frame, peer) for peer in HEURISTICS}
    scores["rfm_logistic"] = rfm_logistic_oof(frame, y, folds, weights)
    return scores


# ---- the peers at a cutoff: the RFM regression fitted on all training rows, every peer's score and rank ----------
DEFAULT_PEER = "monetary"
CROSS_VALIDATION, DEFAULT = "cross_validation", "default"  # how the best peer was chosen
# How a person would say what each peer orders by (reasons, reports).
PEER_DESCRIPTIONS = {
    "recency": "latest buyers first",
    "frequency": "most 12-month invoice lines",
    "monetary": "top 12-month revenue",
    "rfm_logistic": "an RFM regression",
}
PEER_SCORE_SCHEMA: dict[str, pl.DataType] = {
    "division": pl.String, "cutoff_date": pl.Date, "customer_id": pl.String,
    **{f"{p}_{kind}": dtype for p in PEERS for kind, dtype in (("score", pl.Float64), ("rank", pl.Int64))},
    "best_peer": pl.String, "best_peer_basis": pl.String, "best_peer_score": pl.Float64, "best_peer_rank": pl.Int64,
    "model_status": pl.String, "model_version": pl.String, "bought_in_division": pl.Int8, "run_id": pl.String,
}


@dataclass(frozen=True)
class RfmLogistic:
    """The RFM logistic regression fitted on every training row of a model: plain numbers, so it is stored as JSON
    and applied with numpy (no pickle). `fill` are the values missing inputs took at fit time (learned once, reused
    at scoring); `mean` / `scale` standardize the signed-log inputs plus the missing-value indicator."""

    features: tuple[str, ...]
    fill: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    rows: int
    positives: int

    def score(self, frame: pl.DataFrame) -> np.ndarray:
        """P(buy) per row of `frame` under the regression (a peer's score, not the engine's calibrated probability)."""
        x = _rfm_matrix(frame, list(self.features), np.array(self.fill))
        z = (x - np.array(self.mean)) / np.array(self.scale) @ np.array(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return {"features": list(self.features), "fill": list(self.fill), "mean": list(self.mean),
                "scale": list(self.scale), "coef": list(self.coef), "intercept": self.intercept, "rows": self.rows,
                "positives": self.positives}

    @classmethod
    def from_dict(cls, d: dict) -> RfmLogistic:
        return cls(features=tuple(d["features"]), fill=tuple(map(float, d["fill"])), mean=tuple(map(float, d["mean"])),
                   scale=tuple(map(float, d["scale"])), coef=tuple(map(float, d["coef"])),
                   intercept=float(d["intercept"]), rows=int(d["rows"]), positives=int(d["positives"]))


def fit_rfm_logistic(frame: pl.DataFrame, y: np.ndarray, weights: np.ndarray | None = None) -> RfmLogistic | None:
    """The RFM regression on every row of `frame` (the settings of `rfm_logistic_oof`; with the candidate's fit
    `weights`, on the rows and weights its refit used); None with one class."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y).astype(int)
    rows, w = _fit_rows(y, weights)
    if w is not None:
        frame, y, w = frame.filter(pl.Series(rows)), y[rows], w[rows]
    if np.unique(y).size < 2:
        return None
    cols = _rfm_columns(frame)
    raw = frame.select(cols).cast(pl.Float64).to_numpy()
    fill = _rfm_fill(raw, cols)
    x = _rfm_matrix(frame, cols, fill)
    mu, sd = _standardizer(x, w)
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mu) / sd, y, sample_weight=w)
    return RfmLogistic(features=tuple(cols), fill=tuple(map(float, fill)), mean=tuple(map(float, mu)),
                       scale=tuple(map(float, sd)), coef=tuple(map(float, model.coef_[0])),
                       intercept=float(model.intercept_[0]), rows=int(y.size), positives=int(y.sum()))


def peer_record(comparison: PeerComparison, rfm: RfmLogistic | None, *, division: str, cutoff, model_version: str,
                rows: int, positives: int) -> dict:
    """A model's `peers.json`: each peer's out-of-fold AUC on the model's own training rows, the best of them (what
    the gate compared the model with, and the order whitespace falls back to if the model is not promoted), and the
    RFM regression refitted on all of those rows."""
    return {"division": division, "cutoff": str(cutoff), "model_version": model_version,
            "best_peer": comparison.best_peer, "best_peer_basis": CROSS_VALIDATION,
            "peer_aucs": comparison.peer_aucs, "candidate_auc": comparison.candidate_auc,
            "rows": rows, "positives": positives, "rfm_logistic": rfm.to_dict() if rfm else None}


@dataclass(frozen=True)
class PeerChoice:
    best_peer: str
    basis: str                       # CROSS_VALIDATION | DEFAULT
    rfm: RfmLogistic | None
    note: str                        # in words: where the choice and the RFM fit come from, or why they are missing


def peer_choice(model_row: dict, record: dict | None, default: str = DEFAULT_PEER) -> PeerChoice:
    """Which peer is best at a partition and the fitted RFM regression, from the model's registry row and its
    `peers.json` (None when there is none). The record counts only when it belongs to the very model of the row
    (same version); otherwise — no model trained, a model from before peers were recorded — the `default` peer is
    used and the RFM regression is missing, and the note says so."""
    status = model_row.get("status") or "missing"
    if not model_row:
        return PeerChoice(default, DEFAULT, None, f"no division_model row: default peer {default}, no RFM regression")
    if record is None or not model_row.get("model_version"):
        why = ("no model was trained" if status == "skipped" or not model_row.get("model_version")
               else f"model {model_row.get('model_version')} recorded no peer comparison")
        return PeerChoice(default, DEFAULT, None,
                          f"{why} ({status}: {model_row.get('reason') or 'no reason recorded'}); default peer "
                          f"{default}, no RFM regression to apply")
    if record.get("model_version") != model_row.get("model_version"):
        return PeerChoice(default, DEFAULT, None,
                          f"peers.json belongs to model {record.get('model_version')}, not the registry's "
                          f"{model_row.get('model_version')}: default peer {default}, no RFM regression")
    rfm = RfmLogistic.from_dict(record["rfm_logistic"]) if record.get("rfm_logistic") else None
    best = record.get("best_peer")
    if best not in PEERS or (best == "rfm_logistic" and rfm is None):
        return PeerChoice(default, DEFAULT, rfm, f"model {record['model_version']} recorded no usable best peer "
                                                 f"({best!r}): default peer {default}")
    aucs = ", ".join(f"{k} {v:.3f}" for k, v in sorted((record.get("peer_aucs") or {}).items()) if v is not None)
    return PeerChoice(best, CROSS_VALIDATION, rfm,
                      f"best peer {best} by out-of-fold AUC on the {record.get('rows')} training rows of model "
                      f"{record['model_version']} ({aucs})")


def _ordered_rank(ids: pl.Series, score: np.ndarray) -> np.ndarray:
    """1-based position by score descending (missing last), ties by customer_id ascending."""
    order = pl.DataFrame({"id": ids, "s": pl.Series(score, dtype=pl.Float64).fill_nan(None)}).with_row_index("_i") \
        .sort(["s", "id"], descending=[True, False], nulls_last=True).get_column("_i").to_numpy()
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(1, order.size + 1)
    return rank


def score_peers(frame: pl.DataFrame, choice: PeerChoice) -> pl.DataFrame:
    """Every peer's score and rank for each customer of a division × cutoff frame (`customer_id` and the features),
    in the frame's row order, with the best peer's. Scores: higher = more likely to buy; a heuristic's missing input
    (never bought) is a missing score, ranked last. `recency_score` is minus the days since the last purchase,
    `frequency_score` invoice lines and `monetary_score` revenue in the last 12 months, `rfm_logistic_score` the
    regression's probability (missing everywhere when there is no fit). Rank 1 = first in that peer's list (ties
    by customer_id)."""
    ids = frame.get_column("customer_id").cast(pl.String)
    cols: dict[str, pl.Series] = {"customer_id": ids}
    scores: dict[str, np.ndarray | None] = {}
    for peer in PEERS:
        if peer in HEURISTICS:
            feature, sign = HEURISTICS[peer]
            if feature not in frame.columns:
                raise ValueError(f"peer {peer!r} needs the feature {feature!r}, which the frame does not have")
            s = frame.get_column(feature).cast(pl.Float64).fill_nan(None).to_numpy() * sign
        else:
            s = choice.rfm.score(frame) if choice.rfm is not None else None
        scores[peer] = s
        cols[f"{peer}_score"] = pl.Series(s if s is not None else [None] * frame.height, dtype=pl.Float64
                                          ).fill_nan(None)
        cols[f"{peer}_rank"] = pl.Series(_ordered_rank(ids, s) if s is not None else [None] * frame.height,
                                         dtype=pl.Int64)
    out = pl.DataFrame(cols)
    return out.with_columns(pl.lit(choice.best_peer).alias("best_peer"), pl.lit(choice.basis).alias("best_peer_basis"),
                            pl.col(f"{choice.best_peer}_score").alias("best_peer_score"),
                            pl.col(f"{choice.best_peer}_rank").alias("best_peer_rank"))


def peer_score_table(frame: pl.DataFrame, choice: PeerChoice, *, division: str, cutoff, model_row: dict,
                     run_id: str) -> pl.DataFrame:
    """The `peer_scores` slice of a division × cutoff: `score_peers` of its model frame with the partition's keys,
    the model's verdict and version, and the realized label where the window is inside the data (as `icp_scores`
    has it). Sorted by customer_id."""
    if frame.height == 0:
        return pl.DataFrame(schema=PEER_SCORE_SCHEMA)
    scored = score_peers(frame, choice)
    if {"label", "censored"} <= set(frame.columns):
        bought = frame.select(pl.when(pl.col("censored")).then(None).otherwise(pl.col("label"))
                              .cast(pl.Int8).alias("bought_in_division")).to_series()
    else:
        bought = pl.Series("bought_in_division", [None] * frame.height, dtype=pl.Int8)
    return scored.with_columns(
        pl.lit(division).alias("division"), pl.lit(cutoff).cast(pl.Date).alias("cutoff_date"),
        pl.lit(model_row.get("status")).cast(pl.String).alias("model_status"),
        pl.lit(model_row.get("model_version")).cast(pl.String).alias("model_version"),
        bought, pl.lit(run_id).alias("run_id"),
    ).select(list(PEER_SCORE_SCHEMA)).cast(PEER_SCORE_SCHEMA).sort("customer_id")


def peer_values(frame: pl.DataFrame, peer: str) -> np.ndarray | None:
    """A peer's scores from a `peer_scores` frame as an array where a missing score ranks below every known one
    (None when the peer has no score at all, e.g. the RFM regression of a skipped model)."""
    s = frame.get_column(f"{peer}_score").cast(pl.Float64).fill_nan(None)
    if s.null_count() == s.len():
        return None
    x = s.to_numpy()
    known = np.isfinite(x)
    return np.where(known, x, x[known].min() - 1.0)


def paired_auc_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, *, n_boot: int | None = None, seed: int = 0
                          ) -> tuple[float | None, float | None, float | None]:
    """AUC(a) − AUC(b) on the same rows and its 95 % paired interval. `n_boot` None (the default): DeLong's analytic
    interval (`core.metrics.paired_auc_delong`, difference ± 1.96 standard errors; one pass, the cost does not grow
    with a resample count: the gate's comparison at 300,000 out-of-fold rows). `n_boot` N: a paired bootstrap of N
    resamples (rows drawn with replacement, positives and negatives separately so every resample has both classes;
    percentile interval). None when undefined (one class)."""
    if n_boot is None:  # DeLong's placements give both AUCs: no separate roc_auc pass over the rows
        delong = paired_auc_delong(y, a, b)
        if delong is None:
            return None, None, None
        diff, se = delong
        return diff, diff - Z95 * se, diff + Z95 * se
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
                       n_boot: int | None = None, seed: int = 0, folds: np.ndarray | None = None) -> PeerComparison:
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
