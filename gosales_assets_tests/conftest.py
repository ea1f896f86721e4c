"""Shared fixtures: a project configuration under a temporary GOSALES_HOME, landing files, materialization."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import AssetKey, AssetSelection, DagsterInstance, ExecuteInProcessResult, materialize

from gosales_assets.settings import DEFAULT_CONFIG_PATH, Settings, load_settings, merge_config

# Two xdist workers share two cores: OpenMP threads that spin while waiting (LightGBM's default) would
# oversubscribe them badly. Must be set before lightgbm is first imported (nothing above imports it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass
class Project:
    settings: Settings
    config_path: Path

    def materialize(self, selection: str | list[str] | AssetSelection | None = None, *,
                    instance: DagsterInstance | None = None, partition_key=None) -> ExecuteInProcessResult:
        """Materialize `selection` (default: the unpartitioned raw + star assets) in process, with the assets made
        by the same op as a selected one (`labels` and `division_features` are one step), as the UI selects them."""
        from gosales_assets.definitions import build_definitions

        defs = build_definitions(self.settings, self.config_path)
        assets = list(defs.assets or [])
        if selection is None:
            selection = AssetSelection.groups("raw", "star")
        elif not isinstance(selection, AssetSelection):
            selection = AssetSelection.assets(*([selection] if isinstance(selection, str) else selection))
        return materialize(
            assets,
            resources=dict(defs.resources or {}),
            instance=instance or DagsterInstance.ephemeral(),
            selection=selection.required_multi_asset_neighbors(),
            partition_key=partition_key,
            raise_on_error=False,
        )

    def with_overrides(self, overrides: dict) -> Project:
        """The same project (home, warehouse, artifacts) under a config with `overrides` merged in: what an operator
        does by editing gosales.yaml between two runs. Written beside the config, named by its content (settings are
        cached per config path)."""
        import hashlib

        doc = merge_config(yaml.safe_load(self.config_path.read_text()), overrides)
        text = yaml.safe_dump(doc, sort_keys=False)
        path = self.config_path.with_name(f"gosales_{hashlib.sha256(text.encode()).hexdigest()[:8]}.yaml")
        path.write_text(text)
        return Project(load_settings(path, home=self.settings.home), path)

    def table(self, name: str) -> pl.DataFrame:
        import duckdb

        with duckdb.connect(str(self.settings.warehouse_path), read_only=True) as conn:
            return conn.execute(f"select * from main.{name}").pl()

    def table_names(self) -> set[str]:
        import duckdb

        if not self.settings.warehouse_path.exists():
            return set()
        with duckdb.connect(str(self.settings.warehouse_path), read_only=True) as conn:
            return {r[0] for r in conn.execute("select table_name from information_schema.tables").fetchall()}


def new_project(root: Path, overrides: dict | None = None, *, only_divisions: list[str] | None = None) -> Project:
    """Write a config (the default one plus overrides) under `root` and return a Project rooted there.
    `only_divisions` restricts the engine, its SKU map and so the demo data to those divisions."""
    root.mkdir(parents=True, exist_ok=True)
    # One LightGBM thread per test worker (the suite runs two workers on two cores).
    doc = merge_config(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), {"models": {"num_threads": 1}})
    doc = merge_config(doc, overrides or {})
    if only_divisions:
        doc["divisions"] = list(only_divisions)
        doc["sku_map"] = {k: v for k, v in doc["sku_map"].items() if v in only_divisions}
        for section, key in (("labels", "per_division_window_months"), ("models", "gates")):
            per = doc[section][key] if section == "labels" else doc[section][key].get("per_division", {})
            for div in [d for d in per if d not in only_divisions]:
                del per[div]
        doc["labels"]["sku_denylist"] = [k for k in doc["labels"].get("sku_denylist", []) if k in doc["sku_map"]]
    cfg = root / "gosales.yaml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return Project(load_settings(cfg, home=root / "home"), cfg)


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    return lambda overrides=None, name="proj", **kw: new_project(tmp_path / name, overrides, **kw)


@pytest.fixture
def project(make_project) -> Project:
    return make_project()


def check_results(result: ExecuteInProcessResult) -> dict[tuple[str, str], object]:
    """{(asset, check_name): AssetCheckEvaluation} for every check evaluated in the run."""
    out = {}
    for e in result.all_events:
        if e.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = e.asset_check_evaluation_data
            out[(ev.asset_key.to_user_string(), ev.check_name)] = ev
    return out


def materialized(result: ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.all_events if e.is_step_materialization}


def latest_metadata(instance: DagsterInstance, key: str) -> dict:
    ev = instance.get_latest_materialization_event(AssetKey(key))
    assert ev is not None, f"{key} was never materialized"
    return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


CUTOFF_ASSETS = ["customer_features", "market_basket_rules", "als_embeddings"]  # the cutoff's feature assets


def demo_pipeline(root: Path, overrides: dict, *, customers: int, cutoffs: list[str], divisions: list[str],
                  division_assets: list[str], seed: int = 7, strict: bool = True) -> tuple[Project, DagsterInstance]:
    """A project on generated demo data with the star schema, the cutoff features of every cutoff and
    `division_assets` of every division × cutoff materialized (in date order), in one ephemeral instance.
    `strict=False` tolerates partitions held back by a check (e.g. a model that missed its gate)."""
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.partitions import cutoff_key, multi_key

    project = new_project(root, {"cutoffs": cutoffs, **overrides})
    generate_demo_data(project.settings.landing_dir, customers=customers, seed=seed, settings=project.settings,
                       ground_truth=False)
    instance = DagsterInstance.ephemeral()
    assert project.materialize(instance=instance).success
    for c in cutoffs:
        # With the roster's activity, which the same step makes and every division's drift at C reads.
        assert project.materialize([*CUTOFF_ASSETS, "roster_activity"], instance=instance,
                                   partition_key=cutoff_key(c)).success
        for d in divisions:
            result = project.materialize(division_assets, instance=instance, partition_key=multi_key(d, c))
            assert result.success or not strict, (d, c)
    return project, instance


def open_elsewhere(database: str | Path) -> subprocess.CompletedProcess:
    """Open and close the DuckDB file `database` from another process (as another run or an analyst would): the
    finished process, `returncode` 0 when the file was free (else its stderr says why)."""
    return subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(database)!r}).close()"],
                          capture_output=True, text=True)


def after_the_other_starts(both_started: threading.Barrier, compute: Callable) -> Callable:
    """`compute`, made to wait at `both_started` first: two parts of a step wrapped with one barrier of 2 each wait
    for the other to start, so a step that runs them one after the other breaks the barrier and fails."""
    def wrapped(*args, **kwargs):
        both_started.wait()
        return compute(*args, **kwargs)
    return wrapped
