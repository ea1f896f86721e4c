"""Promotion gate: a model feeds scoring only if its honest (out-of-fold) metrics clear the thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

from gosales_assets.core.peers import PeerComparison
from gosales_assets.settings import GateThresholds


@dataclass(frozen=True)
class GateResult:
    passed: bool
    misses: list[str] = field(default_factory=list)  # one line per missed metric, with the gap
    values: dict = field(default_factory=dict)

    @property
    def detail(self) -> str:
        return "all gates passed" if self.passed else "; ".join(self.misses)


def evaluate_gate(metrics: dict, thresholds: GateThresholds, peers: PeerComparison | None = None, *,
                  peer_gate: bool = True) -> GateResult:
    """AUC ≥ auc_min, lift@10% ≥ lift10_min, calibration MAE ≤ cal_mae_max (a missing metric is a miss) and, with a
    peer comparison and `peer_gate`, not worse than the best simple peer beyond `peer_margin` on the same
    out-of-fold rows. The comparison (and a below-chance diagnosis) is recorded in the values either way."""
    rules = [
        ("auc", metrics.get("auc"), thresholds.auc_min, ">="),
        ("lift_at_10", metrics.get("lift_at_10"), thresholds.lift10_min, ">="),
        ("cal_mae", metrics.get("cal_mae"), thresholds.cal_mae_max, "<="),
    ]
    misses = []
    for name, value, limit, op in rules:
        if value is None:
            misses.append(f"{name} is undefined (needs both classes); required {op} {limit:g}")
        elif op == ">=" and value < limit:
            misses.append(f"{name} {value:.4f} < {limit:g} (short by {limit - value:.4f})")
        elif op == "<=" and value > limit:
            misses.append(f"{name} {value:.4f} > {limit:g} (over by {value - limit:.4f})")
    values = {name: value for name, value, _, _ in rules} | {
        "auc_min": thresholds.auc_min, "lift10_min": thresholds.lift10_min, "cal_mae_max": thresholds.cal_mae_max}
    if peers is not None:
        values |= peers.values
        if peer_gate and not peers.passed:
            misses.append(f"trails the best simple peer beyond the margin: {peers.detail}")
        if peers.diagnosis:
            values["below_chance"] = peers.diagnosis
    return GateResult(passed=not misses, misses=misses, values=values)
