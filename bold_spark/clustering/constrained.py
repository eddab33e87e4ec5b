"""Split the components that break a constraint (bold_spark/clustering/rules.py), on Spark, per component.

Connected components join everything reachable: one wrong edge between a father and his son merges every record of
both. Components that break no constraint keep their connected-components result. The others are found by one
aggregate (two records of a one-per-person source, two different values of a distinct identifier, dates of birth
further apart than allowed) and by the pairs a must_agree rule keeps apart, and each is re-clustered on an executor by ``constrained_merge``: records join along
edges in descending match weight and a join that would put two must-stay-apart records together is refused.

Why not Splink 5's ``cluster_using_single_best_links``: it knows only duplicate-free sources, and it reworks every
component (a record joins only through its mutually best link, so clusters with no conflict change too), in one
round of Spark queries per merge level. This method reworks only components that break a constraint, knows
identifiers, dates of birth and review decisions, and is one grouped stage whatever the depth of the merges.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, functions as F, types as T

from bold_spark.clustering.rules import (
    CANNOT_LINK,
    ONE_PER_PERSON,
    ConstraintSettings,
    constrained_merge,
    disagreement_kind,
)

log = logging.getLogger(__name__)

KEYS = ["source_system", "source_record_id"]
# Pairs are enumerated within components up to this size (n(n-1)/2 pairs each); a larger component is an alarm of
# its own (quality.implausible_cluster_size) and is checked by the other constraints only.
MAX_COMPONENT_FOR_PAIRS = 1000
_SIDE_COLUMN = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)_[lr]\b")


@dataclass(frozen=True)
class PairRule:
    """A must_agree comparison compiled from the model: ``agree`` is Spark SQL over <column>_l / <column>_r."""

    kind: str
    agree: str
    columns: tuple[str, ...]


def pair_rules(constraints: ConstraintSettings, model: Mapping[str, Any]) -> tuple[PairRule, ...]:
    """The model's levels of each ``must_agree`` comparison as rules a pair of records can break."""
    from bold_spark.linkage.model import agreement_conditions  # late: linkage imports Splink

    rules = []
    for name, agree in agreement_conditions(model, constraints.must_agree).items():
        if constraints.must_agree_typos:  # the comparison's column: a slip the model's levels miss still agrees
            agree = f"({agree}) OR levenshtein(`{name}_l`, `{name}_r`) <= {constraints.must_agree_typos}"
        columns = tuple(sorted(set(_SIDE_COLUMN.findall(agree.replace("`", "")))))
        rules.append(PairRule(disagreement_kind(name), agree, columns))
    return tuple(rules)


_PERIOD_FORMATS = {"day": "yyyy-MM-dd", "month": "yyyy-MM", "year": "yyyy"}
_MERGED = T.StructType([
    T.StructField("component", T.StringType(), False),
    T.StructField("node", T.StringType(), False),
    T.StructField("label", T.StringType(), False),
    T.StructField("violated", T.ArrayType(T.StringType()), False),  # the component's, repeated on its rows
    T.StructField("refused", T.MapType(T.StringType(), T.IntegerType()), False),
])


def constraint_columns(persons: DataFrame, constraints: ConstraintSettings,
                       rules: Sequence[PairRule] = ()) -> DataFrame:
    """Accepted standardised records (source_system, source_record_id, date_of_birth, birth_year, event_date,
    identifiers) -> (source_system, source_record_id, once_key, date_of_birth, birth_year, <distinct identifiers>).

    ``once_key`` is the source name (and the period of ``event_date`` for a per-period source) for sources that
    hold each person once, null otherwise; two records with one once_key are two people. The columns the pair
    ``rules`` compare (linkage columns: give persons with ``add_linkage_columns``) come last.
    """
    once_key = F.lit(None).cast("string")
    for entry in reversed(constraints.one_record_per_person):
        key = (F.col("source_system") if entry.per is None else
               F.concat(F.col("source_system"), F.lit("|"), F.date_format("event_date", _PERIOD_FORMATS[entry.per])))
        once_key = F.when(F.col("source_system") == entry.source, key).otherwise(once_key)
    compared = sorted({c for rule in rules for c in rule.columns} - {"date_of_birth", "birth_year", "source_system",
                                                                    "source_record_id", "once_key"})
    return persons.select(*KEYS, once_key.alias("once_key"), F.col("date_of_birth").cast("date"),
                          F.col("birth_year").cast("int"),
                          *[F.col(c).cast("string") for c in constraints.distinct_identifiers
                            if c not in compared], *compared)


def _suspect(constraints: ConstraintSettings) -> Any:
    """Per component: might it break a constraint? Exact for sources and identifiers; for dates of birth a range
    test whose suspects ``constrained_merge`` then checks pair by pair (typing slips are allowed)."""
    checks = [F.count("once_key") > F.countDistinct("once_key")]
    checks += [F.countDistinct(c) > 1 for c in constraints.distinct_identifiers]
    if constraints.date_of_birth_years_apart is not None:
        years = constraints.date_of_birth_years_apart
        year = F.coalesce(F.year("date_of_birth"), F.col("birth_year"))
        checks.append(F.datediff(F.max("date_of_birth"), F.min("date_of_birth")) > F.lit(years * 365.25))
        checks.append(F.max(year) - F.min(year) > F.lit(years + 1))
    return reduce(lambda a, b: a | b, checks)


