"""The shared catalog and its endpoint as an analyst and a scheduled job use them at once: a PostgreSQL of the test's
own (jobs/catalog.py), the Spark Connect endpoint (jobs/serve.py) and jobs/link.py, each a process, on
conf/shared.yaml's settings under a temporary folder and a few hundred generated records.

While a second link run publishes, two endpoint sessions count bold.crosswalk by source over and over, and
jobs/sql.py queries the catalog through the endpoint and through a session of its own: every answer is the
crosswalk's previous version or its new one, never an error or a mix. Every server the module starts is stopped when
it ends, whatever happened.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from bold_spark.config import load_config
from bold_spark.linkage.model import checkpoints_under
from tests.integration.conftest import load_job

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEST_MODEL = PROJECT_ROOT / "tests" / "data" / "uk_person_model.json"
AS_OF = "2026-01-01"
TOKEN = "shared-catalog-test-token"
RECORDS = 300

pytestmark = pytest.mark.processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    env.update(extra)
    return env


def _run(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=timeout, env=_env(**env))
    assert result.returncode == 0, f"{args[:2]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result


def _start(log: Path, *args: str, **env: str) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=_env(**env), start_new_session=True)


def _finish(process: subprocess.Popen, log: Path, timeout: float = 900) -> None:
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        pytest.fail(f"{log.name} timed out:\n{log.read_text(errors='replace')[-3000:]}")
    assert code == 0, f"{log.name} failed ({code}):\n{log.read_text(errors='replace')[-4000:]}"


@pytest.fixture(scope="module")
def shared(spark):
    """conf/shared.yaml under a temporary folder with ports of its own, its PostgreSQL and endpoint up, the demo
    sources generated and a first run published; everything stopped and removed afterwards."""
    if not (shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")):
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)")
    # Not pytest's tmp_path: run as root, the server runs as the postgres user, who must reach its folder.
    root = Path(tempfile.mkdtemp(prefix="bold-shared-"))
    root.chmod(0o755)
    conf = yaml.safe_load((PROJECT_ROOT / "conf" / "shared.yaml").read_text())
    conf["base_dir"] = str(root)
    conf["spark"]["master"] = "local[2]"
    conf["spark"]["jars_dir"] = str(PROJECT_ROOT / "var" / "ivy" / "jars")
    conf["spark"]["conf"].update({"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": 2,
                                  "spark.sql.adaptive.enabled": False})
    conf["catalog"].update(port=_free_port(), password_file="var/catalog/password")
    conf["serve"].update(port=_free_port(), token_file="var/serve/token")
    conf["sources"] = [str(PROJECT_ROOT / "conf" / "sources" / "demo" / "*.yaml")]
    conf["views"] = str(PROJECT_ROOT / "conf" / conf["views"])
    linkage = yaml.safe_load((PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml").read_text())
    linkage["model_path"] = str(TEST_MODEL)  # the committed model: nothing is trained
    (root / "linkage.yaml").write_text(yaml.safe_dump(linkage))
    conf["linkage"] = "linkage.yaml"
    conf["publish_gate"]["enabled"] = False  # the second run adds records on purpose
    env_file = root / "env.yaml"
    env_file.write_text(yaml.safe_dump(conf))
    config = load_config(env_file)
    secrets = {config.spark.catalog.password_env: "shared-catalog-test-password", config.serve.token_env: TOKEN}
    server = None
    try:
        _run("jobs/catalog.py", "--conf", str(env_file), "up", **secrets)
        server = _start(root / "serve.log", "jobs/serve.py", "--conf", str(env_file), "--wait", "240", "up",
                        **secrets)
        with checkpoints_under(spark, str(root / "var" / "checkpoints")), pytest.MonkeyPatch.context() as mp:
            for name, value in secrets.items():  # the job reads the configuration, catalog password included
                mp.setenv(name, value)
            generate = load_job("generate_sample").main  # in this process, while the endpoint starts
            assert generate(["--conf", str(env_file), "--scale", str(RECORDS), "--seed", "23"]) == 0
        _finish(server, root / "serve.log")
        first = _start(root / "first.log", "jobs/link.py", "--conf", str(env_file), "--as-of", AS_OF, **secrets)
        _finish(first, root / "first.log")
        yield config, env_file, secrets
    finally:
        if server is not None:
            try:  # `serve.py up` returns once the port answers or, after --wait, when it has stopped the server
                server.wait(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
            subprocess.run([sys.executable, "jobs/serve.py", "--conf", str(env_file), "down"], cwd=PROJECT_ROOT,
                           env=_env(**secrets), capture_output=True, timeout=120)
        subprocess.run([sys.executable, "jobs/catalog.py", "--conf", str(env_file), "down"], cwd=PROJECT_ROOT,
                       env=_env(**secrets), capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _url(config, token: str | None) -> str:
    return f"sc://localhost:{config.serve.port}" + (f"/;token={token}" if token else "")


def _connect_and_count(url: str) -> subprocess.CompletedProcess:
    code = ("import sys; from pyspark.sql import SparkSession; "
            "print(SparkSession.builder.remote(sys.argv[1]).create().sql('select count(*) from bold.crosswalk')"
            ".first()[0])")
    return subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=300,
                          env=_env(), cwd=PROJECT_ROOT)


def _outward_address() -> str | None:
    """This machine's address on its network interface (no packet is sent), if it has one besides loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_endpoint_refuses_a_client_without_the_token_and_listens_on_loopback_only(shared):
    config, _, _ = shared
    for url in (_url(config, None), _url(config, "not-the-token")):
        refused = _connect_and_count(url)
        assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr, refused.stderr[-2000:]
    allowed = _connect_and_count(_url(config, TOKEN))
    assert allowed.returncode == 0 and int(allowed.stdout.split()[-1]) > RECORDS / 2, allowed.stderr[-2000:]
    address = _outward_address()
    if address:
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((address, config.serve.port)) != 0, f"the endpoint answers on {address}"


