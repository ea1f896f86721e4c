"""Drift between a model's training baseline and what the engine sees at a cutoff (pure numpy / polars).

Three families of comparison, each finding naming its subject and an action:

1. **The model's inputs** (`drift_findings`): the scoring population at C against the serving model's training
   sample — PSI of the score and of the top features, the prevalence shift and the calibration regression.
2. **Who buys, by segment and by division** (`activity_findings`): the roster's purchase activity in the
   `months` months to C against the same-length windows ending at the model's training cutoffs — per customer
   segment (region, territory, industry: one region halving shows, which a whole-population PSI cannot see) and
   per division (its invoices, and a fixed-basket unit-price index: a SKU moving to another division, a price
   increase).
3. **Seasonal prevalence** (`prevalence_baseline`): the label rate at C is compared with the training cutoff at
   the same calendar position (same month of the year, a year earlier) when the model trained on one, else with
   the pooled training cutoffs — and the finding says which.

Population Stability Index (PSI)
    PSI = Σ_b (a_b − e_b) · ln(a_b / e_b)
where e_b / a_b are the shares of the expected (training) and actual (current) rows that fall in bin b, each
clipped below at `eps` so empty bins stay finite (shares are not renormalised after clipping). Identical
distributions give 0; the usual reading is < 0.1 stable, 0.1–0.25 moderate shift, ≥ 0.25 major shift.

- Numeric (`psi`): bin edges are the quantiles of the *expected* values at 1/n, 2/n, …, (n−1)/n
  (deduplicated, so a feature with few distinct values gets fewer bins), with −inf / +inf outer edges.
  Bin i holds edges[i] < x <= edges[i+1] (right-closed). NaN / None values form one extra "missing" bin,
  so a change in the missing rate is drift too. Shares are taken over all rows, missing included.
- Zero-inflated numeric (`psi_zero_inflated`, used when at least 1/n of the expected values are exactly 0, i.e.
  when zeros would fill a whole quantile bin and collapse the edges): 0 is a bin of its own, missing another,
  and the quantile edges are those of the expected *non-zero* values. Its `active` part is the PSI among the
  non-zero rows alone: with > 90 % zeros a shift among the buyers moves the all-rows PSI by almost nothing
  (their bins hold < 10 % of the mass), so it is reported as its own finding (`feature_psi_active`).
- Categorical (`psi_categorical`): one bin per category seen in either sample (values compared as strings),
  None / null as its own category.

Noise. A PSI of two samples of the same distribution is not 0, and among a few dozen buyers it can exceed 1 by
chance (an empty bin alone adds e·ln(e / eps)). A PSI (and every other comparison here) only raises its severity
when the change is also beyond sampling noise at the family-wise rate `alpha` (Bonferroni over the comparisons of
the family in the partition): for a PSI, Pearson's χ² test of homogeneity on the same bins' counts
(`chi2_homogeneity`); otherwise it stays `info` and its detail says so. The test counts each training customer
once (`design_effect`): a model pooling several cutoffs has the same customers' rows at each of them. The thresholds
themselves stay effect sizes (PSI, relative change, factor), so a tiny but certain change does not alert either.

`alerts_json` packages the findings for `alerts.json`, worst first and, within a severity, the strongest first.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, fields
from statistics import NormalDist
from typing import Literal

import numpy as np
import polars as pl

from gosales_assets.core.calendar import add_months

__all__ = [
    "psi",
    "psi_categorical",
    "psi_zero_inflated",
    "chi2_homogeneity",
    "design_effect",
    "z_critical",
    "ZeroInflatedPSI",
    "severity",
    "graded_severity",
    "Severity",
    "SEVERITY_RANK",
    "DriftThresholds",
    "DriftFinding",
    "PrevalenceBaseline",
    "prevalence_baseline",
    "prevalence_year_earlier",
    "year_earlier_refusal",
    "drift_findings",
    "activity_findings",
    "segment_activity_findings",
    "division_activity_findings",
    "division_price_findings",
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


def _numeric_counts(x: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts per bin (right-closed bins between the inner edges) plus a last 'missing' bin."""
    missing = np.isnan(x)
    idx = np.searchsorted(inner_edges, x[~missing], side="left")  # #inner edges strictly below x
    counts = np.bincount(idx, minlength=inner_edges.size + 1).astype(np.float64)
    return np.r_[counts, float(missing.sum())]


def _numeric_shares(x: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    return _numeric_counts(x, inner_edges) / x.size


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


@dataclass(frozen=True)
class ZeroInflatedPSI:
    """`psi_zero_inflated`: `psi` over all rows (missing, zero and the non-zero quantile bins) and its `bins` (with
    mass on either side); `active`: the PSI among the non-zero rows alone (None with fewer than 2 such rows on a
    side), its `active_bins`; the non-zero counts, zero shares and non-zero means of each side; the bin counts of
    both comparisons (expected, actual) for their noise test."""

    psi: float
    bins: int
    active: float | None
    active_bins: int
    n_active_expected: int
    n_active_actual: int
    zero_share_expected: float
    zero_share_actual: float
    active_mean_expected: float | None
    active_mean_actual: float | None
    counts: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    active_counts: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))


def psi_zero_inflated(expected, actual, n_bins: int = 10, eps: float = DEFAULT_EPS,
                      min_per_bin: int = 10) -> ZeroInflatedPSI | None:
    """PSI of a numeric variable with a mass at 0: 0 and missing are bins of their own and the quantile edges are
    those of the expected non-zero values (so the edges do not collapse onto 0). `active` compares the non-zero
    rows alone, with at most `n_bins` quantile bins and at least `min_per_bin` expected rows per bin (fewer bins
    for few buyers: each bin's share must be estimable). None when either sample is empty."""
    eps = _check_eps(eps)
    e, a = _as_float(expected), _as_float(actual)
    if e.size == 0 or a.size == 0:
        return None
    e_nz, a_nz = e[np.isfinite(e) & (e != 0)], a[np.isfinite(a) & (a != 0)]
    inner = psi_bin_edges(e_nz, n_bins)[1:-1] if e_nz.size else np.array([], dtype=np.float64)

    def counts(x: np.ndarray, nz: np.ndarray) -> np.ndarray:  # [zero, missing, non-zero bins...]
        return np.r_[float((x == 0).sum()), float(np.isnan(x).sum()), _numeric_counts(nz, inner)[:-1]]

    ce, ca = counts(e, e_nz), counts(a, a_nz)
    value = _psi_from_shares(ce / e.size, ca / a.size, eps)
    active, active_bins, active_counts = None, 0, (np.zeros(0), np.zeros(0))
    k = min(int(n_bins), e_nz.size // max(int(min_per_bin), 1))
    if k >= 2 and a_nz.size >= 2:
        edges = psi_bin_edges(e_nz, k)[1:-1]
        active_counts = (_numeric_counts(e_nz, edges)[:-1], _numeric_counts(a_nz, edges)[:-1])
        se, sa = active_counts[0] / e_nz.size, active_counts[1] / a_nz.size
        active, active_bins = _psi_from_shares(se, sa, eps), int(((se > 0) | (sa > 0)).sum())
    return ZeroInflatedPSI(
        psi=value, bins=int(((ce > 0) | (ca > 0)).sum()), active=active, active_bins=active_bins,
        n_active_expected=int(e_nz.size), n_active_actual=int(a_nz.size),
        zero_share_expected=float((e == 0).mean()), zero_share_actual=float((a == 0).mean()),
        active_mean_expected=float(e_nz.mean()) if e_nz.size else None,
        active_mean_actual=float(a_nz.mean()) if a_nz.size else None, counts=(ce, ca), active_counts=active_counts)


def _as_labels(values) -> list:
    if isinstance(values, pl.Series):
        values = values.to_list()
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in values]


