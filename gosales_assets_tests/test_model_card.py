"""core/model_card.py and core/leakage_records.py: the gauntlet, card, verdict, registry row and files of a model
partition, from a stand-in trained model (plain frames, no training)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from gosales_assets.core.leakage import AuditResult, feature_code_paths
from gosales_assets.core.leakage_records import (
    audit_record,
    division_features_record,
    division_record_path,
    feature_shift_report,
)
from gosales_assets.core.model_card import (
    GAUNTLET,
    drift_sample,
    leakage_report,
    model_record,
    package_versions,
    skipped_model,
)
from gosales_assets.core.registry import HELD, PROMOTED, REGISTRY_SCHEMA, SKIPPED
from gosales_assets.settings import GateThresholds

C = dt.date(2025, 12, 31)
TRAINING = [(dt.date(2025, 3, 31), 6), (dt.date(2025, 6, 30), 6)]
GOOD = {"auc": 0.81, "pr_auc": 0.3, "brier": 0.05, "lift_at_5": 4.0, "lift_at_10": 3.1, "lift_at_20": 2.2,
        "rev_lift_at_10": 2.9, "cal_mae": 0.02, "base_rate": 0.06}
THRESHOLDS = GateThresholds(auc_min=0.7, lift10_min=2.0, cal_mae_max=0.1)
SHIFT_OK = {"2025-03-31": "PASS", "2025-06-30": "PASS"}


@dataclass
class StandInModel:
    """What the record reads of a `TrainedModel`."""

    metrics: dict
    oof: pl.DataFrame
    features: list[str] = field(default_factory=lambda: ["f1", "f2"])
    model_type: str = "logistic"
    calibration_method: str = "platt"
    class_balance: dict = field(default_factory=lambda: {"rows": 8, "positives": 3})
    gains: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        {"decile": list(range(1, 11)), "cumulative_capture": [min(1.0, 0.2 * d) for d in range(1, 11)]}))
    calibration: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        {"mean_predicted": [0.1, 0.5], "observed": [0.12, 0.45], "count": [5, 3]}))
    thresholds: pl.DataFrame = field(default_factory=lambda: pl.DataFrame({"pct": [10.0], "threshold": [0.4]}))

    def card(self) -> dict:
        return {"model_type": self.model_type, "metrics": dict(self.metrics), "n_features": len(self.features)}

    def feature_importance(self) -> pl.DataFrame:
        return pl.DataFrame({"feature": self.features, "importance": [0.7, 0.3]})

    def cv_summary(self) -> pl.DataFrame:
        return pl.DataFrame({"config": ["lr"], "selected": [True]})


def oof(folds: list[int]) -> pl.DataFrame:
    ids = ["a", "a", "b", "c", "d", "e", "f", "g"]
    return pl.DataFrame({"customer_id": ids, "fold": folds, "p": [0.1 * i for i in range(8)]})


FRAME = pl.DataFrame({"customer_id": [f"c{i}" for i in range(8)], "cutoff_date": [dt.date(2025, 3, 31)] * 8,
                      "f1": list(range(8)), "f2": [0.5] * 8, "label": [0, 1] * 4})


def record(model=None, **kw):
    args = dict(division="PDM", cutoff=C, training=TRAINING, model_version="abc123", model_path="/m/model.joblib",
                gate_thresholds=THRESHOLDS, feature_shift=SHIFT_OK, prediction_window_months=6, frame=FRAME,
                drift_sample_rows=5, seed=3, run_id="run-1", config_checksum="cfg", versions={"polars": "1"},
                wall_clock_hits=[], peer_comparison=False) | kw  # the peer comparison: test_peers.py
    return model_record(model or StandInModel(GOOD, oof([0, 0, 1, 2, 3, 0, 1, 2])), **args)


def test_promoted_model_record():
    rec = record()
    assert rec.status == PROMOTED and rec.reason == "promotion gate and leakage checks passed"
    assert list(rec.leakage) == list(GAUNTLET) and rec.leakage_status == dict.fromkeys(GAUNTLET, "PASS")
    assert rec.leakage["fold_overlap"] == {"status": "PASS", "customers_in_several_folds": 0}
    assert rec.leakage["time_order"]["training_cutoffs"] == [["2025-03-31", 6], ["2025-06-30", 6]]
    assert rec.leakage["static_scan"]["files"] == [p.name for p in feature_code_paths()]
    card = rec.card
    assert card["division"] == "PDM" and card["cutoff"] == "2025-12-31" and card["model_version"] == "abc123"
    assert card["training_cutoffs"] == ["2025-03-31", "2025-06-30"] and card["training_windows_months"] == [6, 6]
    assert card["gate"]["passed"] is True and card["gate"]["auc"] == 0.81 and card["gate"]["auc_min"] == 0.7
    assert card["leakage"] == dict.fromkeys(GAUNTLET, "PASS") and card["package_versions"] == {"polars": "1"}
    assert card["dagster_run_id"] == "run-1" and card["config_checksum"] == "cfg" and card["n_features"] == 2
    row = rec.registry.row(0, named=True)
    assert rec.registry.schema == pl.Schema(REGISTRY_SCHEMA)
    assert row["status"] == PROMOTED and row["training_cutoffs"] == "2025-03-31,2025-06-30"
    assert row["train_rows"] == 8 and row["train_positives"] == 3 and row["auc"] == 0.81 and row["base_rate"] == 0.06
    assert row["model_path"] == "/m/model.joblib" and row["prediction_window_months"] == 6 and row["gate_passed"]


def test_files_of_a_model_partition():
    rec = record()
    assert list(rec.files) == ["metrics.json", "gains.csv", "calibration.csv", "thresholds.csv",
                               "feature_importance.csv", "cv_results.csv", "model_card.json", "leakage_report.json",
                               "train_scores.parquet", "train_feature_sample.parquet", "gains.png", "calibration.png"]
    assert rec.files["model_card.json"] is rec.card and rec.files["leakage_report.json"] is rec.leakage
    assert rec.files["metrics.json"] == GOOD
    # Drift baselines: seeded samples of at most 5 rows, sorted by their first two columns.
    scores, features = rec.files["train_scores.parquet"], rec.files["train_feature_sample.parquet"]
    assert scores.height == 5 and scores.equals(drift_sample(oof([0, 0, 1, 2, 3, 0, 1, 2]), 5, 3))
    assert features.columns == ["customer_id", "cutoff_date", "f1", "f2"] and features.height == 5
    assert drift_sample(FRAME, 100, 3).equals(FRAME)
    assert rec.files["gains.png"][:8] == b"\x89PNG\r\n\x1a\n" and rec.files["calibration.png"][:4] == b"\x89PNG"
    assert json.dumps(rec.card, default=str) and json.dumps(rec.leakage, default=str)


def test_held_by_the_gate_and_by_the_gauntlet():
    weak = StandInModel(GOOD | {"auc": 0.6}, oof([0, 1, 1, 2, 3, 0, 1, 2]))  # customer a in folds 0 and 1
    late = [(dt.date(2025, 9, 30), 6)]  # 2025-09-30 + 6 months = 2026-03-31 > C
    rec = record(weak, training=late, feature_shift={"2025-09-30": "FAIL: customer_features:shift_test"},
                 wall_clock_hits=["features.py:3 datetime.now"])
    assert rec.status == HELD
    assert rec.reason == ("promotion gate: auc 0.6000 < 0.7 (short by 0.1000); leakage check(s) failed: "
                          "fold_overlap, time_order, static_scan, feature_shift")
    assert rec.leakage["fold_overlap"]["customers_in_several_folds"] == 1
    assert rec.leakage["time_order"]["violations"] == ["2025-09-30 + 6 months = 2026-03-31 > 2025-12-31"]
    assert rec.leakage["static_scan"]["hits"] == ["features.py:3 datetime.now"]
    assert rec.card["leakage"] == dict.fromkeys(GAUNTLET, "FAIL") and rec.card["gate"]["passed"] is False
    row = rec.registry.row(0, named=True)
    assert row["status"] == HELD and row["gate_passed"] is False and row["reason"] == rec.reason
    # Only the gauntlet missing: held with that reason alone; the class balance's rows win over the frame's.
    only_shift = record(StandInModel(GOOD, oof([0] * 8), class_balance={"positives": 2}),
                        feature_shift={"2025-03-31": "PASS", "2025-06-30": "FAIL: no leakage record"})
    assert only_shift.reason == "leakage check(s) failed: feature_shift"
    assert only_shift.registry.item(0, "train_rows") == FRAME.height


def test_leakage_report_alone_and_package_versions():
    rep = leakage_report(C, TRAINING, fold_overlap=0, wall_clock_hits=[], scanned_files=[Path("/x/labels.py")],
                         feature_shift={})
    assert rep["static_scan"] == {"status": "PASS", "hits": [], "files": ["labels.py"]}
    assert rep["feature_shift"] == {"status": "PASS", "by_cutoff": {}}  # no training cutoff to fail
    versions = package_versions(("polars", "no-such-package-xyz"))
    assert versions["no-such-package-xyz"] == "not installed" and versions["polars"] == pl.__version__


def test_skipped_model():
    skipped = skipped_model(division="PDM", cutoff=C, training=TRAINING[:1], reason="InsufficientData: 3 positives",
                            run_id="run-1")
    row = skipped.registry.row(0, named=True)
    assert row["status"] == SKIPPED and row["reason"] == "InsufficientData: 3 positives"
    assert row["training_cutoffs"] == "2025-03-31" and row["gate_passed"] is False and row["model_version"] is None
    assert row["gate_detail"] == "no model to promote: InsufficientData: 3 positives"
    assert skipped.skipped == {"division": "PDM", "cutoff": "2025-12-31", "reason": "InsufficientData: 3 positives",
                               "run_id": "run-1"}
    with pytest.raises(ValueError, match="reason"):
        skipped_model(division="PDM", cutoff=C, training=[], reason="", run_id="r")


def test_leakage_records_round_trip(tmp_path):
    ok, bad = AuditResult(True, "fine", {"rows_after_cutoff": 0}), AuditResult(False, "late rows", {"n": 2})
    record_ = audit_record({"shift_test": ok, "source_date_audit": bad})
    assert record_ == {"shift_test": {"status": "PASS", "detail": "fine", "rows_after_cutoff": 0},
                       "source_date_audit": {"status": "FAIL", "detail": "late rows", "n": 2}}
    assert division_features_record(record_, ok) == {
        "customer_features:shift_test": "PASS", "customer_features:source_date_audit": "FAIL",
        "division_features:source_date_audit": "PASS"}
    assert division_features_record(None, bad) == {"customer_features:record": "FAIL",
                                                   "division_features:source_date_audit": "FAIL"}
    c1, c2, c3 = dt.date(2025, 3, 31), dt.date(2025, 6, 30), dt.date(2025, 9, 30)
    for c, rec in ((c1, division_features_record(record_ | {"source_date_audit": {"status": "PASS"}}, ok)),
                   (c2, division_features_record(record_, ok))):
        path = division_record_path(tmp_path, c, "Solidworks PDM")
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(rec))
    assert division_record_path(tmp_path, c1, "Solidworks PDM").parent.name == "solidworks_pdm"
    assert feature_shift_report(tmp_path, "Solidworks PDM", [c1, c2, c3]) == {
        "2025-03-31": "PASS", "2025-06-30": "FAIL: customer_features:source_date_audit",
        "2025-09-30": "FAIL: no leakage record for division_features (materialize it first)"}
