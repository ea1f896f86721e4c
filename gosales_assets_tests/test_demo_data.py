"""Tests of the seeded demo data generator (`gosales_assets.demo_data`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gosales_assets.demo_data import DIRT_RULES, DemoManifest, generate_demo_data
from gosales_assets.settings import division_slug, load_settings

N_CUSTOMERS = 3000
SEED = 7
SPARSE = ("CPE", "Scanning", "CAMWorks")


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return load_settings(home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory, settings):
    out = tmp_path_factory.mktemp("demo")
    manifest = generate_demo_data(out, customers=N_CUSTOMERS, seed=SEED, settings=settings)
    return out, manifest


@pytest.fixture(scope="module")
def sales(demo) -> pl.DataFrame:
    return pl.read_parquet(demo[0] / "sales_log.parquet")


@pytest.fixture(scope="module")
def customers(demo) -> pl.DataFrame:
    return pl.read_parquet(demo[0] / "customers.parquet")


@pytest.fixture(scope="module")
def clean(tmp_path_factory, settings) -> pl.DataFrame:
    """The same world without planted dirt (the dirt is drawn after the clean rows, so they coincide)."""
    out = tmp_path_factory.mktemp("clean")
    generate_demo_data(out, customers=N_CUSTOMERS, seed=SEED, settings=settings, dirt_rate=0.0,
                       ground_truth=False)
    return pl.read_parquet(out / "sales_log.parquet")


@pytest.fixture(scope="module")
def facts(clean) -> pl.DataFrame:
    return clean.with_columns(
        pl.col("invoice_date").str.to_date("%Y-%m-%d").alias("date"),
    ).with_columns(pl.col("date").dt.truncate("1mo").alias("month"))


@pytest.fixture(scope="module")
def purchases(facts, settings) -> pl.DataFrame:
    """Customer-month-division purchase events (positive lines, denylisted SKUs excluded)."""
    return (
        facts.filter((pl.col("revenue") > 0) & ~pl.col("sku").is_in(settings.labels.sku_denylist))
        .select("customer_id", "month", "division")
        .unique()
    )


def _iso_date(col: str) -> pl.Expr:
    c = pl.col(col)
    return pl.when(c.str.contains(r"^\d{4}-\d{2}-\d{2}$")).then(c.str.to_date("%Y-%m-%d", strict=False))


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _buyers(purchases: pl.DataFrame, division: str) -> set[str]:
    return set(purchases.filter(pl.col("division") == division).get_column("customer_id").to_list())


# ---- determinism -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_seed_gives_byte_identical_files(tmp_path, settings, fmt):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ma = generate_demo_data(a, customers=400, seed=11, settings=settings, fmt=fmt)
    mb = generate_demo_data(b, customers=400, seed=11, settings=settings, fmt=fmt)
    assert ma == mb
    da, db = _digests(a), _digests(b)
    assert set(da) == {f"sales_log.{fmt}", f"customers.{fmt}", "ground_truth.parquet", "demo_manifest.json"}
    assert da == db
    generate_demo_data(c, customers=400, seed=12, settings=settings, fmt=fmt)
    dc = _digests(c)
    assert dc[f"sales_log.{fmt}"] != da[f"sales_log.{fmt}"]
    assert dc["ground_truth.parquet"] != da["ground_truth.parquet"]


def test_csv_and_parquet_hold_the_same_rows(tmp_path, settings):
    generate_demo_data(tmp_path / "p", customers=300, seed=3, settings=settings)
    generate_demo_data(tmp_path / "c", customers=300, seed=3, settings=settings, fmt="csv")
    sp = pl.read_parquet(tmp_path / "p" / "sales_log.parquet")
    sc = pl.read_csv(tmp_path / "c" / "sales_log.csv", schema=sp.schema)
    assert sp.equals(sc)
    cp = pl.read_parquet(tmp_path / "p" / "customers.parquet")
    cc = pl.read_csv(tmp_path / "c" / "customers.csv", schema=cp.schema)
    assert cp.equals(cc)


def test_manifest_file_and_options(tmp_path, settings, demo):
    out, manifest = demo
    doc = json.loads((out / "demo_manifest.json").read_text())
    assert DemoManifest(**doc) == manifest == DemoManifest.read(out)
    assert list(doc) == sorted(doc)
    assert manifest.files == {"sales_log": "sales_log.parquet", "customers": "customers.parquet",
                              "ground_truth": "ground_truth.parquet"}
    assert manifest.customer_rows == N_CUSTOMERS
    assert manifest.start_date == settings.data.start_date.isoformat()
    assert manifest.end_date == settings.data.end_date.isoformat()
    # switching format and dropping the ground truth leaves one consistent set of files
    m2 = generate_demo_data(out_dir := tmp_path / "x", customers=50, seed=1, settings=settings)
    assert (out_dir / "ground_truth.parquet").exists()
    m2 = generate_demo_data(out_dir, customers=50, seed=1, settings=settings, fmt="csv", ground_truth=False,
                            dirt_rate=0.0)
    assert sorted(p.name for p in out_dir.iterdir()) == ["customers.csv", "demo_manifest.json", "sales_log.csv"]
    assert m2.planted == {r: 0 for r in DIRT_RULES}
    assert "ground_truth" not in m2.files
    with pytest.raises(ValueError):
        generate_demo_data(out_dir, customers=50, seed=1, settings=settings, fmt="xlsx")  # type: ignore[arg-type]


# ---- schema and keys -------------------------------------------------------------------------------------
def test_schemas(sales, customers):
    assert sales.schema == pl.Schema({
        "invoice_id": pl.String, "line_no": pl.Int64, "invoice_date": pl.String, "customer_id": pl.String,
        "sku": pl.String, "division": pl.String, "quantity": pl.Float64, "revenue": pl.Float64,
        "gross_profit": pl.Float64, "rep_id": pl.String,
    })
    assert customers.schema == pl.Schema({
        "customer_id": pl.String, "customer_name": pl.String, "industry": pl.String,
        "sub_industry": pl.String, "region": pl.String, "territory": pl.String,
        "employee_band": pl.String, "first_seen_date": pl.Date,
    })
    assert customers.height == N_CUSTOMERS
    assert customers.get_column("customer_id").is_unique().all()
    assert customers.get_column("customer_name").is_unique().all()
    assert customers.get_column("customer_id").is_sorted()
    for col in ("industry", "sub_industry", "employee_band", "first_seen_date"):
        share = customers.get_column(col).null_count() / N_CUSTOMERS
        assert 0 < share < 0.1, col
    for col in ("customer_id", "customer_name", "region", "territory"):
        assert customers.get_column(col).null_count() == 0
    assert set(customers.get_column("region").unique()) == {"West", "Central", "East", "Canada"}
    assert customers.select(
        (pl.col("territory").str.split("-").list.first() == pl.col("region")).all()
    ).item()
    assert set(customers.get_column("employee_band").drop_nulls().unique()) == {
        "1-10", "11-50", "51-200", "201-1000", "1000+"}


def test_clean_rows_are_sorted_keyed_and_valid(clean, customers, settings):
    assert clean.select(pl.struct("invoice_id", "line_no").is_unique().all()).item()
    assert clean.sort(["invoice_date", "invoice_id", "line_no"], maintain_order=True).equals(clean)
    dates = clean.select(_iso_date("invoice_date").alias("d")).get_column("d")
    assert dates.null_count() == 0
    assert dates.min() >= settings.data.start_date and dates.max() <= settings.data.end_date
    assert set(clean.get_column("sku").unique()) <= set(settings.sku_map)
    assert set(clean.get_column("sku").unique()) == set(settings.sku_map)  # every SKU sells in 6 years
    assert clean.select(
        (pl.col("division") == pl.col("sku").replace_strict(settings.sku_map)).all()).item()
    assert set(clean.get_column("customer_id").unique()) <= set(customers.get_column("customer_id"))
    assert clean.filter(pl.col("quantity") == 0).height == 0
    assert clean.filter((pl.col("quantity") > 0) != (pl.col("revenue") > 0)).height == 0
    # one invoice = one customer, one date, one rep
    per_inv = clean.group_by("invoice_id").agg(
        pl.col("customer_id").n_unique().alias("c"), pl.col("invoice_date").n_unique().alias("d"),
        pl.col("rep_id").n_unique().alias("r"), pl.col("line_no").max().alias("mx"), pl.len().alias("n"))
    assert per_inv.select((pl.col("c") == 1) & (pl.col("d") == 1) & (pl.col("r") == 1)
                          & (pl.col("mx") == pl.col("n"))).to_series().all()
    assert per_inv.get_column("n").max() > 1  # several lines per invoice happen
    assert clean.get_column("invoice_id").str.contains(r"^(INV|CR)-\d{6,}$").all()


def test_no_purchase_before_first_seen(facts, customers):
    first_buy = facts.group_by("customer_id").agg(pl.col("date").min().alias("first_buy"))
    joined = first_buy.join(customers, on="customer_id").filter(pl.col("first_seen_date").is_not_null())
    assert joined.filter(pl.col("first_buy") < pl.col("first_seen_date").dt.truncate("1mo")).height == 0


# ---- planted dirt ------------------------------------------------------------------------------------------
def _defect_flags(df: pl.DataFrame, customers: pl.DataFrame, settings) -> pl.DataFrame:
    canonical = pl.col("sku").replace_strict(settings.sku_map, default=None)
    d = _iso_date("invoice_date")
    return df.select(
        d.is_null().alias("unparseable_date"),
        (d.is_not_null() & ((d < settings.data.start_date) | (d > settings.data.end_date))).alias(
            "date_out_of_range"),
        canonical.is_null().alias("unknown_sku"),
        ~pl.col("customer_id").is_in(customers.get_column("customer_id").implode()).alias("unknown_customer"),
        (canonical.is_not_null() & (pl.col("division") != canonical)).alias("noncanonical_division"),
        ((pl.col("quantity") < 0) & (pl.col("revenue") > 0)).alias("sign_mismatch"),
    )


def test_planted_counts_match_the_files(demo, sales, customers, settings):
    _, manifest = demo
    assert list(manifest.planted) == list(DIRT_RULES)
    flags = _defect_flags(sales, customers, settings)
    counts = {c: int(flags.get_column(c).sum()) for c in flags.columns}
    counts["duplicate_line"] = sales.height - sales.unique().height
    assert counts == manifest.planted
    n_dirty = sum(manifest.planted.values())
    assert manifest.sales_rows == sales.height
    expected = round(0.002 * (sales.height - n_dirty))
    assert all(v == expected and v >= 1 for v in manifest.planted.values())
    # every dirty row has exactly one defect; clean rows have none
    n_def = flags.select(pl.sum_horizontal(pl.all().cast(pl.Int32))).to_series()
    own_invoice = sales.get_column("invoice_id").str.starts_with("INV-D")
    assert (n_def.filter(own_invoice) == 1).all()
    assert (n_def.filter(~own_invoice) == 0).all()
    assert own_invoice.sum() == n_dirty - manifest.planted["duplicate_line"]
    assert sales.filter(own_invoice).select(pl.struct("invoice_id", "line_no").is_unique().all()).item()
    # duplicates are exact copies of clean rows (key included)
    dups = sales.filter(sales.is_duplicated())
    assert not dups.get_column("invoice_id").str.starts_with("INV-D").any()


def test_dirty_rows_are_extra_rows_in_a_clean_world(sales, clean, demo):
    _, manifest = demo
    rest = sales.filter(~pl.col("invoice_id").str.starts_with("INV-D"))
    assert rest.height == clean.height + manifest.planted["duplicate_line"]
    assert rest.unique().sort(pl.all()).equals(clean.sort(pl.all()))
    # the variants look like the real thing
    non_canon = sales.filter(pl.col("invoice_id").str.starts_with("INV-D")
                             & pl.col("sku").is_in(clean.get_column("sku").unique().implode()))
    assert non_canon.height > 0


def test_planted_dirt_matches_the_contract_rules(demo, settings):
    """The engine's own star builder quarantines exactly the planted rows, each under its rule."""
    from gosales_assets.core.ingest import read_raw_table
    from gosales_assets.core.star import build_star, violation_summary

    out, manifest = demo
    star = build_star(read_raw_table(out, "sales_log"), read_raw_table(out, "customers"),
                      sku_map=settings.sku_map, start_date=settings.data.start_date,
                      end_date=settings.data.end_date)
    summary = violation_summary(star.contract_violations)["sales_log"]
    for rule in DIRT_RULES:
        assert summary[rule] == manifest.planted[rule], rule
    assert sum(summary.values()) == sum(manifest.planted.values())


