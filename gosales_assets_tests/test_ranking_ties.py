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


def test_first_rows_by_keeps_exactly_the_rows_sort_ranked_puts_first():
    """The judged lists' top K% per ordering (`core.ranking_decision.window_captures`) from one sort of the
    tie-break chain: the same rows as `sort_ranked(...).head(n)`, with ties and nulls in every key."""
    import datetime as dt

    from gosales_assets.core.ranking import first_rows_by, sort_ranked

    rng = np.random.default_rng(3)
    n = 4000
    grid = np.round(rng.random(n) * 5) / 5  # few score levels: ties everywhere
    frame = pl.DataFrame({
        "customer_id": [f"c{i:03d}" for i in rng.integers(0, 900, n)],
        "division": rng.choice(["A", "B", "C", "D", "E"], n),
        "p_icp": pl.Series([None if r < 0.1 else round(v * 4) / 4 for r, v in zip(rng.random(n), rng.random(n))],
                           dtype=pl.Float64),
        "EV": pl.Series([None if r < 0.2 else float(round(v * 3)) for r, v in zip(rng.random(n), rng.random(n))],
                        dtype=pl.Float64),
        "last_activity_date": [None if r < 0.3 else dt.date(2025, 1, 1) + dt.timedelta(days=int(r * 40))
                               for r in rng.random(n)],
        "score_blend": grid,
        "score_p_icp": pl.Series([None if r < 0.05 else v for r, v in zip(rng.random(n), grid[::-1])],
                                 dtype=pl.Float64),
        "score_expected_value": rng.random(n), "score_legacy": np.zeros(n),
    }).unique(subset=["customer_id", "division"], keep="first", maintain_order=True)  # a list's pairs are unique
    by = ["score_blend", "score_p_icp", "score_expected_value", "score_legacy"]
    for k in (1, 37, frame.height // 10, frame.height, frame.height + 5):
        got = first_rows_by(frame, by, k)
        indexed = frame.with_row_index("_i")
        for col in by:
            expected = sort_ranked(indexed, by=col).head(k).get_column("_i").sort().to_list()
            assert got[col].arg_true().to_list() == expected, (col, k)
    # Without a last-activity column (it sorts as all null) the same holds.
    bare = frame.drop("last_activity_date")
    assert first_rows_by(bare, ["score_blend"], 50)["score_blend"].arg_true().to_list() == \
        sort_ranked(bare.with_row_index("_i"), by="score_blend").head(50).get_column("_i").sort().to_list()
    # A list's model rows may carry their source; peer-ordered rows (a tier after every model row) are refused.
    assert first_rows_by(frame.with_columns(pl.lit("model").alias("score_source")), by, 80)["score_legacy"].equals(
        first_rows_by(frame, by, 80)["score_legacy"])
    with pytest.raises(ValueError, match="model rows only"):
        first_rows_by(frame.with_columns(pl.lit("peer:recency").alias("score_source")), by, 5)
