"""`ranking_decision` and `whitespace` materialized by Dagster on a hand-made warehouse: the list at C follows the
decision's champion, a clear win over the closed windows changes it, too few windows keep it with the reason."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading

import duckdb
import polars as pl
import pytest
from dagster import DagsterInstance

from gosales_assets.core.calendar import add_months
from gosales_assets.partitions import cutoff_key
from gosales_assets.resources import write_partition
from gosales_assets_tests.conftest import (
    after_the_other_starts,
    check_results,
    latest_metadata,
    materialized,
    new_project,
)

D = dt.date
C1, C2, C3 = D(2025, 3, 31), D(2025, 6, 30), D(2025, 9, 30)
DIVS = ["Simulation", "PDM"]
ASSETS = ["ranking_decision", "whitespace", "whitespace_thresholds", "capacity_summary", "whitespace_metrics"]
N = 200  # customers
COHORT = 40  # the customers who buy Simulation after each cutoff


def _world(project) -> None:
    """Customers c000..c199. At each cutoff Ck, cohort k (40 customers) has the highest Simulation probability; the
    first cohort buys Simulation two months after C1; PDM probabilities are all low and nobody buys PDM. Ordered by
    p_icp across divisions, the top 10 % of C1's ~400 pairs is the first cohort's Simulation pairs (capture 1); the
    blend ranks within each division, so its top 10 % is half Simulation, half PDM (capture 1/2)."""
    ids = [f"c{i:03d}" for i in range(N)]
    dim = pl.DataFrame({"customer_id": ids, "customer_name": [f"Customer {i}" for i in range(N)],
                        "industry": ["Mfg"] * N, "sub_industry": [None] * N, "region": ["East"] * N,
                        "territory": ["T1"] * N, "employee_band": ["1-50"] * N, "first_seen_date": [D(2020, 1, 1)] * N},
                       schema_overrides={"sub_industry": pl.String})
    fact, scores = [], []
    for k, cutoff in enumerate((C1, C2, C3)):
        cohort = ids[k * COHORT:(k + 1) * COHORT]
        # Only the first cohort buys (the windows of later cutoffs stay open in the test; an overlapping purchase
        # would count in C1's window too)
        for j, c in enumerate(cohort if k == 0 else []):
            fact.append((f"i{k}{j}", 1, add_months(cutoff, 2), c, "SIM-STD", "Simulation", 1.0, 1000.0 + j, None,
                         "r1", False))
        owners = set(ids[:COHORT]) if k else set()  # the first cohort owns Simulation after C1
        for i, c in enumerate(ids):
            if c not in owners:
                top = c in cohort
                scores.append((c, "Simulation", (0.9 if top else 0.3) - i / 10_000, int(top), cutoff))
            scores.append((c, "PDM", 0.1 - i / 10_000, 0, cutoff))
    fact_df = pl.DataFrame(fact, schema={"invoice_id": pl.String, "line_no": pl.Int64, "invoice_date": pl.Date,
                                         "customer_id": pl.String, "sku": pl.String, "division": pl.String,
                                         "quantity": pl.Float64, "revenue": pl.Float64, "gross_profit": pl.Float64,
                                         "rep_id": pl.String, "is_return": pl.Boolean}, orient="row")
    icp = pl.DataFrame(scores, schema={"customer_id": pl.String, "division": pl.String, "icp_score": pl.Float64,
                                       "bought_in_division": pl.Int8, "cutoff_date": pl.Date}, orient="row")
    project.settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(project.settings.warehouse_path)) as conn:
        for name, frame in (("dim_customer", dim), ("fact_transactions", fact_df), ("icp_scores", icp)):
            conn.register("_f", frame.to_arrow())
            conn.execute(f"create table {name} as select * from _f")
            conn.unregister("_f")
        conn.execute("create table market_basket_rules (cutoff_date date, antecedent varchar, consequent varchar, "
                     "support double, confidence double, lift double, passes_thresholds boolean)")
    for cutoff in (C1, C2, C3):  # no ALS signal (the cutoff table is a file beside the warehouse)
        write_partition(project.settings.warehouse_path, "als_embeddings", cutoff_key(cutoff), pl.DataFrame(
            schema={"customer_id": pl.String, "cutoff_date": pl.Date, "division": pl.String,
                    "als_similarity": pl.Float64, "als_coverage": pl.Boolean}))


def _project(root, ranking: dict):
    project = new_project(root, {"cutoffs": [str(C1), str(C2), str(C3)],
                                 "whitespace": {"ranking": {"bootstrap_reps": 500, **ranking}}}, only_divisions=DIVS)
    _world(project)
    return project


def _list(project, cutoff: dt.date) -> pl.DataFrame:
    return project.table("whitespace").filter(pl.col("cutoff_date") == cutoff).sort("rank")


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    """Initial champion blend, one closed window is enough (N = 1): C1 and C2 have none, at C3 the list of C1 has
    closed (C1 + 6 months = C3) and p_icp clearly beats the blend on it."""
    project = _project(tmp_path_factory.mktemp("decided"), {"initial_champion": "blend", "windows": 1})
    instance = DagsterInstance.ephemeral()
    results = {c: project.materialize(ASSETS, instance=instance, partition_key=cutoff_key(c)) for c in (C1, C2, C3)}
    return project, instance, results


def test_too_few_closed_windows_keep_the_initial_champion_and_the_list_follows_it(decided):
    project, _, results = decided
    assert results[C1].success and materialized(results[C1]) == set(ASSETS)
    assert check_results(results[C1])[("ranking_decision", "contract")].passed
    first = project.table("ranking_decision").filter(pl.col("cutoff_date") == C1)
    assert first.height == 4 and set(first["champion"]) == {"blend"} and not first["changed"].any()
    assert set(first["reason"]) == {"kept: only 0 closed windows of 1"}
    ws = _list(project, C1)
    assert set(ws["ordering"]) == {"blend"} and ws["score"].to_list() == ws["score_blend"].to_list()
    metrics = json.loads(project.table("whitespace_metrics").filter(pl.col("cutoff_date") == C1)
                         .item(0, "metrics_json"))
    assert metrics["ordering"]["champion"] == "blend"
    assert "ranking_decision at 2025-03-31" in metrics["ordering"]["note"]
    # the decision's files live beside the list's
    d = project.settings.artifacts_dir / "whitespace" / str(C1)
    assert {f"ranking_decision_{C1}.png", f"ranking_decision_{C1}.json", f"ranking_windows_{C1}.csv",
            f"whitespace_{C1}.csv"} <= {p.name for p in d.iterdir()}


def test_a_clear_win_on_the_closed_window_changes_the_champion_and_the_list_follows(decided):
    project, instance, results = decided
    assert results[C3].success and results[C2].success
    second = project.table("ranking_decision").filter(pl.col("cutoff_date") == C2)
    assert set(second["reason"]) == {"kept: only 0 closed windows of 1"}  # C1 + 6 months is after C2
    row = {r["ordering"]: r for r in project.table("ranking_decision").filter(pl.col("cutoff_date") == C3)
           .iter_rows(named=True)}
    assert row["p_icp"]["role"] == "champion" and row["p_icp"]["champion_before"] == "blend"
    assert row["p_icp"]["changed"] and row["p_icp"]["window_cutoffs"] == str(C1)
    # on C1's list (40 buyers, 400 pairs, top 40): p_icp finds every buyer, the blend half of them
    assert row["p_icp"]["capture_count"] == 1.0 and row["blend"]["capture_count"] == 0.5
    assert row["p_icp"]["diff_vs_champion"] == pytest.approx(row["p_icp"]["capture_revenue"]
                                                            - row["blend"]["capture_revenue"])
    assert row["p_icp"]["ci_low"] > 0 and row["p_icp"]["reason"].startswith("changed: p_icp beat blend")
    assert row["legacy"]["role"] == "shadow" and row["expected_value"]["role"] == "challenger"
    windows = pl.read_csv(project.settings.artifacts_dir / "whitespace" / str(C3) / f"ranking_windows_{C3}.csv")
    assert windows.height == 4 and set(windows["window_cutoff"]) == {str(C1)} and set(windows["purchases"]) == {40}
    meta = latest_metadata(instance, "ranking_decision")
    assert meta["champion"] == "p_icp" and meta["changed"] is True and meta["windows"].startswith("1 of 1")
    # the step says so in its log, as a warning (a changed champion changes what reps see)
    warnings = [e.user_message for e in instance.all_logs(results[C3].run_id) if e.level == logging.WARNING]
    assert any(m.startswith(f"ranking_decision {cutoff_key(C3)}: p_icp — changed: p_icp beat blend")
               for m in warnings), warnings
    assert "data:image/png;base64," in meta["chart"]
    # the list at C3 follows p_icp: score is the probability, ranks in its order, capacity and reasons with it
    ws = _list(project, C3)
    assert set(ws["ordering"]) == {"p_icp"}
    assert ws["score"].to_list() == ws["score_p_icp"].to_list() == sorted(ws["p_icp"], reverse=True)
    # the capacity plan takes rows in that order up to the division cap: Simulation's best (ranks 1..k), then PDM's
    plan = ws.filter(pl.col("selected"))
    sim, pdm = (plan.filter(pl.col("division") == d) for d in ("Simulation", "PDM"))
    assert sim.height == pdm.height > 0 and sim["rank"].to_list() == list(range(1, sim.height + 1))
    assert pdm["rank_in_division"].to_list() == list(range(1, pdm.height + 1))
    assert all("affinity" not in r for r in ws["nba_reason"])
    assert check_results(results[C3])[("whitespace", "contract")].passed


def test_the_configured_initial_champion_orders_the_first_list(tmp_path):
    project = _project(tmp_path / "p", {"initial_champion": "p_icp"})
    result = project.materialize(ASSETS, partition_key=cutoff_key(C1))
    assert result.success
    decision = project.table("ranking_decision")
    assert set(decision["champion"]) == {"p_icp"} and set(decision["reason"]) == {"kept: only 0 closed windows of 3"}
    ws = _list(project, C1)
    # score equals the probability, in the list's order; every other ordering's score is kept beside it
    assert ws["score"].to_list() == ws["score_p_icp"].to_list() == sorted(ws["p_icp"], reverse=True)
    assert ws["score_blend"].null_count() == 0 and ws["score_expected_value"].null_count() == 0
    assert ws["score_legacy"].null_count() == 0
    assert ws.head(COHORT)["division"].to_list() == ["Simulation"] * COHORT


def test_the_decision_is_made_beside_the_lists_signals(tmp_path, monkeypatch):
    from gosales_assets.assets import whitespace as whitespace_assets
    from gosales_assets.core import whitespace as core_whitespace

    project = _project(tmp_path, {"initial_champion": "blend", "windows": 1})
    # The decision and the list's first signal each wait for the other to start: a step that decided first and
    # listed after (or the reverse) would break the barrier and fail.
    both_started = threading.Barrier(2, timeout=30)
    monkeypatch.setattr(whitespace_assets, "_decide", after_the_other_starts(both_started, whitespace_assets._decide))
    monkeypatch.setattr(core_whitespace, "whitespace_inputs",
                        after_the_other_starts(both_started, core_whitespace.whitespace_inputs))
    result = project.materialize(ASSETS, instance=DagsterInstance.ephemeral(), partition_key=cutoff_key(C1))
    assert result.success and materialized(result) == set(ASSETS)
    assert set(_list(project, C1)["ordering"]) == {"blend"}


def test_the_list_is_a_file_beside_the_warehouse_written_without_its_lease(tmp_path, monkeypatch):
    """The list of a cutoff is a Parquet file beside the warehouse (resources.files_dir), stored while the run does
    not hold the warehouse's lease, and the warehouse's `whitespace` is a view with its rows. A warehouse that still
    has the list as a table (an engine from before) gets it moved out to files by the next run, which reads it."""
    from gosales_assets import resources

    project = _project(tmp_path / "p", {"initial_champion": "p_icp"})
    db = project.settings.warehouse_path
    stored = []
    real = resources.write_partition

    def noting_the_lease(database, table, partition_key, frame):
        hold = resources._HOLDS.get(resources._key(database))
        stored.append((table, partition_key, hold is not None and hold.lease is not None))
        return real(database, table, partition_key, frame)

    monkeypatch.setattr(resources, "write_partition", noting_the_lease)
    instance = DagsterInstance.ephemeral()
    assert project.materialize(ASSETS, instance=instance, partition_key=cutoff_key(C1)).success
    assert stored == [("whitespace", cutoff_key(C1), False)]
    first = pl.read_parquet(resources.cutoff_file(db, "whitespace", C1))
    assert first.height == 2 * N and first.equals(_list(project, C1))
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("select table_type from information_schema.tables where table_name = 'whitespace'"
                            ).fetchone()[0] == "VIEW"
        assert "whitespace" not in {r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_type = 'BASE TABLE'").fetchall()}

    with duckdb.connect(str(db)) as conn:  # as an older engine left it: the list as a table, no file
        conn.execute("drop view whitespace")
        conn.register("old", first.to_arrow())
        conn.execute("create table whitespace as select * from old")
        conn.unregister("old")
    resources.cutoff_file(db, "whitespace", C1).unlink()
    assert project.materialize(ASSETS, instance=instance, partition_key=cutoff_key(C2)).success
    assert pl.read_parquet(resources.cutoff_file(db, "whitespace", C1)).equals(first)
    metrics = project.table("whitespace_metrics").filter(pl.col("cutoff_date") == C2)
    assert json.loads(metrics.item(0, "metrics_json"))["stability_vs_previous"]["previous_cutoff"] == str(C1)
    assert _list(project, C1).equals(first) and _list(project, C2).height > 0