# ---- realism ---------------------------------------------------------------------------------------------
def test_most_of_the_roster_never_buys(purchases):
    share_never = 1 - purchases.get_column("customer_id").n_unique() / N_CUSTOMERS
    assert 0.55 <= share_never <= 0.72


def test_division_coverage_and_sparsity(purchases, facts, settings):
    years = facts.get_column("date").dt.year()
    full_years = [y for y in range(years.min() + 1, years.max())]
    yearly = (purchases.with_columns(pl.col("month").dt.year().alias("y"))
              .filter(pl.col("y").is_in(full_years))
              .group_by("division", "y").agg(pl.col("customer_id").n_unique().alias("n"))
              .group_by("division").agg(pl.col("n").mean()))
    per_year = dict(yearly.iter_rows())
    assert set(per_year) == set(settings.divisions)  # every division has buyers
    for div in SPARSE:  # a few dozen buyers a year
        assert 10 <= per_year[div] <= 80, (div, per_year[div])
        assert per_year[div] < per_year["Solidworks"] / 4
    for div in ("Solidworks", "Maintenance", "Training", "Hardware"):
        assert per_year[div] > 150, (div, per_year[div])
    cons = facts.filter(pl.col("sku").str.starts_with("HW-CONS-") & (pl.col("revenue") > 0))
    printers = facts.filter(pl.col("sku").str.starts_with("HW-PRN-") & (pl.col("revenue") > 0))
    assert cons.height > 3 * printers.height  # consumables recur


