from gosales_assets.core.gates import evaluate_gate
from gosales_assets.settings import GateThresholds, load_settings

T = GateThresholds(auc_min=0.70, lift10_min=2.0, cal_mae_max=0.05)


def test_gate_passes_at_the_thresholds():
    r = evaluate_gate({"auc": 0.70, "lift_at_10": 2.0, "cal_mae": 0.05}, T)
    assert r.passed and r.detail == "all gates passed"


def test_gate_says_which_metric_missed_by_how_much():
    r = evaluate_gate({"auc": 0.52, "lift_at_10": 1.25, "cal_mae": 0.08}, T)
    assert not r.passed
    assert r.misses == ["auc 0.5200 < 0.7 (short by 0.1800)", "lift_at_10 1.2500 < 2 (short by 0.7500)",
                        "cal_mae 0.0800 > 0.05 (over by 0.0300)"]


def test_undefined_metric_is_a_miss():
    r = evaluate_gate({"auc": None, "lift_at_10": 3.0, "cal_mae": 0.01}, T)
    assert not r.passed and r.misses[0].startswith("auc is undefined")


def test_per_division_override(tmp_path):
    import yaml

    from gosales_assets.settings import DEFAULT_CONFIG_PATH

    doc = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    # The project's floors are low ("better than chance"); a division may hold itself to stricter ones.
    doc["models"]["gates"]["per_division"] = {"CPE": {"auc_min": 0.7, "lift10_min": 2.0, "cal_mae_max": 0.05}}
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    s = load_settings(cfg, home=tmp_path)
    assert s.gate_thresholds("CPE").auc_min == 0.7
    assert s.gate_thresholds("PDM").auc_min == 0.55
    metrics = {"auc": 0.65, "lift_at_10": 1.8, "cal_mae": 0.1}
    assert evaluate_gate(metrics, s.gate_thresholds("PDM")).passed
    cpe = evaluate_gate(metrics, s.gate_thresholds("CPE"))
    assert not cpe.passed and len(cpe.misses) == 3


def test_partial_override_keeps_the_projects_other_thresholds(tmp_path):
    import yaml

    from gosales_assets.settings import DEFAULT_CONFIG_PATH

    doc = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    doc["models"]["gates"] |= {"auc_min": 0.52, "lift10_min": 1.1, "cal_mae_max": 0.3,
                               "per_division": {"CPE": {"auc_min": 0.6}}}
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    s = load_settings(cfg, home=tmp_path)
    # only auc_min is overridden; the others stay the project's (not the class defaults 1.2 / 0.10)
    assert s.gate_thresholds("CPE").model_dump() == {"auc_min": 0.6, "lift10_min": 1.1, "cal_mae_max": 0.3,
                                                     "peer_margin": 0.02, "champion_margin": 0.02,
                                                     "auc_above_chance": True}
    assert s.gate_thresholds("PDM").model_dump() == {"auc_min": 0.52, "lift10_min": 1.1, "cal_mae_max": 0.3,
                                                     "peer_margin": 0.02, "champion_margin": 0.02,
                                                     "auc_above_chance": True}


def test_the_projects_auc_above_chance_reaches_every_division(tmp_path):
    from gosales_assets.settings import DEFAULT_CONFIG_PATH

    cfg = tmp_path / "gosales.yaml"
    cfg.write_text(DEFAULT_CONFIG_PATH.read_text().replace("auc_above_chance: true", "auc_above_chance: false"))
    s = load_settings(cfg, home=tmp_path)
    assert s.gate_thresholds("CPE").auc_above_chance is False
