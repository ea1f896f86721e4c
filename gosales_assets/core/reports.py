"""Cross-run reports as plain functions."""

from __future__ import annotations

import re

import polars as pl

TRAINING_METRICS = ("auc", "pr_auc", "brier", "lift_at_10", "rev_lift_at_10", "cal_mae", "base_rate")
FORWARD_METRICS = ("auc", "pr_auc", "brier", "lift_at_10", "rev_lift_at_10", "cal_mae", "base_rate", "positives",
                   "rows", "flagged_segments")


def metrics_summary(models: pl.DataFrame, forward: pl.DataFrame | None) -> pl.DataFrame:
    """One row per division × cutoff of the model registry, with its verdict (`status`, `reason`) and the model that
    served the partition (`serving_model_version`, `serving_cutoff`: its own when promoted, the champion's when
    retained): training (out-of-fold) metrics of the candidate as `train_*`, forward metrics of the served scores as
    `fwd_*` (null until the window has closed and forward_validation ran), the gate result and the gap."""
    if models.height == 0:
        return pl.DataFrame(schema={"division": pl.String, "cutoff_date": pl.Date})
    # Rows written before the serving columns existed (absent or null): a promoted row serves itself.
    for name, own, dtype in (("serving_model_version", "model_version", pl.String),
                             ("serving_cutoff", "cutoff_date", pl.Date)):
        recorded = pl.col(name).cast(dtype) if name in models.columns else pl.lit(None, dtype=dtype)
        models = models.with_columns(pl.coalesce(recorded, pl.when(pl.col("status") == "promoted")
                                                 .then(pl.col(own).cast(dtype))).alias(name))
    base = models.select(
        "division", "cutoff_date", "status", "reason", "model_version", "serving_model_version", "serving_cutoff",
        "model_type", "calibration_method", "training_cutoffs",
        "train_rows", "train_positives", "gate_passed", "gate_detail",
        *[pl.col(m).alias(f"train_{m}") for m in TRAINING_METRICS],
    )
    if forward is not None and forward.height:
        fwd = forward.select("division", "cutoff_date", pl.col("model_version").alias("serving_model_version"),
                             *[pl.col(m).alias(f"fwd_{m}") for m in FORWARD_METRICS])
        # Forward results belong to the model that produced the scores (the serving version: the champion's when
        # retained), not a later retrain.
        base = base.join(fwd, on=["division", "cutoff_date", "serving_model_version"], how="left")
    else:
        base = base.with_columns([pl.lit(None, dtype=pl.Float64).alias(f"fwd_{m}") for m in FORWARD_METRICS])
    # The gap is one model's (its cross-validated vs forward AUC): null when the champion served a retained row.
    return base.with_columns(
        pl.when(pl.col("model_version") == pl.col("serving_model_version"))
        .then(pl.col("train_auc") - pl.col("fwd_auc")).alias("auc_train_minus_forward"),
    ).sort("division", "cutoff_date")


# The whitespace columns the top-accounts report reads (a cutoff's list has ~30 more: explanations, norms, capacity).
TOP_ACCOUNT_COLUMNS = ("customer_id", "customer_name", "industry", "region", "rep_id", "division", "score", "p_icp",
                       "EV", "nba_reason", "score_source")


def top_accounts(whitespace: pl.DataFrame, owned: pl.DataFrame, divisions: list[str], n: int = 100) -> pl.DataFrame:
    """The `n` best cross-sell accounts of a cutoff's ranked whitespace list, one row per customer
    (`best_accounts`, then `with_ownership`: a caller may read the ownership of those accounts alone in between).

    Accounts are ordered by their best opportunity's score, then the sum of their top-3 scores, then
    customer_id. Each row carries its ICP context (best and mean calibrated probability over its open
    divisions), its whitespace gaps (divisions not owned), and its three best opportunities with reasons.

    Peer-ordered opportunities (`score_source` `peer:<name>`: a division without a promoted model) come after an
    account's model-ranked ones, and an account whose opportunities are all peer-ordered comes after every account
    with a model-ranked one: a simple-peer percentile is no model score and must not outrank one.
    `best_score_source` labels what ordered the account's best opportunity; its probabilities are null when no
    model ranked it.
    """
    if whitespace.height == 0:
        return pl.DataFrame(schema={"account_rank": pl.Int64, "customer_id": pl.String})
    return with_ownership(best_accounts(whitespace, n), owned, divisions)


