"""End to end against a real `dagster-webserver` and `dagster-daemon` on 127.0.0.1 (marker `webserver`; runs in
`make test`, select it alone with `pytest -m webserver`).

A temporary DAGSTER_HOME (the repository's dagster.yaml: queued runs, one warehouse slot) and warehouse hold a
small demo: the star schema, the cutoff features and the Simulation labels/features of four cutoffs,
materialized in process. Then, only through the GraphQL API: the asset graph (groups, partitions, edges,
checks) is listed; the daemon's `register_config_cutoffs` sensor registers a configured cutoff the preparation
left out; one division × cutoff run of the scoring path (`division_model` → `icp_scores`) is launched, dequeued
by the daemon and waited for; its materialization metadata and asset check evaluations are read back. Last, both
process groups are shut down and the test checks that no process is left and the port can be bound again.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from gosales_assets.core.checksum import frame_checksum
from gosales_assets.definitions import DIVISION_CUTOFF_JOB, build_definitions
from gosales_assets.demo_data import generate_demo_data
from gosales_assets.partitions import CUTOFF_PARTITIONS_NAME, multi_key
from gosales_assets_tests.conftest import CUTOFF_ASSETS, Project, new_project

pytestmark = pytest.mark.webserver

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's console scripts: dagster-webserver, dagster-daemon
LOCATION, REPOSITORY = "gosales_assets", "__repository__"

# Three training cutoffs whose 6-month windows close by 2026-03-31, and 2026-03-31 itself: the smallest demo on
# which the Simulation model passes the default promotion gate (see test_models_asset).
CUTOFFS = ["2025-03-31", "2025-06-30", "2025-09-30", "2026-03-31"]
SENSOR_CUTOFF = "2026-06-30"  # configured, but left for the daemon's sensor to register
DIV, C = "Simulation", "2026-03-31"
PARTITION = str(multi_key(DIV, C))  # "2026-03-31|Simulation": dimensions in name order
SCORING_PATH = ["division_model", "icp_scores"]
EXPECTED_GROUPS = {"raw", "star", "labels", "features", "models", "scoring", "validation", "whitespace", "reports"}

STARTUP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300
SENSOR_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


# --------------------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int, int, int, int] | None:
    """(state, ppid, pgid, sid, start time) of a live process from /proc, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "; comm may contain spaces
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _alive(pid: int, start: int | None = None) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] != "Z" and (start is None or st[4] == start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_can_be_bound(port: int) -> bool:
    """True when a new server could listen on the port (SO_REUSEADDR, as every server sets, so that closed
    connections in TIME_WAIT do not count; a socket still listening does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log: Path
    killed: bool = False  # needed SIGKILL after SIGTERM timed out

    @property
    def group(self) -> int:
        return self.proc.pid  # start_new_session: the process leads its own session and process group

    def members(self) -> dict[int, int]:
        """{pid: start time} of every live process in the service's session, or descending from it."""
        stats = {pid: st for pid in _all_pids() if (st := _proc_stat(pid)) is not None and st[0] != "Z"}
        found = {pid for pid, st in stats.items() if st[3] == self.group or st[2] == self.group}
        found.add(self.proc.pid)
        grew = True
        while grew:  # children that left the session (setsid) are still ours
            new = {pid for pid, st in stats.items() if st[1] in found and pid not in found}
            found |= new
            grew = bool(new)
        return {pid: stats[pid][4] for pid in found if pid in stats}

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- last lines of {self.name} log {self.log} ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to the whole process group, SIGKILL to whatever is left after `timeout`."""
        if self.proc.poll() is not None and not self.members():
            return
        try:
            os.killpg(self.group, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not any(
                    st is not None and st[2] == self.group and st[0] != "Z"
                    for st in map(_proc_stat, _all_pids())):
                return
            time.sleep(0.2)
        self.killed = True
        try:
            os.killpg(self.group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


def start_service(name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> Service:
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return Service(name, proc, log)


# --------------------------------------------------------------------------------------------------------------
# GraphQL
# --------------------------------------------------------------------------------------------------------------
METADATA_FIELDS = """
fragment ME on MetadataEntry { label __typename
  ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text }
  ... on BoolMetadataEntry { boolValue } ... on MarkdownMetadataEntry { mdStr }
  ... on JsonMetadataEntry { jsonString } ... on PathMetadataEntry { path } }
