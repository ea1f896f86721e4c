"""core/whitespace.py: one cutoff's list, metrics, files and log from plain inputs, on a hand-made world (the
6 customers × 3 divisions of test_ranking, with fact lines behind the ownership)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import polars as pl
import pytest

from gosales_assets.core.capacity import capacity_grid, capacity_summary, select_capacity
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.contracts import whitespace_metrics_schema, whitespace_schema
from gosales_assets.core.eligibility import apply_eligibility
from gosales_assets.core.explain import explanation_frame
from gosales_assets.core.ranking import rank_whitespace
from gosales_assets.core.ranking_evaluation import capture_at_k, legacy_heuristic, shadow_report, stability
from gosales_assets.core.whitespace import (
    CAPTURE_KS,
    EXPORT_COLUMNS,
    build_whitespace,
    empty_whitespace,
    whitespace_contracts,
)
from gosales_assets.core.whitespace_inputs import whitespace_inputs
from gosales_assets.settings import WhitespaceSettings
from gosales_assets_tests.test_ranking import ALS, DIVS, RULES, challenger_frame, icp_frame

C = dt.date(2024, 6, 30)
CAPTURE_COLUMNS = [f"capture_at_{k:g}{s}" for k in CAPTURE_KS
                   for s in ("", "_p_icp_only", "_p_icp_pct_only", "_legacy")]


def fact_frame() -> pl.DataFrame:
    """Ownership at C: c1 A, c2 B, c3 A + B, c6 T (as OWNED in test_ranking); c5 bought A and returned it (net 0:
    not owned); c4 buys only after C (ignored)."""
    rows = [
        ("i1", 1, dt.date(2024, 1, 10), "c1", "A", 100.0, "r1", False),
        ("i2", 1, dt.date(2024, 2, 10), "c2", "B", 200.0, "r1", False),
        ("i3", 1, dt.date(2024, 3, 10), "c3", "A", 150.0, "r2", False),
        ("i3", 2, dt.date(2024, 3, 10), "c3", "B", 50.0, "r2", False),
        ("i4", 1, dt.date(2024, 4, 10), "c6", "T", 300.0, None, False),
        ("i5", 1, dt.date(2024, 5, 10), "c5", "A", 80.0, "r2", False),
        ("i6", 1, dt.date(2024, 5, 20), "c5", "A", -80.0, "r2", True),
        ("i7", 1, dt.date(2024, 7, 15), "c4", "T", 999.0, None, False),
    ]
    return pl.DataFrame(rows, schema={"invoice_id": pl.String, "line_no": pl.Int64, "invoice_date": pl.Date,
                                      "customer_id": pl.String, "division": pl.String, "revenue": pl.Float64,
                                      "rep_id": pl.String, "is_return": pl.Boolean}, orient="row")


DIM = pl.DataFrame({
    "customer_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
    "customer_name": ["Acme Corp", "Bolt Ltd", "Cobalt Inc", "Delta LLC", "Echo GmbH", "Foxtrot SA"],
    "industry": ["Mfg", "Mfg", "Retail", "Mfg", None, "Retail"],
    "employee_band": ["1-50", "1-50", "51-200", "1-50", "1-50", "51-200"],
    "region": ["East", "West", "East", "East", None, "West"],
    "territory": ["T1", "T2", "T1", "T3", "T1", "T2"],
})
# Realized purchases in (C, C + W]: c4 T and c6 B (both candidates).
OUTCOMES = {("c4", "T"): 1, ("c6", "B"): 1}
NO_GATES = {"region_allow": None, "territory_allow": None, "do_not_contact": None, "open_deals": None}


def settings(**kw) -> WhitespaceSettings:
    return WhitespaceSettings(**({"top_percent": 30.0} | kw))


def build(icp=None, ws=None, **kw):
    args = dict(cutoff=C, run_id="run-1", settings=ws or settings(), divisions=DIVS, rules=RULES, als=ALS,
                eligibility=NO_GATES) | kw
    return build_whitespace(icp_frame(OUTCOMES) if icp is None else icp, fact_frame(), DIM, **args)


def reference(icp: pl.DataFrame, ws: WhitespaceSettings, previous: pl.DataFrame | None,
              prev_cutoff: dt.date | None) -> tuple[pl.DataFrame, dict, dict[str, pl.DataFrame], list[dict]]:
    """The assembly as the `whitespace_ranking` asset body did it before it moved to core (challenger off)."""
    inputs = whitespace_inputs(fact_frame(), DIM, C, ws.ownership_lookback_months)
    result = rank_whitespace(icp, inputs.owned, settings=ws, rules=RULES, portfolios=inputs.owned, als=ALS,
                             ev_history=inputs.ev_history, customers=inputs.customers, divisions=DIVS,
                             customer_revenue=inputs.customer_revenue, recency=inputs.recency)
    scored = sorted(icp.get_column("division").unique().to_list())
    log = [{"event": "inputs", "cutoff": str(C), "scored_divisions": scored,
            "missing_divisions": sorted(set(DIVS) - set(scored))}, *result.decision_log]
    kept, gate_counts = apply_eligibility(result.ranked, None, None, None, None, log=log)
    selected = select_capacity(kept, ws.capacity_mode, ws.top_percent, ws.per_rep_quota, ws.max_division_share,
                               log=log)
    ranked = kept.join(selected.select("customer_id", "division", "selection_order"), on=["customer_id", "division"],
                       how="left", maintain_order="left").with_columns(
        pl.col("selection_order").is_not_null().alias("selected"), pl.lit("run-1").alias("run_id"),
        pl.lit(C).alias("cutoff_date"))
    known = "bought_in_division" in ranked.columns and ranked.get_column("bought_in_division").drop_nulls().len() > 0
    capture = dict.fromkeys(CAPTURE_COLUMNS)
    if known:
        for k in CAPTURE_KS:
            capture[f"capture_at_{k:g}"] = capture_at_k(ranked, k_pct=k)
            capture[f"capture_at_{k:g}_p_icp_only"] = capture_at_k(ranked, k_pct=k, score_col="p_icp")
            capture[f"capture_at_{k:g}_p_icp_pct_only"] = capture_at_k(ranked, k_pct=k, score_col="p_icp_pct")
    shadow = None
    if ws.shadow_enabled:
        legacy = legacy_heuristic(result.ranked.select("customer_id", "division",
                                                       *(["bought_in_division"] if known else [])),
                                  inputs.customer_revenue, inputs.recency)
        shadow = shadow_report(ranked, legacy, ws.shadow_top_n)
        if known:
            for k in CAPTURE_KS:
                capture[f"capture_at_{k:g}_legacy"] = capture_at_k(legacy, k_pct=k, score_col="legacy_score")
    top_n = max(1, selected.height)
    shares = (selected.group_by("division").len().with_columns((pl.col("len") / max(1, selected.height))
                                                              .round(4).alias("share")).sort("division"))
    checksum = frame_checksum(ranked.drop("run_id"))
    metrics = {
        "cutoff": str(C), "run_id": "run-1", "rows": ranked.height,
        "candidates_before_gating": result.ranked.height, "selected": selected.height,
        "capacity_mode": ws.capacity_mode,
        "ordering": {"champion": ws.ranking.initial_champion, "score": f"score_{ws.ranking.initial_champion}",
                     "note": "the configured initial champion (whitespace.ranking.initial_champion)"},
        "eligibility": gate_counts.to_dicts(),
        "coverage": result.coverage.to_dicts(), "weights": result.weights.to_dicts(),
        "division_shares": dict(shares.select("division", "share").iter_rows()), "capture": capture,
        "stability_vs_previous": {"previous_cutoff": str(prev_cutoff) if prev_cutoff else None,
                                  "jaccard_top_n": stability(ranked, previous, top_n), "n": top_n},
        "shadow": shadow, "reason_violations_replaced": len(result.reason_violations),
        "peer_fallback": {"in_capacity_plan": False, "rows": 0, "divisions": {}},  # no held/skipped division here
        "checksum": checksum,
    }
    tables = {"grid": capacity_grid(ranked, ws.capacity_grid_pcts), "summary": capacity_summary(selected),
              "explanations": explanation_frame(ranked).with_columns(ranked.get_column("score_source"))}
    return ranked, metrics, tables, log


def test_same_list_metrics_and_log_as_the_asset_body_before():
    ws = settings(shadow_enabled=True, shadow_top_n=3)
    first = build(ws=ws)
    previous = first.ranked.slice(1)  # an earlier list that differs at the top: without the first pair
    got = build(ws=ws, previous=previous, previous_cutoff=dt.date(2024, 3, 31))
    ranked, metrics, tables, log = reference(icp_frame(OUTCOMES), ws, previous, dt.date(2024, 3, 31))
    assert got.ranked.equals(ranked)
    assert got.metrics == metrics
    assert 0 < metrics["stability_vs_previous"]["jaccard_top_n"] < 1
    assert got.grid.drop("cutoff_date").equals(tables["grid"])
    assert got.summary.drop("cutoff_date").equals(tables["summary"])
    assert got.explanations.equals(tables["explanations"])
    assert got.log == log
    assert json.loads(got.metrics_row.item(0, "metrics_json")) == json.loads(json.dumps(metrics, default=str))


def test_metrics_values_of_the_small_world():
    ws = settings(shadow_enabled=True, shadow_top_n=3)
    got = build(ws=ws, previous=None)
    m = got.metrics
    # 18 scored pairs, 5 owned (c1 A, c2 B, c3 A, c3 B, c6 T) -> 13 candidates, no gate active.
    assert m["candidates_before_gating"] == 13 and m["rows"] == 13 and got.ranked.height == 13
    # top 30% of 13 rows = ceil(3.9) = 4 rows; the division cap is floor(0.4 * 4) = 1 per division -> 3 selected
    # (one per division A, B, T), short of 4.
    assert m["selected"] == 3 and got.ranked.get_column("selected").sum() == 3
    assert m["division_shares"] == {"A": 0.3333, "B": 0.3333, "T": 0.3333}
    assert any(e["event"] == "capacity_shortfall" for e in got.log)
    # Two realized buyers (c4 T, c6 B): capture@K is a share of 2.
    assert set(m["capture"]) == set(CAPTURE_COLUMNS)
    assert all(v in (0.0, 0.5, 1.0) for v in m["capture"].values())
    assert m["stability_vs_previous"] == {"previous_cutoff": None, "jaccard_top_n": None, "n": 3}
    assert m["shadow"]["n"] == 3 and m["shadow"]["outcomes_known"] and m["shadow"]["total_buyers"] == 2
    assert m["checksum"] == got.checksum == frame_checksum(got.ranked.drop("run_id"))
    # The stored row: one per cutoff, capture columns as in the JSON, the contract holds.
    row = got.metrics_row.row(0, named=True)
    assert row["rows"] == 13 and row["selected"] == 3 and row["stability_jaccard"] is None
    assert {k: row[k] for k in CAPTURE_COLUMNS} == m["capture"]
    assert all(r.passed for r in whitespace_contracts(got, DIVS).values()), {
        k: r.summary() for k, r in whitespace_contracts(got, DIVS).items()}
    # The same list again (another run id): same checksum; against itself the stability is 1.
    again = build(ws=ws, run_id="run-2", previous=got.ranked, previous_cutoff=dt.date(2024, 3, 31))
    assert again.checksum == got.checksum and again.metrics["stability_vs_previous"]["jaccard_top_n"] == 1.0
    assert again.metrics_row.item(0, "stability_jaccard") == 1.0


def test_files_and_log():
    got = build()
    c = C.isoformat()
    assert list(got.files) == [f"whitespace_{c}.csv", f"whitespace_explanations_{c}.csv",
                               f"thresholds_whitespace_{c}.csv", f"capacity_summary_{c}.csv",
                               f"whitespace_metrics_{c}.json", f"whitespace_log_{c}.jsonl"]
    assert got.files[f"whitespace_{c}.csv"].columns == EXPORT_COLUMNS
    assert got.files[f"whitespace_metrics_{c}.json"] is got.metrics
    assert "cutoff_date" not in got.files[f"thresholds_whitespace_{c}.csv"].columns
    lines = got.files[f"whitespace_log_{c}.jsonl"].splitlines()
    assert len(lines) == len(got.log) and json.loads(lines[0]) == {
        "event": "inputs", "cutoff": "2024-06-30", "scored_divisions": ["A", "B", "T"], "missing_divisions": []}
    assert [e["rule"] for e in got.log if e["event"] == "eligibility"] == [
        "region_allow", "territory_allow", "do_not_contact", "open_deals"]
    assert set(got.tables) == {"whitespace", "whitespace_thresholds", "capacity_summary", "whitespace_metrics"}
    assert got.reason_rule_violations == [] and got.reason_violations == []
    assert got.uniformity.get_column("division").to_list() == DIVS and 0 < got.max_uniformity_deviation <= 0.5


def test_capture_is_null_when_outcomes_are_unknown():
    icp = icp_frame().with_columns(pl.lit(None, dtype=pl.Int8).alias("bought_in_division"))
    got = build(icp=icp, ws=settings(shadow_enabled=True))
    assert got.metrics["capture"] == dict.fromkeys(CAPTURE_COLUMNS)
    assert got.metrics["shadow"]["outcomes_known"] is False
    row = got.metrics_row
    assert all(row.schema[k] == pl.Float64 and row.item(0, k) is None for k in CAPTURE_COLUMNS)
    # Without the shadow list there is no legacy capture and no report either.
    plain = build(icp=icp_frame())  # no outcome column at all
    assert plain.metrics["shadow"] is None and plain.metrics["capture"] == dict.fromkeys(CAPTURE_COLUMNS)
    assert plain.grid.get_column("realized_buyers").null_count() == plain.grid.height


def test_challenger_disabled_enabled_without_and_with_an_earlier_list():
    off = build()
    assert "score_challenger" not in off.ranked.columns
    assert not [e for e in off.log if e["event"] == "challenger"]

    no_list = build(ws=settings(challenger_enabled=True), max_window_months=6)
    assert no_list.ranked.get_column("score_challenger").null_count() == no_list.ranked.height
    assert [e for e in no_list.log if e["event"] == "challenger"] == [{
        "event": "challenger",
        "skipped": "no earlier cutoff with realized outcomes by 2024-06-30 (needs C' + 6 months ≤ C)"}]
    one_class = challenger_frame(1, n=200).with_columns(pl.lit(0).alias("bought_in_division"))
    assert build(ws=settings(challenger_enabled=True), challenger_rows=one_class,
                 challenger_cutoff=dt.date(2023, 12, 31)).ranked.get_column("score_challenger").null_count() == 13

    rows = challenger_frame(1, n=400)
    on = build(ws=settings(challenger_enabled=True), challenger_rows=rows, challenger_cutoff=dt.date(2023, 12, 31),
               challenger_seed=42)
    scores = on.ranked.get_column("score_challenger")
    assert scores.null_count() == 0 and scores.is_between(0, 1).all()
    event = next(e for e in on.log if e["event"] == "challenger")
    assert event["trained_on"] == "2023-12-31" and event["n_train"] == 400 and event["seed"] == 42
    # The challenger adds a column; the blend, the selection and the metrics other than the checksum stay.
    assert on.ranked.drop("score_challenger").equals(off.ranked)
    assert on.metrics["capture"] == off.metrics["capture"] and on.checksum != off.checksum
    # An earlier list can never be the cutoff's own.
    with pytest.raises(ValueError, match="earlier cutoff"):
        build(ws=settings(challenger_enabled=True), challenger_rows=rows, challenger_cutoff=C)


def test_eligibility_gates_and_missing_divisions():
    icp = icp_frame(OUTCOMES).filter(pl.col("division") != "B")
    got = build(icp=icp, eligibility=NO_GATES | {"do_not_contact": ["c6"], "region_allow": None})
    assert got.scored_divisions == ["A", "T"] and got.missing_divisions == ["B"]
    # candidates: A (c2, c4, c5, c6), T (c1, c2, c3, c4, c5) = 9; c6 A removed by do-not-contact.
    assert got.metrics["candidates_before_gating"] == 9 and got.metrics["rows"] == 8
    assert "c6" not in got.ranked.get_column("customer_id").to_list()
    gate = {r["rule"]: r for r in got.metrics["eligibility"]}
    assert gate["do_not_contact"]["removed"] == 1 and gate["region_allow"]["active"] is False
    removed = [e for e in got.log if e["event"] == "eligibility_removed"]
    assert [(e["rule"], e["customer_id"], e["division"]) for e in removed] == [("do_not_contact", "c6", "A")]
    # No eligibility dict at all = no gate.
    assert build(icp=icp, eligibility=None).metrics["rows"] == 9


def test_empty_whitespace_for_a_cutoff_without_published_scores():
    got = empty_whitespace(C, "run-1", DIVS)
    assert got.reason.startswith("no published icp_scores for cutoff 2024-06-30")
    assert {name: frame.height for name, frame in got.tables.items()} == {
        "whitespace": 0, "whitespace_thresholds": 0, "capacity_summary": 0, "whitespace_metrics": 1}
    assert set(got.ranked.columns) >= set(whitespace_schema(DIVS).columns)
    row = got.metrics_row.row(0, named=True)
    assert row["rows"] == 0 and row["selected"] == 0 and row["checksum"] == frame_checksum(got.ranked)
    assert json.loads(row["metrics_json"]) == {"cutoff": "2024-06-30", "rows": 0, "reason": got.reason}
    assert got.metrics_row.columns == list(whitespace_metrics_schema().columns)
    assert got.files == {"whitespace_2024-06-30.csv": got.files["whitespace_2024-06-30.csv"],
                         "whitespace_metrics_2024-06-30.json": {"cutoff": "2024-06-30", "run_id": "run-1", "rows": 0,
                                                                "reason": got.reason}}
    assert got.files["whitespace_2024-06-30.csv"].columns == EXPORT_COLUMNS
    assert empty_whitespace(C, "run-1", DIVS, "held").metrics["reason"] == "held"


# ---- peer fallback: a division without a promoted model, ordered by its best simple peer ------------------------
# T is held at C: no icp_scores; its peer (monetary) orders c4 > c2 > c1 > c5 (c3: never bought, no score), c6 owns T.
T_PEER = {"c1": 300.0, "c2": 500.0, "c3": None, "c4": 900.0, "c5": 100.0, "c6": 50.0}
HELD_REASON = "promotion gate: auc 0.6100 < 0.7 (short by 0.0900)"


def fallback_frame(outcomes: dict | None = None) -> pl.DataFrame:
    ids = sorted(T_PEER)
    df = pl.DataFrame({"customer_id": ids, "division": ["T"] * len(ids), "peer": ["monetary"] * len(ids),
                       "peer_basis": ["cross_validation"] * len(ids), "peer_score": [T_PEER[c] for c in ids],
                       "model_status": ["held"] * len(ids), "model_reason": [HELD_REASON] * len(ids)},
                      schema_overrides={"peer_score": pl.Float64})
    return df.with_columns(pl.Series("bought_in_division", [(outcomes or OUTCOMES).get((c, "T"), 0) for c in ids],
                                     dtype=pl.Int8))


def test_a_held_division_is_listed_by_its_peer_after_the_model_rows_and_the_rest_is_unchanged():
    ws = settings(shadow_enabled=True, shadow_top_n=3)
    icp = icp_frame(OUTCOMES).filter(pl.col("division") != "T")
    without = build(icp=icp, ws=ws)
    got = build(icp=icp, ws=ws, fallback=fallback_frame())
    model = got.ranked.filter(pl.col("score_source") == "model")
    peer = got.ranked.filter(pl.col("score_source") != "model")
    # The promoted divisions' rows are exactly the list without the fallback: ranks, scores, reasons, selection.
    assert model.equals(without.ranked)
    assert got.metrics["capture"] == without.metrics["capture"] and got.grid.equals(without.grid)
    assert got.summary.equals(without.summary) and got.metrics["shadow"] == without.metrics["shadow"]
    # T's candidates (c6 owns T) in the monetary peer's order, after every model row, labelled, with no probability.
    assert peer.get_column("customer_id").to_list() == ["c4", "c2", "c1", "c5", "c3"]
    assert peer.get_column("rank").to_list() == list(range(model.height + 1, model.height + 6))
    assert peer.get_column("rank_in_division").to_list() == [1, 2, 3, 4, 5]
    assert set(peer.get_column("score_source")) == {"peer:monetary"}
    assert peer.get_column("p_icp").null_count() == 5 and peer.get_column("p_icp_pct").null_count() == 5
    assert peer.get_column("score").to_list() == [1.0, 0.8, 0.6, 0.4, 0.2]  # percentile; never bought lowest
    assert (peer.get_column("w_p_icp") == 0).all() and not peer.get_column("selected").any()  # not in the plan
    reason = peer.item(0, "nba_reason")
    assert reason == ("No promoted model (held: auc 0.6100 < 0.7); ordered by the best simple peer, monetary "
                      "(top 12-month revenue), not a model score")
    assert got.explanations.filter(pl.col("score_source") == "peer:monetary").height == 5
    # Stored, checked, exported and logged as such.
    reports = whitespace_contracts(got, DIVS)
    assert all(r.passed for r in reports.values()), {k: r.summary() for k, r in reports.items()}
    assert got.metrics["peer_fallback"] == {"in_capacity_plan": False, "rows": 5, "divisions": {
        "T": {"score_source": "peer:monetary", "rows": 5, "selected": 0}}}
    assert got.files[f"whitespace_{C.isoformat()}.csv"].filter(pl.col("division") == "T").height == 5
    event = next(e for e in got.log if e["event"] == "peer_fallback")
    assert event["division"] == "T" and event["model_status"] == "held" and event["candidates"] == 5
    assert got.log[0]["peer_fallback_divisions"] == ["T"]
    # A probability shown on a peer row breaks the contract.
    forged = dataclasses.replace(got, ranked=got.ranked.with_columns(
        pl.when(pl.col("score_source") != "model").then(0.5).otherwise(pl.col("p_icp")).alias("p_icp")))
    assert not whitespace_contracts(forged, DIVS)["whitespace"].passed


def test_fallback_rows_enter_the_capacity_plan_only_when_allowed_and_only_after_model_rows():
    icp = icp_frame(OUTCOMES).filter(pl.col("division") != "T")
    off = build(icp=icp, ws=settings(peer_fallback=False), fallback=fallback_frame())
    assert set(off.ranked.get_column("score_source")) == {"model"} and off.metrics["peer_fallback"]["rows"] == 0
    inside = build(icp=icp, ws=settings(peer_fallback_in_capacity=True, max_division_share=1.0),
                   fallback=fallback_frame())
    selected = inside.ranked.filter(pl.col("selected")).sort("selection_order")
    # top 30 % of 13 rows (8 model rows, 5 peer rows) = 4: the model rows come first, so the plan holds no peer row
    assert selected.height == 4 and set(selected.get_column("score_source")) == {"model"}
    everything = build(icp=icp, ws=settings(peer_fallback_in_capacity=True, top_percent=100.0,
                                            max_division_share=1.0), fallback=fallback_frame())
    plan = everything.ranked.filter(pl.col("selected")).sort("selection_order")
    sources = plan.get_column("score_source").to_list()
    assert plan.height == 13 and sources == sorted(sources, key=lambda s: s != "model")
    assert everything.metrics["peer_fallback"]["divisions"]["T"]["selected"] == 5


def test_a_cutoff_with_only_held_or_skipped_divisions_still_gets_a_labelled_list():
    empty = icp_frame(OUTCOMES).head(0)
    fb = fallback_frame().with_columns(pl.lit("skipped").alias("model_status"), pl.lit("default").alias("peer_basis"),
                                       pl.lit("InsufficientData: 4 positives < 20").alias("model_reason"))
    got = build(icp=empty, fallback=fb)
    assert got.ranked.height == 5 and got.scored_divisions == [] and got.selected.height == 0
    assert got.ranked.item(0, "nba_reason") == ("No promoted model (skipped: 4 positives < 20); ordered by the "
                                                "default simple peer, monetary (top 12-month revenue), not a model "
                                                "score")
    assert all(r.passed for r in whitespace_contracts(got, DIVS).values())
    assert got.metrics["capture"] == dict.fromkeys(CAPTURE_COLUMNS)  # capture judges the model list: none here
    # stability too: a peer-only list is no model list to compare, and neither is a peer-only previous list
    assert got.metrics["stability_vs_previous"]["jaccard_top_n"] is None
    later = build(icp=icp_frame(OUTCOMES).filter(pl.col("division") != "T"), fallback=fallback_frame(),
                  previous=got.ranked, previous_cutoff=dt.date(2024, 3, 31))
    assert later.metrics["stability_vs_previous"]["jaccard_top_n"] is None
    with pytest.raises(ValueError, match="needs published scores or peer-fallback rows"):
        build(icp=empty)


def test_peer_reasons_name_the_ordering_within_the_limit_and_pass_the_guard():
    from gosales_assets.core.ranking import peer_fallback_reason

    long = "promotion gate: " + "auc 0.6 < 0.7 because " * 20
    text = peer_fallback_reason("held", long, "rfm_logistic", "cross_validation", 150)
    assert len(text) <= 150 and text.endswith("ordered by the best simple peer, rfm_logistic (an RFM regression), "
                                              "not a model score") and "..." in text
    # a reason with a forbidden word is replaced by a plain peer sentence (never the model rows' fallback)
    fb = fallback_frame().with_columns(pl.lit("held for review by marital status").alias("model_reason"))
    got = build(icp=icp_frame(OUTCOMES).filter(pl.col("division") != "T"), fallback=fb)
    peer = got.ranked.filter(pl.col("score_source") != "model")
    assert set(peer.get_column("nba_reason")) == {"No promoted model; ordered by the simple peer monetary"}
    assert got.reason_rule_violations == [] and len(got.reason_violations) == 5
    replaced = [e for e in got.log if e["event"] == "reason_replaced"]
    assert len(replaced) == 5 and replaced[0]["fallback"] == "No promoted model; ordered by the simple peer monetary"



# ---- the champion ordering: the list, the plan, capture and reasons follow it; peer rows stay last ----------------
@pytest.mark.parametrize("ordering", ["p_icp", "expected_value", "legacy"])
def test_the_list_follows_the_champion_ordering_and_peer_rows_stay_last(ordering):
    icp = icp_frame(OUTCOMES).filter(pl.col("division") != "T")
    got = build(icp=icp, fallback=fallback_frame(), ordering=ordering, ordering_note="ranking_decision at test")
    model = got.ranked.filter(pl.col("score_source") == "model")
    peer = got.ranked.filter(pl.col("score_source") != "model")
    key = model.get_column(f"score_{ordering}").to_list()
    assert key == sorted(key, reverse=True) and set(got.ranked["ordering"]) == {ordering}
    assert model["rank"].to_list() == list(range(1, model.height + 1))
    # the peer rows keep their own order after every model row, with no ordering score
    assert peer.get_column("customer_id").to_list() == ["c4", "c2", "c1", "c5", "c3"]
    assert peer.select(pl.col("^score_(blend|p_icp|expected_value|legacy)$").null_count()).row(0) == (5, 5, 5, 5)
    # the plan takes model rows in the champion's order (30 % of 8 model rows = 3, one per division at most 40 %)
    plan = got.ranked.filter(pl.col("selected")).sort("selection_order")
    assert plan["rank"].to_list() == sorted(plan["rank"].to_list()) and plan["rank"][0] == 1
    assert got.metrics["ordering"] == {"champion": ordering, "score": f"score_{ordering}",
                                       "note": "ranking_decision at test"}
    assert all(r.passed for r in whitespace_contracts(got, DIVS).values())
    if ordering == "p_icp":  # capture@K of the listed order is p_icp's own
        assert got.metrics["capture"]["capture_at_10"] == got.metrics["capture"]["capture_at_10_p_icp_only"]
    # the champion and its note as calls (decided while the list computed its signals): the same list and metrics
    deferred = build(icp=icp, fallback=fallback_frame(), ordering=lambda: ordering,
                     ordering_note=lambda: "ranking_decision at test")
    assert deferred.ranked.equals(got.ranked) and deferred.metrics == got.metrics and deferred.checksum == got.checksum
    # a blend list of the same inputs keeps the same scores per pair (only the order and `score` change)
    blend = build(icp=icp, fallback=fallback_frame(), ordering="blend").ranked
    cols = ["customer_id", "division", "score_blend", "score_p_icp", "score_expected_value", "score_legacy"]
    assert blend.select(cols).sort("customer_id", "division").equals(got.ranked.select(cols).sort("customer_id",
                                                                                                   "division"))
