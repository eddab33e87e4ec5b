"""Accuracy of a crosswalk against a truth table or labelled pairs, from group counts (no pair enumeration).

Against a truth table ``(source_system, source_record_id, person_id)`` the records evaluated are the truth's; a
truth record missing from the crosswalk (rejected) is an unlinked singleton, so rejects cost recall. Everything
comes from counts of records per (cluster, person) and per (cluster, person, source) group:

* pairs a cluster of n records asserts: n*(n-1)/2; true pairs likewise from person sizes; true positives from the
  sizes of (cluster, person) intersections. Summed per group as n_cp*(n_c-1)/2 so one aggregate gives all three.
* per unordered source pair (a, b): a group holding n_a and n_b records of each has n_a*n_b pairs, and n_a*(n_a-1)/2
  when a = b. Groups are self-joined per source, so the rows joined are bounded by sources squared per group.
* B-cubed precision: the mean over records of |cluster & person| / |cluster|; recall: ... / |person|. Both are
  sum(n_cp^2 / n_c) / N over (cluster, person) groups.
* share of people split: true people whose records are in more than one cluster, over all true people;
  share of clusters merging: predicted clusters holding more than one person, over all predicted clusters.

Against labelled pairs ``(source_system_l, source_record_id_l, source_system_r, source_record_id_r, is_match)`` a
pair is predicted a match when both records are in the crosswalk with the same cluster_id; precision, recall and F1
are over the labelled pairs only.

Precision with no predicted pairs is 1 (nothing was asserted wrongly), recall with no true pairs likewise.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window, functions as F

from bold_spark.clustering.rules import ConstraintSettings
from bold_spark.config import OutputTables
from bold_spark.crosswalk.build import cluster_records
from bold_spark.errors import DataQualityError, SchemaContractError
from bold_spark.io.delta import ensure_database, read_table_as_of_run, replace_rows
from bold_spark.quality.misses import (
    MissInputs,
    empty_breakdown,
    fields_of,
    miss_breakdown,
    true_pairs_of_labels,
    true_pairs_of_truth,
)
from bold_spark.schemas import EVALUATIONS, conform

log = logging.getLogger(__name__)

KEYS = ["source_system", "source_record_id"]
TRUTH_COLUMNS = ("source_system", "source_record_id", "person_id")
LABEL_COLUMNS = ("source_system_l", "source_record_id_l", "source_system_r", "source_record_id_r", "is_match")
PAIR_COUNTS = ("predicted_pairs", "true_pairs", "true_positive_pairs")
RATES = ("precision", "recall", "f1")
CLUSTER_METRICS = ("truth_records", "truth_records_missing", "bcubed_precision", "bcubed_recall",
                   "predicted_clusters", "true_clusters", "people_split", "clusters_merging",
                   "share_people_split", "share_clusters_merging")
LABEL_COUNTS = ("labelled_pairs", "labelled_pairs_missing")


# --- inputs -------------------------------------------------------------------------------------------------------

def _conform_input(df: DataFrame, expected: tuple[str, ...], columns: Mapping[str, str] | None,
                   description: str) -> DataFrame:
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(expected))
    if unknown:
        raise SchemaContractError(f"{description}: unknown column key(s) {', '.join(unknown)}; "
                                  f"expected some of {', '.join(expected)}")
    wanted = {name: columns.get(name, name) for name in expected}
    missing = [f"{name} (column {col!r})" for name, col in wanted.items() if col not in df.columns]
    if missing:
        raise SchemaContractError(f"{description}: missing {', '.join(missing)}; it has: {', '.join(df.columns)}")
    return df.select(*[F.col(f"`{col}`").cast("boolean" if name == "is_match" else "string").alias(name)
                       for name, col in wanted.items()])


def conform_truth(df: DataFrame, *, columns: Mapping[str, str] | None = None,
                  description: str = "truth") -> DataFrame:
    """Any table -> ``(source_system, source_record_id, person_id)`` as strings; ``columns`` maps those names to
    the table's own where they differ."""
    return _conform_input(df, TRUTH_COLUMNS, columns, description)


def conform_labels(df: DataFrame, *, columns: Mapping[str, str] | None = None,
                   description: str = "labels") -> DataFrame:
    """Any table -> ``(source_system_l, source_record_id_l, source_system_r, source_record_id_r, is_match)``; ids
    as strings, is_match cast to boolean (true/false, 1/0, yes/no)."""
    return _conform_input(df, LABEL_COLUMNS, columns, description)


