"""Unit tests for the whitespace ranking modules (core/whitespace_signals.py, ranking.py, eligibility.py,
capacity.py, ranking_evaluation.py) on hand-made frames (values are hand-computed)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from gosales_assets.core import whitespace_signals
from gosales_assets.core.basket import basket_lift_signals
from gosales_assets.core.capacity import (
    capacity_count,
    capacity_grid,
    capacity_summary,
    division_cap,
    select_capacity,
)
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.eligibility import ELIGIBILITY_RULES, apply_eligibility
from gosales_assets.core.explain import FALLBACK_REASON, check_reasons
from gosales_assets.core.ranking import effective_weights, rank_whitespace, sort_ranked
from gosales_assets.core.ranking_evaluation import (
    capture_at_k,
    fit_challenger,
    jaccard_top_n,
    legacy_heuristic,
    score_challenger,
    shadow_report,
    stability,
)
from gosales_assets.core.whitespace_signals import (
    affinity_signals,
    candidates,
    expected_value,
    normalize_als,
    normalize_lift,
    percentile_uniformity,
    percentile_within_division,
)
from gosales_assets.settings import WhitespaceSettings

DEFAULT_W = {"p_icp": 0.6, "lift": 0.2, "als": 0.1, "ev": 0.1}


def rules_frame(rows: list[tuple[str, str, float, bool]]) -> pl.DataFrame:
    """(antecedent, consequent, lift, passes) -> a rules frame with the columns basket produces."""
    return pl.DataFrame(
        [(a, c, 0.5, 0.5, lift, p) for a, c, lift, p in rows],
        schema={"antecedent": pl.String, "consequent": pl.String, "support": pl.Float64,
                "confidence": pl.Float64, "lift": pl.Float64, "passes_thresholds": pl.Boolean},  # fmt: skip
        orient="row",
    )


def pairs(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"customer_id": pl.String, "division": pl.String}, orient="row")


# ---------------------------------------------------------------------------------------------------
# a small world: 6 customers x 3 divisions, owned A/B/T combinations
# ---------------------------------------------------------------------------------------------------
DIVS = ["A", "B", "T"]
OWNED = pairs([("c1", "A"), ("c2", "B"), ("c3", "A"), ("c3", "B"), ("c6", "T")])
RULES = rules_frame([
    ("A", "T", 3.0, True), ("B", "T", 2.0, True), ("A", "B", 1.5, True),
    ("B", "A", 0.8, True), ("T", "A", 4.0, False), ("T", "B", 1.2, True),
])  # fmt: skip
ICP = {
    ("c1", "B"): 0.30, ("c1", "T"): 0.40, ("c2", "A"): 0.10, ("c2", "T"): 0.20, ("c3", "T"): 0.50,
    ("c4", "A"): 0.05, ("c4", "B"): 0.15, ("c4", "T"): 0.35, ("c5", "A"): 0.25, ("c5", "B"): 0.02,
    ("c5", "T"): 0.06, ("c6", "A"): 0.12, ("c6", "B"): 0.22, ("c6", "T"): 0.90,
    ("c1", "A"): 0.99, ("c2", "B"): 0.99, ("c3", "A"): 0.99, ("c3", "B"): 0.99,  # owned -> dropped
}


def icp_frame(outcomes: dict | None = None) -> pl.DataFrame:
    keys = sorted(ICP)
    df = pl.DataFrame({"customer_id": [k[0] for k in keys], "division": [k[1] for k in keys],
                       "icp_score": [ICP[k] for k in keys]})  # fmt: skip
    if outcomes is not None:
        df = df.with_columns(pl.Series("bought_in_division", [outcomes.get(k, 0) for k in keys], dtype=pl.Int8))
    return df


CUSTOMERS = pl.DataFrame({
    "customer_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
    "customer_name": ["Acme Corp", "Bolt Ltd", "Cobalt Inc", "Delta LLC", "Echo GmbH", "Foxtrot SA"],
    "industry": ["Mfg", "Mfg", "Retail", "Mfg", None, "Retail"],
    "region": ["East", "West", "East", "East", None, "West"],
    "territory": ["T1", "T2", "T1", "T3", "T1", "T2"],
    "employee_band": ["1-50", "1-50", "51-200", "1-50", "1-50", "51-200"],
    "rep_id": ["r1", "r1", "r2", None, "r2", None],
    "last_activity_date": [dt.date(2024, 5, d) for d in (1, 2, 3, 4, 5, 6)],
})  # fmt: skip
ALS = pl.DataFrame({
    "customer_id": [c for c in ["c1", "c2", "c3", "c4", "c5", "c6"] for _ in DIVS],
    "division": DIVS * 6,
    "als_similarity": [0.1, 0.5, 0.9, 0.2, 0.4, 0.3, 0.0, 0.0, 0.6, 0.7, -0.2, 0.8, 0.3, 0.1, 0.2, 0.0, 0.0, 0.0],
    "als_coverage": [True] * 15 + [False] * 3,
})  # fmt: skip
EV_HISTORY = pl.DataFrame({
    "customer_id": ["x1", "x2", "x2", "x3", "x4", "x5", "x6"],
    "division": ["A", "A", "A", "A", "A", "B", "B"],
    "revenue": [100.0, 150.0, 50.0, 300.0, 1000.0, 500.0, 700.0],
    "industry": ["Mfg", "Mfg", "Mfg", "Mfg", "Retail", "Mfg", "Mfg"],
    "employee_band": ["1-50"] * 4 + ["51-200", "1-50", "1-50"],
})  # fmt: skip


def run(**kw) -> object:
    # The blend's list (these tests are about the blend; the champion orderings: test_ranking_decision).
    base = dict(rules=RULES, als=ALS, ev_history=EV_HISTORY, customers=CUSTOMERS, divisions=DIVS, ordering="blend")
    base.update(kw)
    icp = base.pop("icp", icp_frame())
    return rank_whitespace(icp, OWNED, **base)


# ---------------------------------------------------------------------------------------------------
# candidates and percentiles
# ---------------------------------------------------------------------------------------------------
def test_candidates_drop_owned_pairs():
    cand = candidates(icp_frame(), OWNED)
    got = set(cand.select("customer_id", "division").iter_rows())
    assert got == set(ICP) - set(OWNED.iter_rows())
    assert cand.height == 13  # c6 owns T
    assert cand.get_column("division").to_list() == sorted(cand.get_column("division").to_list())


def test_candidates_reject_duplicate_pairs():
    with pytest.raises(ValueError, match="duplicate"):
        candidates(pl.concat([icp_frame(), icp_frame().head(1)]), OWNED)


def test_percentile_average_rank_with_ties():
    df = pl.DataFrame({"division": ["X"] * 4 + ["Y"], "p_icp": [0.1, 0.2, 0.2, 0.3, 0.7]})
    out = percentile_within_division(df).get_column("p_icp_pct").to_list()
    assert out == [0.25, 0.625, 0.625, 1.0, 1.0]


def test_percentile_is_uniform_within_each_division():
    rng = np.random.default_rng(3)
    n = {"A": 1000, "B": 2500, "C": 400}
    df = pl.DataFrame({
        "division": [d for d, k in n.items() for _ in range(k)],
        "p_icp": np.concatenate([rng.beta(0.5, 8.0, n["A"]), rng.exponential(0.01, n["B"]), rng.random(n["C"])]),
    })  # fmt: skip
    out = percentile_within_division(df)
    for d, k in n.items():
        pct = np.sort(out.filter(pl.col("division") == d).get_column("p_icp_pct").to_numpy())
        assert pct.min() > 0 and pct.max() == 1.0
        ecdf = np.arange(1, k + 1) / k
        assert np.max(np.abs(ecdf - pct)) <= 1.0 / k + 1e-12  # KS distance to U(0,1) at its minimum
        assert abs(pct.mean() - 0.5) < 0.01
    u = percentile_uniformity(out)
    assert u.get_column("division").to_list() == ["A", "B", "C"]
    assert u.get_column("max_deviation").to_list() == pytest.approx([1 / 1000, 1 / 2500, 1 / 400])
    # an icp_scores frame (column icp_score) works too
    icp = df.rename({"p_icp": "icp_score"})
    assert percentile_within_division(icp).get_column("p_icp_pct").equals(out.get_column("p_icp_pct"))
    # heavy ties are not uniform and the check says so
    tied = percentile_within_division(pl.DataFrame({"division": ["T"] * 100, "p_icp": [0.1] * 90 + [0.2] * 10}))
    assert percentile_uniformity(tied).item(0, "max_deviation") > 0.4


# ---------------------------------------------------------------------------------------------------
# lift / ALS / EV signals
# ---------------------------------------------------------------------------------------------------
def test_affinity_signals_use_passing_rules_and_name_the_top_antecedent():
    cand = pairs([("c1", "T"), ("c2", "T"), ("c3", "T"), ("c4", "T"), ("c6", "A"), ("c6", "B"), ("c1", "B")])
    aff = affinity_signals(cand, RULES, OWNED)
    got = {(r["customer_id"], r["division"]): (r["lift"], r["top_affinity_division"]) for r in aff.iter_rows(named=True)}
    assert got[("c1", "T")] == (3.0, "A")
    assert got[("c2", "T")] == (2.0, "B")
    assert got[("c3", "T")] == (3.0, "A")  # owns A (3.0) and B (2.0): the strongest wins
    assert got[("c4", "T")] == (0.0, None)  # owns nothing
    assert got[("c6", "A")] == (0.0, None)  # T -> A lift 4.0 does NOT pass thresholds: ignored
    assert got[("c6", "B")] == (1.2, "T")
    assert got[("c1", "B")] == (1.5, "A")
    norm = normalize_lift(aff)
    by = {(r["customer_id"], r["division"]): r["lift_norm"] for r in norm.iter_rows(named=True)}
    # per division excess lift / division max: T: (3-1)/2 = 1, (2-1)/2 = 0.5; B: 0.2/0.5 and 0.5/0.5
    assert by[("c1", "T")] == 1.0 and by[("c2", "T")] == 0.5 and by[("c4", "T")] == 0.0
    assert by[("c6", "B")] == pytest.approx(0.4) and by[("c1", "B")] == 1.0
    assert by[("c6", "A")] == 0.0


@pytest.mark.parametrize("bit_divisions", [62, 0], ids=["bit_keys", "name_keys"])
def test_top_antecedent_is_the_owned_one_with_the_highest_lift_ties_alphabetical(monkeypatch, bit_divisions):
    """The top antecedent of every pair equals the first row of a sort of the owner's passing rules by lift
    (descending) then name — with equal lifts planted — on a few hundred random customers; lift and n_rules equal
    `basket_lift_signals` of the target. Both keys of a customer's owned set (bits, names) give the same."""
    monkeypatch.setattr(whitespace_signals, "_MAX_BIT_DIVISIONS", bit_divisions)
    rng = np.random.default_rng(11)
    divs = ["A", "B", "C", "D", "E", "F"]
    rules = pl.DataFrame([{"antecedent": a, "consequent": c, "lift": float(rng.choice([1.5, 2.0, 2.0, 3.0])),
                           "passes_thresholds": bool(rng.random() < 0.8)}
                          for a in divs for c in divs if a != c])
    owned = pl.DataFrame([(f"c{i}", d) for i in range(300) for d in divs if rng.random() < 0.4],
                         schema=["customer_id", "division"], orient="row")
    cand = pl.DataFrame([(f"c{i}", d) for i in range(300) for d in divs], schema=["customer_id", "division"],
                        orient="row")
    got = affinity_signals(cand, rules, owned)
    passing = rules.filter("passes_thresholds").select("antecedent", "consequent", "lift")
    expected = (owned.rename({"division": "antecedent"}).join(passing, on="antecedent")
                .filter(pl.col("antecedent") != pl.col("consequent"))
                .sort(["customer_id", "consequent", "lift", "antecedent"], descending=[False, False, True, False])
                .unique(subset=["customer_id", "consequent"], keep="first", maintain_order=True))
    want = {(r["customer_id"], r["consequent"]): r["antecedent"] for r in expected.iter_rows(named=True)}
    assert len(want) > 500 and any(r["lift"] == 2.0 for r in expected.iter_rows(named=True))
    for r in got.iter_rows(named=True):
        assert r["top_affinity_division"] == want.get((r["customer_id"], r["division"])), r
    assert got.select("customer_id", "division").equals(cand)  # the pairs' order
    lifts = pl.concat([basket_lift_signals(owned, rules, d).select("customer_id", pl.lit(d).alias("division"),
                                                                   pl.col("max_lift").alias("lift"), "n_rules")
                       for d in divs])
    both = got.join(lifts, on=["customer_id", "division"], how="left", suffix="_basket")
    assert both.select((pl.col("lift") == pl.col("lift_basket").fill_null(0.0)).all(),
                       (pl.col("n_rules") == pl.col("n_rules_basket").fill_null(0)).all()).row(0) == (True, True)
    assert got.get_column("n_rules").max() >= 3 and got.filter(pl.col("n_rules") == 0).height > 0
    # the same signals whatever the order (and repetition) of the owned rows
    shuffled = pl.concat([owned, owned.head(40)]).sample(fraction=1.0, shuffle=True, seed=3)
    assert affinity_signals(cand, rules, shuffled).equals(got)


