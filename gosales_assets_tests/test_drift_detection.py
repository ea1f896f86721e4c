"""Drift detection that means something (issue 14): zero-inflated PSI, the noise floors, per-segment and per-division
activity of the roster, the unit-price index and the seasonal (like-with-like) prevalence baseline."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.drift import (
    DriftThresholds,
    activity_baseline,
    activity_findings,
    division_activity_findings,
    division_price_findings,
    drift_findings,
    prevalence_baseline,
    prevalence_year_earlier,
    year_earlier_refusal,
    chi2_homogeneity,
    design_effect,
    psi,
    psi_zero_inflated,
    season_of_baseline,
    segment_activity_findings,
    z_critical,
)

EPS = 1e-4
C = dt.date(2026, 6, 30)
BASE = [dt.date(2025, 6, 30), dt.date(2025, 9, 30), dt.date(2025, 12, 31)]


# ---------------------------------------------------------------------------------------------------
# zero-inflated PSI
# ---------------------------------------------------------------------------------------------------
def test_zero_inflated_psi_by_hand_where_the_quantile_bins_see_nothing():
    expected = [0.0] * 6 + [1.0, 2.0, 3.0, 4.0]
    actual = [0.0] * 6 + [3.0, 4.0, 5.0, 6.0]  # the same 60 % zeros; the buyers' values moved up
    # Plain PSI: 60 % zeros put the median edge at 0 -> bins (-inf, 0], (0, inf) hold 0.6 / 0.4 on both sides.
    assert psi(expected, actual, n_bins=2) == 0.0
    zi = psi_zero_inflated(expected, actual, n_bins=2, min_per_bin=1)
    # Bins [zero, missing, (-inf, 2.5], (2.5, inf)] (2.5: the median of the expected non-zero values)
    #   e = [0.6, 0, 0.2, 0.2], a = [0.6, 0, 0, 0.4]
    #   PSI = (eps - 0.2) ln(eps / 0.2) + (0.4 - 0.2) ln(0.4 / 0.2)
    assert zi.psi == pytest.approx((0.2 - EPS) * math.log(0.2 / EPS) + 0.2 * math.log(2), abs=1e-12)
    # Among the non-zero rows alone: e = [0.5, 0.5], a = [0, 1] -> (0.5 - eps) ln(0.5 / eps) + 0.5 ln 2
    assert zi.active == pytest.approx((0.5 - EPS) * math.log(0.5 / EPS) + 0.5 * math.log(2), abs=1e-12)
    assert (zi.bins, zi.active_bins) == (3, 2)  # the missing bin is empty on both sides
    assert (zi.n_active_expected, zi.n_active_actual) == (4, 4)
    assert (zi.zero_share_expected, zi.zero_share_actual) == (0.6, 0.6)
    assert (zi.active_mean_expected, zi.active_mean_actual) == (2.5, 4.5)
    assert psi_zero_inflated([], [1.0]) is None


def test_a_price_shift_among_few_buyers_is_a_hard_finding_that_plain_psi_missed():
    rng = np.random.default_rng(3)

    def revenue(n: int, buyers: float, factor: float) -> np.ndarray:
        x = np.zeros(n)
        k = int(n * buyers)
        x[:k] = factor * np.exp(rng.normal(8.0, 0.3, k))  # 4 % buyers, log-normal order values
        return x

    train, current = revenue(5000, 0.04, 1.0), revenue(2500, 0.04, 1.3)
    assert psi(train, current) < 0.01  # > 90 % zeros collapse the quantile edges: the shift is invisible
    found = drift_findings(np.linspace(0, 1, 500), np.linspace(0, 1, 500), pl.DataFrame({"rev": train}),
                           pl.DataFrame({"rev": current}), ["rev"])
    by_kind = {f.kind: f for f in found if f.subject == "rev"}
    assert by_kind["feature_psi"].severity == "info"  # all rows: the buyers' bins hold 4 % of the mass
    active = by_kind["feature_psi_active"]
    assert active.value > 0.5 and active.severity == "hard"
    assert active.baseline == pytest.approx(np.exp(8.0 + 0.045), rel=0.05)  # mean among the buyers
    assert active.current / active.baseline == pytest.approx(1.3, rel=0.05)
    assert "among the customers who have any" in active.action and "'rev'" in active.action
    assert "χ² homogeneity p" in active.detail


def test_chi2_homogeneity_and_critical_values():
    # pooled shares [0.4, 0.6]: expected counts 40 / 60 on each side
    # X2 = (50-40)^2/40 + (50-60)^2/60 + (30-40)^2/40 + (70-60)^2/60 = 8.3333, df 1, p = 0.00389
    stat, df, p = chi2_homogeneity([50, 50], [30, 70])
    assert stat == pytest.approx(25 / 3) and df == 1 and p == pytest.approx(0.003892, abs=1e-6)
    # an empty bin on one side stays finite (PSI's log would add 0.2 ln(0.2 / eps) = 1.5 for it alone)
    stat, df, p = chi2_homogeneity([10, 10, 10, 0], [10, 10, 0, 10])  # bins empty on both sides are dropped
    assert np.isfinite(stat) and df == 3
    assert chi2_homogeneity([5, 0], [3, 0]) is None  # a single bin with mass: nothing to test
    assert z_critical(0.05) == pytest.approx(1.95996, abs=1e-5)
    assert z_critical(0.001, 4) == pytest.approx(3.6623, abs=1e-4)  # Bonferroni: 0.001 / 4, two-sided
    # alpha 1 switches the noise requirement off: the effect thresholds alone decide
    assert z_critical(1.0, 7) == 0.0
    with pytest.raises(ValueError):
        z_critical(1.5)


def test_a_small_sample_psi_within_noise_is_not_raised():
    # The same shares as a warn on 1,000 rows (PSI 0.169) on 100 rows a side: chi2 p 0.0039, above 0.001 / 3
    # (the score and two PSIs of the feature make the partition's family), so info.
    f = drift_findings([0.1] * 50, [0.1] * 50, pl.DataFrame({"r": ["a"] * 50 + ["b"] * 50}),
                       pl.DataFrame({"r": ["a"] * 30 + ["b"] * 70}), ["r"])
    r = next(x for x in f if x.subject == "r")
    assert r.value == pytest.approx(0.2 * math.log(5 / 3) + 0.2 * math.log(1.4))
    assert r.severity == "info" and "within sampling noise" in r.detail and "p 0.0039" in r.detail
    # with the noise requirement off (alpha 1) the effect threshold alone decides: warn
    off = drift_findings([0.1] * 50, [0.1] * 50, pl.DataFrame({"r": ["a"] * 50 + ["b"] * 50}),
                         pl.DataFrame({"r": ["a"] * 30 + ["b"] * 70}), ["r"], thresholds=DriftThresholds(alpha=1.0))
    assert next(x for x in off if x.subject == "r").severity == "warn"


def test_a_customer_pooled_at_several_training_cutoffs_counts_once_in_the_test():
    # 100 customers, each in the training sample at 6 pooled cutoffs with the same value (600 rows, 50/50), against
    # 100 current customers 30/70: the PSI is that of the shares (0.169); counted as 600 independent rows the chi2 p
    # is 2.1e-4 (below 0.001 / 3: raised as warn), counted as the 100 customers they are it is 0.0039 (noise).
    customers = np.repeat(np.arange(100), 6)
    train = pl.DataFrame({"r": np.where(customers < 50, "a", "b")})
    current = pl.DataFrame({"r": ["a"] * 30 + ["b"] * 70})
    assert design_effect(customers) == 6.0 and design_effect(np.arange(5)) == 1.0 and design_effect([]) == 1.0
    rows = next(x for x in drift_findings([0.1] * 600, [0.1] * 100, train, current, ["r"]) if x.subject == "r")
    assert rows.severity == "warn" and "p 0.00021" in rows.detail
    units = next(x for x in drift_findings([0.1] * 600, [0.1] * 100, train, current, ["r"], train_units=customers)
                 if x.subject == "r")
    assert units.value == pytest.approx(rows.value) == pytest.approx(0.2 * math.log(5 / 3) + 0.2 * math.log(1.4))
    assert units.severity == "info" and "within sampling noise" in units.detail and "p 0.0039" in units.detail
    assert "600 training (100 customers: each counts once in the test) vs 100 current rows" in units.detail


def test_few_buyers_with_a_chance_empty_bin_are_not_an_alert():
    # 70 training buyers, 30 current buyers from one distribution (seed 8 of 40 tried: the one where chance left a
    # bin empty); PSI among them 1.67, the chi2 test of the same 7 bins p 0.013, far from 0.001 / 3
    rng = np.random.default_rng(8)
    train = np.r_[np.zeros(1900), np.exp(rng.normal(8, 1, 70))]
    current = np.r_[np.zeros(650), np.exp(rng.normal(8, 1, 30))]
    zi = psi_zero_inflated(train, current)
    assert zi.active == pytest.approx(1.668, abs=1e-3) and 0.0 in zi.active_counts[1]
    assert chi2_homogeneity(*zi.active_counts)[2] == pytest.approx(0.0131, abs=1e-4)
    f = drift_findings([0.1] * 50, [0.1] * 50, pl.DataFrame({"x": train}), pl.DataFrame({"x": current}), ["x"])
    active = next(x for x in f if x.kind == "feature_psi_active")
    assert active.value == pytest.approx(zi.active) and active.severity == "info"


# ---------------------------------------------------------------------------------------------------
# segments and divisions of the roster
# ---------------------------------------------------------------------------------------------------
REGIONS = ["Central", "East", "North", "West"]


def _lines(slump: dict[str, float] | None = None, seed: int = 0, per_region: int = 100,
           regions: bool = True) -> pl.DataFrame:
    """Seeded invoices: per customer and month Poisson(1) invoices of one SKU; from 2026-04 the customers of a region
    in `slump` keep each month's invoices with that probability."""
    rng = np.random.default_rng(seed)
    months = [dt.date(2025, m, 15) for m in range(1, 13)] + [dt.date(2026, m, 15) for m in range(1, 7)]
    rows = []
    for r, region in enumerate(REGIONS):
        for i in range(per_region):
            cid = f"C{r}{i:03d}"
            for m in months:
                n = rng.poisson(1.0)
                if slump and region in slump and m >= dt.date(2026, 4, 1) and rng.random() > slump[region]:
                    n = 0
                for k in range(n):
                    rows.append((cid, f"{cid}-{m}-{k}", m, "Simulation", "SIM-STD", 1.0, 1000.0, region,
                                 f"{region}-0{i % 2}", "Machinery"))
    cols = ["customer_id", "invoice_id", "invoice_date", "division", "sku", "quantity", "revenue", "region",
            "territory", "industry"]
    df = pl.DataFrame(rows, schema=cols, orient="row")
    return df if regions else df.drop("region", "territory", "industry")


