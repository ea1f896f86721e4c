"""Group `raw`: the two input tables ingested from the landing folder, typed per the raw-data contract."""


from collections.abc import Iterator

from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, MetadataValue, Output, asset

from gosales_assets.assets.common import contract_check_result, table_metadata
from gosales_assets.core.contracts import check_contract, raw_table_schema
from gosales_assets.core.ingest import read_raw_table_report
from gosales_assets.resources import WAREHOUSE_POOL, GosalesSettings


def _ingest(context: AssetExecutionContext, settings: GosalesSettings, table: str) -> Iterator:
    cfg = settings.get()
    df, report = read_raw_table_report(cfg.landing_dir, table)
    files = [cfg.landing_dir / f for f in report.rows_by_file]
    context.log.info(f"{table}: read {df.height} rows from {[str(f) for f in files]}")
    for note in report.notes:
        context.log.warning(f"{table}: {note}")
    meta = table_metadata(df, cfg)
    meta["source_files"] = [str(f) for f in files]
    meta["rows_by_file"] = MetadataValue.json(report.rows_by_file)
    meta["ingest_notes"] = MetadataValue.json(list(report.notes))
    # Write, audit, publish: a batch that breaks the raw contract is not stored over the published one.
    contract = contract_check_result(check_contract(df, raw_table_schema(table)), asset_key=table)
    if contract.passed:
        yield Output(df, metadata=meta)
    else:
        context.log.error(f"{table} batch held by its contract: nothing was written; the published table is unchanged")
    yield contract


@asset(
    group_name="raw",
    pool=WAREHOUSE_POOL,
    output_required=False,
    check_specs=[AssetCheckSpec("contract", asset="sales_log", blocking=True,
                                description="Columns and types match the raw sales_log contract")],
    description="Invoice lines as delivered (one row per input line), typed; invoice_date kept as text so "
    "bad dates can be quarantined row by row downstream.",
)
def sales_log(context: AssetExecutionContext, settings: GosalesSettings) -> Iterator[Output | AssetCheckResult]:
    yield from _ingest(context, settings, "sales_log")


@asset(
    group_name="raw",
    pool=WAREHOUSE_POOL,
    output_required=False,
    check_specs=[AssetCheckSpec("contract", asset="customers", blocking=True,
                                description="Columns and types match the raw customers contract")],
    description="Customer roster as delivered, typed.",
)
def customers(context: AssetExecutionContext, settings: GosalesSettings) -> Iterator[Output | AssetCheckResult]:
    yield from _ingest(context, settings, "customers")
