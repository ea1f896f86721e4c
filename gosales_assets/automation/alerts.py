"""The drift alert sensor: drift results and failed ERROR checks become one consolidated alert per tick.

For every new `drift` materialization at or above `automation.alert_min_severity`, and every new failed asset
check of ERROR severity (promotion gate, leakage, contracts, hard drift), the sensor
- writes one consolidated alert file `<artifacts>/alerts/alert_<drift cursor>_<check cursor>.json` (its `subjects`
  say what the drift findings are about across partitions: `region=West` raised in 9 partitions is one change of
  the customer base, with its action) and adds a line to `<artifacts>/alerts/alerts.jsonl` (the index of every
  alert raised),
- tags each run that produced a finding (`gosales/alert`, `gosales/alert_file`), so the UI's run list can be
  filtered on alerts, and logs each finding,
- when `automation.retrain_on_hard_drift` is on, requests a retraining run (the whole division × cutoff partition:
  frame, model, scores, drift, peers, validation; the model fitted again when its training rows changed) for each
  partition with hard drift, unless that drift came from a retraining run already (no retrain loops).
Its cursor holds the last drift materialization and check execution it has seen: each alert is raised once. A
partition made again with the same result (a closed window's refresh remakes the whole division × cutoff partition:
the same drift findings, the same failed check) raises nothing new.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from gosales_assets.assets.division_cutoff import DIVISION_CUTOFF_ASSETS
from gosales_assets.jobs import ALERT_FILE_TAG, ALERT_TAG, DIVISION_CUTOFF_JOB, RUN_KEY_TAG, STAGE_TAG
from gosales_assets.partitions import multi_key, parse_cutoff
from gosales_assets.resources import ArtifactStore, GosalesSettings
from gosales_assets.settings import Settings, division_slug

SEVERITY_RANK = {"info": 0, "warn": 1, "hard": 2}
# The whole division × cutoff partition (one op: a retraining remakes its model, scores, drift, peers, validation).
RETRAIN_ASSETS = DIVISION_CUTOFF_ASSETS
PARTITION_TAG = "dagster/partition"
PAGE = 200


@dataclass
class AlertItem:
    source: str              # "drift" or "check"
    asset: str
    check: str | None
    partition: str | None    # "<cutoff>|<division>" for division × cutoff partitions
    run_id: str
    severity: str            # warn | hard
    summary: str
    action: str
    findings: list[dict] = field(default_factory=list)


def _finding_text(f: dict) -> str:
    value = f.get("value")
    z = f.get("z")
    return (f"{f['subject']} ({f['kind']}{'' if value is None else f' {value:+.3g}'}"
            f"{'' if z is None else f', z {z:+.1f}'}, {f['severity']})")


def drift_item(partition: str | None, run_id: str, max_severity: str, report: dict | None) -> AlertItem:
    """An alert for one drift materialization, from its alerts.json report (findings at warn or above, in the
    report's order: worst first, then the strongest). The action is the first finding's: the worst, surest one."""
    findings = [f for f in (report or {}).get("findings", []) if SEVERITY_RANK.get(f.get("severity"), 0) >= 1]
    worst = max(findings, key=lambda f: SEVERITY_RANK[f["severity"]], default=None)
    summary = "; ".join(_finding_text(f) for f in findings)[:400]
    return AlertItem("drift", "drift", None, partition, run_id, max_severity,
                     summary or f"max severity {max_severity}",
                     worst["action"] if worst else "review the drift report", findings)


def alert_subjects(items: Sequence[AlertItem]) -> list[dict]:
    """What the drift items are about, across partitions: one entry per finding subject (e.g. `region=West`,
    `division=Solidworks`, a feature) with its worst severity, the partitions it was raised in and the action of
    its strongest finding; worst first, then the most partitions. A change of the customer base (a segment, a
    division's SKUs or prices) shows in every division of the cutoff: this is where it reads as one change. Pure."""
    by: dict[str, dict] = {}
    for item in items:
        if item.source != "drift":
            continue
        for f in item.findings:
            entry = by.setdefault(f["subject"], {"subject": f["subject"], "severity": f["severity"], "kinds": set(),
                                                 "partitions": set(), "action": f["action"]})
            if SEVERITY_RANK[f["severity"]] > SEVERITY_RANK[entry["severity"]]:
                entry["severity"], entry["action"] = f["severity"], f["action"]
            entry["kinds"].add(f["kind"])
            if item.partition:
                entry["partitions"].add(item.partition)
    out = [e | {"kinds": sorted(e["kinds"]), "partitions": sorted(e["partitions"])} for e in by.values()]
    return sorted(out, key=lambda e: (-SEVERITY_RANK[e["severity"]], -len(e["partitions"]), e["subject"]))


def check_item(asset: str, check: str, partition: str | None, run_id: str, description: str | None) -> AlertItem:
    return AlertItem("check", asset, check, partition, run_id, "hard", (description or "check failed")[:400],
                     "see docs/TROUBLESHOOTING.md for this check")


def consolidated_alert(items: Sequence[AlertItem], cursor_from: dict, cursor_to: dict) -> dict:
    """The alert file's content: every finding of one sensor tick, worst first, then by partition, and `subjects`:
    what they are about across partitions (`alert_subjects`). Pure."""
    ordered = sorted(items, key=lambda i: (-SEVERITY_RANK[i.severity], i.partition or "", i.asset, i.check or ""))
    by_severity = {s: sum(1 for i in items if i.severity == s) for s in ("hard", "warn")}
    return {
        "max_severity": ordered[0].severity if ordered else "info",
        "counts": by_severity,
        "partitions": sorted({i.partition for i in items if i.partition}),
        "subjects": alert_subjects(items),
        "cursor_from": cursor_from, "cursor_to": cursor_to,
        "items": [asdict(i) for i in ordered],
    }


def retrain_partitions(items: Sequence[AlertItem], retrain_runs: set[str]) -> list[str]:
    """Partitions with hard drift whose drift did not itself come from a retraining run. Pure."""
    return sorted({i.partition for i in items if i.source == "drift" and i.severity == "hard" and i.partition
                   and i.run_id not in retrain_runs})


def _same_drift_as_before(instance: DagsterInstance, rec) -> bool:
    """The partition's previous drift materialization had the very same findings (`findings_checksum`): it was
    raised then. A partition is made again when its window closes (its outcomes) or when it is retrained; the same
    findings are not news."""
    mat = rec.asset_materialization
    if mat is None or mat.partition is None or "findings_checksum" not in mat.metadata:
        return False
    before = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("drift"), asset_partitions=[mat.partition],
                           before_storage_id=rec.storage_id), limit=1, ascending=False).records
    prev = before[0].asset_materialization if before else None
    return prev is not None and "findings_checksum" in prev.metadata \
        and prev.metadata["findings_checksum"].value == mat.metadata["findings_checksum"].value


