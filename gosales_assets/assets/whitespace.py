"""Group `whitespace`: the ranked, explained cross-sell list per cutoff, its capacity grid, the capacity plan
per rep × division, and the run's metrics; and `ranking_decision`, which ordering of the pairs the list follows (the
champion), decided on the closed windows of earlier lists. Files: <artifacts>/whitespace/<cutoff>/.

`ranking_decision` at C (`core.ranking_decision`) reads the earlier lists whose label window has closed by C, the
fact lines dated ≤ C (what the listed pairs bought in their window) and its own previous decision; the list at C
follows the champion of the decision at C (`core.ranking`). Both are outputs of one step: the decision reads earlier
lists and the list reads the decision, a cycle Dagster does not allow between two steps. The step decides in a thread
while the list computes its signals, which need no ordering (the list waits for the champion to order its rows), and
writes the list's files in it while the tables are stored.

The list, its metrics, log and files are assembled by `core.whitespace` (`build_whitespace`, `empty_whitespace`);
the asset reads the declared inputs, writes the files and yields the tables, their metadata and the checks. A
division whose model is held or skipped at the cutoff is listed by its best simple peer (`peer_scores`, labelled
`score_source` peer:<name>) when `whitespace.peer_fallback` is on."""

import datetime as dt
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    MetadataValue,
    Output,
    multi_asset,
)

from gosales_assets.assets.common import contract_check_result, image_markdown, markdown_table, partition_checks
from gosales_assets.assets.features import fact_until
from gosales_assets.core.calendar import add_months, window_end
from gosales_assets.core.charts import ranking_decision_chart
from gosales_assets.core.contracts import check_contract
from gosales_assets.core.ingest import read_eligibility
from gosales_assets.core.ranking import Deferred, resolved
from gosales_assets.core.ranking_decision import (
    LIST_COLUMNS,
    RankingDecision,
    decide,
    decision_frame,
    decision_schema,
    realized_outcomes,
    window_captures,
    window_rows,
)
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
from gosales_assets.resources import (
    CUTOFF_FILE_TABLES,
    FILES_IO_MANAGER,
    RANKING_POOL,
    ArtifactStore,
    GosalesSettings,
    WarehouseResource,
    ensure_files_view,
    read_cutoff_table,
)
from gosales_assets.settings import RankingSettings, Settings

OUTPUTS = ("whitespace", "whitespace_thresholds", "capacity_summary", "whitespace_metrics")
DECISION_FILE_PREFIX = "ranking_"  # the decision's files share the cutoff's folder with the list's


def _earlier_lists(warehouse: WarehouseResource, cutoff: dt.date, first: int, last: int, newest: int) -> pl.DataFrame:
    """The model rows of the `newest` whitespace lists with model rows `first`..`last` months before C (within the
    declared look-back of the decision; the lists of the last N windows at most), only the columns the decision
    reads (a column an older list lacks is left out: `window_rows` says so)."""
    if not warehouse.table_exists("whitespace"):
        return pl.DataFrame()
    have = warehouse.columns("whitespace")
    model = "coalesce(score_source, 'model') = 'model'" if "score_source" in have else "true"
    cutoffs = warehouse.query(f"select cutoff_date from whitespace where cutoff_date between ? and ? and {model} "
                              "group by 1 order by 1 desc limit ?",
                              [add_months(cutoff, -first), add_months(cutoff, -last), newest])
    if cutoffs.height == 0:
        return pl.DataFrame()
    columns = ", ".join(f'"{c}"' for c in ("cutoff_date", *LIST_COLUMNS) if c in have)
    return warehouse.query(f"select {columns} from whitespace where cutoff_date in (select unnest(?)) and {model} "
                           "order by cutoff_date, rank", [cutoffs.get_column("cutoff_date").to_list()])


