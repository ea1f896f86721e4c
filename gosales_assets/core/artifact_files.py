"""Writing artifact files: atomically for text (temp file + rename), by suffix for the artifacts a step produces."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` so that a reader sees either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_artifact(path: Path, content: Any) -> Path:
    """One artifact file by its suffix: `.json` (an object), `.csv` / `.parquet` (a polars frame), else text (a
    str) or bytes (a chart)."""
    path = Path(path)
    if path.name.endswith(".json"):
        return atomic_write_text(path, json_text(content))
    if path.name.endswith(".csv"):
        return atomic_write_text(path, content.write_csv())
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".parquet"):
        content.write_parquet(path)
    elif isinstance(content, str):
        atomic_write_text(path, content)
    else:
        path.write_bytes(content)
    return path