def test_stationary_segments_raise_nothing():
    found = segment_activity_findings(_lines(), ["region", "territory"], C, BASE, 3)
    assert {f.subject for f in found} == {*(f"region={r}" for r in REGIONS),
                                          *(f"territory={r}-0{k}" for r in REGIONS for k in (0, 1))}
    assert all(f.severity == "info" and f.kind == "segment_invoices" for f in found)
    assert all(abs(f.value) < 0.2 and abs(f.z) < z_critical(0.001, 4) for f in found)


def test_a_region_halving_is_a_hard_finding_naming_it():
    found = segment_activity_findings(_lines({"West": 0.5}), ["region"], C, BASE, 3)
    raised = [f for f in found if f.severity != "info"]
    assert [f.subject for f in raised] == ["region=West"]
    west = raised[0]
    assert west.severity == "hard" and west.kind == "segment_invoices"
    assert west.value == pytest.approx(-0.5, abs=0.12)  # x0.5 relative to the median region
    assert west.z < -z_critical(0.001, 4)
    # baseline: invoices per 3-month window at the training cutoffs (~100 customers x 3 months x Poisson(1))
    assert west.baseline == pytest.approx(300, rel=0.15) and west.current == pytest.approx(150, rel=0.2)
    assert "region West" in west.action and "retrain" in west.action and "extract" in west.action
    assert "2025-06-30, 2025-09-30, 2025-12-31" in west.detail


