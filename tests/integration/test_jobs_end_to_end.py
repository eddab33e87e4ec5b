"""The jobs as a user runs them: separate processes, a persistent catalog, and a standalone cluster.

generate -> link --train-if-missing (local) -> a new process queries bold.crosswalk by name -> the same
jobs/link.py submitted to a two-worker standalone cluster on 127.0.0.1 -> both runs give the same clusters.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-01-01"

pytestmark = pytest.mark.processes  # make test-processes: jobs as separate processes, killed mid-run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Generous: on a slower 2-core machine, beside the other pytest worker, the 3,000-record train and link ran past 600 s.
def _run(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    result = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, f"{args[0]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-5000:]}"
    return result


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> Path:
    """conf/local.yaml with every path under a temporary folder and a small local master."""
    root = tmp_path_factory.mktemp("e2e")
    conf = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    conf["base_dir"] = str(root)
    conf["spark"]["master"] = "local[2]"
    conf["spark"]["jars_dir"] = str(PROJECT_ROOT / "var" / "ivy" / "jars")
    conf["spark"]["conf"].update({"spark.driver.memory": "3g", "spark.sql.shuffle.partitions": 4})
    conf["sources"] = [str(PROJECT_ROOT / "conf" / "sources" / "demo" / "*.yaml")]
    conf["views"] = str(PROJECT_ROOT / "conf" / conf["views"])  # relative names are relative to the env file
    # The committed UK model, with fewer random pairs for u than a real run needs (3,000 records, not millions).
    linkage = yaml.safe_load((PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml").read_text())
    linkage["training"]["u_max_pairs"] = 3e5
    (root / "linkage.yaml").write_text(yaml.safe_dump(linkage))
    conf["linkage"] = "linkage.yaml"
    path = root / "env.yaml"
    path.write_text(yaml.safe_dump(conf))
    _run("jobs/generate_sample.py", "--conf", str(path), "--scale", "3000", "--seed", "11")
    return path


@pytest.fixture(scope="module")
def local_run(environment):
    return _run("jobs/link.py", "--conf", str(environment), "--train-if-missing", "--as-of", AS_OF)


def test_a_new_process_reads_the_crosswalk_by_name(environment, local_run):
    assert "clusters" in local_run.stdout
    print(local_run.stdout)
    query = ("with latest as (select inputs from bold.link_runs where job = 'link' and status = 'succeeded' "
             "order by started_at desc limit 1) "
             "select (select count(*) from bold.crosswalk) as rows_, "
             "(select count(distinct source_system, source_record_id) from bold.crosswalk) as keys_, "
             "(select sum(i.records_accepted) from latest lateral view explode(inputs) t as i) as accepted_")
    out = _run("jobs/sql.py", "--conf", str(environment), query).stdout
    line = next(l for l in out.splitlines() if l.startswith("|") and "rows_" not in l)
    rows, keys, accepted = (int(x) for x in line.strip("|").split("|"))
    assert rows == keys == accepted > 2000


def test_the_standalone_cluster_gives_the_same_clusters_as_local(spark, environment, local_run, tmp_path):
    port = _free_port()
    cluster = ["jobs/cluster.py", "--conf", str(environment), "--state-dir", str(tmp_path / "cluster"),
               "--port", str(port)]
    _run(*cluster, "up", "--workers", "2", "--worker-memory", "2g")
    try:
        _run(*cluster, "submit", "--executor-memory", "1500m", "--", "jobs/link.py", "--conf", str(environment),
             "--as-of", AS_OF)
    finally:
        _run(*cluster, "down")
    warehouse = yaml.safe_load(environment.read_text())["base_dir"] + "/var/warehouse"
    crosswalk_path = f"{warehouse}/bold.db/crosswalk"
    history = spark.sql(f"describe history delta.`{crosswalk_path}`").orderBy("version").collect()
    local_version, cluster_version = history[-2]["version"], history[-1]["version"]

    def clusters(version: int):
        return (spark.read.format("delta").option("versionAsOf", version).load(crosswalk_path)
                .select("source_system", "source_record_id", "cluster_id"))

    local, remote = clusters(local_version), clusters(cluster_version)
    assert local.count() == remote.count() > 2000
    assert local.exceptAll(remote).count() == 0 and remote.exceptAll(local).count() == 0
    runs = spark.read.format("delta").load(f"{warehouse}/bold.db/link_runs").where(F.col("job") == "link")
    masters = {r["spark_master"] for r in runs.collect()}
    assert f"spark://127.0.0.1:{port}" in masters and "local[2]" in masters


def test_killing_a_worker_mid_run_does_not_fail_the_job(spark, environment, local_run, tmp_path):
    """SIGKILL one of two workers (and the executor it launched) once scoring starts: Spark reschedules the lost
    tasks and recomputes lost shuffle output on the other worker; the run succeeds with the same clusters."""
    port = _free_port()
    state = tmp_path / "cluster"
    cluster = ["jobs/cluster.py", "--conf", str(environment), "--state-dir", str(state), "--port", str(port)]
    _run(*cluster, "up", "--workers", "2", "--worker-memory", "2g")
    log_path = tmp_path / "submit.log"
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    try:
        with open(log_path, "w") as log:
            job = subprocess.Popen([sys.executable, *cluster, "submit", "--executor-memory", "1500m", "--",
                                    "jobs/link.py", "--conf", str(environment), "--as-of", AS_OF],
                                   cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 1800
        while "stage scoring: start" not in log_path.read_text() and job.poll() is None:
            assert time.monotonic() < deadline, "the job never reached scoring"
            time.sleep(0.5)
        assert job.poll() is None, f"the job ended before scoring:\n{log_path.read_text()[-3000:]}"
        worker = int((state / "worker-1.pid").read_text())
        executors = _children(worker)
        assert executors, "worker 1 had launched no executor"
        os.killpg(worker, signal.SIGKILL)  # the worker JVM and the executor JVM it launched (same process group)
        code = job.wait(timeout=1800)
        output = log_path.read_text()
        assert code == 0, f"the run failed after a worker was killed ({code}):\n{output[-5000:]}"
    finally:
        _run(*cluster, "down")
    warehouse = yaml.safe_load(environment.read_text())["base_dir"] + "/var/warehouse"
    runs = spark.read.format("delta").load(f"{warehouse}/bold.db/link_runs").where(F.col("job") == "link") \
        .orderBy("started_at").collect()
    assert runs[-1]["status"] == "succeeded" and runs[-1]["spark_master"] == f"spark://127.0.0.1:{port}"
    crosswalk_path = f"{warehouse}/bold.db/crosswalk"
    local = spark.read.format("delta").load(crosswalk_path).select("source_system", "source_record_id", "cluster_id")
    # Every earlier link in this module ran on the same inputs and as-of date: the ids are the same, row for row.
    first = spark.read.format("delta").option("versionAsOf", 0).load(crosswalk_path) \
        .select("source_system", "source_record_id", "cluster_id")
    assert local.count() == first.count() > 2000
    assert local.exceptAll(first).count() == 0 and first.exceptAll(local).count() == 0


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
