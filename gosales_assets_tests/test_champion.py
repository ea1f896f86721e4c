"""The promotion gate against the division's current champion (core/gates.py, core/registry.py, core/model_card.py):
who the champion is, which rows it is compared on, the paired comparison, the `retained` verdict and what serves."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.gates import (
    BELOW_CHANCE,
    GateResult,
    champion_not_applicable,
    compare_with_champion,
    current_champion,
    evaluate_gate,
    find_champion,
    out_of_champion_sample,
)
from gosales_assets.core.peers import compare_with_peers
from gosales_assets.core.registry import (
    HELD,
    PROMOTED,
    RETAINED,
    SKIPPED,
    model_file_version,
    serving_model,
    unpublished_reason,
    verdict,
)
from gosales_assets.settings import DEFAULT_CONFIG_PATH, GateSettings, GateThresholds, load_settings
from gosales_assets_tests.test_model_card import GOOD, StandInModel, record

C = dt.date(2026, 3, 31)
CHAMPION = {"division": "PDM", "cutoff_date": dt.date(2025, 12, 31), "status": PROMOTED, "model_version": "champ1",
            "model_path": "/m/champ/model.joblib", "training_cutoffs": "2025-03-31,2025-06-30", "gate_passed": True}
PASS_ALL = {name: {"status": "PASS"} for name in ("fold_overlap", "time_order", "static_scan", "feature_shift")}
LOOSE = GateThresholds(auc_min=0.0, lift10_min=0.0, cal_mae_max=1.0, champion_margin=0.01)


def seeded(n: int = 3000, seed: int = 7):
    """Labels, a strong score and a weak one (more noise on the same signal)."""
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.1, n)
    return y, y + rng.normal(0.0, 1.0, n), y + rng.normal(0.0, 4.0, n)


# ---- the comparison itself ----------------------------------------------------------------------------------------
def test_a_better_candidate_passes_with_a_positive_interval():
    y, strong, weak = seeded()
    r = compare_with_champion(y, strong, weak, champion=CHAMPION, margin=0.01, n_boot=200, seed=1)
    v = r.values
    assert r.applicable and r.passed and v["champion_applicable"] is True
    assert v["auc_vs_champion"] == pytest.approx(v["candidate_auc_on_champion_rows"] - v["champion_auc"])
    assert v["auc_vs_champion"] > 0.1 and 0 < v["champion_interval_low"] <= v["auc_vs_champion"] \
        <= v["champion_interval_high"]
    assert (v["champion_rows"], v["champion_positives"]) == (y.size, int(y.sum()))
    assert v["champion_cutoff"] == "2025-12-31" and v["champion_model_version"] == "champ1"
    assert r.detail.startswith("AUC ") and "beats the champion champ1 of 2025-12-31" in r.detail


def test_a_worse_candidate_fails_beyond_the_margin():
    y, strong, weak = seeded()
    r = compare_with_champion(y, weak, strong, champion=CHAMPION, margin=0.01, n_boot=200, seed=1)
    assert r.applicable and not r.passed
    assert r.values["auc_vs_champion"] < -0.1 and r.values["champion_interval_high"] < 0
    assert "trails the champion champ1" in r.detail and "margin 0.01" in r.detail
    # the margin decides, not the sign: a margin wider than the gap lets the candidate through
    gap = -r.values["auc_vs_champion"]
    assert compare_with_champion(y, weak, strong, champion=CHAMPION, margin=gap + 0.01, n_boot=50).passed


def test_an_equal_candidate_ties_and_passes():
    y, strong, _ = seeded()
    r = compare_with_champion(y, strong, strong.copy(), champion=CHAMPION, margin=0.0, n_boot=50)
    assert r.passed and r.values["auc_vs_champion"] == 0.0
    assert (r.values["champion_interval_low"], r.values["champion_interval_high"]) == (0.0, 0.0)
    assert "ties the champion" in r.detail


def test_not_applicable_cases_say_why():
    y, strong, weak = seeded(200)
    empty = compare_with_champion(y[:0], strong[:0], weak[:0], champion=CHAMPION, margin=0.01)
    assert not empty.applicable and empty.passed
    assert empty.detail.startswith("not applicable: no out-of-fold row of the candidate is out of the champion")
    assert "rows need a cutoff ≥ 2025-12-31" in empty.detail
    one_class = compare_with_champion(np.zeros(50, int), strong[:50], weak[:50], champion=CHAMPION, margin=0.01)
    assert not one_class.applicable and "one class only (0 positives)" in one_class.detail
    assert one_class.values["champion_comparison"] == one_class.detail
    none = champion_not_applicable("no promoted model of this division")
    assert none.values["champion_applicable"] is False and none.values["champion_cutoff"] is None
    assert none.values["champion_comparison"] == "not applicable: no promoted model of this division"


# ---- who the champion is, which rows ------------------------------------------------------------------------------
def _row(cutoff: dt.date, status: str, version: str | None = None) -> dict:
    return {"cutoff_date": cutoff, "status": status, "model_version": version}


def test_the_champion_is_the_newest_earlier_promoted_model():
    rows = [_row(dt.date(2025, 6, 30), PROMOTED, "old"), _row(dt.date(2025, 9, 30), PROMOTED, "mid"),
            _row(dt.date(2025, 12, 31), RETAINED, "lost"), _row(dt.date(2026, 1, 31), HELD, "bad"),
            _row(dt.date(2026, 2, 28), SKIPPED), _row(C, PROMOTED, "self"),
            _row(dt.date(2026, 6, 30), PROMOTED, "late")]
    assert current_champion(rows, C)["model_version"] == "mid"  # not retained / held / skipped / itself / later
    assert current_champion(rows[2:5], C) is None


def test_rows_out_of_the_champions_sample_start_at_its_own_cutoff():
    """Not just after its last training cutoff (2025-06-30): a row at 2025-09-30 has its label window (2025-09-30,
    2026-03-31] overlapping the champion's training labels (2025-06-30, 2025-12-31]; from 2025-12-31 on, none."""
    cutoffs = [dt.date(2025, 6, 30), dt.date(2025, 9, 30), dt.date(2025, 12, 31), dt.date(2026, 3, 31)]
    assert out_of_champion_sample(cutoffs, CHAMPION).tolist() == [False, False, True, True]


