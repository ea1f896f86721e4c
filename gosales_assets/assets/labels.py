"""Group `labels`: the one target definition, partitioned by division × cutoff (made by the op of the whole
partition, `assets.division_cutoff`)."""

from collections.abc import Generator

import polars as pl
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

from gosales_assets.assets.common import partition_checks, table_metadata
from gosales_assets.core.labels import FIRST_DATES_SCHEMA, build_labels, positives_by_cutoff
from gosales_assets.partitions import (
    add_months,
    cutoff_key,
    same_cutoff,
    split_key,
    window_end,
)
from gosales_assets.resources import ArtifactStore, WarehouseResource, cutoff_file, read_cutoff_table
from gosales_assets.settings import Settings, division_slug

# How a division × cutoff partition maps to rows of a partitioned DuckDB table.
DIVISION_CUTOFF_EXPR = {"division": "division", "cutoff": "cutoff_date"}
# The prevalence check compares a cutoff with the division's labels of the year before it.
PREVALENCE_LOOKBACK_MONTHS = 12
# `core.labels.first_dates` of the fact lines dated ≤ ?, computed by DuckDB.
FIRST_DATES_SQL = ("select customer_id, min(invoice_date) as first_line, min(invoice_date) filter (where revenue > 0) "
                   "as first_active from fact_transactions where invoice_date <= ? group by customer_id")


def labels_spec() -> AssetSpec:
    """`labels` of one division × cutoff, the first output of the op of the whole partition
    (`assets.division_cutoff`): the model frame made next joins them in memory."""
    return AssetSpec(
        "labels",
        group_name="labels",
        # The population is the customer features' roster of this cutoff (one definition of who is known at C). The
        # prevalence check recounts the year before from the facts it reads anyway instead of reading earlier
        # `labels` partitions (equal to what those labels hold; nothing more to declare).
        deps=["fact_transactions", "dim_customer", AssetDep("customer_features", partition_mapping=same_cutoff())],
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        description="Did the customer make a qualifying purchase of the division in (cutoff, cutoff + W]? Net of "
        "returns, denylisted SKUs excluded; censored partitions carry null labels.",
    )


def labels_check_specs(parts: PartitionsDefinition) -> list[AssetCheckSpec]:
    return partition_checks(parts, AssetCheckSpec(
        "prevalence_not_collapsed", asset="labels",
        description="WARN when a trainable partition has zero positives although the division's cutoffs of the "
        "year before had some (a broken join or a renamed division looks exactly like this)",
    ))


