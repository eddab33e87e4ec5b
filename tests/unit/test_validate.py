"""Input validation: one aggregate pass per source, then a clear error or records sent to the rejects."""
from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from bold_spark.config import ValidationPolicy, load_config, parse_source
from bold_spark.errors import ConfigError, DataQualityError
from bold_spark.standardise.person import standardise_source
from bold_spark.validate import REASON_BAD_NAME_CHARACTERS, REASON_IMPLAUSIBLE_DOB, validate_source, validate_sources

def latest():
    return F.lit("2026-01-01").cast("date")


SCHEMA = "case_id string, fn string, sn string, dob string, pc string"
GOOD = [("1", "Ann", "Smith", "01/02/1980", "SW1A 1AA"), ("2", "Bob", "Jones", "03/04/1975", "M1 1AE"),
        ("3", "Cal", "Khan", "05/06/1990", "B33 8TH"), ("4", "Dee", "Li", "07/08/1985", "CR2 6XH")]


def source(tmp_path: Path, **extra):
    data = {"name": "housing", "table": {"path": "x"}, "record_id": "case_id",
            "columns": {"first_name": "fn", "surname": "sn", "postcode": "pc",
                        "date_of_birth": {"column": "dob", "formats": ["dd/MM/yyyy"]}}, **extra}
    return parse_source(data, tmp_path / "housing.yaml", tmp_path)


def run(spark, tmp_path, rows, policy=ValidationPolicy(), schema=SCHEMA, **extra):
    src = source(tmp_path, **extra)
    raw, profile = validate_source(spark.createDataFrame(rows, schema), source=src, policy=policy, latest=latest())
    return standardise_source(raw, source=src, as_of=latest()), profile


def reasons(df) -> dict[str, str | None]:
    return {r["source_record_id"]: r["reject_reason"] for r in df.collect()}  # small test frame


def test_clean_input_passes_with_counts_from_one_aggregate(spark_clean, tmp_path):
    df, profile = run(spark_clean, tmp_path, GOOD)
    assert (profile.rows, profile.null_ids, profile.duplicate_ids, profile.dob_unparseable) == (4, 0, 0, 0)
    assert profile.non_null == {"case_id": 4, "fn": 4, "sn": 4, "dob": 4, "pc": 4}
    assert set(reasons(df).values()) == {None}


def test_an_empty_source_stops_the_run(spark_clean, tmp_path):
    with pytest.raises(DataQualityError, match=r"housing.yaml: source housing: delta path .* has no records"):
        run(spark_clean, tmp_path, [])


@pytest.mark.parametrize("policy, rows, message", [
    ("on_null_id", [*GOOD, (None, "Eve", "Ray", None, None)],
     r"record_id column 'case_id': 1 of 5 records have no id \(validation.on_null_id: fail\)"),
    ("on_duplicate_id", [*GOOD, ("1", "Eve", "Ray", None, None), ("1", "Fay", "Roe", None, None)],
     r"record_id column 'case_id': 2 records repeat another record's id"),
])
def test_null_or_duplicate_ids_fail_when_configured(spark_clean, tmp_path, policy, rows, message):
    with pytest.raises(DataQualityError, match=message) as error:
        run(spark_clean, tmp_path, rows, ValidationPolicy(**{policy: "fail"}))
    assert "Eve" not in str(error.value) and "Ray" not in str(error.value)


def test_null_and_duplicate_ids_are_rejected_by_default(spark_clean, tmp_path):
    df, profile = run(spark_clean, tmp_path, [*GOOD, (None, "Eve", "Ray", None, None), ("2", "Bo", "Jones", None, None)])
    assert (profile.null_ids, profile.duplicate_ids) == (1, 1)
    got = reasons(df.where(F.col("reject_reason").isNotNull()).groupBy("reject_reason").count()
                  .withColumnRenamed("reject_reason", "source_record_id").withColumnRenamed("count", "reject_reason"))
    assert got == {"record id is missing": 1, "record id is not unique in the source": 2}


def test_a_mapped_column_entirely_null_stops_the_run(spark_clean, tmp_path):
    rows = [(i, f, s, d, None) for i, f, s, d, _ in GOOD]
    with pytest.raises(DataQualityError, match=r"column 'pc' \(key columns.postcode\) is null in all 4 records"):
        run(spark_clean, tmp_path, rows)
    _, profile = run(spark_clean, tmp_path, rows, ValidationPolicy(on_all_null_column="warn"))
    assert profile.non_null["pc"] == 0


def test_blank_strings_count_as_null(spark_clean, tmp_path):
    with pytest.raises(DataQualityError, match=r"column 'pc' \(key columns.postcode\) is null in all 4 records"):
        run(spark_clean, tmp_path, [(i, f, s, d, "  ") for i, f, s, d, _ in GOOD])


def test_unparseable_dates_and_postcodes_above_the_tolerance_stop_the_run(spark_clean, tmp_path):
    rows = [(i, f, s, {"1": "31/02/1980", "2": "1980/02/01"}.get(i, d), "NOT A PC" if i == "3" else p) for i, f, s, d, p in GOOD]
    with pytest.raises(DataQualityError) as error:
        run(spark_clean, tmp_path, rows)
    message = str(error.value)
    assert "column 'dob' (key date_of_birth): 2 of 4 dates of birth match none of the declared formats (50.0%" in message
    assert "column 'pc' (key postcode): 1 of 4 postcodes are not valid UK postcodes (25.0%" in message
    assert "1980/02/01" not in message and "NOT A PC" not in message
    df, profile = run(spark_clean, tmp_path, rows, ValidationPolicy(max_unparseable_share=0.5))
    assert (profile.dob_unparseable, profile.postcode_unparseable) == (2, 1)
    assert df.where(F.col("date_of_birth").isNull()).count() == 2  # under the tolerance: nulled and counted


