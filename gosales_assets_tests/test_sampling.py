"""Negative down-sampling of the training frame (issue 15): every positive kept, a seeded sample of the negatives
per training cutoff weighted back, the held-out folds scored in full (calibration and metrics on the unsampled
out-of-fold rows), small frames untouched; the LightGBM early-stopping tolerance; the config keys."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
import yaml

from gosales_assets.core import modeling as modeling_mod
from gosales_assets.core.metrics import roc_auc
from gosales_assets.core.modeling import (
    Preprocessor,
    base_rate_log_loss,
    fit_schedule,
    load_model,
    negatives_to_keep,
    sample_negatives,
    train_division_model,
    weighted_quantiles,
)
from gosales_assets.settings import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    LargeFrameSettings,
    LightGBMGrid,
    LogisticGrid,
    ModelSettings,
    SamplingSettings,
    load_settings,
)
from gosales_assets_tests.test_modeling import label_columns

SEED = 42
CUTOFFS = [dt.date(2024, 6, 30), dt.date(2024, 9, 30), dt.date(2024, 12, 31)]
INDUSTRY = "attr__all__industry__static"
FORCED = SamplingSettings(negatives_per_positive=3.0, min_negatives=50, min_rows_to_sample=0)


def rare_frame(n_customers: int = 1500, n_cutoffs: int = 2, seed: int = 3, intercept: float = -3.6) -> pl.DataFrame:
    """A `division_features`-like frame at ~5 % prevalence: one row per customer and cutoff, informative and noise
    features, a string attribute with nulls, the label-side columns."""
    rng = np.random.default_rng(seed)
    n = n_customers * n_cutoffs
    cid = np.repeat([f"C{i:05d}" for i in range(n_customers)], n_cutoffs)
    cut = CUTOFFS[:n_cutoffs] * n_customers
    rev = rng.lognormal(7, 1.2, n)
    slope = rng.normal(0, 1, n)
    ind = rng.choice(["Mfg", "Auto", "Aero", "Med"], n)
    eff = np.array([{"Mfg": 0.8, "Auto": 0.3, "Aero": -0.3, "Med": -0.8}[v] for v in ind])
    z = intercept + 0.8 * (np.log(rev) - 7) + 0.9 * slope + eff
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int8)
    ind_o = ind.astype(object)
    ind_o[rng.random(n) < 0.1] = None
    cols = {"customer_id": cid, "rfm__all__revenue_sum__12m": rev, "traj__all__revenue_slope__12m": slope,
            INDUSTRY: pl.Series(ind_o.tolist(), dtype=pl.String)}
    for j in range(4):
        cols[f"season__all__noise{j}__24m"] = rng.normal(0, 1, n)
    return pl.DataFrame(cols).with_columns(label_columns("Simulation", cut, y, rng))


def params(sampling: SamplingSettings | None = None, **over) -> ModelSettings:
    base = dict(
        n_folds=3,
        min_positives=20,
        ensemble=True,
        logistic=LogisticGrid(C=[1.0], l1_ratio=[0.0], max_iter=500),
        lightgbm=LightGBMGrid(num_leaves=[4], learning_rate=[0.1], min_child_samples=[10], feature_fraction=[0.8],
                              n_estimators_max=200, early_stopping_rounds=20),
        sampling=sampling if sampling is not None else SamplingSettings(),
    )
    base.update(over)
    return ModelSettings(**base)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return rare_frame()


@pytest.fixture(scope="module")
def sampled_model(frame):
    return train_division_model(frame, params(FORCED), SEED)


# ---------------------------------------------------------------------------------------------------
# the rule and the draw
# ---------------------------------------------------------------------------------------------------
def test_negatives_to_keep_rule():
    s = SamplingSettings(negatives_per_positive=10.0, min_negatives=20_000, min_rows_to_sample=50_000)
    assert negatives_to_keep(2_800, 92_000, s) == 28_000          # ratio × positives
    assert negatives_to_keep(500, 94_500, s) == 20_000            # the floor
    assert negatives_to_keep(300, 40_000, s) == 40_000            # fewer rows than min_rows_to_sample: kept whole
    assert negatives_to_keep(9_000, 60_000, s) == 60_000          # the target reaches the negatives: kept whole
    assert negatives_to_keep(2_800, 92_000, s.model_copy(update={"enabled": False})) == 92_000
    assert negatives_to_keep(3, 7, SamplingSettings(negatives_per_positive=2.5, min_negatives=1,
                                                    min_rows_to_sample=0)) == 7  # ceil(7.5) = 8 > 7


def test_shipped_sampling_has_no_cost_cliff():
    """With the shipped defaults a training cutoff never keeps fewer negatives than a smaller one of the same
    prevalence. A threshold on labelled rows (`min_rows_to_sample` 50,000, before) kept a 49,999-row cutoff whole
    and sampled a 50,000-row one to ~10,000: the 250,000-customer backfill trained 1.6x longer than the 500,000 one
    (docs/PERFORMANCE.md). Small cutoffs are still kept whole: the demo's frames are never sampled."""
    s = load_settings(DEFAULT_CONFIG_PATH).models.sampling
    for prevalence in (0.003, 0.03, 0.2):
        sizes = range(1_000, 400_001, 250)
        kept = [negatives_to_keep(round(n * prevalence), n - round(n * prevalence), s) for n in sizes]
        drops = [(a, b, n) for a, b, n in zip(kept, kept[1:], sizes[1:]) if b < a]
        assert not drops, f"prevalence {prevalence}: fewer negatives kept at larger cutoffs {drops[:3]}"
    # every negative kept while there are fewer than the floor (the demo: ≤ 3,000 labelled rows per cutoff)
    assert negatives_to_keep(90, s.min_negatives, s) == s.min_negatives
    assert negatives_to_keep(1_400, 45_876, s) == s.min_negatives < 45_876  # ~250,000 customers: sampled


