"""The `publish_snapshot` sensor and job: the read-only snapshot people query (`gosales_assets/snapshot.py`) is
published again once the engine has stopped writing.

The end of a run copies the warehouse only when the changes the snapshot lacks were first seen at least
`snapshot.interval_minutes` ago (`snapshot.snapshot_due`), so a backfill copies the file about once per interval
while it writes and none of its runs waits on a copy the next run makes stale at once (a monthly increment's first
run used to copy the whole warehouse on the increment's critical path). What the last runs of a backfill wrote is
published here instead: when the warehouse has changed since the snapshot and no run is queued or in progress and
no backfill is still requested, the sensor launches one run of `gosales_snapshot`, whose op publishes it (in the
warehouse's pool, like any run that opens the file). One request per state of the warehouse (its run key): a
publish that failed is not retried every minute; the run says why, and `gosales snapshot` publishes on demand."""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    sensor,
)
from dagster._core.execution.backfill import BulkActionStatus

from gosales_assets.jobs import SNAPSHOT_JOB, SOURCE_TAG
from gosales_assets.resources import WAREHOUSE_POOL, GosalesSettings, publish_snapshot
from gosales_assets.settings import Settings
from gosales_assets.snapshot import is_current, read_meta, snapshot_path, warehouse_state

IN_PROGRESS = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


@op(name="publish_warehouse_snapshot", pool=WAREHOUSE_POOL,
    description="Publish the read-only snapshot of the warehouse now (as `gosales snapshot`), unless it is current.")
def publish_warehouse_snapshot(context: OpExecutionContext, settings: GosalesSettings) -> None:
    cfg = settings.get()
    done = publish_snapshot(cfg.warehouse_path, interval_minutes=cfg.snapshot.interval_minutes, force=True,
                            run_id=context.run_id, source="publish_snapshot sensor")
    if done.copied:
        context.log.info(f"published the warehouse snapshot {done.path} ({done.meta['copy_seconds']} s)")
    else:
        context.log.info(f"nothing to publish: {done.reason}")


@job(name=SNAPSHOT_JOB, description="Publish the warehouse's read-only snapshot (what `gosales query` reads); "
     "launched by the publish_snapshot sensor once no run writes the warehouse.")
def snapshot_job():
    publish_warehouse_snapshot()


def snapshot_request(settings: Settings, instance) -> RunRequest | SkipReason:
    """A run of `gosales_snapshot` when the warehouse changed since the snapshot and nothing writes it any more;
    else why not."""
    database = settings.warehouse_path
    state = warehouse_state(database)
    if state is None:
        return SkipReason("there is no warehouse yet")
    meta = read_meta(snapshot_path(database))
    if is_current(state, meta):
        return SkipReason(f"the snapshot of {meta.get('taken_at')} is current")
    busy = instance.get_runs_count(RunsFilter(statuses=IN_PROGRESS))
    if busy:
        return SkipReason(f"{busy} run(s) queued or in progress: the snapshot is published once none is")
    requested = instance.get_backfills(status=BulkActionStatus.REQUESTED, limit=1)
    if requested:
        return SkipReason(f"backfill {requested[0].backfill_id} is still in progress: the snapshot is published "
                          "once it is done")
    return RunRequest(run_key=f"warehouse-{state[0]}-{state[1]}", tags={SOURCE_TAG: "publish-snapshot"})


def build_snapshot_sensor(settings: Settings) -> SensorDefinition:
    snap = settings.snapshot

    @sensor(name="publish_snapshot", job_name=SNAPSHOT_JOB, minimum_interval_seconds=snap.sensor_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING if snap.sensor_running else DefaultSensorStatus.STOPPED,
            description="Publishes the warehouse's read-only snapshot once the engine has stopped writing it (no run "
            "queued or in progress, no backfill requested) and it has changed since the last one.")
    def publish_snapshot_sensor(context: SensorEvaluationContext, settings: GosalesSettings):
        return snapshot_request(settings.get(), context.instance)

    return publish_snapshot_sensor