def test_the_cutoff_before_the_change_raises_nothing():
    before = segment_activity_findings(_lines({"West": 0.5}), ["region"], dt.date(2026, 3, 31),
                                       [dt.date(2025, 3, 31), dt.date(2025, 6, 30), dt.date(2025, 9, 30)], 3)
    assert all(f.severity == "info" for f in before)


def test_no_segment_column_is_skipped_with_a_note_not_a_failure():
    lines = _lines(regions=False)
    found = activity_findings(lines, ["region", "territory"], C, BASE, 3)
    notes = [f for f in found if f.kind == "segments_skipped"]
    assert [(f.subject, f.severity) for f in notes] == [("region", "info"), ("territory", "info")]
    assert "no region values" in notes[0].detail
    # a column present but empty, and a column with a single segment, are notes too
    empty = _lines().with_columns(pl.lit(None, dtype=pl.String).alias("region"))
    one = _lines().with_columns(pl.lit("All").alias("territory"))
    found = segment_activity_findings(empty, ["region"], C, BASE, 3) + segment_activity_findings(
        one, ["territory"], C, BASE, 3)
    assert [(f.kind, f.subject) for f in found] == [("segments_skipped", "region"), ("segments_skipped", "territory")]
    assert "fewer than 2 territory values" in found[1].detail
    # and no baseline window at all
    assert segment_activity_findings(_lines(), ["region"], C, [], 3)[0].kind == "segments_skipped"


