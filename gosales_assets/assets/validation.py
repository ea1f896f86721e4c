"""Group `validation`: forward validation of published scores once their window has closed — beside every simple
peer on the same rows, and for the peers alone where nothing was published — and drift of the scoring population
against the model's training baseline; both made by the op of the whole division × cutoff partition
(`assets.division_cutoff`). Files:
<artifacts>/validation/<division>/<cutoff>/."""

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import polars.selectors as cs
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    MetadataValue,
    Output,
    PartitionsDefinition,
)

from gosales_assets.assets.common import image_markdown, markdown_table, partition_checks
from gosales_assets.assets.labels import DIVISION_CUTOFF_EXPR
from gosales_assets.core.calendar import add_months, window_end
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.charts import calibration_chart, gains_chart
from gosales_assets.core.drift import (
    FINDING_FIELDS,
    LINE_COLUMNS,
    DriftFinding,
    DriftThresholds,
    activity_baseline,
    activity_findings,
    alerts_json,
    drift_findings,
    findings_from_rows,
    prevalence_baseline,
    prevalence_year_earlier,
    season_of_baseline,
    uses_year_earlier,
    year_earlier_refusal,
)
from gosales_assets.core.metrics import calibration_bins, calibration_mae, gains_table
from gosales_assets.core.peers import PEERS, peer_values
from gosales_assets.core.registry import serving_model
from gosales_assets.core.validation import (
    RANKING_METRICS,
    capture_at,
    engine_vs_peers,
    segment_performance,
    topk_scenarios,
    validation_metrics,
)
from gosales_assets.partitions import same_cutoff, split_key
from gosales_assets.resources import ArtifactStore, WarehouseResource
from gosales_assets.settings import Settings, division_slug

SEGMENTS = ["industry", "region", "employee_band"]
FORWARD_METRICS = ("auc", "pr_auc", "brier", "lift_at_5", "lift_at_10", "lift_at_20", "rev_lift_at_10", "cal_mae",
                   "base_rate")
# The engine beside the simple peers, on the same rows: each peer's AUC / lift@10 % / capture@10 %, the best peer
# (chosen before the window: the model's cross-validation or the default) and AUC(engine) − AUC(best peer) with
# its paired bootstrap interval.
PEER_COLUMNS = {
    "capture_at_10": pl.Float64, "best_peer": pl.String, "best_peer_basis": pl.String,
    **{f"best_peer_{m}": pl.Float64 for m in RANKING_METRICS},
    "auc_vs_best_peer": pl.Float64, "auc_vs_best_peer_low": pl.Float64, "auc_vs_best_peer_high": pl.Float64,
    "best_peer_forward": pl.String,
    **{f"{p}_{m}": pl.Float64 for p in PEERS for m in RANKING_METRICS},
}
# One row per partition, validated or not: `status` says which (validated | window_open | not_published). A
# `not_published` partition whose window has closed still has its peers validated (rows, positives and the peer
# columns filled; the engine's metrics null).
FORWARD_SCHEMA = {
    "division": pl.String, "cutoff_date": pl.Date, "status": pl.String, "reason": pl.String,
    "window_months": pl.Int64, "window_end": pl.Date, "model_version": pl.String, "rows": pl.Int64,
    "positives": pl.Int64, **dict.fromkeys(FORWARD_METRICS, pl.Float64), "flagged_segments": pl.Int64,
    **PEER_COLUMNS,
}


DRIFT_SCHEMA = {"kind": pl.String, "subject": pl.String, "value": pl.Float64, "severity": pl.String,
                "baseline": pl.Float64, "current": pl.Float64, "action": pl.String, "z": pl.Float64,
                "detail": pl.String, "division": pl.String, "cutoff_date": pl.Date}