"""


def metadata(entries: list[dict]) -> dict:
    """GraphQL metadata entries as {label: python value}."""
    out = {}
    for e in entries:
        kind = e["__typename"]
        value = {"FloatMetadataEntry": e.get("floatValue"), "IntMetadataEntry": e.get("intValue"),
                 "TextMetadataEntry": e.get("text"), "BoolMetadataEntry": e.get("boolValue"),
                 "MarkdownMetadataEntry": e.get("mdStr"), "PathMetadataEntry": e.get("path"),
                 "JsonMetadataEntry": json.loads(e["jsonString"]) if "jsonString" in e else None}.get(kind, kind)
        out[e["label"]] = value
    return out


@dataclass
class Stack:
    project: Project
    root: Path
    port: int
    services: list[Service] = field(default_factory=list)
    members: dict[int, int] = field(default_factory=dict)  # every process seen while running: {pid: start}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            doc = json.loads(resp.read())
        assert not doc.get("errors"), f"GraphQL errors: {doc['errors']}\nquery: {query}"
        return doc["data"]

    def logs(self) -> str:
        return "\n".join(s.tail() for s in self.services)

    def record_members(self) -> None:
        for s in self.services:
            self.members.update(s.members())

    def stop(self) -> dict[int, int]:
        """Stop every service; returns the processes seen while running that outlived it ({pid: start time}),
        after killing them, so that even a failing test leaves nothing behind."""
        self.record_members()
        for s in self.services:
            s.stop()
        left = {pid: start for pid, start in self.members.items() if _alive(pid, start)}
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


# --------------------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------------------
def prepare(root: Path) -> Project:
    """Demo data, star schema, cutoff features of CUTOFFS and the Simulation labels/features of each cutoff,
    materialized in process into the temporary DAGSTER_HOME and warehouse the servers will use."""
    project = new_project(root, {"cutoffs": [*CUTOFFS, SENSOR_CUTOFF],
                                 "labels": {"auto_widen": {"enabled": False}}})
    dagster_home = project.settings.dagster_home
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    generate_demo_data(project.settings.landing_dir, customers=2000, seed=7, settings=project.settings,
                       ground_truth=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(dagster_home))  # dagster.yaml reads the storage folder from it
        with DagsterInstance.get() as instance:
            assert project.materialize(instance=instance).success
            # Not SENSOR_CUTOFF: the daemon's sensor has to add it.
            instance.add_dynamic_partitions(CUTOFF_PARTITIONS_NAME, CUTOFFS)
            for c in CUTOFFS:
                assert project.materialize(CUTOFF_ASSETS, instance=instance, partition_key=c).success, c
                assert project.materialize(["labels", "division_features"], instance=instance,
                                           partition_key=multi_key(DIV, c)).success, c
    return project


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("webserver_e2e")
    project = prepare(root)
    (root / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: gosales_assets.definitions\n"
        f"      location_name: {LOCATION}\n")
    env = {**os.environ, "DAGSTER_HOME": str(project.settings.dagster_home), "GOSALES_CONFIG": str(project.config_path),
           "GOSALES_HOME": str(project.settings.home), "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    st = Stack(project, root, free_port())
    try:
        st.services.append(start_service("webserver", [str(BIN / "dagster-webserver"), "-w", "workspace.yaml",
                                                       "-h", "127.0.0.1", "-p", str(st.port)], root, env))
        st.services.append(start_service("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                                         root, env))
        wait_until_ready(st)
        yield st
    finally:
        st.stop()


def wait_until_ready(st: Stack) -> None:
    """/server_info answers, then the code location is LOADED (a load error fails with its message)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        for s in st.services:
            assert s.proc.poll() is None, f"{s.name} exited with {s.proc.returncode}\n{st.logs()}"
        try:
            with urllib.request.urlopen(f"{st.url}/server_info", timeout=5) as resp:
                info = json.loads(resp.read())
            entry = st.gql("""{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
            entries = entry["workspaceOrError"]["locationEntries"]
            last = f"server {info}, locations {entries}"
            if entries and entries[0]["loadStatus"] == "LOADED":
                loaded = entries[0]["locationOrLoadError"]
                assert loaded["__typename"] == "RepositoryLocation", f"code location failed to load: {loaded}"
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            last = repr(err)
        time.sleep(0.5)
    pytest.fail(f"dagster-webserver not ready after {STARTUP_TIMEOUT_S}s ({last})\n{st.logs()}")


RUN_QUERY = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId status jobName
  tags { key value } assetSelection { path } } ... on Error { message } } }"""


def run_failure_report(st: Stack, run_id: str) -> str:
    """The run's error events and the daemon's health, for a failure message."""
    events = st.gql("""query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection { events {
        __typename ... on MessageEvent { message level stepKey }
        ... on ExecutionStepFailureEvent { error { message stack } }
        ... on RunFailureEvent { error { message } } } } ... on Error { message } } }""", {"id": run_id})["logsForRun"]
    bad = [e for e in events.get("events", []) if e.get("level") in ("ERROR", "CRITICAL") or "error" in e]
    health = st.gql("{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }")
    return (f"error events: {json.dumps(bad, indent=1)[:6000]}\ndaemons: {health}\n{st.logs()}")


@pytest.fixture(scope="module")
def scored_run(stack) -> dict:
    """Launch `division_model` + `icp_scores` for Simulation × 2026-03-31 as the UI does (the job, an asset and
    check selection, the partition tags), let the daemon dequeue it, and wait for a terminal status."""
    st = stack
    nodes = st.gql("""query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path }
        assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }""",
                   {"keys": [{"path": [a]} for a in SCORING_PATH]})["assetNodes"]
    checks = [{"assetKey": {"path": n["assetKey"]["path"]}, "name": c["name"]}
              for n in nodes for c in n["assetChecksOrError"]["checks"]]
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": DIVISION_CUTOFF_JOB,
                     "assetSelection": [{"path": [a]} for a in SCORING_PATH], "assetCheckSelection": checks},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PARTITION},
                                       {"key": "dagster/partition/cutoff", "value": C},
                                       {"key": "dagster/partition/division", "value": DIV}]},
    }
    launched = st.gql("""mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
        ... on LaunchRunSuccess { run { runId status } } ... on Error { message }
        ... on RunConfigValidationInvalid { errors { message } } } }""", {"p": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    first_status = launched["run"]["status"]
    seen = [first_status]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        run = st.gql(RUN_QUERY, {"id": run_id})["runOrError"]
        if run["status"] != seen[-1]:
            seen.append(run["status"])
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run['status']} after {RUN_TIMEOUT_S}s (statuses {seen})\n"
                        f"{run_failure_report(st, run_id)}")
        st.record_members()  # the run worker is a child of the daemon's code server: track it too
        time.sleep(1)
    if run["status"] != "SUCCESS":
        pytest.fail(f"run {run_id} ended {run['status']} (statuses {seen})\n{run_failure_report(st, run_id)}")
    return {"run_id": run_id, "run": run, "statuses": seen, "checks": checks}


