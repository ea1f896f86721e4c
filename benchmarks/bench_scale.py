"""Production scale, measured (`make bench-large`): the whole `large` profile as one native backfill at several sizes,
the monthly increment, and how cost grows with the customers.

    nice -n 10 .venv/bin/python benchmarks/bench_scale.py                      # make bench-large (hours)
    .venv/bin/python benchmarks/bench_scale.py --sizes 2000,4000 --cutoffs 4 --json /tmp/scale.json --no-doc

For each size in `--sizes` (default 50,000, 100,000, 250,000 and 500,000 customers; smallest first), with the
`large` profile's config (bench_suite.write_config: 12 divisions, the 8 quarterly cutoffs 2024-09-30 … 2026-06-30,
`models.num_threads` as shipped) and `demo.customers` = the size:
1. the demo data, generated once per size by bench_suite's generation child (`--reuse-data` keeps the landing
   folder of an earlier run in `--work`);
2. a fresh GOSALES_HOME and DAGSTER_HOME (the snapshot's dagster.yaml), `dagster dev` (as `make ui`: webserver +
   daemon sharing one code server) started and healthy, then the WHOLE profile
   (`runner.target_partitions(graph, settings)`: every asset of every division and cutoff, star and reports
   included) as ONE native backfill submitted through GraphQL
   `launchPartitionBackfill` (bench_native.native_backfill, as its part B);
3. the monthly increment on the same instance and warehouse (services started again): one more cutoff, the
   next month-end after the last configured one (data allowing), as a second native backfill timed from submission
   to completion. `--increment cutoff` (default, as bench_native part A): its cutoff features, its 12 division ×
   cutoff partitions (labels, model frame, model, scores, peer scores, validation, drift), whitespace and top
   accounts. `--increment sensor`: what the `new_cutoff` sensor launches when a month-end arrives
   (`automation.cutoffs.new_cutoff_targets`: the star rebuilt, reports, and the refresh of the windows it closes).

How each number is measured:
- wall: from the instance. Backfill: submitted → marked completed by the daemon (its timeline split into daemon
  waits, queue, run start-up and steps by bench_native.timeline). Step: STEP_START → STEP_SUCCESS/FAILURE event.
- CPU and memory: a sampler thread in this process reads, every `--interval` s (0.5), every live process that
  descends from it (webserver, daemon, their code servers, run workers): utime + stime and cutime + cstime from
  /proc/<pid>/stat, VmRSS and VmHWM from /proc/<pid>/status, then resets VmHWM (`5 > /proc/<pid>/clear_refs`), so
  a sample's VmHWM is the exact peak RSS of its interval (where the reset is refused: VmRSS, marked inexact).
- run worker ↔ run: Dagster's run worker is a `multiprocessing` spawn child of the daemon's code server; its
  command line is `spawn_main(...) --multiprocessing-fork` and its environment the code server's, so neither names
  the run (checked per run: `cmdline_names_run` / `environ_names_run` in the detail files). Its pid does: the
  worker writes it into its run's event log as the engine event "Started process for run (pid: N)" (metadata
  `pid`), and the warehouse resource tags the run `gosales/pid` = N. The sampled process (pid, start time) alive
  during the run is its worker.
- per step: CPU = the worker's CPU between the step's start and end (interpolated inside a sample interval:
  bench_suite.PeakSampler.cpu_s over the worker's samples); peak RSS = the largest interval peak overlapping the
  step (PeakSampler.peak_mb). Steps run in the worker itself (in-process executor).
- per stage (bench_suite.STAGES / STEP_STAGE, with `peer_scores` as its own stage `peers`): wall and CPU summed
  over its steps, peak RSS the largest of its steps. "run start-up and outside steps" = the runs' RUN_STARTING →
  first STEP_START (wall) and the workers' CPU outside their steps; "other processes" (key `services`) = the CPU
  of every other process of the tree during the backfill (webserver, daemon, their code servers, and each run's
  compute-log capture: `tail -F` and `watch_orphans.py`, children of the worker).
- whole backfill: wall as above; CPU = every tree process's CPU between submission and completion; peak RSS of one
  process (the largest interval peak of any process) and of the process tree (the largest Σ VmRSS of one sweep;
  the Σ of the sweep's interval peaks is kept as an upper bound); runs, failed runs (bench_native.native_backfill),
  models trained / held / skipped from `division_model`'s materialization metadata `status`, against the skips the
  calendar expects (bench_suite.plan: partitions without a closed training window).
- check: CPU in steps + outside steps = the workers' own CPU (sampled, by construction), compared with the kernel's
  own count: the CPU credited to the workers' parent (the code server) when it reaps them (cutime + cstime), which
  holds each worker with its children (the compute-log capture, sampled on their own) and the worker's last
  moments after its last sample (≤ the interval, teardown after its last step). That tail (reaped − workers −
  their children, ≥ 0) is added to "outside steps" and to the whole backfill's CPU.
- growth exponent per stage: least-squares slope of log(cost) against log(customers) over the sizes measured;
  > 1.15 is flagged super-linear.

Writes `benchmarks/results/scale.json` (`--json`) after every phase, per-run and per-step detail into the work
folder, and the section between `<!-- bench:scale:start -->` / `<!-- bench:scale:end -->` of docs/PERFORMANCE.md
(not with `--no-doc`; `--render-only` rewrites it from the JSON). The engine's code is a snapshot (`--code head`,
the default: `git archive HEAD`; `worktree`: the working tree at start), as in bench_native.

`--increment-only` (with `--work` of a run made with `--keep`, and `--no-doc`) measures only the next monthly
increment on each size's kept home, as it is: the month after its newest `customer_features` cutoff (with
`--increment sensor`: what the `new_cutoff` sensor would launch for that month on that home). To compare two
engines on the same month, copy the kept home first (one copy per engine; each run adds its month to its copy):

    cp -a WORK/n500000/home W2/n500000/home && ln -s WORK/n500000/landing W2/n500000/landing
    .venv/bin/python benchmarks/bench_scale.py --sizes 500000 --increment-only --work W2 --no-doc --json X.json

A copied home's snapshot is the same file under a new inode, which the engine would take for a file that is not the
one it recorded (and publish a copy of the whole warehouse in the increment's first run): when its mtime and size
are the recorded ones, `adopt_copied_snapshot` records the new inode first.

Every result records the machine's reference work (bench_native.reference_work) at start, and each backfill its own
right before and after it: hosts that report the same cores and CPU model differ in speed, and one host's speed
moves within an hour, so results are compared through it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_native as bn  # noqa: E402  (stdlib only at import; puts a code snapshot first on sys.path if set)

ROOT = bn.ROOT
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
DOC = ROOT / "docs" / "PERFORMANCE.md"
PROFILE = "large"
DEFAULT_SIZES = (50_000, 100_000, 250_000, 500_000)
TARGET_SIZE = 500_000
TARGET_WALL_S = 30 * 60
TARGET_RSS_GIB = 12.0
TARGET_INCREMENT_S = 5 * 60
SUPERLINEAR = 1.15
# The reference work (bench_native.reference_work, CPU-s) of this machine's fast phase, to which each backfill's CPU
# is also scaled: the host's speed moves 1.5-fold within hours (docs/PERFORMANCE.md), so sizes measured an hour
# apart would otherwise fit the host's drift into the growth exponents.
REFERENCE_HOST_S = 1.86
SAMPLE_INTERVAL_S = 0.5
BACKFILL_TIMEOUT_S = 4 * 3600
CLK_TCK = os.sysconf("SC_CLK_TCK")
EXTRA_ROWS = {"outside_steps": "run start-up and outside steps (run workers)",
              "services": "other processes: webserver, daemon, code servers, compute-log capture"}
WORKER_EVENT = "Started process for run"


def _suite():
    """bench_suite, imported only once the code snapshot is first on sys.path (it imports gosales_assets)."""
    import bench_suite

    return bench_suite


def stage_labels() -> dict[str, str]:
    """bench_suite's stages in execution order, with the peer scores as a stage of their own after scoring."""
    out: dict[str, str] = {}
    for key, label in _suite().STAGES.items():
        out[key] = label
        if key == "scoring":
            out["peers"] = "peer scores per division × cutoff: the alternatives the gates compare with"
    return out


def step_stage(step_key: str) -> str:
    return {**_suite().STEP_STAGE, "peer_scores": "peers"}.get(step_key, "other")


