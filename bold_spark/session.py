"""The one place a SparkSession is built: Delta, Splink's similarity jar, a persistent catalog, a checkpoint dir.

Locally the session is built from configuration. Under spark-submit the JVM already exists and the submit command
has set master, jars and memory, so those are left alone; only settings that are safe to set late are added.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from bold_spark.config import SparkSettings
from bold_spark.errors import SetupError

log = logging.getLogger(__name__)

# delta-spark's Python package is 4.4.1; Maven Central serves the JVM artifact up to 4.4.0 for Spark 4.2, and the
# 4.4.x line shares one protocol, so the pair is compatible. `make setup` resolves this coordinate once.
DELTA_MAVEN_COORDINATE = "io.delta:delta-spark_4.2_2.13:4.4.0"
# Only these artifacts go on the classpath: the rest of Delta's transitive tree (kernel, Unity Catalog client,
# older Jackson and Parquet) duplicates or conflicts with what Spark already ships.
DELTA_JAR_PREFIXES = ("io.delta_delta-spark_", "io.delta_delta-storage-")
# The JDBC driver of the shared catalog (catalog.type: postgres), resolved by `make setup` with Delta.
POSTGRES_MAVEN_COORDINATE = "org.postgresql:postgresql:42.7.14"
POSTGRES_JAR_PREFIX = "org.postgresql_postgresql-"

SESSION_DEFAULTS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    # Splink's iterative SQL builds deep plans; constraint propagation makes them quadratic to optimise.
    "spark.sql.constraintPropagation.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # Delta replays a table's log in this many tasks the first time a session reads it (its default is 50).
    # Department tables have small logs: 50 tasks cost 5-10 s per source per run on 2 cores (link at 100,000
    # records 99.6 -> 72.9 s). Raise it in spark.conf for tables with logs of many thousands of commits.
    "spark.databricks.delta.snapshotPartitions": "2",
}


def running_under_spark_submit() -> bool:
    """spark-submit starts the JVM first and tells the Python driver its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def delta_jars(jars_dir: Path) -> list[str]:
    jars = sorted(str(p) for p in Path(jars_dir).glob("*.jar") if p.name.startswith(DELTA_JAR_PREFIXES))
    if len(jars) < len(DELTA_JAR_PREFIXES):
        raise SetupError(
            f"Delta Lake jars not found in {jars_dir}; run `make setup` once (it resolves "
            f"{DELTA_MAVEN_COORDINATE} from Maven Central into that folder)"
        )
    return jars


def postgres_jar(jars_dir: Path) -> str:
    jars = sorted(str(p) for p in Path(jars_dir).glob(f"{POSTGRES_JAR_PREFIX}*.jar"))
    if not jars:
        raise SetupError(f"PostgreSQL JDBC driver not found in {jars_dir}; run `make setup` once (it resolves "
                         f"{POSTGRES_MAVEN_COORDINATE} from Maven Central into that folder)")
    return jars[-1]


def read_secret(env: str, path: Path, what: str, where: str) -> str:
    """A secret from the environment variable ``env`` or else the file ``path``; never logged, never in config."""
    value = os.environ.get(env, "").strip()
    if value:
        return value
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        value = ""
    if not value:
        raise SetupError(f"{where}: no {what}: set the environment variable {env} or write it to {path}")
    return value


def catalog_conf(settings: SparkSettings, *, secrets: bool = True) -> dict[str, str]:
    """The Spark settings of the configured catalog: embedded Derby under metastore_dir, a shared PostgreSQL
    metastore database, or (neither) Spark's in-memory catalog. ``secrets=False`` leaves the password out."""
    catalog = settings.catalog
    if catalog.type == "postgres":
        driver = postgres_jar(settings.jars_dir)
        conf = {
            "spark.sql.catalogImplementation": "hive",
            "spark.hadoop.javax.jdo.option.ConnectionURL": catalog.jdbc_url(),
            "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
            "spark.hadoop.javax.jdo.option.ConnectionUserName": catalog.user,
            "spark.hadoop.hive.metastore.schema.verification": "false",
            # DataNucleus creates each metastore table the first time it is needed. With foreign keys it does so
            # while its own open transaction holds a row lock on the referenced table (DBS), and PostgreSQL makes
            # the DDL wait for it: the first CREATE TABLE hung for good. Without them the tables are created and
            # used; the metastore's code keeps the references itself.
            "spark.hadoop.datanucleus.schema.autoCreateAll": "false",
            "spark.hadoop.datanucleus.schema.autoCreateTables": "true",
            "spark.hadoop.datanucleus.schema.autoCreateColumns": "true",
            "spark.hadoop.datanucleus.schema.autoCreateConstraints": "false",
            # The metastore client loads the driver through the JVM's own class path, not spark.jars.
            "spark.driver.extraClassPath": driver,
        }
        if secrets:
            where = f"{catalog.file or 'the environment file'}: catalog"
            conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] = read_secret(
                catalog.password_env, catalog.password_path(), "catalog password", where)
        return conf
    if settings.metastore_dir is not None:
        derby = Path(settings.metastore_dir)
        return {"spark.sql.catalogImplementation": "hive",
                "spark.hadoop.javax.jdo.option.ConnectionURL":
                    f"jdbc:derby:;databaseName={derby / 'metastore_db'};create=true",
                "spark.driver.extraJavaOptions": f"-Dderby.system.home={derby}"}
    return {"spark.sql.catalogImplementation": "in-memory"}


