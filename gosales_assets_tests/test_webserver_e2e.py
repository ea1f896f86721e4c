"""End to end against a real `dagster-webserver` and `dagster-daemon` on 127.0.0.1 (marker `webserver`; runs in
`make test`, select it alone with `pytest -m webserver`).

A temporary DAGSTER_HOME (the repository's dagster.yaml: queued runs, two warehouse pool slots) and a project of
two divisions (Simulation, PDM) with demo landing files and an EMPTY warehouse. Nothing is materialized in process:
- one native asset backfill of the two configured cutoffs (2025-09, 2026-03; star schema and reports included) is
  launched through GraphQL `launchPartitionBackfill`, as the UI does, and the daemon's backfill loop runs it;
- while it runs (as soon as one of its whitespace/report runs waits for the warehouse), one cutoff run
  (job `gosales_cutoff`, `customer_features` of 2025-12, a partition outside the backfill) is launched
  through GraphQL `launchRun`: it waits (in the queue for a pool slot, then for the warehouse's lease) instead of
  failing on DuckDB's lock, then succeeds; runs go at once, but no two ever hold the warehouse at once (the
  runs' own log lines of taking and letting go of it), and model runs let go of it while they train;
- PDM misses a forced promotion gate (AUC ≥ 1.0): its model is held, its scores publish nothing, and the cutoff's
  whitespace still materializes with Simulation's rows.
The order of the backfill (earlier cutoff's labels/features before the model trained on them, one run per
division × cutoff partition), the training
cutoffs of the later model, the backfill's status and the warehouse rows are asserted on values. Last, both process
groups are shut down and the test checks that no process is left and the port can be bound again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest

from gosales_assets.assets.division_cutoff import DIVISION_CUTOFF_ASSETS
from gosales_assets.definitions import build_definitions
from gosales_assets.demo_data import generate_demo_data
from gosales_assets.jobs import CUTOFF_JOB
from gosales_assets.partitions import cutoff_key
from gosales_assets.resources import HELD, LET_GO, RANKING_POOL, RELEASED, RETAKEN, WAREHOUSE_POOL
from gosales_assets.runner import target_partitions
from gosales_assets.settings import division_slug
from gosales_assets_tests.conftest import Project, new_project
from gosales_assets_tests.dagster_stack import (  # the processes and GraphQL helpers, shared with the benchmarks
    ACTIVE_RUN,
    BACKFILL_QUERY,
    FINISHED_BACKFILL,
    FINISHED_RUN,
    LOCATION,
    METADATA_FIELDS,
    REPOSITORY,
    Stack,
    _all_pids,
    _proc_stat,
    assets_of,
    free_port,
    install_instance_config,
    launch_backfill_via_graphql,
    metadata,
    pool_slots,
    port_can_be_bound,
    run_failure_report,
    service_env,
    tags_of,
    targets_by_asset,
    write_workspace,
)

pytestmark = pytest.mark.webserver

CUTOFFS = ["2025-09-30", "2026-03-31"]
EARLY, LATE = cutoff_key(CUTOFFS[0]), cutoff_key(CUTOFFS[1])   # "2025-09", "2026-03"
DIVISIONS = ["Simulation", "PDM"]
PROMOTED_DIV, HELD_DIV = "Simulation", "PDM"
# The run launched while the backfill runs: a partition the backfill does not target (no training cutoff of the
# 2026-03 model either: 2025-12's windows close 2026-06, after 2026-03).
SIDE_CUTOFF, SIDE_ASSETS = "2025-12-31", ["customer_features"]
SIDE_PARTITION = cutoff_key(SIDE_CUTOFF)  # "2025-12"
STAR = "fact_transactions"  # an asset of the backfill's first (unpartitioned) run
# The side run is launched as soon as a backfill run of these assets waits in the queue: the run queue is first in,
# first out, so that run takes the warehouse slot first and the side run has to wait for it. (This stage of the
# backfill has two short runs and the most room before the next daemon tick: the side run does not delay it.)
SIDE_LAUNCH_AFTER = {"whitespace", "metrics_summary"}
# The monthly action, after that: a native backfill of one more cutoff (the side run built its customer features).
MONTHLY_CUTOFF = SIDE_CUTOFF

OVERRIDES = {
    "cutoffs": CUTOFFS,
    # The demo sales log holds the lines of all twelve divisions; the other ten are quarantined as unknown SKUs.
    "contracts": {"max_violation_rate": 1.0},
    "models": {"training_cutoffs": 1, "min_positives": 3,
               # relaxed: one training cutoff of a few positives is no fair fight with the peers (peer_gate off),
               # nor has an AUC interval narrow enough to clear chance (auc_above_chance off)
               "gates": {"auc_min": 0.0, "lift10_min": 0.0, "cal_mae_max": 1.0, "peer_gate": False,
                         "auc_above_chance": False,
                         "per_division": {HELD_DIV: {"auc_min": 1.0}}}},  # an AUC nobody reaches: PDM is held
}

BACKFILL_TIMEOUT_S = 420   # the daemon's backfill loop ticks every ~30 s; this backfill needs ~8 ticks (~4 min)
POLL_S = 0.3


# --------------------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------------------
def prepare(root: Path) -> Project:
    """The project config, the demo landing files and an instance folder; the warehouse does not exist yet."""
    project = new_project(root, OVERRIDES, only_divisions=DIVISIONS)
    install_instance_config(project.settings.dagster_home)
    # The demo generator simulates all twelve configured divisions (as test_runner does).
    generate_demo_data(project.settings.landing_dir, customers=2000, seed=3,
                       settings=new_project(root / "full").settings, ground_truth=False)
    assert not project.settings.warehouse_path.exists()
    return project


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("webserver_e2e")
    project = prepare(root)
    write_workspace(root)
    env = service_env(dagster_home=project.settings.dagster_home, config_path=project.config_path,
                      gosales_home=project.settings.home)
    st = Stack(root, free_port(), env, project=project)
    try:
        st.start_webserver()
        st.wait_until_ready()
        yield st  # the daemon is started by the `backfill` fixture, right after it submitted the backfill
    finally:
        st.stop()


def backfill_targets(project: Project) -> dict[str, list[str] | None]:
    """{asset: sorted partition keys (None: unpartitioned)} of everything a backfill of the configured cutoffs
    covers (the runner's definition: star, every cutoff and division × cutoff partition, reports)."""
    graph = build_definitions(project.settings, project.config_path).resolve_asset_graph()
    return targets_by_asset(target_partitions(graph, project.settings))


def launch_side_run(st: Stack) -> dict:
    """`launchRun` of job gosales_cutoff for one partition and an asset selection, as the Launchpad does."""
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": CUTOFF_JOB,
                     "assetSelection": [{"path": [a]} for a in SIDE_ASSETS]},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": SIDE_PARTITION}]},
    }
    launched = st.gql("""mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
        ... on LaunchRunSuccess { run { runId status } } ... on PythonError { message stack }
        ... on Error { message } ... on RunConfigValidationInvalid { errors { message } } } }""",
                      {"p": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]


@pytest.fixture(scope="module")
def backfill(stack) -> dict:
    """Launch the backfill, then the daemon; as soon as one of the backfill's whitespace/report runs waits in the
    queue, launch the side run; wait for both to finish. Returns what happened, read back through GraphQL."""
    st = stack
    targets = backfill_targets(st.project)
    t0 = time.monotonic()
    backfill_id = launch_backfill_via_graphql(st, targets, title="e2e: two cutoffs from an empty warehouse",
                                              tags={"gosales/source": "e2e"})
    # The daemon's backfill loop sleeps ~30 s between iterations and runs its first one at start: starting the
    # daemon now saves up to one iteration of waiting (the webserver alone only records the backfill).
    assert st.gql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]["status"] == "REQUESTED"
    st.start_daemon()
    side: dict = {}
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while True:
        for s in st.services:
            assert s.proc.poll() is None, f"{s.name} exited with {s.proc.returncode}\n{st.logs()}"
        bf = st.gql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        assert bf["__typename"] == "PartitionBackfill", bf
        runs = st.backfill_runs(backfill_id)
        st.record_members()  # run workers are children of the daemon: track them too
        if not side:
            ahead = [r for r in runs if r["status"] == "QUEUED" and assets_of(r) & SIDE_LAUNCH_AFTER]
            if ahead:
                launched = launch_side_run(st)
                side = {"run_id": launched["runId"], "statuses": [launched["status"]], "ahead": ahead[0]["runId"],
                        "queued_behind": set()}
        elif side["statuses"][-1] not in FINISHED_RUN:  # `runs` was read after the side run was created
            run = st.run(side["run_id"])
            if run["status"] != side["statuses"][-1]:
                side["statuses"].append(run["status"])
            if run["status"] == "QUEUED":  # who holds the warehouse while the side run waits
                side["queued_behind"] |= {r["runId"] for r in runs if r["status"] in ACTIVE_RUN}
        failed = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
        if failed:
            pytest.fail(f"backfill {backfill_id} run {failed[0]['runId']} ended {failed[0]['status']}\n"
                        f"{run_failure_report(st, failed[0]['runId'])}")
        if bf["status"] in FINISHED_BACKFILL and not side:
            pytest.fail(f"backfill {backfill_id} ended {bf['status']} before a run of {sorted(SIDE_LAUNCH_AFTER)} "
                        f"was seen waiting in the queue: the side run was never launched")
        if bf["status"] in FINISHED_BACKFILL and side["statuses"][-1] in FINISHED_RUN:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"backfill {backfill_id} still {bf['status']} after {BACKFILL_TIMEOUT_S}s; side run {side}; "
                        f"runs {[(r['runId'][:8], sorted(assets_of(r))[:3], r['status']) for r in runs]}\n{st.logs()}")
        time.sleep(POLL_S)
    elapsed = time.monotonic() - t0
    if side["statuses"][-1] != "SUCCESS":
        pytest.fail(f"side run ended {side['statuses']}\n{run_failure_report(st, side['run_id'])}")
    side["run"] = st.run(side["run_id"])
    return {"id": backfill_id, "backfill": bf, "runs": st.backfill_runs(backfill_id), "targets": targets,
            "side": side, "elapsed_s": elapsed}


