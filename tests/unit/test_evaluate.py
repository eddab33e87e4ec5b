from __future__ import annotations

import pytest

from bold_spark.quality.evaluate import pairwise_metrics


def test_pairwise_metrics_from_cluster_counts(spark):
    # truth: {1,2,3} one person, {4,5} another, {6} alone. prediction: {1,2}, {3,4,5}, {6}
    truth = spark.createDataFrame([("s", str(i), p) for i, p in [(1, "A"), (2, "A"), (3, "A"), (4, "B"), (5, "B"),
                                                                 (6, "C")]],
                                  "source_system string, source_record_id string, person_id string")
    crosswalk = spark.createDataFrame([("s", str(i), c) for i, c in [(1, "x"), (2, "x"), (3, "y"), (4, "y"),
                                                                     (5, "y"), (6, "z")]],
                                      "source_system string, source_record_id string, cluster_id string")
    m = pairwise_metrics(crosswalk, truth)
    # predicted pairs: 1 + 3 = 4; true pairs: 3 + 1 = 4; true positives: (1,2) and (4,5) = 2
    assert (m["predicted_pairs"], m["true_pairs"], m["true_positive_pairs"]) == (4, 4, 2)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5) and m["f1"] == pytest.approx(0.5)


def test_truth_records_missing_from_the_crosswalk_count_as_unlinked(spark):
    truth = spark.createDataFrame([("s", "1", "A"), ("s", "2", "A"), ("s", "3", "A")],
                                  "source_system string, source_record_id string, person_id string")
    crosswalk = spark.createDataFrame([("s", "1", "x"), ("s", "2", "x")],  # record 3 was rejected
                                      "source_system string, source_record_id string, cluster_id string")
    m = pairwise_metrics(crosswalk, truth)
    assert (m["predicted_pairs"], m["true_pairs"], m["true_positive_pairs"]) == (1, 3, 1)
