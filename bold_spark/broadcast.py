"""Broadcast the small side of a join when it is known to be small.

Spark's adaptive execution turns a sort-merge join into a broadcast only after both sides have been shuffled, so
joining a million stored records with ten thousand changed keys still shuffles the million. The incremental run
counts its small sides (changed and dirty records), and hints the broadcast itself below a bound that keeps the
broadcast table (keys of a few tens of bytes) well within an executor's memory. Frames passed on to Splink are
written as parquet instead (``as_parquet``), so Spark's own planner sees their size.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, functions as F

BROADCAST_MAX_ROWS = 500_000


def small_side(df: DataFrame, rows: int) -> DataFrame:
    """``df`` hinted for broadcast when its ``rows`` (counted by the caller) are few enough."""
    return F.broadcast(df) if rows <= BROADCAST_MAX_ROWS else df


def as_parquet(df: DataFrame, path: str) -> DataFrame:
    """``df`` written as parquet at ``path`` and read back. Unlike a checkpoint, a file scan has a size Spark knows,
    so a join with a few thousand rows broadcasts them instead of shuffling both sides."""
    df.write.mode("overwrite").parquet(path)
    return df.sparkSession.read.parquet(path)
