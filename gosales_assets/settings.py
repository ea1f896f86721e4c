"""Typed engine configuration, loaded from one YAML file.

The file is `gosales_assets/gosales.yaml` unless the `GOSALES_CONFIG` environment variable points elsewhere.
Everything the engine writes lives under `GOSALES_HOME` (default `./.gosales`); the landing folder,
warehouse and artifacts root default to sub-paths of it and can be overridden in the YAML.

An invalid file fails at load with `ConfigError`, whose message names the file, the key path and the problem.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gosales_assets.core.calendar import add_months, month_end

CONFIG_ENV_VAR = "GOSALES_CONFIG"
HOME_ENV_VAR = "GOSALES_HOME"
DEFAULT_CONFIG_PATH = Path(__file__).with_name("gosales.yaml")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


class _Model(BaseModel):
    # Unknown keys are errors: a typo in the YAML must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


# A division name is a Dagster partition key (alone and inside the division × cutoff multi-partition key), a
# metadata label and a markdown table cell, so it may not hold what those cannot: '|' separates the dimensions of
# a multi-partition key, ',' and '[' ']' are refused in multi-partition keys, and line breaks, tabs, other
# control characters and '...' are refused in every partition key.
_DIVISION_NAME_FORBIDDEN = {"|": "'|'", ",": "','", "[": "'['", "]": "']'"}


def _division_name_problem(name: str) -> str | None:
    """Why `name` cannot be a division name, or None. Spaces, '&', "'", '-', '/' and letters of any script are
    fine (DESIGN.md §2)."""
    control = sorted({repr(ch) for ch in name if not ch.isprintable()})
    if control:
        return (f"contains non-printable character(s) {', '.join(control)} (a line break, tab or invisible "
                "character); division names are one line of printable text")
    found = [shown for ch, shown in _DIVISION_NAME_FORBIDDEN.items() if ch in name]
    if found:
        return (f"contains {', '.join(found)}, which a Dagster partition key cannot hold (the division is a "
                "partition key); not allowed: '|', ',', '[', ']', line breaks and '...'")
    if "..." in name:
        return "contains '...', which a Dagster partition key cannot hold (the division is a partition key)"
    return None


def division_slug(name: str) -> str:
    """File-name / column-name safe slug of a canonical division name.

    Lower-cased ASCII words joined by `_`; `&` becomes `and`. Uniqueness across the configured divisions
    is enforced by `Settings`, so a slug always maps back to exactly one division.
    """
    s = name.strip().lower().replace("&", " and ")
    s = re.sub(r"[^a-z0-9]+", "_", s).strip("_")
    if not s:
        raise ValueError(f"division name {name!r} has no letters or digits to build a slug from")
    return s


class DataSettings(_Model):
    start_date: dt.date = Field(description="Earliest valid invoice date; earlier lines are violations.")
    end_date: dt.date = Field(description="Last date covered by the extract; later lines are violations.")

    @model_validator(mode="after")
    def _ordered(self) -> "DataSettings":
        if self.end_date <= self.start_date:
            raise ValueError(f"end_date {self.end_date} must be after start_date {self.start_date}")
        return self


class PathSettings(_Model):
    landing: Path | None = None
    warehouse: Path | None = None
    artifacts: Path | None = None


class ContractSettings(_Model):
    max_violation_rate: float = Field(0.05, ge=0.0, le=1.0)


class AutoWidenSettings(_Model):
    enabled: bool = False
    min_positives: int = Field(30, ge=1)
    max_window_months: int = Field(12, ge=1, le=36)


class LabelSettings(_Model):
    window_months: int = Field(6, ge=1, le=36)
    per_division_window_months: dict[str, int] = Field(default_factory=dict)
    mode: Literal["expansion", "all"] = "expansion"
    min_net_revenue: float = Field(0.0, ge=0.0)
    sku_denylist: list[str] = Field(default_factory=list)
    auto_widen: AutoWidenSettings = AutoWidenSettings()

    @field_validator("per_division_window_months")
    @classmethod
    def _positive_windows(cls, v: dict[str, int]) -> dict[str, int]:
        for div, months in v.items():
            if not 1 <= months <= 36:
                raise ValueError(f"window for division {div!r} must be between 1 and 36 months, got {months}")
        return v


class FeatureSettings(_Model):
    rfm_windows_months: list[int] = Field(default_factory=lambda: [3, 6, 12, 24])
    # Pseudo-count of the empirical-Bayes prior that shrinks a customer's cross-division revenue shares
    # toward the population shares (customers with little revenue get population-like shares).
    eb_prior_strength: float = Field(5000.0, ge=0.0)

    @field_validator("rfm_windows_months")
    @classmethod
    def _windows(cls, v: list[int]) -> list[int]:
        if not v or any(m < 1 or m > 120 for m in v) or len(set(v)) != len(v):
            raise ValueError(f"must be distinct month counts between 1 and 120, got {v}")
        return sorted(v)


class LeakageSettings(_Model):
    invariance_max_customers: int | None = Field(
        5_000, ge=1, description="The invariance checks of the cutoff features, basket rules and ALS rebuild them "
        "on every row of this many sampled customers seen by the cutoff (plus a tenth as many first seen after it) "
        "when there are more; null: always on the whole history, compared with the stored output")


class BasketSettings(_Model):
    min_support: float = Field(0.005, ge=0.0, le=1.0)
    min_confidence: float = Field(0.05, ge=0.0, le=1.0)


class AlsSettings(_Model):
    factors: int = Field(16, ge=2, le=256)
    regularization: float = Field(0.05, ge=0.0)
    iterations: int = Field(15, ge=1, le=200)
    alpha: float = Field(10.0, gt=0.0, description="Confidence weight: c = 1 + alpha * log1p(net revenue / 1000)")
    min_customer_items: int = Field(1, ge=1, description="Customers with fewer purchased items get coverage=0")
    num_threads: int | None = Field(1, ge=1, description="Threads of the ALS fit (null: one per core). The factors "
                                    "are the same bytes with any number (each customer's and SKU's solve is its own); "
                                    "at 500,000 customers a second thread doubled the fit's CPU (7.7 -> 16.7 s) for no "
                                    "speed (7.6 -> 8.5 s), and the cutoff's step fits ALS beside the customer features")


class GateThresholds(_Model):
    # The absolute floors only say "better than chance" (AUC 0.5, lift 1): a floor tuned to one business says little
    # about another; what holds a model is the comparison with the alternatives (peers, champion) below.
    auc_min: float = Field(0.55, ge=0.0, le=1.0)
    auc_above_chance: bool = Field(True, description="Hold a model whose out-of-fold AUC is not distinguishable "
                                   "from chance: the lower end of its 95 % DeLong interval must be above 0.5 (a "
                                   "model without signal can clear the low floors when its peers have none either)")
    lift10_min: float = Field(1.2, ge=0.0)
    cal_mae_max: float = Field(0.10, ge=0.0, le=1.0)
    # Margins below the typical half-width of the paired interval (~0.03-0.05 AUC at demo size): a candidate
    # statistically tied with the alternative still publishes; one clearly behind is held.
    peer_margin: float = Field(0.02, ge=0.0, le=1.0, description="The candidate may trail the best simple peer "
                               "(recency, frequency, monetary, RFM logistic regression) by at most this much AUC")
    champion_margin: float = Field(0.02, ge=0.0, le=1.0, description="The candidate may trail the division's "
                                   "current champion model by at most this much AUC on the rows out of the "
                                   "champion's sample (cutoff at or after the champion's: labels it never saw)")


class GateSettings(GateThresholds):
    peer_gate: bool = Field(True, description="Hold a model that trails the best simple peer by more than "
                            "peer_margin on the same out-of-fold rows (a held division is listed by that peer in "
                            "whitespace). The comparison is always computed and shown (check metadata, model card)")
    champion_gate: bool = Field(False, description="Compare the candidate with the division's current champion (the "
                                "newest earlier promoted model within champion_lookback_months) on its out-of-fold "
                                "rows at cutoffs from the champion's own on (labels the champion never saw; none "
                                "while the champion is younger than the label window: not applicable); a candidate "
                                "that trails "
                                "it by more than champion_margin, and misses nothing else, is `retained`: the "
                                "champion keeps serving. Off: no earlier model is read (nor declared as a "
                                "dependency), the comparison is not applicable")
    champion_lookback_months: int = Field(12, ge=1, description="How far back division_model looks for the current "
                                          "champion (its declared dependency on its own earlier partitions)")
    peer_interval: Literal["delong", "bootstrap"] = Field(
        "delong", description="How the paired interval of an AUC difference (peer and champion comparisons, forward "
        "validation) is computed: DeLong's analytic one (one pass, any size) or a paired bootstrap of peer_bootstrap "
        "resamples (hundreds of AUCs: minutes per model at 300,000 out-of-fold rows)")
    peer_bootstrap: int = Field(500, ge=50, description="Resamples of the paired interval when peer_interval is "
                                "bootstrap")

    @property
    def peer_resamples(self) -> int | None:
        """`core.peers.paired_auc_difference`'s n_boot: None for DeLong's interval."""
        return self.peer_bootstrap if self.peer_interval == "bootstrap" else None
    default_peer: Literal["recency", "frequency", "monetary"] = Field(
        "monetary", description="The peer that orders a division × cutoff where no model was trained (skipped: no "
        "out-of-fold comparison to choose the best peer by); peer_scores, forward validation and the whitespace "
        "fallback say when it was used. The RFM regression needs a fit, so it cannot be the default")
    per_division: dict[str, GateThresholds] = Field(default_factory=dict)


class LogisticGrid(_Model):
    C: list[float] = Field(default_factory=lambda: [0.1, 1.0])
    l1_ratio: list[float] = Field(default_factory=lambda: [0.0, 0.5])
    max_iter: int = Field(2000, ge=50)
    log_inputs: bool = Field(False, description="Signed log1p of the (imputed, winsorized) numeric inputs before "
                             "scaling: money, counts and day spans are heavy-tailed; trees are unaffected")


class LightGBMGrid(_Model):
    num_leaves: list[int] = Field(default_factory=lambda: [15, 31])
    learning_rate: list[float] = Field(default_factory=lambda: [0.05])
    min_child_samples: list[int] = Field(default_factory=lambda: [20])
    feature_fraction: list[float] = Field(default_factory=lambda: [0.8])
    n_estimators_max: int = Field(1000, ge=10)
    early_stopping_rounds: int = Field(50, ge=1)
    early_stopping_tolerance: float = Field(
        0.0, ge=0.0, lt=0.1, description="Boosting stops when early_stopping_rounds rounds have not lowered the "
        "held-out fold's log loss by more than this fraction of the base-rate log loss (the loss of predicting the "
        "training prevalence); 0: any decrease counts")


class SamplingSettings(_Model):
    """Negative down-sampling of the training frame (core.modeling.sample_negatives): per training cutoff every
    positive is kept and a seeded sample of the negatives, weighted back by 1 / rate in the fits; calibration and
    every reported metric use the unsampled out-of-fold rows."""

    enabled: bool = Field(True, description="Sample the negatives of large training cutoffs; off: every labelled "
                          "row is fitted")
    negatives_per_positive: float = Field(
        3.0, gt=0.0, description="Negatives kept per positive of a training cutoff (at least min_negatives)")
    min_negatives: int = Field(10_000, ge=1, description="Never fewer negatives kept per training cutoff")
    min_rows_to_sample: int = Field(
        0, ge=0, description="A training cutoff with fewer labelled rows is kept whole. 0 (default): the target "
        "alone decides — a cutoff with fewer negatives than max(min_negatives, negatives_per_positive x positives) "
        "is kept whole (small divisions, the demo) — so a larger cutoff never keeps fewer rows than a smaller one; "
        "a threshold above that makes the cutoffs just under it the most expensive to train")


class LargeFrameSettings(_Model):
    """A cheaper fit for training frames with many positives (core.modeling.fit_schedule): with thousands of positives
    each fold's estimate and the early stopping are precise, so fewer folds and a faster LightGBM learning rate cost no
    measurable quality there (docs/MODEL_QUALITY.md) and save about a quarter of the fit. Frames with fewer positives
    keep the configured folds and grid, where those were chosen."""

    min_positives: int | None = Field(
        None, ge=1, description="Training frames with at least this many labelled positives are fitted with the folds "
        "and learning rate below; null: every frame with the configured ones")
    n_folds: int = Field(3, ge=2, le=20, description="Customer-grouped folds of a large frame")
    learning_rate: float = Field(0.2, gt=0.0, le=1.0, description="LightGBM's learning rate for a large frame "
                                 "(replaces the grid's learning rates)")


class ModelSettings(_Model):
    training_cutoffs: int = Field(
        6, ge=1, description="At most this many most recent trainable cutoffs C' (C' + W <= C) are pooled")
    training_positives: int | None = Field(
        2000, ge=1, description="Pooling stops once the pooled cutoffs hold this many labelled positives: the newest "
        "trainable cutoff first, then older ones while the positives are fewer (at most `training_cutoffs`). More "
        "rows of the same customers a few months earlier add cost, not information, past this point (measured at "
        "500,000 customers: docs/MODEL_QUALITY.md). null: always `training_cutoffs`")
    training_lookback_months: int = Field(
        15, ge=0, description="Training cutoffs C' are looked for in [C - W - this, C - W] (the declared dependency "
        "of division_model on earlier cutoffs' labels and features)")
    n_folds: int = Field(4, ge=2, le=20)
    min_positives: int = Field(20, ge=1, description="Fewer training positives -> the partition is skipped")
    isotonic_min_positives: int = Field(
        200, ge=1, description="Calibration is isotonic at or above this many training positives, sigmoid below")
    calibration_bins: int = Field(10, ge=2, le=100)
    capacity_pcts: list[float] = Field(default_factory=lambda: [5.0, 10.0, 20.0])
    winsor_quantiles: tuple[float, float] = (0.01, 0.99)
    max_category_levels: int = Field(20, ge=1)
    num_threads: int = Field(
        1, ge=1, description="Threads of one model fit (LightGBM and the BLAS under the logistic regression). Runs "
        "already go two at a time on two cores (dagster.yaml), so threads inside a fit only compete with the other "
        "run: at 500,000 customers one fit took 30.9 CPU-s with 2 threads, 23.4 with 1, the same model")
    drift_sample_rows: int = Field(5000, ge=100, description="Rows of training scores/features kept for drift baselines")
    logistic: LogisticGrid = LogisticGrid()
    lightgbm: LightGBMGrid = LightGBMGrid()
    ensemble: bool = Field(False, description="Average the best logistic and the best LightGBM configuration "
                           "(equal weights on standardized logits) instead of selecting one of them")
    sampling: SamplingSettings = SamplingSettings()
    large_frames: LargeFrameSettings = LargeFrameSettings()
    gates: GateSettings = GateSettings()

    @model_validator(mode="after")
    def _pool_can_train(self) -> "ModelSettings":
        if self.training_positives is not None and self.training_positives < self.min_positives:
            raise ValueError(f"training_positives {self.training_positives} is below min_positives "
                             f"{self.min_positives}: a pool could stop before it holds enough positives to train")
        return self


class WhitespaceWeights(_Model):
    p_icp: float = Field(0.60, ge=0.0)
    lift: float = Field(0.20, ge=0.0)
    als: float = Field(0.10, ge=0.0)
    ev: float = Field(0.10, ge=0.0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "WhitespaceWeights":
        total = self.p_icp + self.lift + self.als + self.ev
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, got {total:g}")
        return self


# The orderings of a cutoff's whitespace pairs (core.ranking): the blend of the four signals, the calibrated
# probability alone, probability x expected spend, and the legacy revenue x recency heuristic (a shadow).
RANKING_ORDERINGS = ("blend", "p_icp", "expected_value", "legacy")
Ordering = Literal["blend", "p_icp", "expected_value", "legacy"]


class RankingSettings(_Model):
    """Which ordering the reps see (the champion) and how closed windows may change it (core.ranking_decision)."""
    initial_champion: Ordering = Field(
        "p_icp", description="The champion before any decision (no earlier ranking_decision in the look-back); "
        "p_icp on the dev-seed evidence (docs/MODEL_QUALITY.md)")
    champion: Ordering | None = Field(
        None, description="Pin the champion: every decision keeps this ordering whatever the evidence (the "
        "evaluation is still recorded). null: closed windows decide")
    competitors: list[Ordering] = Field(
        default_factory=lambda: ["blend", "p_icp", "expected_value"], min_length=1,
        description="Orderings that may become champion; every ordering is evaluated (legacy: shadow only)")
    objective: Literal["count", "revenue"] = Field(
        "revenue", description="capture@K% of realized purchases by count, or of their realized net revenue")
    k_pct: float = Field(10.0, gt=0.0, le=100.0, description="K: the top K% of each list's model rows")
    windows: int = Field(3, ge=1, description="N: a challenger must win over the last N closed windows")
    bootstrap_reps: int = Field(2000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Level of the paired bootstrap interval")
    seed: int = Field(14, description="Seed of the paired bootstrap")

    @model_validator(mode="after")
    def _champions_compete(self) -> "RankingSettings":
        if self.initial_champion not in self.competitors:
            raise ValueError(f"initial_champion {self.initial_champion!r} is not among the competitors "
                             f"{self.competitors}")
        if len(set(self.competitors)) != len(self.competitors):
            raise ValueError(f"competitors repeat an ordering: {self.competitors}")
        return self


class WhitespaceSettings(_Model):
    weights: WhitespaceWeights = WhitespaceWeights()
    ranking: RankingSettings = RankingSettings()
    ownership_lookback_months: int | None = Field(
        None, ge=1, description="A division counts as owned when bought in this many months before C (None: ever)")
    als_min_coverage: float = Field(0.30, ge=0.0, le=1.0, description="Below this share of covered customers "
                                    "in a division, the ALS signal is treated as missing for that division")
    lift_min_coverage: float = Field(0.05, ge=0.0, le=1.0)
    ev_shrinkage_k: float = Field(20.0, ge=0.0, description="Pseudo-count shrinking segment medians to the global")
    ev_cap_quantile: float = Field(0.95, gt=0.0, le=1.0)
    capacity_mode: Literal["top_percent", "per_rep", "hybrid"] = "top_percent"
    top_percent: float = Field(10.0, gt=0.0, le=100.0)
    per_rep_quota: int = Field(25, ge=1)
    max_division_share: float = Field(0.40, gt=0.0, le=1.0, description="Diversification cap on any division's "
                                      "share of the selected list")
    capacity_grid_pcts: list[float] = Field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 20.0])
    reason_max_chars: int = Field(150, ge=40, le=500)
    forbidden_tokens: list[str] = Field(default_factory=lambda: [
        "race", "ethnicity", "religion", "gender", "age", "disability", "pregnan*", "nationality", "marital",
        "email", "phone", "ssn", "@"])
    challenger_enabled: bool = False
    shadow_enabled: bool = False
    shadow_top_n: int = Field(100, ge=1)
    history_months: int = Field(
        12, ge=1, description="Earlier lists are looked for this far back: the previous list (stability) in "
        "[C - this, C), the challenger's realized list in [C - W_max - this, C - W_max]")
    peer_fallback: bool = Field(
        True, description="A division whose model is held or skipped at C is still listed, ordered by its best "
        "simple peer (peer_scores): `score_source` peer:<name>, `p_icp` null, a reason that says so; listed after "
        "every row of a promoted division")
    peer_fallback_in_capacity: bool = Field(
        False, description="Let peer-ordered rows into the capacity plan (`selected`, capacity_summary). Off: the "
        "plan holds only rows of promoted models, exactly as without the fallback")


class DriftSettings(_Model):
    psi_warn: float = Field(0.10, ge=0.0)
    psi_hard: float = Field(0.25, ge=0.0)
    prevalence_rel_warn: float = Field(0.5, ge=0.0, description="|current - baseline| / baseline prevalence (the "
                                       "training cutoff in the same month of the year when there is one)")
    prevalence_rel_hard: float = Field(1.0, ge=0.0)
    cal_mae_increase_warn: float = Field(0.02, ge=0.0)
    cal_mae_increase_hard: float = Field(0.05, ge=0.0)
    activity_factor_warn: float = Field(1.25, ge=1.0, description="A segment's or division's invoices vs the "
                                        "median one's, as a factor either way (1.25: x1.25 or x0.8)")
    activity_factor_hard: float = Field(1.5, ge=1.0)
    price_rel_warn: float = Field(0.10, ge=0.0, description="|unit-price index - 1| of a division")
    price_rel_hard: float = Field(0.20, ge=0.0)
    alpha: float = Field(0.001, gt=0.0, le=1.0, description="Family-wise false-alarm rate: a change must also be "
                         "beyond sampling noise at this rate (Bonferroni over a family's comparisons in a partition); "
                         "1 switches the noise requirement off")
    min_group_customers: int = Field(20, ge=1, description="Active customers a segment / division needs to be compared")
    activity_months: int = Field(3, ge=1, le=12, description="Window of purchase activity compared per segment and "
                                 "division: the months to C vs the same months to each training cutoff")
    segment_columns: list[str] = Field(["region", "territory", "industry"], description="dim_customer columns whose "
                                       "segments are compared (a column without values is skipped with a note)")
    top_features: int = Field(10, ge=0, description="How many of the model's most important features to compare")
    year_earlier_min_history_months: int = Field(
        12, ge=0, description="Months of the log a cutoff a year before C needs up to it (the data start's month "
        "counts) to give C's year-earlier label rate (fewer: its owners are not known yet, and the rate runs high)")

    @model_validator(mode="after")
    def _warn_below_hard(self) -> "DriftSettings":
        for name in ("psi", "prevalence_rel", "cal_mae_increase", "activity_factor", "price_rel"):
            warn, hard = getattr(self, f"{name}_warn"), getattr(self, f"{name}_hard")
            if warn > hard:
                raise ValueError(f"{name}_warn ({warn}) must not exceed {name}_hard ({hard})")
        return self


class AutomationSettings(_Model):
    new_cutoff_sensor_running: bool = Field(
        False, description="Start the `new_cutoff` sensor switched on (a new month-end in the data -> one backfill)")
    new_cutoff_sensor_interval_seconds: int = Field(300, ge=30)
    drift_sensor_running: bool = Field(True, description="Start the drift alert sensor switched on")
    drift_sensor_interval_seconds: int = Field(120, ge=10)
    alert_min_severity: Literal["warn", "hard"] = Field(
        "warn", description="Lowest drift severity that raises an alert (failed ERROR checks always do)")
    retrain_on_hard_drift: bool = Field(
        False, description="Request a retraining run (model, scores, peer scores, drift) for a partition with hard drift")


# A run that wrote the warehouse republishes the read-only snapshot when the last one is at least this old.
DEFAULT_SNAPSHOT_INTERVAL_MINUTES = 30.0


class SnapshotSettings(_Model):
    interval_minutes: float | None = Field(
        DEFAULT_SNAPSHOT_INTERVAL_MINUTES, ge=0.0, description="The end of a run that wrote the warehouse publishes "
        "a new read-only snapshot (<warehouse folder>/snapshot/) when the changes the last one lacks were first seen "
        "at least this long ago (0: after every such run; null: never at the end of a run). `gosales materialize` "
        "always publishes one when it ends, `gosales snapshot` on demand. Each copy reads and writes the whole "
        "warehouse file")
    sensor_running: bool = Field(
        True, description="Start the `publish_snapshot` sensor switched on: it publishes the snapshot once no run is "
        "queued or in progress and no backfill requested, when the warehouse changed since the last one")
    sensor_interval_seconds: int = Field(60, ge=30)


class DuckDBSettings(_Model):
    threads: int | None = Field(
        1, ge=1, description="DuckDB threads of the warehouse in a run (null: DuckDB's default, one per core). Runs "
        "already go two at a time on the two cores; DuckDB's own threads then wait on each other and cost CPU: at "
        "95,000 rows x 317 columns an insert took 0.6 CPU-s with one thread, 1.2-2.5 with two (docs/PERFORMANCE.md)")


class SeedSettings(_Model):
    demo: int = 7
    modeling: int = 42
    als: int = 42


class DemoSettings(_Model):
    customers: int = Field(3000, ge=10)


class Settings(_Model):
    divisions: list[str] = Field(min_length=1)
    sku_map: dict[str, str] = Field(min_length=1)
    data: DataSettings
    cutoffs: list[dt.date] = Field(min_length=1)
    paths: PathSettings = PathSettings()
    contracts: ContractSettings = ContractSettings()
    labels: LabelSettings = LabelSettings()
    features: FeatureSettings = FeatureSettings()
    leakage: LeakageSettings = LeakageSettings()
    basket: BasketSettings = BasketSettings()
    als: AlsSettings = AlsSettings()
    models: ModelSettings = ModelSettings()
    whitespace: WhitespaceSettings = WhitespaceSettings()
    drift: DriftSettings = DriftSettings()
    automation: AutomationSettings = AutomationSettings()
    snapshot: SnapshotSettings = SnapshotSettings()
    duckdb: DuckDBSettings = DuckDBSettings()
    seeds: SeedSettings = SeedSettings()
    demo: DemoSettings = DemoSettings()
    # Where GOSALES_HOME resolved to; filled by `load_settings`, not read from the YAML.
    home: Path = Field(default=Path(".gosales"), exclude=True)

    @field_validator("divisions")
    @classmethod
    def _unique_divisions(cls, v: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for name in v:
            if name != name.strip() or not name:
                raise ValueError(f"division name {name!r} is empty or has leading/trailing spaces")
            bad = _division_name_problem(name)
            if bad:
                raise ValueError(f"division name {name!r} {bad}")
            slug = division_slug(name)
            if slug in seen:
                raise ValueError(f"divisions {seen[slug]!r} and {name!r} collide on slug {slug!r}")
            seen[slug] = name
        return v

    @field_validator("cutoffs")
    @classmethod
    def _month_ends(cls, v: list[dt.date]) -> list[dt.date]:
        for c in v:
            if c != month_end(c):
                raise ValueError(f"cutoff {c} is not a month-end date (expected {month_end(c)})")
        if len(set(v)) != len(v):
            raise ValueError("cutoffs contain duplicates")
        return sorted(v)

    @model_validator(mode="after")
    def _cross_checks(self) -> "Settings":
        known = set(self.divisions)
        for sku, div in self.sku_map.items():
            if div not in known:
                raise ValueError(
                    f"sku_map[{sku!r}] maps to {div!r}, which is not one of the configured divisions "
                    "(names are exact, case-sensitive)"
                )
        for div in self.labels.per_division_window_months:
            if div not in known:
                raise ValueError(f"labels.per_division_window_months has unknown division {div!r}")
        for div in self.models.gates.per_division:
            if div not in known:
                raise ValueError(f"models.gates.per_division has unknown division {div!r}")
        for sku in self.labels.sku_denylist:
            if sku not in self.sku_map:
                raise ValueError(f"labels.sku_denylist has {sku!r}, which is not in sku_map")
        for c in self.cutoffs:
            if not self.data.start_date < c <= self.data.end_date:
                raise ValueError(
                    f"cutoff {c} is outside the data range ({self.data.start_date}, {self.data.end_date}]"
                )
        return self

    # ---- resolved paths -------------------------------------------------------------------------
    def _under_home(self, p: Path | None, default: str) -> Path:
        if p is None:
            return self.home / default
        return p if p.is_absolute() else self.home / p

    @property
    def landing_dir(self) -> Path:
        return self._under_home(self.paths.landing, "landing")

    @property
    def warehouse_path(self) -> Path:
        return self._under_home(self.paths.warehouse, "warehouse.duckdb")

    @property
    def artifacts_dir(self) -> Path:
        return self._under_home(self.paths.artifacts, "artifacts")

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    def gate_thresholds(self, division: str) -> GateThresholds:
        """Promotion-gate thresholds for a division: the global ones, with the keys its override sets replaced (an
        override of one threshold leaves the other two at the project's values, not at the class defaults)."""
        g = self.models.gates
        override = g.per_division.get(division)
        values = {k: getattr(g, k) for k in GateThresholds.model_fields}
        return GateThresholds(**values | (override.model_dump(exclude_unset=True) if override else {}))

    def window_months(self, division: str) -> int:
        return self.labels.per_division_window_months.get(division, self.labels.window_months)

    def window_range(self) -> tuple[int, int]:
        """(shortest, longest) label window any division can use, auto-widening included: the bounds of every
        look-back from one cutoff to earlier ones."""
        windows = [self.window_months(d) for d in self.divisions]
        longest = max(windows + ([self.labels.auto_widen.max_window_months] if self.labels.auto_widen.enabled else []))
        return min(windows), longest

    @property
    def last_cutoff(self) -> dt.date:
        """The newest month-end the data reaches: the last `cutoff` partition."""
        end = self.data.end_date
        return end if end == month_end(end) else add_months(end, -1)

    @cached_property
    def division_by_slug(self) -> dict[str, str]:
        return {division_slug(d): d for d in self.divisions}

    # ---- provenance -----------------------------------------------------------------------------
    def resolved_yaml(self) -> str:
        """The effective configuration (defaults filled in, paths resolved) as YAML."""
        doc = self.model_dump(mode="json")
        doc["resolved_paths"] = {
            "home": str(self.home),
            "landing": str(self.landing_dir),
            "warehouse": str(self.warehouse_path),
            "artifacts": str(self.artifacts_dir),
        }
        return yaml.safe_dump(doc, sort_keys=True)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.resolved_yaml().encode()).hexdigest()[:16]


