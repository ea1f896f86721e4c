"""The simple peers and the gate relative to them: scores, the paired interval, the verdict and the diagnosis of a
below-chance model, on seeded data where the answer is known."""

import json

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.gates import evaluate_gate
from gosales_assets.core.metrics import auc_interval, paired_auc_delong, roc_auc
from gosales_assets.core.peers import (
    PEERS,
    compare_with_peers,
    heuristic_score,
    paired_auc_difference,
    peer_scores,
    rfm_logistic_oof,
)
from gosales_assets.settings import GateThresholds


def _frame(n: int = 2000, seed: int = 5) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Buying decays with the log of the time since the last purchase and grows with 12-month revenue; a fifth never
    bought."""
    rng = np.random.default_rng(seed)
    recency = rng.exponential(200, n)
    revenue = rng.lognormal(8, 1.2, n)
    never = rng.random(n) < 0.2
    logit = -2.0 - 0.8 * (np.log1p(recency) - 5) + 0.5 * (np.log(revenue) - 8)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    y[never] = (rng.random(never.sum()) < 0.02).astype(int)
    frame = pl.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "rfm__all__recency_days__all": np.where(never, np.nan, recency),
        "rfm__all__txn_count__12m": np.where(never, 0, rng.poisson(3, n)),
        "rfm__all__revenue_sum__12m": np.where(never, 0.0, revenue),
        "life__all__tenure_days__all": rng.uniform(30, 3000, n),
    }).with_columns(pl.col("rfm__all__recency_days__all").fill_nan(None))
    folds = np.arange(n) % 4
    return frame, y, folds


def test_heuristic_peers_rank_as_a_rep_would():
    frame, y, _ = _frame()
    rec = heuristic_score(frame, "recency")
    never = frame.get_column("rfm__all__recency_days__all").is_null().to_numpy()
    assert (rec[never] < rec[~never].min()).all()  # never bought: last
    assert roc_auc(y, rec) > 0.65  # recent buyers buy again (planted)
    assert roc_auc(y, heuristic_score(frame, "monetary")) > 0.55
    with pytest.raises(ValueError, match="needs the feature"):
        heuristic_score(frame.drop("rfm__all__txn_count__12m"), "frequency")


def test_rfm_logistic_is_out_of_fold_and_deterministic():
    frame, y, folds = _frame()
    a = rfm_logistic_oof(frame, y, folds)
    assert np.array_equal(a, rfm_logistic_oof(frame, y, folds)) and np.isfinite(a).all()
    # it combines both planted drivers, so it beats each single heuristic
    assert roc_auc(y, a) > max(roc_auc(y, heuristic_score(frame, p)) for p in ("recency", "monetary"))
    # out of fold: a row's score does not depend on its own label
    flipped = y.copy()
    flipped[0] = 1 - flipped[0]
    assert rfm_logistic_oof(frame, flipped, folds)[0] == a[0]


def test_rfm_logistic_fits_the_candidates_sample(monkeypatch):
    """With the candidate's fit weights the regression learns from the rows its fits used: a weight-0 row is scored
    but never fitted, an integer weight counts as that many copies of the row, all-1 weights are no weights."""
    from sklearn.linear_model import LogisticRegression

    from gosales_assets.core.peers import fit_rfm_logistic

    frame, y, folds = _frame()
    rng = np.random.default_rng(3)
    weights = np.where(y == 1, 1.0, rng.choice([0.0, 2.0], size=y.size))
    # the longest recency (what "never bought" is filled with, learned from every row) stays in the copies below
    weights[np.nanargmax(frame.get_column("rfm__all__recency_days__all").to_numpy())] = 1.0
    plain = rfm_logistic_oof(frame, y, folds)
    assert np.array_equal(rfm_logistic_oof(frame, y, folds, np.ones(y.size)), plain)
    weighted = rfm_logistic_oof(frame, y, folds, weights)
    assert np.isfinite(weighted).all() and not np.allclose(weighted, plain)
    # a sampled-out row's label never reaches a fit (its own score is out of fold anyway)
    out = np.flatnonzero(weights == 0)[:25]
    flipped = y.copy()
    flipped[out] = 1 - flipped[out]
    assert np.array_equal(rfm_logistic_oof(frame, flipped, folds, weights), weighted)
    # the cost follows the sample: each fold's fit gets only its kept rows
    fitted_rows, real_fit = [], LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, x, yy, **kw: (fitted_rows.append(len(yy)),
                                                                              real_fit(self, x, yy, **kw))[1])
    rfm_logistic_oof(frame, y, folds, weights)
    assert fitted_rows == [int(((folds != f) & (weights > 0)).sum()) for f in range(4)]
    monkeypatch.undo()
    # weight 2 = the row twice: the same fits as on a frame where each kept negative is duplicated
    rows = np.repeat(np.arange(y.size), weights.astype(int))
    copies = rfm_logistic_oof(frame[rows], y[rows], folds[rows])
    first = np.unique(rows, return_index=True)[1]
    kept = weights > 0
    assert np.allclose(weighted[kept], copies[first], rtol=0, atol=1e-9)
    fit, twice = fit_rfm_logistic(frame, y, weights), fit_rfm_logistic(frame[rows], y[rows])
    assert fit.rows == int(kept.sum()) and fit.positives == int(y.sum())
    assert np.allclose(fit.coef, twice.coef, rtol=0, atol=1e-9) and np.allclose(fit.scale, twice.scale)
    assert fit_rfm_logistic(frame, y, np.ones(y.size)) == fit_rfm_logistic(frame, y)
    with pytest.raises(ValueError, match="one finite, non-negative number per row"):
        rfm_logistic_oof(frame, y, folds, -weights)


def test_paired_interval_brackets_the_difference():
    frame, y, _ = _frame()
    good, noise = heuristic_score(frame, "recency"), np.random.default_rng(1).random(y.size)
    diff, lo, hi = paired_auc_difference(y, good, noise, n_boot=300, seed=2)
    assert diff == pytest.approx(roc_auc(y, good) - roc_auc(y, noise)) and lo < diff < hi and lo > 0
    assert paired_auc_difference(np.zeros(5, int), good[:5], noise[:5]) == (None, None, None)
    # the default interval is DeLong's: same difference, about the bootstrap's width, far cheaper
    d_diff, d_lo, d_hi = paired_auc_difference(y, good, noise)
    assert d_diff == pytest.approx(diff) and d_lo < d_diff < d_hi and d_lo > 0
    assert (d_hi - d_lo) == pytest.approx(hi - lo, rel=0.25)


def _delong_by_pairs(y, a, b):
    """DeLong's variance from its definition (every positive × negative pair, ties count ½): the reference."""
    def placements(s):
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        return psi.mean(axis=1), psi.mean(axis=0), psi.mean()
    va, wa, auc_a = placements(a)
    vb, wb, auc_b = placements(b)
    m, n = va.size, wa.size
    var = np.var(va - vb, ddof=1) / m + np.var(wa - wb, ddof=1) / n
    return auc_a - auc_b, np.sqrt(var)


