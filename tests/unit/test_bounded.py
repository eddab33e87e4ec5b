from __future__ import annotations

from pyspark.sql import functions as F

from bold_spark.bounded import collect_together
from bold_spark.session import spark_activity


def test_parts_of_different_shapes_come_back_whole_from_one_query(spark):
    """Three aggregates with different columns, a null, an array and an empty part: each part's rows come back as
    they would from its own collect, and the session ran one query for all of them."""
    frame = spark.createDataFrame([("a", 1, 2.5), ("a", 2, None), ("b", 3, 0.5)], "k string, n int, w double")
    parts = {
        "per_key": frame.groupBy("k").agg(F.count(F.lit(1)).alias("rows"), F.sum("w").alias("w")),
        "totals": frame.agg(F.max("n").alias("max n"), F.collect_list("k").alias("keys")),
        "none": frame.where(F.col("n") > 9).select("k"),
    }
    before = spark_activity(spark)[0]
    got = collect_together(parts)
    assert spark_activity(spark)[0] - before == 1
    assert sorted(got["per_key"], key=lambda r: r["k"]) == [{"k": "a", "rows": 2, "w": 2.5},
                                                            {"k": "b", "rows": 1, "w": 0.5}]
    assert len(got["totals"]) == 1 and got["totals"][0]["max n"] == 3
    assert sorted(got["totals"][0]["keys"]) == ["a", "a", "b"]
    assert got["none"] == []
    nulls = collect_together({"w": frame.where(F.col("n") == 2).select("k", "w")})
    assert nulls == {"w": [{"k": "a", "w": None}]}  # a null is kept, not dropped from the row
    assert collect_together({}) == {}