# ---------------------------------------------------------------------------------------------------------
# pure pieces: sample series, attribution, growth exponents
# ---------------------------------------------------------------------------------------------------------
def series(samples: list[tuple]):
    """A bench_suite.PeakSampler over given samples (t0, t1, peak kB, cpu at t0, cpu at t1), for its peak_mb /
    cpu_s (no thread, no VmHWM reset of this process: __init__ is not run)."""
    sampler = object.__new__(_suite().PeakSampler)
    sampler.samples = list(samples)
    return sampler


def interval_samples(points: list[tuple], start: float | None, exact: bool = True) -> list[tuple]:
    """A process's sweeps (t, cpu s, children's cpu s, VmRSS kB, VmHWM kB) as PeakSampler intervals. With the
    process's start time (seen from its birth), the first interval runs from it with CPU 0 and VmHWM as the peak
    since birth; otherwise the first sweep only opens the series."""
    out: list[tuple] = []
    if not points:
        return out
    if start is not None:
        prev_t, prev_cpu = start, 0.0
        rest = points
    else:
        prev_t, prev_cpu = points[0][0], points[0][1]
        rest = points[1:]
    for t, cpu, _child, rss, hwm in rest:
        out.append((prev_t, t, hwm if exact else rss, prev_cpu, cpu))
        prev_t, prev_cpu = t, cpu
    return out


def window_costs(samples: list[tuple], windows: list[tuple[float, float]]) -> list[dict]:
    """CPU seconds and peak RSS (MB) of one process in each time window (a step)."""
    s = series(samples)
    return [{"cpu_s": s.cpu_s(a, b), "peak_rss_mb": s.peak_mb(a, b)} for a, b in windows]


def growth_exponent(points: list[tuple[float, float]]) -> dict | None:
    """Least-squares slope of log(cost) against log(customers) over (customers, cost) points with cost > 0; None
    with fewer than two sizes."""
    pts = [(float(x), float(y)) for x, y in points if x and y is not None and x > 0 and y > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    lx, ly = [math.log(x) for x, _ in pts], [math.log(y) for _, y in pts]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    b = sum((x - mx) * (y - my) for x, y in zip(lx, ly)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ly)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(lx, ly))
    return {"exponent": round(b, 3), "r2": round(1 - ss_res / ss_tot, 3) if ss_tot > 0 else 1.0,
            "points": len(pts), "superlinear": round(b, 3) > SUPERLINEAR}


def host_scaled_cpu(cpu_s: float | None, phase: dict) -> float | None:
    """`cpu_s` of a backfill as on a host whose reference work is REFERENCE_HOST_S: divided by the backfill's own
    reference work (the mean of before and after) over it. None without a reference work (older results) or a CPU
    figure. First order only: the host's slowness is taken to slow every stage alike, and to be the mean of the two
    readings throughout the backfill."""
    ref = phase.get("reference_work")
    if cpu_s is None or not ref:
        return None
    return cpu_s * REFERENCE_HOST_S / ((ref["before_s"] + ref["after_s"]) / 2)


def stage_summary(steps: list[dict]) -> dict[str, dict]:
    """Per stage: wall and CPU summed over its steps (skipped steps left out), peak RSS the largest of them."""
    out: dict[str, dict] = {}
    for s in steps:
        if s["status"] == "skipped":
            continue
        st = out.setdefault(s["stage"], {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0, "steps": 0,
                                         "max_step_s": 0.0})
        st["wall_s"] += s["wall_s"]
        st["cpu_s"] += s["cpu_s"] or 0.0
        st["peak_rss_mb"] = max(st["peak_rss_mb"], s["peak_rss_mb"] or 0.0)
        st["steps"] += 1
        st["max_step_s"] = max(st["max_step_s"], s["wall_s"])
    return {k: {m: (round(v, 3) if isinstance(v, float) else v) for m, v in st.items()} for k, st in out.items()}


def scaling(sizes: list[dict]) -> dict:
    """Per stage (and the extra rows, the whole backfill, the increment): wall, CPU, CPU at the reference host speed
    (`host_scaled_cpu`), peak RSS at each size and the growth exponent of each."""
    sizes = sorted((s for s in sizes if s.get("full")), key=lambda s: s["customers"])
    rows: dict[str, dict] = {}

    def add(row: str, n: int, vals: dict | None, phase: dict) -> None:
        r = rows.setdefault(row, {"values": {}, "exponents": {}})
        v = {m: (vals or {}).get(m) for m in ("wall_s", "cpu_s", "peak_rss_mb")}
        v["cpu_ref_s"] = host_scaled_cpu(v["cpu_s"], phase)
        r["values"][str(n)] = v

    for s in sizes:
        n, full = s["customers"], s["full"]
        for stage, vals in full["stages"].items():
            add(stage, n, vals, full)
        for extra in EXTRA_ROWS:
            add(extra, n, full.get(extra), full)
        add("whole", n, {"wall_s": full["wall_s"], "cpu_s": full["cpu_s"], "peak_rss_mb": full["peak_rss_mb"]}, full)
        inc = s.get("increment")
        if inc and not inc.get("skipped"):
            add("increment", n, {"wall_s": inc["wall_s"], "cpu_s": inc["cpu_s"], "peak_rss_mb": inc["peak_rss_mb"]},
                inc)
    for r in rows.values():
        for m in ("wall_s", "cpu_s", "cpu_ref_s", "peak_rss_mb"):
            r["exponents"][m] = growth_exponent([(int(n), v[m]) for n, v in r["values"].items()])
    flagged = sorted({(row, m) for row, r in rows.items() for m, e in r["exponents"].items()
                      if e and e["superlinear"]})
    return {"sizes": [s["customers"] for s in sizes], "rows": rows, "superlinear": [list(f) for f in flagged]}


# ---------------------------------------------------------------------------------------------------------
# the /proc sampler of the process tree
# ---------------------------------------------------------------------------------------------------------
def _boot_time() -> float:
    return float(next(line.split()[1] for line in Path("/proc/stat").read_text().splitlines()
                      if line.startswith("btime")))


def _stat(pid: int) -> tuple | None:
    """(state, ppid, cpu s, children's cpu s, start ticks) from /proc/<pid>/stat, None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = raw[raw.rindex(")") + 2:].split()  # fields from the 3rd on ("state"); comm may contain spaces
    return f[0], int(f[1]), (int(f[11]) + int(f[12])) / CLK_TCK, (int(f[13]) + int(f[14])) / CLK_TCK, int(f[19])


def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    vals = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            vals[line[:5]] = int(line.split()[1])
    return (vals["VmRSS"], vals["VmHWM"]) if len(vals) == 2 else None


def _reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _identity(pid: int) -> dict:
    """Command line and the DAGSTER* environment entries of a process (how one would name its run)."""
    out: dict = {"cmdline": "", "env": {}}
    try:
        out["cmdline"] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:400]
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        out["env"] = dict(e.decode(errors="replace").split("=", 1) for e in env
                          if e.startswith(b"DAGSTER") and b"=" in e)
    except OSError:
        pass
    return out


class TreeSampler:
    """Every `interval` s, every live process descending from this one: CPU, children's CPU, VmRSS and the peak RSS
    of the interval (VmHWM read, then reset)."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S, root: int | None = None):
        self.interval = interval
        self.root = root or os.getpid()
        self.boot = _boot_time()
        self.procs: dict[tuple[int, int], dict] = {}
        self.sweeps: list[tuple[float, int, int, int]] = []  # (t, Σ VmRSS kB, Σ VmHWM kB, processes)
        self.t0 = self.t1 = None
        self.sweep_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tree-sampler")

    def start(self) -> "TreeSampler":
        self.t0 = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sweep()
        self.t1 = time.time()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sweep()

    def sweep(self) -> None:
        t_begin = time.perf_counter()
        stats = {}
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                st = _stat(int(p.name))
                if st is not None and st[0] != "Z":
                    stats[int(p.name)] = st
        children: dict[int, list[int]] = {}
        for pid, st in stats.items():
            children.setdefault(st[1], []).append(pid)
        tree, todo = [], list(children.get(self.root, []))
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        now = time.time()
        rss_sum = hwm_sum = n = 0
        for pid in tree:
            st, mem = stats[pid], _status_kb(pid)
            if mem is None:
                continue
            key = (pid, st[4])
            proc = self.procs.get(key)
            if proc is None:
                proc = self.procs[key] = {"pid": pid, "ppid": st[1], "start": self.boot + st[4] / CLK_TCK,
                                          "exact": True, "points": [], **_identity(pid)}
            exact = _reset_hwm(pid)
            proc["exact"] &= exact
            proc["points"].append((now, st[2], st[3], mem[0], mem[1]))
            rss_sum, hwm_sum, n = rss_sum + mem[0], hwm_sum + (mem[1] if exact else mem[0]), n + 1
        self.sweeps.append((now, rss_sum, hwm_sum, n))
        self.sweep_s += time.perf_counter() - t_begin

    def samples(self, key: tuple[int, int]) -> list[tuple]:
        proc = self.procs[key]
        born_seen = self.t0 is not None and proc["start"] >= self.t0 - 1.0
        return interval_samples(proc["points"], proc["start"] if born_seen else None, proc["exact"])

    def find(self, pid: int, t_from: float, t_to: float) -> tuple[int, int] | None:
        """The sampled process with this pid alive during [t_from, t_to] (the latest started, if pids recur)."""
        keys = [k for k, p in self.procs.items() if k[0] == pid and p["start"] <= t_to + 1.0
                and p["points"] and p["points"][-1][0] >= t_from - self.interval - 1.0]
        return max(keys, key=lambda k: self.procs[k]["start"]) if keys else None


