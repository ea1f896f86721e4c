"""The averaged (ensemble) division model, log-scaled logistic inputs and the logistic solver rule."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from gosales_assets.core.calibration import logit
from gosales_assets.core.metrics import roc_auc
from gosales_assets.core.modeling import (
    ENSEMBLE,
    Preprocessor,
    _importance,
    candidate_configs,
    ensemble_members,
    feature_columns,
    load_model,
    logistic_solver,
    logit_standardization,
    select_config,
    train_division_model,
)
from gosales_assets.settings import LightGBMGrid, LogisticGrid
from gosales_assets_tests.test_modeling import REVENUE, SEED, SLOPE, make_frame, settings


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_frame(seed=3)


@pytest.fixture(scope="module")
def ens_model(frame):
    return train_division_model(frame, settings(ensemble=True), SEED)


# ---------------------------------------------------------------------------------------------------
# preprocessing and solver
# ---------------------------------------------------------------------------------------------------
def test_log_inputs_scales_the_signed_log_of_the_clipped_value(frame):
    feats = feature_columns(frame)
    pre = Preprocessor("onehot_scaled", log_inputs=True).fit(frame, feats)
    plain = Preprocessor("onehot_scaled").fit(frame, feats)
    j, js = pre.numeric_features.index(REVENUE), pre.numeric_features.index(SLOPE)
    x = pre.transform(frame)
    for col in (j, js):  # revenue is positive and heavy-tailed, the slope has both signs
        raw = frame[pre.numeric_features[col]].cast(pl.Float64).to_numpy()
        clipped = np.clip(raw, pre.lower[col], pre.upper[col])
        logged = np.sign(clipped) * np.log1p(np.abs(clipped))
        assert pre.means[col] == pytest.approx(logged.mean())
        assert np.allclose(x[:, col], (logged - logged.mean()) / logged.std())
    assert not np.allclose(x[:, j], plain.transform(frame)[:, j])
    # medians and caps stay in raw units, and the tree encoding does not change
    assert np.array_equal(pre.upper, plain.upper) and np.array_equal(pre.medians, plain.medians)
    assert np.array_equal(pre.with_encoding("codes").transform(frame), plain.with_encoding("codes").transform(frame))


def test_transforms_work_on_a_copy_and_match_the_reference_formula():
    # The imputation, clipping and signed log run in place on the matrix the Preprocessor extracts; the frame
    # it was given must not change, even one whose columns numpy could hand over without a copy.
    rng = np.random.default_rng(0)
    raw = rng.normal(0.0, 50.0, size=(200, 3))
    raw[::7, 0] = np.nan
    raw[3, 1], raw[5, 1], raw[8, 2] = np.inf, -np.inf, -0.0
    frame = pl.from_numpy(np.asfortranarray(raw), schema=["rfm__all__a__3m", "rfm__all__b__3m", "rfm__all__c__3m"])
    before = frame.clone()
    feats = frame.columns
    pre = Preprocessor("onehot_scaled", winsor_quantiles=(0.05, 0.95), log_inputs=True).fit(frame, feats)
    x = pre.transform(frame)
    assert frame.equals(before, null_equal=True)
    assert np.array_equal(np.isnan(frame.to_numpy()), np.isnan(raw))

    finite = np.where(np.isfinite(raw), raw, np.nan)
    med = np.nanmedian(finite, axis=0)
    lo, hi = np.nanquantile(finite, [0.05, 0.95], axis=0)
    clipped = np.clip(np.where(np.isnan(finite), med, finite), lo, hi)
    logged = np.sign(clipped) * np.log1p(np.abs(clipped))
    assert np.array_equal(pre.medians, med) and np.array_equal(pre.lower, lo) and np.array_equal(pre.upper, hi)
    assert np.array_equal(x, (logged - logged.mean(axis=0)) / logged.std(axis=0))  # bit for bit
    assert np.array_equal(pre.with_encoding("codes").transform(frame), clipped)


def test_pure_l2_uses_lbfgs_and_elastic_net_saga():
    assert logistic_solver(0.0) == "lbfgs"
    assert logistic_solver(0.1) == logistic_solver(1.0) == "saga"


# ---------------------------------------------------------------------------------------------------
# the ensemble
# ---------------------------------------------------------------------------------------------------
def test_ensemble_members_are_the_best_config_of_each_family(frame, ens_model):
    params = settings(ensemble=True)
    cfgs = candidate_configs(params)
    cv = ens_model.cv_results.filter(pl.col("config") != ENSEMBLE)
    members = ensemble_members(cv, cfgs)
    assert [m["model_type"] for m in members] == ["logistic", "lightgbm"]
    for m in members:
        names = [c["config"] for c in cfgs if c["model_type"] == m["model_type"]]
        assert m["config"] == select_config(cv.filter(pl.col("config").is_in(names)), names)
    assert ens_model.model_type == ENSEMBLE and ens_model.params["config"] == ENSEMBLE
    assert [p["config"] for p in ens_model.params["members"]] == [m["config"] for m in members]
    assert ens_model.cv_summary().filter(pl.col("selected"))["config"].to_list() == [ENSEMBLE]
    # one family only -> no ensemble, the family's best config alone
    gbm_only = train_division_model(frame, settings(ensemble=True, logistic=LogisticGrid(C=[])), SEED)
    assert gbm_only.model_type == "lightgbm" and any("only one model family" in n for n in gbm_only.notes)


def test_ensemble_averages_the_members_standardized_out_of_fold_logits(frame, ens_model):
    """Each member's centre/scale is the mean/std of ITS out-of-fold logit (same folds, same seed as a
    single-family model of that config), and the ensemble's OOF raw score is sigmoid(mean of the z's)."""
    single = {}
    for p in ens_model.params["members"]:
        if p["model_type"] == "logistic":
            grid = dict(logistic=LogisticGrid(C=[p["C"]], l1_ratio=[p["l1_ratio"]], max_iter=p["max_iter"]),
                        lightgbm=LightGBMGrid(num_leaves=[]))
        else:
            base = settings().lightgbm
            grid = dict(logistic=LogisticGrid(C=[]), lightgbm=base.model_copy(update={
                "num_leaves": [p["num_leaves"]], "learning_rate": [p["learning_rate"]],
                "min_child_samples": [p["min_child_samples"]], "feature_fraction": [p["feature_fraction"]]}))
        single[p["model_type"]] = train_division_model(frame, settings(**grid), SEED)
    z = []
    for mem in ens_model.estimator.members:
        ref = single[mem.model_type]
        assert ref.params["config"] == mem.params["config"]
        oof_raw = ref.oof["score_raw"].to_numpy()
        assert (mem.center, mem.scale) == pytest.approx(logit_standardization(oof_raw))
        assert mem.center == pytest.approx(logit(oof_raw).mean()) and mem.scale == pytest.approx(logit(oof_raw).std())
        z.append((logit(oof_raw) - mem.center) / mem.scale)
    expected = 1.0 / (1.0 + np.exp(-np.mean(z, axis=0)))
    assert np.allclose(ens_model.oof["score_raw"].to_numpy(), expected)
    # per-fold CV rows of the ensemble are computed on those scores
    y, folds = ens_model.oof["label"].to_numpy(), ens_model.oof["fold"].to_numpy()
    rows = ens_model.cv_results.filter(pl.col("config") == ENSEMBLE).sort("fold")
    assert rows["auc"].to_list() == pytest.approx([roc_auc(y[folds == k], expected[folds == k]) for k in range(3)])


def test_ensemble_scoring_uses_the_refitted_members(frame, ens_model):
    labelled = frame.filter(pl.col("label").is_not_null())
    z = [mem.z(labelled) for mem in ens_model.estimator.members]
    raw = 1.0 / (1.0 + np.exp(-(z[0] + z[1]) / 2))
    assert np.allclose(ens_model.predict_raw(labelled), raw)
    assert np.allclose(ens_model.predict_proba(labelled), ens_model.calibrator.transform(raw))
    # the members really differ (otherwise averaging would be a no-op)
    assert np.corrcoef(z[0], z[1])[0, 1] < 0.999
    lr = next(m for m in ens_model.estimator.members if m.model_type == "logistic")
    assert lr.preprocessor.encoding == "onehot_scaled" and lr.estimator.get_params()["C"] == lr.params["C"]


def test_ensemble_importance_is_scaled_and_averaged(ens_model):
    imp = dict(ens_model.feature_importance().iter_rows())
    assert set(imp) == set(ens_model.features)
    feats_frame = make_frame(seed=3).filter(pl.col("label").is_not_null())
    expected = dict.fromkeys(ens_model.features, 0.0)
    for mem in ens_model.estimator.members:
        part = _importance(mem.preprocessor, mem.estimator, mem.model_type, mem.preprocessor.transform(feats_frame),
                           SEED, 2000)
        for f, v in part.iter_rows():
            expected[f] += v / mem.scale / 2
    assert imp == pytest.approx(expected)
    top = ens_model.feature_importance()["feature"].head(2).to_list()
    assert set(top) <= {REVENUE, SLOPE, "attr__all__industry__static"}


def test_ensemble_is_deterministic_and_round_trips(tmp_path, frame, ens_model):
    again = train_division_model(frame, settings(ensemble=True), SEED)
    assert again.params == ens_model.params and again.metrics == ens_model.metrics
    assert again.oof.equals(ens_model.oof) and again.importance.equals(ens_model.importance)
    loaded = load_model(ens_model.save(tmp_path / "m.joblib"))
    assert np.array_equal(loaded.predict_proba(frame), ens_model.predict_proba(frame))
    assert loaded.card()["params"]["members"][0]["solver"] in ("lbfgs", "saga")


def test_ensemble_scores_from_one_shared_transform_equal_each_members_own(tmp_path, frame, ens_model):
    # The members are refitted from one base preprocessor: scoring reads and imputes the frame once for both
    # encodings, and the scores are the same bytes as each member transforming the frame itself.
    ens = load_model(ens_model.save(tmp_path / "m.joblib")).estimator
    first, second = (m.preprocessor for m in ens.members)
    assert first.encoding != second.encoding and first.same_learning(second)
    per_member = 1.0 / (1.0 + np.exp(-(ens.members[0].z(frame) + ens.members[1].z(frame)) / 2))
    assert np.array_equal(ens.predict_raw(frame), per_member)
    # a member whose learned values differ (here: its medians) is not given the other's matrix
    other = second.with_encoding(second.encoding)
    other.medians = second.medians + 1.0
    assert not first.same_learning(other) and not first.same_learning(Preprocessor(first.encoding))
    ens.members[1].preprocessor = other
    own = 1.0 / (1.0 + np.exp(-(ens.members[0].z(frame) + ens.members[1].z(frame)) / 2))
    assert np.array_equal(ens.predict_raw(frame), own) and not np.array_equal(own, per_member)
