"""A real `dagster-webserver` + `dagster-daemon` on 127.0.0.1, driven through GraphQL as the UI drives it.

Shared by the end-to-end test (`test_webserver_e2e.py`) and the native-execution benchmark
(`benchmarks/bench_native.py`):
- process management: each service leads its own session and process group; `Stack.stop()` sends SIGTERM to every
  group, SIGKILL to what is left after a timeout, and kills any process seen while running that outlived it (run
  workers and code servers included), so nothing is left behind even when the caller fails;
- GraphQL: queries of runs, backfills and metadata entries, `launchPartitionBackfill` with one partitions selection
  per asset, the failure report of a run (error events, daemon health, service logs).

Nothing here is pytest-specific: failures raise `StackError` (or `TimeoutError`), which a test reports as an error.
"""

from __future__ import annotations

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent  # the venv's console scripts: dagster-webserver, dagster-daemon
LOCATION, REPOSITORY = "gosales_assets", "__repository__"
REPO = Path(__file__).resolve().parents[1]

STARTUP_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
ACTIVE_RUN = ("STARTING", "STARTED", "CANCELING")
FINISHED_RUN = ("SUCCESS", "FAILURE", "CANCELED")
FINISHED_BACKFILL = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")


class StackError(RuntimeError):
    """A service died, a GraphQL call answered with errors, or a launch was refused."""


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


def pids_in_groups(groups: set[int]) -> list[int]:
    """Live processes whose process group or session is one of `groups`."""
    return [pid for pid in _all_pids() if (st := _proc_stat(pid)) is not None and st[0] != "Z"
            and (st[2] in groups or st[3] in groups)]


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


def start_service(name: str, argv: list[str], cwd: Path, env: Mapping[str, str]) -> Service:
    """Start `argv` in its own session (so that it and its children can be stopped as a group), output to
    `<cwd>/<name>.log`."""
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return Service(name, proc, log)


# --------------------------------------------------------------------------------------------------------------
# a project folder the services run in
# --------------------------------------------------------------------------------------------------------------
def pool_slots() -> int:
    """The warehouse pool's slots in the repository's dagster.yaml: how many runs of the graph may go at once (they
    take turns with the warehouse file through its lease)."""
    import yaml

    return int(yaml.safe_load((REPO / "dagster.yaml").read_text())["concurrency"]["pools"]["default_limit"])


def write_workspace(root: Path) -> Path:
    """`<root>/workspace.yaml`: the code location `gosales_assets` from the installed package."""
    path = root / "workspace.yaml"
    path.write_text("load_from:\n  - python_module:\n      module_name: gosales_assets.definitions\n"
                    f"      location_name: {LOCATION}\n")
    return path


def install_instance_config(dagster_home: Path) -> Path:
    """The repository's dagster.yaml (queued runs, one warehouse slot per run) in `dagster_home`."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml"))


def service_env(*, dagster_home: Path, config_path: Path, gosales_home: Path,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the webserver and the daemon (and so of their code servers and run workers)."""
    return {**(os.environ if base is None else base), "DAGSTER_HOME": str(dagster_home),
            "GOSALES_CONFIG": str(config_path), "GOSALES_HOME": str(gosales_home), "OMP_WAIT_POLICY": "PASSIVE",
            "PYTHONUNBUFFERED": "1"}


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


RUN_FIELDS = "runId status jobName creationTime startTime endTime tags { key value } assetSelection { path } allPools"
RUN_QUERY = f"""query($id: ID!) {{ runOrError(runId: $id) {{ __typename ... on Run {{ {RUN_FIELDS} }}
  ... on Error {{ message }} }} }}"""
BACKFILL_RUNS_QUERY = f"""query($tag: String!) {{
  runsOrError(filter: {{tags: [{{key: "dagster/backfill", value: $tag}}]}}) {{ __typename
    ... on Runs {{ results {{ {RUN_FIELDS} }} }} ... on Error {{ message }} }} }}"""
