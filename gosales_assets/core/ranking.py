"""Whitespace (next-best-action) ranking of cross-sell (customer, division) pairs (pure polars/numpy).

Signals per candidate pair (customer does not own the division at the cutoff), all in [0, 1]:

- `p_icp_pct` — per-division percentile of the calibrated `icp_score` (= `p_icp`) over the division's
  candidate pairs: average rank / n, where pairs with equal `p_icp` are ordered by the other blend signals
  (`PCT_TIE_BREAK`: lift_norm, then als_norm, then EV_norm; the model gives no reason to prefer either pair,
  the affinity and value evidence does). Only pairs equal on all of these share a value (their average
  rank), so the best pair gets 1.0 and the values are uniform on (0, 1] up to genuine ties. Without the
  tie-break, calibration steps (isotonic, small trees) tie hundreds of pairs and the distribution is far
  from uniform.
- `lift_norm` — market-basket affinity. Raw `lift` = the highest lift of the PASSING rules
  (support >= min_support and confidence >= min_confidence; `core.basket.basket_lift_signals`) from any
  division the customer owns into the target (0 when none). Normalisation, per division, zero-anchored
  max scaling of the EXCESS lift: `max(lift - 1, 0) / max over the division's candidates of the same`.
  Why not percentiles: lift is zero-inflated with a handful of distinct values (one per owned division),
  and a percentile would hand every "no rule" pair a positive value. Why excess lift: lift <= 1 means
  "no more likely than the base rate", which is not affinity and must not be cited as such. 0 = no
  passing positive-affinity rule; 1 = the division's strongest affinity. `top_affinity_division` names
  the owned division behind the raw lift (ties: alphabetical).
- `als_norm` — ALS similarity (cosine of the customer vector and the division vector): per-division
  average-rank percentile among the COVERED candidates (`als_coverage` True), 0 where not covered
  (customers too new/thin for ALS or absent from the ALS frame). Percentiles because the raw cosine's
  scale differs between divisions and fits.
- `EV_norm` — expected-value proxy (see `expected_value`): shrunk segment median revenue / division cap.

Coverage-aware weights (`effective_weights`), per division, coverage = share of the division's candidate
pairs where the signal is present (lift: `lift_norm > 0`; ALS: `als_coverage`; EV: `EV > 0`, i.e. the
division has EV history). factor = 0 when coverage is 0 (signal missing), coverage / threshold when
coverage is below its threshold (proportional shrink: `lift_min_coverage`, `als_min_coverage`; EV has
threshold 0, so it is all or nothing), else 1. Effective weights = configured x factor, renormalized to
sum 1; `p_icp` always has factor 1. If all effective weights are 0, p_icp takes weight 1 (noted).

score = w_p_icp * p_icp_pct + w_lift * lift_norm + w_als * als_norm + w_ev * EV_norm

Deterministic order: score desc, p_icp desc, EV desc, last_activity_date desc (nulls last),
customer_id asc, division asc. `rank` is the 1-based global position in that order, `rank_in_division`
the position within the division.

Eligibility gates run AFTER scoring (`apply_eligibility`); ranks are not recomputed (gaps show removed
rows). Capacity selection (`select_capacity`) works on the gated frame in rank order.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from gosales_assets.core.basket import basket_lift_signals
from gosales_assets.core.calendar import add_months
from gosales_assets.core.checksum import from_cents, to_cents
from gosales_assets.core.explain import FALLBACK_REASON, guard_reasons, nba_reason
from gosales_assets.settings import WhitespaceSettings, WhitespaceWeights

__all__ = [
    "SIGNAL_KEYS",
    "WEIGHT_COLUMNS",
    "RANKED_COLUMNS",
    "ELIGIBILITY_RULES",
    "UNASSIGNED_REP",
    "WhitespaceResult",
    "ChallengerModel",
    "candidates",
    "percentile_within_division",
    "percentile_uniformity",
    "affinity_signals",
    "normalize_lift",
    "normalize_als",
    "ev_division_stats",
    "expected_value",
    "signal_coverage",
    "effective_weights",
    "apply_weights",
    "sort_ranked",
    "rank_whitespace",
    "apply_eligibility",
    "capacity_count",
    "division_cap",
    "select_capacity",
    "capacity_summary",
    "capacity_grid",
    "capture_at_k",
    "jaccard_top_n",
    "stability",
    "fit_challenger",
    "score_challenger",
    "legacy_heuristic",
    "shadow_report",
]

_logger = logging.getLogger(__name__)

SIGNAL_KEYS = ("p_icp", "lift", "als", "ev")
WEIGHT_COLUMNS = {"p_icp": "w_p_icp", "lift": "w_lift", "als": "w_als", "ev": "w_ev"}
NORM_COLUMNS = {"p_icp": "p_icp_pct", "lift": "lift_norm", "als": "als_norm", "ev": "EV_norm"}
UNASSIGNED_REP = "unassigned"
UNKNOWN_SEGMENT = "__unknown__"
SEGMENT_COLUMNS = ("industry", "employee_band")
CUSTOMER_ATTRS: dict[str, pl.DataType] = {
    "customer_name": pl.String,
    "industry": pl.String,
    "employee_band": pl.String,
    "region": pl.String,
    "territory": pl.String,
    "rep_id": pl.String,
    "last_activity_date": pl.Date,
}
RANKED_COLUMNS = [
    "rank", "rank_in_division", "division", "customer_id", "score",
    "p_icp", "p_icp_pct", "lift", "lift_norm", "top_affinity_division",
    "als_similarity", "als_coverage", "als_norm", "EV", "EV_norm",
    "w_p_icp", "w_lift", "w_als", "w_ev", "nba_reason",
    *CUSTOMER_ATTRS,
]  # fmt: skip
ELIGIBILITY_RULES = ("region_allow", "territory_allow", "do_not_contact", "open_deals")
_KEYS = ["customer_id", "division"]
_EPS = 1e-12
PCT_TIE_BREAK = ("lift_norm", "als_norm", "EV_norm")


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------
def _require(frame: pl.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing!r}; has {frame.columns!r}")


def _keys_str(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String))


def _weights_dict(weights: WhitespaceWeights | Mapping[str, float]) -> dict[str, float]:
    if isinstance(weights, WhitespaceWeights):
        w = weights.model_dump()
    else:
        w = dict(weights)
    missing = [k for k in SIGNAL_KEYS if k not in w]
    if missing:
        raise ValueError(f"weights lack {missing!r}")
    out = {k: float(w[k]) for k in SIGNAL_KEYS}
    if any(v < 0 for v in out.values()):
        raise ValueError(f"weights must be >= 0, got {out!r}")
    return out


def _f(x: Any) -> float | None:
    """JSON-able float (None for null/NaN)."""
    if x is None:
        return None
    v = float(x)
    return None if math.isnan(v) else v


# ---------------------------------------------------------------------------------------------------
# candidates and signals
# ---------------------------------------------------------------------------------------------------
def candidates(icp_scores: pl.DataFrame, owned: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows of `icp_scores` whose (customer_id, division) is NOT in `owned`; all columns kept,
    sorted by division, customer_id. Duplicate pairs in `icp_scores` are an error."""
    _require(icp_scores, ["customer_id", "division", "icp_score"], "icp_scores")
    scores = _keys_str(icp_scores)
    if scores.select(pl.struct(_KEYS).is_duplicated().any()).item():
        raise ValueError("icp_scores has duplicate (customer_id, division) pairs")
    if owned is not None and owned.height:
        _require(owned, _KEYS, "owned")
        own = _keys_str(owned.select(_KEYS)).unique()
        scores = scores.join(own, on=_KEYS, how="anti")
    return scores.sort("division", "customer_id")


