"""Input validation: one aggregate pass per source, then a clear error or records sent to the rejects."""
from __future__ import annotations

import re
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


# --- placeholders: values systems record for "unknown" that look real -----------------------------------------

PLACEHOLDER_ROWS = [*GOOD,
                    ("5", "Eve", "Ray", "01/01/1900", "ZZ99 3VZ"),  # no fixed abode (fails the postcode format)
                    ("6", "Fay", "Roe", "01/01/1800", "zz993wz"),  # address not known (passes the format)
                    ("7", "Gus", "Poe", "01/01/1901", "ZZ99 3CZ"),
                    ("8", "Hal", "Orr", "01/01/1970", "ZZ993GZ")]


def _counts(df) -> dict[str, int]:
    from bold_spark.standardise.person import source_counts

    return {k: v for k, v in source_counts(df).first()["invalid_values"].items() if v}  # one source: one row


def test_placeholder_dates_and_zz99_postcodes_are_null_for_linkage_and_counted_as_placeholders(spark_clean, tmp_path):
    # implausible dates of birth fail the run here: 1800-01-01 is a placeholder, not an implausible date
    df, profile = run(spark_clean, tmp_path, PLACEHOLDER_ROWS, ValidationPolicy(on_implausible_date_of_birth="fail"))
    assert (profile.dob_implausible, profile.postcode_unparseable) == (0, 0)  # 4 of 8 ZZ99: no unparseable share
    rows = {r["source_record_id"]: r for r in df.collect()}  # eight rows
    for rid in "567":
        assert (rows[rid]["date_of_birth"], rows[rid]["birth_year"]) == (None, None)
    assert str(rows["8"]["date_of_birth"]) == "1970-01-01"
    assert {rid: (rows[rid]["postcode"], rows[rid]["postcode_district"]) for rid in "5678"} == {
        rid: (None, None) for rid in "5678"}
    assert str(rows["1"]["postcode"]) == "SW1A1AA" and set(reasons(df).values()) == {None}
    assert _counts(df) == {"placeholder:date_of_birth": 3, "placeholder:postcode": 4}  # none counted as invalid


def test_placeholders_are_configured_per_environment_or_source(spark_clean, tmp_path):
    policy = ValidationPolicy(placeholder_dates_of_birth=("1970-01-01",), placeholder_postcodes="^ZZ993VZ$",
                              max_unparseable_share=0.5)
    src = source(tmp_path)
    raw, profile = validate_source(spark_clean.createDataFrame(PLACEHOLDER_ROWS, SCHEMA), source=src, policy=policy,
                                   latest=latest())
    df = standardise_source(raw, source=src, as_of=latest(), policy=policy)
    # 1900-01-01 is no placeholder here (a plausible date); 1800-01-01 is implausible (nulled and counted as invalid);
    # ZZ99 3WZ and 3GZ pass the postcode format and stay; ZZ99 3CZ fails it (no C in an inward code): unparseable
    assert (profile.dob_implausible, profile.postcode_unparseable) == (1, 1)
    assert _counts(df) == {"placeholder:date_of_birth": 1, "placeholder:postcode": 1, "date_of_birth": 1,
                           "postcode": 1}


def test_a_district_only_source_nulls_the_zz99_district(spark_clean, tmp_path):
    src = parse_source({"name": "support", "table": {"path": "x"}, "record_id": "id",
                        "columns": {"surname": "sn", "postcode_district": "district"}}, tmp_path / "s.yaml", tmp_path)
    raw = spark_clean.createDataFrame([("1", "Li", "ZZ99"), ("2", "Ng", "M1"), ("3", "Ho", "ZZ99 3VZ")],
                                      "id string, sn string, district string")
    df = standardise_source(raw, source=src, as_of=latest())
    assert {r["source_record_id"]: r["postcode_district"] for r in df.collect()} == {"1": None, "2": "M1", "3": None}
    assert _counts(df) == {"placeholder:postcode_district": 2}


