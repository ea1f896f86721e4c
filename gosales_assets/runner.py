"""Running the asset graph over chosen cutoffs and divisions: natively, as a Dagster asset backfill (`gosales
backfill`, the `new_cutoff` sensor; needs the daemon), or in this process (`gosales materialize`, `make demo`;
no daemon). Neither path knows the pipeline's stages: the work is a set of (asset, partition) pairs and the
order comes from the asset graph and its partition mappings alone.

In process, the assets of one partition key (and one partitioning) run together, unless a path through another
partition separates them (then they are two runs, in order); the assets of one op are always one run. A native
backfill runs each division × cutoff partition as one run too (one op: docs/ARCHITECTURE.md). Each run is a Dagster
run recorded in the instance, so it shows in the UI. A run whose upstream failed is not started (it is reported as
skipped), as a native backfill does.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, Definitions, RunsFilter
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id
from dagster._time import get_current_timestamp

from gosales_assets.core.registry import HELD, RETAINED, SKIPPED
from gosales_assets.jobs import (
    CUTOFF_JOB,
    DIVISION_CUTOFF_JOB,
    GLOBAL_JOB,
    HOST_TAG,
    MATERIALIZE_TAG,
    PID_TAG,
    SOURCE_TAG,
)
from gosales_assets.partitions import cutoff_key, multi_key, parse_cutoff
from gosales_assets.resources import WAREHOUSE_POOLS
from gosales_assets.settings import Settings

# The runner prints one line per run (and the error of a failed one); Dagster's own console log would repeat
# every event on stderr. Everything is still recorded in the instance (and visible in the UI).
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
ACTIVE = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
WAIT_POLL_S = 2.0
UPSTREAM_GROUPS = {"raw", "star"}  # the unpartitioned assets upstream of every partition (`--skip-star`)


@dataclass
class RunOutcome:
    job: str
    partition: str | None
    run_id: str | None
    status: str                      # ok | held | failed | skipped (an upstream run failed)
    assets: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)   # "<partition>: <status> — <reason>" of held/skipped models
    retained: list[str] = field(default_factory=list)  # the same for retained ones (the champion keeps serving)
    error: str | None = None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run of `materialize`; the runs after it were not started."""

    def __init__(self, outcome: RunOutcome):
        super().__init__(f"interrupted during run {outcome.run_id} ({outcome.job} {outcome.partition or ''})")
        self.outcome = outcome


@dataclass(frozen=True)
class PlannedRun:
    job: str
    partition: str | None
    assets: tuple[AssetKey, ...]


# ---- what to run ----------------------------------------------------------------------------------------------
def _job_of(partitions_def) -> str:
    if partitions_def is None:
        return GLOBAL_JOB
    return DIVISION_CUTOFF_JOB if getattr(partitions_def, "partitions_defs", None) else CUTOFF_JOB


def target_partitions(graph: BaseAssetGraph, settings: Settings, *, cutoffs: Sequence[str | dt.date] | None = None,
                      divisions: Sequence[str] | None = None, star: bool = True, reports: bool = True
                      ) -> set[AssetKeyPartitionKey]:
    """Every (asset, partition) of the chosen cutoffs (default: the configured ones) and divisions (default: all),
    with the unpartitioned assets: upstream ones (raw, star) when `star`, downstream ones (reports) when `reports`."""
    unknown = sorted(set(divisions or []) - set(settings.divisions))
    if unknown:
        raise ValueError(f"unknown division(s) {unknown}; configured: {settings.divisions}")
    chosen = sorted({parse_cutoff(str(c)) for c in cutoffs}) if cutoffs is not None else list(settings.cutoffs)
    first, last = settings.cutoffs[0], settings.last_cutoff
    span = f"the cutoff partitions run from {first} (the first configured cutoff) to {last}"
    early = [str(c) for c in chosen if c < first]
    if early:
        raise ValueError(f"cutoff(s) {early} are outside the cutoff partitions: {span}; to build earlier cutoffs, "
                         "add the earliest one to `cutoffs` in the config")
    late = [str(c) for c in chosen if c > last]
    if late:
        raise ValueError(f"cutoff(s) {late} are outside the cutoff partitions: {span} (the last month-end of the "
                         f"data, data.end_date {settings.data.end_date}); refresh the data and data.end_date first")
    out: set[AssetKeyPartitionKey] = set()
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        pd = node.partitions_def
        if pd is None:
            if (star if node.group_name in UPSTREAM_GROUPS else reports):
                out.add(AssetKeyPartitionKey(key, None))
        elif _job_of(pd) == DIVISION_CUTOFF_JOB:
            out |= {AssetKeyPartitionKey(key, multi_key(d, c)) for c in chosen for d in divisions or settings.divisions}
        else:
            out |= {AssetKeyPartitionKey(key, cutoff_key(c)) for c in chosen}
    return out


