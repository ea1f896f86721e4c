"""Materialize the whole graph, every partition, into a Dagster instance (used by `gosales materialize`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import DagsterInstance, Definitions

from gosales_assets.automation.cutoffs import register_cutoffs
from gosales_assets.definitions import CUTOFF_JOB, DIVISION_CUTOFF_JOB, REPORTS_JOB, STAR_JOB, WHITESPACE_JOB
from gosales_assets.partitions import CUTOFF_PARTITIONS_NAME, multi_key
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


def _job_names(defs: Definitions) -> set[str]:
    return {j.name for j in defs.jobs or []}


def materialize_all(defs: Definitions, instance: DagsterInstance, settings: Settings,
                    log: Callable[[str], None] = print) -> list[RunOutcome]:
    """Star schema first; then, per registered cutoff: the cutoff features, every division × cutoff partition
    (labels → features → model → scores → validation, drift), the cutoff's whitespace ranking over all
    divisions; finally the cross-run reports.

    Stops after a failed star build (nothing downstream can be trusted); a failed partition is reported and
    the remaining partitions still run.
    """
    added = register_cutoffs(instance, settings)
    if added:
        log(f"registered cutoff partitions {added}")
    plan: list[tuple[str, object]] = [(STAR_JOB, None)]
    jobs = _job_names(defs)
    for cutoff in sorted(instance.get_dynamic_partitions(CUTOFF_PARTITIONS_NAME)):
        if CUTOFF_JOB in jobs:
            plan.append((CUTOFF_JOB, cutoff))
        if DIVISION_CUTOFF_JOB in jobs:
            plan += [(DIVISION_CUTOFF_JOB, multi_key(d, cutoff)) for d in settings.divisions]
        if WHITESPACE_JOB in jobs:
            plan.append((WHITESPACE_JOB, cutoff))
    if REPORTS_JOB in jobs:
        plan.append((REPORTS_JOB, None))
    outcomes: list[RunOutcome] = []
    for job_name, key in plan:
        job = defs.resolve_job_def(job_name)
        result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False,
                                        run_config=QUIET_CONSOLE)
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
        outcomes.append(outcome)
        status = "ok  " if result.success else ("held" if blocked else "FAIL")
        log(f"{status} {job_name} {outcome.partition or ''} (run {result.run_id[:8]})")
        for line in failed:
            log(f"       check did not pass: {line}")
        if not result.success and not blocked:
            for err in errors:
                if err is not None:
                    cause = err.cause or err
                    log(f"       error: {cause.message.strip().splitlines()[0] if cause.message else err.message}")
        if job_name == STAR_JOB and not result.success:
            log("star schema failed; not materializing downstream partitions")
            break
    return outcomes
