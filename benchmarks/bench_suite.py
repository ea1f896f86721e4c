"""Benchmark suite: the whole backfill through Dagster, and the same computation as plain Python calls.

    .venv/bin/python benchmarks/bench_suite.py --profile demo                 # part of `make bench`
    nice -n 10 .venv/bin/python benchmarks/bench_suite.py --profile large     # `make bench-large` (hours)

Profiles (a config written under the work folder, the default YAML plus the profile's overrides, the same
mechanism as the tests' `new_project`):
- `demo`: the default demo (3,000 customers, the 6 configured cutoffs, 12 divisions);
- `large`: 500,000 customers, 12 divisions, 8 quarterly month-end cutoffs 2024-09-30 … 2026-06-30 (the last
  one score-only, as in the demo; the first model exists at 2025-03-31, trained on 2024-09-30).
`models.num_threads` is the shipped default (recorded in the results).

What runs, each part in its own subprocess (so every part's memory is its own):
1. data generation: `generate_demo_data` into `<work>/landing`, without the ground-truth oracle file (the
   engine never reads it); both paths read this landing folder.
2. direct path: one subprocess per stage (star, cutoff features, labels + division features, models,
   scoring + drift, whitespace, forward validation, metrics summary) calling the `gosales_assets.core` functions with
   the arguments the asset functions use, checks and artifact files included; where an asset body is one core
   call, the direct path makes the same call (`core.whitespace.build_whitespace` / `empty_whitespace`,
   `core.model_card.model_record` / `skipped_model`, the `core.leakage_records` records) and writes the files it
   returns; intermediate tables are Parquet files under `<work>/direct/tables` (the direct path's warehouse), read
   where the asset queries the warehouse. No Dagster import (checked). With `whitespace.challenger_enabled` the
   whitespace stage stops (the direct path does not read the challenger's earlier lists).
3. Dagster path: `gosales_assets.runner.materialize` (what `gosales materialize` runs) against a fresh
   `DAGSTER_HOME` with the repository's dagster.yaml; per-step wall times from the run event logs.

Memory: a sampler thread in every subprocess reads VmHWM every 0.2 s and resets it (`5 > /proc/self/clear_refs`),
so each sample is the exact peak RSS of its interval; a stage's / step's peak is the largest sample overlapping it.

Overhead ratio = Dagster whole-backfill wall / direct whole wall − 1 (both without interpreter start and data
generation). Writes benchmarks/results/<profile>.json and the section between `<!-- bench:<profile>:start -->`
and `<!-- bench:<profile>:end -->` in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# LightGBM's OpenMP threads otherwise spin while waiting (see the Makefile); set before lightgbm loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import yaml  # noqa: E402

from gosales_assets.core.als import fit_als  # noqa: E402
from gosales_assets.core.artifact_files import write_artifact  # noqa: E402
from gosales_assets.core.basket import customer_portfolios, market_basket_rules  # noqa: E402
from gosales_assets.core.calendar import add_months, month_end, window_end  # noqa: E402
from gosales_assets.core.charts import calibration_chart, gains_chart  # noqa: E402
from gosales_assets.core.checksum import frame_checksum  # noqa: E402
from gosales_assets.core.contracts import (  # noqa: E402
    check_contract,
    contract_violations_schema,
    dim_customer_schema,
    fact_events_schema,
    fact_transactions_schema,
    icp_scores_schema,
    missing_references,
    raw_table_schema,
)
from gosales_assets.core.division_features import build_division_features  # noqa: E402
from gosales_assets.core.drift import DriftThresholds, alerts_json, drift_findings  # noqa: E402
from gosales_assets.core.features import build_customer_features, feature_catalog, feature_stats  # noqa: E402
from gosales_assets.core.ingest import read_eligibility, read_raw_table  # noqa: E402
from gosales_assets.core.labels import build_labels, customers_known_at  # noqa: E402
from gosales_assets.core.leakage import feature_code_paths, invariance_report, scan_wall_clock, source_date_audit  # noqa: E402
from gosales_assets.core.leakage_records import (  # noqa: E402
    audit_record,
    cutoff_record_path,
    division_features_record,
    feature_shift_report,
)
from gosales_assets.core.metrics import calibration_bins, calibration_mae, gains_table  # noqa: E402
from gosales_assets.core.model_card import model_record, package_versions, skipped_model  # noqa: E402
from gosales_assets.core.modeling import DegenerateModel, InsufficientData, load_model, train_division_model  # noqa: E402
from gosales_assets.core.registry import unpublished_reason  # noqa: E402
from gosales_assets.core.reports import metrics_summary, top_accounts, top_accounts_markdown  # noqa: E402
from gosales_assets.core.scoring import (ICP_COLUMNS, export_rel, score_population,  # noqa: E402
                                         zero_prevalence_alert)
from gosales_assets.core.star import build_fact_events, build_star, violation_summary  # noqa: E402
from gosales_assets.core.validation import segment_performance, topk_scenarios, validation_metrics  # noqa: E402
from gosales_assets.core.whitespace import build_whitespace, empty_whitespace, whitespace_contracts  # noqa: E402
from gosales_assets.core.whitespace_inputs import whitespace_inputs  # noqa: E402
from gosales_assets.partitions import training_pool  # noqa: E402
from gosales_assets.settings import DEFAULT_CONFIG_PATH, Settings, division_slug, load_settings, merge_config  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_features import _reset_peak_rss  # noqa: E402  (VmHWM reset, shared with the features benchmark)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "PERFORMANCE.md"

LARGE_CUTOFFS = ["2024-09-30", "2024-12-31", "2025-03-31", "2025-06-30", "2025-09-30", "2025-12-31",
                 "2026-03-31", "2026-06-30"]
PROFILES: dict[str, dict] = {
    "demo": {},
    "large": {"cutoffs": LARGE_CUTOFFS, "demo": {"customers": 500_000}},
}
TARGET_WALL_S = 30 * 60
TARGET_RSS_GIB = 12.0
TARGET_OVERHEAD = 0.15
SAMPLE_INTERVAL_S = 0.2

# Stages of both paths, in execution order of the direct path; Dagster steps are grouped by their step key.
STAGES = {
    "star": "star schema: ingest, build, fact_events, contract checks",
    "cutoff_features": "features per cutoff: customer features, basket rules, ALS, leakage checks",
    "division_features": "labels + division features per division × cutoff",
    "models": "model training per division × cutoff (skips included)",
    "scoring": "scoring + drift per division × cutoff",
    "whitespace": "whitespace ranking + top accounts per cutoff",
    "validation": "forward validation per division × cutoff",
    "reports": "metrics summary",
}
STEP_STAGE = {
    "sales_log": "star", "customers": "star", "star_schema": "star", "fact_events": "star",
    # one step since the three cutoff assets share their reads (assets/features.py); its three former steps' names
    # stay, for results measured before
    "cutoff_features": "cutoff_features", "customer_features": "cutoff_features",
    "market_basket_rules": "cutoff_features", "als_embeddings": "cutoff_features",
    "labels": "division_features", "division_features": "division_features",
    "division_model": "models", "icp_scores": "scoring", "whitespace_ranking": "whitespace",
    "top_accounts_report": "whitespace", "forward_validation": "validation", "drift": "validation",
    "metrics_summary": "reports",
}
# The op making a whole division × cutoff partition in one step (assets/division_cutoff.py) yields its outputs in
# order: its step is cut into the stages above at its outputs' materialization events (each after its output was
# computed and stored). (asset whose materialization ends the part, the part's name as a step of STEP_STAGE); the
# last part ends with the step.
STEP_PARTS = {"division_cutoff": [("division_features", "division_features"), ("division_model", "division_model"),
                                  ("drift", "icp_scores"), ("peer_scores", "peer_scores"),
                                  (None, "forward_validation")]}


def step_parts(step_key: str, t0: float, t1: float, materialized: dict[str, float]) -> list[tuple[str, float, float]]:
    """[(step name, start, end)] of one step: itself, or its parts (STEP_PARTS) cut at the materialization times
    `materialized` ({asset: timestamp} within the step). A part whose output was never materialized (a failed
    step) joins the next one."""
    if step_key not in STEP_PARTS:
        return [(step_key, t0, t1)]
    out, start = [], t0
    for asset, name in STEP_PARTS[step_key]:
        end = t1 if asset is None else materialized.get(asset)
        if end is None:
            continue
        end = min(max(end, start), t1)
        out.append((name, start, end))
        start = end
    if start < t1:  # the step failed before its last part's boundary: the rest is its last part
        out.append((STEP_PARTS[step_key][-1][1], start, t1))
    return out
# Mirrors of constants that live in the (Dagster-importing) asset modules.
FACT_COLUMNS = ["invoice_id", "line_no", "invoice_date", "customer_id", "sku", "division", "quantity", "revenue",
                "gross_profit", "rep_id", "is_return"]
FACT_ORDER = ["invoice_date", "invoice_id", "line_no"]
LABEL_COLUMNS = ["division", "cutoff_date", "window_months", "cohort", "net_revenue_window", "label", "censored"]
SEGMENTS = ["industry", "region", "employee_band"]


# ---------------------------------------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------------------------------------
def _status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


class PeakSampler:
    """Peak RSS and CPU time per time interval of this process (see the module docstring). Where resetting
    VmHWM is not permitted it samples VmRSS instead (`exact` False: spikes shorter than the interval can be
    missed). CPU time is the process's (all threads), interpolated inside an interval."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S):
        self.interval = interval
        self.samples: list[tuple[float, float, int, float, float]] = []  # (t0, t1, peak kB, cpu at t0, at t1)
        self.exact = _reset_peak_rss()
        self._last = time.time()
        self._last_cpu = time.process_time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "PeakSampler":
        self._thread.start()
        return self

    def _take(self) -> None:
        now, cpu = time.time(), time.process_time()
        kb = _status_kb("VmHWM" if self.exact else "VmRSS")
        if self.exact:
            _reset_peak_rss()
        self.samples.append((self._last, now, kb, self._last_cpu, cpu))
        self._last, self._last_cpu = now, cpu

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._take()

    def peak_mb(self, t0: float | None = None, t1: float | None = None) -> float:
        kbs = [s[2] for s in self.samples if (t0 is None or s[1] >= t0) and (t1 is None or s[0] <= t1)]
        return round(max(kbs, default=0) / 1024, 1)

    def _cpu_at(self, t: float) -> float:
        for a, b, _, ca, cb in self.samples:
            if t <= b:
                return ca if t <= a else ca + (cb - ca) * (t - a) / max(b - a, 1e-9)
        return self.samples[-1][4] if self.samples else 0.0

    def cpu_s(self, t0: float, t1: float) -> float:
        return round(self._cpu_at(t1) - self._cpu_at(t0), 3)


