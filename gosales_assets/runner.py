"""Backfill the graph over a set of cutoffs in one process (`gosales backfill`, `gosales materialize`).

Every partition is still its own Dagster run, recorded in the instance and visible in the UI: the promotion
gate and the leakage checks are per division × cutoff and blocking, and a Dagster asset check is evaluated
once per run step, so one run over many partitions would let one division's verdict decide for the others.
What the runner saves is the process: all runs execute in this one process (no per-run subprocess start,
no re-import of the code location), in dependency order, without a daemon.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dagster import DagsterInstance, Definitions

from gosales_assets.automation.cutoffs import register_cutoffs
from gosales_assets.jobs import BACKFILL_TAG, CUTOFF_JOB, DIVISION_CUTOFF_JOB, REPORTS_JOB, STAR_JOB, WHITESPACE_JOB
from gosales_assets.partitions import CUTOFF_PARTITIONS_NAME, cutoff_partitions, multi_key, parse_cutoff
from gosales_assets.resources import hold_warehouse
from gosales_assets.settings import Settings


# The runner prints one line per run (and the error of a failed one); Dagster's own console log would repeat
# every event on stderr. Everything is still recorded in the instance (and visible in the UI).
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


# When a partition is skipped on purpose (no model yet), Dagster warns on stderr for every blocking check of the
# skipped step; the skip and its reason are already recorded in the run, so keep the runner's output readable.
logging.getLogger("dagster._core.execution.plan.active").setLevel(logging.ERROR)


@dataclass
class RunOutcome:
    job: str
    partition: str | None
    run_id: str
    success: bool
    failed_checks: list[str] = field(default_factory=list)
    # True when the run failed only because a blocking check said no (e.g. a model missed its promotion
    # gate): the engine worked and refused to publish; no step raised an error.
    blocked_by_checks: bool = False


def stopped_or_failed(outcomes: list[RunOutcome]) -> list[RunOutcome]:
    """Runs that failed with an error, and a star schema held back by its checks (then nothing downstream ran).
    Partitions held back by a blocking check (e.g. a missed promotion gate) are the engine working: not here."""
    return [o for o in outcomes if not o.success and (not o.blocked_by_checks or o.job == STAR_JOB)]


def _job_names(defs: Definitions) -> set[str]:
    return {j.name for j in defs.jobs or []}


def plan_runs(defs: Definitions, cutoffs: Sequence[str], divisions: Sequence[str], *, star: bool = True,
              reports: bool = True) -> list[tuple[str, object]]:
    """(job, partition key) in dependency order: star; per cutoff (in date order): the cutoff features, every
    division × cutoff partition (labels → features → model → scores → validation, drift), the cutoff's
    whitespace ranking over all divisions; the cross-run reports last."""
    jobs = _job_names(defs)
    plan: list[tuple[str, object]] = [(STAR_JOB, None)] if star and STAR_JOB in jobs else []
    for cutoff in sorted(cutoffs):
        if CUTOFF_JOB in jobs:
            plan.append((CUTOFF_JOB, cutoff))
        if DIVISION_CUTOFF_JOB in jobs:
            plan += [(DIVISION_CUTOFF_JOB, multi_key(d, cutoff)) for d in divisions]
        if WHITESPACE_JOB in jobs:
            plan.append((WHITESPACE_JOB, cutoff))
    if reports and REPORTS_JOB in jobs:
        plan.append((REPORTS_JOB, None))
    return plan


def materialize_all(defs: Definitions, instance: DagsterInstance, settings: Settings,
                    log: Callable[[str], None] = print) -> list[RunOutcome]:
    """The whole graph: every configured and registered cutoff, every division, star and reports."""
    return backfill(defs, instance, settings, log=log)


def backfill(defs: Definitions, instance: DagsterInstance, settings: Settings, *,
             cutoffs: Sequence[str | dt.date] | None = None, divisions: Sequence[str] | None = None,
             star: bool = True, reports: bool = True, log: Callable[[str], None] = print) -> list[RunOutcome]:
    """Materialize the graph for `cutoffs` (default: every registered and configured cutoff) and `divisions`
    (default: all), in dependency order, in this process. Cutoffs not yet registered are added to the
    `cutoff` partitions first (that is how a new cutoff is added). Every run is tagged with one backfill id.

    Stops after a failed star build (nothing downstream can be trusted); a failed partition is reported and
    the remaining partitions still run.
    """
    unknown = sorted(set(divisions or []) - set(settings.divisions))
    if unknown:
        raise ValueError(f"unknown division(s) {unknown}; configured: {settings.divisions}")
    requested = sorted({parse_cutoff(str(c)) for c in cutoffs}) if cutoffs is not None else None
    late = [str(c) for c in requested or [] if c > settings.data.end_date]
    if late:
        raise ValueError(f"cutoff(s) {late} are after the data end {settings.data.end_date} (data.end_date): the "
                         "month is not in the sales log yet; refresh the landing data and data.end_date first")
    added = register_cutoffs(instance, settings)
    if added:
        log(f"registered cutoff partitions {added}")
    if requested is None:
        chosen = sorted(instance.get_dynamic_partitions(CUTOFF_PARTITIONS_NAME))
    else:
        chosen = [c.isoformat() for c in requested]
        new = [c for c in chosen if not instance.has_dynamic_partition(CUTOFF_PARTITIONS_NAME, c)]
        if new:
            instance.add_dynamic_partitions(cutoff_partitions.name, new)
            log(f"registered cutoff partitions {new}")
    plan = plan_runs(defs, chosen, divisions or settings.divisions, star=star, reports=reports)
    tags = {BACKFILL_TAG: f"cli-{uuid.uuid4().hex[:8]}"}
    log(f"backfill {tags[BACKFILL_TAG]}: {len(plan)} runs over cutoffs {chosen or 'none'}")
    outcomes: list[RunOutcome] = []
    for job_name, key in plan:
        # One hold per run: the run's steps share one open database; between runs the file is released
        # (and DuckDB's buffers with it), so a long backfill does not lock other processes out throughout.
        with hold_warehouse(settings.warehouse_path):
            outcome = _execute(defs.resolve_job_def(job_name), job_name, key, instance, tags, log)
        outcomes.append(outcome)
        # The in-process result keeps every output of its run in memory (Dagster's output capture); it is
        # dropped inside `_execute`. Cycles that still hold frames are collected and the freed heap goes back
        # to the OS. A full collection costs ~0.2 s a run, but skipping it in small processes made the demo
        # backfill slower overall (252 s against 225 s: the automatic collections then run inside the steps).
        gc.collect()
        _release_free_heap()
        if job_name == STAR_JOB and not outcome.success:
            log("star schema failed; not materializing downstream partitions")
            break
    return outcomes


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, and a backfill process runs for hours
    through steps of very different sizes). A no-op where glibc is not the C library."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _execute(job, job_name: str, key, instance: DagsterInstance, tags: dict[str, str],
             log: Callable[[str], None]) -> RunOutcome:
    result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False,
                                    run_config=QUIET_CONSOLE, tags=tags)
    failed = [
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}"
        f" — {e.asset_check_evaluation_data.description}"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]
    errors = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
    blocked = (not result.success and bool(errors)
               and all(err.cls_name == "DagsterAssetCheckFailedError" for err in errors if err is not None))
    outcome = RunOutcome(job_name, str(key) if key is not None else None, result.run_id, result.success, failed,
                         blocked)
    status = "ok  " if result.success else ("held" if blocked else "FAIL")
    log(f"{status} {job_name} {outcome.partition or ''} (run {result.run_id[:8]})")
    for line in failed:
        log(f"       check did not pass: {line}")
    if not result.success and not blocked:
        for err in errors:
            if err is not None:
                cause = err.cause or err
                log(f"       error: {cause.message.strip().splitlines()[0] if cause.message else err.message}")
    return outcome
