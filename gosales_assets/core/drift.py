"""Drift between a model's training sample and the scoring population at a cutoff (pure numpy / polars).

Population Stability Index (PSI)
    PSI = Σ_b (a_b − e_b) · ln(a_b / e_b)
where e_b / a_b are the shares of the expected (training) and actual (current) rows that fall in bin b, each
clipped below at `eps` so empty bins stay finite (shares are not renormalised after clipping). Identical
distributions give 0; the usual reading is < 0.1 stable, 0.1–0.25 moderate shift, ≥ 0.25 major shift.

- Numeric (`psi`): bin edges are the quantiles of the *expected* values at 1/n, 2/n, …, (n−1)/n
  (deduplicated, so a feature with few distinct values gets fewer bins), with −inf / +inf outer edges.
  Bin i holds edges[i] < x <= edges[i+1] (right-closed). NaN / None values form one extra "missing" bin,
  so a change in the missing rate is drift too. Shares are taken over all rows, missing included.
- Categorical (`psi_categorical`): one bin per category seen in either sample (values compared as strings),
  None / null as its own category.

`drift_findings` turns PSIs of the score and of the top features, the prevalence shift and the calibration
MAE regression into `DriftFinding`s with a severity (`info` / `warn` / `hard`, from `DriftThresholds`) and a
plain-words recommended action; `alerts_json` packages them for `alerts.json`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl

__all__ = [
    "psi",
    "psi_categorical",
    "severity",
    "Severity",
    "SEVERITY_RANK",
    "DriftThresholds",
    "DriftFinding",
    "drift_findings",
    "alerts_json",
    "max_severity",
    "psi_bin_edges",
]

Severity = Literal["info", "warn", "hard"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warn": 1, "hard": 2}

DEFAULT_EPS = 1e-4


# ---------------------------------------------------------------------------------------------------
# PSI
# ---------------------------------------------------------------------------------------------------
def _as_float(values) -> np.ndarray:
    """1-D float array; None becomes NaN (missing)."""
    if isinstance(values, pl.Series):
        values = values.cast(pl.Float64, strict=False).to_numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {arr.shape}")
    return arr


def _psi_from_shares(e: np.ndarray, a: np.ndarray, eps: float) -> float:
    e = np.clip(e, eps, None)
    a = np.clip(a, eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    return eps


def psi_bin_edges(expected, n_bins: int = 10) -> np.ndarray:
    """[-inf, q_1/n, …, q_(n−1)/n, +inf] from the non-missing expected values, deduplicated."""
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    e = _as_float(expected)
    finite = e[np.isfinite(e)]
    inner = (np.unique(np.quantile(finite, np.linspace(0.0, 1.0, int(n_bins) + 1)[1:-1]))
             if finite.size and n_bins > 1 else np.array([], dtype=np.float64))
    return np.r_[-np.inf, inner, np.inf]


def _numeric_shares(x: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Shares per bin (right-closed bins between the inner edges) plus a last 'missing' bin."""
    missing = np.isnan(x)
    idx = np.searchsorted(inner_edges, x[~missing], side="left")  # #inner edges strictly below x
    counts = np.bincount(idx, minlength=inner_edges.size + 1).astype(np.float64)
    counts = np.r_[counts, float(missing.sum())]
    return counts / x.size


def psi(expected, actual, n_bins: int = 10, eps: float = DEFAULT_EPS) -> float | None:
    """Population Stability Index of a numeric variable: Σ_b (a_b − e_b) · ln(a_b / e_b).

    Bins: quantiles of `expected` (see module doc), plus a missing bin for NaN / None. Returns None when
    either sample is empty (undefined, never a crash)."""
    eps = _check_eps(eps)
    e = _as_float(expected)
    a = _as_float(actual)
    if e.size == 0 or a.size == 0:
        return None
    inner = psi_bin_edges(e, n_bins)[1:-1]
    return _psi_from_shares(_numeric_shares(e, inner), _numeric_shares(a, inner), eps)


def _as_labels(values) -> list:
    if isinstance(values, pl.Series):
        values = values.to_list()
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in values]


