"""Group `models`: one calibrated model per division × cutoff, trained only on earlier cutoffs whose label
window closed by the cutoff (C' + W' ≤ C), behind a blocking promotion gate and the leakage gauntlet."""

import datetime as dt
import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    MetadataValue,
    Output,
    asset,
)

from gosales_assets.assets.common import image_markdown, markdown_table, partition_checks, record_skip
from gosales_assets.assets.labels import DIVISION_CUTOFF_EXPR
from gosales_assets.core.charts import calibration_chart, gains_chart
from gosales_assets.core.gates import evaluate_gate
from gosales_assets.core.leakage import feature_code_paths, scan_wall_clock, time_order_violations
from gosales_assets.core.modeling import DegenerateModel, InsufficientData, fold_overlap, train_division_model
from gosales_assets.partitions import division_cutoff_partitions, split_key, training_cutoffs
from gosales_assets.resources import WAREHOUSE_POOL, ArtifactStore, GosalesSettings, WarehouseResource
from gosales_assets.settings import Settings, division_slug

GAUNTLET = ("fold_overlap", "time_order", "static_scan", "feature_shift")
PACKAGES = ("dagster", "polars", "duckdb", "numpy", "scikit-learn", "lightgbm", "implicit", "pandera")


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def candidate_training_cutoffs(warehouse: WarehouseResource, division: str, cutoff: dt.date) -> list[tuple[dt.date, int]]:
    """(C', W') of every labelled, uncensored cutoff of the division before C, from the `labels` table."""
    if not warehouse.table_exists("labels"):
        return []
    df = warehouse.query(
        "select cutoff_date, max(window_months) as w from labels where division = ? and cutoff_date < ? "
        "and not censored group by cutoff_date order by cutoff_date", [division, cutoff])
    return [(c, int(w)) for c, w in df.iter_rows()]


def feature_shift_report(artifacts: ArtifactStore, cutoffs: list[dt.date]) -> dict[str, str]:
    """PASS/FAIL per cutoff from the shift and perturbation checks the feature assets recorded."""
    out = {}
    for c in cutoffs:
        path = artifacts.path("features", c.isoformat(), "leakage_customer_features.json")
        if not path.is_file():
            out[c.isoformat()] = "FAIL: no leakage record for customer_features (materialize it first)"
            continue
        record = json.loads(path.read_text())
        failed = [k for k, v in record.items() if v["status"] != "PASS"]
        out[c.isoformat()] = "PASS" if not failed else f"FAIL: {', '.join(failed)}"
    return out


