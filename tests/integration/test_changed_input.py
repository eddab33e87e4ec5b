"""An incremental run's input: the last run's stored records plus what changed must equal standardising every
source again, record for record, and a change the run did not see must stop it."""
from __future__ import annotations

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, functions as F

from bold_spark import pipeline
from bold_spark.errors import DataQualityError
from bold_spark.io.changes import Changes, changed_record_ids
from bold_spark.io.state import StateChanges, read_state, update_state, write_state
from bold_spark.standardise.person import REASON_DUPLICATE_ID, REASON_NULL_ID
from bold_spark.synthetic.departments import RECORD_ID_COLUMN
from bold_spark.synthetic.generate import generate
from tests.integration.conftest import AS_OF, demo_environment

EDITED = "prison_releases"  # rows appended, deleted and updated: a diff of the changed files
APPENDED = "probation"  # rows appended only: read from the appended files (and earlier copies of repeated ids)


@pytest.fixture(scope="module")
def delivered(spark, tmp_path_factory):
    """A stored first run, then deliveries. EDITED: two copies of existing records (repeated ids), a record without
    an id, two deletions and an edit. APPENDED: a copy of an existing record, a record without an id and a new
    record, appended in one commit. The other sources are untouched."""
    root = tmp_path_factory.mktemp("changed_input")
    config = demo_environment(root, database="changed_input")
    sample = generate(spark, scale=400, seed=5).materialise()
    for source in config.sources:
        sample.departments[source.name].write.format("delta").partitionBy("extract_month").save(source.table.path)
    first = pipeline.prepare_input(spark, config, as_of=AS_OF)
    write_state(first.standardised, config, run_id="run-1")
    versions = {s.source_system: s.delta_version for s in first.snapshots}
    stored_counts = first.counts  # what run-1 would record in bold.link_runs
    first.release()

    path, rid = config.source(EDITED).table.path, RECORD_ID_COLUMN[EDITED]
    table = spark.read.format("delta").load(path)
    ids = sorted(r[0] for r in table.select(rid).limit(6).collect())  # bounded: 6 ids
    copies = table.where(F.col(rid).isin(ids[:2]))
    no_id = table.where(F.col(rid) == ids[2]).withColumn(rid, F.lit(None).cast("string"))
    copies.unionByName(no_id).write.format("delta").mode("append").save(path)
    DeltaTable.forPath(spark, path).delete(F.col(rid).isin(ids[3:5]))
    DeltaTable.forPath(spark, path).update(F.col(rid) == ids[5], {"release_postcode": F.lit(None)})

    path, rid = config.source(APPENDED).table.path, RECORD_ID_COLUMN[APPENDED]
    table = spark.read.format("delta").load(path)
    appended_ids = sorted(r[0] for r in table.select(rid).limit(2).collect())  # bounded: 2 ids
    (table.where(F.col(rid) == appended_ids[0])
     .unionByName(table.where(F.col(rid) == appended_ids[1]).withColumn(rid, F.lit(None).cast("string")))
     .unionByName(table.where(F.col(rid) == appended_ids[1]).withColumn(rid, F.lit("new-record-1")))
     .write.format("delta").mode("append").save(path))

    reads = pipeline.read_sources(spark, config)
    changes = {source.name: changed_record_ids(spark, source, from_version=versions[source.name],
                                               to_version=snapshot.delta_version)
               for source, (_, snapshot) in zip(config.sources, reads)}
    full = pipeline.prepare_input(spark, config, as_of=AS_OF, reads=reads)  # every source standardised again
    yield config, reads, changes, ids, appended_ids, stored_counts, full
    full.release()


def _rows(prepared: pipeline.PreparedInput) -> DataFrame:
    return prepared.standardised.select(*sorted(prepared.standardised.columns))


def _ids(changes) -> set[tuple[str, str]]:
    return {(r["source_system"], r["source_record_id"]) for r in pipeline.changed_ids(changes).collect()}  # a few


