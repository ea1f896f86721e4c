"""`peer_scores`, forward validation beside the peers and the whitespace peer fallback, materialized for real on demo
data: Simulation is promoted at 2026-03-31, PDM is held there by an impossible gate (AUC ≥ 1), and both are skipped
at 2025-06-30 (no closed training window yet)."""

import json

import duckdb
import polars as pl
import pytest

from gosales_assets.core.checksum import frame_checksum
from gosales_assets.core.peers import PEERS
from gosales_assets.partitions import cutoff_key, multi_key
from gosales_assets_tests.conftest import check_results, demo_pipeline, materialized, new_project

CUTOFFS = ["2025-03-31", "2025-06-30", "2025-09-30", "2026-03-31"]
DIVS = ["Simulation", "PDM"]
C, EARLY = "2026-03-31", "2025-06-30"
WS = ["whitespace", "whitespace_thresholds", "capacity_summary", "whitespace_metrics"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    overrides = {"labels": {"auto_widen": {"enabled": False}},
                 "models": {"gates": {"auc_min": 0.55, "lift10_min": 1.2, "cal_mae_max": 0.2,
                                      "per_division": {"PDM": {"auc_min": 1.0}}}}}
    return demo_pipeline(tmp_path_factory.mktemp("peers"), overrides, customers=2000, cutoffs=CUTOFFS,
                         divisions=DIVS, division_assets=["labels", "division_features", "division_model",
                                                          "peer_scores", "icp_scores", "forward_validation"])


def _at(frame: pl.DataFrame, division: str, cutoff: str) -> pl.DataFrame:
    return frame.filter((pl.col("division") == division) & (pl.col("cutoff_date").cast(pl.String) == cutoff))


def _metadata(result, asset: str) -> dict:
    (mat,) = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()
              if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in mat.metadata.items()}


def test_peer_scores_materialize_for_every_verdict(world):
    project, instance = world
    registry = project.table("division_model")
    assert set(_at(registry, "Simulation", C).get_column("status")) == {"promoted"}
    assert set(_at(registry, "PDM", C).get_column("status")) == {"held"}
    assert set(registry.filter(pl.col("cutoff_date").cast(pl.String) == EARLY).get_column("status")) == {"skipped"}
    peers, features = project.table("peer_scores"), project.table("division_features")
    for d in DIVS:
        for c in CUTOFFS:
            assert _at(peers, d, c).height == _at(features, d, c).height > 0, (d, c)

    # A trained model (held or promoted): the best peer comes from its cross-validation, the RFM regression from its
    # training rows; peers.json is the same choice the promotion gate showed.
    for d in DIVS:
        at_c = _at(peers, d, C)
        model_dir = project.settings.artifacts_dir / "models" / d.lower() / C
        record = json.loads((model_dir / "peers.json").read_text())
        assert record["model_version"] == _at(registry, d, C).item(0, "model_version")
        assert set(at_c.get_column("best_peer")) == {record["best_peer"]}
        assert set(at_c.get_column("best_peer_basis")) == {"cross_validation"}
        assert set(at_c.get_column("model_status")) == {_at(registry, d, C).item(0, "status")}
        assert at_c.get_column("rfm_logistic_score").null_count() == 0
        assert at_c.get_column("rfm_logistic_score").is_between(0, 1).all()
        assert at_c.get_column("best_peer_rank").equals(at_c.get_column(f"{record['best_peer']}_rank")
                                                        .alias("best_peer_rank"))
        labels = _at(project.table("labels"), d, C).select("customer_id", "label")
        joined = at_c.join(labels, on="customer_id")
        assert joined.height == at_c.height and (joined["bought_in_division"] == joined["label"]).all()

    # The recency peer's list is the order by days since the last purchase (ties by customer_id, never bought last).
    sim = _at(peers, "Simulation", C).join(
        _at(features, "Simulation", C).select("customer_id", "rfm__all__recency_days__all"), on="customer_id")
    by_days = sim.sort(["rfm__all__recency_days__all", "customer_id"], nulls_last=True).get_column("customer_id")
    assert sim.sort("recency_rank").get_column("customer_id").to_list() == by_days.to_list()
    assert sim.get_column("recency_score").equals(-sim.get_column("rfm__all__recency_days__all").cast(pl.Float64)
                                                  .alias("recency_score"))
    by_revenue = sim.sort("monetary_rank").get_column("monetary_score")
    assert by_revenue.to_list() == sorted(by_revenue.to_list(), reverse=True)

    # No model trained: the configured default peer, no RFM regression, and the metadata says why.
    early = _at(peers, "PDM", EARLY)
    assert set(early.get_column("best_peer")) == {"monetary"}
    assert set(early.get_column("best_peer_basis")) == {"default"}
    assert early.get_column("rfm_logistic_score").null_count() == early.height
    again = project.materialize(["peer_scores"], instance=instance, partition_key=multi_key("PDM", EARLY))
    assert again.success
    meta = _metadata(again, "peer_scores")
    assert meta["best_peer"] == "monetary" and meta["best_peer_basis"] == "default"
    assert meta["rfm_logistic"].startswith("null: no model was trained (skipped: no trainable cutoff")