# The roster's activity findings of a cutoff (`roster_activity`), in the order they were made, with the key of the
# drift settings they were made with (`_activity_settings_key`).
ROSTER_ACTIVITY_SCHEMA = {"finding_no": pl.Int64, **{k: DRIFT_SCHEMA[k] for k in FINDING_FIELDS},
                          "settings_key": pl.String, "cutoff_date": pl.Date}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _year_earlier_rows(warehouse: WarehouseResource, cfg: Settings, cutoff, window: int
                       ) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """What the division's label rate at C − 12 months is computed from (`_year_earlier_prevalence`): the fact rows up
    to that window's end and the customers' first dates; None when `year_earlier_refusal` refuses C − 12 months
    (before the data start, or too little history up to it)."""
    if year_earlier_refusal(cutoff, cfg.data.start_date, cfg.drift.year_earlier_min_history_months) is not None:
        return None
    earlier = add_months(cutoff, -12)
    fact = warehouse.query("select customer_id, invoice_date, division, sku, revenue from fact_transactions "
                           "where invoice_date <= ?", [window_end(earlier, window)])
    dim = warehouse.query("select customer_id, first_seen_date from dim_customer")
    return fact, dim


def _year_earlier_prevalence(rows: tuple[pl.DataFrame, pl.DataFrame] | None, cfg: Settings, division: str, cutoff,
                             window: int, training_cutoffs: list):
    """The division's label rate at C − 12 months (core.drift.prevalence_year_earlier) from `_year_earlier_rows`."""
    if rows is None:
        return None
    fact, dim = rows
    return prevalence_year_earlier(fact, dim, division=division, cutoff=cutoff, window_months=window,
                                   data_start=cfg.data.start_date, data_end=cfg.data.end_date, mode=cfg.labels.mode,
                                   min_net_revenue=cfg.labels.min_net_revenue, sku_denylist=cfg.labels.sku_denylist,
                                   training_cutoffs=training_cutoffs,
                                   min_history_months=cfg.drift.year_earlier_min_history_months)


def _no_seasonal_rate(cfg: Settings, cutoff) -> str:
    """What the prevalence finding says when no baseline rate is in C's month of the year (and why C − 12 months gave
    none, when it was refused for its history)."""
    refusal = year_earlier_refusal(cutoff, cfg.data.start_date, cfg.drift.year_earlier_min_history_months)
    return f"compared across seasons (no baseline rate in C's month of the year{': ' + refusal if refusal else ''})"


def purchase_lines(warehouse: WarehouseResource, segment_columns: list[str], windows: list[tuple]) -> pl.DataFrame:
    """Purchase lines dated in any of the `windows` (start, end] with the customers' segment columns (those
    dim_customer has). Returns and zero / negative amounts are left out (they are not a purchase at a price)."""
    dim_cols = warehouse.columns("dim_customer")
    segs = [c for c in segment_columns if c in dim_cols and c != "customer_id"]
    seg_sql = "".join(f', d."{c}"' for c in segs)  # names checked against dim_customer's own columns above
    dates = " or ".join(["(f.invoice_date > ? and f.invoice_date <= ?)"] * len(windows))
    return warehouse.query(
        f"select {', '.join(f'f.{c}' for c in LINE_COLUMNS)}{seg_sql} from fact_transactions f "
        "left join dim_customer d on d.customer_id = f.customer_id "
        f"where not f.is_return and f.quantity > 0 and f.revenue > 0 and ({dates})",
        [d for w in windows for d in w])


def _activity_lines(warehouse: WarehouseResource, cfg: Settings, ends: list) -> pl.DataFrame:
    """The roster's purchase lines of the activity windows (the `drift.activity_months` months) ending at `ends`."""
    months = cfg.drift.activity_months
    return purchase_lines(warehouse, cfg.drift.segment_columns, [(add_months(e, -months), e) for e in ends])


def _first_day(warehouse: WarehouseResource):
    return warehouse.query("select min(invoice_date) as d from fact_transactions").item(0, "d")


