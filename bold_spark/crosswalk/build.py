"""Build bold.crosswalk: one row per accepted record with its (stable) cluster id, singletons included."""
from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window, functions as F

from bold_spark.clustering.components import connected_components
from bold_spark.crosswalk.stable_ids import StableAssignment, assign_stable_ids, cluster_id_from_key, record_key
from bold_spark.schemas import CROSSWALK, conform

__all__ = ["build_crosswalk", "cluster_records", "best_edges", "finish_crosswalk", "record_key",
           "cluster_id_from_key"]


def _linking(edges: DataFrame, threshold: float) -> DataFrame:
    return edges.where(F.col("match_probability") >= threshold).select(
        record_key(F.col("source_system_l"), F.col("source_record_id_l")).alias("src"),
        record_key(F.col("source_system_r"), F.col("source_record_id_r")).alias("dst"),
        "match_probability",
    )


def cluster_records(records: DataFrame, edges: DataFrame, *, threshold: float) -> DataFrame:
    """``records(source_system, source_record_id)`` + edges -> (source_system, source_record_id, component).

    ``component`` is the smallest member key of the record's cluster (its own key for a singleton). Edges whose
    ends are not in ``records`` are ignored.
    """
    keyed = records.select("source_system", "source_record_id",
                           record_key(F.col("source_system"), F.col("source_record_id")).alias("node"))
    nodes = keyed.select(F.col("node").alias("k"))
    linking = (_linking(edges, threshold)
               .join(nodes.withColumnRenamed("k", "src"), "src", how="left_semi")
               .join(nodes.withColumnRenamed("k", "dst"), "dst", how="left_semi"))
    components = connected_components(linking.select("src", "dst"))
    return keyed.join(components, "node", how="left").select(
        "source_system", "source_record_id", F.coalesce(F.col("component"), F.col("node")).alias("component"))


def best_edges(edges: DataFrame, *, threshold: float) -> DataFrame:
    """(source_system, source_record_id, match_probability): the best edge at or above ``threshold`` per record."""
    e = edges.where(F.col("match_probability") >= threshold)
    sides = e.select(F.col("source_system_l").alias("source_system"), F.col("source_record_id_l").alias(
        "source_record_id"), "match_probability").unionByName(
        e.select(F.col("source_system_r").alias("source_system"), F.col("source_record_id_r").alias(
            "source_record_id"), "match_probability"))
    return sides.groupBy("source_system", "source_record_id").agg(F.max("match_probability").alias("match_probability"))


def finish_crosswalk(crosswalk_ids: DataFrame, edges: DataFrame, *, threshold: float, run_id: str) -> DataFrame:
    """(source_system, source_record_id, cluster_id) -> the crosswalk contract (size, best edge, run id)."""
    joined = crosswalk_ids.join(best_edges(edges, threshold=threshold), ["source_system", "source_record_id"],
                                how="left")
    with_size = joined.withColumn("cluster_size", F.count(F.lit(1)).over(Window.partitionBy("cluster_id"))) \
        .withColumn("run_id", F.lit(run_id))
    return conform(with_size, CROSSWALK)


def build_crosswalk(records: DataFrame, edges: DataFrame, *, threshold: float, run_id: str,
                    previous: DataFrame | None = None, issued: DataFrame | None = None,
                    at: datetime | None = None) -> tuple[DataFrame, DataFrame]:
    """``records(source_system, source_record_id)`` and scored ``edges`` -> (crosswalk, cluster events).

    Records are clustered by the edges at or above ``threshold``; ids are carried forward from ``previous`` (the
    last published crosswalk) by ``assign_stable_ids``; ``match_probability`` is the best such edge (null for a
    singleton).
    """
    # Checkpointed (the session's checkpoint dir, as connected_components does): the id assignment reads the
    # components several times, and re-planning their lineage for each read is slow.
    components = cluster_records(records, edges, threshold=threshold).checkpoint()
    assignment: StableAssignment = assign_stable_ids(components, previous, run_id=run_id, issued=issued, at=at,
                                                     reuse=lambda frame: frame.checkpoint())
    crosswalk = finish_crosswalk(assignment.crosswalk_ids, edges, threshold=threshold, run_id=run_id)
    return crosswalk, assignment.events