def plan_runs(graph: BaseAssetGraph, targets: Iterable[AssetKeyPartitionKey]) -> list[PlannedRun]:
    """The targets as runs in an order the asset graph allows: a (asset, partition) runs after every target it
    depends on (through any partition mapping). Assets of one partition join one run unless a dependency through
    another run separates them; the assets one op makes together (a non-subsettable multi-asset) are one unit, in
    one run. Deterministic: same targets, same plan."""
    # Every target brings the assets its op makes with it, and they are planned as one unit (its first asset).
    op_keys = {t: sorted((k for k in graph.get_execution_set_asset_and_check_keys(t.asset_key)
                          if isinstance(k, AssetKey)), key=lambda k: k.to_user_string()) or [t.asset_key]
               for t in set(targets)}
    unit_assets = {AssetKeyPartitionKey(keys[0], t.partition_key): keys for t, keys in op_keys.items()}
    unit_of = {AssetKeyPartitionKey(k, u.partition_key): u for u, keys in unit_assets.items() for k in keys}
    targets = set(unit_assets)
    parents = {u: {unit_of[p] for k in unit_assets[u]
                   for p in graph.get_parents_partitions(k, u.partition_key).parent_partitions
                   if p in unit_of and unit_of[p] != u} for u in targets}

    def group(t: AssetKeyPartitionKey) -> tuple[str, str]:
        return _job_of(graph.get(t.asset_key).partitions_def), str(t.partition_key or "")

    # Kahn's algorithm in a stable order; stage(t) = the number of run boundaries on the longest path to t.
    children: dict[AssetKeyPartitionKey, list[AssetKeyPartitionKey]] = {t: [] for t in targets}
    for t, ps in parents.items():
        for p in ps:
            children[p].append(t)
    waiting = {t: len(ps) for t, ps in parents.items()}
    ready = sorted((t for t, n in waiting.items() if n == 0), key=_sort_key)
    stage: dict[AssetKeyPartitionKey, int] = {}
    order: list[AssetKeyPartitionKey] = []  # topological
    while ready:
        t = ready.pop(0)
        order.append(t)
        stage[t] = max((stage[p] + (group(p) != group(t)) for p in parents[t]), default=0)
        for c in children[t]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
        ready.sort(key=_sort_key)
    if len(stage) != len(targets):
        raise ValueError("the asset graph has a cycle among the chosen partitions")
    # Then a run joins the next run of the same partition when every child of its pairs still runs after it (e.g.
    # the labels and model of a first cutoff, which read no earlier partition, join its features' run; the frames of
    # a cutoff join its model's run when the models that read them come later in the plan's order).
    jobs = {GLOBAL_JOB: 0, CUTOFF_JOB: 1, DIVISION_CUTOFF_JOB: 2}

    def position(s: int, g: tuple[str, str]) -> tuple[int, int, str]:  # where a run sorts in the plan
        return s, jobs[g[0]], g[1]

    members: dict[tuple[tuple[str, str], int], list[AssetKeyPartitionKey]] = {}
    for t in order:
        members.setdefault((group(t), stage[t]), []).append(t)
    for g in sorted({g for g, _ in members}):
        stages = sorted(s for gg, s in members if gg == g)
        later = stages[-1]
        for s in reversed(stages[:-1]):
            run = set(members[(g, s)])
            if all(position(stage[c], group(c)) > position(later, g) for t in run for c in children[t]
                   if c not in run and group(c) != g) \
                    and all(stage[c] >= later for t in run for c in children[t] if c not in run and group(c) == g):
                for t in run:
                    stage[t] = later
            else:
                later = s
    runs: dict[tuple[int, str, str], list[AssetKey]] = {}
    for t, s in stage.items():
        runs.setdefault((s, *group(t)), []).extend(unit_assets[t])
    return [PlannedRun(job, partition or None, tuple(sorted(keys, key=lambda k: k.to_user_string())))
            for (s, job, partition), keys in sorted(runs.items(), key=lambda kv: position(kv[0][0], kv[0][1:]))]


