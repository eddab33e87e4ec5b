from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bold_spark.errors import DataQualityError, SchemaContractError
from bold_spark.quality.evaluate import (
    check_labels,
    check_truth,
    cluster_metrics,
    conform_truth,
    evaluation_rows,
    labelled_pair_metrics,
    labelled_pair_metrics_by_source_pair,
    pairwise_metrics,
    pairwise_metrics_by_source_pair,
)
from bold_spark.schemas import EVALUATIONS


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


# --- cluster-level metrics, per source pair, missing records, labelled pairs ---------------------------------------
# A two-source example used below. Truth: person P = a1, a2, b1; Q = b2, b3; R = a3, b4.
# Prediction: cluster X = a1, a2, b2 (merges P and Q); Y = b1 and Z = b3 (split P and Q); W = a3, b4 (right).
# Groups (cluster, person, records): (X,P,2) (X,Q,1) (Y,P,1) (Z,Q,1) (W,R,2); N = 7.
# Cluster sizes X 3, Y 1, Z 1, W 2; person sizes P 3, Q 2, R 2.
TRUTH = [("a", "a1", "P"), ("a", "a2", "P"), ("b", "b1", "P"), ("b", "b2", "Q"), ("b", "b3", "Q"),
         ("a", "a3", "R"), ("b", "b4", "R")]
PREDICTED = [("a", "a1", "X"), ("a", "a2", "X"), ("b", "b2", "X"), ("b", "b1", "Y"), ("b", "b3", "Z"),
             ("a", "a3", "W"), ("b", "b4", "W")]


def frames(spark, truth=TRUTH, predicted=PREDICTED):
    return (spark.createDataFrame(predicted, "source_system string, source_record_id string, cluster_id string"),
            spark.createDataFrame(truth, "source_system string, source_record_id string, person_id string"))


def test_cluster_metrics_bcubed_and_split_merge_shares(spark):
    crosswalk, truth = frames(spark)
    m = cluster_metrics(crosswalk, truth)
    # B-cubed precision = sum(n^2 / cluster size) / N = (4/3 + 1/3 + 1/1 + 1/1 + 4/2) / 7 = (17/3) / 7 = 17/21
    assert m["bcubed_precision"] == pytest.approx(17 / 21)
    # B-cubed recall = sum(n^2 / person size) / N = (4/3 + 1/2 + 1/3 + 1/2 + 4/2) / 7 = (14/3) / 7 = 2/3
    assert m["bcubed_recall"] == pytest.approx(2 / 3)
    assert (m["predicted_clusters"], m["true_clusters"]) == (4, 3)
    # P is in X and Y, Q in X and Z, R only in W: 2 of 3 people split. Only X holds two people: 1 of 4 clusters.
    assert (m["people_split"], m["clusters_merging"]) == (2, 1)
    assert m["share_people_split"] == pytest.approx(2 / 3) and m["share_clusters_merging"] == pytest.approx(1 / 4)
    assert (m["truth_records"], m["truth_records_missing"]) == (7, 0)


def test_pairwise_metrics_on_the_two_source_example(spark):
    m = pairwise_metrics(*frames(spark))
    # predicted: X 3 + W 1 = 4; true: P 3 + Q 1 + R 1 = 5; true positives: (X,P) 1 + (W,R) 1 = 2
    assert (m["predicted_pairs"], m["true_pairs"], m["true_positive_pairs"]) == (4, 5, 2)
    # precision 2/4, recall 2/5, F1 = 2 * 0.5 * 0.4 / 0.9 = 4/9
    assert (m["precision"], m["recall"]) == (pytest.approx(0.5), pytest.approx(0.4))
    assert m["f1"] == pytest.approx(4 / 9)


def test_pairwise_metrics_by_source_pair_from_group_counts(spark):
    rows = {(r["source_system_l"], r["source_system_r"]): r.asDict()
            for r in pairwise_metrics_by_source_pair(*frames(spark)).collect()}
    assert set(rows) == {("a", "a"), ("a", "b"), ("b", "b")}
    # (a,a): predicted X a1-a2 = 1; true P a1-a2 = 1; TP (X,P) 2 a-records -> 1. All rates 1.
    aa = rows[("a", "a")]
    assert (aa["predicted_pairs"], aa["true_pairs"], aa["true_positive_pairs"], aa["f1"]) == (1, 1, 1, 1.0)
    # (a,b) = n_a * n_b per group: predicted X 2*1 + W 1*1 = 3; true P 2*1 + R 1*1 = 3;
    # TP: (X,P) has no b, (X,Q) no a, (W,R) 1*1 -> 1. Precision = recall = F1 = 1/3.
    ab = rows[("a", "b")]
    assert (ab["predicted_pairs"], ab["true_pairs"], ab["true_positive_pairs"]) == (3, 3, 1)
    assert ab["precision"] == pytest.approx(1 / 3) and ab["recall"] == pytest.approx(1 / 3)
    assert ab["f1"] == pytest.approx(1 / 3)
    # (b,b): no cluster holds two b-records -> 0 predicted; true Q b2-b3 = 1; precision 1 by convention, recall 0.
    bb = rows[("b", "b")]
    assert (bb["predicted_pairs"], bb["true_pairs"], bb["true_positive_pairs"]) == (0, 1, 0)
    assert (bb["precision"], bb["recall"], bb["f1"]) == (1.0, 0.0, 0.0)
    # the source pairs add up to the overall counts (4, 5, 2)
    assert [sum(r[k] for r in rows.values()) for k in ("predicted_pairs", "true_pairs", "true_positive_pairs")] \
        == [4, 5, 2]


