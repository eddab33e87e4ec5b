"""The standardised records a link run linked, kept so the next incremental run re-reads only what changed.

One Delta table per output database under ``state_dir``, overwritten by every full link run and changed in place
by an incremental run (one MERGE: the rows of the changed ids out, their new rows in). Each version is tagged with
its run id (Delta commit ``userMetadata``), so an incremental run reads the version of the last successful run
even when a later run failed or was held after writing its own. It holds personal data (standardised names, dates
of birth, postcodes): it lives beside the sources' access controls, not in the analysts' catalog, and what a run
replaces leaves the disk after ``state_retention_days`` (forget_replaced_versions).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.config import JobConfig, TableRef
from bold_spark.io.delta import with_output_properties
from bold_spark.io.delta_log import newest_version, table_properties
from bold_spark.standardise.person import STANDARDISED_COLUMNS

log = logging.getLogger(__name__)

RECENT_VERSIONS = 20  # versions searched for a run's tag; older ones are not worth resuming from

STATE_TABLE_PROPERTIES = {
    # No column statistics in the log (row counts only): a file's min/max would copy names and dates of birth into
    # _delta_log, where VACUUM does not reach them (log entries stay for delta.logRetentionDuration, 30 days).
    # Nothing reads the stored records by a filter that statistics could skip files for (partitions do that).
    "delta.dataSkippingNumIndexedCols": "0",
    # No deletion vectors (the output tables have them): a row a MERGE deletes (a record withdrawn at source, the
    # old values of an edited one) would stay in the current file, only masked, until a full run rewrote it. Without
    # them the MERGE rewrites the files holding such rows, and VACUUM deletes the old files after the retention. A
    # delivery of appended records only deletes nothing and rewrites no file.
    "delta.enableDeletionVectors": "false",
}
RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"


def state_table_properties(config: JobConfig) -> dict[str, str]:
    """STATE_TABLE_PROPERTIES, and ``state_retention_days`` as the property VACUUM goes by: Delta 4 ignores
    VACUUM's own retention argument unless it is 0 hours (it logs a warning and keeps replaced files for this
    property, 7 days by default), so a configured 1 or 30 days has to be the table's."""
    seconds = round(config.state_retention_days * 86400)
    return {**STATE_TABLE_PROPERTIES, RETENTION_PROPERTY: f"interval {seconds} seconds"}


def state_path(config: JobConfig) -> Path:
    return config.state_dir / config.output.database / "standardised"


class StoredRecords(NamedTuple):
    records: DataFrame  # the standardised records of one run, as read at ``version``
    version: int


class StateChanges(NamedTuple):
    """What an incremental run changed in the stored records it started from (``base_version``)."""
    fresh: DataFrame  # the rows standardised again (stored columns)
    replaced: DataFrame  # (source_system, source_record_id) whose stored rows go; a null id: every row without one
    base_version: int


def _align_properties(spark: SparkSession, config: JobConfig) -> bool:
    """ALTER an existing stored-records table whose properties differ from state_table_properties (stored by earlier
    code, or under another ``state_retention_days``); returns whether it did (a commit, by ``spark``'s session)."""
    path = str(state_path(config))
    return with_output_properties(spark, path, table_properties(spark, TableRef(path=path)),  # from the log
                                  wanted=state_table_properties(config))


def write_state(standardised: DataFrame, config: JobConfig, *, run_id: str) -> None:
    """Replace the stored records with this run's, in one Delta commit tagged with ``run_id``.

    An existing table is aligned to state_table_properties first (a write option only sets a property when the
    write creates the table; files an incremental MERGE adds to it follow the table's properties too)."""
    path = str(state_path(config))
    spark = standardised.sparkSession
    if DeltaTable.isDeltaTable(spark, path):
        _align_properties(spark, config)
    (standardised.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
     .options(**state_table_properties(config)).option("userMetadata", run_id).partitionBy("source_system")
     .save(path))
    forget_replaced_versions(spark, config)


def forget_replaced_versions(spark: SparkSession, config: JobConfig) -> None:
    """VACUUM the stored records: the files of versions replaced more than ``state_retention_days`` ago (the
    table's retention property) are deleted, so the personal data of a record withdrawn at source, or the old
    values of an edited one, do not stay on disk."""
    quiet = spark.newSession()  # a VACUUM that commits nothing: the newest version stays the run's own (merges)
    quiet.conf.set("spark.databricks.delta.vacuum.logging.enabled", "false")
    # VACUUM lists files in this many tasks (Spark's default 10,000 takes minutes in local mode for a few files)
    quiet.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism",
                   str(spark.sparkContext.defaultParallelism))
    DeltaTable.forPath(quiet, str(state_path(config))).vacuum()  # no argument: the table's retention applies


