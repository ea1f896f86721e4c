"""`gosales` command line: demo data, materializing the graph, and where things live."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gosales_assets.settings import ConfigError, Settings, config_path, load_settings


def _cmd_demo_data(args: argparse.Namespace, settings: Settings) -> int:
    from gosales_assets.demo_data import generate_demo_data

    out = Path(args.out) if args.out else settings.landing_dir
    manifest = generate_demo_data(
        out,
        customers=args.customers if args.customers is not None else settings.demo.customers,
        seed=args.seed if args.seed is not None else settings.seeds.demo,
        settings=settings,
        fmt=args.format,
        dirt_rate=args.dirt_rate,
        ground_truth=not args.no_ground_truth,
    )
    planted = ", ".join(f"{k}={v}" for k, v in sorted(manifest.planted.items()))
    print(f"demo data written to {out}: {manifest.sales_rows} sales lines, {manifest.customer_rows} customers")
    print(f"planted contract violations: {planted}")
    return 0


def _run_backfill(settings: Settings, **selection) -> int:
    from dagster import DagsterInstance

    from gosales_assets.definitions import build_definitions
    from gosales_assets.runner import backfill, stopped_or_failed

    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    defs = build_definitions(settings, config_path())
    with DagsterInstance.get() as instance:
        outcomes = backfill(defs, instance, settings, **selection)
    failed = stopped_or_failed(outcomes)
    held = [o for o in outcomes if not o.success and o not in failed]
    print(f"{len(outcomes) - len(held) - len(failed)} of {len(outcomes)} runs succeeded")
    if held:
        print(f"{len(held)} run(s) held back by a blocking check (e.g. a model that missed its promotion gate): "
              "nothing downstream was published for those partitions; see docs/TROUBLESHOOTING.md")
    if failed:
        print(f"{len(failed)} run(s) FAILED (an error, or the star schema held back by its data checks); open them "
              "in the UI (make ui) for details")
    return 1 if failed else 0


def _cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    return _run_backfill(settings)


def _month_ends(first: str, last: str) -> list[str]:
    from gosales_assets.core.calendar import add_months
    from gosales_assets.partitions import parse_cutoff

    start, end = parse_cutoff(first), parse_cutoff(last)
    if end < start:
        raise ValueError(f"--to {last} is before --from {first}")
    out, c = [], start
    while c <= end:
        out.append(c.isoformat())
        c = add_months(c, 1)
    return out


def _cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    cutoffs = list(args.cutoff or [])
    if args.from_cutoff or args.to_cutoff:
        if not (args.from_cutoff and args.to_cutoff):
            raise ValueError("--from and --to go together (a range of month-end cutoffs)")
        cutoffs += _month_ends(args.from_cutoff, args.to_cutoff)
    if not cutoffs:
        raise ValueError("name the cutoffs to backfill: --cutoff YYYY-MM-DD (repeatable) or --from/--to")
    return _run_backfill(settings, cutoffs=cutoffs, divisions=args.division or None, star=not args.skip_star,
                         reports=not args.skip_reports)


def _cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    print(f"config:     {config_path()}")
    print(f"home:       {settings.home}")
    print(f"landing:    {settings.landing_dir}")
    print(f"warehouse:  {settings.warehouse_path}")
    print(f"artifacts:  {settings.artifacts_dir}")
    print(f"dagster:    {os.environ.get('DAGSTER_HOME') or settings.dagster_home}")
    print("UI:         make ui  (then open http://127.0.0.1:3000)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gosales", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="write the seeded synthetic sales log and customers")
    demo.add_argument("--customers", type=int, default=None, help="roster size (default: demo.customers)")
    demo.add_argument("--seed", type=int, default=None, help="random seed (default: seeds.demo)")
    demo.add_argument("--out", default=None, help="output folder (default: the landing folder)")
    demo.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    demo.add_argument("--dirt-rate", type=float, default=0.002, help="share of rows planted per defect kind")
    demo.add_argument("--no-ground-truth", action="store_true", help="skip the oracle probabilities file")
    sub.add_parser("materialize", help="materialize every asset of the graph into the Dagster instance")
    bf = sub.add_parser("backfill", help="materialize the whole graph for chosen cutoffs (new ones are registered)")
    bf.add_argument("--cutoff", action="append", help="month-end cutoff YYYY-MM-DD (repeatable)")
    bf.add_argument("--from", dest="from_cutoff", help="first month-end of a range (every month-end up to --to)")
    bf.add_argument("--to", dest="to_cutoff", help="last month-end of the range")
    bf.add_argument("--division", action="append", help="only this division (repeatable; default: all)")
    bf.add_argument("--skip-star", action="store_true", help="do not rebuild the star schema first")
    bf.add_argument("--skip-reports", action="store_true", help="do not rebuild the cross-run reports at the end")
    sub.add_parser("info", help="print where the config, warehouse and outputs are")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    handlers = {"demo-data": _cmd_demo_data, "materialize": _cmd_materialize, "backfill": _cmd_backfill,
                "info": _cmd_info}
    try:
        return handlers[args.command](args, settings)
    except ValueError as err:  # a bad cutoff, division or range: say which, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