def test_missing_records_are_singletons_and_records_outside_the_truth_are_ignored(spark):
    # Truth P = s1, s2, s3; Q = s4, s5. The crosswalk has s1, s2 (and s9, not in the truth) in x; s3-s5 rejected.
    # Groups: (x,P,2) (s3,P,1) (s4,Q,1) (s5,Q,1): N = 5, 3 missing, each its own cluster (s4, s5 not paired).
    crosswalk, truth = frames(
        spark,
        truth=[("s", "s1", "P"), ("s", "s2", "P"), ("s", "s3", "P"), ("s", "s4", "Q"), ("s", "s5", "Q")],
        predicted=[("s", "s1", "x"), ("s", "s2", "x"), ("s", "s9", "x")])
    p = pairwise_metrics(crosswalk, truth)
    # predicted: x restricted to the truth has 2 records -> 1; true: P 3 + Q 1 = 4; TP 1
    assert (p["predicted_pairs"], p["true_pairs"], p["true_positive_pairs"]) == (1, 4, 1)
    c = cluster_metrics(crosswalk, truth)
    assert (c["truth_records"], c["truth_records_missing"]) == (5, 3)
    assert (c["predicted_clusters"], c["true_clusters"], c["people_split"], c["clusters_merging"]) == (4, 2, 2, 0)
    # B-cubed precision (4/2 + 1 + 1 + 1) / 5 = 1; recall (4/3 + 1/3 + 1/2 + 1/2) / 5 = (8/3) / 5 = 8/15
    assert c["bcubed_precision"] == pytest.approx(1.0) and c["bcubed_recall"] == pytest.approx(8 / 15)
    (ss,) = pairwise_metrics_by_source_pair(crosswalk, truth).collect()
    assert (ss["source_system_l"], ss["source_system_r"], ss["predicted_pairs"], ss["true_pairs"]) == ("s", "s", 1, 4)


LABELS = [
    ("a", "a1", "a", "a2", True),   # 1: both in X -> true positive
    ("b", "b1", "a", "a1", True),   # 2: given right-to-left; Y vs X -> false negative
    ("a", "a1", "b", "b2", False),  # 3: both in X -> false positive
    ("b", "b3", "b", "b2", False),  # 4: Z vs X -> true negative
    ("a", "a3", "b", "b4", True),   # 5: both in W -> true positive
    ("a", "a9", "b", "b4", True),   # 6: a9 not in the crosswalk -> predicted non-match, false negative
    ("a", "a2", "a", "a1", True),   # pair 1 again, reversed: counted once
    ("a", "a1", "a", "a1", True),   # a record with itself: ignored
]
LABELS_SCHEMA = ("source_system_l string, source_record_id_l string, source_system_r string, "
                 "source_record_id_r string, is_match boolean")


def test_labelled_pair_metrics_join_labels_to_the_crosswalk_twice(spark):
    crosswalk, _ = frames(spark)
    labels = spark.createDataFrame(LABELS, LABELS_SCHEMA)
    m = labelled_pair_metrics(crosswalk, labels)
    # 6 distinct pairs; predicted {1,3,5} = 3; true {1,2,5,6} = 4; TP {1,5} = 2; one pair has a missing record
    assert (m["labelled_pairs"], m["labelled_pairs_missing"]) == (6, 1)
    assert (m["predicted_pairs"], m["true_pairs"], m["true_positive_pairs"]) == (3, 4, 2)
    # precision 2/3, recall 1/2, F1 = 2 * (2/3) * (1/2) / (7/6) = 4/7
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(4 / 7)
    rows = {(r["source_system_l"], r["source_system_r"]): r.asDict()
            for r in labelled_pair_metrics_by_source_pair(crosswalk, labels).collect()}
    # (a,b): pairs 2, 3, 5, 6: predicted {3,5}, true {2,5,6}, TP {5}: precision 1/2, recall 1/3, F1 2/5
    ab = rows[("a", "b")]
    assert (ab["labelled_pairs"], ab["predicted_pairs"], ab["true_pairs"], ab["true_positive_pairs"]) == (4, 2, 3, 1)
    assert ab["f1"] == pytest.approx(2 / 5)
    assert (rows[("a", "a")]["labelled_pairs"], rows[("a", "a")]["f1"]) == (1, 1.0)
    # (b,b): pair 4 only, a true negative: nothing predicted or true, so precision and recall are 1 by convention
    assert (rows[("b", "b")]["predicted_pairs"], rows[("b", "b")]["true_pairs"], rows[("b", "b")]["f1"]) == (0, 0, 1.0)