def test_sample_keeps_every_positive_and_weights_back(frame):
    y = frame.get_column("label").to_numpy()
    sample = sample_negatives(y, frame.get_column("customer_id"), frame.get_column("cutoff_date"), FORCED, SEED)
    assert sample.sampled
    assert sample.keep[y == 1].all() and (sample.weight[y == 1] == 1.0).all()
    assert (sample.weight[~sample.keep] == 0.0).all()
    cut = frame.get_column("cutoff_date").cast(pl.String).to_numpy()
    for rec in sample.by_cutoff:
        rows = cut == rec["cutoff_date"]
        neg = rows & (y == 0)
        assert rec["positives"] == int((rows & (y == 1)).sum()) and rec["negatives"] == int(neg.sum())
        assert rec["negatives_kept"] == max(50, int(np.ceil(3 * rec["positives"]))) == int((sample.keep & neg).sum())
        assert np.allclose(sample.weight[sample.keep & neg], rec["negatives"] / rec["negatives_kept"])
        # weighted back, each cutoff counts as many rows as it has
        assert sample.weight[rows].sum() == pytest.approx(rows.sum())
    summary = sample.summary()
    assert summary["rows"] == frame.height and summary["rows_fitted"] == int(sample.keep.sum()) < frame.height


def test_sample_is_seeded_and_independent_of_row_order_and_pooling(frame):
    def kept(fr: pl.DataFrame, seed: int = SEED) -> set[tuple[str, dt.date]]:
        s = sample_negatives(fr.get_column("label").to_numpy(), fr.get_column("customer_id"),
                             fr.get_column("cutoff_date"), FORCED, seed)
        return set(fr.filter(pl.Series(s.keep)).select("customer_id", "cutoff_date").iter_rows())

    base = kept(frame)
    assert kept(frame) == base
    assert kept(frame.sample(fraction=1.0, shuffle=True, seed=1)) == base
    assert kept(frame, seed=SEED + 1) != base
    one_cutoff = frame.filter(pl.col("cutoff_date") == CUTOFFS[0])
    assert kept(one_cutoff) == {r for r in base if r[1] == CUTOFFS[0]}


# ---------------------------------------------------------------------------------------------------
# training on a sampled frame
# ---------------------------------------------------------------------------------------------------
def test_small_frames_are_not_sampled_by_default(frame):
    default = train_division_model(frame, params(), SEED)
    off = train_division_model(frame, params(SamplingSettings(enabled=False)), SEED)
    assert default.sampling["sampled"] is False and default.class_balance["rows_fitted"] == default.class_balance["n"]
    assert all(not r["sampled"] for r in default.sampling["by_cutoff"])
    assert np.array_equal(default.predict_proba(frame), off.predict_proba(frame))
    assert default.metrics == off.metrics


