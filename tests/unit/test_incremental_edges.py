"""The edge store's incremental update on tiny inline frames: which old edges go, which stay."""
from __future__ import annotations

from bold_spark.broadcast import small_side
from bold_spark.incremental import EDGE_KEYS, current_edges, edge_changes, edges_touching
from bold_spark.schemas import MATCH_EDGES


def _edges(spark, pairs: list[tuple[str, str, float]], run_id: str):
    """(left id, right id, probability), every record in source 's' -> MATCH_EDGES rows."""
    rows = [("s", left, "s", right, 0.0, p, None, run_id) for left, right, p in pairs]
    return spark.createDataFrame(rows, MATCH_EDGES)


def _pairs(df) -> set[tuple[str, str]]:
    return {(r["source_record_id_l"], r["source_record_id_r"]) for r in df.select(*EDGE_KEYS).collect()}  # tiny


def _records(spark, ids: list[str], *, hinted: bool):
    df = spark.createDataFrame([("s", i) for i in ids], "source_system string, source_record_id string")
    return small_side(df, len(ids) if hinted else 10**9)


def test_edges_touching_finds_either_side_once(spark):
    old = _edges(spark, [("a", "b", 0.9), ("b", "c", 0.8), ("c", "d", 0.7), ("d", "e", 0.6), ("c", "x", 0.5)], "r1")
    for hinted in (True, False):  # broadcast lookups and shuffled joins give the same keys
        touching = edges_touching(old, _records(spark, ["c", "e"], hinted=hinted))
        assert sorted(_pairs(touching)) == [("b", "c"), ("c", "d"), ("c", "x"), ("d", "e")]
        assert touching.count() == 4
    both_sides = edges_touching(old, _records(spark, ["c", "d"], hinted=True))  # c-d has both sides in the records
    assert both_sides.count() == len(_pairs(both_sides)) == 4


def test_the_edge_store_drops_rescored_and_orphaned_edges_and_keeps_the_rest(spark):
    old = _edges(spark, [("a", "b", 0.9), ("b", "c", 0.8), ("c", "d", 0.7), ("e", "f", 0.6)], "r1")
    dirty = _records(spark, ["c", "g"], hinted=True)
    new = _edges(spark, [("b", "c", 0.95), ("c", "g", 0.99)], "r2")  # c-d was not scored again: c changed
    assert _pairs(current_edges(old, new, dirty)) == {("a", "b"), ("e", "f"), ("b", "c"), ("c", "g")}
    changes = edge_changes(old, new, dirty)
    ops = {(r["source_record_id_l"], r["source_record_id_r"]): r["_op"] for r in changes.collect()}  # tiny
    assert ops == {("b", "c"): "upsert", ("c", "g"): "upsert", ("c", "d"): "delete"}
