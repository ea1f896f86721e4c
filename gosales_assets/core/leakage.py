"""Leakage audits as plain functions (the asset checks and the gauntlet call these).

- `source_date_audit`: the latest date among the rows a cutoff's computation read must be ≤ the cutoff.
- `perturb_after_cutoff`: a copy of the post-cutoff rows changed in every way that could leak (amounts,
  signs, SKUs moved to other divisions, brand-new customers, dates moved within the future); a computation for
  cutoff C must give identical output whether it sees the real future rows, the perturbed ones or none.
- `invariance_report`: the shift test (real post-cutoff rows present) and the perturbation test (perturbed
  post-cutoff rows), each compared with the output built from pre-cutoff rows only (the stored output, or a
  rebuild when the rows are a sample of the customers: `invariance_customers`).
- `scan_wall_clock`: static scan of feature/label code for calls that read the wall clock.
- `time_order_violations`: training cutoffs whose label window had not closed at the scoring cutoff.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from gosales_assets.core.calendar import window_end
from gosales_assets.core.checksum import frame_checksum


@dataclass(frozen=True)
class AuditResult:
    passed: bool
    detail: str
    values: dict


def source_date_audit(rows: pl.DataFrame, cutoff: dt.date, date_col: str = "invoice_date") -> AuditResult:
    """PASS when no row dated after `cutoff` is among `rows` (the rows a computation actually read)."""
    if rows.height == 0:
        return AuditResult(True, "no source rows read", {"latest_source_date": None, "rows_after_cutoff": 0})
    latest = rows.get_column(date_col).max()
    after = rows.filter(pl.col(date_col) > cutoff).height
    detail = (f"latest source date {latest} ≤ cutoff {cutoff}" if after == 0
              else f"{after} source rows dated after cutoff {cutoff} (latest {latest})")
    return AuditResult(after == 0, detail, {"latest_source_date": str(latest), "rows_after_cutoff": after})


def perturb_after_cutoff(fact: pl.DataFrame, cutoff: dt.date, seed: int = 0) -> pl.DataFrame:
    """`fact` with every row dated after `cutoff` changed; rows on or before the cutoff untouched.

    Perturbations: revenue/gross profit scaled and sign-flipped at random, divisions and SKUs rotated between
    rows, dates shuffled among the post-cutoff dates, plus extra rows for new customers and for existing ones.
    """
    pre = fact.filter(pl.col("invoice_date") <= cutoff)
    post = fact.filter(pl.col("invoice_date") > cutoff)
    if post.height == 0:
        # Invent future rows from the last pre-cutoff ones so the test still has something to ignore.
        post = pre.tail(min(pre.height, 50)).with_columns(
            (pl.lit(cutoff) + pl.duration(days=pl.int_range(1, pl.len() + 1))).alias("invoice_date"))
    rng = np.random.default_rng(seed)
    n = post.height
    scale = rng.choice([-3.0, -1.0, 0.5, 2.0, 10.0], size=n)
    perm = rng.permutation(n)
    changed = post.with_columns(
        (pl.col("revenue") * pl.Series(scale)).alias("revenue"),
        (pl.col("gross_profit") * pl.Series(scale)).alias("gross_profit"),
        pl.col("invoice_date").gather(pl.Series(perm)).alias("invoice_date"),
        pl.col("sku").gather(pl.Series(np.roll(np.arange(n), 1))).alias("sku"),
        pl.col("division").gather(pl.Series(np.roll(np.arange(n), 1))).alias("division"),
    )
    newcomers = post.with_columns(
        (pl.lit("LEAK-") + pl.col("customer_id")).alias("customer_id"),
        (pl.lit("LEAK-") + pl.col("invoice_id")).alias("invoice_id"),
    )
    return pl.concat([pre, changed, newcomers], how="vertical_relaxed")


def invariance_customers(first_seen: pl.DataFrame, cutoff: dt.date, max_customers: int | None,
                         seed: int) -> pl.Series | None:
    """The customers whose rows the invariance rebuilds of a cutoff-C builder use, from `first_seen` (one row per
    customer: `customer_id`, `first_date` = the date of its first fact row). None — every row, compared with the
    stored output — when at most `max_customers` customers were seen by C, or `max_customers` is None. Otherwise
    `max_customers` of them and up to `max_customers` // 10 of those first seen after C (whom the roster must not
    admit), each drawn with `seed` from the ids in sorted order (independent of row order); sorted.

    The rebuilds then cost a sample's, not the whole history's, at any roster size: the property they test — the
    builder ignores every row after C — is the builder's, and a sample of whole customer histories exercises it."""
    known = first_seen.filter(pl.col("first_date") <= cutoff).get_column("customer_id").sort()
    if max_customers is None or known.len() <= max_customers:
        return None
    later = first_seen.filter(pl.col("first_date") > cutoff).get_column("customer_id").sort()
    rng = np.random.default_rng([seed, 0x1EA4])
    picked = [known.gather(np.sort(rng.choice(known.len(), max_customers, replace=False)))]
    n_later = min(later.len(), max_customers // 10)
    if n_later:
        picked.append(later.gather(np.sort(rng.choice(later.len(), n_later, replace=False))))
    return pl.concat(picked).sort()


def invariance_report(build: Callable[[pl.DataFrame], pl.DataFrame], fact: pl.DataFrame, cutoff: dt.date,
                      expected_checksum: str | None, seed: int = 0) -> tuple[AuditResult, AuditResult]:
    """(shift test, perturbation test) of a cutoff-C builder.

    `expected_checksum`: the checksum of what the asset stored, built from rows dated ≤ cutoff only, when `fact` is
    the whole table; None when `fact` holds the rows of a sample of the customers (`invariance_customers`): the
    reference is then `build` on the sample's rows dated ≤ cutoff.
    - shift test: `build` on `fact` (the real rows after C present) must give the reference;
    - perturbation test: `build` on `fact` with every post-cutoff row perturbed must give it too.
    A leakage-safe builder ignores rows after C, so both pass; one that reads them fails at least one.
    """
    sampled = expected_checksum is None
    reference = (frame_checksum(build(fact.filter(pl.col("invoice_date") <= cutoff))) if sampled
                 else expected_checksum)
    real = frame_checksum(build(fact))
    perturbed = frame_checksum(build(perturb_after_cutoff(fact, cutoff, seed)))
    if sampled:
        n = fact.get_column("customer_id").n_unique()
        ref = {"checksum_reference": reference, "sample_customers": n}
        against = f" (every row of {n:,} sampled customers)"
    else:
        ref, against = {"checksum_stored": reference}, ""
    shift = AuditResult(
        real == reference,
        f"identical output with the rows after the cutoff present or removed{against}" if real == reference
        else "output changes when the rows after the cutoff are present: leakage",
        {**ref, "checksum_with_future_rows": real},
    )
    perturb = AuditResult(
        perturbed == reference,
        f"identical output when every row after the cutoff is perturbed{against}" if perturbed == reference
        else "output changes when rows dated after the cutoff change: leakage",
        {**ref, "checksum_perturbed": perturbed},
    )
    return shift, perturb


# Calls that read the wall clock. Feature and label code must depend only on the cutoff and the data.
WALL_CLOCK_ATTRS = frozenset({"now", "utcnow", "today", "time", "time_ns", "localtime", "gmtime", "monotonic",
                              "perf_counter", "process_time", "ctime", "asctime"})
# Owners of those calls besides whatever the file imports from `time`/`datetime` (aliases are tracked).
# Polars' `.dt.<x>()` namespace is deliberately not an owner: `.dt.date()` reads data, not the clock.
WALL_CLOCK_MODULES = frozenset({"datetime", "date", "time", "Timestamp", "arrow", "pendulum"})


@dataclass(frozen=True)
class ScanHit:
    path: str
    line: int
    call: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call}"