def test_lift_below_one_is_not_affinity():
    aff = pl.DataFrame({"customer_id": ["a", "b"], "division": ["A", "A"], "lift": [0.8, 0.0]})
    assert normalize_lift(aff).get_column("lift_norm").to_list() == [0.0, 0.0]


def test_als_norm_percentile_among_covered_zero_elsewhere():
    df = pl.DataFrame({
        "division": ["X"] * 5, "als_similarity": [0.9, -0.1, 0.3, 0.99, 0.5],
        "als_coverage": [True, True, True, False, None],
    })  # fmt: skip
    assert normalize_als(df).get_column("als_norm").to_list() == [1.0, 1 / 3, 2 / 3, 0.0, 0.0]


def test_expected_value_shrinkage_and_cap_hand_computed():
    # division A customer-level revenue: x1 100, x2 150+50=200 (two events summed), x3 300 (Mfg/1-50);
    # x4 1000 (Retail/51-200). Global median of [100, 200, 300, 1000] = 250;
    # cap = linear q0.75 = 300 + 0.25 * 700 = 475.
    cand = pl.DataFrame({
        "customer_id": ["p", "q", "r", "s", "t"], "division": ["A", "A", "A", "B", "Z"],
        "industry": ["Mfg", "Retail", "Other", "Mfg", "Mfg"],
        "employee_band": ["1-50", "51-200", "1-50", "1-50", "1-50"],
    })  # fmt: skip
    out = expected_value(EV_HISTORY, cand, k=2.0, cap_quantile=0.75)
    ev = out.get_column("EV").to_list()
    # Mfg/1-50: n=3, median 200 -> (3*200 + 2*250) / 5 = 220
    assert ev[0] == pytest.approx(220.0)
    # Retail/51-200: n=1, 1000 -> (1000 + 500) / 3 = 500 -> capped at 475
    assert ev[1] == pytest.approx(475.0)
    # unseen segment -> global median
    assert ev[2] == pytest.approx(250.0)
    # division B: [500, 700], median 600, cap 0.75 -> 650; Mfg/1-50 n=2 median 600 -> 600
    assert ev[3] == pytest.approx(600.0)
    # division without history
    assert ev[4] == 0.0
    norm = out.get_column("EV_norm").to_list()
    assert norm == pytest.approx([220 / 475, 1.0, 250 / 475, 600 / 650, 0.0])
    assert out.get_column("ev_segment_n").to_list() == [3, 1, 0, 2, 0]


