"""Reviewers' decisions hold in every later run: a full run, then decisions imported, then a full run that applies
them, then more decisions, a record withdrawn at source and another arriving that matches both sides of an applied
cannot_link, and an incremental run, then two more runs (a full run, an incremental run with nothing changed).
Seventeen records in three Delta sources, scored with the committed test model; the runs are built once for the
module."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from bold_spark import pipeline
from bold_spark.incremental import link_incremental
from bold_spark.review.decisions import import_decisions
from bold_spark.schemas import REVIEW_QUEUE
from tests.integration.conftest import demo_environment

# make test-processes (with the other runs in a row): five links and two imports, about 250 s, which `make test`
# (under its 600 s budget) cannot carry
pytestmark = [pytest.mark.processes, pytest.mark.slow, pytest.mark.tables]

# (source, id, forename, surname, date of birth, postcode)
RECORDS = [
    ("alpha", "a_x", "John", "Smith", "1960-05-01", "SW1A 1AA"),  # x: one person by the scores, three sources
    ("beta", "b_x", "John", "Smith", "1960-05-01", "SW1A 1AA"),
    ("gamma", "g_x", "John", "Smith", "1960-05-01", "SW1A 1AA"),
    ("alpha", "a_y", "Mary", "Brown", "1970-02-02", "LS1 4AP"),   # y and z: nothing links them but a reviewer
    ("beta", "b_z", "Maria", "Browning", "1971-03-03", "M1 1AE"),
    ("alpha", "a_w", "Peter", "Jones", "1975-07-07", "B1 1BB"),   # w: a pair a reviewer splits later
    ("beta", "b_w", "Peter", "Jones", "1975-07-07", "B1 1BB"),
    ("alpha", "a_v", "Susan", "Clark", "1980-08-08", "CF10 1EP"),  # v: withdrawn at source after a decision
    ("gamma", "g_v", "Susan", "Clark", "1980-08-08", "CF10 1EP"),
    ("alpha", "a_1", "Ahmed", "Khan", "1991-01-11", "E1 6AN"),
    ("beta", "b_2", "Olga", "Ivanova", "1985-04-21", "G1 1XQ"),
    ("gamma", "g_3", "David", "Evans", "1955-09-30", "NP20 1AA"),
    ("gamma", "g_4", "Fatima", "Ali", "2001-12-12", "BD1 1HY"),
    ("beta", "b_5", "George", "Wilson", "1948-06-15", "EH1 1YZ"),
    ("alpha", "a_6", "Chloe", "Taylor", "1999-10-10", "BS1 4DJ"),
    ("alpha", "a_u", "Robert", "Green", "1965-03-03", "NE1 7RU"),  # u: joined by a reviewer, first applied by
    ("gamma", "g_u", "Bob", "Greene", "1965-03-30", "NE2 4AB"),    # an incremental run
]
# Arrives before the third run: the same person as x by the scores, so it pulls on both sides of x's cannot_link.
LATE_RECORD = ("g_x2", "John", "Smith", "1960-05-01", "SW1A 1AA")
SCHEMA = "id string, forename string, surname string, dob string, postcode string"
HEADER = "source_system_l,source_record_id_l,source_system_r,source_record_id_r,decision,reviewer,reason\n"


@dataclass
class Run:
    record: pipeline.RunRecord
    clusters: dict[str, str]  # record id -> cluster id
    link_run: dict
    events: list[dict]
    groups: set[str]  # the record ids in bold.record_groups after the run


@pytest.fixture(scope="module")
def review_runs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    files = []
    for source in ("alpha", "beta", "gamma"):
        spark.createDataFrame([r[1:] for r in RECORDS if r[0] == source], SCHEMA) \
            .write.format("delta").save(str(root / source))
        files.append(root / f"{source}.yaml")
        files[-1].write_text(yaml.safe_dump({
            "name": source, "table": {"path": str(root / source)}, "record_id": "id",
            "columns": {"first_name": "forename", "surname": "surname", "postcode": "postcode",
                        "date_of_birth": {"column": "dob", "formats": ["yyyy-MM-dd"]}}}))
    # The publishing gate would hold runs that move several of fifteen records: every run publishes here.
    config = demo_environment(root, database="bold_review", sources=[str(f) for f in files], views=None,
                              publish_gate={"enabled": False})
    out = config.output
    sources = [s.name for s in config.sources]

    def run(job) -> Run:
        record = job(spark, config, as_of="2026-01-01")
        crosswalk = spark.table(out.qualified("crosswalk")).collect()  # fifteen rows
        link_run = spark.table(out.qualified("link_runs")).where(F.col("run_id") == record.run_id).first().asDict()
        events = [e.asDict() for e in spark.table(out.qualified("cluster_events"))
                  .where(F.col("run_id") == record.run_id).collect()]
        groups = {r["source_record_id"] for r in spark.table(out.qualified("record_groups")).collect()}  # 17 rows
        return Run(record, {r["source_record_id"]: r["cluster_id"] for r in crosswalk}, link_run, events, groups)

    def decide(name: str, *rows: str) -> None:
        path = root / name
        path.write_text(HEADER + "".join(r + "\n" for r in rows))
        import_decisions(spark, out, path, sources=sources)

    first = run(pipeline.link)
    decide("first.csv", "alpha,a_x,gamma,g_x,cannot_link,ann,two people at one address",
           "alpha,a_y,beta,b_z,must_link,ann,married name")
    second = run(pipeline.link)
    decide("second.csv", "alpha,a_w,beta,b_w,cannot_link,bob,", "alpha,a_v,gamma,g_v,must_link,bob,",
           "alpha,a_u,gamma,g_u,must_link,bob,known as Bob")
    DeltaTable.forPath(spark, str(root / "alpha")).delete("id = 'a_v'")  # withdrawn at source
    spark.createDataFrame([LATE_RECORD], SCHEMA).write.format("delta").mode("append").save(str(root / "gamma"))
    third = run(link_incremental)
    queue = spark.table(out.qualified("review_queue"))
    queue_runs = {r["run_id"] for r in queue.select("run_id").distinct().collect()}
    # Two more runs with no new decision.
    later = [run(pipeline.link), run(link_incremental)]
    return {"first": first, "second": second, "third": third, "later": later, "queue_columns": queue.columns,
            "queue_runs": queue_runs}


def test_the_first_run_links_what_the_reviewers_will_change(review_runs):
    c = review_runs["first"].clusters
    assert c["a_x"] == c["b_x"] == c["g_x"] and c["a_w"] == c["b_w"] and c["a_y"] != c["b_z"]
    assert review_runs["first"].link_run["review_decisions_applied"] is None  # no decision yet
    assert {r.link_run["status"] for r in (review_runs[k] for k in ("first", "second", "third"))} == {"succeeded"}


def test_a_cannot_link_splits_a_cluster_and_a_must_link_joins_two_in_the_next_full_run(review_runs):
    second = review_runs["second"]
    c = second.clusters
    assert c["a_x"] != c["g_x"] and c["b_x"] in (c["a_x"], c["g_x"])
    assert c["a_y"] == c["b_z"]
    assert (second.link_run["review_decisions_applied"], second.link_run["review_decisions_not_applicable"],
            second.link_run["review_decisions_unmet"]) == (2, 0, 0)
    assert second.link_run["review_edges_cut"] >= 1  # the weakest edge on the path between a_x and g_x
    reasons = {(e["event"], e["reason"]) for e in second.events}
    assert ("split", "cannot_link") in reasons and ("merged", "must_link") in reasons
    assert c["a_w"] == c["b_w"] and c["a_u"] != c["g_u"]  # not decided yet


def test_decisions_hold_in_the_next_incremental_run_and_a_withdrawn_record_is_reported(review_runs):
    third = review_runs["third"]
    c = third.clusters
    assert c["a_w"] != c["b_w"]  # decided after the second run: split by the incremental run
    assert c["a_u"] == c["g_u"]  # and joined by it
    reasons = {(e["event"], e["reason"]) for e in third.events}
    assert ("split", "cannot_link") in reasons and ("merged", "must_link") in reasons
    assert c["a_x"] != c["g_x"] and c["a_y"] == c["b_z"]  # the earlier decisions still hold
    assert "a_v" not in c and third.groups == set(c)  # the views' groups follow the incremental run
    assert (third.link_run["review_decisions_applied"], third.link_run["review_decisions_not_applicable"],
            third.link_run["review_decisions_unmet"]) == (4, 1, 0)
    assert third.link_run["job"] == "link_incremental" and third.link_run["status"] == "succeeded"


def test_every_run_writes_the_review_queue_with_ids_and_levels_only(review_runs):
    assert review_runs["queue_columns"] == REVIEW_QUEUE.fieldNames()
    assert review_runs["queue_runs"] <= {review_runs["third"].record.run_id}


def test_decisions_stay_applied_over_the_later_runs(review_runs):
    """The incremental run in which a record arrives that the scores put with both sides of an applied cannot_link,
    then a full run and an incremental run with nothing changed: every decision holds in each, and none is unmet."""
    for run in [review_runs["third"], *review_runs["later"]]:
        c, counts = run.clusters, run.link_run
        assert run.link_run["status"] == "succeeded"
        assert c["a_x"] != c["g_x"] and c["a_w"] != c["b_w"]
        assert c["a_y"] == c["b_z"] and c["a_u"] == c["g_u"]
        assert c["g_x2"] in (c["a_x"], c["g_x"])  # the newcomer joins x on one side of the cut
        assert "a_v" not in c and len(c) == len(RECORDS)  # seventeen records, one withdrawn, one arrived
        assert run.groups == set(c)  # every published record has its groups (region, age band) for the views
        assert (counts["review_decisions_applied"], counts["review_decisions_not_applicable"],
                counts["review_decisions_unmet"]) == (4, 1, 0)
    full, unchanged = review_runs["later"]
    assert [r.link_run["job"] for r in review_runs["later"]] == ["link", "link_incremental"]
    # Nothing changed after the full run: the incremental run publishes the same clusters and no event.
    assert unchanged.clusters == full.clusters and unchanged.events == []