def role(cmdline: str) -> str:
    if "dagster-webserver" in cmdline or "-m dagster_webserver" in cmdline:
        return "webserver"
    if "dagster-daemon" in cmdline or "-m dagster._daemon" in cmdline:
        return "daemon"
    if "bin/dagster dev" in cmdline:
        return "dagster dev (starts and stops the others)"
    if "code-server" in cmdline or "api grpc" in cmdline:
        return "code server"
    if "watch_orphans" in cmdline or cmdline.startswith("tail -F"):
        return "compute-log capture (tail, watch_orphans: per run)"
    if "resource_tracker" in cmdline:
        return "multiprocessing resource tracker"
    if "spawn_main" in cmdline:
        return "spawned process (no run)"
    return "other"


# ---------------------------------------------------------------------------------------------------------
# a measured native backfill
# ---------------------------------------------------------------------------------------------------------
def run_events(home: Path, run_ids: list[str]) -> dict[str, dict]:
    """Per run, from the event log: the worker's pid (engine event) and the `gosales/pid` tag, the steps (start,
    end, status) and the verdicts of the division_model partitions it materialized."""
    from gosales_assets.jobs import PID_TAG

    out = {}
    with bn.open_instance(home / "dagster_home") as instance:
        for run_id in run_ids:
            run = instance.get_run_by_id(run_id)
            r: dict = {"pid_event": None, "pid_tag": run.tags.get(PID_TAG) if run else None, "steps": [],
                       "models": {}}
            started: dict[str, float] = {}
            stored: dict[str, dict[str, float]] = {}  # per step: {asset: materialization time}
            for e in instance.all_logs(run_id):
                ev = e.dagster_event
                if ev is None:
                    continue
                kind = ev.event_type_value
                if kind == "ENGINE_EVENT" and r["pid_event"] is None and (ev.message or "").startswith(WORKER_EVENT):
                    pid = (getattr(ev.event_specific_data, "metadata", None) or {}).get("pid")
                    r["pid_event"] = int(getattr(pid, "value", pid)) if pid is not None else None
                elif kind == "STEP_START":
                    started[e.step_key] = e.timestamp
                elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                    t0 = started.pop(e.step_key, e.timestamp)
                    # the op of a whole division × cutoff partition: one part per stage (bench_suite.step_parts)
                    for name, a, b in _suite().step_parts(e.step_key, t0, e.timestamp, stored.pop(e.step_key, {})):
                        r["steps"].append({"step": name, "status": kind[5:].lower(), "t0": a, "t1": b})
                elif kind == "ASSET_MATERIALIZATION":
                    stored.setdefault(e.step_key, {})[ev.event_specific_data.materialization.asset_key
                                                      .to_user_string()] = e.timestamp
                    mat = ev.event_specific_data.materialization
                    if mat.asset_key.to_user_string() == "division_model" and "status" in mat.metadata:
                        r["models"][str(mat.partition)] = mat.metadata["status"].value
            out[run_id] = r
    return out


