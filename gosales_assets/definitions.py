"""The one Definitions object: assets, checks, resources and jobs, built from the YAML configuration."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetSelection, Definitions, define_asset_job, load_assets_from_modules

from gosales_assets.assets import raw, star
from gosales_assets.resources import (
    WAREHOUSE_SCHEMA,
    ArtifactStore,
    GosalesSettings,
    WarehouseIOManager,
    WarehouseResource,
)
from gosales_assets.settings import Settings, config_path, load_settings

ALL_ASSETS_JOB = "gosales_all"


def build_resources(settings: Settings, cfg_path: Path) -> dict:
    return {
        "io_manager": WarehouseIOManager(database=str(settings.warehouse_path), schema=WAREHOUSE_SCHEMA),
        "warehouse": WarehouseResource(database=str(settings.warehouse_path)),
        "settings": GosalesSettings(config_path=str(cfg_path), home=str(settings.home)),
        "artifacts": ArtifactStore(root=str(settings.artifacts_dir)),
    }


def build_definitions(settings: Settings, cfg_path: Path) -> Definitions:
    assets = load_assets_from_modules([raw, star])
    # Runs carry the config checksum as a tag; the full resolved config is written per run by the
    # `settings` resource under <artifacts>/runs/<run_id>/config_resolved.yaml.
    tags = {"gosales/config_checksum": settings.checksum, "gosales/config_path": str(cfg_path)}
    return Definitions(
        assets=assets,
        resources=build_resources(settings, cfg_path),
        jobs=[define_asset_job(ALL_ASSETS_JOB, selection=AssetSelection.all(), tags=tags,
                               description="Materialize the whole graph")],
    )


def _load() -> Definitions:
    path = config_path()
    return build_definitions(load_settings(path), path)


defs = _load()