def drift_thresholds(cfg: Settings) -> DriftThresholds:
    """The configured thresholds of every drift comparison (`drift:` in gosales.yaml)."""
    return DriftThresholds.of(cfg.drift.model_dump())


def _activity_settings_key(cfg: Settings) -> str:
    """What the roster's activity findings depend on besides the data: the drift settings but `top_features` and the
    prevalence baseline's history."""
    used = cfg.drift.model_dump(exclude={"top_features", "year_earlier_min_history_months"})
    return hashlib.sha256(json.dumps(used, sort_keys=True, default=str).encode()).hexdigest()[:16]


def roster_activity_reads(warehouse: WarehouseResource, cfg: Settings, cutoff) -> tuple[pl.DataFrame | None, object]:
    """What `roster_activity` of C is made from (`roster_activity_output`), read from the warehouse: the roster's
    purchase lines of C's activity window and of the same months a year earlier (None when the data do not reach
    back that far), and the sales log's first day."""
    first_day = _first_day(warehouse)
    if not uses_year_earlier(activity_baseline(cutoff, [], cfg.drift.activity_months, first_day), cutoff):
        return None, first_day
    return _activity_lines(warehouse, cfg, [add_months(cutoff, -12), cutoff]), first_day


def roster_activity_output(cfg: Settings, cutoff, lines: pl.DataFrame | None, first_day) -> Output:
    """`roster_activity` of C: who buys — invoices per segment and per division, each division's unit prices — in the
    months to C against the same months a year earlier (core.drift.activity_findings), once per cutoff: every
    division's `drift` at C copies these findings instead of recounting the same lines. `lines`: from
    `roster_activity_reads`, None when the data do not reach back a year: no rows then (each division's drift compares
    with its own model's training windows)."""
    months = cfg.drift.activity_months
    found = (activity_findings(lines, cfg.drift.segment_columns, cutoff, [add_months(cutoff, -12)], months,
                               drift_thresholds(cfg)) if lines is not None else None)
    key = _activity_settings_key(cfg)
    table = pl.DataFrame([{"finding_no": i, **f.to_dict(), "settings_key": key, "cutoff_date": cutoff}
                          for i, f in enumerate(found or [])], schema=ROSTER_ACTIVITY_SCHEMA)
    raised = table.filter(pl.col("severity") != "info")
    return Output(table, output_name="roster_activity", metadata={
        "dagster/row_count": table.height,
        "basis": (f"the {months} months to {cutoff} vs the same months a year earlier" if found is not None else
                  f"none: the sales log starts {first_day}, less than a year before the {months} months to {cutoff}; "
                  "each division's drift compares with its model's training windows"),
        "counts": MetadataValue.json({s: table.filter(pl.col("severity") == s).height
                                      for s in ("hard", "warn", "info")}),
        "settings_key": key,
        "findings": markdown_table(raised.select("kind", "subject", pl.col("value").round(4), "severity", "action")
                                   .to_dicts()) if raised.height else "nothing above info",
    })


def _shared_activity(warehouse: WarehouseResource, cfg: Settings, cutoff) -> list[DriftFinding] | None:
    """`roster_activity`'s findings of C (the year-earlier comparison every division shares); None when there are no
    rows of C made with the current drift settings (not materialized, e.g. a warehouse older than the asset; made
    before a change of `drift` settings; or no findings at all): the partition then counts its own, which gives what
    `roster_activity` made again would."""
    if not warehouse.table_exists("roster_activity"):
        return None
    rows = warehouse.query("select * from roster_activity where cutoff_date = ? and settings_key = ? order by "
                           "finding_no", [cutoff, _activity_settings_key(cfg)])
    return findings_from_rows(rows) if rows.height else None


def _forward_row(**values) -> pl.DataFrame:
    return pl.DataFrame([{k: values.get(k) for k in FORWARD_SCHEMA}], schema=FORWARD_SCHEMA)


