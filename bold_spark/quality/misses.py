"""Why true pairs are missed, and which true pairs each blocking rule generates, without scoring anything.

True pairs come from a self-join of the truth on ``person_id`` (each unordered pair once, its smaller
(source_system, source_record_id) on the left; the rows are bounded by the people's sizes), or are the labelled
matches. A missed true pair (its records in different clusters, or a record not in the crosswalk) has one cause,
tested in this order:

* ``rejected``: a record of the pair is not in the crosswalk (rejected at input);
* ``split_by_clustering``: a recorded edge at or above ``cluster_threshold`` joins them, yet they are in different
  clusters: a constraint cut the edge (with connected components alone this cannot happen, so it shows a bug);
* ``between_thresholds``: recorded (at or above ``edge_threshold``) but below ``cluster_threshold``;
* ``below_edge_threshold``: a blocking rule generates the pair, but it scored below ``edge_threshold`` (not recorded);
* ``not_blocked``: no blocking rule generates the pair, so it was never scored.

"A rule generates the pair" is the rule's own SQL (``l.<column> = r.<column>`` ...) evaluated on a row holding both
records as structs ``l`` and ``r``, as the scoring engine filters its pairs: no pair is scored again. For the pairs no
rule generates, each canonical field is counted as missing (on either side) or disagreeing (both present, unequal):
counts only, never values.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, functions as F

log = logging.getLogger(__name__)

KEYS = ["source_system", "source_record_id"]
PAIR_KEYS = [f"{k}_{side}" for side in ("l", "r") for k in KEYS]
SOURCE_PAIR = ["source_system_l", "source_system_r"]
CAUSES = ("rejected", "split_by_clustering", "between_thresholds", "below_edge_threshold", "not_blocked")
# The canonical fields counted as missing or disagreeing for the pairs no rule generates (those a record holds).
FIELDS = ("first_name", "middle_names", "surname", "date_of_birth", "birth_year", "sex", "postcode",
          "postcode_district", "nino", "nhs_number", "pnc_id")


# --- true pairs -------------------------------------------------------------------------------------------------------

def _l_first(l_system: Column, l_id: Column, r_system: Column, r_id: Column) -> Column:
    return (l_system < r_system) | ((l_system == r_system) & (l_id < r_id))


def ordered_pairs(pairs: DataFrame) -> DataFrame:
    """``pairs`` (PAIR_KEYS and any other columns) with each pair's smaller (source_system, source_record_id) on
    the left, as true_pairs_of_truth orders them."""
    swap = ~_l_first(*[F.col(c) for c in PAIR_KEYS])
    other = {"l": "r", "r": "l"}
    return pairs.select(*[F.when(swap, F.col(f"{k}_{other[s]}")).otherwise(F.col(f"{k}_{s}")).alias(f"{k}_{s}")
                          for s in ("l", "r") for k in KEYS],
                        *[c for c in pairs.columns if c not in PAIR_KEYS])


def true_pairs_of_truth(truth: DataFrame) -> DataFrame:
    """``truth(source_system, source_record_id, person_id)`` -> every unordered pair of records of one person,
    once: PAIR_KEYS, the left the smaller. A person of n records gives n*(n-1)/2 rows."""
    a, b = truth.select(*KEYS, "person_id").alias("a"), truth.select(*KEYS, "person_id").alias("b")
    condition = (F.col("a.person_id") == F.col("b.person_id")) & _l_first(
        F.col("a.source_system"), F.col("a.source_record_id"), F.col("b.source_system"), F.col("b.source_record_id"))
    return a.join(b, condition, how="inner").select(*[F.col(f"{t}.{k}").alias(f"{k}_{s}")
                                                      for t, s in (("a", "l"), ("b", "r")) for k in KEYS])


def true_pairs_of_labels(labels: DataFrame) -> DataFrame:
    """Conformed labelled pairs -> the pairs labelled a match, each once, ordered as true_pairs_of_truth's."""
    matches = labels.where(F.col("is_match")).select(*PAIR_KEYS)
    return ordered_pairs(matches).where((F.col("source_system_l") != F.col("source_system_r"))
                                        | (F.col("source_record_id_l") != F.col("source_record_id_r"))).distinct()


