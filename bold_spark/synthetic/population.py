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
    T.StructField("relative_nino", T.StringType(), True),  # a partner's: the head of household's NI number
])


def _u(seed: int, salt: str) -> Column:
    return uniform(seed, f"person:{salt}", "person_id")


def _date(d: dt.date) -> Column:
    return F.lit(d)


def _own_cohort(seed: int, key: str) -> Column:
    u = uniform(seed, "person:cohort", key)
    expr, cumulative = None, 0.0
    for c in COHORTS[:-1]:
        cumulative += c.share
        expr = F.when(u < cumulative, F.lit(c.name)) if expr is None else expr.when(u < cumulative, F.lit(c.name))
    return expr.otherwise(F.lit(COHORTS[-1].name))


# Households: people are taken four consecutive ids at a time (a block); a block drawn as a family is one household
# at the head's addresses: the head (first id), a partner, a child, and a twin of that child or a second child.
HOUSEHOLD_SIZE = 4
PARTNER, CHILD, SECOND_CHILD = 1, 2, 3
MIN_PARENT_GAP, MAX_PARENT_GAP, ADULT = 16, 40, 16  # years between parent and child; children here are 16 or older


def _household_keys(df: DataFrame) -> DataFrame:
    pid = F.col("person_id")
    return df.withColumn("_block", F.floor(pid / HOUSEHOLD_SIZE)).withColumn("_role", F.pmod(pid, F.lit(HOUSEHOLD_SIZE)))


def _in_family(seed: int, rates: Rates) -> Column:
    """Whether this row's person lives with the relatives of its block (rows need ``_block`` and ``_role``)."""
    return (F.col("_role") > 0) & (uniform(seed, "household:family", "_block") < F.lit(rates.living_as_family))


def with_cohort(df: DataFrame, *, seed: int, rates: Rates) -> DataFrame:
    """Add ``cohort`` to rows with ``person_id`` (cheap: departments filter on it before anything else). A relative
    shares the head's cohort at ``households.same_circumstances`` (families share a prison visit, a homelessness
    application, a crime)."""
    keyed = _household_keys(df).withColumn("_head", F.col("_block") * HOUSEHOLD_SIZE)
    shared = _in_family(seed, rates) & (uniform(seed, "household:same_cohort", "person_id")
                                        < F.lit(rates.same_circumstances))
    return keyed.withColumn("cohort", F.when(shared, _own_cohort(seed, "_head"))
                            .otherwise(_own_cohort(seed, "person_id"))).drop("_block", "_role", "_head")


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


def _own_attributes(df: DataFrame, *, seed: int, rates: Rates, tables: ReferenceTables,
                    sex_override: Column | None = None, dob_override: Column | None = None) -> DataFrame:
    """A person's own draws (see ``with_person_attributes``); a relative's sex and date of birth may be set by the
    household first, so that names are drawn for the right sex."""
    tri = (_u(seed, "age1") + _u(seed, "age2")) / 2.0
    age_years = _by_cohort("age_low") + _by_cohort("age_span") * F.pow(tri, _by_cohort("age_skew"))
    dob = F.date_sub(_date(AGE_REFERENCE), F.floor(age_years * 365.25).cast("int"))
    sex = F.when(_u(seed, "sex") < _by_cohort("p_male"), F.lit("M")).otherwise(F.lit("F"))
    if sex_override is not None:
        sex = F.coalesce(sex_override, sex)
    if dob_override is not None:
        dob = F.coalesce(dob_override, dob)
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


HEAD_FIELDS = ("sex", "date_of_birth", "first_name", "surname", "nino", "addresses")


def _years(n: Column) -> Column:
    return F.floor(n * F.lit(365.25)).cast("int")