def measure(native: dict, events: dict[str, dict], sampler: TreeSampler) -> tuple[dict, dict]:
    """(summary, detail) of one native backfill: per step / stage / run / process role, the whole backfill, the
    CPU check."""
    t_submit, t_end = native["t_submit"], native["t_end"]
    steps, runs, worker_keys = [], [], set()
    for r in native["runs"]:
        ev = events.get(r["run_id"], {})
        pid = ev.get("pid_event") or (int(ev["pid_tag"]) if (ev.get("pid_tag") or "").isdigit() else None)
        t_from = r.get("starting") or r.get("start") or r["created"]
        key = sampler.find(pid, t_from, r["end"]) if pid else None
        samples = sampler.samples(key) if key else []
        proc = sampler.procs.get(key, {}) if key else {}
        if key:
            worker_keys.add(key)
        windows = [(s["t0"], s["t1"]) for s in ev.get("steps", [])]
        costs = window_costs(samples, windows) if samples else [{"cpu_s": None, "peak_rss_mb": None}] * len(windows)
        run_steps = []
        for s, c in zip(ev.get("steps", []), costs):
            ran = s["status"] != "skipped"
            run_steps.append({"run_id": r["run_id"], "partition": r["partition"], "step": s["step"],
                              "stage": step_stage(s["step"]), "status": s["status"], "t0": s["t0"], "t1": s["t1"],
                              "wall_s": round(s["t1"] - s["t0"], 3), "cpu_s": c["cpu_s"] if ran else 0.0,
                              "peak_rss_mb": c["peak_rss_mb"] if ran else None})
        steps += run_steps
        total_cpu = samples[-1][4] if samples else None
        steps_cpu = sum(s["cpu_s"] or 0.0 for s in run_steps)
        runs.append({
            "run_id": r["run_id"], "partition": r["partition"], "assets": r["assets"], "status": r["status"],
            "pid": pid, "pid_event": ev.get("pid_event"), "pid_tag": ev.get("pid_tag"), "worker_found": bool(key),
            "cmdline_names_run": r["run_id"] in proc.get("cmdline", "") if key else None,
            "environ_names_run": any(r["run_id"] in v for v in proc.get("env", {}).values()) if key else None,
            "startup_s": r["startup_s"], "steps_s": r["steps_s"], "run_s": r["run_s"],
            "worker_cpu_s": round(total_cpu, 3) if total_cpu is not None else None,
            "steps_cpu_s": round(steps_cpu, 3),
            "outside_steps_cpu_s": round(total_cpu - steps_cpu, 3) if total_cpu is not None else None,
            "worker_peak_rss_mb": series(samples).peak_mb() if samples else None,
            "models": ev.get("models", {})})

    # every process of the tree during the backfill
    roles: dict[str, dict] = {}
    whole_cpu, peak = 0.0, {"peak_rss_mb": 0.0}
    for key, proc in sampler.procs.items():
        samples = sampler.samples(key)
        if not samples:
            continue
        s = series(samples)
        cpu, mb = s.cpu_s(t_submit, t_end), s.peak_mb(t_submit, t_end)
        name = "run worker" if key in worker_keys else role(proc["cmdline"])
        acc = roles.setdefault(name, {"processes": 0, "cpu_s": 0.0, "peak_rss_mb": 0.0})
        acc["processes"] += 1
        acc["cpu_s"] = round(acc["cpu_s"] + cpu, 3)
        acc["peak_rss_mb"] = max(acc["peak_rss_mb"], mb)
        whole_cpu += cpu
        if mb > peak["peak_rss_mb"]:
            peak = {"peak_rss_mb": mb, "role": name, "pid": key[0]}
    if peak.get("role") == "run worker":
        mine = {r["run_id"] for r in runs if r["pid"] == peak["pid"]}
        top = max((s for s in steps if s["peak_rss_mb"] is not None and s["run_id"] in mine),
                  key=lambda s: s["peak_rss_mb"], default=None)
        if top:
            peak |= {"step": top["step"], "partition": top["partition"], "step_peak_rss_mb": top["peak_rss_mb"]}
    in_window = [w for w in sampler.sweeps if t_submit <= w[0] <= t_end]
    tree_rss = max((w[1] for w in in_window), default=0) / 1024
    tree_hwm = max((w[2] for w in in_window), default=0) / 1024

    # CPU check: attributed (steps + outside) = the workers' own CPU; vs what their parents reaped (kernel count)
    parents = {sampler.procs[k]["ppid"] for k in worker_keys}
    reaped = 0.0
    for key, proc in sampler.procs.items():
        if key[0] in parents and proc["points"]:
            reaped += proc["points"][-1][2] - (0.0 if proc["start"] >= (sampler.t0 or 0) - 1 else proc["points"][0][2])
    steps_cpu = sum(s["cpu_s"] or 0.0 for s in steps)
    workers_cpu = sum(r["worker_cpu_s"] or 0.0 for r in runs)
    # A reaped worker's CPU includes its own reaped children (compute-log capture, sampled on their own) and the
    # moments after its last sample (teardown after its last step): the latter is the tail added outside steps.
    worker_pids = {k[0] for k in worker_keys}
    capture = 0.0
    for key, proc in sampler.procs.items():
        if proc["ppid"] in worker_pids and key not in worker_keys:
            samples = sampler.samples(key)
            capture += samples[-1][4] if samples else 0.0
    tail = max(0.0, reaped - workers_cpu - capture) if reaped else 0.0
    whole_cpu += tail
    check = {"steps_cpu_s": round(steps_cpu, 3), "outside_steps_cpu_s": round(workers_cpu + tail - steps_cpu, 3),
             "workers_cpu_sampled_s": round(workers_cpu, 3), "workers_cpu_reaped_s": round(reaped, 3),
             "workers_children_cpu_s": round(capture, 3), "workers_tail_cpu_s": round(tail, 3),
             "sampled_over_reaped": round((workers_cpu + capture) / reaped, 4) if reaped else None,
             "runs_without_worker": sum(not r["worker_found"] for r in runs),
             "pid_event_equals_tag": sum(r["pid_event"] is not None and str(r["pid_event"]) == r["pid_tag"]
                                         for r in runs),
             "cmdline_names_run": sum(bool(r["cmdline_names_run"]) for r in runs),
             "environ_names_run": sum(bool(r["environ_names_run"]) for r in runs),
             "inexact_processes": sum(not p["exact"] for p in sampler.procs.values()),
             "sweeps": len(sampler.sweeps),
             "mean_sweep_ms": round(1000 * sampler.sweep_s / max(len(sampler.sweeps), 1), 2)}

    statuses: dict[str, int] = {}
    for r in runs:
        for v in r["models"].values():
            statuses[v] = statuses.get(v, 0) + 1
    stages = stage_summary(steps)
    outside = {"wall_s": round(sum(r["startup_s"] or 0.0 for r in runs), 3),
               "cpu_s": check["outside_steps_cpu_s"], "peak_rss_mb": None}
    services = {"wall_s": None, "cpu_s": round(sum(v["cpu_s"] for k, v in roles.items() if k != "run worker"), 3),
                "peak_rss_mb": max((v["peak_rss_mb"] for k, v in roles.items() if k != "run worker"), default=None)}
    lists = [s["t1"] for s in steps if s["stage"] == "whitespace" and s["status"] == "success"]
    summary = {
        "backfill_id": native["backfill_id"], "backfill_status": native["backfill_status"],
        "targets": native["targets"],
        "wall_s": native["wall_s"], "cpu_s": round(whole_cpu, 3), "peak_rss_mb": peak["peak_rss_mb"],
        "peak_process": peak, "peak_rss_tree_mb": round(tree_rss, 1), "peak_rss_tree_upper_mb": round(tree_hwm, 1),
        "services_ready_s": native.get("services_ready_s"), "timeline": native["timeline"],
        "daemon_ticks": len(native["ticks"]), "runs": len(runs), "counts": native["counts"],
        "failed_runs": native["failed_runs"], "overlapping_runs": len(native["overlapping_runs"]),
        "models": {"by_status": statuses, "trained": sum(v for k, v in statuses.items() if k != "skipped"),
                   "skipped": statuses.get("skipped", 0), "held": statuses.get("held", 0)},
        "lists_published_s": round(max(lists) - t_submit, 3) if lists else None,
        "stages": stages, "outside_steps": outside, "services": services, "roles": roles, "cpu_check": check,
        "unmapped_steps": sorted({s["step"] for s in steps if s["stage"] == "other"}),
        "shutdown": native.get("shutdown"),
    }
    detail = {"runs": runs, "steps": [{k: v for k, v in s.items()} for s in steps],
              "processes": [{"pid": k[0], "start": p["start"], "ppid": p["ppid"], "cmdline": p["cmdline"],
                             "env_keys": sorted(p["env"]), "exact": p["exact"], "samples": len(p["points"]),
                             "role": "run worker" if k in worker_keys else role(p["cmdline"])}
                            for k, p in sampler.procs.items()]}
    return summary, detail


def measured_backfill(name: str, home: Path, cfg: Path, stack_root: Path, targets, title: str,
                      loads: bn.LoadSampler, timeout_s: float, interval: float, detail_path: Path) -> dict:
    """One native backfill (bench_native.native_backfill: `dagster dev`, GraphQL launch) under the tree
    sampler; the measured summary (the detail written to `detail_path`)."""
    shutil.rmtree(stack_root, ignore_errors=True)
    bn.init_pool(home)  # what the product's launches do first (runner.ensure_warehouse_pool)
    # The host's speed right before and after, outside the measured backfill: one host's reference work moved
    # 1.86 -> 3.1 CPU-s within an hour (docs/PERFORMANCE.md), so a backfill is read against its own.
    reference_before = bn.reference_work()["total_s"]
    sampler = TreeSampler(interval).start()
    try:
        native = bn.native_backfill(name, home, cfg, stack_root, targets, title, loads, timeout_s)
    finally:
        sampler.stop()
    reference = {"before_s": reference_before, "after_s": bn.reference_work()["total_s"]}
    events = run_events(home, [r["run_id"] for r in native["runs"]])
    summary, detail = measure(native, events, sampler)
    summary["reference_work"] = reference
    summary["load_average"] = loads.summary().get(name)
    summary["front_door"] = native.get("front_door", bn.SEPARATE_SERVICES)
    detail_path.write_text(json.dumps({"summary": summary, **detail,
                                       "native": {k: v for k, v in native.items() if k != "runs"}},
                                      indent=1, default=str))
    c = summary["cpu_check"]
    bn.log(f"{name}: wall {bn.fmt_s(summary['wall_s'])}, CPU {bn.fmt_s(summary['cpu_s'])}, peak RSS "
           f"{summary['peak_rss_mb']:.0f} MB ({summary['peak_process'].get('role')}), tree "
           f"{summary['peak_rss_tree_mb']:.0f} MB; {summary['runs']} runs, {summary['counts']}; models "
           f"{summary['models']['by_status']}; CPU in steps {c['steps_cpu_s']:.0f} s + outside "
           f"{c['outside_steps_cpu_s']:.0f} s = workers {c['workers_cpu_sampled_s']:.0f} s (reaped "
           f"{c['workers_cpu_reaped_s']:.0f} s); reference work before / after {_reference(summary)}")
    if summary["unmapped_steps"]:
        bn.log(f"{name}: steps outside the stages (stage 'other'): {summary['unmapped_steps']}")
    return summary


# ---------------------------------------------------------------------------------------------------------
# per size
# ---------------------------------------------------------------------------------------------------------
def size_config(size_dir: Path, customers: int, n_cutoffs: int | None) -> Path:
    """The `large` profile's config (bench_suite.write_config) with `demo.customers` = the size."""
    import yaml

    cfg, _ = _suite().write_config(size_dir, PROFILE, n_cutoffs)
    doc = yaml.safe_load(cfg.read_text())
    doc["demo"] = {**(doc.get("demo") or {}), "customers": customers}
    # The publish_snapshot sensor copies the warehouse once a backfill is done, after the lists: off here, so that
    # no copy of the whole backfill lands in the increment's window (the end of a run still copies when due).
    doc["snapshot"] = {**(doc.get("snapshot") or {}), "sensor_running": False}
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cfg


