"""One cutoff's whitespace list, from plain inputs to plain results (no Dagster, no warehouse, no files written).

`build_whitespace` takes the cutoff's published `icp_scores`, the fact history and customers, the basket rules, the
ALS similarities, the eligibility rules, the previous list and (when the challenger is on) an earlier list with
realized outcomes, and returns a `WhitespaceBuild`: the four tables the `whitespace_ranking` asset stores
(`whitespace`, `whitespace_thresholds`, `capacity_summary`, `whitespace_metrics`), the files of
`<artifacts>/whitespace/<cutoff>/` (name -> content), the metrics and the decision log, and what its checks look
at. `empty_whitespace` is the same for a cutoff with no published division: empty slices and a metrics row that
says why. The asset and the benchmark's direct path both call these, so the list is assembled in one place.

Peer fallback (`settings.peer_fallback`, `fallback`): a division whose model is held or skipped at the cutoff is
listed too, ordered by its best simple peer (`core.ranking`: `score_source` `peer:<name>`, `p_icp` null, after every
model row). Those rows stay out of the capacity plan unless `settings.peer_fallback_in_capacity`; the capacity grid,
capture@K, the legacy shadow, the challenger, stability and the percentile-uniformity check are about the promoted
models' list and look at model rows only. So a cutoff where every division is promoted produces exactly the list it did before,
plus the `score_source` column.

Ordering (`ordering`): the list follows the cutoff's champion ordering (`core.ranking`: blend, p_icp,
expected_value or legacy; the `ranking_decision` asset chooses it from closed windows, the asset passes it in; None =
`settings.ranking.initial_champion`). Every model row keeps every ordering's score (`score_<ordering>`), so a later
cutoff can judge all of them on this list once its window has closed; `rank`, `score`, the capacity plan, the grid,
capture@K (the unsuffixed columns) and `nba_reason` follow the champion. The metrics name it (`ordering`).

Steps of `build_whitespace`, in order (the decision log records each): rank (`core.ranking.rank_whitespace`),
eligibility gates (`core.eligibility`), capacity selection (`core.capacity`), the challenger score when enabled
(`core.ranking_evaluation`: fitted on the earlier list's realized outcomes, never on its own scores), the capacity
grid and summary, the explanations, capture@K (blend, p_icp only, p_icp_pct only, legacy), the legacy shadow
report when enabled, stability against the previous list, the content checksum.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandera.polars as pa
import polars as pl

from gosales_assets.core.capacity import capacity_grid, capacity_summary, select_capacity
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.contracts import (
    ContractReport,
    capacity_grid_schema,
    capacity_summary_schema,
    check_contract,
    empty_frame,
    whitespace_metrics_schema,
    whitespace_schema,
)
from gosales_assets.core.eligibility import ELIGIBILITY_RULES, apply_eligibility
from gosales_assets.core.explain import check_reasons, explanation_frame
from gosales_assets.core.peers import PEERS
from gosales_assets.core.ranking import (
    FALLBACK_COLUMNS,
    MODEL_SOURCE,
    ORDERING_COLUMNS,
    ORDERINGS,
    Deferred,
    rank_whitespace,
    resolved,
)
from gosales_assets.core.ranking_evaluation import (
    capture_at_k,
    fit_challenger,
    legacy_heuristic,
    score_challenger,
    shadow_report,
    stability,
)
from gosales_assets.core.whitespace_inputs import whitespace_inputs
from gosales_assets.core.whitespace_signals import percentile_uniformity
from gosales_assets.settings import WhitespaceSettings

__all__ = [
    "EXPORT_COLUMNS",
    "CAPTURE_KS",
    "CAPTURE_SUFFIXES",
    "UNIFORMITY_TOLERANCE",
    "WhitespaceBuild",
    "build_whitespace",
    "empty_whitespace",
    "whitespace_contracts",
    "whitespace_table_schema",
    "FALLBACK_COLUMNS",
]

EXPORT_COLUMNS = ["run_id", "division", "customer_id", "score", "score_source", "p_icp", "p_icp_pct", "lift_norm",
                  "als_norm", "EV_norm", "nba_reason"]
UNIFORMITY_TOLERANCE = 0.10  # max KS distance of a division's p_icp_pct from U(0, 1)
CAPTURE_KS = (5.0, 10.0, 20.0)
CAPTURE_SUFFIXES = ("", "_p_icp_only", "_p_icp_pct_only", "_legacy")

FileContent = pl.DataFrame | dict | str  # a CSV table, a JSON document, a text file


@dataclass(frozen=True)
class WhitespaceBuild:
    """Everything one cutoff's whitespace run produces. `tables` are the four stored slices; `files` the artifact
    files under `whitespace/<cutoff>/` by name (`.csv` a DataFrame, `.json` a dict, `.jsonl` the log's text)."""

    cutoff: dt.date
    run_id: str
    ranked: pl.DataFrame  # the `whitespace` slice: gated, `selected`, `run_id`, `cutoff_date` (+ `score_challenger`)
    grid: pl.DataFrame  # `whitespace_thresholds`
    summary: pl.DataFrame  # `capacity_summary`
    metrics_row: pl.DataFrame  # `whitespace_metrics`: one row
    metrics: dict  # whitespace_metrics_<cutoff>.json (of a built list also the row's `metrics_json`)
    files: dict[str, FileContent]
    checksum: str  # frame_checksum of the `whitespace` slice without `run_id`
    reason: str | None = None  # why the list is empty (None when it was built)
    scored_divisions: list[str] = field(default_factory=list)
    missing_divisions: list[str] = field(default_factory=list)  # configured divisions without published scores
    selected: pl.DataFrame | None = None  # the capacity plan (select_capacity output)
    explanations: pl.DataFrame | None = None
    weights: pl.DataFrame | None = None  # effective weights per division
    eligibility: pl.DataFrame | None = None  # rows removed / kept per eligibility rule
    capture: dict[str, float | None] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)  # the decision log (whitespace_log_<cutoff>.jsonl)
    uniformity: pl.DataFrame | None = None  # percentile_uniformity of the ranked candidates before gating
    reason_violations: list[dict] = field(default_factory=list)  # reasons the ranker replaced by the fallback
    reason_rule_violations: list[dict] = field(default_factory=list)  # check_reasons on the stored reasons

    @property
    def tables(self) -> dict[str, pl.DataFrame]:
        return {"whitespace": self.ranked, "whitespace_thresholds": self.grid, "capacity_summary": self.summary,
                "whitespace_metrics": self.metrics_row}

    @property
    def max_uniformity_deviation(self) -> float:
        """The largest KS distance of a division's p_icp_pct from U(0, 1) (0 when nothing was ranked)."""
        if self.uniformity is None:
            return 0.0
        return float(self.uniformity.get_column("max_deviation").max() or 0.0)


