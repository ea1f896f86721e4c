"""What a division × cutoff model partition records about itself: the leakage gauntlet, the model card, the
verdict and the registry row (plain dicts and one `core.registry` row; no Dagster, nothing written).

`model_record` is for a trained model (with the contents of its files under `<artifacts>/models/<division>/
<cutoff>/`: metrics, evaluation tables, card, leakage report, drift baselines, charts), `skipped_model` for a
partition where none was trained. The `division_model` asset and the benchmark's direct path both call these; they
do the I/O around them (queries, training, the model file, writing the files).

The gauntlet, in this order (the verdict's reason names failed checks in this order):
- `fold_overlap`: no customer in more than one cross-validation fold;
- `time_order`: every training cutoff C' has C' + W' ≤ C;
- `static_scan`: no wall-clock call in the feature and label code;
- `feature_shift`: every training cutoff's features passed their shift and perturbation tests
  (`core.leakage_records.feature_shift_report`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from gosales_assets.core.charts import calibration_chart, gains_chart
from gosales_assets.core.gates import (
    ChampionComparison,
    GateResult,
    champion_not_applicable,
    compare_with_champion,
    evaluate_gate,
    out_of_champion_sample,
)
from gosales_assets.core.peers import (
    PEER_COLUMNS,
    PeerComparison,
    compare_with_peers,
    fit_rfm_logistic,
    peer_record,
    peer_scores,
)
from gosales_assets.core.leakage import feature_code_paths, scan_wall_clock, time_order_violations
from gosales_assets.core.registry import (
    METRIC_COLUMNS,
    PROMOTED,
    RETAINED,
    SKIPPED,
    registry_row,
    serving_model,
    verdict,
)
from gosales_assets.settings import GateThresholds

if TYPE_CHECKING:  # the record needs no training libraries; the model comes from the caller
    from gosales_assets.core.modeling import TrainedModel

__all__ = ["GAUNTLET", "PACKAGES", "ModelRecord", "SkippedModel", "package_versions", "leakage_report",
           "drift_sample", "model_record", "skipped_model"]

GAUNTLET = ("fold_overlap", "time_order", "static_scan", "feature_shift")
PACKAGES = ("dagster", "polars", "duckdb", "numpy", "scikit-learn", "lightgbm", "implicit", "pandera")


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each package ("not installed" when absent), for the model card."""
    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _training_cutoffs(training: Sequence[tuple[dt.date, int]]) -> str:
    return ",".join(str(c) for c, _ in training)


def leakage_report(cutoff: dt.date, training: Sequence[tuple[dt.date, int]], *, fold_overlap: int,
                   wall_clock_hits: Sequence[Any], scanned_files: Sequence[Path],
                   feature_shift: dict[str, str]) -> dict[str, dict]:
    """The gauntlet's report (leakage_report.json): per check its status and what it found, in `GAUNTLET` order."""
    violations = time_order_violations(cutoff, list(training))
    return {
        "fold_overlap": {"status": "PASS" if fold_overlap == 0 else "FAIL", "customers_in_several_folds": fold_overlap},
        "time_order": {"status": "PASS" if not violations else "FAIL", "violations": violations,
                       "training_cutoffs": [[str(c), w] for c, w in training]},
        "static_scan": {"status": "PASS" if not wall_clock_hits else "FAIL", "hits": [str(h) for h in wall_clock_hits],
                        "files": [Path(p).name for p in scanned_files]},
        "feature_shift": {"status": "PASS" if all(v == "PASS" for v in feature_shift.values()) else "FAIL",
                          "by_cutoff": feature_shift},
    }


