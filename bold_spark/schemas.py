"""The canonical person schema and the output table contracts, as StructTypes every stage ends with."""
from __future__ import annotations

from pyspark.sql import DataFrame, functions as F, types as T

from bold_spark.errors import SchemaContractError

CANONICAL_PERSON = T.StructType([
    T.StructField("source_system", T.StringType(), False),
    T.StructField("source_record_id", T.StringType(), False),
    T.StructField("first_name", T.StringType()),
    T.StructField("middle_names", T.StringType()),
    T.StructField("surname", T.StringType()),
    T.StructField("date_of_birth", T.DateType()),
    T.StructField("birth_year", T.IntegerType()),  # from the date of birth, or a year / age where that is all a source has
    T.StructField("sex", T.StringType()),
    T.StructField("postcode", T.StringType()),
    T.StructField("postcode_district", T.StringType()),
    T.StructField("nino", T.StringType()),
    T.StructField("nhs_number", T.StringType()),
    T.StructField("pnc_id", T.StringType()),
    T.StructField("other_id", T.StringType()),
    T.StructField("address", T.StringType()),
    # What a placeholder postcode says (standardise/postcodes.py ADDRESS_STATUSES: no_fixed_abode, not_known,
    # uk_not_specified, overseas, pseudo_postcode_other); null for a real postcode or none. Not compared.
    T.StructField("address_status", T.StringType()),
])

CROSSWALK = T.StructType([
    T.StructField("source_system", T.StringType(), False),
    T.StructField("source_record_id", T.StringType(), False),
    T.StructField("cluster_id", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
    T.StructField("cluster_size", T.IntegerType(), False),
    T.StructField("match_probability", T.DoubleType()),
])

# A pair of records (both sides' keys) and how it scored: shared by match_edges, the review queue and decisions.
PAIR_KEYS = [T.StructField(f"{key}_{side}", T.StringType(), False)
             for side in ("l", "r") for key in ("source_system", "source_record_id")]
PAIR_SCORE = [
    T.StructField("match_weight", T.DoubleType()),
    T.StructField("match_probability", T.DoubleType()),
    T.StructField("comparison_levels", T.MapType(T.StringType(), T.IntegerType())),
]

MATCH_EDGES = T.StructType([
    *PAIR_KEYS,
    *PAIR_SCORE,
    T.StructField("run_id", T.StringType(), False),
])

REJECTS = T.StructType([
    T.StructField("source_system", T.StringType(), False),
    T.StructField("source_record_id", T.StringType()),  # null when the id itself is missing
    T.StructField("reason", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
])

SOURCE_COUNTS = T.StructType([
    T.StructField("source_system", T.StringType(), False),
    T.StructField("table", T.StringType(), False),
    T.StructField("delta_version", T.LongType()),
    T.StructField("partition_filter", T.StringType()),
    T.StructField("records_read", T.LongType(), False),
    T.StructField("records_accepted", T.LongType(), False),
    T.StructField("records_rejected", T.LongType(), False),
    T.StructField("invalid_values", T.MapType(T.StringType(), T.LongType())),
])

LINK_RUNS = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("job", T.StringType(), False),
    T.StructField("status", T.StringType(), False),
    T.StructField("started_at", T.TimestampType(), False),
    T.StructField("ended_at", T.TimestampType(), False),
    T.StructField("model_id", T.StringType()),
    T.StructField("config_digest", T.StringType(), False),
    T.StructField("inputs", T.ArrayType(SOURCE_COUNTS)),
    T.StructField("comparisons_scored", T.LongType()),
    T.StructField("edges_recorded", T.LongType()),
    T.StructField("crosswalk_rows", T.LongType()),
    T.StructField("clusters", T.LongType()),
    T.StructField("stage_seconds", T.MapType(T.StringType(), T.DoubleType())),
    T.StructField("spark_master", T.StringType()),
    T.StructField("message", T.StringType()),
    # Added later (Delta schema evolution on append; older rows read null): totals over the inputs.
    T.StructField("records_read", T.LongType()),
    T.StructField("records_rejected", T.LongType()),
    # Per prediction blocking rule, from block sizes before any join: the pairs its keys generate, the running
    # total (an upper bound of comparisons_scored: a pair two rules find counts twice), its largest blocks' sizes.
    T.StructField("blocking_estimates", T.ArrayType(T.StructType([
        T.StructField("rule", T.StringType()),
        T.StructField("rule_comparisons", T.LongType()),
        T.StructField("cumulative_comparisons", T.LongType()),
        T.StructField("largest_blocks", T.ArrayType(T.StructType([
            T.StructField("records_l", T.LongType()),
            T.StructField("records_r", T.LongType()),
            T.StructField("pairs", T.LongType()),
        ]))),
    ]))),
    T.StructField("report_path", T.StringType()),  # the run's HTML quality report
    # The Spark SQL queries and Spark jobs the run started: each one planned on the driver (bold_spark/session.py).
    T.StructField("spark_sql_executions", T.LongType()),
    T.StructField("spark_jobs", T.LongType()),
    # The model scored with: the training run that saved it, the sources it was trained on (table, Delta version,
    # records read; other sources or older versions are allowed), and how this run's prediction rules and
    # thresholds differ from those at training (allowed: they do not change a pair's score).
    T.StructField("model_trained_by_run", T.StringType()),
    T.StructField("model_training_inputs", T.ArrayType(T.StructType([
        T.StructField("source_system", T.StringType()),
        T.StructField("table", T.StringType()),
        T.StructField("delta_version", T.LongType()),
        T.StructField("records_read", T.LongType()),
    ]))),
    T.StructField("model_differences", T.ArrayType(T.StringType())),
    # Clerical review (bold_spark/review/): the current decisions whose two records are both in this run's accepted
    # input (applied), those with a record no longer there (withdrawn at source or now rejected: reported, not
    # applied), edges at the threshold cut to keep cannot_link pairs apart, and applied decisions the published
    # clusters still contradict (only possible when decisions inserted by SQL contradict each other).
    T.StructField("review_decisions_applied", T.LongType()),
    T.StructField("review_decisions_not_applicable", T.LongType()),
    T.StructField("review_edges_cut", T.LongType()),
    T.StructField("review_decisions_unmet", T.LongType()),
])