def percentile_within_division(
    scores: pl.DataFrame, col: str | None = None, out: str = "p_icp_pct", by: str = "division",
    tie_break: Sequence[str] = (),
) -> pl.DataFrame:
    """Add `out` = average rank within `by` / group size, in (0, 1], ranking by `col` and, among equal
    `col` values, by the `tie_break` columns in order (all ascending; null lowest). Rows equal on `col` and
    every tie-break column share their average rank. Row order is kept.
    `col` defaults to `p_icp`, or `icp_score` when the frame has no `p_icp` (an icp_scores frame)."""
    if col is None:
        col = "p_icp" if "p_icp" in scores.columns else "icp_score"
    keys = [col, *tie_break]
    _require(scores, [by, *keys], "scores")
    if scores.get_column(col).null_count():
        raise ValueError(f"column {col!r} has nulls; percentiles need a score for every row")
    tmp = [f"_k{i}" for i in range(len(keys))]
    ranked = (
        scores.select(pl.col(by), *(pl.col(k).alias(t) for k, t in zip(keys, tmp, strict=True)))
        .with_row_index("_row")
        .sort([by, *tmp], nulls_last=False, maintain_order=True)
        .with_columns(pl.int_range(1, pl.len() + 1).over(by).cast(pl.Float64).alias("_pos"))
        .with_columns((pl.col("_pos").mean().over([by, *tmp]) / pl.len().over(by).cast(pl.Float64)).alias(out))
        .sort("_row")
    )
    return scores.with_columns(ranked.get_column(out))


def percentile_uniformity(frame: pl.DataFrame, col: str = "p_icp_pct", by: str = "division") -> pl.DataFrame:
    """Per division: n, mean and the Kolmogorov-Smirnov distance `max_deviation` between the empirical
    distribution of `col` and U(0, 1). Distinct scores give exactly 1/n; ties (many equal scores) raise it.
    For the asset check "per-division percentile distribution approximately uniform"."""
    schema = {by: pl.String, "n": pl.Int64, "mean": pl.Float64, "max_deviation": pl.Float64}
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    i = pl.int_range(1, pl.len() + 1).over(by).cast(pl.Float64)
    n = pl.len().over(by).cast(pl.Float64)
    x = pl.col(col).cast(pl.Float64)
    return (
        frame.select(pl.col(by).cast(pl.String), x.alias("_x"))
        .sort(by, "_x")
        .with_columns(pl.max_horizontal(i / n - pl.col("_x"), pl.col("_x") - (i - 1.0) / n).alias("_d"))
        .group_by(by)
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("_x").mean().alias("mean"),
            pl.col("_d").max().alias("max_deviation"),
        )
        .sort(by)
        .cast(schema)  # type: ignore[arg-type]
    )


def affinity_signals(
    pairs: pl.DataFrame, rules: pl.DataFrame | None, portfolios: pl.DataFrame | None
) -> pl.DataFrame:
    """Per (customer_id, division) of `pairs`: `lift` (max passing-rule lift from an owned division into
    the target, via `basket_lift_signals`; 0 when none), `n_rules` and `top_affinity_division` (the owned
    antecedent with that lift; ties alphabetical; null when no passing rule). Row order of `pairs`."""
    base = _keys_str(pairs.select(_KEYS))
    empty = base.with_columns(
        pl.lit(0.0).alias("lift"), pl.lit(0, dtype=pl.Int64).alias("n_rules"),
        pl.lit(None, dtype=pl.String).alias("top_affinity_division"),
    )  # fmt: skip
    if rules is None or rules.height == 0 or portfolios is None or portfolios.height == 0 or base.height == 0:
        return empty
    port = _keys_str(portfolios.select(_KEYS)).unique().sort(_KEYS)
    known = set(rules.get_column("consequent").cast(pl.String).unique().to_list())
    parts = []
    for d in sorted(set(base.get_column("division").to_list())):
        if d not in known:
            continue
        sig = basket_lift_signals(port, rules, d)
        parts.append(sig.select("customer_id", pl.lit(d).alias("division"), pl.col("max_lift").alias("lift"),
                                pl.col("n_rules").cast(pl.Int64)))  # fmt: skip
    if not parts:
        return empty
    lifts = pl.concat(parts)
    passing = rules.filter(pl.col("passes_thresholds")).select(
        pl.col("antecedent").cast(pl.String), pl.col("consequent").cast(pl.String), pl.col("lift").cast(pl.Float64)
    )
    top = (
        port.rename({"division": "antecedent"})
        .join(passing, on="antecedent", how="inner")
        .filter(pl.col("antecedent") != pl.col("consequent"))
        .sort(["customer_id", "consequent", "lift", "antecedent"], descending=[False, False, True, False])
        .unique(subset=["customer_id", "consequent"], keep="first", maintain_order=True)
        .select("customer_id", pl.col("consequent").alias("division"),
                pl.col("antecedent").alias("top_affinity_division"))  # fmt: skip
    )
    return (
        base.join(lifts, on=_KEYS, how="left", maintain_order="left")
        .join(top, on=_KEYS, how="left", maintain_order="left")
        .with_columns(pl.col("lift").fill_null(0.0), pl.col("n_rules").fill_null(0))
        .with_columns(
            pl.when(pl.col("n_rules") > 0)
            .then(pl.col("top_affinity_division"))
            .otherwise(None)
            .alias("top_affinity_division")
        )
    )


def normalize_lift(frame: pl.DataFrame, col: str = "lift", out: str = "lift_norm") -> pl.DataFrame:
    """`out` = max(lift - 1, 0) / per-division max of the same (0 when the division's max is 0)."""
    excess = (pl.col(col).cast(pl.Float64).fill_null(0.0) - 1.0).clip(lower_bound=0.0)
    scale = excess.max().over("division")
    return frame.with_columns(pl.when(scale > 0).then(excess / scale).otherwise(0.0).alias(out))


def normalize_als(
    frame: pl.DataFrame, col: str = "als_similarity", coverage_col: str = "als_coverage", out: str = "als_norm"
) -> pl.DataFrame:
    """`out` = per-division average-rank percentile of `col` among covered rows; 0 where not covered."""
    cov = pl.col(coverage_col).fill_null(False)
    pct = pl.col(col).fill_null(0.0).rank("average").over(["division", coverage_col]).cast(pl.Float64) / pl.len().over(
        ["division", coverage_col]
    ).cast(pl.Float64)
    return frame.with_columns(pl.when(cov).then(pct).otherwise(0.0).alias(out))


def _customer_division_revenue(ev_history: pl.DataFrame) -> pl.DataFrame:
    """Net revenue per (customer, division, segment) summed in exact cents; only positive totals."""
    _require(ev_history, ["customer_id", "division", "revenue"], "ev_history")
    seg = [pl.col(c).cast(pl.String).fill_null(UNKNOWN_SEGMENT).alias(c) if c in ev_history.columns
           else pl.lit(UNKNOWN_SEGMENT).alias(c) for c in SEGMENT_COLUMNS]  # fmt: skip
    return (
        ev_history.select(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String), *seg,
                          pl.col("revenue"))  # fmt: skip
        .group_by("customer_id", "division", *SEGMENT_COLUMNS)
        .agg(to_cents(pl.col("revenue")).sum().alias("cents"))
        .filter(pl.col("cents") > 0)
        .with_columns(from_cents(pl.col("cents")).alias("revenue"))
        .drop("cents")
        .sort("division", "customer_id", *SEGMENT_COLUMNS)
    )