def labels_outputs(context: AssetExecutionContext, cfg: Settings, warehouse: WarehouseResource, artifacts: ArtifactStore
                   ) -> Generator[Output | AssetCheckResult, None, tuple[pl.DataFrame, pl.DataFrame]]:
    """Build the partition's labels; yield their output and check; return (labels, the fact rows read): the model
    frame made next joins the labels in memory and takes its ownership history from those rows (dated ≤ C). The
    warehouse is read first and let go of while the labels and the year before's positives are computed."""
    division, cutoff = split_key(context.partition_key)
    requested = cfg.window_months(division)
    widen = cfg.labels.auto_widen
    horizon = window_end(cutoff, max(requested, widen.max_window_months) if widen.enabled else requested)
    # Only rows up to the end of the widest window this partition could use are read.
    fact = warehouse.query(
        "select customer_id, invoice_date, division, sku, revenue from fact_transactions where invoice_date <= ?",
        [horizon],
    )
    # Who was active by C (and, for the year before's recount, each buyer's first lines): one grouped scan in DuckDB,
    # ~0.5 CPU-s at 4 million lines against ~1.3 for two passes over the lines read above in polars.
    firsts = warehouse.query(FIRST_DATES_SQL, [horizon]).cast(FIRST_DATES_SCHEMA)
    known = _roster(warehouse, cutoff, fact)
    earlier_cutoffs = _prevalence_cutoffs(cfg, cutoff)
    dim = warehouse.query("select customer_id, first_seen_date from dim_customer") if earlier_cutoffs else None
    with warehouse.released():
        res = build_labels(
            fact, known, division=division, cutoff=cutoff, window_months=requested, data_end=cfg.data.end_date,
            mode=cfg.labels.mode, min_net_revenue=cfg.labels.min_net_revenue, sku_denylist=cfg.labels.sku_denylist,
            auto_widen_min_positives=widen.min_positives if widen.enabled else None,
            auto_widen_max_months=widen.max_window_months if widen.enabled else None, firsts=firsts,
        )
        summary = res.summary() | {"mode": cfg.labels.mode, "window_end": str(window_end(cutoff, res.window_months))}
        artifacts.write_json(["labels", division_slug(division), cutoff.isoformat(), "label_summary.json"], summary)
        meta = table_metadata(res.frame, cfg) | {
            "positives": res.positives if res.positives is not None else MetadataValue.null(),
            "prevalence": res.prevalence if res.prevalence is not None else MetadataValue.null(),
            "window_months": res.window_months,
            "requested_window_months": requested,
            "widened": res.widened,
            "censored": res.censored,
            "cohorts": MetadataValue.json(dict(sorted(res.frame.group_by("cohort").len().iter_rows()))),
        }
        earlier = _earlier_positives(cfg, dim, fact, firsts, division, earlier_cutoffs, requested)
    if res.widened:
        context.log.info(f"{division} {cutoff}: window widened from {requested} to {res.window_months} months "
                         f"to reach {widen.min_positives} positives (got {res.positives})")
    yield Output(res.frame, output_name="labels", metadata=meta)

    collapsed = (not res.censored) and res.positives == 0 and any(p > 0 for p in earlier.values())
    yield AssetCheckResult(
        check_name="prevalence_not_collapsed",
        asset_key="labels",
        passed=not collapsed,
        severity=AssetCheckSeverity.WARN,
        description=(f"zero positives at {cutoff} while earlier cutoffs had {earlier}" if collapsed
                     else "censored: prevalence unknown" if res.censored
                     else f"{res.positives} positives; earlier cutoffs {earlier or 'none materialized'}"),
        metadata={"earlier_positives": MetadataValue.json(earlier)},
    )
    return res.frame, fact


def _roster(warehouse: WarehouseResource, cutoff, fact: pl.DataFrame) -> pl.DataFrame:
    """customer_id of every customer known at C, from `customer_features` of C. An empty roster while the sales log
    has lines by C means the features of C were never built: refuse, rather than label nobody."""
    if cutoff_file(warehouse.database, "customer_features", cutoff).is_file():
        roster = read_cutoff_table(warehouse.database, "customer_features", cutoff, columns=["customer_id"])
    else:
        roster = pl.DataFrame({"customer_id": []}, schema={"customer_id": pl.String})
    if roster.height == 0 and fact.filter(pl.col("invoice_date") <= cutoff).height:
        raise ValueError(f"labels at {cutoff}: customer_features has no rows for cutoff {cutoff} (the labels' "
                         f"population); materialize customer_features for {cutoff_key(cutoff)} first")
    return roster


def _prevalence_cutoffs(cfg: Settings, cutoff) -> list:
    """The configured cutoffs of the year before C (C − 12 .. C − 1 months) the prevalence check compares with."""
    return [c for c in cfg.cutoffs if add_months(cutoff, -PREVALENCE_LOOKBACK_MONTHS) <= c <= add_months(cutoff, -1)]


def _earlier_positives(cfg: Settings, dim: pl.DataFrame | None, fact: pl.DataFrame, firsts: pl.DataFrame,
                       division: str, earlier: list, window_months: int) -> dict[str, int]:
    """Positives of the division at the `earlier` cutoffs whose window (the requested one, not widened) had closed by
    the data end, recounted from the facts this partition read (they reach C + W ≥ those windows' ends) and the
    customers' first dates `dim` and first lines `firsts`."""
    if not earlier:
        return {}
    counts = positives_by_cutoff(fact, dim, division=division, cutoffs=earlier, window_months=window_months,
                                 data_end=cfg.data.end_date, mode=cfg.labels.mode,
                                 min_net_revenue=cfg.labels.min_net_revenue, sku_denylist=cfg.labels.sku_denylist,
                                 firsts=firsts)
    return {str(c): n for c, n in sorted(counts.items())}