def _peer_frame(frame: pl.DataFrame, peer_scores: pl.DataFrame) -> pl.DataFrame:
    """The peers' scores for the rows of `frame`, in its order (a customer without a peer row: missing scores)."""
    cols = [f"{p}_score" for p in PEERS]
    return frame.select("customer_id").join(peer_scores.select("customer_id", *cols), on="customer_id", how="left",
                                            maintain_order="left")


def _best_peer(peer_scores: pl.DataFrame) -> tuple[str | None, str | None]:
    if peer_scores.height == 0:
        return None, None
    return peer_scores.item(0, "best_peer"), peer_scores.item(0, "best_peer_basis")


def _comparison_values(comparison: dict, basis: str | None) -> dict:
    return {k: comparison.get(k) for k in PEER_COLUMNS if k in comparison} | {"best_peer_basis": basis}


def _orderings_markdown(orderings: pl.DataFrame) -> MetadataValue:
    return markdown_table(orderings.with_columns(cs.float().round(4)).to_dicts())


def forward_validation_spec() -> AssetSpec:
    """`forward_validation` of one division × cutoff, made by the op of the whole partition
    (`assets.division_cutoff`) last: from the scores, the peers and the labels made before it in the same step."""
    return AssetSpec(
        "forward_validation",
        group_name="validation",
        deps=["dim_customer"],
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        description="The scores published at the cutoff joined with what really happened in (C, C + W]: metrics, "
        "gains, calibration, top-K scenarios and segment performance, and beside them every simple peer "
        "(peer_scores) on the same rows with the paired bootstrap interval of AUC(engine) − AUC(best peer). Where "
        "nothing was published the peers are still validated (status not_published). Skipped while the window is "
        "open.",
    )


