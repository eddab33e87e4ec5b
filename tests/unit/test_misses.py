"""Why true pairs were missed, and blocking recall before scoring, on twelve records built so that each person's
pair is missed for a different reason (or not at all); evaluate_run records the breakdown in Delta."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace

import pytest
from pyspark.sql import functions as F

from bold_spark.config import OutputTables
from bold_spark.io.delta import ensure_database, overwrite_table
from bold_spark.linkage.model import add_linkage_columns, blocking_rule_sql
from bold_spark.quality.blocking_recall import blocking_recall
from bold_spark.quality.evaluate import conform_labels, evaluate_run
from bold_spark.quality.misses import (
    CAUSES,
    MissInputs,
    classify_missed,
    miss_breakdown,
    true_pairs_of_labels,
    true_pairs_of_truth,
)
from bold_spark.quality.report import evaluation_html
from bold_spark.schemas import CANONICAL_PERSON, CROSSWALK

RULES = (["date_of_birth", "first_name_initial"], ["nino"])
CANDIDATES = (["first_name"], ["surname"], ["surname", "postcode_district"])
D = dt.date
# person: (first name, surname, date of birth, district, nino) of its record in source a, then in source b
PEOPLE = {
    "linked": (("john", "smith", D(1980, 1, 1), "AB1", None), ("john", "smith", D(1980, 1, 1), "AB1", None)),
    "split": (("mary", "jones", D(1970, 2, 2), "CD2", "AB123456C"), ("mary", "jones", D(1970, 2, 2), None,
                                                                      "AB123456C")),
    "between": (("peter", "brown", D(1960, 3, 3), None, None), ("peter", "brown", D(1960, 3, 3), None, None)),
    "below": (("anne", "green", D(1950, 4, 4), None, None), ("anne", "green", D(1950, 4, 4), None, None)),
    "unblocked": (("tom", "white", None, "EF3", None), ("thomas", "white", None, "EF3", None)),
    "rejected": (("sue", "black", D(1940, 5, 5), None, None), ("sue", "black", D(1940, 5, 5), None, None)),
}
# the crosswalk: one cluster for the linked person, one per record otherwise; b of "rejected" is not in it
CLUSTERS = {("a", "linked"): "c1", ("b", "linked"): "c1"}
# recorded edges: above cluster_threshold (0.8) yet split, and between the thresholds (given r-first to test order)
EDGES = [("a", "linked", "b", "linked", 0.99), ("a", "split", "b", "split", 0.9), ("b", "between", "a", "between", 0.6)]


def _rows():
    fields = CANONICAL_PERSON.fieldNames()
    for person, sides in PEOPLE.items():
        for source, (first, surname, dob, district, nino) in zip("ab", sides):
            values = {"source_system": source, "source_record_id": person, "first_name": first, "surname": surname,
                      "date_of_birth": dob, "birth_year": dob.year if dob else None, "postcode_district": district,
                      "nino": nino}
            yield tuple(values.get(f) for f in fields)


@pytest.fixture(scope="module")
def data(spark):
    records = spark.createDataFrame(list(_rows()), CANONICAL_PERSON)
    accepted = records.where(~((F.col("source_system") == "b") & (F.col("source_record_id") == "rejected")))
    truth = records.select("source_system", "source_record_id", F.col("source_record_id").alias("person_id"))
    crosswalk = accepted.select("source_system", "source_record_id", F.coalesce(*[
        F.when((F.col("source_system") == s) & (F.col("source_record_id") == p), F.lit(c)) for (s, p), c in
        CLUSTERS.items()], F.concat_ws("-", "source_system", "source_record_id")).alias("cluster_id"))
    edges = spark.createDataFrame(EDGES, "source_system_l string, source_record_id_l string, source_system_r string, "
                                         "source_record_id_r string, match_probability double")
    inputs = MissInputs(accepted.transform(add_linkage_columns), edges, tuple(blocking_rule_sql(RULES)),
                        edge_threshold=0.5, cluster_threshold=0.8)
    return truth, crosswalk, inputs


def test_each_missed_true_pair_gets_its_one_cause(data):
    truth, crosswalk, inputs = data
    pairs = true_pairs_of_truth(truth)
    assert pairs.count() == len(PEOPLE)  # one pair per person, once
    causes = {r["source_record_id_l"]: r["cause"] for r in classify_missed(pairs, crosswalk, inputs).collect()}
    assert causes == {"split": "split_by_clustering", "between": "between_thresholds",
                      "below": "below_edge_threshold", "unblocked": "not_blocked", "rejected": "rejected"}
    breakdown = miss_breakdown(pairs, crosswalk, inputs)
    assert set(breakdown) == {("a", "b"), None}
    overall = breakdown[None]
    assert overall["missed_pairs"] == 5 and all(overall[f"missed_{c}"] == 1 for c in CAUSES)
    # the unblocked pair (tom / thomas white, no date of birth): counts per field, never values
    missing, disagreeing = overall["not_blocked_field_missing"], overall["not_blocked_field_disagreeing"]
    assert missing["date_of_birth"] == missing["birth_year"] == 1 and missing["surname"] == 0
    assert disagreeing["first_name"] == 1 and disagreeing["surname"] == disagreeing["postcode_district"] == 0
    assert missing["nino"] == 1 and disagreeing["nino"] == 0


def test_blocking_recall_counts_rules_and_ranks_candidates_by_recall_per_million_pairs(data):
    truth, _, inputs = data
    result = blocking_recall(true_pairs_of_truth(truth), inputs.records, rules=RULES, candidates=CANDIDATES)
    assert (result.true_pairs, result.without_record, result.caught) == (6, 1, 4)
    assert result.recall == pytest.approx(4 / 6)
    dob, nino = result.rules
    assert (dob["true_pairs"], dob["first"], nino["true_pairs"], nino["first"]) == (4, 4, 1, 0)
    assert dob["comparisons"] == 4 and nino["comparisons"] == 1 and result.comparisons == 5  # from block sizes
    assert result.by_source_pair == [{"source_system_l": "a", "source_system_r": "b", "true_pairs": 6, "caught": 4,
                                      "recall": pytest.approx(4 / 6)}]
    assert result.missed_fields["date_of_birth"] == (1, 0) and result.missed_fields["first_name"] == (0, 1)
    added = {c["rule"]: (c["added"], c["comparisons"]) for c in result.candidates}
    # five surnames shared by two records each (the rejected record is not among the records); one district pair
    assert added == {"[first_name]": (0, 4), "[surname]": (1, 5), "[surname, postcode_district]": (1, 2)}
    assert result.candidates[0]["rule"] == "[surname, postcode_district]"  # the same pair for fewer comparisons
    assert [(g["rule"], g["added"]) for g in result.greedy] == [("[surname, postcode_district]", 1)]
    assert result.greedy[0]["recall"] == pytest.approx(5 / 6) and result.greedy[0]["comparisons"] == 7


def test_labelled_matches_are_the_true_pairs(data, spark):
    truth, crosswalk, inputs = data
    labels = conform_labels(spark.createDataFrame(
        [("b", "unblocked", "a", "unblocked", True), ("a", "linked", "b", "split", False)],
        "source_system_l string, source_record_id_l string, source_system_r string, source_record_id_r string, "
        "is_match boolean"))
    breakdown = miss_breakdown(true_pairs_of_labels(labels), crosswalk, inputs)
    assert breakdown[None]["missed_pairs"] == breakdown[None]["missed_not_blocked"] == 1


@pytest.mark.tables
def test_evaluate_run_records_the_breakdown_and_the_report_shows_it(spark, data):
    truth, crosswalk, inputs = data
    output = OutputTables(database=f"misses_{uuid.uuid4().hex[:8]}")
    ensure_database(spark, output)
    try:
        overwrite_table(crosswalk.select("*", F.lit("r1").alias("run_id"), F.lit(1).alias("cluster_size"),
                                         F.lit(None).cast("double").alias("match_probability"))
                        .select(*CROSSWALK.fieldNames()), output.qualified("crosswalk"),
                        partition_by=["source_system"])
        released = []  # what the inputs were built on is freed once the breakdown is computed
        result = evaluate_run(spark, output, truth=truth, truth_description="t", misses=lambda run_id: replace(
            inputs, release=lambda: released.append(run_id)))
        assert released == ["r1"]
        o = result.overall
        assert o["missed_pairs"] == o["true_pairs"] - o["true_positive_pairs"] == 5
        stored = spark.table(output.qualified("evaluations")).where(F.col("source_system_l").isNull()).first()
        assert [stored[f"missed_{c}"] for c in CAUSES] == [1] * len(CAUSES)
        assert stored["not_blocked_field_missing"]["date_of_birth"] == 1
        (ab,) = result.by_source_pair
        assert ab["missed_not_blocked"] == 1 and ab["not_blocked_field_disagreeing"]["first_name"] == 1
        html = evaluation_html([o, *result.by_source_pair])
        assert "no blocking rule generates it" in html and "<svg" in html
        assert not any(f">{v}<" in html for v in ("tom", "thomas", "white", "unblocked"))
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {output.database} CASCADE")