def test_bad_characters_in_names_are_rejected_or_stop_the_run(spark_clean, tmp_path):
    # Genuine invalid UTF-8 bytes (0xC3 0x28) in a string column, as a mis-encoded extract would deliver them.
    raw = (spark_clean.createDataFrame(GOOD, SCHEMA)
           .withColumn("fn", F.when(F.col("case_id") == "1", F.concat(F.lit("An"), F.unhex(F.lit("C328")).cast("string")))
                       .when(F.col("case_id") == "2", F.lit("Bo\tb")).otherwise(F.col("fn"))))
    src = source(tmp_path)
    checked, profile = validate_source(raw, source=src, policy=ValidationPolicy(), latest=latest())
    assert profile.bad_name_characters == {"fn": 2, "sn": 0}
    assert reasons(standardise_source(checked, source=src, as_of=latest())) == {
        "1": REASON_BAD_NAME_CHARACTERS, "2": REASON_BAD_NAME_CHARACTERS, "3": None, "4": None}
    with pytest.raises(DataQualityError, match=r"column 'fn': 2 names contain undecodable \(non-UTF-8\) or control"):
        validate_source(raw, source=src, policy=ValidationPolicy(on_bad_name_characters="fail"), latest=latest())


def test_dates_of_birth_in_the_future_or_before_1900_null_reject_or_fail(spark_clean, tmp_path):
    rows = [(i, f, s, {"1": "01/01/1899", "2": "01/01/2030"}.get(i, d), p) for i, f, s, d, p in GOOD]
    df, profile = run(spark_clean, tmp_path, rows)  # default: the value becomes null and is counted invalid
    assert profile.dob_implausible == 2 and profile.dob_unparseable == 0
    assert set(reasons(df).values()) == {None}
    assert df.where(F.array_contains("invalid_fields", "date_of_birth")).count() == 2
    df, _ = run(spark_clean, tmp_path, rows, ValidationPolicy(on_implausible_date_of_birth="reject"))
    assert reasons(df) == {"1": REASON_IMPLAUSIBLE_DOB, "2": REASON_IMPLAUSIBLE_DOB, "3": None, "4": None}
    with pytest.raises(DataQualityError, match=r"column 'dob' \(key date_of_birth\): 2 dates of birth are before 1900"):
        run(spark_clean, tmp_path, rows, ValidationPolicy(on_implausible_date_of_birth="fail"))


def test_a_numeric_record_id_and_a_date_typed_column_are_usable(spark_clean, tmp_path):
    rows = [(1, "Ann", "Smith"), (2, "Bob", "Jones")]
    df = spark_clean.createDataFrame(rows, "case_id long, fn string, sn string").withColumn(
        "dob", F.lit("1980-01-02").cast("date")).withColumn("pc", F.lit("SW1A 1AA"))
    src = source(tmp_path)
    _, profile = validate_source(df, source=src, policy=ValidationPolicy(), latest=latest())
    assert (profile.rows, profile.dob_unparseable, profile.duplicate_ids) == (2, 0, 0)


def test_validation_policy_from_the_environment_and_overridden_per_source(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "a.yaml").write_text(
        "name: a\ntable: {path: x}\nrecord_id: id\ncolumns: {surname: sn}\n"
        "validation: {on_duplicate_id: fail, max_unparseable_share: 0.2}\n")
    (tmp_path / "env.yaml").write_text(
        "base_dir: .\nspark: {warehouse_dir: w, checkpoint_dir: c}\noutput: {database: bold}\nsources: [sources/*.yaml]\n"
        "validation: {on_null_id: fail, on_all_null_column: warn}\n"
        "linkage: {model_path: m.json, comparisons: [{kind: exact, column: surname}], blocking_rules: [[surname]],\n"
        "  training: {em_blocking_rules: [[surname]], deterministic_rules: [[surname]]}}\n")
    config = load_config(tmp_path / "env.yaml")
    assert config.validation_for(config.sources[0]) == ValidationPolicy(
        on_null_id="fail", on_duplicate_id="fail", on_all_null_column="warn", max_unparseable_share=0.2)


def test_bad_validation_keys_name_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"housing.yaml: validation.on_duplicate_id: expected one of reject, fail"):
        source(tmp_path, validation={"on_duplicate_id": "ignore"})
    with pytest.raises(ConfigError, match=r"housing.yaml: validation: unknown key\(s\) 'max_bad'"):
        source(tmp_path, validation={"max_bad": 1})
    with pytest.raises(ConfigError, match=r"housing.yaml: validation.max_unparseable_share: expected a number between"):
        source(tmp_path, validation={"max_unparseable_share": 5})


def test_all_sources_are_validated_together_and_every_failing_one_is_named(spark_clean, tmp_path):
    good, empty, no_ids = (source(tmp_path, name=n) for n in ("housing", "probation", "police"))
    frame = spark_clean.createDataFrame(GOOD, SCHEMA)
    checked = validate_sources([(frame, good, ValidationPolicy())], latest=latest())
    assert [p.rows for _, p in checked] == [4]
    with pytest.raises(DataQualityError) as err:
        validate_sources([(frame, good, ValidationPolicy()),
                          (frame.limit(0), empty, ValidationPolicy()),
                          (frame.withColumn("case_id", F.lit(None).cast("string")), no_ids,
                           ValidationPolicy(on_null_id="fail"))], latest=latest())
    message = str(err.value)
    assert "source probation" in message and "has no records" in message
    assert "source police" in message and "4 of 4 records have no id" in message
    assert "source housing" not in message
