# bold_spark: every target sets itself up from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONF ?= conf/local.yaml
JARS_DIR := var/ivy/jars
SPARK_HOME := $(shell test -x $(PY) && $(PY) -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null)
SCALE ?= 20000
SCALES ?= 100000,1000000
RUN_ID ?=
SEED ?= 7
LINKAGE ?=
SYSTEMS ?=
Q ?= show tables in bold
MASTER_URL := spark://127.0.0.1:7077
# catalog-up, serve and their -down targets: conf/shared.yaml unless CONF names another environment
SHARED_CONF := $(or $(filter-out conf/local.yaml,$(CONF)),conf/shared.yaml)

.PHONY: setup package demo test test-fast test-processes generate train link incremental views report publish sql spark-sql export catalog-up catalog-down serve serve-down evaluate cluster-up cluster-down submit-cluster bench bench-scale-out clean review-page bench-placeholders bench-review blocking-report

setup: $(VENV)/.installed $(JARS_DIR)/.resolved

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,connect]'
	touch $@

# Resolved once from Maven Central into the project (Delta, and the PostgreSQL JDBC driver of the shared catalog);
# sessions then load the jars from this folder.
$(JARS_DIR)/.resolved: $(VENV)/.installed bold_spark/session.py
	$(PY) -m bold_spark.session resolve-jars $(JARS_DIR) > /dev/null
	touch $@

# What a cluster needs, in dist/: the wheel, a relocatable environment (venv-pack) for spark-submit --archives, the
# session's jars (python -m bold_spark.session jars) and conf.tar.gz, the configuration folder PACKAGE_CONF (your
# environment file, sources and linkage model settings). pyspark is left out of the environment: spark-submit puts
# the cluster's own pyspark and py4j on the Python path. Recipes: conf/deploy/ and docs/operations.md.
DIST := dist
PACKAGE_VENV := var/package/venv
PACKAGE_CONF ?= conf
VERSION := $(shell sed -n 's/^version = //p' setup.cfg)
RUNTIME_REQUIREMENTS = $(PY) -c 'import importlib.metadata as m; \
  print(*[r for r in m.requires("bold_spark") if "extra" not in r])'
package: setup
	rm -rf $(DIST) $(PACKAGE_VENV)
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir $(DIST) .
	$(PY) -m venv --without-pip $(PACKAGE_VENV)
	# The runtime requirements but pyspark; delta-spark without pyspark (its other dependency, importlib_metadata, by hand)
	reqs=$$($(RUNTIME_REQUIREMENTS)); pip="$(PY) -m pip --python $(PACKAGE_VENV)/bin/python install --quiet"; \
	  $$pip $$(printf '%s\n' $$reqs | grep -v -e '^pyspark' -e '^delta-spark') importlib_metadata \
	  && $$pip --no-deps $(DIST)/bold_spark-$(VERSION)-*.whl $$(printf '%s\n' $$reqs | grep '^delta-spark')
	$(PY) -m venv_pack --quiet --prefix $(PACKAGE_VENV) --output $(DIST)/bold_spark-$(VERSION)-env.tar.gz
	mkdir -p $(DIST)/jars && cp $$($(PY) -m bold_spark.session jars $(JARS_DIR) | tr , ' ') $(DIST)/jars/
	tar -czf $(DIST)/conf.tar.gz -C $(PACKAGE_CONF) .
	ls -l $(DIST) $(DIST)/jars

demo: setup
	$(PY) jobs/generate_sample.py --conf $(CONF) --scale $(SCALE) --seed $(SEED)
	$(PY) jobs/link.py --conf $(CONF) --train-if-missing

generate: setup
	$(PY) jobs/generate_sample.py --conf $(CONF) --scale $(SCALE) --seed $(SEED)

train: setup
	$(PY) jobs/train.py --conf $(CONF)

link: setup
	$(PY) jobs/link.py --conf $(CONF)

# Link only what changed in each source since the last run (Delta versions recorded in bold.link_runs)
incremental: setup
	$(PY) jobs/link.py --conf $(CONF) --incremental

# (Re)create the programme's views (conf/views/programme.yaml) over the published crosswalk
views: setup
	$(PY) jobs/create_views.py --conf $(CONF)

# Regenerate a run's HTML quality report from the tables: make report RUN_ID=...
report: setup
	$(PY) jobs/report.py --conf $(CONF) --run-id $(RUN_ID)

# Publish a run the publishing gate held, after review: make publish RUN_ID=...
publish: setup
	$(PY) jobs/publish.py --conf $(CONF) --run-id $(RUN_ID)

# Two pytest workers (each with its own local SparkSession), one module (or xdist_group of modules) at a time:
# see docs/testing.md for what each part builds and how long it takes.
PYTEST := $(PY) -m pytest -q -n 2 --dist loadgroup

test: setup
	$(PYTEST) -m "not processes" $(PYTEST_ARGS)

# The edit-test loop: the unit tests of transforms and configuration (small inline frames), no linked run, nothing
# trained, no Delta table histories (the unit tests marked `tables` run in make test).
test-fast: setup
	$(PYTEST) -m "not processes and not slow and not tables" tests/unit $(PYTEST_ARGS)

