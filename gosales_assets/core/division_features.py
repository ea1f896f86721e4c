"""Per-division model matrix: the customer features plus target-division signals (pure polars).

Added columns use the scope `target`, meaning "the division this frame is built for" (the division itself
is matched by its exact canonical name). The names are the same for every division, so the partitioned
`division_features` table has one schema and each division's model reads the same columns:
- `mb__target__max_lift__all`, `mb__target__mean_lift__all`: lift of passing basket rules from divisions
  the customer owns to the target (0 when none), as a within-cutoff percentile (below)
- `als__target__similarity__all`: cosine(customer, division) ALS similarity (0 when not covered), as a
  within-cutoff percentile (below)
- `als__target__coverage__all` (Int8): 1 when the customer had enough purchased SKUs for ALS
- `prior__target__owned__all` (Int8): 1 when the customer owns the division at the cutoff
Then, when `labels` is given, its columns (label, cohort, censored, ...) are inner-joined on customer_id:
the rows become the labels population; the customer features do not change, the three percentile signals
below are ranked over these rows.

Comparable across cutoffs (issue 14): the basket rules and the ALS factors are re-fitted at every cutoff, so the
raw lift and similarity change scale (and, for the lift, the order of its few levels) from one cutoff to the next:
a model trained on earlier cutoffs would read the scoring cutoff's values on another scale, and `drift` flagged
the three columns (PSI up to 1–3 on stationary demo data). They therefore hold `cutoff_percentile` of the raw
signal over the rows of the frame (the labels population when labels are joined — the rows a model trains on and
`drift` compares; ranked over the whole roster instead, the ALS percentile of the labels population still moved
with the share of owners, PSI up to 2.7 on seed 101): the average-tie rank divided by the number of non-null
values, in (0, 1]; null stays null. Order within the cutoff is kept and any increasing rescaling of the raw
values leaves the feature unchanged. The ALS similarity is continuous and keeps its percentile; the basket lift
takes only ~10 values per target (one per best antecedent division), whose tie midpoints still move between
cutoffs (its plain percentile kept a PSI of 2.3–2.6), so its percentile is rounded up to quartiles
(`LIFT_PERCENTILE_BINS`: 0.25, 0.5, 0.75, 1; quintiles left one hard PSI, 0.45, on the default demo). The raw
lift and similarity stay in the `market_basket_rules` and `als_embeddings` tables (whitespace ranks with those,
not with this frame). Measurements: docs/MODEL_QUALITY.md, "Derived features comparable across cutoffs".
"""

from __future__ import annotations

import polars as pl

from gosales_assets.core.basket import basket_lift_signals

__all__ = ["build_division_features", "TARGET_SIGNAL_COLUMNS", "PERCENTILE_SIGNAL_COLUMNS", "LIFT_PERCENTILE_BINS",
           "cutoff_percentile"]


TARGET_SIGNAL_COLUMNS = (
    "mb__target__max_lift__all",
    "mb__target__mean_lift__all",
    "als__target__similarity__all",
    "als__target__coverage__all",
    "prior__target__owned__all",
)
# The re-fitted signals, stored as within-cutoff percentiles (see the module doc): column -> bins (None: unbinned).
LIFT_PERCENTILE_BINS = 4
PERCENTILE_SIGNAL_COLUMNS: dict[str, int | None] = {
    "mb__target__max_lift__all": LIFT_PERCENTILE_BINS,
    "mb__target__mean_lift__all": LIFT_PERCENTILE_BINS,
    "als__target__similarity__all": None,
}


