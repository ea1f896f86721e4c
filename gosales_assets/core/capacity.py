"""Capacity: which ranked (and gated) whitespace pairs go to outreach (`select_capacity`, with the diversification
guard), their plan per rep × division (`capacity_summary`), and the capacity grid of the plain ranking."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from gosales_assets.core.pair_frames import outcomes_known
from gosales_assets.core.ranking import sort_ranked

__all__ = ["UNASSIGNED_REP", "capacity_count", "division_cap", "select_capacity", "capacity_summary",
           "capacity_grid"]

_logger = logging.getLogger(__name__)

UNASSIGNED_REP = "unassigned"


def capacity_count(n_rows: int, pct: float) -> int:
    """ceil(pct% of n_rows), robust to float noise (30% of 10 rows = 3)."""
    if n_rows <= 0 or pct <= 0:
        return 0
    return min(n_rows, math.ceil(round(pct * n_rows / 100.0, 9)))


def division_cap(n_selected: int, max_division_share: float) -> int:
    """Most rows one division may take out of `n_selected`: floor(share * N), at least 1."""
    if max_division_share >= 1.0:
        return n_selected
    return max(1, math.floor(max_division_share * n_selected + 1e-9))


def _in_rank_order(frame: pl.DataFrame) -> pl.DataFrame:
    if "rank" in frame.columns:
        return frame.sort("rank", maintain_order=True)
    return sort_ranked(frame)


def select_capacity(
    ranked: pl.DataFrame,
    mode: Literal["top_percent", "per_rep", "hybrid"],
    top_percent: float,
    per_rep_quota: int,
    max_division_share: float,
    *,
    log: list[dict] | None = None,
) -> pl.DataFrame:
    """Rows selected for outreach, with `capacity_rep` (rep_id, or "unassigned" when null/absent) and
    `selection_order` (1..n), sorted by selection_order.

    - `top_percent`: target N = ceil(top_percent% of rows); rows taken in rank order.
    - `per_rep`: each rep's (and the unassigned pool's) best `per_rep_quota` rows in rank order;
      N = sum over reps of min(quota, rep rows).
    - `hybrid`: N = ceil(top_percent% of rows); round-robin over reps (rep order = rank of each rep's
      best row), each turn taking the rep's next best row, until N rows are selected or reps run out.

    Diversification guard (all modes): no division gets more than `division_cap(N, max_division_share)`
    rows; a row of a capped division is skipped and the next best row (of another division) is taken.
    If the other divisions run out, the selection stays SHORT of N rather than break the cap (a
    `capacity_shortfall` event is logged).
    """
    if mode not in ("top_percent", "per_rep", "hybrid"):
        raise ValueError(f"unknown capacity mode {mode!r}")
    ordered = _in_rank_order(ranked)
    rep_expr = (
        pl.col("rep_id").cast(pl.String).fill_null(UNASSIGNED_REP) if "rep_id" in ordered.columns
        else pl.lit(UNASSIGNED_REP)
    )  # fmt: skip
    ordered = ordered.with_columns(rep_expr.alias("capacity_rep"))
    n_rows = ordered.height
    divs = ordered.get_column("division").cast(pl.String).to_list()
    reps = ordered.get_column("capacity_rep").to_list()
    div_index = {d: i for i, d in enumerate(sorted(set(divs)))}
    dcode = np.fromiter((div_index[d] for d in divs), dtype=np.int64, count=n_rows)
    div_count = np.zeros(len(div_index), dtype=np.int64)
    chosen: list[int] = []
    skipped = 0

    if mode == "per_rep":
        rep_rows: dict[str, int] = {}
        for r in reps:
            rep_rows[r] = rep_rows.get(r, 0) + 1
        target = sum(min(per_rep_quota, c) for c in rep_rows.values())
    else:
        target = capacity_count(n_rows, top_percent)
    cap = division_cap(target, max_division_share)

    if mode == "top_percent":
        for i in range(n_rows):
            if len(chosen) >= target:
                break
            if div_count[dcode[i]] >= cap:
                skipped += 1
                continue
            div_count[dcode[i]] += 1
            chosen.append(i)
    elif mode == "per_rep":
        rep_count: dict[str, int] = {}
        for i in range(n_rows):
            if len(chosen) >= target:
                break
            r = reps[i]
            if rep_count.get(r, 0) >= per_rep_quota:
                continue
            if div_count[dcode[i]] >= cap:
                skipped += 1
                continue
            div_count[dcode[i]] += 1
            rep_count[r] = rep_count.get(r, 0) + 1
            chosen.append(i)
    else:  # hybrid
        queues: dict[str, list[int]] = {}
        for i, r in enumerate(reps):
            queues.setdefault(r, []).append(i)  # insertion order = order of each rep's best row
        pos = {r: 0 for r in queues}
        active = list(queues)
        while len(chosen) < target and active:
            still = []
            for r in active:
                if len(chosen) >= target:
                    still.append(r)
                    continue
                q, p = queues[r], pos[r]
                while p < len(q) and div_count[dcode[q[p]]] >= cap:
                    p += 1
                    skipped += 1
                if p < len(q):
                    i = q[p]
                    div_count[dcode[i]] += 1
                    chosen.append(i)
                    p += 1
                pos[r] = p
                if p < len(q):
                    still.append(r)
            active = still

    selected = ordered[chosen] if chosen else ordered.head(0)
    selected = selected.with_columns(pl.int_range(1, selected.height + 1, dtype=pl.Int64).alias("selection_order"))
    event = {"event": "capacity", "mode": mode, "rows": n_rows, "target": target, "selected": selected.height,
             "division_cap": cap, "skipped_for_division_cap": skipped}  # fmt: skip
    if selected.height < target:
        _logger.warning("capacity %s: selected %d of %d rows (division cap %d)", mode, selected.height, target, cap)
    if log is not None:
        log.append(event)
        if selected.height < target:
            log.append({"event": "capacity_shortfall", "mode": mode, "target": target, "selected": selected.height,
                        "reason": f"diversification guard: no division may exceed {cap} rows and the other "
                                  "divisions have no more eligible rows"})  # fmt: skip
    return selected


def capacity_summary(selected: pl.DataFrame) -> pl.DataFrame:
    """Per rep x division: rows, mean_score, expected_buyers (sum p_icp), ev_sum. `rep_id` is
    "unassigned" for the pool without a rep. Sorted by rep_id, division."""
    rep = (
        pl.col("capacity_rep") if "capacity_rep" in selected.columns
        else (pl.col("rep_id").cast(pl.String).fill_null(UNASSIGNED_REP) if "rep_id" in selected.columns
              else pl.lit(UNASSIGNED_REP))
    )  # fmt: skip
    schema = {"rep_id": pl.String, "division": pl.String, "rows": pl.Int64, "mean_score": pl.Float64,
              "expected_buyers": pl.Float64, "ev_sum": pl.Float64}  # fmt: skip
    if selected.height == 0:
        return pl.DataFrame(schema=schema)
    return (
        selected.with_columns(rep.alias("_rep"))
        .sort("_rep", "division", "rank" if "rank" in selected.columns else "customer_id")
        .group_by("_rep", "division", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("rows"),
            pl.col("score").mean().alias("mean_score"),
            pl.col("p_icp").sum().alias("expected_buyers"),
            pl.col("EV").sum().alias("ev_sum"),
        )
        .rename({"_rep": "rep_id"})
        .cast(schema)  # type: ignore[arg-type]
        .sort("rep_id", "division")
    )


def capacity_grid(
    ranked: pl.DataFrame, pcts: Sequence[float], outcome_col: str = "bought_in_division"
) -> pl.DataFrame:
    """Per capacity %: n_selected (= ceil(pct% of rows)), score_threshold (score of the last selected
    row), expected_buyers (sum p_icp), realized_buyers and capture (share of all realized buyers in the
    selection) when outcomes are known (else null). No diversification here: the plain ranking."""
    ordered = _in_rank_order(ranked)
    known = outcomes_known(ordered, outcome_col)
    y = ordered.get_column(outcome_col).fill_null(0).cast(pl.Int64).to_numpy() if known else None
    total = int(y.sum()) if y is not None else None
    scores = ordered.get_column("score").to_numpy() if ordered.height else np.array([])
    p = ordered.get_column("p_icp").to_numpy() if ordered.height else np.array([])
    rows = []
    for pct in pcts:
        n = capacity_count(ordered.height, float(pct))
        realized = int(y[:n].sum()) if y is not None else None
        rows.append({
            "capacity_pct": float(pct), "n_selected": n,
            "score_threshold": float(scores[n - 1]) if n > 0 else None,
            "expected_buyers": float(p[:n].sum()) if n > 0 else 0.0,
            "realized_buyers": realized,
            "capture": (realized / total) if (realized is not None and total) else None,
        })  # fmt: skip
    schema = {"capacity_pct": pl.Float64, "n_selected": pl.Int64, "score_threshold": pl.Float64,
              "expected_buyers": pl.Float64, "realized_buyers": pl.Int64, "capture": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