def _same_failure_as_before(storage, key: AssetCheckKey, rec, description: str | None) -> bool:
    """The check's previous evaluation on the same partition failed with the same description: raised then (the
    partition was made again — a closed window's refresh — with the same verdict)."""
    if rec.partition is None:
        return False
    [prev] = storage.get_asset_check_execution_history(key, limit=1, cursor=rec.id,
                                                       partition_filter=PartitionKeyFilter(key=rec.partition)) or [None]
    if prev is None or prev.status != AssetCheckExecutionRecordStatus.FAILED:
        return False
    evaluation = prev.event.dagster_event.event_specific_data if prev.event and prev.event.dagster_event else None
    return evaluation is not None and evaluation.description == description


def _new_drift_items(instance: DagsterInstance, cfg: Settings, artifacts: ArtifactStore, after: int
                     ) -> tuple[list[AlertItem], int]:
    items, last = [], after
    while True:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("drift"), after_storage_id=last), limit=PAGE, ascending=True)
        for rec in result.records:
            last = max(last, rec.storage_id)
            mat = rec.asset_materialization
            meta = mat.metadata if mat else {}
            severity = meta["max_severity"].value if "max_severity" in meta else "info"
            if SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK[cfg.automation.alert_min_severity]:
                continue
            if _same_drift_as_before(instance, rec):
                continue
            cutoff, division = (mat.partition or "|").split("|", 1)
            path = Path(artifacts.root, "validation", division_slug(division) if division else "",
                        parse_cutoff(cutoff).isoformat() if cutoff else "", "alerts.json")
            report = json.loads(path.read_text()) if path.is_file() else None
            items.append(drift_item(mat.partition, rec.run_id, severity, report))
        if len(result.records) < PAGE:
            return items, last