def expected_models(settings, cutoffs: list[dt.date]) -> dict:
    """Division × cutoff partitions of these cutoffs with / without a closed training window (bench_suite.plan,
    over the configured cutoffs plus these)."""
    every = sorted(set(settings.cutoffs) | set(cutoffs))
    pools = _suite().plan(settings.model_copy(update={"cutoffs": every}))["pools"]
    mine = {k: v for k, v in pools.items() if dt.date.fromisoformat(k[1]) in set(cutoffs)}
    return {"partitions": len(mine), "with_window": sum(v > 0 for v in mine.values()),
            "without_window": sum(v == 0 for v in mine.values()), "pool_units": sum(mine.values())}


def run_size(customers: int, args, work: Path, code: Path, loads: bn.LoadSampler, res: dict) -> dict:
    from gosales_assets.automation.cutoffs import new_cutoff_targets
    from gosales_assets.core.calendar import add_months
    from gosales_assets.definitions import build_definitions
    from gosales_assets.runner import target_partitions
    from gosales_assets.settings import load_settings

    suite = _suite()
    size_dir = work / f"n{customers}"
    size_dir.mkdir(parents=True, exist_ok=True)
    cfg = size_config(size_dir, customers, args.cutoffs)
    home = size_dir / "home"
    settings = load_settings(cfg, home=home)
    out: dict = {"customers": customers, "cutoffs": [c.isoformat() for c in settings.cutoffs],
                 "divisions": len(settings.divisions), "num_threads": settings.models.num_threads,
                 "config_checksum": settings.checksum,
                 "code": {k: res["code"][k] for k in ("source", "commit", "files_sha256")},
                 "measured_at": dt.datetime.now().isoformat(timespec="seconds")}

    if args.increment_only:
        return _next_increment(customers, args, settings, cfg, home, size_dir, loads, out)

    manifest = settings.landing_dir / "demo_manifest.json"
    m = json.loads(manifest.read_text()) if args.reuse_data and manifest.is_file() else {}
    if m and (m.get("customers"), m.get("seed")) != (customers, settings.seeds.demo):
        bn.log(f"n={customers:,}: the landing data in {settings.landing_dir} is of {m.get('customers')} customers, "
               f"seed {m.get('seed')}: generated again")
        m = {}
    if m:
        out["generation"] = {"reused": True, "customers": customers, "sales_rows": m["sales_rows"],
                             "customer_rows": m["customer_rows"], "wall_s": None, "cpu_s": None, "peak_rss_mb": None}
        bn.log(f"n={customers:,}: data reused from {settings.landing_dir} ({m['sales_rows']:,} sales lines)")
    else:
        shutil.rmtree(settings.landing_dir, ignore_errors=True)
        gen = suite.run_child("generate", size_dir, cfg, size_dir / "gen_home", customers=customers)
        out["generation"] = {k: gen.get(k) for k in ("customers", "sales_rows", "customer_rows", "wall_s", "cpu_s",
                                                     "peak_rss_mb", "load_avg_mean")} | {"reused": False}

    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster_home").mkdir(parents=True)
    shutil.copy(code / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
    graph = build_definitions(settings, cfg).resolve_asset_graph()
    targets = target_partitions(graph, settings)
    out["expected_models"] = expected_models(settings, list(settings.cutoffs))
    out["plan_depth"] = bn.plan_depth(graph, targets)
    bn.log(f"n={customers:,}: whole profile, {len(targets)} asset partitions, {out['plan_depth']}")
    out["full"] = measured_backfill(f"n={customers} whole", home, cfg, size_dir / "stack_full", targets,
                                    f"bench scale: the whole large profile at {customers:,} customers", loads,
                                    args.timeout, args.interval, size_dir / "detail_full.json")
    res["sizes"] = [s for s in res["sizes"] if s["customers"] != customers] + [out]
    write_json(args.json, res)

    new = add_months(settings.cutoffs[-1], 1)
    if new > settings.last_cutoff:
        out["increment"] = {"skipped": f"the next month-end {new} is past the data's last cutoff "
                                       f"{settings.last_cutoff}"}
        return out
    if args.increment == "sensor":
        from dagster import AssetKey

        with bn.open_instance(home / "dagster_home") as instance:
            built = set(instance.get_materialized_partitions(AssetKey("customer_features")))
        inc_targets = new_cutoff_targets(graph, settings, [new], built=built)
    else:
        inc_targets = target_partitions(graph, settings, cutoffs=[new], star=False, reports=False)
    bn.log(f"n={customers:,}: monthly increment {new} ({args.increment}), {len(inc_targets)} asset partitions")
    out["increment"] = measured_increment(customers, args, settings, cfg, home, size_dir, loads, inc_targets, new,
                                          "") | {"mode": args.increment}
    return out


def measured_increment(customers: int, args, settings, cfg: Path, home: Path, size_dir: Path, loads: bn.LoadSampler,
                       targets, new: dt.date, suffix: str) -> dict:
    """One monthly increment (cutoff `new`, its `targets`) as a measured native backfill on `home`; its stack and
    detail files in `size_dir`, named with `suffix`."""
    inc = measured_backfill(f"n={customers} increment", home, cfg, size_dir / f"stack_increment{suffix}", targets,
                            f"bench scale: one more cutoff {new:%Y-%m} at {customers:,} customers", loads,
                            args.timeout, args.interval, size_dir / f"detail_increment{suffix}.json")
    return inc | {"cutoff": new.isoformat(), "expected_models": expected_models(settings, [new])}


def adopt_copied_snapshot(warehouse: Path) -> str | None:
    """A kept home copied with `cp -a` holds the same read-only snapshot under another inode, which the engine
    rightly takes for a file that is not the one it recorded, so the increment's first run would publish a copy of
    the whole warehouse because the home was copied (a benchmark's artifact, 6-37 s at 500,000 customers). When the
    file still has the recorded mtime and the warehouse's recorded size (the same bytes, copied), record its new
    inode; anything else is left for the engine to judge. Returns what was done, or None."""
    from gosales_assets import snapshot as snap

    target = snap.snapshot_path(warehouse)
    meta = snap.read_meta(target)
    try:
        st = target.stat()
    except FileNotFoundError:
        return None
    if meta is None or st.st_ino == meta.get("snapshot_inode"):
        return None
    if (st.st_mtime_ns, st.st_size) != (meta.get("snapshot_mtime_ns"), meta.get("warehouse_bytes")):
        return None
    snap.write_meta(target, meta | {"snapshot_inode": st.st_ino})
    return f"the copied home's snapshot {target} re-recorded under its new inode {st.st_ino} (same mtime and size)"


def _next_increment(customers: int, args, settings, cfg: Path, home: Path, size_dir: Path, loads: bn.LoadSampler,
                    out: dict) -> dict:
    """`--increment-only`: the monthly increment of the month after the newest cutoff the kept home holds (its
    `customer_features` partitions), on that home as it is: no generation, no whole backfill. For measuring the
    increment again on another engine without the whole backfill before it (copy the kept home first to keep it
    as a common base: this run adds its month to it)."""
    from dagster import AssetKey

    from gosales_assets.core.calendar import add_months
    from gosales_assets.definitions import build_definitions
    from gosales_assets.partitions import parse_cutoff
    from gosales_assets.runner import target_partitions

    if not (home / "dagster_home").is_dir():
        raise SystemExit(f"--increment-only: no kept home at {home} (a run with --keep makes one)")
    with bn.open_instance(home / "dagster_home") as instance:
        built_keys = set(instance.get_materialized_partitions(AssetKey("customer_features")))
    built = sorted(parse_cutoff(k) for k in built_keys)
    if not built:
        raise SystemExit(f"--increment-only: the home at {home} has no customer_features partition")
    new = add_months(built[-1], 1)
    if new > settings.last_cutoff:
        raise SystemExit(f"--increment-only: the next month-end {new} is past the data's last cutoff "
                         f"{settings.last_cutoff}")
    adopted = adopt_copied_snapshot(settings.warehouse_path)
    if adopted:
        bn.log(f"n={customers:,}: {adopted}")
    graph = build_definitions(settings, cfg).resolve_asset_graph()
    if args.increment == "sensor":  # what the `new_cutoff` sensor launches: the star and reports too
        from gosales_assets.automation.cutoffs import new_cutoff_targets

        targets = new_cutoff_targets(graph, settings, [new], built=built_keys)
    else:
        targets = target_partitions(graph, settings, cutoffs=[new], star=False, reports=False)
    bn.log(f"n={customers:,}: monthly increment {new} ({args.increment}) on the kept home (newest cutoff there "
           f"{built[-1]}), {len(targets)} asset partitions")
    out["increment"] = measured_increment(customers, args, settings, cfg, home, size_dir, loads, targets, new,
                                          f"_{new}") | {"mode": args.increment, "on_kept_home": True}
    return out


# ---------------------------------------------------------------------------------------------------------
# the doc section
# ---------------------------------------------------------------------------------------------------------
def _s(x: float | None) -> str:
    return bn.fmt_s(x) if x is not None else "–"


def _reference(phase: dict) -> str:
    ref = phase.get("reference_work")
    return f"{ref['before_s']:.2f} / {ref['after_s']:.2f} CPU-s" if ref else "–"


def _gib(mb: float | None) -> str:
    if mb is None:
        return "–"
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.0f} MB"