class Recorder:
    """Wall time (and, once the sampler stopped, peak RSS) of each item of a stage."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    @contextmanager
    def item(self, key: str, **tags):
        rec: dict = {"item": key, "status": "ok", **tags}
        t0 = time.time()
        try:
            yield rec
        finally:
            rec["t0"], rec["t1"] = t0, time.time()
            rec["wall_s"] = round(rec["t1"] - t0, 3)
            self.items.append(rec)
            print(f"  {key}: {rec['status']} {rec['wall_s']:.1f} s", flush=True)

    def finish(self, sampler: PeakSampler) -> None:
        for rec in self.items:
            rec["peak_rss_mb"] = sampler.peak_mb(rec["t0"], rec["t1"])
            rec["cpu_s"] = sampler.cpu_s(rec["t0"], rec["t1"])


# ---------------------------------------------------------------------------------------------------------
# the direct path: plain calls of the core functions, mirroring the asset functions
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Direct:
    cfg: Settings
    root: Path
    divisions: list[str] | None = None  # the division × cutoff partitions to run (default: every division)
    rec: Recorder = field(default_factory=Recorder)

    def _table(self, name: str, *key: str) -> Path:
        return self.root / "tables" / name / ("__".join(key) or "all")

    def save(self, df: pl.DataFrame, name: str, *key: str) -> None:
        path = self._table(name, *key).with_suffix(".parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(path)

    def load(self, name: str, *key: str) -> pl.DataFrame | None:
        path = self._table(name, *key).with_suffix(".parquet")
        return pl.read_parquet(path) if path.is_file() else None

    def art(self, *parts: str) -> Path:
        path = self.cfg.artifacts_dir.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def json(self, rel: list[str], obj) -> None:
        self.art(*rel).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def csv(self, rel: list[str], df: pl.DataFrame) -> None:
        df.write_csv(self.art(*rel))

    def catalog(self, rel: list[str], features: pl.DataFrame) -> None:
        self.csv([*rel, "feature_catalog.csv"], feature_catalog(features))
        self.json([*rel, "feature_stats.json"], feature_stats(features))

    def charts(self, rel: list[str], gains: pl.DataFrame, calibration: pl.DataFrame, title: str) -> None:
        self.art(*rel, "gains.png").write_bytes(gains_chart(gains, title))
        self.art(*rel, "calibration.png").write_bytes(calibration_chart(calibration, title))

    def fact(self) -> pl.DataFrame:
        return self.load("fact_transactions").select(FACT_COLUMNS).sort(FACT_ORDER)

    def partitions(self):
        for cutoff in self.cfg.cutoffs:
            for division in self.divisions or self.cfg.divisions:
                yield division, cutoff, (division_slug(division), cutoff.isoformat())


def d_star(d: Direct) -> None:
    cfg = d.cfg
    with d.rec.item("ingest (sales_log, customers)"):
        raw = {t: read_raw_table(cfg.landing_dir, t) for t in ("sales_log", "customers")}
        for t, df in raw.items():
            frame_checksum(df)
            check_contract(df, raw_table_schema(t))
    with d.rec.item("star_schema"):
        star = build_star(raw["sales_log"], raw["customers"], sku_map=cfg.sku_map, start_date=cfg.data.start_date,
                          end_date=cfg.data.end_date)
        violation_summary(star.contract_violations)
        fact, dim = star.fact_transactions, star.dim_customer
        check_contract(fact, fact_transactions_schema(start_date=cfg.data.start_date, end_date=cfg.data.end_date,
                                                      sku_map=cfg.sku_map, divisions=cfg.divisions))
        missing_references(fact, dim, "customer_id")
        check_contract(dim, dim_customer_schema())
        check_contract(star.contract_violations, contract_violations_schema())
        for name in ("fact_transactions", "dim_customer", "contract_violations"):
            out = getattr(star, name)
            frame_checksum(out)
            d.save(out, name)
    with d.rec.item("fact_events"):
        events = build_fact_events(fact, cfg.divisions)
        frame_checksum(events)
        check_contract(events, fact_events_schema(start_date=cfg.data.start_date, end_date=cfg.data.end_date,
                                                  divisions=cfg.divisions))
        d.save(events, "fact_events")


def d_cutoff_features(d: Direct) -> None:
    cfg = d.cfg
    dim = d.load("dim_customer").sort("customer_id")
    fact = d.fact()
    for cutoff in cfg.cutoffs:
        c = cutoff.isoformat()
        with d.rec.item(c, cutoff=c) as rec:
            history = fact.filter(pl.col("invoice_date") <= cutoff)
            builders = {
                "customer_features": lambda rows: build_customer_features(rows, dim, cutoff, cfg.divisions,
                                                                          cfg.features),
                "market_basket_rules": lambda rows: market_basket_rules(
                    rows, cutoff, cfg.divisions, min_support=cfg.basket.min_support,
                    min_confidence=cfg.basket.min_confidence),
                "als_embeddings": lambda rows: fit_als(rows, cutoff, cfg.divisions, cfg.als, cfg.seeds.als).similarity,
            }
            feats = builders["customer_features"](history)
            d.catalog(["features", c], feats)
            rules = builders["market_basket_rules"](history)
            d.csv(["features", c, "market_basket_rules.csv"], rules)
            d.json(["features", c, "market_basket_stats.json"], feature_stats(rules, ["support", "confidence", "lift"]))
            als = fit_als(history, cutoff, cfg.divisions, cfg.als, cfg.seeds.als)
            d.csv(["features", c, "als_division_vectors.csv"], als.division_vectors)
            d.json(["features", c, "als_stats.json"], feature_stats(als.similarity, ["als_similarity", "als_coverage"]))
            for name, out in {"customer_features": feats, "market_basket_rules": rules,
                              "als_embeddings": als.similarity}.items():
                checksum = frame_checksum(out)
                rec[f"checksum_{name}"] = checksum
                results = dict(zip(("shift_test", "post_cutoff_invariance"),
                                   invariance_report(builders[name], fact, cutoff, checksum, seed=cfg.seeds.modeling)))
                results["source_date_audit"] = source_date_audit(history, cutoff)
                d.json(["features", c, f"leakage_{name}.json"], audit_record(results))
                d.save(out.with_columns(pl.lit(cutoff).alias("cutoff_date")), name, c)


def d_division_features(d: Direct) -> None:
    cfg, lab = d.cfg, d.cfg.labels
    dim = d.load("dim_customer")
    fact = d.fact()
    label_fact = fact.select("customer_id", "invoice_date", "division", "sku", "revenue")
    label_dim = dim.select("customer_id", "first_seen_date")
    index, inputs = [], {}
    for division, cutoff, key in d.partitions():
        c = cutoff.isoformat()
        with d.rec.item(f"{division} @ {c}", cutoff=c, division=division):
            requested = cfg.window_months(division)
            widen = lab.auto_widen
            horizon = window_end(cutoff, max(requested, widen.max_window_months) if widen.enabled else requested)
            res = build_labels(label_fact.filter(pl.col("invoice_date") <= horizon),
                               customers_known_at(label_fact, label_dim, cutoff), division=division,
                               cutoff=cutoff, window_months=requested, data_end=cfg.data.end_date, mode=lab.mode,
                               min_net_revenue=lab.min_net_revenue, sku_denylist=lab.sku_denylist,
                               auto_widen_min_positives=widen.min_positives if widen.enabled else None,
                               auto_widen_max_months=widen.max_window_months if widen.enabled else None)
            d.json(["labels", key[0], c, "label_summary.json"],
                   res.summary() | {"mode": lab.mode, "window_end": str(window_end(cutoff, res.window_months))})
            frame_checksum(res.frame)
            d.save(res.frame, "labels", *key)
            uncensored = res.frame.filter(~pl.col("censored"))
            index.append({"division": division, "cutoff_date": cutoff,
                          "window_all": res.frame.get_column("window_months").max(),
                          "window_uncensored": uncensored.get_column("window_months").max(),
                          "positives": int(uncensored.get_column("label").sum() or 0)})

            history = fact.filter(pl.col("invoice_date") <= cutoff)
            if c not in inputs:  # each cutoff's feature tables are read once (partitions run cutoff by cutoff)
                inputs.clear()
                inputs[c] = [d.load(name, c).drop("cutoff_date")
                             for name in ("customer_features", "market_basket_rules", "als_embeddings")]
            feats, rules, als = inputs[c]
            frame = build_division_features(feats, customer_portfolios(history, cutoff), rules, als, division,
                                            labels=res.frame.select("customer_id", *LABEL_COLUMNS))
            features_only = frame.drop(LABEL_COLUMNS)
            frame_checksum(frame)
            d.catalog(["features", c, key[0]], features_only)
            frame_checksum(features_only)
            audit = source_date_audit(history, cutoff)
            upstream = cutoff_record_path(cfg.artifacts_dir, cutoff, "customer_features")
            d.json(["features", c, key[0], "leakage_division_features.json"], division_features_record(
                json.loads(upstream.read_text()) if upstream.is_file() else None, audit))
            d.save(frame, "division_features", *key)
    d.save(pl.DataFrame(index, schema_overrides={"window_all": pl.Int64, "window_uncensored": pl.Int64}),
           "label_index")


def d_models(d: Direct) -> None:
    cfg, params = d.cfg, d.cfg.models
    shortest, longest = cfg.window_range()
    index = d.load("label_index")
    scan = scan_wall_clock(feature_code_paths())
    registry = []
    for division, cutoff, key in d.partitions():
        out_dir = ["models", *key]
        with d.rec.item(f"{division} @ {key[1]}", cutoff=key[1], division=division) as rec:
            mine = index.filter(pl.col("division") == division)
            # The model's declared look-back (partitions.training_lookback): C' in [C - W_max - L, C - W_min].
            first = add_months(cutoff, -(longest + params.training_lookback_months))
            last = add_months(cutoff, -shortest)
            earlier = mine.filter(pl.col("cutoff_date").is_between(first, last)
                                  & pl.col("window_uncensored").is_not_null())
            windows = dict(earlier.select("cutoff_date", "window_uncensored").iter_rows())
            positives = dict(earlier.select("cutoff_date", "positives").iter_rows())
            training = training_pool([(c, w, positives[c]) for c, w in windows.items() if window_end(c, w) <= cutoff],
                                     params.training_cutoffs, params.training_positives).cutoffs
            usable = [c for c, _ in training]
            reason = None
            if not training:
                reason = (f"no trainable cutoff C' with C' + W' ≤ {cutoff} has labels "
                          f"(labelled earlier cutoffs: {[str(c) for c in sorted(windows)] or 'none'})")
            else:
                frame = pl.concat([d.load("division_features", key[0], c.isoformat()) for c in usable],
                                  how="diagonal_relaxed").sort("cutoff_date", "customer_id")
                try:
                    model = train_division_model(frame, params, cfg.seeds.modeling)
                except (InsufficientData, DegenerateModel) as err:
                    reason = f"{type(err).__name__}: {err.reason}"
            if reason is not None:
                skipped = skipped_model(division=division, cutoff=cutoff, training=training, reason=reason,
                                        run_id="direct")
                d.json([*out_dir, "skipped.json"], skipped.skipped)
                registry.append(skipped.registry)
                rec["status"] = "skipped"
                continue
            rec["train_rows"] = frame.height
            model_path = d.art(*out_dir, "model.joblib")
            model.save(model_path)
            model_version = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
            window_at_c = mine.filter(pl.col("cutoff_date") == cutoff).get_column("window_all").max()
            record = model_record(
                model, division=division, cutoff=cutoff, training=training, model_version=model_version,
                model_path=model_path, gate_thresholds=cfg.gate_thresholds(division),
                peer_resamples=cfg.models.gates.peer_resamples, peer_gate=cfg.models.gates.peer_gate,
                feature_shift=feature_shift_report(cfg.artifacts_dir, division, usable),
                prediction_window_months=int(window_at_c) if window_at_c is not None else cfg.window_months(division),
                frame=frame, drift_sample_rows=params.drift_sample_rows, seed=cfg.seeds.modeling, run_id="direct",
                config_checksum=cfg.checksum, wall_clock_hits=scan)
            for name, content in record.files.items():
                write_artifact(d.art(*out_dir, name), content)
            registry.append(record.registry)
            rec["gate_passed"] = record.gate.passed
            rec["verdict"] = record.status
    d.save(pl.concat(registry), "division_model")


def _model_rows(d: Direct) -> dict[tuple[str, dt.date], dict]:
    registry = d.load("division_model")
    return {(r["division"], r["cutoff_date"]): r for r in registry.iter_rows(named=True)}


def d_scoring(d: Direct) -> None:
    cfg = d.cfg
    models = _model_rows(d)
    names = d.load("dim_customer").select("customer_id", "customer_name")
    for division, cutoff, key in d.partitions():
        with d.rec.item(f"{division} @ {key[1]}", cutoff=key[1], division=division) as rec:
            if unpublished_reason(models.get((division, cutoff))) is not None:
                rec["status"] = "skipped"
                continue
            row = models[(division, cutoff)]
            current = d.load("division_features", *key)
            scores = score_population(current, load_model(row["model_path"]), row, names, run_id="direct")
            alert = zero_prevalence_alert(scores, row)
            if alert is not None:
                d.json(["alerts", key[1], f"icp_scores_{key[0]}.json"], alert)
                rec["status"] = "withheld"
                continue
            frame_checksum(scores)
            d.save(scores, "icp_scores", *key)
            d.csv(export_rel(cutoff, division), scores.select(ICP_COLUMNS).sort("customer_id"))
            check_contract(scores, icp_scores_schema(cfg.divisions))
        # drift (the same Dagster step as the scores: division_cutoff)
        with d.rec.item(f"drift {division} @ {key[1]}", cutoff=key[1], division=division):
            model_dir = Path(row["model_path"]).parent
            train_features = pl.read_parquet(model_dir / "train_feature_sample.parquet")
            baseline = load_model(row["model_path"]).predict_proba(train_features)
            top = [f for f in pl.read_csv(model_dir / "feature_importance.csv").get_column("feature")
                   .head(cfg.drift.top_features).to_list() if f in train_features.columns and f in current.columns]
            known = scores.filter(pl.col("bought_in_division").is_not_null())
            y_cur = known.get_column("bought_in_division").to_numpy().astype(int) if known.height else None
            findings = drift_findings(
                baseline, scores.get_column("icp_score").to_numpy(), train_features, current, top,
                prevalence_train=row["base_rate"], prevalence_current=float(np.mean(y_cur)) if known.height else None,
                cal_mae_train=row["cal_mae"],
                cal_mae_current=calibration_mae(y_cur, known.get_column("icp_score").to_numpy(),
                                                cfg.models.calibration_bins) if known.height else None,
                thresholds=DriftThresholds.of(cfg.drift.model_dump()))
            d.json(["validation", *key, "alerts.json"], alerts_json(findings, division, cutoff))


def _previous(lists: dict[dt.date, pl.DataFrame], cutoff: dt.date, months: int):
    """The newest non-empty list in the `months` before the cutoff (what the asset reads from the warehouse)."""
    earlier = [c for c in lists if add_months(cutoff, -months) <= c <= add_months(cutoff, -1)]
    return (max(earlier), lists[max(earlier)]) if earlier else (None, None)


def d_whitespace(d: Direct) -> None:
    cfg, ws = d.cfg, d.cfg.whitespace
    if ws.challenger_enabled:
        raise NotImplementedError("the direct path does not read the challenger's earlier lists (challenger off)")
    dim = d.load("dim_customer")
    fact = d.fact()
    eligibility = read_eligibility(cfg.landing_dir)
    lists: dict[dt.date, pl.DataFrame] = {}  # the non-empty lists built so far (the asset's `whitespace` table)
    for cutoff in cfg.cutoffs:
        c = cutoff.isoformat()
        with d.rec.item(c, cutoff=c) as rec:
            parts = [d.load("icp_scores", division_slug(div), c) for div in d.divisions or cfg.divisions]
            parts = [p.select("customer_id", "division", "icp_score", "bought_in_division")
                     for p in parts if p is not None]
            if not parts:  # empty slices and a metrics file with the reason, as the asset stores them
                build = empty_whitespace(cutoff, "direct", cfg.divisions)
                shutil.rmtree(cfg.artifacts_dir / "whitespace" / c, ignore_errors=True)
                for name, content in build.files.items():
                    write_artifact(d.art("whitespace", c, name), content)
                rec["status"] = "skipped"
                continue
            scores = pl.concat(parts).sort("division", "customer_id")
            history = fact.filter(pl.col("invoice_date") <= cutoff)
            prev_cutoff, previous = _previous(lists, cutoff, ws.history_months)
            build = build_whitespace(
                scores, history, dim, cutoff=cutoff, run_id="direct", settings=ws, divisions=cfg.divisions,
                rules=d.load("market_basket_rules", c).drop("cutoff_date"),
                als=d.load("als_embeddings", c).drop("cutoff_date"), eligibility=eligibility, previous=previous,
                previous_cutoff=prev_cutoff, challenger_seed=cfg.seeds.modeling,
                max_window_months=cfg.window_range()[1])
            rec["checksum_whitespace"] = build.checksum
            for name, content in build.files.items():
                write_artifact(d.art("whitespace", c, name), content)
            rec["contract_failures"] = sum(not r.passed for r in whitespace_contracts(build, cfg.divisions).values())
            ranked = build.ranked
            d.save(ranked, "whitespace", c)
            lists[cutoff] = ranked
            # top_accounts_report (the next step of the same Dagster run)
            owned = whitespace_inputs(history, dim, cutoff, ws.ownership_lookback_months).owned
            accounts = top_accounts(ranked, owned, cfg.divisions).with_columns(pl.lit(cutoff).alias("cutoff_date"))
            d.csv(["reports", c, "top_accounts.csv"], accounts)
            d.art("reports", c, "top_accounts.md").write_text(top_accounts_markdown(accounts, cutoff))


def d_validation(d: Direct) -> None:
    cfg = d.cfg
    attrs = d.load("dim_customer").select("customer_id", *SEGMENTS)
    forward = []
    for division, cutoff, key in d.partitions():
        scores = d.load("icp_scores", *key)
        if scores is None:
            continue
        rel = ["validation", *key]
        with d.rec.item(f"forward {division} @ {key[1]}", cutoff=key[1], division=division) as rec:
            window = int(scores.item(0, "prediction_window_months"))
            end = window_end(cutoff, window)
            if end > cfg.data.end_date or scores.get_column("bought_in_division").null_count() == scores.height:
                rec["status"] = "skipped"
            else:
                labels = d.load("labels", *key).select("customer_id", "net_revenue_window")
                frame = (scores.join(labels, on="customer_id", how="left").join(attrs, on="customer_id", how="left")
                         .filter(pl.col("bought_in_division").is_not_null()).sort("customer_id"))
                y = frame.get_column("bought_in_division").to_numpy().astype(int)
                p = frame.get_column("icp_score").to_numpy()
                revenue = frame.get_column("net_revenue_window").fill_null(0.0).to_numpy()
                metrics = validation_metrics(y, p, revenue, ks=cfg.models.capacity_pcts,
                                             n_bins=cfg.models.calibration_bins)
                gains, bins = gains_table(y, p), calibration_bins(y, p, cfg.models.calibration_bins)
                frame.write_parquet(d.art(*rel, "validation_frame.parquet"))
                d.json([*rel, "metrics.json"], metrics)
                d.csv([*rel, "gains.csv"], gains)
                d.csv([*rel, "calibration.csv"], bins)
                d.csv([*rel, "topk_scenarios.csv"], topk_scenarios(y, p, revenue, pcts=cfg.whitespace.capacity_grid_pcts))
                segments = segment_performance(frame.rename({"bought_in_division": "y", "icp_score": "p"}), SEGMENTS)
                d.csv([*rel, "segment_performance.csv"], segments)
                d.charts(rel, gains, bins, f"{division} @ {cutoff}: forward")
                forward.append({"division": division, "cutoff_date": cutoff, "window_months": window,
                                "window_end": end, "model_version": scores.item(0, "model_version"), "rows": len(y),
                                "positives": int(y.sum()), "flagged_segments": segments.filter(pl.col("flag")).height,
                                **{k: metrics.get(k) for k in ("auc", "pr_auc", "brier", "lift_at_5", "lift_at_10",
                                                               "lift_at_20", "rev_lift_at_10", "cal_mae", "base_rate")}})
    d.save(pl.DataFrame(forward, infer_schema_length=None), "forward_validation")


def d_reports(d: Direct) -> None:
    with d.rec.item("metrics_summary"):
        forward = d.load("forward_validation")
        summary = metrics_summary(d.load("division_model"), forward if forward is not None and forward.height else None)
        d.csv(["reports", "metrics_summary.csv"], summary)


DIRECT_STAGES = {"star": d_star, "cutoff_features": d_cutoff_features, "division_features": d_division_features,
                 "models": d_models, "scoring": d_scoring, "whitespace": d_whitespace, "validation": d_validation,
                 "reports": d_reports}


# ---------------------------------------------------------------------------------------------------------
# subprocess entry points
# ---------------------------------------------------------------------------------------------------------
def child_generate(settings: Settings, customers: int) -> dict:
    from gosales_assets.demo_data import generate_demo_data

    manifest = generate_demo_data(settings.landing_dir, customers=customers, seed=settings.seeds.demo,
                                  settings=settings, ground_truth=False)
    return {"sales_rows": manifest.sales_rows, "customer_rows": manifest.customer_rows, "customers": customers,
            "seed": settings.seeds.demo}


def child_direct(settings: Settings, stage: str, root: Path, sampler: PeakSampler, divisions: list[str] | None) -> dict:
    d = Direct(settings, root, divisions)
    DIRECT_STAGES[stage](d)
    sampler.stop()
    d.rec.finish(sampler)
    return {"items": d.rec.items, "dagster_imported": "dagster" in sys.modules}


def _iso_cutoff(key: str) -> str:
    """A Dagster cutoff partition key `YYYY-MM` as the month-end date the direct path names its items by."""
    return month_end(dt.date.fromisoformat(f"{key}-01")).isoformat() if len(key) == 7 else key


def _step_events(instance, outcome, sampler: PeakSampler) -> tuple[dict, list[dict], dict]:
    """(run record, step records, {asset: {partition: checksum}}) from the run's event log."""
    logs = instance.all_logs(outcome.run_id)
    stamps = [e.timestamp for e in logs]
    run = {"job": outcome.job, "partition": outcome.partition, "run_id": outcome.run_id,
           "success": outcome.status in ("ok", "held"), "held": outcome.status == "held", "t0": min(stamps),
           "t1": max(stamps)}
    steps, started, checksums, stored = [], {}, {}, {}
    for e in logs:
        ev = e.dagster_event
        if ev is None:
            continue
        kind = ev.event_type_value
        if kind == "STEP_START":
            started[e.step_key] = e.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            t0, ran = started.pop(e.step_key, e.timestamp), kind != "STEP_SKIPPED"
            for name, a, b in step_parts(e.step_key, t0, e.timestamp, stored.pop(e.step_key, {})):
                steps.append({"run_id": outcome.run_id, "partition": outcome.partition, "step": name,
                              "stage": STEP_STAGE.get(name, "other"), "status": kind[5:].lower(), "t0": a,
                              "t1": b, "wall_s": round(b - a, 3), "cpu_s": sampler.cpu_s(a, b) if ran else 0.0,
                              "peak_rss_mb": sampler.peak_mb(a, b) if ran else None})
        elif kind == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            asset = mat.asset_key.to_user_string()
            stored.setdefault(e.step_key, {})[asset] = e.timestamp
            run[f"materialized_{asset}"] = run.get(f"materialized_{asset}", 0) + 1
            if "checksum" in mat.metadata and asset in ("customer_features", "whitespace"):
                checksums.setdefault(asset, {})[_iso_cutoff(mat.partition)] = mat.metadata["checksum"].value
            if "status" in mat.metadata and asset == "division_model":  # the verdict: promoted | held | skipped
                checksums.setdefault("division_model_status", {})[mat.partition] = mat.metadata["status"].value
    return run, steps, checksums


