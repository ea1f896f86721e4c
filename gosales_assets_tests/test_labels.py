"""Labels on a hand-made fixture: each mode, returns netting, denylist, censoring, auto-widening."""

import datetime as dt

import polars as pl
import pytest

from gosales_assets.core.labels import build_labels, customers_known_at, first_dates, positives_by_cutoff

D = dt.date
DIV = "Success Plan"
C = D(2024, 6, 30)
END = D(2025, 12, 31)


def fact_rows() -> pl.DataFrame:
    rows = [
        # customer, date, division, sku, revenue
        ("A", D(2024, 1, 10), "Solidworks", "SWX-STD", 5000.0),
        ("A", D(2024, 8, 1), DIV, "SP-STD", 500.0),            # positive
        ("B", D(2023, 3, 1), "Solidworks", "SWX-STD", 5000.0),
        ("B", D(2024, 9, 1), DIV, "SP-STD", 500.0),
        ("B", D(2024, 10, 1), DIV, "SP-STD", -500.0),          # fully returned in the window -> 0
        ("C", D(2023, 3, 1), "Solidworks", "SWX-STD", 5000.0),
        ("C", D(2024, 9, 1), DIV, "SP-FEE", 900.0),            # denylisted SKU -> 0
        ("D", D(2023, 5, 1), DIV, "SP-STD", 700.0),            # already owns -> renewal_like
        ("D", D(2024, 9, 1), DIV, "SP-STD", 700.0),
        ("E", D(2024, 7, 15), DIV, "SP-STD", 800.0),           # new logo buying in the window
        ("F", D(2023, 1, 1), "Hardware", "HW-PRN-FDM", 20000.0),
        ("F", D(2025, 1, 1), DIV, "SP-STD", 400.0),            # one day after the window
        ("G", D(2023, 1, 1), "Hardware", "HW-PRN-FDM", 20000.0),
        ("G", D(2024, 12, 31), DIV, "SP-STD", 400.0),          # last day of the window -> positive
        ("H", D(2023, 1, 1), "Hardware", "HW-PRN-FDM", 20000.0),
        ("H", C, DIV, "SP-STD", 400.0),                        # on the cutoff day: history, not label
    ]
    return pl.DataFrame(rows, schema={"customer_id": pl.String, "invoice_date": pl.Date, "division": pl.String,
                                      "sku": pl.String, "revenue": pl.Float64}, orient="row")


def dim() -> pl.DataFrame:
    ids = list("ABCDEFGHI") + ["J"]
    first = {"I": D(2024, 8, 1), "J": None}
    return pl.DataFrame({"customer_id": ids, "first_seen_date": [first.get(i, D(2020, 1, 1)) for i in ids]},
                        schema={"customer_id": pl.String, "first_seen_date": pl.Date})


def labels(**kw):
    args = dict(division=DIV, cutoff=C, window_months=6, data_end=END, sku_denylist=["SP-FEE"])
    known = customers_known_at(fact_rows(), dim(), kw.get("cutoff", C))
    return build_labels(fact_rows(), known, **(args | kw))


def as_dict(res, col="label"):
    return dict(res.frame.select("customer_id", col).iter_rows())


def test_expansion_mode_hand_computed():
    res = labels()
    assert as_dict(res) == {"A": 1, "B": 0, "C": 0, "F": 0, "G": 1}
    assert as_dict(res, "net_revenue_window") == {"A": 500.0, "B": 0.0, "C": 0.0, "F": 0.0, "G": 400.0}
    assert set(as_dict(res, "cohort").values()) == {"expansion"}
    assert (res.positives, res.frame.height, res.prevalence) == (2, 5, 0.4)
    assert res.window_months == 6 and not res.censored and not res.widened
    assert res.frame.get_column("cutoff_date").unique().to_list() == [C]


def test_all_mode_includes_owners_new_logos_and_unknown_first_seen():
    res = labels(mode="all")
    # I is first seen after C with no activity by C: not known at C. J has no first_seen date: known.
    assert as_dict(res) == {"A": 1, "B": 0, "C": 0, "D": 1, "E": 1, "F": 0, "G": 1, "H": 0, "J": 0}
    assert as_dict(res, "cohort") == {"A": "expansion", "B": "expansion", "C": "expansion", "D": "renewal_like",
                                      "E": "new_logo", "F": "expansion", "G": "expansion", "H": "renewal_like",
                                      "J": "new_logo"}


def test_min_net_revenue_threshold_applies_to_labels_and_ownership():
    # G's 400 in the window no longer qualifies; H's 400 before C no longer makes H an owner.
    assert as_dict(labels(min_net_revenue=450.0)) == {"A": 1, "B": 0, "C": 0, "F": 0, "G": 0, "H": 0}


def test_denylist_off_counts_the_fee():
    assert as_dict(labels(sku_denylist=[]))["C"] == 1


