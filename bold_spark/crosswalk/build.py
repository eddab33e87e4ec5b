"""Build bold.crosswalk: one row per accepted record with its cluster, singletons included."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window, functions as F

from bold_spark.clustering.components import connected_components
from bold_spark.schemas import CROSSWALK, conform

_SEPARATOR = "\u001f"  # unit separator: cannot appear in a trimmed record id by accident of formatting


def record_key(source_system: Column, source_record_id: Column) -> Column:
    return F.concat_ws(_SEPARATOR, source_system, source_record_id)


def cluster_id_from_key(component: Column) -> Column:
    """An opaque id derived from the cluster's smallest member key (no record id is exposed)."""
    return F.concat(F.lit("P"), F.substring(F.sha2(component, 256), 1, 20))


def build_crosswalk(records: DataFrame, edges: DataFrame, *, threshold: float, run_id: str) -> DataFrame:
    """``records(source_system, source_record_id)`` and scored ``edges`` -> the crosswalk contract.

    Records are joined to clusters where at least one edge at or above ``threshold`` touches them;
    ``match_probability`` is the best such edge (null for a singleton).
    """
    linking = edges.where(F.col("match_probability") >= threshold).select(
        record_key(F.col("source_system_l"), F.col("source_record_id_l")).alias("src"),
        record_key(F.col("source_system_r"), F.col("source_record_id_r")).alias("dst"),
        "match_probability",
    )
    components = connected_components(linking.select("src", "dst"))
    best_edge = (
        linking.select(F.col("src").alias("node"), "match_probability")
        .unionByName(linking.select(F.col("dst").alias("node"), "match_probability"))
        .groupBy("node").agg(F.max("match_probability").alias("match_probability"))
    )
    keyed = records.select("source_system", "source_record_id",
                           record_key(F.col("source_system"), F.col("source_record_id")).alias("node"))
    joined = (
        keyed.join(components, "node", how="left")
        .join(best_edge, "node", how="left")
        .withColumn("cluster_id", cluster_id_from_key(F.coalesce(F.col("component"), F.col("node"))))
    )
    with_size = joined.withColumn("cluster_size", F.count(F.lit(1)).over(Window.partitionBy("cluster_id"))) \
        .withColumn("run_id", F.lit(run_id))
    return conform(with_size, CROSSWALK)
