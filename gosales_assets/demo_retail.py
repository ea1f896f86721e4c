"""A second demo world: a retailer's sales log (`gosales demo-data --world retail`).

The default demo (`demo_data`) simulates a CAD reseller: rich customer fields, ~30 SKUs, six years of history and
mild quarter-end seasonality. The logs the engine meets in the field differ from it in each of these ways, and this
world differs in all of them at once, so the whole graph can be run (and its quality measured) on a second world:
- sparse customer fields: only `customer_id` and `customer_name` carry values (industry, region, territory, size
  band and first-seen date are empty); `gross_profit` is empty on every line; no `rep_id` or `division` column;
- a catalogue of thousands of SKUs, popular by a power law within each division, so the `sku_map` is long;
- retail amounts: a few lines per invoice of tens of currency units each, several invoices a month;
- one year of history (13 months by default) and strong seasonality: a December peak (toys, electronics), a
  spring peak (garden), a back-to-school peak (stationery), a January trough;
- divisions (product categories) whose buyers overlap through a few latent tastes, customers who lapse and come
  back, and new customers arriving through the year.

`generate_retail_data(out_dir, ...)` writes `sales_log` and `customers` (the data contract, docs/DATA_CONTRACT.md),
`ground_truth.parquet` (the default demo's layout and meaning: `p__<division_slug>` = P(at least one purchase line
of the division in the month | the simulated state at the start of the month)), `demo_manifest.json` and
`gosales.yaml`: the default configuration with this world's divisions, SKU map, dates and cutoffs and a 3-month
label window (a year of history leaves no room to train and validate 6-month windows), its landing folder set to
`out_dir`. Point GOSALES_CONFIG at that file to run the engine on it. Same arguments → byte-identical files.
Everything is synthetic: customer names are word lists plus the customer number.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa
import yaml

from gosales_assets.core.calendar import add_months, month_end
from gosales_assets.demo_data import (
    CUSTOMERS_ARROW_SCHEMA,
    GROUND_TRUTH_FILE,
    MANIFEST_FILE,
    SALES_ARROW_SCHEMA,
    write_table,
)
from gosales_assets.settings import DEFAULT_CONFIG_PATH, division_slug, load_settings

RETAIL_DIVISIONS = ("Apparel", "Footwear", "Accessories", "Home", "Kitchen", "Garden", "Toys", "Beauty",
                    "Electronics", "Sports", "Stationery")
CONFIG_FILE = "gosales.yaml"
WINDOW_MONTHS = 3

# Typical unit price per division (currency units): each SKU's price is drawn around it.
_PRICE = {"Apparel": 28.0, "Footwear": 55.0, "Accessories": 18.0, "Home": 35.0, "Kitchen": 24.0, "Garden": 22.0,
          "Toys": 20.0, "Beauty": 12.0, "Electronics": 75.0, "Sports": 40.0, "Stationery": 6.0}
# Seasonality, as a logit shift by calendar month: every division's, plus each division's own peaks.
_SEASON = {1: -0.45, 2: -0.35, 3: -0.10, 4: 0.0, 5: 0.05, 6: 0.0, 7: -0.10, 8: 0.0, 9: 0.05, 10: 0.15, 11: 0.45,
           12: 0.80}
_PEAKS = {
    "Toys": {11: 0.5, 12: 1.2},
    "Electronics": {11: 0.6, 12: 0.9},
    "Garden": {3: 0.6, 4: 1.0, 5: 1.0, 6: 0.5, 11: -0.6, 12: -0.9, 1: -0.6},
    "Apparel": {9: 0.3, 11: 0.3, 12: 0.3},
    "Sports": {5: 0.4, 6: 0.5, 7: 0.4},
    "Stationery": {8: 0.9, 9: 0.6},
    "Beauty": {2: 0.3, 12: 0.4},
}
_NAME_A = ("Corner", "Main Street", "Harbor", "Valley", "Northside", "Oak", "Riverside", "Summit", "Market", "Village")
_NAME_B = ("Goods", "Store", "Outfitters", "Supply", "Emporium", "Trading", "Mercantile", "Shop")

# The reseller's files without the optional columns this world's source system does not have.
_SALES_SCHEMA = pa.schema([f for f in SALES_ARROW_SCHEMA if f.name not in ("division", "rep_id")])


@dataclass(frozen=True)
class RetailManifest:
    """What `generate_retail_data` wrote; also saved as `demo_manifest.json` (sorted keys, indent 2)."""

    world: str
    seed: int
    customers: int
    skus: int
    divisions: list[str]
    start_date: str
    end_date: str
    cutoffs: list[str]
    sales_rows: int
    credit_rows: int
    customer_rows: int
    files: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=2)


def _month_start(d: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after `d`'s."""
    return add_months(d, months).replace(day=1)