def _log_text(log: list[dict]) -> str:
    return "".join(json.dumps(e, sort_keys=True, default=str) + "\n" for e in log)


def empty_whitespace(cutoff: dt.date, run_id: str, divisions: Sequence[str], reason: str | None = None
                     ) -> WhitespaceBuild:
    """What a cutoff with no published division stores: empty slices, a metrics row that says why, the (empty)
    export and a metrics file with the reason (default: no division has published scores at the cutoff)."""
    divisions = list(divisions)
    if reason is None:
        reason = (f"no published icp_scores for cutoff {cutoff}: no division has a promoted model here "
                  "(too little history or held by the gate; see the division_model rows)")
    ranked = empty_frame(whitespace_table_schema(divisions))
    metrics = empty_frame(whitespace_metrics_schema())
    checksum = frame_checksum(ranked)
    row = {name: None for name in metrics.columns} | {
        "cutoff_date": cutoff, "run_id": run_id, "rows": 0, "selected": 0, "checksum": checksum,
        "metrics_json": json.dumps({"cutoff": str(cutoff), "rows": 0, "reason": reason}, sort_keys=True)}
    c = cutoff.isoformat()
    metrics_file = {"cutoff": c, "run_id": run_id, "rows": 0, "reason": reason}
    return WhitespaceBuild(
        cutoff=cutoff, run_id=run_id, ranked=ranked, grid=empty_frame(capacity_grid_schema()),
        summary=empty_frame(capacity_summary_schema(divisions)),
        metrics_row=pl.DataFrame([row], schema=metrics.schema), metrics=metrics_file,
        files={f"whitespace_{c}.csv": ranked.select(EXPORT_COLUMNS), f"whitespace_metrics_{c}.json": metrics_file},
        checksum=checksum, reason=reason, missing_divisions=sorted(divisions))


