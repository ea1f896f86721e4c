"""Whitespace (next-best-action) ranking of cross-sell (customer, division) pairs (pure polars/numpy).

The signals per candidate pair (`p_icp_pct`, `lift_norm`, `als_norm`, `EV_norm`, all in [0, 1]) are defined in
`core.whitespace_signals`; this module weighs them, ranks the pairs and explains each one.

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

What follows the ranking lives in its own module: eligibility gates (`core.eligibility`), capacity selection and
the capacity grid (`core.capacity`), capture@K / stability / the challenger / the legacy shadow
(`core.ranking_evaluation`), the inputs from the star schema (`core.whitespace_inputs`), and the assembly of one
cutoff's list with its metrics and files (`core.whitespace`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from gosales_assets.core.explain import FALLBACK_REASON, guard_reasons, nba_reason
from gosales_assets.core.pair_frames import PAIR_KEYS, keys_as_str, require_columns
from gosales_assets.core.whitespace_signals import (
    PCT_TIE_BREAK,
    affinity_signals,
    candidates,
    ev_division_stats,
    expected_value,
    normalize_als,
    normalize_lift,
    percentile_within_division,
)
from gosales_assets.settings import WhitespaceSettings, WhitespaceWeights

__all__ = [
    "SIGNAL_KEYS",
    "WEIGHT_COLUMNS",
    "RANKED_COLUMNS",
    "CUSTOMER_ATTRS",
    "WhitespaceResult",
    "signal_coverage",
    "effective_weights",
    "apply_weights",
    "sort_ranked",
    "rank_whitespace",
]

SIGNAL_KEYS = ("p_icp", "lift", "als", "ev")
WEIGHT_COLUMNS = {"p_icp": "w_p_icp", "lift": "w_lift", "als": "w_als", "ev": "w_ev"}
NORM_COLUMNS = {"p_icp": "p_icp_pct", "lift": "lift_norm", "als": "als_norm", "ev": "EV_norm"}
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


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------
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
# coverage-aware weights and the score
# ---------------------------------------------------------------------------------------------------
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
    require_columns(customers, ["customer_id"], "customers")
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
    aff = affinity_signals(cand.select(PAIR_KEYS), rules, ports)
    cand = cand.join(aff, on=PAIR_KEYS, how="left", maintain_order="left")
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
        require_columns(als, ["customer_id", "division", "als_similarity", "als_coverage"], "als")
        a = keys_as_str(als.select(PAIR_KEYS + ["als_similarity", "als_coverage"]))
        cand = cand.join(a, on=PAIR_KEYS, how="left", maintain_order="left")
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
        keys = dict(zip(rows, ranked.select(PAIR_KEYS)[rows].iter_rows()))
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
