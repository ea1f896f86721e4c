"""The graph so far on generated demo data: star reconciliation against the planted-dirt manifest, then a
cutoff's features and a division × cutoff model frame, materialized for real."""

import datetime as dt
import json

import polars as pl
import pytest
from dagster import DagsterInstance

from gosales_assets.assets.division_cutoff import DIVISION_CUTOFF_ASSETS
from gosales_assets.core.star import SALES_RULES
from gosales_assets.demo_data import DIRT_RULES, generate_demo_data
from gosales_assets.partitions import cutoff_key, multi_key
from gosales_assets.settings import division_slug
from gosales_assets_tests.conftest import check_results, latest_metadata, materialized, new_project

CUTOFF = "2025-09-30"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    project = new_project(tmp_path_factory.mktemp("demo"), {"cutoffs": [CUTOFF, "2026-06-30"]})
    manifest = generate_demo_data(project.settings.landing_dir, customers=800, seed=11, settings=project.settings,
                                  dirt_rate=0.004, ground_truth=False)
    instance = DagsterInstance.ephemeral()
    star = project.materialize(instance=instance)
    return project, manifest, instance, star


def test_planted_dirt_is_caught_rule_by_rule_and_rows_reconcile(demo):
    project, manifest, _, star = demo
    assert star.success
    assert all(ev.passed for ev in check_results(star).values())
    viol = project.table("contract_violations").filter(pl.col("source_table") == "sales_log")
    caught = dict(viol.group_by("rule").len().iter_rows())
    assert set(DIRT_RULES) <= {r for r, _ in SALES_RULES}
    for rule in DIRT_RULES:
        assert manifest.planted[rule] > 0
        assert caught.get(rule, 0) == manifest.planted[rule], rule
    assert set(caught) == set(DIRT_RULES)  # nothing else is rejected in clean demo rows
    assert project.table("fact_transactions").height + viol.height == manifest.sales_rows
    assert project.table("dim_customer").height == manifest.customer_rows


def test_cutoff_features_and_division_frame(demo):
    project, _, instance, _ = demo
    result = project.materialize(["customer_features", "market_basket_rules", "als_embeddings"],
                                 instance=instance, partition_key=cutoff_key(CUTOFF))
    assert result.success
    checks = check_results(result)
    assert len(checks) == 9 and all(ev.passed for ev in checks.values()), \
        {k: ev.description for k, ev in checks.items() if not ev.passed}
    # The three are one op (shared reads, side-by-side builds) that materializes any one of them alone, the same.
    rules_checksum = latest_metadata(instance, "market_basket_rules")["checksum"]
    alone = project.materialize(["market_basket_rules"], instance=instance, partition_key=cutoff_key(CUTOFF))
    assert alone.success and materialized(alone) == {"market_basket_rules"}
    assert {k[0] for k in check_results(alone)} == {"market_basket_rules"} and len(check_results(alone)) == 3
    assert latest_metadata(instance, "market_basket_rules")["checksum"] == rules_checksum

    feats = project.table("customer_features")
    cutoff = dt.date.fromisoformat(CUTOFF)
    fact = project.table("fact_transactions").filter(pl.col("invoice_date") <= cutoff)
    # A buyer of each division has non-zero per-division features for it (the earlier system's casing bug
    # made them all zero).
    recent = fact.filter(pl.col("invoice_date") > dt.date(2023, 9, 30))  # the 24 months ending at the cutoff
    checked = 0
    for division in project.settings.divisions:
        slug = division_slug(division)
        buyers = recent.filter((pl.col("division") == division) & ~pl.col("is_return")).get_column("customer_id")
        rows = feats.filter(pl.col("customer_id").is_in(buyers.unique().implode()))
        if rows.height == 0:
            continue
        checked += 1
        assert (rows.get_column(f"rfm__{slug}__txn_count__24m") > 0).all(), division
        assert rows.get_column(f"rfm__{slug}__recency_days__all").is_not_null().all(), division
        assert (rows.get_column(f"xdiv__{slug}__share__all") > 0).all(), division
    assert checked == len(project.settings.divisions)
    meta = latest_metadata(instance, "customer_features")
    assert meta["n_features"] > 250 and meta["latest_source_date"] <= CUTOFF
    stats = json.loads((project.settings.artifacts_dir / "features" / CUTOFF / "als_stats.json").read_text())
    assert stats["n_features"] == 2 and 0 <= stats["features"]["als_similarity"]["null_rate"] <= 1
    assert json.loads((project.settings.artifacts_dir / "features" / CUTOFF / "market_basket_stats.json")
                      .read_text())["features"]["lift"]["null_rate"] == 0
    catalog = project.settings.artifacts_dir / "features" / CUTOFF / "feature_catalog.csv"
    assert catalog.is_file() and "rfm__success_plan__revenue_sum__12m" in catalog.read_text()

    key = multi_key("Simulation", CUTOFF)
    result = project.materialize(["labels", "division_features"], instance=instance, partition_key=key)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert materialized(result) == set(DIVISION_CUTOFF_ASSETS)  # one op makes the whole partition
    frame = project.table("division_features")
    labels = project.table("labels")
    assert frame.height == labels.height > 0
    assert frame.get_column("customer_id").to_list() == labels.get_column("customer_id").to_list()
    assert frame.get_column("label").to_list() == labels.get_column("label").to_list()
    # Expansion population: nobody in the frame owns Simulation yet.
    assert frame.get_column("prior__target__owned__all").sum() == 0
    assert frame.get_column("rfm__simulation__revenue_sum__24m").sum() <= 0
    # Solidworks owners have a higher basket lift toward Simulation than non-owners.
    sw = frame.get_column("rfm__solidworks__revenue_sum__24m") > 0
    lift = frame.get_column("mb__target__max_lift__all")
    assert lift.filter(sw).mean() > lift.filter(~sw).mean()
    assert (project.settings.artifacts_dir / "features" / CUTOFF / "simulation" / "feature_catalog.csv").is_file()


