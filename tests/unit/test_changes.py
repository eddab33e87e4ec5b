"""Which records changed in a department table between two Delta versions: change data feed or version diff."""
from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable

from bold_spark.config import SourceConfig, TableRef
from bold_spark.io.changes import changed_record_ids
from bold_spark.io.delta_log import appended_files, table_properties

pytestmark = pytest.mark.tables  # writes Delta tables: make test runs it, make test-fast does not

SCHEMA = "rid string, surname string, extract_month string"


def _source(path: Path, partition_filter: str | None = None) -> SourceConfig:
    return SourceConfig(name="dept", file=Path("dept.yaml"), table=TableRef(path=str(path)), record_id="rid",
                        partition_filter=partition_filter, columns={"surname": "surname"})


def _ids(df) -> set[str]:
    return {r["source_record_id"] for r in df.collect()}  # a handful of test rows


def _history(spark, path: Path, *, feed: bool) -> None:
    """v0: r1..r4; v1: r5 inserted; v2: r2's surname corrected; v3: r3 deleted."""
    writer = spark.createDataFrame([(f"r{i}", "smith", "2026-01") for i in range(1, 5)], SCHEMA) \
        .write.format("delta").partitionBy("extract_month")
    if feed:
        writer = writer.option("delta.enableChangeDataFeed", "true")
    writer.save(str(path))
    spark.createDataFrame([("r5", "jones", "2026-02")], SCHEMA).write.format("delta").mode("append").save(str(path))
    table = DeltaTable.forPath(spark, str(path))
    table.update("rid = 'r2'", {"surname": "'smyth'"})
    table.delete("rid = 'r3'")


@pytest.fixture(scope="module", params=[True, False], ids=["change data feed", "version diff"])
def table(request, spark, tmp_path_factory):
    path = tmp_path_factory.mktemp("changes") / "dept"
    _history(spark, path, feed=request.param)
    return path, "change data feed" if request.param else "version diff of changed files"


def test_inserts_updates_and_deletes_are_found_by_record_id(spark, table):
    path, how = table
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=0, to_version=3)
    assert found_by == how
    assert _ids(ids) == {"r5", "r2", "r3"}  # inserted, updated, deleted; r1 and r4 untouched


def test_a_range_covers_only_its_own_versions(spark, table):
    path, how = table
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=1, to_version=2)
    assert (found_by, _ids(ids)) == (how, {"r2"})


def test_an_append_is_read_from_the_appended_files_alone(spark, table):
    path, how = table
    found = changed_record_ids(spark, _source(path), from_version=0, to_version=1)
    assert (found.how, _ids(found.ids)) == ("change data feed" if how == "change data feed" else "appended files",
                                            {"r5"})
    if found.how == "appended files":  # read once, for validation and standardisation too
        assert [r["rid"] for r in found.appended_rows.collect()] == ["r5"] and len(found.appended_files) == 1


def test_only_a_range_of_appends_is_read_from_the_log(spark, table):
    path, _ = table
    ref = _source(path).table
    assert appended_files(spark, ref, from_version=0, to_version=2) is None  # v2 rewrote r2's file
    assert appended_files(spark, ref, from_version=2, to_version=3) is None  # v3 deleted r3
    appended = appended_files(spark, ref, from_version=0, to_version=1)
    assert {r["rid"] for r in appended.rows.collect()} == {"r5"}
    assert len(appended.rows.inputFiles()) == 1  # the appended file alone, not a scan of the table's files
    assert table_properties(spark, ref).get("delta.enableChangeDataFeed", "false") == (
        "true" if table[1] == "change data feed" else "false")


def test_an_append_to_a_table_with_deletion_vectors_is_read_from_its_files(spark, tmp_path):
    path = tmp_path / "dv_append"
    spark.createDataFrame([(f"r{i}", "smith", "2026-01") for i in range(1, 5)], SCHEMA).coalesce(1) \
        .write.format("delta").option("delta.enableDeletionVectors", "true").save(str(path))
    spark.createDataFrame([("r9", "jones", "2026-02")], SCHEMA).write.format("delta").mode("append").save(str(path))
    found = changed_record_ids(spark, _source(path), from_version=0, to_version=1)
    assert (found.how, _ids(found.ids), found.appended_rows.count()) == ("appended files", {"r9"}, 1)


