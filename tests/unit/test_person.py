"""Mapping a department's columns onto the canonical schema; rejects and invalid-value counts."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import functions as F

from bold_spark.config import parse_source
from bold_spark.schemas import CANONICAL_PERSON
from bold_spark.standardise.person import (
    REASON_DUPLICATE_ID,
    REASON_NO_NAME,
    REASON_NULL_ID,
    accepted_records,
    rejected_records,
    source_counts,
    standardise_source,
)

PROBATION = {
    "name": "probation",
    "table": {"path": "unused"},
    "record_id": "crn",
    "columns": {
        "full_name": {"column": "name", "order": "forename_first"},
        "date_of_birth": {"column": "dob", "formats": ["dd/MM/yyyy", "yyyy-MM-dd"]},
        "postcode": "pc",
        "sex": "gender",
        "pnc_id": "pnc",
    },
}
AS_OF = "2025-01-01"


def standardised(spark, rows, source=PROBATION):
    config = parse_source(source, Path("/conf/probation.yaml"), Path("/"))
    raw = spark.createDataFrame(rows, "crn string, name string, dob string, pc string, gender string, pnc string")
    return standardise_source(raw, source=config, as_of=F.lit(AS_OF).cast("date"))


def test_columns_map_onto_the_canonical_schema(spark):
    rows = [("X1", "Mr John Paul SMITH-JONES", "03/02/1980", "sw1a 1aa", "Male", "01/12345a")]
    df = standardised(spark, rows)
    (person,) = accepted_records(df).collect()
    assert [(f.name, f.dataType) for f in accepted_records(df).schema] == [(f.name, f.dataType) for f in CANONICAL_PERSON]
    assert person.asDict() == {
        "source_system": "probation", "source_record_id": "X1", "first_name": "john", "middle_names": "paul",
        "surname": "smith jones", "date_of_birth": dt.date(1980, 2, 3), "birth_year": 1980, "sex": "M",
        "postcode": "SW1A1AA", "postcode_district": "SW1A", "nino": None, "nhs_number": None,
        "pnc_id": "2001/0012345A", "other_id": None, "address": None, "address_status": None,
    }


def test_unusable_values_become_null_and_are_counted_per_field(spark):
    rows = [
        ("A", "Ann Lee", "31/02/1980", "NOT A POSTCODE", "f", None),   # impossible date, bad postcode
        ("B", "Bob Ray", "1970-05-06", "LS1 4AP", "zz", "junk"),        # second format; unusable sex code; bad pnc
        ("C", "Cy Doe", "01/01/2030", None, "U", None),                 # after the run date; sex stated unknown
    ]
    df = standardised(spark, rows)
    people = {r["source_record_id"]: r for r in accepted_records(df).collect()}
    assert people["A"]["date_of_birth"] is None and people["A"]["postcode"] is None
    assert people["B"]["date_of_birth"] == dt.date(1970, 5, 6) and people["B"]["postcode_district"] == "LS1"
    assert people["C"]["date_of_birth"] is None
    (counts,) = source_counts(df).collect()
    assert (counts["records_read"], counts["records_accepted"], counts["records_rejected"]) == (3, 3, 0)
    invalid = counts["invalid_values"]
    assert (invalid["date_of_birth"], invalid["postcode"], invalid["pnc_id"], invalid["sex"]) == (2, 1, 1, 1)


def test_records_that_cannot_be_linked_are_rejected_with_a_reason_and_no_values(spark):
    rows = [
        (None, "Ann Lee", None, None, None, None),
        ("D", "Dan Fry", None, None, None, None),
        ("D", "Dan Fry", None, None, None, None),
        ("E", "  ", None, None, None, None),
        ("F", "Fay Orr", None, None, None, None),
    ]
    df = standardised(spark, rows)
    rejects = rejected_records(df, run_id="r1")
    assert rejects.columns == ["source_system", "source_record_id", "reason", "run_id"]
    got = sorted((r["source_record_id"] or "", r["reason"]) for r in rejects.collect())
    assert got == [("", REASON_NULL_ID), ("D", REASON_DUPLICATE_ID), ("D", REASON_DUPLICATE_ID),
                   ("E", REASON_NO_NAME)]
    assert [r["source_record_id"] for r in accepted_records(df).collect()] == ["F"]
    (counts,) = source_counts(df).collect()
    assert counts["records_read"] == counts["records_accepted"] + counts["records_rejected"] == 5


def test_year_of_birth_from_an_age_at_a_reference_date(spark):
    source = {"name": "victims", "table": {"path": "unused"}, "record_id": "crn",
              "columns": {"surname": "name", "birth_year": {"age_column": "gender",
                                                            "reference_date": {"column": "dob",
                                                                               "formats": ["yyyy-MM-dd"]}}}}
    df = standardised(spark, [("V1", "Khan", "2024-06-01", None, "34", None)], source=source)
    assert accepted_records(df).first()["birth_year"] == 1990
