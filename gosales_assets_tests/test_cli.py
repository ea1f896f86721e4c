"""The console script as a user runs it: `gosales demo-data`, `gosales materialize`, `gosales info`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from gosales_assets_tests.conftest import new_project

ROOT = Path(__file__).resolve().parents[1]
GOSALES = str(Path(sys.executable).parent / "gosales")


def run(args, env):
    return subprocess.run([GOSALES, *args], env=env, capture_output=True, text=True, timeout=900)


def test_demo_data_command_writes_csv_and_manifest(tmp_path):
    env = {**os.environ, "GOSALES_HOME": str(tmp_path / "home")}
    out = tmp_path / "landing"
    proc = run(["demo-data", "--customers", "200", "--seed", "5", "--out", str(out), "--format", "csv",
                "--no-ground-truth"], env)
    assert proc.returncode == 0, proc.stderr
    assert "sales lines" in proc.stdout and "planted contract violations" in proc.stdout
    manifest = json.loads((out / "demo_manifest.json").read_text())
    assert manifest["customers"] == 200 and manifest["format"] == "csv"
    assert (out / "sales_log.csv").is_file() and (out / "customers.csv").is_file()
    assert not (out / "ground_truth.parquet").exists()


def test_invalid_config_is_reported_by_the_cli(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "gosales_assets" / "gosales.yaml").read_text().replace("window_months: 6",
                                                                                  "window_months: -2"))
    env = {**os.environ, "GOSALES_CONFIG": str(bad), "GOSALES_HOME": str(tmp_path / "home")}
    proc = run(["info"], env)
    assert proc.returncode == 2
    assert "labels.window_months" in proc.stderr and str(bad) in proc.stderr


@pytest.mark.slow
def test_materialize_runs_every_partition_into_the_instance(tmp_path, monkeypatch):
    project = new_project(tmp_path / "p", {"cutoffs": ["2026-03-31"]})
    home = project.settings.home
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "GOSALES_CONFIG": str(project.config_path), "GOSALES_HOME": str(home),
           "DAGSTER_HOME": str(dagster_home)}
    assert run(["demo-data", "--customers", "300", "--no-ground-truth"], env).returncode == 0
    proc = run(["materialize"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # star, the cutoff features, twelve division × cutoff partitions, the cutoff whitespace, the reports; the
    # first cutoff has no history to train on, so every model is `skipped` (held is data, not a failure)
    assert "16 runs: 4 ok, 12 with held models, 0 failed, 0 skipped" in proc.stdout, proc.stdout[-2000:]
    info = run(["info"], env)
    assert str(project.settings.warehouse_path) in info.stdout

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 16 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
        assert {r.tags["gosales/config_checksum"] for r in runs} == {project.settings.checksum}
        assert {r.tags.get("dagster/partition") for r in runs} >= {"2026-03", "2026-03|PDM"}
        for r in runs:  # the resolved config of every run is on disk
            assert (project.settings.artifacts_dir / "runs" / r.run_id / "config_resolved.yaml").is_file()
    assert "labels" in project.table_names() and "division_features" in project.table_names()


@pytest.mark.parametrize("args, message", [
    (["backfill"], "name the cutoffs to backfill"),
    (["backfill", "--cutoff", "2026-06-15"], "'2026-06-15' is not a month-end date"),
    (["backfill", "--cutoff", "2026-11-30"], "outside the cutoff partitions"),
    (["materialize", "--cutoff", "2023-12-31"], "outside the cutoff partitions"),
    (["backfill", "--from", "2026-06-30"], "--from and --to go together"),
    (["backfill", "--from", "2026-06-30", "--to", "2026-03-31"], "--to 2026-03-31 is before --from 2026-06-30"),
    (["backfill", "--cutoff", "2026-06-30", "--division", "Printers"], "unknown division(s) ['Printers']"),
])
def test_backfill_command_rejects_bad_selections(tmp_path, args, message):
    env = {**os.environ, "GOSALES_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dh")}
    proc = run(args, env)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_backfill_command_submits_a_native_backfill(tmp_path, monkeypatch):
    """`gosales backfill` hands the work to Dagster: one asset backfill of exactly the chosen partitions, which the
    daemon runs (none runs here, so the command says so and nothing is executed)."""
    project = new_project(tmp_path / "p", {"cutoffs": ["2026-03-31"]})
    dagster_home = project.settings.home / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "GOSALES_CONFIG": str(project.config_path), "GOSALES_HOME": str(project.settings.home),
           "DAGSTER_HOME": str(dagster_home)}
    proc = run(["backfill", "--from", "2026-05-31", "--to", "2026-06", "--division", "PDM", "--skip-star"], env)
    assert proc.returncode == 0, proc.stderr
    backfill_id = proc.stdout.split("backfill ", 1)[1].split(" ", 1)[0]
    assert f"/runs/b/{backfill_id}" in proc.stdout and "no Dagster daemon" in proc.stdout
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with DagsterInstance.get() as instance:
        backfill = instance.get_backfill(backfill_id)
        assert backfill.status.value == "REQUESTED" and backfill.tags["gosales/source"] == "cli"
        targets = {(k.asset_key.to_user_string(), str(k.partition_key))
                   for k in backfill.asset_backfill_data.target_subset.iterate_asset_partitions()}
        assert ("division_model", "2026-05|PDM") in targets and ("whitespace", "2026-06") in targets
        assert ("metrics_summary", "None") in targets  # the reports, not the star (--skip-star)
        assert not {a for a, _ in targets} & {"fact_transactions", "sales_log"}
        assert not any(p.endswith("|Simulation") for _, p in targets)
        assert instance.get_runs() == []  # nothing ran: the daemon does that


@pytest.mark.slow
def test_a_killed_materialize_is_finished_by_the_same_command(tmp_path, monkeypatch):
    """kill -9 in the middle of a division × cutoff run, then the same command: it marks the dead run failed (its
    process is gone), frees the warehouse pool and completes without any manual step; no partition has duplicate
    rows and every model file matches its registry row."""
    import signal
    import time

    import duckdb

    from gosales_assets.core.registry import model_file_version
    from gosales_assets.demo_data import generate_demo_data

    project = new_project(tmp_path / "p", {"cutoffs": ["2025-09-30", "2026-03-31"],
                                           "contracts": {"max_violation_rate": 1.0},
                                           "models": {"training_cutoffs": 1, "min_positives": 3}},
                          only_divisions=["Simulation", "PDM"])
    generate_demo_data(project.settings.landing_dir, customers=2000, seed=3,
                       settings=new_project(tmp_path / "full").settings, ground_truth=False)
    dagster_home = project.settings.home / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "GOSALES_CONFIG": str(project.config_path), "GOSALES_HOME": str(project.settings.home),
           "DAGSTER_HOME": str(dagster_home)}
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    first = subprocess.Popen([GOSALES, "materialize"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = None
    with DagsterInstance.get() as instance:
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and first.poll() is None:
            for started in instance.get_runs():  # a model-training run of the second cutoff
                if started.status == DagsterRunStatus.STARTED and started.tags.get(
                        "dagster/partition", "").startswith("2026-03|"):
                    first.send_signal(signal.SIGKILL)
                    killed = started.run_id
                    break
            time.sleep(0.05)
    first.wait(timeout=60)
    assert killed is not None, "the first materialize finished before it could be killed"

    again = run(["materialize"], env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"run {killed[:8]} marked failed: its process" in again.stdout
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(killed).status == DagsterRunStatus.FAILURE
    with duckdb.connect(str(project.settings.warehouse_path), read_only=True) as conn:
        for table in ("labels", "division_features", "icp_scores"):
            dup = conn.execute(f"select count(*) from (select division, cutoff_date, customer_id, count(*) n "
                               f"from {table} group by all having n > 1)").fetchone()[0]
            assert dup == 0, table
        models = conn.execute("select division, cutoff_date, status, model_version, model_path from division_model"
                              ).fetchall()
    assert len(models) == len({(d, c) for d, c, *_ in models}) == 4
    for _, _, status, version, path in models:
        assert status == "skipped" or model_file_version(path) == version