def _sample(df: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    return df if df.height <= n else df.sample(n=n, seed=seed).sort(df.columns[:2])


def build_model_assets(settings: Settings) -> list[AssetsDefinition]:
    parts = division_cutoff_partitions(settings)
    specs = partition_checks(parts,
        AssetCheckSpec("promotion_gate", asset="division_model", blocking=True,
                       description="AUC ≥, lift@10% ≥ and calibration MAE ≤ the configured thresholds (per-division "
                       "overrides); a model that misses never feeds scoring"),
        AssetCheckSpec("fold_overlap", asset="division_model", blocking=True,
                       description="No customer appears on both sides of any cross-validation fold"),
        AssetCheckSpec("time_order", asset="division_model", blocking=True,
                       description="Every training cutoff C' satisfies C' + W' ≤ C"),
        AssetCheckSpec("static_scan", asset="division_model", blocking=True,
                       description="No wall-clock call (datetime.now, utcnow, date.today, time.time, …) in feature or "
                       "label code"),
        AssetCheckSpec("feature_shift", asset="division_model", blocking=True,
                       description="The features of every training cutoff passed the shift and perturbation tests"),
    )

    @asset(
        name="division_model",
        group_name="models",
        partitions_def=parts,
        pool=WAREHOUSE_POOL,
        output_required=False,
        deps=["division_features", "labels"],
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        check_specs=specs,
        description="Calibrated per-division model (elastic-net logistic regression or LightGBM, chosen by "
        "customer-grouped CV) trained on the most recent cutoffs whose label window closed by this cutoff. "
        "Stored as a registry row; files under <artifacts>/models/<division>/<cutoff>/. Partitions without "
        "enough history are skipped with the reason, and nothing downstream runs for them.",
    )
    def division_model(context: AssetExecutionContext, settings: GosalesSettings, warehouse: WarehouseResource,
                       artifacts: ArtifactStore):
        cfg = settings.get()
        division, cutoff = split_key(context.partition_key)
        params = cfg.models
        candidates = candidate_training_cutoffs(warehouse, division, cutoff)
        usable = training_cutoffs(cutoff, candidates)[-params.training_cutoffs:]
        windows = dict(candidates)
        training = [(c, windows[c]) for c in usable]
        out_dir = ["models", division_slug(division), cutoff.isoformat()]

        def skip(reason: str):
            record_skip(context, "division_model", reason, level="warning")
            artifacts.write_json([*out_dir, "skipped.json"], {"division": division, "cutoff": cutoff.isoformat(),
                                                              "reason": reason, "run_id": context.run.run_id})
            yield AssetCheckResult(check_name="promotion_gate", asset_key="division_model", passed=False,
                                   severity=AssetCheckSeverity.WARN, description=f"no model to promote: {reason}")
            for name in GAUNTLET:
                yield AssetCheckResult(check_name=name, asset_key="division_model", passed=True,
                                       description=f"not applicable: no model was trained ({reason})",
                                       metadata={"applicable": False})

        if not training:
            yield from skip(f"no trainable cutoff C' with C' + W' ≤ {cutoff} has labels "
                            f"(labelled earlier cutoffs: {[str(c) for c, _ in candidates] or 'none'})")
            return
        cutoff_list = ", ".join(f"'{c.isoformat()}'" for c, _ in training)
        # Label columns come from the `labels` table as it is now: a cutoff's labels are rebuilt once its window
        # closes, while its division_features row may date from when the window was still open (censored).
        frame = warehouse.query(
            "select f.* replace (l.window_months as window_months, l.cohort as cohort, "
            "l.net_revenue_window as net_revenue_window, l.label as label, l.censored as censored) "
            "from division_features f join labels l on l.division = f.division and l.cutoff_date = f.cutoff_date "
            f"and l.customer_id = f.customer_id where f.division = ? and f.cutoff_date in ({cutoff_list}) "
            "order by f.cutoff_date, f.customer_id", [division])
        try:
            model = train_division_model(frame, params, cfg.seeds.modeling)
        except (InsufficientData, DegenerateModel) as err:
            yield from skip(f"{type(err).__name__}: {err.reason}")
            return

        # ---- artifacts ------------------------------------------------------------------------------------
        model_path = artifacts.path(*out_dir, "model.joblib")
        model.save(model_path)
        model_version = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
        gate = evaluate_gate(model.metrics, cfg.gate_thresholds(division))
        violations = time_order_violations(cutoff, training)
        scan = scan_wall_clock(feature_code_paths())
        overlap = fold_overlap(model.oof.get_column("customer_id").to_list(), model.oof.get_column("fold").to_numpy())
        shift = feature_shift_report(artifacts, [c for c, _ in training])
        leakage = {
            "fold_overlap": {"status": "PASS" if overlap == 0 else "FAIL", "customers_in_several_folds": overlap},
            "time_order": {"status": "PASS" if not violations else "FAIL", "violations": violations,
                           "training_cutoffs": [[str(c), w] for c, w in training]},
            "static_scan": {"status": "PASS" if not scan else "FAIL", "hits": [str(h) for h in scan],
                            "files": [p.name for p in feature_code_paths()]},
            "feature_shift": {"status": "PASS" if all(v == "PASS" for v in shift.values()) else "FAIL",
                              "by_cutoff": shift},
        }
        window_at_c = warehouse.query(
            "select max(window_months) from labels where division = ? and cutoff_date = ?", [division, cutoff]).item()
        card = model.card() | {
            "division": division, "cutoff": cutoff.isoformat(), "model_version": model_version,
            "training_cutoffs": [str(c) for c, _ in training], "training_windows_months": [w for _, w in training],
            "prediction_window_months": int(window_at_c) if window_at_c is not None else cfg.window_months(division),
            "gate": {"passed": gate.passed, "detail": gate.detail, **gate.values},
            "leakage": {k: v["status"] for k, v in leakage.items()},
            "package_versions": _versions(), "dagster_run_id": context.run.run_id,
            "config_checksum": cfg.checksum,
        }
        artifacts.write_json([*out_dir, "metrics.json"], model.metrics)
        artifacts.write_csv([*out_dir, "gains.csv"], model.gains)
        artifacts.write_csv([*out_dir, "calibration.csv"], model.calibration)
        artifacts.write_csv([*out_dir, "thresholds.csv"], model.thresholds)
        artifacts.write_csv([*out_dir, "feature_importance.csv"], model.feature_importance())
        artifacts.write_csv([*out_dir, "cv_results.csv"], model.cv_summary())
        artifacts.write_json([*out_dir, "model_card.json"], card)
        artifacts.write_json([*out_dir, "leakage_report.json"], leakage)
        # Drift baselines: a seeded sample of training scores and of the features the model used.
        n_sample, seed = params.drift_sample_rows, cfg.seeds.modeling
        train_scores = _sample(model.oof, n_sample, seed)
        train_scores.write_parquet(artifacts.path(*out_dir, "train_scores.parquet"))
        _sample(frame.select("customer_id", "cutoff_date", *model.features), n_sample, seed).write_parquet(
            artifacts.path(*out_dir, "train_feature_sample.parquet"))
        title = f"{division} @ {cutoff} ({model.model_type})"
        gains_png, cal_png = gains_chart(model.gains, title), calibration_chart(model.calibration, title)
        artifacts.path(*out_dir, "gains.png").write_bytes(gains_png)
        artifacts.path(*out_dir, "calibration.png").write_bytes(cal_png)

        m = model.metrics
        registry = pl.DataFrame([{
            "division": division, "cutoff_date": cutoff, "model_version": model_version,
            "model_type": model.model_type, "calibration_method": model.calibration_method,
            "prediction_window_months": card["prediction_window_months"],
            "training_cutoffs": ",".join(str(c) for c, _ in training),
            "train_rows": int(model.class_balance.get("rows", frame.height)),
            "train_positives": int(model.class_balance.get("positives", 0)),
            "auc": m.get("auc"), "pr_auc": m.get("pr_auc"), "brier": m.get("brier"),
            "lift_at_5": m.get("lift_at_5"), "lift_at_10": m.get("lift_at_10"), "lift_at_20": m.get("lift_at_20"),
            "rev_lift_at_10": m.get("rev_lift_at_10"), "cal_mae": m.get("cal_mae"), "base_rate": m.get("base_rate"),
            "gate_passed": gate.passed, "gate_detail": gate.detail, "model_path": str(model_path),
            "run_id": context.run.run_id,
        }], schema_overrides={"auc": pl.Float64, "pr_auc": pl.Float64, "cal_mae": pl.Float64})
        top = model.feature_importance().head(10).with_columns(pl.col("importance").round(5))
        meta = {
            "dagster/row_count": 1,
            "model_type": model.model_type,
            "calibration_method": model.calibration_method,
            "auc": m.get("auc"), "lift_at_10": m.get("lift_at_10"), "brier": m.get("brier"),
            "cal_mae": m.get("cal_mae"), "positives": int(model.class_balance.get("positives", 0)),
            "training_cutoffs": [str(c) for c, _ in training],
            "model_version": model_version,
            "gate": gate.detail,
            "gains_chart": image_markdown(gains_png, "gains"),
            "calibration_chart": image_markdown(cal_png, "calibration"),
            "top_features": markdown_table(top.to_dicts()),
            "leakage_report": MetadataValue.json({k: v["status"] for k, v in leakage.items()}),
            "artifacts": MetadataValue.path(str(Path(model_path).parent)),
        }
        meta = {k: (MetadataValue.null() if v is None else v) for k, v in meta.items()}
        yield Output(registry, metadata=meta)

        yield AssetCheckResult(check_name="promotion_gate", asset_key="division_model", passed=gate.passed,
                               severity=AssetCheckSeverity.ERROR, description=gate.detail,
                               metadata={k: (MetadataValue.null() if v is None else v) for k, v in gate.values.items()})
        for name in GAUNTLET:
            entry = leakage[name]
            detail = {k: v for k, v in entry.items() if k != "status"}
            yield AssetCheckResult(check_name=name, asset_key="division_model", passed=entry["status"] == "PASS",
                                   severity=AssetCheckSeverity.ERROR,
                                   description=f"{entry['status']}: {json.dumps(detail, default=str)[:300]}",
                                   metadata={"detail": MetadataValue.json(detail)})

    return [division_model]
