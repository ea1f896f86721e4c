"""Promotion gate: a model feeds scoring only if it is not worse than what would serve instead.

Relative to the alternatives, on honest (out-of-fold) rows:
- the simple peers (recency, frequency, monetary, RFM logistic regression; `core.peers.compare_with_peers`), on every
  out-of-fold row of the candidate;
- the division's current champion (`compare_with_champion`): the newest earlier promoted model of the division
  (`current_champion`), on the candidate's out-of-fold rows that are out of the champion's sample
  (`out_of_champion_sample`: their label window opens after every label the champion was trained on).
Plus absolute floors that only say "better than chance" and calibration MAE (the probability itself is used).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from gosales_assets.core.metrics import roc_auc
from gosales_assets.core.peers import PeerComparison, paired_auc_difference
from gosales_assets.core.registry import PROMOTED, unpublished_reason
from gosales_assets.settings import GateThresholds

BELOW_CHANCE = "below chance"


@dataclass(frozen=True)
class ChampionComparison:
    """The candidate against the current champion. `applicable` False: no comparison was possible (no champion, no
    row out of its sample, one class only, its file unusable) and `detail` says why; it then holds nothing."""

    applicable: bool
    passed: bool
    detail: str
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    misses: list[str] = field(default_factory=list)  # one line per missed metric, with the gap
    values: dict = field(default_factory=dict)
    # The only miss is trailing the champion: the champion keeps serving (registry status `retained`).
    champion_only: bool = False

    @property
    def detail(self) -> str:
        """The gate in words; a below-chance diagnosis first (what a person must read before any threshold)."""
        text = "all gates passed" if self.passed else "; ".join(self.misses)
        diagnosis = self.values.get("below_chance")
        return f"{BELOW_CHANCE}: {diagnosis}; {text}" if diagnosis else text


def evaluate_gate(metrics: dict, thresholds: GateThresholds, peers: PeerComparison | None = None, *,
                  peer_gate: bool = True, champion: ChampionComparison | None = None,
                  champion_gate: bool = True) -> GateResult:
    """AUC ≥ auc_min, lift@10% ≥ lift10_min, calibration MAE ≤ cal_mae_max (a missing metric is a miss); with
    `auc_above_chance`, the lower end of the AUC's interval (`metrics["auc_low"]`, when recorded) above 0.5; with a peer
    comparison and `peer_gate`, not worse than the best simple peer beyond `peer_margin` on the same out-of-fold
    rows; with an applicable champion comparison and `champion_gate`, not worse than the champion beyond
    `champion_margin`. Both comparisons (and a below-chance diagnosis) are recorded in the values either way."""
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
    low, high = metrics.get("auc_low"), metrics.get("auc_high")
    if thresholds.auc_above_chance and low is not None and low <= 0.5:
        misses.append(f"auc {metrics.get('auc'):.4f} is not distinguishable from chance: its 95 % interval "
                      f"[{low:.4f}, {high:.4f}] includes 0.5")
    values = {name: value for name, value, _, _ in rules} | {
        "auc_min": thresholds.auc_min, "lift10_min": thresholds.lift10_min, "cal_mae_max": thresholds.cal_mae_max,
        "auc_low": low, "auc_high": high, "auc_above_chance": thresholds.auc_above_chance}
    if peers is not None:
        values |= peers.values
        if peer_gate and not peers.passed:
            misses.append(f"trails the best simple peer beyond the margin: {peers.detail}")
        if peers.diagnosis:
            values["below_chance"] = peers.diagnosis
    champion_miss = False
    if champion is not None:
        values |= champion.values
        if champion_gate and champion.applicable and not champion.passed:
            misses.append(f"trails the champion beyond the margin: {champion.detail}")
            champion_miss = True
    return GateResult(passed=not misses, misses=misses, values=values,
                      champion_only=champion_miss and len(misses) == 1)


# ---- the current champion ------------------------------------------------------------------------------------------
def current_champion(rows: Iterable[dict], cutoff: dt.date) -> dict | None:
    """The division's current champion at `cutoff`: the newest registry row of an earlier cutoff whose own model is
    serving (status promoted). `rows` are the division's registry rows in the declared look-back; a `retained` row is
    no champion itself (its champion is an earlier promoted row, so it is found directly)."""
    earlier = [r for r in rows if r.get("status") == PROMOTED and r["cutoff_date"] < cutoff]
    return max(earlier, key=lambda r: r["cutoff_date"], default=None)


def find_champion(rows: Iterable[dict], cutoff: dt.date, *, looked_from: dt.date, looked_to: dt.date
                  ) -> tuple[dict | None, str | None]:
    """(the current champion's registry row, None) when there is one whose model file is the one it was judged with;
    else (its row or None, why it cannot be compared). `rows`: the division's registry rows at the cutoffs
    `looked_from`..`looked_to` (the declared look-back)."""
    champion = current_champion(rows, cutoff)
    if champion is None:
        return None, f"no promoted model of this division at the cutoffs {looked_from}..{looked_to} (look-back)"
    problem = unpublished_reason(champion)  # the very check scoring applies to a served model
    if problem:
        return champion, f"the champion of {champion['cutoff_date']} cannot serve: {problem}"
    return champion, None


def out_of_champion_sample(row_cutoffs: Iterable[dt.date], champion: dict) -> np.ndarray:
    """Which rows (by their cutoff C'') are out of the champion's sample: C'' ≥ the champion's own cutoff C'.

    Not merely C'' after its last training cutoff T: the label window of a row at T < C'' < T + W overlaps the
    champion's training labels of (T, T + W], so a purchase the champion was fitted on (same customer, features
    barely moved) is also that row's label, and the champion looks better than it is (measured on the demo: the
    candidate trailed in 19 of 20 such comparisons, yet forward the retained champions were no better). Every
    training label window of the champion closed by C' (its training cutoffs T have T + W ≤ C'), so rows from C' on
    are honest."""
    return np.array([c >= champion["cutoff_date"] for c in row_cutoffs], dtype=bool)


def champion_values(champion: dict | None, **extra) -> dict:
    """The champion comparison's entries of the gate's values (check metadata, model card), prefixed `champion_`."""
    return {"champion_applicable": False, "champion_cutoff": None, "champion_model_version": None,
            "champion_rows": None, "champion_positives": None, "champion_auc": None,
            "candidate_auc_on_champion_rows": None, "auc_vs_champion": None, "champion_interval_low": None,
            "champion_interval_high": None, "champion_margin": None, "champion_comparison": None} | (
        {"champion_cutoff": str(champion["cutoff_date"]), "champion_model_version": champion.get("model_version")}
        if champion else {}) | extra


def champion_not_applicable(reason: str, champion: dict | None = None) -> ChampionComparison:
    """No comparison with a champion: `reason` says why, in the values too (never a silent pass)."""
    return ChampionComparison(applicable=False, passed=True, detail=f"not applicable: {reason}",
                              values=champion_values(champion, champion_comparison=f"not applicable: {reason}"))


def compare_with_champion(y: np.ndarray, candidate: np.ndarray, champion_score: np.ndarray, *, champion: dict,
                          margin: float, n_boot: int | None = None, seed: int = 0) -> ChampionComparison:
    """AUC(candidate) − AUC(champion) on the same rows (already restricted to rows out of the champion's sample,
    `out_of_champion_sample`), with its 95 % paired interval (`core.peers.paired_auc_difference`); passes when the difference is ≥ −`margin`.
    No row or one class only → not applicable."""
    y = np.asarray(y).astype(int)
    name = f"champion {champion.get('model_version')} of {champion['cutoff_date']}"
    if y.size == 0:
        return champion_not_applicable(f"no out-of-fold row of the candidate is out of the {name}'s sample (rows "
                                       f"need a cutoff ≥ {champion['cutoff_date']}, where every label it was trained "
                                       "on had closed)", champion)
    positives = int(y.sum())
    if positives in (0, y.size):
        return champion_not_applicable(f"the {y.size} rows out of the {name}'s sample have one class only "
                                       f"({positives} positives)", champion)
    diff, lo, hi = paired_auc_difference(y, np.asarray(candidate, dtype=float), np.asarray(champion_score, dtype=float),
                                         n_boot=n_boot, seed=seed)
    cand_auc, champ_auc = roc_auc(y, candidate), roc_auc(y, champion_score)
    passed = diff >= -margin
    verb = "beats" if diff > 0 else "trails" if diff < 0 else "ties"
    detail = (f"AUC {cand_auc:.4f} {verb} the {name} ({champ_auc:.4f}) by {abs(diff):.4f} on {y.size} rows "
              f"({positives} positives) out of its sample (95 % interval of the difference "
              f"[{lo:+.4f}, {hi:+.4f}]; margin {margin:g})")
    return ChampionComparison(applicable=True, passed=passed, detail=detail, values=champion_values(
        champion, champion_applicable=True, champion_rows=int(y.size), champion_positives=positives,
        champion_auc=champ_auc, candidate_auc_on_champion_rows=cand_auc, auc_vs_champion=diff,
        champion_interval_low=lo, champion_interval_high=hi, champion_margin=margin, champion_comparison=detail))
