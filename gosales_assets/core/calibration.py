"""Probability calibration of raw model scores (pure numpy / scikit-learn, no Dagster).

Two methods:
- `sigmoid` (Platt scaling): a 1-D logistic regression on x = logit(raw score),
  P(y=1) = 1 / (1 + exp(-(a·x + b))), fitted by maximum likelihood with Platt's smoothed targets
  (positives → (N+ + 1)/(N+ + 2), negatives → 1/(N- + 2)), the same objective as scikit-learn's
  `CalibratedClassifierCV(method="sigmoid")`; the smoothing keeps a and b finite when the scores separate
  the classes perfectly.
- `isotonic`: scikit-learn `IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)` on the raw score
  (a monotone step function; scores outside the fitted range get the value at the nearest end).

`calibration_method` picks isotonic at or above `isotonic_min_positives` training positives (enough data
for a non-parametric fit), sigmoid below.

Leakage rule: a calibrator is fitted ONLY on out-of-fold predictions, i.e. scores for rows that the model
producing them was not fitted on. In-sample scores are over-confident, and a calibrator fitted on them
would learn the wrong map. `modeling.train_division_model` enforces this: it fits the calibrator on the
cross-validated out-of-fold scores of the selected configuration, never on the final model's scores for
its own training rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

__all__ = ["calibration_method", "Calibrator", "CalibrationMethod", "logit"]

CalibrationMethod = Literal["sigmoid", "isotonic"]
_EPS = 1e-12


def calibration_method(n_positives: int, isotonic_min_positives: int) -> CalibrationMethod:
    """"isotonic" when n_positives >= isotonic_min_positives, else "sigmoid"."""
    return "isotonic" if int(n_positives) >= int(isotonic_min_positives) else "sigmoid"


def logit(p) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [1e-12, 1 - 1e-12]."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def _platt_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of sigmoid(a·x + b) with Platt's smoothed targets."""
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def loss_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = w[0] * x + w[1]
        # log(1 + exp(z)) - t*z, numerically stable
        loss = np.sum(np.logaddexp(0.0, z) - t * z)
        r = 1.0 / (1.0 + np.exp(-z)) - t
        return float(loss), np.array([np.dot(r, x), r.sum()])

    w0 = np.array([1.0, 0.0]) if np.ptp(x) > 0 else np.array([0.0, np.log((n_pos + 1.0) / (n_neg + 1.0))])
    res = minimize(loss_grad, w0, jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-10})
    a, b = (float(v) for v in res.x)
    return a, b


class Calibrator:
    """Maps raw model scores in [0, 1] to calibrated probabilities.

    `fit(scores, y)` must be given out-of-fold scores (see the module docstring); `transform(scores)` is a
    fixed function afterwards (it is stored inside the trained model and reused unchanged at scoring).
    """

    def __init__(self, method: CalibrationMethod = "sigmoid"):
        if method not in ("sigmoid", "isotonic"):
            raise ValueError(f"unknown calibration method {method!r} (expected 'sigmoid' or 'isotonic')")
        self.method: CalibrationMethod = method
        self.a: float | None = None
        self.b: float | None = None
        self.isotonic: IsotonicRegression | None = None
        self.n_fit: int = 0
        self.positives_fit: int = 0

    @property
    def fitted(self) -> bool:
        return self.a is not None or self.isotonic is not None

    def fit(self, scores, y) -> "Calibrator":
        s = np.asarray(scores, dtype=np.float64)
        yy = np.asarray(y)
        if s.ndim != 1 or s.shape != yy.shape:
            raise ValueError(f"scores and y must be 1-D arrays of the same length ({s.shape} vs {yy.shape})")
        if s.size == 0:
            raise ValueError("cannot fit a calibrator on zero rows")
        if not np.isfinite(s).all():
            raise ValueError("scores contain NaN or infinite values")
        if not np.isin(yy, (0, 1)).all():
            raise ValueError("y must contain only 0 and 1")
        yy = yy.astype(np.int64)
        self.n_fit = int(s.size)
        self.positives_fit = int(yy.sum())
        if self.method == "sigmoid":
            self.a, self.b = _platt_fit(logit(s), yy)
        else:
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
            iso.fit(s, yy.astype(np.float64))
            self.isotonic = iso
        return self

    def transform(self, scores) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError("Calibrator.transform called before fit")
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "sigmoid":
            z = self.a * logit(s) + self.b
            return 1.0 / (1.0 + np.exp(-z))
        return np.asarray(self.isotonic.predict(s), dtype=np.float64)

    def params(self) -> dict:
        """Learned parameters (for model cards): a, b for sigmoid; the step function for isotonic."""
        if self.method == "sigmoid":
            return {"method": "sigmoid", "a": self.a, "b": self.b, "n_fit": self.n_fit,
                    "positives_fit": self.positives_fit}
        iso = self.isotonic
        return {"method": "isotonic", "n_fit": self.n_fit, "positives_fit": self.positives_fit,
                "x_thresholds": None if iso is None else iso.X_thresholds_.tolist(),
                "y_thresholds": None if iso is None else iso.y_thresholds_.tolist()}

    def __repr__(self) -> str:
        return f"Calibrator(method={self.method!r}, fitted={self.fitted})"
