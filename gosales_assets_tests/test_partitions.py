import datetime as dt

import pytest
from dagster import MultiPartitionKey

from gosales_assets.partitions import (
    add_months,
    cutoff_status,
    division_cutoff_partitions,
    parse_cutoff,
    split_key,
    training_cutoffs,
    window_end,
)
from gosales_assets.settings import load_settings

D = dt.date


def test_month_arithmetic_is_month_end_aligned():
    assert add_months(D(2024, 8, 31), 6) == D(2025, 2, 28)
    assert add_months(D(2023, 8, 31), 6) == D(2024, 2, 29)
    assert add_months(D(2024, 12, 31), -3) == D(2024, 9, 30)
    assert window_end(D(2024, 6, 30), 6) == D(2024, 12, 31)


def test_trainable_vs_score_only(tmp_path):
    s = load_settings(home=tmp_path)  # data ends 2026-10-31; PDM window 6, CPE window 12
    assert cutoff_status(s, "PDM", D(2026, 3, 31)).trainable  # window ends 2026-09-30
    assert cutoff_status(s, "PDM", D(2026, 4, 30)).trainable  # ends exactly at the data end
    st = cutoff_status(s, "PDM", D(2026, 6, 30))
    assert not st.trainable and "score-only" in st.reason and st.window_end == D(2026, 12, 31)
    assert not cutoff_status(s, "CPE", D(2026, 3, 31)).trainable  # 12-month window
    assert cutoff_status(s, "CPE", D(2026, 3, 31), window_months=3).trainable


def test_training_cutoffs_respect_closed_windows():
    candidates = [(D(2024, 9, 30), 6), (D(2024, 12, 31), 6), (D(2025, 3, 31), 6), (D(2025, 3, 31), 3)]
    assert training_cutoffs(D(2025, 6, 30), candidates) == [D(2024, 9, 30), D(2024, 12, 31), D(2025, 3, 31)]
    assert training_cutoffs(D(2025, 6, 29), candidates[:3]) == [D(2024, 9, 30)]
    # A 3-month window of 2025-03-31 closes on 2025-06-30, so it is usable at 2025-06-30 but not a day earlier.
    assert training_cutoffs(D(2025, 6, 30), [(D(2025, 3, 31), 3)]) == [D(2025, 3, 31)]
    assert training_cutoffs(D(2025, 6, 29), [(D(2025, 3, 31), 3)]) == []


def test_partition_keys(tmp_path):
    s = load_settings(home=tmp_path)
    parts = division_cutoff_partitions(s)
    assert {d.name for d in parts.partitions_defs} == {"division", "cutoff"}
    key = MultiPartitionKey({"division": "Success Plan", "cutoff": "2025-06-30"})
    assert split_key(key) == ("Success Plan", D(2025, 6, 30))
    with pytest.raises(ValueError, match="not a month-end"):
        parse_cutoff("2025-06-29")
    with pytest.raises(ValueError, match="ISO date"):
        parse_cutoff("June")
