"""Group `whitespace`: the ranked, explained cross-sell list per cutoff, its capacity grid, the capacity plan
per rep × division, and the run's metrics. Files: <artifacts>/whitespace/<cutoff>/."""

import datetime as dt
import json
import shutil

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetOut,
    AssetsDefinition,
    MetadataValue,
    Output,
    multi_asset,
)

from gosales_assets.assets.common import contract_check_result, markdown_table, partition_checks
from gosales_assets.assets.features import fact_until
from gosales_assets.core.calendar import add_months, window_end
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.contracts import (
    capacity_grid_schema,
    capacity_summary_schema,
    check_contract,
    empty_frame,
    whitespace_metrics_schema,
    whitespace_schema,
)
from gosales_assets.core.explain import check_reasons, explanation_frame
from gosales_assets.core.ingest import read_eligibility
from gosales_assets.core.ranking import (
    apply_eligibility,
    capacity_grid,
    capacity_summary,
    capture_at_k,
    fit_challenger,
    legacy_heuristic,
    percentile_uniformity,
    rank_whitespace,
    score_challenger,
    select_capacity,
    shadow_report,
    stability,
    whitespace_inputs,
)
from gosales_assets.partitions import (
    cutoff_partitions,
    earlier_cutoffs,
    parse_cutoff,
    same_cutoff,
    whitespace_lookback,
)
from gosales_assets.resources import WAREHOUSE_POOL, ArtifactStore, GosalesSettings, WarehouseResource
from gosales_assets.settings import Settings

OUTPUTS = ("whitespace", "whitespace_thresholds", "capacity_summary", "whitespace_metrics")
EXPORT_COLUMNS = ["run_id", "division", "customer_id", "score", "p_icp", "p_icp_pct", "lift_norm", "als_norm",
                  "EV_norm", "nba_reason"]
UNIFORMITY_TOLERANCE = 0.10  # max KS distance of a division's p_icp_pct from U(0, 1)
CAPTURE_KS = (5.0, 10.0, 20.0)
CAPTURE_SUFFIXES = ("", "_p_icp_only", "_p_icp_pct_only", "_legacy")


def _previous(warehouse: WarehouseResource, before: dt.date, months: int) -> tuple[dt.date | None, pl.DataFrame]:
    """The newest non-empty whitespace list in the `months` before C (part of the declared look-back)."""
    if not warehouse.table_exists("whitespace"):
        return None, pl.DataFrame()
    prev = warehouse.query("select max(cutoff_date) from whitespace where cutoff_date between ? and ?",
                           [add_months(before, -months), add_months(before, -1)]).item()
    if prev is None:
        return None, pl.DataFrame()
    return prev, warehouse.query("select * from whitespace where cutoff_date = ?", [prev])


def _challenger_training(warehouse: WarehouseResource, cutoff: dt.date, max_window: int, lookback: int):
    """The latest earlier whitespace list whose outcomes were realized by C (C' + W_max ≤ C), with outcomes, within
    the declared look-back."""
    if not warehouse.table_exists("whitespace"):
        return None, None
    df = warehouse.query("select distinct cutoff_date from whitespace where cutoff_date between ? and ? "
                         "order by 1 desc", [add_months(cutoff, -lookback), add_months(cutoff, -1)])
    for (c,) in df.iter_rows():
        if window_end(c, max_window) <= cutoff:
            rows = warehouse.query("select * from whitespace where cutoff_date = ? and bought_in_division is not null",
                                   [c])
            return c, rows
    return None, None


def _empty_outputs(cutoff: dt.date, run_id: str, divisions: list[str], reason: str) -> dict[str, pl.DataFrame]:
    """What a cutoff with no published division stores: empty slices and a metrics row that says why."""
    outputs = {name: empty_frame(schema) for name, schema in (
        ("whitespace", whitespace_schema(divisions)), ("whitespace_thresholds", capacity_grid_schema()),
        ("capacity_summary", capacity_summary_schema(divisions)))}
    metrics = empty_frame(whitespace_metrics_schema())
    row = {name: None for name in metrics.columns} | {
        "cutoff_date": cutoff, "run_id": run_id, "rows": 0, "selected": 0,
        "checksum": frame_checksum(outputs["whitespace"]),
        "metrics_json": json.dumps({"cutoff": str(cutoff), "rows": 0, "reason": reason}, sort_keys=True)}
    outputs["whitespace_metrics"] = pl.DataFrame([row], schema=metrics.schema)
    return outputs


