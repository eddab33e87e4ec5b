"""What a department table's Delta log says, read on the driver from its commits, without scanning data files.

A monthly delivery appends a few files to each table. Public Delta APIs answer "which rows did those files add"
only by scanning every file (Delta prunes files by partition and statistics, never by file name) and "what are the
table's properties" with ``DESCRIBE DETAIL``, a Spark job per table. Delta's own DeltaLog answers both from the
commits alone, and builds a DataFrame over exactly the appended files, as Delta's change feed reader does.

DeltaLog is Delta's internal class, so when it is missing, has another shape, or refuses, newest_version and
table_properties take the public route themselves and the other functions return None for their callers to take it
(slower, same answer).
"""
from __future__ import annotations

import json
import logging
from typing import NamedTuple

from delta.tables import DeltaTable
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession

from bold_spark.config import TableRef

log = logging.getLogger(__name__)

# Actions that leave every existing row as it was: a range holding only these (and AddFile without a deletion
# vector) appended rows and did nothing else. Anything else (RemoveFile, Metadata, Protocol, CDC files) does not.
_NEUTRAL_ACTIONS = {"CommitInfo", "SetTransaction", "DomainMetadata"}


class AppendedFiles(NamedTuple):
    rows: DataFrame  # every column of the table, read from the appended files alone
    names: frozenset[str]  # the data files' names (Delta names each file with a fresh UUID)
    records: int | None  # the rows they hold, from the log's per-file statistics; None if a file has none


def _delta_log(spark: SparkSession, ref: TableRef):
    jvm = spark._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog
    if ref.path:
        return delta_log.forTable(spark._jsparkSession, ref.path)
    identifier = spark._jsparkSession.sessionState().sqlParser().parseTableIdentifier(ref.name)
    return delta_log.forTable(spark._jsparkSession, identifier)


def _newest_snapshot(spark: SparkSession, ref: TableRef):
    none = spark._jvm.scala.Option.empty()
    return _delta_log(spark, ref).update(False, none, none)


def _logged_version(spark: SparkSession, ref: TableRef) -> int | None:
    """The table's newest version from its log (no Spark job, unlike ``DeltaTable.history``), or None."""
    try:
        version = int(_newest_snapshot(spark, ref).version())
    except (Py4JError, PySparkException) as exc:
        log.info("table %s: Delta log version unavailable (%s); reading its history", ref.describe(),
                 type(exc).__name__)
        return None
    return version if version >= 0 else None  # -1: no commit yet


def newest_version(spark: SparkSession, ref: TableRef) -> int:
    """An existing table's newest version: from its log, else from ``DESCRIBE HISTORY`` (a Spark job)."""
    version = _logged_version(spark, ref)
    if version is None:
        table = DeltaTable.forPath(spark, ref.path) if ref.path else DeltaTable.forName(spark, ref.name)
        version = int(table.history(1).select("version").first()["version"])  # bounded: one row
    return version


def table_properties(spark: SparkSession, ref: TableRef) -> dict[str, str]:
    """An existing table's properties (``delta.enableChangeDataFeed`` ...) at its newest version: from its log,
    else from ``DESCRIBE DETAIL`` (a Spark job)."""
    try:
        configuration = _newest_snapshot(spark, ref).metadata().configuration()
        return dict(spark._jvm.scala.jdk.javaapi.CollectionConverters.asJava(configuration))
    except (Py4JError, PySparkException) as exc:
        log.info("table %s: Delta log properties unavailable (%s); using DESCRIBE DETAIL", ref.describe(),
                 type(exc).__name__)
    table = DeltaTable.forPath(spark, ref.path) if ref.path else DeltaTable.forName(spark, ref.name)
    return table.detail().select("properties").first()["properties"] or {}  # bounded: one row


def _records(added: list) -> int | None:
    """Rows in the files ``added`` (AddFile actions without deletion vectors), from their statistics."""
    counts = [json.loads(stats).get("numRecords") if stats else None for stats in (a.stats() for a in added)]
    return None if any(c is None for c in counts) else sum(int(c) for c in counts)


def appended_files(spark: SparkSession, ref: TableRef, *, from_version: int, to_version: int
                   ) -> AppendedFiles | None:
    """The rows the commits after ``from_version`` up to ``to_version`` added, when those commits only added files
    (a delivery appended); None when they did anything else (a delete, an update, a schema change, a rewrite),
    when a commit in the range is no longer in the log, or when Delta's internals are not as expected."""
    try:
        jvm = spark._jvm
        none = jvm.scala.Option.empty()
        delta_log = _delta_log(spark, ref)
        commits = delta_log.getChanges(from_version + 1, to_version, none, True)  # True: a missing commit raises
        added, seen = [], []
        while commits.hasNext():
            commit = commits.next()
            seen.append(int(commit._1()))
            actions = commit._2()
            for i in range(actions.size()):
                action = actions.apply(i)
                kind = action.getClass().getSimpleName()
                if kind == "AddFile" and action.dataChange() and action.deletionVector() is None:
                    added.append(action)
                elif kind not in _NEUTRAL_ACTIONS:
                    return None
        if seen != list(range(from_version + 1, to_version + 1)):
            return None
        snapshot = delta_log.getSnapshotAt(to_version, none, none, False)
        files = jvm.scala.jdk.javaapi.CollectionConverters.asScala(jvm.java.util.ArrayList(added)).toList()
        rows = DataFrame(delta_log.createDataFrame(snapshot, files, False, none), spark)
        return AppendedFiles(rows, frozenset(a.path().rsplit("/", 1)[-1] for a in added), _records(added))
    except (Py4JError, PySparkException) as exc:
        log.info("table %s: appended files not readable from the Delta log (%s); diffing versions",
                 ref.describe(), type(exc).__name__)
        return None
