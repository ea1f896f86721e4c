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

Orderings (`ORDERINGS`; each model row keeps every ordering's score as a column `score_<ordering>`):
- `blend` — the weighted score above (`score_blend`);
- `p_icp` — the calibrated probability alone, comparable across divisions (`score_p_icp`);
- `expected_value` — p_icp x EV, the expected spend in the division (`score_expected_value`, currency units);
- `legacy` — the legacy revenue x recency heuristic (`score_legacy`, currency units; a shadow, champion only when
  configured).
The list follows ONE of them, the cutoff's champion (`ordering` column; `core.ranking_decision` chooses it from
closed windows): `rank`, `rank_in_division`, the capacity plan and `nba_reason` come from its order, and `score` is
its score on [0, 1] (the blend and p_icp as they are; a currency ordering divided by its largest model row of the
cutoff, which keeps the order).

Deterministic order: the champion's score desc, p_icp desc, EV desc, last_activity_date desc (nulls last),
customer_id asc, division asc. `rank` is the 1-based global position in that order, `rank_in_division`
the position within the division.

Peer fallback (`peer_fallback`): the customers of a division whose model is held or skipped at the cutoff are
ranked too, ordered by the division's best simple peer (`core.peers`; the `peer_scores` asset) instead of a model:
`score` = the per-division average-rank percentile of the peer's score over the division's candidate pairs (a
missing peer score, never bought, lowest), `p_icp` and `p_icp_pct` null (nothing here is a calibrated probability),
the blend weights 0 (lift, ALS and EV are computed and shown, but do not move the order), every `score_<ordering>`
null (no ordering of the champion applies to them), `score_source`
`peer:<peer>` (`model` on every other row), and a reason that says it is a simple-peer ordering and why there is no
promoted model. These rows come after every model row in the global order (the order within them: the same
tie-breaker chain), so a peer ordering never outranks a validated model's recommendation, and the model rows keep
exactly the ranks, percentiles, weights and reasons they have without the fallback.

What follows the ranking lives in its own module: eligibility gates (`core.eligibility`), capacity selection and
the capacity grid (`core.capacity`), capture@K / stability / the challenger / the legacy shadow
(`core.ranking_evaluation`), the inputs from the star schema (`core.whitespace_inputs`), and the assembly of one
cutoff's list with its metrics and files (`core.whitespace`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from gosales_assets.core.explain import FALLBACK_REASON, check_reasons, guard_reasons, ordering_reasons, truncate_words
from gosales_assets.core.pair_frames import PAIR_KEYS, keys_as_str, require_columns
from gosales_assets.core.peers import CROSS_VALIDATION, PEER_DESCRIPTIONS
from gosales_assets.core.whitespace_signals import (
    PCT_TIE_BREAK,
    affinity_signals,
    candidates,
    ev_tables,
    expected_value,
    legacy_scores,
    normalize_als,
    normalize_lift,
    percentile_within_division,
)
from gosales_assets.settings import RANKING_ORDERINGS, WhitespaceSettings, WhitespaceWeights

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
    "first_rows_by",
    "ORDERINGS",
    "ORDERING_COLUMNS",
    "ordering_scores",
    "unit_score",
    "rank_whitespace",
    "MODEL_SOURCE",
    "FALLBACK_COLUMNS",
    "peer_source",
    "peer_fallback_reason",
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
MODEL_SOURCE = "model"  # `score_source` of a row ranked by its division's promoted model
# The peer-fallback input of `rank_whitespace`: one row per customer of a division without a promoted model.
FALLBACK_COLUMNS = ("customer_id", "division", "peer", "peer_basis", "peer_score", "model_status", "model_reason")
_FALLBACK_WORK = ("peer", "peer_basis", "peer_score", "model_status", "model_reason", "_peer_key")
ORDERINGS = RANKING_ORDERINGS
ORDERING_COLUMNS = {o: f"score_{o}" for o in ORDERINGS}
CURRENCY_ORDERINGS = ("expected_value", "legacy")  # in currency units: `score` shows them scaled into [0, 1]
RANKED_COLUMNS = [
    "rank", "rank_in_division", "division", "customer_id", "score", "score_source",
    "ordering", *ORDERING_COLUMNS.values(),
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


# A value, or a call that gives it when it is first needed: the cutoff's champion ordering is decided (on earlier
# lists) while its list computes every signal, which needs no ordering (assets.whitespace runs the two side by side).
Deferred = str | Callable[[], str]


def resolved(value: Deferred | None) -> str | None:
    """The value of a `Deferred` (calling it if it is a call; None stays None)."""
    return value() if callable(value) else value


def _checked_ordering(ordering: str | None, settings: WhitespaceSettings, legacy_inputs: bool) -> str:
    ordering = ordering or settings.ranking.initial_champion
    if ordering not in ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}; known: {list(ORDERINGS)}")
    if ordering == "legacy" and not legacy_inputs:
        raise ValueError("the legacy ordering needs the customers' revenue and recency")
    return ordering


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


