"""Compose the stages of one run: read and standardise, (train,) score, cluster, write, record the run.

No argv and no session building here: jobs/ do that. Every table name comes from configuration.
"""
from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import reduce
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.broadcast import small_side
from bold_spark.config import JobConfig, SourceConfig
from bold_spark.errors import BoldSparkError, DataQualityError
from bold_spark.io.delta import (
    SourceSnapshot,
    append_table,
    ensure_database,
    overwrite_table,
    read_source,
    write_concurrently,
)
from bold_spark.linkage import model as splink_model
from bold_spark.clustering.constrained import (
    clustering_input,
    pair_rules,
    summarise as summarise_splits,
    with_compared_columns,
)
from bold_spark.crosswalk.build import build_crosswalk
from bold_spark.io import history
from bold_spark.io.changes import Changes, rows_in_files
from bold_spark.io.state import StateChanges, StoredRecords, write_state
from bold_spark.schemas import LINK_RUNS, MATCH_EDGES, conform
from bold_spark.progress import progress_logged
from bold_spark.session import spark_activity
from bold_spark.validate import SourceProfile, validate_sources
from bold_spark.crosswalk.department_views import create_department_views
from bold_spark.crosswalk.pseudonymise import hmac_key, pseudonymise_record_ids
from bold_spark.quality import gate
from bold_spark.quality.groups import record_groups
from bold_spark.quality.report import render_report, sample_edges, write_report
from bold_spark.quality.run_quality import run_quality, write_run_quality
from bold_spark.views.catalog import create_views
from bold_spark.clustering.rules import CANNOT_LINK
from bold_spark.review.apply import applicable_decisions, count_unmet, with_decision_reasons
from bold_spark.review.decisions import read_decisions
from bold_spark.review.queue import review_queue
from bold_spark.standardise.person import (
    COUNT_COLUMNS,
    _as_text,
    accepted_records,
    rejected_records,
    source_counts,
    standardise_source,
)

log = logging.getLogger(__name__)

KEYS = ["source_system", "source_record_id"]


def as_of_date(as_of: str | None):
    """The run's reference date as a Column: ``as_of`` (yyyy-MM-dd) or today."""
    return F.lit(as_of).cast("date") if as_of else F.current_date()


def publish_views(spark: SparkSession, config: JobConfig) -> list[str]:
    """Per-department views and the programme's views; they read the current crosswalk, so this is idempotent."""
    names = create_department_views(spark, config.output, config.sources)
    if config.views is not None:
        names += create_views(spark, views=config.views, output=config.output)
    return names


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