def test_sampled_training_is_deterministic(frame, sampled_model, tmp_path):
    again = train_division_model(frame, params(FORCED), SEED)
    assert np.array_equal(again.predict_proba(frame), sampled_model.predict_proba(frame))
    assert again.oof.equals(sampled_model.oof) and again.metrics == sampled_model.metrics
    assert again.cv_results.equals(sampled_model.cv_results) and again.importance.equals(sampled_model.importance)
    a, b = sampled_model.save(tmp_path / "a.joblib"), again.save(tmp_path / "b.joblib")
    assert a.read_bytes() == b.read_bytes()
    assert np.array_equal(load_model(a).predict_proba(frame), sampled_model.predict_proba(frame))


def test_metrics_and_calibration_use_the_unsampled_out_of_fold_rows(frame, sampled_model, monkeypatch):
    m = sampled_model
    labelled = frame.height
    assert m.sampling["sampled"] and m.class_balance["rows_fitted"] < labelled
    assert m.oof.height == labelled and m.oof.get_column("score_raw").is_not_nan().all()
    per_fold = m.cv_results.filter(pl.col("config") == "ensemble")
    assert per_fold.get_column("n_valid").sum() == labelled
    assert per_fold.get_column("positives_valid").sum() == m.class_balance["positives"]
    y = m.oof.get_column("label").to_numpy()
    assert m.metrics["auc"] == pytest.approx(roc_auc(y, m.oof.get_column("score_calibrated").to_numpy()))

    sizes = []
    real_fit = modeling_mod.Calibrator.fit

    def spy(self, raw, yy):
        sizes.append(len(yy))
        return real_fit(self, raw, yy)

    monkeypatch.setattr(modeling_mod.Calibrator, "fit", spy)
    train_division_model(frame, params(FORCED), SEED)
    assert sizes[-1] == labelled  # the stored calibrator: every labelled row's out-of-fold score
    assert sum(sizes[:-1]) == labelled * (params().n_folds - 1)  # cross-fitted: the other folds' rows, all of them


def test_the_out_of_fold_rows_carry_their_fit_weight(frame, sampled_model):
    """The RFM peer is fitted on the candidate's own sample: the out-of-fold rows say which rows the fits used and
    with what weight (0: a negative sampled out)."""
    y = frame.get_column("label").to_numpy()
    s = sample_negatives(y, frame.get_column("customer_id"), frame.get_column("cutoff_date"), FORCED, SEED)
    oof = sampled_model.oof
    assert np.array_equal(oof.get_column("fit_weight").to_numpy(), s.weight)
    fitted = oof.filter(pl.col("fit_weight") > 0)
    assert fitted.height == sampled_model.class_balance["rows_fitted"] < oof.height
    assert (fitted.filter(pl.col("label") == 0).get_column("fit_weight") > 1).all()
    assert (oof.filter(pl.col("label") == 1).get_column("fit_weight") == 1).all()


def test_weights_restore_the_base_rate(frame):
    y = frame.get_column("label").to_numpy()
    prevalence = y.mean()
    s = sample_negatives(y, frame.get_column("customer_id"), frame.get_column("cutoff_date"), FORCED, SEED)
    assert y[s.keep].mean() > 3 * prevalence  # an unweighted fit of the sample would predict ~4x too much
    for family in ({"lightgbm": LightGBMGrid(num_leaves=[4], learning_rate=[0.1], min_child_samples=[10],
                                             n_estimators_max=200, early_stopping_rounds=20),
                    "logistic": LogisticGrid(C=[])},
                   {"lightgbm": LightGBMGrid(num_leaves=[]), "logistic": LogisticGrid(C=[1.0], l1_ratio=[0.0])}):
        model = train_division_model(frame, params(FORCED, ensemble=False, **family), SEED)
        assert model.sampling["sampled"]
        raw_mean = model.predict_raw(frame).mean()  # the estimator itself, before calibration
        assert raw_mean == pytest.approx(prevalence, rel=0.25), model.model_type
        assert model.predict_proba(frame).mean() == pytest.approx(prevalence, rel=0.2)


def test_model_card_records_what_was_sampled(sampled_model):
    card = sampled_model.card()
    sampling = card["sampling"]
    assert sampling["sampled"] is True and sampling["seed"] == SEED
    assert sampling["negatives_per_positive"] == 3.0 and sampling["min_negatives"] == 50
    assert sampling["min_rows_to_sample"] == 0 and "out-of-fold" in sampling["how"]
    assert [r["cutoff_date"] for r in sampling["by_cutoff"]] == [str(c) for c in CUTOFFS[:2]]
    for r in sampling["by_cutoff"]:
        assert r["sampled"] and r["negatives_kept"] < r["negatives"]
        assert r["negative_weight"] == pytest.approx(r["negatives"] / r["negatives_kept"])
    cb = card["class_balance"]
    assert cb["rows_fitted"] == sampling["rows_fitted"] == cb["positives"] + cb["negatives_fitted"]
    assert json.loads(json.dumps(sampling)) == sampling  # model_card.json takes it as is


