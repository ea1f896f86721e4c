"""The whitespace signals of cross-sell (customer, division) pairs (pure polars/numpy); `core.ranking` blends
them into the score.

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

Also the legacy heuristic's score of a pair (`legacy_scores`: the customer's pre-cutoff net revenue decayed by
recency, the same for every division), which `core.ranking` keeps as the `legacy` ordering and
`core.ranking_evaluation` as the shadow list.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from gosales_assets.core.checksum import from_cents, to_cents
from gosales_assets.core.pair_frames import PAIR_KEYS, keys_as_str, require_columns

__all__ = [
    "PCT_TIE_BREAK",
    "candidates",
    "percentile_within_division",
    "percentile_uniformity",
    "affinity_signals",
    "normalize_lift",
    "normalize_als",
    "ev_division_stats",
    "ev_tables",
    "expected_value",
    "LEGACY_HALF_LIFE_DAYS",
    "legacy_scores",
]

UNKNOWN_SEGMENT = "__unknown__"
SEGMENT_COLUMNS = ("industry", "employee_band")
PCT_TIE_BREAK = ("lift_norm", "als_norm", "EV_norm")
_MAX_BIT_DIVISIONS = 62  # up to this many divisions, the set a customer owns is an Int64 with a bit per division
_SET_SEPARATOR = "\x1f"  # beyond: the sorted names joined by it


def candidates(icp_scores: pl.DataFrame, owned: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows of `icp_scores` whose (customer_id, division) is NOT in `owned`; all columns kept,
    sorted by division, customer_id. Duplicate pairs in `icp_scores` are an error."""
    require_columns(icp_scores, ["customer_id", "division", "icp_score"], "icp_scores")
    scores = keys_as_str(icp_scores)
    if scores.select(pl.struct(PAIR_KEYS).is_duplicated().any()).item():
        raise ValueError("icp_scores has duplicate (customer_id, division) pairs")
    if owned is not None and owned.height:
        require_columns(owned, PAIR_KEYS, "owned")
        own = keys_as_str(owned.select(PAIR_KEYS)).unique()
        scores = scores.join(own, on=PAIR_KEYS, how="anti")
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
    require_columns(scores, [by, *keys], "scores")
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
    the target, as `core.basket.basket_lift_signals` gives it; 0 when none), `n_rules` (the passing rules from
    owned divisions into the target) and `top_affinity_division` (the owned antecedent with that lift; ties
    alphabetical; null when no passing rule). Row order of `pairs`.

    All three depend only on the set of divisions a customer owns, and customers share sets (1,686 sets among
    500,000 customers of 12 divisions), so they are computed once per set and target, then joined to the pairs: at
    500,000 customers 0.7 CPU-s, against 6.2 for a join of every owned division with the rules per target."""
    base = keys_as_str(pairs.select(PAIR_KEYS))
    empty = base.with_columns(
        pl.lit(0.0).alias("lift"), pl.lit(0, dtype=pl.Int64).alias("n_rules"),
        pl.lit(None, dtype=pl.String).alias("top_affinity_division"),
    )  # fmt: skip
    if rules is None or rules.height == 0 or portfolios is None or portfolios.height == 0 or base.height == 0:
        return empty
    # The passing rules between two divisions, per consequent in the order its top antecedent is chosen (highest
    # lift, ties alphabetical).
    preference = (rules.filter(pl.col("passes_thresholds"))
                  .select(pl.col("antecedent").cast(pl.String), pl.col("consequent").cast(pl.String),
                          pl.col("lift").cast(pl.Float64))
                  .filter(pl.col("antecedent") != pl.col("consequent"))
                  .sort(["consequent", "lift", "antecedent"], descending=[False, True, False])
                  .with_columns(pl.int_range(pl.len()).over("consequent").alias("_preference")))
    owned = keys_as_str(portfolios.select(PAIR_KEYS)).unique()
    sets, members = _owned_sets(owned)
    by_set = (
        members.join(preference, on="antecedent", how="inner")
        .group_by("_set", "consequent")
        .agg(pl.col("lift").max(), pl.len().cast(pl.Int64).alias("n_rules"),
             pl.col("antecedent").sort_by("_preference").first().alias("top_affinity_division"))
        .rename({"consequent": "division"})
    )
    return (
        base.join(sets, on="customer_id", how="left", maintain_order="left")
        .join(by_set, on=["_set", "division"], how="left", maintain_order="left")
        .select(*PAIR_KEYS, pl.col("lift").fill_null(0.0), pl.col("n_rules").fill_null(0), "top_affinity_division")
    )


def _owned_sets(owned: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The set of divisions each customer of `owned` (customer_id, division; unique) owns, as a key `_set`
    (customer_id, _set), and each distinct set's divisions (_set, antecedent). The key is a bit per division (an
    integer sum, ~3 times cheaper than joining names) while there are few enough divisions for an Int64, else the
    sorted names joined."""
    divisions = sorted(owned.get_column("division").unique().to_list())
    if len(divisions) <= _MAX_BIT_DIVISIONS:
        bits = pl.DataFrame({"antecedent": divisions, "_bit": [1 << i for i in range(len(divisions))]},
                            schema={"antecedent": pl.String, "_bit": pl.Int64})
        sets = owned.group_by("customer_id").agg(
            pl.col("division").replace_strict(bits.get_column("antecedent"), bits.get_column("_bit")).sum()
            .alias("_set"))
        members = (sets.select("_set").unique().join(bits, how="cross")
                   .filter((pl.col("_set") & pl.col("_bit")) != 0).drop("_bit"))
        return sets, members
    if any(_SET_SEPARATOR in d for d in divisions):
        raise ValueError(f"division names may not contain {_SET_SEPARATOR!r}: "
                         f"{[d for d in divisions if _SET_SEPARATOR in d]}")
    sets = owned.group_by("customer_id").agg(pl.col("division").sort().str.join(_SET_SEPARATOR).alias("_set"))
    members = (sets.select("_set").unique().with_columns(pl.col("_set").str.split(_SET_SEPARATOR).alias("antecedent"))
               .explode("antecedent"))
    return sets, members


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
    require_columns(ev_history, ["customer_id", "division", "revenue"], "ev_history")
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
    return ev_tables(ev_history, cap_quantile)[1]