# What breaks ties in an ordering's score, in order (column, descending): the list's rank is total.
TIE_BREAK_CHAIN = (("p_icp", True), ("EV", True), ("last_activity_date", True), ("customer_id", False),
                   ("division", False))


def sort_ranked(frame: pl.DataFrame, by: str = "score") -> pl.DataFrame:
    """Sort by the tie-breaker chain: `by` desc (default `score`; an ordering's `score_<ordering>`), p_icp desc, EV
    desc, last_activity_date desc (nulls last), customer_id asc, division asc. With a `score_source` column, rows of
    a promoted model come first and peer fallback rows after them, in the same chain on their own `score` (they have
    no ordering score)."""
    f = frame
    if "last_activity_date" not in f.columns:
        f = f.with_columns(pl.lit(None, dtype=pl.Date).alias("last_activity_date"))
    tiered = "score_source" in f.columns
    key = pl.col(by)
    if tiered:
        fallback = (pl.col("score_source") != MODEL_SOURCE).fill_null(True)
        f = f.with_columns(fallback.alias("_fallback_tier"))
        key = pl.when(fallback).then(pl.col("score")).otherwise(pl.col(by)) if by != "score" else key
    f = f.with_columns(key.cast(pl.Float64).alias("_order_key"))
    cols = ["_order_key", *(c for c, _ in TIE_BREAK_CHAIN)]
    descending = [True, *(d for _, d in TIE_BREAK_CHAIN)]
    if tiered:
        cols, descending = ["_fallback_tier", *cols], [False, *descending]
    out = f.sort(cols, descending=descending, nulls_last=True, maintain_order=True).drop("_order_key")
    if tiered:
        out = out.drop("_fallback_tier")
    return out if "last_activity_date" in frame.columns else out.drop("last_activity_date")


def first_rows_by(frame: pl.DataFrame, by: Sequence[str], n: int) -> dict[str, pl.Series]:
    """Per score column of `by`: a boolean Series over `frame`'s rows, true on the rows `sort_ranked(frame, by=col)`
    puts first (its head of `n`). The same rows from one sort of the chain's tail (p_icp, EV, last activity date,
    customer, division, in `sort_ranked`'s directions and null placement) and, per column, a selection of the first
    `n` by (score, position in that tail) — the lexicographic order of the whole chain — instead of one full sort of
    every column per score:
    judging four orderings over a few closed lists of 1.2 million rows took ~15 CPU-s at 500,000 customers. Model
    rows only (a frame whose `score_source` holds a peer row is refused: `sort_ranked` puts those in a tier after)."""
    if "score_source" in frame.columns and (frame.get_column("score_source").fill_null("") != MODEL_SOURCE).any():
        raise ValueError("first_rows_by ranks model rows only; peer-ordered rows are a tier of their own")
    f = frame if "last_activity_date" in frame.columns else frame.with_columns(
        pl.lit(None, dtype=pl.Date).alias("last_activity_date"))
    tail = [c for c, _ in TIE_BREAK_CHAIN]
    order = (f.select(tail).with_row_index("_i")
             .sort(tail, descending=[d for _, d in TIE_BREAK_CHAIN], nulls_last=True, maintain_order=True)
             .get_column("_i"))
    position = pl.Series("_tail", range(f.height), dtype=pl.UInt32).scatter(order, range(f.height))
    out = {}
    for col in by:
        keys = pl.DataFrame({"_k": f.get_column(col).cast(pl.Float64), "_tail": position}).with_row_index("_i")
        # The n largest by (score descending, nulls last; tail position ascending): a partial selection, not a full
        # sort (the tail position makes the order total, so the set is the sort's head; ~7x faster at 3M rows).
        head = keys.top_k(n, by=["_k", "_tail"], reverse=[False, True]).get_column("_i")
        out[col] = pl.Series(col, [False] * f.height, dtype=pl.Boolean).scatter(head, True)
    return out