def test_forward_validation_reports_the_engine_and_every_peer_on_the_same_rows(world):
    project, _ = world
    forward, peers = project.table("forward_validation"), project.table("peer_scores")
    row = _at(forward, "Simulation", C).row(0, named=True)
    scores = _at(project.table("icp_scores"), "Simulation", C)
    assert row["status"] == "validated" and row["rows"] == scores.height and row["auc"] is not None
    best = _at(peers, "Simulation", C).item(0, "best_peer")
    assert row["best_peer"] == best and row["best_peer_basis"] == "cross_validation"
    assert row["best_peer_auc"] == row[f"{best}_auc"]
    for p in PEERS:
        assert all(row[f"{p}_{m}"] is not None for m in ("auc", "lift_at_10", "capture_at_10")), p
    assert row["auc_vs_best_peer"] == pytest.approx(row["auc"] - row["best_peer_auc"])
    assert row["auc_vs_best_peer_low"] <= row["auc_vs_best_peer"] <= row["auc_vs_best_peer_high"]
    assert 0 < row["capture_at_10"] <= 1
    table = pl.read_csv(project.settings.artifacts_dir / "validation" / "simulation" / C / "peers.csv")
    assert table.get_column("ordering").to_list() == ["engine", *PEERS]
    assert table.item(0, "auc") == pytest.approx(row["auc"]) and (table.get_column("rows") == row["rows"]).all()

    # Held at C: nothing published, the engine's metrics are null, the peers are validated all the same.
    held = _at(forward, "PDM", C).row(0, named=True)
    assert held["status"] == "not_published" and held["auc"] is None and held["auc_vs_best_peer"] is None
    assert "the simple peers validated on" in held["reason"]
    assert held["rows"] == _at(peers, "PDM", C).height and held["positives"] > 0
    assert all(held[f"{p}_auc"] is not None for p in PEERS) and held["best_peer_basis"] == "cross_validation"
    # Skipped (no model trained): the heuristics still validated, the RFM regression has nothing to show.
    early = _at(forward, "PDM", EARLY).row(0, named=True)
    assert early["status"] == "not_published" and early["best_peer"] == "monetary"
    assert early["best_peer_basis"] == "default" and early["monetary_auc"] is not None
    assert early["rfm_logistic_auc"] is None


