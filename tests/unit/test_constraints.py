"""Relatives are different people: constraints in configuration, the constrained merge, and clustering on Spark."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from bold_spark.clustering.rules import (
    ConstraintSettings,
    OnePerPerson,
    constrained_merge,
    dates_of_birth_conflict,
    is_typing_slip,
)
from bold_spark.config import load_config
from bold_spark.crosswalk.build import cluster_records
from bold_spark.errors import ConfigError
from bold_spark.clustering.constrained import constraint_columns, pair_rules, summarise

D = dt.date
PROJECT_ROOT = Path(__file__).resolve().parents[2]


# --- dates of birth ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, slip", [
    (D(1980, 3, 4), D(1980, 4, 3), True),     # day and month swapped
    (D(1985, 6, 1), D(1958, 6, 1), True),     # neighbouring digits of the year swapped
    (D(1985, 6, 1), D(1995, 6, 1), True),     # one digit changed
    (D(1960, 5, 1), D(1988, 7, 12), False),   # father and son
    (D(1979, 12, 31), D(1990, 1, 2), False),
])
def test_typing_slips_are_recognised(a, b, slip):
    assert is_typing_slip(a, b) is slip


def test_dates_of_birth_conflict_only_beyond_the_years_and_not_for_slips():
    assert dates_of_birth_conflict(D(1960, 5, 1), D(1988, 7, 12), 5)
    assert not dates_of_birth_conflict(D(1960, 5, 1), D(1963, 7, 12), 5)  # spouses a few years apart: allowed
    assert not dates_of_birth_conflict(D(1985, 6, 1), D(1958, 6, 1), 5)  # 27 years, but a transposition
    assert not dates_of_birth_conflict(D(1960, 5, 1), None, 5)
    assert not dates_of_birth_conflict(D(1960, 5, 1), D(1988, 7, 12), None)  # the constraint is off


# --- the merge, without Spark -----------------------------------------------------------------------------------------

def _rec(node, once=None, dob=None, nhs=None):
    return {"node": node, "once_key": once, "date_of_birth": dob, "nhs_number": nhs}


def test_a_record_without_date_of_birth_joins_the_son_it_matches_best_and_never_both():
    records = [_rec("f", dob=D(1960, 5, 1)), _rec("s", dob=D(1988, 7, 12)), _rec("p")]
    edges = [("f", "p", 12.0), ("s", "p", 14.0), ("f", "s", 5.0)]
    result = constrained_merge(records, edges, identifiers=["nhs_number"], years_apart=5)
    assert result.labels == {"f": "f", "s": "p", "p": "p"}
    assert result.refused == {"date_of_birth": 2}
    assert result.violated == ["date_of_birth"]


def test_a_record_with_only_a_year_of_birth_is_compared_by_year():
    # a police record of the son aged 35 (1988 or 1989) and one of the father with his full date of birth
    records = [_rec("f", dob=D(1960, 5, 1)), {**_rec("s"), "birth_year": 1988}, {**_rec("x"), "birth_year": 1961}]
    result = constrained_merge(records, [("f", "s", 8.0), ("f", "x", 7.0)], identifiers=[], years_apart=5)
    assert result.labels == {"f": "f", "s": "s", "x": "f"} and result.refused == {"date_of_birth": 1}
    # one digit of the year changed (1960 / 1980) is a slip, not another person
    slip = constrained_merge([_rec("f", dob=D(1960, 5, 1)), {**_rec("y"), "birth_year": 1980}], [("f", "y", 8.0)],
                             identifiers=[], years_apart=5)
    assert slip.refused == {}


def test_a_component_that_breaks_nothing_stays_whole():
    records = [_rec("a", dob=D(1980, 3, 4)), _rec("b", dob=D(1980, 4, 3)), _rec("c", nhs="1")]
    result = constrained_merge(records, [("a", "b", 3.0), ("b", "c", 2.0)], identifiers=["nhs_number"],
                               years_apart=0)
    assert set(result.labels.values()) == {"a"} and result.refused == {} and result.violated == []


def test_cannot_link_pairs_are_refused_like_constraints():
    records = [_rec("a"), _rec("b"), _rec("c")]
    result = constrained_merge(records, [("a", "b", 9.0), ("b", "c", 8.0)], identifiers=[], years_apart=None,
                               cannot_link=[("a", "c")])
    assert result.labels == {"a": "a", "b": "a", "c": "c"} and result.refused == {"cannot_link": 1}


def test_equal_weights_are_joined_in_a_repeatable_order():
    records = [_rec("a", once="census"), _rec("b"), _rec("c", once="census")]
    one = constrained_merge(records, [("c", "b", 4.0), ("a", "b", 4.0)], identifiers=[], years_apart=None)
    other = constrained_merge(records, [("a", "b", 4.0), ("c", "b", 4.0)], identifiers=[], years_apart=None)
    assert one.labels == other.labels == {"a": "a", "b": "a", "c": "c"}


# --- on Spark -----------------------------------------------------------------------------------------------------------

# A household: father and son both John Smith, twins Amy and Beth, and Mary whose homelessness record carries her
# husband's NINO. Each appears once in the census; other sources hold their other records.
PEOPLE = [
    # source, id, date of birth, event date, NHS number, NINO
    ("census", "c_f", D(1960, 5, 1), D(2021, 3, 21), None, None),
    ("census", "c_s", D(1988, 7, 12), D(2021, 3, 21), None, None),
    ("census", "c_a", D(1995, 3, 3), D(2021, 3, 21), None, None),
    ("census", "c_b", D(1995, 3, 3), D(2021, 3, 21), None, None),
    ("census", "c_m", D(1962, 2, 2), D(2021, 3, 21), None, None),
    ("health", "h_f", D(1960, 5, 1), None, "4000000001", None),
    ("health", "h_s", D(1988, 7, 12), None, "4000000002", None),
    ("probation", "p_s", None, None, None, None),  # no date of birth: matches father and son
    ("homelessness", "hl_m", D(1962, 2, 2), None, None, "AB123456C"),  # her husband's NINO
    ("homelessness", "hl_f", D(1960, 5, 1), None, None, "AB123456C"),
    ("police", "po_a", D(1995, 3, 3), None, None, None),
    ("police", "po_b", D(1995, 3, 3), None, None, None),
    ("police", "x1", D(1970, 1, 1), None, None, None),  # an unrelated person in three records, no conflict
    ("health", "x2", D(1970, 1, 1), None, "4000000009", None),
    ("probation", "x3", None, None, None, None),
]
EDGES = [  # (l, r, match weight); probability from the weight
    ("census:c_f", "health:h_f", 20), ("census:c_s", "health:h_s", 20), ("census:c_a", "police:po_a", 18),
    ("census:c_b", "police:po_b", 18), ("homelessness:hl_f", "census:c_f", 17), ("census:c_m", "homelessness:hl_m", 16),
    ("census:c_s", "probation:p_s", 14), ("health:h_s", "probation:p_s", 13), ("census:c_f", "probation:p_s", 12),
    ("health:h_f", "probation:p_s", 11), ("homelessness:hl_m", "homelessness:hl_f", 10),
    ("police:po_a", "police:po_b", 9), ("census:c_a", "census:c_b", 8), ("census:c_f", "census:c_s", 5),
    ("police:x1", "health:x2", 15), ("health:x2", "probation:x3", 7),
]
HOUSEHOLD = ConstraintSettings(one_record_per_person=(OnePerPerson("census"),), distinct_identifiers=("nhs_number",),
                               date_of_birth_years_apart=5)


def _frames(spark, people=PEOPLE, edges=EDGES):
    persons = spark.createDataFrame(people, "source_system string, source_record_id string, date_of_birth date, "
                                            "event_date date, nhs_number string, nino string") \
        .withColumn("birth_year", F.year("date_of_birth"))
    rows = []
    for left, right, weight in edges:
        (sl, il), (sr, ir) = left.split(":"), right.split(":")
        rows.append((sl, il, sr, ir, float(weight), 2 ** weight / (1 + 2 ** weight)))
    scored = spark.createDataFrame(rows, "source_system_l string, source_record_id_l string, source_system_r string, "
                                         "source_record_id_r string, match_weight double, match_probability double")
    return persons, scored


def _groups(clusters) -> set[frozenset[str]]:
    by_component: dict[str, set[str]] = {}
    for r in clusters.records.collect():  # small test frame
        by_component.setdefault(r["component"], set()).add(r["source_record_id"])
    return {frozenset(members) for members in by_component.values()}


def test_relatives_end_in_different_clusters_and_their_own_records_follow_them(spark):
    persons, scored = _frames(spark)
    clusters = cluster_records(constraint_columns(persons, HOUSEHOLD), scored, threshold=0.8, constraints=HOUSEHOLD)
    assert _groups(clusters) == {
        frozenset({"c_f", "h_f", "hl_f"}),  # father
        frozenset({"c_s", "h_s", "p_s"}),  # son: the dob-less probation record went to its best match
        frozenset({"c_a", "po_a"}), frozenset({"c_b", "po_b"}),  # twins
        frozenset({"c_m", "hl_m"}),  # the spouse whose record carries her husband's NINO
        frozenset({"x1", "x2", "x3"}),  # no constraint broken: connected components' cluster, untouched
    }
    figures = summarise(clusters.splits, HOUSEHOLD)
    assert figures["components_checked"] == 2 and figures["components_split"] == 2
    assert figures["clusters_from_split"] == 5
    assert figures["violated"] == {"one_record_per_person": 2, "nhs_number": 1, "date_of_birth": 1}
    # Each refused edge counts under the first kind it breaks: here every one joins two census records.
    assert figures["refused"] == {"one_record_per_person": 6, "nhs_number": 0, "date_of_birth": 0}


def test_without_a_broken_constraint_the_clusters_are_connected_components(spark):
    persons, scored = _frames(spark)
    plain = _groups(cluster_records(persons.select("source_system", "source_record_id"), scored, threshold=0.8))
    constrained = _groups(cluster_records(constraint_columns(persons, ConstraintSettings(date_of_birth_years_apart=50)),
                                          scored, threshold=0.8,
                                          constraints=ConstraintSettings(date_of_birth_years_apart=50)))
    assert constrained == plain
    # Connected components merge the parents and son into one cluster and the twins into another; x1-x3.
    assert len(plain) == 3


def test_a_source_held_once_per_month_may_hold_a_person_in_two_months(spark):
    people = [("caseload", "jan", D(1970, 1, 1), D(2024, 1, 31), None, None),
              ("caseload", "feb", D(1970, 1, 1), D(2024, 2, 29), None, None),
              ("caseload", "feb2", D(1970, 1, 1), D(2024, 2, 1), None, None)]
    edges = [("caseload:jan", "caseload:feb", 20), ("caseload:feb", "caseload:feb2", 19)]
    monthly = ConstraintSettings(one_record_per_person=(OnePerPerson("caseload", per="month"),))
    persons, scored = _frames(spark, people, edges)
    groups = _groups(cluster_records(constraint_columns(persons, monthly), scored, threshold=0.8,
                                     constraints=monthly))
    assert groups == {frozenset({"jan", "feb"}), frozenset({"feb2"})}


# A model's forename comparison, as Splink writes it: levels in order, the last one ELSE.
FORENAME_MODEL = {"comparisons": [{"output_column_name": "first_name", "comparison_levels": [
    {"sql_condition": "`first_name_l` IS NULL OR `first_name_r` IS NULL", "is_null_level": True},
    {"sql_condition": "`first_name_l` = `first_name_r`"},
    {"sql_condition": "(length(first_name_l) = 1 OR length(first_name_r) = 1) AND "
                      "substr(first_name_l, 1, 1) = substr(first_name_r, 1, 1)"},
    {"sql_condition": "ELSE"}]}]}


def test_records_whose_forenames_agree_in_no_way_the_model_knows_are_two_people(spark):
    # Partners at one address, same surname, dates of birth two years apart (within date_of_birth_years_apart);
    # a record with only an initial links to both.
    people = [("census", "him", D(1960, 5, 1), None, None, None), ("census", "her", D(1962, 2, 2), None, None, None),
              ("police", "j", None, None, None, None)]
    edges = [("census:him", "census:her", 6), ("census:him", "police:j", 9), ("census:her", "police:j", 4)]
    persons, scored = _frames(spark, people, edges)
    persons = persons.withColumn("first_name", F.element_at(F.array(F.lit("john"), F.lit("mary"), F.lit("j")),
                                                            F.when(F.col("source_record_id") == "him", 1)
                                                            .when(F.col("source_record_id") == "her", 2).otherwise(3)))
    settings = ConstraintSettings(date_of_birth_years_apart=5, must_agree=("first_name",))
    rules = pair_rules(settings, FORENAME_MODEL)
    assert [r.kind for r in rules] == ["disagree:first_name"] and rules[0].columns == ("first_name",)
    clusters = cluster_records(constraint_columns(persons, settings, rules), scored, threshold=0.8,
                               constraints=settings, rules=rules)
    assert _groups(clusters) == {frozenset({"him", "j"}), frozenset({"her"})}
    assert summarise(clusters.splits, settings)["refused"]["disagree:first_name"] == 2


# --- configuration ------------------------------------------------------------------------------------------------------

def _config_with(tmp_path, constraints) -> Path:
    data = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    data["constraints"] = constraints
    data["sources"] = [str(PROJECT_ROOT / "conf" / "sources" / "demo" / "*.yaml")]
    data["linkage"] = str(PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml")
    data["views"] = str(PROJECT_ROOT / "conf" / "views" / "programme.yaml")
    data["base_dir"] = str(PROJECT_ROOT)
    file = tmp_path / "env.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


@pytest.mark.parametrize("constraints, where, problem", [
    ({"one_record_per_person": ["census"]}, "constraints.one_record_per_person[0].source", "no source named 'census'"),
    ({"one_record_per_person": [{"source": "probation", "per": "week"}]}, "constraints.one_record_per_person[0].per",
     "expected one of day, month, year"),
    ({"distinct_identifiers": ["nhs_number", "passport"]}, "constraints.distinct_identifiers[1]",
     "found 'passport'"),
    ({"date_of_birth_years_apart": -1}, "constraints.date_of_birth_years_apart", "expected a number"),
    ({"one_record_per_persons": ["probation"]}, "constraints", "unknown key(s) 'one_record_per_persons'"),
    ({"must_agree": ["forename"]}, "constraints.must_agree[0]", "comparisons (first_name, surname"),
])
def test_a_constraint_naming_an_unknown_source_or_column_fails_with_file_and_key(tmp_path, constraints, where, problem):
    file = _config_with(tmp_path, constraints)
    with pytest.raises(ConfigError) as raised:
        load_config(file)
    assert f"{file}: {where}" in str(raised.value) and problem in str(raised.value)


def test_a_per_period_constraint_needs_the_source_to_declare_an_event_date(tmp_path):
    data = yaml.safe_load((PROJECT_ROOT / "conf" / "sources" / "demo" / "probation.yaml").read_text())
    data.pop("event_date", None)
    source = tmp_path / "probation.yaml"
    source.write_text(yaml.safe_dump(data))
    file = _config_with(tmp_path, {"one_record_per_person": [{"source": "probation", "per": "month"}]})
    env = yaml.safe_load(file.read_text())
    env["sources"] = [str(source)]
    env.pop("views")
    file.write_text(yaml.safe_dump(env))
    with pytest.raises(ConfigError, match=r"one_record_per_person\[0\]\.per: source 'probation' declares no event_date"):
        load_config(file)


def test_the_declared_constraints_are_parsed(tmp_path):
    config = load_config(_config_with(tmp_path, {"one_record_per_person": ["probation",
                                                                          {"source": "homelessness", "per": "year"}],
                                                 "distinct_identifiers": ["pnc_id"],
                                                 "date_of_birth_years_apart": 5}))
    assert config.constraints == ConstraintSettings(
        one_record_per_person=(OnePerPerson("probation"), OnePerPerson("homelessness", "year")),
        distinct_identifiers=("pnc_id",), date_of_birth_years_apart=5.0)
