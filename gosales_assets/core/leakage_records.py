"""The leakage records the feature assets leave under `<artifacts>/features/<cutoff>/`, and what the model reads
back from them (its `feature_shift` check).

- `features/<cutoff>/leakage_<asset>.json`: one per cutoff asset (`customer_features`, `market_basket_rules`,
  `als_embeddings`): {check: {"status": "PASS" | "FAIL", "detail", ...values}} (`audit_record`).
- `features/<cutoff>/<division>/leakage_division_features.json`: the model frame's record, {"customer_features:
  <check>": status, ..., "division_features:source_date_audit": status} (`division_features_record`).
- `feature_shift_report`: PASS/FAIL per training cutoff of a model, from the division records.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from gosales_assets.core.leakage import AuditResult
from gosales_assets.settings import division_slug

__all__ = ["audit_record", "cutoff_record_path", "division_record_path", "division_record_rel",
           "division_features_record", "feature_shift_report"]


def cutoff_record_path(artifacts_dir: Path, cutoff: dt.date, asset: str) -> Path:
    return Path(artifacts_dir) / "features" / cutoff.isoformat() / f"leakage_{asset}.json"


def division_record_rel(cutoff: dt.date, division: str) -> list[str]:
    """Where the model frame's record lives, relative to the artifacts root."""
    return ["features", cutoff.isoformat(), division_slug(division), "leakage_division_features.json"]


def division_record_path(artifacts_dir: Path, cutoff: dt.date, division: str) -> Path:
    return Path(artifacts_dir).joinpath(*division_record_rel(cutoff, division))


def audit_record(results: dict[str, AuditResult]) -> dict[str, dict]:
    """A cutoff asset's record of its leakage checks: {check: {"status", "detail", ...values}}."""
    return {name: {"status": "PASS" if r.passed else "FAIL", "detail": r.detail, **r.values}
            for name, r in results.items()}


def division_features_record(customer_features_record: dict | None, audit: AuditResult) -> dict[str, str]:
    """The model frame's record: the statuses of its cutoff's customer_features checks (FAIL when that record is
    missing) and its own source-date audit."""
    checks = customer_features_record if customer_features_record is not None else {
        "record": {"status": "FAIL", "detail": "no leakage record (materialize customer_features first)"}}
    record = {f"customer_features:{name}": r["status"] for name, r in checks.items()}
    record["division_features:source_date_audit"] = "PASS" if audit.passed else "FAIL"
    return record


def feature_shift_report(artifacts_dir: Path, division: str, cutoffs: list[dt.date]) -> dict[str, str]:
    """PASS/FAIL per training cutoff from the leakage record its `division_features` partition wrote (the shift and
    perturbation checks of the cutoff's customer features, and its own source-date audit)."""
    out = {}
    for c in cutoffs:
        path = division_record_path(artifacts_dir, c, division)
        if not path.is_file():
            out[c.isoformat()] = "FAIL: no leakage record for division_features (materialize it first)"
            continue
        failed = [k for k, status in json.loads(path.read_text()).items() if status != "PASS"]
        out[c.isoformat()] = "PASS" if not failed else f"FAIL: {', '.join(failed)}"
    return out