def test_delong_matches_its_definition_with_ties_and_is_zero_for_identical_scores():
    rng = np.random.default_rng(11)
    y = (rng.random(300) < 0.2).astype(int)
    a = np.round(y * 0.6 + rng.random(300), 1)      # rounded: many ties within and across classes
    b = np.round(y * 0.2 + rng.random(300), 1)
    diff, se = paired_auc_delong(y, a, b)
    ref_diff, ref_se = _delong_by_pairs(y, a, b)
    assert diff == pytest.approx(ref_diff, abs=1e-12) and se == pytest.approx(ref_se, rel=1e-9)
    assert diff == pytest.approx(roc_auc(y, a) - roc_auc(y, b))
    assert paired_auc_delong(y, a, a.copy()) == (0.0, 0.0)
    assert paired_auc_delong(np.ones(4, int), a[:4], b[:4]) is None


def test_gate_holds_a_candidate_that_trails_the_best_peer_and_diagnoses_below_chance():
    frame, y, folds = _frame()
    peers = peer_scores(frame, y, folds)
    thresholds = GateThresholds(auc_min=0.0, lift10_min=0.0, cal_mae_max=1.0, peer_margin=0.01)
    metrics = {"auc": 0.7, "lift_at_10": 2.0, "cal_mae": 0.01}
    strong = peers["rfm_logistic"] + 1e-9 * np.random.default_rng(3).random(y.size)  # ties the best peer
    ok = compare_with_peers(y, strong, peers, margin=0.01, n_boot=200, seed=1, folds=folds)
    assert ok.passed and ok.best_peer == "rfm_logistic" and abs(ok.difference) < 0.01 and ok.diagnosis is None
    assert evaluate_gate(metrics, thresholds, ok).passed

    weak = heuristic_score(frame, "monetary")  # a worse ordering than recency or the RFM regression
    held = compare_with_peers(y, weak, peers, margin=0.01, n_boot=200, seed=1, folds=folds)
    gate = evaluate_gate(metrics, thresholds, held)
    assert not held.passed and held.difference < -0.01 and held.interval[1] < 0
    assert not gate.passed and "trails the best simple peer" in gate.detail and "rfm_logistic" in gate.detail
    assert gate.values["best_peer"] == "rfm_logistic" and gate.values["auc_vs_best_peer"] < 0

    backwards = -peers["rfm_logistic"]
    flagged = compare_with_peers(y, backwards, peers, margin=0.01, n_boot=100, seed=1, folds=folds)
    assert flagged.candidate_auc < 0.5 and not flagged.passed
    assert "below chance" in flagged.diagnosis and "4 of 4 folds below chance" in flagged.diagnosis
    assert "rank these buyers backwards" in flagged.diagnosis
    assert "below chance" in evaluate_gate(metrics, thresholds, flagged).values["below_chance"]


