"""Division model training: features, learned preprocessing, grouped folds, selection, calibration on
out-of-fold scores only, refit with the chosen parameters, determinism, persistence."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest

from gosales_assets.core import calibration as calibration_mod
from gosales_assets.core.calibration import Calibrator
from gosales_assets.core.modeling import (
    LABEL_SIDE_COLUMNS,
    MISSING_LEVEL,
    OTHER_LEVEL,
    DegenerateModel,
    InsufficientData,
    Preprocessor,
    TrainedModel,
    candidate_configs,
    customer_folds,
    feature_columns,
    fold_overlap,
    load_model,
    select_config,
    train_division_model,
)
from gosales_assets.settings import LightGBMGrid, LogisticGrid, ModelSettings

CUTOFFS = [dt.date(2023, 6, 30), dt.date(2023, 12, 31), dt.date(2024, 6, 30)]
INDUSTRY = "attr__all__industry__static"
REVENUE = "rfm__all__revenue_sum__12m"
SLOPE = "traj__all__revenue_slope__12m"
RECENCY = "rfm__all__recency_days__all"


def make_frame(n_customers: int = 300, n_cutoffs: int = 2, seed: int = 0, kind: str = "linear",
               n_noise: int = 6) -> pl.DataFrame:
    """A small `division_features`-like frame: informative features, noise, a string attribute, nulls,
    several cutoffs per customer, and the label-side columns."""
    rng = np.random.default_rng(seed)
    n = n_customers * n_cutoffs
    cid = np.repeat([f"C{i:04d}" for i in range(n_customers)], n_cutoffs)
    cut = CUTOFFS[:n_cutoffs] * n_customers
    rev = rng.lognormal(7, 1.2, n)
    slope = rng.normal(0, 1, n)
    rec = rng.exponential(90, n)
    rec_null = rng.random(n) < 0.2
    ind = rng.choice(["Mfg", "Auto", "Aero", "Med"], n)
    eff = np.array([{"Mfg": 1.0, "Auto": 0.3, "Aero": -0.3, "Med": -1.0}[v] for v in ind])
    if kind == "linear":
        z = -1.6 + 0.9 * (np.log(rev) - 7) + slope + eff - 0.005 * np.where(rec_null, 90, rec)
    else:  # "xor": buyers are high-revenue XOR rising; a linear model cannot see it, trees can
        z = np.where((slope > 0) ^ (np.log(rev) > 7), 1.5, -3.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int8)
    ind_o = ind.astype(object)
    ind_o[rng.random(n) < 0.1] = None
    cols = {
        "customer_id": cid,
        REVENUE: rev,
        SLOPE: slope,
        RECENCY: np.where(rec_null, np.nan, rec),
        INDUSTRY: pl.Series(ind_o.tolist(), dtype=pl.String),
    }
    for j in range(n_noise):
        cols[f"season__all__noise{j}__24m"] = rng.normal(0, 1, n)
    df = pl.DataFrame(cols).with_columns(pl.col(RECENCY).fill_nan(None))
    return df.with_columns(label_columns("Solidworks", cut, y, rng))


def label_columns(division: str, cut, y: np.ndarray, rng: np.random.Generator) -> list:
    """The label columns of a synthetic model frame (one 6-month window, every row labelled, positives with a
    lognormal window revenue drawn from `rng`)."""
    return [
        pl.lit(division).alias("division"),
        pl.Series("cutoff_date", cut, dtype=pl.Date),
        pl.lit(6, dtype=pl.Int32).alias("window_months"),
        pl.lit("expansion").alias("cohort"),
        pl.Series("net_revenue_window", np.where(y == 1, rng.lognormal(8, 1, len(y)), 0.0)),
        pl.Series("label", y, dtype=pl.Int8),
        pl.lit(False).alias("censored"),
    ]


def settings(**over) -> ModelSettings:
    base = dict(
        n_folds=3,
        min_positives=20,
        logistic=LogisticGrid(C=[0.1, 1.0], l1_ratio=[0.0, 0.5], max_iter=500),
        lightgbm=LightGBMGrid(num_leaves=[7, 15], learning_rate=[0.1], min_child_samples=[10],
                              feature_fraction=[0.8], n_estimators_max=300, early_stopping_rounds=20),
    )
    base.update(over)
    return ModelSettings(**base)


SEED = 42


@pytest.fixture(scope="module")
def linear_frame() -> pl.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def linear_model(linear_frame) -> TrainedModel:
    return train_division_model(linear_frame, settings(), SEED)


@pytest.fixture(scope="module")
def xor_frame() -> pl.DataFrame:
    return make_frame(kind="xor", seed=1)


@pytest.fixture(scope="module")
def gbm_model(xor_frame) -> TrainedModel:
    return train_division_model(xor_frame, settings(), SEED)


# ---------------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------------
def test_feature_columns_follow_the_naming_pattern(linear_frame):
    feats = feature_columns(linear_frame)
    assert feats[:4] == [REVENUE, SLOPE, RECENCY, INDUSTRY]  # frame order
    assert len(feats) == 4 + 6
    assert not set(feats) & LABEL_SIDE_COLUMNS
    assert "cutoff_date" not in feats and "net_revenue_window" not in feats and "label" not in feats
    odd = pl.DataFrame({"als__f07": [1.0], "a__b__c": [1.0], "a__b__c__d__e": [1.0], "a____c__d": [1.0],
                        "mb__target__max_lift__all": [1.0], "label": [1]})
    assert feature_columns(odd) == ["mb__target__max_lift__all"]


# ---------------------------------------------------------------------------------------------------
# preprocessing
# ---------------------------------------------------------------------------------------------------
def test_preprocessor_reuses_learned_values_at_scoring(linear_frame):
    feats = feature_columns(linear_frame)
    train = linear_frame.head(400)
    pre = Preprocessor("codes", winsor_quantiles=(0.05, 0.95), max_category_levels=3).fit(train, feats)
    learned = pre.learned_values()
    j = pre.numeric_features.index(REVENUE)
    lo, hi = np.nanquantile(train[REVENUE].to_numpy(), [0.05, 0.95])
    assert pre.lower[j] == pytest.approx(lo) and pre.upper[j] == pytest.approx(hi)
    assert pre.medians[pre.numeric_features.index(RECENCY)] == pytest.approx(
        float(np.nanmedian(train[RECENCY].cast(pl.Float64).to_numpy())))

    # a scoring frame whose distributions moved: everything x10 + 1e6, new industries, more nulls
    shifted = linear_frame.tail(50).with_columns(
        (pl.col(REVENUE) * 10 + 1e6).alias(REVENUE),
        pl.lit(None, dtype=pl.Float64).alias(RECENCY),
        pl.Series(INDUSTRY, ["Space"] * 25 + [None] * 25, dtype=pl.String),
    )
    x = pre.transform(shifted)
    assert np.all(x[:, j] == pre.upper[j])  # capped at the TRAINING cap, not re-estimated
    jr = pre.numeric_features.index(RECENCY)
    assert np.all(x[:, jr] == pre.medians[jr])  # nulls -> the TRAINING median
    jc = pre.design_columns.index(INDUSTRY)
    n_levels = len(pre.levels[INDUSTRY])
    assert n_levels == 3
    assert np.all(x[:25, jc] == n_levels)  # unseen level -> __other__
    assert np.all(x[25:, jc] == n_levels + 1)  # null -> __missing__
    # nothing was re-learned by transforming
    after = pre.learned_values()
    assert after["numeric"].equals(learned["numeric"]) and after["categorical"].equals(learned["categorical"])
    # while a refit on the shifted rows WOULD move the caps (so the check above is meaningful)
    refit = Preprocessor("codes", winsor_quantiles=(0.05, 0.95)).fit(shifted, feats)
    assert refit.upper[j] > pre.upper[j]

    # one-hot + scaled encoding shares the learned values
    lr = pre.with_encoding("onehot_scaled")
    xo = lr.transform(shifted)
    cols = lr.design_columns
    assert np.all(xo[:25, cols.index(f"{INDUSTRY}={OTHER_LEVEL}")] == 1.0)
    assert np.all(xo[25:, cols.index(f"{INDUSTRY}={MISSING_LEVEL}")] == 1.0)
    assert np.allclose(xo[:, j], (pre.upper[j] - pre.means[j]) / pre.stds[j])
    xt = lr.transform(train)
    assert abs(xt[:, j].mean()) < 1e-9 and xt[:, j].std() == pytest.approx(1.0)


def test_onehot_design_is_numerics_then_one_indicator_per_level(linear_frame):
    feats = feature_columns(linear_frame)
    pre = Preprocessor("onehot_scaled", max_category_levels=2).fit(linear_frame.head(400), feats)
    x = pre.transform(linear_frame)
    k = len(pre.numeric_features)
    codes = pre.category_codes(linear_frame)[:, 0]
    width = len(pre.levels[INDUSTRY]) + 2
    # the stacked definition: scaled numerics, then one 0/1 column per level, other and missing
    expected = np.hstack([x[:, :k], np.eye(width)[codes]])
    assert x.shape == (linear_frame.height, k + width) and x.flags["C_CONTIGUOUS"]
    assert np.array_equal(x, expected)
    assert (x[:, k:].sum(axis=1) == 1.0).all()


def test_category_levels_top_k_by_frequency_ties_by_name():
    f = pl.DataFrame({"attr__all__region__static": ["b", "a", "c", "b", "a", "c", "d", None, "c"]})
    pre = Preprocessor("codes", max_category_levels=2).fit(f, ["attr__all__region__static"])
    # counts c:3, a:2, b:2, d:1 -> c, then a (tie with b broken by name)
    assert pre.levels["attr__all__region__static"] == ["c", "a"]
    codes = pre.category_codes(pl.DataFrame({"attr__all__region__static": ["a", "b", None, "c"]}))
    assert codes[:, 0].tolist() == [1, 2, 3, 0]  # b -> other (2), null -> missing (3)


def test_transform_requires_the_learned_features(linear_frame):
    feats = feature_columns(linear_frame)
    pre = Preprocessor().fit(linear_frame, feats)
    with pytest.raises(ValueError, match="missing"):
        pre.transform(linear_frame.drop(REVENUE))
    with pytest.raises(TypeError):
        Preprocessor().fit(linear_frame.with_columns(pl.col("cutoff_date").alias("life__all__d__all")),
                           ["life__all__d__all"])


# ---------------------------------------------------------------------------------------------------
# folds
# ---------------------------------------------------------------------------------------------------
def test_customer_folds_are_grouped_balanced_and_deterministic(linear_frame):
    ids = linear_frame["customer_id"]
    y = linear_frame["label"].to_numpy()
    folds = customer_folds(ids, 4, seed=7, labels=y)
    assert fold_overlap(ids, folds) == 0
    per_customer = pl.DataFrame({"c": ids, "f": folds}).group_by("c").agg(pl.col("f").n_unique())
    assert per_customer["f"].max() == 1
    sizes = np.bincount(pl.DataFrame({"c": ids, "f": folds}).unique("c")["f"].to_numpy())
    assert sizes.max() - sizes.min() <= 1  # customers dealt round-robin
    pos_cust = pl.DataFrame({"c": ids, "f": folds, "y": y}).group_by("c").agg(
        pl.col("f").first(), pl.col("y").max()).filter(pl.col("y") == 1)
    pos_sizes = np.bincount(pos_cust["f"].to_numpy(), minlength=4)
    assert pos_sizes.max() - pos_sizes.min() <= 1  # positives spread evenly
    assert np.array_equal(folds, customer_folds(ids, 4, seed=7, labels=y))
    # the fold of a customer does not depend on the row order
    perm = np.random.default_rng(0).permutation(len(ids))
    f2 = customer_folds(ids.to_numpy()[perm], 4, seed=7, labels=y[perm])
    assert np.array_equal(f2, folds[perm])
    assert not np.array_equal(folds, customer_folds(ids, 4, seed=8, labels=y))


def test_fold_overlap_detects_a_leaky_assignment():
    ids = ["a", "a", "b", "b", "c"]
    assert fold_overlap(ids, [0, 0, 1, 1, 2]) == 0
    assert fold_overlap(ids, [0, 1, 1, 1, 2]) == 1  # customer a is in two folds
    assert fold_overlap(ids, np.arange(5) % 2) == 2  # row-wise K-fold splits a and b
    with pytest.raises(ValueError):
        customer_folds(["a", "b"], 3, seed=0)


# ---------------------------------------------------------------------------------------------------
# candidates and selection
# ---------------------------------------------------------------------------------------------------
def test_candidate_grid_and_empty_families():
    cfgs = candidate_configs(ModelSettings())
    assert [c["model_type"] for c in cfgs] == ["logistic"] * 4 + ["lightgbm"] * 2
    assert len({c["config"] for c in cfgs}) == 6
    only_gbm = candidate_configs(settings(logistic=LogisticGrid(C=[])))
    assert {c["model_type"] for c in only_gbm} == {"lightgbm"}


def test_select_config_rule():
    cv = pl.DataFrame({
        "config": ["a", "a", "b", "b", "c", "c", "d", "d"],
        "fold": [0, 1] * 4,
        "lift_at_10": [2.0, 4.0, 3.0, 3.5, 3.0, 3.5, 5.0, 0.0],
        "brier": [0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05],
    })
    # means: a 3.0, b 3.25, c 3.25, d 2.5 -> b and c tie on lift; c has the lower Brier
    assert select_config(cv) == "c"
    tie = cv.with_columns(pl.lit(0.1).alias("brier"))
    assert select_config(tie) == "b"  # full tie -> candidate order
    assert select_config(tie, order=["c", "b", "a", "d"]) == "c"


def test_selection_picks_best_mean_lift(linear_model, gbm_model):
    for model in (linear_model, gbm_model):
        s = model.cv_summary()
        best = s.sort(["mean_lift_at_10", "mean_brier"], descending=[True, False]).row(0, named=True)
        assert model.params["config"] == best["config"]
        assert s.filter(pl.col("selected"))["config"].to_list() == [best["config"]]
    # the constructed cases: additive signal -> logistic wins; XOR signal -> trees win
    assert linear_model.model_type == "logistic"
    assert gbm_model.model_type == "lightgbm"
    assert gbm_model.cv_summary().filter(pl.col("model_type") == "lightgbm")["mean_lift_at_10"].min() > \
        gbm_model.cv_summary().filter(pl.col("model_type") == "logistic")["mean_lift_at_10"].max()


# ---------------------------------------------------------------------------------------------------
# refit with the chosen parameters; early stopping
# ---------------------------------------------------------------------------------------------------
def test_logistic_refit_keeps_chosen_params(linear_model):
    est = linear_model.estimator.get_params()
    p = linear_model.params
    assert est["C"] == p["C"] and est["l1_ratio"] == p["l1_ratio"] and est["max_iter"] == p["max_iter"]
    # pure L2 -> lbfgs (exact), any L1 part -> saga; the chosen params record the solver that was used
    assert est["solver"] == p["solver"] == ("lbfgs" if p["l1_ratio"] == 0.0 else "saga")
    assert est["random_state"] == SEED
    cfg = next(c for c in candidate_configs(settings()) if c["config"] == p["config"])
    assert (cfg["C"], cfg["l1_ratio"]) == (p["C"], p["l1_ratio"])
    assert linear_model.cv_results.height == 6 * 3  # configs x folds


def test_lightgbm_refit_uses_rounded_mean_best_iteration(gbm_model):
    p = gbm_model.params
    est = gbm_model.estimator
    ep = est.get_params()
    assert (ep["num_leaves"], ep["learning_rate"], ep["min_child_samples"], ep["colsample_bytree"]) == \
        (p["num_leaves"], p["learning_rate"], p["min_child_samples"], p["feature_fraction"])
    assert ep["deterministic"] is True and ep["force_row_wise"] is True and ep["random_state"] == SEED
    its = gbm_model.cv_results.filter(pl.col("config") == p["config"])["best_iteration"].to_numpy()
    assert len(its) == 3
    expected = int(math.floor(its.mean() + 0.5))
    assert p["n_estimators"] == expected == ep["n_estimators"]
    assert est.booster_.num_trees() == expected  # the full fit ran exactly that many rounds (no early stop)
    # early stopping really stopped in every fold, well before the cap
    all_its = gbm_model.cv_results.filter(pl.col("model_type") == "lightgbm")["best_iteration"].to_numpy()
    assert np.all(all_its < settings().lightgbm.n_estimators_max)
    assert gbm_model.cv_results.filter(pl.col("model_type") == "logistic")["best_iteration"].null_count() == 4 * 3


# ---------------------------------------------------------------------------------------------------
# calibration only on out-of-fold scores
# ---------------------------------------------------------------------------------------------------
def test_calibrator_is_fitted_on_out_of_fold_scores_only(linear_frame, monkeypatch):
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    original = calibration_mod.Calibrator.fit

    def spy(self, scores, y):
        seen.append((np.array(scores, dtype=float).copy(), np.array(y).copy()))
        return original(self, scores, y)

    monkeypatch.setattr(calibration_mod.Calibrator, "fit", spy)
    model = train_division_model(linear_frame, settings(), SEED)
    oof = model.oof
    raw = oof["score_raw"].to_numpy()
    folds = oof["fold"].to_numpy()
    # n_folds cross-fitted calibrators (fold k calibrated by the others' OOF scores), then the final one
    assert len(seen) == 3 + 1
    for k in range(3):
        assert np.array_equal(seen[k][0], raw[folds != k])
    assert np.array_equal(seen[-1][0], raw) and np.array_equal(seen[-1][1], oof["label"].to_numpy())
    # the OOF scores are not the final model's in-sample scores
    labelled = linear_frame.filter(pl.col("label").is_not_null())
    assert not np.allclose(model.predict_raw(labelled), raw)
    # the stored calibrator equals one fitted on model.oof.score_raw
    monkeypatch.setattr(calibration_mod.Calibrator, "fit", original)
    ref = Calibrator(model.calibration_method).fit(raw, oof["label"].to_numpy())
    grid = np.linspace(0.001, 0.999, 57)
    assert np.array_equal(ref.transform(grid), model.calibrator.transform(grid))


def test_calibration_method_follows_positives(linear_model, gbm_model):
    assert linear_model.class_balance["positives"] < 200 and linear_model.calibration_method == "sigmoid"
    assert gbm_model.class_balance["positives"] >= 200 and gbm_model.calibration_method == "isotonic"


# ---------------------------------------------------------------------------------------------------
# reported metrics and tables
# ---------------------------------------------------------------------------------------------------
def test_metrics_are_out_of_fold_and_tables_present(linear_model, linear_frame):
    m = linear_model.metrics
    for key in ("auc", "pr_auc", "brier", "lift_at_5", "lift_at_10", "lift_at_20", "rev_lift_at_10", "cal_mae",
                "base_rate", "n", "positives"):
        assert key in m
    assert 0.65 < m["auc"] < 0.95 and m["lift_at_10"] > 2.0
    oof = linear_model.oof
    assert oof.columns[:2] == ["customer_id", "cutoff_date"]
    assert {"label", "score_raw", "score_calibrated", "revenue", "fold"} <= set(oof.columns)
    assert oof.height == linear_frame.height == m["n"]
    from gosales_assets.core.metrics import metric_summary

    again = metric_summary(oof["label"].to_numpy(), oof["score_calibrated"].to_numpy(), oof["revenue"].to_numpy(),
                           ks=(5, 10, 20), n_bins=10)
    assert {k: again[k] for k in again} == {k: m[k] for k in again}
    assert linear_model.gains["decile"].to_list() == list(range(1, 11))
    assert linear_model.calibration["count"].sum() == m["n"]
    assert linear_model.thresholds["capacity_pct"].to_list() == [5.0, 10.0, 20.0]
    imp = linear_model.feature_importance()
    assert imp.columns == ["feature", "importance"] and imp.height == len(linear_model.features)
    assert imp["importance"].to_list() == sorted(imp["importance"].to_list(), reverse=True)
    assert set(imp["feature"].head(3).to_list()) == {REVENUE, SLOPE, INDUSTRY}
    json.dumps(linear_model.card())


def test_lightgbm_importance_is_mean_abs_shap(gbm_model):
    imp = gbm_model.feature_importance()
    assert imp.height == len(gbm_model.features)  # bias column excluded
    assert set(imp["feature"].head(2).to_list()) == {REVENUE, SLOPE}


def test_censored_rows_are_excluded(linear_frame):
    censored = linear_frame.head(40).with_columns(
        pl.lit(None, dtype=pl.Int8).alias("label"), pl.lit(True).alias("censored"),
        pl.lit(dt.date(2024, 12, 31)).alias("cutoff_date"))
    model = train_division_model(pl.concat([linear_frame, censored]), settings(), SEED)
    assert model.class_balance["n"] == linear_frame.height
    assert model.class_balance["censored_rows_dropped"] == 40
    assert model.oof.height == linear_frame.height
    assert dt.date(2024, 12, 31) not in model.oof["cutoff_date"].to_list()


def test_shuffled_labels_give_chance_auc(linear_frame):
    y = np.random.default_rng(5).permutation(linear_frame["label"].to_numpy())
    model = train_division_model(linear_frame.with_columns(pl.Series("label", y, dtype=pl.Int8)), settings(), SEED)
    assert abs(model.metrics["auc"] - 0.5) < 0.08
    assert model.metrics["lift_at_10"] < 2.0  # the default gate (lift10_min 2.0, auc_min 0.70) blocks it


# ---------------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------------
def test_insufficient_data(linear_frame):
    with pytest.raises(InsufficientData, match="one class"):
        train_division_model(linear_frame.with_columns(pl.lit(0, dtype=pl.Int8).alias("label")), settings(), SEED)
    pos_idx = np.nonzero(linear_frame["label"].to_numpy() == 1)[0]
    y = np.zeros(linear_frame.height, dtype=np.int8)
    y[pos_idx[:10]] = 1
    with pytest.raises(InsufficientData, match="10 positives < min_positives 20") as err:
        train_division_model(linear_frame.with_columns(pl.Series("label", y)), settings(), SEED)
    assert "min_positives" in err.value.reason
    with pytest.raises(InsufficientData, match="no labelled rows"):
        train_division_model(linear_frame.with_columns(pl.lit(None, dtype=pl.Int8).alias("label")), settings(), SEED)
    with pytest.raises(InsufficientData):
        train_division_model(linear_frame.head(0), settings(), SEED)
    # enough positive rows but all from 2 customers: grouped CV with 3 folds cannot work
    y2 = np.zeros(linear_frame.height, dtype=np.int8)
    y2[:4] = 1  # customers C0000 and C0001 (2 cutoffs each)
    with pytest.raises(InsufficientData, match="customers"):
        train_division_model(linear_frame.with_columns(pl.Series("label", y2)), settings(min_positives=1), SEED)


def test_constant_predictions_are_rejected(linear_frame):
    feats = feature_columns(linear_frame)
    const = linear_frame.with_columns(
        [pl.lit(1.0).alias(f) for f in feats if f != INDUSTRY] + [pl.lit("Mfg").alias(INDUSTRY)])
    with pytest.raises(DegenerateModel, match="constant"):
        train_division_model(const, settings(), SEED)


# ---------------------------------------------------------------------------------------------------
# determinism, scoring, persistence
# ---------------------------------------------------------------------------------------------------
def test_training_is_deterministic(xor_frame, gbm_model, linear_frame, linear_model):
    for frame, first in ((xor_frame, gbm_model), (linear_frame, linear_model)):
        second = train_division_model(frame, settings(), SEED)
        assert second.params == first.params
        assert second.metrics == first.metrics
        assert second.cv_results.equals(first.cv_results)
        assert second.oof.equals(first.oof)
        assert np.array_equal(second.predict_proba(frame), first.predict_proba(frame))
        assert second.importance.equals(first.importance)


def test_predict_proba_uses_learned_transform_and_ignores_column_order(gbm_model, xor_frame):
    p = gbm_model.predict_proba(xor_frame)
    assert p.shape == (xor_frame.height,) and np.all((p >= 0) & (p <= 1)) and p.std() > 0
    shuffled_cols = xor_frame.select(list(reversed(xor_frame.columns))).drop("label", "net_revenue_window")
    assert np.array_equal(gbm_model.predict_proba(shuffled_cols), p)
    scoring = xor_frame.with_columns(pl.lit("Space").alias(INDUSTRY))  # unseen level -> other, no crash
    assert gbm_model.predict_proba(scoring).shape == (xor_frame.height,)


def test_save_load_round_trip(tmp_path, gbm_model, linear_model, xor_frame):
    for model in (gbm_model, linear_model):
        path = model.save(tmp_path / f"{model.model_type}" / "model.joblib")
        loaded = load_model(path)
        assert isinstance(loaded, TrainedModel) and loaded.params == model.params
        assert np.array_equal(loaded.predict_proba(xor_frame), model.predict_proba(xor_frame))
        assert loaded.metrics == model.metrics and loaded.oof.equals(model.oof)
    (tmp_path / "bad.joblib").write_bytes(b"")
    with pytest.raises(Exception):
        load_model(tmp_path / "bad.joblib")
