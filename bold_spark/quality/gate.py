"""The publishing gate: a run replaces the published crosswalk only if it stays close to the previous published run.

The previous published run is the one whose rows are in the current crosswalk (held runs never reach it); its
quality comes from ``bold.run_quality``. Beyond the ``publish_gate:`` limits the run's crosswalk goes to the candidate
table instead, and the decision says why; ``jobs/publish.py --run-id`` publishes it deliberately after review.
Reasons carry source names, figures and config keys only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.clustering.rules import ConstraintSettings
from bold_spark.config import OutputTables, PublishGateSettings
from bold_spark.errors import DataQualityError
from bold_spark.io.delta import ensure_database, overwrite_table, read_table_as_of_run
from bold_spark.io.history import write_events
from bold_spark.quality.run_quality import RunQuality, distribution, load_run_quality

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    publish: bool
    reasons: list[str] = field(default_factory=list)  # why it is held (empty when published)
    measures: dict[str, float] = field(default_factory=dict)  # the figures compared with the limits
    previous_run_id: str | None = None

    def message(self) -> str:
        """One line for bold.link_runs.message."""
        if self.publish:
            return "published" + (f" (compared with run {self.previous_run_id})" if self.previous_run_id else "")
        against = f"compared with run {self.previous_run_id}" if self.previous_run_id else "no run published before"
        return (f"held by publish_gate ({against}): " + "; ".join(self.reasons)
                + "; publish after review with jobs/publish.py --run-id")


@dataclass
class PublishedRun:
    """The run currently published: its id, its crosswalk (pinned Delta version) and its recorded quality."""

    run_id: str
    crosswalk: DataFrame
    crosswalk_version: int
    quality: RunQuality | None


def total_variation(a: dict[tuple, float], b: dict[tuple, float]) -> float:
    """Half the sum of absolute differences of two share distributions over the same bins: 0 same, 1 disjoint."""
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def _people_merged(current: RunQuality, limits: PublishGateSettings, constraints: ConstraintSettings | None,
                   reasons: list[str], measures: dict[str, float]) -> None:
    """Signs, without truth, that different people (relatives) were merged: records of a one-per-person source
    sharing a cluster, and clusters whose dates of birth disagree."""
    once = [e.source for e in (constraints.one_record_per_person if constraints else ()) if e.per is None]
    rates = current.link_rates()
    shares = [(rates[(s, s)]["value"], s) for s in once if rates.get((s, s), {}).get("value") is not None]
    if shares:
        share, source = max(shares)
        measures["max_same_source_share"] = share
        if share > limits.max_same_source_share:
            reasons.append(f"{share:.3f} of {source}'s records share a cluster with another of its records, which "
                           f"holds each person once (> publish_gate.max_same_source_share = "
                           f"{limits.max_same_source_share})")
    agreement = [r for r in current.metric("cluster_agreement") if r["dimension"] == "date_of_birth"]
    if limits.max_date_of_birth_disagreement is not None and agreement and agreement[0]["value"] is not None:
        disagreement = 1.0 - agreement[0]["value"]
        measures["max_date_of_birth_disagreement"] = disagreement
        if disagreement > limits.max_date_of_birth_disagreement:
            reasons.append(f"{disagreement:.3f} of the {agreement[0]['records']:,} clusters with two or more dates of "
                           f"birth disagree on it (> publish_gate.max_date_of_birth_disagreement = "
                           f"{limits.max_date_of_birth_disagreement})")


def decide(current: RunQuality, previous: RunQuality | None, limits: PublishGateSettings, *,
           constraints: ConstraintSettings | None = None) -> GateDecision:
    """Publish, or hold with reasons, comparing this run's quality with the previous published run's (and, first
    run too, with the limits on merged people; ``constraints`` names the one-per-person sources)."""
    previous_id = previous.run_id if previous else None
    if not limits.enabled:
        return GateDecision(True, [], {}, previous_id)
    reasons: list[str] = []
    measures: dict[str, float] = {}
    if limits.hold_on_implausible_cluster:
        reasons += [f"{a} (publish_gate.hold_on_implausible_cluster)" for a in current.alarms()]
    _people_merged(current, limits, constraints, reasons, measures)
    # Needs only the previous crosswalk (measured by run_quality), not its recorded quality.
    changed = current.metric("cluster_changed_share")
    if changed and changed[0]["value"] is not None:
        share = changed[0]["value"]
        measures["max_cluster_changed_share"] = share
        if share > limits.max_cluster_changed_share:
            reasons.append(f"{share:.3f} of the {changed[0]['records']:,} records in both runs changed co-members "
                           f"(> publish_gate.max_cluster_changed_share = {limits.max_cluster_changed_share})")
    if previous is None:
        return GateDecision(not reasons, reasons, measures, None)

    # Link rate per source pair (over all records), where both runs have enough records to say.
    now, before = current.link_rates(), previous.link_rates()
    changes = []
    for key, old in before.items():
        new = now.get(key)
        if new is None:
            if key[1] is None:
                reasons.append(f"source {key[0]} was in the published run and is missing from this one")
            continue
        if min(old["records"] or 0, new["records"] or 0) < limits.min_records or None in (old["value"], new["value"]):
            continue
        changes.append((abs(new["value"] - old["value"]), key, old["value"], new["value"]))
    if changes:
        worst = max(changes, key=lambda c: c[0])
        measures["max_link_rate_change"] = worst[0]
        for change, (left, right), old, new in sorted(changes, key=lambda c: -c[0]):
            if change > limits.max_link_rate_change:
                reasons.append(f"link rate {left} -> {right or 'any other record'} moved {old:.3f} -> {new:.3f} "
                               f"(> publish_gate.max_link_rate_change = {limits.max_link_rate_change})")

    for metric, limit_key, label in (("cluster_size_dist", "max_cluster_size_shift", "cluster-size distribution"),
                                     ("match_weight_hist", "max_match_weight_shift", "match-weight distribution")):
        a, b = distribution(current.metric(metric)), distribution(previous.metric(metric))
        if not a or not b:
            continue
        shift = total_variation(a, b)
        measures[limit_key] = shift
        if shift > getattr(limits, limit_key):
            reasons.append(f"{label} shifted by {shift:.3f} (total variation; > publish_gate.{limit_key} = "
                           f"{getattr(limits, limit_key)})")

    return GateDecision(not reasons, reasons, measures, previous_id)


def previous_published(spark: SparkSession, output: OutputTables) -> PublishedRun | None:
    """The run whose rows the published crosswalk holds, or None before the first published run."""
    name = output.qualified("crosswalk")
    if not spark.catalog.tableExists(name):
        return None
    crosswalk, version, run_id = read_table_as_of_run(spark, name)
    return PublishedRun(run_id, crosswalk, version, load_run_quality(spark, output, run_id))


def write_record_groups(groups: DataFrame, output: OutputTables, *, held: bool = False) -> None:
    """Replace bold.record_groups with ``groups``, or (``held``) record_groups_candidate, which waits for its held
    crosswalk (publish_candidate)."""
    overwrite_table(groups, output.qualified("record_groups_candidate" if held else "record_groups"),
                    partition_by=["source_system"])


def write_crosswalk(crosswalk: DataFrame, output: OutputTables, decision: GateDecision,
                    events: DataFrame | None = None, groups: DataFrame | None = None) -> str:
    """Publish the crosswalk, or write it to the candidate table when held, with its cluster ``events`` and its
    records' ``groups`` beside it (they reach bold.cluster_events and bold.record_groups when the run is published
    after review: the views never join a published crosswalk with a held run's groups). Returns the table
    written."""
    spark = crosswalk.sparkSession
    ensure_database(spark, output)
    name = output.qualified("crosswalk" if decision.publish else "crosswalk_candidate")
    if groups is not None:
        write_record_groups(groups, output, held=not decision.publish)
    overwrite_table(crosswalk, name, partition_by=["source_system"])
    if not decision.publish:
        if events is not None:
            overwrite_table(events, output.qualified("cluster_events_candidate"))
        log.warning("run held, crosswalk written to %s: %s", name, "; ".join(decision.reasons))
    return name


def publish_candidate(spark: SparkSession, output: OutputTables, run_id: str) -> dict[str, Any]:
    """Copy a held run's candidate crosswalk into the published crosswalk in one Delta transaction.

    Refuses when the candidate holds another run (or rows of several runs), so only the reviewed run is published.
    """
    candidate = output.qualified("crosswalk_candidate")
    if not spark.catalog.tableExists(candidate):
        raise DataQualityError(f"{candidate} not found: no run has been held")
    df = spark.table(candidate)
    row = df.agg(F.count(F.lit(1)).alias("rows"),
                 F.sum(F.when(F.col("run_id") == run_id, 0).otherwise(1)).alias("other")).first()  # bounded
    if not row["rows"]:
        raise DataQualityError(f"{candidate} is empty")
    if row["other"]:
        held = df.agg(F.max("run_id")).first()[0]  # bounded: one row
        raise DataQualityError(f"{candidate} holds run {held}, not run {run_id}; nothing was published")
    current = output.qualified("crosswalk")
    if spark.catalog.tableExists(current):
        published = spark.table(current).agg(F.max("run_id")).first()[0]  # bounded: one row
        if published == run_id:
            raise DataQualityError(f"run {run_id} is already the published crosswalk in {current}")
        if published is not None and published > run_id:  # run ids begin with their UTC start time
            raise DataQualityError(f"run {published}, newer than held run {run_id}, is already published in "
                                   f"{current}; publishing the older run would go back in time. Nothing was published")
    groups = output.qualified("record_groups_candidate")
    if spark.catalog.tableExists(groups):  # written with the candidate crosswalk by the same held run
        write_record_groups(spark.table(groups), output)
    overwrite_table(df, current, partition_by=["source_system"])
    events = output.qualified("cluster_events_candidate")
    if spark.catalog.tableExists(events):  # the held run's merges, splits, new and retired ids, now true
        write_events(spark.table(events).where(F.col("run_id") == run_id), output, run_id=run_id)
    log.info("run %s published from %s to %s (%d rows)", run_id, candidate, current, row["rows"])
    return {"run_id": run_id, "rows": int(row["rows"]), "table": current}
