"""Unit tests for core/basket.py: hand-computed support / confidence / lift on a 6-customer example."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gosales_assets.core.basket import basket_lift_signals, customer_portfolios, market_basket_rules
from gosales_assets.core.checksum import frame_checksum

C = dt.date(2024, 6, 30)
DIVS = ["Solidworks", "Success Plan", "Post_Processing", "CAMWorks"]

# customer -> divisions bought (10 each, before C). CAMWorks is configured but nobody owns it.
OWN = {
    "c1": ["Solidworks", "Success Plan"],
    "c2": ["Solidworks", "Success Plan"],
    "c3": ["Solidworks"],
    "c4": ["Success Plan", "Post_Processing"],
    "c5": ["Post_Processing"],
    "c6": ["Solidworks", "Success Plan", "Post_Processing"],
}


def make_fact(extra: list[tuple] | None = None) -> pl.DataFrame:
    rows = []
    for cust, divs in OWN.items():
        for d in divs:
            rows.append((f"{cust}-{d}", cust, d, dt.date(2024, 1, 15), 10.0))
    rows += extra or []
    return pl.DataFrame(
        rows,
        schema={"invoice_id": pl.String, "customer_id": pl.String, "division": pl.String,
                "invoice_date": pl.Date, "revenue": pl.Float64},  # fmt: skip
        orient="row",
    )


def rule(rules: pl.DataFrame, a: str, b: str) -> dict:
    return rules.filter((pl.col("antecedent") == a) & (pl.col("consequent") == b)).row(0, named=True)


@pytest.fixture(scope="module")
def rules() -> pl.DataFrame:
    return market_basket_rules(make_fact(), C, DIVS, min_support=0.3, min_confidence=0.6)


def test_rules_frame_shape_and_order(rules):
    assert rules.columns == [
        "antecedent", "consequent", "n_antecedent", "n_consequent", "n_both", "n_customers",
        "support", "confidence", "lift", "passes_thresholds",
    ]  # fmt: skip
    assert rules.height == len(DIVS) * (len(DIVS) - 1)  # every ordered pair, even with zero counts
    pairs = list(zip(rules.get_column("antecedent"), rules.get_column("consequent")))
    assert pairs == sorted(pairs)
    assert all(a != b for a, b in pairs)


def test_support_confidence_lift_hand_computed(rules):
    # owners: SW = {c1,c2,c3,c6} (4), SP = {c1,c2,c4,c6} (4), PP = {c4,c5,c6} (3); 6 customers
    r = rule(rules, "Solidworks", "Success Plan")  # both: c1, c2, c6
    assert (r["n_antecedent"], r["n_consequent"], r["n_both"], r["n_customers"]) == (4, 4, 3, 6)
    assert r["support"] == pytest.approx(3 / 6)
    assert r["confidence"] == pytest.approx(3 / 4)
    assert r["lift"] == pytest.approx((3 / 4) / (4 / 6))  # 1.125
    assert r["passes_thresholds"] is True

    r = rule(rules, "Post_Processing", "Success Plan")  # both: c4, c6
    assert r["support"] == pytest.approx(2 / 6)
    assert r["confidence"] == pytest.approx(2 / 3)
    assert r["lift"] == pytest.approx((2 / 3) / (4 / 6))  # 1.0
    assert r["passes_thresholds"] is True

    r = rule(rules, "Success Plan", "Post_Processing")  # confidence 2/4 < 0.6
    assert r["confidence"] == pytest.approx(0.5)
    assert r["lift"] == pytest.approx(0.5 / (3 / 6))
    assert r["passes_thresholds"] is False

    r = rule(rules, "Solidworks", "Post_Processing")  # both: c6 -> support 1/6 < 0.3
    assert r["support"] == pytest.approx(1 / 6)
    assert r["confidence"] == pytest.approx(1 / 4)
    assert r["lift"] == pytest.approx(0.5)
    assert r["passes_thresholds"] is False


def test_zero_division_rules(rules):
    r = rule(rules, "CAMWorks", "Solidworks")
    assert (r["n_antecedent"], r["n_both"], r["support"], r["confidence"], r["lift"]) == (0, 0, 0.0, 0.0, 0.0)
    assert r["passes_thresholds"] is False
    r = rule(rules, "Solidworks", "CAMWorks")
    assert (r["n_consequent"], r["lift"], r["passes_thresholds"]) == (0, 0.0, False)


def test_threshold_boundaries_are_inclusive():
    rules = market_basket_rules(make_fact(), C, DIVS, min_support=0.5, min_confidence=0.75)
    assert rule(rules, "Solidworks", "Success Plan")["passes_thresholds"] is True  # exactly 0.5 / 0.75
    assert rules.get_column("passes_thresholds").sum() == 2  # SW -> SP and SP -> SW


def test_portfolio_is_net_of_returns_and_pre_cutoff():
    extra = [
        ("r1", "c3", "CAMWorks", dt.date(2024, 2, 1), 50.0),
        ("r2", "c3", "CAMWorks", dt.date(2024, 3, 1), -50.0),  # fully returned: not owned
        ("late", "c5", "Solidworks", dt.date(2024, 7, 1), 99.0),  # after C: not owned
        ("new", "c7", "CAMWorks", dt.date(2024, 8, 1), 99.0),  # new customer after C
    ]
    ports = customer_portfolios(make_fact(extra), C)
    assert ports.columns == ["customer_id", "division"]
    assert ports.filter(pl.col("customer_id") == "c3").get_column("division").to_list() == ["Solidworks"]
    assert ports.filter(pl.col("customer_id") == "c5").get_column("division").to_list() == ["Post_Processing"]
    assert "c7" not in ports.get_column("customer_id").to_list()
    assert ports.equals(ports.sort("customer_id", "division"))


def test_portfolio_is_independent_of_row_order_and_extra_columns():
    """The model frame reads ownership rows unordered and with four columns only (`ownership_rows`): a sale and its
    return in either order, amounts whose float sum depends on the order, the same portfolios."""
    extra = [("r1", "c3", "CAMWorks", dt.date(2024, 2, 1), 0.1), ("r2", "c3", "CAMWorks", dt.date(2024, 3, 1), 0.2),
             ("r3", "c3", "CAMWorks", dt.date(2024, 3, 2), -0.3)]  # 0.1 + 0.2 - 0.3 is not 0 in floats, but in cents
    fact = make_fact(extra)
    ports = customer_portfolios(fact, C)
    assert "CAMWorks" not in ports.filter(pl.col("customer_id") == "c3").get_column("division").to_list()
    narrow = fact.select("customer_id", "division", "revenue", "invoice_date")
    for seed in range(5):
        assert customer_portfolios(narrow.sample(fraction=1.0, shuffle=True, seed=seed), C).equals(ports)


def test_rules_invariant_to_post_cutoff_rows_and_line_at_c_counts(rules):
    ref = frame_checksum(rules)
    fact = make_fact()
    perturbed = [
        make_fact([("x", "c3", "Post_Processing", dt.date(2024, 7, 1), 10.0)]),  # C + 1 day
        make_fact([("x", "c9", "CAMWorks", dt.date(2025, 1, 1), 10.0), ("y", "c1", "Solidworks", C + dt.timedelta(days=30), -999.0)]),
        fact.reverse(),
    ]
    for f in perturbed:
        assert frame_checksum(market_basket_rules(f, C, DIVS, min_support=0.3, min_confidence=0.6)) == ref
    at_c = make_fact([("x", "c3", "Post_Processing", C, 10.0)])
    assert frame_checksum(market_basket_rules(at_c, C, DIVS, min_support=0.3, min_confidence=0.6)) != ref


def test_basket_lift_signals(rules):
    ports = customer_portfolios(make_fact(), C)
    sig = basket_lift_signals(ports, rules, "Success Plan")
    assert sig.columns == ["customer_id", "max_lift", "mean_lift", "n_rules"]
    assert sig.get_column("customer_id").to_list() == sorted(OWN)
    by = {r["customer_id"]: r for r in sig.iter_rows(named=True)}
    # passing rules into SP: SW -> SP (lift 1.125) and PP -> SP (lift 1.0)
    assert by["c3"]["max_lift"] == pytest.approx(1.125) and by["c3"]["n_rules"] == 1
    assert by["c5"]["max_lift"] == pytest.approx(1.0)
    assert by["c6"]["max_lift"] == pytest.approx(1.125)
    assert by["c6"]["mean_lift"] == pytest.approx((1.125 + 1.0) / 2)
    assert by["c6"]["n_rules"] == 2
    # no passing rule into CAMWorks: zeros, not nulls
    cam = basket_lift_signals(ports, rules, "CAMWorks")
    assert cam.get_column("max_lift").to_list() == [0.0] * 6
    assert cam.get_column("n_rules").to_list() == [0] * 6


def test_basket_lift_signals_rejects_unknown_division(rules):
    ports = customer_portfolios(make_fact(), C)
    with pytest.raises(ValueError, match="case-sensitive"):
        basket_lift_signals(ports, rules, "success plan")


def test_empty_history_gives_all_pairs_with_zeros():
    empty = make_fact().filter(pl.col("invoice_date") > C)
    rules = market_basket_rules(empty, C, DIVS, min_support=0.0, min_confidence=0.0)
    assert rules.height == 12
    assert rules.get_column("n_customers").to_list() == [0] * 12
    assert rules.get_column("lift").to_list() == [0.0] * 12
