"""Unit tests for core/features.py, core/division_features.py and core/checksum.py on hand-made fixtures.

Cutoff C = 2024-06-30 throughout. Windows are (C - N months, C]: 3m starts after 2024-03-31, 6m after
2023-12-31, 12m after 2023-06-30, 24m after 2022-06-30.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.basket import basket_lift_signals, customer_portfolios, market_basket_rules
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.division_features import (
    LIFT_PERCENTILE_BINS,
    PERCENTILE_SIGNAL_COLUMNS,
    TARGET_SIGNAL_COLUMNS,
    build_division_features,
    cutoff_percentile,
)
from gosales_assets.core.features import (
    build_customer_features,
    employee_band_ordinal,
    feature_catalog,
    feature_stats,
    months_before,
)
from gosales_assets.settings import FeatureSettings, division_slug
from gosales_assets_tests.conftest import after_the_other_starts

C = dt.date(2024, 6, 30)
D = dt.date
DIVS = ["Solidworks", "Success Plan", "Post_Processing", "Hardware"]
SKU_DIV = {"SWX": "Solidworks", "SP": "Success Plan", "PP": "Post_Processing", "HW": "Hardware", "HW2": "Hardware"}
PARAMS = FeatureSettings()
FACT_COLS = [
    "invoice_id", "line_no", "invoice_date", "customer_id", "sku", "division", "quantity", "revenue",
    "gross_profit", "rep_id", "is_return", "source_file", "source_row",
]  # fmt: skip


def make_fact(rows: list[tuple]) -> pl.DataFrame:
    """rows: (invoice_id, line_no, date, customer, sku, revenue, gross_profit)."""
    recs = []
    for i, (inv, ln, d, cust, sku, rev, gp) in enumerate(rows):
        qty = -1.0 if rev < 0 else 1.0
        recs.append((inv, ln, d, cust, sku, SKU_DIV[sku], qty, rev, gp, None, rev < 0, "f.csv", i))
    return pl.DataFrame(
        recs,
        schema={
            "invoice_id": pl.String, "line_no": pl.Int64, "invoice_date": pl.Date, "customer_id": pl.String,
            "sku": pl.String, "division": pl.String, "quantity": pl.Float64, "revenue": pl.Float64,
            "gross_profit": pl.Float64, "rep_id": pl.String, "is_return": pl.Boolean, "source_file": pl.String,
            "source_row": pl.Int64,
        },  # fmt: skip
        orient="row",
    )


BASE_ROWS = [
    # customer A: lines exactly at C, exactly at C-3m, C-12m, a return, a post-cutoff line
    ("I1", 1, D(2024, 6, 30), "A", "SWX", 100.0, 40.0),
    ("I1", 2, D(2024, 6, 30), "A", "HW", 30.0, None),
    ("I2", 1, D(2024, 3, 31), "A", "SP", 50.0, 10.0),
    ("I3", 1, D(2024, 4, 1), "A", "SP", -20.0, -5.0),
    ("I4", 1, D(2023, 6, 30), "A", "PP", 200.0, 80.0),
    ("I9", 1, D(2024, 7, 1), "A", "SWX", 1000.0, 400.0),
    # customer B: two invoices on the same day, outside 24m; one post-cutoff line
    ("I5", 1, D(2022, 1, 15), "B", "PP", 500.0, 100.0),
    ("I6", 1, D(2022, 1, 15), "B", "PP", 100.0, 20.0),
    ("I10", 1, D(2024, 8, 1), "B", "SP", 70.0, 7.0),
    # customer C: first seen after C, only a post-cutoff line -> not in the roster
    ("I11", 1, D(2024, 9, 1), "C", "SWX", 10.0, 1.0),
    # customer F: first seen after C but bought before C -> in the roster, tenure from the line
    ("I7", 1, D(2024, 6, 15), "F", "HW2", 40.0, 4.0),
]


def make_dim() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E", "F"],
            "customer_name": ["a", "b", "c", "d", "e", "f"],
            "industry": ["Aerospace", "Medical", "Consumer", None, "Machinery", "Machinery"],
            "sub_industry": [None] * 6,
            "region": ["West", "East", "East", "West", None, "South"],
            "territory": ["T1"] * 6,
            "employee_band": ["1-10", "1000+", "11-50", "51-200", None, "201-1000"],
            "first_seen_date": [D(2023, 1, 1), None, D(2025, 1, 1), D(2020, 1, 1), None, D(2025, 1, 1)],
        },
        schema_overrides={"sub_industry": pl.String},
    )


@pytest.fixture(scope="module")
def feats() -> pl.DataFrame:
    return build_customer_features(make_fact(BASE_ROWS), make_dim(), C, DIVS, PARAMS)


def row(feats: pl.DataFrame, cust: str) -> dict:
    return feats.filter(pl.col("customer_id") == cust).row(0, named=True)


# ---------------------------------------------------------------------------------------------------
# shape, roster, naming
# ---------------------------------------------------------------------------------------------------
def test_roster_is_customers_known_at_cutoff_sorted(feats):
    # C: first seen after the cutoff and no line <= C; D, E: no lines but known; F: first seen later but bought
    assert feats.get_column("customer_id").to_list() == ["A", "B", "D", "E", "F"]
    assert feats.columns[0] == "customer_id"


def test_feature_names_follow_convention(feats):
    pattern = re.compile(r"^[a-z]+__(all|[a-z0-9_]+)__[a-z0-9_]+__(\d+m|all|static)$")
    for name in feats.columns[1:]:
        assert pattern.match(name), name
        assert len(name.split("__")) == 4, name
    slugs = [division_slug(d) for d in DIVS]
    for s in slugs:
        for w in ("3m", "6m", "12m", "24m"):
            for m in ("txn_count", "revenue_sum", "gp_sum", "sku_count", "aov"):
                assert f"rfm__{s}__{m}__{w}" in feats.columns
        assert f"rfm__{s}__recency_days__all" in feats.columns
        assert f"xdiv__{s}__share__all" in feats.columns
    assert "rfm__success_plan__revenue_sum__12m" in feats.columns
    assert "rfm__post_processing__txn_count__24m" in feats.columns


def test_months_before_is_month_end_aware():
    assert months_before(D(2024, 6, 30), 3) == D(2024, 3, 31)
    assert months_before(D(2024, 6, 30), 4) == D(2024, 2, 29)
    assert months_before(D(2024, 2, 29), 12) == D(2023, 2, 28)
    assert months_before(D(2024, 3, 15), 1) == D(2024, 2, 15)
    assert months_before(D(2024, 1, 31), 24) == D(2022, 1, 31)


# ---------------------------------------------------------------------------------------------------
# RFM
# ---------------------------------------------------------------------------------------------------
def test_rfm_window_boundaries_hand_computed(feats):
    a = row(feats, "A")
    # 3m = (2024-03-31, 2024-06-30]: I1 (SWX 100 + HW 30, dated exactly C) and return I3 (-20).
    # I2 dated exactly C-3m is OUT.
    assert a["rfm__all__txn_count__3m"] == 1  # the return-only invoice is not a purchase
    assert a["rfm__all__revenue_sum__3m"] == pytest.approx(110.0)  # net of the return
    assert a["rfm__all__gp_sum__3m"] == pytest.approx(35.0)  # 40 + null(0) - 5
    assert a["rfm__all__sku_count__3m"] == 2
    assert a["rfm__all__aov__3m"] == pytest.approx(110.0)
    # 6m adds I2 (SP 50)
    assert a["rfm__all__txn_count__6m"] == 2
    assert a["rfm__all__revenue_sum__6m"] == pytest.approx(160.0)
    assert a["rfm__all__sku_count__6m"] == 3
    assert a["rfm__all__aov__6m"] == pytest.approx(80.0)
    # 12m: I4 dated exactly C-12m is OUT -> same as 6m
    assert a["rfm__all__txn_count__12m"] == 2
    assert a["rfm__all__revenue_sum__12m"] == pytest.approx(160.0)
    # 24m adds I4 (PP 200)
    assert a["rfm__all__txn_count__24m"] == 3
    assert a["rfm__all__revenue_sum__24m"] == pytest.approx(360.0)
    assert a["rfm__all__gp_sum__24m"] == pytest.approx(125.0)
    assert a["rfm__all__sku_count__24m"] == 4
    assert a["rfm__all__aov__24m"] == pytest.approx(120.0)
    # the post-cutoff I9 (1000) never appears
    assert all(v != pytest.approx(1100.0) for k, v in a.items() if k.startswith("rfm__all__revenue_sum"))


def test_rfm_per_division_hand_computed(feats):
    a = row(feats, "A")
    assert a["rfm__success_plan__revenue_sum__3m"] == pytest.approx(-20.0)  # only the return is in 3m
    assert a["rfm__success_plan__txn_count__3m"] == 0
    assert a["rfm__success_plan__aov__3m"] == 0.0  # no purchase invoice -> 0, not a division by zero
    assert a["rfm__success_plan__revenue_sum__6m"] == pytest.approx(30.0)
    assert a["rfm__success_plan__txn_count__6m"] == 1
    assert a["rfm__success_plan__aov__6m"] == pytest.approx(30.0)
    assert a["rfm__success_plan__gp_sum__6m"] == pytest.approx(5.0)
    assert a["rfm__solidworks__revenue_sum__3m"] == pytest.approx(100.0)
    assert a["rfm__hardware__revenue_sum__3m"] == pytest.approx(30.0)
    assert a["rfm__hardware__gp_sum__3m"] == 0.0  # null gross profit counts as 0
    assert a["rfm__post_processing__revenue_sum__12m"] == 0.0
    assert a["rfm__post_processing__revenue_sum__24m"] == pytest.approx(200.0)
    assert a["rfm__post_processing__txn_count__24m"] == 1
    # per-division sums add up to the overall sum
    for w in ("3m", "6m", "12m", "24m"):
        total = sum(a[f"rfm__{division_slug(d)}__revenue_sum__{w}"] for d in DIVS)
        assert total == pytest.approx(a[f"rfm__all__revenue_sum__{w}"])


def test_recency_days(feats):
    a, b, d, f = row(feats, "A"), row(feats, "B"), row(feats, "D"), row(feats, "F")
    assert a["rfm__all__recency_days__all"] == 0  # a purchase exactly at C
    assert a["rfm__success_plan__recency_days__all"] == 91  # 2024-03-31 (the later line is a return)
    assert a["rfm__post_processing__recency_days__all"] == 366  # 2023-06-30 -> 2024-06-30 (leap year)
    assert b["rfm__all__recency_days__all"] == (C - D(2022, 1, 15)).days  # post-cutoff line ignored
    assert b["rfm__success_plan__recency_days__all"] is None  # B's SP purchase is after C
    assert f["rfm__hardware__recency_days__all"] == 15
    assert d["rfm__all__recency_days__all"] is None  # never bought: null, not a sentinel


def test_zero_activity_gets_zeros_and_nulls(feats):
    d = row(feats, "D")
    for k, v in d.items():
        if k.startswith("rfm__") and "recency" not in k:
            assert v == 0, k
        if k.startswith(("traj__", "season__", "returns__", "diversity__")) or k == "life__all__active_months__24m":
            assert v == 0, k
    assert d["life__all__ipi_mean_days__all"] is None
    assert d["life__all__ipi_last_days__all"] is None
    assert d["life__all__tenure_days__all"] == (C - D(2020, 1, 1)).days
    assert row(feats, "E")["life__all__tenure_days__all"] is None  # no line, no first_seen_date


# ---------------------------------------------------------------------------------------------------
# trajectory, lifecycle, seasonality, diversity, returns, cross-division, attributes
# ---------------------------------------------------------------------------------------------------
def test_trajectory_slope_and_std_on_constructed_series():
    # monthly revenue y_k = 10 k + 5 for the 12 months ending at C (k = 0 is July 2023), plus a line
    # in June 2023 that is outside the 12 buckets
    rows = [("T0", 1, D(2023, 6, 15), "T", "SWX", 999.0, None)]
    ys = []
    for k in range(12):
        month = 7 + k
        year = 2023 + (month - 1) // 12
        month = (month - 1) % 12 + 1
        y = 10.0 * k + 5.0
        ys.append(y)
        rows.append((f"T{k + 1}", 1, D(year, month, 10), "T", "SWX", y, None))
    feats = build_customer_features(make_fact(rows), make_dim().head(0), C, DIVS, PARAMS)
    t = row(feats, "T")
    assert t["traj__all__revenue_slope__12m"] == pytest.approx(10.0)
    assert t["traj__all__revenue_std__12m"] == pytest.approx(float(np.std(ys)))


def test_trajectory_with_gaps_and_returns(feats):
    a = row(feats, "A")
    # buckets: June 2024 (k=11) 130, April (k=9) -20, March (k=8) 50, others 0
    y = np.zeros(12)
    y[11], y[9], y[8] = 130.0, -20.0, 50.0
    k = np.arange(12)
    slope = np.polyfit(k, y, 1)[0]
    assert a["traj__all__revenue_slope__12m"] == pytest.approx(slope)
    assert a["traj__all__revenue_slope__12m"] == pytest.approx(770.0 / 143.0)
    assert a["traj__all__revenue_std__12m"] == pytest.approx(float(np.std(y)))


def test_lifecycle_hand_computed(feats):
    a, b, f = row(feats, "A"), row(feats, "B"), row(feats, "F")
    # A: first_seen 2023-01-01 is earlier than the first line 2023-06-30
    assert a["life__all__tenure_days__all"] == (C - D(2023, 1, 1)).days == 546
    # purchase dates 2023-06-30, 2024-03-31, 2024-06-30 -> gaps 275, 91 (return date 2024-04-01 ignored)
    assert a["life__all__ipi_mean_days__all"] == pytest.approx(183.0)
    assert a["life__all__ipi_last_days__all"] == 91
    assert a["life__all__active_months__24m"] == 3
    # B: two invoices on one day = one purchase date -> no gap; no activity in the last 24 months
    assert b["life__all__ipi_mean_days__all"] is None
    assert b["life__all__ipi_last_days__all"] is None
    assert b["life__all__tenure_days__all"] == (C - D(2022, 1, 15)).days
    assert b["life__all__active_months__24m"] == 0
    # F: first_seen_date after C is ignored
    assert f["life__all__tenure_days__all"] == 15


def test_quarter_shares(feats):
    a, b = row(feats, "A"), row(feats, "B")
    # A's purchase revenue in 24m: Q2 = 100 + 30 + 200 (2023-06-30), Q1 = 50 (2024-03-31); return excluded
    assert a["season__all__q1_share__24m"] == pytest.approx(50.0 / 380.0)
    assert a["season__all__q2_share__24m"] == pytest.approx(330.0 / 380.0)
    assert a["season__all__q3_share__24m"] == 0.0
    assert a["season__all__q4_share__24m"] == 0.0
    assert sum(b[f"season__all__q{q}_share__24m"] for q in range(1, 5)) == 0.0  # nothing in 24m


def test_diversity_and_returns_rate(feats):
    a, b = row(feats, "A"), row(feats, "B")
    assert a["diversity__all__divisions_owned__all"] == 4  # SWX, HW, SP (net 30), PP
    assert b["diversity__all__divisions_owned__all"] == 1
    assert a["returns__all__return_rate__24m"] == pytest.approx(20.0 / 380.0)
    assert a["returns__all__return_rate__all"] == pytest.approx(20.0 / 380.0)
    assert b["returns__all__return_rate__all"] == 0.0


def test_net_negative_division_is_not_owned():
    rows = [("R1", 1, D(2024, 1, 5), "R", "SP", 50.0, None), ("R2", 1, D(2024, 2, 5), "R", "SP", -50.0, None),
            ("R3", 1, D(2024, 2, 5), "R", "SWX", 10.0, None)]  # fmt: skip
    feats = build_customer_features(make_fact(rows), make_dim().head(0), C, DIVS, PARAMS)
    r = row(feats, "R")
    assert r["diversity__all__divisions_owned__all"] == 1
    assert r["returns__all__return_rate__all"] == pytest.approx(50.0 / 60.0)


def test_empirical_bayes_cross_division_share(feats):
    k = PARAMS.eb_prior_strength
    # positive net revenue per division (all history <= C)
    net = {
        "A": {"Solidworks": 100.0, "Hardware": 30.0, "Success Plan": 30.0, "Post_Processing": 200.0},
        "B": {"Post_Processing": 600.0},
        "F": {"Hardware": 40.0},
    }
    grand = sum(sum(v.values()) for v in net.values())  # 1000
    pop = {d: sum(v.get(d, 0.0) for v in net.values()) / grand for d in DIVS}
    assert pop["Post_Processing"] == pytest.approx(0.8)
    for cust in ("A", "B", "F", "D"):
        r = row(feats, cust)
        rev = net.get(cust, {})
        tot = sum(rev.values())
        for d in DIVS:
            expected = (rev.get(d, 0.0) + k * pop[d]) / (tot + k)
            assert r[f"xdiv__{division_slug(d)}__share__all"] == pytest.approx(expected), (cust, d)
        assert sum(r[f"xdiv__{division_slug(d)}__share__all"] for d in DIVS) == pytest.approx(1.0)
    # no prior: plain shares
    feats0 = build_customer_features(make_fact(BASE_ROWS), make_dim(), C, DIVS, FeatureSettings(eb_prior_strength=0))
    a0 = row(feats0, "A")
    assert a0["xdiv__post_processing__share__all"] == pytest.approx(200.0 / 360.0)
    assert row(feats0, "D")["xdiv__post_processing__share__all"] == pytest.approx(0.8)  # 0/0 -> population


def test_attributes_raw_and_ordinal(feats):
    a, d, e = row(feats, "A"), row(feats, "D"), row(feats, "E")
    assert a["attr__all__industry__static"] == "Aerospace"
    assert a["attr__all__region__static"] == "West"
    assert a["attr__all__employee_band__static"] == "1-10"
    assert a["attr__all__employee_band_ordinal__static"] == 0
    assert row(feats, "B")["attr__all__employee_band_ordinal__static"] == 4
    assert d["attr__all__employee_band_ordinal__static"] == 2
    assert e["attr__all__employee_band_ordinal__static"] is None
    assert e["attr__all__region__static"] is None
    assert feats.schema["attr__all__industry__static"] == pl.String
    ords = pl.DataFrame({"b": ["1-10", "11-50", "51-200", "201-1000", "1000+", "1,001-5,000", "n/a", None]})
    assert ords.select(employee_band_ordinal("b")).to_series().to_list() == [0, 1, 2, 3, 4, 4, None, None]


def test_money_features_are_raw():
    rows = [(f"M{i}", 1, D(2024, 5, 1), f"M{i:02d}", "SWX", float(10**i), None) for i in range(8)]
    feats = build_customer_features(make_fact(rows), make_dim().head(0), C, DIVS, PARAMS)
    assert feats.get_column("rfm__all__revenue_sum__12m").max() == pytest.approx(1e7)  # no winsorisation


# ---------------------------------------------------------------------------------------------------
# canonical division names end to end
# ---------------------------------------------------------------------------------------------------
def test_buyer_of_a_division_has_non_zero_per_division_features():
    divs = ["Success Plan", "Post_Processing", "Hardware"]
    rows = [("X1", 1, D(2024, 5, 20), "X", "SP", 120.0, 30.0), ("Y1", 1, D(2024, 2, 2), "Y", "PP", 80.0, 8.0),
            ("Z1", 1, D(2024, 6, 1), "Z", "HW", 10.0, 1.0)]  # fmt: skip
    fact = make_fact(rows)
    feats = build_customer_features(fact, make_dim().head(0), C, divs, PARAMS)
    for cust, div in (("X", "Success Plan"), ("Y", "Post_Processing")):
        s = division_slug(div)
        r = row(feats, cust)
        for w in ("6m", "12m", "24m"):
            for m in ("txn_count", "revenue_sum", "gp_sum", "sku_count", "aov"):
                assert r[f"rfm__{s}__{m}__{w}"] > 0, (cust, m, w)
        assert r[f"rfm__{s}__recency_days__all"] is not None
        assert r[f"xdiv__{s}__share__all"] > 1 / 3  # above its population share
    # the division model matrix sees it too
    ports = customer_portfolios(fact, C)
    rules = market_basket_rules(fact, C, divs, min_support=0.0, min_confidence=0.0)
    sim = pl.DataFrame(
        {"customer_id": ["X", "Y"], "division": ["Success Plan", "Success Plan"], "als_similarity": [0.9, 0.2],
         "als_coverage": [True, True]}  # fmt: skip
    )
    m = build_division_features(feats, ports, rules, sim, "Success Plan")
    x = m.filter(pl.col("customer_id") == "X").row(0, named=True)
    assert x["prior__target__owned__all"] == 1
    assert x["als__target__similarity__all"] == pytest.approx(1.0)  # the highest similarity of the roster
    assert x["als__target__coverage__all"] == 1
    assert m.get_column("prior__target__owned__all").sum() == 1


def test_unknown_or_miscased_division_names_fail_loudly():
    fact = make_fact([("X1", 1, D(2024, 5, 20), "X", "SP", 120.0, None)])
    with pytest.raises(ValueError, match="not configured"):
        build_customer_features(fact, make_dim().head(0), C, ["success plan", "Hardware"], PARAMS)
    feats = build_customer_features(fact, make_dim().head(0), C, DIVS, PARAMS)
    rules = market_basket_rules(fact, C, DIVS, min_support=0.0, min_confidence=0.0)
    with pytest.raises(ValueError, match="case-sensitive"):
        build_division_features(feats, customer_portfolios(fact, C), rules, pl.DataFrame(), "success plan")


# ---------------------------------------------------------------------------------------------------
# division features
# ---------------------------------------------------------------------------------------------------
def _division_inputs():
    fact = make_fact(BASE_ROWS)
    feats = build_customer_features(fact, make_dim(), C, DIVS, PARAMS)
    ports = customer_portfolios(fact, C)
    rules = market_basket_rules(fact, C, DIVS, min_support=0.0, min_confidence=0.0)
    sim = pl.DataFrame(
        {
            "customer_id": ["A", "A", "B", "B"],
            "division": ["Success Plan", "Hardware", "Success Plan", "Hardware"],
            "als_similarity": [0.5, 0.1, -0.2, 0.3],
            "als_coverage": [True, True, True, True],
        }
    )
    return feats, ports, rules, sim


def test_division_features_signals_and_labels():
    feats, ports, rules, sim = _division_inputs()
    out = build_division_features(feats, ports, rules, sim, "Success Plan")
    assert out.columns[: feats.width] == feats.columns
    assert out.columns[feats.width :] == list(TARGET_SIGNAL_COLUMNS)
    assert out.select(feats.columns).equals(feats)  # feature columns unchanged
    assert out.schema["als__target__coverage__all"] == pl.Int8
    assert out.schema["prior__target__owned__all"] == pl.Int8
    b = out.filter(pl.col("customer_id") == "B").row(0, named=True)
    # B owns Post_Processing only; rule PP -> SP: n_PP = 2 (A, B), n_SP = 1 (A), n_both = 1, n = 3 (A, B, F);
    # the frame holds its within-cutoff percentile (checked below)
    assert basket_lift_signals(ports, rules, "Success Plan").filter(pl.col("customer_id") == "B").get_column(
        "max_lift").item() == pytest.approx(1 * 3 / (2 * 1))
    # raw max lifts over the roster A..F: 3.0, 1.5, 0, 0, 1.5 -> B ranks 3.5 of 5 = 0.7 -> quartile 0.75
    assert LIFT_PERCENTILE_BINS == 4
    assert b["mb__target__max_lift__all"] == pytest.approx(0.75)
    assert b["als__target__similarity__all"] == pytest.approx(0.2)  # the lowest of the 5 (-0.2 < 0 x 3 < 0.5)
    assert b["prior__target__owned__all"] == 0
    d = out.filter(pl.col("customer_id") == "D").row(0, named=True)
    assert d["mb__target__max_lift__all"] == pytest.approx(0.5)  # no rule: the lowest tie (ranks 1-2 of 5)
    assert d["als__target__coverage__all"] == 0
    a = out.filter(pl.col("customer_id") == "A").row(0, named=True)
    assert a["prior__target__owned__all"] == 1

    labels = pl.DataFrame(
        {"customer_id": ["F", "B", "D", "ZZ"], "label": [1, 0, None, 1], "cohort": ["expansion"] * 4,
         "censored": [False, False, True, False]},  # fmt: skip
        schema_overrides={"label": pl.Int8},
    )
    lab = build_division_features(feats, ports, rules, sim, "Success Plan", labels)
    assert lab.get_column("customer_id").to_list() == ["B", "D", "F"]  # inner join, sorted
    assert lab.columns[-3:] == ["label", "cohort", "censored"]
    kept = out.filter(pl.col("customer_id").is_in(["B", "D", "F"]))
    pct_cols = list(PERCENTILE_SIGNAL_COLUMNS)
    assert lab.drop("label", "cohort", "censored", *pct_cols).equals(kept.drop(pct_cols))
    # the percentile signals are ranked over the labelled rows (the model population): B, D, F
    assert lab.get_column("als__target__similarity__all").to_list() == pytest.approx([1 / 3, 5 / 6, 5 / 6])
    assert lab.get_column("mb__target__max_lift__all").to_list() == pytest.approx([1.0, 0.5, 1.0])
    assert lab.filter(pl.col("customer_id") == "F").get_column("label").item() == 1


def test_cutoff_percentile_rescale_invariant_order_preserving_nulls_kept():
    raw = pl.DataFrame({"v": [0.0, 2.0, 1.0, None, -0.5, -0.1, 2.0, 4.0, 0.0]})
    f = raw.select(cutoff_percentile("v")).get_column("v")
    # 8 non-null values; ranks -0.5 -> 1, -0.1 -> 2, 0.0 x2 -> 3.5, 1.0 -> 5, 2.0 x2 -> 6.5, 4.0 -> 8
    assert f.to_list() == pytest.approx([3.5 / 8, 6.5 / 8, 5 / 8, None, 1 / 8, 2 / 8, 6.5 / 8, 1.0, 3.5 / 8])
    assert f.is_null().to_list() == raw.get_column("v").is_null().to_list()  # nulls stay null, only they
    binned = raw.select(cutoff_percentile("v", 5)).get_column("v")
    assert binned.to_list() == pytest.approx([0.6, 1.0, 0.8, None, 0.2, 0.4, 1.0, 1.0, 0.6])
    # an increasing rescaling (x 3, x 1e-6, a shift, a signed square root) gives exactly the same values
    for g in (pl.col("v") * 3, pl.col("v") * 1e-6, pl.col("v") + 7.0, pl.col("v").sign() * pl.col("v").abs().sqrt()):
        moved = raw.select(g.alias("v"))
        assert moved.select(cutoff_percentile("v")).get_column("v").to_list() == f.to_list()
        assert moved.select(cutoff_percentile("v", 5)).get_column("v").to_list() == binned.to_list()
    # order kept: x < y -> f(x) < f(y) (<= once binned), ties equal
    pairs = [(a, b, c) for a, b, c in zip(raw.get_column("v"), f, binned) if a is not None]
    for xa, fa, ba in pairs:
        for xb, fb, bb in pairs:
            if xa < xb:
                assert fa < fb and ba <= bb
            elif xa == xb:
                assert fa == fb and ba == bb
    # deterministic: row order does not matter; grid points reached exactly (k / n * bins is not pushed up)
    perm = raw.with_row_index("i").sample(fraction=1.0, shuffle=True, seed=5)
    assert perm.with_columns(cutoff_percentile("v")).sort("i").get_column("v").to_list() == f.to_list()
    ten = pl.DataFrame({"v": [float(i) for i in range(10)]}).select(cutoff_percentile("v", 5)).get_column("v")
    assert ten.to_list() == pytest.approx([0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1.0, 1.0])


def test_division_signals_comparable_across_cutoffs():
    """A re-fit that rescales every lift / similarity of a cutoff (e.g. all x 3) leaves the model frame unchanged."""
    feats, ports, rules, sim = _division_inputs()
    out = build_division_features(feats, ports, rules, sim, "Success Plan")
    scaled = build_division_features(feats, ports, rules.with_columns(pl.col("lift") * 3),
                                     sim.with_columns(pl.col("als_similarity") * 3), "Success Plan")
    assert scaled.equals(out)
    # the frame's values are the signed percentile of the raw signal over the roster, in the raw order
    raw = basket_lift_signals(ports, rules, "Success Plan").select("customer_id", "max_lift")
    both = out.join(raw, on="customer_id", how="left").with_columns(pl.col("max_lift").fill_null(0.0))
    assert both.get_column("mb__target__max_lift__all").to_list() == both.select(
        cutoff_percentile("max_lift", LIFT_PERCENTILE_BINS)).get_column("max_lift").to_list()
    sims = out.join(sim.filter(pl.col("division") == "Success Plan"), on="customer_id", how="left").with_columns(
        pl.col("als_similarity").fill_null(0.0))
    assert sims.get_column("als__target__similarity__all").to_list() == sims.select(
        cutoff_percentile("als_similarity")).get_column("als_similarity").to_list()
    for c in PERCENTILE_SIGNAL_COLUMNS:
        v = out.get_column(c)
        assert v.is_null().sum() == 0 and v.min() > 0.0 and v.max() == 1.0
    # with labels the percentile is over the labelled rows, still invariant to the re-fit's scale
    labels = pl.DataFrame({"customer_id": ["B", "D", "F"], "label": [1, 0, 0]}, schema_overrides={"label": pl.Int8})
    lab = build_division_features(feats, ports, rules, sim, "Success Plan", labels)
    lab3 = build_division_features(feats, ports, rules.with_columns(pl.col("lift") * 3),
                                   sim.with_columns(pl.col("als_similarity") * 3), "Success Plan", labels)
    assert lab3.equals(lab)


# ---------------------------------------------------------------------------------------------------
# leakage: nothing after C changes anything; a line at C does
# ---------------------------------------------------------------------------------------------------
def _perturb_post_cutoff(fact: pl.DataFrame) -> list[pl.DataFrame]:
    after = pl.col("invoice_date") > C
    new_rows = make_fact(
        [
            ("P1", 1, D(2024, 7, 1), "NEWCUST", "SWX", 5000.0, 1.0),
            ("P2", 1, D(2025, 3, 3), "A", "HW2", 777.0, 1.0),
            ("P3", 1, D(2024, 12, 31), "B", "SP", -300.0, None),
        ]
    )
    return [
        fact.with_columns(pl.when(after).then(pl.col("revenue") * 17 + 3).otherwise(pl.col("revenue")).alias("revenue")),
        fact.filter(~after),
        pl.concat([fact, new_rows]),
        pl.concat([new_rows, fact.filter(~after)]).sample(fraction=1.0, shuffle=True, seed=3),  # order does not matter
    ]


def test_features_invariant_to_post_cutoff_rows():
    fact, dim = make_fact(BASE_ROWS), make_dim()
    ref = frame_checksum(build_customer_features(fact, dim, C, DIVS, PARAMS))
    for variant in _perturb_post_cutoff(fact):
        assert frame_checksum(build_customer_features(variant, dim, C, DIVS, PARAMS)) == ref


def test_line_at_c_plus_one_changes_nothing_but_line_at_c_does():
    fact, dim = make_fact(BASE_ROWS), make_dim()
    ref = frame_checksum(build_customer_features(fact, dim, C, DIVS, PARAMS))
    plus1 = make_fact([("Q1", 1, C + dt.timedelta(days=1), "D", "SP", 10.0, 1.0)])
    at_c = make_fact([("Q1", 1, C, "D", "SP", 10.0, 1.0)])
    assert frame_checksum(build_customer_features(pl.concat([fact, plus1]), dim, C, DIVS, PARAMS)) == ref
    changed = build_customer_features(pl.concat([fact, at_c]), dim, C, DIVS, PARAMS)
    assert frame_checksum(changed) != ref
    assert row(changed, "D")["rfm__success_plan__revenue_sum__3m"] == pytest.approx(10.0)


# ---------------------------------------------------------------------------------------------------
# catalog, stats, checksum
# ---------------------------------------------------------------------------------------------------
def test_feature_catalog(feats):
    cat = feature_catalog(feats)
    assert cat.columns == ["name", "family", "scope", "metric", "window", "dtype", "coverage"]
    assert cat.height == feats.width - 1
    r = cat.filter(pl.col("name") == "rfm__success_plan__revenue_sum__6m").row(0, named=True)
    assert (r["family"], r["scope"], r["metric"], r["window"], r["dtype"]) == (
        "rfm", "success_plan", "revenue_sum", "6m", "Float64",
    )  # fmt: skip
    assert r["coverage"] == pytest.approx(1 / 5)  # only A of 5 customers has a non-zero value
    rec = cat.filter(pl.col("name") == "rfm__all__recency_days__all").row(0, named=True)
    assert rec["coverage"] == pytest.approx(2 / 5)  # A has 0 days (zero), B and F non-zero, D/E null
    assert set(cat.get_column("family")) == {
        "rfm", "traj", "life", "season", "diversity", "returns", "xdiv", "attr",
    }  # fmt: skip


def test_feature_stats(feats):
    st = feature_stats(feats)
    assert st["n_rows"] == 5 and st["n_features"] == feats.width - 1
    assert st["checksum"] == frame_checksum(feats)
    assert st["features"]["rfm__all__recency_days__all"]["null_rate"] == pytest.approx(2 / 5)
    rev = st["features"]["rfm__all__revenue_sum__24m"]
    assert rev["p01"] <= rev["p99"]
    assert "p01" not in st["features"]["attr__all__industry__static"]


def test_frame_checksum_is_content_based_and_stable_across_processes():
    df = pl.DataFrame({"a": [1, 2, None], "b": ["x", None, "z"], "c": [0.5, -0.0, None], "d": [D(2024, 1, 1)] * 3})
    chunked = pl.concat([df.head(1), df.tail(2)], rechunk=False)
    assert frame_checksum(df) == frame_checksum(chunked)
    assert frame_checksum(df) != frame_checksum(df.reverse())
    assert frame_checksum(df) != frame_checksum(df.with_columns(pl.col("a").fill_null(0)))
    assert frame_checksum(df) != frame_checksum(df.rename({"a": "z"}))
    assert frame_checksum(df) != frame_checksum(df.with_columns(pl.col("a").cast(pl.Int32)))
    # Equal floats hash equally: -0.0 as 0.0, any NaN payload as NaN (a sum that lands on -0.0, a NaN from another
    # computation); a different value does not.
    other_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000123))[0]
    for dtype in (pl.Float64, pl.Float32):
        zeros = pl.DataFrame({"x": pl.Series([0.0, float("nan")], dtype=dtype)})
        assert frame_checksum(zeros) == frame_checksum(pl.DataFrame({"x": pl.Series([-0.0, other_nan], dtype=dtype)}))
        assert frame_checksum(zeros) != frame_checksum(pl.DataFrame({"x": pl.Series([1.0, float("nan")], dtype=dtype)}))
    code = (
        "import datetime as dt, polars as pl\n"
        "from gosales_assets.core.checksum import frame_checksum\n"
        "df = pl.DataFrame({'a': [1, 2, None], 'b': ['x', None, 'z'], 'c': [0.5, -0.0, None],"
        " 'd': [dt.date(2024, 1, 1)] * 3})\n"
        "print(frame_checksum(df))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == frame_checksum(df)


def test_features_deterministic_across_runs():
    fact, dim = make_fact(BASE_ROWS), make_dim()
    a = build_customer_features(fact, dim, C, DIVS, PARAMS)
    b = build_customer_features(fact.reverse(), dim.reverse(), C, DIVS, PARAMS)
    assert frame_checksum(a) == frame_checksum(b)


def random_fact_and_dim(n_cust: int, n_lines: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Seeded sales lines and customers at a size where polars works in parallel."""
    rng = np.random.default_rng(1)
    skus = np.array(list(SKU_DIV))
    cust = rng.integers(0, n_cust, n_lines)
    days = rng.integers(0, 5 * 365, n_lines)
    rev = rng.lognormal(6, 1, n_lines) * np.where(rng.random(n_lines) < 0.03, -1, 1)
    sku = skus[rng.integers(0, skus.size, n_lines)]
    fact = pl.DataFrame(
        {
            "invoice_id": [f"I{i // 2}" for i in range(n_lines)],
            "line_no": np.arange(n_lines) % 2,
            "invoice_date": days,
            "customer_id": [f"C{c:06d}" for c in cust],
            "sku": sku,
            "division": [SKU_DIV[s] for s in sku],
            "quantity": np.where(rev < 0, -1.0, 1.0),
            "revenue": rev,
            "gross_profit": rev * 0.3,
            "is_return": rev < 0,
        }
    ).with_columns((pl.lit(D(2020, 1, 1)) + pl.duration(days=pl.col("invoice_date"))).cast(pl.Date).alias("invoice_date"))
    dim = pl.DataFrame(
        {
            "customer_id": [f"C{c:06d}" for c in range(n_cust)],
            "industry": "Machinery",
            "region": "West",
            "employee_band": "11-50",
            "first_seen_date": D(2019, 1, 1),
        }
    )
    return fact, dim


