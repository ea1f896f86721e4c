"""The model frames (`division_features`) as Parquet files beside the warehouse, with a view of them inside it
(resources.frames_dir): written and read without the warehouse's lease, the same rows for SQL readers, and an
older warehouse's table moved out to files."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
import pytest

from gosales_assets.partitions import multi_key
from gosales_assets.resources import (
    ensure_frames_view,
    frame_path,
    frame_summaries,
    frames_dir,
    read_frames,
    write_frame,
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
        ensure_frames_view(conn, db)
        kind = conn.execute("select table_type from information_schema.tables where table_name = "
                            "'division_features'").fetchone()[0]
        rows = conn.execute("select division, cutoff_date, count(*) n, sum(label) p from division_features "
                            "group by all order by all").fetchall()
        ensure_frames_view(conn, db)  # again: nothing to do
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
        ensure_frames_view(conn, db)
        assert conn.execute("select count(*) from information_schema.tables where table_name = "
                            "'division_features'").fetchone()[0] == 0


def test_the_op_writes_and_reads_its_frames_without_the_warehouse(tmp_path, monkeypatch):
    """The frame is published, and the model's training frames are read, while another process could open the
    warehouse (the run has let go of it): neither waits for the lease."""
    import gosales_assets.assets.models as models_module
    import gosales_assets.resources as resources
    from gosales_assets.assets.models import FINGERPRINT_FILE
    from gosales_assets_tests.conftest import demo_pipeline, latest_metadata

    project, instance = demo_pipeline(tmp_path / "p", {"labels": {"auto_widen": {"enabled": False}}}, customers=600,
                                      cutoffs=["2025-03-31", "2025-09-30"], divisions=["Simulation"],
                                      division_assets=["labels", "division_features"])
    db = str(project.settings.warehouse_path)
    seen = {"write": [], "read": []}
    write, read = resources.write_frame, models_module.read_frames

    def writing(*args, **kw):
        seen["write"].append(open_elsewhere(db).returncode)
        return write(*args, **kw)

    def reading(*args, **kw):
        seen["read"].append(open_elsewhere(db).returncode)
        return read(*args, **kw)

    monkeypatch.setattr(resources, "write_frame", writing)
    monkeypatch.setattr(models_module, "read_frames", reading)
    (project.settings.artifacts_dir / "models" / "simulation" / "2025-09-30" / FINGERPRINT_FILE).unlink(missing_ok=True)
    result = project.materialize(["labels"], instance=instance, partition_key=multi_key("Simulation", "2025-09-30"))
    assert result.success
    assert seen == {"write": [0], "read": [0]}
    # the frame is its file, and the warehouse's view shows it
    path = frame_path(db, "Simulation", C3)
    frame = pl.read_parquet(path)
    assert frame.height > 0 and set(frame.get_column("cutoff_date").unique()) == {C3}
    assert project.table("division_features").filter(pl.col("cutoff_date") == C3).sort("customer_id").equals(
        frame.sort("customer_id"))
    # the model's training cutoff is the 2025-03 frame, found and read from its file
    meta = latest_metadata(instance, "division_model")
    assert meta["training_cutoffs"] == ["2025-03-31"], meta
