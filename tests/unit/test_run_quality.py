"""Quality without truth and the publishing gate, on small inline frames with hand-computed answers."""
from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from bold_spark.clustering.rules import ConstraintSettings, OnePerPerson
from bold_spark.config import OutputTables, PublishGateSettings, QualitySettings
from bold_spark.errors import DataQualityError
from bold_spark.quality.gate import (
    GateDecision,
    decide,
    previous_published,
    publish_candidate,
    total_variation,
    write_crosswalk,
)
from bold_spark.quality.report import waterfall_steps
from bold_spark.quality.run_quality import (
    RunQuality,
    load_run_quality,
    model_levels,
    run_quality,
    write_run_quality,
)
from bold_spark.schemas import CLUSTER_EVENTS, CROSSWALK, MATCH_EDGES, RECORD_GROUPS

SETTINGS = QualitySettings(implausible_cluster_size=2, largest_clusters=3, weight_min=-10, weight_max=40,
                           weight_bin_width=1)

# Five clusters over three sources: A = {p1, b1, h1}, B = {p2, p3, b2}, C = {p4}, D = {b3}, E = {h2, b4}.
MEMBERS = {"A": ["prison:p1", "probation:b1", "health:h1"], "B": ["prison:p2", "prison:p3", "probation:b2"],
           "C": ["prison:p4"], "D": ["probation:b3"], "E": ["health:h2", "probation:b4"]}
# The previous run: B was split ({p2, p3} and {b2}), h2 did not exist, p9 did; cluster ids all different.
PREVIOUS = {"x1": ["prison:p1", "probation:b1", "health:h1"], "x2": ["prison:p2", "prison:p3"],
            "x3": ["probation:b2"], "x4": ["prison:p4"], "x5": ["probation:b3"], "x6": ["probation:b4"],
            "x7": ["prison:p9"]}

MODEL = {
    "probability_two_random_records_match": 0.001,
    "comparisons": [
        {"output_column_name": "surname", "comparison_levels": [
            {"sql_condition": "surname_l IS NULL OR surname_r IS NULL", "is_null_level": True},
            {"sql_condition": "surname_l = surname_r", "label_for_charts": "exact", "m_probability": 0.9,
             "u_probability": 0.01},
            {"sql_condition": "ELSE", "label_for_charts": "else", "m_probability": 0.1, "u_probability": 0.99}]},
        {"output_column_name": "dob", "comparison_levels": [
            {"sql_condition": "dob_l IS NULL OR dob_r IS NULL", "is_null_level": True},
            {"sql_condition": "dob_l = dob_r", "label_for_charts": "exact", "m_probability": 0.8,
             "u_probability": 0.002},
            {"sql_condition": "year(dob_l) = year(dob_r)", "label_for_charts": "year", "m_probability": 0.15,
             "u_probability": 0.05},
            {"sql_condition": "ELSE", "label_for_charts": "else", "m_probability": 0.05,
             "u_probability": "level not observed in training dataset"}]},
    ],
}


def _crosswalk(spark, members, run_id):
    rows = [(key.split(":")[0], key.split(":")[1], cid, run_id, len(keys), None)
            for cid, keys in members.items() for key in keys]
    return spark.createDataFrame(rows, schema=CROSSWALK)


