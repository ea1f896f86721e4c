"""The evidence behind `whitespace.ranking.initial_champion`: every ordering of the whitespace lists of materialized
demo worlds, judged on every window that has closed by the end of the data, with the engine's own functions
(`core.ranking_decision`: realized purchases from the facts with the label rules, capture@K% by count and by revenue,
the paired bootstrap pooled over the windows of every world given).

    .venv/bin/python benchmarks/ranking_champion.py /tmp/rank101 /tmp/rank202 [--k 10] [--reps 2000] [--seed 14]
        [--json out.json] [--snapshot]

Each argument is a GOSALES_HOME whose graph was materialized with the current code (its `whitespace` lists carry the
`score_<ordering>` columns). Prints markdown: the captures per window, the mean over the windows and each ordering
minus the blend and minus p_icp with 95 % intervals (customers with a realized purchase resampled within each window,
every ordering on the same draw; a customer keeps its weight in the overlapping windows of its world)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import duckdb
import polars as pl

from gosales_assets.core.ranking import ORDERINGS
from gosales_assets.core.ranking_decision import paired_bootstrap, realized_outcomes, window_captures, window_rows
from gosales_assets.settings import config_path, load_settings


def world(home: Path, k: float, snapshot: bool = False):
    """(per-window captures, the windows' evidence) of one materialized home, judged at the data end."""
    settings = load_settings(config_path(), home=home)
    database = settings.warehouse_path.parent / "snapshot" / "warehouse.duckdb" if snapshot else settings.warehouse_path
    with duckdb.connect(str(database), read_only=True) as con:
        lists = con.execute("select * from whitespace order by cutoff_date, rank").pl()
        fact = con.execute("select invoice_date, customer_id, division, sku, revenue from fact_transactions").pl()
    as_of = settings.data.end_date
    rows, notes = window_rows(lists, as_of=as_of, window_months={d: settings.window_months(d)
                                                                   for d in settings.divisions})
    for n in notes:
        print(f"{home}: left out {n}")
    outcomes = realized_outcomes(rows, fact, as_of=as_of, min_net_revenue=settings.labels.min_net_revenue,
                                 sku_denylist=settings.labels.sku_denylist)
    return window_captures(outcomes, k)


def md(df: pl.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * df.width]
    for row in df.iter_rows():
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("homes", nargs="+", type=Path)
    ap.add_argument("--k", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--snapshot", action="store_true", help="read <home>/snapshot/warehouse.duckdb (the read-only "
                    "copy the engine publishes) while a run holds the warehouse")
    args = ap.parse_args()

    tables, evidence = [], []
    for home in args.homes:
        captures, ev = world(home, args.k, args.snapshot)
        tables.append(captures.with_columns(pl.lit(home.name).alias("world")))
        # customer ids repeat across worlds (the generator's numbering): one customer of one world per id
        evidence += [dataclasses.replace(w, customers=[f"{home.name}:{c}" for c in w.customers])
                     for w in ev if w.total["count"].sum() > 0]
    captures = pl.concat(tables)
    report: dict = {"k_pct": args.k, "windows": len(evidence), "comparisons": {}}
    print(f"## capture@{args.k:g}% per window ({len(evidence)} windows with a realized purchase)\n")
    for objective, col in (("revenue", "capture_revenue"), ("count", "capture_count")):
        wide = (captures.filter(pl.col(col).is_not_null())
                .pivot(on="ordering", index=["world", "window_cutoff", "pairs", "purchases"], values=col)
                .sort("world", "window_cutoff").with_columns(pl.col("window_cutoff").cast(pl.String)))
        print(f"### by {objective}\n\n{md(wide)}\n")
        means = {o: float(wide.get_column(o).mean()) for o in ORDERINGS}
        print("mean over the windows: " + ", ".join(f"{o} {v:.3f}" for o, v in means.items()) + "\n")
        report["comparisons"][objective] = {"mean": means}
        for base in ("blend", "p_icp"):
            others = [o for o in ORDERINGS if o != base]
            cmp = paired_bootstrap(evidence, base, others, objective=objective, reps=args.reps, seed=args.seed)
            rows = [{"ordering": o, f"minus {base}": c["diff"], "ci_low": c["ci_low"], "ci_high": c["ci_high"]}
                    for o, c in cmp.items()]
            print(f"{md(pl.DataFrame(rows))}\n")
            report["comparisons"][objective][f"minus_{base}"] = cmp
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
