"""The published read-only snapshot of the warehouse: what people query while the engine works.

DuckDB lets one process write a database file, and a process that writes it locks it against every other process,
readers included. So analysts never open the live warehouse: they open `<warehouse folder>/snapshot/<name>`, a copy
the engine publishes (`publish`), described by `snapshot.json` beside it (when, from which run, from which state of
the warehouse).

How a copy is made so that nobody waits on anybody and nobody sees half a file:

- The live file is first checkpointed (the caller's `checkpoint`: every committed change in the main file, the
  write-ahead log empty), then copied by a *child process* that holds DuckDB's own shared lock on the file while
  it copies: no writer can change the file meanwhile, and other readers are not blocked. It runs in a child
  because POSIX record locks belong to a process and closing any descriptor of the file drops all of them:
  opening and closing the file in a process that has DuckDB connected to it would silently unlock the warehouse.
- The copy goes to a temp file in the snapshot folder, is fsynced, made read-only and renamed over the snapshot
  (`os.replace`): a reader opens either the old or the new file, never a partial one. A reader that holds the old
  snapshot open keeps reading the old file (its inode lives on until it closes it) and never blocks a publish.

This module imports only the standard library, so the child (`python -m gosales_assets.snapshot SRC TMP`) starts
in a few tens of milliseconds.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SNAPSHOT_FOLDER = "snapshot"
META_NAME = "snapshot.json"
CHANGES_NAME = ".changes_seen.json"  # when a run's end first found the warehouse changed since the snapshot
LOCK_NAME = ".publish.lock"
_TMP_SUFFIX = ".tmp"
_COPY_CHUNK = 64 << 20

# Exit codes of the child that copies the live file.
_BUSY, _UNCHECKPOINTED = 3, 4


class SnapshotError(Exception):
    """The snapshot could not be published or read; the message is one line that says what to do."""


@dataclass(frozen=True)
class Published:
    """What `publish` did: `copied` False means it decided a copy was not needed (`reason` says why)."""

    copied: bool
    reason: str
    path: Path
    meta: dict | None = None


def snapshot_path(warehouse: str | Path) -> Path:
    """Where the snapshot of `warehouse` is published: `<warehouse folder>/snapshot/<warehouse file name>` (the same
    file system as the warehouse, so the copy is one local copy and the rename is atomic)."""
    warehouse = Path(warehouse)
    return warehouse.parent / SNAPSHOT_FOLDER / warehouse.name


def meta_path(snapshot: Path) -> Path:
    return snapshot.parent / META_NAME


def read_meta(snapshot: Path) -> dict | None:
    """The record of the published snapshot, or None when there is none (or it is unreadable)."""
    try:
        meta = json.loads(meta_path(snapshot).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def warehouse_state(warehouse: Path) -> tuple[int, int] | None:
    """(modification time in ns, size) of the live warehouse, counting its write-ahead log; None when it does not
    exist. Any committed write changes it: DuckDB writes either the file or its log."""
    try:
        st = os.stat(warehouse)
    except FileNotFoundError:
        return None
    mtime, size = st.st_mtime_ns, st.st_size
    try:
        wal = os.stat(f"{warehouse}.wal")
    except FileNotFoundError:
        return mtime, size
    if wal.st_size:  # an empty log holds nothing the file does not
        mtime, size = max(mtime, wal.st_mtime_ns), size + wal.st_size
    return mtime, size


def is_current(state: tuple[int, int] | None, meta: dict | None) -> bool:
    """Whether the published snapshot `meta` is of exactly this state (`warehouse_state`) of the live file."""
    return state is not None and meta is not None and list(state) == [meta.get("warehouse_mtime_ns"),
                                                                       meta.get("warehouse_bytes")]


def snapshot_due(*, now: float, interval_s: float | None, force: bool, state: tuple[int, int] | None,
                 meta: dict | None, snapshot_stat: tuple[int, int] | None,
                 changes_seen: float | None = None) -> tuple[bool, str]:
    """Whether to copy the warehouse now, and why (or why not).

    - `state`: `warehouse_state` of the live file; `meta`: the published record; `snapshot_stat`: (inode, mtime_ns)
      of the snapshot file as it is on disk (None when absent); `changes_seen`: when the end of a run first found
      the warehouse changed since this snapshot (`changes_seen_at`; None: this is the first).
    - Not forced and `interval_s` None: never (publishing at the end of runs is switched off).
    - No snapshot yet, or a snapshot file that is not the one recorded (replaced or written to): copy.
    - A snapshot of exactly this state of the warehouse: never copy again (not even forced; it is current).
    - Otherwise `force` copies; without it, copy when the changes it lacks were first seen at least `interval_s`
      ago. The age of the changes, not of the snapshot: the first run after a quiet month (a monthly increment's
      first run) does not copy a file its next runs change at once; a backfill still gets a copy about once per
      interval while it writes, and the end of it gets one from the `publish_snapshot` sensor (`automation`).
    """
    if state is None:
        return False, "there is no warehouse yet"
    if interval_s is None and not force:
        return False, "publishing at the end of runs is off (snapshot.interval_minutes: null)"
    if meta is None or snapshot_stat is None:
        return True, "there is no snapshot yet"
    if list(snapshot_stat) != [meta.get("snapshot_inode"), meta.get("snapshot_mtime_ns")]:
        return True, "the snapshot file is not the one recorded in snapshot.json"
    if is_current(state, meta):
        return False, f"the snapshot of {meta.get('taken_at')} is current (the warehouse has not changed since)"
    if force:
        return True, "requested"
    age = now - (now if changes_seen is None else changes_seen)
    if age < interval_s:
        return False, (f"the warehouse's changes since the snapshot were first seen {age / 60:.1f} min ago, under "
                       f"snapshot.interval_minutes ({interval_s / 60:g}); a run ending after that publishes one, or "
                       "the publish_snapshot sensor once no run is in progress")
    return True, f"the warehouse has had changes the snapshot lacks for {age / 60:.1f} min"


def changes_seen_at(snapshot: Path, meta: dict | None) -> float | None:
    """When the end of a run first found the warehouse changed since the published snapshot `meta` (the record
    beside it, `CHANGES_NAME`); None when none did yet, or the record is of an earlier snapshot."""
    try:
        rec = json.loads((snapshot.parent / CHANGES_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or meta is None or rec.get("snapshot_taken_at_unix") != meta.get("taken_at_unix"):
        return None
    try:
        return float(rec["seen_at_unix"])
    except (KeyError, TypeError, ValueError):
        return None


def write_meta(snapshot: Path, meta: dict) -> None:
    """Record `meta` as the snapshot's record (`snapshot.json`), replaced whole: a reader sees the old or the new."""
    meta_file = meta_path(snapshot)
    tmp = meta_file.with_name(f".{META_NAME}.{os.getpid()}{_TMP_SUFFIX}")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, meta_file)