def test_cross_sell_dependencies(purchases, customers):
    all_ids = set(customers.get_column("customer_id"))
    swx = _buyers(purchases, "Solidworks")
    mnt = _buyers(purchases, "Maintenance")
    sim = _buyers(purchases, "Simulation")
    hw = _buyers(purchases, "Hardware")
    pp = _buyers(purchases, "Post_Processing")
    assert len(mnt & swx) / len(mnt) > 0.7  # maintenance buyers are mostly Solidworks owners
    p_sim_swx = len(sim & swx) / len(swx)
    p_sim_not = len(sim - swx) / len(all_ids - swx)
    assert p_sim_swx > 5 * p_sim_not
    assert len(pp & hw) / len(pp) > 0.7
    cpe = _buyers(purchases, "CPE")
    electronics = set(customers.filter(pl.col("industry") == "Electronics").get_column("customer_id"))
    assert len(cpe & electronics) / len(cpe) > 0.4  # Electronics is ~10% of the roster


def test_maintenance_renews_yearly(facts):
    mnt = (facts.filter(pl.col("sku").str.starts_with("MNT-") & (pl.col("revenue") > 0))
           .select("customer_id", pl.col("month").dt.year().mul(12).add(pl.col("month").dt.month()).alias("k"))
           .unique())
    year_before = mnt.with_columns((pl.col("k") + 12).alias("k"), pl.lit(True).alias("prev"))
    later = mnt.join(year_before, on=["customer_id", "k"], how="left").filter(
        pl.col("k") > pl.col("k").min() + 12)
    # most maintenance purchases after the first year are renewals of one exactly a year before
    assert later.get_column("prev").fill_null(False).mean() > 0.45


