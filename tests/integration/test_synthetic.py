"""The synthetic department generator: schemas, truth, overlap, error rates, determinism, partitioning, config."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import yaml
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bold_spark.config import parse_source
from bold_spark.errors import ConfigError
from bold_spark.synthetic import errors as E
from bold_spark.synthetic.departments import (
    DEPARTMENT_SCHEMAS, EVENT_DATE_COLUMN, RECORD_ID_COLUMN, SOURCE_SYSTEMS, source_keys,
)
from bold_spark.synthetic.generate import generate
from bold_spark.synthetic.names import (
    alias_table, forename_weights, nickname_map, nicknames_frame, read_data_csv, surname_weights,
)
from bold_spark.synthetic.rates import DEFAULT_RATES_FILE, SECTIONS, load_rates

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCALE, SEED = 5000, 20240611
# Higher than the defaults so that every kind has enough cases at this scale; all distinct, so a mix-up shows.
TEST_RATES = load_rates().replace(
    name_typo=0.08, name_phonetic=0.06, nickname=0.15, name_swap=0.04, middle_name_missing=0.35,
    double_barrel_variant=0.4, dob_day_month_swap=0.07, dob_jan1_placeholder=0.05, dob_typo=0.04,
    postcode_typo=0.06, postcode_stale=0.2, nino_typo=0.09, missing_value=0.05, duplicate_record=0.1,
    double_barrelled=0.15, surname_change=0.3, moved=0.6, living_as_family=0.5, keeps_own_surname=0.3, twins=0.3,
    named_after_parent=0.3, borrowed_nino=0.3,
)

EXPECTED_SCHEMAS = {
    "prison_releases": [("prison_number", "string"), ("FORENAME", "string"), ("SURNAME", "string"),
                        ("DOB", "date"), ("release_date", "date"), ("release_postcode", "string"),
                        ("extract_month", "string")],
    "probation": [("case_reference", "string"), ("full_name", "string"), ("date_of_birth", "string"),
                  ("postcode", "string"), ("pnc_id", "string"), ("supervision_start_date", "date"),
                  ("extract_month", "string")],
    "drug_alcohol_treatment": [("client_reference", "string"), ("first_name", "string"), ("surname", "string"),
                               ("date_of_birth", "string"), ("sex", "string"), ("postcode_district", "string"),
                               ("referral_date", "date"), ("referral_source", "string"),
                               ("extract_month", "string")],
    "homelessness": [("case_id", "string"), ("applicant_forename", "string"), ("applicant_middle_names", "string"),
                     ("applicant_surname", "string"), ("applicant_dob", "date"), ("gender", "string"),
                     ("last_settled_postcode", "string"), ("ni_number", "string"), ("application_date", "date"),
                     ("extract_month", "string")],
    "police_victims": [("crime_reference", "string"), ("victim_name", "string"), ("victim_dob", "string"),
                       ("victim_age", "int"), ("victim_sex", "string"), ("postcode", "string"),
                       ("offence_group", "string"), ("reported_date", "date"), ("extract_month", "string")],
    "victim_support": [("referral_id", "string"), ("forename", "string"), ("surname", "string"),
                       ("year_of_birth", "int"), ("postcode_district", "string"), ("referral_date", "date"),
                       ("referral_route", "string"), ("extract_month", "string")],
}


@pytest.fixture(scope="module")
def sample(spark):
    """One generation for the module, computed once (the determinism test checks it against the lazy tables)."""
    return generate(spark, scale=SCALE, seed=SEED, rates=TEST_RATES).materialise()


def _check_rate(name: str, hits: int, n: int, expected: float, *, slack: float = 0.0, min_n: int = 60) -> None:
    """Observed within four standard errors (plus ``slack``, for kinds a detector cannot always tell apart)."""
    assert n >= min_n, f"{name}: only {n} eligible records; raise the test scale or rates"
    observed = hits / n
    tolerance = 4 * math.sqrt(expected * (1 - expected) / n) + 0.005 + slack
    print(f"{name:<32} expected {expected:.3f}  observed {observed:.3f}  (n={n})")
    assert abs(observed - expected) <= tolerance, f"{name}: observed {observed:.3f}, configured {expected:.3f} (n={n})"


def _rates(df: DataFrame, checks: dict[str, tuple]) -> None:
    """checks: name -> (numerator condition, denominator condition, expected rate[, slack]); one Spark job."""
    aggs = []
    for i, (hit, eligible, *_) in enumerate(checks.values()):
        aggs += [F.sum((hit & eligible).cast("int")).alias(f"h{i}"), F.sum(eligible.cast("int")).alias(f"n{i}")]
    row = df.agg(*aggs).first()
    for i, (name, (_, _, expected, *slack)) in enumerate(checks.items()):
        _check_rate(name, row[f"h{i}"] or 0, row[f"n{i}"] or 0, expected, slack=sum(slack))


# --- reference data --------------------------------------------------------------------------------------------

def test_name_tables_have_a_long_uk_tail():
    surnames = surname_weights()
    assert len(surnames) >= 5000 and [n for n, _ in surnames[:2]] == ["smith", "jones"]
    for sex in ("M", "F"):
        assert len(forename_weights(sex)) >= 1000
    nick = nickname_map()
    assert {"bill", "will"} <= set(nick["william"]) and "kate" in nick["katherine"] and len(nick) >= 100
    assert all(r["name"] == r["name"].lower() and r["alias"] == r["alias"].lower()
               for r in read_data_csv("nicknames.csv"))
    data_dir = PROJECT_ROOT / "bold_spark" / "synthetic" / "data"
    assert sum(p.stat().st_size for p in data_dir.iterdir() if p.is_file()) < 2 * 1024 * 1024


def test_alias_table_reproduces_the_weights_exactly():
    weights = [5.0, 1.0, 0.5, 2.5, 1.0]
    prob, alias = alias_table(weights)
    implied = [0.0] * len(weights)
    for i, (p, a) in enumerate(zip(prob, alias)):
        implied[i] += p / len(weights)
        implied[a] += (1 - p) / len(weights)
    assert implied == pytest.approx([w / sum(weights) for w in weights])


def test_default_rates_are_the_conf_file_and_overrides_are_checked(tmp_path):
    data = yaml.safe_load(DEFAULT_RATES_FILE.read_text())
    assert load_rates().as_dict() == {k: float(v) for section in data.values() for k, v in section.items()}
    assert set(load_rates().as_dict()) == {k for keys in SECTIONS.values() for k in keys}
    override = tmp_path / "rates.yaml"
    override.write_text("errors:\n  name_typo: 0.2\n")
    assert load_rates(override).name_typo == 0.2 and load_rates(override).nickname == load_rates().nickname
    for text, message in (("errors:\n  nam_typo: 0.1\n", "errors.nam_typo"),
                          ("errors:\n  name_typo: 1.5\n", "between 0 and 1"),
                          ("errors:\n  nickname: 0.6\n  name_typo: 0.3\n  name_phonetic: 0.2\n", "share one draw")):
        override.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_rates(override)


# --- schema, truth, overlap -------------------------------------------------------------------------------------

def test_each_department_has_its_own_schema_and_no_person_id(sample):
    assert set(sample.departments) == set(SOURCE_SYSTEMS)
    for source, df in sample.departments.items():
        assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == EXPECTED_SCHEMAS[source]
        assert [f.name for f in DEPARTMENT_SCHEMAS[source].fields] == df.columns
        assert not {"person_id", "cohort", "copy"} & {c.lower() for c in df.columns}
    assert sample.truth.columns == ["source_system", "source_record_id", "person_id"]


def test_sizes_add_up_to_about_the_scale(sample):
    total = sum(df.count() for df in sample.departments.values())
    assert abs(total - SCALE) < 0.1 * SCALE
    assert sample.truth.count() == total


def test_truth_covers_every_record_exactly_once(sample):
    ids = None
    for source, df in sample.departments.items():
        part = df.select(F.lit(source).alias("source_system"),
                         F.col(RECORD_ID_COLUMN[source]).alias("source_record_id"))
        ids = part if ids is None else ids.union(part)
    row = ids.groupBy("source_system", "source_record_id").count().agg(
        F.count("*").alias("distinct"), F.sum("count").alias("records"),
        F.sum(F.col("source_record_id").isNull().cast("int")).alias("null_ids")).first()
    assert row["null_ids"] == 0 and row["distinct"] == row["records"], "record ids are not unique within a source"
    n_records = row["records"]
    truth = sample.truth.withColumn("in_truth", F.lit(1))
    joined = ids.withColumn("in_source", F.lit(1)).join(truth, ["source_system", "source_record_id"], how="full_outer")
    row = joined.agg(F.count("*").alias("n"), F.sum(F.col("in_truth").isNull().cast("int")).alias("not_in_truth"),
                     F.sum(F.col("in_source").isNull().cast("int")).alias("not_in_source"),
                     F.sum(F.col("person_id").isNull().cast("int")).alias("no_person")).first()
    assert row["n"] == n_records and row["not_in_truth"] == 0 and row["not_in_source"] == 0
    assert row["no_person"] == 0


def _people(sample, source: str) -> DataFrame:
    return sample.truth.filter(F.col("source_system") == source).select("person_id").distinct()


def _share_in(sample, source: str, other: str) -> float:
    a, b = _people(sample, source), _people(sample, other)
    return a.join(b, "person_id", how="inner").count() / a.count()


def test_overlap_follows_the_pathways(sample):
    shares = {
        "prison -> probation": (_share_in(sample, "prison_releases", "probation"), 0.75, 0.95),
        "prison -> treatment": (_share_in(sample, "prison_releases", "drug_alcohol_treatment"), 0.2, 0.4),
        "prison -> homelessness": (_share_in(sample, "prison_releases", "homelessness"), 0.1, 0.3),
        "support within police": (_share_in(sample, "victim_support", "police_victims"), 0.7, 0.95),
        "police -> support": (_share_in(sample, "police_victims", "victim_support"), 0.25, 0.5),
        "probation -> prison": (_share_in(sample, "probation", "prison_releases"), 0.3, 0.55),
    }
    for name, (share, low, high) in shares.items():
        print(f"{name:<28} {share:.3f}")
        assert low <= share <= high, f"{name}: {share:.3f} not in [{low}, {high}]"


def _first_event(sample, source: str) -> DataFrame:
    df = sample.departments[source]
    return (df.join(sample.truth.filter(F.col("source_system") == source),
                    F.col(RECORD_ID_COLUMN[source]) == F.col("source_record_id"), how="inner")
            .groupBy("person_id").agg(F.min(EVENT_DATE_COLUMN[source]).alias(source)))


def test_event_dates_make_the_journeys_visible(sample):
    for before, after, max_days in (("prison_releases", "probation", 42), ("police_victims", "victim_support", 28)):
        joined = _first_event(sample, before).join(_first_event(sample, after), "person_id", how="inner")
        lag = F.datediff(F.col(after), F.col(before))
        row = joined.agg(F.count("*").alias("n"), F.sum(lag.between(0, max_days).cast("int")).alias("ok")).first()
        assert row["n"] > 50 and row["ok"] / row["n"] > 0.9, (before, after, row)


def test_partitions_are_extract_months_of_the_event_date(sample):
    for source, df in sample.departments.items():
        bad = df.filter(F.col("extract_month") != F.date_format(EVENT_DATE_COLUMN[source], "yyyy-MM")).count()
        months = df.select("extract_month").distinct().count()
        assert bad == 0 and months >= 24, (source, bad, months)
        assert df.agg(F.min("extract_month"), F.max("extract_month")).first()[0] >= "2022-01"


# --- error rates ------------------------------------------------------------------------------------------------

def _recorded_names(sample) -> DataFrame:
    d = sample.departments
    parts = [
        d["prison_releases"].select(F.lit("prison_releases").alias("s"), F.col("prison_number").alias("id"),
                                    F.lower("FORENAME").alias("rf"), F.lower("SURNAME").alias("rs")),
        d["drug_alcohol_treatment"].select(F.lit("drug_alcohol_treatment"), "client_reference", "first_name",
                                           "surname"),
        d["homelessness"].select(F.lit("homelessness"), "case_id", F.lower("applicant_forename"),
                                 F.lower("applicant_surname")),
        d["victim_support"].filter(F.length("forename") > 1).select(F.lit("victim_support"), "referral_id",
                                                                    F.lower("forename"), F.lower("surname")),
    ]
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p)
    clean = sample.clean_records.select(F.col("source_system").alias("s"), F.col("source_record_id").alias("id"),
                                        F.col("first_name").alias("cf"), F.col("surname").alias("cs"))
    nick = nicknames_frame(sample.truth.sparkSession).select(F.col("name").alias("cf"), "aliases")
    return out.join(clean, ["s", "id"], how="inner").join(F.broadcast(nick), "cf", how="left")


def test_name_errors_occur_at_their_configured_rates(sample):
    r = sample.rates
    df = _recorded_names(sample)
    swapped = (F.col("rf") == F.col("cs")) & (F.col("rs") == F.col("cf"))
    kept = ~swapped & (F.col("cf") != F.col("cs"))
    aliases = F.coalesce(F.col("aliases"), F.array().cast("array<string>"))

    def kinds(rec: str, clean: str) -> tuple:
        candidates = E.phonetic_candidates(F.col(clean))
        parts = F.split(F.col(clean), "-")
        double_variant = F.col(clean).contains("-") & (
            (F.col(rec) == F.try_element_at(parts, F.lit(1))) | (F.col(rec) == F.try_element_at(parts, F.lit(2)))
            | (F.col(rec) == F.regexp_replace(F.col(clean), "-", " ")))
        phonetic = F.array_contains(candidates, F.col(rec))
        typo = ((F.col(rec) != F.col(clean)) & ~phonetic & ~double_variant & ~F.array_contains(aliases, F.col(rec))
                & (F.levenshtein(F.col(rec), F.col(clean)) <= 2))
        return typo, phonetic, F.size(candidates) > 0, double_variant

    f_typo, f_phon, f_phon_ok, _ = kinds("rf", "cf")
    s_typo, s_phon, s_phon_ok, s_double = kinds("rs", "cs")
    # A keyboard slip sometimes lands on a sound-alike spelling (dropping one of a double letter), so each of the
    # two is checked with some slack and their sum tightly.
    ambiguity = 0.25 * r.name_typo
    _rates(df, {
        "name_swap": (swapped, F.col("cf") != F.col("cs"), r.name_swap),
        "nickname": (F.array_contains(aliases, F.col("rf")), kept & (F.size(aliases) > 0), r.nickname),
        "name_typo (forename)": (f_typo, kept, r.name_typo, ambiguity),
        "name_typo (surname)": (s_typo, kept, r.name_typo, ambiguity),
        "name_phonetic (forename)": (f_phon, kept & f_phon_ok, r.name_phonetic, ambiguity),
        "name_phonetic (surname)": (s_phon, kept & s_phon_ok, r.name_phonetic, ambiguity),
        "typo or phonetic (both names)": (f_typo | f_phon | s_typo | s_phon, kept & f_phon_ok & s_phon_ok,
                                          1 - (1 - r.name_typo - r.name_phonetic) ** 2),
        "double_barrel_variant": (s_double, kept & F.col("cs").contains("-"), r.double_barrel_variant),
    })


def _with_clean(sample, source: str, **cols) -> DataFrame:
    df = sample.departments[source].select(F.col(RECORD_ID_COLUMN[source]).alias("id"),
                                           *(c.alias(k) for k, c in cols.items()))
    clean = sample.clean_records.filter(F.col("source_system") == source).withColumnRenamed("source_record_id", "id")
    return df.join(clean, "id", how="inner")


def test_middle_names_are_sometimes_left_out(sample):
    df = _with_clean(sample, "homelessness", rm=F.col("applicant_middle_names"))
    _rates(df, {"middle_name_missing": (F.col("rm").isNull(), F.size("middle_names") > 0,
                                        sample.rates.middle_name_missing)})


def _recorded_dates_and_postcodes(sample) -> DataFrame:
    nospace = F.regexp_replace

    parts = [
        _with_clean(sample, "prison_releases", rd=F.col("DOB"), rp=F.col("release_postcode")),
        _with_clean(sample, "probation", rd=F.to_date("date_of_birth", "dd/MM/yyyy"), rp=F.col("postcode")),
        _with_clean(sample, "drug_alcohol_treatment", rd=F.to_date("date_of_birth", "yyyy-MM-dd"),
                    rp=F.lit(None).cast("string")),
        _with_clean(sample, "police_victims", rd=F.to_date("victim_dob", "dd-MMM-yyyy"), rp=F.col("postcode")),
    ]
    cols = ["source_system", "rd", "rp", "date_of_birth", "postcode", "previous_postcode"]
    out = parts[0].select(*cols)
    for p in parts[1:]:
        out = out.union(p.select(*cols))
    return (out.withColumn("rp", nospace("rp", " ", "")).withColumn("postcode", nospace("postcode", " ", ""))
            .withColumn("previous_postcode", nospace("previous_postcode", " ", "")))


def test_date_and_postcode_errors_occur_at_their_configured_rates(sample):
    r = sample.rates
    df = _recorded_dates_and_postcodes(sample)
    dob, rd = F.col("date_of_birth"), F.col("rd")
    has_dob, has_pc = rd.isNotNull(), F.col("rp").isNotNull()
    slips = [F.date_add(dob, 1), F.date_add(dob, -1), F.add_months(dob, 12), F.add_months(dob, -12)]
    moved = F.col("previous_postcode").isNotNull() & (F.col("previous_postcode") != F.col("postcode"))
    typo_pc = ((F.col("rp") != F.col("postcode")) & (F.col("rp") != F.coalesce(F.col("previous_postcode"), F.lit("")))
               & (F.substring("rp", 1, F.length("rp") - 3) == F.substring("postcode", 1, F.length("postcode") - 3)))
    prison_or_probation = F.col("source_system").isin("prison_releases", "probation")
    _rates(df, {
        "dob_day_month_swap": (rd == E.swap_day_month(dob), has_dob & E.can_swap_day_month(dob),
                               r.dob_day_month_swap),
        "dob_jan1_placeholder": (rd == E.first_of_january(dob), has_dob & (F.date_format(dob, "MM-dd") != "01-01"),
                                 r.dob_jan1_placeholder),
        "dob_typo": (rd.isin(*slips), has_dob, r.dob_typo),
        "missing_value (dob)": (rd.isNull(), prison_or_probation, r.missing_value),
        "missing_value (postcode)": (F.col("rp").isNull(), F.col("source_system") != "drug_alcohol_treatment",
                                     r.missing_value),
        "postcode_stale": (F.col("rp") == F.col("previous_postcode"), has_pc & moved, r.postcode_stale),
        "postcode_typo": (typo_pc, has_pc, r.postcode_typo),
    })


def test_identifier_and_source_conventions_occur_at_their_configured_rates(sample):
    r, d = sample.rates, sample.departments
    homeless = _with_clean(sample, "homelessness", rn=F.col("ni_number"), rd=F.col("applicant_dob"))
    _rates(homeless, {
        # Not counting a partner's record that carries the head of household's NI number (borrowed_nino).
        "nino_typo": ((F.col("rn") != F.col("nino")) & (F.col("rn") != F.coalesce("relative_nino", F.lit(""))),
                      F.col("rn").isNotNull() & (F.col("rn") != F.coalesce("relative_nino", F.lit(""))),
                      r.nino_typo),
        "homelessness_nino_present": (F.col("rn").isNotNull(), F.lit(True), r.homelessness_nino_present),
        "homelessness_dob_missing": (F.col("rd").isNull(), F.lit(True),
                                     1 - (1 - r.homelessness_dob_missing) * (1 - r.missing_value)),
    })
    _rates(d["probation"], {"probation_pnc_present": (F.col("pnc_id").isNotNull(), F.lit(True),
                                                      r.probation_pnc_present)})
    _rates(d["police_victims"], {"police_age_only": (F.col("victim_dob").isNull(), F.lit(True),
                                                     1 - (1 - r.police_age_only) * (1 - r.missing_value))})
    _rates(d["victim_support"], {"victim_support_initial_only": (F.length("forename") == 1, F.lit(True),
                                                                 r.victim_support_initial_only)})
    _rates(d["drug_alcohol_treatment"], {"missing_value (sex)": (F.col("sex").isNull(), F.lit(True),
                                                                 r.missing_value)})


def test_duplicates_within_a_source_occur_at_their_configured_rate(sample):
    per_person = sample.truth.groupBy("source_system", "person_id").count()
    _rates(per_person, {"duplicate_record": (F.col("count") >= 2, F.lit(True), sample.rates.duplicate_record),
                        "duplicate_record (third)": (F.col("count") >= 3, F.lit(True),
                                                     sample.rates.duplicate_record / 5)})


def test_population_traits_and_surname_changes(sample):
    r = sample.rates
    p = sample.people
    woman = (F.col("sex") == "F") & (F.col("date_of_birth") <= F.lit("2001-01-01").cast("date"))
    _rates(p, {
        "surname_change": (F.col("birth_surname").isNotNull(), woman, r.surname_change),
        "middle_name": (F.size("middle_names") > 0, F.lit(True), r.middle_name),
        "double_barrelled": (F.coalesce("birth_surname", "surname").contains("-"), F.lit(True), r.double_barrelled),
        "moved": (F.size("addresses") > 1, F.lit(True), r.moved),
    })
    assert p.filter(F.col("birth_surname").isNotNull() & (F.col("sex") == "M")).count() == 0
    # Records before the change carry the birth surname; records after it the new one.
    changed = p.filter(F.col("birth_surname").isNotNull()).select("person_id", "birth_surname", "surname_changed_on",
                                                                  F.col("surname").alias("new_surname"))
    c = sample.clean_records.join(changed, "person_id", how="inner")
    before = F.col("event_date") < F.col("surname_changed_on")
    row = c.agg(F.sum(before.cast("int")).alias("n_before"),
                F.sum((before & (F.col("surname") == F.col("birth_surname"))).cast("int")).alias("ok_before"),
                F.sum((~before & (F.col("surname") == F.col("new_surname"))).cast("int")).alias("ok_after"),
                F.count("*").alias("n")).first()
    assert row["n_before"] > 20 and row["ok_before"] == row["n_before"]
    assert row["ok_after"] == row["n"] - row["n_before"]


def test_households_hold_relatives_at_their_configured_rates(sample):
    r = sample.rates
    p = sample.people.withColumns({"block": F.floor(F.col("person_id") / 4), "role": F.pmod("person_id", F.lit(4))})
    head = p.where(F.col("role") == 0).select("block", *[F.col(c).alias(f"h_{c}") for c in (
        "sex", "date_of_birth", "first_name", "surname", "addresses")])
    first_child = p.where(F.col("role") == 2).select("block", F.col("date_of_birth").alias("c_dob"))
    m = p.where(F.col("role") > 0).join(head, "block", how="inner").join(first_child, "block", how="left")
    family = F.col("addresses") == F.col("h_addresses")  # one household: the head's address history
    partner = family & (F.col("role") == 1)
    child = family & (F.col("role") >= 2)
    _rates(m, {
        "living_as_family": (family, F.col("role") == 1, r.living_as_family),
        "keeps_own_surname": (F.col("surname") != F.col("h_surname"), partner, r.keeps_own_surname),
        "twins": (F.col("date_of_birth") == F.col("c_dob"), child & (F.col("role") == 3), r.twins),
        # the first child named after the parent of the same sex (or, rarely, after nobody but with the same name)
        "named_after_parent": (F.col("first_name") == F.col("h_first_name"), child & (F.col("role") == 2),
                               r.named_after_parent, 0.02),
    })
    wrong = m.agg(F.sum((partner & (F.col("sex") == F.col("h_sex"))).cast("int")).alias("partner_same_sex"),
                  F.sum((child & (F.datediff("date_of_birth", "h_date_of_birth") < 16 * 365)).cast("int"))
                  .alias("child_too_old"),
                  F.sum((child & F.col("birth_surname").isNull() & (F.col("surname") != F.col("h_surname")))
                        .cast("int")).alias("child_other_surname")).first()
    assert wrong.asDict() == {"partner_same_sex": 0, "child_too_old": 0, "child_other_surname": 0}
    # A partner's record carries the head's NI number at borrowed_nino (before any typo or source convention).
    _rates(sample.recorded, {"borrowed_nino": (F.col("r_nino") == F.col("relative_nino"),
                                               F.col("relative_nino").isNotNull(), r.borrowed_nino)})


def test_weighted_draws_follow_the_frequency_tables(spark, sample):
    from bold_spark.synthetic.draws import uniform
    from bold_spark.synthetic.names import draw_names, reference_tables

    n = 200_000
    table = reference_tables(spark).surnames
    draws = draw_names(spark.range(n).withColumnRenamed("id", "person_id"),
                       [("surname", table, table.bucket(uniform(1, "b", "person_id")), uniform(1, "a", "person_id"))])
    weights = dict(surname_weights())
    total = sum(weights.values())
    counts = {r["surname"]: r["count"] for r in draws.groupBy("surname").count().orderBy(F.desc("count")).collect()[:3]}
    assert list(counts) == ["smith", "jones", "williams"]
    for name, count in counts.items():
        p = weights[name] / total
        assert abs(count / n - p) <= 4 * math.sqrt(p * (1 - p) / n), name
    # A long tail in the generated people too: thousands of distinct surnames among a few thousand people.
    stats = sample.people.agg(F.count("*").alias("n"), F.countDistinct("surname").alias("distinct")).first()
    assert stats["distinct"] > 0.5 * stats["n"]


# --- determinism and delivery -----------------------------------------------------------------------------------

def _fingerprint(sample) -> DataFrame:
    rows = [df.select(F.lit(s).alias("s"), F.to_json(F.struct(*df.columns)).alias("row"))
            for s, df in sample.departments.items()]
    rows.append(sample.truth.select(F.lit("truth").alias("s"), F.to_json(F.struct("*")).alias("row")))
    out = rows[0]
    for df in rows[1:]:
        out = out.union(df)
    return out


def test_same_seed_and_scale_give_identical_tables_whatever_the_partitioning(spark, sample):
    again = generate(spark, scale=SCALE, seed=SEED, rates=TEST_RATES, num_partitions=3)
    ours, theirs = _fingerprint(sample), _fingerprint(again.materialise())
    assert theirs.count() == ours.count()
    assert ours.exceptAll(theirs).count() == 0
    assert theirs.exceptAll(ours).count() == 0
    # The lazy table a job writes (computed on its own) is the same as the one rendered from the whole sample.
    lazy = again.departments["victim_support"]
    assert lazy.exceptAll(sample.departments["victim_support"]).count() == 0
    assert lazy.count() == sample.departments["victim_support"].count()
    # Another seed gives other people other record ids.
    other = source_keys(spark.range(sample.n_people).withColumnRenamed("id", "person_id"), source="probation",
                        seed=SEED + 1, rates=TEST_RATES, n_people=sample.n_people).select("source_record_id")
    ours = sample.truth.filter(F.col("source_system") == "probation").select("source_record_id")
    assert other.exceptAll(ours).count() > 0.9 * other.count()


def _load_job():
    spec = importlib.util.spec_from_file_location("generate_sample_job", PROJECT_ROOT / "jobs" / "generate_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_job_writes_delta_partitioned_by_extract_month(spark, sample, tmp_path):
    from delta.tables import DeltaTable

    job = _load_job()
    df = sample.departments["victim_support"].filter(F.col("extract_month") <= "2022-04")  # four monthly extracts
    path = str(tmp_path / "victim_support")
    assert job.write_delta(df, path, partition_by="extract_month") == df.count()
    detail = DeltaTable.forPath(spark, path).detail().select("partitionColumns").first()[0]
    assert list(detail) == ["extract_month"]
    month = df.select(F.min("extract_month")).first()[0]
    stored = spark.read.format("delta").load(path).filter(F.col("extract_month") == month)
    assert stored.count() == df.filter(F.col("extract_month") == month).count()
    assert stored.inputFiles() and all(f"extract_month={month}" in f for f in stored.inputFiles())


# --- configuration ---------------------------------------------------------------------------------------------

def test_demo_source_declarations_parse_and_map_generated_columns(sample):
    files = sorted((PROJECT_ROOT / "conf" / "sources" / "demo").glob("*.yaml"))
    parsed = [parse_source(yaml.safe_load(f.read_text()), f, PROJECT_ROOT) for f in files]
    assert sorted(s.name for s in parsed) == sorted(SOURCE_SYSTEMS)
    for source in parsed:
        assert Path(source.table.path) == PROJECT_ROOT / "var" / "sample" / source.name
        columns = set(sample.departments[source.name].columns)
        missing = {k: v for k, v in source.source_columns().items() if v not in columns}
        assert not missing, f"{source.file}: maps columns the generator does not write: {missing}"
        assert source.record_id == RECORD_ID_COLUMN[source.name]


# --- corruption functions ---------------------------------------------------------------------------------------

def test_corruptions_always_change_the_value_and_keep_its_format(spark):
    rows = [(name, f"{i / 50:.4f}", f"{(i * 7 % 50) / 50:.4f}", f"{(i * 13 % 50) / 50:.4f}")
            for i, name in enumerate(["anna", "bob", "o'brien", "smith-jones", "li", "x", "aaron", "llewellyn"] * 6)]
    df = spark.createDataFrame(rows, "name string, a string, b string, c string").select(
        "name", *(F.col(c).cast("double").alias(c) for c in "abc"))
    out = df.select(
        "name",
        E.keyboard_slip(F.col("name"), F.col("a"), F.col("b"), F.col("c")).alias("slip"),
        E.postcode_slip(F.lit("SW1A 1AA"), F.col("a"), F.col("b")).alias("pc"),
        E.nino_slip(F.lit("AB123456C"), F.col("a"), F.col("b")).alias("nino"),
    ).collect()
    for row in out:
        assert row["slip"] != row["name"]
        assert row["pc"] != "SW1A 1AA" and row["pc"].startswith("SW1A ") and len(row["pc"]) == 8
        assert row["pc"][5].isdigit() and all(ch in E.POSTCODE_INWARD_LETTERS for ch in row["pc"][6:])
        assert row["nino"] != "AB123456C" and row["nino"][:2] == "AB" and row["nino"][2:8].isdigit()
    dates = spark.createDataFrame([("2001-03-04",), ("1999-12-25",)], "d string").select(F.to_date("d").alias("d"))
    got = dates.select(E.swap_day_month(F.col("d")).cast("string"), E.first_of_january(F.col("d")).cast("string"))
    assert [tuple(r) for r in got.collect()] == [("2001-04-03", "2001-01-01"), ("1999-12-25", "1999-01-01")]
