"""Group `features`: per-cutoff customer features, basket rules, ALS similarities; per division × cutoff model
frames (made with their labels by the op of the whole partition, `assets.division_cutoff`). Every builder reads
only fact rows dated ≤ the cutoff (filtered in SQL, and again inside the builder); the leakage checks prove it on
every materialization."""

import datetime as dt
import json
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
    AssetSpec,
    MetadataValue,
    Output,
    PartitionsDefinition,
    multi_asset,
)

from gosales_assets.assets.common import markdown_table, partition_checks, table_metadata
from gosales_assets.assets.labels import DIVISION_CUTOFF_EXPR, labels_outputs
from gosales_assets.assets.validation import roster_activity_output, roster_activity_reads
from gosales_assets.core.als import fit_als
from gosales_assets.core.basket import customer_portfolios, market_basket_rules
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.division_features import TARGET_SIGNAL_COLUMNS, build_division_features
from gosales_assets.core.features import build_customer_features, feature_catalog, feature_stats
from gosales_assets.core.leakage import invariance_customers, invariance_report, source_date_audit
from gosales_assets.core.leakage_records import (
    audit_record,
    cutoff_record_path,
    division_features_record,
    division_record_rel,
)
from gosales_assets.core.star import in_key_order
from gosales_assets.partitions import (
    cutoff_partitions,
    parse_cutoff,
    same_cutoff,
    split_key,
)
from gosales_assets.resources import (
    FILES_IO_MANAGER,
    WAREHOUSE_POOL,
    ArtifactStore,
    GosalesSettings,
    WarehouseResource,
    ensure_files_view,
    read_cutoff_table,
)
from gosales_assets.settings import Settings, division_slug

FACT_COLUMNS_SQL = ("invoice_id, line_no, invoice_date, customer_id, sku, division, quantity, revenue, "
                    "gross_profit, rep_id, is_return")
LABEL_COLUMNS = ("division", "cutoff_date", "window_months", "cohort", "net_revenue_window", "label", "censored")


def fact_until(warehouse: WarehouseResource, cutoff: dt.date) -> pl.DataFrame:
    """Fact rows dated ≤ cutoff, in LINE_ORDER: the only history any cutoff-C computation is given."""
    return in_key_order(warehouse.query(f"select {FACT_COLUMNS_SQL} from fact_transactions where invoice_date <= ?",
                                        [cutoff]))


def fact_until_for(warehouse: WarehouseResource, cutoff: dt.date, customer_ids: pl.Series) -> pl.DataFrame:
    """`fact_until` of these customers only (in no particular order: for sums by customer, which exact cents make
    order-free)."""
    with warehouse.connect() as conn:
        conn.register("_customers", pl.DataFrame({"customer_id": customer_ids.cast(pl.String)}).to_arrow())
        return conn.execute(f"select {FACT_COLUMNS_SQL} from fact_transactions where invoice_date <= ? and "
                            "customer_id in (select customer_id from _customers)", [cutoff]).pl()


def ownership_rows(fact: pl.DataFrame, cutoff: dt.date) -> pl.DataFrame:
    """The fact rows dated ≤ cutoff with only what ownership needs (customer, division, revenue, date), from rows the
    partition read already (its labels' facts reach beyond C), in their order: `customer_portfolios` sums exact
    cents, so no order can change it."""
    return fact.filter(pl.col("invoice_date") <= cutoff).select("customer_id", "division", "revenue", "invoice_date")


def population_features(database: str, cutoff: dt.date, division: str,
                        customer_ids: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`customer_features` and the division's `als_embeddings` rows of `cutoff` for these customers only (a division's
    labelled population), without `cutoff_date`, from their files (resources.files_dir): read without the warehouse,
    and for the population only, not loaded whole as inputs: at 500,000 customers the population is about a fifth of
    the cutoff's customers, and ALS has a row per customer and division."""
    features = read_cutoff_table(database, "customer_features", cutoff, customers=customer_ids)
    als = read_cutoff_table(database, "als_embeddings", cutoff, customers=customer_ids, division=division)
    return features.drop("cutoff_date"), als.drop("cutoff_date")


def fact_all(warehouse: WarehouseResource) -> pl.DataFrame:
    return in_key_order(warehouse.query(f"select {FACT_COLUMNS_SQL} from fact_transactions"))