def test_the_cutoffs_warehouse_tables_are_published_before_the_customer_features_are_built(demo, monkeypatch):
    """The rules and the roster's activity (small warehouse tables) are stored as soon as they are built, while the
    customer features still build: a backfill's daemon requests the division partitions once all four are
    materialized. Here the customer features' build waits until both are stored; published after it, they never
    would be and the build gives up."""
    import threading

    from gosales_assets import resources
    from gosales_assets.assets import features

    project, _, instance, _ = demo
    stored: set[str] = set()
    both = threading.Event()
    store = resources._PolarsTableHandler.handle_output

    def noting(self, context, table_slice, obj, connection):
        out = store(self, context, table_slice, obj, connection)
        stored.add(context.asset_key.to_user_string())
        if {"market_basket_rules", "roster_activity"} <= stored:
            both.set()
        return out

    build = features._customer_features

    def after_the_tables(*args, **kwargs):
        if not both.wait(timeout=60):
            raise TimeoutError(f"the warehouse tables were not stored while the customer features built: {stored}")
        return build(*args, **kwargs)

    monkeypatch.setattr(resources._PolarsTableHandler, "handle_output", noting)
    monkeypatch.setattr(features, "_customer_features", after_the_tables)
    result = project.materialize(["customer_features", "market_basket_rules", "als_embeddings", "roster_activity"],
                                 instance=instance, partition_key=cutoff_key("2026-06-30"))
    assert result.success and materialized(result) == {"customer_features", "market_basket_rules",
                                                       "als_embeddings", "roster_activity"}
    order = [e.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert order.index("customer_features") > max(order.index("market_basket_rules"), order.index("roster_activity"))
    assert all(ev.passed for ev in check_results(result).values())


def test_score_only_cutoff_has_censored_labels(demo):
    project, _, instance, _ = demo
    assert project.materialize(["customer_features", "market_basket_rules", "als_embeddings"], instance=instance,
                               partition_key="2026-06").success
    key = multi_key("PDM", "2026-06-30")
    assert project.materialize(["labels", "division_features"], instance=instance, partition_key=key).success
    frame = project.table("division_features").filter(pl.col("cutoff_date") == dt.date(2026, 6, 30))
    assert frame.height > 0 and frame.get_column("censored").all() and frame.get_column("label").null_count() == frame.height
    assert latest_metadata(instance, "division_features")["censored"] is True
