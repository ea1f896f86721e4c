"""Benchmark: `build_customer_features` for one cutoff at production scale.

Generates (with numpy, seeded, in a few seconds) a synthetic roster of 500,000 customers and ~10M
invoice lines over 12 divisions, then times one feature build and reports the peak RSS of the build.

    .venv/bin/python benchmarks/bench_features.py [--customers 500000] [--lines 10000000]

Target: < 60 s on 2 cores. This is a script, not a test (no timed assertions in the test suite).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl

from gosales_assets.core.features import build_customer_features, feature_stats
from gosales_assets.settings import FeatureSettings, load_settings


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def synthetic_star(
    n_customers: int, n_lines: int, sku_map: dict[str, str], start: dt.date, end: dt.date, seed: int = 7
) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    cust_ids = pl.Series("customer_id", np.arange(n_customers)).cast(pl.String).str.zfill(7)
    cust_ids = ("C" + cust_ids).alias("customer_id")
    bands = np.array(["1-10", "11-50", "51-200", "201-1000", "1000+"])
    first_seen_days = rng.integers(0, (end - start).days, n_customers)
    dim = pl.DataFrame(
        {
            "customer_id": cust_ids,
            "customer_name": cust_ids,
            "industry": rng.choice(["Machinery", "Aerospace", "Medical", "Consumer", "Automotive"], n_customers),
            "sub_industry": pl.Series([None] * n_customers, dtype=pl.String),
            "region": rng.choice(["West", "East", "Central", "South"], n_customers),
            "territory": rng.choice(["T1", "T2", "T3"], n_customers),
            "employee_band": bands[rng.integers(0, 5, n_customers)],
            "first_seen_days": first_seen_days,
        }
    ).with_columns(
        (pl.lit(start) + pl.duration(days=pl.col("first_seen_days"))).cast(pl.Date).alias("first_seen_date")
    ).drop("first_seen_days")

    # 60% of the roster buys; invoices of ~3 lines; heavy-tailed activity per customer
    n_invoices = n_lines // 3
    buyers = rng.choice(n_customers, int(n_customers * 0.6), replace=False)
    weight = rng.pareto(1.5, buyers.size) + 1.0
    inv_cust = buyers[rng.choice(buyers.size, n_invoices, p=weight / weight.sum())]
    inv_day = rng.integers(0, (end - start).days + 1, n_invoices)
    lines_per_inv = rng.integers(1, 6, n_invoices)  # mean 3
    inv_of_line = np.repeat(np.arange(n_invoices), lines_per_inv)
    n = inv_of_line.size
    skus = np.array(list(sku_map))
    sku_idx = rng.integers(0, skus.size, n)
    qty = rng.integers(1, 5, n).astype(np.float64)
    ret = rng.random(n) < 0.03
    qty[ret] *= -1
    price = rng.lognormal(7.0, 1.2, n)
    revenue = qty * price
    gp = revenue * rng.uniform(0.1, 0.5, n)
    gp[rng.random(n) < 0.1] = np.nan
    line_no = np.arange(n) - np.repeat(np.cumsum(lines_per_inv) - lines_per_inv, lines_per_inv)
    fact = pl.DataFrame(
        {
            "invoice_id": pl.Series(inv_of_line).cast(pl.String),
            "line_no": line_no.astype(np.int64),
            "invoice_date": inv_day[inv_of_line],
            "customer_id": cust_ids.gather(inv_cust[inv_of_line]),
            "sku": pl.Series(skus[sku_idx]),
            "quantity": qty,
            "revenue": revenue,
            "gross_profit": pl.Series(gp).fill_nan(None),
            "is_return": ret,
            "source_row": np.arange(n, dtype=np.int64),
        }
    ).with_columns(
        pl.lit(None, dtype=pl.String).alias("rep_id"),
        pl.lit("bench.parquet").alias("source_file"),
        ("INV" + pl.col("invoice_id")).alias("invoice_id"),
        (pl.lit(start) + pl.duration(days=pl.col("invoice_date"))).cast(pl.Date).alias("invoice_date"),
        pl.col("sku").replace_strict(sku_map, return_dtype=pl.String).alias("division"),
    ).select(
        "invoice_id", "line_no", "invoice_date", "customer_id", "sku", "division", "quantity", "revenue",
        "gross_profit", "rep_id", "is_return", "source_file", "source_row",
    )
    return fact, dim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=500_000)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--cutoff", type=dt.date.fromisoformat, default=dt.date(2026, 6, 30))
    ap.add_argument("--with-als-basket", action="store_true", help="also time market_basket_rules and fit_als")
    args = ap.parse_args()

    settings = load_settings()
    t0 = time.perf_counter()
    fact, dim = synthetic_star(args.customers, args.lines, settings.sku_map, settings.data.start_date, settings.data.end_date)
    t_gen = time.perf_counter() - t0
    print(f"generated {fact.height:,} lines, {dim.height:,} customers in {t_gen:.1f}s "
          f"(fact {fact.estimated_size('mb'):.0f} MB)")

    reset = _reset_peak_rss()
    rss_before = _peak_rss_mb()
    t0 = time.perf_counter()
    feats = build_customer_features(fact, dim, args.cutoff, settings.divisions, FeatureSettings(**settings.features.model_dump()))
    t_build = time.perf_counter() - t0
    peak = _peak_rss_mb()
    print(f"build_customer_features: {t_build:.1f}s -> {feats.height:,} rows x {feats.width} columns "
          f"({feats.estimated_size('mb'):.0f} MB)")
    print(f"peak RSS {'during build' if reset else 'of the process'}: {peak:,.0f} MB (before build: {rss_before:,.0f} MB)")
    t0 = time.perf_counter()
    stats = feature_stats(feats)
    print(f"feature_stats (incl. checksum {stats['checksum'][:12]}): {time.perf_counter() - t0:.1f}s")

    if args.with_als_basket:
        from gosales_assets.core.als import fit_als
        from gosales_assets.core.basket import market_basket_rules

        t0 = time.perf_counter()
        rules = market_basket_rules(
            fact, args.cutoff, settings.divisions,
            min_support=settings.basket.min_support, min_confidence=settings.basket.min_confidence,
        )
        print(f"market_basket_rules: {time.perf_counter() - t0:.1f}s ({rules.height} rules)")
        t0 = time.perf_counter()
        res = fit_als(fact, args.cutoff, settings.divisions, settings.als, settings.seeds.als)
        print(f"fit_als: {time.perf_counter() - t0:.1f}s ({res.n_customers:,} customers x {res.n_items} SKUs, "
              f"{res.n_interactions:,} cells; similarity {res.similarity.height:,} rows)")
        print(f"peak RSS of the process: {_peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