def _previous_champion(warehouse: WarehouseResource, cutoff: dt.date, lookback: int,
                       rs: RankingSettings) -> tuple[str, str]:
    """The champion of the newest earlier decision within the look-back, or the configured initial champion."""
    if warehouse.table_exists("ranking_decision"):
        row = warehouse.query("select cutoff_date, champion from ranking_decision where cutoff_date between ? and ? "
                              "order by cutoff_date desc limit 1", [add_months(cutoff, -lookback),
                                                                    add_months(cutoff, -1)])
        if row.height:
            return row.item(0, "champion"), f"the decision at {row.item(0, 'cutoff_date')}"
    return rs.initial_champion, "the configured initial champion (whitespace.ranking.initial_champion)"


def _clear_list_files(artifacts: ArtifactStore, cutoff: dt.date) -> None:
    """Remove an earlier list's exports of the cutoff, not the decision's files beside them."""
    folder = artifacts.path("whitespace", cutoff.isoformat())
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_dir():
                shutil.rmtree(f, ignore_errors=True)
            elif not f.name.startswith(DECISION_FILE_PREFIX):
                f.unlink(missing_ok=True)


def _decision_metadata(decision: RankingDecision, captures: pl.DataFrame, png: bytes) -> dict:
    col = {"count": "capture_count", "revenue": "capture_revenue"}[decision.objective]
    per_window = (captures.select("window_cutoff", "ordering", pl.col(col).round(3))
                  .pivot(on="ordering", index="window_cutoff", values=col).sort("window_cutoff")
                  if captures.height else pl.DataFrame())
    comparisons = [{"ordering": o, "minus": decision.champion_before, "diff": round(c["diff"], 3),
                    "ci_low": round(c["ci_low"], 3), "ci_high": round(c["ci_high"], 3)}
                   for o, c in decision.comparisons.items()]
    return {
        "champion": decision.champion, "champion_before": decision.champion_before,
        "champion_before_from": decision.champion_before_source, "changed": decision.changed,
        "reason": decision.reason, "objective": f"capture@{decision.k_pct:g}% by {decision.objective}",
        "windows": f"{len(decision.windows_used)} of {decision.windows_required}: "
                   f"{', '.join(str(w) for w in decision.windows_used) or 'none'}",
        "per_window_capture": markdown_table([{k: str(v) if isinstance(v, dt.date) else v for k, v in r.items()}
                                              for r in per_window.to_dicts()]),
        "comparisons": markdown_table(comparisons),
        "chart": image_markdown(png, "ranking decision"),
    }


def _previous(warehouse: WarehouseResource, before: dt.date, months: int) -> tuple[dt.date | None, pl.DataFrame]:
    """The newest non-empty whitespace list in the `months` before C (part of the declared look-back): what the
    stability against it reads, its pairs, ranks and what ordered them (a list from before `score_source` has no
    such column: all its rows were the model's)."""
    if not warehouse.table_exists("whitespace"):
        return None, pl.DataFrame()
    prev = warehouse.query("select max(cutoff_date) from whitespace where cutoff_date between ? and ?",
                           [add_months(before, -months), add_months(before, -1)]).item()
    if prev is None:
        return None, pl.DataFrame()
    have = warehouse.columns("whitespace")
    columns = ", ".join(c for c in ("customer_id", "division", "rank", "score_source") if c in have)
    return prev, warehouse.query(f"select {columns} from whitespace where cutoff_date = ?", [prev])


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


class _DecisionReads(NamedTuple):
    """What the ranking decision at C reads of the warehouse: the earlier lists it judges, the champion before."""

    lists: pl.DataFrame
    champion_before: str
    champion_before_source: str


def _decision_reads(warehouse: WarehouseResource, cfg: Settings, cutoff: dt.date, lookback: int,
                    shortest_window: int) -> _DecisionReads:
    rs = cfg.whitespace.ranking
    return _DecisionReads(_earlier_lists(warehouse, cutoff, lookback, shortest_window, rs.windows),
                          *_previous_champion(warehouse, cutoff, lookback, rs))


