"""Group `models`: one calibrated model per division × cutoff, trained only on earlier cutoffs whose label
window closed by the cutoff (C' + W' ≤ C), behind a blocking promotion gate and the leakage gauntlet.

Training is `core.modeling`; the gate, the gauntlet, the model card, the verdict, the registry row and the contents
of the partition's files are `core.model_card` (`model_record`, `skipped_model`). Made by the op of the whole
division × cutoff partition (`assets.division_cutoff`): `division_model_outputs` queries the training frame, fits the
model or reuses the saved one fitted on the same rows and settings (`core.modeling.training_fingerprint`), writes the
files and yields the row, its metadata and the checks."""

import datetime as dt
import json
from collections.abc import Generator
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    MetadataValue,
    Output,
    PartitionsDefinition,
)

from gosales_assets.assets.common import image_markdown, markdown_table, partition_checks
from gosales_assets.assets.labels import DIVISION_CUTOFF_EXPR
from gosales_assets.core.gates import find_champion
from gosales_assets.core.leakage_records import feature_shift_report
from gosales_assets.core.model_card import GAUNTLET, ModelRecord, model_record, skipped_model
from gosales_assets.core.registry import RETAINED, SKIPPED, model_file_version, serving_model
from gosales_assets.core.star import in_key_order
from gosales_assets.partitions import (
    TrainingPool,
    add_months,
    same_division_earlier_cutoffs,
    split_key,
    training_cutoffs,
    training_lookback,
    training_pool,
)
from gosales_assets.resources import ArtifactStore, WarehouseResource, frame_summaries, read_frames
from gosales_assets.settings import Settings, division_slug


def candidate_training_cutoffs(warehouse: WarehouseResource, division: str, cutoff: dt.date,
                               lookback: tuple[int, int]) -> list[tuple[dt.date, int, int]]:
    """(C', W', labelled positives) of every labelled, uncensored model frame of the division in the declared
    look-back of C (the `division_features` partitions this asset depends on). A frame built while its window was
    open stays censored until it is rebuilt with its refreshed labels (the refresh of a closed window rebuilds both),
    so it is no training cutoff before then."""
    return frame_summaries(warehouse.database, division, add_months(cutoff, -lookback[0]),
                           add_months(cutoff, -lookback[1]))


def champion_candidates(warehouse: WarehouseResource, division: str, cutoff: dt.date, months: int
                        ) -> tuple[list[dict], dt.date, dt.date]:
    """The division's registry rows at the cutoffs 1..`months` months before C (the `division_model` partitions this
    asset depends on), with that range."""
    first, last = add_months(cutoff, -months), add_months(cutoff, -1)
    if not warehouse.table_exists("division_model"):
        return [], first, last
    rows = warehouse.query("select * from division_model where division = ? and cutoff_date between ? and ? "
                           "order by cutoff_date", [division, first, last])
    return rows.to_dicts(), first, last


FINGERPRINT_FILE = "training_fingerprint.json"


def reusable_model(artifacts: ArtifactStore, out_dir: list[str], fingerprint: str):
    """The partition's saved model when it was fitted on exactly these training rows and settings (its fingerprint
    file says so, and the model file is still the one written with it), else None."""
    from gosales_assets.core.modeling import load_model

    record = artifacts.path(*out_dir, FINGERPRINT_FILE)
    model_path = artifacts.path(*out_dir, "model.joblib")
    if not record.is_file():
        return None
    saved = json.loads(record.read_text())
    if saved.get("fingerprint") != fingerprint or saved.get("model_version") != model_file_version(model_path):
        return None
    return load_model(model_path)


def _rounded(value, digits: int = 4):
    """Metric values as a person reads them in the UI (the registry row and metrics.json keep full precision);
    anything that is not a number (a peer's name, a diagnosis) as it is."""
    if value is None or isinstance(value, (str, bool)):
        return value
    return round(float(value), digits)


