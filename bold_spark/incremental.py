"""Incremental link: score only what changed since the last successful run and update the clusters it touches.

1. Record ids that changed in each source since the Delta versions the last successful run recorded come from the
   change data feed or a diff of the changed data files (bold_spark/io/changes.py).
2. The input is the last run's stored standardised records (bold_spark/io/state.py) with only the changed ids'
   rows read and standardised again (pipeline.prepare_changed_input); without stored records every source is
   standardised. Term frequencies and the "existing population" need all of it.
3. Dirty records: changed ids, plus records that entered or left the accepted set (new, deleted, now rejected).
4. Pairs with a dirty side are scored with the saved model (predict_between dirty x rest, predict_within dirty).
5. Affected clusters: previous clusters holding a dirty record or an end of a new edge at cluster_threshold.
   Their components are recomputed from the edge store (old edges without a dirty side + the new edges), and ids
   are carried forward within them by ``assign_stable_ids``. Other clusters cannot change: no edge at the
   threshold joins them to anything that changed.
6. bold.match_edges and bold.crosswalk are updated with one Delta MERGE each (edges of dirty records removed, new
   ones added; affected records upserted, records gone from the input deleted), and so are the stored records
   (bold_spark/io/state.py); rejects are replaced; events follow the crosswalk. The tables are written side by
   side, each in its own transaction. Deletion vectors keep each MERGE from rewriting the unchanged rows.
   Crosswalk rows of untouched clusters keep the run_id of the run that last assigned them.

Differences from a full run on the same data: pairs between two unchanged records keep the scores they got when
they were scored, while a full run rescores them with term frequencies of the current population; a pair whose
probability crosses cluster_threshold only through that shift clusters differently. An unchanged record keeps the
validation verdict it was stored with (a date of birth after the run date is not judged again as days pass). Both
runs carry ids forward, but over different histories, so compare partitions of records, not ids.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.broadcast import small_side
from bold_spark.config import JobConfig, OutputTables
from bold_spark.clustering.constrained import (
    clustering_input,
    pair_rules,
    summarise as summarise_splits,
    with_compared_columns,
)
from bold_spark.crosswalk.build import cluster_records, finish_crosswalk
from bold_spark.crosswalk.stable_ids import assign_stable_ids
from bold_spark.errors import ConfigError, DataQualityError
from bold_spark.io import history
from bold_spark.io.changes import Changes, changed_record_ids
from bold_spark.io.delta import ensure_database, overwrite_table, write_concurrently
from bold_spark.linkage import model as splink_model
from bold_spark.io.state import read_state, state_path, update_state
from bold_spark.pipeline import (
    RunRecord,
    _inputs_for_record,
    as_of_date,
    changed_ids,
    new_run_id,
    prepare_changed_input,
    prepare_input,
    read_sources,
    recorded_run,
    write_review_queue,
)
from bold_spark.quality.gate import write_record_groups
from bold_spark.quality.groups import record_groups
from bold_spark.review.apply import applicable_decisions, count_unmet, unmet, with_decision_reasons
from bold_spark.review.decisions import read_decisions
from bold_spark.schemas import CROSSWALK, MATCH_EDGES, conform
from bold_spark.standardise.person import accepted_records, rejected_records

log = logging.getLogger(__name__)

KEYS = ["source_system", "source_record_id"]
EDGE_KEYS = ["source_system_l", "source_record_id_l", "source_system_r", "source_record_id_r"]


def dirty_records(changed: DataFrame, previous_keys: DataFrame, accepted_keys: DataFrame) -> DataFrame:
    """(source_system, source_record_id): changed at source, or entered / left the accepted set since last run."""
    left = previous_keys.join(accepted_keys, KEYS, how="left_anti")
    entered = accepted_keys.join(previous_keys, KEYS, how="left_anti")
    return changed.select(*KEYS).unionByName(left.select(*KEYS)).unionByName(entered.select(*KEYS)).distinct()


def _side(edges: DataFrame, side: str) -> DataFrame:
    return edges.select(F.col(f"source_system_{side}").alias("source_system"),
                        F.col(f"source_record_id_{side}").alias("source_record_id"))


def _join_side(edges: DataFrame, records: DataFrame, side: str, *, how: str, small: bool = False,
               carry: tuple[str, ...] = ()) -> DataFrame:
    """``edges`` joined (``how``) with ``records(source_system, source_record_id, *carry)`` on side ``side``'s
    keys."""
    keys = [f"source_system_{side}", f"source_record_id_{side}"]
    renamed = records.select(*KEYS, *carry).toDF(*keys, *carry)
    return edges.join(F.broadcast(renamed) if small else renamed, keys, how=how)


def edges_touching(edges: DataFrame, records: DataFrame) -> DataFrame:
    """Keys (EDGE_KEYS) of the edges with at least one side in ``records(source_system, source_record_id)`` (keys
    distinct): one pass over the edges, each side looked up in the records (broadcast when they are hinted)."""
    looked_up = edges.select(*EDGE_KEYS)
    for side in ("l", "r"):
        looked_up = _join_side(looked_up, records.withColumn(f"_bold_on_{side}", F.lit(True)), side, how="left",
                               carry=(f"_bold_on_{side}",))
    return looked_up.where(F.col("_bold_on_l") | F.col("_bold_on_r")).select(*EDGE_KEYS)


def _edges_within(edges: DataFrame, records: DataFrame) -> DataFrame:
    """The edges with both ends in ``records(source_system, source_record_id)`` (a small set: broadcast)."""
    for side in ("l", "r"):
        edges = _join_side(edges, records, side, how="left_semi", small=True)
    return edges


def current_edges(old_edges: DataFrame, new_edges: DataFrame, dirty: DataFrame) -> DataFrame:
    """The edge store after this run: old edges with no dirty side, plus the new edges (which all have one)."""
    keep = old_edges
    for side in ("l", "r"):
        keep = _join_side(keep, dirty, side, how="left_anti")
    return conform(keep, MATCH_EDGES).unionByName(conform(new_edges, MATCH_EDGES))


def edge_changes(old_edges: DataFrame, new_edges: DataFrame, dirty: DataFrame) -> DataFrame:
    """MATCH_EDGES + _op: upsert every new edge, delete every old edge with a dirty side that was not rescored."""
    gone = edges_touching(old_edges, dirty).join(
        new_edges.select(*EDGE_KEYS), EDGE_KEYS, how="left_anti")
    deletes = gone.select(*EDGE_KEYS, *[F.lit(None).cast(f.dataType).alias(f.name) for f in MATCH_EDGES.fields
                                        if f.name not in EDGE_KEYS], F.lit("delete").alias("_op"))
    return conform(new_edges, MATCH_EDGES).withColumn("_op", F.lit("upsert")).unionByName(deletes)


def affected_clusters(previous: DataFrame, dirty: DataFrame, new_edges: DataFrame, dirty_gone: DataFrame, *,
                      threshold: float) -> tuple[DataFrame, DataFrame]:
    """(previous rows of the clusters this run must recompute, records to cluster: their accepted members + dirty).

    Seeds are the dirty records and both ends of every new edge at ``threshold``; a seed's whole previous cluster
    is recomputed. ``dirty_gone``: the dirty records no longer accepted. Every record that left the accepted set
    is dirty, so the others are accepted, and the whole population is never joined.
    """
    strong = new_edges.where(F.col("match_probability") >= threshold)
    seeds = dirty.select(*KEYS).unionByName(_side(strong, "l")).unionByName(_side(strong, "r"))
    ids = previous.join(seeds, KEYS, how="left_semi").select("cluster_id").distinct()
    prev_affected = previous.join(ids, "cluster_id", how="left_semi").select(*KEYS, "cluster_id")
    nodes = (prev_affected.select(*KEYS).unionByName(seeds).distinct()
             .join(dirty_gone, KEYS, how="left_anti"))
    return prev_affected, nodes


def crosswalk_changes(rows: DataFrame, previous: DataFrame, dirty_gone: DataFrame) -> DataFrame:
    """CROSSWALK + _op: upsert the recomputed rows, delete previous rows whose record is no longer accepted (all of
    them dirty: ``dirty_gone``)."""
    gone = previous.select(*KEYS).join(dirty_gone, KEYS, how="left_semi")
    deletes = gone.select(*KEYS, *[F.lit(None).cast(f.dataType).alias(f.name) for f in CROSSWALK.fields
                                   if f.name not in KEYS], F.lit("delete").alias("_op"))
    return conform(rows, CROSSWALK).withColumn("_op", F.lit("upsert")).unionByName(deletes)


def _check_resumable(config: JobConfig, last: dict | None, model_id: str, crosswalk: DataFrame | None,
                     edges: DataFrame | None) -> dict:
    out = config.output
    if last is None or crosswalk is None or edges is None:
        raise DataQualityError(f"incremental link: no successful link run in {out.qualified('link_runs')} with "
                               f"{out.qualified('crosswalk')} and {out.qualified('match_edges')}; run a full link "
                               "first (jobs/link.py without --incremental)")
    if last["model_id"] != model_id:
        raise DataQualityError(f"incremental link: linkage.model_path holds model {model_id} but run "
                               f"{last['run_id']} used {last['model_id']}; a new model needs a full link")
    if last["config_digest"] != config.digest():
        raise DataQualityError(f"incremental link: {config.file}: the configuration changed since run "
                               f"{last['run_id']} (digest {last['config_digest']}); run a full link")
    return last


def link_incremental(spark: SparkSession, config: JobConfig, *, run_id: str | None = None,
                     as_of: str | None = None) -> RunRecord:
    """Link what changed since the last successful link run and MERGE the result into crosswalk and edges."""
    record = RunRecord(run_id or new_run_id(), "link_incremental", config.digest(), spark.sparkContext.master)
    out = config.output
    if config.privacy.pseudonymise:  # changes are found by the sources' own record ids, which the tables no longer hold
        raise ConfigError(f"{config.file}: privacy.pseudonymise: incremental runs need the sources' record ids in the "
                          "crosswalk; run a full link (jobs/link.py without --incremental)")
    threshold = config.linkage.cluster_threshold
    with recorded_run(spark, config, record):
        settings = record.use_model(config)
        with record.stage("changes"), ThreadPoolExecutor(max_workers=1, thread_name_prefix="bold-sources") as pool:
            # The sources' logs are read while the catalog starts and the last run is looked up (driver latency).
            pending_reads = pool.submit(read_sources, spark, config)
            previous = history.pinned_table(spark, out.qualified("crosswalk"))
            old_edges = history.pinned_table(spark, out.qualified("match_edges"))
            last = _check_resumable(config, history.last_successful_link(spark, out), record.model_id, previous,
                                    old_edges)
            reads = pending_reads.result()
        # Checkpoints of this run's input and dirty set: deleted when the run ends.
        with splink_model.checkpoints_under(spark, f"{str(config.scratch_dir).rstrip('/')}/{record.run_id}-input"):
            with record.stage("changes"):  # the stage goes on: RunRecord.stage adds up its parts
                changes = _find_changes(spark, config, reads, last)
                # One checkpoint for every later use: the diffs' plans are long, the ids few.
                changed = changed_ids(changes).checkpoint()
                changes = {name: found._replace(ids=changed.where(F.col("source_system") == name))
                           for name, found in changes.items()}
                changed_rows = changed.count()
                log.info("incremental link: %d changed record ids since run %s (%s)", changed_rows,
                         last["run_id"], ", ".join(f"{k}: {v.how}" for k, v in changes.items()))
            with record.stage("read_standardise"):
                stored = read_state(spark, config, run_id=last["run_id"])
                if stored is None:
                    log.warning("incremental link: run %s's standardised records are not in %s; standardising "
                                "every source", last["run_id"], state_path(config))
                    prepared = prepare_input(spark, config, as_of=as_of, reads=reads)
                else:
                    prepared = prepare_changed_input(spark, config, reads, stored_records=stored, changes=changes,
                                                     as_of=as_of, changed_rows=changed_rows,
                                                     stored_counts=last["counts"])
                record.inputs = _inputs_for_record(prepared)
                restandardised = sum(p.rows for p in prepared.profiles.values())
                record.message = (f"changes by source: {', '.join(f'{k}: {v.how}' for k, v in changes.items())}; "
                                  f"{restandardised} records read and standardised"
                                  + ("" if stored is not None else " (no stored records of the last run)"))
                persons = accepted_records(prepared.standardised).transform(splink_model.add_linkage_columns)
                accepted_keys = persons.select(*KEYS)
                if stored is not None and not any(c.how == "all" for c in changes.values()):
                    # Outside the changes every record keeps the last run's standardised row, so its acceptance too.
                    configured = [s.name for s in config.sources]
                    dirty = changed.unionByName(previous.where(~F.col("source_system").isin(configured))
                                                .select(*KEYS)).distinct().checkpoint()
                else:
                    dirty = dirty_records(changed, previous.select(*KEYS), accepted_keys).checkpoint()
                decisions = applicable_decisions(read_decisions(spark, out), accepted_keys)
                if decisions is not None:  # decisions the published clusters do not meet yet (new ones): their
                    # records are relinked like changed ones, so the clusters holding them are recomputed
                    dirty = dirty.unionByName(_sides(unmet(decisions, previous))).distinct().checkpoint()
                dirty_count = dirty.count()
                log.info("incremental link: %d records to relink", dirty_count)
            try:
                record.count_decisions(decisions, None)
                if dirty_count == 0:
                    _publish_nothing(record, previous)
                    record.review_decisions_unmet = None if decisions is None else 0
                    _store_records(prepared, config, record.run_id)  # the next run starts here
                    return record
                _relink(spark, config, record, persons, dirty, dirty_count, previous, old_edges, prepared, settings,
                        threshold, decisions, as_of=as_of)
            finally:
                prepared.release()
    return record


def _find_changes(spark: SparkSession, config: JobConfig, reads: list, last: dict) -> dict[str, Changes]:
    """Each source's changes since the last run, found side by side (mostly Delta log reads: driver latency)."""
    def find(source, snapshot) -> Changes:
        same_filter = last["filters"].get(source.name) == source.partition_filter
        return changed_record_ids(spark, source, to_version=snapshot.delta_version,
                                  from_version=last["versions"].get(source.name) if same_filter else None)

    with ThreadPoolExecutor(max_workers=len(config.sources), thread_name_prefix="bold-changes") as pool:
        futures = {source.name: pool.submit(find, source, snapshot)
                   for source, (_, snapshot) in zip(config.sources, reads)}
    return {name: future.result() for name, future in futures.items()}


