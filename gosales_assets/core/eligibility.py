"""Eligibility gates of the whitespace list, applied AFTER scoring (ranks are not recomputed: gaps show removed
rows): region and territory allow-lists, do-not-contact, open deals."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import polars as pl

from gosales_assets.core.pair_frames import PAIR_KEYS, require_columns

__all__ = ["ELIGIBILITY_RULES", "apply_eligibility"]

_logger = logging.getLogger(__name__)

ELIGIBILITY_RULES = ("region_allow", "territory_allow", "do_not_contact", "open_deals")


def apply_eligibility(
    ranked: pl.DataFrame,
    region_allow: Sequence[str] | None = None,
    territory_allow: Sequence[str] | None = None,
    do_not_contact: Iterable[str] | None = None,
    open_deals: pl.DataFrame | None = None,
    *,
    log: list[dict] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the rules in the fixed order `ELIGIBILITY_RULES`; a row is removed by the FIRST rule it
    fails. None = no rule; an empty allow-list allows nothing (literal). Null region/territory fail an
    active allow-list. `open_deals` (customer_id, division): a null division excludes all divisions of
    the customer.

    Returns (kept rows in the input order, counts) with counts = `order, rule, active, evaluated,
    removed, kept`. When `log` is a list, one dict per removed row and one summary per rule are appended.
    """
    kept = ranked
    counts = []
    for i, rule in enumerate(ELIGIBILITY_RULES, start=1):
        evaluated = kept.height
        mask: pl.Series | None = None
        if rule == "region_allow" and region_allow is not None:
            allow = pl.Series(list(region_allow), dtype=pl.String)
            mask = kept.select(~pl.col("region").cast(pl.String).is_in(allow.implode()).fill_null(False)).to_series()
        elif rule == "territory_allow" and territory_allow is not None:
            allow = pl.Series(list(territory_allow), dtype=pl.String)
            mask = kept.select(~pl.col("territory").cast(pl.String).is_in(allow.implode()).fill_null(False)).to_series()
        elif rule == "do_not_contact" and do_not_contact is not None:
            dnc = pl.Series(sorted({str(c) for c in do_not_contact}), dtype=pl.String)
            mask = kept.select(pl.col("customer_id").cast(pl.String).is_in(dnc.implode())).to_series()
        elif rule == "open_deals" and open_deals is not None:
            require_columns(open_deals, ["customer_id"], "open_deals")
            od = open_deals.select(
                pl.col("customer_id").cast(pl.String),
                (pl.col("division").cast(pl.String) if "division" in open_deals.columns
                 else pl.lit(None, dtype=pl.String)).alias("division"),
            )  # fmt: skip
            all_div = od.filter(pl.col("division").is_null()).get_column("customer_id").unique()
            pairs = od.filter(pl.col("division").is_not_null()).unique()
            idx = kept.select(PAIR_KEYS).with_row_index("_i")
            hit = idx.join(pairs, on=PAIR_KEYS, how="semi").get_column("_i")
            mask = kept.select(
                pl.col("customer_id").cast(pl.String).is_in(all_div.implode())
                | pl.int_range(pl.len(), dtype=pl.UInt32).is_in(hit.implode())
            ).to_series()
        active = mask is not None
        if mask is not None:
            removed_rows = kept.filter(mask)
            kept = kept.filter(~mask)
            if log is not None:
                cols = [c for c in ("customer_id", "division", "rank") if c in removed_rows.columns]
                for r in removed_rows.select(cols).iter_rows(named=True):
                    log.append({"event": "eligibility_removed", "rule": rule, **r})
            n_removed = removed_rows.height
        else:
            n_removed = 0
        counts.append({"order": i, "rule": rule, "active": active, "evaluated": evaluated,
                       "removed": n_removed, "kept": kept.height})  # fmt: skip
        if active:
            _logger.info("eligibility rule %s removed %d of %d rows", rule, n_removed, evaluated)
        if log is not None:
            log.append({"event": "eligibility", **counts[-1]})
    schema = {"order": pl.Int64, "rule": pl.String, "active": pl.Boolean, "evaluated": pl.Int64,
              "removed": pl.Int64, "kept": pl.Int64}  # fmt: skip
    return kept, pl.DataFrame(counts, schema=schema, orient="row")