def _categorical_counts(expected, actual) -> tuple[np.ndarray, np.ndarray] | None:
    e, a = _as_labels(expected), _as_labels(actual)
    if not e or not a:
        return None
    cats = sorted({*e, *a}, key=lambda c: (c is None, c or ""))
    pos = {c: i for i, c in enumerate(cats)}
    ec, ac = np.zeros(len(cats)), np.zeros(len(cats))
    for v in e:
        ec[pos[v]] += 1
    for v in a:
        ac[pos[v]] += 1
    return ec, ac


def psi_categorical(expected, actual, eps: float = DEFAULT_EPS) -> float | None:
    """PSI of a categorical variable: one bin per category in either sample (compared as strings), None
    as its own category. Returns None when either sample is empty."""
    eps = _check_eps(eps)
    counts = _categorical_counts(expected, actual)
    if counts is None:
        return None
    ec, ac = counts
    return _psi_from_shares(ec / ec.sum(), ac / ac.sum(), eps)


# ---------------------------------------------------------------------------------------------------
# noise
# ---------------------------------------------------------------------------------------------------
def z_critical(alpha: float, comparisons: int = 1) -> float:
    """Two-sided standard-normal critical value at the family-wise rate `alpha` over `comparisons` tests
    (Bonferroni): Φ⁻¹(1 − α / (2m)). `alpha` 1 switches the noise requirement off (critical value 0)."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if alpha >= 1.0:
        return 0.0
    return NormalDist().inv_cdf(1.0 - alpha / (2.0 * max(int(comparisons), 1)))


def chi2_homogeneity(counts_expected, counts_actual) -> tuple[float, int, float] | None:
    """Pearson's χ² test that two samples' bin counts come from one distribution: X² = Σ (O − E)² / E over both
    samples and every bin with a count on either side (E from the pooled shares), df = bins − 1. Returns (X², df,
    p); None with fewer than 2 such bins or an empty sample. Unlike PSI's log it stays finite for an empty bin."""
    ce, ca = np.asarray(counts_expected, dtype=np.float64), np.asarray(counts_actual, dtype=np.float64)
    keep = (ce + ca) > 0
    ce, ca = ce[keep], ca[keep]
    if ce.size < 2 or ce.sum() <= 0 or ca.sum() <= 0:
        return None
    from scipy.stats import chi2  # here: scipy.stats costs ~0.4 s at import

    pooled = (ce + ca) / (ce.sum() + ca.sum())
    ee, ea = pooled * ce.sum(), pooled * ca.sum()
    stat = float(((ce - ee) ** 2 / ee).sum() + ((ca - ea) ** 2 / ea).sum())
    df = int(ce.size - 1)
    return stat, df, float(chi2.sf(stat, df))


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


def graded_severity(effect: float | None, warn: float, hard: float, *, significant: bool) -> Severity:
    """`severity` of the effect size, but "info" when the change is within sampling noise (`significant` False):
    an alert needs a change that is both large (the effect thresholds) and real (beyond noise)."""
    return severity(effect, warn, hard) if significant else "info"


def seasonal_ceiling(sev: Severity, across_seasons: str | None) -> tuple[Severity, str]:
    """Hard needs like with like. A comparison whose baseline lies in other months of the year than C (`across_seasons`:
    why, in words; None when the baseline matches C's season) cannot tell a seasonal business's normal swing from
    drift, so a hard effect there is kept at warn: (severity, detail suffix saying so, on every raised finding)."""
    if across_seasons is None or sev == "info":
        return sev, ""
    if sev == "hard":
        return "warn", f"; {across_seasons}, so at most warn"
    return sev, f"; {across_seasons}"


def season_of_baseline(cutoff: dt.date, baseline_cutoffs, what: str) -> str | None:
    """None when a baseline cutoff is in C's month of the year (like with like for a seasonal business); else the
    reason the comparison is across seasons (`what`: the baseline's name)."""
    months = sorted({c.month for c in baseline_cutoffs})
    if not months or cutoff.month in months:
        return None
    names = ", ".join(dt.date(2000, m, 1).strftime("%b") for m in months)
    return (f"compared across seasons: {what} ends in {names}, none in {cutoff:%b} (C's month of the year), and a "
            f"seasonal business's normal swing cannot be told from drift")