def _leakage_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec("source_date_audit", asset=asset_name, blocking=True,
                       description="The latest fact row read for this partition is dated on or before its cutoff"),
        AssetCheckSpec("shift_test", asset=asset_name, blocking=True,
                       description="Recomputing with the real rows after the cutoff present gives the same checksum "
                       "as the stored output (built with every row after the cutoff removed)"),
        AssetCheckSpec("post_cutoff_invariance", asset=asset_name, blocking=True,
                       description="Recomputing with every row after the cutoff perturbed (amounts, divisions, "
                       "dates, new customers) gives the same checksum as the stored output"),
    ]


class _InvarianceRows(NamedTuple):
    rows: pl.DataFrame  # fact rows of the sampled customers (every row: `customers` None), in `fact_all`'s order
    customers: pl.Series | None


def invariance_rows(warehouse: WarehouseResource, cutoff: dt.date, max_customers: int | None,
                    seed: int) -> _InvarianceRows:
    """The fact rows the invariance rebuilds use (in the order of `fact_all`) and the sampled customers they belong
    to (`core.leakage.invariance_customers`; None, the whole table, up to `max_customers`: the demo's size)."""
    first_seen = warehouse.query("select customer_id, min(invoice_date) as first_date from fact_transactions "
                                 "group by customer_id")
    customers = invariance_customers(first_seen, cutoff, max_customers, seed)
    if customers is None:
        return _InvarianceRows(fact_all(warehouse), None)
    with warehouse.connect() as conn:
        conn.register("_sample", customers.to_frame("customer_id").to_arrow())
        rows = conn.execute(f"select {FACT_COLUMNS_SQL} from fact_transactions where customer_id in (select "
                            "customer_id from _sample)").pl()
    return _InvarianceRows(in_key_order(rows), customers)


def _leakage_checks(asset_name: str, used: pl.DataFrame, cutoff: dt.date, build, invariance: Future,
                    artifacts: ArtifactStore, stored_checksum: str, seed: int) -> list[AssetCheckResult]:
    """The three leakage checks of one cutoff asset, recorded in `<artifacts>/features/<cutoff>/leakage_<asset>.json`
    (the model's consolidated leakage report reads these files for its training cutoffs). `build(rows, customers)`:
    the asset's builder on these fact rows; `invariance`: the rows the rebuilds use (`invariance_rows`), read once
    for every asset of the cutoff (`Future[_InvarianceRows]`: read by the op while the builds run). Needs nothing of
    the warehouse."""
    fact, customers = invariance.result()
    shift, perturb = invariance_report(lambda rows: build(rows, customers), fact, cutoff,
                                       stored_checksum if customers is None else None, seed=seed)
    results = {"source_date_audit": source_date_audit(used, cutoff), "shift_test": shift,
               "post_cutoff_invariance": perturb}
    artifacts.write_json(["features", cutoff.isoformat(), f"leakage_{asset_name}.json"], audit_record(results))
    return [AssetCheckResult(check_name=name, asset_key=asset_name, passed=r.passed, severity=AssetCheckSeverity.ERROR,
                             description=r.detail, metadata=r.values) for name, r in results.items()]


def _with_cutoff(df: pl.DataFrame, cutoff: dt.date, after: str = "customer_id") -> pl.DataFrame:
    out = df.with_columns(pl.lit(cutoff).alias("cutoff_date"))
    i = out.columns.index(after) + 1
    cols = [c for c in out.columns if c != "cutoff_date"]
    return out.select(cols[:i] + ["cutoff_date"] + cols[i:])


def _catalog_outputs(artifacts: ArtifactStore, rel: list[str], features: pl.DataFrame, checksum: str) -> dict:
    """Write feature_catalog.csv and feature_stats.json; return the metadata a person looks at. `checksum`:
    `frame_checksum(features)`, which the caller has computed for its own metadata."""
    _write_feature_stats(artifacts, rel, features, checksum)
    return _catalog_metadata(artifacts, rel, features)