def wait_for_backfill(st: Stack, backfill_id: str) -> list[dict]:
    """Poll until the backfill has finished; fail at the first failed run. Returns its runs."""
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while True:
        bf = st.gql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        runs = st.backfill_runs(backfill_id)
        st.record_members()
        failed = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
        if failed:
            pytest.fail(f"backfill {backfill_id} run {failed[0]['runId']} ended {failed[0]['status']}\n"
                        f"{run_failure_report(st, failed[0]['runId'])}")
        if bf["status"] in FINISHED_BACKFILL and all(r["status"] in FINISHED_RUN for r in runs):
            assert bf["status"] == "COMPLETED_SUCCESS", bf
            return runs
        if time.monotonic() > deadline:
            pytest.fail(f"backfill {backfill_id} still {bf['status']} after {BACKFILL_TIMEOUT_S}s\n{st.logs()}")
        time.sleep(POLL_S)


@pytest.fixture(scope="module")
def monthly(stack, backfill) -> dict:
    """The monthly action on the built instance: one native backfill of one more cutoff (MONTHLY_CUTOFF: its
    division × cutoff partitions, cutoff features and whitespace), launched as the UI does."""
    graph = build_definitions(stack.project.settings, stack.project.config_path).resolve_asset_graph()
    targets = targets_by_asset(target_partitions(graph, stack.project.settings, cutoffs=[MONTHLY_CUTOFF], star=False,
                                                 reports=False))
    backfill_id = launch_backfill_via_graphql(stack, targets, title="e2e: one more cutoff",
                                              tags={"gosales/source": "e2e"})
    return {"id": backfill_id, "runs": wait_for_backfill(stack, backfill_id), "targets": targets}


