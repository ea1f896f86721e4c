"""`division_model` against the division's current champion, materialized for real on demo data: two cutoffs of one
division; a candidate not worse than the champion is promoted; a forced-worse one is `retained` and the champion
serves `icp_scores` (and `drift` compares against the champion's baselines)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest
from dagster import AssetKey

from gosales_assets.assets.models import FINGERPRINT_FILE
from gosales_assets.core.metrics import roc_auc
from gosales_assets.core.registry import PROMOTED, RETAINED
from gosales_assets.partitions import multi_key
from gosales_assets_tests.conftest import check_results, demo_pipeline, latest_metadata, materialized

CUTOFFS = ["2025-03-31", "2025-06-30", "2025-09-30", "2026-03-31"]
DIV = "Simulation"
# The champion of 2025-09-30 (trained on 2025-03-31) and the candidate of 2026-03-31 (trained on 2025-03-31 ..
# 2025-09-30): the candidate's rows of 2025-09-30 have labels the champion never saw. (2025-12-31 is not built: a
# champion that recent would have no such row, its labels reach 2025-12-31.)
CHAMP_C, CAND_C = dt.date(2025, 9, 30), dt.date(2026, 3, 31)
# Peers and floors out of the way: the champion decides alone here (the peers: test_peer_assets.py). The margin leaves
# room for an honest candidate's noise; the forced-worse one trails by far more.
OVERRIDES = {"labels": {"auto_widen": {"enabled": False}},
             "models": {"min_positives": 10,  # the champion trains on 2025-03-31 alone (16 positives)
                        "gates": {"auc_min": 0.0, "lift10_min": 0.0, "cal_mae_max": 1.0, "peer_gate": False,
                                  "champion_gate": True, "champion_margin": 0.05}}}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    project, instance = demo_pipeline(tmp_path_factory.mktemp("champion"), OVERRIDES, customers=2000, cutoffs=CUTOFFS,
                                      divisions=[DIV], division_assets=["labels", "division_features"])
    champion = project.materialize(["division_model"], instance=instance, partition_key=multi_key(DIV, CHAMP_C))
    assert champion.success
    return project, instance, champion


def registry(project, cutoff: dt.date) -> dict:
    return project.table("division_model").filter(pl.col("cutoff_date") == cutoff).row(0, named=True)


def gate_values(result) -> dict:
    gate = check_results(result)[("division_model", "promotion_gate")]
    return gate, {k: v.value for k, v in gate.metadata.items()}


def test_the_first_model_has_no_champion_and_says_so(built):
    project, _, result = built
    row = registry(project, CHAMP_C)
    assert row["status"] == PROMOTED and row["training_cutoffs"] == "2025-03-31"
    assert (row["serving_model_version"], row["serving_cutoff"]) == (row["model_version"], CHAMP_C)
    gate, values = gate_values(result)
    assert gate.passed and values["champion_applicable"] is False
    assert values["champion_comparison"] == ("not applicable: no promoted model of this division at the cutoffs "
                                             "2024-09-30..2025-08-31 (look-back)")


def test_the_graph_declares_the_champion_read():
    import tempfile
    from pathlib import Path

    from gosales_assets.definitions import build_definitions
    from gosales_assets_tests.conftest import new_project

    project = new_project(Path(tempfile.mkdtemp()), OVERRIDES, only_divisions=[DIV])
    graph = build_definitions(project.settings, project.config_path).resolve_asset_graph()
    model = AssetKey("division_model")
    assert model in graph.get(model).parent_keys  # a self-dependency ...
    parents = graph.get_parents_partitions(model, multi_key(DIV, CAND_C)).parent_partitions
    earlier = sorted(p.partition_key.keys_by_dimension["cutoff"] for p in parents if p.asset_key == model)
    assert earlier[0] == "2025-03" and earlier[-1] == "2026-02"  # ... on the 12 months before, never on itself
    # champion_gate off: no earlier model is read, so none is declared
    off = new_project(Path(tempfile.mkdtemp()), {**OVERRIDES, "models": {"gates": {"champion_gate": False}}},
                      only_divisions=[DIV])
    assert model not in build_definitions(off.settings, off.config_path).resolve_asset_graph().get(model).parent_keys


def test_a_candidate_not_worse_than_the_champion_is_promoted(built):
    from gosales_assets.core.modeling import load_model

    project, instance, _ = built
    result = project.materialize(["division_model", "icp_scores"], instance=instance,
                                 partition_key=multi_key(DIV, CAND_C))
    assert result.success
    champ, row = registry(project, CHAMP_C), registry(project, CAND_C)
    gate, v = gate_values(result)
    assert row["status"] == PROMOTED and gate.passed, gate.description
    assert row["serving_model_version"] == row["model_version"] != champ["model_version"]
    # compared on the candidate's rows of 2025-09-30 only: labels the champion (of 2025-09-30) never saw
    assert v["champion_applicable"] is True and v["champion_cutoff"] == "2025-09-30"
    assert v["champion_model_version"] == champ["model_version"]
    frame = project.table("division_features").filter(
        (pl.col("division") == DIV) & (pl.col("cutoff_date") == dt.date(2025, 9, 30)) & ~pl.col("censored"))
    assert v["champion_rows"] == frame.height and v["champion_positives"] == int(frame["label"].sum())
    # the champion's AUC on those rows, recomputed from its own file
    expected = roc_auc(frame["label"].to_numpy(), load_model(champ["model_path"]).predict_proba(frame))
    assert v["champion_auc"] == round(expected, 4)
    assert v["auc_vs_champion"] >= -0.05 and v["champion_interval_low"] <= v["auc_vs_champion"] \
        <= v["champion_interval_high"]
    scores = project.table("icp_scores").filter(pl.col("cutoff_date") == CAND_C)
    assert scores.height > 0 and set(scores["model_version"]) == {row["model_version"]}


def test_a_worse_candidate_is_retained_and_the_champion_serves(built, monkeypatch):
    from gosales_assets.core import modeling

    project, instance, _ = built
    train = modeling.train_division_model

    def worse(frame, params, seed):
        """The real training, then half of the out-of-fold scores replaced by seeded noise: a candidate that ranks
        buyers far worse than the champion (its file is the real model; the gate judges the out-of-fold rows)."""
        model = train(frame, params, seed)
        rng = np.random.default_rng(0)
        s = model.oof["score_calibrated"].to_numpy()
        noisy = np.where(rng.random(s.size) < 0.5, rng.random(s.size), s)
        return dataclasses.replace(model, oof=model.oof.with_columns(pl.Series("score_calibrated", noisy)))

    monkeypatch.setattr(modeling, "train_division_model", worse)
    # a fresh fit (the saved model's fingerprint removed, so it is not reused), whose fingerprint no later test reuses
    fingerprint = project.settings.artifacts_dir / "models" / "simulation" / CAND_C.isoformat() / FINGERPRINT_FILE
    fingerprint.unlink(missing_ok=True)
    try:
        result = project.materialize(["division_model"], instance=instance, partition_key=multi_key(DIV, CAND_C))
    finally:
        fingerprint.unlink(missing_ok=True)
    assert result.success and {"division_model", "icp_scores", "drift"} <= materialized(result)
    champ, row = registry(project, CHAMP_C), registry(project, CAND_C)
    gate, v = gate_values(result)
    assert v["auc_vs_champion"] < -0.05 and v["champion_interval_high"] < 0
    # held only because it trails the champion: retained, a warning (nothing is withdrawn), the champion serves
    assert not gate.passed and gate.severity.value == "WARN"
    assert gate.description.startswith("trails the champion beyond the margin: AUC")
    assert row["status"] == RETAINED and not row["gate_passed"]
    assert row["reason"] == (f"promotion gate: {gate.description}; the champion model {champ['model_version']} of "
                             "2025-09-30 keeps serving")
    assert (row["serving_model_version"], row["serving_cutoff"], row["serving_model_path"]) == (
        champ["model_version"], CHAMP_C, champ["model_path"])
    assert latest_metadata(instance, "division_model")["status"] == RETAINED
    # icp_scores at 2026-03 scored by the champion's model: its version in the rows and the metadata
    from gosales_assets.core.modeling import load_model

    scores = project.table("icp_scores").filter(pl.col("cutoff_date") == CAND_C).sort("customer_id")
    assert scores.height > 0 and set(scores["model_version"]) == {champ["model_version"]}
    features = project.table("division_features").filter(
        (pl.col("division") == DIV) & (pl.col("cutoff_date") == CAND_C)).sort("customer_id")
    assert scores["icp_score"].to_numpy() == pytest.approx(load_model(champ["model_path"]).predict_proba(features))
    meta = latest_metadata(instance, "icp_scores")
    assert meta["published"] is True and meta["model_status"] == RETAINED
    assert meta["model_version"] == champ["model_version"] and meta["model_cutoff"] == "2025-09-30"
    # drift compares the population with the serving model's baselines: the champion on its own training sample
    models = project.settings.artifacts_dir / "models" / "simulation"

    def baseline_mean(cutoff: str, model_path: str) -> float:
        sample = pl.read_parquet(models / cutoff / "train_feature_sample.parquet")
        return float(np.mean(load_model(model_path).predict_proba(sample)))

    drift = project.table("drift").filter(pl.col("cutoff_date") == CAND_C)
    score = drift.filter(pl.col("kind") == "score_psi")
    assert score.height == 1
    assert score.item(0, "baseline") == pytest.approx(baseline_mean("2025-09-30", champ["model_path"]), abs=1e-4)
    assert score.item(0, "baseline") != pytest.approx(baseline_mean("2026-03-31", row["model_path"]), abs=1e-4)