def test_find_champion_checks_its_file(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"champion model")
    champ = CHAMPION | {"model_path": str(path), "model_version": model_file_version(path)}
    span = {"looked_from": dt.date(2025, 3, 31), "looked_to": dt.date(2026, 2, 28)}
    assert find_champion([champ], C, **span) == (champ, None)
    assert find_champion([], C, **span) == (None, "no promoted model of this division at the cutoffs "
                                                  "2025-03-31..2026-02-28 (look-back)")
    path.write_bytes(b"rewritten since")  # a retrain of the champion's partition stopped half way
    found, why = find_champion([champ], C, **span)
    assert found is champ and why.startswith("the champion of 2025-12-31 cannot serve: model file")


# ---- the gate, the verdict, what serves ---------------------------------------------------------------------------
def _champion_miss():
    y, strong, weak = seeded()
    return compare_with_champion(y, weak, strong, champion=CHAMPION, margin=0.01, n_boot=50)


def test_gate_held_only_by_the_champion_is_marked_so():
    good = {"auc": 0.8, "lift_at_10": 3.0, "cal_mae": 0.02}
    g = evaluate_gate(good, LOOSE, champion=_champion_miss())
    assert not g.passed and g.champion_only
    assert g.misses[0].startswith("trails the champion beyond the margin: AUC")
    assert g.values["champion_applicable"] is True and g.values["auc_vs_champion"] < 0
    # another miss as well: no longer the champion alone
    both = evaluate_gate(good | {"cal_mae": 0.5}, GateThresholds(cal_mae_max=0.1), champion=_champion_miss())
    assert not both.passed and not both.champion_only and len(both.misses) == 2
    # champion_gate off: shown, never gates
    off = evaluate_gate(good, LOOSE, champion=_champion_miss(), champion_gate=False)
    assert off.passed and off.values["auc_vs_champion"] < 0
    # not applicable: passes, with the reason in the values (never a silent pass)
    na = evaluate_gate(good, LOOSE, champion=champion_not_applicable("no promoted model of this division"))
    assert na.passed and na.values["champion_comparison"].startswith("not applicable: no promoted model")


def test_verdict_retained_keeps_the_champion_serving():
    status, reason = verdict(False, "trails the champion beyond the margin: AUC …", PASS_ALL, champion_only=True,
                             champion=CHAMPION)
    assert status == RETAINED
    assert reason == ("promotion gate: trails the champion beyond the margin: AUC …; the champion model champ1 of "
                      "2025-12-31 keeps serving")
    failed = PASS_ALL | {"static_scan": {"status": "FAIL"}}
    assert verdict(False, "x", failed, champion_only=True, champion=CHAMPION)[0] == HELD  # leakage: nothing serves
    assert verdict(False, "x", PASS_ALL)[0] == HELD


