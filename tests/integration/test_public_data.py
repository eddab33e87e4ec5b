"""The public labelled sets linked through the same configuration mechanism as departments, scored against truth.

Thresholds are the measured figures less a small margin (see the closing notes of issue 2 for the numbers).
"""
from __future__ import annotations

import shutil

import pytest
from pyspark.sql import functions as F

from bold_spark import pipeline
from bold_spark.linkage import model as splink_model
from bold_spark.standardise.person import accepted_records
from tests.conftest import SHARED_DATA
from tests.integration.linking import (
    assert_same_predictions,
    crosswalk,
    febrl_truth,
    import_public_csv,
    public_config,
    score,
    scored_by,
    train_and_link,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def febrl3(spark, tmp_path_factory):
    config = public_config("febrl3", tmp_path_factory.mktemp("febrl3"))
    import_public_csv(spark, config, SHARED_DATA / "febrl" / "dataset3.csv")
    trained, linked = train_and_link(spark, config)
    return config, trained, linked


def test_febrl3_pairwise_f1_at_least_0_99(spark, febrl3):
    config, _, _ = febrl3
    metrics = score(spark, config, febrl_truth(spark, config))
    print(f"FEBRL3 {metrics}")
    assert metrics["f1"] >= 0.99, metrics


def test_crosswalk_has_one_row_per_record_and_the_run_is_recorded(spark, febrl3):
    config, trained, linked = febrl3
    cw = crosswalk(spark, config)
    totals = cw.agg(F.count(F.lit(1)).alias("rows"),
                    F.countDistinct("source_system", "source_record_id").alias("keys")).first()
    rejects = spark.table(config.output.qualified("rejects")).count()
    assert totals["rows"] == totals["keys"]
    assert totals["rows"] + rejects == 5000
    assert cw.where(F.col("run_id") != linked.run_id).count() == 0
    runs = spark.table(config.output.qualified("link_runs")).orderBy("started_at").collect()
    assert [(r["job"], r["status"]) for r in runs] == [("train", "succeeded"), ("link", "succeeded")]
    (source,) = runs[1]["inputs"]
    assert source["delta_version"] == 0 and source["records_read"] == 5000
    assert source["records_accepted"] + source["records_rejected"] == 5000
    assert runs[1]["model_id"] == trained.model_id
    # What the model was trained on, and nothing changed since: same sources, rules and thresholds
    assert runs[1]["model_trained_by_run"] == trained.run_id
    assert [(i["source_system"], i["delta_version"], i["records_read"]) for i in runs[1]["model_training_inputs"]] \
        == [(source["source_system"], 0, 5000)]
    assert runs[1]["model_differences"] == []
    assert runs[1]["crosswalk_rows"] == totals["rows"]


def test_splink_intermediate_files_are_removed_after_each_run(febrl3):
    config, trained, linked = febrl3
    assert config.scratch_dir.is_dir()
    assert not (config.scratch_dir / trained.run_id).exists() and not (config.scratch_dir / linked.run_id).exists()
    assert list(config.scratch_dir.iterdir()) == []


def test_singletons_have_null_probability_and_size_one(spark, febrl3):
    config, _, _ = febrl3
    cw = crosswalk(spark, config)
    bad = cw.where((F.col("cluster_size") == 1) != F.col("match_probability").isNull()).count()
    assert bad == 0


@pytest.mark.parametrize("dataset, minimum_f1", [("febrl1", 0.95), ("febrl2", 0.95)])
def test_febrl1_and_2_linked_with_the_model_trained_on_febrl3(spark, febrl3, tmp_path, dataset, minimum_f1):
    """The saved model is reused: no training, only scoring with febrl3's model JSON."""
    trained_config, trained, _ = febrl3
    config = public_config(dataset, tmp_path)
    import_public_csv(spark, config, SHARED_DATA / "febrl" / f"dataset{dataset[-1]}.csv")
    config.linkage.model_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(trained_config.linkage.model_path, config.linkage.model_path)
    linked = pipeline.link(spark, config, as_of="2026-01-01")
    assert linked.model_id == trained.model_id
    metrics = score(spark, config, febrl_truth(spark, config))
    print(f"{dataset} {metrics}")
    assert metrics["f1"] >= minimum_f1, metrics


def test_fake_1000_beats_the_tutorial_model(spark, tmp_path):
    """Splink's tutorial-style model reaches about 0.60 pairwise F1 on fake_1000."""
    config = public_config("fake_1000", tmp_path)
    import_public_csv(spark, config, SHARED_DATA / "splink_fake_1000" / "fake_1000.csv")
    train_and_link(spark, config)
    (source,) = config.sources
    truth = spark.read.format("delta").load(source.table.path).select(
        F.lit(source.name).alias("source_system"), F.col("unique_id").alias("source_record_id"),
        F.col("cluster").alias("person_id"))
    metrics = score(spark, config, truth)
    print(f"fake_1000 {metrics}")
    assert metrics["f1"] >= 0.60, metrics


def test_scoring_engine_gives_splinks_predictions_on_febrl3(spark, febrl3, tmp_path):
    """The engine against Splink's predict with the model trained on FEBRL3: every blocked pair, no threshold."""
    config, _, _ = febrl3
    prepared = pipeline.prepare_input(spark, config)
    persons = accepted_records(prepared.standardised).transform(splink_model.add_linkage_columns).localCheckpoint()
    prepared.release()
    engine, engine_count = scored_by(spark, persons, config.linkage, "engine", scratch=tmp_path)
    splink, splink_count = scored_by(spark, persons, config.linkage, "splink", scratch=tmp_path)
    assert len(splink) > 1000
    assert_same_predictions(engine, splink)
    assert engine_count == splink_count == len(splink)
