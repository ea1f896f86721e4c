"""Cross-run reports as plain functions."""

from __future__ import annotations

import polars as pl

TRAINING_METRICS = ("auc", "pr_auc", "brier", "lift_at_10", "rev_lift_at_10", "cal_mae", "base_rate")
FORWARD_METRICS = ("auc", "pr_auc", "brier", "lift_at_10", "rev_lift_at_10", "cal_mae", "base_rate", "positives",
                   "rows", "flagged_segments")


def metrics_summary(models: pl.DataFrame, forward: pl.DataFrame | None) -> pl.DataFrame:
    """One row per (division, cutoff) model: training (out-of-fold) metrics as `train_*`, forward metrics as
    `fwd_*` (null until the window has closed and forward_validation ran), the gate result and the gap."""
    if models.height == 0:
        return pl.DataFrame(schema={"division": pl.String, "cutoff_date": pl.Date})
    base = models.select(
        "division", "cutoff_date", "model_version", "model_type", "calibration_method", "training_cutoffs",
        "train_rows", "train_positives", "gate_passed", "gate_detail",
        *[pl.col(m).alias(f"train_{m}") for m in TRAINING_METRICS],
    )
    if forward is not None and forward.height:
        fwd = forward.select("division", "cutoff_date", "model_version",
                             *[pl.col(m).alias(f"fwd_{m}") for m in FORWARD_METRICS])
        # Forward results belong to the model that produced the scores (same version), not a later retrain.
        base = base.join(fwd, on=["division", "cutoff_date", "model_version"], how="left")
    else:
        base = base.with_columns([pl.lit(None, dtype=pl.Float64).alias(f"fwd_{m}") for m in FORWARD_METRICS])
    return base.with_columns(
        (pl.col("train_auc") - pl.col("fwd_auc")).alias("auc_train_minus_forward"),
    ).sort("division", "cutoff_date")
