"""Small PNG charts for asset metadata (gains, calibration, the ranking decision), rendered headless with matplotlib."""

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


def ranking_decision_chart(captures: pl.DataFrame, decision) -> bytes:
    """Left: each ordering's capture (the objective) per window, the windows used shaded; right: each other
    ordering minus the champion before over those windows, with its interval. `decision`: a
    `core.ranking_decision.RankingDecision` (duck-typed: charts import nothing from the domain modules)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    col = decision.capture_column
    known = captures.filter(pl.col(col).is_not_null())
    windows = sorted(set(known.get_column("window_cutoff").to_list()))
    if windows:
        x = {w: i for i, w in enumerate(windows)}
        for o in known.get_column("ordering").unique(maintain_order=True).to_list():
            part = known.filter(pl.col("ordering") == o).sort("window_cutoff")
            bold = o == decision.champion
            left.plot([x[w] for w in part.get_column("window_cutoff").to_list()], part.get_column(col).to_list(),
                      marker="o", linewidth=2.4 if bold else 1.2, linestyle="-" if o != "legacy" else ":",
                      label=f"{o} (champion)" if bold else o)
        for w in decision.windows_used:
            left.axvspan(x[w] - 0.4, x[w] + 0.4, color="grey", alpha=0.12)
        left.set_xticks(range(len(windows)), [str(w) for w in windows], rotation=30, fontsize=7)
        left.legend(fontsize=7, loc="best")
    else:
        left.text(0.5, 0.5, "no closed window yet", ha="center", va="center", transform=left.transAxes)
    left.set_ylabel(f"capture@{decision.k_pct:g}% ({decision.objective})")
    left.set_title("closed windows (shaded: used)", fontsize=9)
    left.grid(alpha=0.3)
    names = list(decision.comparisons)
    if names:
        diffs = [decision.comparisons[o]["diff"] for o in names]
        lo = [decision.comparisons[o]["diff"] - decision.comparisons[o]["ci_low"] for o in names]
        hi = [decision.comparisons[o]["ci_high"] - decision.comparisons[o]["diff"] for o in names]
        right.errorbar(diffs, range(len(names)), xerr=[lo, hi], fmt="o", capsize=4)
        right.set_yticks(range(len(names)), names, fontsize=8)
        right.axvline(0.0, color="grey", linestyle="--")
    else:
        right.text(0.5, 0.5, "nothing to compare", ha="center", va="center", transform=right.transAxes)
    right.set_xlabel(f"minus {decision.champion_before} (mean over windows)")
    right.set_title(f"{decision.cutoff}: {'changed to' if decision.changed else 'kept'} {decision.champion} "
                    f"({len(decision.windows_used)} of {decision.windows_required} windows)", fontsize=9)
    right.grid(alpha=0.3)
    return _png(fig)
