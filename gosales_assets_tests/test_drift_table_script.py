"""benchmarks/drift_table.py: how a world's drift rows are scored against the planted scenario (pure parts)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gosales_assets_tests.benchmark_scripts import loaded_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "drift_table.py"


@pytest.fixture(scope="module")
def table():
    yield from loaded_script(SCRIPT, "drift_table_script")


SKU_MAP = {"HW-CONS-FIL": "Hardware", "HW-CONS-RES": "Hardware", "PP-SUPPORT": "Post_Processing"}
SLUGS = {"Hardware": "hardware", "Post_Processing": "post_processing", "Solidworks": "solidworks"}


def _row(cutoff, division, kind, subject, severity="hard", value=-0.5, z=-6.0):
    return {"division": division, "cutoff_date": dt.date.fromisoformat(cutoff), "kind": kind, "subject": subject,
            "value": value, "severity": severity, "z": z, "action": "do something", "noise": False}


def test_expected_subjects(table):
    assert table.expected_subjects({"subject": {"region": "West"}}, SKU_MAP) == {"region=West"}
    assert table.expected_subjects({"subject": {"skus": ["HW-CONS-FIL", "HW-CONS-RES"], "to_sku": "PP-SUPPORT"}},
                                   SKU_MAP) == {"division=Hardware", "division=Post_Processing"}
    assert table.expected_subjects(None, SKU_MAP) == set()
    price = table.expected_subjects({"subject": {"division": "Solidworks"}}, SKU_MAP)
    assert table.names_subject({"subject": "rfm__solidworks__revenue_sum__3m"}, price, SLUGS)
    assert not table.names_subject({"subject": "rfm__hardware__revenue_sum__3m"}, price, SLUGS)


def test_score_world_first_alert_subject_false_and_label_window_alerts(table):
    manifest = {"subject": {"region": "West"}, "first_cutoff": "2026-06-30", "from_month": "2026-04"}
    rows = [
        _row("2026-06-30", "PDM", "segment_invoices", "region=West"),
        _row("2026-06-30", "PDM", "score_psi", "score", value=0.3, z=None),
        _row("2026-06-30", "Training", "segment_invoices", "region=West", z=-7.0),
        _row("2026-03-31", "Training", "prevalence_shift", "prevalence", value=1.2, z=4.0),  # window Apr-Sep 2026
        _row("2025-12-31", "PDM", "feature_psi", "rfm__all__txn_count__3m", value=0.3, z=None),  # false
        _row("2025-12-31", "PDM", "segment_invoices", "region=East", severity="info"),
    ]
    r = table.score_world("territory_slump", "territory_slump", 7, rows, manifest, SKU_MAP, SLUGS,
                          {"PDM": 6, "Training": 6}, 12)
    assert r["first_alert_cutoff"] == "2025-12-31" and r["expected_first_cutoff"] == "2026-06-30"
    assert r["subject_named"] and r["named_finding"]["division"] == "Training"  # the strongest (|z| 7)
    assert r["partitions_naming_subject"] == 2 and r["hard_partitions_at_expected"] == 2
    assert r["false_alert_partitions"] == ["2025-12-31|PDM"]
    assert r["label_window_alert_partitions"] == ["2026-03-31|Training"]
    stationary = table.score_world("none_7", None, 7, rows[4:], None, SKU_MAP, SLUGS, {"PDM": 6}, 12)
    assert stationary["first_alert_cutoff"] == "2025-12-31" and not stationary["subject_named"]
    assert stationary["false_alert_partitions"] == ["2025-12-31|PDM"]
    text = table.render_table([r, stationary])
    assert "`segment_invoices` `region=West`" in text and "**1**: 2025-12-31 PDM feature_psi" in text


def test_replace_between_markers(table):
    doc = f"# D\n\n{table.START}\nold\n{table.END}\n\nrest\n"
    assert table.replace_between(doc, "new\n") == f"# D\n\n{table.START}\nnew\n{table.END}\n\nrest\n"
    assert table.replace_between("# D\n", "x\n").endswith(f"{table.START}\nx\n{table.END}\n")
