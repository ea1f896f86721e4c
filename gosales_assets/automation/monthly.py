"""The monthly schedule and the sensor that carries a scheduled cutoff through the graph.

Once a month the schedule registers the newest complete month-end M as a `cutoff` partition (when the data
reaches it) and requests the cutoff features of M (stage `cutoff`). The graph has three partitionings
(cutoff; division × cutoff; cutoff for whitespace) and a Dagster run covers one of them, so the
`monthly_pipeline` sensor requests the next stages once the previous one is done:
- after the cutoff features of M succeeded: for every division d with scores published at C' = M − W_d
  (W_d its label window), the labels and forward validation of (d, C'), whose window (C', M] has just closed
  (stage `validation`) — first, because C' is the newest cutoff the models at M may train on;
- after those finished: every division × cutoff partition of M (labels → features → model → scores → drift;
  stage `division`);
- after every division run of M has finished: the whitespace ranking of M (stage `whitespace`).

Every request has a run key (`gosales/run_key` tag and Dagster's own run key) and is dropped when a run with
that key exists already, so firing twice requests nothing new.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from gosales_assets.core.calendar import add_months, month_end
from gosales_assets.jobs import (
    CUTOFF_JOB,
    CUTOFF_TAG,
    DIVISION_CUTOFF_JOB,
    DIVISION_TAG,
    PIPELINE_TAG,
    RUN_KEY_TAG,
    STAGE_TAG,
    WHITESPACE_JOB,
)
from gosales_assets.partitions import CUTOFF_PARTITIONS_NAME, multi_key
from gosales_assets.resources import GosalesSettings
from gosales_assets.settings import Settings

MONTHLY = "monthly"
VALIDATION_ASSETS = ("labels", "forward_validation")
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class PlannedRun:
    """One run the automation wants: a job, a partition, optionally a subset of the job's assets."""

    job: str
    stage: str
    cutoff: str                          # the scheduled cutoff this run belongs to
    division: str | None = None          # set for division × cutoff partitions
    partition_cutoff: str | None = None  # the partition's cutoff when it is not `cutoff` (validation of C')
    assets: tuple[str, ...] | None = None

    @property
    def run_key(self) -> str:
        return ":".join(x for x in (MONTHLY, self.cutoff, self.stage, self.division) if x)

    @property
    def partition_key(self):
        c = self.partition_cutoff or self.cutoff
        return multi_key(self.division, c) if self.division else c

    @property
    def tags(self) -> dict[str, str]:
        tags = {PIPELINE_TAG: MONTHLY, CUTOFF_TAG: self.cutoff, STAGE_TAG: self.stage, RUN_KEY_TAG: self.run_key}
        return tags | ({DIVISION_TAG: self.division} if self.division else {})

    def run_request(self) -> RunRequest:
        return RunRequest(run_key=self.run_key, job_name=self.job, partition_key=self.partition_key, tags=self.tags,
                          asset_selection=[AssetKey(a) for a in self.assets] if self.assets else None)


@dataclass
class MonthlyPlan:
    cutoff: dt.date
    runs: list[PlannedRun] = field(default_factory=list)
    skip_reason: str | None = None


def newest_month_end(tick: dt.date) -> dt.date:
    """The last month-end strictly before the month of `tick` (the newest complete month)."""
    return month_end(add_months(tick, -1))


def monthly_plan(tick: dt.date, settings: Settings) -> MonthlyPlan:
    """What the schedule does at `tick`: the cutoff to register and its first-stage run. Pure."""
    cutoff = newest_month_end(tick)
    if cutoff > settings.data.end_date:
        return MonthlyPlan(cutoff, skip_reason=(
            f"the newest month-end {cutoff} is after the data end {settings.data.end_date} (data.end_date): "
            "refresh the landing data and data.end_date, then the next tick registers it"))
    runs = [PlannedRun(CUTOFF_JOB, "cutoff", cutoff.isoformat())]
    return MonthlyPlan(cutoff, runs)