def check_truth(truth: DataFrame, *, description: str = "truth") -> None:
    """Fail early on an empty truth, null fields, or a record given twice (one aggregate)."""
    row = truth.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct(*[F.col(k) for k in KEYS]).alias("keys"),
        F.sum(F.when(F.col("source_system").isNull() | F.col("source_record_id").isNull()
                     | F.col("person_id").isNull(), 1).otherwise(0)).alias("nulls"),
    ).first()  # bounded: one row
    if not row["rows"]:
        raise DataQualityError(f"{description}: no records")
    if row["nulls"]:
        raise DataQualityError(f"{description}: {row['nulls']} rows with a null source_system, "
                               "source_record_id or person_id")
    if row["keys"] != row["rows"]:
        raise DataQualityError(f"{description}: {row['rows'] - row['keys']} duplicate (source_system, "
                               "source_record_id) rows; each record needs exactly one person_id")


def _normalised_labels(labels: DataFrame) -> DataFrame:
    """Each unordered pair once, its smaller (source, id) on the left; pairs of a record with itself dropped."""
    swap = (F.col("source_system_l") > F.col("source_system_r")) | (
        (F.col("source_system_l") == F.col("source_system_r"))
        & (F.col("source_record_id_l") > F.col("source_record_id_r")))
    side = {"l": "r", "r": "l"}
    return labels.select(
        *[F.when(swap, F.col(f"{c}_{side[s]}")).otherwise(F.col(f"{c}_{s}")).alias(f"{c}_{s}")
          for s in ("l", "r") for c in KEYS], "is_match",
    ).where((F.col("source_system_l") != F.col("source_system_r"))
            | (F.col("source_record_id_l") != F.col("source_record_id_r"))).dropDuplicates()


def check_labels(labels: DataFrame, *, description: str = "labels") -> None:
    """Fail early on no labelled pairs, null fields, or a pair labelled both match and non-match."""
    null = F.lit(False)
    for c in LABEL_COLUMNS:
        null = null | F.col(c).isNull()
    nulls = labels.agg(F.count(F.lit(1)).alias("rows"),
                       F.sum(F.when(null, 1).otherwise(0)).alias("nulls")).first()  # bounded: one row
    if not nulls["rows"]:
        raise DataQualityError(f"{description}: no labelled pairs")
    if nulls["nulls"]:
        raise DataQualityError(f"{description}: {nulls['nulls']} rows with a null id or is_match "
                               "(is_match takes true/false, 1/0 or yes/no)")
    pair = [f"{c}_{s}" for s in ("l", "r") for c in KEYS]
    conflicts = _normalised_labels(labels).groupBy(*pair).agg(F.count(F.lit(1)).alias("labels")) \
        .where(F.col("labels") > 1).count()  # bounded: a count
    if conflicts:
        raise DataQualityError(f"{description}: {conflicts} pairs are labelled both match and non-match")


# --- truth table: counts per group --------------------------------------------------------------------------------

def _assign_clusters(crosswalk: DataFrame, truth: DataFrame) -> DataFrame:
    """Truth records with their predicted cluster; a record the crosswalk lacks is a cluster of its own."""
    unlinked = F.concat_ws("\u0001", F.lit("unlinked"), *[F.col(k) for k in KEYS])  # no source name has \u0001
    return truth.select(*KEYS, "person_id") \
        .join(crosswalk.select(*KEYS, "cluster_id"), KEYS, how="left") \
        .select(*KEYS, "person_id", F.col("cluster_id").isNull().alias("missing"),
                F.coalesce(F.col("cluster_id"), unlinked).alias("cluster_id"))


def _safe_ratio(numerator: Column, denominator: Column, *, empty: float | None) -> Column:
    return F.when(denominator > 0, numerator / denominator).otherwise(F.lit(empty).cast("double"))


def _with_rates(df: DataFrame) -> DataFrame:
    """Adds precision, recall and F1 from predicted_pairs, true_pairs and true_positive_pairs."""
    tp = F.col("true_positive_pairs")
    df = df.withColumns({"precision": _safe_ratio(tp, F.col("predicted_pairs"), empty=1.0),
                         "recall": _safe_ratio(tp, F.col("true_pairs"), empty=1.0)})
    p, r = F.col("precision"), F.col("recall")
    return df.withColumn("f1", _safe_ratio(2 * p * r, p + r, empty=0.0))


