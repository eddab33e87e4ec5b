"""Six department sources built from the population: who appears where (journeys), when, and in what shape.

Records are built in four steps, each a DataFrame -> DataFrame function: ``source_keys`` (which people, how many
records, record ids, event dates; one source) -> ``clean_records`` (the person as they were at the event: surname
before or after a change, postcode of the address lived at then) -> ``with_recording_errors`` (the mistakes) ->
``render`` (one department's conventions, column names and types). The middle steps run once over the union of all
sources, so Spark analyses their large expressions once; a department is a filter on ``source_system`` that the
optimiser pushes into the union, so each table computes only its own records. Only ``render``'s output is a
department table; ``person_id`` never reaches it.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bold_spark.synthetic import errors as E
from bold_spark.synthetic.draws import even_bits, literal_array, salt_value, scramble, uniform
from bold_spark.synthetic.names import ReferenceTables
from bold_spark.synthetic.population import COHORTS, with_cohort, with_person_attributes
from bold_spark.synthetic.rates import Rates

PRISON, PROBATION, TREATMENT = "prison_releases", "probation", "drug_alcohol_treatment"
HOMELESSNESS, POLICE, SUPPORT = "homelessness", "police_victims", "victim_support"
SOURCE_SYSTEMS = (PRISON, PROBATION, TREATMENT, HOMELESSNESS, POLICE, SUPPORT)

WINDOW_START, WINDOW_END = dt.date(2022, 1, 1), dt.date(2025, 12, 31)
RELEASES_TO = dt.date(2025, 6, 30)  # leaves room for the follow-on events inside the window
POLICE_TO = dt.date(2025, 11, 30)
MAX_COPIES = 4  # record ids scramble person_id * MAX_COPIES + copy

# P(a person of each cohort appears in a source); victim support depends on police_victims (below).
INCLUSION: dict[str, dict[str, float]] = {
    PRISON: {"prison": 1.0},
    PROBATION: {"prison": 0.85, "community": 1.0},
    TREATMENT: {"prison": 0.30, "community": 0.20, "victim": 0.03, "general": 0.60},
    HOMELESSNESS: {"prison": 0.20, "community": 0.10, "victim": 0.03, "general": 0.50},
    POLICE: {"prison": 0.10, "community": 0.10, "victim": 0.85, "general": 0.05},
}
SUPPORT_AFTER_POLICE = {"prison": 0.15, "community": 0.15, "victim": 0.40, "general": 0.15}
SUPPORT_WITHOUT_POLICE = {"victim": 0.50}
# Days from the first release to the follow-on event, for prison leavers: (earliest, latest).
AFTER_RELEASE = {PROBATION: (0, 42), TREATMENT: (7, 180), HOMELESSNESS: (0, 180)}
SUPPORT_AFTER_REPORT = (0, 28)
DUPLICATE_SAME_EVENT = 0.5  # the rest are a later episode within 120 days
ID_PREFIX = {PRISON: "A", PROBATION: "X", TREATMENT: "TR", HOMELESSNESS: "HL", POLICE: "CR", SUPPORT: "VS"}
REFERRAL_SOURCES = ("Self", "GP", "Hospital", "Social services", "Criminal justice", "Other")
OFFENCE_GROUPS = ("Violence against the person", "Theft", "Burglary", "Criminal damage", "Robbery",
                  "Sexual offences", "Fraud", "Public order")

_S, _D, _I = T.StringType(), T.DateType(), T.IntegerType()
DEPARTMENT_SCHEMAS: dict[str, T.StructType] = {
    source: T.StructType([T.StructField(name, dtype, nullable) for name, dtype, nullable in fields])
    for source, fields in {
        PRISON: [("prison_number", _S, False), ("FORENAME", _S, True), ("SURNAME", _S, True), ("DOB", _D, True),
                 ("release_date", _D, False), ("release_postcode", _S, True), ("extract_month", _S, False)],
        PROBATION: [("case_reference", _S, False), ("full_name", _S, True), ("date_of_birth", _S, True),
                    ("postcode", _S, True), ("pnc_id", _S, True), ("supervision_start_date", _D, False),
                    ("extract_month", _S, False)],
        TREATMENT: [("client_reference", _S, False), ("first_name", _S, True), ("surname", _S, True),
                    ("date_of_birth", _S, True), ("sex", _S, True), ("postcode_district", _S, True),
                    ("referral_date", _D, False), ("referral_source", _S, False), ("extract_month", _S, False)],
        HOMELESSNESS: [("case_id", _S, False), ("applicant_forename", _S, True),
                       ("applicant_middle_names", _S, True), ("applicant_surname", _S, True),
                       ("applicant_dob", _D, True), ("gender", _S, True), ("last_settled_postcode", _S, True),
                       ("ni_number", _S, True), ("application_date", _D, False), ("extract_month", _S, False)],
        POLICE: [("crime_reference", _S, False), ("victim_name", _S, True), ("victim_dob", _S, True),
                 ("victim_age", _I, True), ("victim_sex", _S, False), ("postcode", _S, True),
                 ("offence_group", _S, False), ("reported_date", _D, False), ("extract_month", _S, False)],
        SUPPORT: [("referral_id", _S, False), ("forename", _S, True), ("surname", _S, True),
                  ("year_of_birth", _I, True), ("postcode_district", _S, True), ("referral_date", _D, False),
                  ("referral_route", _S, False), ("extract_month", _S, False)],
    }.items()
}
EVENT_DATE_COLUMN = {PRISON: "release_date", PROBATION: "supervision_start_date", TREATMENT: "referral_date",
                     HOMELESSNESS: "application_date", POLICE: "reported_date", SUPPORT: "referral_date"}
RECORD_ID_COLUMN = {s: schema.fields[0].name for s, schema in DEPARTMENT_SCHEMAS.items()}

CLEAN_RECORD_SCHEMA = T.StructType([
    T.StructField("source_system", _S, False),
    T.StructField("source_record_id", _S, False),
    T.StructField("person_id", T.LongType(), False),
    T.StructField("copy", _I, False),
    T.StructField("event_date", _D, False),
    T.StructField("first_name", _S, True),
    T.StructField("middle_names", T.ArrayType(_S, True), True),
    T.StructField("surname", _S, True),
    T.StructField("date_of_birth", _D, True),
    T.StructField("sex", _S, True),
    T.StructField("postcode", _S, True),
    T.StructField("previous_postcode", _S, True),
    T.StructField("nino", _S, True),
    T.StructField("pnc_id", _S, True),
    T.StructField("relative_nino", _S, True),
])


def copies_per_person(rates: Rates) -> float:
    """Expected records per person in a source they appear in (duplicates included)."""
    return 1.0 + rates.duplicate_record * 1.2


def source_probability(source: str, cohort: str) -> float:
    """P(a person of ``cohort`` appears in ``source``)."""
    if source == SUPPORT:
        police = INCLUSION[POLICE].get(cohort, 0.0)
        return police * SUPPORT_AFTER_POLICE.get(cohort, 0.0) + (1 - police) * SUPPORT_WITHOUT_POLICE.get(cohort, 0.0)
    return INCLUSION[source].get(cohort, 0.0)


def expected_records_per_person(rates: Rates) -> float:
    return sum(c.share * source_probability(s, c.name) for c in COHORTS for s in SOURCE_SYSTEMS) * \
        copies_per_person(rates)


def record_id_bits(n_people: int) -> int:
    return even_bits(n_people * MAX_COPIES)


def _by_cohort(probs: dict[str, float]) -> Column:
    expr = F.lit(0.0)
    for cohort, p in probs.items():
        expr = F.when(F.col("cohort") == cohort, F.lit(p)).otherwise(expr)
    return expr


def _person_u(seed: int, salt: str) -> Column:
    return uniform(seed, f"journey:{salt}", "person_id")


def _in(seed: int, source: str) -> Column:
    if source == SUPPORT:
        u = _person_u(seed, f"in:{SUPPORT}")
        return F.when(_in(seed, POLICE), u < _by_cohort(SUPPORT_AFTER_POLICE)).otherwise(
            u < _by_cohort(SUPPORT_WITHOUT_POLICE))
    return _person_u(seed, f"in:{source}") < _by_cohort(INCLUSION[source])


def _days_after(start: Column, seed: int, salt: str, low: int, high: int) -> Column:
    return F.date_add(start, F.lit(low) + F.floor(_person_u(seed, salt) * (high - low + 1)).cast("int"))


def _uniform_date(seed: int, salt: str, start: dt.date, end: dt.date) -> Column:
    return _days_after(F.lit(start), seed, salt, 0, (end - start).days)


def _first_event(seed: int, source: str) -> Column:
    """The date of a person's first record in ``source``: journeys follow the first release or police report."""
    release = _uniform_date(seed, "release", WINDOW_START, RELEASES_TO)
    report = _uniform_date(seed, "report", WINDOW_START, POLICE_TO)
    anytime = _uniform_date(seed, f"date:{source}", WINDOW_START, WINDOW_END)
    if source == PRISON:
        return release
    if source == POLICE:
        return report
    if source == SUPPORT:
        return F.when(F.col("in_police"), _days_after(report, seed, "support_lag", *SUPPORT_AFTER_REPORT)) \
            .otherwise(anytime)
    low, high = AFTER_RELEASE[source]
    return F.when(F.col("cohort") == "prison", _days_after(release, seed, f"lag:{source}", low, high)) \
        .otherwise(anytime)


