"""Customer feature matrix as of a cutoff date (pure polars, no Dagster).

One row per customer known at the cutoff C, every feature computed only from invoice lines dated <= C
(the fact table is filtered first, everything is computed after). No wall clock is read anywhere.

Feature names follow `family__scope__metric__window` where scope is `all` or a division slug
(`settings.division_slug`, e.g. `success_plan`, `post_processing`) and window is `<N>m`, `all` (all
history up to C) or `static` (a customer attribute):

| family      | metrics                                                                            |
|-------------|------------------------------------------------------------------------------------|
| `rfm`       | `txn_count`, `revenue_sum`, `gp_sum`, `sku_count`, `aov` per window and scope;     |
|             | `recency_days` (window `all`) per scope                                            |
| `traj`      | `revenue_slope`, `revenue_std` over the 12 monthly buckets ending at C             |
| `life`      | `tenure_days`, `ipi_mean_days`, `ipi_last_days` (window `all`), `active_months` (24m) |
| `season`    | `q1_share` .. `q4_share` of purchase revenue over the last 24 months               |
| `diversity` | `divisions_owned` (divisions with net revenue > 0 up to C)                         |
| `returns`   | `return_rate` over 24 months and all history                                       |
| `xdiv`      | `share` per division: empirical-Bayes smoothed share of net revenue (all history) |
| `attr`      | `industry`, `region`, `employee_band` (raw strings), `employee_band_ordinal`      |

Conventions (also in the catalog docs):
- A *purchase line* is a line with `is_return = False`; a *return line* has `is_return = True`.
- Windows are `(C - N months, C]`: a line dated exactly C counts, one dated exactly N months before C
  does not. For a month-end C, "N months before" is the month-end N months earlier.
- `txn_count` = distinct invoices with at least one purchase line in the window; `sku_count` = distinct
  SKUs on purchase lines; `revenue_sum` / `gp_sum` are NET (return lines included, gross profit nulls
  count as 0); `aov` = revenue_sum / txn_count, 0 when txn_count = 0.
- Zero activity gives 0 for counts, sums, shares and rates, and NULL for quantities that are undefined
  without a purchase: `recency_days`, `ipi_mean_days`, `ipi_last_days`, and `tenure_days` when the
  customer has neither a line nor a first_seen_date <= C. Nulls are left to the model to impute; no
  sentinel values.
- `recency_days` = days from the last purchase line <= C to C; `tenure_days` = C minus the earlier of
  the first line and first_seen_date (a first_seen_date after C is ignored); `ipi_*` = gaps between
  distinct purchase dates (mean = (last - first) / (n_dates - 1), last = last gap), null with < 2 dates;
  `active_months` = distinct calendar months with a purchase line in the last 24 months.
- `traj`: OLS slope (currency per month) and population std (ddof=0) of the 12 calendar-month net
  revenue buckets ending with C's month (empty months = 0).
- `season`: purchase-line revenue by calendar quarter / total purchase revenue, last 24 months.
- `returns`: returned revenue (-revenue of return lines) / gross purchase revenue, capped at 1 by using
  max(gross, returned) as the denominator (returns of purchases made before the window); 0 when none.
- `xdiv`: (rev_d + k * pop_d) / (rev_total + k) with rev_d = max(net revenue in d, 0) over all history
  <= C, pop_d = the same share over the whole pre-cutoff population, k = eb_prior_strength; with no
  revenue at all (and k = 0) the share is pop_d. Shares sum to 1 per customer.
- The roster: customers of dim_customer except those first seen after C without a line <= C, plus (for
  robustness; the star contract forbids them) customers with lines but no dim row (null attributes).
- Money features are raw (no winsorisation or scaling; that is learned inside the model pipeline).
- Money is aggregated as exact Int128 cents and row-wise sums are fixed-order folds, so the result is
  bit-reproducible across runs and processes (parallel float sums are not); `frame_checksum` of two
  builds on the same pre-cutoff data is identical.
- Division names must be the configured canonical names; an unknown name in the fact raises.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import math
import operator
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from gosales_assets.core.checksum import frame_checksum, from_cents, to_cents
from gosales_assets.core.labels import customers_known_at
from gosales_assets.settings import FeatureSettings, division_slug

__all__ = [
    "build_customer_features",
    "feature_catalog",
    "feature_stats",
    "frame_checksum",
    "months_before",
    "employee_band_ordinal",
    "RFM_METRICS",
]

RFM_METRICS = ("txn_count", "revenue_sum", "gp_sum", "sku_count", "aov")
_COUNT_DTYPE = pl.Int64
_IDX = pl.UInt32
_TRAJ_MONTHS = 12
_LIFE_MONTHS = 24
_SEASON_MONTHS = 24
_RETURNS_MONTHS = 24


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------
def months_before(cutoff: dt.date, n: int) -> dt.date:
    """The date N calendar months before `cutoff` (exclusive start of the window `(result, cutoff]`).

    A month-end cutoff maps to the month-end N months earlier (2024-06-30, 4 -> 2024-02-29); any other
    day is clamped to the length of the target month.
    """
    total = cutoff.year * 12 + (cutoff.month - 1) - n
    year, month0 = divmod(total, 12)
    month = month0 + 1
    last = calendar.monthrange(year, month)[1]
    if cutoff.day == calendar.monthrange(cutoff.year, cutoff.month)[1]:
        return dt.date(year, month, last)
    return dt.date(year, month, min(cutoff.day, last))


def employee_band_ordinal(col: str | pl.Expr = "employee_band") -> pl.Expr:
    """0..4 ordinal of an employee band string ("1-10"=0, "11-50"=1, "51-200"=2, "201-1000"=3, "1000+"=4).

    Parsed from the band's lower bound, so "1001-5000" or "5000+" also map to 4; null when unknown.
    """
    expr = pl.col(col) if isinstance(col, str) else col
    lower = (
        expr.str.strip_chars()
        .str.extract(r"^(\d[\d,]*)", 1)
        .str.replace_all(",", "")
        .cast(pl.Int64, strict=False)
    )
    return (
        pl.when(lower.is_null())
        .then(None)
        .when(lower <= 10)
        .then(0)
        .when(lower <= 50)
        .then(1)
        .when(lower <= 200)
        .then(2)
        .when(lower < 1000)
        .then(3)
        .otherwise(4)
        .cast(pl.Int8)
    )


def _fold_add(exprs: list[pl.Expr]) -> pl.Expr:
    """e0 + e1 + ... evaluated left to right, row-wise (a fixed association order, unlike a parallel
    horizontal reduction, so float results are bit-reproducible)."""
    return functools.reduce(operator.add, exprs)


def _days_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    return (later - earlier).dt.total_days().cast(pl.Int64)


def _check_divisions(fact: pl.LazyFrame, divisions: list[str]) -> None:
    if len(set(divisions)) != len(divisions):
        raise ValueError(f"duplicate division names in {divisions!r}")
    slugs = [division_slug(d) for d in divisions]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"division names collide on their slugs: {divisions!r}")
    seen = fact.select(pl.col("division").unique()).collect().to_series().to_list()
    unknown = sorted(str(d) for d in seen if d not in set(divisions))
    if unknown:
        raise ValueError(
            f"fact_transactions has division names that are not configured (names are exact and "
            f"case-sensitive): {unknown!r}; configured: {divisions!r}"
        )


def _roster(fact_c: pl.LazyFrame, dim_customer: pl.DataFrame, cutoff: dt.date) -> pl.DataFrame:
    """Customers known at C (the same rule as the labels: `customers_known_at`), sorted by customer_id, with a
    dense UInt32 index `cidx` and the attributes. Customers with lines but missing from dim_customer (the star
    contract forbids it) still get a row, with null attributes."""
    known = customers_known_at(fact_c.select("customer_id", "invoice_date").collect(), dim_customer, cutoff)
    attrs = dim_customer.select(
        pl.col("customer_id").cast(pl.String),
        pl.col("industry").cast(pl.String),
        pl.col("region").cast(pl.String),
        pl.col("employee_band").cast(pl.String),
        pl.col("first_seen_date").cast(pl.Date),
    ).unique(subset="customer_id", keep="first", maintain_order=True)
    roster = known.join(attrs, on="customer_id", how="left").sort("customer_id")
    return roster.with_row_index("cidx").with_columns(pl.col("cidx").cast(_IDX))


def _placed(n: int, rows: pl.Series, values: pl.Series) -> pl.Series:
    """A column of n rows (the roster's 0..n-1) holding `values` at the positions `rows`, null elsewhere: `cidx` is the
    roster's dense index, so an aggregate is put on the roster by position (a join on 0..n-1 gathered every column
    again)."""
    return pl.repeat(None, n, dtype=values.dtype, eager=True).scatter(rows, values).alias(values.name)


def _align(n: int, agg: pl.DataFrame) -> pl.DataFrame:
    """Left-align an aggregate keyed by `cidx` onto 0..n-1 (missing customers -> nulls), drop the key."""
    idx = agg.get_column("cidx")
    return pl.DataFrame([_placed(n, idx, agg.get_column(col)) for col in agg.columns if col != "cidx"])


def _wide(n: int, agg: pl.DataFrame, values: list[str], n_div: int, names: dict[str, list[str]]) -> pl.DataFrame:
    """(cidx, didx, values...) -> n rows (the roster's 0..n-1), one column per (value, didx) named `names[v][didx]`,
    value-major; null where a customer has no row for that didx. `didx` is a dense index too (a division, a month
    bucket): each group's values are put at their rows by position (3-5x less CPU than a pivot and a join)."""
    parts = agg.partition_by("didx", as_dict=True, include_key=False) if agg.height else {}
    none = agg.head(0)  # a group nobody has: every row null, typed
    return pl.DataFrame([_placed(n, part.get_column("cidx"), part.get_column(v)).alias(names[v][j])
                         for v in values for j in range(n_div) for part in [parts.get((j,), none)]])


def _rfm_blocks(base: pl.DataFrame, cutoff: dt.date, n: int, slugs: list[str],
                windows_months: list[int]) -> list[pl.DataFrame]:
    """The RFM columns of each window, overall and per division, aligned on the roster's `cidx` 0..n-1."""
    n_div = len(slugs)
    blocks: list[pl.DataFrame] = []
    # ---- RFM per window: overall and per division (group_by + pivot, one pass per window) --------
    for months in windows_months:
        w = f"{months}m"
        start = months_before(cutoff, months)
        win = base.lazy().filter(pl.col("d") > start)
        aggs = [
            pl.col("inv").filter(~pl.col("ret")).n_unique().cast(_COUNT_DTYPE).alias("txn_count"),
            pl.col("rev").sum().alias("revenue_sum"),
            pl.col("gp").sum().alias("gp_sum"),
            pl.col("sku").filter(~pl.col("ret")).n_unique().cast(_COUNT_DTYPE).alias("sku_count"),
        ]
        overall = win.group_by("cidx").agg(aggs).collect()
        overall = overall.rename({m: f"rfm__all__{m}__{w}" for m in RFM_METRICS if m != "aov"})
        per_div = win.group_by("cidx", "didx").agg(aggs).collect()
        names = {m: [f"rfm__{s}__{m}__{w}" for s in slugs] for m in RFM_METRICS if m != "aov"}
        wide = _wide(n, per_div, ["txn_count", "revenue_sum", "gp_sum", "sku_count"], n_div, names)
        window_block = pl.concat([_align(n, overall), wide], how="horizontal").fill_null(0)
        ordered: list[pl.Expr] = []
        for scope in ["all", *slugs]:
            txn = pl.col(f"rfm__{scope}__txn_count__{w}")
            rev = pl.col(f"rfm__{scope}__revenue_sum__{w}")
            for m in RFM_METRICS:
                name = f"rfm__{scope}__{m}__{w}"
                if m == "aov":
                    ordered.append(pl.when(txn > 0).then(from_cents(rev) / txn).otherwise(0.0).alias(name))
                elif m in ("revenue_sum", "gp_sum"):
                    ordered.append(from_cents(pl.col(name)).alias(name))
                else:
                    ordered.append(pl.col(name))
        blocks.append(window_block.select(ordered))
    return blocks


def _other_blocks(base: pl.DataFrame, purch: pl.DataFrame, roster: pl.DataFrame, cutoff: dt.date, n: int,
                  slugs: list[str], params: FeatureSettings) -> list[pl.DataFrame]:
    """Every column after the RFM windows, in their order: recency, trajectory, lifecycle, seasonality, diversity,
    returns, cross-division shares, attributes; aligned on the roster's `cidx` 0..n-1."""
    n_div = len(slugs)
    c_month = cutoff.year * 12 + cutoff.month
    blocks: list[pl.DataFrame] = []

    # ---- recency (days since last purchase line), overall and per division; null when never ----
    last_all = purch.group_by("cidx").agg(
        _days_between(pl.lit(cutoff), pl.col("d").max()).alias("rfm__all__recency_days__all")
    )
    last_div = purch.group_by("cidx", "didx").agg(_days_between(pl.lit(cutoff), pl.col("d").max()).alias("rec"))
    rec_names = {"rec": [f"rfm__{s}__recency_days__all" for s in slugs]}
    blocks.append(_align(n, last_all))
    blocks.append(_wide(n, last_div, ["rec"], n_div, rec_names))

    # ---- trajectory: OLS slope and (population) std of the 12 monthly net revenue buckets ----------
    # bucket k = 0..11, k = 11 is the cutoff's month; months without lines are 0. Computed row-wise on
    # the buckets, one column per month (deterministic), slope = sum_k (k - 5.5) y_k / sum_k (k - 5.5)^2.
    k_mean = (_TRAJ_MONTHS - 1) / 2.0
    sxx = sum((k - k_mean) ** 2 for k in range(_TRAJ_MONTHS))
    y_names = {"y": [f"_y{k:02d}" for k in range(_TRAJ_MONTHS)]}
    monthly = (
        base.lazy()
        .with_columns((pl.col("mkey") - c_month + (_TRAJ_MONTHS - 1)).cast(pl.UInt8, strict=False).alias("didx"))
        .filter(pl.col("didx").is_not_null() & (pl.col("didx") < _TRAJ_MONTHS))
        .group_by("cidx", "didx")
        .agg(pl.col("rev").sum().alias("y"))
        .collect()
    )
    # Row-wise sums are written as explicit left folds: `sum_horizontal` on floats may associate the
    # additions differently from run to run (parallel reduction), which breaks bit-reproducibility.
    y_wide = _wide(n, monthly, ["y"], _TRAJ_MONTHS, y_names).with_columns(
        [pl.col(c).fill_null(0) for c in y_names["y"]]
    )
    # slope numerator in exact integer cents: sum_k (2k - 11) * y_k = 2 * sum_k (k - 5.5) * y_k
    slope_num = _fold_add([int(2 * k - (_TRAJ_MONTHS - 1)) * pl.col(c) for k, c in enumerate(y_names["y"])])
    y_float = [from_cents(pl.col(c)) for c in y_names["y"]]
    y_mean = from_cents(_fold_add([pl.col(c) for c in y_names["y"]])) / _TRAJ_MONTHS
    # (a customer without a line in the 12 months has every bucket 0: slope and std 0.0)
    traj = y_wide.select(
        (from_cents(slope_num) / (2.0 * sxx)).alias("traj__all__revenue_slope__12m"),
        (_fold_add([(y - y_mean) ** 2 for y in y_float]) / _TRAJ_MONTHS).sqrt().alias("traj__all__revenue_std__12m"),
    )
    blocks.append(traj)

    # ---- lifecycle ---------------------------------------------------------------------------------
    first_line = base.group_by("cidx").agg(pl.col("d").min().alias("first_d"))
    first = (
        roster.select("cidx", "first_seen_date")
        .join(first_line, on="cidx", how="left", maintain_order="left")
        .select(
            pl.col("cidx"),
            _days_between(
                pl.lit(cutoff),
                pl.min_horizontal(
                    pl.col("first_d"),
                    pl.when(pl.col("first_seen_date") <= cutoff).then(pl.col("first_seen_date")),
                ),
            ).alias("life__all__tenure_days__all"),
        )
    )
    dates = (
        purch.lazy()
        .select("cidx", "d")
        .unique()
        .sort("cidx", "d")
        .with_columns(
            pl.when(pl.col("cidx") == pl.col("cidx").shift(1))
            .then(_days_between(pl.col("d"), pl.col("d").shift(1)))
            .alias("gap")
        )
        .group_by("cidx")
        .agg(
            pl.len().alias("n_dates"),
            _days_between(pl.col("d").max(), pl.col("d").min()).alias("span"),
            pl.col("gap").last().alias("life__all__ipi_last_days__all"),
        )
        .select(
            "cidx",
            pl.when(pl.col("n_dates") >= 2)
            .then(pl.col("span") / (pl.col("n_dates") - 1))
            .alias("life__all__ipi_mean_days__all"),
            "life__all__ipi_last_days__all",
        )
        .collect()
    )
    active = (
        purch.lazy()
        .filter(pl.col("d") > months_before(cutoff, _LIFE_MONTHS))
        .group_by("cidx")
        .agg(pl.col("mkey").n_unique().cast(_COUNT_DTYPE).alias("life__all__active_months__24m"))
        .collect()
    )
    blocks.append(first.drop("cidx"))
    blocks.append(_align(n, dates))
    blocks.append(_align(n, active).fill_null(0))

    # ---- seasonality: share of purchase revenue by calendar quarter, last 24 months ------------------
    q_names = {"rev": [f"season__all__q{q}_share__24m" for q in range(1, 5)]}
    quarters = (
        purch.lazy()
        .filter(pl.col("d") > months_before(cutoff, _SEASON_MONTHS))
        .with_columns((pl.col("d").dt.quarter().cast(pl.UInt8) - 1).alias("didx"))
        .group_by("cidx", "didx")
        .agg(pl.col("rev").sum())
        .collect()
    )
    q_wide = _wide(n, quarters, ["rev"], 4, q_names).fill_null(0)
    q_total = _fold_add([pl.col(c) for c in q_names["rev"]])  # integer cents: exact
    blocks.append(
        q_wide.select(
            [
                pl.when(q_total > 0).then(pl.col(c).cast(pl.Float64) / q_total).otherwise(0.0).alias(c)
                for c in q_names["rev"]
            ]
        )
    )

    # ---- net revenue per division (all history): diversity + empirical-Bayes cross-division shares ---
    net_div = base.group_by("cidx", "didx").agg(pl.col("rev").sum().alias("net"))
    owned = (
        net_div.filter(pl.col("net") > 0)
        .group_by("cidx")
        .agg(pl.len().cast(_COUNT_DTYPE).alias("diversity__all__divisions_owned__all"))
    )
    blocks.append(_align(n, owned).fill_null(0))

    # ---- returns rate -----------------------------------------------------------------------------
    def _return_rate(frame: pl.LazyFrame, name: str) -> pl.DataFrame:
        # `0 - rev`, not `-rev`: polars has no unary minus for the Int128 cents
        returned = pl.when(pl.col("ret")).then((0 - pl.col("rev")).clip(lower_bound=0)).otherwise(0).sum()
        gross = pl.when(~pl.col("ret")).then(pl.col("rev").clip(lower_bound=0)).otherwise(0).sum()
        return (
            frame.group_by("cidx")
            .agg(returned.alias("r"), gross.alias("g"))
            .select(
                "cidx",
                pl.when(pl.max_horizontal("r", "g") > 0)
                .then(pl.col("r").cast(pl.Float64) / pl.max_horizontal("r", "g"))
                .otherwise(0.0)
                .alias(name),
            )
            .collect()
        )

    blocks.append(
        _align(
            n,
            _return_rate(
                base.lazy().filter(pl.col("d") > months_before(cutoff, _RETURNS_MONTHS)),
                f"returns__all__return_rate__{_RETURNS_MONTHS}m",
            ),
        ).fill_null(0.0)
    )
    blocks.append(_align(n, _return_rate(base.lazy(), "returns__all__return_rate__all")).fill_null(0.0))

    # positive part of the net revenue per division; population shares from the same pre-cutoff data
    pos = net_div.with_columns(pl.col("net").clip(lower_bound=0))
    div_tot = pos.group_by("didx").agg(pl.col("net").sum())
    grand = int(div_tot.get_column("net").sum()) if div_tot.height else 0
    if grand > 0:
        pop = [0.0] * n_div
        for didx, v in div_tot.iter_rows():
            pop[didx] = v / grand
    else:
        pop = [1.0 / n_div] * n_div  # no revenue at all: uninformative prior
    k = float(params.eb_prior_strength)
    x_names = {"net": [f"xdiv__{s}__share__all" for s in slugs]}
    x_wide = _wide(n, pos, ["net"], n_div, x_names).fill_null(0)
    x_total = from_cents(_fold_add([pl.col(c) for c in x_names["net"]]))  # exact integer total
    x_wide = x_wide.select(pl.all(), x_total.alias("_x_total"))
    x_total = pl.col("_x_total")
    x_cols = []
    for j, c in enumerate(x_names["net"]):
        denom = x_total + k
        x_cols.append(
            pl.when(denom > 0).then((from_cents(pl.col(c)) + k * pop[j]) / denom).otherwise(pop[j]).alias(c)
        )
    blocks.append(x_wide.select(x_cols))

    # ---- static attributes (only from the customers table) -------------------------------------------
    blocks.append(
        roster.select(
            pl.col("industry").alias("attr__all__industry__static"),
            pl.col("region").alias("attr__all__region__static"),
            pl.col("employee_band").alias("attr__all__employee_band__static"),
            employee_band_ordinal("employee_band").alias("attr__all__employee_band_ordinal__static"),
        )
    )
    return blocks


# ---------------------------------------------------------------------------------------------------
# the builder
# ---------------------------------------------------------------------------------------------------
def build_customer_features(
    fact: pl.DataFrame,
    dim_customer: pl.DataFrame,
    cutoff: dt.date,
    divisions: list[str],
    params: FeatureSettings,
) -> pl.DataFrame:
    """Feature matrix for cutoff C: one row per customer known at C, sorted by customer_id.

    Only lines with invoice_date <= C are read. See the module docstring for names and conventions.
    """
    if isinstance(cutoff, dt.datetime):
        cutoff = cutoff.date()
    divisions = list(divisions)
    slugs = [division_slug(d) for d in divisions]
    n_div = len(divisions)

    fact_c = (
        fact.lazy()
        .filter(pl.col("invoice_date") <= cutoff)  # leakage discipline: filter first, compute after
        .with_columns(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String))
    )
    _check_divisions(fact_c, divisions)

    roster = _roster(fact_c, dim_customer, cutoff)
    n = roster.height
    key = roster.select("customer_id", "cidx").lazy()

    # Money is aggregated as exact Int128 cents (see checksum.to_cents): parallel float sums are not
    # bit-reproducible, integer sums are. Converted back to Float64 currency units after aggregation.
    base = (
        fact_c.join(key, on="customer_id", how="inner")
        .select(
            pl.col("cidx"),
            pl.col("division").replace_strict(divisions, list(range(n_div)), return_dtype=pl.UInt8).alias("didx"),
            pl.col("invoice_date").alias("d"),
            (pl.col("invoice_date").dt.year().cast(pl.Int32) * 12 + pl.col("invoice_date").dt.month().cast(pl.Int32))
            .alias("mkey"),
            pl.col("invoice_id").cast(pl.String).alias("inv"),
            pl.col("sku").cast(pl.String),
            to_cents(pl.col("revenue")).alias("rev"),
            to_cents(pl.col("gross_profit")).alias("gp"),
            pl.col("is_return")
            .fill_null((pl.col("quantity") < 0) | (pl.col("revenue") < 0))
            .fill_null(False)
            .alias("ret"),
        )
        .collect()
    )
    purch = base.filter(~pl.col("ret"))

    # The RFM windows (about a third of the build) are computed in a second thread while this one computes the rest:
    # polars works outside the GIL (with one thread of its own per thread: the package's POLARS_MAX_THREADS), each
    # block is a function of `base` alone, and the blocks are put in their fixed order, so the bytes are those of one
    # after the other. A cutoff's features step builds beside the ALS fit; at the monthly increment it is alone on
    # the machine, and the build was its longest thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rfm_windows") as pool:
        rfm = pool.submit(_rfm_blocks, base, cutoff, n, slugs, list(params.rfm_windows_months))
        others = _other_blocks(base, purch, roster, cutoff, n, slugs, params)
        blocks = [roster.select("customer_id"), *rfm.result(), *others]
    return pl.concat(blocks, how="horizontal")


