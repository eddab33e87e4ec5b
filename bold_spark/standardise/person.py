"""Map one department's columns onto the canonical person schema and standardise them.

Configuration says which source column feeds which canonical field; this module turns that into Column
expressions. A value that is present but unusable becomes null and is counted (``invalid_fields``); a record that
cannot be linked at all gets a ``reject_reason`` and goes to bold.rejects instead of the crosswalk.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window, functions as F, types as T

from bold_spark.config import SourceConfig, ValidationPolicy
from bold_spark.schemas import CANONICAL_PERSON, REJECTS, conform
from bold_spark.standardise.dates import birth_year_from_age, is_placeholder_date, parse_date
from bold_spark.standardise.frequent import any_date_of_birth, as_text, frequent_flags
from bold_spark.standardise.identifiers import (
    standardise_identifier,
    standardise_nhs_number,
    standardise_nino,
    standardise_pnc_id,
)
from bold_spark.standardise.names import standardise_name, with_split_full_name
from bold_spark.standardise.postcodes import (
    address_status,
    is_placeholder_postcode,
    postcode_district,
    standardise_free_postcode,
    standardise_postcode,
    standardise_postcode_district,
)
from bold_spark.standardise.sex import sex_is_stated_unknown, standardise_sex

# Fields whose unusable values are counted per source and recorded in bold.link_runs.
CHECKED_FIELDS = ("first_name", "middle_names", "surname", "date_of_birth", "birth_year", "sex", "postcode",
                  "postcode_district", "nino", "nhs_number", "pnc_id", "other_id", "event_date")
# Fields whose placeholder values (listed, or found frequent by validation) are nulled for linkage and counted as
# ``placeholder:<field>``.
PLACEHOLDER_PREFIX = "placeholder:"
PLACEHOLDER_FIELDS = ("date_of_birth", "postcode", "postcode_district", "first_name", "surname", "nino", "nhs_number",
                      "pnc_id", "other_id")
# The keys of link_runs.inputs.invalid_values: unusable values per field, then placeholders per field.
COUNTED_VALUES = (*CHECKED_FIELDS, *(PLACEHOLDER_PREFIX + f for f in PLACEHOLDER_FIELDS))

EARLIEST_BIRTH = "1900-01-01"  # parse_date's earliest plausible date
# What standardise_source returns (and the stored records of a run hold).
STANDARDISED_COLUMNS = (*CANONICAL_PERSON.fieldNames(), "event_date", "invalid_fields", "reject_reason")

_SPLIT_NAMES = ("__bold_first_name", "__bold_middle_names", "__bold_surname")

REASON_NULL_ID = "record id is missing"
REASON_DUPLICATE_ID = "record id is not unique in the source"
REASON_NO_NAME = "no usable name (first name and surname missing or invalid)"
# A reject reason bold_spark.validate adds to the raw source (bad name characters, absurd dates), carried through.
VALIDATION_REJECT = "_bold_validation_reject"

_SIMPLE_STANDARDISERS = {
    "first_name": standardise_name,
    "middle_names": standardise_name,
    "surname": standardise_name,
    "sex": standardise_sex,
    "nino": standardise_nino,
    "nhs_number": standardise_nhs_number,
    "pnc_id": standardise_pnc_id,
    "other_id": standardise_identifier,
}


_as_text = as_text  # a source column as trimmed text, blanks null, dates in ISO form (validate.py reads it here)


def _date(df: DataFrame, column: str, formats: tuple[str, ...], latest: Column, earliest: str = EARLIEST_BIRTH
          ) -> Column:
    if isinstance(df.schema[column].dataType, (T.DateType, T.TimestampType)):
        formats = ("yyyy-MM-dd",)
    return parse_date(_as_text(df, column), formats=formats, latest=latest, earliest=earliest)


def _normalise_address(text: Column) -> Column:
    cleaned = F.trim(F.regexp_replace(F.regexp_replace(F.lower(text), r"[^a-z0-9]+", " "), r"\s+", " "))
    return F.when(cleaned != "", cleaned)


def standardise_source(raw: DataFrame, *, source: SourceConfig, as_of: Column | None = None,
                       policy: ValidationPolicy = ValidationPolicy(),
                       frequent: Mapping[str, Sequence[int]] | None = None) -> DataFrame:
    """Canonical person columns plus ``event_date`` (null unless the source declares one; not used for linkage),
    ``invalid_fields`` (array of the fields whose present value was unusable, and ``placeholder:<field>`` for a
    placeholder value, ``policy``'s placeholder_*: both become null) and ``reject_reason``.

    ``as_of`` is the latest plausible date of birth (defaults to today); pass a literal for reproducible runs.
    ``frequent``: per field, the hashes of values validation found too frequent (standardise/frequent.py); they are
    nulled and counted as placeholders too.
    """
    latest = as_of if as_of is not None else F.current_date()
    raw_values: dict[str, Column] = {}  # the present-but-maybe-invalid source value behind each canonical field
    clean: dict[str, Column] = {}
    placeholder: dict[str, Column] = {}  # per field, true where the source value is a placeholder
    known: dict[str, Column] = {}  # per postcode field, true where the value is a listed placeholder (ZZ99...)
    frequent_value = frequent_flags(raw, source, policy, frequent or {})

    def or_frequent(field_name: str, flag: Column) -> Column:
        return flag | frequent_value[field_name] if field_name in frequent_value else flag

    for field_name, column in source.columns.items():
        raw_values[field_name] = _as_text(raw, column)
        if field_name == "sex":  # "U", "Not known": a value, just not a usable one; not counted as invalid
            raw_values[field_name] = F.when(~sex_is_stated_unknown(raw_values[field_name]), raw_values[field_name])
        if field_name == "postcode_district":
            known[field_name] = is_placeholder_postcode(raw_values[field_name], pattern=policy.placeholder_postcodes)
            placeholder[field_name] = known[field_name]
            clean[field_name] = F.when(~placeholder[field_name],
                                       standardise_postcode_district(raw_values[field_name]))
        else:
            clean[field_name] = _SIMPLE_STANDARDISERS.get(field_name, standardise_identifier)(raw_values[field_name])
            if field_name in frequent_value:
                placeholder[field_name] = frequent_value[field_name]
                clean[field_name] = F.when(~placeholder[field_name], clean[field_name])

    if source.full_name:
        raw_values["surname"] = _as_text(raw, source.full_name.column)
        raw = with_split_full_name(raw, column=raw_values["surname"], order=source.full_name.order,
                                   names=_SPLIT_NAMES)
        first, middle, surname = (F.col(c) for c in _SPLIT_NAMES)
        clean["first_name"], clean["surname"] = first, surname
        clean.setdefault("middle_names", middle)

    if source.postcode:
        raw_values["postcode"] = _as_text(raw, source.postcode.column)
        if source.postcode.format == "uk":
            known["postcode"] = is_placeholder_postcode(raw_values["postcode"], pattern=policy.placeholder_postcodes)
            placeholder["postcode"] = or_frequent("postcode", known["postcode"])
            clean["postcode"] = F.when(~placeholder["postcode"], standardise_postcode(raw_values["postcode"]))
            district_from_postcode = postcode_district(clean["postcode"])
            clean["postcode_district"] = (F.coalesce(district_from_postcode, clean["postcode_district"])
                                          if "postcode_district" in clean else district_from_postcode)
        else:
            clean["postcode"] = standardise_free_postcode(raw_values["postcode"])
            if "postcode" in frequent_value:
                placeholder["postcode"] = frequent_value["postcode"]
                clean["postcode"] = F.when(~placeholder["postcode"], clean["postcode"])

    if source.date_of_birth:
        raw_values["date_of_birth"] = _as_text(raw, source.date_of_birth.column)
        # Parsed once without bounds: a placeholder may lie before the plausible range (1800-01-01).
        any_date = any_date_of_birth(raw, source)
        placeholder["date_of_birth"] = or_frequent(
            "date_of_birth", is_placeholder_date(any_date, dates=policy.placeholder_dates_of_birth))
        plausible = any_date.between(F.lit(EARLIEST_BIRTH).cast("date"), latest)
        clean["date_of_birth"] = F.when(~placeholder["date_of_birth"] & plausible, any_date)

    year_of_dob = F.year(clean["date_of_birth"]) if "date_of_birth" in clean else F.lit(None).cast("int")
    if source.birth_year and source.birth_year.column:
        raw_values["birth_year"] = _as_text(raw, source.birth_year.column)
        year = F.expr(f"try_cast(`{source.birth_year.column}` as int)")
        declared = F.when(year.between(F.lit(1900), F.year(latest)), year)
        clean["birth_year"] = F.coalesce(year_of_dob, declared)
    elif source.birth_year:
        ref = source.birth_year.reference_date
        raw_values["birth_year"] = _as_text(raw, source.birth_year.age_column)
        age = F.expr(f"try_cast(`{source.birth_year.age_column}` as int)")
        at = _date(raw, ref.column, ref.formats, F.lit("9999-12-31").cast("date"))
        clean["birth_year"] = F.coalesce(year_of_dob, birth_year_from_age(age, at=at))
    else:
        clean["birth_year"] = year_of_dob

    # What a placeholder postcode says (no fixed abode, overseas...): kept beside the person for the views, never
    # compared. A full postcode says more than a district, so it is read first.
    statuses = [address_status(raw_values[f], placeholder=known[f]) for f in ("postcode", "postcode_district")
                if f in known]
    if statuses:
        clean["address_status"] = F.coalesce(*statuses)

    if source.address:
        clean["address"] = _normalise_address(F.concat_ws(" ", *[_as_text(raw, c) for c in source.address]))

    if source.event_date:  # not a linkage field: carried beside the person for the views and quality groups
        raw_values["event_date"] = _as_text(raw, source.event_date.column)
        clean["event_date"] = _date(raw, source.event_date.column, source.event_date.formats, latest)

    # Two projections: the standardised values first, then the checks that read them. Each name, date and postcode
    # expression is evaluated once, which keeps the generated code small enough for whole-stage codegen.
    checked = [f for f in CHECKED_FIELDS if f in raw_values and f in clean]
    first = raw.select(
        F.lit(source.name).alias("source_system"),
        _as_text(raw, source.record_id).alias("source_record_id"),
        *[clean.get(f.name, F.lit(None)).cast(f.dataType).alias(f.name) for f in CANONICAL_PERSON.fields[2:]],
        clean.get("event_date", F.lit(None)).cast("date").alias("event_date"),
        *[raw_values[f].isNotNull().alias(f"_present_{f}") for f in checked],
        *[flag.alias(f"_placeholder_{f}") for f, flag in placeholder.items()],
        (F.col(VALIDATION_REJECT) if VALIDATION_REJECT in raw.columns else F.lit(None).cast("string"))
        .alias(VALIDATION_REJECT),
    )
    def is_placeholder(f: str) -> Column:
        return F.col(f"_placeholder_{f}") if f in placeholder else F.lit(False)

    invalid_fields = F.filter(
        F.array(*[F.when(F.col(f"_present_{f}") & F.col(f).isNull() & ~is_placeholder(f), F.lit(f))
                  for f in checked],
                *[F.when(is_placeholder(f), F.lit(PLACEHOLDER_PREFIX + f)) for f in placeholder])
        if checked or placeholder else F.array().cast("array<string>"),
        lambda x: x.isNotNull(),
    )
    record_id = F.col("source_record_id")
    duplicates = F.count(F.lit(1)).over(Window.partitionBy(record_id))
    reject_reason = (F.when(record_id.isNull(), REASON_NULL_ID)
                     .when(duplicates > 1, REASON_DUPLICATE_ID)
                     .when(F.col(VALIDATION_REJECT).isNotNull(), F.col(VALIDATION_REJECT))
                     .when(F.coalesce(F.col("first_name"), F.col("surname")).isNull(), REASON_NO_NAME))
    return first.select(*[f.name for f in CANONICAL_PERSON.fields], "event_date",
                        invalid_fields.alias("invalid_fields"),
                        reject_reason.alias("reject_reason"))


def accepted_records(standardised: DataFrame) -> DataFrame:
    """The canonical person rows that go on to linkage."""
    return conform(standardised.where(F.col("reject_reason").isNull()), CANONICAL_PERSON)


def rejected_records(standardised: DataFrame, *, run_id: str) -> DataFrame:
    """bold.rejects rows: source, record id and reason only, never personal values."""
    return conform(
        standardised.where(F.col("reject_reason").isNotNull())
        .withColumn("reason", F.col("reject_reason"))
        .withColumn("run_id", F.lit(run_id)),
        REJECTS,
    )


# The per-source counts ``source_counts`` gives (beside source_system), as link runs record them.
COUNT_COLUMNS = ("records_read", "records_accepted", "records_rejected", "invalid_values")


def source_counts(standardised: DataFrame) -> DataFrame:
    """One row per source: records read, accepted, rejected, and invalid values per field (aggregates only, one
    pass over the records)."""
    fields = F.coalesce(F.col("invalid_fields"), F.array().cast("array<string>"))

    def invalid(field_name: str) -> Column:
        return F.sum(F.size(F.filter(fields, lambda f: f == field_name))).cast("long")

    return standardised.groupBy("source_system").agg(
        F.count(F.lit(1)).alias("records_read"),
        F.sum(F.col("reject_reason").isNull().cast("long")).alias("records_accepted"),
        F.sum(F.col("reject_reason").isNotNull().cast("long")).alias("records_rejected"),
        F.map_from_arrays(F.array(*[F.lit(f) for f in COUNTED_VALUES]),
                          F.array(*[F.coalesce(invalid(f), F.lit(0).cast("long")) for f in COUNTED_VALUES]))
        .alias("invalid_values"),
    )
