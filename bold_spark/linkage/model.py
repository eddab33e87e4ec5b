"""Splink on Spark: train a model once, then score with the saved model on every run.

The only module (with settings.py) that talks to Splink. Splink's intermediate tables are written under a scratch
folder per run (the session's checkpoint dir) and removed by ``SplinkWorkspace.close`` once outputs are written.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.config import LinkageSettings
from bold_spark.errors import ConfigError, DataQualityError
from bold_spark.linkage.settings import NAME_CONCAT, build_blocking_rule, build_settings

log = logging.getLogger(__name__)


def add_linkage_columns(persons: DataFrame) -> DataFrame:
    """Derived columns the comparisons and blocking rules use: phonetic codes and a full-name key."""
    return persons.select(
        "*",
        F.when(F.col("first_name").isNotNull() & F.col("surname").isNotNull(),
               F.concat_ws(" ", "first_name", "surname")).alias(NAME_CONCAT),
        F.soundex("first_name").alias("first_name_soundex"),
        F.soundex("surname").alias("surname_soundex"),
    )


def _delete_path(spark: SparkSession, path: str) -> None:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(hadoop_path, True)


@dataclass
class SplinkWorkspace:
    """A Splink linker over one prepared input, with its own scratch folder for intermediate tables."""

    spark: SparkSession
    linker: Any
    scratch_path: str
    previous_checkpoint_dir: str | None
    input_view: str

    def close(self) -> None:
        """Drop Splink's temp views and delete its intermediate files (Splink never deletes them itself)."""
        try:
            self.linker.table_management.delete_tables_created_by_splink_from_db()
            self.spark.catalog.dropTempView(self.input_view)
        finally:
            _delete_path(self.spark, self.scratch_path)
            if self.previous_checkpoint_dir:
                self.spark.sparkContext.setCheckpointDir(self.previous_checkpoint_dir)


def open_workspace(spark: SparkSession, persons: DataFrame, *, settings: Any, linkage: LinkageSettings,
                   scratch_dir: str, run_id: str) -> SplinkWorkspace:
    """Register ``persons`` (canonical + linkage columns) with Splink on Spark under a per-run scratch folder."""
    from splink import Linker, SparkAPI

    sc = spark.sparkContext
    previous = sc._jsc.sc().getCheckpointDir()
    previous_dir = previous.get() if not previous.isEmpty() else None
    scratch_path = f"{str(scratch_dir).rstrip('/')}/{run_id}"
    sc.setCheckpointDir(scratch_path)
    db_api = SparkAPI(spark_session=spark, break_lineage_method=linkage.break_lineage_method,
                      num_partitions_on_repartition=max(2, int(spark.conf.get("spark.sql.shuffle.partitions"))))
    view = "bold_persons_" + "".join(ch if ch.isalnum() else "_" for ch in run_id)
    table = db_api.register(persons, dataset_display_name="persons", table_name=view)
    linker = Linker(table, settings, log_level=None)
    return SplinkWorkspace(spark, linker, scratch_path, previous_dir, view)


def settings_for_training(linkage: LinkageSettings, *, where: str) -> Any:
    return build_settings(comparisons=linkage.comparisons, blocking_rules=linkage.blocking_rules, where=where)


def settings_from_model(model_path: Path, linkage: LinkageSettings) -> Any:
    """Load a trained model; prediction blocking rules come from the current config, parameters from the model."""
    from splink import SettingsCreator

    if not model_path.is_file():
        raise ConfigError(f"linkage.model_path: no trained model at {model_path}; run jobs/train.py first "
                          "(or jobs/link.py --train-if-missing)")
    creator = SettingsCreator.from_path_or_dict(json.loads(model_path.read_text(encoding="utf-8")))
    creator.blocking_rules_to_generate_predictions = [build_blocking_rule(r) for r in linkage.blocking_rules]
    return creator


def check_comparison_budget(workspace: SplinkWorkspace, linkage: LinkageSettings, *, records_in: int) -> int:
    """Estimate the comparisons the prediction blocking rules generate; stop before scoring if over the cap.

    Counts are exact up to 200,000 records and estimated from a deterministic sample of that many above.
    """
    rules = [build_blocking_rule(r) for r in linkage.blocking_rules]
    records = workspace.linker.blocking_analysis.count_comparisons_from_blocking_rules(
        rules, record_sample_proportion=min(1.0, 200_000 / max(records_in, 1)))
    for spec, record in zip(linkage.blocking_rules, records):
        if record["cumulative_comparison_count"] > linkage.max_comparisons:
            raise DataQualityError(
                f"linkage.blocking_rules: rule {spec!r} brings the estimated comparisons to "
                f"{record['cumulative_comparison_count']:,} (this rule adds {record['marginal_comparison_count']:,}), "
                f"over linkage.max_comparisons = {linkage.max_comparisons:,.0f}; tighten the rule or raise the cap")
    total = int(records[-1]["cumulative_comparison_count"]) if records else 0
    log.info("blocking: about %s comparisons from %d rules", f"{total:,}", len(records))
    return total


def train(workspace: SplinkWorkspace, linkage: LinkageSettings) -> dict[str, Any]:
    """Estimate the model: prior from deterministic rules, u by random sampling, m by EM on several rules."""
    training = linkage.training
    linker = workspace.linker
    linker.training.estimate_probability_two_random_records_match(
        [build_blocking_rule(r) for r in training.deterministic_rules], recall=training.recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=training.u_max_pairs, seed=training.seed)
    for rule in training.em_blocking_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(build_blocking_rule(rule))
    return linker.misc.save_model_to_json()


def save_model(model: Mapping[str, Any], metadata: Mapping[str, Any], path: Path) -> str:
    """Write the model JSON and a sidecar describing what it was trained on; atomic per file. Returns its id."""
    body = json.dumps(model, indent=2, sort_keys=True)
    model_id = hashlib.sha256(body.encode()).hexdigest()[:16]
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in ((path, body), (metadata_path(path), json.dumps({**metadata, "model_id": model_id},
                                                                         indent=2, default=str))):
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    return model_id


def metadata_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".meta.json")


def model_id_of(model_path: Path) -> str:
    body = json.dumps(json.loads(model_path.read_text(encoding="utf-8")), indent=2, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def predict_edges(workspace: SplinkWorkspace, *, threshold: float) -> DataFrame:
    """Scored pairs at or above ``threshold``: ids of both sides, weight, probability, comparison levels."""
    predictions = workspace.linker.inference.predict(threshold_match_probability=threshold).as_spark_dataframe()
    gammas = [c for c in predictions.columns if c.startswith("gamma_")]
    levels = (F.create_map(*[x for g in gammas for x in (F.lit(g[len("gamma_"):]), F.col(g).cast("int"))])
              if gammas else F.lit(None).cast("map<string,int>"))
    return predictions.select(
        F.col("source_system_l"), F.col("source_record_id_l"),
        F.col("source_system_r"), F.col("source_record_id_r"),
        F.col("match_weight").cast("double").alias("match_weight"),
        F.col("match_probability").cast("double").alias("match_probability"),
        levels.alias("comparison_levels"),
    )
