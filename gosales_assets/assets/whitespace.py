"""Group `whitespace`: the ranked, explained cross-sell list per cutoff, its capacity grid, the capacity plan
per rep × division, and the run's metrics. Files: <artifacts>/whitespace/<cutoff>/.

The list, its metrics, log and files are assembled by `core.whitespace` (`build_whitespace`, `empty_whitespace`);
the asset reads the declared inputs, writes the files and yields the tables, their metadata and the checks. A
division whose model is held or skipped at the cutoff is listed by its best simple peer (`peer_scores`, labelled
`score_source` peer:<name>) when `whitespace.peer_fallback` is on."""

import datetime as dt
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
from gosales_assets.core.ingest import read_eligibility
from gosales_assets.core.whitespace import (
    UNIFORMITY_TOLERANCE,
    WhitespaceBuild,
    build_whitespace,
    empty_whitespace,
    whitespace_contracts,
)
from gosales_assets.core.registry import HELD, SKIPPED
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


def _peer_fallback(warehouse: WarehouseResource, cutoff: dt.date) -> pl.DataFrame:
    """The best peer's ordering of every division whose model is held or skipped at C (its registry row says so),
    with the verdict and its reason: the rows `core.ranking` lists after the model rows."""
    if not (warehouse.table_exists("peer_scores") and warehouse.table_exists("division_model")):
        return pl.DataFrame()
    return warehouse.query(
        "select p.customer_id, p.division, p.best_peer as peer, p.best_peer_basis as peer_basis, "
        "p.best_peer_score as peer_score, m.status as model_status, m.reason as model_reason, p.bought_in_division "
        "from peer_scores p join division_model m on m.division = p.division and m.cutoff_date = p.cutoff_date "
        f"where p.cutoff_date = ? and m.status in ('{HELD}', '{SKIPPED}') order by p.division, p.customer_id",
        [cutoff])


