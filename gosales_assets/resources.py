"""Dagster resources: settings, the DuckDB warehouse (IO manager + SQL access) and the artifact store."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb.io_manager import DuckDbClient, _get_cleanup_statement
from dagster_duckdb_polars import DuckDBPolarsTypeHandler

from gosales_assets.core.artifact_files import atomic_write_frame, atomic_write_text, json_text, write_artifact
from gosales_assets.jobs import HOST_TAG, PID_TAG
from gosales_assets.partitions import parse_cutoff, split_key
from gosales_assets.settings import DEFAULT_SNAPSHOT_INTERVAL_MINUTES, Settings, division_slug, load_settings
from gosales_assets.snapshot import Published, SnapshotError, publish

# Every step that opens the DuckDB file runs in one of these pools, and the warehouse's lease (`hold_warehouse`) gives
# the runs turns with the file: DuckDB allows a single writing process. dagster.yaml gives each pool two slots and the
# queue three runs at once: two of `gosales_warehouse` (everything but the cutoff's ranking) and one of the cutoff's
# ranking (`whitespace_ranking`, and `top_accounts_report`, which a backfill runs with it) in its own pool. The lists
# form a chain (each reads the one before) that Dagster's backfill requests only once no division × cutoff partition
# is left to request; in the shared pool each list waited behind the division runs queued before it, and the chain
# ran alone at the end, on one core.
WAREHOUSE_POOL = "gosales_warehouse"
RANKING_POOL = "gosales_ranking"
WAREHOUSE_POOLS = (WAREHOUSE_POOL, RANKING_POOL)
WAREHOUSE_SCHEMA = "main"


@lru_cache(maxsize=8)
def _cached_settings(config_path: str, home: str) -> Settings:
    return load_settings(config_path, home=home)


class GosalesSettings(ConfigurableResource):
    """The engine configuration (YAML file + GOSALES_HOME) as a resource.

    On every run it records the resolved configuration under `<artifacts>/runs/<run_id>/config_resolved.yaml`
    so any run can be reproduced from its run id.
    """

    config_path: str
    home: str

    def get(self) -> Settings:
        return _cached_settings(self.config_path, self.home)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        run_id = context.run_id
        if not run_id:
            return
        settings = self.get()
        atomic_write_text(settings.artifacts_dir / "runs" / run_id / "config_resolved.yaml", settings.resolved_yaml())


# How long a run waits for another process (an analyst's session, a notebook) to release the warehouse file before
# it stops with a one-line message: a short query never breaks a run, a session left open does not hang it forever.
LOCK_WAIT_S = float(os.environ.get("GOSALES_WAREHOUSE_LOCK_WAIT_S", "120"))
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>\S+) \(PID (?P<pid>\d+)\)")


class WarehouseLocked(Exception):
    """Another process holds the DuckDB warehouse file (DuckDB allows one writing process). `holder` names it."""

    def __init__(self, message: str, holder: str = "another process"):
        super().__init__(message)
        self.holder = holder


def connect_warehouse(database: str | Path, *, read_only: bool = False, config: dict | None = None,
                      wait_s: float | None = None, log=None, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, waiting while another process holds its lock (polled); after `wait_s` (default
    GOSALES_WAREHOUSE_LOCK_WAIT_S, 120 s) raise `WarehouseLocked` with one line naming the holder and what to do.

    `threads` (the `duckdb.threads` setting; None: DuckDB's default, one per core) is SET on the open database, not
    passed in `config`: connections of one process share the database instance of a held warehouse, and DuckDB
    refuses a second connection whose config differs from the first's."""
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    start, said = time.monotonic(), False
    while True:
        try:
            conn = duckdb.connect(str(database), read_only=read_only, config=config or {})
            if threads is not None:
                conn.execute(f"set threads = {int(threads)}")
            return conn
        except duckdb.IOException as err:
            holder = _LOCK_HOLDER.search(str(err))
            if holder is None:
                raise
            who = f"process {holder['pid']} ({Path(holder['exe']).name})"
            if time.monotonic() - start >= wait_s:
                raise WarehouseLocked(
                    f"the warehouse {database} is held by {who} for more than {wait_s:.0f} s: close that session "
                    "(query the published snapshot instead: `gosales query`, see docs/OPERATIONS.md) and "
                    "re-execute", holder=who) from None
            if not said and log is not None:
                log(f"waiting for {who} to release the warehouse {database}")
                said = True
            time.sleep(0.5)


