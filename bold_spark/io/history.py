"""Reading what earlier runs published (crosswalk ids, issued ids, input versions) and publishing a run's ids.

The previous crosswalk is read at a pinned Delta version, so overwriting the table later in the same run cannot
change what this run's ids were derived from.
"""
from __future__ import annotations

import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.config import OutputTables, TableRef
from bold_spark.crosswalk.stable_ids import issued_ids
from bold_spark.io.delta import overwrite_table, read_table, replace_rows
from bold_spark.io.delta_log import newest_version
from bold_spark.standardise.person import COUNT_COLUMNS

log = logging.getLogger(__name__)


def current_version(spark: SparkSession, name: str) -> int | None:
    """The newest Delta version of a catalog table, or None if the table does not exist yet."""
    if not spark.catalog.tableExists(name):
        return None
    return newest_version(spark, TableRef(name=name))


def previous_crosswalk(spark: SparkSession, output: OutputTables) -> DataFrame | None:
    """The published crosswalk (all columns) at its current version, pinned; None before the first run."""
    name = output.qualified("crosswalk")
    version = current_version(spark, name)
    if version is None:
        return None
    log.info("carrying cluster ids forward from %s version %d", name, version)
    return read_table(spark, TableRef(name=name), version=version)


def issued_cluster_ids(spark: SparkSession, output: OutputTables) -> DataFrame | None:
    """(cluster_id) of every id any run has issued, so retired ids are never reused; None before the first run."""
    name = output.qualified("cluster_events")
    version = current_version(spark, name)
    return None if version is None else issued_ids(read_table(spark, TableRef(name=name), version=version))


def write_events(events: DataFrame, output: OutputTables, *, run_id: str) -> None:
    """Replace this run's rows of bold.cluster_events (idempotent if a run is retried under the same id)."""
    replace_rows(events, output.qualified("cluster_events"), {"run_id": run_id})


def publish_crosswalk(crosswalk: DataFrame, events: DataFrame, output: OutputTables, *, run_id: str) -> None:
    """Crosswalk first (one transaction), then its events: events never describe a crosswalk that was not published.

    If the process dies between the two, the published crosswalk's run_id has no events rows; re-running
    carries its ids forward normally.
    """
    overwrite_table(crosswalk, output.qualified("crosswalk"), partition_by=["source_system"])
    write_events(events, output, run_id=run_id)


def last_successful_link(spark: SparkSession, output: OutputTables) -> dict | None:
    """The newest succeeded link (or incremental link) run's id, and per source: the Delta version and partition
    filter it read, and its record counts (where recorded); None if there is none."""
    name = output.qualified("link_runs")
    if not spark.catalog.tableExists(name):
        return None
    row = (spark.table(name).where(F.col("job").isin("link", "link_incremental") & (F.col("status") == "succeeded"))
           .orderBy(F.col("started_at").desc(), F.col("run_id").desc())
           .select("run_id", "inputs", "model_id", "config_digest").limit(1).collect())  # bounded: one row
    if not row:
        return None
    return {"run_id": row[0]["run_id"], "model_id": row[0]["model_id"], "config_digest": row[0]["config_digest"],
            "versions": {i["source_system"]: i["delta_version"] for i in row[0]["inputs"] or []},
            "filters": {i["source_system"]: i["partition_filter"] for i in row[0]["inputs"] or []},
            "counts": {i["source_system"]: {k: i[k] for k in COUNT_COLUMNS} for i in row[0]["inputs"] or []
                       if all(i[k] is not None for k in COUNT_COLUMNS)}}


def pinned_table(spark: SparkSession, name: str) -> DataFrame | None:
    """A catalog table at its current version, pinned (later writes in this run do not change it); None if absent."""
    version = current_version(spark, name)
    return None if version is None else read_table(spark, TableRef(name=name), version=version)


def merge_changes(changes: DataFrame, name: str, *, keys: list[str]) -> None:
    """Apply ``changes`` (the table's columns + ``_op``: 'upsert' or 'delete') to ``name`` in one Delta MERGE.

    Keys must be unique in ``changes``; rows of the table not named in ``changes`` are left as they are.
    """
    columns = [c for c in changes.columns if c != "_op"]
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    assignments = {f"`{c}`": f"s.`{c}`" for c in columns}
    (DeltaTable.forName(changes.sparkSession, name).alias("t").merge(changes.alias("s"), condition)
     .whenMatchedDelete(condition="s._op = 'delete'")
     .whenMatchedUpdate(condition="s._op = 'upsert'", set=assignments)
     .whenNotMatchedInsert(condition="s._op = 'upsert'", values=assignments)
     .execute())
