"""Leakage audits pass on the real builders and fail, on purpose, on leaky ones."""

import datetime as dt

import polars as pl

from gosales_assets.core.basket import market_basket_rules
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.features import build_customer_features
from gosales_assets.core.leakage import invariance_report, perturb_after_cutoff, source_date_audit
from gosales_assets.settings import FeatureSettings

C = dt.date(2024, 6, 30)
DIVS = ["Solidworks", "Success Plan"]


def fact() -> pl.DataFrame:
    rows = [
        ("I1", 1, dt.date(2024, 1, 5), "A", "SWX-STD", "Solidworks", 1.0, 100.0, 40.0, None, False),
        ("I2", 1, dt.date(2024, 6, 30), "B", "SP-STD", "Success Plan", 1.0, 50.0, 10.0, None, False),
        ("I3", 1, dt.date(2024, 7, 1), "A", "SP-STD", "Success Plan", 1.0, 70.0, 10.0, None, False),
        ("I4", 1, dt.date(2024, 9, 9), "B", "SWX-STD", "Solidworks", 1.0, 90.0, 10.0, None, False),
    ]
    return pl.DataFrame(rows, orient="row", schema={
        "invoice_id": pl.String, "line_no": pl.Int64, "invoice_date": pl.Date, "customer_id": pl.String,
        "sku": pl.String, "division": pl.String, "quantity": pl.Float64, "revenue": pl.Float64,
        "gross_profit": pl.Float64, "rep_id": pl.String, "is_return": pl.Boolean})


DIM = pl.DataFrame({"customer_id": ["A", "B"], "customer_name": ["a", "b"], "industry": [None, None],
                    "sub_industry": [None, None], "region": ["W", "E"], "territory": ["W1", "E1"],
                    "employee_band": [None, None], "first_seen_date": [None, None]},
                   schema_overrides={"first_seen_date": pl.Date, "industry": pl.String, "sub_industry": pl.String,
                                     "employee_band": pl.String})


def test_perturbation_changes_only_post_cutoff_rows():
    f = fact()
    p = perturb_after_cutoff(f, C, seed=3)
    assert p.filter(pl.col("invoice_date") <= C).equals(f.filter(pl.col("invoice_date") <= C))
    post = p.filter(pl.col("invoice_date") > C)
    assert post.height > f.filter(pl.col("invoice_date") > C).height  # new customers were added
    assert post.get_column("customer_id").str.starts_with("LEAK-").any()


def test_source_date_audit_pass_and_fail():
    f = fact()
    ok = source_date_audit(f.filter(pl.col("invoice_date") <= C), C)
    assert ok.passed and ok.values["latest_source_date"] == "2024-06-30"
    bad = source_date_audit(f, C)
    assert not bad.passed and bad.values["rows_after_cutoff"] == 2 and "after cutoff" in bad.detail


def _features(rows):
    return build_customer_features(rows, DIM, C, DIVS, FeatureSettings())


def test_invariance_passes_for_real_builders():
    pre = fact().filter(pl.col("invoice_date") <= C)
    report = invariance_report(_features, fact(), C, frame_checksum(_features(pre)))
    assert report.passed, report.values

    def rules(rows):
        return market_basket_rules(rows, C, DIVS, min_support=0.0, min_confidence=0.0)

    assert invariance_report(rules, fact(), C, frame_checksum(rules(pre))).passed


def test_invariance_fails_for_a_builder_that_reads_the_future():
    # Deliberately leaky: the builder forgets to filter and counts every row.
    def leaky(rows):
        return rows.group_by("customer_id").agg(pl.col("revenue").sum()).sort("customer_id")

    pre = fact().filter(pl.col("invoice_date") <= C)
    report = invariance_report(leaky, fact(), C, frame_checksum(leaky(pre)))
    assert not report.passed
    assert "leakage" in report.detail
    assert report.values["checksum_stored"] != report.values["checksum_perturbed"]


def test_invariance_fails_for_a_subtle_off_by_one_leak():
    # Reads one day past the cutoff (the kind of bug a `<` vs `<=` slip on C + 1 introduces).
    def off_by_one(rows):
        kept = rows.filter(pl.col("invoice_date") <= C + dt.timedelta(days=1))
        return kept.group_by("customer_id").agg(pl.col("revenue").sum()).sort("customer_id")

    pre = fact().filter(pl.col("invoice_date") <= C)
    assert not invariance_report(off_by_one, fact(), C, frame_checksum(off_by_one(pre))).passed
