"""Automation on the graph: the `new_cutoff` sensor turns a new month-end in the data into one native backfill
(its request is executed here in process, the way the daemon would run the same partitions), and the drift
alert sensor; both evaluated with Dagster's sensor test context against a real temporary instance."""

import datetime as dt
import json

import polars as pl
import pytest
from dagster import AssetKey, build_sensor_context, instance_for_test
from dagster._core.definitions.events import AssetKeyPartitionKey

from gosales_assets.automation.cutoffs import new_cutoff_targets, new_cutoffs
from gosales_assets.jobs import CUTOFF_TAG, SOURCE_TAG, STAGE_TAG
from gosales_assets.partitions import multi_key
from gosales_assets_tests.conftest import new_project

D = dt.date


def test_new_cutoffs_are_the_month_ends_after_the_cursor(project):
    # default data end 2026-10-31
    assert new_cutoffs(project.settings, None) == [D(2026, 10, 31)]
    assert new_cutoffs(project.settings, "2026-10") == []
    assert new_cutoffs(project.settings, "2026-07") == [D(2026, 8, 31), D(2026, 9, 30), D(2026, 10, 31)]


def test_closed_windows_are_refreshed_only_where_the_cutoff_was_built(project):
    """2026-10 closes the 6-month windows of 2026-04: its division × cutoff partitions are made again (the whole op:
    labels, frame, model, scores, drift, peers, validation) when 2026-04 was built; a month never built has no roster
    to label, so nothing of it is targeted."""
    from gosales_assets.assets.division_cutoff import DIVISION_CUTOFF_ASSETS
    from gosales_assets.definitions import build_definitions

    graph = build_definitions(project.settings, project.config_path).resolve_asset_graph()
    settings, d = project.settings, project.settings.divisions[0]

    def refreshed(built):
        targets = new_cutoff_targets(graph, settings, [D(2026, 10, 31)], built=built)
        return {t.asset_key.to_user_string() for t in targets if t.partition_key == multi_key(d, "2026-04-30")}

    assert settings.window_months(d) == 6
    assert refreshed({"2026-04"}) == set(DIVISION_CUTOFF_ASSETS)
    assert refreshed(set()) == set()
    assert refreshed(None) == set(DIVISION_CUTOFF_ASSETS)


@pytest.mark.slow
def test_new_cutoff_backfill_and_drift_alerts_against_a_real_instance(tmp_path):
    """One month of operation: the configured cutoffs are built; the sensor finds the newest month-end of the data
    (2026-10) and requests one backfill of it, with the division × cutoff partitions of 2026-04 (whose 6-month window
    it closes: made again with their outcomes, the model reused, not fitted again); running exactly those partitions
    publishes the new cutoff; the sensor then stays quiet. The drift sensor alerts once and requests retraining; a
    partition made again with the same findings (the refresh, the retraining) raises nothing new."""
    from gosales_assets.definitions import build_definitions
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.runner import materialize, materialize_targets

    # Gates and positives relaxed: this test is about orchestration, not model quality; drift thresholds at ~0
    # and no noise requirement (alpha 1) so every scored partition reports hard drift (from its activity against
    # the same months a year earlier: its PSIs compare October with April, across seasons, so at most warn).
    project = new_project(tmp_path / "p", {
        "cutoffs": ["2025-10-31", "2026-04-30"],
        "models": {"training_cutoffs": 1, "min_positives": 3, "lightgbm": {"min_child_samples": [10]},
                   "gates": {"auc_min": 0.0, "lift10_min": 0.0, "cal_mae_max": 1.0, "peer_gate": False,
                             "auc_above_chance": False}},
        "drift": {"psi_warn": 0.0, "psi_hard": 1e-9, "activity_factor_warn": 1.0, "activity_factor_hard": 1.000001,
                  "alpha": 1.0, "top_features": 3},
        "automation": {"retrain_on_hard_drift": True},
        # The sales log of all twelve divisions; lines of the other ten are quarantined as unknown SKUs.
        "contracts": {"max_violation_rate": 1.0},
    }, only_divisions=["Simulation", "PDM"])
    generate_demo_data(project.settings.landing_dir, customers=2000, seed=3,
                       settings=new_project(tmp_path / "full").settings, ground_truth=False)
    defs = build_definitions(project.settings, project.config_path)
    repo = defs.get_repository_def()
    new_cutoff, alerts_sensor = repo.get_sensor_def("new_cutoff"), repo.get_sensor_def("drift_alerts")
    resources = dict(defs.resources or {})
    with instance_for_test() as instance:
        outcomes = materialize(defs, instance, project.settings, reports=False, log=lambda _: None)
        assert {o.status for o in outcomes} <= {"ok", "held"}, [o for o in outcomes if o.status not in ("ok", "held")]
        assert instance.get_materialized_partitions(AssetKey("icp_scores")) >= {"2026-04|Simulation", "2026-04|PDM"}

        def sense(sensor, cursor=None):
            with build_sensor_context(instance=instance, cursor=cursor, repository_def=repo,
                                      resources=resources) as context:
                return sensor.evaluate_tick(context)

        # ---- new_cutoff: one backfill of the newest month-end ----------------------------------------------
        tick = sense(new_cutoff)
        [request] = tick.run_requests
        assert request.requires_backfill_daemon() and tick.cursor == "2026-10"
        assert request.tags[SOURCE_TAG] == "new-cutoff" and request.tags[CUTOFF_TAG] == "2026-10"
        targets = set(request.asset_graph_subset.iterate_asset_partitions())
        assert AssetKeyPartitionKey(AssetKey("whitespace"), "2026-10") in targets
        assert AssetKeyPartitionKey(AssetKey("fact_transactions")) in targets  # the new data first
        published_before = project.table("division_model").filter(pl.col("cutoff_date") == D(2026, 4, 30))
        for d in ("Simulation", "PDM"):
            assert AssetKeyPartitionKey(AssetKey("division_model"), multi_key(d, "2026-10-31")) in targets
            for a in ("labels", "division_features", "division_model", "forward_validation"):  # 2026-04 closes
                assert AssetKeyPartitionKey(AssetKey(a), multi_key(d, "2026-04-30")) in targets
        results = materialize_targets(defs, instance, targets, log=lambda _: None)
        assert {o.status for o in results} <= {"ok", "held"}
        # 2026-04 made again: its models trained on the same rows, so reused (the same files, the same versions)
        refreshed = project.table("division_model").filter(pl.col("cutoff_date") == D(2026, 4, 30))
        assert refreshed.select("division", "model_version", "status").sort("division").equals(
            published_before.select("division", "model_version", "status").sort("division"))
        reused = [e.asset_materialization.metadata["model_reused"].value for e in instance.fetch_materializations(
            AssetKey("division_model"), limit=20).records if e.asset_materialization.partition.startswith("2026-04|")]
        assert reused[:2] == [True, True] and reused[2:] == [False, False], reused  # newest first
        models = project.table("division_model").filter(pl.col("cutoff_date") == D(2026, 10, 31))
        assert set(models.get_column("training_cutoffs")) == {"2026-04-30"}  # the window that just closed
        assert project.table("whitespace").filter(pl.col("cutoff_date") == D(2026, 10, 31)).height > 0
        validated = project.table("forward_validation").filter(pl.col("cutoff_date") == D(2026, 4, 30))
        assert set(validated.get_column("status")) == {"validated"} and validated.get_column("auc").is_not_null().all()

        quiet = sense(new_cutoff, cursor=tick.cursor)
        assert quiet.run_requests == [] and "was launched already" in quiet.skip_message
        built = sense(new_cutoff)  # a fresh cursor on an instance that already built the newest cutoff
        assert built.run_requests == [] and built.cursor == "2026-10"

        # ---- drift alert sensor ----------------------------------------------------------------------------
        drifted = {f"{c}|{d}" for c in ("2026-04", "2026-10") for d in ("Simulation", "PDM")}
        assert instance.get_materialized_partitions(AssetKey("drift")) >= drifted
        raised = sense(alerts_sensor)
        alert_dir = project.settings.artifacts_dir / "alerts"
        files = sorted(alert_dir.glob("alert_*.json"))
        assert len(files) == 1
        alert = json.loads(files[0].read_text())
        assert alert["max_severity"] == "hard" and set(alert["partitions"]) >= drifted
        drift_items = [i for i in alert["items"] if i["source"] == "drift"]
        assert {i["partition"] for i in drift_items} >= drifted
        assert all(i["findings"] and i["findings"][0]["severity"] == "hard" for i in drift_items)
        # the hard drift's failed no_hard_drift check is the same finding: reported once, as drift
        assert not [i for i in alert["items"] if i["check"] == "no_hard_drift"]
        for item in drift_items:
            run = instance.get_run_by_id(item["run_id"])
            assert run.tags["gosales/alert"] == "hard" and run.tags["gosales/alert_file"] == files[0].name
        assert {str(r.partition_key) for r in raised.run_requests} >= drifted
        assert all(r.tags[STAGE_TAG] == "retrain" for r in raised.run_requests)

        again = sense(alerts_sensor, cursor=raised.cursor)  # the cursor: each alert is raised once
        assert again.run_requests == [] and len(list(alert_dir.glob("alert_*.json"))) == 1

        retrain = next(r for r in raised.run_requests if str(r.partition_key) == "2026-10|PDM")
        job = defs.resolve_job_def(retrain.job_name)
        assert job.execute_in_process(instance=instance, partition_key=retrain.partition_key, tags=retrain.tags,
                                      asset_selection=retrain.asset_selection, raise_on_error=False).success
        after_retrain = sense(alerts_sensor, cursor=raised.cursor)
        # the data did not change: the same model, the same drift findings, the same failed checks — nothing new
        assert "no new drift finding" in after_retrain.skip_message and after_retrain.run_requests == []
        assert len(list(alert_dir.glob("alert_*.json"))) == 1
        index = [json.loads(line) for line in (alert_dir / "alerts.jsonl").read_text().splitlines()]
        assert [e["max_severity"] for e in index] == ["hard"]