def test_a_source_with_one_in_ten_of_no_fixed_abode_runs(spark_clean, tmp_path):
    rows = [(str(i), "Ann", "Smith", "01/02/1980", "ZZ99 3VZ" if i % 10 == 0 else "SW1A 1AA") for i in range(50)]
    df, profile = run(spark_clean, tmp_path, rows)  # max_unparseable_share 0.05: ZZ99 codes are not unparseable
    assert (profile.postcode_present, profile.postcode_unparseable) == (50, 0)
    kept = {(r["postcode"], r["address_status"]): r["n"]
            for r in df.where("reject_reason is null").groupBy("postcode", "address_status").count()
            .withColumnRenamed("count", "n").collect()}  # bounded: two groups
    assert kept == {(None, "no_fixed_abode"): 5, ("SW1A1AA", None): 45}  # every record accepted, none compared on ZZ99
    assert _counts(df) == {"placeholder:postcode": 5}


def test_each_kind_of_pseudo_postcode_sets_its_address_status(spark_clean, tmp_path):
    postcodes = {"1": ("ZZ99 3VZ", "no_fixed_abode"), "2": ("zz993wz", "not_known"),
                 "3": ("ZZ99 3CZ", "uk_not_specified"), "4": ("ZZ99 1WZ", "uk_not_specified"),
                 "5": ("ZZ99 2WZ", "uk_not_specified"),
                 "6": ("ZZ99 3GZ", "uk_not_specified"), "7": ("ZZ99 6CZ", "overseas"),  # India
                 "8": ("ZZ99", "pseudo_postcode_other"), "9": ("SW1A 1AA", None), "10": (None, None)}
    df, profile = run(spark_clean, tmp_path, [(k, "Ann", "Li", "01/02/1980", pc) for k, (pc, _) in postcodes.items()])
    assert profile.postcode_unparseable == 0
    got = {r["source_record_id"]: (r["postcode"], r["postcode_district"], r["address_status"]) for r in df.collect()}
    assert got == {k: (("SW1A1AA", "SW1A") if k == "9" else (None, None)) + (status,)
                   for k, (_, status) in postcodes.items()}
    assert _counts(df) == {"placeholder:postcode": 8}
    # a source of districts only: a full pseudo-postcode there says as much; ZZ99 alone says only "placeholder"
    src = parse_source({"name": "support", "table": {"path": "x"}, "record_id": "id",
                        "columns": {"surname": "sn", "postcode_district": "district"}}, tmp_path / "s.yaml", tmp_path)
    raw = spark_clean.createDataFrame([("1", "Li", "ZZ99 3VZ"), ("2", "Ng", "ZZ99"), ("3", "Ho", "M1")],
                                      "id string, sn string, district string")
    got = {r["source_record_id"]: r["address_status"] for r in standardise_source(raw, source=src).collect()}
    assert got == {"1": "no_fixed_abode", "2": "pseudo_postcode_other", "3": None}


@pytest.mark.parametrize("validation, message", [
    ({"placeholder_dates_of_birth": ["01/01/1900"]}, r"validation.placeholder_dates_of_birth\[0\]: expected a date"),
    ({"placeholder_dates_of_birth": "1900-01-01"}, r"validation.placeholder_dates_of_birth: expected a list"),
    ({"placeholder_postcodes": "^ZZ99("}, r"validation.placeholder_postcodes: not a regular expression"),
])
def test_placeholder_settings_are_checked_with_the_file_and_key(tmp_path, validation, message):
    import yaml

    root = Path(__file__).resolve().parents[2]
    conf = yaml.safe_load((root / "conf" / "local.yaml").read_text())
    conf["validation"] = {**conf["validation"], **validation}
    conf.update(base_dir=str(root), sources=[str(root / "conf" / "sources" / "demo" / "*.yaml")],
                linkage=str(root / "conf" / "linkage" / "uk_person.yaml"),
                views=str(root / "conf" / "views" / "programme.yaml"))
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(ConfigError, match=r"env.yaml: " + message):
        load_config(tmp_path / "env.yaml")


# --- frequent values, found from the data ------------------------------------------------------------------------