def _division_lines(move: bool = False, price: float = 1.0, mix: bool = False, seed: int = 1) -> pl.DataFrame:
    """Four divisions, two SKUs each; 200 customers buy Poisson(0.5) invoices per SKU and month (A-2, a consumable,
    Poisson(1.5)). From 2026-04: `move` books A-2 as B-1 (A keeps a quarter of its invoices, B gets x2.5), `price`
    multiplies C's unit prices, `mix` buys D-2 (the dearer D SKU) three times as often."""
    rng = np.random.default_rng(seed)
    list_price = {"A-1": 100.0, "A-2": 20.0, "B-1": 500.0, "B-2": 800.0, "C-1": 1000.0, "C-2": 3000.0,
                  "D-1": 50.0, "D-2": 400.0}
    months = [dt.date(2025, m, 10) for m in range(1, 13)] + [dt.date(2026, m, 10) for m in range(1, 7)]
    rows = []
    for i in range(200):
        for m in months:
            after = m >= dt.date(2026, 4, 1)
            for sku, p in list_price.items():
                rate = 1.5 if (mix and after and sku == "D-2") or sku == "A-2" else 0.5
                for k in range(rng.poisson(rate)):
                    qty = float(rng.integers(1, 4))
                    unit = p * math.exp(rng.normal(0, 0.05)) * (price if after and sku.startswith("C") else 1.0)
                    booked = "B-1" if (move and after and sku == "A-2") else sku
                    rows.append((f"C{i:03d}", f"I{i}-{m}-{sku}-{k}", m, booked[0], booked, qty, qty * unit))
    return pl.DataFrame(rows, schema=["customer_id", "invoice_id", "invoice_date", "division", "sku", "quantity",
                                      "revenue"], orient="row")


def test_stationary_divisions_raise_nothing():
    lines = _division_lines()
    found = division_activity_findings(lines, C, BASE, 3) + division_price_findings(lines, C, BASE, 3)
    assert {(f.kind, f.subject) for f in found} == {(k, f"division={d}") for k in ("division_invoices",
                                                                                    "division_price")
                                                    for d in "ABCD"}
    assert all(f.severity == "info" for f in found)
    prices = [f for f in found if f.kind == "division_price"]
    assert all(abs(f.value) < 0.03 for f in prices)


def test_a_sku_moving_division_names_both_divisions_and_the_sku():
    lines = _division_lines(move=True)
    found = {f.subject: f for f in division_activity_findings(lines, C, BASE, 3)}
    a, b = found["division=A"], found["division=B"]
    assert a.severity == b.severity == "hard"
    assert a.value == pytest.approx(-0.75, abs=0.1) and b.value == pytest.approx(1.5, abs=0.3)
    assert found["division=C"].severity == found["division=D"].severity == "info"
    assert "A-2" in a.detail and "sku_map" in a.action
    # B-1 now carries A-2's cheap lines: its unit price fell, which the price index names
    price = {f.subject: f for f in division_price_findings(lines, C, BASE, 3)}
    assert price["division=B"].severity == "hard" and "B-1" in price["division=B"].detail


def test_a_price_increase_is_a_hard_price_finding_and_a_mix_change_is_not():
    found = {f.subject: f for f in division_price_findings(_division_lines(price=1.3), C, BASE, 3)}
    c = found["division=C"]
    assert c.severity == "hard" and c.value == pytest.approx(0.3, abs=0.02)
    assert c.baseline == 1.0 and c.current == pytest.approx(1.3, abs=0.02)
    assert "+30%" in c.action and "pricing" in c.action
    assert all(found[f"division={d}"].severity == "info" for d in "ABD")
    mix = {f.subject: f for f in division_price_findings(_division_lines(mix=True), C, BASE, 3)}
    assert mix["division=D"].severity == "info" and abs(mix["division=D"].value) < 0.03