def splink_jar() -> str:
    from splink.backends.spark import similarity_jar_location

    return similarity_jar_location()


def session_jars(jars_dir: Path, *, postgres: bool = False) -> list[str]:
    return [*delta_jars(jars_dir), splink_jar(), *([postgres_jar(jars_dir)] if postgres else [])]


def build_session(settings: SparkSettings) -> SparkSession:
    """Build (or join, under spark-submit) the session the jobs and tests use."""
    for d in (settings.warehouse_dir, settings.checkpoint_dir, settings.metastore_dir):
        if d is not None and "://" not in str(d):
            Path(d).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(settings.app_name)
    conf = dict(SESSION_DEFAULTS)
    conf["spark.sql.warehouse.dir"] = str(settings.warehouse_dir)
    conf.update(catalog_conf(settings))
    if not running_under_spark_submit():
        builder = builder.master(settings.master)
        if settings.master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
            # Python workers run the job's own interpreter (its environment's pyarrow, pandas, bold_spark), not
            # whatever `python3` is first on PATH: PySpark's default, which lacks them outside the environment.
            os.environ["PYSPARK_PYTHON"] = sys.executable
        conf["spark.jars"] = ",".join(session_jars(settings.jars_dir, postgres=settings.catalog.type == "postgres"))
    conf.update(settings.conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - the JVM printed its own reason above; settings are not personal data
        where = settings.file or "the environment file"
        raise SetupError(f"{where}: spark: Spark did not start with master {settings.master!r} and spark.conf "
                         f"{sorted(settings.conf)} ({type(exc).__name__}); the JVM's own message, printed above this "
                         "line, names the setting it rejected: correct it under spark.conf in that file") from None
    spark.sparkContext.setCheckpointDir(str(settings.checkpoint_dir))
    spark.sparkContext.setLogLevel("WARN")
    _quiet_known_noise(spark)
    log.info("Spark %s session ready (master %s)", spark.version, spark.sparkContext.master)
    return spark


# Warnings Splink on Spark triggers on every run that say nothing wrong: its intermediate folders start with "__"
# (Spark warns it "ignored" them, yet reads them), it re-registers its UDFs per linker, and Delta's CREATE
# DATABASE IF NOT EXISTS notes an existing namespace.
_NOISY_LOGGERS = (
    "org.apache.spark.sql.execution.datasources.DataSource",
    "org.apache.spark.sql.catalyst.analysis.SimpleFunctionRegistry",
    "org.apache.spark.sql.execution.datasources.v2.CreateNamespaceExec",
)


def _quiet_known_noise(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    configurator = jvm.org.apache.logging.log4j.core.config.Configurator
    for name in _NOISY_LOGGERS:
        configurator.setLevel(name, jvm.org.apache.logging.log4j.Level.ERROR)


def resolve_delta_jars(jars_dir: Path) -> list[str]:
    """Resolve Delta and its dependencies, and the PostgreSQL JDBC driver of the shared catalog, from Maven Central
    into ``jars_dir`` (``make setup`` calls this once)."""
    ivy_home = Path(jars_dir).resolve().parent
    ivy_home.mkdir(parents=True, exist_ok=True)
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("bold_spark-resolve-jars")
        .config("spark.jars.packages", f"{DELTA_MAVEN_COORDINATE},{POSTGRES_MAVEN_COORDINATE}")
        .config("spark.jars.ivy", str(ivy_home))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.stop()
    return [*delta_jars(jars_dir), postgres_jar(jars_dir)]


def spark_activity(spark: SparkSession) -> tuple[int, int]:
    """(Spark SQL executions, Spark jobs) the session has started so far: a run's difference of the two is how many
    plans it had Spark analyse, optimise and run, the driver cost that settings do not move."""
    store = spark._jsparkSession.sharedState().statusStore()
    retained = store.executionsCount()  # the last ones only; ids are sequential, so the newest id is the count
    executions = store.executionsList(retained - 1, 1).head().executionId() + 1 if retained else 0
    return int(executions), int(spark.sparkContext._jsc.sc().dagScheduler().numTotalJobs())


if __name__ == "__main__":
    # python -m bold_spark.session resolve-jars DIR: resolve Delta once into DIR (make setup), one jar a line.
    # python -m bold_spark.session jars DIR: the session's jars (Delta from DIR, then Splink's) comma-separated, as
    # spark-submit --jars takes them, so the Makefile, `make package` and the recipes in conf/deploy/ list the same.
    import sys

    commands = {"resolve-jars": lambda d: "\n".join(resolve_delta_jars(d)),
                "jars": lambda d: ",".join(session_jars(d))}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        sys.exit("usage: python -m bold_spark.session {resolve-jars|jars} JARS_DIR")
    print(commands[sys.argv[1]](Path(sys.argv[2])))
