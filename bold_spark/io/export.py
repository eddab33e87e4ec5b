"""A plain Parquet copy of the published crosswalk and the programme's views, for readers without Spark or Delta.

The output tables use deletion vectors, which delta-rs (`deltalake`) does not read; a Parquet folder any tool reads
(pandas, DuckDB, Arrow, a BI tool). One folder per published crosswalk version, written once:

    <directory>/crosswalk-v<version>/crosswalk/        partitioned by source_system, like the table
    <directory>/crosswalk-v<version>/<view>/           each programme view, computed over that same version
    <directory>/crosswalk-v<version>/_manifest.json    the versions read, the latest run id, rows per output

The crosswalk and the record groups are read at pinned Delta versions, so the views in a folder describe the
crosswalk in it even while a run publishes.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow.dataset
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bold_spark.config import OutputTables
from bold_spark.errors import DataQualityError
from bold_spark.views.queries import view_queries
from bold_spark.views.settings import ViewSettings

log = logging.getLogger(__name__)


def _version(spark: SparkSession, table: str) -> int:
    return int(DeltaTable.forName(spark, table).history(1).select("version").first()[0])  # one row


def _pinned(spark: SparkSession, output: OutputTables) -> tuple[int, int]:
    """The crosswalk's and record groups' current versions, read so that no publication falls between them (a run
    writes the record groups before the crosswalk: the crosswalk unchanged after both reads means they match)."""
    for _ in range(5):
        crosswalk = _version(spark, output.qualified("crosswalk"))
        groups = _version(spark, output.qualified("record_groups"))
        if _version(spark, output.qualified("crosswalk")) == crosswalk:
            return crosswalk, groups
    raise DataQualityError("export: the crosswalk changed during five attempts to pin it; try again after the run")


def export_snapshot(spark: SparkSession, *, output: OutputTables, views: ViewSettings | None,
                    directory: Path) -> Path:
    """Write the folder for the current crosswalk version (nothing when it exists already); return its path."""
    for table in ("crosswalk", "record_groups"):
        if not spark.catalog.tableExists(output.qualified(table)):
            raise DataQualityError(f"export: catalog table {output.qualified(table)} not found; run the link job first")
    crosswalk_version, groups_version = _pinned(spark, output)
    target = Path(directory) / f"crosswalk-v{crosswalk_version}"
    manifest_file = target / "_manifest.json"
    if manifest_file.exists():
        log.info("export: %s exists already", target)
        return target
    crosswalk = spark.read.option("versionAsOf", crosswalk_version).table(output.qualified("crosswalk"))
    groups = spark.read.option("versionAsOf", groups_version).table(output.qualified("record_groups"))
    suffix = f"{output.database}_export_v{crosswalk_version}"
    crosswalk.createOrReplaceTempView(f"crosswalk_{suffix}")
    groups.createOrReplaceTempView(f"record_groups_{suffix}")
    rows = {}
    crosswalk.write.mode("overwrite").partitionBy("source_system").parquet(str(target / "crosswalk"))
    queries = view_queries(views, crosswalk=f"crosswalk_{suffix}", record_groups=f"record_groups_{suffix}") \
        if views is not None else {}
    for name, select in queries.items():
        spark.sql(select).write.mode("overwrite").parquet(str(target / name))
    for name in ("crosswalk", *queries):  # from the files' footers, not a Spark job each
        rows[name] = pyarrow.dataset.dataset(str(target / name), format="parquet", partitioning="hive").count_rows()
    latest_run = crosswalk.agg(F.max("run_id")).first()[0]  # one row
    for view in (f"crosswalk_{suffix}", f"record_groups_{suffix}"):
        spark.catalog.dropTempView(view)
    manifest = {"crosswalk_version": crosswalk_version, "record_groups_version": groups_version,
                "latest_run_id": latest_run, "rows": rows}
    manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")  # last: a folder with it is complete
    log.info("export: %d outputs of crosswalk version %d in %s", len(rows), crosswalk_version, target)
    return target
