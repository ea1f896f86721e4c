"""The monthly schedule and the pipeline sensor: pure planning rules, then Dagster's schedule and sensor test
contexts against a real temporary instance, executing every requested run for real."""

import datetime as dt
import json

import polars as pl
import pytest
from dagster import (
    AssetKey,
    DagsterRunStatus,
    RunsFilter,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from gosales_assets.automation.monthly import PlannedRun, monthly_plan, newest_month_end, next_stage
from gosales_assets.jobs import CUTOFF_JOB, DIVISION_CUTOFF_JOB, RUN_KEY_TAG, STAGE_TAG, WHITESPACE_JOB
from gosales_assets.partitions import multi_key
from gosales_assets_tests.conftest import new_project

S, F, R = DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.STARTED


@pytest.mark.parametrize("tick, expected", [
    ("2026-11-01", "2026-10-31"), ("2026-11-30", "2026-10-31"), ("2026-03-15", "2026-02-28"),
    ("2024-03-01", "2024-02-29"), ("2026-01-01", "2025-12-31")])
def test_newest_month_end_is_the_last_complete_month(tick, expected):
    assert newest_month_end(dt.date.fromisoformat(tick)) == dt.date.fromisoformat(expected)


def test_monthly_plan_registers_only_months_the_data_reaches(project):
    plan = monthly_plan(dt.date(2026, 11, 1), project.settings)  # default data end 2026-10-31
    assert plan.skip_reason is None and plan.cutoff == dt.date(2026, 10, 31)
    assert [(r.job, r.partition_key, r.stage) for r in plan.runs] == [(CUTOFF_JOB, "2026-10-31", "cutoff")]
    late = monthly_plan(dt.date(2026, 12, 1), project.settings)
    assert late.runs == [] and "2026-11-30 is after the data end 2026-10-31" in late.skip_reason


def test_next_stage_orders_the_pipeline(make_project):
    settings = make_project({"labels": {"per_division_window_months": {"CPE": 12}}},
                            only_divisions=["Solidworks", "CPE"]).settings
    c = "2026-10-31"
    registered = ["2025-10-31|CPE", "2026-04-30|Solidworks", "2026-04-30|CPE", "2026-07-31|Solidworks"]
    assert next_stage(settings, c, registered, []) == []
    assert next_stage(settings, c, registered, [("cutoff", None, R)]) == []
    assert next_stage(settings, c, registered, [("cutoff", None, F)]) == []
    first = next_stage(settings, c, registered, [("cutoff", None, S)])
    # each division validates the cutoff whose own window (6 and 12 months) has just closed, before any
    # division run of c: that cutoff's refreshed labels are the newest the models at c may train on
    assert [(r.stage, r.division, str(r.partition_key)) for r in first] == [
        ("validation", "Solidworks", "2026-04-30|Solidworks"), ("validation", "CPE", "2025-10-31|CPE")]
    assert first[0].assets == ("labels", "forward_validation")
    half = [("cutoff", None, S), ("validation", "Solidworks", S), ("validation", "CPE", R)]
    assert [r.stage for r in next_stage(settings, c, registered, half)] == ["validation", "validation"]
    validated = [("cutoff", None, S), ("validation", "Solidworks", S), ("validation", "CPE", F)]
    second = next_stage(settings, c, registered, validated)
    assert [(r.stage, str(r.partition_key)) for r in second if r.stage == "division"] == [
        ("division", "2026-10-31|Solidworks"), ("division", "2026-10-31|CPE")]
    assert len({r.run_key for r in second}) == 4
    # whitespace only once every division run has finished and one of them succeeded
    running = [*validated, ("division", "Solidworks", S), ("division", "CPE", R)]
    assert WHITESPACE_JOB not in {r.job for r in next_stage(settings, c, registered, running)}
    all_failed = [*validated, ("division", "Solidworks", F), ("division", "CPE", F)]
    assert WHITESPACE_JOB not in {r.job for r in next_stage(settings, c, registered, all_failed)}
    done = [*validated, ("division", "Solidworks", S), ("division", "CPE", F)]
    ws = [r for r in next_stage(settings, c, registered, done) if r.job == WHITESPACE_JOB]
    assert [(r.stage, r.partition_key) for r in ws] == [("whitespace", c)]
    # no validation where no scores were published at the closed cutoff
    assert {r.stage for r in next_stage(settings, c, ["2026-04-30|CPE"], [("cutoff", None, S)])} == {"division"}


def test_planned_run_tags_and_keys():
    run = PlannedRun(DIVISION_CUTOFF_JOB, "validation", "2026-10-31", division="PDM", partition_cutoff="2026-04-30",
                     assets=("labels", "forward_validation"))
    req = run.run_request()
    assert req.run_key == "monthly:2026-10-31:validation:PDM" == req.tags[RUN_KEY_TAG]
    assert req.partition_key == multi_key("PDM", "2026-04-30") and req.job_name == DIVISION_CUTOFF_JOB
    assert {k.to_user_string() for k in req.asset_selection} == {"labels", "forward_validation"}


def _execute(defs, instance, request):
    """Run a requested run in process, the way the daemon would launch it (same job, partition, tags)."""
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags,
                                  asset_selection=request.asset_selection, raise_on_error=False)