def _exp(e: dict | None) -> str:
    if not e:
        return "–"
    return f"**{e['exponent']:.2f}** ⚠" if e["superlinear"] else f"{e['exponent']:.2f}"


def verdicts(res: dict) -> list[dict]:
    """The issue's bar against the 500,000 row: PASS / FAIL, or not measured."""
    row = next((s for s in res.get("sizes", []) if s["customers"] == TARGET_SIZE and s.get("full")), None)
    largest = max((s["customers"] for s in res.get("sizes", []) if s.get("full")), default=None)
    missing = f"not measured (largest size measured: {largest:,})" if largest else "not measured"
    limited = bool(res.get("args", {}).get("cutoffs"))
    names = [f"whole backfill < {TARGET_WALL_S // 60} min", f"peak RSS < {TARGET_RSS_GIB:.0f} GiB (largest process)",
             f"monthly increment < {TARGET_INCREMENT_S // 60} min", "no failed run",
             "every model trained (skips only where no training window has closed)"]
    if row is None:
        out = [{"target": n, "value": missing, "verdict": "–"} for n in names]
    else:
        full, inc = row["full"], row.get("increment") or {}
        exp = row["expected_models"]
        failed = full["counts"]["failed"] + (inc.get("counts", {}).get("failed", 0) if not inc.get("skipped") else 0)
        trained_ok = (full["models"]["trained"] == exp["with_window"]
                      and full["models"]["skipped"] == exp["without_window"])
        inc_trained = None
        if inc and not inc.get("skipped"):
            ie = inc["expected_models"]
            inc_trained = inc["models"]["trained"] == ie["with_window"]
            trained_ok &= inc_trained
        pp = full["peak_process"]
        peak_where = f"{pp.get('role')}, {pp['step']} {pp.get('partition') or ''}".strip() if pp.get("step") \
            else str(pp.get("role"))
        out = [
            {"target": names[0], "value": f"{full['wall_s'] / 60:.1f} min", "verdict": full["wall_s"] < TARGET_WALL_S},
            {"target": names[1], "value": f"{_gib(full['peak_rss_mb'])} ({peak_where}); process tree "
                                          f"{_gib(full['peak_rss_tree_mb'])}",
             "verdict": full["peak_rss_mb"] / 1024 < TARGET_RSS_GIB},
            {"target": names[2], "value": (f"{inc['wall_s'] / 60:.1f} min (lists published at "
                                           f"{_s(inc.get('lists_published_s'))})") if inc and not inc.get("skipped")
                                          else (inc or {}).get("skipped", "not run"),
             "verdict": inc["wall_s"] < TARGET_INCREMENT_S if inc and not inc.get("skipped") else "–"},
            {"target": names[3], "value": f"{full['runs']} + {inc.get('runs', 0)} runs, {failed} failed",
             "verdict": failed == 0},
            {"target": names[4], "value": f"{full['models']['trained']} trained of {exp['with_window']} with a window "
                                          f"(held {full['models']['held']}), {full['models']['skipped']} skipped "
                                          f"({exp['without_window']} without a window)"
                                          + (f"; increment {inc['models']['trained']} of "
                                             f"{inc['expected_models']['with_window']}"
                                             if inc_trained is not None else ""),
             "verdict": trained_ok},
        ]
        if limited:
            for v in out:
                v["value"] += " (cutoffs limited by --cutoffs)"
    sc = res.get("scaling", {})
    flagged = sc.get("superlinear", [])
    by_row: dict[str, list[str]] = {}
    for r, m in flagged:
        e = sc["rows"][r]["exponents"][m]["exponent"]
        by_row.setdefault(r, []).append(
            f"{ {'wall_s': 'wall', 'cpu_s': 'CPU', 'cpu_ref_s': 'CPU at the reference speed'}.get(m, 'peak RSS')} "
            f"{e:.2f}")
    out.append({"target": f"no stage grows faster than linearly (exponent > {SUPERLINEAR}) unexplained",
                "value": "; ".join(f"{r}: {', '.join(sorted(v, key=lambda x: ('w', 'C', 'p').index(x[0])))}"
                                   for r, v in by_row.items()) or "none flagged",
                "verdict": "–" if len(res.get("scaling", {}).get("sizes", [])) < 2 else
                           (True if not flagged else "CHECK")})
    for v in out:
        v["verdict"] = {True: "PASS", False: "FAIL"}.get(v["verdict"], v["verdict"])
    return out


