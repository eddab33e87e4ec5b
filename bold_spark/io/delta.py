"""The only code that reads department tables and writes output tables.

Each source is read at a pinned Delta version (recorded in bold.link_runs), so a run can be reproduced and an
incremental run knows where the previous one stopped. Every write is one Delta transaction.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession, functions as F, types as T

from bold_spark.config import OutputTables, SourceConfig, TableRef
from bold_spark.io.delta_log import newest_version
from bold_spark.errors import ConfigError, DataQualityError, SchemaContractError
from bold_spark.faults import hold_during_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSnapshot:
    """What was read for one source: enough to reproduce it with Delta time travel."""

    source_system: str
    table: str
    delta_version: int | None
    partition_filter: str | None


def _source_version(spark: SparkSession, source: SourceConfig) -> int:
    try:
        if source.table.path:
            if not DeltaTable.isDeltaTable(spark, source.table.path):
                raise DataQualityError(
                    f"{source.file}: source {source.name}: table.path: no Delta table at {source.table.path}")
        elif not spark.catalog.tableExists(source.table.name):
            raise DataQualityError(
                f"{source.file}: source {source.name}: table.name: catalog table {source.table.name} not found")
        version = newest_version(spark, source.table)
    except AnalysisException as exc:
        raise DataQualityError(
            f"{source.file}: source {source.name}: cannot open {source.table.describe()} as Delta "
            f"({exc.getCondition() or 'analysis error'})") from None
    return version


def read_source(spark: SparkSession, source: SourceConfig) -> tuple[DataFrame, SourceSnapshot]:
    """Read one department table at its current version, with the partition filter pushed down.

    Fails before any work if a mapped column is missing, naming the config file, the source, the key and the column.
    """
    version = _source_version(spark, source)
    if source.table.path:
        df = spark.read.format("delta").option("versionAsOf", version).load(source.table.path)
    else:
        df = spark.sql(f"SELECT * FROM {source.table.name} VERSION AS OF {version}")
    check_mapped_columns(df.schema, source)
    if source.partition_filter:
        partition_columns = _partition_columns(spark, source)
        try:
            df = df.where(F.expr(source.partition_filter))
            df.schema  # noqa: B018 - forces analysis so a bad filter fails here, not mid-run
        except Exception as exc:  # ParseException or AnalysisException
            raise ConfigError(f"{source.file}: source {source.name}: partition_filter: not a valid filter on "
                              f"{source.table.describe()}: {_filter_problem(exc)}") from None
        if not partition_columns:
            log.warning("source %s: partition_filter given but the table is not partitioned; it filters rows "
                        "without pruning files", source.name)
    snapshot = SourceSnapshot(source.name, source.table.describe(), version, source.partition_filter)
    log.info("source %s: reading %s at version %s", source.name, snapshot.table, version)
    return df, snapshot


def _filter_problem(exc: Exception) -> str:
    """Spark's error condition; for a name it cannot resolve, the name and Spark's own suggestions. Both are column
    names from the configuration and the table's schema, never data, unlike the rest of Spark's messages."""
    condition = (exc.getCondition() if hasattr(exc, "getCondition") else None) or type(exc).__name__
    parameters = (exc.getMessageParameters() if hasattr(exc, "getMessageParameters") else None) or {}
    if condition.startswith("UNRESOLVED_COLUMN") and "objectName" in parameters:
        suggestion = f"; did you mean one of {parameters['proposal']}?" if parameters.get("proposal") else ""
        return f"{condition}: no column {parameters['objectName']}{suggestion}"
    return condition


def _partition_columns(spark: SparkSession, source: SourceConfig) -> list[str]:
    table = DeltaTable.forPath(spark, source.table.path) if source.table.path else DeltaTable.forName(
        spark, source.table.name)
    return list(table.detail().select("partitionColumns").first()["partitionColumns"])  # bounded: one row


_USABLE_TYPES = (T.StringType, T.DateType, T.TimestampType, T.IntegerType, T.LongType, T.ShortType, T.ByteType,
                 T.DecimalType, T.CharType, T.VarcharType)


def check_mapped_columns(schema: T.StructType, source: SourceConfig) -> None:
    """Every column the mapping names exists and has a type standardisation can use."""
    fields = {f.name: f.dataType for f in schema.fields}
    for key, column in source.source_columns().items():
        if column not in fields:
            raise SchemaContractError(
                f"{source.file}: source {source.name}: columns: key {key} maps column {column!r}, which "
                f"{source.table.describe()} does not have (it has: {', '.join(sorted(fields))})")
        if not isinstance(fields[column], _USABLE_TYPES):
            raise SchemaContractError(
                f"{source.file}: source {source.name}: columns: key {key} maps column {column!r} of type "
                f"{fields[column].simpleString()}, which cannot be standardised (expected a string, date or number)")


def ensure_database(spark: SparkSession, output: OutputTables) -> None:
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {output.database}")


# Row-level changes (an incremental run's MERGE, replaceWhere) mark replaced rows in deletion vectors instead of
# rewriting every file that holds one: a MERGE of 20,000 changed rows into a 1,000,000-row crosswalk writes those
# rows, not the million. Readers need Delta 2.3 or later (the project's own jars are 4.x).
OUTPUT_TABLE_PROPERTIES = {"delta.enableDeletionVectors": "true"}


def overwrite_table(df: DataFrame, name: str, *, partition_by: list[str] | None = None) -> None:
    """Replace a table's contents in one Delta transaction: readers see the old version or the new one."""
    df = hold_during_write(df, name)  # test hook (BOLD_SPARK_PAUSE_AT), a no-op otherwise: see bold_spark/faults.py
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    location = _location_if_exists(df.sparkSession, name)
    if location:
        writer.save(location)
    else:
        writer.options(**OUTPUT_TABLE_PROPERTIES).saveAsTable(name)