def test_a_line_without_sku_never_counts_with_or_without_a_denylist():
    # The star contract quarantines such lines; a fact given directly keeps the one rule: no SKU, no purchase.
    extra = pl.DataFrame([("C", D(2024, 9, 2), DIV, None, 300.0), ("A", D(2023, 2, 1), DIV, None, 50.0)],
                         schema=fact_rows().schema, orient="row")
    fact = pl.concat([fact_rows(), extra])
    known = customers_known_at(fact, dim(), C)
    for denylist, c_label in ((["SP-FEE"], 0), ([], 1)):
        res = build_labels(fact, known, division=DIV, cutoff=C, window_months=6, data_end=END, sku_denylist=denylist)
        # A's line without SKU before C does not make A an owner; C's in the window adds nothing to its 0 / 900.
        assert as_dict(res)["A"] == 1 and as_dict(res)["C"] == c_label
        assert as_dict(res, "net_revenue_window")["C"] == (0.0 if denylist else 900.0)
        counts = positives_by_cutoff(fact, dim(), division=DIV, cutoffs=[C], window_months=6, data_end=END,
                                     sku_denylist=denylist)
        assert counts == {C: res.positives}


def test_censored_window_gives_null_labels_not_zeros():
    res = labels(cutoff=D(2025, 9, 30))
    assert res.censored and res.positives is None and res.prevalence is None
    assert res.frame.get_column("label").null_count() == res.frame.height > 0
    assert res.frame.get_column("censored").all()


def test_window_exactly_at_data_end_is_not_censored():
    res = labels(cutoff=D(2025, 6, 30))  # (2025-06-30, 2025-12-31]
    assert not res.censored and res.positives == 0


def test_auto_widen_until_min_positives():
    res = labels(auto_widen_min_positives=3, auto_widen_max_months=12)
    assert res.window_months == 7 and res.widened and res.requested_window_months == 6
    assert as_dict(res)["F"] == 1 and res.positives == 3
    assert res.frame.get_column("window_months").unique().to_list() == [7]


def test_auto_widen_stops_at_max_and_at_data_end():
    res = labels(auto_widen_min_positives=99, auto_widen_max_months=9)
    assert res.window_months == 9
    res = labels(cutoff=D(2025, 3, 31), auto_widen_min_positives=99, auto_widen_max_months=12)
    assert res.window_months == 9  # 2025-03-31 + 9 months = data end


def test_post_window_rows_do_not_change_labels():
    base = labels().frame
    extra = pl.DataFrame([("A", D(2025, 2, 1), DIV, "SP-STD", -500.0), ("C", D(2025, 3, 1), DIV, "SP-STD", 900.0)],
                         schema=fact_rows().schema, orient="row")
    res = build_labels(pl.concat([fact_rows(), extra]), customers_known_at(fact_rows(), dim(), C), division=DIV,
                       cutoff=C, window_months=6, data_end=END, sku_denylist=["SP-FEE"])
    assert res.frame.equals(base)


def test_customers_known_at():
    known = customers_known_at(fact_rows(), dim(), C).get_column("customer_id").to_list()
    assert known == list("ABCDEFGH") + ["J"]


def test_bad_mode():
    with pytest.raises(ValueError, match="expansion"):
        labels(mode="new")


