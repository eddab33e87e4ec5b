"""Build bold.crosswalk: one row per accepted record with its (stable) cluster id, singletons included."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, Window, functions as F

from bold_spark.clustering.components import connected_components
from bold_spark.clustering.constrained import PairRule, split_components
from bold_spark.clustering.rules import ConstraintSettings
from bold_spark.crosswalk.stable_ids import StableAssignment, assign_stable_ids, cluster_id_from_key, record_key
from bold_spark.schemas import CROSSWALK, conform

KEYS = ["source_system", "source_record_id"]

__all__ = ["build_crosswalk", "cluster_records", "best_links_only", "Clusters", "best_edges", "finish_crosswalk",
           "record_key", "cluster_id_from_key"]


def _linking(edges: DataFrame, threshold: float) -> DataFrame:
    return edges.where(F.col("match_probability") >= threshold).select(
        record_key(F.col("source_system_l"), F.col("source_record_id_l")).alias("src"),
        record_key(F.col("source_system_r"), F.col("source_record_id_r")).alias("dst"),
        "match_probability", "match_weight",
    )


def best_links_only(linking: DataFrame, below: float | None) -> DataFrame:
    """``linking`` (src, dst, match_probability, match_weight) without the edges below probability ``below`` that
    are the strongest edge of neither end.

    Why: at national scale many people share a common name and a near date of birth, and one weak edge between
    two of them merges both people's records. A weak edge that is neither record's best link is such a bridge far
    more often than a true link: a record with a stronger partner is already joined through it. Edges at or above
    ``below`` (and reviewers' must_links, probability 1) always count. ``None``: every edge counts."""
    if below is None:
        return linking
    ends = linking.select(F.col("src").alias("node"), "match_weight").unionByName(
        linking.select(F.col("dst").alias("node"), "match_weight"))
    best = ends.groupBy("node").agg(F.max("match_weight").alias("best"))
    return (linking.join(best.toDF("src", "best_src"), "src").join(best.toDF("dst", "best_dst"), "dst")
            .where((F.col("match_probability") >= below) | (F.col("match_weight") >= F.col("best_src"))
                   | (F.col("match_weight") >= F.col("best_dst")))
            .drop("best_src", "best_dst"))


@dataclass(frozen=True)
class Clusters:
    """Each record's cluster, and (under constraints) the components that were split to honour them."""

    records: DataFrame  # (source_system, source_record_id, component): smallest member key of its cluster
    splits: DataFrame | None = None  # split_components' per-component figures; None without constraints


def cluster_records(records: DataFrame, edges: DataFrame, *, threshold: float,
                    constraints: ConstraintSettings | None = None, rules: Sequence[PairRule] = (),
                    cannot_link: DataFrame | None = None, best_link_only_below: float | None = None) -> Clusters:
    """``records(source_system, source_record_id)`` + edges -> each record's component (its own key for a
    singleton). Edges whose ends are not in ``records`` are ignored, and so are the edges ``best_links_only``
    drops (``linkage.best_link_only_below``).

    With ``constraints``, ``records`` also carries ``constraint_columns`` (once_key, date_of_birth, the distinct
    identifiers, the columns the pair ``rules`` compare), and a component that breaks a constraint is split
    (bold_spark/clustering/constrained.py). ``cannot_link`` (source_system_l, source_record_id_l, source_system_r,
    source_record_id_r): reviewers' decisions, split by the same merge; a reviewer's must_link is an edge of
    ``edges`` (bold_spark/review/apply.py).
    """
    keyed = records.withColumn("node", record_key(F.col("source_system"), F.col("source_record_id")))
    nodes = keyed.select(F.col("node").alias("k"))
    linking = best_links_only(_linking(edges, threshold)
                              .join(nodes.withColumnRenamed("k", "src"), "src", how="left_semi")
                              .join(nodes.withColumnRenamed("k", "dst"), "dst", how="left_semi"),
                              best_link_only_below)
    components = connected_components(linking.select("src", "dst"))
    splits = None
    if (constraints is not None and constraints.any) or cannot_link is not None:
        apart = None if cannot_link is None else cannot_link.select(
            record_key(F.col("source_system_l"), F.col("source_record_id_l")).alias("node_l"),
            record_key(F.col("source_system_r"), F.col("source_record_id_r")).alias("node_r"))
        components, splits = split_components(components, linking, keyed.drop(*KEYS),
                                              constraints=constraints or ConstraintSettings(), rules=rules,
                                              cannot_link=apart)
    return Clusters(keyed.join(components, "node", how="left").select(
        *KEYS, F.coalesce(F.col("component"), F.col("node")).alias("component")), splits)


def best_edges(edges: DataFrame, *, threshold: float, clusters: DataFrame | None = None) -> DataFrame:
    """(source_system, source_record_id, match_probability): the best edge at or above ``threshold`` per record;
    with ``clusters`` (source_system, source_record_id, cluster_id), only edges within one cluster (a constraint
    may have refused a record's best edge)."""
    e = edges.where(F.col("match_probability") >= threshold)
    if clusters is not None:
        ids = clusters.select(*KEYS, "cluster_id")
        e = (e.join(ids.toDF("source_system_l", "source_record_id_l", "cluster_l"),
                    ["source_system_l", "source_record_id_l"], how="inner")
             .join(ids.toDF("source_system_r", "source_record_id_r", "cluster_r"),
                   ["source_system_r", "source_record_id_r"], how="inner")
             .where(F.col("cluster_l") == F.col("cluster_r")))
    sides = e.select(F.col("source_system_l").alias("source_system"), F.col("source_record_id_l").alias(
        "source_record_id"), "match_probability").unionByName(
        e.select(F.col("source_system_r").alias("source_system"), F.col("source_record_id_r").alias(
            "source_record_id"), "match_probability"))
    return sides.groupBy("source_system", "source_record_id").agg(F.max("match_probability").alias("match_probability"))


def finish_crosswalk(crosswalk_ids: DataFrame, edges: DataFrame, *, threshold: float, run_id: str,
                     split: bool = False) -> DataFrame:
    """(source_system, source_record_id, cluster_id) -> the crosswalk contract (size, best edge, run id).
    ``split``: constraints may have refused edges at the threshold, so only edges within a cluster count."""
    best = best_edges(edges, threshold=threshold, clusters=crosswalk_ids if split else None)
    joined = crosswalk_ids.join(best, KEYS, how="left")
    with_size = joined.withColumn("cluster_size", F.count(F.lit(1)).over(Window.partitionBy("cluster_id"))) \
        .withColumn("run_id", F.lit(run_id))
    return conform(with_size, CROSSWALK)


def build_crosswalk(records: DataFrame, edges: DataFrame, *, threshold: float, run_id: str,
                    previous: DataFrame | None = None, issued: DataFrame | None = None,
                    at: datetime | None = None, constraints: ConstraintSettings | None = None,
                    rules: Sequence[PairRule] = (), cannot_link: DataFrame | None = None,
                    best_link_only_below: float | None = None) -> tuple[DataFrame, DataFrame, DataFrame | None]:
    """``records(source_system, source_record_id[, constraint columns])`` and scored ``edges`` -> (crosswalk,
    cluster events, components split by constraints or None).

    Records are clustered by the edges at or above ``threshold`` (see ``cluster_records``); ids are carried forward
    from ``previous`` (the last published crosswalk) by ``assign_stable_ids``; ``match_probability`` is the best
    such edge within the record's cluster (null for a singleton). Reviewers' decisions: must_link pairs as edges of
    ``edges`` (probability 1), ``cannot_link`` pairs as in ``cluster_records``.
    """
    clusters = cluster_records(records, edges, threshold=threshold, constraints=constraints, rules=rules,
                               cannot_link=cannot_link, best_link_only_below=best_link_only_below)
    # Checkpointed (the session's checkpoint dir, as connected_components does): the id assignment reads the
    # components several times, and re-planning their lineage for each read is slow.
    components = clusters.records.checkpoint()
    assignment: StableAssignment = assign_stable_ids(components, previous, run_id=run_id, issued=issued, at=at,
                                                     reuse=lambda frame: frame.checkpoint())
    crosswalk = finish_crosswalk(assignment.crosswalk_ids, edges, threshold=threshold, run_id=run_id,
                                 split=clusters.splits is not None)
    return crosswalk, assignment.events, clusters.splits