def source_keys(person_ids: DataFrame, *, source: str, seed: int, rates: Rates, n_people: int) -> DataFrame:
    """The records of one source: ``source_system``, ``source_key`` (a number standing for the source in draws),
    ``person_id``, ``cohort``, ``in_police``, ``copy``, ``source_record_id``, ``event_date``.

    ``person_ids`` has ``person_id`` (from ``spark.range``). Cheap: no names or addresses are computed here, so the
    truth table costs little.
    """
    pid = F.col("person_id")
    df = with_cohort(person_ids, seed=seed, rates=rates)
    u_dup = _person_u(seed, f"duplicate:{source}")
    extra = (u_dup < rates.duplicate_record).cast("int") + (u_dup < rates.duplicate_record / 5).cast("int")
    df = df.filter(_in(seed, source)).select("person_id", "cohort", _in(seed, POLICE).alias("in_police"),
                                             F.explode(F.sequence(F.lit(0), extra)).alias("copy"))
    bits = record_id_bits(n_people)
    number = scramble(pid * F.lit(MAX_COPIES) + F.col("copy"), seed=seed, salt=f"record_id:{source}", bits=bits)
    digits = len(str((1 << bits) - 1))
    first = _first_event(seed, source)
    u_copy = uniform(seed, f"{source}:copy_date", "person_id", "copy")
    later = F.date_add(first, F.lit(1) + F.floor(uniform(seed, f"{source}:copy_lag", "person_id", "copy") * 120)
                       .cast("int"))
    event = F.when((F.col("copy") == 0) | (u_copy < DUPLICATE_SAME_EVENT), first) \
        .otherwise(F.least(later, F.lit(WINDOW_END)))
    return df.select(
        F.lit(source).alias("source_system"), F.lit(salt_value(seed, source)).alias("source_key"),
        "person_id", "cohort", "in_police", F.col("copy").cast("int").alias("copy"),
        F.concat(F.lit(ID_PREFIX[source]), F.lpad(number.cast("string"), digits, "0")).alias("source_record_id"),
        event.alias("event_date"),
    )