def child_dagster(settings: Settings, cfg_path: Path, dagster_home: Path, sampler: PeakSampler,
                  divisions: list[str] | None) -> dict:
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ.update({"DAGSTER_HOME": str(dagster_home), "GOSALES_CONFIG": str(cfg_path),
                       "GOSALES_HOME": str(settings.home)})
    from dagster import DagsterInstance

    from gosales_assets.definitions import build_definitions
    from gosales_assets.runner import materialize

    t0 = time.time()
    defs = build_definitions(settings, cfg_path)
    t_defs = time.time() - t0

    def log(line: str) -> None:
        print(f"  {line}", flush=True)

    with DagsterInstance.get() as instance:
        t0 = time.time()
        # What `gosales materialize` runs; a division subset only narrows the runner's plan (which division ×
        # cutoff runs are launched): the assets read the full configuration, so each run computes what it
        # computes in the whole backfill.
        outcomes = [o for o in materialize(defs, instance, settings, divisions=divisions, log=log) if o.run_id]
        t1 = time.time()
        sampler.stop()
        runs, steps, checksums = [], [], {}
        for outcome in outcomes:
            run, run_steps, sums = _step_events(instance, outcome, sampler)
            runs.append(run | {"peak_rss_mb": sampler.peak_mb(run["t0"], run["t1"]),
                               "cpu_s": sampler.cpu_s(run["t0"], run["t1"])})
            steps += run_steps
            for asset, by_partition in sums.items():
                checksums.setdefault(asset, {}).update(by_partition)
    return {"build_definitions_s": round(t_defs, 3), "t0": t0, "t1": t1, "wall_s": round(t1 - t0, 3),
            "cpu_s": sampler.cpu_s(t0, t1), "runs": runs, "steps": steps, "checksums": checksums}