def retail_cutoffs(start: dt.date, end: dt.date, window_months: int = WINDOW_MONTHS) -> list[dt.date]:
    """The month-ends `gosales materialize` builds on this world: from the third month of the data (a customer's
    first quarter is history) to the last one whose label window closes by `end`, plus `end`'s own month-end (the
    current list, score-only)."""
    out, c = [], add_months(start, 2)
    while c <= add_months(end, -window_months):
        out.append(c)
        c = add_months(c, 1)
    if end not in out and month_end(end) == end:
        out.append(end)
    return out


def generate_retail_data(out_dir: Path, *, customers: int = 4000, skus: int = 2400, seed: int = 7,
                         months: int = 13, end_date: dt.date = dt.date(2026, 10, 31), divisions: int = 11,
                         fmt: Literal["parquet", "csv"] = "parquet", ground_truth: bool = True) -> RetailManifest:
    """Simulate the retail world and write its files and its configuration into `out_dir` (module docstring)."""
    if customers < 20:
        raise ValueError(f"customers must be at least 20, got {customers}")
    if not 2 <= divisions <= len(RETAIL_DIVISIONS):
        raise ValueError(f"divisions must be between 2 and {len(RETAIL_DIVISIONS)}, got {divisions}")
    if skus < 5 * divisions:
        raise ValueError(f"skus must be at least 5 per division ({5 * divisions}), got {skus}")
    if months < WINDOW_MONTHS + 4:
        raise ValueError(f"months must be at least {WINDOW_MONTHS + 4} (history, a trained cutoff and its label "
                         f"window), got {months}")
    if month_end(end_date) != end_date:
        raise ValueError(f"end_date must be a month-end, got {end_date}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(RETAIL_DIVISIONS[:divisions])
    D, N = len(names), customers
    start = _month_start(end_date, -(months - 1))
    month_starts = [_month_start(start, t) for t in range(months)]

    # ---- the catalogue: SKUs per division, their prices and popularity ---------------------------------------
    share = rng.dirichlet(np.full(D, 4.0))
    per_div = np.maximum(5, np.floor(share * skus).astype(int))
    per_div[np.argmax(per_div)] += skus - per_div.sum()  # exactly `skus` in all ...
    while per_div.min() < 5:  # ... and 5 at least in each: a small catalogue moves SKUs from the largest division
        per_div[np.argmax(per_div)] -= 1
        per_div[np.argmin(per_div)] += 1
    sku_div = np.repeat(np.arange(D), per_div)
    sku_ids = np.array([f"SKU-{i:06d}" for i in rng.permutation(np.arange(100_000, 100_000 + skus))])
    price = np.array([_PRICE[names[d]] for d in sku_div]) * np.exp(rng.normal(0.0, 0.5, skus))
    popularity = np.empty(skus)
    for d in range(D):
        idx = np.flatnonzero(sku_div == d)
        w = 1.0 / np.arange(1, idx.size + 1) ** 1.1
        popularity[idx] = rng.permutation(w) / w.sum()

    # ---- customers: engagement, tastes, size, arrival ---------------------------------------------------------
    base = rng.uniform(-4.0, -2.6, D)
    loadings = rng.normal(0.0, 0.7, (D, 3))
    engagement = rng.normal(0.0, 0.7, N)
    taste = rng.normal(0.0, 1.0, (N, 3))
    size = np.exp(rng.normal(0.0, 0.6, N))
    arrival = np.where(rng.random(N) < 0.75, 0, rng.integers(1, months, N))
    affinity = base[None, :] + engagement[:, None] + taste @ loadings.T
    season = np.array([[_SEASON[m] + _PEAKS.get(names[d], {}).get(m, 0.0) for d in range(D)] for m in range(1, 13)])

    # ---- months: who buys which division (the ground truth is the probability drawn from) ---------------------
    lapsed = rng.random(N) < 0.2
    since = np.full((N, D), 99)  # months since the division was last bought (99: not in the log)
    since_any = np.full(N, 99)
    bought_months: list[np.ndarray] = []
    truth: list[pl.DataFrame] = []
    cust_ids = np.array([f"C{i + 1:06d}" for i in range(N)])
    for t, m0 in enumerate(month_starts):
        present = arrival <= t
        logit = (affinity + season[m0.month - 1][None, :] + 1.0 * (since <= 2) + 0.4 * (since_any == 1)[:, None]
                 - 2.5 * lapsed[:, None] + 0.5 * ((t - arrival) < 2)[:, None])
        p = np.where(present[:, None], 1.0 / (1.0 + np.exp(-logit)), 0.0).astype(np.float32)
        bought = rng.random((N, D)) < p
        bought_months.append(bought)
        if ground_truth:
            rows = np.flatnonzero(present)
            truth.append(pl.DataFrame({"customer_id": cust_ids[rows], "month": [m0] * rows.size}
                                      | {f"p__{division_slug(n)}": p[rows, d] for d, n in enumerate(names)}))
        since = np.where(bought, 0, np.minimum(since + 1, 99))
        any_bought = bought.any(axis=1)
        since_any = np.where(any_bought, 0, np.minimum(since_any + 1, 99))
        flip = rng.random(N)
        lapsed = np.where(present & ~lapsed, flip < 0.06, np.where(present, flip >= 0.10, lapsed))

    # ---- lines: invoices of a customer-month, SKUs of each bought division, returns ---------------------------
    recs: dict[str, list] = {k: [] for k in ("t", "cust", "inv", "day", "sku", "qty", "rev")}
    for t, bought in enumerate(bought_months):
        days = (_month_start(start, t + 1) - month_starts[t]).days
        cs, ds = np.nonzero(bought)
        if cs.size == 0:
            continue
        n_inv = np.minimum(bought.sum(axis=1), 1 + rng.poisson(0.8, N))  # invoices per customer this month
        inv = (rng.random(cs.size) * n_inv[cs]).astype(int)
        inv_day = rng.integers(0, days, (N, 6))
        lines = 1 + np.minimum(rng.poisson(0.6 + 0.4 * np.clip(engagement[cs], 0, None)), 5)
        c_l, d_l, i_l = np.repeat(cs, lines), np.repeat(ds, lines), np.repeat(inv, lines)
        sku_l = np.empty(c_l.size, dtype=np.int64)
        for d in range(D):
            at = np.flatnonzero(d_l == d)
            pool = np.flatnonzero(sku_div == d)
            sku_l[at] = rng.choice(pool, size=at.size, p=popularity[pool])
        qty = 1 + rng.poisson(1.2 * size[c_l])
        rev = np.round(qty * price[sku_l] * rng.uniform(0.8, 1.0, c_l.size), 2)
        recs["t"].append(np.full(c_l.size, t))
        recs["cust"].append(c_l)
        recs["inv"].append(i_l)
        recs["day"].append(inv_day[c_l, np.minimum(i_l, 5)])
        recs["sku"].append(sku_l)
        recs["qty"].append(qty.astype(np.float64))
        recs["rev"].append(rev)
    cols = {k: np.concatenate(v) for k, v in recs.items()}
    dates = np.array([np.datetime64(month_starts[t]) for t in range(months)])[cols["t"]] + cols["day"]
    lines = pl.DataFrame({
        "customer_id": cust_ids[cols["cust"]], "inv": cols["inv"], "invoice_date": dates.astype("datetime64[D]"),
        "sku": sku_ids[cols["sku"]], "quantity": cols["qty"], "revenue": cols["rev"],
    }).sort(["invoice_date", "customer_id", "inv"], maintain_order=True)
    keys = lines.select("invoice_date", "customer_id", "inv").unique(maintain_order=True).with_row_index("n")
    sales = (lines.join(keys, on=["invoice_date", "customer_id", "inv"], maintain_order="left")
             .with_columns(pl.concat_str([pl.lit("R-"), (pl.col("n") + 1).cast(pl.String).str.zfill(7)])
                           .alias("invoice_id"),
                           pl.int_range(1, pl.len() + 1).over("n").alias("line_no")))
    # ~2 % of lines come back within 30 days (a credit note of its own, negative quantity and revenue).
    ret = sales.filter(pl.Series(rng.random(sales.height) < 0.02))
    back = ret.get_column("invoice_date").to_numpy() + rng.integers(1, 31, ret.height)
    ret = (ret.with_columns(pl.Series("invoice_date", back).cast(pl.Date),
                            (-pl.col("quantity")).alias("quantity"), (-pl.col("revenue")).alias("revenue"))
           .filter(pl.col("invoice_date") <= end_date))
    ret = ret.with_columns(pl.concat_str([pl.lit("RC-"), pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(6)])
                           .alias("invoice_id"), pl.lit(1, dtype=pl.Int64).alias("line_no"))
    out = (pl.concat([sales.select(ret.columns), ret])
           .sort(["invoice_date", "invoice_id", "line_no"], maintain_order=True)
           .select(pl.col("invoice_id"), pl.col("line_no").cast(pl.Int64),
                   pl.col("invoice_date").dt.strftime("%Y-%m-%d"), "customer_id", "sku", "quantity", "revenue",
                   pl.lit(None, dtype=pl.Float64).alias("gross_profit")))
    cust = pl.DataFrame({
        "customer_id": cust_ids,
        "customer_name": [f"{_NAME_A[a]} {_NAME_B[b]} {i + 1:05d}" for i, (a, b) in
                          enumerate(zip(rng.integers(0, len(_NAME_A), N), rng.integers(0, len(_NAME_B), N)))],
    }).with_columns(*[pl.lit(None, dtype=pl.String).alias(c) for c in
                      ("industry", "sub_industry", "region", "territory", "employee_band")],
                    pl.lit(None, dtype=pl.Date).alias("first_seen_date"))

    files = {"sales_log": f"sales_log.{fmt}", "customers": f"customers.{fmt}", "config": CONFIG_FILE}
    other = "csv" if fmt == "parquet" else "parquet"
    for name in (f"sales_log.{other}", f"customers.{other}"):
        (out_dir / name).unlink(missing_ok=True)
    write_table(out, out_dir / files["sales_log"], fmt, _SALES_SCHEMA)
    write_table(cust, out_dir / files["customers"], fmt, CUSTOMERS_ARROW_SCHEMA)
    if ground_truth:
        files["ground_truth"] = GROUND_TRUTH_FILE
        write_table(pl.concat(truth).sort(["month", "customer_id"]), out_dir / GROUND_TRUTH_FILE, "parquet")
    else:
        (out_dir / GROUND_TRUTH_FILE).unlink(missing_ok=True)

    cutoffs = retail_cutoffs(start, end_date)
    sku_map = {str(s): names[d] for s, d in sorted(zip(sku_ids, sku_div))}
    config = retail_config(out_dir, names, sku_map, start, end_date, cutoffs, customers, seed)
    tmp = out_dir / f".{CONFIG_FILE}.tmp"
    tmp.write_text(config, encoding="utf-8")
    os.replace(tmp, out_dir / CONFIG_FILE)
    with tempfile.TemporaryDirectory() as home:  # the written config must load
        load_settings(out_dir / CONFIG_FILE, home=home)

    manifest = RetailManifest(
        world="retail", seed=seed, customers=N, skus=skus, divisions=names, start_date=start.isoformat(),
        end_date=end_date.isoformat(), cutoffs=[c.isoformat() for c in cutoffs], sales_rows=out.height,
        credit_rows=ret.height, customer_rows=cust.height, files=files)
    (out_dir / MANIFEST_FILE).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest


def retail_config(landing: Path, divisions: list[str], sku_map: dict[str, str], start: dt.date, end: dt.date,
                  cutoffs: list[dt.date], customers: int, seed: int) -> str:
    """The default configuration with this world's divisions, SKU map, dates, cutoffs and label window, its landing
    folder `landing`: every other setting is the shipped default (nothing tuned to this world)."""
    doc = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    doc["divisions"] = list(divisions)
    doc["sku_map"] = dict(sku_map)
    doc["data"] = {"start_date": start, "end_date": end}
    doc["cutoffs"] = list(cutoffs)
    doc["paths"] = {"landing": str(Path(landing).resolve()), "warehouse": None, "artifacts": None}
    doc["labels"]["window_months"] = WINDOW_MONTHS
    doc["labels"]["per_division_window_months"] = {}
    doc["labels"]["sku_denylist"] = []
    doc["models"]["gates"]["per_division"] = {}
    doc["demo"] = {**doc.get("demo", {}), "customers": customers}
    doc["seeds"] = {**doc["seeds"], "demo": seed}
    header = ("# GoSales Assets configuration of the retail demo world (gosales demo-data --world retail): the\n"
              "# shipped defaults with this world's divisions, SKU map, dates, cutoffs and a 3-month label window.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)