@pytest.fixture(scope="module")
def frames(spark):
    crosswalk = _crosswalk(spark, MEMBERS, "run2")
    previous = _crosswalk(spark, PREVIOUS, "run1")
    edges = spark.createDataFrame(
        [("prison", "p1", "probation", f"b{i}", w, 0.9, {"surname": 1}, "run2")
         for i, w in enumerate([-12.0, 0.5, 3.2, 3.9, 45.0])], schema=MATCH_EDGES)
    d = date.fromisoformat
    persons = spark.createDataFrame([
        ("prison", "p1", "smith", d("1980-01-01")), ("probation", "b1", "smith", d("1980-01-01")),
        ("health", "h1", "smith", None),
        ("prison", "p2", "jones", d("1990-05-05")), ("prison", "p3", "jones", d("1990-05-05")),
        ("probation", "b2", "jones", d("1990-06-05")),
        ("prison", "p4", "khan", d("1970-02-02")), ("probation", "b3", "ali", None),
        ("health", "h2", "brown", d("2000-01-01")), ("probation", "b4", "browne", None),
    ], "source_system string, source_record_id string, surname string, date_of_birth date")
    groups = spark.createDataFrame([
        ("prison", "p1", "F", "30-39", "London"), ("prison", "p2", "M", "30-39", "London"),
        ("prison", "p3", "M", "30-39", "Wales"), ("prison", "p4", "M", "50-59", None),
        ("probation", "b1", "F", "30-39", "London"), ("probation", "b2", "M", "30-39", "London"),
        ("probation", "b3", "M", "18-24", "Wales"), ("probation", "b4", None, "18-24", "Wales"),
        ("health", "h1", "F", "30-39", "London"), ("health", "h2", "F", "18-24", "Wales"),
    ], "source_system string, source_record_id string, sex string, age_band string, region string")
    return {"crosswalk": crosswalk, "previous": previous, "edges": edges, "persons": persons, "groups": groups}


@pytest.fixture(scope="module")
def quality(frames):
    return run_quality(frames["edges"], frames["crosswalk"], frames["persons"], run_id="run2", settings=SETTINGS,
                       groups=frames["groups"], model=MODEL, previous_crosswalk=frames["previous"])


def _value(q, metric, **keys):
    rows = [r for r in q.metric(metric) if all(r.get(k) == v for k, v in keys.items())]
    assert len(rows) == 1, (metric, keys, rows)
    return rows[0]


def test_match_weight_histogram_has_fixed_bins_with_open_ends(quality):
    hist = quality.metric("match_weight_hist")
    assert len(hist) == 52  # under -10, 50 bins of 1, 40 and over
    counts = {(r["bucket_low"], r["bucket_high"]): r["value"] for r in hist if r["value"]}
    assert counts == {(None, -10.0): 1, (0.0, 1.0): 1, (3.0, 4.0): 2, (40.0, None): 1}
    assert quality.scalar("edges") == 5


def test_cluster_sizes_largest_clusters_and_the_alarm(quality):
    assert quality.scalar("records") == 10 and quality.scalar("clusters") == 5
    sizes = {r["bucket_low"]: r["value"] for r in quality.metric("cluster_size_dist") if r["value"]}
    assert sizes == {1.0: 2, 2.0: 1, 3.0: 2}
    largest = [(r["dimension_value"], r["value"], r["bucket_low"]) for r in quality.metric("largest_cluster")]
    assert largest == [("1", 3, 3.0), ("2", 3, 2.0), ("3", 2, 2.0)]  # sizes and source counts only
    assert _value(quality, "implausible_clusters")["value"] == 2
    (alarm,) = quality.alarms()
    assert "2 cluster(s) larger than quality.implausible_cluster_size = 2" in alarm


def test_source_overlap_matrix(quality):
    rates = {k: (r["value"], r["records"]) for k, r in quality.link_rates().items()}
    assert rates[("prison", "probation")] == (0.75, 4)
    assert rates[("prison", "prison")] == (0.5, 4)  # p2 and p3 share a cluster
    assert rates[("prison", "health")] == (0.25, 4)
    assert rates[("prison", None)] == (0.75, 4)
    assert rates[("probation", "prison")] == (0.5, 4)
    assert rates[("probation", "probation")] == (0.0, 4)
    assert rates[("probation", None)] == (0.75, 4)
    assert rates[("health", "probation")] == (1.0, 2)
    assert rates[("health", "health")] == (0.0, 2)


