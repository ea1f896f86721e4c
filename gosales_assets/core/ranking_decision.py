"""Which ordering of the whitespace pairs the reps see (the champion), decided by closed windows (pure polars/numpy).

Every cutoff's list keeps each ordering's score on its model rows (`core.ranking`: `score_blend`, `score_p_icp`,
`score_expected_value`, `score_legacy`). At cutoff C an earlier list at C' is a **window** for the divisions whose
label window has closed by C (C' + W_d ≤ C, W_d the division's configured label window). What happened in it is
computed from the fact lines dated ≤ C only, with the label rules (`realized_outcomes`): per listed pair, the net
revenue of the division in (C', C' + W_d] without denylisted SKUs; a purchase (`realized` 1) when it is above
`min_net_revenue`, and then `realized_revenue` is that net revenue (0 otherwise).

capture@K% (`window_captures`): each ordering sorts the window's model rows (`core.ranking.sort_ranked` on its
score: the list's own tie-break chain; `first_rows_by` finds the same first rows with fewer sorts) and takes the top
ceil(K% of rows); by count it captures the share of the window's realized purchases found there, by revenue the share
of their realized revenue. Peer-ordered rows are not judged (no ordering of the champion applies to them).

The decision (`decide`): the champion before is the previous decision's (or the configured initial champion). The
last N windows with a realized purchase are compared: for each challenger, the mean over those windows of its
capture minus the champion's (each window weighs the same), with a paired bootstrap interval: the customers with a
realized purchase are resampled with replacement (a customer's pairs stay together, and so do its purchases in
overlapping windows; every ordering is judged on the same draw), pooled over the N windows, seeded. The champion
changes only when a competing challenger's interval lies entirely above 0 (among several, the largest mean
difference wins; ties: config order). Fewer than N windows keep it ("kept: only k closed windows of N"), as does a
challenger whose interval includes 0. A champion pinned in the config is kept whatever the evidence; the evaluation
is recorded all the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandera.polars as pa
import polars as pl

from gosales_assets.core.calendar import window_end
from gosales_assets.core.capacity import capacity_count
from gosales_assets.core.checksum import from_cents, to_cents
from gosales_assets.core.pair_frames import PAIR_KEYS, require_columns
from gosales_assets.core.ranking import MODEL_SOURCE, ORDERING_COLUMNS, ORDERINGS, first_rows_by
from gosales_assets.settings import RankingSettings

__all__ = [
    "OBJECTIVE_COLUMNS",
    "LIST_COLUMNS",
    "WINDOW_COLUMNS",
    "DECISION_COLUMNS",
    "RankingDecision",
    "WindowEvidence",
    "window_rows",
    "realized_outcomes",
    "window_captures",
    "paired_bootstrap",
    "decide",
    "decision_frame",
    "decision_schema",
]

# capture column and realized value column of each objective
OBJECTIVE_COLUMNS = {"count": ("capture_count", "realized"), "revenue": ("capture_revenue", "realized_revenue")}
# what a window's row of a list needs: the pair, every ordering's score and the tie-break chain
LIST_COLUMNS = ("customer_id", "division", "p_icp", "EV", "last_activity_date", *ORDERING_COLUMNS.values())
WINDOW_COLUMNS = ("window_cutoff", "ordering", "divisions", "pairs", "top_n", "purchases", "revenue",
                  "captured_purchases", "captured_revenue", "capture_count", "capture_revenue")
DECISION_COLUMNS = ("cutoff_date", "ordering", "role", "champion_before", "champion", "changed", "reason",
                    "objective", "k_pct", "windows_required", "windows_used", "window_cutoffs", "capture_count",
                    "capture_revenue", "diff_vs_champion", "ci_low", "ci_high", "run_id")


# ---------------------------------------------------------------------------------------------------
# the windows and what happened in them
# ---------------------------------------------------------------------------------------------------
def window_rows(lists: pl.DataFrame, *, as_of: dt.date, window_months: Mapping[str, int]
                ) -> tuple[pl.DataFrame, list[dict]]:
    """The rows of earlier lists that can be judged at `as_of`: model rows (a frame without `score_source` is all
    model rows) of lists dated before `as_of` whose division's window closed by then (C' + W_d ≤ as_of), from lists
    that stored every ordering's score. `lists`: `cutoff_date` + `LIST_COLUMNS` (+ others, dropped).

    Returns (rows with `window_cutoff`, `window_end` and `LIST_COLUMNS`, notes on lists left out and why)."""
    notes: list[dict] = []
    schema = {"window_cutoff": pl.Date, "window_end": pl.Date, "customer_id": pl.String, "division": pl.String,
              "p_icp": pl.Float64, "EV": pl.Float64, "last_activity_date": pl.Date,
              **dict.fromkeys(ORDERING_COLUMNS.values(), pl.Float64)}
    empty = pl.DataFrame(schema=schema)
    if lists.height == 0:
        return empty, notes
    require_columns(lists, ["cutoff_date", "customer_id", "division"], "lists")
    missing = [c for c in LIST_COLUMNS if c not in lists.columns]
    if missing:
        for c in sorted(set(lists.get_column("cutoff_date").to_list())):
            notes.append({"window_cutoff": str(c), "left_out": f"written before the orderings were stored "
                                                              f"(no {', '.join(missing)})"})
        return empty, notes
    rows = lists.filter(pl.col("cutoff_date") < as_of)
    if "score_source" in rows.columns:
        rows = rows.filter(pl.col("score_source").fill_null(MODEL_SOURCE) == MODEL_SOURCE)
    windows = rows.select("cutoff_date", "division").unique()
    ends = pl.DataFrame(
        [(c, d, window_end(c, int(window_months[d])) if d in window_months else None)
         for c, d in windows.sort("cutoff_date", "division").iter_rows()],
        schema={"cutoff_date": pl.Date, "division": pl.String, "window_end": pl.Date}, orient="row")
    rows = (rows.join(ends, on=["cutoff_date", "division"], how="left", maintain_order="left")
            .filter(pl.col("window_end").is_not_null() & (pl.col("window_end") <= as_of)))
    # A list written before its orderings were stored has them null (the table gained the columns later).
    incomplete = (rows.group_by("cutoff_date")
                  .agg(*(pl.col(c).is_null().all().alias(c) for c in ORDERING_COLUMNS.values()))
                  .sort("cutoff_date"))
    dropped = []
    for rec in incomplete.iter_rows(named=True):
        absent = [c for c in ORDERING_COLUMNS.values() if rec[c]]
        if absent:
            dropped.append(rec["cutoff_date"])
            notes.append({"window_cutoff": str(rec["cutoff_date"]),
                          "left_out": f"written before the orderings were stored ({', '.join(absent)} empty)"})
    rows = rows.filter(~pl.col("cutoff_date").is_in(dropped))
    out = rows.select(pl.col("cutoff_date").alias("window_cutoff"), "window_end",
                      *(pl.col(c).cast(schema[c]) for c in LIST_COLUMNS))
    return out.sort("window_cutoff", "division", "customer_id"), notes


def realized_outcomes(rows: pl.DataFrame, fact: pl.DataFrame, *, as_of: dt.date, min_net_revenue: float = 0.0,
                      sku_denylist: Sequence[str] = ()) -> pl.DataFrame:
    """`rows` (from `window_rows`: `window_cutoff`, `window_end`, the pair) with `realized` (Int8 0/1) and
    `realized_revenue` (the net revenue of a realized purchase, else 0), from the fact lines dated ≤ `as_of` only
    (lines after it are ignored even when passed) with the label rules: the division's net revenue in
    (window_cutoff, window_end], denylisted SKUs excluded, a purchase when above `min_net_revenue`."""
    require_columns(rows, ["window_cutoff", "window_end", *PAIR_KEYS], "rows")
    require_columns(fact, ["invoice_date", "customer_id", "division", "sku", "revenue"], "fact")
    if rows.height and rows.get_column("window_end").max() > as_of:
        raise ValueError(f"a window ends after {as_of}: its outcome is not known yet")
    windows = rows.select("window_cutoff", "window_end", "division").unique()
    if rows.height == 0:
        return rows.with_columns(pl.lit(0, dtype=pl.Int8).alias("realized"), pl.lit(0.0).alias("realized_revenue"))
    first, last = rows.get_column("window_cutoff").min(), rows.get_column("window_end").max()
    # Windows are month-end aligned, so a line is in (C', C' + W] exactly when its month is: summing the listed
    # pairs' lines per month first keeps the join with the windows small (exact integer cents throughout).
    monthly = (fact.filter((pl.col("invoice_date") > first) & (pl.col("invoice_date") <= min(last, as_of))
                           & ~pl.col("sku").is_in(list(sku_denylist)))
               .select(pl.col("customer_id").cast(pl.String), pl.col("division").cast(pl.String),
                       pl.col("invoice_date").dt.month_end().alias("_month"), to_cents(pl.col("revenue")).alias("_c"))
               .join(rows.select(PAIR_KEYS).unique(), on=PAIR_KEYS, how="semi")
               .group_by("customer_id", "division", "_month").agg(pl.col("_c").sum()))
    net = (monthly.join(windows, on="division", how="inner")
           .filter((pl.col("_month") > pl.col("window_cutoff")) & (pl.col("_month") <= pl.col("window_end")))
           .group_by("window_cutoff", "customer_id", "division")
           .agg(pl.col("_c").sum().alias("_cents")))
    out = rows.join(net, on=["window_cutoff", *PAIR_KEYS], how="left", maintain_order="left")
    revenue = from_cents(pl.col("_cents").fill_null(0))
    bought = revenue > float(min_net_revenue)
    return out.with_columns(bought.cast(pl.Int8).alias("realized"),
                            pl.when(bought).then(revenue).otherwise(0.0).alias("realized_revenue")).drop("_cents")


# ---------------------------------------------------------------------------------------------------
# capture per ordering
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowEvidence:
    """One window's buyers for the bootstrap: per customer with a realized purchase, the realized purchases and
    revenue (`total`) and, per ordering, those found in its top K% (`captured`), by objective."""
    window_cutoff: dt.date
    customers: list[str]
    total: dict[str, np.ndarray]  # objective -> per customer
    captured: dict[str, dict[str, np.ndarray]]  # objective -> ordering -> per customer


def window_captures(outcomes: pl.DataFrame, k_pct: float, orderings: Sequence[str] = ORDERINGS
                    ) -> tuple[pl.DataFrame, list[WindowEvidence]]:
    """capture@K% by count and by revenue of each ordering in each window of `outcomes` (`realized_outcomes`
    output). Returns (one row per window × ordering with `WINDOW_COLUMNS`, the windows' `WindowEvidence`), windows in
    date order. capture is null in a window without a realized purchase."""
    schema = {"window_cutoff": pl.Date, "ordering": pl.String, "divisions": pl.String, "pairs": pl.Int64,
              "top_n": pl.Int64, "purchases": pl.Int64, "revenue": pl.Float64, "captured_purchases": pl.Int64,
              "captured_revenue": pl.Float64, "capture_count": pl.Float64, "capture_revenue": pl.Float64}
    table, evidence = [], []
    for (cutoff,), rows in sorted(outcomes.partition_by("window_cutoff", as_dict=True, maintain_order=True).items()):
        n = capacity_count(rows.height, k_pct)
        first = first_rows_by(rows, [ORDERING_COLUMNS[o] for o in orderings], n)
        rows = rows.with_columns(first[ORDERING_COLUMNS[o]].alias(f"_top_{o}") for o in orderings)
        purchases, revenue = int(rows.get_column("realized").sum()), float(rows.get_column("realized_revenue").sum())
        divisions = ", ".join(sorted(rows.get_column("division").unique().to_list()))
        for o in orderings:
            top = rows.filter(pl.col(f"_top_{o}"))
            got, got_rev = int(top.get_column("realized").sum()), float(top.get_column("realized_revenue").sum())
            table.append({"window_cutoff": cutoff, "ordering": o, "divisions": divisions, "pairs": rows.height,
                          "top_n": n, "purchases": purchases, "revenue": revenue, "captured_purchases": got,
                          "captured_revenue": got_rev, "capture_count": got / purchases if purchases else None,
                          "capture_revenue": got_rev / revenue if revenue > 0 else None})
        buyers = (rows.filter(pl.col("realized") == 1)
                  .group_by("customer_id")
                  .agg(pl.col("realized").cast(pl.Int64).sum().alias("count"), pl.col("realized_revenue").sum()
                       .alias("revenue"),
                       *(pl.col("realized").filter(pl.col(f"_top_{o}")).cast(pl.Int64).sum().alias(f"count_{o}")
                         for o in orderings),
                       *(pl.col("realized_revenue").filter(pl.col(f"_top_{o}")).sum().alias(f"revenue_{o}")
                         for o in orderings))
                  .sort("customer_id"))
        if buyers.height:
            evidence.append(WindowEvidence(
                window_cutoff=cutoff, customers=buyers.get_column("customer_id").to_list(),
                total={obj: buyers.get_column(obj).cast(pl.Float64).to_numpy() for obj in ("count", "revenue")},
                captured={obj: {o: buyers.get_column(f"{obj}_{o}").cast(pl.Float64).to_numpy() for o in orderings}
                          for obj in ("count", "revenue")}))
    frame = pl.DataFrame(table, schema=schema, orient="row") if table else pl.DataFrame(schema=schema)
    return frame, evidence


_DRAWS_PER_CHUNK = 250  # bootstrap draws generated at once (memory: draws × buyers)


def _resample_counts(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """`draws` bootstrap resamples of n customers, as counts (draws × n): how often each customer was drawn in each
    resample of n draws with replacement. The multinomial(n, uniform) distribution, counted from n uniform draws per
    resample: ~3x cheaper than `rng.multinomial`, which draws a binomial per customer (at 500,000 customers its
    2,000 resamples were ~6 s of a list's run)."""
    picks = rng.integers(0, n, size=(draws, n), dtype=np.int64)
    picks += (np.arange(draws, dtype=np.int64) * n)[:, None]  # resample r's customers at r·n ..
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n)


def paired_bootstrap(evidence: Sequence[WindowEvidence], champion: str, challengers: Sequence[str], *,
                     objective: str, reps: int, seed: int, confidence: float = 0.95) -> dict[str, dict]:
    """Per challenger: `diff` (mean over the windows of its capture minus the champion's) and the percentile
    interval (`ci_low`, `ci_high`) of the same statistic over `reps` paired resamples. A draw resamples, with
    replacement, the customers with a realized purchase in any of the windows, and a customer keeps its weight in
    every window it bought in: windows overlap when cutoffs are closer than the label window (quarterly cutoffs, a
    6-month window), and a purchase counted in two windows is one piece of evidence, not two. Every ordering is
    judged on the same draw; a window none of whose buyers was drawn sits that draw out. One seeded generator: the
    same evidence and seed give the same interval."""
    if not evidence:
        return {}
    orderings = (champion, *challengers)
    universe = sorted({c for w in evidence for c in w.customers})
    index = {c: i for i, c in enumerate(universe)}
    columns = [np.fromiter((index[c] for c in w.customers), dtype=np.int64, count=len(w.customers)) for w in evidence]
    observed = {o: float(np.mean([w.captured[objective][o].sum() / w.total[objective].sum() for w in evidence]))
                for o in orderings}
    rng = np.random.default_rng(seed)
    n = len(universe)
    boot = {o: np.empty(reps) for o in orderings}
    for start in range(0, reps, _DRAWS_PER_CHUNK):
        draws = min(_DRAWS_PER_CHUNK, reps - start)
        counts = _resample_counts(rng, n, draws)  # draws × customers
        captured = {o: np.zeros((draws, len(evidence))) for o in orderings}
        for j, (w, cols) in enumerate(zip(evidence, columns, strict=True)):
            weights = counts[:, cols].astype(np.float64)
            denominator = weights @ w.total[objective]
            with np.errstate(invalid="ignore", divide="ignore"):
                for o in orderings:
                    captured[o][:, j] = np.where(denominator > 0, (weights @ w.captured[objective][o]) / denominator,
                                                 np.nan)
        for o in orderings:
            boot[o][start:start + draws] = np.nanmean(captured[o], axis=1)
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for o in challengers:
        lo, hi = np.quantile(boot[o] - boot[champion], [alpha, 1.0 - alpha])
        out[o] = {"diff": observed[o] - observed[champion], "ci_low": float(lo), "ci_high": float(hi)}
    return out


# ---------------------------------------------------------------------------------------------------
# the decision
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankingDecision:
    cutoff: dt.date
    champion_before: str
    champion_before_source: str  # "previous decision at <date>" or "configured initial champion"
    champion: str
    changed: bool
    reason: str
    objective: str
    k_pct: float
    windows_required: int
    windows_used: list[dt.date]
    comparisons: dict[str, dict] = field(default_factory=dict)  # challenger -> diff, ci_low, ci_high
    mean_capture: dict[str, dict[str, float | None]] = field(default_factory=dict)  # ordering -> objective -> mean

    @property
    def capture_column(self) -> str:
        """The column of the window captures that holds the objective's capture."""
        return OBJECTIVE_COLUMNS[self.objective][0]

    def to_dict(self) -> dict:
        return {"cutoff": str(self.cutoff), "champion_before": self.champion_before,
                "champion_before_source": self.champion_before_source, "champion": self.champion,
                "changed": self.changed, "reason": self.reason, "objective": self.objective, "k_pct": self.k_pct,
                "windows_required": self.windows_required, "windows_used": [str(w) for w in self.windows_used],
                "comparisons": self.comparisons, "mean_capture": self.mean_capture}


def _fmt(c: dict) -> str:
    return f"{c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"


def decide(captures: pl.DataFrame, evidence: Sequence[WindowEvidence], *, cutoff: dt.date, champion_before: str,
           champion_before_source: str, settings: RankingSettings) -> RankingDecision:
    """The decision at `cutoff` from `window_captures` output (module docstring for the rule)."""
    rs = settings
    cap_col = OBJECTIVE_COLUMNS[rs.objective][0]
    usable = [w for w in evidence if w.total[rs.objective].sum() > 0]
    used = usable[-rs.windows:]
    used_dates = [w.window_cutoff for w in used]
    in_window = captures.filter(pl.col("window_cutoff").is_in(used_dates))
    orderings = captures.get_column("ordering").unique(maintain_order=True).to_list() or list(ORDERINGS)
    mean_capture = {o: {obj: (in_window.filter(pl.col("ordering") == o).get_column(col).mean() if used else None)
                        for obj, (col, _) in OBJECTIVE_COLUMNS.items()} for o in orderings}
    label = f"capture@{rs.k_pct:g}% by {rs.objective}"
    span = f"the last {len(used)} closed windows ({', '.join(str(d) for d in used_dates)})" if used \
        else "no closed window"

    def result(champion: str, reason: str, comparisons: dict) -> RankingDecision:
        return RankingDecision(cutoff=cutoff, champion_before=champion_before,
                               champion_before_source=champion_before_source, champion=champion,
                               changed=champion != champion_before, reason=reason, objective=rs.objective,
                               k_pct=rs.k_pct, windows_required=rs.windows, windows_used=used_dates,
                               comparisons=comparisons, mean_capture=mean_capture)

    # Every other ordering against the champion before, on the same draws (shadow and pinned cases included).
    others = [o for o in orderings if o != champion_before]
    comparisons = paired_bootstrap(used, champion_before, others, objective=rs.objective, reps=rs.bootstrap_reps,
                                   seed=rs.seed, confidence=rs.confidence) if champion_before in orderings else {}
    if rs.champion is not None:
        return result(rs.champion, f"pinned: whitespace.ranking.champion is {rs.champion} (the evidence is "
                                   f"recorded, not applied)", comparisons)
    if champion_before not in rs.competitors:
        return result(rs.initial_champion, f"reset: {champion_before} no longer competes "
                                           f"(whitespace.ranking.competitors); back to the initial champion "
                                           f"{rs.initial_champion}", comparisons)
    challengers = [o for o in rs.competitors if o != champion_before and o in comparisons]
    if len(used) < rs.windows:
        return result(champion_before, f"kept: only {len(used)} closed windows of {rs.windows}", comparisons)
    winners = [o for o in challengers if comparisons[o]["ci_low"] > 0]
    if winners:
        best = max(winners, key=lambda o: (comparisons[o]["diff"], -challengers.index(o)))
        return result(best, f"changed: {best} beat {champion_before} on {label} over {span}: "
                            f"{_fmt(comparisons[best])} ({rs.confidence:.0%} paired bootstrap, {rs.bootstrap_reps} "
                            f"draws)", comparisons)
    if not challengers:
        return result(champion_before, f"kept: no challenger competes with {champion_before}", comparisons)
    best = max(challengers, key=lambda o: (comparisons[o]["diff"], -challengers.index(o)))
    return result(champion_before, f"kept: no challenger beat {champion_before} on {label} over {span} with the "
                                   f"interval above 0 (closest: {best} {_fmt(comparisons[best])})", comparisons)


def decision_frame(decision: RankingDecision, *, run_id: str, competitors: Sequence[str],
                   orderings: Sequence[str] = ORDERINGS) -> pl.DataFrame:
    """The stored `ranking_decision` slice: one row per ordering (`DECISION_COLUMNS`) with its role (`champion`,
    `challenger` (competes), `shadow` (evaluated only)), the decision repeated on every row, the mean captures over
    the windows used and the difference from the champion before with its interval."""
    rows = []
    for o in orderings:
        role = "champion" if o == decision.champion else ("challenger" if o in competitors else "shadow")
        c = decision.comparisons.get(o, {})
        m = decision.mean_capture.get(o, {})
        rows.append({"cutoff_date": decision.cutoff, "ordering": o, "role": role,
                     "champion_before": decision.champion_before, "champion": decision.champion,
                     "changed": decision.changed, "reason": decision.reason, "objective": decision.objective,
                     "k_pct": float(decision.k_pct), "windows_required": decision.windows_required,
                     "windows_used": len(decision.windows_used),
                     "window_cutoffs": ", ".join(str(w) for w in decision.windows_used),
                     "capture_count": m.get("count"), "capture_revenue": m.get("revenue"),
                     "diff_vs_champion": c.get("diff"), "ci_low": c.get("ci_low"), "ci_high": c.get("ci_high"),
                     "run_id": run_id})
    schema = {"cutoff_date": pl.Date, "ordering": pl.String, "role": pl.String, "champion_before": pl.String,
              "champion": pl.String, "changed": pl.Boolean, "reason": pl.String, "objective": pl.String,
              "k_pct": pl.Float64, "windows_required": pl.Int64, "windows_used": pl.Int64,
              "window_cutoffs": pl.String, "capture_count": pl.Float64, "capture_revenue": pl.Float64,
              "diff_vs_champion": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "run_id": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _one_champion(data) -> pl.LazyFrame:
    """Exactly one champion row, and every row names that champion."""
    lf = data.lazyframe
    return lf.select(((pl.col("role") == "champion").sum() == 1)
                     & (pl.col("champion") == pl.col("ordering").filter(pl.col("role") == "champion").first())
                     .all()).select(pl.all().alias("ok"))


def decision_schema() -> pa.DataFrameSchema:
    """Contract of a `ranking_decision` slice."""
    unit = [pa.Check.in_range(0.0, 1.0)]
    diff = [pa.Check.in_range(-1.0, 1.0)]
    known = list(ORDERINGS)
    cols = {
        "cutoff_date": pa.Column(pl.Date), "ordering": pa.Column(pl.String, checks=[pa.Check.isin(known)]),
        "role": pa.Column(pl.String, checks=[pa.Check.isin(["champion", "challenger", "shadow"])]),
        "champion_before": pa.Column(pl.String, checks=[pa.Check.isin(known)]),
        "champion": pa.Column(pl.String, checks=[pa.Check.isin(known)]), "changed": pa.Column(pl.Boolean),
        "reason": pa.Column(pl.String, checks=[pa.Check.str_length(min_value=1)]),
        "objective": pa.Column(pl.String, checks=[pa.Check.isin(list(OBJECTIVE_COLUMNS))]),
        "k_pct": pa.Column(pl.Float64, checks=[pa.Check.in_range(0.0, 100.0, include_min=False)]),
        "windows_required": pa.Column(pl.Int64, checks=[pa.Check.ge(1)]),
        "windows_used": pa.Column(pl.Int64, checks=[pa.Check.ge(0)]), "window_cutoffs": pa.Column(pl.String),
        "capture_count": pa.Column(pl.Float64, nullable=True, checks=unit),
        "capture_revenue": pa.Column(pl.Float64, nullable=True, checks=unit),
        "diff_vs_champion": pa.Column(pl.Float64, nullable=True, checks=diff),
        "ci_low": pa.Column(pl.Float64, nullable=True, checks=diff),
        "ci_high": pa.Column(pl.Float64, nullable=True, checks=diff), "run_id": pa.Column(pl.String),
    }
    return pa.DataFrameSchema(cols, strict=True, unique=["cutoff_date", "ordering"], name="ranking_decision",
                              checks=[pa.Check(_one_champion, name="one_champion")])
