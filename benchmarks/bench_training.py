"""Model training at production scale: one division model on a `large`-profile frame, before and after negative
sampling and the early-stopping tolerance (issue 15, "training cost grows with the information, not the rows").

    nice -n 10 .venv/bin/python benchmarks/bench_training.py [--work DIR] [--customers 500000]

1. The frame (built once, cached as `<work>/frame.parquet`): `generate_demo_data` (no ground-truth file) for
   `--customers` customers with the `large` profile's first three cutoffs (2024-09-30, 2024-12-31, 2025-03-31),
   then the same core calls as `bench_suite.py`'s direct path — star schema, customer features, basket rules, ALS
   (without the leakage rebuilds), labels and `division_features` of `--division` — pooled like the
   `division_model` asset pools its training cutoffs (sorted by cutoff, customer).
2. Each variant × training set in its own subprocess (so the peak RSS is the fit's): `train_division_model` with
   the default configuration and the variant's `models` overrides, on 1 (2024-09-30) or 3 pooled cutoffs. Wall,
   CPU (user + system, all threads), peak RSS, rows fitted, the LightGBM best iterations, the cross-validated
   metrics (on every labelled row's out-of-fold score) and, for the 1-cutoff model, the forward metrics at
   2025-03-31 (its window closed: 2024-09-30 + 6 months), the only out-of-time check a frame without an oracle
   allows.
3. Writes `benchmarks/results/training_large.json` and prints a markdown table.

`--thin-positives F` keeps a seeded fraction F of the positive rows (the others are dropped) to emulate the
0.03–1 % prevalence of real deployments on the same customers and features (the demo generator's ~3 %).

Variants: `previous` = the settings before issue 15 (no sampling, learning rate 0.05, tolerance 0, 4 folds);
`first_step` = the defaults of its first step (10 negatives per positive, at least 20,000); `default` = the
configuration as shipped (`models.sampling` in gosales.yaml). The code is this one for all of them. `--variant NAME=YAML`
adds others; `--only NAME[,NAME]` runs only those. The machine is shared: compare CPU seconds more than wall.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # LightGBM's OpenMP threads otherwise spin (see the Makefile)

import polars as pl  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

CUTOFFS = ["2024-09-30", "2024-12-31", "2025-03-31"]
FORWARD = "2025-03-31"
PREVIOUS = {"models": {"lightgbm": {"learning_rate": [0.05], "early_stopping_tolerance": 0.0},
                       "sampling": {"enabled": False}, "n_folds": 4}}
# The first step of issue 15 (sampling 10 negatives per positive, at least 20,000), before the second (5 per positive,
# at least 10,000).
FIRST_STEP = {"models": {"sampling": {"negatives_per_positive": 10, "min_negatives": 20000}}}


def _config(work: Path, customers: int, overrides: dict | None = None) -> Path:
    from gosales_assets.settings import DEFAULT_CONFIG_PATH, merge_config

    doc = merge_config(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()),
                       {"paths": {"landing": str(work / "landing")},
                        "cutoffs": CUTOFFS, "demo": {"customers": customers}})
    if overrides:
        doc = merge_config(doc, overrides)
    path = work / f"config_{hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:10]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def build_frame(work: Path, customers: int, division: str) -> Path:
    """The pooled `division_features` frame of `division` at the three cutoffs (cached)."""
    out = work / "frame.parquet"
    if out.is_file():
        return out
    import bench_suite as bs

    from gosales_assets.demo_data import generate_demo_data
    from gosales_assets.settings import division_slug, load_settings

    cfg = load_settings(_config(work, customers), home=work / "home")
    t0 = time.time()
    generate_demo_data(cfg.landing_dir, customers=customers, seed=cfg.seeds.demo, settings=cfg, ground_truth=False)
    d = bs.Direct(cfg, work / "direct", [division])
    bs.d_star(d)
    dim, fact = d.load("dim_customer").sort("customer_id"), d.fact()
    for cutoff in cfg.cutoffs:  # the cutoff features, without the leakage rebuilds (not what is measured here)
        c = cutoff.isoformat()
        history = fact.filter(pl.col("invoice_date") <= cutoff)
        tables = {
            "customer_features": bs.build_customer_features(history, dim, cutoff, cfg.divisions, cfg.features),
            "market_basket_rules": bs.market_basket_rules(history, cutoff, cfg.divisions,
                                                          min_support=cfg.basket.min_support,
                                                          min_confidence=cfg.basket.min_confidence),
            "als_embeddings": bs.fit_als(history, cutoff, cfg.divisions, cfg.als, cfg.seeds.als).similarity,
        }
        for name, table in tables.items():
            d.save(table.with_columns(pl.lit(cutoff).alias("cutoff_date")), name, c)
    del dim, fact
    bs.d_division_features(d)
    frame = pl.concat([d.load("division_features", division_slug(division), c.isoformat()) for c in cfg.cutoffs],
                      how="diagonal_relaxed").sort("cutoff_date", "customer_id")
    frame.write_parquet(out)
    print(f"frame {frame.shape} built in {time.time() - t0:.0f} s", flush=True)
    return out


def child(args: argparse.Namespace) -> int:
    """One fit: print its measurements as JSON."""
    from gosales_assets.core.metrics import calibration_mae, lift_at_k, roc_auc
    from gosales_assets.core.modeling import train_division_model
    from gosales_assets.settings import load_settings

    cfg = load_settings(args.cfg)
    frame = pl.read_parquet(args.frame)
    if args.thin_positives < 1.0:  # drop a seeded share of the positive rows (order-independent: hash of the key)
        key = pl.concat_str([pl.col("customer_id"), pl.col("cutoff_date").cast(pl.String)], separator="|")
        drop = (pl.col("label") == 1) & (key.hash(seed=7) % 1_000_000 >= int(args.thin_positives * 1_000_000))
        frame = frame.filter(~drop.fill_null(False))
    train = frame.filter(pl.col("cutoff_date").cast(pl.String).is_in(args.train.split(",")))
    load0 = os.getloadavg()[0]
    t0, r0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    model = train_division_model(train, cfg.models, cfg.seeds.modeling)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    m = model.metrics
    out = {
        "train_cutoffs": args.train.split(","), "labelled_rows": model.class_balance["n"],
        "positives": model.class_balance["positives"], "prevalence": model.class_balance["prevalence"],
        "rows_fitted": model.class_balance.get("rows_fitted", model.class_balance["n"]),
        "wall_s": round(time.time() - t0, 1),
        "cpu_s": round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 1),
        "peak_rss_gib": round(r1.ru_maxrss / 2**20, 2), "load_avg": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "lightgbm_best_iterations": model.cv_results.filter(pl.col("model_type") == "lightgbm")
        .get_column("best_iteration").to_list(),
        "cv_auc": m["auc"], "cv_lift_at_10": m.get("lift_at_10"), "cv_brier": m.get("brier"),
        "cv_cal_mae": m.get("cal_mae"), "sampling": model.sampling,
    }
    if FORWARD not in out["train_cutoffs"]:
        test = frame.filter((pl.col("cutoff_date").cast(pl.String) == FORWARD) & pl.col("label").is_not_null())
        y, p = test.get_column("label").to_numpy(), model.predict_proba(test)
        out |= {"forward_cutoff": FORWARD, "forward_rows": int(y.size), "forward_auc": roc_auc(y, p),
                "forward_lift_at_10": lift_at_k(y, p, 10.0), "forward_cal_mae": calibration_mae(y, p, 10),
                "forward_mean_p": float(p.mean()), "forward_prevalence": float(y.mean())}
    print(json.dumps(out, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / ".gosales" / "bench_training")
    ap.add_argument("--customers", type=int, default=500_000)
    ap.add_argument("--division", default="Simulation")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=YAML")
    ap.add_argument("--thin-positives", type=float, default=1.0, metavar="F",
                    help="keep this seeded fraction of the positive rows (emulates a lower prevalence)")
    ap.add_argument("--cutoffs", choices=("1", "3", "both"), default="both", help="training sets: 1, 3 or both")
    ap.add_argument("--only", metavar="NAME[,NAME]", help="run only these variants (built-in or --variant names)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training_large.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--frame", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--train", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)

    args.work.mkdir(parents=True, exist_ok=True)
    frame = build_frame(args.work, args.customers, args.division)
    variants = {"previous": PREVIOUS, "first_step": FIRST_STEP, "default": {}}
    for spec in args.variant:
        name, _, path = spec.partition("=")
        variants[name] = yaml.safe_load(Path(path).read_text()) or {}
    if args.only:
        wanted = args.only.split(",")
        unknown = [n for n in wanted if n not in variants]
        if unknown:
            raise SystemExit(f"--only: unknown variants {unknown} (known: {sorted(variants)})")
        variants = {n: variants[n] for n in wanted}
    results = []
    trains = {"1": [CUTOFFS[0]], "3": [",".join(CUTOFFS)], "both": [CUTOFFS[0], ",".join(CUTOFFS)]}[args.cutoffs]
    for train in trains:
        for name, overrides in variants.items():
            cfg = _config(args.work, args.customers, overrides)
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--cfg", str(cfg),
                                   "--frame", str(frame), "--train", train, "--thin-positives",
                                   str(args.thin_positives)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name} on {train} failed:\n{proc.stderr[-3000:]}")
            res = {"variant": name, "overrides": overrides, **json.loads(proc.stdout.strip().splitlines()[-1])}
            results.append(res)
            print(f"{name:>10} {train}: {res['wall_s']} s wall, {res['cpu_s']} s CPU, {res['peak_rss_gib']} GiB, "
                  f"rows fitted {res['rows_fitted']:,} of {res['labelled_rows']:,}, CV AUC {res['cv_auc']:.4f}"
                  + (f", forward AUC {res['forward_auc']:.4f}" if "forward_auc" in res else ""), flush=True)
    meta = {"customers": args.customers, "division": args.division, "thin_positives": args.thin_positives, "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version()}, "command": " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