def render(res: dict) -> str:
    labels = {**stage_labels(), "other": "other steps"}
    sizes = sorted((s for s in res.get("sizes", []) if s.get("full")), key=lambda s: s["customers"])
    sc = res.get("scaling") or scaling(sizes)
    m, code = res["machine"], res["code"]
    pk = m["packages"]
    first = sizes[0] if sizes else {}
    cut = first.get("cutoffs", [])
    inc_cut = next((s["increment"].get("cutoff") for s in sizes if s.get("increment", {}).get("cutoff")), None)
    mode = next((s["increment"].get("mode") for s in sizes if s.get("increment", {}).get("mode")), "cutoff")
    doors = sorted({s["full"].get("front_door") or bn.SEPARATE_SERVICES for s in sizes if s.get("full")})
    door = " or, for other sizes, ".join(bn.front_door_text(d) for d in doors)
    lines = [
        "## Production scale, measured (make bench-large)",
        "",
        "```bash",
        "make bench-large   # nice -n 10 .venv/bin/python benchmarks/bench_scale.py: writes "
        "benchmarks/results/scale.json and this section",
        "```",
        "",
        f"Measured {res['started_at'][:10]} ({_s(res.get('total_wall_s'))} in all): `{res['command']}`, on "
        + (f"the committed code of `{code['commit'][:12]}` (a `git archive` snapshot taken at start)"
           if code["source"] == "head" else
           f"a snapshot of the working tree at start (at commit `{code['commit'][:12]}`, uncommitted changes included "
           f"if any: engine files sha256 `{code['files_sha256']}`)")
        + f". Machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}, dagster {pk['dagster']}, "
        f"DuckDB {pk['duckdb']}, polars {pk['polars']}, LightGBM {pk['lightgbm']}"
        + (f"; its reference work (bench_native.reference_work: fixed single-threaded CPU work, to compare hosts) "
           f"{m['reference_work']['total_s']:.2f} CPU-s" if m.get("reference_work") else
           "; no reference work recorded (measured before bench_native.reference_work)")
        + ". Written by "
        "`benchmarks/bench_scale.py` between the `bench:scale` markers (not edited by hand); raw numbers in "
        f"`{res.get('json', 'benchmarks/results/scale.json')}`.",
        "",
        f"The `large` profile's config ({first.get('divisions', '?')} divisions, {len(cut)} cutoffs "
        f"{cut[0] if cut else '?'} … {cut[-1] if cut else '?'}"
        + (" — **limited with `--cutoffs`; the profile has 8**" if res.get("args", {}).get("cutoffs") else "")
        # measurements before the shipped default became 1 forced 2 and did not record it
        + f", `models.num_threads` {first.get('num_threads', 2)}) at " + ", ".join(f"{s['customers']:,}" for s in sizes)
        + " customers, its demo data generated once per size (seed 7, no ground-truth file). Per size, on a fresh "
        "GOSALES_HOME with the repository's dagster.yaml: " + door + " started and healthy, "
        "then the whole profile (every asset of every division and cutoff, star and reports included) as **one "
        "native backfill** submitted through GraphQL `launchPartitionBackfill`, as the product runs it; then, on the "
        "same instance and warehouse (services started again), **the monthly increment**: one more cutoff"
        + (f" ({inc_cut}, the next month-end)" if inc_cut else "")
        + (" — its features, its division × cutoff partitions (model, scores, peers, validation, drift), whitespace "
           "and top accounts —" if mode == "cutoff" else
           " — what the `new_cutoff` sensor launches: the star rebuilt, the cutoff's features and partitions, "
           "whitespace, reports and the refresh of the windows it closes —")
        + " as a second native backfill, timed from submission to completion (\"lists published\": the end of the "
        "last whitespace step).",
        "",
        "How it is measured: wall times from the instance (backfill submitted → marked completed; each step "
        "STEP_START → STEP_SUCCESS). CPU and memory from /proc: every "
        f"{res.get('interval_s', SAMPLE_INTERVAL_S)} s the benchmark reads every process descending from it "
        "(webserver, daemon, code servers, run workers): utime + stime from `/proc/<pid>/stat`, VmRSS and VmHWM from "
        "`/proc/<pid>/status`, then resets VmHWM (`5 > /proc/<pid>/clear_refs`), so each sample holds the exact peak "
        "RSS of its interval. A run worker is found by the pid it writes into its run's event log (\"Started process "
        "for run (pid: N)\"; also the run's `gosales/pid` tag): its command line (multiprocessing's `spawn_main`) and "
        "environment (the code server's) do not name the run. A step's CPU is its worker's CPU between the step's "
        "start and end (interpolated within a sample), its peak RSS the largest sample peak overlapping it; a stage "
        "sums its steps' wall and CPU and takes their largest peak. Peak RSS of one process is the largest of any "
        "process; of the process tree, the largest sum of VmRSS over one sweep. Growth exponent: least-squares "
        "slope of log(cost) against log(customers) over the sizes; above "
        f"{SUPERLINEAR} it is marked ⚠ (super-linear: explain or fix). CPU at the reference speed: each backfill's "
        f"CPU scaled to a host whose reference work is {REFERENCE_HOST_S} CPU-s (this machine's fast phase) by the "
        "backfill's own reference work, the mean of before and after (first order: the host's slowness taken as the "
        "same for every stage and throughout the backfill), so that sizes measured hours apart on a drifting host "
        "compare; its exponent is the one to read for how the engine's work grows.",
        "",
        "Mean 1-minute load average per backfill (2 cores, shared; the benchmark runs under `nice`): "
        + "; ".join(f"{s['customers']:,}: {(s['full'].get('load_average') or {}).get('mean', '–')}"
                    + (f" / increment {(s['increment'].get('load_average') or {}).get('mean', '–')}"
                       if s.get("increment") and not s["increment"].get("skipped") else "")
                    for s in sizes) + ".",
    ]
    if any(s["full"].get("reference_work") for s in sizes):
        lines += ["", "Reference work right before / after each backfill (the host's speed moves within an hour; "
                  "read each backfill against its own): " + "; ".join(
                      f"{s['customers']:,}: {_reference(s['full'])}"
                      + (f", increment {_reference(s['increment'])}"
                         if s.get("increment") and not s["increment"].get("skipped") else "")
                      for s in sizes) + "."]
    codes = {(s.get("code") or code).get("files_sha256") for s in sizes}
    if len(codes) > 1 or res.get("merged"):
        lines += ["", "**Sizes measured by separate runs (`--merge`)**: " + "; ".join(
            f"{s['customers']:,} at {s.get('measured_at', res['started_at'])[:16]} on "
            f"`{(s.get('code') or code).get('commit', '?')[:12]}` (engine files sha256 "
            f"`{(s.get('code') or code).get('files_sha256', '?')}`)" for s in sizes)
            + ("." if len(codes) == 1 else " — **the engine's code differs between sizes**.")]
    lines += [
        "",
        "### Per size",
        "",
        "| customers (sales lines) | whole backfill: wall / CPU | peak RSS: one process / tree | runs (failed) | "
        "models trained / held / skipped (no window) | monthly increment: wall (lists at) / CPU / peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for s in sizes:
        f, inc, gen = s["full"], s.get("increment") or {}, s.get("generation") or {}
        exp = s["expected_models"]
        inc_cell = (f"{_s(inc['wall_s'])} ({_s(inc.get('lists_published_s'))}) / {_s(inc['cpu_s'])} / "
                    f"{_gib(inc['peak_rss_mb'])}" if inc and not inc.get("skipped") else inc.get("skipped", "–"))
        lines.append(
            f"| {s['customers']:,} ({gen.get('sales_rows') or 0:,}) | **{_s(f['wall_s'])}** / {_s(f['cpu_s'])} | "
            f"{_gib(f['peak_rss_mb'])} / {_gib(f['peak_rss_tree_mb'])} | {f['runs']} ({f['counts']['failed']}) | "
            f"{f['models']['trained']} / {f['models']['held']} / {f['models']['skipped']} ({exp['without_window']}) | "
            f"{inc_cell} |")
    lines += _increment_timeline(sizes)
    lines += ["", "### How cost grows, per stage", "",
              "| stage | " + " | ".join(f"{s['customers']:,}: wall · CPU (at the reference speed) · peak RSS"
                                      for s in sizes)
              + " | growth exponent: wall / CPU / CPU at the reference speed / peak RSS |",
              "|---|" + "---|" * len(sizes) + "---|"]
    order = [*[k for k in labels if k in sc["rows"]], *EXTRA_ROWS, "whole", "increment"]
    names = {**labels, **EXTRA_ROWS, "whole": "**whole backfill**", "increment": "**monthly increment**"}
    for row in order:
        r = sc["rows"].get(row)
        if not r:
            continue
        cells = []
        for s in sizes:
            v = r["values"].get(str(s["customers"])) or {}
            ref = f" ({_s(v['cpu_ref_s'])})" if v.get("cpu_ref_s") is not None else ""
            cells.append(f"{_s(v.get('wall_s'))} · {_s(v.get('cpu_s'))}{ref} · {_gib(v.get('peak_rss_mb'))}")
        e = r["exponents"]
        lines.append(f"| {names[row].split(':')[0] if row in labels else names[row]} | " + " | ".join(cells)
                     + f" | {_exp(e.get('wall_s'))} / {_exp(e.get('cpu_s'))} / {_exp(e.get('cpu_ref_s'))} / "
                     f"{_exp(e.get('peak_rss_mb'))} |")
    checks = []
    for s in sizes:
        c = s["full"]["cpu_check"]
        checks.append(f"{s['customers']:,}: {_s(c['steps_cpu_s'])} in steps + {_s(c['outside_steps_cpu_s'])} outside "
                      f"(of which {_s(c.get('workers_tail_cpu_s'))} after the last sample) + "
                      f"{_s(c.get('workers_children_cpu_s'))} compute-log capture, against "
                      f"{_s(c['workers_cpu_reaped_s'])} reaped")
    lines += ["", "CPU check, run workers of the whole backfill: the CPU attributed to steps and outside them, sampled "
                  "from /proc, against the kernel's own count (the CPU credited to the workers' parent, the code "
                  "server, when it reaps them: each worker with its children, the compute-log capture). The moments "
                  "of a worker after its last sample (≤ the sampling interval, after its last step) are only in the "
                  "kernel's count; that difference is added outside steps and to the whole backfill: "
              + "; ".join(checks) + ".", ""]
    lines += [f"### Targets at {TARGET_SIZE:,} customers", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v['target']} | {v['value']} | **{v['verdict']}** |" for v in verdicts(res | {"scaling": sc})]
    return "\n".join(lines)


def _increment_timeline(sizes: list[dict]) -> list[str]:
    """Where the monthly increment's wall goes (bench_native.timeline: what the most advanced run was doing), so the
    part that is Dagster's daemon loop reads apart from the engine's work."""
    # The backfill daemon's loop interval: a constant of Dagster's (read here, not settable).
    from dagster._daemon.controller import DEFAULT_DAEMON_INTERVAL_SECONDS as DAEMON_INTERVAL_S

    rows = [(s["customers"], s["increment"]) for s in sizes
            if (s.get("increment") or {}).get("timeline") and not s["increment"].get("skipped")]
    if not rows:
        return []
    lines = ["", "### The monthly increment, where its wall goes", "",
             "| customers | lists published | waiting for the daemon: before the first run / between runs | queued | "
             "run start-up | steps | marked completed (one more look) |", "|---|---|---|---|---|---|---|"]
    firsts = []
    for n, inc in rows:
        t = inc["timeline"]
        firsts.append(t["daemon_before_first_run"])
        lines.append(f"| {n:,} | **{_s(inc.get('lists_published_s'))}** | {_s(t['daemon_before_first_run'])} / "
                     f"{_s(t['daemon_between_runs'])} | {_s(t['queue'])} | {_s(t['startup'])} | {_s(t['steps'])} | "
                     f"{_s(t['wall'])} |")
    span = _s(min(firsts)) if min(firsts) == max(firsts) else f"{_s(min(firsts))}–{_s(max(firsts))}"
    first = (f"The first look came {span} after submission"
             + (": nearly a whole interval, as the services start right before the submission and the daemon's loop "
                f"with them (a look, then {DAEMON_INTERVAL_S:.0f} s); a backfill submitted at a random moment waits "
                f"{DAEMON_INTERVAL_S / 2:.0f} s on average."
                if min(firsts) >= 0.8 * DAEMON_INTERVAL_S else "."))
    lines += ["", f"Dagster's backfill daemon looks at a backfill every {DAEMON_INTERVAL_S:.0f} s (its loop interval, "
                  "not configurable), and each look submits what has become ready: the cutoff's features, then its "
                  "division × cutoff runs, then its list, so the lists wait for at least three looks. " + first
                  + " The waits between runs depend on where each run ends within the interval."]
    return lines


def write_json(path: Path, res: dict) -> None:
    res["total_wall_s"] = round(time.time() - res["_t0"], 1) if "_t0" in res else res.get("total_wall_s")
    sizes = [s for s in res.get("sizes", []) if s.get("full")]
    res["sizes"] = sorted(res.get("sizes", []), key=lambda s: s["customers"])
    res["scaling"] = scaling(sizes)
    res["verdicts"] = verdicts(res)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in res.items() if k != "_t0"}, indent=1, default=str) + "\n")


