"""The widest tables — the model frames (`division_features`), the cutoff's `customer_features` and
`als_embeddings` — as Parquet files beside the warehouse, with a view of each inside it (resources.files_dir):
written and read without the warehouse's lease, the same rows for SQL readers, and an older warehouse's tables moved
out to files."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
import pytest

from gosales_assets.partitions import cutoff_key, multi_key
from gosales_assets.resources import (
    cutoff_file,
    ensure_files_view,
    frame_path,
    frame_summaries,
    frames_dir,
    read_cutoff_table,
    read_frames,
    write_partition,
)
from gosales_assets_tests.conftest import open_elsewhere

C1, C2, C3 = dt.date(2025, 3, 31), dt.date(2025, 6, 30), dt.date(2025, 9, 30)


def _frame(cutoff: dt.date, division: str, labels: list[int], censored: bool = False, window: int = 6,
           **extra) -> pl.DataFrame:
    n = len(labels)
    return pl.DataFrame({
        "customer_id": [f"C{i:03d}" for i in range(n)], "division": [division] * n, "cutoff_date": [cutoff] * n,
        "rfm__all__revenue_sum__12m": [float(i) * 1.5 for i in range(n)], "label": pl.Series(labels, dtype=pl.Int8),
        "censored": [censored] * n, "window_months": pl.Series([window] * n, dtype=pl.Int32),
        **{k: v for k, v in extra.items()},
    })


def write_frame(db, division: str, cutoff: dt.date, frame: pl.DataFrame):
    return write_partition(db, "division_features", multi_key(division, cutoff_key(cutoff)), frame)


def test_frames_round_trip_by_name_and_their_summaries(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    first = _frame(C1, "PDM", [1, 0, 0, 1])
    second = _frame(C2, "PDM", [0, 1, 0], new_signal=[0.5, None, 2.0])  # a column the first frame lacks
    write_frame(db, "PDM", C1, first)
    write_frame(db, "PDM", C2, second)
    write_frame(db, "PDM", C3, _frame(C3, "PDM", [1, 1], censored=True, window=12))  # still censored
    write_frame(db, "Simulation", C2, _frame(C2, "Simulation", [1, 1, 1, 1, 1]))  # another division
    assert frame_path(db, "PDM", C2) == tmp_path / "warehouse.duckdb.frames" / "pdm" / "2025-06-30.parquet"
    assert not list(frames_dir(db).rglob("*.tmp"))  # written atomically: no temp file left

    both = read_frames(db, "PDM", [C1, C2])
    assert both.columns == [*first.columns, "new_signal"]
    assert both.get_column("label").to_list() == [1, 0, 0, 1, 0, 1, 0]
    assert both.get_column("new_signal").to_list() == [None] * 4 + [0.5, None, 2.0]
    assert read_frames(db, "PDM", [C2]).equals(second)  # one file: exactly what was written
    # (C', W', positives) of the uncensored frames in the range, in date order
    assert frame_summaries(db, "PDM", C1, C3) == [(C1, 6, 2), (C2, 6, 1)]
    assert frame_summaries(db, "PDM", C2, C3) == [(C2, 6, 1)]
    assert frame_summaries(db, "Simulation", C1, C3) == [(C2, 6, 5)]
    assert frame_summaries(db, "Hardware", C1, C3) == []
    with pytest.raises(FileNotFoundError, match=r"pdm/2025-12-31\.parquet.*materialize division_features of PDM"):
        read_frames(db, "PDM", [C1, dt.date(2025, 12, 31)])


def test_the_warehouse_view_shows_the_files_and_an_older_table_moves_out_to_them(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    old = pl.concat([_frame(C1, "PDM", [1, 0, 0]), _frame(C2, "PDM", [0, 1]), _frame(C1, "Simulation", [1])])
    newer = _frame(C2, "PDM", [1, 1, 1, 1])  # a file written after the table: the newer, kept
    write_frame(db, "PDM", C2, newer)
    with duckdb.connect(str(db)) as conn:
        conn.register("old", old.to_arrow())
        conn.execute("create table division_features as select * from old")
        ensure_files_view(conn, db, "division_features")
        kind = conn.execute("select table_type from information_schema.tables where table_name = "
                            "'division_features'").fetchone()[0]
        rows = conn.execute("select division, cutoff_date, count(*) n, sum(label) p from division_features "
                            "group by all order by all").fetchall()
        ensure_files_view(conn, db, "division_features")  # again: nothing to do
    assert kind == "VIEW"
    assert rows == [("PDM", C1, 3, 1), ("PDM", C2, 4, 4), ("Simulation", C1, 1, 1)]
    pdm_c1 = old.filter((pl.col("division") == "PDM") & (pl.col("cutoff_date") == C1))
    assert read_frames(db, "PDM", [C1]).equals(pdm_c1)
    # a read-only session (an analyst, the published snapshot) reads the same view
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("select count(*) from division_features").fetchone()[0] == 8
    # a new frame file is in the view at once (the view reads the files when queried)
    write_frame(db, "Hardware", C3, _frame(C3, "Hardware", [0, 1]))
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("select count(*) from division_features where division = 'Hardware'").fetchone()[0] == 2


def test_no_view_before_the_first_frame(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as conn:
        ensure_files_view(conn, db, "division_features")
        assert conn.execute("select count(*) from information_schema.tables where table_name = "
                            "'division_features'").fetchone()[0] == 0


def _watch_without_warehouse(monkeypatch, db: str) -> dict[str, list]:
    """Record, for every partition file written and every file read by the model and the model frame, whether
    another process could open the warehouse at that moment (0: the run had let go of it)."""
    import gosales_assets.assets.features as features_module
    import gosales_assets.assets.models as models_module
    import gosales_assets.resources as resources

    seen: dict[str, list] = {"write": [], "read": []}
    write, read_training, read_population = (resources.write_partition, models_module.read_frames,
                                             features_module.read_cutoff_table)

    def writing(database, table, *args, **kw):
        seen["write"].append((table, open_elsewhere(db).returncode))
        return write(database, table, *args, **kw)

    def reading_training(*args, **kw):
        seen["read"].append(("division_features", open_elsewhere(db).returncode))
        return read_training(*args, **kw)

    def reading_population(database, table, *args, **kw):
        seen["read"].append((table, open_elsewhere(db).returncode))
        return read_population(database, table, *args, **kw)

    monkeypatch.setattr(resources, "write_partition", writing)
    monkeypatch.setattr(models_module, "read_frames", reading_training)
    monkeypatch.setattr(features_module, "read_cutoff_table", reading_population)
    return seen


def test_the_runs_write_and_read_their_files_without_the_warehouse(tmp_path, monkeypatch):
    """The cutoff's customer features and ALS rows and the partition's frame are published, and the population's
    features and the model's training frames are read, while another process could open the warehouse (the run has
    let go of it): none waits for the lease. The warehouse's views show the files."""
    from gosales_assets.assets.models import FINGERPRINT_FILE
    from gosales_assets_tests.conftest import CUTOFF_ASSETS, demo_pipeline, latest_metadata

    project, instance = demo_pipeline(tmp_path / "p", {"labels": {"auto_widen": {"enabled": False}}}, customers=600,
                                      cutoffs=["2025-03-31", "2025-09-30"], divisions=["Simulation"],
                                      division_assets=["labels", "division_features"])
    db = str(project.settings.warehouse_path)
    seen = _watch_without_warehouse(monkeypatch, db)
    assert project.materialize(CUTOFF_ASSETS, instance=instance, partition_key="2025-09").success
    assert sorted(seen["write"]) == [("als_embeddings", 0), ("customer_features", 0)] and seen["read"] == []
    for table in ("customer_features", "als_embeddings"):
        stored = pl.read_parquet(cutoff_file(db, table, C3))
        assert stored.height > 0 and set(stored.get_column("cutoff_date").unique()) == {C3}
        assert project.table(table).filter(pl.col("cutoff_date") == C3).equals(stored)
        with duckdb.connect(db, read_only=True) as conn:
            assert conn.execute("select table_type from information_schema.tables where table_name = ?",
                                [table]).fetchone()[0] == "VIEW"

    seen["write"].clear()
    (project.settings.artifacts_dir / "models" / "simulation" / "2025-09-30" / FINGERPRINT_FILE).unlink(missing_ok=True)
    result = project.materialize(["labels"], instance=instance, partition_key=multi_key("Simulation", "2025-09-30"))
    assert result.success
    assert seen == {"write": [("division_features", 0)],
                    "read": [("customer_features", 0), ("als_embeddings", 0), ("division_features", 0)]}
    # the frame is its file, and the warehouse's view shows it
    path = frame_path(db, "Simulation", C3)
    frame = pl.read_parquet(path)
    assert frame.height > 0 and set(frame.get_column("cutoff_date").unique()) == {C3}
    assert project.table("division_features").filter(pl.col("cutoff_date") == C3).sort("customer_id").equals(
        frame.sort("customer_id"))
    # the model's training cutoff is the 2025-03 frame, found and read from its file
    meta = latest_metadata(instance, "division_model")
    assert meta["training_cutoffs"] == ["2025-03-31"], meta


