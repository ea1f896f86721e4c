"""Scoring a population with a division's serving model (promoted, or the champion of a retained candidate), and the
zero-prevalence guard."""

from __future__ import annotations

import polars as pl

from typing import TYPE_CHECKING

from gosales_assets.settings import division_slug

if TYPE_CHECKING:  # scoring itself needs no training libraries
    from gosales_assets.core.modeling import TrainedModel

ICP_COLUMNS = (
    "run_id", "model_version", "division", "cutoff_date", "prediction_window_months", "customer_id",
    "customer_name", "icp_score", "calibration_method", "bought_in_division",
)
ICP_SCHEMA = {
    "run_id": pl.String, "model_version": pl.String, "division": pl.String, "cutoff_date": pl.Date,
    "prediction_window_months": pl.Int32, "customer_id": pl.String, "customer_name": pl.String,
    "icp_score": pl.Float64, "calibration_method": pl.String, "bought_in_division": pl.Int8,
}


def export_rel(cutoff, division: str) -> list[str]:
    """Where a division × cutoff's CRM export of its scores lives, relative to the artifacts root (one file per
    partition: each writes only its own rows)."""
    return ["scores", cutoff.isoformat(), f"icp_scores_{division_slug(division)}.csv"]


def score_population(frame: pl.DataFrame, model: TrainedModel, model_row: dict, names: pl.DataFrame,
                     *, run_id: str) -> pl.DataFrame:
    """One row per customer of the division × cutoff frame, with the model's calibrated probability.

    `bought_in_division` is the realized label when the partition's window is inside the data (evaluation
    mode), null when censored. `model_row` is the division_model registry row (window) with the serving model's
    version and calibration method (the champion's when the partition's candidate was retained).
    """
    out = frame.select(
        "customer_id", "division", "cutoff_date",
        pl.Series("icp_score", model.predict_proba(frame)),
        pl.when(pl.col("censored")).then(None).otherwise(pl.col("label")).cast(pl.Int8).alias("bought_in_division"),
    ).join(names, on="customer_id", how="left", maintain_order="left")
    return out.with_columns(
        pl.lit(run_id).alias("run_id"),
        pl.lit(model_row["model_version"]).alias("model_version"),
        pl.lit(model_row["prediction_window_months"]).alias("prediction_window_months"),
        pl.lit(model_row["calibration_method"]).alias("calibration_method"),
    ).select(ICP_COLUMNS).cast(ICP_SCHEMA).sort("customer_id")


def zero_prevalence_alert(scores: pl.DataFrame, model_row: dict) -> dict | None:
    """An alert when outcomes are known, none is positive, and the model trained on positives; else None.

    Zero realized buyers for a division that had buyers in training is far more often a broken join or a renamed
    division than a real market change, so such a partition is not published."""
    known = scores.get_column("bought_in_division").drop_nulls()
    train_pos = int(model_row.get("train_positives") or 0)
    if known.len() == 0 or int(known.sum()) > 0 or train_pos == 0:
        return None
    division, cutoff = scores.item(0, "division"), scores.item(0, "cutoff_date")
    return {
        "kind": "zero_prevalence",
        "division": division,
        "cutoff": str(cutoff),
        "reason": f"{known.len()} customers with known outcomes and 0 positives at {cutoff}, while model "
                  f"{model_row['model_version']} trained on {train_pos} positives; check labels and division names",
        "rows": scores.height,
        "train_positives": train_pos,
    }