# The long end-to-end tests: spark-submit entry points, a persistent catalog, SIGKILL during scoring and during
# the crosswalk write, the standalone cluster, incremental and repeated runs in a row, a job submitted from
# make package's archive alone (CI runs it too).
test-processes: setup
	$(PYTEST) -m processes $(PYTEST_ARGS)

# Accuracy of the current crosswalk against the generator's truth (sample data only), or against labelled pairs:
# make evaluate LABELS=bold.review_decisions (reviewers' decisions, docs/review.md)
LABELS ?=
evaluate: setup
	$(PY) jobs/evaluate.py --conf $(CONF) $(if $(LABELS),--labels $(LABELS) --sweep,--truth var/sample/truth --sweep)

# Clerical review (docs/review.md): an HTML page of the review queue's top pairs, with personal values, for
# reviewers only: make review-page [TOP=100]; then python jobs/review.py import decisions.csv
TOP ?= 100
review-page: setup
	$(PY) jobs/review.py --conf $(CONF) page --top $(TOP)

# Blocking recall before scoring against the sample's truth: each rule's and the rule set's recall and pairs, and
# which of linkage.candidate_blocking_rules adds the most recall per million pairs (LINKAGE=file to try another)
blocking-report: setup
	$(PY) jobs/blocking_report.py --conf $(CONF) --truth var/sample/truth $(if $(LINKAGE),--linkage $(LINKAGE))

# Query the persistent catalog from a new process: make sql Q="select count(*) from bold.crosswalk"
sql: setup
	$(PY) jobs/sql.py --conf $(CONF) "$(Q)"

# PySpark's own spark-sql CLI with the project's catalog settings
spark-sql: setup
	$(PY) jobs/sql.py --conf $(CONF) --print-spark-sql-command | bash

# A plain Parquet copy of the published crosswalk and views for tools without Delta: var/export/crosswalk-v<N>/
export: setup
	$(PY) jobs/export.py --conf $(CONF)

# The shared catalog (conf/shared.yaml): a local PostgreSQL for its Hive metastore, data under var/catalog
catalog-up: setup
	$(PY) jobs/catalog.py --conf $(SHARED_CONF) up

catalog-down: setup
	$(PY) jobs/catalog.py --conf $(SHARED_CONF) down

# A Spark Connect endpoint over the shared catalog on 127.0.0.1:15002; clients present its token (var/serve/token)
serve: setup
	$(PY) jobs/serve.py --conf $(SHARED_CONF) up

serve-down: setup
	$(PY) jobs/serve.py --conf $(SHARED_CONF) down

cluster-up: setup
	$(PY) jobs/cluster.py --conf $(CONF) up --workers 2

cluster-down: setup
	$(PY) jobs/cluster.py --conf $(CONF) down

submit-cluster: setup
	$(PY) jobs/cluster.py --conf $(CONF) submit -- jobs/link.py --conf $(CONF) --train-if-missing

# bold_spark vs Splink on DuckDB vs default Splink on Spark, same data and model: var/bench/results/<timestamp>.md/.json
# SYSTEMS=project,duckdb runs a subset (project, incremental, duckdb, spark_default; default all).
bench: setup
	$(PY) jobs/bench.py --conf $(CONF) --scales $(SCALES) --seed $(SEED) $(if $(LINKAGE),--linkage $(LINKAGE)) \
	  $(if $(SYSTEMS),--systems $(SYSTEMS)) $(if $(RATES),--rates $(RATES))

# Issue 33: 5% of one department's dates of birth 1900-01-01 and 5% of its postcodes ZZ99 codes, against the clean
# data: precision, recall and training time of each (var/bench/results/placeholders-<timestamp>/summary.json).
bench-placeholders: setup
	$(PY) jobs/bench.py --conf $(CONF) --placeholders --scales 20000 --seed $(SEED)

# Issue 26: reviewers simulated with the generator's truth on the top 100, then 1,000 items of the first link's review
# queue (committed test model), imported, linked again: F1 before and after (docs/review.md, "On demo data";
# var/bench/results/review-<timestamp>/summary.json). SCALE 20000: a first queue of at least 1,000 items.
bench-review: setup
	$(PY) jobs/bench.py --conf $(CONF) --review --scales $(SCALE) --seed $(SEED)

# The project's train and link on the standalone cluster with 1, then 2 workers of 1 core each (scale-out).
SCALE_OUT ?= 100000
bench-scale-out: setup
	for workers in 1 2; do \
	  $(PY) jobs/cluster.py --conf $(CONF) up --workers $$workers || exit 1; \
	  $(PY) jobs/bench.py --conf $(CONF) --scales $(SCALE_OUT) --seed $(SEED) --systems project --master $(MASTER_URL); \
	  status=$$?; $(PY) jobs/cluster.py --conf $(CONF) down; test $$status = 0 || exit $$status; \
	done

clean:
	rm -rf var/scratch var/checkpoints var/sample var/warehouse var/metastore var/models var/package var/export $(DIST)
