"""Pairwise accuracy of a crosswalk against a truth table, computed from cluster counts (no pair enumeration).

For clusters of sizes n, the pairs they assert are sum(n*(n-1)/2); the true pairs come from the truth's person
ids the same way, and the true positives from the sizes of (cluster, person) intersections. So the cost is a few
group-bys whatever the scale.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, functions as F


def _pairs(size) -> F.Column:
    return F.coalesce(F.sum(size * (size - 1) / 2), F.lit(0.0))


def pairwise_metrics(crosswalk: DataFrame, truth: DataFrame) -> dict[str, float]:
    """``crosswalk(source_system, source_record_id, cluster_id)`` vs ``truth(source_system, source_record_id,
    person_id)`` -> precision, recall, F1 and pair counts over the records in the truth.

    A truth record missing from the crosswalk (rejected) counts as unlinked, so rejects cost recall.
    """
    keys = ["source_system", "source_record_id"]
    joined = truth.select(*keys, "person_id").join(crosswalk.select(*keys, "cluster_id"), keys, how="left") \
        .withColumn("cluster_id", F.coalesce(F.col("cluster_id"),
                                             F.concat(F.lit("unlinked:"), *[F.col(k) for k in keys])))
    predicted = joined.groupBy("cluster_id").agg(F.count(F.lit(1)).alias("n")).agg(_pairs(F.col("n")).alias("v"))
    actual = joined.groupBy("person_id").agg(F.count(F.lit(1)).alias("n")).agg(_pairs(F.col("n")).alias("v"))
    both = joined.groupBy("cluster_id", "person_id").agg(F.count(F.lit(1)).alias("n")).agg(
        _pairs(F.col("n")).alias("v"))
    row = predicted.crossJoin(actual.withColumnRenamed("v", "t")).crossJoin(
        both.withColumnRenamed("v", "tp")).first()  # bounded: one row
    predicted_pairs, true_pairs, tp = float(row["v"]), float(row["t"]), float(row["tp"])
    precision = tp / predicted_pairs if predicted_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_positive_pairs": tp,
            "predicted_pairs": predicted_pairs, "true_pairs": true_pairs}