def build_whitespace_assets(settings: Settings) -> list[AssetsDefinition]:
    all_divisions = same_cutoff()
    cutoffs_def = cutoff_partitions(settings)
    lookback = whitespace_lookback(settings)
    per_cutoff = {"partition_expr": "cutoff_date"}

    @multi_asset(
        name="whitespace_ranking",
        group_name="whitespace",
        partitions_def=cutoffs_def,
        pool=WAREHOUSE_POOL,
        # Earlier lists of this asset are read too (stability against the previous list, the challenger's realized
        # outcomes): a declared self-dependency, so a backfill builds the lists in date order.
        deps=[AssetDep("icp_scores", partition_mapping=all_divisions), "market_basket_rules", "als_embeddings",
              "fact_transactions", "dim_customer",
              AssetDep("whitespace", partition_mapping=earlier_cutoffs(lookback, 1))],
        # A cutoff with no published division still materializes: empty slices and a metrics row with the reason.
        outs={name: AssetOut(metadata=per_cutoff, description=text) for name, text in {
            "whitespace": "Ranked, eligible, explained (customer, division) cross-sell opportunities; `selected` "
                          "marks the capacity plan",
            "whitespace_thresholds": "Capacity grid: rows, score threshold, expected and realized buyers per "
                                     "capacity %",
            "capacity_summary": "Selected opportunities per rep × division: rows, mean score, expected buyers, "
                                "expected value",
            "whitespace_metrics": "One row per cutoff: rows, coverage, division shares, capture@K, stability, "
                                  "checksum",
        }.items()},
        check_specs=partition_checks(
            cutoffs_def,
            AssetCheckSpec("contract", asset="whitespace", blocking=True,
                           description="Required columns and types, scores and signals in [0, 1], unique pairs, "
                           "canonical divisions"),
            AssetCheckSpec("contract", asset="whitespace_thresholds", blocking=True,
                           description="Capacity grid columns and types, capture in [0, 1]"),
            AssetCheckSpec("contract", asset="capacity_summary", blocking=True,
                           description="One row per rep × division, canonical divisions, positive counts"),
            AssetCheckSpec("contract", asset="whitespace_metrics", blocking=True,
                           description="One row per cutoff, capture values in [0, 1] where known"),
            AssetCheckSpec("explanations", asset="whitespace", blocking=True,
                           description="Every nba_reason present, within the length limit, free of forbidden tokens"),
            AssetCheckSpec("percentile_uniformity", asset="whitespace",
                           description=f"Per division, p_icp_pct is close to uniform (KS distance ≤ "
                                       f"{UNIFORMITY_TOLERANCE})"),
        ),
    )
    def whitespace_ranking(context: AssetExecutionContext, settings: GosalesSettings, warehouse: WarehouseResource,
                           artifacts: ArtifactStore):
        cfg = settings.get()
        ws = cfg.whitespace
        cutoff = parse_cutoff(context.partition_key)
        run_id = context.run.run_id
        scores = warehouse.query("select customer_id, division, icp_score, bought_in_division from icp_scores "
                                 "where cutoff_date = ? order by division, customer_id", [cutoff]) \
            if warehouse.table_exists("icp_scores") else pl.DataFrame()
        if scores.height == 0:
            # Early cutoffs have no model yet (no closed training window); nothing to rank is not an error.
            reason = (f"no published icp_scores for cutoff {cutoff}: no division has a promoted model here "
                      "(too little history or held by the gate; see the division_model rows)")
            context.log.warning(f"whitespace {context.partition_key}: empty list — {reason}")
            # The partition's files say the same as its tables: an earlier list's exports are not left behind.
            c = cutoff.isoformat()
            shutil.rmtree(artifacts.path("whitespace", c), ignore_errors=True)
            outputs = _empty_outputs(cutoff, run_id, cfg.divisions, reason)
            artifacts.write_csv(["whitespace", c, f"whitespace_{c}.csv"], outputs["whitespace"].select(EXPORT_COLUMNS))
            artifacts.write_json(["whitespace", c, f"whitespace_metrics_{c}.json"],
                                 {"cutoff": c, "run_id": run_id, "rows": 0, "reason": reason})
            for name, frame in outputs.items():
                yield Output(frame, output_name=name, metadata={"dagster/row_count": frame.height, "reason": reason,
                                                                "published_divisions": 0})
            for asset_key, check in [("whitespace", "explanations"), ("whitespace", "percentile_uniformity"),
                                     *((a, "contract") for a in OUTPUTS)]:
                yield AssetCheckResult(check_name=check, asset_key=asset_key, passed=True,
                                       description=f"not applicable: {reason}", metadata={"applicable": False})
            return
        scored_divisions = sorted(scores.get_column("division").unique().to_list())
        inputs = whitespace_inputs(fact_until(warehouse, cutoff), warehouse.query("select * from dim_customer"),
                                   cutoff, ws.ownership_lookback_months)
        rules = warehouse.query("select * exclude (cutoff_date) from market_basket_rules where cutoff_date = ?",
                                [cutoff])
        als = warehouse.query("select * exclude (cutoff_date) from als_embeddings where cutoff_date = ?", [cutoff])
        result = rank_whitespace(scores, inputs.owned, settings=ws, rules=rules if rules.height else None,
                                 portfolios=inputs.owned, als=als if als.height else None,
                                 ev_history=inputs.ev_history, customers=inputs.customers, divisions=cfg.divisions)
        log: list[dict] = [{"event": "inputs", "cutoff": str(cutoff), "scored_divisions": scored_divisions,
                            "missing_divisions": sorted(set(cfg.divisions) - set(scored_divisions))}]
        log += result.decision_log
        eligibility = read_eligibility(cfg.landing_dir)
        kept, gate_counts = apply_eligibility(result.ranked, eligibility["region_allow"],
                                              eligibility["territory_allow"], eligibility["do_not_contact"],
                                              eligibility["open_deals"], log=log)
        selected = select_capacity(kept, ws.capacity_mode, ws.top_percent, ws.per_rep_quota, ws.max_division_share,
                                   log=log)
        ranked = kept.join(selected.select("customer_id", "division", "selection_order"),
                           on=["customer_id", "division"], how="left", maintain_order="left").with_columns(
            pl.col("selection_order").is_not_null().alias("selected"),
            pl.lit(run_id).alias("run_id"),
            pl.lit(cutoff).alias("cutoff_date"),
        )

        # Challenger (behind a flag): learned on an earlier cutoff's realized outcomes, never on its own scores.
        if ws.challenger_enabled:
            max_w = cfg.window_range()[1]
            train_cutoff, train_rows = _challenger_training(warehouse, cutoff, max_w, lookback)
            if train_rows is not None and train_rows.get_column("bought_in_division").n_unique() == 2:
                model = fit_challenger(train_rows, cfg.seeds.modeling, training_cutoff=train_cutoff)
                ranked = ranked.with_columns(score_challenger(model, ranked, cutoff=cutoff))
                log.append({"event": "challenger", "trained_on": str(train_cutoff), **model.to_dict()})
            else:
                ranked = ranked.with_columns(pl.lit(None, dtype=pl.Float64).alias("score_challenger"))
                log.append({"event": "challenger", "skipped": "no earlier cutoff with realized outcomes by "
                            f"{cutoff} (needs C' + {max_w} months ≤ C)"})

        grid = capacity_grid(ranked, ws.capacity_grid_pcts).with_columns(pl.lit(cutoff).alias("cutoff_date"))
        summary = capacity_summary(selected).with_columns(pl.lit(cutoff).alias("cutoff_date"))
        explanations = explanation_frame(ranked)

        known = "bought_in_division" in ranked.columns and ranked.get_column("bought_in_division").drop_nulls().len() > 0
        # Every capture column exists on every cutoff (null when outcomes are unknown or the list was not built),
        # so the metrics table keeps one schema.
        capture: dict[str, float | None] = {f"capture_at_{k:g}{suffix}": None
                                            for k in CAPTURE_KS for suffix in CAPTURE_SUFFIXES}
        if known:
            for k in CAPTURE_KS:
                capture[f"capture_at_{k:g}"] = capture_at_k(ranked, k_pct=k)
                capture[f"capture_at_{k:g}_p_icp_only"] = capture_at_k(ranked, k_pct=k, score_col="p_icp")
                capture[f"capture_at_{k:g}_p_icp_pct_only"] = capture_at_k(ranked, k_pct=k, score_col="p_icp_pct")
        shadow = None
        if ws.shadow_enabled:
            legacy = legacy_heuristic(result.ranked.select("customer_id", "division",
                                                           *(["bought_in_division"] if known else [])),
                                      inputs.customer_revenue, inputs.recency)
            shadow = shadow_report(ranked, legacy, ws.shadow_top_n)
            if known:
                for k in CAPTURE_KS:
                    capture[f"capture_at_{k:g}_legacy"] = capture_at_k(legacy, k_pct=k, score_col="legacy_score")
        prev_cutoff, previous = _previous(warehouse, cutoff, ws.history_months)
        top_n = max(1, selected.height)
        shares = (selected.group_by("division").len().with_columns((pl.col("len") / max(1, selected.height))
                                                                  .round(4).alias("share")).sort("division"))
        checksum = frame_checksum(ranked.drop("run_id"))
        metrics = {
            "cutoff": str(cutoff), "run_id": run_id, "rows": ranked.height,
            "candidates_before_gating": result.ranked.height, "selected": selected.height,
            "capacity_mode": ws.capacity_mode,
            "eligibility": gate_counts.to_dicts(),
            "coverage": result.coverage.to_dicts(),
            "weights": result.weights.to_dicts(),
            "division_shares": dict(shares.select("division", "share").iter_rows()),
            "capture": capture,
            "stability_vs_previous": {"previous_cutoff": str(prev_cutoff) if prev_cutoff else None,
                                      "jaccard_top_n": stability(ranked, previous, top_n), "n": top_n},
            "shadow": shadow,
            "reason_violations_replaced": len(result.reason_violations),
            "checksum": checksum,
        }

        # ---- files -------------------------------------------------------------------------------------------
        c = cutoff.isoformat()
        rel = ["whitespace", c]
        artifacts.write_csv([*rel, f"whitespace_{c}.csv"], ranked.select(EXPORT_COLUMNS))
        artifacts.write_csv([*rel, f"whitespace_explanations_{c}.csv"], explanations)
        artifacts.write_csv([*rel, f"thresholds_whitespace_{c}.csv"], grid.drop("cutoff_date"))
        artifacts.write_csv([*rel, f"capacity_summary_{c}.csv"], summary.drop("cutoff_date"))
        artifacts.write_json([*rel, f"whitespace_metrics_{c}.json"], metrics)
        artifacts.write_text([*rel, f"whitespace_log_{c}.jsonl"],
                             "".join(json.dumps(e, sort_keys=True, default=str) + "\n" for e in log))

        weights_note = result.weights.filter(pl.col("adjusted")).select("division", "note")
        yield Output(ranked, output_name="whitespace", metadata={
            "dagster/row_count": ranked.height, "selected": selected.height, "checksum": checksum,
            "published_divisions": len(scored_divisions),
            "missing_divisions": ", ".join(sorted(set(cfg.divisions) - set(scored_divisions))) or "none",
            "weight_adjustments": markdown_table(weights_note.to_dicts()),
            "eligibility": markdown_table(gate_counts.select("rule", "active", "removed", "kept").to_dicts()),
            "top_10": markdown_table(ranked.head(10).select("rank", "division", "customer_id",
                                                            pl.col("score").round(3), "nba_reason").to_dicts()),
            "export": MetadataValue.path(str(artifacts.path(*rel, f"whitespace_{c}.csv"))),
        })
        yield Output(grid, output_name="whitespace_thresholds", metadata={"dagster/row_count": grid.height})
        yield Output(summary, output_name="capacity_summary", metadata={"dagster/row_count": summary.height})
        metrics_row = pl.DataFrame([{
            "cutoff_date": cutoff, "run_id": run_id, "rows": ranked.height, "selected": selected.height,
            **capture,
            "stability_jaccard": metrics["stability_vs_previous"]["jaccard_top_n"],
            "checksum": checksum, "metrics_json": json.dumps(metrics, sort_keys=True, default=str),
        }], schema_overrides={"stability_jaccard": pl.Float64, **dict.fromkeys(capture, pl.Float64)})
        yield Output(metrics_row, output_name="whitespace_metrics",
                     metadata={"capture": MetadataValue.json(capture), "checksum": checksum,
                               "division_shares": MetadataValue.json(metrics["division_shares"])})

        # ---- checks ------------------------------------------------------------------------------------------
        for asset_key, frame, schema in (
            ("whitespace", ranked, whitespace_schema(cfg.divisions)),
            ("whitespace_thresholds", grid, capacity_grid_schema()),
            ("capacity_summary", summary, capacity_summary_schema(cfg.divisions)),
            ("whitespace_metrics", metrics_row, whitespace_metrics_schema()),
        ):
            yield contract_check_result(check_contract(frame, schema), asset_key=asset_key)
        violations = check_reasons(ranked.get_column("nba_reason"), ws.forbidden_tokens, ws.reason_max_chars)
        yield AssetCheckResult(check_name="explanations", asset_key="whitespace", passed=not violations,
                               severity=AssetCheckSeverity.ERROR,
                               description=f"{len(violations)} reasons violate the length/token rules" if violations
                               else f"all {ranked.height} reasons ≤ {ws.reason_max_chars} chars, no forbidden tokens",
                               metadata={"violations": MetadataValue.json(violations[:20])})
        uniform = percentile_uniformity(result.ranked)
        worst = float(uniform.get_column("max_deviation").max() or 0.0)
        yield AssetCheckResult(check_name="percentile_uniformity", asset_key="whitespace",
                               passed=worst <= UNIFORMITY_TOLERANCE, severity=AssetCheckSeverity.WARN,
                               description=f"largest KS distance from uniform {worst:.3f} (tolerance "
                                           f"{UNIFORMITY_TOLERANCE})",
                               metadata={"by_division": markdown_table(uniform.with_columns(
                                   pl.col("mean").round(3), pl.col("max_deviation").round(3)).to_dicts())})

    return [whitespace_ranking]
