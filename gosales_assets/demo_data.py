"""Seeded, deterministic generator of a realistic raw sales log for a CAD / engineering reseller.

`generate_demo_data(out_dir, customers=..., seed=..., settings=...)` writes the two raw tables of the data
contract (DESIGN.md §2) plus a ground-truth file and a manifest into `out_dir`. Same seed, size, format and
settings give byte-identical files. Everything is synthetic: customer names are built from word lists plus
the customer number ("Apex Fixtures 0123 Inc"); there are no real companies or people.

Files
-----
`sales_log.parquet` | `sales_log.csv` — one row per invoice line, columns in this order:

    invoice_id    str      "INV-000123" (sales), "CR-000045" (credit notes), "INV-D000007" (planted dirty rows)
    line_no       int64    1.. within the invoice; (invoice_id, line_no) is unique among clean rows
    invoice_date  str      ISO "YYYY-MM-DD" (text in both formats so that planted unparseable dates fit)
    customer_id   str      "C0000042"
    sku           str      a key of `settings.sku_map` (clean rows)
    division      str      the source system's division label; clean rows carry the exact canonical name
    quantity      float64  seats / units; negative on credit notes (returns)
    revenue       float64  net of discount, 2 decimals; negative on credit notes
    gross_profit  float64  null on ~3% of lines
    rep_id        str      "R007" (the territory's rep, sometimes another rep); null on ~2% of invoices

  Clean rows are sorted by (invoice_date, invoice_id, line_no); planted dirty rows sit at seeded positions.
  Every line of one invoice has the same date, customer and rep. Invoice numbers grow with the date.

`customers.parquet` | `customers.csv` — one row per customer, sorted by customer_id:

    customer_id, customer_name, industry, sub_industry, region, territory, employee_band: str
    first_seen_date: Date in Parquet, ISO text "YYYY-MM-DD" in CSV

  industry (~3%), sub_industry (~6%), employee_band (~4%) and first_seen_date (~2%) are null at low rates;
  the simulation still uses the hidden true value. A customer never buys before its first_seen_date month.

`ground_truth.parquet` (always Parquet; skipped with `ground_truth=False`) — the simulation's own monthly
purchase probabilities, wide layout, one row per (customer_id, month) for every month from the customer's
first active month (the month of first_seen_date, or the first data month for older customers) to the last
data month; rows sorted by (month, customer_id), one row group per month. Columns: `customer_id` (str),
`month` (Date, first of month) and one Float32 column `p__<division_slug>` per configured division.

  p__<slug>[c, m] = P(customer c has at least one purchase line (positive quantity and revenue, credit notes
  excluded) of that division dated in month m | the simulated state at the start of month m).

  The state at the start of m is everything the simulation had drawn before m (owned divisions, seats,
  subscriptions, printers, recency of every division) plus the customer's latent traits (engagement, its
  slowly drifting component for month m, per-division affinities, territory effect). Given that state, the
  purchase channels of a month are independent draws, and p combines them:
  - every division: a new purchase (first purchase of the division, or a repeat / add-on purchase);
  - Maintenance additionally: the first-year subscription bundled with new Solidworks seats (85% of
    Solidworks purchases), and the annual renewal, which is possible only in an anniversary month of an
    active subscription (p then includes the customer's renewal probability, ~0.6-0.9). The "new" channel
    of Maintenance is a re-instatement of a lapsed subscription (0 while a subscription is active);
  - Success Plan additionally: the annual renewal of an active plan in its anniversary month;
  - Hardware: printer purchases plus the recurring consumables channel of printer owners.
  So for a customer who has never bought division d, p is exactly the probability of a first (expansion)
  purchase of d in that month. p is gross of later returns: ~2.5% of purchase lines get a credit note
  0-60 days later, some of them full returns that net the purchase to zero. Lines of SKUs in
  `labels.sku_denylist` (SVC-TRAVEL) only ever appear next to a non-denylisted line of the same division
  on the same invoice, so they never change whether a customer bought a division in a month.
  Planted dirty rows are extra copies derived from clean lines (same customer and month unless the date or
  customer is the defect), so they do not change the purchases p describes either.

`demo_manifest.json` — `DemoManifest` as JSON (sorted keys, indent 2); its `drift` key is present only when a
drift scenario was planted.

Planted drift
-------------
`generate_demo_data(..., drift=name, drift_month="YYYY-MM", drift_params={...})` plants one scenario of
`DRIFT_SCENARIOS` from month M on (default: the month after the second-to-last configured cutoff):
`territory_slump` (a region's customer-months keep their invoices with probability `factor`),
`sku_moves_division` (a SKU family's lines re-coded to another division's SKU), `new_customer_wave` (extra
customers of one industry first seen from M), `price_increase` (a division's unit prices x `factor`). A scenario
draws from its own seeded stream and is applied after the simulation's draws, so every clean row dated before M
(and the whole roster of before) is identical to the run without it; invoice numbers after M are re-issued in date
order. The manifest's `drift` records the scenario, its parameters and subject, `from_month`, `first_cutoff` (the
first configured cutoff containing M), the expected effect, what was changed and how the ground truth relates to
it. docs/DRIFT.md describes them and how to rehearse an alert end to end.

Planted dirt
------------
For each rule in `DIRT_RULES`, round(dirt_rate * clean rows) extra rows (at least 1 when dirt_rate > 0) are
derived from randomly chosen clean purchase lines and changed in exactly one respect; each gets its own
invoice "INV-D000001".. with line_no 1, except `duplicate_line` rows, which are exact copies (key
included) of a clean line. Counts are recorded in `DemoManifest.planted`.

Realism model (monthly, vectorised over customers)
--------------------------------------------------
Customers have industry / sub-industry, region / territory (one rep each), employee band and first-seen
date, a latent engagement N(0,1) with a slow AR(1) drift, per-division affinity noise, and observable fit
effects (industry, sub-industry, territory; fixed for every seed, so they are learnable). Each month the
logit of a new purchase of division d is: division base + engagement + size and industry effects + live
ownership of related divisions (Solidworks -> PDM, Simulation, Training, Services, CAMWorks, CPE, Success
Plan, Maintenance re-instatement; printers -> Post_Processing, Scanning, Success Plan) + recent-purchase
lags (new seats -> Training / Services within 3 months, PDM -> data migration, new printer ->
post-processing) + recency of any purchase + quarter-end seasonality (December strongest) + a mild growth
trend. Ownership stops counting when it goes stale (no purchase for 3-5 years, maintenance / plan lapsed,
printer retired after 2 years without printer or consumables purchases), and renewals sometimes drop
seats, so the installed base churns as well as grows. Most of the roster never buys. The simulation starts
48 months before the extract (burn-in, nothing recorded) from a seeded installed base, so the extract opens
on a settled customer base with maintenance anniversaries spread over the year. Ground-truth values are
float32 rounded to ~4 significant digits (relative error < 1.3e-4) so the file compresses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from gosales_assets.settings import Settings, division_slug

DIRT_RULES = (
    "unparseable_date",
    "date_out_of_range",
    "unknown_sku",
    "unknown_customer",
    "duplicate_line",
    "noncanonical_division",
    "sign_mismatch",
)

SALES_COLUMNS = (
    "invoice_id", "line_no", "invoice_date", "customer_id", "sku", "division",
    "quantity", "revenue", "gross_profit", "rep_id",
)
CUSTOMER_COLUMNS = (
    "customer_id", "customer_name", "industry", "sub_industry", "region", "territory",
    "employee_band", "first_seen_date",
)
MANIFEST_FILE = "demo_manifest.json"
GROUND_TRUTH_FILE = "ground_truth.parquet"

SALES_ARROW_SCHEMA = pa.schema([
    ("invoice_id", pa.string()), ("line_no", pa.int64()), ("invoice_date", pa.string()),
    ("customer_id", pa.string()), ("sku", pa.string()), ("division", pa.string()),
    ("quantity", pa.float64()), ("revenue", pa.float64()), ("gross_profit", pa.float64()),
    ("rep_id", pa.string()),
])
CUSTOMERS_ARROW_SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("customer_name", pa.string()), ("industry", pa.string()),
    ("sub_industry", pa.string()), ("region", pa.string()), ("territory", pa.string()),
    ("employee_band", pa.string()), ("first_seen_date", pa.date32()),
])


@dataclass(frozen=True)
class DemoManifest:
    """What `generate_demo_data` wrote; also saved as `demo_manifest.json` (sorted keys, indent 2)."""

    seed: int
    customers: int
    sales_rows: int  # all rows of the sales log, clean + planted dirt
    customer_rows: int
    start_date: str
    end_date: str
    format: str
    planted: dict[str, int]  # rule -> number of dirty rows planted (every rule of DIRT_RULES present)
    files: dict[str, str]  # logical name -> file name inside out_dir
    drift: dict | None = None  # the planted drift scenario (see DRIFT_SCENARIOS); absent from the JSON when None

    def to_json(self) -> str:
        d = asdict(self)
        if d["drift"] is None:  # files without a scenario are the same as before scenarios existed
            del d["drift"]
        return json.dumps(d, sort_keys=True, indent=2) + "\n"

    @classmethod
    def read(cls, out_dir: Path) -> "DemoManifest":
        return cls(**json.loads((Path(out_dir) / MANIFEST_FILE).read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------------------
# Planted drift scenarios
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftScenario:
    """A named change planted in the demo data from a month M on (`generate_demo_data(drift=name)`).

    `params` are the defaults (overridable with `drift_params`); `subject` names the parameter that says what
    changed (a region, a SKU family, an industry, a division); `expected` is a template over the parameters."""

    name: str
    description: str
    params: dict
    subject: tuple[str, ...]
    expected: str


DRIFT_SCENARIOS: dict[str, DriftScenario] = {s.name: s for s in (
    DriftScenario(
        "territory_slump",
        "one region's customers buy `factor` x as often (half by default) from month M: each of their "
        "customer-months from M keeps its invoices (and their credit notes) with probability `factor`, else loses "
        "all of them (a competitor wins the region's business)",
        {"region": "West", "factor": 0.5}, ("region",),
        "invoice count of {region} customers per month from {from_month} x{factor}; their purchase "
        "rate and the region's recency / frequency features fall"),
    DriftScenario(
        "sku_moves_division",
        "a SKU family is re-assigned to another business unit from month M: its lines are invoiced under that "
        "unit's SKU `to_sku` (same quantity and revenue; the sku_map is not updated, so the engine sees the "
        "source division's activity fall and the target's rise)",
        {"skus": ["HW-CONS-FIL", "HW-CONS-RES"], "to_sku": "PP-SUPPORT"}, ("skus", "to_sku"),
        "lines of {skus} from {from_month} appear as {to_sku} ({to_division}): {from_division} activity of "
        "printer owners falls, {to_division} purchases (and its label prevalence) jump"),
    DriftScenario(
        "new_customer_wave",
        "a wave of new customers of one industry arrives from month M: `share` x the roster extra customers, all "
        "of `industry`, first seen over `spread_months` months from M (numbered after the roster); each opens "
        "with a purchase of `entry_division` in its first month (so it joins the active population the models "
        "score), then buys like any customer of that industry",
        {"industry": "Electronics", "share": 0.25, "spread_months": 3, "entry_division": "Solidworks"},
        ("industry",),
        "{added} new {industry} customers first seen from {from_month}, each opening with a {entry_division} "
        "purchase in its first month: the active population's industry mix and tenure shift"),
    DriftScenario(
        "price_increase",
        "one division's prices go up by `factor` from month M (unit prices of its lines and their credit notes; "
        "gross margin % unchanged); purchase behaviour is unchanged",
        {"division": "Solidworks", "factor": 1.3}, ("division",),
        "revenue and gross profit of {division} lines from {from_month} x{factor}; counts unchanged"),
)}
_SCENARIO_SALT = 0x6D1F7  # separates a scenario's random stream from the simulation's (same seed)


def describe_drift_scenarios() -> str:
    """One line per scenario: name, defaults, description (for `gosales demo-data --list-drift`)."""
    return "\n".join(f"{s.name:20s} {json.dumps(s.params)}\n{'':20s} {s.description}" for s in DRIFT_SCENARIOS.values())


def default_drift_month(settings: Settings) -> dt.date:
    """The month after the second-to-last configured cutoff (after the last one with a single cutoff), so the
    change first reaches the scoring population at the last configured cutoff; clipped into the data range."""
    cutoffs = sorted(settings.cutoffs)
    anchor = cutoffs[-2] if len(cutoffs) >= 2 else cutoffs[-1]
    m = _month_add(dt.date(anchor.year, anchor.month, 1), 1)
    start, end = settings.data.start_date, settings.data.end_date
    lo, hi = _month_add(dt.date(start.year, start.month, 1), 1), dt.date(end.year, end.month, 1)
    return min(max(m, lo), hi)


def _parse_month(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, 1)
    try:
        d = dt.datetime.strptime(str(value).strip()[:7], "%Y-%m").date()
    except ValueError:
        raise ValueError(f"drift month must be YYYY-MM, got {value!r}") from None
    return d


@dataclass
class _Plan:
    """A scenario resolved against the settings and the roster (what `_clean_sales` applies)."""

    t0: int  # month index of the first affected month
    price_div: int | None = None
    price_factor: float = 1.0
    move_from: tuple[int, ...] = ()
    move_to: int = -1
    keep: np.ndarray | None = None  # (customers, months) bool: customer-months that keep their invoices
    slump_rows: np.ndarray | None = None  # customers whose months are thinned
    slump_factor: float = 1.0
    n_lines: int = 0  # purchase lines dropped, re-coded or re-priced (set by _clean_sales)


def _resolve_drift(name: str, params: dict | None, month, settings: Settings) -> tuple[DriftScenario, dict, dt.date]:
    if name not in DRIFT_SCENARIOS:
        raise ValueError(f"unknown drift scenario {name!r}; valid: {', '.join(DRIFT_SCENARIOS)}")
    sc = DRIFT_SCENARIOS[name]
    unknown = set(params or {}) - set(sc.params)
    if unknown:
        raise ValueError(f"drift scenario {name} has no parameter(s) {sorted(unknown)}; valid: {sorted(sc.params)}")
    p = {**sc.params, **(params or {})}
    m = _parse_month(month) if month is not None else default_drift_month(settings)
    start, end = settings.data.start_date, settings.data.end_date
    if not dt.date(start.year, start.month, 1) < m <= dt.date(end.year, end.month, 1):
        raise ValueError(f"drift month {m:%Y-%m} must be after the first data month {start:%Y-%m} and no later "
                         f"than the last one {end:%Y-%m}")
    if name == "territory_slump":
        regions = [r[0] for r in _REGIONS]
        if p["region"] not in regions:
            raise ValueError(f"territory_slump: region must be one of {regions}, got {p['region']!r}")
        if not 0.0 <= float(p["factor"]) < 1.0:
            raise ValueError(f"territory_slump: factor must be in [0, 1), got {p['factor']}")
    elif name == "sku_moves_division":
        p["skus"] = [p["skus"]] if isinstance(p["skus"], str) else list(p["skus"])
        missing = [x for x in [*p["skus"], p["to_sku"]] if x not in settings.sku_map]
        if missing:
            raise ValueError(f"sku_moves_division: SKU(s) {missing} are not in the configured sku_map")
        if any(settings.sku_map[x] == settings.sku_map[p["to_sku"]] for x in p["skus"]):
            raise ValueError("sku_moves_division: to_sku must belong to another division than the moved SKUs")
    elif name == "new_customer_wave":
        if p["industry"] not in _IND_NAMES:
            raise ValueError(f"new_customer_wave: industry must be one of {list(_IND_NAMES)}, got {p['industry']!r}")
        if not 0.0 < float(p["share"]) <= 5.0 or int(p["spread_months"]) < 1:
            raise ValueError("new_customer_wave: share must be in (0, 5] and spread_months at least 1")
        if p["entry_division"] is not None and p["entry_division"] not in settings.divisions:
            raise ValueError(f"new_customer_wave: entry_division {p['entry_division']!r} is not configured "
                             "(null: no opening purchase)")
    elif name == "price_increase":
        if p["division"] not in settings.divisions:
            raise ValueError(f"price_increase: division {p['division']!r} is not configured")
        if float(p["factor"]) <= 0:
            raise ValueError(f"price_increase: factor must be positive, got {p['factor']}")
    return sc, p, m


def _drift_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SCENARIO_SALT, list(DRIFT_SCENARIOS).index(name)]))


# ---------------------------------------------------------------------------------------------------------
# Firmographics
# ---------------------------------------------------------------------------------------------------------
_INDUSTRIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("Machinery", 0.17, ("Industrial Machinery", "Packaging Equipment", "Agricultural Equipment",
                         "Tooling & Fixtures")),
    ("Aerospace & Defense", 0.07, ("Aircraft Components", "Defense Systems", "Space Hardware")),
    ("Automotive", 0.09, ("Auto Parts", "Motorsport", "EV Components")),
    ("Medical Devices", 0.08, ("Surgical Instruments", "Orthopedics", "Diagnostic Equipment")),
    ("Consumer Products", 0.12, ("Household Goods", "Sporting Goods", "Toys & Games", "Furniture")),
    ("Electronics", 0.10, ("Consumer Electronics", "Industrial Controls", "Semiconductor Equipment",
                           "PCB Assembly")),
    ("Education", 0.07, ("University", "Community College", "K-12")),
    ("Architecture & Construction", 0.08, ("Building Products", "HVAC", "Structural Steel")),
    ("Energy & Utilities", 0.05, ("Oil & Gas Equipment", "Renewable Energy", "Power Generation")),
    ("Plastics & Molding", 0.06, ("Injection Molding", "Mold Making", "Extrusion")),
    ("Engineering Services", 0.06, ("Contract Design", "Prototyping", "Product Development")),
    ("Other", 0.05, ("Retail", "Software", "Logistics")),
)
_IND_NAMES = tuple(i[0] for i in _INDUSTRIES)
# Fixed structure of the simulated market (the same for every seed): sub-industry fit and territory (rep)
# effects. Customers and their draws vary with the seed; these effects do not.
_WORLD_SUB_EFFECT = np.random.default_rng(20240601).normal(0.0, 0.5, sum(len(i[2]) for i in _INDUSTRIES))
_WORLD_SUB_EFFECT = _WORLD_SUB_EFFECT.astype(np.float32)
_REGIONS: tuple[tuple[str, float, int], ...] = (
    ("West", 0.30, 6), ("Central", 0.27, 5), ("East", 0.33, 6), ("Canada", 0.10, 3),
)
_BANDS = ("1-10", "11-50", "51-200", "201-1000", "1000+")
_BAND_WEIGHTS = (0.34, 0.31, 0.20, 0.11, 0.04)

_NAME_ADJ = (
    "Apex", "Summit", "Cobalt", "Granite", "Vector", "Keystone", "Meridian", "Harbor", "Pioneer", "Sterling",
    "Cascade", "Evergreen", "Ironwood", "Bluefield", "Redline", "Silverline", "Cornerstone", "Lakeshore",
    "Highland", "Prairie", "Crescent", "Beacon", "Falcon", "Orion", "Titan", "Quantum", "Precision",
    "Frontier", "Riverside", "Westbrook", "Eastgate", "Northgate", "Southpoint", "Clearwater", "Copper",
    "Oakridge", "Maplewood", "Stonebridge", "Bright", "Tristar",
)
_NAME_NOUN = (
    "Fixtures", "Machining", "Dynamics", "Fabrication", "Tooling", "Designs", "Instruments", "Components",
    "Robotics", "Molding", "Controls", "Systems", "Devices", "Engineering", "Manufacturing", "Works", "Labs",
    "Technologies", "Products", "Assemblies", "Castings", "Motion", "Optics", "Structures", "Plastics",
    "Metalworks", "Automation", "Prototypes", "Innovations", "Solutions",
)
_NAME_SUFFIX = ("Inc", "LLC", "Ltd", "Corp", "Co", "Group", "ULC")

# ---------------------------------------------------------------------------------------------------------
# Divisions: behaviour profiles keyed by canonical name. A configured division without a profile gets the
# generic one; effects that name a division absent from the config are dropped.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Profile:
    base: float  # logit intercept of a new purchase per month
    eng: float = 0.75  # weight of the engagement latent
    size: tuple[float, float, float, float, float] = (-0.8, -0.2, 0.4, 0.9, 1.3)
    industry: tuple[tuple[str, float], ...] = ()
    deps: tuple[tuple[str, float], ...] = ()  # (owned division, logit effect)
    lags: tuple[tuple[str, int, float], ...] = ()  # (division bought within n months, logit effect)
    recency: float = 1.0  # weight of the any-purchase recency effect
    season: float = 1.0  # weight of the quarter-end seasonality
    margin: float = 0.25  # gross margin


_GENERIC = _Profile(base=-9.0, deps=(("Solidworks", 1.2),))
_PROFILES: dict[str, _Profile] = {
    "Solidworks": _Profile(
        base=-6.7, eng=0.95, size=(-0.9, -0.2, 0.5, 1.1, 1.5),
        industry=(("Machinery", 0.4), ("Aerospace & Defense", 0.3), ("Automotive", 0.3),
                  ("Medical Devices", 0.3), ("Consumer Products", 0.2), ("Plastics & Molding", 0.2),
                  ("Engineering Services", 0.3), ("Education", -0.2), ("Architecture & Construction", -0.5),
                  ("Other", -0.9)),
        deps=(("Solidworks", 0.4), ("Hardware", 0.5)), margin=0.22),
    "Maintenance": _Profile(base=-9.5, eng=0.6, deps=(("Solidworks", 5.0),), recency=0.5, margin=0.26),
    "PDM": _Profile(
        base=-9.6, eng=0.8, size=(-1.6, -0.6, 0.4, 1.2, 1.8),
        industry=(("Aerospace & Defense", 0.5), ("Medical Devices", 0.4), ("Automotive", 0.3),
                  ("Machinery", 0.2), ("Other", -0.8)),
        deps=(("Solidworks", 2.7), ("PDM", 0.8)), margin=0.24),
    "Simulation": _Profile(
        base=-9.6, eng=0.8, size=(-1.0, -0.3, 0.3, 0.9, 1.3),
        industry=(("Aerospace & Defense", 0.8), ("Automotive", 0.6), ("Medical Devices", 0.6),
                  ("Energy & Utilities", 0.5), ("Plastics & Molding", 0.4), ("Machinery", 0.2),
                  ("Education", -0.3), ("Other", -0.8)),
        deps=(("Solidworks", 2.8), ("Simulation", 0.8)), margin=0.22),
    "Services": _Profile(
        base=-8.9, eng=0.75, size=(-1.0, -0.3, 0.3, 0.9, 1.4),
        industry=(("Engineering Services", -0.3), ("Education", -0.5), ("Other", -0.5)),
        deps=(("Solidworks", 1.1), ("PDM", 0.6)),
        lags=(("Solidworks", 3, 1.3), ("PDM", 3, 1.7)), margin=0.45),
    "Training": _Profile(
        base=-8.1, eng=0.75, size=(-0.6, -0.1, 0.3, 0.7, 1.0),
        industry=(("Education", 1.0), ("Engineering Services", 0.3), ("Other", -0.5)),
        deps=(("Solidworks", 1.4), ("Simulation", 0.4), ("CAMWorks", 0.5), ("Training", 0.3)),
        lags=(("Solidworks", 3, 1.8),), margin=0.55),
    "Success Plan": _Profile(
        base=-9.6, eng=0.75, deps=(("Hardware", 2.6), ("Solidworks", 1.3)), margin=0.35),
    "Hardware": _Profile(
        base=-7.8, eng=0.8, size=(-0.9, -0.2, 0.3, 0.8, 1.2),
        industry=(("Consumer Products", 0.6), ("Medical Devices", 0.6), ("Plastics & Molding", 0.3),
                  ("Education", 0.4), ("Machinery", 0.2), ("Architecture & Construction", -0.3),
                  ("Other", -0.6)),
        deps=(("Solidworks", 0.9), ("Hardware", 0.9)), recency=0.6, margin=0.17),
    "Post_Processing": _Profile(
        base=-10.0, industry=(("Medical Devices", 0.4), ("Consumer Products", 0.3)),
        deps=(("Hardware", 3.6),), lags=(("Hardware", 6, 1.0),), margin=0.20),
    "CPE": _Profile(
        base=-11.3, industry=(("Electronics", 3.7), ("Automotive", 0.5), ("Aerospace & Defense", 0.4)),
        deps=(("Solidworks", 1.8), ("CPE", 0.8)), margin=0.22),
    "Scanning": _Profile(
        base=-10.4, industry=(("Medical Devices", 0.7), ("Automotive", 0.6), ("Aerospace & Defense", 0.5),
                              ("Architecture & Construction", 0.4)),
        deps=(("Hardware", 1.8), ("Solidworks", 0.8)), margin=0.20),
    "CAMWorks": _Profile(
        base=-10.9, industry=(("Machinery", 1.4), ("Automotive", 1.2), ("Plastics & Molding", 1.0),
                              ("Aerospace & Defense", 0.4)),
        deps=(("Solidworks", 2.4),), margin=0.22),
}

# SKU catalogue: list price per unit, log-normal price dispersion, clip bounds of the unit price, margin
# override (None: the division's margin). SKUs missing here get a division-neutral default.
_SKU_CATALOG: dict[str, tuple[float, float, float, float, float | None]] = {
    "SWX-STD": (3995, 0.03, 3000, 5000, None),
    "SWX-PRO": (5490, 0.03, 4200, 6800, None),
    "SWX-PREM": (7995, 0.03, 6000, 9500, None),
    "MNT-SWX-STD": (880, 0.02, 700, 1000, None),  # ~22% of the licence per seat and year
    "MNT-SWX-PRO": (1210, 0.02, 950, 1400, None),
    "MNT-SWX-PREM": (1760, 0.02, 1400, 2000, None),
    "PDM-STD": (1995, 0.05, 1500, 2600, None),
    "PDM-PRO": (3495, 0.05, 2800, 4500, None),
    "SIM-STD": (5495, 0.05, 5000, 7000, None),
    "SIM-PRO": (10995, 0.05, 9000, 14000, None),
    "SIM-FLOW": (18995, 0.05, 15000, 20000, None),
    "SVC-IMPL": (7500, 0.55, 2000, 30000, None),
    "SVC-CONSULT": (4000, 0.60, 2000, 30000, None),
    "SVC-DATAMIG": (9000, 0.50, 2000, 30000, None),
    "SVC-TRAVEL": (900, 0.50, 250, 3500, 0.02),
    "TRN-ESS": (1495, 0.08, 1000, 2000, None),
    "TRN-ADV": (1995, 0.08, 1400, 3000, None),
    "TRN-ONLINE": (995, 0.05, 800, 1300, None),
    "SP-STD": (2995, 0.05, 2500, 3500, None),
    "SP-ELITE": (8995, 0.05, 7500, 10000, None),
    "HW-PRN-FDM": (24000, 0.35, 15000, 60000, None),
    "HW-PRN-SLA": (95000, 0.45, 60000, 250000, None),
    "HW-CONS-FIL": (85, 0.10, 60, 120, 0.30),
    "HW-CONS-RES": (210, 0.10, 150, 300, 0.30),
    "PP-WASH": (8500, 0.10, 6000, 12000, None),
    "PP-CURE": (6500, 0.10, 5000, 9000, None),
    "PP-SUPPORT": (4200, 0.10, 3000, 6000, None),
    "CPE-ELEC": (6995, 0.05, 6000, 8500, None),
    "CPE-PCB": (9495, 0.05, 8000, 11500, None),
    "SCN-HAND": (16500, 0.15, 12000, 24000, None),
    "SCN-STRUCT": (42000, 0.20, 28000, 65000, None),
    "CAM-MILL": (8995, 0.05, 7500, 11000, None),
    "CAM-TURN": (6495, 0.05, 5500, 8000, None),
}
_DEFAULT_SKU = (2500.0, 0.30, 800.0, 8000.0, None)

_MNT_BUNDLE = 0.85  # share of Solidworks purchases that carry the first-year maintenance on the invoice
_SHARED_INVOICE = 0.65  # a purchase event joins the customer-month's main invoice with this probability
_AUX_LINE = 0.35  # a denylisted companion line (travel) rides along with this share of purchases
_CREDIT_RATE = 0.025  # share of purchase lines that get a credit note later
_FULL_RETURN = 0.4  # share of credit notes that return the whole line
_GP_NULL = 0.03
_REP_NULL = 0.02
_REP_OTHER = 0.04
_NEVER = -(10**6)
_OWN_WINDOW = {"Solidworks": 36, "Hardware": 60, "Success Plan": 24}  # default 48 months
_PRINTER_LIFE = 24  # months without printer or consumables purchases after which a printer is retired
_BURN_IN = 48  # months simulated before the first data month (state only; no lines, no ground truth)
_P_ROUND_BITS = 10  # ground-truth float32 mantissa bits dropped (round to nearest): relative error < 1.3e-4


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _month_add(d: dt.date, months: int) -> dt.date:
    k = d.year * 12 + d.month - 1 + months
    return dt.date(k // 12, k % 12 + 1, 1)


def _round_mantissa(x: np.ndarray) -> np.ndarray:
    """float32 rounded to nearest with the low _P_ROUND_BITS mantissa bits cleared (compresses far better)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    keep = np.uint32((0xFFFFFFFF << _P_ROUND_BITS) & 0xFFFFFFFF)
    return ((u + np.uint32(1 << (_P_ROUND_BITS - 1))) & keep).view(np.float32)


