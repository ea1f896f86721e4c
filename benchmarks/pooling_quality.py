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


def closed_frames(con: duckdb.DuckDBPyConnection, cfg, division: str) -> tuple[object, list[tuple]]:
    """(E, every uncensored frame's (C', W', positives) whose window closed by E): E the latest cutoff whose uncensored
    model frame's window closed by the data end (None, and no frames, when none did)."""
    per = con.execute("select cutoff_date, max(window_months), coalesce(sum(label), 0) from division_features "
                      "where division = ? and not censored group by 1 order by 1", [division]).fetchall()
    forward = [c for c, w, _ in per if window_end(c, int(w)) <= cfg.data.end_date]
    if not forward:
        return None, []
    at = max(forward)
    return at, [(c, int(w), int(p)) for c, w, p in per if window_end(c, int(w)) <= at]


def forward_rows(con: duckdb.DuckDBPyConnection, division: str, at) -> tuple[pl.DataFrame, np.ndarray]:
    """E's labelled rows and their labels."""
    test = _frames(con, division, [at]).filter(pl.col("label").is_not_null())
    return test, test.get_column("label").cast(pl.Int64).to_numpy()


def forward_metrics(y: np.ndarray, p: np.ndarray, cfg) -> dict:
    """Forward AUC, lift@10 % and calibration MAE (the configured bins) of scores `p` on E's labels `y`."""
    return {"forward_rows": int(y.size), "forward_positives": int(y.sum()), "forward_auc": roc_auc(y, p),
            "forward_lift_at_10": lift_at_k(y, p, 10),
            "forward_cal_mae": calibration_mae(y, p, cfg.models.calibration_bins)}


def compare(rows: list[dict], scores: dict, y: np.ndarray, key: str, base, name: str) -> None:
    """Each row's forward AUC minus that of the row whose `key` is `base` (`auc_minus_<name>`) and its paired interval
    (`auc_minus_<name>_ci95`; None for the base itself or when E has one class)."""
    intervals = auc_differences(y, scores, base) if 0 < y.sum() < y.size and len(scores) > 1 else {}
    ref = next(r for r in rows if r[key] == base)
    for r in rows:
        r[f"auc_minus_{name}"] = r["forward_auc"] - ref["forward_auc"]
        r[f"auc_minus_{name}_ci95"] = list(intervals[r[key]]) if r[key] in intervals else None


def division_rows(con: duckdb.DuckDBPyConnection, cfg, division: str) -> list[dict]:
    at, closed = closed_frames(con, cfg, division)
    if at is None:
        return []
    usable = [(c, p) for c, _, p in closed][-max(POOLS):]
    test, y = forward_rows(con, division, at)
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
                     "fit_cpu_s": round(fit_cpu, 2), **forward_metrics(y, p, cfg)})
    compare(rows, scores, y, "pool", max(scores), "full_pool")
    return rows


def forward_cells(r: dict, diff: str) -> str:
    """The last cells of a table row: forward AUC, its difference (`diff`, formatted), lift@10 %, calibration MAE."""
    return f"{r['forward_auc']:.4f} | {diff} | {r['forward_lift_at_10']:.2f} | {r['forward_cal_mae']:.4f} |"


def difference(r: dict, name: str) -> str:
    """A row's `auc_minus_<name>` and its interval, as a table cell."""
    ci = r[f"auc_minus_{name}_ci95"]
    return f"{r[f'auc_minus_{name}']:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "")


def markdown(rows: list[dict]) -> str:
    out = ["| division (forward cutoff, positives) | pool | training positives | rows | fit CPU s | forward AUC | "
           "− 3-cutoff pool [95 %] | lift@10 % | cal MAE |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['division']} ({r['forward_cutoff']}, {r['forward_positives']:,}) | {r['pool']} | "
                   f"{r['training_positives']:,} | {r['training_rows']:,} | {r['fit_cpu_s']:.1f} | "
                   + forward_cells(r, difference(r, "full_pool")))
    return "\n".join(out)


def each_division(warehouse: Path, divisions: str | None, cfg, rows_of, progress: tuple[str, ...]) -> list[dict]:
    """`rows_of(con, division)` for each of `divisions` (comma-separated; None: every configured one) on the warehouse
    opened read-only with one DuckDB thread, a JSON line of each row's `progress` fields printed as it comes."""
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute("set threads = 1")
    rows = []
    for division in (divisions.split(",") if divisions else cfg.divisions):
        got = rows_of(con, division)
        rows += got
        for r in got:
            print(json.dumps({k: r[k] for k in progress}), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--divisions", help="comma-separated (default: every configured division)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pooling_quality.json")
    args = ap.parse_args(argv)
    cfg = load_settings(args.config)
    rows = each_division(args.warehouse, args.divisions, cfg, lambda con, d: division_rows(con, cfg, d),
                         ("division", "pool", "training_positives", "fit_cpu_s", "forward_auc", "auc_minus_full_pool"))
    args.out.write_text(json.dumps({"warehouse": str(args.warehouse), "config": str(args.config), "rows": rows},
                                   indent=1, default=str))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
