from __future__ import annotations

from bold_spark.clustering.components import connected_components


def test_components_are_labelled_by_their_smallest_node(spark):
    # a chain a-b-c-d (diameter 3, needs propagation), a star, and a separate pair; plus a self loop
    edges = spark.createDataFrame(
        [("d", "c"), ("c", "b"), ("b", "a"), ("x", "m"), ("x", "n"), ("x", "o"), ("p", "q"), ("q", "q")],
        "src string, dst string",
    )
    got = {r["node"]: r["component"] for r in connected_components(edges).collect()}
    assert got == {"a": "a", "b": "a", "c": "a", "d": "a", "m": "m", "n": "m", "o": "m", "x": "m",
                   "p": "p", "q": "p"}


def test_long_chain_converges(spark):
    n = 40
    edges = spark.createDataFrame([(f"{i:03d}", f"{i + 1:03d}") for i in reversed(range(n))], "src string, dst string")
    components = connected_components(edges)
    assert components.select("component").distinct().collect()[0]["component"] == "000"
    assert components.count() == n + 1