def ev_division_stats(ev_history: pl.DataFrame | None, cap_quantile: float) -> pl.DataFrame:
    """Per division with history: n_buyers, global_median and cap (linear `cap_quantile` quantile) of
    customer-level positive net revenue. Sorted by division."""
    schema = {"division": pl.String, "n_buyers": pl.Int64, "global_median": pl.Float64, "cap": pl.Float64}
    if ev_history is None or ev_history.height == 0:
        return pl.DataFrame(schema=schema)
    cust = _customer_division_revenue(ev_history)
    per_cust = cust.group_by("customer_id", "division").agg(pl.col("revenue").sum())
    return (
        per_cust.group_by("division")
        .agg(
            pl.len().cast(pl.Int64).alias("n_buyers"),
            pl.col("revenue").median().alias("global_median"),
            pl.col("revenue").quantile(cap_quantile, interpolation="linear").alias("cap"),
        )
        .sort("division")
        .cast(schema)  # type: ignore[arg-type]
    )


def expected_value(
    ev_history: pl.DataFrame | None,
    candidates_with_segments: pl.DataFrame,
    k: float,
    cap_quantile: float,
) -> pl.DataFrame:
    """Add `ev_segment_n`, `EV` and `EV_norm` to `candidates_with_segments` (keeps its rows and order).

    `ev_history`: pre-cutoff purchases `customer_id, division, revenue` plus optional segment columns
    `industry, employee_band` — one row per purchase event OR per customer x division: rows are first
    summed per (customer, division) in exact cents, and only customers with a positive net total count
    as buyers (returns net out). Segments with null values form an "unknown" segment.

    Per division d (buyers only): global median G, cap = `cap_quantile` quantile (linear) of the
    customer-level revenue. Per segment s = (industry, employee_band): n buyers, median M.
    EV = min((n*M + k*G) / (n + k), cap) (G when n + k = 0 or the segment has no buyers);
    EV_norm = EV / cap. Divisions without history: EV = EV_norm = 0.
    """
    cand = candidates_with_segments
    _require(cand, ["division"], "candidates_with_segments")
    seg_exprs = [pl.col(c).cast(pl.String).fill_null(UNKNOWN_SEGMENT).alias(f"_seg_{c}") if c in cand.columns
                 else pl.lit(UNKNOWN_SEGMENT).alias(f"_seg_{c}") for c in SEGMENT_COLUMNS]  # fmt: skip
    work = cand.with_columns(pl.col("division").cast(pl.String).alias("_div"), *seg_exprs)
    stats = ev_division_stats(ev_history, cap_quantile)
    if stats.height:
        cust = _customer_division_revenue(ev_history)  # type: ignore[arg-type]
        seg = (
            cust.group_by("division", *SEGMENT_COLUMNS)
            .agg(pl.len().cast(pl.Int64).alias("_n"), pl.col("revenue").median().alias("_m"))
            .rename({"division": "_div", **{c: f"_seg_{c}" for c in SEGMENT_COLUMNS}})
        )
        work = work.join(seg, on=["_div", *[f"_seg_{c}" for c in SEGMENT_COLUMNS]], how="left", maintain_order="left")
    else:
        work = work.with_columns(pl.lit(None, dtype=pl.Int64).alias("_n"), pl.lit(None, dtype=pl.Float64).alias("_m"))
    work = work.join(
        stats.select(pl.col("division").alias("_div"), pl.col("global_median").alias("_g"),
                     pl.col("cap").alias("_cap")),
        on="_div", how="left", maintain_order="left",
    )  # fmt: skip
    n = pl.col("_n").fill_null(0).cast(pl.Float64)
    m = pl.col("_m").fill_null(0.0)
    g = pl.col("_g")
    kk = float(k)
    shrunk = pl.when(n + kk > 0).then((n * m + kk * g) / (n + kk)).otherwise(g)
    ev = pl.when(g.is_null()).then(0.0).otherwise(pl.min_horizontal(shrunk, pl.col("_cap")))
    work = work.with_columns(pl.col("_n").fill_null(0).alias("ev_segment_n"), ev.alias("EV")).with_columns(
        pl.when(pl.col("_cap") > 0).then(pl.col("EV") / pl.col("_cap")).otherwise(0.0).alias("EV_norm")
    )
    drop = ["_div", "_n", "_m", "_g", "_cap", *[f"_seg_{c}" for c in SEGMENT_COLUMNS]]
    return work.drop(drop)


def signal_coverage(signals: pl.DataFrame, divisions: Sequence[str] | None = None) -> pl.DataFrame:
    """Per division: n_candidates and the share of candidate rows where each optional signal is present
    (lift_coverage: lift_norm > 0; als_coverage: als_coverage True; ev_coverage: EV > 0).
    Divisions listed in `divisions` without candidates get n_candidates 0 and coverage 0."""
    schema = {"division": pl.String, "n_candidates": pl.Int64, "lift_coverage": pl.Float64,
              "als_coverage": pl.Float64, "ev_coverage": pl.Float64}  # fmt: skip
    if signals.height:
        cov = (
            signals.group_by("division")
            .agg(
                pl.len().cast(pl.Int64).alias("n_candidates"),
                (pl.col("lift_norm") > 0).mean().cast(pl.Float64).alias("lift_coverage"),
                pl.col("als_coverage").fill_null(False).mean().cast(pl.Float64).alias("als_coverage"),
                (pl.col("EV") > 0).mean().cast(pl.Float64).alias("ev_coverage"),
            )
            .cast(schema)  # type: ignore[arg-type]
        )
    else:
        cov = pl.DataFrame(schema=schema)
    if divisions is not None:
        extra = [d for d in divisions if d not in set(cov.get_column("division").to_list())]
        if extra:
            cov = pl.concat([cov, pl.DataFrame({"division": extra, "n_candidates": [0] * len(extra),
                                                "lift_coverage": [0.0] * len(extra), "als_coverage": [0.0] * len(extra),
                                                "ev_coverage": [0.0] * len(extra)}, schema=schema)])  # fmt: skip
    return cov.sort("division")


def _factor(coverage: float, threshold: float) -> float:
    if coverage <= 0.0:
        return 0.0
    if threshold > 0.0 and coverage < threshold:
        return coverage / threshold
    return 1.0


