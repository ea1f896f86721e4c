"""Model quality on the demo data: the engine judged against the simple peers, on several seeds (`make quality`).

The bar is issue 14's: model quality is judged against what a sales-analytics team would use instead (the simple
peers of `core.peers`: recency, frequency, monetary, the RFM logistic regression), not against the generator's
oracle (issue 4's oracle bar is withdrawn; the oracle gap stays as a figure to watch).

1. For every seed (default: the configured demo seed, 101 and 202) generates the demo data (with the generator's
   ground-truth probabilities) under its own GOSALES_HOME (`<home-root>/seed<N>`, default `.gosales/quality/seed<N>`)
   and materializes the whole graph with the same runner as `gosales materialize` (ephemeral Dagster instance).
   `--reuse` re-reads the homes already built instead.
2. Per seed, over every forward partition (division × cutoff) whose window has closed and whose model was published
   (its `icp_scores` joined with the `labels` of the closed window and the `peer_scores` of the same customers; the
   very rows `forward_validation` validates, checked against its table):
   (a) pooled over divisions: engine − best peer on forward AUC and on lift@10 %, the best peer of a partition being
       the one the engine's own cross-validation chose (`peer_scores.best_peer`: no hindsight), and for information
       the one best on the forward rows (hindsight). Pooled = the positive-weighted mean of the per-partition values.
       95 % paired bootstrap interval: in each of 2,000 draws every partition's customers are resampled with
       replacement, positives and negatives separately (each draw keeps its positive count, so the weights and
       both classes stay), seeded per partition; the engine and the peer are scored on the same draw.
       PASS when the interval is above 0.
   (b) per division (its forward partitions pooled the same way, the interval from the same draws): FAIL when the
       engine's AUC is below its best peer's by more than the interval's width (high − low).
   (c) calibration MAE ≤ 0.03 of the published probabilities: the bar is per division (its forward rows pooled);
       the MAE over every forward row is shown too.
   (d) list coverage: every division × cutoff whose model could be trained — its training cutoffs (C' + W' ≤ C)
       hold ≥ 20 labelled positives — has rows in `whitespace` at that cutoff, ranked by the model or by the
       labelled peer fallback (`score_source` `peer:<name>`); every one that does not is named.
   (e) the oracle gap, a figure to watch (not a bar): every trained model whose window has closed is scored on the
       labelled population at C and compared with the oracle, the generator's true probability of buying the
       division in the first month of the window; per division pooled, with a paired bootstrap interval.
   (f) ranking capture: capture@10 % of realized purchases (by count, and by the buyers' realized revenue) at every
       cutoff with known outcomes, of the listed order (`rank`) and of every other ordering: the `score_<ordering>`
       columns of `whitespace` when it has them (blend, p_icp, expected_value, legacy, ...), else the blend, `p_icp`,
       `p_icp_pct` and the legacy heuristic; the listed order minus each other with a paired bootstrap interval
       (buyers resampled); the `ranking_decision` table when the warehouse has one.
3. Writes one report (default docs/MODEL_QUALITY.md): the bar lines per seed (PASS / FAIL with the numbers), then the
   details for the default seed (the configured demo seed when it was run, else the first); and a JSON with every
   seed's numbers (default bench_results/model_quality.json). A `## ` section of the existing report that this
   script does not write (added by hand) is kept, after the generated ones; sections that earlier versions of the
   script generated are dropped.

    .venv/bin/python benchmarks/model_quality.py [--seeds 7,101,202] [--reuse] [--customers N]
        [--home-root .gosales/quality] [--out docs/MODEL_QUALITY.md] [--json bench_results/model_quality.json]

`--seed N` is `--seeds N`; `--home PATH` (one seed only) uses PATH as that seed's home instead of
`<home-root>/seed<N>`. While experimenting, pass `--out` and `--json` outside the repository so the committed report
is not overwritten.

Experiments: `--config PATH` merges a YAML over the default configuration (nested mappings are merged key by
key, anything else — lists included — replaces the default); use it with `--home-root` (or `--home`), `--out` and
`--json` outside the repository.

Model settings on the same data: `--retrain NAME=PATH` (repeatable; with `--reuse` on one materialized seed)
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
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import yaml
from dagster import DagsterInstance

from gosales_assets.core.calendar import window_end
from gosales_assets.core.capacity import capacity_count
from gosales_assets.core.metrics import calibration_mae, lift_at_k, roc_auc, top_count
from gosales_assets.core.modeling import load_model
from gosales_assets.core.peers import PEERS, peer_values
from gosales_assets.core.ranking_evaluation import legacy_heuristic
from gosales_assets.core.whitespace import UNIFORMITY_TOLERANCE
from gosales_assets.core.whitespace_inputs import whitespace_inputs
from gosales_assets.core.whitespace_signals import percentile_uniformity
from gosales_assets.definitions import build_definitions
from gosales_assets.demo_data import generate_demo_data
from gosales_assets.runner import materialize
from gosales_assets.settings import config_path, division_slug, load_settings, merge_config

ROOT = Path(__file__).resolve().parents[1]
MIN_POSITIVES = 50         # the withdrawn oracle bar of issue 4 (a figure to watch now)
AUC_GAP = 0.03
CAL_MAE_MAX = 0.03
CAPTURE_K = 10.0
BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
EXTRA_SEEDS = (101, 202)   # with the configured demo seed: the seeds the bar is judged on
MIN_LIST_POSITIVES = 20    # bar (d): a division × cutoff with this many training positives must have a list


# Static notes: what was measured while choosing the defaults. Every choice was made on the development seeds
# (101 and 202 at 3,000 customers, 303 at 10,000), never on the default seed 7.
DESIGN_NOTES = """## How the defaults were chosen (on the development seeds)

The defaults were chosen on the development seeds — 101 and 202 (3,000 customers) and 303 (10,000 customers) — by
retraining every forward model from the same `division_features` and comparing with the oracle; the default seed 7
was not looked at (101 and 202 are two of the three seeds the bars above are judged on: they are not held out). Figure of merit: the positive-weighted mean AUC gap over every division with a
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

## Why the oracle bar was out of reach at this size (development seeds)

Issue 4's bar (forward AUC within 0.03 of the oracle) is withdrawn (issue 14); what was measured while it stood:


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
  At the time none of these seemed worth 2.7–11× the time of `make demo`; since session 35 the four 2024
  quarter-ends with pools of six are the shipped defaults (about 2.3× the materialization, not 2.7×, after the
  production-scale work), because they resolve line (a) on every judged seed: "Line (a): more labelled history"
  below. A deployment with the real roster has 17–7,300 positives per division and is where the pool size matters
  (`models.training_cutoffs`, `models.training_positives`).
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

- Oracle tables: `model_auc` / `oracle_auc` are on the same rows; `auc_gap` = oracle − model; `gap_ci95`
  resamples the division's pooled rows ({reps} paired draws); `within_0.03` is the withdrawn bar of issue 4.