def drift_sample(df: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """A seeded sample of at most `n` rows (sorted by the first two columns), for the drift baselines."""
    return df if df.height <= n else df.sample(n=n, seed=seed).sort(df.columns[:2])


@dataclass(frozen=True)
class ModelRecord:
    """A trained model's record: `card` (model_card.json), `leakage` (leakage_report.json), the gate, the verdict
    (`status`, `reason`), the one-row `registry` frame (the `division_model` table) and `files`, the contents of the
    partition's files by name (`.json` a dict, `.csv` / `.parquet` a DataFrame, `.png` bytes)."""

    gate: GateResult
    leakage: dict[str, dict]
    card: dict
    status: str
    reason: str
    registry: pl.DataFrame
    files: dict[str, Any]

    @property
    def leakage_status(self) -> dict[str, str]:
        return {k: v["status"] for k, v in self.leakage.items()}


def _peer_comparison(model: TrainedModel, frame: pl.DataFrame, margin: float, n_boot: int | None,
                     seed: int) -> tuple[PeerComparison, pl.DataFrame, np.ndarray, np.ndarray | None]:
    """The candidate against the simple peers on its own out-of-fold rows and folds; also those rows (the training
    frame in out-of-fold order), their labels and the candidate's fit weights (None for a model saved without
    them), with which the RFM regression is refitted for `peers.json`."""
    oof = model.oof
    # Only the peers' columns are joined (not the ~300 features: a copy of the whole frame at 300,000 rows); a peer
    # whose column the frame lacks is still named by `peer_scores`.
    read = [c for c in PEER_COLUMNS if c in frame.columns]
    rows = oof.select("customer_id", "cutoff_date").join(frame.select("customer_id", "cutoff_date", *read),
                                                         on=["customer_id", "cutoff_date"], how="left",
                                                         maintain_order="left")
    y, folds = oof.get_column("label").to_numpy().astype(int), oof.get_column("fold").to_numpy()
    candidate = oof.get_column("score_calibrated").to_numpy()
    weights = oof.get_column("fit_weight").to_numpy() if "fit_weight" in oof.columns else None
    comparison = compare_with_peers(y, candidate, peer_scores(rows, y, folds, weights), margin=margin,
                                    n_boot=n_boot, seed=seed, folds=folds)
    return comparison, rows, y, weights


def _champion_comparison(model: TrainedModel, frame: pl.DataFrame, champion: dict | None, champion_model,
                         note: str | None, margin: float, n_boot: int | None, seed: int) -> ChampionComparison:
    """The candidate against the current champion (`champion`: its registry row; `champion_model`: its loaded model,
    None when it could not be used, `note` says why) on the candidate's out-of-fold rows out of the champion's sample
    (cutoff ≥ the champion's: labels it never saw, `core.gates.out_of_champion_sample`): the candidate's calibrated
    out-of-fold score vs the champion's score on the same rows (their features from the training frame)."""
    if champion is None or champion_model is None:
        return champion_not_applicable(note or "no current champion", champion)
    oof = model.oof
    out = oof.filter(pl.Series(out_of_champion_sample(oof.get_column("cutoff_date").to_list(), champion)))
    rows = out.select("customer_id", "cutoff_date").join(frame, on=["customer_id", "cutoff_date"], how="left",
                                                         maintain_order="left")
    try:
        champion_score = champion_model.predict_proba(rows) if rows.height else np.empty(0)
    except (pl.exceptions.PolarsError, KeyError, ValueError) as err:  # e.g. a feature the champion needs is gone
        return champion_not_applicable(f"the champion model {champion.get('model_version')} of "
                                       f"{champion['cutoff_date']} cannot score the candidate's rows: {err}", champion)
    return compare_with_champion(out.get_column("label").to_numpy(), out.get_column("score_calibrated").to_numpy(),
                                 champion_score, champion=champion, margin=margin, n_boot=n_boot, seed=seed)


def model_record(
    model: TrainedModel,
    *,
    division: str,
    cutoff: dt.date,
    training: Sequence[tuple[dt.date, int]],
    model_version: str,
    model_path: str | Path,
    gate_thresholds: GateThresholds,
    training_pool: str | None = None,
    feature_shift: dict[str, str],
    prediction_window_months: int,
    frame: pl.DataFrame,
    drift_sample_rows: int,
    seed: int,
    run_id: str,
    config_checksum: str,
    versions: dict[str, str] | None = None,
    wall_clock_hits: Sequence[Any] | None = None,
    peer_comparison: bool = True,
    peer_resamples: int | None = None,
    peer_gate: bool = False,
    champion: dict | None = None,
    champion_model: Any = None,
    champion_note: str | None = None,
    champion_gate: bool = True,
) -> ModelRecord:
    """Gate, gauntlet, card, verdict and registry row of a trained `model` at (`division`, `cutoff`).

    - `training`: the (C', W') pooled into the model; `model_version` / `model_path`: the saved model file's
      short hash and path; `feature_shift`: `core.leakage_records.feature_shift_report` of the training cutoffs.
    - `prediction_window_months`: the label window at C (as labelled; else the configured one).
    - `frame`: the training frame (its rows when the model's class balance does not say; the drift baseline's
      feature sample); `drift_sample_rows`, `seed`: the size and seed of the drift baselines.
    - `versions`: package versions for the card (default: `package_versions()`); `wall_clock_hits`: the static
      scan's hits when already computed (default: scan the feature and label code now).
    - `peer_comparison`: compare with the simple peers on the out-of-fold rows (False: no comparison, and no
      `peers.json`); `peer_resamples`: the paired interval's bootstrap resamples (None: DeLong's analytic
      interval, `core.peers.paired_auc_difference`); `peer_gate`: whether trailing the best peer beyond the margin holds the
      model. With the comparison, `files` has `peers.json` (`core.peers.peer_record`): the peers' out-of-fold AUCs,
      the best of them and the RFM regression refitted on all training rows (the candidate's sample of them).
    - `champion`: the registry row of the division's current champion (`core.gates.current_champion`; None: none),
      `champion_model` its loaded model (None when unusable), `champion_note` why there is none / it is unusable;
      `champion_gate`: whether trailing it beyond `champion_margin` holds the model (then `retained`: the champion
      keeps serving). Its interval is computed as the peers'.
    """
    from gosales_assets.core.modeling import fold_overlap  # the caller trained the model: already imported

    training = list(training)
    peers = peer_file = None
    if peer_comparison:
        peers, rows, y, weights = _peer_comparison(model, frame, gate_thresholds.peer_margin, peer_resamples, seed)
        peer_file = peer_record(peers, fit_rfm_logistic(rows, y, weights), division=division, cutoff=cutoff,
                                model_version=model_version, rows=int(y.size), positives=int(y.sum()))
    vs_champion = _champion_comparison(model, frame, champion, champion_model, champion_note,
                                       gate_thresholds.champion_margin, peer_resamples, seed)
    gate = evaluate_gate(model.metrics, gate_thresholds, peers, peer_gate=peer_gate, champion=vs_champion,
                         champion_gate=champion_gate)
    scanned = feature_code_paths()
    hits = scan_wall_clock(scanned) if wall_clock_hits is None else list(wall_clock_hits)
    overlap = fold_overlap(model.oof.get_column("customer_id").to_list(), model.oof.get_column("fold").to_numpy())
    leakage = leakage_report(cutoff, training, fold_overlap=overlap, wall_clock_hits=hits, scanned_files=scanned,
                             feature_shift=feature_shift)
    card = model.card() | {
        "division": division, "cutoff": cutoff.isoformat(), "model_version": model_version,
        "training_cutoffs": [str(c) for c, _ in training], "training_windows_months": [w for _, w in training],
        "training_pool": training_pool, "prediction_window_months": prediction_window_months,
        "gate": {"passed": gate.passed, "detail": gate.detail, **gate.values},
        "leakage": {k: v["status"] for k, v in leakage.items()},
        "package_versions": package_versions() if versions is None else versions, "dagster_run_id": run_id,
        "config_checksum": config_checksum,
    }
    m = model.metrics
    status, reason = verdict(gate.passed, gate.detail, leakage, champion_only=gate.champion_only, champion=champion)
    serving = {PROMOTED: {"model_version": model_version, "model_path": str(model_path), "cutoff": cutoff},
               RETAINED: serving_model(champion) if champion else None}.get(status) or {}
    card |= {"status": status, "reason": reason, "serving_model_version": serving.get("model_version"),
             "serving_cutoff": str(serving["cutoff"]) if serving.get("cutoff") else None}
    registry = registry_row(
        division=division, cutoff_date=cutoff, status=status, reason=reason, model_version=model_version,
        model_type=model.model_type, calibration_method=model.calibration_method,
        prediction_window_months=prediction_window_months, training_cutoffs=_training_cutoffs(training),
        train_rows=int(model.class_balance.get("rows", frame.height)),
        train_positives=int(model.class_balance.get("positives", 0)),
        **{k: m.get(k) for k in METRIC_COLUMNS},
        gate_passed=gate.passed, gate_detail=gate.detail, model_path=str(model_path), run_id=run_id,
        serving_model_version=serving.get("model_version"), serving_cutoff=serving.get("cutoff"),
        serving_model_path=serving.get("model_path"))
    title = f"{division} @ {cutoff} ({model.model_type})"
    files = {
        "metrics.json": model.metrics,
        "gains.csv": model.gains,
        "calibration.csv": model.calibration,
        "thresholds.csv": model.thresholds,
        "feature_importance.csv": model.feature_importance(),
        "cv_results.csv": model.cv_summary(),
        "model_card.json": card,
        "leakage_report.json": leakage,
        # Drift baselines: a seeded sample of training scores and of the features the model used.
        "train_scores.parquet": drift_sample(model.oof, drift_sample_rows, seed),
        "train_feature_sample.parquet": drift_sample(frame.select("customer_id", "cutoff_date", *model.features),
                                                     drift_sample_rows, seed),
        "gains.png": gains_chart(model.gains, title),
        "calibration.png": calibration_chart(model.calibration, title),
    }
    if peer_file is not None:  # the peers at this partition, whatever the verdict (the `peer_scores` asset reads it)
        files["peers.json"] = peer_file
    return ModelRecord(gate=gate, leakage=leakage, card=card, status=status, reason=reason, registry=registry,
                       files=files)


@dataclass(frozen=True)
class SkippedModel:
    """A partition without a trained model: the `skipped` registry row and skipped.json."""

    reason: str
    registry: pl.DataFrame
    skipped: dict


def skipped_model(*, division: str, cutoff: dt.date, training: Sequence[tuple[dt.date, int]], reason: str,
                  run_id: str) -> SkippedModel:
    row = registry_row(division=division, cutoff_date=cutoff, status=SKIPPED, reason=reason,
                       training_cutoffs=_training_cutoffs(training), gate_passed=False,
                       gate_detail=f"no model to promote: {reason}", run_id=run_id)
    return SkippedModel(reason=reason, registry=row, skipped={"division": division, "cutoff": cutoff.isoformat(),
                                                               "reason": reason, "run_id": run_id})
