"""Leakage audits pass on the real builders and fail, on purpose, on leaky ones."""

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from gosales_assets.core.basket import market_basket_rules
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.features import build_customer_features
from gosales_assets import core
from gosales_assets.core.leakage import (
    feature_code_paths,
    invariance_customers,
    invariance_report,
    perturb_after_cutoff,
    scan_wall_clock,
    source_date_audit,
    time_order_violations,
)
from gosales_assets.settings import FeatureSettings

C = dt.date(2024, 6, 30)
DIVS = ["Solidworks", "Success Plan"]


def fact() -> pl.DataFrame:
    rows = [
        ("I1", 1, dt.date(2024, 1, 5), "A", "SWX-STD", "Solidworks", 1.0, 100.0, 40.0, None, False),
        ("I2", 1, dt.date(2024, 6, 30), "B", "SP-STD", "Success Plan", 1.0, 50.0, 10.0, None, False),
        ("I3", 1, dt.date(2024, 7, 1), "A", "SP-STD", "Success Plan", 1.0, 70.0, 10.0, None, False),
        ("I4", 1, dt.date(2024, 9, 9), "B", "SWX-STD", "Solidworks", 1.0, 90.0, 10.0, None, False),
    ]
    return pl.DataFrame(rows, orient="row", schema={
        "invoice_id": pl.String, "line_no": pl.Int64, "invoice_date": pl.Date, "customer_id": pl.String,
        "sku": pl.String, "division": pl.String, "quantity": pl.Float64, "revenue": pl.Float64,
        "gross_profit": pl.Float64, "rep_id": pl.String, "is_return": pl.Boolean})


DIM = pl.DataFrame({"customer_id": ["A", "B"], "customer_name": ["a", "b"], "industry": [None, None],
                    "sub_industry": [None, None], "region": ["W", "E"], "territory": ["W1", "E1"],
                    "employee_band": [None, None], "first_seen_date": [None, None]},
                   schema_overrides={"first_seen_date": pl.Date, "industry": pl.String, "sub_industry": pl.String,
                                     "employee_band": pl.String})


def test_perturbation_changes_only_post_cutoff_rows():
    f = fact()
    p = perturb_after_cutoff(f, C, seed=3)
    assert p.filter(pl.col("invoice_date") <= C).equals(f.filter(pl.col("invoice_date") <= C))
    post = p.filter(pl.col("invoice_date") > C)
    assert post.height > f.filter(pl.col("invoice_date") > C).height  # new customers were added
    assert post.get_column("customer_id").str.starts_with("LEAK-").any()


def test_source_date_audit_pass_and_fail():
    f = fact()
    ok = source_date_audit(f.filter(pl.col("invoice_date") <= C), C)
    assert ok.passed and ok.values["latest_source_date"] == "2024-06-30"
    bad = source_date_audit(f, C)
    assert not bad.passed and bad.values["rows_after_cutoff"] == 2 and "after cutoff" in bad.detail


def _features(rows):
    return build_customer_features(rows, DIM, C, DIVS, FeatureSettings())


def test_shift_and_perturbation_pass_for_real_builders():
    pre = fact().filter(pl.col("invoice_date") <= C)
    shift, perturb = invariance_report(_features, fact(), C, frame_checksum(_features(pre)))
    assert shift.passed and perturb.passed, (shift.values, perturb.values)

    def rules(rows):
        return market_basket_rules(rows, C, DIVS, min_support=0.0, min_confidence=0.0)

    assert all(r.passed for r in invariance_report(rules, fact(), C, frame_checksum(rules(pre))))


def test_invariance_fails_for_a_builder_that_reads_the_future():
    # Deliberately leaky: the builder forgets to filter and counts every row.
    def leaky(rows):
        return rows.group_by("customer_id").agg(pl.col("revenue").sum()).sort("customer_id")

    pre = fact().filter(pl.col("invoice_date") <= C)
    shift, perturb = invariance_report(leaky, fact(), C, frame_checksum(leaky(pre)))
    assert not shift.passed and not perturb.passed
    assert "leakage" in shift.detail and "leakage" in perturb.detail
    assert perturb.values["checksum_stored"] != perturb.values["checksum_perturbed"]


