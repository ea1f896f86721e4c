"""Native execution benchmark (`make bench`): the graph run by Dagster's daemon, against the same runs in process.

Run from the repository root: `.venv/bin/python benchmarks/bench_native.py` (~50 min on 2 cores, most of it part
B). It writes `benchmarks/results/native_demo.json` and the section "Native execution (make bench)" of
docs/PERFORMANCE.md (between `<!-- bench:native:… -->` markers; regenerated on every run, not edited by hand;
`--render-only` rewrites it from the JSON).

The default demo config (gosales_assets/gosales.yaml, frozen as a copy in the work folder: 12 divisions, cutoffs
2025-03-31 … 2026-06-30 quarterly, data to 2026-10-31) and its demo data (`gosales demo-data`: 3,000 customers,
seed 7), each home a temporary GOSALES_HOME with DAGSTER_HOME = <home>/dagster_home and the repository's
dagster.yaml (queued runs, one warehouse slot per run):

A. The monthly action, natively. Home 1: `runner.materialize` of the configured cutoffs in process (this is also
   B's in-process reference), then the whole home is copied to home 2. On home 1, `dagster dev` (what `make ui`
   runs: webserver + daemon sharing one code server, started and healthy first) runs a native backfill of ONE
   more cutoff, 2026-09, launched through GraphQL `launchPartitionBackfill` (targets: `target_partitions(graph, settings,
   cutoffs=["2026-09-30"], star=False, reports=False)`). On home 2 the same targets run in process
   (`runner.materialize_targets`, in a fresh interpreter), each run timed. The bar: the native runs themselves
   (start-up + steps) cost ≤ 2× the same partitions in process.
B. The whole demo as one native backfill: a fresh home 3, `dagster dev`, one backfill of every asset of every
   configured cutoff (`target_partitions(graph, settings)`: star and reports included) from an empty warehouse,
   compared with home 1's in-process materialize of the same config (a fresh home on the same demo data). No
   ratio target: the floor is set by the backfill daemon's 30 s iteration and the graph's depth.

Timings of a native run come from the instance (run record + event log): created (RUN_ENQUEUED) → RUN_DEQUEUED →
RUN_STARTING (queue wait) → RUN_START → first STEP_START (start-up: process spawn, code location load, resource
set-up) → run end (steps). The backfill's wall time (submitted → marked completed by the daemon) is split on one
timeline: at each instant the most advanced state of any run counts (steps > start-up > queued); the rest is
waiting for the daemon (its next iteration creates runs or marks the backfill completed).
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The engine's code comes from a snapshot taken when the benchmark starts (the checkout is shared and edited while
# the benchmark runs for 20 minutes): the parent puts it first on sys.path and on PYTHONPATH, so the in-process
# children, the webserver, the daemon, their code servers and every run worker import the same code.
CODE_ENV = "GOSALES_BENCH_CODE"
if os.environ.get(CODE_ENV):
    sys.path.insert(0, os.environ[CODE_ENV])

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported anywhere (see the Makefile)

RESULTS = ROOT / "benchmarks" / "results" / "native_demo.json"
DOC = ROOT / "docs" / "PERFORMANCE.md"
MARK_START, MARK_END = "<!-- bench:native:start -->", "<!-- bench:native:end -->"
DEFAULT_CONFIG = ROOT / "gosales_assets" / "gosales.yaml"
NEW_CUTOFF = "2026-09-30"
RATIO_BAR = 2.0
BACKFILL_TIMEOUT_S = 3600
POLL_S = 2.0
TICK_GAP_S = 5.0  # run creations closer than this belong to one daemon iteration
DEQUEUE_DEFAULT_S = 5  # QueuedRunCoordinator's dequeue_interval_seconds when dagster.yaml does not set it
REGISTRY_FIELDS = ("status", "model_version", "auc", "lift_at_10", "brier", "cal_mae")
RUN_STATUS_LINE = re.compile(r"^(ok|held|failed|skipped)\s")
DAEMON_LOG_TIME = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) \+0000")


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fmt_s(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if abs(x) >= 600:
        return f"{x / 60:.1f} min"
    return f"{x:.0f} s" if abs(x) >= 100 else (f"{x:.1f} s" if abs(x) >= 1 else f"{x:.2f} s")


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "–"


class LoadSampler:
    """1-minute load averages sampled while a phase runs (2 cores, shared with other work)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def sample(self, phase: str) -> None:
        self.samples.setdefault(phase, []).append(os.getloadavg()[0])

    def summary(self) -> dict[str, dict]:
        return {p: {"mean": round(sum(v) / len(v), 2), "max": round(max(v), 2), "samples": len(v)}
                for p, v in self.samples.items() if v}


def copy_home(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


def prepare_home(home: Path, landing_src: Path, dagster_yaml: Path) -> None:
    home.mkdir(parents=True)
    shutil.copytree(landing_src, home / "landing")
    (home / "dagster_home").mkdir()
    shutil.copy(dagster_yaml, home / "dagster_home" / "dagster.yaml")


def snapshot_code(work: Path, source: str) -> dict:
    """`gosales_assets/` and dagster.yaml as of HEAD (`git archive`, read only) or of the working tree, under
    <work>/code, byte-compiled; that folder then goes first on sys.path and PYTHONPATH."""
    code = work / "code"
    code.mkdir()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if source == "head":
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", "gosales_assets", "dagster.yaml"],
                                 cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(code, filter="data")
    else:
        shutil.copytree(ROOT / "gosales_assets", code / "gosales_assets",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy(ROOT / "dagster.yaml", code / "dagster.yaml")
    digest = hashlib.sha256()
    for f in sorted((code / "gosales_assets").rglob("*")):
        if f.is_file():
            digest.update(f.relative_to(code).as_posix().encode() + b"\0" + f.read_bytes())
    # Byte-compiled, as an installed package is: where PYTHONDONTWRITEBYTECODE is set (this machine's shells) no
    # process writes bytecode, so every run worker would compile the engine's sources again (~0.2 CPU-s a run).
    compileall.compile_dir(code / "gosales_assets", quiet=1)
    os.environ[CODE_ENV] = str(code)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [os.environ.get("PYTHONPATH")])])
    sys.path.insert(0, str(code))
    return {"source": source, "commit": commit, "files_sha256": digest.hexdigest()[:16], "path": str(code)}


def open_instance(dagster_home: Path):
    """The DagsterInstance of a home (its dagster.yaml resolves the storage from DAGSTER_HOME)."""
    from dagster import DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return DagsterInstance.get()


