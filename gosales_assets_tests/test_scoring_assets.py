"""icp_scores and the whitespace assets, materialized for real on demo data."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from gosales_assets.assets.division_cutoff import DIVISION_CUTOFF_ASSETS
from gosales_assets.core.scoring import ICP_COLUMNS, zero_prevalence_alert
from gosales_assets.core.whitespace_inputs import whitespace_inputs
from gosales_assets.partitions import cutoff_key, multi_key
from gosales_assets.resources import cutoff_file
from gosales_assets.settings import division_slug
from gosales_assets_tests.conftest import check_results, demo_pipeline, latest_metadata, materialized, open_elsewhere

CUTOFFS = ["2025-03-31", "2025-06-30", "2025-09-30", "2026-03-31", "2026-06-30"]
DIVS = ["Simulation", "PDM"]
C = "2026-03-31"
WS = ["whitespace", "whitespace_thresholds", "capacity_summary", "whitespace_metrics"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    overrides = {"labels": {"auto_widen": {"enabled": False}},
                 "whitespace": {"shadow_enabled": True, "challenger_enabled": True},
                 # Gate behaviour is tested in test_models_asset; here every trained model should score.
                 "models": {"gates": {"auc_min": 0.55, "lift10_min": 1.2, "cal_mae_max": 0.2}}}
    return demo_pipeline(tmp_path_factory.mktemp("scoring"), overrides, customers=2000, cutoffs=CUTOFFS,
                         divisions=DIVS, division_assets=["labels", "division_features", "division_model",
                                                          "peer_scores", "icp_scores"], strict=False)


def test_icp_scores_columns_values_and_export(scored):
    project, _ = scored
    scores = project.table("icp_scores")
    assert tuple(scores.columns) == ICP_COLUMNS
    at_c = scores.filter(pl.col("cutoff_date") == pl.date(2026, 3, 31))
    assert set(at_c.get_column("division").unique()) == set(DIVS)
    assert at_c.get_column("icp_score").is_between(0, 1).all()
    labels = project.table("labels").filter(pl.col("cutoff_date") == pl.date(2026, 3, 31))
    joined = at_c.join(labels, on=["customer_id", "division"])
    assert joined.height == at_c.height  # the scored population is the labels population
    assert (joined.get_column("bought_in_division") == joined.get_column("label")).all()
    reg = project.table("division_model").filter(pl.col("cutoff_date") == pl.date(2026, 3, 31))
    assert set(at_c.get_column("model_version")) <= set(reg.get_column("model_version"))
    # The CRM export: one file per division × cutoff, each partition's own rows in customer order.
    folder = project.settings.artifacts_dir / "scores" / C
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"icp_scores_{division_slug(d)}.csv" for d in DIVS)
    for division in DIVS:
        csv = pl.read_csv(folder / f"icp_scores_{division_slug(division)}.csv", try_parse_dates=True)
        mine = at_c.filter(pl.col("division") == division).sort("customer_id")
        assert csv.columns == list(ICP_COLUMNS) and csv.height == mine.height
        assert csv.get_column("customer_id").cast(pl.String).to_list() == mine.get_column("customer_id").to_list()
        assert csv.get_column("icp_score").to_list() == pytest.approx(mine.get_column("icp_score").to_list())


def _part(project, table: str, division: str, cutoff) -> pl.DataFrame:
    return project.table(table).filter((pl.col("division") == division) & (pl.col("cutoff_date") == cutoff))


def test_forward_validation_and_drift(scored):
    project, instance = scored
    closed = project.materialize(["forward_validation"], instance=instance, partition_key=multi_key("Simulation", C))
    # One op makes the whole division × cutoff partition: selecting forward validation makes all of it (as the UI).
    assert closed.success and materialized(closed) == set(DIVISION_CUTOFF_ASSETS)
    row = _part(project, "forward_validation", "Simulation", pl.date(2026, 3, 31)).row(0, named=True)
    scores = _part(project, "icp_scores", "Simulation", pl.date(2026, 3, 31))
    assert row["status"] == "validated"
    assert row["rows"] == scores.height and row["positives"] == scores.get_column("bought_in_division").sum()
    assert str(row["window_end"]) == "2026-09-30" and row["window_months"] == 6
    d = project.settings.artifacts_dir / "validation" / "simulation" / C
    for name in ["validation_frame.parquet", "metrics.json", "gains.csv", "calibration.csv", "topk_scenarios.csv",
                 "segment_performance.csv", "alerts.json"]:
        assert (d / name).is_file(), name
    assert json.loads((d / "metrics.json").read_text())["auc"] == pytest.approx(row["auc"])
    assert check_results(closed)[("drift", "no_hard_drift")].passed

    # 2026-06-30 + 6 months is after the data end: scored, but not validated yet.
    pending = _part(project, "forward_validation", "Simulation", pl.date(2026, 6, 30)).row(0, named=True)
    assert pending["status"] == "window_open" and pending["auc"] is None and "has not closed" in pending["reason"]
    assert _part(project, "icp_scores", "Simulation", pl.date(2026, 6, 30)).height > 0

    # Shift the model's most important customer feature in the scoring population (the cutoff's stored customer
    # features, which the partition's frame reads): hard drift -> ERROR.
    importance = pl.read_csv(project.settings.artifacts_dir / "models" / "simulation" / C / "feature_importance.csv")
    path = cutoff_file(project.settings.warehouse_path, "customer_features", dt.date.fromisoformat(C))
    stored = pl.read_parquet(path)
    feature = next(f for f in importance.get_column("feature") if f in stored.schema and stored.schema[f].is_numeric())
    stored.with_columns(pl.col(feature) * 50 + 1000).write_parquet(path)
    try:
        drifted = project.materialize(["drift"], instance=instance, partition_key=multi_key("Simulation", C))
        ev = check_results(drifted)[("drift", "no_hard_drift")]
        assert not ev.passed and ev.severity.value == "ERROR" and feature in ev.description
        alerts = json.loads((d / "alerts.json").read_text())
        assert alerts["max_severity"] == "hard"
        assert latest_metadata(instance, "division_model")["model_reused"] is True  # the same training rows
    finally:
        stored.write_parquet(path)
    assert project.materialize(["drift"], instance=instance, partition_key=multi_key("Simulation", C)).success


def test_drift_of_the_scores_in_memory_equals_drift_of_the_stored_scores(scored):
    """The op measures drift on the scores it just made, in memory; a later reader sees the stored table. Both give
    the same findings, values and types. (Before the tests below withdraw this partition's scores.)"""
    from types import SimpleNamespace

    from dagster import Output
    from polars.testing import assert_frame_equal

    from gosales_assets.assets.validation import drift_outputs
    from gosales_assets.resources import ArtifactStore, WarehouseResource

    project, instance = scored
    key = multi_key("Simulation", C)
    assert project.materialize(["drift"], instance=instance, partition_key=key).success
    cutoff = pl.date(2026, 3, 31)

    def part(name):
        return project.table(name).filter((pl.col("division") == "Simulation") & (pl.col("cutoff_date") == cutoff))

    stored_scores, stored_drift = part("icp_scores"), part("drift")
    assert stored_scores.height and stored_drift.height
    context = SimpleNamespace(partition_key=key, log=SimpleNamespace(info=lambda *_: None))
    warehouse = WarehouseResource(database=str(project.settings.warehouse_path))
    outputs = list(drift_outputs(context, project.settings, ArtifactStore(root=str(project.settings.artifacts_dir)),
                                 warehouse, part("division_model"), stored_scores, part("division_features")))
    again = next(o for o in outputs if isinstance(o, Output)).value
    assert_frame_equal(stored_drift, again)


def test_drift_includes_the_cutoffs_roster_activity_counted_once(scored):
    """Who buys at C against the same months a year earlier is the same for every division: the cutoff's
    `roster_activity` (made with its features) counts it once and each division's drift includes those findings, as
    it would count them itself — which it does, with the same findings, when the cutoff has no rows of them."""
    from gosales_assets.assets.validation import drift_thresholds, purchase_lines
    from gosales_assets.core.calendar import add_months
    from gosales_assets.core.drift import FINDING_FIELDS, activity_findings, findings_from_rows
    from gosales_assets.resources import WarehouseResource

    project, instance = scored
    cutoff = dt.date.fromisoformat(C)
    roster = project.table("roster_activity").filter(pl.col("cutoff_date") == cutoff).sort("finding_no")
    kinds = {"segment_invoices", "division_invoices", "division_price", "segments_skipped"}
    assert set(roster.get_column("kind")) >= {"segment_invoices", "division_invoices", "division_price"}
    assert roster.get_column("finding_no").to_list() == list(range(roster.height))
    # What the cutoff's rows say is what counting the roster's lines of both windows gives.
    cfg = project.settings
    months = cfg.drift.activity_months
    lines = purchase_lines(WarehouseResource(database=str(cfg.warehouse_path)), cfg.drift.segment_columns,
                           [(add_months(e, -months), e) for e in (add_months(cutoff, -12), cutoff)])
    th = drift_thresholds(cfg)
    assert findings_from_rows(roster) == activity_findings(lines, cfg.drift.segment_columns, cutoff,
                                                           [add_months(cutoff, -12)], months, th)

    def activity_rows(division: str) -> pl.DataFrame:
        assert project.materialize(["drift"], instance=instance, partition_key=multi_key(division, C)).success
        return (_part(project, "drift", division, cutoff).filter(pl.col("kind").is_in(kinds))
                .select(FINDING_FIELDS))

    for division in DIVS:  # every division's drift at C has them, in the same order
        assert activity_rows(division).equals(roster.select(FINDING_FIELDS))
    whole = _part(project, "drift", "Simulation", cutoff)
    # Rows made with other drift settings (as after a change of the config) are not used: counted by the division.
    with duckdb.connect(str(cfg.warehouse_path)) as con:
        con.execute("update roster_activity set settings_key = 'before', value = value + 1 where cutoff_date = ?",
                    [cutoff])
    try:
        assert activity_rows("Simulation").equals(roster.select(FINDING_FIELDS))
        assert _part(project, "drift", "Simulation", cutoff).equals(whole)
    finally:
        alone = project.materialize(["roster_activity"], instance=instance, partition_key=cutoff_key(C))
    # Made alone (the step reads only the two windows' lines then), the same rows, to the bit.
    assert alone.success and materialized(alone) == {"roster_activity"}
    again = project.table("roster_activity").filter(pl.col("cutoff_date") == cutoff).sort("finding_no")
    assert again.equals(roster)


def test_metrics_summary_covers_every_materialized_model(scored):
    project, instance = scored
    assert project.materialize(["metrics_summary"], instance=instance).success
    summary = project.table("metrics_summary")
    models = project.table("division_model")
    assert summary.height == models.height > 0
    assert set(summary.select("division", "cutoff_date").rows()) == set(models.select("division", "cutoff_date").rows())
    validated = summary.filter((pl.col("division") == "Simulation") & (pl.col("cutoff_date") == pl.date(2026, 3, 31)))
    fwd = _part(project, "forward_validation", "Simulation", pl.date(2026, 3, 31)).row(0, named=True)
    assert validated.item(0, "fwd_auc") == pytest.approx(fwd["auc"])
    assert validated.item(0, "auc_train_minus_forward") == pytest.approx(validated.item(0, "train_auc") - fwd["auc"])
    # a forward AUC exactly where the engine's scores were validated (closed windows of published partitions)
    keys = ["division", "cutoff_date"]
    engine_validated = project.table("forward_validation").filter(pl.col("status") == "validated").select(keys)
    assert set(summary.filter(pl.col("fwd_auc").is_not_null()).select(keys).rows()) == set(engine_validated.rows())
    assert 0 < engine_validated.height < summary.height  # 2026-06-30's windows are open, early cutoffs unpublished
    assert (project.settings.artifacts_dir / "reports" / "metrics_summary.csv").is_file()


def test_whitespace_ranking_files_checks_and_determinism(scored):
    project, instance = scored
    landing = project.settings.landing_dir
    (landing / "eligibility").mkdir(exist_ok=True)
    first = project.materialize(WS, instance=instance, partition_key=cutoff_key(C))
    assert first.success
    checks = check_results(first)
    assert checks[("whitespace", "contract")].passed and checks[("whitespace", "explanations")].passed
    d = project.settings.artifacts_dir / "whitespace" / C
    for name in [f"whitespace_{C}.csv", f"whitespace_explanations_{C}.csv", f"thresholds_whitespace_{C}.csv",
                 f"whitespace_metrics_{C}.json", f"whitespace_log_{C}.jsonl", f"capacity_summary_{C}.csv"]:
        assert (d / name).is_file(), name
    ws = pl.read_csv(d / f"whitespace_{C}.csv")
    assert ws.columns == ["run_id", "division", "customer_id", "score", "score_source", "p_icp", "p_icp_pct",
                          "lift_norm", "als_norm", "EV_norm", "nba_reason"]
    assert ws.get_column("nba_reason").str.len_chars().max() <= 150
    owned = project.table("fact_transactions").filter(pl.col("invoice_date") <= pl.date(2026, 3, 31))
    owned = owned.group_by("customer_id", "division").agg(pl.col("revenue").sum()).filter(pl.col("revenue") > 0)
    assert ws.join(owned, on=["customer_id", "division"]).height == 0  # never recommends an owned division
    metrics = json.loads((d / f"whitespace_metrics_{C}.json").read_text())
    assert metrics["rows"] == ws.height and metrics["selected"] > 0 and metrics["shadow"]["n"] == 100
    assert metrics["capture"]["capture_at_10"] is not None  # outcomes are known at 2026-03-31 (+6 ≤ data end)
    log = [json.loads(line) for line in (d / f"whitespace_log_{C}.jsonl").read_text().splitlines()]
    assert {e["event"] for e in log} >= {"inputs", "normalization"}

    # Same inputs -> same ranking, byte for byte (run ids aside).
    second = project.materialize(WS, instance=instance, partition_key=cutoff_key(C))
    assert json.loads((d / f"whitespace_metrics_{C}.json").read_text())["checksum"] == metrics["checksum"]
    assert second.success

    # A do-not-contact list removes that customer everywhere and is counted.
    top_customer = ws.item(0, "customer_id")
    (landing / "eligibility" / "do_not_contact.csv").write_text(f"customer_id\n{top_customer}\n")
    third = project.materialize(WS, instance=instance, partition_key=cutoff_key(C))
    assert third.success
    ws3 = pl.read_csv(d / f"whitespace_{C}.csv")
    removed = ws.filter(pl.col("customer_id") == top_customer).height
    assert ws3.height == ws.height - removed and top_customer not in ws3.get_column("customer_id").to_list()
    gate = {r["rule"]: r for r in json.loads((d / f"whitespace_metrics_{C}.json").read_text())["eligibility"]}
    assert gate["do_not_contact"]["removed"] == removed and gate["region_allow"]["active"] is False
    (landing / "eligibility" / "do_not_contact.csv").unlink()


def test_whitespace_lets_go_of_the_warehouse_while_it_ranks(scored, monkeypatch):
    from gosales_assets.assets import whitespace as whitespace_assets

    project, instance = scored
    db = str(project.settings.warehouse_path)
    opened = []

    def build(*args, **kw):  # another process opens the warehouse while the list is ranked
        other = open_elsewhere(db)
        opened.append(other.returncode)
        return real(*args, **kw)

    real = whitespace_assets.build_whitespace
    monkeypatch.setattr(whitespace_assets, "build_whitespace", build)
    result = project.materialize(WS, instance=instance, partition_key=cutoff_key(C))
    assert result.success and opened == [0]
    # held again afterwards: the list was stored
    assert project.table("whitespace").filter(pl.col("cutoff_date") == pl.date(2026, 3, 31)).height > 0


def test_top_accounts_report(scored):
    project, instance = scored
    assert project.materialize(WS + ["top_accounts_report"], instance=instance, partition_key=cutoff_key(C)).success
    accounts = project.table("top_accounts_report")
    ws = project.table("whitespace").filter(pl.col("cutoff_date") == pl.date(2026, 3, 31))
    assert 0 < accounts.height <= 100
    assert accounts.get_column("account_rank").to_list() == list(range(1, accounts.height + 1))
    assert accounts.get_column("best_score").is_sorted(descending=True)
    best = ws.group_by("customer_id").agg(pl.col("score").max().alias("s"))
    joined = accounts.join(best, on="customer_id")
    assert (joined.get_column("best_score") == joined.get_column("s")).all()
    assert accounts.item(0, "best_score") == ws.get_column("score").max()
    assert (accounts.get_column("whitespace_gaps") == 12 - accounts.get_column("n_owned")).all()
    # Ownership read from the shown accounts' own lines equals the whole table's (what the ranking itself uses).
    cutoff = dt.date(2026, 3, 31)
    owned = whitespace_inputs(project.table("fact_transactions"), project.table("dim_customer"), cutoff,
                              project.settings.whitespace.ownership_lookback_months).owned
    expected = (accounts.select("customer_id").join(
        owned.group_by("customer_id").agg(pl.col("division").sort().str.join("; ").alias("owned_divisions")),
        on="customer_id", how="left", maintain_order="left").get_column("owned_divisions").fill_null(""))
    assert accounts.get_column("owned_divisions").to_list() == expected.to_list()
    assert (accounts.get_column("n_owned") > 0).any() and (accounts.get_column("n_owned") < 12).all()
    md = (project.settings.artifacts_dir / "reports" / C / "top_accounts.md").read_text()
    assert md.startswith(f"# Top cross-sell accounts — cutoff {C}") and "| 1 |" in md


def test_a_held_model_withdraws_the_partitions_scores(scored):
    """An operator raises PDM's AUC floor beyond its model: made again, the partition's model is held (the same fit,
    judged again), its scores withdrawn with the reason; the run succeeds so the cutoff's whitespace goes on with the
    other divisions. Lowered again, the partition publishes again."""
    project, instance = scored
    strict = project.with_overrides({"models": {"gates": {"per_division": {"PDM": {"auc_min": 0.99}}}}})
    legacy = project.settings.artifacts_dir / "scores" / C / "icp_scores.csv"  # the whole cutoff's file of old
    legacy.write_text("division,customer_id\nPDM,C1\n")
    result = strict.materialize(["icp_scores"], instance=instance, partition_key=multi_key("PDM", C))
    assert result.success and "icp_scores" in materialized(result)
    assert latest_metadata(instance, "division_model")["model_reused"] is True  # gates judge, they do not train
    meta = latest_metadata(instance, "icp_scores")
    assert meta["published"] is False and meta["reason"].startswith("model held: promotion gate:")
    assert "auc" in meta["reason"] and "short by" in meta["reason"]
    assert _part(project, "icp_scores", "PDM", pl.date(2026, 3, 31)).height == 0
    export = project.settings.artifacts_dir / "scores" / C / "icp_scores_pdm.csv"
    assert not export.exists()  # withdrawn from the CRM feed with the scores
    assert not legacy.exists()  # an earlier version's file of the whole cutoff would go stale: removed
    assert (export.parent / "icp_scores_simulation.csv").is_file()  # the other divisions' stay
    again = project.materialize(["icp_scores"], instance=instance, partition_key=multi_key("PDM", C))
    assert again.success and latest_metadata(instance, "icp_scores")["published"] is True
    assert _part(project, "icp_scores", "PDM", pl.date(2026, 3, 31)).height > 0
    assert pl.read_csv(export).height == _part(project, "icp_scores", "PDM", pl.date(2026, 3, 31)).height


def test_zero_prevalence_guard_blocks_publication(scored):
    """The outcomes of a closed window show no buyer at all (here: the division's sales after C gone from the facts,
    as a broken join would leave them) while the model trained on buyers: the partition is not published."""
    project, instance = scored
    after_c = f"division = 'Simulation' and invoice_date > '{C}'"
    with duckdb.connect(str(project.settings.warehouse_path)) as conn:
        conn.execute(f"create table held_back as select * from fact_transactions where {after_c}")
        conn.execute(f"delete from fact_transactions where {after_c}")
    try:
        result = project.materialize(["icp_scores"], instance=instance, partition_key=multi_key("Simulation", C))
        # Not published: an empty slice with the reason, and the guard is a failed ERROR check the operator sees.
        assert result.success and latest_metadata(instance, "icp_scores")["published"] is False
        assert latest_metadata(instance, "division_model")["status"] == "promoted"
        guard = check_results(result)[("icp_scores", "zero_prevalence_guard")]
        assert not guard.passed and guard.severity.value == "ERROR" and "0 positives" in guard.description
        alert = json.loads((project.settings.artifacts_dir / "alerts" / C / "icp_scores_simulation.json").read_text())
        assert alert["kind"] == "zero_prevalence" and alert["train_positives"] > 0
        assert _part(project, "icp_scores", "Simulation", pl.date(2026, 3, 31)).height == 0
    finally:
        with duckdb.connect(str(project.settings.warehouse_path)) as conn:
            conn.execute("insert into fact_transactions select * from held_back")
            conn.execute("drop table held_back")
    assert project.materialize(["icp_scores"], instance=instance, partition_key=multi_key("Simulation", C)).success
    assert latest_metadata(instance, "icp_scores")["published"] is True


def test_zero_prevalence_alert_rule():
    scores = pl.DataFrame({"division": ["PDM"] * 3, "cutoff_date": [None] * 3, "bought_in_division": [0, 0, 0]},
                          schema_overrides={"bought_in_division": pl.Int8, "cutoff_date": pl.Date})
    row = {"train_positives": 12, "model_version": "abc"}
    assert zero_prevalence_alert(scores, row)["reason"].startswith("3 customers with known outcomes and 0 positives")
    assert zero_prevalence_alert(scores, {**row, "train_positives": 0}) is None
    assert zero_prevalence_alert(scores.with_columns(pl.lit(None, pl.Int8).alias("bought_in_division")), row) is None
    assert zero_prevalence_alert(scores.with_columns(pl.Series("bought_in_division", [0, 1, 0], pl.Int8)), row) is None


def test_a_model_file_rewritten_after_its_verdict_is_fitted_again_not_reused(scored):
    """A model file changed after its gate decided (a retrain killed half way, a hand edit) is never reused, nor
    scored under the registry row's version: the partition made again fits the model again (the same bytes: the
    fit is deterministic) and publishes it. (Scoring's own refusal of such a file: test_champion.py.)"""
    project, instance = scored  # 2026-06-30: a partition the other tests leave alone
    key = multi_key("Simulation", "2026-06-30")
    row = _part(project, "division_model", "Simulation", pl.date(2026, 6, 30)).row(0, named=True)
    path = Path(row["model_path"])
    original = path.read_bytes()
    path.write_bytes(original + b"\0")  # a different file under the same name
    result = project.materialize(["icp_scores"], instance=instance, partition_key=key)
    assert result.success
    assert latest_metadata(instance, "division_model")["model_reused"] is False
    assert path.read_bytes() == original
    again = _part(project, "division_model", "Simulation", pl.date(2026, 6, 30)).row(0, named=True)
    assert again["model_version"] == row["model_version"] and again["status"] == row["status"]
    meta = latest_metadata(instance, "icp_scores")
    assert meta["published"] is True and meta["model_version"] == row["model_version"]
    # made once more with nothing changed: reused
    assert project.materialize(["icp_scores"], instance=instance, partition_key=key).success
    assert latest_metadata(instance, "division_model")["model_reused"] is True
