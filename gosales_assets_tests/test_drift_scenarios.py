"""Planted drift scenarios of the demo generator (`generate_demo_data(drift=...)`, `gosales demo-data --drift`).

Each scenario is generated next to the same world without it (same seed): rows dated before the scenario's
month are identical, the planted change is measured after it, and the manifest names it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from gosales_assets.cli import main as cli_main
from gosales_assets.demo_data import (
    DRIFT_SCENARIOS,
    MANIFEST_FILE,
    DemoManifest,
    default_drift_month,
    generate_demo_data,
)
from gosales_assets.settings import division_slug, load_settings

N = 400
SEED = 7
MONTH = "2026-04"  # the default: the month after the second-to-last configured cutoff (2026-03-31)
FIRST = MONTH + "-01"

# sha256 over (name, bytes) of every file written by HEAD's generator before scenarios existed (customers=300,
# seed=7, default dirt and ground truth). Computed from `git show 50ec3a6:gosales_assets/demo_data.py`.
BASE_CHECKSUMS = {
    "parquet": "24b254c4d85e02a3ce6af0037ce6dc89166581d1d82beb53fe6d89d66a3583c5",
    "csv": "7f4e5c4e39524da16b53f1e22fcb0c4394ae24990a2450ad6e8f3253bfa6783b",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return load_settings(home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def worlds(tmp_path_factory, settings):
    """name -> (folder, manifest); "none" is the world without a scenario. No dirt: the clean rows are compared."""
    out = {}
    for name in ("none", *DRIFT_SCENARIOS):
        folder = tmp_path_factory.mktemp(name)
        out[name] = (folder, generate_demo_data(folder, customers=N, seed=SEED, settings=settings, dirt_rate=0.0,
                                                drift=None if name == "none" else name))
    return out


def _sales(worlds, name) -> pl.DataFrame:
    return pl.read_parquet(worlds[name][0] / "sales_log.parquet")


def _customers(worlds, name) -> pl.DataFrame:
    return pl.read_parquet(worlds[name][0] / "customers.parquet")


def _gt(worlds, name) -> pl.DataFrame:
    return pl.read_parquet(worlds[name][0] / "ground_truth.parquet")


def _after(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("invoice_date") >= FIRST)


def _before(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("invoice_date") < FIRST)


def _with_region(sales: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    return sales.join(customers.select("customer_id", "region"), on="customer_id", how="left")


def _checksum(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------
# the world without a scenario is the one of before
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_default_output_is_unchanged(tmp_path, settings, fmt):
    manifest = generate_demo_data(tmp_path, customers=300, seed=SEED, settings=settings, fmt=fmt)
    assert manifest.drift is None
    assert "drift" not in json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert _checksum(tmp_path) == BASE_CHECKSUMS[fmt]


def test_default_month_lands_between_the_last_two_cutoffs(settings, worlds):
    cutoffs = sorted(settings.cutoffs)
    assert default_drift_month(settings) == dt.date(2026, 4, 1)
    assert cutoffs[-2] < default_drift_month(settings) <= cutoffs[-1]
    for name in DRIFT_SCENARIOS:
        d = worlds[name][1].drift
        assert d["from_month"] == MONTH and d["first_cutoff"] == cutoffs[-1].isoformat()


# --------------------------------------------------------------------------------------------------------
# every scenario: same past, a valid log, a manifest that names it
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DRIFT_SCENARIOS))
def test_rows_before_the_month_are_identical(worlds, name):
    base, drifted = _sales(worlds, "none"), _sales(worlds, name)
    assert _before(drifted).equals(_before(base))
    assert _before(drifted).height > 1000
    cb, cd = _customers(worlds, "none"), _customers(worlds, name)
    assert cd.head(N).equals(cb)
    gb, gd = _gt(worlds, "none"), _gt(worlds, name)
    past = pl.col("month") < dt.date(2026, 4, 1)
    assert gd.filter(past).equals(gb.filter(past))


@pytest.mark.parametrize("name", list(DRIFT_SCENARIOS))
def test_the_log_stays_a_valid_log(worlds, settings, name):
    sales = _sales(worlds, name)
    customers = _customers(worlds, name)
    assert sales.select("invoice_id", "line_no").is_duplicated().sum() == 0
    assert sales.equals(sales.sort(["invoice_date", "invoice_id", "line_no"], maintain_order=True))
    assert set(sales.get_column("sku")) <= set(settings.sku_map)
    assert sales.filter(pl.col("division") != pl.col("sku").replace_strict(settings.sku_map)).height == 0
    assert set(sales.get_column("customer_id")) <= set(customers.get_column("customer_id"))
    # invoice numbers still grow with the date
    inv = (sales.filter(pl.col("invoice_id").str.starts_with("INV-")).group_by("invoice_id")
           .agg(pl.col("invoice_date").first()).sort("invoice_id"))
    assert inv.get_column("invoice_date").is_sorted()
    assert inv.height == sales.filter(pl.col("invoice_id").str.starts_with("INV-")).get_column("invoice_id").n_unique()


@pytest.mark.parametrize("name", list(DRIFT_SCENARIOS))
def test_the_manifest_names_the_scenario(worlds, name):
    folder, manifest = worlds[name]
    on_disk = DemoManifest.read(folder)
    assert on_disk == manifest
    d = manifest.drift
    sc = DRIFT_SCENARIOS[name]
    assert d["scenario"] == name and d["description"] == sc.description
    assert set(d["params"]) == set(sc.params)
    assert d["subject"] == {k: d["params"][k] for k in sc.subject}
    for k in sc.subject:
        assert d[k] == d["params"][k]
    assert MONTH in d["expected"] and d["expected"]
    assert d["ground_truth"]


# --------------------------------------------------------------------------------------------------------
# the planted changes, measured
# --------------------------------------------------------------------------------------------------------
def test_territory_slump_halves_the_regions_invoices(worlds):
    d = worlds["territory_slump"][1].drift
    assert d["region"] == "West" and d["subject"] == {"region": "West"}
    cust = _customers(worlds, "none")
    base = _with_region(_after(_sales(worlds, "none")), cust)
    slump = _with_region(_after(_sales(worlds, "territory_slump")), cust)
    west = pl.col("region") == "West"
    n_base = base.filter(west & pl.col("invoice_id").str.starts_with("INV-")).get_column("invoice_id").n_unique()
    n_slump = slump.filter(west & pl.col("invoice_id").str.starts_with("INV-")).get_column("invoice_id").n_unique()
    assert n_base > 100
    assert 0.35 < n_slump / n_base < 0.65
    # the other regions are untouched (only invoice numbers are re-issued after the month)
    others_b = base.filter(~west).drop("invoice_id")
    others_s = slump.filter(~west).drop("invoice_id")
    assert others_s.equals(others_b)
    # what is left of West is a subset of what it would have bought, whole customer-months at a time
    key = ["customer_id", "invoice_date", "sku", "quantity", "revenue"]
    assert slump.filter(west).select(key).join(base.filter(west).select(key), on=key, how="anti").height == 0
    # (invoice lines; a credit note is dated up to 60 days after its purchase, so it is not in the same month)
    month = pl.col("invoice_date").str.slice(0, 7)
    sales_w = west & pl.col("invoice_id").str.starts_with("INV-")
    kept = slump.filter(sales_w).select("customer_id", month.alias("m")).unique()
    whole = (base.filter(sales_w).with_columns(month.alias("m"))
             .join(kept, on=["customer_id", "m"], how="semi").drop("m"))
    assert whole.drop("invoice_id").sort(key + ["line_no"]).equals(
        slump.filter(sales_w).drop("invoice_id").sort(key + ["line_no"]))
    assert d["affected"]["customer_months_lost"] > 0
    lost_lines = base.filter(west & pl.col("invoice_id").str.starts_with("INV-")).height - slump.filter(
        west & pl.col("invoice_id").str.starts_with("INV-")).height
    assert d["affected"]["purchase_lines_dropped"] == lost_lines > 0


def test_territory_slump_scales_the_ground_truth(worlds, settings):
    cust = _customers(worlds, "none").select("customer_id", "region")
    cols = [f"p__{division_slug(x)}" for x in settings.divisions]
    later = pl.col("month") >= dt.date(2026, 4, 1)
    gb = _gt(worlds, "none").filter(later).join(cust, on="customer_id")
    gs = _gt(worlds, "territory_slump").filter(later).join(cust, on="customer_id")
    assert gb.select("customer_id", "month").equals(gs.select("customer_id", "month"))
    west = (gb.get_column("region") == "West").to_numpy()
    for c in cols:
        b, s = gb.get_column(c).to_numpy(), gs.get_column(c).to_numpy()
        assert (abs(s[west] - 0.5 * b[west]) <= 5e-4 * b[west] + 1e-12).all()
        assert (s[~west] == b[~west]).all()


def test_sku_moves_division_recodes_the_family(worlds, settings):
    d = worlds["sku_moves_division"][1].drift
    moved, to_sku = d["skus"], d["to_sku"]
    assert settings.sku_map[to_sku] == "Post_Processing" and {settings.sku_map[s] for s in moved} == {"Hardware"}
    base, drifted = _after(_sales(worlds, "none")), _after(_sales(worlds, "sku_moves_division"))
    assert base.filter(pl.col("sku").is_in(moved)).height > 50
    # after the month the family's invoice lines are there under the new SKU and division, same money; only a
    # credit note of a purchase made before the month keeps the old SKU
    invoice = pl.col("invoice_id").str.starts_with("INV-")
    assert drifted.filter(invoice & pl.col("sku").is_in(moved)).height == 0
    assert drifted.drop("sku", "division").equals(base.drop("sku", "division"))
    changed = (drifted.get_column("sku") != base.get_column("sku")).to_numpy()
    was = base.filter(pl.Series(changed))
    now = drifted.filter(pl.Series(changed))
    assert set(was.get_column("sku")) <= set(moved)
    assert set(now.get_column("sku")) == {to_sku} and set(now.get_column("division")) == {"Post_Processing"}
    assert was.filter(invoice).height == base.filter(invoice & pl.col("sku").is_in(moved)).height
    left = drifted.filter(pl.col("sku").is_in(moved))
    assert left.height <= 0.05 * was.height and (left.get_column("revenue") < 0).all()
    assert d["affected"]["purchase_lines_moved"] > 50
    # before it, the family sells in Hardware as always
    assert _before(_sales(worlds, "sku_moves_division")).filter(pl.col("sku").is_in(moved)).height > 100


def test_new_customer_wave_adds_customers_of_one_industry(worlds):
    d = worlds["new_customer_wave"][1].drift
    cust = _customers(worlds, "new_customer_wave")
    added = round(0.25 * N)
    assert cust.height == N + added and d["affected"]["customers_added"] == added
    assert cust.get_column("customer_id").is_sorted() and cust.get_column("customer_id").is_unique().all()
    wave = cust.tail(added)
    assert wave.get_column("customer_id").to_list()[0] == f"C{N + 1:07d}"
    industries = wave.get_column("industry").drop_nulls()
    assert set(industries) == {"Electronics"} and industries.len() >= 0.9 * added
    first = wave.get_column("first_seen_date")
    assert first.null_count() == 0
    assert first.min() >= dt.date(2026, 4, 1) and first.max() < dt.date(2026, 7, 1)
    # the roster's industry mix moves: Electronics share up by about the wave
    base_share = (_customers(worlds, "none").get_column("industry") == "Electronics").mean()
    assert (cust.get_column("industry") == "Electronics").mean() > base_share + 0.12
    # the old roster's rows are unchanged (only invoice numbers re-issued); the wave buys after it arrived
    sales = _sales(worlds, "new_customer_wave")
    wave_ids = wave.get_column("customer_id")
    old = _after(sales).filter(~pl.col("customer_id").is_in(wave_ids)).drop("invoice_id")
    assert old.equals(_after(_sales(worlds, "none")).drop("invoice_id"))
    bought = sales.filter(pl.col("customer_id").is_in(wave_ids)).join(
        wave.select("customer_id", "first_seen_date"), on="customer_id")
    assert bought.height > 0
    assert bought.filter(pl.col("invoice_date").str.slice(0, 7)
                         < pl.col("first_seen_date").dt.strftime("%Y-%m")).height == 0
    # each opens with a purchase of the entry division in its first month, so it joins the active population
    opening = bought.filter((pl.col("division") == "Solidworks") & (pl.col("revenue") > 0) & (
        pl.col("invoice_date").str.slice(0, 7) == pl.col("first_seen_date").dt.strftime("%Y-%m")))
    assert opening.get_column("customer_id").n_unique() == added
    # the ground truth covers the new customers from their first month
    gt = _gt(worlds, "new_customer_wave").filter(pl.col("customer_id").is_in(wave_ids))
    assert gt.get_column("customer_id").n_unique() == added
    assert gt.get_column("month").min() >= dt.date(2026, 4, 1)


def test_price_increase_raises_one_divisions_prices(worlds):
    d = worlds["price_increase"][1].drift
    assert d["division"] == "Solidworks" and d["params"]["factor"] == 1.3
    base, drifted = _after(_sales(worlds, "none")), _after(_sales(worlds, "price_increase"))
    assert drifted.drop("revenue", "gross_profit").equals(base.drop("revenue", "gross_profit"))
    swx = pl.col("division") == "Solidworks"
    assert drifted.filter(~swx).equals(base.filter(~swx))
    pb = base.filter(swx & (pl.col("revenue") > 0)).get_column("revenue").to_numpy()
    pd_ = drifted.filter(swx & (pl.col("revenue") > 0)).get_column("revenue").to_numpy()
    assert len(pb) > 20
    assert (abs(pd_ / pb - 1.3) < 1e-3).all()
    assert d["affected"]["purchase_lines_repriced"] >= len(pb)


# --------------------------------------------------------------------------------------------------------
# options and errors
# --------------------------------------------------------------------------------------------------------
def test_month_and_parameters_can_be_chosen(tmp_path, settings, worlds):
    m = generate_demo_data(tmp_path, customers=N, seed=SEED, settings=settings, dirt_rate=0.0, ground_truth=False,
                           drift="territory_slump", drift_month="2026-01", drift_params={"region": "East"})
    assert m.drift["from_month"] == "2026-01" and m.drift["first_cutoff"] == "2026-03-31"
    assert m.drift["subject"] == {"region": "East"}
    sales = pl.read_parquet(tmp_path / "sales_log.parquet")
    base = _sales(worlds, "none")
    cut = pl.col("invoice_date") < "2026-01-01"
    assert sales.filter(cut).equals(base.filter(cut))
    again = tmp_path / "again"  # seeded: the same scenario again gives the same bytes
    generate_demo_data(again, customers=N, seed=SEED, settings=settings, dirt_rate=0.0, ground_truth=False,
                       drift="territory_slump", drift_month="2026-01", drift_params={"region": "East"})
    for f in ("sales_log.parquet", "customers.parquet", MANIFEST_FILE):
        assert (again / f).read_bytes() == (tmp_path / f).read_bytes()


@pytest.mark.parametrize("kwargs, message", [
    ({"drift": "nope"}, "unknown drift scenario 'nope'; valid: territory_slump, sku_moves_division"),
    ({"drift": "territory_slump", "drift_month": "2027-01"}, "must be after the first data month"),
    ({"drift": "territory_slump", "drift_month": "April"}, "drift month must be YYYY-MM"),
    ({"drift": "territory_slump", "drift_params": {"regio": "East"}}, "has no parameter"),
    ({"drift": "territory_slump", "drift_params": {"region": "Mars"}}, "region must be one of"),
    ({"drift": "sku_moves_division", "drift_params": {"to_sku": "HW-PRN-FDM"}}, "another division"),
    ({"drift": "new_customer_wave", "drift_params": {"industry": "Mining"}}, "industry must be one of"),
    ({"drift": "new_customer_wave", "drift_params": {"entry_division": "Nope"}}, "entry_division"),
    ({"drift": "price_increase", "drift_params": {"division": "Nope"}}, "is not configured"),
])
def test_bad_scenarios_are_refused(tmp_path, settings, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_demo_data(tmp_path, customers=50, seed=SEED, settings=settings, **kwargs)


def test_cli_drift(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GOSALES_HOME", str(tmp_path / "home"))
    assert cli_main(["demo-data", "--drift", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: unknown drift scenario 'nope'; valid: ")
    assert all(name in err for name in DRIFT_SCENARIOS)

    assert cli_main(["demo-data", "--list-drift"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed and DRIFT_SCENARIOS[name].description in listed for name in DRIFT_SCENARIOS)

    assert cli_main(["demo-data", "--drift-month", "2026-04"]) == 2
    assert "go with --drift" in capsys.readouterr().err

    out = tmp_path / "out"
    assert cli_main(["demo-data", "--customers", "200", "--out", str(out), "--no-ground-truth", "--drift",
                     "territory_slump", "--drift-month", "2026-02", "--drift-param", "region=Canada",
                     "--drift-param", "factor=0.25"]) == 0
    printed = capsys.readouterr().out
    assert "planted drift: territory_slump from 2026-02" in printed
    d = DemoManifest.read(out).drift
    assert d["params"] == {"region": "Canada", "factor": 0.25} and d["first_cutoff"] == "2026-03-31"