def _format_validation_error(path: Path, err: ValidationError) -> str:
    lines = [f"invalid configuration in {path}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  - {key}: {msg}")
    return "\n".join(lines)


def gosales_home() -> Path:
    return Path(os.environ.get(HOME_ENV_VAR) or (Path.cwd() / ".gosales")).resolve()


def config_path() -> Path:
    env = os.environ.get(CONFIG_ENV_VAR)
    return Path(env).resolve() if env else DEFAULT_CONFIG_PATH


def merge_config(base: dict, over: dict) -> dict:
    """`over` merged into a copy of `base` (a config document): nested mappings key by key, any other value
    (lists included) replaces the base value."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge_config(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def settings_from_dict(doc: dict, *, home: Path | None = None, source: str | Path = "<dict>") -> Settings:
    try:
        return Settings.model_validate({**doc, "home": (home or gosales_home())})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(Path(source), err)) from None


def load_settings(path: str | Path | None = None, *, home: str | Path | None = None) -> Settings:
    """Read and validate the YAML config. `home` overrides GOSALES_HOME (used by tests)."""
    path = Path(path) if path is not None else config_path()
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path} (set {CONFIG_ENV_VAR} to point at yours)")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"configuration file {path} is not valid YAML: {err}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"configuration file {path} must contain a mapping at the top level")
    resolved_home = Path(home).resolve() if home is not None else gosales_home()
    return settings_from_dict(doc, home=resolved_home, source=path)
