"""Raw-file ingestion: typed reads, and a clear error for every structural problem."""

from pathlib import Path

import polars as pl
import pytest

from gosales_assets.core.ingest import RawDataError, read_raw_table

SALES_HEADER = "invoice_id,line_no,invoice_date,customer_id,sku,quantity,revenue,gross_profit,rep_id"


def _csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_csv_is_typed_and_rows_are_numbered(tmp_path):
    _csv(tmp_path / "sales_log.csv", SALES_HEADER + "\nI1,1,2024-01-31,C1,SWX-STD,2,100.5,,R1\nI1,2,bad,C1,SWX-PRO, -1 ,-3,1,\n")
    df = read_raw_table(tmp_path, "sales_log")
    assert df.columns[:2] == ["source_file", "source_row"]
    assert df.get_column("source_row").to_list() == [1, 2]
    assert df.get_column("source_file").to_list() == ["sales_log.csv", "sales_log.csv"]
    assert df.schema["line_no"] == pl.Int64 and df.schema["revenue"] == pl.Float64
    assert df.get_column("quantity").to_list() == [2.0, -1.0]
    assert df.get_column("invoice_date").to_list() == ["2024-01-31", "bad"]  # kept as text for row rules
    assert df.get_column("gross_profit").to_list() == [None, 1.0]
    assert df.get_column("rep_id").to_list() == ["R1", None]
    assert df.get_column("division").to_list() == [None, None]  # optional column absent -> null


def test_parquet_dates_and_integer_ids_are_accepted(tmp_path):
    import datetime as dt

    pl.DataFrame({
        "invoice_id": [1], "line_no": [1], "invoice_date": [dt.date(2024, 3, 1)], "customer_id": [7],
        "sku": ["SWX-STD"], "quantity": [1], "revenue": [10], "gross_profit": [None],
    }).write_parquet(tmp_path / "sales_log.parquet")
    df = read_raw_table(tmp_path, "sales_log")
    assert df.row(0, named=True) == {
        "source_file": "sales_log.parquet", "source_row": 1, "invoice_id": "1", "line_no": 1,
        "invoice_date": "2024-03-01", "customer_id": "7", "sku": "SWX-STD", "quantity": 1.0, "revenue": 10.0,
        "gross_profit": None, "rep_id": None, "division": None,
    }


def test_folder_of_parts_is_read_in_name_order(tmp_path):
    _csv(tmp_path / "sales_log" / "b.csv", SALES_HEADER + "\nI2,1,2024-01-31,C1,SWX-STD,1,1,1,\n")
    _csv(tmp_path / "sales_log" / "a.csv", SALES_HEADER + "\nI1,1,2024-01-31,C1,SWX-STD,1,1,1,\n")
    df = read_raw_table(tmp_path, "sales_log")
    assert df.get_column("source_file").to_list() == ["sales_log/a.csv", "sales_log/b.csv"]


def test_missing_file_names_the_folder_and_expected_names(tmp_path):
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "customers")
    assert str(tmp_path) in str(err.value) and "customers.parquet, customers.csv" in str(err.value)


def test_missing_landing_folder(tmp_path):
    with pytest.raises(RawDataError, match="landing folder .*nope does not exist"):
        read_raw_table(tmp_path / "nope", "sales_log")


def test_missing_column_names_file_and_column(tmp_path):
    f = _csv(tmp_path / "sales_log.csv", "invoice_id,line_no,invoice_date,customer_id,sku,quantity,gross_profit\n"
                                         "I1,1,2024-01-31,C1,SWX-STD,1,1\n")
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    assert str(f) in str(err.value) and "['revenue']" in str(err.value)


def test_wrong_type_in_csv_names_file_column_rows_and_example(tmp_path):
    rows = "\n".join(f"I{i},1,2024-01-31,C1,SWX-STD,1,{'abc' if i in (2, 4) else 5},1," for i in range(1, 6))
    f = _csv(tmp_path / "sales_log.csv", SALES_HEADER + "\n" + rows + "\n")
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    msg = str(err.value)
    assert str(f) in msg and "column 'revenue'" in msg and "2 value(s)" in msg
    assert "data rows 2, 4" in msg and "'abc'" in msg


def test_non_integer_line_no_is_a_type_error(tmp_path):
    _csv(tmp_path / "sales_log.csv", SALES_HEADER + "\nI1,1.5,2024-01-31,C1,SWX-STD,1,1,1,\n")
    with pytest.raises(RawDataError, match="column 'line_no' must hold whole numbers"):
        read_raw_table(tmp_path, "sales_log")


def test_wrong_type_in_parquet(tmp_path):
    f = tmp_path / "sales_log.parquet"
    pl.DataFrame({
        "invoice_id": ["I1"], "line_no": [1], "invoice_date": ["2024-01-01"], "customer_id": ["C1"],
        "sku": ["SWX-STD"], "quantity": [1.0], "revenue": ["12"], "gross_profit": [1.0],
    }).write_parquet(f)
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    assert str(f) in str(err.value) and "column 'revenue' has type String, expected number" in str(err.value)


@pytest.mark.parametrize("content, words", [("", "file is empty"), (SALES_HEADER + "\n", "no data rows")])
def test_empty_files(tmp_path, content, words):
    f = _csv(tmp_path / "sales_log.csv", content)
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "sales_log")
    assert str(f) in str(err.value) and words in str(err.value)


def test_two_sources_for_one_table_is_ambiguous(tmp_path):
    _csv(tmp_path / "customers.csv", "x\n1\n")
    _csv(tmp_path / "customers.parquet", "x")
    with pytest.raises(RawDataError, match="more than one source"):
        read_raw_table(tmp_path, "customers")


def test_corrupt_parquet_names_the_file(tmp_path):
    f = _csv(tmp_path / "customers.parquet", "this is not parquet")
    with pytest.raises(RawDataError) as err:
        read_raw_table(tmp_path, "customers")
    assert str(f) in str(err.value) and "cannot be read" in str(err.value)
