"""The simple peers and the gate relative to them: scores, the paired interval, the verdict and the diagnosis of a
below-chance model, on seeded data where the answer is known."""

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.gates import evaluate_gate
from gosales_assets.core.metrics import roc_auc
from gosales_assets.core.peers import (
    compare_with_peers,
    heuristic_score,
    paired_auc_difference,
    peer_scores,
    rfm_logistic_oof,
)
from gosales_assets.settings import GateThresholds


def _frame(n: int = 2000, seed: int = 5) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Buying decays with the log of the time since the last purchase and grows with 12-month revenue; a fifth never
    bought."""
    rng = np.random.default_rng(seed)
    recency = rng.exponential(200, n)
    revenue = rng.lognormal(8, 1.2, n)
    never = rng.random(n) < 0.2
    logit = -2.0 - 0.8 * (np.log1p(recency) - 5) + 0.5 * (np.log(revenue) - 8)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    y[never] = (rng.random(never.sum()) < 0.02).astype(int)
    frame = pl.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "rfm__all__recency_days__all": np.where(never, np.nan, recency),
        "rfm__all__txn_count__12m": np.where(never, 0, rng.poisson(3, n)),
        "rfm__all__revenue_sum__12m": np.where(never, 0.0, revenue),
        "life__all__tenure_days__all": rng.uniform(30, 3000, n),
    }).with_columns(pl.col("rfm__all__recency_days__all").fill_nan(None))
    folds = np.arange(n) % 4
    return frame, y, folds


def test_heuristic_peers_rank_as_a_rep_would():
    frame, y, _ = _frame()
    rec = heuristic_score(frame, "recency")
    never = frame.get_column("rfm__all__recency_days__all").is_null().to_numpy()
    assert (rec[never] < rec[~never].min()).all()  # never bought: last
    assert roc_auc(y, rec) > 0.65  # recent buyers buy again (planted)
    assert roc_auc(y, heuristic_score(frame, "monetary")) > 0.55
    with pytest.raises(ValueError, match="needs the feature"):
        heuristic_score(frame.drop("rfm__all__txn_count__12m"), "frequency")


def test_rfm_logistic_is_out_of_fold_and_deterministic():
    frame, y, folds = _frame()
    a = rfm_logistic_oof(frame, y, folds)
    assert np.array_equal(a, rfm_logistic_oof(frame, y, folds)) and np.isfinite(a).all()
    # it combines both planted drivers, so it beats each single heuristic
    assert roc_auc(y, a) > max(roc_auc(y, heuristic_score(frame, p)) for p in ("recency", "monetary"))
    # out of fold: a row's score does not depend on its own label
    flipped = y.copy()
    flipped[0] = 1 - flipped[0]
    assert rfm_logistic_oof(frame, flipped, folds)[0] == a[0]


def test_paired_interval_brackets_the_difference():
    frame, y, _ = _frame()
    good, noise = heuristic_score(frame, "recency"), np.random.default_rng(1).random(y.size)
    diff, lo, hi = paired_auc_difference(y, good, noise, n_boot=300, seed=2)
    assert diff == pytest.approx(roc_auc(y, good) - roc_auc(y, noise)) and lo < diff < hi and lo > 0
    assert paired_auc_difference(np.zeros(5, int), good[:5], noise[:5]) == (None, None, None)


def test_gate_holds_a_candidate_that_trails_the_best_peer_and_diagnoses_below_chance():
    frame, y, folds = _frame()
    peers = peer_scores(frame, y, folds)
    thresholds = GateThresholds(auc_min=0.0, lift10_min=0.0, cal_mae_max=1.0, peer_margin=0.01)
    metrics = {"auc": 0.7, "lift_at_10": 2.0, "cal_mae": 0.01}
    strong = peers["rfm_logistic"] + 1e-9 * np.random.default_rng(3).random(y.size)  # ties the best peer
    ok = compare_with_peers(y, strong, peers, margin=0.01, n_boot=200, seed=1, folds=folds)
    assert ok.passed and ok.best_peer == "rfm_logistic" and abs(ok.difference) < 0.01 and ok.diagnosis is None
    assert evaluate_gate(metrics, thresholds, ok).passed

    weak = heuristic_score(frame, "monetary")  # a worse ordering than recency or the RFM regression
    held = compare_with_peers(y, weak, peers, margin=0.01, n_boot=200, seed=1, folds=folds)
    gate = evaluate_gate(metrics, thresholds, held)
    assert not held.passed and held.difference < -0.01 and held.interval[1] < 0
    assert not gate.passed and "trails the best simple peer" in gate.detail and "rfm_logistic" in gate.detail
    assert gate.values["best_peer"] == "rfm_logistic" and gate.values["auc_vs_best_peer"] < 0

    backwards = -peers["rfm_logistic"]
    flagged = compare_with_peers(y, backwards, peers, margin=0.01, n_boot=100, seed=1, folds=folds)
    assert flagged.candidate_auc < 0.5 and not flagged.passed
    assert "below chance" in flagged.diagnosis and "4 of 4 folds below chance" in flagged.diagnosis
    assert "rank these buyers backwards" in flagged.diagnosis
    assert "below chance" in evaluate_gate(metrics, thresholds, flagged).values["below_chance"]
