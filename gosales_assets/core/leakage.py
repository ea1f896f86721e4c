"""Leakage audits as plain functions (the asset checks and the gauntlet call these).

- `source_date_audit`: the latest date among the rows a cutoff's computation read must be ≤ the cutoff.
- `perturb_after_cutoff`: a copy of the post-cutoff rows changed in every way that could leak (amounts,
  signs, SKUs moved to other divisions, brand-new customers, dates moved within the future); a computation for
  cutoff C must give identical output whether it sees the real future rows, the perturbed ones or none.
- `invariance_report`: runs a builder on (pre ∪ perturbed post) and compares with the output built from pre only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from gosales_assets.core.checksum import frame_checksum


@dataclass(frozen=True)
class AuditResult:
    passed: bool
    detail: str
    values: dict


def source_date_audit(rows: pl.DataFrame, cutoff: dt.date, date_col: str = "invoice_date") -> AuditResult:
    """PASS when no row dated after `cutoff` is among `rows` (the rows a computation actually read)."""
    if rows.height == 0:
        return AuditResult(True, "no source rows read", {"latest_source_date": None, "rows_after_cutoff": 0})
    latest = rows.get_column(date_col).max()
    after = rows.filter(pl.col(date_col) > cutoff).height
    detail = (f"latest source date {latest} ≤ cutoff {cutoff}" if after == 0
              else f"{after} source rows dated after cutoff {cutoff} (latest {latest})")
    return AuditResult(after == 0, detail, {"latest_source_date": str(latest), "rows_after_cutoff": after})


def perturb_after_cutoff(fact: pl.DataFrame, cutoff: dt.date, seed: int = 0) -> pl.DataFrame:
    """`fact` with every row dated after `cutoff` changed; rows on or before the cutoff untouched.

    Perturbations: revenue/gross profit scaled and sign-flipped at random, divisions and SKUs rotated between
    rows, dates shuffled among the post-cutoff dates, plus extra rows for new customers and for existing ones.
    """
    pre = fact.filter(pl.col("invoice_date") <= cutoff)
    post = fact.filter(pl.col("invoice_date") > cutoff)
    if post.height == 0:
        # Invent future rows from the last pre-cutoff ones so the test still has something to ignore.
        post = pre.tail(min(pre.height, 50)).with_columns(
            (pl.lit(cutoff) + pl.duration(days=pl.int_range(1, pl.len() + 1))).alias("invoice_date"))
    rng = np.random.default_rng(seed)
    n = post.height
    scale = rng.choice([-3.0, -1.0, 0.5, 2.0, 10.0], size=n)
    perm = rng.permutation(n)
    changed = post.with_columns(
        (pl.col("revenue") * pl.Series(scale)).alias("revenue"),
        (pl.col("gross_profit") * pl.Series(scale)).alias("gross_profit"),
        pl.col("invoice_date").gather(pl.Series(perm)).alias("invoice_date"),
        pl.col("sku").gather(pl.Series(np.roll(np.arange(n), 1))).alias("sku"),
        pl.col("division").gather(pl.Series(np.roll(np.arange(n), 1))).alias("division"),
    )
    newcomers = post.with_columns(
        (pl.lit("LEAK-") + pl.col("customer_id")).alias("customer_id"),
        (pl.lit("LEAK-") + pl.col("invoice_id")).alias("invoice_id"),
    )
    return pl.concat([pre, changed, newcomers], how="vertical_relaxed")


def invariance_report(build: Callable[[pl.DataFrame], pl.DataFrame], fact: pl.DataFrame, cutoff: dt.date,
                      expected_checksum: str, seed: int = 0) -> AuditResult:
    """PASS when `build` on `fact` with its post-cutoff rows perturbed gives `expected_checksum`.

    `expected_checksum` is the checksum of the output built from rows dated ≤ cutoff only (what the asset
    stored). `build` receives post-cutoff rows here; a leakage-safe builder ignores them.
    """
    perturbed = frame_checksum(build(perturb_after_cutoff(fact, cutoff, seed)))
    passed = perturbed == expected_checksum
    detail = ("identical output whether rows after the cutoff are absent or perturbed" if passed
              else "output changes when rows dated after the cutoff change: leakage")
    return AuditResult(passed, detail, {"checksum_stored": expected_checksum, "checksum_perturbed": perturbed})
