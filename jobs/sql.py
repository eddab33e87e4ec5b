"""Query the persistent catalog from a new process: python jobs/sql.py "select ... from bold.crosswalk"."""
from __future__ import annotations

import shlex
import sys

from _common import parser, run

from bold_spark.session import SESSION_DEFAULTS, build_session, session_jars


def spark_sql_command(config) -> str:
    """PySpark's own spark-sql CLI with the same catalog, warehouse and jars as the jobs."""
    import os

    import pyspark

    s = config.spark
    conf = dict(SESSION_DEFAULTS)
    conf["spark.sql.warehouse.dir"] = str(s.warehouse_dir)
    if s.metastore_dir:
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = \
            f"jdbc:derby:;databaseName={s.metastore_dir / 'metastore_db'};create=true"
        conf["spark.driver.extraJavaOptions"] = f"-Dderby.system.home={s.metastore_dir}"
    parts = [os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-sql"),
             "--jars", ",".join(session_jars(s.jars_dir))]
    for key, value in conf.items():
        parts += ["--conf", f"{key}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


def main(args, config) -> int:
    if args.print_spark_sql_command:
        print(spark_sql_command(config))
        return 0
    spark = build_session(config.spark)
    spark.sql(args.query).show(args.rows, truncate=False)
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("query", nargs="?", default="show tables in bold")
    p.add_argument("--rows", type=int, default=50)
    p.add_argument("--print-spark-sql-command", action="store_true")
    sys.exit(run(main, p.parse_args()))