MATERIALIZATIONS_QUERY = METADATA_FIELDS + """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { __typename
    ... on Asset { assetMaterializations(limit: 200) { runId partition timestamp metadataEntries { ...ME } } } } }"""


@pytest.fixture(scope="module")
def materializations(stack, backfill) -> dict[tuple[str, str | None], list[dict]]:
    """{(asset, partition): [materialization events, newest first]} of every asset of the backfill or side run."""
    out: dict[tuple[str, str | None], list[dict]] = {}
    for asset in sorted(set(backfill["targets"]) | set(SIDE_ASSETS)):
        found = stack.gql(MATERIALIZATIONS_QUERY, {"k": {"path": [asset]}})["assetOrError"]
        assert found["__typename"] == "Asset", (asset, found)
        for m in found["assetMaterializations"]:
            out.setdefault((asset, m["partition"]), []).append(
                {"run_id": m["runId"], "ts": int(m["timestamp"]) / 1000, "meta": metadata(m["metadataEntries"])})
    return out


CHECKS_QUERY = """query($k: AssetKeyInput!, $c: String!) {
  assetCheckExecutions(assetKey: $k, checkName: $c, limit: 50) {
    runId status partition evaluation { success severity description } } }"""


WAREHOUSE_LOG_QUERY = """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection { events {
    __typename ... on MessageEvent { message timestamp } } } } }"""