# --------------------------------------------------------------------------------------------------------------
# tests (in file order; the last one shuts the servers down)
# --------------------------------------------------------------------------------------------------------------
def test_sensor_on_the_daemon_registers_the_configured_cutoff(stack):
    sensor = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": "register_config_cutoffs"}
    query = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename ... on Sensor {
        sensorState { status ticks(limit: 5) { status error { message } dynamicPartitionsRequestResults { partitionKeys } } } } } }"""
    deadline = time.monotonic() + SENSOR_TIMEOUT_S
    while True:
        state = stack.gql(query, {"s": sensor})["sensorOrError"]["sensorState"]
        added = {k for t in state["ticks"] for r in t["dynamicPartitionsRequestResults"] for k in r["partitionKeys"] or []}
        if SENSOR_CUTOFF in added:
            break
        assert time.monotonic() < deadline, f"sensor did not register {SENSOR_CUTOFF}: {state}\n{stack.logs()}"
        time.sleep(1)
    assert state["status"] == "RUNNING"
    assert added == {SENSOR_CUTOFF}  # the four prepared cutoffs were already there
    # A tick that only adds partitions (no run request) is recorded as SKIPPED; FAILURE would carry the error.
    assert all(t["status"] in ("SUCCESS", "SKIPPED") and t["error"] is None for t in state["ticks"]), state


def test_asset_graph_lists_every_group_partition_edge_and_check(stack):
    nodes = stack.gql("""{ assetNodes { assetKey { path } groupName isPartitioned dependencyKeys { path }
        partitionKeysByDimension { name partitionKeys }
        assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }""")["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    graph = build_definitions(stack.project.settings, stack.project.config_path).resolve_asset_graph()
    expected = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()}
    assert set(by_key) == set(expected)
    assert EXPECTED_GROUPS <= {n["groupName"] for n in nodes}
    cutoffs = sorted([*CUTOFFS, SENSOR_CUTOFF])
    divisions = list(stack.project.settings.divisions)
    for key, node in expected.items():
        got = by_key[key]
        assert got["groupName"] == node.group_name, key
        assert {"/".join(d["path"]) for d in got["dependencyKeys"]} == {p.to_user_string() for p in node.parent_keys}
        assert {c["name"] for c in got["assetChecksOrError"]["checks"]} == {c.name for c in node.check_keys}, key
        dims = {d["name"]: d["partitionKeys"] for d in got["partitionKeysByDimension"]}
        if node.partitions_def is None:
            assert not got["isPartitioned"] and dims == {}, key
        elif set(dims) == {"cutoff", "division"}:
            assert sorted(dims["cutoff"]) == cutoffs and dims["division"] == divisions, key
        else:  # the cutoff partitions (a single dimension)
            assert list(dims) == ["default"] and sorted(dims["default"]) == cutoffs, key
    # the scoring path's own partitioning and wiring
    assert {"division_model", "division_features"} <= {"/".join(d["path"]) for d in by_key["icp_scores"]["dependencyKeys"]}
    assert by_key["division_model"]["isPartitioned"] and by_key["icp_scores"]["isPartitioned"]


def test_scoring_run_is_queued_then_dequeued_by_the_daemon_and_succeeds(stack, scored_run):
    run = scored_run["run"]
    assert run["status"] == "SUCCESS" and run["jobName"] == DIVISION_CUTOFF_JOB
    assert scored_run["statuses"][0] == "QUEUED"  # QueuedRunCoordinator: only the daemon starts it
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/partition"] == PARTITION
    assert tags["gosales/config_checksum"] == stack.project.settings.checksum
    assert sorted("/".join(a["path"]) for a in run["assetSelection"]) == sorted(SCORING_PATH)
    # the run's resolved config was written by the settings resource of the run worker
    assert (stack.project.settings.artifacts_dir / "runs" / scored_run["run_id"] / "config_resolved.yaml").is_file()


def test_materialization_metadata_reads_back_with_real_values(stack, scored_run):
    query = METADATA_FIELDS + """query($k: AssetKeyInput!, $p: String!) { assetOrError(assetKey: $k) { __typename
        ... on Asset { assetMaterializations(partitions: [$p], limit: 1) { runId partition metadataEntries { ...ME } } } } }"""

    def latest(asset: str) -> dict:
        mats = stack.gql(query, {"k": {"path": [asset]}, "p": PARTITION})["assetOrError"]["assetMaterializations"]
        assert len(mats) == 1, (asset, mats)
        assert mats[0]["runId"] == scored_run["run_id"] and mats[0]["partition"] == PARTITION
        return metadata(mats[0]["metadataEntries"])

    project = stack.project
    with duckdb.connect(str(project.settings.warehouse_path), read_only=True) as conn:
        registry = conn.execute("select * from division_model where division = ? and cutoff_date = ?",
                                [DIV, C]).pl().row(0, named=True)
        scores = conn.execute("select * from icp_scores where division = ? and cutoff_date = ? order by customer_id",
                              [DIV, C]).pl()

    model = latest("division_model")
    assert 0.0 <= model["auc"] <= 1.0 and model["auc"] == pytest.approx(registry["auc"])
    assert model["lift_at_10"] > 0 and 0.0 <= model["brier"] <= 1.0 and 0.0 <= model["cal_mae"] <= 1.0
    assert model["positives"] >= project.settings.models.min_positives
    assert model["training_cutoffs"] == CUTOFFS[:3]  # C' + 6 months <= C
    assert model["model_version"] == registry["model_version"] and len(model["model_version"]) == 12
    assert model["gate"] == "all gates passed" == registry["gate_detail"]
    assert model["model_type"] in ("logistic", "lightgbm", "ensemble") and model["dagster/row_count"] == 1
    for chart in ("gains_chart", "calibration_chart"):
        prefix = f"![{chart.split('_')[0]}](data:image/png;base64,"
        assert model[chart].startswith(prefix), chart
        assert base64.b64decode(model[chart][len(prefix):-1])[:8] == b"\x89PNG\r\n\x1a\n", chart
    assert Path(model["artifacts"], "model.joblib").is_file()

    icp = latest("icp_scores")
    assert icp["dagster/row_count"] == scores.height > 0
    assert icp["checksum"] == frame_checksum(scores)  # the warehouse slice is exactly what the run checksummed
    assert icp["config_checksum"] == project.settings.checksum
    assert icp["model_version"] == registry["model_version"]
    assert icp["labels_known"] is True and icp["realized_positives"] == scores.get_column("bought_in_division").sum() > 0
    assert 0.0 < icp["mean_icp_score"] < 1.0
    assert icp["mean_icp_score"] == pytest.approx(scores.get_column("icp_score").mean(), abs=1e-6)


def test_asset_check_evaluations_read_back(stack, scored_run):
    query = METADATA_FIELDS + """query($k: AssetKeyInput!, $c: String!) {
        assetCheckExecutions(assetKey: $k, checkName: $c, limit: 10) { runId status
          evaluation { success severity description targetMaterialization { runId } metadataEntries { ...ME } } } }"""
    results = {}
    for check in scored_run["checks"]:
        asset, name = check["assetKey"]["path"][0], check["name"]
        execs = [e for e in stack.gql(query, {"k": check["assetKey"], "c": name})["assetCheckExecutions"]
                 if e["runId"] == scored_run["run_id"]]
        assert len(execs) == 1, (asset, name, execs)
        results[(asset, name)] = execs[0]
    assert set(results) == {("division_model", n) for n in ("promotion_gate", "fold_overlap", "time_order",
                                                          "static_scan", "feature_shift")} | {
        ("icp_scores", "contract"), ("icp_scores", "zero_prevalence_guard")}
    for key, ex in results.items():
        ev = ex["evaluation"]
        assert ex["status"] == "SUCCEEDED" and ev["success"] is True, (key, ev["description"])
        assert ev["severity"] == "ERROR", key  # blocking checks that would have stopped the run
        assert ev["targetMaterialization"]["runId"] == scored_run["run_id"], key

    gate = results[("division_model", "promotion_gate")]["evaluation"]
    values = metadata(gate["metadataEntries"])
    thresholds = stack.project.settings.gate_thresholds(DIV)
    assert gate["description"] == "all gates passed"
    assert (values["auc_min"], values["lift10_min"], values["cal_mae_max"]) == (
        thresholds.auc_min, thresholds.lift10_min, thresholds.cal_mae_max)
    assert values["auc"] >= values["auc_min"] and values["lift_at_10"] >= values["lift10_min"]
    assert values["cal_mae"] <= values["cal_mae_max"]
    time_order = metadata(results[("division_model", "time_order")]["evaluation"]["metadataEntries"])["detail"]
    assert time_order["violations"] == [] and [c for c, _ in time_order["training_cutoffs"]] == CUTOFFS[:3]
    contract = metadata(results[("icp_scores", "contract")]["evaluation"]["metadataEntries"])
    assert contract["rows"] > 0 and contract["failed_rows"] == 0


def test_shutdown_is_clean_no_orphans_and_port_released(stack):
    stack.record_members()
    assert len(stack.members) >= 4, stack.members  # webserver, daemon and at least one code server each
    left = stack.stop()
    assert [s.name for s in stack.services if s.killed] == [], f"needed SIGKILL after SIGTERM\n{stack.logs()}"
    in_groups = [pid for pid in _all_pids() if (st := _proc_stat(pid)) is not None and st[0] != "Z"
                 and (st[2] in {s.group for s in stack.services} or st[3] in {s.group for s in stack.services})]
    assert not left and not in_groups, f"processes left after shutdown: {left} {in_groups}"
    assert all(s.proc.returncode is not None for s in stack.services)
    assert port_can_be_bound(stack.port)
