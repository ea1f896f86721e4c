"""Star-schema logic on hand-made rows: every rule, exact reconciliation, and the contract checks."""

import datetime as dt

import polars as pl
import pytest

from gosales_assets.core.contracts import (
    check_contract,
    contract_violations_schema,
    dim_customer_schema,
    fact_events_schema,
    fact_transactions_schema,
    missing_references,
)
from gosales_assets.core.ingest import raw_schema
from gosales_assets.core.star import SALES_RULES, build_fact_events, build_star, violation_summary

START, END = dt.date(2020, 1, 1), dt.date(2025, 12, 31)
SKU_MAP = {"SWX-STD": "Solidworks", "PP-WASH": "Post_Processing", "SP-STD": "Success Plan"}
DIVS = ["Solidworks", "Post_Processing", "Success Plan"]


def sales(rows: list[dict]) -> pl.DataFrame:
    base = {"invoice_id": "I1", "line_no": 1, "invoice_date": "2024-05-10", "customer_id": "C1", "sku": "SWX-STD",
            "quantity": 1.0, "revenue": 100.0, "gross_profit": 40.0, "rep_id": "R1", "division": None}
    full = [{"source_file": "sales_log.csv", "source_row": i + 1, **base, **r} for i, r in enumerate(rows)]
    return pl.DataFrame(full, schema=raw_schema("sales_log"))


def customers(ids=("C1", "C2")) -> pl.DataFrame:
    rows = [{"source_file": "customers.csv", "source_row": i + 1, "customer_id": c, "customer_name": f"Co {c}",
             "industry": "Machinery", "sub_industry": None, "region": "West", "territory": "West-01",
             "employee_band": "11-50", "first_seen_date": "2019-02-01"} for i, c in enumerate(ids)]
    return pl.DataFrame(rows, schema=raw_schema("customers"))


def star(rows, cust=None):
    return build_star(sales(rows), cust if cust is not None else customers(), sku_map=SKU_MAP,
                      start_date=START, end_date=END)


@pytest.mark.parametrize(
    "row, rule",
    [
        ({"invoice_date": "2024-13-45"}, "unparseable_date"),
        ({"invoice_date": "31/12/2024"}, "unparseable_date"),
        ({"invoice_date": "2026-01-01"}, "date_out_of_range"),
        ({"invoice_date": "2019-12-31"}, "date_out_of_range"),
        ({"sku": "XX-LEGACY"}, "unknown_sku"),
        ({"sku": "swx-std"}, "unknown_sku"),  # SKUs are exact too
        ({"sku": "PP-WASH", "division": "post_processing"}, "noncanonical_division"),
        ({"sku": "SP-STD", "division": "Success plan"}, "noncanonical_division"),
        ({"quantity": -1.0, "revenue": 50.0}, "sign_mismatch"),
        ({"customer_id": "C404"}, "unknown_customer"),
        ({"customer_id": None}, "missing_value"),
        ({"revenue": float("nan")}, "missing_value"),
        ({"customer_id": "C404", "revenue": 1e15}, "implausible_amount"),  # reported before the customer
    ],
)
def test_each_rule_quarantines_its_row_with_original_values(row, rule):
    st = star([{"invoice_id": "OK"}, {"invoice_id": "BAD", **row}])
    assert st.fact_transactions.get_column("invoice_id").to_list() == ["OK"]
    v = st.contract_violations.filter(pl.col("source_table") == "sales_log")
    assert v.select("source_file", "source_row", "rule").rows() == [("sales_log.csv", 2, rule)]
    assert '"invoice_id":"BAD"' in v.item(0, "original")
    assert v.item(0, "detail")


def test_first_rule_wins_and_every_row_reconciles():
    rows = [
        {"invoice_id": "A"},
        {"invoice_id": "B", "invoice_date": "bad", "sku": "NOPE"},  # date checked before SKU
        {"invoice_id": "C", "sku": "NOPE", "customer_id": "C404"},  # SKU before customer
        {"invoice_id": "D", "line_no": 1},
        {"invoice_id": "D", "line_no": 1},  # exact copy
        {"invoice_id": "D", "line_no": 1, "revenue": 7.0},  # same key, different line
    ]
    st = star(rows)
    rules = st.contract_violations.filter(pl.col("source_table") == "sales_log").select("source_row", "rule").rows()
    assert rules == [(2, "unparseable_date"), (3, "unknown_sku"), (5, "duplicate_line"), (6, "duplicate_key")]
    assert st.fact_transactions.height + len(rules) == len(rows)
    assert sorted(st.fact_transactions.get_column("source_row").to_list() + [r for r, _ in rules]) == list(range(1, 7))


