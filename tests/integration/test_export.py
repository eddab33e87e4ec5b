"""make export: the shared linked run's crosswalk and views as plain Parquet, read back without Spark."""
from __future__ import annotations

import json

import duckdb
import pyarrow.dataset as ds
import pytest
from pyspark.sql import functions as F

from bold_spark.io.export import export_snapshot

pytestmark = pytest.mark.xdist_group("linked_sample")  # reads the shared linked run (tests/integration/conftest.py)


def test_the_export_holds_the_published_crosswalk_and_views_and_duckdb_and_arrow_read_it(spark, linked_sample,
                                                                                         tmp_path):
    config = linked_sample.config
    target = export_snapshot(spark, output=config.output, views=config.views, directory=tmp_path)
    manifest = json.loads((target / "_manifest.json").read_text())
    assert target.name == f"crosswalk-v{manifest['crosswalk_version']}"

    crosswalk = spark.table(config.output.qualified("crosswalk"))
    by_source = {r["source_system"]: r["n"] for r in  # six rows
                 crosswalk.groupBy("source_system").agg(F.count("*").alias("n")).collect()}
    arrow = ds.dataset(str(target / "crosswalk"), format="parquet", partitioning="hive").to_table()
    assert arrow.num_rows == sum(by_source.values()) == manifest["rows"]["crosswalk"]
    assert set(arrow.column_names) == set(crosswalk.columns)
    counted = duckdb.sql(f"select source_system, count(*) from read_parquet('{target}/crosswalk/*/*.parquet', "
                         "hive_partitioning = true) group by source_system").fetchall()
    assert dict(counted) == by_source

    views = [name for name in manifest["rows"] if name != "crosswalk"]
    assert len(views) >= 5
    for name in views:  # every view's folder holds what the manifest says (Parquet footers, no Spark)
        assert ds.dataset(str(target / name), format="parquet").count_rows() == manifest["rows"][name], name
    # One view computed over the pinned version equals the published view (each costs a few Spark queries)
    exported = spark.read.parquet(str(target / "person_presence"))
    published = spark.table(f"{config.output.database}.person_presence")
    assert exported.exceptAll(published).isEmpty() and published.exceptAll(exported).isEmpty()

    written = (target / "_manifest.json").stat().st_mtime_ns
    assert export_snapshot(spark, output=config.output, views=config.views, directory=tmp_path) == target
    assert (target / "_manifest.json").stat().st_mtime_ns == written  # a version is exported once
