"""benchmarks/pooling_quality.py (issue 15: pooling training cutoffs by positives) on a small seeded warehouse: which
cutoffs each pool trains on and is scored on, the paired interval, the table. The 500,000-customer run is a
benchmark, not a test."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from gosales_assets.core.metrics import roc_auc
from gosales_assets.settings import DEFAULT_CONFIG_PATH
from gosales_assets_tests.benchmark_scripts import loaded_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pooling_quality.py"
CUTOFFS = [dt.date(2025, 3, 31), dt.date(2025, 6, 30), dt.date(2025, 9, 30), dt.date(2025, 12, 31)]


@pytest.fixture(scope="module")
def pq():
    yield from loaded_script(SCRIPT, "pooling_quality_script")


def _warehouse(path: Path) -> Path:
    """Model frames of one division at four quarterly cutoffs (6-month windows), 800 customers each, ~10 % buyers
    driven by two of three features."""
    rng = np.random.default_rng(5)
    frames = []
    for c in CUTOFFS:
        n = 800
        x1, x2, x3 = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
        p = 1 / (1 + np.exp(-(-2.6 + 1.2 * x1 + 0.8 * x2)))
        frames.append(pl.DataFrame({
            "customer_id": [f"c{i:04d}" for i in range(n)], "rfm__all__a__12m": x1, "rfm__all__b__12m": x2,
            "rfm__all__c__12m": x3, "division": "Simulation", "cutoff_date": c, "window_months": 6,
            "label": (rng.random(n) < p).astype(np.int8), "censored": False}))
    db = path / "w.duckdb"
    con = duckdb.connect(str(db))
    frame = pl.concat(frames)
    con.register("f", frame.to_arrow())
    con.execute("create table division_features as select * from f")
    con.close()
    return db


def test_pools_train_on_the_newest_usable_cutoffs_and_score_the_latest_closed_window(pq, tmp_path):
    db = _warehouse(tmp_path)
    out = tmp_path / "pool.json"
    assert pq.main(["--warehouse", str(db), "--config", str(DEFAULT_CONFIG_PATH), "--divisions", "Simulation",
                    "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    # Data end 2026-10-31: the latest closed window is 2025-12-31's (ends 2026-06-30); usable for it are the
    # cutoffs whose window closed by 2025-12-31: 2025-03-31 and 2025-06-30 (2025-09-30's ends 2026-03-31).
    assert [r["pool"] for r in rows] == [1, 2]
    assert [r["training_cutoffs"] for r in rows] == [["2025-06-30"], ["2025-03-31", "2025-06-30"]]
    assert all(r["forward_cutoff"] == "2025-12-31" and r["forward_rows"] == 800 for r in rows)
    con = duckdb.connect(str(db), read_only=True)
    per = dict(con.execute("select cutoff_date, sum(label) from division_features group by 1").fetchall())
    assert rows[0]["training_positives"] == per[dt.date(2025, 6, 30)]
    assert rows[1]["training_positives"] == per[dt.date(2025, 3, 31)] + per[dt.date(2025, 6, 30)]
    assert rows[1]["training_rows"] == 1600 and rows[1]["auc_minus_full_pool"] == 0.0
    assert rows[1]["auc_minus_full_pool_ci95"] is None
    low, high = rows[0]["auc_minus_full_pool_ci95"]
    assert low <= rows[0]["auc_minus_full_pool"] <= high
    assert all(0.7 < r["forward_auc"] < 1.0 for r in rows)  # the planted signal is found
    table = pq.markdown(rows)
    assert table.splitlines()[2].startswith("| Simulation (2025-12-31, ")


def test_paired_interval_is_seeded_and_centred_on_the_difference(pq):
    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 0.1).astype(int)
    good = y + rng.normal(0, 0.8, size=y.size)
    worse = y + rng.normal(0, 1.6, size=y.size)
    got = pq.auc_differences(y, {1: worse, 3: good}, base=3, draws=200)
    assert got == pq.auc_differences(y, {1: worse, 3: good}, base=3, draws=200)
    low, high = got[1]
    assert low < roc_auc(y, worse) - roc_auc(y, good) < high < 0
