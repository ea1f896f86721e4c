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
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    MetadataValue,
    Output,
    asset,
)

from gosales_assets.assets.common import image_markdown, markdown_table, partition_checks
from gosales_assets.assets.labels import DIVISION_CUTOFF_EXPR
from gosales_assets.core.charts import calibration_chart, gains_chart
from gosales_assets.core.gates import evaluate_gate
from gosales_assets.core.leakage import feature_code_paths, scan_wall_clock, time_order_violations
from gosales_assets.core.registry import METRIC_COLUMNS, SKIPPED, registry_row, verdict
from gosales_assets.partitions import (
    add_months,
    division_cutoff_partitions,
    same_division_earlier_cutoffs,
    split_key,
    training_cutoffs,
    training_lookback,
)
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


def candidate_training_cutoffs(warehouse: WarehouseResource, division: str, cutoff: dt.date,
                               lookback: tuple[int, int]) -> list[tuple[dt.date, int]]:
    """(C', W') of every labelled, uncensored cutoff of the division with a model frame, in the declared look-back
    of C (the partitions of `labels` and `division_features` this asset depends on)."""
    if not (warehouse.table_exists("labels") and warehouse.table_exists("division_features")):
        return []
    # Only cutoffs whose model frame exists too: labels alone (e.g. rebuilt when a window closed, for a month whose
    # features were never built) are no training cutoff.
    df = warehouse.query(
        "select l.cutoff_date, max(l.window_months) as w from labels l where l.division = ? "
        "and l.cutoff_date between ? and ? and not l.censored and exists (select 1 from division_features f "
        "where f.division = l.division and f.cutoff_date = l.cutoff_date) group by l.cutoff_date order by 1",
        [division, add_months(cutoff, -lookback[0]), add_months(cutoff, -lookback[1])])
    return [(c, int(w)) for c, w in df.iter_rows()]


def feature_shift_report(artifacts: ArtifactStore, division: str, cutoffs: list[dt.date]) -> dict[str, str]:
    """PASS/FAIL per training cutoff from the leakage record its `division_features` partition wrote (the shift and
    perturbation checks of the cutoff's customer features, and its own source-date audit)."""
    out = {}
    for c in cutoffs:
        path = artifacts.path("features", c.isoformat(), division_slug(division), "leakage_division_features.json")
        if not path.is_file():
            out[c.isoformat()] = "FAIL: no leakage record for division_features (materialize it first)"
            continue
        failed = [k for k, status in json.loads(path.read_text()).items() if status != "PASS"]
        out[c.isoformat()] = "PASS" if not failed else f"FAIL: {', '.join(failed)}"
    return out


def _rounded(value: float | None, digits: int = 4) -> float | None:
    """Metric values as a person reads them in the UI (the registry row and metrics.json keep full precision)."""
    return None if value is None else round(float(value), digits)