def with_records(pairs: DataFrame, records: DataFrame, columns: Sequence[str]) -> DataFrame:
    """``pairs`` plus structs ``l`` and ``r`` holding ``columns`` of each side's record (null when ``records``
    lacks it), the shape the blocking rules' SQL reads. ``records`` has one row per (source_system,
    source_record_id)."""
    fields = F.struct(*[F.col(c) for c in columns])
    out = pairs
    for side in ("l", "r"):
        rec = records.select(*[F.col(k).alias(f"{k}_{side}") for k in KEYS], fields.alias(side))
        out = out.join(rec, [f"{k}_{side}" for k in KEYS], how="left")
    return out


def rule_holds(sql: str) -> Column:
    """A blocking rule's SQL on a pair row (structs ``l`` and ``r``): true when it generates the pair (a null,
    such as a missing key, is false, as in the join)."""
    return F.coalesce(F.expr(sql), F.lit(False))


def any_rule_holds(rules: Sequence[str]) -> Column:
    return reduce(lambda a, b: a | b, [rule_holds(sql) for sql in rules], F.lit(False))


def field_counts(fields: Sequence[str]) -> dict[str, tuple[Column, Column]]:
    """Per field, over pair rows with structs ``l`` and ``r``: (missing on either side, both present and
    unequal), as 0/1 columns to sum."""
    return {f: (F.when(F.col(f"l.{f}").isNull() | F.col(f"r.{f}").isNull(), 1).otherwise(0),
                F.when(F.col(f"l.{f}") != F.col(f"r.{f}"), 1).otherwise(0))
            for f in fields}


def fields_of(records: DataFrame) -> list[str]:
    return [f for f in FIELDS if f in records.columns]


# --- why true pairs were missed ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MissInputs:
    """What the breakdown needs beside the crosswalk: the run's accepted records with linkage columns (one row per
    record; the columns the rules name), its recorded edges, the blocking rules' SQL (linkage.model
    .blocking_rule_sql) and the run's thresholds."""

    records: DataFrame
    edges: DataFrame
    rules: tuple[str, ...]
    edge_threshold: float
    cluster_threshold: float
    # Frees what ``records`` was built on when the run stored no records (the sources standardised again and
    # checkpointed in scratch_dir: personal data on disk); the caller calls it once the breakdown is computed.
    release: Callable[[], None] = lambda: None


def classify_missed(pairs: DataFrame, crosswalk: DataFrame, inputs: MissInputs) -> DataFrame:
    """True ``pairs`` (PAIR_KEYS, ordered) -> the missed ones: PAIR_KEYS, ``cause`` (one of CAUSES) and the
    structs ``l`` and ``r`` of both records (for field counts). Lazy."""
    clusters = crosswalk.select(*KEYS, "cluster_id")
    out = pairs
    for side in ("l", "r"):
        out = out.join(clusters.select(*[F.col(k).alias(f"{k}_{side}") for k in KEYS],
                                       F.col("cluster_id").alias(f"cluster_{side}")),
                       [f"{k}_{side}" for k in KEYS], how="left")
    missed = out.where(~F.coalesce(F.col("cluster_l") == F.col("cluster_r"), F.lit(False)))
    edges = ordered_pairs(inputs.edges.select(*PAIR_KEYS, "match_probability")) \
        .groupBy(*PAIR_KEYS).agg(F.max("match_probability").alias("match_probability"))
    missed = missed.join(edges, PAIR_KEYS, how="left")
    columns = sorted({*fields_of(inputs.records), *_rule_columns(inputs.records, inputs.rules)})
    missed = with_records(missed, inputs.records, columns)
    p = F.col("match_probability")
    cause = (F.when(F.col("cluster_l").isNull() | F.col("cluster_r").isNull(), "rejected")
             .when(p >= inputs.cluster_threshold, "split_by_clustering")
             .when(p.isNotNull(), "between_thresholds")
             .when(any_rule_holds(inputs.rules), "below_edge_threshold")
             .otherwise("not_blocked"))
    return missed.select(*PAIR_KEYS, cause.alias("cause"), "l", "r")


def _rule_columns(records: DataFrame, rules: Sequence[str]) -> list[str]:
    """The columns of ``records`` a rule's SQL names (``l.x`` or ``l.`x```)."""
    named = set(re.findall(r"\b[lr]\.`?([A-Za-z_][A-Za-z0-9_]*)`?", " ".join(rules)))
    return [c for c in records.columns if c in named]


