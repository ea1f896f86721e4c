"""Unit tests for core/explain.py: reasons, content guard, expanded drivers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.explain import (
    FALLBACK_REASON,
    check_reasons,
    explanation_frame,
    format_money,
    guard_reasons,
    nba_reason,
    truncate_words,
)
from gosales_assets.settings import WhitespaceSettings

TOKENS = WhitespaceSettings().forbidden_tokens


def frame(rows: list[dict], weights=(0.6, 0.2, 0.1, 0.1)) -> pl.DataFrame:
    base = {"division": "Printers", "p_icp_pct": 0.0, "lift_norm": 0.0, "top_affinity_division": None,
            "als_norm": 0.0, "EV": 0.0, "EV_norm": 0.0}  # fmt: skip
    w = dict(zip(("w_p_icp", "w_lift", "w_als", "w_ev"), weights))
    return pl.DataFrame([{**base, **w, **r} for r in rows],
                        schema={"division": pl.String, "p_icp_pct": pl.Float64, "lift_norm": pl.Float64,
                                "top_affinity_division": pl.String, "als_norm": pl.Float64, "EV": pl.Float64,
                                "EV_norm": pl.Float64, "w_p_icp": pl.Float64, "w_lift": pl.Float64,
                                "w_als": pl.Float64, "w_ev": pl.Float64})  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# reasons
# ---------------------------------------------------------------------------------------------------
def test_reason_from_the_two_strongest_signals():
    f = frame([
        {"p_icp_pct": 0.96, "lift_norm": 0.9, "top_affinity_division": "Hardware", "EV": 23_400.0, "EV_norm": 0.5},
        {"p_icp_pct": 0.85, "lift_norm": 0.6, "top_affinity_division": "Scanning", "als_norm": 0.9, "EV": 950.0},
        {"p_icp_pct": 0.30, "lift_norm": 0.9, "top_affinity_division": "CPE", "als_norm": 0.99, "EV": 0.0},
        {"p_icp_pct": 0.999, "als_norm": 0.95, "EV": 1_250_000.0, "EV_norm": 0.95},
        {"p_icp_pct": 0.5, "EV": 5_000.0, "EV_norm": 0.9},
    ])  # fmt: skip
    assert nba_reason(f).to_list() == [
        "High likelihood (top 5%) + strong affinity from Hardware; EV ~$23k",
        # lift 0.2*0.6 = 0.12 > ALS 0.1*0.9
        "High likelihood (top 20%) + affinity from Scanning; EV ~$950",
        # p_icp weak: lift (0.18) before ALS (0.099); EV 0 -> no EV note
        "Strong affinity from CPE + buying pattern similar to Printers customers",
        # ALS and EV both contribute 0.095: ties go in the fixed order p_icp, lift, als, ev
        "High likelihood (top 1%) + buying pattern similar to Printers customers; EV ~$1.3M",
        "High expected value; EV ~$5k",
    ]


def test_fallback_when_all_signals_are_weak_and_zero_weight_signals_are_never_cited():
    f = frame([
        {"p_icp_pct": 0.79, "lift_norm": 0.49, "top_affinity_division": "CPE", "als_norm": 0.7, "EV": 100.0,
         "EV_norm": 0.5},
        # ALS and lift are strong but their weights were zeroed (signal missing in the division)
        {"p_icp_pct": 0.5, "lift_norm": 1.0, "top_affinity_division": "CPE", "als_norm": 1.0},
        # lift strong but the antecedent is unknown -> cannot say "affinity from ..."
        {"p_icp_pct": 0.5, "lift_norm": 1.0},
    ])  # fmt: skip
    out = nba_reason(f).to_list()
    assert out[0] == FALLBACK_REASON
    f2 = frame([{"p_icp_pct": 0.5, "lift_norm": 1.0, "top_affinity_division": "CPE", "als_norm": 1.0}],
               weights=(1.0, 0.0, 0.0, 0.0))  # fmt: skip
    assert nba_reason(f2).to_list() == [FALLBACK_REASON]
    assert out[2] == FALLBACK_REASON


def test_percentile_buckets():
    f = frame([{"p_icp_pct": p} for p in (1.0, 0.99, 0.985, 0.95, 0.91, 0.90, 0.8)])
    got = [r.split(")")[0] + ")" for r in nba_reason(f).to_list()]
    assert got == ["High likelihood (top 1%)", "High likelihood (top 1%)", "High likelihood (top 2%)",
                   "High likelihood (top 5%)", "High likelihood (top 10%)", "High likelihood (top 10%)",
                   "High likelihood (top 20%)"]  # fmt: skip


def test_reasons_respect_max_chars_and_cut_at_word_boundaries():
    long_div = "Advanced Additive Manufacturing Consulting and Enterprise Lifecycle Services"
    f = frame([{"division": long_div, "p_icp_pct": 0.97, "lift_norm": 0.8, "top_affinity_division": long_div,
                "als_norm": 0.95, "EV": 12_000.0}])  # fmt: skip
    full = nba_reason(f, 500).item()
    assert full == f"High likelihood (top 5%) + strong affinity from {long_div}; EV ~$12k"
    for limit in (40, 60, 77, 150):
        r = nba_reason(f, limit).item()
        assert len(r) <= limit
        if len(full) > limit:
            assert r.endswith("...")
            stem = r[:-3]
            assert full.startswith(stem) and full[len(stem)] == " "  # never a partial word
    assert truncate_words("short", 40) == "short"
    assert truncate_words("a" * 100, 40) == "a" * 37 + "..."
    assert len(truncate_words(FALLBACK_REASON, 40)) <= 40


def test_format_money():
    assert [format_money(v) for v in (0, 12.4, 849.5, 999.6, 23_400, 23_600, 999_499, 999_500, 1_250_000, 12_340_000)] == [
        "$0", "$12", "$850", "$1k", "$23k", "$24k", "$999k", "$1.0M", "$1.3M", "$12.3M"]  # fmt: skip
    f = frame([{"p_icp_pct": 0.99, "EV": v} for v in (12.4, 849.5, 999.6, 23_400, 999_500, 1_250_000)])
    suffix = [r.split("; EV ~")[1] for r in nba_reason(f).to_list()]
    assert suffix == ["$12", "$850", "$1k", "$23k", "$1.0M", "$1.3M"]


def test_reasons_of_random_rows_are_short_clean_and_deterministic():
    rng = np.random.default_rng(0)
    n = 2000
    divs = ["Solidworks", "Success Plan", "Post_Processing", "CAMWorks", "Hardware"]
    f = pl.DataFrame({
        "division": rng.choice(divs, n), "p_icp_pct": rng.random(n), "lift_norm": rng.random(n),
        "top_affinity_division": rng.choice(divs, n), "als_norm": rng.random(n),
        "EV": rng.random(n) * 200_000, "EV_norm": rng.random(n),
        "w_p_icp": 0.6, "w_lift": 0.2, "w_als": 0.1, "w_ev": 0.1,
    })  # fmt: skip
    a = nba_reason(f, 150)
    assert a.len() == n and a.null_count() == 0
    assert a.str.len_chars().max() <= 150
    assert check_reasons(a, TOKENS, 150) == []
    assert a.equals(nba_reason(f, 150))
    assert FALLBACK_REASON in a.to_list()


# ---------------------------------------------------------------------------------------------------
# content guard
# ---------------------------------------------------------------------------------------------------
def test_token_rules_whole_word_prefix_and_substring():
    reasons = [
        "Average coverage of usage",  # 0: 'age' inside words -> clean
        "Strong fit for their Age group",  # 1: 'age' whole word (case-insensitive)
        "age-banded segment",  # 2: 'age' followed by '-' -> whole word
        "Pregnancy-related benefits",  # 3: prefix pregnan*
        "nonpregnant",  # 4: prefix must start a word -> clean
        "contact bob@example.com",  # 5: '@' substring
        "Emails are fine?",  # 6: 'email' whole word only -> 'Emails' is clean
        "Religious",  # 7: 'religion' whole word -> clean
        "x" * 151,  # 8: too long
        None,  # 9: empty
        "   ",  # 10: blank
    ]
    v = check_reasons(reasons, TOKENS, 150)
    got = [(x["row"], x["kind"], x["token"]) for x in v]
    assert got == [(1, "token", "age"), (2, "token", "age"), (3, "token", "pregnan*"), (5, "token", "@"),
                   (8, "length", None), (9, "empty", None), (10, "empty", None)]  # fmt: skip


def test_multiword_token_matches_as_a_phrase():
    v = check_reasons(["Date of birth shown", "update of birthday"], ["date of birth"], 150)
    assert [x["row"] for x in v] == [0]


def test_guard_replaces_violations_with_the_fallback():
    reasons = pl.Series(["High likelihood (top 5%)", "Call about their age", "ok @ all", "y" * 200])
    fixed, v = guard_reasons(reasons, TOKENS, 150)
    assert fixed.to_list() == ["High likelihood (top 5%)", FALLBACK_REASON, FALLBACK_REASON, FALLBACK_REASON]
    assert sorted({x["row"] for x in v}) == [1, 2, 3]
    assert all(x["replaced_with_fallback"] for x in v)
    assert check_reasons(fixed, TOKENS, 150) == []
    short, _ = guard_reasons(["their age"], TOKENS, 40)
    assert len(short.item()) <= 40
    with pytest.raises(ValueError, match="fallback"):
        guard_reasons(["x"], ["signals"], 150)


# ---------------------------------------------------------------------------------------------------
# expanded drivers
# ---------------------------------------------------------------------------------------------------
def test_explanation_frame_contributions_and_drivers():
    f = frame([
        {"p_icp_pct": 0.9, "lift_norm": 1.0, "als_norm": 0.5, "EV_norm": 0.2},
        {"p_icp_pct": 0.1, "lift_norm": 0.5, "als_norm": 0.0, "EV_norm": 0.0},
        {"p_icp_pct": 0.0, "lift_norm": 0.0, "als_norm": 0.0, "EV_norm": 0.0},
    ]).with_columns(pl.lit("c").alias("customer_id"))
    f = f.with_columns(
        (pl.col("w_p_icp") * pl.col("p_icp_pct") + pl.col("w_lift") * pl.col("lift_norm")
         + pl.col("w_als") * pl.col("als_norm") + pl.col("w_ev") * pl.col("EV_norm")).alias("score")
    )  # fmt: skip
    ex = explanation_frame(f)
    assert ex.get_column("contrib_p_icp").to_list() == pytest.approx([0.54, 0.06, 0.0])
    assert ex.get_column("contrib_lift").to_list() == pytest.approx([0.2, 0.1, 0.0])
    total = ex["contrib_p_icp"] + ex["contrib_lift"] + ex["contrib_als"] + ex["contrib_ev"]
    assert total.to_list() == pytest.approx(ex["score"].to_list())
    assert ex.get_column("top_driver").to_list() == ["p_icp", "lift", None]
    assert ex.get_column("second_driver").to_list() == ["lift", "p_icp", None]
    for col in ("division", "customer_id", "score", "w_p_icp", "w_lift", "w_als", "w_ev", "top_affinity_division"):
        assert col in ex.columns


def test_explanation_frame_follows_the_ordering_of_the_list():
    """The drivers shown are those the reasons cite: under p_icp only the likelihood, under expected_value the
    likelihood and the value equally, under legacy none; under the blend the row's own weights."""
    f = frame([
        {"p_icp_pct": 0.9, "lift_norm": 1.0, "als_norm": 0.5, "EV_norm": 0.2},
        {"p_icp_pct": 0.3, "lift_norm": 0.5, "als_norm": 0.0, "EV_norm": 0.8},
    ]).with_columns(pl.lit("c").alias("customer_id"), pl.lit(0.5).alias("score"))
    blend = explanation_frame(f.with_columns(pl.lit("blend").alias("ordering")))
    assert blend.get_column("contrib_lift").to_list() == pytest.approx([0.2, 0.1])
    p_icp = explanation_frame(f.with_columns(pl.lit("p_icp").alias("ordering")))
    assert p_icp.get_column("contrib_p_icp").to_list() == pytest.approx([0.9, 0.3])
    assert p_icp.get_column("contrib_lift").to_list() == [0.0, 0.0]
    assert p_icp.get_column("top_driver").to_list() == ["p_icp", "p_icp"]
    assert p_icp.get_column("second_driver").to_list() == [None, None]
    ev = explanation_frame(f.with_columns(pl.lit("expected_value").alias("ordering")))
    assert ev.get_column("contrib_ev").to_list() == pytest.approx([0.1, 0.4])
    assert ev.get_column("top_driver").to_list() == ["p_icp", "ev"]
    assert ev.get_column("w_ev").to_list() == [0.5, 0.5]
    legacy = explanation_frame(f.with_columns(pl.lit("legacy").alias("ordering")))
    assert legacy.get_column("top_driver").to_list() == [None, None]


