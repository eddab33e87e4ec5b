"""Stable ids and incremental linkage end to end on synthetic departments delivered in two monthly batches.

One module fixture, three runs with the committed model (no training), about 600 records:
  1. full link on the first months,
  2. incremental link after the remaining months arrive, some first-batch records are deleted at source and a
     few are edited,
  3. a full link on the final data (into the same tables, so ids carry forward).
That a repeated full run on the same inputs gives the same crosswalk id for id, with no cluster event, is asserted
by test_jobs_end_to_end.py's repeated run (the same jobs/link.py on the standalone cluster).
"""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, functions as F

from bold_spark import pipeline
from bold_spark.config import TableRef, load_config
from bold_spark.incremental import link_incremental
from bold_spark.io.delta import read_table
from bold_spark.synthetic.departments import RECORD_ID_COLUMN
from bold_spark.synthetic.generate import generate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL = PROJECT_ROOT / "tests" / "data" / "uk_person_model.json"
AS_OF = "2026-01-01"
KEYS = ["source_system", "source_record_id"]
DELETED_PER_SOURCE = 3

log = logging.getLogger(__name__)
pytestmark = pytest.mark.processes  # make test-processes: three linked runs in a row (full, incremental, full)


def _version_rows(spark, name: str, version: int) -> DataFrame:
    return read_table(spark, TableRef(name=name), version=version)


def _latest(spark, name: str) -> int:
    return int(DeltaTable.forName(spark, name).history(1).select("version").first()["version"])  # one row