def test_a_model_saved_before_sampling_existed_still_loads(sampled_model, tmp_path):
    # models pickled without the attribute fall back to the class default (no format bump needed)
    path = sampled_model.save(tmp_path / "m.joblib")
    model = load_model(path)
    del model.__dict__["sampling"]
    assert model.sampling is None and model.card()["sampling"] == {"sampled": False}


# ---------------------------------------------------------------------------------------------------
# weighted preprocessing
# ---------------------------------------------------------------------------------------------------
def test_weighted_preprocessor_equals_replicated_rows(frame):
    feats = [c for c in frame.columns if c.count("__") == 3]
    part = frame.head(300)
    w = np.tile([1.0, 2.0, 3.0], 100)
    replicated = part[np.repeat(np.arange(part.height), w.astype(int))]
    weighted = Preprocessor("onehot_scaled").fit(part, feats, weights=w)
    plain = Preprocessor("onehot_scaled").fit(replicated, feats)
    x = np.column_stack([replicated.get_column(f).to_numpy() for f in weighted.numeric_features])
    q = np.quantile(x, [0.5, 0.01, 0.99], axis=0, method="inverted_cdf")
    assert np.array_equal(weighted.medians, q[0]) and np.array_equal(weighted.lower, q[1])
    assert np.array_equal(weighted.upper, q[2])
    assert weighted.levels == plain.levels
    # mean / std of the same clipped values: equal up to the different clipping quantile method
    ref = Preprocessor("onehot_scaled").fit(replicated, feats)
    ref.medians, ref.lower, ref.upper = weighted.medians, weighted.lower, weighted.upper
    xi = ref._scaled_input(ref._impute_clip(ref._numeric_raw(replicated)))
    assert np.allclose(weighted.means, xi.mean(axis=0)) and np.allclose(weighted.stds, xi.std(axis=0))
    with pytest.raises(ValueError, match="weights"):
        Preprocessor().fit(part, feats, weights=np.zeros(part.height))


def test_weighted_quantiles_equal_numpys_inverted_cdf():
    """The fast per-column weighted quantiles give numpy's values exactly: ties (count features), NaN, a column with
    one value, an all-NaN column, weights that differ by class as the sampling's do."""
    rng = np.random.default_rng(3)
    n = 5000
    x = np.column_stack([
        rng.normal(size=n),
        rng.poisson(0.3, size=n).astype(float),          # mostly zeros: long tie runs
        np.where(rng.random(n) < 0.4, np.nan, rng.integers(0, 5, size=n).astype(float)),
        np.full(n, 7.0),
        np.full(n, np.nan),
        rng.exponential(size=n).round(1),
    ])
    w = np.where(rng.random(n) < 0.1, 1.0, 3.7321)
    qs = [0.5, 0.01, 0.99, 0.0, 1.0]
    got = weighted_quantiles(x, w, qs)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # numpy warns on the all-NaN column
        want = np.nanquantile(x, qs, axis=0, method="inverted_cdf", weights=np.broadcast_to(w[:, None], x.shape))
    assert got.shape == (len(qs), x.shape[1])
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isnan(got[:, 4]).all() and (got[:, 3] == 7.0).all()
    # row order does not matter
    perm = rng.permutation(n)
    assert np.array_equal(weighted_quantiles(x[perm], w[perm], qs), got, equal_nan=True)


def test_fit_transforms_equals_fit_then_transform(frame):
    feats = [c for c in frame.columns if c.count("__") == 3]
    for weights in (None, np.linspace(1.0, 5.0, frame.height)):
        pre = Preprocessor("codes", log_inputs=True)
        mats = pre.fit_transforms(frame, feats, ("codes", "onehot_scaled"), weights=weights)
        for enc in ("codes", "onehot_scaled"):
            assert np.array_equal(mats[enc], pre.with_encoding(enc).transform(frame))
            assert np.array_equal(pre.transforms(frame, (enc,))[enc], mats[enc])