def _model_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows ranked by a promoted model (all rows of a frame without `score_source`, e.g. an older list)."""
    if "score_source" not in frame.columns:
        return frame
    return frame.filter(pl.col("score_source") == MODEL_SOURCE)


def _fallback_summary(ranked: pl.DataFrame, in_capacity: bool) -> dict:
    """Per fallback division: its peer, the model's verdict, rows and selected rows (whitespace_metrics JSON)."""
    rows = ranked.filter(pl.col("score_source") != MODEL_SOURCE)
    by = (rows.group_by("division", "score_source").agg(pl.len().alias("rows"), pl.col("selected").sum())
          .sort("division"))
    return {"in_capacity_plan": in_capacity, "rows": rows.height,
            "divisions": {r["division"]: {"score_source": r["score_source"], "rows": int(r["rows"]),
                                          "selected": int(r["selected"])} for r in by.iter_rows(named=True)}}


def _model_stability(model_ranked: pl.DataFrame, previous: pl.DataFrame | None, n: int) -> float | None:
    """Stability of the promoted models' list: its top-n against the previous list's model rows (None when either
    has none, e.g. a previous list ordered by peers only)."""
    earlier = _model_rows(previous) if previous is not None else None
    if model_ranked.height == 0 or earlier is None or earlier.height == 0:
        return None
    return stability(model_ranked, earlier, n)


def _capture(ranked: pl.DataFrame, legacy: pl.DataFrame | None, known: bool) -> dict[str, float | None]:
    """capture@K of the blend, of p_icp alone, of p_icp_pct alone and of the legacy list. Every column exists on
    every cutoff (null when outcomes are unknown or the list was not built), so the metrics table keeps one
    schema."""
    capture: dict[str, float | None] = {f"capture_at_{k:g}{suffix}": None
                                        for k in CAPTURE_KS for suffix in CAPTURE_SUFFIXES}
    if known:
        for k in CAPTURE_KS:
            capture[f"capture_at_{k:g}"] = capture_at_k(ranked, k_pct=k)
            capture[f"capture_at_{k:g}_p_icp_only"] = capture_at_k(ranked, k_pct=k, score_col="p_icp")
            capture[f"capture_at_{k:g}_p_icp_pct_only"] = capture_at_k(ranked, k_pct=k, score_col="p_icp_pct")
        if legacy is not None:
            for k in CAPTURE_KS:
                capture[f"capture_at_{k:g}_legacy"] = capture_at_k(legacy, k_pct=k, score_col="legacy_score")
    return capture


