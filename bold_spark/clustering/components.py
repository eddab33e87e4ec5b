"""Connected components of the match graph at a threshold, in Spark DataFrames.

Min-label propagation with pointer jumping: every node takes the smallest label among itself and its
neighbours, then the label of its label. Linkage graphs have small diameters, so this converges in a few rounds;
each round cuts its lineage with a checkpoint so plans stay small. Only nodes with edges take part.
"""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame, functions as F

log = logging.getLogger(__name__)


def connected_components(edges: DataFrame, *, max_rounds: int = 100) -> DataFrame:
    """``edges(src, dst)`` of comparable keys -> ``(node, component)``, component = smallest node in it."""
    directed = edges.select(F.col("src").alias("node"), F.col("dst").alias("neighbour")).unionByName(
        edges.select(F.col("dst").alias("node"), F.col("src").alias("neighbour"))
    ).where(F.col("node") != F.col("neighbour")).distinct().checkpoint()
    labels = directed.groupBy("node").agg(
        F.least(F.min("neighbour"), F.first("node")).alias("label")).checkpoint()
    for round_number in range(1, max_rounds + 1):
        neighbour_labels = (
            directed.alias("e").join(labels.alias("l"), F.col("e.neighbour") == F.col("l.node"), how="inner")
            .select(F.col("e.node").alias("node"), F.col("l.label").alias("label"))
        )
        propagated = labels.unionByName(neighbour_labels).groupBy("node").agg(F.min("label").alias("label"))
        jumped = (
            propagated.alias("p").join(propagated.alias("q"), F.col("p.label") == F.col("q.node"), how="left")
            .select(F.col("p.node").alias("node"),
                    F.least(F.col("p.label"), F.coalesce(F.col("q.label"), F.col("p.label"))).alias("label"))
        ).checkpoint()
        changed = (jumped.alias("n").join(labels.alias("o"), "node", how="inner")
                   .where(F.col("n.label") != F.col("o.label")).limit(1).count())
        labels = jumped
        if changed == 0:
            log.info("connected components converged after %d rounds", round_number)
            return labels.select("node", F.col("label").alias("component"))
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