def _catalog_metadata(artifacts: ArtifactStore, rel: list[str], features: pl.DataFrame) -> dict:
    """Write feature_catalog.csv; return the metadata a person looks at, feature_stats.json's path included (that
    file: `_write_feature_stats`, which the metadata does not wait for)."""
    catalog = feature_catalog(features)
    cat_path = artifacts.write_csv([*rel, "feature_catalog.csv"], catalog)
    families = (
        catalog.group_by("family", maintain_order=True)
        .agg(pl.len().alias("features"), pl.col("coverage").mean().round(3).alias("mean_coverage"))
        .sort("family")
    )
    return {
        "n_features": catalog.height,
        "feature_families": markdown_table(families.to_dicts()),
        "feature_catalog_path": MetadataValue.path(str(cat_path)),
        "feature_stats_path": MetadataValue.path(str(artifacts.path(*rel, "feature_stats.json"))),
    }


def _write_feature_stats(artifacts: ArtifactStore, rel: list[str], features: pl.DataFrame, checksum: str) -> None:
    artifacts.write_json([*rel, "feature_stats.json"], feature_stats(features, checksum=checksum))


_Submit = Callable[..., Future]  # ThreadPoolExecutor.submit of the op's pool


class _Built(NamedTuple):
    """One cutoff asset, computed: its output (with metadata), its leakage checks and the files its metadata names
    but does not wait for, still being made in the op's pool (`Future[list[AssetCheckResult]]`, `Future[None]`s):
    the output is stored meanwhile."""

    output: Output
    checks: Future
    files: tuple[Future, ...] = ()


def _customer_features(cfg: Settings, cutoff: dt.date, fact: pl.DataFrame, dim: pl.DataFrame,
                       invariance: Future, artifacts: ArtifactStore, submit: _Submit) -> _Built:
    def build(rows: pl.DataFrame, customers: pl.Series | None = None) -> pl.DataFrame:
        # The roster comes from dim_customer: a sampled rebuild keeps the sampled customers' rows of it.
        known = dim if customers is None else dim.filter(pl.col("customer_id").is_in(customers.implode()))
        return build_customer_features(rows, known, cutoff, cfg.divisions, cfg.features)

    feats = build(fact)
    meta = table_metadata(feats, cfg)
    rel = ["features", cutoff.isoformat()]
    meta |= _catalog_metadata(artifacts, rel, feats)
    meta["latest_source_date"] = str(fact.get_column("invoice_date").max()) if fact.height else "none"
    # The per-feature stats (~2 CPU-s at 500,000 customers, ~9 of 10 of the catalog's cost) are written in the pool
    # beside the file's write and the rebuilds, not before the file is stored; the step ends when they are written.
    stats = submit(_write_feature_stats, artifacts, rel, feats, meta["checksum"])
    return _Built(Output(_with_cutoff(feats, cutoff), output_name="customer_features", metadata=meta),
                  submit(_leakage_checks, "customer_features", fact, cutoff, build, invariance, artifacts,
                         meta["checksum"], cfg.seeds.modeling),
                  (stats,))


def _market_basket_rules(cfg: Settings, cutoff: dt.date, fact: pl.DataFrame, invariance: Future,
                         artifacts: ArtifactStore, submit: _Submit) -> _Built:
    def build(rows: pl.DataFrame, customers: pl.Series | None = None) -> pl.DataFrame:
        return market_basket_rules(rows, cutoff, cfg.divisions, min_support=cfg.basket.min_support,
                                   min_confidence=cfg.basket.min_confidence)

    rules = build(fact)
    path = artifacts.write_csv(["features", cutoff.isoformat(), "market_basket_rules.csv"], rules)
    artifacts.write_json(["features", cutoff.isoformat(), "market_basket_stats.json"],
                         feature_stats(rules, ["support", "confidence", "lift"]))
    passing = rules.filter(pl.col("passes_thresholds"))
    top = passing.sort("lift", descending=True).head(10).select(
        "antecedent", "consequent", pl.col("support").round(4), pl.col("confidence").round(3),
        pl.col("lift").round(2))
    meta = table_metadata(rules, cfg) | {
        "passing_rules": passing.height,
        "top_rules_by_lift": markdown_table(top.to_dicts()),
        "rules_path": MetadataValue.path(str(path)),
    }
    return _Built(Output(rules.with_columns(pl.lit(cutoff).alias("cutoff_date")), output_name="market_basket_rules",
                         metadata=meta),
                  submit(_leakage_checks, "market_basket_rules", fact, cutoff, build, invariance, artifacts,
                         meta["checksum"], cfg.seeds.modeling))