def _frequent_rows():
    """200 records: 20 share 15/06/1950 (10%, no listed placeholder), 15 hold 01/01/1900 (listed); 12 Smiths (6%,
    a common surname, under the 10% share); everyone else distinct."""
    rows = []
    for i in range(200):
        dob = ("15/06/1950" if i < 20 else "01/01/1900" if i < 35
               else f"{1 + i % 28:02d}/{1 + i % 12:02d}/{1940 + i % 50}")
        rows.append((str(i), f"Ann{i}", "Smith" if i % 16 == 0 else f"Surname{i}", dob, f"M{1 + i // 9} {1 + i % 9}AB"))
    return rows


def test_a_frequent_date_of_birth_is_nulled_and_counted_as_a_placeholder(spark_clean, tmp_path):
    policy = ValidationPolicy(frequent_value_min_records=5)  # the default 50 is more than this small source holds
    src = source(tmp_path)
    raw, profile = validate_source(spark_clean.createDataFrame(_frequent_rows(), SCHEMA), source=src, policy=policy,
                                   latest=latest())
    found = {name: [(v.records, v.present) for v in values] for name, values in profile.frequent_values.items()}
    # 1900-01-01 is listed already: neither found again nor counted among the 185 dates it is a share of
    assert found == {"date_of_birth": [(20, 185)], "postcode": [], "first_name": [], "surname": []}
    df = standardise_source(raw, source=src, as_of=latest(), policy=policy, frequent=profile.frequent_hashes())
    nulled = {r["source_record_id"] for r in df.where("date_of_birth is null").collect()}  # bounded: 35 rows
    assert nulled == {str(i) for i in range(35)}
    assert df.where("surname = 'smith'").count() == 13  # every 16th of 200
    assert _counts(df) == {"placeholder:date_of_birth": 35}  # found and listed placeholders counted alike
    # a run without the hashes keeps the date: nulling is what the setting asks, not what validation does
    kept = standardise_source(raw, source=src, as_of=latest(), policy=policy)
    assert kept.where("date_of_birth = date'1950-06-15'").count() == 20


def test_a_frequent_value_stops_the_run_naming_source_and_field_but_not_the_value(spark_clean, tmp_path):
    policy = ValidationPolicy(frequent_value_min_records=5, on_frequent_value="fail")
    with pytest.raises(DataQualityError) as error:
        run(spark_clean, tmp_path, _frequent_rows(), policy)
    message = str(error.value)
    assert re.search(r"housing.yaml: source housing: .*column 'dob' \(key date_of_birth\): one value is held by 20 "
                     r"of 185 records \(10.8%; validation.frequent_value_shares.date_of_birth: 1.0%; "
                     r"validation.on_frequent_value: fail\)", message, flags=re.S)
    assert "1950" not in message and "06" not in message


def test_frequent_value_settings_are_checked_with_the_file_and_key(tmp_path):
    root = Path(__file__).resolve().parents[2]
    conf = {"validation": {"frequent_value_shares": {"surname": 0.2, "postcodes": 0.1}}}
    with pytest.raises(ConfigError, match=r"validation.frequent_value_shares: unknown key\(s\) 'postcodes'"):
        _load_with(tmp_path, root, conf)
    config = _load_with(tmp_path, root, {"validation": {"frequent_value_shares": {"surname": 0.2},
                                                        "on_frequent_value": "warn"}})
    assert config.validation.frequent_value_shares["surname"] == 0.2
    assert config.validation.frequent_value_shares["date_of_birth"] == 0.01  # fields left out keep their default


def _load_with(tmp_path, root, extra):
    import yaml

    conf = yaml.safe_load((root / "conf" / "local.yaml").read_text())
    conf["validation"] = {**conf["validation"], **extra["validation"]}
    conf.update(base_dir=str(root), sources=[str(root / "conf" / "sources" / "demo" / "*.yaml")],
                linkage=str(root / "conf" / "linkage" / "uk_person.yaml"),
                views=str(root / "conf" / "views" / "programme.yaml"))
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(conf))
    return load_config(tmp_path / "env.yaml")
