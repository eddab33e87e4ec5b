"""The scoring engine (one Spark plan) against Splink's own predict, the reference: on synthetic demo records with
the committed model, the same pairs with match weights equal to 1e-9, the same comparison levels, the same count of
pairs scored, the same clusters; and for the pairs touching changed records (an incremental run), the same again.
FEBRL3 is checked in test_public_data.py with the model trained there."""
from __future__ import annotations

from dataclasses import replace

import pytest
from pyspark.sql import functions as F

from bold_spark import pipeline
from bold_spark.crosswalk.build import cluster_records
from bold_spark.linkage import model as splink_model
from bold_spark.linkage.engine import engine_limits
from bold_spark.standardise.person import accepted_records
from bold_spark.synthetic.generate import generate
from tests.integration.conftest import AS_OF, demo_environment
from tests.integration.linking import assert_same_predictions, scored_by

KEYS = ["source_system", "source_record_id"]


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    config = demo_environment(root, database="bold_engine")
    sample = generate(spark, scale=2000, seed=23).materialise()
    for source in config.sources:
        sample.departments[source.name].write.format("delta").save(source.table.path)
    prepared = pipeline.prepare_input(spark, config, as_of=AS_OF)
    persons = accepted_records(prepared.standardised).transform(splink_model.add_linkage_columns).localCheckpoint()
    prepared.release()
    return config, persons, root


@pytest.fixture(scope="module")
def both(spark, demo):
    config, persons, root = demo
    return {scoring: scored_by(spark, persons, config.linkage, scoring, scratch=root / "scratch")
            for scoring in ("engine", "splink")}


def test_engine_gives_splinks_pairs_weights_and_levels(both):
    (engine, engine_count), (splink, splink_count) = both["engine"], both["splink"]
    assert len(splink) > 1000  # every blocked pair, scored: enough to cover every rule and level
    assert_same_predictions(engine, splink)
    # Pairs scored: counted on the engine's one plan as it runs, by Splink's blocking before it scores.
    assert engine_count == splink_count == len(splink)


def test_engine_edges_make_the_same_clusters(spark, both):
    def clusters(pairs):
        rows = [(*sorted(p)[0], *sorted(p)[1], weight, prob) for p, (weight, prob, _) in pairs.items()]
        edges = spark.createDataFrame(rows, "source_system_l string, source_record_id_l string, "
                                            "source_system_r string, source_record_id_r string, "
                                            "match_weight double, match_probability double")
        records = edges.select(F.col("source_system_l").alias("source_system"),
                               F.col("source_record_id_l").alias("source_record_id")).unionByName(
            edges.select(F.col("source_system_r").alias("source_system"),
                         F.col("source_record_id_r").alias("source_record_id"))).distinct()
        found = cluster_records(records, edges, threshold=0.95).records
        by_component = {}
        for r in found.collect():  # small test data
            by_component.setdefault(r["component"], set()).add((r["source_system"], r["source_record_id"]))
        return {frozenset(members) for members in by_component.values()}

    engine, splink = clusters(both["engine"][0]), clusters(both["splink"][0])
    assert any(len(c) > 1 for c in splink)
    assert engine == splink


def test_pairs_touching_changed_records_match_splinks_incremental_scoring(spark, demo, both):
    config, persons, root = demo
    # Every 40th record has changed: some pairs have two changed sides, most one.
    changed = persons.select(*KEYS).where(F.abs(F.hash(*KEYS)) % 40 == 0).localCheckpoint()
    changed_ids = {tuple(r) for r in changed.collect()}  # about 50 ids
    full = {pair: scored for pair, scored in both["splink"][0].items() if pair & changed_ids}
    assert len(full) > 50
    engine, counted = scored_by(spark, persons, config.linkage, "engine", scratch=root / "scratch",
                                changed=changed, changed_rows=len(changed_ids))
    splink, _ = scored_by(spark, persons, config.linkage, "splink", scratch=root / "scratch", changed=changed,
                          changed_rows=len(changed_ids))
    assert_same_predictions(engine, full)
    assert_same_predictions(splink, full)
    assert counted == len(full)


def test_a_model_the_engine_cannot_score_falls_back_to_splink(spark, demo):
    config, persons, root = demo
    settings = splink_model.settings_from_model(config.linkage.model_path, config.linkage)
    assert engine_limits(settings.get_settings("spark")) == []
    crossed = replace(config.linkage, blocking_rules=("l.first_name = r.surname", ["date_of_birth"]))
    settings = splink_model.settings_from_model(crossed.model_path, crossed)
    assert engine_limits(settings.get_settings("spark")) == [
        "linkage.blocking_rules[0] compares different expressions on its two sides"]
    scorer = splink_model.Scoring(spark, persons, settings=settings, linkage=crossed, scratch_dir=str(root / "s"),
                                  run_id="fallback")
    try:
        assert not scorer.by_engine and scorer.workspace is not None  # Splink's predict scores it
    finally:
        scorer.close()
