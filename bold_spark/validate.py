"""Input validation before any work: every check for one source in one aggregate pass, then fail or reject.

A department extract can be broken as a whole (empty, a mapped column entirely null, most dates unparseable) or in
some records (null or duplicated ids, undecodable or control characters in names, absurd dates of birth). Whole-
source problems stop the run before anything is written; record-level problems stop it or send the records to
bold.rejects, as the ``validation:`` policy says (environment default, overridable per source). Messages carry the
file, source, column, problem and counts; never a value.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, functions as F

from bold_spark.bounded import collect_together
from bold_spark.config import SourceConfig, ValidationPolicy
from bold_spark.errors import DataQualityError
from bold_spark.standardise.dates import is_placeholder_date, parse_date
from bold_spark.standardise.frequent import frequent_value_keys, top_values
from bold_spark.standardise.person import VALIDATION_REJECT, _as_text  # same "present value" rule as standardising
from bold_spark.standardise.postcodes import is_placeholder_postcode, standardise_postcode

log = logging.getLogger(__name__)

EARLIEST_BIRTH = "1900-01-01"
# U+FFFD is what undecodable (non-UTF-8) bytes read as; \p{Cc} are control characters (tab, NUL, escape...).
BAD_NAME_CHARACTERS = r"[\x{FFFD}\p{Cc}]"

REASON_BAD_NAME_CHARACTERS = "name contains undecodable (non-UTF-8) or control characters"
REASON_IMPLAUSIBLE_DOB = "date of birth before 1900 or after the run date"


@dataclass(frozen=True)
class SourceProfile:
    """The one-row aggregate every check reads (counts only)."""

    source_system: str
    rows: int
    null_ids: int
    duplicate_ids: int  # records beyond the first for each repeated id
    non_null: dict[str, int]  # per mapped source column: records with a value
    dob_present: int
    dob_unparseable: int
    dob_implausible: int
    postcode_present: int
    postcode_unparseable: int
    bad_name_characters: dict[str, int]  # per name column
    # Per linkage field: the values more records hold than validation.frequent_value_shares allows (hash and count
    # only: standardise/frequent.py), and how many records have a value of the field.
    frequent_values: dict[str, tuple[FrequentValue, ...]] = field(default_factory=dict)

    def frequent_hashes(self) -> dict[str, tuple[int, ...]]:
        """Per field with frequent values: their hashes, what standardise_source nulls."""
        return {name: tuple(v.key for v in values) for name, values in self.frequent_values.items() if values}


@dataclass(frozen=True)
class FrequentValue:
    key: int  # the hash of the value's normal form (standardise/frequent.py); never the value
    records: int  # records holding it (approx_top_k's estimate)
    present: int  # records of the source with a value in the field
    limit: float  # the field's share in validation.frequent_value_shares

    @property
    def share(self) -> float:
        return self.records / self.present if self.present else 0.0


def _name_columns(source: SourceConfig) -> list[str]:
    names = [source.columns[k] for k in ("first_name", "middle_names", "surname") if k in source.columns]
    return names + ([source.full_name.column] if source.full_name else [])


def _dob_flags(raw: DataFrame, source: SourceConfig, latest: Column,
               policy: ValidationPolicy) -> tuple[Column, Column, Column]:
    """(present, unparseable, implausible) for the date of birth; false when the source maps none. A placeholder
    date (1900-01-01, 1800-01-01...) is neither: standardisation nulls and counts it."""
    if not source.date_of_birth:
        no = F.lit(False)
        return no, no, no
    column = source.date_of_birth.column
    formats = source.date_of_birth.formats
    if raw.schema[column].dataType.typeName() in ("date", "timestamp"):
        formats = ("yyyy-MM-dd",)
    text = _as_text(raw, column)
    parsed = parse_date(text, formats=formats, earliest="0001-01-01", latest=F.lit("9999-12-31").cast("date"))
    present = text.isNotNull()
    unparseable = present & parsed.isNull()
    implausible = parsed.isNotNull() & ((parsed < F.lit(EARLIEST_BIRTH).cast("date")) | (parsed > latest)) \
        & ~is_placeholder_date(parsed, dates=policy.placeholder_dates_of_birth)
    return present, F.coalesce(unparseable, F.lit(False)), F.coalesce(implausible, F.lit(False))


def _bad_name(raw: DataFrame, column: str) -> Column:
    return F.coalesce(F.col(f"`{column}`").cast("string").rlike(BAD_NAME_CHARACTERS), F.lit(False))


def profile_source(raw: DataFrame, *, source: SourceConfig, latest: Column,
                   policy: ValidationPolicy = ValidationPolicy()) -> DataFrame:
    """One row of counts for every check on one raw source (a single aggregate: one Spark job)."""
    def count_if(condition: Column) -> Column:
        return F.sum(condition.cast("long"))

    record_id = _as_text(raw, source.record_id)
    dob_present, dob_unparseable, dob_implausible = _dob_flags(raw, source, latest, policy)
    uk_postcode = source.postcode is not None and source.postcode.format == "uk"
    postcode_text = _as_text(raw, source.postcode.column) if uk_postcode else F.lit(None).cast("string")
    columns = sorted(set(source.source_columns().values()))
    keys = frequent_value_keys(raw, source, policy)
    return raw.agg(
        F.count(F.lit(1)).alias("rows"),
        count_if(record_id.isNull()).alias("null_ids"),
        (F.count(record_id) - F.count_distinct(record_id)).alias("duplicate_ids"),
        F.struct(*[F.count(_as_text(raw, c)).alias(c) for c in columns]).alias("non_null"),
        count_if(dob_present).alias("dob_present"),
        count_if(dob_unparseable).alias("dob_unparseable"),
        count_if(dob_implausible).alias("dob_implausible"),
        F.count(postcode_text).alias("postcode_present"),
        count_if(postcode_text.isNotNull() & standardise_postcode(postcode_text).isNull()  # a ZZ99 code is no error
                 & ~is_placeholder_postcode(postcode_text, pattern=policy.placeholder_postcodes))
        .alias("postcode_unparseable"),
        F.struct(*[count_if(_bad_name(raw, c)).alias(c) for c in _name_columns(source)]
                 or [F.lit(0).alias("none")]).alias("bad_name_characters"),
        # The commonest values of each linkage field, as hashes: a bounded sketch per field in the same pass.
        F.struct(*[F.struct(F.count(key).alias("present"), top_values(key).alias("top")).alias(name)
                   for name, key in keys.items()] or [F.lit(0).alias("none")]).alias("frequent_values"),
    )


def _frequent(row: dict[str, Any], policy: ValidationPolicy) -> dict[str, tuple[FrequentValue, ...]]:
    """Per field, the top values above max(share x records with a value, frequent_value_min_records)."""
    found = {}
    for name, values in (row or {}).items():
        if not isinstance(values, dict):
            continue
        present, limit = int(values["present"] or 0), policy.frequent_value_shares.get(name, 1.0)
        floor = max(limit * present, policy.frequent_value_min_records)
        found[name] = tuple(FrequentValue(int(top["item"]), int(top["count"]), present, limit)
                            for top in values["top"] or () if top["item"] is not None and int(top["count"]) > floor)
    return found


def _as_profile(source: SourceConfig, row: dict[str, Any], policy: ValidationPolicy) -> SourceProfile:
    def n(value: Any) -> int:
        return int(value or 0)

    return SourceProfile(
        source_system=source.name, rows=n(row["rows"]), null_ids=n(row["null_ids"]),
        duplicate_ids=n(row["duplicate_ids"]), non_null={k: n(v) for k, v in row["non_null"].items()},
        dob_present=n(row["dob_present"]), dob_unparseable=n(row["dob_unparseable"]),
        dob_implausible=n(row["dob_implausible"]), postcode_present=n(row["postcode_present"]),
        postcode_unparseable=n(row["postcode_unparseable"]),
        bad_name_characters={k: n(v) for k, v in row["bad_name_characters"].items()
                             if k in _name_columns(source)},
        frequent_values=_frequent(row["frequent_values"], policy),
    )


def profile_sources(raws: list[tuple[DataFrame, SourceConfig, ValidationPolicy]], *,
                    latest: Column) -> list[SourceProfile]:
    """Every source's profile from one Spark job (bold_spark/bounded.py: the per-source aggregates, whose columns
    differ, travel as JSON in one union), so their stages run side by side and all failing sources are known at
    once. Counts only leave the executors."""
    rows = collect_together({str(i): profile_source(raw, source=source, latest=latest, policy=policy)
                             for i, (raw, source, policy) in enumerate(raws)})  # bounded: one row per source
    return [_as_profile(source, rows[str(i)][0], policy) for i, (_, source, policy) in enumerate(raws)]


def check_profile(profile: SourceProfile, *, source: SourceConfig, policy: ValidationPolicy,
                  whole_source: bool = True) -> None:
    """Raise one DataQualityError listing every failed check of the source (counts and column names only).

    ``whole_source`` False: the profile is of the records that changed since the last run, where no records, or
    a column with no value in them, says nothing about the source.
    """
    where = f"{source.file}: source {source.name}"
    if profile.rows == 0 and whole_source:
        raise DataQualityError(f"{where}: {source.table.describe()} has no records"
                               + (" after partition_filter" if source.partition_filter else ""))
    problems: list[str] = []
    if profile.null_ids and policy.on_null_id == "fail":
        problems.append(f"record_id column {source.record_id!r}: {profile.null_ids} of {profile.rows} records have "
                        "no id (validation.on_null_id: fail)")
    if profile.duplicate_ids and policy.on_duplicate_id == "fail":
        problems.append(f"record_id column {source.record_id!r}: {profile.duplicate_ids} records repeat another "
                        "record's id (validation.on_duplicate_id: fail)")
    for key, column in source.source_columns().items() if whole_source else ():
        if key != "record_id" and profile.non_null.get(column, 0) == 0:
            message = f"column {column!r} (key {key}) is null in all {profile.rows} records"
            if policy.on_all_null_column == "fail":
                problems.append(message + " (validation.on_all_null_column: fail)")
            else:
                log.warning("%s: %s", where, message)
    shares = [("date_of_birth", source.date_of_birth.column if source.date_of_birth else None,
               profile.dob_unparseable, profile.dob_present, "dates of birth match none of the declared formats"),
              ("postcode", source.postcode.column if source.postcode else None,
               profile.postcode_unparseable, profile.postcode_present, "postcodes are not valid UK postcodes")]
    for key, column, bad, present, what in shares:
        if present and bad / present > policy.max_unparseable_share:
            problems.append(f"column {column!r} (key {key}): {bad} of {present} {what} ({bad / present:.1%}; "
                            f"validation.max_unparseable_share: {policy.max_unparseable_share:.1%})")
    if profile.dob_implausible and policy.on_implausible_date_of_birth == "fail":
        problems.append(f"column {source.date_of_birth.column!r} (key date_of_birth): {profile.dob_implausible} "
                        "dates of birth are before 1900 or after the run date "
                        "(validation.on_implausible_date_of_birth: fail)")
    for column, bad in profile.bad_name_characters.items():
        if bad and policy.on_bad_name_characters == "fail":
            problems.append(f"column {column!r}: {bad} names contain undecodable (non-UTF-8) or control characters "
                            "(validation.on_bad_name_characters: fail)")
    for name, values in profile.frequent_values.items():
        for v in values if policy.on_frequent_value == "fail" else ():
            problems.append(f"{_frequent_where(source, name)}: one value is held by {v.records} of {v.present} "
                            f"records ({v.share:.1%}; validation.frequent_value_shares.{name}: {v.limit:.1%}; "
                            "validation.on_frequent_value: fail)")
    if problems:
        raise DataQualityError(f"{where}: input validation failed; nothing was written:\n  - "
                               + "\n  - ".join(problems))


def _frequent_where(source: SourceConfig, name: str) -> str:
    column = (source.date_of_birth.column if name == "date_of_birth" and source.date_of_birth
              else source.postcode.column if name == "postcode" and source.postcode else source.columns.get(name))
    return f"column {column!r} (key {name})"


def _log_frequent(profile: SourceProfile, source: SourceConfig, policy: ValidationPolicy) -> None:
    for name, values in profile.frequent_values.items():
        for v in values:
            log.warning("source %s: %s: one value is held by %d of %d records (%.1f%%; "
                        "validation.frequent_value_shares.%s: %.1f%%): %s", source.name, _frequent_where(source, name),
                        v.records, v.present, 100 * v.share, name, 100 * v.limit,
                        f"nulled for linkage, counted as placeholder:{name}" if policy.on_frequent_value == "null"
                        else "kept (validation.on_frequent_value: warn)")


def with_validation_rejects(raw: DataFrame, *, source: SourceConfig, policy: ValidationPolicy,
                            latest: Column) -> DataFrame:
    """``raw`` plus VALIDATION_REJECT: the reason a record-level check rejects the record, else null.

    standardise_source carries the column into ``reject_reason`` (after the id checks, before the no-name check).
    """
    reason = F.lit(None).cast("string")
    if policy.on_implausible_date_of_birth == "reject":
        reason = F.when(_dob_flags(raw, source, latest, policy)[2], REASON_IMPLAUSIBLE_DOB).otherwise(reason)
    names = _name_columns(source)
    if names and policy.on_bad_name_characters == "reject":
        any_bad = F.greatest(*[_bad_name(raw, c) for c in names]) if len(names) > 1 else _bad_name(raw, names[0])
        reason = F.when(any_bad, REASON_BAD_NAME_CHARACTERS).otherwise(reason)
    return raw.withColumn(VALIDATION_REJECT, reason)


def validate_sources(raws: list[tuple[DataFrame, SourceConfig, ValidationPolicy]], *,
                     latest: Column | None = None, whole_sources: bool = True) -> list[tuple[DataFrame, SourceProfile]]:
    """Profile and check every raw source; return each with its record-level reject reasons, and its profile.

    ``latest`` is the latest plausible date of birth (default today). Raises DataQualityError before any write,
    naming every failing source, not only the first. ``whole_sources`` False: see check_profile.
    """
    latest = latest if latest is not None else F.current_date()
    profiles = profile_sources(raws, latest=latest)
    failures = []
    for (_, source, policy), profile in zip(raws, profiles):
        try:
            check_profile(profile, source=source, policy=policy, whole_source=whole_sources)
        except DataQualityError as exc:
            failures.append(str(exc))
            continue
        _log_frequent(profile, source, policy)
        log.info("source %s: validated %d records (%d null ids, %d repeated ids, %d unparseable dates of birth, "
                 "%d implausible, %d unparseable postcodes, %d names with bad characters)", source.name,
                 profile.rows, profile.null_ids, profile.duplicate_ids, profile.dob_unparseable,
                 profile.dob_implausible, profile.postcode_unparseable, sum(profile.bad_name_characters.values()))
    if failures:
        raise DataQualityError("\n".join(failures))
    return [(with_validation_rejects(raw, source=source, policy=policy, latest=latest), profile)
            for (raw, source, policy), profile in zip(raws, profiles)]


def validate_source(raw: DataFrame, *, source: SourceConfig, policy: ValidationPolicy,
                    latest: Column | None = None) -> tuple[DataFrame, SourceProfile]:
    """validate_sources for one source."""
    return validate_sources([(raw, source, policy)], latest=latest)[0]
