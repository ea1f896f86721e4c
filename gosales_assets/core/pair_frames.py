"""Frames keyed by (customer_id, division) pairs: the key columns, column checks, whether outcomes are known.
Shared by the whitespace modules (signals, ranking, eligibility, capacity, evaluation)."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

PAIR_KEYS = ["customer_id", "division"]


def require_columns(frame: pl.DataFrame, cols: Iterable[str], what: str) -> None:
    """ValueError naming `what` when `frame` lacks any of `cols`."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing!r}; has {frame.columns!r}")


def keys_as_str(frame: pl.DataFrame) -> pl.DataFrame:
    """`customer_id` and `division` cast to strings (the pair keys every join uses)."""
    return frame.with_columns(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String))


def outcomes_known(frame: pl.DataFrame, outcome_col: str) -> bool:
    """True when `frame` has `outcome_col` with at least one non-null value."""
    if outcome_col not in frame.columns or frame.height == 0:
        return False
    return frame.get_column(outcome_col).null_count() < frame.height

