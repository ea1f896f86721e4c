"""The one Definitions object: assets, checks, resources, jobs and sensors, built from the YAML configuration."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetsDefinition, Definitions, define_asset_job, load_assets_from_modules

from gosales_assets.assets import raw, star
from gosales_assets.assets.features import build_feature_assets
from gosales_assets.assets.labels import build_label_assets
from gosales_assets.assets.models import build_model_assets
from gosales_assets.assets.reports import build_report_assets, build_top_accounts_assets
from gosales_assets.assets.scoring import build_scoring_assets
from gosales_assets.assets.validation import build_validation_assets
from gosales_assets.assets.whitespace import build_whitespace_assets
from gosales_assets.automation.alerts import build_drift_alert_sensor
from gosales_assets.automation.backfill import build_backfill_job
from gosales_assets.automation.cutoffs import register_config_cutoffs_sensor
from gosales_assets.automation.monthly import build_monthly_pipeline_sensor, build_monthly_schedule
# One job per partitioning of the graph (a Dagster asset job runs assets that share a partitions definition);
# the names live in `jobs` and are re-exported here.
from gosales_assets.jobs import CUTOFF_JOB, DIVISION_CUTOFF_JOB, REPORTS_JOB, STAR_JOB, WHITESPACE_JOB
from gosales_assets.partitions import CUTOFF_PARTITIONS_NAME
from gosales_assets.resources import (
    WAREHOUSE_SCHEMA,
    ArtifactStore,
    GosalesSettings,
    WarehouseIOManager,
    WarehouseResource,
)
from gosales_assets.settings import Settings, config_path, load_settings


def build_resources(settings: Settings, cfg_path: Path) -> dict:
    return {
        "io_manager": WarehouseIOManager(database=str(settings.warehouse_path), schema=WAREHOUSE_SCHEMA),
        "warehouse": WarehouseResource(database=str(settings.warehouse_path)),
        "settings": GosalesSettings(config_path=str(cfg_path), home=str(settings.home)),
        "artifacts": ArtifactStore(root=str(settings.artifacts_dir)),
    }


def _partitioning(a: AssetsDefinition) -> str:
    groups = set(a.group_names_by_key.values())
    if groups == {"whitespace"} or (groups == {"reports"} and a.partitions_def is not None):
        return WHITESPACE_JOB  # per-cutoff reports run right after the cutoff's ranking
    if groups == {"reports"}:
        return REPORTS_JOB
    pd = a.partitions_def
    if pd is None:
        return STAR_JOB
    dims = {d.name for d in getattr(pd, "partitions_defs", [])}
    if dims == {"division", CUTOFF_PARTITIONS_NAME}:
        return DIVISION_CUTOFF_JOB
    if getattr(pd, "name", None) == CUTOFF_PARTITIONS_NAME:
        return CUTOFF_JOB
    raise ValueError(f"asset {a.key} has an unexpected partitions definition {pd}")


def build_assets(settings: Settings) -> list[AssetsDefinition]:
    return [*load_assets_from_modules([raw, star]), *build_label_assets(settings), *build_feature_assets(settings),
            *build_model_assets(settings), *build_scoring_assets(settings), *build_validation_assets(settings),
            *build_whitespace_assets(settings), *build_top_accounts_assets(settings), *build_report_assets(settings)]


def build_definitions(settings: Settings, cfg_path: Path) -> Definitions:
    assets = build_assets(settings)
    by_job: dict[str, list] = {}
    for a in assets:
        by_job.setdefault(_partitioning(a), []).extend(a.keys)
    # Runs carry the config checksum as a tag; the full resolved config is written per run by the
    # `settings` resource under <artifacts>/runs/<run_id>/config_resolved.yaml.
    tags = {"gosales/config_checksum": settings.checksum, "gosales/config_path": str(cfg_path)}
    jobs = {name: define_asset_job(name, selection=keys, tags=tags) for name, keys in sorted(by_job.items())}
    return Definitions(
        assets=assets,
        resources=build_resources(settings, cfg_path),
        jobs=[*jobs.values(), build_backfill_job()],
        schedules=[build_monthly_schedule(settings, jobs[CUTOFF_JOB])],
        sensors=[register_config_cutoffs_sensor,
                 build_monthly_pipeline_sensor(settings, jobs[DIVISION_CUTOFF_JOB], jobs[WHITESPACE_JOB]),
                 build_drift_alert_sensor(settings, [k for a in assets for k in a.check_keys],
                                          jobs[DIVISION_CUTOFF_JOB])],
    )


def _load() -> Definitions:
    path = config_path()
    return build_definitions(load_settings(path), path)


defs = _load()