def _sample(df: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    return df if df.height <= n else df.sample(n=n, seed=seed).sort(df.columns[:2])


def build_model_assets(settings: Settings) -> list[AssetsDefinition]:
    parts = division_cutoff_partitions(settings)
    lookback = training_lookback(settings)
    # Not blocking: a held model is a verdict recorded in its registry row (status `held`), which scoring reads and
    # refuses; the partition, the cutoff's whitespace and the reports go on with the divisions that published.
    specs = partition_checks(parts,
        AssetCheckSpec("promotion_gate", asset="division_model",
                       description="AUC ≥, lift@10% ≥ and calibration MAE ≤ the configured thresholds (per-division "
                       "overrides); a model that misses is held and never feeds scoring"),
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

    @asset(
        name="division_model",
        group_name="models",
        partitions_def=parts,
        pool=WAREHOUSE_POOL,
        deps=[AssetDep("division_features", partition_mapping=same_division_earlier_cutoffs(*lookback)),
              AssetDep("labels", partition_mapping=same_division_earlier_cutoffs(lookback[0], 0))],
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        check_specs=specs,
        description="Calibrated per-division model (logistic regression, LightGBM or their ensemble, chosen by "
        "customer-grouped CV) trained on the most recent cutoffs whose label window closed by this cutoff "
        f"(looked for {lookback[1]}-{lookback[0]} months back). One registry row per partition with its verdict: "
        "`promoted`, `held` (gate or leakage check missed) or `skipped` (too little history), and the reason; "
        "files under <artifacts>/models/<division>/<cutoff>/. Only a promoted model feeds scoring.",
    )
    def division_model(context: AssetExecutionContext, settings: GosalesSettings, warehouse: WarehouseResource,
                       artifacts: ArtifactStore):
        # Imported here: lightgbm and scikit-learn cost ~0.7 s, and every run process loads the code location.
        from gosales_assets.core.modeling import DegenerateModel, InsufficientData, fold_overlap, train_division_model

        cfg = settings.get()
        division, cutoff = split_key(context.partition_key)
        params = cfg.models
        candidates = candidate_training_cutoffs(warehouse, division, cutoff, lookback)
        usable = training_cutoffs(cutoff, candidates)[-params.training_cutoffs:]
        windows = dict(candidates)
        training = [(c, windows[c]) for c in usable]
        out_dir = ["models", division_slug(division), cutoff.isoformat()]

        def skip(reason: str):
            context.log.warning(f"division_model {context.partition_key}: no model trained — {reason}")
            artifacts.write_json([*out_dir, "skipped.json"], {"division": division, "cutoff": cutoff.isoformat(),
                                                              "reason": reason, "run_id": context.run.run_id})
            row = registry_row(division=division, cutoff_date=cutoff, status=SKIPPED, reason=reason,
                               training_cutoffs=",".join(str(c) for c, _ in training), gate_passed=False,
                               gate_detail=f"no model to promote: {reason}", run_id=context.run.run_id)
            yield Output(row, metadata={"status": SKIPPED, "reason": reason, "dagster/row_count": 1,
                                        "training_cutoffs": [str(c) for c, _ in training]})
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
        shift = feature_shift_report(artifacts, division, [c for c, _ in training])
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
        status, reason = verdict(gate.passed, gate.detail, leakage)
        registry = registry_row(
            division=division, cutoff_date=cutoff, status=status, reason=reason, model_version=model_version,
            model_type=model.model_type, calibration_method=model.calibration_method,
            prediction_window_months=card["prediction_window_months"],
            training_cutoffs=",".join(str(c) for c, _ in training),
            train_rows=int(model.class_balance.get("rows", frame.height)),
            train_positives=int(model.class_balance.get("positives", 0)),
            **{k: m.get(k) for k in METRIC_COLUMNS},
            gate_passed=gate.passed, gate_detail=gate.detail, model_path=str(model_path), run_id=context.run.run_id)
        top = model.feature_importance().head(10).with_columns(pl.col("importance").round(5))
        meta = {
            "status": status,
            "reason": reason,
            "dagster/row_count": 1,
            "model_type": model.model_type,
            "calibration_method": model.calibration_method,
            **{k: _rounded(m.get(k)) for k in ("auc", "lift_at_10", "brier", "cal_mae")},
            "positives": int(model.class_balance.get("positives", 0)),
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
                               metadata={k: (MetadataValue.null() if v is None else _rounded(v))
                                         for k, v in gate.values.items()})
        for name in GAUNTLET:
            entry = leakage[name]
            detail = {k: v for k, v in entry.items() if k != "status"}
            yield AssetCheckResult(check_name=name, asset_key="division_model", passed=entry["status"] == "PASS",
                                   severity=AssetCheckSeverity.ERROR,
                                   description=f"{entry['status']}: {json.dumps(detail, default=str)[:300]}",
                                   metadata={"detail": MetadataValue.json(detail)})

    return [division_model]
