"""Plain-words next-best-action reasons for whitespace rows, and the content guard (pure polars).

Reasons are built ONLY from a row's signal values, weights and division names (the target division and
`top_affinity_division`): never from customer names, ids, reps or any customer attribute, so no personal
data can reach them. The guard (`check_reasons` / `guard_reasons`) is a second line of defence against a
configured list of forbidden tokens (e.g. a division name that happens to contain one).

How a reason is built (`nba_reason`), per row:

1. Each of the four signals is a *candidate phrase* when it is strong AND its effective weight is > 0
   (a signal whose weight was zeroed by coverage-aware weighting is never cited):

   | signal | strong when | phrase |
   |---|---|---|
   | p_icp | `p_icp_pct >= 0.80` | "high likelihood (top X%)", X = smallest of 1/2/5/10/20 >= (1 - pct) * 100 |
   | lift  | `lift_norm >= 0.50`, `top_affinity_division` known | "affinity from D" ("strong ..." when >= 0.75) |
   | als   | `als_norm >= 0.80` | "buying pattern similar to <division> customers" |
   | ev    | `EV_norm >= 0.80` | "high expected value" |

2. Candidates are ordered by weighted contribution (weight x value, ties: p_icp, lift, als, ev) and the
   strongest 1-2 are joined with " + " (first letter upper-cased).
3. When the EV weight is > 0 and EV > 0, the value context "; EV ~$23k" is appended.
4. No strong signal -> `FALLBACK_REASON`.
5. Anything longer than `max_chars` is cut at a word boundary and ends in "...".

Example: "High likelihood (top 5%) + strong affinity from Hardware; EV ~$23k".

A reason cites what moves the list's order (`ordering_reasons`): under the `blend` ordering the blend's effective
weights (the rule above); under `p_icp` only the likelihood; under `expected_value` the likelihood and the
expected value equally (with the EV suffix); under `legacy` (a shadow, champion only when configured) one fixed
sentence, `LEGACY_REASON`, since that order comes from the customer's revenue and recency, not from any signal.

Token rule of the guard (case-insensitive): a token made of letters (words separated by single spaces)
matches whole words only ("age" does not match "average" or "coverage"); a token ending in `*` matches a
word prefix ("pregnan*" matches "pregnancy"); any other token (e.g. "@") matches as a plain substring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import polars as pl

__all__ = [
    "FALLBACK_REASON",
    "SIGNALS",
    "STRONG_THRESHOLDS",
    "nba_reason",
    "ORDERING_REASON_WEIGHTS",
    "LEGACY_REASON",
    "ordering_reasons",
    "truncate_words",
    "format_money",
    "compile_forbidden",
    "check_reasons",
    "guard_reasons",
    "explanation_frame",
]

FALLBACK_REASON = "Emerging fit: moderate signals across likelihood and value"

# signal name -> (normalized value column, weight column)
SIGNALS: dict[str, tuple[str, str]] = {
    "p_icp": ("p_icp_pct", "w_p_icp"),
    "lift": ("lift_norm", "w_lift"),
    "als": ("als_norm", "w_als"),
    "ev": ("EV_norm", "w_ev"),
}
STRONG_THRESHOLDS: dict[str, float] = {"p_icp": 0.80, "lift": 0.50, "als": 0.80, "ev": 0.80}
VERY_STRONG_LIFT = 0.75
_TOP_BUCKETS = (1, 2, 5, 10, 20)
DEFAULT_WEIGHTS: dict[str, float] = {"p_icp": 0.60, "lift": 0.20, "als": 0.10, "ev": 0.10}
# The weights a reason cites under an ordering other than the blend (which cites its own effective weights).
ORDERING_REASON_WEIGHTS: dict[str, dict[str, float]] = {
    "p_icp": {"p_icp": 1.0, "lift": 0.0, "als": 0.0, "ev": 0.0},
    "expected_value": {"p_icp": 0.5, "lift": 0.0, "als": 0.0, "ev": 0.5},
}
LEGACY_REASON = "Recent, high-spending account (legacy order by total revenue and recency)"
_ELLIPSIS = "..."


# ---------------------------------------------------------------------------------------------------
# text helpers
# ---------------------------------------------------------------------------------------------------
def truncate_words(text: str, max_chars: int) -> str:
    """`text` if it fits, else cut at the last word boundary so that text + "..." <= max_chars."""
    if len(text) <= max_chars:
        return text
    room = max(max_chars - len(_ELLIPSIS), 0)
    cut = text[:room]
    if " " in cut and not text[room:room + 1].isspace():
        cut = cut[: cut.rfind(" ")]
    cut = cut.rstrip(" +;,:-")
    return (cut + _ELLIPSIS)[:max_chars]


def format_money(value: float) -> str:
    """Compact currency: $850, $23k, $1.2M (rounded half up; same text as the vectorized reasons)."""
    v = float(value)
    if not math.isfinite(v):
        return "$0"
    sign = "-" if v < 0 else ""
    v = abs(v)
    if v < 999.5:
        return f"{sign}${int(v + 0.5)}"
    if v < 999_500:
        return f"{sign}${int(v / 1_000 + 0.5)}k"
    tenths = int(v / 100_000 + 0.5)
    return f"{sign}${tenths // 10}.{tenths % 10}M"


def _money_expr(col: str) -> pl.Expr:
    v = pl.col(col).cast(pl.Float64).abs()
    sign = pl.when(pl.col(col) < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    small = pl.format("${}", (v + 0.5).floor().cast(pl.Int64))
    kilo = pl.format("${}k", (v / 1_000 + 0.5).floor().cast(pl.Int64))
    tenths = (v / 100_000 + 0.5).floor().cast(pl.Int64)
    mega = pl.format("${}.{}M", tenths // 10, tenths % 10)
    body = pl.when(v < 999.5).then(small).when(v < 999_500).then(kilo).otherwise(mega)
    return pl.concat_str([sign, body])


def _top_bucket_expr(pct_col: str) -> pl.Expr:
    share = (1.0 - pl.col(pct_col).cast(pl.Float64)) * 100.0 - 1e-9
    expr = pl.lit(_TOP_BUCKETS[-1])
    for b in reversed(_TOP_BUCKETS[:-1]):
        expr = pl.when(share <= b).then(pl.lit(b)).otherwise(expr)
    return expr


# ---------------------------------------------------------------------------------------------------
# reasons
# ---------------------------------------------------------------------------------------------------
def _weight_expr(frame: pl.DataFrame, signal: str, weights: dict[str, float] | None) -> pl.Expr:
    wcol = SIGNALS[signal][1]
    if wcol in frame.columns:
        return pl.col(wcol).cast(pl.Float64).fill_null(0.0)
    return pl.lit(float((weights or DEFAULT_WEIGHTS).get(signal, 0.0)))


def _value_expr(frame: pl.DataFrame, signal: str) -> pl.Expr:
    vcol = SIGNALS[signal][0]
    if vcol in frame.columns:
        return pl.col(vcol).cast(pl.Float64).fill_null(0.0)
    return pl.lit(0.0)


def _positions(contrib: dict[str, pl.Expr], eligible: dict[str, pl.Expr]) -> dict[str, pl.Expr]:
    """Per signal: how many ELIGIBLE signals beat it (higher contribution; ties: earlier in SIGNALS).
    The eligible signal with position 0 is the strongest, 1 the second, and so on."""
    names = list(contrib)
    out = {}
    for i, s in enumerate(names):
        beats = [
            (eligible[t] & ((contrib[t] > contrib[s]) | ((contrib[t] == contrib[s]) if j < i else pl.lit(False))))
            .cast(pl.Int32)
            for j, t in enumerate(names)
            if t != s
        ]
        out[s] = pl.sum_horizontal(beats)
    return out


def nba_reason(
    frame: pl.DataFrame,
    max_chars: int = 150,
    *,
    weights: dict[str, float] | None = None,
    fallback: str = FALLBACK_REASON,
) -> pl.Series:
    """One reason per row of `frame` (same order), as a String Series named `nba_reason`.

    Reads `division`, `p_icp_pct`, `lift_norm`, `top_affinity_division`, `als_norm`, `EV`, `EV_norm` and the
    effective weights `w_p_icp, w_lift, w_als, w_ev` (missing value columns count as 0; missing weight
    columns fall back to `weights`, default 0.6/0.2/0.1/0.1). Always <= max_chars.
    """
    if frame.height == 0:
        return pl.Series("nba_reason", [], dtype=pl.String)
    div = pl.col("division").cast(pl.String) if "division" in frame.columns else pl.lit(None, dtype=pl.String)
    aff = (
        pl.col("top_affinity_division").cast(pl.String)
        if "top_affinity_division" in frame.columns
        else pl.lit(None, dtype=pl.String)
    )
    val = {s: _value_expr(frame, s) for s in SIGNALS}
    w = {s: _weight_expr(frame, s, weights) for s in SIGNALS}
    strong = {s: (val[s] >= STRONG_THRESHOLDS[s]) & (w[s] > 0) for s in SIGNALS}
    strong["lift"] = strong["lift"] & aff.is_not_null()
    strong["als"] = strong["als"] & div.is_not_null()
    phrase = {
        "p_icp": pl.format("high likelihood (top {}%)", _top_bucket_expr(SIGNALS["p_icp"][0])
                           if SIGNALS["p_icp"][0] in frame.columns else pl.lit(20)),
        "lift": pl.concat_str(
            [pl.when(val["lift"] >= VERY_STRONG_LIFT)
             .then(pl.lit("strong affinity from "))
             .otherwise(pl.lit("affinity from ")),
             aff]),
        "als": pl.concat_str([pl.lit("buying pattern similar to "), div, pl.lit(" customers")]),
        "ev": pl.lit("high expected value"),
    }
    contrib = {s: w[s] * val[s] for s in SIGNALS}
    pos = _positions(contrib, strong)
    none = pl.lit(None, dtype=pl.String)

    def nth(k: int) -> pl.Expr:
        expr = none
        for s in reversed(list(SIGNALS)):
            expr = pl.when(strong[s] & (pos[s] == k)).then(phrase[s]).otherwise(expr)
        return expr

    ev_ok = "EV" in frame.columns
    ev_suffix = (
        pl.when((w["ev"] > 0) & (pl.col("EV").cast(pl.Float64).fill_null(0.0) > 0))
        .then(pl.concat_str([pl.lit("; EV ~"), _money_expr("EV")]))
        .otherwise(pl.lit(""))
        if ev_ok
        else pl.lit("")
    )
    out = (
        frame.lazy()
        .select(nth(0).alias("_a"), nth(1).alias("_b"), ev_suffix.alias("_ev"))
        .select(
            pl.when(pl.col("_a").is_null())
            .then(pl.lit(fallback))
            .otherwise(
                pl.concat_str([
                    pl.col("_a").str.slice(0, 1).str.to_uppercase(), pl.col("_a").str.slice(1),
                    pl.when(pl.col("_b").is_null()).then(pl.lit("")).otherwise(pl.lit(" + ") + pl.col("_b")),
                    pl.col("_ev"),
                ])
            )
            .alias("nba_reason")
        )
        .collect()
        .get_column("nba_reason")
    )  # fmt: skip
    too_long = out.str.len_chars() > max_chars
    if too_long.any():
        out = pl.Series(
            "nba_reason",
            [truncate_words(r, max_chars) if long else r for r, long in zip(out.to_list(), too_long.to_list())],
            dtype=pl.String,
        )
    return out.rename("nba_reason")


def ordering_reasons(frame: pl.DataFrame, ordering: str, max_chars: int = 150) -> pl.Series:
    """The `nba_reason` of each row of a list that follows `ordering` (module docstring): the blend's reasons from
    the frame's own weight columns; `p_icp` / `expected_value` from `ORDERING_REASON_WEIGHTS`; `legacy` the fixed
    `LEGACY_REASON`."""
    if ordering == "legacy":
        return pl.Series("nba_reason", [truncate_words(LEGACY_REASON, max_chars)] * frame.height, dtype=pl.String)
    weights = ORDERING_REASON_WEIGHTS.get(ordering)
    if weights is None:
        return nba_reason(frame, max_chars)
    return nba_reason(frame.drop([w for _, w in SIGNALS.values() if w in frame.columns]), max_chars, weights=weights)


# ---------------------------------------------------------------------------------------------------
# content guard
# ---------------------------------------------------------------------------------------------------
_WORDS = re.compile(r"^[^\W\d_]+(?: [^\W\d_]+)*$")
_NOT_LETTER_BEFORE = r"(?<![^\W\d_])"
_NOT_LETTER_AFTER = r"(?![^\W\d_])"


def compile_forbidden(tokens: Iterable[str]) -> list[tuple[str, re.Pattern[str]]]:
    """(token, compiled pattern) per non-empty token, following the module's token rule."""
    out: list[tuple[str, re.Pattern[str]]] = []
    for tok in tokens:
        t = str(tok).strip()
        if not t:
            continue
        if t.endswith("*") and len(t) > 1:
            pat = _NOT_LETTER_BEFORE + re.escape(t[:-1])
        elif _WORDS.match(t):
            pat = _NOT_LETTER_BEFORE + re.escape(t) + _NOT_LETTER_AFTER
        else:
            pat = re.escape(t)
        out.append((t, re.compile(pat, re.IGNORECASE)))
    return out


