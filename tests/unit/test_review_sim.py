"""The simulated reviewers of the review bench (bold_spark/bench/review_sim.py) on small inline frames: the queue's
order, which items are decided and how, and a decisions file the real import's parser accepts as written."""
from __future__ import annotations

from pathlib import Path

from bold_spark.bench.review_sim import ranked_queue, simulated_decisions, write_decisions_csv
from bold_spark.review.decisions import PAIR, parse_decisions_file

QUEUE_COLUMNS = [*PAIR, "reason", "priority"]
# (pair, reason, priority); the expected rank is the order a reviewer reads: priority descending, then the ids
QUEUE = [
    (("a", "1", "b", "1"), "near_threshold", 0.9, 3),
    (("a", "2", "b", "2"), "flagged_cluster:date_of_birth", 2.0, 2),
    (("a", "1", "b", "3"), "flagged_cluster:date_of_birth", 2.0, 1),  # a tie on priority: ids decide
    (("a", "3", "b", "4"), "near_threshold", 0.2, 5),
    (("a", "4", "b", "9"), "near_threshold", 0.5, 4),                 # b 9 is not in the truth
]
TRUTH = [("a", "1", "p1"), ("a", "2", "p2"), ("a", "3", "p3"), ("a", "4", "p4"),
         ("b", "1", "p1"), ("b", "2", "p9"), ("b", "3", "p1"), ("b", "4", "p3")]


def test_items_are_ranked_as_read_and_decided_from_the_truth(spark):
    queue = spark.createDataFrame([(*pair, reason, priority) for pair, reason, priority, _ in QUEUE], QUEUE_COLUMNS)
    truth = spark.createDataFrame(TRUTH, ["source_system", "source_record_id", "person_id"])
    ranked = {tuple(r[c] for c in PAIR): r["rank"] for r in ranked_queue(queue).collect()}
    assert ranked == {pair: rank for pair, _, _, rank in QUEUE}

    decided = simulated_decisions(ranked_queue(queue), truth, first=2, last=5).orderBy("rank").collect()
    # rank 1 is before the round; rank 4 names a record the truth lacks, so no reviewer decides it
    assert [(r["rank"], r["decision"], r["queue_reason"]) for r in decided] == [
        (2, "cannot_link", "flagged_cluster:date_of_birth"),  # a 2 is p2, b 2 is p9
        (3, "must_link", "near_threshold"),                   # a 1 and b 1 are both p1
        (5, "must_link", "near_threshold"),                   # a 3 and b 4 are both p3
    ]


def test_the_decisions_file_is_one_the_import_accepts(tmp_path: Path):
    rows = [{"source_system_l": "a", "source_record_id_l": "1", "source_system_r": "b", "source_record_id_r": "1",
             "decision": "must_link", "rank": 1},
            {"source_system_l": "a", "source_record_id_l": "2", "source_system_r": "b", "source_record_id_r": "2",
             "decision": "cannot_link", "rank": 2}]
    path = tmp_path / "decisions.csv"
    assert write_decisions_csv(rows, path) == 2
    parsed = parse_decisions_file(path, sources=["a", "b"])
    assert parsed.errors == []
    assert [({c: r[c] for c in PAIR}, r["decision"], r["reviewer"]) for r in parsed.rows] == [
        ({c: row[c] for c in PAIR}, row["decision"], "simulated") for row in rows]
