"""`labels` materialized for real, per division × cutoff partition."""

import datetime as dt
import json

import polars as pl
from dagster import DagsterInstance
from polars.testing import assert_frame_equal

from gosales_assets.assets.features import LABEL_COLUMNS
from gosales_assets.core.basket import customer_portfolios
from gosales_assets.core.division_features import build_division_features

from gosales_assets.partitions import multi_key
from gosales_assets_tests.conftest import CUTOFF_ASSETS, check_results, latest_metadata
from gosales_assets_tests.test_star_assets import CUSTOMERS, HEADER

SALES = [
    "INV-1,1,2024-01-05,C1,SWX-STD,2,10000,4000,R1,Solidworks",
    "INV-2,1,2024-02-10,C2,SWX-STD,1,5000,2000,R2,Solidworks",
    "INV-3,1,2024-08-02,C1,SP-STD,1,1500,600,R1,Success Plan",       # C1 buys Success Plan after 2024-06-30
    "INV-4,1,2024-09-15,C2,SP-STD,1,1500,600,R2,Success Plan",
    "CR-4,1,2024-10-01,C2,SP-STD,-1,-1500,-600,R2,Success Plan",     # ... C2 returns it: not a purchase
    "INV-5,1,2025-03-03,C3,SWX-STD,1,5000,2000,R3,Solidworks",
]


def test_labels_partition_end_to_end(make_project):
    cutoffs = ["2024-06-30", "2025-06-30"]
    project = make_project({"cutoffs": cutoffs, "data": {"start_date": "2020-01-01", "end_date": "2025-06-30"},
                            "labels": {"per_division_window_months": {}, "auto_widen": {"enabled": False}}})
    landing = project.settings.landing_dir
    landing.mkdir(parents=True)
    (landing / "sales_log.csv").write_text("\n".join([HEADER, *SALES]) + "\n")
    (landing / "customers.csv").write_text(CUSTOMERS)
    instance = DagsterInstance.ephemeral()
    assert project.materialize(instance=instance).success
    # The labels' population is the customer features' roster of the cutoff (and the model frame made with them
    # joins the cutoff's features): without them, the step refuses to run and says what to materialize first.
    refused = project.materialize(["labels"], instance=instance, partition_key=multi_key("Success Plan", "2024-06-30"))
    assert not refused.success
    assert "the warehouse has no table main.market_basket_rules (an input of division_cutoff): materialize " \
        "market_basket_rules for 2024-06 first" in str(refused.all_events)
    for c in ("2024-06", "2025-06"):
        assert project.materialize(CUTOFF_ASSETS, instance=instance, partition_key=c).success

    result = project.materialize(["labels"], instance=instance, partition_key=multi_key("Success Plan", "2024-06-30"))
    assert result.success
    labels = project.table("labels")
    assert labels.select("customer_id", "label", "cohort").rows() == [("C1", 1, "expansion"), ("C2", 0, "expansion")]
    meta = latest_metadata(instance, "labels")
    assert meta["positives"] == 1 and meta["prevalence"] == 0.5 and meta["censored"] is False
    assert meta["window_months"] == 6
    assert check_results(result)[("labels", "prevalence_not_collapsed")].passed
    summary = json.loads((project.settings.artifacts_dir / "labels" / "success_plan" / "2024-06-30" /
                          "label_summary.json").read_text())
    assert summary["positives"] == 1 and summary["window_end"] == "2024-12-31"

    # A censored partition is stored with null labels, beside the first one (partition slices, not overwrite).
    result = project.materialize(["labels"], instance=instance, partition_key=multi_key("Success Plan", "2025-06-30"))
    assert result.success
    labels = project.table("labels").sort("cutoff_date", "customer_id")
    late = labels.filter(pl.col("cutoff_date") == pl.date(2025, 6, 30))
    # C1 owns Success Plan by then; C2's purchase was returned, so C2 is still an expansion prospect.
    assert late.get_column("customer_id").to_list() == ["C2", "C3"]
    assert late.get_column("censored").all() and late.get_column("label").null_count() == 2
    assert labels.filter(pl.col("cutoff_date") == pl.date(2024, 6, 30)).height == 2

    # Re-materializing a partition replaces its rows only.
    assert project.materialize(["labels"], instance=instance,
                               partition_key=multi_key("Success Plan", "2024-06-30")).success
    assert project.table("labels").height == 4

    # The same step made the model frame from the labels in memory, reading the cutoff's features and ALS rows for
    # the labelled population only: it equals the frame built from the whole stored tables (the labels as a later
    # reader sees them), values and types; at 2025-06 C1 owns the division and is outside the population.
    for cutoff in (dt.date(2024, 6, 30), dt.date(2025, 6, 30)):
        stored = project.table("division_features").filter(pl.col("cutoff_date") == cutoff)
        assert set(stored.get_column("division")) == {"Success Plan"}

        def cut(name):
            return project.table(name).filter(pl.col("cutoff_date") == cutoff).drop("cutoff_date")

        assert cut("customer_features").height > stored.height or cutoff.year == 2024
        fact = project.table("fact_transactions").filter(pl.col("invoice_date") <= cutoff)
        rebuilt = build_division_features(
            cut("customer_features"), customer_portfolios(fact, cutoff), cut("market_basket_rules"),
            cut("als_embeddings"), "Success Plan",
            labels=project.table("labels").filter(pl.col("cutoff_date") == cutoff,
                                                  pl.col("division") == "Success Plan")
            .select("customer_id", *LABEL_COLUMNS))
        assert_frame_equal(stored, rebuilt)


def test_zero_prevalence_after_positive_history_warns(make_project):
    project = make_project({"cutoffs": ["2024-03-31", "2024-06-30"],
                            "data": {"start_date": "2020-01-01", "end_date": "2025-06-30"},
                            "labels": {"per_division_window_months": {}, "auto_widen": {"enabled": False}}})
    landing = project.settings.landing_dir
    landing.mkdir(parents=True)
    # C1 buys Success Plan in May 2024: positive at 2024-03-31; at 2024-06-30 nobody buys -> zero prevalence.
    rows = ["INV-1,1,2024-01-05,C1,SWX-STD,2,10000,4000,R1,Solidworks",
            "INV-2,1,2024-02-10,C2,SWX-STD,1,5000,2000,R2,Solidworks",
            "INV-3,1,2024-05-02,C1,SP-STD,1,1500,600,R1,Success Plan"]
    (landing / "sales_log.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    (landing / "customers.csv").write_text(CUSTOMERS)
    instance = DagsterInstance.ephemeral()
    assert project.materialize(instance=instance).success
    for c in ("2024-03", "2024-06"):
        assert project.materialize(CUTOFF_ASSETS, instance=instance, partition_key=c).success
    first = project.materialize(["labels"], instance=instance, partition_key=multi_key("Success Plan", "2024-03-31"))
    assert check_results(first)[("labels", "prevalence_not_collapsed")].passed
    second = project.materialize(["labels"], instance=instance, partition_key=multi_key("Success Plan", "2024-06-30"))
    assert second.success  # a WARN does not stop the run
    ev = check_results(second)[("labels", "prevalence_not_collapsed")]
    assert not ev.passed and ev.severity.value == "WARN"
    assert "zero positives at 2024-06-30 while earlier cutoffs had {'2024-03-31': 1}" in ev.description
