"""Frequent values: a value of a linkage field that more of a source's records hold than people could.

A system that fills an unknown date of birth, postcode or identifier with one value of its own (a date no list
names, the office's postcode) makes everyone holding it agree on that field. ``bold_spark.validate`` finds such
values from the data, in its one aggregate pass over each source: per field, the approximate top values
(``approx_top_k``, a bounded sketch) of a key that is a 64-bit hash of the value's normal form, so only hashes and
counts reach the driver, never a value. ``standardise_source`` then nulls the values whose hashes it is given,
and counts them as placeholders.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, functions as F, types as T

from bold_spark.config import SourceConfig, ValidationPolicy
from bold_spark.standardise.dates import is_placeholder_date, parse_date
from bold_spark.standardise.postcodes import is_placeholder_postcode

# The linkage fields checked, and the source mapping key each is read from.
FREQUENT_FIELDS = ("date_of_birth", "postcode", "first_name", "surname", "nino", "nhs_number", "pnc_id",
                   "other_id")
TOP_VALUES = 3  # values kept per field and source: more than one placeholder per field is rare
SKETCH_ITEMS = 1024  # approx_top_k's tracked items: counts are exact below it, close above (a frequent-items sketch)


def as_text(df: DataFrame, column: str) -> Column:
    """A source column as trimmed text, blanks null; dates in ISO form (standardise/person.py's rule)."""
    dtype = df.schema[column].dataType
    value = F.col(f"`{column}`")
    if isinstance(dtype, (T.DateType, T.TimestampType)):
        value = F.date_format(value, "yyyy-MM-dd")
    text = F.trim(value.cast("string"))
    return F.when(text != "", text)


def any_date_of_birth(raw: DataFrame, source: SourceConfig) -> Column:
    """The source's date of birth parsed without bounds (a placeholder may lie before 1900); null if unmapped."""
    if not source.date_of_birth:
        return F.lit(None).cast("date")
    column, formats = source.date_of_birth.column, source.date_of_birth.formats
    if isinstance(raw.schema[column].dataType, (T.DateType, T.TimestampType)):
        formats = ("yyyy-MM-dd",)
    return parse_date(as_text(raw, column), formats=formats, earliest="0001-01-01",
                      latest=F.lit("9999-12-31").cast("date"))


def frequent_value_keys(raw: DataFrame, source: SourceConfig, policy: ValidationPolicy) -> dict[str, Column]:
    """Per checked field the source maps: a bigint hash of the value's normal form (a parsed date, a postcode in
    upper case without spaces, a name in lower case, an identifier's letters and digits in upper case), null where
    there is no value or a known placeholder (those are nulled and counted already). xxhash64 of null is its seed,
    not null, so every key is guarded."""
    keys: dict[str, Column] = {}
    if source.date_of_birth:
        dob = any_date_of_birth(raw, source)
        listed = is_placeholder_date(dob, dates=policy.placeholder_dates_of_birth)
        keys["date_of_birth"] = F.when(dob.isNotNull() & ~listed, F.xxhash64(dob.cast("string")))
    if source.postcode:
        text = as_text(raw, source.postcode.column)
        compact = F.regexp_replace(F.upper(text), r"[^A-Z0-9]", "")
        known = is_placeholder_postcode(text, pattern=policy.placeholder_postcodes)
        keys["postcode"] = F.when((compact != "") & ~known, F.xxhash64(compact))
    for field in ("first_name", "surname"):
        if field in source.columns:
            name = F.lower(F.regexp_replace(as_text(raw, source.columns[field]), r"\s+", " "))
            keys[field] = F.when(name.isNotNull(), F.xxhash64(name))
    for field in ("nino", "nhs_number", "pnc_id", "other_id"):
        if field in source.columns:
            compact = F.regexp_replace(F.upper(as_text(raw, source.columns[field])), r"[^A-Z0-9]", "")
            keys[field] = F.when(compact != "", F.xxhash64(compact))
    return {field: keys[field] for field in FREQUENT_FIELDS if field in keys}


def top_values(key: Column) -> Column:
    """The TOP_VALUES commonest keys with their (estimated) counts: array<struct<item: bigint, count: bigint>>."""
    return F.call_function("approx_top_k", key, F.lit(TOP_VALUES), F.lit(SKETCH_ITEMS))


def is_frequent_value(key: Column, hashes: Sequence[int]) -> Column:
    """True where ``key`` is one of the frequent values' ``hashes``; false otherwise and for null."""
    if not hashes:
        return F.lit(False)
    return F.coalesce(key.isin(*[F.lit(h).cast("long") for h in hashes]), F.lit(False))


def frequent_flags(raw: DataFrame, source: SourceConfig, policy: ValidationPolicy,
                   frequent: Mapping[str, Sequence[int]]) -> dict[str, Column]:
    """Per field with frequent values: true where the record holds one of them."""
    keys = frequent_value_keys(raw, source, policy)
    return {field: is_frequent_value(keys[field], hashes) for field, hashes in frequent.items()
            if hashes and field in keys}