# ---------------------------------------------------------------------------------------------------
# catalog and stats
# ---------------------------------------------------------------------------------------------------
def _split_name(name: str) -> tuple[str, str | None, str | None, str | None]:
    parts = name.split("__")
    if len(parts) == 4:
        return parts[0], parts[1], parts[2], parts[3]
    return parts[0], None, "__".join(parts[1:]) or None, None


def _feature_columns(features: pl.DataFrame) -> list[str]:
    return [c for c in features.columns if c != "customer_id" and "__" in c]


def feature_catalog(features: pl.DataFrame) -> pl.DataFrame:
    """One row per feature column: name, family, scope, metric, window, dtype, coverage.

    coverage = share of rows whose value is non-null and non-zero (non-empty for strings).
    """
    cols = _feature_columns(features)
    schema = features.schema  # built anew on every access in polars: once, not once per column
    rows = {"name": [], "family": [], "scope": [], "metric": [], "window": [], "dtype": []}
    exprs: list[pl.Expr] = []
    for c in cols:
        fam, scope, metric, window = _split_name(c)
        dtype = schema[c]
        rows["name"].append(c)
        rows["family"].append(fam)
        rows["scope"].append(scope)
        rows["metric"].append(metric)
        rows["window"].append(window)
        rows["dtype"].append(str(dtype))
        if dtype.is_numeric():
            present = pl.col(c).is_not_null() & (pl.col(c) != 0)
        elif dtype == pl.Boolean:
            present = pl.col(c).fill_null(False)
        elif dtype == pl.String:
            present = pl.col(c).is_not_null() & (pl.col(c) != "")
        else:
            present = pl.col(c).is_not_null()
        exprs.append(present.mean().alias(c))
    if features.height and exprs:
        cov_row = features.select(exprs).row(0)
        coverage = [float(v) if v is not None else 0.0 for v in cov_row]
    else:
        coverage = [0.0] * len(cols)
    return pl.DataFrame(
        {**rows, "coverage": coverage},
        schema={
            "name": pl.String,
            "family": pl.String,
            "scope": pl.String,
            "metric": pl.String,
            "window": pl.String,
            "dtype": pl.String,
            "coverage": pl.Float64,
        },
    )