def _key(database: str | Path) -> str:
    return os.path.abspath(str(database))


def lease_path(database: str | Path) -> Path:
    """The warehouse's lease file: the engine's processes take turns with the DuckDB file by an exclusive lock on it."""
    return Path(str(database) + ".lease")


# The lines a run logs when it takes and lets go of the warehouse (the UI shows who held it when; tests check that no
# two runs held it at once).
HELD, LET_GO, RELEASED, RETAKEN = ("warehouse: held", "warehouse: let go", "warehouse: let go while computing",
                                   "warehouse: held again")


class _Hold:
    """This process's hold of one warehouse: the open connection, the locked lease file, how many holds share them, and
    where the hold says what it does."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, lease, log, journal, owner: str | None,
                 before_let_go: Callable[[], None] | None, threads: int | None = None):
        self.conn, self.lease, self.count = conn, lease, 1
        self.log, self.journal, self.owner, self.before_let_go = log, journal, owner, before_let_go
        self.threads = threads

    def note(self, line: str) -> None:
        if self.journal is not None:
            self.journal(line)


# This process's holds (`hold_warehouse`), by the database's absolute path: the end-of-run snapshot is published once
# the file is closed (a copy needs it released, see gosales_assets/snapshot.py).
_HOLDS: dict[str, _Hold] = {}


def _take_lease(database: str | Path, log=None, owner: str | None = None):
    """Lock the warehouse's lease file (exclusive, blocking): the turn of this process. Another run of the engine that
    holds it is waited for, however long its steps take (a killed holder's lock is released by the kernel at once);
    the wait is said once in `log`, naming the holder. Returns the open, locked file."""
    path = lease_path(database)
    lease = open(path, "a+")  # noqa: SIM115 — kept open for the whole hold
    try:
        fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if log is not None:
            lease.seek(0)
            holder = lease.read().strip() or "another process"
            log(f"waiting for {holder} to let go of the warehouse {database}")
        fcntl.flock(lease, fcntl.LOCK_EX)
    except BaseException:
        lease.close()
        raise
    lease.seek(0)
    lease.truncate()
    lease.write(f"{owner + ' ' if owner else ''}(process {os.getpid()} on {socket.gethostname()})")
    lease.flush()
    return lease


def _open_hold(path: str, log, owner: str | None, threads: int | None = None
               ) -> tuple[duckdb.DuckDBPyConnection, Any]:
    lease = _take_lease(path, log, owner)
    try:
        return connect_warehouse(path, log=log, threads=threads), lease
    except BaseException:
        lease.close()  # closing the file releases its lock
        raise


@contextmanager
def hold_warehouse(database: str | Path, log=None, *, owner: str | None = None, journal=None,
                   before_let_go: Callable[[], None] | None = None, threads: int | None = None) -> Iterator[None]:
    """Keep the warehouse file open in this process while a run executes in it (the `warehouse` resource holds it
    for the whole run), after taking the warehouse's lease: the engine's runs take turns with the file.

    Every step opens and closes DuckDB several times (each input, output and query). A cold open reads the
    catalog and the last close checkpoints: ~90 ms a time, ~2.5 s per division x cutoff run. While one
    connection stays open, DuckDB shares that database instance with every later `connect` of the same path
    in the process, so those cost ~3 ms and the checkpoint happens once, when the hold ends. The file stays
    locked against other processes while held; a step that computes for long without it lets go for that time
    (`released_warehouse`). Holds of the same file in one process share the connection and the lease. `log`: where a
    wait is said; `owner`: who holds it, as a waiting process names it (e.g. the run); `journal`: where the hold's
    moves are noted (HELD, RELEASED, RETAKEN, LET_GO); `before_let_go`: called when the last hold ends without an
    error, with the file closed but the lease still held (the end-of-run snapshot: a run waiting for the lease would
    otherwise open the file first, every time); `threads`: DuckDB's threads for the held database (`connect_warehouse`).
    """
    path = str(database)
    key = _key(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    hold = _HOLDS.get(key)
    if hold is not None:
        hold.count += 1
    else:
        conn, lease = _open_hold(path, log, owner, threads)
        hold = _HOLDS[key] = _Hold(conn, lease, log, journal, owner, before_let_go, threads)
        hold.note(HELD)
    ok = False
    try:
        yield
        ok = True
    finally:
        hold.count -= 1
        if hold.count == 0:
            del _HOLDS[key]
            try:
                if hold.conn is not None:
                    hold.conn.close()
                if ok and hold.lease is not None and hold.before_let_go is not None:
                    hold.before_let_go()
            finally:
                if hold.lease is not None:
                    hold.lease.close()
                    hold.note(LET_GO)


@contextmanager
def released_warehouse(database: str | Path) -> Iterator[None]:
    """Let another run of the engine use the warehouse while this process computes without it (a model's training):
    close this process's held connection and lease, then take both again afterwards (waiting for a run that got in
    meanwhile). Nothing of the warehouse may be open in this process inside (every query and IO-manager access opens
    and closes its own connection). Without a hold in this process (a step called outside a run) it does nothing."""
    key = _key(database)
    hold = _HOLDS.get(key)
    if hold is None or hold.conn is None:
        yield
        return
    hold.conn.close()
    hold.conn = None
    hold.lease.close()
    hold.lease = None
    hold.note(RELEASED)
    try:
        yield
    finally:
        hold.conn, hold.lease = _open_hold(str(database), hold.log, hold.owner, hold.threads)
        hold.note(RETAKEN)


def _checkpoint(database: str | Path, wait_s: float | None) -> Callable[[], None]:
    def run() -> None:
        conn = connect_warehouse(database, wait_s=wait_s)
        try:
            conn.execute("checkpoint")
        finally:
            conn.close()
    return run


def publish_snapshot(database: str | Path, *, interval_minutes: float | None = DEFAULT_SNAPSHOT_INTERVAL_MINUTES,
                     force: bool = False, run_id: str | None = None, source: str, wait_s: float | None = None,
                     now: float | None = None) -> Published:
    """Publish the read-only snapshot of the warehouse `database` (`gosales_assets/snapshot.py`) when it is due: no
    snapshot yet, or the warehouse changed since the last one and either `force` or the last one is at least
    `interval_minutes` old (None: only when forced). Waits up to `wait_s` (default GOSALES_WAREHOUSE_LOCK_WAIT_S)
    for a process that holds the warehouse; raises `WarehouseLocked` or `SnapshotError` (one line) when no copy can
    be made. `gosales materialize` and `gosales snapshot` call it with `force=True`; the end of every run without."""
    interval_s = None if interval_minutes is None else interval_minutes * 60
    wait = LOCK_WAIT_S if wait_s is None else wait_s
    return publish(database, checkpoint=_checkpoint(database, wait), interval_s=interval_s, force=force,
                   run_id=run_id, source=source, wait_s=wait, now=now)


def publish_after_run(database: str | Path, interval_minutes: float | None, run_id: str | None, log=None) -> None:
    """The end of a run: publish the snapshot if it is due (see `publish_snapshot`). Never raises and never waits: a
    run never breaks or hangs on the snapshot; when the warehouse is busy, a later run publishes. `log`: the run's
    Dagster log (or None)."""
    hold = _HOLDS.get(_key(database))
    if (hold is not None and hold.conn is not None) or not Path(database).exists():
        return  # still open in this process (the holder publishes when it lets go), or nothing written yet
    try:
        done = publish_snapshot(database, interval_minutes=interval_minutes, run_id=run_id, source="run", wait_s=0)
    except (WarehouseLocked, SnapshotError, OSError, duckdb.Error) as err:
        if log is not None:
            log.warning(f"snapshot not published at the end of this run (a later run or `gosales snapshot` will): "
                        f"{err}")
        return
    if done.copied and log is not None:
        log.info(f"published the warehouse snapshot {done.path} ({done.reason}; {done.meta['copy_seconds']} s)")


@contextmanager
def run_hold(database: str, snapshot_interval_minutes: float | None, context: InitResourceContext,
             threads: int | None = None) -> Iterator[None]:
    """A run's hold of the warehouse, set up once per run (in-process executor) by each resource that opens it (the
    `warehouse` resource and the IO manager share it): one open database serves every step, input and output, the
    run's log says when it took and let go of it, and the snapshot is published after the run when due."""
    if context.run_id and context.instance is not None:
        # Which process holds the warehouse: if it is killed, `release_dead_runs` can tell the run is dead and
        # free the pool (Dagster's default run launcher cannot check a run worker's health).
        context.instance.add_run_tags(context.run_id, {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())})
    log = context.log.warning if context.log else None
    journal = context.log.info if context.log else None
    owner = f"run {context.run_id[:8]}" if context.run_id else None
    # The snapshot is published as the run's last hold ends (not when the run is interrupted), before its lease is
    # let go: a run waiting for the lease would otherwise always open the file first.
    with hold_warehouse(database, log=log, owner=owner, journal=journal,
                        before_let_go=lambda: publish_after_run(database, snapshot_interval_minutes, context.run_id,
                                                                log=context.log), threads=threads):
        # A run may read a table kept as files before it writes any of it (the labels' roster, a retraining).
        move_tables_to_files(database, threads)
        yield