def test_expected_value_nets_returns():
    hist = pl.DataFrame({"customer_id": ["a", "a", "b", "c"], "division": ["A"] * 4,
                         "revenue": [100.0, -100.0, 40.0, 80.0]})  # fmt: skip
    out = expected_value(hist, pl.DataFrame({"division": ["A"]}), k=0.0, cap_quantile=1.0)
    # a nets to 0 -> not a buyer; buyers b (40), c (80): median 60, cap 80
    assert out.get_column("EV").to_list() == [60.0]
    assert out.get_column("EV_norm").to_list() == [0.75]


# ---------------------------------------------------------------------------------------------------
# coverage-aware weights
# ---------------------------------------------------------------------------------------------------
def cov(rows: list[tuple[str, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["division", "lift_coverage", "als_coverage", "ev_coverage"], orient="row")


def test_effective_weights_rules():
    w = effective_weights(DEFAULT_W, cov([
        ("full", 0.5, 0.9, 1.0),
        ("no_als", 0.5, 0.0, 1.0),
        ("no_lift", 0.0, 0.9, 1.0),
        ("thin_als", 0.5, 0.15, 1.0),
        ("nothing", 0.0, 0.0, 0.0),
    ]), als_min_coverage=0.30, lift_min_coverage=0.05)  # fmt: skip
    rows = {r["division"]: r for r in w.iter_rows(named=True)}
    for r in rows.values():
        assert r["w_p_icp"] + r["w_lift"] + r["w_als"] + r["w_ev"] == pytest.approx(1.0, abs=1e-12)
    f = rows["full"]
    assert (f["w_p_icp"], f["w_lift"], f["w_als"], f["w_ev"], f["adjusted"], f["note"]) == (0.6, 0.2, 0.1, 0.1, False, "")
    a = rows["no_als"]
    assert [a["w_p_icp"], a["w_lift"], a["w_als"], a["w_ev"]] == pytest.approx([0.6 / 0.9, 0.2 / 0.9, 0.0, 0.1 / 0.9])
    assert a["adjusted"] and "als missing" in a["note"]
    b = rows["no_lift"]
    assert [b["w_p_icp"], b["w_lift"], b["w_als"], b["w_ev"]] == pytest.approx([0.75, 0.0, 0.125, 0.125])
    t = rows["thin_als"]  # coverage 0.15 < 0.30 -> ALS weight x0.5 = 0.05, total 0.95
    assert [t["w_p_icp"], t["w_lift"], t["w_als"], t["w_ev"]] == pytest.approx([0.6 / 0.95, 0.2 / 0.95, 0.05 / 0.95, 0.1 / 0.95])
    assert "x0.500" in t["note"]
    n = rows["nothing"]
    assert [n["w_p_icp"], n["w_lift"], n["w_als"], n["w_ev"]] == [1.0, 0.0, 0.0, 0.0]


def test_effective_weights_all_to_p_icp_when_only_optional_signals_configured_and_missing():
    w = effective_weights({"p_icp": 0.0, "lift": 0.5, "als": 0.5, "ev": 0.0}, cov([("d", 0.0, 0.0, 1.0)]), 0.3, 0.05)
    assert w.row(0, named=True)["w_p_icp"] == 1.0
    assert "p_icp takes weight 1" in w.row(0, named=True)["note"]


# ---------------------------------------------------------------------------------------------------
# the ranker end to end, degradation, tie-breakers, determinism
# ---------------------------------------------------------------------------------------------------
def test_rank_whitespace_full_signals():
    res = run()
    r = res.ranked
    assert r.height == 13
    assert r.get_column("rank").to_list() == list(range(1, 14))
    for col in ("division", "customer_id", "score", "p_icp", "p_icp_pct", "lift_norm", "als_norm", "EV", "EV_norm",
                "rank", "top_affinity_division", "nba_reason", "rep_id", "region", "territory"):  # fmt: skip
        assert col in r.columns
    # score is exactly the weighted blend with the division's effective weights
    blend = (r["w_p_icp"] * r["p_icp_pct"] + r["w_lift"] * r["lift_norm"] + r["w_als"] * r["als_norm"]
             + r["w_ev"] * r["EV_norm"])  # fmt: skip
    assert np.allclose(blend.to_numpy(), r["score"].to_numpy(), atol=0, rtol=0)
    # scores are sorted descending
    s = r.get_column("score").to_numpy()
    assert np.all(np.diff(s) <= 0)
    # T: c6 owns T -> not a candidate; T candidates c1..c5, c1 highest lift
    row = r.filter((pl.col("customer_id") == "c1") & (pl.col("division") == "T")).row(0, named=True)
    assert row["lift_norm"] == 1.0 and row["top_affinity_division"] == "A"
    # division A has no passing positive-lift rule into it (B->A 0.8, T->A not passing) -> lift weight 0
    wa = res.weights.filter(pl.col("division") == "A").row(0, named=True)
    assert wa["w_lift"] == 0.0 and wa["adjusted"]
    # T: lift coverage 4/5, ALS coverage 4/5, EV history none -> EV weight 0
    wt = res.weights.filter(pl.col("division") == "T").row(0, named=True)
    assert [wt["w_p_icp"], wt["w_lift"], wt["w_als"], wt["w_ev"]] == pytest.approx([0.6 / 0.9, 0.2 / 0.9, 0.1 / 0.9, 0.0])
    json.dumps(res.decision_log)  # JSON-able
    assert {e["event"] for e in res.decision_log} >= {"normalization", "weights", "expected_value"}
    assert res.reason_violations == []


def test_degradation_without_als_and_rules():
    full = run()
    no_als = run(als=None)
    no_rules = run(rules=None)
    nothing = run(als=None, rules=None, ev_history=None)
    for res in (no_als, no_rules, nothing):
        assert res.ranked.height == full.ranked.height
        assert res.ranked.get_column("score").null_count() == 0
        w = res.weights
        assert np.allclose((w["w_p_icp"] + w["w_lift"] + w["w_als"] + w["w_ev"]).to_numpy(), 1.0)
    # no ALS: every division loses its ALS weight; division B (lift + EV + p_icp present) -> exact renormalization
    assert no_als.ranked.get_column("als_norm").to_list() == [0.0] * 13
    wb = no_als.weights.filter(pl.col("division") == "B").row(0, named=True)
    assert [wb["w_p_icp"], wb["w_lift"], wb["w_als"], wb["w_ev"]] == pytest.approx([0.6 / 0.9, 0.2 / 0.9, 0.0, 0.1 / 0.9])
    assert not any("similar" in x for x in no_als.ranked.get_column("nba_reason").to_list())
    # no rules: lift weight 0 everywhere, no affinity phrases
    assert no_rules.weights.get_column("w_lift").to_list() == [0.0, 0.0, 0.0]
    assert not any("affinity from" in x for x in no_rules.ranked.get_column("nba_reason").to_list())
    # nothing but p_icp: score == p_icp_pct, reasons cite likelihood only, others fall back
    r = nothing.ranked
    assert nothing.weights.select("w_p_icp", "w_lift", "w_als", "w_ev").rows() == [(1.0, 0.0, 0.0, 0.0)] * 3
    assert r.get_column("score").to_list() == r.get_column("p_icp_pct").to_list()
    for pct, reason in r.select("p_icp_pct", "nba_reason").iter_rows():
        assert reason == FALLBACK_REASON if pct < 0.8 else reason.startswith("High likelihood (top")
    assert FALLBACK_REASON in r.get_column("nba_reason").to_list()


def test_sort_ranked_tie_breakers():
    df = pl.DataFrame({
        "customer_id": ["z", "y", "x", "w", "v", "u", "t"],
        "division": ["D", "D", "D", "D", "D", "E", "D"],
        "score": [0.5] * 7,
        "p_icp": [0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
        "EV": [9.0, 5.0, 7.0, 7.0, 7.0, 7.0, 7.0],
        "last_activity_date": [dt.date(2024, 1, 1), None, dt.date(2024, 3, 1), dt.date(2024, 2, 1),
                               dt.date(2024, 2, 1), dt.date(2024, 2, 1), None],
    })  # fmt: skip
    out = sort_ranked(df).get_column("customer_id").to_list()
    # x: freshest among p=0.2/EV=7; u/v/w tie on date -> customer_id asc; t has no date -> after them;
    # y lower EV; z lower p_icp despite the highest EV
    assert out == ["x", "u", "v", "w", "t", "y", "z"]
    df2 = pl.DataFrame({"customer_id": ["a", "a"], "division": ["Q", "P"], "score": [0.3, 0.3], "p_icp": [0.1, 0.1],
                        "EV": [1.0, 1.0], "last_activity_date": [None, None]}, schema_overrides={"last_activity_date": pl.Date})  # fmt: skip
    assert sort_ranked(df2).get_column("division").to_list() == ["P", "Q"]


def test_rank_whitespace_tie_break_on_constructed_ties():
    # p_icp only; every division has one candidate -> p_icp_pct = 1 -> all scores tie at 1.0
    icp = pl.DataFrame({"customer_id": ["c4", "c5", "c2", "c1"], "division": ["A", "B", "T", "X"],
                        "icp_score": [0.2, 0.2, 0.3, 0.2]})  # fmt: skip
    s = WhitespaceSettings(weights={"p_icp": 1.0, "lift": 0.0, "als": 0.0, "ev": 0.0})
    res = rank_whitespace(icp, None, settings=s, customers=CUSTOMERS, ordering="blend")
    r = res.ranked
    assert r.get_column("score").to_list() == [1.0] * 4
    # c2 (p 0.3) first; then p 0.2 by last activity desc: c5 (May 5), c4 (May 4), c1 (May 1)
    assert r.get_column("customer_id").to_list() == ["c2", "c5", "c4", "c1"]


def test_rank_whitespace_is_deterministic_and_input_order_free():
    a = run(icp=icp_frame({("c1", "T"): 1}))
    b = run(icp=icp_frame({("c1", "T"): 1}))
    shuffled = icp_frame({("c1", "T"): 1}).sample(fraction=1.0, shuffle=True, seed=11)
    c = rank_whitespace(shuffled, OWNED.reverse(), rules=RULES.reverse(), als=ALS.reverse(), ev_history=EV_HISTORY.reverse(),
                        customers=CUSTOMERS.reverse(), divisions=DIVS, ordering="blend")  # fmt: skip
    assert frame_checksum(a.ranked) == frame_checksum(b.ranked) == frame_checksum(c.ranked)
    assert frame_checksum(a.weights) == frame_checksum(c.weights)
    assert a.decision_log == b.decision_log


def test_reasons_of_the_ranker_pass_the_guard_and_carry_no_names():
    res = run()
    s = WhitespaceSettings()
    reasons = res.ranked.get_column("nba_reason").to_list()
    assert check_reasons(reasons, s.forbidden_tokens, s.reason_max_chars) == []
    names = CUSTOMERS.get_column("customer_name").to_list() + CUSTOMERS.get_column("customer_id").to_list()
    for reason in reasons:
        assert 0 < len(reason) <= 150
        for nm in names:
            assert nm.split()[0] not in reason and f" {nm} " not in f" {reason} "


def test_forbidden_division_name_falls_back_and_is_logged():
    icp = pl.DataFrame({"customer_id": ["c1", "c2"], "division": ["Email Marketing", "Email Marketing"],
                        "icp_score": [0.9, 0.1]})  # fmt: skip
    als = pl.DataFrame({"customer_id": ["c1", "c2"], "division": ["Email Marketing"] * 2,
                        "als_similarity": [0.9, 0.1], "als_coverage": [True, True]})  # fmt: skip
    res = rank_whitespace(icp, None, als=als, ordering="blend")  # the blend cites ALS similarity (the division)
    top = res.ranked.row(0, named=True)
    assert top["nba_reason"] == FALLBACK_REASON
    assert res.reason_violations and res.reason_violations[0]["token"] == "email"
    assert any(e["event"] == "reason_replaced" for e in res.decision_log)


def test_empty_input_gives_empty_ranking():
    res = rank_whitespace(icp_frame().head(0), OWNED, rules=RULES, als=ALS, ev_history=EV_HISTORY, customers=CUSTOMERS)
    assert res.ranked.height == 0 and "score" in res.ranked.columns


# ---------------------------------------------------------------------------------------------------
# eligibility
# ---------------------------------------------------------------------------------------------------
def gate_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "rank": [1, 2, 3, 4, 5, 6, 7, 8],
        "customer_id": ["a", "b", "c", "d", "e", "f", "g", "g"],
        "division": ["X", "X", "Y", "X", "Y", "X", "X", "Y"],
        "region": ["East", "West", "East", None, "East", "East", "East", "East"],
        "territory": ["T1", "T1", "T9", "T1", "T1", "T1", "T1", "T1"],
    })  # fmt: skip


def test_eligibility_counts_per_rule_first_failing_rule_wins():
    log: list[dict] = []
    kept, counts = apply_eligibility(
        gate_frame(),
        region_allow=["East"],  # removes b (West) and d (null region)
        territory_allow=["T1"],  # removes c (T9)
        do_not_contact={"b", "e"},  # b already gone -> removes e only
        open_deals=pl.DataFrame({"customer_id": ["f", "g", "a"], "division": [None, "Y", "Z"]}),  # f all, g/Y
        log=log,
    )
    assert kept.get_column("rank").to_list() == [1, 7]
    assert counts.get_column("rule").to_list() == list(ELIGIBILITY_RULES)
    assert counts.select("evaluated", "removed", "kept").rows() == [(8, 2, 6), (6, 1, 5), (5, 1, 4), (4, 2, 2)]
    removed = [(e["rule"], e["customer_id"], e["division"]) for e in log if e["event"] == "eligibility_removed"]
    assert removed == [("region_allow", "b", "X"), ("region_allow", "d", "X"), ("territory_allow", "c", "Y"),
                       ("do_not_contact", "e", "Y"), ("open_deals", "f", "X"), ("open_deals", "g", "Y")]  # fmt: skip
    json.dumps(log)


def test_eligibility_absent_lists_are_no_rule():
    kept, counts = apply_eligibility(gate_frame())
    assert kept.height == 8
    assert counts.get_column("active").to_list() == [False] * 4
    assert counts.get_column("removed").to_list() == [0] * 4


# ---------------------------------------------------------------------------------------------------
# capacity
# ---------------------------------------------------------------------------------------------------
def cap_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "rank": list(range(1, 11)),
        "customer_id": list("abcdefghij"),
        "division": ["D1", "D1", "D2", "D1", "D2", "D3", "D1", "D3", "D2", "D1"],
        "rep_id": ["r1", "r1", "r2", "r1", None, "r2", "r2", None, "r1", None],
        "score": [1.0 - i / 20 for i in range(10)],
        "p_icp": [0.5, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05],
        "EV": [100.0] * 10,
    }).sample(fraction=1.0, shuffle=True, seed=5)  # input order must not matter  # fmt: skip