def _decide(context, cfg: Settings, artifacts: ArtifactStore, cutoff: dt.date, fact: pl.DataFrame,
            reads: _DecisionReads) -> tuple[RankingDecision, list]:
    """The `ranking_decision` at C (`core.ranking_decision`) with its files, and what the step yields for it, from
    what `_decision_reads` read and the fact lines dated ≤ C. Logs nothing: it runs beside the list (a thread of the
    step), and the step logs its decision."""
    rs = cfg.whitespace.ranking
    c = cutoff.isoformat()
    rows, notes = window_rows(reads.lists, as_of=cutoff, window_months={d: cfg.window_months(d) for d in cfg.divisions})
    outcomes = realized_outcomes(rows, fact, as_of=cutoff,
                                 min_net_revenue=cfg.labels.min_net_revenue, sku_denylist=cfg.labels.sku_denylist)
    captures, evidence = window_captures(outcomes, rs.k_pct)
    before, source = reads.champion_before, reads.champion_before_source
    decision = decide(captures, evidence, cutoff=cutoff, champion_before=before, champion_before_source=source,
                      settings=rs)
    frame = decision_frame(decision, run_id=context.run.run_id, competitors=rs.competitors)
    png = ranking_decision_chart(captures, decision)
    for name, content in {f"ranking_windows_{c}.csv": captures,
                          f"ranking_decision_{c}.json": decision.to_dict() | {"left_out": notes},
                          f"ranking_decision_{c}.png": png}.items():
        artifacts.write(["whitespace", c, name], content)
    return decision, [
        Output(frame, output_name="ranking_decision", metadata={
            "dagster/row_count": frame.height, **_decision_metadata(decision, captures, png),
            "left_out": MetadataValue.json(notes)}),
        contract_check_result(check_contract(frame, decision_schema()), asset_key="ranking_decision"),
    ]