@dataclass
class RunRecord:
    """What bold.link_runs says about one run; filled in as the stages complete."""

    run_id: str
    job: str
    config_digest: str
    spark_master: str
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    status: str = "running"
    model_id: str | None = None
    model: splink_model.ModelInUse | None = None  # the model scored with: its training and allowed differences
    inputs: list[dict[str, Any]] = field(default_factory=list)
    comparisons_scored: int | None = None  # exact: the distinct pairs the blocking rules generated
    edges_recorded: int | None = None
    crosswalk_rows: int | None = None
    clusters: int | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    message: str | None = None
    status_on_success: str = "succeeded"  # "held" when the publishing gate kept the crosswalk back
    blocking_estimates: list[dict[str, Any]] = field(default_factory=list)
    report_path: str | None = None
    constraints: dict[str, Any] | None = None  # clustering/constrained.py summarise(): components split, edges refused
    spark_sql_executions: int | None = None  # the Spark SQL queries and jobs the run started (session.spark_activity)
    spark_jobs: int | None = None
    stage_queries: dict[str, int] = field(default_factory=dict)  # Spark SQL queries per stage (logged, and in bench)
    activity: Callable[[], tuple[int, int] | None] | None = field(default=None, repr=False)  # set by recorded_run
    # Clerical review (bold_spark/review/apply.py); None when bold.review_decisions holds no decision.
    review_decisions_applied: int | None = None
    review_decisions_not_applicable: int | None = None
    review_edges_cut: int | None = None
    review_decisions_unmet: int | None = None
    # A stage's progress logger (bold_spark/progress.py), set by recorded_run: Spark jobs, stages, tasks done.
    progress: Callable[[str], AbstractContextManager] | None = field(default=None, repr=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage, logging its Spark progress while it runs long; a stage entered again (in parts, around
        other work) adds up."""
        start = time.perf_counter()
        before = self.activity() if self.activity else None
        log.info("stage %s: %s", name, "resumed" if name in self.stage_seconds else "start")
        try:
            with self.progress(name) if self.progress else nullcontext():
                yield
        finally:
            self.stage_seconds[name] = round(self.stage_seconds.get(name, 0.0) + time.perf_counter() - start, 3)
            after = self.activity() if before else None
            if before and after:
                self.stage_queries[name] = self.stage_queries.get(name, 0) + after[0] - before[0]
            log.info("stage %s: %.1f s, %d Spark SQL queries", name, self.stage_seconds[name],
                     self.stage_queries.get(name, 0))

    def as_row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "job": self.job, "status": self.status, "started_at": self.started_at,
            "ended_at": datetime.now(timezone.utc), "model_id": self.model_id, "config_digest": self.config_digest,
            "inputs": self.inputs, "comparisons_scored": self.comparisons_scored,
            "edges_recorded": self.edges_recorded, "crosswalk_rows": self.crosswalk_rows, "clusters": self.clusters,
            "stage_seconds": self.stage_seconds, "spark_master": self.spark_master, "message": self.message,
            "blocking_estimates": self.blocking_estimates, "report_path": self.report_path,
            "spark_sql_executions": self.spark_sql_executions, "spark_jobs": self.spark_jobs,
            "model_trained_by_run": self.model.trained_by_run if self.model else None,
            "model_training_inputs": self.model.training_inputs if self.model else None,
            "model_differences": self.model.differences if self.model else None,
            "review_decisions_applied": self.review_decisions_applied,
            "review_decisions_not_applicable": self.review_decisions_not_applicable,
            "review_edges_cut": self.review_edges_cut, "review_decisions_unmet": self.review_decisions_unmet,
        }

    def use_model(self, config: JobConfig) -> Any:
        """Load the saved model this run scores with (ConfigError when it does not fit), record it, and return
        Splink's settings for it."""
        self.model = splink_model.model_in_use(config.linkage)
        self.model_id = self.model.model_id
        return self.model.settings

    def count_decisions(self, applied: Any, splits: dict[str, Any] | None) -> None:
        """What review.apply.applicable_decisions counted, and the edges the merge refused for cannot_link."""
        if applied is None:
            return
        self.review_decisions_applied, self.review_decisions_not_applicable = applied.applied, applied.not_applicable
        self.review_edges_cut = int(((splits or {}).get("refused") or {}).get(CANNOT_LINK, 0))


@dataclass
class PreparedInput:
    standardised: DataFrame  # all sources, canonical columns + invalid_fields + reject_reason (a short plan: see
    # prepare_input's checkpoint, and prepare_changed_input's stored records plus checkpointed changes)
    snapshots: list[SourceSnapshot]
    counts: dict[str, dict[str, Any]]  # per source: records read/accepted/rejected, invalid values
    profiles: dict[str, SourceProfile] = field(default_factory=dict)  # per source: validation counts of the raw read
    state_changes: StateChanges | None = None  # incremental: how ``standardised`` differs from the stored records
    checkpoint_path: str | None = None  # where ``standardised`` is checkpointed (prepare_input), deleted by release

    def release(self) -> None:
        if self.checkpoint_path:
            splink_model.delete_path(self.standardised.sparkSession, self.checkpoint_path)


def read_sources(spark: SparkSession, config: JobConfig) -> list[tuple[DataFrame, SourceSnapshot]]:
    """Every configured source at its current version, pinned (later commits to a source do not change the read)."""
    return [read_source(spark, source) for source in config.sources]


def _validate_and_standardise(config: JobConfig, raws: list[DataFrame], *, latest, whole_sources: bool
                              ) -> tuple[DataFrame, dict[str, SourceProfile]]:
    validated = validate_sources([(raw, source, config.validation_for(source))
                                  for raw, source in zip(raws, config.sources)], latest=latest,
                                 whole_sources=whole_sources)
    profiles = {source.name: profile for source, (_, profile) in zip(config.sources, validated)}
    standardised = reduce(DataFrame.unionByName, [
        standardise_source(raw, source=source, as_of=latest, policy=config.validation_for(source),
                           frequent=(profile.frequent_hashes()
                                     if config.validation_for(source).on_frequent_value == "null" else None))
        for source, (raw, profile) in zip(config.sources, validated)])
    return standardised, profiles


def _counts(standardised: DataFrame) -> dict[str, dict[str, Any]]:
    return {row["source_system"]: row.asDict()
            for row in source_counts(standardised).collect()}  # bounded: one row per source


def prepare_input(spark: SparkSession, config: JobConfig, *, as_of: str | None = None,
                  reads: list[tuple[DataFrame, SourceSnapshot]] | None = None) -> PreparedInput:
    """Read every source at a pinned version (or take ``reads``), validate them all (one Spark job), standardise;
    count per source.

    Every source is validated before any is standardised, so bad input stops the run before anything is written.
    With ``privacy.pseudonymise`` every record id is replaced by its keyed hash here, before linkage, so no table
    the run writes holds a department's own record ids.
    """
    key = hmac_key(config.privacy, config_file=config.file) if config.privacy.pseudonymise else None  # before Spark
    latest = F.lit(as_of).cast("date") if as_of else None
    reads = reads if reads is not None else read_sources(spark, config)
    snapshots = [snapshot for _, snapshot in reads]
    standardised, profiles = _validate_and_standardise(config, [raw for raw, _ in reads], latest=latest,
                                                       whole_sources=True)
    if key is not None:
        standardised = pseudonymise_record_ids(standardised, key=key)
    # Checkpointed, not cached: a cached frame keeps its whole plan (validation and standardisation of every
    # source) under every later query of the run; a checkpoint is a plain scan. A 17-record link took 32-40 s warm
    # against 45-51 s cached (docs/testing.md).
    checkpoint_path = f"{str(config.scratch_dir).rstrip('/')}/input-{uuid.uuid4().hex}"
    try:
        standardised = splink_model.checkpointed_in(standardised, checkpoint_path)
        counts = _counts(standardised)
        for s in snapshots:
            read = counts.get(s.source_system, {}).get("records_read", 0)
            if read != profiles[s.source_system].rows:  # the table changed under a pinned version: never expected
                raise DataQualityError(f"source {s.source_system}: accounting: validation counted "
                                       f"{profiles[s.source_system].rows} records but standardisation {read}")
    except BaseException:
        splink_model.delete_path(spark, checkpoint_path)
        raise
    return PreparedInput(standardised, snapshots, counts, profiles, checkpoint_path=checkpoint_path)


def prepare_changed_input(spark: SparkSession, config: JobConfig, reads: list[tuple[DataFrame, SourceSnapshot]], *,
                          stored_records: StoredRecords, changes: dict[str, Changes],
                          as_of: str | None = None, changed_rows: int | None = None,
                          stored_counts: dict[str, dict[str, Any]] | None = None) -> PreparedInput:
    """prepare_input's result from the records the last run stored (bold_spark/io/state.py) plus what changed.

    Read, validated and standardised again: every row of a changed id (a repeated id is judged on all its
    copies) and the rows without an id; a source whose changes are only appended files is read from those
    files alone unless an appended id repeats a stored one; a source changed "all" is read whole. Whole-source
    checks a subset cannot answer (an empty source, an all-null column) were made by the run that stored the
    records. Each source's total is then checked against its current row count, so a missed change stops the run.
    ``changed_rows``: the number of changed ids, when the caller has counted them. ``stored_counts``: per source,
    the counts (``source_counts``) of the stored records, as the run that stored them recorded; the counts are
    then the stored ones minus the replaced rows' plus the fresh rows', without counting every record again.
    """
    latest = F.lit(as_of).cast("date") if as_of else None
    rows_now = _rows_now(reads, changes, stored_counts)
    stored, stored_version = stored_records
    changed = changed_ids(changes)
    changed_rows = changed.count() if changed_rows is None else changed_rows
    configured = [s.name for s in config.sources]
    reread = [name for name, found in changes.items() if found.how == "all"]
    appended = [name for name, found in changes.items() if found.how != "all" and found.appended_files is not None]
    # Sources whose stored rows without an id stay: their new rows without an id can only be in the changes read.
    kept_null_ids = [name for name, found in changes.items() if found.how == "unchanged" or name in appended]
    kept_sources = [name for name in configured if name not in reread]
    kept = stored.where(F.col("source_system").isin(kept_sources))
    # One pass over the stored records marks the rows this run replaces: rows of a changed id, and rows without an
    # id of a source whose id-less rows are read again. Their counts, per source, also say which appended files
    # repeat a stored id.
    marked = kept.join(small_side(changed.withColumn("_bold_changed", F.lit(True)), changed_rows), KEYS, how="left")
    replaced_rule = F.coalesce(F.col("_bold_changed"), F.lit(False)) | (
        F.col("source_record_id").isNull() & ~F.col("source_system").isin(kept_null_ids))
    replaced_counts = _counts(marked.where(replaced_rule).drop("_bold_changed"))
    repeating = {name for name in appended if replaced_counts.get(name, {}).get("records_read", 0) > 0}
    subsets = []
    for (raw, _), source in zip(reads, config.sources):
        found = changes[source.name]
        if found.how == "all":
            subsets.append(raw)
        elif found.how == "unchanged":
            subsets.append(raw.limit(0))
        elif source.name in appended:
            subsets.append(_appended_rows(raw, source, found, stored, repeats=source.name in repeating))
        else:
            subsets.append(_rows_of_ids(raw, source, found.ids))
    fresh, profiles = _validate_and_standardise(config, subsets, latest=latest, whole_sources=False)
    # Only what was standardised again is checkpointed: its lineage (changes, validation, six sources' subsets)
    # is long, and every later query would analyse it again; the stored records are one scan.
    fresh = fresh.checkpoint()
    standardised = marked.where(~replaced_rule).drop("_bold_changed").unionByName(fresh)
    state_changes = None  # a source read whole, or one no longer configured: the next stored records are rewritten
    if not reread and stored.where(~F.col("source_system").isin(configured)).limit(1).count() == 0:  # bounded
        # A null id stands for every stored row without an id, of the sources whose id-less rows were read again.
        reread_null_ids = spark.createDataFrame([(name, None) for name in configured if name not in kept_null_ids],
                                                "source_system string, source_record_id string")
        state_changes = StateChanges(fresh, changed.select(*KEYS).unionByName(reread_null_ids),
                                     stored_version)
    counts = (_derived_counts(stored_counts, replaced_counts, _counts(fresh), kept_sources)
              if stored_counts is not None and all(name in stored_counts for name in kept_sources)
              else _counts(standardised))
    for source_system, rows in ((name, future.result()) for name, future in rows_now.items()):
        derived = counts.get(source_system, {}).get("records_read", 0)
        if derived != rows:
            raise DataQualityError(f"source {source_system}: accounting: the table has {rows} records but the "
                                   f"last run's records and the changes give {derived}; run a full link")
    return PreparedInput(standardised, [s for _, s in reads], counts, profiles, state_changes)


def _rows_now(reads: list[tuple[DataFrame, SourceSnapshot]], changes: dict[str, Changes],
              stored_counts: dict[str, dict[str, Any]] | None) -> dict[str, Future]:
    """Each source's row count at the version read, counted while the changes are standardised.

    A source whose log shows nothing since the last run but appended files has the last run's count plus the rows
    the log's statistics give those files (what Delta's own count adds up, without the two Spark jobs per source
    that rebuild the table's state); an unchanged source has the last run's count. Delta counts the others.
    """
    def count(raw: DataFrame, found: Changes, last: dict[str, Any] | None) -> int:
        if last is not None and found.how == "unchanged":
            return int(last["records_read"])
        if last is not None and found.appended_records is not None:
            return int(last["records_read"]) + found.appended_records
        return raw.count()

    pool = ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="bold-counts")
    rows = {snapshot.source_system: pool.submit(count, raw, changes[snapshot.source_system],
                                                (stored_counts or {}).get(snapshot.source_system))
            for raw, snapshot in reads}
    pool.shutdown(wait=False)  # the submitted counts still run; results are read by the caller
    return rows


