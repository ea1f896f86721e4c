"""Group `scoring`: `peer_scores`, the simple peers' ordering of every division × cutoff population.

The peers (recency, frequency, monetary, the RFM logistic regression) are what a sales team would use without the
engine. Their scores are an asset of their own so that forward validation reports them beside the engine on every
closed window, and whitespace can list a division whose model is held or skipped by its best peer. The partition
always materializes: the heuristics need no model; the RFM regression and the choice of the best peer come from the
model's `peers.json` when a model was trained (held or promoted), else the configured default peer is used and the
metadata says why. The scoring is `core.peers` (`peer_choice`, `peer_score_table`)."""

import json
from collections.abc import Generator
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, AssetSpec, MetadataValue, Output

from gosales_assets.assets.common import markdown_table
from gosales_assets.assets.labels import DIVISION_CUTOFF_EXPR
from gosales_assets.core.metrics import roc_auc
from gosales_assets.core.peers import PEERS, peer_choice, peer_score_table, peer_values
from gosales_assets.partitions import split_key
from gosales_assets.settings import Settings

PEERS_FILE = "peers.json"


def read_peer_record(model_row: dict) -> dict | None:
    """The `peers.json` beside the model file of a registry row (None when no model file is recorded or the file
    is absent)."""
    if not model_row.get("model_path"):
        return None
    path = Path(model_row["model_path"]).parent / PEERS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def peer_scores_spec() -> AssetSpec:
    """`peer_scores` of one division × cutoff, made by the op of the whole partition (`assets.division_cutoff`)
    from the model row and the frame made before it in the same step."""
    return AssetSpec(
        "peer_scores",
        group_name="scoring",
        metadata={"partition_expr": DIVISION_CUTOFF_EXPR},
        description="The simple peers' ordering of the partition's population (the labels population, as icp_scores "
        "scores it): per customer each peer's score and rank — recency (minus days since the last purchase), "
        "frequency (invoice lines in 12 months), monetary (revenue in 12 months), rfm_logistic (the RFM logistic "
        "regression refitted on the model's training rows) — and the best peer, chosen by out-of-fold AUC in the "
        "model's cross-validation (`best_peer_basis` cross_validation) or, where no model was trained, the "
        "configured `models.gates.default_peer` (`default`). Materializes whatever the model's verdict.",
    )


def peer_scores_outputs(context: AssetExecutionContext, cfg: Settings, division_model: pl.DataFrame,
                        division_features: pl.DataFrame) -> Generator[Output, None, pl.DataFrame]:
    """Score the partition's population by every peer; yield `peer_scores`; return the table (forward validation
    of the same step reads it)."""
    division, cutoff = split_key(context.partition_key)
    model_row = division_model.row(0, named=True) if division_model.height else {}
    choice = peer_choice(model_row, read_peer_record(model_row), cfg.models.gates.default_peer)
    table = peer_score_table(division_features, choice, division=division, cutoff=cutoff, model_row=model_row,
                             run_id=context.run.run_id)
    if choice.rfm is None:
        context.log.info(f"peer_scores {context.partition_key}: rfm_logistic is null — {choice.note}")
    known = table.filter(pl.col("bought_in_division").is_not_null())
    meta = {
        "dagster/row_count": table.height,
        "best_peer": choice.best_peer,
        "best_peer_basis": choice.basis,
        "note": choice.note,
        "model_status": model_row.get("status") or "missing",
        "rfm_logistic": "fitted on the model's training rows" if choice.rfm is not None
        else f"null: {choice.note}",
        "labels_known": known.height > 0,
    }
    if known.height:  # outcomes in the window are known: how each peer orders them (informative only)
        y = known.get_column("bought_in_division").to_numpy().astype(int)
        rows = []
        for p in PEERS:
            s = peer_values(known, p)
            auc = roc_auc(y, s) if s is not None else None
            rows.append({"peer": p, "auc": None if auc is None else round(auc, 4)})
        meta["realized_auc"] = markdown_table(rows)
    if table.height:
        meta["top_10_by_best_peer"] = markdown_table(
            table.sort("best_peer_rank").head(10).select("best_peer_rank", "customer_id",
                                                         pl.col("best_peer_score").round(4)).to_dicts())
    yield Output(table, output_name="peer_scores",
                 metadata={k: (MetadataValue.null() if v is None else v) for k, v in meta.items()})
    return table