def _check_reasons_row_by_row(reasons, tokens, max_chars):
    """The guard's rules applied row by row, as a reference for `check_reasons` (which checks each distinct text once)."""
    from gosales_assets.core.explain import compile_forbidden

    patterns = compile_forbidden(tokens)
    out = []
    for i, r in enumerate(list(reasons)):
        if r is None or not str(r).strip():
            out.append({"row": i, "kind": "empty", "token": None, "length": 0})
            continue
        out += [{"row": i, "kind": "token", "token": tok, "length": len(r)} for tok, pat in patterns if pat.search(r)]
        if len(r) > max_chars:
            out.append({"row": i, "kind": "length", "token": None, "length": len(r)})
    return out


def test_check_and_guard_equal_the_row_by_row_rules_on_many_repeated_reasons():
    rng = np.random.default_rng(5)
    texts = ["High likelihood (top 5%)", "Call about their Age", "ok @ all", "y" * 151, None, "   ", "\x1c",
             "Strong affinity with CAMWorks", "ä" * 150, "Pregnancy and " + "z" * 150, "Emails are fine?"]
    reasons = [texts[i] for i in rng.integers(0, len(texts), 5_000)]
    want = _check_reasons_row_by_row(reasons, TOKENS, 150)
    assert len(want) > 2_000  # the sample breaks every rule many times
    assert check_reasons(reasons, TOKENS, 150) == want
    assert check_reasons(pl.Series(reasons, dtype=pl.String), TOKENS, 150) == want
    series = pl.Series("why", reasons, dtype=pl.String)
    fixed, v = guard_reasons(series, TOKENS, 150)
    bad = {x["row"] for x in want}
    assert fixed.name == "nba_reason" and fixed.dtype == pl.String and fixed.len() == len(reasons)
    assert fixed.to_list() == [FALLBACK_REASON if i in bad else r for i, r in enumerate(reasons)]
    assert v == [x | {"replaced_with_fallback": True} for x in want]
    assert series.to_list() == reasons  # the caller's reasons are not changed
    assert check_reasons([], TOKENS, 150) == [] and check_reasons(pl.Series([], dtype=pl.String), TOKENS, 150) == []
