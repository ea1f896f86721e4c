"""The `gosales_backfill` job: `gosales backfill` as a job the UI can launch (Launchpad config = the CLI flags).

One run, one process: its op runs the runner's backfill, which executes every partition of the chosen cutoffs
in dependency order as its own run (so each keeps its own blocking checks, and shows in the run list, tagged
with the backfill id). No `from __future__ import annotations` here: Dagster reads the op's config and resource
types from its annotations at definition time.
"""

from dagster import Config, Failure, JobDefinition, OpExecutionContext, job, op

from gosales_assets.jobs import BACKFILL_JOB
from gosales_assets.resources import ArtifactStore, GosalesSettings
from gosales_assets.runner import backfill, stopped_or_failed


class BackfillConfig(Config):
    """Launchpad config of the `gosales_backfill` job (the same choices as `gosales backfill`)."""

    cutoffs: list[str] = []    # month-end dates; empty = every registered and configured cutoff
    divisions: list[str] = []  # empty = all
    skip_star: bool = False
    skip_reports: bool = False


@op(description="Runs `gosales backfill` inside this run: every partition of the chosen cutoffs in dependency "
    "order, each as its own run in this process.")
def backfill_cutoffs(context: OpExecutionContext, config: BackfillConfig, settings: GosalesSettings,
                     artifacts: ArtifactStore) -> None:
    from gosales_assets.definitions import build_definitions  # here: definitions imports this module

    cfg = settings.get()
    defs = build_definitions(cfg, settings.config_path)
    try:
        outcomes = backfill(defs, context.instance, cfg, cutoffs=config.cutoffs or None,
                            divisions=config.divisions or None, star=not config.skip_star,
                            reports=not config.skip_reports, log=context.log.info)
    except ValueError as err:
        raise Failure(str(err)) from None
    failed = stopped_or_failed(outcomes)
    table = "\n".join(["| run | job | partition | status |", "|---|---|---|---|"] + [
        f"| {o.run_id[:8]} | {o.job} | {o.partition or ''} | "
        f"{'ok' if o.success else 'held' if o.blocked_by_checks else 'FAILED'} |" for o in outcomes])
    path = artifacts.write_text(["runs", context.run_id, "backfill_outcomes.md"], table + "\n")
    context.log.info(f"{len(outcomes)} runs, {len(failed)} failed, {sum(o.blocked_by_checks for o in outcomes)} "
                     f"held; outcomes in {path}")
    if failed:
        raise Failure(f"{len(failed)} of {len(outcomes)} runs failed (or the star schema was held back): "
                      + ", ".join(f"{o.job} {o.partition or ''} ({o.run_id[:8]})" for o in failed[:10]))


@job(name=BACKFILL_JOB, description="Backfill the whole graph over chosen cutoffs (and divisions) in one run and "
     "one process; new cutoffs are registered. Set the cutoffs in the Launchpad config. CLI: `gosales backfill`.")
def backfill_job() -> None:
    backfill_cutoffs()


def build_backfill_job() -> JobDefinition:
    return backfill_job