# ---------------------------------------------------------------------------------------------------
# seasonal prevalence: like with like
# ---------------------------------------------------------------------------------------------------
def _training(rates: dict[dt.date, tuple[int, int]]) -> pl.DataFrame:
    rows = [(c, 1 if i < k else 0) for c, (k, n) in rates.items() for i in range(n)]
    return pl.DataFrame(rows, schema=["cutoff_date", "label"], orient="row")


def test_prevalence_is_compared_with_the_same_month_a_year_earlier():
    training = _training({dt.date(2025, 3, 31): (160, 2000),   # March: the high season, 8 %
                          dt.date(2025, 6, 30): (40, 2000),    # 2 %
                          dt.date(2025, 9, 30): (40, 2000)})   # 2 %
    base = prevalence_baseline(dt.date(2026, 3, 31), training)
    assert base.seasonal and base.cutoffs == (dt.date(2025, 3, 31),)
    assert (base.positives, base.rows, base.prevalence) == (160, 2000, 0.08)
    assert "same month of the year, a year earlier" in base.basis
    kw = dict(prevalence_current=170 / 2000, prevalence_rows_current=2000)
    f = drift_findings([0.1], [0.1], pl.DataFrame(), pl.DataFrame(), [], prevalence_train=base.prevalence,
                       prevalence_rows_train=base.rows, prevalence_basis=base.basis, **kw)[-1]
    assert f.kind == "prevalence_shift" and f.severity == "info" and f.value == pytest.approx(0.0625)
    assert "2025-03-31" in f.detail
    # Against the pooled year (4 %) the same March would be a hard "shift" of +112 %: the season, not drift.
    pooled = drift_findings([0.1], [0.1], pl.DataFrame(), pl.DataFrame(), [], prevalence_train=240 / 6000,
                            prevalence_rows_train=6000, **kw)[-1]
    assert pooled.severity == "hard" and pooled.value == pytest.approx(1.125)


def test_without_the_same_month_the_pooled_training_cutoffs_are_used_and_said():
    training = _training({dt.date(2025, 3, 31): (30, 1000), dt.date(2025, 6, 30): (10, 1000)})
    base = prevalence_baseline(dt.date(2025, 12, 31), training)
    assert not base.seasonal and base.prevalence == pytest.approx(0.02) and base.rows == 2000
    assert "pooled" in base.basis and "seasonality is not matched" in base.basis
    assert prevalence_baseline(C, pl.DataFrame({"cutoff_date": [], "label": []})) is None


def test_a_pooled_baseline_counts_each_customer_once_in_its_test():
    # 300 customers at six pooled cutoffs (1,800 rows, 5 %) against 300 current rows at 10 %: as 1,800 independent
    # rows the doubling is beyond noise (z 3.45); as the 300 customers they are, it is not (z 2.32).
    cutoffs = [dt.date(2025, m, 28) for m in range(1, 7)]
    training = pl.DataFrame({"cutoff_date": [c for c in cutoffs for _ in range(300)],
                             "customer_id": [f"c{i:03d}" for _ in cutoffs for i in range(300)],
                             "label": [1 if i < 15 else 0 for _ in cutoffs for i in range(300)]})
    base = prevalence_baseline(dt.date(2025, 12, 31), training)
    assert not base.seasonal and (base.rows, base.customers, base.prevalence) == (1800, 300, 0.05)
    kw = dict(prevalence_train=base.prevalence, prevalence_current=0.10, prevalence_rows_train=base.rows,
              prevalence_rows_current=300)
    as_rows = drift_findings([0.1], [0.1], pl.DataFrame(), pl.DataFrame(), [], **kw)[-1]
    assert as_rows.z == pytest.approx(3.45, abs=0.01) and as_rows.severity == "hard"
    once = drift_findings([0.1], [0.1], pl.DataFrame(), pl.DataFrame(), [], **kw,
                          prevalence_customers_train=base.customers)[-1]
    assert once.z == pytest.approx(2.32, abs=0.01) and once.severity == "info"
    assert "(1800 rows, 300 customers: each counts once in the test)" in once.detail
    assert "within sampling noise" in once.detail
    # One cutoff, or rows without customer ids: the rows are the sample.
    single = prevalence_baseline(dt.date(2026, 1, 28), training)
    assert single.seasonal and single.customers == single.rows == 300
    assert prevalence_baseline(dt.date(2025, 12, 31), training.drop("customer_id")).customers is None