def test_quarter_end_months_sell_more(facts, settings):
    # drop the partial first and last months
    m = (facts.filter((pl.col("month") > pl.col("month").min()) & (pl.col("month") < pl.col("month").max()))
         .group_by("month").agg(pl.col("revenue").sum(), pl.len().alias("lines"))
         .with_columns(pl.col("month").dt.month().alias("m")))
    qe = m.filter(pl.col("m").is_in([3, 6, 9, 12]))
    other = m.filter(~pl.col("m").is_in([3, 6, 9, 12]))
    assert qe.get_column("revenue").mean() > 1.15 * other.get_column("revenue").mean()
    dec = m.filter(pl.col("m") == 12).get_column("lines").mean()
    assert dec == m.group_by("m").agg(pl.col("lines").mean()).get_column("lines").max()


def test_returns_credits_and_nulls(facts, settings):
    credits = facts.filter(pl.col("revenue") < 0)
    purchases = facts.filter(pl.col("revenue") > 0)
    assert credits.height > 0
    assert (credits.get_column("quantity") < 0).all()
    assert credits.get_column("invoice_id").str.starts_with("CR-").all()
    assert 0.01 < credits.height / purchases.height < 0.04
    # a credit follows a purchase of the same customer and SKU within 60 days
    cand = credits.join(purchases, on=["customer_id", "sku"], suffix="_p").filter(
        ((pl.col("date") - pl.col("date_p")).dt.total_days()).is_between(0, 60)
        & (-pl.col("revenue") <= pl.col("revenue_p") + 0.01))
    assert cand.select("invoice_id").n_unique() == credits.height
    # some full returns net a purchase to zero
    net = facts.group_by("customer_id", "sku").agg(pl.col("revenue").sum())
    assert net.filter(pl.col("revenue").abs() < 0.005).height > 0
    gp_null = facts.get_column("gross_profit").null_count() / facts.height
    assert 0.01 < gp_null < 0.06
    assert 0 < facts.get_column("rep_id").null_count() / facts.height < 0.05
    margin = purchases.drop_nulls("gross_profit").select(
        (pl.col("gross_profit") / pl.col("revenue")).alias("m")).get_column("m")
    assert 0 < margin.min() and margin.max() < 1