# One row per (run, truth) for the whole crosswalk (source_system_l/r null) and one per unordered source pair
# (l <= r; l = r for pairs within one source). Pair counts are doubles: sums of n*(n-1)/2 over clusters.
# truth_kind "records": a truth table of person ids; the cluster-level columns are on the overall row only.
# truth_kind "labelled_pairs": a table of labelled pairs; pair figures only, counted over the labelled pairs.
EVALUATIONS = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("evaluated_at", T.TimestampType(), False),
    T.StructField("crosswalk_version", T.LongType()),  # the crosswalk's Delta version that was evaluated
    T.StructField("truth", T.StringType(), False),  # which table: "delta path ..." or "catalog table ..."
    T.StructField("truth_kind", T.StringType(), False),
    T.StructField("source_system_l", T.StringType()),
    T.StructField("source_system_r", T.StringType()),
    T.StructField("truth_records", T.LongType()),
    T.StructField("truth_records_missing", T.LongType()),  # in the truth, not in the crosswalk (rejected)
    T.StructField("labelled_pairs", T.LongType()),
    T.StructField("labelled_pairs_missing", T.LongType()),  # a side not in the crosswalk (counted as non-match)
    T.StructField("predicted_pairs", T.DoubleType()),
    T.StructField("true_pairs", T.DoubleType()),
    T.StructField("true_positive_pairs", T.DoubleType()),
    T.StructField("precision", T.DoubleType()),
    T.StructField("recall", T.DoubleType()),
    T.StructField("f1", T.DoubleType()),
    T.StructField("bcubed_precision", T.DoubleType()),
    T.StructField("bcubed_recall", T.DoubleType()),
    T.StructField("predicted_clusters", T.LongType()),
    T.StructField("true_clusters", T.LongType()),
    T.StructField("share_people_split", T.DoubleType()),
    T.StructField("share_clusters_merging", T.DoubleType()),
    # Why the true pairs missed were missed (quality/misses.py); null when the run's records or edges were not read.
    T.StructField("missed_pairs", T.LongType()),
    T.StructField("missed_rejected", T.LongType()),
    T.StructField("missed_split_by_clustering", T.LongType()),
    T.StructField("missed_between_thresholds", T.LongType()),
    T.StructField("missed_below_edge_threshold", T.LongType()),
    T.StructField("missed_not_blocked", T.LongType()),
    T.StructField("not_blocked_field_missing", T.MapType(T.StringType(), T.LongType())),
    T.StructField("not_blocked_field_disagreeing", T.MapType(T.StringType(), T.LongType())),
])