def test_stored_records_plus_the_changes_equal_a_fresh_standardisation(spark, delivered):
    config, reads, changes, ids, appended_ids, stored_counts, full = delivered
    assert {name: c.how for name, c in changes.items() if c.how != "unchanged"} == {
        EDITED: "version diff of changed files", APPENDED: "appended files"}
    assert _ids(changes) == {*((EDITED, i) for i in [*ids[:2], *ids[3:6]]),
                             (APPENDED, appended_ids[0]), (APPENDED, "new-record-1")}
    stored = read_state(spark, config, run_id="run-1")
    incremental = pipeline.prepare_changed_input(spark, config, reads, stored_records=stored, changes=changes,
                                                 as_of=AS_OF, stored_counts=stored_counts)
    a, b = _rows(incremental), _rows(full)
    assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0
    # Stored by one MERGE into the version it started from: the next run reads exactly these records.
    assert update_state(incremental.state_changes, incremental.standardised, config, run_id="run-2") == "merged"
    merged = read_state(spark, config, run_id="run-2").records
    c = merged.select(*sorted(merged.columns))
    assert c.exceptAll(b).count() == 0 and b.exceptAll(c).count() == 0
    # A stored version that is no longer the newest is not merged into: the records are rewritten.
    assert update_state(incremental.state_changes, incremental.standardised, config, run_id="run-3") == "rewritten"
    # No change to apply: the MERGE commits nothing, so the records are rewritten to carry this run's tag.
    unchanged = StateChanges(incremental.state_changes.fresh.limit(0), incremental.state_changes.replaced.limit(0),
                             read_state(spark, config, run_id="run-3").version)
    assert update_state(unchanged, incremental.standardised, config, run_id="run-4") == "rewritten"
    assert read_state(spark, config, run_id="run-4").records.count() == b.count()
    # derived from the stored records' counts, and equal to counting the records again
    assert incremental.counts == full.counts == pipeline._counts(incremental.standardised)
    # both copies of each repeated id are rejected, and the records without an id are counted
    for source, duplicates in ((EDITED, 4), (APPENDED, 2)):
        rejects = full.standardised.where(F.col("source_system") == source).groupBy("reject_reason").count()
        reasons = {r["reject_reason"]: r["count"] for r in rejects.collect()}  # a few reasons
        assert reasons.get(REASON_DUPLICATE_ID, 0) >= duplicates and reasons.get(REASON_NULL_ID, 0) >= 1, reasons
    # read again: EDITED's changed ids (2 ids x 2 copies, an edit) and every row without an id (1); APPENDED's
    # three appended rows and the earlier copy of its repeated id
    assert incremental.profiles[EDITED].rows == 2 * 2 + 1 + 1
    assert incremental.profiles[APPENDED].rows == 3 + 1
    assert sum(p.rows for name, p in incremental.profiles.items() if name not in (EDITED, APPENDED)) == 0


def test_a_change_the_run_did_not_see_stops_it(spark, delivered):
    config, reads, changes, ids, _, stored_counts, _ = delivered
    stored = read_state(spark, config, run_id="run-1")
    found = changes[EDITED]
    missed = {**changes, EDITED: found._replace(ids=found.ids.where(F.col("source_record_id") != ids[3]))}
    for counts in (None, stored_counts):  # counted again, or derived from the stored records' counts
        with pytest.raises(DataQualityError, match=f"source {EDITED}: accounting: .* run a full link"):
            pipeline.prepare_changed_input(spark, config, reads, stored_records=stored, changes=missed,
                                           as_of=AS_OF, stored_counts=counts)


def test_row_counts_of_appended_and_unchanged_sources_come_from_the_log(spark, delivered):
    config, reads, changes, _, _, stored_counts, _ = delivered
    assert changes[APPENDED].appended_records == 3  # the three appended rows, from the log's file statistics
    counted = pipeline._rows_now(reads, changes, stored_counts)
    assert {name: future.result() for name, future in counted.items()} == {
        snapshot.source_system: raw.count() for raw, snapshot in reads}
    # Appended rows lost on the way to standardisation no longer add up to the table's count: the run stops.
    stored = read_state(spark, config, run_id="run-1")
    found = changes[APPENDED]
    lost = {**changes, APPENDED: found._replace(appended_rows=found.appended_rows.limit(2))}
    with pytest.raises(DataQualityError, match=f"source {APPENDED}: accounting: .* run a full link"):
        pipeline.prepare_changed_input(spark, config, reads, stored_records=stored, changes=lost, as_of=AS_OF,
                                       stored_counts=stored_counts)


def test_a_reread_source_is_taken_whole_and_an_unknown_run_has_no_stored_records(spark, delivered):
    config, reads, changes, _, _, stored_counts, full = delivered
    stored = read_state(spark, config, run_id="run-1")
    whole = {**changes, EDITED: Changes(changes[EDITED].ids.limit(0), "all")}
    # The counts are derived: the stored records' counts, less the rows replaced, plus the rows read again.
    reread = pipeline.prepare_changed_input(spark, config, reads, stored_records=stored, changes=whole, as_of=AS_OF,
                                            stored_counts=stored_counts)
    assert reread.counts == full.counts
    assert reread.state_changes is None  # a source read whole: the stored records are rewritten, not merged
    assert reread.profiles[EDITED].rows == full.profiles[EDITED].rows
    assert read_state(spark, config, run_id="no-such-run") is None