def miss_breakdown(pairs: DataFrame, crosswalk: DataFrame, inputs: MissInputs) -> dict[Any, dict[str, Any]]:
    """Per unordered source pair ``(source_system_l, source_system_r)`` and overall (key None): missed_pairs, the
    count of each cause as ``missed_<cause>``, and for the ``not_blocked`` pairs ``not_blocked_field_missing`` /
    ``not_blocked_field_disagreeing`` (field -> pairs). One aggregate; collected rows are one per source pair."""
    missed = classify_missed(pairs, crosswalk, inputs)
    fields = fields_of(inputs.records)
    not_blocked = F.col("cause") == "not_blocked"
    aggregates = [F.count(F.lit(1)).alias("missed_pairs")]
    aggregates += [F.sum(F.when(F.col("cause") == c, 1).otherwise(0)).alias(f"missed_{c}") for c in CAUSES]
    for f, (missing, disagreeing) in field_counts(fields).items():
        aggregates += [F.sum(F.when(not_blocked, missing).otherwise(0)).alias(f"m__{f}"),
                       F.sum(F.when(not_blocked, disagreeing).otherwise(0)).alias(f"d__{f}")]
    rows = missed.groupBy(*SOURCE_PAIR).agg(*aggregates).collect()  # bounded: one row per source pair
    out: dict[Any, dict[str, Any]] = {}
    for row in rows:
        out[(row["source_system_l"], row["source_system_r"])] = _breakdown_of(row.asDict(), fields)
    out[None] = sum_breakdowns(out.values(), fields)
    log.info("missed true pairs: %s", ", ".join(f"{c} {out[None][f'missed_{c}']:,}" for c in CAUSES))
    return out


def empty_breakdown(fields: Sequence[str]) -> dict[str, Any]:
    return {"missed_pairs": 0, **{f"missed_{c}": 0 for c in CAUSES},
            "not_blocked_field_missing": {f: 0 for f in fields},
            "not_blocked_field_disagreeing": {f: 0 for f in fields}}


def _breakdown_of(row: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {"missed_pairs": int(row["missed_pairs"]), **{f"missed_{c}": int(row[f"missed_{c}"]) for c in CAUSES},
            "not_blocked_field_missing": {f: int(row[f"m__{f}"]) for f in fields},
            "not_blocked_field_disagreeing": {f: int(row[f"d__{f}"]) for f in fields}}


def sum_breakdowns(parts: Any, fields: Sequence[str]) -> dict[str, Any]:
    total = empty_breakdown(fields)
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                for f, n in value.items():
                    total[key][f] = total[key].get(f, 0) + n
            else:
                total[key] += value
    return total


def run_miss_inputs(spark: Any, config: Any, *, run_id: str, max_versions: int = 50) -> MissInputs | None:
    """The breakdown's inputs for link run ``run_id`` under ``config`` (a JobConfig): the records that run stored
    (state_dir; else the sources as they are now, standardised again, with a warning), the match_edges version
    holding the run, and the configured blocking rules and thresholds. None when the run's edges are gone."""
    from bold_spark.errors import DataQualityError
    from bold_spark.io.delta import read_table_as_of_run
    from bold_spark.io.state import read_state
    from bold_spark.linkage.model import add_linkage_columns, blocking_rule_sql, register_similarity_functions

    try:
        edges, _, _ = read_table_as_of_run(spark, config.output.qualified("match_edges"), run_id=run_id,
                                           max_versions=max_versions)
    except DataQualityError as exc:
        log.warning("no breakdown of missed pairs: %s", exc)
        return None
    stored = read_state(spark, config, run_id=run_id)
    release: Callable[[], None] = lambda: None
    if stored is not None:
        standardised = stored.records
    else:
        from bold_spark.pipeline import prepare_input

        log.warning("run %s stored no records (pseudonymised, or replaced since): the breakdown reads and "
                    "standardises the sources as they are now, which may differ from what the run linked", run_id)
        prepared = prepare_input(spark, config)
        standardised, release = prepared.standardised, prepared.release
    try:
        register_similarity_functions(spark)  # a SQL rule may call jaro_winkler
        records = standardised.where(F.col("reject_reason").isNull()).transform(add_linkage_columns)
        linkage = config.linkage
        return MissInputs(records, edges, tuple(blocking_rule_sql(linkage.blocking_rules)),
                          edge_threshold=linkage.edge_threshold, cluster_threshold=linkage.cluster_threshold,
                          release=release)
    except BaseException:
        release()
        raise
