"""The SQL of the programme's views, generated from the view settings and the names of two tables.

Every query reads only a crosswalk (source_system, source_record_id, cluster_id) and ``bold.record_groups``
(event date, sex, age band, region per record), so the same text runs against the published crosswalk (as
persistent views) and against a crosswalk made from the generator's truth, whose answers are the true ones.

Aggregate queries apply small-number suppression: a count below ``suppress_below`` is shown as null, a share is
null unless both its counts are shown, and ``suppressed`` says the row hides something. (Only primary suppression:
a hidden count can sometimes be recovered by differencing rows; publish with that in mind.)
"""
from __future__ import annotations

import re

from pyspark.sql import DataFrame, Window, functions as F

from bold_spark.schemas import CROSSWALK
from bold_spark.views.settings import ROLES, ViewSettings

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")

VIEW_COMMENTS = {
    "person_presence": "per person (cluster) and source: records, first and last event date",
    "person_sources": "per person (cluster): the sources they appear in, records, first and last event date",
    "reoffending_journeys": "per prison release: later probation, treatment and homelessness contacts, days after",
    "treatment_pathway": "prison leavers and probation starters referred to treatment within N days (suppressed)",
    "victim_support_pathway": "police-recorded victims reaching victim support, within N days (suppressed)",
    "homelessness_overlap": "people in homelessness also in each other source (suppressed)",
}
VIEW_NAMES = tuple(VIEW_COMMENTS)


def _records(crosswalk: str, record_groups: str, roles: dict[str, str]) -> str:
    """Each crosswalk record with its role, event date and groups (groups 'unknown' if record_groups lacks it)."""
    role = " ".join(f"WHEN '{source}' THEN '{r}'" for r, source in roles.items())
    return f"""records AS (
  SELECT c.cluster_id, c.source_system, c.source_record_id, CASE c.source_system {role} END AS role,
         g.event_date, coalesce(g.sex, 'unknown') AS sex, coalesce(g.age_band, 'unknown') AS age_band,
         coalesce(g.region, 'unknown') AS region
  FROM {crosswalk} c
  LEFT JOIN {record_groups} g ON g.source_system = c.source_system AND g.source_record_id = c.source_record_id
)"""


def _shown(count: str, threshold: int) -> str:
    return f"CASE WHEN {count} >= {threshold} THEN {count} END"


def _share(part: str, whole: str, threshold: int) -> str:
    return f"CASE WHEN {part} >= {threshold} AND {whole} >= {threshold} THEN {part} / {whole} END"


def _grouping_sets(keys: str) -> tuple[str, str, str]:
    """(breakdown, group_value, GROUP BY) for overall and by sex, age band and region rows."""
    breakdown = ("CASE WHEN grouping(sex) = 0 THEN 'sex' WHEN grouping(age_band) = 0 THEN 'age_band' "
                 "WHEN grouping(region) = 0 THEN 'region' ELSE 'overall' END")
    value = ("CASE WHEN grouping(sex) = 0 THEN sex WHEN grouping(age_band) = 0 THEN age_band "
             "WHEN grouping(region) = 0 THEN region ELSE 'all' END")
    group_by = (f"GROUP BY GROUPING SETS (({keys}), ({keys}, sex), ({keys}, age_band), ({keys}, region))")
    return breakdown, value, group_by


def _first_event(sources: dict[str, str]) -> str:
    """Each person's first dated record in each cohort source: the index event, with the age band and region of
    that record, and the person's sex as most of their records state it (a source may not record sex at all)."""
    cohort = " ".join(f"WHEN '{source}' THEN '{name}'" for name, source in sources.items())
    listed = ", ".join(f"'{s}'" for s in sources.values())
    return f"""sex_counts AS (
  SELECT cluster_id, sex, count(*) AS n FROM records WHERE sex <> 'unknown' GROUP BY cluster_id, sex
),
person_sex AS (SELECT cluster_id, max_by(sex, struct(n, sex)) AS sex FROM sex_counts GROUP BY cluster_id),
cohort_index AS (
  SELECT i.cohort, i.cluster_id, i.index_date, coalesce(p.sex, 'unknown') AS sex, i.age_band, i.region FROM (
    SELECT CASE source_system {cohort} END AS cohort, cluster_id, event_date AS index_date, age_band, region,
           row_number() OVER (PARTITION BY source_system, cluster_id ORDER BY event_date, source_record_id) AS n
    FROM records WHERE source_system IN ({listed}) AND event_date IS NOT NULL) i
  LEFT JOIN person_sex p ON p.cluster_id = i.cluster_id
  WHERE i.n = 1
)"""