def with_person_attributes(df: DataFrame, *, seed: int, rates: Rates, tables: ReferenceTables) -> DataFrame:
    """Add the clean attributes of each person to rows with ``person_id`` and ``cohort`` (see PERSON_SCHEMA).

    Names are lower case; ``surname`` is the current one and ``birth_surname`` the one before a change (else null).
    A relative (``households:`` rates) takes from the head of the household, computed in the same row from the
    head's id: the addresses; the surname (a partner may keep their own); a date of birth near the head's (partner)
    or a generation later (children, twins sharing one); a son named after his father or a daughter after her
    mother; ``relative_nino``, the head's NI number, which a partner's record may carry.
    """
    keyed = _household_keys(df)
    head_id = F.col("_block") * HOUSEHOLD_SIZE
    # The head's own attributes, drawn exactly as for the head's own row.
    as_head = keyed.withColumnRenamed("person_id", "_self").withColumnRenamed("cohort", "_cohort") \
        .withColumn("person_id", head_id).withColumn("cohort", _own_cohort(seed, "person_id"))
    heads = _own_attributes(as_head, seed=seed, rates=rates, tables=tables)
    heads = heads.select(*[c for c in keyed.columns if c not in ("person_id", "cohort")], "_self", "_cohort",
                         *[F.col(f).alias(f"_head_{f}") for f in HEAD_FIELDS]) \
        .withColumnRenamed("_self", "person_id").withColumnRenamed("_cohort", "cohort")

    family = _in_family(seed, rates)
    role = F.col("_role")
    head_age = F.datediff(_date(AGE_REFERENCE), F.col("_head_date_of_birth")) / F.lit(365.25)
    has_children = family & (head_age >= MIN_PARENT_GAP + ADULT)
    room = F.least(F.lit(float(MAX_PARENT_GAP)), head_age - F.lit(ADULT)) - F.lit(float(MIN_PARENT_GAP))

    def birth_after_head(salt: str) -> Column:
        return F.date_add("_head_date_of_birth", _years(F.lit(float(MIN_PARENT_GAP))
                                                        + uniform(seed, salt, "_block") * room))

    twin = uniform(seed, "household:twins", "_block") < F.lit(rates.twins)
    named_after_parent = uniform(seed, "household:named_after", "_block") < F.lit(rates.named_after_parent)
    partner = family & (role == PARTNER)
    child = has_children & ((role == CHILD) | (role == SECOND_CHILD))
    dob = (F.when(partner, F.date_add("_head_date_of_birth",
                                      _years(uniform(seed, "household:partner_age", "_block") * 12.0 - 6.0)))
           .when(child & (role == CHILD), birth_after_head("household:child_gap"))
           .when(child & twin, birth_after_head("household:child_gap"))
           .when(child, birth_after_head("household:second_child_gap")))
    junior = child & (role == CHILD) & named_after_parent
    sex = (F.when(partner, F.when(F.col("_head_sex") == "M", F.lit("F")).otherwise(F.lit("M")))
           .when(junior, F.col("_head_sex")))
    own = _own_attributes(heads, seed=seed, rates=rates, tables=tables, sex_override=sex, dob_override=dob)
    keeps_own_surname = partner & (uniform(seed, "household:own_surname", "_block") < F.lit(rates.keeps_own_surname))
    changed = F.col("birth_surname").isNotNull()
    # A child is born with the head's surname (a married daughter has changed it since); a partner taking the
    # head's surname keeps any earlier change's record. Who changed surname, and when, stays the person's own draw.
    surname = (F.when(partner & ~keeps_own_surname, F.col("_head_surname"))
               .when(child & ~changed, F.col("_head_surname")).otherwise(F.col("surname")))
    birth_surname = F.when(child & changed, F.col("_head_surname")).otherwise(F.col("birth_surname"))
    return own.select(
        *df.columns, "sex", "date_of_birth",
        F.when(junior, F.col("_head_first_name")).otherwise(F.col("first_name")).alias("first_name"),
        "middle_names", surname.alias("surname"), birth_surname.alias("birth_surname"), "surname_changed_on",
        "nino", "pnc_id",
        F.when(partner | child, F.col("_head_addresses")).otherwise(F.col("addresses")).alias("addresses"),
        F.when(partner, F.col("_head_nino")).alias("relative_nino"),
    )


def people(spark_range: DataFrame, *, seed: int, rates: Rates, tables: ReferenceTables) -> DataFrame:
    """The whole clean population from ``spark.range(n_people)`` (column ``id``), as PERSON_SCHEMA."""
    df = with_cohort(spark_range.select(F.col("id").alias("person_id")), seed=seed, rates=rates)
    df = with_person_attributes(df, seed=seed, rates=rates, tables=tables)
    return df.select(*(F.col(f.name).cast(f.dataType) for f in PERSON_SCHEMA.fields))
