"""Model settings against variants at production scale (issue 15): per division, the model the `division_model`
asset would train at the division's latest forward cutoff, fitted with the configuration and with each variant's
`models` overrides, scored forward on the same rows.

    nice -n 10 .venv/bin/python benchmarks/training_variants.py --warehouse W --config C \
        --variant NAME=YAML [--variant ...] [--divisions D1,D2] [--thin-positives F] [--out F]

Reads a materialized warehouse read-only (a kept `make bench-large` home, `bench_scale.py --keep`). Per division:
the forward cutoff E is the latest cutoff whose uncensored model frame's window closed by the data end; the
training cutoffs are those the asset pools at E (`partitions.training_pool` over the uncensored frames with
C' + W' <= E, `models.training_cutoffs` and `models.training_positives`). `--thin-positives F` keeps a seeded
fraction F of the training frame's positive rows (the others dropped; the forward rows untouched): a frame near a
threshold of positives from the same customers and features. Each model: `train_division_model` (the asset's fit),
its fit CPU (user + system of this process, one thread), its LightGBM best iterations; forward AUC, lift@10 %,
calibration MAE (10 bins) on E's labelled rows, and the paired bootstrap interval (stratified, 300 draws, seed 0)
of each variant's AUC minus the configuration's. Writes `--out` (JSON) and prints a markdown table.

`NAME=YAML`: a YAML mapping merged over the configuration's `models` section, e.g.
`off='{large_frames: {min_positives: null}}'`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pooling_quality import _cpu, _frames, auc_differences  # noqa: E402

from gosales_assets.core.calendar import window_end  # noqa: E402
from gosales_assets.core.metrics import calibration_mae, lift_at_k, roc_auc  # noqa: E402
from gosales_assets.core.modeling import train_division_model  # noqa: E402
from gosales_assets.partitions import training_pool  # noqa: E402
from gosales_assets.settings import ModelSettings, load_settings  # noqa: E402

CONFIGURED = "configured"


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_variant(spec: str, models: ModelSettings) -> tuple[str, ModelSettings]:
    """`NAME=YAML` → (NAME, the configuration's `models` with YAML merged over it, validated)."""
    name, sep, text = spec.partition("=")
    over = yaml.safe_load(text) if sep else None
    if not name or not isinstance(over, dict):
        raise SystemExit(f"--variant {spec!r}: expected NAME=YAML with a mapping of models settings")
    if name == CONFIGURED:
        raise SystemExit(f"--variant {spec!r}: {CONFIGURED!r} is the configuration itself")
    return name, ModelSettings.model_validate(_merged(models.model_dump(), over))


def thinned(frame: pl.DataFrame, keep: float, seed: int = 0) -> pl.DataFrame:
    """`frame` with a seeded fraction `keep` of its positive rows (by customer and cutoff order), the rest dropped."""
    if keep >= 1.0:
        return frame
    rng = np.random.default_rng(seed)
    positive = (frame.get_column("label") == 1).fill_null(False).to_numpy()
    drop = positive & (rng.random(frame.height) >= keep)
    return frame.filter(pl.Series(~drop))


def division_rows(con: duckdb.DuckDBPyConnection, cfg, models: dict[str, ModelSettings], division: str,
                  keep_positives: float = 1.0) -> list[dict]:
    per = con.execute("select cutoff_date, max(window_months), coalesce(sum(label), 0) from division_features "
                      "where division = ? and not censored group by 1 order by 1", [division]).fetchall()
    forward = [c for c, w, _ in per if window_end(c, int(w)) <= cfg.data.end_date]
    if not forward:
        return []
    at = max(forward)
    usable = [(c, int(w), int(p)) for c, w, p in per if window_end(c, int(w)) <= at]
    pool = training_pool(usable, cfg.models.training_cutoffs, cfg.models.training_positives)
    if not pool.cutoffs:
        return []
    frame = thinned(_frames(con, division, [c for c, _ in pool.cutoffs]), keep_positives)
    test = _frames(con, division, [at]).filter(pl.col("label").is_not_null())
    y = test.get_column("label").cast(pl.Int64).to_numpy()
    rows, scores = [], {}
    for name, params in models.items():
        start = _cpu()
        model = train_division_model(frame, params, cfg.seeds.modeling)
        fit_cpu = _cpu() - start
        p = model.predict_proba(test)
        scores[name] = p
        its = model.cv_results.filter(pl.col("model_type") == "lightgbm").get_column("best_iteration").to_list()
        rows.append({"division": division, "forward_cutoff": str(at), "variant": name,
                     "training_cutoffs": [str(c) for c, _ in pool.cutoffs],
                     "training_positives": int(model.class_balance["positives"]), "training_rows": frame.height,
                     "rows_fitted": int(model.class_balance["rows_fitted"]),
                     "folds": int(model.cv_results.get_column("fold").n_unique()), "best_iterations": its,
                     "large_frame": bool((model.schedule or {}).get("large_frame", False)),
                     "fit_cpu_s": round(fit_cpu, 2), "forward_rows": int(y.size), "forward_positives": int(y.sum()),
                     "forward_auc": roc_auc(y, p), "forward_lift_at_10": lift_at_k(y, p, 10),
                     "forward_cal_mae": calibration_mae(y, p, cfg.models.calibration_bins)})
    intervals = auc_differences(y, scores, CONFIGURED) if y.sum() and 0 < y.sum() < y.size else {}
    ref = next(r for r in rows if r["variant"] == CONFIGURED)
    for r in rows:
        r["auc_minus_configured"] = r["forward_auc"] - ref["forward_auc"]
        r["auc_minus_configured_ci95"] = list(intervals[r["variant"]]) if r["variant"] in intervals else None
        r["fit_cpu_vs_configured"] = round(r["fit_cpu_s"] / ref["fit_cpu_s"], 3) if ref["fit_cpu_s"] else None
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| division (forward cutoff, positives) | variant | training positives | folds | fit CPU s | forward AUC | "
           "− configured [95 %] | lift@10 % | cal MAE |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["auc_minus_configured_ci95"]
        diff = "–" if r["variant"] == CONFIGURED else (
            f"{r['auc_minus_configured']:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else ""))
        out.append(f"| {r['division']} ({r['forward_cutoff']}, {r['forward_positives']:,}) | {r['variant']} | "
                   f"{r['training_positives']:,} | {r['folds']} | {r['fit_cpu_s']:.1f} | {r['forward_auc']:.4f} | "
                   f"{diff} | {r['forward_lift_at_10']:.2f} | {r['forward_cal_mae']:.4f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=YAML", required=True)
    ap.add_argument("--divisions", help="comma-separated (default: every configured division)")
    ap.add_argument("--thin-positives", type=float, default=1.0, metavar="F",
                    help="keep this seeded fraction of the training frame's positive rows (default 1: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training_variants.json")
    args = ap.parse_args(argv)
    if not 0.0 < args.thin_positives <= 1.0:
        raise SystemExit(f"--thin-positives {args.thin_positives}: expected a fraction in (0, 1]")
    cfg = load_settings(args.config)
    models = {CONFIGURED: cfg.models} | dict(parse_variant(v, cfg.models) for v in args.variant)
    con = duckdb.connect(str(args.warehouse), read_only=True)
    con.execute("set threads = 1")
    rows = []
    for division in (args.divisions.split(",") if args.divisions else cfg.divisions):
        got = division_rows(con, cfg, models, division, args.thin_positives)
        rows += got
        for r in got:
            print(json.dumps({k: r[k] for k in ("division", "variant", "training_positives", "folds", "fit_cpu_s",
                                                "forward_auc", "auc_minus_configured")}), flush=True)
    args.out.write_text(json.dumps({"warehouse": str(args.warehouse), "config": str(args.config),
                                    "variants": args.variant, "thin_positives": args.thin_positives, "rows": rows},
                                   indent=1, default=str))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
