"""Carry person cluster ids forward from the last published crosswalk, and say what changed.

Rules (all decided with joins and windows, nothing collected to the driver):

* Every previous id goes to at most one new cluster: the one holding most of its remaining records (ties: the
  cluster with the smallest member key).
* A new cluster chosen by several previous ids keeps the one with the greatest overlap (ties: the smallest id);
  the others are retired with a ``merged`` event pointing at the survivor.
* A split: the part holding most of the old cluster keeps its id; every other part gets a new id (``split`` event
  pointing at the id it came from).
* A cluster of records no previous cluster held gets a new id (``new`` event); a previous id none of whose
  records remain (deleted at source or now rejected) is ``retired``.
* New ids are ``P`` + 20 hex digits of SHA-256 of the cluster's smallest member key, so unchanged inputs give
  identical ids and no record id is exposed; an id ever issued before (``issued``) is never reissued: the key is
  salted (``#1``, ``#2``, ...) until the id is unused.

Known limit: a previous id that loses the survivor contest in its first-choice cluster is retired even if it
could have continued elsewhere (greedy, one round); that is deterministic and recorded as ``merged``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window, functions as F

from bold_spark.schemas import CLUSTER_EVENTS, conform

_SEPARATOR = "\u001f"  # unit separator: cannot appear in a trimmed record id by accident of formatting
_SALTS = 4  # candidate ids per new cluster; a collision of salt 0 already needs a reused smallest key


def record_key(source_system: Column, source_record_id: Column) -> Column:
    return F.concat_ws(_SEPARATOR, source_system, source_record_id)


def cluster_id_from_key(component: Column, salt: Column | int = 0) -> Column:
    """An opaque id from the cluster's smallest member key (salt 0: the plain key, as first runs always used)."""
    salt = F.lit(salt) if isinstance(salt, int) else salt
    keyed = F.when(salt == 0, component).otherwise(F.concat(component, F.lit(_SEPARATOR + "#"), salt.cast("string")))
    return F.concat(F.lit("P"), F.substring(F.sha2(keyed, 256), 1, 20))


@dataclass
class StableAssignment:
    crosswalk_ids: DataFrame  # source_system, source_record_id, cluster_id
    events: DataFrame  # CLUSTER_EVENTS