# ---- the peers at a cutoff: the RFM regression refitted on all training rows, scores and ranks -------------------
def test_rfm_fit_is_stored_as_numbers_and_reused_at_scoring():
    from sklearn.linear_model import LogisticRegression

    from gosales_assets.core.peers import RfmLogistic, _rfm_matrix, fit_rfm_logistic

    frame, y, _ = _frame()
    fit = fit_rfm_logistic(frame, y)
    assert fit.rows == y.size and fit.positives == int(y.sum()) and len(fit.coef) == len(fit.features) + 1
    x = _rfm_matrix(frame)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    reference = LogisticRegression(C=1.0, max_iter=1000).fit((x - mu) / sd, y).predict_proba((x - mu) / sd)[:, 1]
    assert np.allclose(fit.score(frame), reference)
    again = RfmLogistic.from_dict(json.loads(json.dumps(fit.to_dict())))  # what peers.json holds
    assert np.array_equal(again.score(frame), fit.score(frame))
    # the fill of "never bought" was learned at fit time: scoring a population of never-buyers does not relearn it
    never = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("rfm__all__recency_days__all")).head(5)
    longest = frame.get_column("rfm__all__recency_days__all").max()
    known = frame.head(5).with_columns(pl.lit(longest).alias("rfm__all__recency_days__all"))
    x_never, x_known = (_rfm_matrix(f, list(fit.features), np.array(fit.fill)) for f in (never, known))
    assert np.allclose(x_never[:, :-1], x_known[:, :-1]) and (x_never[:, -1] == 1).all()
    assert fit_rfm_logistic(frame, np.zeros(y.size, int)) is None