def ids(df: pl.DataFrame) -> list[str]:
    return df.get_column("customer_id").to_list()


def test_capacity_helpers():
    assert capacity_count(10, 30.0) == 3  # 30% of 10 is 3, not 4 from float noise
    assert capacity_count(10, 1.0) == 1 and capacity_count(0, 10.0) == 0 and capacity_count(7, 100.0) == 7
    assert division_cap(3, 0.4) == 1 and division_cap(9, 0.4) == 3 and division_cap(5, 0.1) == 1
    assert division_cap(5, 1.0) == 5


def test_capacity_top_percent():
    assert ids(select_capacity(cap_frame(), "top_percent", 30.0, 2, 1.0)) == ["a", "b", "c"]
    # cap = floor(0.4 * 3) = 1 per division: a (D1), skip b/d (D1), c (D2), skip e (D2), f (D3)
    log: list[dict] = []
    sel = select_capacity(cap_frame(), "top_percent", 30.0, 2, 0.4, log=log)
    assert ids(sel) == ["a", "c", "f"]
    assert sel.get_column("selection_order").to_list() == [1, 2, 3]
    assert log[0]["skipped_for_division_cap"] == 3 and log[0]["division_cap"] == 1


def test_capacity_per_rep():
    sel = select_capacity(cap_frame(), "per_rep", 10.0, 2, 1.0)
    assert ids(sel) == ["a", "b", "c", "e", "f", "h"]  # r1: a,b  r2: c,f  unassigned: e,h
    assert sel.get_column("capacity_rep").to_list() == ["r1", "r1", "r2", "unassigned", "r2", "unassigned"]