# ---------------------------------------------------------------------------------------------------
# early stopping tolerance
# ---------------------------------------------------------------------------------------------------
def test_early_stopping_tolerance_stops_sooner(frame):
    def best_iterations(tol: float) -> np.ndarray:
        grid = LightGBMGrid(num_leaves=[2], learning_rate=[0.05], min_child_samples=[10], n_estimators_max=600,
                            early_stopping_rounds=30, early_stopping_tolerance=tol)
        model = train_division_model(frame, params(ensemble=False, logistic=LogisticGrid(C=[]), lightgbm=grid), SEED)
        assert model.params["early_stopping_tolerance"] == tol
        return model.cv_results.get_column("best_iteration").to_numpy()

    loose, exact = best_iterations(0.01), best_iterations(0.0)
    assert (loose <= exact).all() and (loose < exact).any()
    assert base_rate_log_loss(np.array([0, 0, 0, 1])) == pytest.approx(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)))


# ---------------------------------------------------------------------------------------------------
# config keys
# ---------------------------------------------------------------------------------------------------
def test_default_config_declares_the_sampling_keys():
    s = load_settings(DEFAULT_CONFIG_PATH).models
    assert s.sampling == SamplingSettings() and s.sampling.enabled
    doc = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())["models"]
    assert set(doc["sampling"]) == set(SamplingSettings.model_fields)
    assert "early_stopping_tolerance" in doc["lightgbm"]
    # the large-frame schedule is on in the shipped config, far above the demo's frames (a few hundred positives)
    assert set(doc["large_frames"]) == set(LargeFrameSettings.model_fields)
    assert s.large_frames == LargeFrameSettings(min_positives=1500, n_folds=3, learning_rate=0.2)
    assert LargeFrameSettings().min_positives is None  # off unless configured


@pytest.mark.parametrize(
    ("section", "key", "value", "words"),
    [
        ("sampling", "negatives_per_positive", 0, "greater than 0"),
        ("sampling", "min_negatives", 0, "greater than or equal to 1"),
        ("sampling", "min_rows_to_sample", -5, "greater than or equal to 0"),
        ("sampling", "ratio", 10, "unknown key"),
        ("lightgbm", "early_stopping_tolerance", -0.1, "greater than or equal to 0"),
        ("large_frames", "n_folds", 1, "greater than or equal to 2"),
        ("large_frames", "learning_rate", 0, "greater than 0"),
        ("large_frames", "min_positives", 0, "greater than or equal to 1"),
    ],
)
def test_invalid_sampling_keys_are_named(tmp_path, section, key, value, words):
    doc = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    doc["models"][section][key] = value
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, home=tmp_path)
    msg = str(err.value)
    assert f"models.{section}.{key}" in msg and words in msg


def test_early_stopping_of_a_sampled_fit_measures_the_held_out_fold_sample(frame, monkeypatch):
    """The held-out fold's loss that stops the trees is measured on its sampled rows with their weights (the same
    draw as the training folds'); its out-of-fold scores are still of every row."""
    p = params(FORCED, ensemble=False, logistic=LogisticGrid(C=[]))
    seen = []
    real = modeling_mod._fit_estimator

    def spy(est, model_type, x, y, cat_idx, eval_xy=None, *a, **kw):
        if eval_xy is not None:
            seen.append((len(eval_xy[1]), kw.get("eval_weight")))
        return real(est, model_type, x, y, cat_idx, eval_xy, *a, **kw)

    monkeypatch.setattr(modeling_mod, "_fit_estimator", spy)
    model = train_division_model(frame, p, SEED)
    y = frame.get_column("label").to_numpy()
    s = sample_negatives(y, frame.get_column("customer_id"), frame.get_column("cutoff_date"), FORCED, SEED)
    folds = model.oof.get_column("fold").to_numpy()
    assert len(seen) == p.n_folds
    for k, (rows, weight) in enumerate(seen):
        va = folds == k
        assert rows == int((va & s.keep).sum()) < int(va.sum())
        assert np.array_equal(weight, s.weight[va & s.keep])
    assert model.oof.get_column("score_raw").is_not_nan().all()  # every held-out row scored

    seen.clear()  # unsampled: the whole held-out fold, unweighted
    train_division_model(frame, params(SamplingSettings(enabled=False), ensemble=False,
                                       logistic=LogisticGrid(C=[])), SEED)
    assert [rows for rows, _ in seen] == [int((folds == k).sum()) for k in range(p.n_folds)]
    assert all(weight is None for _, weight in seen)


