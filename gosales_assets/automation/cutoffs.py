"""The `new_cutoff` sensor: a new month-end in the data becomes one native backfill.

The `cutoff` partitions end at the last month-end the data reaches (`data.end_date`), so refreshing the landing
data and `data.end_date` (and reloading the code location) adds a partition. On its next tick the sensor launches
one asset backfill of every new cutoff: the star schema (the new data), the cutoff's features, its division ×
cutoff partitions, its whitespace and reports, and the division × cutoff partitions of the cutoffs whose window has
just closed (C − W for each division's window W, when C − W was built), made again with their outcomes. Dagster's backfill daemon
orders all of it by the asset graph. Its cursor holds the newest cutoff launched: each cutoff is launched once.
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.events import AssetKeyPartitionKey

from gosales_assets.assets.division_cutoff import DIVISION_CUTOFF_ASSETS
from gosales_assets.core.calendar import add_months
from gosales_assets.jobs import CUTOFF_TAG, SOURCE_TAG
from gosales_assets.partitions import cutoff_key, multi_key, parse_cutoff
from gosales_assets.resources import GosalesSettings
from gosales_assets.runner import backfill_subset, ensure_warehouse_pools, target_partitions
from gosales_assets.settings import Settings

# The partition whose window closed is made again, all of it (one op): its labels get their outcomes, the model frame
# the label columns later models train on, the scores and peers their realized outcome column, forward validation
# its verdict. Its model is the same (trained on the same earlier rows), so it is reused, not fitted again
# (assets.models).
REFRESHED_ON_CLOSE = DIVISION_CUTOFF_ASSETS


def new_cutoffs(settings: Settings, cursor: str | None) -> list[dt.date]:
    """Month-ends after the cursor up to the last one the data reaches (the newest alone when there is no cursor)."""
    last = settings.last_cutoff
    if cursor is None:
        return [last]
    out, c = [], add_months(parse_cutoff(cursor), 1)
    while c <= last:
        out.append(c)
        c = add_months(c, 1)
    return out


def new_cutoff_targets(graph: BaseAssetGraph, settings: Settings, cutoffs: list[dt.date],
                       built: set[str] | None = None) -> set[AssetKeyPartitionKey]:
    """Everything a new cutoff needs, and the refresh of the windows it closes: of the cutoffs that were built
    (`built`: the `customer_features` partitions materialized; None = all) or are new in this backfill. A month
    that was never built has no roster to label, so there is nothing to refresh."""
    targets = target_partitions(graph, settings, cutoffs=cutoffs)
    first, new = settings.cutoffs[0], {cutoff_key(c) for c in cutoffs}
    for c in cutoffs:
        for d in settings.divisions:
            closed = add_months(c, -settings.window_months(d))
            if closed >= first and (built is None or cutoff_key(closed) in built | new):
                targets |= {AssetKeyPartitionKey(AssetKey(a), multi_key(d, closed)) for a in REFRESHED_ON_CLOSE}
    return targets


def build_new_cutoff_sensor(settings: Settings) -> SensorDefinition:
    auto = settings.automation

    @sensor(
        name="new_cutoff",
        minimum_interval_seconds=auto.new_cutoff_sensor_interval_seconds,
        asset_selection=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING if auto.new_cutoff_sensor_running else DefaultSensorStatus.STOPPED,
        description="A new month-end in the data (data.end_date) becomes one native backfill: star, the cutoff's "
        "features, models, scores, whitespace and reports, plus the division × cutoff partitions of the windows it "
        "closes, made again with their outcomes. Each cutoff is launched once (cursor).",
    )
    def new_cutoff(context: SensorEvaluationContext, settings: GosalesSettings):
        cfg = settings.get()
        cutoffs = new_cutoffs(cfg, context.cursor)
        newest = cutoff_key(cfg.last_cutoff)
        if not cutoffs:
            return SkipReason(f"no new month-end: the newest cutoff {newest} was launched already (data ends "
                              f"{cfg.data.end_date})")
        graph = context.repository_def.asset_graph
        if context.cursor is None and context.instance.get_latest_materialization_event(AssetKey("whitespace")) \
                and newest in context.instance.get_materialized_partitions(AssetKey("whitespace")):
            return SensorResult(skip_reason=f"the newest cutoff {newest} is built already", cursor=newest)
        ensure_warehouse_pools(context.instance)  # before the first dequeue: a new pool would count as unlimited
        keys = [cutoff_key(c) for c in cutoffs]
        context.log.info(f"launching one backfill for cutoff(s) {keys}")
        built = set(context.instance.get_materialized_partitions(AssetKey("customer_features")))
        request = RunRequest.for_asset_graph_subset(
            backfill_subset(graph, new_cutoff_targets(graph, cfg, cutoffs, built=built)),
            tags={SOURCE_TAG: "new-cutoff", CUTOFF_TAG: ",".join(keys)})
        return SensorResult(run_requests=[request], cursor=newest)

    return new_cutoff