@dataclass(frozen=True)
class DriftThresholds:
    """Warn / hard thresholds for each drift measure (an effect at or above a threshold raises the severity, once
    it is also beyond sampling noise at the family-wise rate `alpha`)."""

    psi_warn: float = 0.1
    psi_hard: float = 0.25
    prevalence_rel_warn: float = 0.5   # |current − baseline| / baseline
    prevalence_rel_hard: float = 1.0
    cal_mae_increase_warn: float = 0.02  # current cal MAE − training cal MAE (absolute)
    cal_mae_increase_hard: float = 0.05
    activity_factor_warn: float = 1.25  # a segment's / division's activity vs the median one, either direction
    activity_factor_hard: float = 1.5
    price_rel_warn: float = 0.10       # |unit-price index − 1| of a division
    price_rel_hard: float = 0.20
    alpha: float = 0.001               # family-wise false-alarm rate of one family of comparisons in one partition
    #                                    (1: no noise requirement, the effect thresholds alone decide)
    min_group_customers: int = 20      # a segment / division needs this many active customers on one side
    n_bins: int = 10
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        for w, h in ((self.psi_warn, self.psi_hard),
                     (self.prevalence_rel_warn, self.prevalence_rel_hard),
                     (self.cal_mae_increase_warn, self.cal_mae_increase_hard),
                     (self.activity_factor_warn, self.activity_factor_hard),
                     (self.price_rel_warn, self.price_rel_hard)):
            if w > h:
                raise ValueError(f"warn threshold {w} must not exceed hard threshold {h}")
        if self.activity_factor_warn < 1.0:
            raise ValueError(f"activity factors are ratios >= 1, got warn {self.activity_factor_warn}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")

    @classmethod
    def of(cls, values: dict) -> DriftThresholds:
        """The thresholds among `values` (e.g. the `drift:` settings, which also say what is compared and which
        baselines are usable: those are not thresholds)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class DriftFinding:
    """One drift measurement.

    kind: "score_psi" | "feature_psi" | "feature_psi_active" | "feature_missing" | "prevalence_shift" |
    "calibration_regression" | "segment_invoices" | "division_invoices" | "division_price" |
    "segments_skipped".
    subject: "score", the feature name, "prevalence", "cal_mae", "<segment column>=<value>" (e.g. "region=West") or
    "division=<name>".
    value: the measured quantity (PSI, relative prevalence change, cal-MAE increase, relative activity change vs
    the median segment / division, relative unit-price change); None if undefined.
    baseline / current: a readable summary on each side (mean of a numeric variable, the prevalence, the
    calibration MAE, activity per window, price index 1 → current; None for categorical PSI).
    z: the change in standard errors where a test applies (None for PSI, whose test is a χ² one, in the detail).
    detail: what was compared with what (samples, baseline cutoffs, the noise test and its critical level).
    """

    kind: str
    subject: str
    value: float | None
    severity: Severity
    baseline: float | None
    current: float | None
    action: str
    z: float | None = None
    detail: str = ""

    def to_dict(self) -> dict:
        return {k: _json_float(v) for k, v in asdict(self).items()}


FINDING_FIELDS = ("kind", "subject", "value", "severity", "baseline", "current", "action", "z", "detail")


def findings_from_rows(rows: pl.DataFrame) -> list[DriftFinding]:
    """The findings of a stored table (`DriftFinding.to_dict` rows, in order), as made."""
    return [DriftFinding(**{k: row[k] for k in FINDING_FIELDS}) for row in rows.iter_rows(named=True)]


def _json_float(v):
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return None if (math.isnan(v) or math.isinf(v)) else v
    return v


def _mean(x: np.ndarray) -> float | None:
    ok = x[np.isfinite(x)]
    return float(ok.mean()) if ok.size else None


NO_ACTION = "no action needed"


def _score_action(sev: Severity) -> str:
    return {
        "hard": "retrain the model on recent cutoffs; the score distribution has shifted materially",
        "warn": "monitor the score distribution; retrain if the shift persists at the next cutoff",
        "info": NO_ACTION,
    }[sev]


def _feature_action(sev: Severity, name: str) -> str:
    return {
        "hard": (f"investigate feature '{name}' (upstream data or definition change, population shift); "
                 "fix the data or retrain the model on recent cutoffs"),
        "warn": f"monitor feature '{name}'; check the source data if it keeps moving",
        "info": NO_ACTION,
    }[sev]


def _active_action(sev: Severity, name: str) -> str:
    return {
        "hard": (f"the values of '{name}' among the customers who have any moved (e.g. prices or order sizes "
                 "changed, not who buys): check the extract's amounts and units; if real, retrain the model on "
                 "recent cutoffs so it learns the new level"),
        "warn": f"monitor '{name}' among the customers who have any; check amounts and units if it keeps moving",
        "info": NO_ACTION,
    }[sev]


def _prevalence_action(sev: Severity) -> str:
    return {
        "hard": ("check labels and the extract for missing months; if the data are right, the buying rate "
                 "has changed: recalibrate or retrain on recent cutoffs"),
        "warn": "check labels and the extract for missing months; monitor the buying rate",
        "info": NO_ACTION,
    }[sev]


def _calibration_action(sev: Severity) -> str:
    return {
        "hard": "recalibrate the model (or retrain it on recent cutoffs); probabilities are no longer reliable",
        "warn": "monitor calibration; recalibrate if it keeps getting worse",
        "info": NO_ACTION,
    }[sev]


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Boolean


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


def design_effect(units) -> float:
    """Rows per distinct unit (≥ 1): how many times over a sample counts its independent units. A model pooling
    several training cutoffs has most of its customers once per cutoff; their rows are nearly copies of each other
    (a 12-month sum moves little in a quarter), so the evidence is the customers, not the rows."""
    ids = np.asarray(units)
    return ids.size / len(np.unique(ids)) if ids.size else 1.0


def _psi_finding(kind: str, name: str, value: float | None, counts: tuple[np.ndarray, np.ndarray], base, cur,
                 th: DriftThresholds, comparisons: int, what: str, across_seasons: str | None = None,
                 training_deff: float = 1.0) -> DriftFinding:
    # The test counts each training customer once (the counts divided by the design effect: the shares, and so the
    # PSI, stay; a first-order Rao-Scott correction that takes a customer's rows as one): rows of the same customers
    # at several training cutoffs counted as independent draws made a stable population look significantly moved.
    test = chi2_homogeneity(np.asarray(counts[0], dtype=np.float64) / training_deff, counts[1])
    level = th.alpha / max(comparisons, 1)
    significant = value is not None and (th.alpha >= 1.0 or (test is not None and test[2] <= level))
    sev, ceiling = seasonal_ceiling(graded_severity(value, th.psi_warn, th.psi_hard, significant=significant),
                                    across_seasons)
    n_e, n_a = int(np.sum(counts[0])), int(np.sum(counts[1]))
    units = (f" ({n_e / training_deff:.0f} customers: each counts once in the test)"
             if training_deff > 1.0 else "")
    detail = (f"PSI over {what}: {n_e} training{units} vs {n_a} current rows, "
              f"{'n/a' if test is None else test[1] + 1} bins; χ² homogeneity p "
              f"{'n/a' if test is None else f'{test[2]:.2g}'} (needs ≤ {level:.2g}: alpha {th.alpha} over "
              f"{comparisons} comparisons)") + ceiling
    if not significant and severity(value, th.psi_warn, th.psi_hard) != "info":
        detail += "; within sampling noise, so not raised"
    if kind == "score_psi":
        action = _score_action(sev)
    elif kind == "feature_psi_active":
        action = _active_action(sev, name)
    else:
        action = _feature_action(sev, name)
    return DriftFinding(kind, name, value, sev, base, cur, action, None, detail)


# ---------------------------------------------------------------------------------------------------
# seasonal prevalence
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrevalenceBaseline:
    """The label rate a cutoff's prevalence is compared with: `positives` / `rows` over `cutoffs`; `seasonal` when
    it is at the same calendar position (same month of the year: a training cutoff, or C − 12 months labelled
    afresh); `basis` says which, in words. `customers`: the distinct customers among the rows (fewer than `rows`
    when several pooled cutoffs hold the same customer; None when the rows do not say), the sample size the
    two-proportion test counts."""

    prevalence: float | None
    positives: int
    rows: int
    cutoffs: tuple[dt.date, ...]
    seasonal: bool
    basis: str
    customers: int | None = None


def prevalence_baseline(cutoff: dt.date, training: pl.DataFrame) -> PrevalenceBaseline | None:
    """Like with like for seasonal businesses. `training`: one row per training row (`cutoff_date`, `label`, and
    `customer_id` when known), e.g. the model's out-of-fold sample. The latest training cutoff in the same month of
    the year as `cutoff` (a year earlier, or more) is the baseline when there is one; otherwise every training
    cutoff pooled, and `basis` says so. None without labelled training rows."""
    if training.height == 0 or not {"cutoff_date", "label"} <= set(training.columns):
        return None
    labelled = training.filter(pl.col("label").is_not_null())
    per = (labelled.group_by("cutoff_date").agg(pl.col("label").cast(pl.Int64).sum().alias("k"), pl.len().alias("n"))
           .sort("cutoff_date"))
    if per.height == 0:
        return None
    same = per.filter((pl.col("cutoff_date").dt.month() == cutoff.month) & (pl.col("cutoff_date") < cutoff))
    if same.height:
        c, k, n = same.row(-1)
        years = cutoff.year - c.year
        when = "a year earlier" if years == 1 else f"{years} years earlier"
        return PrevalenceBaseline(k / n, int(k), int(n), (c,), True,
                                  f"training cutoff {c} (same month of the year, {when})", int(n))
    k, n = int(per.get_column("k").sum()), int(per.get_column("n").sum())
    cutoffs = tuple(per.get_column("cutoff_date").to_list())
    # The pooled cutoffs hold most customers once each: the evidence for the rate is the customers (design_effect).
    customers = labelled.get_column("customer_id").n_unique() if "customer_id" in labelled.columns else None
    return PrevalenceBaseline(k / n, k, n, cutoffs, False,
                              f"the training cutoffs pooled ({', '.join(str(c) for c in cutoffs)}): none is in "
                              f"the month of the year of {cutoff}, so seasonality is not matched", customers)


def year_earlier_refusal(cutoff: dt.date, data_start: dt.date, min_history_months: int) -> str | None:
    """Why C − 12 months gives no year-earlier label rate (`prevalence_year_earlier`), or None when it can: the log
    must hold `min_history_months` up to it (the data start's month counts as one). Who owns a division is read from
    the history to that cutoff; with less, the expansion population still holds owners whose purchases fell before
    the log, and their next purchase counts as a first one: the rate runs high (a retail log a month in: 0.10–0.42
    against the models' 0.05–0.10)."""
    earlier = add_months(cutoff, -12)
    if earlier < data_start:
        return f"C − 12 months ({earlier}) is before the data start ({data_start})"
    if earlier < add_months(data_start, min_history_months - 1):  # the data start's month counts as one
        return (f"C − 12 months ({earlier}) has less than {min_history_months} months of history up to it (data "
                f"from {data_start}), too little to know its owners")
    return None


def prevalence_year_earlier(fact: pl.DataFrame, dim_customer: pl.DataFrame, *, division: str, cutoff: dt.date,
                            window_months: int, data_start: dt.date, data_end: dt.date, mode: str = "expansion",
                            min_net_revenue: float = 0.0, sku_denylist=(),
                            training_cutoffs=(), min_history_months: int = 12) -> PrevalenceBaseline | None:
    """The label rate at the same month a year earlier (C − 12 months), computed with the one label definition
    (`core.labels.build_labels`, same window, mode, minimum and denylist) from the fact rows dated by its window's
    end (C − 12 + W ≤ C: nothing after C is read). For a cutoff whose year-earlier month was not built as a
    partition (or not used for training). None when `year_earlier_refusal` refuses it (before the data start, or
    less than `min_history_months` of history up to it), its window is not observed, or its population is empty."""
    from gosales_assets.core.labels import build_labels, customers_known_at

    earlier = add_months(cutoff, -12)
    if year_earlier_refusal(cutoff, data_start, min_history_months) is not None:
        return None
    res = build_labels(fact, customers_known_at(fact, dim_customer, earlier), division=division, cutoff=earlier,
                       window_months=window_months, data_end=min(data_end, cutoff), mode=mode,
                       min_net_revenue=min_net_revenue, sku_denylist=list(sku_denylist))
    frame = res.frame.filter(pl.col("label").is_not_null())
    if res.censored or frame.height == 0:
        return None
    k, n = int(frame.get_column("label").sum()), frame.height
    note = " (also a training cutoff of the model)" if earlier in set(training_cutoffs) else ""
    return PrevalenceBaseline(k / n, k, n, (earlier,), True,
                              f"{earlier}, the same month a year earlier{note}, labelled with the same definition "
                              f"and a {window_months}-month window", n)


def _two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """z of p2 − p1 with the pooled variance; None when undefined."""
    if n1 <= 0 or n2 <= 0:
        return None
    p = (k1 + k2) / (n1 + n2)
    var = p * (1 - p) * (1 / n1 + 1 / n2)
    return None if var <= 0 else (k2 / n2 - k1 / n1) / math.sqrt(var)


def _prevalence_finding(pt: float, pc: float, n_t: int | None, n_c: int | None, basis: str | None,
                        th: DriftThresholds, across_seasons: str | None = None,
                        customers_t: int | None = None) -> DriftFinding:
    # The baseline's rows of one customer at several pooled cutoffs count once in the test (as in _psi_finding).
    n_test = customers_t if n_t and customers_t and customers_t < n_t else n_t
    z = None
    if n_test and n_c:
        z = _two_proportion_z(round(pt * n_test), n_test, round(pc * n_c), n_c)
    crit = z_critical(th.alpha)
    # Without sizes there is no test: the effect thresholds alone decide (the behaviour before sizes were known).
    significant = z is None or abs(z) >= crit
    if pt > 0:
        v = abs(pc - pt) / pt
        sev = graded_severity(v, th.prevalence_rel_warn, th.prevalence_rel_hard, significant=significant)
    else:  # relative change undefined: nothing to compare against
        v = None
        sev = "hard" if pc > 0 and significant else "info"
    sev, ceiling = seasonal_ceiling(sev, across_seasons)
    counted = f", {n_test} customers: each counts once in the test" if n_test != n_t else ""
    detail = f"label rate {_fmt(pt)} ({n_t or '?'} rows{counted}) → {_fmt(pc)} ({n_c or '?'} rows)"
    if basis:
        detail += f"; baseline: {basis}"
    detail += ceiling
    if z is not None:
        detail += f"; z {z:+.2f} (critical {crit:.2f})"
        if not significant and severity(v, th.prevalence_rel_warn, th.prevalence_rel_hard) != "info":
            detail += ": within sampling noise of so few positives, so not raised"
    return DriftFinding("prevalence_shift", "prevalence", v, sev, pt, pc, _prevalence_action(sev), z, detail)


# ---------------------------------------------------------------------------------------------------
# the model's inputs
# ---------------------------------------------------------------------------------------------------
def drift_findings(
    train_scores,
    current_scores,
    train_features: pl.DataFrame,
    current_features: pl.DataFrame,
    top_features: list[str],
    *,
    prevalence_train: float | None = None,
    prevalence_current: float | None = None,
    prevalence_rows_train: int | None = None,
    prevalence_rows_current: int | None = None,
    prevalence_customers_train: int | None = None,
    prevalence_basis: str | None = None,
    cal_mae_train: float | None = None,
    cal_mae_current: float | None = None,
    thresholds: DriftThresholds | None = None,
    across_seasons: str | None = None,
    prevalence_across_seasons: str | None = None,
    train_units=None,
) -> list[DriftFinding]:
    """Findings in this order: score PSI, then per top feature (in the given order) its PSI and, for a zero-inflated
    numeric feature, the PSI among its non-zero rows; prevalence shift (only when both prevalences are given),
    calibration regression (only when both MAEs are given).

    A top feature is compared with `psi` when its training column is numeric / boolean (with
    `psi_zero_inflated` when at least 1/n_bins of its training values are 0) and with `psi_categorical` otherwise.
    A top feature present in training but absent from the current frame is a hard `feature_missing` finding; one
    absent from the training sample is skipped (no baseline). PSI severities need the χ² homogeneity test of the
    same bins to pass at alpha (Bonferroni over the PSIs of the partition); the prevalence needs a two-proportion
    test when the row
    counts are given (`prevalence_rows_*`; `prevalence_customers_train`, the baseline's distinct customers, is the
    size it counts when fewer); `prevalence_basis` says what the training prevalence is (see
    `prevalence_baseline`).

    Hard needs like with like (`seasonal_ceiling`): `across_seasons` (None, or why the training sample lies in other
    months of the year than C: `season_of_baseline`) keeps the score and feature PSIs at warn at most, and
    `prevalence_across_seasons` the prevalence; a missing feature and the calibration (the probabilities are wrong
    at C whatever the cause) keep their severity.

    `train_units`: the customer of each row of the training sample (`train_scores` and `train_features` are the
    same rows): a customer with rows at several pooled training cutoffs counts once in the χ² tests
    (`design_effect`).
    """
    th = thresholds or DriftThresholds()
    out: list[DriftFinding] = []
    m = 1 + 2 * len(top_features)  # PSIs of this partition: one family
    deff = design_effect(train_units) if train_units is not None else 1.0

    def numeric_counts(e: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inner = psi_bin_edges(e, th.n_bins)[1:-1] if e.size else np.array([], dtype=np.float64)
        return _numeric_counts(e, inner), _numeric_counts(a, inner)

    ts, cs = _as_float(train_scores), _as_float(current_scores)
    out.append(_psi_finding("score_psi", "score", psi(ts, cs, th.n_bins, th.eps), numeric_counts(ts, cs), _mean(ts),
                            _mean(cs), th, m, "the score", across_seasons, deff))

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
            te, ca = _as_float(tcol), _as_float(ccol)
            zero_share = float((te == 0).mean()) if te.size else 0.0
            if zero_share >= 1.0 / th.n_bins:
                zi = psi_zero_inflated(te, ca, th.n_bins, th.eps)
                if zi is None:
                    continue
                out.append(_psi_finding("feature_psi", name, zi.psi, zi.counts, _mean(te), _mean(ca), th, m,
                                        f"all rows (0 and missing as bins of their own; zero share "
                                        f"{zi.zero_share_expected:.3f} → {zi.zero_share_actual:.3f})",
                                        across_seasons, deff))
                if zi.active is not None:
                    out.append(_psi_finding("feature_psi_active", name, zi.active, zi.active_counts,
                                            zi.active_mean_expected, zi.active_mean_actual, th, m,
                                            "the non-zero rows only (means among them as baseline / current)",
                                            across_seasons, deff))
                continue
            out.append(_psi_finding("feature_psi", name, psi(te, ca, th.n_bins, th.eps), numeric_counts(te, ca),
                                    _mean(te), _mean(ca), th, m, "all rows", across_seasons, deff))
        else:
            counts = _categorical_counts(tcol, ccol) or (np.zeros(0), np.zeros(0))
            out.append(_psi_finding("feature_psi", name, psi_categorical(tcol, ccol, th.eps), counts, None, None,
                                    th, m, "the categories", across_seasons, deff))

    if prevalence_train is not None and prevalence_current is not None:
        out.append(_prevalence_finding(float(prevalence_train), float(prevalence_current), prevalence_rows_train,
                                       prevalence_rows_current, prevalence_basis, th,
                                       prevalence_across_seasons, prevalence_customers_train))

    if cal_mae_train is not None and cal_mae_current is not None:
        mt, mc = float(cal_mae_train), float(cal_mae_current)
        v = mc - mt
        sev = severity(v, th.cal_mae_increase_warn, th.cal_mae_increase_hard)
        out.append(DriftFinding("calibration_regression", "cal_mae", v, sev, mt, mc, _calibration_action(sev),
                                None, "calibration MAE of the training out-of-fold scores → of the scores at C "
                                "against the outcomes of its window"))

    return out


# ---------------------------------------------------------------------------------------------------
# who buys: segments and divisions (the roster's purchase lines)
# ---------------------------------------------------------------------------------------------------
LINE_COLUMNS = ("customer_id", "invoice_id", "invoice_date", "division", "sku", "quantity", "revenue")


def _windows(lines: pl.DataFrame, cutoff: dt.date, baseline_cutoffs: list[dt.date], months: int) -> pl.DataFrame:
    """The purchase lines of the current window (C − months, C] (`side` "cur") and of the baseline windows ending at
    each baseline cutoff (`side` "base", `window` its end). A line in two overlapping baseline windows counts in
    both (each window is one observation of the baseline period)."""
    parts = []
    for side, end in [("cur", cutoff), *(("base", b) for b in baseline_cutoffs)]:
        start = add_months(end, -months)
        parts.append(lines.filter((pl.col("invoice_date") > start) & (pl.col("invoice_date") <= end))
                     .with_columns(pl.lit(side).alias("side"), pl.lit(end).alias("window")))
    return pl.concat(parts, how="vertical_relaxed") if parts else lines.clear()


def _group_changes(per: pl.DataFrame, n_base: int, min_customers: int) -> pl.DataFrame:
    """per: (side, customer_id, group, u) with u ≥ 0 one customer's activity in one group on one side (baseline
    windows summed). Per group: `cur` = Σu now, `base` = Σu per baseline window, customers on each side, `log_ratio`
    = ln((cur + ½) / (base + ½)) (½: a group that vanishes stays finite) and its standard error by the delta method
    over customers, paired (a customer's current and baseline activity are one unit, so a customer who buys a lot
    in both does not count as noise): se² = Σ_i (u_cur,i / Σu_cur − u_base,i / Σu_base)². Only groups with at
    least `min_customers` active customers on one side are kept (`eligible`)."""
    wide = (per.group_by("group", "customer_id")
            .agg(pl.col("u").filter(pl.col("side") == "cur").sum().alias("uc"),
                 pl.col("u").filter(pl.col("side") == "base").sum().alias("ub")))
    tot = wide.group_by("group").agg(pl.col("uc").sum().alias("tc"), pl.col("ub").sum().alias("tb"),
                                     (pl.col("uc") > 0).sum().alias("customers_cur"),
                                     (pl.col("ub") > 0).sum().alias("customers_base"))
    wide = wide.join(tot, on="group").with_columns(
        (pl.when(pl.col("tc") > 0).then(pl.col("uc") / pl.col("tc")).otherwise(0.0)
         - pl.when(pl.col("tb") > 0).then(pl.col("ub") / pl.col("tb")).otherwise(0.0)).pow(2).alias("infl2"))
    # Summed in the order of their values: a float sum depends on the order, and a group_by's is not fixed, so the same
    # lines give the same bits (the alert sensor compares a partition's findings by checksum).
    out = (wide.group_by("group").agg(pl.col("infl2").sort().sum().sqrt().alias("se"))
           .join(tot, on="group")
           .with_columns(pl.col("tc").cast(pl.Float64).alias("cur"),
                         (pl.col("tb").cast(pl.Float64) / max(n_base, 1)).alias("base"))
           .with_columns(((pl.col("cur") + 0.5) / (pl.col("base") + 0.5)).log().alias("log_ratio"),
                         (pl.max_horizontal("customers_cur", "customers_base") >= min_customers).alias("eligible"))
           .sort("group"))
    return out.select("group", "cur", "base", "customers_cur", "customers_base", "log_ratio", "se", "eligible")


def _activity_severity(log_rel: float, z: float | None, crit: float, th: DriftThresholds) -> Severity:
    significant = z is not None and abs(z) >= crit
    return graded_severity(math.exp(abs(log_rel)), th.activity_factor_warn, th.activity_factor_hard,
                           significant=significant)


def _relative_findings(changes: pl.DataFrame, kind: str, label: str, what: str, basis: str, th: DriftThresholds,
                       action, extra_detail=None, across_seasons: str | None = None) -> list[DriftFinding]:
    """Each eligible group's change against the median group's: factor = exp(log_ratio − median); z = (log_ratio −
    median) / se; Bonferroni over the eligible groups. The median absorbs what moves every group alike (the season,
    growth of the whole business); what is left is this group's own change."""
    ok = changes.filter(pl.col("eligible"))
    if ok.height < 2:
        return []
    ref = float(np.median(ok.get_column("log_ratio").to_numpy()))
    crit = z_critical(th.alpha, ok.height)
    out = []
    for g in ok.iter_rows(named=True):
        rel = g["log_ratio"] - ref
        z = rel / g["se"] if g["se"] and g["se"] > 0 else None
        sev, ceiling = seasonal_ceiling(_activity_severity(rel, z, crit, th), across_seasons)
        detail = (f"{what} in the window to C: {g['cur']:.0f} vs {g['base']:.1f} per baseline window ({basis}) = "
                  f"×{math.exp(g['log_ratio']):.2f}; the median {label} ×{math.exp(ref):.2f}; so "
                  f"×{math.exp(rel):.2f} "
                  f"relative, z {'n/a' if z is None else f'{z:+.2f}'} (critical {crit:.2f} over {ok.height} "
                  f"{label}s); active customers {g['customers_base']} → {g['customers_cur']}") + ceiling
        if sev == "info" and _at_least(math.exp(abs(rel)), th.activity_factor_warn):
            detail += "; within sampling noise, so not raised"
        if extra_detail is not None and sev != "info":
            detail += extra_detail(g["group"])
        out.append(DriftFinding(kind, f"{label}={g['group']}", math.exp(rel) - 1.0, sev, g["base"], g["cur"],
                                action(sev, g["group"], math.exp(rel)) if sev != "info" else NO_ACTION, z, detail))
    return out


def _basis(cutoff: dt.date, baseline_cutoffs: list[dt.date], months: int) -> str:
    if baseline_cutoffs == [add_months(cutoff, -12)]:
        return f"the same {months} months a year earlier, to {baseline_cutoffs[0]}, vs the {months} months to {cutoff}"
    return (f"the {months} months to each training cutoff {', '.join(str(b) for b in baseline_cutoffs)} vs the "
            f"{months} months to {cutoff}")


def _segment_action(col: str):
    def action(sev: Severity, value: str, factor: float) -> str:
        way = "fell" if factor < 1 else "rose"
        if sev == "hard":
            return (f"{col} {value}: its customers' buying {way} to ×{factor:.2f} of its level relative to the other "
                    f"{col}s since the model's training cutoffs. Check the extract first (a missing or duplicated "
                    f"file or source for that {col}, customers re-assigned); if it is real (lost or won accounts, a "
                    f"competitor, a rep change), the models trained before it mis-rate these customers at every "
                    f"division: review the {col}'s lists with its reps and retrain on recent cutoffs once the new "
                    f"level has lasted a label window")
        return f"{col} {value}: buying {way} to ×{factor:.2f} relative to the other {col}s; watch the next cutoff"
    return action


def segment_activity_findings(lines: pl.DataFrame, segment_columns: list[str], cutoff: dt.date,
                              baseline_cutoffs: list[dt.date], months: int,
                              thresholds: DriftThresholds | None = None,
                              across_seasons: str | None = None) -> list[DriftFinding]:
    """Per segment column (e.g. region, territory, industry: whichever `lines` carries with values) and segment
    value: its customers' invoices (`segment_invoices`) in the `months` to `cutoff` against the baseline windows,
    relative to the median segment of the column (see
    `_group_changes`, `_relative_findings`). A column without values, or with fewer than 2 segments of at least
    `min_group_customers` active customers, is skipped with an info note (`segments_skipped`): real data often have
    no such fields, which is no failure."""
    th = thresholds or DriftThresholds()
    out: list[DriftFinding] = []
    if not baseline_cutoffs:
        return [DriftFinding("segments_skipped", "segments", None, "info", None, None, NO_ACTION, None,
                             "skipped: no baseline window (the model has no training cutoff at least "
                             f"{months} months before {cutoff})")]
    win = _windows(lines, cutoff, baseline_cutoffs, months)
    basis = _basis(cutoff, baseline_cutoffs, months)
    for col in segment_columns:
        if col not in lines.columns or lines.get_column(col).drop_nulls().len() == 0:
            out.append(DriftFinding("segments_skipped", col, None, "info", None, None, NO_ACTION, None,
                                    f"skipped: the customers carry no {col} values"))
            continue
        # Invoices, not revenue: revenue is heavy-tailed (a few large invoices move a segment's revenue ×2 on
        # stationary demo data, beyond what its delta-method error allows); money is watched by `division_price`.
        per = (win.filter(pl.col(col).is_not_null())
               .group_by("side", "customer_id", pl.col(col).cast(pl.String).alias("group"))
               .agg(pl.col("invoice_id").n_unique().cast(pl.Float64).alias("u")))
        changes = _group_changes(per, len(baseline_cutoffs), th.min_group_customers)
        found = _relative_findings(changes, "segment_invoices", col, "invoices", basis, th, _segment_action(col),
                                   across_seasons=across_seasons)
        if not found:
            out.append(DriftFinding("segments_skipped", col, None, "info", None, None, NO_ACTION, None,
                                    f"skipped: fewer than 2 {col} values with at least {th.min_group_customers} "
                                    "active customers"))
        out += found
    return out


def _sku_change(win: pl.DataFrame, n_base: int):
    """detail suffix: the SKU of a division whose line count changed most (lines now vs per baseline window)."""
    def detail(division: str) -> str:
        per = (win.filter(pl.col("division") == division)
               .group_by("sku").agg((pl.col("side") == "cur").sum().cast(pl.Float64).alias("now"),
                                    ((pl.col("side") == "base").sum() / max(n_base, 1)).alias("before"))
               .with_columns((pl.col("now") - pl.col("before")).abs().alias("d"))
               .sort("d", "sku", descending=[True, False]))
        if per.height == 0:
            return ""
        sku, now, before, _ = per.row(0)
        return f"; largest SKU change: {sku} {before:.1f} → {now:.0f} lines"
    return detail


def _division_action(sev: Severity, division: str, factor: float) -> str:
    way = "fell" if factor < 1 else "rose"
    if sev == "hard":
        return (f"{division}: invoices {way} to ×{factor:.2f} of its level relative to the other divisions since the "
                f"model's training cutoffs. Check the SKU codes and the sku_map first (a SKU family moved to another "
                f"division, renamed or newly mapped; the largest SKU change is in the detail); if the business really "
                f"changed, every model that reads {division} activity mis-rates customers: retrain on recent cutoffs")
    return f"{division}: invoices {way} to ×{factor:.2f} relative to the other divisions; watch the next cutoff"


def division_activity_findings(lines: pl.DataFrame, cutoff: dt.date, baseline_cutoffs: list[dt.date], months: int,
                               thresholds: DriftThresholds | None = None,
                               across_seasons: str | None = None) -> list[DriftFinding]:
    """Per division: invoices with a purchase line of it in the `months` to `cutoff` against the baseline windows,
    relative to the median division (`division_invoices`; the detail names the SKU whose line count changed most)."""
    th = thresholds or DriftThresholds()
    if not baseline_cutoffs:
        return []
    win = _windows(lines, cutoff, baseline_cutoffs, months)
    per = (win.group_by("side", "customer_id", pl.col("division").alias("group"))
           .agg(pl.col("invoice_id").n_unique().cast(pl.Float64).alias("u")))
    changes = _group_changes(per, len(baseline_cutoffs), th.min_group_customers)
    return _relative_findings(changes, "division_invoices", "division", "invoices",
                              _basis(cutoff, baseline_cutoffs, months), th, _division_action,
                              _sku_change(win, len(baseline_cutoffs)), across_seasons)


def division_price_findings(lines: pl.DataFrame, cutoff: dt.date, baseline_cutoffs: list[dt.date], months: int,
                            thresholds: DriftThresholds | None = None,
                            across_seasons: str | None = None) -> list[DriftFinding]:
    """Per division, a fixed-basket unit-price index (`division_price`): for each SKU sold on both sides the change
    of its mean log unit price (revenue / quantity of purchase lines), weighted by the SKU's current revenue in the
    division: index = exp(Σ w_s Δ_s). A change of what is bought (mix) does not move it; a price-list change, a
    currency or unit change, or another SKU's lines booked under this SKU does. Its standard error comes from the
    lines' spread of log price within each SKU (the division's pooled spread for a SKU seen once on a side);
    Bonferroni over the divisions."""
    th = thresholds or DriftThresholds()
    if not baseline_cutoffs:
        return []
    win = (_windows(lines, cutoff, baseline_cutoffs, months)
           .filter((pl.col("quantity") > 0) & (pl.col("revenue") > 0))
           .with_columns((pl.col("revenue") / pl.col("quantity")).log().alias("lp")))
    # Each SKU's values summed in the order of their values, and the SKUs in a fixed order for the pooled variance:
    # the same lines in any order give the same bits (as in `_group_changes`).
    per = (win.group_by("division", "sku", "side")
           .agg(pl.col("lp").sort().mean().alias("m"), pl.col("lp").sort().var().alias("v"), pl.len().alias("n"),
                pl.col("revenue").sort().sum().alias("rev"))
           .sort("division", "sku", "side"))
    pooled = per.group_by("division").agg(
        ((pl.col("v").fill_null(0.0) * (pl.col("n") - 1)).sum() / (pl.col("n") - 1).sum().clip(1, None)).alias("pv"))
    cur = per.filter(pl.col("side") == "cur").drop("side")
    base = per.filter(pl.col("side") == "base").drop("side")
    both = (cur.join(base, on=["division", "sku"], suffix="_b").join(pooled, on="division")
            .with_columns(pl.when(pl.col("n") > 1).then(pl.col("v")).otherwise(pl.col("pv")).alias("vc"),
                          pl.when(pl.col("n_b") > 1).then(pl.col("v_b")).otherwise(pl.col("pv")).alias("vb"),
                          (pl.col("m") - pl.col("m_b")).alias("d")))
    divisions = sorted(both.get_column("division").unique().to_list())
    crit = z_critical(th.alpha, len(divisions))
    basis = _basis(cutoff, baseline_cutoffs, months)
    out = []
    for division in divisions:
        d = both.filter(pl.col("division") == division).sort("sku")
        w = d.get_column("rev").to_numpy() / d.get_column("rev").sum()
        delta = d.get_column("d").to_numpy()
        var = (d.get_column("vc").to_numpy() / d.get_column("n").to_numpy()
               + d.get_column("vb").to_numpy() / d.get_column("n_b").to_numpy())
        log_index = float((w * delta).sum())
        se = float(math.sqrt((w ** 2 * var).sum()))
        z = log_index / se if se > 0 else None
        rel = math.exp(log_index) - 1.0
        significant = z is not None and abs(z) >= crit or (z is None and log_index != 0.0)
        sev, ceiling = seasonal_ceiling(
            graded_severity(abs(rel), th.price_rel_warn, th.price_rel_hard, significant=significant), across_seasons)
        top = int(np.argmax(np.abs(w * delta)))
        sku, change = d.item(top, "sku"), math.exp(delta[top])
        detail = (f"unit-price index over {d.height} SKUs sold on both sides ({basis}): ×{math.exp(log_index):.3f}, "
                  f"z {'n/a' if z is None else f'{z:+.2f}'} (critical {crit:.2f} over {len(divisions)} divisions); "
                  f"largest: {sku} ×{change:.3f}") + ceiling
        if sev == "info" and _at_least(abs(rel), th.price_rel_warn):
            detail += "; within sampling noise, so not raised"
        if sev == "hard":
            action = (f"{division}: unit prices {rel:+.0%} against the training cutoffs (largest: SKU {sku} "
                      f"×{change:.2f}). Confirm with pricing (a price-list change) or check the extract (currency, "
                      f"units, another SKU's lines booked under {sku}); the revenue, gross-profit and order-value "
                      f"features of {division} move with it, so retrain on recent cutoffs once it is confirmed")
        elif sev == "warn":
            action = f"{division}: unit prices {rel:+.0%}; confirm the price list and watch the next cutoff"
        else:
            action = NO_ACTION
        out.append(DriftFinding("division_price", f"division={division}", rel, sev, 1.0, math.exp(log_index),
                                action, z, detail))
    return out


def activity_baseline(cutoff: dt.date, training_cutoffs: list[dt.date], months: int,
                      first_day: dt.date | None) -> tuple[list[dt.date], str | None]:
    """The windows C's activity window is compared with, and why that is across seasons (None: like with like).
    The same `months` a year earlier (C − 12 months) when the data reach back to that window's first day
    (`first_day`: the earliest invoice date; None: unknown, the training windows are used): a seasonal business
    is compared with its own season. Otherwise the windows to the model's training cutoffs (those ending by
    C − months: a later one would overlap C's window), which are in other months of the year unless a training
    cutoff is a year or more before C."""
    year = add_months(cutoff, -12)
    if first_day is not None and add_months(year, -months) + dt.timedelta(days=1) >= first_day:
        return [year], None
    base = sorted(b for b in training_cutoffs if b <= add_months(cutoff, -months))
    return base, season_of_baseline(cutoff, base, "each training window")


def activity_findings(lines: pl.DataFrame, segment_columns: list[str], cutoff: dt.date,
                      baseline_cutoffs: list[dt.date], months: int,
                      thresholds: DriftThresholds | None = None,
                      across_seasons: str | None = None) -> list[DriftFinding]:
    """Segment and division activity and division prices of the roster (see the three functions). `lines`: purchase
    lines (`LINE_COLUMNS`, quantity and revenue > 0, no returns) dated in the windows, with the customers' segment
    columns joined. `baseline_cutoffs` and `across_seasons`: from `activity_baseline`; a baseline cutoff later than
    C − months is dropped (its window would overlap C's)."""
    th = thresholds or DriftThresholds()
    base = sorted(b for b in baseline_cutoffs if b <= add_months(cutoff, -months))
    return (segment_activity_findings(lines, segment_columns, cutoff, base, months, th, across_seasons)
            + division_activity_findings(lines, cutoff, base, months, th, across_seasons)
            + division_price_findings(lines, cutoff, base, months, th, across_seasons))


def uses_year_earlier(baseline: tuple[list[dt.date], str | None], cutoff: dt.date) -> bool:
    """Whether an `activity_baseline` is the same months a year earlier (the same for every division at C)."""
    return baseline == ([add_months(cutoff, -12)], None)


# ---------------------------------------------------------------------------------------------------
# the alert document
# ---------------------------------------------------------------------------------------------------
def max_severity(findings: list[DriftFinding]) -> Severity:
    """Highest severity among the findings ("info" when there are none)."""
    best: Severity = "info"
    for f in findings:
        if SEVERITY_RANK[f.severity] > SEVERITY_RANK[best]:
            best = f.severity
    return best


def _strength(f: DriftFinding) -> float:
    """How sure a finding is, for ordering within a severity: |z| where a test applies, else the value."""
    if f.z is not None and math.isfinite(f.z):
        return abs(f.z)
    return abs(f.value) if f.value is not None and math.isfinite(f.value) else 0.0


def alerts_json(findings: list[DriftFinding], division: str, cutoff) -> dict:
    """JSON-able alert document: division, cutoff (ISO date string), max_severity, counts per severity and
    findings sorted by severity (hard first), then the strongest first (|z|, else |value|), then subject and kind.
    NaN / inf values become None."""
    ordered = sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], -_strength(f), f.subject, f.kind))
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("hard", "warn", "info")}
    return {
        "division": division,
        "cutoff": cutoff.isoformat() if isinstance(cutoff, (dt.date, dt.datetime)) else str(cutoff),
        "max_severity": max_severity(findings),
        "counts": counts,
        "findings": [f.to_dict() for f in ordered],
    }