def _derived_counts(stored: dict[str, dict[str, Any]], replaced: dict[str, dict[str, Any]],
                    fresh: dict[str, dict[str, Any]], kept_sources: list[str]) -> dict[str, dict[str, Any]]:
    """Per-source counts (as ``source_counts``): ``stored`` - ``replaced`` + ``fresh``; ``stored`` counts only for
    ``kept_sources``. Sources left with no record have no entry, as in ``source_counts``."""
    def combine(source: str, key: str):
        parts = [(1, stored.get(source, {}) if source in kept_sources else {}), (-1, replaced.get(source, {})),
                 (1, fresh.get(source, {}))]
        if key == "invalid_values":
            fields = {field for _, c in parts for field in (c.get(key) or {})}
            return {field: sum(sign * int((c.get(key) or {}).get(field, 0)) for sign, c in parts)
                    for field in sorted(fields)}
        return sum(sign * int(c.get(key) or 0) for sign, c in parts)

    counts = {source: {"source_system": source, **{key: combine(source, key) for key in COUNT_COLUMNS}}
              for source in {*kept_sources, *fresh}}
    return {source: c for source, c in counts.items() if c["records_read"] > 0}


def changed_ids(changes: dict[str, Changes]) -> DataFrame:
    return reduce(DataFrame.unionByName, [found.ids for found in changes.values()])