def partition_difference(a: DataFrame, b: DataFrame) -> dict[str, float]:
    """Records whose cluster (as a set of records) differs between crosswalks ``a`` and ``b`` (ids ignored)."""
    x = a.select(*KEYS, F.col("cluster_id").alias("a"))
    y = b.select(*KEYS, F.col("cluster_id").alias("b"))
    joined = x.join(y, KEYS, how="full")
    both = joined.where(F.col("a").isNotNull() & F.col("b").isNotNull())
    pair = both.groupBy("a", "b").agg(F.count(F.lit(1)).alias("n"))
    size_a = x.groupBy("a").agg(F.count(F.lit(1)).alias("size_a"))
    size_b = y.groupBy("b").agg(F.count(F.lit(1)).alias("size_b"))
    same = pair.join(size_a, "a").join(size_b, "b").where((F.col("n") == F.col("size_a")) & (F.col("n") == F.col("size_b")))
    row = joined.agg(F.count(F.lit(1)).alias("records"),
                     F.count(F.when(F.col("a").isNull() | F.col("b").isNull(), 1)).alias("unmatched")).first()
    agreeing = same.agg(F.coalesce(F.sum("n"), F.lit(0)).alias("n")).first()["n"]  # one row
    same_id = both.where(F.col("a") == F.col("b")).count()
    return {"records": row["records"], "unmatched": row["unmatched"], "differing": row["records"] - agreeing,
            "share_differing": (row["records"] - agreeing) / row["records"], "same_id": same_id}


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("stable_ids")
    (root / "var" / "models").mkdir(parents=True)
    shutil.copy(MODEL, root / "var" / "models" / "uk_person.json")
    config = load_config(PROJECT_ROOT / "conf" / "local.yaml",
                         overrides={"base_dir": str(root), "output": {"database": "stable_ids_it"},
                                    # every run publishes: the test compares the published crosswalks
                                    "publish_gate": {"enabled": False}})
    sample = generate(spark, scale=600, seed=23).materialise()
    months = sorted({r["m"] for df in sample.departments.values()
                     for r in df.select(F.col("extract_month").alias("m")).distinct().collect()})  # a few months
    cut = months[len(months) * 2 // 3]
    sources = {s.name: s for s in config.sources}
    for name, df in sample.departments.items():
        df.where(F.col("extract_month") < cut).write.format("delta").partitionBy("extract_month") \
            .save(sources[name].table.path)

    first = pipeline.link(spark, config, as_of=AS_OF)
    xw = config.output.qualified("crosswalk")
    first_version = _latest(spark, xw)

    # The second delivery: the remaining months, a few first-batch records withdrawn and a few corrected.
    deleted = []
    for name, df in sample.departments.items():
        path, rid = sources[name].table.path, RECORD_ID_COLUMN[name]
        df.where(F.col("extract_month") >= cut).write.format("delta").mode("append").save(path)
        gone = [r[0] for r in spark.read.format("delta").load(path).where(F.col("extract_month") < cut)
                .select(rid).orderBy(rid).limit(DELETED_PER_SOURCE).collect()]  # bounded: 3 ids
        DeltaTable.forPath(spark, path).delete(F.col(rid).isin(gone))
        deleted += [(name, g) for g in gone]
    edited = sources["prison_releases"].table.path
    DeltaTable.forPath(spark, edited).update(F.col("prison_number").endswith("7"), {"release_postcode": F.lit(None)})

    incremental = link_incremental(spark, config, as_of=AS_OF)
    inc_version = _latest(spark, xw)
    inc_edges = _version_rows(spark, config.output.qualified("match_edges"),
                              _latest(spark, config.output.qualified("match_edges"))).localCheckpoint()
    full = pipeline.link(spark, config, as_of=AS_OF)
    full_version = _latest(spark, xw)
    return {"config": config, "first": first, "incremental": incremental, "full": full,
            "versions": (first_version, inc_version, full_version), "deleted": deleted,
            "xw": xw, "inc_edges": inc_edges}


def test_incremental_run_equals_a_full_run_on_the_final_data(spark, runs):
    _, inc_v, full_v = runs["versions"]
    inc = _version_rows(spark, runs["xw"], inc_v)
    full = _version_rows(spark, runs["xw"], full_v)
    diff = partition_difference(inc, full)
    log.warning("incremental vs full: %s", diff)
    print(f"incremental vs full on the final data: {diff}")
    assert diff["unmatched"] == 0
    assert diff["share_differing"] <= 0.01, diff
    # the full run carries the incremental run's ids forward, so identical clusters keep identical ids
    assert diff["same_id"] >= diff["records"] - diff["differing"]
    assert runs["incremental"].crosswalk_rows == runs["full"].crosswalk_rows == inc.count()
    # counted from what the run changed, not from the table: the same figure
    assert runs["incremental"].clusters == inc.select("cluster_id").distinct().count()


def test_incremental_run_scores_only_what_changed_and_removes_deleted_records(spark, runs):
    config, inc = runs["config"], runs["incremental"]
    _, inc_v, _ = runs["versions"]
    crosswalk = _version_rows(spark, runs["xw"], inc_v)
    deleted = spark.createDataFrame(runs["deleted"], "source_system string, source_record_id string")
    assert crosswalk.join(deleted, KEYS, how="inner").count() == 0
    assert crosswalk.groupBy(*KEYS).count().where(F.col("count") > 1).count() == 0
    # every record the incremental run did not touch keeps the first run's id and run id
    first = _version_rows(spark, runs["xw"], runs["versions"][0])
    kept = crosswalk.where(F.col("run_id") == runs["first"].run_id)
    assert kept.join(first.select(*KEYS, "cluster_id"), [*KEYS, "cluster_id"], how="left_anti").count() == 0
    assert 0 < crosswalk.where(F.col("run_id") == inc.run_id).count() < crosswalk.count()
    # the edge store has no edge of a deleted record, and the new edges are recorded under the incremental run
    edges = runs["inc_edges"]
    assert inc.edges_recorded > 0 and 0 < edges.where(F.col("run_id") == inc.run_id).count() < edges.count()
    for side in ("l", "r"):
        hit = edges.join(deleted.toDF(f"source_system_{side}", f"source_record_id_{side}"),
                         [f"source_system_{side}", f"source_record_id_{side}"], how="inner")
        assert hit.count() == 0
    events = spark.table(config.output.qualified("cluster_events")).where(F.col("run_id") == inc.run_id)
    kinds = {r["event"] for r in events.select("event").distinct().collect()}  # at most four values
    assert "new" in kinds, kinds
    runs_table = spark.table(config.output.qualified("link_runs")).where(F.col("run_id") == inc.run_id)
    assert runs_table.select("job", "status").first().asDict() == {"job": "link_incremental", "status": "succeeded"}
    # its stages account for the run: the last run's lookup and the linkage input are in them, not between them
    timing = runs_table.select("started_at", "ended_at").first()
    wall = (timing["ended_at"] - timing["started_at"]).total_seconds()
    assert list(inc.stage_seconds) == ["changes", "read_standardise", "scoring", "clustering", "writing"]
    assert sum(inc.stage_seconds.values()) >= 0.9 * wall, (inc.stage_seconds, wall)
    # it started from the first run's stored standardised records and read again only the changed ones
    restandardised = re.search(r"(\d+) records read and standardised", inc.message)
    assert restandardised and "no stored records" not in inc.message, inc.message
    assert 0 < int(restandardised.group(1)) < inc.crosswalk_rows / 2
    assert "version diff of changed files" in inc.message
