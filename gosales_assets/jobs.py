"""Names of the asset jobs (one per partitioning of the graph) and the run tags the engine sets.

Kept apart from `definitions` so the runner and the automation can name jobs without importing the
whole Definitions object (which itself imports the automation)."""

GLOBAL_JOB = "gosales_global"                    # unpartitioned: raw, star, metrics_summary
CUTOFF_JOB = "gosales_cutoff"                    # partitioned by cutoff: cutoff features, whitespace, top accounts
DIVISION_CUTOFF_JOB = "gosales_division_cutoff"  # partitioned by division × cutoff
SNAPSHOT_JOB = "gosales_snapshot"                # no assets: publishes the warehouse's read-only snapshot

# Run tags (searchable in the UI's run list).
MATERIALIZE_TAG = "gosales/materialize"  # every run of one in-process `gosales materialize` (native backfills
                                         # carry Dagster's own `dagster/backfill` tag instead)
HOST_TAG = "gosales/host"              # host and process holding a run's warehouse: a killed run is detected and
PID_TAG = "gosales/pid"                # marked failed (`runner.release_dead_runs`), freeing the pool
SOURCE_TAG = "gosales/source"          # cli | new-cutoff: what launched a native backfill; publish-snapshot
CUTOFF_TAG = "gosales/cutoff"          # the new cutoff a `new_cutoff` backfill was launched for
STAGE_TAG = "gosales/stage"            # retrain: a run requested by the drift sensor
RUN_KEY_TAG = "gosales/run_key"        # idempotence key of a requested run
ALERT_TAG = "gosales/alert"            # set on a run whose results raised an alert (warn | hard)
ALERT_FILE_TAG = "gosales/alert_file"  # the consolidated alert file that reports it
