"""Small PNG charts for asset metadata (gains and calibration), rendered headless with matplotlib."""

from __future__ import annotations

import io
from functools import cache

import polars as pl

_FIGSIZE = (4.8, 3.2)
_DPI = 90


@cache
def _pyplot():
    """matplotlib, imported on first use: it costs ~0.3 s, and every run process loads the code location."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or CI
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # No timestamps or software tags in the file, so the same chart gives the same bytes.
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def gains_chart(gains: pl.DataFrame, title: str) -> bytes:
    """Cumulative capture by decile against the random baseline. Needs `decile`, `cumulative_capture`."""
    fig, ax = _pyplot().subplots(figsize=_FIGSIZE)
    deciles = [0, *gains.get_column("decile").to_list()]
    capture = [0.0, *gains.get_column("cumulative_capture").to_list()]
    ax.plot([d * 10 for d in deciles], capture, marker="o", label="model")
    ax.plot([0, 100], [0, 1], linestyle="--", color="grey", label="random")
    ax.set_xlabel("customers contacted (% by score)")
    ax.set_ylabel("share of buyers captured")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def calibration_chart(bins: pl.DataFrame, title: str) -> bytes:
    """Observed rate against mean predicted probability per bin. Needs `mean_predicted`, `observed`, `count`."""
    fig, ax = _pyplot().subplots(figsize=_FIGSIZE)
    b = bins.filter(pl.col("count") > 0)
    top = max(0.05, float(max(b.get_column("mean_predicted").max() or 0, b.get_column("observed").max() or 0)) * 1.1)
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.scatter(b.get_column("mean_predicted"), b.get_column("observed"),
               s=[max(10.0, min(200.0, c / 5)) for c in b.get_column("count").to_list()], label="bins")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)