def child_main(args: argparse.Namespace) -> int:
    sampler = PeakSampler().start()
    t0 = time.time()
    settings = load_settings(args.cfg, home=args.home)
    divisions = args.divisions.split(",") if args.divisions else None
    if args.child == "generate":
        out = child_generate(settings, args.customers)
    elif args.child == "dagster":
        out = child_dagster(settings, args.cfg, args.dagster_home, sampler, divisions)
    else:
        out = child_direct(settings, args.child, args.home.parent, sampler, divisions)
    t1 = time.time()
    if sampler._thread.is_alive():
        sampler.stop()
    out = {"wall_s": round(t1 - t0, 3), "cpu_s": sampler.cpu_s(t0, t1)} | out
    out |= {"peak_rss_mb": sampler.peak_mb(), "peak_exact": sampler.exact}
    args.result.write_text(json.dumps(out, default=str))
    return 0


# ---------------------------------------------------------------------------------------------------------
# the parent: config, subprocesses, summary, JSON and the doc section
# ---------------------------------------------------------------------------------------------------------
def machine() -> dict:
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "ram_gib": round(mem_kb / 2**20, 1), "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "packages": package_versions(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gosales_assets", "benchmarks/bench_suite.py"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return sha + (" (uncommitted changes in gosales_assets/ or the suite)" if dirty else "")
    except OSError:
        return "unknown"


