"""Model quality bar on the demo data: forward AUC of each division's model vs the oracle (`make quality`).

1. Generates the default demo data (with the generator's ground-truth probabilities) under a separate
   GOSALES_HOME (default `.gosales/quality`), materializes the whole graph for every partition with the same
   runner as `gosales materialize` (ephemeral Dagster instance).
2. For every trained model at a cutoff C whose label window has closed, scores the labelled population at C
   with that model (trained only on cutoffs C' with C' + W' ≤ C, so this is out of time) and compares with
   the oracle: the generator's true probability that the customer buys the division in the first month of
   the window (the first month only: later months' truth already reflects purchases made inside the window).
3. Ranking (issue 5): at every cutoff whose outcomes are known, capture@10% of realized purchases by the
   blended whitespace score, by `p_icp` alone, by its per-division percentile and by the legacy heuristic,
   with paired bootstrap intervals of the blend's difference to `p_icp` and to legacy (resampling buyers);
   beside it, not part of the bar, the same top lists' share of the buyers' realized net revenue.
4. Writes docs/MODEL_QUALITY.md (table per division, pooled over forward cutoffs, with a paired bootstrap
   interval of the AUC gap; per cutoff; ranking) and bench_results/model_quality.json. A `## ` section of the
   existing report that this script does not write (added by hand) is kept, after the generated ones.

Bar 1 (issue 4): for every division with at least 50 forward positives, model AUC within 0.03 of the
oracle AUC and calibration MAE ≤ 0.03.
Bar 2 (issue 5): at every cutoff whose window has closed, the blend's capture@10% beats both `p_icp` alone
and the legacy heuristic.

    .venv/bin/python benchmarks/model_quality.py [--customers N (default demo.customers)] [--seed 7] [--reuse]

Experiments: `--config PATH` merges a YAML over the default configuration (nested mappings are merged key by
key, anything else — lists included — replaces the default); use it with `--home`, `--out` and `--json`
outside the repository so the committed report is not overwritten.

Model settings on the same data: `--retrain NAME=PATH` (repeatable; with `--reuse` on a materialized `--home`)
retrains every forward-evaluated model from the run's own `division_features` (the rows and order the
`division_model` asset reads) with PATH merged over the run's configuration, scores the same forward rows and
prints, per variant, the positive-weighted mean forward AUC gap and calibration MAE over the divisions with a
forward model, and the training CPU time; `NAME=` with an empty PATH retrains with the run's own configuration
(it must reproduce the materialized models). Nothing is written but `--json`; the report is left alone.
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
from gosales_assets.core.capacity import capacity_count
from gosales_assets.core.metrics import calibration_mae, lift_at_k, roc_auc
from gosales_assets.core.modeling import load_model
from gosales_assets.core.ranking_evaluation import legacy_heuristic
from gosales_assets.core.whitespace import UNIFORMITY_TOLERANCE
from gosales_assets.core.whitespace_inputs import whitespace_inputs
from gosales_assets.core.whitespace_signals import percentile_uniformity
from gosales_assets.definitions import build_definitions
from gosales_assets.demo_data import generate_demo_data
from gosales_assets.runner import materialize
from gosales_assets.settings import config_path, division_slug, load_settings, merge_config

ROOT = Path(__file__).resolve().parents[1]
MIN_POSITIVES = 50
AUC_GAP = 0.03
CAL_MAE_MAX = 0.03
CAPTURE_K = 10.0
BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0


# Static notes: what was measured while choosing the defaults. Every choice was made on OTHER demo seeds
# (101 and 202 at 3,000 customers, 303 at 10,000), never on the seed this report is run on.
DESIGN_NOTES = """## How the defaults were chosen (not on this seed)

The defaults were chosen on other demo seeds — 101 and 202 (3,000 customers) and 303 (10,000 customers) — by
retraining every forward model from the same `division_features` and comparing with the oracle; the seed of
this report was not looked at. Figure of merit: the positive-weighted mean AUC gap over every division with a
forward model (most of them below the 50-positive threshold, so this is a much less noisy signal than the
two judged divisions).

