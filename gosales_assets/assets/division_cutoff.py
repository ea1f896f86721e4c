"""The op of a division × cutoff partition: everything the engine makes for one division at one cutoff, in one step.

`labels` and the model frame `division_features` (assets.features), the model `division_model` (assets.models),
`icp_scores` (assets.scoring) with their `drift` and the simple peers' `peer_scores` (assets.peers), and the
partition's `forward_validation` (assets.validation) are the outputs of one non-subsettable multi-asset. Each output
reads the ones before it in memory; the op's only reads of other partitions of its own assets are the model's
training frames and champion (earlier cutoffs of the same division), declared as a self-dependency. So Dagster runs
a partition as one run, in a native backfill as in the monthly action, and a division's cutoffs in date order
(docs/ARCHITECTURE.md, "One run per division × cutoff partition, natively")."""

from collections.abc import Generator

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Failure,
    multi_asset,
)

from gosales_assets.assets.features import (
    division_features_check_specs,
    division_features_spec,
    division_frame_outputs,
)
from gosales_assets.assets.labels import labels_check_specs, labels_spec
from gosales_assets.assets.models import division_model_check_specs, division_model_outputs, division_model_spec
from gosales_assets.assets.peers import peer_scores_outputs, peer_scores_spec
from gosales_assets.assets.scoring import icp_scores_check_specs, icp_scores_outputs, icp_scores_spec
from gosales_assets.assets.validation import (
    drift_check_specs,
    drift_outputs,
    drift_spec,
    forward_validation_outputs,
    forward_validation_spec,
)
from gosales_assets.partitions import division_cutoff_partitions
from gosales_assets.resources import (
    FILE_TABLES,
    FILES_IO_MANAGER,
    WAREHOUSE_POOL,
    ArtifactStore,
    GosalesSettings,
    WarehouseResource,
)
from gosales_assets.settings import Settings

# The outputs in the order the op yields them: a self-dependent multi-asset must yield an output before any output
# that depends on it (the model reads earlier frames: the frame comes first).
DIVISION_CUTOFF_ASSETS = ("labels", "division_features", "division_model", "icp_scores", "drift", "peer_scores",
                          "forward_validation")


def build_division_cutoff_assets(settings: Settings) -> list[AssetsDefinition]:
    parts = division_cutoff_partitions(settings)
    specs = [labels_spec(), division_features_spec(), division_model_spec(settings), icp_scores_spec(), drift_spec(),
             peer_scores_spec(), forward_validation_spec()]
    assert tuple(s.key.to_user_string() for s in specs) == DIVISION_CUTOFF_ASSETS

    @multi_asset(
        name="division_cutoff",
        # Every output is stored by the warehouse IO manager (a spec without one would be a Nothing output), but the
        # model frame, a file beside the warehouse (resources.files_dir).
        specs=[s.with_io_manager_key(FILES_IO_MANAGER if s.key.to_user_string() in FILE_TABLES else "io_manager")
               for s in specs],
        # The basket rules are small and loaded whole; the cutoff's customer features and ALS rows are read for the
        # labelled population only (declared in `division_features`' deps).
        ins={"market_basket_rules": AssetIn()},
        partitions_def=parts,
        pool=WAREHOUSE_POOL,
        # Not subsettable: one partition is one step and one run, and a refresh (a closed window's outcomes, a
        # retraining) remakes all of it, so no output describes another's older version. Selecting any of these
        # assets in the UI selects them all.
        can_subset=False,
        check_specs=[*labels_check_specs(parts), *division_features_check_specs(parts),
                     *division_model_check_specs(parts), *icp_scores_check_specs(parts), *drift_check_specs(parts)],
    )
    def division_cutoff(context: AssetExecutionContext, settings: GosalesSettings, warehouse: WarehouseResource,
                        artifacts: ArtifactStore, market_basket_rules):
        cfg = settings.get()
        labels, frame = yield from _stopping(division_frame_outputs(
            context, cfg, warehouse, artifacts, market_basket_rules), blocking)
        model = yield from division_model_outputs(context, cfg, warehouse, artifacts, labels)
        scores = yield from _stopping(icp_scores_outputs(context, cfg, warehouse, artifacts, model, frame), blocking)
        yield from drift_outputs(context, cfg, artifacts, warehouse, model, scores, frame)
        peers = yield from peer_scores_outputs(context, cfg, model, frame)
        yield from forward_validation_outputs(context, cfg, warehouse, artifacts, labels, scores, peers)

    blocking = {(c.asset_key, c.name) for c in division_cutoff.check_specs if c.blocking}
    return [division_cutoff]


def _stopping(outputs: Generator, blocking: set[tuple[AssetKey, str]]) -> Generator:
    """The outputs and checks of one part of the op, passed on; then, if a blocking check of it failed, the step
    stops there: nothing after it is made from what failed (a frame that read rows after its cutoff is never scored;
    scores that break their contract are never validated). What was yielded is stored, the step fails with the
    checks named, as Dagster fails a step whose blocking check failed."""
    failed = []
    while True:
        try:
            event = next(outputs)
        except StopIteration as done:
            result = done.value
            break
        if isinstance(event, AssetCheckResult) and not event.passed and event.severity == AssetCheckSeverity.ERROR:
            key = AssetKey.from_coercible(event.asset_key)
            if (key, event.check_name) in blocking:
                failed.append(f"{key.to_user_string()}:{event.check_name}")
        yield event
    if failed:
        raise Failure(description=f"blocking check(s) failed: {', '.join(failed)}; the rest of the division × "
                      "cutoff partition was not made from them (see the checks' descriptions)")
    return result
