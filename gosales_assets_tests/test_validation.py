"""Forward validation: metrics wrapper, top-K scenarios and segment flags against hand-computed values."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.metrics import metric_summary
from gosales_assets.core.validation import segment_performance, topk_scenarios, validation_metrics

# 10 rows, already in descending score order
P10 = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
Y10 = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1, 0])
# realized revenue counts only buyers (y = 1), negative amounts as 0: row 2 (50, y=0) and row 3 (-20) give 0
R10 = np.array([100.0, 50.0, -20.0, 0.0, 0.0, 300.0, 0.0, 0.0, 40.0, 0.0])


def test_validation_metrics_is_metric_summary():
    assert validation_metrics(Y10, P10, R10) == metric_summary(Y10, P10, R10)
    m = validation_metrics(Y10, P10, ks=(20.0,), n_bins=5)
    assert "lift_at_20" in m and "lift_at_10" in m and m["rev_lift_at_20"] is None
    assert m["n"] == 10 and m["positives"] == 4


def test_topk_scenarios_exact():
    out = topk_scenarios(Y10, P10, R10, pcts=(10, 20, 25, 50, 100))
    assert out.columns == ["capacity_pct", "contacted", "expected_buyers", "realized_buyers",
                           "realized_revenue"]
    assert out["capacity_pct"].to_list() == [10.0, 20.0, 25.0, 50.0, 100.0]
    # contacted = ceil(10 * k / 100): 1, 2, ceil(2.5) = 3, 5, 10
    assert out["contacted"].to_list() == [1, 2, 3, 5, 10]
    # expected buyers = Σ p of the contacted:
    #   0.9 | 0.9+0.8 = 1.7 | +0.7 = 2.4 | +0.6+0.5 = 3.5 | all ten = 3.5+0.4+0.3+0.2+0.1+0.05 = 4.55
    assert out["expected_buyers"].to_list() == pytest.approx([0.9, 1.7, 2.4, 3.5, 4.55])
    # realized buyers = Σ y of the contacted: 1 | 1 | 2 | 2 | 4
    assert out["realized_buyers"].to_list() == [1, 1, 2, 2, 4]
    # realized revenue: 100 | 100 (row 2 is no buyer) | 100 (row 3: -20 -> 0) | 100 | 100+300+40 = 440
    assert out["realized_revenue"].to_list() == pytest.approx([100.0, 100.0, 100.0, 100.0, 440.0])


def test_topk_scenarios_input_order_irrelevant_and_no_revenue():
    perm = np.array([7, 2, 9, 0, 5, 3, 8, 1, 6, 4])
    a = topk_scenarios(Y10, P10, R10, pcts=(10, 20, 25, 50, 100))
    b = topk_scenarios(Y10[perm], P10[perm], R10[perm], pcts=(10, 20, 25, 50, 100))
    assert a.equals(b)
    c = topk_scenarios(Y10, P10, None, pcts=(30,))
    assert c.row(0) == (30.0, 3, pytest.approx(2.4), 2, None)


def _segment_frame() -> pl.DataFrame:
    # region "good"     : p = [0.9, 0.1 x9], y = [1, 0 x9]       -> top 1 row is a buyer
    # region "reversed" : p = [0.9, 0.1 x9], y = [0, 1, 0 x8]    -> top 1 row is not
    # region "miscal"   : p = [0.5, 0.4 x9], y = [1, 0 x9]       -> ranks well, scores far too high
    # region "tiny"     : p = [0.9, 0.1, 0.1], y = [0, 1, 0]     -> 3 rows only
    p = [0.9] + [0.1] * 9 + [0.9] + [0.1] * 9 + [0.5] + [0.4] * 9 + [0.9, 0.1, 0.1]
    y = [1] + [0] * 9 + [0, 1] + [0] * 8 + [1] + [0] * 9 + [0, 1, 0]
    region = ["good"] * 10 + ["reversed"] * 10 + ["miscal"] * 10 + ["tiny"] * 3
    size = ["small"] * 20 + [None] * 13
    return pl.DataFrame({"y": y, "p": p, "region": region, "size": size})


def test_segment_performance_flags():
    # Overall (33 rows, 4 buyers, base rate 4/33):
    #   lift@10: top ceil(3.3) = 4 rows = the three 0.9 rows (good#0 y1, reversed#0 y0, tiny#0 y0, stable
    #   order) + miscal#0 (0.5, y1): precision 2/4 -> lift 0.5 / (4/33) = 33/8 = 4.125
    #   cal MAE: bin 9 (3 rows, p 0.9, obs 1/3): 3 * 0.5667 = 1.7; bin 1 (20 rows, p 0.1, obs 2/20): 0;
    #            bin 5 (1 row, 0.5 vs 1): 0.5; bin 4 (9 rows, 0.4 vs 0): 3.6  -> 5.8 / 33 = 0.17576
    out = segment_performance(_segment_frame(), ["region", "size"], min_rows=10, lift_tolerance=0.5,
                              cal_tolerance=0.1)
    assert out.columns == ["segment_col", "segment", "rows", "positives", "base_rate", "lift_at_10",
                           "cal_mae", "flag", "reason"]
    rows = {(r["segment_col"], r["segment"]): r for r in out.iter_rows(named=True)}
    assert list(rows) == [("region", "good"), ("region", "miscal"), ("region", "reversed"), ("region", "tiny"),
                          ("size", "(missing)"), ("size", "small")]

    good = rows[("region", "good")]
    # lift: top 1 of 10 is a buyer: 1 / 0.1 = 10; cal: (1 * |0.9-1| + 9 * |0.1-0|) / 10 = 0.1
    assert (good["rows"], good["positives"], good["base_rate"]) == (10, 1, 0.1)
    assert good["lift_at_10"] == pytest.approx(10.0) and good["cal_mae"] == pytest.approx(0.1)
    assert good["flag"] is False and good["reason"] == ""

    rev = rows[("region", "reversed")]
    # lift 0 / 4.125 = 0 < 0.5 -> flagged; cal (0.9 + 9 * |0.1 - 1/9|) / 10 = (0.9 + 0.1) / 10 = 0.1 (fine)
    assert rev["lift_at_10"] == 0.0 and rev["cal_mae"] == pytest.approx(0.1)
    assert rev["flag"] is True and "lift@10" in rev["reason"] and "calibration" not in rev["reason"]

    mis = rows[("region", "miscal")]
    # lift 10 (fine); cal (|0.5-1| + 9 * 0.4) / 10 = 0.41; 0.41 - 0.17576 = 0.234 > 0.1 -> flagged
    assert mis["lift_at_10"] == pytest.approx(10.0) and mis["cal_mae"] == pytest.approx(0.41)
    assert mis["flag"] is True and "calibration" in mis["reason"] and "lift" not in mis["reason"]

    tiny = rows[("region", "tiny")]
    # lift 0 and cal (0.9 + 2 * |0.1 - 0.5|) / 3 = 0.5667 are both far off, but 3 rows < 10: reported only
    assert tiny["rows"] == 3 and tiny["lift_at_10"] == 0.0 and tiny["cal_mae"] == pytest.approx(1.7 / 3)
    assert tiny["flag"] is False and tiny["reason"].startswith("too small")

    small = rows[("size", "small")]
    # good + reversed, 20 rows, 2 buyers: top 2 = both 0.9 rows, 1 buyer -> 0.5 / 0.1 = 5 (ratio 1.21)
    # cal: bin 9 2 * |0.9 - 0.5| = 0.8; bin 1: 18 * |0.1 - 1/18| = 0.8 -> 1.6 / 20 = 0.08
    assert small["lift_at_10"] == pytest.approx(5.0) and small["cal_mae"] == pytest.approx(0.08)
    assert small["flag"] is False

    miss = rows[("size", "(missing)")]
    # miscal + tiny, 13 rows, 2 buyers: top ceil(1.3) = 2 = tiny#0 (0.9, y0), miscal#0 (0.5, y1)
    #   lift 0.5 / (2/13) = 3.25 (ratio 0.79, fine)
    # cal: 0.9 + 0.5 + 9 * 0.4 + 2 * |0.1 - 0.5| = 5.8 -> 5.8 / 13 = 0.44615 > 0.17576 + 0.1 -> flagged
    assert miss["rows"] == 13 and miss["lift_at_10"] == pytest.approx(3.25)
    assert miss["cal_mae"] == pytest.approx(5.8 / 13) and miss["flag"] is True


def test_segment_performance_no_positives_and_missing_columns():
    f = pl.DataFrame({"y": [1, 0, 0, 0], "p": [0.6, 0.2, 0.3, 0.1], "seg": ["a", "a", "b", "b"]})
    out = segment_performance(f, ["seg"], min_rows=2)
    b = out.filter(pl.col("segment") == "b").row(0, named=True)
    assert b["positives"] == 0 and b["lift_at_10"] is None and "no positives" in b["reason"]
    with pytest.raises(ValueError, match="lacks columns"):
        segment_performance(f, ["industry"])


def test_engine_and_every_peer_on_the_same_rows_with_the_paired_interval():
    from gosales_assets.core.metrics import lift_at_k, roc_auc
    from gosales_assets.core.peers import PEERS
    from gosales_assets.core.validation import capture_at, engine_vs_peers

    assert capture_at(Y10, P10, 20.0) == 0.25  # top 2 rows hold 1 of the 4 buyers
    assert capture_at(np.zeros(10, int), P10) is None
    rng = np.random.default_rng(4)
    y = (rng.random(1500) < 0.1).astype(int)
    engine = y * 0.6 + rng.random(1500)       # informative
    peers = {"recency": y * 0.3 + rng.random(1500), "frequency": rng.random(1500),
             "monetary": y * 0.1 + rng.random(1500), "rfm_logistic": None}  # no fit: no scores
    out = engine_vs_peers(y, engine, peers, "monetary", n_boot=200, seed=1)
    orderings = out["orderings"]
    assert orderings.get_column("ordering").to_list() == ["engine", *PEERS]
    assert orderings.get_column("best_peer").to_list() == [False, False, False, True, False]
    assert orderings.item(0, "auc") == pytest.approx(roc_auc(y, engine))
    assert out["recency_auc"] == pytest.approx(roc_auc(y, peers["recency"]))
    assert out["recency_lift_at_10"] == pytest.approx(lift_at_k(y, peers["recency"], 10.0))
    assert out["rfm_logistic_auc"] is None and out["rfm_logistic_capture_at_10"] is None
    # the interval is against the peer chosen beforehand (monetary), not the best in hindsight (recency)
    assert out["best_peer"] == "monetary" and out["best_peer_forward"] == "recency"
    assert out["best_peer_auc"] == out["monetary_auc"]
    assert out["auc_vs_best_peer"] == pytest.approx(roc_auc(y, engine) - roc_auc(y, peers["monetary"]))
    assert out["auc_vs_best_peer_low"] < out["auc_vs_best_peer"] < out["auc_vs_best_peer_high"]
    assert out["auc_vs_best_peer_low"] > 0
    # nothing published: the peers are still measured, the difference is not
    alone = engine_vs_peers(y, None, peers, "monetary", n_boot=50)
    assert alone["auc_vs_best_peer"] is None and alone["monetary_auc"] == out["monetary_auc"]
    assert alone["orderings"].item(0, "auc") is None
