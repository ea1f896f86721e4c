"""The retail demo world (`gosales_assets.demo_retail`): the generator's files, then the whole graph on it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import polars as pl
import pytest
import yaml
from dagster import DagsterInstance

from gosales_assets.cli import main as cli_main
from gosales_assets.core.ingest import RAW_TABLES
from gosales_assets.demo_retail import (
    CONFIG_FILE,
    RETAIL_DIVISIONS,
    WINDOW_MONTHS,
    generate_retail_data,
    retail_cutoffs,
)
from gosales_assets.settings import division_slug, load_settings

CUSTOMERS, SKUS, SEED = 2000, 1500, 5


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("retail")
    manifest = generate_retail_data(out, customers=CUSTOMERS, skus=SKUS, seed=SEED)
    settings = load_settings(out / CONFIG_FILE, home=tmp_path_factory.mktemp("home"))
    sales = pl.read_parquet(out / "sales_log.parquet")
    division = pl.DataFrame({"sku": list(settings.sku_map), "division": list(settings.sku_map.values())})
    sales = sales.join(division, on="sku", how="left")
    return out, manifest, settings, sales


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_same_arguments_give_byte_identical_files(tmp_path):
    a = generate_retail_data(tmp_path / "a", customers=300, skus=200, seed=3, months=9)
    b = generate_retail_data(tmp_path / "b", customers=300, skus=200, seed=3, months=9)
    assert a.sales_rows == b.sales_rows > 0
    da, db = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    da.pop(CONFIG_FILE), db.pop(CONFIG_FILE)  # each names its own landing folder
    assert da == db and len(da) == 4
    c = generate_retail_data(tmp_path / "c", customers=300, skus=200, seed=4, months=9)
    assert _digests(tmp_path / "c")["sales_log.parquet"] != da["sales_log.parquet"]
    assert c.sales_rows != a.sales_rows


def test_sparse_fields_retail_amounts_and_a_long_catalogue(world):
    out, manifest, settings, sales = world
    assert sales.columns[:8] == [c.name for c in RAW_TABLES["sales_log"] if c.required]  # no rep_id, no division
    assert sales.get_column("gross_profit").null_count() == sales.height
    customers = pl.read_parquet(out / "customers.parquet")
    assert customers.columns == [c.name for c in RAW_TABLES["customers"]]
    assert customers.get_column("customer_id").n_unique() == customers.height == CUSTOMERS
    assert customers.get_column("customer_name").null_count() == 0
    for col in customers.columns[2:]:
        assert customers.get_column(col).null_count() == CUSTOMERS, col
    # every SKU of the log is in the configuration's SKU map, which holds exactly the catalogue
    assert sales.get_column("division").null_count() == 0
    assert len(settings.sku_map) == SKUS and settings.divisions == list(RETAIL_DIVISIONS)
    per_division = sales.group_by("division").agg(pl.col("sku").n_unique().alias("n"))
    assert per_division.height == len(RETAIL_DIVISIONS) and per_division.get_column("n").min() >= 5
    sold = sales.filter(pl.col("revenue") > 0)
    assert 20 < sold.get_column("revenue").median() < 150  # tens of currency units a line
    per_invoice = sold.group_by("invoice_id").len().get_column("len")
    assert 1.5 < per_invoice.mean() < 6
    # credit notes: a line of their own, negative, after the sale, inside the data
    credits = sales.filter(pl.col("invoice_id").str.starts_with("RC-"))
    assert credits.height == manifest.credit_rows > 0
    assert (credits.get_column("quantity") < 0).all() and (credits.get_column("revenue") < 0).all()
    assert credits.get_column("invoice_date").max() <= manifest.end_date
    assert sales.select("invoice_id", "line_no").is_unique().all()


def test_one_year_of_strong_seasonality(world):
    _, manifest, _, sales = world
    assert (manifest.start_date, manifest.end_date) == ("2025-10-01", "2026-10-31")
    sold = sales.filter(pl.col("revenue") > 0).with_columns(pl.col("invoice_date").str.slice(5, 2).alias("m"))
    buyers = dict(sold.group_by("m").agg(pl.col("customer_id").n_unique()).iter_rows())
    assert buyers["12"] > 1.4 * buyers["01"]  # December's peak, January's trough
    garden = dict(sold.filter(pl.col("division") == "Garden").group_by("m").agg(pl.col("customer_id").n_unique())
                  .iter_rows())
    assert garden["05"] > 2 * garden["12"]  # a spring business inside the same log


def test_ground_truth_is_the_probability_the_log_was_drawn_from(world):
    out, _, settings, sales = world
    gt = pl.read_parquet(out / "ground_truth.parquet")
    bought = (sales.filter(pl.col("revenue") > 0, ~pl.col("invoice_id").str.starts_with("RC-"))
              .select("customer_id", pl.col("invoice_date").str.to_date().dt.truncate("1mo").alias("month"),
                      "division").unique())
    for div in settings.divisions:
        y = bought.filter(pl.col("division") == div).select("customer_id", "month", pl.lit(1.0).alias("y"))
        f = gt.select("customer_id", "month", pl.col(f"p__{division_slug(div)}").alias("p")).join(
            y, on=["customer_id", "month"], how="left").with_columns(pl.col("y").fill_null(0.0))
        expected, actual = f.get_column("p").sum(), f.get_column("y").sum()
        assert abs(actual - expected) < 4 * np.sqrt(expected) + 0.03 * expected, (div, expected, actual)


def test_the_written_configuration_is_the_default_with_this_worlds_catalogue_and_dates(world):
    out, manifest, settings, _ = world
    assert settings.landing_dir == out.resolve()
    assert settings.window_months(RETAIL_DIVISIONS[0]) == WINDOW_MONTHS
    assert [c.isoformat() for c in settings.cutoffs] == manifest.cutoffs
    # the first cutoff has a quarter of history; the trainable ones' windows close inside the data; the last is
    # the current (score-only) list
    assert manifest.cutoffs[0] == "2025-12-31" and manifest.cutoffs[-2:] == ["2026-07-31", "2026-10-31"]
    doc = yaml.safe_load((out / CONFIG_FILE).read_text())
    assert doc["models"]["gates"]["auc_min"] == 0.55 and doc["labels"]["mode"] == "expansion"


def test_cutoffs_follow_the_window_and_the_data():
    assert retail_cutoffs(dt.date(2026, 2, 1), dt.date(2026, 10, 31)) == [
        dt.date(2026, 4, 30), dt.date(2026, 5, 31), dt.date(2026, 6, 30), dt.date(2026, 7, 31),
        dt.date(2026, 10, 31)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_smallest_catalogue_still_has_five_skus_a_division(tmp_path, seed):
    manifest = generate_retail_data(tmp_path, customers=60, skus=5 * len(RETAIL_DIVISIONS), seed=seed, months=7)
    sku_map = load_settings(tmp_path / CONFIG_FILE, home=tmp_path / "home").sku_map
    per_division = {d: sum(1 for v in sku_map.values() if v == d) for d in manifest.divisions}
    assert per_division == {d: 5 for d in RETAIL_DIVISIONS}


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="customers must be at least 20"):
        generate_retail_data(tmp_path, customers=5)
    with pytest.raises(ValueError, match="skus must be at least 5 per division"):
        generate_retail_data(tmp_path, skus=20)
    with pytest.raises(ValueError, match="end_date must be a month-end"):
        generate_retail_data(tmp_path, end_date=dt.date(2026, 10, 30))
    with pytest.raises(ValueError, match="months must be at least"):
        generate_retail_data(tmp_path, months=5)


def test_cli_writes_the_world_and_refuses_reseller_options(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GOSALES_HOME", str(tmp_path / "home"))
    assert cli_main(["demo-data", "--world", "retail", "--out", str(tmp_path / "w"), "--customers", "100",
                     "--skus", "120", "--format", "csv", "--no-ground-truth"]) == 0
    said = capsys.readouterr().out
    assert f"GOSALES_CONFIG={tmp_path / 'w' / CONFIG_FILE}" in said
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [
        "customers.csv", "demo_manifest.json", CONFIG_FILE, "sales_log.csv"]
    assert json.loads((tmp_path / "w" / "demo_manifest.json").read_text())["skus"] == 120
    assert cli_main(["demo-data", "--world", "retail", "--out", str(tmp_path / "x"), "--drift",
                     "territory_slump"]) != 0
    assert "--drift go(es) with the reseller world" in capsys.readouterr().err
    assert cli_main(["demo-data", "--out", str(tmp_path / "y"), "--skus", "10"]) != 0
    assert "--skus goes with --world retail" in capsys.readouterr().err


# ---- the whole graph on a small retail world ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from gosales_assets.definitions import build_definitions
    from gosales_assets.runner import materialize

    out = tmp_path_factory.mktemp("retail_engine")
    manifest = generate_retail_data(out, customers=600, skus=300, seed=SEED, months=9, divisions=4,
                                    ground_truth=False)
    doc = yaml.safe_load((out / CONFIG_FILE).read_text())
    doc["models"]["num_threads"] = 1
    (out / CONFIG_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))
    settings = load_settings(out / CONFIG_FILE, home=out / "home")
    instance = DagsterInstance.ephemeral()
    outcomes = materialize(build_definitions(settings, out / CONFIG_FILE), instance, settings, log=lambda _: None)
    return manifest, settings, outcomes


def _table(settings, name: str) -> pl.DataFrame:
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return conn.execute(f"select * from main.{name}").pl()


def test_the_whole_graph_runs_on_the_retail_world(engine):
    manifest, settings, outcomes = engine
    assert manifest.cutoffs == ["2026-04-30", "2026-05-31", "2026-06-30", "2026-07-31", "2026-10-31"]
    assert [o for o in outcomes if o.status == "failed" or o.status == "skipped"] == []
    # every line is a fact (a clean log: nothing quarantined), every customer a dimension row
    assert _table(settings, "fact_transactions").height == manifest.sales_rows
    assert _table(settings, "contract_violations").height == 0
    assert _table(settings, "dim_customer").height == manifest.customer_rows


def test_every_trainable_division_gets_a_list_on_the_retail_world(engine):
    """A model where one could be trained (2026-07: trained on 2026-04; 2026-10: on the three before), and a list
    for every division at those cutoffs: by its model or, when held, by its labelled best peer."""
    _, settings, _ = engine
    models = _table(settings, "division_model")
    trained = models.filter(pl.col("cutoff_date") >= dt.date(2026, 7, 31))
    assert trained.height == 2 * len(settings.divisions)
    assert trained.filter(pl.col("status") == "skipped").height == 0, trained.select("division", "cutoff_date",
                                                                                     "status")
    whitespace = _table(settings, "whitespace")
    for cutoff in (dt.date(2026, 7, 31), dt.date(2026, 10, 31)):
        listed = set(whitespace.filter(pl.col("cutoff_date") == cutoff).get_column("division").unique())
        assert listed == set(settings.divisions), cutoff
    # a rep's reason never leans on the fields the log does not have
    reasons = whitespace.get_column("nba_reason").str.to_lowercase()
    assert not reasons.str.contains("industry|territory|region").any()


def test_drift_on_a_seasonal_year_raises_no_hard_alert_it_cannot_tell_from_the_season(engine):
    """A year of history holds no same-season baseline: every comparison is across seasons and says so, and none
    of them is hard (docs/DRIFT.md "Like with like"); the calibration at C may still be, as it is about the
    probabilities published."""
    _, settings, _ = engine
    drift = _table(settings, "drift")
    assert drift.height > 0
    hard = drift.filter(pl.col("severity") == "hard")
    assert set(hard.get_column("kind")) <= {"calibration_regression", "feature_missing"}, hard.select("kind", "subject")
    seasonal = drift.filter(pl.col("severity") == "warn", pl.col("kind").is_in(
        ["score_psi", "feature_psi", "feature_psi_active", "prevalence_shift", "segment_invoices", "division_invoices",
         "division_price"]))
    assert seasonal.height > 0
    assert seasonal.get_column("detail").str.contains("compared across seasons").all()
    assert seasonal.filter(pl.col("kind") == "division_invoices").get_column("detail").str.contains(
        "each training window ends in").all()