| models | seed 101 (3k) | seed 202 (3k) | seed 303 (10k) |
|---|---|---|---|
| previous defaults: best of LR (C 0.01, l1 0.1, saga) / LightGBM (4 leaves) by CV lift@10 | 0.115 | 0.088 | 0.061 |
| **now: ensemble of LR (pure L2, C 3e-4, signed-log inputs, lbfgs) and LightGBM stumps** | **0.067** | **0.059** | **0.051** |
| LR alone, same settings | 0.065 | 0.077 | 0.059 |
| LightGBM stumps alone | 0.085 | 0.076 | 0.062 |
| LR with C chosen per model by grouped CV (AUC / log loss / per-fold AUC) | 0.067–0.093 | 0.073–0.093 | – |
| ensemble, LR on the 40 features with the best univariate AUC (screened inside the training data) | 0.063 | 0.055 | – |
| ceiling: LightGBM fitted to the oracle's log-probability of the training rows (not to labels) | 0.021 | 0.024 | 0.021 |

(Rows 3–7 come from a lighter harness on the same rows — raw scores, no calibration — which puts the
ensemble within 0.003 of the pipeline figure in row 2.)

- **Why an ensemble:** with 20–70 training positives both families are variance-limited and make different
  errors; the equal-weight average of their standardized out-of-fold logits beats either alone on two of
  three seeds and removes the noisy CV choice between them (lift@10 on folds with 5–15 positives).
- **Why C = 3e-4 pure L2:** on seed 101 the linear model's gap fell from 0.129 (C = 0.01) to 0.065 (3e-4)
  and rose again at 1e-4; on seed 202 the best was 1e-3 (0.069 vs 0.077). Inside the ensemble 3e-4 and 1e-3
  are within 0.005 of each other on all three seeds. Choosing C per model by CV was worse than a fixed value
  (the CV estimate is too noisy to choose with). saga stopped at its loose tolerance before convergence at
  this C (gap 0.073 vs 0.066), so pure L2 is fitted exactly with lbfgs.
- **Signed log inputs:** revenue, counts and day spans are heavy-tailed; log scaling improved the gap by
  0.001–0.007 on both seeds where it was compared (trees are unaffected).
- **Screening** gained < 0.005 and was left out.

## Why bar 1 is out of reach at this size (development seeds)

- **Labels, not the model family, set the gap:** the last row of the table above trains on the generator's own
  probabilities for the training rows instead of 0/1 labels; with the same features and rows it reaches a
  gap of ~0.02 on average, but on Simulation and Training — the divisions that usually reach 50 forward
  positives — 0.047 / 0.043 (seed 101), 0.024 / 0.016 (202) and 0.042 / 0.008 (303). With labels, each
  training cutoff has only ~15–25 positives per division (the models pool 1–3 cutoffs), and even 10,000
  customers leave the average gap at ~0.05 (two of ten divisions within 0.03).
- The oracle itself is not perfectly reachable: it sees sub-industry, territory and per-customer noise that
  the features do not carry (adding sub-industry and territory to the ceiling fit moved it by < 0.005).
- **Noise:** at 3,000 customers a judged division has 50–60 forward positives; the 95 % interval of its gap
  is about ±0.04–0.05 wide, so "within 0.03" cannot be shown even for a model whose true gap is 0.
- A larger demo does not help: 10,000 customers took ~18 minutes for the whole graph on the shared 2-core
  machine (against ~4–5 minutes for 3,000) and left the average gap at ~0.05.