def _als(cutoff: dt.date, customers: list[str], divisions: list[str]) -> pl.DataFrame:
    rows = [(c, d) for c in customers for d in divisions]
    return pl.DataFrame({"customer_id": [c for c, _ in rows], "cutoff_date": [cutoff] * len(rows),
                         "division": [d for _, d in rows],
                         "als_similarity": [round(0.1 * i, 1) for i in range(len(rows))],
                         "als_coverage": [1.0] * len(rows)})


def test_cutoff_tables_read_by_population_and_division_and_an_older_table_moves_out(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    old = pl.concat([_als(C1, ["A", "B", "C"], ["PDM", "CPE"]), _als(C2, ["A", "B"], ["PDM", "CPE"])])
    newer = _als(C2, ["A", "B", "D"], ["PDM"])  # a file written after the table: the newer, kept
    write_partition(db, "als_embeddings", cutoff_key(C2), newer)
    with duckdb.connect(str(db)) as conn:
        conn.register("old", old.to_arrow())
        conn.execute("create table als_embeddings as select * from old")
        ensure_files_view(conn, db, "als_embeddings")
        rows = conn.execute("select cutoff_date, count(*) from als_embeddings group by all order by all").fetchall()
        ensure_files_view(conn, db, "customer_features")  # no file, no table: nothing made
        assert conn.execute("select count(*) from information_schema.tables where table_name = "
                            "'customer_features'").fetchone()[0] == 0
    assert rows == [(C1, 6), (C2, 3)]
    assert cutoff_file(db, "als_embeddings", C1) == tmp_path / "warehouse.duckdb.als_embeddings" / "2025-03-31.parquet"
    assert read_cutoff_table(db, "als_embeddings", C1).equals(old.filter(pl.col("cutoff_date") == C1))
    some = read_cutoff_table(db, "als_embeddings", C1, customers=pl.Series(["C", "A", "Z"]), division="CPE",
                             columns=["customer_id", "als_similarity"])
    assert some.to_dicts() == [{"customer_id": "A", "als_similarity": 0.1}, {"customer_id": "C", "als_similarity": 0.5}]
    assert read_cutoff_table(db, "als_embeddings", C2).equals(newer)
    with pytest.raises(FileNotFoundError, match=r"als_embeddings of 2025-09 has no file .*2025-09-30\.parquet: "
                       r"materialize als_embeddings for 2025-09 first"):
        read_cutoff_table(db, "als_embeddings", C3)
    with pytest.raises(ValueError, match="'labels' is not kept as files"):
        cutoff_file(db, "labels", C1)


def test_a_run_on_an_older_warehouse_moves_its_tables_out_first(tmp_path):
    """A warehouse from before the cutoff tables were files (customer_features and als_embeddings as tables, no files):
    the next run — here a division partition, which reads them before it writes anything — moves them out and runs."""
    from gosales_assets_tests.conftest import demo_pipeline

    project, instance = demo_pipeline(tmp_path / "p", {}, customers=500, cutoffs=["2025-06-30"], divisions=["PDM"],
                                      division_assets=["labels"], strict=False)
    db = str(project.settings.warehouse_path)
    before = {t: project.table(t).sort("customer_id", *(["division"] if t == "als_embeddings" else []))
              for t in ("customer_features", "als_embeddings")}
    with duckdb.connect(db) as conn:  # as an older engine left it
        for table, rows in before.items():
            conn.execute(f"drop view {table}")
            conn.register("old", rows.to_arrow())
            conn.execute(f"create table {table} as select * from old")
            conn.unregister("old")
            cutoff_file(db, table, C2).unlink()
    assert project.materialize(["labels"], instance=instance, partition_key=multi_key("PDM", "2025-06")).success
    for table, rows in before.items():
        moved = pl.read_parquet(cutoff_file(db, table, C2))
        assert moved.sort("customer_id", *(["division"] if table == "als_embeddings" else [])).equals(rows)
        with duckdb.connect(db, read_only=True) as conn:
            assert conn.execute("select table_type from information_schema.tables where table_name = ?",
                                [table]).fetchone()[0] == "VIEW"


def test_the_io_manager_loads_cutoff_partitions_from_their_files(tmp_path):
    """A downstream asset that takes a cutoff table as an input gets the rows of its partitions' files, by name."""
    from dagster import AssetKey, MonthlyPartitionsDefinition, PartitionKeyRange, build_input_context

    from gosales_assets.resources import PartitionFilesIOManager

    db = tmp_path / "warehouse.duckdb"
    april = dt.date(2025, 4, 30)
    first, second = _als(C1, ["A", "B"], ["PDM"]), _als(april, ["A"], ["PDM", "CPE"])
    write_partition(db, "als_embeddings", cutoff_key(C1), first)
    write_partition(db, "als_embeddings", cutoff_key(april), second)
    manager = PartitionFilesIOManager(database=str(db))
    parts = MonthlyPartitionsDefinition(start_date="2025-01", fmt="%Y-%m")
    context = build_input_context(asset_key=AssetKey("als_embeddings"), asset_partitions_def=parts,
                                  asset_partition_key_range=PartitionKeyRange("2025-03", "2025-04"))
    assert manager.load_input(context).equals(pl.concat([first, second]))
    one = build_input_context(asset_key=AssetKey("als_embeddings"), asset_partitions_def=parts,
                              partition_key="2025-04")
    assert manager.load_input(one).equals(second)
