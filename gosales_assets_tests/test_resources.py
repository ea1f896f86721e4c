"""The warehouse IO manager: partition slices, schema growth, atomic writes; the artifact store; lock waits."""

import os
import stat

import duckdb
import polars as pl
import pytest
from dagster import AssetExecutionContext, StaticPartitionsDefinition, asset, materialize

from gosales_assets.core.artifact_files import write_artifact
from gosales_assets.resources import WarehouseIOManager, atomic_write_text

PARTS = StaticPartitionsDefinition(["a", "b", "Lab's R&D"])  # a quote in a key must be escaped in SQL


def _asset(frames: dict):
    @asset(partitions_def=PARTS, metadata={"partition_expr": "part"})
    def things(context: AssetExecutionContext) -> pl.DataFrame:
        return frames[context.partition_key]

    return things


def _run(db, frames, key):
    return materialize([_asset(frames)], partition_key=key, raise_on_error=False,
                       resources={"io_manager": WarehouseIOManager(database=str(db), schema="main")})


def _table(db) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute("select * from main.things order by part, x").pl()


def test_partition_slices_schema_growth_and_rollback(tmp_path):
    db = tmp_path / "w.duckdb"
    frames = {
        "a": pl.DataFrame({"part": ["a", "a"], "x": [1, 2]}),
        "b": pl.DataFrame({"part": ["b"], "x": [3], "y": ["new column"]}),
        "Lab's R&D": pl.DataFrame({"part": ["Lab's R&D"], "x": [4]}),
    }
    assert _run(db, frames, "a").success
    assert _run(db, frames, "b").success  # a new column is added; partition a gets nulls
    assert _run(db, frames, "Lab's R&D").success
    t = _table(db)
    assert t.select("part", "x", "y").rows() == [("Lab's R&D", 4, None), ("a", 1, None), ("a", 2, None),
                                                 ("b", 3, "new column")]
    # Re-materializing a partition replaces its slice only.
    frames["a"] = pl.DataFrame({"part": ["a"], "x": [10]})
    assert _run(db, frames, "a").success
    assert _table(db).get_column("x").to_list() == [4, 10, 3]
    # A write that fails (x cannot hold text) rolls back: partition b keeps its rows instead of being emptied.
    frames["b"] = pl.DataFrame({"part": ["b"], "x": ["not a number"]})
    assert not _run(db, frames, "b").success
    assert _table(db).filter(pl.col("part") == "b").get_column("x").to_list() == [3]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "f.csv", "a,b\n1,2\n")
    assert path.read_text() == "a,b\n1,2\n"
    atomic_write_text(path, "a,b\n3,4\n")
    assert path.read_text() == "a,b\n3,4\n"
    assert [p.name for p in path.parent.iterdir()] == ["f.csv"]


def test_artifacts_are_written_atomically_with_a_readable_mode(tmp_path):
    """CSV and Parquet artifacts are written by polars straight into a temp file, then renamed (charts' bytes and text
    too): the same bytes as polars' CSV text, no temp file left, the file readable as a plain open() would make it
    (not mkstemp's 0600: a CRM loader running as another user reads them), and a failed write leaves the old file
    whole."""
    frame = pl.DataFrame({"customer_id": ["C2", "C1"], "score": [0.25, 1 / 3], "reason": ["a, \"quoted\"", None]})
    csv = write_artifact(tmp_path / "out" / "list.csv", frame)
    assert csv.read_text() == frame.write_csv()
    parquet = write_artifact(tmp_path / "out" / "list.parquet", frame)
    assert pl.read_parquet(parquet).equals(frame)
    chart = write_artifact(tmp_path / "out" / "gains.png", b"\x89PNG\r\n")  # bytes: a chart
    assert chart.read_bytes() == b"\x89PNG\r\n"
    mask = os.umask(0)
    os.umask(mask)
    for path in (csv, parquet, chart, atomic_write_text(tmp_path / "out" / "a.txt", "x")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in csv.parent.iterdir()) == ["a.txt", "gains.png", "list.csv", "list.parquet"]

    class Broken:
        def write_csv(self, _):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_artifact(csv, Broken())
    assert csv.read_text() == frame.write_csv()
    assert sorted(p.name for p in csv.parent.iterdir()) == ["a.txt", "gains.png", "list.csv", "list.parquet"]


