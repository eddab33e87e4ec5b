"""bold.review_queue: the pairs a reviewer should look at after a run, ids and comparison levels only.

Two kinds of pair, both from the run's recorded edges (bold.match_edges), leaving out pairs already decided:
- ``near_threshold``: the match weight is within ``review.band_match_weight`` of cluster_threshold's weight, so
  the decision to link or not rests on little evidence. Priority 0 to 1, highest at the threshold.
- ``flagged_cluster:<why>``: edges at the threshold inside a cluster the quality measures flag: larger than
  ``quality.implausible_cluster_size`` (too_large), or whose records hold two dates of birth (date_of_birth) or
  two sexes (sex). Per cluster its ``review.edges_per_flagged_cluster`` weakest edges, the ones that hold it
  together most loosely: priority 1 + 1 / (rank), so every flagged cluster's weakest edge comes first.
"""
from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, Window, functions as F

from bold_spark.review.decisions import PAIR, ordered_pair
from bold_spark.review.settings import ReviewSettings
from bold_spark.schemas import REVIEW_QUEUE, conform

KEYS = ["source_system", "source_record_id"]
NEAR_THRESHOLD = "near_threshold"


def threshold_weight(threshold: float) -> float:
    """The match weight (log2 of the odds) at a match probability."""
    return math.log2(threshold / (1.0 - threshold)) if threshold < 1 else math.inf


def _with_clusters(edges: DataFrame, crosswalk: DataFrame) -> DataFrame:
    ids = crosswalk.select(*KEYS, "cluster_id")
    for side in ("l", "r"):
        edges = edges.join(ids.toDF(f"source_system_{side}", f"source_record_id_{side}", f"cluster_id_{side}"),
                           [f"source_system_{side}", f"source_record_id_{side}"], how="left")
    return edges


def flagged_clusters(crosswalk: DataFrame, persons: DataFrame, *, implausible_size: int) -> DataFrame:
    """crosswalk (source_system, source_record_id, cluster_id), persons (keys, date_of_birth, sex) -> (cluster_id,
    why) for each flag a cluster raises (bounded by clusters, never collected)."""
    per = (crosswalk.select(*KEYS, "cluster_id").join(persons.select(*KEYS, "date_of_birth", "sex"), KEYS,
                                                      how="left")
           .groupBy("cluster_id").agg(F.count(F.lit(1)).alias("size"),
                                      F.countDistinct("date_of_birth").alias("dates"),
                                      F.countDistinct("sex").alias("sexes"))
           .where(F.col("size") >= 2))
    whys = F.array_compact(F.array(F.when(F.col("size") > implausible_size, F.lit("too_large")),
                                   F.when(F.col("dates") > 1, F.lit("date_of_birth")),
                                   F.when(F.col("sexes") > 1, F.lit("sex"))))
    return per.select("cluster_id", F.explode(whys).alias("why"))


def _priority_near(weight: Column, centre: float, band: float) -> Column:
    return F.lit(1.0) - F.abs(weight - F.lit(centre)) / F.lit(band) if band > 0 else F.lit(1.0)


def review_queue(edges: DataFrame, crosswalk: DataFrame, persons: DataFrame, *, threshold: float,
                 settings: ReviewSettings, implausible_size: int, run_id: str,
                 decided: DataFrame | None = None) -> DataFrame:
    """MATCH_EDGES, the run's crosswalk, its accepted standardised records (date_of_birth, sex) and the pairs
    already decided (PAIR...) -> REVIEW_QUEUE, one row per pair (its highest priority), highest first."""
    scored = ordered_pair(edges.select(*PAIR, "match_weight", "match_probability", "comparison_levels"))
    if decided is not None:
        scored = scored.join(ordered_pair(decided.select(*PAIR)), PAIR, how="left_anti")
    centre, band = threshold_weight(threshold), settings.band_match_weight
    near = (scored.where(F.abs(F.col("match_weight") - F.lit(centre)) <= F.lit(band))
            .withColumn("reason", F.lit(NEAR_THRESHOLD))
            .withColumn("priority", _priority_near(F.col("match_weight"), centre, band)))
    with_ids = _with_clusters(scored.where(F.col("match_probability") >= threshold), crosswalk)
    inside = with_ids.where(F.col("cluster_id_l") == F.col("cluster_id_r"))
    flags = flagged_clusters(crosswalk, persons, implausible_size=implausible_size)
    weakest = Window.partitionBy("cluster_id_l", "why").orderBy(F.col("match_weight").asc(), *[F.col(c) for c in PAIR])
    flagged = (inside.join(flags.withColumnRenamed("cluster_id", "cluster_id_l"), "cluster_id_l", how="inner")
               .withColumn("_rank", F.row_number().over(weakest))
               .where(F.col("_rank") <= settings.edges_per_flagged_cluster)
               .withColumn("reason", F.concat(F.lit("flagged_cluster:"), F.col("why")))
               .withColumn("priority", F.lit(1.0) + F.lit(1.0) / F.col("_rank"))
               .drop("why", "_rank", "cluster_id_l", "cluster_id_r"))
    candidates = near.unionByName(flagged)
    best = Window.partitionBy(*PAIR).orderBy(F.col("priority").desc(), F.col("reason"))
    queue = (candidates.withColumn("_r", F.row_number().over(best)).where(F.col("_r") == 1).drop("_r"))
    return conform(_with_clusters(queue, crosswalk).withColumn("run_id", F.lit(run_id)), REVIEW_QUEUE) \
        .orderBy(F.col("priority").desc(), *[F.col(c) for c in PAIR])
