"""Writing artifact files atomically (temp file + rename), by suffix for the artifacts a step produces."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux); elsewhere set and restored
    once, at import."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what a plain open() would give: mkstemp's temp files are private (0600)


@contextmanager
def _replaced_atomically(path: Path) -> Iterator[str]:
    """A temp file beside `path` for the caller to write; renamed onto `path` (with a plain open()'s mode) when the
    block ends without an error, removed otherwise: a reader sees either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` so that a reader sees either the old file or the whole new one."""
    with _replaced_atomically(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return path


# The engine's Parquet files (the cutoffs' features, the model frames, model artifacts) are written once and read by
# every division of the cutoff: LZ4 costs less CPU both ways than polars' default zstd (at 500,000 customers a cutoff's
# features: 2.7 against 3.7 CPU-s to write, 0.67 against 1.0 to read a division's population) for files ~35 % larger.
PARQUET_COMPRESSION = "lz4"


def atomic_write_frame(path: Path, frame, *, parquet: bool = False) -> Path:
    """Write a polars frame to `path` as CSV (or Parquet) atomically, by polars' own writer straight into the temp file:
    a list of a million rows is hundreds of MB of CSV, which as one Python string would cost a copy and an encoding
    (about half the write's time)."""
    with _replaced_atomically(path) as tmp:
        frame.write_parquet(tmp, compression=PARQUET_COMPRESSION) if parquet else frame.write_csv(tmp)
    return path


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_artifact(path: Path, content: Any) -> Path:
    """One artifact file by its suffix: `.json` (an object), `.csv` / `.parquet` (a polars frame), else text (a
    str) or bytes (a chart)."""
    path = Path(path)
    if path.name.endswith(".json"):
        return atomic_write_text(path, json_text(content))
    if path.name.endswith((".csv", ".parquet")):
        return atomic_write_frame(path, content, parquet=path.name.endswith(".parquet"))
    if isinstance(content, str):
        return atomic_write_text(path, content)
    with _replaced_atomically(path) as tmp:
        Path(tmp).write_bytes(content)
    return path