def clean_records(keys: DataFrame, *, seed: int, rates: Rates, tables: ReferenceTables) -> DataFrame:
    """Add the person as they were at ``event_date`` to ``source_keys`` rows: CLEAN_RECORD_SCHEMA's columns plus
    ``source_key``, ``cohort`` and ``in_police``."""
    df = with_person_attributes(keys, seed=seed, rates=rates, tables=tables)
    lived = F.filter(F.col("addresses"), lambda a: a["moved_in"] <= F.col("event_date"))
    return df.select(
        "source_system", "source_key", "source_record_id", "person_id", "copy", "event_date", "cohort",
        "in_police", "first_name", "middle_names",
        F.when(F.col("birth_surname").isNotNull() & (F.col("event_date") < F.col("surname_changed_on")),
               F.col("birth_surname")).otherwise(F.col("surname")).alias("surname"),
        "date_of_birth", "sex",
        F.try_element_at(lived, F.lit(-1))["postcode"].alias("postcode"),
        F.try_element_at(lived, F.lit(-2))["postcode"].alias("previous_postcode"),
        "nino", "pnc_id", "relative_nino",
    )


def with_recording_errors(clean: DataFrame, *, seed: int, rates: Rates, tables: ReferenceTables) -> DataFrame:
    """Add the values as the department recorded them (``r_*`` columns, names lower case) to ``clean_records``.

    Per field one draw picks at most one error kind (the kinds' rates are consecutive intervals of [0, 1)); missing
    values and the forename/surname swap are separate draws.
    """
    def u(field: str) -> Column:
        return uniform(seed, f"record:{field}", "source_key", "person_id", "copy")

    r = rates
    nick = F.broadcast(tables.nicknames.select(F.col("name").alias("_nick_name"), F.col("aliases").alias("_aliases")))
    df = clean.join(nick, F.col("first_name") == F.col("_nick_name"), how="left")

    def spelling(name: Column, field: str, low: float) -> Column:
        """Typo in [low, low + typo), sound-alike in the next interval; else None."""
        uf = u(f"{field}:kind")
        return (F.when((uf >= low) & (uf < low + r.name_typo),
                       E.keyboard_slip(name, u(f"{field}:slip_kind"), u(f"{field}:slip_pos"), u(f"{field}:slip_char")))
                .when((uf >= low + r.name_typo) & (uf < low + r.name_typo + r.name_phonetic),
                      E.phonetic_variant(name, u(f"{field}:phonetic"))))

    u_first = u("first:kind")
    nickname = F.when(u_first < r.nickname, E.short_form(F.coalesce(F.col("_aliases"), F.array().cast("array<string>")),
                                                         u("first:nickname")))
    first = F.coalesce(nickname, spelling(F.col("first_name"), "first", r.nickname), F.col("first_name"))
    u_sur = u("surname:kind")
    db_low = r.name_typo + r.name_phonetic
    double = F.when(F.col("surname").contains("-") & (u_sur >= db_low) & (u_sur < db_low + r.double_barrel_variant),
                    E.double_barrel_variant(F.col("surname"), u("surname:double")))
    surname = F.coalesce(spelling(F.col("surname"), "surname", 0.0), double, F.col("surname"))
    swapped = u("swap") < r.name_swap

    dob = F.col("date_of_birth")
    u_dob = u("dob:kind")
    a, b = r.dob_day_month_swap, r.dob_day_month_swap + r.dob_jan1_placeholder
    recorded_dob = (F.when((u_dob < a) & E.can_swap_day_month(dob), E.swap_day_month(dob))
                    .when((u_dob >= a) & (u_dob < b), E.first_of_january(dob))
                    .when((u_dob >= b) & (u_dob < b + r.dob_typo), E.date_slip(dob, u("dob:slip"), u("dob:dir")))
                    .otherwise(dob))
    u_pc = u("postcode:kind")
    recorded_postcode = (F.when((u_pc < r.postcode_stale) & F.col("previous_postcode").isNotNull(),
                                F.col("previous_postcode"))
                         .when((u_pc >= r.postcode_stale) & (u_pc < r.postcode_stale + r.postcode_typo),
                               E.postcode_slip(F.col("postcode"), u("postcode:pos"), u("postcode:char")))
                         .otherwise(F.col("postcode")))
    recorded_nino = (F.when(F.col("relative_nino").isNotNull() & (u("nino:borrowed") < r.borrowed_nino),
                            F.col("relative_nino"))  # a partner's record carrying the head of household's
                     .when(u("nino:kind") < r.nino_typo, E.nino_slip(F.col("nino"), u("nino:pos"), u("nino:digit")))
                     .otherwise(F.col("nino")))
    staged = df.select("*", first.alias("_first"), surname.alias("_surname"), swapped.alias("_swapped"))
    return staged.select(
        *clean.columns,
        F.when(F.col("_swapped"), F.col("surname")).otherwise(F.col("_first")).alias("r_first"),
        F.when(F.col("_swapped"), F.col("first_name")).otherwise(F.col("_surname")).alias("r_surname"),
        F.when((F.size("middle_names") > 0) & (u("middle") >= r.middle_name_missing),
               F.col("middle_names")).alias("r_middles"),
        E.blank(recorded_dob, u("dob:missing"), r.missing_value).alias("r_dob"),
        E.blank(recorded_postcode, u("postcode:missing"), r.missing_value).alias("r_postcode"),
        E.blank(F.col("sex"), u("sex:missing"), r.missing_value).alias("r_sex"),
        recorded_nino.alias("r_nino"),
    )