def test_capacity_per_rep_with_binding_division_cap_stays_short():
    # quota 3 -> N = 3 + 3 + 3 = 9, cap = floor(0.4 * 9) = 3 rows per division
    log: list[dict] = []
    sel = select_capacity(cap_frame(), "per_rep", 10.0, 3, 0.4, log=log)
    assert ids(sel) == ["a", "b", "c", "d", "e", "f", "h"]  # g and j (D1) skipped: D1 is full; i: r1 full
    shares = sel.group_by("division").len()
    assert shares.get_column("len").max() <= 3
    assert any(e["event"] == "capacity_shortfall" and e["target"] == 9 and e["selected"] == 7 for e in log)


def test_capacity_hybrid_round_robin():
    # N = 50% of 10 = 5; rep order by best row: r1 (a), r2 (c), unassigned (e)
    sel = select_capacity(cap_frame(), "hybrid", 50.0, 99, 1.0)
    assert ids(sel) == ["a", "c", "e", "b", "f"]
    assert sel.get_column("selection_order").to_list() == [1, 2, 3, 4, 5]
    # cap = max(1, floor(0.2 * 5)) = 1 per division -> round 1: a (D1), c (D2), e D2 capped -> h (D3); then
    # every remaining row is in a full division: the list stays at 3 rather than break the cap
    assert ids(select_capacity(cap_frame(), "hybrid", 50.0, 99, 0.2)) == ["a", "c", "h"]