def psi_categorical(expected, actual, eps: float = DEFAULT_EPS) -> float | None:
    """PSI of a categorical variable: one bin per category in either sample (compared as strings), None
    as its own category. Returns None when either sample is empty."""
    eps = _check_eps(eps)
    e = _as_labels(expected)
    a = _as_labels(actual)
    if not e or not a:
        return None
    cats = sorted({*e, *a}, key=lambda c: (c is None, c or ""))
    pos = {c: i for i, c in enumerate(cats)}
    ec = np.zeros(len(cats))
    ac = np.zeros(len(cats))
    for v in e:
        ec[pos[v]] += 1
    for v in a:
        ac[pos[v]] += 1
    return _psi_from_shares(ec / len(e), ac / len(a), eps)


# ---------------------------------------------------------------------------------------------------
# severities and findings
# ---------------------------------------------------------------------------------------------------
def severity(value: float | None, warn: float, hard: float) -> Severity:
    """"hard" when value >= hard, "warn" when value >= warn, else "info" (also for None / NaN).

    Comparisons allow a relative slack of 1e-9 so that float noise does not move a value that equals a
    threshold on paper (e.g. |0.15 − 0.1| / 0.1 = 0.4999999999999999) below it."""
    if warn > hard:
        raise ValueError(f"warn threshold {warn} must not exceed hard threshold {hard}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "info"
    if _at_least(value, hard):
        return "hard"
    if _at_least(value, warn):
        return "warn"
    return "info"


def _at_least(value: float, threshold: float) -> bool:
    return value >= threshold - 1e-9 * max(1.0, abs(threshold))


@dataclass(frozen=True)
class DriftThresholds:
    """Warn / hard thresholds for each drift measure (value >= threshold raises the severity)."""

    psi_warn: float = 0.1
    psi_hard: float = 0.25
    prevalence_rel_warn: float = 0.5   # |current − train| / train
    prevalence_rel_hard: float = 1.0
    cal_mae_increase_warn: float = 0.02  # current cal MAE − training cal MAE (absolute)
    cal_mae_increase_hard: float = 0.05
    n_bins: int = 10
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        for w, h in ((self.psi_warn, self.psi_hard),
                     (self.prevalence_rel_warn, self.prevalence_rel_hard),
                     (self.cal_mae_increase_warn, self.cal_mae_increase_hard)):
            if w > h:
                raise ValueError(f"warn threshold {w} must not exceed hard threshold {h}")


@dataclass(frozen=True)
class DriftFinding:
    """One drift measurement.

    kind: "score_psi" | "feature_psi" | "feature_missing" | "prevalence_shift" | "calibration_regression".
    subject: "score", the feature name, "prevalence" or "cal_mae".
    value: the measured quantity (PSI, relative prevalence change, cal-MAE increase); None if undefined.
    baseline / current: a readable summary on each side (mean of a numeric variable, the prevalence, the
    calibration MAE; None for categorical PSI).
    """

    kind: str
    subject: str
    value: float | None
    severity: Severity
    baseline: float | None
    current: float | None
    action: str

    def to_dict(self) -> dict:
        return {k: _json_float(v) for k, v in asdict(self).items()}


def _json_float(v):
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return None if (math.isnan(v) or math.isinf(v)) else v
    return v


def _mean(x: np.ndarray) -> float | None:
    ok = x[np.isfinite(x)]
    return float(ok.mean()) if ok.size else None


def _score_action(sev: Severity) -> str:
    return {
        "hard": "retrain the model on recent cutoffs; the score distribution has shifted materially",
        "warn": "monitor the score distribution; retrain if the shift persists at the next cutoff",
        "info": "no action needed",
    }[sev]


def _feature_action(sev: Severity, name: str) -> str:
    return {
        "hard": (f"investigate feature '{name}' (upstream data or definition change, population shift); "
                 "fix the data or retrain the model on recent cutoffs"),
        "warn": f"monitor feature '{name}'; check the source data if it keeps moving",
        "info": "no action needed",
    }[sev]


def _prevalence_action(sev: Severity) -> str:
    return {
        "hard": ("check labels and the extract for missing months; if the data are right, the buying rate "
                 "has changed: recalibrate or retrain on recent cutoffs"),
        "warn": "check labels and the extract for missing months; monitor the buying rate",
        "info": "no action needed",
    }[sev]


def _calibration_action(sev: Severity) -> str:
    return {
        "hard": "recalibrate the model (or retrain it on recent cutoffs); probabilities are no longer reliable",
        "warn": "monitor calibration; recalibrate if it keeps getting worse",
        "info": "no action needed",
    }[sev]


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Boolean


def drift_findings(
    train_scores,
    current_scores,
    train_features: pl.DataFrame,
    current_features: pl.DataFrame,
    top_features: list[str],
    *,
    prevalence_train: float | None = None,
    prevalence_current: float | None = None,
    cal_mae_train: float | None = None,
    cal_mae_current: float | None = None,
    thresholds: DriftThresholds | None = None,
) -> list[DriftFinding]:
    """Findings in this order: score PSI, one per top feature (in the given order), prevalence shift (only
    when both prevalences are given), calibration regression (only when both MAEs are given).

    A top feature is compared with `psi` when its training column is numeric / boolean and with
    `psi_categorical` otherwise. A top feature present in training but absent from the current frame is a
    hard `feature_missing` finding; one absent from the training sample is skipped (no baseline).
    """
    th = thresholds or DriftThresholds()
    out: list[DriftFinding] = []

    ts, cs = _as_float(train_scores), _as_float(current_scores)
    v = psi(ts, cs, th.n_bins, th.eps)
    sev = severity(v, th.psi_warn, th.psi_hard)
    out.append(DriftFinding("score_psi", "score", v, sev, _mean(ts), _mean(cs), _score_action(sev)))

    for name in top_features:
        if name not in train_features.columns:
            continue
        if name not in current_features.columns:
            out.append(DriftFinding("feature_missing", name, None, "hard", None, None,
                                    f"feature '{name}' is missing from the scoring population; "
                                    "check the feature build before using these scores"))
            continue
        tcol, ccol = train_features[name], current_features[name]
        if _is_numeric(tcol.dtype):
            te = _as_float(tcol)
            ca = _as_float(ccol)
            v = psi(te, ca, th.n_bins, th.eps)
            base, cur = _mean(te), _mean(ca)
        else:
            v = psi_categorical(tcol, ccol, th.eps)
            base = cur = None
        sev = severity(v, th.psi_warn, th.psi_hard)
        out.append(DriftFinding("feature_psi", name, v, sev, base, cur, _feature_action(sev, name)))

    if prevalence_train is not None and prevalence_current is not None:
        pt, pc = float(prevalence_train), float(prevalence_current)
        if pt > 0:
            v = abs(pc - pt) / pt
            sev = severity(v, th.prevalence_rel_warn, th.prevalence_rel_hard)
        else:  # relative change undefined: nothing to compare against
            v = None
            sev = "hard" if pc > 0 else "info"
        out.append(DriftFinding("prevalence_shift", "prevalence", v, sev, pt, pc, _prevalence_action(sev)))

    if cal_mae_train is not None and cal_mae_current is not None:
        mt, mc = float(cal_mae_train), float(cal_mae_current)
        v = mc - mt
        sev = severity(v, th.cal_mae_increase_warn, th.cal_mae_increase_hard)
        out.append(DriftFinding("calibration_regression", "cal_mae", v, sev, mt, mc, _calibration_action(sev)))

    return out


def max_severity(findings: list[DriftFinding]) -> Severity:
    """Highest severity among the findings ("info" when there are none)."""
    best: Severity = "info"
    for f in findings:
        if SEVERITY_RANK[f.severity] > SEVERITY_RANK[best]:
            best = f.severity
    return best


def alerts_json(findings: list[DriftFinding], division: str, cutoff) -> dict:
    """JSON-able alert document: division, cutoff (ISO date string), max_severity, counts per severity and
    findings sorted by severity (hard first) then subject (then kind). NaN / inf values become None."""
    ordered = sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.subject, f.kind))
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("hard", "warn", "info")}
    return {
        "division": division,
        "cutoff": cutoff.isoformat() if isinstance(cutoff, (dt.date, dt.datetime)) else str(cutoff),
        "max_severity": max_severity(findings),
        "counts": counts,
        "findings": [f.to_dict() for f in ordered],
    }