def test_link_rates_by_sex_age_band_and_region(quality):
    sex = quality.link_rates("sex")
    assert (sex[("prison", "probation", "M")]["value"], sex[("prison", "probation", "M")]["records"]) == (2 / 3, 3)
    assert sex[("prison", "probation", "F")]["value"] == 1.0
    assert sex[("probation", None, "unknown")]["value"] == 1.0  # b4 has no sex; it is linked to h2
    region = quality.link_rates("region")
    assert region[("prison", None, "unknown")]["value"] == 0.0  # p4
    assert region[("prison", "prison", "London")]["value"] == 0.5  # p1 no, p2 yes
    age = quality.link_rates("age_band")
    assert age[("probation", "health", "18-24")]["value"] == 0.5  # b3 no, b4 yes


def test_agreement_of_dates_of_birth_and_surnames_within_clusters(quality):
    dob = _value(quality, "cluster_agreement", dimension="date_of_birth")
    assert (dob["value"], dob["records"]) == (0.5, 2)  # A agrees, B does not, E has one date only
    surname = _value(quality, "cluster_agreement", dimension="surname")
    assert (surname["value"], surname["records"]) == (pytest.approx(2 / 3), 3)


def test_share_of_records_whose_co_members_changed_ignores_cluster_ids(quality):
    changed = _value(quality, "cluster_changed_share")
    assert (changed["value"], changed["records"]) == (pytest.approx(4 / 9), 9)  # p2, p3, b2 and b4
    assert quality.scalar("records_new") == 1 and quality.scalar("records_gone") == 1


def test_model_parameters_follow_splinks_level_numbering(quality):
    levels = {(lv.comparison, lv.gamma): lv for lv in model_levels(MODEL)}
    assert levels[("dob", 2)].label == "exact" and levels[("dob", 0)].u == 1e-6 and levels[("dob", -1)].weight == 0
    assert levels[("surname", 1)].weight == pytest.approx(math.log2(90))
    m = _value(quality, "m_probability", dimension="dob", bucket_low=1.0)
    assert (m["dimension_value"], m["value"]) == ("year", 0.15)
    assert quality.scalar("prior_match_probability") == 0.001


def test_waterfall_adds_up_to_the_recorded_weight(quality):
    prior = math.log2(0.001 / 0.999)
    edge = {"comparison_levels": {"surname": 1, "dob": -1}, "match_weight": prior + math.log2(90) + 0.5}
    from bold_spark.quality.run_quality import levels_from_quality
    steps = waterfall_steps(edge, levels_from_quality(quality), 0.001)
    assert [(s["label"], s["level"]) for s in steps] == [("prior", ""), ("surname", "exact"), ("dob", "null"),
                                                         ("term frequency / other", "")]
    assert [s["weight"] for s in steps] == pytest.approx([prior, math.log2(90), 0.0, 0.5])


@pytest.fixture(scope="module")
def stored(spark, quality) -> OutputTables:
    """Output tables in their own database with run2's quality recorded (one Delta write shared by the tests)."""
    out = OutputTables(database="rq_unit")
    write_run_quality(spark, out, quality)
    return out


@pytest.mark.tables
def test_run_quality_round_trips_through_its_delta_table_per_run(spark, quality, stored):
    out = stored
    other = RunQuality("run3")
    other.add("records", 7)
    write_run_quality(spark, out, other)  # another run's rows are added beside run2's
    back = load_run_quality(spark, out, "run2")
    keys = ("metric", "source_system_l", "source_system_r", "dimension", "dimension_value", "bucket_low",
            "bucket_high", "value", "records")
    assert sorted(str([r.get(k) for k in keys]) for r in back.rows) == \
        sorted(str([r.get(k) for k in keys]) for r in quality.rows)
    assert back.link_rates() == quality.link_rates() and back.alarms() == quality.alarms()
    assert spark.table(out.qualified("run_quality")).where("run_id = 'run3'").count() == 1
    assert load_run_quality(spark, out, "nope") is None


# --- the gate -------------------------------------------------------------------------------------------------------

def _copy(q: RunQuality, run_id: str) -> RunQuality:
    return RunQuality(run_id, [dict(r) for r in q.rows])


LIMITS = PublishGateSettings(min_records=2, hold_on_implausible_cluster=False)