def _note_changes_seen(snapshot: Path, meta: dict, now: float) -> None:
    folder = snapshot.parent
    tmp = folder / f".{CHANGES_NAME}.{os.getpid()}{_TMP_SUFFIX}"
    tmp.write_text(json.dumps({"seen_at_unix": now, "seen_at": _utc(now),
                               "snapshot_taken_at_unix": meta.get("taken_at_unix")}) + "\n", encoding="utf-8")
    os.replace(tmp, folder / CHANGES_NAME)


def _snapshot_stat(snapshot: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(snapshot)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


# ---- the child: copy the live file under DuckDB's shared lock --------------------------------------------------
def _copy_fd(src: int, dst: int, size: int) -> None:
    """Copy `size` bytes; the kernel's copy_file_range first (a server-side or copy-on-write clone on file systems
    that have one), plain reads and writes where it is not available."""
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src, dst, min(_COPY_CHUNK, size - done), done, done)
            if n == 0:
                break
            done += n
    except (AttributeError, OSError) as err:
        if isinstance(err, OSError) and err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                                          errno.EPERM):
            raise
    while done < size:
        chunk = os.pread(src, min(_COPY_CHUNK, size - done), done)
        if not chunk:
            break
        done += os.pwrite(dst, chunk, done)
    if done != size:
        raise OSError(f"copied {done} of {size} bytes")


def copy_under_read_lock(src: Path, tmp: Path) -> dict:
    """Copy the warehouse `src` to the new file `tmp` (fsynced) while holding a shared lock on `src`, the lock a
    read-only DuckDB connection takes: writers wait, readers do not. Exits the process with `_BUSY` when a writer
    holds the file and `_UNCHECKPOINTED` when its write-ahead log holds changes the file does not have yet.
    Run in a child process only (see the module docstring)."""
    fd = os.open(src, os.O_RDONLY)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            sys.exit(_BUSY)
        try:
            if os.stat(f"{src}.wal").st_size > 0:
                sys.exit(_UNCHECKPOINTED)
        except FileNotFoundError:
            pass
        st = os.fstat(fd)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _copy_fd(fd, out, st.st_size)
            os.fsync(out)
        finally:
            os.close(out)
        return {"warehouse_mtime_ns": st.st_mtime_ns, "warehouse_bytes": st.st_size}
    finally:
        os.close(fd)  # releases the lock