- Peer tables: `engine_auc` / `peer_auc` (and lift@10 %) are positive-weighted means over the forward partitions of
  per-partition values; the peer is the one chosen in cross-validation; `auc_ci95` / `lift_ci95` are the paired
  bootstrap intervals of the bars (customers resampled within partitions, positives and negatives separately).
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
                       "within_0.03": "n/a (< 50 positives)" if not enough else ("yes" if meets else "no")})
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


# ---- (a) (b) the engine beside its best peer: pooled paired bootstrap over the forward partitions ------------------
ENGINE = "engine"
METRICS = ("auc", "lift_at_10")


@dataclass
class Partition:
    """One forward partition: its rows' outcomes and every ordering's scores on them (the engine's calibrated
    probability, each peer's score with a missing value ranked last; None for a peer without scores), in
    customer_id order; `cv_best` is the peer the engine's cross-validation chose."""

    division: str
    cutoff: dt.date
    y: np.ndarray
    scores: dict[str, np.ndarray | None]
    cv_best: str
    basis: str | None = None
    point: dict[str, dict[str, float | None]] = field(default_factory=dict)  # ordering -> metric -> value

    def __post_init__(self):
        self.y = np.asarray(self.y).astype(np.int64)
        self.point = {name: metric_values(self.y, s) for name, s in self.scores.items()}

    @property
    def positives(self) -> int:
        return int(self.y.sum())

    def hindsight(self, metric: str) -> str | None:
        """The peer with the best forward value of `metric` on these rows (ties: the first name in sorted order)."""
        known = {p: self.point[p][metric] for p in PEERS if self.point.get(p, {}).get(metric) is not None}
        return max(sorted(known), key=lambda k: known[k]) if known else None


def metric_values(y: np.ndarray, score: np.ndarray | None) -> dict[str, float | None]:
    """AUC and lift@10 % of one ordering (None where undefined or without scores), as `core.metrics` computes them."""
    if score is None:
        return dict.fromkeys(METRICS)
    return {"auc": roc_auc(y, score), "lift_at_10": lift_at_k(y, score, 10.0)}