def division_model_spec(settings: Settings) -> AssetSpec:
    """`division_model` of one division × cutoff, made by the op of the whole partition (`assets.division_cutoff`)
    after the model frame. Its earlier-cutoff reads are the op's self-dependency."""
    lookback = training_lookback(settings)
    champion_months = _champion_months(settings)
    # The champion is read only when it can gate: with `champion_gate` off no earlier model is read or declared.
    champion_dep = [AssetDep("division_model", partition_mapping=same_division_earlier_cutoffs(champion_months, 1))] \
        if champion_months else []
    return AssetSpec(
        "division_model",
        group_name="models",
        # The training frames are earlier cutoffs' `division_features` (labels joined); the registry rows of earlier
        # partitions give the current champion. Both are this op's own earlier partitions (a self-dependency: a
        # native backfill builds a division's cutoffs in date order, each partition as one run). The prediction
        # window comes from this partition's labels, made in the same step (not declared: no edge between two
        # outputs of one op on the same partition; docs/ARCHITECTURE.md).
        deps=[AssetDep("division_features", partition_mapping=same_division_earlier_cutoffs(*lookback)),
              *champion_dep],
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        description="Calibrated per-division model (logistic regression, LightGBM or their ensemble, chosen by "
        "customer-grouped CV) trained on the most recent cutoffs whose label window closed by this cutoff "
        f"(looked for {lookback[1]}-{lookback[0]} months back), compared with the simple peers"
        + (f" and with the current champion (the newest promoted model of the division in the {champion_months} "
           "months before)" if champion_months else "") + ". One registry "
        "row per partition with its verdict: `promoted`, `retained` (only trails the champion, which keeps serving), "
        "`held` (gate or leakage check missed) or `skipped` (too little history), the reason and the serving model "
        "(`serving_*`); files under <artifacts>/models/<division>/<cutoff>/. Only a serving model feeds scoring.",
    )


def _champion_months(settings: Settings) -> int | None:
    gates = settings.models.gates
    return gates.champion_lookback_months if gates.champion_gate else None


def division_model_check_specs(parts: PartitionsDefinition) -> list[AssetCheckSpec]:
    # Not blocking: a held model is a verdict recorded in its registry row (status `held`), which scoring reads and
    # refuses; the partition, the cutoff's whitespace and the reports go on with the divisions that published.
    return partition_checks(parts,
        AssetCheckSpec("promotion_gate", asset="division_model",
                       description="Not worse than the best simple peer (recency, frequency, monetary, RFM logistic "
                       "regression) beyond the margin on the same out-of-fold rows, nor than the division's current "
                       "champion on the rows out of its sample (labels it never saw), with the paired intervals; "
                       "calibration MAE ≤ its limit; AUC and lift@10% above their (low) floors, the AUC's 95 % interval above 0.5. A model that misses is held and "
                       "never feeds scoring (retained, WARN, when it only trails the champion: the champion keeps "
                       "serving); a below-chance model's result starts with its diagnosis"),
        AssetCheckSpec("fold_overlap", asset="division_model",
                       description="No customer appears on both sides of any cross-validation fold"),
        AssetCheckSpec("time_order", asset="division_model",
                       description="Every training cutoff C' satisfies C' + W' ≤ C"),
        AssetCheckSpec("static_scan", asset="division_model",
                       description="No wall-clock call (datetime.now, utcnow, date.today, time.time, …) in feature or "
                       "label code"),
        AssetCheckSpec("feature_shift", asset="division_model",
                       description="The features of every training cutoff passed the shift and perturbation tests"),
    )


class _Fitted(NamedTuple):
    """A partition's model (fitted, or the saved one reused), its record, and its file and version."""

    model: Any  # core.modeling.TrainedModel (imported lazily)
    record: ModelRecord
    reused: bool
    model_version: str
    model_path: Path