def _rows_with_ids(raw: DataFrame, source: SourceConfig, ids: DataFrame) -> DataFrame:
    """Rows of ``raw`` whose record id (in standardisation's text form) is one of the source's ``ids``."""
    mine = ids.where(F.col("source_system") == source.name).select(F.col("source_record_id").alias("_bold_rid"))
    return (raw.withColumn("_bold_rid", _as_text(raw, source.record_id))
            .join(mine, "_bold_rid", how="left_semi").drop("_bold_rid"))


def _rows_of_ids(raw: DataFrame, source: SourceConfig, ids: DataFrame) -> DataFrame:
    """Rows of ``raw`` whose record id is one of the source's ``ids``, and rows with no id."""
    return _rows_with_ids(raw, source, ids).unionByName(raw.where(_as_text(raw, source.record_id).isNull()))


def _appended_rows(raw: DataFrame, source: SourceConfig, found: Changes, stored: DataFrame, *,
                   repeats: bool) -> DataFrame:
    """The rows of the appended files, and (``repeats``) the earlier copies of the appended ids the last run
    already had."""
    appended = found.appended_rows if found.appended_rows is not None else rows_in_files(raw, found.appended_files)
    if not repeats:
        return appended
    repeated = found.ids.join(stored.where(F.col("source_system") == source.name).select(*KEYS), KEYS,
                              how="left_semi")
    log.info("source %s: appended records repeat ids the last run had; reading their earlier copies", source.name)
    earlier = _rows_with_ids(rows_in_files(raw, found.appended_files, inside=False), source, repeated)
    return appended.unionByName(earlier)


