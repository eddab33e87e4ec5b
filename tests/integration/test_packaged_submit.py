"""The cluster recipe as a cluster runs it: `make package`'s environment archive alone, no checkout, no install.

`make package` builds dist/ (wheel, venv-pack archive, jars); the archive is unpacked into a temporary folder, as
spark-submit unpacks `--archives ...#environment` on a node, and jobs/link.py is submitted from a folder holding only
the two job files, with PYSPARK_PYTHON pointing into the unpacked archive: bold_spark, Splink and Delta's Python
package come from the archive, pyspark from spark-submit. Two demo departments of a few records written here
(two people in both) and the committed test model keep it short: nothing generated or trained, one job JVM.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pyspark
import pytest
import yaml

from bold_spark.session import SESSION_DEFAULTS
from bold_spark.synthetic.departments import DEPARTMENT_SCHEMAS

from tests.integration.conftest import AS_OF, PROJECT_ROOT, demo_environment

pytestmark = pytest.mark.processes  # make test-processes: a job in its own spark-submit process

D = dt.date.fromisoformat
# The demo sources' own shapes (bold_spark/synthetic/departments.py): John Smith and Mary Jones are in both.
DEPARTMENTS = {
    "prison_releases": [
        ("A1001", "JOHN", "SMITH", D("1980-03-05"), D("2024-01-10"), "SW1A 1AA", "2024-01"),
        ("A1002", "MARY", "JONES", D("1975-11-20"), D("2024-02-01"), "M1 1AE", "2024-02"),
        ("A1003", "AHMED", "KHAN", D("1990-07-14"), D("2024-02-15"), "B1 1BB", "2024-02"),
        ("A1004", "SARAH", "WILLIAMS", D("1985-01-30"), D("2024-03-02"), "LS1 4AP", "2024-03")],
    "probation": [
        ("P-1", "John Smith", "05/03/1980", "SW1A1AA", "98/123456X", D("2024-01-12"), "2024-01"),
        ("P-2", "Mary Ann Jones", "20/11/1975", "M11AE", None, D("2024-02-03"), "2024-02"),
        ("P-3", "Peter Brown", "02/02/1962", "CF10 1EP", "01/234567B", D("2024-03-05"), "2024-03")],
}
SPARK_HOME = Path(pyspark.__file__).parent  # the pip-installed Spark, as make cluster-up uses it


def _version() -> str:
    return next(line.split("=", 1)[1].strip() for line in (PROJECT_ROOT / "setup.cfg").read_text().splitlines()
                if line.startswith("version ="))


@pytest.fixture(scope="module")
def dist() -> Path:
    """`make package`, as a user runs it before submitting (about 15 s with pip's cache warm)."""
    result = subprocess.run(["make", "package"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return PROJECT_ROOT / "dist"


@pytest.fixture(scope="module")
def node(dist, tmp_path_factory) -> Path:
    """A folder as a node sees it: the unpacked archive under environment/ and the job files, nothing else."""
    root = tmp_path_factory.mktemp("node")
    with tarfile.open(dist / f"bold_spark-{_version()}-env.tar.gz") as archive:
        archive.extractall(root / "environment", filter="fully_trusted")  # our own archive: its python is a symlink
    (root / "jobs").mkdir()
    for job in ("link.py", "_common.py"):
        shutil.copy(PROJECT_ROOT / "jobs" / job, root / "jobs" / job)
    return root


def _node_env(node: Path, *, pyspark_path: bool = False) -> dict[str, str]:
    """PYSPARK_PYTHON into the unpacked archive; ``pyspark_path``: the Python path spark-submit gives its driver
    (the cluster's pyspark and py4j), for running a job's --version without a JVM."""
    python = str(node / "environment" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_GATEWAY_PORT", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python, SPARK_HOME=str(SPARK_HOME))
    if pyspark_path:
        env["PYTHONPATH"] = os.pathsep.join(str(z) for z in sorted((SPARK_HOME / "python" / "lib").glob("*.zip")))
    return env


def test_the_archive_holds_the_package_and_not_the_checkout(node):
    """bold_spark from the archive; pyspark left out (spark-submit adds the cluster's own, matching its JVM)."""
    probe = "import importlib.util as u, bold_spark, splink, yaml; print(bold_spark.__file__, u.find_spec('pyspark'))"
    result = subprocess.run([str(node / "environment" / "bin" / "python"), "-c", probe],
                            cwd=node, env=_node_env(node), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    package_file, pyspark_spec = result.stdout.split()
    assert Path(package_file).is_relative_to(node / "environment") and pyspark_spec == "None"
    version = subprocess.run([str(node / "environment" / "bin" / "python"), "jobs/link.py", "--version"], cwd=node,
                             env=_node_env(node, pyspark_path=True), capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"link.py {_version()}", version.stderr[-3000:]


def test_jobs_link_submitted_from_the_archive_alone_publishes_a_crosswalk(spark, dist, node, tmp_path):
    spark_section = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())["spark"]
    spark_section["conf"].update({"spark.sql.shuffle.partitions": 2, "spark.sql.adaptive.enabled": False})
    config = demo_environment(tmp_path, database="bold_packaged", views=None, constraints=None, spark=spark_section,
                              sources=[str(PROJECT_ROOT / "conf" / "sources" / "demo" / f"{s}.yaml")
                                       for s in DEPARTMENTS])
    for source in config.sources:
        spark.createDataFrame(DEPARTMENTS[source.name], DEPARTMENT_SCHEMAS[source.name]).write.format("delta") \
            .partitionBy("extract_month").save(source.table.path)
    jars = ",".join(str(p) for p in sorted((dist / "jars").glob("*.jar")))
    archive = dist / f"bold_spark-{_version()}-env.tar.gz"
    command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", "local[2]", "--deploy-mode", "client",
               "--driver-memory", "2g", "--jars", jars, "--archives", f"{archive}#environment",
               "--py-files", "jobs/_common.py",
               *[arg for key, value in SESSION_DEFAULTS.items() for arg in ("--conf", f"{key}={value}")],
               "jobs/link.py", "--conf", str(config.file), "--as-of", AS_OF]
    result = subprocess.run(command, cwd=node, env=_node_env(node), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"spark-submit failed ({result.returncode}):\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-5000:]}"
    warehouse = config.spark.warehouse_dir / "bold_packaged.db"
    runs = spark.read.format("delta").load(str(warehouse / "link_runs")).collect()  # one row
    assert [(r["job"], r["status"], r["spark_master"]) for r in runs] == [("link", "succeeded", "local[2]")]
    crosswalk = spark.read.format("delta").load(str(warehouse / "crosswalk"))
    cluster = {r["source_record_id"]: r["cluster_id"] for r in crosswalk.collect()}  # seven rows
    assert sorted(cluster) == sorted(row[0] for rows in DEPARTMENTS.values() for row in rows)
    assert cluster["A1001"] == cluster["P-1"] and cluster["A1002"] == cluster["P-2"]
    assert len(set(cluster.values())) == 5