def best_accounts(whitespace: pl.DataFrame, n: int = 100) -> pl.DataFrame:
    """The `n` best accounts of a non-empty whitespace list in report order, without their ownership
    (`top_accounts`)."""
    source = pl.col("score_source") if "score_source" in whitespace.columns else pl.lit("model")
    ordered = (whitespace.with_columns(source.fill_null("model").alias("_source"))
               .with_columns((pl.col("_source") != "model").alias("_peer"))
               .sort(["customer_id", "_peer", "score", "division"], descending=[False, False, True, False]))
    per = ordered.group_by("customer_id", maintain_order=True).agg(
        pl.col("customer_name").first(),
        pl.col("industry").first(), pl.col("region").first(), pl.col("rep_id").first(),
        pl.col("score").first().alias("best_score"),
        pl.col("score").head(3).sum().alias("top3_score_sum"),
        pl.col("p_icp").max().alias("best_p_icp"),
        pl.col("p_icp").mean().alias("mean_p_icp"),
        pl.len().alias("open_opportunities"),
        pl.col("EV").head(3).sum().alias("top3_expected_value"),
        pl.col("division").head(3).str.join("; ").alias("top_divisions"),
        pl.col("nba_reason").first().alias("best_reason"),
        pl.col("_source").first().alias("best_score_source"),
        pl.col("_peer").first().alias("_peer_only"),
    )
    return (per.sort(["_peer_only", "best_score", "top3_score_sum", "customer_id"],
                     descending=[False, True, True, False])
            .drop("_peer_only").head(n))


def with_ownership(accounts: pl.DataFrame, owned: pl.DataFrame, divisions: list[str]) -> pl.DataFrame:
    """`best_accounts` with what each owns (`owned`: customer_id, division; rows of other customers are ignored), its
    whitespace gaps and its rank."""
    owned_count = owned.group_by("customer_id").agg(pl.col("division").sort().str.join("; ").alias("owned_divisions"),
                                                    pl.len().alias("n_owned"))
    out = (
        accounts.join(owned_count, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.col("n_owned").fill_null(0), pl.col("owned_divisions").fill_null(""))
        .with_columns((len(divisions) - pl.col("n_owned")).alias("whitespace_gaps"))
    )
    return out.with_row_index("account_rank", offset=1).with_columns(pl.col("account_rank").cast(pl.Int64))


def _p_buy_cell(row: dict) -> str:
    """The best calibrated probability, or — when no model ranked the account's best opportunity — what did."""
    source = row.get("best_score_source") or "model"
    if source != "model" or row.get("best_p_icp") is None:
        peer = source.split(":", 1)[1] if source.startswith("peer:") else source
        return f"n/a: no promoted model, ordered by the {peer} peer"
    return f"{row['best_p_icp']:.1%}"


# Markdown syntax a table cell must not start or break. `_` only at a word edge: inside a word (`Post_Processing`,
# `sales_log`) it cannot open or close emphasis, so it is left readable.
_MD_SPECIAL = re.compile(r"([\\`*\[\]|#~!]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def md_cell(value: object) -> str:
    """`value` as the text of one markdown table cell that renders as the literal text, whatever it holds.

    Line breaks (and other control characters) become spaces, so the row cannot end early or start a heading;
    `|` and the other markdown syntax characters are backslash-escaped, so the cell cannot split or turn into a
    link, image or emphasis; `&`, `<`, `>` and `"` become HTML entities, so no HTML (`<img onerror=…>`) passes
    through. The rendered text is the original text with its line breaks as spaces.
    """
    text = "".join(" " if (ch.isspace() or not ch.isprintable()) else ch for ch in str(value)).strip()
    text = "".join(_HTML.get(ch, ch) for ch in text)
    return _MD_SPECIAL.sub(r"\\\1", text)


def top_accounts_markdown(accounts: pl.DataFrame, cutoff, shown: int = 20) -> str:
    """A short readable summary of the top accounts (no personal data: company names and signals only).
    Every cell from the data goes through `md_cell`, so a customer name cannot break the table or inject
    markdown or HTML."""
    lines = [f"# Top cross-sell accounts — cutoff {md_cell(cutoff)}", "",
             f"{accounts.height} accounts ranked by their best opportunity's blended score "
             "(ICP likelihood, affinity, ALS similarity, expected value). A division without a promoted model is "
             "ordered by a simple peer instead (labelled; no probability), after every model-ranked account.", "",
             "| # | account | best opportunities | best P(buy) | gaps | reason |", "|---|---|---|---|---|---|"]
    for r in accounts.head(shown).iter_rows(named=True):
        cells = [r["account_rank"], r["customer_name"] or r["customer_id"], r["top_divisions"],
                 _p_buy_cell(r), r["whitespace_gaps"], r["best_reason"]]
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
