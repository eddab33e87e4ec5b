"""Faults and personal data, on real processes: jobs/link.py killed mid-scoring and mid-crosswalk-write, rerun,
repeated; and its whole log searched for every personal value of the input.

One small synthetic sample (about 1,200 records, bad records added) and the committed test model, so nothing is
trained. The jobs use an embedded Derby metastore under this module's temporary folder; only one job runs at a
time, and this process reads the output tables by path (no metastore), so they never share Derby.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from bold_spark.config import load_config
from bold_spark.faults import PAUSE_AT, PAUSE_DIR
from bold_spark.synthetic.generate import generate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-01-01"
CROSSWALK_KEY = ["source_system", "source_record_id"]
CROSSWALK_VALUES = ["source_system", "source_record_id", "cluster_id", "cluster_size", "match_probability"]

pytestmark = pytest.mark.processes  # make test-processes: jobs as separate processes, killed mid-run


class Job:
    """jobs/link.py in its own process group (the Python driver and its JVM), output to files we can poll."""

    def __init__(self, env_file: Path, name: str, *extra_env: tuple[str, str]) -> None:
        folder = env_file.parent
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_GATEWAY_PORT", PAUSE_AT)}
        env.update(dict(extra_env))
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "jobs/link.py", "--conf", str(env_file), "--as-of", AS_OF, "--log-level", "DEBUG"],
                cwd=PROJECT_ROOT, stdout=out, stderr=err, env=env, start_new_session=True)

    def log(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait(self, timeout: float = 1800) -> int:
        return self.process.wait(timeout=timeout)

    def wait_for(self, condition, what: str, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"the job ended ({self.process.returncode}) before {what}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group: the driver gets no chance to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)


def _add_bad_records(spark, path: str) -> None:
    """Append to prison_releases: a record without id, two sharing an id, names with non-UTF-8 and control bytes."""
    table = spark.read.format("delta").load(path)
    rows = [r.asDict() for r in table.orderBy("prison_number").limit(4).collect()]  # four rows
    ids = [None, rows[1]["prison_number"] + "Z", rows[1]["prison_number"] + "Z", rows[3]["prison_number"] + "Z"]
    for row, new_id in zip(rows, ids):
        row["prison_number"] = new_id
    rows[3]["FORENAME"] += "\u0007"  # a control character
    bad = spark.createDataFrame(rows, table.schema).withColumn(  # invalid UTF-8 (0xC3 0x28), as mis-encoded bytes
        "FORENAME", F.when(F.col("prison_number").isNotNull() & (F.col("prison_number") == ids[1])
                           & (F.col("FORENAME") == rows[2]["FORENAME"]),
                           F.concat(F.col("FORENAME"), F.unhex(F.lit("C328")).cast("string")))
        .otherwise(F.col("FORENAME")))
    bad.write.format("delta").mode("append").save(path)


@pytest.fixture(scope="module")
def environment(spark, tmp_path_factory) -> Path:
    """conf/local.yaml under a temporary base_dir: the demo sources on a small sample, the committed test model."""
    root = tmp_path_factory.mktemp("faults")
    sample = generate(spark, scale=1200, seed=17)
    for source, df in sample.departments.items():
        df.write.format("delta").partitionBy("extract_month").save(str(root / "var" / "sample" / source))
    _add_bad_records(spark, str(root / "var" / "sample" / "prison_releases"))
    conf = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    conf["base_dir"] = str(root)
    conf["spark"]["master"] = "local[2]"
    conf["spark"]["jars_dir"] = str(PROJECT_ROOT / "var" / "ivy" / "jars")
    conf["spark"]["conf"].update({"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": 2,
                                  "spark.sql.adaptive.enabled": False})
    conf["sources"] = [str(PROJECT_ROOT / "conf" / "sources" / "demo" / "*.yaml")]
    conf["linkage"] = str(PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml")
    if isinstance(conf.get("views"), str):  # files named relative to conf/ stay where they are
        conf["views"] = str(PROJECT_ROOT / "conf" / conf["views"])
    env_file = root / "env.yaml"
    env_file.write_text(yaml.safe_dump(conf))
    model = load_config(env_file).linkage.model_path
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "tests" / "data" / "uk_person_model.json", model)
    shutil.copy(PROJECT_ROOT / "tests" / "data" / "uk_person_model.meta.json", model.with_suffix(".meta.json"))
    return env_file


def _table(env_file: Path, name: str) -> str:
    return str(env_file.parent / "var" / "warehouse" / "bold.db" / name)


def _version(spark, env_file: Path, name: str) -> int:
    return DeltaTable.forPath(spark, _table(env_file, name)).history(1).select("version").first()[0]  # one row


def _rows(spark, env_file: Path, name: str = "crosswalk", columns=CROSSWALK_VALUES):
    return spark.read.format("delta").load(_table(env_file, name)).select(*columns)


@pytest.fixture(scope="module")
def first_run(environment) -> Job:
    job = Job(environment, "first")
    assert job.wait() == 0, job.log()[-5000:]
    return job


def test_a_run_accounts_for_every_record_read(spark, environment, first_run):
    runs = spark.read.format("delta").load(_table(environment, "link_runs")).where("status = 'succeeded'")
    run = runs.first()  # one run so far
    crosswalk = _rows(spark, environment).count()
    rejects = _rows(spark, environment, "rejects", ["reason"])
    assert run["records_read"] == crosswalk + rejects.count() == sum(i["records_read"] for i in run["inputs"])
    reasons = {r["reason"]: r["count"] for r in rejects.groupBy("reason").count().collect()}  # a few reasons
    assert reasons["record id is missing"] == 1
    assert reasons["record id is not unique in the source"] == 2
    assert reasons["name contains undecodable (non-UTF-8) or control characters"] == 1  # the other is a duplicate


def _personal_values(spark, env_file: Path) -> set[str]:
    """Every value of every mapped column of the input, as stored (and dates also in ISO form)."""
    values: set[str] = set()
    for source in load_config(env_file).sources:
        df = spark.read.format("delta").load(source.table.path)
        for column in set(source.source_columns().values()):
            distinct = df.select(F.col(f"`{column}`").cast("string").alias("v")).where("v is not null").distinct()
            values.update(r["v"] for r in distinct.collect())  # test only: about 1,200 records
    # Short values (a three-letter forename, a two-digit age) also occur in ordinary words and numbers.
    return {v.strip() for v in values if len(v.strip()) >= 4 and not v.strip().isdigit()}


def _leaks(text: str, values: set[str]) -> list[str]:
    words = set(re.findall(r"[\w'\-/]+", text))
    hits = [v for v in values if v in words or (" " in v and v in text)]
    return sorted(hits)[:20]


def test_logs_and_run_records_carry_no_personal_values(spark, environment, first_run, tmp_path):
    values = _personal_values(spark, environment)
    assert len(values) > 1000
    assert not _leaks(first_run.log(), values)
    # A run that stops on bad input: the error names source, column and counts, never the values.
    strict = yaml.safe_load(environment.read_text())
    strict["validation"] = {"on_bad_name_characters": "fail", "on_duplicate_id": "fail"}
    strict_file = environment.parent / "strict.yaml"
    strict_file.write_text(yaml.safe_dump(strict))
    failed = Job(strict_file, "strict")
    assert failed.wait() == 2
    assert "source prison_releases: input validation failed; nothing was written" in failed.log()
    assert "column 'FORENAME': 2 names contain undecodable (non-UTF-8) or control characters" in failed.log()
    assert not _leaks(failed.log(), values)
    runs = spark.read.format("delta").load(_table(environment, "link_runs"))
    text = "\n".join(str(r.asDict(recursive=True)) for r in runs.collect())  # a few run rows
    assert not _leaks(text, values)


def test_killed_during_scoring_leaves_the_previous_crosswalk(spark, environment, first_run):
    before_version, before = _version(spark, environment, "crosswalk"), _rows(spark, environment).localCheckpoint()
    job = Job(environment, "killed_scoring")
    job.wait_for(lambda: "stage scoring: start" in job.log(), "the scoring stage")
    job.kill()
    assert not re.search(r"stage scoring: [0-9.]+ s", job.log())  # killed mid-stage, not after it
    assert _version(spark, environment, "crosswalk") == before_version
    assert _rows(spark, environment).exceptAll(before).isEmpty() and before.exceptAll(_rows(spark, environment)).isEmpty()


def test_killed_during_the_crosswalk_write_leaves_the_previous_crosswalk(spark, environment, first_run, tmp_path):
    before_version, before = _version(spark, environment, "crosswalk"), _rows(spark, environment).localCheckpoint()
    edges_version = _version(spark, environment, "match_edges")
    job = Job(environment, "killed_writing", (PAUSE_AT, "write:bold.crosswalk"), (PAUSE_DIR, str(tmp_path)))
    job.wait_for(lambda: (tmp_path / "write_bold.crosswalk.reached").exists(), "the crosswalk write")
    job.kill()
    assert _version(spark, environment, "match_edges") > edges_version  # the run got as far as publishing
    assert _version(spark, environment, "crosswalk") == before_version
    after = _rows(spark, environment)
    assert after.exceptAll(before).isEmpty() and before.exceptAll(after).isEmpty()


def test_the_next_run_succeeds_and_a_repeated_run_gives_the_same_tables(spark, environment, first_run):
    first = _rows(spark, environment).localCheckpoint()
    job = Job(environment, "rerun")
    assert job.wait() == 0, job.log()[-5000:]
    again = _rows(spark, environment)
    assert again.count() == again.select(*CROSSWALK_KEY).distinct().count() == first.count()
    # Per column, how many records differ (probabilities to 1e-9: Spark's sums need not add in the same order).
    joined = first.alias("a").join(again.alias("b"), CROSSWALK_KEY, how="full")
    differs = {c: joined.where(~F.col(f"a.{c}").eqNullSafe(F.col(f"b.{c}"))).count()
               for c in ("cluster_id", "cluster_size")}
    differs["match_probability"] = joined.where(
        ~F.round("a.match_probability", 9).eqNullSafe(F.round("b.match_probability", 9))).count()
    assert differs == {"cluster_id": 0, "cluster_size": 0, "match_probability": 0}
    runs = spark.read.format("delta").load(_table(environment, "link_runs")).where("job = 'link'")
    assert runs.where("status = 'succeeded'").count() == 2  # the killed runs could not record themselves
