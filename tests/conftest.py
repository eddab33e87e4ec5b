"""One local SparkSession for the whole suite: real Spark, real Delta, Splink's jar, small partitions."""
from __future__ import annotations

from pathlib import Path

import pytest

from bold_spark.config import SparkSettings
from bold_spark.session import build_session

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.hookimpl(wrapper=True)  # a wrapper runs before every plain hook, xdist's (which reads the groups) too
def pytest_collection_modifyitems(config, items):
    """Under ``--dist loadgroup`` each module runs whole on one worker, so its module fixtures are built once;
    modules that read one session fixture (``linked_sample``) declare a common ``xdist_group`` and share a worker,
    so that fixture is built once for the suite, not once per worker."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    return (yield)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark")
    settings = SparkSettings(
        master="local[2]",
        app_name="bold_spark-tests",
        warehouse_dir=root / "warehouse",
        metastore_dir=None,
        checkpoint_dir=root / "checkpoints",
        jars_dir=PROJECT_ROOT / "var" / "ivy" / "jars",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.sql.adaptive.enabled": "false",
            "spark.driver.memory": "4g",
            # Small data: compiling each query's generated code costs more than it saves (make test 605 s with it,
            # 524 s without, 7 Dec). The jobs run as processes (make test-processes) keep Spark's default.
            "spark.sql.codegen.wholeStage": "false",
            "spark.sql.autoBroadcastJoinThreshold": str(32 * 1024 * 1024),
        },
    )
    session = build_session(settings)
    yield session
    session.stop()


@pytest.fixture
def spark_clean(spark):
    """The shared session with cache and temp views cleared after the test."""
    yield spark
    spark.catalog.clearCache()
    for table in spark.catalog.listTables():
        if table.isTemporary:
            spark.catalog.dropTempView(table.name)


def assert_column_equals(df, actual: str, expected: str, key: str | None = None) -> None:
    """Compare two columns row by row (small test frames only), showing every mismatch."""
    rows = df.select(*( [key] if key else []), actual, expected).collect()
    mismatches = [r for r in rows if r[actual] != r[expected]]
    assert not mismatches, "\n".join(str(r.asDict()) for r in mismatches)
