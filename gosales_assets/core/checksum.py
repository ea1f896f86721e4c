"""Deterministic content checksums of polars frames.

`frame_checksum` is what the leakage audits compare ("features are byte-identical when post-cutoff rows
change") and what asset metadata records, so it must be identical for identical content across runs and
processes, and independent of how the frame happens to be chunked in memory.

It hashes, in order: the schema (column names and dtypes), the row count, and polars' per-row hash
(`DataFrame.hash_rows`) with a fixed seed. `hash_rows` is stable for a given polars version, which is all
we need (checksums are compared within one environment; they are provenance, not long-term storage keys),
and it hashes equal floats equally (-0.0 as 0.0, every NaN payload as one NaN: a test holds it to that).
Rows are taken in the order given: callers sort their frames deterministically before hashing.
"""

from __future__ import annotations

import hashlib

import polars as pl

# One 64-bit hash per row: a changed row keeps its hash with probability 2^-64, so no audit ever mistakes a change for
# equality. (A second seed's pass and a normalisation of the floats cost ~0.7 s more per 500,000 x 300 frame, on the
# cutoff's critical path, for nothing: hash_rows already hashes equal floats equally.)
_SEED = 0


def frame_checksum(df: pl.DataFrame) -> str:
    """sha256 hex digest of the frame's schema and content (rows in the order given)."""
    h = hashlib.sha256()
    schema = ";".join(f"{name}:{dtype}" for name, dtype in df.schema.items())
    h.update(f"schema={schema}|rows={df.height}|".encode())
    if df.width == 0 or df.height == 0:
        return h.hexdigest()
    h.update(df.hash_rows(seed=_SEED).to_numpy().astype("<u8", copy=False).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# exact money aggregation
# ---------------------------------------------------------------------------------------------------
# Parallel float sums (polars / DuckDB group-bys) add partial sums in an order that depends on thread
# scheduling, so the last bits of a revenue total can differ between two runs on identical input, and a
# net of +x and -x can land on either side of zero. Money is therefore aggregated as exact integer cents
# and converted back to currency units (Float64) after aggregation: sums are then associative, results
# are bit-reproducible and `frame_checksum` of a feature table is stable across runs.
#
# The cents are Int128, not Int64: the star contract bounds a line at 10^12 units (10^14 cents,
# `core.star.MAX_LINE_AMOUNT`), and Int128 holds more than 10^24 such lines, so no sum, difference or small
# multiple of sums can wrap (Int64 wrapped negative after three lines of 4e16). An amount beyond Int128 (only
# possible when the star contract was bypassed) fails the cast loudly instead of wrapping. Polars has no Int128
# negation: write `0 - x`, not `-x`.
CENTS_PER_UNIT = 100
CENTS_DTYPE = pl.Int128


def to_cents(expr: pl.Expr) -> pl.Expr:
    """Currency amount (float, null -> 0) as exact Int128 cents, rounded to the nearest cent."""
    return (expr.cast(pl.Float64).fill_null(0.0) * CENTS_PER_UNIT).round(0).cast(CENTS_DTYPE)


def from_cents(expr: pl.Expr) -> pl.Expr:
    """Integer cents back to Float64 currency units."""
    return expr.cast(pl.Float64) / CENTS_PER_UNIT
