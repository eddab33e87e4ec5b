"""RunRecord.stage: the seconds bold.link_runs reports per stage."""
from __future__ import annotations

import time

import pytest

from bold_spark.pipeline import RunRecord


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