def test_gate_publishes_a_run_like_the_previous_one(quality):
    decision = decide(quality, _copy(quality, "run1"), LIMITS)
    assert decision.reasons == [
        "0.444 of the 9 records in both runs changed co-members (> publish_gate.max_cluster_changed_share = 0.05)"]
    relaxed = dataclasses.replace(LIMITS, max_cluster_changed_share=0.5)
    assert decide(quality, _copy(quality, "run1"), relaxed) == GateDecision(
        True, [], {"max_link_rate_change": 0.0, "max_cluster_size_shift": 0.0, "max_match_weight_shift": 0.0,
                   "max_cluster_changed_share": pytest.approx(4 / 9)}, "run1")


def test_gate_holds_a_run_whose_link_rate_moved_and_says_why(quality):
    limits = dataclasses.replace(LIMITS, max_cluster_changed_share=1.0)
    previous = RunQuality("run1", [dict(r) for r in quality.rows])
    for r in previous.rows:
        if r["metric"] == "link_rate" and r["dimension"] is None and (r["source_system_l"], r["source_system_r"]) \
                == ("prison", "probation"):
            r["value"] = 0.5
    decision = decide(quality, previous, limits)
    assert not decision.publish
    assert decision.reasons == ["link rate prison -> probation moved 0.500 -> 0.750 "
                                "(> publish_gate.max_link_rate_change = 0.05)"]
    assert "held by publish_gate (compared with run run1)" in decision.message()
    # Too few records to judge: not compared.
    assert decide(quality, previous, dataclasses.replace(limits, min_records=5)).publish


def test_gate_compares_distributions_and_holds_on_an_alarm(quality):
    previous = RunQuality("run1", [dict(r) for r in quality.rows if r["metric"] != "cluster_changed_share"])
    for r in previous.rows:
        if r["metric"] == "match_weight_hist" and r["bucket_low"] == 3.0:
            r["value"] = 0  # previous run: 3 edges, none in [3, 4)
    decision = decide(quality, previous, dataclasses.replace(LIMITS, max_cluster_changed_share=1.0))
    assert decision.measures["max_match_weight_shift"] == pytest.approx(0.4)
    assert decision.reasons == ["match-weight distribution shifted by 0.400 (total variation; "
                                "> publish_gate.max_match_weight_shift = 0.1)"]
    first = decide(quality, None, PublishGateSettings())
    assert not first.publish and "implausible_cluster_size" in first.reasons[0]
    assert "changed co-members" in first.reasons[1]  # measured against the previous crosswalk alone
    assert first.message().startswith("held by publish_gate (no run published before): 2 cluster(s) larger")
    assert decide(quality, None, PublishGateSettings(enabled=False)).publish
    assert total_variation({1: 0.5, 2: 0.5}, {2: 1.0}) == 0.5


def test_gate_holds_a_first_run_whose_clusters_look_like_merged_relatives(quality):
    limits = dataclasses.replace(LIMITS, max_cluster_changed_share=1.0)
    assert decide(quality, None, limits).publish  # nothing declared, no limit on dates of birth: nothing to say
    # p2 and p3 of the prison share a cluster; a prison that holds each person once says they are two people.
    once = ConstraintSettings(one_record_per_person=(OnePerPerson("prison"),))
    decision = decide(quality, None, limits, constraints=once)
    assert decision.reasons == ["0.500 of prison's records share a cluster with another of its records, which holds "
                                "each person once (> publish_gate.max_same_source_share = 0.01)"]
    monthly = ConstraintSettings(one_record_per_person=(OnePerPerson("prison", per="month"),))
    assert decide(quality, None, limits, constraints=monthly).publish  # twice in a source, in two months: allowed
    disagreeing = _copy(quality, "run2")
    for r in disagreeing.rows:
        if r["metric"] == "cluster_agreement" and r["dimension"] == "date_of_birth":
            r["value"], r["records"] = 0.7, 10
    decision = decide(disagreeing, None, dataclasses.replace(limits, max_date_of_birth_disagreement=0.15))
    assert decision.reasons == ["0.300 of the 10 clusters with two or more dates of birth disagree on it "
                                "(> publish_gate.max_date_of_birth_disagreement = 0.15)"]
    assert decision.measures["max_date_of_birth_disagreement"] == pytest.approx(0.3)


