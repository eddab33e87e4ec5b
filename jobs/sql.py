"""Query the persistent catalog from a new process: python jobs/sql.py "select ... from bold.crosswalk".

With the shared catalog and its endpoint up (make serve), the query goes through the endpoint instead: no JVM of its
own to start (13 s against 40 s or more for a session of its own on a busy machine).
"""
from __future__ import annotations

import os
import shlex
import sys

from _common import parser, run

from bold_spark.session import SESSION_DEFAULTS, build_session, catalog_conf, read_secret, session_jars


def spark_sql_command(config) -> str:
    """PySpark's own spark-sql CLI with the same catalog, warehouse and jars as the jobs. A catalog password goes in
    a properties file of mode 600 beside the catalog's server folder, never on the command line."""
    import pyspark

    s = config.spark
    conf = dict(SESSION_DEFAULTS)
    conf["spark.sql.warehouse.dir"] = str(s.warehouse_dir)
    conf.update(catalog_conf(s))
    parts = [os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-sql"),
             "--jars", ",".join(session_jars(s.jars_dir, postgres=s.catalog.type == "postgres"))]
    if s.catalog.type == "postgres":
        props = s.catalog.server_dir / "spark-sql.properties"
        props.parent.mkdir(parents=True, exist_ok=True)
        props.touch(mode=0o600)
        os.chmod(props, 0o600)
        props.write_text("".join(f"{k} {v}\n" for k, v in conf.items()))
        return " ".join(shlex.quote(p) for p in [*parts, "--properties-file", str(props)])
    for key, value in conf.items():
        parts += ["--conf", f"{key}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


def endpoint_session(config):
    """A Spark Connect session on make serve's endpoint when the shared catalog's one is up, else None."""
    if config.spark.catalog.type != "postgres":
        return None
    from serve import running, url

    if not running(config.serve):
        return None
    from pyspark.sql import SparkSession

    token = read_secret(config.serve.token_env, config.serve.token_path(), "endpoint token", f"{config.file}: serve")
    return SparkSession.builder.remote(url(config.serve, token)).create()


def main(args, config) -> int:
    if args.print_spark_sql_command:
        print(spark_sql_command(config))
        return 0
    spark = None if args.no_endpoint else endpoint_session(config)
    if spark is None:
        spark = build_session(config.spark)
    spark.sql(args.query).show(args.rows, truncate=False)
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("query", nargs="?", default="show tables in bold")
    p.add_argument("--rows", type=int, default=50)
    p.add_argument("--print-spark-sql-command", action="store_true")
    p.add_argument("--no-endpoint", action="store_true", help="start a session of its own even if make serve is up")
    sys.exit(run(main, p.parse_args()))
