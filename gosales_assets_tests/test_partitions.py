import datetime as dt

import pytest
import yaml
from dagster import MultiPartitionKey

from gosales_assets.partitions import (
    TrainingPool,
    add_months,
    cutoff_key,
    cutoff_partitions,
    cutoff_status,
    division_cutoff_partitions,
    multi_key,
    parse_cutoff,
    same_division_earlier_cutoffs,
    split_key,
    training_cutoffs,
    training_lookback,
    training_pool,
    whitespace_lookback,
    window_end,
)
from gosales_assets.settings import DEFAULT_CONFIG_PATH, load_settings, merge_config, settings_from_dict

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


def test_training_pool_stops_at_enough_positives_newest_first():
    usable = [(D(2024, 9, 30), 6, 900), (D(2024, 12, 31), 6, 800), (D(2025, 3, 31), 6, 700)]
    # Enough positives in the newest cutoff alone: it is the pool.
    pool = training_pool(usable, 3, 500)
    assert pool.cutoffs == [(D(2025, 3, 31), 6)] and pool.positives == 700
    assert "1 of 3 usable cutoffs" in pool.reason and "700" in pool.reason and "training_positives" in pool.reason
    # Older cutoffs join while the pool holds fewer (700 < 1,000, then 1,500 ≥ 1,000), oldest first in the result.
    pool = training_pool(list(reversed(usable)), 3, 1000)
    assert pool.cutoffs == [(D(2024, 12, 31), 6), (D(2025, 3, 31), 6)] and pool.positives == 1500
    # Never more than `most`, whatever the positives; no stop: always `most`.
    assert training_pool(usable, 2, 10_000).cutoffs == [(D(2024, 12, 31), 6), (D(2025, 3, 31), 6)]
    assert "models.training_cutoffs" in training_pool(usable, 2, 10_000).reason
    assert training_pool(usable, 3, None).cutoffs == [(c, w) for c, w, _ in usable]
    assert training_pool(usable, 3, None).reason == "every usable cutoff (3, 2,400 positives)"
    # A cutoff with no positive still counts as a cutoff, not as information.
    assert training_pool([(D(2025, 3, 31), 6, 0), (D(2024, 12, 31), 6, 40)], 3, 30).cutoffs == [
        (D(2024, 12, 31), 6), (D(2025, 3, 31), 6)]
    assert training_pool([], 3, 30) == TrainingPool([], 0, "no usable training cutoff")


def test_partition_keys(tmp_path):
    s = load_settings(home=tmp_path)  # first configured cutoff 2024-03-31, data ends 2026-10-31
    parts = division_cutoff_partitions(s)
    assert {d.name for d in parts.partitions_defs} == {"division", "cutoff"}
    months = cutoff_partitions(s).get_partition_keys()
    assert months[0] == "2024-03" and months[-1] == "2026-10" and len(months) == 32
    key = MultiPartitionKey({"division": "Success Plan", "cutoff": "2025-06"})
    assert split_key(key) == ("Success Plan", D(2025, 6, 30)) and multi_key("Success Plan", D(2025, 6, 30)) == key
    assert str(multi_key("PDM", "2026-02-28")) == "2026-02|PDM"
    assert parse_cutoff("2024-02") == D(2024, 2, 29) and parse_cutoff("2024-02-29") == D(2024, 2, 29)
    assert cutoff_key(D(2024, 2, 29)) == "2024-02" == cutoff_key("2024-02-29")
    with pytest.raises(ValueError, match="not a month-end"):
        parse_cutoff("2025-06-29")
    with pytest.raises(ValueError, match="neither a partition key"):
        parse_cutoff("June")


def test_data_end_mid_month_ends_the_partitions_at_the_previous_month(tmp_path):
    s = settings_from_dict(merge_config(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()),
                                        {"data": {"end_date": "2026-10-15"}}), home=tmp_path)
    assert s.last_cutoff == D(2026, 9, 30) and cutoff_partitions(s).get_partition_keys()[-1] == "2026-09"


def test_lookbacks_cover_every_window(tmp_path):
    s = load_settings(home=tmp_path)  # windows 6 (most) and 12 (CPE, Scanning); 15 months of training look-back
    assert training_lookback(s) == (27, 6)
    assert whitespace_lookback(s) == 24
    mapping = same_division_earlier_cutoffs(*training_lookback(s))
    parts = division_cutoff_partitions(s)
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        parts.subset_with_partition_keys([multi_key("CPE", "2026-06-30")]), parts, parts)
    got = sorted(str(k) for k in upstream.partitions_subset.get_partition_keys())
    # C − 27 months (2024-03, the first partition) .. 2025-12 (C − 6): months before the first partition do not exist
    assert got[0] == "2024-03|CPE" and got[-1] == "2025-12|CPE" and len(got) == 22


def test_no_output_of_an_op_depends_on_a_sibling_output_of_the_same_partition(tmp_path):
    """An op making several assets as one step (the division × cutoff partition, the star schema, the whitespace
    list with its ranking decision) declares, for each,
    what the op reads, never an edge between its own outputs on the same partition: Dagster's backfill checks such
    an edge against the op's whole remaining partitions (`_should_backfill_atomic_asset_graph_subset_unit`), so in a
    whole backfill the op waited until every one of its partitions was ready and then ran apart from its neighbours
    (measured at 500,000 customers: scores + drift 258 s after the peers of the same partition, in runs of their
    own). Reads of the op's own *earlier* partitions (the model's training frames and champion; earlier lists and
    decisions) are a self-dependency, which Dagster runs partition after partition, each as one run."""
    from gosales_assets.definitions import build_definitions
    from gosales_assets_tests.conftest import new_project

    project = new_project(tmp_path / "p", {"models": {"gates": {"champion_gate": True}}})
    defs = build_definitions(project.settings, project.config_path)
    ops = [a for a in defs.assets if len(a.keys) > 1 and not a.can_subset]
    names = {a.node_def.name for a in ops}
    assert {"division_cutoff", "star_schema", "whitespace_ranking"} <= names
    keys = {"division_cutoff": multi_key("CPE", "2026-06-30"), "whitespace_ranking": "2026-06"}
    earlier_reads = set()
    for a in ops:
        parts = a.partitions_def
        for k in a.keys:
            for dep in a.specs_by_key[k].deps:
                if dep.asset_key not in set(a.keys):
                    continue
                assert dep.partition_mapping is not None, f"{a.node_def.name}: {k.to_user_string()} depends on " \
                    f"its sibling {dep.asset_key.to_user_string()} on the same partition"
                key = keys[a.node_def.name]
                upstream = dep.partition_mapping.get_upstream_mapped_partitions_result_for_partitions(
                    parts.subset_with_partition_keys([key]), parts, parts).partitions_subset.get_partition_keys()
                assert key not in set(map(str, upstream)) and upstream, (k, dep.asset_key)
                earlier_reads.add((k.to_user_string(), dep.asset_key.to_user_string()))
    # The whitespace step's reads of earlier lists and decisions (stability, the challenger, the closed windows).
    whitespace_reads = {(k, "whitespace") for k in ("whitespace", "whitespace_thresholds", "capacity_summary",
                                                    "whitespace_metrics", "ranking_decision")}
    assert earlier_reads == {("division_model", "division_features"), ("division_model", "division_model"),
                             ("ranking_decision", "ranking_decision"), *whitespace_reads}
