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


def test_a_weak_edge_joins_two_records_only_as_the_best_link_of_one_of_them(spark):
    """Two people, each with two records linked strongly (weight 20), and a weak edge (weight 3, probability 0.89)
    between one record of each: neither record's best link, so it joins nothing. A weak edge that is a record's
    only link (e) still joins, and with ``best_link_only_below`` left out every edge at the threshold joins."""
    from bold_spark.crosswalk.build import cluster_records

    def edge(l, r, weight):
        return ("s", l, "s", r, float(weight), 1 / (1 + 2 ** -weight))

    edges = spark.createDataFrame(
        [edge("a1", "a2", 20), edge("b1", "b2", 20), edge("a2", "b1", 3), edge("e", "b2", 3), edge("f", "a1", 1)],
        "source_system_l string, source_record_id_l string, source_system_r string, source_record_id_r string, "
        "match_weight double, match_probability double")
    records = spark.createDataFrame([("s", k) for k in ("a1", "a2", "b1", "b2", "e", "f")],
                                    "source_system string, source_record_id string")

    def groups(**kwargs) -> set[frozenset[str]]:
        rows = cluster_records(records, edges, threshold=0.8, **kwargs).records.collect()
        by_component: dict[str, set[str]] = {}
        for r in rows:
            by_component.setdefault(r["component"], set()).add(r["source_record_id"])
        return {frozenset(g) for g in by_component.values()}

    assert groups(best_link_only_below=0.99) == {frozenset({"a1", "a2"}), frozenset({"b1", "b2", "e"}),
                                                 frozenset({"f"})}
    assert groups() == {frozenset({"a1", "a2", "b1", "b2", "e"}), frozenset({"f"})}
    # At or above best_link_only_below the weak edge counts again.
    assert groups(best_link_only_below=0.85) == groups()


def test_a_graph_the_first_labels_settle_needs_no_round_and_a_path_needs_rounds(spark, caplog):
    """Cliques and stars (most linkage clusters) are settled by the first labels: no propagation round runs. A path
    of eight nodes needs rounds, and the labels are tested before each one."""
    import logging

    cliques = spark.createDataFrame([("b", "a"), ("c", "a"), ("c", "b"), ("y", "x"), ("z", "x")],
                                    "src string, dst string")
    path = spark.createDataFrame([(str(i + 1), str(i)) for i in range(7)], "src string, dst string")
    with caplog.at_level(logging.INFO, logger="bold_spark.clustering.components"):
        assert {r["node"]: r["component"] for r in connected_components(cliques).collect()} == {
            "a": "a", "b": "a", "c": "a", "x": "x", "y": "x", "z": "x"}
        assert {r["component"] for r in connected_components(path).collect()} == {"0"}
    rounds = [int(m.split()[4]) for m in caplog.messages if m.startswith("connected components settled")]
    assert rounds[0] == 0 and 1 <= rounds[1] <= 3
