"""Group `reports`: cross-run outputs that read every materialized partition."""

import polars as pl
from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, Output, asset

from gosales_assets.assets.common import markdown_table, table_metadata
from gosales_assets.core.reports import metrics_summary as build_metrics_summary
from gosales_assets.resources import WAREHOUSE_POOL, ArtifactStore, GosalesSettings, WarehouseResource
from gosales_assets.settings import Settings


def build_report_assets(settings: Settings) -> list[AssetsDefinition]:
    @asset(
        name="metrics_summary",
        group_name="reports",
        pool=WAREHOUSE_POOL,
        deps=["division_model", "forward_validation"],
        description="Every division × cutoff with a model: training (out-of-fold) and forward metrics side by side, "
        "gate result; also <artifacts>/reports/metrics_summary.csv.",
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
        return Output(summary, metadata=table_metadata(summary, cfg) | {
            "partitions": summary.height,
            "gates": markdown_table(gates),
            "csv": MetadataValue.path(str(path)),
        })

    return [metrics_summary]