- **More labelled cutoffs per model, measured** (seeds 101 and 202, `--config` overrides; "matched" = the
  division × cutoff pairs the default evaluates):

  | config | weighted gap, matched (101 / 202) | CPU vs default | judged divisions (≥ 50 positives) within 0.03 |
  |---|---|---|---|
  | default: 6 quarterly cutoffs from 2025-03-31, pool 3 | 0.067 / 0.059 | 1× | 0 of 0 / 0 of 1 |
  | + the four 2024 quarter-ends, pool 3 | 0.067 / 0.061 | 2.4× | 0 of 10 / 1 of 9 |
  | + the four 2024 quarter-ends, pool 6 | 0.050 / 0.057 | 2.7× | 0 of 10 / 1 of 9 |
  | 28 monthly cutoffs from 2024-03-31, pool 18 (seed 101 only) | 0.055 | 11× | 1 of 12 |

  Doubling the training positives per model (~50 → ~110) closes about a sixth of the gap (paired 95 %
  intervals of the change: −0.029…−0.008 on seed 101, −0.010…+0.005 on seed 202), and the earlier cutoffs
  also give forward models at 2025-03-31 and 2025-06-30, so 9–12 divisions become judged instead of 0–2 —
  and nearly all of them miss. Monthly cutoffs add nothing over pooling six quarters; with 59–384 forward
  positives per division there, the judged gaps (0.029–0.121, intervals ±0.01–0.06) are real, not noise.
  None of these is worth 2.7–11× the time of `make demo`, so the defaults stay; a deployment with the real
  roster has 17–7,300 positives per division and is where the pool size matters (`models.training_cutoffs`).
- **Borrowing strength across divisions, measured** (lighter harness on the same rows, seeds 101 / 202,
  weighted gap): one LightGBM model trained on the training rows of *all* divisions at once (~600 positives
  instead of ~50; the division as a category, plus the target division's own recency, counts and share as
  shared columns), used alone, averaged with the per-division ensemble (standardized logits), or as the
  offset the per-division stumps boost from. Also tried: long-history activity features (active months over
  all history and 48 months, activity rate since first purchase) to estimate the customers' engagement.

  | model | weighted gap (101 / 202) |
  |---|---|
  | default per-division ensemble | 0.065 / 0.057 |
  | pooled cross-division model alone (8 leaves; LR with division intercepts: 0.082 on 101) | 0.070 / – |
  | average of the ensemble and the pooled model, pooled weight 0.5 (4 / 8 / 16 leaves) | 0.058–0.063 / 0.053–0.056 |
  | average, pooled weight 0.3 (8 leaves) | 0.059 / 0.053 |
  | pooled model as offset, per-division stumps boosted from it (4 / 8 leaves) | 0.066–0.069 / 0.065–0.068 |
  | default + long-history activity features | 0.064 / 0.058 |

  The best averaging closes 0.004–0.008 (about a tenth of the gap); the 8-leaf average at weight 0.5 leaves
  Simulation at 0.083 / 0.049 and Training at 0.081 / 0.045. It would make every division × cutoff model
  depend on every division's features (a cutoff-level model asset, and a model file that embeds it) for
  that, so it was not adopted.
- With the better models of the pool-6 configuration the blend trails `p_icp` by more (see below): by
  0.035–0.161 at the four closed cutoffs from 2025-06-30 on (seed 101), three of them with intervals below 0.

## The blend against `p_icp` alone (development seeds)

- `p_icp` is a calibrated probability from a model that already uses the basket lift
  (`mb__target__*`) and the ALS similarity (`als__target__*`) as features. The blend keeps only the
  per-division *rank* of `p_icp` (discarding how likely a division is to be bought at all), adds the same
  lift and ALS signals again with 30 % of the weight, and gives 10 % to EV, which measures value, not
  likelihood. Capture counts purchases, so the blend can beat `p_icp` only where the model is weak: with the
  previous, weaker models it did so at some cutoffs; with the current ones it trails by 0.01–0.03 on the
  development seeds, and a single cutoff's difference has a 95 % interval ±0.08–0.12 wide at this size.
- On the development seeds (closed cutoffs with ≥ 30 buyers) the mean difference blend − `p_icp` was −0.014
  with the previous models and −0.023 with the current ones. Alternatives that keep the weights — a
  cross-division percentile of `p_icp`, EV as `p_icp` × value (capped globally, per division, or as a
  percentile) — ranged from −0.003 to −0.029; none beat `p_icp` on average, so none was adopted.
  The weights were not tuned on outcomes.
- The blend beats the legacy revenue × recency list at every closed cutoff with ≥ 30 buyers of the
  development seeds (a 12-buyer cutoff was a tie).