def _sort_key(t: AssetKeyPartitionKey) -> tuple[str, str]:
    return str(t.partition_key or ""), t.asset_key.to_user_string()


# ---- in process -----------------------------------------------------------------------------------------------
def materialize(defs: Definitions, instance: DagsterInstance, settings: Settings, *,
                cutoffs: Sequence[str | dt.date] | None = None, divisions: Sequence[str] | None = None,
                star: bool = True, reports: bool = True, log: Callable[[str], None] = print) -> list[RunOutcome]:
    """Materialize the chosen partitions in this process, run by run, in the order of `plan_runs`. A run whose
    upstream failed is skipped; a held model is not a failure (its partition materializes its verdict)."""
    graph = defs.resolve_asset_graph()
    targets = target_partitions(graph, settings, cutoffs=cutoffs, divisions=divisions, star=star, reports=reports)
    return materialize_targets(defs, instance, targets, log=log)


def materialize_targets(defs: Definitions, instance: DagsterInstance, targets: Iterable[AssetKeyPartitionKey], *,
                        log: Callable[[str], None] = print) -> list[RunOutcome]:
    """Materialize these (asset, partition) pairs in this process (e.g. what a native backfill would), with the other
    outputs of their op where it makes several as one step (`drift` brings `icp_scores`, as the UI selects them)."""
    graph = defs.resolve_asset_graph()
    targets = {AssetKeyPartitionKey(k, t.partition_key) for t in targets
               for k in graph.get(t.asset_key).execution_set_asset_keys}
    ensure_warehouse_pools(instance)
    plan = plan_runs(graph, targets)
    tags = {MATERIALIZE_TAG: f"cli-{uuid.uuid4().hex[:8]}"}
    log(f"materialize {tags[MATERIALIZE_TAG]}: {len(plan)} runs over {len(targets)} asset partitions")
    failed: set[AssetKeyPartitionKey] = set()
    outcomes: list[RunOutcome] = []
    for run in plan:
        nodes = {AssetKeyPartitionKey(k, run.partition if run.job != DIVISION_CUTOFF_JOB else _mk(run.partition))
                 for k in run.assets}
        blocked = sorted({f"{p.asset_key.to_user_string()} {p.partition_key or ''}".strip()
                          for n in nodes for p in graph.get_parents_partitions(n.asset_key, n.partition_key)
                          .parent_partitions if p in failed})
        if blocked:
            failed |= nodes
            outcome = RunOutcome(run.job, run.partition, None, "skipped", _names(run.assets),
                                 error=f"upstream failed: {', '.join(blocked[:5])}")
        else:
            _wait_for_warehouse(instance, log)
            try:
                outcome = _execute(defs, run, instance, tags)
            except Interrupted as stop:
                _log_outcome(stop.outcome, log)
                log(f"interrupted: {len(plan) - len(outcomes) - 1} run(s) not started; the same command again "
                    "finishes the work")
                raise
            failed |= {n for n in nodes if n.asset_key.to_user_string() not in outcome.assets}
        outcomes.append(outcome)
        _log_outcome(outcome, log)
        # The in-process result keeps every output of its run in memory; it is dropped inside `_execute`. Cycles
        # that still hold frames are collected and the freed heap goes back to the OS between runs.
        gc.collect()
        _release_free_heap()
    return outcomes


def _mk(partition: str | None):
    cutoff, division = str(partition).split("|", 1)
    return multi_key(division, cutoff)


def _names(keys: Iterable[AssetKey]) -> list[str]:
    return [k.to_user_string() for k in keys]


