"""How good is a whitespace list: capture@K of realized buyers, stability against the previous list, the
challenger (a logistic meta-learner over the four signals, fitted on an earlier cutoff's REALIZED outcomes) and
the shadow comparison with the legacy heuristic."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from gosales_assets.core.capacity import capacity_count
from gosales_assets.core.pair_frames import outcomes_known, require_columns
from gosales_assets.core.whitespace_signals import LEGACY_HALF_LIFE_DAYS, legacy_scores

__all__ = [
    "capture_at_k",
    "jaccard_top_n",
    "stability",
    "CHALLENGER_FEATURES",
    "ChallengerModel",
    "fit_challenger",
    "score_challenger",
    "legacy_heuristic",
    "shadow_report",
]


# ---------------------------------------------------------------------------------------------------
# evaluation: capture@K, overlap, stability
# ---------------------------------------------------------------------------------------------------
def _ordered_by(frame: pl.DataFrame, score_col: str | None = None, rank_col: str | None = None) -> pl.DataFrame:
    if score_col is not None:
        return frame.sort([score_col, "customer_id", "division"], descending=[True, False, False], nulls_last=True,
                          maintain_order=True)  # fmt: skip
    if rank_col is not None:
        return frame.sort(rank_col, maintain_order=True)
    if "rank" in frame.columns:
        return frame.sort("rank", maintain_order=True)
    return frame


def capture_at_k(
    ranked: pl.DataFrame,
    outcome_col: str = "bought_in_division",
    k_pct: float = 10.0,
    *,
    score_col: str | None = None,
) -> float | None:
    """Share of all realized buyers (outcome == 1) found in the top ceil(k_pct% of rows).

    Order: by `score_col` desc (ties customer_id, division asc) when given, else by `rank`, else the
    frame's order. None when the outcome column is absent/all null or nobody bought (null outcomes
    otherwise count as 0).
    """
    if not outcomes_known(ranked, outcome_col):
        return None
    ordered = _ordered_by(ranked, score_col)
    y = ordered.get_column(outcome_col).fill_null(0).cast(pl.Int64).to_numpy()
    total = int(y.sum())
    if total == 0:
        return None
    n = capacity_count(ordered.height, k_pct)
    return float(y[:n].sum()) / total


def _top_pairs(frame: pl.DataFrame, n: int, rank_col: str | None = None) -> set[tuple[str, str]]:
    ordered = _ordered_by(frame, rank_col=rank_col)
    top = ordered.head(n).select(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String))
    return set(top.iter_rows())


def jaccard_top_n(a: pl.DataFrame, b: pl.DataFrame, n: int) -> float:
    """Jaccard similarity of the top-n (customer_id, division) pairs of two rankings (by `rank` when the
    frame has it, else its row order). Two empty lists -> 1.0."""
    sa, sb = _top_pairs(a, n), _top_pairs(b, n)
    union = sa | sb
    return 1.0 if not union else len(sa & sb) / len(union)


def stability(current: pl.DataFrame, previous: pl.DataFrame | None, n: int) -> float | None:
    """Jaccard of the top-n pairs vs the previous cutoff's ranking; None when there is no previous list."""
    if previous is None or previous.height == 0:
        return None
    return jaccard_top_n(current, previous, n)


# ---------------------------------------------------------------------------------------------------
# challenger: logistic meta-learner over the four signals, on REALIZED outcomes only
# ---------------------------------------------------------------------------------------------------
CHALLENGER_FEATURES = ("p_icp_pct", "lift_norm", "als_norm", "EV_norm")
_NOT_A_TARGET = {"score", "score_challenger", "legacy_score", "rank", "p_icp", "icp_score", *CHALLENGER_FEATURES}


@dataclass(frozen=True)
class ChallengerModel:
    estimator: Any  # sklearn LogisticRegression
    features: tuple[str, ...]
    outcome_col: str
    coef: dict[str, float]
    intercept: float
    n_train: int
    n_positive: int
    seed: int
    training_cutoff: dt.date | None

    def to_dict(self) -> dict:
        return {"features": list(self.features), "outcome_col": self.outcome_col, "coef": self.coef,
                "intercept": self.intercept, "n_train": self.n_train, "n_positive": self.n_positive,
                "seed": self.seed,
                "training_cutoff": self.training_cutoff.isoformat() if self.training_cutoff else None}  # fmt: skip


def fit_challenger(
    training_frame: pl.DataFrame,
    seed: int,
    *,
    outcome_col: str = "bought_in_division",
    training_cutoff: dt.date | None = None,
    C: float = 1.0,
) -> ChallengerModel:
    """Fit a logistic regression of the REALIZED outcome on `CHALLENGER_FEATURES`.

    `training_frame` is an earlier cutoff's ranked frame whose label window has closed (the caller picks
    C' with C' + W <= C). Only `outcome_col` is used as the target; it must be a 0/1 outcome column, never
    a score/rank/signal column (ValueError). Rows with a null outcome are dropped; both classes needed.
    """
    from sklearn.linear_model import LogisticRegression

    if outcome_col in _NOT_A_TARGET or outcome_col.startswith("score"):
        raise ValueError(f"{outcome_col!r} is a score or signal, not a realized outcome: the challenger "
                         "learns from realized purchases only")  # fmt: skip
    require_columns(training_frame, [*CHALLENGER_FEATURES, outcome_col], "training_frame")
    train = training_frame.filter(pl.col(outcome_col).is_not_null())
    y = train.get_column(outcome_col).cast(pl.Int64).to_numpy()
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"{outcome_col!r} must be 0/1")
    if len(np.unique(y)) < 2:
        raise ValueError(f"challenger needs both outcomes in {outcome_col!r}; got {np.unique(y).tolist()!r}")
    X = train.select([pl.col(c).cast(pl.Float64).fill_null(0.0) for c in CHALLENGER_FEATURES]).to_numpy()
    est = LogisticRegression(C=C, max_iter=1000, random_state=seed)
    est.fit(X, y)
    return ChallengerModel(
        estimator=est, features=CHALLENGER_FEATURES, outcome_col=outcome_col,
        coef={f: float(c) for f, c in zip(CHALLENGER_FEATURES, est.coef_[0])}, intercept=float(est.intercept_[0]),
        n_train=int(len(y)), n_positive=int(y.sum()), seed=int(seed), training_cutoff=training_cutoff,
    )  # fmt: skip


