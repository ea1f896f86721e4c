"""Unit tests for core/als.py: determinism, rotation invariance, coverage, leakage."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

from gosales_assets.core.als import (
    cosine_similarity_matrix,
    customer_division_similarity,
    factor_columns,
    fit_als,
    interaction_matrix,
)
from gosales_assets.core.checksum import frame_checksum
from gosales_assets.settings import AlsSettings

C = dt.date(2024, 6, 30)
DIVS = ["Solidworks", "Success Plan", "Post_Processing", "Hardware", "CAMWorks"]  # CAMWorks: no SKU sold
SKUS = {f"{p}-{i}": d for p, d in (("SW", "Solidworks"), ("SP", "Success Plan"), ("PP", "Post_Processing"),
                                  ("HW", "Hardware")) for i in range(4)}  # fmt: skip
PARAMS = AlsSettings(factors=6, iterations=15, regularization=0.05, alpha=10.0, min_customer_items=1)


def synthetic_fact(n_customers: int = 400, seed: int = 0) -> pl.DataFrame:
    """Customers in 3 segments with distinct SKU tastes (structure ALS can recover), plus noise."""
    rng = np.random.default_rng(seed)
    skus = sorted(SKUS)
    taste = {
        0: [s for s in skus if s.startswith(("SW", "SP"))],
        1: [s for s in skus if s.startswith(("PP", "HW"))],
        2: [s for s in skus if s.startswith(("SW-0", "SW-1", "HW"))],
    }
    rows = []
    inv = 0
    for c in range(n_customers):
        seg = c % 3
        n_lines = int(rng.integers(2, 7))
        for _ in range(n_lines):
            pool = taste[seg] if rng.random() < 0.9 else skus
            sku = pool[int(rng.integers(0, len(pool)))]
            day = dt.date(2023, 1, 1) + dt.timedelta(days=int(rng.integers(0, 540)))
            rows.append((f"I{inv}", f"C{c:04d}", sku, SKUS[sku], float(rng.lognormal(7, 1)), day))
            inv += 1
    return pl.DataFrame(
        rows,
        schema={"invoice_id": pl.String, "customer_id": pl.String, "sku": pl.String, "division": pl.String,
                "revenue": pl.Float64, "invoice_date": pl.Date},  # fmt: skip
        orient="row",
    )


@pytest.fixture(scope="module")
def fact() -> pl.DataFrame:
    return synthetic_fact()


@pytest.fixture(scope="module")
def fit(fact):
    return fit_als(fact, C, DIVS, PARAMS, seed=42)


def test_output_frames(fit, fact):
    cols = factor_columns(PARAMS.factors)
    assert cols[0] == "als__f00" and cols[-1] == "als__f05"
    assert fit.customer_factors.columns == ["customer_id", *cols]
    assert all(fit.customer_factors.schema[c] == pl.Float64 for c in cols)
    assert fit.division_vectors.columns == ["division", *cols]
    assert fit.division_vectors.get_column("division").to_list() == DIVS
    assert fit.similarity.columns == ["customer_id", "division", "als_similarity", "als_coverage"]
    n_cust = fact.get_column("customer_id").n_unique()
    assert fit.similarity.height == n_cust * len(DIVS)
    ids = fit.customer_factors.get_column("customer_id").to_list()
    assert ids == sorted(ids)
    sims = fit.similarity.get_column("als_similarity")
    assert sims.min() >= -1.0 and sims.max() <= 1.0
    # a division nobody bought has a zero vector and zero similarity
    assert fit.similarity.filter(pl.col("division") == "CAMWorks").get_column("als_similarity").abs().max() == 0.0


def test_interaction_matrix_confidence(fact):
    inter = interaction_matrix(fact, C, alpha=10.0)
    assert inter.customers == sorted(inter.customers)
    assert inter.skus == sorted(inter.skus)
    net = (
        fact.filter(pl.col("invoice_date") <= C)
        .group_by("customer_id", "sku")
        .agg((pl.col("revenue") * 100).round(0).sum() / 100)  # money is aggregated in exact cents
        .filter((pl.col("customer_id") == inter.customers[0]))
        .sort("sku")
    )
    row = inter.matrix[0].toarray().ravel()
    for sku, rev in net.select("sku", "revenue").iter_rows():
        assert row[inter.skus.index(sku)] == pytest.approx(1 + 10.0 * np.log1p(rev / 1000.0))


def test_two_fits_are_byte_identical(fact, fit):
    again = fit_als(fact, C, DIVS, PARAMS, seed=42)
    assert frame_checksum(again.customer_factors) == frame_checksum(fit.customer_factors)
    assert frame_checksum(again.division_vectors) == frame_checksum(fit.division_vectors)
    assert frame_checksum(again.similarity) == frame_checksum(fit.similarity)
    # input row order does not matter either (sorted customers / SKUs)
    shuffled = fit_als(fact.sample(fraction=1.0, shuffle=True, seed=5), C, DIVS, PARAMS, seed=42)
    assert frame_checksum(shuffled.similarity) == frame_checksum(fit.similarity)
    # nor the fit's threads: the same bytes on one, two or three
    for threads in (1, 2, 3):
        threaded = fit_als(fact, C, DIVS, PARAMS.model_copy(update={"num_threads": threads}), seed=42)
        assert frame_checksum(threaded.customer_factors) == frame_checksum(fit.customer_factors), threads
        assert frame_checksum(threaded.similarity) == frame_checksum(fit.similarity), threads


def test_similarity_is_rotation_invariant():
    rng = np.random.default_rng(3)
    users = rng.normal(size=(50, 6))
    items = rng.normal(size=(16, 6))
    sku_div = [SKUS[s] for s in sorted(SKUS)]
    weight = rng.uniform(1, 100, size=16)
    rot, _ = np.linalg.qr(rng.normal(size=(6, 6)))  # random orthogonal matrix
    assert np.allclose(rot @ rot.T, np.eye(6))
    before = customer_division_similarity(users, items, sku_div, weight, DIVS)
    after = customer_division_similarity(users @ rot, items @ rot, sku_div, weight, DIVS)
    assert np.allclose(before, after, atol=1e-12)
    # the raw factors themselves are NOT invariant
    assert not np.allclose(users, users @ rot)
    # plain cosine helper: invariant, bounded, zero for zero vectors
    a, b = rng.normal(size=(5, 6)), rng.normal(size=(3, 6))
    assert np.allclose(cosine_similarity_matrix(a, b), cosine_similarity_matrix(a @ rot, b @ rot))
    assert np.all(cosine_similarity_matrix(np.zeros((2, 6)), b) == 0.0)


def test_different_seeds_agree_on_similarity_but_not_on_factors(fact, fit):
    other = fit_als(fact, C, DIVS, PARAMS, seed=7)
    f1 = fit.customer_factors.drop("customer_id").to_numpy()
    f2 = other.customer_factors.drop("customer_id").to_numpy()
    assert not np.allclose(f1, f2, atol=1e-3)  # raw factors are not comparable across fits
    covered = pl.col("als_coverage") & (pl.col("division") != "CAMWorks")
    s1 = fit.similarity.filter(covered).get_column("als_similarity").to_numpy()
    s2 = other.similarity.filter(covered).get_column("als_similarity").to_numpy()
    rho = spearmanr(s1, s2).statistic
    assert rho > 0.8, rho


def test_coverage_flag():
    fact = synthetic_fact(60, seed=1)
    extra = pl.DataFrame(
        {
            "invoice_id": ["x1", "x2", "x3", "x4", "x5"],
            "customer_id": ["ONE", "RET", "RET", "LATE", "ONE"],
            "sku": ["SW-0", "SP-1", "SP-1", "HW-2", "SW-0"],
            "division": ["Solidworks", "Success Plan", "Success Plan", "Hardware", "Solidworks"],
            "revenue": [500.0, 300.0, -300.0, 900.0, 100.0],
            "invoice_date": [dt.date(2024, 1, 1), dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 7, 1),
                             dt.date(2024, 3, 1)],  # fmt: skip
        }
    )
    fact = pl.concat([fact, extra])
    res = fit_als(fact, C, DIVS, PARAMS.model_copy(update={"min_customer_items": 2}), seed=42)
    sim = res.similarity
    one = sim.filter(pl.col("customer_id") == "ONE")  # one distinct SKU (twice) < 2 items
    assert one.get_column("als_coverage").to_list() == [False] * len(DIVS)
    assert one.get_column("als_similarity").to_list() == [0.0] * len(DIVS)
    ret = sim.filter(pl.col("customer_id") == "RET")  # fully returned: no item, still listed
    assert ret.height == len(DIVS) and not ret.get_column("als_coverage").any()
    assert "LATE" not in sim.get_column("customer_id").to_list()  # only bought after C
    multi = sim.filter(pl.col("als_coverage"))
    assert multi.height > 0 and multi.get_column("als_similarity").abs().max() > 0
    # with the default threshold of 1 item ONE is covered
    res1 = fit_als(fact, C, DIVS, PARAMS, seed=42)
    assert res1.similarity.filter(pl.col("customer_id") == "ONE").get_column("als_coverage").all()


def test_als_invariant_to_post_cutoff_rows(fact, fit):
    after = pl.col("invoice_date") > C
    late = pl.DataFrame(
        {
            "invoice_id": ["p1", "p2", "p3"],
            "customer_id": ["C0001", "NEW", "C0002"],
            "sku": ["NEW-SKU", "SW-0", "HW-1"],
            "division": ["CAMWorks", "Solidworks", "Hardware"],
            "revenue": [10_000.0, 50.0, 5000.0],
            "invoice_date": [C + dt.timedelta(days=1), dt.date(2025, 1, 1), dt.date(2024, 12, 31)],
        }
    )
    ref = frame_checksum(fit.similarity)
    variants = [
        pl.concat([fact, late]),
        pl.concat([fact, late]).with_columns(
            pl.when(after).then(pl.col("revenue") * 3).otherwise(pl.col("revenue")).alias("revenue")
        ),
        pl.concat([fact, late]).filter(~after),
    ]
    for v in variants:
        res = fit_als(v, C, DIVS, PARAMS, seed=42)
        assert frame_checksum(res.similarity) == ref
        assert frame_checksum(res.customer_factors) == frame_checksum(fit.customer_factors)
    at_c = late.with_columns(pl.lit(C).alias("invoice_date"))
    assert frame_checksum(fit_als(pl.concat([fact, at_c]), C, DIVS, PARAMS, seed=42).similarity) != ref


def test_no_purchases_gives_empty_frames():
    empty = synthetic_fact(10).filter(pl.col("invoice_date") > C)
    res = fit_als(empty, C, DIVS, PARAMS, seed=42)
    assert res.similarity.height == 0
    assert res.customer_factors.columns == ["customer_id", *factor_columns(PARAMS.factors)]
    assert res.division_vectors.height == len(DIVS)