def warehouse_holds(st: Stack, run_id: str) -> list[tuple[float, float, str]]:
    """(start, end, how) of each time the run held the warehouse, from its own log lines (`resources.hold_warehouse`):
    from HELD or RETAKEN to RELEASED or LET_GO, every hold ended."""
    events = st.gql(WAREHOUSE_LOG_QUERY, {"id": run_id})["logsForRun"]["events"]
    marks = [(int(e["timestamp"]) / 1000, e["message"]) for e in events
             if e.get("message") in (HELD, LET_GO, RELEASED, RETAKEN)]
    holds, start = [], None
    for t, message in marks:
        if message in (HELD, RETAKEN):
            assert start is None, (run_id, marks)
            start = (t, message)
        else:
            assert start is not None, (run_id, marks)
            holds.append((start[0], t, f"{start[1]} .. {message}"))
            start = None
    assert start is None and holds, (run_id, marks)
    return holds


def warehouse(project: Project, sql: str, params: list | None = None):
    with duckdb.connect(str(project.settings.warehouse_path), read_only=True) as conn:
        return conn.execute(sql, params or []).pl()


# --------------------------------------------------------------------------------------------------------------
# tests (in file order; the last one shuts the servers down)
# --------------------------------------------------------------------------------------------------------------
def test_backfill_of_two_cutoffs_completes_with_every_target_materialized_once(stack, backfill, materializations):
    bf, runs, targets = backfill["backfill"], backfill["runs"], backfill["targets"]
    assert bf["status"] == "COMPLETED_SUCCESS" and bf["isAssetBackfill"] and bf["error"] is None, bf
    assert tags_of(bf)["gosales/source"] == "e2e"
    assert runs and all(r["status"] == "SUCCESS" for r in runs), [(r["runId"], r["status"]) for r in runs]
    # the backfill targeted exactly the runner's partitions, and reports each as materialized, none failed
    statuses = {"/".join(s["assetKey"]["path"]): s for s in bf["assetBackfillData"]["assetBackfillStatuses"]}
    assert set(statuses) == set(targets)
    for asset, keys in targets.items():
        s = statuses[asset]
        if keys is None:
            assert (s["materialized"], s["inProgress"], s["failed"]) == (True, False, False), s
        else:
            assert keys in ([EARLY, LATE], [f"{c}|{d}" for c in (EARLY, LATE) for d in sorted(DIVISIONS)]), asset
            assert (s["numPartitionsTargeted"], s["numPartitionsMaterialized"], s["numPartitionsInProgress"],
                    s["numPartitionsFailed"]) == (len(keys), len(keys), 0, 0), s
    assert targets["division_model"] == [f"{c}|{d}" for c in (EARLY, LATE) for d in sorted(DIVISIONS)]
    assert targets["whitespace"] == [EARLY, LATE] and targets["metrics_summary"] is None
    # every target was materialized exactly once, by a run of this backfill (an empty warehouse before it)
    run_ids = {r["runId"] for r in runs}
    expected = {(a, k) for a, keys in targets.items() for k in (keys if keys is not None else [None])}
    done = {key: [m for m in events if m["run_id"] in run_ids] for key, events in materializations.items()}
    assert {key for key, events in done.items() if events} == expected
    assert all(len(done[key]) == 1 for key in expected), {k: len(done[k]) for k in expected if len(done[k]) != 1}
    # every run of the backfill opened the warehouse through its pool: the cutoff's ranking through its own
    ranking = {"whitespace", "top_accounts_report"}
    pools = {r["runId"]: [RANKING_POOL] if assets_of(r) & ranking else [WAREHOUSE_POOL] for r in runs}
    assert all(r["allPools"] == pools[r["runId"]] for r in runs), [(r["runId"], r["allPools"]) for r in runs]
    print(f"\nbackfill {backfill['id']}: {len(runs)} runs, {backfill['elapsed_s']:.0f} s")


