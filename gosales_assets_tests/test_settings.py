from pathlib import Path

import pytest
import yaml

from gosales_assets.settings import DEFAULT_CONFIG_PATH, ConfigError, division_slug, load_settings


def _write(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    mutate(doc)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_default_config_loads_with_paths_under_home(tmp_path):
    s = load_settings(home=tmp_path)
    assert s.divisions[6] == "Success Plan"
    assert s.warehouse_path == tmp_path / "warehouse.duckdb"
    assert s.landing_dir == tmp_path / "landing"
    assert s.artifacts_dir == tmp_path / "artifacts"
    assert s.dagster_home == tmp_path / "dagster_home"
    assert s.window_months("CPE") == 12 and s.window_months("PDM") == 6
    assert s.sku_map["PP-WASH"] == "Post_Processing"


def test_home_from_env_and_config_path_from_env(tmp_path, monkeypatch):
    cfg = _write(tmp_path, lambda d: d.update(demo={"customers": 123}))
    monkeypatch.setenv("GOSALES_CONFIG", str(cfg))
    monkeypatch.setenv("GOSALES_HOME", str(tmp_path / "h"))
    s = load_settings()
    assert s.demo.customers == 123
    assert s.home == (tmp_path / "h").resolve()


@pytest.mark.parametrize(
    "mutate, key, words",
    [
        (lambda d: d["labels"].update(window_mnths=6), "labels.window_mnths", "unknown key"),
        (lambda d: d["labels"].update(window_months=0), "labels.window_months", "greater than or equal to 1"),
        (lambda d: d["sku_map"].update({"X-1": "post_processing"}), "<root>", "not one of the configured divisions"),
        (lambda d: d.update(cutoffs=["2025-06-15"]), "cutoffs", "not a month-end"),
        (lambda d: d.update(divisions=["Post Processing", "Post_Processing"]), "divisions", "collide"),
        (lambda d: d.pop("data"), "data", "required key is missing"),
        (lambda d: d["labels"].update(mode="sometimes"), "labels.mode", "expansion"),
        (lambda d: d["labels"].update(sku_denylist=["NOPE"]), "<root>", "not in sku_map"),
        (lambda d: d.update(cutoffs=["2030-01-31"]), "<root>", "outside the data range"),
        (lambda d: d["models"].update(training_positives=10), "models", "below min_positives 20"),
    ],
)
def test_invalid_config_names_key_and_problem(tmp_path, mutate, key, words):
    cfg = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, home=tmp_path)
    msg = str(err.value)
    assert str(cfg) in msg
    assert f"  - {key}:" in msg
    assert words in msg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "x.yaml"
    bad.write_text("divisions: [a\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_division_slugs_are_safe_and_distinct():
    assert division_slug("Success Plan") == "success_plan"
    assert division_slug("Post_Processing") == "post_processing"
    assert division_slug("R&D / Lab's-Kit") == "r_and_d_lab_s_kit"
    s = load_settings()
    assert len(s.division_by_slug) == len(s.divisions)


def test_resolved_yaml_records_effective_values(tmp_path):
    s = load_settings(home=tmp_path)
    doc = yaml.safe_load(s.resolved_yaml())
    assert doc["resolved_paths"]["warehouse"] == str(tmp_path / "warehouse.duckdb")
    assert doc["labels"]["window_months"] == 6
    assert len(s.checksum) == 16