def _als_embeddings(cfg: Settings, cutoff: dt.date, fact: pl.DataFrame, invariance: Future,
                    artifacts: ArtifactStore, submit: _Submit) -> _Built:
    def build(rows: pl.DataFrame, customers: pl.Series | None = None) -> pl.DataFrame:
        return fit_als(rows, cutoff, cfg.divisions, cfg.als, cfg.seeds.als).similarity

    result = fit_als(fact, cutoff, cfg.divisions, cfg.als, cfg.seeds.als)
    sim = result.similarity
    rel = ["features", cutoff.isoformat()]
    artifacts.write_csv([*rel, "als_division_vectors.csv"], result.division_vectors)
    artifacts.write_json([*rel, "als_stats.json"], feature_stats(sim, ["als_similarity", "als_coverage"]))
    coverage = sim.group_by("division", maintain_order=True).agg(
        pl.col("als_coverage").mean().round(3).alias("coverage"),
        pl.col("als_similarity").mean().round(3).alias("mean_similarity"))
    meta = table_metadata(sim, cfg) | {
        "customers": result.n_customers, "items": result.n_items, "interactions": result.n_interactions,
        "factors": cfg.als.factors, "seed": cfg.seeds.als,
        "coverage_by_division": markdown_table(coverage.to_dicts()),
    }
    return _Built(Output(_with_cutoff(sim, cutoff), output_name="als_embeddings", metadata=meta),
                  submit(_leakage_checks, "als_embeddings", fact, cutoff, build, invariance, artifacts,
                         meta["checksum"], cfg.seeds.modeling))


# The order they are started in: the customer features (the longest build) on one thread; the roster's activity, the
# rules (both small warehouse tables, published as soon as they are built) and the ALS fit on the other.
CUTOFF_FEATURES = ("customer_features", "market_basket_rules", "als_embeddings")
FILE_OUTPUTS = ("customer_features", "als_embeddings")  # published as files (FILES_IO_MANAGER), no warehouse hold