def forward_validation_outputs(context: AssetExecutionContext, cfg: Settings, warehouse: WarehouseResource,
                               artifacts: ArtifactStore, labels: pl.DataFrame, icp_scores: pl.DataFrame,
                               peer_scores: pl.DataFrame) -> Iterator[Output]:
    """Validate the partition's published scores (and its peers) against its labels; yield `forward_validation`."""
    division, cutoff = split_key(context.partition_key)
    published = icp_scores.height > 0
    best_peer, basis = _best_peer(peer_scores)
    rel = ["validation", division_slug(division), cutoff.isoformat()]

    def not_validated(status: str, reason: str, **values):
        context.log.info(f"forward_validation {context.partition_key}: not validated — {reason}")
        row = _forward_row(division=division, cutoff_date=cutoff, status=status, reason=reason, **values)
        return Output(row, output_name="forward_validation",
                      metadata={"status": status, "reason": reason})

    not_published = "no published icp_scores for this partition (see its division_model row for the reason)"
    # Outcomes come from the labels made in this step: censored while the window is open; the partition is made
    # again once (C, C + W] has closed (the `new_cutoff` sensor requests exactly that), with its outcomes.
    labels = labels.select("customer_id", "label", "censored", "net_revenue_window", "window_months")
    if published:
        window = int(icp_scores.item(0, "prediction_window_months"))
    elif labels.height:
        window = int(labels.get_column("window_months").max())
    else:
        window = cfg.window_months(division)
    end = window_end(cutoff, window)
    closed = not (end > cfg.data.end_date or labels.height == 0 or labels.get_column("censored").all())
    if not published and (not closed or peer_scores.height == 0):
        yield not_validated("not_published", not_published + ("" if closed else
                            f"; window ({cutoff}, {end}] has not closed, so neither are the simple peers "
                            "validated yet"))
        return
    if not closed:
        yield not_validated("window_open", f"window ({cutoff}, {end}] has not closed (data ends "
                                           f"{cfg.data.end_date}) or its labels are still censored; validated "
                                           "again once it has closed and labels are rebuilt",
                            window_months=window, window_end=end,
                            model_version=icp_scores.item(0, "model_version"))
        return
    outcomes = labels.filter(~pl.col("censored")).select(
        "customer_id", pl.col("label").alias("bought_in_division"), "net_revenue_window")
    n_boot, seed = cfg.models.gates.peer_resamples, cfg.seeds.modeling

    if not published:  # the peers alone, on the peers' population (the same labels population icp_scores has)
        frame = (peer_scores.select("customer_id").join(outcomes, on="customer_id", how="left")
                 .filter(pl.col("bought_in_division").is_not_null()).sort("customer_id"))
        y = frame.get_column("bought_in_division").to_numpy().astype(int)
        peers = _peer_frame(frame, peer_scores)
        comparison = engine_vs_peers(y, None, {p: peer_values(peers, p) for p in PEERS}, best_peer,
                                     n_boot=n_boot, seed=seed)
        artifacts.write_csv([*rel, "peers.csv"], comparison["orderings"])
        reason = (f"{not_published}; the simple peers validated on {len(y)} rows against outcomes in ({cutoff}, "
                  f"{end}]")
        context.log.info(f"forward_validation {context.partition_key}: {reason}")
        row = _forward_row(division=division, cutoff_date=cutoff, status="not_published", reason=reason,
                           window_months=window, window_end=end, rows=len(y), positives=int(y.sum()),
                           **_comparison_values(comparison, basis))
        yield Output(row, output_name="forward_validation",
                     metadata={"status": "not_published", "reason": reason, "best_peer": best_peer,
                               "best_peer_basis": basis, "rows": len(y), "positives": int(y.sum()),
                               "engine_and_peers": _orderings_markdown(comparison["orderings"])})
        return
    attrs = warehouse.query(f"select customer_id, {', '.join(SEGMENTS)} from dim_customer")
    # The metrics, charts and files need nothing more of the warehouse: another run may use it meanwhile.
    with warehouse.released():
        frame = (icp_scores.drop("bought_in_division")
                 .join(outcomes, on="customer_id", how="left")
                 .join(attrs, on="customer_id", how="left")
                 .filter(pl.col("bought_in_division").is_not_null()).sort("customer_id"))
        y = frame.get_column("bought_in_division").to_numpy().astype(int)
        p = frame.get_column("icp_score").to_numpy()
        revenue = frame.get_column("net_revenue_window").fill_null(0.0).to_numpy()
        params = cfg.models
        metrics = validation_metrics(y, p, revenue, ks=params.capacity_pcts, n_bins=params.calibration_bins)
        gains = gains_table(y, p)
        calibration = calibration_bins(y, p, params.calibration_bins)
        topk = topk_scenarios(y, p, revenue, pcts=cfg.whitespace.capacity_grid_pcts)
        segments = segment_performance(frame.rename({"bought_in_division": "y", "icp_score": "p"}), SEGMENTS)
        peers = _peer_frame(frame, peer_scores)
        comparison = engine_vs_peers(y, p, {name: peer_values(peers, name) for name in PEERS}, best_peer,
                                     n_boot=n_boot, seed=seed) if best_peer else None
        artifacts.path(*rel).mkdir(parents=True, exist_ok=True)
        if comparison is not None:
            artifacts.write_csv([*rel, "peers.csv"], comparison["orderings"])
        frame.write_parquet(artifacts.path(*rel, "validation_frame.parquet"))
        artifacts.write_json([*rel, "metrics.json"], metrics)
        artifacts.write_csv([*rel, "gains.csv"], gains)
        artifacts.write_csv([*rel, "calibration.csv"], calibration)
        artifacts.write_csv([*rel, "topk_scenarios.csv"], topk)
        artifacts.write_csv([*rel, "segment_performance.csv"], segments)
        title = f"{division} @ {cutoff}: forward"
        gains_png, cal_png = gains_chart(gains, title), calibration_chart(calibration, title)
        artifacts.path(*rel, "gains.png").write_bytes(gains_png)
        artifacts.path(*rel, "calibration.png").write_bytes(cal_png)
        flagged = segments.filter(pl.col("flag"))
        row = _forward_row(
            division=division, cutoff_date=cutoff, status="validated",
            reason=f"scores of model {icp_scores.item(0, 'model_version')} against outcomes in ({cutoff}, {end}]",
            window_months=window, window_end=end, model_version=icp_scores.item(0, "model_version"), rows=len(y),
            positives=int(y.sum()), **{k: metrics.get(k) for k in FORWARD_METRICS}, flagged_segments=flagged.height,
            **(_comparison_values(comparison, basis) if comparison is not None else {}),
            capture_at_10=capture_at(y, p))
    vs_peer = {}
    if comparison is not None:
        diff, lo, hi = (comparison[k] for k in ("auc_vs_best_peer", "auc_vs_best_peer_low",
                                                "auc_vs_best_peer_high"))
        vs_peer = {"best_peer": best_peer, "best_peer_basis": basis,
                   "auc_vs_best_peer": MetadataValue.null() if diff is None else
                   f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}] (95 % paired bootstrap)",
                   "engine_and_peers": _orderings_markdown(comparison["orderings"])}
    yield Output(row, output_name="forward_validation", metadata={
        "status": "validated",
        **{k: MetadataValue.null() if metrics.get(k) is None else round(float(metrics[k]), 4)
           for k in ("auc", "lift_at_10", "cal_mae")},
        "positives": int(y.sum()), "rows": len(y), **vs_peer,
        "gains_chart": image_markdown(gains_png, "gains"),
        "calibration_chart": image_markdown(cal_png, "calibration"),
        "topk_scenarios": markdown_table(topk.with_columns(cs.float().round(3)).to_dicts()),
        "flagged_segments": markdown_table(flagged.select("segment_col", "segment", "rows", "reason").to_dicts()),
    })



