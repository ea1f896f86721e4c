"""`division_model` materialized for real on demo data: artifacts, gate, gauntlet, skips, determinism."""

import dataclasses
import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from dagster import AssetKey

from gosales_assets.assets.models import FINGERPRINT_FILE
from gosales_assets.partitions import multi_key
from gosales_assets_tests.conftest import check_results, demo_pipeline, latest_metadata, materialized

CUTOFFS = ["2025-03-31", "2025-06-30", "2025-09-30", "2026-03-31"]
DIV = "Simulation"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    project, instance = demo_pipeline(tmp_path_factory.mktemp("models"), {"labels": {"auto_widen": {"enabled": False}}},
                                      customers=2000, cutoffs=CUTOFFS, divisions=[DIV],
                                      division_assets=["labels", "division_features"])
    result = project.materialize(["division_model"], instance=instance, partition_key=multi_key(DIV, "2026-03-31"))
    return project, instance, result


def test_check_results_are_stored_per_partition(trained):
    """Each check result carries its partition key, so the UI shows every partition's own verdict (a skipped
    partition's WARN does not hide another partition's pass)."""
    from dagster import AssetCheckKey

    project, instance, result = trained
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("division_model"), "promotion_gate"), limit=10)
    mine = [r for r in history if r.run_id == result.run_id]
    assert [r.partition for r in mine] == [f"2026-03|{DIV}"]
    earlier = [r.partition for r in instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("labels"), "prevalence_not_collapsed"), limit=50)]
    assert {f"{c[:7]}|{DIV}" for c in CUTOFFS} <= set(earlier)


def model_dir(project, cutoff="2026-03-31"):
    return project.settings.artifacts_dir / "models" / "simulation" / cutoff