def _inputs_for_record(prepared: PreparedInput) -> list[dict[str, Any]]:
    return [{"source_system": s.source_system, "table": s.table, "delta_version": s.delta_version,
             "partition_filter": s.partition_filter, **{k: v for k, v in prepared.counts[s.source_system].items()
                                                        if k != "source_system"}}
            for s in prepared.snapshots]


def write_review_queue(edges: DataFrame, crosswalk: DataFrame, accepted: DataFrame, config: JobConfig, *,
                       run_id: str, decided: DataFrame | None) -> None:
    """Replace <database>.<review_queue> with this run's queue (bold_spark/review/queue.py)."""
    queue = review_queue(edges, crosswalk, accepted, threshold=config.linkage.cluster_threshold,
                         settings=config.review, implausible_size=config.quality.implausible_cluster_size,
                         run_id=run_id, decided=decided)
    overwrite_table(queue, config.output.qualified("review_queue"))


def record_run(spark: SparkSession, config: JobConfig, record: RunRecord) -> None:
    ensure_database(spark, config.output)
    # Totals over the sources, so "read = crosswalk + rejects" is one query on bold.link_runs.
    totals = {key: (sum(int(i.get(key) or 0) for i in record.inputs) if record.inputs else None)
              for key in ("records_read", "records_rejected")}
    row = spark.createDataFrame([{**record.as_row(), **totals}], schema=LINK_RUNS)
    append_table(row, config.output.qualified("link_runs"))