def drift_spec() -> AssetSpec:
    """`drift` of one division × cutoff, made by the op of the whole partition (`assets.division_cutoff`) after
    `icp_scores`, whose scores it compares with the serving model's training baseline."""
    return AssetSpec(
        "drift",
        group_name="validation",
        # What the op reads besides its own outputs (the scores, the model and the frame it compares are made in the
        # same step: no edge between two outputs of one op on the same partition, docs/ARCHITECTURE.md): who buys,
        # per segment and division — the cutoff's `roster_activity` against the same months a year earlier, or the
        # roster's purchase lines and segments against the model's training windows when the history is shorter.
        deps=["fact_transactions", "dim_customer", AssetDep("roster_activity", partition_mapping=same_cutoff())],
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        description="What the engine sees at the cutoff vs the serving model's training baseline: PSI of the score "
        "and of the top features (zero-inflated ones also among their non-zero values), prevalence (vs the same "
        "month a year earlier) and calibration, and the roster's invoices per "
        "segment (region, territory, industry) and per division and each division's unit-price index; alerts.json "
        "per partition (docs/DRIFT.md).",
    )


def drift_check_specs(parts: PartitionsDefinition) -> list[AssetCheckSpec]:
    return partition_checks(parts, AssetCheckSpec(
        "no_hard_drift", asset="drift", description="No drift finding (score or top-feature PSI, prevalence "
        "shift, calibration regression, a segment's or division's activity, a division's unit prices) reaches "
        "its hard threshold beyond sampling noise"))