def test_model_is_trained_on_closed_windows_with_all_artifacts(trained):
    project, instance, result = trained
    assert result.success
    checks = {k: ev for k, ev in check_results(result).items() if k[0] == "division_model"}
    assert {name for _, name in checks} == {"promotion_gate", "fold_overlap", "time_order", "static_scan",
                                            "feature_shift"}
    assert all(ev.passed for ev in checks.values()), {k: ev.description for k, ev in checks.items()}
    reg = _registry_row(project)
    # C' + 6 months <= 2026-03-31: 2025-03-31, 2025-06-30, 2025-09-30 (not 2026-03-31 itself).
    assert reg["training_cutoffs"] == "2025-03-31,2025-06-30,2025-09-30"
    assert reg["gate_passed"] and reg["auc"] >= 0.7 and reg["lift_at_10"] >= 2.0
    d = model_dir(project)
    for name in ["model.joblib", "metrics.json", "gains.csv", "calibration.csv", "thresholds.csv", "model_card.json",
                 "feature_importance.csv", "train_scores.parquet", "train_feature_sample.parquet",
                 "leakage_report.json", "gains.png", "calibration.png"]:
        assert (d / name).is_file(), name
    card = json.loads((d / "model_card.json").read_text())
    assert card["division"] == DIV and card["training_cutoffs"] == ["2025-03-31", "2025-06-30", "2025-09-30"]
    assert card["calibration_method"] in ("sigmoid", "isotonic") and card["dagster_run_id"] == result.run_id
    assert set(card["package_versions"]) >= {"dagster", "lightgbm", "scikit-learn"}
    assert "cutoff_date" not in card["features"] and "label" not in card["features"]
    gains = pl.read_csv(d / "gains.csv")
    assert gains.height == 10 and gains.get_column("cumulative_capture")[-1] == pytest.approx(1.0)
    assert (d / "gains.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((d / "leakage_report.json").read_text())
    assert {k: v["status"] for k, v in report.items()} == dict.fromkeys(
        ["fold_overlap", "time_order", "static_scan", "feature_shift"], "PASS")
    meta = instance.get_latest_materialization_event(AssetKey("division_model")).asset_materialization.metadata
    assert meta["gains_chart"].value.startswith("![gains](data:image/png;base64,")
    # The comparison with the simple peers on the same out-of-fold rows is shown with the gate (and passed: it gates).
    gate = check_results(result)[("division_model", "promotion_gate")]
    peer = {k: v.value for k, v in gate.metadata.items()}
    assert peer["best_peer"] in ("recency", "frequency", "monetary", "rfm_logistic")
    assert peer["candidate_auc"] == round(reg["auc"], 4)
    assert peer["interval_low"] <= peer["auc_vs_best_peer"] <= peer["interval_high"]
    # Metadata is rounded for people; the registry row keeps full precision.
    assert meta["auc"].value == round(reg["auc"], 4) and meta["status"].value == "promoted"
    assert reg["status"] == "promoted" and reg["reason"] == "promotion gate and leakage checks passed"


def _registry_row(project, cutoff="2026-03-31") -> dict:
    return project.table("division_model").filter(pl.col("cutoff_date") == dt.date.fromisoformat(cutoff)).row(
        0, named=True)


def test_retraining_is_deterministic_and_an_unchanged_partition_reuses_its_model(trained):
    """Fitted again on the same rows (its fingerprint gone), the model is the same file; made again with nothing
    changed, the partition reuses the saved model instead of fitting it."""
    project, instance, _ = trained
    key = multi_key(DIV, "2026-03-31")
    before = _registry_row(project)
    scores_before = pl.read_parquet(model_dir(project) / "train_scores.parquet")
    (model_dir(project) / FINGERPRINT_FILE).unlink()
    again = project.materialize(["division_model"], instance=instance, partition_key=key)
    assert again.success and latest_metadata(instance, "division_model")["model_reused"] is False
    after = _registry_row(project)
    for k in ("auc", "lift_at_10", "brier", "cal_mae", "model_version", "model_type"):
        assert after[k] == before[k], k
    assert pl.read_parquet(model_dir(project) / "train_scores.parquet").equals(scores_before)
    mtime = (model_dir(project) / "model.joblib").stat().st_mtime_ns
    reused = project.materialize(["division_model"], instance=instance, partition_key=key)
    assert reused.success and latest_metadata(instance, "division_model")["model_reused"] is True
    assert (model_dir(project) / "model.joblib").stat().st_mtime_ns == mtime  # not written again
    assert {k: v for k, v in _registry_row(project).items() if k != "run_id"} == \
        {k: v for k, v in after.items() if k != "run_id"}


def test_the_pool_stops_once_its_newest_cutoffs_hold_enough_positives(trained):
    """`models.training_positives`: the newest usable cutoff first, older ones only while the pool holds fewer
    positives; the card, the metadata and the registry say what was pooled and why."""
    project, instance, _ = trained
    key = multi_key(DIV, "2026-03-31")
    frames = project.table("division_features").filter((pl.col("division") == DIV) & ~pl.col("censored"))
    positives = dict(frames.group_by("cutoff_date").agg(pl.col("label").sum()).iter_rows())
    newest, middle = positives[dt.date(2025, 9, 30)], positives[dt.date(2025, 6, 30)]
    assert 0 < newest < 20 <= newest + middle  # the newest cutoff alone could not train (min_positives 20)
    for enough, pooled in [(20, ["2025-06-30", "2025-09-30"]), (newest + middle, ["2025-06-30", "2025-09-30"])]:
        result = project.with_overrides({"models": {"training_positives": int(enough)}}).materialize(
            ["division_model"], instance=instance, partition_key=key)
        assert result.success
        card = json.loads((model_dir(project) / "model_card.json").read_text())
        assert card["training_cutoffs"] == pooled and _registry_row(project)["training_cutoffs"] == ",".join(pooled)
        got = sum(positives[dt.date.fromisoformat(c)] for c in pooled)
        assert card["training_pool"] == (f"{len(pooled)} of 3 usable cutoffs: their {got:,} positives reach "
                                         f"models.training_positives ({enough:,})")
        assert latest_metadata(instance, "division_model")["training_pool"] == card["training_pool"]
        assert card["class_balance"]["positives"] == got
    # Back to the defaults (the demo's cutoffs hold far fewer than 2,000 positives: every usable cutoff is pooled).
    assert project.materialize(["division_model"], instance=instance, partition_key=key).success
    card = json.loads((model_dir(project) / "model_card.json").read_text())
    assert card["training_cutoffs"] == ["2025-03-31", "2025-06-30", "2025-09-30"]
    pooled = sum(positives[dt.date.fromisoformat(c)] for c in card["training_cutoffs"])
    assert card["training_pool"] == f"every usable cutoff (3, {pooled:,} positives)"


def test_partition_without_trainable_history_is_skipped_with_reason(trained):
    project, instance, _ = trained
    result = project.materialize(["division_model"], instance=instance, partition_key=multi_key(DIV, "2025-06-30"))
    # Held is data: the partition materializes its registry row with the verdict and the reason.
    assert result.success and "division_model" in materialized(result)
    row = project.table("division_model").filter(pl.col("cutoff_date") == dt.date(2025, 6, 30)).row(0, named=True)
    assert row["status"] == "skipped" and "no trainable cutoff" in row["reason"] and row["model_version"] is None
    assert not row["gate_passed"] and row["model_path"] is None
    meta = latest_metadata(instance, "division_model")
    assert meta["status"] == "skipped" and "no trainable cutoff" in meta["reason"]
    gate = check_results(result)[("division_model", "promotion_gate")]
    assert not gate.passed and gate.severity.value == "WARN" and "no trainable cutoff" in gate.description
    skipped = json.loads((model_dir(project, "2025-06-30") / "skipped.json").read_text())
    assert "2025-03-31 + " not in skipped["reason"] and "no trainable cutoff" in skipped["reason"]
    assert not (model_dir(project, "2025-06-30") / "model.joblib").exists()


def _with_frame_labels_changed(project, division: str, label):
    """Every model frame file of `division` with its uncensored rows' labels replaced by the expression `label`."""
    from gosales_assets.resources import frames_dir
    from gosales_assets.settings import division_slug

    paths = sorted((frames_dir(project.settings.warehouse_path) / division_slug(division)).glob("*.parquet"))
    assert paths
    for path in paths:
        frame = pl.read_parquet(path)
        frame.with_columns(pl.when(pl.col("censored")).then(pl.col("label")).otherwise(label)
                           .cast(frame.schema["label"]).alias("label")).write_parquet(path)


def _train_with_oof(monkeypatch, rescore):
    """Training as usual, then the candidate's out-of-fold scores (what the gate judges; the saved file is the real
    model) replaced by `rescore(scores, rng)` and its out-of-fold AUC recomputed, so the card agrees."""
    from gosales_assets.core import modeling
    from gosales_assets.core.metrics import roc_auc

    train = modeling.train_division_model

    def patched(frame, params, seed):
        model = train(frame, params, seed)
        scores = rescore(model.oof["score_calibrated"].to_numpy(), np.random.default_rng(0))
        oof = model.oof.with_columns(pl.Series("score_calibrated", scores))
        return dataclasses.replace(model, oof=oof, metrics=model.metrics | {
            "auc": roc_auc(oof["label"].to_numpy(), scores)})

    monkeypatch.setattr(modeling, "train_division_model", patched)


def _materialize_model_and_scores(project, instance):
    """The partition made again with a fresh fit (the patched training): the saved model's fingerprint is removed
    before, so it is not reused, and after, so no later test reuses the patched model."""
    fingerprint = model_dir(project) / FINGERPRINT_FILE
    fingerprint.unlink(missing_ok=True)
    try:
        return project.materialize(["division_model"], instance=instance, partition_key=multi_key(DIV, "2026-03-31"))
    finally:
        fingerprint.unlink(missing_ok=True)


def test_gate_holds_a_model_worse_than_the_simple_peers_and_nothing_is_published(trained, monkeypatch):
    """The default gate is relative: a model that ranks buyers clearly worse than the best simple peer on its own
    out-of-fold rows is held, whatever the (low) absolute floors say. (A model trained on shuffled labels is no test
    of it any more: the peers have no signal on shuffled labels either, and a lucky 0.57 clears a floor that only says
    "better than chance".)"""
    project, instance, _ = trained
    # half of the out-of-fold scores replaced by noise: above chance, far below the peers
    _train_with_oof(monkeypatch, lambda s, rng: np.where(rng.random(s.size) < 0.5, rng.random(s.size), s))
    result = _materialize_model_and_scores(project, instance)
    # The gate stays a failed ERROR check in the UI; the run goes on (downstream fan-ins must not fail) and the
    # registry row says `held`, so scoring publishes an empty slice.
    gate = check_results(result)[("division_model", "promotion_gate")]
    values = {k: v.value for k, v in gate.metadata.items()}
    assert not gate.passed and gate.severity.value == "ERROR"
    assert 0.5 < values["candidate_auc"] < values["best_peer_auc"] - 0.05 and values["interval_high"] < 0
    assert gate.description.startswith("trails the best simple peer beyond the margin: AUC")
    assert result.success and {"division_model", "icp_scores"} <= materialized(result)
    row = project.table("division_model").filter(pl.col("cutoff_date") == dt.date(2026, 3, 31)).row(0, named=True)
    assert row["status"] == "held" and row["reason"] == f"promotion gate: {gate.description}"
    assert not row["gate_passed"] and row["serving_model_version"] is None
    scores = project.table("icp_scores")
    assert scores.filter((pl.col("division") == DIV) & (pl.col("cutoff_date") == dt.date(2026, 3, 31))).height == 0
    meta = latest_metadata(instance, "icp_scores")
    assert meta["published"] is False and "model held" in meta["reason"]


def test_a_below_chance_model_is_held_with_its_diagnosis_first(trained, monkeypatch):
    project, instance, _ = trained
    _train_with_oof(monkeypatch, lambda s, rng: 1.0 - s)  # ranks the buyers backwards
    result = _materialize_model_and_scores(project, instance)
    gate = check_results(result)[("division_model", "promotion_gate")]
    values = {k: v.value for k, v in gate.metadata.items()}
    assert not gate.passed and values["candidate_auc"] < 0.5
    assert values["below_chance"].startswith(f"cross-validated AUC {values['candidate_auc']:.3f} is below chance")
    assert "the model's features rank these buyers backwards" in values["below_chance"]  # the peers do better
    assert gate.description.startswith(f"below chance: {values['below_chance']}; auc ")
    row = project.table("division_model").filter(pl.col("cutoff_date") == dt.date(2026, 3, 31)).row(0, named=True)
    assert row["status"] == "held" and row["reason"].startswith("promotion gate: below chance: cross-validated AUC")
    assert latest_metadata(instance, "icp_scores")["published"] is False


def test_zero_positive_partition_is_skipped_not_crashed(trained):
    project, instance, _ = trained
    _with_frame_labels_changed(project, DIV, pl.lit(0))
    result = project.materialize(["division_model"], instance=instance, partition_key=multi_key(DIV, "2026-03-31"))
    assert result.success and "division_model" in materialized(result)
    assert project.table("division_model").filter(
        pl.col("cutoff_date") == dt.date(2026, 3, 31)).row(0, named=True)["status"] == "skipped"
    gate = check_results(result)[("division_model", "promotion_gate")]
    assert "InsufficientData" in gate.description and "positives" in gate.description


def test_a_frame_that_read_rows_after_its_cutoff_stops_the_partition(trained, monkeypatch):
    """The model frame's blocking source-date audit fails (here: the ownership history given a row dated after the
    cutoff): the labels and the frame are stored with the failed check, and nothing is made from them — no model,
    no scores, no drift, peers or validation — the step fails and names the check."""
    from gosales_assets.assets import features

    project, instance, _ = trained
    real = features.ownership_rows

    def leaky(fact, cutoff):
        rows = real(fact, cutoff)
        return pl.concat([rows, rows.head(1).with_columns(pl.lit(cutoff + dt.timedelta(days=1)).alias("invoice_date"))])

    monkeypatch.setattr(features, "ownership_rows", leaky)
    registry_before = _registry_row(project)
    result = project.materialize(["division_model"], instance=instance, partition_key=multi_key(DIV, "2026-03-31"))
    assert not result.success
    assert materialized(result) == {"labels", "division_features"}
    audit = check_results(result)[("division_features", "source_date_audit")]
    assert not audit.passed and "1 source rows dated after cutoff 2026-03-31" in audit.description
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "blocking check(s) failed: division_features:source_date_audit" in str(failure.step_failure_data.error)
    assert _registry_row(project) == registry_before  # the model partition was not made again