def ensure_warehouse_pools(instance: DagsterInstance) -> None:
    """Create the warehouse pools' limits (dagster.yaml's default, two slots) if the instance has none yet, and
    follow a changed default where a pool's limit came from the default (an instance made under another dagster.yaml;
    a limit set by hand in the UI is kept). Dagster's run queue creates the limits on the fly, but in that first
    iteration it counts a pool as unlimited, so more warehouse runs than the limit could start together on a fresh
    instance (measured: docs/PERFORMANCE.md)."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        default = instance.global_op_concurrency_default_limit
        limits = {p.name: p for p in storage.get_pool_limits()}
        for pool in WAREHOUSE_POOLS:
            have = limits.get(pool)
            if have is None or (have.from_default and default is not None and have.limit != default):
                storage.initialize_concurrency_limit_to_default(pool)


def _process_gone(run) -> bool:
    """Whether the process that held a run's warehouse (tagged by the `warehouse` resource) is gone: killed, so the
    run would stay "started" forever and hold the warehouse pool."""
    host, pid = run.tags.get(HOST_TAG), run.tags.get(PID_TAG)
    if host != socket.gethostname() or not (pid or "").isdigit():
        return False  # another machine's, or not started far enough to hold anything
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def release_dead_runs(instance: DagsterInstance, log: Callable[[str], None] = print) -> list[str]:
    """Mark failed every active run whose process is gone (kill -9, out of memory), with a log line: that frees the
    warehouse pool for the queue and for `gosales materialize`. Returns the run ids."""
    released = []
    for record in instance.get_run_records(RunsFilter(statuses=ACTIVE)):
        run = record.dagster_run
        if _process_gone(run):
            instance.report_run_failed(run, f"its process (pid {run.tags[PID_TAG]}) is gone: killed before the run "
                                            "ended; marked failed so the warehouse pool is free again")
            log(f"run {run.run_id[:8]} marked failed: its process (pid {run.tags[PID_TAG]}) was killed")
            released.append(run.run_id)
    return released


def _wait_for_warehouse(instance: DagsterInstance, log: Callable[[str], None]) -> None:
    """Wait while a run started elsewhere (the UI, a sensor, a native backfill) holds the warehouse pool: DuckDB
    has one writer, and the run queue does not see in-process runs coming. Runs whose process was killed are
    released first."""
    said = False
    while True:
        release_dead_runs(instance, log)
        holders = [r.dagster_run.run_id for r in instance.get_run_records(RunsFilter(statuses=ACTIVE))
                   if r.dagster_run.run_op_concurrency
                   and set(WAREHOUSE_POOLS) & set(r.dagster_run.run_op_concurrency.all_pools or [])]
        if not holders:
            return
        if not said:
            log(f"waiting: run(s) {', '.join(h[:8] for h in holders)} hold the warehouse")
            said = True
        time.sleep(WAIT_POLL_S)


def _execute(defs: Definitions, run: PlannedRun, instance: DagsterInstance, tags: dict[str, str]) -> RunOutcome:
    job = defs.resolve_job_def(run.job)
    key = _mk(run.partition) if run.job == DIVISION_CUTOFF_JOB else run.partition
    # The run executes in this process: tagged with it from creation, so a kill at any moment (even before the
    # warehouse resource tags it) leaves a run that `release_dead_runs` recognises.
    tags = {**tags, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    result = job.execute_in_process(instance=instance, partition_key=key, asset_selection=list(run.assets),
                                    raise_on_error=False, run_config=QUIET_CONSOLE, tags=tags)
    events = result.all_events
    materialized = sorted({e.asset_key.to_user_string() for e in events if e.is_step_materialization})
    failed_checks = [
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}"
        f" — {e.asset_check_evaluation_data.description}"
        for e in events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed]
    held, retained = model_verdicts(e.step_materialization_data.materialization for e in events
                                    if e.is_step_materialization)
    error = None
    if not result.success:
        errors = [e.step_failure_data.error for e in events if e.is_step_failure and e.step_failure_data.error]
        if errors:
            cause = errors[0].cause or errors[0]
            error = (cause.message or errors[0].message).strip().splitlines()[0]
    status = "failed" if not result.success else ("held" if held else "ok")
    outcome = RunOutcome(run.job, run.partition, result.run_id, status, materialized, failed_checks, held, retained,
                         error)
    if error and "DagsterExecutionInterruptedError" in error:
        # Dagster turns Ctrl-C / SIGTERM into a failed step and returns; the whole materialize stops here instead
        # of going on with the next run.
        raise Interrupted(outcome)
    return outcome


def model_verdicts(materializations: Iterable) -> tuple[list[str], list[str]]:
    """"<partition>: <status> — <reason>" of the `division_model` materializations whose model does not serve
    (held, skipped) and of those whose champion serves instead (retained)."""
    held, retained = [], []
    for m in materializations:
        if m.asset_key != AssetKey("division_model") or "status" not in m.metadata:
            continue
        status = m.metadata["status"].value
        line = f"{m.partition}: {status} — {m.metadata['reason'].value}"
        if status in (HELD, SKIPPED):
            held.append(line)
        elif status == RETAINED:
            retained.append(line)
    return held, retained


def _log_outcome(o: RunOutcome, log: Callable[[str], None]) -> None:
    run = f"(run {o.run_id[:8]})" if o.run_id else ""
    log(f"{o.status:<7} {o.job} {o.partition or ''} {run}".rstrip())
    for line in o.held:
        log(f"        held: {line}")
    for line in o.retained:
        log(f"        retained: {line}")
    if o.status in ("failed", "skipped"):
        for line in o.failed_checks:
            log(f"        check did not pass: {line}")
        if o.error:
            log(f"        {'error' if o.status == 'failed' else 'reason'}: {o.error}")


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, and a long materialize runs through steps
    of very different sizes). A no-op where glibc is not the C library."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def summarize(outcomes: Sequence[RunOutcome]) -> dict[str, int]:
    """Runs per status (ok | held | failed | skipped), and `retained`: runs with a retained model (their status is
    `ok`: the division's champion serves)."""
    counts = {s: 0 for s in ("ok", "held", "failed", "skipped")}
    for o in outcomes:
        counts[o.status] += 1
    counts["retained"] = sum(1 for o in outcomes if o.retained)
    return counts


# ---- native ---------------------------------------------------------------------------------------------------
def backfill_subset(graph: BaseAssetGraph, targets: Iterable[AssetKeyPartitionKey]) -> AssetGraphSubset:
    return AssetGraphSubset.from_asset_partition_set(set(targets), graph)


def launch_backfill(graph: BaseAssetGraph, instance: DagsterInstance, targets: Iterable[AssetKeyPartitionKey], *,
                    source: str, title: str, tags: dict[str, str] | None = None) -> str:
    """Submit a native asset backfill of `targets` (what the UI's "Materialize" of partitions does); the daemon's
    backfill loop runs it, ordering runs by the asset graph. Returns the backfill id."""
    backfill_id = make_new_backfill_id()
    ensure_warehouse_pools(instance)
    instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
        backfill_id=backfill_id, backfill_timestamp=get_current_timestamp(), tags={SOURCE_TAG: source, **(tags or {})},
        dynamic_partitions_store=instance, asset_graph_subset=backfill_subset(graph, targets), title=title,
        description=None, run_config=None))
    return backfill_id