class WarehouseResource(ConfigurableResource):
    """Direct SQL access to the warehouse for steps that query rather than load whole tables. At the end of the run
    it publishes the read-only snapshot when due (`snapshot_interval_minutes`, see `publish_snapshot`)."""

    database: str
    snapshot_interval_minutes: float | None = DEFAULT_SNAPSHOT_INTERVAL_MINUTES
    threads: int | None = None  # DuckDB's threads (the `duckdb.threads` setting; None: one per core)

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator["WarehouseResource"]:
        with run_hold(self.database, self.snapshot_interval_minutes, context, self.threads):
            yield self

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        conn = connect_warehouse(self.database, read_only=read_only, threads=self.threads)
        try:
            yield conn
        finally:
            conn.close()

    def released(self):
        """`released_warehouse` of this warehouse: other runs may use it meanwhile (see there)."""
        return released_warehouse(self.database)

    def table_exists(self, table: str) -> bool:
        with self.connect() as conn:
            return _table_exists(conn, WAREHOUSE_SCHEMA, table)

    def columns(self, table: str) -> set[str]:
        """The names of `table`'s columns (a table written by an older engine may lack newer ones)."""
        return set(self.query(f"select * from {table} limit 0").columns)

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        with self.connect() as conn:
            return conn.execute(sql, params or []).pl()


