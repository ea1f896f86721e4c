"""The runner tells a run held back by a blocking check from a run that failed with an error."""

import re

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    DagsterInstance,
    Definitions,
    Output,
    asset,
    define_asset_job,
)

from gosales_assets.definitions import STAR_JOB
from gosales_assets.runner import materialize_all


def _defs(fail_with_error: bool) -> Definitions:
    @asset(check_specs=[AssetCheckSpec("gate", asset="thing", blocking=True)])
    def thing():
        if fail_with_error:
            raise RuntimeError("boom")
        yield Output(1)
        yield AssetCheckResult(check_name="gate", passed=False, severity=AssetCheckSeverity.ERROR,
                               description="auc 0.5 < 0.7 (short by 0.2)")

    return Definitions(assets=[thing], jobs=[define_asset_job(STAR_JOB, selection=["thing"])])


@pytest.mark.parametrize("fail_with_error, blocked", [(False, True), (True, False)])
def test_held_vs_failed(project, fail_with_error, blocked):
    lines: list[str] = []
    outcomes = materialize_all(_defs(fail_with_error), DagsterInstance.ephemeral(), project.settings, log=lines.append)
    assert len(outcomes) == 1  # the star job failed, so nothing downstream was attempted
    assert not outcomes[0].success and outcomes[0].blocked_by_checks is blocked
    status = next(line for line in lines if STAR_JOB in line)
    assert status.startswith("held" if blocked else "FAIL")
    assert lines[-1] == "star schema failed; not materializing downstream partitions"
    if blocked:
        assert "short by 0.2" in outcomes[0].failed_checks[0]
    else:
        assert "       error: RuntimeError: boom" in lines


def test_plan_runs_orders_every_partition_by_dependency(project):
    from gosales_assets.definitions import build_definitions
    from gosales_assets.jobs import CUTOFF_JOB, DIVISION_CUTOFF_JOB, REPORTS_JOB, WHITESPACE_JOB
    from gosales_assets.runner import plan_runs

    defs = build_definitions(project.settings, project.config_path)
    plan = plan_runs(defs, ["2026-06-30", "2026-03-31"], ["PDM", "CPE"], star=False)
    assert [(job, str(key)) for job, key in plan] == [
        (CUTOFF_JOB, "2026-03-31"), (DIVISION_CUTOFF_JOB, "2026-03-31|PDM"), (DIVISION_CUTOFF_JOB, "2026-03-31|CPE"),
        (WHITESPACE_JOB, "2026-03-31"),
        (CUTOFF_JOB, "2026-06-30"), (DIVISION_CUTOFF_JOB, "2026-06-30|PDM"), (DIVISION_CUTOFF_JOB, "2026-06-30|CPE"),
        (WHITESPACE_JOB, "2026-06-30"), (REPORTS_JOB, "None")]
    assert plan_runs(defs, [], ["PDM"])[0][0] == STAR_JOB


@pytest.mark.parametrize("kwargs, message", [
    ({"cutoffs": ["2026-06-15"]}, "not a month-end date"),
    ({"cutoffs": ["2026-11-30"]}, "after the data end 2026-10-31"),
    ({"divisions": ["Printers"]}, "unknown division(s) ['Printers']"),
])
def test_backfill_rejects_bad_selections_before_running_anything(project, kwargs, message):
    from gosales_assets.definitions import build_definitions
    from gosales_assets.runner import backfill

    instance = DagsterInstance.ephemeral()
    with pytest.raises(ValueError, match=re.escape(message)):
        backfill(build_definitions(project.settings, project.config_path), instance, project.settings, **kwargs)
    assert instance.get_runs() == [] and instance.get_dynamic_partitions("cutoff") == []


@pytest.mark.slow
def test_backfill_job_runs_the_chosen_cutoff_in_one_process(tmp_path):
    """The `gosales_backfill` job (what an operator launches from the UI): one run whose op registers the new
    cutoff and runs its partitions as runs of their own, tagged with one backfill id."""
    from gosales_assets.definitions import build_definitions
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.jobs import BACKFILL_JOB, BACKFILL_TAG
    from gosales_assets_tests.conftest import new_project

    # The sales log of all twelve divisions; lines of the other ten are quarantined as unknown SKUs.
    project = new_project(tmp_path / "p", {"cutoffs": ["2026-03-31"], "contracts": {"max_violation_rate": 1.0}},
                          only_divisions=["Simulation", "PDM"])
    generate_demo_data(project.settings.landing_dir, customers=400, seed=3,
                       settings=new_project(tmp_path / "full").settings, ground_truth=False)
    defs = build_definitions(project.settings, project.config_path)
    instance = DagsterInstance.ephemeral()
    config = {"ops": {"backfill_cutoffs": {"config": {"cutoffs": ["2026-06-30"], "skip_reports": True}}}}
    result = defs.resolve_job_def(BACKFILL_JOB).execute_in_process(instance=instance, run_config=config)
    assert result.success
    assert set(instance.get_dynamic_partitions("cutoff")) == {"2026-03-31", "2026-06-30"}
    inner = [r for r in instance.get_runs() if r.job_name != BACKFILL_JOB]
    # star, cutoff features, two divisions, whitespace of 2026-06-30 only; no reports
    assert sorted((r.job_name, r.tags.get("dagster/partition", "")) for r in inner) == [
        ("gosales_cutoff", "2026-06-30"), ("gosales_division_cutoff", "2026-06-30|PDM"),
        ("gosales_division_cutoff", "2026-06-30|Simulation"), ("gosales_star", ""),
        ("gosales_whitespace", "2026-06-30")]
    assert len({r.tags[BACKFILL_TAG] for r in inner}) == 1
    outcomes = project.settings.artifacts_dir / "runs" / result.run_id / "backfill_outcomes.md"
    assert outcomes.read_text().count("| ok |") + outcomes.read_text().count("| held |") == 5

    bad = {"ops": {"backfill_cutoffs": {"config": {"cutoffs": ["2026-06-15"]}}}}
    failed = defs.resolve_job_def(BACKFILL_JOB).execute_in_process(instance=instance, run_config=bad,
                                                                   raise_on_error=False)
    assert not failed.success
    error = next(e for e in failed.all_events if e.is_step_failure).step_failure_data.error
    assert "2026-06-15" in error.message and "not a month-end date" in error.message