def _as_list(reasons: pl.Series | Sequence[str | None]) -> list[str | None]:
    return reasons.to_list() if isinstance(reasons, pl.Series) else list(reasons)


def check_reasons(
    reasons: pl.Series | Sequence[str | None], forbidden_tokens: Iterable[str], max_chars: int
) -> list[dict]:
    """Violations as JSON-able dicts: {"row", "kind": "token"|"length"|"empty", "token", "length"}.

    One dict per forbidden token found in a row, one for a row longer than `max_chars`, one for a
    null/blank reason. `row` is the 0-based position in `reasons`.
    """
    patterns = compile_forbidden(forbidden_tokens)
    values = (reasons if isinstance(reasons, pl.Series) else pl.Series(_as_list(reasons), dtype=pl.String)) \
        .cast(pl.String)
    # Reasons repeat a lot (the same phrases over a million rows of a list at 500,000 customers): each distinct text
    # is checked once, and only the rows of a text that breaks a rule are visited (usually none).
    found: dict[str | None, list[dict]] = {}
    for text in values.unique().to_list():
        if text is None or not str(text).strip():
            found[text] = [{"kind": "empty", "token": None, "length": 0}]
            continue
        hits = [{"kind": "token", "token": tok, "length": len(text)} for tok, pat in patterns if pat.search(text)]
        if len(text) > max_chars:
            hits.append({"kind": "length", "token": None, "length": len(text)})
        if hits:
            found[text] = hits
    if not found:
        return []
    bad = [t for t in found if t is not None]
    flagged = pl.DataFrame({"text": values}).with_row_index("row").filter(
        pl.col("text").is_in(pl.Series(bad, dtype=pl.String).implode())
        | (pl.col("text").is_null() if None in found else pl.lit(False)))
    return [{"row": row, **v} for row, text in flagged.iter_rows() for v in found[text]]


