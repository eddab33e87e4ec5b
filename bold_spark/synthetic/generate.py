"""The generator's public entry: department tables, the truth table and the clean population, all lazy DataFrames.

Everything is computed on the executors from ``spark.range``; nothing row-level passes through the driver, and the
same seed and scale give the same rows whatever the partitioning or cluster.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bold_spark.synthetic.departments import (
    CLEAN_RECORD_SCHEMA, SOURCE_SYSTEMS, clean_records, expected_records_per_person, render, source_keys,
    with_recording_errors,
)
from bold_spark.synthetic.names import reference_tables
from bold_spark.synthetic.population import MAX_PEOPLE, people
from bold_spark.synthetic.rates import Rates, load_rates

log = logging.getLogger(__name__)

TRUTH_SCHEMA = T.StructType([
    T.StructField("source_system", T.StringType(), False),
    T.StructField("source_record_id", T.StringType(), False),
    T.StructField("person_id", T.LongType(), False),
])
PEOPLE_PER_PARTITION = 250_000


def population_size(scale: int, rates: Rates) -> int:
    """How many people make about ``scale`` department records in all."""
    if scale < 1:
        raise ValueError(f"scale must be a positive number of records, got {scale}")
    n = max(1, math.ceil(scale / expected_records_per_person(rates)))
    if n >= MAX_PEOPLE:
        raise ValueError(f"scale {scale} needs {n} people; the generator supports fewer than {MAX_PEOPLE}")
    return n


@dataclass(frozen=True)
class SyntheticSample:
    """One generation. ``departments`` are what departments deliver; the rest is for evaluation and tests only."""

    seed: int
    scale: int
    n_people: int
    rates: Rates
    departments: Mapping[str, DataFrame]  # source_system -> the department's table (DEPARTMENT_SCHEMAS)
    truth: DataFrame  # TRUTH_SCHEMA: which person each record belongs to
    clean_records: DataFrame  # CLEAN_RECORD_SCHEMA: each record's true values at its event date
    people: DataFrame  # PERSON_SCHEMA: the whole clean population
    recorded: DataFrame  # every source's records with clean and recorded values (what the tables are rendered from)

    def materialise(self) -> SyntheticSample:
        """The same sample computed in two Spark jobs and kept on the executors with short lineage (local
        checkpoints), for tests and notebooks that query it many times. Jobs write the lazy tables instead."""
        recorded = self.recorded.localCheckpoint()
        return dataclasses.replace(
            self, recorded=recorded, people=self.people.localCheckpoint(),
            departments={s: render(recorded, source=s, seed=self.seed, rates=self.rates) for s in self.departments},
            truth=_truth(recorded), clean_records=_clean(recorded))


def _plan_size(spark: SparkSession, scale: int, rates: Rates, num_partitions: int | None) -> tuple[int, int]:
    n_people = population_size(scale, rates)
    if num_partitions is None:
        parallelism = spark.sparkContext.defaultParallelism
        wanted = max(1, math.ceil(n_people / PEOPLE_PER_PARTITION))
        num_partitions = parallelism * math.ceil(wanted / parallelism)
    return n_people, num_partitions


def generate(spark: SparkSession, *, scale: int, seed: int, rates: Rates | None = None,
             num_partitions: int | None = None) -> SyntheticSample:
    """Six department tables totalling about ``scale`` records, their truth, and the clean data behind them.

    ``rates`` defaults to conf/rates/default.yaml; ``num_partitions`` (of each source's population range) changes
    only how the work is split, never the rows.
    """
    rates = rates or load_rates()
    n_people, num_partitions = _plan_size(spark, scale, rates, num_partitions)
    log.info("synthetic plan: scale %d, seed %d, %d people, %d partitions", scale, seed, n_people, num_partitions)
    tables = reference_tables(spark)

    def person_ids() -> DataFrame:
        return spark.range(0, n_people, 1, num_partitions).select(F.col("id").alias("person_id"))

    keys = _union([source_keys(person_ids(), source=s, seed=seed, rates=rates, n_people=n_people)
                   for s in SOURCE_SYSTEMS])
    clean = clean_records(keys, seed=seed, rates=rates, tables=tables)
    recorded = with_recording_errors(clean, seed=seed, rates=rates, tables=tables)
    departments = {s: render(recorded, source=s, seed=seed, rates=rates) for s in SOURCE_SYSTEMS}
    return SyntheticSample(
        seed=seed, scale=scale, n_people=n_people, rates=rates, departments=departments, truth=_truth(keys),
        clean_records=_clean(clean), recorded=recorded,
        people=people(spark.range(0, n_people, 1, num_partitions), seed=seed, rates=rates, tables=tables),
    )


def _truth(records: DataFrame) -> DataFrame:
    return records.select(*(F.col(f.name).cast(f.dataType) for f in TRUTH_SCHEMA.fields))


def _clean(records: DataFrame) -> DataFrame:
    return records.select(*(F.col(f.name).cast(f.dataType) for f in CLEAN_RECORD_SCHEMA.fields))


def generate_departments(spark: SparkSession, *, scale: int, seed: int, rates: Rates | None = None,
                         num_partitions: int | None = None) -> dict[str, DataFrame]:
    """Only the department tables of ``generate``: source_system -> DataFrame."""
    return dict(generate(spark, scale=scale, seed=seed, rates=rates, num_partitions=num_partitions).departments)


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df)
    return out