def overall_metrics(crosswalk: DataFrame, truth: DataFrame) -> DataFrame:
    """``crosswalk(source_system, source_record_id, cluster_id)`` vs ``truth(source_system, source_record_id,
    person_id)`` -> one row: truth_records, truth_records_missing, the pair counts, precision, recall, f1,
    bcubed_precision, bcubed_recall, predicted_clusters, true_clusters, people_split, clusters_merging and their
    shares. Lazy: nothing runs until it is read.
    """
    groups = _assign_clusters(crosswalk, truth).groupBy("cluster_id", "person_id").agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col("missing").cast("long")).alias("missing"))
    by_cluster, by_person = Window.partitionBy("cluster_id"), Window.partitionBy("person_id")
    groups = groups.select(
        "n", "missing",
        F.sum("n").over(by_cluster).alias("cluster_n"),
        F.count(F.lit(1)).over(by_cluster).alias("people_in_cluster"),
        F.sum("n").over(by_person).alias("person_n"),
        F.count(F.lit(1)).over(by_person).alias("clusters_of_person"),
        # one row per cluster and per person to count them without a distinct aggregate
        (F.row_number().over(by_cluster.orderBy("person_id")) == 1).alias("first_of_cluster"),
        (F.row_number().over(by_person.orderBy("cluster_id")) == 1).alias("first_of_person"),
    )
    n = F.col("n").cast("double")

    def count_if(condition: Column) -> Column:
        return F.coalesce(F.sum(F.when(condition, 1).otherwise(0)), F.lit(0)).cast("long")

    def total(value: Column) -> Column:
        return F.coalesce(F.sum(value), F.lit(0.0))

    totals = groups.agg(
        F.coalesce(F.sum("n"), F.lit(0)).cast("long").alias("truth_records"),
        F.coalesce(F.sum("missing"), F.lit(0)).cast("long").alias("truth_records_missing"),
        total(n * (F.col("cluster_n") - 1) / 2).alias("predicted_pairs"),
        total(n * (F.col("person_n") - 1) / 2).alias("true_pairs"),
        total(n * (n - 1) / 2).alias("true_positive_pairs"),
        total(n * n / F.col("cluster_n")).alias("bcubed_precision_sum"),
        total(n * n / F.col("person_n")).alias("bcubed_recall_sum"),
        count_if(F.col("first_of_cluster")).alias("predicted_clusters"),
        count_if(F.col("first_of_person")).alias("true_clusters"),
        count_if(F.col("first_of_person") & (F.col("clusters_of_person") > 1)).alias("people_split"),
        count_if(F.col("first_of_cluster") & (F.col("people_in_cluster") > 1)).alias("clusters_merging"),
    )
    records = F.col("truth_records")
    return _with_rates(totals).select(
        "truth_records", "truth_records_missing", *PAIR_COUNTS, *RATES,
        _safe_ratio(F.col("bcubed_precision_sum"), records, empty=None).alias("bcubed_precision"),
        _safe_ratio(F.col("bcubed_recall_sum"), records, empty=None).alias("bcubed_recall"),
        "predicted_clusters", "true_clusters", "people_split", "clusters_merging",
        _safe_ratio(F.col("people_split"), F.col("true_clusters"), empty=None).alias("share_people_split"),
        _safe_ratio(F.col("clusters_merging"), F.col("predicted_clusters"), empty=None)
        .alias("share_clusters_merging"),
    )


