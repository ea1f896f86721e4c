"""The runner tells a run held back by a blocking check from a run that failed with an error."""

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    DagsterInstance,
    Definitions,
    Output,
    asset,
    define_asset_job,
)

from gosales_assets.definitions import STAR_JOB
from gosales_assets.runner import materialize_all


def _defs(fail_with_error: bool) -> Definitions:
    @asset(check_specs=[AssetCheckSpec("gate", asset="thing", blocking=True)])
    def thing():
        if fail_with_error:
            raise RuntimeError("boom")
        yield Output(1)
        yield AssetCheckResult(check_name="gate", passed=False, severity=AssetCheckSeverity.ERROR,
                               description="auc 0.5 < 0.7 (short by 0.2)")

    return Definitions(assets=[thing], jobs=[define_asset_job(STAR_JOB, selection=["thing"])])


@pytest.mark.parametrize("fail_with_error, blocked", [(False, True), (True, False)])
def test_held_vs_failed(project, fail_with_error, blocked):
    lines: list[str] = []
    outcomes = materialize_all(_defs(fail_with_error), DagsterInstance.ephemeral(), project.settings, log=lines.append)
    assert len(outcomes) == 1  # the star job failed, so nothing downstream was attempted
    assert not outcomes[0].success and outcomes[0].blocked_by_checks is blocked
    status = next(line for line in lines if STAR_JOB in line)
    assert status.startswith("held" if blocked else "FAIL")
    assert lines[-1] == "star schema failed; not materializing downstream partitions"
    if blocked:
        assert "short by 0.2" in outcomes[0].failed_checks[0]
    else:
        assert "       error: RuntimeError: boom" in lines