class _TransactionalDuckDbClient(DuckDbClient):
    """DuckDB client whose delete-then-insert of a table slice commits as one transaction.

    The stock client auto-commits the DELETE before the INSERT; if the insert failed, the table would be left
    emptied. Here a failure rolls both back, so a table is never half-written.
    """

    @staticmethod
    @contextmanager
    def connect(context, _):
        database = context.resource_config["database"]
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        conn = connect_warehouse(database, config=dict(context.resource_config["connection_config"]),
                                 threads=context.resource_config.get("threads"))
        conn.execute("begin transaction")
        try:
            yield conn
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
        finally:
            conn.close()

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        # Check first instead of catching the error: a failed statement would abort the transaction.
        if _table_exists(connection, table_slice.schema, table_slice.table):
            connection.execute(_get_cleanup_statement(table_slice))


def _table_exists(connection, schema: str, table: str) -> bool:
    return bool(connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()[0])


class _PolarsTableHandler(DuckDBPolarsTypeHandler):
    """Writes polars frames, including empty ones, and lets a partitioned table gain new columns; an input whose
    table was never written is refused with what to materialize first (not DuckDB's catalog error)."""

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pl.DataFrame:
        if not _table_exists(connection, table_slice.schema, table_slice.table):
            partitions = sorted(map(str, context.asset_partition_keys)) if context.has_asset_partitions else []
            table = f"{table_slice.schema}.{table_slice.table}"
            raise ValueError(
                f"the warehouse has no table {table} (an input of {context.op_def.name}): materialize "
                f"{table_slice.table}{' for ' + ', '.join(partitions) if partitions else ''} first")
        return super().load_input(context, table_slice, connection)

    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection):
        arrow = obj.to_arrow()
        connection.register("_gosales_out", arrow)
        target = f"{table_slice.schema}.{table_slice.table}"
        if not table_slice.partition_dimensions:
            # Whole-table assets are replaced in one statement, so a changed schema is simply the new schema.
            connection.execute(f"create or replace table {target} as select * from _gosales_out")
        else:
            if not _table_exists(connection, table_slice.schema, table_slice.table):
                connection.execute(f"create table {target} as select * from _gosales_out")
            else:
                have = {r[0] for r in connection.execute(f"describe {target}").fetchall()}
                for name, dtype, *_ in connection.execute("describe select * from _gosales_out").fetchall():
                    if name not in have:
                        connection.execute(f'alter table {target} add column "{name}" {dtype}')
                connection.execute(f"insert into {target} by name select * from _gosales_out")
        connection.unregister("_gosales_out")
        context.add_output_metadata(
            {
                "row_count": obj.height,
                "dataframe_columns": MetadataValue.table_schema(
                    TableSchema(columns=[TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()])
                ),
            }
        )


