"""Group `star`: facts, customer dimension, invoice events and quarantined contract violations."""


from collections.abc import Iterator

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)

from gosales_assets.assets.common import contract_check_result, markdown_table, table_metadata
from gosales_assets.core.contracts import (
    check_contract,
    contract_violations_schema,
    dim_customer_schema,
    events_reconciliation,
    fact_events_schema,
    fact_transactions_schema,
    missing_references,
    reconciliation,
)
from gosales_assets.core.star import build_fact_events, build_star, violation_summary
from gosales_assets.resources import WAREHOUSE_POOL, GosalesSettings, WarehouseResource


def _spec(asset: str, name: str, description: str) -> AssetCheckSpec:
    return AssetCheckSpec(name, asset=asset, blocking=True, description=description)


@multi_asset(
    group_name="star",
    pool=WAREHOUSE_POOL,
    ins={"sales_log": AssetIn("sales_log"), "customers": AssetIn("customers")},
    # Outputs are written only when every check passed (write, audit, publish): a held batch stores nothing.
    outs={
        "fact_transactions": AssetOut(is_required=False,
                                      description="Clean invoice lines with canonical division, returns flagged."),
        "dim_customer": AssetOut(is_required=False,
                                 description="One row per valid customer (static attributes only)."),
        "contract_violations": AssetOut(
            is_required=False,
            description="Every rejected input row: source table/file/row, rule, detail and original values."
        ),
    },
    check_specs=[
        _spec("fact_transactions", "contract", "Types, nullability, (invoice_id, line_no) unique, dates in range, "
              "SKUs and divisions canonical"),
        _spec("fact_transactions", "customer_integrity", "Every fact customer exists in dim_customer"),
        _spec("fact_transactions", "reconciles_with_sales_log",
              "Every sales_log row is in exactly one of fact_transactions and contract_violations"),
        _spec("fact_transactions", "violation_rate", "Share of sales_log rows quarantined is under "
              "contracts.max_violation_rate"),
        _spec("dim_customer", "contract", "Types, nullability, customer_id unique"),
        _spec("contract_violations", "contract", "Types, known rule names, one row per rejected source row"),
    ],
)
def star_schema(
    context: AssetExecutionContext, settings: GosalesSettings, sales_log: pl.DataFrame, customers: pl.DataFrame
) -> Iterator[Output | AssetCheckResult]:
    cfg = settings.get()
    star = build_star(sales_log, customers, sku_map=cfg.sku_map, start_date=cfg.data.start_date,
                      end_date=cfg.data.end_date, landing=cfg.landing_dir)
    fact, dim, viol = star.fact_transactions, star.dim_customer, star.contract_violations
    by_rule = violation_summary(viol)
    rejected_sales = sum(by_rule["sales_log"].values())
    rejected_customers = sum(by_rule["customers"].values())
    rate = rejected_sales / sales_log.height if sales_log.height else 0.0

    # Write, audit, publish: every check is evaluated before anything is written. A batch that fails a check is not
    # stored at all, so the published star (and everything built on it) stays as it was.
    checks = [
        contract_check_result(
            check_contract(fact, fact_transactions_schema(start_date=cfg.data.start_date, end_date=cfg.data.end_date,
                                                          sku_map=cfg.sku_map, divisions=cfg.divisions)),
            asset_key="fact_transactions"),
    ]
    orphans = missing_references(fact, dim, "customer_id")
    checks.append(AssetCheckResult(
        asset_key="fact_transactions",
        check_name="customer_integrity",
        passed=orphans.height == 0,
        severity=AssetCheckSeverity.ERROR,
        description=f"{orphans.height} fact rows reference a customer_id missing from dim_customer",
        metadata={"orphan_rows": orphans.height,
                  "examples": MetadataValue.json(orphans.get_column("customer_id").unique().sort().head(5).to_list())},
    ))
    rec = reconciliation(sales_log.height, fact.height, rejected_sales)
    checks.append(AssetCheckResult(
        asset_key="fact_transactions",
        check_name="reconciles_with_sales_log",
        passed=bool(rec["reconciles"]),
        severity=AssetCheckSeverity.ERROR,
        description=f"{sales_log.height} sales_log rows = {fact.height} facts + {rejected_sales} violations "
        f"({rec['unaccounted_rows']} unaccounted)",
        metadata={k: v for k, v in rec.items() if k != "reconciles"},
    ))
    if not reconciliation(customers.height, dim.height, rejected_customers)["reconciles"]:
        # By construction every customers row is kept or quarantined; anything else is a bug: fail loudly.
        raise RuntimeError(f"customers do not reconcile: {customers.height} rows, {dim.height} kept, "
                           f"{rejected_customers} rejected")
    limit = cfg.contracts.max_violation_rate
    checks.append(AssetCheckResult(
        asset_key="fact_transactions",
        check_name="violation_rate",
        passed=rate <= limit,
        severity=AssetCheckSeverity.ERROR,
        description=f"{rejected_sales} of {sales_log.height} sales_log rows quarantined ({rate:.2%}; limit {limit:.2%})",
        metadata={"violation_rate": round(rate, 6), "limit": limit,
                  "by_rule": MetadataValue.json(by_rule["sales_log"])},
    ))
    checks.append(contract_check_result(check_contract(dim, dim_customer_schema()), asset_key="dim_customer"))
    checks.append(contract_check_result(check_contract(viol, contract_violations_schema()),
                                        asset_key="contract_violations"))
    if not all(c.passed for c in checks):
        failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
        context.log.error(f"star batch held by {', '.join(failed)}: nothing was written; the published "
                          "fact_transactions, dim_customer and contract_violations (and everything built on them) "
                          "are unchanged")
        yield from checks  # the failed blocking checks stop the run before any table is replaced
        return

    fact_meta = table_metadata(fact, cfg, date_col="invoice_date")
    fact_meta["divisions_seen"] = fact.get_column("division").n_unique()
    yield Output(fact, output_name="fact_transactions", metadata=fact_meta)
    yield Output(dim, output_name="dim_customer", metadata=table_metadata(dim, cfg))
    viol_meta = table_metadata(viol, cfg)
    viol_meta["violation_rate"] = round(rate, 6)
    viol_meta["violations_by_rule"] = markdown_table(
        [{"table": t, "rule": r, "rows": n} for t, rules in by_rule.items() for r, n in rules.items()]
    )
    yield Output(viol, output_name="contract_violations", metadata=viol_meta)
    yield from checks