def _days_list(days: tuple[int, ...]) -> str:
    return f"windows AS (SELECT explode(array({', '.join(str(d) for d in days)})) AS within_days)"


def person_presence(v: ViewSettings, records: str) -> str:
    return f"""WITH {records}
SELECT cluster_id, source_system, first(role) AS role, count(*) AS records,
       min(event_date) AS first_event_date, max(event_date) AS last_event_date
FROM records GROUP BY cluster_id, source_system"""


def person_sources(v: ViewSettings, records: str) -> str:
    return f"""WITH {records}
SELECT cluster_id, sort_array(collect_set(source_system)) AS sources, count(DISTINCT source_system) AS n_sources,
       count(*) AS records, min(event_date) AS first_event_date, max(event_date) AS last_event_date
FROM records GROUP BY cluster_id"""


def reoffending_journeys(v: ViewSettings, records: str) -> str:
    services = {r: v.source(r) for r in ("probation", "treatment", "homelessness")}
    listed = ", ".join(f"'{s}'" for s in services.values())
    return f"""WITH {records},
releases AS (
  SELECT cluster_id, source_record_id AS release_record_id, event_date AS release_date
  FROM records WHERE source_system = '{v.source("prison_release")}' AND event_date IS NOT NULL
),
contacts AS (
  SELECT cluster_id, role AS service, source_system, source_record_id, event_date
  FROM records WHERE source_system IN ({listed}) AND event_date IS NOT NULL
)
SELECT r.cluster_id, r.release_record_id, r.release_date, c.service, c.source_system AS service_source,
       c.source_record_id AS service_record_id, c.event_date AS service_date,
       datediff(c.event_date, r.release_date) AS days_from_release
FROM releases r
LEFT JOIN contacts c ON c.cluster_id = r.cluster_id AND c.event_date >= r.release_date
     AND c.event_date <= date_add(r.release_date, {v.journey_days})"""


def treatment_pathway(v: ViewSettings, records: str) -> str:
    t = v.suppress_below
    cohorts = {"prison_release": v.source("prison_release"), "probation": v.source("probation")}
    breakdown, value, group_by = _grouping_sets("cohort, within_days")
    return f"""WITH {records},
{_first_event(cohorts)},
outcomes AS (
  SELECT i.cohort, i.cluster_id, i.sex, i.age_band, i.region,
         min(CASE WHEN r.source_system = '{v.source("probation")}'
                  THEN datediff(r.event_date, i.index_date) END) AS days_to_probation,
         min(CASE WHEN r.source_system = '{v.source("treatment")}'
                  THEN datediff(r.event_date, i.index_date) END) AS days_to_treatment
  FROM cohort_index i
  LEFT JOIN records r ON r.cluster_id = i.cluster_id AND r.event_date >= i.index_date
       AND r.source_system IN ('{v.source("probation")}', '{v.source("treatment")}')
  GROUP BY i.cohort, i.cluster_id, i.sex, i.age_band, i.region
),
{_days_list(v.treatment_within_days)},
counts AS (
  SELECT cohort, within_days, {breakdown} AS breakdown, {value} AS group_value,
         count(*) AS people,
         count_if(days_to_probation <= {v.probation_within_days}) AS on_probation,
         count_if(days_to_treatment IS NOT NULL) AS referred,
         count_if(days_to_treatment <= within_days) AS referred_within
  FROM outcomes CROSS JOIN windows
  {group_by}
)
SELECT cohort, within_days, breakdown, group_value,
       {_shown("people", t)} AS people, {_shown("on_probation", t)} AS on_probation,
       {_shown("referred", t)} AS referred, {_shown("referred_within", t)} AS referred_within,
       {_share("on_probation", "people", t)} AS share_on_probation,
       {_share("referred", "people", t)} AS share_referred,
       {_share("referred_within", "people", t)} AS share_referred_within,
       (people < {t} OR on_probation < {t} OR referred < {t} OR referred_within < {t}) AS suppressed
FROM counts"""