class WarehouseIOManager(DuckDBIOManager):
    """Stores polars DataFrames as DuckDB tables (one table per asset; partitions are row slices). Every run that
    writes the warehouse uses it, so it holds the warehouse for the run like the `warehouse` resource (`run_hold`:
    the lease, one open database, the snapshot at the end of the run when due)."""

    snapshot_interval_minutes: float | None = DEFAULT_SNAPSHOT_INTERVAL_MINUTES
    threads: int | None = None  # DuckDB's threads (the `duckdb.threads` setting; None: one per core)

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext):
        with run_hold(self.database, self.snapshot_interval_minutes, context, self.threads):
            yield self.create_resource(context)

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_PolarsTableHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame

    def create_io_manager(self, context):
        return DbIOManager(
            db_client=_TransactionalDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="WarehouseIOManager",
        )


# ---------------------------------------------------------------------------------------------------------------------
# The widest tables as Parquet files beside the warehouse, one per partition, with a view of them inside it
# ---------------------------------------------------------------------------------------------------------------------
FRAMES_VIEW = "division_features"
# Per cutoff: ~300 feature columns of every customer known at it; a row per customer and division; the ranked list
# (at 500,000 customers 1.3 million rows of ~40 columns: ~5.7 s of the warehouse's lease to insert, ~1 s as a file).
CUTOFF_FILE_TABLES = ("customer_features", "als_embeddings", "whitespace")
FILE_TABLES = (FRAMES_VIEW, *CUTOFF_FILE_TABLES)
FILES_IO_MANAGER = "files_io_manager"  # the resource key of `PartitionFilesIOManager`, the IO manager of FILE_TABLES


def files_dir(database: str | Path, table: str) -> Path:
    """Where the partitions of `table` (one of FILE_TABLES) live: one Parquet file each, the model frames as
    `<warehouse>.frames/<division slug>/<cutoff>.parquet`, a cutoff table as `<warehouse>.<table>/<cutoff>.parquet`.
    Not in the DuckDB file: these are the widest things the runs write (~300 feature columns of every customer, or
    of a division's labelled population; the longest, the cutoff's whitespace list), and writing them there held the
    warehouse — whose single writer every run takes turns with — for the insert and the checkpoint its size sets off
    (~2.5 s of every division × cutoff run for a frame, ~7 s of every cutoff's features and ~5.7 s of its list at
    500,000 customers), and their reads by later runs held it again. A file is written and read by the run that
    needs it, without the warehouse's lease; the warehouse keeps a view of each table's files (`ensure_files_view`),
    so SQL sees one table as before."""
    if table == FRAMES_VIEW:
        return Path(str(database) + ".frames")
    if table in CUTOFF_FILE_TABLES:
        return Path(f"{database}.{table}")
    raise ValueError(f"{table!r} is not kept as files (those are {', '.join(FILE_TABLES)})")


