"""What the whitespace ranking needs from the star schema at a cutoff: owned divisions, EV history, customer
attributes, and the legacy heuristic's revenue and recency, from fact lines dated <= C only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from gosales_assets.core.basket import customer_portfolios
from gosales_assets.core.calendar import add_months
from gosales_assets.core.checksum import from_cents, to_cents
from gosales_assets.core.ranking import CUSTOMER_ATTRS
from gosales_assets.core.star import in_key_order

__all__ = ["WhitespaceInputs", "owned_divisions", "whitespace_inputs"]


@dataclass(frozen=True)
class WhitespaceInputs:
    owned: pl.DataFrame  # customer_id, division owned at C (net revenue > 0 within the look-back)
    ev_history: pl.DataFrame  # customer_id, division, revenue: purchase lines dated <= C
    customers: pl.DataFrame  # customer_id + CUSTOMER_ATTRS (rep = most recent rep by C, last activity by C)
    customer_revenue: pl.DataFrame  # customer_id, revenue: total net revenue by C (legacy heuristic)
    recency: pl.DataFrame  # customer_id, recency_days at C (legacy heuristic)


def owned_divisions(fact: pl.DataFrame, cutoff: dt.date, ownership_lookback_months: int | None = None
                    ) -> pl.DataFrame:
    """customer_id, division owned at C: the portfolios (`core.basket.customer_portfolios`: net revenue > 0 in exact
    cents over the lines dated <= C) of the look-back's lines when there is one. A customer's ownership reads only
    that customer's lines, so the facts of some customers give exactly their rows of the whole table's answer."""
    if ownership_lookback_months is not None:
        fact = fact.filter(pl.col("invoice_date") > add_months(cutoff, -ownership_lookback_months))
    return customer_portfolios(fact, cutoff)


def whitespace_inputs(fact: pl.DataFrame, dim_customer: pl.DataFrame, cutoff: dt.date,
                      ownership_lookback_months: int | None = None) -> WhitespaceInputs:
    """Everything the ranker needs from the facts, using only lines dated <= C."""
    hist = fact.filter(pl.col("invoice_date") <= cutoff)
    owned = owned_divisions(hist, cutoff, ownership_lookback_months)
    purchases = hist.filter(~pl.col("is_return"))
    last = (
        in_key_order(purchases)  # the last rep in line order (as read: the fact is in it, checked, not sorted)
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