def _activity(spark: SparkSession) -> tuple[int, int] | None:
    """session.spark_activity, or None once the session is gone (a failed run): counting must not hide its error."""
    try:
        return spark_activity(spark)
    except Exception:
        return None


@contextmanager
def recorded_run(spark: SparkSession, config: JobConfig, record: RunRecord) -> Iterator[RunRecord]:
    """Record the run in bold.link_runs whether it succeeds or fails (failures keep only our own messages)."""
    record.activity = lambda: _activity(spark)
    record.progress = lambda name: progress_logged(spark.sparkContext, stage=name, every=config.progress_seconds)
    before = _activity(spark)
    try:
        yield record
        record.status = record.status_on_success
    except BaseException as exc:
        record.status = "failed"
        # Our messages carry no personal values; Spark's might (they can quote data), so only its class is kept.
        record.message = str(exc) if isinstance(exc, BoldSparkError) else type(exc).__name__
        # Where it failed, not what Spark said (its messages can quote data values).
        log.debug("run %s failed with %s at:\n%s", record.run_id, type(exc).__name__,
                  "".join(traceback.format_tb(exc.__traceback__)))
        raise
    finally:
        after = _activity(spark) if before else None
        if before and after:
            record.spark_sql_executions, record.spark_jobs = after[0] - before[0], after[1] - before[1]
            log.info("run %s: %d Spark SQL executions, %d Spark jobs", record.run_id, record.spark_sql_executions,
                     record.spark_jobs)
        try:
            record_run(spark, config, record)
        except Exception:  # recording must not hide the run's own error
            log.exception("could not record run %s in %s", record.run_id, config.output.qualified("link_runs"))


def train_model(spark: SparkSession, config: JobConfig, *, run_id: str | None = None) -> RunRecord:
    """Estimate the model on the configured sources and save it (JSON + what it was trained on)."""
    record = RunRecord(run_id or new_run_id(), "train", config.digest(), spark.sparkContext.master)
    with recorded_run(spark, config, record):
        with record.stage("read_standardise"):
            prepared = prepare_input(spark, config)
            record.inputs = _inputs_for_record(prepared)
        persons = splink_model.training_sample(
            accepted_records(prepared.standardised).transform(splink_model.add_linkage_columns),
            records=sum(c["records_accepted"] for c in prepared.counts.values()),
            max_records=config.linkage.training.max_records)
        workspace = splink_model.open_workspace(
            spark, persons, settings=splink_model.settings_for_training(config.linkage, where=str(config.file)),
            linkage=config.linkage, scratch_dir=str(config.scratch_dir), run_id=record.run_id)
        try:
            with record.stage("train"):
                trained = splink_model.train(workspace, config.linkage)
        finally:
            workspace.close()
            prepared.release()
        metadata = {"trained_at": datetime.now(timezone.utc).isoformat(), "run_id": record.run_id,
                    "config_digest": record.config_digest, "inputs": record.inputs,
                    "prediction_settings": splink_model.prediction_settings(config.linkage)}
        record.model_id = splink_model.save_model(trained, metadata, config.linkage.model_path)
        log.info("model %s saved to %s", record.model_id, config.linkage.model_path)
    return record