def stratified_draws(y: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """`reps` bootstrap resamples of the rows of `y` as an index matrix (reps × n): positives and negatives are drawn
    with replacement separately (so every draw has both classes and the same positive count), and each row of the
    matrix is sorted, so equal scores keep ranking in the original row order (customer_id), as on the full rows."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    idx = np.concatenate([pos[rng.integers(0, pos.size, (reps, pos.size))],
                          neg[rng.integers(0, neg.size, (reps, neg.size))]], axis=1)
    idx.sort(axis=1)
    return idx


def auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUC of every row of the matrices `y` (0/1) and `s` (Mann-Whitney with average ranks, as `roc_auc`)."""
    from scipy.stats import rankdata

    ranks = rankdata(s, axis=1, method="average")
    n1 = y.sum(axis=1).astype(np.float64)
    n0 = y.shape[1] - n1
    return ((ranks * y).sum(axis=1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def lift_rows(y: np.ndarray, s: np.ndarray, k_pct: float = 10.0) -> np.ndarray:
    """lift@k of every row (precision of the top ceil(n k / 100) by score, stable ties, over the base rate)."""
    n = y.shape[1]
    m = top_count(n, k_pct)
    top = np.argsort(-s, axis=1, kind="stable")[:, :m]
    return (np.take_along_axis(y, top, axis=1).sum(axis=1) / m) / (y.sum(axis=1) / n)


def bootstrap_partitions(parts: list[Partition], orderings: list[set[str]], reps: int = BOOTSTRAP,
                         seed: int = BOOTSTRAP_SEED) -> list[dict[str, dict[str, np.ndarray]]]:
    """Per partition, per ordering in `orderings[i]`, per metric: its value on each of `reps` paired draws (the same
    resampled rows for every ordering of the partition). Partition i draws from `default_rng([seed, i])`."""
    out = []
    for i, part in enumerate(parts):
        idx = stratified_draws(part.y, reps, np.random.default_rng([seed, i]))
        y = part.y[idx]
        boots = {}
        for name in sorted(orderings[i]):
            s = part.scores[name][idx]
            boots[name] = {"auc": auc_rows(y, s), "lift_at_10": lift_rows(y, s)}
        out.append(boots)
    return out


def pooled_difference(parts: list[Partition], boots: list[dict], metric: str, a: str, b: str,
                      members: list[int] | None = None) -> dict:
    """Positive-weighted mean over the partitions `members` (default: all) of metric(a) − metric(b), with the 95 %
    percentile interval of the same mean over the paired draws. `a` / `b` name an ordering, "cv_best" (the
    partition's peer chosen in cross-validation) or "hindsight" (its best peer on the forward rows for `metric`).
    Partitions where either side is undefined are left out (counted in `left_out`)."""
    members = list(range(len(parts))) if members is None else members

    def pick(part: Partition, side: str) -> str | None:
        if side == "cv_best":
            return part.cv_best
        if side == "hindsight":
            return part.hindsight(metric)
        return side

    used, w, va, vb, ba, bb = [], [], [], [], [], []
    for i in members:
        part = parts[i]
        na, nb = pick(part, a), pick(part, b)
        pa, pb = part.point.get(na, {}).get(metric), part.point.get(nb, {}).get(metric)
        if pa is None or pb is None or na not in boots[i] or nb not in boots[i]:
            continue
        used.append(i)
        w.append(part.positives)
        va.append(pa)
        vb.append(pb)
        ba.append(boots[i][na][metric])
        bb.append(boots[i][nb][metric])
    result = {"partitions": len(used), "left_out": len(members) - len(used),
              "positives": int(sum(w)), "a": None, "b": None, "diff": None, "low": None, "high": None}
    if not used:
        return result
    w_ = np.asarray(w, dtype=np.float64) / sum(w)
    mean_a, mean_b = float(np.dot(w_, va)), float(np.dot(w_, vb))
    draws = (np.stack(ba, axis=1) - np.stack(bb, axis=1)) @ w_
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return result | {"a": mean_a, "b": mean_b, "diff": mean_a - mean_b, "low": float(lo), "high": float(hi)}


def interval_verdict(diff: float | None, low: float | None) -> str:
    """Bar (a): PASS when the interval of engine − peer is above 0."""
    if diff is None or low is None:
        return "n/a"
    return "PASS" if low > 0 else "FAIL"


def division_rule(diff: float | None, low: float | None, high: float | None) -> str:
    """Bar (b): FAIL when the engine's AUC is below its best peer's by more than the interval's width (high − low)."""
    if diff is None or low is None or high is None:
        return "n/a"
    return "FAIL" if -diff > high - low else "PASS"


def engine_vs_peers(parts: list[Partition], reps: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict:
    """Bars (a) and (b) from the forward partitions: `pooled` (metric -> {"cv_best": ..., "hindsight": ...}, each a
    `pooled_difference`) and `divisions` (one row per division)."""
    needed = [{ENGINE, p.cv_best, *(h for h in (p.hindsight(m) for m in METRICS) if h)} for p in parts]
    needed = [{n for n in names if parts[i].scores.get(n) is not None} for i, names in enumerate(needed)]
    boots = bootstrap_partitions(parts, needed, reps, seed)
    pooled = {m: {side: pooled_difference(parts, boots, m, ENGINE, side) for side in ("cv_best", "hindsight")}
              for m in METRICS}
    rows = []
    for division in sorted({p.division for p in parts}):
        members = [i for i, p in enumerate(parts) if p.division == division]
        auc = pooled_difference(parts, boots, "auc", ENGINE, "cv_best", members)
        lift = pooled_difference(parts, boots, "lift_at_10", ENGINE, "cv_best", members)
        hind = pooled_difference(parts, boots, "auc", ENGINE, "hindsight", members)
        width = None if auc["low"] is None else auc["high"] - auc["low"]
        rows.append({
            "division": division, "partitions": len(members),
            "rows": int(sum(parts[i].y.size for i in members)), "positives": auc["positives"],
            "best_peers": ", ".join(sorted({parts[i].cv_best for i in members})),
            "engine_auc": auc["a"], "peer_auc": auc["b"], "auc_diff": auc["diff"],
            "auc_ci95": _ci(auc["low"], auc["high"]), "width": width,
            "rule": division_rule(auc["diff"], auc["low"], auc["high"]),
            "engine_lift_at_10": lift["a"], "peer_lift_at_10": lift["b"], "lift_diff": lift["diff"],
            "lift_ci95": _ci(lift["low"], lift["high"]),
            "auc_diff_vs_hindsight": hind["diff"], "hindsight_ci95": _ci(hind["low"], hind["high"]),
        })
    return {"pooled": pooled, "divisions": pl.DataFrame(rows, strict=False), "partitions": len(parts)}


def _ci(lo: float | None, hi: float | None) -> str:
    return "–" if lo is None or hi is None else f"[{lo:+.3f}, {hi:+.3f}]"


def forward_partitions(con, end_date: dt.date) -> tuple[list[Partition], list[str]]:
    """The published forward partitions of a run: `icp_scores` whose window (C, C + W] has closed, joined with the
    uncensored `labels` of C and the `peer_scores` of the same customers (as `forward_validation` joins them), in
    (division, cutoff) order; and warnings where these rows disagree with the `forward_validation` table."""
    tables = _tables(con)
    if not {"icp_scores", "labels", "peer_scores"} <= tables:
        return [], [f"warehouse lacks {sorted({'icp_scores', 'labels', 'peer_scores'} - tables)}: no forward rows"]
    keys = con.execute("select division, cutoff_date, max(prediction_window_months) from icp_scores "
                       "group by 1, 2 order by 1, 2").fetchall()
    peer_cols = ", ".join(f"{p}_score" for p in PEERS)
    parts, notes = [], []
    for division, cutoff, window in keys:
        if window_end(cutoff, int(window)) > end_date:
            continue
        frame = con.execute(
            f"select s.customer_id, s.icp_score, l.label, {peer_cols}, p.best_peer, p.best_peer_basis "
            "from icp_scores s join labels l on l.division = s.division and l.cutoff_date = s.cutoff_date "
            "and l.customer_id = s.customer_id and not l.censored "
            "left join peer_scores p on p.division = s.division and p.cutoff_date = s.cutoff_date "
            "and p.customer_id = s.customer_id "
            "where s.division = ? and s.cutoff_date = ? order by s.customer_id", [division, cutoff]).pl()
        y = frame.get_column("label").to_numpy().astype(np.int64)
        if frame.height == 0 or y.min() == y.max():
            notes.append(f"{division} {cutoff}: {frame.height} labelled rows, {int(y.sum())} positives: no AUC, "
                         "left out")
            continue
        best = frame.get_column("best_peer").drop_nulls()
        if best.len() == 0:
            notes.append(f"{division} {cutoff}: no peer_scores rows: left out")
            continue
        scores = {ENGINE: frame.get_column("icp_score").to_numpy().astype(np.float64),
                  **{p: peer_values(frame, p) for p in PEERS}}
        parts.append(Partition(division, cutoff, y, scores, best.item(0),
                               frame.get_column("best_peer_basis").drop_nulls().first()))
    if "forward_validation" in tables:  # the same rows and numbers the asset reported
        fv = {(d, c): (auc, n) for d, c, auc, n in con.execute(
            "select division, cutoff_date, auc, rows from forward_validation where status = 'validated'").fetchall()}
        ours = {(p.division, p.cutoff): p for p in parts}
        for key in sorted(set(fv) ^ set(ours)):
            notes.append(f"{key[0]} {key[1]}: {'validated by forward_validation' if key in fv else 'published'} "
                         f"but not {'here' if key in fv else 'validated by forward_validation'}")
        for key in sorted(set(fv) & set(ours)):
            auc, n = fv[key]
            p = ours[key]
            if n != p.y.size or auc is None or abs(float(auc) - p.point[ENGINE]["auc"]) > 1e-9:
                notes.append(f"{key[0]} {key[1]}: forward_validation has {n} rows / AUC {auc}, recomputed "
                             f"{p.y.size} / {p.point[ENGINE]['auc']:.4f}")
    return parts, notes


def partition_table(parts: list[Partition]) -> pl.DataFrame:
    """One row per forward partition: the engine, the peer chosen in CV and the hindsight-best peer, AUC and lift."""
    rows = []
    for p in parts:
        hind = p.hindsight("auc")
        rows.append({"division": p.division, "cutoff": str(p.cutoff), "rows": p.y.size, "positives": p.positives,
                     "engine_auc": p.point[ENGINE]["auc"], "best_peer (CV)": p.cv_best,
                     "peer_auc": p.point[p.cv_best]["auc"],
                     "engine_lift_at_10": p.point[ENGINE]["lift_at_10"],
                     "peer_lift_at_10": p.point[p.cv_best]["lift_at_10"],
                     "hindsight_peer": None if hind is None else f"{hind} ({p.point[hind]['auc']:.3f})"})
    return pl.DataFrame(rows, strict=False)


# ---- (c) calibration --------------------------------------------------------------------------------------------
def calibration_table(parts: list[Partition], n_bins: int) -> tuple[pl.DataFrame, float | None]:
    """Calibration MAE of the published probabilities per division (its forward rows pooled; the bar) and over every
    forward row (shown)."""
    rows = []
    for division in sorted({p.division for p in parts}):
        members = [p for p in parts if p.division == division]
        y = np.concatenate([p.y for p in members])
        s = np.concatenate([p.scores[ENGINE] for p in members])
        mae = calibration_mae(y, s, n_bins)
        rows.append({"division": division, "rows": y.size, "positives": int(y.sum()), "cal_mae": mae,
                     "bar": "n/a" if mae is None else ("PASS" if mae <= CAL_MAE_MAX else "FAIL")})
    pooled = (calibration_mae(np.concatenate([p.y for p in parts]),
                              np.concatenate([p.scores[ENGINE] for p in parts]), n_bins) if parts else None)
    return pl.DataFrame(rows, strict=False), pooled


# ---- (d) list coverage ------------------------------------------------------------------------------------------
def coverage_table(models: pl.DataFrame, lists: pl.DataFrame, min_positives: int = MIN_LIST_POSITIVES
                   ) -> pl.DataFrame:
    """Per division × cutoff of `models` (division, cutoff_date, status, training_positives: labelled positives in
    the training cutoffs C' + W' ≤ C, null without any), whether a model could be trained there (≥ `min_positives`)
    and whether `lists` (division, cutoff_date, score_source, rows: the `whitespace` rows) has its list: model rows,
    or peer fallback rows labelled `peer:<name>`. `covered` is null where no model could be trained (not judged)."""
    sources = (lists.filter(pl.col("rows") > 0)
               .group_by("division", "cutoff_date")
               .agg(pl.col("rows").filter(pl.col("score_source") == "model").sum().alias("model_rows"),
                    pl.col("rows").filter(pl.col("score_source").str.starts_with("peer:")).sum().alias("peer_rows"),
                    pl.col("score_source").filter(pl.col("score_source").str.starts_with("peer:")).first()
                    .alias("peer")))
    out = (models.select("division", "cutoff_date", "status", "training_positives")
           .join(sources, on=["division", "cutoff_date"], how="left")
           .with_columns(pl.col("model_rows").fill_null(0), pl.col("peer_rows").fill_null(0),
                         (pl.col("training_positives").fill_null(0) >= min_positives).alias("trainable")))
    listed = pl.when(pl.col("model_rows") > 0).then(pl.lit("model")).when(pl.col("peer_rows") > 0) \
        .then(pl.col("peer")).otherwise(pl.lit(None, dtype=pl.String))
    return (out.with_columns(listed.alias("list"))
            .with_columns(pl.when(pl.col("trainable")).then(pl.col("list").is_not_null())
                          .otherwise(pl.lit(None, dtype=pl.Boolean)).alias("covered"))
            .sort("division", "cutoff_date"))


def coverage(con) -> pl.DataFrame:
    """`coverage_table` of a run's warehouse (division_model rows, division_features positives, whitespace rows)."""
    tables = _tables(con)
    if "division_model" not in tables:
        return pl.DataFrame()
    registry = con.execute("select division, cutoff_date, status, training_cutoffs from division_model").pl()
    positives = []
    for row in registry.iter_rows(named=True):
        cutoffs = [c.strip() for c in (row["training_cutoffs"] or "").split(",") if c.strip()]
        n = None
        if cutoffs and "division_features" in tables:
            n = con.execute(f"select coalesce(sum(label), 0) from division_features where division = ? and "
                            f"cutoff_date in ({', '.join('?' * len(cutoffs))}) and label is not null",
                            [row["division"], *cutoffs]).fetchone()[0]
        positives.append(None if n is None else int(n))
    models = registry.with_columns(pl.Series("training_positives", positives, dtype=pl.Int64))
    if "whitespace" in tables:
        has_source = "score_source" in _columns(con, "whitespace")
        lists = con.execute("select division, cutoff_date, "
                            f"{'coalesce(score_source, ' if has_source else '('}'model') as score_source, "
                            "count(*) as rows from whitespace group by all").pl()
    else:
        lists = pl.DataFrame(schema={"division": pl.String, "cutoff_date": pl.Date, "score_source": pl.String,
                                     "rows": pl.Int64})
    return coverage_table(models, lists)


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def _columns(con, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute("select column_name, data_type from information_schema.columns "
                                            "where table_name = ?", [table]).fetchall()}


# ---- (f) ranking capture ----------------------------------------------------------------------------------------
LISTED = "listed"
NOT_ORDERINGS = {"score_source", "score_challenger"}  # score_* columns that are not an ordering of the list


def _top_buyers(frame: pl.DataFrame, by: list[str], descending: list[bool]) -> set[tuple[str, str]]:
    """Buyer pairs inside the top CAPTURE_K % of `frame` ordered by `by` (the order `capture_at_k` uses)."""
    ordered = frame.sort(by, descending=descending, nulls_last=True, maintain_order=True)
    top = ordered.head(capacity_count(ordered.height, CAPTURE_K))
    return set(top.filter(pl.col("bought_in_division") == 1).select("customer_id", "division").iter_rows())


def capture_difference(buyers: list, a: set, b: set, weights: dict | None = None, reps: int = BOOTSTRAP,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """capture(a) − capture(b) over `buyers` (by count, or weighted by `weights[buyer]`, e.g. realized revenue) and
    its 95 % paired bootstrap interval (buyers resampled with replacement; the ratio recomputed per draw)."""
    w = np.array([1.0 if weights is None else max(weights.get(k, 0.0), 0.0) for k in buyers])
    d = np.array([(k in a) - (k in b) for k in buyers], dtype=np.float64) * w
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), (reps, len(d)))
    totals = w[idx].sum(axis=1)
    boots = np.where(totals > 0, d[idx].sum(axis=1) / np.where(totals > 0, totals, 1.0), 0.0)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(d.sum() / w.sum()) if w.sum() > 0 else 0.0, float(lo), float(hi)


def ordering_columns(schema: dict[str, str]) -> dict[str, str]:
    """Orderings a `whitespace` table carries as numeric `score_<ordering>` columns: ordering -> column."""
    numeric = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "INTEGER", "BIGINT")
    return {c.removeprefix("score_"): c for c, t in schema.items()
            if c.startswith("score_") and c not in NOT_ORDERINGS and t.upper().startswith(numeric)}


def ranking_capture(settings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """capture@10 per cutoff with known outcomes (model rows of `whitespace`): of the listed order (`rank`) and every
    other ordering — the `score_<ordering>` columns when the table has them, else the blend's `p_icp` and
    `p_icp_pct` alone — and the legacy heuristic (its `score_legacy` column, else recomputed on the same pairs);
    by count and by the buyers' realized revenue. Returns (captures, differences of the listed order to each other
    ordering with their intervals)."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    if "whitespace" not in _tables(con):
        return pl.DataFrame(), pl.DataFrame()
    schema = _columns(con, "whitespace")
    columns = ordering_columns(schema)
    model_only = "coalesce(score_source, 'model') = 'model'" if "score_source" in schema else "true"
    dim = con.execute("select * from dim_customer").pl()
    rows, diffs = [], []
    for (cutoff,) in con.execute("select distinct cutoff_date from whitespace order by 1").fetchall():
        # Model rows only: peer-ordered fallback rows (held/skipped divisions) are not judged by the ranking metrics.
        ranked = con.execute(f"select * from whitespace where cutoff_date = ? and {model_only} order by rank",
                             [cutoff]).pl()
        if ranked.get_column("bought_in_division").drop_nulls().len() == 0:
            continue
        buyers = sorted(ranked.filter(pl.col("bought_in_division") == 1).select("customer_id", "division").iter_rows())
        if not buyers:
            continue
        tops = {LISTED: _top_buyers(ranked, ["rank"], [False])}
        by_score = columns if any(n in columns for n in ("blend", "p_icp")) else \
            {"p_icp_only": "p_icp", "p_icp_pct_only": "p_icp_pct", **columns}
        for name, col in by_score.items():
            if ranked.get_column(col).null_count() < ranked.height:
                tops[name] = _top_buyers(ranked, [col, "customer_id", "division"], [True, False, False])
        if "legacy" not in tops:
            fact = con.execute("select * from fact_transactions where invoice_date <= ?", [cutoff]).pl()
            inputs = whitespace_inputs(fact, dim, cutoff, settings.whitespace.ownership_lookback_months)
            legacy = legacy_heuristic(ranked.select("customer_id", "division", "bought_in_division"),
                                      inputs.customer_revenue, inputs.recency)
            tops["legacy"] = _top_buyers(legacy, ["legacy_score", "customer_id", "division"], [True, False, False])
        cap = {k: len(v) / len(buyers) for k, v in tops.items()}
        # What each buyer spent in the division over the window (net of returns, from `labels`).
        spent = dict(((c, d), float(r or 0.0)) for c, d, r in con.execute(
            "select customer_id, division, net_revenue_window from labels where cutoff_date = ? and label = 1 "
            "and not censored", [cutoff]).fetchall())
        total = sum(max(spent.get(k, 0.0), 0.0) for k in buyers)
        revenue = {k: (sum(max(spent.get(b, 0.0), 0.0) for b in v) / total if total > 0 else None)
                   for k, v in tops.items()}
        _check_recorded(settings, cutoff, cap)
        listed_is = ({"listed_is": ", ".join(sorted(ranked.get_column("ordering").drop_nulls().unique().to_list()))}
                     if "ordering" in ranked.columns else {})  # the champion the list follows, where it says so
        rows.append({"cutoff": str(cutoff), "pairs": ranked.height, "buyers": len(buyers), **listed_is,
                     **{f"capture_{k}": v for k, v in cap.items()}, **{f"revenue_{k}": v for k, v in revenue.items()}})
        for other in tops:
            if other == LISTED:
                continue
            d, lo, hi = capture_difference(buyers, tops[LISTED], tops[other])
            dr, lor, hir = capture_difference(buyers, tops[LISTED], tops[other], spent) if total > 0 else (None,) * 3
            diffs.append({"cutoff": str(cutoff), "buyers": len(buyers), "listed_minus": other,
                          "capture_diff": d, "capture_ci95": _ci(lo, hi),
                          "revenue_diff": dr, "revenue_ci95": _ci(lor, hir)})
    return pl.DataFrame(rows, strict=False), pl.DataFrame(diffs, strict=False)


def _check_recorded(settings, cutoff, cap: dict) -> None:
    """The whitespace asset's own capture figures must agree with this recomputation (where it recorded them)."""
    metrics_file = settings.artifacts_dir / "whitespace" / str(cutoff) / f"whitespace_metrics_{cutoff}.json"
    if not metrics_file.is_file():
        return
    recorded = json.loads(metrics_file.read_text()).get("capture") or {}
    for name, value in cap.items():
        want = recorded.get("capture_at_10" if name == LISTED else f"capture_at_10_{name}")
        if want is not None and abs(want - value) > 1e-9:
            print(f"warning: {cutoff} {name}: recomputed capture {value:.4f} != recorded {want:.4f}")


# The columns of `ranking_decision` shown (when it has them; else every scalar column), the reason last.
DECISION_COLUMNS = ("cutoff_date", "ordering", "role", "champion_before", "champion", "changed", "objective",
                    "windows_used", "capture_count", "capture_revenue", "diff_vs_champion", "ci_low", "ci_high",
                    "reason")


def ranking_decision(settings) -> pl.DataFrame | None:
    """The `ranking_decision` table (the champion ordering per cutoff and why) when the run has one, its scalar
    columns only, long text cut."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    if "ranking_decision" not in _tables(con):
        return None
    df = con.execute("select * from ranking_decision").pl()
    keep = [c for c, t in df.schema.items()
            if (t.is_numeric() or t in (pl.String, pl.Date, pl.Boolean)) and c not in ("run_id", "chart")]
    concise = [c for c in DECISION_COLUMNS if c in keep]
    df = df.select(concise if "champion" in concise else keep)
    if "cutoff_date" in df.columns:
        df = df.sort("cutoff_date", maintain_order=True)
    return df.with_columns(pl.col(pl.String).str.slice(0, 160))


def uniformity(settings) -> float | None:
    """Largest KS distance of `p_icp_pct` from U(0, 1) over every division and cutoff of the whitespace table
    (what the `percentile_uniformity` check reports per cutoff)."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    if "whitespace" not in _tables(con):
        return None
    model_only = ("coalesce(score_source, 'model') = 'model'" if "score_source" in _columns(con, "whitespace")
                  else "true")
    ws = con.execute(f"select cutoff_date, division, p_icp_pct from whitespace where {model_only}").pl()
    # A cutoff whose pairs all lack a percentile (only peer-ordered rows) has no deviation to report.
    deviations = (percentile_uniformity(part).get_column("max_deviation").max()
                  for _, part in ws.group_by("cutoff_date"))
    return max((float(d) for d in deviations if d is not None), default=None)


# ---- one seed: every bar line -----------------------------------------------------------------------------------
@dataclass
class SeedResult:
    seed: int
    customers: int
    home: Path
    oracle_pooled: pl.DataFrame
    oracle_per_cutoff: pl.DataFrame
    partitions: list[Partition]
    peers: dict
    calibration: pl.DataFrame
    calibration_pooled: float | None
    coverage: pl.DataFrame
    ranking: pl.DataFrame
    ranking_diffs: pl.DataFrame
    decision: pl.DataFrame | None
    ks_max: float | None
    notes: list[str]
    bars: dict[str, tuple[str, str]] = field(default_factory=dict)  # line -> (verdict, numbers)


BAR_LINES = {
    "a_auc": "(a) pooled forward AUC: engine − best peer (chosen in CV), interval above 0",
    "a_lift": "(a) pooled lift@10 %: engine − best peer (chosen in CV), interval above 0",
    "a_auc_hindsight": "(a, information) pooled AUC: engine − best peer in hindsight",
    "a_lift_hindsight": "(a, information) pooled lift@10 %: engine − best peer in hindsight",
    "b": "(b) per division: engine AUC not below its best peer's by more than the interval width",
    "c": f"(c) calibration MAE ≤ {CAL_MAE_MAX} per division (pooled over every forward row: shown)",
    "d": f"(d) a published list wherever a model could be trained (≥ {MIN_LIST_POSITIVES} training positives)",
    "e": "(e) oracle gap: positive-weighted mean over the divisions (a figure to watch, not a bar)",
    "f": "(f) ranking: the listed order beside the others, capture@10 % (information)",
}
JUDGED = ("a_auc", "a_lift", "b", "c", "d")


def bar_lines(r: SeedResult) -> dict[str, tuple[str, str]]:
    """Verdict and numbers of every bar line of one seed."""
    out: dict[str, tuple[str, str]] = {}
    fmt = {"auc": "{:+.3f}", "lift_at_10": "{:+.2f}"}
    for key, metric, side in (("a_auc", "auc", "cv_best"), ("a_lift", "lift_at_10", "cv_best"),
                              ("a_auc_hindsight", "auc", "hindsight"),
                              ("a_lift_hindsight", "lift_at_10", "hindsight")):
        res = r.peers["pooled"][metric][side] if r.peers else {"diff": None}
        if res["diff"] is None:
            out[key] = ("n/a", "no forward partition with a published model")
            continue
        f = fmt[metric]
        lo, hi = (f"{res['low']:+.3f}", f"{res['high']:+.3f}") if metric == "auc" else \
            (f"{res['low']:+.2f}", f"{res['high']:+.2f}")
        base = "{:.3f}" if metric == "auc" else "{:.2f}"
        text = (f"{f.format(res['diff'])} [{lo}, {hi}] (engine {base.format(res['a'])}, peer {base.format(res['b'])}; "
                f"{res['partitions']} partitions, {res['positives']} positives)")
        verdict = interval_verdict(res["diff"], res["low"])
        out[key] = (verdict if key in JUDGED else ("above 0" if verdict == "PASS" else "not above 0"), text)
    div = r.peers["divisions"] if r.peers else pl.DataFrame()
    judged = div.filter(pl.col("rule") != "n/a") if div.height else div
    if judged.height:
        failed = judged.filter(pl.col("rule") == "FAIL")
        worst = judged.sort("auc_diff").row(0, named=True)
        fails = ", ".join(f"{x['division']} {x['auc_diff']:+.3f}, width {x['width']:.3f}"
                          for x in failed.iter_rows(named=True))
        text = (f"{failed.height} of {judged.height} divisions fail" + (f" ({fails})" if failed.height else "")
                + f"; lowest {worst['division']} {worst['auc_diff']:+.3f} (width {worst['width']:.3f}); engine above "
                  f"its peer in {judged.filter(pl.col('auc_diff') > 0).height}")
        out["b"] = ("FAIL" if failed.height else "PASS", text)
    else:
        out["b"] = ("n/a", "no division with a published forward model")
    cal = r.calibration
    if cal.height and cal.get_column("cal_mae").drop_nulls().len():
        top = cal.sort("cal_mae", descending=True, nulls_last=True).row(0, named=True)
        over = cal.filter(pl.col("bar") == "FAIL")
        out["c"] = ("FAIL" if over.height else "PASS",
                    f"largest {top['cal_mae']:.3f} ({top['division']}), {over.height} of {cal.height} above "
                    f"{CAL_MAE_MAX}; all forward rows {_fmt(r.calibration_pooled)}")
    else:
        out["c"] = ("n/a", "no published forward rows")
    cov = r.coverage
    if cov.height:
        judged = cov.filter(pl.col("covered").is_not_null())
        missing = judged.filter(~pl.col("covered"))
        by_peer = judged.filter(pl.col("covered") & (pl.col("list") != "model")).height
        listed = judged.height - missing.height
        text = f"{listed} of {judged.height} listed ({listed - by_peer} by the model, {by_peer} by the peer fallback)"
        if missing.height:
            text += "; not listed: " + ", ".join(f"{x['division']} {x['cutoff_date']} ({x['status']})"
                                                 for x in missing.iter_rows(named=True))
        out["d"] = ("FAIL" if missing.height else ("PASS" if judged.height else "n/a"), text)
    else:
        out["d"] = ("n/a", "no division_model table")
    pooled = r.oracle_pooled
    if pooled.height and pooled.get_column("auc_gap").drop_nulls().len():
        s = weighted_summary(pooled)
        judged = pooled.filter(pl.col("positives") >= MIN_POSITIVES)
        text = f"{s['weighted_auc_gap']:.3f} over {s['divisions']} divisions ({s['positives']} positives)"
        if judged.height:
            text += "; ≥ 50 positives: " + ", ".join(f"{x['division']} {x['auc_gap']:.3f} {x['gap_ci95']}"
                                                     for x in judged.iter_rows(named=True))
        out["e"] = ("watch", text)
    else:
        out["e"] = ("n/a", "no forward model")
    rk, rd = r.ranking, r.ranking_diffs
    if rk.height and rd.height:
        others = rd.get_column("listed_minus").unique(maintain_order=True).to_list()
        wins = [f"{o} {rd.filter((pl.col('listed_minus') == o) & (pl.col('capture_diff') > 0)).height}"
                f"/{rd.filter(pl.col('listed_minus') == o).height}" for o in others]
        out["f"] = ("info", f"{rk.height} closed cutoffs; listed order above (by count): " + ", ".join(wins))
    else:
        out["f"] = ("n/a", "no cutoff with known outcomes and a ranked list")
    return out


def evaluate_seed(settings, seed: int, customers: int) -> SeedResult:
    """Every bar line of one built seed."""
    pooled, per_cutoff = evaluate(settings, settings.landing_dir / "ground_truth.parquet")
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    parts, notes = forward_partitions(con, settings.data.end_date)
    peers = engine_vs_peers(parts) if parts else {}
    cal, cal_pooled = calibration_table(parts, settings.models.calibration_bins)
    cov = coverage(con)
    con.close()
    ranking, diffs = ranking_capture(settings)
    r = SeedResult(seed, customers, settings.home, pooled, per_cutoff, parts, peers, cal, cal_pooled, cov, ranking,
                   diffs, ranking_decision(settings), uniformity(settings), notes)
    r.bars = bar_lines(r)
    return r


# ---- the report -------------------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if np.isnan(v) else f"{v:.3f}"
    return str(v)


def _md_table(df: pl.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * df.width]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines)


def overall(verdicts: list[str]) -> str:
    """A bar line over the seeds: FAIL when any seed fails, PASS when every seed passes, else n/a."""
    if "FAIL" in verdicts:
        return "FAIL"
    return "PASS" if verdicts and all(v == "PASS" for v in verdicts) else "n/a"


def summary_section(results: list[SeedResult]) -> str:
    seeds = [r.seed for r in results]
    head = "| bar line | " + " | ".join(f"seed {s}" for s in seeds) + " | all seeds |"
    lines = [head, "|" + "---|" * (len(seeds) + 2)]
    for key, label in BAR_LINES.items():
        cells = []
        for r in results:
            verdict, text = r.bars[key]
            cells.append(f"**{verdict}** {text}" if verdict in ("PASS", "FAIL") else f"{verdict}: {text}")
        total = overall([r.bars[key][0] for r in results]) if key in JUDGED else "–"
        lines.append(f"| {label} | " + " | ".join(c.replace("|", "/") for c in cells) +
                     f" | {'**' + total + '**' if total in ('PASS', 'FAIL') else total} |")
    passing = [k for k in JUDGED if overall([r.bars[k][0] for r in results]) == "PASS"]
    failing = [k for k in JUDGED if overall([r.bars[k][0] for r in results]) == "FAIL"]
    names = {"a_auc": "(a) AUC", "a_lift": "(a) lift@10 %", "b": "(b)", "c": "(c)", "d": "(d)"}

    def where(k):
        return ", ".join(f"seed {r.seed}" for r in results if r.bars[k][0] == "FAIL")

    plain = (f"**Passing on every seed:** {', '.join(names[k] for k in passing) or 'none'}. "
             f"**Failing:** {'; '.join(f'{names[k]} on {where(k)}' for k in failing) or 'none'}.")
    undecided = [k for k in JUDGED if k not in passing and k not in failing]
    if undecided:
        plain += f" **Not judgeable:** {', '.join(names[k] for k in undecided)}."
    return "\n".join(lines) + "\n\n" + plain


def render(results: list[SeedResult], detail: SeedResult, config_note: str) -> str:
    seeds = ", ".join(str(r.seed) for r in results)
    d = detail
    peers = d.peers
    parts_table = partition_table(d.partitions)
    cov = d.coverage
    judged = cov.filter(pl.col("covered").is_not_null()).height if cov.height else 0
    not_listed = "; ".join(f"seed {r.seed}: {x['division']} {x['cutoff_date']} ({x['status']})" for r in results
                           if r.coverage.height for x in r.coverage.filter(pl.col("covered").not_())
                           .iter_rows(named=True)) or "none"
    rk, rd = d.ranking, d.ranking_diffs
    no_ranking = "_no cutoff with realized outcomes and a ranked list_"
    rk_count = _md_table(rk.select("cutoff", "pairs", "buyers", pl.col("^listed_is$"), pl.col("^capture_.*$").name.map(
        lambda c: c.removeprefix("capture_")))) if rk.height else no_ranking
    rk_revenue = _md_table(rk.select("cutoff", "buyers", pl.col("^revenue_.*$").name.map(
        lambda c: c.removeprefix("revenue_")))) if rk.height else no_ranking
    decision = ("The engine's ranking decision (`ranking_decision`):\n\n" + _md_table(d.decision)
                if d.decision is not None and d.decision.height else "No `ranking_decision` table in this run.")
    notes = "\n".join(f"- seed {r.seed}: {n}" for r in results for n in r.notes)
    notes = f"\nNotes from the evaluation:\n\n{notes}\n" if notes else ""
    none_published = "_no forward partition with a published model_"
    coverage_md = _md_table(cov.with_columns(pl.col("cutoff_date").cast(pl.String))) if cov.height else \
        "_no division_model table_"
    per_cutoff = (_md_table(d.oracle_per_cutoff.sort("division", "cutoff")) if d.oracle_per_cutoff.height
                  else "_no forward cutoff with a model_")
    return f"""# Model quality

Produced by `make quality` (`benchmarks/model_quality.py`) on the default demo data: {d.customers:,} customers,
seeds {seeds}, {config_note}.
Forward evaluation: the scores published at cutoff C (by a model trained only on cutoffs C' with C' + W' ≤ C)
against what the customers bought in (C, C + W], once that window has closed. Model quality is judged against
what a sales-analytics team would use instead (issue 14): the simple peers of `peer_scores` — recency,
frequency, monetary and the RFM logistic regression — on the same rows. The oracle (the generator's true
probabilities) is no longer a bar; its gap stays below as a figure to watch. The details below the table are
seed {d.seed}'s; every seed's are in the script's JSON (default `bench_results/model_quality.json`).

## The bars (issue 14), per seed

{summary_section(results)}

How each line is computed (the forward partitions are every division × cutoff whose model was published and whose
window has closed: `icp_scores` joined with the uncensored `labels` of C and the `peer_scores` of the same
customers, the rows `forward_validation` validates):
- **(a)** per partition the engine's AUC and lift@10 % and those of its best peer **chosen by the engine's own
  cross-validation** (`peer_scores.best_peer`, out-of-fold AUC on the model's training rows: no hindsight), pooled
  as the mean weighted by the partition's forward positives; "in hindsight" takes per partition the peer with the
  best forward value of that metric (information only: choosing on the outcomes favours the peers). The interval
  is a paired bootstrap over the pooled rows: each of {BOOTSTRAP:,} draws resamples every partition's customers
  with replacement, positives and negatives separately (so each draw keeps every partition's positive count and
  weight), the engine and the peers scored on the same draw; partition i draws from
  `numpy.random.default_rng([{BOOTSTRAP_SEED}, i])` in (division, cutoff) order. 95 % percentile interval; PASS
  when it is above 0.
- **(b)** the same per division (its partitions pooled the same way, the interval from the same draws): FAIL a
  division whose engine AUC is below its best peer's by more than the interval's width (high − low).
- **(c)** calibration MAE of the published probabilities (10 equal-width bins, bin-count weighted): the bar is each
  division's MAE over its forward rows pooled; the MAE over every forward row of the seed is shown beside it.
- **(d)** a division × cutoff "could be trained" when its training cutoffs (C' + W' ≤ C, from its
  `division_model` row) hold at least {MIN_LIST_POSITIVES} labelled positives (`division_features`); it is listed
  when `whitespace` at C has its rows, ranked by the model (`score_source` model) or by the labelled peer fallback
  (`peer:<name>`).
- **(e)** and **(f)**: see their sections below.

## The engine beside its best peer, per division

Seed {d.seed}.

{_md_table(peers["divisions"]) if peers else none_published}

`auc_diff` = engine − the peer chosen in cross-validation (positive-weighted over the division's partitions);
`width` = high − low of its interval; `rule` = bar (b). `auc_diff_vs_hindsight` compares with each partition's best
peer on the forward rows (information).

## The engine beside the peers, per forward partition

Seed {d.seed}.

{_md_table(parts_table) if parts_table.height else none_published}

## Calibration per division

Seed {d.seed}.

{_md_table(d.calibration) if d.calibration.height else "_no published forward rows_"}

Over every forward row of the seed: {_fmt(d.calibration_pooled)}.

## List coverage

Seed {d.seed}.

{coverage_md}

`trainable` = at least {MIN_LIST_POSITIVES} labelled positives in the training cutoffs; `list` = what ranks the
division in `whitespace` at that cutoff (model, or the labelled `peer:<name>` fallback); `covered` is judged only
where a model could be trained ({judged} division × cutoffs on this seed). Not listed, on any seed: {not_listed}.

## The oracle gap per division (a figure to watch)

Seed {d.seed}. Issue 4's bar (model AUC within {AUC_GAP} of the oracle's for every division with ≥ {MIN_POSITIVES}
forward positives) is withdrawn (issue 14): at demo size its interval is wider than the tolerance. Every trained
model (promoted or held) whose window has closed is scored on the labelled population at C; the oracle ranks the
same customers by the generator's true probability of buying the division in the first month of the window.

{_md_table(d.oracle_pooled) if d.oracle_pooled.height else "_no forward model_"}

## Per division and cutoff

{per_cutoff}

## Whitespace ranking: capture of realized purchases

Seed {d.seed}. Share of all realized next-window purchases (model-ranked rows; peer fallback rows are not judged)
found in the top {CAPTURE_K:g} % of each cutoff's list, by ordering: `listed` is the order of the list itself
(`rank`, the champion); the others are the orderings the list carries as `score_<ordering>` columns (a list
without them: `p_icp` alone and its per-division percentile alone) and the legacy revenue × recency heuristic
(its `score_legacy` column, else recomputed on the same pairs).

{rk_count}

The same top lists weighted by what each buyer spent in the division over the window (net revenue from `labels`):

{rk_revenue}

The listed order minus each other ordering, by count and by revenue, with 95 % paired bootstrap intervals (buyers
resampled, {BOOTSTRAP} draws):

{_md_table(rd) if rd.height else "_none_"}

{decision}

`percentile_uniformity`: the largest KS distance of `p_icp_pct` from uniform over every division and cutoff is
{_fmt(d.ks_max)} (the check warns above {UNIFORMITY_TOLERANCE}).
{notes}
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


# Headings that earlier versions of this script generated: not hand-written, so not kept when the report is rewritten.
RETIRED_HEADINGS = {
    "## The two bars",
    "## Per division, pooled over forward cutoffs",
    "## Why bar 1 is out of reach at this size (development seeds)",
    "## How the defaults were chosen (not on this seed)",
}


def keep_hand_written(previous: str, generated: str) -> str:
    """The generated report followed by every `## ` section of the previous report that the generator does not
    write (sections added by hand, e.g. measurements made with --retrain), in their order: regenerating the report
    does not drop them. Sections an earlier version generated (`RETIRED_HEADINGS`) are dropped."""
    heads = {head for head, _ in _sections(generated)} | RETIRED_HEADINGS
    extra = [body.rstrip("\n") + "\n" for head, body in _sections(previous) if head not in heads]
    return generated if not extra else generated.rstrip("\n") + "\n\n" + "\n".join(extra)


# ---- building the seeds -----------------------------------------------------------------------------------------
def parse_seeds(text: str) -> list[int]:
    seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds wants distinct integers separated by commas, got {text!r}")
    return seeds


def build_seed(settings, cfg_file: Path, home: Path, seed: int, customers: int) -> None:
    """Generate the seed's demo data under `home` (emptied first) and materialize the whole graph."""
    started = time.time()
    shutil.rmtree(home, ignore_errors=True)
    generate_demo_data(settings.landing_dir, customers=customers, seed=seed, settings=settings)
    defs = build_definitions(settings, cfg_file)
    with DagsterInstance.ephemeral() as instance:
        outcomes = materialize(defs, instance, settings, log=lambda line: None)
    ok = sum(o.status in ("ok", "held") for o in outcomes)
    failed = [o for o in outcomes if o.status not in ("ok", "held")]
    print(f"seed {seed}: materialized {ok}/{len(outcomes)} runs in {time.time() - started:.0f}s under {home}",
          flush=True)
    for o in failed[:10]:
        print(f"  {o.status}: {o.job} {o.partition} {getattr(o, 'error', '') or ''}"[:300], flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=parse_seeds, default=None,
                    help=f"comma-separated demo seeds (default: the configured demo seed, {EXTRA_SEEDS[0]} and "
                    f"{EXTRA_SEEDS[1]})")
    ap.add_argument("--seed", type=int, default=None, help="one seed (the same as --seeds N)")
    ap.add_argument("--customers", type=int, default=None, help="roster size (default: demo.customers)")
    ap.add_argument("--home-root", type=Path, default=ROOT / ".gosales" / "quality",
                    help="each seed is built under <home-root>/seed<N>")
    ap.add_argument("--home", type=Path, default=None, help="the home of the one seed run (instead of the root's)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "MODEL_QUALITY.md")
    ap.add_argument("--reuse", action="store_true", help="evaluate the seeds' existing homes instead of building")
    ap.add_argument("--config", type=Path, default=None,
                    help="YAML merged over the default configuration (experiments; the report says so)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench_results" / "model_quality.json")
    ap.add_argument("--retrain", action="append", default=[], metavar="NAME=PATH",
                    help="retrain the forward models with PATH (YAML) merged over the run's configuration and compare "
                    "(repeatable, one seed; see the module docstring)")
    args = ap.parse_args(argv)
    if args.seed is not None and args.seeds is not None:
        ap.error("give --seed or --seeds, not both")

    # The default configuration, plus the legacy shadow list so the ranking can be compared with it.
    doc_cfg = yaml.safe_load(config_path().read_text())
    if args.config is not None:
        doc_cfg = merge_config(doc_cfg, yaml.safe_load(args.config.read_text()) or {})
    doc_cfg.setdefault("whitespace", {})["shadow_enabled"] = True
    default_seed = int((doc_cfg.get("seeds") or {}).get("demo", 7))
    seeds = args.seeds or ([args.seed] if args.seed is not None else [default_seed, *EXTRA_SEEDS])
    if args.home is not None and len(seeds) != 1:
        ap.error("--home names the home of one seed; with several use --home-root")
    if args.retrain and len(seeds) != 1:
        ap.error("--retrain works on one seed's run (--seed N --reuse)")
    homes = {s: args.home if args.home is not None else args.home_root / f"seed{s}" for s in seeds}
    results = []
    for seed in seeds:
        home = homes[seed]
        home.parent.mkdir(parents=True, exist_ok=True)
        cfg_file = home.parent / f"{home.name}_gosales.yaml"  # outside the home, which a build empties
        cfg_file.write_text(yaml.safe_dump(doc_cfg, sort_keys=False))
        settings = load_settings(cfg_file, home=home)
        customers = args.customers if args.customers is not None else settings.demo.customers
        if not args.reuse:
            build_seed(settings, cfg_file, home, seed, customers)
        elif not settings.warehouse_path.is_file():
            ap.error(f"--reuse: seed {seed} has no warehouse at {settings.warehouse_path} (build it without --reuse)")
        if args.retrain:
            return retrain_variants(argparse.Namespace(**{**vars(args), "home": home}), settings, doc_cfg)
        started = time.time()
        r = evaluate_seed(settings, seed, customers)
        r.home = home
        print(f"seed {seed}: evaluated in {time.time() - started:.0f}s", flush=True)
        for key, label in BAR_LINES.items():
            print(f"  {r.bars[key][0]:>11}  {label}: {r.bars[key][1]}", flush=True)
        results.append(r)

    detail = next((r for r in results if r.seed == default_seed), results[0])
    config_note = "default configuration (`gosales_assets/gosales.yaml`)" + (
        f" with `{args.config}` merged over it" if args.config is not None else "")
    doc = render(results, detail, config_note)
    if args.out.is_file():
        doc = keep_hand_written(args.out.read_text(), doc)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(doc)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"seeds": [_seed_json(r) for r in results], "detail_seed": detail.seed},
                                    indent=2, default=str))
    print(f"wrote {args.out} and {args.json}")
    return 0


def _seed_json(r: SeedResult) -> dict:
    return {
        "seed": r.seed, "customers": r.customers, "home": str(r.home),
        "bars": {k: {"line": BAR_LINES[k], "verdict": v, "numbers": t} for k, (v, t) in r.bars.items()},
        "pooled_vs_peers": r.peers.get("pooled") if r.peers else None,
        "divisions_vs_peers": r.peers["divisions"].to_dicts() if r.peers else [],
        "partitions": partition_table(r.partitions).to_dicts(),
        "calibration": r.calibration.to_dicts(), "calibration_all_rows": r.calibration_pooled,
        "coverage": r.coverage.to_dicts(),
        "oracle_pooled": r.oracle_pooled.to_dicts(), "oracle_per_cutoff": r.oracle_per_cutoff.to_dicts(),
        "ranking": r.ranking.to_dicts(), "ranking_differences": r.ranking_diffs.to_dicts(),
        "ranking_decision": r.decision.to_dicts() if r.decision is not None else None,
        "percentile_uniformity_max": r.ks_max, "notes": r.notes,
    }


if __name__ == "__main__":
    sys.exit(main())