def frames_dir(database: str | Path) -> Path:
    return files_dir(database, FRAMES_VIEW)


def frame_path(database: str | Path, division: str, cutoff: dt.date) -> Path:
    return frames_dir(database) / division_slug(division) / f"{cutoff.isoformat()}.parquet"


def cutoff_file(database: str | Path, table: str, cutoff: dt.date) -> Path:
    return files_dir(database, table) / f"{cutoff.isoformat()}.parquet"


def write_partition(database: str | Path, table: str, partition_key: str, frame: pl.DataFrame) -> Path:
    """Publish one partition of `table` (FILE_TABLES) as its file, atomically: a reader sees the old file or the
    whole new one."""
    path = (frame_path(database, *split_key(partition_key)) if table == FRAMES_VIEW
            else cutoff_file(database, table, parse_cutoff(partition_key)))
    return atomic_write_frame(path, frame, parquet=True)


def read_frames(database: str | Path, division: str, cutoffs: Sequence[dt.date]) -> pl.DataFrame:
    """The division's frames at these cutoffs as one frame, in the order given; columns by name (a column that a
    later frame gained is null in an earlier one). A missing file is an error naming it and what to materialize."""
    paths = [frame_path(database, division, c) for c in cutoffs]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"model frame file(s) missing: {', '.join(missing)}: materialize division_features "
                                f"of {division} at {', '.join(str(c) for c in cutoffs)} first")
    return _by_name([pl.read_parquet(p) for p in paths])


def read_cutoff_table(database: str | Path, table: str, cutoff: dt.date, *, columns: Sequence[str] | None = None,
                      customers: pl.Series | None = None, division: str | None = None) -> pl.DataFrame:
    """The rows of cutoff table `table` (CUTOFF_FILE_TABLES) at `cutoff`, from its file, in the file's order: only
    these `customers` / this `division` when given, only `columns` when given. Read without the warehouse. A missing
    file is an error naming it and what to materialize."""
    path = cutoff_file(database, table, cutoff)
    if not path.is_file():
        raise FileNotFoundError(f"{table} of {cutoff:%Y-%m} has no file {path}: materialize {table} for "
                                f"{cutoff:%Y-%m} first")
    rows = pl.scan_parquet(path)
    if division is not None:
        rows = rows.filter(pl.col("division") == division)
    if customers is not None:
        rows = rows.filter(pl.col("customer_id").is_in(customers.cast(pl.String).implode()))
    return (rows.select(columns) if columns is not None else rows).collect()