def _fit_and_record(context: AssetExecutionContext, cfg: Settings, artifacts: ArtifactStore, out_dir: list[str],
                    frame: pl.DataFrame, labels: pl.DataFrame, pool: TrainingPool,
                    champion: dict | None, champion_note: str | None) -> _Fitted | str:
    """The partition's model — reused when the saved one was fitted on exactly these rows and settings, else fitted
    and saved — and its record (gate, gauntlet, card, registry row, files written); or the reason no model could be
    trained. Reads nothing of the warehouse."""
    # Imported here: lightgbm and scikit-learn cost ~0.7 s, and every run process loads the code location.
    from gosales_assets.core.modeling import (
        DegenerateModel,
        InsufficientData,
        load_model,
        train_division_model,
        training_fingerprint,
    )

    division, cutoff = split_key(context.partition_key)
    params, training = cfg.models, pool.cutoffs
    model_path = artifacts.path(*out_dir, "model.joblib")
    fingerprint = training_fingerprint(frame, params, cfg.seeds.modeling)
    model = reusable_model(artifacts, out_dir, fingerprint)
    reused = model is not None
    if not reused:
        try:
            model = train_division_model(frame, params, cfg.seeds.modeling)
        except (InsufficientData, DegenerateModel) as err:
            return f"{type(err).__name__}: {err.reason}"
        model.save(model_path)
    model_version = model_file_version(model_path)
    if reused:
        context.log.info(f"division_model {context.partition_key}: the training rows and settings are those of the "
                         f"saved model {model_version}: reused, not fitted again")
    else:
        # Written after the model file: a run killed between the two leaves no fingerprint, so the next fits again.
        artifacts.write_json([*out_dir, FINGERPRINT_FILE], {"fingerprint": fingerprint, "model_version": model_version})

    window_at_c = labels.get_column("window_months").max() if labels.height else None
    gates_cfg = params.gates
    champion_model = load_model(serving_model(champion)["model_path"]) \
        if champion is not None and champion_note is None else None
    record = model_record(
        model, division=division, cutoff=cutoff, training=training, training_pool=pool.reason,
        model_version=model_version,
        model_path=model_path, gate_thresholds=cfg.gate_thresholds(division),
        peer_resamples=gates_cfg.peer_resamples, peer_gate=gates_cfg.peer_gate, champion=champion,
        champion_model=champion_model, champion_note=champion_note, champion_gate=gates_cfg.champion_gate,
        feature_shift=feature_shift_report(artifacts.path(), division, [c for c, _ in training]),
        prediction_window_months=int(window_at_c) if window_at_c is not None else cfg.window_months(division),
        frame=frame, drift_sample_rows=params.drift_sample_rows, seed=cfg.seeds.modeling,
        run_id=context.run.run_id, config_checksum=cfg.checksum)
    for name, content in record.files.items():
        artifacts.write([*out_dir, name], content)
    return _Fitted(model, record, reused, model_version, model_path)


