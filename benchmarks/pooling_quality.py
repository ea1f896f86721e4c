"""Pooling training cutoffs by positives (`models.training_positives`, issue 15): per division, the engine's model
trained on its newest 1, 2 or 3 usable cutoffs, scored forward on a later cutoff whose window has closed.

    nice -n 10 .venv/bin/python benchmarks/pooling_quality.py --warehouse W --config C [--divisions D1,D2] [--out F]

Reads a materialized warehouse (read-only: a finished `make bench-large` home kept with `bench_scale.py --keep`, or
any deployment's published snapshot). Per division: the forward cutoff E is the latest cutoff whose uncensored model
frame's window closed by the data end; the usable training cutoffs are the division's uncensored frames with
C' + W' <= E, the newest three; the model is `train_division_model` with the config's `models` settings (the fit
the `division_model` asset runs), on the newest 1, 2 and 3 of them. Forward: AUC, lift@10 %, calibration MAE (10
bins) on E's labelled rows; the paired bootstrap (stratified, 300 draws, seed 0) interval of each pool's AUC minus
the 3-cutoff pool's, on the same rows. Fit CPU is user + system of this process over the fit (one thread).
Writes `--out` (JSON) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gosales_assets.core.calendar import window_end  # noqa: E402
from gosales_assets.core.metrics import calibration_mae, lift_at_k, roc_auc  # noqa: E402
from gosales_assets.core.modeling import train_division_model  # noqa: E402
from gosales_assets.settings import load_settings  # noqa: E402

POOLS = (1, 2, 3)
DRAWS = 300


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _frames(con: duckdb.DuckDBPyConnection, division: str, cutoffs: list) -> pl.DataFrame:
    marks = ", ".join("?" for _ in cutoffs)
    return con.execute(f"select * from division_features where division = ? and cutoff_date in ({marks})",
                       [division, *cutoffs]).pl().sort("cutoff_date", "customer_id")


def auc_differences(y: np.ndarray, scores: dict[int, np.ndarray], base: int, draws: int = DRAWS, seed: int = 0
                    ) -> dict[int, tuple[float, float]]:
    """95 % percentile interval of AUC(pool) − AUC(base) over stratified bootstrap draws of the same rows."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rng = np.random.default_rng(seed)
    diffs: dict[int, list[float]] = {k: [] for k in scores if k != base}
    for _ in range(draws):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        ref = roc_auc(y[idx], scores[base][idx])
        for k in diffs:
            diffs[k].append(roc_auc(y[idx], scores[k][idx]) - ref)
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in diffs.items()}


def division_rows(con: duckdb.DuckDBPyConnection, cfg, division: str) -> list[dict]:
    per = con.execute("select cutoff_date, max(window_months), coalesce(sum(label), 0) from division_features "
                      "where division = ? and not censored group by 1 order by 1", [division]).fetchall()
    forward = [c for c, w, _ in per if window_end(c, int(w)) <= cfg.data.end_date]
    if not forward:
        return []
    at = max(forward)
    usable = [(c, int(p)) for c, w, p in per if window_end(c, int(w)) <= at][-max(POOLS):]
    test = _frames(con, division, [at]).filter(pl.col("label").is_not_null())
    y = test.get_column("label").cast(pl.Int64).to_numpy()
    rows, scores = [], {}
    for k in POOLS:
        if k > len(usable):
            continue
        cutoffs = [c for c, _ in usable[-k:]]
        frame = _frames(con, division, cutoffs)
        start = _cpu()
        model = train_division_model(frame, cfg.models, cfg.seeds.modeling)
        fit_cpu = _cpu() - start
        p = model.predict_proba(test)
        scores[k] = p
        rows.append({"division": division, "forward_cutoff": str(at), "pool": k,
                     "training_cutoffs": [str(c) for c in cutoffs],
                     "training_positives": sum(n for _, n in usable[-k:]), "training_rows": frame.height,
                     "fit_cpu_s": round(fit_cpu, 2), "forward_rows": int(y.size), "forward_positives": int(y.sum()),
                     "forward_auc": roc_auc(y, p), "forward_lift_at_10": lift_at_k(y, p, 10),
                     "forward_cal_mae": calibration_mae(y, p, cfg.models.calibration_bins)})
    base = max(scores)
    intervals = auc_differences(y, scores, base) if y.sum() and len(scores) > 1 else {}
    for r in rows:
        r["auc_minus_full_pool"] = r["forward_auc"] - next(x["forward_auc"] for x in rows if x["pool"] == base)
        r["auc_minus_full_pool_ci95"] = list(intervals[r["pool"]]) if r["pool"] in intervals else None
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| division (forward cutoff, positives) | pool | training positives | rows | fit CPU s | forward AUC | "
           "− 3-cutoff pool [95 %] | lift@10 % | cal MAE |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["auc_minus_full_pool_ci95"]
        diff = f"{r['auc_minus_full_pool']:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "")
        out.append(f"| {r['division']} ({r['forward_cutoff']}, {r['forward_positives']:,}) | {r['pool']} | "
                   f"{r['training_positives']:,} | {r['training_rows']:,} | {r['fit_cpu_s']:.1f} | "
                   f"{r['forward_auc']:.4f} | {diff} | {r['forward_lift_at_10']:.2f} | {r['forward_cal_mae']:.4f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--divisions", help="comma-separated (default: every configured division)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pooling_quality.json")
    args = ap.parse_args(argv)
    cfg = load_settings(args.config)
    con = duckdb.connect(str(args.warehouse), read_only=True)
    con.execute("set threads = 1")
    rows = []
    for division in (args.divisions.split(",") if args.divisions else cfg.divisions):
        got = division_rows(con, cfg, division)
        rows += got
        for r in got:
            print(json.dumps({k: r[k] for k in ("division", "pool", "training_positives", "fit_cpu_s",
                                                "forward_auc", "auc_minus_full_pool")}), flush=True)
    args.out.write_text(json.dumps({"warehouse": str(args.warehouse), "config": str(args.config), "rows": rows},
                                   indent=1, default=str))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