def proper_case(name: Column) -> Column:
    """Title case that also capitalises each part of a hyphenated name."""
    return F.array_join(F.transform(F.split(name, "-"), lambda part: F.initcap(part)), "-")


def _choice(u: Column, options: tuple[str, ...]) -> Column:
    return F.element_at(literal_array(options), (F.floor(u * len(options)) + F.lit(1)).cast("int"))


def render(recorded: DataFrame, *, source: str, seed: int, rates: Rates) -> DataFrame:
    """The department's table (DEPARTMENT_SCHEMAS[source]) from ``with_recording_errors``' output (any sources)."""
    def u(field: str) -> Column:
        return uniform(seed, f"{source}:render:{field}", "person_id", "copy")

    r = rates
    rid, event = F.col("source_record_id"), F.col("event_date")
    first, surname = F.col("r_first"), F.col("r_surname")
    postcode, dob = F.col("r_postcode"), F.col("r_dob")
    district = F.substring_index(postcode, " ", 1)
    month = F.date_format(event, "yyyy-MM")
    if source == PRISON:
        cols = [rid, F.upper(first), F.upper(surname), dob, event, F.upper(postcode), month]
    elif source == PROBATION:
        parts = F.flatten(F.array(F.array(first), F.coalesce(F.col("r_middles"), F.array().cast("array<string>")),
                                  F.array(surname)))
        cols = [rid, proper_case(F.array_join(parts, " ")), F.date_format(dob, "dd/MM/yyyy"),
                F.regexp_replace(postcode, " ", ""), F.when(u("pnc") < r.probation_pnc_present, F.col("pnc_id")),
                event, month]
    elif source == TREATMENT:
        referral = F.when((F.col("cohort") == "prison") & (u("referral") < 0.8), F.lit("Criminal justice")) \
            .otherwise(_choice(u("referral_source"), REFERRAL_SOURCES))
        cols = [rid, F.lower(first), F.lower(surname), F.date_format(dob, "yyyy-MM-dd"), F.col("r_sex"), district,
                event, referral, month]
    elif source == HOMELESSNESS:
        cols = [rid, proper_case(first), proper_case(F.array_join(F.col("r_middles"), " ")), proper_case(surname),
                F.when(u("dob") >= r.homelessness_dob_missing, dob),
                F.when(F.col("r_sex") == "M", F.lit("Male")).when(F.col("r_sex") == "F", F.lit("Female")),
                F.upper(postcode), F.when(u("nino") < r.homelessness_nino_present, F.col("r_nino")), event, month]
    elif source == POLICE:
        age = F.floor(F.months_between(event, F.col("date_of_birth")) / 12).cast("int")
        cols = [rid, F.concat(proper_case(surname), F.lit(", "), proper_case(first)),
                F.when(u("age_only") >= r.police_age_only, F.date_format(dob, "dd-MMM-yyyy")),
                E.blank(age, u("age_missing"), r.missing_value), F.coalesce(F.col("r_sex"), F.lit("U")),
                F.upper(postcode), _choice(u("offence"), OFFENCE_GROUPS), event, month]
    elif source == SUPPORT:
        route = F.when(F.col("in_police"), F.when(u("route") < 0.9, F.lit("Police")).otherwise(F.lit("Other agency"))) \
            .otherwise(F.when(u("route") < 0.7, F.lit("Self-referral")).otherwise(F.lit("Other agency")))
        forename = F.when(u("initial") < r.victim_support_initial_only, F.upper(F.substring(first, 1, 1))) \
            .otherwise(proper_case(first))
        cols = [rid, forename, proper_case(surname), F.year(dob), district, event, route, month]
    else:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCE_SYSTEMS)}")
    schema = DEPARTMENT_SCHEMAS[source]
    return recorded.filter(F.col("source_system") == source).select(
        *(c.cast(f.dataType).alias(f.name) for c, f in zip(cols, schema.fields)))