def test_scoring_serves_the_champion_of_a_retained_row_only_from_its_very_file(tmp_path):
    path = tmp_path / "champ.joblib"
    path.write_bytes(b"champion")
    retained = {"status": RETAINED, "model_version": "cand", "model_path": "/m/cand.joblib", "gate_passed": False,
                "serving_model_version": model_file_version(path), "serving_model_path": str(path),
                "serving_cutoff": dt.date(2025, 12, 31), "reason": "promotion gate: trails the champion"}
    assert unpublished_reason(retained) is None
    assert serving_model(retained) == {"model_version": model_file_version(path), "model_path": str(path),
                                       "cutoff": dt.date(2025, 12, 31)}
    path.write_bytes(b"changed")
    assert unpublished_reason(retained).startswith("champion model (serving for the retained cand) file")
    held = {"status": HELD, "model_version": "x", "reason": "promotion gate: auc"}
    assert serving_model(held) is None and unpublished_reason(held) == "model held: promotion gate: auc"
    # a promoted row written before the serving columns existed serves itself
    old = {"status": PROMOTED, "model_version": "v1", "model_path": "/m/v1", "cutoff_date": C}
    assert serving_model(old) == {"model_version": "v1", "model_path": "/m/v1", "cutoff": C}


def test_below_chance_diagnosis_leads_the_gate_detail():
    y, strong, _ = seeded(800)
    folds = np.arange(y.size) % 4
    peers = compare_with_peers(y, -strong, {"monetary": strong}, margin=0.0, n_boot=50, folds=folds)
    g = evaluate_gate({"auc": 0.3, "lift_at_10": 0.2, "cal_mae": 0.05}, GateThresholds(), peers)
    assert g.values["below_chance"].startswith("cross-validated AUC") and "4 of 4 folds below chance" in g.detail
    assert g.detail.startswith(f"{BELOW_CHANCE}: cross-validated AUC ") and "auc 0.3000 < 0.55" in g.detail
    status, reason = verdict(g.passed, g.detail, PASS_ALL)
    assert status == HELD and reason.startswith("promotion gate: below chance: cross-validated AUC")
    assert GateResult(True).detail == "all gates passed"


# ---- the record of a trained model with a champion ----------------------------------------------------------------
class StandInChampion:
    """A champion that scores rows by their `f1` feature."""

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return frame.get_column("f1").cast(pl.Float64).to_numpy()


OLD_CHAMPION = CHAMPION | {"cutoff_date": dt.date(2025, 6, 30), "training_cutoffs": "2024-09-30,2024-12-31",
                           "serving_model_version": "champ1", "serving_model_path": "/m/champ/model.joblib",
                           "serving_cutoff": dt.date(2025, 6, 30)}


def _model_with_oof(candidate_good: bool) -> StandInModel:
    """Out-of-fold rows of two training cutoffs; only the second is out of the champion's (of 2025-06-30) sample."""
    y, strong, weak = seeded(600, seed=11)
    cutoffs = [dt.date(2025, 3, 31)] * 300 + [dt.date(2025, 9, 30)] * 300
    oof = pl.DataFrame({"customer_id": [f"c{i}" for i in range(600)], "cutoff_date": cutoffs,
                        "fold": np.arange(600) % 4,
                        "label": y, "score_calibrated": strong if candidate_good else weak})
    return StandInModel(GOOD, oof), pl.DataFrame({"customer_id": oof["customer_id"], "cutoff_date": cutoffs,
                                                  "f1": weak if candidate_good else strong, "f2": [0.0] * 600,
                                                  "label": y})


@pytest.mark.parametrize("candidate_good", [True, False])
def test_model_record_against_the_champion(candidate_good):
    model, frame = _model_with_oof(candidate_good)
    rec = record(model, cutoff=C, frame=frame, gate_thresholds=LOOSE, champion=OLD_CHAMPION,
                 champion_model=StandInChampion(), champion_note=None)
    v = rec.gate.values
    assert v["champion_rows"] == 300  # only the 2025-09-30 rows: labels the champion of 2025-06-30 never saw
    out = model.oof.filter(pl.col("cutoff_date") == dt.date(2025, 9, 30))
    assert v["champion_positives"] == int(out["label"].sum())
    row = rec.registry.row(0, named=True)
    if candidate_good:
        assert rec.status == PROMOTED and v["auc_vs_champion"] > 0
        assert (row["serving_model_version"], row["serving_cutoff"], row["serving_model_path"]) == (
            "abc123", C, "/m/model.joblib")
    else:
        assert rec.status == RETAINED and v["auc_vs_champion"] < -0.01 and rec.gate.champion_only
        assert rec.reason.endswith("the champion model champ1 of 2025-06-30 keeps serving")
        assert (row["serving_model_version"], row["serving_cutoff"], row["serving_model_path"]) == (
            "champ1", dt.date(2025, 6, 30), "/m/champ/model.joblib")
        assert row["model_version"] == "abc123" and row["gate_passed"] is False
    assert rec.card["status"] == rec.status and rec.card["gate"]["champion_rows"] == 300