def test_diversification_cap_on_a_dominant_division():
    n = 40
    df = pl.DataFrame({"rank": list(range(1, n + 1)), "customer_id": [f"c{i:02d}" for i in range(n)],
                       "division": ["Big"] * 30 + ["S1"] * 5 + ["S2"] * 5, "rep_id": ["r"] * n,
                       "score": [1 - i / n for i in range(n)], "p_icp": [0.1] * n, "EV": [1.0] * n})  # fmt: skip
    sel = select_capacity(df, "top_percent", 25.0, 1, 0.4)  # N = 10, cap 4 rows per division
    assert sel.height == 10
    assert sel.group_by("division").len().sort("division").rows() == [("Big", 4), ("S1", 4), ("S2", 2)]
    assert ids(sel) == ["c00", "c01", "c02", "c03", "c30", "c31", "c32", "c33", "c35", "c36"]
    plain = select_capacity(df, "top_percent", 25.0, 1, 1.0)
    assert ids(plain) == [f"c{i:02d}" for i in range(10)]


def test_capacity_summary_values():
    sel = select_capacity(cap_frame(), "per_rep", 10.0, 2, 1.0)
    summ = capacity_summary(sel)
    assert summ.rows() == [
        ("r1", "D1", 2, pytest.approx(0.975), pytest.approx(0.9), 200.0),
        ("r2", "D2", 1, pytest.approx(0.9), pytest.approx(0.3), 100.0),
        ("r2", "D3", 1, pytest.approx(0.75), pytest.approx(0.2), 100.0),
        ("unassigned", "D2", 1, pytest.approx(0.8), pytest.approx(0.2), 100.0),
        ("unassigned", "D3", 1, pytest.approx(0.65), pytest.approx(0.1), 100.0),
    ]


