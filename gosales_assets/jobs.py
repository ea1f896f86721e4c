"""Names of the asset jobs (one per partitioning of the graph) and the run tags the engine sets.

Kept apart from `definitions` so the runner and the automation can name jobs without importing the
whole Definitions object (which itself imports the automation)."""

STAR_JOB = "gosales_star"                        # unpartitioned: raw + star
CUTOFF_JOB = "gosales_cutoff"                    # partitioned by cutoff
DIVISION_CUTOFF_JOB = "gosales_division_cutoff"  # partitioned by division × cutoff
WHITESPACE_JOB = "gosales_whitespace"            # partitioned by cutoff, after every division of the cutoff
REPORTS_JOB = "gosales_reports"                  # unpartitioned, reads every partition: runs last
BACKFILL_JOB = "gosales_backfill"                # op job: the whole graph over chosen cutoffs, one process

# Run tags (searchable in the UI's run list).
BACKFILL_TAG = "gosales/backfill"      # every run of one `gosales backfill` / `gosales materialize` call
PIPELINE_TAG = "gosales/pipeline"      # "monthly": runs requested by the monthly schedule and its sensor
CUTOFF_TAG = "gosales/cutoff"          # the cutoff a pipeline run belongs to
DIVISION_TAG = "gosales/division"    # the division of a division × cutoff pipeline run
STAGE_TAG = "gosales/stage"            # cutoff | division | whitespace | validation | retrain
RUN_KEY_TAG = "gosales/run_key"        # idempotence key of a requested run
ALERT_TAG = "gosales/alert"            # set on a run whose results raised an alert (warn | hard)
ALERT_FILE_TAG = "gosales/alert_file"  # the consolidated alert file that reports it
