"""A Spark Connect endpoint over the project's catalog: analysts query the published tables while jobs run.

    python jobs/serve.py --conf conf/shared.yaml up     # SparkConnectServer on serve.host:serve.port (127.0.0.1:15002)
    python jobs/serve.py --conf conf/shared.yaml down

The server is PySpark's own (org.apache.spark.sql.connect.service.SparkConnectServer, started with spark-submit)
with the session's jars, Spark settings and catalog. Clients must present the token
(sc://localhost:15002/;token=...): it comes from serve.token_env, or the secret file (serve.token_file, by default
<state_dir>/token), which `up` writes with a random token when neither exists. The token reaches the server through
its environment and the catalog password through a properties file of mode 600, never the command line.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from _common import add_version, load_config

import pyspark

from bold_spark.errors import BoldSparkError
from bold_spark.session import SESSION_DEFAULTS, catalog_conf, read_secret, session_jars

SPARK_HOME = Path(pyspark.__file__).parent
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def token(serve, where: str = "serve") -> str:
    """The endpoint's token from its variable or file; a new random one in the file when there is neither."""
    path = serve.token_path()
    if not os.environ.get(serve.token_env) and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
        print(f"endpoint token written to {path} (mode 600)")
    return read_secret(serve.token_env, path, "endpoint token", where)


def url(serve, token_value: str | None) -> str:
    """The client's address. PySpark sends a token without TLS only to the host name `localhost` (gRPC's local
    credentials); to any other name it insists on TLS, which this server does not offer."""
    host = "localhost" if serve.host in ("127.0.0.1", "localhost", "::1") else serve.host
    return f"sc://{host}:{serve.port}" + (f"/;token={token_value}" if token_value else "")


def listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def running(serve) -> bool:
    """A server this project started is alive and its port answers."""
    pid_file = serve.state_dir / "server.pid"
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return False
    return listening(serve.host, serve.port)


def server_properties(config) -> dict[str, str]:
    s, serve = config.spark, config.serve
    props = dict(SESSION_DEFAULTS)
    props.update({"spark.master": s.master, "spark.app.name": f"{s.app_name} Spark Connect",
                  "spark.sql.warehouse.dir": str(s.warehouse_dir),
                  "spark.jars": ",".join(session_jars(s.jars_dir, postgres=s.catalog.type == "postgres")),
                  "spark.connect.grpc.binding.address": serve.host,
                  "spark.connect.grpc.binding.port": str(serve.port)})
    props.update(catalog_conf(s))
    props.update(s.conf)
    return props


def up(config, wait_seconds: float) -> int:
    serve = config.serve
    if config.spark.catalog.type != "postgres":
        raise SystemExit(f"{config.file}: catalog.type: the endpoint needs the shared catalog (postgres, as in "
                         "conf/shared.yaml): with the embedded one it would lock every job out of the catalog")
    if running(serve):
        print(f"endpoint already up on {serve.host}:{serve.port}")
        return 0
    if listening(serve.host, serve.port):
        raise SystemExit(f"{serve.host}:{serve.port} is taken by another process; set serve.port")
    token_value = token(serve, f"{config.file}: serve")
    state = serve.state_dir
    state.mkdir(parents=True, exist_ok=True)
    props_file = state / "server.properties"
    props_file.touch(mode=0o600)
    os.chmod(props_file, 0o600)
    props_file.write_text("".join(f"{k} {v}\n" for k, v in server_properties(config).items()))
    config.spark.warehouse_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    env.update(SPARK_HOME=str(SPARK_HOME), PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP=serve.host,
               SPARK_CONNECT_AUTHENTICATE_TOKEN=token_value)
    log_file = state / "server.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-submit"), "--properties-file", str(props_file),
                                    "--class", SERVER_CLASS, "spark-internal"], stdout=log, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True, cwd=config.base_dir)
    (state / "server.pid").write_text(str(process.pid))
    started = time.monotonic()
    while not listening(serve.host, serve.port):
        if process.poll() is not None or time.monotonic() - started > wait_seconds:
            down(config)
            tail = log_file.read_text(errors="replace")[-3000:]
            raise SystemExit(f"the Spark Connect server did not start (see {log_file}):\n{tail}")
        time.sleep(0.5)
    print(f"endpoint: Spark Connect on {serve.host}:{serve.port} after {time.monotonic() - started:.0f} s; "
          f"clients connect to {url(serve, '<token>')} (token: ${serve.token_env} or {serve.token_path()}); "
          f"log {log_file}")
    return 0


def down(config) -> int:
    pid_file = config.serve.state_dir / "server.pid"
    if not pid_file.exists():
        print("endpoint: not running")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.killpg(pid, 0)
            time.sleep(0.3)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
    print("endpoint: stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = add_version(argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("--conf", default="conf/shared.yaml")
    p.add_argument("--wait", type=float, default=300, help="seconds to wait for the server's port")
    p.add_argument("command", choices=("up", "down"))
    args = p.parse_args(argv)
    try:
        config = load_config(args.conf)
        return up(config, args.wait) if args.command == "up" else down(config)
    except BoldSparkError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