def build_feature_assets(settings: Settings) -> list[AssetsDefinition]:
    cutoffs_def = cutoff_partitions(settings)
    fact_key, dim_key = AssetKey("fact_transactions"), AssetKey("dim_customer")

    @multi_asset(
        name="cutoff_features",
        partitions_def=cutoffs_def,
        pool=WAREHOUSE_POOL,
        deps=["fact_transactions", "dim_customer"],
        internal_asset_deps={"customer_features": {fact_key, dim_key}, "market_basket_rules": {fact_key},
                             "als_embeddings": {fact_key}, "roster_activity": {fact_key, dim_key}},
        # One step for the cutoff's three assets: the fact lines dated ≤ C and the leakage rebuilds' rows are read
        # once for all of them, and the builders run side by side (two threads) while the warehouse is let go. Any
        # of them can still be materialized alone (a subset computes only what is selected). The step also makes the
        # cutoff's `roster_activity` (drift's comparison of who buys, shared by every division at C) beside them.
        can_subset=True,
        outs={
            "customer_features": AssetOut(
                group_name="features",
                is_required=False,  # (subsettable: an output not selected is not made)
                io_manager_key=FILES_IO_MANAGER,  # a file per cutoff beside the warehouse (resources.files_dir)
                description="One row per customer known at the cutoff: RFM windows overall and per division, "
                "trajectory, lifecycle, seasonality, diversity, returns, smoothed cross-division shares, attributes."),
            "market_basket_rules": AssetOut(
                group_name="features",
                is_required=False,
                metadata={"partition_expr": "cutoff_date"},
                description="Pairwise division rules (support, confidence, lift) from customer portfolios before "
                "the cutoff."),
            "als_embeddings": AssetOut(
                group_name="features",
                is_required=False,
                io_manager_key=FILES_IO_MANAGER,
                description="Implicit-feedback ALS on customer × SKU purchases before the cutoff, stored as rotation-"
                "invariant customer × division cosine similarities (raw factors are not comparable across fits)."),
            "roster_activity": AssetOut(
                is_required=False,
                group_name="validation",
                metadata={"partition_expr": "cutoff_date"},
                description="Who buys at the cutoff: the roster's invoices per segment (region, territory, industry) "
                "and per division, and each division's unit-price index, in the months to the cutoff against the "
                "same months a year earlier; every division's `drift` at the cutoff includes these findings "
                "(docs/DRIFT.md). No rows when the data do not reach back a year."),
        },
        check_specs=partition_checks(cutoffs_def, *(spec for name in CUTOFF_FEATURES for spec in _leakage_specs(name))),
    )
    def cutoff_features(context: AssetExecutionContext, settings: GosalesSettings, warehouse: WarehouseResource,
                        artifacts: ArtifactStore):
        cfg = settings.get()
        cutoff = parse_cutoff(context.partition_key)
        selected = [name for name in CUTOFF_FEATURES if AssetKey(name) in context.selected_asset_keys]
        roster = AssetKey("roster_activity") in context.selected_asset_keys
        # The fact lines dated ≤ C first, read once for every selected asset (~2 s at 500,000 customers); none for the
        # roster's activity alone (it reads its own two windows).
        fact = fact_until(warehouse, cutoff) if selected else None
        dim = (in_key_order(warehouse.query("select * from dim_customer"), ("customer_id",))
               if "customer_features" in selected else None)
        invariance: Future = Future()  # the rebuilds' rows, read below while the builds run
        makers = {
            "customer_features": lambda submit: _customer_features(cfg, cutoff, fact, dim, invariance, artifacts,
                                                                   submit),
            "als_embeddings": lambda submit: _als_embeddings(cfg, cutoff, fact, invariance, artifacts, submit),
            "market_basket_rules": lambda submit: _market_basket_rules(cfg, cutoff, fact, invariance, artifacts,
                                                                       submit),
        }
        # The builds, their rebuilds, artifacts and files need nothing more of the warehouse: another run may use it.
        # Two threads (polars and ALS compute outside the GIL): each build is independent, so the same bytes. They
        # start as soon as the lines dated <= C are read, while this thread still reads the rebuilds' rows (~1 s at
        # 500,000 customers: read before any build ends, so no rebuild waits for them). A build queues its leakage
        # rebuilds and the files its metadata only names in the same pool when it is done, and the op stores its
        # file meanwhile (the customer features' ~2.5-s write at 500,000 customers beside their rebuilds and stats).
        # Each output is published as soon as it is built: a backfill requests the cutoff's division partitions when
        # its daemon sees all four materialized (the checks come at the end), not when the run ends.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cutoff_features") as pool:
            # The first build (the customer features, the longest) at once; the roster's activity (its purchase lines
            # of two windows read here, ~0.4 s at 500,000 customers) on the other thread before the other builds,
            # which end long before the first: at the end it would wait behind the first's rebuilds and statistics.
            futures = {name: pool.submit(makers[name], pool.submit) for name in selected[:1]}
            activity = pool.submit(roster_activity_output, cfg, cutoff, *roster_activity_reads(warehouse, cfg, cutoff)
                                   ) if roster else None
            futures |= {name: pool.submit(makers[name], pool.submit) for name in selected[1:]}
            try:
                invariance.set_result(invariance_rows(warehouse, cutoff, cfg.leakage.invariance_max_customers,
                                                      cfg.seeds.modeling) if selected else None)
            except BaseException as exc:
                invariance.set_exception(exc)  # the checks waiting for the rows fail with the read's error
                raise
            built = {}
            # The warehouse tables (the rules, the roster's activity: small) first, with the hold taken back for
            # their writes (at 500,000 customers they are built ~6 s into the step, the customer features at ~20).
            in_warehouse = [name for name in selected if name not in FILE_OUTPUTS]
            with warehouse.released():
                for name in in_warehouse:
                    built[name] = futures[name].result()
                activity_output = activity.result() if activity is not None else None
            for name in in_warehouse:
                yield built[name].output  # the warehouse table (DuckDB IO manager): with the hold
            if activity_output is not None:
                yield activity_output
            with warehouse.released():
                # the files in the order they are built (the ALS fit may end before the customer features)
                waiting = {futures[name]: name for name in selected if name in FILE_OUTPUTS}
                while waiting:
                    done, _ = wait(waiting, return_when=FIRST_COMPLETED)
                    for name in [n for n in selected if n in waiting.values() and futures[n] in done]:
                        built[name] = futures[name].result()
                        del waiting[futures[name]]
                        yield built[name].output
                checks = {name: built[name].checks.result() for name in selected}
                for name in selected:
                    for written in built[name].files:
                        written.result()
        with warehouse.connect() as conn:
            for name in selected:
                if name in FILE_OUTPUTS:
                    ensure_files_view(conn, warehouse.database, name)
        for name in selected:
            yield from checks[name]

    return [cutoff_features]