def command_line(argv: list[str] | None) -> str:
    """How this run was started, as one would type it from the repository root."""
    exe = Path(sys.executable)
    python = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else "python"
    nice = os.nice(0)
    args = list(argv if argv is not None else sys.argv[1:])
    words = [*(["nice", "-n", str(nice)] if nice else []), python, "benchmarks/bench_suite.py", *args]
    line = " ".join(map(shlex.quote, words))
    if "--note" in args[:-1]:  # the note is printed in full under the command; keep the command readable
        line = line.replace(shlex.quote(args[args.index("--note") + 1]), '"<the note below>"')
    return line


def write_config(work: Path, profile: str, n_cutoffs: int | None) -> tuple[Path, Path]:
    """The run's config and the whole profile's (differing only in the cutoffs), from one read of the default
    YAML, so a default changed meanwhile by someone else cannot make the two disagree."""
    overrides = {"paths": {"landing": str(work / "landing")}, **PROFILES[profile]}
    doc = merge_config(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), overrides)
    full = work / "gosales_full.yaml"
    full.write_text(yaml.safe_dump(doc, sort_keys=False))
    doc["cutoffs"] = sorted(str(c) for c in doc["cutoffs"])[:n_cutoffs] if n_cutoffs else doc["cutoffs"]
    cfg = work / "gosales.yaml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cfg, full


def run_child(name: str, work: Path, cfg: Path, home: Path, **extra) -> dict:
    """Run one part in a subprocess; its own result file plus wall, CPU and the machine's load meanwhile."""
    result = work / "results" / f"{name}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--cfg", str(cfg), "--home", str(home),
            "--result", str(result)]
    for k, v in extra.items():
        if v:
            argv += [f"--{k.replace('_', '-')}", str(v)]
    print(f"[{time.strftime('%H:%M:%S')}] {name} …", flush=True)
    loads, done = [os.getloadavg()[0]], threading.Event()

    def watch() -> None:
        while not done.wait(5.0):
            loads.append(os.getloadavg()[0])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.time()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit code {proc.returncode}); see the output above")
    out = json.loads(result.read_text()) | {"process_wall_s": round(wall, 3),
                                             "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                                             "load_avg_mean": round(float(np.mean(loads)), 2)}
    result.write_text(json.dumps(out, default=str))
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {out['wall_s']:.1f} s wall, {out['cpu_s']:.1f} s CPU, peak RSS "
          f"{out['peak_rss_mb']:,.0f} MB, load average {out['load_avg_mean']}", flush=True)
    return out


def _spread(walls: list[float]) -> dict:
    return {"mean_s": round(float(np.mean(walls)), 3) if walls else None,
            "max_s": round(max(walls), 3) if walls else None}


def summarize_direct(results: dict[str, dict]) -> dict:
    stages = {}
    for stage, res in results.items():
        done = [i for i in res["items"] if i["status"] == "ok"]
        stages[stage] = {"wall_s": res["wall_s"], "cpu_s": res["cpu_s"], "peak_rss_mb": res["peak_rss_mb"],
                         "items": len(res["items"]), "items_ok": len(done), **_spread([i["wall_s"] for i in done]),
                         "process_wall_s": res["process_wall_s"], "load_avg_mean": res["load_avg_mean"]}
    total = sum(s["wall_s"] for s in stages.values())
    return {"stages": stages, "wall_s": round(total, 3), "cpu_s": round(sum(s["cpu_s"] for s in stages.values()), 3),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
            "load_avg_mean": round(sum(s["load_avg_mean"] * s["wall_s"] for s in stages.values()) / max(total, 1e-9), 2),
            "dagster_imported": any(r["dagster_imported"] for r in results.values()),
            "items": {stage: [{k: v for k, v in i.items() if k not in ("t0", "t1")} for i in res["items"]]
                      for stage, res in results.items()}}