def _as_dict(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {k: (float(row[k]) if isinstance(row[k], float) else row[k]) for k in names}


def pairwise_metrics(crosswalk: DataFrame, truth: DataFrame) -> dict[str, float]:
    """``crosswalk(source_system, source_record_id, cluster_id)`` vs ``truth(source_system, source_record_id,
    person_id)`` -> precision, recall, F1 and pair counts over the records in the truth.

    A truth record missing from the crosswalk (rejected) counts as unlinked, so rejects cost recall.
    """
    row = overall_metrics(crosswalk, truth).first()  # bounded: one row
    return {k: float(row[k]) for k in (*RATES, *PAIR_COUNTS)}


def cluster_metrics(crosswalk: DataFrame, truth: DataFrame) -> dict[str, Any]:
    """B-cubed precision and recall, predicted and true cluster counts, people split and clusters merging (counts
    and shares), and the truth records evaluated and missing from the crosswalk. Same inputs as pairwise_metrics.
    """
    return _as_dict(overall_metrics(crosswalk, truth).first(), CLUSTER_METRICS)  # bounded: one row


def _pairs_by_source_pair(counts: DataFrame, key: list[str], name: str) -> DataFrame:
    """``counts(*key, source_system, n)`` -> ``(source_system_l, source_system_r, <name>)``: the record pairs
    inside each key group, summed per unordered source pair (l <= r)."""
    left, right = counts.alias("l"), counts.alias("r")
    condition = [F.col(f"l.{k}") == F.col(f"r.{k}") for k in key] \
        + [F.col("l.source_system") <= F.col("r.source_system")]
    n_l, n_r = F.col("l.n").cast("double"), F.col("r.n").cast("double")
    pairs = F.when(F.col("l.source_system") == F.col("r.source_system"), n_l * (n_l - 1) / 2).otherwise(n_l * n_r)
    return left.join(right, condition, how="inner") \
        .groupBy(F.col("l.source_system").alias("source_system_l"), F.col("r.source_system").alias("source_system_r")) \
        .agg(F.sum(pairs).alias(name))


def pairwise_metrics_by_source_pair(crosswalk: DataFrame, truth: DataFrame) -> DataFrame:
    """Same inputs as pairwise_metrics -> one row per unordered source pair that has a predicted or a true pair:
    ``source_system_l <= source_system_r, predicted_pairs, true_pairs, true_positive_pairs, precision, recall,
    f1``. Pairs within one source have l = r. The rows' pair counts sum to pairwise_metrics'."""
    counts = _assign_clusters(crosswalk, truth).groupBy("cluster_id", "person_id", "source_system") \
        .agg(F.count(F.lit(1)).alias("n"))

    def per(key: str) -> DataFrame:
        return counts.groupBy(key, "source_system").agg(F.sum("n").alias("n"))

    parts = [_pairs_by_source_pair(per("cluster_id"), ["cluster_id"], "predicted_pairs"),
             _pairs_by_source_pair(per("person_id"), ["person_id"], "true_pairs"),
             _pairs_by_source_pair(counts, ["cluster_id", "person_id"], "true_positive_pairs")]
    combined = parts[0].unionByName(parts[1], allowMissingColumns=True) \
        .unionByName(parts[2], allowMissingColumns=True) \
        .groupBy("source_system_l", "source_system_r") \
        .agg(*[F.coalesce(F.sum(c), F.lit(0.0)).alias(c) for c in PAIR_COUNTS]) \
        .where((F.col("predicted_pairs") > 0) | (F.col("true_pairs") > 0))
    return _with_rates(combined).select("source_system_l", "source_system_r", *PAIR_COUNTS, *RATES)


# --- labelled pairs -----------------------------------------------------------------------------------------------

def _labelled_outcomes(crosswalk: DataFrame, labels: DataFrame) -> DataFrame:
    """Labelled pairs (each unordered pair once) with ``predicted_match`` (same cluster) and ``missing`` (a side
    not in the crosswalk, so predicted a non-match)."""
    pairs = _normalised_labels(labels).alias("p")
    cw = crosswalk.select(*KEYS, "cluster_id")
    joined = pairs
    for side in ("l", "r"):
        joined = joined.join(cw.alias(side), (F.col(f"p.source_system_{side}") == F.col(f"{side}.source_system"))
                             & (F.col(f"p.source_record_id_{side}") == F.col(f"{side}.source_record_id")),
                             how="left")
    return joined.select(
        F.col("p.source_system_l").alias("source_system_l"), F.col("p.source_system_r").alias("source_system_r"),
        F.col("p.is_match").alias("is_match"),
        F.coalesce(F.col("l.cluster_id") == F.col("r.cluster_id"), F.lit(False)).alias("predicted_match"),
        (F.col("l.cluster_id").isNull() | F.col("r.cluster_id").isNull()).alias("missing"),
    )


def _labelled_totals(outcomes: DataFrame, by: list[str]) -> DataFrame:
    def count_if(condition: Column) -> Column:
        return F.coalesce(F.sum(F.when(condition, 1).otherwise(0)), F.lit(0)).cast("long")

    totals = outcomes.groupBy(*by).agg(
        F.count(F.lit(1)).alias("labelled_pairs"),
        count_if(F.col("missing")).alias("labelled_pairs_missing"),
        count_if(F.col("predicted_match")).cast("double").alias("predicted_pairs"),
        count_if(F.col("is_match")).cast("double").alias("true_pairs"),
        count_if(F.col("predicted_match") & F.col("is_match")).cast("double").alias("true_positive_pairs"),
    )
    return _with_rates(totals).select(*by, *LABEL_COUNTS, *PAIR_COUNTS, *RATES)


def labelled_pair_metrics(crosswalk: DataFrame, labels: DataFrame) -> dict[str, Any]:
    """``crosswalk(source_system, source_record_id, cluster_id)`` vs labelled pairs ``(source_system_l,
    source_record_id_l, source_system_r, source_record_id_r, is_match)`` -> precision, recall, F1, the pair counts
    and labelled_pairs / labelled_pairs_missing. A pair is predicted a match when both records share a cluster."""
    row = _labelled_totals(_labelled_outcomes(crosswalk, labels), []).first()  # bounded: one row
    return _as_dict(row, (*RATES, *PAIR_COUNTS, *LABEL_COUNTS))


def labelled_pair_metrics_by_source_pair(crosswalk: DataFrame, labels: DataFrame) -> DataFrame:
    """As labelled_pair_metrics, one row per unordered source pair of the labels (source_system_l <= _r)."""
    return _labelled_totals(_labelled_outcomes(crosswalk, labels), ["source_system_l", "source_system_r"])


# --- the output table ---------------------------------------------------------------------------------------------

def evaluation_rows(crosswalk: DataFrame, *, truth: DataFrame | None = None, labels: DataFrame | None = None,
                    run_id: str, truth_description: str, evaluated_at: datetime,
                    crosswalk_version: int | None = None) -> DataFrame:
    """The rows of the evaluations table (schemas.EVALUATIONS) for one crosswalk and one truth table or labelled
    pairs table (exactly one): an overall row with null source_system_l/r, then one row per source pair."""
    if (truth is None) == (labels is None):
        raise ValueError("give exactly one of truth or labels")
    if truth is not None:
        kind, overall, by_pair = "records", overall_metrics(crosswalk, truth), \
            pairwise_metrics_by_source_pair(crosswalk, truth)
    else:
        outcomes = _labelled_outcomes(crosswalk, labels)
        kind, overall, by_pair = "labelled_pairs", _labelled_totals(outcomes, []), \
            _labelled_totals(outcomes, ["source_system_l", "source_system_r"])
    rows = overall.unionByName(by_pair, allowMissingColumns=True)
    meta = {"run_id": F.lit(run_id), "evaluated_at": F.lit(evaluated_at), "crosswalk_version": F.lit(crosswalk_version),
            "truth": F.lit(truth_description), "truth_kind": F.lit(kind)}
    rows = rows.withColumns(meta)
    absent = {f.name: F.lit(None).cast(f.dataType) for f in EVALUATIONS.fields if f.name not in rows.columns}
    return conform(rows.withColumns(absent), EVALUATIONS)


def add_breakdown(rows: list[dict[str, Any]], breakdown: Mapping[Any, dict[str, Any]], fields: Sequence[str]) -> None:
    """Put misses.miss_breakdown's counts on the evaluation rows (dicts, changed in place): the overall row's on
    the row whose sources are null, each source pair's on its row; a row with nothing missed gets zeros."""
    nothing_missed = empty_breakdown(fields)
    for r in rows:
        key = None if r["source_system_l"] is None else (r["source_system_l"], r["source_system_r"])
        r.update(breakdown.get(key, nothing_missed))


@dataclass(frozen=True)
class Evaluation:
    """What evaluate_run wrote: the overall row and the rows per source pair (bounded: one per source pair)."""

    run_id: str
    crosswalk_version: int
    truth: str
    truth_kind: str
    overall: dict[str, Any]
    by_source_pair: list[dict[str, Any]]


def evaluate_run(spark: SparkSession, output: OutputTables, *, truth: DataFrame | None = None,
                 labels: DataFrame | None = None, truth_description: str, run_id: str | None = None,
                 max_versions: int = 50, misses: Callable[[str], MissInputs | None] | None = None) -> Evaluation:
    """Evaluate a run's crosswalk (default: the current one) and replace that run's rows for this truth in
    ``<database>.<evaluations>``. ``truth`` / ``labels`` are already conformed (conform_truth / conform_labels).
    With ``misses`` (run id -> the run's records, edges, rules and thresholds: misses.run_miss_inputs) each row
    also says why its missed true pairs were missed (quality/misses.py); without (or given None), they are null.
    """
    if (truth is None) == (labels is None):
        raise ValueError("give exactly one of truth or labels")
    crosswalk, version, run_id = read_table_as_of_run(spark, output.qualified("crosswalk"), run_id=run_id,
                                                      max_versions=max_versions)
    if truth is not None:
        check_truth(truth, description=truth_description)
    else:
        check_labels(labels, description=truth_description)
    log.info("evaluating run %s (crosswalk version %s) against %s", run_id, version, truth_description)
    rows = evaluation_rows(crosswalk, truth=truth, labels=labels, run_id=run_id, truth_description=truth_description,
                           evaluated_at=datetime.now(timezone.utc), crosswalk_version=version).collect()  # bounded
    # bounded: one row per source pair plus one; written from the driver so the metrics are computed once
    overall = next(r.asDict() for r in rows if r["source_system_l"] is None)
    if truth is not None and overall["truth_records_missing"] == overall["truth_records"]:
        raise DataQualityError(f"{truth_description}: none of its {overall['truth_records']} records is in the "
                               "crosswalk; do its source_system names match the configured sources?")
    if labels is not None and overall["labelled_pairs_missing"] == overall["labelled_pairs"]:
        raise DataQualityError(f"{truth_description}: no labelled pair has both records in the crosswalk; do its "
                               "source_system names match the configured sources?")
    rows = [r.asDict() for r in rows]
    inputs = misses(run_id) if misses is not None else None
    if inputs is not None:
        pairs = true_pairs_of_truth(truth) if truth is not None else true_pairs_of_labels(labels)
        try:
            add_breakdown(rows, miss_breakdown(pairs, crosswalk.select(*KEYS, "cluster_id"), inputs),
                          fields_of(inputs.records))
        finally:
            inputs.release()
    overall = next(r for r in rows if r["source_system_l"] is None)
    ensure_database(spark, output)
    replace_rows(spark.createDataFrame(rows, EVALUATIONS), output.qualified("evaluations"),
                 {"run_id": run_id, "truth_kind": overall["truth_kind"], "truth": truth_description})
    by_pair = sorted((r for r in rows if r["source_system_l"] is not None),
                     key=lambda r: (r["source_system_l"], r["source_system_r"]))
    return Evaluation(run_id, version, truth_description, overall["truth_kind"], overall, by_pair)


# --- threshold evidence -----------------------------------------------------------------------------------------------

SWEEP_THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def threshold_sweep(records: DataFrame, edges: DataFrame, *, truth: DataFrame | None = None,
                    labels: DataFrame | None = None, thresholds: Sequence[float] = SWEEP_THRESHOLDS,
                    constraints: ConstraintSettings | None = None, rules: Sequence[Any] = (),
                    best_link_only_below: float | None = None) -> list[dict[str, Any]]:
    """Re-cluster the recorded ``edges`` at each threshold and score the clusters against ``truth`` (records with
    person ids) or ``labels`` (pairs decided by review): one row per (threshold, clustering) with precision,
    recall and F1, so a team with labels picks ``cluster_threshold`` from figures. Thresholds below the run's
    ``edge_threshold`` see only the edges recorded. ``records``: the accepted records (keys, and the constraint
    columns when ``constraints`` are given); with constraints (and the model's pair ``rules``, and
    ``best_link_only_below`` as the run applies it) each threshold is clustered both ways.
    """
    if (truth is None) == (labels is None):
        raise ValueError("give exactly one of truth or labels")
    methods = [("connected_components", None)]
    if constraints is not None and constraints.any:
        methods.append(("constrained", constraints))
    rows = []
    for threshold in thresholds:
        for name, chosen in methods:
            clusters = cluster_records(records if chosen else records.select(*KEYS), edges, threshold=threshold,
                                       constraints=chosen, rules=rules if chosen else (),
                                       best_link_only_below=best_link_only_below if chosen else None)
            crosswalk = clusters.records.select(*KEYS, F.col("component").alias("cluster_id"))
            scores = (pairwise_metrics(crosswalk, truth) if truth is not None
                      else labelled_pair_metrics(crosswalk, labels))
            rows.append({"threshold": threshold, "clustering": name,
                         **{k: scores[k] for k in ("precision", "recall", "f1")}})
            log.info("sweep: threshold %s, %s: precision %.4f recall %.4f F1 %.4f", threshold, name,
                     scores["precision"], scores["recall"], scores["f1"])
    return rows