def test_backfill_orders_the_earlier_cutoff_before_the_model_that_trains_on_it(backfill, materializations):
    runs = {r["runId"]: r for r in backfill["runs"]}

    def producer(asset: str, partition: str) -> dict:
        [event] = [m for m in materializations[(asset, partition)] if m["run_id"] in runs]
        return {**event, "run": runs[event["run_id"]]}

    for div in DIVISIONS:
        model = producer("division_model", f"{LATE}|{div}")
        for upstream in ("labels", "division_features"):
            up = producer(upstream, f"{EARLY}|{div}")
            assert up["run_id"] != model["run_id"], (upstream, div)
            assert up["run"]["endTime"] <= model["run"]["startTime"], (upstream, div, up["run"], model["run"])
            assert up["ts"] < model["ts"]
        # and the star schema, before anything partitioned
        star = producer(STAR, None)
        assert star["run"]["endTime"] <= producer("labels", f"{EARLY}|{div}")["run"]["startTime"]
    # whitespace of the later cutoff after the earlier whitespace (its self-dependency) and after its scores
    ws_late = producer("whitespace", LATE)
    assert producer("whitespace", EARLY)["run"]["endTime"] <= ws_late["run"]["startTime"]
    for div in DIVISIONS:
        assert producer("icp_scores", f"{LATE}|{div}")["run"]["endTime"] <= ws_late["run"]["startTime"]
    # metrics_summary (unpartitioned) after every model and forward validation it summarizes
    summary = producer("metrics_summary", None)
    for asset in ("division_model", "forward_validation"):
        for key in (f"{c}|{d}" for c in (EARLY, LATE) for d in DIVISIONS):
            assert producer(asset, key)["run"]["endTime"] <= summary["run"]["startTime"], (asset, key)


def test_whole_backfill_runs_each_division_partition_as_one_run(backfill, materializations):
    """The whole backfill, not only one new cutoff: every division × cutoff partition (labels, frame, model, scores,
    drift, peers, validation) is made by one run of the daemon, the later cutoff after the earlier one (the op reads
    its own earlier partitions: a self-dependency). Before, the model, the scores and the validation of a partition
    were runs of their own (4 per partition)."""
    runs = {r["runId"]: r for r in backfill["runs"]}
    division_runs = {}
    for c in (EARLY, LATE):
        for div in DIVISIONS:
            key = f"{c}|{div}"
            producing = {a: [m["run_id"] for m in materializations[(a, key)] if m["run_id"] in runs]
                         for a in DIVISION_CUTOFF_ASSETS}
            assert all(len(ids) == 1 for ids in producing.values()), (key, producing)
            [run_id] = {ids[0] for ids in producing.values()}
            assert assets_of(runs[run_id]) == set(DIVISION_CUTOFF_ASSETS) and tags_of(runs[run_id])[
                "dagster/partition"] == key
            division_runs[key] = runs[run_id]
    partitioned = [r for r in runs.values() if "|" in tags_of(r).get("dagster/partition", "")]
    assert len(partitioned) == len(division_runs) == 2 * len(DIVISIONS)
    for div in DIVISIONS:
        assert division_runs[f"{EARLY}|{div}"]["endTime"] <= division_runs[f"{LATE}|{div}"]["startTime"]
    print(f"\nwhole backfill: {len(runs)} runs, of which {len(partitioned)} division x cutoff")


