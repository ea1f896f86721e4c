"""The runner: the order of runs comes from the asset graph alone; in process, held is not failed, a failed run
stops only what depends on it; a native backfill is submitted with exactly the chosen partitions."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    Definitions,
    Output,
    asset,
    define_asset_job,
)
from dagster._core.definitions.events import AssetKeyPartitionKey

from gosales_assets.definitions import build_definitions
from gosales_assets.jobs import CUTOFF_JOB, DIVISION_CUTOFF_JOB, GLOBAL_JOB, SOURCE_TAG
from gosales_assets.partitions import multi_key
from gosales_assets.runner import (
    backfill_subset,
    launch_backfill,
    materialize,
    materialize_targets,
    plan_runs,
    target_partitions,
)
from gosales_assets_tests.conftest import new_project


def _position(plan, asset: str, partition: str) -> int:
    return next(i for i, r in enumerate(plan) if AssetKey(asset) in r.assets and str(r.partition) == partition)


def test_plan_follows_the_declared_reads_of_earlier_partitions(project):
    graph = build_definitions(project.settings, project.config_path).resolve_asset_graph()
    plan = plan_runs(graph, target_partitions(graph, project.settings))  # the six configured quarter-ends
    assert plan[0].job == GLOBAL_JOB and AssetKey("fact_transactions") in plan[0].assets
    report = _position(plan, "metrics_summary", "None")
    assert plan[report].assets == (AssetKey("metrics_summary"),)
    assert all(_position(plan, "forward_validation", f"{c}|{d}") < report
               for c in ("2025-03", "2026-06") for d in project.settings.divisions)
    # the model at 2026-03 trains on the labels and features of 2025-03 .. 2025-09: those run first
    for c in ("2025-03", "2025-06", "2025-09"):
        for a in ("labels", "division_features"):
            assert _position(plan, a, f"{c}|PDM") < _position(plan, "division_model", "2026-03|PDM"), (a, c)
    # whitespace reads every division's scores of its cutoff and the earlier lists (a self-dependency)
    ws = _position(plan, "whitespace", "2026-03")
    assert all(_position(plan, "icp_scores", f"2026-03|{d}") < ws for d in project.settings.divisions)
    assert _position(plan, "whitespace", "2025-12") < ws
    # a later cutoff's division run never comes before an earlier cutoff's run of the same division
    pdm = [str(r.partition) for r in plan if r.job == DIVISION_CUTOFF_JOB and str(r.partition).endswith("|PDM")]
    assert pdm == sorted(pdm)
    # and every (asset, partition) runs after everything it reads, whatever run it is in
    where = {AssetKeyPartitionKey(k, r.partition): i for i, r in enumerate(plan) for k in r.assets}
    reads = 0
    for t, i in where.items():
        for parent in graph.get_parents_partitions(t.asset_key, t.partition_key).parent_partitions:
            if parent in where and parent != t:
                reads += 1
                assert where[parent] < i or (where[parent] == i and parent.partition_key == t.partition_key), \
                    (parent, t)
    assert reads > 1000  # the model's reads of earlier frames, whitespace's of every division, ...
    # each partition of a later cutoff is one run: labels → features → model → scores, peers → validation, drift
    one = [r for r in plan if str(r.partition) == "2026-03|PDM"]
    assert len(one) == 1 and len(one[0].assets) == 7
    assert plan == plan_runs(graph, target_partitions(graph, project.settings))  # deterministic


def test_one_new_cutoff_is_a_few_runs(project):
    graph = build_definitions(project.settings, project.config_path).resolve_asset_graph()
    plan = plan_runs(graph, target_partitions(graph, project.settings, cutoffs=["2026-09-30"], star=False,
                                              reports=False))
    # features; one run per division (all seven division assets); whitespace with its report
    assert [r.job for r in plan] == [CUTOFF_JOB, *[DIVISION_CUTOFF_JOB] * 12, CUTOFF_JOB]
    assert all(len(r.assets) == 7 for r in plan[1:-1]) and AssetKey("top_accounts_report") in plan[-1].assets


@pytest.mark.parametrize("kwargs, message", [
    ({"cutoffs": ["2026-06-15"]}, "not a month-end date"),
    ({"cutoffs": ["2026-11-30"]}, "outside the cutoff partitions"),
    ({"cutoffs": ["2023-12-31"]}, "outside the cutoff partitions"),
    ({"divisions": ["Printers"]}, "unknown division(s) ['Printers']"),
])
def test_bad_selections_are_rejected_before_anything_runs(project, kwargs, message):
    graph = build_definitions(project.settings, project.config_path).resolve_asset_graph()
    with pytest.raises(ValueError) as err:
        target_partitions(graph, project.settings, **kwargs)
    assert message in str(err.value)


def _defs(fail_with_error: bool) -> Definitions:
    @asset(check_specs=[AssetCheckSpec("gate", asset="thing", blocking=True)])
    def thing():
        if fail_with_error:
            raise RuntimeError("boom")
        yield Output(1)
        yield AssetCheckResult(check_name="gate", passed=False, severity=AssetCheckSeverity.ERROR,
                               description="rows lost")

    @asset(deps=[thing])
    def downstream():
        return 2

    return Definitions(assets=[thing, downstream], jobs=[define_asset_job(GLOBAL_JOB, selection=[thing, downstream])])


@pytest.mark.parametrize("fail_with_error", [True, False])
def test_a_failed_run_skips_what_depends_on_it(fail_with_error):
    defs = _defs(fail_with_error)
    graph = defs.resolve_asset_graph()
    targets = {AssetKeyPartitionKey(AssetKey("thing")), AssetKeyPartitionKey(AssetKey("downstream"))}
    lines = []
    with DagsterInstance.ephemeral() as instance:
        [outcome] = materialize_targets(defs, instance, targets, log=lines.append)
    # one run (same partition), stopped by the error or by the blocking check: downstream never ran
    assert len(plan_runs(graph, targets)) == 1
    assert outcome.status == "failed" and "downstream" not in outcome.assets
    if fail_with_error:
        assert "boom" in outcome.error
    else:
        assert outcome.failed_checks == ["thing:gate — rows lost"] and outcome.assets == ["thing"]


def test_a_target_made_with_others_by_one_op_brings_them(tmp_path):
    """`drift` alone as a target: its op also makes `icp_scores` (not subsettable), so the run makes both, as the UI
    would select them, instead of failing on an impossible subset."""
    from dagster import AssetSpec, multi_asset

    made = []

    @multi_asset(specs=[AssetSpec("scores"), AssetSpec("drift_of_scores", deps=["scores"])], can_subset=False)
    def scores_and_drift():
        made.append("op")
        yield Output(None, output_name="scores")
        yield Output(None, output_name="drift_of_scores")

    defs = Definitions(assets=[scores_and_drift], jobs=[define_asset_job(GLOBAL_JOB, selection=[scores_and_drift])])
    with DagsterInstance.ephemeral() as instance:
        [outcome] = materialize_targets(defs, instance, {AssetKeyPartitionKey(AssetKey("drift_of_scores"))},
                                        log=lambda line: None)
    assert outcome.status == "ok" and outcome.assets == ["drift_of_scores", "scores"] and made == ["op"]


@pytest.mark.slow
def test_materialize_in_process_and_a_native_backfill_submission(tmp_path):
    from gosales_assets.demo_data import generate_demo_data

    # The sales log of all twelve divisions; lines of the other ten are quarantined as unknown SKUs.
    project = new_project(tmp_path / "p", {"cutoffs": ["2025-09-30", "2026-03-31"],
                                           "contracts": {"max_violation_rate": 1.0},
                                           "models": {"training_cutoffs": 1, "min_positives": 3,
                                                      # relaxed (peers too: one small training cutoff)
                                                      "gates": {"auc_min": 0.0, "lift10_min": 0.0, "cal_mae_max": 1.0,
                                                                "peer_gate": False, "auc_above_chance": False,
                                                                "per_division": {"PDM": {"auc_min": 1.0}}}}},
                          only_divisions=["Simulation", "PDM"])
    generate_demo_data(project.settings.landing_dir, customers=2000, seed=3,
                       settings=new_project(tmp_path / "full").settings, ground_truth=False)
    defs = build_definitions(project.settings, project.config_path)
    with DagsterInstance.ephemeral() as instance:
        outcomes = materialize(defs, instance, project.settings, log=lambda _: None)
        assert {o.status for o in outcomes} <= {"ok", "held"}, [o for o in outcomes if o.status not in ("ok", "held")]
        held = {o.partition: o.held for o in outcomes if o.status == "held"}
        # the first cutoff has no history (skipped); PDM at 2026-03 is held by its impossible gate (AUC ≥ 1)
        assert set(held) == {"2025-09|PDM", "2025-09|Simulation", "2026-03|PDM"}
        # its impossible floor named (after a below-chance diagnosis when its few positives rank backwards)
        assert "held — promotion gate: " in held["2026-03|PDM"][0] and " < 1 (short by " in held["2026-03|PDM"][0]
        registry = {(r["division"], str(r["cutoff_date"])): r for r in project.table("division_model").to_dicts()}
        assert registry[("Simulation", "2026-03-31")]["status"] == "promoted"
        assert registry[("Simulation", "2026-03-31")]["training_cutoffs"] == "2025-09-30"
        assert registry[("PDM", "2026-03-31")]["status"] == "held"
        # the held division publishes no scores; the cutoff's whitespace lists it by its best simple peer (labelled,
        # no probability, after the division that published)
        ws = project.table("whitespace").filter(pl.col("cutoff_date") == dt.date(2026, 3, 31))
        sim, pdm = ws.filter(pl.col("division") == "Simulation"), ws.filter(pl.col("division") == "PDM")
        assert sim.height > 0 and set(sim.get_column("score_source")) == {"model"}
        assert pdm.height > 0 and pdm.get_column("score_source").str.starts_with("peer:").all()
        assert pdm.get_column("p_icp").null_count() == pdm.height and not pdm.get_column("selected").any()
        # the first cutoff has no model at all: a list ordered by the default peer, and no capacity plan
        first = project.table("whitespace").filter(pl.col("cutoff_date") == dt.date(2025, 9, 30))
        assert first.height > 0 and set(first.get_column("score_source")) == {"peer:monetary"}
        assert first.get_column("selected").sum() == 0
        files = project.settings.artifacts_dir / "whitespace" / "2025-09-30"
        assert pl.read_csv(files / "whitespace_2025-09-30.csv").height == first.height
        report = project.settings.artifacts_dir / "reports" / "2025-09-30" / "top_accounts.md"
        assert "n/a: no promoted model, ordered by the monetary peer" in report.read_text()

        graph = defs.resolve_asset_graph()
        targets = target_partitions(graph, project.settings, cutoffs=["2026-06-30"], divisions=["PDM"], star=False)
        backfill_id = launch_backfill(graph, instance, targets, source="cli", title="test")
        backfill = instance.get_backfill(backfill_id)
        assert backfill.tags[SOURCE_TAG] == "cli" and backfill.status.value == "REQUESTED"
        subset = backfill.asset_backfill_data.target_subset
        assert set(subset.iterate_asset_partitions()) == targets == set(backfill_subset(graph, targets)
                                                                        .iterate_asset_partitions())
        assert AssetKeyPartitionKey(AssetKey("division_model"), multi_key("PDM", "2026-06-30")) in targets
        assert AssetKeyPartitionKey(AssetKey("metrics_summary")) in targets


def test_ctrl_c_stops_the_whole_materialize_not_one_run(tmp_path):
    """Dagster turns Ctrl-C into a failed step and returns; `materialize` then stops instead of going on."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "slow.py"
    script.write_text(f'''
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from dagster import AssetKey, DagsterInstance, Definitions, asset, define_asset_job
from dagster._core.definitions.events import AssetKeyPartitionKey
from gosales_assets.jobs import GLOBAL_JOB
from gosales_assets.runner import Interrupted, materialize_targets

@asset
def slow():
    print("slow started", flush=True)
    time.sleep(30)

@asset(deps=[slow], partitions_def=None)
def after():
    print("after ran", flush=True)

defs = Definitions(assets=[slow, after], jobs=[define_asset_job(GLOBAL_JOB, selection=[slow, after])])
with DagsterInstance.ephemeral() as instance:
    try:
        materialize_targets(defs, instance, {{AssetKeyPartitionKey(AssetKey("slow"))}})
        materialize_targets(defs, instance, {{AssetKeyPartitionKey(AssetKey("after"))}})
    except Interrupted as stop:
        print("stopped:", stop.outcome.status, flush=True)
''')
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    while (line := proc.stdout.readline()) and line.strip() != "slow started":
        pass
    assert line.strip() == "slow started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert "stopped: failed" in out and "interrupted: 0 run(s) not started" in out and "after ran" not in out


def test_model_verdicts_list_held_skipped_and_retained_models_apart():
    from dagster import AssetMaterialization

    from gosales_assets.runner import RunOutcome, model_verdicts, summarize

    def m(key, status, reason="r", partition="2026-03|CPE"):
        return AssetMaterialization(key, partition=partition, metadata={"status": status, "reason": reason})

    held, retained = model_verdicts([
        m("division_model", "held", "trails monetary by 0.05"), m("division_model", "promoted"),
        m("division_model", "retained", "trails the champion v1 of 2025-12-31", "2026-03|PDM"),
        m("division_model", "skipped", "3 positives", "2026-03|Hardware"), m("icp_scores", "held"),
        AssetMaterialization("division_model", partition="2026-03|X")])
    assert held == ["2026-03|CPE: held — trails monetary by 0.05", "2026-03|Hardware: skipped — 3 positives"]
    assert retained == ["2026-03|PDM: retained — trails the champion v1 of 2025-12-31"]
    counts = summarize([RunOutcome("j", "p", "1", "ok", retained=retained), RunOutcome("j", "q", "2", "ok"),
                        RunOutcome("j", "r", "3", "held", held=held)])
    assert counts == {"ok": 2, "held": 1, "failed": 0, "skipped": 0, "retained": 1}
