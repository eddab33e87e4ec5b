"""A test hook for the fault tests: hold a run at a chosen point so a test can kill it there deterministically.

Off unless the environment variable BOLD_SPARK_PAUSE_AT is set (never set it in production). With
BOLD_SPARK_PAUSE_AT=write:<database.table>, the Delta write of that table is held *inside its Spark job* (the
transaction has begun, its tasks are running, nothing is committed): a task creates
``$BOLD_SPARK_PAUSE_DIR/<point>.reached`` and waits until ``<point>.release`` exists. tests/integration/test_faults.py
kills the job at that moment and checks the previous version of the table is intact.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from pyspark.sql import DataFrame, functions as F

PAUSE_AT = "BOLD_SPARK_PAUSE_AT"
PAUSE_DIR = "BOLD_SPARK_PAUSE_DIR"


def pause_point(point: str) -> None:
    """Block while the hook targets ``point`` (signal arrival with a file, wait for a release file)."""
    if os.environ.get(PAUSE_AT) != point:
        return
    folder = Path(os.environ.get(PAUSE_DIR, "."))
    safe = point.replace(":", "_").replace("/", "_")
    (folder / f"{safe}.reached").touch()
    while not (folder / f"{safe}.release").exists():
        time.sleep(0.2)


def hold_during_write(df: DataFrame, table: str) -> DataFrame:
    """``df`` unchanged, or (hook on for ``write:<table>``) with a pass-through UDF that pauses inside the write job."""
    point = f"write:{table}"
    if os.environ.get(PAUSE_AT) != point:
        return df

    @F.udf("string")
    def hold(value):  # runs in the Python worker of a write task
        pause_point(point)
        return value

    column = next(f.name for f in df.schema.fields if f.dataType.typeName() == "string")
    return df.withColumn(column, hold(F.col(column)))