def test_capacity_grid_and_capture():
    df = cap_frame().with_columns(
        pl.col("customer_id").is_in(["a", "d", "i"]).cast(pl.Int8).alias("bought_in_division")
    )
    grid = capacity_grid(df, [10, 30, 50, 100])
    assert grid.get_column("n_selected").to_list() == [1, 3, 5, 10]
    assert grid.get_column("score_threshold").to_list() == pytest.approx([1.0, 0.9, 0.8, 0.55])
    assert grid.get_column("expected_buyers").to_list() == pytest.approx([0.5, 1.2, 1.7, 2.2])
    assert grid.get_column("realized_buyers").to_list() == [1, 1, 2, 3]
    assert grid.get_column("capture").to_list() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 1.0])
    no_outcome = capacity_grid(cap_frame(), [10])
    assert no_outcome.row(0, named=True)["realized_buyers"] is None and no_outcome.row(0, named=True)["capture"] is None
    assert capture_at_k(df, k_pct=30.0) == pytest.approx(1 / 3)
    assert capture_at_k(df, k_pct=40.0) == pytest.approx(2 / 3)
    # by another score: p_icp desc, ties customer_id -> a(0.5) b(0.4) c d (0.3) -> top 4 = a,b,c,d -> 2/3
    assert capture_at_k(df, k_pct=40.0, score_col="p_icp") == pytest.approx(2 / 3)
    assert capture_at_k(cap_frame(), k_pct=10.0) is None
    assert capture_at_k(df.with_columns(pl.lit(0, dtype=pl.Int8).alias("bought_in_division"))) is None


def test_jaccard_and_stability():
    a = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "division": ["X"] * 4, "rank": [1, 2, 3, 4]})
    b = pl.DataFrame({"customer_id": ["c", "a", "e", "b"], "division": ["X", "X", "X", "Y"], "rank": [2, 1, 3, 4]})
    assert jaccard_top_n(a, b, 3) == pytest.approx(2 / 4)  # {a,b,c} vs {a,c,e}
    assert jaccard_top_n(a, b, 4) == pytest.approx(2 / 6)  # (b, Y) != (b, X)
    assert jaccard_top_n(a, a, 2) == 1.0
    assert jaccard_top_n(a.head(0), b.head(0), 3) == 1.0
    assert stability(a, b, 3) == pytest.approx(0.5)
    assert stability(a, None, 3) is None and stability(a, a.head(0), 3) is None


