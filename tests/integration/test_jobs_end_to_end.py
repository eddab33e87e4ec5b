"""The jobs as a user runs them, as one chain of real processes on one environment, each run serving several
assertions (the tests run in file order and each one builds on the state the earlier ones left):

  jobs/generate_sample.py -> bad records appended -> jobs/link.py --train-if-missing (the committed model exists)
  -> jobs/sql.py reads bold.crosswalk by name in a new process -> a strict run stops on the bad records
  -> a run SIGKILLed during scoring -> a run SIGKILLed during the crosswalk write
  -> the same jobs/link.py on a two-worker standalone cluster, one worker SIGKILLed during scoring: it succeeds
     and gives the first run's tables, id for id.

About 1,200 synthetic records. The jobs use an embedded Derby metastore under this module's temporary folder; only
one job runs at a time, and this process reads the output tables by path (no metastore), so they never share Derby.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
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
from bold_spark.linkage.model import checkpoints_under
from tests.integration.conftest import load_job

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-01-01"
CROSSWALK_KEY = ["source_system", "source_record_id"]
CROSSWALK_VALUES = ["source_system", "source_record_id", "cluster_id", "cluster_size", "match_probability"]

pytestmark = pytest.mark.processes  # make test-processes: jobs as separate processes, killed mid-run


def _env(*extra: tuple[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_GATEWAY_PORT", PAUSE_AT)}
    env.update(dict(extra))
    return env


# Generous: on a slower 2-core machine, beside the other pytest worker, a 3,000-record train and link ran past 600 s.
def _run(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=timeout, env=_env())
    assert result.returncode == 0, f"{args[0]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-5000:]}"
    return result


class Job:
    """A job in its own process group (the Python driver and its JVM), output to files we can poll."""

    def __init__(self, folder: Path, name: str, args: list[str], *extra_env: tuple[str, str]) -> None:
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, stdout=out, stderr=err,
                                            env=_env(*extra_env), start_new_session=True)

    @classmethod
    def link(cls, env_file: Path, name: str, *extra_env: tuple[str, str], extra_args: tuple[str, ...] = ()) -> Job:
        return cls(env_file.parent, name, ["jobs/link.py", "--conf", str(env_file), "--as-of", AS_OF,
                                           "--log-level", "DEBUG", *extra_args], *extra_env)

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
    """conf/local.yaml under a temporary base_dir and a small local master: the demo sources written by
    jobs/generate_sample.py (its main, in this process: a JVM start saved), bad records added, the committed model."""
    root = tmp_path_factory.mktemp("e2e")
    conf = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    conf["base_dir"] = str(root)
    conf["spark"]["master"] = "local[2]"
    conf["spark"]["jars_dir"] = str(PROJECT_ROOT / "var" / "ivy" / "jars")
    conf["spark"]["conf"].update({"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": 2,
                                  "spark.sql.adaptive.enabled": False})
    conf["sources"] = [str(PROJECT_ROOT / "conf" / "sources" / "demo" / "*.yaml")]
    conf["views"] = str(PROJECT_ROOT / "conf" / conf["views"])  # relative names are relative to the env file
    conf["linkage"] = str(PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml")
    env_file = root / "env.yaml"
    env_file.write_text(yaml.safe_dump(conf))
    with checkpoints_under(spark, str(root / "var" / "checkpoints")):  # the job sets the env's checkpoint folder
        assert load_job("generate_sample").main(["--conf", str(env_file), "--scale", "1200", "--seed", "17"]) == 0
    _add_bad_records(spark, str(root / "var" / "sample" / "prison_releases"))
    model = load_config(env_file).linkage.model_path  # trained models are tested by test_public_data.py
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "tests" / "data" / "uk_person_model.json", model)
    shutil.copy(PROJECT_ROOT / "tests" / "data" / "uk_person_model.meta.json", model.with_suffix(".meta.json"))
    return env_file


def _table(env_file: Path, name: str) -> str:
    return str(env_file.parent / "var" / "warehouse" / "bold.db" / name)


def _version(spark, env_file: Path, name: str) -> int:
    return DeltaTable.forPath(spark, _table(env_file, name)).history(1).select("version").first()[0]  # one row


def _rows(spark, env_file: Path, name: str = "crosswalk", columns=CROSSWALK_VALUES, version: int | None = None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(_table(env_file, name)).select(*columns)


@pytest.fixture(scope="module")
def first_run(environment) -> Job:
    job = Job.link(environment, "first", extra_args=("--train-if-missing",))  # a model exists: nothing trained
    assert job.wait() == 0, job.log()[-5000:]
    return job


def test_a_run_accounts_for_every_record_read(spark, environment, first_run):
    assert re.search(r"run \S+: [\d,]+ records in [\d,]+ clusters", first_run.log())
    runs = spark.read.format("delta").load(_table(environment, "link_runs"))
    assert [r["job"] for r in runs.collect()] == ["link"]  # one row: the model existed, nothing was trained
    run = runs.where("job = 'link' and status = 'succeeded'").first()
    crosswalk = _rows(spark, environment).count()
    rejects = _rows(spark, environment, "rejects", ["reason"])
    assert run["records_read"] == crosswalk + rejects.count() == sum(i["records_read"] for i in run["inputs"])
    reasons = {r["reason"]: r["count"] for r in rejects.groupBy("reason").count().collect()}  # a few reasons
    assert reasons["record id is missing"] == 1
    assert reasons["record id is not unique in the source"] == 2
    assert reasons["name contains undecodable (non-UTF-8) or control characters"] == 1  # the other is a duplicate


def test_a_new_process_reads_the_crosswalk_by_name(environment, first_run):
    query = ("with latest as (select inputs from bold.link_runs where job = 'link' and status = 'succeeded' "
             "order by started_at desc limit 1) "
             "select (select count(*) from bold.crosswalk) as rows_, "
             "(select count(distinct source_system, source_record_id) from bold.crosswalk) as keys_, "
             "(select sum(i.records_accepted) from latest lateral view explode(inputs) t as i) as accepted_")
    out = _run("jobs/sql.py", "--conf", str(environment), query).stdout
    line = next(l for l in out.splitlines() if l.startswith("|") and "rows_" not in l)
    rows, keys, accepted = (int(x) for x in line.strip("|").split("|"))
    assert rows == keys == accepted > 1000


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


def test_logs_and_run_records_carry_no_personal_values(spark, environment, first_run):
    values = _personal_values(spark, environment)
    assert len(values) > 1000
    assert not _leaks(first_run.log(), values)  # training and linking, at DEBUG
    # A run that stops on bad input: the error names source, column and counts, never the values.
    strict = yaml.safe_load(environment.read_text())
    strict["validation"] = {"on_bad_name_characters": "fail", "on_duplicate_id": "fail"}
    strict_file = environment.parent / "strict.yaml"
    strict_file.write_text(yaml.safe_dump(strict))
    failed = Job.link(strict_file, "strict")
    assert failed.wait() == 2
    assert "source prison_releases: input validation failed; nothing was written" in failed.log()
    assert "column 'FORENAME': 2 names contain undecodable (non-UTF-8) or control characters" in failed.log()
    assert not _leaks(failed.log(), values)
    runs = spark.read.format("delta").load(_table(environment, "link_runs"))
    text = "\n".join(str(r.asDict(recursive=True)) for r in runs.collect())  # a few run rows
    assert not _leaks(text, values)


def test_killed_during_scoring_leaves_the_previous_crosswalk(spark, environment, first_run):
    before_version, before = _version(spark, environment, "crosswalk"), _rows(spark, environment).localCheckpoint()
    job = Job.link(environment, "killed_scoring")
    job.wait_for(lambda: "stage scoring: start" in job.log(), "the scoring stage")
    job.kill()
    assert not re.search(r"stage scoring: [0-9.]+ s", job.log())  # killed mid-stage, not after it
    assert _version(spark, environment, "crosswalk") == before_version
    assert _rows(spark, environment).exceptAll(before).isEmpty() and before.exceptAll(_rows(spark, environment)).isEmpty()


def test_killed_during_the_crosswalk_write_leaves_the_previous_crosswalk(spark, environment, first_run, tmp_path):
    before_version, before = _version(spark, environment, "crosswalk"), _rows(spark, environment).localCheckpoint()
    edges_version = _version(spark, environment, "match_edges")
    job = Job.link(environment, "killed_writing", (PAUSE_AT, "write:bold.crosswalk"), (PAUSE_DIR, str(tmp_path)))
    job.wait_for(lambda: (tmp_path / "write_bold.crosswalk.reached").exists(), "the crosswalk write")
    job.kill()
    assert _version(spark, environment, "match_edges") > edges_version  # the run got as far as publishing
    assert _version(spark, environment, "crosswalk") == before_version
    after = _rows(spark, environment)
    assert after.exceptAll(before).isEmpty() and before.exceptAll(after).isEmpty()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_the_next_run_on_a_standalone_cluster_survives_a_killed_worker_and_repeats_the_tables(
        spark, environment, first_run, tmp_path):
    """After the killed runs, the same jobs/link.py submitted to a two-worker standalone cluster on 127.0.0.1; one
    worker (and the executor it launched) is SIGKILLed once scoring starts: Spark reschedules the lost tasks and
    recomputes lost shuffle output on the other worker. The run succeeds, and the crosswalk repeats the first (local)
    run's, id for id (probabilities to 1e-9: Spark's sums need not add in the same order), with no cluster event."""
    first = _rows(spark, environment, version=0).localCheckpoint()
    port = _free_port()
    state = tmp_path / "cluster"
    cluster = ["jobs/cluster.py", "--conf", str(environment), "--state-dir", str(state), "--port", str(port)]
    _run(*cluster, "up", "--workers", "2", "--worker-memory", "2g")
    try:
        job = Job(tmp_path, "cluster", [*cluster, "submit", "--executor-memory", "1500m", "--", "jobs/link.py",
                                        "--conf", str(environment), "--as-of", AS_OF])
        job.wait_for(lambda: "stage scoring: start" in job.log(), "the scoring stage")
        worker = int((state / "worker-1.pid").read_text())
        assert _children(worker), "worker 1 had launched no executor"
        os.killpg(worker, signal.SIGKILL)  # the worker JVM and the executor JVM it launched (same process group)
        code = job.wait()
        assert code == 0, f"the run failed after a worker was killed ({code}):\n{job.log()[-5000:]}"
    finally:
        _run(*cluster, "down")
    again = _rows(spark, environment)
    assert again.count() == again.select(*CROSSWALK_KEY).distinct().count() == first.count() > 1000
    # Per column, how many records differ.
    joined = first.alias("a").join(again.alias("b"), CROSSWALK_KEY, how="full")
    differs = {c: joined.where(~F.col(f"a.{c}").eqNullSafe(F.col(f"b.{c}"))).count()
               for c in ("cluster_id", "cluster_size")}
    differs["match_probability"] = joined.where(
        ~F.round("a.match_probability", 9).eqNullSafe(F.round("b.match_probability", 9))).count()
    assert differs == {"cluster_id": 0, "cluster_size": 0, "match_probability": 0}
    runs = spark.read.format("delta").load(_table(environment, "link_runs")).where("job = 'link'")
    succeeded = runs.where("status = 'succeeded'").orderBy("started_at").collect()  # two rows
    # the killed runs could not record themselves; the first ran locally, the second on the cluster
    assert [r["spark_master"] for r in succeeded] == ["local[2]", f"spark://127.0.0.1:{port}"]
    events = spark.read.format("delta").load(_table(environment, "cluster_events"))
    assert events.where(F.col("run_id") == succeeded[1]["run_id"]).count() == 0  # nothing new, merged or retired
    assert events.where(F.col("run_id") == succeeded[0]["run_id"]).count() > 0  # the first run's "new" ids