def test_later_cutoffs_model_lists_the_earlier_cutoff_as_its_training_cutoff(stack, backfill, materializations):
    project = stack.project
    registry = {(r["division"], r["cutoff_date"].isoformat()): r
                for r in warehouse(project, "select * from division_model").to_dicts()}
    assert set(registry) == {(d, c) for d in DIVISIONS for c in CUTOFFS}
    run_ids = {r["runId"] for r in backfill["runs"]}
    assert {r["run_id"] for r in registry.values()} <= run_ids
    # the first cutoff has no earlier labelled cutoff: no model, the reason recorded
    for div in DIVISIONS:
        first = registry[(div, CUTOFFS[0])]
        assert first["status"] == "skipped" and not first["training_cutoffs"], first
        assert "no trainable cutoff" in first["reason"]
    # the later cutoff trains on the earlier one (C' + 6 months ≤ C), and Simulation passes its relaxed gate
    late = registry[(PROMOTED_DIV, CUTOFFS[1])]
    assert late["status"] == "promoted" and late["gate_passed"] is True, late
    assert late["training_cutoffs"] == CUTOFFS[0]
    assert late["train_positives"] >= project.settings.models.min_positives and late["train_rows"] > 0
    card = json.loads((project.settings.artifacts_dir / "models" / division_slug(PROMOTED_DIV) / CUTOFFS[1]
                       / "model_card.json").read_text())
    assert card["training_cutoffs"] == [CUTOFFS[0]] and card["training_windows_months"] == [6]
    assert card["cutoff"] == CUTOFFS[1] and card["model_version"] == late["model_version"]
    assert card["dagster_run_id"] == late["run_id"] and card["gate"]["passed"] is True
    [event] = [m for m in materializations[("division_model", f"{LATE}|{PROMOTED_DIV}")] if m["run_id"] in run_ids]
    assert event["meta"]["training_cutoffs"] == [CUTOFFS[0]] and event["meta"]["status"] == "promoted"
    assert event["meta"]["model_version"] == late["model_version"]
    # the promoted model published scores: probabilities for customers of the warehouse
    scores = warehouse(project, "select count(*) as n, avg(icp_score) as mean from icp_scores "
                                "where division = ? and cutoff_date = ?", [PROMOTED_DIV, CUTOFFS[1]])
    n_customers = warehouse(project, "select count(*) as n from dim_customer").item(0, "n")
    assert 0 < scores.item(0, "n") <= n_customers and 0.0 < scores.item(0, "mean") < 1.0


