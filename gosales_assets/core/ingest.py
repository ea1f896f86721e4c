"""Read the two raw input tables (`sales_log`, `customers`) from a landing folder, typed per the contract.

Structural problems — a missing file, a missing column, a column of the wrong type, an empty file — raise
`RawDataError` naming the file and the column (and rows, where rows are at fault). Nothing is returned half
read, so nothing is half-written to the warehouse. Row-level problems that the contract quarantines
(unparseable dates, unknown SKUs, …) are *not* raised here: `invoice_date` and `first_seen_date` are kept as
ISO strings so `core.star` can reject such rows one by one, with the original value preserved.

A table is either one file `<landing>/<name>.parquet|.csv` or a folder `<landing>/<name>/` of such files
(read in sorted name order). File extensions are matched case-insensitively (`part2.PARQUET` is read); in a
folder, hidden files (`.x`, `_SUCCESS`) are skipped and named in the ingest notes, and any other file or
sub-folder the engine cannot read is an error, so no part of a table is ever silently left out. Every row gets
`source_file` (file name relative to the landing folder) and `source_row` (1-based position among the file's
data rows, a blank line included: the stable row key). In a CSV file a row starts on line `source_row + 1` only
until the first value that holds a line break; what a person is told about a CSV row (an error here, a
quarantined row in `core.star`) names the physical line, found by `locate_csv_rows` for those rows only.

CSV and Parquet follow one rule for values: text cells are trimmed and an empty (or all-blank) text is a null,
so a blank key is quarantined as `missing_value` whatever the format. A CSV file is first scanned as CSV
(UTF-8, comma-separated, `"` quotes): a file that is not UTF-8, looks `;`- or tab-separated, or has a row with
fewer or more fields than its header (a file cut mid-row) is refused with the file, line and a hint.

Columns: a column whose name differs from a contract column only in case or separators (`RepID`, `Customer ID`)
is an error that names both; other unknown columns are ignored and, with the optional columns that are absent,
listed in `IngestReport.notes` (see `read_raw_table_report`).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
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

_SUFFIXES = (".parquet", ".csv")  # compared with the file's suffix in lower case
_MAX_ROWS_LISTED = 5
_log = logging.getLogger(__name__)


class RawDataError(ValueError):
    """A raw input file cannot be read as the contract requires."""


@dataclass(frozen=True)
class IngestReport:
    """What was read for one table, and what a person should know about it (nothing here is an error)."""

    table: str
    rows_by_file: dict[str, int]  # file (relative to the landing folder) -> data rows read, in read order
    notes: tuple[str, ...] = field(default_factory=tuple)  # skipped hidden files, absent optional columns, ...

    @property
    def rows(self) -> int:
        return sum(self.rows_by_file.values())


def raw_schema(table: str) -> dict[str, pl.DataType]:
    """Polars schema of a typed raw table (as returned by `read_raw_table`)."""
    out: dict[str, pl.DataType] = {"source_file": pl.String(), "source_row": pl.Int64()}
    for col in RAW_TABLES[table]:
        out[col.name] = {"str": pl.String(), "int": pl.Int64(), "float": pl.Float64(), "date": pl.String()}[
            col.kind
        ]
    return out


def _is_supported(path: Path) -> bool:
    return path.suffix.lower() in _SUFFIXES


def _is_hidden(path: Path) -> bool:
    return path.name.startswith((".", "_"))  # .DS_Store, ._x, _SUCCESS, _metadata: not data by convention


def _scan_raw_files(landing: Path, table: str) -> tuple[list[Path], list[str]]:
    """(files to read, notes about skipped hidden files); see `find_raw_files`."""
    if not landing.is_dir():
        raise RawDataError(f"{table}: landing folder {landing} does not exist")
    singles = sorted(p for p in landing.iterdir() if p.is_file() and p.stem == table and _is_supported(p))
    folder = landing / table
    parts: list[Path] = []
    notes: list[str] = []
    if folder.is_dir():
        entries = sorted(folder.iterdir())
        parts = [p for p in entries if p.is_file() and not _is_hidden(p) and _is_supported(p)]
        hidden = [p.name for p in entries if _is_hidden(p)]
        unreadable = [p.name + ("/" if p.is_dir() else "") for p in entries if not _is_hidden(p) and p not in parts]
        if unreadable:
            raise RawDataError(
                f"{table}: folder {folder} holds {len(unreadable)} entr{'y' if len(unreadable) == 1 else 'ies'} the "
                f"engine cannot read: {unreadable}; a table folder may hold only .csv or .parquet files (any letter "
                "case; sub-folders are not read). Convert, move or delete them so no rows are left out"
            )
        if hidden:
            notes.append(f"{table}: skipped hidden file(s) in {folder}: {hidden} (names starting with '.' or '_' "
                         "are not read)")
    if len(singles) > 1 or (singles and parts):
        found = [str(p) for p in singles] + ([str(folder) + "/"] if parts else [])
        raise RawDataError(f"{table}: more than one source found in {landing}: {found}; keep exactly one")
    files = singles or parts
    if not files:
        near = sorted(p.name for p in landing.iterdir() if p.name.lower().startswith(table.lower()))
        hint = (f"; found {near}, but the name must be exactly {table}.csv or {table}.parquet (any case for the "
                f"extension) or a folder {table}/" if near else "")
        raise RawDataError(
            f"{table}: no input file in {landing} (expected {table}.parquet, {table}.csv "
            f"or a folder {table}/ of such files){hint}"
        )
    return files, notes


def find_raw_files(landing: Path, table: str) -> list[Path]:
    """The files that make up `table` in the landing folder (error if none, if ambiguous, or if a table folder
    holds a file or sub-folder that would be left out). Extensions are matched case-insensitively."""
    return _scan_raw_files(Path(landing), table)[0]


def _row_list(rows: pl.Series) -> str:
    listed = ", ".join(str(r) for r in rows.head(_MAX_ROWS_LISTED).to_list())
    more = f" and {rows.len() - _MAX_ROWS_LISTED} more" if rows.len() > _MAX_ROWS_LISTED else ""
    return f"{listed}{more}"


def _cast_text_column(df: pl.DataFrame, col: RawColumn, where: str,
                      lines: Callable[[list[int]], dict[int, int]] | None = None) -> pl.Expr:
    """Strictly cast a text column to its contract type; unparseable non-empty values are an error. `lines` maps
    data rows to the lines of the file where they start (CSV), for the rows the error lists."""
    text = _blank_to_null(pl.col(col.name))
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
        rows = bad.get_column("_r")
        listed = rows.head(_MAX_ROWS_LISTED).to_list()
        at = lines(listed) if lines is not None else {}
        on = (f", on line{'s' if len(listed) > 1 else ''} {', '.join(str(at[r]) for r in listed)} of the file"
              if len(at) == len(listed) else "")
        raise RawDataError(
            f"{where}: column '{col.name}' must hold {noun}; {bad.height} value(s) are not "
            f"(data row{'s' if bad.height > 1 else ''} {_row_list(rows)}{on}; e.g. {example!r})"
        )
    return cast.alias(col.name)


def _blank_to_null(text: pl.Expr) -> pl.Expr:
    """The one rule for text cells, CSV and Parquet alike: trimmed, and empty (or all-blank) is a null."""
    text = text.str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def _cast_typed_column(dtype: pl.DataType, col: RawColumn, where: str) -> pl.Expr:
    """Cast a column from a typed (Parquet) file; incompatible physical types are an error. Text is trimmed and
    blank text is a null, exactly as in CSV (`""` or `"  "` as a key is then quarantined as `missing_value`)."""
    c = pl.col(col.name)
    if dtype == pl.Null:
        target = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "date": pl.String}[col.kind]
        return c.cast(target).alias(col.name)
    if col.kind == "str":
        if dtype.is_integer():
            return c.cast(pl.String).alias(col.name)
        if dtype in (pl.String, pl.Categorical, pl.Enum):
            return _blank_to_null(c.cast(pl.String)).alias(col.name)
    elif col.kind == "int":
        if dtype.is_integer():
            return c.cast(pl.Int64).alias(col.name)
    elif col.kind == "float":
        if dtype.is_numeric():
            return c.cast(pl.Float64).alias(col.name)
    elif col.kind == "date":
        if dtype == pl.String:
            return _blank_to_null(c).alias(col.name)
        if dtype == pl.Date:
            return c.dt.strftime("%Y-%m-%d").alias(col.name)
        if dtype == pl.Datetime:
            return c.dt.date().dt.strftime("%Y-%m-%d").alias(col.name)
    expected = {"str": "text", "int": "integer", "float": "number", "date": "date or ISO text"}[col.kind]
    raise RawDataError(f"{where}: column '{col.name}' has type {dtype}, expected {expected}")


# ---------------------------------------------------------------------------------------------------------
# CSV pre-scan: encoding, separator, and rows cut short (polars pads a short row with nulls without a word)
# ---------------------------------------------------------------------------------------------------------
_OTHER_SEPARATORS = {";": "';'", "\t": "tab", "|": "'|'"}


def _utf8_lines(f, where: str) -> Iterator[str]:
    """The file's lines decoded as strict UTF-8; the first undecodable byte is an error naming line and byte."""
    for number, raw in enumerate(f, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = raw[err.start:err.start + 1]
            shown = raw.decode("cp1252", errors="replace").rstrip("\r\n")
            if len(shown) > 80:
                at = max(0, err.start - 30)
                shown = "…" + shown[at:at + 60] + "…"
            raise RawDataError(
                f"{where}: line {number} is not valid UTF-8 (byte 0x{bad.hex()} at position {err.start + 1}); the "
                f"file looks Latin-1 / Windows-1252 encoded (in that encoding the line reads {shown!r}). Save or "
                "export it as UTF-8 (e.g. 'CSV UTF-8' in Excel, or `iconv -f cp1252 -t utf-8`)"
            ) from None


def _scan_csv(path: Path, where: str) -> list[str]:
    """Check a CSV file's encoding, separator and field counts before polars reads it; returns notes."""
    notes: list[str] = []
    with path.open("rb") as f:
        reader = csv.reader(_utf8_lines(f, where), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return notes
            header_line = ",".join(header)
            if len(header) == 1:
                found = [name for sep, name in _OTHER_SEPARATORS.items() if sep in header_line]
                if found:
                    raise RawDataError(
                        f"{where}: the header is one single column ({header_line[:80]!r}); the file looks "
                        f"{found[0]}-separated. The engine reads comma-separated CSV (UTF-8, '\"' quotes): export "
                        "the file with ',' as the separator (and '.' as the decimal mark), or save it as Parquet"
                    )
            n = len(header)
            short: list[tuple[int, int]] = []
            long: list[tuple[int, int]] = []
            prev = reader.line_num
            for row in reader:
                line, prev = prev + 1, reader.line_num
                k = len(row)
                if k == n or k == 0 or (k == 1 and not row[0].strip()):
                    continue  # a blank line is read as a row of nulls (quarantined as missing_value), not cut
                (short if k < n else long).append((line, k))
        except csv.Error as err:
            cut = "the file ends inside a quoted value (cut mid-row?)" if "end of data" in str(err) else str(err)
            raise RawDataError(f"{where}: malformed CSV at line {reader.line_num}: {cut}") from None
    if short or long:
        bad = short or long
        lines = ", ".join(f"line {ln} ({k} fields)" for ln, k in bad[:_MAX_ROWS_LISTED])
        more = f" and {len(bad) - _MAX_ROWS_LISTED} more" if len(bad) > _MAX_ROWS_LISTED else ""
        if short:
            why = ("the file looks cut mid-row (a partial upload or copy?) or a row lost its trailing cells; "
                   "the file is refused rather than reading the missing cells as empty")
        else:
            why = "a value holds an unquoted ',' (a decimal comma or a text with commas?); quote it or fix the row"
        raise RawDataError(
            f"{where}: {len(bad)} row(s) with {'fewer' if short else 'more'} fields than the header's {n}: "
            f"{lines}{more}; {why}"
        )
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(size - 1)
        if f.read(1) not in (b"\n", b"\r"):
            notes.append(f"{where}: the file does not end with a line break; check that its last line "
                         f"(line {prev}) is complete")
    return notes


@dataclass(frozen=True)
class CsvRows:
    """Rows of a CSV file located by `locate_csv_rows`."""

    header: list[str]
    rows: dict[int, tuple[int, list[str]]]  # source_row -> (line where the row starts, its cells as written)


def locate_csv_rows(path: Path, rows: Iterable[int]) -> CsvRows:
    """The physical line (1-based; the header is line 1) where each of the data rows `rows` (`source_row`) starts,
    with its cells. A value with line breaks makes its row span several lines, so the line is not `source_row + 1`
    after one; blank lines are rows (of empty cells) for polars and for the csv module alike, so the counts agree.

    One pass with the csv module up to the last row asked for: it runs only for rows that are reported (an error,
    quarantined rows), so a million-row file is still read once by polars. Raises `RawDataError` or `csv.Error`
    when the file no longer reads as it did."""
    wanted = set(rows)
    last = max(wanted, default=0)
    found: dict[int, tuple[int, list[str]]] = {}
    with Path(path).open("rb") as f:
        reader = csv.reader(_utf8_lines(f, str(path)), strict=True)
        header = next(reader, [])
        if header:
            header[0] = header[0].removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the name
        prev = reader.line_num
        for number, cells in enumerate(reader, start=1):
            if number > last:
                break
            start, prev = prev + 1, reader.line_num
            if number in wanted:
                found[number] = (start, cells)
    return CsvRows(header=header, rows=found)


# ---------------------------------------------------------------------------------------------------------
# Columns: near-misses of contract names are errors; the rest is named in the notes
# ---------------------------------------------------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _check_columns(columns: list[str], table: str, where: str) -> list[str]:
    """Error for missing required columns and for near-misses of contract names; notes for the rest."""
    contract = RAW_TABLES[table]
    known = {c.name for c in contract}
    present = set(columns)
    extra = [c for c in columns if c not in known]
    near = {}
    for col in contract:
        if col.name in present:
            continue
        hits = [c for c in extra if _norm(c) == _norm(col.name)]
        if hits:
            near[col.name] = hits[0]
    if near:
        pairs = ", ".join(f"'{got}' for '{want}'" for want, got in near.items())
        raise RawDataError(
            f"{where}: column name(s) differ from the contract only in case or separators: {pairs}. Column "
            "names are exact (lower case, '_'); rename the column(s) so they are not ignored"
        )
    missing = [c.name for c in contract if c.required and c.name not in present]
    if missing:
        hint = ""
        seps = [name for sep, name in _OTHER_SEPARATORS.items() if any(sep in c for c in columns)]
        if seps:
            hint = f" (the header looks {seps[0]}-separated; the engine reads comma-separated CSV)"
        raise RawDataError(f"{where}: missing required column(s) {missing}; found columns {columns}{hint}")
    notes = []
    absent = [c.name for c in contract if not c.required and c.name not in present]
    if absent:
        notes.append(f"{where}: optional column(s) {absent} not found; read as empty")
    if extra:
        notes.append(f"{where}: column(s) {extra} are not in the {table} contract and were ignored")
    return notes


def _read_one(path: Path, table: str, landing: Path) -> tuple[pl.DataFrame, list[str]]:
    rel = path.relative_to(landing).as_posix()
    where = f"{table}: {path}"
    is_csv = path.suffix.lower() == ".csv"
    notes: list[str] = []
    if path.stat().st_size == 0:
        raise RawDataError(f"{where}: file is empty")
    if is_csv:
        notes += _scan_csv(path, where)
    try:
        if is_csv:
            df = pl.read_csv(path, infer_schema=False, null_values=[""], raise_if_empty=True)
        else:
            df = pl.read_parquet(path)
    except pl.exceptions.NoDataError:
        raise RawDataError(f"{where}: file is empty") from None
    except Exception as err:  # corrupt file, bad encoding, …: say which file
        raise RawDataError(f"{where}: cannot be read ({type(err).__name__}: {err})") from None
    if df.height == 0:
        raise RawDataError(f"{where}: file has a header but no data rows")
    notes += _check_columns(df.columns, table, where)
    contract = RAW_TABLES[table]
    exprs = []
    for col in contract:
        if col.name not in df.columns:
            target = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "date": pl.String}[col.kind]
            exprs.append(pl.lit(None, dtype=target).alias(col.name))
        elif is_csv:
            exprs.append(_cast_text_column(df, col, where, lines=lambda rows: {
                r: line for r, (line, _) in locate_csv_rows(path, rows).rows.items()}))
        else:
            exprs.append(_cast_typed_column(df.schema[col.name], col, where))
    out = df.select(
        pl.lit(rel).alias("source_file"),
        pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("source_row"),
        *exprs,
    )
    return out, notes


def read_raw_table_report(landing: Path, table: str) -> tuple[pl.DataFrame, IngestReport]:
    """Read `table` from the landing folder, typed per the raw contract (see module docstring), with a report of
    the rows read per file and notes a person should see (skipped hidden files, absent optional columns,
    ignored unknown columns, a CSV without a final line break)."""
    if table not in RAW_TABLES:
        raise ValueError(f"unknown raw table {table!r}; expected one of {sorted(RAW_TABLES)}")
    landing = Path(landing)
    files, notes = _scan_raw_files(landing, table)
    frames = []
    rows_by_file: dict[str, int] = {}
    for path in files:
        df, file_notes = _read_one(path, table, landing)
        frames.append(df)
        rows_by_file[path.relative_to(landing).as_posix()] = df.height
        notes += file_notes
    out = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    return out, IngestReport(table=table, rows_by_file=rows_by_file, notes=tuple(notes))


def read_raw_table(landing: Path, table: str) -> pl.DataFrame:
    """Read `table` from the landing folder, typed per the raw contract (see module docstring). The report's
    notes are logged as warnings; use `read_raw_table_report` to get them."""
    df, report = read_raw_table_report(landing, table)
    for note in report.notes:
        _log.warning(note)
    return df


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