def _drift_findings(cfg: Settings, division: str, cutoff, model_row: dict, model_dir: Path,
                    train_features: pl.DataFrame, training_cutoffs: list, icp_scores: pl.DataFrame,
                    division_features: pl.DataFrame, y_cur, prev_base, year_rows, lines: pl.DataFrame | None,
                    window: int, activity: tuple[list, str | None], shared: list[DriftFinding] | None) -> list:
    """The partition's drift findings from what `drift_outputs` read: score and top-feature PSI, prevalence,
    calibration, and the roster's activity: `shared` (the cutoff's `roster_activity`) when given, else `lines` against
    the windows to `activity`'s baseline cutoffs. A comparison across seasons raises no hard finding
    (core.drift.seasonal_ceiling)."""
    from gosales_assets.core.modeling import load_model  # heavy: only where a model is loaded

    # Baseline scores: the serving model itself on its training sample, so both sides of the score PSI
    # come from the same scoring function (the out-of-fold scores are cross-fitted, a different function).
    baseline_scores = load_model(model_row["model_path"]).predict_proba(train_features)
    importance = pl.read_csv(model_dir / "feature_importance.csv")
    top = [f for f in importance.get_column("feature").head(cfg.drift.top_features).to_list()
           if f in train_features.columns and f in division_features.columns]
    cal_cur = None
    if y_cur is not None:
        p_known = icp_scores.filter(pl.col("bought_in_division").is_not_null()).get_column("icp_score").to_numpy()
        cal_cur = calibration_mae(y_cur, p_known, cfg.models.calibration_bins)
    th = drift_thresholds(cfg)
    if y_cur is not None and (prev_base is None or not prev_base.seasonal):
        # No training cutoff in C's month: the same month a year earlier, labelled from the fact table.
        year = _year_earlier_prevalence(year_rows, cfg, division, cutoff, window,
                                        train_features.get_column("cutoff_date").unique().to_list())
        prev_base = year or prev_base
    findings = drift_findings(
        baseline_scores, icp_scores.get_column("icp_score").to_numpy(),
        train_features, division_features, top,
        prevalence_train=prev_base.prevalence if prev_base else model_row["base_rate"],
        prevalence_current=float(np.mean(y_cur)) if y_cur is not None else None,
        prevalence_rows_train=prev_base.rows if prev_base else None,
        prevalence_rows_current=len(y_cur) if y_cur is not None else None,
        prevalence_customers_train=prev_base.customers if prev_base else None,
        prevalence_basis=prev_base.basis if prev_base else "the model's pooled training base rate",
        cal_mae_train=model_row["cal_mae"], cal_mae_current=cal_cur,
        thresholds=th,
        across_seasons=season_of_baseline(cutoff, training_cutoffs, "the model's training sample"),
        prevalence_across_seasons=(None if prev_base is not None and prev_base.seasonal else
                                   _no_seasonal_rate(cfg, cutoff)),
        train_units=train_features.get_column("customer_id").to_numpy(),
    )
    # A configured segment column that dim_customer lacks, or whose values are all null, becomes a note.
    findings += shared if shared is not None else activity_findings(
        lines, cfg.drift.segment_columns, cutoff, activity[0], cfg.drift.activity_months, th, activity[1])
    return findings