def _other_process_can_open(db) -> bool:
    import subprocess
    import sys

    code = f"import duckdb; duckdb.connect({str(db)!r}, read_only=True).close()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_hold_warehouse_shares_one_database_and_releases_it(tmp_path):
    from gosales_assets.resources import hold_warehouse

    db = tmp_path / "w.duckdb"
    frames = {k: pl.DataFrame({"part": [k], "x": [i]}) for i, k in enumerate(PARTS.get_partition_keys())}
    with hold_warehouse(db):
        # Runs in this process open and close the file as usual, against the held database instance.
        for key in frames:
            assert _run(db, frames, key).success
        assert not _other_process_can_open(db)  # held: DuckDB's single-process lock
    # Released and checkpointed: another process reads every partition written during the hold.
    assert _other_process_can_open(db)
    assert _table(db).to_dicts() == [frames[k].to_dicts()[0] for k in sorted(frames)]


def test_a_reader_holding_the_warehouse_delays_a_run_and_never_breaks_it_with_a_traceback(tmp_path):
    """Another process holding the DuckDB file (an analyst's session): the engine waits for it; if it is not
    released in time, one line says who holds it and what to do."""
    import subprocess
    import sys
    import time

    from gosales_assets.resources import WarehouseLocked, connect_warehouse

    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time\nc = duckdb.connect({str(path)!r})\n"
                               "print('held', flush=True)\ntime.sleep(3)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    waits = []
    with pytest.raises(WarehouseLocked) as err:
        connect_warehouse(path, wait_s=0.5, log=waits.append)
    message = str(err.value)
    assert f"held by process {holder.pid}" in message and "close that session" in message and "\n" not in message
    assert len(waits) == 1 and waits[0].startswith(f"waiting for process {holder.pid} (")
    start = time.monotonic()
    conn = connect_warehouse(path, wait_s=30)  # the session ends: the engine goes on
    assert time.monotonic() - start < 10
    conn.close()
    holder.wait(timeout=10)


def test_duckdb_threads_setting_reaches_every_connection_of_a_run(tmp_path):
    """`duckdb.threads` (default 1): SET on the held database, so the IO manager's and the `warehouse` resource's
    connections of a run all use it, also after the hold was let go while computing; never passed as connection
    config, which DuckDB would refuse for a second connection of the held instance."""
    from gosales_assets.definitions import build_resources
    from gosales_assets.resources import WarehouseResource, connect_warehouse, released_warehouse
    from gosales_assets.settings import load_settings

    db = tmp_path / "w.duckdb"
    seen: dict[str, int] = {}

    def setting(conn) -> int:
        return int(conn.execute("select current_setting('threads')").fetchone()[0])

    @asset(partitions_def=PARTS, metadata={"partition_expr": "part"})
    def things(context: AssetExecutionContext, warehouse: WarehouseResource) -> pl.DataFrame:
        with warehouse.connect() as conn:
            seen["resource"] = setting(conn)
        with released_warehouse(warehouse.database), warehouse.connect() as conn:
            seen["released"] = setting(conn)  # a connection of its own while the run let go of the file
        with connect_warehouse(warehouse.database) as conn:  # any other connection shares the held instance
            seen["held"] = setting(conn)
        return pl.DataFrame({"part": [context.partition_key], "x": [1]})

    result = materialize([things], partition_key="a", resources={
        "io_manager": WarehouseIOManager(database=str(db), schema="main", threads=1),
        "warehouse": WarehouseResource(database=str(db), threads=1)})
    assert result.success
    assert seen == {"resource": 1, "released": 1, "held": 1}
    assert _table(db).rows() == [("a", 1)]
    with connect_warehouse(db) as conn, duckdb.connect() as default:  # unset: DuckDB's default, as before
        assert setting(conn) == setting(default)
    # The shipped default reaches both resources.
    settings = load_settings(home=tmp_path / "home")
    assert settings.duckdb.threads == 1
    resources = build_resources(settings, tmp_path / "gosales.yaml")
    assert resources["io_manager"].threads == resources["warehouse"].threads == 1
