from __future__ import annotations


def test_session_writes_and_reads_delta_with_time_travel(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    spark.range(5).write.format("delta").mode("overwrite").save(path)
    assert spark.read.format("delta").load(path).count() == 5
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 3


def test_splink_similarity_functions_are_registered_through_the_jar(spark):
    from splink import SparkAPI

    SparkAPI(spark_session=spark)
    value = spark.sql("select jaro_winkler('martha', 'marhta') as s").first()["s"]
    assert 0.95 < value < 0.97
