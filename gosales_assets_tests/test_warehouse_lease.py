"""The warehouse's lease: the engine's processes take turns with the DuckDB file, a run lets go of it while it computes
without it (a model's training), and a killed holder never blocks the next one."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb

from gosales_assets.partitions import multi_key
from gosales_assets.resources import (
    HELD,
    LET_GO,
    RELEASED,
    RETAKEN,
    hold_warehouse,
    lease_path,
    released_warehouse,
)
from gosales_assets_tests.conftest import open_elsewhere

SPAWN = mp.get_context("spawn")  # a fresh interpreter per process, as Dagster's run workers are


def _stamp(folder: str, name: str) -> None:
    Path(folder, name).write_text(repr(time.monotonic()))


def _read(folder: Path, name: str) -> float:
    return float((folder / name).read_text())


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.02)


def _first_run(db: str, folder: str) -> None:
    """Holds the warehouse, writes, lets go while it 'trains' until the second run has written, then takes it back."""
    messages = []
    with hold_warehouse(db, log=messages.append, owner="run first", journal=messages.append):
        with duckdb.connect(db) as conn:
            conn.execute("create table a as select 1 as x")
        _stamp(folder, "a_held")
        with released_warehouse(db):
            _stamp(folder, "a_released")
            _wait_for(Path(folder, "b_wrote"))
        _stamp(folder, "a_back")
        with duckdb.connect(db) as conn:  # what the other run wrote meanwhile is there
            Path(folder, "a_sees").write_text(str(conn.execute("select count(*) from b").fetchone()[0]))
    Path(folder, "a_log").write_text("\n".join(messages))


def _second_run(db: str, folder: str) -> None:
    with hold_warehouse(db, owner="run second"):
        _stamp(folder, "b_held")
        with duckdb.connect(db) as conn:
            conn.execute("create table b as select * from range(5)")
        _stamp(folder, "b_wrote")
        time.sleep(0.5)  # the first run, done 'training', waits for this hold to end
        _stamp(folder, "b_end")


def test_runs_take_turns_and_a_run_lets_go_while_it_computes(tmp_path):
    db, folder = str(tmp_path / "warehouse.duckdb"), tmp_path / "stamps"
    folder.mkdir()
    first = SPAWN.Process(target=_first_run, args=(db, str(folder)))
    first.start()
    _wait_for(folder / "a_held")
    second = SPAWN.Process(target=_second_run, args=(db, str(folder)))
    second.start()
    for p in (first, second):
        p.join(60)
        assert p.exitcode == 0
    # the second run got the warehouse only once the first let go of it, and the first took it back only after the
    # second's hold ended: never two holders at once
    assert _read(folder, "a_released") <= _read(folder, "b_held")
    assert _read(folder, "b_end") <= _read(folder, "a_back")
    assert (folder / "a_sees").read_text() == "5"
    # the first run noted its moves and, back from its computation, said whom it waited for (the second run), once
    log = (folder / "a_log").read_text().splitlines()
    assert log[:2] == [HELD, RELEASED] and log[3:] == [RETAKEN, LET_GO], log
    assert log[2].startswith(f"waiting for run second (process {second.pid} on "), log


def test_a_killed_holder_does_not_block_the_next_run(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from gosales_assets.resources import hold_warehouse\n"
         f"with hold_warehouse({str(db)!r}):\n    print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert "process" in lease_path(db).read_text()
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: no cleanup runs in it
        holder.wait(10)
        start = time.monotonic()
        with hold_warehouse(db):  # the kernel released the dead process's lock and DuckDB's
            assert time.monotonic() - start < 5
    finally:
        if holder.poll() is None:
            holder.kill()


def test_release_outside_a_hold_does_nothing(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    with released_warehouse(db):  # a step called outside a run: nothing held, nothing to let go
        pass
    with hold_warehouse(db), hold_warehouse(db):  # nested holds share one connection and one lease
        with released_warehouse(db):
            other = open_elsewhere(db)
            assert other.returncode == 0, other.stderr  # let go: another process opens the file
        other = open_elsewhere(db)
        assert other.returncode != 0 and "lock" in other.stderr.lower()  # held again


def test_division_model_lets_go_of_the_warehouse_while_it_trains(tmp_path, monkeypatch):
    import datetime as dt

    import polars as pl

    from gosales_assets.assets.models import FINGERPRINT_FILE
    from gosales_assets.core import modeling
    from gosales_assets_tests.conftest import demo_pipeline

    project, instance = demo_pipeline(tmp_path / "p", {"labels": {"auto_widen": {"enabled": False}}}, customers=600,
                                      cutoffs=["2025-03-31", "2025-09-30"], divisions=["Simulation"],
                                      division_assets=["labels", "division_features"])
    db = str(project.settings.warehouse_path)
    seen = []
    train = modeling.train_division_model

    def training(*args, **kw):
        # while the model trains, another process can open the warehouse (and could take the lease)
        other = open_elsewhere(db)
        seen.append(other.returncode)
        return train(*args, **kw)

    monkeypatch.setattr(modeling, "train_division_model", training)
    # a fresh fit: the model demo_pipeline saved is not reused
    (project.settings.artifacts_dir / "models" / "simulation" / "2025-09-30" / FINGERPRINT_FILE).unlink(missing_ok=True)
    result = project.materialize(["division_model"], instance=instance,
                                 partition_key=multi_key("Simulation", "2025-09-30"))
    assert seen == [0]
    # and the run held it again to write its registry row
    assert result.success
    assert project.table("division_model").filter(pl.col("cutoff_date") == dt.date(2025, 9, 30)).height == 1


def _run_then_publish(db: str, folder: str) -> None:
    from gosales_assets.resources import publish_after_run

    with hold_warehouse(db, owner="run publishing",
                        before_let_go=lambda: publish_after_run(db, 30.0, "run-publishing")):
        with duckdb.connect(db) as conn:
            conn.execute("create table published as select * from range(3)")
        _stamp(folder, "p_held")
        _wait_for(Path(folder, "w_waiting"))
        time.sleep(0.3)  # the other run is blocked on the lease now


def _waiting_run(db: str, folder: str) -> None:
    _wait_for(Path(folder, "p_held"))
    _stamp(folder, "w_waiting")
    with hold_warehouse(db, owner="run waiting"):
        _stamp(folder, "w_held")
        time.sleep(2.0)  # holds the file while the test looks at the snapshot


def test_the_end_of_run_snapshot_is_published_before_a_waiting_run_gets_the_file(tmp_path):
    """A run waiting for the lease takes it the moment it is let go; the snapshot of the run that ends is copied
    before that (file closed, lease still held), so it is never starved by a busy backfill."""
    db, folder = str(tmp_path / "warehouse.duckdb"), tmp_path / "stamps"
    folder.mkdir()
    procs = [SPAWN.Process(target=f, args=(db, str(folder))) for f in (_run_then_publish, _waiting_run)]
    for p in procs:
        p.start()
    _wait_for(folder / "w_held")
    snapshot = tmp_path / "snapshot" / "warehouse.duckdb"
    assert snapshot.is_file()  # published while the waiting run still waited
    with duckdb.connect(str(snapshot), read_only=True) as conn:
        assert conn.execute("select count(*) from published").fetchone()[0] == 3
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


def test_cutoff_features_let_go_of_the_warehouse_while_they_compute(tmp_path, monkeypatch):
    from gosales_assets.assets import features as feature_assets
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.partitions import cutoff_key
    from gosales_assets_tests.conftest import CUTOFF_ASSETS, new_project

    project = new_project(tmp_path / "p", {"cutoffs": ["2025-09-30"]})
    generate_demo_data(project.settings.landing_dir, customers=400, seed=7, settings=project.settings,
                       ground_truth=False)
    assert project.materialize().success
    db = str(project.settings.warehouse_path)
    seen = {}
    # The cutoff's builders run side by side (two threads): one probe at a time, or the two other processes would
    # find the file taken by each other rather than by the run.
    probe = threading.Lock()
    # ... and side by side indeed: the first build of each waits for the other's (a sequential step would break it)
    both_started = threading.Barrier(2, timeout=60)

    def free_during(deadline_s: float = 60.0) -> int:
        # The step reads the rebuilds' rows and stores its small tables under the hold while the first build already
        # computes (by design, ~1 s at 500,000 customers): the file must come free *during* each build, not at its
        # first instant. A step that held it through a build would keep every attempt failing until the deadline.
        deadline = time.monotonic() + deadline_s
        while True:
            with probe:
                other = open_elsewhere(db)
            if other.returncode == 0 or time.monotonic() > deadline:
                return other.returncode
            time.sleep(0.05)

    def opened_elsewhere(name, compute):
        def wrapped(*args, **kw):
            first = name not in seen
            seen.setdefault(name, []).append(free_during())
            if first:
                both_started.wait()
            return compute(*args, **kw)
        return wrapped

    monkeypatch.setattr(feature_assets, "build_customer_features",
                        opened_elsewhere("customer_features", feature_assets.build_customer_features))
    monkeypatch.setattr(feature_assets, "fit_als", opened_elsewhere("als", feature_assets.fit_als))
    assert project.materialize(CUTOFF_ASSETS, partition_key=cutoff_key("2025-09-30")).success
    # the published build and the two leakage rebuilds (the real rows after the cutoff present, then perturbed)
    # each run with the warehouse let go: another process opened it every time
    assert seen == {"customer_features": [0, 0, 0], "als": [0, 0, 0]}, seen
    # ... and the run held it again in between: the outputs and check results are stored
    assert {"customer_features", "als_embeddings"} <= project.table_names()


def test_fact_events_let_go_of_the_warehouse_while_they_roll_up(tmp_path, monkeypatch):
    """The star run's last step (the invoice roll-up, ~30 s at 500,000 customers) computes with the file free: the
    cutoffs' features, which wait for the new facts and not for the events, read it meanwhile."""
    from gosales_assets.assets import star as star_assets
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets_tests.conftest import new_project

    project = new_project(tmp_path / "p", {"cutoffs": ["2025-09-30"]})
    generate_demo_data(project.settings.landing_dir, customers=200, seed=7, settings=project.settings,
                       ground_truth=False)
    db = str(project.settings.warehouse_path)
    seen = []
    build = star_assets.build_fact_events

    def probed(*args, **kw):
        seen.append(open_elsewhere(db).returncode)
        return build(*args, **kw)

    monkeypatch.setattr(star_assets, "build_fact_events", probed)
    assert project.materialize().success
    assert seen == [0], seen  # another process opened the file while the events were computed
    # ... and the run held it again to store them
    assert project.table("fact_events").height > 0
