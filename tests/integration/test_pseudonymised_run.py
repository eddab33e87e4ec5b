"""A whole link run with ``privacy.pseudonymise``: no table the run writes holds a department's own record ids."""
from __future__ import annotations

import hashlib
import hmac
from functools import reduce

import pytest
from pyspark.sql import DataFrame, functions as F

from bold_spark import pipeline
from bold_spark.errors import ConfigError
from bold_spark.incremental import link_incremental

from .conftest import AS_OF, PSEUDONYM_KEY, PSEUDONYM_KEY_ENV

KEY, KEY_ENV = PSEUDONYM_KEY, PSEUDONYM_KEY_ENV
HEX_64 = "^[0-9a-f]{64}$"
pytestmark = pytest.mark.xdist_group("linked_sample")  # reads the suite's one linked run


@pytest.fixture(scope="module")
def pseudonymised(spark, linked_sample):
    """The suite's linked run (pseudonymised) and every raw record id of its sources."""
    config, record = linked_sample.config, linked_sample.record
    raw_ids = reduce(DataFrame.unionByName, [
        spark.read.format("delta").load(s.table.path)
        .select(F.lit(s.name).alias("source_system"), F.col(f"`{s.record_id}`").cast("string").alias("rid"))
        for s in config.sources])
    return config, record, raw_ids


def _ids(spark, config, table: str) -> DataFrame:
    df = spark.table(config.output.qualified(table))
    if "source_record_id" in df.columns:
        return df.select(F.col("source_record_id").alias("id"))
    return df.select(F.col("source_record_id_l").alias("id")).unionByName(
        df.select(F.col("source_record_id_r").alias("id")))


@pytest.mark.parametrize("table", ["crosswalk", "match_edges", "rejects", "cluster_events", "record_groups"])
def test_no_table_holds_a_department_record_id(spark, pseudonymised, table):
    config, _, raw_ids = pseudonymised
    if table == "cluster_events":  # holds cluster ids only: none of them may be a record id either
        ids = spark.table(config.output.qualified(table)).select(F.col("cluster_id").alias("id"))
    else:
        ids = _ids(spark, config, table)
        assert ids.where(~F.col("id").rlike(HEX_64)).count() == 0
    assert ids.join(raw_ids, F.col("id") == F.col("rid"), "left_semi").count() == 0


def test_pseudonyms_are_the_keyed_hash_and_every_record_is_accounted_for(spark, pseudonymised):
    config, record, raw_ids = pseudonymised
    read = sum(i["records_read"] for i in record.inputs)
    crosswalk = spark.table(config.output.qualified("crosswalk"))
    rejects = spark.table(config.output.qualified("rejects"))
    assert crosswalk.count() + rejects.count() == read > 2000
    # A department holding the key computes the same pseudonyms to join its own records.
    sample = raw_ids.where(F.col("rid").isNotNull()).orderBy("source_system", "rid").limit(25).collect()  # 25 rows
    expected = {hmac.new(KEY.encode(), f"{r['source_system']}:{r['rid'].strip()}".encode(), hashlib.sha256)
                .hexdigest() for r in sample}
    found = crosswalk.select("source_record_id").unionByName(rejects.select("source_record_id")) \
        .where(F.col("source_record_id").isin(list(expected))).distinct().count()
    assert found == len(expected)


def test_department_views_show_only_their_own_pseudonymised_rows(spark, pseudonymised):
    config, _, _ = pseudonymised
    source = config.sources[0].name
    view = spark.table(f"{config.output.database}.crosswalk_{source}")
    own = spark.table(config.output.qualified("crosswalk")).where(F.col("source_system") == source) \
        .select(*view.columns)
    assert "source_system" not in view.columns and view.count() > 0
    assert view.exceptAll(own).count() == 0 and own.exceptAll(view).count() == 0  # exactly that source's rows
    assert view.where(~F.col("source_record_id").rlike(HEX_64)).count() == 0


def test_an_incremental_run_refuses_pseudonymised_ids_and_a_run_without_the_key_refuses_to_start(spark,
                                                                                                 pseudonymised):
    config, _, _ = pseudonymised
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_ENV, KEY)
        with pytest.raises(ConfigError, match="privacy.pseudonymise: incremental runs need"):
            link_incremental(spark, config)
        mp.delenv(KEY_ENV)
        with pytest.raises(ConfigError, match=f"no HMAC key: set the environment variable {KEY_ENV}"):
            pipeline.link(spark, config, as_of=AS_OF)