def test_score_peers_ranks_each_peer_and_the_best_one():
    from gosales_assets.core.peers import CROSS_VALIDATION, PeerChoice, fit_rfm_logistic, score_peers

    frame, y, _ = _frame(n=300)
    scored = score_peers(frame, PeerChoice("rfm_logistic", CROSS_VALIDATION, fit_rfm_logistic(frame, y), "cv"))
    assert scored.height == frame.height and scored.get_column("customer_id").equals(frame.get_column("customer_id"))
    # the recency rank is the order by days since the last purchase (never bought: last), ties by customer_id
    by_days = (frame.with_row_index("i").sort(["rfm__all__recency_days__all", "customer_id"], nulls_last=True)
               .get_column("customer_id").to_list())
    assert scored.sort("recency_rank").get_column("customer_id").to_list() == by_days
    never = frame.get_column("rfm__all__recency_days__all").is_null()
    assert scored.filter(never).get_column("recency_score").null_count() == never.sum()
    assert scored.filter(never).get_column("recency_rank").min() == frame.height - never.sum() + 1
    m = scored.sort("monetary_rank").get_column("monetary_score").to_list()
    assert m == sorted(m, reverse=True)
    for peer in PEERS:
        assert sorted(scored.get_column(f"{peer}_rank").to_list()) == list(range(1, frame.height + 1))
    assert scored.get_column("best_peer_rank").equals(scored.get_column("rfm_logistic_rank").alias("best_peer_rank"))
    # no fit (a skipped model): the regression has no scores, the best peer is the default
    plain = score_peers(frame, PeerChoice("monetary", "default", None, "skipped"))
    assert plain.get_column("rfm_logistic_score").null_count() == frame.height
    assert plain.get_column("rfm_logistic_rank").null_count() == frame.height
    assert plain.get_column("best_peer_score").equals(plain.get_column("monetary_score").alias("best_peer_score"))


def test_peer_choice_follows_the_model_that_the_registry_row_names():
    from gosales_assets.core.peers import CROSS_VALIDATION, DEFAULT, fit_rfm_logistic, peer_choice

    frame, y, _ = _frame(n=300)
    record = {"model_version": "v1", "best_peer": "rfm_logistic", "rows": 300,
              "peer_aucs": {"recency": 0.7, "rfm_logistic": 0.75}, "rfm_logistic": fit_rfm_logistic(frame, y).to_dict()}
    held = peer_choice({"status": "held", "model_version": "v1", "reason": "gate"}, record)
    assert held.best_peer == "rfm_logistic" and held.basis == CROSS_VALIDATION and held.rfm is not None
    assert "out-of-fold AUC" in held.note
    skipped = peer_choice({"status": "skipped", "reason": "InsufficientData: 3 positives"}, None, "frequency")
    assert skipped.best_peer == "frequency" and skipped.basis == DEFAULT and skipped.rfm is None
    assert "no model was trained" in skipped.note and "3 positives" in skipped.note
    stale = peer_choice({"status": "held", "model_version": "v2", "reason": "gate"}, record)
    assert stale.basis == DEFAULT and stale.rfm is None and "belongs to model v1" in stale.note
    assert peer_choice({}, None).basis == DEFAULT


def test_auc_interval_is_delongs_and_tells_signal_from_luck():
    rng = np.random.default_rng(5)
    y = (rng.random(400) < 0.1).astype(int)
    signal, noise = y * 1.0 + rng.random(400), rng.random(400)
    lo, hi = auc_interval(y, signal)
    auc = roc_auc(y, signal)
    _, se = _delong_by_pairs(y, signal, np.zeros(400))  # a constant has placements ½: the difference's se is AUC's
    assert lo == pytest.approx(auc - 1.959963984540054 * se) and hi == pytest.approx(min(1.0, auc + 1.96 * se), abs=1e-3)
    assert lo > 0.5
    nlo, nhi = auc_interval(y, noise)
    assert nlo < 0.5 < nhi
    assert auc_interval(np.zeros(4, int), noise[:4]) is None


def test_gate_holds_a_model_not_distinguishable_from_chance():
    loose = GateThresholds(auc_min=0.0, lift10_min=0.0, cal_mae_max=1.0)
    lucky = {"auc": 0.568, "lift_at_10": 1.5, "cal_mae": 0.01, "auc_low": 0.49, "auc_high": 0.646}
    g = evaluate_gate(lucky, loose, peer_gate=False)
    assert not g.passed and g.misses == [
        "auc 0.5680 is not distinguishable from chance: its 95 % interval [0.4900, 0.6460] includes 0.5"]
    assert g.values["auc_low"] == 0.49 and g.values["auc_above_chance"] is True
    assert evaluate_gate(lucky | {"auc_low": 0.51}, loose, peer_gate=False).passed
    assert evaluate_gate(lucky, loose.model_copy(update={"auc_above_chance": False}), peer_gate=False).passed
    assert evaluate_gate({k: v for k, v in lucky.items() if k != "auc_low"}, loose, peer_gate=False).passed