def summarize_dagster(res: dict) -> dict:
    stages = {}
    for stage in [*STAGES, "other"]:
        ran = [s for s in res["steps"] if s["stage"] == stage and s["status"] != "skipped"]
        if ran:
            stages[stage] = {"wall_s": round(sum(s["wall_s"] for s in ran), 3),
                             "cpu_s": round(sum(s["cpu_s"] for s in ran), 3), "steps": len(ran),
                             "peak_rss_mb": max(s["peak_rss_mb"] for s in ran), **_spread([s["wall_s"] for s in ran])}
    in_steps = sum(s["wall_s"] for s in res["steps"])
    in_runs = sum(r["t1"] - r["t0"] for r in res["runs"])
    peak_step = max(res["steps"], key=lambda s: s["peak_rss_mb"] or 0)
    by_job: dict[str, dict] = {}
    for r in res["runs"]:
        job = by_job.setdefault(r["job"], {"runs": 0, "outside_steps_s": 0.0})
        job["runs"] += 1
        job["outside_steps_s"] += (r["t1"] - r["t0"]) - sum(s["wall_s"] for s in res["steps"] if s["run_id"] == r["run_id"])
    return {
        "wall_s": res["wall_s"], "cpu_s": res["cpu_s"], "build_definitions_s": res["build_definitions_s"],
        "peak_rss_mb": res["peak_rss_mb"], "process_wall_s": res["process_wall_s"],
        "load_avg_mean": res["load_avg_mean"], "stages": stages, "runs": len(res["runs"]),
        "runs_by_job": {k: v["runs"] for k, v in by_job.items()},
        "outside_steps_s_per_run_by_job": {k: round(v["outside_steps_s"] / v["runs"], 3) for k, v in by_job.items()},
        "runs_ok": sum(r["success"] for r in res["runs"]), "runs_held": sum(r["held"] for r in res["runs"]),
        "runs_failed": sum(not r["success"] and not r["held"] for r in res["runs"]),
        "steps_wall_s": round(in_steps, 3), "steps_cpu_s": round(sum(s["cpu_s"] for s in res["steps"]), 3),
        "run_overhead_outside_steps_s": round(in_runs - in_steps, 3), "between_runs_s": round(res["wall_s"] - in_runs, 3),
        "peak_step": {k: peak_step[k] for k in ("step", "partition", "peak_rss_mb")},
        "checksums": res["checksums"],
        "materialized": {k[len("materialized_"):]: sum(r.get(k, 0) for r in res["runs"])
                         for k in sorted({k for r in res["runs"] for k in r if k.startswith("materialized_")})},
        "runs_detail": [{k: v for k, v in r.items() if k not in ("t0", "t1")} | {"wall_s": round(r["t1"] - r["t0"], 3)}
                        for r in res["runs"]],
        "steps": [{k: v for k, v in s.items() if k not in ("t0", "t1")} for s in res["steps"]],
    }


def compare_outputs(direct: dict, dagster: dict) -> dict:
    """The two paths must compute the same thing: feature and whitespace checksums, models trained."""
    out = {}
    for asset, stage in (("customer_features", "cutoff_features"), ("whitespace", "whitespace")):
        mine = {i["item"]: i.get(f"checksum_{asset}") for i in direct["items"][stage] if i["status"] == "ok"}
        theirs = dagster["checksums"].get(asset, {})
        out[f"{asset}_checksums_equal"] = f"{sum(mine.get(k) == v for k, v in theirs.items())}/{len(theirs)}"
        out[f"{asset}_partitions"] = {"direct": len(mine), "dagster": len(theirs)}
    trained = [i for i in direct["items"]["models"] if i["status"] == "ok"]
    # Every division × cutoff partition of `division_model` materializes (a skipped one as its registry row): the
    # trained models are those whose verdict is not `skipped` (older results have no verdicts: all materialized).
    verdicts = dagster["checksums"].get("division_model_status")
    out["models_trained"] = {"direct": len(trained), "dagster": sum(v != "skipped" for v in verdicts.values())
                             if verdicts else dagster["materialized"].get("division_model", 0)}
    out["models_promoted"] = {"direct": sum(i.get("verdict") == "promoted" for i in trained),
                              "dagster": sum(v == "promoted" for v in verdicts.values()) if verdicts else None}
    out["models_gate_passed_direct"] = sum(bool(i.get("gate_passed")) for i in trained)
    out["dagster_runs_held"] = dagster["runs_held"]
    return out


def plan(settings: Settings, divisions: list[str] | None = None) -> dict:
    """The backfill's shape by the calendar rules: per division × cutoff, how many training cutoffs its model
    pools at most (0: no model; `models.training_positives` may stop a pool earlier, which the calendar does not
    know), and the runs `materialize_all` launches."""
    pools = {}
    for division in divisions or settings.divisions:
        w = settings.window_months(division)
        for c in settings.cutoffs:
            closed = [c2 for c2 in settings.cutoffs if c2 < c and window_end(c2, w) <= c]
            pools[(division, c.isoformat())] = min(len(closed), settings.models.training_cutoffs)
    n_div, n_cut = len(divisions or settings.divisions), len(settings.cutoffs)
    return {"pools": pools, "models": sum(v > 0 for v in pools.values()), "pool_units": sum(pools.values()),
            "cutoffs_with_models": len({c for (_, c), v in pools.items() if v}),
            "runs": {"gosales_star": 1, "gosales_cutoff": n_cut, "gosales_division_cutoff": n_div * n_cut,
                     "gosales_whitespace": n_cut, "gosales_reports": 1}}


def _units(res: dict, path: str) -> list[dict]:
    """Measured units of work (direct items / Dagster steps) with stage, cutoff, division, wall and CPU."""
    if path == "direct":
        return [{"stage": stage, **i} for stage, items in res["items"].items() for i in items]
    out = []
    for step in res["steps"]:
        cutoff, _, division = (step["partition"] or "").partition("|")
        out.append({"stage": step["stage"], "cutoff": _iso_cutoff(cutoff) or None, "division": division or None,
                    "wall_s": step["wall_s"], "cpu_s": step["cpu_s"]})
    return out


def _by(units: list[dict], *keys: str) -> dict[tuple, dict[str, float]]:
    out: dict[tuple, dict[str, float]] = {}
    for u in units:
        acc = out.setdefault(tuple(u.get(k) for k in keys), {"wall_s": 0.0, "cpu_s": 0.0})
        acc["wall_s"] += u["wall_s"]
        acc["cpu_s"] += u.get("cpu_s") or 0.0
    return out


def _linear(points: list[tuple[float, float]]):
    """Least-squares line through (x, y) points (a constant for a single point)."""
    xs, ys = np.array([x for x, _ in points]), np.array([y for _, y in points])
    if len(set(xs.tolist())) < 2:
        return lambda x: float(ys.mean())
    b, a = np.polyfit(xs, ys, 1)
    return lambda x: float(a + b * x)


def extrapolate(res: dict, measured: dict, full: dict, settings: Settings, full_cutoffs: list[dt.date]) -> dict:
    """Scale a run of part of the profile (fewer cutoffs and/or divisions) to all of it, stage by stage:
    - star schema and metrics summary: as measured (they do not depend on the partitions run);
    - features per cutoff: a line through the measured per-cutoff costs against the days of history before the
      cutoff, evaluated at the cutoffs not run;
    - labels + division features: mean per partition × all partitions;
    - models: cost per pooled training cutoff (Σ cost of the partitions with a model / Σ their pool sizes) ×
      the profile's pool units; scoring and validation: mean per modelled partition × all modelled partitions;
    - whitespace: mean per ranked cutoff × (all divisions / divisions run) × cutoffs with a model;
    - Dagster outside steps: measured mean per run of each job × the runs of the full plan.
    A stage's work outside its items (the direct path loading its tables) is added as measured."""
    start = settings.data.start_date
    k_div = len(res["config"]["divisions_run"])
    n_div = len(res["config"]["divisions"])
    out: dict = {"full_plan": {k: v for k, v in full.items() if k != "pools"},
                 "measured_plan": {k: v for k, v in measured.items() if k != "pools"}}
    for path in ("direct", "dagster"):
        sec = res.get(path)
        if not sec:
            continue
        units = _units(sec, path)
        stages: dict[str, dict] = {}
        for stage in STAGES:
            mine = [u for u in units if u["stage"] == stage]
            if not mine:
                continue
            est = {}
            for m in ("wall_s", "cpu_s"):
                if stage == "cutoff_features":
                    per = {c: v[m] for (c,), v in _by(mine, "cutoff").items()}
                    line = _linear([((dt.date.fromisoformat(c) - start).days, v) for c, v in per.items()])
                    est[m] = sum(per.get(c.isoformat(), line((c - start).days)) for c in full_cutoffs)
                elif stage in ("division_features", "models", "scoring", "validation"):
                    per = _by(mine, "division", "cutoff")
                    if stage == "division_features":
                        est[m] = sum(v[m] for v in per.values()) / len(per) * n_div * len(full_cutoffs)
                    else:
                        modelled = {key: v for key, v in per.items() if measured["pools"].get(key, 0) > 0}
                        if stage == "models":
                            units_run = sum(measured["pools"][key] for key in modelled)
                            est[m] = sum(v[m] for v in modelled.values()) / max(units_run, 1) * full["pool_units"]
                        else:
                            est[m] = sum(v[m] for v in modelled.values()) / max(len(modelled), 1) * full["models"]
                elif stage == "whitespace":
                    per = {c: v for (c,), v in _by(mine, "cutoff").items()
                           if any(measured["pools"].get((d, c), 0) for d in res["config"]["divisions_run"])}
                    est[m] = (sum(v[m] for v in per.values()) / max(len(per), 1) * n_div / k_div
                              * full["cutoffs_with_models"])
                else:
                    est[m] = sum(u[m] or 0.0 for u in mine)
                if path == "direct":  # the stage's own setup (loading tables), outside its items
                    est[m] += sec["stages"][stage][m] - sum(u[m] or 0.0 for u in mine)
            stages[stage] = {m: round(v, 1) for m, v in est.items()}
        if path == "dagster":
            per_run = sec["outside_steps_s_per_run_by_job"]
            outside = sum(per_run.get(job, 0.0) * n for job, n in full["runs"].items())
            outside += sec["between_runs_s"] / sec["runs"] * sum(full["runs"].values())
            cpu_outside = (sec["cpu_s"] - sec["steps_cpu_s"]) / sec["runs"] * sum(full["runs"].values())
            stages["outside_steps"] = {"wall_s": round(outside, 1), "cpu_s": round(cpu_outside, 1)}
        out[path] = {"stages": stages, "wall_s": round(sum(v["wall_s"] for v in stages.values()), 1),
                     "cpu_s": round(sum(v["cpu_s"] for v in stages.values()), 1)}
    if "direct" in out and "dagster" in out:
        out["overhead_ratio"] = round(out["dagster"]["wall_s"] / out["direct"]["wall_s"] - 1, 4)
        out["overhead_ratio_cpu"] = round(out["dagster"]["cpu_s"] / out["direct"]["cpu_s"] - 1, 4)
    return out