@pytest.mark.tables
def test_a_held_run_goes_to_the_candidate_and_is_published_after_review(spark, frames, quality, stored):
    out = stored
    assert previous_published(spark, out) is None
    held = GateDecision(False, ["some reason"], {}, "run1")
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    events = spark.createDataFrame([("run2", "merged", "K1", "K2", 3, at, None),
                                    ("run2", "new", "K9", None, 1, at, None)], CLUSTER_EVENTS)

    def groups(*ids):
        return spark.createDataFrame([("prison", i, None, "F", "18-24", "London", None) for i in ids], RECORD_GROUPS)

    def grouped():
        return {r["source_record_id"] for r in spark.table("rq_unit.record_groups").collect()}  # a few rows

    assert write_crosswalk(frames["previous"], out, GateDecision(True), groups=groups("p1")) == "rq_unit.crosswalk"
    assert grouped() == {"p1"}  # a published run's groups are the views' at once
    assert write_crosswalk(frames["crosswalk"], out, held, events=events, groups=groups("p1", "p9")) == \
        "rq_unit.crosswalk_candidate"
    assert not spark.catalog.tableExists("rq_unit.cluster_events")  # a held run's events are not history yet
    assert grouped() == {"p1"}  # nor are its groups: the views keep the published crosswalk's
    published = previous_published(spark, out)
    assert published.run_id == "run1" and published.quality is None  # run1's quality was never recorded
    with pytest.raises(DataQualityError, match="holds run run2, not run run1"):
        publish_candidate(spark, out, "run1")
    assert publish_candidate(spark, out, "run2") == {"run_id": "run2", "rows": 10, "table": "rq_unit.crosswalk"}
    published = previous_published(spark, out)
    assert published.run_id == "run2" and published.quality.link_rates() == quality.link_rates()
    assert published.crosswalk.count() == 10 and grouped() == {"p1", "p9"}  # the groups came with it
    assert {(r["event"], r["cluster_id"]) for r in spark.table("rq_unit.cluster_events").collect()} == \
        {("merged", "K1"), ("new", "K9")}  # tiny table: the held run's events arrive with its crosswalk
    with pytest.raises(DataQualityError, match="already the published crosswalk"):
        publish_candidate(spark, out, "run2")


def test_quality_gate_and_report_config_is_typed_and_errors_name_file_and_key():
    from bold_spark.config import load_config
    from bold_spark.errors import ConfigError

    conf = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
    config = load_config(conf, overrides={"publish_gate": {"max_link_rate_change": 0.1, "enabled": False},
                                          "report": {"directory": "out/reports", "show_personal_values": True},
                                          "quality": {"implausible_cluster_size": 30}})
    assert config.publish_gate == PublishGateSettings(enabled=False, max_link_rate_change=0.1)
    assert config.report.directory == config.base_dir / "out" / "reports" and config.report.show_personal_values
    assert config.quality.implausible_cluster_size == 30 and load_config(conf).report.show_personal_values is False
    for overrides, message in (
            ({"publish_gate": {"max_link_rate_change": 2}}, "publish_gate.max_link_rate_change: expected a number"),
            ({"publish_gate": {"max_links": 2}}, r"publish_gate: unknown key\(s\) 'max_links'"),
            ({"report": {"show_personal_values": "yes"}}, "report.show_personal_values: expected true or false"),
            ({"quality": {"implausible_cluster_size": 2.5}}, "quality.implausible_cluster_size: expected a whole"),
            ({"quality": {"weight_min": 5, "weight_max": 1}}, "quality.weight_max: weight_max must be greater")):
        with pytest.raises(ConfigError, match=f"local.yaml: {message}"):
            load_config(conf, overrides=overrides)
