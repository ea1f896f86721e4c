"""Partitions: `division` (static, from config), `cutoff` (month partitions), `division × cutoff`, and the
partition mappings that declare every read of another partition.

The `cutoff` dimension is a `MonthlyPartitionsDefinition` keyed `YYYY-MM`: partition `2026-03` is the cutoff
at the end of March 2026 (the month-end date 2026-03-31 is what the tables store in `cutoff_date`). Its
partitions run from the first configured cutoff to the last month-end the data reaches (`data.end_date`), so a
new month in the data is a new partition. Time partitions let Dagster map "the cutoffs before this one", and so
order a backfill by itself; docs/ARCHITECTURE.md gives the reasons and the consequences.

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
    DimensionPartitionMapping,
    IdentityPartitionMapping,
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
)
from dagster._utils.warnings import BetaWarning

from gosales_assets.core.calendar import add_months, month_end, window_end  # noqa: F401 (re-exported)
from gosales_assets.settings import Settings

CUTOFF_KEY_FORMAT = "%Y-%m"


def cutoff_key(cutoff: dt.date | str) -> str:
    """The `cutoff` partition key of a month-end date (or of a key / date string): `2026-03-31` → `2026-03`."""
    return (parse_cutoff(cutoff) if isinstance(cutoff, str) else cutoff).strftime(CUTOFF_KEY_FORMAT)


def parse_cutoff(key: str) -> dt.date:
    """The month-end date of a cutoff partition key `YYYY-MM`; a month-end date `YYYY-MM-DD` is accepted too (what
    people type on the command line)."""
    try:
        if len(key) == 7:
            return month_end(dt.datetime.strptime(key, CUTOFF_KEY_FORMAT).date())
        d = dt.date.fromisoformat(key)
    except ValueError:
        raise ValueError(f"cutoff {key!r} is neither a partition key YYYY-MM nor a month-end date YYYY-MM-DD") \
            from None
    if d != month_end(d):
        raise ValueError(f"cutoff {key!r} is not a month-end date (the month ends {month_end(d)})")
    return d


def cutoff_partitions(settings: Settings) -> MonthlyPartitionsDefinition:
    """Every month-end from the first configured cutoff to the last month-end the data reaches."""
    first, last = settings.cutoffs[0], settings.last_cutoff
    return MonthlyPartitionsDefinition(start_date=first.strftime(CUTOFF_KEY_FORMAT),
                                       end_date=add_months(last, 1).strftime(CUTOFF_KEY_FORMAT),
                                       fmt=CUTOFF_KEY_FORMAT)


def division_partitions(settings: Settings) -> StaticPartitionsDefinition:
    return StaticPartitionsDefinition(list(settings.divisions))


def division_cutoff_partitions(settings: Settings) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({"cutoff": cutoff_partitions(settings), "division": division_partitions(settings)})


def same_cutoff() -> MultiToSingleDimensionPartitionMapping:
    """Maps a cutoff partition to every division × cutoff partition of that cutoff (and back)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # stable in practice; Dagster still labels it beta
        return MultiToSingleDimensionPartitionMapping(partition_dimension_name="cutoff")


def earlier_cutoffs(first: int, last: int) -> TimeWindowPartitionMapping:
    """The cutoffs `first`..`last` months before this one (inclusive; 0 = this cutoff). Months before the first
    partition simply do not exist: an early cutoff depends on fewer earlier ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return TimeWindowPartitionMapping(start_offset=-first, end_offset=-last,
                                          allow_nonexistent_upstream_partitions=True)


def same_division_earlier_cutoffs(first: int, last: int) -> MultiPartitionMapping:
    """division × cutoff → the same division at the cutoffs `first`..`last` months before."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return MultiPartitionMapping({
            "cutoff": DimensionPartitionMapping("cutoff", earlier_cutoffs(first, last)),
            "division": DimensionPartitionMapping("division", IdentityPartitionMapping()),
        })


def training_lookback(settings: Settings) -> tuple[int, int]:
    """(first, last) months before C where the model at C may find its training cutoffs: C' + W' ≤ C for every
    window W' a division can use, within `models.training_lookback_months` of the latest such C'."""
    shortest, longest = settings.window_range()
    return longest + settings.models.training_lookback_months, shortest


def whitespace_lookback(settings: Settings) -> int:
    """How many months back whitespace reads earlier lists: the previous list (stability) and the latest list whose
    outcomes are realized by C (the challenger: C' + W_max ≤ C)."""
    return settings.window_range()[1] + settings.whitespace.history_months


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


@dataclass(frozen=True)
class TrainingPool:
    """The training cutoffs a model pools, (C', W') oldest first, their labelled positives, and why the pool stops
    where it does (a sentence for the model card and the run's log)."""

    cutoffs: list[tuple[dt.date, int]]
    positives: int
    reason: str


def training_pool(usable: Iterable[tuple[dt.date, int, int]], most: int, enough_positives: int | None) -> TrainingPool:
    """The cutoffs a model at C trains on, from the usable ones (C', W', labelled positives), whose windows closed by
    C: the newest first, then older ones while the pooled positives are fewer than `enough_positives` (None: no
    such stop), at most `most`. A division with few buyers pools every cutoff it may (the positives are the
    information); a large one stops at the newest cutoff that holds enough, so its training cost follows its
    positives, not its history."""
    newest_first = sorted(usable, key=lambda u: u[0], reverse=True)
    pool, positives = [], 0
    for c, w, n in newest_first:
        if len(pool) == most:
            break
        if enough_positives is not None and pool and positives >= enough_positives:
            break
        pool.append((c, w))
        positives += int(n)
    pool.reverse()
    left = len(newest_first) - len(pool)
    if not pool:
        reason = "no usable training cutoff"
    elif enough_positives is not None and positives >= enough_positives and left:
        reason = (f"{len(pool)} of {len(newest_first)} usable cutoffs: their {positives:,} positives reach "
                  f"models.training_positives ({enough_positives:,})")
    elif left:
        reason = f"{len(pool)} of {len(newest_first)} usable cutoffs ({positives:,} positives): models.training_cutoffs"
    else:
        reason = f"every usable cutoff ({len(pool)}, {positives:,} positives)"
    return TrainingPool(pool, positives, reason)


def split_key(key: str | MultiPartitionKey) -> tuple[str, dt.date]:
    """(division, cutoff) of a `division × cutoff` partition key."""
    if not isinstance(key, MultiPartitionKey):
        raise TypeError(f"expected a division × cutoff partition key, got {key!r}")
    dims = key.keys_by_dimension
    return dims["division"], parse_cutoff(dims["cutoff"])


def multi_key(division: str, cutoff: dt.date | str) -> MultiPartitionKey:
    return MultiPartitionKey({"division": division, "cutoff": cutoff_key(cutoff)})
