"""Reading department tables: pinned versions, pushed-down partition filters, clear errors."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bold_spark.config import parse_source
from bold_spark.errors import ConfigError, DataQualityError, SchemaContractError
from bold_spark.io.delta import read_source

pytestmark = pytest.mark.tables  # writes Delta tables: make test runs it, make test-fast does not


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


def test_replace_rows_replaces_only_the_keyed_rows_of_a_catalog_table(spark):
    from pyspark.sql import functions as F

    from bold_spark.io.delta import replace_rows

    name = "io_unit.replaced"
    spark.sql("CREATE DATABASE IF NOT EXISTS io_unit")
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    rows = spark.createDataFrame([("r1", "a", 1), ("r1", "b", 2), ("r2", "c", 3)], "run_id string, k string, n long")
    replace_rows(rows.where(F.col("run_id") == "r1"), name, {"run_id": "r1"})  # creates the table
    replace_rows(rows.where(F.col("run_id") == "r2"), name, {"run_id": "r2"})
    replace_rows(spark.createDataFrame([("r1", "z", 9)], rows.schema), name, {"run_id": "r1"})  # a retried run
    assert sorted(tuple(r) for r in spark.table(name).collect()) == [("r1", "z", 9), ("r2", "c", 3)]
    # Written through the table's path: still one catalog table, and each replacement one Delta commit.
    assert spark.sql(f"DESCRIBE HISTORY {name}").count() == 3


def test_output_tables_get_deletion_vectors_so_a_merge_rewrites_only_changed_rows(spark):
    from delta.tables import DeltaTable

    from bold_spark.io.delta import overwrite_table
    from bold_spark.io.history import merge_changes

    spark.sql("CREATE DATABASE IF NOT EXISTS io_unit")
    rows = spark.createDataFrame([(str(i), "s", i) for i in range(200)], "k string, p string, n long")
    legacy = "io_unit.legacy_output"  # written before the property existed: the next overwrite adds it
    spark.sql(f"DROP TABLE IF EXISTS {legacy}")
    rows.write.format("delta").saveAsTable(legacy)
    new = "io_unit.new_output"
    spark.sql(f"DROP TABLE IF EXISTS {new}")
    for name in (legacy, new):
        overwrite_table(rows, name, partition_by=["p"])
        overwrite_table(rows, name, partition_by=["p"])  # an overwrite keeps the property
        assert DeltaTable.forName(spark, name).detail().first()["properties"]["delta.enableDeletionVectors"] == "true"
    changes = spark.createDataFrame([("1", "s", 100, "upsert"), ("2", None, None, "delete")],
                                    "k string, p string, n long, _op string")
    merge_changes(changes, new, keys=["k"])
    metrics = DeltaTable.forName(spark, new).history(1).first()["operationMetrics"]
    assert metrics["numTargetRowsCopied"] == "0" and int(metrics["numTargetDeletionVectorsAdded"]) >= 1
    assert spark.table(new).count() == 199 and spark.table(new).where("k = '1'").first()["n"] == 100


def test_a_tagged_session_tags_its_own_commits_and_no_other(spark, tmp_path, housing):
    """The stored records' MERGE is tagged with the run id while the run writes its other tables side by side."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from bold_spark.io.state import tagged_session

    tagged = tagged_session(spark, "run-7")
    spark.range(3).write.format("delta").save(str(tmp_path / "beside"))  # the caller's session, after tagging
    DeltaTable.forPath(tagged, housing).delete(F.col("case_id") == "4")
    tags = {name: DeltaTable.forPath(spark, path).history(1).first()["userMetadata"]
            for name, path in (("beside", str(tmp_path / "beside")), ("housing", housing))}
    assert tags == {"beside": None, "housing": "run-7"}
    assert spark.conf.get("spark.databricks.delta.commitInfo.userMetadata", None) is None
