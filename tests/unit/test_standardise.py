"""Column standardisers: one inline DataFrame per function with an `expected` column, run under ANSI mode."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import Column, functions as F

from bold_spark.standardise.dates import birth_year_from_age, parse_date
from bold_spark.standardise.identifiers import (
    standardise_identifier,
    standardise_nhs_number,
    standardise_nino,
    standardise_pnc_id,
)
from bold_spark.standardise.names import split_full_name, standardise_name
from bold_spark.standardise.postcodes import (
    postcode_district,
    standardise_free_postcode,
    standardise_postcode,
    standardise_postcode_district,
)
from bold_spark.standardise.sex import standardise_sex
from tests.conftest import assert_column_equals

D = dt.date


def latest() -> Column:
    """A fixed "today" keeps the range checks reproducible."""
    return F.lit(D(2024, 6, 30))


@pytest.fixture(scope="module", autouse=True)
def ansi_mode(spark):
    """Bad input must give null, not an exception, under ANSI mode (Spark 4's default): force it on here."""
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", "true")
    yield
    spark.conf.set("spark.sql.ansi.enabled", previous)


# ---------------------------------------------------------------------------------------------------- names

def test_standardise_name(spark):
    rows = [
        ("Smith-Jones", "smith jones"),
        ("  DR. Émile  O'Brien ", "emile obrien"),
        ("ØRSTED", "orsted"),
        ("Straße", "strasse"),
        ("Ærøskøbing", "aeroskobing"),
        ("Łukasz Żółć", "lukasz zolc"),
        ("Françoise Núñez", "francoise nunez"),
        ("Ștefan Dvořák", "stefan dvorak"),
        ("Rene\u0301e", "renee"),                 # decomposed accent (combining acute)
        ("D’Arcy", "darcy"),
        ("O`Neil", "oneil"),
        ("josé_maría.garcía,", "jose maria garcia"),
        ("Tab\tand\u00a0nbsp", "tab and nbsp"),
        ("Smith2", "smith"),
        ("J0hn", "jhn"),
        ("Mr Mrs Smith", "smith"),                  # titles removed repeatedly
        ("Mr. & Mrs. Smith", "smith"),
        ("Prof Sir John", "john"),
        ("Miss Lady Jane", "jane"),
        ("Mrsmith", "mrsmith"),                     # only whole words
        ("Ann Master", "ann master"),               # only at the start
        ("Lord", "lord"),                           # a title with nothing after it is the name itself
        ("John Smith Jr", "john smith"),
        ("Smith Jr.", "smith"),
        ("Henry VIII", "henry viii"),
        ("John Smith III", "john smith"),
        ("Smith Sr", "smith"),
        ("Иван", "иван"),                           # other scripts are kept, not dropped
        ("", None),
        ("   ", None),
        ("123", None),
        ("--", None),
        ("'", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "name string, expected string")
    out = df.withColumn("actual", standardise_name(F.col("name")))
    assert_column_equals(out, "actual", "expected", key="name")


def _assert_split(spark, rows, order):
    df = spark.createDataFrame(rows, "full_name string, first string, middle string, surname string")
    first, middle, surname = split_full_name(F.col("full_name"), order=order)
    out = df.select(
        "full_name",
        F.struct(first.alias("first"), middle.alias("middle"), surname.alias("surname")).alias("actual"),
        F.struct("first", "middle", "surname").alias("expected"),
    )
    assert_column_equals(out, "actual", "expected", key="full_name")


def test_split_full_name_forename_first(spark):
    rows = [
        ("John Paul Smith", "john", "paul", "smith"),
        ("John Paul George Smith", "john", "paul george", "smith"),
        ("SMITH, John Paul", "john", "paul", "smith"),   # comma form is always surname first
        ("SMITH,John", "john", None, "smith"),
        ("van der Berg, Jan", "jan", None, "van der berg"),
        ("O'Neil, Mr Seán", "sean", None, "oneil"),
        ("Smith, ", None, None, "smith"),
        ("Mr John Smith", "john", None, "smith"),
        ("Dr. Émile O'Brien Jr", "emile", None, "obrien"),
        ("Mr Smith", None, None, "smith"),
        ("John Smith-Jones", "john", None, "smith jones"),
        ("Mary-Jane Smith", "mary jane", None, "smith"),
        ("John - Smith", "john", None, "smith"),
        ("J.P. Smith", "j", "p", "smith"),
        ("  John   Smith  ", "john", None, "smith"),
        ("Smith", None, None, "smith"),
        ("Ærøe", None, None, "aeroe"),
        ("", None, None, None),
        ("  ,  ", None, None, None),
        (None, None, None, None),
    ]
    _assert_split(spark, rows, "forename_first")


def test_split_full_name_surname_first(spark):
    rows = [
        ("SMITH John Paul", "john", "paul", "smith"),
        ("WANG Xiao Ming Li", "xiao", "ming li", "wang"),
        ("SMITH-JONES Mary", "mary", None, "smith jones"),
        ("Smith, John", "john", None, "smith"),
        ("Mr SMITH John", "john", None, "smith"),
        ("SMITH John", "john", None, "smith"),
        ("Smith", None, None, "smith"),
        (None, None, None, None),
    ]
    _assert_split(spark, rows, "surname_first")


def test_split_full_name_rejects_unknown_order(spark):
    with pytest.raises(ValueError, match="order"):
        split_full_name(F.col("x"), order="last_first")


# ---------------------------------------------------------------------------------------------------- dates

def test_parse_date(spark):
    rows = [
        ("03/02/2001", D(2001, 2, 3)),
        ("2001-02-03", D(2001, 2, 3)),
        ("20010203", D(2001, 2, 3)),
        ("  03/02/2001 ", D(2001, 2, 3)),
        ("2001-02-03 10:11:12", D(2001, 2, 3)),   # timestamp text: the ISO fallback
        ("2001-02-03T10:11:12", D(2001, 2, 3)),
        ("29/02/2000", D(2000, 2, 29)),           # leap year
        ("29/02/1900", None),                     # not a leap year
        ("2001-02-30", None),                     # impossible
        ("30/02/2001", None),
        ("13/13/2001", None),
        ("2001-13-01", None),
        ("1850-01-01", None),                     # before earliest
        ("01/01/1850", None),
        ("1900-01-01", D(1900, 1, 1)),            # inclusive bounds
        ("2024-06-30", D(2024, 6, 30)),
        ("2024-07-01", None),                     # after latest
        ("2999-01-01", None),
        ("not a date", None),
        ("2001", None),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "value string, expected date")
    formats = ("dd/MM/yyyy", "yyyyMMdd")
    out = df.withColumn("actual", parse_date(F.col("value"), formats=formats, latest=latest()))
    assert_column_equals(out, "actual", "expected", key="value")


def test_parse_date_of_date_and_timestamp_columns(spark):
    rows = [
        (D(2001, 2, 3), dt.datetime(2001, 2, 3, 23, 59, 59), D(2001, 2, 3), D(2001, 2, 3)),
        (D(1850, 1, 1), dt.datetime(1850, 1, 1, 0, 0), None, None),
        (D(2999, 1, 1), dt.datetime(2999, 1, 1, 0, 0), None, None),
        (None, None, None, None),
    ]
    df = spark.createDataFrame(rows, "d date, ts timestamp, expected date, expected_default_latest date")
    out = df.select(
        F.struct(parse_date(F.col("d"), formats=["dd/MM/yyyy"], latest=latest()),
                 parse_date(F.col("ts"), formats=["dd/MM/yyyy"], latest=latest()),
                 parse_date(F.col("d"), formats=["dd/MM/yyyy"])).alias("actual"),
        F.struct("expected", "expected", "expected_default_latest").alias("expected"),
    )
    assert_column_equals(out, "actual", "expected")


def test_parse_date_rejects_bad_arguments(spark):
    with pytest.raises(ValueError, match="formats"):
        parse_date(F.col("x"), formats=[])
    with pytest.raises(ValueError, match="formats"):
        parse_date(F.col("x"), formats="yyyy-MM-dd")
    with pytest.raises(ValueError, match="earliest"):
        parse_date(F.col("x"), formats=["yyyy-MM-dd"], earliest="01/01/1900")


def test_birth_year_from_age(spark):
    rows = [
        (34, D(2024, 6, 30), 1990),
        (0, D(2024, 6, 30), 2024),
        (120, D(2024, 6, 30), 1904),
        (121, D(2024, 6, 30), None),
        (-1, D(2024, 6, 30), None),
        (None, D(2024, 6, 30), None),
        (30, None, None),
    ]
    df = spark.createDataFrame(rows, "age int, at date, expected int")
    out = df.withColumn("actual", birth_year_from_age(F.col("age"), at=F.col("at")))
    assert out.schema["actual"].dataType.simpleString() == "int"
    assert_column_equals(out, "actual", "expected")


# ---------------------------------------------------------------------------------------------------- postcodes

def test_standardise_postcode_and_district(spark):
    rows = [  # input, standardised, district, free-form
        ("sw1a 1aa", "SW1A1AA", "SW1A", "SW1A1AA"),
        ("SW1A1AA", "SW1A1AA", "SW1A", "SW1A1AA"),
        (" m1 1ae ", "M11AE", "M1", "M11AE"),
        ("B33 8TH", "B338TH", "B33", "B338TH"),
        ("CR2 6XH", "CR26XH", "CR2", "CR26XH"),
        ("DN55 1PT", "DN551PT", "DN55", "DN551PT"),
        ("W1A 0AX", "W1A0AX", "W1A", "W1A0AX"),
        ("ec1a-1bb", "EC1A1BB", "EC1A", "EC1A1BB"),
        ("GIR 0AA", "GIR0AA", "GIR", "GIR0AA"),
        ("SW1A 1AI", None, None, "SW1A1AI"),      # I is never an inward-code letter
        ("SW1A 1AAA", None, None, "SW1A1AAA"),
        ("5W1A 1AA", None, None, "5W1A1AA"),      # no OCR repairs
        ("1AA SW1A", None, None, "1AASW1A"),
        ("SW1A", None, None, "SW1A"),             # district only is not a full postcode
        ("75008", None, None, "75008"),
        ("K1A 0B1", None, None, "K1A0B1"),
        ("", None, None, None),
        (" - ", None, None, None),
        (None, None, None, None),
    ]
    df = spark.createDataFrame(rows, "postcode string, expected string, expected_district string, expected_free string")
    standardised = standardise_postcode(F.col("postcode"))
    out = df.select(
        "postcode",
        F.struct(standardised, postcode_district(standardised), standardise_free_postcode(F.col("postcode")))
        .alias("actual"),
        F.struct("expected", "expected_district", "expected_free").alias("expected"),
    )
    assert_column_equals(out, "actual", "expected", key="postcode")


def test_standardise_postcode_district(spark):
    rows = [
        ("sw1a", "SW1A"),
        ("M1", "M1"),
        ("b33", "B33"),
        ("W1", "W1"),
        (" dn55 ", "DN55"),
        ("SW1A 1AA", "SW1A"),   # a full postcode yields its district
        ("m1 1ae", "M1"),
        ("gir 0aa", "GIR"),
        ("SW1A1", None),
        ("SW1AB", None),
        ("SW", None),
        ("1A", None),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "district string, expected string")
    out = df.withColumn("actual", standardise_postcode_district(F.col("district")))
    assert_column_equals(out, "actual", "expected", key="district")


# ---------------------------------------------------------------------------------------------------- identifiers

def test_standardise_nino(spark):
    rows = [
        ("AB123456C", "AB123456C"),
        ("ab 12 34 56 c", "AB123456C"),
        ("AB-12-34-56-C", "AB123456C"),
        ("JG103759A", "JG103759A"),
        ("OA123456D", "OA123456D"),   # O may start a prefix...
        ("AO123456A", None),          # ...but is never second
        ("AB123456", None),           # suffix required
        ("AB123456E", None),
        ("DA123456A", None),
        ("QQ123456C", None),
        ("AV123456A", None),
        ("BG123456A", None),
        ("GB123456A", None),
        ("KN123456A", None),
        ("NK123456A", None),
        ("NT123456A", None),
        ("TN123456A", None),          # temporary number
        ("ZZ123456A", None),
        ("AB1234567C", None),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "nino string, expected string")
    out = df.withColumn("actual", standardise_nino(F.col("nino")))
    assert_column_equals(out, "actual", "expected", key="nino")


def test_standardise_nhs_number(spark):
    rows = [
        ("9434765919", "9434765919"),
        ("943 476 5919", "9434765919"),
        ("943-476-5919", "9434765919"),
        ("4010234520", "4010234520"),  # 11 - (sum mod 11) = 11 -> check digit 0
        ("9434765918", None),          # wrong check digit
        ("1234567890", None),          # check would be 10: never valid
        ("0000000000", None),          # placeholders pass the arithmetic
        ("4444444444", None),
        ("943476591", None),
        ("94347659190", None),
        ("abc", None),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "nhs string, expected string")
    out = df.withColumn("actual", standardise_nhs_number(F.col("nhs")))
    assert_column_equals(out, "actual", "expected", key="nhs")


def test_standardise_pnc_id(spark):
    rows = [
        ("2001/0012345A", "2001/0012345A"),
        ("01/12345a", "2001/0012345A"),
        (" 2001 / 12345 A ", "2001/0012345A"),
        ("99/1234Z", "1999/0001234Z"),
        ("30/1A", "2030/0000001A"),   # century pivot: 00-30 -> 20xx
        ("31/1A", "1931/0000001A"),   # 31-99 -> 19xx
        ("1985/7654321B", "1985/7654321B"),
        ("2001/12345678A", None),
        ("2001/0012345", None),
        ("201/12345A", None),
        ("2001-0012345A", None),
        ("2001/A", None),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "pnc string, expected string")
    out = df.withColumn("actual", standardise_pnc_id(F.col("pnc")))
    assert_column_equals(out, "actual", "expected", key="pnc")


def test_standardise_identifier(spark):
    rows = [
        (" ab-12 cd ", "AB12CD"),
        ("x", "X"),
        ("007", "007"),
        ("--", None),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "value string, expected string")
    out = df.withColumn("actual", standardise_identifier(F.col("value")))
    assert_column_equals(out, "actual", "expected", key="value")


# ---------------------------------------------------------------------------------------------------- sex

def test_standardise_sex(spark):
    rows = [
        ("M", "M"), ("m", "M"), (" Male ", "M"), ("MAN", "M"), ("1", "M"), ("boy", "M"),
        ("F", "F"), ("female", "F"), ("Woman", "F"), ("2", "F"), ("GIRL", "F"),
        ("X", "X"), ("other", "X"), ("Non-Binary", "X"), ("non binary", "X"), ("nonbinary", "X"),
        ("Indeterminate", "X"),
        ("9", None), ("0", None), ("U", None), ("unknown", None), ("Not Known", None), ("mf", None),
        ("", None), (None, None),
    ]
    df = spark.createDataFrame(rows, "sex string, expected string")
    out = df.withColumn("actual", standardise_sex(F.col("sex")))
    assert_column_equals(out, "actual", "expected", key="sex")