def _store_records(prepared, config: JobConfig, run_id: str) -> None:
    how = update_state(prepared.state_changes, prepared.standardised, config, run_id=run_id)
    log.info("incremental link: stored records %s", how)


def _publish_changes(xw_changes: DataFrame, events: DataFrame, out: OutputTables, *, run_id: str) -> None:
    """The crosswalk in one MERGE transaction, then the events that describe it (never events without it)."""
    history.merge_changes(xw_changes, out.qualified("crosswalk"), keys=KEYS)
    history.write_events(events, out, run_id=run_id)


def _publish_nothing(record: RunRecord, previous: DataFrame) -> None:
    totals = previous.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("cluster_id").alias("clusters")).first()
    record.crosswalk_rows, record.clusters, record.edges_recorded = int(totals["rows"]), int(totals["clusters"]), 0


def _sides(pairs: DataFrame) -> DataFrame:
    """(source_system, source_record_id) of both sides of ``pairs`` (EDGE_KEYS)."""
    return _side(pairs, "l").unionByName(_side(pairs, "r"))


def _relink(spark, config, record, persons, dirty_keys, dirty_count, previous, old_edges, prepared, settings,
            threshold, decisions=None, *, as_of: str | None = None) -> None:
    """``dirty_keys``: the ``dirty_count`` records to relink. Joins take them (and the frames derived from them)
    hinted for broadcast when few enough; a hint anywhere but a join's right side only makes Spark log a warning."""
    out = config.output
    dirty = small_side(dirty_keys, dirty_count)
    with record.stage("scoring"):  # the linkage input is part of it, as in a full run's stages
        # Materialised once: every blocking rule joins both sides, and TF tables read the whole population.
        persons = persons.checkpoint()
        scoring = splink_model.Scoring(spark, persons, settings=settings, linkage=config.linkage,
                                       scratch_dir=str(config.scratch_dir), run_id=record.run_id)
    try:
        with record.stage("scoring"):
            changed_keys = persons.join(dirty, KEYS, how="left_semi").select(*KEYS).checkpoint()
            changed_rows = changed_keys.count()
            log.info("incremental link: %d accepted records to score against the rest", changed_rows)
            # Deleted or now rejected.
            dirty_gone = dirty_keys.join(changed_keys, KEYS, how="left_anti").checkpoint()
            dirty_gone = small_side(dirty_gone, dirty_gone.count())
            new_edges = conform(
                scoring.edges(threshold=config.linkage.edge_threshold, changed=changed_keys, changed_rows=changed_rows)
                .withColumn("run_id", F.lit(record.run_id)), MATCH_EDGES).persist(StorageLevel.MEMORY_AND_DISK)
            record.edges_recorded = new_edges.count()
            record.comparisons_scored = scoring.pairs_scored()
        with record.stage("clustering"):
            edges_now = current_edges(old_edges, new_edges, dirty)
            prev_affected, nodes = affected_clusters(previous, dirty_keys, new_edges, dirty_gone,
                                                     threshold=threshold)
            # Checkpoints (run scratch dir) keep each later plan small; planning the whole chain again per action
            # cost minutes on a busy machine.
            prev_affected, nodes = prev_affected.checkpoint(), nodes.checkpoint()
            # Every id already in the crosswalk is taken, not only the affected ones; and so is every id ever issued.
            issued = previous.select("cluster_id")
            events_so_far = history.issued_cluster_ids(spark, out)
            if events_so_far is not None:
                issued = issued.unionByName(events_so_far)
            # Every edge at the threshold that touches a node has both ends among the nodes (an old one joins
            # members of one previous cluster, a new one joins two seeds): clustering and best edges need no other.
            # Under constraints an old edge may join two previous clusters a constraint kept apart; when only one
            # of them is affected the edge is left out, and the other keeps its cluster (the constraint still holds).
            # A reviewer's must_link is an edge of probability 1 (bold_spark/review/apply.py); both its records are
            # seeds whenever it is not met yet, and in one previous cluster once it is.
            clustered_edges = (edges_now if decisions is None
                               else edges_now.unionByName(decisions.must_link_edges(run_id=record.run_id)))
            strong = _edges_within(clustered_edges.where(F.col("match_probability") >= threshold), nodes).checkpoint()
            clustering_nodes, rules = nodes, ()
            if config.constraints.any:  # a record gone from the sources has no constraint columns: constrains nothing
                rules = (pair_rules(config.constraints, splink_model.load_model_json(config.linkage.model_path))
                         if config.constraints.must_agree else ())
                accepted_now = with_compared_columns(prepared.standardised.where(F.col("reject_reason").isNull()),
                                                     rules)
                clustering_nodes = nodes.join(clustering_input(accepted_now, config.constraints, rules), KEYS,
                                              how="left")
            clusters = cluster_records(clustering_nodes, strong, threshold=threshold, constraints=config.constraints,
                                       rules=rules, cannot_link=None if decisions is None else decisions.cannot_link(),
                                       best_link_only_below=config.linkage.best_link_only_below)
            components = clusters.records.checkpoint()
            record.constraints = summarise_splits(clusters.splits, config.constraints,
                                                  decisions=decisions is not None)
            record.count_decisions(decisions, record.constraints)
            assignment = assign_stable_ids(components, prev_affected, run_id=record.run_id, issued=issued,
                                           at=record.started_at, reuse=lambda frame: frame.checkpoint())
            rows = finish_crosswalk(assignment.crosswalk_ids, strong, threshold=threshold, run_id=record.run_id,
                                    split=clusters.splits is not None).checkpoint()
            xw_changes = crosswalk_changes(rows, previous, dirty_gone).checkpoint()
            # Its plan reads cluster_events, which it replaces rows of: checkpointed.
            events = with_decision_reasons(assignment.events, decisions, previous=previous,
                                           current=assignment.crosswalk_ids).checkpoint()
            if decisions is not None:  # the records of untouched clusters keep their previous cluster
                now = (previous.select(*KEYS, "cluster_id").join(rows.select(*KEYS), KEYS, how="left_anti")
                       .unionByName(rows.select(*KEYS, "cluster_id")))
                record.review_decisions_unmet = count_unmet(decisions, now)
            ops = xw_changes.agg(F.count(F.when(F.col("_op") == "delete", 1)).alias("deleted"),
                                 F.count(F.when(F.col("_op") == "upsert", 1)).alias("upserted")).first()  # one row
            upserts = xw_changes.where(F.col("_op") == "upsert").select(*KEYS)
            already = previous.join(small_side(upserts, int(ops["upserted"])), KEYS, how="left_semi").count()
            inserted = int(ops["upserted"]) - already
            record.crosswalk_rows = previous.count() - int(ops["deleted"]) + inserted
            log.info("incremental link: %d crosswalk rows recomputed, %d added, %d removed", ops["upserted"],
                     inserted, ops["deleted"])
        accepted = sum(c["records_accepted"] for c in prepared.counts.values())
        if record.crosswalk_rows != accepted:
            raise DataQualityError(f"accounting: {accepted} accepted records but the crosswalk would have "
                                   f"{record.crosswalk_rows} rows after this run; nothing was published")
        with record.stage("writing"):
            ensure_database(spark, out)
            # Each table is its own transaction, side by side. If one fails after another committed, the run is
            # recorded as failed and the next run relinks the same changes (every write here is idempotent).
            write_concurrently({
                "match_edges": lambda: history.merge_changes(edge_changes(old_edges, new_edges, dirty),
                                                             out.qualified("match_edges"), keys=EDGE_KEYS),
                "rejects": lambda: overwrite_table(rejected_records(prepared.standardised, run_id=record.run_id),
                                                   out.qualified("rejects"), partition_by=["source_system"]),
                "state": lambda: _store_records(prepared, config, record.run_id),
                # Every current record's groups, as a full run writes them: the views read them beside the crosswalk,
                # so records that arrived in this run are counted in their region and age band, not as unknown.
                "record_groups": lambda: write_record_groups(
                    record_groups(prepared.standardised, as_of=as_of_date(as_of)), out),
                "crosswalk": lambda: _publish_changes(xw_changes, events, out, run_id=record.run_id),
            })
            # A cluster of size s has s rows: clusters counted from rows per size, without a shuffle of a million ids.
            by_size = (spark.table(out.qualified("crosswalk")).groupBy("cluster_size")
                       .agg(F.count(F.lit(1)).alias("rows")).collect())  # bounded: one row per cluster size
            record.clusters = sum(row["rows"] // row["cluster_size"] for row in by_size)
            # The queue from the tables as they are now: the edge store and crosswalk after the MERGEs.
            write_review_queue(spark.table(out.qualified("match_edges")), spark.table(out.qualified("crosswalk")),
                               prepared.standardised.where(F.col("reject_reason").isNull()), config,
                               run_id=record.run_id, decided=None if decisions is None else decisions.pairs)
        new_edges.unpersist()
    finally:
        scoring.close()