def verdicts(res: dict) -> list[dict]:
    rows = []
    full = res.get("extrapolated") or {}
    dag, direct = res.get("dagster"), res.get("direct")
    if dag:
        wall = full.get("dagster", {}).get("wall_s", dag["wall_s"])
        how = " (extrapolated)" if full.get("dagster") else ""
        rows.append({"target": "whole backfill through Dagster < 30 min", "value": f"{wall / 60:.1f} min{how}",
                     "met": wall < TARGET_WALL_S})
        rows.append({"target": "peak RSS < 12 GiB", "value": f"{dag['peak_rss_mb'] / 1024:.2f} GiB (Dagster process)",
                     "met": dag["peak_rss_mb"] / 1024 < TARGET_RSS_GIB})
    if dag and direct:
        ratio = full.get("overhead_ratio", res["overhead_ratio"])
        cpu = full.get("overhead_ratio_cpu", res["overhead_ratio_cpu"])
        rows.append({"target": "orchestration overhead < 15 %",
                     "value": f"{ratio:+.1%} wall, {cpu:+.1%} CPU" + (" (extrapolated)" if full else ""),
                     "met": ratio < TARGET_OVERHEAD})
    return rows


# ---- the doc section --------------------------------------------------------------------------------------
def _s(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x / 60:.1f} min" if x >= 600 else f"{x:.0f} s" if x >= 10 else f"{x:.1f} s"


def _mb(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x / 1024:.2f} GiB" if x >= 1024 else f"{x:.0f} MB"


def _wc(sec: dict | None) -> str:
    return f"{_s(sec['wall_s'])} / {_s(sec.get('cpu_s'))}" if sec else "–"


def _ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or not a["wall_s"]:
        return "–"
    cpu = f" / {b['cpu_s'] / a['cpu_s']:.1f}×" if a.get("cpu_s") and b.get("cpu_s") is not None else ""
    return f"{b['wall_s'] / a['wall_s']:.1f}×{cpu}"


def full_plan_cutoffs(res: dict) -> list[str]:
    return res.get("full_cutoffs") or res["config"]["cutoffs"]


def render_section(res: dict) -> str:
    p, m, cfg = res["profile"], res["machine"], res["config"]
    direct, dag = res.get("direct"), res.get("dagster")
    pk = m["packages"]
    subset = cfg["divisions_run"] != cfg["divisions"]
    lines = [
        f"### Profile `{p}` — measured {res['finished_at'][:10]}",
        "",
        f"`{res['command']}` ({res['wall_total_s'] / 60:.0f} min in all) at commit `{res['git_commit'][:12]}`. "
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}, dagster "
        f"{pk['dagster']}, polars {pk['polars']}, DuckDB {pk['duckdb']}, LightGBM {pk['lightgbm']}, scikit-learn "
        f"{pk['scikit-learn']}. Raw numbers: `benchmarks/results/{res['out_name']}`.",
        "",
        f"Data: {cfg['customers']:,} customers, {res['generation']['sales_rows']:,} sales lines, "
        f"{len(cfg['divisions'])} divisions, {len(cfg['cutoffs'])} cutoffs ({cfg['cutoffs'][0]} … {cfg['cutoffs'][-1]}), "
        f"`models.num_threads` {cfg['num_threads']}."
        + (f" **Division × cutoff partitions run for {len(cfg['divisions_run'])} of the {len(cfg['divisions'])} "
           f"divisions only** ({', '.join(cfg['divisions_run'])}); see the extrapolation below." if subset else ""),
    ]
    if res.get("note"):
        lines += ["", res["note"]]
    if direct or dag:
        loads = [f"{name} {sec['load_avg_mean']}" for name, sec in (("direct", direct), ("Dagster", dag)) if sec]
        lines += ["", f"Mean 1-minute load average while each path ran (2 cores; other work shares the machine, and "
                      f"the suite runs under `nice`): {', '.join(loads)}. Wall times stretch with that load; CPU "
                      f"seconds much less, so both are shown (wall / CPU)."]
    lines += ["", "| stage | direct wall / CPU | direct peak RSS | Dagster steps wall / CPU | Dagster RSS during stage "
                  "| Dagster / direct (wall / CPU) |", "|---|---|---|---|---|---|"]
    gen = res["generation"]
    lines.append(f"| data generation ({gen['customers']:,} customers, no ground-truth file) | {_wc(gen)} | "
                 f"{_mb(gen['peak_rss_mb'])} | – | – | – |")
    for stage, label in STAGES.items():
        a = direct["stages"].get(stage) if direct else None
        b = dag["stages"].get(stage) if dag else None
        count = f" — {a['items_ok']} done" if a else f" — {b['steps']} steps" if b else ""
        per = f", ≤ {_s(a['max_s'])} each" if a and a["items_ok"] > 1 else ""
        lines.append(f"| {label}{count}{per} | {_wc(a)} | {_mb(a['peak_rss_mb']) if a else '–'} | {_wc(b)} "
                     f"| {_mb(b['peak_rss_mb']) if b else '–'} | {_ratio(a, b)} |")
    if dag:
        per_run = ", ".join(f"{j.removeprefix('gosales_')} {v:.1f} s" for j, v in dag["outside_steps_s_per_run_by_job"].items())
        lines.append(f"| Dagster outside steps ({dag['runs']} runs; per run: {per_run}) + between runs | – | – | "
                     f"{_s(dag['run_overhead_outside_steps_s'])} + {_s(dag['between_runs_s'])} / "
                     f"{_s(dag['cpu_s'] - dag['steps_cpu_s'])} | – | – |")
    whole_b = {"wall_s": dag["wall_s"], "cpu_s": dag["cpu_s"]} if dag else None
    lines.append(f"| **whole backfill** | **{_wc(direct)}** | {_mb(direct['peak_rss_mb']) if direct else '–'} (largest "
                 f"stage) | **{_wc(whole_b)}** | **{_mb(dag['peak_rss_mb']) if dag else '–'}** (process) "
                 f"| **{_ratio(direct, whole_b)}** |")
    lines.append("")
    if direct and dag:
        c = res["outputs"]
        lines.append(
            f"Orchestration overhead (Dagster whole backfill / direct − 1): **{res['overhead_ratio']:+.0%}** wall, "
            f"**{res['overhead_ratio_cpu']:+.0%}** CPU. Dagster runs: {dag['runs']} "
            f"({', '.join(f'{k} {v}' for k, v in dag['runs_by_job'].items())}): {dag['runs_ok']} succeeded, "
            f"{dag['runs_held']} of them with a held or skipped model, {dag['runs_failed']} failed. The Dagster "
            f"process peaked in step `{dag['peak_step']['step']}` ({dag['peak_step']['partition']}). Same results on "
            f"both paths: "
            f"customer_features checksums equal on {c['customer_features_checksums_equal']} cutoffs, whitespace "
            f"checksums on {c['whitespace_checksums_equal']}, models trained {c['models_trained']['direct']} (direct) "
            f"vs {c['models_trained']['dagster']} (Dagster).")
        lines.append("")
    full = res.get("extrapolated")
    if full:
        fp, mp = full["full_plan"], full["measured_plan"]
        basis = {
            "star": "as measured", "reports": "as measured",
            "cutoff_features": "measured cutoffs + a line through their cost vs days of history for the others",
            "division_features": f"mean per partition × {len(cfg['divisions']) * len(full_plan_cutoffs(res))}",
            "models": f"cost per pooled training cutoff × {fp['pool_units']} (measured {mp['pool_units']})",
            "scoring": f"mean per modelled partition × {fp['models']}",
            "validation": f"mean per modelled partition × {fp['models']}",
            "whitespace": f"mean per ranked cutoff × {len(cfg['divisions'])}/{len(cfg['divisions_run'])} divisions × "
                          f"{fp['cutoffs_with_models']} cutoffs (an upper bound: part of it does not grow with divisions)",
            "outside_steps": f"mean per run of each job × {sum(fp['runs'].values())} runs",
        }
        lines += [f"**Extrapolated to the whole profile** ({len(cfg['divisions'])} divisions, "
                  f"{len(full_plan_cutoffs(res))} cutoffs: {sum(fp['runs'].values())} Dagster runs, {fp['models']} "
                  f"division × cutoff partitions with a model pooling {fp['pool_units']} training cutoffs in all; the "
                  f"run above had {mp['models']} such partitions pooling {mp['pool_units']}):", "",
                  "| stage | how | direct wall / CPU | Dagster wall / CPU |", "|---|---|---|---|"]
        for stage in [*STAGES, "outside_steps"]:
            a, b = full.get("direct", {}).get("stages", {}).get(stage), full.get("dagster", {}).get("stages", {}).get(stage)
            if a or b:
                lines.append(f"| {STAGES.get(stage, 'Dagster outside steps').split(':')[0]} | {basis[stage]} | {_wc(a)} | {_wc(b)} |")
        lines.append(f"| **whole backfill** | | **{_wc(full.get('direct'))}** | **{_wc(full.get('dagster'))}** |")
        if "overhead_ratio" in full:
            lines += ["", f"Extrapolated orchestration overhead: {full['overhead_ratio']:+.0%} wall, "
                          f"{full['overhead_ratio_cpu']:+.0%} CPU."]
        lines.append("")
    rows = verdicts(res)
    if rows:
        scope = "target (set for `large`)" if p == "large" else "`large` target, for reference"
        lines += [f"| {scope} | measured | verdict |", "|---|---|---|"]
        lines += [f"| {r['target']} | {r['value']} | {'met' if r['met'] else '**missed**'} |" for r in rows]
    return "\n".join(lines)


