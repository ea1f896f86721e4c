"""Per-division propensity model: preprocessing, customer-grouped CV, selection, calibration, refit.

Pure numpy / polars / scikit-learn / LightGBM; no Dagster. Entry point: `train_division_model`.

Input frame (the `division_features` table, possibly pooling several cutoffs): `customer_id`, feature
columns named `family__scope__metric__window` (`feature_columns`), and label-side columns (`division`,
`cutoff_date`, `window_months`, `cohort`, `net_revenue_window`, `label`, `censored`) that are never features.

Training (`train_division_model`):
1. Rows with a null label (censored) are dropped. `InsufficientData` when nothing is left, when only one
   class remains, when positives < `min_positives`, or when there are fewer positive (or negative)
   customers than folds.
2. Customer-grouped, label-stratified folds (`customer_folds`) over ALL labelled rows: every row of a customer
   (one per pooled cutoff) lands in the same fold, so no customer is both trained on and evaluated.
   Negative sampling (`sample_negatives`, `ModelSettings.sampling`): per training cutoff every positive is kept
   and, when the cutoff has at least `min_rows_to_sample` labelled rows, max(min_negatives,
   ceil(negatives_per_positive × positives)) of its negatives (a seeded draw independent of row order; all of
   them when the target reaches them), each kept negative weighted by negatives / kept. The fits — the
   preprocessing statistics, logistic `sample_weight`, LightGBM `weight` — then see the whole frame's class
   balance, so scores stay on the original scale. Only the training folds and the final refit are sampled;
   every held-out fold is scored in full. Training cost then grows with the positives, not the rows.
   Large frames (`ModelSettings.large_frames`, `fit_schedule`): from `min_positives` training positives on, the
   folds are `large_frames.n_folds` and LightGBM's learning rate `large_frames.learning_rate` (the card's
   `fit_schedule` records it); smaller frames keep `n_folds` and the grid.
3. Every candidate configuration (elastic-net logistic regression grid and LightGBM grid from
   `ModelSettings`) is fitted per fold: the `Preprocessor` is learned once per fold on the (sampled) training
   folds, with the design matrices of those rows and of the held-out fold built once for every candidate; the
   model predicts the whole held-out fold (out-of-fold, OOF). LightGBM early-stops on the held-out fold's log
   loss: it stops after `early_stopping_rounds` rounds that did not lower the best loss by more than
   `early_stopping_tolerance` × the base-rate log loss (at most `n_estimators_max` trees), and its best
   iteration is recorded (when the training folds are sampled, that loss is measured on the held-out fold's
   sampled rows with their weights: an unbiased estimate of the whole fold's, much cheaper per round). Note:
   choosing the tree count on the held-out fold makes that fold's OOF score very slightly optimistic (one
   integer is tuned on it); the reported metrics accept this small bias.
4. Selection: highest mean lift@10% across folds; ties → lower mean Brier; then candidate order (logistic
   configs in grid order, then LightGBM configs in grid order).
   With `ensemble` (and both families configured) the selection is made within each family and the model is
   the `Ensemble` of the two winners: raw score = sigmoid(mean over members of (logit(member raw) - center)
   / scale), each member's center / scale being the mean / std of ITS out-of-fold logit, so both members
   weigh equally. Its OOF score is that average of the members' OOF scores; its per-fold CV rows
   (config "ensemble") are added to `cv_results`. Averaging a strongly shrunk linear model with stumps lowers
   the variance of either alone when there are 20-70 positives, without a noisy choice between them.
5. Calibration (`calibration.Calibrator`, method by `calibration_method(positives, isotonic_min_positives)`)
   is fitted on the selected configuration's (or the ensemble's) OOF raw scores only, never on in-sample
   scores — the OOF scores of every labelled row (unsampled, unweighted).
6. Final refit on all labelled rows (every positive and the sampled negatives, weighted, when sampled) with
   exactly the selected hyper-parameters (every member's, for the ensemble); for LightGBM n_estimators =
   round-half-up(mean of the folds' best iterations) and no early stopping. Logistic regression: lbfgs for a
   pure L2 penalty, saga (tolerance `LOGISTIC_TOL`) otherwise.
7. Reported metrics are computed on cross-fitted calibrated OOF scores of every labelled row: the OOF scores
   of fold k are calibrated by a calibrator fitted on the OOF scores of the other folds (same method), so
   neither the model nor the calibrator has seen the rows it is evaluated on. The stored calibrator (used at
   scoring) is the one fitted on all OOF scores. No in-sample metric is reported anywhere. The model records
   what was sampled and how (`TrainedModel.sampling`, the card's `sampling`; `class_balance.rows_fitted`).
8. `DegenerateModel` when the final calibrated predictions on the training rows are constant.

Everything is seeded; training twice on the same frame gives bit-identical predictions and metrics. With no
sampling (off, or every cutoff under `min_rows_to_sample`) and `early_stopping_tolerance` 0 the models are
bit-identical to those of the code before sampling existed.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import joblib
import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from gosales_assets.core.calibration import Calibrator, calibration_method, logit
from gosales_assets.core.metrics import (
    auc_interval,
    brier,
    calibration_bins,
    capacity_thresholds,
    gains_table,
    lift_at_k,
    metric_summary,
    roc_auc,
)
from gosales_assets.settings import ModelSettings, SamplingSettings

__all__ = [
    "LABEL_SIDE_COLUMNS",
    "OTHER_LEVEL",
    "MISSING_LEVEL",
    "InsufficientData",
    "DegenerateModel",
    "feature_columns",
    "Preprocessor",
    "customer_folds",
    "fold_overlap",
    "NegativeSample",
    "negatives_to_keep",
    "sample_negatives",
    "candidate_configs",
    "select_config",
    "train_division_model",
    "ENSEMBLE",
    "EnsembleMember",
    "Ensemble",
    "ensemble_members",
    "TrainedModel",
    "load_model",
]

LABEL_SIDE_COLUMNS = frozenset(
    {"customer_id", "division", "cutoff_date", "window_months", "cohort", "net_revenue_window", "label",
     "censored"}
)
ENSEMBLE = "ensemble"  # config name and model type of the averaged model
OTHER_LEVEL = "__other__"
MISSING_LEVEL = "__missing__"
MODEL_FORMAT_VERSION = 1
_SELECTION_K = 10.0
_PREDICT_CHUNK = 200_000
# saga stops when the largest coefficient change of an epoch is below tol x the largest coefficient. 3e-3
# (sklearn's default is 1e-4) cuts the epochs ~10x on correlated, lightly regularised feature sets while the
# held-out predictions agree with a 1e-4 fit to ~3 decimals of AUC (measured on the 5k x 300 benchmark).
LOGISTIC_TOL = 3e-3
# Separates the negative sampling's random stream from the folds' (both derive from the modeling seed).
_SAMPLING_STREAM = 0x5A4D504C
SAMPLING_RULE = (
    "per training cutoff: every positive is kept; the negatives are kept whole when sampling is off, when the cutoff "
    "has fewer than min_rows_to_sample labelled rows or when max(min_negatives, ceil(negatives_per_positive x "
    "positives)) reaches them; otherwise that many negatives are drawn (seeded, independent of row order) and each "
    "gets weight negatives / kept in the fits (logistic sample_weight, LightGBM weight, preprocessing statistics). "
    "Folds are assigned over all labelled rows; only the training folds and the final refit are sampled: every "
    "held-out fold is scored in full, and calibration and every reported metric use those unsampled out-of-fold rows"
)

Encoding = Literal["onehot_scaled", "codes"]
ModelType = Literal["logistic", "lightgbm", "ensemble"]
_ENCODING_FOR: dict[str, Encoding] = {"logistic": "onehot_scaled", "lightgbm": "codes"}


class InsufficientData(Exception):
    """The labelled rows cannot support a model (no rows, one class, too few positives)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DegenerateModel(Exception):
    """The fitted model's calibrated predictions carry no ranking (constant)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------------
def _is_feature_name(name: str) -> bool:
    parts = name.split("__")
    return len(parts) == 4 and all(p and not p.startswith("_") and not p.endswith("_") for p in parts)


def feature_columns(frame: pl.DataFrame) -> list[str]:
    """Model features: columns named `family__scope__metric__window` (exactly four non-empty parts),
    never a label-side column; in frame order (deterministic for a given table schema)."""
    return [c for c in frame.columns if c not in LABEL_SIDE_COLUMNS and _is_feature_name(c)]


def _is_categorical_dtype(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)) or dtype == pl.Categorical


def _is_numeric_dtype(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null


# ---------------------------------------------------------------------------------------------------
# preprocessing
# ---------------------------------------------------------------------------------------------------
def weighted_quantiles(x: np.ndarray, weights: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Weighted inverted-CDF quantiles of each column of `x`, NaN ignored (shape: quantiles × columns): for q, the
    smallest value of the column at which the share of its non-NaN rows' weight at or below it reaches q; NaN for a
    column without a value. The same values as `np.nanquantile(x, quantiles, axis=0, method="inverted_cdf",
    weights=...)` at a fraction of its cost: one stable sort of the whole matrix (timsort, fast on the many ties of
    count and flag features) instead of numpy's copy and quicksort of every column (at 40,000 rows × 300 features
    ~0.5 CPU-s against numpy's ~1.3, once per preprocessing fit: each fold and the refit). `weights` must be
    positive."""
    qs = np.asarray(quantiles, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    xf = np.asfortranarray(x)  # columns contiguous for the sort and the gathers
    order = np.argsort(xf, axis=0, kind="stable")  # NaN sorts last
    out = np.full((qs.size, xf.shape[1]), np.nan)
    for j in range(xf.shape[1]):
        o = order[:, j]
        v = xf[o, j]
        n = v.size - int(np.isnan(v).sum())
        if n == 0:
            continue
        cdf = np.cumsum(w[o[:n]])
        cdf /= cdf[-1]
        out[:, j] = v[np.minimum(np.searchsorted(cdf, qs, side="left"), n - 1)]
    return out


class Preprocessor:
    """Learned feature transform, fitted on training rows only and stored inside the model.

    Numeric features (numeric or boolean dtype): missing / NaN / infinite → training median, then clipped
    to the training winsor caps (quantiles `winsor_quantiles` of the non-missing training values, linear
    interpolation); with the `onehot_scaled` encoding (logistic regression) then, when `log_inputs`, mapped
    by the signed log sign(x)·log1p(|x|) (monotone, so only linear models see a difference), and standardised
    with the training mean and std of those values (std 0 → 1).
    Categorical features (string / categorical dtype): the `max_category_levels` most frequent training
    levels (ties by name) plus `__other__` (any other value, including levels never seen in training) and
    `__missing__` (null). `onehot_scaled` → one 0/1 column per level (not scaled); `codes` (LightGBM) →
    one integer-code column (level i → i, other → L, missing → L + 1) declared categorical to LightGBM.

    `transform` only applies the learned values; nothing is re-estimated from the frame it transforms.
    Design-matrix columns: the numeric features in feature order, then the categorical ones.
    """

    log_inputs = False  # class default: preprocessors pickled before the option existed behave as before

    def __init__(self, encoding: Encoding = "codes", winsor_quantiles: tuple[float, float] = (0.01, 0.99),
                 max_category_levels: int = 20, log_inputs: bool = False):
        if encoding not in ("onehot_scaled", "codes"):
            raise ValueError(f"unknown encoding {encoding!r}")
        lo, hi = (float(q) for q in winsor_quantiles)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"winsor_quantiles must satisfy 0 <= lo <= hi <= 1, got {winsor_quantiles}")
        if int(max_category_levels) < 1:
            raise ValueError("max_category_levels must be >= 1")
        self.encoding: Encoding = encoding
        self.winsor_quantiles = (lo, hi)
        self.max_category_levels = int(max_category_levels)
        self.log_inputs = bool(log_inputs)
        self.features: list[str] = []
        self.numeric_features: list[str] = []
        self.categorical_features: list[str] = []
        self.medians = np.zeros(0)
        self.lower = np.zeros(0)
        self.upper = np.zeros(0)
        self.means = np.zeros(0)
        self.stds = np.ones(0)
        self.levels: dict[str, list[str]] = {}
        self.n_fit = 0
        self.fitted = False

    # ---- learning ---------------------------------------------------------------------------------
    def fit(self, frame: pl.DataFrame, features: list[str], weights: np.ndarray | None = None) -> "Preprocessor":
        """Learn the transform from `frame` (training rows only). `weights` (one positive weight per row, e.g. the
        negatives' 1 / sampling rate): the statistics are those of the weighted rows — weighted median and winsor
        caps (the inverted-CDF quantile: no interpolation between rows), weighted mean and std, category levels by
        weighted count — so a sampled frame learns about what the whole frame would have given."""
        self.fit_transforms(frame, features, (), weights=weights)
        return self

    def fit_transforms(self, frame: pl.DataFrame, features: list[str], encodings=("codes",),
                       weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """`fit(frame, features, weights)` and the design matrices of `frame` in each of `encodings`, from the one
        read of the frame and the imputed matrix the fit makes anyway (equal to `with_encoding(e).transform(frame)`
        after the fit)."""
        # One schema lookup: polars rebuilds `frame.schema` on every access (~0.4 ms for 300 columns).
        schema = frame.schema
        missing = [f for f in features if f not in schema]
        if missing:
            raise ValueError(f"feature columns missing from the training frame: {missing[:10]}")
        if frame.height == 0:
            raise ValueError("cannot fit a Preprocessor on zero rows")
        w = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (frame.height,) or not np.isfinite(w).all() or (w <= 0).any():
                raise ValueError("weights must be one positive, finite number per row of the frame")
        numeric, categorical, bad = [], [], []
        for f in features:
            dt = schema[f]
            if _is_categorical_dtype(dt):
                categorical.append(f)
            elif _is_numeric_dtype(dt):
                numeric.append(f)
            else:
                bad.append(f"{f} ({dt})")
        if bad:
            raise TypeError(f"unsupported feature dtypes (numeric, boolean or string expected): {bad[:10]}")
        self.features = list(features)
        self.numeric_features = numeric
        self.categorical_features = categorical
        self.n_fit = frame.height

        x = self._numeric_raw(frame)
        k = x.shape[1]
        med = np.zeros(k)
        lo = np.zeros(k)
        hi = np.zeros(k)
        observed = ~np.isnan(x).all(axis=0) if k else np.zeros(0, dtype=bool)
        if observed.any():
            xo = x if observed.all() else x[:, observed]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                if w is None:
                    med[observed] = np.nanmedian(xo, axis=0)
                    q = np.nanquantile(xo, list(self.winsor_quantiles), axis=0, method="linear")
                    lo[observed], hi[observed] = q[0], q[1]
                else:
                    q = weighted_quantiles(xo, w, [0.5, *self.winsor_quantiles])
                    med[observed], lo[observed], hi[observed] = q[0], q[1], q[2]
            del xo
        self.medians, self.lower, self.upper = med, lo, hi
        x = self._impute_clip(x)

        self.levels = {}
        for f in categorical:
            if w is None:
                vc = (
                    frame.select(pl.col(f).cast(pl.String).alias("v"))
                    .drop_nulls()
                    .group_by("v")
                    .agg(pl.len().alias("n"))
                    .sort(["n", "v"], descending=[True, False])
                )
                self.levels[f] = vc.get_column("v").head(self.max_category_levels).to_list()
            else:  # weighted counts summed in numpy (a fixed order: bit-identical from run to run)
                col = frame.get_column(f).cast(pl.String)
                present = col.is_not_null().to_numpy()
                values, inv = np.unique(col.drop_nulls().to_numpy().astype(str), return_inverse=True)
                totals = np.bincount(inv.ravel(), weights=w[present], minlength=values.size)
                order = sorted(range(values.size), key=lambda i: (-totals[i], values[i]))
                self.levels[f] = [str(values[i]) for i in order[: self.max_category_levels]]
        codes = self.category_codes(frame) if encodings else None

        out: dict[str, np.ndarray] = {}
        if "codes" in encodings:  # a copy, before the in-place scaling below: this encoding uses the clipped values
            out["codes"] = self._codes_design(x, codes, copy=True)
        xi = self._scaled_input(x)
        if w is None:
            self.means = xi.mean(axis=0) if k else np.zeros(0)
            std = xi.std(axis=0) if k else np.ones(0)
        else:
            self.means = (w @ xi) / w.sum() if k else np.zeros(0)
            std = np.sqrt((w @ np.square(xi - self.means)) / w.sum()) if k else np.ones(0)
        self.stds = np.where(std > 1e-12, std, 1.0)
        self.fitted = True
        if "onehot_scaled" in encodings:
            xi -= self.means
            xi /= self.stds
            out["onehot_scaled"] = self._onehot_design(xi, codes)
        return out

    def with_encoding(self, encoding: Encoding) -> "Preprocessor":
        """A copy sharing the learned values, producing the other design-matrix encoding."""
        if encoding not in ("onehot_scaled", "codes"):
            raise ValueError(f"unknown encoding {encoding!r}")
        other = copy.copy(self)
        other.encoding = encoding
        return other

    def same_learning(self, other: "Preprocessor") -> bool:
        """Whether `other` applies exactly the learned values of this one (whatever its encoding): what
        `with_encoding` copies share, and what a saved ensemble's members keep. Then one `transforms` of this one
        gives both their design matrices."""
        return (self.fitted and other.fitted and self.features == other.features
                and self.numeric_features == other.numeric_features
                and self.categorical_features == other.categorical_features and self.levels == other.levels
                and self.log_inputs == other.log_inputs
                and all(np.array_equal(getattr(self, a), getattr(other, a))
                        for a in ("medians", "lower", "upper", "means", "stds")))

    # ---- applying ---------------------------------------------------------------------------------
    def _numeric_raw(self, frame: pl.DataFrame) -> np.ndarray:
        if not self.numeric_features:
            return np.zeros((frame.height, 0))
        # A writable copy (never a view of the frame's buffers): the transforms below work in place.
        x = frame.select([pl.col(f).cast(pl.Float64) for f in self.numeric_features]).to_numpy(writable=True)
        x = np.asarray(x, dtype=np.float64)
        x[~np.isfinite(x)] = np.nan
        return x

    # The two transforms below work in place on the fresh matrix `_numeric_raw` returns: at 300k rows × 300
    # features each temporary is ~0.7 GB, and the out-of-place forms made four of them per call.
    def _impute_clip(self, x: np.ndarray) -> np.ndarray:
        """Missing → training median, then clip to the winsor caps (in place; returns x)."""
        np.copyto(x, self.medians, where=np.isnan(x))
        return np.clip(x, self.lower, self.upper, out=x)

    def _scaled_input(self, x: np.ndarray) -> np.ndarray:
        """The values that are standardised in the `onehot_scaled` encoding: sign(x)·log1p(|x|) when
        `log_inputs` (in place; returns x), else x unchanged."""
        if not self.log_inputs:
            return x
        negative = x < 0
        np.abs(x, out=x)
        np.log1p(x, out=x)
        return np.negative(x, out=x, where=negative)

    def category_codes(self, frame: pl.DataFrame) -> np.ndarray:
        """n × n_categorical int matrix of level codes (level i → i, other → L, missing → L + 1)."""
        if not self.categorical_features:
            return np.zeros((frame.height, 0), dtype=np.int64)
        exprs = []
        for f in self.categorical_features:
            lv = self.levels[f]
            L = len(lv)
            col = pl.col(f).cast(pl.String)
            exprs.append(
                pl.when(col.is_null())
                .then(pl.lit(L + 1, dtype=pl.Int64))
                .otherwise(col.replace_strict(lv, list(range(L)), default=L, return_dtype=pl.Int64))
                .alias(f)
            )
        return np.asarray(frame.select(exprs).to_numpy(), dtype=np.int64)

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        """Design matrix (float64, C order) using only the learned values."""
        return self.transforms(frame, (self.encoding,))[self.encoding]

    def transforms(self, frame: pl.DataFrame, encodings) -> dict[str, np.ndarray]:
        """Design matrices of `frame` in each of `encodings` from one read of the frame and one imputation (the
        same matrices as `with_encoding(e).transform(frame)`), using only the learned values."""
        if not self.fitted:
            raise RuntimeError("Preprocessor.transform called before fit")
        bad = [e for e in encodings if e not in ("onehot_scaled", "codes")]
        if bad:
            raise ValueError(f"unknown encoding {bad[0]!r}")
        have = set(frame.columns)
        missing = [f for f in self.features if f not in have]
        if missing:
            raise ValueError(f"feature columns missing from the frame to transform: {missing[:10]}")
        x = self._impute_clip(self._numeric_raw(frame))
        codes = self.category_codes(frame)
        out: dict[str, np.ndarray] = {}
        if "codes" in encodings:
            out["codes"] = self._codes_design(x, codes, copy="onehot_scaled" in encodings)
        if "onehot_scaled" in encodings:
            x = self._scaled_input(x)
            x -= self.means
            x /= self.stds
            out["onehot_scaled"] = self._onehot_design(x, codes)
        return out

    def _codes_design(self, x: np.ndarray, codes: np.ndarray, copy: bool) -> np.ndarray:
        """The `codes` design matrix: the imputed, clipped numerics, then the category codes (x itself when there
        are no categoricals and no `copy` is asked for)."""
        if not codes.shape[1]:
            return x.copy() if copy else np.ascontiguousarray(x, dtype=np.float64)
        out = np.empty((x.shape[0], x.shape[1] + codes.shape[1]), dtype=np.float64)
        out[:, : x.shape[1]] = x
        out[:, x.shape[1]:] = codes
        return out

    def _onehot_design(self, xs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The `onehot_scaled` design matrix from the standardized numerics `xs` and the category codes."""
        if not self.categorical_features:
            return np.ascontiguousarray(xs, dtype=np.float64)
        # One zeroed matrix filled in place (not one 0/1 block per categorical stacked after: two more copies).
        widths = [len(self.levels[f]) + 2 for f in self.categorical_features]
        n, k = xs.shape
        out = np.zeros((n, k + sum(widths)), dtype=np.float64)
        out[:, :k] = xs
        rows, start = np.arange(n), k
        for j, width in enumerate(widths):
            out[rows, start + codes[:, j]] = 1.0
            start += width
        return out

    # ---- description ------------------------------------------------------------------------------
    @property
    def design_columns(self) -> list[str]:
        cols = list(self.numeric_features)
        for f in self.categorical_features:
            if self.encoding == "onehot_scaled":
                cols += [f"{f}={lv}" for lv in [*self.levels[f], OTHER_LEVEL, MISSING_LEVEL]]
            else:
                cols.append(f)
        return cols

    @property
    def design_features(self) -> list[str]:
        """The original feature of each design-matrix column."""
        cols = list(self.numeric_features)
        for f in self.categorical_features:
            width = len(self.levels[f]) + 2 if self.encoding == "onehot_scaled" else 1
            cols += [f] * width
        return cols

    @property
    def categorical_indices(self) -> list[int]:
        """Design-matrix indices of the integer-coded categoricals (`codes` encoding only)."""
        if self.encoding != "codes":
            return []
        k = len(self.numeric_features)
        return list(range(k, k + len(self.categorical_features)))

    def learned_values(self) -> dict[str, pl.DataFrame]:
        """The learned numeric statistics and category levels (for model cards and tests)."""
        numeric = pl.DataFrame(
            {"feature": self.numeric_features, "median": self.medians, "lower_cap": self.lower,
             "upper_cap": self.upper, "mean": self.means, "std": self.stds},
            schema={"feature": pl.String, "median": pl.Float64, "lower_cap": pl.Float64,
                    "upper_cap": pl.Float64, "mean": pl.Float64, "std": pl.Float64},
        )
        cat_rows = [{"feature": f, "code": i, "level": lv}
                    for f in self.categorical_features
                    for i, lv in enumerate([*self.levels[f], OTHER_LEVEL, MISSING_LEVEL])]
        categorical = pl.DataFrame(cat_rows, schema={"feature": pl.String, "code": pl.Int64, "level": pl.String})
        return {"numeric": numeric, "categorical": categorical}


# ---------------------------------------------------------------------------------------------------
# folds
# ---------------------------------------------------------------------------------------------------
def _ids_array(customer_ids) -> np.ndarray:
    if isinstance(customer_ids, pl.Series):
        if customer_ids.null_count():
            raise ValueError("customer_id contains nulls")
        return customer_ids.cast(pl.String).to_numpy().astype(str)
    arr = np.asarray(customer_ids, dtype=object)
    if any(v is None for v in arr):
        raise ValueError("customer_id contains nulls")
    return arr.astype(str)


def customer_folds(customer_ids, n_folds: int, seed: int, labels=None) -> np.ndarray:
    """Fold index (0..n_folds-1) per row; all rows of a customer share one fold.

    Customers (sorted unique ids) are shuffled with `numpy.random.default_rng(seed)` and dealt round-robin
    to the folds, so fold sizes in customers differ by at most one. With `labels` (0/1 per row), customers
    with at least one positive row are dealt first and the others continue the rotation, which spreads
    positives evenly. The result depends only on the set of (customer, has-positive) pairs and the seed,
    not on the row order.
    """
    n_folds = int(n_folds)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    ids = _ids_array(customer_ids)
    uniq, inv = np.unique(ids, return_inverse=True)
    if uniq.size < n_folds:
        raise ValueError(f"{uniq.size} customers cannot fill {n_folds} folds")
    has_pos = np.zeros(uniq.size, dtype=bool)
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape[0] != ids.shape[0]:
            raise ValueError("labels and customer_ids differ in length")
        has_pos = np.bincount(inv, weights=(lab == 1).astype(np.float64), minlength=uniq.size) > 0
    rng = np.random.default_rng(seed)
    fold_of = np.empty(uniq.size, dtype=np.int64)
    offset = 0
    for stratum in (True, False):
        idx = np.nonzero(has_pos == stratum)[0]
        perm = idx[rng.permutation(idx.size)]
        fold_of[perm] = (offset + np.arange(perm.size)) % n_folds
        offset = (offset + perm.size) % n_folds
    return fold_of[inv]


def fold_overlap(customer_ids, folds) -> int:
    """Number of customers whose rows are spread over more than one fold (0 for grouped folds)."""
    ids = _ids_array(customer_ids)
    f = np.asarray(folds)
    if f.shape[0] != ids.shape[0]:
        raise ValueError("folds and customer_ids differ in length")
    df = pl.DataFrame({"c": ids, "f": f})
    return df.group_by("c").agg(pl.col("f").n_unique().alias("k")).filter(pl.col("k") > 1).height


# ---------------------------------------------------------------------------------------------------
# negative sampling
# ---------------------------------------------------------------------------------------------------
def negatives_to_keep(positives: int, negatives: int, sampling: SamplingSettings) -> int:
    """How many of a training cutoff's negatives the fits use: all of them when sampling is off, when the cutoff has
    fewer than `min_rows_to_sample` labelled rows, or when the target max(min_negatives, ceil(negatives_per_positive
    × positives)) reaches them; else the target."""
    positives, negatives = int(positives), int(negatives)
    if not sampling.enabled or positives + negatives < sampling.min_rows_to_sample:
        return negatives
    target = max(int(sampling.min_negatives), math.ceil(round(sampling.negatives_per_positive * positives, 6)))
    return min(negatives, target)


def _group_stream(key: str) -> int:
    """A stable 63-bit integer of a group key (not Python's salted `hash`), for the group's random stream."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class NegativeSample:
    """Which labelled rows the fits use (`keep`) and their weights (`weight`: 1 for positives and for the rows of a
    cutoff kept whole, negatives / kept for a sampled cutoff's kept negatives, 0 for dropped rows), with one record
    per training cutoff (`by_cutoff`) and the settings that chose them (`rule`)."""

    keep: np.ndarray
    weight: np.ndarray
    by_cutoff: list[dict]
    rule: dict

    @property
    def sampled(self) -> bool:
        return not bool(self.keep.all())

    def summary(self) -> dict:
        """JSON-friendly: what was sampled and how (the model card's `sampling`)."""
        return {**self.rule, "sampled": self.sampled, "rows": int(self.keep.size),
                "rows_fitted": int(self.keep.sum()), "by_cutoff": [dict(r) for r in self.by_cutoff],
                "how": SAMPLING_RULE}


def sample_negatives(y, customer_ids, cutoffs, sampling: SamplingSettings, seed: int) -> NegativeSample:
    """Every positive and, per training cutoff (`cutoffs`: one value per row, e.g. the `cutoff_date` column; None →
    one group), `negatives_to_keep` of its negatives, each kept negative weighted by negatives / kept.

    The draw is seeded by (`seed`, the cutoff): a cutoff's negatives are ordered by customer id and permuted by
    `numpy.random.default_rng`, and the first `kept` are taken. So the sample depends only on the set of (customer,
    cutoff, label) rows and the seed — not on the row order, nor on which other cutoffs are pooled with it."""
    y = np.asarray(y)
    n = y.shape[0]
    ids = _ids_array(customer_ids)
    if ids.shape[0] != n:
        raise ValueError("labels and customer_ids differ in length")
    if cutoffs is None:
        keys = np.full(n, "", dtype=object)
    elif isinstance(cutoffs, pl.Series):
        keys = cutoffs.cast(pl.String).fill_null("").to_numpy().astype(object)
    else:
        keys = np.array(["" if c is None else str(c) for c in cutoffs], dtype=object)
    if keys.shape[0] != n:
        raise ValueError("labels and cutoffs differ in length")
    keep = np.ones(n, dtype=bool)
    weight = np.ones(n, dtype=np.float64)
    groups, inverse = np.unique(keys.astype(str), return_inverse=True)
    by_cutoff = []
    for g, key in enumerate(groups.tolist()):
        rows = np.flatnonzero(inverse == g)
        neg = rows[y[rows] == 0]
        n_neg, n_pos = int(neg.size), int(rows.size - neg.size)
        kept = negatives_to_keep(n_pos, n_neg, sampling)
        w = n_neg / kept if kept else 1.0
        if kept < n_neg:
            canonical = neg[np.argsort(ids[neg], kind="stable")]
            rng = np.random.default_rng([int(seed), _SAMPLING_STREAM, _group_stream(key)])
            chosen = canonical[rng.permutation(n_neg)[:kept]]
            keep[neg] = False
            weight[neg] = 0.0
            keep[chosen] = True
            weight[chosen] = w
        by_cutoff.append({"cutoff_date": key or None, "rows": int(rows.size), "positives": n_pos,
                          "negatives": n_neg, "negatives_kept": kept, "sampled": kept < n_neg,
                          "negative_rate": kept / n_neg if n_neg else 1.0, "negative_weight": w})
    rule = {"enabled": bool(sampling.enabled), "negatives_per_positive": float(sampling.negatives_per_positive),
            "min_negatives": int(sampling.min_negatives), "min_rows_to_sample": int(sampling.min_rows_to_sample),
            "seed": int(seed)}
    return NegativeSample(keep=keep, weight=weight, by_cutoff=by_cutoff, rule=rule)


# ---------------------------------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------------------------------
def fit_schedule(params: ModelSettings, positives: int) -> tuple[ModelSettings, dict | None]:
    """The settings a training frame with `positives` labelled positives is fitted with: `params` itself, or, from
    `params.large_frames.min_positives` positives on, `large_frames`' folds and LightGBM learning rate in place of
    `n_folds` and the grid's learning rates (with thousands of positives the folds' estimates and the early stopping
    are precise: docs/MODEL_QUALITY.md). Second: what the large-frame schedule changed, for the model card (None: it
    did not apply)."""
    large = params.large_frames
    if large.min_positives is None or positives < large.min_positives:
        return params, None
    learning_rate = [float(large.learning_rate)]
    fitted = params.model_copy(update={
        "n_folds": large.n_folds, "lightgbm": params.lightgbm.model_copy(update={"learning_rate": learning_rate})})
    return fitted, {"large_frame": True, "positives": int(positives), "min_positives": int(large.min_positives),
                    "n_folds": int(large.n_folds), "configured_n_folds": int(params.n_folds),
                    "lightgbm_learning_rate": learning_rate,
                    "configured_lightgbm_learning_rate": [float(v) for v in params.lightgbm.learning_rate]}


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def candidate_configs(params: ModelSettings) -> list[dict]:
    """The hyper-parameter grid as a list of configs, logistic first, each in grid order.

    Each config: `config` (a readable unique name), `model_type` and its hyper-parameters. An empty grid
    list (e.g. `logistic.C: []`) disables that model family."""
    out: list[dict] = []
    lg = params.logistic
    for c in lg.C:
        for l1 in lg.l1_ratio:
            cfg = {"model_type": "logistic", "C": float(c), "l1_ratio": float(l1), "max_iter": int(lg.max_iter)}
            cfg["config"] = f"logistic|C={_fmt(cfg['C'])}|l1_ratio={_fmt(cfg['l1_ratio'])}"
            out.append(cfg)
    gb = params.lightgbm
    for nl in gb.num_leaves:
        for lr in gb.learning_rate:
            for mcs in gb.min_child_samples:
                for ff in gb.feature_fraction:
                    cfg = {"model_type": "lightgbm", "num_leaves": int(nl), "learning_rate": float(lr),
                           "min_child_samples": int(mcs), "feature_fraction": float(ff),
                           "n_estimators_max": int(gb.n_estimators_max),
                           "early_stopping_rounds": int(gb.early_stopping_rounds),
                           "early_stopping_tolerance": float(gb.early_stopping_tolerance)}
                    cfg["config"] = (f"lightgbm|num_leaves={nl}|learning_rate={_fmt(cfg['learning_rate'])}"
                                     f"|min_child_samples={mcs}|feature_fraction={_fmt(cfg['feature_fraction'])}")
                    out.append(cfg)
    names = [c["config"] for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate hyper-parameter configurations in the grid: {names}")
    return out


def select_config(cv_results: pl.DataFrame, order: list[str] | None = None) -> str:
    """Name of the config with the highest mean lift@10 over folds; ties → lower mean Brier; then `order`
    (default: first appearance in `cv_results`). Means are rounded to 12 decimals before comparing so that
    float noise cannot decide. Configs whose mean lift is undefined (null) rank last."""
    if cv_results.height == 0:
        raise ValueError("empty cv_results")
    order = order or list(dict.fromkeys(cv_results.get_column("config").to_list()))
    rank = {c: i for i, c in enumerate(order)}
    summary = cv_results.group_by("config").agg(
        pl.col("lift_at_10").mean().alias("lift"), pl.col("brier").mean().alias("brier"))
    best = None
    for row in summary.iter_rows(named=True):
        lift = row["lift"]
        key = (
            0 if lift is not None else 1,
            -round(lift, 12) if lift is not None else 0.0,
            round(row["brier"], 12) if row["brier"] is not None else math.inf,
            rank.get(row["config"], len(rank)),
        )
        if best is None or key < best[0]:
            best = (key, row["config"])
    return best[1]


def logistic_solver(l1_ratio: float) -> str:
    """lbfgs for a pure L2 penalty (exact, deterministic, no stochastic tolerance), saga when there is an L1 part."""
    return "lbfgs" if float(l1_ratio) == 0.0 else "saga"


def _make_estimator(cfg: dict, seed: int, num_threads: int, n_estimators: int | None = None):
    if cfg["model_type"] == "logistic":
        # sklearn >= 1.8: `penalty` is deprecated; l1_ratio in (0, 1) with solver="saga" is the elastic net
        # (l1_ratio = 0 → pure L2, 1 → pure L1). Pure L2 uses lbfgs to its default tolerance: saga's loose
        # LOGISTIC_TOL stops strongly shrunk fits early (measured: worse forward AUC at C = 3e-4).
        solver = logistic_solver(cfg["l1_ratio"])
        tol = LOGISTIC_TOL if solver == "saga" else 1e-4
        return LogisticRegression(C=cfg["C"], l1_ratio=cfg["l1_ratio"], solver=solver, max_iter=cfg["max_iter"],
                                  tol=tol, random_state=seed)
    return lgb.LGBMClassifier(
        objective="binary",
        n_estimators=int(n_estimators if n_estimators is not None else cfg["n_estimators_max"]),
        num_leaves=cfg["num_leaves"],
        learning_rate=cfg["learning_rate"],
        min_child_samples=cfg["min_child_samples"],
        colsample_bytree=cfg["feature_fraction"],  # = LightGBM feature_fraction
        random_state=seed,
        n_jobs=int(num_threads),
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
        bagging_seed=seed,
        feature_fraction_seed=seed,
        data_random_seed=seed,
    )


def base_rate_log_loss(y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Log loss of predicting the (weighted) prevalence of `y` for every row (the scale of the early-stopping
    tolerance)."""
    p = float(np.average(y, weights=sample_weight))
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1.0 - p) * math.log(1.0 - p))


def _fit_estimator(est, model_type: str, x: np.ndarray, y: np.ndarray, cat_idx: list[int],
                   eval_xy: tuple[np.ndarray, np.ndarray] | None = None, early_stopping_rounds: int | None = None,
                   notes: list[str] | None = None, label: str = "", sample_weight: np.ndarray | None = None,
                   early_stopping_tolerance: float = 0.0, eval_weight: np.ndarray | None = None):
    """Fit `est` on (x, y) with optional per-row `sample_weight`. LightGBM with `eval_xy`: early stopping on that
    set's log loss (the first metric; weighted by `eval_weight` when given), patience `early_stopping_rounds`; a
    round improves on the best only when it lowers the loss by more than `early_stopping_tolerance` ×
    `base_rate_log_loss` of the training rows."""
    if model_type == "logistic":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            est.fit(x, y, sample_weight=sample_weight)
        if notes is not None and any(issubclass(w.category, ConvergenceWarning) for w in caught):
            notes.append(f"{label}: logistic regression did not converge within max_iter")
        return est
    kw: dict[str, Any] = {"categorical_feature": cat_idx if cat_idx else "auto"}
    if sample_weight is not None:
        kw["sample_weight"] = sample_weight
    if eval_xy is not None:
        kw["eval_X"] = (eval_xy[0],)
        kw["eval_y"] = (eval_xy[1],)
        if eval_weight is not None:
            kw["eval_sample_weight"] = [eval_weight]
        min_delta = float(early_stopping_tolerance) * base_rate_log_loss(y, sample_weight)
        kw["callbacks"] = [lgb.early_stopping(int(early_stopping_rounds), first_metric_only=True, verbose=False,
                                              min_delta=min_delta)]
    est.fit(x, y, **kw)
    return est


def _predict_raw(est, model_type: str, x: np.ndarray, num_iteration: int | None = None) -> np.ndarray:
    if model_type == "logistic":
        return est.predict_proba(x)[:, 1].astype(np.float64)
    return est.predict_proba(x, num_iteration=num_iteration)[:, 1].astype(np.float64)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


# ---------------------------------------------------------------------------------------------------
# ensemble: the best logistic and the best LightGBM configuration, averaged on one scale
# ---------------------------------------------------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def standardized_logit(raw: np.ndarray, center: float, scale: float) -> np.ndarray:
    """A member's raw score on the ensemble's common scale: (logit(raw) - center) / scale."""
    return (logit(raw) - center) / scale


def averaged_raw(zs: list[np.ndarray]) -> np.ndarray:
    """The ensemble's raw score: the sigmoid of the mean of its members' standardized logits."""
    return _sigmoid(np.mean(zs, axis=0))


def logit_standardization(raw: np.ndarray) -> tuple[float, float]:
    """(mean, std) of logit(raw); std below 1e-12 → 1 (a constant member then only shifts the average)."""
    z = logit(raw)
    sd = float(np.std(z))
    return float(np.mean(z)), (sd if sd > 1e-12 else 1.0)


def ensemble_members(cv_results: pl.DataFrame, configs: list[dict]) -> list[dict]:
    """The configs averaged by the ensemble: per model family present in `configs` (logistic, then LightGBM),
    the one `select_config` picks among that family's configs. One family only → one member."""
    out = []
    for family in ("logistic", "lightgbm"):
        names = [c["config"] for c in configs if c["model_type"] == family]
        if names:
            best = select_config(cv_results.filter(pl.col("config").is_in(names)), names)
            out.append(next(c for c in configs if c["config"] == best))
    return out


@dataclass
class EnsembleMember:
    """A fitted member: its chosen parameters, learned preprocessing, estimator, and the mean / std of its
    out-of-fold logit, which put every member on one scale (z = (logit(raw) - center) / scale)."""

    params: dict
    preprocessor: Preprocessor
    estimator: Any
    center: float
    scale: float

    @property
    def model_type(self) -> str:
        return self.params["model_type"]

    def z(self, frame: pl.DataFrame) -> np.ndarray:
        return self.z_of(self.preprocessor.transform(frame))

    def z_of(self, x: np.ndarray) -> np.ndarray:
        """The standardized logit of the rows of the design matrix `x` (this member's encoding)."""
        return standardized_logit(_predict_raw(self.estimator, self.model_type, x), self.center, self.scale)


@dataclass
class Ensemble:
    """Equal-weight average of the members' standardized logits; the raw score is its sigmoid, so the
    calibrator sees logit(raw) = the average. Averaging a strongly shrunk linear model with small-tree
    LightGBM lowers the variance of either alone when positives are few (docs/MODEL_QUALITY.md)."""

    members: list[EnsembleMember]

    def predict_raw(self, frame: pl.DataFrame) -> np.ndarray:
        first = self.members[0].preprocessor
        if all(first.same_learning(m.preprocessor) for m in self.members[1:]):
            # The members share their learned preprocessing (refitted from one base): the frame is read and imputed
            # once for both encodings (the same matrices; ~0.5 s of a division's scoring at 500,000 customers).
            xs = first.transforms(frame, tuple(dict.fromkeys(m.preprocessor.encoding for m in self.members)))
            return averaged_raw([m.z_of(xs[m.preprocessor.encoding]) for m in self.members])
        return averaged_raw([m.z(frame) for m in self.members])


# ---------------------------------------------------------------------------------------------------
# trained model
# ---------------------------------------------------------------------------------------------------
@dataclass
class TrainedModel:
    """A fitted, calibrated division model plus its honest (out-of-fold) evaluation.

    `save(path)` writes ONE joblib file holding everything needed to score: the learned preprocessing
    (medians, winsor caps, scaling, category levels), the fitted estimator and the calibrator, plus the
    evaluation tables. `TrainedModel.load(path)` / `load_model(path)` read it back.
    """

    preprocessor: Preprocessor
    estimator: Any
    calibrator: Calibrator
    model_type: ModelType
    params: dict
    features: list[str]
    cv_results: pl.DataFrame
    oof: pl.DataFrame
    metrics: dict
    gains: pl.DataFrame
    calibration: pl.DataFrame
    thresholds: pl.DataFrame
    calibration_method: str
    class_balance: dict
    importance: pl.DataFrame
    seed: int
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    format_version: int = MODEL_FORMAT_VERSION
    # What the fits were trained on (`NegativeSample.summary`); a class default, so models saved before it load.
    sampling: dict | None = None
    # The large-frame schedule when it applied (`fit_schedule`), else None; likewise a class default.
    schedule: dict | None = None

    # ---- scoring ----------------------------------------------------------------------------------
    def predict_raw(self, frame: pl.DataFrame) -> np.ndarray:
        """Uncalibrated model scores (learned preprocessing → estimator), in row order."""
        out = np.empty(frame.height, dtype=np.float64)
        for start in range(0, frame.height, _PREDICT_CHUNK):
            chunk = frame.slice(start, _PREDICT_CHUNK)
            if self.model_type == ENSEMBLE:
                out[start:start + chunk.height] = self.estimator.predict_raw(chunk)
            else:
                x = self.preprocessor.transform(chunk)
                out[start:start + chunk.height] = _predict_raw(self.estimator, self.model_type, x)
        return out

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        """Calibrated P(label = 1) per row: learned preprocessing → raw score → calibrator."""
        return self.calibrator.transform(self.predict_raw(frame))

    # ---- explanation ------------------------------------------------------------------------------
    def feature_importance(self) -> pl.DataFrame:
        """DataFrame(feature, importance) sorted by importance descending (ties in feature order).

        LightGBM: mean |SHAP value| (`pred_contrib=True`, bias column excluded) over a seeded sample of the
        training rows. Logistic: |coefficient| × std of the design column on the training rows (scaled
        numerics have std 1), summed over the one-hot columns of a categorical feature."""
        return self.importance.clone()

    # ---- description ------------------------------------------------------------------------------
    def cv_summary(self) -> pl.DataFrame:
        """Per config: mean lift@10, mean Brier, mean best iteration, and whether it was selected."""
        order = list(dict.fromkeys(self.cv_results.get_column("config").to_list()))
        return (
            self.cv_results.group_by("config", maintain_order=True)
            .agg(pl.col("model_type").first(),
                 pl.col("lift_at_10").mean().alias("mean_lift_at_10"),
                 pl.col("brier").mean().alias("mean_brier"),
                 pl.col("auc").mean().alias("mean_auc"),
                 pl.col("best_iteration").mean().alias("mean_best_iteration"))
            .with_columns((pl.col("config") == self.params["config"]).alias("selected"))
            .sort(pl.col("config").replace_strict(order, list(range(len(order))), return_dtype=pl.Int64))
        )

    def card(self) -> dict:
        """JSON-friendly summary for model_card.json."""
        return {
            "format_version": self.format_version,
            "model_type": self.model_type,
            "params": dict(self.params),
            "n_features": len(self.features),
            "features": list(self.features),
            "calibration_method": self.calibration_method,
            "calibrator": self.calibrator.params(),
            "class_balance": dict(self.class_balance),
            "metrics": dict(self.metrics),
            "metrics_basis": "cross-fitted calibrated out-of-fold predictions (customer-grouped CV)",
            "sampling": copy.deepcopy(self.sampling) if self.sampling is not None else {"sampled": False},
            "fit_schedule": dict(self.schedule) if self.schedule is not None else {"large_frame": False},
            "seed": self.seed,
            "notes": list(self.notes),
        }

    # ---- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write preprocessing + estimator + calibrator (+ evaluation tables) to one joblib file."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        # Temp file + rename: a reader (or a run killed mid-write) sees the old file or the whole new one, never a
        # truncated one.
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            joblib.dump(self, tmp, compress=3)
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
        return p

    @staticmethod
    def load(path: str | Path) -> "TrainedModel":
        obj = joblib.load(Path(path))
        if not isinstance(obj, TrainedModel):
            raise TypeError(f"{path} does not contain a TrainedModel (got {type(obj).__name__})")
        if obj.format_version != MODEL_FORMAT_VERSION:
            raise ValueError(f"{path} has model format {obj.format_version}, expected {MODEL_FORMAT_VERSION}")
        return obj


def load_model(path: str | Path) -> TrainedModel:
    return TrainedModel.load(path)


def training_fingerprint(frame: pl.DataFrame, params: ModelSettings, seed: int) -> str:
    """What `train_division_model(frame, params, seed)` depends on, as one sha256: the rows (schema and content),
    the model settings (not the gates: they judge the model after the fit), the seed, the training code (this module
    and the calibration and metrics it uses) and the versions of the learning libraries. The fit is deterministic,
    so an equal fingerprint means an equal model: a partition made again on the same training rows (a closed
    window's refresh, a retraining on unchanged data) reuses its model file instead of fitting it again."""
    import importlib.metadata as md
    import sys

    from gosales_assets.core.checksum import frame_checksum

    code = [Path(mod.__file__).read_bytes() for mod in (sys.modules[__name__], sys.modules[Calibrator.__module__],
                                                        sys.modules[gains_table.__module__])]
    h = hashlib.sha256()
    for part in (frame_checksum(frame).encode(), params.model_dump_json(exclude={"gates"}).encode(),
                 str(seed).encode(), str(MODEL_FORMAT_VERSION).encode(), *code, md.version("lightgbm").encode(),
                 md.version("scikit-learn").encode(), np.__version__.encode()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------
def _importance(pre: Preprocessor, est, model_type: str, x: np.ndarray, seed: int, sample_rows: int,
                weights: np.ndarray | None = None) -> pl.DataFrame:
    """Per feature: LightGBM mean |SHAP| over a seeded sample of the rows of `x`, logistic |coef| × std of the design
    column; with `weights` (sampled training rows) the mean and the std are weighted, i.e. over the whole frame."""
    feats = pre.features
    design_feats = pre.design_features
    if model_type == "lightgbm":
        n = x.shape[0]
        idx = None
        if n > sample_rows:
            idx = np.sort(np.random.default_rng(seed).choice(n, size=sample_rows, replace=False))
            xs = x[idx]
        else:
            xs = x
        contrib = np.abs(np.asarray(est.predict(xs, pred_contrib=True), dtype=np.float64)[:, :-1])  # drop bias
        if weights is None:
            per_col = contrib.mean(axis=0)
        else:
            ws = weights if idx is None else weights[idx]
            per_col = (ws @ contrib) / ws.sum()
    elif weights is None:
        per_col = np.abs(est.coef_[0]) * x.std(axis=0)
    else:
        mean = (weights @ x) / weights.sum()
        per_col = np.abs(est.coef_[0]) * np.sqrt((weights @ np.square(x - mean)) / weights.sum())
    agg: dict[str, float] = {f: 0.0 for f in feats}
    for f, v in zip(design_feats, per_col, strict=True):
        agg[f] += float(v)
    df = pl.DataFrame({"feature": feats, "importance": [agg[f] for f in feats]},
                      schema={"feature": pl.String, "importance": pl.Float64})
    return df.sort("importance", descending=True, maintain_order=True)


def _ensemble_importance(ens: Ensemble, member_importance: list[pl.DataFrame]) -> pl.DataFrame:
    """Members' importances (log-odds units) divided by their logit scale and averaged: the importance in
    units of the ensemble's averaged, standardized logit."""
    total: dict[str, float] = {}
    for mem, imp in zip(ens.members, member_importance, strict=True):
        for f, v in imp.iter_rows():
            total[f] = total.get(f, 0.0) + v / mem.scale / len(ens.members)
    feats = ens.members[0].preprocessor.features
    df = pl.DataFrame({"feature": feats, "importance": [total[f] for f in feats]},
                      schema={"feature": pl.String, "importance": pl.Float64})
    return df.sort("importance", descending=True, maintain_order=True)


@dataclass
class _Refit:
    preprocessor: Preprocessor
    estimator: Any
    params: dict
    raw_train: np.ndarray  # raw scores of the training rows
    importance: pl.DataFrame


_EARLY_STOPPING_KEYS = ("n_estimators_max", "early_stopping_rounds", "early_stopping_tolerance")


def _refit(cfg: dict, base: Preprocessor, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
           cv_results: pl.DataFrame, params: ModelSettings, seed: int, notes: list[str],
           importance_sample_rows: int) -> _Refit:
    """Fit `cfg` on the design matrix `x` of the fitted rows (every labelled row, or every positive and the sampled
    negatives with their `weights`) with exactly its hyper-parameters (LightGBM: n_estimators = the rounded mean of
    the folds' best iterations, no early stopping), then score those rows and measure the feature importance from the
    same matrix (built once: at 300k rows it costs seconds)."""
    model_type = cfg["model_type"]
    chosen = {k: v for k, v in cfg.items() if k not in _EARLY_STOPPING_KEYS}
    n_estimators = None
    if model_type == "lightgbm":
        its = cv_results.filter(pl.col("config") == cfg["config"]).get_column("best_iteration").to_numpy()
        n_estimators = max(1, _round_half_up(float(np.mean(its))))
        chosen["n_estimators"] = n_estimators
        for key in _EARLY_STOPPING_KEYS:
            chosen[key] = cfg[key]
        chosen["num_threads"] = params.num_threads
    else:
        chosen["solver"] = logistic_solver(cfg["l1_ratio"])
        chosen["log_inputs"] = params.logistic.log_inputs
    chosen["seed"] = seed
    pre = base.with_encoding(_ENCODING_FOR[model_type])
    est = _make_estimator(cfg, seed, params.num_threads, n_estimators=n_estimators)
    _fit_estimator(est, model_type, x, y, pre.categorical_indices, notes=notes, label=f"{cfg['config']} final",
                   sample_weight=weights)
    return _Refit(pre, est, chosen, _predict_raw(est, model_type, x),
                  _importance(pre, est, model_type, x, seed, importance_sample_rows, weights))


def train_division_model(
    frame: pl.DataFrame,
    params: ModelSettings,
    seed: int,
    revenue_col: str = "net_revenue_window",
    *,
    importance_sample_rows: int = 2000,
) -> TrainedModel:
    """Select, calibrate and fit one division model on a (pooled-cutoff) model frame. See module docstring.

    Raises `InsufficientData` (with `.reason`) when the labelled rows cannot support a model and
    `DegenerateModel` when the result would predict a constant."""
    # `num_threads` bounds the BLAS under the logistic fits and the preprocessing's matrix products as well as
    # LightGBM (which takes it as n_jobs): numpy's BLAS would otherwise start a thread per core.
    with threadpool_limits(limits=int(params.num_threads)):
        return _train_division_model(frame, params, seed, revenue_col, importance_sample_rows)


def _train_division_model(frame: pl.DataFrame, params: ModelSettings, seed: int, revenue_col: str,
                          importance_sample_rows: int) -> TrainedModel:
    for col in ("customer_id", "label"):
        if col not in frame.columns:
            raise ValueError(f"model frame has no {col!r} column")
    features = feature_columns(frame)
    if not features:
        raise ValueError("model frame has no feature columns (family__scope__metric__window)")
    data = frame.filter(pl.col("label").is_not_null())
    n = data.height
    if n == 0:
        raise InsufficientData("no labelled rows (every row is censored or the frame is empty)")
    y = data.get_column("label").cast(pl.Int64).to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("label must be 0, 1 or null")
    positives = int(y.sum())
    negatives = n - positives
    if positives == 0 or negatives == 0:
        raise InsufficientData(f"only one class among {n} labelled rows ({positives} positives)")
    if positives < params.min_positives:
        raise InsufficientData(f"{positives} positives < min_positives {params.min_positives}")
    params, schedule = fit_schedule(params, positives)
    ids = _ids_array(data.get_column("customer_id"))
    n_folds = params.n_folds
    cust = pl.DataFrame({"c": ids, "y": y}).group_by("c").agg(pl.col("y").max().alias("pos"),
                                                               pl.col("y").min().alias("neg0"))
    pos_customers = int(cust.get_column("pos").sum())
    neg_customers = int((cust.get_column("neg0") == 0).sum())
    if pos_customers < n_folds or neg_customers < n_folds:
        raise InsufficientData(
            f"{pos_customers} customers with a positive and {neg_customers} with a negative row; "
            f"customer-grouped CV needs at least n_folds={n_folds} of each")

    folds = customer_folds(ids, n_folds, seed, labels=y)
    overlap = fold_overlap(ids, folds)
    if overlap:  # cannot happen by construction; guard the invariant the leakage audit relies on
        raise AssertionError(f"{overlap} customers appear in more than one fold")
    revenue = (data.get_column(revenue_col).cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy()
               if revenue_col in data.columns else None)
    # Negative sampling per training cutoff: only the training folds and the final refit use `sample.keep` (with
    # `sample.weight`); every held-out fold is scored in full.
    sample = sample_negatives(y, ids, data.get_column("cutoff_date") if "cutoff_date" in data.columns else None,
                              params.sampling, seed)
    sampled = sample.sampled

    configs = candidate_configs(params)
    if not configs:
        raise ValueError("the hyper-parameter grid is empty (both logistic and lightgbm grids disabled)")
    encodings = sorted({_ENCODING_FOR[c["model_type"]] for c in configs})
    notes: list[str] = []
    oof_raw = {c["config"]: np.full(n, np.nan) for c in configs}
    records: list[dict] = []
    pre_kw = {"winsor_quantiles": tuple(params.winsor_quantiles), "max_category_levels": params.max_category_levels,
              "log_inputs": params.logistic.log_inputs}

    for k in range(n_folds):
        va = folds == k
        tr = ~va & sample.keep if sampled else ~va
        y_tr, w_tr = y[tr], (sample.weight[tr] if sampled else None)
        if y_tr.min() == y_tr.max():
            raise InsufficientData(f"the training folds of fold {k} hold one class only after negative sampling")
        # The preprocessing is fitted once per fold, with the design matrices of its own rows, and shared by every
        # candidate; the held-out fold is read once for both encodings.
        base = Preprocessor("codes", **pre_kw)
        x_tr = base.fit_transforms(data.filter(pl.Series(tr)), features, encodings, weights=w_tr)
        x_va = base.transforms(data.filter(pl.Series(va)), encodings)
        # LightGBM's early stopping measures the held-out fold on its sampled rows, weighted like the training rows
        # (an unbiased estimate of the whole fold's log loss, at a fraction of the cost of binning and scoring every
        # row each round); its out-of-fold scores are still of every row.
        stop_rows = sample.keep[va] if sampled else None
        for cfg in configs:
            mt = cfg["model_type"]
            enc = _ENCODING_FOR[mt]
            p = base.with_encoding(enc)
            est = _make_estimator(cfg, seed, params.num_threads)
            label = f"{cfg['config']} fold {k}"
            if mt == "lightgbm":
                if stop_rows is None:
                    stop_xy, stop_w = (x_va[enc], y[va]), None
                else:
                    stop_xy, stop_w = (x_va[enc][stop_rows], y[va][stop_rows]), sample.weight[va][stop_rows]
                _fit_estimator(est, mt, x_tr[enc], y_tr, p.categorical_indices, stop_xy,
                               cfg["early_stopping_rounds"], notes, label, sample_weight=w_tr,
                               early_stopping_tolerance=cfg["early_stopping_tolerance"], eval_weight=stop_w)
                del stop_xy
                best_it = int(est.best_iteration_) if est.best_iteration_ else int(est.booster_.num_trees())
                s = _predict_raw(est, mt, x_va[enc], num_iteration=best_it)
            else:
                _fit_estimator(est, mt, x_tr[enc], y_tr, [], notes=notes, label=label, sample_weight=w_tr)
                best_it = None
                s = _predict_raw(est, mt, x_va[enc])
            oof_raw[cfg["config"]][va] = s
            records.append({"config": cfg["config"], "fold": k, "lift_at_10": lift_at_k(y[va], s, _SELECTION_K),
                            "brier": brier(y[va], s), "best_iteration": best_it, "model_type": mt,
                            "auc": roc_auc(y[va], s), "n_valid": int(va.sum()), "positives_valid": int(y[va].sum())})
        del x_tr, x_va

    cv_results = pl.DataFrame(records, schema={
        "config": pl.String, "fold": pl.Int64, "lift_at_10": pl.Float64, "brier": pl.Float64,
        "best_iteration": pl.Int64, "model_type": pl.String, "auc": pl.Float64, "n_valid": pl.Int64,
        "positives_valid": pl.Int64})
    members = ensemble_members(cv_results, configs) if params.ensemble else []
    if params.ensemble and len(members) < 2:
        notes.append("ensemble requested but only one model family is configured: the best config is used alone")
    if len(members) >= 2:
        chosen_name, model_type = ENSEMBLE, ENSEMBLE
        stats = [logit_standardization(oof_raw[c["config"]]) for c in members]
        raw = averaged_raw([standardized_logit(oof_raw[c["config"]], m, sd) for c, (m, sd) in zip(members, stats)])
        # per-fold CV rows of the ensemble (Brier left null: the averaged score is not a probability until calibrated)
        ens_records = [{"config": ENSEMBLE, "fold": k, "lift_at_10": lift_at_k(y[va], raw[va], _SELECTION_K),
                        "brier": None, "best_iteration": None, "model_type": ENSEMBLE, "auc": roc_auc(y[va], raw[va]),
                        "n_valid": int(va.sum()), "positives_valid": int(y[va].sum())}
                       for k, va in ((k, folds == k) for k in range(n_folds))]
        cv_results = pl.concat([cv_results, pl.DataFrame(ens_records, schema=cv_results.schema)])
    else:
        chosen_name = select_config(cv_results, [c["config"] for c in configs])
        members = [next(c for c in configs if c["config"] == chosen_name)]
        model_type = members[0]["model_type"]
        raw = oof_raw[chosen_name]

    # ---- calibration on out-of-fold scores only (all labelled rows: the held-out folds are never sampled) ---------
    method = calibration_method(positives, params.isotonic_min_positives)
    cal_oof = np.empty(n)
    for k in range(n_folds):
        m = folds == k
        cal_oof[m] = Calibrator(method).fit(raw[~m], y[~m]).transform(raw[m])
    calibrator = Calibrator(method).fit(raw, y)

    # ---- final refit with exactly the chosen hyper-parameters (on the sampled rows, weighted, when sampled) -------
    fit_rows = data.filter(pl.Series(sample.keep)) if sampled else data
    y_fit, w_fit = (y[sample.keep], sample.weight[sample.keep]) if sampled else (y, None)
    base = Preprocessor("codes", **pre_kw)
    member_encodings = sorted({_ENCODING_FOR[c["model_type"]] for c in members})
    x_fit = base.fit_transforms(fit_rows, features, member_encodings, weights=w_fit)
    del fit_rows
    fitted = [_refit(c, base, x_fit[_ENCODING_FOR[c["model_type"]]], y_fit, w_fit, cv_results, params, seed, notes,
                     importance_sample_rows) for c in members]
    del x_fit
    if model_type == ENSEMBLE:
        pre = base
        est = Ensemble([EnsembleMember(f.params, f.preprocessor, f.estimator, m, sd)
                        for f, (m, sd) in zip(fitted, stats, strict=True)])
        chosen = {"config": ENSEMBLE, "model_type": ENSEMBLE, "members": [f.params for f in fitted], "seed": seed}
        raw_train = averaged_raw([standardized_logit(f.raw_train, m, sd) for f, (m, sd) in zip(fitted, stats)])
        importance = _ensemble_importance(est, [f.importance for f in fitted])
    else:
        pre, est, chosen = fitted[0].preprocessor, fitted[0].estimator, fitted[0].params
        raw_train, importance = fitted[0].raw_train, fitted[0].importance
    cal_train = calibrator.transform(raw_train)
    if float(np.std(cal_train)) < 1e-9:
        raise DegenerateModel(
            f"calibrated predictions of {chosen_name} are constant on the training rows "
            f"(std {float(np.std(cal_train)):.3g}); no ranking signal")

    # ---- honest evaluation tables ----------------------------------------------------------------
    ks = tuple(dict.fromkeys([5.0, 10.0, 20.0, *(float(c) for c in params.capacity_pcts)]))
    metrics = metric_summary(y, cal_oof, revenue, ks=ks, n_bins=params.calibration_bins)
    metrics["auc_raw"] = roc_auc(y, raw)
    metrics["auc_low"], metrics["auc_high"] = auc_interval(y, cal_oof) or (None, None)
    oof_cols: dict[str, Any] = {"customer_id": pl.Series(ids, dtype=pl.String)}
    oof_cols["cutoff_date"] = (data.get_column("cutoff_date") if "cutoff_date" in data.columns
                               else pl.Series([None] * n, dtype=pl.Date))
    oof = pl.DataFrame(oof_cols).with_columns(
        pl.Series("label", y, dtype=pl.Int8),
        pl.Series("fold", folds, dtype=pl.Int64),
        pl.Series("score_raw", raw, dtype=pl.Float64),
        pl.Series("score_calibrated", cal_oof, dtype=pl.Float64),
        pl.Series("revenue", revenue if revenue is not None else [None] * n, dtype=pl.Float64),
        # The row's weight in the fits (0: a negative sampled out): the RFM peer is fitted on the same sample.
        pl.Series("fit_weight", sample.weight, dtype=pl.Float64),
    )
    rows_fitted = int(sample.keep.sum())
    return TrainedModel(
        preprocessor=pre,
        estimator=est,
        calibrator=calibrator,
        model_type=model_type,
        params=chosen,
        features=features,
        cv_results=cv_results,
        oof=oof,
        metrics=metrics,
        gains=gains_table(y, cal_oof),
        calibration=calibration_bins(y, cal_oof, params.calibration_bins),
        thresholds=capacity_thresholds(cal_oof, params.capacity_pcts),
        calibration_method=method,
        class_balance={"n": n, "positives": positives, "negatives": negatives, "prevalence": positives / n,
                       "customers": int(cust.height), "positive_customers": pos_customers,
                       "censored_rows_dropped": frame.height - n, "rows_fitted": rows_fitted,
                       "negatives_fitted": rows_fitted - positives},
        importance=importance,
        seed=seed,
        settings=params.model_dump(mode="json"),
        notes=notes,
        sampling=sample.summary(),
        schedule=schedule,
    )