def test_same_day_lines_of_one_customer_are_all_kept():
    # The earlier system collapsed same-day lines before its duplicate check and lost sales.
    rows = [{"invoice_id": "I1", "line_no": n} for n in (1, 2, 3)] + [{"invoice_id": "I2", "line_no": 1}]
    st = star(rows)
    assert st.fact_transactions.height == 4
    assert st.fact_transactions.get_column("revenue").sum() == 400.0
    assert st.contract_violations.height == 0


def test_only_passing_lines_make_copies_and_key_conflicts_and_the_log_order_decides_which():
    rows = [
        {"invoice_id": "E", "sku": "NOPE"},  # rejected by its SKU: it claims no key
        {"invoice_id": "E", "revenue": 5.0},  # same key, passes: kept
        {"invoice_id": "F", "line_no": 2, "revenue": 9.0, "source_file": "b.csv"},
        {"invoice_id": "F", "line_no": 2, "revenue": 8.0, "source_file": "a.csv"},  # earlier file: kept
        {"invoice_id": "E", "revenue": 5.0},  # exact copy of the kept E line
    ]
    raw = sales(rows).with_columns(pl.Series("source_file", [r.get("source_file", "sales_log.csv") for r in rows]))
    st = build_star(raw, customers(), sku_map=SKU_MAP, start_date=START, end_date=END)
    kept = st.fact_transactions.select("invoice_id", "revenue").rows()
    assert sorted(kept) == [("E", 5.0), ("F", 8.0)]
    v = st.contract_violations.filter(pl.col("source_table") == "sales_log")
    assert v.select("source_file", "source_row", "rule").rows() == [
        ("b.csv", 3, "duplicate_key"), ("sales_log.csv", 1, "unknown_sku"), ("sales_log.csv", 5, "duplicate_line")]
    details = dict(zip(v.get_column("rule"), v.get_column("detail"), strict=True))
    assert details["duplicate_key"] == "key (F, 2) already used by an earlier, different line"
    assert details["duplicate_line"] == "exact copy of an earlier sales_log line"


def test_fact_columns_are_typed_and_canonical():
    st = star([{"sku": "PP-WASH", "division": "Post_Processing"}, {"invoice_id": "I2", "sku": "SP-STD",
                                                                   "quantity": -1.0, "revenue": -30.0}])
    f = st.fact_transactions
    assert f.schema["invoice_date"] == pl.Date
    assert f.get_column("division").to_list() == ["Post_Processing", "Success Plan"]
    assert f.get_column("is_return").to_list() == [False, True]
    report = check_contract(f, fact_transactions_schema(start_date=START, end_date=END, sku_map=SKU_MAP,
                                                        divisions=DIVS))
    assert report.passed, report.failures


def test_customer_rules():
    raw = pl.concat([customers(["C1", "C2"]), customers(["C1"]).with_columns(pl.lit(3, pl.Int64).alias("source_row")),
                     customers(["C2"]).with_columns(pl.lit(4, pl.Int64).alias("source_row"), pl.lit("Other").alias("customer_name")),
                     customers(["C3"]).with_columns(pl.lit(5, pl.Int64).alias("source_row"), pl.lit("2024-02-30").alias("first_seen_date")),
                     customers([None]).with_columns(pl.lit(6, pl.Int64).alias("source_row"))])
    st = star([{}], cust=raw)
    v = st.contract_violations.filter(pl.col("source_table") == "customers").select("source_row", "rule").rows()
    assert v == [(3, "duplicate_line"), (4, "duplicate_key"), (5, "unparseable_date"), (6, "missing_value")]
    assert st.dim_customer.get_column("customer_id").to_list() == ["C1", "C2"]
    assert st.dim_customer.get_column("customer_name").to_list() == ["Co C1", "Co C2"]  # first copy kept
    assert check_contract(st.dim_customer, dim_customer_schema()).passed


def test_violation_summary_lists_every_rule():
    st = star([{}, {"sku": "NOPE"}, {"sku": "NOPE", "invoice_id": "X"}])
    summary = violation_summary(st.contract_violations)
    assert set(summary["sales_log"]) == {r for r, _ in SALES_RULES}
    assert summary["sales_log"]["unknown_sku"] == 2 and summary["sales_log"]["duplicate_line"] == 0
    assert check_contract(st.contract_violations, contract_violations_schema()).passed