- Ties: `p_icp_pct` now orders pairs with equal `p_icp` by lift, then ALS, then EV before taking the
  percentile, so calibration steps no longer bunch hundreds of pairs on one value (the `percentile_uniformity`
  WARN). The averaged model also has far fewer tied scores than small LightGBM trees alone.

## Reading the tables

- `model_auc` / `oracle_auc` are on the same rows; `auc_gap` = oracle − model; `gap_ci95` resamples the pooled
  rows ({reps} paired draws).
- `cal_mae` is bin-count-weighted over 10 equal-width bins of the calibrated probability against the
  realized outcome.
- The oracle uses first-month truth, so it is a slightly conservative ceiling; a window-level oracle
  (1 − Π(1 − p) over the months) would be inflated by purchases already made inside the window.
- Capture counts a pair whose outcome is unknown (a 12-month division whose window is still open at a
  6-month-closed cutoff) as not bought, for every ordering alike.
""".replace("{reps}", str(BOOTSTRAP))


def gap_interval(y: np.ndarray, p: np.ndarray, o: np.ndarray, reps: int = BOOTSTRAP) -> tuple[float, float]:
    """95 % paired bootstrap interval (rows resampled with replacement) of oracle AUC − model AUC."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    gaps = []
    for _ in range(reps):
        i = rng.integers(0, len(y), len(y))
        a, b = roc_auc(y[i], o[i]), roc_auc(y[i], p[i])
        if a is not None and b is not None:
            gaps.append(a - b)
    lo, hi = np.percentile(gaps, [2.5, 97.5])
    return float(lo), float(hi)


