"""Broadcast the small side of a join when it is known to be small.

Spark's adaptive execution turns a sort-merge join into a broadcast only after both sides have been shuffled, so
joining a million stored records with ten thousand changed keys still shuffles the million. The incremental run
counts its small sides (changed and dirty records), and hints the broadcast itself below a bound that keeps the
broadcast table (keys of a few tens of bytes) well within an executor's memory.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, functions as F

BROADCAST_MAX_ROWS = 500_000


def small_side(df: DataFrame, rows: int) -> DataFrame:
    """``df`` hinted for broadcast when its ``rows`` (counted by the caller) are few enough."""
    return F.broadcast(df) if rows <= BROADCAST_MAX_ROWS else df