def update_doc(doc: Path, profile: str, section: str) -> None:
    start, end = f"<!-- bench:{profile}:start -->", f"<!-- bench:{profile}:end -->"
    text = doc.read_text()
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    ap.add_argument("--out", type=Path, default=None, help="JSON result (default benchmarks/results/<profile>.json)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temp folder, removed after)")
    ap.add_argument("--paths", default="direct,dagster", help="which paths to run: direct, dagster or both")
    ap.add_argument("--cutoffs", type=int, default=None, help="only the first N cutoffs of the profile")
    ap.add_argument("--divisions", default=None, help="comma-separated divisions whose division × cutoff partitions "
                    "run (default: all); the config, features and the star stay complete; totals are extrapolated")
    ap.add_argument("--reuse-data", action="store_true", help="keep the landing folder of an earlier run in --work")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite the section of docs/PERFORMANCE.md")
    ap.add_argument("--collect", action="store_true", help="assemble the results of an earlier run in --work from its "
                    "subprocesses' result files instead of running anything (same other options as that run)")
    ap.add_argument("--note", default="", help="a sentence printed above the table (what was measured and how)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    for hidden in ("--cfg", "--home", "--result", "--dagster-home"):
        ap.add_argument(hidden, type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)

    started = time.time()
    paths = {p.strip() for p in args.paths.split(",") if p.strip()}
    if args.collect and args.work is None:
        raise SystemExit("--collect needs the --work folder of the run")
    temp = args.work is None
    work = Path(tempfile.mkdtemp(prefix=f"gosales-bench-{args.profile}-")) if temp else args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or ROOT / "benchmarks" / "results" / f"{args.profile}.json"
    if args.collect:
        cfg, full_cfg = work / "gosales.yaml", work / "gosales_full.yaml"
    else:
        cfg, full_cfg = write_config(work, args.profile, args.cutoffs)
    settings = load_settings(cfg, home=work / "direct" / "home")
    divisions = [d.strip() for d in args.divisions.split(",")] if args.divisions else None
    unknown = set(divisions or []) - set(settings.divisions)
    if unknown:
        raise SystemExit(f"unknown division(s) {sorted(unknown)}; configured: {settings.divisions}")
    header = work / "run.json"
    if args.collect:
        res: dict = json.loads(header.read_text())
        res["collected"] = f"assembled by --collect at {dt.datetime.now().isoformat(timespec='seconds')} from the " \
                           f"result files of the run's subprocesses"
    else:
        res = {
            "profile": args.profile, "out_name": out.name, "command": command_line(argv),
            "git_commit": git_commit(), "started_at": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine(), "work": str(work), "note": args.note,
            "config": {"customers": settings.demo.customers, "divisions": settings.divisions,
                       "divisions_run": divisions or settings.divisions,
                       "cutoffs": [str(c) for c in settings.cutoffs], "num_threads": settings.models.num_threads,
                       "config_checksum": settings.checksum},
            "method": {"peak_rss": f"VmHWM read and reset every {SAMPLE_INTERVAL_S} s per process",
                       "direct": "one subprocess per stage; tables as Parquet between stages; no Dagster import",
                       "dagster": "gosales_assets.runner.materialize_all (runner.backfill with a division subset) in "
                                  "one process, fresh DAGSTER_HOME (repository dagster.yaml); step walls from the "
                                  "event log"},
        }
        header.write_text(json.dumps(res, indent=1, default=str))
    print(f"work folder {work}; config {cfg}", flush=True)

    def part(name: str, home: Path, **extra) -> dict:
        if args.collect:
            return json.loads((work / "results" / f"{name}.json").read_text())
        return run_child(name, work, cfg, home, **extra)

    manifest = settings.landing_dir / "demo_manifest.json"
    if args.reuse_data and manifest.is_file() and not args.collect:
        prev = json.loads(out.read_text()).get("generation") if out.is_file() else None
        res["generation"] = prev or {"customers": settings.demo.customers, "wall_s": None, "peak_rss_mb": None,
                                     "sales_rows": json.loads(manifest.read_text())["sales_rows"]}
    else:
        res["generation"] = part("generate", work / "direct" / "home", customers=settings.demo.customers)

    if "direct" in paths:
        if not args.collect:
            shutil.rmtree(work / "direct", ignore_errors=True)
        results = {stage: part(stage, work / "direct" / "home", divisions=args.divisions) for stage in STAGES}
        res["direct"] = summarize_direct(results)
        if res["direct"]["dagster_imported"]:
            raise SystemExit("the direct path imported dagster")
    if "dagster" in paths:
        if not args.collect:
            shutil.rmtree(work / "dagster", ignore_errors=True)
        res["dagster"] = summarize_dagster(part("dagster", work / "dagster" / "home",
                                                dagster_home=work / "dagster" / "dagster_home",
                                                divisions=args.divisions))
    if paths != {"direct", "dagster"} and out.is_file():
        earlier = json.loads(out.read_text())
        for path in {"direct", "dagster"} - paths:
            if earlier.get(path) and earlier.get("config") == res["config"]:
                res[path] = earlier[path]
                res.setdefault("merged_from_earlier_run", {})[path] = earlier.get("finished_at")
    if res.get("direct") and res.get("dagster"):
        res["overhead_ratio"] = round(res["dagster"]["wall_s"] / res["direct"]["wall_s"] - 1, 4)
        res["overhead_ratio_cpu"] = round(res["dagster"]["cpu_s"] / res["direct"]["cpu_s"] - 1, 4)
        res["outputs"] = compare_outputs(res["direct"], res["dagster"])
    full = load_settings(full_cfg, home=work / "direct" / "home")
    if (divisions and set(divisions) != set(settings.divisions)) or len(settings.cutoffs) < len(full.cutoffs):
        res["extrapolated"] = extrapolate(res, plan(settings, divisions), plan(full), settings, full.cutoffs)
        res["full_cutoffs"] = [str(c) for c in full.cutoffs]
    res["targets"] = verdicts(res)
    finished = (max(f.stat().st_mtime for f in (work / "results").glob("*.json")) if args.collect
                else time.time())
    res["finished_at"] = dt.datetime.fromtimestamp(finished).isoformat(timespec="seconds")
    res["wall_total_s"] = round(finished - (dt.datetime.fromisoformat(res["started_at"]).timestamp()
                                           if args.collect else started), 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    section = render_section(res)
    print(section)
    if not args.no_doc:
        update_doc(DOC, args.profile, section)
    if temp:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