def evaluate(settings, ground_truth: Path, predict=None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Forward evaluation of every registry model whose window at its cutoff has closed; `predict(row, frame, con)`
    gives the calibrated probabilities of `frame` (default: the registry's model file)."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    registry = con.execute("select * from division_model order by division, cutoff_date").pl()
    truth = pl.scan_parquet(ground_truth)
    per_cutoff, pooled_parts = [], {}
    for row in registry.iter_rows(named=True):
        division, cutoff = row["division"], row["cutoff_date"]
        w = row["prediction_window_months"]
        if not row["model_path"] or window_end(cutoff, w) > settings.data.end_date:
            continue  # no model trained (skipped partition), or its window is still open: no realized outcome yet
        frame = con.execute("select * from division_features where division = ? and cutoff_date = ? "
                            "and label is not null order by customer_id", [division, cutoff]).pl()
        if frame.height == 0:
            continue
        p = load_model(row["model_path"]).predict_proba(frame) if predict is None else predict(row, frame, con)
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
        lo, hi = gap_interval(y, p, o) if model_auc is not None and oracle_auc is not None else (None, None)
        meets = (enough and model_auc is not None and oracle_auc is not None
                 and oracle_auc - model_auc <= AUC_GAP and cal <= CAL_MAE_MAX)
        pooled.append({"division": division, "forward_cutoffs": len(parts), "rows": len(y),
                       "positives": int(y.sum()), "model_auc": model_auc, "oracle_auc": oracle_auc,
                       "auc_gap": None if model_auc is None or oracle_auc is None else oracle_auc - model_auc,
                       "gap_ci95": "–" if lo is None else f"[{lo:.3f}, {hi:.3f}]",
                       "lift_at_10": lift_at_k(y, p, 10), "cal_mae": cal,
                       "bar": "n/a (< 50 positives)" if not enough else ("met" if meets else "MISSED")})
    return pl.DataFrame(pooled).sort("division"), pl.DataFrame(per_cutoff)


def weighted_summary(pooled: pl.DataFrame) -> dict:
    """Positive-weighted mean forward AUC gap and calibration MAE over every division with a forward model."""
    df = pooled.filter(pl.col("auc_gap").is_not_null())
    w = df.get_column("positives").to_numpy().astype(np.float64)
    return {"divisions": df.height, "positives": int(w.sum()),
            "weighted_auc_gap": float(np.average(df.get_column("auc_gap").to_numpy(), weights=w)),
            "weighted_cal_mae": float(np.average(df.get_column("cal_mae").to_numpy(), weights=w))}


class Retrainer:
    """`predict` for `evaluate`: the registry model retrained from the warehouse's division_features with other
    model settings (cached per partition), timing the training."""

    def __init__(self, models_settings, seed: int):
        from gosales_assets.core.modeling import train_division_model

        self._train = train_division_model
        self.params, self.seed = models_settings, seed
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.models: dict = {}
        self.reference_diff = 0.0  # largest |p - p of the registry model| (0 when the settings are the run's)

    def __call__(self, row: dict, frame: pl.DataFrame, con) -> np.ndarray:
        key = (row["division"], row["cutoff_date"])
        if key not in self.models:
            cutoffs = ", ".join(f"'{c.strip()}'" for c in row["training_cutoffs"].split(","))
            train = con.execute(f"select * from division_features where division = ? and cutoff_date in ({cutoffs}) "
                                "order by cutoff_date, customer_id", [row["division"]]).pl()
            t0, c0 = time.time(), time.process_time()
            self.models[key] = self._train(train, self.params, self.seed)
            self.wall_s += time.time() - t0
            self.cpu_s += time.process_time() - c0
        p = self.models[key].predict_proba(frame)
        ref = load_model(row["model_path"]).predict_proba(frame)
        self.reference_diff = max(self.reference_diff, float(np.max(np.abs(p - ref))) if p.size else 0.0)
        return p


def retrain_variants(args, settings, doc_cfg: dict) -> int:
    """`--retrain`: the run's models against the same models retrained with each variant's settings."""
    truth = settings.landing_dir / "ground_truth.parquet"
    pooled, _ = evaluate(settings, truth)
    rows = [{"variant": "as materialized", **weighted_summary(pooled)}]
    per_division = {"as materialized": pooled.to_dicts()}
    for spec in args.retrain:
        name, _, path = spec.partition("=")
        merged = merge_config(doc_cfg, yaml.safe_load(Path(path).read_text()) or {}) if path else doc_cfg
        cfg_file = args.home.parent / f"{args.home.name}_retrain_{len(rows)}.yaml"
        cfg_file.write_text(yaml.safe_dump(merged, sort_keys=False))
        variant = load_settings(cfg_file, home=args.home)
        retrainer = Retrainer(variant.models, variant.seeds.modeling)
        pooled_v, _ = evaluate(settings, truth, predict=retrainer)
        rows.append({"variant": name or path, **weighted_summary(pooled_v), "models": len(retrainer.models),
                     "train_cpu_s": round(retrainer.cpu_s, 1), "train_wall_s": round(retrainer.wall_s, 1),
                     "max_abs_diff_vs_materialized": retrainer.reference_diff})
        per_division[name or path] = pooled_v.to_dicts()
        print(json.dumps(rows[-1], default=str), flush=True)
    table = pl.DataFrame(rows, strict=False)
    print(_md_table(table))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"summary": rows, "per_division": per_division}, indent=2, default=str))
    return 0


def _top_buyers(frame: pl.DataFrame, by: list[str], descending: list[bool]) -> set[tuple[str, str]]:
    """Buyer pairs inside the top CAPTURE_K % of `frame` ordered by `by` (the order `capture_at_k` uses)."""
    ordered = frame.sort(by, descending=descending, nulls_last=True, maintain_order=True)
    top = ordered.head(capacity_count(ordered.height, CAPTURE_K))
    return set(top.filter(pl.col("bought_in_division") == 1).select("customer_id", "division").iter_rows())


