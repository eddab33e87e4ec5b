"""How a link run (full or incremental) applies the decisions in bold.review_decisions.

- A decision applies when both its records are in the run's accepted input; one whose record was withdrawn at
  source (or is now rejected) no longer applies: it is counted in bold.link_runs and logged, not dropped from
  the table (the record may come back).
- must_link: an edge of probability 1 (weight ``MUST_LINK_WEIGHT``) between the two records, so connected
  components join them, and the constrained merge joins them before any scored edge (no constraint refuses it).
- cannot_link: a pair kept apart by the constrained merge (bold_spark/clustering/constrained.py), the mechanism
  the configured constraints use: inside the component that holds both, records join along edges in descending
  weight and a join that would put the two in one cluster is refused, so the weakest edges on the paths between
  them are the ones cut.
- bold.cluster_events: a split whose parts separate a cannot_link pair, and a merge that joins a must_link pair,
  carry the decision as their ``reason``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, functions as F

from bold_spark.clustering.rules import MUST_LINK_WEIGHT
from bold_spark.review.decisions import CANNOT_LINK, MUST_LINK, PAIR
from bold_spark.schemas import CLUSTER_EVENTS, MATCH_EDGES, conform

log = logging.getLogger(__name__)

KEYS = ["source_system", "source_record_id"]


@dataclass(frozen=True)
class AppliedDecisions:
    """The decisions a run applies (both records accepted) and what it counted."""

    pairs: DataFrame  # PAIR + decision, one row per applicable pair (checkpointed: small, read several times)
    applied: int
    not_applicable: int

    def must_link_edges(self, *, run_id: str) -> DataFrame:
        """The must_link pairs as MATCH_EDGES rows of probability 1 (never written to bold.match_edges)."""
        return conform(self.pairs.where(F.col("decision") == MUST_LINK)
                       .withColumn("match_weight", F.lit(MUST_LINK_WEIGHT))
                       .withColumn("match_probability", F.lit(1.0))
                       .withColumn("comparison_levels", F.lit(None).cast("map<string,int>"))
                       .withColumn("run_id", F.lit(run_id)), MATCH_EDGES)

    def cannot_link(self) -> DataFrame:
        return self.pairs.where(F.col("decision") == CANNOT_LINK).select(*PAIR)

    def records(self) -> DataFrame:
        """(source_system, source_record_id) of every record an applicable decision names."""
        return (self.pairs.select(F.col("source_system_l").alias("source_system"),
                                  F.col("source_record_id_l").alias("source_record_id"))
                .unionByName(self.pairs.select(F.col("source_system_r").alias("source_system"),
                                               F.col("source_record_id_r").alias("source_record_id"))).distinct())


def _flag_side(pairs: DataFrame, keys: DataFrame, side: str, flag: str) -> DataFrame:
    return pairs.join(keys.select(*KEYS).distinct().withColumn(flag, F.lit(True))
                      .toDF(f"source_system_{side}", f"source_record_id_{side}", flag),
                      [f"source_system_{side}", f"source_record_id_{side}"], how="left")


def applicable_decisions(decisions: DataFrame | None, accepted_keys: DataFrame) -> AppliedDecisions | None:
    """``read_decisions``' current decisions and the run's accepted (source_system, source_record_id) -> the
    decisions that apply and the counts (one aggregate row); None when there is no decision at all."""
    if decisions is None:
        return None
    flagged = _flag_side(_flag_side(decisions.select(*PAIR, "decision"), accepted_keys, "l", "_in_l"),
                         accepted_keys, "r", "_in_r")
    both = F.coalesce(F.col("_in_l"), F.lit(False)) & F.coalesce(F.col("_in_r"), F.lit(False))
    flagged = flagged.withColumn("_applies", both).checkpoint()
    row = flagged.agg(F.count(F.lit(1)).alias("all"),
                      F.sum(F.col("_applies").cast("int")).alias("applied")).first()  # bounded: one row
    total, applied = int(row["all"] or 0), int(row["applied"] or 0)
    if total == 0:
        return None
    pairs = flagged.where(F.col("_applies")).select(*PAIR, "decision").checkpoint()
    result = AppliedDecisions(pairs, applied, total - applied)
    log.info("review decisions: %d applied, %d no longer apply (a record withdrawn at source or rejected)",
             result.applied, result.not_applicable)
    return result


def _clusters_of_pairs(pairs: DataFrame, ids: DataFrame, prefix: str) -> DataFrame:
    """pairs(PAIR...) + ids(source_system, source_record_id, cluster_id) -> pairs with <prefix>_l, <prefix>_r."""
    for side in ("l", "r"):
        pairs = pairs.join(ids.select(*KEYS, "cluster_id").toDF(f"source_system_{side}", f"source_record_id_{side}",
                                                                  f"{prefix}_{side}"),
                           [f"source_system_{side}", f"source_record_id_{side}"], how="left")
    return pairs


def unmet(applied: AppliedDecisions, clusters: DataFrame) -> DataFrame:
    """The applicable decisions ``clusters`` (source_system, source_record_id, cluster_id) contradicts: must_link
    pairs in two clusters, cannot_link pairs in one (a record absent from ``clusters`` counts as a cluster of its
    own)."""
    c = _clusters_of_pairs(applied.pairs, clusters, "c")
    same = F.coalesce(F.col("c_l") == F.col("c_r"), F.lit(False))
    return c.where(((F.col("decision") == MUST_LINK) & ~same) | ((F.col("decision") == CANNOT_LINK) & same))


def count_unmet(applied: AppliedDecisions | None, clusters: DataFrame) -> int | None:
    if applied is None:
        return None
    n = unmet(applied, clusters).count()  # bounded: decisions
    if n:
        log.warning("review decisions: %d applied decision(s) not met by the clusters (decisions inserted by SQL "
                    "that contradict each other: a cannot_link refuses a chain of must_link)", n)
    return n


def with_decision_reasons(events: DataFrame, applied: AppliedDecisions | None, *, previous: DataFrame | None,
                          current: DataFrame) -> DataFrame:
    """CLUSTER_EVENTS with ``reason`` set where a decision caused the event: a ``split`` whose parts separate a
    cannot_link pair that ``previous`` had in one cluster, a ``merged`` id whose records a must_link pair joins to
    the survivor's. ``current``: this run's (source_system, source_record_id, cluster_id) of the pairs' records."""
    if applied is None or previous is None:
        return events
    c = _clusters_of_pairs(_clusters_of_pairs(applied.pairs, previous, "p"), current, "c")
    splits = (c.where((F.col("decision") == CANNOT_LINK) & (F.col("p_l") == F.col("p_r"))
                      & (F.col("c_l") != F.col("c_r")))
              .select(F.lit("split").alias("event"), F.explode(F.array("c_l", "c_r")).alias("cluster_id"),
                      F.col("p_l").alias("related_cluster_id"), F.lit(CANNOT_LINK).alias("_reason")))
    merges = (c.where((F.col("decision") == MUST_LINK) & (F.col("p_l") != F.col("p_r"))
                      & (F.col("c_l") == F.col("c_r")))
              .select(F.lit("merged").alias("event"), F.explode(F.array("p_l", "p_r")).alias("cluster_id"),
                      F.col("c_l").alias("related_cluster_id"), F.lit(MUST_LINK).alias("_reason")))
    caused = (splits.unionByName(merges).groupBy("event", "cluster_id", "related_cluster_id")
              .agg(F.min("_reason").alias("_reason")))  # both kinds on one event: cannot_link first
    marked = events.join(caused, ["event", "cluster_id", "related_cluster_id"], how="left")
    return conform(marked.withColumn("reason", F.coalesce(F.col("_reason"), F.col("reason"))), CLUSTER_EVENTS)