def ordering_scores(frame: pl.DataFrame, customer_revenue: pl.DataFrame | None = None,
                    recency: pl.DataFrame | None = None) -> pl.DataFrame:
    """Add every ordering's score to model rows that carry the blend `score`, `p_icp` and `EV`: `score_blend`,
    `score_p_icp`, `score_expected_value` (p_icp x EV) and `score_legacy` (`legacy_scores`; null when the
    customers' revenue and recency are not given)."""
    out = frame.with_columns(
        pl.col("score").cast(pl.Float64).alias(ORDERING_COLUMNS["blend"]),
        pl.col("p_icp").cast(pl.Float64).alias(ORDERING_COLUMNS["p_icp"]),
        (pl.col("p_icp").cast(pl.Float64) * pl.col("EV").cast(pl.Float64)).alias(ORDERING_COLUMNS["expected_value"]),
    )
    if customer_revenue is None or recency is None:
        return out.with_columns(pl.lit(None, dtype=pl.Float64).alias(ORDERING_COLUMNS["legacy"]))
    legacy = legacy_scores(out.select(PAIR_KEYS), customer_revenue, recency).get_column("legacy_score")
    return out.with_columns(legacy.alias(ORDERING_COLUMNS["legacy"]))


def unit_score(ordering: str) -> pl.Expr:
    """The champion's score on [0, 1], in the same order: the blend and p_icp are probabilities or weighted
    percentiles already; a currency ordering is divided by its largest value over the frame (0 when that is 0)."""
    col = pl.col(ORDERING_COLUMNS[ordering])
    if ordering not in CURRENCY_ORDERINGS:
        return col
    top = col.max()
    return pl.when(top > 0).then(col / top).otherwise(0.0)


def peer_source(peer: str) -> str:
    """`score_source` of a row ordered by a simple peer."""
    return f"peer:{peer}"


def _short_verdict(reason: str | None) -> str:
    """The first clause of a registry reason, without the gate's prefix and shortfall (the words a rep needs)."""
    first = (reason or "no reason recorded").split("; ")[0]
    if first.startswith("no trainable cutoff"):  # division_model's words for "too little history"
        return "no closed training window yet"
    first = re.sub(r"^(promotion gate|[A-Z][A-Za-z]+): ", "", first)  # the gate's prefix, InsufficientData: …
    return re.sub(r"\s*\((short|over) by [^)]*\)", "", first).strip() or "no reason recorded"


def peer_fallback_reason(status: str | None, reason: str | None, peer: str, basis: str | None,
                         max_chars: int) -> str:
    """The `nba_reason` of a peer-ordered row, e.g. "No promoted model (held: auc 0.6550 < 0.7); ordered by the best
    simple peer, frequency (most 12-month invoice lines), not a model score". The verdict's reason is cut first
    (at a word boundary) so that the ordering is always named within `max_chars`."""
    which = "the best simple peer" if basis == CROSS_VALIDATION else "the default simple peer"
    head = f"No promoted model ({status or 'no verdict'}: "
    tail = f"); ordered by {which}, {peer} ({PEER_DESCRIPTIONS.get(peer, peer)}), not a model score"
    room = max_chars - len(head) - len(tail)
    if room < 12:  # too little room for a reason: the ordering alone
        return truncate_words(f"No promoted model ({status or 'no verdict'}){tail[1:]}", max_chars)
    return head + truncate_words(_short_verdict(reason), room) + tail


def _fallback_candidates(fallback: pl.DataFrame | None, owned: pl.DataFrame | None,
                         model_divisions: set[str]) -> pl.DataFrame | None:
    """The fallback rows as candidates (owned pairs and divisions a model ranks dropped), or None when none."""
    if fallback is None or fallback.height == 0:
        return None
    require_columns(fallback, FALLBACK_COLUMNS, "peer fallback")
    fb = keys_as_str(fallback).filter(~pl.col("division").is_in(sorted(model_divisions)))
    if fb.height == 0:
        return None
    fb = fb.with_columns(pl.lit(None, dtype=pl.Float64).alias("icp_score"),
                         pl.col("peer_score").cast(pl.Float64).fill_nan(None))
    fb = candidates(fb, owned)
    return fb.with_columns(pl.format("peer:{}", pl.col("peer")).alias("score_source"))


