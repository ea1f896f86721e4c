"""Drift: PSI against hand-computed values, severities, findings and the alerts document."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.drift import (
    DriftFinding,
    DriftThresholds,
    alerts_json,
    drift_findings,
    psi,
    psi_bin_edges,
    psi_categorical,
    severity,
)

EPS = 1e-4
# a bin with share 0.5 on one side and 0 (clipped to eps) on the other contributes (0.5 - eps) * ln(0.5 / eps)
HALF_VS_EMPTY = (0.5 - EPS) * math.log(0.5 / EPS)


# ---------------------------------------------------------------------------------------------------
# numeric PSI
# ---------------------------------------------------------------------------------------------------
def test_psi_identical_is_zero():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    # every bin has a == e, so every term (a - e) * ln(a / e) is 0
    assert psi(x, x) == 0.0
    assert psi(x, x[::-1].copy()) == 0.0  # order does not matter


def test_psi_two_bin_shift_exact():
    # expected [0, 0, 1, 1], 2 bins: median edge 0.5 -> bins (-inf, 0.5], (0.5, inf) (+ missing bin, empty)
    #   e = [2/4, 2/4] = [0.5, 0.5]
    # actual [0, 1, 1, 1] -> a = [0.25, 0.75]
    # PSI = (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    #     = 0.25 ln 2 + 0.25 ln 1.5 = 0.25 ln 3 = 0.274653...
    v = psi([0, 0, 1, 1], [0, 1, 1, 1], n_bins=2)
    assert v == pytest.approx(0.25 * math.log(3), abs=1e-12)
    assert v == pytest.approx(0.2746530722, abs=1e-9)
    # edges come from `expected` only: swapping the samples changes the bins. expected [0, 1, 1, 1] has
    # median 1 -> bins (-inf, 1], (1, inf): e = [1, 0 -> eps], and actual [0, 0, 1, 1] gives a = [1, 0 -> eps]
    assert psi([0, 1, 1, 1], [0, 0, 1, 1], n_bins=2) == 0.0


def test_psi_missing_values_form_their_own_bin():
    # expected [0, 0, 1, 1] -> e = [0.5, 0.5, missing 0 -> eps]
    # actual [0, 1, NaN, None] -> a = [0.25, 0.25, missing 0.5]
    # PSI = 2 * (0.25 - 0.5) ln(0.5) + (0.5 - eps) ln(0.5 / eps)
    #     = 0.5 ln 2 + 0.4999 ln 5000 = 0.346574 + 4.257745 = 4.604319
    v = psi(np.array([0, 0, 1, 1], dtype=float), [0, 1, float("nan"), None], n_bins=2)
    assert v == pytest.approx(0.5 * math.log(2) + HALF_VS_EMPTY, abs=1e-12)
    assert v == pytest.approx(4.604319, abs=1e-6)


def test_psi_bin_edges_quantiles_deduplicated_and_right_closed():
    # quantiles of [1, 2, 3, 4] at 0.25 / 0.5 / 0.75 (linear interpolation): 1.75, 2.5, 3.25
    assert psi_bin_edges([1, 2, 3, 4], 4).tolist() == [-np.inf, 1.75, 2.5, 3.25, np.inf]
    # a constant feature: all inner quantiles equal 5 -> one inner edge
    assert psi_bin_edges([5, 5, 5, 5], 10).tolist() == [-np.inf, 5.0, np.inf]
    # NaN ignored when computing edges
    assert psi_bin_edges([1, 2, 3, 4, np.nan], 4).tolist() == [-np.inf, 1.75, 2.5, 3.25, np.inf]
    # bins (-inf, 5], (5, inf): expected e = [1, 0 -> eps]; actual [5, 5, 6, 6] a = [0.5, 0.5]
    # PSI = (0.5 - 1) ln(0.5) + (0.5 - eps) ln(0.5 / eps) = 0.5 ln 2 + 0.4999 ln 5000
    # (5 itself falls in the first, right-closed bin: otherwise a would be [0, 1])
    assert psi([5, 5, 5, 5], [5, 5, 6, 6]) == pytest.approx(0.5 * math.log(2) + HALF_VS_EMPTY, abs=1e-12)


def test_psi_small_shift_below_warn_and_empty_is_none():
    rng = np.random.default_rng(0)
    a = rng.normal(size=20_000)
    b = rng.normal(size=20_000)
    assert psi(a, b) < 0.01  # same distribution, sampling noise only
    assert psi(a, b + 1.0) > 0.25  # one-sigma mean shift is a major shift
    assert psi([], [1.0]) is None
    assert psi([1.0], []) is None
    with pytest.raises(ValueError):
        psi([1.0], [1.0], eps=0)


# ---------------------------------------------------------------------------------------------------
# categorical PSI
# ---------------------------------------------------------------------------------------------------
def test_psi_categorical_exact():
    # e = {a: 0.5, b: 0.5}, a = {a: 0.25, b: 0.75} -> 0.25 ln 2 + 0.25 ln 1.5 = 0.25 ln 3
    assert psi_categorical(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(0.25 * math.log(3))
    assert psi_categorical(["x", "y", "y"], ["y", "x", "y"]) == 0.0
    # new category c: e = {a: 1, c: 0 -> eps}, a = {a: 0.5, c: 0.5}
    # PSI = (0.5 - 1) ln(0.5) + (0.5 - eps) ln(0.5 / eps)
    assert psi_categorical(["a", "a"], ["a", "c"]) == pytest.approx(0.5 * math.log(2) + HALF_VS_EMPTY)
    # None is its own category: e = {a: 0.5, None: 0.5}, a = {a: 1, None: 0 -> eps}
    # PSI = (1 - 0.5) ln(1 / 0.5) + (eps - 0.5) ln(eps / 0.5) = 0.5 ln 2 + 0.4999 ln 5000
    assert psi_categorical([None, "a"], ["a", "a"]) == pytest.approx(0.5 * math.log(2) + HALF_VS_EMPTY)
    # polars series accepted; values compared as strings
    assert psi_categorical(pl.Series(["a", "b"]), pl.Series(["b", "a"])) == 0.0
    assert psi_categorical([], ["a"]) is None


# ---------------------------------------------------------------------------------------------------
# severities
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [(0.0, "info"), (0.0999, "info"), (0.1, "warn"), (0.2499, "warn"), (0.25, "hard"), (3.0, "hard"),
     (-1.0, "info"), (None, "info"), (float("nan"), "info")],
)
def test_severity_boundaries(value, expected):
    assert severity(value, 0.1, 0.25) == expected


def test_severity_rejects_inverted_thresholds():
    with pytest.raises(ValueError):
        severity(0.2, 0.3, 0.1)
    with pytest.raises(ValueError):
        DriftThresholds(psi_warn=0.3, psi_hard=0.2)


def test_threshold_defaults():
    th = DriftThresholds()
    assert (th.psi_warn, th.psi_hard) == (0.1, 0.25)
    assert (th.prevalence_rel_warn, th.prevalence_rel_hard) == (0.5, 1.0)
    assert (th.cal_mae_increase_warn, th.cal_mae_increase_hard) == (0.02, 0.05)


# ---------------------------------------------------------------------------------------------------
# findings
# ---------------------------------------------------------------------------------------------------
def _drifted_case() -> list[DriftFinding]:
    train_scores = np.linspace(0.0, 1.0, 1000)
    current_scores = np.linspace(0.9, 1.0, 500)  # everything in the top decile: major shift
    # 1,000 rows a side: the region's PSI (0.169) is well above its noise floor (chi2(1) at 0.001 / 9 over N = 500:
    # 0.030); with 100 rows a side the floor is 0.30 and the same shares stay info (see the test below).
    x = np.arange(1000, dtype=float) + 1.0
    train = pl.DataFrame({
        "x": x,
        "region": ["a"] * 500 + ["b"] * 500,
        "gone": x,
    })
    current = pl.DataFrame({
        "x": x[::-1],                          # same values: PSI 0
        "region": ["a"] * 300 + ["b"] * 700,   # 0.2 ln(5/3) + 0.2 ln(1.4) = 0.169 -> warn
        "new_only": x,
    })
    return drift_findings(
        train_scores, current_scores, train, current, ["x", "region", "gone", "not_in_training"],
        prevalence_train=0.05, prevalence_current=0.12,   # |0.12 - 0.05| / 0.05 = 1.4 -> hard
        cal_mae_train=0.03, cal_mae_current=0.06,         # +0.03 -> warn
        thresholds=DriftThresholds(),
    )


def test_drift_findings_for_a_drifted_case():
    found = {f.subject: f for f in _drifted_case()}
    assert list(found) == ["score", "x", "region", "gone", "prevalence", "cal_mae"]

    score = found["score"]
    assert score.kind == "score_psi" and score.severity == "hard" and score.value > 0.25
    assert "retrain the model on recent cutoffs" in score.action
    assert score.baseline == pytest.approx(0.5) and score.current == pytest.approx(0.95)

    assert found["x"].kind == "feature_psi" and found["x"].value == 0.0 and found["x"].severity == "info"
    assert found["x"].action == "no action needed"

    region = found["region"]
    # e = {a: 0.5, b: 0.5}, a = {a: 0.3, b: 0.7}: (0.3-0.5) ln(0.6) + (0.7-0.5) ln(1.4) = 0.169460
    assert region.value == pytest.approx(0.2 * math.log(5 / 3) + 0.2 * math.log(1.4))
    assert region.severity == "warn" and "region" in region.action
    assert region.baseline is None and region.current is None

    assert found["gone"].kind == "feature_missing" and found["gone"].severity == "hard"

    prev = found["prevalence"]
    assert prev.kind == "prevalence_shift" and prev.value == pytest.approx(1.4) and prev.severity == "hard"
    assert "check labels and the extract for missing months" in prev.action
    assert (prev.baseline, prev.current) == (0.05, 0.12)

    cal = found["cal_mae"]
    assert cal.kind == "calibration_regression" and cal.value == pytest.approx(0.03) and cal.severity == "warn"
    assert "recalibrate" in cal.action


def test_drift_findings_stable_case_is_info_and_optional_parts_skipped():
    s = np.linspace(0, 1, 200)
    f = pl.DataFrame({"x": np.arange(200, dtype=float)})
    out = drift_findings(s, s, f, f, ["x"], cal_mae_train=0.05, cal_mae_current=0.04,
                         thresholds=DriftThresholds())
    assert [(x.kind, x.severity) for x in out] == [
        ("score_psi", "info"), ("feature_psi", "info"), ("calibration_regression", "info")]
    assert out[2].value == pytest.approx(-0.01)  # calibration improved: no regression
    # prevalence: relative change 0.5 is exactly the warn threshold; training prevalence 0 -> undefined, hard
    w = drift_findings(s, s, f, f, [], prevalence_train=0.1, prevalence_current=0.15)
    assert w[-1].value == pytest.approx(0.5) and w[-1].severity == "warn"
    z = drift_findings(s, s, f, f, [], prevalence_train=0.0, prevalence_current=0.02)
    assert z[-1].value is None and z[-1].severity == "hard"


def test_alerts_json_ordering_and_shape():
    doc = alerts_json(_drifted_case(), "Solidworks", dt.date(2024, 6, 30))
    json.dumps(doc, allow_nan=False)  # JSON-able, no NaN
    assert doc["division"] == "Solidworks" and doc["cutoff"] == "2024-06-30"
    assert doc["max_severity"] == "hard"
    assert doc["counts"] == {"hard": 3, "warn": 2, "info": 1}
    # hard first, then warn, then info; within a severity the strongest first (|z| where a test applies, else
    # |value|: score PSI ~8.3 > prevalence change 1.4 > a missing feature, no value), then by subject
    assert [(f["severity"], f["subject"]) for f in doc["findings"]] == [
        ("hard", "score"), ("hard", "prevalence"), ("hard", "gone"),
        ("warn", "region"), ("warn", "cal_mae"),
        ("info", "x"),
    ]
    assert set(doc["findings"][0]) == {"kind", "subject", "value", "severity", "baseline", "current", "action", "z",
                                       "detail"}


def test_alerts_json_empty_and_nan():
    assert alerts_json([], "D", "2024-01-31")["max_severity"] == "info"
    nan = DriftFinding("score_psi", "score", float("nan"), "info", None, float("inf"), "no action needed")
    doc = alerts_json([nan], "D", "2024-01-31")
    assert doc["findings"][0]["value"] is None and doc["findings"][0]["current"] is None
    json.dumps(doc, allow_nan=False)