def _crosswalk_counts(spark, config, version: int) -> list[list]:
    path = str(config.spark.warehouse_dir / f"{config.output.database}.db" / config.output.crosswalk)
    df = spark.read.format("delta").option("versionAsOf", version).load(path)
    return [[r["source_system"], r["n"]] for r in  # one row per source
            df.groupBy("source_system").agg(F.count("*").alias("n")).orderBy("source_system").collect()]


def _answers(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def _wait_for_answers(out: Path, reader: subprocess.Popen, clients: int, at_least: int, after: float = 0) -> None:
    deadline = time.monotonic() + 300
    while True:
        answers = [a for a in _answers(out) if a["started"] >= after]
        if all(sum(a["client"] == c for a in answers) >= at_least for c in range(clients)):
            return
        assert reader.poll() is None, f"the readers ended early ({reader.returncode})"
        assert time.monotonic() < deadline, "the readers gave too few answers"
        time.sleep(0.2)


def test_analysts_see_the_previous_or_the_new_crosswalk_while_a_run_publishes(spark, shared):
    config, env_file, secrets = shared
    crosswalk = str(config.spark.warehouse_dir / f"{config.output.database}.db" / config.output.crosswalk)
    before_version = DeltaTable.forPath(spark, crosswalk).history(1).first()["version"]  # one row
    previous = _crosswalk_counts(spark, config, before_version)
    # New records for the second run: 25 prison releases again under new ids, so the counts change.
    prison = config.source("prison_releases")
    table = spark.read.format("delta").load(prison.table.path)
    (table.orderBy(prison.record_id).limit(25)
     .withColumn(prison.record_id, F.concat(F.col(prison.record_id), F.lit("N")))
     .write.format("delta").mode("append").save(prison.table.path))

    work = env_file.parent
    out, stop = work / "answers.jsonl", work / "stop"
    reader = subprocess.Popen([sys.executable, str(Path(__file__).with_name("connect_readers.py")),
                               _url(config, TOKEN), str(out), str(stop), "2"], cwd=PROJECT_ROOT, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_answers(out, reader, clients=2, at_least=2)
        started = time.time()
        link = _start(work / "second.log", "jobs/link.py", "--conf", str(env_file), "--as-of", AS_OF, **secrets)
        # make sql while the job runs: through the endpoint, and with a session of its own on the shared catalog
        query = "select count(*) as records from bold.crosswalk"
        through_endpoint = _run("jobs/sql.py", "--conf", str(env_file), query, **secrets)
        own_session = _run("jobs/sql.py", "--conf", str(env_file), "--no-endpoint", query, **secrets)
        _finish(link, work / "second.log")
        ended = time.time()
        _wait_for_answers(out, reader, clients=2, at_least=2, after=ended)
        stop.touch()
        reader_output = reader.communicate(timeout=300)[0]
    finally:
        stop.touch()
        if reader.poll() is None:
            os.killpg(reader.pid, 9)
    assert reader.returncode == 0, reader_output[-3000:]

    after_version = DeltaTable.forPath(spark, crosswalk).history(1).first()["version"]
    assert after_version > before_version
    new = _crosswalk_counts(spark, config, after_version)
    assert new != previous
    answers = _answers(out)
    assert not [a["error"] for a in answers if "error" in a]
    assert all(a["counts"] in (previous, new) for a in answers), "an answer that is neither version"
    for client in (0, 1):
        mine = [a["counts"] for a in sorted(answers, key=lambda a: a["started"]) if a["client"] == client]
        assert mine[0] == previous and mine[-1] == new
        flips = sum(a != b for a, b in zip(mine, mine[1:]))
        assert flips == 1, "an answer went back to the previous version"
    during = [a for a in answers if started <= a["started"] and a["ended"] <= ended]
    assert {a["client"] for a in during} == {0, 1}  # both sessions answered while the run was going on
    totals = {sum(n for _, n in previous), sum(n for _, n in new)}
    for result in (through_endpoint, own_session):
        line = next(l for l in result.stdout.splitlines() if l.startswith("|") and "records" not in l)
        assert int(line.strip("| ")) in totals
    print(f"{len(answers)} answers, {len(during)} during the run of {ended - started:.0f} s")