def victim_support_pathway(v: ViewSettings, records: str) -> str:
    t = v.suppress_below
    breakdown, value, group_by = _grouping_sets("within_days")
    return f"""WITH {records},
{_first_event({"police_victim": v.source("police_victim")})},
outcomes AS (
  SELECT i.cluster_id, i.sex, i.age_band, i.region,
         min(datediff(r.event_date, i.index_date)) AS days_to_support
  FROM cohort_index i
  LEFT JOIN records r ON r.cluster_id = i.cluster_id AND r.event_date >= i.index_date
       AND r.source_system = '{v.source("victim_support")}'
  GROUP BY i.cluster_id, i.sex, i.age_band, i.region
),
{_days_list(v.victim_support_within_days)},
counts AS (
  SELECT within_days, {breakdown} AS breakdown, {value} AS group_value,
         count(*) AS victims,
         count_if(days_to_support IS NOT NULL) AS supported,
         count_if(days_to_support <= within_days) AS supported_within,
         percentile(days_to_support, 0.5) AS median_days
  FROM outcomes CROSS JOIN windows
  {group_by}
)
SELECT within_days, breakdown, group_value,
       {_shown("victims", t)} AS victims, {_shown("supported", t)} AS supported,
       {_shown("supported_within", t)} AS supported_within,
       {_share("supported", "victims", t)} AS share_supported,
       {_share("supported_within", "victims", t)} AS share_supported_within,
       CASE WHEN supported >= {t} AND supported > 0 THEN median_days END AS median_days_to_support,
       (victims < {t} OR supported < {t} OR supported_within < {t}) AS suppressed
FROM counts"""


def homelessness_overlap(v: ViewSettings, records: str) -> str:
    t = v.suppress_below
    others = ", ".join(f"('{r}', '{v.source(r)}')" for r in ROLES if r != "homelessness")
    return f"""WITH {records},
presence AS (SELECT DISTINCT cluster_id, source_system FROM records),
homeless AS (SELECT cluster_id FROM presence WHERE source_system = '{v.source("homelessness")}'),
homeless_total AS (SELECT count(*) AS homeless_people FROM homeless),
others AS (SELECT * FROM VALUES {others} AS o(other_role, other_source)),
counts AS (
  SELECT o.other_role, o.other_source, t.homeless_people, count(p.cluster_id) AS other_people,
         count(h.cluster_id) AS both_people
  FROM others o CROSS JOIN homeless_total t
  LEFT JOIN presence p ON p.source_system = o.other_source
  LEFT JOIN homeless h ON h.cluster_id = p.cluster_id
  GROUP BY o.other_role, o.other_source, t.homeless_people
)
SELECT other_role, other_source, {_shown("homeless_people", t)} AS homeless_people,
       {_shown("other_people", t)} AS other_people, {_shown("both_people", t)} AS both_people,
       {_share("both_people", "homeless_people", t)} AS share_of_homeless,
       {_share("both_people", "other_people", t)} AS share_of_other,
       (homeless_people < {t} OR other_people < {t} OR both_people < {t}) AS suppressed
FROM counts"""


_BUILDERS = {
    "person_presence": person_presence,
    "person_sources": person_sources,
    "reoffending_journeys": reoffending_journeys,
    "treatment_pathway": treatment_pathway,
    "victim_support_pathway": victim_support_pathway,
    "homelessness_overlap": homelessness_overlap,
}


def view_queries(views: ViewSettings, *, crosswalk: str, record_groups: str) -> dict[str, str]:
    """View name -> its SELECT over ``crosswalk`` and ``record_groups`` (catalog tables or temp views)."""
    for what, name in (("crosswalk", crosswalk), ("record_groups", record_groups)):
        if not _TABLE.match(name):
            raise ValueError(f"{what}: expected a table name such as database.table, found {name!r}")
    records = _records(crosswalk, record_groups, dict(views.roles))
    return {name: build(views, records) for name, build in _BUILDERS.items()}


def truth_crosswalk(truth: DataFrame) -> DataFrame:
    """The generator's truth (source_system, source_record_id, person_id) as a crosswalk: person_id is the cluster.

    Run ``view_queries`` over it to get the true answers the linked views are compared with.
    """
    size = F.count(F.lit(1)).over(Window.partitionBy("person_id"))
    return truth.select(
        "source_system", "source_record_id", F.col("person_id").cast("string").alias("cluster_id"),
        F.lit("truth").alias("run_id"), size.cast("int").alias("cluster_size"),
        F.lit(None).cast("double").alias("match_probability"),
    ).select(*[F.col(f.name).cast(f.dataType) for f in CROSSWALK.fields])