def _merge_component(constraints: ConstraintSettings):
    """The function each suspect component runs on an executor: (component, (records, edges, pairs kept apart))
    -> (component, node, label, violated kinds, refused edges per kind) rows."""
    identifiers = list(constraints.distinct_identifiers)
    years = constraints.date_of_birth_years_apart

    def merge(grouped: tuple[str, tuple[Iterable[Any], Iterable[Any], Iterable[Any]]]) -> list[tuple]:
        component, (records, edges, apart) = grouped
        rows = [r.asDict() for r in records]
        pairs = [(e["src"], e["dst"], e["match_weight"]) for e in edges]
        known = {r["node"] for r in rows}
        rows += [{"node": n} for n in {n for s, d, _ in pairs for n in (s, d)} - known]
        result = constrained_merge(rows, pairs, identifiers=identifiers, years_apart=years,
                                   cannot_link=[(a["node_l"], a["node_r"], a["kind"]) for a in apart])
        return [(component, node, label, result.violated, result.refused) for node, label in result.labels.items()]

    return merge


def disagreeing_pairs(members: DataFrame, rules: Sequence[PairRule]) -> DataFrame:
    """members(component, node, <the rules' columns>) -> (component, node_l, node_r, kind): the pairs of one
    component that a rule says are two people (node_l < node_r; the first rule broken names the kind)."""
    columns = sorted({c for rule in rules for c in rule.columns})
    sizes = members.groupBy("component").agg(F.count(F.lit(1)).alias("n"))
    listed = members.join(sizes.where((F.col("n") >= 2) & (F.col("n") <= MAX_COMPONENT_FOR_PAIRS)), "component",
                          how="left_semi").select("component", "node", *columns)
    left = listed.select("component", F.col("node").alias("node_l"), *[F.col(c).alias(f"{c}_l") for c in columns])
    right = listed.select("component", F.col("node").alias("node_r"), *[F.col(c).alias(f"{c}_r") for c in columns])
    pairs = left.join(right, "component", how="inner").where(F.col("node_l") < F.col("node_r"))
    # An agreement that evaluates to null (a comparison of a missing value) counts as no agreement; a missing value
    # itself agrees through the comparison's null level.
    kind = F.coalesce(*[F.when(~F.coalesce(F.expr(rule.agree), F.lit(False)), F.lit(rule.kind)) for rule in rules])
    return pairs.select("component", "node_l", "node_r", kind.alias("kind")).where(F.col("kind").isNotNull())


def decided_apart(components: DataFrame, cannot_link: DataFrame) -> DataFrame:
    """components(node, component), cannot_link(node_l, node_r) (a reviewer's decisions) -> (component, node_l,
    node_r, kind): the pairs connected components put in one component, which must end in two clusters."""
    comp = components.select("node", "component")
    return (cannot_link.join(comp.toDF("node_l", "component"), "node_l", how="inner")
            .join(comp.toDF("node_r", "component_r"), "node_r", how="inner")
            .where(F.col("component") == F.col("component_r"))
            .select("component", "node_l", "node_r", F.lit(CANNOT_LINK).alias("kind")))