# ---------------------------------------------------------------------------------------------------
# the peer fallback
# ---------------------------------------------------------------------------------------------------
def _peer_ordered(rows: pl.DataFrame, decision_log: list[dict]) -> pl.DataFrame:
    """Score the peer-fallback candidates: the per-division percentile of the peer's score (missing lowest), no
    probability, no blend weight."""
    low = pl.col("peer_score").min().over("division") - 1.0
    rows = rows.with_columns(pl.col("peer_score").fill_null(low).fill_null(0.0).alias("_peer_key"))
    rows = percentile_within_division(rows, "_peer_key", "score")
    rows = rows.with_columns(pl.lit(None, dtype=pl.Float64).alias("p_icp_pct"),
                             *(pl.lit(0.0).alias(c) for c in WEIGHT_COLUMNS.values()))
    summary = (rows.group_by("division", "peer", "peer_basis", "model_status", "model_reason")
               .agg(pl.len().alias("candidates")).sort("division"))
    for rec in summary.iter_rows(named=True):
        decision_log.append({"event": "peer_fallback", "division": rec["division"], "peer": rec["peer"],
                             "peer_basis": rec["peer_basis"], "model_status": rec["model_status"],
                             "model_reason": rec["model_reason"], "candidates": int(rec["candidates"]),
                             "score": "per-division average-rank percentile of the peer's score; p_icp null"})
    return rows


def _peer_reasons(rows: pl.DataFrame, s: WhitespaceSettings, *, offset: int) -> tuple[pl.Series, list[dict]]:
    """Reasons of the peer-ordered rows (in order), guarded like every reason; a violating one is replaced by a plain
    peer sentence (never by the model rows' fallback, which speaks of likelihood). Violations as `guard_reasons`
    reports them, with row numbers shifted by `offset` (the rows' position in the ranked frame)."""
    texts: dict[tuple, str] = {}
    values = []
    for key in rows.select("model_status", "model_reason", "peer", "peer_basis").iter_rows():
        if key not in texts:
            texts[key] = peer_fallback_reason(*key, s.reason_max_chars)
        values.append(texts[key])
    found = check_reasons(values, s.forbidden_tokens, s.reason_max_chars)
    if not found:
        return pl.Series("nba_reason", values, dtype=pl.String), []
    peers = rows.get_column("peer").to_list()
    plain = {p: truncate_words(f"No promoted model; ordered by the simple peer {p}", s.reason_max_chars)
             for p in set(peers)}
    bad_plain = check_reasons(list(plain.values()), s.forbidden_tokens, s.reason_max_chars)
    if bad_plain:
        raise ValueError(f"the peer fallback reasons {sorted(plain.values())} violate the reason rules: {bad_plain}")
    bad = {v["row"] for v in found}
    values = [plain[peers[i]] if i in bad else r for i, r in enumerate(values)]
    violations = [v | {"row": v["row"] + offset, "replaced_with_fallback": True, "fallback": plain[peers[v["row"]]]}
                  for v in found]
    return pl.Series("nba_reason", values, dtype=pl.String), violations


