"""The raw and star assets materialized for real (DuckDB file in a tmp dir, Dagster materialize)."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from gosales_assets_tests.conftest import check_results, materialized

HEADER = "invoice_id,line_no,invoice_date,customer_id,sku,quantity,revenue,gross_profit,rep_id,division"
CLEAN = [
    "INV-1,1,2024-01-05,C1,SWX-STD,2,10000,4000,R1,Solidworks",
    "INV-1,2,2024-01-05,C1,MNT-SWX-STD,2,2400,,R1,Maintenance",
    "INV-2,1,2024-03-29,C2,PP-WASH,1,8000,2500,,Post_Processing",
    "INV-3,1,2024-04-02,C1,SP-STD,1,1500,600,R1,Success Plan",
    "CR-1,1,2024-04-20,C1,SP-STD,-1,-1500,-600,R1,Success Plan",
]
DIRTY = [
    "INV-1,2,2024-01-05,C1,MNT-SWX-STD,2,2400,,R1,Maintenance",  # duplicate_line
    "INV-9,1,2024-02-30,C1,SWX-STD,1,5000,2000,R1,Solidworks",   # unparseable_date
    "INV-8,1,2024-02-10,C2,pp-wash,1,100,10,,Post_Processing",   # unknown_sku
    "INV-7,1,2024-02-10,C2,PP-WASH,1,100,10,,post_processing",   # noncanonical_division
]
CUSTOMERS = """customer_id,customer_name,industry,sub_industry,region,territory,employee_band,first_seen_date
C1,Alpha Tooling,Machinery,,West,West-01,11-50,2019-01-01
C2,Beta Devices,Medical Devices,,East,East-02,,
C3,Gamma Parts,,,Central,Central-01,1-10,2021-06-30
"""


def write_landing(project, sales_lines: list[str], customers: str = CUSTOMERS) -> Path:
    landing = project.settings.landing_dir
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "sales_log.csv").write_text("\n".join([HEADER, *sales_lines]) + "\n")
    (landing / "customers.csv").write_text(customers)
    return landing


def test_star_assets_on_mostly_clean_data(make_project):
    project = make_project({"contracts": {"max_violation_rate": 0.5}})
    write_landing(project, CLEAN + DIRTY)
    result = project.materialize()
    assert result.success
    checks = check_results(result)
    assert all(ev.passed for ev in checks.values()), {k: ev.description for k, ev in checks.items()}

    fact, viol, raw = project.table("fact_transactions"), project.table("contract_violations"), project.table("sales_log")
    assert raw.height == 9 and fact.height == 5
    assert viol.filter(pl.col("source_table") == "sales_log").height == 4
    assert sorted(viol.get_column("rule").to_list()) == ["duplicate_line", "noncanonical_division", "unknown_sku",
                                                         "unparseable_date"]
    assert viol.filter(pl.col("rule") == "duplicate_line").item(0, "source_row") == 6
    assert fact.get_column("division").unique().sort().to_list() == ["Maintenance", "Post_Processing",
                                                                     "Solidworks", "Success Plan"]
    assert project.table("dim_customer").height == 3
    events = project.table("fact_events")
    assert events.height == 4 and events.filter(pl.col("invoice_id") == "INV-1").item(0, "revenue") == 12400.0

    # Metadata a person looks at; the resolved config recorded for the run.
    mats = {e.asset_key.to_user_string(): e.step_materialization_data.materialization for e in result.all_events
            if e.is_step_materialization}
    meta = {k: v.value for k, v in mats["fact_transactions"].metadata.items()}
    assert meta["dagster/row_count"] == 5 and meta["date_min"] == "2024-01-05" and meta["date_max"] == "2024-04-20"
    assert len(meta["checksum"]) == 64 and meta["config_checksum"] == project.settings.checksum
    vmeta = {k: v.value for k, v in mats["contract_violations"].metadata.items()}
    assert "| sales_log | unknown_sku | 1 |" in vmeta["violations_by_rule"]
    resolved = project.settings.artifacts_dir / "runs" / result.run_id / "config_resolved.yaml"
    assert resolved.is_file() and "max_violation_rate: 0.5" in resolved.read_text()


def test_violation_rate_above_limit_blocks_downstream(project):
    write_landing(project, CLEAN + DIRTY)  # 4 of 9 rows rejected; default limit 5 %
    result = project.materialize()
    assert not result.success
    ev = check_results(result)[("fact_transactions", "violation_rate")]
    assert not ev.passed and "4 of 9 sales_log rows quarantined (44.44%; limit 5.00%)" in ev.description
    assert "fact_events" not in materialized(result)
    # write, audit, publish: a held batch stores nothing at all
    assert not {"fact_transactions", "dim_customer", "contract_violations", "fact_events"} & project.table_names()


def test_a_rejected_batch_never_replaces_the_published_star(project):
    from gosales_assets.core.checksum import frame_checksum

    star = ["fact_transactions", "dim_customer", "contract_violations", "fact_events"]
    write_landing(project, CLEAN)
    assert project.materialize().success
    before = {t: frame_checksum(project.table(t)) for t in star}
    write_landing(project, CLEAN + DIRTY)  # a new batch with 44 % of its rows quarantined: held (limit 5 %)
    result = project.materialize()
    assert not result.success
    checks = check_results(result)
    assert not checks[("fact_transactions", "violation_rate")].passed
    assert checks[("fact_transactions", "reconciles_with_sales_log")].passed  # every check was still evaluated
    assert not {"fact_transactions", "dim_customer", "contract_violations", "fact_events"} & materialized(result)
    assert {t: frame_checksum(project.table(t)) for t in star} == before


def test_bad_input_fails_clearly_and_leaves_warehouse_untouched(make_project):
    project = make_project({"contracts": {"max_violation_rate": 0.5}})
    landing = write_landing(project, CLEAN)
    assert project.materialize().success
    before = project.table("sales_log")

    header_without_revenue = HEADER.replace(",revenue", "")
    (landing / "sales_log.csv").write_text(header_without_revenue + "\nINV-5,1,2024-01-05,C1,SWX-STD,2,4000,R1,\n")
    result = project.materialize(["sales_log"])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    msg = failure.step_failure_data.error.cause.message if failure.step_failure_data.error.cause else \
        failure.step_failure_data.error.message
    assert str(landing / "sales_log.csv") in msg and "['revenue']" in msg
    assert project.table("sales_log").equals(before)

    (landing / "sales_log.csv").write_text("")
    result = project.materialize(["sales_log"])
    assert not result.success
    assert project.table("sales_log").equals(before)


def test_definitions_validate(tmp_path):
    env = {**os.environ, "GOSALES_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dh")}
    (tmp_path / "dh").mkdir()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "gosales_assets.definitions"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr
