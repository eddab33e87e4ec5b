"""The evaluation job on a tiny crosswalk with two Delta versions: time travel to a run, idempotent re-runs,
labelled pairs, and the job's entry point with its printed tables."""
from __future__ import annotations

import argparse
import importlib.util
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from bold_spark.config import OutputTables, TableRef, load_config
from bold_spark.errors import DataQualityError
from bold_spark.io.delta import ensure_database, overwrite_table, read_table
from bold_spark.quality.evaluate import conform_labels, conform_truth, evaluate_run
from bold_spark.schemas import CROSSWALK

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CROSSWALK_COLUMNS = "source_system string, source_record_id string, cluster_id string"
# Truth: P = a1, a2, b1; Q = b2. Run r1 links everything right; run r2 (published later) wrongly adds b2 to P.
TRUTH = [("a", "a1", "P"), ("a", "a2", "P"), ("b", "b1", "P"), ("b", "b2", "Q")]
RUN_1 = [("a", "a1", "x"), ("a", "a2", "x"), ("b", "b1", "x"), ("b", "b2", "y")]
RUN_2 = [("a", "a1", "x"), ("a", "a2", "x"), ("b", "b1", "x"), ("b", "b2", "x")]


def _publish(spark, output: OutputTables, rows, run_id: str) -> None:
    df = spark.createDataFrame(rows, CROSSWALK_COLUMNS).select(
        "*", F.lit(run_id).alias("run_id"), F.lit(1).alias("cluster_size"),
        F.lit(None).cast("double").alias("match_probability"))
    overwrite_table(df.select(*CROSSWALK.fieldNames()), output.qualified("crosswalk"), partition_by=["source_system"])


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory):
    """Two link runs published one after the other, and a truth table as a Delta path."""
    root = tmp_path_factory.mktemp("evaluate")
    output = OutputTables(database=f"eval_{uuid.uuid4().hex[:8]}")
    ensure_database(spark, output)
    _publish(spark, output, RUN_1, "r1")
    _publish(spark, output, RUN_2, "r2")
    truth_path = str(root / "truth")
    spark.createDataFrame(TRUTH, "src string, rid string, pid string").write.format("delta").save(truth_path)
    yield output, TableRef(path=truth_path), root
    spark.sql(f"DROP DATABASE IF EXISTS {output.database} CASCADE")


def _truth(spark, ref: TableRef):
    return conform_truth(read_table(spark, ref), columns={"source_system": "src", "source_record_id": "rid",
                                                          "person_id": "pid"}, description=ref.describe())


def test_an_earlier_run_is_read_by_time_travel_and_re_runs_replace_its_rows(spark, published):
    output, ref, _ = published
    for _ in range(2):
        result = evaluate_run(spark, output, truth=_truth(spark, ref), truth_description=ref.describe(),
                              run_id="r1")
    assert (result.run_id, result.crosswalk_version) == ("r1", 0)
    assert result.overall["missed_pairs"] is None  # no breakdown asked for: its columns stay null
    assert (result.overall["f1"], result.overall["bcubed_precision"], result.overall["bcubed_recall"]) == (1, 1, 1)
    # (a,b): x holds a1, a2 and b1 -> 2*1 predicted, all true; b2 alone in y
    (ab,) = [r for r in result.by_source_pair if (r["source_system_l"], r["source_system_r"]) == ("a", "b")]
    assert (ab["predicted_pairs"], ab["true_positive_pairs"]) == (2, 2)
    rows = spark.table(output.qualified("evaluations")).where(F.col("run_id") == "r1")
    assert rows.count() == 1 + 2  # overall + (a,a), (a,b): no b-b pair is predicted or true; not doubled by re-run


def test_labelled_pairs_are_recorded_beside_the_truth_rows(spark, published):
    output, _, root = published
    path = str(root / "labels")
    spark.createDataFrame([("a", "a1", "b", "b1", 1), ("b", "b2", "a", "a2", 0)],
                          "source_system_l string, source_record_id_l string, source_system_r string, "
                          "source_record_id_r string, is_match int").write.format("delta").save(path)
    ref = TableRef(path=path)
    result = evaluate_run(spark, output, labels=conform_labels(read_table(spark, ref)),
                          truth_description=ref.describe())
    # run r2 puts both pairs in one cluster: predicted 2, true 1, TP 1
    o = result.overall
    assert (o["labelled_pairs"], o["predicted_pairs"], o["precision"], o["recall"]) == (2, 2, 0.5, 1.0)
    rows = spark.table(output.qualified("evaluations")).where(F.col("truth_kind") == "labelled_pairs").collect()
    assert {(r["run_id"], r["truth"]) for r in rows} == {("r2", ref.describe())} and len(rows) == 1 + 1  # + (a,b)


def test_an_unknown_run_and_a_truth_that_matches_nothing_are_clear_errors(spark, published):
    output, ref, _ = published
    with pytest.raises(DataQualityError, match=r"run r9 is not in the last 2 versions of eval_\w+\.crosswalk"):
        evaluate_run(spark, output, truth=_truth(spark, ref), truth_description="t", run_id="r9")
    other = spark.createDataFrame([("c", "c1", "P")], "source_system string, source_record_id string, person_id string")
    with pytest.raises(DataQualityError, match=r"none of its 1 records is in the crosswalk"):
        evaluate_run(spark, output, truth=other, truth_description="t")


def _job_module():
    sys.path.insert(0, str(PROJECT_ROOT / "jobs"))
    spec = importlib.util.spec_from_file_location("evaluate_job", PROJECT_ROOT / "jobs" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_job_evaluates_the_current_crosswalk_by_default_and_prints_both_tables(spark, published, tmp_path,
                                                                                 monkeypatch, capsys):
    output, ref, _ = published
    job = _job_module()
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "a.yaml").write_text(yaml.safe_dump(
        {"name": "a", "table": {"path": "a"}, "record_id": "id", "columns": {"surname": "sn"}}))
    (tmp_path / "env.yaml").write_text(yaml.safe_dump({
        "base_dir": ".", "spark": {"warehouse_dir": "wh", "checkpoint_dir": "cp"},
        "output": {"database": output.database, "evaluations": "accuracy"}, "sources": ["sources/*.yaml"],
        "linkage": str(PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml")}))
    config = load_config(tmp_path / "env.yaml")
    monkeypatch.setattr(job, "build_session", lambda settings: spark)  # the suite's session, not a new one
    args = argparse.Namespace(truth=ref.path, labels=None, run_id=None, max_versions=50, sweep=False,
                              no_breakdown=False,  # no match_edges here: the breakdown is left out, with a warning
                              truth_columns="source_system=src,source_record_id=rid,person_id=pid")
    assert job.main(args, config) == 0
    out = capsys.readouterr().out
    # run r2 (the current version, 1): one cluster of 4 -> 6 predicted pairs; true pairs 3 (P); TP 3
    assert "run r2 (crosswalk version 1)" in out and "precision 0.5000  recall 1.0000" in out
    assert "(true positives 3; predicted 6; true 3)" in out and "clusters merging people 100.00%" in out
    assert "by source pair:" in out and f"recorded in {output.database}.accuracy" in out
    rows = spark.table(f"{output.database}.accuracy").collect()
    assert len(rows) == 1 + 3  # overall + (a,a), (a,b), (b,b)
    assert {(r["run_id"], r["crosswalk_version"], r["truth_kind"]) for r in rows} == {("r2", 1, "records")}
    assert job.table_ref("bold.truth") == TableRef(name="bold.truth")
    assert job.table_ref(ref.path) == TableRef(path=ref.path)