def ev_tables(ev_history: pl.DataFrame | None, cap_quantile: float) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """What `expected_value` is computed from, once: the positive net revenue per (customer, division, segment)
    (None without history) and `ev_division_stats` (at 500,000 customers the first costs ~1.7 CPU-s)."""
    schema = {"division": pl.String, "n_buyers": pl.Int64, "global_median": pl.Float64, "cap": pl.Float64}
    if ev_history is None or ev_history.height == 0:
        return None, pl.DataFrame(schema=schema)
    cust = _customer_division_revenue(ev_history)
    per_cust = cust.group_by("customer_id", "division").agg(pl.col("revenue").sum())
    return cust, (
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
    *,
    tables: tuple[pl.DataFrame | None, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Add `ev_segment_n`, `EV` and `EV_norm` to `candidates_with_segments` (keeps its rows and order).
    `tables`: `ev_tables(ev_history, cap_quantile)` when the caller has it already.

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
    require_columns(cand, ["division"], "candidates_with_segments")
    seg_exprs = [pl.col(c).cast(pl.String).fill_null(UNKNOWN_SEGMENT).alias(f"_seg_{c}") if c in cand.columns
                 else pl.lit(UNKNOWN_SEGMENT).alias(f"_seg_{c}") for c in SEGMENT_COLUMNS]  # fmt: skip
    work = cand.with_columns(pl.col("division").cast(pl.String).alias("_div"), *seg_exprs)
    cust, stats = tables if tables is not None else ev_tables(ev_history, cap_quantile)
    if stats.height:
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


LEGACY_HALF_LIFE_DAYS = 180.0


def legacy_scores(
    pairs: pl.DataFrame,
    customers_revenue: pl.DataFrame,
    recency: pl.DataFrame,
    *,
    half_life_days: float = LEGACY_HALF_LIFE_DAYS,
) -> pl.DataFrame:
    """`pairs` (row order kept) with `legacy_revenue`, `legacy_recency_days` and
    `legacy_score = max(revenue, 0) * 0.5 ** (recency_days / half_life_days)`.

    `customers_revenue`: customer_id, revenue (total pre-cutoff net revenue); `recency`: customer_id,
    recency_days (days from the last purchase to the cutoff). Missing revenue -> 0; missing recency -> score 0.
    The division plays no part (as in the legacy system)."""
    require_columns(customers_revenue, ["customer_id", "revenue"], "customers_revenue")
    require_columns(recency, ["customer_id", "recency_days"], "recency")
    rev = customers_revenue.select(
        pl.col("customer_id").cast(pl.String), pl.col("revenue").cast(pl.Float64).alias("legacy_revenue")
    )
    rec = recency.select(
        pl.col("customer_id").cast(pl.String), pl.col("recency_days").cast(pl.Float64).alias("legacy_recency_days")
    )
    decay = pl.lit(0.5).pow(pl.col("legacy_recency_days").clip(lower_bound=0.0) / float(half_life_days))
    return (
        keys_as_str(pairs)
        .join(rev, on="customer_id", how="left", maintain_order="left")
        .join(rec, on="customer_id", how="left", maintain_order="left")
        .with_columns(
            (pl.col("legacy_revenue").fill_null(0.0).clip(lower_bound=0.0)
             * pl.when(pl.col("legacy_recency_days").is_null()).then(0.0).otherwise(decay)).alias("legacy_score")
        )  # fmt: skip
    )