@asset(
    group_name="star",
    pool=WAREHOUSE_POOL,
    output_required=False,
    check_specs=[
        _spec("fact_events", "contract", "Types, one row per invoice, dates in range, per-division columns"),
        _spec("fact_events", "reconciles_with_facts", "Line counts and revenue totals equal fact_transactions, and "
              "every fact line's event carries the line's own customer and date"),
    ],
    description="Invoice-level roll-up with per-division revenue and purchase flags.",
)
def fact_events(
    context: AssetExecutionContext, settings: GosalesSettings, warehouse: WarehouseResource,
    fact_transactions: pl.DataFrame
) -> Iterator[Output | AssetCheckResult]:
    cfg = settings.get()
    # The roll-up and its checks need nothing more of the warehouse: let go of it meanwhile, so the cutoffs'
    # features (which wait for the new facts, not for these events) read it and start on the other core.
    with warehouse.released():
        events = build_fact_events(fact_transactions, cfg.divisions)
        contract = contract_check_result(
            check_contract(events, fact_events_schema(start_date=cfg.data.start_date, end_date=cfg.data.end_date,
                                                      divisions=cfg.divisions)),
            asset_key="fact_events",
        )
        rec = events_reconciliation(fact_transactions, events)
    reconciles = AssetCheckResult(asset_key="fact_events", check_name="reconciles_with_facts", passed=rec["passed"],
                                  severity=AssetCheckSeverity.ERROR, description=rec["description"],
                                  metadata=rec["metadata"])
    # Write, audit, publish: events that fail a check are not stored (the published ones stay).
    if contract.passed and reconciles.passed:
        yield Output(events, metadata=table_metadata(events, cfg, date_col="invoice_date"))
    else:
        context.log.error("fact_events held by its checks: nothing was written; the published events are unchanged")
    yield contract
    yield reconciles