def test_fact_events_rollup_values():
    rows = [
        {"invoice_id": "I1", "line_no": 1, "sku": "SWX-STD", "revenue": 100.0, "gross_profit": 40.0},
        {"invoice_id": "I1", "line_no": 2, "sku": "SP-STD", "revenue": 30.0, "gross_profit": None},
        {"invoice_id": "I2", "line_no": 1, "sku": "SP-STD", "quantity": -1.0, "revenue": -30.0, "gross_profit": -5.0,
         "invoice_date": "2024-06-01"},
    ]
    ev = build_fact_events(star(rows).fact_transactions, DIVS)
    assert ev.select("invoice_id", "n_lines", "revenue", "gross_profit", "has_return", "n_divisions").rows() == [
        ("I1", 2, 130.0, 40.0, False, 2), ("I2", 1, -30.0, -5.0, True, 1)]
    assert ev.get_column("revenue__success_plan").to_list() == [30.0, -30.0]
    assert ev.get_column("has__success_plan").to_list() == [True, False]
    assert ev.get_column("has__post_processing").to_list() == [False, False]
    assert check_contract(ev, fact_events_schema(start_date=START, end_date=END, divisions=DIVS)).passed


def test_fact_events_division_sums_are_the_filtered_sums_bit_for_bit():
    """Each division's revenue per invoice is the sum of that division's lines in line order: the same bits as a
    filtered sum per invoice (the definition), on many invoices with mixed divisions, returns and no-division ones."""
    import numpy as np

    from gosales_assets.settings import division_slug

    rng = np.random.default_rng(11)
    n = 20_000
    fact = pl.DataFrame({
        "invoice_id": [f"I{i:05d}" for i in rng.integers(0, 4_000, n)],
        "customer_id": [f"C{i}" for i in rng.integers(0, 500, n)],
        "invoice_date": [START + dt.timedelta(days=int(d)) for d in rng.integers(0, 900, n)],
        "division": [DIVS[i] for i in rng.integers(0, len(DIVS), n)],
        "revenue": np.round(rng.normal(300.0, 900.0, n), 2) * rng.choice([1e-3, 1.0, 1e3], n),
        "gross_profit": rng.normal(50.0, 80.0, n),
        "is_return": rng.random(n) < 0.05,
    })
    events = build_fact_events(fact, DIVS)
    expected = fact.group_by("invoice_id").agg(
        *[pl.col("revenue").filter(pl.col("division") == d).sum().alias(f"revenue__{division_slug(d)}")
          for d in DIVS])
    got = events.select("invoice_id", *[f"revenue__{division_slug(d)}" for d in DIVS])
    assert got.sort("invoice_id").equals(expected.sort("invoice_id"))
    for d in DIVS:
        s = division_slug(d)
        assert events.get_column(f"has__{s}").to_list() == (events.get_column(f"revenue__{s}") > 0).to_list()
    assert events.columns[:8] == ["invoice_id", "customer_id", "invoice_date", "n_lines", "revenue", "gross_profit",
                                  "has_return", "n_divisions"]


# --- the contract checks fail on each kind of defect ---------------------------------------------------------

def _clean_fact() -> pl.DataFrame:
    return star([{"invoice_id": "I1"}, {"invoice_id": "I2", "sku": "PP-WASH"}]).fact_transactions


@pytest.mark.parametrize(
    "corrupt, column, check",
    [
        (lambda f: pl.concat([f, f.head(1)]), None, "multiple_fields_uniqueness"),
        (lambda f: f.with_columns(pl.lit(dt.date(2027, 1, 1)).alias("invoice_date")), "invoice_date", "in_range"),
        (lambda f: f.with_columns(pl.lit("post_processing").alias("division")), "division", "isin"),
        (lambda f: f.with_columns(pl.lit(None, pl.String).alias("customer_id")), "customer_id", "not_nullable"),
        (lambda f: f.with_columns(pl.lit("X").alias("sku")), "sku", "isin"),
        (lambda f: f.with_columns(pl.col("revenue").cast(pl.String)), "revenue", "dtype"),
        (lambda f: f.drop("is_return"), "is_return", "column_in_dataframe"),
    ],
)
def test_fact_contract_fails_on_each_defect(corrupt, column, check):
    schema = fact_transactions_schema(start_date=START, end_date=END, sku_map=SKU_MAP, divisions=DIVS)
    assert check_contract(_clean_fact(), schema).passed
    report = check_contract(corrupt(_clean_fact()), schema)
    assert not report.passed
    assert any(f["column"] == column and f["check"].startswith(check) for f in report.failures), report.failures
    assert "contract violated" in report.summary()


def test_referential_integrity_finds_orphans():
    fact = _clean_fact()
    dim = star([{}]).dim_customer.filter(pl.col("customer_id") == "C2")
    assert missing_references(fact, dim, "customer_id").height == 2
    assert missing_references(fact, star([{}]).dim_customer, "customer_id").height == 0
