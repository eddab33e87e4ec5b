"""The synthetic population: one row per person, every attribute a pure function of (seed, person_id).

Because nothing depends on other rows, a department can compute the people it needs on its own executors (a filter
on ``spark.range`` first, attributes after) and get exactly the values the whole population would have.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bold_spark.synthetic.draws import literal_array, scramble, uniform, uniform_int
from bold_spark.synthetic.errors import POSTCODE_INWARD_LETTERS
from bold_spark.synthetic.names import ReferenceTables, draw_names, postcode_districts
from bold_spark.synthetic.rates import Rates

AGE_REFERENCE = dt.date(2024, 1, 1)
MOVES_FROM, MOVES_TO = dt.date(2019, 1, 1), dt.date(2025, 12, 31)
SURNAME_CHANGES_FROM, SURNAME_CHANGES_TO = dt.date(2021, 1, 1), dt.date(2025, 12, 31)
MAX_PEOPLE = 1 << 28  # NI numbers are a bijection of person_id over 28 bits
MAX_ADDRESSES = 4


@dataclass(frozen=True)
class Cohort:
    """A kind of person: how many there are, how male, how old (age = low + span * triangular ** skew)."""

    name: str
    share: float
    p_male: float
    age_low: float
    age_span: float
    age_skew: float
    has_pnc: bool


# Everyone generated appears somewhere; the cohort decides where (see departments.INCLUSION).
COHORTS = (
    Cohort("prison", 0.14, 0.93, 18, 50, 1.4, True),
    Cohort("community", 0.18, 0.85, 18, 50, 1.3, True),
    Cohort("victim", 0.40, 0.50, 16, 66, 1.2, False),
    Cohort("general", 0.28, 0.62, 18, 57, 1.2, False),
)

PERSON_SCHEMA = T.StructType([
    T.StructField("person_id", T.LongType(), False),
    T.StructField("cohort", T.StringType(), False),
    T.StructField("sex", T.StringType(), False),
    T.StructField("first_name", T.StringType(), True),
    T.StructField("middle_names", T.ArrayType(T.StringType(), True), True),
    T.StructField("surname", T.StringType(), True),
    T.StructField("birth_surname", T.StringType(), True),
    T.StructField("surname_changed_on", T.DateType(), True),
    T.StructField("date_of_birth", T.DateType(), True),
    T.StructField("nino", T.StringType(), True),
    T.StructField("pnc_id", T.StringType(), True),
    T.StructField("addresses", T.ArrayType(T.StructType([
        T.StructField("postcode", T.StringType(), True),
        T.StructField("moved_in", T.DateType(), True),
    ]), False), False),
])


def _u(seed: int, salt: str) -> Column:
    return uniform(seed, f"person:{salt}", "person_id")


def _date(d: dt.date) -> Column:
    return F.lit(d)


def with_cohort(df: DataFrame, *, seed: int) -> DataFrame:
    """Add ``cohort`` to rows with ``person_id`` (cheap: departments filter on it before anything else)."""
    u = _u(seed, "cohort")
    expr, cumulative = None, 0.0
    for c in COHORTS[:-1]:
        cumulative += c.share
        expr = F.when(u < cumulative, F.lit(c.name)) if expr is None else expr.when(u < cumulative, F.lit(c.name))
    return df.withColumn("cohort", expr.otherwise(F.lit(COHORTS[-1].name)))


def _by_cohort(attr: str) -> Column:
    expr = None
    for c in COHORTS:
        value = F.lit(getattr(c, attr))
        expr = F.when(F.col("cohort") == c.name, value) if expr is None else expr.when(F.col("cohort") == c.name, value)
    return expr


def _nino(seed: int) -> Column:
    """A valid-format NI number (two prefix letters, six digits, A-D), unique per person: a scramble of person_id."""
    first = [c for c in "ABCEGHJKLMNOPRSTWXYZ"]
    second = [c for c in "ABCEGHJKLMNPRSTWXYZ"]
    prefixes = [a + b for a in first for b in second if a + b not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}]
    y = scramble(F.col("person_id"), seed=seed, salt="nino", bits=28)
    prefix = F.element_at(literal_array(prefixes), (F.floor(y / F.lit(1_000_000)) + F.lit(1)).cast("int"))
    digits = F.lpad(F.pmod(y, F.lit(1_000_000)).cast("string"), 6, "0")
    suffix = F.substring(F.lit("ABCD"), (uniform_int(seed, "person:nino_suffix", 4, "person_id") + 1), 1)
    return F.concat(prefix, digits, suffix)


def _pnc(seed: int, dob: Column) -> Column:
    """A Police National Computer id, yyyy/nnnnnnnL: year of first arrest, serial, check letter ((yy+serial) mod 23)."""
    year = F.least(F.year(dob) + F.lit(16) + uniform_int(seed, "person:pnc_year", 12, "person_id"), F.lit(2023))
    serial = F.lpad(uniform_int(seed, "person:pnc_serial", 10_000_000, "person_id").cast("string"), 7, "0")
    check_index = F.pmod(F.concat(F.substring(year.cast("string"), 3, 2), serial).cast("long"), F.lit(23))
    check = F.substring(F.lit("ZABCDEFGHJKLMNPQRTUVWXY"), (check_index + F.lit(1)).cast("int"), 1)
    return F.concat(year.cast("string"), F.lit("/"), serial, check)


def _addresses(seed: int, rates: Rates) -> Column:
    """1-4 addresses, each a UK-format postcode and the date the person moved in; later moves stay local mostly."""
    districts = postcode_districts()
    n = len(districts)
    district_array = literal_array(districts)
    letters = POSTCODE_INWARD_LETTERS
    u_moves = _u(seed, "moves")
    n_moves = sum((u_moves < F.lit(rates.moved * f)).cast("int") for f in (1.0, 0.4, 0.16))
    span = (MOVES_TO - MOVES_FROM).days
    move_dates = F.array_sort(F.array(*[
        F.date_add(_date(MOVES_FROM), uniform_int(seed, f"person:move_date{i}", span, "person_id"))
        for i in range(1, MAX_ADDRESSES)]))
    index = uniform_int(seed, "person:district0", n, "person_id")
    entries = []
    for i in range(MAX_ADDRESSES):
        if i:
            nearby = F.pmod(index + uniform_int(seed, f"person:near{i}", 9, "person_id") - F.lit(4), F.lit(n))
            anywhere = uniform_int(seed, f"person:district{i}", n, "person_id")
            index = F.when(_u(seed, f"local{i}") < 0.7, nearby).otherwise(anywhere)
        inward = F.concat(
            uniform_int(seed, f"person:inward_digit{i}", 10, "person_id").cast("string"),
            *[F.substring(F.lit(letters), uniform_int(seed, f"person:inward{i}{j}", len(letters), "person_id") + 1, 1)
              for j in (0, 1)])
        postcode = F.concat(F.element_at(district_array, (index + F.lit(1)).cast("int")), F.lit(" "), inward)
        moved_in = F.col("date_of_birth") if i == 0 else F.element_at(move_dates, i)
        entries.append(F.struct(postcode.alias("postcode"), moved_in.alias("moved_in")))
    return F.slice(F.array(*entries), 1, n_moves + F.lit(1))


def with_person_attributes(df: DataFrame, *, seed: int, rates: Rates, tables: ReferenceTables) -> DataFrame:
    """Add the clean attributes of each person to rows with ``person_id`` and ``cohort`` (see PERSON_SCHEMA).

    Names are lower case; ``surname`` is the current one and ``birth_surname`` the one before a change (else null).
    """
    tri = (_u(seed, "age1") + _u(seed, "age2")) / 2.0
    age_years = _by_cohort("age_low") + _by_cohort("age_span") * F.pow(tri, _by_cohort("age_skew"))
    dob = F.date_sub(_date(AGE_REFERENCE), F.floor(age_years * 365.25).cast("int"))
    sex = F.when(_u(seed, "sex") < _by_cohort("p_male"), F.lit("M")).otherwise(F.lit("F"))
    based = df.select("*", sex.alias("sex"), dob.alias("date_of_birth"))

    fn, sn = tables.forenames, tables.surnames
    draws = [(name, table, table.bucket(uniform(seed, f"person:{name}:b", "person_id"), group),
              uniform(seed, f"person:{name}:a", "person_id"))
             for name, table, group in (("_first", fn, F.col("sex")), ("_mid1", fn, F.col("sex")),
                                        ("_mid2", fn, F.col("sex")), ("_sur1", sn, None), ("_sur2", sn, None),
                                        ("_sur_other", sn, None))]
    named = draw_names(based, draws)

    u_mid = _u(seed, "middle")
    n_middle = ((u_mid < rates.middle_name).cast("int")
                + (u_mid < rates.middle_name * rates.second_middle_name).cast("int"))
    change_span = (SURNAME_CHANGES_TO - SURNAME_CHANGES_FROM).days
    changed = ((F.col("sex") == "F") & (F.col("date_of_birth") <= F.add_months(_date(SURNAME_CHANGES_FROM), -240))
               & (_u(seed, "surname_change") < rates.surname_change))
    double = _u(seed, "double_barrelled") < rates.double_barrelled
    own_surname = F.when(double, F.concat(F.col("_sur1"), F.lit("-"), F.col("_sur2"))).otherwise(F.col("_sur1"))
    return named.select(
        *df.columns, "sex", "date_of_birth",
        F.col("_first").alias("first_name"),
        F.slice(F.array(F.col("_mid1"), F.col("_mid2")), 1, n_middle).alias("middle_names"),
        F.when(changed, F.col("_sur_other")).otherwise(own_surname).alias("surname"),
        F.when(changed, own_surname).alias("birth_surname"),
        F.when(changed, F.date_add(_date(SURNAME_CHANGES_FROM),
                                   uniform_int(seed, "person:change_date", change_span, "person_id")))
        .alias("surname_changed_on"),
        _nino(seed).alias("nino"),
        F.when(_by_cohort("has_pnc"), _pnc(seed, F.col("date_of_birth"))).alias("pnc_id"),
        _addresses(seed, rates).alias("addresses"),
    )


def people(spark_range: DataFrame, *, seed: int, rates: Rates, tables: ReferenceTables) -> DataFrame:
    """The whole clean population from ``spark.range(n_people)`` (column ``id``), as PERSON_SCHEMA."""
    df = with_cohort(spark_range.select(F.col("id").alias("person_id")), seed=seed)
    df = with_person_attributes(df, seed=seed, rates=rates, tables=tables)
    return df.select(*(F.col(f.name).cast(f.dataType) for f in PERSON_SCHEMA.fields))
