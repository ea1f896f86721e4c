"""The published read-only snapshot of the warehouse (issue 16): readers never break a run, a run never breaks on a
reader. Real DuckDB files in temporary folders; other processes play the engine and the analyst."""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import AssetExecutionContext, StaticPartitionsDefinition, asset, materialize

from gosales_assets.resources import WarehouseIOManager, WarehouseLocked, WarehouseResource, publish_snapshot
from gosales_assets.snapshot import SnapshotError, changes_seen_at, read_meta, snapshot_due, snapshot_path

GOSALES = str(Path(sys.executable).parent / "gosales")
MIN = 60.0


def _write(db: Path, sql: str) -> None:
    conn = duckdb.connect(str(db))
    try:
        conn.execute(sql)
    finally:
        conn.close()


def _tables(db: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(db), read_only=True) as conn:
        names = [r[0] for r in conn.execute("select table_name from information_schema.tables order by 1").fetchall()]
        return {n: conn.execute(f'select * from "{n}" order by all').pl() for n in names}


def _warehouse(tmp_path: Path) -> Path:
    db = tmp_path / "home" / "warehouse.duckdb"
    db.parent.mkdir(parents=True)
    _write(db, "create table fact(id integer, division varchar, revenue double);"
               "insert into fact select range, 'PDM', range * 1.5 from range(1000);"
               "create table dim(customer_id varchar, name varchar);"
               "insert into dim values ('C1', 'Alpha'), ('C2', 'Beta ''quoted''');")
    return db


def _other_process_can_open(db: Path) -> bool:
    code = f"import duckdb; duckdb.connect({str(db)!r}, read_only=True).close()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _gosales(args: list[str], home: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([GOSALES, *args], env={**os.environ, "GOSALES_HOME": str(home), **env},
                          capture_output=True, text=True, timeout=120)


