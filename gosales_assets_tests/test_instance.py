"""The local Dagster instance config: sqlite under DAGSTER_HOME, a run queue, one warehouse writer at a time."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance

from gosales_assets.definitions import build_definitions
from gosales_assets.resources import RANKING_POOL, WAREHOUSE_POOL, WAREHOUSE_POOLS

ROOT = Path(__file__).resolve().parents[1]


def test_dagster_yaml_gives_queue_sqlite_two_slot_pools_and_three_runs(tmp_path, monkeypatch):
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
        assert conc.run_queue_config.max_concurrent_runs == 3  # two warehouse runs and the cutoff's ranking
    assert (home / "history").is_dir()  # storage lives under DAGSTER_HOME


def test_every_step_that_touches_the_warehouse_is_in_a_warehouse_pool(project):
    """All in `gosales_warehouse`, but the cutoff's ranking (the chain of lists) and its report in their own pool."""
    defs = build_definitions(project.settings, project.config_path)
    graph = defs.resolve_asset_graph()
    pools = {assets_def.op.name: assets_def.op.pool for assets_def in graph.assets_defs}
    assert (pools.pop("whitespace_ranking"), pools.pop("top_accounts_report")) == (RANKING_POOL, RANKING_POOL)
    assert set(pools.values()) == {WAREHOUSE_POOL}, pools


def test_the_warehouse_pool_limits_exist_before_the_first_run(tmp_path, monkeypatch):
    """On a fresh instance Dagster's run queue counts an unknown pool as unlimited in its first iteration; the engine
    creates the pool's limit (dagster.yaml's two slots) before it launches or materializes anything."""
    from gosales_assets.runner import ensure_warehouse_pools

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        assert not set(WAREHOUSE_POOLS) & set(instance.event_log_storage.get_concurrency_keys())
        ensure_warehouse_pools(instance)
        ensure_warehouse_pools(instance)  # idempotent
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        assert {pool: limits[pool] for pool in WAREHOUSE_POOLS} == {WAREHOUSE_POOL: 2, RANKING_POOL: 2}


def test_pool_limits_made_from_an_older_default_follow_the_new_one_but_a_limit_set_by_hand_stays(tmp_path,
                                                                                                  monkeypatch):
    """An instance made under another dagster.yaml (here three slots) gets the current default once the engine runs
    again; a limit an operator set in the UI is theirs."""
    from gosales_assets.runner import ensure_warehouse_pools

    home = tmp_path / "dagster_home"
    home.mkdir()
    current = (ROOT / "dagster.yaml").read_text()
    assert "default_limit: 2" in current
    (home / "dagster.yaml").write_text(current.replace("default_limit: 2", "default_limit: 3"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        ensure_warehouse_pools(instance)
        instance.event_log_storage.set_concurrency_slots(RANKING_POOL, 5)  # by hand
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        assert {pool: limits[pool] for pool in WAREHOUSE_POOLS} == {WAREHOUSE_POOL: 3, RANKING_POOL: 5}
    (home / "dagster.yaml").write_text(current)
    with DagsterInstance.get() as instance:
        ensure_warehouse_pools(instance)
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        assert {pool: limits[pool] for pool in WAREHOUSE_POOLS} == {WAREHOUSE_POOL: 2, RANKING_POOL: 5}


def _polars_pool_of_a_run_process(env: dict) -> int:
    """The polars pool size of a fresh process that loads the code location as a run worker does (Dagster's
    `execute_run` imports the workspace's module, gosales_assets.definitions, before any step)."""
    code = "import gosales_assets.definitions, polars; print(polars.thread_pool_size())"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_a_run_process_uses_one_polars_thread_unless_the_environment_says_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    assert _polars_pool_of_a_run_process(env) == 1
    assert _polars_pool_of_a_run_process({**env, "POLARS_MAX_THREADS": "2"}) == 2
