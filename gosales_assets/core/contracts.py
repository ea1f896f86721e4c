"""Data contracts (pandera, polars backend) for the raw and star tables, and the checks beside them.

Each `*_schema` function builds the schema from configuration (date bounds, SKU map, divisions), because the
contract *is* configuration-dependent. `check_contract` runs a schema lazily and returns a compact,
JSON-able report (which column, which check, how many rows, a few examples) suitable for asset-check
metadata; it never raises on bad data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl

from gosales_assets.core.ingest import raw_schema
from gosales_assets.core.star import RULE_NAMES, VIOLATION_SCHEMA
from gosales_assets.settings import division_slug

_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ContractReport:
    table: str
    rows: int
    failures: list[dict] = field(default_factory=list)  # {column, check, failed_rows, examples}

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failed_rows(self) -> int:
        return sum(f["failed_rows"] for f in self.failures)

    def summary(self) -> str:
        if self.passed:
            return f"{self.table}: {self.rows} rows satisfy the contract"
        parts = [f"{f['column'] or '<table>'}: {f['check']} ({f['failed_rows']} rows)" for f in self.failures]
        return f"{self.table}: contract violated — " + "; ".join(parts)


def _col(dtype: pl.DataType, *, nullable: bool = False, checks: list | None = None, unique: bool = False) -> pa.Column:
    return pa.Column(dtype, nullable=nullable, checks=checks or [], unique=unique)


def raw_table_schema(table: str) -> pa.DataFrameSchema:
    """Types of a raw table as read by `core.ingest.read_raw_table`."""
    cols = {name: _col(dtype, nullable=name not in ("source_file", "source_row"))
            for name, dtype in raw_schema(table).items()}
    return pa.DataFrameSchema(cols, strict=True, name=table)


def _one_customer_and_date_per_invoice(data) -> pl.LazyFrame:
    """Row-wise: the line's invoice has exactly one customer_id and one invoice_date (core.star quarantines the
    lines of any other invoice as `invoice_conflict`, so fact_events never re-attributes or back-dates a sale)."""
    lf = data.lazyframe
    if not {"invoice_id", "customer_id", "invoice_date"} <= set(lf.collect_schema().names()):
        return lf.select(pl.lit(True).alias("ok"))  # the missing column is reported by its own check
    per_invoice = [pl.col(c).n_unique().over("invoice_id") == 1 for c in ("customer_id", "invoice_date")]
    return lf.select((per_invoice[0] & per_invoice[1]).alias("ok"))


def fact_transactions_schema(*, start_date: dt.date, end_date: dt.date, sku_map: dict[str, str],
                             divisions: list[str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "invoice_id": _col(pl.String),
            "line_no": _col(pl.Int64),
            "invoice_date": _col(pl.Date, checks=[pa.Check.in_range(start_date, end_date)]),
            "customer_id": _col(pl.String),
            "sku": _col(pl.String, checks=[pa.Check.isin(sorted(sku_map))]),
            "division": _col(pl.String, checks=[pa.Check.isin(divisions)]),
            "quantity": _col(pl.Float64),
            "revenue": _col(pl.Float64),
            "gross_profit": _col(pl.Float64, nullable=True),
            "rep_id": _col(pl.String, nullable=True),
            "is_return": _col(pl.Boolean),
            "source_file": _col(pl.String),
            "source_row": _col(pl.Int64, checks=[pa.Check.ge(1)]),
        },
        strict=True,
        unique=["invoice_id", "line_no"],
        checks=[pa.Check(_one_customer_and_date_per_invoice, name="one_customer_and_date_per_invoice",
                         error="one_customer_and_date_per_invoice")],
        name="fact_transactions",
    )


def dim_customer_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": _col(pl.String, unique=True),
            "customer_name": _col(pl.String),
            "industry": _col(pl.String, nullable=True),
            "sub_industry": _col(pl.String, nullable=True),
            "region": _col(pl.String, nullable=True),
            "territory": _col(pl.String, nullable=True),
            "employee_band": _col(pl.String, nullable=True),
            "first_seen_date": _col(pl.Date, nullable=True),
        },
        strict=True,
        name="dim_customer",
    )


def fact_events_schema(*, start_date: dt.date, end_date: dt.date, divisions: list[str]) -> pa.DataFrameSchema:
    cols = {
        "invoice_id": _col(pl.String, unique=True),
        "customer_id": _col(pl.String),
        "invoice_date": _col(pl.Date, checks=[pa.Check.in_range(start_date, end_date)]),
        "n_lines": _col(pl.Int64, checks=[pa.Check.ge(1)]),
        "revenue": _col(pl.Float64),
        "gross_profit": _col(pl.Float64, nullable=True),
        "has_return": _col(pl.Boolean),
        "n_divisions": _col(pl.Int64, checks=[pa.Check.ge(1)]),
    }
    for div in divisions:
        slug = division_slug(div)
        cols[f"revenue__{slug}"] = _col(pl.Float64)
        cols[f"has__{slug}"] = _col(pl.Boolean)
    return pa.DataFrameSchema(cols, strict=True, name="fact_events")


def contract_violations_schema() -> pa.DataFrameSchema:
    checks = {"source_table": [pa.Check.isin(["sales_log", "customers"])], "rule": [pa.Check.isin(list(RULE_NAMES))],
              "source_row": [pa.Check.ge(1)], "source_line": [pa.Check.ge(2)]}  # line 1 is a CSV file's header
    cols = {name: _col(dtype(), checks=checks.get(name), nullable=name == "source_line")
            for name, dtype in VIOLATION_SCHEMA.items()}
    return pa.DataFrameSchema(cols, strict=True, unique=["source_table", "source_file", "source_row"],
                              name="contract_violations")


def check_contract(df: pl.DataFrame, schema: pa.DataFrameSchema) -> ContractReport:
    """Validate `df` against `schema`; collect every failure instead of raising."""
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
        grouped = (
            fc.with_columns(pl.col("failure_case").cast(pl.String))
            .group_by(["column", "check"], maintain_order=True)
            .agg(pl.len().alias("failed_rows"), pl.col("failure_case").head(_MAX_EXAMPLES).alias("examples"))
        )
        failures = []
        for r in grouped.iter_rows(named=True):
            column = r["column"] if r["column"] in df.columns else None  # None: a table-level check
            if r["check"] == "column_in_dataframe":
                column = r["examples"][0]  # pandera reports the missing column as the failure case
            failures.append({"column": column, "check": r["check"], "failed_rows": int(r["failed_rows"]),
                             "examples": list(r["examples"])})
        return ContractReport(schema.name or "table", df.height, failures)
    return ContractReport(schema.name or "table", df.height)


def missing_references(child: pl.DataFrame, parent: pl.DataFrame, key: str) -> pl.DataFrame:
    """Rows of `child` whose `key` is absent from `parent` (referential integrity)."""
    return child.join(parent.select(key).unique(), on=key, how="anti")


def reconciliation(raw_rows: int, kept_rows: int, rejected_rows: int) -> dict[str, int | bool]:
    """Every raw row must be either kept or rejected, exactly once."""
    return {
        "raw_rows": raw_rows,
        "kept_rows": kept_rows,
        "rejected_rows": rejected_rows,
        "unaccounted_rows": raw_rows - kept_rows - rejected_rows,
        "reconciles": raw_rows == kept_rows + rejected_rows,
    }


def events_reconciliation(fact: pl.DataFrame, events: pl.DataFrame) -> dict:
    """Does `fact_events` account for every fact line, under the line's own customer and date?

    Compares line counts and revenue totals (as before) and, line by line, that the event of the line's invoice
    carries the line's customer_id and invoice_date: an event published under another customer or an earlier
    date (a re-attributed or back-dated sale) counts its lines as `misattributed_lines`. Events without any fact
    line are `orphan_events`. Returns {passed, description, metadata} for the asset check.
    """
    keys = ["invoice_id", "customer_id", "invoice_date"]
    misattributed = fact.select(keys).join(events.select(keys), on=keys, how="anti").height
    orphans = events.select("invoice_id").join(fact.select("invoice_id").unique(), on="invoice_id", how="anti").height
    event_lines = int(events.get_column("n_lines").sum() or 0)
    lines_ok = event_lines == fact.height
    rev_fact = float(fact.get_column("revenue").sum() or 0.0)
    rev_events = float(events.get_column("revenue").sum() or 0.0)
    rev_ok = abs(rev_fact - rev_events) <= 1e-6 * max(1.0, abs(rev_fact))
    passed = lines_ok and rev_ok and misattributed == 0 and orphans == 0
    description = (
        f"lines {'match' if lines_ok else 'differ'} ({fact.height} facts, {event_lines} in events); revenue facts "
        f"{rev_fact:,.2f} vs events {rev_events:,.2f}; {misattributed} fact line(s) not under their own customer "
        f"and date; {orphans} event(s) without fact lines"
    )
    metadata = {"fact_lines": fact.height, "event_lines": event_lines, "revenue_fact": rev_fact,
                "revenue_events": rev_events, "misattributed_lines": misattributed, "orphan_events": orphans}
    return {"passed": passed, "description": description, "metadata": metadata}


def icp_scores_schema(divisions: list[str]) -> pa.DataFrameSchema:
    from gosales_assets.core.scoring import ICP_SCHEMA

    checks = {
        "division": [pa.Check.isin(divisions)],
        "icp_score": [pa.Check.in_range(0.0, 1.0)],
        "bought_in_division": [pa.Check.isin([0, 1])],
        "prediction_window_months": [pa.Check.ge(1)],
    }
    nullable = {"customer_name", "bought_in_division"}
    cols = {name: _col(dtype(), nullable=name in nullable, checks=checks.get(name))
            for name, dtype in ICP_SCHEMA.items()}
    return pa.DataFrameSchema(cols, strict=True, unique=["division", "cutoff_date", "customer_id"], name="icp_scores")


def _unit() -> list:
    return [pa.Check.in_range(0.0, 1.0)]


def whitespace_schema(divisions: list[str]) -> pa.DataFrameSchema:
    """The ranked list: required columns (others, e.g. attributes or the challenger score, may follow)."""
    cols = {
        "rank": _col(pl.Int64, checks=[pa.Check.ge(1)]),
        "division": _col(pl.String, checks=[pa.Check.isin(divisions)]),
        "customer_id": _col(pl.String),
        "score": _col(pl.Float64, checks=_unit()),
        "p_icp": _col(pl.Float64, checks=_unit()),
        "p_icp_pct": _col(pl.Float64, checks=_unit()),
        "lift_norm": _col(pl.Float64, checks=_unit()),
        "als_norm": _col(pl.Float64, checks=_unit()),
        "EV_norm": _col(pl.Float64, checks=_unit()),
        "nba_reason": _col(pl.String),
        "selected": _col(pl.Boolean),
        "run_id": _col(pl.String),
        "cutoff_date": _col(pl.Date),
    }
    return pa.DataFrameSchema(cols, strict=False, unique=["customer_id", "division"], name="whitespace")


def capacity_grid_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema({
        "capacity_pct": _col(pl.Float64, checks=[pa.Check.in_range(0.0, 100.0)]),
        "n_selected": _col(pl.Int64, checks=[pa.Check.ge(0)]),
        "score_threshold": _col(pl.Float64, nullable=True),
        "expected_buyers": _col(pl.Float64, checks=[pa.Check.ge(0)]),
        "realized_buyers": _col(pl.Int64, nullable=True, checks=[pa.Check.ge(0)]),
        "capture": _col(pl.Float64, nullable=True, checks=_unit()),
        "cutoff_date": _col(pl.Date),
    }, strict=True, unique=["capacity_pct"], name="whitespace_thresholds")


def capacity_summary_schema(divisions: list[str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema({
        "rep_id": _col(pl.String),
        "division": _col(pl.String, checks=[pa.Check.isin(divisions)]),
        "rows": _col(pl.Int64, checks=[pa.Check.ge(1)]),
        "mean_score": _col(pl.Float64, checks=_unit()),
        "expected_buyers": _col(pl.Float64, checks=[pa.Check.ge(0)]),
        "ev_sum": _col(pl.Float64, checks=[pa.Check.ge(0)]),
        "cutoff_date": _col(pl.Date),
    }, strict=True, unique=["rep_id", "division"], name="capacity_summary")


def whitespace_metrics_schema() -> pa.DataFrameSchema:
    cols = {
        "cutoff_date": _col(pl.Date, unique=True),
        "run_id": _col(pl.String),
        "rows": _col(pl.Int64, checks=[pa.Check.ge(0)]),
        "selected": _col(pl.Int64, checks=[pa.Check.ge(0)]),
        "stability_jaccard": _col(pl.Float64, nullable=True, checks=_unit()),
        "checksum": _col(pl.String),
        "metrics_json": _col(pl.String),
    }
    capture = {f"capture_at_{k}{suffix}": _col(pl.Float64, nullable=True, checks=_unit())
               for k in (5, 10, 20) for suffix in ("", "_p_icp_only", "_p_icp_pct_only", "_legacy")}
    return pa.DataFrameSchema(cols | capture, strict=True, name="whitespace_metrics")


def empty_frame(schema: pa.DataFrameSchema) -> pl.DataFrame:
    """A zero-row frame with the schema's columns and dtypes: what a partition with nothing to publish stores, so
    the table keeps its columns and the slice of that partition is emptied rather than left as it was."""
    return pl.DataFrame(schema={name: col.dtype.type for name, col in schema.columns.items()})