def drift_outputs(context: AssetExecutionContext, cfg: Settings, artifacts: ArtifactStore,
                  warehouse: WarehouseResource, division_model: pl.DataFrame, icp_scores: pl.DataFrame,
                  division_features: pl.DataFrame) -> Iterator[Output | AssetCheckResult]:
    """The partition's drift findings (the `drift` output, alerts.json) and its `no_hard_drift` check, for the
    scores `icp_scores` just made."""
    division, cutoff = split_key(context.partition_key)
    if division_model.height == 0 or icp_scores.height == 0:
        reason = "no published scores for this partition: nothing to compare (see its division_model row)"
        context.log.info(f"drift {context.partition_key}: {reason}")
        yield Output(pl.DataFrame(schema=DRIFT_SCHEMA), output_name="drift",
                 metadata={"max_severity": "none", "reason": reason})
        yield AssetCheckResult(check_name="no_hard_drift", asset_key="drift", passed=True,
                               description="not applicable: nothing was scored", metadata={"applicable": False})
        return
    model_row = division_model.row(0, named=True)
    serving = serving_model(model_row)
    if serving is not None and serving["model_version"] != model_row["model_version"]:
        # Retained: the champion scored icp_scores, so the baselines (samples, importance, training prevalence
        # and calibration) are the champion's, from its own partition's files.
        served = json.loads((Path(serving["model_path"]).parent / "metrics.json").read_text())
        model_row = model_row | {"model_path": serving["model_path"], "base_rate": served.get("base_rate"),
                                 "cal_mae": served.get("cal_mae")}
    model_dir = Path(model_row["model_path"]).parent
    train_features = pl.read_parquet(model_dir / "train_feature_sample.parquet")
    training_cutoffs = sorted(set(train_features.get_column("cutoff_date").to_list()))
    known = icp_scores.get_column("bought_in_division").drop_nulls()
    y_cur = known.to_numpy().astype(int) if known.len() else None
    # Seasonal like with like: the model's training cutoff in C's month of the year when it has one (its
    # out-of-fold sample carries each training row's cutoff and label), else C - 12 months labelled from the
    # fact table, else the pooled training rate; the finding's detail says which.
    oof_path = model_dir / "train_scores.parquet"
    prev_base = prevalence_baseline(cutoff, pl.read_parquet(oof_path)) if oof_path.is_file() else None
    window = int(icp_scores.item(0, "prediction_window_months"))
    # Every read of the warehouse first (the year-earlier labels' facts when needed, the roster's purchase lines);
    # the comparisons need nothing more of it and let another run use it meanwhile.
    year_rows = _year_earlier_rows(warehouse, cfg, cutoff, window) \
        if y_cur is not None and (prev_base is None or not prev_base.seasonal) else None
    # Who buys: the roster's purchases in the months to C vs the same months a year earlier when the data reach
    # back that far (a seasonal business against its own season), else vs the months to each training cutoff.
    months = cfg.drift.activity_months
    activity = activity_baseline(cutoff, training_cutoffs, months, _first_day(warehouse))
    # The same months a year earlier are every division's baseline at C: the cutoff's `roster_activity` has counted
    # them once. Else (a short history) this model's training windows, counted here.
    shared = _shared_activity(warehouse, cfg, cutoff) if uses_year_earlier(activity, cutoff) else None
    lines = None if shared is not None else _activity_lines(warehouse, cfg, [*activity[0], cutoff])
    with warehouse.released():
        findings = _drift_findings(cfg, division, cutoff, model_row, model_dir, train_features, training_cutoffs,
                                   icp_scores, division_features, y_cur, prev_base, year_rows, lines, window,
                                   activity, shared)
        report = alerts_json(findings, division, cutoff)
        artifacts.write_json(["validation", division_slug(division), cutoff.isoformat(), "alerts.json"], report)
    table = pl.DataFrame([f.to_dict() | {"division": division, "cutoff_date": cutoff} for f in findings],
                         schema=DRIFT_SCHEMA)
    raised = [f for f in report["findings"] if f["severity"] != "info"]
    yield Output(table, output_name="drift", metadata={
        "max_severity": report["max_severity"],
        # The alert sensor raises a partition's findings once: made again with the same findings, nothing is new.
        "findings_checksum": frame_checksum(table),
        "counts": MetadataValue.json(report["counts"]),
        # Only what was raised: every comparison (a few dozen segments) is in the table and alerts.json.
        "findings": markdown_table([{k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()
                                     if k in ("kind", "subject", "value", "z", "severity", "action")}
                                    for f in raised]) if raised else "nothing above info",
    })
    hard = [f for f in report["findings"] if f["severity"] == "hard"]  # strongest first
    yield AssetCheckResult(
        check_name="no_hard_drift", asset_key="drift", passed=not hard, severity=AssetCheckSeverity.ERROR,
        description="; ".join(f"{f['kind']} {f['subject']}: {_rounded(f['value'])} → {f['action']}"
                              for f in hard)[:500] or f"max severity {report['max_severity']}",
        metadata={"alerts": MetadataValue.json(json.loads(json.dumps(report, default=str)))})
