"""Metrics against hand-computed values on tiny arrays (the arithmetic is written next to each check)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.metrics import (
    base_rate,
    brier,
    calibration_bins,
    calibration_mae,
    capacity_thresholds,
    gains_table,
    lift_at_k,
    metric_summary,
    pr_auc,
    rank_order,
    revenue_weighted_lift_at_k,
    roc_auc,
    top_count,
)

Y5 = np.array([1, 0, 1, 0, 0])
P5 = np.array([0.9, 0.8, 0.7, 0.3, 0.1])


def test_roc_auc_hand():
    # pairs (pos, neg) = 2 * 3 = 6; pos 0.9 beats 0.8, 0.3, 0.1 (3); pos 0.7 beats 0.3, 0.1, loses to 0.8 (2)
    assert roc_auc(Y5, P5) == pytest.approx(5 / 6)
    # ties count one half: pos 0.5 vs neg 0.5 -> 0.5, vs neg 0.2 -> 1; pos 0.8 beats both -> 2; (3.5) / 4
    assert roc_auc([1, 0, 1, 0], [0.5, 0.5, 0.8, 0.2]) == pytest.approx(0.875)
    assert roc_auc([1, 1, 0], [0.1, 0.2, 0.9]) == pytest.approx(0.0)  # every pair inverted


def test_pr_auc_hand():
    # ranked: 0.9(+) 0.8(-) 0.7(+) 0.3(-) 0.1(-); thresholds give (recall, precision):
    # (0.5, 1), (0.5, 1/2), (1, 2/3), (1, 2/4), (1, 2/5) -> AP = 0.5*1 + 0*0.5 + 0.5*(2/3) + 0 + 0 = 5/6
    assert pr_auc(Y5, P5) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # tied rows enter together: t=0.8 -> (R 0.5, P 1); t=0.5 -> 2 TP, 1 FP (R 1, P 2/3); AP = 0.5 + 0.5*2/3
    assert pr_auc([1, 0, 1, 0], [0.5, 0.5, 0.8, 0.2]) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_auc_matches_sklearn_on_random_data():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300), 2)  # many ties
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert pr_auc(y, p) == pytest.approx(average_precision_score(y, p))


def test_brier_and_base_rate_hand():
    # squared errors: 0.1^2, 0.8^2, 0.3^2, 0.3^2, 0.1^2 = .01 + .64 + .09 + .09 + .01 = .84; / 5
    assert brier(Y5, P5) == pytest.approx(0.168)
    assert base_rate(Y5) == pytest.approx(0.4)  # 2 / 5
    assert base_rate([]) is None
    assert brier([], []) is None


def test_top_count_is_exact_ceil():
    assert top_count(30, 10) == 3  # 30 * 10 / 100 = 3 exactly, never 4 by float error
    assert top_count(7, 10) == 1  # ceil(0.7)
    assert top_count(10, 25) == 3  # ceil(2.5)
    assert top_count(1000, 0.1) == 1
    assert top_count(5, 100) == 5
    with pytest.raises(ValueError):
        top_count(10, 0)


def test_lift_at_k_hand():
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0])  # base rate 3/10
    p = np.array([0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert lift_at_k(y, p, 10) == pytest.approx((1 / 1) / 0.3)  # top 1 = row 0 (+)
    assert lift_at_k(y, p, 20) == pytest.approx((1 / 2) / 0.3)  # top 2 = rows 0, 1
    assert lift_at_k(y, p, 25) == pytest.approx((1 / 3) / 0.3)  # top ceil(2.5) = 3 rows
    assert lift_at_k(y, p, 40) == pytest.approx((2 / 4) / 0.3)  # rows 0..3 hold 2 positives
    assert lift_at_k(y, p, 100) == pytest.approx(1.0)
    # the score order, not the row order, decides: reversing both arrays changes nothing
    assert lift_at_k(y[::-1], p[::-1], 20) == pytest.approx((1 / 2) / 0.3)
    assert lift_at_k([0, 0, 0], [0.1, 0.2, 0.3], 10) is None  # no positives -> undefined


def test_lift_ties_are_broken_by_stable_row_order():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.5, 0.5, 0.5, 0.5])
    assert list(rank_order(p)) == [0, 1, 2, 3]
    assert lift_at_k(y, p, 25) == pytest.approx(0.0)  # top 1 = row 0 (label 0)
    assert lift_at_k(y, p, 50) == pytest.approx((1 / 2) / 0.5)  # rows 0, 1
    assert lift_at_k(y[::-1], p, 25) == pytest.approx(2.0)  # now row 0 is a positive: 1 / 0.5


def test_revenue_weighted_lift_hand():
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    rev = np.array([100.0, 50.0, 300.0, -10.0, 600.0])
    # realized (positives only, negatives clipped to 0) = [100, 0, 300, 0, 600], total 1000
    assert revenue_weighted_lift_at_k(y, p, rev, 20) == pytest.approx((100 / 1000) / 0.2)  # top 1
    assert revenue_weighted_lift_at_k(y, p, rev, 40) == pytest.approx((100 / 1000) / 0.4)  # top 2
    assert revenue_weighted_lift_at_k(y, p, rev, 60) == pytest.approx((400 / 1000) / 0.6)  # top 3
    assert revenue_weighted_lift_at_k(y, p, rev, 100) == pytest.approx(1.0)
    # a positive with negative net revenue realises nothing: top 1 captures 0 of 200
    assert revenue_weighted_lift_at_k([1, 1], [0.9, 0.1], [-50.0, 200.0], 50) == pytest.approx(0.0)
    assert revenue_weighted_lift_at_k([0, 0], [0.9, 0.1], [10.0, 20.0], 50) is None


def test_calibration_bins_and_mae_hand():
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.9, 1.0, 0.25])
    y = np.array([0, 0, 1, 1, 1, 0, 0])
    tab = calibration_bins(y, p, 4)
    # width 0.25: floor(4p) -> 0.1:0, 0.2:0, 0.3:1, 0.6:2, 0.9:3, 1.0:4->3 (last bin closed), 0.25:1 (lower edge)
    assert tab["bin"].to_list() == [0, 1, 2, 3]
    assert tab["count"].to_list() == [2, 2, 1, 2]
    assert tab["mean_predicted"].to_list() == pytest.approx([0.15, 0.275, 0.6, 0.95])
    assert tab["observed"].to_list() == pytest.approx([0.0, 0.5, 1.0, 0.5])
    assert tab["bin_lower"].to_list() == pytest.approx([0.0, 0.25, 0.5, 0.75])
    # MAE = (2*|.15-0| + 2*|.275-.5| + 1*|.6-1| + 2*|.95-.5|) / 7 = (.3 + .45 + .4 + .9) / 7
    assert calibration_mae(y, p, 4) == pytest.approx(2.05 / 7)
    # empty bins are left out
    assert calibration_bins([0, 1], [0.05, 0.07], 10)["bin"].to_list() == [0]
    with pytest.raises(ValueError):
        calibration_bins([0], [1.5], 10)


def test_gains_table_hand():
    n = 20
    p = np.linspace(1.0, 0.05, n)  # strictly descending: rank r = row r
    y = np.zeros(n, dtype=int)
    y[[0, 1, 2, 5, 10]] = 1  # 5 positives, base rate 0.25
    g = gains_table(y, p)
    assert g["decile"].to_list() == list(range(1, 11))
    assert g["count"].to_list() == [2] * 10
    # decile 1 = ranks 0-1 (2 pos), 2 = 2-3 (1), 3 = 4-5 (1), 6 = 10-11 (1)
    assert g["positives"].to_list() == [2, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert g["rate"].to_list()[:3] == pytest.approx([1.0, 0.5, 0.5])
    assert g["lift"].to_list()[:3] == pytest.approx([4.0, 2.0, 2.0])  # rate / 0.25
    assert g["cumulative_capture"].to_list() == pytest.approx([0.4, 0.6, 0.8, 0.8, 0.8, 1.0, 1, 1, 1, 1])
    # 15 rows: decile of rank r = floor(10 r / 15) + 1 -> sizes 2,1,2,1,...
    g15 = gains_table(np.r_[1, np.zeros(14, dtype=int)], np.linspace(1, 0, 15))
    assert g15["count"].to_list() == [2, 1, 2, 1, 2, 1, 2, 1, 2, 1]
    assert g15["cumulative_capture"].to_list()[0] == pytest.approx(1.0)


def test_capacity_thresholds_hand():
    p = np.array([0.3, 1.0, 0.1, 0.8, 0.5, 0.9, 0.2, 0.7, 0.4, 0.6])
    t = capacity_thresholds(p, [10, 25, 100])
    # n = 10: ceil(1) = 1 -> highest (1.0); ceil(2.5) = 3 -> third highest (0.8); all 10 -> lowest (0.1)
    assert t["n_selected"].to_list() == [1, 3, 10]
    assert t["probability_cutoff"].to_list() == pytest.approx([1.0, 0.8, 0.1])
    assert t["capacity_pct"].to_list() == [10.0, 25.0, 100.0]


def test_metric_summary_keys_and_values():
    rev = np.array([100.0, 0.0, 300.0, 0.0, 0.0])
    m = metric_summary(Y5, P5, rev, ks=(5, 10, 20), n_bins=10)
    assert set(m) == {"auc", "pr_auc", "brier", "lift_at_5", "lift_at_10", "lift_at_20", "rev_lift_at_5",
                      "rev_lift_at_10", "rev_lift_at_20", "cal_mae", "base_rate", "n", "positives"}
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["n"] == 5 and m["positives"] == 2
    # n = 5: top ceil(0.5) = 1 row (0.9, +) for 5% and 10%: 1 / 0.4 = 2.5
    assert m["lift_at_10"] == pytest.approx(2.5)
    # rev: top 1 row captures 100 of 400 -> 0.25 / 0.10
    assert m["rev_lift_at_10"] == pytest.approx(2.5)
    # bins of width .1: each p alone in its bin -> |p - y| averaged = (.1 + .8 + .3 + .3 + .1) / 5
    assert m["cal_mae"] == pytest.approx(1.6 / 5)
    assert isinstance(m["auc"], float) and isinstance(m["n"], int)
    m2 = metric_summary(Y5, P5, None, ks=(5, 20))
    assert "lift_at_10" in m2 and m2["rev_lift_at_10"] is None  # lift@10 always reported


def test_degenerate_inputs_do_not_crash():
    m = metric_summary(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.4]), np.zeros(4))
    assert m["auc"] is None and m["pr_auc"] is None
    assert m["lift_at_10"] is None and m["rev_lift_at_10"] is None
    assert m["base_rate"] == 0.0 and m["positives"] == 0
    m1 = metric_summary(np.ones(3, dtype=int), np.array([0.1, 0.2, 0.3]))
    assert m1["auc"] is None and m1["pr_auc"] is None and m1["lift_at_10"] == pytest.approx(1.0)
    empty = metric_summary(np.array([], dtype=int), np.array([]))
    assert empty["n"] == 0 and empty["auc"] is None and empty["brier"] is None and empty["cal_mae"] is None
    assert gains_table([], []).height == 0


def test_input_validation():
    with pytest.raises(ValueError):
        roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError):
        brier([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError):
        lift_at_k([0, 1], [0.1, 0.2], 150)
    assert isinstance(calibration_bins([0, 1], [0.1, 0.9]), pl.DataFrame)
    assert not math.isnan(brier([0, 1], [0.0, 1.0]))