def warehouse_snapshot(warehouse: Path) -> dict:
    """The division_model registry (per partition) and the whitespace checksums (per cutoff) of a warehouse."""
    import duckdb

    out: dict = {"registry": {}, "whitespace": {}}
    if not warehouse.exists():
        return out
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        tables = {r[0] for r in conn.execute("select table_name from information_schema.tables").fetchall()}
        if "division_model" in tables:
            cols = ", ".join(REGISTRY_FIELDS)
            for row in conn.execute(f"select division, cutoff_date, {cols} from division_model "
                                    "order by cutoff_date, division").fetchall():
                out["registry"][f"{row[1].isoformat()}|{row[0]}"] = {
                    f: (None if isinstance(v, float) and math.isnan(v) else v)
                    for f, v in zip(REGISTRY_FIELDS, row[2:])}
        if "whitespace_metrics" in tables:
            for c, checksum, rows in conn.execute("select cutoff_date, checksum, rows from whitespace_metrics "
                                                  "order by cutoff_date").fetchall():
                out["whitespace"][c.isoformat()] = {"checksum": checksum, "rows": rows}
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compare_snapshots(native: dict, inproc: dict, cutoffs: Iterable[str]) -> dict:
    """Registry fields and whitespace checksums of the chosen cutoffs, native vs in process."""
    cutoffs = set(cutoffs)
    keys = sorted(k for k in set(native["registry"]) | set(inproc["registry"]) if k.split("|")[0] in cutoffs)
    reg_diffs, max_abs = [], 0.0
    for k in keys:
        a, b = native["registry"].get(k), inproc["registry"].get(k)
        if a is None or b is None:
            reg_diffs.append({"partition": k, "missing_in": "native" if a is None else "in_process"})
            continue
        bad = {f: [a[f], b[f]] for f in REGISTRY_FIELDS if not _same(a[f], b[f])}
        for f in ("auc", "lift_at_10", "brier", "cal_mae"):
            if isinstance(a[f], float) and isinstance(b[f], float) and not (math.isnan(a[f]) or math.isnan(b[f])):
                max_abs = max(max_abs, abs(a[f] - b[f]))
        if bad:
            reg_diffs.append({"partition": k, "fields": bad})
    ws_keys = sorted(k for k in set(native["whitespace"]) | set(inproc["whitespace"]) if k in cutoffs)
    ws = {k: {"native": (native["whitespace"].get(k) or {}).get("checksum"),
              "in_process": (inproc["whitespace"].get(k) or {}).get("checksum"),
              "rows": (native["whitespace"].get(k) or {}).get("rows")} for k in ws_keys}
    for v in ws.values():
        v["equal"] = v["native"] is not None and v["native"] == v["in_process"]
    statuses: dict[str, int] = {}
    for k in keys:
        s = (native["registry"].get(k) or {}).get("status")
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    return {"registry_partitions": len(keys), "registry_equal": len(keys) - len(reg_diffs),
            "registry_diffs": reg_diffs[:20], "registry_max_abs_metric_diff": max_abs,
            "registry_statuses_native": statuses,
            "whitespace": ws, "whitespace_equal": sum(v["equal"] for v in ws.values()), "whitespace_cutoffs": len(ws)}


def run_kind(partition: str | None, assets: Iterable[str]) -> str:
    """A label for a run: its partitioning and its assets (native runs use Dagster's implicit asset job)."""
    part = "unpartitioned" if not partition else ("division × cutoff" if "|" in partition else "cutoff")
    return f"{part}: {', '.join(sorted(assets))}"


# ---------------------------------------------------------------------------------------------------------
# timings of runs from an instance
# ---------------------------------------------------------------------------------------------------------
def run_timings(instance, run_ids: Iterable[str]) -> list[dict]:
    """Per run: created, enqueued, dequeued, starting, start, first step start, end (epoch seconds) and the
    durations derived from them; partition, assets, status."""
    from dagster import DagsterEventType

    kinds = {DagsterEventType.RUN_ENQUEUED: "enqueued", DagsterEventType.RUN_DEQUEUED: "dequeued",
             DagsterEventType.RUN_STARTING: "starting", DagsterEventType.RUN_START: "start",
             DagsterEventType.RUN_SUCCESS: "end", DagsterEventType.RUN_FAILURE: "end",
             DagsterEventType.RUN_CANCELED: "end"}
    out = []
    for run_id in run_ids:
        record = instance.get_run_record_by_id(run_id)
        run = record.dagster_run
        t: dict[str, float | None] = {k: None for k in ("enqueued", "dequeued", "starting", "start", "end")}
        first_step = None
        steps = 0
        for e in instance.all_logs(run_id, of_type={*kinds, DagsterEventType.STEP_START}):
            kind = e.dagster_event.event_type
            if kind == DagsterEventType.STEP_START:
                steps += 1
                first_step = e.timestamp if first_step is None else min(first_step, e.timestamp)
            elif t[kinds[kind]] is None:
                t[kinds[kind]] = e.timestamp
        created = record.create_timestamp.timestamp()
        t_created = t["enqueued"] or created
        launched = t["starting"] or t["dequeued"] or t["start"]  # in process: no queue, the run starts at once
        end = t["end"] or record.end_time or first_step or launched or t_created  # (a run that never ended)
        r = {"run_id": run_id, "partition": run.tags.get("dagster/partition"),
             "assets": sorted(k.to_user_string() for k in (run.asset_selection or [])),
             "pools": sorted(run.run_op_concurrency.all_pools or []) if run.run_op_concurrency else [],
             "status": run.status.value, "job": run.job_name, "steps": steps, "created": t_created, **t,
             "first_step": first_step, "end": end}
        r["kind"] = run_kind(r["partition"], r["assets"])
        r["error"] = run_error(instance, run_id) if run.status.value == "FAILURE" else None
        if launched is not None and t["enqueued"] is not None:
            r["queue_s"] = launched - t_created
            r["queued_s"] = (t["dequeued"] or launched) - t_created          # waiting in the queue (pool, limit)
            r["dequeue_to_starting_s"] = launched - (t["dequeued"] or launched)  # the launcher
        else:
            r["queue_s"] = r["queued_s"] = r["dequeue_to_starting_s"] = 0.0
        begin = launched if t["enqueued"] is not None else created
        r["startup_s"] = (first_step or end) - begin
        r["spawn_load_s"] = (t["start"] - begin) if t["start"] is not None and t["enqueued"] is not None else None
        r["setup_s"] = (first_step - t["start"]) if first_step is not None and t["start"] is not None else None
        r["steps_s"] = end - first_step if first_step is not None else 0.0
        r["run_s"] = r["startup_s"] + r["steps_s"]
        out.append(r)
    return sorted(out, key=lambda r: r["created"])


def run_error(instance, run_id: str) -> str | None:
    """The first line of the innermost cause of a failed run's first error (step, resource init or run failure)."""
    from dagster import DagsterEventType

    for e in instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RESOURCE_INIT_FAILURE,
                                                DagsterEventType.RUN_FAILURE}):
        err = getattr(e.dagster_event.event_specific_data, "error", None)
        while err is not None and err.cause is not None:
            err = err.cause
        if err is not None and err.message:
            return err.message.strip().splitlines()[0][:300]
    return None



def overlaps(runs: list[dict], slots: int = 1) -> list[list[str]]:
    """Groups of more than `slots` runs of one pool (as Dagster recorded the run's pools) that held a run worker at
    the same time (RUN_STARTING → end): every run of the graph is in a warehouse pool, so its `slots` slots should
    make this empty."""
    out = []
    for pool in sorted({p for r in runs for p in r.get("pools") or [""]}):
        spans = sorted((r["starting"] or r["start"] or r["end"], r["end"], r["run_id"][:8]) for r in runs
                       if pool in (r.get("pools") or [""]))
        for i, (start, _, run_id) in enumerate(spans):
            active = [b[2] for b in spans[:i] if b[1] > start]
            if len(active) >= slots:
                out.append([*active, run_id])
    return out


def timeline(t0: float, t1: float, runs: list[dict]) -> dict:
    """The wall time t0 → t1 split by what the most advanced run was doing (steps > start-up > queued); time with
    no run queued or running is waiting for the daemon (before the first run, between runs, after the last)."""
    segs = []
    for r in runs:
        launched = r["starting"] or r["dequeued"] or r["start"] or r["first_step"] or r["end"]
        first = r["first_step"] or r["end"]
        segs += [(r["created"], launched, "queue"), (launched, first, "startup"), (first, r["end"], "steps")]
    prio = {"steps": 3, "startup": 2, "queue": 1}
    points = sorted({t0, t1, *(min(max(x, t0), t1) for s in segs for x in s[:2])})
    first_created = min((r["created"] for r in runs), default=t1)
    last_end = max((r["end"] for r in runs), default=t0)
    out = dict.fromkeys(("steps", "startup", "queue", "daemon_before_first_run", "daemon_between_runs",
                         "daemon_after_last_run"), 0.0)
    for a, b in zip(points, points[1:]):
        mid = (a + b) / 2
        cats = [c for x, y, c in segs if x <= mid < y]
        if cats:
            out[max(cats, key=prio.get)] += b - a
        elif mid < first_created:
            out["daemon_before_first_run"] += b - a
        elif mid >= last_end:
            out["daemon_after_last_run"] += b - a
        else:
            out["daemon_between_runs"] += b - a
    out["daemon"] = out["daemon_before_first_run"] + out["daemon_between_runs"] + out["daemon_after_last_run"]
    out["wall"] = t1 - t0
    return {k: round(v, 3) for k, v in out.items()}


def daemon_ticks(t_submit: float, runs: list[dict]) -> list[dict]:
    """Run creations grouped into daemon iterations (creations within TICK_GAP_S of each other); per tick: its
    time after submission, the runs it created and how long the daemon left the queue empty before it (since
    the later of submission and the last run end before the tick)."""
    ticks: list[dict] = []
    for r in sorted(runs, key=lambda r: r["created"]):
        if ticks and r["created"] - ticks[-1]["last"] <= TICK_GAP_S:
            ticks[-1]["last"] = r["created"]
            ticks[-1]["runs"] += 1
        else:
            ticks.append({"first": r["created"], "last": r["created"], "runs": 1})
    for t in ticks:
        ended = [r["end"] for r in runs if r["end"] is not None and r["end"] <= t["first"]]
        busy = [r for r in runs if r["created"] < t["first"] and (r["end"] or math.inf) > t["first"]]
        t["at_s"] = round(t["first"] - t_submit, 1)
        t["idle_before_s"] = 0.0 if busy else round(t["first"] - max([t_submit, *ended]), 1)
        t["span_s"] = round(t["last"] - t["first"], 1)
        del t["first"], t["last"]
    return ticks


def daemon_iterations(daemon_log: Path, backfill_id: str, t0: float, t1: float) -> int:
    """Iterations of the backfill daemon that evaluated this backfill (its log line per evaluation)."""
    if not daemon_log.exists():
        return 0
    n = 0
    for line in daemon_log.read_text(errors="replace").splitlines():
        if f"Evaluating asset backfill {backfill_id}" in line and (m := DAEMON_LOG_TIME.search(line)):
            t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
            n += t0 - 1 <= t <= t1 + 1
    return n


def plan_depth(graph, targets) -> dict:
    """Runs of `runner.plan_runs` for these targets and the longest chain of runs that depend on each other: a
    native backfill needs at least one daemon iteration per link (a run is created only after its upstream
    runs have finished)."""
    from gosales_assets.runner import plan_runs

    plan = plan_runs(graph, targets)
    run_of = {}
    for i, run in enumerate(plan):
        for k in run.assets:
            run_of[(k, run.partition or "")] = i
    depth = [1] * len(plan)
    targets = set(targets)
    for t in sorted(targets, key=lambda t: run_of[(t.asset_key, str(t.partition_key or ""))]):
        i = run_of[(t.asset_key, str(t.partition_key or ""))]
        for p in graph.get_parents_partitions(t.asset_key, t.partition_key).parent_partitions:
            j = run_of.get((p.asset_key, str(p.partition_key or "")))
            if j is not None and j != i and p in targets:
                depth[i] = max(depth[i], depth[j] + 1)
    return {"planned_runs": len(plan), "depth_runs": max(depth, default=0)}


# ---------------------------------------------------------------------------------------------------------
# in process (a child interpreter per home: its own DAGSTER_HOME, nothing left open afterwards)
# ---------------------------------------------------------------------------------------------------------
def child_materialize(args: argparse.Namespace) -> int:
    home, cfg = Path(args.home), Path(args.cfg)
    os.environ.update({"DAGSTER_HOME": str(home / "dagster_home"), "GOSALES_HOME": str(home),
                       "GOSALES_CONFIG": str(cfg)})
    t_import = time.time()
    from dagster import DagsterInstance

    from gosales_assets.definitions import build_definitions
    from gosales_assets.runner import materialize_targets, summarize, target_partitions
    from gosales_assets.settings import load_settings

    settings = load_settings(cfg, home=home)
    defs = build_definitions(settings, cfg)
    graph = defs.resolve_asset_graph()
    t_defs = time.time()
    targets = target_partitions(graph, settings, cutoffs=args.cutoff or None, star=not args.no_star,
                                reports=not args.no_reports)
    stamps: list[float] = []
    t_plan = [0.0]

    def runlog(line: str) -> None:
        now = time.time()
        if line.startswith("materialize "):
            t_plan[0] = now
        elif RUN_STATUS_LINE.match(line):
            stamps.append(now)
        print(f"    {line}", flush=True)

    with DagsterInstance.get() as instance:
        t0 = time.time()
        outcomes = materialize_targets(defs, instance, targets, log=runlog)
        t1 = time.time()
        walls = [b - a for a, b in zip([t_plan[0], *stamps], stamps)]
        timings = {r["run_id"]: r for r in run_timings(instance, [o.run_id for o in outcomes if o.run_id])}
    runs = []
    for o, wall in zip(outcomes, walls):
        r = {"job": o.job, "partition": o.partition, "run_id": o.run_id, "outcome": o.status, "held": o.held,
             "error": o.error, "wall_s": round(wall, 3)}
        if o.run_id in timings:
            tm = timings[o.run_id]
            r |= {"kind": tm["kind"], "assets": tm["assets"], "startup_s": round(tm["startup_s"], 3),
                  "steps_s": round(tm["steps_s"], 3)}
        runs.append(r)
    import gosales_assets

    out = {"code": gosales_assets.__file__,
           "targets": sorted(f"{t.asset_key.to_user_string()} {t.partition_key or ''}".strip() for t in targets),
           "load_code_s": round(t_defs - t_import, 3), "plan_s": round(t_plan[0] - t0, 3), "wall_s": round(t1 - t0, 3),
           "counts": summarize(outcomes), "runs": runs,
           "snapshot": warehouse_snapshot(settings.warehouse_path)}
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    return 0


def in_process(name: str, home: Path, cfg: Path, out: Path, loads: LoadSampler, *, cutoffs: list[str] | None = None,
               star: bool = True, reports: bool = True) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "materialize", "--home", str(home),
            "--cfg", str(cfg), "--out", str(out)]
    for c in cutoffs or []:
        argv += ["--cutoff", c]
    argv += [*([] if star else ["--no-star"]), *([] if reports else ["--no-reports"])]
    log(f"{name}: in-process materialize in {home}")
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    while proc.poll() is None:
        loads.sample(name)
        time.sleep(POLL_S)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: in-process child exited with {proc.returncode}")
    res = json.loads(out.read_text())
    res["process_wall_s"] = round(time.time() - t0, 3)
    log(f"{name}: {len(res['runs'])} runs in {fmt_s(res['wall_s'])}: {res['counts']}")
    return res