def division_features_spec() -> AssetSpec:
    """`division_features` of one division × cutoff, made by the op of the whole partition
    (`assets.division_cutoff`) right after its `labels`, which the frame joins in memory (not declared as an edge:
    no edge between two outputs of one op on the same partition; docs/ARCHITECTURE.md)."""
    return AssetSpec(
        "division_features",
        group_name="features",
        deps=[AssetDep("customer_features", partition_mapping=same_cutoff()),
              AssetDep("market_basket_rules", partition_mapping=same_cutoff()),
              AssetDep("als_embeddings", partition_mapping=same_cutoff()), "fact_transactions", "dim_customer"],
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        description="The model frame of one division at one cutoff: customer features plus target-division "
        "signals (basket lift, ALS similarity, prior ownership) for the labels population, with labels "
        "joined.",
    )


def division_features_check_specs(parts: PartitionsDefinition) -> list[AssetCheckSpec]:
    return partition_checks(parts, *_leakage_specs("division_features")[:1])


def division_frame_outputs(context: AssetExecutionContext, cfg: Settings, warehouse: WarehouseResource,
                           artifacts: ArtifactStore, market_basket_rules: pl.DataFrame
                           ) -> Generator[Output | AssetCheckResult, None, tuple[pl.DataFrame, pl.DataFrame]]:
    """Build the partition's labels and its model frame (labels joined); yield both outputs and their checks;
    return (labels, frame), what the model, scores, peers and validation of the same step read."""
    labels, fact = yield from labels_outputs(context, cfg, warehouse, artifacts)
    division, cutoff = split_key(context.partition_key)
    history = ownership_rows(fact, cutoff)
    del fact
    # The population's features, the frame, its files and metadata need nothing more of the warehouse: another run
    # may use it meanwhile.
    with warehouse.released():
        population = labels.get_column("customer_id")
        features, als = population_features(warehouse.database, cutoff, division, population)
        frame = build_division_features(
            features,
            # The population's portfolios only (a customer's ownership reads only its own lines; the frame keeps
            # the population's rows): at 500,000 customers about a fifth of the lines to group.
            customer_portfolios(history.filter(pl.col("customer_id").is_in(population.implode())), cutoff),
            market_basket_rules.drop("cutoff_date"),
            als,
            division,
            labels=labels.select("customer_id", *LABEL_COLUMNS),
        )
        del features, als
        features_only = frame.drop(LABEL_COLUMNS)
        feature_checksum = frame_checksum(features_only)
        meta = table_metadata(frame, cfg) | _catalog_outputs(
            artifacts, ["features", cutoff.isoformat(), division_slug(division)], features_only, feature_checksum)
        censored = bool(labels.height and labels.get_column("censored").all())
        meta |= {
            "censored": censored,
            "positives": MetadataValue.null() if censored else int(frame.get_column("label").sum() or 0),
            "target_signal_means": MetadataValue.json(
                {c: round(float(frame.get_column(c).mean() or 0.0), 4) for c in TARGET_SIGNAL_COLUMNS}),
            "feature_checksum": feature_checksum,
        }
        del features_only
        # Published as its file (`PartitionFilesIOManager`), which needs no hold of the warehouse.
        yield Output(frame, output_name="division_features", metadata=meta)
    with warehouse.connect() as conn:
        ensure_files_view(conn, warehouse.database, "division_features")
    # Upstream partitions carry their own invariance checks; here only the ownership history is read.
    audit = source_date_audit(history, cutoff)
    # The model trained on this frame reads this record (its declared input), not the cutoff assets' own files. Written
    # after the frame: a run killed in between leaves no record, which the model reads as a failed check.
    upstream = cutoff_record_path(artifacts.root, cutoff, "customer_features")
    record = division_features_record(json.loads(upstream.read_text()) if upstream.is_file() else None, audit)
    artifacts.write_json(division_record_rel(cutoff, division), record)
    yield AssetCheckResult(check_name="source_date_audit", asset_key="division_features", passed=audit.passed,
                           severity=AssetCheckSeverity.ERROR, description=audit.detail, metadata=audit.values)
    return labels, frame
