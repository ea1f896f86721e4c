"""Keep the `cutoff` dynamic partitions in step with the configured cutoffs."""

from __future__ import annotations

from dagster import DagsterInstance, DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gosales_assets.partitions import CUTOFF_PARTITIONS_NAME, cutoff_partitions
from gosales_assets.resources import GosalesSettings
from gosales_assets.settings import Settings


def missing_cutoffs(instance: DagsterInstance, settings: Settings) -> list[str]:
    have = set(instance.get_dynamic_partitions(CUTOFF_PARTITIONS_NAME))
    return [c.isoformat() for c in settings.cutoffs if c.isoformat() not in have]


def register_cutoffs(instance: DagsterInstance, settings: Settings) -> list[str]:
    """Add the configured cutoffs the instance does not know yet; returns the ones added (idempotent)."""
    missing = missing_cutoffs(instance, settings)
    if missing:
        instance.add_dynamic_partitions(CUTOFF_PARTITIONS_NAME, missing)
    return missing


@sensor(
    name="register_config_cutoffs",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds every cutoff listed in the config to the `cutoff` partitions (never removes any).",
)
def register_config_cutoffs_sensor(context: SensorEvaluationContext, settings: GosalesSettings):
    missing = missing_cutoffs(context.instance, settings.get())
    if not missing:
        return SkipReason("all configured cutoffs are registered")
    context.log.info(f"registering cutoffs {missing}")
    return SensorResult(dynamic_partitions_requests=[cutoff_partitions.build_add_request(missing)])