# ---------------------------------------------------------------------------------------------------
# the ranker
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WhitespaceResult:
    ranked: pl.DataFrame  # RANKED_COLUMNS (+ bought_in_division, + extra icp_scores columns), in rank order
    ordering: str  # the champion the list follows (`ORDERINGS`)
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
    peer_fallback: pl.DataFrame | None = None,
    ordering: Deferred | None = None,
    customer_revenue: pl.DataFrame | None = None,
    recency: pl.DataFrame | None = None,
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
    - `peer_fallback`: `FALLBACK_COLUMNS` (+ `bought_in_division`) of the divisions without a promoted model, ranked
      by their best peer after every model row (module docstring); None -> model rows only. A division that also
      has icp_scores is ranked by its model only.
    - `ordering`: the champion the list follows (`ORDERINGS`); None -> `settings.ranking.initial_champion`. A call
      (`Deferred`) is made once every signal is computed, when the order is first needed.
    - `customer_revenue`, `recency`: the legacy heuristic's inputs (`core.whitespace_inputs`); None ->
      `score_legacy` null (and the `legacy` ordering refused).
    """
    s = settings or WhitespaceSettings()
    legacy_inputs = customer_revenue is not None and recency is not None
    if not callable(ordering):  # a given ordering is checked before any work; a deferred one when it is known
        ordering = _checked_ordering(ordering, s, legacy_inputs)
    decision_log: list[dict] = []
    cand = candidates(icp_scores, owned).with_columns(pl.lit(MODEL_SOURCE).alias("score_source"))
    fb = _fallback_candidates(peer_fallback, owned, set(cand.get_column("division").unique().to_list()))
    if fb is not None:
        cand = pl.concat([cand, fb], how="diagonal_relaxed")
    cand = cand.rename({"icp_score": "p_icp"})
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
    ev = ev_tables(ev_history, s.ev_cap_quantile)
    ev_stats = ev[1]
    cand = expected_value(ev_history, cand, s.ev_shrinkage_k, s.ev_cap_quantile, tables=ev)
    for d, n_buyers, gmed, cap in ev_stats.iter_rows():
        decision_log.append({"event": "expected_value", "division": d, "n_buyers": int(n_buyers),
                             "global_median": _f(gmed), "cap": _f(cap), "k": float(s.ev_shrinkage_k),
                             "cap_quantile": float(s.ev_cap_quantile)})  # fmt: skip

    # the peer-ordered rows leave here: their order is the peer's, not the blend's
    is_model = pl.col("score_source") == MODEL_SOURCE
    fallback_rows = cand.filter(~is_model) if fb is not None else None
    cand = cand.filter(is_model) if fb is not None else cand

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
    # every ordering's score; `score` becomes the champion's (on [0, 1]); peer rows keep their own score
    cand = ordering_scores(cand, customer_revenue, recency)
    ordering = _checked_ordering(resolved(ordering), s, legacy_inputs)
    cand = cand.with_columns(unit_score(ordering).alias("score"))
    decision_log.append({"event": "ordering", "champion": ordering, "score": ORDERING_COLUMNS[ordering],
                         "scaled": ordering in CURRENCY_ORDERINGS,
                         "orderings": {o: c for o, c in ORDERING_COLUMNS.items()}})
    n_model = cand.height
    if fallback_rows is not None:
        cand = pl.concat([cand, _peer_ordered(fallback_rows, decision_log)], how="diagonal_relaxed")
    cand = cand.with_columns(pl.lit(ordering).alias("ordering"))

    # order, ranks
    ranked = sort_ranked(cand, by=ORDERING_COLUMNS[ordering]).with_row_index("rank", offset=1).with_columns(
        pl.col("rank").cast(pl.Int64))
    ranked = ranked.with_columns(
        pl.col("rank").rank("ordinal").over("division").cast(pl.Int64).alias("rank_in_division")
    )

    # reasons (model rows first: the guard's row numbers are positions in the ranked frame)
    reasons = ordering_reasons(ranked.head(n_model), ordering, s.reason_max_chars)
    reasons, violations = guard_reasons(reasons, s.forbidden_tokens, s.reason_max_chars)
    if fallback_rows is not None:
        peer_reasons, peer_violations = _peer_reasons(ranked.slice(n_model), s, offset=n_model)
        reasons, violations = pl.concat([reasons, peer_reasons]), violations + peer_violations
    ranked = ranked.with_columns(reasons.alias("nba_reason"))
    if violations:
        rows = sorted({v["row"] for v in violations})
        keys = dict(zip(rows, ranked.select(PAIR_KEYS)[rows].iter_rows()))
        for v in violations:
            c, d = keys[v["row"]]
            decision_log.append({"event": "reason_replaced", "customer_id": c, "division": d, "kind": v["kind"],
                                 "token": v["token"], "fallback": v.get("fallback", FALLBACK_REASON)})  # fmt: skip

    dropped = ("bought_in_division", "ev_segment_n", "n_rules", *_FALLBACK_WORK)
    extra = [c for c in ranked.columns if c not in RANKED_COLUMNS and c not in dropped]
    tail = [c for c in ("bought_in_division",) if c in ranked.columns]
    ranked = ranked.select(RANKED_COLUMNS + tail + extra)
    return WhitespaceResult(
        ranked=ranked, ordering=ordering, weights=weights, coverage=coverage, ev_stats=ev_stats,
        decision_log=decision_log, reason_violations=violations,
    )  # fmt: skip
