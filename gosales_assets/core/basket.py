"""Pairwise division association rules from pre-cutoff customer portfolios (pure polars/numpy).

A customer *owns* division d at cutoff C when its net revenue in d over all lines dated <= C is > 0
(returns and credits net out). Rules are all ordered pairs (a -> b), a != b, of the configured divisions:

- n_customers  = customers owning at least one division at C (the basket population)
- support      = n_both / n_customers
- confidence   = n_both / n_antecedent          (0 when n_antecedent = 0)
- lift         = confidence / (n_consequent / n_customers) = n_both * n_customers / (n_a * n_b)
                 (0 when n_a or n_b is 0)
- passes_thresholds = support >= min_support and confidence >= min_confidence
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from gosales_assets.core.checksum import to_cents

__all__ = ["customer_portfolios", "market_basket_rules", "basket_lift_signals", "RULES_SCHEMA"]

RULES_SCHEMA = {
    "antecedent": pl.String,
    "consequent": pl.String,
    "n_antecedent": pl.Int64,
    "n_consequent": pl.Int64,
    "n_both": pl.Int64,
    "n_customers": pl.Int64,
    "support": pl.Float64,
    "confidence": pl.Float64,
    "lift": pl.Float64,
    "passes_thresholds": pl.Boolean,
}


def customer_portfolios(fact: pl.DataFrame, cutoff: dt.date) -> pl.DataFrame:
    """(customer_id, division) for every division a customer owns at C, sorted by both columns."""
    return (
        fact.lazy()
        .filter(pl.col("invoice_date") <= cutoff)  # leakage discipline: filter first
        .group_by("customer_id", "division")
        .agg(to_cents(pl.col("revenue")).sum().alias("net"))  # exact cents: ownership never flips on rounding
        .filter(pl.col("net") > 0)
        .select(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String))
        .sort("customer_id", "division")
        .collect()
    )


def _rules_from_portfolios(
    portfolios: pl.DataFrame, divisions: list[str], min_support: float, min_confidence: float
) -> pl.DataFrame:
    divisions = list(divisions)
    n_div = len(divisions)
    port = portfolios.filter(pl.col("division").is_in(pl.Series(divisions, dtype=pl.String).implode()))
    customers = port.get_column("customer_id").unique().sort()
    n_customers = customers.len()
    if n_customers:
        cidx = port.join(
            customers.to_frame().with_row_index("ci"), on="customer_id", how="left"
        ).get_column("ci").to_numpy()
        didx = port.get_column("division").replace_strict(divisions, list(range(n_div)), return_dtype=pl.Int64).to_numpy()
        owned = np.zeros((n_customers, n_div), dtype=np.int64)
        owned[cidx, didx] = 1
        co = owned.T @ owned  # co[a, b] = customers owning both a and b; diagonal = owners of a
    else:
        co = np.zeros((n_div, n_div), dtype=np.int64)

    ante: list[str] = []
    cons: list[str] = []
    n_a: list[int] = []
    n_b: list[int] = []
    n_ab: list[int] = []
    for a in range(n_div):
        for b in range(n_div):
            if a == b:
                continue
            ante.append(divisions[a])
            cons.append(divisions[b])
            n_a.append(int(co[a, a]))
            n_b.append(int(co[b, b]))
            n_ab.append(int(co[a, b]))
    frame = pl.DataFrame(
        {
            "antecedent": ante,
            "consequent": cons,
            "n_antecedent": n_a,
            "n_consequent": n_b,
            "n_both": n_ab,
        },
        schema={k: RULES_SCHEMA[k] for k in ("antecedent", "consequent", "n_antecedent", "n_consequent", "n_both")},
    ).with_columns(pl.lit(n_customers, dtype=pl.Int64).alias("n_customers"))
    nb, na, nab, nc = (pl.col(c).cast(pl.Float64) for c in ("n_both", "n_antecedent", "n_both", "n_customers"))
    frame = frame.with_columns(
        pl.when(nc > 0).then(nb / nc).otherwise(0.0).alias("support"),
        pl.when(na > 0).then(nab / na).otherwise(0.0).alias("confidence"),
        pl.when((na > 0) & (pl.col("n_consequent") > 0))
        .then(nab * nc / (na * pl.col("n_consequent").cast(pl.Float64)))
        .otherwise(0.0)
        .alias("lift"),
    ).with_columns(
        ((pl.col("support") >= min_support) & (pl.col("confidence") >= min_confidence)).alias("passes_thresholds")
    )
    return frame.select(list(RULES_SCHEMA)).sort("antecedent", "consequent")


def market_basket_rules(
    fact: pl.DataFrame,
    cutoff: dt.date,
    divisions: list[str],
    *,
    min_support: float,
    min_confidence: float,
) -> pl.DataFrame:
    """All ordered division pairs (a -> b) with counts, support, confidence, lift and the threshold flag.

    Only lines dated <= cutoff are read. Divisions not in `divisions` are ignored (the star schema
    guarantees there are none). Sorted by antecedent, consequent.
    """
    return _rules_from_portfolios(customer_portfolios(fact, cutoff), divisions, min_support, min_confidence)


def basket_lift_signals(portfolios: pl.DataFrame, rules: pl.DataFrame, target_division: str) -> pl.DataFrame:
    """Per customer of `portfolios`: max / mean lift of the passing rules (owned division -> target).

    Rules whose antecedent is the target itself are ignored. Customers with no such rule get
    max_lift = mean_lift = 0 and n_rules = 0. Sorted by customer_id.
    """
    known = set(rules.get_column("consequent").unique().to_list()) if rules.height else set()
    if rules.height and target_division not in known:
        raise ValueError(
            f"target division {target_division!r} is not a consequent of any rule; rules cover {sorted(known)!r} "
            "(division names are exact and case-sensitive)"
        )
    relevant = rules.filter(
        pl.col("passes_thresholds")
        & (pl.col("consequent") == target_division)
        & (pl.col("antecedent") != target_division)
    ).select(pl.col("antecedent").alias("division"), pl.col("lift"))
    customers = portfolios.select(pl.col("customer_id").cast(pl.String)).unique().sort("customer_id")
    hits = (
        portfolios.select(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String))
        .join(relevant, on="division", how="inner")
        .sort("customer_id", "division")  # fixed summation order -> bit-stable means
        .group_by("customer_id")
        .agg(
            pl.col("lift").max().alias("max_lift"),
            pl.col("lift").mean().alias("mean_lift"),
            pl.len().cast(pl.Int64).alias("n_rules"),
        )
    )
    return (
        customers.join(hits, on="customer_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("max_lift").fill_null(0.0),
            pl.col("mean_lift").fill_null(0.0),
            pl.col("n_rules").fill_null(0),
        )
        .sort("customer_id")
    )
