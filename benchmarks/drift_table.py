"""Drift bar (issue 14): which hard drift alerts fire on stationary demo worlds and on each planted scenario.

For every world — the stationary demo on seeds 7, 101 and 202, and each planted drift scenario on seed 7 — this
script, under a private GOSALES_HOME per world (`<root>/<world>`):
1. writes the demo data with the embedded generator (`gosales demo-data [--seed S] [--drift NAME]`),
2. materializes, with the product's runner (`gosales_assets.runner.materialize_targets`, what `gosales
   materialize` runs), every configured cutoff of the `drift` asset and everything upstream of it (whitespace,
   forward validation and reports are left out: drift does not read them), in a subprocess per world, one world
   at a time, at `nice` 5,
3. reads the `drift` table and the manifest, and scores it: the first cutoff with a hard finding, the one the
   manifest expects (`drift.first_cutoff`: the first configured cutoff whose data contain the change), whether a
   hard finding there names the planted subject (the region / industry / division, or a division of the moved
   SKUs), and every hard partition at another cutoff. A hard prevalence or calibration finding at an earlier cutoff
   whose label window reaches into the changed months is about the change too (its outcomes contain it; it is
   only computed once that window has closed, i.e. after `first_cutoff` in real time): it is counted apart
   ("label-window alerts"), not as a false alert.

It writes the table into docs/DRIFT.md between `<!-- drift:table -->` and `<!-- /drift:table -->` and everything
it read (per world: every non-info finding) into benchmarks/results/drift_table.json.

    .venv/bin/python benchmarks/drift_table.py            # build every world, then the table (~6-9 min a world)
    .venv/bin/python benchmarks/drift_table.py --reuse    # re-read the worlds built before
    .venv/bin/python benchmarks/drift_table.py --redrift  # re-materialize only `drift` on the built worlds
    .venv/bin/python benchmarks/drift_table.py --worlds territory_slump,none_202   # a subset
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- drift:table -->", "<!-- /drift:table -->"
SCENARIOS = ("territory_slump", "sku_moves_division", "new_customer_wave", "price_increase")
STATIONARY_SEEDS = (7, 101, 202)
SCENARIO_SEED = 7
LABEL_KINDS = ("prevalence_shift", "calibration_regression")


def worlds() -> dict[str, tuple[str | None, int]]:
    """name -> (scenario or None, seed)."""
    out: dict[str, tuple[str | None, int]] = {f"none_{s}": (None, s) for s in STATIONARY_SEEDS}
    out |= {name: (name, SCENARIO_SEED) for name in SCENARIOS}
    return out


# ---------------------------------------------------------------------------------------------------------
# building a world (child process)
# ---------------------------------------------------------------------------------------------------------
def drift_targets(graph, settings):
    """Every configured-cutoff partition of `drift` and of the assets upstream of it, and the unpartitioned upstream
    assets (the product's runner plans the order)."""
    from dagster import AssetKey

    from gosales_assets.runner import target_partitions

    needed, todo = set(), [AssetKey("drift")]
    while todo:
        key = todo.pop()
        if key in needed:
            continue
        needed.add(key)
        # The parents of every asset its op makes with it: the division op's outputs are one step, and a step
        # reads the inputs of all of them (division_features reads market_basket_rules).
        todo += [p for k in graph.get(key).execution_set_asset_keys for p in graph.get(k).parent_keys]
        todo += list(graph.get(key).execution_set_asset_keys)
    # The unpartitioned upstream assets all stay: the star schema is one multi-asset (contract_violations with it).
    return {t for t in target_partitions(graph, settings, reports=False)
            if t.asset_key in needed or t.partition_key is None}


def child(home: Path, scenario: str | None, seed: int, redrift: bool) -> int:
    from dagster import AssetKey, DagsterInstance

    from gosales_assets.definitions import build_definitions
    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.runner import materialize_targets
    from gosales_assets.settings import config_path, load_settings

    os.environ["GOSALES_HOME"] = str(home)
    settings = load_settings(config_path(), home=home)
    t0 = time.time()
    if not redrift:
        manifest = generate_demo_data(settings.landing_dir, customers=settings.demo.customers, seed=seed,
                                      settings=settings, drift=scenario)
        print(f"{home.name}: demo data, {manifest.sales_rows} lines, drift {scenario}", flush=True)
    defs = build_definitions(settings, config_path())
    graph = defs.resolve_asset_graph()
    targets = drift_targets(graph, settings)
    if redrift:
        targets = {t for t in targets if t.asset_key == AssetKey("drift")}
    with DagsterInstance.ephemeral() as instance:
        outcomes = materialize_targets(defs, instance, targets, log=lambda line: None)
    failed = [o for o in outcomes if o.status not in ("ok", "held")]
    (home / "drift_build.json").write_text(json.dumps({
        "scenario": scenario, "seed": seed, "redrift": redrift, "runs": len(outcomes), "failed": len(failed),
        "errors": [f"{o.partition}: {o.error}"[:300] for o in failed][:10], "wall_s": round(time.time() - t0, 1),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}, indent=2))
    print(f"{home.name}: {len(outcomes)} runs, {len(failed)} failed, {time.time() - t0:.0f}s", flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------------
# reading and scoring (pure)
# ---------------------------------------------------------------------------------------------------------
def expected_subjects(manifest_drift: dict | None, sku_map: dict[str, str]) -> set[str]:
    """The finding subjects that name the planted change: `<column>=<value>` for a segment, `division=<name>` for a
    division, and for moved SKUs the divisions they leave and join."""
    if not manifest_drift:
        return set()
    subject, out = manifest_drift.get("subject") or {}, set()
    for key in ("region", "territory", "industry"):
        if key in subject:
            out.add(f"{key}={subject[key]}")
    if "division" in subject:
        out.add(f"division={subject['division']}")
    for sku in [*(subject.get("skus") or []), *([subject["to_sku"]] if subject.get("to_sku") else [])]:
        if sku in sku_map:
            out.add(f"division={sku_map[sku]}")
    return out


def names_subject(finding: dict, expected: set[str], slugs: dict[str, str]) -> bool:
    """A finding names the change when its subject is one of `expected`, or it is a feature of an expected
    division (its scope is the division's slug, e.g. rfm__solidworks__revenue_sum__3m)."""
    if finding["subject"] in expected:
        return True
    parts = finding["subject"].split("__")
    return len(parts) == 4 and any(f"division={name}" in expected and parts[1] == slug for name, slug in slugs.items())


def label_window_reaches(cutoff: dt.date, window_months: int, from_month: dt.date | None) -> bool:
    """The label window (C, C + W] contains a day of the changed months."""
    from gosales_assets.core.calendar import window_end

    return from_month is not None and cutoff < from_month <= window_end(cutoff, window_months)


def score_world(name: str, scenario: str | None, seed: int, rows: list[dict], manifest_drift: dict | None,
                sku_map: dict[str, str], slugs: dict[str, str], windows: dict[str, int], scored: int) -> dict:
    """One table row from the world's drift rows (dicts of the `drift` table)."""
    hard = [r for r in rows if r["severity"] == "hard"]
    expected_cutoff = manifest_drift.get("first_cutoff") if manifest_drift else None
    from_month = (dt.date.fromisoformat(manifest_drift["from_month"] + "-01")
                  if manifest_drift and manifest_drift.get("from_month") else None)
    subjects = expected_subjects(manifest_drift, sku_map)
    at_expected = [r for r in hard if str(r["cutoff_date"]) == expected_cutoff]
    named = sorted((r for r in at_expected if names_subject(r, subjects, slugs)),
                   key=lambda r: -abs(r["z"] if r["z"] is not None else (r["value"] or 0.0)))
    label_window, false = [], []
    for r in hard:
        if str(r["cutoff_date"]) == expected_cutoff:
            continue
        cutoff = r["cutoff_date"] if isinstance(r["cutoff_date"], dt.date) else dt.date.fromisoformat(
            str(r["cutoff_date"]))
        if r["kind"] in LABEL_KINDS and label_window_reaches(cutoff, windows.get(r["division"], 6), from_month):
            label_window.append(r)
        else:
            false.append(r)

    def partitions(rs):
        return sorted({f"{r['cutoff_date']}|{r['division']}" for r in rs})

    # The first alert on what was scored: label-window alerts are about outcomes, known only after first_cutoff.
    first = min((str(r["cutoff_date"]) for r in hard if not any(r is x for x in label_window)), default=None)

    best = named[0] if named else None
    return {
        "world": name, "scenario": scenario or "none (stationary)", "seed": seed,
        "expected_first_cutoff": expected_cutoff, "first_alert_cutoff": first,
        "hard_partitions_at_expected": len(partitions(at_expected)),
        "subject_expected": sorted(subjects), "subject_named": best is not None,
        "named_finding": None if best is None else {k: best[k] for k in ("division", "kind", "subject", "value", "z",
                                                                          "action")},
        "partitions_naming_subject": len(partitions(named)),
        "false_alert_partitions": partitions(false),
        "false_alert_findings": [{k: r[k] for k in ("cutoff_date", "division", "kind", "subject", "value", "z")}
                                 for r in false],
        "label_window_alert_partitions": partitions(label_window),
        # Findings whose effect reached a threshold but stayed info: within sampling noise (module doc of drift.py).
        "held_back_as_noise": sum(bool(r.get("noise")) for r in rows),
        "scored_partitions": scored,
    }


def _fmt_value(v) -> str:
    return "–" if v is None else f"{v:+.2f}"


def _label_window_text(r: dict) -> str:
    parts = r["label_window_alert_partitions"]
    return "0" if not parts else f"{len(parts)}: " + ", ".join(p.replace("|", " ") for p in parts)


def render_table(results: list[dict]) -> str:
    head = ("| world | seed | expected first cutoff | first hard alert on the scored population | subject named at "
            "the expected cutoff "
            "(strongest hard finding) | partitions naming it | hard alerts at other cutoffs (false) | "
            "label-window alerts | effects within noise (not raised) | drift-checked partitions |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in results:
        f = r["named_finding"]
        named = "–" if not r["expected_first_cutoff"] else (
            f"**yes**: `{f['kind']}` `{f['subject']}` value {_fmt_value(f['value'])}"
            + (f", z {f['z']:+.1f}" if f["z"] is not None else "") if f else "**no**")
        false = len(r["false_alert_partitions"])
        false_txt = "0" if not false else (f"**{false}**: " + ", ".join(
            f"{x['cutoff_date']} {x['division']} {x['kind']} {x['subject']}" for x in r["false_alert_findings"][:4]))
        lines.append(
            f"| {r['scenario']} | {r['seed']} | {r['expected_first_cutoff'] or '– (no change)'} | "
            f"{r['first_alert_cutoff'] or 'none'} | {named} | "
            f"{r['partitions_naming_subject'] if r['expected_first_cutoff'] else '–'}"
            f"{'/' + str(r['hard_partitions_at_expected']) if r['expected_first_cutoff'] else ''} | {false_txt} | "
            f"{_label_window_text(r)} | {r['held_back_as_noise']} | "
            f"{r['scored_partitions']} |")
    return head + "\n".join(lines) + "\n"


def replace_between(doc: str, block: str) -> str:
    """`doc` with the text between the markers replaced by `block` (markers appended at the end when missing)."""
    if START in doc and END in doc:
        pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
        return pattern.sub(lambda _: f"{START}\n{block}{END}", doc)
    return doc.rstrip("\n") + f"\n\n{START}\n{block}{END}\n"


# ---------------------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------------------
def read_world(home: Path) -> tuple[list[dict], dict | None, int]:
    import duckdb

    manifest = json.loads((home / "landing" / "demo_manifest.json").read_text())
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("select division, cutoff_date, kind, subject, value, severity, z, action, "
                           "detail like '%within sampling noise%' as noise from drift "
                           "order by cutoff_date, division").fetchall()
        cols = ["division", "cutoff_date", "kind", "subject", "value", "severity", "z", "action", "noise"]
        # The partitions drift compared: those that published scores (a held / skipped model has no drift rows).
        scored = con.execute("select count(*) from (select distinct division, cutoff_date from drift)").fetchone()[0]
    return [dict(zip(cols, r)) for r in rows], manifest.get("drift"), int(scored)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT / ".gosales" / "drift", help="one home per world under it")
    ap.add_argument("--worlds", default=None, help=f"comma-separated subset of {', '.join(worlds())}")
    ap.add_argument("--reuse", action="store_true", help="re-read the worlds built before; build nothing")
    ap.add_argument("--redrift", action="store_true",
                    help="re-materialize only `drift` (and the scores its op makes) on the built worlds")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "DRIFT.md")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "drift_table.json")
    ap.add_argument("--child", nargs=3, metavar=("HOME", "SCENARIO", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        home, scenario, seed = args.child
        return child(Path(home), None if scenario == "-" else scenario, int(seed), args.redrift)

    chosen = worlds()
    if args.worlds:
        unknown = set(args.worlds.split(",")) - set(chosen)
        if unknown:
            ap.error(f"unknown world(s) {sorted(unknown)}; known: {', '.join(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in args.worlds.split(",")}
    builds = {}
    if not args.reuse:
        for name, (scenario, seed) in chosen.items():  # one at a time: the machine is shared
            home = args.root / name
            home.mkdir(parents=True, exist_ok=True)
            if not args.redrift:
                for stale in ("warehouse.duckdb", "warehouse.duckdb.wal"):
                    (home / stale).unlink(missing_ok=True)
            t0 = time.time()
            code = subprocess.call(["nice", "-n", "5", sys.executable, __file__, "--child", str(home),
                                    scenario or "-", str(seed), *(["--redrift"] if args.redrift else [])])
            builds[name] = {"exit": code, "wall_s": round(time.time() - t0, 1)}
            print(f"{name}: exit {code} in {time.time() - t0:.0f}s", flush=True)

    from gosales_assets.settings import config_path, division_slug, load_settings

    settings = load_settings(config_path())
    slugs = {d: division_slug(d) for d in settings.divisions}
    windows = {d: settings.window_months(d) for d in settings.divisions}
    results = []
    for name, (scenario, seed) in chosen.items():
        home = args.root / name
        if not (home / "warehouse.duckdb").is_file():
            print(f"{name}: not built ({home}); skipped")
            continue
        rows, manifest_drift, scored = read_world(home)
        result = score_world(name, scenario, seed, rows, manifest_drift, settings.sku_map, slugs, windows, scored)
        build = home / "drift_build.json"
        result["build"] = json.loads(build.read_text()) if build.is_file() else None
        result["raised"] = [{k: (str(v) if isinstance(v, dt.date) else v) for k, v in r.items()}
                            for r in rows if r["severity"] != "info"]
        results.append(result)

    table = render_table(results)
    print(table)
    stationary = [r for r in results if r["expected_first_cutoff"] is None]
    planted = [r for r in results if r["expected_first_cutoff"] is not None]
    summary = (f"Stationary worlds: {sum(len(r['false_alert_partitions']) for r in stationary)} hard alert(s) over "
               f"{sum(r['scored_partitions'] for r in stationary)} scored partitions. Planted scenarios: "
               f"{sum(r['first_alert_cutoff'] == r['expected_first_cutoff'] and r['subject_named'] for r in planted)}"
               f" of {len(planted)} alert first at the expected cutoff and name the subject; "
               f"{sum(len(r['false_alert_partitions']) for r in planted)} hard partition(s) at other cutoffs.\n")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    block = (f"Generated by `benchmarks/drift_table.py` (HEAD {commit} plus the working tree; "
             f"{settings.demo.customers} customers, the shipped configuration, every configured cutoff). "
             f"{summary}\n{table}")
    if args.worlds:  # a subset: printed only, the report and its JSON describe every world
        print(summary)
        return 0
    if args.doc.is_file():
        args.doc.write_text(replace_between(args.doc.read_text(), block))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"builds": builds, "results": results}, indent=2, default=str))
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
