"""Calibration method rule and the Calibrator (Platt sigmoid on the logit, isotonic)."""

from __future__ import annotations

import numpy as np
import pytest

from gosales_assets.core.calibration import Calibrator, calibration_method, logit


def test_method_rule_at_the_boundary():
    assert calibration_method(199, 200) == "sigmoid"
    assert calibration_method(200, 200) == "isotonic"  # at the threshold -> isotonic
    assert calibration_method(201, 200) == "isotonic"
    assert calibration_method(0, 1) == "sigmoid"
    assert calibration_method(1, 1) == "isotonic"


def test_isotonic_hand():
    # PAV on y = [0, 1, 0, 1] ordered by score: the violating pair (1, 0) pools to 0.5 -> [0, .5, .5, 1]
    c = Calibrator("isotonic").fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    out = c.transform([0.1, 0.2, 0.3, 0.4, 0.0, 0.25, 0.9])
    # 0.0 and 0.9 are outside the fitted range -> clipped to the end values; 0.25 lies inside a flat step
    assert out.tolist() == pytest.approx([0.0, 0.5, 0.5, 1.0, 0.0, 0.5, 1.0])


def test_sigmoid_recovers_identity_on_calibrated_scores():
    rng = np.random.default_rng(0)
    s = rng.uniform(0.02, 0.98, 40_000)
    y = (rng.random(s.size) < s).astype(int)  # already calibrated: logit(P) = 1 * logit(s) + 0
    c = Calibrator("sigmoid").fit(s, y)
    assert c.a == pytest.approx(1.0, abs=0.05)
    assert c.b == pytest.approx(0.0, abs=0.05)
    grid = np.array([0.05, 0.5, 0.95])
    assert c.transform(grid) == pytest.approx(grid, abs=0.02)


def test_sigmoid_fixes_overconfident_scores():
    rng = np.random.default_rng(1)
    true_p = rng.uniform(0.05, 0.6, 20_000)
    y = (rng.random(true_p.size) < true_p).astype(int)
    raw = 1 / (1 + np.exp(-3 * logit(true_p)))  # over-confident: logit tripled
    c = Calibrator("sigmoid").fit(raw, y)
    assert c.a == pytest.approx(1 / 3, abs=0.03)
    assert np.abs(c.transform(raw) - true_p).mean() < 0.01


def test_sigmoid_stays_finite_on_separable_scores():
    c = Calibrator("sigmoid").fit([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert np.isfinite(c.a) and np.isfinite(c.b) and c.a > 0
    out = c.transform([0.1, 0.9])
    # Platt's smoothed targets: negatives -> 1/(2+2) = .25, positives -> 3/4; the fit stays inside them
    assert 0.0 < out[0] < 0.5 < out[1] < 1.0


def test_calibrator_is_monotone_and_bounded():
    rng = np.random.default_rng(2)
    s = rng.random(2000)
    y = (rng.random(2000) < s**2).astype(int)
    grid = np.linspace(0, 1, 101)
    for method in ("sigmoid", "isotonic"):
        out = Calibrator(method).fit(s, y).transform(grid)
        assert np.all(np.diff(out) >= -1e-12)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_errors():
    with pytest.raises(ValueError):
        Calibrator("beta")
    with pytest.raises(RuntimeError):
        Calibrator().transform([0.5])
    with pytest.raises(ValueError):
        Calibrator().fit([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError):
        Calibrator().fit([], [])
    assert Calibrator("isotonic").fit([0.1, 0.2], [0, 1]).params()["method"] == "isotonic"
