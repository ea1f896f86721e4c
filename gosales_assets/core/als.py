"""Implicit-feedback ALS embeddings of customers and SKUs as of a cutoff (pure numpy/polars).

The interaction matrix is customer x SKU over lines dated <= C: a cell is present when the customer's
net revenue on that SKU up to C is > 0, with confidence c = 1 + alpha * log1p(net_revenue / 1000)
(`implicit` reads the matrix values as the confidence C_ui directly, so its own `alpha` stays 1).

Determinism: customers and SKUs are sorted, the initial factors come from `seed`, `implicit`'s CPU solver
runs with one thread and BLAS is limited to one thread during the fit, factors are float64. Two fits on
the same pre-cutoff data give byte-identical factors. The GPU path is never used.

Raw factors are NOT comparable across fits (any orthogonal rotation of both factor sets fits equally
well), so models must consume only `similarity`: cosine(customer vector, division vector), where a
division vector is the revenue-weighted mean of its SKUs' item factors. Cosine similarity is invariant
under a common orthogonal rotation of customer and item factors.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from gosales_assets.core.checksum import from_cents, to_cents
from gosales_assets.settings import AlsSettings

__all__ = [
    "AlsResult",
    "fit_als",
    "cosine_similarity_matrix",
    "customer_division_similarity",
    "division_vector_matrix",
    "factor_columns",
    "interaction_matrix",
]

log = logging.getLogger(__name__)


def factor_columns(n: int) -> list[str]:
    return [f"als__f{i:02d}" for i in range(n)]


SIMILARITY_SCHEMA = {
    "customer_id": pl.String,
    "division": pl.String,
    "als_similarity": pl.Float64,
    "als_coverage": pl.Boolean,
}


@dataclass(frozen=True)
class AlsResult:
    """Outputs of one ALS fit. Only `similarity` is meant to feed models (rotation invariant)."""

    customer_factors: pl.DataFrame  # customer_id, als__f00.. (customers with >= 1 item), sorted
    item_factors: pl.DataFrame  # sku, division, weight, als__f00.. sorted by sku
    division_vectors: pl.DataFrame  # division, als__f00.. in configured division order
    similarity: pl.DataFrame  # customer_id, division, als_similarity, als_coverage
    n_customers: int
    n_items: int
    n_interactions: int


def cosine_similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of the rows of `a` (n x k) and `b` (m x k); 0 where a row has norm 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    an = np.divide(a, na[:, None], out=np.zeros_like(a), where=na[:, None] > 0)
    bn = np.divide(b, nb[:, None], out=np.zeros_like(b), where=nb[:, None] > 0)
    out = an @ bn.T
    return np.clip(out, -1.0, 1.0)


def division_vector_matrix(
    item_factors: np.ndarray, sku_division: list[str], sku_weight: np.ndarray, divisions: list[str]
) -> np.ndarray:
    """Row j = revenue-weighted mean of the item factors of division j's SKUs (zeros when none bought).

    Linear in the item factors, so a rotation of the items rotates the division vectors the same way.
    """
    item_factors = np.asarray(item_factors, dtype=np.float64)
    out = np.zeros((len(divisions), item_factors.shape[1]))
    sku_div = np.asarray(sku_division, dtype=object)
    weight = np.asarray(sku_weight, dtype=np.float64)
    for j, d in enumerate(divisions):
        mask = sku_div == d
        w = weight[mask]
        if mask.any() and w.sum() > 0:
            out[j] = (w[:, None] * item_factors[mask]).sum(axis=0) / w.sum()
    return out


def customer_division_similarity(
    customer_factors: np.ndarray,
    item_factors: np.ndarray,
    sku_division: list[str],
    sku_weight: np.ndarray,
    divisions: list[str],
) -> np.ndarray:
    """(customers x divisions) cosine similarity between customer vectors and division vectors.

    Invariant under any orthogonal rotation R applied to both factor sets (U R, V R).
    """
    div_vecs = division_vector_matrix(item_factors, sku_division, sku_weight, divisions)
    return cosine_similarity_matrix(customer_factors, div_vecs)


@dataclass(frozen=True)
class _Interactions:
    customers: list[str]  # sorted, customers with >= 1 item
    skus: list[str]  # sorted
    sku_division: list[str]
    sku_weight: np.ndarray  # total positive net revenue per SKU
    matrix: sp.csr_matrix  # confidences, customers x skus
    all_customers: list[str]  # sorted, every customer with a line <= C


def interaction_matrix(fact: pl.DataFrame, cutoff: dt.date, alpha: float) -> _Interactions:
    """Customer x SKU confidence matrix from lines dated <= cutoff (sorted rows and columns)."""
    fact_c = fact.lazy().filter(pl.col("invoice_date") <= cutoff)  # leakage discipline: filter first
    all_customers = (
        fact_c.select(pl.col("customer_id").cast(pl.String).unique()).collect().to_series().sort().to_list()
    )
    net = (
        fact_c.group_by("customer_id", "sku")
        .agg(to_cents(pl.col("revenue")).sum().alias("net"))  # exact cents: bit-reproducible sums
        .filter(pl.col("net") > 0)
        .with_columns(from_cents(pl.col("net")).alias("net"))
        .collect()
    )
    sku_div = (
        fact_c.select(pl.col("sku").cast(pl.String), pl.col("division").cast(pl.String))
        .unique()
        .sort("sku", "division")
        .unique(subset="sku", keep="first", maintain_order=True)
        .collect()
    )
    customers = net.get_column("customer_id").unique().sort()
    skus = net.get_column("sku").unique().sort()
    cmap = customers.to_frame().with_row_index("ci")
    smap = skus.to_frame().with_row_index("si")
    cells = (
        net.join(cmap, on="customer_id", how="inner")
        .join(smap, on="sku", how="inner")
        .sort("ci", "si")
    )
    ci = cells.get_column("ci").to_numpy().astype(np.int64)
    si = cells.get_column("si").to_numpy().astype(np.int64)
    value = cells.get_column("net").to_numpy().astype(np.float64)
    conf = 1.0 + alpha * np.log1p(value / 1000.0)
    matrix = sp.csr_matrix((conf, (ci, si)), shape=(customers.len(), skus.len()), dtype=np.float64)
    matrix.sort_indices()
    weight = np.bincount(si, weights=value, minlength=skus.len()).astype(np.float64)
    div_of = dict(sku_div.iter_rows())
    return _Interactions(
        customers=customers.to_list(),
        skus=skus.to_list(),
        sku_division=[div_of[s] for s in skus.to_list()],
        sku_weight=weight,
        matrix=matrix,
        all_customers=all_customers,
    )


def _fit_factors(matrix: sp.csr_matrix, params: AlsSettings, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from implicit.cpu.als import AlternatingLeastSquares  # CPU class directly: never the GPU path

    # Single-threaded BLAS (the shared products): deterministic and no implicit warning; the customers' and SKUs'
    # solves run on `num_threads`, each on its own, so the factors do not depend on it.
    with threadpool_limits(limits=1):
        model = AlternatingLeastSquares(
            factors=params.factors,
            regularization=params.regularization,
            alpha=1.0,  # the matrix already holds the confidences 1 + alpha * log1p(rev / 1000)
            dtype=np.float64,
            iterations=params.iterations,
            calculate_training_loss=False,
            num_threads=params.num_threads or os.cpu_count() or 1,
            random_state=np.random.default_rng(seed),
        )
        model.fit(matrix, show_progress=False)
    return np.asarray(model.user_factors, dtype=np.float64), np.asarray(model.item_factors, dtype=np.float64)


def fit_als(
    fact: pl.DataFrame, cutoff: dt.date, divisions: list[str], params: AlsSettings, seed: int
) -> AlsResult:
    """Fit ALS on pre-cutoff purchases and derive rotation-invariant customer x division similarities.

    `similarity` has one row per (customer with any line <= C, configured division), sorted by
    customer_id then configured division order. Customers with fewer than `params.min_customer_items`
    purchased SKUs get als_coverage = False and als_similarity = 0.
    """
    divisions = list(divisions)
    inter = interaction_matrix(fact, cutoff, params.alpha)
    cols = factor_columns(params.factors)
    n_c, n_s = inter.matrix.shape

    if n_c and n_s:
        user_f, item_f = _fit_factors(inter.matrix, params, seed)
    else:
        user_f = np.zeros((n_c, params.factors))
        item_f = np.zeros((n_s, params.factors))

    with threadpool_limits(limits=1):  # fixed BLAS blocking -> bit-reproducible products
        div_vecs = division_vector_matrix(item_f, inter.sku_division, inter.sku_weight, divisions)
        sim = cosine_similarity_matrix(user_f, div_vecs) if n_c else np.zeros((0, len(divisions)))

    n_items = np.diff(inter.matrix.indptr)
    covered = n_items >= params.min_customer_items
    sim[~covered, :] = 0.0

    # expand to every customer with any pre-cutoff line (those without items: not covered)
    all_c = inter.all_customers
    pos = {c: i for i, c in enumerate(inter.customers)}
    full_sim = np.zeros((len(all_c), len(divisions)))
    full_cov = np.zeros(len(all_c), dtype=bool)
    if all_c:
        idx = np.array([pos.get(c, -1) for c in all_c], dtype=np.int64)
        has = idx >= 0
        full_sim[has] = sim[idx[has]]
        full_cov[has] = covered[idx[has]]

    similarity = pl.DataFrame(
        {
            "customer_id": pl.Series(all_c, dtype=pl.String).gather(
                np.repeat(np.arange(len(all_c)), len(divisions))
            ),
            "division": pl.Series(divisions, dtype=pl.String).gather(
                np.tile(np.arange(len(divisions)), len(all_c))
            ),
            "als_similarity": full_sim.reshape(-1),
            "als_coverage": np.repeat(full_cov, len(divisions)),
        },
        schema=SIMILARITY_SCHEMA,
    )
    customer_factors = pl.concat(
        [pl.DataFrame({"customer_id": inter.customers}, schema={"customer_id": pl.String}),
         pl.DataFrame(user_f, schema=cols, orient="row")],
        how="horizontal",
    )
    item_factors = pl.concat(
        [
            pl.DataFrame(
                {"sku": inter.skus, "division": inter.sku_division, "weight": inter.sku_weight},
                schema={"sku": pl.String, "division": pl.String, "weight": pl.Float64},
            ),
            pl.DataFrame(item_f, schema=cols, orient="row"),
        ],
        how="horizontal",
    )
    division_vectors = pl.concat(
        [pl.DataFrame({"division": divisions}, schema={"division": pl.String}),
         pl.DataFrame(div_vecs, schema=cols, orient="row")],
        how="horizontal",
    )
    return AlsResult(
        customer_factors=customer_factors,
        item_factors=item_factors,
        division_vectors=division_vectors,
        similarity=similarity,
        n_customers=n_c,
        n_items=n_s,
        n_interactions=int(inter.matrix.nnz),
    )