def test_features_and_rules_are_the_same_bytes_on_one_polars_thread_or_four(tmp_path):
    """Run processes use one polars thread (gosales_assets/__init__.py); the tests' process the default pool. The
    cutoff's features and basket rules must not depend on it."""
    fact, dim = random_fact_and_dim(5_000, 60_000)
    fact.write_parquet(tmp_path / "fact.parquet")
    dim.write_parquet(tmp_path / "dim.parquet")
    code = (
        "import datetime as dt, polars as pl\n"
        "from gosales_assets.core.basket import market_basket_rules\n"
        "from gosales_assets.core.checksum import frame_checksum\n"
        "from gosales_assets.core.features import build_customer_features\n"
        "from gosales_assets.settings import FeatureSettings\n"
        f"fact = pl.read_parquet({str(tmp_path / 'fact.parquet')!r})\n"
        f"dim = pl.read_parquet({str(tmp_path / 'dim.parquet')!r})\n"
        f"c, divs = dt.date(2023, 12, 31), {DIVS!r}\n"
        "print(pl.thread_pool_size(), frame_checksum(build_customer_features(fact, dim, c, divs, FeatureSettings())),\n"
        "      frame_checksum(market_basket_rules(fact, c, divs, min_support=0.0, min_confidence=0.0)))\n"
    )
    runs = {}
    for threads in ("1", "4"):
        env = {**os.environ, "POLARS_MAX_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        pool, features, rules = out.stdout.split()
        assert pool == threads
        runs[threads] = (features, rules)
    here = (frame_checksum(build_customer_features(fact, dim, D(2023, 12, 31), DIVS, PARAMS)),
            frame_checksum(market_basket_rules(fact, D(2023, 12, 31), DIVS, min_support=0.0, min_confidence=0.0)))
    assert runs["1"] == runs["4"] == here


class _OneAfterTheOther:
    """An executor that runs what it is given at once, in the caller's thread."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args, **kwargs):
        done = Future()
        done.set_result(fn(*args, **kwargs))
        return done


def test_the_rfm_windows_are_built_beside_the_other_blocks_and_give_the_same_bytes(monkeypatch):
    from gosales_assets.core import features as core_features

    fact, dim = random_fact_and_dim(2_000, 20_000)
    args = (fact, dim, D(2023, 12, 31), DIVS, PARAMS)
    # side by side: each part waits for the other to start (a build that made them one after the other fails)
    both_started = threading.Barrier(2, timeout=30)
    with monkeypatch.context() as m:
        m.setattr(core_features, "_rfm_blocks", after_the_other_starts(both_started, core_features._rfm_blocks))
        m.setattr(core_features, "_other_blocks", after_the_other_starts(both_started, core_features._other_blocks))
        beside = build_customer_features(*args)
    # ... and the bytes of one after the other, in the same column order
    monkeypatch.setattr(core_features, "ThreadPoolExecutor", _OneAfterTheOther)
    serial = build_customer_features(*args)
    assert beside.columns == serial.columns and beside.equals(serial)
    assert beside.columns[1].startswith("rfm__all__txn_count__") and beside.columns[-1].startswith("attr__")


def test_aggregates_put_on_the_roster_by_position_equal_a_pivot_and_a_left_join():
    from gosales_assets.core.features import _align, _wide

    rng = np.random.default_rng(5)
    n, n_div = 1_000, 4
    pairs = pl.DataFrame({"cidx": rng.integers(0, n, 3_000), "didx": rng.integers(0, n_div, 3_000)}).unique()
    agg = pairs.with_columns(
        pl.col("cidx").cast(pl.UInt32), pl.col("didx").cast(pl.UInt8),
        pl.Series("net", rng.integers(-10**6, 10**6, pairs.height)).cast(pl.Int128),
        pl.Series("share", rng.random(pairs.height)),
        pl.Series("last", rng.integers(0, 900, pairs.height)).cast(pl.Date),
    ).filter(pl.col("didx") != 2)  # a division nobody bought: all null
    names = {v: [f"{v}_{j}" for j in range(n_div)] for v in ("net", "share", "last")}
    roster = pl.DataFrame({"cidx": pl.arange(0, n, dtype=pl.UInt32, eager=True)})
    pivoted = agg.pivot(on="didx", on_columns=list(range(n_div)), index="cidx", values=["net", "share", "last"])
    expected = roster.join(pivoted, on="cidx", how="left", maintain_order="left").drop("cidx")
    expected = expected.rename(dict(zip(expected.columns, [c for v in names.values() for c in v], strict=True)))
    wide = _wide(n, agg, ["net", "share", "last"], n_div, names)
    assert wide.equals(expected) and wide.schema == expected.schema
    assert wide.get_column("net_2").null_count() == n and wide.get_column("net_0").null_count() < n

    one = agg.filter(pl.col("didx") == 0).drop("didx")
    aligned = _align(n, one)
    assert aligned.equals(roster.join(one, on="cidx", how="left", maintain_order="left").drop("cidx"))
    # nothing aggregated: every column null, typed
    empty = _wide(n, agg.head(0), ["net"], n_div, names)
    assert empty.shape == (n, n_div) and empty.null_count().row(0) == (n,) * n_div
    assert set(empty.dtypes) == {pl.Int128} and _align(n, one.head(0)).dtypes == one.drop("cidx").dtypes


def test_no_wall_clock_in_feature_modules():
    core = Path(__file__).resolve().parents[1] / "gosales_assets" / "core"
    banned = re.compile(r"\b(now|today|utcnow|time|monotonic|perf_counter)\s*\(")
    for name in ("features.py", "basket.py", "als.py", "division_features.py", "checksum.py"):
        src = (core / name).read_text()
        code_lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith("#")]
        hits = [ln for ln in code_lines if banned.search(ln)]
        assert not hits, (name, hits)


# ---------------------------------------------------------------------------------------------------
# performance smoke (no timing assertion: just make sure nothing is quadratic)
# ---------------------------------------------------------------------------------------------------
def test_performance_smoke_20k_customers():
    n_cust = 20_000
    fact, dim = random_fact_and_dim(n_cust, 200_000)
    feats = build_customer_features(fact, dim, D(2023, 12, 31), DIVS, PARAMS)
    assert feats.height == n_cust
    # bit-reproducible at a size where polars aggregates in parallel (money is summed in exact cents)
    again = build_customer_features(fact.sample(fraction=1.0, shuffle=True, seed=1), dim, D(2023, 12, 31), DIVS, PARAMS)
    assert frame_checksum(again) == frame_checksum(feats)
    assert feats.get_column("rfm__all__revenue_sum__24m").sum() != 0
    cat = feature_catalog(feats)
    assert cat.filter(pl.col("family") == "rfm").get_column("coverage").max() > 0.5


def test_fact_lines_come_in_line_order_whatever_order_they_are_read_in():
    """`in_key_order` (what every cutoff read of the fact goes through): lines read in (date, invoice, line) order
    are kept as read; lines read in any other order come back in it: the same rows in the same order either way,
    invoices compared as text ("B-10" before "B-9"), line numbers as numbers."""
    import numpy as np

    from gosales_assets.core.star import LINE_ORDER, in_key_order

    rng = np.random.default_rng(3)
    n = 400
    lines = pl.DataFrame({
        "invoice_date": [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 20, n)],
        "invoice_id": [f"B-{int(i)}" for i in rng.integers(1, 40, n)],
        "line_no": rng.integers(1, 12, n),
        "revenue": rng.normal(100, 30, n),
    }).unique(["invoice_id", "line_no"], keep="first", maintain_order=True)
    ordered = lines.sort(*LINE_ORDER)
    assert in_key_order(ordered) is ordered  # already in order: nothing sorted, nothing copied
    assert in_key_order(lines).equals(ordered) and not lines.equals(ordered)
    swapped = pl.concat([ordered.slice(1, 1), ordered.slice(0, 1), ordered.slice(2)])  # only two lines out of place
    assert in_key_order(swapped).equals(ordered)
    assert in_key_order(ordered.head(1)).equals(ordered.head(1)) and in_key_order(ordered.clear()).height == 0
    # one key (dim_customer by customer_id, as the cutoff's step reads it)
    customers = pl.DataFrame({"customer_id": [f"C{i:04d}" for i in range(50)], "n": list(range(50))})
    assert in_key_order(customers, ("customer_id",)) is customers
    assert in_key_order(customers.reverse(), ("customer_id",)).equals(customers)