def cutoff_percentile(col: str, bins: int | None = None) -> pl.Expr:
    """Within-frame percentile of `col`: average-tie rank / number of non-null values, in (0, 1]; with `bins`,
    rounded up to the grid 1/bins, 2/bins, …, 1. Null stays null, NaN stays NaN (and is not ranked).

    Deterministic (ties averaged, independent of row order), invariant to any strictly increasing map of the raw
    values (e.g. multiplying them all by 3), order-preserving (x < y -> f(x) <= f(y); strictly without `bins`)."""
    x = pl.col(col).cast(pl.Float64)
    ranked = pl.when(x.is_not_nan()).then(x)  # polars orders NaN above every number: keep it out of the ranks
    p = ranked.rank("average") / ranked.count()
    if bins:
        p = (p * bins - 1e-9).ceil() / bins  # 1e-9: k / n exactly on a grid point stays on it
    return pl.when(x.is_nan()).then(x).otherwise(p).alias(col)


def build_division_features(
    customer_features: pl.DataFrame,
    portfolios: pl.DataFrame,
    rules: pl.DataFrame,
    als_similarity: pl.DataFrame,
    division: str,
    labels: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """customer_features (+ target signals, + labels) with customer_id first, sorted by customer_id."""
    if "customer_id" not in customer_features.columns:
        raise ValueError("customer_features has no customer_id column")
    if als_similarity.height:
        sim_divs = set(als_similarity.get_column("division").unique().to_list())
        if division not in sim_divs:
            raise ValueError(
                f"division {division!r} is not in the ALS similarity frame (has {sorted(sim_divs)!r}); "
                "division names are exact and case-sensitive"
            )
    mb_max, mb_mean, als_sim, als_cov, owned = TARGET_SIGNAL_COLUMNS
    clash = {mb_max, mb_mean, als_sim, als_cov, owned} & set(customer_features.columns)
    if clash:
        raise ValueError(f"customer_features already has the division signal columns {sorted(clash)!r}")

    lift = basket_lift_signals(portfolios, rules, division).select(
        "customer_id", pl.col("max_lift").alias(mb_max), pl.col("mean_lift").alias(mb_mean)
    )
    sim = (
        als_similarity.filter(pl.col("division") == division)
        .select(
            pl.col("customer_id").cast(pl.String),
            pl.col("als_similarity").cast(pl.Float64).alias(als_sim),
            pl.col("als_coverage").cast(pl.Int8).alias(als_cov),
        )
        .unique(subset="customer_id", keep="first", maintain_order=True)
    )
    own = (
        portfolios.filter(pl.col("division") == division)
        .select(pl.col("customer_id").cast(pl.String))
        .unique()
        .with_columns(pl.lit(1, dtype=pl.Int8).alias(owned))
    )
    out = (
        customer_features.join(lift, on="customer_id", how="left", maintain_order="left")
        .join(sim, on="customer_id", how="left", maintain_order="left")
        .join(own, on="customer_id", how="left", maintain_order="left")
        .with_columns(
            pl.col(mb_max).fill_null(0.0),
            pl.col(mb_mean).fill_null(0.0),
            pl.col(als_sim).fill_null(0.0),
            pl.col(als_cov).fill_null(0).cast(pl.Int8),
            pl.col(owned).fill_null(0).cast(pl.Int8),
        )
    )
    if labels is not None:
        extra = [c for c in labels.columns if c != "customer_id"]
        clash = set(extra) & set(out.columns)
        if clash:
            raise ValueError(f"label columns collide with feature columns: {sorted(clash)!r}")
        lab = labels.with_columns(pl.col("customer_id").cast(pl.String)).unique(
            subset="customer_id", keep="first", maintain_order=True
        )
        if lab.height != labels.height:
            raise ValueError("labels has duplicate customer_id rows")
        out = out.join(lab, on="customer_id", how="inner", maintain_order="left")
    # Percentiles over the frame's own rows: the model population when labels are joined (module doc).
    out = out.with_columns(*(cutoff_percentile(c, b) for c, b in PERCENTILE_SIGNAL_COLUMNS.items()))
    cols = ["customer_id", *[c for c in out.columns if c != "customer_id"]]
    return out.select(cols).sort("customer_id", maintain_order=True)
