"""Incremental scoring on a small population: the edges touching the changed records are exactly those a full
predict finds, each pair once, with the same probabilities (real Splink on Spark, term frequencies included)."""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from bold_spark.broadcast import as_parquet
from bold_spark.config import LinkageSettings, TrainingSettings
from bold_spark.linkage import model as splink_model
from bold_spark.linkage.incremental_scoring import predict_edges_touching

KEYS = ["source_system", "source_record_id"]
N = 48
# Ids that sort differently as text and as numbers, in both sources, so a pair of two changed records can have
# either source (and either id order) on the left.
CHANGED = {("a", "10"), ("a", "2"), ("b", "3"), ("b", "21"), ("a", "44"), ("b", "9"), ("a", "30"), ("b", "47")}


@pytest.fixture(scope="module")
def linkage(tmp_path_factory) -> LinkageSettings:
    return LinkageSettings(
        model_path=tmp_path_factory.mktemp("model") / "unused.json",
        comparisons=({"kind": "exact", "column": "surname", "term_frequency": True},
                     {"kind": "exact", "column": "first_name"}, {"kind": "exact", "column": "sex"}),
        blocking_rules=(["surname"], ["first_name"]),
        training=TrainingSettings(), cluster_threshold=0.95, edge_threshold=0.0, max_comparisons=1e6)


@pytest.fixture(scope="module")
def workspace(spark, linkage, tmp_path_factory):
    # Uneven name frequencies (term frequencies matter); both sources share every name.
    persons = spark.range(N).select(
        F.when(F.col("id") % 2 == 0, "a").otherwise("b").alias("source_system"),
        F.col("id").cast("string").alias("source_record_id"),
        F.element_at(F.array(*[F.lit(n) for n in ("ann", "bob", "cat", "dan", "eve")]),
                     (F.col("id") % 5 + 1).cast("int")).alias("first_name"),
        F.when(F.col("id") % 7 < 4, "smith").when(F.col("id") % 7 < 6, "jones").otherwise("khan").alias("surname"),
        F.when(F.col("id") % 3 == 0, "F").otherwise("M").alias("sex"),
    )
    settings = splink_model.settings_for_training(linkage, where="test")
    ws = splink_model.open_workspace(spark, persons, settings=settings, linkage=linkage,
                                     scratch_dir=str(tmp_path_factory.mktemp("scratch")), run_id="inc-scoring")
    yield ws, persons
    ws.close()


def _by_pair(edges) -> dict[frozenset, float]:
    rows = edges.collect()  # a few hundred pairs at most
    found = {frozenset({(r["source_system_l"], r["source_record_id_l"]),
                        (r["source_system_r"], r["source_record_id_r"])}): r["match_probability"] for r in rows}
    assert len(found) == len(rows), "a pair was scored more than once"
    return found


def test_edges_touching_the_changed_records_are_those_of_a_full_predict(spark, workspace, linkage, tmp_path):
    ws, persons = workspace
    changed_keys = spark.createDataFrame(sorted(CHANGED), "source_system string, source_record_id string")
    changed = as_parquet(persons.join(changed_keys, KEYS, how="left_semi"), str(tmp_path / "changed"))
    unchanged = persons.join(changed_keys, KEYS, how="left_anti")
    touching = predict_edges_touching(ws, changed, unchanged, changed_rows=len(CHANGED),
                                      blocking_rules=list(linkage.blocking_rules), threshold=0.0, run_id="inc")
    incremental = _by_pair(touching)

    full = {pair: p for pair, p in _by_pair(splink_model.predict_edges(ws, threshold=0.0)).items()
            if pair & CHANGED}
    within = [pair for pair in full if pair <= CHANGED]
    assert len(full) > 100 and len(within) >= 3  # pairs with a changed record, some between two changed ones
    assert incremental.keys() == full.keys()
    assert all(incremental[pair] == pytest.approx(full[pair]) for pair in full)

    # Orientation: a changed record on the left; of two changed records, the smaller Splink composite id.
    for r in touching.collect():  # as above
        left, right = (r["source_system_l"], r["source_record_id_l"]), (r["source_system_r"], r["source_record_id_r"])
        assert left in CHANGED
        if right in CHANGED:
            assert "-__-".join(left) < "-__-".join(right)