class _Process:
    """A Python process that runs `setup`, prints `ready`, then runs each line it is sent and prints the result."""

    def __init__(self, setup: str):
        code = (f"import duckdb, sys\n{setup}\nprint('ready', flush=True)\n"
                "for line in sys.stdin:\n    print(repr(eval(line)), flush=True)\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def ask(self, expr: str):
        self.proc.stdin.write(expr + "\n")
        self.proc.stdin.flush()
        return eval(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ---- (d) the snapshot holds exactly the warehouse's tables at publish time -----------------------------------------
def test_the_snapshot_equals_the_warehouse_at_publish_time(tmp_path):
    db = _warehouse(tmp_path)
    _write(db, "insert into fact values (5000, 'CPE', 7.0)")  # committed, possibly still only in the log
    done = publish_snapshot(db, force=True, source="test", run_id="r1")
    assert done.copied and done.path == snapshot_path(db) == tmp_path / "home" / "snapshot" / "warehouse.duckdb"
    live, snap = _tables(db), _tables(done.path)
    assert list(snap) == list(live) == ["dim", "fact"]
    for name in live:
        assert snap[name].equals(live[name]), name
    assert snap["fact"].height == 1001
    # Read-only on disk, with its record beside it; no temp file left behind.
    assert not os.access(done.path, os.W_OK) or os.geteuid() == 0
    assert oct(done.path.stat().st_mode & 0o777) == "0o444"
    meta = json.loads((done.path.parent / "snapshot.json").read_text())
    assert meta == done.meta and meta["run_id"] == "r1" and meta["source"] == "test"
    assert meta["warehouse"] == str(db.resolve()) and meta["snapshot_inode"] == done.path.stat().st_ino
    assert sorted(p.name for p in done.path.parent.iterdir()) == [".publish.lock", "snapshot.json", "warehouse.duckdb"]
    # Later writes are not in it until the next publish.
    _write(db, "delete from fact where id < 10")
    assert _tables(done.path)["fact"].height == 1001


# ---- (c) when a copy is made ---------------------------------------------------------------------------------------
def test_due_rule():
    meta = {"taken_at_unix": 1000.0, "warehouse_mtime_ns": 5, "warehouse_bytes": 10, "snapshot_inode": 7,
            "snapshot_mtime_ns": 8, "taken_at": "t"}
    snap = (7, 8)

    def due(**kw):
        args = dict(now=1000.0 + 10 * MIN, interval_s=30 * MIN, force=False, state=(6, 10), meta=meta,
                    snapshot_stat=snap) | kw
        return snapshot_due(**args)

    assert due(state=None) == (False, "there is no warehouse yet")
    assert due(meta=None) == (True, "there is no snapshot yet")
    assert due(meta=None, interval_s=None) == (False, "publishing at the end of runs is off "
                                                      "(snapshot.interval_minutes: null)")
    assert due(meta=None, interval_s=None, force=True) == (True, "there is no snapshot yet")
    assert due(snapshot_stat=None) == (True, "there is no snapshot yet")
    assert due(snapshot_stat=(7, 9))[0]  # someone wrote to the snapshot: replace it
    assert due(state=(5, 10), force=True) == (False, "the snapshot of t is current (the warehouse has not changed "
                                                     "since)")
    # The age of the changes the snapshot lacks counts, not the snapshot's: the end of the run that sees them first
    # starts their clock (a month-old snapshot is not copied at the first run of a monthly increment)
    go, why = due()
    assert not go and "first seen 0.0 min ago, under snapshot.interval_minutes (30)" in why
    assert not due(now=1e9)[0]
    go, why = due(changes_seen=1000.0)
    assert not go and "first seen 10.0 min ago" in why
    assert due(force=True) == (True, "requested")
    assert due(changes_seen=1000.0, now=1000.0 + 30 * MIN) == (
        True, "the warehouse has had changes the snapshot lacks for 30.0 min")
    assert due(interval_s=0.0) == (True, "the warehouse has had changes the snapshot lacks for 0.0 min")
    assert due(interval_s=None, now=1e9) == (False, "publishing at the end of runs is off "
                                                    "(snapshot.interval_minutes: null)")


def test_interval_rule_and_forced_copies(tmp_path):
    db = _warehouse(tmp_path)
    t0 = 1_800_000_000.0
    first = publish_snapshot(db, interval_minutes=30, source="run", run_id="a", now=t0)
    assert first.copied and first.reason == "there is no snapshot yet"

    _write(db, "insert into fact values (-1, 'PDM', 1.0)")
    # The end of a run does not copy changes first seen less than the interval ago: it starts their clock.
    second = publish_snapshot(db, interval_minutes=30, source="run", run_id="b", now=t0 + 10 * MIN)
    assert not second.copied and "first seen 0.0 min ago, under snapshot.interval_minutes (30)" in second.reason
    assert changes_seen_at(first.path, read_meta(first.path)) == t0 + 10 * MIN
    assert read_meta(first.path)["run_id"] == "a" and _tables(first.path)["fact"].height == 1000
    # `gosales snapshot` and the end of `gosales materialize` force one.
    forced = publish_snapshot(db, interval_minutes=30, force=True, source="gosales materialize", now=t0 + 11 * MIN)
    assert forced.copied and forced.reason == "requested"
    assert _tables(forced.path)["fact"].height == 1001 and read_meta(forced.path)["source"] == "gosales materialize"
    # A forced copy of an unchanged warehouse is not made: the snapshot is current.
    again = publish_snapshot(db, force=True, source="gosales snapshot", now=t0 + 12 * MIN)
    assert not again.copied and "is current" in again.reason
    # A copy made since: the clock of the changes before it does not carry over to the changes after it.
    _write(db, "insert into fact values (-2, 'PDM', 1.0)")
    assert changes_seen_at(forced.path, read_meta(forced.path)) is None
    # null switches the run-end copies off (and starts no clock); the first run end that sees the changes starts
    # it, however old the snapshot is (31 min here); runs within the interval after that do not copy; the first one
    # past it does.
    assert not publish_snapshot(db, interval_minutes=None, source="run", now=t0 + 40 * MIN).copied
    assert changes_seen_at(forced.path, read_meta(forced.path)) is None
    seen = publish_snapshot(db, interval_minutes=30, source="run", run_id="c", now=t0 + 42 * MIN)
    assert not seen.copied and changes_seen_at(forced.path, read_meta(forced.path)) == t0 + 42 * MIN
    _write(db, "insert into fact values (-3, 'PDM', 1.0)")
    assert not publish_snapshot(db, interval_minutes=30, source="run", run_id="d", now=t0 + 71 * MIN).copied
    late = publish_snapshot(db, interval_minutes=30, source="run", run_id="e", now=t0 + 72 * MIN)
    assert late.copied and late.reason == "the warehouse has had changes the snapshot lacks for 30.0 min"
    assert read_meta(late.path)["run_id"] == "e" and _tables(late.path)["fact"].height == 1003


def test_the_end_of_gosales_materialize_forces_a_snapshot_and_never_fails_on_it(tmp_path, capsys, monkeypatch):
    from gosales_assets import cli, resources
    from gosales_assets.settings import load_settings

    db = _warehouse(tmp_path)
    settings = load_settings(home=db.parent)
    assert settings.warehouse_path == db and settings.snapshot.interval_minutes == 30
    assert publish_snapshot(db, source="run", run_id="a").copied  # a run published a minute ago
    _write(db, "insert into fact values (-1, 'PDM', 1.0)")
    cli._publish_at_end(settings)  # within the interval: forced anyway
    assert capsys.readouterr().out.startswith(f"snapshot published: {snapshot_path(db)} (query it while")
    assert read_meta(snapshot_path(db))["source"] == "gosales materialize"
    assert _tables(snapshot_path(db))["fact"].height == 1001
    # The warehouse held by another process for longer than the wait: a note on stderr, the command goes on.
    monkeypatch.setattr(resources, "LOCK_WAIT_S", 0.5)
    engine = _Process(f"c = duckdb.connect({str(db)!r})\nc.execute(\"insert into fact values (-2, 'PDM', 1.0)\")")
    try:
        cli._publish_at_end(settings)
    finally:
        engine.close()
    err = capsys.readouterr().err
    assert err.startswith(f"note: the warehouse snapshot was not published: the warehouse is held by process "
                          f"{engine.proc.pid} (") and err.count("\n") == 1
    assert err.endswith("); `gosales snapshot` publishes one once it is free\n")


PARTS = StaticPartitionsDefinition(["a", "b"])


def test_the_end_of_a_run_publishes_when_due(tmp_path):
    db = _warehouse(tmp_path)

    @asset(partitions_def=PARTS, metadata={"partition_expr": "part"})
    def things(context: AssetExecutionContext) -> pl.DataFrame:
        return pl.DataFrame({"part": [context.partition_key], "x": [1]})

    @asset
    def counted(warehouse: WarehouseResource) -> pl.DataFrame:  # holds the warehouse for the run
        return warehouse.query("select count(*) as n from fact")

    def run(key, interval, selection):
        return materialize([things, counted], partition_key=key, selection=selection, resources={
            "io_manager": WarehouseIOManager(database=str(db), schema="main", snapshot_interval_minutes=interval),
            "warehouse": WarehouseResource(database=str(db), snapshot_interval_minutes=interval)})

    snap = snapshot_path(db)
    first = run("a", 30.0, [things.key])
    assert first.success and read_meta(snap)["run_id"] == first.run_id
    assert _tables(snap)["things"].get_column("part").to_list() == ["a"]
    second = run("b", 30.0, [things.key])  # within the interval: the snapshot stays the first run's
    assert second.success and read_meta(snap)["run_id"] == first.run_id
    third = run("b", 0.0, [things.key])  # interval 0: every run that wrote publishes
    assert third.success and read_meta(snap)["run_id"] == third.run_id
    assert _tables(snap)["things"].get_column("part").to_list() == ["a", "b"]
    # A run that holds the warehouse through the `warehouse` resource publishes once its hold has ended.
    fourth = materialize([counted], resources={
        "io_manager": WarehouseIOManager(database=str(db), schema="main", snapshot_interval_minutes=0.0),
        "warehouse": WarehouseResource(database=str(db), snapshot_interval_minutes=0.0)})
    assert fourth.success and read_meta(snap)["run_id"] == fourth.run_id
    assert "counted" in _tables(snap)
    assert _other_process_can_open(db)  # released


def test_a_busy_warehouse_never_breaks_a_run_and_never_unlocks_it(tmp_path):
    """A publish that finds the warehouse held (here by this very process) says so in one line; it must not copy
    the file in-process, which would drop DuckDB's lock (POSIX locks fall when any descriptor of the file closes)."""
    db = _warehouse(tmp_path)
    conn = duckdb.connect(str(db))
    try:
        conn.execute("insert into fact values (-1, 'PDM', 1.0)")
        with pytest.raises(SnapshotError, match="a writer held it again after each checkpoint"):
            publish_snapshot(db, force=True, source="test", wait_s=0)
        assert not _other_process_can_open(db)  # still locked by this process
        assert not snapshot_path(db).exists()
        assert [p.name for p in snapshot_path(db).parent.iterdir()] == [".publish.lock"]  # no temp copy left
    finally:
        conn.close()
    # Held by another process: a one-line WarehouseLocked after the wait.
    engine = _Process(f"c = duckdb.connect({str(db)!r})")
    try:
        with pytest.raises(WarehouseLocked) as err:
            publish_snapshot(db, force=True, source="test", wait_s=0.5)
        assert f"held by process {engine.proc.pid}" in str(err.value) and "\n" not in str(err.value)
    finally:
        engine.close()
    assert publish_snapshot(db, force=True, source="test", wait_s=0).copied


# ---- (a) analysts query while the engine writes ------------------------------------------------------------------
def test_query_works_while_the_engine_holds_the_warehouse(tmp_path):
    db = _warehouse(tmp_path)
    home = db.parent
    missing = _gosales(["query", "select 1"], home)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "no snapshot of the warehouse yet" in missing.stderr and "run `gosales snapshot`" in missing.stderr

    published = _gosales(["snapshot"], home)
    assert published.returncode == 0, published.stderr
    assert f"snapshot published: {home / 'snapshot' / 'warehouse.duckdb'}" in published.stdout
    meta = read_meta(snapshot_path(db))
    assert meta["source"] == "gosales snapshot"

    engine = _Process(f"c = duckdb.connect({str(db)!r})\nc.execute(\"insert into fact values (-7, 'CPE', 2.0)\")")
    try:
        assert not _other_process_can_open(db)  # the live file is locked, as during a run
        table = _gosales(["query", "select division, count(*) as n from fact group by 1 order by 1"], home)
        assert table.returncode == 0, table.stderr
        assert "│ PDM      ┆ 1000 │" in table.stdout and "CPE" not in table.stdout
        assert table.stderr.startswith(f"snapshot taken {meta['taken_at']} (") and "by `gosales snapshot`" in \
            table.stderr
        assert "the warehouse has changed since" in table.stderr  # the engine's insert is not in the snapshot
        csv = _gosales(["query", "select * from dim order by 1", "--csv"], home)
        assert csv.returncode == 0 and csv.stdout == 'customer_id,name\nC1,Alpha\nC2,Beta \'quoted\'\n'
        # Errors are one line with what to do, never a traceback.
        for sql, words in [("select * from nope", "Table with name nope does not exist"),
                           ("drop table fact", "the snapshot is read-only")]:
            bad = _gosales(["query", sql], home)
            assert bad.returncode == 1 and words in bad.stderr and "Traceback" not in bad.stderr
            assert bad.stderr.count("\n") == 2  # the snapshot line and the error
        # `gosales snapshot` while the engine holds the warehouse: one line, who holds it and what to do.
        held = _gosales(["snapshot", "--wait", "0.5"], home)
        assert held.returncode == 1 and held.stderr.count("\n") == 1 and "Traceback" not in held.stderr
        assert f"held by process {engine.proc.pid}" in held.stderr and "`gosales query` reads the last" in held.stderr
    finally:
        engine.close()
    info = _gosales(["info"], home)
    assert f"snapshot:   {snapshot_path(db)} (snapshot taken {meta['taken_at']}" in info.stdout


def test_a_session_that_opened_the_snapshot_for_writing_gets_one_line(tmp_path):
    db = _warehouse(tmp_path)
    publish_snapshot(db, force=True, source="test")
    snap = snapshot_path(db)
    os.chmod(snap, 0o644)  # a session that opens the snapshot for writing (root can, whatever the mode)
    writer = _Process(f"c = duckdb.connect({str(snap)!r})")
    try:
        proc = _gosales(["query", "select 1"], db.parent)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert "held by a session that opened it for writing" in proc.stderr and "duckdb -readonly" in proc.stderr
        # The engine publishes anyway: the writable session keeps the old file.
        _write(db, "insert into fact values (-3, 'PDM', 1.0)")
        assert publish_snapshot(db, force=True, source="test").copied
        assert _gosales(["query", "select count(*) from fact"], db.parent).returncode == 0
    finally:
        writer.close()


# ---- (b) a reader holding the snapshot open never blocks a publish ------------------------------------------------
def test_a_reader_holding_the_snapshot_keeps_its_data_and_never_blocks_a_publish(tmp_path):
    db = _warehouse(tmp_path)
    snap = publish_snapshot(db, force=True, source="test").path
    reader = _Process(f"c = duckdb.connect({str(snap)!r}, read_only=True)")
    try:
        count = "c.execute('select count(*), sum(revenue) from fact').fetchone()"
        before = reader.ask(count)
        assert before == (1000, 749250.0)
        _write(db, "insert into fact select 2000 + range, 'CPE', 1.0 from range(500); delete from fact where id < 100")
        again = publish_snapshot(db, force=True, source="test")
        assert again.copied
        assert reader.ask(count) == before  # the old, consistent copy, as long as the reader keeps it open
        assert reader.ask("c.execute('select count(*) from fact where id >= 2000').fetchone()") == (0,)
        fresh = _tables(again.path)["fact"]
        assert fresh.height == 1400 and fresh.get_column("id").min() == 100
    finally:
        reader.close()


def test_the_publish_snapshot_sensor_publishes_once_nothing_writes(tmp_path):
    """What the last runs of a backfill wrote is published by the sensor's run once no run is queued or in progress
    and no backfill is requested (the end of a run copies only changes first seen an interval ago)."""
    from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, Definitions, RunRequest, SkipReason
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    @asset
    def tiny() -> None:
        return None

    from gosales_assets.automation.snapshots import snapshot_job, snapshot_request
    from gosales_assets.resources import GosalesSettings
    from gosales_assets.settings import config_path, load_settings

    settings = load_settings(home=tmp_path / "home")
    with DagsterInstance.ephemeral() as instance:
        nothing = snapshot_request(settings, instance)
        assert isinstance(nothing, SkipReason) and nothing.skip_message == "there is no warehouse yet"
        db = _warehouse(tmp_path)
        assert settings.warehouse_path == db
        request = snapshot_request(settings, instance)
        assert isinstance(request, RunRequest) and request.tags == {"gosales/source": "publish-snapshot"}
        # one request per state of the warehouse: a failed publish is not requested again until it changes
        assert snapshot_request(settings, instance).run_key == request.run_key
        # a run queued or in progress: not yet
        for status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED):  # (QUEUED needs a code location)
            instance.add_run(DagsterRun(job_name="gosales_cutoff", run_id=f"r-{status.value}", status=status))
            busy = snapshot_request(settings, instance)
            assert isinstance(busy, SkipReason) and busy.skip_message.startswith("1 run(s) queued or in progress")
            instance.delete_run(f"r-{status.value}")
        instance.add_run(DagsterRun(job_name="gosales_cutoff", run_id="done", status=DagsterRunStatus.SUCCESS))
        assert isinstance(snapshot_request(settings, instance), RunRequest)
        # a backfill still requested (between two of its runs, none in progress): not yet either
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="bf1", asset_graph=Definitions(assets=[tiny]).resolve_asset_graph(), partition_names=None,
            asset_selection=[tiny.key], backfill_timestamp=1.0, tags={}, dynamic_partitions_store=instance,
            all_partitions=True, title=None, description=None, run_config=None)
        instance.add_backfill(backfill)
        waiting = snapshot_request(settings, instance)
        assert isinstance(waiting, SkipReason) and waiting.skip_message.startswith("backfill bf1 is still in progress")
        instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))
        assert isinstance(snapshot_request(settings, instance), RunRequest)

        result = snapshot_job.execute_in_process(instance=instance, resources={
            "settings": GosalesSettings(config_path=str(config_path()), home=str(db.parent))})
        assert result.success
        meta = read_meta(snapshot_path(db))
        assert meta["source"] == "publish_snapshot sensor" and meta["run_id"] == result.run_id
        assert _tables(snapshot_path(db))["fact"].height == 1000
        current = snapshot_request(settings, instance)
        assert isinstance(current, SkipReason) and current.skip_message.endswith("is current")
        _write(db, "insert into fact values (-1, 'PDM', 1.0)")
        changed = snapshot_request(settings, instance)
        assert isinstance(changed, RunRequest) and changed.run_key != request.run_key