def _diff_interval(buyers: list, a: set, b: set, reps: int = BOOTSTRAP) -> tuple[float, float, float]:
    """capture(a) − capture(b) and its 95 % paired bootstrap interval (buyers resampled with replacement)."""
    d = np.array([(k in a) - (k in b) for k in buyers], dtype=np.float64)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    boots = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(reps)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def _whitespace_warehouse(settings):
    """A read-only connection to the run's warehouse, or None when it has no `whitespace` table yet."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    if "whitespace" in tables:
        return con
    con.close()
    return None


def ranking_capture(settings) -> pl.DataFrame:
    """capture@10 per cutoff with known outcomes: recomputed from the `whitespace` table (blend by rank,
    p_icp, p_icp_pct) and the legacy heuristic on the same pairs, checked against the asset's metrics file."""
    con = _whitespace_warehouse(settings)
    if con is None:
        return pl.DataFrame()
    dim = con.execute("select * from dim_customer").pl()
    rows = []
    for (cutoff,) in con.execute("select distinct cutoff_date from whitespace order by 1").fetchall():
        # Model rows only: peer-ordered fallback rows (held/skipped divisions) are not judged by the ranking metrics.
        ranked = con.execute("select * from whitespace where cutoff_date = ? and coalesce(score_source, 'model') = "
                             "'model' order by rank", [cutoff]).pl()
        if ranked.get_column("bought_in_division").drop_nulls().len() == 0:
            continue
        fact = con.execute("select * from fact_transactions where invoice_date <= ?", [cutoff]).pl()
        inputs = whitespace_inputs(fact, dim, cutoff, settings.whitespace.ownership_lookback_months)
        legacy = legacy_heuristic(ranked.select("customer_id", "division", "bought_in_division"),
                                  inputs.customer_revenue, inputs.recency)
        buyers = sorted(ranked.filter(pl.col("bought_in_division") == 1).select("customer_id", "division").iter_rows())
        tops = {
            "blend": _top_buyers(ranked, ["rank"], [False]),
            "p_icp_only": _top_buyers(ranked, ["p_icp", "customer_id", "division"], [True, False, False]),
            "p_icp_pct_only": _top_buyers(ranked, ["p_icp_pct", "customer_id", "division"], [True, False, False]),
            "legacy": _top_buyers(legacy, ["legacy_score", "customer_id", "division"], [True, False, False]),
        }
        cap = {k: len(v) / len(buyers) for k, v in tops.items()}
        # The same top lists weighted by what each buyer spent in the division over the window (net of returns,
        # from `labels`): the EV term of the blend aims at value, not at the count of purchases.
        spent = dict(((c, d), float(r or 0.0)) for c, d, r in con.execute(
            "select customer_id, division, net_revenue_window from labels where cutoff_date = ? and label = 1 "
            "and not censored", [cutoff]).fetchall())
        total = sum(spent.get(k, 0.0) for k in buyers)
        revenue = {f"revenue_{k}": (sum(spent.get(b, 0.0) for b in v) / total if total > 0 else None)
                   for k, v in tops.items()}
        metrics_file = settings.artifacts_dir / "whitespace" / str(cutoff) / f"whitespace_metrics_{cutoff}.json"
        if metrics_file.is_file():  # the asset's own numbers must agree with this recomputation
            recorded = json.loads(metrics_file.read_text()).get("capture") or {}
            for k, suffix in (("blend", ""), ("p_icp_only", "_p_icp_only"), ("legacy", "_legacy")):
                want = recorded.get(f"capture_at_10{suffix}")
                if want is not None and abs(want - cap[k]) > 1e-9:
                    print(f"warning: {cutoff} {k}: recomputed capture {cap[k]:.4f} != recorded {want:.4f}")
        d_p, lo_p, hi_p = _diff_interval(buyers, tops["blend"], tops["p_icp_only"])
        d_l, lo_l, hi_l = _diff_interval(buyers, tops["blend"], tops["legacy"])
        rows.append({"cutoff": str(cutoff), "pairs": ranked.height, "buyers": len(buyers), **cap,
                     "blend_minus_p_icp": d_p, "ci95_vs_p_icp": f"[{lo_p:+.3f}, {hi_p:+.3f}]",
                     "blend_minus_legacy": d_l, "ci95_vs_legacy": f"[{lo_l:+.3f}, {hi_l:+.3f}]",
                     "bar": "met" if d_p > 0 and d_l > 0 else "MISSED", **revenue})
    return pl.DataFrame(rows)