def split_components(components: DataFrame, linking: DataFrame, attributes: DataFrame, *,
                     constraints: ConstraintSettings, rules: Sequence[PairRule] = (),
                     cannot_link: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """components(node, component), linking(src, dst, match_weight) at the threshold, attributes(node, once_key,
    date_of_birth, <identifiers>, <the pair rules' columns>; only node without constraints) -> ((node, component)
    with violating components split, one row per component that was re-clustered: component, violated kinds,
    refused edges per kind, clusters it became). ``cannot_link(node_l, node_r)``: pairs reviewers decided are two
    people, kept apart by the same merge (kind ``cannot_link``).

    Give a checkpointed ``components``: it is read by the aggregate, the re-clustering and the final join.
    """
    members = components.join(attributes, "node", how="left")
    suspects = (members.groupBy("component").agg(_suspect(constraints).alias("suspect"))
                .where(F.col("suspect")).select("component")) if constraints.any else None
    parts = ([disagreeing_pairs(members, rules)] if rules else []) + (
        [decided_apart(components, cannot_link)] if cannot_link is not None else [])
    apart = None
    if parts:  # the pairs a rule or a reviewer keeps apart, found for every component (checkpointed: read twice)
        apart = reduce(DataFrame.unionByName, parts).checkpoint()
        suspects = (apart.select("component") if suspects is None
                    else suspects.unionByName(apart.select("component"))).distinct()
    if suspects is None:
        suspects = components.select("component").limit(0)
    suspect_members = members.join(suspects, "component", how="left_semi")
    suspect_edges = (linking.join(components.select(F.col("node").alias("src"), "component"), "src", how="inner")
                     .join(suspects, "component", how="left_semi")
                     .select("component", "src", "dst", F.col("match_weight").cast("double")))
    # One shuffle brings each component's records, edges and pairs kept apart together (RDD groupWith: Spark's
    # grouped Arrow and pandas functions need pandas, which the project does not install); only suspect
    # components take part.
    keyed_records = suspect_members.rdd.map(lambda r: (r["component"], r))
    keyed_edges = suspect_edges.rdd.map(lambda e: (e["component"], e))
    keyed_apart = (apart.rdd if apart is not None else components.sparkSession.sparkContext.emptyRDD()) \
        .map(lambda a: (a["component"], a))
    merged_rows = keyed_records.groupWith(keyed_edges, keyed_apart).flatMap(_merge_component(constraints))
    merged = components.sparkSession.createDataFrame(merged_rows, _MERGED).checkpoint()
    stats = merged.groupBy("component").agg(
        F.first("violated").alias("violated"), F.first("refused").alias("refused"),
        F.countDistinct("label").alias("clusters"))
    split = (components.join(merged.select("node", "label"), "node", how="left")
             .select("node", F.coalesce(F.col("label"), F.col("component")).alias("component")))
    return split, stats


def summarise(stats: DataFrame | None, constraints: ConstraintSettings, *, decisions: bool = False
              ) -> dict[str, Any] | None:
    """``split_components``' per-component rows -> figures for the log and bold.run_quality (bounded: one
    aggregate row); None when no constraint is declared and no decision applied. ``decisions``: reviewers'
    cannot_link pairs took part (kind ``cannot_link``)."""
    if stats is None:
        return None
    kinds = constraints.kinds() + ([CANNOT_LINK] if decisions else [])
    row = stats.agg(
        F.count(F.lit(1)).alias("checked"),
        F.sum(F.when(F.size("violated") > 0, 1).otherwise(0)).alias("violating"),
        F.sum(F.when(F.col("clusters") > 1, 1).otherwise(0)).alias("split"),
        F.sum(F.when(F.col("clusters") > 1, F.col("clusters"))).alias("clusters"),
        *[F.sum(F.when(F.array_contains("violated", k), 1).otherwise(0)).alias(f"violated__{k}") for k in kinds],
        *[F.sum(F.coalesce(F.col("refused")[k], F.lit(0))).alias(f"refused__{k}") for k in kinds],
    ).first()
    figures = {"components_checked": int(row["checked"] or 0), "components_violating": int(row["violating"] or 0),
               "components_split": int(row["split"] or 0), "clusters_from_split": int(row["clusters"] or 0),
               "violated": {k: int(row[f"violated__{k}"] or 0) for k in kinds},
               "refused": {k: int(row[f"refused__{k}"] or 0) for k in kinds}}
    log.info("constraints: %d components checked, %d broke a constraint (%s), %d split into %d clusters; "
             "edges refused: %s", figures["components_checked"], figures["components_violating"],
             ", ".join(f"{k}: {v}" for k, v in figures["violated"].items()), figures["components_split"],
             figures["clusters_from_split"], ", ".join(f"{k}: {v}" for k, v in figures["refused"].items()))
    return figures


def with_compared_columns(persons: DataFrame, rules: Sequence[PairRule]) -> DataFrame:
    """Standardised persons plus the linkage columns (forename groups...) the pair rules compare, when there are
    rules."""
    if not rules:
        return persons
    from bold_spark.linkage.columns import add_linkage_columns

    return add_linkage_columns(persons)


def clustering_input(persons: DataFrame, constraints: ConstraintSettings, rules: Sequence[PairRule] = ()
                     ) -> DataFrame:
    """What ``cluster_records`` needs of each accepted record: its keys, and the constraint columns if any."""
    return constraint_columns(persons, constraints, rules) if constraints.any else persons.select(*KEYS)


def violations_after(crosswalk: DataFrame, persons: DataFrame, constraints: ConstraintSettings) -> DataFrame | None:
    """One row, a column per kind: clusters of a crosswalk that still hold two records of a one-per-person source
    (period) or two values of a distinct identifier; a check of the published result, independent of how it was
    clustered. None when no such constraint is declared. Dates of birth are left to ``cluster_agreement`` (typing
    slips are allowed to differ)."""
    kinds = ([ONE_PER_PERSON] if constraints.one_record_per_person else []) + list(constraints.distinct_identifiers)
    if not kinds:
        return None
    columns = constraint_columns(persons, constraints)
    per_cluster = (crosswalk.select(*KEYS, "cluster_id").join(columns, KEYS, how="inner").groupBy("cluster_id")
                   .agg((F.count("once_key") > F.countDistinct("once_key")).alias("once"),
                        *[(F.countDistinct(c) > 1).alias(c) for c in constraints.distinct_identifiers]))
    flags = {ONE_PER_PERSON: "once", **{c: c for c in constraints.distinct_identifiers}}
    return per_cluster.agg(*[F.coalesce(F.sum(F.col(flags[k]).cast("int")), F.lit(0)).alias(k) for k in kinds])
