"""Metadata helpers shared by the asset modules."""

from __future__ import annotations

import base64
import warnings
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetObservation,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableSchema,
)
from dagster._utils.warnings import PreviewWarning

from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.contracts import ContractReport
from gosales_assets.core.reports import md_cell
from gosales_assets.settings import Settings


def partition_checks(partitions_def: PartitionsDefinition, *specs: AssetCheckSpec) -> list[AssetCheckSpec]:
    """The same checks, evaluated per partition: each result is stored with its partition key, so the UI and the
    GraphQL API show every partition's own verdict instead of the latest run's. (Dagster 1.13 still labels
    partitioned checks a preview feature; its warning is silenced here, the behaviour is covered by tests.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return [AssetCheckSpec(s.name, asset=s.asset_key, description=s.description, blocking=s.blocking,
                               metadata=s.metadata, partitions_def=partitions_def) for s in specs]


def table_metadata(df: pl.DataFrame, settings: Settings, *, date_col: str | None = None) -> dict[str, Any]:
    """What a person looks at first: rows, schema, a content checksum, the date range, the config used."""
    meta: dict[str, Any] = {
        "dagster/row_count": df.height,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name=n, type=str(t)) for n, t in df.schema.items()]
        ),
        "checksum": frame_checksum(df),
        "config_checksum": settings.checksum,
    }
    if date_col is not None and df.height:
        lo, hi = df.select(pl.col(date_col).min().alias("lo"), pl.col(date_col).max().alias("hi")).row(0)
        meta["date_min"] = str(lo)
        meta["date_max"] = str(hi)
    return meta


def record_skip(context, asset_key: str, reason: str, *, level: str = "info", **metadata) -> None:
    """Log why a partition produced no output and record it as an observation on the asset, so the reason
    shows on the asset's page in the UI."""
    getattr(context.log, level)(f"{asset_key} {context.partition_key}: not materialized — {reason}")
    context.log_event(AssetObservation(asset_key=asset_key, partition=context.partition_key,
                                       metadata={"skipped": True, "reason": reason, **metadata}))


def contract_check_result(report: ContractReport, *, asset_key: str, check_name: str = "contract") -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=report.passed,
        severity=AssetCheckSeverity.ERROR,
        description=report.summary(),
        metadata={
            "rows": report.rows,
            "failed_rows": report.failed_rows,
            "failures": MetadataValue.json(report.failures),
        },
    )


def image_markdown(png: bytes, alt: str) -> MetadataValue:
    """An inline PNG (data URI) as markdown metadata. The UI lists it with the materialization's metadata
    (asset page → Partitions / Events) behind a *[Show Markdown]* link, which renders the chart."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def markdown_table(rows: list[dict[str, Any]]) -> MetadataValue:
    if not rows:
        return MetadataValue.md("_none_")
    cols = list(rows[0])
    # cells are escaped: a customer name with '|', a line break or HTML must not break the table or inject markup
    lines = ["| " + " | ".join(md_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(md_cell(r[c]) for c in cols) + " |" for r in rows]
    return MetadataValue.md("\n".join(lines))
