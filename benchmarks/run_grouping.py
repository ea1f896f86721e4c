"""How many runs a whole native backfill makes of a division × cutoff chain, by how the chain is split into ops.

    .venv/bin/python benchmarks/run_grouping.py [--variant split|one_op] [--sleep 2]

A stand-in graph with the engine's partitions and mappings (`gosales_assets.partitions`: 8 monthly cutoffs × 3
divisions; `customer_features` per cutoff; the model reading the same division's frames of the 3 earlier cutoffs)
and ops that only sleep, so only Dagster's grouping is measured:
- `split` (the engine today): `labels` + `division_features` in one op, then `division_model`, then `icp_scores`.
- `one_op`: the whole chain as one non-subsettable multi-asset that reads its own earlier cutoffs' frames (a
  declared self-dependency of the op).
For the variant: a fresh DAGSTER_HOME (two runs at a time, the queue dequeuing every second, as dagster.yaml),
`dagster dev` on this file as its code location, the whole graph submitted as one asset backfill
(`runner.launch_backfill`), run by the daemon; prints the runs by asset selection and the wall time.
Measured 2026-11-30 on dagster 1.13.27 (docs/PERFORMANCE.md, "Fewer runs: one op per division × cutoff").
"""

from __future__ import annotations

import os
import time

from dagster import (AssetDep, AssetOut, Definitions, MonthlyPartitionsDefinition, MultiPartitionsDefinition, Output,
                     StaticPartitionsDefinition, asset, multi_asset)

from gosales_assets.partitions import same_cutoff, same_division_earlier_cutoffs

VARIANT = os.environ.get("RUN_GROUPING_VARIANT", "split")
SLEEP_S = float(os.environ.get("RUN_GROUPING_SLEEP", "2"))
CUTOFFS = MonthlyPartitionsDefinition(start_date="2024-09", end_date="2025-05", fmt="%Y-%m")
PARTS = MultiPartitionsDefinition({"cutoff": CUTOFFS, "division": StaticPartitionsDefinition(["A", "B", "C"])})
CHAIN = ("division_features", "labels", "division_model", "icp_scores")  # the frame first: the others read it


@asset(partitions_def=CUTOFFS)
def customer_features() -> None:
    time.sleep(SLEEP_S)


def _one_op() -> list:
    @multi_asset(outs={n: AssetOut() for n in CHAIN}, partitions_def=PARTS, can_subset=False,
                 deps=[AssetDep("customer_features", partition_mapping=same_cutoff()),
                       AssetDep("division_features", partition_mapping=same_division_earlier_cutoffs(3, 1))])
    def division_chain():
        time.sleep(SLEEP_S)
        for name in CHAIN:
            yield Output(None, output_name=name)
    return [division_chain]


def _split() -> list:
    @multi_asset(outs={n: AssetOut() for n in ("division_features", "labels")}, partitions_def=PARTS,
                 can_subset=False, deps=[AssetDep("customer_features", partition_mapping=same_cutoff())])
    def division_frame():
        time.sleep(SLEEP_S)
        yield Output(None, output_name="division_features")
        yield Output(None, output_name="labels")

    @asset(partitions_def=PARTS, deps=[AssetDep("division_features",
                                                partition_mapping=same_division_earlier_cutoffs(3, 1)), "labels"])
    def division_model() -> None:
        time.sleep(SLEEP_S)

    @asset(partitions_def=PARTS, deps=["division_model", "division_features"])
    def icp_scores() -> None:
        time.sleep(SLEEP_S)
    return [division_frame, division_model, icp_scores]


def build_defs(variant: str) -> Definitions:
    return Definitions(assets=[customer_features, *(_one_op() if variant == "one_op" else _split())])


defs = build_defs(VARIANT)  # what `dagster dev -f` loads (the variant from the environment main() sets)


def main() -> int:
    import argparse
    import collections
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from dagster import DagsterInstance, RunsFilter
    from dagster._core.definitions.events import AssetKeyPartitionKey

    from gosales_assets.runner import launch_backfill, wait_backfill

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=("split", "one_op"), default="split")
    ap.add_argument("--sleep", type=float, default=2.0, help="seconds each op sleeps")
    ap.add_argument("--port", type=int, default=3917)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="run_grouping_"))
    (home / "dagster.yaml").write_text(
        "concurrency:\n  runs:\n    max_concurrent_runs: 2\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n  config:\n    dequeue_interval_seconds: 1\ntelemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "RUN_GROUPING_VARIANT": args.variant,
           "RUN_GROUPING_SLEEP": str(args.sleep)}
    os.environ.update(env)
    here = Path(__file__).resolve()
    dev = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-f", str(here), "-p", str(args.port)],
                           env=env, cwd=here.parent, stdout=open(home / "dev.log", "w"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        time.sleep(25)  # the daemon up (a backfill submitted earlier simply waits for it)
        graph = build_defs(args.variant).resolve_asset_graph()
        targets = [AssetKeyPartitionKey(key, pk) for key in graph.get_all_asset_keys()
                   for pk in graph.get(key).partitions_def.get_partition_keys()]
        with DagsterInstance.get() as instance:
            t0 = time.time()
            backfill_id = launch_backfill(graph, instance, targets, source="run_grouping", title=args.variant)
            status = wait_backfill(instance, backfill_id, timeout_s=1800, poll_s=5, log=lambda _m: None)
            wall = time.time() - t0
            runs = instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))
            kinds = collections.Counter("+".join(sorted(k.to_user_string() for k in r.dagster_run.asset_selection or []))
                                        for r in runs)
        print(f"{args.variant}: {status.value}, {len(targets)} asset partitions, {len(runs)} runs, wall {wall:.0f} s "
              f"(instance and dagster dev's log kept in {home})")
        for kind, n in sorted(kinds.items()):
            print(f"  {n:4d}  {kind}")
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