def test_invariance_fails_for_a_subtle_off_by_one_leak():
    # Reads one day past the cutoff (the kind of bug a `<` vs `<=` slip on C + 1 introduces).
    def off_by_one(rows):
        kept = rows.filter(pl.col("invoice_date") <= C + dt.timedelta(days=1))
        return kept.group_by("customer_id").agg(pl.col("revenue").sum()).sort("customer_id")

    pre = fact().filter(pl.col("invoice_date") <= C)
    shift, perturb = invariance_report(off_by_one, fact(), C, frame_checksum(off_by_one(pre)))
    assert not shift.passed and not perturb.passed


LEAKY_SOURCE = """
import datetime
import time as clock
from datetime import date, datetime as DT
from time import time as now_seconds

def features(df):
    a = datetime.datetime.utcnow()
    b = DT.now()
    c = date.today()
    d = clock.time()
    e = now_seconds()
    f = df.filter(df.x > 1)              # not a clock read
    g = pd.Timestamp.now()
    return datetime.date(2024, 1, 1)     # a constructor, not a clock read
"""


def test_static_scan_reports_every_wall_clock_call_with_file_and_line(tmp_path):
    src = tmp_path / "leaky_features.py"
    src.write_text(LEAKY_SOURCE)
    hits = scan_wall_clock([src])
    assert [(h.line, h.call) for h in hits] == [
        (8, "datetime.datetime.utcnow()"), (9, "DT.now()"), (10, "date.today()"), (11, "clock.time()"),
        (12, "now_seconds()"), (14, "pd.Timestamp.now()")]
    assert str(hits[0]) == f"{src}:8: datetime.datetime.utcnow()"


def test_feature_and_label_code_is_free_of_wall_clock_calls():
    assert scan_wall_clock(feature_code_paths()) == []
    assert len(feature_code_paths()) >= 6


def test_time_order_rule():
    assert time_order_violations(dt.date(2025, 6, 30), [(dt.date(2024, 12, 31), 6), (dt.date(2024, 9, 30), 6)]) == []
    bad = time_order_violations(dt.date(2025, 6, 30), [(dt.date(2025, 3, 31), 6), (dt.date(2024, 12, 31), 6)])
    assert bad == ["2025-03-31 + 6 months = 2025-09-30 > 2025-06-30"]