def _errors(result) -> list[str]:
    return [e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure]


@pytest.mark.slow
def test_schedule_and_sensors_against_a_real_instance(tmp_path):
    """One month of operation: backfill two cutoffs; the schedule opens 2026-10-31; the pipeline sensor carries
    it through divisions, the forward validation of 2026-04-30 and whitespace; the drift sensor alerts once
    and requests a retraining run (but not for drift that came from a retraining run)."""
    from gosales_assets.definitions import build_definitions
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.runner import backfill

    # Data to 2026-10-31. Gates and positives relaxed: this test is about orchestration, not model quality;
    # drift thresholds at ~0 so every scored partition reports hard drift.
    project = new_project(tmp_path / "p", {
        "cutoffs": ["2025-10-31", "2026-04-30"],
        "models": {"training_cutoffs": 1, "min_positives": 3, "lightgbm": {"min_child_samples": [10]},
                   "gates": {"auc_min": 0.0, "lift10_min": 0.0, "cal_mae_max": 1.0}},
        "drift": {"psi_warn": 0.0, "psi_hard": 1e-9, "top_features": 3},
        "automation": {"retrain_on_hard_drift": True},
        # The sales log of all twelve divisions; lines of the other ten are quarantined as unknown SKUs.
        "contracts": {"max_violation_rate": 1.0},
    }, only_divisions=["Simulation", "PDM"])
    full = new_project(tmp_path / "full")
    generate_demo_data(project.settings.landing_dir, customers=2000, seed=3, settings=full.settings,
                       ground_truth=False)
    defs = build_definitions(project.settings, project.config_path)
    repo = defs.get_repository_def()
    schedule, pipeline = repo.get_schedule_def("monthly_cutoff"), repo.get_sensor_def("monthly_pipeline")
    alerts_sensor = repo.get_sensor_def("drift_alerts")
    resources = dict(defs.resources or {})
    with instance_for_test() as instance:
        outcomes = backfill(defs, instance, project.settings, reports=False, log=lambda _: None)
        assert all(o.success for o in outcomes), [o for o in outcomes if not o.success]
        assert instance.get_materialized_partitions(AssetKey("icp_scores")) >= {
            "2026-04-30|Simulation", "2026-04-30|PDM"}

        def tick(day: str):
            when = dt.datetime.fromisoformat(day).replace(hour=6, tzinfo=dt.timezone.utc)
            return schedule.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=when,
                                                                 repository_def=repo, resources=resources))

        def sense(sensor, cursor=None):
            # instance_ref as the daemon passes it: Dagster resolves dynamic partition keys through it
            return sensor.evaluate_tick(build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                                             cursor=cursor, repository_def=repo, resources=resources))

        # ---- monthly schedule + pipeline sensor ----------------------------------------------------------
        late = tick("2026-12-01")  # past the data end: registers nothing
        assert late.run_requests == [] and "after the data end" in late.skip_message
        assert "2026-11-30" not in instance.get_dynamic_partitions("cutoff")

        first = tick("2026-11-01")
        assert [(r.job_name, r.partition_key, r.tags[STAGE_TAG]) for r in first.run_requests] == [
            (CUTOFF_JOB, "2026-10-31", "cutoff")]
        assert "2026-10-31" in instance.get_dynamic_partitions("cutoff")
        assert sense(pipeline).run_requests == []  # nothing to carry on before the cutoff features ran
        assert _execute(defs, instance, first.run_requests[0]).success

        again = tick("2026-11-01")  # the schedule firing twice requests nothing new
        assert again.run_requests == [] and "requested already" in again.skip_message

        stage2 = sense(pipeline)
        got = sorted((r.tags[STAGE_TAG], str(r.partition_key)) for r in stage2.run_requests)
        assert got == [("validation", "2026-04-30|PDM"), ("validation", "2026-04-30|Simulation")]
        assert len(sense(pipeline).run_requests) == 2  # not launched yet: still wanted, under the same keys
        for request in stage2.run_requests:
            result = _execute(defs, instance, request)
            assert result.success, (request.run_key, _errors(result))
        validated = project.table("forward_validation")
        assert set(validated.select("division", pl.col("cutoff_date").cast(pl.String)).rows()) == {
            ("Simulation", "2026-04-30"), ("PDM", "2026-04-30")}

        divisions = sense(pipeline)
        got = sorted((r.tags[STAGE_TAG], str(r.partition_key)) for r in divisions.run_requests)
        assert got == [("division", "2026-10-31|PDM"), ("division", "2026-10-31|Simulation")]
        for request in divisions.run_requests:
            result = _execute(defs, instance, request)
            assert result.success, (request.run_key, _errors(result))

        stage3 = sense(pipeline)
        assert [(r.job_name, r.partition_key) for r in stage3.run_requests] == [(WHITESPACE_JOB, "2026-10-31")]
        assert _execute(defs, instance, stage3.run_requests[0]).success
        done = sense(pipeline)
        assert done.run_requests == [] and "no scheduled cutoff is waiting" in done.skip_message
        runs = instance.get_runs(RunsFilter(tags={"gosales/pipeline": "monthly"}))
        assert len(runs) == 6 and len({r.tags[RUN_KEY_TAG] for r in runs}) == 6

        # ---- drift alert sensor ----------------------------------------------------------------------------
        drifted = {f"{c}|{d}" for c in ("2026-04-30", "2026-10-31") for d in ("Simulation", "PDM")}
        assert instance.get_materialized_partitions(AssetKey("drift")) == drifted
        raised = sense(alerts_sensor)
        alert_dir = project.settings.artifacts_dir / "alerts"
        files = sorted(alert_dir.glob("alert_*.json"))
        assert len(files) == 1
        alert = json.loads(files[0].read_text())
        assert alert["max_severity"] == "hard" and set(alert["partitions"]) >= drifted
        drift_items = [i for i in alert["items"] if i["source"] == "drift"]
        assert {i["partition"] for i in drift_items} == drifted
        assert all(i["findings"] and i["findings"][0]["severity"] == "hard" for i in drift_items)
        # the hard drift's failed no_hard_drift check is the same finding: reported once, as drift
        assert not [i for i in alert["items"] if i["check"] == "no_hard_drift"]
        for item in drift_items:
            run = instance.get_run_by_id(item["run_id"])
            assert run.tags["gosales/alert"] == "hard" and run.tags["gosales/alert_file"] == files[0].name
        assert sorted(str(r.partition_key) for r in raised.run_requests) == sorted(drifted)
        assert all(r.tags[STAGE_TAG] == "retrain" for r in raised.run_requests)

        quiet = sense(alerts_sensor, cursor=raised.cursor)  # the cursor: each alert is raised once
        assert quiet.run_requests == [] and len(list(alert_dir.glob("alert_*.json"))) == 1

        retrain = next(r for r in raised.run_requests if str(r.partition_key) == "2026-10-31|PDM")
        assert _execute(defs, instance, retrain).success
        after_retrain = sense(alerts_sensor, cursor=raised.cursor)
        assert len(list(alert_dir.glob("alert_*.json"))) == 2  # the retrained partition still drifts: alerted
        assert after_retrain.run_requests == []  # ... but a retraining run's drift does not request another
        index = [json.loads(line) for line in (alert_dir / "alerts.jsonl").read_text().splitlines()]
        assert [e["max_severity"] for e in index] == ["hard", "hard"]
