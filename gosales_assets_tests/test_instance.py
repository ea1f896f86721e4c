"""The local Dagster instance config: sqlite under DAGSTER_HOME, a run queue, one warehouse writer at a time."""

import shutil
from pathlib import Path

from dagster import DagsterInstance

from gosales_assets.definitions import build_definitions
from gosales_assets.resources import WAREHOUSE_POOL

ROOT = Path(__file__).resolve().parents[1]


def test_dagster_yaml_gives_queue_sqlite_and_two_slot_pools(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        conc = instance.get_concurrency_config()
        assert conc.pool_config.default_pool_limit == 2
        assert conc.pool_config.pool_granularity.value == "run"
        assert conc.run_queue_config.max_concurrent_runs == 2
    assert (home / "history").is_dir()  # storage lives under DAGSTER_HOME


def test_every_step_that_touches_the_warehouse_is_in_the_pool(project):
    defs = build_definitions(project.settings, project.config_path)
    graph = defs.resolve_asset_graph()
    for assets_def in graph.assets_defs:
        assert assets_def.op.pool == WAREHOUSE_POOL, assets_def.keys


def test_the_warehouse_pool_limit_exists_before_the_first_run(tmp_path, monkeypatch):
    """On a fresh instance Dagster's run queue counts an unknown pool as unlimited in its first iteration; the engine
    creates the pool's limit (dagster.yaml's two slots) before it launches or materializes anything."""
    from gosales_assets.resources import WAREHOUSE_POOL
    from gosales_assets.runner import ensure_warehouse_pool

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        assert WAREHOUSE_POOL not in instance.event_log_storage.get_concurrency_keys()
        ensure_warehouse_pool(instance)
        ensure_warehouse_pool(instance)  # idempotent
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        assert limits[WAREHOUSE_POOL] == 2