def test_a_prevalence_doubling_needs_the_counts_to_show_it():
    def finding(k0, n0, k1, n1):
        return drift_findings([0.1], [0.1], pl.DataFrame(), pl.DataFrame(), [], prevalence_train=k0 / n0,
                              prevalence_current=k1 / n1, prevalence_rows_train=n0, prevalence_rows_current=n1)[-1]

    few = finding(10, 600, 20, 600)  # 10 -> 20 positives: z ~ 1.8
    assert few.value == pytest.approx(1.0) and few.severity == "info"
    assert abs(few.z) < z_critical(0.001) and "within sampling noise" in few.detail
    many = finding(100, 5000, 200, 5000)  # the same doubling on 100 -> 200 positives: z ~ 5.8
    assert many.severity == "hard" and many.z > z_critical(0.001)


def test_thresholds_validate():
    with pytest.raises(ValueError):
        DriftThresholds(activity_factor_warn=2.0, activity_factor_hard=1.5)
    with pytest.raises(ValueError):
        DriftThresholds(alpha=0.0)
    with pytest.raises(ValueError):
        DriftThresholds(activity_factor_warn=0.5, activity_factor_hard=0.9)


def test_the_year_earlier_rate_is_labelled_with_the_label_definition():
    # 10 customers active in 2024 (a Y purchase); C = 2025-12-31, so the year-earlier cutoff is 2024-12-31 and its
    # 6-month window (2024-12-31, 2025-06-30]. Customers 0-2 buy X in that window, customer 3 only after it, and
    # customer 9 already owned X (not in the expansion population).
    def line(cid, day, division, revenue=100.0):
        return (f"C{cid}", dt.date.fromisoformat(day), division, f"{division}-1", revenue)

    rows = [line(i, "2024-03-10", "Y") for i in range(10)] + [line(9, "2024-05-01", "X")]
    rows += [line(i, "2025-02-15", "X") for i in range(3)] + [line(3, "2025-08-01", "X")]
    fact = pl.DataFrame(rows, schema=["customer_id", "invoice_date", "division", "sku", "revenue"], orient="row")
    dim = pl.DataFrame({"customer_id": [f"C{i}" for i in range(10)], "first_seen_date": [None] * 10},
                       schema={"customer_id": pl.String, "first_seen_date": pl.Date})
    base = prevalence_year_earlier(fact, dim, division="X", cutoff=dt.date(2025, 12, 31), window_months=6,
                                   data_start=dt.date(2020, 1, 1), data_end=dt.date(2026, 10, 31),
                                   training_cutoffs=[dt.date(2025, 3, 31)])
    assert (base.positives, base.rows) == (3, 9) and base.seasonal and base.cutoffs == (dt.date(2024, 12, 31),)
    assert "2024-12-31, the same month a year earlier" in base.basis and "training cutoff" not in base.basis
    # before the data start: no year-earlier rate
    assert prevalence_year_earlier(fact, dim, division="X", cutoff=dt.date(2025, 12, 31), window_months=6,
                                   data_start=dt.date(2025, 1, 1), data_end=dt.date(2026, 10, 31)) is None


def test_a_year_earlier_cutoff_without_a_year_of_log_before_it_gives_no_rate():
    # The log starts 2025-10-01. Customers 0-4 have owned X since before it and buy X every six months (December and
    # June); customers 5-9 never buy X. Everyone buys Y in October 2025. A month into the log nobody is a known owner
    # of X yet: C - 12 = 2025-10-31 would label the owners' next purchase as a first one.
    def line(cid, day, division):
        return (f"C{cid}", dt.date.fromisoformat(day), division, f"{division}-1", 100.0)

    rows = [line(i, "2025-10-05", "Y") for i in range(10)]
    rows += [line(i, day, "X") for i in range(5) for day in ("2025-12-10", "2026-06-10", "2026-12-10", "2027-06-10")]
    fact = pl.DataFrame(rows, schema=["customer_id", "invoice_date", "division", "sku", "revenue"], orient="row")
    dim = pl.DataFrame({"customer_id": [f"C{i}" for i in range(10)], "first_seen_date": [None] * 10},
                       schema={"customer_id": pl.String, "first_seen_date": pl.Date})
    start, end = dt.date(2025, 10, 1), dt.date(2027, 12, 31)

    def rate(cutoff, min_history_months=12):
        return prevalence_year_earlier(fact, dim, division="X", cutoff=cutoff, window_months=6, data_start=start,
                                       data_end=end, min_history_months=min_history_months)

    unguarded = rate(dt.date(2026, 10, 31), min_history_months=0)
    assert (unguarded.positives, unguarded.rows) == (5, 10)  # the owners' repeat purchases counted as first ones
    assert rate(dt.date(2026, 10, 31)) is None
    assert "has less than 12 months of history" in year_earlier_refusal(dt.date(2026, 10, 31), start, 12)
    # A year of log up to C - 12 (2026-09-30: October 2025 to September 2026): the owners are known and left out.
    known = rate(dt.date(2027, 9, 30))
    assert (known.positives, known.rows) == (0, 5)
    assert year_earlier_refusal(dt.date(2027, 9, 30), start, 12) is None
    assert year_earlier_refusal(dt.date(2027, 8, 31), start, 12) is not None  # 11 months
    assert "before the data start" in year_earlier_refusal(dt.date(2026, 8, 31), start, 0)


