"""Read the two raw input tables (`sales_log`, `customers`) from a landing folder, typed per the contract.

Structural problems — a missing file, a missing column, a column of the wrong type, an empty file — raise
`RawDataError` naming the file and the column (and rows, where rows are at fault). Nothing is returned half
read, so nothing is half-written to the warehouse. Row-level problems that the contract quarantines
(unparseable dates, unknown SKUs, …) are *not* raised here: `invoice_date` and `first_seen_date` are kept as
ISO strings so `core.star` can reject such rows one by one, with the original value preserved.

A table is either one file `<landing>/<name>.parquet|.csv` or a folder `<landing>/<name>/` of such files
(read in sorted name order). Every row gets `source_file` (file name relative to the landing folder) and
`source_row` (1-based position among the file's data rows; for CSV the line number is `source_row + 1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

Kind = Literal["str", "int", "float", "date"]


@dataclass(frozen=True)
class RawColumn:
    name: str
    kind: Kind
    required: bool = True  # the column must be present (values may still be null unless a rule says not)


RAW_TABLES: dict[str, tuple[RawColumn, ...]] = {
    "sales_log": (
        RawColumn("invoice_id", "str"),
        RawColumn("line_no", "int"),
        RawColumn("invoice_date", "date"),
        RawColumn("customer_id", "str"),
        RawColumn("sku", "str"),
        RawColumn("quantity", "float"),
        RawColumn("revenue", "float"),
        RawColumn("gross_profit", "float"),
        RawColumn("rep_id", "str", required=False),
        # The source system's own division label (optional). When present it must equal the canonical
        # division of the SKU exactly; a mismatch (e.g. other casing) is a contract violation.
        RawColumn("division", "str", required=False),
    ),
    "customers": (
        RawColumn("customer_id", "str"),
        RawColumn("customer_name", "str"),
        RawColumn("industry", "str"),
        RawColumn("sub_industry", "str"),
        RawColumn("region", "str"),
        RawColumn("territory", "str"),
        RawColumn("employee_band", "str"),
        RawColumn("first_seen_date", "date"),
    ),
}

_SUFFIXES = (".parquet", ".csv")
_MAX_ROWS_LISTED = 5


class RawDataError(ValueError):
    """A raw input file cannot be read as the contract requires."""


def raw_schema(table: str) -> dict[str, pl.DataType]:
    """Polars schema of a typed raw table (as returned by `read_raw_table`)."""
    out: dict[str, pl.DataType] = {"source_file": pl.String(), "source_row": pl.Int64()}
    for col in RAW_TABLES[table]:
        out[col.name] = {"str": pl.String(), "int": pl.Int64(), "float": pl.Float64(), "date": pl.String()}[
            col.kind
        ]
    return out


def find_raw_files(landing: Path, table: str) -> list[Path]:
    """The files that make up `table` in the landing folder (error if none, or if ambiguous)."""
    if not landing.is_dir():
        raise RawDataError(f"{table}: landing folder {landing} does not exist")
    singles = [landing / f"{table}{s}" for s in _SUFFIXES if (landing / f"{table}{s}").is_file()]
    folder = landing / table
    parts = (
        sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _SUFFIXES) if folder.is_dir() else []
    )
    if len(singles) > 1 or (singles and parts):
        found = [str(p) for p in singles] + ([str(folder) + "/"] if parts else [])
        raise RawDataError(f"{table}: more than one source found in {landing}: {found}; keep exactly one")
    files = singles or parts
    if not files:
        raise RawDataError(
            f"{table}: no input file in {landing} (expected {table}.parquet, {table}.csv "
            f"or a folder {table}/ of such files)"
        )
    return files


def _row_list(rows: pl.Series) -> str:
    listed = ", ".join(str(r) for r in rows.head(_MAX_ROWS_LISTED).to_list())
    more = f" and {rows.len() - _MAX_ROWS_LISTED} more" if rows.len() > _MAX_ROWS_LISTED else ""
    return f"{listed}{more}"


def _cast_text_column(df: pl.DataFrame, col: RawColumn, where: str) -> pl.Expr:
    """Strictly cast a text column to its contract type; unparseable non-empty values are an error."""
    text = pl.col(col.name).str.strip_chars()
    text = pl.when(text == "").then(None).otherwise(text)
    if col.kind == "str":
        return text.alias(col.name)
    if col.kind == "date":
        return text.alias(col.name)  # validated row by row in core.star
    target = pl.Int64 if col.kind == "int" else pl.Float64
    cast = text.cast(target, strict=False)
    bad = df.with_row_index("_r", offset=1).filter(text.is_not_null() & cast.is_null())
    if bad.height:
        example = bad.get_column(col.name)[0]
        noun = "whole numbers" if col.kind == "int" else "numbers"
        raise RawDataError(
            f"{where}: column '{col.name}' must hold {noun}; {bad.height} value(s) are not "
            f"(data rows {_row_list(bad.get_column('_r'))}; e.g. {example!r})"
        )
    return cast.alias(col.name)


def _cast_typed_column(dtype: pl.DataType, col: RawColumn, where: str) -> pl.Expr:
    """Cast a column from a typed (Parquet) file; incompatible physical types are an error."""
    c = pl.col(col.name)
    if dtype == pl.Null:
        target = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "date": pl.String}[col.kind]
        return c.cast(target).alias(col.name)
    if col.kind == "str":
        if dtype.is_integer() or dtype in (pl.String, pl.Categorical, pl.Enum):
            return c.cast(pl.String).alias(col.name)
    elif col.kind == "int":
        if dtype.is_integer():
            return c.cast(pl.Int64).alias(col.name)
    elif col.kind == "float":
        if dtype.is_numeric():
            return c.cast(pl.Float64).alias(col.name)
    elif col.kind == "date":
        if dtype == pl.String:
            return c.alias(col.name)
        if dtype == pl.Date:
            return c.dt.strftime("%Y-%m-%d").alias(col.name)
        if dtype == pl.Datetime:
            return c.dt.date().dt.strftime("%Y-%m-%d").alias(col.name)
    expected = {"str": "text", "int": "integer", "float": "number", "date": "date or ISO text"}[col.kind]
    raise RawDataError(f"{where}: column '{col.name}' has type {dtype}, expected {expected}")


def _read_one(path: Path, table: str, landing: Path) -> pl.DataFrame:
    rel = path.relative_to(landing).as_posix()
    where = f"{table}: {path}"
    if path.stat().st_size == 0:
        raise RawDataError(f"{where}: file is empty")
    try:
        if path.suffix == ".csv":
            df = pl.read_csv(path, infer_schema=False, null_values=[""], raise_if_empty=True)
        else:
            df = pl.read_parquet(path)
    except pl.exceptions.NoDataError:
        raise RawDataError(f"{where}: file is empty") from None
    except Exception as err:  # corrupt file, bad encoding, …: say which file
        raise RawDataError(f"{where}: cannot be read ({type(err).__name__}: {err})") from None
    if df.height == 0:
        raise RawDataError(f"{where}: file has a header but no data rows")
    contract = RAW_TABLES[table]
    missing = [c.name for c in contract if c.required and c.name not in df.columns]
    if missing:
        raise RawDataError(
            f"{where}: missing required column(s) {missing}; found columns {df.columns}"
        )
    exprs = []
    for col in contract:
        if col.name not in df.columns:
            target = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "date": pl.String}[col.kind]
            exprs.append(pl.lit(None, dtype=target).alias(col.name))
        elif path.suffix == ".csv":
            exprs.append(_cast_text_column(df, col, where))
        else:
            exprs.append(_cast_typed_column(df.schema[col.name], col, where))
    return df.select(
        pl.lit(rel).alias("source_file"),
        pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("source_row"),
        *exprs,
    )


def read_raw_table(landing: Path, table: str) -> pl.DataFrame:
    """Read `table` from the landing folder, typed per the raw contract (see module docstring)."""
    if table not in RAW_TABLES:
        raise ValueError(f"unknown raw table {table!r}; expected one of {sorted(RAW_TABLES)}")
    landing = Path(landing)
    frames = [_read_one(p, table, landing) for p in find_raw_files(landing, table)]
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def parse_iso_date(expr: pl.Expr) -> pl.Expr:
    """ISO `YYYY-MM-DD` text → Date; anything else (including valid-looking but impossible dates) → null."""
    shaped = expr.str.contains(r"^\d{4}-\d{2}-\d{2}$")
    return pl.when(shaped).then(expr.str.strptime(pl.Date, "%Y-%m-%d", strict=False)).otherwise(None)



# Optional eligibility lists, in `<landing>/eligibility/`: an absent file means "no rule".
ELIGIBILITY_FILES = {
    "region_allow": ("region_allowlist.csv", ["region"]),
    "territory_allow": ("territory_allowlist.csv", ["territory"]),
    "do_not_contact": ("do_not_contact.csv", ["customer_id"]),
    "open_deals": ("open_deals.csv", ["customer_id"]),  # optional column `division` (empty = all divisions)
}


def read_eligibility(landing: Path) -> dict:
    """{rule: list of values, or a DataFrame for open_deals, or None when the file is absent}."""
    out: dict = {}
    folder = Path(landing) / "eligibility"
    for rule, (name, required) in ELIGIBILITY_FILES.items():
        path = folder / name
        if not path.is_file():
            out[rule] = None
            continue
        try:
            df = pl.read_csv(path, infer_schema=False)
        except pl.exceptions.NoDataError:
            raise RawDataError(f"eligibility: {path}: file is empty (delete it to disable the rule)") from None
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise RawDataError(f"eligibility: {path}: missing required column(s) {missing}; found {df.columns}")
        if rule == "open_deals":
            cols = ["customer_id", "division"] if "division" in df.columns else ["customer_id"]
            out[rule] = df.select(cols)
        else:
            out[rule] = df.get_column(required[0]).drop_nulls().str.strip_chars().to_list()
    return out