def test_travel_lines_ride_along_with_services(facts, settings):
    denied = settings.labels.sku_denylist
    assert denied == ["SVC-TRAVEL"]
    travel = facts.filter(pl.col("sku").is_in(denied) & (pl.col("revenue") > 0))
    assert travel.height > 0
    other_services = facts.filter((pl.col("division") == "Services") & ~pl.col("sku").is_in(denied)
                                  & (pl.col("revenue") > 0)).select("invoice_id").unique()
    assert travel.join(other_services, on="invoice_id", how="anti").height == 0


def test_prices_look_like_a_cad_reseller(facts):
    unit = (facts.filter(pl.col("revenue") > 0)
            .with_columns((pl.col("revenue") / pl.col("quantity")).alias("unit"))
            .group_by("sku").agg(pl.col("unit").median()))
    u = dict(unit.iter_rows())
    assert 3000 < u["SWX-STD"] < u["SWX-PRO"] < u["SWX-PREM"] < 9000
    assert 0.18 < u["MNT-SWX-PRO"] / u["SWX-PRO"] < 0.27
    assert 15000 <= u["HW-PRN-FDM"] < u["HW-PRN-SLA"] <= 250000
    assert u["HW-CONS-FIL"] < 200 and u["HW-CONS-RES"] < 400
    assert 1000 <= u["TRN-ESS"] <= 3000
    assert 5000 <= u["SIM-STD"] < u["SIM-FLOW"] <= 20000


# ---- ground truth ----------------------------------------------------------------------------------------
def test_ground_truth_shape_and_range(demo, customers, settings):
    out, _ = demo
    gt = pl.read_parquet(out / "ground_truth.parquet")
    pcols = [f"p__{division_slug(d)}" for d in settings.divisions]
    assert gt.columns == ["customer_id", "month", *pcols]
    assert gt.schema["month"] == pl.Date
    assert all(gt.schema[c] == pl.Float32 for c in pcols)
    assert gt.select(pl.struct("customer_id", "month").is_unique().all()).item()
    assert (gt.get_column("month").dt.day() == 1).all()
    start, end = settings.data.start_date, settings.data.end_date
    n_months = (end.year - start.year) * 12 + end.month - start.month + 1
    assert gt.get_column("month").n_unique() == n_months
    assert gt.get_column("month").min() == start.replace(day=1)
    assert gt.select([pl.col(c).is_between(0.0, 1.0).all() for c in pcols]).row(0) == (True,) * len(pcols)
    assert gt.select(pl.col(pcols).null_count().sum()).row(0) == (0,) * len(pcols)
    # a customer appears from its first active month on, every month
    span = gt.group_by("customer_id").agg(pl.col("month").min().alias("first"), pl.len().alias("n"))
    assert span.height == N_CUSTOMERS
    last = dt.date(end.year, end.month, 1)
    span = span.with_columns(
        ((last.year - pl.col("first").dt.year()) * 12 + last.month - pl.col("first").dt.month() + 1).alias("exp"))
    assert (span.get_column("n") == span.get_column("exp")).all()
    seen = span.join(customers, on="customer_id").filter(
        pl.col("first_seen_date").is_not_null() & (pl.col("first_seen_date") > start))
    assert (seen.get_column("first") == seen.get_column("first_seen_date").dt.truncate("1mo")).all()


