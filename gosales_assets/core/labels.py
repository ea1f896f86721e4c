"""Leakage-safe labels: did the customer make a qualifying purchase of division d in (C, C + W]?

This is the only definition of the target. Training, scoring evaluation and forward validation all read the
`labels` asset built from it (the earlier system trained on a second, cruder definition that counted any row
in the window, returns included).

- Qualifying purchase: the customer's *net* revenue of d in the window (returns and credits in the window
  netted; SKUs on the denylist excluded) is above `min_net_revenue`.
- Population (`mode`):
  * `expansion` — customers active on or before C (any purchase line) who had not bought d by C;
  * `all` — every customer known at C (in the roster and first seen on or before C, or with activity by C).
- "Bought d by C" uses the same measure as the label (net revenue of d up to C, denylist excluded, above the
  minimum), so a customer who bought and fully returned d is not an owner.
- Cohorts: `new_logo` (no activity by C), `expansion` (active, never bought d), `renewal_like` (bought d
  before C).
- Censoring: when C + W is after the data end, the window is not observed; `label` is null and `censored`
  is true, never silently zero.
- Auto-widening (optional): when positives are below a minimum, the window grows a month at a time up to a
  maximum (and never past the data end); the window used is returned and recorded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from gosales_assets.core.calendar import window_end

LABEL_SCHEMA = {
    "customer_id": pl.String,
    "division": pl.String,
    "cutoff_date": pl.Date,
    "window_months": pl.Int32,
    "cohort": pl.String,
    "net_revenue_window": pl.Float64,
    "label": pl.Int8,
    "censored": pl.Boolean,
}


@dataclass(frozen=True)
class LabelResult:
    frame: pl.DataFrame
    division: str
    cutoff: dt.date
    window_months: int
    requested_window_months: int
    censored: bool

    @property
    def widened(self) -> bool:
        return self.window_months != self.requested_window_months

    @property
    def positives(self) -> int | None:
        return None if self.censored else int(self.frame.get_column("label").sum() or 0)

    @property
    def prevalence(self) -> float | None:
        if self.censored or self.frame.height == 0:
            return None
        return self.positives / self.frame.height

    def summary(self) -> dict:
        return {
            "division": self.division,
            "cutoff": self.cutoff.isoformat(),
            "rows": self.frame.height,
            "positives": self.positives,
            "prevalence": self.prevalence,
            "window_months": self.window_months,
            "requested_window_months": self.requested_window_months,
            "widened": self.widened,
            "censored": self.censored,
        }


def customers_known_at(fact: pl.DataFrame, dim_customer: pl.DataFrame, cutoff: dt.date) -> pl.DataFrame:
    """customer_id of every customer known at C: first seen by C (or date unknown), or with a line by C."""
    seen = dim_customer.filter(pl.col("first_seen_date").is_null() | (pl.col("first_seen_date") <= cutoff))
    active = fact.filter(pl.col("invoice_date") <= cutoff).select("customer_id").unique()
    return pl.concat([seen.select("customer_id"), active]).unique().sort("customer_id")


def _countable(rows: pl.DataFrame, sku_denylist) -> pl.DataFrame:
    """The lines that can make a purchase: those with a SKU not on the denylist (no pass over the lines without a
    denylist when no SKU is missing, which the star contract ensures)."""
    if sku_denylist:
        return rows.filter(~pl.col("sku").is_in(list(sku_denylist)))
    return rows if rows.get_column("sku").null_count() == 0 else rows.filter(pl.col("sku").is_not_null())


def _net_by_customer(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    return rows.group_by("customer_id").agg(pl.col("revenue").sum().alias(name))


FIRST_DATES_SCHEMA = {"customer_id": pl.String, "first_line": pl.Date, "first_active": pl.Date}


def first_dates(fact: pl.DataFrame) -> pl.DataFrame:
    """Per customer with a line in `fact`: the date of its first line and of its first line with revenue > 0 (null:
    none); a customer is active at C when `first_active` ≤ C. The labels asset has DuckDB compute the same from the
    fact table (`assets.labels`: one grouped scan instead of two passes over the lines in polars); `build_labels`
    and `positives_by_cutoff` take either, or compute what they need from their `fact` when given none."""
    return fact.group_by("customer_id").agg(
        pl.col("invoice_date").min().alias("first_line"),
        pl.col("invoice_date").filter(pl.col("revenue") > 0).min().alias("first_active"),
    ).cast(FIRST_DATES_SCHEMA)


def positives_by_cutoff(
    fact: pl.DataFrame,
    dim_customer: pl.DataFrame,
    *,
    division: str,
    cutoffs: list[dt.date],
    window_months: int,
    data_end: dt.date,
    mode: str = "expansion",
    min_net_revenue: float = 0.0,
    sku_denylist: list[str] | tuple[str, ...] = (),
    firsts: pl.DataFrame | None = None,
) -> dict[dt.date, int]:
    """The positives `build_labels` gives at each of `cutoffs` (window `window_months`, not widened; censored
    cutoffs left out), computed together from the facts: who is known / active by C' from each customer's first
    line, ownership and window revenue from the division's lines only. A fraction of `build_labels`' cost per
    cutoff at scale (a production sales log is mostly other divisions' lines), so the labels of one cutoff can
    compare themselves with earlier cutoffs without reading those partitions (which would chain every cutoff's
    labels behind the previous one in a backfill). `firsts`: `first_dates` of `fact` when the caller has it (else
    taken from the buyers' own lines)."""
    if mode not in ("expansion", "all"):
        raise ValueError(f"labels mode must be 'expansion' or 'all', got {mode!r}")
    fact = fact.with_columns(pl.col("customer_id").cast(pl.String))
    div = _countable(fact.filter(pl.col("division") == division), sku_denylist).select(
        "customer_id", "invoice_date", "revenue")
    bought = {}  # per uncensored cutoff: who bought the division in its window
    for c in sorted(set(cutoffs)):
        end = window_end(c, window_months)
        if end <= data_end:
            bought[c] = _net_by_customer(div.filter((pl.col("invoice_date") > c) & (pl.col("invoice_date") <= end)),
                                         "_window").filter(pl.col("_window") > min_net_revenue).select("customer_id")
    if not bought:
        return {}
    # Only buyers can be positives: when each of them became known and active is taken from their own lines (a few
    # thousand customers' instead of grouping every line of the log). Known at C': the customer table has it with
    # no first date or one ≤ C', or its first line is ≤ C' (`customers_known_at`).
    buyers = pl.concat(bought.values()).unique()
    firsts = (first_dates(fact.join(buyers, on="customer_id", how="semi")) if firsts is None
              else firsts.join(buyers, on="customer_id", how="semi"))
    seen = dim_customer.with_columns(pl.col("customer_id").cast(pl.String)).join(
        buyers, on="customer_id", how="semi").group_by("customer_id").agg(
        pl.col("first_seen_date").is_null().any().alias("_always"),
        pl.col("first_seen_date").min().alias("_first_seen"))
    people = firsts.join(seen, on="customer_id", how="left").select(
        "customer_id", pl.col("_always").fill_null(False),
        pl.min_horizontal("_first_seen", "first_line").alias("_known_from"),
        pl.col("first_active").alias("_first_active"))
    out: dict[dt.date, int] = {}
    for c, who in bought.items():
        counted = people.join(who, on="customer_id", how="semi").filter(
            pl.col("_always") | (pl.col("_known_from") <= c))
        if mode == "expansion":
            owned = _net_by_customer(div.filter(pl.col("invoice_date") <= c), "_owned").filter(
                pl.col("_owned") > min_net_revenue)
            counted = counted.filter(pl.col("_first_active") <= c).join(owned, on="customer_id", how="anti")
        out[c] = counted.height
    return out


def build_labels(
    fact: pl.DataFrame,
    known: pl.DataFrame,
    *,
    division: str,
    cutoff: dt.date,
    window_months: int,
    data_end: dt.date,
    mode: str = "expansion",
    min_net_revenue: float = 0.0,
    sku_denylist: list[str] | tuple[str, ...] = (),
    auto_widen_min_positives: int | None = None,
    auto_widen_max_months: int | None = None,
    firsts: pl.DataFrame | None = None,
) -> LabelResult:
    """Labels for one (division, cutoff); see the module docstring for the definition. `known` holds the
    `customer_id` of every customer known at C (`customers_known_at`; the asset takes it from the customer
    features' roster of C, so labels and features describe one population). `firsts`: `first_dates` of `fact` when
    the caller has it (who was active by C), else the lines are scanned for it."""
    if mode not in ("expansion", "all"):
        raise ValueError(f"labels mode must be 'expansion' or 'all', got {mode!r}")
    # The division's countable lines, taken once (every later filter reads ~1/divisions of the log); the other
    # divisions' lines only tell who was active by C. Filters keep the lines' order, so every sum is as before.
    div_rows = _countable(fact.filter(pl.col("division") == division), sku_denylist)
    div_history = div_rows.filter(pl.col("invoice_date") <= cutoff)

    known = known.select(pl.col("customer_id").cast(pl.String)).unique().sort("customer_id")
    active = (fact.filter((pl.col("invoice_date") <= cutoff) & (pl.col("revenue") > 0)).select("customer_id").unique()
              if firsts is None else firsts.filter(pl.col("first_active") <= cutoff).select("customer_id")
              ).with_columns(pl.lit(True).alias("_active"))
    owned = _net_by_customer(div_history, "_owned_rev").filter(pl.col("_owned_rev") > min_net_revenue)
    base = (
        known.join(active, on="customer_id", how="left")
        .join(owned.select("customer_id", pl.lit(True).alias("_owned")), on="customer_id", how="left")
        .with_columns(pl.col("_active").fill_null(False), pl.col("_owned").fill_null(False))
        .with_columns(
            pl.when(pl.col("_owned")).then(pl.lit("renewal_like"))
            .when(pl.col("_active")).then(pl.lit("expansion"))
            .otherwise(pl.lit("new_logo")).alias("cohort")
        )
    )
    if mode == "expansion":
        base = base.filter(pl.col("_active") & ~pl.col("_owned"))

    def frame_for(w: int) -> pl.DataFrame:
        end = window_end(cutoff, w)
        in_window = div_rows.filter((pl.col("invoice_date") > cutoff) & (pl.col("invoice_date") <= end))
        censored = end > data_end
        out = base.join(_net_by_customer(in_window, "net_revenue_window"), on="customer_id", how="left").with_columns(
            pl.col("net_revenue_window").fill_null(0.0),
        )
        label = pl.lit(None, dtype=pl.Int8) if censored else (pl.col("net_revenue_window") > min_net_revenue).cast(pl.Int8)
        return out.select(
            "customer_id",
            pl.lit(division).alias("division"),
            pl.lit(cutoff).alias("cutoff_date"),
            pl.lit(w).alias("window_months"),
            "cohort",
            "net_revenue_window",
            label.alias("label"),
            pl.lit(censored).alias("censored"),
        ).cast(LABEL_SCHEMA).sort("customer_id")

    w = window_months
    frame = frame_for(w)
    censored = window_end(cutoff, w) > data_end
    if not censored and auto_widen_min_positives is not None and auto_widen_max_months is not None:
        while (int(frame.get_column("label").sum() or 0) < auto_widen_min_positives
               and w < auto_widen_max_months and window_end(cutoff, w + 1) <= data_end):
            w += 1
            frame = frame_for(w)
    return LabelResult(frame=frame, division=division, cutoff=cutoff, window_months=w,
                       requested_window_months=window_months, censored=censored)