def next_stage(settings: Settings, cutoff: str, published: Iterable[str],
               runs: Iterable[tuple[str, str | None, DagsterRunStatus]]) -> list[PlannedRun]:
    """The next runs of the scheduled `cutoff`, given its runs so far as (stage, division, status) and the
    `icp_scores` partitions published so far ("<cutoff>|<division>"). Pure: the sensor turns instance state
    into these arguments and this decides; runs already present are returned again (the caller drops them by
    run key)."""
    runs = list(runs)
    if not any(stage == "cutoff" and status == DagsterRunStatus.SUCCESS for stage, _, status in runs):
        return []
    have = set(published)
    validations = []
    for d in settings.divisions:
        closed = add_months(dt.date.fromisoformat(cutoff), -settings.window_months(d)).isoformat()
        if f"{closed}|{d}" in have:  # only scores that were published can be validated
            validations.append(PlannedRun(DIVISION_CUTOFF_JOB, "validation", cutoff, division=d,
                                          partition_cutoff=closed, assets=VALIDATION_ASSETS))
    # Validation first: it rebuilds the labels of C' = M − W, whose window has just closed, and C' is exactly
    # the newest cutoff the models at M may train on.
    validated = {d: status for stage, d, status in runs if stage == "validation"}
    if any(validated.get(v.division) not in FINISHED for v in validations):
        return validations
    planned = validations + [PlannedRun(DIVISION_CUTOFF_JOB, "division", cutoff, division=d)
                             for d in settings.divisions]
    division_runs = {d: status for stage, d, status in runs if stage == "division"}
    if (len(division_runs) == len(settings.divisions) and all(s in FINISHED for s in division_runs.values())
            and any(s == DagsterRunStatus.SUCCESS for s in division_runs.values())):
        planned.append(PlannedRun(WHITESPACE_JOB, "whitespace", cutoff))
    return planned


def existing_run_keys(instance: DagsterInstance, cutoff: str) -> dict[str, tuple[str, str | None, DagsterRunStatus]]:
    """{run key: (stage, division, status)} of the monthly pipeline runs of `cutoff` in the instance."""
    out = {}
    for run in instance.get_runs(RunsFilter(tags={PIPELINE_TAG: MONTHLY, CUTOFF_TAG: cutoff})):
        key = run.tags.get(RUN_KEY_TAG)
        if key and key not in out:  # newest first: a re-executed key reports its latest status
            out[key] = (run.tags.get(STAGE_TAG, ""), run.tags.get(DIVISION_TAG), run.status)
    return out


def build_monthly_schedule(settings: Settings, cutoff_job) -> ScheduleDefinition:
    auto = settings.automation

    @schedule(
        name="monthly_cutoff",
        cron_schedule=auto.monthly_schedule_cron,
        execution_timezone=auto.timezone,
        job=cutoff_job,
        default_status=DefaultScheduleStatus.RUNNING if auto.monthly_schedule_running else DefaultScheduleStatus.STOPPED,
        description="Registers the newest complete month-end as a cutoff and requests its cutoff features; the "
        "`monthly_pipeline` sensor then runs every division of it, the forward validation of the cutoffs whose "
        "window has just closed, and its whitespace. Idempotent.",
    )
    def monthly_cutoff(context: ScheduleEvaluationContext, settings: GosalesSettings):
        cfg = settings.get()
        tick = context.scheduled_execution_time.date()
        plan = monthly_plan(tick, cfg)
        if plan.skip_reason:
            return SkipReason(plan.skip_reason)
        if not context.instance.has_dynamic_partition(CUTOFF_PARTITIONS_NAME, plan.cutoff.isoformat()):
            context.instance.add_dynamic_partitions(CUTOFF_PARTITIONS_NAME, [plan.cutoff.isoformat()])
            context.log.info(f"registered cutoff {plan.cutoff}")
        have = existing_run_keys(context.instance, plan.cutoff.isoformat())
        new = [r for r in plan.runs if r.run_key not in have]
        if not new:
            return SkipReason(f"cutoff {plan.cutoff} is registered and its runs were requested already")
        return [r.run_request() for r in new]

    return monthly_cutoff


def build_monthly_pipeline_sensor(settings: Settings, division_cutoff_job, whitespace_job) -> SensorDefinition:
    auto = settings.automation

    @sensor(
        name="monthly_pipeline",
        minimum_interval_seconds=auto.pipeline_sensor_interval_seconds,
        jobs=[division_cutoff_job, whitespace_job],
        # Inert until the schedule has started a cutoff, so it can always run.
        default_status=DefaultSensorStatus.RUNNING,
        description="Carries a cutoff started by the `monthly_cutoff` schedule on: once its cutoff features "
        "succeeded, the labels and forward validation of the cutoffs whose window just closed, then every "
        "division × cutoff partition, then the whitespace once every division run finished.",
    )
    def monthly_pipeline(context: SensorEvaluationContext, settings: GosalesSettings):
        cfg = settings.get()
        started = context.instance.get_runs(
            RunsFilter(tags={PIPELINE_TAG: MONTHLY, STAGE_TAG: "cutoff"}), limit=24)
        if not started:
            return SkipReason("no scheduled cutoff is waiting for its next stage")
        published = context.instance.get_materialized_partitions(AssetKey("icp_scores"))
        requests = []
        for cutoff in sorted({r.tags[CUTOFF_TAG] for r in started}):
            have = existing_run_keys(context.instance, cutoff)
            for planned in next_stage(cfg, cutoff, published, have.values()):
                if planned.run_key not in have:
                    requests.append(planned.run_request())
        if not requests:
            return SkipReason("no scheduled cutoff is waiting for its next stage")
        context.log.info(f"requesting {len(requests)} run(s): {[r.run_key for r in requests]}")
        return requests

    return monthly_pipeline
