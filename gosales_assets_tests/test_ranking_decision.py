"""core/ranking_decision.py and the orderings of core/ranking.py: capture@K% per ordering by count and by revenue,
the realized outcomes of earlier lists, the paired bootstrap and the champion rule (hand-made frames, values
hand-computed)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.charts import ranking_decision_chart
from gosales_assets.core.contracts import check_contract
from gosales_assets.core.explain import FALLBACK_REASON, LEGACY_REASON
from gosales_assets.core.ranking import ORDERING_COLUMNS, ORDERINGS, rank_whitespace
from gosales_assets.core.ranking_decision import (
    DECISION_COLUMNS,
    decide,
    decision_frame,
    decision_schema,
    paired_bootstrap,
    realized_outcomes,
    window_captures,
    window_rows,
)
from gosales_assets.settings import RankingSettings, WhitespaceSettings
from gosales_assets_tests.test_ranking import CUSTOMERS, OWNED, icp_frame, run

D = dt.date
C1, C2, C3 = D(2024, 3, 31), D(2024, 6, 30), D(2024, 9, 30)


# ---------------------------------------------------------------------------------------------------
# the orderings of one list (core.ranking)
# ---------------------------------------------------------------------------------------------------
REVENUE = pl.DataFrame({"customer_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
                        "revenue": [1000.0, 4000.0, 500.0, 0.0, 200.0, -50.0]})
RECENCY = pl.DataFrame({"customer_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
                        "recency_days": [0.0, 360.0, 180.0, 10.0, 0.0, 0.0]})


def test_every_ordering_is_a_column_and_the_list_follows_the_champion():
    blend = run(customer_revenue=REVENUE, recency=RECENCY)
    by_pair = {(c, d): s for c, d, s in blend.ranked.select("customer_id", "division", "score").iter_rows()}
    for ordering in ORDERINGS:
        r = run(ordering=ordering, customer_revenue=REVENUE, recency=RECENCY).ranked
        assert r.get_column("ordering").unique().to_list() == [ordering]
        # every ordering's score is there whatever the champion, and the blend's is the blend
        assert {(c, d): s for c, d, s in r.select("customer_id", "division", "score_blend").iter_rows()} == by_pair
        assert (r["score_p_icp"] == r["p_icp"]).all()
        assert np.allclose(r["score_expected_value"].to_numpy(), (r["p_icp"] * r["EV"]).to_numpy(), rtol=0, atol=0)
        # the list's order is the champion's (ties: the usual chain), `score` is its score on [0, 1]
        key = r.get_column(ORDERING_COLUMNS[ordering]).to_numpy()
        assert np.all(np.diff(key) <= 0) and r.get_column("rank").to_list() == list(range(1, 14))
        top = key.max()
        assert np.allclose(r["score"].to_numpy(), key / (top if ordering in ("expected_value", "legacy") else 1.0))
        assert r["score"].is_between(0, 1).all()
    # p_icp alone, across divisions: the 13 candidates by probability (hand-sorted from ICP)
    p = run(ordering="p_icp").ranked
    assert list(zip(p["customer_id"], p["division"])) == [
        ("c3", "T"), ("c1", "T"), ("c4", "T"), ("c1", "B"), ("c5", "A"), ("c6", "B"), ("c2", "T"), ("c4", "B"),
        ("c6", "A"), ("c2", "A"), ("c5", "T"), ("c4", "A"), ("c5", "B")]
    assert p["score"].to_list() == p["p_icp"].to_list()
    # T has no EV history (EV 0): under expected_value its pairs come last, among themselves by p_icp
    ev = run(ordering="expected_value").ranked
    assert ev.tail(5).select("customer_id", "division").rows() == [
        ("c3", "T"), ("c1", "T"), ("c4", "T"), ("c2", "T"), ("c5", "T")]
    assert ev.item(0, "score") == 1.0
    # legacy: max(revenue, 0) x 0.5 ** (recency / 180): c2 4000 x 0.25 = 1000 ties c1 1000 x 1 (c1 first: p_icp),
    # c3 500 x 0.5 = 250, c5 200, c4 and c6 0
    leg = run(ordering="legacy", customer_revenue=REVENUE, recency=RECENCY).ranked
    assert dict(zip(leg["customer_id"], leg["score_legacy"])) == {"c1": 1000.0, "c2": 1000.0, "c3": 250.0,
                                                                 "c4": 0.0, "c5": 200.0, "c6": 0.0}
    assert leg.head(4).select("customer_id", "division").rows() == [("c1", "T"), ("c1", "B"), ("c2", "T"),
                                                                    ("c2", "A")]
    # without the legacy inputs: no legacy score, and no legacy ordering
    assert run().ranked.get_column("score_legacy").null_count() == 13
    with pytest.raises(ValueError, match="legacy ordering needs"):
        run(ordering="legacy")
    with pytest.raises(ValueError, match="unknown ordering"):
        run(ordering="alphabetical")


def test_reasons_follow_the_champion():
    p = run(ordering="p_icp").ranked
    for pct, reason in p.select("p_icp_pct", "nba_reason").iter_rows():  # likelihood only, nothing else
        assert reason == FALLBACK_REASON if pct < 0.8 else reason.startswith("High likelihood (top")
        assert "affinity" not in reason and "similar" not in reason and "EV ~" not in reason and "+" not in reason
    ev = run(ordering="expected_value").ranked
    assert all("affinity" not in r for r in ev["nba_reason"]) and any("EV ~$" in r for r in ev["nba_reason"])
    leg = run(ordering="legacy", customer_revenue=REVENUE, recency=RECENCY).ranked
    assert set(leg["nba_reason"]) == {LEGACY_REASON}
    # the blend cites what the blend weighs (affinity from an owned division, for instance)
    assert any("affinity from" in r for r in run().ranked["nba_reason"])


def test_the_initial_champion_of_the_config_is_the_default_ordering():
    s = WhitespaceSettings(ranking=RankingSettings(initial_champion="p_icp"))
    r = rank_whitespace(icp_frame(), OWNED, settings=s, customers=CUSTOMERS)
    assert r.ordering == "p_icp" and r.ranked["score"].to_list() == sorted(r.ranked["p_icp"], reverse=True)
    with pytest.raises(ValueError, match="not among the competitors"):
        RankingSettings(initial_champion="legacy")
    assert RankingSettings(competitors=["blend", "legacy"], initial_champion="legacy").initial_champion == "legacy"


def test_a_deferred_ordering_is_asked_for_once_and_gives_the_list_of_the_given_one():
    # The whitespace step decides the champion while the list computes its signals: the list takes a call for its
    # ordering and makes it only to order its rows. Same list, log and reasons as with the ordering given.
    asked = []

    def champion() -> str:
        asked.append("expected_value")
        return "expected_value"

    given, deferred = run(ordering="expected_value"), run(ordering=champion)
    assert asked == ["expected_value"] and deferred.ordering == "expected_value"
    assert deferred.ranked.equals(given.ranked) and deferred.decision_log == given.decision_log
    # checked once known, as a given one is before any work
    with pytest.raises(ValueError, match="unknown ordering"):
        run(ordering=lambda: "alphabetical")
    with pytest.raises(ValueError, match="legacy ordering needs"):
        run(ordering=lambda: "legacy")
    # a decision that failed fails the list (its error, not a default ordering)
    def failed() -> str:
        raise RuntimeError("the ranking decision failed")

    with pytest.raises(RuntimeError, match="the ranking decision failed"):
        run(ordering=failed)


# ---------------------------------------------------------------------------------------------------
# earlier lists as windows, and what happened in them
# ---------------------------------------------------------------------------------------------------
def list_rows(cutoff: dt.date, pairs: list[tuple[str, str]], **extra) -> pl.DataFrame:
    n = len(pairs)
    return pl.DataFrame({"cutoff_date": [cutoff] * n, "customer_id": [c for c, _ in pairs],
                         "division": [d for _, d in pairs], "score_source": ["model"] * n,
                         "p_icp": [0.5] * n, "EV": [1.0] * n, "last_activity_date": [None] * n,
                         **{c: [0.5] * n for c in ORDERING_COLUMNS.values()}} | extra,
                        schema_overrides={"last_activity_date": pl.Date})


def test_window_rows_keep_model_rows_of_closed_windows_per_division():
    old = list_rows(D(2023, 12, 31), [("z", "X")]).with_columns(pl.lit(None, dtype=pl.Float64).alias("score_legacy"))
    peer = list_rows(C1, [("p", "X")], score_source=["peer:recency"])
    lists = pl.concat([old, list_rows(C1, [("a", "X"), ("b", "Y")]), peer, list_rows(C2, [("c", "X")])])
    rows, notes = window_rows(lists, as_of=C3, window_months={"X": 6, "Y": 12})
    # C1 + 6 = 2024-09-30 ≤ C3: X closed; C1 + 12 and C2 + 6 are later; the peer row is no ordering's
    assert rows.select("window_cutoff", "window_end", "customer_id", "division").rows() == [
        (C1, C3, "a", "X")]
    assert notes == [{"window_cutoff": "2023-12-31", "left_out": "written before the orderings were stored "
                                                                 "(score_legacy empty)"}]
    # a table without the columns at all (lists written before they existed)
    rows, notes = window_rows(lists.drop("score_p_icp"), as_of=C3, window_months={"X": 6, "Y": 12})
    assert rows.height == 0 and len(notes) == 3 and "no score_p_icp" in notes[0]["left_out"]


def fact_lines(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"invoice_date": pl.Date, "customer_id": pl.String, "division": pl.String,
                                      "sku": pl.String, "revenue": pl.Float64}, orient="row")


def test_realized_outcomes_follow_the_label_rules_and_the_cutoff():
    rows = pl.DataFrame({"window_cutoff": [C2] * 5, "window_end": [D(2024, 12, 31)] * 5,
                         "customer_id": ["a", "b", "c", "d", "e"], "division": ["X", "X", "X", "X", "Y"]})
    fact = fact_lines([
        (D(2024, 8, 1), "a", "X", "X-1", 100.0),    # bought
        (D(2024, 8, 1), "b", "X", "X-1", 100.0),    # bought and returned: net 0
        (D(2024, 9, 1), "b", "X", "X-1", -100.0),
        (D(2024, 8, 1), "c", "X", "TRAVEL", 500.0),  # denylisted SKU
        (D(2024, 6, 30), "d", "X", "X-1", 300.0),   # on the cutoff day: before the window
        (D(2025, 1, 15), "d", "X", "X-1", 200.0),   # after the window (and after as_of)
        (D(2024, 12, 31), "e", "Y", "Y-1", 40.0),   # the window's last day counts
        (D(2024, 8, 1), "a", "Y", "Y-1", 999.0),    # a pair that is not listed
    ])
    out = realized_outcomes(rows, fact, as_of=D(2024, 12, 31), sku_denylist=["TRAVEL"])
    assert out.select("customer_id", "realized", "realized_revenue").rows() == [
        ("a", 1, 100.0), ("b", 0, 0.0), ("c", 0, 0.0), ("d", 0, 0.0), ("e", 1, 40.0)]
    above_50 = realized_outcomes(rows, fact, as_of=D(2024, 12, 31), min_net_revenue=50.0, sku_denylist=["TRAVEL"])
    assert above_50.get_column("realized").to_list() == [1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="not known yet"):
        realized_outcomes(rows, fact, as_of=D(2024, 11, 30))


# ---------------------------------------------------------------------------------------------------
# capture@K% per ordering
# ---------------------------------------------------------------------------------------------------
def window(cutoff: dt.date, tops: dict[str, list[str]], revenue: dict[str, float], n: int = 100) -> pl.DataFrame:
    """`n` pairs u00.. of division X at `cutoff`; each ordering scores its `tops` customers 1.0 and the rest
    0.5 − i/1000 (so its top K% starts with `tops`); `revenue` holds the buyers and what they spent."""
    ids = [f"u{i:02d}" for i in range(n)]
    scores = {ORDERING_COLUMNS[o]: [1.0 if u in tops.get(o, []) else 0.5 - i / 1000 for i, u in enumerate(ids)]
              for o in ORDERINGS}
    return pl.DataFrame({"window_cutoff": [cutoff] * n, "window_end": [cutoff] * n, "customer_id": ids,
                         "division": ["X"] * n, "p_icp": [0.1] * n, "EV": [1.0] * n,
                         "last_activity_date": [None] * n, **scores,
                         "realized": [int(u in revenue) for u in ids],
                         "realized_revenue": [revenue.get(u, 0.0) for u in ids]},
                        schema_overrides={"last_activity_date": pl.Date, "realized": pl.Int8})


def test_capture_by_count_and_by_revenue_per_ordering():
    # 10 pairs, K = 20 % -> the top 2 of each ordering; buyers a (100), c (50), e (10), j (1000)
    ids = list("abcdefghij")
    frame = pl.DataFrame({
        "window_cutoff": [C1] * 10, "window_end": [C3] * 10, "customer_id": ids, "division": ["X"] * 10,
        "p_icp": [0.1] * 10, "EV": [1.0] * 10, "last_activity_date": [None] * 10,
        "score_blend": [0.9 - i / 10 for i in range(10)],  # a, b first
        "score_p_icp": [i / 10 for i in range(10)],  # j, i first
        "score_expected_value": [1.0 if u in "cd" else 0.0 for u in ids],
        "score_legacy": [1.0 if u in "ef" else 0.0 for u in ids],
        "realized": [int(u in "acej") for u in ids],
        "realized_revenue": [{"a": 100.0, "c": 50.0, "e": 10.0, "j": 1000.0}.get(u, 0.0) for u in ids],
    }, schema_overrides={"last_activity_date": pl.Date, "realized": pl.Int8})
    table, evidence = window_captures(frame, 20.0)
    got = {r["ordering"]: (r["top_n"], r["captured_purchases"], r["capture_count"], r["captured_revenue"],
                           r["capture_revenue"]) for r in table.iter_rows(named=True)}
    assert got == {"blend": (2, 1, 0.25, 100.0, pytest.approx(100 / 1160)),
                   "p_icp": (2, 1, 0.25, 1000.0, pytest.approx(1000 / 1160)),
                   "expected_value": (2, 1, 0.25, 50.0, pytest.approx(50 / 1160)),
                   "legacy": (2, 1, 0.25, 10.0, pytest.approx(10 / 1160))}
    assert set(table["purchases"]) == {4} and set(table["revenue"]) == {1160.0}
    [w] = evidence
    assert w.customers == ["a", "c", "e", "j"] and w.total["revenue"].tolist() == [100.0, 50.0, 10.0, 1000.0]
    assert w.captured["count"]["p_icp"].tolist() == [0.0, 0.0, 0.0, 1.0]
    # ties in an ordering's score: the list's own chain (p_icp desc, ..., customer_id asc)
    tied = frame.with_columns(pl.lit(0.3).alias("score_blend"), pl.Series("p_icp", [0.1] * 9 + [0.2]))
    assert window_captures(tied, 20.0)[0].filter(pl.col("ordering") == "blend").item(0, "captured_purchases") == 2


# ---------------------------------------------------------------------------------------------------
# the decision rule
# ---------------------------------------------------------------------------------------------------
BUYERS = {f"u{i}": 100.0 for i in range(50, 70)}  # 20 buyers
CLEAR = {  # p_icp finds 8 of them in its top 10, the blend and expected value 2, legacy none
    "p_icp": [f"u{i}" for i in range(50, 58)] + ["u90", "u91"],
    "blend": ["u50", "u51"] + [f"u{i}" for i in range(80, 88)],
    "expected_value": ["u50", "u51"] + [f"u{i}" for i in range(80, 88)],
    "legacy": [f"u{i}" for i in range(80, 90)],
}


def evidence_of(*frames: pl.DataFrame, k: float = 10.0):
    return window_captures(pl.concat(list(frames)), k)


def settings(**kw) -> RankingSettings:
    return RankingSettings(**({"initial_champion": "blend", "windows": 3, "bootstrap_reps": 1000} | kw))


def test_a_clearly_better_challenger_over_n_windows_becomes_champion():
    captures, evidence = evidence_of(*(window(c, CLEAR, BUYERS) for c in (C1, C2, C3)))
    d = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend",
               champion_before_source="the decision at 2024-12-31", settings=settings())
    assert d.champion == "p_icp" and d.changed and d.windows_used == [C1, C2, C3]
    assert d.mean_capture["p_icp"]["revenue"] == pytest.approx(0.4)
    assert d.mean_capture["blend"]["count"] == pytest.approx(0.1)
    c = d.comparisons["p_icp"]
    assert c["diff"] == pytest.approx(0.3) and 0.0 < c["ci_low"] < 0.3 < c["ci_high"] < 0.6
    # the three windows hold the same 20 buyers (as overlapping windows do): one piece of evidence, so the interval
    # is the one of a single window (to the last bit of a mean of three equal numbers), not narrower
    single = paired_bootstrap(evidence[:1], "blend", ["p_icp"], objective="revenue", reps=1000, seed=14)
    assert single.keys() == {"p_icp"} and single["p_icp"] == pytest.approx(c, rel=1e-12)
    # expected value finds exactly the blend's buyers: a difference of 0 in every draw
    assert d.comparisons["expected_value"] == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert d.reason.startswith("changed: p_icp beat blend on capture@10% by revenue over the last 3 closed windows "
                               "(2024-03-31, 2024-06-30, 2024-09-30): +0.300 [")
    frame = decision_frame(d, run_id="r1", competitors=settings().competitors)
    assert frame.columns == list(DECISION_COLUMNS)
    assert frame.select("ordering", "role").rows() == [("blend", "challenger"), ("p_icp", "champion"),
                                                      ("expected_value", "challenger"), ("legacy", "shadow")]
    assert set(frame["champion"]) == {"p_icp"} and frame["changed"].all() and set(frame["windows_used"]) == {3}
    assert frame.filter(pl.col("ordering") == "blend").item(0, "diff_vs_champion") is None  # the champion before
    assert check_contract(frame, decision_schema()).passed
    two = frame.with_columns(pl.lit("champion").alias("role"))
    assert not check_contract(two, decision_schema()).passed  # exactly one champion
    assert ranking_decision_chart(captures, d)[:8] == b"\x89PNG\r\n\x1a\n"


def test_better_but_the_interval_includes_zero_keeps_the_champion():
    # 4 buyers a window: p_icp finds 2 of them, 0 and 2 (blend: 1, 1, 1) -> +0.083 on average, noisy
    runs = [(["u50", "u51"], ["u52"], range(50, 54)), ([], ["u54"], range(54, 58)),
            (["u58", "u59"], ["u60"], range(58, 62))]
    frames = []
    for c, (p_top, b_top, buyers) in zip((C1, C2, C3), runs, strict=True):
        pad = lambda xs: xs + [f"u{i}" for i in range(80, 80 + 10 - len(xs))]  # noqa: E731
        frames.append(window(c, {"p_icp": pad(p_top), "blend": pad(b_top), "expected_value": pad(b_top),
                                 "legacy": pad([])}, {f"u{i}": 100.0 for i in buyers}))
    captures, evidence = evidence_of(*frames)
    d = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend",
               champion_before_source="configured", settings=settings())
    c = d.comparisons["p_icp"]
    assert c["diff"] == pytest.approx((0.5 + 0.0 + 0.5) / 3 - 0.25) and c["ci_low"] < 0 < c["ci_high"]
    assert d.champion == "blend" and not d.changed
    assert d.reason.startswith("kept: no challenger beat blend on capture@10% by revenue over the last 3 closed "
                               "windows (2024-03-31, 2024-06-30, 2024-09-30) with the interval above 0 (closest: "
                               "p_icp +0.083 [")


def test_fewer_than_n_windows_keep_the_champion_with_the_reason():
    captures, evidence = evidence_of(*(window(c, CLEAR, BUYERS) for c in (C2, C3)))
    d = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend",
               champion_before_source="configured", settings=settings())
    assert (d.champion, d.changed, d.reason) == ("blend", False, "kept: only 2 closed windows of 3")
    assert d.comparisons["p_icp"]["ci_low"] > 0  # the evidence so far is recorded all the same
    none = decide(*evidence_of(window(C1, CLEAR, BUYERS).head(0)), cutoff=C1, champion_before="blend",
                  champion_before_source="configured", settings=settings())
    assert none.reason == "kept: only 0 closed windows of 3" and none.comparisons == {}
    assert none.mean_capture["p_icp"] == {"count": None, "revenue": None}
    frame = decision_frame(none, run_id="r1", competitors=settings().competitors)
    assert frame.height == 4 and frame["windows_used"].to_list() == [0] * 4 and frame["capture_count"].null_count() == 4
    assert check_contract(frame, decision_schema()).passed
    assert ranking_decision_chart(pl.DataFrame(schema=captures.schema), none)[:4] == b"\x89PNG"
    # only the last N windows count: an old window where blend won does not hold p_icp back
    old = window(D(2023, 12, 31), {**CLEAR, "p_icp": CLEAR["legacy"], "blend": CLEAR["p_icp"]}, BUYERS)
    captures, evidence = evidence_of(old, *(window(c, CLEAR, BUYERS) for c in (C1, C2, C3)))
    d = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend", champion_before_source="x",
               settings=settings())
    assert d.windows_used == [C1, C2, C3] and d.champion == "p_icp"


def test_shadow_pinned_and_reset_champions():
    legacy_wins = {**CLEAR, "legacy": CLEAR["p_icp"], "p_icp": CLEAR["blend"]}
    captures, evidence = evidence_of(*(window(c, legacy_wins, BUYERS) for c in (C1, C2, C3)))
    d = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend", champion_before_source="x",
               settings=settings())
    # legacy is a shadow: evaluated (and clearly better) but not a competitor
    assert d.comparisons["legacy"]["ci_low"] > 0 and d.champion == "blend"
    assert d.reason.startswith("kept: no challenger beat blend")
    assert decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend", champion_before_source="x",
                  settings=settings(competitors=["blend", "legacy"])).champion == "legacy"
    captures, evidence = evidence_of(*(window(c, CLEAR, BUYERS) for c in (C1, C2, C3)))
    pinned = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend", champion_before_source="x",
                    settings=settings(champion="expected_value"))
    assert pinned.champion == "expected_value" and pinned.changed and pinned.reason.startswith("pinned:")
    assert pinned.comparisons["p_icp"]["ci_low"] > 0
    reset = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="legacy", champion_before_source="x",
                   settings=settings())
    assert reset.champion == "blend" and reset.reason.startswith("reset: legacy no longer competes")


def test_the_objective_decides_count_or_revenue():
    # per window (other customers each time) 10 small buyers (10 each) and 4 big ones (1,000 each): p_icp finds the
    # small ones, expected value the big ones, the blend 2 small and 1 big
    frames = []
    for k, c in enumerate((C1, C2, C3)):
        small = [f"u{20 + 20 * k + i}" for i in range(10)]
        big = [f"u{30 + 20 * k + i}" for i in range(4)]
        pad = [f"u{i}" for i in range(90, 100)]
        tops = {"p_icp": small, "expected_value": big + pad[:6], "blend": small[:2] + big[:1] + pad[:7], "legacy": pad}
        frames.append(window(c, tops, dict.fromkeys(small, 10.0) | dict.fromkeys(big, 1000.0)))
    captures, evidence = evidence_of(*frames)
    by_count = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend",
                      champion_before_source="x", settings=settings(objective="count"))
    by_revenue = decide(captures, evidence, cutoff=D(2025, 3, 31), champion_before="blend",
                        champion_before_source="x", settings=settings(objective="revenue"))
    assert by_count.champion == "p_icp" and by_count.comparisons["p_icp"]["diff"] == pytest.approx(10 / 14 - 3 / 14)
    assert by_revenue.champion == "expected_value"
    assert by_revenue.comparisons["expected_value"]["diff"] == pytest.approx(4000 / 4100 - 1020 / 4100)
    assert by_revenue.comparisons["p_icp"]["diff"] < 0 < by_count.comparisons["p_icp"]["diff"]


def test_the_bootstrap_and_the_decision_are_deterministic():
    captures, evidence = evidence_of(*(window(c, CLEAR, BUYERS) for c in (C1, C2, C3)))
    args = dict(cutoff=D(2025, 3, 31), champion_before="blend", champion_before_source="x")
    a = decide(captures, evidence, settings=settings(), **args)
    b = decide(*evidence_of(*(window(c, CLEAR, BUYERS) for c in (C1, C2, C3))), settings=settings(), **args)
    assert a.to_dict() == b.to_dict()
    other = decide(captures, evidence, settings=settings(seed=99), **args)
    assert other.comparisons["p_icp"]["diff"] == a.comparisons["p_icp"]["diff"]
    # another seed, other draws: the interval moves by a lattice step at most (20 buyers a window)
    assert abs(other.comparisons["p_icp"]["ci_low"] - a.comparisons["p_icp"]["ci_low"]) <= 0.05
    # the interval is a percentile interval of paired draws: a wider level gives a wider interval
    wide = paired_bootstrap(evidence, "blend", ["p_icp"], objective="count", reps=1000, seed=14, confidence=0.99)
    narrow = paired_bootstrap(evidence, "blend", ["p_icp"], objective="count", reps=1000, seed=14, confidence=0.8)
    assert wide["p_icp"]["ci_low"] < narrow["p_icp"]["ci_low"] < narrow["p_icp"]["ci_high"] < wide["p_icp"]["ci_high"]


def test_the_resampled_counts_are_bootstrap_resamples():
    from gosales_assets.core.ranking_decision import _resample_counts

    n, draws = 50, 20_000
    counts = _resample_counts(np.random.default_rng(3), n, draws)
    assert counts.shape == (draws, n) and counts.min() >= 0 and (counts.sum(axis=1) == n).all()
    assert np.array_equal(counts[:10], _resample_counts(np.random.default_rng(3), n, 10))  # seeded, chunk-free
    # multinomial(n, 1/n) per resample: each customer drawn 1 time on average, variance 1 - 1/n, left out of a
    # resample with probability (1 - 1/n)^n (~0.364)
    assert counts.mean() == 1.0
    assert abs(counts.var() - (1 - 1 / n)) < 0.02
    assert abs((counts == 0).mean() - (1 - 1 / n) ** n) < 0.005
    # and the customers are exchangeable: none is drawn more often than chance allows
    assert np.abs(counts.mean(axis=0) - 1.0).max() < 0.05