def assign_stable_ids(components: DataFrame, previous: DataFrame | None, *, run_id: str,
                      issued: DataFrame | None = None, at: datetime | None = None,
                      reuse: Callable[[DataFrame], DataFrame] = lambda frame: frame) -> StableAssignment:
    """Ids for this run's clusters, carried forward from ``previous`` where the clusters continue.

    ``components``: (source_system, source_record_id, component), one row per record of this run, where
    ``component`` is the cluster's smallest member key (``record_key``). ``previous``: the last published
    (source_system, source_record_id, cluster_id), or None on a first run. ``issued``: (cluster_id) of every id
    ever issued (e.g. from bold.cluster_events), so a retired id is never handed out again; ``previous``'s ids
    are always treated as issued. ``reuse`` keeps the two intermediate frames that both the ids and the events
    read (e.g. ``lambda f: f.checkpoint()``; by default they are recomputed per query).
    """
    spark = components.sparkSession
    when = F.lit(at).cast("timestamp") if at else F.current_timestamp()
    comp = components.select("source_system", "source_record_id", "component")
    sizes = comp.groupBy("component").agg(F.count(F.lit(1)).alias("size"))
    if previous is None:
        previous = spark.createDataFrame([], "source_system string, source_record_id string, cluster_id string")
    prev = previous.select("source_system", "source_record_id", F.col("cluster_id").alias("prev_id"))

    overlap = reuse(comp.join(prev, ["source_system", "source_record_id"], how="inner")
                    .groupBy("component", "prev_id").agg(F.count(F.lit(1)).alias("overlap")))
    # Each previous id's first choice: the cluster holding most of its records, then the smallest member key.
    by_prev = Window.partitionBy("prev_id").orderBy(F.col("overlap").desc(), F.col("component"))
    choice = overlap.withColumn("r", F.row_number().over(by_prev)).where(F.col("r") == 1).drop("r")
    # Each cluster keeps, among the ids choosing it, the one with the greatest overlap, then the smallest id.
    by_comp = Window.partitionBy("component").orderBy(F.col("overlap").desc(), F.col("prev_id"))
    ranked = choice.withColumn("r", F.row_number().over(by_comp))
    survivors = ranked.where(F.col("r") == 1).select("component", F.col("prev_id").alias("cluster_id"))
    merged = ranked.where(F.col("r") > 1).alias("m").join(
        survivors.alias("s"), "component", how="inner").select(
        F.lit("merged").alias("event"), F.col("m.prev_id").alias("cluster_id"),
        F.col("s.cluster_id").alias("related_cluster_id"), F.col("m.overlap").alias("records"))

    # Clusters without a surviving id: new (no previous records) or split off (from their biggest source).
    by_comp_all = Window.partitionBy("component").orderBy(F.col("overlap").desc(), F.col("prev_id"))
    origin = overlap.withColumn("r", F.row_number().over(by_comp_all)).where(F.col("r") == 1).select(
        "component", F.col("prev_id").alias("origin_id"))
    fresh = (sizes.join(survivors, "component", how="left_anti")
             .join(origin, "component", how="left"))
    candidates = (fresh.select("component", F.explode(F.sequence(F.lit(0), F.lit(_SALTS - 1))).alias("salt"))
                  .withColumn("cluster_id", cluster_id_from_key(F.col("component"), F.col("salt"))))
    taken = prev.select(F.col("prev_id").alias("cluster_id"))
    if issued is not None:
        taken = taken.unionByName(issued.select("cluster_id"))
    # Only the candidates' own ids are looked up among the taken ones (few in an incremental run, where every id
    # ever issued is taken): no distinct list of every issued id is built.
    taken = taken.join(candidates.select("cluster_id"), "cluster_id", how="left_semi")
    candidates = candidates.join(taken, "cluster_id", how="left_anti")
    first_free = Window.partitionBy("component").orderBy("salt")
    new_ids = reuse(candidates.withColumn("r", F.row_number().over(first_free)).where(F.col("r") == 1)
                    .select("component", "cluster_id"))
    fresh_events = fresh.join(new_ids, "component", how="inner").select(
        F.when(F.col("origin_id").isNull(), F.lit("new")).otherwise(F.lit("split")).alias("event"),
        "cluster_id", F.col("origin_id").alias("related_cluster_id"), F.col("size").alias("records"))

    # Previous ids none of whose records remain in this run.
    gone = (prev.groupBy("prev_id").agg(F.count(F.lit(1)).alias("records"))
            .join(overlap.select("prev_id").distinct(), "prev_id", how="left_anti")
            .select(F.lit("retired").alias("event"), F.col("prev_id").alias("cluster_id"),
                    F.lit(None).cast("string").alias("related_cluster_id"), "records"))

    ids = survivors.unionByName(new_ids)
    crosswalk_ids = comp.join(ids, "component", how="left").select("source_system", "source_record_id", "cluster_id")
    events = (fresh_events.unionByName(merged).unionByName(gone)
              .withColumn("run_id", F.lit(run_id)).withColumn("at", when)
              .withColumn("reason", F.lit(None).cast("string")))  # review decisions: bold_spark/review/apply.py
    return StableAssignment(crosswalk_ids, conform(events, CLUSTER_EVENTS))


def issued_ids(events: DataFrame | None) -> DataFrame | None:
    """Every id a run has handed out (new or split), from bold.cluster_events."""
    if events is None:
        return None
    return events.where(F.col("event").isin("new", "split")).select("cluster_id").distinct()

