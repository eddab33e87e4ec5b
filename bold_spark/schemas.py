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
])

CROSSWALK = T.StructType([
    T.StructField("source_system", T.StringType(), False),
    T.StructField("source_record_id", T.StringType(), False),
    T.StructField("cluster_id", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
    T.StructField("cluster_size", T.IntegerType(), False),
    T.StructField("match_probability", T.DoubleType()),
])

MATCH_EDGES = T.StructType([
    T.StructField("source_system_l", T.StringType(), False),
    T.StructField("source_record_id_l", T.StringType(), False),
    T.StructField("source_system_r", T.StringType(), False),
    T.StructField("source_record_id_r", T.StringType(), False),
    T.StructField("match_weight", T.DoubleType()),
    T.StructField("match_probability", T.DoubleType()),
    T.StructField("comparison_levels", T.MapType(T.StringType(), T.IntegerType())),
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
])


def conform(df: DataFrame, schema: T.StructType) -> DataFrame:
    """Select and cast ``df`` to ``schema``'s columns in order: the output contract of a public transform."""
    missing = [f.name for f in schema.fields if f.name not in df.columns]
    if missing:
        raise SchemaContractError(f"missing column(s) for the output contract: {', '.join(missing)}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])