# ---------------------------------------------------------------------------------------------------
# challenger
# ---------------------------------------------------------------------------------------------------
def challenger_frame(seed: int, n: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    lift = rng.random(n)
    p = rng.random(n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-4.0 + 7.0 * lift)))).astype(np.int8)
    return pl.DataFrame({
        "p_icp_pct": p, "lift_norm": lift, "als_norm": rng.random(n), "EV_norm": rng.random(n),
        "bought_in_division": y,
        "score": 0.9 * p + 0.1 * rng.random(n),  # the champion score: driven by p_icp, NOT the target
    })  # fmt: skip


def test_challenger_learns_from_realized_outcomes():
    train = challenger_frame(1)
    model = fit_challenger(train, seed=42, training_cutoff=dt.date(2023, 12, 31))
    assert model.coef["lift_norm"] > 3.0
    assert model.coef["lift_norm"] == max(model.coef.values())
    assert all(abs(model.coef[f]) < 0.6 for f in ("p_icp_pct", "als_norm", "EV_norm"))
    # the champion score is not used: changing it leaves the fit unchanged
    other = fit_challenger(train.with_columns(pl.lit(0.0).alias("score")), seed=42)
    assert other.coef == model.coef and other.intercept == model.intercept
    # scoring a later cutoff's frame: higher lift -> higher challenger score
    test = challenger_frame(2, 500)
    s = score_challenger(model, test, cutoff=dt.date(2024, 6, 30))
    assert s.name == "score_challenger" and s.len() == 500
    assert np.corrcoef(s.to_numpy(), test["lift_norm"].to_numpy())[0, 1] > 0.95
    json.dumps(model.to_dict())


def test_challenger_refuses_scores_as_targets_and_same_cutoff():
    train = challenger_frame(1, 300)
    for bad in ("score", "score_challenger", "p_icp_pct", "legacy_score"):
        with pytest.raises(ValueError, match="realized"):
            fit_challenger(train, seed=1, outcome_col=bad)
    with pytest.raises(ValueError, match="both outcomes"):
        fit_challenger(train.with_columns(pl.lit(0, dtype=pl.Int8).alias("bought_in_division")), seed=1)
    model = fit_challenger(train, seed=1, training_cutoff=dt.date(2024, 6, 30))
    with pytest.raises(ValueError, match="earlier cutoff"):
        score_challenger(model, train, cutoff=dt.date(2024, 6, 30))


# ---------------------------------------------------------------------------------------------------
# shadow mode
# ---------------------------------------------------------------------------------------------------
def test_legacy_heuristic_and_shadow_report():
    cand = pl.DataFrame({"customer_id": ["a", "a", "b", "c", "d"], "division": ["X", "Y", "X", "X", "Y"],
                         "bought_in_division": [1, 0, 0, 1, 1]})  # fmt: skip
    rev = pl.DataFrame({"customer_id": ["a", "b", "c"], "revenue": [1000.0, 4000.0, 500.0]})
    rec = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "recency_days": [0.0, 360.0, 180.0, 10.0]})
    leg = legacy_heuristic(cand, rev, rec, half_life_days=180.0)
    # a: 1000 * 1; b: 4000 * 0.25 = 1000; c: 500 * 0.5 = 250; d: no revenue -> 0
    assert leg.select("customer_id", "division", "legacy_score", "legacy_rank").rows() == [
        ("a", "X", 1000.0, 1), ("a", "Y", 1000.0, 2), ("b", "X", 1000.0, 3), ("c", "X", 250.0, 4), ("d", "Y", 0.0, 5),
    ]  # fmt: skip
    champion = pl.DataFrame({"customer_id": ["d", "c", "a", "b", "a"], "division": ["Y", "X", "X", "X", "Y"],
                             "rank": [1, 2, 3, 4, 5], "bought_in_division": [1, 1, 1, 0, 0]})  # fmt: skip
    rep = shadow_report(champion, leg, 3)
    # champion top 3 {dY, cX, aX}; legacy top 3 {aX, aY, bX}
    assert rep["overlap"] == 1 and rep["jaccard"] == pytest.approx(1 / 5)
    assert rep["only_champion"] == 2 and rep["only_legacy"] == 2
    assert rep["outcomes_known"] and rep["total_buyers"] == 3
    assert (rep["champion_buyers"], rep["legacy_buyers"], rep["wins"], rep["losses"], rep["shared_buyers"]) == (3, 1, 2, 0, 1)
    assert rep["division_share_champion"] == pytest.approx({"X": 2 / 3, "Y": 1 / 3})
    json.dumps(rep)
    rep2 = shadow_report(champion.drop("bought_in_division"), leg.drop("bought_in_division"), 3)
    assert rep2["outcomes_known"] is False and "wins" not in rep2


def test_empty_frames_flow_through_gating_and_capacity():
    empty = run(icp=icp_frame().head(0)).ranked
    kept, counts = apply_eligibility(empty, ["East"], ["T1"], {"c1"}, pl.DataFrame({"customer_id": ["c1"]}))
    assert kept.height == 0 and counts.get_column("removed").to_list() == [0] * 4
    for mode in ("top_percent", "per_rep", "hybrid"):
        sel = select_capacity(kept, mode, 10.0, 5, 0.4)
        assert sel.height == 0 and "selection_order" in sel.columns
        assert capacity_summary(sel).height == 0
    grid = capacity_grid(empty, [1, 10])
    assert grid.get_column("n_selected").to_list() == [0, 0]
    assert capture_at_k(empty) is None
    assert percentile_uniformity(empty).height == 0