def ensure_model(spark: SparkSession, config: JobConfig, *, train_if_missing: bool) -> RunRecord | None:
    """Train and save a model first when none exists, or the saved one no longer fits the configured comparisons
    (or is not a model at all), and the caller allows it (``--train-if-missing``, ``make demo``'s first run).
    The training run's record, or None when nothing was trained."""
    reasons = splink_model.reasons_to_train(config.linkage) if train_if_missing else []
    if not reasons:
        return None
    log.info("training a model first: %s", "; ".join(reasons))
    return train_model(spark, config)


def link(spark: SparkSession, config: JobConfig, *, run_id: str | None = None, as_of: str | None = None) -> RunRecord:
    """Score with the saved model, cluster, and publish crosswalk, edges and rejects as Delta transactions."""
    record = RunRecord(run_id or new_run_id(), "link", config.digest(), spark.sparkContext.master)
    out = config.output
    with recorded_run(spark, config, record):
        settings = record.use_model(config)
        with record.stage("read_standardise"):
            prepared = prepare_input(spark, config, as_of=as_of)
            record.inputs = _inputs_for_record(prepared)
        persons = accepted_records(prepared.standardised).transform(splink_model.add_linkage_columns)
        scoring = splink_model.Scoring(spark, persons, settings=settings, linkage=config.linkage,
                                       scratch_dir=str(config.scratch_dir), run_id=record.run_id)
        try:
            with record.stage("blocking"):
                # Block sizes first (one aggregate, no join), so a rule that would explode stops the run here.
                record.blocking_estimates = splink_model.estimate_blocking(persons, config.linkage)
                splink_model.check_comparison_budget(persons, config.linkage, estimates=record.blocking_estimates)
            with record.stage("scoring"):
                edges = conform(
                    scoring.edges(threshold=config.linkage.edge_threshold).withColumn("run_id", F.lit(record.run_id)),
                    MATCH_EDGES,
                ).persist(StorageLevel.MEMORY_AND_DISK)
                record.edges_recorded = edges.count()
                record.comparisons_scored = scoring.pairs_scored()
            accepted_frame = prepared.standardised.where(F.col("reject_reason").isNull())
            model_json = splink_model.load_model_json(config.linkage.model_path)  # the loader that says to retrain
            with record.stage("clustering"):
                rules = pair_rules(config.constraints, model_json) if config.constraints.must_agree else ()
                # Reviewers' decisions (bold_spark/review/apply.py): must_link as edges, cannot_link kept apart.
                decisions = applicable_decisions(read_decisions(spark, out),
                                                 accepted_frame.select("source_system", "source_record_id"))
                previous = history.previous_crosswalk(spark, out)
                # Ids carried forward from the published crosswalk (pinned version); see crosswalk/stable_ids.py.
                crosswalk, events, splits = build_crosswalk(
                    clustering_input(with_compared_columns(accepted_frame, rules), config.constraints, rules),
                    edges if decisions is None else edges.unionByName(decisions.must_link_edges(run_id=record.run_id)),
                    threshold=config.linkage.cluster_threshold, run_id=record.run_id,
                    previous=previous, issued=history.issued_cluster_ids(spark, out),
                    at=record.started_at, constraints=config.constraints, rules=rules,
                    cannot_link=None if decisions is None else decisions.cannot_link(),
                    best_link_only_below=config.linkage.best_link_only_below)
                record.constraints = summarise_splits(splits, config.constraints, decisions=decisions is not None)
                record.count_decisions(decisions, record.constraints)
                # Checkpointed (run scratch dir), not only cached: their plans read the crosswalk and cluster_events
                # they will overwrite, which Spark refuses; a checkpoint cuts that lineage.
                crosswalk = crosswalk.checkpoint()
                events = with_decision_reasons(events, decisions, previous=previous, current=crosswalk).checkpoint()
                record.review_decisions_unmet = count_unmet(decisions, crosswalk)
                totals = crosswalk.agg(F.count(F.lit(1)).alias("rows"),
                                       F.countDistinct("cluster_id").alias("clusters")).first()  # bounded
                record.crosswalk_rows, record.clusters = int(totals["rows"]), int(totals["clusters"])
            # Accounting: every record read (counted on the raw tables by validation) is in the crosswalk or rejects.
            accepted = sum(c["records_accepted"] for c in prepared.counts.values())
            read = sum(p.rows for p in prepared.profiles.values())
            rejected = sum(c["records_rejected"] for c in prepared.counts.values())
            if record.crosswalk_rows != accepted or read != record.crosswalk_rows + rejected:
                raise DataQualityError(f"accounting: {read} records read, {accepted} accepted, "
                                       f"{record.crosswalk_rows} crosswalk rows and {rejected} rejects; "
                                       "nothing was published")
            with record.stage("quality"):
                # Measured before anything is written: the gate compares with the crosswalk published now.
                groups = record_groups(prepared.standardised, as_of=as_of_date(as_of)).persist()
                published = gate.previous_published(spark, out)
                quality = run_quality(edges, crosswalk, accepted_frame, run_id=record.run_id, settings=config.quality,
                                      groups=groups, model=model_json,
                                      previous_crosswalk=published.crosswalk if published else None,
                                      constraints=config.constraints, splits=record.constraints)
                decision = gate.decide(quality, published.quality if published else None, config.publish_gate,
                                       constraints=config.constraints)
            with record.stage("writing"):
                ensure_database(spark, out)
                writes = {
                    "match_edges": lambda: overwrite_table(edges, out.qualified("match_edges")),
                    "rejects": lambda: overwrite_table(rejected_records(prepared.standardised, run_id=record.run_id),
                                                       out.qualified("rejects"), partition_by=["source_system"]),
                    "run_quality": lambda: write_run_quality(spark, out, quality),
                }
                if not config.privacy.pseudonymise:  # incremental runs need the sources' own ids; these have none
                    writes["state"] = lambda: write_state(prepared.standardised, config, run_id=record.run_id)
                writes["review_queue"] = lambda: write_review_queue(
                    edges, crosswalk, accepted_frame, config, run_id=record.run_id,
                    decided=None if decisions is None else decisions.pairs)
                if decision.publish:  # a held run's groups go with its candidate crosswalk (gate.write_crosswalk)
                    writes["record_groups"] = lambda: gate.write_record_groups(groups, out)
                write_concurrently(writes)
                if decision.publish:
                    # Published last, in one transaction: readers see the previous crosswalk or this one; then
                    # its cluster_events (so events never describe a crosswalk that was not published).
                    history.publish_crosswalk(crosswalk, events, out, run_id=record.run_id)
                    publish_views(spark, config)
                else:
                    gate.write_crosswalk(crosswalk, out, decision, events=events, groups=groups)
                    record.status_on_success = "held"
                record.message = decision.message()
            with record.stage("report"):
                samples = sample_edges(edges, n=config.report.sample_edges, persons=accepted_frame,
                                       show_personal_values=config.report.show_personal_values)
                record.report_path = str(write_report(
                    render_report(quality, samples=samples, show_personal_values=config.report.show_personal_values,
                                  decision=decision), config.report.directory, record.run_id))
            groups.unpersist()
            edges.unpersist()
            crosswalk.unpersist()
            events.unpersist()
        finally:
            scoring.close()
            prepared.release()
    return record