# ---------------------------------------------------------------------------------------------------
# every comparison like with like: a hard finding needs a baseline in C's season
# ---------------------------------------------------------------------------------------------------
OTHER_SEASONS = [dt.date(2025, 9, 30), dt.date(2025, 12, 31), dt.date(2026, 3, 31)]  # none in June, C's month


def _seasonal_lines(seed: int = 2) -> pl.DataFrame:
    """Four divisions, 300 customers, January 2025 to June 2026; division G (a garden business) sells three times
    as much from April to June as in the rest of the year, every year; the others are flat."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(300):
        for year, last in ((2025, 12), (2026, 6)):
            for month in range(1, last + 1):
                for div in "GHJK":
                    rate = 0.3 * (3.0 if div == "G" and month in (4, 5, 6) else 1.0)
                    for k in range(rng.poisson(rate)):
                        rows.append((f"C{i:03d}", f"I{i}-{year}-{month}-{div}-{k}", dt.date(year, month, 15), div,
                                     f"{div}-1", 1.0, 100.0))
    return pl.DataFrame(rows, schema=["customer_id", "invoice_id", "invoice_date", "division", "sku", "quantity",
                                      "revenue"], orient="row")


def test_season_of_a_baseline_says_when_it_is_not_in_the_cutoffs_month():
    assert season_of_baseline(C, BASE, "the sample") is None  # 2025-06-30: June, like C
    why = season_of_baseline(C, OTHER_SEASONS, "the sample")
    assert why.startswith("compared across seasons: the sample ends in Mar, Sep, Dec, none in Jun")
    assert season_of_baseline(C, [], "the sample") is None  # nothing compared, nothing to say


def test_activity_is_compared_with_the_same_months_a_year_earlier_when_the_data_reach_them():
    # (2025-03-31, 2025-06-30] is in the data from 2025-04-01 on: the same months a year earlier
    assert activity_baseline(C, OTHER_SEASONS, 3, dt.date(2025, 4, 1)) == ([dt.date(2025, 6, 30)], None)
    for first_day in (dt.date(2025, 4, 2), None):  # a day short, or not known: the training windows, said
        base, why = activity_baseline(C, OTHER_SEASONS, 3, first_day)
        assert base == OTHER_SEASONS and "compared across seasons" in why
    # a training window that would overlap C's is left out; one in June is like with like
    assert activity_baseline(C, [dt.date(2025, 6, 30), dt.date(2026, 5, 31)], 3, None) == (
        [dt.date(2025, 6, 30)], None)


def test_a_seasonal_division_is_normal_against_its_own_season_and_at_most_warn_across_seasons():
    lines = _seasonal_lines()
    base, why = activity_baseline(C, OTHER_SEASONS, 3, lines.get_column("invoice_date").min())
    same_season = {f.subject: f for f in division_activity_findings(lines, C, base, 3, across_seasons=why)}
    assert all(f.severity == "info" for f in same_season.values())
    assert "a year earlier, to 2025-06-30" in same_season["division=G"].detail
    # Against the training windows (September, December, March) the same spring is a tripling: raised, but only
    # as warn, and the detail says why; without the season's reason it would be hard
    base, why = activity_baseline(C, OTHER_SEASONS, 3, None)
    across = {f.subject: f for f in division_activity_findings(lines, C, base, 3, across_seasons=why)}
    g = across["division=G"]
    assert g.severity == "warn" and g.value > 1.0
    assert "compared across seasons" in g.detail and g.detail.endswith("so at most warn; largest SKU change: "
                                                                       f"G-1 {g.baseline:.1f} → {g.current:.0f} lines")
    assert "watch the next cutoff" in g.action and "retrain" not in g.action
    unmarked = {f.subject: f for f in division_activity_findings(lines, C, base, 3)}
    assert unmarked["division=G"].severity == "hard"


def test_a_real_change_is_still_hard_against_the_same_months_a_year_earlier():
    lines = _division_lines(move=True)  # January 2025 to June 2026: the year-earlier window is in the data
    base, why = activity_baseline(C, BASE, 3, lines.get_column("invoice_date").min())
    assert base == [dt.date(2025, 6, 30)] and why is None
    found = {(f.kind, f.subject): f for f in activity_findings(lines, [], C, base, 3, across_seasons=why)}
    a, b = found["division_invoices", "division=A"], found["division_invoices", "division=B"]
    assert a.severity == b.severity == "hard" and found["division_price", "division=B"].severity == "hard"
    assert "the same 3 months a year earlier" in a.detail


def test_psi_and_prevalence_across_seasons_are_at_most_warn():
    rng = np.random.default_rng(5)
    train = pl.DataFrame({"x": rng.normal(0, 1, 3000)})
    current = pl.DataFrame({"x": rng.normal(1.5, 1, 3000)})
    kw = dict(prevalence_train=0.02, prevalence_current=0.06, prevalence_rows_train=5000,
              prevalence_rows_current=5000)
    same = {f.kind: f for f in drift_findings(rng.random(3000), rng.random(3000) ** 3, train, current, ["x"], **kw)}
    assert same["feature_psi"].severity == same["score_psi"].severity == same["prevalence_shift"].severity == "hard"
    why = season_of_baseline(C, OTHER_SEASONS, "the model's training sample")
    across = {f.kind: f for f in drift_findings(rng.random(3000), rng.random(3000) ** 3, train, current, ["x"],
                                                across_seasons=why, prevalence_across_seasons="across seasons",
                                                cal_mae_train=0.01, cal_mae_current=0.08, **kw)}
    for kind in ("feature_psi", "score_psi", "prevalence_shift"):
        assert across[kind].severity == "warn", kind
        assert "so at most warn" in across[kind].detail
    assert across["feature_psi"].action.startswith("monitor feature 'x'")
    # the probabilities are wrong at C whatever the cause: calibration keeps its severity
    assert across["calibration_regression"].severity == "hard"


def test_the_same_lines_in_any_order_give_the_same_findings_to_the_bit():
    """Segment and division activity and prices sum floats per group: in a fixed order, so the same lines give the
    same bits whatever order they come in (the alert sensor raises a partition's findings once, by checksum)."""
    lines = pl.concat([_lines(seed=3).with_columns(pl.lit("A").alias("division")),
                       _division_lines().with_columns(pl.lit("North").alias("region"),
                                                      pl.lit("North-00").alias("territory"),
                                                      pl.lit("Retail").alias("industry"))], how="diagonal_relaxed")
    want = [f.to_dict() for f in activity_findings(lines, ["region", "territory"], C, BASE, 3)]
    assert {d["kind"] for d in want} == {"segment_invoices", "division_invoices", "division_price"}
    for seed in range(5):
        shuffled = lines.sample(fraction=1.0, shuffle=True, seed=seed)
        assert [f.to_dict() for f in activity_findings(shuffled, ["region", "territory"], C, BASE, 3)] == want


def test_the_prevalence_finding_says_why_a_short_log_has_no_year_earlier_rate(tmp_path):
    from gosales_assets.assets.validation import _activity_settings_key, _no_seasonal_rate, drift_thresholds
    from gosales_assets_tests.conftest import new_project

    shipped = new_project(tmp_path / "shipped").settings
    assert shipped.drift.year_earlier_min_history_months == 12  # the documented default
    retail = {"data": {"start_date": "2025-10-01"}, "cutoffs": ["2026-03-31"]}  # a 13-month log
    short = new_project(tmp_path / "short", retail).settings
    said = _no_seasonal_rate(short, dt.date(2026, 10, 31))
    assert said.startswith("compared across seasons (no baseline rate in C's month of the year: C − 12 months "
                           "(2025-10-31) has less than 12 months of history")
    lenient = new_project(tmp_path / "lenient", retail | {"drift": {"year_earlier_min_history_months": 1}}).settings
    assert _no_seasonal_rate(lenient, dt.date(2026, 10, 31)) == \
        "compared across seasons (no baseline rate in C's month of the year)"
    # Not a threshold, and nothing the cutoff's roster activity depends on: its rows stay usable when it changes.
    assert drift_thresholds(lenient) == drift_thresholds(short) == DriftThresholds()
    assert _activity_settings_key(lenient) == _activity_settings_key(short)