def division_model_outputs(context: AssetExecutionContext, cfg: Settings, warehouse: WarehouseResource,
                           artifacts: ArtifactStore, labels: pl.DataFrame
                           ) -> Generator[Output | AssetCheckResult, None, pl.DataFrame]:
    """Train the partition's model on the earlier cutoffs' frames; yield the registry row (`division_model`) and
    its checks; return the row (what scoring and the peers of the same step read)."""
    division, cutoff = split_key(context.partition_key)
    params = cfg.models
    candidates = candidate_training_cutoffs(warehouse, division, cutoff, training_lookback(cfg))
    usable = set(training_cutoffs(cutoff, [(c, w) for c, w, _ in candidates]))
    pool = training_pool([u for u in candidates if u[0] in usable], params.training_cutoffs, params.training_positives)
    training = pool.cutoffs
    out_dir = ["models", division_slug(division), cutoff.isoformat()]

    def skip(reason: str):
        context.log.warning(f"division_model {context.partition_key}: no model trained — {reason}")
        skipped = skipped_model(division=division, cutoff=cutoff, training=training, reason=reason,
                                run_id=context.run.run_id)
        artifacts.write_json([*out_dir, "skipped.json"], skipped.skipped)
        yield Output(skipped.registry, output_name="division_model",
                     metadata={"status": SKIPPED, "reason": reason, "dagster/row_count": 1,
                               "training_cutoffs": [str(c) for c, _ in training], "training_pool": pool.reason})
        yield AssetCheckResult(check_name="promotion_gate", asset_key="division_model", passed=False,
                               severity=AssetCheckSeverity.WARN, description=f"no model to promote: {reason}")
        for name in GAUNTLET:
            yield AssetCheckResult(check_name=name, asset_key="division_model", passed=True,
                                   description=f"not applicable: no model was trained ({reason})",
                                   metadata={"applicable": False})
        return skipped.registry

    if not training:
        return (yield from skip(f"no trainable cutoff C' with C' + W' ≤ {cutoff} has labels "
                                f"(model frames with closed labels: {[str(c) for c, _, _ in candidates] or 'none'})"))
    # Every read of the warehouse first: the champion's registry row. Then the training frame's read (its files), the
    # fit and the model's record, which need nothing of it, let go of it (`released`): another run uses the file
    # meanwhile (dagster.yaml's pool lets two runs in; the warehouse's lease gives them turns).
    context.log.info(f"division_model {context.partition_key}: trains on {', '.join(str(c) for c, _ in training)} — "
                     f"{pool.reason}")
    champion_months = _champion_months(cfg)
    if champion_months:
        rows, looked_from, looked_to = champion_candidates(warehouse, division, cutoff, champion_months)
        champion, champion_note = find_champion(rows, cutoff, looked_from=looked_from, looked_to=looked_to)
    else:
        champion, champion_note = None, "models.gates.champion_gate is off: no earlier model is read"
    with warehouse.released():
        # The training frames are files (resources.frames_dir): read without the warehouse. One row per customer and
        # cutoff: the order is total, and the files' (each frame is in customer order, read in cutoff order), which a
        # check of each row against the next confirms without the sort's moves of ~300 columns (~0.8 CPU-s a fit at
        # 500,000 customers).
        frame = in_key_order(read_frames(warehouse.database, division, [c for c, _ in training]),
                             ("cutoff_date", "customer_id"))
        fitted = _fit_and_record(context, cfg, artifacts, out_dir, frame, labels, pool, champion, champion_note)
    if isinstance(fitted, str):
        return (yield from skip(fitted))
    model, record, reused, model_version, model_path = fitted

    # ---- the registry row, metadata, checks ----------------------------------------------------------------
    gate, leakage, m = record.gate, record.leakage, model.metrics
    top = model.feature_importance().head(10).with_columns(pl.col("importance").round(5))
    meta = {
        "status": record.status,
        "reason": record.reason,
        "dagster/row_count": 1,
        "model_type": model.model_type,
        "calibration_method": model.calibration_method,
        **{k: _rounded(m.get(k)) for k in ("auc", "lift_at_10", "brier", "cal_mae")},
        "positives": int(model.class_balance.get("positives", 0)),
        "rows_fitted": int(model.class_balance.get("rows_fitted", model.class_balance.get("n", 0))),
        "negatives_sampled": bool((model.sampling or {}).get("sampled", False)),
        "model_reused": reused,
        "training_cutoffs": [str(c) for c, _ in training],
        "training_pool": pool.reason,
        "model_version": model_version,
        "serving_model_version": record.registry.item(0, "serving_model_version"),
        "serving_cutoff": str(record.registry.item(0, "serving_cutoff") or "") or None,
        "gate": gate.detail,
        "gains_chart": image_markdown(record.files["gains.png"], "gains"),
        "calibration_chart": image_markdown(record.files["calibration.png"], "calibration"),
        "top_features": markdown_table(top.to_dicts()),
        "leakage_report": MetadataValue.json(record.leakage_status),
        "artifacts": MetadataValue.path(str(Path(model_path).parent)),
    }
    meta = {k: (MetadataValue.null() if v is None else v) for k, v in meta.items()}
    yield Output(record.registry, output_name="division_model", metadata=meta)

    # Retained: the candidate is not promoted, but the champion keeps serving (nothing is withdrawn): a warning.
    yield AssetCheckResult(check_name="promotion_gate", asset_key="division_model", passed=gate.passed,
                           severity=AssetCheckSeverity.WARN if record.status == RETAINED
                           else AssetCheckSeverity.ERROR, description=gate.detail,
                           metadata={k: (MetadataValue.null() if v is None else _rounded(v))
                                     for k, v in gate.values.items()})
    for name in GAUNTLET:
        entry = leakage[name]
        detail = {k: v for k, v in entry.items() if k != "status"}
        yield AssetCheckResult(check_name=name, asset_key="division_model", passed=entry["status"] == "PASS",
                               severity=AssetCheckSeverity.ERROR,
                               description=f"{entry['status']}: {json.dumps(detail, default=str)[:300]}",
                               metadata={"detail": MetadataValue.json(detail)})
    return record.registry
