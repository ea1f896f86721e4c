"""The model registry row: one per division × cutoff, whatever happened there.

A partition whose model was promoted, held by its gate or the leakage gauntlet, retained (held only because it trails
the division's current champion, which keeps serving) or not trained at all (too little history) still gets its row,
with the verdict (`status`) and the reason in words. So everything downstream (scoring, whitespace, drift, reports,
the UI) reads the outcome as data instead of guessing from an absence.

Which model serves the partition is data too: `serving_model_version`, `serving_cutoff`, `serving_model_path` — the
row's own model when promoted, its champion's when retained, null when nothing serves (held, skipped).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import polars as pl

PROMOTED, HELD, SKIPPED, RETAINED = "promoted", "held", "skipped", "retained"
STATUSES = (PROMOTED, HELD, SKIPPED, RETAINED)
SERVING = (PROMOTED, RETAINED)  # a model scores the partition: its own (promoted) or its champion (retained)

METRIC_COLUMNS = ("auc", "pr_auc", "brier", "lift_at_5", "lift_at_10", "lift_at_20", "rev_lift_at_10", "cal_mae",
                  "base_rate")
REGISTRY_SCHEMA: dict[str, pl.DataType] = {
    "division": pl.String, "cutoff_date": pl.Date, "status": pl.String, "reason": pl.String,
    "model_version": pl.String, "model_type": pl.String, "calibration_method": pl.String,
    "prediction_window_months": pl.Int64, "training_cutoffs": pl.String, "train_rows": pl.Int64,
    "train_positives": pl.Int64, **dict.fromkeys(METRIC_COLUMNS, pl.Float64),
    "gate_passed": pl.Boolean, "gate_detail": pl.String, "model_path": pl.String, "run_id": pl.String,
    "serving_model_version": pl.String, "serving_cutoff": pl.Date, "serving_model_path": pl.String,
}


def registry_row(**values: Any) -> pl.DataFrame:
    """One registry row; columns not given are null. `status` must be one of STATUSES and comes with a reason."""
    unknown = set(values) - set(REGISTRY_SCHEMA)
    if unknown:
        raise ValueError(f"unknown registry columns {sorted(unknown)}")
    if values.get("status") not in STATUSES or not values.get("reason"):
        raise ValueError(f"a registry row needs a status in {STATUSES} and a reason, got {values.get('status')!r}")
    return pl.DataFrame([{name: values.get(name) for name in REGISTRY_SCHEMA}], schema=REGISTRY_SCHEMA)


def verdict(gate_passed: bool, gate_detail: str, leakage: dict[str, dict], *, champion_only: bool = False,
            champion: dict | None = None) -> tuple[str, str]:
    """(status, reason) of a trained model: promoted only when its gate and every leakage check passed; retained
    when the gate's only miss is trailing the `champion` (`champion_only`) and the gauntlet passed, so the champion
    keeps serving; held otherwise."""
    failed = [name for name, entry in leakage.items() if entry["status"] != "PASS"]
    misses = ([f"promotion gate: {gate_detail}"] if not gate_passed else []) + \
        ([f"leakage check(s) failed: {', '.join(failed)}"] if failed else [])
    if not misses:
        return PROMOTED, "promotion gate and leakage checks passed"
    if champion_only and not failed and champion is not None:
        return RETAINED, (f"{misses[0]}; the champion model {champion.get('model_version')} of "
                          f"{champion['cutoff_date']} keeps serving")
    return HELD, "; ".join(misses)


def serving_model(row: dict) -> dict | None:
    """The model that serves a registry row's partition — {"model_version", "model_path", "cutoff"} — or None: the
    row's own model when promoted (rows written before the serving columns existed included), its champion's when
    retained, none otherwise."""
    status = (row or {}).get("status")
    if status == PROMOTED:
        return {"model_version": row.get("serving_model_version") or row.get("model_version"),
                "model_path": row.get("serving_model_path") or row.get("model_path"),
                "cutoff": row.get("serving_cutoff") or row.get("cutoff_date")}
    if status == RETAINED:
        return {"model_version": row.get("serving_model_version"), "model_path": row.get("serving_model_path"),
                "cutoff": row.get("serving_cutoff")}
    return None


def model_file_version(path: str | Path) -> str | None:
    """The version of a saved model file: the first 12 hex digits of its SHA-256 (None when there is no file)."""
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest()[:12] if p.is_file() else None


def unpublished_reason(row: dict) -> str | None:
    """Why no model may feed scoring for a registry row's partition, or None when one may: promoted with its gate
    passed, or retained (its champion serves), and the serving model file on disk is the very file that was judged
    (same version), so a file rewritten after the verdict (a retrain killed half way, a hand edit) is never scored
    under the old row's name."""
    if not row:
        return "division_model has no registry row for this partition"
    status = row.get("status")
    if status not in SERVING:
        return f"model {status or 'without a verdict'}: {row.get('reason') or 'no reason recorded'}"
    if status == PROMOTED and not row.get("gate_passed"):
        return f"model {row.get('model_version')} did not pass its promotion gate: {row.get('gate_detail')}"
    serving = serving_model(row)
    which = "model" if status == PROMOTED else f"champion model (serving for the retained {row.get('model_version')})"
    if not serving["model_path"]:
        return f"{which} {serving['model_version']} has no model file recorded"
    on_disk = model_file_version(serving["model_path"])
    if on_disk != serving["model_version"]:
        found = "is missing" if on_disk is None else f"has version {on_disk}"
        return (f"{which} file {serving['model_path']} {found}, not the registry's {serving['model_version']} "
                "(rewritten after its gate decided, e.g. a retrain stopped half way): re-materialize division_model")
    return None