# ---------------------------------------------------------------------------------------------------------
# natively: `dagster dev` (webserver + daemon), a backfill launched through GraphQL
# ---------------------------------------------------------------------------------------------------------
LIGHT_BACKFILL_QUERY = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status } ... on Error { message } } }"""


DAGSTER_DEV = "dagster dev"
SEPARATE_SERVICES = "dagster-webserver + dagster-daemon"


def front_door_text(door: str | None) -> str:
    """How a measured backfill's services were started, for the docs. Measurements made before the benchmark ran
    `dagster dev` (no `front_door` recorded) started the two services on their own."""
    if door == DAGSTER_DEV:
        return "`dagster dev` (what `make ui` runs: the webserver and the daemon sharing one code server)"
    return "`dagster-webserver` + `dagster-daemon`"


def native_backfill(name: str, home: Path, cfg: Path, stack_root: Path, targets, title: str,
                    loads: LoadSampler, timeout_s: float) -> dict:
    from dagster import RunsFilter

    from gosales_assets.runner import backfill_outcomes
    from gosales_assets_tests.dagster_stack import (FINISHED_BACKFILL, Stack, free_port, launch_backfill_via_graphql,
                                                    pids_in_groups, pool_slots, port_can_be_bound, run_failure_report,
                                                    service_env, targets_by_asset, write_workspace)

    stack_root.mkdir(parents=True)
    write_workspace(stack_root)
    env = service_env(dagster_home=home / "dagster_home", config_path=cfg, gosales_home=home)
    st = Stack(stack_root, free_port(), env)
    res: dict = {"targets": len(targets)}
    try:
        t0 = time.time()
        # What ops run (`make ui`): `dagster dev`, the webserver and the daemon sharing one code server.
        st.start_dev()
        st.wait_until_ready()
        st.wait_daemon_healthy()
        res["services_ready_s"] = round(time.time() - t0, 1)
        res["front_door"] = DAGSTER_DEV
        log(f"{name}: dagster dev (webserver + daemon + their code server) ready in {res['services_ready_s']} s "
            f"(port {st.port}); launching the "
            f"backfill of {len(targets)} asset partitions through GraphQL")
        res["submitted_wall"] = time.time()
        backfill_id = launch_backfill_via_graphql(st, targets_by_asset(targets), title=title,
                                                  tags={"gosales/source": "bench"})
        res["backfill_id"] = backfill_id
        deadline, last_print, status = time.monotonic() + timeout_s, 0.0, None
        while True:
            st.check_alive()
            st.record_members()
            loads.sample(name)
            status = st.gql(LIGHT_BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]["status"]
            if status in FINISHED_BACKFILL:
                break
            if time.monotonic() - last_print > 30:
                runs = st.backfill_runs(backfill_id)
                done = sum(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
                log(f"{name}: backfill {backfill_id} {status}: {len(runs)} runs created, {done} finished")
                last_print = time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: backfill {backfill_id} still {status} after {timeout_s:.0f} s")
            time.sleep(POLL_S)
        res["observed_done_wall"] = time.time()
        res["status"] = status
        runs = st.backfill_runs(backfill_id)
        failed = [r["runId"] for r in runs if r["status"] != "SUCCESS"]
        res["failure_reports"] = [run_failure_report(st, rid)[:8000] for rid in failed[:3]]
        log(f"{name}: backfill {backfill_id} {status}, {len(runs)} runs, {len(failed)} not successful")
    finally:
        left = st.stop()
        groups = {s.group for s in st.services}
        res["shutdown"] = {"left_after_stop": sorted(left), "still_in_groups": pids_in_groups(groups),
                           "needed_sigkill": [s.name for s in st.services if s.killed],
                           "port_released": port_can_be_bound(st.port)}
    with open_instance(home / "dagster_home") as instance:
        bf = instance.get_backfill(backfill_id)
        run_ids = [r.dagster_run.run_id for r in instance.get_run_records(
            RunsFilter(tags={"dagster/backfill": backfill_id}))]
        runs = run_timings(instance, run_ids)
        outcomes = backfill_outcomes(instance, backfill_id)
        t_submit = bf.backfill_timestamp
        t_end = bf.backfill_end_timestamp or res["observed_done_wall"]
        res["dequeue_interval_s"] = getattr(instance.run_coordinator, "dequeue_interval_seconds", None)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "held", "failed")}
    slots = pool_slots()
    res.update({
        "backfill_status": bf.status.value, "t_submit": t_submit, "t_end": t_end, "wall_s": round(t_end - t_submit, 3),
        "counts": counts, "held": [h for o in outcomes for h in o.held], "runs": runs,
        "timeline": timeline(t_submit, t_end, runs), "ticks": daemon_ticks(t_submit, runs),
        "pool_slots": slots, "overlapping_runs": overlaps(runs, slots),
        "failed_runs": [{"run_id": r["run_id"], "partition": r["partition"], "assets": r["assets"],
                         "error": r["error"]} for r in runs if r["status"] != "SUCCESS"],
        "daemon_iterations_logged": daemon_iterations(stack_root / "daemon.log", backfill_id, t_submit, t_end),
        "snapshot": warehouse_snapshot(home / "warehouse.duckdb"),
    })
    res["sums"] = {k: round(sum(r[k] or 0.0 for r in runs), 3)
                   for k in ("queue_s", "queued_s", "dequeue_to_starting_s", "startup_s", "spawn_load_s", "setup_s",
                             "steps_s", "run_s")}
    log(f"{name}: wall {fmt_s(res['wall_s'])}, timeline {res['timeline']}")
    return res


# ---------------------------------------------------------------------------------------------------------
# per kind of run: native vs in process
# ---------------------------------------------------------------------------------------------------------
def by_kind(native_runs: list[dict], inproc_runs: list[dict]) -> list[dict]:
    kinds: dict[str, dict] = {}
    for r in native_runs:
        k = kinds.setdefault(r["kind"], {"kind": r["kind"], "native": [], "in_process": []})
        k["native"].append(r)
    for r in inproc_runs:
        if "kind" in r:
            kinds.setdefault(r["kind"], {"kind": r["kind"], "native": [], "in_process": []})["in_process"].append(r)

    def mean(rs, key):
        vals = [r[key] for r in rs if r.get(key) is not None]
        return round(sum(vals) / len(vals), 3) if vals else None

    out = []
    for k in kinds.values():
        n, p = k["native"], k["in_process"]
        out.append({"kind": k["kind"], "native_runs": len(n), "in_process_runs": len(p),
                    "native_queue_s": mean(n, "queue_s"), "native_spawn_load_s": mean(n, "spawn_load_s"),
                    "native_setup_s": mean(n, "setup_s"), "native_steps_s": mean(n, "steps_s"),
                    "native_run_s": mean(n, "run_s"), "in_process_steps_s": mean(p, "steps_s"),
                    "in_process_wall_s": mean(p, "wall_s"),
                    "native_run_sum_s": round(sum(r["run_s"] for r in n), 3),
                    "in_process_wall_sum_s": round(sum(r["wall_s"] for r in p), 3)})
    return sorted(out, key=lambda k: -k["native_run_sum_s"])


# ---------------------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------------------
def machine() -> dict:
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {}
    for pkg in ("dagster", "dagster-webserver", "duckdb", "polars", "lightgbm", "scikit-learn"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cores": os.cpu_count(), "ram_gib": round(mem_kb / 2**20, 1), "cpu": cpu,
            "python": platform.python_version(),
            "packages": versions, "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "reference_work": reference_work()}


def reference_work() -> dict:
    """The CPU seconds of one fixed, seeded, single-threaded piece of work (a Python loop, a NumPy sort, a LightGBM
    fit), measured where the benchmark starts: machines that report the same cores and model name differ in speed
    (two hosts of this project measured the same engine on the same data ~1.7x apart in every stage), so a result
    is read against its machine's reference (docs/PERFORMANCE.md). Process CPU time, not wall: another process
    running meanwhile changes it less."""
    import lightgbm as lgb
    import numpy as np

    def cpu(fn) -> float:
        t0 = time.process_time()
        fn()
        return round(time.process_time() - t0, 3)

    rng = np.random.default_rng(7)
    x = rng.normal(size=(100_000, 20))
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(size=100_000) > 0).astype(int)
    data = rng.random(4_000_000)
    parts = {
        "python_loop_s": cpu(lambda: sum(i * i for i in range(3_000_000))),
        "numpy_sort_s": cpu(lambda: np.sort(data, kind="stable")),
        "lightgbm_fit_s": cpu(lambda: lgb.LGBMClassifier(n_estimators=100, num_leaves=31, num_threads=1,
                                                         random_state=7, verbose=-1).fit(x, y)),
    }
    return parts | {"total_s": round(sum(parts.values()), 3)}


def git_state() -> dict:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.rstrip("\n")

    try:
        changed = [line[3:] for line in git("status", "--porcelain", "--", "gosales_assets").splitlines()]
        return {"commit": git("rev-parse", "HEAD"), "uncommitted_product_files": changed}
    except OSError:
        return {"commit": "unknown", "uncommitted_product_files": []}


# ---------------------------------------------------------------------------------------------------------
# the doc section
# ---------------------------------------------------------------------------------------------------------
def _timeline_rows(tl: dict, sums: dict, n_runs: int) -> list[str]:
    w = tl["wall"]
    return [
        "| part of the native wall time | on the timeline | share | summed over the runs |",
        "|---|---|---|---|",
        f"| waiting for the daemon: submitted → first run created | {fmt_s(tl['daemon_before_first_run'])} | "
        f"{pct(tl['daemon_before_first_run'], w)} | – |",
        f"| waiting for the daemon: no run queued or running, between runs | {fmt_s(tl['daemon_between_runs'])} | "
        f"{pct(tl['daemon_between_runs'], w)} | – |",
        f"| waiting for the daemon: last run ended → backfill marked completed | "
        f"{fmt_s(tl['daemon_after_last_run'])} | {pct(tl['daemon_after_last_run'], w)} | – |",
        f"| queue: run created (RUN_ENQUEUED) → RUN_STARTING, nothing running | {fmt_s(tl['queue'])} | "
        f"{pct(tl['queue'], w)} | mean {fmt_s(sums['queue_s'] / max(n_runs, 1))} per run (most of it behind "
        "other runs, for the slot) |",
        f"| run start-up: RUN_STARTING → first STEP_START | {fmt_s(tl['startup'])} | {pct(tl['startup'], w)} | "
        f"{fmt_s(sums['startup_s'])} = {fmt_s(sums['spawn_load_s'])} process + code location (→ RUN_START) + "
        f"{fmt_s(sums['setup_s'])} resources/plan (→ STEP_START) |",
        f"| steps: first STEP_START → run end | {fmt_s(tl['steps'])} | {pct(tl['steps'], w)} | "
        f"{fmt_s(sums['steps_s'])} |",
        f"| **wall: submitted → completed** | **{fmt_s(w)}** | 100 % | {n_runs} runs |",
    ]


def _kind_rows(kinds: list[dict]) -> list[str]:
    rows = ["| run kind (partitioning: assets) | runs native / in process | native per run: queue · process + code "
            "· resources · steps | native run (start-up + steps) | in process per run (wall · steps) |",
            "|---|---|---|---|---|"]
    for k in kinds:
        rows.append(f"| {k['kind']} | {k['native_runs']} / {k['in_process_runs']} | {fmt_s(k['native_queue_s'])} · "
                    f"{fmt_s(k['native_spawn_load_s'])} · {fmt_s(k['native_setup_s'])} · {fmt_s(k['native_steps_s'])}"
                    f" | {fmt_s(k['native_run_s'])} | {fmt_s(k['in_process_wall_s'])} · "
                    f"{fmt_s(k['in_process_steps_s'])} |")
    return rows


def _equality_line(cmp: dict) -> str:
    ws = ", ".join(f"{c} {'equal' if v['equal'] else '**differs**'} (`{str(v['native'])[:12]}`, {v['rows']} rows)"
                   for c, v in cmp["whitespace"].items())
    reg = (f"division_model registry ({', '.join(REGISTRY_FIELDS)}) equal on **{cmp['registry_equal']}/"
           f"{cmp['registry_partitions']}** partitions (largest metric difference "
           f"{cmp['registry_max_abs_metric_diff']:.3g}"
           f"; native statuses {cmp['registry_statuses_native']})")
    return f"Same results on both paths: {reg}; whitespace checksums: {ws or 'none'}."


def _failures(native: dict) -> list[str]:
    out = []
    if native["failed_runs"]:
        errs = "; ".join(f"`{f['run_id'][:8]}` {f['partition'] or ''} {', '.join(f['assets'][:3])}: "
                         f"{(f['error'] or 'no error recorded')[:160]}" for f in native["failed_runs"][:4])
        out.append(f"**Failed native runs ({len(native['failed_runs'])}):** {errs}.")
    if native["overlapping_runs"]:
        out.append(f"**Runs launched while the warehouse pool's {native.get('pool_slots', 1)} slot(s) were taken "
                   f"(the pool should prevent it): {len(native['overlapping_runs'])}** — " + ", ".join(
                       "/".join(p) for p in native["overlapping_runs"][:6]) + ".")
    return out


def _vs_rows(native: dict, inproc: dict, ratio: dict, in_label: str) -> list[str]:
    c, ic = native["counts"], inproc["counts"]
    return [
        f"| | native backfill (webserver + daemon) | {in_label} |",
        "|---|---|---|",
        f"| runs: ok / held / failed | {len(native['runs'])}: {c['ok']} / {c['held']} / {c['failed']} (backfill "
        f"{native['backfill_status']}) | {len(inproc['runs'])}: {ic['ok']} / {ic['held']} / {ic['failed']} "
        f"(skipped {ic['skipped']}) |",
        f"| wall | **{fmt_s(native['wall_s'])}** (submitted → completed) | {fmt_s(inproc['wall_s'])} "
        "(plan included) |",
        f"| the runs themselves, summed | {fmt_s(native['sums']['run_s'])} = start-up "
        f"{fmt_s(native['sums']['startup_s'])} + steps {fmt_s(native['sums']['steps_s'])} | "
        f"{fmt_s(ratio['in_process_s'])} (of which steps {fmt_s(sum(r.get('steps_s', 0) for r in inproc['runs']))})"
        f" → native **{ratio['ratio']:.2f}×**"
        + ("" if ratio["same_work"] else " (**not the same work: a run failed**)") + " |",
        f"| runs that match one to one (same partition and assets) | {ratio['matched_runs']}: "
        f"{fmt_s(ratio['matched_native_s'])} | {fmt_s(ratio['matched_in_process_s'])}"
        + (f" → {ratio['matched_ratio']:.2f}×" if ratio["matched_ratio"] else "") + " |",
    ]


def queue_floor(native: dict) -> dict:
    """What the run queue alone allows: it dequeues once per interval, and the pool admits `pool_slots` runs at once
    (1 before the warehouse lease), so a run holds its slot for a whole number of intervals."""
    interval = native.get("dequeue_interval_s") or DEQUEUE_DEFAULT_S
    slots = native.get("pool_slots", 1)
    return {"interval_s": interval, "slots": slots,
            "floor_s": sum(math.ceil(r["run_s"] / interval) * interval for r in native["runs"]) / slots}


def load_caution(res: dict) -> str:
    loads = res.get("load_average", {})
    native, inproc = loads.get("A native", {}).get("mean"), loads.get("A in process (home 2)", {}).get("mean")
    if native and inproc and inproc > 1.5 * native:
        return (f" Caution: the in-process side ran under a much higher load average ({inproc} vs {native} for the "
                "native side; other work on the machine), which makes its time longer and the ratio smaller.")
    if native and inproc and native > 1.5 * inproc:
        return (f" Caution: the native side ran under a much higher load average ({native} vs {inproc} in "
                "process), which makes the ratio larger.")
    return ""


def notes_for(res: dict) -> list[str]:
    out = []
    for part in ("A", "B"):
        n = res.get(part, {}).get("native")
        if n and n["overlapping_runs"] and not n.get("pool_existed_before") and not res.get("init_pool"):
            out.append(POOL_RACE_NOTE.format(part=part))
    return out


def render_doc(res: dict) -> str:
    a, b, base = res["A"], res["B"], res["A_base"]
    m, loads = res["machine"], res["load_average"]
    front_door = front_door_text(a["native"].get("front_door"))
    pk = m["packages"]
    pool_note = ("**The warehouse pool's limit was set on each instance before the services started "
                 "(`--init-pool`, a work-around of the first-dequeue race described below).** "
                 if res["init_pool"] else "")
    lines = [
        MARK_START,
        "## Native execution (make bench)",
        "",
        "```bash",
        ".venv/bin/python benchmarks/bench_native.py   # part of make bench; writes "
        "benchmarks/results/native_demo.json",
        "```",
        "",
        f"Measured {res['started_at'][:10]} ({fmt_s(res['total_wall_s'])} in all) on "
        + (f"the committed code of `{res['code']['commit'][:12]}` (a `git archive` snapshot taken at start, first on "
           "every process's path: the checkout is shared, and edits made during the run do not reach it)"
           if res["code"]["source"] == "head" else
           f"a snapshot of the working tree at start (commit `{res['code']['commit'][:12]}` + uncommitted changes in "
           f"{len(res['git']['uncommitted_product_files'])} files of gosales_assets/)")
        + f". Machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}, dagster {pk['dagster']}, "
        f"DuckDB {pk['duckdb']}, polars {pk['polars']}, LightGBM {pk['lightgbm']}. Written by the script (between "
        "the `bench:native` markers; not edited by hand); raw numbers in `benchmarks/results/native_demo.json`.",
        "",
        f"The default demo config ({len(res['settings']['divisions'])} divisions, {len(res['settings']['cutoffs'])} "
        f"cutoffs {res['settings']['cutoffs'][0]} … {res['settings']['cutoffs'][-1]}, data to "
        f"{res['settings']['data_end']}, {res['demo']['customers']:,} customers, seed {res['demo']['seed']}: "
        f"{res['demo']['sales_rows']:,} sales "
        "lines), each path on its own temporary GOSALES_HOME with the repository's dagster.yaml (queued runs, at most "
        "2 at once, one `gosales_warehouse` slot per run). Native: " + front_door + ", started "
        "and healthy before the backfill is submitted through GraphQL `launchPartitionBackfill` (as the UI does). "
        "In process: `runner.materialize` / `materialize_targets` in one interpreter (the code loaded once). "
        + pool_note +
        "Native run timings come from the instance: created (RUN_ENQUEUED) → RUN_STARTING (queue: the run queue "
        "daemon dequeues it and the launcher starts its process) → "
        "RUN_START (process spawn + code location load) → first STEP_START (resource set-up, plan) → run end "
        "(steps). The wall time is split on one timeline: at each instant the most advanced run state counts "
        "(steps > start-up > queued); the rest is waiting for the daemon. (The daemon runs a backfill iteration "
        "when it starts; the backfill is submitted once it is healthy, so the first wait is close to a whole "
        "30 s interval, where a daemon that has run for a while makes it 15 s on average.) The in-process time of "
        "a run runs from the previous run's outcome to its own (execute_in_process and the runner's clean-up "
        "between runs).",
        "",
        "Mean 1-minute load average (2 cores, shared with other work): "
        + ", ".join(f"{k} {v['mean']} (max {v['max']})" for k, v in loads.items()) + ".",
        "",
        f"### A. The monthly action, natively: one more cutoff ({NEW_CUTOFF[:7]})",
        "",
        f"Home 1: the configured cutoffs materialized in process ({len(base['runs'])} runs, {fmt_s(base['wall_s'])}), "
        "then copied whole (warehouse, artifacts, dagster_home) to home 2. Targets "
        "(`target_partitions(graph, settings, cutoffs=[\"2026-09-30\"], star=False, reports=False)`): its cutoff "
        f"features, its {len(res['settings']['divisions'])} division × cutoff partitions, its whitespace and top "
        f"accounts, {a['native']['targets']} asset partitions. Native on home 1, in process on home 2.",
        "",
        *_vs_rows(a["native"], a["in_process"], a["ratio"], "in process (home 2)"),
        "",
        *_timeline_rows(a["native"]["timeline"], a["native"]["sums"], len(a["native"]["runs"])),
        "",
        f"Daemon ticks that created runs: {len(a['native']['ticks'])} (after submission: "
        + ", ".join(f"+{t['at_s']:.0f} s → {t['runs']} runs" for t in a["native"]["ticks"])
        + f"); the backfill daemon evaluated the backfill {a['native']['daemon_iterations_logged']} times. Depth of "
        f"these targets: {a['depth']['depth_runs']} runs in a chain ({a['depth']['planned_runs']} runs planned in "
        "process). The run queue dequeues once every "
        f"{queue_floor(a['native'])['interval_s']} s and the pool admits {queue_floor(a['native'])['slots']} "
        f"run(s) at a time: Σ ⌈run / interval⌉ × interval / slots = {fmt_s(queue_floor(a['native'])['floor_s'])}, "
        "plus the daemon waits = "
        f"{fmt_s(queue_floor(a['native'])['floor_s'] + a['native']['timeline']['daemon'])} of the "
        f"{fmt_s(a['native']['wall_s'])} measured.",
        "",
        *_failures(a["native"]),
        "",
        *_kind_rows(a["kinds"]),
        "",
        f"**Bar — the runs themselves (start-up + steps) ≤ {RATIO_BAR:.0f}× the same partitions in process: "
        f"{a['ratio']['ratio']:.2f}× ({fmt_s(a['ratio']['native_s'])} over {a['ratio']['native_runs']} native runs vs "
        f"{fmt_s(a['ratio']['in_process_s'])} over {a['ratio']['in_process_runs']} in process): "
        f"{'met' if a['ratio']['met'] else 'NOT met'}"
        + ("" if a["ratio"]["same_work"] else " (with failed runs: not the same work)") + ".**"
        + load_caution(res) + " The whole native wall "
        f"time is {a['native']['wall_s'] / a['in_process']['wall_s']:.1f}× the in-process one.",
        "",
        _equality_line(a["compare"]),
        "",
        "### B. The whole demo as one native backfill",
        "",
        "A fresh home and an empty warehouse: one backfill of every asset of every configured cutoff, star and "
        f"reports included ({b['native']['targets']} asset partitions). In-process reference: home 1's "
        "materialize of the same config (a fresh home on the same demo data: part A's first step).",
        "",
        *_vs_rows(b["native"], base, b["ratio"], "in process (home 1)"),
        "",
        *_timeline_rows(b["native"]["timeline"], b["native"]["sums"], len(b["native"]["runs"])),
        "",
        f"Daemon ticks observed (distinct run-creation times): **{len(b['native']['ticks'])}** (runs created per "
        "tick: " + ", ".join(str(t["runs"]) for t in b["native"]["ticks"])
        + f"); the backfill daemon evaluated the backfill {b['native']['daemon_iterations_logged']} times. "
        "Floor (no target): the backfill daemon iterates every 30 s (Dagster's fixed DEFAULT_DAEMON_INTERVAL_SECONDS) "
        "and creates a run only after its upstream runs have finished; the targets' depth is "
        f"{b['depth']['depth_runs']} runs in a chain ({b['depth']['planned_runs']} runs planned in process), so "
        f"≥ {fmt_s(b['floor']['daemon_s'])} of daemon iterations; the warehouse pool runs "
        f"{queue_floor(b['native'])['slots']} run(s) at a time, so ≥ the sum of the runs themselves / slots "
        f"({fmt_s(b['floor']['pool_s'])}); and the run queue dequeues "
        f"once every {queue_floor(b['native'])['interval_s']} s (`dequeue_interval_seconds` in dagster.yaml; "
        f"Dagster's default is 5 s), {queue_floor(b['native'])['slots']} "
        "warehouse run(s) at a time, so each run occupies at least one dequeue interval: ≥ Σ ⌈run / interval⌉ × "
        f"interval / slots = {fmt_s(queue_floor(b['native'])['floor_s'])}, plus the daemon waits above = "
        f"{fmt_s(queue_floor(b['native'])['floor_s'] + b['native']['timeline']['daemon'])}. Measured "
        f"{fmt_s(b['native']['wall_s'])}.",
        "",
        *_failures(b["native"]),
        "",
        *_kind_rows(b["kinds"]),
        "",
        _equality_line(b["compare"]),
        "",
        "**Verdicts:** " + "; ".join(res["verdicts"]) + ".",
        *[x for n in notes_for(res) for x in ("", n)],
        MARK_END,
    ]
    out, prev_blank = [], False  # no double blank lines where an optional paragraph is empty
    for line in lines:
        if line == "" and prev_blank:
            continue
        out.append(line)
        prev_blank = line == ""
    return "\n".join(out) + "\n"


def write_doc(section: str) -> None:
    text = DOC.read_text()
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


# ---------------------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------------------
def ratio_of(native: dict, inproc_runs: list[dict]) -> dict:
    """The native runs themselves (start-up + steps), summed, over the in-process time of the runs of the same
    targets, summed (the two paths group the targets into runs differently: a native backfill requests the
    partitions without upstream in the backfill, e.g. `labels`, in its first iteration, as runs of their own).
    Alongside: the runs that match one to one (same partition and asset selection, both successful)."""
    key = lambda r: (r.get("partition") or "", tuple(r.get("assets") or ()))  # noqa: E731
    inproc = {key(r): r for r in inproc_runs if r.get("run_id") and r.get("outcome") in ("ok", "held")}
    matched = [(n, inproc[key(n)]) for n in native["runs"] if n["status"] == "SUCCESS" and key(n) in inproc]
    native_s = native["sums"]["run_s"]
    in_s = sum(r["wall_s"] for r in inproc_runs if r.get("run_id"))
    ratio = native_s / in_s if in_s else math.inf
    m_native, m_in = sum(n["run_s"] for n, _ in matched), sum(p["wall_s"] for _, p in matched)
    same_work = native["counts"]["failed"] == 0 and all(r.get("outcome") in ("ok", "held") for r in inproc_runs)
    return {"native_runs": len(native["runs"]), "in_process_runs": sum(1 for r in inproc_runs if r.get("run_id")),
            "native_s": round(native_s, 3), "in_process_s": round(in_s, 3), "ratio": round(ratio, 3),
            "same_work": same_work, "matched_runs": len(matched), "matched_native_s": round(m_native, 3),
            "matched_in_process_s": round(m_in, 3),
            "matched_ratio": round(m_native / m_in, 3) if m_in else None,
            "bar": RATIO_BAR, "met": ratio <= RATIO_BAR}


POOL_RACE_NOTE = (
    "**Why runs overlapped in {part}:** the instance had never dequeued a run of the `gosales_warehouse` pool "
    "(built in process, or new), so the pool's limit did not exist yet. Dagster's run queue daemon (1.13) reads the "
    "configured pool keys once per iteration before its counter creates the default limit (`pools: default_limit: "
    "1`), so in that first iteration the pool counts as unlimited and up to `max_concurrent_runs` (2) warehouse "
    "runs start together, and the second contends for DuckDB's file lock (the warehouse connect waits for it, up to "
    "GOSALES_WAREHOUSE_LOCK_WAIT_S, then fails the run; before that wait existed it failed at once). From the next "
    "iteration on the limit exists. A backfill whose first tick creates a single run (one that starts with the star "
    "schema, as B) does not show it.")


def init_pool(home: Path) -> None:
    """Create the warehouse pools' limits (the instance's default) before any run is queued, as the product's
    launches do (`runner.ensure_warehouse_pools`)."""
    from gosales_assets.runner import ensure_warehouse_pools

    with open_instance(home / "dagster_home") as instance:
        ensure_warehouse_pools(instance)


def pool_exists(home: Path) -> bool:
    from gosales_assets.resources import WAREHOUSE_POOL

    with open_instance(home / "dagster_home") as instance:
        return WAREHOUSE_POOL in instance.event_log_storage.get_concurrency_keys()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (homes, service logs)")
    ap.add_argument("--json", type=Path, default=RESULTS)
    ap.add_argument("--no-doc", action="store_true", help="do not write the docs/PERFORMANCE.md section")
    ap.add_argument("--parts", default="A,B", help="A, B or A,B (the doc section needs both)")
    ap.add_argument("--init-pool", action="store_true",
                    help="create the warehouse pool's limit on each instance before the services start (works "
                         "around Dagster's first-dequeue race, see the doc section)")
    ap.add_argument("--timeout", type=float, default=BACKFILL_TIMEOUT_S, help="per native backfill, seconds")
    ap.add_argument("--code", choices=["head", "worktree"], default="head",
                    help="the engine's code: HEAD (git archive, the default) or the working tree as it is at start; "
                         "either way a snapshot, so edits made while the benchmark runs do not reach it")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                    help="another config, for a quick check of the script (the doc section is then not written)")
    # the in-process child
    ap.add_argument("--child", choices=["materialize"], help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--cutoff", action="append", help=argparse.SUPPRESS)
    ap.add_argument("--no-star", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-reports", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the doc section from the results JSON (--json) without measuring")
    args = ap.parse_args(argv)
    if args.child:
        return child_materialize(args)
    if args.render_only:
        res = json.loads(args.json.read_text())
        res["notes"] = notes_for(res)
        res["verdicts"], _ = verdicts(res)
        write_doc(render_doc(res))
        log(f"wrote {DOC.relative_to(ROOT)} from {args.json}")
        return 0
    parts = {p.strip().upper() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"A", "B"}:
        ap.error("--parts takes A, B or A,B")

    started = time.time()
    loads = LoadSampler()
    res: dict = {"started_at": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
                 "config": str(args.config), "parts": sorted(parts), "init_pool": args.init_pool,
                 "git": git_state(), "command": " ".join([".venv/bin/python", "benchmarks/bench_native.py",
                                                          *(argv if argv is not None else sys.argv[1:])])}
    work = args.work or Path(tempfile.mkdtemp(prefix="gosales_bench_native_"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"work folder {work}; load average {res['machine']['load_average_at_start']}")
    complete = False
    try:
        res["code"] = snapshot_code(work, args.code)
        code = Path(res["code"]["path"])
        import gosales_assets
        from gosales_assets.definitions import build_definitions
        from gosales_assets.runner import target_partitions
        from gosales_assets.settings import load_settings

        if not Path(gosales_assets.__file__).is_relative_to(code):
            raise RuntimeError(f"gosales_assets imported from {gosales_assets.__file__}, not from the snapshot {code}")
        log(f"code: {args.code} snapshot of {res['code']['commit'][:12]} in {code} "
            f"(sha256 {res['code']['files_sha256']})")
        cfg = work / "gosales.yaml"
        # frozen: every path reads the same config (the default one: the snapshot's)
        shutil.copy(code / "gosales_assets" / "gosales.yaml" if args.config.resolve() == DEFAULT_CONFIG.resolve()
                    else args.config, cfg)
        dagster_yaml = code / "dagster.yaml"
        # the demo data, once (`gosales demo-data`: customers and seed from the config), copied into every home
        data_home = work / "data"
        env = {**os.environ, "GOSALES_CONFIG": str(cfg), "GOSALES_HOME": str(data_home)}
        out = subprocess.run([str(Path(sys.executable).parent / "gosales"), "demo-data"], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        log(out.strip().splitlines()[0])
        settings = load_settings(cfg, home=data_home)
        sales = re.search(r"(\d+) sales lines", out)
        res["demo"] = {"customers": settings.demo.customers, "seed": settings.seeds.demo,
                       "sales_rows": int(sales.group(1)) if sales else None}
        res["settings"] = {"divisions": list(settings.divisions), "cutoffs": [c.isoformat() for c in settings.cutoffs],
                           "data_end": settings.data.end_date.isoformat(),
                           "last_cutoff": settings.last_cutoff.isoformat()}
        graph = build_definitions(settings, cfg).resolve_asset_graph()
        targets_a = target_partitions(graph, settings, cutoffs=[NEW_CUTOFF], star=False, reports=False)
        targets_b = target_partitions(graph, settings)

        # ---- the configured cutoffs in process on a fresh home (home 1): A's starting point, B's reference ----
        home1, home2, home3 = work / "home1", work / "home2", work / "home3"
        prepare_home(home1, data_home / "landing", dagster_yaml)
        base = in_process("in-process full demo (home 1)", home1, cfg, work / "home1_materialize.json", loads)
        res["A_base"] = base
        if not Path(base["code"]).is_relative_to(code):
            raise RuntimeError(f"the in-process child imported gosales_assets from {base['code']}, not the snapshot")

        # ---- A: copy home 1, one more cutoff natively (home 1) and in process (home 2) ----
        if "A" in parts:
            copy_home(home1, home2)
            log(f"home 1 copied to {home2}")
            pool_before = pool_exists(home1)
            if args.init_pool:
                init_pool(home1)
            native_a = native_backfill("A native", home1, cfg, work / "stack_a", targets_a,
                                       f"bench: one more cutoff {NEW_CUTOFF[:7]}", loads, args.timeout)
            native_a["pool_existed_before"] = pool_before
            inproc_a = in_process("A in process (home 2)", home2, cfg, work / "home2_materialize.json", loads,
                                  cutoffs=[NEW_CUTOFF], star=False, reports=False)
            same_targets = sorted(f"{t.asset_key.to_user_string()} {t.partition_key or ''}".strip()
                                  for t in targets_a) == inproc_a["targets"]
            res["A"] = {"native": native_a, "in_process": inproc_a, "same_targets": same_targets,
                        "depth": plan_depth(graph, targets_a), "ratio": ratio_of(native_a, inproc_a["runs"]),
                        "kinds": by_kind(native_a["runs"], inproc_a["runs"]),
                        "compare": compare_snapshots(native_a["snapshot"], inproc_a["snapshot"], [NEW_CUTOFF])}
            log(f"A: ratio {res['A']['ratio']}; registry equal {res['A']['compare']['registry_equal']}/"
                f"{res['A']['compare']['registry_partitions']}, whitespace {res['A']['compare']['whitespace']}")
            write_json(args.json, res, started)

        # ---- B: the whole demo as one native backfill on a fresh home (home 3) ----
        if "B" in parts:
            prepare_home(home3, data_home / "landing", dagster_yaml)
            if args.init_pool:
                init_pool(home3)
            native_b = native_backfill("B native", home3, cfg, work / "stack_b", targets_b,
                                       "bench: the whole demo", loads, args.timeout)
            depth_b = plan_depth(graph, targets_b)
            floor_daemon = depth_b["depth_runs"] * 30.0
            floor_pool = native_b["sums"]["run_s"] / native_b["pool_slots"]
            res["B"] = {"native": native_b, "depth": depth_b, "ratio": ratio_of(native_b, base["runs"]),
                        "floor": {"daemon_s": floor_daemon, "pool_s": floor_pool, "max_s": max(floor_daemon, floor_pool)},
                        "kinds": by_kind(native_b["runs"], base["runs"]),
                        "compare": compare_snapshots(native_b["snapshot"], base["snapshot"],
                                                     res["settings"]["cutoffs"])}
            native_b["pool_existed_before"] = False  # a fresh instance
            log(f"B: wall {fmt_s(native_b['wall_s'])}, ticks {len(native_b['ticks'])}, registry equal "
                f"{res['B']['compare']['registry_equal']}/{res['B']['compare']['registry_partitions']}, whitespace "
                f"{res['B']['compare']['whitespace_equal']}/{res['B']['compare']['whitespace_cutoffs']}")
        complete = True
    finally:
        res["load_average"] = loads.summary()
        if args.keep or not complete:
            log(f"work folder kept{'' if complete else ' for inspection (incomplete run)'}: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    res["notes"] = notes_for(res)
    res["verdicts"], good = verdicts(res)
    write_json(args.json, res, started)
    if args.no_doc or args.config.resolve() != DEFAULT_CONFIG.resolve() or parts != {"A", "B"}:
        log("doc section not written (--no-doc, another config or only one part)")
    else:
        write_doc(render_doc(res))
        log(f"wrote {DOC.relative_to(ROOT)} (section between the bench:native markers)")
    for v in res["verdicts"]:
        log(v)
    return 0 if good else 1


def verdicts(res: dict) -> tuple[list[str], bool]:
    out, good = [], True
    for part in ("A", "B"):
        if part not in res:
            continue
        r = res[part]
        n, cmp = r["native"], r["compare"]
        ok = n["counts"]["failed"] == 0 and n["backfill_status"] == "COMPLETED_SUCCESS"
        same = cmp["registry_equal"] == cmp["registry_partitions"] > 0 \
            and cmp["whitespace_equal"] == cmp["whitespace_cutoffs"] > 0
        good &= ok and same
        out += [f"{part}: no failed run — {'yes' if ok else 'NO'} ({n['counts']['ok']} ok, {n['counts']['held']} "
                f"with a held/skipped model, {n['counts']['failed']} failed)",
                f"{part}: same registry metrics and whitespace checksums natively and in process — "
                f"{'yes' if same else 'NO'} ({cmp['registry_equal']}/{cmp['registry_partitions']} partitions, "
                f"{cmp['whitespace_equal']}/{cmp['whitespace_cutoffs']} checksums)"]
        if part == "A":
            out.append(f"A: runs (start-up + steps) ≤ {RATIO_BAR:.0f}× in process — "
                       f"{'met' if r['ratio']['met'] else 'NOT met'} ({r['ratio']['ratio']:.2f}×)")
        else:
            out.append(f"B: the whole demo natively in {fmt_s(n['wall_s'])} vs {fmt_s(res['A_base']['wall_s'])} in "
                       f"process (no target; floor {fmt_s(r['floor']['max_s'])})")
    return out, good


def write_json(path: Path, res: dict, started: float) -> None:
    res["total_wall_s"] = round(time.time() - started, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1, default=str) + "\n")
    log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    sys.exit(main())