def _by_name(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames stacked with their columns matched by name (a column missing from one is null there)."""
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def frame_summaries(database: str | Path, division: str, first: dt.date, last: dt.date
                    ) -> list[tuple[dt.date, int, int]]:
    """(C', max window months, labelled positives) of each of the division's frames with first ≤ C' ≤ last that
    holds an uncensored row, in date order (three columns read of each file)."""
    out = []
    folder = frames_dir(database) / division_slug(division)
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        try:
            cutoff = dt.date.fromisoformat(path.stem)
        except ValueError:
            continue
        if not first <= cutoff <= last:
            continue
        rows = pl.read_parquet(path, columns=["window_months", "label", "censored"]).filter(~pl.col("censored"))
        if rows.height:
            positives = int(rows.get_column("label").sum() or 0)
            out.append((cutoff, int(rows.get_column("window_months").max()), positives))
    return out


def ensure_files_view(conn: duckdb.DuckDBPyConnection, database: str | Path, table: str) -> None:
    """The warehouse's `table` (one of FILE_TABLES): a view of its files, made once there is a file (DuckDB binds a
    view when it is created). A warehouse made before the table was files has it as a table: each partition of it is
    written to its file first (a file already there is newer and kept), then the table makes way for the view."""
    kind = conn.execute("select table_type from information_schema.tables where table_schema = ? and table_name = ?",
                        [WAREHOUSE_SCHEMA, table]).fetchone()
    if kind is not None and kind[0] == "BASE TABLE":
        keys = ("division", "cutoff_date") if table == FRAMES_VIEW else ("cutoff_date",)
        where = " and ".join(f"{k} = ?" for k in keys)
        for key in conn.execute(f"select distinct {', '.join(keys)} from {WAREHOUSE_SCHEMA}.{table}").fetchall():
            path = frame_path(database, *key) if table == FRAMES_VIEW else cutoff_file(database, table, *key)
            if not path.is_file():
                atomic_write_frame(path, conn.execute(f"select * from {WAREHOUSE_SCHEMA}.{table} where {where}",
                                                      list(key)).pl(), parquet=True)
        conn.execute(f"drop table {WAREHOUSE_SCHEMA}.{table}")
    if not any(files_dir(database, table).glob(_files_glob(table))):
        return
    pattern = str(files_dir(database, table) / _files_glob(table))
    have = conn.execute("select sql from duckdb_views() where schema_name = ? and view_name = ?",
                        [WAREHOUSE_SCHEMA, table]).fetchone()
    quoted = pattern.replace("'", "''")
    if have is None or f"'{quoted}'" not in (have[0] or ""):  # none yet, or the warehouse moved
        conn.execute(f"create or replace view {WAREHOUSE_SCHEMA}.{table} as select * from "
                     f"read_parquet('{quoted}', union_by_name = true)")


def move_tables_to_files(database: str | Path, threads: int | None = None) -> None:
    """Move each of FILE_TABLES that the warehouse still has as a table (made by an engine from before they were
    files) out to its files, with its view (`ensure_files_view`); one catalog query when there is none."""
    conn = connect_warehouse(database, threads=threads)
    try:
        tables = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE' "
            f"and table_name in ({', '.join('?' for _ in FILE_TABLES)}) order by table_name",
            [WAREHOUSE_SCHEMA, *FILE_TABLES]).fetchall()]
        for table in tables:
            ensure_files_view(conn, database, table)
    finally:
        conn.close()


def _files_glob(table: str) -> str:
    return "*/*.parquet" if table == FRAMES_VIEW else "*.parquet"


class PartitionFilesIOManager(ConfigurableIOManager):
    """Stores the partitions of the FILE_TABLES assets as files beside the warehouse `database` (`files_dir`); needs
    no hold of the warehouse, so a run publishes them while another run has the file."""

    database: str

    def handle_output(self, context: OutputContext, obj: pl.DataFrame) -> None:
        path = write_partition(self.database, context.asset_key.to_user_string(), context.asset_partition_key, obj)
        context.add_output_metadata({
            "row_count": obj.height,
            "path": MetadataValue.path(str(path)),
            "dataframe_columns": MetadataValue.table_schema(
                TableSchema(columns=[TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()])),
        })

    def load_input(self, context: InputContext) -> pl.DataFrame:
        table = context.asset_key.to_user_string()
        keys = sorted(context.asset_partition_keys)
        if not keys:
            raise ValueError(f"no {table} partition to load for {context.op_def.name}")
        if table != FRAMES_VIEW:
            return _by_name([read_cutoff_table(self.database, table, parse_cutoff(k)) for k in keys])
        by_division: dict[str, list[dt.date]] = {}
        for key in keys:
            division, cutoff = split_key(key)
            by_division.setdefault(division, []).append(cutoff)
        return _by_name([read_frames(self.database, d, cs) for d, cs in sorted(by_division.items())])


class ArtifactStore(ConfigurableResource):
    """Files under the artifacts root, written atomically (temp file + rename)."""

    root: str

    def path(self, *parts: str) -> Path:
        return Path(self.root).joinpath(*parts)

    def write_text(self, rel: Sequence[str], text: str) -> Path:
        return atomic_write_text(self.path(*rel), text)

    def write_json(self, rel: Sequence[str], obj: Any) -> Path:
        return atomic_write_text(self.path(*rel), json_text(obj))

    def write_csv(self, rel: Sequence[str], df: pl.DataFrame) -> Path:
        return atomic_write_frame(self.path(*rel), df)

    def write(self, rel: Sequence[str], content: Any) -> Path:
        """One file of a step's artifacts, written by its suffix (`core.artifact_files.write_artifact`)."""
        return write_artifact(self.path(*rel), content)
