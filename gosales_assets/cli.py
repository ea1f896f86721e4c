"""`gosales` command line: demo data, materializing the graph, the warehouse snapshot people query, and where
things live."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from gosales_assets.settings import ConfigError, Settings, config_path, load_settings
from gosales_assets.snapshot import SnapshotError

DEFAULT_DIRT_RATE = 0.002  # gosales demo-data --dirt-rate (the reseller world's planted contract violations)


def _cmd_demo_data(args: argparse.Namespace, settings: Settings) -> int:
    from gosales_assets.demo_data import DRIFT_SCENARIOS, describe_drift_scenarios, generate_demo_data

    if args.list_drift:
        print(describe_drift_scenarios())
        return 0
    if args.world == "retail":
        return _retail_world(args, settings)
    if args.skus is not None:
        raise ValueError("--skus goes with --world retail (the reseller world's catalogue is the configured sku_map)")
    if args.drift is not None and args.drift not in DRIFT_SCENARIOS:
        raise ValueError(f"unknown drift scenario {args.drift!r}; valid: {', '.join(DRIFT_SCENARIOS)} "
                         "(gosales demo-data --list-drift describes them)")
    if (args.drift_month is not None or args.drift_param) and args.drift is None:
        raise ValueError("--drift-month and --drift-param go with --drift <scenario>")
    drift_params = {}
    for item in args.drift_param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--drift-param takes KEY=VALUE, got {item!r}")
        try:  # numbers and JSON lists as such, anything else as text
            drift_params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            drift_params[key.strip()] = value
    out = Path(args.out) if args.out else settings.landing_dir
    manifest = generate_demo_data(
        out,
        customers=args.customers if args.customers is not None else settings.demo.customers,
        seed=args.seed if args.seed is not None else settings.seeds.demo,
        settings=settings,
        fmt=args.format,
        dirt_rate=args.dirt_rate,
        ground_truth=not args.no_ground_truth,
        drift=args.drift,
        drift_month=args.drift_month,
        drift_params=drift_params or None,
    )
    planted = ", ".join(f"{k}={v}" for k, v in sorted(manifest.planted.items()))
    print(f"demo data written to {out}: {manifest.sales_rows} sales lines, {manifest.customer_rows} customers")
    print(f"planted contract violations: {planted}")
    if manifest.drift is not None:
        d = manifest.drift
        print(f"planted drift: {d['scenario']} from {d['from_month']} (first configured cutoff that contains it: "
              f"{d['first_cutoff'] or 'none'}): {d['expected']}")
    return 0


def _retail_world(args: argparse.Namespace, settings: Settings) -> int:
    from gosales_assets.demo_retail import generate_retail_data

    reseller_only = [flag for flag, given in (("--drift", args.drift), ("--drift-month", args.drift_month),
                                               ("--drift-param", args.drift_param),
                                               ("--dirt-rate", args.dirt_rate != DEFAULT_DIRT_RATE)) if given]
    if reseller_only:
        raise ValueError(f"{', '.join(reseller_only)} go(es) with the reseller world, not --world retail")
    out = Path(args.out) if args.out else settings.home / "retail"
    manifest = generate_retail_data(
        out, customers=args.customers if args.customers is not None else 4000,
        skus=args.skus if args.skus is not None else 2400,
        seed=args.seed if args.seed is not None else settings.seeds.demo,
        fmt=args.format, ground_truth=not args.no_ground_truth)
    print(f"retail world written to {out}: {manifest.sales_rows} sales lines ({manifest.credit_rows} credit notes), "
          f"{manifest.customer_rows} customers, {manifest.skus} SKUs in {len(manifest.divisions)} divisions, "
          f"{manifest.start_date} to {manifest.end_date}")
    print(f"its configuration: {out / manifest.files['config']}; run the engine on it with its own home:")
    print(f"  GOSALES_CONFIG={out / manifest.files['config']} GOSALES_HOME={out / 'home'} gosales materialize")
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
    if counts["retained"]:
        print(f"{counts['retained']} of the ok runs retained a model: it trailed the division's champion, which keeps "
              "serving (registry `serving_model_version`)")
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
    code = _report(outcomes)
    _publish_at_end(settings)
    return code


def _publish_at_end(settings: Settings) -> None:
    """The end of `gosales materialize`: the snapshot shows what it built (failed runs left the warehouse consistent:
    partition writes are transactions). A snapshot that cannot be taken is a note, not a failed command."""
    import duckdb

    from gosales_assets.resources import WarehouseLocked, publish_snapshot

    try:
        done = publish_snapshot(settings.warehouse_path, interval_minutes=settings.snapshot.interval_minutes,
                                force=True, source="gosales materialize")
    except WarehouseLocked as err:
        print(f"note: the warehouse snapshot was not published: the warehouse is held by {err.holder}; "
              "`gosales snapshot` publishes one once it is free", file=sys.stderr)
        return
    except (SnapshotError, OSError, duckdb.Error) as err:
        print(f"note: the warehouse snapshot was not published: {_one_line(err)}", file=sys.stderr)
        return
    if done.copied:
        print(f"snapshot published: {done.path} (query it while the engine works: gosales query \"select …\")")
    elif done.meta is not None:
        print(f"snapshot: {done.path} is current")


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


def _cmd_snapshot(args: argparse.Namespace, settings: Settings) -> int:
    from gosales_assets.resources import LOCK_WAIT_S, WarehouseLocked, publish_snapshot

    warehouse = settings.warehouse_path
    if not warehouse.exists():
        print(f"error: there is no warehouse yet at {warehouse}: run `gosales materialize` first", file=sys.stderr)
        return 1
    wait = LOCK_WAIT_S if args.wait is None else args.wait
    try:
        done = publish_snapshot(warehouse, force=True, source="gosales snapshot", wait_s=wait)
    except WarehouseLocked as err:
        print(f"error: the warehouse {warehouse} is held by {err.holder} (a run writing it, or a session left open) "
              f"for more than {wait:.0f} s, so no snapshot was taken; try again when it is free (`--wait S` waits "
              "longer); meanwhile `gosales query` reads the last snapshot", file=sys.stderr)
        return 1
    if done.copied:
        meta = done.meta or {}
        print(f"snapshot published: {done.path} ({meta.get('warehouse_bytes', 0) / 1e6:.1f} MB, copied in "
              f"{meta.get('copy_seconds', 0):.1f} s)")
    else:
        print(f"snapshot not copied: {done.reason} ({done.path})")
    print(f'query it: gosales query "select …"   or   duckdb -readonly {done.path}')
    return 0


def _one_line(err: BaseException) -> str:
    """A DuckDB error as one line: its message and hint, without the caret drawing under the SQL."""
    lines = [ln.strip() for ln in str(err).splitlines()]
    return " ".join(ln for ln in lines if ln and not ln.startswith("LINE ") and set(ln) != {"^"})


def _connect_read_only(snapshot: Path):
    import duckdb

    try:
        return duckdb.connect(str(snapshot), read_only=True)
    except duckdb.IOException as err:
        if "lock" in str(err).lower():
            raise ValueError(
                f"the snapshot {snapshot} is held by a session that opened it for writing ({_one_line(err)}): close "
                f"it, and open the snapshot read-only (`duckdb -readonly {snapshot}`, or duckdb.connect(..., "
                "read_only=True))") from None
        raise ValueError(f"cannot open the snapshot {snapshot}: {_one_line(err)}; `gosales snapshot` publishes a "
                         "new one") from None


def _open_snapshot(snapshot: Path):
    """(read-only connection, record) of the snapshot. The record is the one of the file this connection opened:
    a publish replaces the file and then its record, so a record of another file is read again (briefly); None
    when it never matches."""
    import time

    from gosales_assets.snapshot import read_meta

    for _ in range(20):
        before = snapshot.stat().st_ino
        conn = _connect_read_only(snapshot)
        if snapshot.stat().st_ino != before:  # replaced while opening: which file this is is unknown; again
            conn.close()
            continue
        meta = read_meta(snapshot)
        if meta is not None and meta.get("snapshot_inode") == before:
            return conn, meta
        conn.close()
        time.sleep(0.05)
    return _connect_read_only(snapshot), None


def _cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    import duckdb
    import polars as pl

    from gosales_assets.snapshot import describe, snapshot_path

    snapshot = snapshot_path(settings.warehouse_path)
    if not snapshot.exists():
        print(f"error: no snapshot of the warehouse yet ({snapshot}): run `gosales snapshot` (or `gosales "
              "materialize`, which publishes one when it ends)", file=sys.stderr)
        return 1
    conn, meta = _open_snapshot(snapshot)
    # On stderr, so that `--csv > file` holds only the rows.
    print(describe(meta, settings.warehouse_path), file=sys.stderr)
    try:
        rel = conn.sql(args.sql)
        if rel is None:
            print("ok (the statement returns no rows)")
            return 0
        if args.csv:
            _write_csv(rel)
            return 0
        df = rel.limit(args.max_rows + 1).pl()
    except duckdb.Error as err:
        hint = " (the snapshot is read-only: it answers queries only)" if "read-only" in str(err) else ""
        print(f"error: {_one_line(err)}{hint}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        conn.close()
    with pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
        print(df.head(args.max_rows))
    if df.height > args.max_rows:
        print(f"(more rows: the first {args.max_rows} are shown; --max-rows N shows more, --csv prints all)")
    return 0


def _write_csv(rel) -> None:
    """Every row as CSV on stdout, a batch at a time (a result larger than memory streams)."""
    import polars as pl

    header = True
    for batch in rel.fetch_arrow_reader(100_000):
        sys.stdout.write(pl.from_arrow(batch).write_csv(include_header=header))
        header = False
    if header:  # no rows: the header alone
        sys.stdout.write(",".join(_csv_cell(c) for c in rel.columns) + "\n")
    sys.stdout.flush()


def _csv_cell(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(ch in text for ch in ',"\n\r') else text


def _cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    from gosales_assets.snapshot import describe, read_meta, snapshot_path

    snapshot = snapshot_path(settings.warehouse_path)
    print(f"config:     {config_path()}")
    print(f"home:       {settings.home}")
    print(f"landing:    {settings.landing_dir}")
    print(f"warehouse:  {settings.warehouse_path}")
    print(f"snapshot:   {snapshot} (" + (describe(read_meta(snapshot), settings.warehouse_path)
                                         if snapshot.exists() else "none yet: gosales snapshot") + ")")
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
    demo.add_argument("--world", choices=["reseller", "retail"], default="reseller", help="reseller: the CAD "
                      "reseller of the configured divisions (default); retail: a retailer's log with sparse "
                      "customer fields, thousands of SKUs, a year of strong seasonality, written with its own "
                      "gosales.yaml (docs/OPERATIONS.md)")
    demo.add_argument("--skus", type=int, default=None, help="--world retail: catalogue size (default 2400)")
    demo.add_argument("--dirt-rate", type=float, default=DEFAULT_DIRT_RATE,
                      help="share of rows planted per defect kind")
    demo.add_argument("--no-ground-truth", action="store_true", help="skip the oracle probabilities file")
    demo.add_argument("--drift", default=None, metavar="SCENARIO", help="plant a named drift scenario (see "
                      "--list-drift; recorded in demo_manifest.json)")
    demo.add_argument("--drift-month", default=None, metavar="YYYY-MM", help="first affected month (default: the "
                      "month after the second-to-last configured cutoff)")
    demo.add_argument("--drift-param", action="append", metavar="KEY=VALUE", help="override a scenario parameter, "
                      "e.g. region=East, factor=0.3, skus='[\"SIM-FLOW\"]' (repeatable)")
    demo.add_argument("--list-drift", action="store_true", help="list the drift scenarios and exit")
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
    snap = sub.add_parser("snapshot", help="publish a read-only copy of the warehouse now (what `gosales query` and "
                          "analysts read while runs write the warehouse)")
    snap.add_argument("--wait", type=float, default=None, help="seconds to wait for a process that holds the "
                      "warehouse (default: GOSALES_WAREHOUSE_LOCK_WAIT_S, 120)")
    query = sub.add_parser("query", help="run a read-only SQL query against the published snapshot of the warehouse "
                           "(works while runs write the warehouse)")
    query.add_argument("sql", help='e.g. "select rule, count(*) from contract_violations group by 1"')
    query.add_argument("--csv", action="store_true", help="print every row as CSV (default: a table)")
    query.add_argument("--max-rows", type=int, default=50, help="rows shown as a table (default 50)")
    sub.add_parser("info", help="print where the config, warehouse, snapshot and outputs are")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    handlers = {"demo-data": _cmd_demo_data, "materialize": _cmd_materialize, "backfill": _cmd_backfill,
                "snapshot": _cmd_snapshot, "query": _cmd_query, "info": _cmd_info}
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
    except SnapshotError as err:  # a snapshot that cannot be written (disk full, a publish in progress)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except TimeoutError as err:  # `backfill --wait --timeout`: the backfill goes on; this command stops waiting
        print(f"error: {err}; it goes on in the daemon (follow it in the UI)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