def effective_weights(
    weights: WhitespaceWeights | Mapping[str, float],
    coverage_by_division: pl.DataFrame,
    als_min_coverage: float,
    lift_min_coverage: float,
    ev_min_coverage: float = 0.0,
) -> pl.DataFrame:
    """Coverage-aware weights per division (see module docstring for the rule).

    `coverage_by_division`: `division, lift_coverage, als_coverage, ev_coverage` (shares in [0, 1]; a
    missing column counts as full coverage). Returns `division, w_p_icp, w_lift, w_als, w_ev, adjusted,
    note, lift_coverage, als_coverage, ev_coverage` sorted by division; weights sum to 1 per row.
    """
    w = _weights_dict(weights)
    thresholds = {"lift": float(lift_min_coverage), "als": float(als_min_coverage), "ev": float(ev_min_coverage)}
    rows = []
    for rec in coverage_by_division.sort("division").iter_rows(named=True):
        # absent column -> full coverage; null value -> no coverage
        cov = {s: float(rec.get(f"{s}_coverage", 1.0) or 0.0) for s in ("lift", "als", "ev")}
        factor = {"p_icp": 1.0, **{s: _factor(cov[s], thresholds[s]) for s in ("lift", "als", "ev")}}
        raw = {s: w[s] * factor[s] for s in SIGNAL_KEYS}
        notes = []
        for s in ("lift", "als", "ev"):
            if w[s] > 0 and factor[s] == 0.0:
                notes.append(f"{s} missing (coverage 0): weight 0")
            elif w[s] > 0 and factor[s] < 1.0:
                notes.append(f"{s} coverage {cov[s]:.3f} < {thresholds[s]:.3f}: weight x{factor[s]:.3f}")
        total = sum(raw.values())
        if total <= 0.0:
            eff = {"p_icp": 1.0, "lift": 0.0, "als": 0.0, "ev": 0.0}
            notes.append("no signal left with weight > 0: p_icp takes weight 1")
        else:
            eff = {s: raw[s] / total for s in SIGNAL_KEYS}
        adjusted = any(abs(eff[s] - w[s]) > 1e-12 for s in SIGNAL_KEYS)
        if adjusted and total > 0.0:
            notes.append("renormalized to sum 1")
        rows.append({"division": rec["division"], **{WEIGHT_COLUMNS[s]: eff[s] for s in SIGNAL_KEYS},
                     "adjusted": adjusted, "note": "; ".join(notes),
                     **{f"{s}_coverage": cov[s] for s in ("lift", "als", "ev")}})  # fmt: skip
    schema = {"division": pl.String, "w_p_icp": pl.Float64, "w_lift": pl.Float64, "w_als": pl.Float64,
              "w_ev": pl.Float64, "adjusted": pl.Boolean, "note": pl.String, "lift_coverage": pl.Float64,
              "als_coverage": pl.Float64, "ev_coverage": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def apply_weights(signals: pl.DataFrame, weights_by_division: pl.DataFrame) -> pl.DataFrame:
    """Join the per-division effective weights and compute `score` (divisions without a weight row -> error)."""
    wcols = list(WEIGHT_COLUMNS.values())
    out = signals.drop([c for c in wcols if c in signals.columns]).join(
        weights_by_division.select("division", *wcols), on="division", how="left", maintain_order="left"
    )
    if out.height and out.get_column("w_p_icp").null_count():
        missing = out.filter(pl.col("w_p_icp").is_null()).get_column("division").unique().sort().to_list()
        raise ValueError(f"no weights for division(s) {missing!r}")
    score = sum(pl.col(WEIGHT_COLUMNS[s]) * pl.col(NORM_COLUMNS[s]) for s in SIGNAL_KEYS)
    return out.with_columns(score.alias("score"))


def sort_ranked(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort by the tie-breaker chain: score desc, p_icp desc, EV desc, last_activity_date desc (nulls
    last), customer_id asc, division asc."""
    f = frame
    if "last_activity_date" not in f.columns:
        f = f.with_columns(pl.lit(None, dtype=pl.Date).alias("last_activity_date"))
    by = ["score", "p_icp", "EV", "last_activity_date", "customer_id", "division"]
    out = f.sort(by, descending=[True, True, True, True, False, False], nulls_last=True, maintain_order=True)
    return out if "last_activity_date" in frame.columns else out.drop("last_activity_date")


# ---------------------------------------------------------------------------------------------------
# the ranker
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WhitespaceResult:
    ranked: pl.DataFrame  # RANKED_COLUMNS (+ bought_in_division, + extra icp_scores columns), in rank order
    weights: pl.DataFrame  # effective_weights output, one row per division
    coverage: pl.DataFrame  # signal_coverage output
    ev_stats: pl.DataFrame  # ev_division_stats output
    decision_log: list[dict] = field(default_factory=list)  # JSON-able events
    reason_violations: list[dict] = field(default_factory=list)  # guard_reasons output (rows replaced)


def _customer_attrs(customers: pl.DataFrame | None) -> pl.DataFrame:
    schema = {"customer_id": pl.String, **CUSTOMER_ATTRS}
    if customers is None:
        return pl.DataFrame(schema=schema)
    _require(customers, ["customer_id"], "customers")
    cols = [pl.col("customer_id").cast(pl.String)]
    for c, t in CUSTOMER_ATTRS.items():
        cols.append(pl.col(c).cast(t) if c in customers.columns else pl.lit(None, dtype=t).alias(c))
    return customers.select(cols).sort("customer_id").unique(subset="customer_id", keep="first", maintain_order=True)


def rank_whitespace(
    icp_scores: pl.DataFrame,
    owned: pl.DataFrame | None = None,
    *,
    settings: WhitespaceSettings | None = None,
    rules: pl.DataFrame | None = None,
    portfolios: pl.DataFrame | None = None,
    als: pl.DataFrame | None = None,
    ev_history: pl.DataFrame | None = None,
    customers: pl.DataFrame | None = None,
    divisions: Sequence[str] | None = None,
) -> WhitespaceResult:
    """Score, rank and explain all candidate pairs of one cutoff.

    - `icp_scores`: customer_id, division, icp_score [, bought_in_division, other columns carried through]
    - `owned`: (customer_id, division) owned at the cutoff -> excluded; also the basket portfolios when
      `portfolios` is None.
    - `rules` + `portfolios`: market-basket rules and (customer_id, division) owned -> lift signal.
      `rules=None` (or empty) -> lift missing everywhere.
    - `als`: customer_id, division, als_similarity, als_coverage; None -> ALS missing everywhere.
    - `ev_history`: see `expected_value`; None -> EV missing everywhere.
    - `customers`: attributes (segments for EV; region/territory/rep for gating and capacity; activity
      date for tie-breaks). None -> null attributes.
    - `divisions`: configured divisions, so that weights/coverage are reported for all of them.
    """
    s = settings or WhitespaceSettings()
    decision_log: list[dict] = []
    cand = candidates(icp_scores, owned).rename({"icp_score": "p_icp"})
    cand = cand.with_columns(pl.col("p_icp").cast(pl.Float64))
    attrs = _customer_attrs(customers)
    from_customers = [c for c in CUSTOMER_ATTRS if customers is not None and c in customers.columns]
    cand = cand.drop([c for c in from_customers if c in cand.columns])
    keep_from_icp = [c for c in CUSTOMER_ATTRS if c in cand.columns]
    cand = cand.join(attrs.drop(keep_from_icp), on="customer_id", how="left", maintain_order="left")

    # lift
    ports = portfolios if portfolios is not None else owned
    aff = affinity_signals(cand.select(_KEYS), rules, ports)
    cand = cand.join(aff, on=_KEYS, how="left", maintain_order="left")
    cand = normalize_lift(cand)
    lift_scale = (
        cand.group_by("division")
        .agg(((pl.col("lift") - 1.0).clip(lower_bound=0.0)).max().alias("max_excess_lift"))
        .sort("division")
    )
    decision_log.append({
        "event": "normalization", "signal": "lift_norm",
        "method": "max passing-rule lift from an owned division; per division max(lift-1,0)/max over candidates",
        "rules_available": bool(rules is not None and rules.height),
        "scale_by_division": {d: _f(v) for d, v in lift_scale.iter_rows()},
    })  # fmt: skip

    # ALS
    if als is not None and als.height:
        _require(als, ["customer_id", "division", "als_similarity", "als_coverage"], "als")
        a = _keys_str(als.select(_KEYS + ["als_similarity", "als_coverage"]))
        cand = cand.join(a, on=_KEYS, how="left", maintain_order="left")
    else:
        cand = cand.with_columns(pl.lit(None, dtype=pl.Float64).alias("als_similarity"),
                                 pl.lit(None, dtype=pl.Boolean).alias("als_coverage"))  # fmt: skip
    cand = cand.with_columns(
        pl.col("als_similarity").cast(pl.Float64).fill_null(0.0),
        pl.col("als_coverage").cast(pl.Boolean).fill_null(False),
    )
    cand = normalize_als(cand)
    decision_log.append({"event": "normalization", "signal": "als_norm",
                         "method": "average-rank percentile of als_similarity within division among covered "
                                   "candidates; 0 where not covered",
                         "als_available": bool(als is not None and als.height)})  # fmt: skip

    # EV
    ev_stats = ev_division_stats(ev_history, s.ev_cap_quantile)
    cand = expected_value(ev_history, cand, s.ev_shrinkage_k, s.ev_cap_quantile)
    for d, n_buyers, gmed, cap in ev_stats.iter_rows():
        decision_log.append({"event": "expected_value", "division": d, "n_buyers": int(n_buyers),
                             "global_median": _f(gmed), "cap": _f(cap), "k": float(s.ev_shrinkage_k),
                             "cap_quantile": float(s.ev_cap_quantile)})  # fmt: skip

    # p_icp percentile (after the other signals: they break ties in p_icp)
    cand = percentile_within_division(cand, "p_icp", "p_icp_pct", tie_break=PCT_TIE_BREAK)
    decision_log.append({"event": "normalization", "signal": "p_icp_pct",
                         "method": "average-rank percentile of icp_score within division over candidate pairs "
                                   f"(rank_avg / n); ties in icp_score ordered by {', '.join(PCT_TIE_BREAK)}"})

    # coverage-aware weights and score
    divs = list(divisions) if divisions is not None else None
    coverage = signal_coverage(cand, divs)
    weights = effective_weights(s.weights, coverage, s.als_min_coverage, s.lift_min_coverage)
    configured = _weights_dict(s.weights)
    for rec in weights.iter_rows(named=True):
        decision_log.append({
            "event": "weights", "division": rec["division"], "adjusted": bool(rec["adjusted"]), "note": rec["note"],
            "configured": configured, "effective": {k: _f(rec[WEIGHT_COLUMNS[k]]) for k in SIGNAL_KEYS},
            "coverage": {k: _f(rec[f"{k}_coverage"]) for k in ("lift", "als", "ev")},
        })  # fmt: skip
    cand = apply_weights(cand, weights)

    # order, ranks
    ranked = sort_ranked(cand).with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))
    ranked = ranked.with_columns(
        pl.col("rank").rank("ordinal").over("division").cast(pl.Int64).alias("rank_in_division")
    )

    # reasons
    reasons = nba_reason(ranked, s.reason_max_chars)
    reasons, violations = guard_reasons(reasons, s.forbidden_tokens, s.reason_max_chars)
    ranked = ranked.with_columns(reasons.alias("nba_reason"))
    if violations:
        rows = sorted({v["row"] for v in violations})
        keys = dict(zip(rows, ranked.select(_KEYS)[rows].iter_rows()))
        for v in violations:
            c, d = keys[v["row"]]
            decision_log.append({"event": "reason_replaced", "customer_id": c, "division": d, "kind": v["kind"],
                                 "token": v["token"], "fallback": FALLBACK_REASON})  # fmt: skip

    extra = [c for c in ranked.columns if c not in RANKED_COLUMNS and c not in ("bought_in_division", "ev_segment_n",
                                                                                  "n_rules")]  # fmt: skip
    tail = [c for c in ("bought_in_division",) if c in ranked.columns]
    ranked = ranked.select(RANKED_COLUMNS + tail + extra)
    return WhitespaceResult(
        ranked=ranked, weights=weights, coverage=coverage, ev_stats=ev_stats,
        decision_log=decision_log, reason_violations=violations,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# eligibility gates (after scoring)
# ---------------------------------------------------------------------------------------------------
def apply_eligibility(
    ranked: pl.DataFrame,
    region_allow: Sequence[str] | None = None,
    territory_allow: Sequence[str] | None = None,
    do_not_contact: Iterable[str] | None = None,
    open_deals: pl.DataFrame | None = None,
    *,
    log: list[dict] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the rules in the fixed order `ELIGIBILITY_RULES`; a row is removed by the FIRST rule it
    fails. None = no rule; an empty allow-list allows nothing (literal). Null region/territory fail an
    active allow-list. `open_deals` (customer_id, division): a null division excludes all divisions of
    the customer.

    Returns (kept rows in the input order, counts) with counts = `order, rule, active, evaluated,
    removed, kept`. When `log` is a list, one dict per removed row and one summary per rule are appended.
    """
    kept = ranked
    counts = []
    for i, rule in enumerate(ELIGIBILITY_RULES, start=1):
        evaluated = kept.height
        mask: pl.Series | None = None
        if rule == "region_allow" and region_allow is not None:
            allow = pl.Series(list(region_allow), dtype=pl.String)
            mask = kept.select(~pl.col("region").cast(pl.String).is_in(allow.implode()).fill_null(False)).to_series()
        elif rule == "territory_allow" and territory_allow is not None:
            allow = pl.Series(list(territory_allow), dtype=pl.String)
            mask = kept.select(~pl.col("territory").cast(pl.String).is_in(allow.implode()).fill_null(False)).to_series()
        elif rule == "do_not_contact" and do_not_contact is not None:
            dnc = pl.Series(sorted({str(c) for c in do_not_contact}), dtype=pl.String)
            mask = kept.select(pl.col("customer_id").cast(pl.String).is_in(dnc.implode())).to_series()
        elif rule == "open_deals" and open_deals is not None:
            _require(open_deals, ["customer_id"], "open_deals")
            od = open_deals.select(
                pl.col("customer_id").cast(pl.String),
                (pl.col("division").cast(pl.String) if "division" in open_deals.columns
                 else pl.lit(None, dtype=pl.String)).alias("division"),
            )  # fmt: skip
            all_div = od.filter(pl.col("division").is_null()).get_column("customer_id").unique()
            pairs = od.filter(pl.col("division").is_not_null()).unique()
            idx = kept.select(_KEYS).with_row_index("_i")
            hit = idx.join(pairs, on=_KEYS, how="semi").get_column("_i")
            mask = kept.select(
                pl.col("customer_id").cast(pl.String).is_in(all_div.implode())
                | pl.int_range(pl.len(), dtype=pl.UInt32).is_in(hit.implode())
            ).to_series()
        active = mask is not None
        if mask is not None:
            removed_rows = kept.filter(mask)
            kept = kept.filter(~mask)
            if log is not None:
                cols = [c for c in ("customer_id", "division", "rank") if c in removed_rows.columns]
                for r in removed_rows.select(cols).iter_rows(named=True):
                    log.append({"event": "eligibility_removed", "rule": rule, **r})
            n_removed = removed_rows.height
        else:
            n_removed = 0
        counts.append({"order": i, "rule": rule, "active": active, "evaluated": evaluated,
                       "removed": n_removed, "kept": kept.height})  # fmt: skip
        if active:
            _logger.info("eligibility rule %s removed %d of %d rows", rule, n_removed, evaluated)
        if log is not None:
            log.append({"event": "eligibility", **counts[-1]})
    schema = {"order": pl.Int64, "rule": pl.String, "active": pl.Boolean, "evaluated": pl.Int64,
              "removed": pl.Int64, "kept": pl.Int64}  # fmt: skip
    return kept, pl.DataFrame(counts, schema=schema, orient="row")


# ---------------------------------------------------------------------------------------------------
# capacity
# ---------------------------------------------------------------------------------------------------
def capacity_count(n_rows: int, pct: float) -> int:
    """ceil(pct% of n_rows), robust to float noise (30% of 10 rows = 3)."""
    if n_rows <= 0 or pct <= 0:
        return 0
    return min(n_rows, math.ceil(round(pct * n_rows / 100.0, 9)))


def division_cap(n_selected: int, max_division_share: float) -> int:
    """Most rows one division may take out of `n_selected`: floor(share * N), at least 1."""
    if max_division_share >= 1.0:
        return n_selected
    return max(1, math.floor(max_division_share * n_selected + 1e-9))


def _in_rank_order(frame: pl.DataFrame) -> pl.DataFrame:
    if "rank" in frame.columns:
        return frame.sort("rank", maintain_order=True)
    return sort_ranked(frame)


def select_capacity(
    ranked: pl.DataFrame,
    mode: Literal["top_percent", "per_rep", "hybrid"],
    top_percent: float,
    per_rep_quota: int,
    max_division_share: float,
    *,
    log: list[dict] | None = None,
) -> pl.DataFrame:
    """Rows selected for outreach, with `capacity_rep` (rep_id, or "unassigned" when null/absent) and
    `selection_order` (1..n), sorted by selection_order.

    - `top_percent`: target N = ceil(top_percent% of rows); rows taken in rank order.
    - `per_rep`: each rep's (and the unassigned pool's) best `per_rep_quota` rows in rank order;
      N = sum over reps of min(quota, rep rows).
    - `hybrid`: N = ceil(top_percent% of rows); round-robin over reps (rep order = rank of each rep's
      best row), each turn taking the rep's next best row, until N rows are selected or reps run out.

    Diversification guard (all modes): no division gets more than `division_cap(N, max_division_share)`
    rows; a row of a capped division is skipped and the next best row (of another division) is taken.
    If the other divisions run out, the selection stays SHORT of N rather than break the cap (a
    `capacity_shortfall` event is logged).
    """
    if mode not in ("top_percent", "per_rep", "hybrid"):
        raise ValueError(f"unknown capacity mode {mode!r}")
    ordered = _in_rank_order(ranked)
    rep_expr = (
        pl.col("rep_id").cast(pl.String).fill_null(UNASSIGNED_REP) if "rep_id" in ordered.columns
        else pl.lit(UNASSIGNED_REP)
    )  # fmt: skip
    ordered = ordered.with_columns(rep_expr.alias("capacity_rep"))
    n_rows = ordered.height
    divs = ordered.get_column("division").cast(pl.String).to_list()
    reps = ordered.get_column("capacity_rep").to_list()
    div_index = {d: i for i, d in enumerate(sorted(set(divs)))}
    dcode = np.fromiter((div_index[d] for d in divs), dtype=np.int64, count=n_rows)
    div_count = np.zeros(len(div_index), dtype=np.int64)
    chosen: list[int] = []
    skipped = 0

    if mode == "per_rep":
        rep_rows: dict[str, int] = {}
        for r in reps:
            rep_rows[r] = rep_rows.get(r, 0) + 1
        target = sum(min(per_rep_quota, c) for c in rep_rows.values())
    else:
        target = capacity_count(n_rows, top_percent)
    cap = division_cap(target, max_division_share)

    if mode == "top_percent":
        for i in range(n_rows):
            if len(chosen) >= target:
                break
            if div_count[dcode[i]] >= cap:
                skipped += 1
                continue
            div_count[dcode[i]] += 1
            chosen.append(i)
    elif mode == "per_rep":
        rep_count: dict[str, int] = {}
        for i in range(n_rows):
            if len(chosen) >= target:
                break
            r = reps[i]
            if rep_count.get(r, 0) >= per_rep_quota:
                continue
            if div_count[dcode[i]] >= cap:
                skipped += 1
                continue
            div_count[dcode[i]] += 1
            rep_count[r] = rep_count.get(r, 0) + 1
            chosen.append(i)
    else:  # hybrid
        queues: dict[str, list[int]] = {}
        for i, r in enumerate(reps):
            queues.setdefault(r, []).append(i)  # insertion order = order of each rep's best row
        pos = {r: 0 for r in queues}
        active = list(queues)
        while len(chosen) < target and active:
            still = []
            for r in active:
                if len(chosen) >= target:
                    still.append(r)
                    continue
                q, p = queues[r], pos[r]
                while p < len(q) and div_count[dcode[q[p]]] >= cap:
                    p += 1
                    skipped += 1
                if p < len(q):
                    i = q[p]
                    div_count[dcode[i]] += 1
                    chosen.append(i)
                    p += 1
                pos[r] = p
                if p < len(q):
                    still.append(r)
            active = still

    selected = ordered[chosen] if chosen else ordered.head(0)
    selected = selected.with_columns(pl.int_range(1, selected.height + 1, dtype=pl.Int64).alias("selection_order"))
    event = {"event": "capacity", "mode": mode, "rows": n_rows, "target": target, "selected": selected.height,
             "division_cap": cap, "skipped_for_division_cap": skipped}  # fmt: skip
    if selected.height < target:
        _logger.warning("capacity %s: selected %d of %d rows (division cap %d)", mode, selected.height, target, cap)
    if log is not None:
        log.append(event)
        if selected.height < target:
            log.append({"event": "capacity_shortfall", "mode": mode, "target": target, "selected": selected.height,
                        "reason": f"diversification guard: no division may exceed {cap} rows and the other "
                                  "divisions have no more eligible rows"})  # fmt: skip
    return selected


def capacity_summary(selected: pl.DataFrame) -> pl.DataFrame:
    """Per rep x division: rows, mean_score, expected_buyers (sum p_icp), ev_sum. `rep_id` is
    "unassigned" for the pool without a rep. Sorted by rep_id, division."""
    rep = (
        pl.col("capacity_rep") if "capacity_rep" in selected.columns
        else (pl.col("rep_id").cast(pl.String).fill_null(UNASSIGNED_REP) if "rep_id" in selected.columns
              else pl.lit(UNASSIGNED_REP))
    )  # fmt: skip
    schema = {"rep_id": pl.String, "division": pl.String, "rows": pl.Int64, "mean_score": pl.Float64,
              "expected_buyers": pl.Float64, "ev_sum": pl.Float64}  # fmt: skip
    if selected.height == 0:
        return pl.DataFrame(schema=schema)
    return (
        selected.with_columns(rep.alias("_rep"))
        .sort("_rep", "division", "rank" if "rank" in selected.columns else "customer_id")
        .group_by("_rep", "division", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("rows"),
            pl.col("score").mean().alias("mean_score"),
            pl.col("p_icp").sum().alias("expected_buyers"),
            pl.col("EV").sum().alias("ev_sum"),
        )
        .rename({"_rep": "rep_id"})
        .cast(schema)  # type: ignore[arg-type]
        .sort("rep_id", "division")
    )


def _outcomes_known(frame: pl.DataFrame, outcome_col: str) -> bool:
    if outcome_col not in frame.columns or frame.height == 0:
        return False
    return frame.get_column(outcome_col).null_count() < frame.height


def capacity_grid(
    ranked: pl.DataFrame, pcts: Sequence[float], outcome_col: str = "bought_in_division"
) -> pl.DataFrame:
    """Per capacity %: n_selected (= ceil(pct% of rows)), score_threshold (score of the last selected
    row), expected_buyers (sum p_icp), realized_buyers and capture (share of all realized buyers in the
    selection) when outcomes are known (else null). No diversification here: the plain ranking."""
    ordered = _in_rank_order(ranked)
    known = _outcomes_known(ordered, outcome_col)
    y = ordered.get_column(outcome_col).fill_null(0).cast(pl.Int64).to_numpy() if known else None
    total = int(y.sum()) if y is not None else None
    scores = ordered.get_column("score").to_numpy() if ordered.height else np.array([])
    p = ordered.get_column("p_icp").to_numpy() if ordered.height else np.array([])
    rows = []
    for pct in pcts:
        n = capacity_count(ordered.height, float(pct))
        realized = int(y[:n].sum()) if y is not None else None
        rows.append({
            "capacity_pct": float(pct), "n_selected": n,
            "score_threshold": float(scores[n - 1]) if n > 0 else None,
            "expected_buyers": float(p[:n].sum()) if n > 0 else 0.0,
            "realized_buyers": realized,
            "capture": (realized / total) if (realized is not None and total) else None,
        })  # fmt: skip
    schema = {"capacity_pct": pl.Float64, "n_selected": pl.Int64, "score_threshold": pl.Float64,
              "expected_buyers": pl.Float64, "realized_buyers": pl.Int64, "capture": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


# ---------------------------------------------------------------------------------------------------
# evaluation: capture@K, overlap, stability
# ---------------------------------------------------------------------------------------------------
def _ordered_by(frame: pl.DataFrame, score_col: str | None = None, rank_col: str | None = None) -> pl.DataFrame:
    if score_col is not None:
        return frame.sort([score_col, "customer_id", "division"], descending=[True, False, False], nulls_last=True,
                          maintain_order=True)  # fmt: skip
    if rank_col is not None:
        return frame.sort(rank_col, maintain_order=True)
    if "rank" in frame.columns:
        return frame.sort("rank", maintain_order=True)
    return frame


def capture_at_k(
    ranked: pl.DataFrame,
    outcome_col: str = "bought_in_division",
    k_pct: float = 10.0,
    *,
    score_col: str | None = None,
) -> float | None:
    """Share of all realized buyers (outcome == 1) found in the top ceil(k_pct% of rows).

    Order: by `score_col` desc (ties customer_id, division asc) when given, else by `rank`, else the
    frame's order. None when the outcome column is absent/all null or nobody bought (null outcomes
    otherwise count as 0).
    """
    if not _outcomes_known(ranked, outcome_col):
        return None
    ordered = _ordered_by(ranked, score_col)
    y = ordered.get_column(outcome_col).fill_null(0).cast(pl.Int64).to_numpy()
    total = int(y.sum())
    if total == 0:
        return None
    n = capacity_count(ordered.height, k_pct)
    return float(y[:n].sum()) / total


def _top_pairs(frame: pl.DataFrame, n: int, rank_col: str | None = None) -> set[tuple[str, str]]:
    ordered = _ordered_by(frame, rank_col=rank_col)
    top = ordered.head(n).select(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String))
    return set(top.iter_rows())


def jaccard_top_n(a: pl.DataFrame, b: pl.DataFrame, n: int) -> float:
    """Jaccard similarity of the top-n (customer_id, division) pairs of two rankings (by `rank` when the
    frame has it, else its row order). Two empty lists -> 1.0."""
    sa, sb = _top_pairs(a, n), _top_pairs(b, n)
    union = sa | sb
    return 1.0 if not union else len(sa & sb) / len(union)


def stability(current: pl.DataFrame, previous: pl.DataFrame | None, n: int) -> float | None:
    """Jaccard of the top-n pairs vs the previous cutoff's ranking; None when there is no previous list."""
    if previous is None or previous.height == 0:
        return None
    return jaccard_top_n(current, previous, n)


# ---------------------------------------------------------------------------------------------------
# challenger: logistic meta-learner over the four signals, on REALIZED outcomes only
# ---------------------------------------------------------------------------------------------------
CHALLENGER_FEATURES = ("p_icp_pct", "lift_norm", "als_norm", "EV_norm")
_NOT_A_TARGET = {"score", "score_challenger", "legacy_score", "rank", "p_icp", "icp_score", *CHALLENGER_FEATURES}


@dataclass(frozen=True)
class ChallengerModel:
    estimator: Any  # sklearn LogisticRegression
    features: tuple[str, ...]
    outcome_col: str
    coef: dict[str, float]
    intercept: float
    n_train: int
    n_positive: int
    seed: int
    training_cutoff: dt.date | None

    def to_dict(self) -> dict:
        return {"features": list(self.features), "outcome_col": self.outcome_col, "coef": self.coef,
                "intercept": self.intercept, "n_train": self.n_train, "n_positive": self.n_positive,
                "seed": self.seed,
                "training_cutoff": self.training_cutoff.isoformat() if self.training_cutoff else None}  # fmt: skip


def fit_challenger(
    training_frame: pl.DataFrame,
    seed: int,
    *,
    outcome_col: str = "bought_in_division",
    training_cutoff: dt.date | None = None,
    C: float = 1.0,
) -> ChallengerModel:
    """Fit a logistic regression of the REALIZED outcome on `CHALLENGER_FEATURES`.

    `training_frame` is an earlier cutoff's ranked frame whose label window has closed (the caller picks
    C' with C' + W <= C). Only `outcome_col` is used as the target; it must be a 0/1 outcome column, never
    a score/rank/signal column (ValueError). Rows with a null outcome are dropped; both classes needed.
    """
    from sklearn.linear_model import LogisticRegression

    if outcome_col in _NOT_A_TARGET or outcome_col.startswith("score"):
        raise ValueError(f"{outcome_col!r} is a score or signal, not a realized outcome: the challenger "
                         "learns from realized purchases only")  # fmt: skip
    _require(training_frame, [*CHALLENGER_FEATURES, outcome_col], "training_frame")
    train = training_frame.filter(pl.col(outcome_col).is_not_null())
    y = train.get_column(outcome_col).cast(pl.Int64).to_numpy()
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"{outcome_col!r} must be 0/1")
    if len(np.unique(y)) < 2:
        raise ValueError(f"challenger needs both outcomes in {outcome_col!r}; got {np.unique(y).tolist()!r}")
    X = train.select([pl.col(c).cast(pl.Float64).fill_null(0.0) for c in CHALLENGER_FEATURES]).to_numpy()
    est = LogisticRegression(C=C, max_iter=1000, random_state=seed)
    est.fit(X, y)
    return ChallengerModel(
        estimator=est, features=CHALLENGER_FEATURES, outcome_col=outcome_col,
        coef={f: float(c) for f, c in zip(CHALLENGER_FEATURES, est.coef_[0])}, intercept=float(est.intercept_[0]),
        n_train=int(len(y)), n_positive=int(y.sum()), seed=int(seed), training_cutoff=training_cutoff,
    )  # fmt: skip


def score_challenger(model: ChallengerModel, frame: pl.DataFrame, *, cutoff: dt.date | None = None) -> pl.Series:
    """P(buy) from the challenger for each row of `frame` (Series `score_challenger`, same order).
    Refuses (ValueError) when `cutoff` is given and the model was trained at or after it."""
    if cutoff is not None and model.training_cutoff is not None and model.training_cutoff >= cutoff:
        raise ValueError(f"challenger trained at {model.training_cutoff} cannot score cutoff {cutoff}: "
                         "it must come from an earlier cutoff")  # fmt: skip
    _require(frame, model.features, "frame")
    if frame.height == 0:
        return pl.Series("score_challenger", [], dtype=pl.Float64)
    X = frame.select([pl.col(c).cast(pl.Float64).fill_null(0.0) for c in model.features]).to_numpy()
    return pl.Series("score_challenger", model.estimator.predict_proba(X)[:, 1], dtype=pl.Float64)


# ---------------------------------------------------------------------------------------------------
# shadow mode: legacy heuristic and overlap report
# ---------------------------------------------------------------------------------------------------
def legacy_heuristic(
    candidates_frame: pl.DataFrame,
    customers_revenue: pl.DataFrame,
    recency: pl.DataFrame,
    *,
    half_life_days: float = 180.0,
) -> pl.DataFrame:
    """The legacy list: legacy_score = max(revenue, 0) * 0.5 ** (recency_days / half_life_days).

    `customers_revenue`: customer_id, revenue (total pre-cutoff net revenue); `recency`: customer_id,
    recency_days (days from last purchase to the cutoff). Missing revenue -> 0; missing recency -> score 0.
    The heuristic ignores the division (as the legacy did). Adds `legacy_score` and `legacy_rank`
    (score desc, customer_id asc, division asc) and returns rows in legacy rank order.
    """
    _require(customers_revenue, ["customer_id", "revenue"], "customers_revenue")
    _require(recency, ["customer_id", "recency_days"], "recency")
    rev = customers_revenue.select(
        pl.col("customer_id").cast(pl.String), pl.col("revenue").cast(pl.Float64).alias("legacy_revenue")
    )
    rec = recency.select(
        pl.col("customer_id").cast(pl.String), pl.col("recency_days").cast(pl.Float64).alias("legacy_recency_days")
    )
    base = _keys_str(candidates_frame)
    out = (
        base.join(rev, on="customer_id", how="left", maintain_order="left")
        .join(rec, on="customer_id", how="left", maintain_order="left")
        .with_columns(
            (pl.col("legacy_revenue").fill_null(0.0).clip(lower_bound=0.0)
             * pl.when(pl.col("legacy_recency_days").is_null()).then(0.0)
             .otherwise(pl.lit(0.5).pow(pl.col("legacy_recency_days").clip(lower_bound=0.0) / float(half_life_days))))
            .alias("legacy_score")
        )  # fmt: skip
        .sort(["legacy_score", "customer_id", "division"], descending=[True, False, False], maintain_order=True)
    )
    return out.with_columns(pl.int_range(1, out.height + 1, dtype=pl.Int64).alias("legacy_rank"))


def shadow_report(
    champion: pl.DataFrame,
    legacy: pl.DataFrame,
    n: int,
    *,
    outcome_col: str = "bought_in_division",
) -> dict:
    """Overlap of the champion's top-n (by `rank`) and the legacy top-n (by `legacy_rank`), JSON-able:
    n, sizes, overlap, jaccard, only_champion, only_legacy, division shares of both lists, and when
    outcomes are known (from either frame): total_buyers, champion_buyers, legacy_buyers, wins (buyers
    only in the champion list), losses (buyers only in the legacy list), shared_buyers."""
    a = _top_pairs(champion, n, rank_col="rank" if "rank" in champion.columns else None)
    b = _top_pairs(legacy, n, rank_col="legacy_rank" if "legacy_rank" in legacy.columns else None)
    union = a | b
    report: dict[str, Any] = {
        "n": int(n), "champion_size": len(a), "legacy_size": len(b), "overlap": len(a & b),
        "jaccard": 1.0 if not union else len(a & b) / len(union),
        "only_champion": len(a - b), "only_legacy": len(b - a),
        "division_share_champion": _division_shares(a), "division_share_legacy": _division_shares(b),
    }  # fmt: skip
    outcomes: dict[tuple[str, str], int] = {}
    for f in (legacy, champion):  # champion last: its outcome wins on conflicts (there should be none)
        if _outcomes_known(f, outcome_col):
            for c, d, y in f.select(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String),
                                    pl.col(outcome_col).fill_null(0).cast(pl.Int64)).iter_rows():  # fmt: skip
                outcomes[(c, d)] = int(y)
    report["outcomes_known"] = bool(outcomes)
    if outcomes:
        buyers = {k for k, v in outcomes.items() if v == 1}
        report.update({
            "total_buyers": len(buyers), "champion_buyers": len(a & buyers), "legacy_buyers": len(b & buyers),
            "wins": len((a - b) & buyers), "losses": len((b - a) & buyers), "shared_buyers": len(a & b & buyers),
        })  # fmt: skip
    return report