BACKFILL_QUERY = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { id status isAssetBackfill title tags { key value } error { message }
    assetBackfillData { assetBackfillStatuses { __typename
      ... on AssetPartitionsStatusCounts { assetKey { path } numPartitionsTargeted numPartitionsInProgress
                                           numPartitionsMaterialized numPartitionsFailed }
      ... on UnpartitionedAssetStatus { assetKey { path } inProgress materialized failed } } } }
  ... on Error { message } } }"""
DAEMON_HEALTH_QUERY = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
LOCATION_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


@dataclass
class Stack:
    """The services of one DAGSTER_HOME, started in `root` (which holds workspace.yaml) with `env`. `project` is
    whatever the caller runs against (the e2e test keeps its Project there)."""

    root: Path
    port: int
    env: dict[str, str]
    project: Any = None
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
        if doc.get("errors"):
            raise StackError(f"GraphQL errors: {doc['errors']}\nquery: {query}")
        return doc["data"]

    def run(self, run_id: str) -> dict:
        run = self.gql(RUN_QUERY, {"id": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise StackError(f"run {run_id}: {run}")
        return run

    def backfill(self, backfill_id: str) -> dict:
        bf = self.gql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        if bf["__typename"] != "PartitionBackfill":
            raise StackError(f"backfill {backfill_id}: {bf}")
        return bf

    def backfill_runs(self, backfill_id: str) -> list[dict]:
        runs = self.gql(BACKFILL_RUNS_QUERY, {"tag": backfill_id})["runsOrError"]
        if runs["__typename"] != "Runs":
            raise StackError(f"runs of backfill {backfill_id}: {runs}")
        return runs["results"]

    def start_webserver(self) -> None:
        """`dagster-webserver` on 127.0.0.1:`port`, once."""
        if not any(s.name == "webserver" for s in self.services):
            self.services.append(start_service("webserver", [str(BIN / "dagster-webserver"), "-w", "workspace.yaml",
                                                             "-h", "127.0.0.1", "-p", str(self.port)],
                                               self.root, self.env))

    def start_daemon(self) -> None:
        """`dagster-daemon run` (run queue, backfills, sensors), once; its code server loads the same workspace."""
        if not any(s.name == "daemon" for s in self.services):
            self.services.append(start_service("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                                               self.root, self.env))

    def start_dev(self) -> None:
        """`dagster dev` on 127.0.0.1:`port`, once: what `make ui` runs. It starts the webserver and the daemon with
        one code server they share (kept running: the daemon's workspace refresh every minute asks it for the
        definitions instead of starting a fresh code server of its own, as `dagster-daemon run` alone does)."""
        if not any(s.name == "dev" for s in self.services):
            self.services.append(start_service("dev", [str(BIN / "dagster"), "dev", "-w", "workspace.yaml",
                                                       "-h", "127.0.0.1", "-p", str(self.port)],
                                               self.root, self.env))

    def check_alive(self) -> None:
        for s in self.services:
            if s.proc.poll() is not None:
                raise StackError(f"{s.name} exited with {s.proc.returncode}\n{self.logs()}")

    def wait_until_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """/server_info answers, then the code location is LOADED (a load error raises with its message)."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as resp:
                    info = json.loads(resp.read())
                entries = self.gql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
                last = f"server {info}, locations {entries}"
                if entries and entries[0]["loadStatus"] == "LOADED":
                    loaded = entries[0]["locationOrLoadError"]
                    if loaded["__typename"] != "RepositoryLocation":
                        raise StackError(f"code location failed to load: {loaded}")
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                last = repr(err)
            time.sleep(0.5)
        raise TimeoutError(f"dagster-webserver not ready after {timeout:.0f}s ({last})\n{self.logs()}")

    def daemon_statuses(self) -> dict[str, bool]:
        """{daemon type: healthy} of the daemons this instance requires."""
        found = self.gql(DAEMON_HEALTH_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return {d["daemonType"]: d["healthy"] for d in found if d["required"]}

    def wait_daemon_healthy(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Every required daemon (backfills, run queue, sensors, ...) has sent a heartbeat."""
        deadline = time.monotonic() + timeout
        statuses: dict[str, bool] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            statuses = self.daemon_statuses()
            if statuses and all(statuses.values()):
                return
            time.sleep(1.0)
        raise TimeoutError(f"daemons not healthy after {timeout:.0f}s: {statuses}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(s.tail() for s in self.services)

    def record_members(self) -> None:
        for s in self.services:
            self.members.update(s.members())

    def stop(self) -> dict[int, int]:
        """Stop every service; returns the processes seen while running that outlived it ({pid: start time}),
        after killing them, so that even a failing caller leaves nothing behind."""
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


def run_failure_report(st: Stack, run_id: str) -> str:
    """The run's error events and the daemon's health, for a failure message."""
    events = st.gql("""query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection { events {
        __typename ... on MessageEvent { message level stepKey }
        ... on ExecutionStepFailureEvent { error { message stack } }
        ... on RunFailureEvent { error { message } } } } ... on Error { message } } }""", {"id": run_id})["logsForRun"]
    bad = [e for e in events.get("events", []) if e.get("level") in ("ERROR", "CRITICAL") or "error" in e]
    health = st.gql(DAEMON_HEALTH_QUERY)
    return f"run {run_id} error events: {json.dumps(bad, indent=1)[:6000]}\ndaemons: {health}\n{st.logs()}"


def tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def assets_of(run: dict) -> set[str]:
    return {"/".join(a["path"]) for a in run["assetSelection"] or []}


def targets_by_asset(targets: Iterable[Any]) -> dict[str, list[str] | None]:
    """(asset, partition) pairs (`AssetKeyPartitionKey`s, e.g. from `runner.target_partitions`) as {asset: sorted
    partition keys (None: unpartitioned)}."""
    out: dict[str, list[str] | None] = {}
    for t in targets:
        name = t.asset_key.to_user_string()
        if t.partition_key is None:
            out[name] = None
        else:
            out.setdefault(name, []).append(str(t.partition_key))
    return {k: (sorted(v) if v is not None else None) for k, v in out.items()}


def launch_backfill_via_graphql(st: Stack, targets: Mapping[str, list[str] | None], *, title: str,
                                tags: Mapping[str, str] | None = None) -> str:
    """`launchPartitionBackfill` with one partitions selection per asset (what the UI submits for assets of several
    partitionings): each chosen key as a one-key range; unpartitioned assets without partitions. Returns the
    backfill id."""
    params = {
        "title": title,
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        "partitionsByAssets": [
            {"assetKey": {"path": [asset]},
             **({"partitions": {"ranges": [{"start": k, "end": k} for k in keys]}} if keys is not None else {})}
            for asset, keys in sorted(targets.items())],
    }
    launched = st.gql("""mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
        __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
        ... on Error { message } } }""", {"p": params})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise StackError(f"launchPartitionBackfill refused: {launched}")
    return launched["backfillId"]