def scan_wall_clock(paths: list[Path]) -> list[ScanHit]:
    """Static scan (AST) for wall-clock reads such as `datetime.now()`, `datetime.utcnow()`, `date.today()`,
    `time.time()`, `pd.Timestamp.now()`, `pl.datetime.now`, and names imported from `time`/`datetime` that read
    the clock (`from time import time`). Reports file:line of every hit."""
    hits: list[ScanHit] = []
    for path in sorted(paths):
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
        clock_names: set[str] = set()  # bare names bound to a clock function: `from time import time`
        owners = set(WALL_CLOCK_MODULES)  # names bound to a clock module or class: `import time as clock`
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ("time", "datetime"):
                        owners.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("time", "datetime"):
                for alias in node.names:
                    target = clock_names if alias.name in WALL_CLOCK_ATTRS else owners
                    target.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            if isinstance(fn, ast.Attribute) and fn.attr in WALL_CLOCK_ATTRS:
                owner = fn.value
                owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
                if owner_name in owners:
                    hits.append(ScanHit(str(path), node.lineno, f"{ast.unparse(fn)}()"))
            elif isinstance(fn, ast.Name) and fn.id in clock_names:
                hits.append(ScanHit(str(path), node.lineno, f"{fn.id}()"))
    return sorted(hits, key=lambda h: (h.path, h.line))


def feature_code_paths() -> list[Path]:
    """The modules whose output depends on a cutoff: labels and every feature builder."""
    core = Path(__file__).parent
    names = ["calendar", "labels", "features", "basket", "als", "division_features", "star", "ingest"]
    return [core / f"{n}.py" for n in names]


def time_order_violations(cutoff: dt.date, training: list[tuple[dt.date, int]]) -> list[str]:
    """Training cutoffs C' (with label window W') whose window had not closed by C: C' + W' > C."""
    return [f"{c} + {w} months = {window_end(c, w)} > {cutoff}" for c, w in training if window_end(c, w) > cutoff]