def guard_reasons(
    reasons: pl.Series | Sequence[str | None],
    forbidden_tokens: Iterable[str],
    max_chars: int,
    *,
    fallback: str = FALLBACK_REASON,
) -> tuple[pl.Series, list[dict]]:
    """Replace every violating reason with the fallback (cut to max_chars); return (reasons, violations).

    The fallback itself is checked too: if it violates the token list, ValueError (misconfiguration).
    """
    fb = truncate_words(fallback, max_chars)
    patterns = compile_forbidden(forbidden_tokens)
    bad_fb = [tok for tok, pat in patterns if pat.search(fb)]
    if bad_fb:
        raise ValueError(f"the fallback reason {fb!r} contains forbidden token(s) {bad_fb!r}")
    values = (reasons if isinstance(reasons, pl.Series) else pl.Series(_as_list(reasons), dtype=pl.String)) \
        .cast(pl.String).alias("nba_reason")
    violations = check_reasons(values, forbidden_tokens, max_chars)
    for v in violations:
        v["replaced_with_fallback"] = True
    bad_rows = sorted({v["row"] for v in violations})
    # A copy: the caller's Series is not changed.
    return (values.clone().scatter(bad_rows, fb) if bad_rows else values), violations


# ---------------------------------------------------------------------------------------------------
# expanded drivers
# ---------------------------------------------------------------------------------------------------
EXPLANATION_COLUMNS = [
    "rank", "division", "customer_id", "score",
    "p_icp", "p_icp_pct", "w_p_icp", "contrib_p_icp",
    "lift", "lift_norm", "w_lift", "contrib_lift", "top_affinity_division",
    "als_similarity", "als_norm", "w_als", "contrib_als",
    "EV", "EV_norm", "w_ev", "contrib_ev",
    "top_driver", "second_driver", "nba_reason",
]  # fmt: skip