def uniformity(settings) -> float | None:
    """Largest KS distance of `p_icp_pct` from U(0, 1) over every division and cutoff of the whitespace table
    (what the `percentile_uniformity` check reports per cutoff)."""
    con = _whitespace_warehouse(settings)
    if con is None:
        return None
    ws = con.execute("select cutoff_date, division, p_icp_pct from whitespace "
                     "where coalesce(score_source, 'model') = 'model'").pl()
    # A cutoff whose pairs all lack a percentile (only peer-ordered rows) has no deviation to report.
    deviations = (percentile_uniformity(part).get_column("max_deviation").max()
                  for _, part in ws.group_by("cutoff_date"))
    return max((float(d) for d in deviations if d is not None), default=None)


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


def render(settings, customers: int, seed: int, pooled: pl.DataFrame, per_cutoff: pl.DataFrame,
           ranking: pl.DataFrame, ks_max: float | None) -> str:
    met = pooled.filter(pl.col("bar") == "met").height
    missed = pooled.filter(pl.col("bar") == "MISSED").height
    verdict = "MET" if missed == 0 and met > 0 else ("NOT MET" if missed else "NOT JUDGEABLE")
    judged = pooled.filter(pl.col("bar") != "n/a (< 50 positives)").sort("division")
    judged_text = ", ".join(f"{r['division']} gap {r['auc_gap']:.3f} {r['gap_ci95']}, cal-MAE {r['cal_mae']:.3f}"
                            for r in judged.iter_rows(named=True)) or "none"
    closed = ranking.height
    beats = ranking.filter(pl.col("bar") == "met").height if closed else 0
    beats_p = ranking.filter(pl.col("blend_minus_p_icp") > 0).height if closed else 0
    beats_l = ranking.filter(pl.col("blend_minus_legacy") > 0).height if closed else 0
    return f"""# Model quality

Produced by `make quality` (`benchmarks/model_quality.py`) on the default demo data: {customers:,} customers,
seed {seed}, default configuration (`gosales_assets/gosales.yaml`). Forward evaluation: each model at cutoff C
was trained only on cutoffs C' with C' + W' ≤ C and is scored on the labelled population at C, whose window
(C, C + W] has closed. The oracle ranks the same customers by the generator's true probability of buying the
division in the first month of the window.

## The two bars

**Bar 1 (issue 4):** for every division with at least {MIN_POSITIVES} forward positives (pooled over the
forward cutoffs), model AUC within {AUC_GAP} of the oracle AUC and calibration MAE ≤ {CAL_MAE_MAX}.
**Result: {verdict}** — {met} division(s) met it, {missed} missed it, the others have too few forward
positives to judge. Judged: {judged_text} (95 % paired bootstrap interval of the gap).

**Bar 2 (issue 5):** at every cutoff whose window has closed, the blended ranking's capture@{CAPTURE_K:g}% of
realized purchases beats both `p_icp` alone and the legacy heuristic.
**Result: {"MET" if closed and beats == closed else "NOT MET"}** — the blend beats both at {beats} of {closed}
closed cutoff(s); it beats `p_icp` alone at {beats_p} and the legacy heuristic at {beats_l}.

## Per division, pooled over forward cutoffs

{_md_table(pooled)}

## Per division and cutoff

{_md_table(per_cutoff.sort("division", "cutoff")) if per_cutoff.height else "_no forward cutoff with a model_"}

## Whitespace ranking: capture of realized purchases

Share of all realized next-window purchases (over the divisions with published scores) found in the top
{CAPTURE_K:g} % of each cutoff's ranked list, by ordering: the blended score (champion), the calibrated probability
alone, its per-division percentile alone, and the legacy revenue × recency heuristic (shadow list). The
differences come with a 95 % paired bootstrap interval (buyers resampled, {BOOTSTRAP} draws).

{_md_table(ranking.select(pl.exclude("^revenue_.*$"))) if ranking.height else "_no cutoff with realized outcomes and a ranked list_"}

Not part of the bar — the same top {CAPTURE_K:g} % lists weighted by what each buyer spent in the division over
the window (net revenue from `labels`), for the owner's choice of how the ranking is judged:

{_md_table(ranking.select("cutoff", "buyers", pl.col("^revenue_.*$").name.map(lambda c: c.removeprefix("revenue_"))))
 if ranking.height else "_no cutoff with realized outcomes and a ranked list_"}

`percentile_uniformity`: the largest KS distance of `p_icp_pct` from uniform over every division and cutoff is
{_fmt(ks_max)} (the check warns above {UNIFORMITY_TOLERANCE}).

{DESIGN_NOTES}
"""


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading line, text) of every `## ` section of a markdown document, in order."""
    out: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            out.append([line])
        elif out:
            out[-1].append(line)
    return [(lines[0].strip(), "".join(lines)) for lines in out]


def keep_hand_written(previous: str, generated: str) -> str:
    """The generated report followed by every `## ` section of the previous report that the generator does not
    write (sections added by hand, e.g. measurements made with --retrain), in their order: regenerating the report
    does not drop them."""
    heads = {head for head, _ in _sections(generated)}
    extra = [body.rstrip("\n") + "\n" for head, body in _sections(previous) if head not in heads]
    return generated if not extra else generated.rstrip("\n") + "\n\n" + "\n".join(extra)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=None, help="roster size (default: demo.customers)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--home", type=Path, default=ROOT / ".gosales" / "quality")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "MODEL_QUALITY.md")
    ap.add_argument("--reuse", action="store_true", help="evaluate an existing run in --home")
    ap.add_argument("--config", type=Path, default=None,
                    help="YAML merged over the default configuration (experiments; the report still says default)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench_results" / "model_quality.json")
    ap.add_argument("--retrain", action="append", default=[], metavar="NAME=PATH",
                    help="retrain the forward models with PATH (YAML) merged over the run's configuration and compare "
                    "(repeatable; see the module docstring)")
    args = ap.parse_args(argv)

    # The default configuration, plus the legacy shadow list so the ranking can be compared with it.
    args.home.mkdir(parents=True, exist_ok=True)
    doc_cfg = yaml.safe_load(config_path().read_text())
    cfg_file = args.home.parent / "quality_gosales.yaml"
    if args.config is not None:
        doc_cfg = merge_config(doc_cfg, yaml.safe_load(args.config.read_text()) or {})
        cfg_file = args.home.parent / f"{args.home.name}_gosales.yaml"
    doc_cfg.setdefault("whitespace", {})["shadow_enabled"] = True
    cfg_file.write_text(yaml.safe_dump(doc_cfg, sort_keys=False))
    settings = load_settings(cfg_file, home=args.home)
    seed = args.seed if args.seed is not None else settings.seeds.demo
    customers = args.customers if args.customers is not None else settings.demo.customers
    started = time.time()
    if not args.reuse:
        shutil.rmtree(args.home, ignore_errors=True)
        generate_demo_data(settings.landing_dir, customers=customers, seed=seed, settings=settings)
        defs = build_definitions(settings, cfg_file)
        with DagsterInstance.ephemeral() as instance:
            outcomes = materialize(defs, instance, settings, log=lambda line: None)
        ok = sum(o.status in ("ok", "held") for o in outcomes)
        print(f"materialized {ok}/{len(outcomes)} runs in {time.time() - started:.0f}s")
    if args.retrain:
        return retrain_variants(args, settings, doc_cfg)
    pooled, per_cutoff = evaluate(settings, settings.landing_dir / "ground_truth.parquet")
    ranking = ranking_capture(settings)

    doc = render(settings, customers, seed, pooled, per_cutoff, ranking, uniformity(settings))
    if args.config is not None:  # say what was run: not the default configuration
        doc = doc.replace("default configuration (`gosales_assets/gosales.yaml`)",
                          f"default configuration (`gosales_assets/gosales.yaml`) with `{args.config}` merged over it")
    if args.out.is_file():
        doc = keep_hand_written(args.out.read_text(), doc)
    args.out.write_text(doc)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(
        {"pooled": pooled.to_dicts(), "per_cutoff": per_cutoff.to_dicts(), "ranking": ranking.to_dicts()},
        indent=2, default=str))
    print(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