def tagged_session(spark: SparkSession, run_id: str) -> SparkSession:
    """A session of its own (same context, conf and catalog) whose Delta commits carry ``run_id``.

    DeltaMergeBuilder takes no commit options, and the same setting on the caller's session would tag every table
    written beside the stored records at the same time (the run writes its tables side by side).
    """
    tagged = spark.newSession()
    tagged.conf.set("spark.databricks.delta.commitInfo.userMetadata", run_id)
    return tagged


def update_state(changes: StateChanges | None, standardised: DataFrame, config: JobConfig, *, run_id: str) -> str:
    """Store this run's records, ``standardised``: by applying ``changes`` to the version they were made against
    (one MERGE commit tagged with ``run_id``) when that is still the newest version, else by rewriting them all.
    Returns how ("merged" or "rewritten")."""
    spark = standardised.sparkSession
    path = str(state_path(config))
    ref = TableRef(path=path)
    stored = changes is not None and DeltaTable.isDeltaTable(spark, path)
    newest = newest_version(spark, ref) if stored else None
    if newest is None or newest != changes.base_version:
        write_state(standardised, config, run_id=run_id)
        return "rewritten"
    tagged = tagged_session(spark, run_id)
    # Properties first (state_retention_days may change between incremental runs), so the MERGE follows them; the
    # ALTER's commit is tagged like the MERGE's, so the newest version stays this run's own.
    if _align_properties(tagged, config):
        newest = newest_version(spark, ref)
    columns = changes.fresh.columns
    inserts = changes.fresh.select(*columns, F.lit(None).cast("string").alias("_key"), F.lit("insert").alias("_op"))
    fields = {f.name: f.dataType for f in changes.fresh.schema.fields}
    deletes = changes.replaced.select("source_system", "source_record_id").distinct().select(
        *[(F.col("source_system") if c == "source_system" else F.lit(None).cast(fields[c])).alias(c)
          for c in columns],
        F.col("source_record_id").alias("_key"), F.lit("delete").alias("_op"))
    # <=>: a null key deletes every stored row without an id (they are all read again); inserted rows never match.
    condition = ("t.source_system = s.source_system AND t.source_record_id <=> s._key AND s._op = 'delete'")
    (DeltaTable.forPath(tagged, path).alias("t")
     .merge(inserts.unionByName(deletes).alias("s"), condition)
     .whenMatchedDelete()
     .whenNotMatchedInsert(condition="s._op = 'insert'", values={f"`{c}`": f"s.`{c}`" for c in columns})
     .execute())
    if newest_version(spark, ref) == newest:  # a MERGE that changed nothing commits nothing
        write_state(standardised, config, run_id=run_id)
        return "rewritten"
    forget_replaced_versions(spark, config)
    return "merged"


def read_state(spark: SparkSession, config: JobConfig, *, run_id: str) -> StoredRecords | None:
    """The records run ``run_id`` stored, or None when that version is not there (never stored, replaced more
    than RECENT_VERSIONS runs ago, or replaced long enough ago for its files to have been vacuumed)."""
    path = str(state_path(config))
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    commits = (DeltaTable.forPath(spark, path).history(RECENT_VERSIONS)
               .select("version", "timestamp", "userMetadata").collect())  # bounded: RECENT_VERSIONS rows at most
    tagged = [c["version"] for c in commits if c["userMetadata"] == run_id]
    if not tagged:
        log.info("state: no stored records of run %s in the last %d versions of %s", run_id, RECENT_VERSIONS, path)
        return None
    version = max(tagged)
    replaced_at = min((c["timestamp"] for c in commits if c["version"] > version), default=None)
    if replaced_at is not None and datetime.now() - replaced_at >= timedelta(days=config.state_retention_days):
        log.info("state: the records run %s stored were replaced over %s days ago (state_retention_days) and may "
                 "have been vacuumed", run_id, config.state_retention_days)
        return None
    records = spark.read.format("delta").option("versionAsOf", version).load(path)
    if set(records.columns) != set(STANDARDISED_COLUMNS):  # stored by code with other columns (before address_status)
        log.info("state: the records run %s stored have other columns than standardisation gives now", run_id)
        return None
    return StoredRecords(records, version)