def test_run_launched_during_the_backfill_waits_for_the_warehouse_then_succeeds(stack, backfill, materializations):
    side, runs = backfill["side"], backfill["runs"]
    run = side["run"]
    # launched through the Launchpad's mutation: queued (QueuedRunCoordinator), then run by the daemon
    assert side["statuses"][0] == "QUEUED" and side["statuses"][-1] == "SUCCESS", side["statuses"]
    assert run["jobName"] == CUTOFF_JOB and assets_of(run) == set(SIDE_ASSETS)
    assert tags_of(run)["dagster/partition"] == SIDE_PARTITION and "dagster/backfill" not in tags_of(run)
    assert run["allPools"] == [WAREHOUSE_POOL]
    # it was launched while a backfill run queued for the warehouse, and waited in the queue while the pool's slots
    # were taken: it started after the run queued before it, and with fewer other runs of the pool going than slots
    by_id = {r["runId"]: r for r in runs}
    assert side["queued_behind"] and side["queued_behind"] <= set(by_id), side
    assert side["ahead"] in by_id and by_id[side["ahead"]]["creationTime"] < run["creationTime"]
    assert by_id[side["ahead"]]["startTime"] <= run["startTime"]
    # never more runs of the warehouse pool at once than its slots (dagster.yaml), the side run included (a ranking
    # run, in its own pool, may go beside them)
    slots = pool_slots()
    every = [*runs, run]
    for r in every:
        going = [o for o in every if o is not r and o["startTime"] < r["startTime"] < o["endTime"]]
        assert len(going) <= slots, (r["runId"], [o["runId"] for o in going])
        if r["allPools"] == [WAREHOUSE_POOL]:
            same = [o["runId"] for o in going if o["allPools"] == [WAREHOUSE_POOL]]
            assert len(same) <= slots - 1, (r["runId"], same)
    # runs overlapped, but no two held the warehouse at once, the side run included: each run's holds
    # from its own log lines
    holds = sorted((start, end, r["runId"], how) for r in [*runs, run]
                   for start, end, how in warehouse_holds(stack, r["runId"]))
    overlaps = [(a, b) for a, b in zip(holds, holds[1:]) if b[0] < a[1]]
    assert not overlaps, overlaps
    spans = sorted((r["startTime"], r["endTime"]) for r in [*runs, run])
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), "no two runs ever went at once"
    # and every model run that trained let go of the warehouse while it did
    trained = [r["runId"] for r in runs if "division_model" in assets_of(r)]
    released = [i for i in trained if any("let go while computing" in how for *_, how in warehouse_holds(stack, i))]
    assert released, trained
    # and it did its work: one materialization of the customer features of 2025-12, rows in the warehouse
    [event] = materializations[("customer_features", SIDE_PARTITION)]
    assert event["run_id"] == run["runId"]
    rows = warehouse(stack.project, "select count(*) as n from customer_features where cutoff_date = ?", [SIDE_CUTOFF])
    n = rows.item(0, "n")
    assert n > 0 and event["meta"]["dagster/row_count"] == n, event["meta"]


def test_held_division_does_not_fail_its_cutoffs_whitespace(stack, backfill, materializations):
    project = stack.project
    run_ids = {r["runId"] for r in backfill["runs"]}
    held = warehouse(project, "select * from division_model where division = ? and cutoff_date = ?",
                     [HELD_DIV, CUTOFFS[1]]).row(0, named=True)
    assert held["status"] == "held" and held["gate_passed"] is False, held
    # the impossible floor is named (after a below-chance diagnosis, when its few positives rank backwards)
    assert held["reason"].startswith("promotion gate: ") and " < 1 (short by " in held["reason"], held["reason"]
    [model] = [m for m in materializations[("division_model", f"{LATE}|{HELD_DIV}")] if m["run_id"] in run_ids]
    assert model["meta"]["status"] == "held"
    # its promotion gate failed with ERROR severity, recorded per partition, yet stopped nothing (not blocking)
    gates = {e["partition"]: e for e in stack.gql(CHECKS_QUERY, {"k": {"path": ["division_model"]},
                                                              "c": "promotion_gate"})["assetCheckExecutions"]
             if e["runId"] in run_ids}
    assert set(gates) == {f"{c}|{d}" for c in (EARLY, LATE) for d in DIVISIONS}
    gate = gates[f"{LATE}|{HELD_DIV}"]
    assert gate["status"] == "FAILED" and gate["evaluation"]["success"] is False, gate
    assert gate["evaluation"]["severity"] == "ERROR" and " < 1 (short by " in gate["evaluation"]["description"], gate
    assert held["reason"] == f"promotion gate: {gate['evaluation']['description']}"
    assert gates[f"{LATE}|{PROMOTED_DIV}"]["status"] == "SUCCEEDED"
    assert next(r for r in backfill["runs"] if r["runId"] == gate["runId"])["status"] == "SUCCESS"
    # the held model publishes nothing: an empty scores slice, said so in its metadata
    [scores] = [m for m in materializations[("icp_scores", f"{LATE}|{HELD_DIV}")] if m["run_id"] in run_ids]
    assert scores["meta"]["published"] is False and scores["meta"]["dagster/row_count"] == 0, scores["meta"]
    assert warehouse(project, "select count(*) as n from icp_scores where division = ? and cutoff_date = ?",
                     [HELD_DIV, CUTOFFS[1]]).item(0, "n") == 0
    # the cutoff's whitespace materialized in a successful run: the published division's model rows, and the held
    # division listed by its best simple peer, labelled as such and without a probability
    [ws] = [m for m in materializations[("whitespace", LATE)] if m["run_id"] in run_ids]
    assert next(r for r in backfill["runs"] if r["runId"] == ws["run_id"])["status"] == "SUCCESS"
    rows = warehouse(project, "select division, score_source, count(*) as n, count(p_icp) as with_p from whitespace "
                     "where cutoff_date = ? group by 1, 2", [CUTOFFS[1]])
    by_div = {r["division"]: r for r in rows.to_dicts()}
    assert set(by_div) == {PROMOTED_DIV, HELD_DIV} and rows.height == 2, rows
    assert by_div[PROMOTED_DIV]["score_source"] == "model" and by_div[PROMOTED_DIV]["n"] > 0
    assert by_div[HELD_DIV]["score_source"].startswith("peer:") and by_div[HELD_DIV]["with_p"] == 0
    assert ws["meta"]["dagster/row_count"] == rows.get_column("n").sum(), ws["meta"]
    # and the backfill as a whole: no failed run (asserted run by run in the first test), COMPLETED_SUCCESS
    assert backfill["backfill"]["status"] == "COMPLETED_SUCCESS"


