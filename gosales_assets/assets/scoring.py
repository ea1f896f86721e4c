"""Group `scoring`: ICP scores per division × cutoff from the serving model (the partition's promoted model, or the
champion a retained candidate could not beat), and the CRM export. Made by the op of the whole division × cutoff
partition (`assets.division_cutoff`), which then measures the scores' drift (`drift`, group `validation`)."""

from collections.abc import Generator

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    MetadataValue,
    Output,
    PartitionsDefinition,
)

from gosales_assets.assets.common import contract_check_result, partition_checks, table_metadata
from gosales_assets.assets.labels import DIVISION_CUTOFF_EXPR
from gosales_assets.core.contracts import check_contract, icp_scores_schema
from gosales_assets.core.registry import RETAINED, serving_model, unpublished_reason
from gosales_assets.core.scoring import (ICP_COLUMNS, ICP_SCHEMA, export_rel, score_population,
                                         zero_prevalence_alert)
from gosales_assets.partitions import split_key
from gosales_assets.resources import ArtifactStore, WarehouseResource
from gosales_assets.settings import Settings, division_slug


def export_icp_scores(artifacts: ArtifactStore, cutoff, division: str, scores: pl.DataFrame | None) -> str:
    """Write `<artifacts>/scores/<cutoff>/icp_scores_<division>.csv` with the partition's published scores, or remove
    it when nothing is published (scores an earlier model published are withdrawn with it).

    Written from the scores in hand, so each partition writes only its own rows (a file of the whole cutoff, rewritten
    after every division, cost a read and a write of every division before it), to a temp file then renamed, so a
    CRM loader never reads half a file. The whole cutoff's file of earlier versions (`icp_scores.csv`) is removed: it
    would go stale."""
    artifacts.path("scores", cutoff.isoformat(), "icp_scores.csv").unlink(missing_ok=True)
    path = artifacts.path(*export_rel(cutoff, division))
    if scores is None:
        path.unlink(missing_ok=True)
        return str(path)
    return str(artifacts.write_csv(export_rel(cutoff, division),
                                   scores.select(ICP_COLUMNS).sort("customer_id")))


def icp_scores_spec() -> AssetSpec:
    """`icp_scores` of one division × cutoff, made by the op of the whole partition (`assets.division_cutoff`) from
    the model row and the frame made before it in the same step (not declared as edges: no edge between two outputs
    of one op on the same partition; docs/ARCHITECTURE.md)."""
    return AssetSpec(
        "icp_scores",
        group_name="scoring",
        deps=["dim_customer"],
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        description="Calibrated probability that each eligible customer buys the division in the window after "
        "the cutoff, from the serving model of the partition's division_model row: its own model when promoted, "
        "the division's champion when the candidate was retained (`model_version` says which); "
        "`bought_in_division` when known. A partition without a serving model (held, skipped) or whose scores fail "
        "the zero-prevalence guard is materialized as an empty slice with `published: false` and the reason. Also "
        "exported for the CRM to <artifacts>/scores/<cutoff>/icp_scores_<division>.csv (removed when not published).",
    )


def icp_scores_check_specs(parts: PartitionsDefinition) -> list[AssetCheckSpec]:
    return partition_checks(
        parts,
        AssetCheckSpec("contract", asset="icp_scores", blocking=True,
                       description="Columns and types, icp_score in [0, 1], one row per customer"),
        AssetCheckSpec("zero_prevalence_guard", asset="icp_scores",
                       description="Labels known, zero positives, but the model trained on positives: the "
                       "partition is not published (a broken join looks exactly like this)"),
    )


def icp_scores_outputs(context: AssetExecutionContext, cfg: Settings, warehouse: WarehouseResource,
                       artifacts: ArtifactStore, division_model: pl.DataFrame, division_features: pl.DataFrame
                       ) -> Generator[Output | AssetCheckResult, None, pl.DataFrame]:
    """Score the partition's population; yield the `icp_scores` output and its checks; return what was stored (an
    empty slice when nothing is published), which the op's `drift` compares with the training baseline."""
    from gosales_assets.core.modeling import load_model  # heavy: only where a model is loaded

    division, cutoff = split_key(context.partition_key)

    def unpublished(reason: str, **metadata):
        """An empty slice: whatever an earlier model published for this partition is withdrawn with it."""
        context.log.warning(f"icp_scores {context.partition_key}: not published — {reason}")
        yield Output(pl.DataFrame(schema=ICP_SCHEMA), output_name="icp_scores",
                     metadata={"published": False, "reason": reason, "dagster/row_count": 0, **metadata})
        export_icp_scores(artifacts, cutoff, division, None)

    model_row = division_model.row(0, named=True) if division_model.height else {}
    refused = unpublished_reason(model_row)
    if refused is not None:  # nothing is published unless a model serves the partition
        yield from unpublished(refused)
        for check in ("zero_prevalence_guard", "contract"):
            yield AssetCheckResult(check_name=check, asset_key="icp_scores", passed=True,
                                   description="not evaluated: no serving model, nothing was scored",
                                   metadata={"applicable": False})
        return pl.DataFrame(schema=ICP_SCHEMA)
    names = warehouse.query("select customer_id, customer_name from dim_customer")
    serving = serving_model(model_row)
    with warehouse.released():  # scoring needs nothing more of the warehouse: another run may use it meanwhile
        model = load_model(serving["model_path"])
        # The rows carry the serving model's version and calibration (the champion's when retained).
        served = model_row | {"model_version": serving["model_version"],
                              "calibration_method": model.calibration_method}
        scores = score_population(division_features, model, served, names, run_id=context.run.run_id)
        alert = zero_prevalence_alert(scores, served)
    if alert is not None:
        path = artifacts.write_json(["alerts", cutoff.isoformat(), f"icp_scores_{division_slug(division)}.json"],
                                    alert | {"run_id": context.run.run_id})
        yield from unpublished(f"zero-prevalence guard: {alert['reason']}",
                               alert_path=MetadataValue.path(str(path)))
        yield AssetCheckResult(check_name="zero_prevalence_guard", asset_key="icp_scores", passed=False,
                               severity=AssetCheckSeverity.ERROR, description=alert["reason"])
        yield AssetCheckResult(check_name="contract", asset_key="icp_scores", passed=True,
                               description="not evaluated: the partition was not published",
                               metadata={"applicable": False})
        return pl.DataFrame(schema=ICP_SCHEMA)

    known = scores.get_column("bought_in_division").null_count() < scores.height
    meta = table_metadata(scores, cfg) | {
        "published": True,
        "model_status": model_row["status"],
        "model_version": serving["model_version"],
        "model_cutoff": str(serving["cutoff"]),
        "serving": f"the champion of {serving['cutoff']}: candidate {model_row['model_version']} retained — "
                   f"{model_row['reason']}" if model_row["status"] == RETAINED else "the partition's own model",
        "calibration_method": model.calibration_method,
        "mean_icp_score": round(float(scores.get_column("icp_score").mean() or 0.0), 6),
        "labels_known": known,
    }
    if known:
        meta["realized_positives"] = int(scores.get_column("bought_in_division").sum() or 0)
    yield Output(scores, output_name="icp_scores", metadata=meta)
    context.log.info(f"exported {export_icp_scores(artifacts, cutoff, division, scores)}")
    yield contract_check_result(check_contract(scores, icp_scores_schema(cfg.divisions)), asset_key="icp_scores")
    yield AssetCheckResult(check_name="zero_prevalence_guard", asset_key="icp_scores", passed=True,
                           description="labels unknown (window open)" if not known
                           else f"{meta['realized_positives']} realized positives")
    return scores
