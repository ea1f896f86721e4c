"""`gosales` command line: demo data, materializing the graph, and where things live."""

from __future__ import annotations

import argparse
import os
import signal
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


def _instance_and_defs(settings: Settings):
    from dagster import DagsterInstance

    from gosales_assets.definitions import build_definitions

    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return DagsterInstance.get(), build_definitions(settings, config_path())


def _report(outcomes) -> int:
    from gosales_assets.runner import summarize

    counts = summarize(outcomes)
    print(f"{len(outcomes)} runs: {counts['ok']} ok, {counts['held']} with held models, {counts['failed']} failed, "
          f"{counts['skipped']} skipped (upstream failed)")
    if counts["held"]:
        print("held models are the engine refusing to publish (a missed promotion gate, too little history): each "
              "has its registry row and reason; nothing from it was published. See docs/TROUBLESHOOTING.md")
    if counts["failed"] or counts["skipped"]:
        print("failed runs: open them in the UI (make ui) for details; re-running the same command retries them")
    return 1 if counts["failed"] or counts["skipped"] else 0


def _cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    from gosales_assets.runner import materialize

    instance, defs = _instance_and_defs(settings)
    with instance:
        outcomes = materialize(defs, instance, settings, cutoffs=_cutoffs(args) or None,
                               divisions=args.division or None, star=not args.skip_star, reports=not args.skip_reports)
    return _report(outcomes)


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


def _cutoffs(args: argparse.Namespace) -> list[str]:
    cutoffs = list(args.cutoff or [])
    if args.from_cutoff or args.to_cutoff:
        if not (args.from_cutoff and args.to_cutoff):
            raise ValueError("--from and --to go together (a range of month-end cutoffs)")
        cutoffs += _month_ends(args.from_cutoff, args.to_cutoff)
    return cutoffs


def _cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from gosales_assets.runner import backfill_outcomes, launch_backfill, target_partitions, wait_backfill

    cutoffs = _cutoffs(args)
    if not cutoffs:
        raise ValueError("name the cutoffs to backfill: --cutoff YYYY-MM-DD (repeatable) or --from/--to")
    instance, defs = _instance_and_defs(settings)
    with instance:
        graph = defs.resolve_asset_graph()
        targets = target_partitions(graph, settings, cutoffs=cutoffs, divisions=args.division or None,
                                    star=not args.skip_star, reports=not args.skip_reports)
        backfill_id = launch_backfill(graph, instance, targets, source="cli",
                                      title=f"gosales backfill {', '.join(sorted(set(cutoffs)))}")
        print(f"backfill {backfill_id} submitted: {len(targets)} asset partitions over cutoffs {sorted(set(cutoffs))}")
        print(f"follow it in the UI: http://127.0.0.1:3000/runs/b/{backfill_id} (make ui); the Dagster daemon runs "
              "it (make ui starts one)")
        if not instance.get_daemon_heartbeats():
            print("note: no Dagster daemon has reported to this instance yet; the backfill waits until one runs")
        if not args.wait:
            return 0
        status = wait_backfill(instance, backfill_id, timeout_s=args.timeout)
        print(f"backfill {backfill_id}: {status.value}")
        return max(_report(backfill_outcomes(instance, backfill_id)),
                   0 if status.value in ("COMPLETED", "COMPLETED_SUCCESS") else 1)


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
    mat = sub.add_parser("materialize", help="materialize the graph in this process, in the order of the asset "
                         "graph (default: every configured cutoff; no daemon needed)")
    bf = sub.add_parser("backfill", help="launch a native Dagster backfill of chosen cutoffs (the daemon runs it)")
    for p in (mat, bf):
        p.add_argument("--cutoff", action="append", help="month-end cutoff YYYY-MM-DD or partition key YYYY-MM "
                       "(repeatable)")
        p.add_argument("--from", dest="from_cutoff", help="first month-end of a range (every month-end up to --to)")
        p.add_argument("--to", dest="to_cutoff", help="last month-end of the range")
        p.add_argument("--division", action="append", help="only this division (repeatable; default: all)")
        p.add_argument("--skip-star", action="store_true", help="do not rebuild the star schema first")
        p.add_argument("--skip-reports", action="store_true", help="do not rebuild the cross-run reports at the end")
    bf.add_argument("--wait", action="store_true", help="wait for the backfill and summarise ok / held / failed runs")
    bf.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    sub.add_parser("info", help="print where the config, warehouse and outputs are")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    handlers = {"demo-data": _cmd_demo_data, "materialize": _cmd_materialize, "backfill": _cmd_backfill,
                "info": _cmd_info}
    # SIGTERM stops a command the way Ctrl-C does: the current run is marked failed, nothing after it starts.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return handlers[args.command](args, settings)
    except KeyboardInterrupt as err:
        print(f"stopped: {err or 'interrupted'}; run the same command again to finish the work", file=sys.stderr)
        return 130
    except ValueError as err:  # a bad cutoff, division or range: say which, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TimeoutError as err:  # `backfill --wait --timeout`: the backfill goes on; this command stops waiting
        print(f"error: {err}; it goes on in the daemon (follow it in the UI)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