def _new_check_items(instance: DagsterInstance, check_keys: Sequence[AssetCheckKey], after: int,
                     skip_runs: set[str]) -> tuple[list[AlertItem], int]:
    items, last = [], after
    storage = instance.event_log_storage
    for key in check_keys:
        records = storage.get_asset_check_execution_history(key, limit=PAGE,
                                                            status={AssetCheckExecutionRecordStatus.FAILED})
        for rec in records:  # newest first; ids grow with time
            if rec.id <= after:
                break
            last = max(last, rec.id)
            evaluation = rec.event.dagster_event.event_specific_data if rec.event and rec.event.dagster_event else None
            if evaluation is None or evaluation.severity != AssetCheckSeverity.ERROR or rec.run_id in skip_runs:
                continue
            if _same_failure_as_before(storage, key, rec, evaluation.description):
                continue
            run = instance.get_run_by_id(rec.run_id)
            partition = rec.partition or (run.tags.get(PARTITION_TAG) if run else None)
            items.append(check_item(key.asset_key.to_user_string(), key.name, partition, rec.run_id,
                                    evaluation.description))
    return items, last


def build_drift_alert_sensor(settings: Settings, check_keys: Sequence[AssetCheckKey],
                             division_cutoff_job) -> SensorDefinition:
    auto = settings.automation

    @sensor(
        name="drift_alerts",
        minimum_interval_seconds=auto.drift_sensor_interval_seconds,
        jobs=[division_cutoff_job],
        default_status=DefaultSensorStatus.RUNNING if auto.drift_sensor_running else DefaultSensorStatus.STOPPED,
        description="Turns new drift findings and failed ERROR checks into one consolidated alert (file, run tags, "
        "log); optionally requests a retraining run for partitions with hard drift. Raises each alert once.",
    )
    def drift_alerts(context: SensorEvaluationContext, settings: GosalesSettings, artifacts: ArtifactStore):
        cfg = settings.get()
        cursor = json.loads(context.cursor) if context.cursor else {"drift": 0, "checks": 0}
        drift_items, drift_last = _new_drift_items(context.instance, cfg, artifacts, cursor["drift"])
        # A hard-drift run also fails its no_hard_drift check: report that run once, as drift.
        check_items, check_last = _new_check_items(context.instance, check_keys, cursor["checks"],
                                                   skip_runs={i.run_id for i in drift_items})
        new_cursor = {"drift": drift_last, "checks": check_last}
        items = drift_items + check_items
        if not items:
            return SensorResult(skip_reason="no new drift finding or failed check", cursor=json.dumps(new_cursor))

        name = f"alert_{drift_last}_{check_last}.json"
        report = consolidated_alert(items, cursor, new_cursor)
        path = artifacts.write_json(["alerts", name], report)
        index = Path(artifacts.root, "alerts", "alerts.jsonl")
        with index.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"file": name, "max_severity": report["max_severity"], "counts": report["counts"],
                                 "partitions": report["partitions"],
                                 "subjects": [e["subject"] for e in report["subjects"]][:10]}, sort_keys=True) + "\n")
        for item in items:
            context.instance.add_run_tags(item.run_id, {ALERT_TAG: item.severity, ALERT_FILE_TAG: name})
            context.log.warning(f"[{item.severity}] {item.asset}{':' + item.check if item.check else ''} "
                                f"{item.partition or ''}: {item.summary} -> {item.action}")
        context.log.warning(f"alert written to {path}")

        requests = []
        if cfg.automation.retrain_on_hard_drift:
            retrain_runs = {i.run_id for i in drift_items
                            if (run := context.instance.get_run_by_id(i.run_id)) and run.tags.get(STAGE_TAG) == "retrain"}
            for partition in retrain_partitions(drift_items, retrain_runs):
                key = f"retrain:{partition}:{drift_last}"
                cutoff, division = partition.split("|", 1)
                requests.append(RunRequest(
                    run_key=key, job_name=DIVISION_CUTOFF_JOB, partition_key=multi_key(division, cutoff),
                    asset_selection=[AssetKey(a) for a in RETRAIN_ASSETS],
                    tags={STAGE_TAG: "retrain", RUN_KEY_TAG: key, ALERT_FILE_TAG: name}))
        return SensorResult(run_requests=requests, cursor=json.dumps(new_cursor))

    return drift_alerts
