"""Issue 16 ("nothing lost, nothing silently wrong"): hostile and broken inputs, each built here, each ending in a
clear error (file, line, column) or a quarantine rule with a count and a reason. CSV and Parquet follow one rule.

Case numbers are the issue's; docs/DATA_CONTRACT.md ("Odd inputs") lists the same cases for users.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from gosales_assets.core.checksum import from_cents, to_cents
from gosales_assets.core.contracts import (
    check_contract,
    contract_violations_schema,
    events_reconciliation,
    fact_transactions_schema,
    reconciliation,
)
from gosales_assets.core.features import build_customer_features
from gosales_assets.core.ingest import RawDataError, read_raw_table, read_raw_table_report
from gosales_assets.core.reports import md_cell, top_accounts_markdown
from gosales_assets.core.star import MAX_LINE_AMOUNT, build_fact_events, build_star, violation_summary
from gosales_assets.settings import DEFAULT_CONFIG_PATH, ConfigError, FeatureSettings, load_settings
from gosales_assets_tests.conftest import check_results
from gosales_assets_tests.test_star import DIVS, END, SKU_MAP, START  # the same small world as the star tests


SALES_COLS = ["invoice_id", "line_no", "invoice_date", "customer_id", "sku", "quantity", "revenue", "gross_profit",
              "rep_id", "division"]
CUSTOMER_COLS = ["customer_id", "customer_name", "industry", "sub_industry", "region", "territory", "employee_band",
                 "first_seen_date"]
SALES_SCHEMA = {c: pl.String for c in SALES_COLS} | {"line_no": pl.Int64, "quantity": pl.Float64,
                                                      "revenue": pl.Float64, "gross_profit": pl.Float64}
CUSTOMERS_CSV = "\n".join([",".join(CUSTOMER_COLS), "C1,Alpha Tooling,,,West,W1,,",
                           "C2,Beta Devices,,,East,E1,,"]) + "\n"


def line(invoice="I1", no=1, date="2024-05-10", customer="C1", sku="SWX-STD", qty=1.0, revenue=100.0, gp=40.0,
         rep="R1", division=None) -> dict:
    return dict(zip(SALES_COLS, [invoice, no, date, customer, sku, qty, revenue, gp, rep, division], strict=True))


def sales_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SALES_SCHEMA)


def write_sales(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df = sales_frame(rows)
    if path.suffix.lower() == ".csv":
        df.write_csv(path)
    else:
        df.write_parquet(path)
    return path


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def star_of(landing: Path):
    sales, customers = read_raw_table(landing, "sales_log"), read_raw_table(landing, "customers")
    return sales, build_star(sales, customers, sku_map=SKU_MAP, start_date=START, end_date=END, landing=landing)


def rules(star, table="sales_log") -> list[tuple[int, str]]:
    v = star.contract_violations.filter(pl.col("source_table") == table)
    return v.select("source_row", "rule").rows()


# ---- case 2: every file of a table folder is read, whatever the extension's case ------------------------------------
def test_parts_with_upper_case_extension_are_all_read_and_reconciled(tmp_path):
    write_sales(tmp_path / "sales_log" / "part1.parquet", [line("I1"), line("I2")])
    write_sales(tmp_path / "sales_log" / "part2.PARQUET", [line("I3"), line("I4", customer="C404")])
    write_text(tmp_path / "customers.CSV", CUSTOMERS_CSV)  # a single file with an upper-case extension too

    sales, report = read_raw_table_report(tmp_path, "sales_log")
    assert report.rows_by_file == {"sales_log/part1.parquet": 2, "sales_log/part2.PARQUET": 2}
    assert sales.height == report.rows == 4
    _, star = star_of(tmp_path)
    rec = reconciliation(sales.height, star.fact_transactions.height, star.contract_violations.height)
    assert rec == {"raw_rows": 4, "kept_rows": 3, "rejected_rows": 1, "unaccounted_rows": 0, "reconciles": True}
    assert star.contract_violations.select("source_file", "rule").rows() == [("sales_log/part2.PARQUET",
                                                                             "unknown_customer")]


def test_a_file_the_engine_cannot_read_in_a_table_folder_is_an_error(tmp_path):
    write_sales(tmp_path / "sales_log" / "part1.csv", [line("I1")])
    write_text(tmp_path / "sales_log" / "part2.csv.gz", "not read")
    (tmp_path / "sales_log" / "year=2024").mkdir()
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    msg = str(err.value)
    assert str(tmp_path / "sales_log") in msg and "2 entries" in msg
    assert "['part2.csv.gz', 'year=2024/']" in msg and "no rows are left out" in msg


def test_hidden_files_are_skipped_and_named(tmp_path):
    write_sales(tmp_path / "sales_log" / "part1.csv", [line("I1")])
    write_text(tmp_path / "sales_log" / "_SUCCESS", "")
    write_text(tmp_path / "sales_log" / ".DS_Store", "x")
    df, report = read_raw_table_report(tmp_path, "sales_log")
    assert df.height == 1
    assert any("skipped hidden file(s)" in n and "['.DS_Store', '_SUCCESS']" in n for n in report.notes)


def test_a_misnamed_table_file_is_named_in_the_error(tmp_path):
    write_sales(tmp_path / "Sales_Log.csv", [line("I1")])
    with pytest.raises(RawDataError, match=r"found \['Sales_Log.csv'\], but the name must be exactly sales_log.csv"):
        read_raw_table(tmp_path, "sales_log")


# ---- case 3: blank keys are quarantined the same way from Parquet and CSV -------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_blank_keys_are_missing_values_in_both_formats(tmp_path, fmt):
    write_sales(tmp_path / f"sales_log.{fmt}", [
        line("I1"), line(""), line("I2", customer=""), line("I3", customer="  "), line("  ", customer="C2"),
        line("I4", sku=" SWX-STD "),  # padded text is trimmed in both formats, so this line is clean
    ])
    cust = pl.DataFrame({"customer_id": ["C1", "C2", "", "   "], "customer_name": ["Alpha", "Beta", "Blank", "Spaces"],
                         **{c: [None] * 4 for c in CUSTOMER_COLS[2:]}}, schema={c: pl.String for c in CUSTOMER_COLS})
    if fmt == "csv":
        cust.write_csv(tmp_path / "customers.csv")
    else:
        cust.write_parquet(tmp_path / "customers.parquet")

    sales, star = star_of(tmp_path)
    assert sales.get_column("invoice_id").to_list() == ["I1", None, "I2", "I3", None, "I4"]
    assert rules(star) == [(2, "missing_value"), (3, "missing_value"), (4, "missing_value"), (5, "missing_value")]
    assert rules(star, "customers") == [(3, "missing_value"), (4, "missing_value")]
    assert star.fact_transactions.get_column("invoice_id").to_list() == ["I1", "I4"]
    assert star.dim_customer.get_column("customer_id").to_list() == ["C1", "C2"]
    detail = star.contract_violations.filter((pl.col("source_table") == "sales_log") & (pl.col("source_row") == 3))
    detail = detail.item(0, "detail")
    assert detail == "empty or non-finite required value in customer_id"


def test_csv_and_parquet_give_the_same_typed_rows(tmp_path):
    rows = [line("I1", customer=" C1 ", rep=""), line("", customer="  ", gp=None), line("I2", date=" 2024-05-10 ")]
    write_sales(tmp_path / "a" / "sales_log.csv", rows)
    write_sales(tmp_path / "b" / "sales_log.parquet", rows)
    from_csv = read_raw_table(tmp_path / "a", "sales_log").drop("source_file")
    from_parquet = read_raw_table(tmp_path / "b", "sales_log").drop("source_file")
    assert from_csv.equals(from_parquet)
    assert from_csv.get_column("customer_id").to_list() == ["C1", None, "C1"]


# ---- case 4: one invoice, two customers or two dates -------------------------------------------------------------
def test_an_invoice_with_two_customers_or_dates_is_quarantined_whole(tmp_path):
    write_sales(tmp_path / "sales_log.csv", [
        line("I1", 1, customer="C1"), line("I1", 2, customer="C2"),                      # two customers
        line("I2", 1, date="2024-05-10"), line("I2", 2, date="2024-06-01"), line("I2", 3),  # two dates
        line("I3", 1), line("I3", 2),                                                  # clean
        line("I4", 1), line("I4", 2, customer="C404"),  # the stray line is already an unknown_customer: no conflict
    ])
    write_text(tmp_path / "customers.csv", CUSTOMERS_CSV)
    sales, star = star_of(tmp_path)
    assert rules(star) == [(1, "invoice_conflict"), (2, "invoice_conflict"), (3, "invoice_conflict"),
                           (4, "invoice_conflict"), (5, "invoice_conflict"), (9, "unknown_customer")]
    assert violation_summary(star.contract_violations)["sales_log"]["invoice_conflict"] == 5
    details = star.contract_violations.get_column("detail").to_list()
    assert details[0] == ("invoice 'I1' has lines of 2 customer(s) [C1, C2] and 1 date(s) [2024-05-10]; one invoice "
                          "must be one customer on one day, so all its lines are quarantined")
    assert "2 date(s) [2024-05-10, 2024-06-01]" in details[2]
    fact = star.fact_transactions
    assert fact.get_column("invoice_id").unique().sort().to_list() == ["I3", "I4"]
    assert fact.height + star.contract_violations.height == sales.height
    events = build_fact_events(fact, DIVS)
    assert events.select("invoice_id", "customer_id", "n_lines").rows() == [("I3", "C1", 2), ("I4", "C1", 1)]
    assert events_reconciliation(fact, events)["passed"]
    assert check_contract(star.contract_violations, contract_violations_schema()).passed


def test_the_checks_catch_a_reattributed_invoice_if_one_ever_reaches_the_facts(tmp_path):
    # Bypass the star rule (as a future bug would) and check that both the fact contract and the fact_events
    # reconciliation fail, naming the lines.
    write_sales(tmp_path / "sales_log.csv", [line("I1", 1, customer="C2", revenue=70.0),
                                             line("I1x", 1, customer="C1", date="2024-05-12", revenue=30.0)])
    write_text(tmp_path / "customers.csv", CUSTOMERS_CSV)
    _, star = star_of(tmp_path)
    fact = star.fact_transactions.with_columns(pl.lit("I1").alias("invoice_id"),
                                               pl.Series("line_no", [1, 2], dtype=pl.Int64))
    schema = fact_transactions_schema(start_date=START, end_date=END, sku_map=SKU_MAP, divisions=DIVS)
    report = check_contract(fact, schema)
    assert not report.passed
    assert [(f["check"], f["failed_rows"]) for f in report.failures] == [("one_customer_and_date_per_invoice", 2)]

    events = build_fact_events(fact, DIVS)  # one event of min(customer) at min(date): C1 on 2024-05-10
    rec = events_reconciliation(fact, events)
    assert not rec["passed"]
    assert rec["metadata"]["misattributed_lines"] == 2  # C2's line moved to C1, C1's line back-dated
    assert rec["metadata"]["fact_lines"] == rec["metadata"]["event_lines"] == 2  # the old check saw nothing wrong
    assert "2 fact line(s) not under their own customer and date" in rec["description"]


# ---- case 5: money overflow ----------------------------------------------------------------------------------
def test_implausible_amounts_are_quarantined(tmp_path):
    write_sales(tmp_path / "sales_log.parquet", [
        line("I1", revenue=1e15), line("I2", revenue=1e300), line("I3", qty=-1, revenue=-2e13, gp=-1),
        line("I4", gp=5e12), line("I5", revenue=MAX_LINE_AMOUNT, gp=-MAX_LINE_AMOUNT),  # at the bound: kept
        line("I6", revenue=510.7),
    ])
    write_text(tmp_path / "customers.csv", CUSTOMERS_CSV)
    _, star = star_of(tmp_path)
    assert rules(star) == [(1, "implausible_amount"), (2, "implausible_amount"), (3, "implausible_amount"),
                           (4, "implausible_amount")]
    assert violation_summary(star.contract_violations)["sales_log"]["implausible_amount"] == 4
    assert star.contract_violations.item(1, "detail") == (
        "revenue 1e+300 / gross_profit 40.0: above the per-line limit of 1e12 currency units")
    assert star.fact_transactions.get_column("invoice_id").to_list() == ["I5", "I6"]


def test_cents_sums_cannot_wrap():
    # Three lines of 4e16 wrapped the Int64 cents sum to a negative number; Int128 cents are exact.
    df = pl.DataFrame({"revenue": [4e16, 4e16, 4e16]})
    total = df.select(to_cents(pl.col("revenue")).sum().alias("c"))
    assert total.item() == 12 * 10**18 and total.item() > 0
    assert df.select(from_cents(to_cents(pl.col("revenue")).sum())).item() == 1.2e17


def test_features_of_a_customer_at_the_money_bound_are_exact_and_positive():
    # 100,001 lines at the per-line bound: 1.00001e17 units = 1.00001e19 cents, beyond Int64; the 12-month
    # revenue sum, the trajectory and the shares stay exact and positive.
    n = 100_001
    fact = pl.DataFrame({
        "invoice_id": [f"I{i}" for i in range(n)], "line_no": [1] * n, "invoice_date": [dt.date(2024, 5, 10)] * n,
        "customer_id": ["C1"] * n, "sku": ["SWX-STD"] * n, "division": ["Solidworks"] * n, "quantity": [1.0] * n,
        "revenue": [MAX_LINE_AMOUNT] * n, "gross_profit": [MAX_LINE_AMOUNT] * n, "rep_id": ["R1"] * n,
        "is_return": [False] * n,
    })
    dim = pl.DataFrame({"customer_id": ["C1"], "customer_name": ["Alpha"], "industry": [None], "sub_industry": [None],
                        "region": [None], "territory": [None], "employee_band": [None],
                        "first_seen_date": [None]}, schema_overrides={"first_seen_date": pl.Date})
    features = build_customer_features(fact, dim, dt.date(2024, 6, 30), DIVS, FeatureSettings())
    row = features.row(0, named=True)
    assert row["rfm__all__revenue_sum__12m"] == n * MAX_LINE_AMOUNT
    assert row["rfm__solidworks__gp_sum__12m"] == n * MAX_LINE_AMOUNT
    assert row["traj__all__revenue_slope__12m"] > 0
    assert row["xdiv__solidworks__share__all"] == pytest.approx(1.0)


# ---- case 6: markdown / HTML injection in reports ---------------------------------------------------------------
def _unescaped_pipes(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row))


def test_top_accounts_markdown_escapes_hostile_names():
    names = ["Acme | Evil Co", "Line\n# Injected heading", "<img src=x onerror=alert(1)>", "[click](javascript:x)",
             "Plain Tooling"]
    accounts = pl.DataFrame({
        "account_rank": list(range(1, 6)), "customer_id": [f"C{i}" for i in range(1, 6)], "customer_name": names,
        "top_divisions": ["Post_Processing; Success Plan"] * 5, "best_p_icp": [0.5] * 5,
        "whitespace_gaps": [3] * 5, "best_reason": ["bought *PDM* | recently"] * 5,
    })
    md = top_accounts_markdown(accounts, dt.date(2024, 6, 30))
    lines = md.splitlines()
    rows = [ln for ln in lines if ln.startswith("| ") and ln[2].isdigit()]
    assert len(rows) == 5  # no row was split by a newline
    assert all(_unescaped_pipes(r) == 7 for r in rows)  # 6 cells: no cell split by a pipe
    assert [ln for ln in lines if ln.startswith("#")] == ["# Top cross-sell accounts — cutoff 2024-06-30"]
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "\\[click\\](javascript:x)" in md and "Acme \\| Evil Co" in md and "Line \\# Injected heading" in md
    assert "| Plain Tooling |" in md and "| Post_Processing; Success Plan |" in md


@pytest.mark.parametrize("value, cell", [
    ("a|b", "a\\|b"), ("a\r\nb", "a  b"), ("<b>&", "&lt;b&gt;&amp;"), ("x\\y", "x\\\\y"), (0.25, "0.25"),
    ("  padded\t", "padded"), ("sales_log", "sales_log"),
    ("_emphasis_ or __bold__", "\\_emphasis\\_ or \\_\\_bold\\_\\_"),
])
def test_md_cell(value, cell):
    assert md_cell(value) == cell


# ---- case 10: a CSV cut mid-row ----------------------------------------------------------------------------------
HEADER = ",".join(SALES_COLS)


def test_csv_cut_mid_row_is_refused_with_file_and_line(tmp_path):
    # The upload stopped inside a number: `...,1.0,510` for `...,1.0,510.7,5.11,R011`.
    f = write_text(tmp_path / "sales_log.csv", "\n".join([
        HEADER, "I1,1,2024-05-10,C1,SWX-STD,1.0,100.0,40.0,R011,", "I2,1,2024-05-11,C1,SWX-STD,1.0,510"]))
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    msg = str(err.value)
    assert str(f) in msg
    assert "1 row(s) with fewer fields than the header's 10: line 3 (7 fields)" in msg and "cut mid-row" in msg


def test_short_and_long_rows_in_the_middle_are_refused(tmp_path):
    rows = [HEADER, "I1,1,2024-05-10,C1,SWX-STD,1,100,40,R1,", "I2,1,2024-05-10,C1",
            "I3,1,2024-05-10,C1,SWX-STD,1,1,1,R1,"]
    write_text(tmp_path / "sales_log.csv", "\n".join(rows) + "\n")
    with pytest.raises(RawDataError, match=r"fewer fields than the header's 10: line 3 \(4 fields\)"):
        read_raw_table(tmp_path, "sales_log")
    rows[2] = "I2,1,2024-05-10,C1,SWX-STD,1,1 234,5,1,R1,"  # an unquoted comma in a value
    write_text(tmp_path / "sales_log.csv", "\n".join(rows) + "\n")
    with pytest.raises(RawDataError, match=r"more fields than the header's 10: line 3 \(11 fields\).*unquoted ','"):
        read_raw_table(tmp_path, "sales_log")


def test_csv_ending_inside_a_quoted_value_is_refused(tmp_path):
    write_text(tmp_path / "sales_log.csv", HEADER + '\nI1,1,2024-05-10,C1,SWX-STD,1,100,40,R1,"Solidwo')
    with pytest.raises(RawDataError, match="malformed CSV at line 2: the file ends inside a quoted value"):
        read_raw_table(tmp_path, "sales_log")


def test_quoted_commas_and_line_breaks_are_not_cut_rows(tmp_path):
    write_text(tmp_path / "customers.csv", ",".join(CUSTOMER_COLS) + '\nC1,"Alpha, Inc.",,,West,W1,,\n'
                                           'C2,"Beta\nDevices",,,East,E1,,\n')
    df = read_raw_table(tmp_path, "customers")
    assert df.get_column("customer_name").to_list() == ["Alpha, Inc.", "Beta\nDevices"]


def test_a_blank_line_is_a_quarantined_row_not_a_cut_file(tmp_path):
    write_text(tmp_path / "sales_log.csv", HEADER + "\nI1,1,2024-05-10,C1,SWX-STD,1,100,40,R1,\n\n")
    write_text(tmp_path / "customers.csv", CUSTOMERS_CSV)
    sales, star = star_of(tmp_path)
    assert sales.height == 2 and rules(star) == [(2, "missing_value")]


# ---- a quarantined or refused CSV row is named by the line a person finds it on --------------------------------------
def test_a_quarantined_csv_row_names_its_physical_line_after_blank_lines_and_multi_line_cells(tmp_path):
    write_text(tmp_path / "sales_log.csv", "\n".join([
        HEADER,                                                   # line 1
        "I1,1,2024-05-10,C1,SWX-STD,1,100,40,R1,",                # line 2, row 1
        "",                                                       # line 3, row 2: blank (missing_value)
        'I2,1,2024-05-10,C1,SWX-STD,1,100,40,"R1',                # lines 4-6, row 3: a rep cell of three lines
        "second line",
        'third line",',
        "",                                                       # line 7, row 4: blank
        'I3,1,2024-05-10,C1,SWX-STD,1,100,40,"R\r\nCRLF",',        # lines 8-9, row 5: a CRLF inside a quoted cell
        "I4,1,2024-05-10,C404,SWX-STD,1,100,40,R1,",              # line 10, row 6: the bad row (unknown_customer)
    ]) + "\n")
    write_text(tmp_path / "customers.csv", ",".join(CUSTOMER_COLS) + '\nC1,"Alpha\nTooling",,,West,W1,,\n'
               "C2,Beta,,,East,E1,,\nC1,Other name,,,West,W1,,\n")  # lines 2-3, 4, 5 (duplicate_key)
    sales, star = star_of(tmp_path)
    assert sales.height == 6
    v = star.contract_violations.select("source_table", "source_row", "source_line", "rule").rows()
    assert v == [("customers", 3, 5, "duplicate_key"), ("sales_log", 2, 3, "missing_value"),
                 ("sales_log", 4, 7, "missing_value"), ("sales_log", 6, 10, "unknown_customer")]
    assert check_contract(star.contract_violations, contract_violations_schema()).passed
    lines = (tmp_path / "sales_log.csv").read_text().split("\n")
    assert lines[10 - 1].startswith("I4,1,") and "C404" in lines[10 - 1]  # line 10 is the bad row, as named


def test_a_type_error_in_a_csv_names_the_physical_lines(tmp_path):
    rows = [HEADER, "I1,1,2024-05-10,C1,SWX-STD,1,100,40,R1,", 'I2,1,2024-05-10,C1,SWX-STD,1,100,40,"two\nlines",',
            "", "I3,1,2024-05-10,C1,SWX-STD,1,1 2 3,40,R1,", "I4,1,2024-05-10,C1,SWX-STD,1,x,40,R1,"]
    f = write_text(tmp_path / "sales_log.csv", "\n".join(rows) + "\n")
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    assert str(err.value) == (f"sales_log: {f}: column 'revenue' must hold numbers; 2 value(s) are not "
                              "(data rows 4, 5, on lines 6, 7 of the file; e.g. '1 2 3')")


def test_a_row_is_given_no_line_when_its_file_changed_after_reading(tmp_path):
    rows = [line("I1"), line("I2", customer="C404"), line("I3", customer="C405")]
    write_sales(tmp_path / "sales_log" / "a.csv", rows)
    write_sales(tmp_path / "sales_log" / "b.parquet", [line("I4", customer="C406")])
    write_text(tmp_path / "customers.csv", CUSTOMERS_CSV)
    sales, customers = read_raw_table(tmp_path, "sales_log"), read_raw_table(tmp_path, "customers")
    write_sales(tmp_path / "sales_log" / "a.csv", [rows[0], rows[2], rows[1]])  # re-exported in another order
    star = build_star(sales, customers, sku_map=SKU_MAP, start_date=START, end_date=END, landing=tmp_path)
    # Row 2 (C404) is on line 4 now and line 3 holds another row: no line rather than a wrong one. Parquet rows
    # have no lines.
    assert star.contract_violations.select("source_file", "source_row", "source_line").rows() == [
        ("sales_log/a.csv", 2, None), ("sales_log/a.csv", 3, None), ("sales_log/b.parquet", 1, None)]
    (tmp_path / "sales_log" / "a.csv").unlink()  # gone: no lines, no error
    star = build_star(sales, customers, sku_map=SKU_MAP, start_date=START, end_date=END, landing=tmp_path)
    assert star.contract_violations.get_column("source_line").null_count() == 3


def test_a_csv_without_a_final_line_break_is_noted(tmp_path):
    write_text(tmp_path / "sales_log.csv", HEADER + "\nI1,1,2024-05-10,C1,SWX-STD,1,100,40,R1,")
    _, report = read_raw_table_report(tmp_path, "sales_log")
    assert any("does not end with a line break" in n and "(line 2)" in n for n in report.notes)


# ---- case 12: column typos, odd division names, separators and encodings ------------------------------------------
def test_a_case_or_separator_typo_in_a_column_name_is_an_error(tmp_path):
    f = write_text(tmp_path / "sales_log.csv",
                   HEADER.replace("rep_id", "RepID") + "\nI1,1,2024-05-10,C1,SWX-STD,1,100,40,R1,\n")
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    assert str(f) in str(err.value) and "'RepID' for 'rep_id'" in str(err.value)

    write_text(tmp_path / "sales_log.csv",
               HEADER.replace("customer_id", "Customer ID") + "\nI1,1,2024-05-10,C1,SWX-STD,1,100,40,R1,\n")
    with pytest.raises(RawDataError, match="'Customer ID' for 'customer_id'"):
        read_raw_table(tmp_path, "sales_log")


def test_absent_optional_and_ignored_unknown_columns_are_named(tmp_path):
    header = HEADER.replace(",rep_id,division", ",notes,region")
    f = write_text(tmp_path / "sales_log.csv", header + "\nI1,1,2024-05-10,C1,SWX-STD,1,100,40,hello,West\n")
    df, report = read_raw_table_report(tmp_path, "sales_log")
    assert df.get_column("rep_id").to_list() == [None]
    assert report.notes == (
        f"sales_log: {f}: optional column(s) ['rep_id', 'division'] not found; read as empty",
        f"sales_log: {f}: column(s) ['notes', 'region'] are not in the sales_log contract and were ignored",
    )


def test_the_demo_layout_has_no_notes(tmp_path):
    write_sales(tmp_path / "sales_log.parquet", [line("I1", division="Solidworks")])
    _, report = read_raw_table_report(tmp_path, "sales_log")
    assert report.notes == ()


def test_semicolon_separated_csv_gets_a_separator_hint(tmp_path):
    f = write_text(tmp_path / "sales_log.csv",
                   HEADER.replace(",", ";") + "\nI1;1;2024-05-10;C1;SWX-STD;1;100,5;40;R1;\n")
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    msg = str(err.value)
    assert str(f) in msg and "looks ';'-separated" in msg and "export the file with ',' as the separator" in msg


def test_tab_separated_csv_gets_a_separator_hint(tmp_path):
    write_text(tmp_path / "customers.csv", "\t".join(CUSTOMER_COLS) + "\nC1\tAlpha\t\t\tWest\tW1\t\t\n")
    with pytest.raises(RawDataError, match="looks tab-separated"):
        read_raw_table(tmp_path, "customers")


def test_latin1_csv_gets_an_encoding_hint_with_the_line(tmp_path):
    f = write_text(tmp_path / "customers.csv", ",".join(CUSTOMER_COLS) + "\nC1,Alpha,,,West,W1,,\n"
                   "C2,Bêta Décolletage,,,East,E1,,\n", encoding="latin-1")
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "customers")
    msg = str(err.value)
    assert str(f) in msg and "line 3 is not valid UTF-8 (byte 0xea at position 5)" in msg
    assert "Latin-1 / Windows-1252" in msg and "'C2,Bêta Décolletage,,,East,E1,,'" in msg and "as UTF-8" in msg


def _config(tmp_path: Path, divisions: list[str]) -> Path:
    doc = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    old = doc["divisions"]
    renamed = dict(zip(old, divisions + old[len(divisions):], strict=True))
    doc["divisions"] = [renamed[d] for d in old]
    doc["sku_map"] = {k: renamed[v] for k, v in doc["sku_map"].items()}
    for section in (doc["labels"].get("per_division_window_months") or {}, doc["models"]["gates"].get("per_division")
                    or {}):
        for k in list(section):
            section[renamed[k]] = section.pop(k)
    p = tmp_path / "divisions.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return p


@pytest.mark.parametrize("name, words", [
    ("Solid|works", "contains '|', which a Dagster partition key cannot hold"),
    ("Solid,works", "contains ','"),
    ("Solidworks [2024]", "contains '[', ']'"),
    ("Solid\nworks", "contains non-printable character(s) '\\n' (a line break"),
    ("Solid\tworks", "contains non-printable character(s) '\\t'"),
    ("Solidworks...", "contains '...'"),
])
def test_division_names_that_cannot_be_partition_keys_are_refused(tmp_path, name, words):
    cfg = _config(tmp_path, [name])
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, home=tmp_path)
    msg = str(err.value)
    assert "  - divisions:" in msg and f"division name {name!r}" in msg and words in msg


def test_division_names_with_allowed_punctuation_load(tmp_path):
    s = load_settings(_config(tmp_path, ["R&D / Lab's-Kit (EMEA)"]), home=tmp_path)
    assert s.divisions[0] == "R&D / Lab's-Kit (EMEA)"


# ---- through Dagster: the star assets on a folder of parts with a conflicting invoice ------------------------------
def test_star_assets_read_every_part_and_quarantine_the_conflict(make_project):
    project = make_project({"contracts": {"max_violation_rate": 0.75}})
    landing = project.settings.landing_dir
    write_sales(landing / "sales_log" / "part1.parquet", [
        line("INV-1", 1, date="2024-01-05", sku="SWX-STD", revenue=10000.0, division="Solidworks"),
        line("INV-1", 2, date="2024-01-05", sku="PP-WASH", customer="C2", revenue=800.0, division="Post_Processing"),
    ])
    write_sales(landing / "sales_log" / "part2.PARQUET", [
        line("INV-2", 1, date="2024-03-29", sku="PP-WASH", revenue=8000.0, division="Post_Processing"),
        line("INV-3", 1, date="2024-04-02", sku="SP-STD", customer="C2", revenue=1500.0, division="Success Plan"),
        line("", 1, date="2024-04-02", sku="SP-STD", customer="C2", revenue=1.0, division="Success Plan"),
    ])
    write_text(landing / "customers.csv", CUSTOMERS_CSV)
    result = project.materialize()
    assert result.success
    checks = check_results(result)
    assert all(ev.passed for ev in checks.values()), {k: ev.description for k, ev in checks.items()}
    assert "5 sales_log rows = 2 facts + 3 violations (0 unaccounted)" in \
        checks[("fact_transactions", "reconciles_with_sales_log")].description
    viol = project.table("contract_violations")
    assert viol.select("source_file", "source_row", "rule").sort("source_file", "source_row").rows() == [
        ("sales_log/part1.parquet", 1, "invoice_conflict"), ("sales_log/part1.parquet", 2, "invoice_conflict"),
        ("sales_log/part2.PARQUET", 3, "missing_value")]
    assert project.table("fact_events").select("invoice_id", "customer_id").sort("invoice_id").rows() == [
        ("INV-2", "C1"), ("INV-3", "C2")]
