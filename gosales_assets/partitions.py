"""Partitions: `division` (static, from config), `cutoff` (dynamic month-ends), and `division × cutoff`.

Also the calendar rules every later step relies on (DESIGN.md §3):
- the label window of cutoff C is (C, C + W], W in months, month-end aligned;
- C is *trainable* for a division when C + W ≤ data end (the window is inside the data); otherwise it is
  *score-only* (labels censored);
- the model used at C trains only on cutoffs C' with C' + W' ≤ C (their windows closed before C).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from dagster import (
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    StaticPartitionsDefinition,
)
from dagster._utils.warnings import BetaWarning

from gosales_assets.core.calendar import add_months, month_end, window_end  # noqa: F401 (re-exported)
from gosales_assets.settings import Settings

CUTOFF_PARTITIONS_NAME = "cutoff"
cutoff_partitions = DynamicPartitionsDefinition(name=CUTOFF_PARTITIONS_NAME)


def division_partitions(settings: Settings) -> StaticPartitionsDefinition:
    return StaticPartitionsDefinition(list(settings.divisions))


def division_cutoff_partitions(settings: Settings) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({"cutoff": cutoff_partitions, "division": division_partitions(settings)})


def same_cutoff() -> MultiToSingleDimensionPartitionMapping:
    """Maps a cutoff partition to every division × cutoff partition of that cutoff (and back)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # stable in practice; Dagster still labels it beta
        return MultiToSingleDimensionPartitionMapping(partition_dimension_name="cutoff")


@dataclass(frozen=True)
class CutoffStatus:
    division: str
    cutoff: dt.date
    window_months: int
    window_end: dt.date
    trainable: bool

    @property
    def reason(self) -> str:
        if self.trainable:
            return f"label window ({self.cutoff}, {self.window_end}] is inside the data"
        return (f"score-only: label window ({self.cutoff}, {self.window_end}] ends after the data end; "
                "labels are censored")


def cutoff_status(settings: Settings, division: str, cutoff: dt.date, window_months: int | None = None) -> CutoffStatus:
    """Whether `cutoff` is trainable for `division` (with its configured window unless one is given)."""
    w = window_months if window_months is not None else settings.window_months(division)
    end = window_end(cutoff, w)
    return CutoffStatus(division, cutoff, w, end, trainable=end <= settings.data.end_date)


def training_cutoffs(cutoff: dt.date, candidates: Iterable[tuple[dt.date, int]]) -> list[dt.date]:
    """Candidate cutoffs C' (with their label window W') whose window closed by C: C' + W' ≤ C. Sorted."""
    return sorted(c for c, w in candidates if window_end(c, w) <= cutoff)


def parse_cutoff(key: str) -> dt.date:
    try:
        d = dt.date.fromisoformat(key)
    except ValueError:
        raise ValueError(f"cutoff partition key {key!r} is not an ISO date YYYY-MM-DD") from None
    if d != month_end(d):
        raise ValueError(f"cutoff partition key {key!r} is not a month-end date")
    return d


def split_key(key: str | MultiPartitionKey) -> tuple[str, dt.date]:
    """(division, cutoff) of a `division × cutoff` partition key."""
    if not isinstance(key, MultiPartitionKey):
        raise TypeError(f"expected a division × cutoff partition key, got {key!r}")
    dims = key.keys_by_dimension
    return dims["division"], parse_cutoff(dims["cutoff"])


def multi_key(division: str, cutoff: dt.date | str) -> MultiPartitionKey:
    return MultiPartitionKey({"division": division, "cutoff": str(cutoff)})