def test_labels_contradicting_each_other_are_refused(spark):
    labels = spark.createDataFrame([("a", "a1", "a", "a2", True), ("a", "a2", "a", "a1", False)], LABELS_SCHEMA)
    with pytest.raises(DataQualityError, match=r"review: 1 pairs are labelled both match and non-match"):
        check_labels(labels, description="review")


def test_a_truth_with_a_record_twice_is_refused(spark):
    _, truth = frames(spark, truth=[*TRUTH, ("a", "a1", "Q")])
    with pytest.raises(DataQualityError, match=r"truth: 1 duplicate \(source_system, source_record_id\) rows"):
        check_truth(truth)


def test_conform_truth_maps_and_casts_columns_and_names_what_is_missing(spark):
    df = spark.createDataFrame([("a", 1, 7)], "src string, rid int, pid long")
    out = conform_truth(df, columns={"source_system": "src", "source_record_id": "rid", "person_id": "pid"})
    assert out.collect()[0].asDict() == {"source_system": "a", "source_record_id": "1", "person_id": "7"}
    with pytest.raises(SchemaContractError, match=r"people: missing person_id \(column 'person_id'\); it has: src"):
        conform_truth(df, columns={"source_system": "src", "source_record_id": "rid"}, description="people")


def test_evaluation_rows_follow_the_table_contract(spark):
    crosswalk, truth = frames(spark)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    df = evaluation_rows(crosswalk, truth=truth, run_id="r1", truth_description="delta path /t", evaluated_at=at,
                         crosswalk_version=3)
    assert [(f.name, f.dataType) for f in df.schema] == [(f.name, f.dataType) for f in EVALUATIONS]
    rows = df.collect()
    assert len(rows) == 4  # overall + (a,a), (a,b), (b,b)
    (overall,) = [r for r in rows if r["source_system_l"] is None]
    assert (overall["run_id"], overall["truth_kind"], overall["crosswalk_version"]) == ("r1", "records", 3)
    assert overall["true_clusters"] == 3 and overall["bcubed_precision"] == pytest.approx(17 / 21)
    assert overall["labelled_pairs"] is None
    assert all(r["bcubed_precision"] is None and r["f1"] is not None for r in rows if r["source_system_l"])
    labelled = evaluation_rows(crosswalk, labels=spark.createDataFrame(LABELS, LABELS_SCHEMA), run_id="r1",
                               truth_description="delta path /l", evaluated_at=at).collect()
    assert {r["truth_kind"] for r in labelled} == {"labelled_pairs"} and len(labelled) == 4


def test_threshold_sweep_scores_each_threshold_with_and_without_constraints(spark):
    import datetime as dt

    from bold_spark.clustering.constrained import constraint_columns
    from bold_spark.clustering.rules import ConstraintSettings
    from bold_spark.quality.evaluate import threshold_sweep
    from pyspark.sql import functions as F

    # a and b are one person; c (his father, 30 years older) matches b at 0.85 only.
    persons = spark.createDataFrame(
        [("s", "a", dt.date(1990, 1, 1), None), ("s", "b", dt.date(1990, 1, 1), None),
         ("s", "c", dt.date(1962, 3, 5), None)],
        "source_system string, source_record_id string, date_of_birth date, event_date date"
    ).withColumn("birth_year", F.year("date_of_birth"))
    edges = spark.createDataFrame([("s", "a", "s", "b", 9.0, 0.99), ("s", "b", "s", "c", 2.5, 0.85)],
                                  "source_system_l string, source_record_id_l string, source_system_r string, "
                                  "source_record_id_r string, match_weight double, match_probability double")
    truth = spark.createDataFrame([("s", "a", "p1"), ("s", "b", "p1"), ("s", "c", "p2")],
                                  "source_system string, source_record_id string, person_id string")
    constraints = ConstraintSettings(date_of_birth_years_apart=5)
    rows = threshold_sweep(constraint_columns(persons, constraints), edges, truth=truth, thresholds=(0.8, 0.9),
                           constraints=constraints)
    scores = {(r["threshold"], r["clustering"]): (r["precision"], r["recall"]) for r in rows}
    assert scores == {(0.8, "connected_components"): (pytest.approx(1 / 3), 1.0), (0.8, "constrained"): (1.0, 1.0),
                      (0.9, "connected_components"): (1.0, 1.0), (0.9, "constrained"): (1.0, 1.0)}