def conform(df: DataFrame, schema: T.StructType) -> DataFrame:
    """Select and cast ``df`` to ``schema``'s columns in order: the output contract of a public transform."""
    missing = [f.name for f in schema.fields if f.name not in df.columns]
    if missing:
        raise SchemaContractError(f"missing column(s) for the output contract: {', '.join(missing)}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


# bold.cluster_events: what each link run did to person ids (issue 5). event: new (records no previous cluster
# held), split (a part of related_cluster_id that got a new id), merged (cluster_id retired into
# related_cluster_id; records = records it brought), retired (none of its records remain: deleted or rejected).
CLUSTER_EVENTS = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("event", T.StringType(), False),
    T.StructField("cluster_id", T.StringType(), False),
    T.StructField("related_cluster_id", T.StringType()),
    T.StructField("records", T.LongType(), False),
    T.StructField("at", T.TimestampType(), False),
    # Added later (null in older rows): why, when a review decision caused it: cannot_link (a split) or must_link (a
    # merge); null for changes the scores and constraints made on their own.
    T.StructField("reason", T.StringType()),
])

# bold.run_quality: what every run says about itself without truth, one row per (run, metric, dimension keys), so
# successive runs compare in SQL. See bold_spark/quality/run_quality.py for the metrics and what each key holds:
# source_system_l/r a source pair (r null: any other record), dimension + dimension_value a group (sex, age_band,
# region) or a comparison and its level label, bucket_low/high a histogram bin or a comparison level's gamma value.
RUN_QUALITY = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("computed_at", T.TimestampType(), False),
    T.StructField("metric", T.StringType(), False),
    T.StructField("source_system_l", T.StringType()),
    T.StructField("source_system_r", T.StringType()),
    T.StructField("dimension", T.StringType()),
    T.StructField("dimension_value", T.StringType()),
    T.StructField("bucket_low", T.DoubleType()),
    T.StructField("bucket_high", T.DoubleType()),
    T.StructField("value", T.DoubleType()),
    T.StructField("records", T.LongType()),  # how many records / edges / clusters the value is computed over
])

# bold.record_groups: one row per standardised record, coarse and non-identifying (bold_spark/quality/groups.py):
# the event date, and sex (M/F/X), age band at the event ('0-17' ... '65+') and ONS region, each 'unknown' if absent;
# the address status a pseudo-postcode gave (no_fixed_abode, overseas...), null otherwise.
RECORD_GROUPS = T.StructType([
    T.StructField("source_system", T.StringType(), False),
    T.StructField("source_record_id", T.StringType()),  # null when the record's id is missing (it is rejected)
    T.StructField("event_date", T.DateType()),
    T.StructField("sex", T.StringType(), False),
    T.StructField("age_band", T.StringType(), False),
    T.StructField("region", T.StringType(), False),
    T.StructField("address_status", T.StringType()),  # the canonical address_status: no_fixed_abode... or null
])


# bold.review_decisions: what reviewers decided about pairs of records, append-only (bold_spark/review/decisions.py).
# Loaded by jobs/review.py import (validated, all or nothing) or by SQL INSERT; every later run reads it. The latest
# decision on a pair (decided_at) is the one that holds. ``reason`` is the reviewer's own text.
REVIEW_DECISIONS = T.StructType([
    *PAIR_KEYS,
    T.StructField("decision", T.StringType(), False),  # must_link or cannot_link
    T.StructField("reviewer", T.StringType(), False),
    T.StructField("reason", T.StringType()),
    T.StructField("decided_at", T.TimestampType(), False),
])

# bold.review_queue: the pairs a reviewer should look at after the latest link run (bold_spark/review/queue.py), one
# row per pair, ids and comparison levels only; replaced by every run. reason: near_threshold (match probability in
# the configured band around cluster_threshold) or flagged_cluster:<why> (an edge holding together a cluster the
# quality measures flag: too_large, date_of_birth, sex). Highest priority first.
REVIEW_QUEUE = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    *PAIR_KEYS,
    *PAIR_SCORE,
    T.StructField("cluster_id_l", T.StringType()),
    T.StructField("cluster_id_r", T.StringType()),
    T.StructField("reason", T.StringType(), False),
    T.StructField("priority", T.DoubleType(), False),
])
