"""benchmarks/training_variants.py (issue 15: model settings against variants at production scale) on a small seeded
warehouse: the pool the asset would train on, the forward rows, each variant's fit and its paired interval against
the configuration, thinned positives, bad variants named. The 500,000-customer run is a benchmark, not a test."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from gosales_assets.settings import DEFAULT_CONFIG_PATH, load_settings
from gosales_assets_tests.benchmark_scripts import loaded_script
from gosales_assets_tests.test_pooling_quality_script import _warehouse  # one division, four quarterly cutoffs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "training_variants.py"
LARGE = "large={large_frames: {min_positives: 50, n_folds: 2, learning_rate: 0.3}}"


@pytest.fixture(scope="module")
def tv():
    yield from loaded_script(SCRIPT, "training_variants_script")


def test_each_variant_fits_the_assets_pool_and_is_compared_on_the_same_forward_rows(tv, tmp_path):
    db = _warehouse(tmp_path)
    out = tmp_path / "variants.json"
    assert tv.main(["--warehouse", str(db), "--config", str(DEFAULT_CONFIG_PATH), "--divisions", "Simulation",
                    "--variant", LARGE, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["configured", "large"]
    # Data end 2026-10-31: the latest closed window is 2025-12-31's; the asset pools the cutoffs whose window closed by
    # then, 2025-03-31 and 2025-06-30 (under models.training_positives, so both).
    assert all(r["forward_cutoff"] == "2025-12-31" and r["forward_rows"] == 800 for r in rows)
    assert all(r["training_cutoffs"] == ["2025-03-31", "2025-06-30"] for r in rows)
    con = duckdb.connect(str(db), read_only=True)
    per = dict(con.execute("select cutoff_date, sum(label) from division_features group by 1").fetchall())
    positives = per[dt.date(2025, 3, 31)] + per[dt.date(2025, 6, 30)]
    assert all(r["training_positives"] == positives and r["training_rows"] == 1600 for r in rows)
    configured, large = rows
    # the shipped threshold (1,500 positives) leaves this frame on the configured folds; the variant's applies
    assert (configured["folds"], configured["large_frame"]) == (4, False)
    assert (large["folds"], large["large_frame"]) == (2, True)
    assert configured["auc_minus_configured"] == 0.0 and configured["auc_minus_configured_ci95"] is None
    low, high = large["auc_minus_configured_ci95"]
    assert low <= large["auc_minus_configured"] <= high
    assert all(0.7 < r["forward_auc"] < 1.0 for r in rows)  # the planted signal is found
    assert tv.markdown(rows).splitlines()[3].startswith("| Simulation (2025-12-31, ")


def test_thinned_positives_keep_a_seeded_fraction_of_the_training_positives(tv, tmp_path):
    db = _warehouse(tmp_path)
    out = tmp_path / "thin.json"
    assert tv.main(["--warehouse", str(db), "--config", str(DEFAULT_CONFIG_PATH), "--divisions", "Simulation",
                    "--variant", LARGE, "--thin-positives", "0.5", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    con = duckdb.connect(str(db), read_only=True)
    frame = con.execute("select * from division_features where cutoff_date in ('2025-03-31', '2025-06-30')").pl()
    frame = frame.sort("cutoff_date", "customer_id")
    kept = tv.thinned(frame, 0.5)
    assert kept.equals(tv.thinned(frame, 0.5))  # seeded
    assert kept.filter(pl.col("label") == 0).height == frame.filter(pl.col("label") == 0).height
    assert 0.3 < kept.get_column("label").sum() / frame.get_column("label").sum() < 0.7
    assert all(r["training_positives"] == kept.get_column("label").sum() for r in rows)
    assert all(r["training_rows"] == kept.height and r["forward_rows"] == 800 for r in rows)


@pytest.mark.parametrize("spec", ["large", "large=[1, 2]", "configured={n_folds: 3}", "=x"])
def test_a_variant_that_is_not_a_mapping_of_model_settings_is_refused(tv, spec):
    with pytest.raises(SystemExit, match="--variant"):
        tv.parse_variant(spec, load_settings(DEFAULT_CONFIG_PATH).models)


def test_a_variant_is_validated_like_the_configuration(tv):
    models = load_settings(DEFAULT_CONFIG_PATH).models
    name, merged = tv.parse_variant("fast={large_frames: {learning_rate: 0.3}}", models)
    assert name == "fast" and merged.large_frames.learning_rate == 0.3
    assert merged.large_frames.min_positives == models.large_frames.min_positives  # merged, not replaced
    with pytest.raises(Exception, match="n_folds"):
        tv.parse_variant("bad={large_frames: {n_folds: 1}}", models)