def build_whitespace_assets(settings: Settings) -> list[AssetsDefinition]:
    all_divisions = same_cutoff()
    cutoffs_def = cutoff_partitions(settings)
    lookback = whitespace_lookback(settings)
    shortest_window = settings.window_range()[0]
    per_cutoff = {"partition_expr": "cutoff_date"}
    list_reads = {AssetKey(k) for k in ("icp_scores", "market_basket_rules", "als_embeddings", "fact_transactions",
                                        "dim_customer", "division_model", "peer_scores", "whitespace")}

    @multi_asset(
        name="whitespace_ranking",
        group_name="whitespace",
        partitions_def=cutoffs_def,
        # Its own pool (resources.RANKING_POOL): the chain of lists advances beside the division runs queued before
        # it instead of after all of them; it takes turns with them for the file through the warehouse's lease.
        pool=RANKING_POOL,
        # Earlier lists of this asset are read too (stability against the previous list, the challenger's realized
        # outcomes, the closed windows of the ranking decision): a declared self-dependency, so a backfill builds the
        # lists in date order. The verdicts and the peers' orderings of the cutoff's divisions feed the peer fallback
        # of a division whose model is held or skipped. The previous ranking decision gives the champion before.
        deps=[AssetDep("icp_scores", partition_mapping=all_divisions), "market_basket_rules", "als_embeddings",
              "fact_transactions", "dim_customer",
              AssetDep("division_model", partition_mapping=all_divisions),
              AssetDep("peer_scores", partition_mapping=all_divisions),
              AssetDep("whitespace", partition_mapping=earlier_cutoffs(lookback, 1)),
              AssetDep("ranking_decision", partition_mapping=earlier_cutoffs(lookback, 1))],
        # The decision reads earlier lists and the list at C follows the decision at C: Dagster admits no cycle
        # between two assets' steps, so both are outputs of this one step (the list waits for the decision's
        # champion to order its rows). Its own reads: the earlier lists (windows closed by C are C' ≤ C − W_min), the
        # facts, its previous decision.
        internal_asset_deps={"ranking_decision": {AssetKey("whitespace"), AssetKey("fact_transactions"),
                                                  AssetKey("ranking_decision")},
                             **dict.fromkeys(OUTPUTS, list_reads)},
        # Not subsettable: the decision and the list of a cutoff are made together, in one run (a subsettable step was
        # split by Dagster's backfill into a run for the decision, one for the list and one for its capacity tables,
        # each computing the whole list again). Selecting any of these assets in the UI selects all five.
        can_subset=False,
        # A cutoff with no published division still materializes: empty slices and a metrics row with the reason.
        # The list is published as a file per cutoff beside the warehouse (resources.files_dir; a view of the files
        # in it), without the warehouse's lease; the decision and the small tables in the warehouse.
        outs={name: AssetOut(metadata=per_cutoff, description=text,
                             io_manager_key=FILES_IO_MANAGER if name in CUTOFF_FILE_TABLES else "io_manager")
              for name, text in {
            "ranking_decision": "Which ordering the cutoff's list follows (the champion: blend, p_icp, expected_value; "
                                "legacy as a shadow), decided on the last N closed windows of earlier lists by "
                                "capture@K% of realized purchases (count or revenue) and a paired bootstrap: one row "
                                "per ordering with its role, mean captures, difference from the champion before and "
                                "its interval, and the decision with its reason (also with too few closed windows)",
            "whitespace": "Ranked, eligible, explained (customer, division) cross-sell opportunities in the order "
                          "of the cutoff's champion (`ordering`, from ranking_decision; every ordering's score is "
                          "kept as `score_<ordering>`); `selected` marks the capacity plan; `score_source` says what "
                          "ordered a row: `model`, or `peer:<name>` for a division without a promoted model (no "
                          "p_icp, listed last)",
            "whitespace_thresholds": "Capacity grid: rows, score threshold, expected and realized buyers per "
                                     "capacity %",
            "capacity_summary": "Selected opportunities per rep × division: rows, mean score, expected buyers, "
                                "expected value",
            "whitespace_metrics": "One row per cutoff: rows, coverage, division shares, capture@K, stability, "
                                  "checksum",
        }.items()},
        check_specs=partition_checks(
            cutoffs_def,
            AssetCheckSpec("contract", asset="ranking_decision", blocking=True,
                           description="One row per ordering, exactly one champion, captures in [0, 1], a reason"),
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
        cutoff = parse_cutoff(context.partition_key)
        # Every read of the warehouse first — the fact lines dated ≤ C once for both (at 500,000 customers ~1.7 CPU-s a
        # read), the earlier lists, the cutoff's scores and signals — then the decision, the list in its champion's
        # order, their files, contracts and metadata let go of it (another run uses the file meanwhile); the tables are
        # written after, the list's first, because Dagster wants a step's outputs in the order of their declared reads
        # (the decision reads earlier lists).
        fact = fact_until(warehouse, cutoff)
        decision_reads = _decision_reads(warehouse, cfg, cutoff, lookback, shortest_window)
        list_reads = _list_reads(warehouse, cfg, cutoff, lookback)
        # A second thread (numpy, polars and DuckDB work outside the GIL) takes what does not wait for the rest: the
        # decision while the list computes its signals (the list needs the champion only to order what it has
        # computed, and waits for the decision there), then the list's files while its tables are written. Each
        # works on what was read or built before it, so the bytes are those of one after the other.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="whitespace") as pool:
            with warehouse.released():
                deciding = pool.submit(_decide, context, cfg, artifacts, cutoff, fact, decision_reads)
                list_events, unwritten = _whitespace_list(
                    context, cfg, artifacts, cutoff, lambda: deciding.result()[0].champion,
                    lambda: f"ranking_decision at {cutoff}: {deciding.result()[0].reason}", fact, list_reads)
                decision, decision_events = deciding.result()
                # at 500,000 customers the list's CSVs are ~700 MB: written beside the tables
                writing = pool.submit(_write_files, artifacts, unwritten) if unwritten is not None else None
                (context.log.warning if decision.changed else context.log.info)(
                    f"ranking_decision {context.partition_key}: {decision.champion} — {decision.reason}")
                # the list's file needs no lease (its IO manager writes beside the warehouse); the tables do
                yield from (e for e in list_events if _output_name(e) == "whitespace")
            yield from (e for e in list_events if _output_name(e) != "whitespace")
            with warehouse.connect() as conn:
                ensure_files_view(conn, warehouse.database, "whitespace")
            yield from decision_events
            if writing is not None:
                writing.result()  # the step ends with its files written (or with the error that stopped them)

    return [whitespace_ranking]


def _output_name(event) -> str | None:
    return event.output_name if isinstance(event, Output) else None


class _ListReads(NamedTuple):
    """What the list at C reads of the warehouse (`_list_reads`); the signals only when there is something to rank."""

    scores: pl.DataFrame
    fallback: pl.DataFrame
    rules: pl.DataFrame | None = None
    als: pl.DataFrame | None = None
    challenger_cutoff: dt.date | None = None
    challenger_rows: pl.DataFrame | None = None
    previous_cutoff: dt.date | None = None
    previous: pl.DataFrame | None = None
    customers: pl.DataFrame | None = None


def _list_reads(warehouse: WarehouseResource, cfg: Settings, cutoff: dt.date, lookback: int) -> _ListReads:
    ws = cfg.whitespace
    scores = warehouse.query("select customer_id, division, icp_score, bought_in_division from icp_scores "
                             "where cutoff_date = ? order by division, customer_id", [cutoff]) \
        if warehouse.table_exists("icp_scores") else pl.DataFrame()
    fallback = _peer_fallback(warehouse, cutoff) if ws.peer_fallback else pl.DataFrame()
    if scores.height == 0 and fallback.height == 0:
        return _ListReads(scores, fallback)
    train_cutoff, train_rows = (_challenger_training(warehouse, cutoff, cfg.window_range()[1], lookback)
                                if ws.challenger_enabled else (None, None))
    prev_cutoff, previous = _previous(warehouse, cutoff, ws.history_months)
    return _ListReads(
        scores, fallback,
        rules=warehouse.query("select * exclude (cutoff_date) from market_basket_rules where cutoff_date = ?",
                              [cutoff]),
        als=read_cutoff_table(warehouse.database, "als_embeddings", cutoff).drop("cutoff_date"),
        challenger_cutoff=train_cutoff, challenger_rows=train_rows, previous_cutoff=prev_cutoff, previous=previous,
        customers=warehouse.query("select * from dim_customer"))


def _whitespace_list(context, cfg: Settings, artifacts: ArtifactStore, cutoff: dt.date, champion: Deferred,
                     champion_note: Deferred, fact: pl.DataFrame, reads: _ListReads
                     ) -> tuple[list, WhitespaceBuild | None]:
    """The list at C in the champion's order and what the step yields for its four tables, from what `_list_reads`
    read and the fact lines dated ≤ C; and the build whose files (`_write_files`) are still to be written (None: an
    empty list, whose files are written already). The champion and its note may be calls (`core.ranking.Deferred`),
    made once the list's signals are computed (an empty list needs neither)."""
    ws = cfg.whitespace
    run_id = context.run.run_id
    c = cutoff.isoformat()
    if reads.scores.height == 0 and reads.fallback.height == 0:
        # Early cutoffs have no model yet (no closed training window); nothing to rank is not an error.
        build = empty_whitespace(cutoff, run_id, cfg.divisions)
        reason = build.reason
        context.log.warning(f"whitespace {context.partition_key}: empty list — {reason}")
        # The partition's files say the same as its tables: an earlier list's exports are not left behind.
        _clear_list_files(artifacts, cutoff)
        _write_files(artifacts, build)
        events: list = [Output(frame, output_name=name, metadata={"dagster/row_count": frame.height, "reason": reason,
                                                                  "published_divisions": 0})
                        for name, frame in build.tables.items()]
        events += [AssetCheckResult(check_name=check, asset_key=asset_key, passed=True,
                                    description=f"not applicable: {reason}", metadata={"applicable": False})
                   for asset_key, check in [("whitespace", "explanations"), ("whitespace", "percentile_uniformity"),
                                            *((a, "contract") for a in OUTPUTS)]]
        return events, None

    build = build_whitespace(
        reads.scores, fact, reads.customers, cutoff=cutoff, run_id=run_id, settings=ws, divisions=cfg.divisions,
        rules=reads.rules, als=reads.als, eligibility=read_eligibility(cfg.landing_dir), previous=reads.previous,
        previous_cutoff=reads.previous_cutoff, challenger_rows=reads.challenger_rows,
        challenger_cutoff=reads.challenger_cutoff, challenger_seed=cfg.seeds.modeling,
        max_window_months=cfg.window_range()[1], fallback=reads.fallback, ordering=champion,
        ordering_note=champion_note)
    champion, champion_note = resolved(champion), resolved(champion_note)  # known: the list is ordered
    peer_fallback = build.metrics["peer_fallback"]
    for division, entry in peer_fallback["divisions"].items():
        context.log.warning(f"whitespace {context.partition_key}: {division} has no promoted model; its "
                            f"{entry['rows']} rows are ordered by {entry['score_source']} (labelled, no p_icp)")

    # ---- tables, metadata (the files: the caller) -----------------------------------------------------------------
    ranked, selected = build.ranked, build.selected
    weights_note = build.weights.filter(pl.col("adjusted")).select("division", "note")
    events = [
        Output(ranked, output_name="whitespace", metadata={
            "dagster/row_count": ranked.height, "selected": selected.height, "checksum": build.checksum,
            "ordering": champion, "ordering_from": champion_note,
            "published_divisions": len(build.scored_divisions),
            "missing_divisions": ", ".join(build.missing_divisions) or "none",
            "peer_fallback": markdown_table([{"division": d, **e} for d, e in peer_fallback["divisions"].items()]),
            "weight_adjustments": markdown_table(weights_note.to_dicts()),
            "eligibility": markdown_table(build.eligibility.select("rule", "active", "removed", "kept").to_dicts()),
            "top_10": markdown_table(ranked.head(10).select("rank", "division", "customer_id",
                                                            pl.col("score").round(3), "score_source",
                                                            "nba_reason").to_dicts()),
            "export": MetadataValue.path(str(artifacts.path("whitespace", c, f"whitespace_{c}.csv"))),
        }),
        Output(build.grid, output_name="whitespace_thresholds", metadata={"dagster/row_count": build.grid.height}),
        Output(build.summary, output_name="capacity_summary", metadata={"dagster/row_count": build.summary.height}),
        Output(build.metrics_row, output_name="whitespace_metrics",
               metadata={"capture": MetadataValue.json(build.capture), "checksum": build.checksum,
                         "division_shares": MetadataValue.json(build.metrics["division_shares"])}),
    ]

    # ---- checks ------------------------------------------------------------------------------------------------------
    events += [contract_check_result(report, asset_key=asset_key)
               for asset_key, report in whitespace_contracts(build, cfg.divisions).items()]
    violations = build.reason_rule_violations
    events.append(AssetCheckResult(check_name="explanations", asset_key="whitespace", passed=not violations,
                                   severity=AssetCheckSeverity.ERROR,
                                   description=f"{len(violations)} reasons violate the length/token rules"
                                   if violations else f"all {ranked.height} reasons ≤ {ws.reason_max_chars} chars, "
                                                      "no forbidden tokens",
                                   metadata={"violations": MetadataValue.json(violations[:20])}))
    worst = build.max_uniformity_deviation
    events.append(AssetCheckResult(check_name="percentile_uniformity", asset_key="whitespace",
                                   passed=worst <= UNIFORMITY_TOLERANCE, severity=AssetCheckSeverity.WARN,
                                   description=f"largest KS distance from uniform {worst:.3f} (tolerance "
                                               f"{UNIFORMITY_TOLERANCE})",
                                   metadata={"by_division": markdown_table(build.uniformity.with_columns(
                                       pl.col("mean").round(3), pl.col("max_deviation").round(3)).to_dicts())}))
    return events, build
