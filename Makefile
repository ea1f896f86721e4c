# GoSales Assets — the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export GOSALES_HOME ?= $(CURDIR)/.gosales
export DAGSTER_HOME ?= $(GOSALES_HOME)/dagster_home
# LightGBM's OpenMP threads otherwise spin while waiting, which starves other work on a 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test ui venv dagster-home clean bench bench-large quality ui-smoke

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

dagster-home:
	mkdir -p "$(DAGSTER_HOME)"
	cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

## make demo: install, generate the demo data, materialize the whole graph, print where everything is.
demo: venv dagster-home
	$(VENV)/bin/gosales demo-data
	$(VENV)/bin/gosales materialize
	@echo
	@$(VENV)/bin/gosales info

## make test: install/update the venv and run the whole test suite.
test: venv
	$(PY) -m pytest -n 2 --dist loadfile -q

## make ui: the Dagster UI on http://127.0.0.1:3000 against the same DAGSTER_HOME and warehouse.
ui: venv dagster-home
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf "$(GOSALES_HOME)"

## make bench: performance benchmarks (not part of make test): the suite's demo profile (whole backfill through
## Dagster vs the same calls without it; writes benchmarks/results/demo.json and its section of
## docs/PERFORMANCE.md, ~10 min), the production-scale features benchmark (printed; copied by hand) and native
## execution (webserver + daemon backfills vs the same runs in process; writes benchmarks/results/native_demo.json
## and its section of docs/PERFORMANCE.md, ~50 min).
bench: venv
	$(PY) benchmarks/bench_suite.py --profile demo
	$(PY) benchmarks/bench_features.py --with-als-basket
	$(PY) benchmarks/bench_native.py

## make bench-large: production scale, measured (issue 15): the whole `large` profile (12 divisions, 8 cutoffs) as one
## native backfill (webserver + daemon) at 50,000, 100,000, 250,000 and 500,000 customers, each followed by the monthly
## increment (one more cutoff); wall, CPU and peak RSS per stage and their growth exponents -> benchmarks/results/
## scale.json and its section of docs/PERFORMANCE.md (~2 hours on 2 cores: ~20, 25, 35, 45 min per size; see
## benchmarks/bench_scale.py).
bench-large: venv
	nice -n 10 $(PY) benchmarks/bench_scale.py

## make quality: the model-quality bars of issue 14 (engine vs the simple peers, calibration, list coverage; oracle gap
## watched) on the demo seeds 7, 101 and 202, each built under .gosales/quality/seed<N> -> docs/MODEL_QUALITY.md and
## bench_results/model_quality.json (~3-9 minutes per seed). QUALITY_ARGS="--reuse" re-reads the built seeds;
## "--seeds 7" one seed (see the docstring of benchmarks/model_quality.py).
quality: venv
	$(PY) benchmarks/model_quality.py $(QUALITY_ARGS)

## make ui-smoke: headless Chromium opens division_model's asset page (after `make demo`) and saves screenshots of
## it and of its gains/calibration charts at SHOT. Needs Debian's chromium package; not part of make test / CI.
SHOT ?= $(GOSALES_HOME)/ui_smoke_division_model.png
ui-smoke: venv dagster-home
	$(PY) scripts/ui_smoke.py --shot "$(SHOT)"