def _rel(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def command_line(argv: list[str] | None) -> str:
    exe = Path(sys.executable)
    python = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else "python"
    nice = os.nice(0)
    words = [*(["nice", "-n", str(nice)] if nice else []), python, "benchmarks/bench_scale.py",
             *(argv if argv is not None else sys.argv[1:])]
    return " ".join(map(shlex.quote, words))


# ---------------------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                    help="customers per size, comma-separated (default %(default)s); run smallest first")
    ap.add_argument("--cutoffs", type=int, default=None, help="only the first N cutoffs of the profile (testing)")
    ap.add_argument("--increment", choices=["cutoff", "sensor"], default="cutoff",
                    help="the monthly increment's targets: one more cutoff as bench_native part A (default), or what "
                         "the new_cutoff sensor launches (star and reports included)")
    ap.add_argument("--work", type=Path, default=None,
                    help="work folder (default: a temporary one, removed at the end unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the homes (warehouse, artifacts, dagster_home, logs)")
    ap.add_argument("--reuse-data", action="store_true",
                    help="reuse each size's landing folder from an earlier run in --work (same size)")
    ap.add_argument("--code", choices=["head", "worktree"], default="head",
                    help="the engine's code: HEAD (git archive, the default) or the working tree at start")
    ap.add_argument("--increment-only", action="store_true",
                    help="only the monthly increment of the month after the newest cutoff of each size's kept home "
                         "in --work (its `home`), on that home; nothing generated, no whole backfill")
    ap.add_argument("--json", type=Path, default=RESULTS)
    ap.add_argument("--no-doc", action="store_true", help="do not write the docs/PERFORMANCE.md section")
    ap.add_argument("--render-only", action="store_true", help="rewrite the doc section from --json")
    ap.add_argument("--merge", action="store_true",
                    help="keep the sizes of --json not run now (same profile cutoffs) in the table")
    ap.add_argument("--timeout", type=float, default=BACKFILL_TIMEOUT_S, help="per native backfill, seconds")
    ap.add_argument("--interval", type=float, default=SAMPLE_INTERVAL_S, help="/proc sampling interval, seconds")
    args = ap.parse_args(argv)
    if args.render_only:
        res = json.loads(args.json.read_text())
        res["scaling"] = scaling([s for s in res["sizes"] if s.get("full")])
        _suite().update_doc(DOC, "scale", render(res))
        bn.log(f"wrote {_rel(DOC)} from {args.json}")
        return 0
    if (args.reuse_data or args.increment_only) and args.work is None:
        ap.error("--reuse-data and --increment-only need the --work folder of the earlier run")
    if args.increment_only and not args.no_doc:
        ap.error("--increment-only measures no whole backfill: it writes no doc section (add --no-doc)")
    sizes = sorted({int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip()})
    if not sizes or min(sizes) <= 0:
        ap.error("--sizes takes positive customer counts")

    temp = args.work is None
    work = Path(tempfile.mkdtemp(prefix="gosales_bench_scale_")) if temp else args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    loads = bn.LoadSampler()
    res: dict = {"_t0": time.time(), "started_at": dt.datetime.now().isoformat(timespec="seconds"),
                 "command": command_line(argv), "machine": bn.machine(), "git": bn.git_state(), "work": str(work),
                 "json": str(_rel(args.json)),
                 "interval_s": args.interval,
                 "args": {"sizes": sizes, "cutoffs": args.cutoffs, "increment": args.increment, "code": args.code},
                 "targets": {"whole_wall_s": TARGET_WALL_S, "peak_rss_gib": TARGET_RSS_GIB,
                             "increment_wall_s": TARGET_INCREMENT_S, "size": TARGET_SIZE, "superlinear": SUPERLINEAR},
                 "sizes": []}
    if args.merge and args.json.is_file():
        earlier = json.loads(args.json.read_text())
        same = {k: earlier.get("args", {}).get(k) for k in ("cutoffs", "increment")} == \
            {"cutoffs": args.cutoffs, "increment": args.increment}
        kept = [s for s in earlier.get("sizes", []) if s["customers"] not in sizes] if same else []
        if not same:
            bn.log(f"--merge: {args.json} was measured with other --cutoffs / --increment; nothing merged")
        res["sizes"] = kept
        res["merged"] = {str(s["customers"]): earlier.get("started_at") for s in kept}
    bn.log(f"work folder {work}; sizes {sizes}; load average {res['machine']['load_average_at_start']}")
    complete = False
    try:
        shutil.rmtree(work / "code", ignore_errors=True)
        res["code"] = bn.snapshot_code(work, args.code)
        code = Path(res["code"]["path"])
        import gosales_assets

        if not Path(gosales_assets.__file__).is_relative_to(code):
            raise RuntimeError(f"gosales_assets imported from {gosales_assets.__file__}, not from the snapshot {code}")
        bn.log(f"code: {args.code} snapshot of {res['code']['commit'][:12]} (sha256 {res['code']['files_sha256']})")
        for n in sizes:
            t0 = time.time()
            out = run_size(n, args, work, code, loads, res)
            out["size_wall_s"] = round(time.time() - t0, 1)
            res["sizes"] = [s for s in res["sizes"] if s["customers"] != n] + [out]
            write_json(args.json, res)
            if not (args.keep or args.increment_only):
                shutil.rmtree(work / f"n{n}" / "home", ignore_errors=True)
        complete = True
    finally:
        if temp and (complete and not args.keep):
            shutil.rmtree(work, ignore_errors=True)
        elif temp:
            bn.log(f"work folder kept{'' if complete else ' (incomplete run)'}: {work}")
    write_json(args.json, res)
    bn.log(f"wrote {args.json}")
    if args.increment_only:
        for size in res["sizes"]:
            inc = size.get("increment") or {}
            bn.log(f"n={size['customers']:,}: increment {inc.get('cutoff')}: {inc.get('wall_s')} s (lists at "
                   f"{inc.get('lists_published_s')} s), CPU {inc.get('cpu_s')} s, timeline {inc.get('timeline')}")
        return 0
    section = render(res)
    print(section)
    if args.no_doc:
        bn.log("doc section not written (--no-doc)")
    else:
        _suite().update_doc(DOC, "scale", section)
        bn.log(f"wrote {_rel(DOC)} (between the bench:scale markers)")
    for v in res["verdicts"]:
        bn.log(f"{v['verdict']}: {v['target']} — {v['value']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
