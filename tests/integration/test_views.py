"""The programme's views: exact logic on a tiny crosswalk, then linked synthetic data against the generator's truth.

The linked run uses the committed test model (no training) on about 3,000 synthetic records; the same view SQL
over a crosswalk made from the truth gives the true answers, and the difference is printed and bounded.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from bold_spark.config import parse_source
from bold_spark.errors import ConfigError
from bold_spark.io.delta import overwrite_table
from bold_spark.quality.groups import record_groups
from bold_spark.schemas import RECORD_GROUPS
from bold_spark.views import VIEW_NAMES, create_views, parse_views, truth_crosswalk, view_queries

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("linked_sample")  # one linked run for both modules
PROGRAMME = PROJECT_ROOT / "conf" / "views" / "programme.yaml"
AS_OF = "2026-01-01"
DATABASE = "bold_linked"  # the shared linked run's database (tests/integration/conftest.py)
TRUTH_CROSSWALK = f"{DATABASE}.truth_crosswalk"  # the generator's truth as a crosswalk: the true answers
SOURCES = ["prison_releases", "probation", "drug_alcohol_treatment", "homelessness", "police_victims",
           "victim_support"]
AGGREGATES = {  # view -> its count columns
    "treatment_pathway": ("people", "on_probation", "referred", "referred_within"),
    "victim_support_pathway": ("victims", "supported", "supported_within"),
    "homelessness_overlap": ("homeless_people", "other_people", "both_people"),
}


# --- logic on tiny inline data ---------------------------------------------------------------------------------

def _d(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def test_record_groups_bands_ages_at_the_event_and_maps_postcode_areas_to_regions(spark):
    rows = [  # id, event_date, date_of_birth, birth_year, sex, postcode_district, expected band, expected region
        ("a", "2024-06-01", "2006-06-02", None, "M", "LS1", "0-17", "Yorkshire and The Humber"),
        ("b", "2024-06-01", "2006-06-01", None, "F", "SW1A", "18-24", "London"),
        ("c", "2024-06-01", None, 1959, None, "BT9", "65+", "Northern Ireland"),
        ("d", None, "1990-01-01", None, "X", "GY1", "35-44", "unknown"),  # no event date: age at as_of 2026-01-01
        ("e", "2024-06-01", None, None, None, None, "unknown", "unknown"),
        ("f", "2024-06-01", "2030-01-01", None, "M", "CF10", "unknown", "Wales"),  # born after the event
    ]
    status = {"e": "no_fixed_abode"}  # carried as standardisation set it
    df = spark.createDataFrame(
        [("s", r[0], _d(r[1]), _d(r[2]), r[3], r[4], r[5], status.get(r[0]), "junk", r[6], r[7]) for r in rows],
        "source_system string, source_record_id string, event_date date, date_of_birth date, birth_year int, "
        "sex string, postcode_district string, address_status string, first_name string, expected_band string, "
        "expected_region string")
    got = record_groups(df, as_of=F.lit(AS_OF).cast("date"))
    assert got.columns == [f.name for f in RECORD_GROUPS.fields]
    expected = {r[0]: (r[6], r[7], r[4] or "unknown", status.get(r[0])) for r in rows}
    actual = {r["source_record_id"]: (r["age_band"], r["region"], r["sex"], r["address_status"])
              for r in got.collect()}  # bounded: 6
    assert actual == expected


def _tiny_views(spark, *, suppress_below: int = 0) -> dict[str, str]:
    """Five people (cluster p1..p5) as temp views; returns the view SQL over them."""
    crosswalk = [  # cluster, source, record, event date, sex, age band, region
        ("p1", "prison_releases", "A1", "2024-01-01", "M", "25-34", "London"),
        ("p1", "probation", "X1", "2024-01-10", "M", "25-34", "London"),
        ("p1", "drug_alcohol_treatment", "T1", "2024-01-15", "M", "25-34", "London"),  # 14 days after release
        ("p2", "prison_releases", "A2", "2024-01-01", "F", "35-44", "Wales"),
        ("p2", "drug_alcohol_treatment", "T2", "2024-03-01", "F", "35-44", "Wales"),  # 60 days
        ("p2", "homelessness", "H2", "2024-02-01", "F", "35-44", "Wales"),
        ("p3", "prison_releases", "A3", "2024-05-01", "M", "18-24", "London"),
        ("p3", "drug_alcohol_treatment", "T3", "2024-04-01", "M", "18-24", "London"),  # before release: no
        ("p3", "probation", "X3", "2024-08-01", "M", "18-24", "London"),  # 92 days: not "on probation" (42)
        ("p4", "probation", "X4", "2024-02-01", "F", "45-54", "Scotland"),
        ("p4", "drug_alcohol_treatment", "T4", "2024-02-05", "F", "45-54", "Scotland"),
        ("p5", "police_victims", "C5", "2024-03-01", "F", "18-24", "London"),
        ("p5", "victim_support", "V5", "2024-03-11", "F", "18-24", "London"),
        ("p5", "homelessness", "H5", "2025-01-01", "F", "18-24", "London"),
    ]
    spark.createDataFrame([(c, s, r) for c, s, r, *_ in crosswalk],
                          "cluster_id string, source_system string, source_record_id string") \
        .createOrReplaceTempView("tiny_crosswalk")
    spark.createDataFrame([(s, r, _d(d), sex, age, region, None) for _, s, r, d, sex, age, region in crosswalk],
                          RECORD_GROUPS).createOrReplaceTempView("tiny_groups")
    views = dataclasses.replace(parse_views(PROGRAMME, sources=SOURCES), suppress_below=suppress_below)
    return view_queries(views, crosswalk="tiny_crosswalk", record_groups="tiny_groups")


def test_views_give_the_hand_computed_answers_on_a_tiny_crosswalk(spark_clean):
    spark = spark_clean
    q = _tiny_views(spark)
    overall = {(r["cohort"], r["within_days"]): r.asDict() for r in  # bounded: 2 cohorts x 2 windows
               spark.sql(q["treatment_pathway"]).where("breakdown = 'overall'").collect()}
    prison_21, prison_90 = overall[("prison_release", 21)], overall[("prison_release", 90)]
    assert (prison_21["people"], prison_21["on_probation"], prison_21["referred"], prison_21["referred_within"]) \
        == (3, 1, 2, 1)
    assert prison_90["referred_within"] == 2 and prison_90["share_referred_within"] == pytest.approx(2 / 3)
    probation_21 = overall[("probation", 21)]
    assert (probation_21["people"], probation_21["on_probation"], probation_21["referred_within"]) == (3, 3, 2)
    by_region = {r["group_value"]: r["people"] for r in spark.sql(q["treatment_pathway"]).where(
        "cohort = 'prison_release' AND within_days = 21 AND breakdown = 'region'").collect()}  # bounded
    assert by_region == {"London": 2, "Wales": 1}

    journeys = sorted((r["release_record_id"], r["service"], r["days_from_release"])  # bounded: tiny
                      for r in spark.sql(q["reoffending_journeys"]).collect())
    assert journeys == [("A1", "probation", 9), ("A1", "treatment", 14), ("A2", "homelessness", 31),
                        ("A2", "treatment", 60), ("A3", "probation", 92)]

    (victims,) = spark.sql(q["victim_support_pathway"]).where("breakdown = 'overall' AND within_days = 7").collect()
    assert (victims["victims"], victims["supported"], victims["supported_within"], victims["median_days_to_support"]) \
        == (1, 1, 0, 10.0)
    overlap = {r["other_role"]: (r["homeless_people"], r["other_people"], r["both_people"])
               for r in spark.sql(q["homelessness_overlap"]).collect()}  # bounded: 5 roles
    assert overlap["prison_release"] == (2, 3, 1) and overlap["police_victim"] == (2, 1, 1)
    assert overlap["victim_support"] == (2, 1, 1) and overlap["probation"] == (2, 3, 0)


def test_counts_below_the_threshold_are_hidden_with_the_shares_made_from_them(spark_clean):
    q = _tiny_views(spark_clean, suppress_below=3)
    rows = {(r["cohort"], r["within_days"]): r for r in spark_clean.sql(q["treatment_pathway"])  # bounded
            .where("breakdown = 'overall'").collect()}
    prison = rows[("prison_release", 21)]  # people 3, on probation 1, referred 2, within 1
    assert prison["people"] == 3 and prison["on_probation"] is None and prison["referred"] is None
    assert prison["share_referred_within"] is None and prison["suppressed"] is True
    probation = rows[("probation", 21)]  # 3 people all on probation; 2 referred
    assert probation["share_on_probation"] == 1.0 and probation["share_referred"] is None
    assert probation["suppressed"] is True


# --- configuration ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, expected", [
    (lambda d: d["roles"].update(treatment="hospital"), r"programme\.yaml: roles\.treatment: 'hospital' is not a "
                                                        r"configured source"),
    (lambda d: d["roles"].update(probation="prison_releases"), r"roles\.probation: source 'prison_releases' already"),
    (lambda d: d["windows"].pop("journey_days"), r"programme\.yaml: windows\.journey_days: required key is missing"),
    (lambda d: d["windows"].update(treatment_within_days=[21, -3]), r"windows\.treatment_within_days: expected a "
                                                                    r"whole number of days"),
    (lambda d: d.update(suppress_below="ten"), r"programme\.yaml: suppress_below: expected a whole number"),
    (lambda d: d.update(colour="red"), r"programme\.yaml: \(top level\): unknown key\(s\) 'colour'"),
])
def test_a_views_config_error_names_the_file_and_the_key(tmp_path, change, expected):
    data = yaml.safe_load(PROGRAMME.read_text())
    change(data)
    path = tmp_path / "programme.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=expected):
        parse_views(path, sources=SOURCES)


def test_a_source_event_date_is_validated_with_the_file_and_key(tmp_path):
    source = {"name": "s", "table": {"path": "x"}, "record_id": "id", "columns": {"surname": "sn"},
              "event_date": {"column": "when", "formats": ["%d/%m/%Y"]}}
    with pytest.raises(ConfigError, match=r"s\.yaml: event_date\.formats: '%d/%m/%Y' is a Python strftime"):
        parse_source(source, tmp_path / "s.yaml", tmp_path)
    source["event_date"] = {"column": "when"}
    parsed = parse_source(source, tmp_path / "s.yaml", tmp_path)
    assert parsed.event_date.formats == ("yyyy-MM-dd",) and parsed.source_columns()["event_date.column"] == "when"


# --- linked synthetic data against the truth -------------------------------------------------------------------

@pytest.fixture(scope="module")
def linked(spark, linked_sample):
    """The shared linked run (its link job wrote record_groups and created the views) plus the truth as a crosswalk."""
    config = linked_sample.config
    created = create_views(spark, views=config.views, output=config.output)  # idempotent: the run created them
    crosswalk = spark.table(config.output.qualified("crosswalk"))
    truth = linked_sample.truth.join(crosswalk.select("source_system", "source_record_id"),
                                     ["source_system", "source_record_id"], how="left_semi")  # accepted records
    overwrite_table(truth_crosswalk(truth), TRUTH_CROSSWALK)
    return config, created


def _overall(df, keys: tuple[str, ...]) -> dict:
    return {tuple(r[k] for k in keys): r.asDict() for r in df.where("breakdown = 'overall'").collect()}  # bounded


def _unsuppressed(config, crosswalk: str) -> dict[str, str]:
    """The view SQL without suppression, so linked and true figures compare even where counts are small."""
    return view_queries(dataclasses.replace(config.views, suppress_below=0), crosswalk=crosswalk,
                        record_groups=config.output.qualified("record_groups"))


def test_every_view_is_created_in_the_catalog(spark, linked):
    config, created = linked
    assert created == [f"{DATABASE}.{name}" for name in VIEW_NAMES]
    views = {t.name for t in spark.catalog.listTables(DATABASE) if t.tableType == "VIEW"}
    department_views = {f"crosswalk_{s.name}" for s in config.sources}  # created by the run for each department
    assert views == set(VIEW_NAMES) | department_views


def test_presence_has_one_row_per_person_and_source(spark, linked):
    config, _ = linked
    crosswalk = spark.table(config.output.qualified("crosswalk"))
    presence = spark.table(f"{DATABASE}.person_presence")
    expected = crosswalk.agg(F.countDistinct("cluster_id", "source_system").alias("pairs"),
                             F.countDistinct("cluster_id").alias("people"), F.count(F.lit(1)).alias("rows")).first()
    got = presence.agg(F.count(F.lit(1)).alias("pairs"), F.sum("records").alias("rows"),
                       F.sum((F.col("first_event_date") > F.col("last_event_date")).cast("int")).alias("bad"),
                       F.sum(F.col("first_event_date").isNull().cast("int")).alias("undated")).first()
    assert (got["pairs"], got["rows"], got["bad"], got["undated"]) == (expected["pairs"], expected["rows"], 0, 0)
    sources = spark.table(f"{DATABASE}.person_sources").agg(
        F.count(F.lit(1)).alias("people"), F.sum("n_sources").alias("pairs")).first()
    assert (sources["people"], sources["pairs"]) == (expected["people"], expected["pairs"])
    assert expected["rows"] > 2000


def test_reoffending_journeys_hold_ids_and_dates_of_contacts_after_each_release(spark, linked):
    config, _ = linked
    journeys = spark.table(f"{DATABASE}.reoffending_journeys")
    assert journeys.columns == ["cluster_id", "release_record_id", "release_date", "service", "service_source",
                                "service_record_id", "service_date", "days_from_release"]
    releases = spark.table(config.output.qualified("crosswalk")).where("source_system = 'prison_releases'").count()
    stats = journeys.agg(F.countDistinct("release_record_id").alias("releases"),
                         F.min("days_from_release").alias("low"), F.max("days_from_release").alias("high"),
                         F.count("service").alias("contacts"),
                         F.countDistinct("service").alias("services")).first()
    assert stats["releases"] == releases and 0 <= stats["low"] and stats["high"] <= config.views.journey_days
    assert stats["contacts"] > releases // 2 and stats["services"] == 3


# Measured (3,000 records, seed 11, committed model): treatment shares equal to the truth's within 0.0003, cohort
# sizes within 2 people; victim support within 28 days 0.340 linked vs 0.390 true (-0.051: victim_support records
# hold only an initial, year of birth and district, so some links are missed), within 7 days -0.007; homelessness
# overlap shares -0.005 to -0.024. Tolerances below are those with slack.
def test_treatment_pathway_on_linked_data_is_close_to_the_truth(spark, linked):
    config, _ = linked
    keys = ("cohort", "within_days")
    linked_sql = _unsuppressed(config, config.output.qualified("crosswalk"))["treatment_pathway"]
    got = _overall(spark.sql(linked_sql), keys)
    true = _overall(spark.sql(_unsuppressed(config, TRUTH_CROSSWALK)["treatment_pathway"]), keys)
    assert set(got) == set(true) == {(c, d) for c in ("prison_release", "probation") for d in (21, 90)}
    for key in sorted(got):
        g, t = got[key], true[key]
        print(f"treatment_pathway {key}: linked people {g['people']} share {g['share_referred_within']:.4f}; "
              f"truth people {t['people']} share {t['share_referred_within']:.4f}; "
              f"difference {g['share_referred_within'] - t['share_referred_within']:+.4f}")
        assert abs(g["share_referred_within"] - t["share_referred_within"]) <= 0.02
        assert abs(g["share_on_probation"] - t["share_on_probation"]) <= 0.03
        assert abs(g["people"] - t["people"]) <= 0.05 * t["people"]
    assert got[("prison_release", 90)]["share_referred_within"] > got[("prison_release", 21)]["share_referred_within"]


def test_victim_and_homelessness_views_on_linked_data_are_close_to_the_truth(spark, linked):
    config, _ = linked
    linked_sql = _unsuppressed(config, config.output.qualified("crosswalk"))
    truth_sql = _unsuppressed(config, TRUTH_CROSSWALK)
    got = _overall(spark.sql(linked_sql["victim_support_pathway"]), ("within_days",))
    true = _overall(spark.sql(truth_sql["victim_support_pathway"]), ("within_days",))
    assert set(got) == set(true) == {(7,), (28,)}
    for key in sorted(got):
        diff = got[key]["share_supported_within"] - true[key]["share_supported_within"]
        print(f"victim_support_pathway {key}: linked {got[key]['share_supported_within']:.4f} "
              f"truth {true[key]['share_supported_within']:.4f} difference {diff:+.4f}")
        assert -0.08 <= diff <= 0.02  # missed links can only hide support, so the linked share is rarely higher
    overlap = {r["other_role"]: r for r in spark.sql(linked_sql["homelessness_overlap"]).collect()}  # bounded: 5
    true_overlap = {r["other_role"]: r for r in spark.sql(truth_sql["homelessness_overlap"]).collect()}
    assert set(overlap) == set(true_overlap) and len(overlap) == 5
    for role in sorted(true_overlap):
        g, t = overlap[role]["share_of_homeless"], true_overlap[role]["share_of_homeless"]
        print(f"homelessness_overlap {role}: linked {g:.4f} truth {t:.4f} difference {g - t:+.4f}")
        assert abs(g - t) <= 0.04


def test_aggregate_views_hide_every_count_below_the_threshold(spark, linked):
    config, _ = linked
    threshold = config.views.suppress_below
    exposed = dataclasses.replace(config.views, suppress_below=0)
    raw = view_queries(exposed, crosswalk=config.output.qualified("crosswalk"),
                       record_groups=config.output.qualified("record_groups"))
    hidden_total = 0
    for view, counts in AGGREGATES.items():
        shown = spark.table(f"{DATABASE}.{view}")
        keys = [c for c in shown.columns if c in ("cohort", "within_days", "breakdown", "group_value", "other_role")]
        both = shown.alias("s").join(spark.sql(raw[view]).alias("r"), keys, how="inner")
        checks = both.agg(
            F.count(F.lit(1)).alias("rows"),
            *[F.sum((F.col(f"s.{c}") < threshold).cast("int")).alias(f"{c}_shown_small") for c in counts],
            *[F.sum((F.col(f"s.{c}").isNull() != (F.col(f"r.{c}") < threshold)).cast("int")).alias(f"{c}_wrong")
              for c in counts],
            *[F.sum(F.col(f"s.{c}").isNull().cast("int")).alias(f"{c}_hidden") for c in counts],
            F.sum((F.col("s.suppressed") != F.greatest(*[F.col(f"r.{c}") < threshold for c in counts]))
                  .cast("int")).alias("flag_wrong"),
        ).first()
        assert checks["rows"] == shown.count() > 0
        assert all(checks[f"{c}_shown_small"] in (0, None) and checks[f"{c}_wrong"] == 0 for c in counts), checks
        assert checks["flag_wrong"] == 0
        hidden_total += sum(checks[f"{c}_hidden"] for c in counts)
    assert hidden_total > 0  # small groups exist at this scale, so suppression was exercised