def test_ground_truth_predicts_and_is_calibrated(demo, purchases, settings):
    out, _ = demo
    gt = pl.read_parquet(out / "ground_truth.parquet")
    for div in settings.divisions:
        col = f"p__{division_slug(div)}"
        realized = purchases.filter(pl.col("division") == div).select(
            "customer_id", "month", pl.lit(1.0).alias("y"))
        frame = gt.select("customer_id", "month", pl.col(col).alias("p")).join(
            realized, on=["customer_id", "month"], how="left").with_columns(pl.col("y").fill_null(0.0))
        expected, actual = frame.get_column("p").sum(), frame.get_column("y").sum()
        # p is the simulation's own probability: purchases occur at the rate it says
        assert abs(actual - expected) < 4 * np.sqrt(expected) + 0.05 * expected, (div, expected, actual)
        # and customers with high p buy far more often than those with low p (not a tautology: the draws
        # are random, so a p unrelated to the simulation would fail here)
        p = frame.get_column("p")
        hi = frame.filter(p >= p.quantile(0.9)).get_column("y").mean()
        lo = frame.filter(p <= p.quantile(0.5)).get_column("y").mean()
        assert hi > 10 * max(lo, 1e-4), (div, hi, lo)


def test_ground_truth_is_the_simulation_probability(demo, purchases, settings):
    """Rank check per month: the realized buyers sit high in that month's p (AUC well above chance)."""
    out, _ = demo
    gt = pl.read_parquet(out / "ground_truth.parquet", columns=["customer_id", "month", "p__solidworks"])
    realized = purchases.filter(pl.col("division") == "Solidworks").select(
        "customer_id", "month", pl.lit(1).alias("y"))
    f = gt.join(realized, on=["customer_id", "month"], how="left").with_columns(pl.col("y").fill_null(0))
    r = f.get_column("p__solidworks").rank("average").to_numpy()
    y = f.get_column("y").to_numpy().astype(bool)
    auc = (r[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum())
    assert auc > 0.85


# ---- scale -----------------------------------------------------------------------------------------------
def test_scale_smoke(tmp_path, settings, demo):
    _, small = demo
    m = generate_demo_data(tmp_path, customers=20_000, seed=SEED, settings=settings, ground_truth=False)
    assert m.customer_rows == 20_000
    ratio = m.sales_rows / small.sales_rows
    assert 4.5 < ratio < 9.5  # rows grow with the roster
    assert sum(m.planted.values()) == 7 * round(0.002 * (m.sales_rows - sum(m.planted.values())))


def test_other_configurations_work(tmp_path):
    """Division names with spaces/&/'/slash, a division without SKUs, other SKUs and dates are all handled."""
    import yaml

    from gosales_assets.settings import DEFAULT_CONFIG_PATH, settings_from_dict

    doc = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    rename = {"Post_Processing": "Post-Processing & Finishing"}
    doc["divisions"] = [rename.get(d, d) for d in doc["divisions"]] + ["Cloud/PLM", "No SKUs", "O'Brien Kits"]
    doc["sku_map"] = {k: rename.get(v, v) for k, v in doc["sku_map"].items() if k != "MNT-SWX-PREM"}
    doc["sku_map"].update({"CLD-3DX": "Cloud/PLM", "OBK-1": "O'Brien Kits"})
    doc["data"] = {"start_date": "2005-03-15", "end_date": "2007-06-20"}
    doc["cutoffs"] = ["2006-12-31"]
    doc["labels"]["per_division_window_months"] = {}
    custom = settings_from_dict(doc, home=tmp_path / "home")
    m = generate_demo_data(tmp_path / "out", customers=1500, seed=5, settings=custom)
    sales = pl.read_parquet(tmp_path / "out" / "sales_log.parquet")
    ok = sales.filter(~pl.col("invoice_id").str.starts_with("INV-D")).unique()
    dates = ok.select(_iso_date("invoice_date")).to_series()
    assert dates.min() >= dt.date(2005, 3, 15) and dates.max() <= dt.date(2007, 6, 20)
    assert set(ok.get_column("sku")) <= set(custom.sku_map)
    sold = set(ok.get_column("division"))
    assert {"Cloud/PLM", "O'Brien Kits", "Post-Processing & Finishing"} <= sold
    assert "No SKUs" not in sold
    gt = pl.read_parquet(tmp_path / "out" / "ground_truth.parquet")
    assert "p__no_skus" in gt.columns and gt.get_column("p__no_skus").max() == 0.0
    assert m.planted["noncanonical_division"] >= 1