FINISHED_BACKFILL = {BulkActionStatus.COMPLETED, BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED,
                     BulkActionStatus.FAILED, BulkActionStatus.CANCELED}


def wait_backfill(instance: DagsterInstance, backfill_id: str, *, timeout_s: float | None = None,
                  poll_s: float = 5.0, log: Callable[[str], None] = print) -> BulkActionStatus:
    """Wait until the backfill has finished; logs progress when the number of finished runs changes."""
    start, seen = time.monotonic(), -1
    while True:
        backfill = instance.get_backfill(backfill_id)
        if backfill is None:
            raise ValueError(f"no backfill {backfill_id} in this instance")
        if backfill.status in FINISHED_BACKFILL:
            return backfill.status
        done = len(instance.get_run_ids(RunsFilter(tags={"dagster/backfill": backfill_id},
                                                   statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE,
                                                             DagsterRunStatus.CANCELED])))
        if done != seen:
            log(f"backfill {backfill_id}: {backfill.status.value}, {done} run(s) finished")
            seen = done
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"backfill {backfill_id} still {backfill.status.value} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def backfill_outcomes(instance: DagsterInstance, backfill_id: str) -> list[RunOutcome]:
    """One outcome per run of a native backfill (oldest first), classified like the in-process runs."""
    out = []
    for record in reversed(instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))):
        run = record.dagster_run
        ms = [entry.asset_materialization
              for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)]
        held, retained = model_verdicts(ms)
        status = ("held" if held else "ok") if run.status == DagsterRunStatus.SUCCESS else "failed"
        out.append(RunOutcome(run.job_name, run.tags.get("dagster/partition"), run.run_id, status,
                              sorted({m.asset_key.to_user_string() for m in ms}), held=held, retained=retained))
    return out