def explanation_frame(ranked: pl.DataFrame) -> pl.DataFrame:
    """Expanded drivers per ranked row: each signal's value, weight and weighted contribution, and the
    names (`p_icp`, `lift`, `als`, `ev`) of the top two drivers by contribution (ties in that order;
    a driver is null when it contributes 0). Columns of `EXPLANATION_COLUMNS` the input lacks are left
    out; contributions and drivers are always computed (missing inputs count as 0). Input row order.

    The weights are those of the reasons of the row's `ordering` (when the frame has that column): the blend's own
    weight columns; `ORDERING_REASON_WEIGHTS` under `p_icp` / `expected_value`; 0 under `legacy` (no signal orders
    it). So the drivers shown are the ones `nba_reason` cites, whichever ordering the list follows.
    """
    if "ordering" in ranked.columns:
        ordering = pl.col("ordering")
        ranked = ranked.with_columns(
            pl.when(ordering == "legacy").then(0.0)
            .when(ordering == "p_icp").then(ORDERING_REASON_WEIGHTS["p_icp"][s])
            .when(ordering == "expected_value").then(ORDERING_REASON_WEIGHTS["expected_value"][s])
            .otherwise(_weight_expr(ranked, s, None)).alias(SIGNALS[s][1])
            for s in SIGNALS)
    contrib = {s: _weight_expr(ranked, s, None) * _value_expr(ranked, s) for s in SIGNALS}
    positive = {s: contrib[s] > 0 for s in SIGNALS}
    pos = _positions(contrib, positive)

    def nth(k: int) -> pl.Expr:
        expr = pl.lit(None, dtype=pl.String)
        for s in reversed(list(SIGNALS)):
            expr = pl.when(positive[s] & (pos[s] == k)).then(pl.lit(s)).otherwise(expr)
        return expr

    frame = ranked.with_columns(
        *[contrib[s].alias(f"contrib_{s}") for s in SIGNALS], nth(0).alias("top_driver"), nth(1).alias("second_driver")
    )
    return frame.select([c for c in EXPLANATION_COLUMNS if c in frame.columns])
