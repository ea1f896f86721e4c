"""The pure pieces of benchmarks/model_quality.py (the quality report of issue 14) on small seeded frames: the pooled
paired bootstrap of engine − best peer, the per-division interval-width rule, list coverage, the reading of the
warehouse's forward rows, the ranking orderings and the report's hand-written sections. The report itself is a
benchmark (`make quality`), not a test."""

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from gosales_assets.core.metrics import calibration_mae, lift_at_k, roc_auc
from gosales_assets_tests.benchmark_scripts import loaded_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "model_quality.py"


@pytest.fixture(scope="module")
def mq():
    yield from loaded_script(SCRIPT, "model_quality_script")


def _partition(mq, division, cutoff, n, positives, engine_signal, peer_signal, seed, cv_best="monetary"):
    """A partition whose engine and peers see the label through `*_signal` (0: noise only); recency ties a lot."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, positives, replace=False)] = 1
    noise = rng.normal(size=(4, n))
    scores = {
        "engine": 1 / (1 + np.exp(-(engine_signal * y + noise[0]))),
        "recency": np.round(peer_signal * 0.5 * y + noise[1]),          # integer-valued: many ties
        "frequency": peer_signal * 0.8 * y + noise[2],
        "monetary": peer_signal * y + noise[3],
        "rfm_logistic": None,                                            # a peer without scores
    }
    return mq.Partition(division, cutoff, y, scores, cv_best, "cross_validation")


def test_stratified_draws_keep_each_class_and_the_row_order(mq):
    y = np.array([0, 1, 0, 0, 1, 0, 0, 1, 0, 0])
    idx = mq.stratified_draws(y, 50, np.random.default_rng(3))
    assert idx.shape == (50, 10)
    assert (y[idx].sum(axis=1) == 3).all()                              # positives resampled among positives
    assert (np.diff(idx, axis=1) >= 0).all()                            # sorted: ties rank in row order
    assert np.array_equal(idx, mq.stratified_draws(y, 50, np.random.default_rng(3)))


def test_vectorized_auc_and_lift_equal_core_metrics_on_every_draw(mq):
    part = _partition(mq, "A", dt.date(2025, 9, 30), 120, 15, 1.5, 1.0, seed=1)
    idx = mq.stratified_draws(part.y, 40, np.random.default_rng(0))
    y = part.y[idx]
    for name in ("engine", "recency", "monetary"):
        s = part.scores[name][idx]
        auc, lift = mq.auc_rows(y, s), mq.lift_rows(y, s)
        for r in range(idx.shape[0]):
            assert auc[r] == pytest.approx(roc_auc(y[r], s[r]), abs=1e-12)
            assert lift[r] == pytest.approx(lift_at_k(y[r], s[r], 10.0), abs=1e-12)


def test_pooled_difference_is_the_positive_weighted_mean_with_a_paired_interval(mq):
    parts = [_partition(mq, "A", dt.date(2025, 9, 30), 300, 30, 2.0, 1.0, seed=1),
             _partition(mq, "B", dt.date(2025, 9, 30), 200, 10, 2.0, 1.0, seed=2)]
    needed = [{"engine", "monetary", "recency", "frequency"}] * 2
    boots = mq.bootstrap_partitions(parts, needed, reps=400, seed=0)
    res = mq.pooled_difference(parts, boots, "auc", "engine", "cv_best")
    a = [roc_auc(p.y, p.scores["engine"]) - roc_auc(p.y, p.scores["monetary"]) for p in parts]
    assert res["diff"] == pytest.approx((30 * a[0] + 10 * a[1]) / 40, abs=1e-12)
    assert (res["partitions"], res["positives"], res["left_out"]) == (2, 40, 0)
    assert res["low"] < res["diff"] < res["high"]
    assert res["low"] > 0 and mq.interval_verdict(res["diff"], res["low"]) == "PASS"   # a planted, clear win
    # seeded: the same draws give the same interval
    again = mq.pooled_difference(parts, mq.bootstrap_partitions(parts, needed, reps=400, seed=0), "auc", "engine",
                                 "cv_best")
    assert (again["low"], again["high"]) == (res["low"], res["high"])
    # an ordering against itself: difference 0 on every draw, so the interval is [0, 0] and not above 0
    same = mq.pooled_difference(parts, boots, "lift_at_10", "monetary", "monetary")
    assert (same["diff"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert mq.interval_verdict(same["diff"], same["low"]) == "FAIL"
    # hindsight: per partition the peer with the best forward value of the metric
    hind = mq.pooled_difference(parts, boots, "auc", "engine", "hindsight")
    best = [max(roc_auc(p.y, p.scores[k]) for k in ("recency", "frequency", "monetary")) for p in parts]
    engine = [roc_auc(p.y, p.scores["engine"]) for p in parts]
    assert hind["diff"] == pytest.approx((30 * (engine[0] - best[0]) + 10 * (engine[1] - best[1])) / 40, abs=1e-12)
    # a peer without scores (the RFM regression of a skipped model) leaves its partitions out, never crashes
    none = mq.pooled_difference(parts, boots, "auc", "engine", "rfm_logistic")
    assert none["diff"] is None and none["left_out"] == 2


def test_division_rule_fails_only_beyond_the_interval_width(mq):
    assert mq.division_rule(-0.05, -0.08, -0.02) == "PASS"      # below by 0.05, width 0.06
    assert mq.division_rule(-0.07, -0.09, -0.05) == "FAIL"      # below by 0.07, width 0.04
    assert mq.division_rule(0.02, -0.01, 0.05) == "PASS"
    assert mq.division_rule(None, None, None) == "n/a"
    assert mq.interval_verdict(0.01, -0.001) == "FAIL" and mq.interval_verdict(0.01, 0.001) == "PASS"


def test_engine_vs_peers_fails_the_division_whose_engine_trails_its_peer(mq):
    parts = [_partition(mq, "Good", dt.date(2025, 9, 30), 400, 40, 2.5, 1.0, seed=1),
             _partition(mq, "Good", dt.date(2025, 12, 31), 400, 30, 2.5, 1.0, seed=2),
             _partition(mq, "Bad", dt.date(2025, 9, 30), 600, 60, 0.0, 2.0, seed=3)]   # engine is noise
    out = mq.engine_vs_peers(parts, reps=300, seed=0)
    div = {r["division"]: r for r in out["divisions"].iter_rows(named=True)}
    assert div["Good"]["rule"] == "PASS" and div["Good"]["auc_diff"] > 0 and div["Good"]["partitions"] == 2
    assert div["Bad"]["rule"] == "FAIL" and -div["Bad"]["auc_diff"] > div["Bad"]["width"]
    assert out["pooled"]["auc"]["cv_best"]["partitions"] == 3
    cal, pooled = mq.calibration_table(parts, 10)
    assert cal.get_column("division").to_list() == ["Bad", "Good"]
    good = np.concatenate([p.y for p in parts[:2]]), np.concatenate([p.scores["engine"] for p in parts[:2]])
    assert cal.filter(pl.col("division") == "Good").item(0, "cal_mae") == pytest.approx(calibration_mae(*good, 10))
    assert set(cal.get_column("bar")) <= {"PASS", "FAIL"} and pooled is not None


def _models_and_lists():
    d1, d2 = dt.date(2025, 12, 31), dt.date(2026, 3, 31)
    models = pl.DataFrame({
        "division": ["A", "A", "B", "B", "C", "D"],
        "cutoff_date": [d1, d2, d1, d2, d2, d2],
        "status": ["promoted", "held", "skipped", "skipped", "held", "promoted"],
        "training_positives": [25, 20, 12, None, 40, 31],
    })
    lists = pl.DataFrame({
        "division": ["A", "A", "B", "C", "D"],
        "cutoff_date": [d1, d2, d1, d2, d1],
        "score_source": ["model", "peer:frequency", "peer:monetary", "unlabelled", "model"],
        "rows": [100, 90, 80, 70, 60],
    })
    return models, lists


def test_coverage_names_every_trainable_partition_without_a_list(mq):
    models, lists = _models_and_lists()
    cov = mq.coverage_table(models, lists, 20)
    got = {(r["division"], str(r["cutoff_date"])): (r["trainable"], r["list"], r["covered"])
           for r in cov.iter_rows(named=True)}
    assert got == {
        ("A", "2025-12-31"): (True, "model", True),
        ("A", "2026-03-31"): (True, "peer:frequency", True),    # exactly 20 positives: a model could be trained
        ("B", "2025-12-31"): (False, "peer:monetary", None),    # too few positives: not judged
        ("B", "2026-03-31"): (False, None, None),
        ("C", "2026-03-31"): (True, None, False),               # rows, but not labelled as a peer fallback
        ("D", "2026-03-31"): (True, None, False),               # its list is at another cutoff only
    }
    empty = pl.DataFrame()
    result = mq.SeedResult(7, 100, Path("."), empty, empty, [], {}, empty, None, cov, empty, empty, None, None, [])
    verdict, text = mq.bar_lines(result)["d"]
    assert verdict == "FAIL"
    assert text.startswith("2 of 4 listed (1 by the model, 1 by the peer fallback)")
    assert "C 2026-03-31 (held)" in text and "D 2026-03-31 (promoted)" in text
    assert mq.bar_lines(mq.SeedResult(7, 100, Path("."), empty, empty, [], {}, empty, None,
                                      mq.coverage_table(models.filter(pl.col("division") == "A"), lists, 20),
                                      empty, empty, None, None, []))["d"][0] == "PASS"


def test_warehouse_readers_join_the_forward_rows_and_count_training_positives(mq):
    con = duckdb.connect()
    c = dt.date(2025, 9, 30)
    ids = [f"C{i:03d}" for i in range(40)]
    y = [1 if i % 5 == 0 else 0 for i in range(40)]
    rng = np.random.default_rng(0)
    icp = pl.DataFrame({"division": "A", "cutoff_date": c, "customer_id": ids, "prediction_window_months": 6,
                        "icp_score": np.clip(0.1 + 0.5 * np.array(y) + rng.normal(0, 0.2, 40), 0, 1)})
    labels = pl.DataFrame({"division": "A", "cutoff_date": c, "customer_id": ids, "label": y,
                           "censored": [i == 39 for i in range(40)]})   # one censored row: not a forward row
    peers = pl.DataFrame({"division": "A", "cutoff_date": c, "customer_id": ids, "best_peer": "monetary",
                          "best_peer_basis": "cross_validation",
                          **{f"{p}_score": rng.normal(size=40) for p in ("recency", "frequency", "monetary")},
                          "rfm_logistic_score": pl.Series([None] * 40, dtype=pl.Float64)})
    for name, frame in (("icp_scores", icp), ("labels", labels), ("peer_scores", peers)):
        con.register(f"{name}_df", frame)
        con.execute(f"create table {name} as select * from {name}_df")
    con.execute("create table forward_validation as select 'A' as division, date '2025-09-30' as cutoff_date, "
                "'validated' as status, 0.5::double as auc, 39 as rows")
    parts, notes = mq.forward_partitions(con, dt.date(2026, 10, 31))
    assert len(parts) == 1 and parts[0].y.size == 39 and parts[0].positives == 8 and parts[0].cv_best == "monetary"
    assert parts[0].scores["rfm_logistic"] is None
    assert len(notes) == 1 and "forward_validation has 39 rows / AUC 0.5" in notes[0]   # the cross-check speaks
    assert mq.forward_partitions(con, dt.date(2026, 1, 31))[0] == []        # window (C, C + 6m] not closed yet
    # coverage from the registry: positives of the training cutoffs, whitespace rows by source
    con.execute("create table division_model as select * from (values ('A', date '2026-03-31', 'held', "
                "'2025-09-30'), ('A', date '2025-06-30', 'skipped', null)) t(division, cutoff_date, status, "
                "training_cutoffs)")
    con.execute("create table division_features as select division, cutoff_date, customer_id, "
                "case when censored then null else label end as label from labels")
    con.execute("create table whitespace as select 'A' as division, date '2026-03-31' as cutoff_date, "
                "'peer:monetary' as score_source, 'C001' as customer_id")
    cov = mq.coverage(con).sort("cutoff_date")
    assert cov.get_column("training_positives").to_list() == [None, 8]
    assert cov.get_column("list").to_list() == [None, "peer:monetary"]


def test_ranking_orderings_and_capture_difference(mq):
    schema = {"rank": "BIGINT", "score": "DOUBLE", "score_source": "VARCHAR", "score_challenger": "DOUBLE",
              "score_blend": "DOUBLE", "score_p_icp": "DOUBLE", "score_expected_value": "DOUBLE",
              "score_legacy": "DOUBLE", "score_note": "VARCHAR"}
    assert mq.ordering_columns(schema) == {"blend": "score_blend", "p_icp": "score_p_icp",
                                           "expected_value": "score_expected_value", "legacy": "score_legacy"}
    assert mq.ordering_columns({"rank": "BIGINT", "score_source": "VARCHAR", "score_challenger": "DOUBLE"}) == {}
    buyers = ["a", "b", "c", "d"]
    d, lo, hi = mq.capture_difference(buyers, {"a", "b"}, {"a"}, reps=500)
    assert d == 0.25 and lo <= d <= hi
    d, lo, hi = mq.capture_difference(buyers, {"a", "b"}, {"a"}, {"a": 1.0, "b": 3.0, "c": 0.0, "d": 4.0}, reps=500)
    assert d == 3 / 8 and lo <= d <= hi
    assert mq.capture_difference(buyers, {"a"}, {"a"}) == (0.0, 0.0, 0.0)


def test_regenerating_keeps_hand_written_sections_and_drops_retired_ones(mq):
    previous = ("# Model quality\n\nold intro\n\n## The two bars\n\nold bars\n\n## Per division and cutoff\n\nold\n\n"
                "## A measurement by hand\n\nkeep me\n\n## Why bar 1 is out of reach at this size (development seeds)"
                "\n\nold notes\n\n## Another by hand\n\nkeep me too\n")
    generated = ("# Model quality\n\nnew intro\n\n## The bars (issue 14), per seed\n\nnew\n\n"
                 "## Per division and cutoff\n\nnew\n")
    out = mq.keep_hand_written(previous, generated)
    assert out == generated + "\n## A measurement by hand\n\nkeep me\n\n## Another by hand\n\nkeep me too\n"
    assert mq.keep_hand_written(out, generated) == out        # idempotent
    assert mq.overall(["PASS", "PASS"]) == "PASS" and mq.overall(["PASS", "FAIL"]) == "FAIL"
    assert mq.overall(["PASS", "n/a"]) == "n/a"
    assert mq.parse_seeds("7, 101,202") == [7, 101, 202]