def build_whitespace(
    scores: pl.DataFrame,
    fact: pl.DataFrame,
    dim_customer: pl.DataFrame,
    *,
    cutoff: dt.date,
    run_id: str,
    settings: WhitespaceSettings,
    divisions: Sequence[str],
    rules: pl.DataFrame | None = None,
    als: pl.DataFrame | None = None,
    eligibility: Mapping[str, Any] | None = None,
    previous: pl.DataFrame | None = None,
    previous_cutoff: dt.date | None = None,
    challenger_rows: pl.DataFrame | None = None,
    challenger_cutoff: dt.date | None = None,
    challenger_seed: int = 0,
    max_window_months: int | None = None,
    fallback: pl.DataFrame | None = None,
    ordering: Deferred | None = None,
    ordering_note: Deferred | None = None,
) -> WhitespaceBuild:
    """Rank, gate, select and measure one cutoff's whitespace list.

    - `scores`: the cutoff's published icp_scores (customer_id, division, icp_score, bought_in_division); with
      `fallback` rows it may be empty, else it must not be (see `empty_whitespace`).
    - `fallback`: the peer-fallback rows of the divisions whose model is held or skipped (`FALLBACK_COLUMNS` +
      `bought_in_division`; `core.ranking`); used only when `settings.peer_fallback`. None = none.
    - `fact`, `dim_customer`: the fact lines dated <= cutoff and the customers (`core.whitespace_inputs`).
    - `rules`, `als`: the cutoff's market-basket rules and ALS similarities; None or empty = signal missing.
    - `eligibility`: `core.ingest.read_eligibility` output ({rule: values, or None when off}); None = no gate.
    - `previous` / `previous_cutoff`: the newest earlier non-empty list (stability); None = no previous list.
    - `challenger_rows` / `challenger_cutoff`: an earlier list whose outcomes are realized by the cutoff, rows
      with a known outcome only; used only when `settings.challenger_enabled` (None = no such list, the
      challenger column stays null). `challenger_seed` seeds its fit; `max_window_months` (W_max) is quoted in
      the log when it is skipped.
    - `ordering`: the champion ordering the list follows (None = `settings.ranking.initial_champion`);
      `ordering_note` says where it came from (e.g. the decision's reason), quoted in the metrics. Either may be a
      call (`core.ranking.Deferred`), made when the list is first ordered: the champion can be decided meanwhile.
    """
    ws = settings
    divisions = list(divisions)
    scored_divisions = sorted(scores.get_column("division").unique().to_list()) if scores.height else []
    fallback = fallback if ws.peer_fallback and fallback is not None and fallback.height else None
    if fallback is not None:
        fallback = fallback.filter(~pl.col("division").is_in(scored_divisions))
    fallback_divisions = sorted(fallback.get_column("division").unique().to_list()) if fallback is not None else []
    missing_divisions = sorted(set(divisions) - set(scored_divisions))
    if not scored_divisions and not fallback_divisions:
        raise ValueError("build_whitespace needs published scores or peer-fallback rows (see empty_whitespace)")
    if not scores.height:  # only peer-ordered divisions: the model side is an empty, typed frame
        scores = pl.DataFrame(schema={"customer_id": pl.String, "division": pl.String, "icp_score": pl.Float64,
                                      "bought_in_division": pl.Int8})
    inputs = whitespace_inputs(fact, dim_customer, cutoff, ws.ownership_lookback_months)
    result = rank_whitespace(scores, inputs.owned, settings=ws,
                             rules=rules if rules is not None and rules.height else None, portfolios=inputs.owned,
                             als=als if als is not None and als.height else None, ev_history=inputs.ev_history,
                             customers=inputs.customers, divisions=divisions, peer_fallback=fallback,
                             ordering=ordering, customer_revenue=inputs.customer_revenue, recency=inputs.recency)
    log: list[dict] = [{"event": "inputs", "cutoff": str(cutoff), "scored_divisions": scored_divisions,
                        "missing_divisions": missing_divisions}]
    if fallback_divisions:
        log[0]["peer_fallback_divisions"] = fallback_divisions
    log += result.decision_log
    gates = dict.fromkeys(ELIGIBILITY_RULES) | dict(eligibility or {})
    kept, gate_counts = apply_eligibility(result.ranked, gates["region_allow"], gates["territory_allow"],
                                          gates["do_not_contact"], gates["open_deals"], log=log)
    # The capacity plan: the promoted models' rows, and the peer-ordered rows only when the setting lets them in
    # (they rank after every model row, so they fill only what the model rows leave).
    plan_rows = kept if ws.peer_fallback_in_capacity else _model_rows(kept)
    selected = select_capacity(plan_rows, ws.capacity_mode, ws.top_percent, ws.per_rep_quota, ws.max_division_share,
                               log=log)
    ranked = kept.join(selected.select("customer_id", "division", "selection_order"),
                       on=["customer_id", "division"], how="left", maintain_order="left").with_columns(
        pl.col("selection_order").is_not_null().alias("selected"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(cutoff).alias("cutoff_date"),
    )

    # Challenger (behind a flag): learned on an earlier cutoff's realized outcomes, never on its own scores; over
    # the model rows' signals only (a peer-ordered row has no p_icp_pct to learn from or to score).
    if challenger_rows is not None:
        challenger_rows = _model_rows(challenger_rows)
    if ws.challenger_enabled:
        if challenger_rows is not None and challenger_rows.get_column("bought_in_division").n_unique() == 2:
            model = fit_challenger(challenger_rows, challenger_seed, training_cutoff=challenger_cutoff)
            ranked = ranked.with_columns(score_challenger(model, ranked, cutoff=cutoff))
            if fallback_divisions:
                ranked = ranked.with_columns(pl.when(pl.col("score_source") == MODEL_SOURCE)
                                             .then(pl.col("score_challenger")).alias("score_challenger"))
            log.append({"event": "challenger", "trained_on": str(challenger_cutoff), **model.to_dict()})
        else:
            ranked = ranked.with_columns(pl.lit(None, dtype=pl.Float64).alias("score_challenger"))
            log.append({"event": "challenger", "skipped": "no earlier cutoff with realized outcomes by "
                        f"{cutoff} (needs C' + {max_window_months} months ≤ C)"})

    # The grid, capture@K and the shadow judge the promoted models' list: model rows only.
    model_ranked = _model_rows(ranked)
    grid = capacity_grid(model_ranked, ws.capacity_grid_pcts).with_columns(pl.lit(cutoff).alias("cutoff_date"))
    summary = capacity_summary(selected).with_columns(pl.lit(cutoff).alias("cutoff_date"))
    explanations = explanation_frame(ranked).with_columns(ranked.get_column("score_source"))

    known = ("bought_in_division" in model_ranked.columns
             and model_ranked.get_column("bought_in_division").drop_nulls().len() > 0)
    shadow = legacy = None
    if ws.shadow_enabled:
        legacy = legacy_heuristic(_model_rows(result.ranked).select("customer_id", "division",
                                                                    *(["bought_in_division"] if known else [])),
                                  inputs.customer_revenue, inputs.recency)
        shadow = shadow_report(model_ranked, legacy, ws.shadow_top_n)
    capture = _capture(model_ranked, legacy, known)
    top_n = max(1, selected.height)
    shares = (selected.group_by("division").len().with_columns((pl.col("len") / max(1, selected.height))
                                                              .round(4).alias("share")).sort("division"))
    checksum = frame_checksum(ranked.drop("run_id"))
    metrics = {
        "cutoff": str(cutoff), "run_id": run_id, "rows": ranked.height,
        "candidates_before_gating": result.ranked.height, "selected": selected.height,
        "capacity_mode": ws.capacity_mode,
        "ordering": {"champion": result.ordering, "score": ORDERING_COLUMNS[result.ordering],
                     "note": resolved(ordering_note)
                     or "the configured initial champion (whitespace.ranking.initial_champion)"},
        "eligibility": gate_counts.to_dicts(),
        "coverage": result.coverage.to_dicts(),
        "weights": result.weights.to_dicts(),
        "division_shares": dict(shares.select("division", "share").iter_rows()),
        "capture": capture,
        "stability_vs_previous": {"previous_cutoff": str(previous_cutoff) if previous_cutoff else None,
                                  "jaccard_top_n": _model_stability(model_ranked, previous, top_n), "n": top_n},
        "shadow": shadow,
        "reason_violations_replaced": len(result.reason_violations),
        "peer_fallback": _fallback_summary(ranked, ws.peer_fallback_in_capacity),
        "checksum": checksum,
    }
    metrics_row = pl.DataFrame([{
        "cutoff_date": cutoff, "run_id": run_id, "rows": ranked.height, "selected": selected.height,
        **capture,
        "stability_jaccard": metrics["stability_vs_previous"]["jaccard_top_n"],
        "checksum": checksum, "metrics_json": json.dumps(metrics, sort_keys=True, default=str),
    }], schema_overrides={"stability_jaccard": pl.Float64, **dict.fromkeys(capture, pl.Float64)})
    c = cutoff.isoformat()
    files: dict[str, FileContent] = {
        f"whitespace_{c}.csv": ranked.select(EXPORT_COLUMNS),
        f"whitespace_explanations_{c}.csv": explanations,
        f"thresholds_whitespace_{c}.csv": grid.drop("cutoff_date"),
        f"capacity_summary_{c}.csv": summary.drop("cutoff_date"),
        f"whitespace_metrics_{c}.json": metrics,
        f"whitespace_log_{c}.jsonl": _log_text(log),
    }
    return WhitespaceBuild(
        cutoff=cutoff, run_id=run_id, ranked=ranked, grid=grid, summary=summary, metrics_row=metrics_row,
        metrics=metrics, files=files, checksum=checksum, scored_divisions=scored_divisions,
        missing_divisions=missing_divisions, selected=selected, explanations=explanations, weights=result.weights,
        eligibility=gate_counts, capture=capture, log=log, uniformity=percentile_uniformity(_model_rows(result.ranked)),
        reason_violations=result.reason_violations,
        reason_rule_violations=check_reasons(ranked.get_column("nba_reason"), ws.forbidden_tokens,
                                             ws.reason_max_chars),
    )


SCORE_SOURCES = ("model", *(f"peer:{p}" for p in PEERS))


def _p_icp_only_from_a_model(data) -> pl.LazyFrame:
    """Row-wise: `p_icp` and `p_icp_pct` are present exactly on the rows a promoted model ranked (a peer-ordered
    row never shows a probability)."""
    lf = data.lazyframe
    if not {"score_source", "p_icp", "p_icp_pct"} <= set(lf.collect_schema().names()):
        return lf.select(pl.lit(True).alias("ok"))  # the missing column is reported by its own check
    model = pl.col("score_source") == MODEL_SOURCE
    return lf.select((model == pl.col("p_icp").is_not_null())
                     & (model == pl.col("p_icp_pct").is_not_null()).alias("ok"))


def whitespace_table_schema(divisions: Sequence[str]) -> pa.DataFrameSchema:
    """The stored `whitespace` slice: `core.contracts.whitespace_schema`, plus `score_source` (`model` or
    `peer:<peer>`), the champion `ordering` and every ordering's score (`score_<ordering>`, >= 0, null on peer rows)
    and, because peer-ordered rows carry no probability, `p_icp` / `p_icp_pct` null exactly on those rows."""
    base = whitespace_schema(list(divisions))
    scores = {c: pa.Column(pl.Float64, nullable=True, checks=[pa.Check.ge(0.0)]) for c in ORDERING_COLUMNS.values()}
    schema = base.update_columns({"p_icp": {"nullable": True}, "p_icp_pct": {"nullable": True}}).add_columns(
        {"score_source": pa.Column(pl.String, checks=[pa.Check.isin(list(SCORE_SOURCES))]),
         "ordering": pa.Column(pl.String, checks=[pa.Check.isin(list(ORDERINGS))]), **scores})
    return pa.DataFrameSchema(schema.columns, strict=schema.strict, unique=schema.unique, name=schema.name,
                              checks=[*(schema.checks or []),
                                      pa.Check(_p_icp_only_from_a_model, name="p_icp_only_on_model_rows")])


def whitespace_contracts(build: WhitespaceBuild, divisions: Sequence[str]) -> dict[str, ContractReport]:
    """The contract report of each stored table of a built list (asset key -> report)."""
    divisions = list(divisions)
    return {name: check_contract(frame, schema) for name, frame, schema in (
        ("whitespace", build.ranked, whitespace_table_schema(divisions)),
        ("whitespace_thresholds", build.grid, capacity_grid_schema()),
        ("capacity_summary", build.summary, capacity_summary_schema(divisions)),
        ("whitespace_metrics", build.metrics_row, whitespace_metrics_schema()),
    )}