def test_one_more_cutoff_runs_each_division_partition_as_one_run(stack, monthly):
    """One new cutoff: every division partition is one run of the op that makes the whole partition (its earlier
    partitions, which its model reads, are built already), plus the cutoff's own runs (features, whitespace)."""
    runs = {r["runId"]: r for r in monthly["runs"]}
    assert runs and all(r["status"] == "SUCCESS" for r in runs.values())
    division_assets = sorted(a for a, keys in monthly["targets"].items() if keys and "|" in keys[0])
    assert {"labels", "division_features", "division_model", "icp_scores", "forward_validation"} <= set(division_assets)
    month = cutoff_key(MONTHLY_CUTOFF)
    for div in DIVISIONS:
        key = f"{month}|{div}"
        producing = {}
        for asset in division_assets:
            found = stack.gql(MATERIALIZATIONS_QUERY, {"k": {"path": [asset]}})["assetOrError"]
            [producing[asset]] = [m["runId"] for m in found["assetMaterializations"]
                                  if m["partition"] == key and m["runId"] in runs]
        assert len(set(producing.values())) == 1, (key, producing)
        assert assets_of(runs[producing["labels"]]) == set(division_assets)
    # and nothing else: one run per division partition, plus the cutoff's own runs (features, whitespace)
    cutoff_runs = [r for r in runs.values() if "|" not in tags_of(r)["dagster/partition"]]
    assert len(runs) == len(DIVISIONS) + len(cutoff_runs)


def test_shutdown_is_clean_no_orphans_and_port_released(stack, backfill):
    stack.record_members()
    assert len(stack.members) >= 4, stack.members  # webserver, daemon and at least one code server each
    left = stack.stop()
    assert [s.name for s in stack.services if s.killed] == [], f"needed SIGKILL after SIGTERM\n{stack.logs()}"
    in_groups = [pid for pid in _all_pids() if (st := _proc_stat(pid)) is not None and st[0] != "Z"
                 and (st[2] in {s.group for s in stack.services} or st[3] in {s.group for s in stack.services})]
    assert not left and not in_groups, f"processes left after shutdown: {left} {in_groups}"
    assert all(s.proc.returncode is not None for s in stack.services)
    assert port_can_be_bound(stack.port)
