"""GoSales Assets: the Dagster asset graph of the ICP scores and the whitespace ranking (docs/ARCHITECTURE.md)."""

import os

# Runs, not threads, are the engine's parallelism: dagster.yaml lets two warehouse runs and a ranking run go at once
# on the machine's two cores, and DuckDB, the model fits and the ALS's BLAS are bounded per run already (settings).
# Polars' own pool of one thread per core then only competes with the other runs: at 500,000 customers a division
# run next to another run and a ranking run took 10 % less CPU and wall with one polars thread, and a polars
# aggregation alone 30 % less CPU for 25 % more wall (docs/PERFORMANCE.md, "One polars thread per run"). Polars
# sizes its pool once, when it is first imported, so this is set before anything of the package imports it; an
# environment that sets POLARS_MAX_THREADS (a machine with more cores per run) keeps its own value.
os.environ.setdefault("POLARS_MAX_THREADS", "1")
