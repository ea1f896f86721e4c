"""The one Definitions object: assets, checks, resources, jobs and sensors, built from the YAML configuration."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetsDefinition, AssetSpec, Definitions, define_asset_job, in_process_executor, \
    load_assets_from_modules

from gosales_assets.assets import raw, star
from gosales_assets.assets.division_cutoff import build_division_cutoff_assets
from gosales_assets.assets.features import build_feature_assets
from gosales_assets.assets.reports import build_report_assets, build_top_accounts_assets
from gosales_assets.assets.whitespace import build_whitespace_assets
from gosales_assets.automation.alerts import build_drift_alert_sensor
from gosales_assets.automation.cutoffs import build_new_cutoff_sensor
from gosales_assets.automation.runs import release_dead_runs_sensor
from gosales_assets.automation.snapshots import build_snapshot_sensor, snapshot_job
from gosales_assets.jobs import CUTOFF_JOB, DIVISION_CUTOFF_JOB, GLOBAL_JOB
from gosales_assets.resources import (
    FILES_IO_MANAGER,
    WAREHOUSE_SCHEMA,
    ArtifactStore,
    GosalesSettings,
    PartitionFilesIOManager,
    WarehouseIOManager,
    WarehouseResource,
)
from gosales_assets.settings import Settings, config_path, load_settings

OWNERS = ["team:sales-analytics"]
# What each group's assets are made with, shown as kind tags in the UI's asset graph and catalog.
KINDS = {
    "raw": {"duckdb", "polars"}, "star": {"duckdb", "polars", "pandera"}, "labels": {"duckdb", "polars"},
    "features": {"duckdb", "polars"}, "models": {"lightgbm", "scikit-learn", "duckdb"},
    "scoring": {"duckdb", "csv"}, "validation": {"duckdb", "polars"}, "whitespace": {"duckdb", "csv"},
    "reports": {"duckdb", "csv"},
}
EXTRA_KINDS = {"als_embeddings": {"implicit", "parquet"}, "customer_features": {"pandera", "parquet"},
               "division_features": {"parquet"}}


def build_resources(settings: Settings, cfg_path: Path) -> dict:
    return {
        "io_manager": WarehouseIOManager(database=str(settings.warehouse_path), schema=WAREHOUSE_SCHEMA,
                                         snapshot_interval_minutes=settings.snapshot.interval_minutes,
                                         threads=settings.duckdb.threads),
        # The model frames and the cutoff's customer features and ALS rows: files beside the warehouse, written
        # without its lease (resources.files_dir).
        FILES_IO_MANAGER: PartitionFilesIOManager(database=str(settings.warehouse_path)),
        "warehouse": WarehouseResource(database=str(settings.warehouse_path),
                                       snapshot_interval_minutes=settings.snapshot.interval_minutes,
                                       threads=settings.duckdb.threads),
        "settings": GosalesSettings(config_path=str(cfg_path), home=str(settings.home)),
        "artifacts": ArtifactStore(root=str(settings.artifacts_dir)),
    }


def _labelled(spec: AssetSpec) -> AssetSpec:
    kinds = KINDS.get(spec.group_name or "", set()) | EXTRA_KINDS.get(spec.key.to_user_string(), set())
    return spec.merge_attributes(owners=OWNERS, kinds=kinds)


def build_assets(settings: Settings) -> list[AssetsDefinition]:
    assets = [*load_assets_from_modules([raw, star]), *build_feature_assets(settings),
              *build_division_cutoff_assets(settings), *build_whitespace_assets(settings),
              *build_top_accounts_assets(settings), *build_report_assets(settings)]
    return [a.map_asset_specs(_labelled) for a in assets]


def _job_name(a: AssetsDefinition) -> str:
    pd = a.partitions_def
    if pd is None:
        return GLOBAL_JOB
    return DIVISION_CUTOFF_JOB if {d.name for d in getattr(pd, "partitions_defs", [])} else CUTOFF_JOB


def build_definitions(settings: Settings, cfg_path: Path) -> Definitions:
    assets = build_assets(settings)
    by_job: dict[str, list] = {}
    for a in assets:
        by_job.setdefault(_job_name(a), []).extend(a.keys)
    # Runs carry the config checksum as a tag; the full resolved config is written per run by the
    # `settings` resource under <artifacts>/runs/<run_id>/config_resolved.yaml.
    tags = {"gosales/config_checksum": settings.checksum, "gosales/config_path": str(cfg_path)}
    # One job per partitioning: what a person launches from the Launchpad, what the in-process materialize runs
    # (a subset of assets per run) and what the drift sensor's retraining requests target. Native backfills use
    # Dagster's implicit asset jobs, with the same executor.
    jobs = {name: define_asset_job(name, selection=keys, tags=tags) for name, keys in sorted(by_job.items())}
    return Definitions(
        assets=assets,
        resources=build_resources(settings, cfg_path),
        jobs=[*jobs.values(), snapshot_job],
        # Every step of a run in the run's own process: no per-step process start and code-location import, and one
        # warehouse connection (resources are set up once per run) serves the whole run.
        executor=in_process_executor,
        sensors=[build_new_cutoff_sensor(settings), release_dead_runs_sensor,
                 build_snapshot_sensor(settings),
                 build_drift_alert_sensor(settings, [k for a in assets for k in a.check_keys],
                                          jobs[DIVISION_CUTOFF_JOB])],
    )


def _load() -> Definitions:
    path = config_path()
    return build_definitions(load_settings(path), path)


defs = _load()
