"""Shared by the integration tests: link a configured data set end to end and score it against truth."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, functions as F

from bold_spark import pipeline
from bold_spark.linkage import model as splink_model
from bold_spark.config import JobConfig, load_config
from bold_spark.io.csv_import import import_csv_as_delta
from bold_spark.quality.evaluate import pairwise_metrics

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def public_config(name: str, base_dir: Path) -> JobConfig:
    """The committed conf/public/<name>.yaml with every relative path moved under ``base_dir``."""
    return load_config(PROJECT_ROOT / "conf" / "public" / f"{name}.yaml", overrides={"base_dir": str(base_dir)})


def import_public_csv(spark, config: JobConfig, csv_path: Path) -> None:
    (source,) = config.sources
    import_csv_as_delta(spark, str(csv_path), source.table.path)


def train_and_link(spark, config: JobConfig, *, as_of: str = "2026-01-01"):
    """``jobs/link.py --train-if-missing`` (make demo's first run): no model yet, so one is trained, then used."""
    assert not config.linkage.model_path.exists()
    trained = pipeline.ensure_model(spark, config, train_if_missing=True)
    assert trained is not None and config.linkage.model_path.is_file()
    assert pipeline.ensure_model(spark, config, train_if_missing=True) is None  # a model exists: nothing trained
    linked = pipeline.link(spark, config, as_of=as_of)
    return trained, linked


def crosswalk(spark, config: JobConfig) -> DataFrame:
    return spark.table(config.output.qualified("crosswalk"))


def score(spark, config: JobConfig, truth: DataFrame) -> dict[str, float]:
    return pairwise_metrics(crosswalk(spark, config), truth)


def febrl_truth(spark, config: JobConfig) -> DataFrame:
    """FEBRL ids are rec-<n>-org / rec-<n>-dup-<k>: the same <n> is the same person."""
    (source,) = config.sources
    return spark.read.format("delta").load(source.table.path).select(
        F.lit(source.name).alias("source_system"), F.col("rec_id").alias("source_record_id"),
        F.regexp_extract("rec_id", r"^rec-(\d+)-", 1).alias("person_id"))


def scored_by(spark, persons: DataFrame, linkage, scoring: str, *, scratch: Path, changed: DataFrame | None = None,
              changed_rows: int = 0) -> tuple[dict[frozenset, tuple], int | None]:
    """Every blocked pair (no threshold) scored by ``scoring`` ("engine" or "splink"), by unordered pair: (match
    weight, probability, comparison levels); and the pairs the run counted as scored."""
    linkage = replace(linkage, scoring=scoring)
    settings = splink_model.settings_from_model(linkage.model_path, linkage)
    scorer = splink_model.Scoring(spark, persons, settings=settings, linkage=linkage, scratch_dir=str(scratch),
                                  run_id=f"parity-{scoring}")
    try:
        edges = scorer.edges(threshold=None, changed=changed, changed_rows=changed_rows).persist()
        rows = edges.collect()  # small test data: a few thousand pairs
        pairs = {frozenset({(r["source_system_l"], r["source_record_id_l"]),
                            (r["source_system_r"], r["source_record_id_r"])}):
                 (r["match_weight"], r["match_probability"], dict(r["comparison_levels"])) for r in rows}
        assert len(pairs) == len(rows), f"{scoring}: a pair was scored more than once"
        counted = scorer.pairs_scored()
        edges.unpersist()
        return pairs, counted
    finally:
        scorer.close()


def assert_same_predictions(engine: dict[frozenset, tuple], splink: dict[frozenset, tuple]) -> None:
    """The same pairs, match weights equal to 1e-9, the same probabilities and comparison levels."""
    assert engine.keys() == splink.keys(), (len(engine.keys() - splink.keys()), len(splink.keys() - engine.keys()))
    worst = max(abs(engine[p][0] - splink[p][0]) for p in splink)
    assert worst <= 1e-9, worst
    assert all(engine[p][1] == pytest.approx(splink[p][1], abs=1e-12) for p in splink)
    assert all(engine[p][2] == splink[p][2] for p in splink)