def test_a_catalog_table_append_is_read_from_its_files(spark, tmp_path):
    name = "default.changes_by_name"
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    spark.createDataFrame([("r1", "smith", "2026-01")], SCHEMA).write.format("delta").saveAsTable(name)
    spark.createDataFrame([("r2", "jones", "2026-02")], SCHEMA).write.format("delta").mode("append").saveAsTable(name)
    source = SourceConfig(name="dept", file=Path("dept.yaml"), table=TableRef(name=name), record_id="rid",
                          columns={"surname": "surname"})
    try:
        found = changed_record_ids(spark, source, from_version=0, to_version=1)
        assert (found.how, _ids(found.ids), found.appended_rows.count()) == ("appended files", {"r2"}, 1)
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name}")


def test_appended_copy_of_an_existing_id_and_metadata_only_commits(spark, tmp_path):
    path = tmp_path / "dept"
    spark.createDataFrame([("r1", "smith", "2026-01"), ("r2", "jones", "2026-01")], SCHEMA) \
        .write.format("delta").partitionBy("extract_month").save(str(path))
    spark.createDataFrame([("r1", "smith", "2026-02")], SCHEMA).write.format("delta").mode("append").save(str(path))
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('department.owner' = 'x')")  # version 2: no data
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=0, to_version=1)
    assert (found_by, _ids(ids)) == ("appended files", {"r1"})  # the repeated id must be re-validated
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=1, to_version=2)
    assert (found_by, _ids(ids)) == ("unchanged", set())


def test_deletion_vectors_fall_back_to_the_whole_table_diff(spark, tmp_path):
    path = tmp_path / "dv"
    spark.createDataFrame([(f"r{i}", "smith", "2026-01") for i in range(1, 5)], SCHEMA).coalesce(1) \
        .write.format("delta").option("delta.enableDeletionVectors", "true").save(str(path))
    DeltaTable.forPath(spark, str(path)).delete("rid = 'r3'")  # marks a row deleted; the file keeps its name
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=0, to_version=1)
    assert (found_by, _ids(ids)) == ("version diff", {"r3"})


def test_the_partition_filter_applies_to_changes(spark, table):
    path, _ = table
    (ids, *_) = changed_record_ids(spark, _source(path, "extract_month = '2026-01'"), from_version=0, to_version=3)
    assert _ids(ids) == {"r2", "r3"}  # r5 arrived in a month the source does not read


def test_same_version_is_unchanged_and_an_unknown_start_is_everything(spark, table):
    path, _ = table
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=3, to_version=3)
    assert (found_by, _ids(ids)) == ("unchanged", set())
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=None, to_version=3)
    assert (found_by, _ids(ids)) == ("all", {"r1", "r2", "r4", "r5"})


def test_a_feed_switched_on_after_the_start_falls_back_to_the_diff(spark, tmp_path):
    path = tmp_path / "late"
    _history(spark, path, feed=False)  # versions 0-3 without a feed
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")  # version 4
    DeltaTable.forPath(spark, str(path)).delete("rid = 'r4'")  # version 5, in the feed
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=0, to_version=5)
    assert (found_by, _ids(ids)) == ("version diff of changed files", {"r2", "r3", "r4", "r5"})
    (ids, found_by, *_) = changed_record_ids(spark, _source(path), from_version=4, to_version=5)
    assert (found_by, _ids(ids)) == ("change data feed", {"r4"})


def test_appended_rows_are_counted_from_the_log_when_every_file_has_statistics(spark, tmp_path):
    path = tmp_path / "counted"
    spark.createDataFrame([("r1", "smith", "2026-01")], SCHEMA).write.format("delta") \
        .partitionBy("extract_month").save(str(path))
    spark.createDataFrame([("r2", "jones", "2026-02"), ("r3", "khan", "2026-02"), ("r4", "li", "2026-03")], SCHEMA) \
        .write.format("delta").mode("append").save(str(path))  # version 1: three rows in two partitions' files
    spark.conf.set("spark.databricks.delta.stats.collect", "false")
    try:  # version 2: a file written without statistics
        spark.createDataFrame([("r5", "ng", "2026-03")], SCHEMA).write.format("delta").mode("append").save(str(path))
    finally:
        spark.conf.unset("spark.databricks.delta.stats.collect")
    assert changed_record_ids(spark, _source(path), from_version=0, to_version=1).appended_records == 3
    no_statistics = changed_record_ids(spark, _source(path), from_version=0, to_version=2)
    assert (no_statistics.how, no_statistics.appended_records) == ("appended files", None)
    # a partition filter reads part of the files: their statistics do not count the rows read
    filtered = changed_record_ids(spark, _source(path, "extract_month = '2026-02'"), from_version=0, to_version=1)
    assert (filtered.how, filtered.appended_records) == ("appended files", None)