def test_model_record_without_a_champion_says_so():
    model, frame = _model_with_oof(True)
    rec = record(model, cutoff=C, frame=frame, gate_thresholds=LOOSE, champion=None,
                 champion_note="no promoted model of this division at the cutoffs 2025-03-31..2026-02-28 (look-back)")
    assert rec.status == PROMOTED and rec.gate.values["champion_applicable"] is False
    assert rec.gate.values["champion_comparison"] == ("not applicable: no promoted model of this division at the "
                                                      "cutoffs 2025-03-31..2026-02-28 (look-back)")


# ---- defaults ------------------------------------------------------------------------------------------------------
def test_defaults_are_relative_with_low_floors(tmp_path):
    """Relative by default: the peer gate; the absolute floors only say "better than chance"; calibration stays a
    gate. The champion gate is off by default (at a cadence shorter than the label window it never applies, and its
    declared read splits a native partition run in two). The shipped config and the class defaults agree."""
    expected = {"auc_min": 0.55, "lift10_min": 1.2, "cal_mae_max": 0.10, "peer_margin": 0.02, "champion_margin": 0.02,
                "peer_gate": True, "champion_gate": False, "champion_lookback_months": 12, "auc_above_chance": True}
    shipped = load_settings(DEFAULT_CONFIG_PATH, home=tmp_path).models.gates
    for gates in (GateSettings(), shipped):
        assert {k: getattr(gates, k) for k in expected} == expected
    assert 0.5 < expected["auc_min"] < 0.6 and 1.0 <= expected["lift10_min"] <= 1.2
    # a margin is a tolerance for noise, well under the paired interval's typical half-width at demo size
    assert expected["peer_margin"] <= 0.02 and expected["champion_margin"] <= 0.02


def test_metrics_summary_joins_forward_results_to_the_serving_model():
    """A retained row's forward metrics are its champion's scores (the version that served); a registry written
    before the serving columns existed still joins its promoted rows."""
    from gosales_assets.core.reports import metrics_summary

    metrics = {k: [0.8] * 3 for k in ("auc", "pr_auc", "brier", "lift_at_10", "rev_lift_at_10", "cal_mae",
                                      "base_rate")}
    cutoffs = [dt.date(2025, 3, 31), dt.date(2025, 6, 30), dt.date(2025, 9, 30)]
    old = pl.DataFrame({"division": ["A"] * 3, "cutoff_date": cutoffs, "status": [PROMOTED, RETAINED, HELD],
                        "reason": ["r"] * 3, "model_version": ["v1", "v2", "v3"], "model_type": ["x"] * 3,
                        "calibration_method": ["s"] * 3, "training_cutoffs": ["t"] * 3, "train_rows": [1] * 3,
                        "train_positives": [1] * 3, "gate_passed": [True, False, False], "gate_detail": ["d"] * 3,
                        **metrics})
    new = old.with_columns(pl.Series("serving_model_version", [None, "v1", None], dtype=pl.String),
                           pl.Series("serving_cutoff", [None, cutoffs[0], None], dtype=pl.Date))
    forward = pl.DataFrame({"division": ["A"] * 2, "cutoff_date": cutoffs[:2], "model_version": ["v1", "v1"],
                            **{k: [0.7, 0.75] for k in metrics}, "positives": [3, 4], "rows": [10, 10],
                            "flagged_segments": [0, 0]})
    out = metrics_summary(new, forward)
    assert out["serving_model_version"].to_list() == ["v1", "v1", None]
    assert out["fwd_auc"].to_list() == [0.7, 0.75, None]
    # the train-vs-forward gap is one model's: none where the champion served
    assert out["auc_train_minus_forward"].to_list()[1:] == [None, None]
    assert out["auc_train_minus_forward"][0] == pytest.approx(0.1)
    assert metrics_summary(old, forward)["fwd_auc"].to_list() == [0.7, None, None]