def test_core_does_not_import_dagster():
    for path in Path(core.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "import dagster" not in text and "from dagster" not in text, path


def _first_seen(n_known: int, n_later: int) -> pl.DataFrame:
    ids = [f"K{i:04d}" for i in range(n_known)] + [f"L{i:04d}" for i in range(n_later)]
    dates = [dt.date(2024, 1, 1)] * n_known + [dt.date(2024, 8, 1)] * n_later
    return pl.DataFrame({"customer_id": ids, "first_date": dates})


def test_invariance_customers_sample_only_above_the_cap():
    seen = _first_seen(120, 40)
    assert invariance_customers(seen, C, None, 7) is None
    assert invariance_customers(seen, C, 120, 7) is None  # every customer seen by C fits: the whole table
    picked = invariance_customers(seen, C, 50, 7)
    assert picked.len() == 55 and picked.is_sorted() and picked.n_unique() == 55
    assert picked.str.starts_with("K").sum() == 50 and picked.str.starts_with("L").sum() == 5  # a tenth, later
    # seeded, independent of row order, different for another seed
    assert invariance_customers(seen.sample(fraction=1.0, shuffle=True, seed=3), C, 50, 7).equals(picked)
    assert not invariance_customers(seen, C, 50, 8).equals(picked)


def _history(n_customers: int) -> pl.DataFrame:
    """Two lines per customer (one before C, one after) and a few customers first seen after C."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(n_customers):
        cust = f"K{i:04d}"
        rows.append((f"A{i}", 1, dt.date(2024, 3, 1 + i % 28), cust, "SWX-STD", "Solidworks", 1.0,
                     float(rng.integers(10, 500)), 1.0, None, False))
        rows.append((f"B{i}", 1, dt.date(2024, 8, 1 + i % 28), cust, "SP-STD", "Success Plan", 1.0,
                     float(rng.integers(10, 500)), 1.0, None, False))
    for i in range(10):
        rows.append((f"L{i}", 1, dt.date(2024, 9, 2), f"L{i:04d}", "SP-STD", "Success Plan", 1.0, 99.0, 1.0, None,
                     False))
    return pl.DataFrame(rows, orient="row", schema=fact().schema)


def test_sampled_invariance_passes_a_safe_builder_and_catches_a_leaky_one():
    hist = _history(300)
    first = hist.group_by("customer_id").agg(pl.col("invoice_date").min().alias("first_date"))
    sample = invariance_customers(first, C, 40, 11)
    rows = hist.filter(pl.col("customer_id").is_in(sample.implode()))
    assert rows.get_column("customer_id").n_unique() == 44  # 40 known by C, 4 (a tenth) first seen after

    def safe(r):
        return (r.filter(pl.col("invoice_date") <= C).group_by("customer_id").agg(pl.col("revenue").sum())
                .sort("customer_id"))

    shift, perturb = invariance_report(safe, rows, C, None, seed=2)
    assert shift.passed and perturb.passed
    assert shift.values["sample_customers"] == 44 and "checksum_stored" not in shift.values
    assert shift.values["checksum_reference"] == frame_checksum(safe(rows.filter(pl.col("invoice_date") <= C)))
    assert "44 sampled customers" in shift.detail

    def leaky(r):
        return r.group_by("customer_id").agg(pl.col("revenue").sum()).sort("customer_id")

    shift, perturb = invariance_report(leaky, rows, C, None, seed=2)
    assert not shift.passed and not perturb.passed and "leakage" in shift.detail


def test_cutoff_assets_check_invariance_on_a_sample_of_the_customers(make_project):
    """Above `leakage.invariance_max_customers` the three cutoff assets' shift and perturbation checks rebuild them
    on every row of a seeded sample of the customers (and pass, on real builders); at or below it, on the whole
    history against the stored output, as before."""
    from dagster import DagsterInstance

    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets_tests.conftest import CUTOFF_ASSETS, check_results

    for cap, sampled in ((60, True), (None, False)):
        project = make_project({"cutoffs": ["2025-06-30"], "leakage": {"invariance_max_customers": cap}},
                               name=f"cap_{cap}")
        generate_demo_data(project.settings.landing_dir, customers=300, seed=7, settings=project.settings,
                           ground_truth=False)
        instance = DagsterInstance.ephemeral()
        assert project.materialize(instance=instance).success
        result = project.materialize(CUTOFF_ASSETS, instance=instance, partition_key="2025-06")
        assert result.success
        checks = check_results(result)
        for asset in CUTOFF_ASSETS:
            for name in ("shift_test", "post_cutoff_invariance"):
                check = checks[(asset, name)]
                assert check.passed, (asset, name, check.description)
                values = {k: v.value for k, v in check.metadata.items()}
                if sampled:
                    assert 60 <= values["sample_customers"] <= 66 and "checksum_stored" not in values
                    assert "sampled customers" in check.description
                else:
                    assert "sample_customers" not in values and "checksum_stored" in values


def test_the_customer_features_are_stored_while_their_leakage_rebuilds_run(make_project, monkeypatch):
    """The cutoff's step stores the customer features' file as soon as they are built, while their leakage rebuilds
    run in its pool: a rebuild made to wait for that file passes (a step that stored the file only after every
    rebuild would wait for it in vain and fail), and the checks pass as in any run."""
    import time

    from dagster import DagsterInstance

    import gosales_assets.assets.features as features_assets
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.resources import cutoff_file
    from gosales_assets_tests.conftest import CUTOFF_ASSETS, check_results

    project = make_project({"cutoffs": ["2025-06-30"]})
    generate_demo_data(project.settings.landing_dir, customers=300, seed=7, settings=project.settings,
                       ground_truth=False)
    instance = DagsterInstance.ephemeral()
    assert project.materialize(instance=instance).success
    stored = cutoff_file(project.settings.warehouse_path, "customer_features", dt.date(2025, 6, 30))
    real_checks, waited = features_assets._leakage_checks, []

    def after_the_file_is_stored(asset_name, *args, **kwargs):
        if asset_name == "customer_features":
            deadline = time.monotonic() + 30
            while not stored.is_file():
                assert time.monotonic() < deadline, "the customer features were not stored before their rebuilds"
                time.sleep(0.05)
            waited.append(asset_name)
        return real_checks(asset_name, *args, **kwargs)

    monkeypatch.setattr(features_assets, "_leakage_checks", after_the_file_is_stored)
    result = project.materialize(CUTOFF_ASSETS, instance=instance, partition_key="2025-06")
    assert result.success and waited == ["customer_features"]
    checks = check_results(result)
    assert all(checks[(asset, name)].passed for asset in CUTOFF_ASSETS
               for name in ("source_date_audit", "shift_test", "post_cutoff_invariance"))


def test_the_cutoff_builds_start_while_the_rebuilds_rows_are_read_and_the_stats_follow_the_file(make_project,
                                                                                                monkeypatch):
    """The cutoff's step starts its builds as soon as the lines dated <= C are read, while it reads the leakage
    rebuilds' rows (a read made to wait for a build to start passes; a step that read them before starting any build
    would wait in vain and fail), and writes the customer features' per-feature stats after their file is stored (a
    stats write made to wait for that file passes). The stats file is there when the step ends, and every check
    passes as in any run."""
    import json
    import threading
    import time

    from dagster import DagsterInstance

    import gosales_assets.assets.features as features_assets
    from gosales_assets.core.features import feature_stats
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.resources import cutoff_file, read_cutoff_table
    from gosales_assets_tests.conftest import CUTOFF_ASSETS, check_results

    project = make_project({"cutoffs": ["2025-06-30"]})
    generate_demo_data(project.settings.landing_dir, customers=300, seed=7, settings=project.settings,
                       ground_truth=False)
    instance = DagsterInstance.ephemeral()
    assert project.materialize(instance=instance).success
    cutoff = dt.date(2025, 6, 30)
    stored = cutoff_file(project.settings.warehouse_path, "customer_features", cutoff)
    stats_file = project.settings.artifacts_dir / "features" / cutoff.isoformat() / "feature_stats.json"
    building, waited = threading.Event(), []
    real_build, real_rows, real_stats = (features_assets.build_customer_features, features_assets.invariance_rows,
                                         features_assets._write_feature_stats)

    def build(*args, **kwargs):
        building.set()
        return real_build(*args, **kwargs)

    def rows_once_a_build_runs(*args, **kwargs):
        assert building.wait(30), "no build started while the rebuilds' rows were read"
        waited.append("rows")
        return real_rows(*args, **kwargs)

    def stats_after_the_file(*args, **kwargs):
        deadline = time.monotonic() + 30
        while not stored.is_file():
            assert time.monotonic() < deadline, "the customer features' stats were written before their file"
            time.sleep(0.05)
        waited.append("stats")
        return real_stats(*args, **kwargs)

    monkeypatch.setattr(features_assets, "build_customer_features", build)
    monkeypatch.setattr(features_assets, "invariance_rows", rows_once_a_build_runs)
    monkeypatch.setattr(features_assets, "_write_feature_stats", stats_after_the_file)
    assert not stored.is_file() and not stats_file.is_file()  # the cutoff's step has not run yet
    result = project.materialize(CUTOFF_ASSETS, instance=instance, partition_key="2025-06")
    assert result.success and sorted(waited) == ["rows", "stats"]
    checks = check_results(result)
    assert all(checks[(asset, name)].passed for asset in CUTOFF_ASSETS
               for name in ("source_date_audit", "shift_test", "post_cutoff_invariance"))
    features = read_cutoff_table(project.settings.warehouse_path, "customer_features", cutoff).drop("cutoff_date")
    written = json.loads(stats_file.read_text())
    assert written == json.loads(json.dumps(feature_stats(features, checksum=written["checksum"])))
    mat = result.asset_materializations_for_node("cutoff_features")
    meta = next(m.metadata for m in mat if m.asset_key.to_user_string() == "customer_features")
    assert meta["n_features"].value == written["n_features"] > 100
    assert meta["feature_stats_path"].value == str(stats_file) and meta["checksum"].value == written["checksum"]