def _clean(v: object) -> float | None:
    if v is None:
        return None
    f = float(v)  # type: ignore[arg-type]
    return None if math.isnan(f) or math.isinf(f) else f


def feature_stats(features: pl.DataFrame, columns: list[str] | None = None, *, checksum: str | None = None) -> dict:
    """JSON-ready summary: row/feature counts, checksum, and per feature null rate (+ p1/p99 for numbers).

    `columns` defaults to the columns named `family__scope__metric__window`; pass them explicitly for signal
    tables named otherwise (basket rules, ALS similarities). The quantiles are informational winsorisation
    caps; the model pipeline learns its own. `checksum`: `frame_checksum(features)` when the caller has it already
    (at 500,000 customers it costs ~1 CPU-s).
    """
    cols = _feature_columns(features) if columns is None else list(columns)
    schema = features.schema  # built anew on every access in polars: once, not once per column
    numeric = [c for c in cols if schema[c].is_numeric()]
    per: dict[str, dict] = {}
    if features.height:
        nulls = features.select([pl.col(c).null_count().alias(c) for c in cols]).row(0, named=True) if cols else {}
        q = (
            features.select(
                [pl.col(c).cast(pl.Float64).quantile(0.01, interpolation="linear").alias(f"{c}|p01") for c in numeric]
                + [pl.col(c).cast(pl.Float64).quantile(0.99, interpolation="linear").alias(f"{c}|p99") for c in numeric]
            ).row(0, named=True)
            if numeric
            else {}
        )
    else:
        nulls, q = {c: 0 for c in cols}, {}
    for c in cols:
        entry: dict = {
            "dtype": str(schema[c]),
            "null_rate": (nulls[c] / features.height) if features.height else 0.0,
        }
        if c in numeric:
            entry["p01"] = _clean(q.get(f"{c}|p01"))
            entry["p99"] = _clean(q.get(f"{c}|p99"))
        per[c] = entry
    return {
        "n_rows": features.height,
        "n_features": len(cols),
        "checksum": checksum if checksum is not None else frame_checksum(features),
        "features": per,
    }
