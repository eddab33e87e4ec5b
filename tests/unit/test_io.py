"""Reading department tables: pinned versions, pushed-down partition filters, clear errors."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bold_spark.config import parse_source
from bold_spark.errors import ConfigError, DataQualityError, SchemaContractError
from bold_spark.io.delta import read_source


def source(tmp_path: Path, path: str, **extra):
    data = {"name": "housing", "table": {"path": path}, "record_id": "case_id",
            "columns": {"surname": "sn", "first_name": "fn"}, **extra}
    return parse_source(data, tmp_path / "housing.yaml", tmp_path)


@pytest.fixture
def housing(spark, tmp_path) -> str:
    path = str(tmp_path / "housing")
    rows = [("1", "smith", "ann", "2024-01"), ("2", "jones", "bob", "2024-02"), ("3", "khan", "cal", "2024-03")]
    spark.createDataFrame(rows, "case_id string, sn string, fn string, extract_month string") \
        .write.format("delta").partitionBy("extract_month").save(path)
    spark.createDataFrame([("4", "li", "dee", "2024-03")], "case_id string, sn string, fn string, extract_month string") \
        .write.format("delta").mode("append").save(path)
    return path


def test_reads_the_latest_version_and_records_it(spark, tmp_path, housing):
    df, snapshot = read_source(spark, source(tmp_path, housing))
    assert snapshot.delta_version == 1 and df.count() == 4


def test_partition_filter_is_pushed_down_to_the_delta_scan(spark, tmp_path, housing):
    df, snapshot = read_source(spark, source(tmp_path, housing, partition_filter="extract_month >= '2024-02'"))
    assert sorted(r["case_id"] for r in df.collect()) == ["2", "3", "4"]
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert re.search(r"PartitionFilters: \[[^\]]*extract_month#\d+ >= 2024-02", plan), plan
    assert snapshot.partition_filter == "extract_month >= '2024-02'"


def test_a_missing_mapped_column_names_file_source_key_and_column(spark, tmp_path, housing):
    bad = source(tmp_path, housing, columns={"surname": "sn", "first_name": "forename"})
    with pytest.raises(SchemaContractError,
                       match=r"housing.yaml: source housing: columns: key columns.first_name maps column 'forename'"):
        read_source(spark, bad)


def test_an_unusable_column_type_is_refused(spark, tmp_path):
    path = str(tmp_path / "typed")
    spark.createDataFrame([("1", ["a"], "x")], "case_id string, fn array<string>, sn string") \
        .write.format("delta").save(path)
    with pytest.raises(SchemaContractError, match=r"key columns.first_name maps column 'fn' of type array<string>"):
        read_source(spark, source(tmp_path, path))


def test_a_missing_table_is_a_clear_error(spark, tmp_path):
    with pytest.raises(DataQualityError, match=r"housing.yaml: source housing: table.path: no Delta table at"):
        read_source(spark, source(tmp_path, str(tmp_path / "nowhere")))


def test_a_bad_partition_filter_names_the_key(spark, tmp_path, housing):
    with pytest.raises(ConfigError, match=r"source housing: partition_filter: not a valid filter"):
        read_source(spark, source(tmp_path, housing, partition_filter="no_such_column = 1"))
