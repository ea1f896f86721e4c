"""The model registry row: one per division × cutoff, whatever happened there.

A partition whose model was promoted, held by its gate or the leakage gauntlet, or not trained at all (too little
history) still gets its row, with the verdict (`status`) and the reason in words. So everything downstream
(scoring, whitespace, reports, the UI) reads the outcome as data instead of guessing from an absence.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import polars as pl

PROMOTED, HELD, SKIPPED = "promoted", "held", "skipped"
STATUSES = (PROMOTED, HELD, SKIPPED)

METRIC_COLUMNS = ("auc", "pr_auc", "brier", "lift_at_5", "lift_at_10", "lift_at_20", "rev_lift_at_10", "cal_mae",
                  "base_rate")
REGISTRY_SCHEMA: dict[str, pl.DataType] = {
    "division": pl.String, "cutoff_date": pl.Date, "status": pl.String, "reason": pl.String,
    "model_version": pl.String, "model_type": pl.String, "calibration_method": pl.String,
    "prediction_window_months": pl.Int64, "training_cutoffs": pl.String, "train_rows": pl.Int64,
    "train_positives": pl.Int64, **dict.fromkeys(METRIC_COLUMNS, pl.Float64),
    "gate_passed": pl.Boolean, "gate_detail": pl.String, "model_path": pl.String, "run_id": pl.String,
}


def registry_row(**values: Any) -> pl.DataFrame:
    """One registry row; columns not given are null. `status` must be one of STATUSES and comes with a reason."""
    unknown = set(values) - set(REGISTRY_SCHEMA)
    if unknown:
        raise ValueError(f"unknown registry columns {sorted(unknown)}")
    if values.get("status") not in STATUSES or not values.get("reason"):
        raise ValueError(f"a registry row needs a status in {STATUSES} and a reason, got {values.get('status')!r}")
    return pl.DataFrame([{name: values.get(name) for name in REGISTRY_SCHEMA}], schema=REGISTRY_SCHEMA)


def verdict(gate_passed: bool, gate_detail: str, leakage: dict[str, dict]) -> tuple[str, str]:
    """(status, reason) of a trained model: promoted only when its gate and every leakage check passed."""
    failed = [name for name, entry in leakage.items() if entry["status"] != "PASS"]
    misses = ([f"promotion gate: {gate_detail}"] if not gate_passed else []) + \
        ([f"leakage check(s) failed: {', '.join(failed)}"] if failed else [])
    if misses:
        return HELD, "; ".join(misses)
    return PROMOTED, "promotion gate and leakage checks passed"


def model_file_version(path: str | Path) -> str | None:
    """The version of a saved model file: the first 12 hex digits of its SHA-256 (None when there is no file)."""
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest()[:12] if p.is_file() else None


def unpublished_reason(row: dict) -> str | None:
    """Why a registry row's model may not feed scoring, or None when it may: promoted, gate passed, and the model
    file on disk is the very file the gate judged (same version), so a file rewritten after the verdict (a retrain
    killed half way, a hand edit) is never scored under the old row's name."""
    if not row:
        return "division_model has no registry row for this partition"
    status = row.get("status")
    if status != PROMOTED:
        return f"model {status or 'without a verdict'}: {row.get('reason') or 'no reason recorded'}"
    if not row.get("gate_passed"):
        return f"model {row.get('model_version')} did not pass its promotion gate: {row.get('gate_detail')}"
    if not row.get("model_path"):
        return f"model {row.get('model_version')} has no model file recorded"
    on_disk = model_file_version(row["model_path"])
    if on_disk != row.get("model_version"):
        found = "is missing" if on_disk is None else f"has version {on_disk}"
        return (f"model file {row['model_path']} {found}, not the registry's {row.get('model_version')} (rewritten "
                "after its gate decided, e.g. a retrain stopped half way): re-materialize division_model")
    return None
