"""Connected components of the match graph at a threshold, in Spark DataFrames.

Min-label propagation with pointer jumping: every node takes the smallest label among itself and its
neighbours, then the label of its label. Linkage graphs have small diameters, so this converges in a few rounds;
each round cuts its lineage with a checkpoint so plans stay small. Only nodes with edges take part.

Done is tested on the labels themselves, before a round rather than after it: when both ends of every edge
hold one label, each component holds one, and it is the component's smallest node (a label is always a node of
the component and never larger than the node holding it). Most linkage clusters are cliques and stars, which the
first labels already settle, so a run usually needs no round at all; testing for a change instead costs one more
round (a join, two aggregates and a checkpoint) in every run.
"""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame, functions as F

log = logging.getLogger(__name__)


def _settled(directed: DataFrame, labels: DataFrame) -> bool:
    """Whether both ends of every edge hold the same label (one query, stops at the first edge that does not)."""
    ends = labels.select(F.col("node").alias("n"), F.col("label").alias("node_label"))
    other = labels.select(F.col("node").alias("m"), F.col("label").alias("neighbour_label"))
    return (directed.join(ends, directed["node"] == ends["n"]).join(other, directed["neighbour"] == other["m"])
            .where(F.col("node_label") != F.col("neighbour_label")).limit(1).count()) == 0


def connected_components(edges: DataFrame, *, max_rounds: int = 100) -> DataFrame:
    """``edges(src, dst)`` of comparable keys -> ``(node, component)``, component = smallest node in it."""
    directed = edges.select(F.col("src").alias("node"), F.col("dst").alias("neighbour")).unionByName(
        edges.select(F.col("dst").alias("node"), F.col("src").alias("neighbour"))
    ).where(F.col("node") != F.col("neighbour")).distinct().checkpoint()
    labels = directed.groupBy("node").agg(
        F.least(F.min("neighbour"), F.first("node")).alias("label")).checkpoint()
    for round_number in range(max_rounds + 1):
        if _settled(directed, labels):
            log.info("connected components settled after %d rounds", round_number)
            return labels.select("node", F.col("label").alias("component"))
        if round_number == max_rounds:
            break
        neighbour_labels = (
            directed.alias("e").join(labels.alias("l"), F.col("e.neighbour") == F.col("l.node"), how="inner")
            .select(F.col("e.node").alias("node"), F.col("l.label").alias("label"))
        )
        propagated = labels.unionByName(neighbour_labels).groupBy("node").agg(F.min("label").alias("label"))
        labels = (
            propagated.alias("p").join(propagated.alias("q"), F.col("p.label") == F.col("q.node"), how="left")
            .select(F.col("p.node").alias("node"),
                    F.least(F.col("p.label"), F.coalesce(F.col("q.label"), F.col("p.label"))).alias("label"))
        ).checkpoint()
    raise RuntimeError(f"connected components did not settle in {max_rounds} rounds")
