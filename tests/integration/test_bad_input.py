"""Bad department extracts through the real read -> validate path: each stops the run before anything is written,
with a message that names file, source, column and counts, or is accounted for in the rejects."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F, types as T

from bold_spark import pipeline
from bold_spark.config import load_config
from bold_spark.errors import ConfigError, DataQualityError, SchemaContractError
from bold_spark.schemas import LINK_RUNS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "case_id string, fn string, sn string, dob string, pc string"
ROWS = [("H1", "Ann", "Smith", "01/02/1980", "SW1A 1AA"), ("H2", "Bob", "Jones", "03/04/1975", "M1 1AE"),
        ("H3", "Cal", "Khan", "05/06/1990", "B33 8TH")]


@pytest.fixture
def make_env(tmp_path):
    """An environment with one source over a Delta table at ``path``; the committed model, so link() can start."""
    def make(path: str, database: str, **source_extra) -> Path:
        source = {"name": "housing", "table": {"path": path}, "record_id": "case_id",
                  "columns": {"first_name": "fn", "surname": "sn", "postcode": "pc",
                              "date_of_birth": {"column": "dob", "formats": ["dd/MM/yyyy"]}}, **source_extra}
        (tmp_path / "housing.yaml").write_text(yaml.safe_dump(source))
        env = {"base_dir": str(tmp_path), "spark": {"warehouse_dir": "w", "checkpoint_dir": "c"},
               "output": {"database": database}, "sources": ["housing.yaml"],
               "linkage": str(PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml")}
        (tmp_path / "env.yaml").write_text(yaml.safe_dump(env))
        model = load_config(tmp_path / "env.yaml").linkage.model_path
        model.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / "tests" / "data" / "uk_person_model.json", model)
        return tmp_path / "env.yaml"
    return make


def _write(spark, path: Path, rows, schema=SCHEMA) -> str:
    spark.createDataFrame(rows, schema).write.format("delta").save(str(path))
    return str(path)


def _assert_nothing_written(spark, database: str) -> None:
    tables = {t.name for t in spark.catalog.listTables(database)}
    assert tables == {"link_runs"}, tables  # only the failed run's own record
    run = spark.table(f"{database}.link_runs").first()  # one row
    assert run["status"] == "failed"
    for value in ("Ann", "Smith", "Bob", "Jones", "SW1A", "H1", "H2", "1980"):
        assert value not in run["message"]


def test_a_missing_table_stops_the_run(spark_clean, tmp_path, make_env):
    config = load_config(make_env(str(tmp_path / "nowhere"), "bad_missing"))
    with pytest.raises(DataQualityError, match=r"housing.yaml: source housing: table.path: no Delta table at .*nowhere"):
        pipeline.link(spark_clean, config)
    _assert_nothing_written(spark_clean, "bad_missing")


@pytest.mark.parametrize("dtype, value", [("struct<a:string>", "named_struct('a', 'x')"), ("binary", "unhex('00')"),
                                          ("array<string>", "array('x')")])
def test_a_name_column_of_an_unusable_type_stops_the_run(spark_clean, tmp_path, make_env, dtype, value):
    path = str(tmp_path / "typed")
    spark_clean.createDataFrame(ROWS, SCHEMA).withColumn("fn", F.expr(value)).write.format("delta").save(path)
    config = load_config(make_env(path, "bad_typed"))
    with pytest.raises(SchemaContractError, match=rf"key columns.first_name maps column 'fn' of type {dtype}"):
        pipeline.prepare_input(spark_clean, config)


def test_a_missing_mapped_column_stops_the_run(spark_clean, tmp_path, make_env):
    path = _write(spark_clean, tmp_path / "t", [(r[0], r[1], r[2], r[3]) for r in ROWS],
                  "case_id string, fn string, sn string, dob string")
    with pytest.raises(SchemaContractError, match=r"key columns.postcode maps column 'pc', which .* does not have"):
        pipeline.prepare_input(spark_clean, load_config(make_env(path, "bad_col")))


def test_whole_source_problems_stop_the_run_before_anything_is_written(spark_clean, tmp_path, make_env):
    rows = [(i, f, s, "1980.01.01", None) for i, f, s, _, _ in ROWS]  # no postcode at all, no parseable date
    config = load_config(make_env(_write(spark_clean, tmp_path / "t", rows), "bad_whole"))
    with pytest.raises(DataQualityError) as error:
        pipeline.link(spark_clean, config)
    message = str(error.value)
    assert "column 'pc' (key columns.postcode) is null in all 3 records" in message
    assert "column 'dob' (key date_of_birth): 3 of 3 dates of birth match none of the declared formats" in message
    _assert_nothing_written(spark_clean, "bad_whole")


def test_an_empty_partition_selection_stops_the_run(spark_clean, tmp_path, make_env):
    path = _write(spark_clean, tmp_path / "t", ROWS)
    config = load_config(make_env(path, "bad_empty", partition_filter="case_id = 'none'"))
    with pytest.raises(DataQualityError, match=r"source housing: delta path .* has no records after partition_filter"):
        pipeline.prepare_input(spark_clean, config)
    # A filter on a column the table does not have: Spark's condition, the name and Spark's suggestion.
    config = load_config(make_env(path, "bad_filter", partition_filter="cse_id = 'H1'"))
    with pytest.raises(ConfigError, match=r"housing.yaml: source housing: partition_filter: not a valid filter on "
                                          r".*UNRESOLVED_COLUMN.*: no column `cse_id`; did you mean one of .*case_id"):
        pipeline.prepare_input(spark_clean, config)


def test_record_level_problems_are_rejected_and_every_record_is_accounted_for(spark_clean, tmp_path, make_env):
    rows = [*ROWS, (None, "Dee", "Li", "07/08/1985", "CR2 6XH"), ("H2", "Bo", "Jones", "03/04/1975", "M1 1AE"),
            ("H6", "Eve\u0000", "Ray", "01/01/1970", "E1 6AN"), ("H7", "Fay", "Roe", "01/01/2031", "N1 9GU")]
    config = load_config(make_env(_write(spark_clean, tmp_path / "t", rows), "bad_records",
                                  validation={"on_implausible_date_of_birth": "reject"}))
    prepared = pipeline.prepare_input(spark_clean, config, as_of="2026-01-01")
    checkpoint = Path(prepared.checkpoint_path)
    try:
        # Later queries read a checkpoint in the run's scratch folder, not standardisation's plan again.
        assert checkpoint.parent == config.scratch_dir and any(checkpoint.rglob("part-*"))
        assert prepared.standardised._jdf.queryExecution().optimizedPlan().nodeName() == "LogicalRDD"
        counts = prepared.counts["housing"]
        assert (prepared.profiles["housing"].rows, counts["records_accepted"], counts["records_rejected"]) == (7, 2, 5)
        reasons = {r["reject_reason"]: r["count"] for r in  # a few reasons
                   prepared.standardised.groupBy("reject_reason").count().collect()}
        assert reasons == {None: 2, "record id is missing": 1, "record id is not unique in the source": 2,
                           "name contains undecodable (non-UTF-8) or control characters": 1,
                           "date of birth before 1900 or after the run date": 1}
    finally:
        prepared.release()
    assert not checkpoint.exists()


def test_old_link_runs_rows_stay_readable_when_the_totals_columns_are_added(spark_clean, tmp_path, make_env):
    config = load_config(make_env(str(tmp_path / "unused"), "bad_runs"))
    old_schema = T.StructType([f for f in LINK_RUNS.fields if f.name not in ("records_read", "records_rejected")])
    spark_clean.sql("CREATE DATABASE IF NOT EXISTS bad_runs")
    record = pipeline.RunRecord("old", "link", "digest", "local")
    old = {k: v for k, v in record.as_row().items() if k in old_schema.fieldNames()}
    spark_clean.createDataFrame([old], old_schema).write.format("delta").saveAsTable("bad_runs.link_runs")
    new = pipeline.RunRecord("new", "link", "digest", "local", inputs=[
        {"source_system": "housing", "table": "t", "delta_version": 0, "partition_filter": None, "records_read": 7,
         "records_accepted": 2, "records_rejected": 5, "invalid_values": {}}])
    pipeline.record_run(spark_clean, config, new)
    got = {r["run_id"]: (r["records_read"], r["records_rejected"])
           for r in spark_clean.table("bad_runs.link_runs").collect()}  # two rows
    assert got == {"old": (None, None), "new": (7, 5)}
