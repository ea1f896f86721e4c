"""p_icp_pct: ties in the calibrated probability are ordered by the other blend signals (hand-computed)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.whitespace_signals import PCT_TIE_BREAK, percentile_uniformity, percentile_within_division
from gosales_assets_tests.test_ranking import ICP, icp_frame, run


def test_tie_break_orders_equal_scores_and_keeps_full_ties_shared():
    df = pl.DataFrame({
        "division": ["X"] * 5 + ["Y"],
        "p_icp": [0.1, 0.2, 0.2, 0.3, 0.2, 0.7],
        "lift_norm": [0.0, 0.5, 0.1, 0.0, 0.5, 0.0],
        "als_norm": [0.3, 0.2, 0.9, 0.1, 0.2, None],
    })  # fmt: skip
    out = percentile_within_division(df, tie_break=("lift_norm", "als_norm"))["p_icp_pct"].to_list()
    # X: 0.1 -> 1; 0.2/lift 0.1 -> 2; the two 0.2/lift 0.5/als 0.2 rows tie on every key -> (3 + 4) / 2; 0.3 -> 5
    assert out == [0.2, 0.7, 0.4, 1.0, 0.7, 1.0]
    # without a tie-break: the three 0.2 rows share rank 3 (the pre-existing behaviour, row order kept)
    assert percentile_within_division(df)["p_icp_pct"].to_list() == [0.2, 0.6, 0.6, 1.0, 0.6, 1.0]
    with pytest.raises(ValueError, match="lacks"):
        percentile_within_division(df, tie_break=("EV_norm",))


def test_tie_break_makes_stepwise_scores_uniform():
    """90 of 100 pairs share one calibrated score (an isotonic step); a continuous affinity signal orders them."""
    rng = np.random.default_rng(0)
    df = pl.DataFrame({"division": ["T"] * 100, "p_icp": [0.1] * 90 + [0.2] * 10,
                       "lift_norm": [0.0] * 100, "als_norm": rng.random(100), "EV_norm": [0.3] * 100})
    plain = percentile_within_division(df)
    broken = percentile_within_division(df, tie_break=PCT_TIE_BREAK)
    assert percentile_uniformity(plain).item(0, "max_deviation") > 0.4
    assert percentile_uniformity(broken).item(0, "max_deviation") == pytest.approx(0.01)
    # the score order is untouched: every 0.2 pair stays above every 0.1 pair
    b = broken
    assert b.filter(pl.col("p_icp") == 0.2)["p_icp_pct"].min() > b.filter(pl.col("p_icp") == 0.1)["p_icp_pct"].max()
    # among the tied pairs the percentile follows the tie-break signal
    tied = b.filter(pl.col("p_icp") == 0.1).sort("als_norm")
    assert tied["p_icp_pct"].to_list() == [i / 100 for i in range(1, 91)]


def test_rank_whitespace_breaks_probability_ties_by_lift():
    """Division T candidates c1 (owns A: lift 3 -> lift_norm 1), c2 (owns B: 0.5) and c4 (owns nothing: 0) get
    the same icp_score 0.30; c5 (0.06) and c3 (0.50) stay below / above them."""
    tied = dict(ICP)
    for c in ("c1", "c2", "c4"):
        tied[(c, "T")] = 0.30
    keys = sorted(tied)
    icp = pl.DataFrame({"customer_id": [k[0] for k in keys], "division": [k[1] for k in keys],
                        "icp_score": [tied[k] for k in keys]})
    ranked = run(icp=icp).ranked.filter(pl.col("division") == "T")
    pct = dict(zip(ranked["customer_id"], ranked["p_icp_pct"], strict=True))
    assert pct == {"c5": 0.2, "c4": 0.4, "c2": 0.6, "c1": 0.8, "c3": 1.0}
    lift = dict(zip(ranked["customer_id"], ranked["lift_norm"], strict=True))
    assert (lift["c4"], lift["c2"], lift["c1"]) == (0.0, 0.5, 1.0)
    # distinct scores: the same percentiles as before the tie-break existed
    plain = run(icp=icp_frame()).ranked.filter(pl.col("division") == "T")
    assert dict(zip(plain["customer_id"], plain["p_icp_pct"], strict=True)) == {
        "c5": 0.2, "c2": 0.4, "c4": 0.6, "c1": 0.8, "c3": 1.0}