def test_release_dead_runs_sensor_frees_the_pool_of_a_killed_run(project):
    """A started run whose process is gone is marked failed (so its warehouse pool slot is free); a run whose
    process lives, or that ran on another host, is left alone."""
    import os
    import socket
    import subprocess
    import sys

    from dagster import DagsterRunStatus, EventLogEntry
    from dagster._core.events import DagsterEvent

    from gosales_assets.definitions import build_definitions
    from gosales_assets.jobs import HOST_TAG, PID_TAG

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer exists
    defs = build_definitions(project.settings, project.config_path)
    job = defs.resolve_job_def("gosales_global")
    sensor = defs.get_repository_def().get_sensor_def("release_dead_runs")
    with instance_for_test() as instance:
        runs = {}
        for name, host, pid in [("dead", socket.gethostname(), gone.pid), ("alive", socket.gethostname(), os.getpid()),
                                ("elsewhere", "another-host", gone.pid)]:
            run = instance.create_run_for_job(job, tags={HOST_TAG: host, PID_TAG: str(pid)})
            instance.handle_new_event(EventLogEntry(  # the run started (its process then got killed, or not)
                error_info=None, level="debug", user_message="", run_id=run.run_id, timestamp=0.0,
                dagster_event=DagsterEvent("PIPELINE_START", job_name=job.name)))
            runs[name] = run.run_id
        assert {n: instance.get_run_by_id(r).status for n, r in runs.items()} == dict.fromkeys(
            runs, DagsterRunStatus.STARTED)
        with build_sensor_context(instance=instance, repository_def=defs.get_repository_def()) as context:
            result = sensor.evaluate_tick(context)
        assert f"marked 1 dead run(s) failed: {runs['dead']}" == result.skip_message
        assert instance.get_run_by_id(runs["dead"]).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(runs["alive"]).status == DagsterRunStatus.STARTED
        assert instance.get_run_by_id(runs["elsewhere"]).status == DagsterRunStatus.STARTED