def _write_files(artifacts: ArtifactStore, build: WhitespaceBuild) -> None:
    """The files of `<artifacts>/whitespace/<cutoff>/`, by suffix: a table as CSV, a dict as JSON, the log as text."""
    rel = ["whitespace", build.cutoff.isoformat()]
    for name, content in build.files.items():
        artifacts.write([*rel, name], content)


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
        # The verdicts and the peers' orderings of the cutoff's divisions feed the peer fallback of a division whose
        # model is held or skipped.
        deps=[AssetDep("icp_scores", partition_mapping=all_divisions), "market_basket_rules", "als_embeddings",
              "fact_transactions", "dim_customer",
              AssetDep("division_model", partition_mapping=all_divisions),
              AssetDep("peer_scores", partition_mapping=all_divisions),
              AssetDep("whitespace", partition_mapping=earlier_cutoffs(lookback, 1))],
        # A cutoff with no published division still materializes: empty slices and a metrics row with the reason.
        outs={name: AssetOut(metadata=per_cutoff, description=text) for name, text in {
            "whitespace": "Ranked, eligible, explained (customer, division) cross-sell opportunities; `selected` "
                          "marks the capacity plan; `score_source` says what ordered a row: `model`, or "
                          "`peer:<name>` for a division without a promoted model (no p_icp, listed last)",
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
        c = cutoff.isoformat()
        scores = warehouse.query("select customer_id, division, icp_score, bought_in_division from icp_scores "
                                 "where cutoff_date = ? order by division, customer_id", [cutoff]) \
            if warehouse.table_exists("icp_scores") else pl.DataFrame()
        fallback = _peer_fallback(warehouse, cutoff) if ws.peer_fallback else pl.DataFrame()
        if scores.height == 0 and fallback.height == 0:
            # Early cutoffs have no model yet (no closed training window); nothing to rank is not an error.
            build = empty_whitespace(cutoff, run_id, cfg.divisions)
            reason = build.reason
            context.log.warning(f"whitespace {context.partition_key}: empty list — {reason}")
            # The partition's files say the same as its tables: an earlier list's exports are not left behind.
            shutil.rmtree(artifacts.path("whitespace", c), ignore_errors=True)
            _write_files(artifacts, build)
            for name, frame in build.tables.items():
                yield Output(frame, output_name=name, metadata={"dagster/row_count": frame.height, "reason": reason,
                                                                "published_divisions": 0})
            for asset_key, check in [("whitespace", "explanations"), ("whitespace", "percentile_uniformity"),
                                     *((a, "contract") for a in OUTPUTS)]:
                yield AssetCheckResult(check_name=check, asset_key=asset_key, passed=True,
                                       description=f"not applicable: {reason}", metadata={"applicable": False})
            return

        # ---- inputs (the declared reads) ----------------------------------------------------------------------
        rules = warehouse.query("select * exclude (cutoff_date) from market_basket_rules where cutoff_date = ?",
                                [cutoff])
        als = warehouse.query("select * exclude (cutoff_date) from als_embeddings where cutoff_date = ?", [cutoff])
        max_w = cfg.window_range()[1]
        train_cutoff, train_rows = (_challenger_training(warehouse, cutoff, max_w, lookback)
                                    if ws.challenger_enabled else (None, None))
        prev_cutoff, previous = _previous(warehouse, cutoff, ws.history_months)
        build = build_whitespace(
            scores, fact_until(warehouse, cutoff), warehouse.query("select * from dim_customer"), cutoff=cutoff,
            run_id=run_id, settings=ws, divisions=cfg.divisions, rules=rules, als=als,
            eligibility=read_eligibility(cfg.landing_dir), previous=previous, previous_cutoff=prev_cutoff,
            challenger_rows=train_rows, challenger_cutoff=train_cutoff, challenger_seed=cfg.seeds.modeling,
            max_window_months=max_w, fallback=fallback)
        peer_fallback = build.metrics["peer_fallback"]
        for division, entry in peer_fallback["divisions"].items():
            context.log.warning(f"whitespace {context.partition_key}: {division} has no promoted model; its "
                                f"{entry['rows']} rows are ordered by {entry['score_source']} (labelled, no p_icp)")

        # ---- files, tables, metadata -----------------------------------------------------------------------
        _write_files(artifacts, build)
        ranked, selected = build.ranked, build.selected
        weights_note = build.weights.filter(pl.col("adjusted")).select("division", "note")
        yield Output(ranked, output_name="whitespace", metadata={
            "dagster/row_count": ranked.height, "selected": selected.height, "checksum": build.checksum,
            "published_divisions": len(build.scored_divisions),
            "missing_divisions": ", ".join(build.missing_divisions) or "none",
            "peer_fallback": markdown_table([{"division": d, **e} for d, e in peer_fallback["divisions"].items()]),
            "weight_adjustments": markdown_table(weights_note.to_dicts()),
            "eligibility": markdown_table(build.eligibility.select("rule", "active", "removed", "kept").to_dicts()),
            "top_10": markdown_table(ranked.head(10).select("rank", "division", "customer_id",
                                                            pl.col("score").round(3), "score_source",
                                                            "nba_reason").to_dicts()),
            "export": MetadataValue.path(str(artifacts.path("whitespace", c, f"whitespace_{c}.csv"))),
        })
        yield Output(build.grid, output_name="whitespace_thresholds", metadata={"dagster/row_count": build.grid.height})
        yield Output(build.summary, output_name="capacity_summary",
                     metadata={"dagster/row_count": build.summary.height})
        yield Output(build.metrics_row, output_name="whitespace_metrics",
                     metadata={"capture": MetadataValue.json(build.capture), "checksum": build.checksum,
                               "division_shares": MetadataValue.json(build.metrics["division_shares"])})

        # ---- checks ------------------------------------------------------------------------------------------
        for asset_key, report in whitespace_contracts(build, cfg.divisions).items():
            yield contract_check_result(report, asset_key=asset_key)
        violations = build.reason_rule_violations
        yield AssetCheckResult(check_name="explanations", asset_key="whitespace", passed=not violations,
                               severity=AssetCheckSeverity.ERROR,
                               description=f"{len(violations)} reasons violate the length/token rules" if violations
                               else f"all {ranked.height} reasons ≤ {ws.reason_max_chars} chars, no forbidden tokens",
                               metadata={"violations": MetadataValue.json(violations[:20])})
        worst = build.max_uniformity_deviation
        yield AssetCheckResult(check_name="percentile_uniformity", asset_key="whitespace",
                               passed=worst <= UNIFORMITY_TOLERANCE, severity=AssetCheckSeverity.WARN,
                               description=f"largest KS distance from uniform {worst:.3f} (tolerance "
                                           f"{UNIFORMITY_TOLERANCE})",
                               metadata={"by_division": markdown_table(build.uniformity.with_columns(
                                   pl.col("mean").round(3), pl.col("max_deviation").round(3)).to_dicts())})

    return [whitespace_ranking]
