"""The standardised records a link run linked, kept so the next incremental run re-reads only what changed.

One Delta table per output database under ``state_dir``, overwritten by every link run; each version is tagged
with its run id (Delta commit ``userMetadata``), so an incremental run reads the version of the last successful run
even when a later run failed or was held after writing its own. It holds personal data (standardised names, dates
of birth, postcodes): it lives beside the sources' access controls, not in the analysts' catalog.
"""
from __future__ import annotations

import logging
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.config import JobConfig

log = logging.getLogger(__name__)

RECENT_VERSIONS = 20  # versions searched for a run's tag; older ones are not worth resuming from


def state_path(config: JobConfig) -> Path:
    return config.state_dir / config.output.database / "standardised"


def write_state(standardised: DataFrame, config: JobConfig, *, run_id: str) -> None:
    """Replace the stored records with this run's, in one Delta commit tagged with ``run_id``."""
    (standardised.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
     .option("userMetadata", run_id).partitionBy("source_system").save(str(state_path(config))))


def read_state(spark: SparkSession, config: JobConfig, *, run_id: str) -> DataFrame | None:
    """The records run ``run_id`` stored, or None when that version is not there (never stored, or replaced more
    than RECENT_VERSIONS runs ago)."""
    path = str(state_path(config))
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    tagged = (DeltaTable.forPath(spark, path).history(RECENT_VERSIONS).where(F.col("userMetadata") == run_id)
              .select("version").collect())  # bounded: RECENT_VERSIONS rows at most
    if not tagged:
        log.info("state: no stored records of run %s in the last %d versions of %s", run_id, RECENT_VERSIONS, path)
        return None
    return spark.read.format("delta").option("versionAsOf", int(tagged[0]["version"])).load(path)
