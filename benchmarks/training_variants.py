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

from pooling_quality import (  # noqa: E402
    _cpu,
    _frames,
    closed_frames,
    compare,
    difference,
    each_division,
    forward_cells,
    forward_metrics,
    forward_rows,
)

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
    at, closed = closed_frames(con, cfg, division)
    pool = training_pool(closed, cfg.models.training_cutoffs, cfg.models.training_positives)
    if at is None or not pool.cutoffs:
        return []
    frame = thinned(_frames(con, division, [c for c, _ in pool.cutoffs]), keep_positives)
    test, y = forward_rows(con, division, at)
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
                     "fit_cpu_s": round(fit_cpu, 2), **forward_metrics(y, p, cfg)})
    compare(rows, scores, y, "variant", CONFIGURED, "configured")
    ref = rows[0]["fit_cpu_s"]
    for r in rows:
        r["fit_cpu_vs_configured"] = round(r["fit_cpu_s"] / ref, 3) if ref else None
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| division (forward cutoff, positives) | variant | training positives | folds | fit CPU s | forward AUC | "
           "− configured [95 %] | lift@10 % | cal MAE |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = "–" if r["variant"] == CONFIGURED else difference(r, "configured")
        out.append(f"| {r['division']} ({r['forward_cutoff']}, {r['forward_positives']:,}) | {r['variant']} | "
                   f"{r['training_positives']:,} | {r['folds']} | {r['fit_cpu_s']:.1f} | " + forward_cells(r, diff))
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
    rows = each_division(args.warehouse, args.divisions, cfg,
                         lambda con, d: division_rows(con, cfg, models, d, args.thin_positives),
                         ("division", "variant", "training_positives", "folds", "fit_cpu_s", "forward_auc",
                          "auc_minus_configured"))
    args.out.write_text(json.dumps({"warehouse": str(args.warehouse), "config": str(args.config),
                                    "variants": args.variant, "thin_positives": args.thin_positives, "rows": rows},
                                   indent=1, default=str))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