def _child_copy(src: Path, tmp: Path) -> dict | int:
    """Run `copy_under_read_lock` in a child process: its record (the file's state under the lock) or its exit
    code (`_BUSY`, `_UNCHECKPOINTED`)."""
    proc = subprocess.run([sys.executable, "-m", "gosales_assets.snapshot", str(src), str(tmp)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode in (_BUSY, _UNCHECKPOINTED):
        return proc.returncode
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        raise SnapshotError(f"copying {src} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return json.loads(proc.stdout)


# ---- publishing ------------------------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_leftovers(folder: Path, name: str) -> None:
    """Temp copies of a publish that was killed, and a write-ahead log someone's writable session left beside the
    snapshot (it belongs to the replaced file; next to the new one it would be replayed into the wrong file)."""
    for pattern in (f".{name}.*{_TMP_SUFFIX}", f".{META_NAME}.*{_TMP_SUFFIX}", f".{CHANGES_NAME}.*{_TMP_SUFFIX}"):
        for p in folder.glob(pattern):
            p.unlink(missing_ok=True)
    (folder / f"{name}.wal").unlink(missing_ok=True)


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def publish(warehouse: str | Path, *, checkpoint: Callable[[], None], interval_s: float | None = None,
            force: bool = False, run_id: str | None = None, source: str, wait_s: float = 0.0,
            now: float | None = None) -> Published:
    """Publish a read-only snapshot of `warehouse` if `snapshot_due` says so (see the module docstring for how).

    `checkpoint()` must open the warehouse, CHECKPOINT and close it (raising when another process holds it); it is
    called only when the live file has un-checkpointed changes or a writer got in first, at most a few times within
    `wait_s` seconds. Raises `SnapshotError` (or what `checkpoint` raises) with one line when no copy can be made.
    """
    warehouse = Path(warehouse).resolve()
    target = snapshot_path(warehouse)
    clock = time.time if now is None else (lambda: now)  # `now`: a fixed clock, for tests of the interval

    def due() -> tuple[bool, str, dict | None, bool, float | None]:
        """snapshot_due's answer, with what it read: the record, whether it is current, when its lack was seen."""
        meta, state = read_meta(target), warehouse_state(warehouse)
        seen = changes_seen_at(target, meta)
        go, reason = snapshot_due(now=clock(), interval_s=interval_s, force=force, state=state, meta=meta,
                                  snapshot_stat=_snapshot_stat(target), changes_seen=seen)
        return go, reason, meta, state is not None and not is_current(state, meta), seen

    go, reason, meta, changed, seen = due()  # cheap (three stats and two small JSONs): runs at the end of every run
    if not go:
        if not force and interval_s is not None and meta is not None and changed and seen is None:
            _note_changes_seen(target, meta, clock())  # the first run end to see these changes starts their clock
        return Published(False, reason, target, meta)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / LOCK_NAME, "a+") as lock:
        # One publish at a time per snapshot (a run ending while `gosales snapshot` runs): the second one waits, then
        # usually finds the snapshot current.
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise SnapshotError(f"another process is publishing the snapshot {target} right now; "
                                        "try again in a moment") from None
                time.sleep(0.2)
        go, reason, meta, _, _ = due()
        if not go:
            return Published(False, reason, target, meta)
        _remove_leftovers(target.parent, target.name)
        tmp = target.parent / f".{target.name}.{os.getpid()}{_TMP_SUFFIX}"
        started = time.monotonic()
        try:
            for attempt in range(4):
                outcome = _child_copy(warehouse, tmp)
                if isinstance(outcome, dict):
                    break
                tmp.unlink(missing_ok=True)
                if attempt == 3:
                    raise SnapshotError(f"could not copy the warehouse {warehouse}: a writer held it again after each "
                                        "checkpoint (4 attempts); try again when no run is writing it")
                # A writer holds the file, or its log has changes the file does not: open it (waiting for the
                # writer, or raising the one-line "held by process N" error), fold the log in, and copy again.
                checkpoint()
            record = outcome
            os.chmod(tmp, 0o444)  # a snapshot is for reading: a session that opens it writable fails (not root)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            need = warehouse_state(warehouse)
            size = (f" (it needs {need[1] / 1e9:.2f} GB free in {target.parent})"
                    if need and err.errno in (errno.ENOSPC, errno.EDQUOT) else "")
            raise SnapshotError(f"the snapshot {target} could not be written: {err.strerror or err}{size}") from None
        snap = os.stat(target)
        taken = clock()  # the copy shows the warehouse as it was when the child locked it, a moment ago
        meta = {
            "taken_at": _utc(taken), "taken_at_unix": taken, "run_id": run_id, "source": source,
            "warehouse": str(warehouse), **record, "snapshot_inode": snap.st_ino,
            "snapshot_mtime_ns": snap.st_mtime_ns, "copy_seconds": round(time.monotonic() - started, 3),
        }
        write_meta(target, meta)
        return Published(True, reason, target, meta)


def describe(meta: dict | None, warehouse: Path, *, now: float | None = None) -> str:
    """One line on the snapshot a query reads: when it was taken, by what, and whether the warehouse changed since."""
    if meta is None:
        return "snapshot of unknown age (snapshot.json is missing: `gosales snapshot` publishes a new one)"
    now = time.time() if now is None else now
    age_min = max(0.0, now - float(meta.get("taken_at_unix", now))) / 60
    by = f"run {meta['run_id']}" if meta.get("run_id") else f"`{meta.get('source', '?')}`"
    line = f"snapshot taken {meta.get('taken_at')} ({age_min:.0f} min ago) by {by}"
    state = warehouse_state(warehouse)
    if state is not None and not is_current(state, meta):
        line += "; the warehouse has changed since (`gosales snapshot` publishes a newer one)"
    return line


def _child_main(argv: list[str]) -> int:
    src, tmp = Path(argv[0]), Path(argv[1])
    print(json.dumps(copy_under_read_lock(src, tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