def score_challenger(model: ChallengerModel, frame: pl.DataFrame, *, cutoff: dt.date | None = None) -> pl.Series:
    """P(buy) from the challenger for each row of `frame` (Series `score_challenger`, same order).
    Refuses (ValueError) when `cutoff` is given and the model was trained at or after it."""
    if cutoff is not None and model.training_cutoff is not None and model.training_cutoff >= cutoff:
        raise ValueError(f"challenger trained at {model.training_cutoff} cannot score cutoff {cutoff}: "
                         "it must come from an earlier cutoff")  # fmt: skip
    require_columns(frame, model.features, "frame")
    if frame.height == 0:
        return pl.Series("score_challenger", [], dtype=pl.Float64)
    X = frame.select([pl.col(c).cast(pl.Float64).fill_null(0.0) for c in model.features]).to_numpy()
    return pl.Series("score_challenger", model.estimator.predict_proba(X)[:, 1], dtype=pl.Float64)


# ---------------------------------------------------------------------------------------------------
# shadow mode: legacy heuristic and overlap report
# ---------------------------------------------------------------------------------------------------
def legacy_heuristic(
    candidates_frame: pl.DataFrame,
    customers_revenue: pl.DataFrame,
    recency: pl.DataFrame,
    *,
    half_life_days: float = LEGACY_HALF_LIFE_DAYS,
) -> pl.DataFrame:
    """The legacy list: legacy_score = max(revenue, 0) * 0.5 ** (recency_days / half_life_days)
    (`core.whitespace_signals.legacy_scores`, which also says what the inputs are).

    The heuristic ignores the division (as the legacy did). Adds `legacy_score` and `legacy_rank`
    (score desc, customer_id asc, division asc) and returns rows in legacy rank order.
    """
    out = legacy_scores(candidates_frame, customers_revenue, recency, half_life_days=half_life_days).sort(
        ["legacy_score", "customer_id", "division"], descending=[True, False, False], maintain_order=True)
    return out.with_columns(pl.int_range(1, out.height + 1, dtype=pl.Int64).alias("legacy_rank"))


def shadow_report(
    champion: pl.DataFrame,
    legacy: pl.DataFrame,
    n: int,
    *,
    outcome_col: str = "bought_in_division",
) -> dict:
    """Overlap of the champion's top-n (by `rank`) and the legacy top-n (by `legacy_rank`), JSON-able:
    n, sizes, overlap, jaccard, only_champion, only_legacy, division shares of both lists, and when
    outcomes are known (from either frame): total_buyers, champion_buyers, legacy_buyers, wins (buyers
    only in the champion list), losses (buyers only in the legacy list), shared_buyers."""
    a = _top_pairs(champion, n, rank_col="rank" if "rank" in champion.columns else None)
    b = _top_pairs(legacy, n, rank_col="legacy_rank" if "legacy_rank" in legacy.columns else None)
    union = a | b
    report: dict[str, Any] = {
        "n": int(n), "champion_size": len(a), "legacy_size": len(b), "overlap": len(a & b),
        "jaccard": 1.0 if not union else len(a & b) / len(union),
        "only_champion": len(a - b), "only_legacy": len(b - a),
        "division_share_champion": _division_shares(a), "division_share_legacy": _division_shares(b),
    }  # fmt: skip
    outcomes: dict[tuple[str, str], int] = {}
    for f in (legacy, champion):  # champion last: its outcome wins on conflicts (there should be none)
        if outcomes_known(f, outcome_col):
            for c, d, y in f.select(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String),
                                    pl.col(outcome_col).fill_null(0).cast(pl.Int64)).iter_rows():  # fmt: skip
                outcomes[(c, d)] = int(y)
    report["outcomes_known"] = bool(outcomes)
    if outcomes:
        buyers = {k for k, v in outcomes.items() if v == 1}
        report.update({
            "total_buyers": len(buyers), "champion_buyers": len(a & buyers), "legacy_buyers": len(b & buyers),
            "wins": len((a - b) & buyers), "losses": len((b - a) & buyers), "shared_buyers": len(a & b & buyers),
        })  # fmt: skip
    return report


def _division_shares(pairs: set[tuple[str, str]]) -> dict[str, float]:
    if not pairs:
        return {}
    counts: dict[str, int] = {}
    for _, d in pairs:
        counts[d] = counts.get(d, 0) + 1
    return {d: counts[d] / len(pairs) for d in sorted(counts)}
