"""Shared by the integration tests: link a configured data set end to end and score it against truth."""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, functions as F

from bold_spark import pipeline
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
