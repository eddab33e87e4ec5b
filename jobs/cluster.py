"""A Spark standalone cluster on 127.0.0.1 from the installed PySpark, and spark-submit of the jobs to it.

    python jobs/cluster.py up --workers 2     # master on :7077, workers with 1 core each
    python jobs/cluster.py submit -- jobs/link.py --conf conf/local.yaml
    python jobs/cluster.py down
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from _common import add_version, load_config

import pyspark

from bold_spark.session import SESSION_DEFAULTS, postgres_jar, session_jars

PROJECT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
HOST = "127.0.0.1"


def _env() -> dict[str, str]:
    env = dict(os.environ, SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP=HOST, PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return env


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"nothing listening on {HOST}:{port} after {seconds:.0f} s; see the logs under var/cluster/")


def _start(name: str, args: list[str], state: Path) -> None:
    log = open(state / f"{name}.log", "ab")
    proc = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], stdout=log, stderr=subprocess.STDOUT,
                            env=_env(), start_new_session=True)
    (state / f"{name}.pid").write_text(str(proc.pid))


def up(state: Path, workers: int, port: int, worker_memory: str) -> int:
    state.mkdir(parents=True, exist_ok=True)
    _start("master", ["org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port),
                      "--webui-port", "0"], state)
    _wait_for_port(port, 60)
    for i in range(1, workers + 1):
        work_dir = state / f"worker-{i}"
        work_dir.mkdir(exist_ok=True)
        _start(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", f"spark://{HOST}:{port}", "--host", HOST,
                               "--cores", "1", "--memory", worker_memory, "--webui-port", "0",
                               "--work-dir", str(work_dir)], state)
    time.sleep(3)
    print(f"standalone cluster: master spark://{HOST}:{port}, {workers} worker(s); logs in {state}")
    return 0


def down(state: Path) -> int:
    for pid_file in sorted(state.glob("*.pid")):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink()
    print("standalone cluster stopped")
    return 0


def package_zip(state: Path) -> Path:
    """bold_spark as a zip for --py-files, so executors could import it if a stage ever needs Python."""
    target = state / "bold_spark.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for path in (PROJECT / "bold_spark").rglob("*.py"):
            zf.write(path, path.relative_to(PROJECT))
    return target


def submit(conf_file: str, state: Path, port: int, job: list[str], executor_memory: str) -> int:
    config = load_config(conf_file)
    shared = config.spark.catalog.type == "postgres"
    command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", f"spark://{HOST}:{port}",
               "--deploy-mode", "client", "--jars", ",".join(session_jars(config.spark.jars_dir, postgres=shared)),
               "--py-files", str(package_zip(state)), "--executor-memory", executor_memory,
               "--driver-memory", config.spark.conf.get("spark.driver.memory", "4g")]
    if shared:  # the metastore client finds the JDBC driver on the driver JVM's own class path only
        command += ["--driver-class-path", postgres_jar(config.spark.jars_dir)]
    for key, value in SESSION_DEFAULTS.items():
        command += ["--conf", f"{key}={value}"]
    command += job
    print("$ " + " ".join(command[:1] + ["..."] + job))
    return subprocess.call(command, env=_env(), cwd=PROJECT)


def main() -> int:
    p = add_version(argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("--conf", default="conf/local.yaml")
    p.add_argument("--state-dir", default=str(PROJECT / "var" / "cluster"))
    p.add_argument("--port", type=int, default=7077)
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up")
    u.add_argument("--workers", type=int, default=2)
    u.add_argument("--worker-memory", default="4g")
    sub.add_parser("down")
    s = sub.add_parser("submit")
    s.add_argument("--executor-memory", default="3g")
    s.add_argument("job", nargs=argparse.REMAINDER)
    args = p.parse_args()
    state = Path(args.state_dir)
    if args.command == "up":
        return up(state, args.workers, args.port, args.worker_memory)
    if args.command == "down":
        return down(state)
    job = args.job[1:] if args.job[:1] == ["--"] else args.job
    return submit(args.conf, state, args.port, job, args.executor_memory)


if __name__ == "__main__":
    sys.exit(main())