def test_num_threads_bounds_the_fit_and_leaves_the_model_unchanged(frame, monkeypatch):
    """`num_threads` is LightGBM's thread count and the BLAS limit of the whole fit; the trees do not depend on it."""
    from threadpoolctl import threadpool_info

    blas_threads = []
    real = modeling_mod._fit_estimator

    def spy(*a, **kw):
        blas_threads.append({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
        return real(*a, **kw)

    monkeypatch.setattr(modeling_mod, "_fit_estimator", spy)
    gbm = dict(ensemble=False, logistic=LogisticGrid(C=[]))
    one = train_division_model(frame, params(FORCED, num_threads=1, **gbm), SEED)
    assert blas_threads and all(t == {1} for t in blas_threads)  # numpy's BLAS is found and bounded
    two = train_division_model(frame, params(FORCED, num_threads=2, **gbm), SEED)
    assert np.array_equal(one.predict_proba(frame), two.predict_proba(frame))
    assert one.cv_results.equals(two.cv_results)
    assert load_settings(DEFAULT_CONFIG_PATH).models.num_threads == 1


# ---------------------------------------------------------------------------------------------------
# the large-frame schedule: fewer folds and faster trees from many positives on
# ---------------------------------------------------------------------------------------------------
def test_fit_schedule_applies_from_its_threshold():
    configured = params(n_folds=4, large_frames=LargeFrameSettings(min_positives=100, n_folds=2, learning_rate=0.3))
    assert fit_schedule(configured, 99) == (configured, None)
    fitted, schedule = fit_schedule(configured, 100)
    assert fitted.n_folds == 2 and fitted.lightgbm.learning_rate == [0.3]
    # nothing else changes
    assert fitted.model_dump(exclude={"n_folds", "lightgbm"}) == configured.model_dump(exclude={"n_folds", "lightgbm"})
    assert (fitted.lightgbm.model_dump(exclude={"learning_rate"})
            == configured.lightgbm.model_dump(exclude={"learning_rate"}))
    assert schedule == {"large_frame": True, "positives": 100, "min_positives": 100, "n_folds": 2,
                        "configured_n_folds": 4, "lightgbm_learning_rate": [0.3],
                        "configured_lightgbm_learning_rate": [0.1]}
    off = params(large_frames=LargeFrameSettings(min_positives=None))
    assert fit_schedule(off, 10**6) == (off, None)


def test_a_large_frame_is_fitted_with_its_schedule_and_says_so(frame):
    positives = int(frame.get_column("label").sum())
    large = LargeFrameSettings(min_positives=positives, n_folds=2, learning_rate=0.3)
    model = train_division_model(frame, params(n_folds=4, large_frames=large), SEED)
    assert sorted(model.cv_results.get_column("fold").unique().to_list()) == [0, 1]
    assert model.settings["n_folds"] == 2 and model.settings["lightgbm"]["learning_rate"] == [0.3]
    gbm = [m for m in model.params["members"] if m["config"].startswith("lightgbm")]
    assert len(gbm) == 1 and gbm[0]["learning_rate"] == 0.3
    schedule = model.card()["fit_schedule"]
    assert schedule["large_frame"] and schedule["positives"] == positives and schedule["configured_n_folds"] == 4
    # the same model as one configured with those folds and that learning rate
    direct = train_division_model(frame, params(n_folds=2, lightgbm=params().lightgbm.model_copy(
        update={"learning_rate": [0.3]})), SEED)
    assert np.array_equal(model.oof.get_column("score_raw").to_numpy(), direct.oof.get_column("score_raw").to_numpy())

    # one positive short of the threshold: the configured folds and grid, bit for bit
    short = train_division_model(frame, params(n_folds=4, large_frames=large.model_copy(
        update={"min_positives": positives + 1})), SEED)
    plain = train_division_model(frame, params(n_folds=4), SEED)
    assert sorted(short.cv_results.get_column("fold").unique().to_list()) == [0, 1, 2, 3]
    assert short.card()["fit_schedule"] == {"large_frame": False}
    assert np.array_equal(short.oof.get_column("score_raw").to_numpy(), plain.oof.get_column("score_raw").to_numpy())


def test_a_model_saved_before_the_schedule_existed_still_loads(sampled_model, tmp_path):
    model = load_model(sampled_model.save(tmp_path / "m.joblib"))
    del model.__dict__["schedule"]
    assert model.schedule is None and model.card()["fit_schedule"] == {"large_frame": False}
