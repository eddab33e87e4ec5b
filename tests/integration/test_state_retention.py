"""The stored records hold personal data: a record withdrawn at source must leave the disk once the versions that
held it are older than ``state_retention_days``, and an incremental run must not try to resume from such a version."""
from __future__ import annotations

import dataclasses
import json

from bold_spark.config import TableRef
from bold_spark.io.delta_log import newest_version, table_properties
from pyspark.sql import functions as F

from bold_spark.io.state import RETENTION_PROPERTY, StateChanges, read_state, state_path, update_state, write_state
from bold_spark.standardise.person import STANDARDISED_COLUMNS
from tests.integration.conftest import demo_environment

COLUMNS = "source_system string, source_record_id string, surname string"


def _records(spark, rows):
    """Stored records as standardisation gives them (every column; read_state refuses other columns), these three
    filled in and the rest null."""
    given = spark.createDataFrame(rows, COLUMNS)
    return given.select(*[F.col(c) if c in given.columns else F.lit(None).cast("string").alias(c)
                          for c in STANDARDISED_COLUMNS])


def _stored(spark, config, rows, run_id):
    write_state(_records(spark, rows), config, run_id=run_id)


def _ids_on_disk(spark, config) -> set[str]:
    """Every record id in any data file under the table's folder, whatever version refers to it."""
    files = spark.read.option("pathGlobFilter", "*.parquet").parquet(str(state_path(config)))  # no deletion vectors
    return {r["source_record_id"] for r in files.select("source_record_id").collect()}  # a few rows


def _commits(config) -> list[str]:
    return [p.read_text() for p in sorted((state_path(config) / "_delta_log").glob("*.json"))]


def test_the_log_keeps_row_counts_but_no_values(spark, tmp_path):
    """VACUUM deletes data files, not log entries: a name in a file's min/max statistics would outlive it."""
    config = demo_environment(tmp_path, database="state_statistics")
    # stored before statistics were left out: a table written with Delta's defaults (min/max of every column)
    (_records(spark, [("probation", "p0", "OLDNAME")]).write.format("delta")
     .partitionBy("source_system").save(str(state_path(config))))
    assert "OLDNAME" in _commits(config)[0]  # what Delta logs by default
    _stored(spark, config, [("probation", "p1", "SMITH"), ("housing", "h1", "JONES")], "run-1")
    later = "\n".join(_commits(config)[1:])
    assert "SMITH" not in later and "JONES" not in later
    added = [json.loads(json.loads(line)["add"]["stats"]) for line in later.splitlines() if '"add"' in line]
    assert sorted(stats["numRecords"] for stats in added) == [1, 1]  # row counts stay


def test_a_withdrawn_record_leaves_the_disk_after_the_retention(spark, tmp_path):
    config = demo_environment(tmp_path, database="state_retention", state_retention_days=0)
    _stored(spark, config, [("probation", "p1", "A"), ("probation", "withdrawn", "B")], "run-1")
    _stored(spark, config, [("probation", "p1", "A")], "run-2")
    assert _ids_on_disk(spark, config) == {"p1"}
    # run-1's version is in the log but its files are gone: no resuming from it (a full standardisation instead)
    assert read_state(spark, config, run_id="run-1") is None
    assert [r["source_record_id"] for r in read_state(spark, config, run_id="run-2").records.collect()] == ["p1"]


def test_replaced_versions_are_kept_within_the_retention(spark, tmp_path):
    config = demo_environment(tmp_path, database="state_retention_kept")  # conf/local.yaml's retention
    assert config.state_retention_days == 7
    _stored(spark, config, [("probation", "p1", "A"), ("probation", "withdrawn", "B")], "run-1")
    _stored(spark, config, [("probation", "p1", "A")], "run-2")
    assert _ids_on_disk(spark, config) == {"p1", "withdrawn"}
    # a run held or failed after storing its records: the next one resumes from the last successful run's version
    resumed = read_state(spark, config, run_id="run-1").records
    assert sorted(r["source_record_id"] for r in resumed.collect()) == ["p1", "withdrawn"]


def test_the_configured_retention_is_the_tables_own_and_follows_the_config(spark, tmp_path):
    """Delta 4 ignores VACUUM's retention argument unless it is 0 hours, and keeps replaced files for the table's
    delta.deletedFileRetentionDuration (7 days by default): a configured half day must be that property, and so
    must a retention changed before an incremental run (the change does not force a full link)."""
    config = demo_environment(tmp_path, database="state_retention_property", state_retention_days=0.5)
    ref = TableRef(path=str(state_path(config)))
    _stored(spark, config, [("probation", "p1", "A")], "run-1")
    assert table_properties(spark, ref)[RETENTION_PROPERTY] == "interval 43200 seconds"
    longer = dataclasses.replace(config, state_retention_days=30)
    fresh = _records(spark, [("probation", "p2", "B")])
    nothing_replaced = spark.createDataFrame([], "source_system string, source_record_id string")
    base = read_state(spark, longer, run_id="run-1").version
    assert update_state(StateChanges(fresh, nothing_replaced, base), fresh, longer, run_id="run-2") == "merged"
    assert table_properties(spark, ref)[RETENTION_PROPERTY] == "interval 2592000 seconds"
    # the ALTER's commit carries the run's tag: the next incremental run resumes from the newest version
    resumed = read_state(spark, longer, run_id="run-2")
    assert resumed.version == newest_version(spark, ref) == base + 2
    assert sorted(r["source_record_id"] for r in resumed.records.collect()) == ["p1", "p2"]


def test_a_row_an_incremental_merge_removes_leaves_the_disk(spark, tmp_path):
    """A record withdrawn at source (or the old values of an edited one) is deleted by the MERGE. With deletion
    vectors (the output tables') its row would stay in the current file, masked, until a full run."""
    config = demo_environment(tmp_path, database="state_merge_removes", state_retention_days=0)
    # stored by earlier code, with the output tables' deletion vectors: the MERGE alters the table first
    (_records(spark, [("probation", "p1", "A"), ("probation", "withdrawn", "B")]).coalesce(1)
     .write.format("delta").option("delta.enableDeletionVectors", "true").option("userMetadata", "run-1")
     .partitionBy("source_system").save(str(state_path(config))))
    base = read_state(spark, config, run_id="run-1").version
    fresh = _records(spark, [("probation", "p2", "C")])
    replaced = spark.createDataFrame([("probation", "withdrawn")], "source_system string, source_record_id string")
    assert update_state(StateChanges(fresh, replaced, base), fresh, config, run_id="run-2") == "merged"
    assert _ids_on_disk(spark, config) == {"p1", "p2"}
    assert sorted(r["source_record_id"] for r in read_state(spark, config, run_id="run-2").records.collect()) == [
        "p1", "p2"]
