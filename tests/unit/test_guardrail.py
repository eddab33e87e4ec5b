"""The blocking guardrail: per-rule comparison estimates and largest block sizes, and the stop before scoring."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from bold_spark.config import LinkageSettings, TrainingSettings, load_config
from bold_spark.errors import ConfigError, DataQualityError
from bold_spark.linkage import model as splink_model

N = 60  # every record shares one surname and birth year: [surname, birth_year] makes one block of N records
PAIRS = N * (N - 1) // 2


@pytest.fixture(scope="module")
def linkage(tmp_path_factory) -> LinkageSettings:
    return LinkageSettings(
        model_path=tmp_path_factory.mktemp("model") / "unused.json",
        comparisons=({"kind": "exact", "column": "sex"},),
        blocking_rules=(["date_of_birth"], ["surname", "birth_year"], "l.first_name = r.surname"),
        training=TrainingSettings(), cluster_threshold=0.95, edge_threshold=0.5,
        max_comparisons=1e6)


@pytest.fixture(scope="module")
def workspace(spark, linkage, tmp_path_factory):
    # Two sources of 30; dates of birth all distinct; nobody's first name is anyone's surname.
    persons = spark.range(N).select(
        F.when(F.col("id") % 2 == 0, "a").otherwise("b").alias("source_system"),
        F.col("id").cast("string").alias("source_record_id"),
        F.concat(F.lit("first"), F.col("id").cast("string")).alias("first_name"),
        F.lit("smith").alias("surname"),
        F.date_add(F.lit("1980-01-01").cast("date"), F.col("id").cast("int")).alias("date_of_birth"),
        F.lit(1980).alias("birth_year"),
        F.lit("M").alias("sex"),
    )
    settings = splink_model.settings_for_training(linkage, where="test")
    ws = splink_model.open_workspace(spark, persons, settings=settings, linkage=linkage,
                                     scratch_dir=str(tmp_path_factory.mktemp("scratch")), run_id="guardrail")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def estimates(workspace, linkage):
    return splink_model.estimate_blocking(workspace.spark.table(workspace.input_view), linkage)


def test_estimates_count_each_rule_and_its_largest_blocks(estimates):
    by_rule = {e["rule"]: e for e in estimates}
    assert list(by_rule) == ["[date_of_birth]", "[surname, birth_year]", "l.first_name = r.surname"]
    assert by_rule["[date_of_birth]"]["rule_comparisons"] == 0
    assert by_rule["[date_of_birth]"]["largest_blocks"][0] == {"records_l": 1, "records_r": 1, "pairs": 0}
    exploding = by_rule["[surname, birth_year]"]
    assert exploding["rule_comparisons"] == PAIRS and exploding["cumulative_comparisons"] == PAIRS
    assert exploding["largest_blocks"] == [{"records_l": N, "records_r": N, "pairs": PAIRS}]
    # An asymmetric rule joins the two sides' key counts: no first name equals a surname, so no block.
    assert by_rule["l.first_name = r.surname"]["largest_blocks"] == []
    assert by_rule["l.first_name = r.surname"]["rule_comparisons"] == 0
    assert by_rule["l.first_name = r.surname"]["cumulative_comparisons"] == PAIRS


def test_blocking_counts_the_exact_pairs_predict_scores(workspace, estimates):
    # The estimate is the sum over rules; the blocked pairs are distinct: here the same, as only one rule blocks.
    assert splink_model.block_pairs(workspace) == PAIRS == estimates[-1]["cumulative_comparisons"]


def test_estimate_is_an_upper_bound_when_rules_overlap(spark, linkage, tmp_path_factory):
    # [surname, birth_year] twice: every pair is found by both rules, counted twice by the estimate, scored once.
    doubled = dataclasses.replace(linkage, blocking_rules=(["surname", "birth_year"], ["surname", "birth_year"]))
    persons = spark.range(8).select(F.lit("a").alias("source_system"), F.col("id").cast("string")
                                    .alias("source_record_id"), F.lit("x").alias("first_name"),
                                    F.lit("smith").alias("surname"), F.lit(None).cast("date").alias("date_of_birth"),
                                    F.lit(1980).alias("birth_year"), F.lit("M").alias("sex"))
    ws = splink_model.open_workspace(spark, persons, settings=splink_model.settings_for_training(doubled, where="t"),
                                     linkage=doubled, scratch_dir=str(tmp_path_factory.mktemp("scratch2")),
                                     run_id="overlap")
    try:
        estimates = splink_model.estimate_blocking(persons, doubled)
        assert [e["rule_comparisons"] for e in estimates] == [28, 28]
        assert estimates[-1]["cumulative_comparisons"] == 56
        assert splink_model.block_pairs(ws) == 28
    finally:
        ws.close()


def test_under_the_caps_the_total_is_returned(estimates, linkage):
    assert splink_model.enforce_comparison_budget(estimates, linkage) == PAIRS


def test_total_over_the_cap_stops_naming_rule_count_and_block_sizes(estimates, linkage):
    capped = dataclasses.replace(linkage, max_comparisons=1000)
    with pytest.raises(DataQualityError) as err:
        splink_model.enforce_comparison_budget(estimates, capped)
    message = str(err.value)
    assert "linkage.blocking_rules[1]: rule [surname, birth_year]" in message
    assert f"generates {PAIRS:,} comparisons" in message and "linkage.max_comparisons = 1,000" in message
    assert f"{N} records ({PAIRS:,} pairs)" in message
    assert "smith" not in message and "1980" not in message  # sizes, never the block's key values


def test_one_exploding_rule_stops_under_the_per_rule_cap(spark, workspace, linkage, estimates):
    capped = dataclasses.replace(linkage, max_comparisons_per_rule=500)
    with pytest.raises(DataQualityError, match=r"rule \[surname, birth_year\] .*max_comparisons_per_rule = 500"):
        splink_model.check_comparison_budget(spark.table(workspace.input_view), capped, estimates=estimates)


def test_per_rule_cap_is_optional_and_validated():
    root = Path(__file__).resolve().parents[2]
    linkage = yaml.safe_load((root / "conf" / "linkage" / "uk_person.yaml").read_text(encoding="utf-8"))
    linkage.pop("max_comparisons_per_rule", None)
    assert load_config(root / "conf" / "local.yaml", overrides={"linkage": linkage}) \
        .linkage.max_comparisons_per_rule is None
    config = load_config(root / "conf" / "local.yaml",
                         overrides={"linkage": {**linkage, "max_comparisons_per_rule": 2.5e7}})
    assert config.linkage.max_comparisons_per_rule == 2.5e7
    with pytest.raises(ConfigError, match=r"local\.yaml: linkage\.max_comparisons_per_rule: expected a number"):
        load_config(root / "conf" / "local.yaml", overrides={"linkage": {**linkage, "max_comparisons_per_rule": "x"}})


def test_blocking_candidates_are_the_records_sharing_a_block_with_a_changed_one(spark):
    schema = "source_system string, source_record_id string, surname string, birth_year int, postcode string"
    changed = spark.createDataFrame([("a", "c1", "smith", 1980, None), ("a", "c2", "jones", None, "AB1 2CD")], schema)
    others = spark.createDataFrame([
        ("b", "o1", "smith", 1980, "ZZ9 9ZZ"),   # same surname and year as c1
        ("b", "o2", "smith", 1981, "ZZ9 9ZZ"),   # same surname only: no rule's whole key
        ("b", "o3", "brown", 1975, "AB1 2CD"),   # same postcode as c2
        ("b", "o4", "jones", None, None),        # c2's surname, but c2 has no birth year: null keys block nothing
        ("b", "o5", "smith", 1980, "AB1 2CD"),   # shares a block with c1 and one with c2: listed once
    ], schema)
    rules = [["surname", "birth_year"], ["postcode"]]
    for changed_rows in (2, 10**9):  # the changed keys broadcast, and too many to broadcast
        found = splink_model.blocking_candidates(others, changed, rules, changed_rows=changed_rows)
        assert sorted(r["source_record_id"] for r in found.collect()) == ["o1", "o3", "o5"]  # five test rows
        assert found.columns == others.columns
    # a rule whose sides use different columns can pair anything: nothing is left out
    assert splink_model.blocking_candidates(others, changed, [*rules, "l.surname = r.postcode"],
                                            changed_rows=2).count() == 5


def test_largest_blocks_come_biggest_first_with_ties_counted_once_each(spark):
    # surname blocks of 5, 4, 4, 2 and 1 records; first name "x" of 3 records against surname "x" of 2 records.
    sizes = {"a": 5, "b": 4, "c": 4, "d": 2, "x": 2, "e": 1}
    rows = [(f"{surname}{i}", surname, "x" if surname == "d" or (surname == "a" and i < 3) else "y")
            for surname, size in sizes.items() for i in range(size)]
    persons = spark.createDataFrame(rows, "source_record_id string, surname string, first_name string")
    same, cross = splink_model.block_statistics(persons, [["surname"], "l.first_name = r.surname"], n=3)
    assert same.pairs == 10 + 6 + 6 + 1 + 1
    assert same.largest == [{"records_l": 5, "records_r": 5, "pairs": 10}] + \
        [{"records_l": 4, "records_r": 4, "pairs": 6}] * 2
    # five records with first name "x" (three of "a", both of "d") against the two records with surname "x"
    assert cross == splink_model.RuleBlocks(10, [{"records_l": 5, "records_r": 2, "pairs": 10}])


def test_a_training_rule_over_its_cap_stops_training_before_em_naming_the_rule(workspace, linkage):
    """[surname, birth_year] as an EM rule makes one block of all N records (a shared placeholder does this at
    scale): training stops at the estimate, before Splink runs the rule."""
    import time

    training = TrainingSettings(em_blocking_rules=(["date_of_birth"], ["surname", "birth_year"]),
                                deterministic_rules=(["date_of_birth"],), max_comparisons=PAIRS - 1)
    capped = dataclasses.replace(linkage, training=training)
    started = time.perf_counter()
    with pytest.raises(DataQualityError, match=rf"linkage.training.em_blocking_rules\[1\]: rule \[surname, "
                                               rf"birth_year\] generates {PAIRS:,} comparisons, over "
                                               rf"linkage.training.max_comparisons = {PAIRS - 1:,}; its largest "
                                               rf"blocks: {N} records \({PAIRS:,} pairs\)"):
        splink_model.train(workspace, capped)
    print(f"training stopped after {time.perf_counter() - started:.1f} s")
    within = dataclasses.replace(capped, training=dataclasses.replace(training, max_comparisons=PAIRS))
    table = workspace.spark.table(workspace.input_view)
    assert splink_model.check_training_budget(table, within) == [
        {"key": "linkage.training.deterministic_rules[0]", "rule": "[date_of_birth]", "rule_comparisons": 0},
        {"key": "linkage.training.em_blocking_rules[0]", "rule": "[date_of_birth]", "rule_comparisons": 0},
        {"key": "linkage.training.em_blocking_rules[1]", "rule": "[surname, birth_year]", "rule_comparisons": PAIRS}]
    # No cap of its own: the prediction cap applies.
    default = dataclasses.replace(capped, training=dataclasses.replace(training, max_comparisons=None),
                                  max_comparisons=PAIRS - 1)
    with pytest.raises(DataQualityError, match=r"over linkage.training.max_comparisons = 1,769"):
        splink_model.check_training_budget(table, default)