def _epoch_days(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


# ---------------------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------------------
class _Lines:
    """Columnar buffer of generated purchase lines (appended per channel, concatenated once)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                                   ("cust", "month", "div", "sku", "qty", "event", "shared",
                                                    "renewal")}
        self.n_events = 0
        self.recording = True

    def new_events(self, n: int) -> np.ndarray:
        ev = np.arange(self.n_events, self.n_events + n, dtype=np.int64)
        self.n_events += n
        return ev

    def add(self, cust, month: int, div: int, sku, qty, event, shared, renewal: bool = False) -> None:
        n = len(cust)
        if n == 0 or not self.recording:
            return
        self.parts["cust"].append(np.asarray(cust, dtype=np.int32))
        self.parts["month"].append(np.full(n, month, dtype=np.int32))
        self.parts["div"].append(np.full(n, div, dtype=np.int16))
        self.parts["sku"].append(np.asarray(sku, dtype=np.int16))
        self.parts["qty"].append(np.asarray(qty, dtype=np.float64))
        self.parts["event"].append(np.asarray(event, dtype=np.int64))
        self.parts["shared"].append(np.asarray(shared, dtype=bool))
        self.parts["renewal"].append(np.full(n, renewal, dtype=bool))

    def arrays(self) -> dict[str, np.ndarray]:
        empty = {"cust": np.int32, "month": np.int32, "div": np.int16, "sku": np.int16, "qty": np.float64,
                 "event": np.int64, "shared": bool, "renewal": bool}
        return {k: (np.concatenate(v) if v else np.zeros(0, dtype=empty[k])) for k, v in self.parts.items()}


class _Sim:
    def __init__(self, settings: Settings, n: int, rng: np.random.Generator) -> None:
        self.s = settings
        self.n = n
        self.rng = rng
        self.divs = list(settings.divisions)
        self.D = len(self.divs)
        self.didx = {d: i for i, d in enumerate(self.divs)}
        self.skus = list(settings.sku_map)
        self.sku_idx = {s: i for i, s in enumerate(self.skus)}
        self.sku_div = np.array([self.didx[settings.sku_map[s]] for s in self.skus], dtype=np.int16)
        deny = set(settings.labels.sku_denylist)
        # per-division SKU pools
        self.pool: list[np.ndarray] = []
        self.aux: list[np.ndarray] = []
        self.cons: list[np.ndarray] = []
        for d, name in enumerate(self.divs):
            own = [i for i, s in enumerate(self.skus) if self.sku_div[i] == d]
            aux = [i for i in own if self.skus[i] in deny]
            cons = [i for i in own if "-CONS-" in self.skus[i] and i not in aux] if name == "Hardware" else []
            primary = [i for i in own if i not in aux and i not in cons]
            self.pool.append(np.array(primary, dtype=np.int16))
            self.aux.append(np.array(aux, dtype=np.int16))
            self.cons.append(np.array(cons, dtype=np.int16))
        self.buyable = np.array([len(p) > 0 for p in self.pool])
        self.lines = _Lines()
        self.entry_div: int | None = None  # a wave's customers buy this division in their first month for sure

    # ---- helpers ----------------------------------------------------------------------------------------
    def d(self, name: str) -> int | None:
        """Index of a configured division that has SKUs to sell, else None (its channels are skipped)."""
        i = self.didx.get(name)
        return i if i is not None and self.buyable[i] else None

    def pool_draw(self, d: int, n: int) -> np.ndarray:
        pool = self.pool[d]
        return pool[self.rng.integers(0, len(pool), size=n)] if n else np.zeros(0, dtype=np.int16)

    def named(self, d: int, names: tuple[str, ...], slot: np.ndarray) -> np.ndarray:
        """SKU per event from a slot index into `names`; names not configured for `d` fall back to the pool."""
        lut = np.array([self.sku_idx[nm] if nm in self.sku_idx and self.sku_div[self.sku_idx[nm]] == d
                        and self.sku_idx[nm] in set(self.pool[d].tolist()) else -1 for nm in names],
                       dtype=np.int32)
        out = lut[slot]
        miss = out < 0
        if miss.any():
            out[miss] = self.pool_draw(d, int(miss.sum()))
        return out.astype(np.int16)

    def slot(self, probs: np.ndarray) -> np.ndarray:
        """Draw a slot per row from row-wise probabilities (n, k)."""
        u = self.rng.random(probs.shape[0])
        return (u[:, None] > np.cumsum(probs, axis=1)[:, :-1]).sum(axis=1)

    # ---- customers --------------------------------------------------------------------------------------
    def make_customers(self, wave: tuple[int, int, int] | None = None) -> None:
        """Draw the roster. `wave` = (industry index, first day, end day) makes every customer of that industry,
        first seen in [first day, end day) (epoch days, never null): the arrivals of a `new_customer_wave`."""
        rng, n = self.rng, self.n
        s = self.s
        self.z = rng.choice(5, size=n, p=np.array(_BAND_WEIGHTS) / sum(_BAND_WEIGHTS)).astype(np.int8)
        w = np.array([i[1] for i in _INDUSTRIES])
        self.ind = rng.choice(len(_INDUSTRIES), size=n, p=w / w.sum()).astype(np.int8)
        if wave is not None:
            self.ind[:] = wave[0]
        n_sub = np.array([len(i[2]) for i in _INDUSTRIES])
        self.sub = np.floor(rng.random(n) * n_sub[self.ind]).astype(np.int8)
        rw = np.array([r[1] for r in _REGIONS])
        self.region = rng.choice(len(_REGIONS), size=n, p=rw / rw.sum()).astype(np.int8)
        n_terr = np.array([r[2] for r in _REGIONS])
        offs = np.concatenate([[0], np.cumsum(n_terr)[:-1]])
        self.terr = (offs[self.region] + np.floor(rng.random(n) * n_terr[self.region])).astype(np.int16)
        self.n_terr = int(n_terr.sum())
        self.terr_names = [f"{r[0]}-{k + 1:02d}" for r in _REGIONS for k in range(r[2])]
        self.terr_region = [r[0] for r in _REGIONS for _ in range(r[2])]
        self.e = rng.standard_normal(n).astype(np.float32)
        terr_eff = np.random.default_rng(20240602).normal(0.0, 0.25, size=self.n_terr).astype(np.float32)
        # first seen: 80% of the roster predates the extract, the rest arrives with mild growth
        start, end = s.data.start_date, s.data.end_date
        old = rng.random(n) < 0.8
        lo_old = min(_epoch_days(dt.date(2008, 1, 1)), _epoch_days(start) - 365 * 12)
        first = np.where(
            old,
            rng.integers(lo_old, _epoch_days(start), size=n),
            _epoch_days(start) + np.floor(rng.random(n) ** 0.8 * max(1, (end - start).days - 30)).astype(np.int64),
        )
        if wave is not None:
            first = rng.integers(wave[1], wave[2], size=n)
        self.first_seen = first.astype("datetime64[D]")
        y = self.first_seen.astype("datetime64[Y]").astype(np.int64) + 1970
        m = self.first_seen.astype("datetime64[M]").astype(np.int64) % 12
        # month index of activation relative to the first data month; the simulation starts BURN_IN months
        # earlier so that the installed base at the start of the extract comes from simulated history
        self.act = np.maximum(-_BURN_IN, (y * 12 + m) - (start.year * 12 + start.month - 1)).astype(np.int32)
        # nulls in the published attributes
        self.null_ind = rng.random(n) < 0.03
        self.null_sub = self.null_ind | (rng.random(n) < 0.03)
        self.null_band = rng.random(n) < 0.04
        self.null_first = rng.random(n) < 0.02
        if wave is not None:
            self.null_first[:] = False
        self.name_parts = (rng.integers(0, len(_NAME_ADJ), n), rng.integers(0, len(_NAME_NOUN), n),
                           rng.integers(0, len(_NAME_SUFFIX), n))

        # static part of the monthly logits (n, D) and the dependency matrices
        D = self.D
        base = np.zeros(D, np.float32)
        eng = np.zeros(D, np.float32)
        size = np.zeros((5, D), np.float32)
        indm = np.zeros((len(_INDUSTRIES), D), np.float32)
        self.G = np.zeros((D, D), np.float32)  # G[d, k]: effect on d of owning k
        self.rec_w = np.zeros(D, np.float32)
        self.seas_w = np.zeros(D, np.float32)
        self.margin = np.zeros(D, np.float64)
        self.lag_specs: list[tuple[int, int, int, float]] = []
        for d, name in enumerate(self.divs):
            p = _PROFILES.get(name, _GENERIC)
            base[d], eng[d] = p.base, p.eng
            size[:, d] = p.size
            for ind_name, eff in p.industry:
                indm[_IND_NAMES.index(ind_name), d] = eff
            for dep, eff in p.deps:
                if dep in self.didx:
                    self.G[d, self.didx[dep]] = eff
            for dep, months, eff in p.lags:
                if dep in self.didx:
                    self.lag_specs.append((d, self.didx[dep], months, eff))
            self.rec_w[d], self.seas_w[d], self.margin[d] = p.recency, p.season, p.margin
        # overall fit with the reseller's offer: industry, sub-industry and territory (rep) effects
        fit = np.array([{"Machinery": 0.3, "Aerospace & Defense": 0.2, "Medical Devices": 0.2, "Other": -0.9,
                         "Architecture & Construction": -0.4, "Education": -0.3}.get(i, 0.0)
                        for i in _IND_NAMES], np.float32)
        sub_off = np.concatenate([[0], np.cumsum(n_sub)[:-1]])
        sub_eff = _WORLD_SUB_EFFECT[sub_off[self.ind] + self.sub]
        static = (base[None, :] + self.e[:, None] * eng[None, :] + size[self.z] + indm[self.ind]
                  + (fit[self.ind] + sub_eff + terr_eff[self.terr])[:, None])
        static += rng.normal(0.0, 0.3, size=(n, D)).astype(np.float32)
        static[:, ~self.buyable] = -50.0
        self.static = static.astype(np.float32)
        self.eng_w = eng

        # renewal propensities
        edu = self.ind == _IND_NAMES.index("Education")
        self.renew_mnt = _sigmoid(1.3 + 0.5 * self.e + 0.12 * self.z - 0.4 * edu).astype(np.float32)
        self.renew_sp = _sigmoid(0.7 + 0.5 * self.e + 0.1 * self.z).astype(np.float32)

        # ---- state ----
        self.own = np.zeros((n, D), dtype=bool)
        self.last = np.full((n, D), _NEVER, dtype=np.int32)
        self.last_any = np.full(n, _NEVER, dtype=np.int32)
        self.seats = np.zeros(n, np.int32)
        self.tier = np.full(n, -1, np.int8)
        self.sub_active = np.zeros(n, bool)
        self.sub_start = np.zeros(n, np.int32)
        self.sp_active = np.zeros(n, bool)
        self.sp_start = np.zeros(n, np.int32)
        self.sp_tier = np.zeros(n, np.int8)
        self.prn = np.zeros(n, np.int8)  # bit 1: FDM owner, bit 2: SLA owner
        self.last_cons = np.full(n, _NEVER, dtype=np.int32)  # last consumables purchase
        self.drift = rng.normal(0.0, 0.4, n).astype(np.float32)
        # how long ownership of a division keeps raising related purchases after its last purchase
        self.own_window = np.array([_OWN_WINDOW.get(d, 48) for d in self.divs], dtype=np.int32)
        self._seed_installed_base(indm)

    def _seed_installed_base(self, indm: np.ndarray) -> None:
        """Installed base of the customers already on the roster when the burn-in starts (bought earlier)."""
        rng, n = self.rng, self.n
        t0 = -_BURN_IN
        pre = self.act <= t0
        swx, hw, mnt, sp = self.d("Solidworks"), self.d("Hardware"), self.d("Maintenance"), self.d("Success Plan")
        if swx is not None and self.buyable[swx]:
            p0 = _sigmoid(-2.0 + 1.2 * self.e + 0.3 * self.z + indm[self.ind, swx])
            has = pre & (rng.random(n) < p0)
            k = int(has.sum())
            self.own[has, swx] = True
            self.seats[has] = 1 + rng.poisson(np.array([0.6, 1.5, 3.0, 6.0, 12.0])[self.z[has]])
            self.tier[has] = self._tier_draw(self.z[has])
            self.last[has, swx] = t0 - rng.integers(1, 48, size=k)
            if mnt is not None:
                sub = has & (rng.random(n) < 0.75)
                self.sub_active[sub] = True
                self.sub_start[sub] = t0 - rng.integers(1, 13, size=int(sub.sum()))
                self.own[sub, mnt] = True
                self.last[sub, mnt] = self.sub_start[sub]
            for name in ("PDM", "Simulation", "Training"):
                d = self.d(name)
                if d is not None and self.buyable[d]:
                    extra = has & (rng.random(n) < 0.25)
                    self.own[extra, d] = True
                    self.last[extra, d] = t0 - rng.integers(1, 48, size=int(extra.sum()))
        if hw is not None and self.buyable[hw]:
            p0 = _sigmoid(-3.3 + 1.0 * self.e + 0.3 * self.z + indm[self.ind, hw])
            has = pre & (rng.random(n) < p0)
            k = int(has.sum())
            self.own[has, hw] = True
            self.prn[has] = np.where(rng.random(k) < 0.7, 1, 2)
            self.last[has, hw] = t0 - rng.integers(1, 48, size=k)
            self.last_cons[has] = t0 - rng.integers(1, 12, size=k)
            if sp is not None:
                spm = has & (rng.random(n) < 0.4)
                self.sp_active[spm] = True
                self.sp_start[spm] = t0 - rng.integers(1, 13, size=int(spm.sum()))
                self.own[spm, sp] = True
                self.last[spm, sp] = self.sp_start[spm]
        self.last_any = self.last.max(axis=1)

    def _tier_draw(self, z: np.ndarray) -> np.ndarray:
        zf = z.astype(np.float64)
        probs = np.stack([0.55 - 0.06 * zf, 0.35 + 0.02 * zf, 0.10 + 0.04 * zf], axis=1)
        return self.slot(probs).astype(np.int8)

    # ---- one month --------------------------------------------------------------------------------------
    def month(self, t: int, cal_month: int, record: bool = True) -> np.ndarray:
        """Simulate month t; return the ground-truth probability matrix (n, D) at its start.

        With record=False (burn-in months before the extract) the state evolves but no lines are kept.
        """
        rng, n = self.rng, self.n
        season = {12: 0.5, 3: 0.3, 6: 0.3, 9: 0.3, 1: -0.2, 7: -0.1, 8: -0.1}.get(cal_month, 0.0)
        self.drift = (0.97 * self.drift + 0.243 * 0.4 * rng.standard_normal(n).astype(np.float32)).astype(
            np.float32)
        active = self.act <= t
        r = t - self.last_any
        rec = np.select([r <= 2, r <= 6, r <= 12, r <= 24, self.last_any > _NEVER],
                        [0.9, 0.6, 0.3, 0.0, -0.6], 0.0).astype(np.float32)
        logit = self.static + self.drift[:, None] * self.eng_w[None, :]
        # ownership counts while it is alive: a recent purchase, or an active maintenance / success plan
        alive = self.own & ((t - self.last) <= self.own_window[None, :])
        swx_d, mnt_d, sp_d = self.d("Solidworks"), self.d("Maintenance"), self.d("Success Plan")
        if mnt_d is not None:
            alive[:, mnt_d] = self.sub_active
            if swx_d is not None:
                alive[:, swx_d] |= self.own[:, swx_d] & self.sub_active
        if sp_d is not None:
            alive[:, sp_d] |= self.sp_active
        hw_d = self.d("Hardware")
        if hw_d is not None:
            alive[:, hw_d] = (self.prn > 0) & (
                (t - np.maximum(self.last[:, hw_d], self.last_cons)) <= _PRINTER_LIFE)
        logit += alive.astype(np.float32) @ self.G.T
        logit += rec[:, None] * self.rec_w[None, :]
        logit += np.float32(season) * self.seas_w[None, :] + np.float32(0.002 * t)
        for d, k, months, eff in self.lag_specs:
            logit[:, d] += eff * ((t - self.last[:, k]) <= months)
        q = _sigmoid(logit).astype(np.float32)
        q[~active] = 0.0
        q[:, ~self.buyable] = 0.0
        if self.entry_div is not None:  # new accounts of a wave open with a purchase (certain: p = 1, no extra draw)
            q[self.act == t, self.entry_div] = 1.0
        swx, mnt, sp, hw = self.d("Solidworks"), self.d("Maintenance"), self.d("Success Plan"), self.d("Hardware")
        if mnt is not None:
            q[self.sub_active, mnt] = 0.0
        if sp is not None:
            q[self.sp_active, sp] = 0.0
        P = q.copy()

        # extra channels
        u_cons = rng.random(n)
        u_bundle = rng.random(n)
        u_mren = rng.random(n)
        u_sren = rng.random(n)
        cons_p = np.zeros(n, np.float32)
        if hw is not None and len(self.cons[hw]):
            recent_prn = (t - self.last[:, hw]) <= 6
            cons_p = _sigmoid(-2.0 + 0.5 * (self.e + self.drift) + 0.25 * self.z + 0.7 * recent_prn
                              + 0.5 * season).astype(np.float32)
            # a printer is retired when neither it nor its consumables were bought for two years
            in_use = (self.prn > 0) & ((t - np.maximum(self.last[:, hw], self.last_cons)) <= _PRINTER_LIFE)
            cons_p[~in_use | ~active] = 0.0
            P[:, hw] = 1 - (1 - q[:, hw]) * (1 - cons_p)
        mren_p = np.zeros(n, np.float32)
        if mnt is not None:
            ann = self.sub_active & (t > self.sub_start) & ((t - self.sub_start) % 12 == 0) & active
            mren_p = np.where(ann, self.renew_mnt, 0.0).astype(np.float32)
            bundle_p = _MNT_BUNDLE * q[:, swx] if swx is not None else 0.0
            P[:, mnt] = 1 - (1 - q[:, mnt]) * (1 - bundle_p) * (1 - mren_p)
        sren_p = np.zeros(n, np.float32)
        if sp is not None:
            ann = self.sp_active & (t > self.sp_start) & ((t - self.sp_start) % 12 == 0) & active
            sren_p = np.where(ann, self.renew_sp, 0.0).astype(np.float32)
            P[:, sp] = 1 - (1 - q[:, sp]) * (1 - sren_p)

        # draws (all decided from the start-of-month state)
        hit = rng.random((n, self.D), dtype=np.float32) < q
        cons_hit = u_cons < cons_p
        mren_hit = u_mren < mren_p
        sren_hit = u_sren < sren_p
        self.lines.recording = record
        self._emit(t, hit, cons_hit, u_bundle, mren_hit, sren_hit, mren_p > 0, sren_p > 0)
        return P

    def _emit(self, t, hit, cons_hit, u_bundle, mren_hit, sren_hit, mren_due, sren_due) -> None:
        rng, L = self.rng, self.lines
        z = self.z
        swx, mnt, sp, hw = self.d("Solidworks"), self.d("Maintenance"), self.d("Success Plan"), self.d("Hardware")
        pdm, sim, pp = self.d("PDM"), self.d("Simulation"), self.d("Post_Processing")
        own0 = self.own.copy()
        seats0 = self.seats.copy()
        tier0 = self.tier.copy()
        bought = np.zeros_like(hit)
        mnt_names = ("MNT-SWX-STD", "MNT-SWX-PRO", "MNT-SWX-PREM")

        def shared(k: int) -> np.ndarray:
            return rng.random(k) < _SHARED_INVOICE

        for d, name in enumerate(self.divs):
            idx = np.flatnonzero(hit[:, d])
            k = len(idx)
            if k == 0:
                continue
            ev = L.new_events(k)
            sh = shared(k)
            zi = z[idx].astype(np.float64)
            if d == swx:
                new = ~own0[idx, d]
                tier = tier0[idx].copy()
                fresh = new | (tier < 0) | (rng.random(k) < 0.05)
                tier[fresh] = self._tier_draw(z[idx][fresh])
                lam = np.array([0.25, 0.7, 1.6, 3.2, 6.5])[z[idx]] * np.where(new, 1.0, 0.3)
                qty = 1 + rng.poisson(lam)
                sku = self.named(d, ("SWX-STD", "SWX-PRO", "SWX-PREM"), tier)
                L.add(idx, t, d, sku, qty, ev, sh)
                self.seats[idx] += qty
                self.tier[idx] = tier
                if mnt is not None:
                    b = u_bundle[idx] < _MNT_BUNDLE
                    L.add(idx[b], t, mnt, self.named(mnt, mnt_names, tier[b]), qty[b], ev[b], sh[b])
                    bought[idx[b], mnt] = True
                    start = idx[b & ~self.sub_active[idx]]
                    self.sub_active[start] = True
                    self.sub_start[start] = t
            elif d == mnt:  # re-instatement / maintenance without a recorded licence purchase
                tier = np.where(tier0[idx] >= 0, tier0[idx], 0)
                L.add(idx, t, d, self.named(d, mnt_names, tier), np.maximum(seats0[idx], 1), ev, sh)
                self.sub_active[idx] = True
                self.sub_start[idx] = t
            elif d == pdm:
                slot = (rng.random(k) < 0.2 + 0.08 * zi).astype(np.int64)
                frac = rng.uniform(0.2, 0.6, k)
                first = np.maximum(1, np.round(np.minimum(np.maximum(seats0[idx], 1), 40) * frac))
                qty = np.where(own0[idx, d], 1 + rng.poisson(0.3 * (zi + 1)), first)
                L.add(idx, t, d, self.named(d, ("PDM-STD", "PDM-PRO"), slot), qty, ev, sh)
            elif d == sim:
                slot = self.slot(np.tile([0.5, 0.35, 0.15], (k, 1)))
                qty = 1 + rng.poisson(0.15 * zi)
                L.add(idx, t, d, self.named(d, ("SIM-STD", "SIM-PRO", "SIM-FLOW"), slot), qty, ev, sh)
            elif name == "Services":
                recent_pdm = (t - self.last[idx, pdm]) <= 3 if pdm is not None else np.zeros(k, bool)
                pm = np.where(recent_pdm, 0.6, 0.15)
                probs = np.stack([(1 - pm) * 0.55, (1 - pm) * 0.45, pm], axis=1)
                sku = self.named(d, ("SVC-IMPL", "SVC-CONSULT", "SVC-DATAMIG"), self.slot(probs))
                L.add(idx, t, d, sku, np.ones(k), ev, sh)
            elif name == "Training":
                slot = self.slot(np.tile([0.5, 0.25, 0.25], (k, 1)))
                qty = 1 + rng.poisson(0.35 * (zi + 1))
                L.add(idx, t, d, self.named(d, ("TRN-ESS", "TRN-ADV", "TRN-ONLINE"), slot), qty, ev, sh)
            elif d == sp:
                slot = (rng.random(k) < 0.15 + 0.07 * zi).astype(np.int8)
                L.add(idx, t, d, self.named(d, ("SP-STD", "SP-ELITE"), slot), np.ones(k), ev, sh)
                self.sp_active[idx] = True
                self.sp_start[idx] = t
                self.sp_tier[idx] = slot
            elif d == hw:
                sla = rng.random(k) < 0.25 + 0.05 * zi
                qty = 1 + (rng.random(k) < 0.03 * zi)
                L.add(idx, t, d, self.named(d, ("HW-PRN-FDM", "HW-PRN-SLA"), sla.astype(np.int8)), qty, ev, sh)
                starter = rng.random(k) < 0.6
                if len(self.cons[d]) and starter.any():
                    s_idx = idx[starter]
                    s_sla = sla[starter]
                    L.add(s_idx, t, d, self._cons_sku(d, s_sla), self._cons_qty(z[s_idx], s_sla),
                          ev[starter], sh[starter])
                self.prn[idx] |= np.where(sla, 2, 1).astype(np.int8)
            elif d == pp:
                typ = self.prn[idx]
                sla_side = np.where(typ == 3, rng.random(k) < 0.5, typ == 2)
                none = typ == 0
                slot = np.where(sla_side, (rng.random(k) < 0.5).astype(np.int64), 2)
                slot = np.where(none, rng.integers(0, 3, k), slot)
                L.add(idx, t, d, self.named(d, ("PP-WASH", "PP-CURE", "PP-SUPPORT"), slot), np.ones(k), ev, sh)
            elif name == "CPE":
                slot = (rng.random(k) < 0.4).astype(np.int8)
                L.add(idx, t, d, self.named(d, ("CPE-ELEC", "CPE-PCB"), slot), 1 + rng.poisson(0.4, k), ev, sh)
            elif name == "Scanning":
                slot = (rng.random(k) < 0.3).astype(np.int8)
                L.add(idx, t, d, self.named(d, ("SCN-HAND", "SCN-STRUCT"), slot), np.ones(k), ev, sh)
            elif name == "CAMWorks":
                slot = (rng.random(k) < 0.3).astype(np.int8)
                L.add(idx, t, d, self.named(d, ("CAM-MILL", "CAM-TURN"), slot), 1 + rng.poisson(0.25, k), ev, sh)
            else:
                L.add(idx, t, d, self.pool_draw(d, k), 1 + rng.poisson(0.3, k), ev, sh)
            # denylisted companion lines (e.g. SVC-TRAVEL next to Services)
            if len(self.aux[d]):
                a = rng.random(k) < _AUX_LINE
                ka = int(a.sum())
                if ka:
                    L.add(idx[a], t, d, self.aux[d][rng.integers(0, len(self.aux[d]), ka)], np.ones(ka),
                          ev[a], sh[a])
            bought[idx, d] = True

        # consumables of printer owners
        if hw is not None and cons_hit.any():
            idx = np.flatnonzero(cons_hit)
            k = len(idx)
            typ = self.prn[idx]
            sla = np.where(typ == 3, rng.random(k) < 0.5, typ == 2)
            L.add(idx, t, hw, self._cons_sku(hw, sla), self._cons_qty(z[idx], sla), L.new_events(k), shared(k))
            self.last_any[idx] = t  # consumables do not move last[hw] (printer purchases only)
            self.last_cons[idx] = t
        # annual renewals (own invoices)
        if mnt is not None:
            idx = np.flatnonzero(mren_hit)
            tier = np.where(tier0[idx] >= 0, tier0[idx], 0)
            held = np.maximum(seats0[idx], 1)
            # some renewals drop seats that are no longer used (the licences are retired)
            shrink = rng.random(len(idx)) < 0.25
            renewed = np.where(shrink, np.maximum(1, np.round(held * rng.uniform(0.5, 0.95, len(idx)))), held)
            self.seats[idx] -= (held - renewed).astype(np.int32)
            L.add(idx, t, mnt, self.named(mnt, mnt_names, tier), renewed,
                  L.new_events(len(idx)), np.zeros(len(idx), bool), renewal=True)
            bought[idx, mnt] = True
            lapsed = mren_due & ~mren_hit
            self.sub_active[lapsed & ~bought[:, mnt]] = False
        if sp is not None:
            idx = np.flatnonzero(sren_hit)
            slot = self.sp_tier[idx]
            L.add(idx, t, sp, self.named(sp, ("SP-STD", "SP-ELITE"), slot), np.ones(len(idx)),
                  L.new_events(len(idx)), np.zeros(len(idx), bool), renewal=True)
            bought[idx, sp] = True
            lapsed = sren_due & ~sren_hit
            self.sp_active[lapsed & ~bought[:, sp]] = False

        # state after the month
        self.own |= bought
        self.last[bought] = t
        any_b = bought.any(axis=1)
        self.last_any[any_b] = t

    def _cons_sku(self, hw: int, sla: np.ndarray) -> np.ndarray:
        names = ("HW-CONS-FIL", "HW-CONS-RES")
        lut = np.array([self.sku_idx.get(nm, -1) if nm in self.sku_idx and self.sku_idx[nm] in
                        set(self.cons[hw].tolist()) else -1 for nm in names], dtype=np.int32)
        out = lut[sla.astype(np.int64)]
        miss = out < 0
        if miss.any():
            out[miss] = self.cons[hw][self.rng.integers(0, len(self.cons[hw]), int(miss.sum()))]
        return out.astype(np.int16)

    def _cons_qty(self, z: np.ndarray, sla: np.ndarray) -> np.ndarray:
        zf = z.astype(np.float64)
        return np.where(sla, 1 + self.rng.poisson(1.5 + zf), 2 + self.rng.poisson(3 + 2 * zf)).astype(np.float64)


# ---------------------------------------------------------------------------------------------------------
# Assembly of the tables
# ---------------------------------------------------------------------------------------------------------
def _customer_ids(idx: pl.Series | pl.Expr) -> pl.Expr:
    e = idx if isinstance(idx, pl.Expr) else pl.lit(idx)
    return pl.concat_str([pl.lit("C"), (e + 1).cast(pl.String).str.zfill(7)])


def _customers_frame(sim: _Sim, offset: int = 0, num_w: int | None = None) -> pl.DataFrame:
    """Customer rows of `sim`; customer numbers start after `offset` (the arrivals of a wave follow the roster)."""
    n = sim.n
    ind_names = pl.Series(_IND_NAMES, dtype=pl.String)
    subs_flat = [s for _, _, subs in _INDUSTRIES for s in subs]
    sub_off = np.concatenate([[0], np.cumsum([len(i[2]) for i in _INDUSTRIES])[:-1]])
    sub_flat_idx = sub_off[sim.ind] + sim.sub
    a, b, c = sim.name_parts
    num_w = num_w if num_w is not None else max(4, len(str(n)))
    df = pl.DataFrame({
        "_i": np.arange(offset, offset + n, dtype=np.int64),
        "_adj": pl.Series(_NAME_ADJ).gather(a),
        "_noun": pl.Series(_NAME_NOUN).gather(b),
        "_suf": pl.Series(_NAME_SUFFIX).gather(c),
        "industry": ind_names.gather(sim.ind.astype(np.int64)),
        "sub_industry": pl.Series(subs_flat, dtype=pl.String).gather(sub_flat_idx.astype(np.int64)),
        "region": pl.Series(sim.terr_region, dtype=pl.String).gather(sim.terr.astype(np.int64)),
        "territory": pl.Series(sim.terr_names, dtype=pl.String).gather(sim.terr.astype(np.int64)),
        "employee_band": pl.Series(_BANDS, dtype=pl.String).gather(sim.z.astype(np.int64)),
        "first_seen_date": pl.Series(sim.first_seen).cast(pl.Date),
        "_ni": sim.null_ind, "_ns": sim.null_sub, "_nb": sim.null_band, "_nf": sim.null_first,
    })
    return df.select(
        _customer_ids(pl.col("_i")).alias("customer_id"),
        pl.concat_str([pl.col("_adj"), pl.col("_noun"), (pl.col("_i") + 1).cast(pl.String).str.zfill(num_w),
                       pl.col("_suf")], separator=" ").alias("customer_name"),
        pl.when(pl.col("_ni")).then(None).otherwise(pl.col("industry")).alias("industry"),
        pl.when(pl.col("_ns")).then(None).otherwise(pl.col("sub_industry")).alias("sub_industry"),
        "region", "territory",
        pl.when(pl.col("_nb")).then(None).otherwise(pl.col("employee_band")).alias("employee_band"),
        pl.when(pl.col("_nf")).then(None).otherwise(pl.col("first_seen_date")).alias("first_seen_date"),
    )


def _clean_sales(sim: _Sim, months: list[dt.date], start: dt.date, end: dt.date, plan: "_Plan | None" = None,
                 cust_offset: int = 0) -> pl.DataFrame:
    """Turn the simulated purchase lines into priced, dated, invoiced rows plus credit notes.

    `plan` applies a drift scenario after every random draw is made (same draws as without it, so rows before
    its first month are unchanged): prices of a division scaled, customer-months dropped with their invoices and
    credit notes (renumbered in date order), SKUs re-coded. `cust_offset` shifts customer numbers (a wave)."""
    rng = sim.rng
    A = sim.lines.arrays()
    n = len(A["cust"])
    T = len(months)
    # ---- invoices: lines of one event share an invoice; shared events share the customer-month invoice
    group = np.where(A["shared"], 0, A["event"] + 1)
    order = np.lexsort((A["event"], A["sku"], A["div"], group, A["cust"], A["month"]))
    for k in A:
        A[k] = A[k][order]
    group = group[order]
    newinv = np.ones(n, bool)
    if n:
        newinv[1:] = ((A["month"][1:] != A["month"][:-1]) | (A["cust"][1:] != A["cust"][:-1])
                      | (group[1:] != group[:-1]))
    inv = np.cumsum(newinv) - 1
    first_line = np.flatnonzero(newinv)
    n_inv = len(first_line)
    inv_month = A["month"][first_line]
    inv_cust = A["cust"][first_line]
    # invoice day: uniform in the month's valid days; quarter-end months pull deals into the last week
    month_first = np.array([_epoch_days(m) for m in months], dtype=np.int64)
    lo = np.ones(T, np.int64)
    hi = np.array([(_month_add(m, 1) - m).days for m in months], dtype=np.int64)
    lo[0] = start.day if months[0] == dt.date(start.year, start.month, 1) else 1
    hi[-1] = min(hi[-1], end.day)
    qend = np.array([m.month in (3, 6, 9, 12) for m in months])
    lo_i, hi_i = lo[inv_month], hi[inv_month]
    late = qend[inv_month] & (rng.random(n_inv) < 0.35)
    lo_i = np.where(late, np.maximum(lo_i, hi_i - 6), lo_i)
    day = lo_i + np.floor(rng.random(n_inv) * (hi_i - lo_i + 1)).astype(np.int64)
    inv_date = month_first[inv_month] + day - 1
    # invoice numbers follow the date
    inv_rank = np.empty(n_inv, np.int64)
    inv_rank[np.lexsort((np.arange(n_inv), inv_date))] = np.arange(1, n_inv + 1)
    # rep per invoice
    rep = sim.terr[inv_cust].astype(np.int64) + 1
    other = rng.random(n_inv) < _REP_OTHER
    rep = np.where(other, rng.integers(1, sim.n_terr + 1, n_inv), rep)
    rep = np.where(rng.random(n_inv) < _REP_NULL, 0, rep)  # 0 -> null
    line_no = np.arange(n, dtype=np.int64) - first_line[inv] + 1

    # ---- pricing
    cat = np.array([_SKU_CATALOG.get(s, _DEFAULT_SKU)[:4] for s in sim.skus], dtype=np.float64).reshape(-1, 4)
    sku_margin = np.array([(_SKU_CATALOG.get(s, _DEFAULT_SKU)[4] if _SKU_CATALOG.get(s, _DEFAULT_SKU)[4]
                            is not None else sim.margin[sim.sku_div[i]]) for i, s in enumerate(sim.skus)])
    sku = A["sku"].astype(np.int64)
    price, sigma, plo, phi = cat[sku, 0], cat[sku, 1], cat[sku, 2], cat[sku, 3]
    unit = np.clip(price * np.exp(sigma * rng.standard_normal(n) - sigma**2 / 2), plo, phi)
    zc = sim.z[A["cust"]].astype(np.float64)
    disc = np.where(A["renewal"], rng.uniform(0, 0.03, n), rng.uniform(0, 0.06, n) + 0.015 * zc)
    qty = A["qty"]
    revenue = np.maximum(np.round(qty * unit * (1 - disc), 2), 0.01)
    if plan is not None and plan.price_div is not None:  # price_increase: same draws, scaled unit prices
        up = (A["div"] == plan.price_div) & (A["month"] >= plan.t0)
        revenue = np.where(up, np.maximum(np.round(qty * unit * plan.price_factor * (1 - disc), 2), 0.01), revenue)
        plan.n_lines = int(up.sum())
    margin = np.clip(sku_margin[sku] + rng.normal(0, 0.04, n), 0.01, 0.9)
    gp = np.round(revenue * margin, 2)
    gp_null = rng.random(n) < _GP_NULL

    # ---- credit notes
    cr = rng.random(n) < _CREDIT_RATE
    ci = np.flatnonzero(cr)
    delay = rng.integers(0, 61, len(ci))
    cr_date = inv_date[inv[ci]] + delay
    full = rng.random(len(ci)) < _FULL_RETURN
    oq = qty[ci]
    part_k = np.floor(rng.random(len(ci)) * np.maximum(oq - 1, 0)) + 1  # 1..q-1 units (q >= 2)
    part_f = rng.uniform(0.1, 0.6, len(ci))  # price adjustment on a single unit
    frac = np.where(full, 1.0, np.where(oq >= 2, part_k / np.maximum(oq, 1), part_f))
    cr_qty = np.where(full, -oq, np.where(oq >= 2, -part_k, -1.0))
    cr_rev = np.where(full, -revenue[ci], np.minimum(-np.round(revenue[ci] * frac, 2), -0.01))
    cr_gp = np.round(gp[ci] * (cr_rev / revenue[ci]), 2)
    keep = cr_date <= _epoch_days(end)
    ci, cr_date, cr_qty, cr_rev, cr_gp = ci[keep], cr_date[keep], cr_qty[keep], cr_rev[keep], cr_gp[keep]
    line_keep = np.ones(n, bool)
    if plan is not None and plan.keep is not None:  # territory_slump: drop customer-months with their credit notes
        keep_inv = plan.keep[inv_cust, inv_month]
        line_keep = keep_inv[inv]
        plan.n_lines = int((~line_keep).sum())
        ck = keep_inv[inv[ci]]
        ci, cr_date, cr_qty, cr_rev, cr_gp = ci[ck], cr_date[ck], cr_qty[ck], cr_rev[ck], cr_gp[ck]
        by_date = np.lexsort((np.arange(n_inv), inv_date))
        by_date = by_date[keep_inv[by_date]]
        inv_rank = np.zeros(n_inv, np.int64)  # kept invoices renumbered in date order (earlier ones unchanged)
        inv_rank[by_date] = np.arange(1, len(by_date) + 1)
    if plan is not None and plan.move_from:  # sku_moves_division: lines (and their credit notes) re-coded
        moved = np.isin(sku, np.array(sorted(plan.move_from), dtype=np.int64)) & (A["month"] >= plan.t0)
        sku = np.where(moved, plan.move_to, sku)
        plan.n_lines = int(moved.sum())
    n_cr = len(ci)
    cr_rank = np.empty(n_cr, np.int64)
    cr_rank[np.lexsort((line_no[ci], inv_rank[inv[ci]], cr_date))] = np.arange(1, n_cr + 1)

    # ---- frame (prefix 0 = "CR-", 1 = "INV-", which is also their string order)
    w_inv = max(6, len(str(n_inv)))
    w_cr = max(6, len(str(n_cr)))
    df = pl.DataFrame({
        "_pre": np.concatenate([np.ones(n, np.int8), np.zeros(n_cr, np.int8)]),
        "_num": np.concatenate([inv_rank[inv], cr_rank]),
        "line_no": np.concatenate([line_no, np.ones(n_cr, np.int64)]),
        "_date": np.concatenate([inv_date[inv], cr_date]).astype(np.int32),
        "_cust": np.concatenate([A["cust"], A["cust"][ci]]).astype(np.int64),
        "_sku": np.concatenate([sku, sku[ci]]),
        "quantity": np.concatenate([qty, cr_qty]),
        "revenue": np.concatenate([revenue, cr_rev]),
        "gross_profit": np.concatenate([gp, cr_gp]),
        "_gp_null": np.concatenate([gp_null, gp_null[ci]]),
        "_rep": np.concatenate([rep[inv], rep[inv[ci]]]),
        "_keep": np.concatenate([line_keep, np.ones(n_cr, bool)]),
    }).filter(pl.col("_keep")).sort(["_date", "_pre", "_num", "line_no"], maintain_order=True)
    sku_names = pl.Series(sim.skus, dtype=pl.String)
    sku_divs = pl.Series([sim.s.sku_map[s] for s in sim.skus], dtype=pl.String)
    return df.select(
        pl.when(pl.col("_pre") == 1)
        .then(pl.concat_str([pl.lit("INV-"), pl.col("_num").cast(pl.String).str.zfill(w_inv)]))
        .otherwise(pl.concat_str([pl.lit("CR-"), pl.col("_num").cast(pl.String).str.zfill(w_cr)]))
        .alias("invoice_id"),
        pl.col("line_no"),
        pl.col("_date").cast(pl.Date).cast(pl.String).alias("invoice_date"),
        _customer_ids(pl.col("_cust") + cust_offset).alias("customer_id"),
        pl.col("_sku").map_batches(lambda s: sku_names.gather(s), return_dtype=pl.String).alias("sku"),
        pl.col("_sku").map_batches(lambda s: sku_divs.gather(s), return_dtype=pl.String).alias("division"),
        pl.col("quantity"),
        pl.col("revenue"),
        pl.when(pl.col("_gp_null")).then(None).otherwise(pl.col("gross_profit")).alias("gross_profit"),
        pl.when(pl.col("_rep") == 0).then(None)
        .otherwise(pl.concat_str([pl.lit("R"), pl.col("_rep").cast(pl.String).str.zfill(3)])).alias("rep_id"),
    )


def _division_variant(name: str) -> str:
    """Another spelling of a canonical division name (other casing), never equal to it."""
    for cand in (name.lower(), name.upper(), name[:1] + name[1:].lower(), name.swapcase(),
                 name.replace("_", " "), name.replace(" ", "_")):
        if cand != name and cand.strip() == cand and cand:
            return cand
    return name + "*"


def _plant_dirt(clean: pl.DataFrame, sim: _Sim, dirt_rate: float, start: dt.date, end: dt.date,
                n_known: int | None = None) -> tuple[pl.DataFrame, dict[str, int]]:
    rng = sim.rng
    n_clean = clean.height
    count = max(1, round(dirt_rate * n_clean)) if dirt_rate > 0 and n_clean > 0 else 0
    planted = {r: count for r in DIRT_RULES}
    if count == 0:
        return clean, planted
    purchase_rows = np.flatnonzero(clean.get_column("revenue").to_numpy() > 0)
    if len(purchase_rows) == 0:
        purchase_rows = np.arange(n_clean)
    sku_set = set(sim.s.sku_map)
    unknown_skus = [s for s in (f"XX-LEGACY-{k}" for k in range(1, 40)) if s not in sku_set][:9]
    unknown_skus += ["OLD-PROMO-BUNDLE", "MISC-ADJ"]
    unknown_skus = [s for s in unknown_skus if s not in sku_set]
    div_variant = {d: _division_variant(d) for d in sim.divs}
    variant_frame = pl.DataFrame({"division": list(div_variant), "_variant": list(div_variant.values())})
    frames = []
    dirty_no = 0
    for rule in DIRT_RULES:
        rows = purchase_rows[rng.integers(0, len(purchase_rows), count)]
        tpl = clean[rows]
        if rule == "duplicate_line":
            frames.append(tpl)
            continue
        ids = pl.Series(
            "invoice_id", np.arange(dirty_no + 1, dirty_no + count + 1), dtype=pl.Int64
        ).cast(pl.String).str.zfill(6)
        dirty_no += count
        tpl = tpl.with_columns(("INV-D" + ids).alias("invoice_id"), pl.lit(1, dtype=pl.Int64).alias("line_no"))
        if rule == "unparseable_date":
            kind = pl.Series("_k", rng.integers(0, 6, count))
            d = pl.col("invoice_date")
            y, m, dd = d.str.slice(0, 4), d.str.slice(5, 2), d.str.slice(8, 2)
            bad = (pl.when(pl.col("_k") == 0).then(pl.concat_str([dd, pl.lit("/"), m, pl.lit("/"), y]))
                   .when(pl.col("_k") == 1).then(pl.concat_str([y, pl.lit("-13-"), dd]))
                   .when(pl.col("_k") == 2).then(pl.lit("not a date"))
                   .when(pl.col("_k") == 3).then(pl.concat_str([y, pl.lit("-"), m, pl.lit("-32")]))
                   .when(pl.col("_k") == 4).then(pl.concat_str([y, m, dd]))
                   .otherwise(pl.lit("2025-13-45")))
            tpl = tpl.with_columns(kind).with_columns(bad.alias("invoice_date")).drop("_k")
        elif rule == "date_out_of_range":
            after = rng.random(count) < 0.7
            days = np.where(after, _epoch_days(end) + rng.integers(1, 400, count),
                            _epoch_days(start) - rng.integers(1, 700, count))
            tpl = tpl.with_columns(pl.Series("invoice_date", days.astype(np.int32)).cast(pl.Date).cast(pl.String))
        elif rule == "unknown_sku":
            tpl = tpl.with_columns(
                pl.Series("sku", unknown_skus, dtype=pl.String).gather(rng.integers(0, len(unknown_skus), count)))
        elif rule == "unknown_customer":
            unk = (sim.n if n_known is None else n_known) + 1 + rng.integers(0, max(10, sim.n // 10), count)
            tpl = tpl.with_columns(_customer_ids(pl.Series(unk - 1, dtype=pl.Int64)).alias("customer_id"))
        elif rule == "noncanonical_division":
            tpl = (tpl.join(variant_frame, on="division", how="left", maintain_order="left")
                   .with_columns(pl.col("_variant").alias("division")).drop("_variant"))
        elif rule == "sign_mismatch":
            tpl = tpl.with_columns(-pl.col("quantity").abs())
        frames.append(tpl.select(clean.columns))
    dirty = pl.concat(frames, how="vertical")
    pos = rng.integers(0, n_clean + 1, dirty.height)
    out = pl.concat([
        clean.with_columns(pl.int_range(0, n_clean, dtype=pl.Int64).mul(2).add(1).alias("_ord")),
        dirty.with_columns(pl.Series("_ord", pos.astype(np.int64) * 2)),
    ], how="vertical").sort("_ord", maintain_order=True).drop("_ord")
    return out, planted


# ---------------------------------------------------------------------------------------------------------
# Drift scenarios: planning and the merge of a wave's rows
# ---------------------------------------------------------------------------------------------------------
_GT_NOTES = {
    "territory_slump": "adjusted: p x factor for the region's customers from from_month (kept customer-months "
                       "are independent draws)",
    "sku_moves_division": "not adjusted: p of the source and target divisions describe purchases before the "
                          "re-coding (the moved lines count for the source division)",
    "new_customer_wave": "includes the new customers from their first month",
    "price_increase": "unchanged: prices do not change who buys",
}


def _plan_drift(name: str, params: dict | None, month, settings: Settings, sim: _Sim, seed: int,
                months: list[dt.date], end: dt.date) -> tuple[_Plan, "_Sim | None", dict]:
    sc, p, m = _resolve_drift(name, params, month, settings)
    t0 = months.index(m)
    rng = _drift_rng(seed, name)
    plan, wave = _Plan(t0=t0), None
    values = {**p, "from_month": f"{m:%Y-%m}"}
    affected: dict[str, int] = {}
    if name == "territory_slump":
        rows = np.flatnonzero(sim.region == [r[0] for r in _REGIONS].index(p["region"]))
        keep = np.ones((sim.n, len(months)), bool)
        keep[rows, t0:] = rng.random((len(rows), len(months) - t0)) < float(p["factor"])
        plan.keep, plan.slump_rows, plan.slump_factor = keep, rows, float(p["factor"])
        # customer-months drawn as lost (most of them had no purchase anyway; the lines dropped are counted later)
        affected = {"customers": int(len(rows)), "customer_months_lost": int((~keep).sum())}
    elif name == "sku_moves_division":
        plan.move_from = tuple(sim.sku_idx[x] for x in p["skus"])
        plan.move_to = sim.sku_idx[p["to_sku"]]
        values["from_division"] = "/".join(sorted({settings.sku_map[x] for x in p["skus"]}))
        values["to_division"] = settings.sku_map[p["to_sku"]]
        values["skus"] = ", ".join(p["skus"])
    elif name == "new_customer_wave":
        k = max(1, round(float(p["share"]) * sim.n))
        lo = _epoch_days(m)
        hi = min(_epoch_days(_month_add(m, int(p["spread_months"]))), _epoch_days(end) + 1)
        wave = _Sim(settings, k, rng)
        wave.make_customers(wave=(_IND_NAMES.index(p["industry"]), lo, hi))
        if p["entry_division"] is not None:
            wave.entry_div = wave.d(p["entry_division"])
        values["added"] = k
        affected = {"customers_added": k}
    elif name == "price_increase":
        plan.price_div = sim.didx[p["division"]]
        plan.price_factor = float(p["factor"])
    month_end = _month_add(m, 1) - dt.timedelta(days=1)
    first_cutoff = next((c for c in sorted(settings.cutoffs) if c >= month_end), None)
    subject = {k: p[k] for k in sc.subject}
    info = {
        "scenario": name, **subject, "subject": subject, "description": sc.description, "params": p,
        "from_month": f"{m:%Y-%m}", "first_cutoff": first_cutoff.isoformat() if first_cutoff else None,
        "expected": sc.expected.format(**values), "affected": affected, "ground_truth": _GT_NOTES[name],
    }
    return plan, wave, info


def _merge_renumbered(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    """Rows of `a` and `b` (a wave's sales, all dated from the wave's month) as one log: invoice and credit-note
    numbers re-issued in date order (a's before b's on a tie), so every number of `a` dated before `b`'s first
    row is unchanged; sorted like `_clean_sales`."""
    num = pl.col("invoice_id").str.extract(r"(\d+)$")
    both = pl.concat([a.with_columns(pl.lit(0, pl.Int8).alias("_src")),
                      b.with_columns(pl.lit(1, pl.Int8).alias("_src"))], how="vertical").with_columns(
        pl.col("invoice_id").str.starts_with("INV-").cast(pl.Int8).alias("_pre"),
        num.cast(pl.Int64).alias("_old"), num.str.len_chars().alias("_w"))
    inv = (both.group_by(["_pre", "_src", "_old"]).agg(pl.col("invoice_date").first(), pl.col("_w").first())
           .sort(["_pre", "invoice_date", "_src", "_old"]))
    inv = inv.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("_pre").alias("_num"))
    width = {}
    for pre in (0, 1):
        part = inv.filter(pl.col("_pre") == pre)
        own = part.filter(pl.col("_src") == 0).get_column("_w")
        width[pre] = max(int(own.max()) if own.len() else 6, len(str(part.height)))
    out = both.join(inv.select("_pre", "_src", "_old", "_num"), on=["_pre", "_src", "_old"], how="left")
    digits = pl.col("_num").cast(pl.String)
    out = out.with_columns(pl.when(pl.col("_pre") == 1)
                           .then(pl.concat_str([pl.lit("INV-"), digits.str.zfill(width[1])]))
                           .otherwise(pl.concat_str([pl.lit("CR-"), digits.str.zfill(width[0])]))
                           .alias("invoice_id"))
    return out.sort(["invoice_date", "_pre", "_num", "line_no"], maintain_order=True).select(a.columns)


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------
def write_table(df: pl.DataFrame, path: Path, fmt: str, schema: pa.Schema | None = None) -> None:
    """Write `df` as CSV or Parquet (cast to `schema` when given) through a temporary file and a rename, so a reader
    never sees half a file (also the retail world's writer, `demo_retail`)."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "csv":
        df.write_csv(tmp)
    else:
        table = df.to_arrow()
        pq.write_table(table.cast(schema) if schema is not None else table, tmp, compression="zstd",
                       write_statistics=True)
    os.replace(tmp, path)


def generate_demo_data(
    out_dir: Path,
    *,
    customers: int,
    seed: int,
    settings: Settings,
    fmt: Literal["parquet", "csv"] = "parquet",
    dirt_rate: float = 0.002,
    ground_truth: bool = True,
    drift: str | None = None,
    drift_month: str | dt.date | None = None,
    drift_params: dict | None = None,
) -> DemoManifest:
    """Simulate `customers` customers over settings.data.start_date..end_date and write the demo files.

    See the module docstring for the files, their columns and the meaning of the ground truth. Files of the
    other format (or a ground truth left from an earlier run, when `ground_truth=False`) are removed so the
    folder holds one consistent set.

    `drift` plants a scenario of `DRIFT_SCENARIOS` from `drift_month` (YYYY-MM; default
    `default_drift_month`), with `drift_params` overriding its defaults. It draws from its own random stream:
    the simulation and every clean row dated before that month are the same as without it (planted dirt is
    drawn again from the changed log). The manifest's `drift` names the scenario, its parameters, the first
    affected month and the first configured cutoff that contains it.
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    if not 0.0 <= dirt_rate <= 0.1:
        raise ValueError(f"dirt_rate must be between 0 and 0.1, got {dirt_rate}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start, end = settings.data.start_date, settings.data.end_date
    rng = np.random.default_rng(seed)

    sim = _Sim(settings, customers, rng)
    sim.make_customers()
    first_month = dt.date(start.year, start.month, 1)
    T = (end.year * 12 + end.month) - (start.year * 12 + start.month) + 1
    months = [_month_add(first_month, t) for t in range(T)]
    plan, wave, drift_info = None, None, None
    if drift is not None:
        plan, wave, drift_info = _plan_drift(drift, drift_params, drift_month, settings, sim, seed, months, end)

    files = {"sales_log": f"sales_log.{fmt}", "customers": f"customers.{fmt}"}
    other = "csv" if fmt == "parquet" else "parquet"
    stale = [f"sales_log.{other}", f"customers.{other}"]
    gt_path = out_dir / GROUND_TRUTH_FILE
    writer = None
    wave_ids = None
    if ground_truth:
        files["ground_truth"] = GROUND_TRUTH_FILE
        gt_tmp = out_dir / f".{GROUND_TRUTH_FILE}.tmp"
        slugs = [division_slug(d) for d in sim.divs]
        gt_schema = pa.schema([("customer_id", pa.string()), ("month", pa.date32())]
                              + [(f"p__{s}", pa.float32()) for s in slugs])
        ids = pl.select(_customer_ids(pl.int_range(0, customers, dtype=pl.Int64))).to_series().to_arrow()
        ids = ids.cast(pa.string())
        if wave is not None:
            wave_ids = pl.select(_customer_ids(pl.int_range(customers, customers + wave.n, dtype=pl.Int64)))
            wave_ids = wave_ids.to_series().to_arrow().cast(pa.string())
        writer = pq.ParquetWriter(
            gt_tmp, gt_schema, compression="zstd", write_statistics=True, use_dictionary=["month"],
            column_encoding={f"p__{s}": "BYTE_STREAM_SPLIT" for s in slugs},
        )
    else:
        stale.append(GROUND_TRUTH_FILE)
    try:
        for t in range(-_BURN_IN, T):
            m = _month_add(first_month, t)
            P = sim.month(t, m.month, record=t >= 0)
            Pw = wave.month(t, m.month, record=t >= 0) if wave is not None else None
            if writer is None or t < 0:
                continue
            if plan is not None and plan.slump_rows is not None and t >= plan.t0:
                # a kept customer-month is an independent draw: P(a purchase is on the record) = p x factor
                P[plan.slump_rows] *= np.float32(plan.slump_factor)
            tables = []
            for s_, P_, ids_ in ((sim, P, ids), (wave, Pw, wave_ids)):
                if s_ is None:
                    continue
                active = s_.act <= t
                k = int(active.sum())
                if k == 0:
                    continue
                Pa = np.clip(_round_mantissa(P_[active]), 0.0, 1.0)
                cols = [ids_.filter(pa.array(active)),
                        pa.array(np.full(k, _epoch_days(m), dtype=np.int32)).cast(pa.date32())]
                cols += [pa.array(np.ascontiguousarray(Pa[:, d])) for d in range(s_.D)]
                tables.append(pa.Table.from_arrays(cols, schema=gt_schema))
            if not tables:
                continue
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables).combine_chunks()
            writer.write_table(table, row_group_size=table.num_rows)
    except BaseException:
        if writer is not None:
            writer.close()
            gt_tmp.unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
        os.replace(gt_tmp, gt_path)

    clean = _clean_sales(sim, months, start, end, plan)
    cust = _customers_frame(sim)
    n_known = customers
    if wave is not None:
        clean = _merge_renumbered(clean, _clean_sales(wave, months, start, end, cust_offset=customers))
        cust = pl.concat([cust, _customers_frame(wave, offset=customers, num_w=max(4, len(str(customers))))])
        n_known += wave.n
    if drift_info is not None and plan is not None:
        if plan.keep is not None:
            drift_info["affected"]["purchase_lines_dropped"] = plan.n_lines
        if plan.move_from:
            drift_info["affected"]["purchase_lines_moved"] = plan.n_lines
        if plan.price_div is not None:
            drift_info["affected"]["purchase_lines_repriced"] = plan.n_lines
    sales, planted = _plant_dirt(clean, sim, dirt_rate, start, end, n_known=n_known)
    write_table(sales, out_dir / files["sales_log"], fmt, SALES_ARROW_SCHEMA)
    write_table(cust, out_dir / files["customers"], fmt, CUSTOMERS_ARROW_SCHEMA)
    for name in stale:
        (out_dir / name).unlink(missing_ok=True)

    manifest = DemoManifest(
        seed=int(seed), customers=int(customers), sales_rows=int(sales.height), customer_rows=int(cust.height),
        start_date=start.isoformat(), end_date=end.isoformat(), format=fmt,
        planted={r: int(planted[r]) for r in DIRT_RULES}, files=files, drift=drift_info,
    )
    tmp = out_dir / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST_FILE)
    return manifest
