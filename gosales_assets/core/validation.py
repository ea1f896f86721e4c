"""Forward validation: scores published at cutoff C against what happened in (C, C+W] (pure numpy / polars).

Inputs follow `gosales_assets.core.metrics`: `y` 0/1 labels observed in the window, `p` the calibrated
scores published at C, `revenue` (optional) the realized net revenue in the window. Rankings are by score
descending with stable ties, and "top k%" is ceil(n * k / 100) rows, exactly as in `metrics`.

- `validation_metrics`: the headline metrics (`metric_summary`).
- `topk_scenarios`: for each capacity k%, how many customers would be contacted, how many buyers the
  calibrated scores promised (Σ p of the contacted) and how many / how much revenue actually came.
- `segment_performance`: lift@10 and calibration MAE per segment (industry / region / size …), flagging a
  segment whose lift is far below the overall lift or whose calibration is far worse than overall.
- `engine_vs_peers`: the engine and every simple peer (`core.peers`) on the same rows — AUC, lift@10 %, capture@10 %
  — with the paired bootstrap interval of AUC(engine) − AUC(best peer), the best peer being the one chosen before
  the window (by the model's cross-validation, or the configured default), not the best in hindsight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from gosales_assets.core.metrics import (
    DEFAULT_KS,
    _as_p,
    _check,
    calibration_mae,
    lift_at_k,
    metric_summary,
    rank_order,
    roc_auc,
    top_count,
)
from gosales_assets.core.peers import PEERS, paired_auc_difference

__all__ = [
    "validation_metrics",
    "topk_scenarios",
    "segment_performance",
    "capture_at",
    "ranking_metrics",
    "engine_vs_peers",
    "ENGINE",
    "RANKING_METRICS",
    "DEFAULT_CAPACITY_PCTS",
    "MISSING_SEGMENT",
]

DEFAULT_CAPACITY_PCTS: tuple[float, ...] = (1.0, 5.0, 10.0, 20.0)
MISSING_SEGMENT = "(missing)"

TOPK_SCHEMA = {
    "capacity_pct": pl.Float64,
    "contacted": pl.Int64,
    "expected_buyers": pl.Float64,
    "realized_buyers": pl.Int64,
    "realized_revenue": pl.Float64,
}

SEGMENT_SCHEMA = {
    "segment_col": pl.String,
    "segment": pl.String,
    "rows": pl.Int64,
    "positives": pl.Int64,
    "base_rate": pl.Float64,
    "lift_at_10": pl.Float64,
    "cal_mae": pl.Float64,
    "flag": pl.Boolean,
    "reason": pl.String,
}


def validation_metrics(y, p, revenue=None, ks: Sequence[float] = DEFAULT_KS, n_bins: int = 10) -> dict:
    """`metric_summary` of the forward window (auc, pr_auc, brier, lift_at_<k>, rev_lift_at_<k>, cal_mae,
    base_rate, n, positives); JSON-friendly, None where undefined."""
    return metric_summary(y, p, revenue, ks=ks, n_bins=n_bins)


def topk_scenarios(y, p, revenue=None, pcts: Sequence[float] = DEFAULT_CAPACITY_PCTS) -> pl.DataFrame:
    """One row per capacity k% (in the given order).

    contacted = ceil(n * k / 100) top-scored rows (stable ties); expected_buyers = Σ p over them;
    realized_buyers = Σ y over them; realized_revenue = Σ max(revenue, 0) over the contacted rows with
    y = 1 (the realized-revenue convention of `metrics`), null without revenue."""
    ya, pa = _check(y, p)
    rev = None if revenue is None else _as_p(revenue, ya.shape[0], "revenue")
    realized = None if rev is None else np.where(ya == 1, np.maximum(rev, 0.0), 0.0)
    order = rank_order(pa)
    rows = []
    for k in pcts:
        m = top_count(ya.size, k)
        top = order[:m]
        rows.append({
            "capacity_pct": float(k),
            "contacted": int(m),
            "expected_buyers": float(pa[top].sum()),
            "realized_buyers": int(ya[top].sum()),
            "realized_revenue": None if realized is None else float(realized[top].sum()),
        })
    return pl.DataFrame(rows, schema=TOPK_SCHEMA)


def segment_performance(
    frame: pl.DataFrame,
    segment_cols: Sequence[str],
    min_rows: int = 50,
    lift_tolerance: float = 0.5,
    cal_tolerance: float = 0.1,
    *,
    y_col: str = "y",
    p_col: str = "p",
    n_bins: int = 10,
) -> pl.DataFrame:
    """Lift@10 and calibration MAE per segment, with a flag where a segment is far off the overall model.

    For each column in `segment_cols` and each of its values (null shown as "(missing)", values as strings,
    sorted), on the segment's own rows: rows, positives, base_rate, lift_at_10 (top 10% of the segment vs
    the segment's base rate; null without positives) and cal_mae (`n_bins` equal-width bins).

    flag = True when the segment has at least `min_rows` rows and
      - lift_at_10 / overall lift_at_10 < lift_tolerance (overall = the same metric on the whole frame), or
      - cal_mae − overall cal_mae > cal_tolerance.
    `reason` states why (several reasons joined by "; "), "too small (…)" for segments under `min_rows`
    (reported, never flagged) and "" for healthy segments.
    """
    missing = [c for c in (y_col, p_col, *segment_cols) if c not in frame.columns]
    if missing:
        raise ValueError(f"segment_performance: frame lacks columns {missing}")
    y_all = frame[y_col].to_numpy()
    p_all = frame[p_col].cast(pl.Float64).to_numpy()
    overall_lift = lift_at_k(y_all, p_all, 10.0)
    overall_cal = calibration_mae(y_all, p_all, n_bins)

    rows = []
    for col in segment_cols:
        labels = frame[col].cast(pl.String, strict=False).fill_null(MISSING_SEGMENT)
        keys = labels.to_numpy()
        for seg in sorted(set(labels.to_list())):
            mask = keys == seg
            ys, ps = y_all[mask], p_all[mask]
            n = int(mask.sum())
            pos = int(ys.sum())
            lift = lift_at_k(ys, ps, 10.0)
            cal = calibration_mae(ys, ps, n_bins)
            reasons: list[str] = []
            flag = False
            if n < min_rows:
                reasons.append(f"too small ({n} rows < min_rows {min_rows}); not flagged")
            else:
                if lift is None:
                    if pos == 0:
                        reasons.append("no positives: lift undefined")
                elif overall_lift:
                    ratio = lift / overall_lift
                    if ratio < lift_tolerance:
                        flag = True
                        reasons.append(f"lift@10 {lift:.3g} is {ratio:.2f}× overall {overall_lift:.3g} "
                                       f"(< {lift_tolerance:g})")
                if cal is not None and overall_cal is not None and cal - overall_cal > cal_tolerance:
                    flag = True
                    reasons.append(f"calibration MAE {cal:.3g} exceeds overall {overall_cal:.3g} "
                                   f"by more than {cal_tolerance:g}")
            rows.append({
                "segment_col": col,
                "segment": seg,
                "rows": n,
                "positives": pos,
                "base_rate": pos / n if n else None,
                "lift_at_10": lift,
                "cal_mae": cal,
                "flag": flag,
                "reason": "; ".join(reasons),
            })
    return pl.DataFrame(rows, schema=SEGMENT_SCHEMA)


# ---- the engine beside the simple peers ---------------------------------------------------------------------------
ENGINE = "engine"
RANKING_METRICS = ("auc", "lift_at_10", "capture_at_10")
ORDERINGS_SCHEMA = {"ordering": pl.String, "rows": pl.Int64, "positives": pl.Int64, "auc": pl.Float64,
                    "lift_at_10": pl.Float64, "capture_at_10": pl.Float64, "best_peer": pl.Boolean}


def capture_at(y, p, k_pct: float = 10.0) -> float | None:
    """Share of all positives found in the top ceil(n * k / 100) rows by score (stable ties); None without
    positives."""
    ya, pa = _check(y, p)
    total = int(ya.sum())
    if total == 0:
        return None
    top = rank_order(pa)[:top_count(ya.size, k_pct)]
    return float(ya[top].sum()) / total


def ranking_metrics(y, score) -> dict[str, float | None]:
    """AUC, lift@10 % and capture@10 % of one ordering (all None when there is no ordering)."""
    if score is None:
        return dict.fromkeys(RANKING_METRICS)
    return {"auc": roc_auc(y, score), "lift_at_10": lift_at_k(y, score, 10.0), "capture_at_10": capture_at(y, score)}


def engine_vs_peers(y, engine, peers: dict[str, np.ndarray | None], best_peer: str, *, n_boot: int | None = None,
                    seed: int = 0) -> dict:
    """The engine's (None: nothing published) and every peer's ranking metrics on the same rows, and
    AUC(engine) − AUC(`best_peer`) with its 95 % paired interval (`core.peers.paired_auc_difference`: DeLong's, or
    a bootstrap of `n_boot` resamples;
    None when the engine or that peer has no scores or the rows have one class). `peers`: name -> scores where a
    missing score ranks last (`core.peers.peer_values`), or None for a peer without scores.

    Returns `orderings` (a frame, one row per ordering: the engine first, then `PEERS`) and JSON-able values:
    `<peer>_<metric>` for every peer and metric, `best_peer`, `best_peer_<metric>`, `auc_vs_best_peer`,
    `auc_vs_best_peer_low` / `_high`, and `best_peer_forward` (the peer with the highest AUC on these rows: shown,
    never used for the interval, which would favour the peers by choosing in hindsight)."""
    ya = np.asarray(y).astype(int)
    rows = []
    out: dict = {}
    for name, score in [(ENGINE, engine), *((p, peers.get(p)) for p in PEERS)]:
        m = ranking_metrics(ya, score)
        rows.append({"ordering": name, "rows": int(ya.size), "positives": int(ya.sum()), **m,
                     "best_peer": name == best_peer})
        if name != ENGINE:
            out |= {f"{name}_{k}": v for k, v in m.items()}
    out |= {"best_peer": best_peer, **{f"best_peer_{k}": out.get(f"{best_peer}_{k}") for k in RANKING_METRICS}}
    known = {p: out[f"{p}_auc"] for p in PEERS if out.get(f"{p}_auc") is not None}
    out["best_peer_forward"] = max(sorted(known), key=lambda k: known[k]) if known else None
    diff = lo = hi = None
    if engine is not None and peers.get(best_peer) is not None:
        diff, lo, hi = paired_auc_difference(ya, np.asarray(engine, dtype=float), peers[best_peer], n_boot=n_boot,
                                             seed=seed)
    out |= {"auc_vs_best_peer": diff, "auc_vs_best_peer_low": lo, "auc_vs_best_peer_high": hi,
            "orderings": pl.DataFrame(rows, schema=ORDERINGS_SCHEMA)}
    return out
