"""What changed in a department table between two Delta versions, as record ids (no row content leaves here).

Delta's change data feed when the table has it on for the whole range. Otherwise, when the commits in between
only added files (a monthly delivery), the rows of those files, read alone (bold_spark/io/delta_log.py). Otherwise
a diff of the two versions (``exceptAll`` both ways), so any edit, insert or delete of a record shows up. The diff
compares only the rows of the data files one version has and the other has not: Delta never rewrites a file in
place, so the files both versions share hold the same rows (Delta still scans them to filter by file name).
"""
from __future__ import annotations

import logging
from typing import NamedTuple

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession, functions as F, types as T

from bold_spark.config import SourceConfig
from bold_spark.io import delta_log
from bold_spark.io.delta import read_table

log = logging.getLogger(__name__)


def _record_ids(df: DataFrame, source: SourceConfig) -> DataFrame:
    # The same text form standardisation gives the id (trimmed, blanks null), so ids join with the crosswalk.
    rid = F.trim(F.col(f"`{source.record_id}`").cast("string"))
    return df.select(F.lit(source.name).alias("source_system"),
                     F.when(rid != "", rid).alias("source_record_id")).where(F.col("source_record_id").isNotNull())


def _filtered(df: DataFrame, source: SourceConfig) -> DataFrame:
    return df.where(F.expr(source.partition_filter)) if source.partition_filter else df


def _is_true(properties: dict[str, str], key: str) -> bool:
    return str(properties.get(key, "false")).lower() == "true"


def _cdf_or_none(spark: SparkSession, source: SourceConfig, *, from_version: int, to_version: int,
                 properties: dict[str, str]) -> DataFrame | None:
    ref = source.table
    if not _is_true(properties, "delta.enableChangeDataFeed"):
        return None
    try:
        reader = (spark.read.format("delta").option("readChangeFeed", "true")
                  .option("startingVersion", from_version + 1).option("endingVersion", to_version))
        feed = _filtered(reader.load(ref.path) if ref.path else reader.table(ref.name), source)
        # Delta checks that the feed covers the range only when a scan is planned (an empty limit is optimised
        # away): probe with one row now, or a feed switched on after from_version fails the run later.
        feed.limit(1).count()  # bounded: at most one row
        return feed
    except AnalysisException as exc:  # feed switched on after from_version: fall back to the diff
        log.info("source %s: change data feed not usable from version %d (%s); diffing versions", source.name,
                 from_version, exc.getCondition() or "analysis error")
        return None


def _file_name(path_column: Column) -> Column:
    # Compared by file name: Delta names every data file with a fresh UUID, and the name is free of the URI
    # encoding differences a full path can have between the log and a scan.
    return F.element_at(F.split(path_column, "/"), -1)


def rows_in_files(df: DataFrame, names: set[str] | frozenset[str], *, inside: bool = True) -> DataFrame:
    """The rows of a Delta read that come from the data files named ``names`` (``inside`` False: from the others)."""
    spark = df.sparkSession
    wanted = spark.createDataFrame([(n,) for n in sorted(names)], "file_name string")  # bounded: one row per file
    return (df.withColumn("_file_name", _file_name(F.col("_metadata.file_path")))
            .join(F.broadcast(wanted), F.col("_file_name") == wanted["file_name"],
                  how="left_semi" if inside else "left_anti")
            .drop("_file_name"))


class Changes(NamedTuple):
    ids: DataFrame  # (source_system, source_record_id) of every record inserted, updated or deleted
    # "unchanged", "all", "change data feed", "appended files", "version diff of changed files" or "version diff"
    how: str
    appended_files: frozenset[str] | None = None  # "appended files": the names of the new data files
    appended_rows: DataFrame | None = None  # "appended files": their rows (partition filter applied), when known
    # "appended files": how many rows they hold, per the log's statistics, when known and no partition filter applies
    appended_records: int | None = None


def changed_record_ids(spark: SparkSession, source: SourceConfig, *, from_version: int | None,
                       to_version: int) -> Changes:
    """The records inserted, updated or deleted after ``from_version`` up to ``to_version``, and how that was found.

    ``from_version`` None (a source the last run did not read): every record counts as changed ("all").
    """
    ref = source.table
    current = _filtered(read_table(spark, ref, version=to_version), source)
    if from_version is None:
        return Changes(_record_ids(current, source).distinct(), "all")
    if from_version == to_version:
        return Changes(_record_ids(current.limit(0), source), "unchanged")
    properties = delta_log.table_properties(spark, ref)
    feed = _cdf_or_none(spark, source, from_version=from_version, to_version=to_version, properties=properties)
    if feed is not None:
        return Changes(_record_ids(feed, source).distinct(), "change data feed")
    appended = delta_log.appended_files(spark, ref, from_version=from_version, to_version=to_version)
    if appended is not None:  # only appends, read from the new files alone
        if not appended.names:
            return Changes(_record_ids(current.limit(0), source), "unchanged")
        # Read once (into the run's checkpoints): the ids, validation and standardisation all use these rows, and
        # a delivery's many small files cost more to open than to read.
        rows = _filtered(appended.rows, source).checkpoint()
        return Changes(_record_ids(rows, source).distinct(), "appended files", appended.names, rows,
                       None if source.partition_filter else appended.records)
    before = _filtered(read_table(spark, ref, version=from_version), source)
    has_map = any(isinstance(f.dataType, T.MapType) for f in current.schema.fields)  # exceptAll cannot compare maps
    if has_map or sorted(current.columns) != sorted(before.columns):  # schema changed: every record may differ
        return Changes(_record_ids(current, source).unionByName(_record_ids(before, source)).distinct(), "all")
    now, then = current, before.select(*current.columns)
    how = "version diff"
    # Deletion vectors change a file's rows without renaming it: then only the whole-table diff is right.
    if not _is_true(properties, "delta.enableDeletionVectors"):
        now_files = {p.rsplit("/", 1)[-1] for p in now.inputFiles()}  # bounded: one name per data file
        then_files = {p.rsplit("/", 1)[-1] for p in then.inputFiles()}
        added, removed = now_files - then_files, then_files - now_files
        if not added and not removed:
            return Changes(_record_ids(current.limit(0), source), "unchanged")
        if not removed:  # appends only: every row of the new files is a new or repeated record
            return Changes(_record_ids(rows_in_files(now, added), source).distinct(), "appended files",
                           frozenset(added))
        now = rows_in_files(now, added) if added else now.limit(0)
        then = rows_in_files(then, removed)
        how = "version diff of changed files"
    diff = now.exceptAll(then).unionByName(then.exceptAll(now))
    return Changes(_record_ids(diff, source).distinct(), how)