def _division_shares(pairs: set[tuple[str, str]]) -> dict[str, float]:
    if not pairs:
        return {}
    counts: dict[str, int] = {}
    for _, d in pairs:
        counts[d] = counts.get(d, 0) + 1
    return {d: counts[d] / len(pairs) for d in sorted(counts)}


# ---------------------------------------------------------------------------------------------------
# inputs from the star schema
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WhitespaceInputs:
    owned: pl.DataFrame  # customer_id, division owned at C (net revenue > 0 within the look-back)
    ev_history: pl.DataFrame  # customer_id, division, revenue: purchase lines dated <= C
    customers: pl.DataFrame  # customer_id + CUSTOMER_ATTRS (rep = most recent rep by C, last activity by C)
    customer_revenue: pl.DataFrame  # customer_id, revenue: total net revenue by C (legacy heuristic)
    recency: pl.DataFrame  # customer_id, recency_days at C (legacy heuristic)


def whitespace_inputs(fact: pl.DataFrame, dim_customer: pl.DataFrame, cutoff: dt.date,
                      ownership_lookback_months: int | None = None) -> WhitespaceInputs:
    """Everything the ranker needs from the facts, using only lines dated <= C."""
    hist = fact.filter(pl.col("invoice_date") <= cutoff)
    own_hist = hist if ownership_lookback_months is None else hist.filter(
        pl.col("invoice_date") > add_months(cutoff, -ownership_lookback_months))
    owned = (
        own_hist.group_by("customer_id", "division").agg(from_cents(to_cents(pl.col("revenue")).sum()).alias("net"))
        .filter(pl.col("net") > 0).select("customer_id", "division").sort("customer_id", "division")
    )
    purchases = hist.filter(~pl.col("is_return"))
    last = (
        purchases.sort("invoice_date", "invoice_id", "line_no")
        .group_by("customer_id").agg(pl.col("rep_id").drop_nulls().last().alias("rep_id"),
                                     pl.col("invoice_date").max().alias("last_activity_date"))
    )
    customers = dim_customer.join(last, on="customer_id", how="left").select("customer_id", *CUSTOMER_ATTRS)
    revenue = hist.group_by("customer_id").agg(from_cents(to_cents(pl.col("revenue")).sum()).alias("revenue"))
    recency = last.select("customer_id", (pl.lit(cutoff) - pl.col("last_activity_date")).dt.total_days()
                          .alias("recency_days"))
    return WhitespaceInputs(owned=owned, ev_history=purchases.select("customer_id", "division", "revenue"),
                            customers=customers.sort("customer_id"), customer_revenue=revenue.sort("customer_id"),
                            recency=recency.sort("customer_id"))