def test_a_held_division_gets_a_labelled_peer_list_and_the_promoted_one_is_unchanged(world, tmp_path):
    project, instance = world
    # The same warehouse and artifacts under a config with the fallback off: the list as it was before.
    paths = {k: str(v) for k, v in (("landing", project.settings.landing_dir),
                                     ("warehouse", project.settings.warehouse_path),
                                     ("artifacts", project.settings.artifacts_dir))}
    doc = json.loads(json.dumps(project.settings.model_dump(mode="json", exclude={"home"})))
    off = new_project(tmp_path / "off", doc | {"paths": paths, "whitespace": doc["whitespace"] | {
        "peer_fallback": False}})
    assert off.materialize(WS, instance=instance, partition_key=cutoff_key(C)).success
    before = _at(project.table("whitespace"), "Simulation", C)

    result = project.materialize(WS + ["top_accounts_report"], instance=instance, partition_key=cutoff_key(C))
    assert result.success
    checks = check_results(result)
    assert checks[("whitespace", "contract")].passed and checks[("whitespace", "explanations")].passed
    ws = project.table("whitespace").filter(pl.col("cutoff_date").cast(pl.String) == C)
    sim, pdm = ws.filter(pl.col("division") == "Simulation"), ws.filter(pl.col("division") == "PDM")
    assert set(sim.get_column("score_source")) == {"model"}
    keep = [c for c in before.columns if c != "run_id"]
    assert sim.select(keep).sort("rank").equals(before.select(keep).sort("rank"))  # promoted: unchanged
    assert frame_checksum(sim.select(keep).sort("rank")) == frame_checksum(before.select(keep).sort("rank"))
    # PDM (held): listed after every Simulation row, by its best peer, labelled, no probability, not in the plan.
    best = _at(project.table("peer_scores"), "PDM", C).item(0, "best_peer")
    assert pdm.height > 0 and set(pdm.get_column("score_source")) == {f"peer:{best}"}
    assert pdm.get_column("rank").min() > sim.get_column("rank").max()
    assert pdm.get_column("p_icp").null_count() == pdm.height == pdm.get_column("p_icp_pct").null_count()
    assert not pdm.get_column("selected").any()
    assert pdm.get_column("nba_reason").str.starts_with("No promoted model (held: auc").all()
    assert pdm.get_column("nba_reason").str.contains(f"; ordered by the best simple peer, {best} (", literal=True).all()
    peer_order = (pdm.join(_at(project.table("peer_scores"), "PDM", C).select("customer_id", "best_peer_score"),
                           on="customer_id").sort("rank_in_division").get_column("best_peer_score").fill_null(-1e18))
    assert peer_order.to_list() == sorted(peer_order.to_list(), reverse=True)
    metrics = json.loads(project.table("whitespace_metrics").filter(
        pl.col("cutoff_date").cast(pl.String) == C).item(0, "metrics_json"))
    assert metrics["peer_fallback"]["divisions"]["PDM"] == {"score_source": f"peer:{best}", "rows": pdm.height,
                                                            "selected": 0}
    export = pl.read_csv(project.settings.artifacts_dir / "whitespace" / C / f"whitespace_{C}.csv")
    assert export.filter(pl.col("division") == "PDM").get_column("score_source").unique().to_list() == [
        f"peer:{best}"]


def test_a_cutoff_with_no_promoted_model_still_gets_a_list_and_a_labelled_report(world):
    project, instance = world
    result = project.materialize(WS + ["top_accounts_report"], instance=instance, partition_key=cutoff_key(EARLY))
    assert result.success and "whitespace" in materialized(result)
    ws = project.table("whitespace").filter(pl.col("cutoff_date").cast(pl.String) == EARLY)
    assert ws.height > 0 and set(ws.get_column("score_source")) == {"peer:monetary"}
    assert ws.get_column("p_icp").null_count() == ws.height and ws.get_column("selected").sum() == 0
    assert (ws.get_column("nba_reason") == "No promoted model (skipped: no closed training window yet); ordered by "
            "the default simple peer, monetary (top 12-month revenue), not a model score").all()
    accounts = project.table("top_accounts_report").filter(pl.col("cutoff_date").cast(pl.String) == EARLY)
    assert accounts.height > 0 and set(accounts.get_column("best_score_source")) == {"peer:monetary"}
    assert accounts.get_column("best_p_icp").null_count() == accounts.height
    md = (project.settings.artifacts_dir / "reports" / EARLY / "top_accounts.md").read_text()
    assert "n/a: no promoted model, ordered by the monetary peer" in md and "No promoted model (skipped" in md
    assert _metadata(result, "top_accounts_report")["peer_ordered_accounts"] == accounts.height

    # Without peer scores there is nothing to fall back to: the cutoff is empty again, with its reason.
    with duckdb.connect(str(project.settings.warehouse_path)) as conn:
        conn.execute("delete from peer_scores where cutoff_date = ?", [EARLY])
    empty = project.materialize(WS, instance=instance, partition_key=cutoff_key(EARLY))
    assert empty.success
    assert project.table("whitespace").filter(pl.col("cutoff_date").cast(pl.String) == EARLY).height == 0