@pytest.mark.parametrize("mode", ["expansion", "all"])
@pytest.mark.parametrize("min_net", [0.0, 450.0])
def test_positives_by_cutoff_equal_build_labels_at_every_cutoff(mode, min_net):
    """The prevalence check recounts earlier cutoffs from the facts; it must count what the labels would."""
    cutoffs = [D(2023, 2, 28), D(2023, 12, 31), D(2024, 3, 31), C, D(2024, 7, 31), D(2025, 9, 30)]
    kw = dict(division=DIV, window_months=6, data_end=END, mode=mode, min_net_revenue=min_net,
              sku_denylist=["SP-FEE"])
    got = positives_by_cutoff(fact_rows(), dim(), cutoffs=cutoffs, **kw)
    want = {c: build_labels(fact_rows(), customers_known_at(fact_rows(), dim(), c), cutoff=c, **kw).positives
            for c in cutoffs}
    assert got == {c: n for c, n in want.items() if n is not None}   # censored (2025-09-30) left out
    assert D(2025, 9, 30) not in got and sum(got.values()) > 0


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.parametrize("mode", ["expansion", "all"])
def test_positives_by_cutoff_equal_build_labels_on_random_logs(seed, mode):
    """The same on a seeded random log: returns, a denylisted SKU, customers the customer table dates later than
    their first line, with no date, or without any line, and lines of customers the table lacks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = 4000
    start = D(2022, 1, 1)
    ids = [f"C{i:03d}" for i in rng.integers(0, 300, n)]
    fact = pl.DataFrame({
        "customer_id": ids,
        "invoice_date": [start + dt.timedelta(days=int(d)) for d in rng.integers(0, 1200, n)],
        "division": rng.choice([DIV, "Solidworks", "Hardware"], n, p=[0.3, 0.5, 0.2]).tolist(),
        "sku": rng.choice(["SP-STD", "SP-FEE", "SWX-STD"], n).tolist(),
        "revenue": np.round(rng.normal(300, 400, n), 2).tolist(),
    }, schema={"customer_id": pl.String, "invoice_date": pl.Date, "division": pl.String, "sku": pl.String,
               "revenue": pl.Float64})
    table_ids = [f"C{i:03d}" for i in range(40, 340)]  # C000–C039 only in the log, C300–C339 never bought
    firsts = [None if rng.random() < 0.1 else start + dt.timedelta(days=int(d)) for d in rng.integers(0, 1400, 300)]
    customers = pl.DataFrame({"customer_id": table_ids, "first_seen_date": firsts},
                             schema={"customer_id": pl.String, "first_seen_date": pl.Date})
    cutoffs = [D(2022, 6, 30), D(2022, 12, 31), D(2023, 3, 31), D(2023, 9, 30), D(2024, 1, 31)]
    for min_net in (0.0, 250.0):
        kw = dict(division=DIV, window_months=6, data_end=D(2025, 3, 31), mode=mode, min_net_revenue=min_net,
                  sku_denylist=["SP-FEE"])
        got = positives_by_cutoff(fact, customers, cutoffs=cutoffs, **kw)
        want = {c: build_labels(fact, customers_known_at(fact, customers, c), cutoff=c, **kw).positives
                for c in cutoffs}
        assert got == want and min(got.values()) > 0


@pytest.mark.parametrize("seed", [5, 17])
def test_first_dates_from_duckdb_give_the_same_labels_and_recounts(seed):
    """The labels asset hands build_labels and positives_by_cutoff the customers' first lines computed by DuckDB
    (FIRST_DATES_SQL) instead of letting them scan the lines: the same frames, the same recounts, the same dates as
    `first_dates` (a customer without a positive line has no first_active)."""
    import duckdb
    import numpy as np

    from gosales_assets.assets.labels import FIRST_DATES_SQL
    from gosales_assets.core.labels import FIRST_DATES_SCHEMA

    rng = np.random.default_rng(seed)
    n, start = 3000, D(2022, 1, 1)
    fact = pl.DataFrame({
        "customer_id": [f"C{i:03d}" for i in rng.integers(0, 250, n)],
        "invoice_date": [start + dt.timedelta(days=int(d)) for d in rng.integers(0, 1200, n)],
        "division": rng.choice([DIV, "Solidworks"], n).tolist(),
        "sku": rng.choice(["SP-STD", "SWX-STD"], n).tolist(),
        "revenue": np.round(rng.normal(100, 400, n), 2).tolist(),
    }, schema={"customer_id": pl.String, "invoice_date": pl.Date, "division": pl.String, "sku": pl.String,
               "revenue": pl.Float64})
    credits_only = pl.DataFrame({"customer_id": ["Z01", "Z01"], "invoice_date": [D(2022, 5, 1), D(2023, 2, 1)],
                                 "division": [DIV, DIV], "sku": ["SP-STD", "SP-STD"], "revenue": [-50.0, 0.0]},
                                schema=fact.schema)
    fact = pl.concat([fact, credits_only])
    horizon = D(2024, 12, 31)
    con = duckdb.connect()
    con.register("fact_transactions", fact.to_arrow())
    sql = con.execute(FIRST_DATES_SQL, [horizon]).pl().cast(FIRST_DATES_SCHEMA)
    upto = fact.filter(pl.col("invoice_date") <= horizon)
    assert sql.sort("customer_id").equals(first_dates(upto).sort("customer_id"))
    assert sql.filter(pl.col("first_active").is_null()).get_column("customer_id").to_list() == ["Z01"]
    customers = fact.select("customer_id").unique().with_columns(pl.lit(None, pl.Date).alias("first_seen_date"))
    cutoffs = [D(2022, 9, 30), D(2023, 3, 31), D(2023, 9, 30)]
    for mode in ("expansion", "all"):
        kw = dict(division=DIV, window_months=6, data_end=horizon, mode=mode)
        for c in cutoffs:
            known = customers_known_at(upto, customers, c)
            plain = build_labels(upto, known, cutoff=c, **kw)
            given = build_labels(upto, known, cutoff=c, firsts=sql, **kw)
            assert given.frame.equals(plain.frame) and plain.positives > 0
        assert (positives_by_cutoff(upto, customers, cutoffs=cutoffs, firsts=sql, **kw)
                == positives_by_cutoff(upto, customers, cutoffs=cutoffs, **kw))
    # ... and they are what decides who was active: without one customer's first lines it is not in the population.
    known = customers_known_at(upto, customers, cutoffs[-1])
    plain = build_labels(upto, known, cutoff=cutoffs[-1], division=DIV, window_months=6, data_end=horizon)
    gone = plain.frame.item(0, "customer_id")
    less = build_labels(upto, known, cutoff=cutoffs[-1], division=DIV, window_months=6, data_end=horizon,
                        firsts=sql.filter(pl.col("customer_id") != gone))
    assert less.frame.get_column("customer_id").to_list() == plain.frame.get_column("customer_id").to_list()[1:]
