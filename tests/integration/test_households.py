"""Relatives end in different clusters in a real run: Splink scores the pairs (the committed test model), the
constraints in configuration split what connected components would merge, and the run counts what it did. Two runs:
the default configuration, and one without `linkage.best_link_only_below`, whose weak-edge rule would otherwise keep
some relatives apart before the constraints are needed (the constraints' own counts are asserted on that one)."""
from __future__ import annotations

import pytest
import yaml
from dataclasses import replace

from pyspark.sql import functions as F

from bold_spark import pipeline
from bold_spark.quality.run_quality import load_run_quality
from tests.integration.conftest import demo_environment

pytestmark = [pytest.mark.slow, pytest.mark.tables]


def nhs_number(stem: str) -> str:
    """Nine digits and their modulus-11 check digit (a stem whose check would be 10 is not used)."""
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(stem)) % 11
    assert check != 10
    return stem + str(0 if check == 11 else check)


HOME, ELSEWHERE = "SW1A 1AA", "LS1 4AP"
FATHER_NINO = "AB123456C"
# (source, id, forename, surname, date of birth, postcode, identifier); one household of five and one neighbour.
RECORDS = [
    ("census", "c_f", "John", "Smith", "1960-05-01", HOME, None),
    ("census", "c_s", "John", "Smith", "1988-07-12", HOME, None),  # the son, named after his father
    ("census", "c_m", "Mary", "Smith", "1962-02-02", HOME, None),
    ("census", "c_a", "Amy", "Smith", "1995-03-03", HOME, None),  # twins
    ("census", "c_b", "Beth", "Smith", "1995-03-03", HOME, None),
    ("census", "c_p", "Peter", "Jones", "1970-01-01", ELSEWHERE, None),
    ("health", "h_f", "John", "Smith", "1960-05-01", HOME, nhs_number("943476591")),
    ("health", "h_s", "John", "Smith", "1988-07-12", HOME, nhs_number("943476592")),
    ("health", "h_a", "Amy", "Smith", "1995-03-03", HOME, nhs_number("943476593")),
    ("health", "h_b", "Beth", "Smith", "1995-03-03", HOME, nhs_number("943476595")),
    ("health", "h_p", "Peter", "Jones", "1970-01-01", ELSEWHERE, nhs_number("943476597")),
    ("homelessness", "hl_f", "John", "Smith", "1960-05-01", HOME, FATHER_NINO),
    ("homelessness", "hl_m", "Mary", "Smith", "1962-02-02", HOME, FATHER_NINO),  # her husband's NI number
]
PEOPLE = {"father": {"c_f", "h_f", "hl_f"}, "son": {"c_s", "h_s"}, "mother": {"c_m", "hl_m"},
          "amy": {"c_a", "h_a"}, "beth": {"c_b", "h_b"}, "neighbour": {"c_p", "h_p"}}
IDENTIFIER = {"census": None, "health": "nhs_number", "homelessness": "nino"}


@pytest.fixture(scope="module")
def household_run(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("households")
    source_files = []
    for source, identifier in IDENTIFIER.items():
        rows = [r[1:] for r in RECORDS if r[0] == source]
        spark.createDataFrame(rows, "id string, forename string, surname string, dob string, postcode string, "
                                    "identifier string") \
            .write.format("delta").save(str(root / source))
        declaration = {"name": source, "table": {"path": str(root / source)}, "record_id": "id",
                       "columns": {"first_name": "forename", "surname": "surname", "postcode": "postcode",
                                   "date_of_birth": {"column": "dob", "formats": ["yyyy-MM-dd"]},
                                   **({identifier: "identifier"} if identifier else {})}}
        source_files.append(root / f"{source}.yaml")
        source_files[-1].write_text(yaml.safe_dump(declaration))
    constraints = {"one_record_per_person": ["census"], "distinct_identifiers": ["nhs_number", "pnc_id"],
                   "date_of_birth_years_apart": 5}
    config = demo_environment(root, database="bold_households", sources=[str(f) for f in source_files],
                              views=None, constraints=constraints)
    default = pipeline.link(spark, config, as_of="2026-01-01")
    assert config.linkage.best_link_only_below is not None  # uk_person.yaml's
    plain = replace(config, linkage=replace(config.linkage, best_link_only_below=None),
                    output=replace(config.output, database="bold_households_plain"))
    return plain, pipeline.link(spark, plain, as_of="2026-01-01"), (config, default)


def _clusters(spark, config) -> set[frozenset[str]]:
    rows = spark.table(config.output.qualified("crosswalk")).groupBy("cluster_id") \
        .agg(F.collect_set("source_record_id").alias("ids")).collect()  # 13 records
    return {frozenset(r["ids"]) for r in rows}


def test_relatives_are_different_people_and_their_records_join_them(spark, household_run):
    config, record, (default_config, _) = household_run
    assert _clusters(spark, config) == {frozenset(ids) for ids in PEOPLE.values()}
    assert _clusters(spark, default_config) == {frozenset(ids) for ids in PEOPLE.values()}
    # Connected components alone would have merged relatives: the run split components and refused edges.
    assert record.constraints["components_split"] >= 1 and sum(record.constraints["refused"].values()) >= 1


def test_the_census_never_has_two_records_in_one_cluster_and_the_run_counts_violations(spark, household_run):
    config, record, _ = household_run
    census_per_cluster = (spark.table(config.output.qualified("crosswalk")).where(F.col("source_system") == "census")
                          .groupBy("cluster_id").count().agg(F.max("count")).first()[0])
    assert census_per_cluster == 1
    quality = load_run_quality(spark, config.output, record.run_id)
    violations = {(r["dimension"], r["dimension_value"]): r["value"] for r in quality.metric("constraint_violations")}
    assert violations[("one_record_per_person", "before")] >= 1
    assert violations[("one_record_per_person", "after")] == 0 and violations[("nhs_number", "after")] == 0
    assert quality.scalar("constraint_splits") == record.constraints["components_split"]
