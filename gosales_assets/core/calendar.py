"""Month-end calendar used for cutoffs, label windows and look-backs (no Dagster, no wall clock)."""

from __future__ import annotations

import datetime as dt


def month_end(d: dt.date) -> dt.date:
    nxt = dt.date(d.year + (d.month // 12), d.month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def add_months(d: dt.date, months: int) -> dt.date:
    """Month-end `months` after the month of `d` (negative goes back)."""
    idx = d.year * 12 + (d.month - 1) + months
    return month_end(dt.date(idx // 12, idx % 12 + 1, 1))


def window_end(cutoff: dt.date, window_months: int) -> dt.date:
    """Last day of the label window (C, C + W]."""
    return add_months(cutoff, window_months)
