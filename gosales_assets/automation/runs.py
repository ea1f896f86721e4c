"""The `release_dead_runs` sensor: a run whose process was killed (kill -9, out of memory) would stay "started"
forever and hold a slot of the warehouse pool, so queued runs would wait behind it. Dagster's default run
launcher cannot check a run worker's health; the `warehouse` resource tags each run with its host and pid, and
this sensor marks the runs whose process is gone as failed (with the reason), which frees the pool. It also makes
sure the pools' limits exist on a fresh instance (`runner.ensure_warehouse_pools`)."""

from __future__ import annotations

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from gosales_assets.runner import ensure_warehouse_pools, release_dead_runs


@sensor(name="release_dead_runs", minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Marks failed any started run whose process is gone (killed), so the warehouse pool is free "
        "for the queue again; each one is logged with its pid.")
def release_dead_runs_sensor(context: SensorEvaluationContext):
    ensure_warehouse_pools(context.instance)  # a fresh instance: the pools' limits exist before the first run
    released = release_dead_runs(context.instance, context.log.warning)
    return SkipReason(f"marked {len(released)} dead run(s) failed: {', '.join(released)}" if released
                      else "no run with a dead process")
