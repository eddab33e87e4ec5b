"""RunRecord.stage: the seconds bold.link_runs reports per stage, and the progress a long stage logs."""
from __future__ import annotations

import logging
import re
import threading
import time

import pytest
from pyspark.sql import functions as F

from bold_spark.pipeline import RunRecord
from bold_spark.progress import THREAD_PREFIX, progress_logged


def test_a_stage_entered_in_parts_adds_up_its_parts_and_a_failing_part_still_counts():
    record = RunRecord("r", "link_incremental", "digest", "local[1]")
    with record.stage("scoring"):
        time.sleep(0.05)
    with record.stage("clustering"):
        time.sleep(0.02)
    with pytest.raises(RuntimeError):
        with record.stage("scoring"):
            time.sleep(0.05)
            raise RuntimeError("a failing part")
    assert record.stage_seconds["scoring"] >= 0.1
    assert 0.02 <= record.stage_seconds["clustering"] < record.stage_seconds["scoring"]
    assert list(record.stage_seconds) == ["scoring", "clustering"]  # first entry decides the order


def _progress_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def test_a_long_stage_logs_its_spark_jobs_and_tasks_done_without_values_and_the_logger_stops(spark, caplog):
    record = RunRecord("r", "link", "digest", "local[2]")
    record.progress = lambda name: progress_logged(spark.sparkContext, stage=name, every=0.5)
    # a long stage from four rows: each sleeps 0.75 s in its task (a static Java method, no Python worker to start)
    slow = F.expr("reflect('java.lang.Thread', 'sleep', 750L)")
    rows = spark.range(0, 4, 1, 2).select(F.concat(F.lit("secret-"), F.col("id").cast("string")).alias("value"))
    with caplog.at_level(logging.INFO, logger="bold_spark.progress"):
        with record.stage("scoring"):
            # filtered on (true for any result), so the optimiser cannot prune the sleep
            kept = F.length(F.coalesce(slow, F.lit(""))) >= 0
            assert rows.where(kept).agg(F.max(F.length("value"))).first()[0] == 8
        assert not _progress_threads()  # stopped with the stage
        with pytest.raises(RuntimeError), record.stage("clustering"):
            time.sleep(1.2)  # work on the driver: no Spark job
            raise RuntimeError("a failing stage")
        assert not _progress_threads()  # stopped with the failing stage too
        time.sleep(0.6)  # a stopped logger logs nothing more
    lines = [r.getMessage() for r in caplog.records if r.name == "bold_spark.progress"]
    scoring = [line for line in lines if line.startswith("stage scoring: still running after")]
    assert any(re.search(r"Spark job \d+, stage \d+: \d of 2 tasks done \(\d running\)", line) for line in scoring)
    assert [line for line in lines if line.startswith("stage clustering")][0].endswith(
        "no Spark job running (work on the driver)")
    assert len(lines) == len(scoring) + len([line for line in lines if line.startswith("stage clustering")])
    assert not any("secret" in line for line in lines)
