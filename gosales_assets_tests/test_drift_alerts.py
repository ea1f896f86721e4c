"""The alert text of drift findings (automation/alerts.py): the strongest finding's action, and one entry per subject
across partitions (a segment's change shows in every division of the cutoff)."""

from __future__ import annotations

import datetime as dt

from gosales_assets.automation.alerts import (
    alert_subjects,
    check_item,
    consolidated_alert,
    drift_item,
    retrain_partitions,
)
from gosales_assets.core.drift import DriftFinding, alerts_json

WEST = DriftFinding("segment_invoices", "region=West", -0.46, "hard", 260.0, 140.0,
                    "region West: its customers' buying fell to ×0.54 ...", -6.9, "invoices ...")
PREV = DriftFinding("prevalence_shift", "prevalence", 0.6, "warn", 0.02, 0.032, "check labels ...", 3.4, "...")
QUIET = DriftFinding("segment_invoices", "region=East", 0.02, "info", 300.0, 306.0, "no action needed", 0.3, "")


def _item(partition: str, findings: list[DriftFinding]):
    report = alerts_json(findings, partition.split("|")[1], dt.date(2026, 6, 30))
    return drift_item(partition, f"run-{partition}", report["max_severity"], report)


def test_drift_item_names_the_strongest_subject_and_its_action():
    item = _item("2026-06|PDM", [PREV, QUIET, WEST])
    assert item.severity == "hard" and item.action.startswith("region West")
    assert [f["subject"] for f in item.findings] == ["region=West", "prevalence"]  # info left out, worst first
    assert item.summary == ("region=West (segment_invoices -0.46, z -6.9, hard); "
                            "prevalence (prevalence_shift +0.6, z +3.4, warn)")


def test_alert_subjects_read_one_change_across_partitions():
    items = [_item("2026-06|PDM", [WEST, PREV]), _item("2026-06|Training", [WEST, QUIET]),
             check_item("division_model", "promotion_gate", "2026-06|CPE", "run-x", "held")]
    subjects = alert_subjects(items)
    assert [(s["subject"], s["severity"], s["partitions"]) for s in subjects] == [
        ("region=West", "hard", ["2026-06|PDM", "2026-06|Training"]),
        ("prevalence", "warn", ["2026-06|PDM"]),
    ]
    assert subjects[0]["kinds"] == ["segment_invoices"] and subjects[0]["action"].startswith("region West")
    doc = consolidated_alert(items, {"drift": 0, "checks": 0}, {"drift": 2, "checks": 1})
    assert doc["subjects"] == subjects and doc["max_severity"] == "hard"


def test_retraining_is_requested_for_hard_drift_that_did_not_come_from_a_retraining():
    hard, warn, again = _item("2026-06|PDM", [WEST]), _item("2026-06|CAD", [PREV]), _item("2026-03|PDM", [WEST])
    check = check_item("division_model", "promotion_gate", "2026-06|CPE", "run-x", "held")
    assert retrain_partitions([hard, warn, again, check], retrain_runs=set()) == ["2026-03|PDM", "2026-06|PDM"]
    # the drift of a retraining run does not request another (no retrain loops)
    assert retrain_partitions([hard, again], retrain_runs={again.run_id}) == ["2026-06|PDM"]