def _location_if_exists(spark: SparkSession, name: str) -> str | None:
    """Where an existing catalog table's files are (given OUTPUT_TABLE_PROPERTIES if it lacks them, as a table
    written before they existed does), or None if it does not exist.

    Existing tables are rewritten through their storage path (Delta's own overwrite, one commit), not through the
    catalog: Spark's replace-table-as-select path corrupts a partitioned table's metadata after an empty overwrite
    (Delta 4.x), and a catalog write makes the Hive metastore try (and fail, logging an ERROR) to alter the
    table's Hive schema, which Delta does not use.
    """
    if not spark.catalog.tableExists(name):
        return None
    detail = spark.sql(f"DESCRIBE DETAIL {name}").select("location", "properties").first()  # bounded: one row
    with_output_properties(spark, detail["location"], detail["properties"])
    return detail["location"]


def with_output_properties(spark: SparkSession, location: str, properties: dict[str, str] | None,
                           wanted: dict[str, str] = OUTPUT_TABLE_PROPERTIES) -> bool:
    """ALTER the Delta table at ``location`` to ``wanted`` where its ``properties`` differ (a table property given
    as a write option only applies when the write creates the table). Returns whether it did (a commit)."""
    missing = {k: v for k, v in wanted.items() if (properties or {}).get(k) != v}
    if missing:
        settings = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())
        spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ({settings})")
    return bool(missing)


def write_concurrently(writes: dict[str, Callable[[], None]]) -> None:
    """Run independent table writes side by side (one Spark job each, from its own thread): most of a small
    Delta write is driver-side latency (catalog lookups, log replay, commit), which overlaps. Each write is still
    its own transaction; the first failure is raised after every write has finished or failed."""
    if len(writes) <= 1:
        for write in writes.values():
            write()
        return
    with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix="bold-write") as pool:
        futures = {name: pool.submit(write) for name, write in writes.items()}
    failed = [(name, f.exception()) for name, f in futures.items() if f.exception() is not None]
    for name, exc in failed[1:]:
        log.error("writing %s failed too: %s", name, type(exc).__name__)
    if failed:
        raise failed[0][1]


def append_table(df: DataFrame, name: str, *, partition_by: list[str] | None = None) -> None:
    """Append in one Delta transaction; new columns of the contract are added to the table (mergeSchema)."""
    writer = df.write.format("delta").mode("append").option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.saveAsTable(name)

def read_table(spark: SparkSession, ref: TableRef, *, version: int | None = None) -> DataFrame:
    """A Delta table by path or catalog name, at its current version or at ``version``; clear error if absent."""
    if ref.path:
        if not DeltaTable.isDeltaTable(spark, ref.path):
            raise DataQualityError(f"no Delta table at {ref.path}")
        reader = spark.read.format("delta")
        return (reader.option("versionAsOf", version) if version is not None else reader).load(ref.path)
    if not spark.catalog.tableExists(ref.name):
        raise DataQualityError(f"catalog table {ref.name} not found")
    return spark.sql(f"SELECT * FROM {ref.name} VERSION AS OF {int(version)}") if version is not None \
        else spark.table(ref.name)


def read_table_as_of_run(spark: SparkSession, name: str, *, run_id: str | None = None,
                         max_versions: int = 50) -> tuple[DataFrame, int, str]:
    """A run-keyed table (such as the crosswalk) as a run published it: (rows of that version, version, run id).

    Without ``run_id``: the current version and the newest run id in it (run ids begin with their UTC start time).
    With one: the newest of the last ``max_versions`` versions whose rows carry it (Delta time travel); each
    probe reads at most one row, and Delta's file statistics on run_id skip most files.
    """
    if not spark.catalog.tableExists(name):
        raise DataQualityError(f"table {name} not found; has the link job run?")
    versions = sorted((int(r["version"]) for r in DeltaTable.forName(spark, name).history(max_versions)
                       .select("version").collect()), reverse=True)  # bounded: max_versions rows
    if run_id is None:
        df = read_table(spark, TableRef(name=name), version=versions[0])
        latest = df.agg(F.max("run_id").alias("run_id")).first()["run_id"]  # bounded: one row
        if latest is None:
            raise DataQualityError(f"{name} has no rows at its current version {versions[0]}")
        return df, versions[0], latest
    for version in versions:
        df = read_table(spark, TableRef(name=name), version=version)
        if df.where(F.col("run_id") == run_id).limit(1).count():
            log.info("%s: run %s found at version %s", name, run_id, version)
            return df, version, run_id
    raise DataQualityError(f"run {run_id} is not in the last {len(versions)} versions of {name} "
                           "(older versions may have been vacuumed)")


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def replace_rows(df: DataFrame, name: str, key: dict[str, str]) -> None:
    """Write ``df`` replacing the rows whose columns equal ``key`` (one Delta transaction; creates the table).

    Every row of ``df`` must carry ``key``: Delta's replaceWhere refuses rows outside the condition.
    """
    location = _location_if_exists(df.sparkSession, name)
    if location:
        condition = " AND ".join(f"{column} = {_sql_string(value)}" for column, value in key.items())
        # mergeSchema: a column added to the contract later (cluster_events.reason) joins an older table
        df.write.format("delta").mode("overwrite").option("replaceWhere", condition) \
            .option("mergeSchema", "true").save(location)
    else:
        df.write.format("delta").mode("overwrite").options(**OUTPUT_TABLE_PROPERTIES).saveAsTable(name)
