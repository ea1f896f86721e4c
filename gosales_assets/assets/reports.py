"""Group `reports`: the cross-run metrics summary and the per-cutoff top-accounts report."""

import polars as pl
from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, Output, asset

from gosales_assets.assets.common import markdown_table, table_metadata
from gosales_assets.assets.features import fact_until_for
from gosales_assets.core.reports import (
    TOP_ACCOUNT_COLUMNS,
    best_accounts,
    top_accounts,
    top_accounts_markdown,
    with_ownership,
)
from gosales_assets.core.reports import metrics_summary as build_metrics_summary
from gosales_assets.core.whitespace_inputs import owned_divisions
from gosales_assets.partitions import cutoff_partitions, parse_cutoff
from gosales_assets.resources import RANKING_POOL, WAREHOUSE_POOL, ArtifactStore, GosalesSettings, WarehouseResource
from gosales_assets.settings import Settings


def build_report_assets(settings: Settings) -> list[AssetsDefinition]:
    @asset(
        name="metrics_summary",
        group_name="reports",
        pool=WAREHOUSE_POOL,
        deps=["division_model", "forward_validation"],
        description="Every division × cutoff of the model registry: its verdict (promoted, retained, held, skipped) "
        "and the model that served it, training (out-of-fold) and forward metrics side by side, gate result; also "
        "<artifacts>/reports/metrics_summary.csv.",
    )
    def metrics_summary(context: AssetExecutionContext, settings: GosalesSettings, warehouse: WarehouseResource,
                        artifacts: ArtifactStore) -> Output[pl.DataFrame]:
        cfg = settings.get()
        models = warehouse.query("select * from division_model") if warehouse.table_exists("division_model") \
            else pl.DataFrame()
        forward = warehouse.query("select * from forward_validation") \
            if warehouse.table_exists("forward_validation") else None
        summary = build_metrics_summary(models, forward)
        path = artifacts.write_csv(["reports", "metrics_summary.csv"], summary)
        gates = summary.group_by("gate_passed").len().sort("gate_passed").to_dicts() if summary.height else []
        statuses = summary.group_by("status").len().sort("status").to_dicts() if summary.height else []
        return Output(summary, metadata=table_metadata(summary, cfg) | {
            "partitions": summary.height,
            "gates": markdown_table(gates),
            "statuses": markdown_table(statuses),
            "csv": MetadataValue.path(str(path)),
        })

    return [metrics_summary]


def build_top_accounts_assets(settings: Settings) -> list[AssetsDefinition]:
    @asset(
        name="top_accounts_report",
        group_name="reports",
        partitions_def=cutoff_partitions(settings),
        # The ranking's pool: a backfill runs a cutoff's list and its report together, and a run claims every pool
        # of its steps (in the warehouse pool too, the list would wait behind the division runs again).
        pool=RANKING_POOL,
        deps=["whitespace"],
        metadata={"partition_expr": "cutoff_date"},
        description="The top 100 cross-sell accounts of the cutoff with their ICP context and whitespace gaps; "
        "`best_score_source` labels an account whose best opportunity is ordered by a simple peer (a division "
        "without a promoted model: no probability, listed after the model-ranked accounts); "
        "<artifacts>/reports/<cutoff>/top_accounts.csv and top_accounts.md.",
    )
    def top_accounts_report(context: AssetExecutionContext, settings: GosalesSettings,
                            warehouse: WarehouseResource, artifacts: ArtifactStore):
        cfg = settings.get()
        cutoff = parse_cutoff(context.partition_key)
        ws = warehouse.query(f"select {', '.join(TOP_ACCOUNT_COLUMNS)} from whitespace where cutoff_date = ?",
                             [cutoff]) if warehouse.table_exists("whitespace") else pl.DataFrame()
        if ws.height == 0:
            reason = f"the whitespace list of {cutoff} is empty (no division published scores): nothing to report"
            context.log.info(reason)
            empty = top_accounts(ws, ws, cfg.divisions).with_columns(pl.lit(cutoff).alias("cutoff_date"))
            rel = ["reports", cutoff.isoformat()]
            artifacts.write_csv([*rel, "top_accounts.csv"], empty)
            artifacts.write_text([*rel, "top_accounts.md"], f"# Top cross-sell accounts — cutoff {cutoff}\n\n{reason}\n")
            yield Output(empty, metadata={"dagster/row_count": 0, "reason": reason})
            return
        best = best_accounts(ws)
        # What the shown accounts own, from their own lines (the whole history of every customer is not needed).
        owned = owned_divisions(fact_until_for(warehouse, cutoff, best.get_column("customer_id")), cutoff,
                                cfg.whitespace.ownership_lookback_months)
        accounts = with_ownership(best, owned, cfg.divisions).with_columns(pl.lit(cutoff).alias("cutoff_date"))
        rel = ["reports", cutoff.isoformat()]
        csv = artifacts.write_csv([*rel, "top_accounts.csv"], accounts)
        md = top_accounts_markdown(accounts, cutoff)
        artifacts.write_text([*rel, "top_accounts.md"], md)
        peer_ordered = accounts.filter(pl.col("best_score_source") != "model").height
        yield Output(accounts, metadata=table_metadata(accounts, cfg) | {
            "peer_ordered_accounts": peer_ordered,
            "summary": MetadataValue.md(md), "csv": MetadataValue.path(str(csv))})

    return [top_accounts_report]
