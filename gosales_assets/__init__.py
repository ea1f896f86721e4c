"""GoSales Assets: the Dagster asset graph of the ICP scores and the whitespace ranking (docs/ARCHITECTURE.md)."""

import os

# Runs, not threads, are the engine's parallelism: dagster.yaml lets two warehouse runs and a ranking run go at once
# on the machine's two cores, and DuckDB, the model fits and the ALS's BLAS are bounded per run already (settings).
# Polars' own pool of one thread per core then only competes with the other runs: at 500,000 customers two division
# runs beside a polars-heavy third process took 10 % less CPU and 16 % less wall with one polars thread each, and the
# third did 29 % more work (docs/PERFORMANCE.md, "One polars thread per run"). Polars sizes its pool once, when it is
# first imported, so this is set before anything of the package imports it; an environment that sets
# POLARS_MAX_THREADS (a machine with more cores per run) keeps its own value.
os.environ.setdefault("POLARS_MAX_THREADS", "1")
