"""Clerical review without a link run: the decisions file and its checks, the table's own checks for SQL INSERT, the
merge's treatment of must_link edges, and the queue on small inline frames."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bold_spark.clustering.rules import MUST_LINK_WEIGHT, constrained_merge
from bold_spark.config import OutputTables
from bold_spark.review.decisions import (
    DecisionImportError,
    decisions_as_labels,
    ensure_decisions_table,
    import_decisions,
    parse_decisions_file,
    read_decisions,
)
from bold_spark.review.queue import review_queue, threshold_weight
from bold_spark.review.settings import ReviewSettings
from bold_spark.schemas import MATCH_EDGES

pytestmark = pytest.mark.tables

HEADER = "source_system_l,source_record_id_l,source_system_r,source_record_id_r,decision,reviewer,reason,decided_at\n"
SOURCES = ["prison", "probation"]


def _file(tmp_path: Path, name: str, *rows: str) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def test_malformed_rows_are_named_by_row_and_reason_without_their_values(tmp_path):
    path = _file(tmp_path, "bad.csv",
                 "prison,A1,probation,B1,must_link,ann,,2026-12-01",            # row 2: fine
                 "prison,A1,probation,B1,maybe,ann,,",                          # row 3: unknown decision
                 "prison,A1,prison,A1,cannot_link,ann,,",                       # row 4: one record twice
                 "housing,H1,probation,B1,cannot_link,ann,,",                   # row 5: unknown source
                 "prison,,probation,B2,cannot_link,ann,,",                      # row 6: missing id
                 "prison,A3,probation,B3,cannot_link,ann,,yesterday")           # row 7: bad time
    parsed = parse_decisions_file(path, sources=SOURCES)
    assert [r["row"] for r in parsed.rows] == [2]
    assert parsed.rows[0]["decided_at"] == dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    reasons = dict(parsed.errors)
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert "decision must be" in reasons[3] and "same record" in reasons[4]
    assert "source_system_l is not a configured source" in reasons[5] and "source_record_id_l" in reasons[6]
    assert "decided_at" in reasons[7]
    assert not any(value in " ".join(reasons.values()) for value in ("A1", "B2", "H1", "housing", "yesterday"))


def test_a_file_without_the_required_columns_is_refused_whole(tmp_path):
    path = tmp_path / "columns.csv"
    path.write_text("left,right,decision\nA,B,must_link\n")
    parsed = parse_decisions_file(path, sources=SOURCES)
    assert parsed.rows == [] and parsed.errors[0][0] == 1 and "missing column(s)" in parsed.errors[0][1]


@pytest.fixture(scope="module")
def output(spark):
    out = OutputTables(database="bold_review_unit")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {out.database}")
    records = [("prison", f"A{i}") for i in range(1, 6)] + [("probation", f"B{i}") for i in range(1, 6)]
    spark.createDataFrame([(s, r, f"P{r}") for s, r in records], "source_system string, source_record_id string, "
                                                                   "cluster_id string") \
        .write.format("delta").saveAsTable(out.qualified("crosswalk"))
    return out


def _decisions(spark, out):
    return {(r["source_record_id_l"], r["source_record_id_r"]): r["decision"]
            for r in read_decisions(spark, out).collect()}


def test_contradictory_decisions_are_rejected_whole_with_the_rows_that_contradict(spark, output, tmp_path):
    chain = _file(tmp_path, "chain.csv",
                  "prison,A1,probation,B1,must_link,ann,same person,",
                  "probation,B1,prison,A2,must_link,ann,,",
                  "prison,A2,prison,A1,cannot_link,bob,,",    # A1 = B1 = A2, yet A2 != A1
                  "prison,A3,probation,B3,must_link,bob,,")   # fine on its own: not loaded either
    with pytest.raises(DecisionImportError) as error:
        import_decisions(spark, output, chain, sources=SOURCES)
    message = str(error.value)
    assert "nothing was loaded" in message and "row 4: cannot_link contradicts must_link" in message
    assert "row(s) 2, 3" in message and "A1" not in message
    assert read_decisions(spark, output) is None or _decisions(spark, output) == {}

    # Loaded in two goes, the contradiction is found against the table.
    assert import_decisions(spark, output, _file(tmp_path, "first.csv", "prison,A1,probation,B1,must_link,ann,,",
                                                 "probation,B1,prison,A2,must_link,ann,,"), sources=SOURCES) == 2
    with pytest.raises(DecisionImportError, match=r"row 2: cannot_link .*2 decision\(s\) already in the table"):
        import_decisions(spark, output, _file(tmp_path, "second.csv", "prison,A2,prison,A1,cannot_link,bob,,"),
                         sources=SOURCES)
    # A reviewer who changes their mind on a pair replaces the earlier decision (decided later): no contradiction.
    import_decisions(spark, output, _file(tmp_path, "change.csv", "probation,B1,prison,A2,cannot_link,bob,,"),
                     sources=SOURCES)
    assert _decisions(spark, output) == {("A1", "B1"): "must_link", ("A2", "B1"): "cannot_link"}
    # Decisions are labels for evaluation: the latest per pair, must_link a match.
    labels = decisions_as_labels(spark.table(output.qualified("review_decisions"))).collect()
    assert {(r["source_record_id_l"], r["source_record_id_r"]): r["is_match"] for r in labels} == \
        {("A1", "B1"): True, ("A2", "B1"): False}


def test_unknown_records_are_rejected_and_the_same_pair_both_ways_in_one_file(spark, output, tmp_path):
    path = _file(tmp_path, "unknown.csv", "prison,A4,probation,B9,cannot_link,ann,,",
                 "prison,A5,probation,B5,must_link,ann,,", "probation,B5,prison,A5,cannot_link,ann,,")
    with pytest.raises(DecisionImportError) as error:
        import_decisions(spark, output, path, sources=SOURCES)
    message = str(error.value)
    assert "row 2: record source_record_id_r not in the published crosswalk" in message
    assert "row 4: cannot_link contradicts row 3" in message and "B9" not in message


def test_sql_insert_works_and_the_table_refuses_what_an_import_would(spark, output):
    name = ensure_decisions_table(spark, output)
    spark.sql(f"INSERT INTO {name} VALUES ('prison', 'A3', 'probation', 'B3', 'cannot_link', 'sql', NULL, "
              "timestamp'2026-12-07 10:00:00')")
    assert _decisions(spark, output)[("A3", "B3")] == "cannot_link"
    for values in ("'prison', 'A4', 'probation', 'B4', 'maybe', 'sql', NULL, current_timestamp()",
                   "'prison', 'A4', 'prison', 'A4', 'must_link', 'sql', NULL, current_timestamp()"):
        with pytest.raises(Exception, match="(?i)check constraint|violate"):
            spark.sql(f"INSERT INTO {name} VALUES ({values})")


def test_a_must_link_edge_outranks_constraints_but_not_a_cannot_link():
    records = [{"node": "a", "once_key": "census"}, {"node": "b", "once_key": "census"}, {"node": "c"}]
    forced = constrained_merge(records, [("a", "b", MUST_LINK_WEIGHT), ("b", "c", 3.0)], identifiers=[],
                               years_apart=None)
    assert forced.labels == {"a": "a", "b": "a", "c": "a"} and forced.refused == {}
    refused = constrained_merge(records, [("a", "b", MUST_LINK_WEIGHT), ("a", "c", 3.0), ("b", "c", 2.0)],
                                identifiers=[], years_apart=None, cannot_link=[("b", "c")])
    assert refused.labels == {"a": "a", "b": "a", "c": "c"} and refused.refused == {"cannot_link": 2}


def test_the_queue_holds_pairs_near_the_threshold_and_the_weakest_edges_of_flagged_clusters(spark):
    t = 0.8
    centre = threshold_weight(t)

    def edge(l, r, weight):
        return ("s", l, "s", r, weight, 2 ** weight / (1 + 2 ** weight), {"first_name": 2}, "run")

    edges = spark.createDataFrame([
        edge("a", "b", centre + 0.5),   # near the threshold, linked
        edge("c", "d", centre - 1.0),   # near, not linked
        edge("e", "f", centre + 9.0),   # sure: not queued unless its cluster is flagged
        edge("g", "h", centre + 9.0), edge("h", "i", centre + 5.0),   # one cluster, two dates of birth
        edge("j", "k", centre + 0.1),   # near, but already decided
    ], MATCH_EDGES)
    clusters = {"a": 1, "b": 1, "c": 2, "d": 3, "e": 4, "f": 4, "g": 5, "h": 5, "i": 5, "j": 6, "k": 6}
    crosswalk = spark.createDataFrame([("s", r, f"P{c}") for r, c in clusters.items()],
                                      "source_system string, source_record_id string, cluster_id string")
    persons = spark.createDataFrame([("s", r, dt.date(1990, 1, 1) if r != "i" else dt.date(1950, 1, 1), "M")
                                     for r in clusters], "source_system string, source_record_id string, "
                                                         "date_of_birth date, sex string")
    decided = spark.createDataFrame([("s", "k", "s", "j")], "source_system_l string, source_record_id_l string, "
                                                           "source_system_r string, source_record_id_r string")
    queue = review_queue(edges, crosswalk, persons, threshold=t, settings=ReviewSettings(band_match_weight=2.0,
                                                                                          edges_per_flagged_cluster=1),
                         implausible_size=50, run_id="run", decided=decided).collect()
    got = [(r["source_record_id_l"], r["source_record_id_r"], r["reason"]) for r in queue]
    assert got == [("h", "i", "flagged_cluster:date_of_birth"), ("a", "b", "near_threshold"),
                   ("c", "d", "near_threshold")]
    assert queue[1]["priority"] == pytest.approx(0.75) and queue[2]["cluster_id_l"] != queue[2]["cluster_id_r"]
    assert queue[0]["comparison_levels"] == {"first_name": 2}
    assert {r["run_id"] for r in queue} == {"run"}


@pytest.mark.parametrize("review, key", [({"band_match_weight": -1}, "review.band_match_weight"),
                                         ({"edges_per_flagged_cluster": 2.5}, "review.edges_per_flagged_cluster"),
                                         ({"band": 2}, "review")])
def test_review_settings_are_checked_with_the_file_and_key(tmp_path, review, key):
    import yaml

    from bold_spark.config import load_config
    from bold_spark.errors import ConfigError
    from tests.integration.conftest import PROJECT_ROOT

    conf = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    conf.update(base_dir=str(PROJECT_ROOT), sources=[str(PROJECT_ROOT / "conf" / "sources" / "demo" / "*.yaml")],
                linkage=str(PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml"),
                views=str(PROJECT_ROOT / "conf" / conf["views"]), review=review)
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(ConfigError, match=f"env.yaml: {key.replace('.', '[.]')}"):
        load_config(tmp_path / "env.yaml")


def test_the_review_page_shows_both_records_the_waterfall_and_a_form_that_writes_the_decisions_file():
    import json

    from bold_spark.review.page import render_review_page
    from tests.integration.conftest import TEST_MODEL

    model = json.loads(TEST_MODEL.read_text())
    names = [c["output_column_name"] for c in model["comparisons"]]
    item = {"source_system_l": "prison", "source_record_id_l": "A<1>", "source_system_r": "probation",
            "source_record_id_r": "B1", "match_weight": 1.5, "match_probability": 0.74,
            "comparison_levels": {n: 1 for n in names}, "cluster_id_l": "P1", "cluster_id_r": "P2",
            "reason": "near_threshold", "priority": 0.9, "first_name_l": "john", "first_name_r": "jon",
            "surname_l": "smith", "surname_r": "smith"}
    page = render_review_page([item], model, run_id="run1")
    assert "john" in page and "jon" in page and "A&lt;1&gt;" in page  # values escaped, side by side
    assert page.count('class="differ"') == 1  # first_name differs, surname does not
    assert "<svg" in page and "not linked now" in page
    assert 'data-pair="[&quot;prison&quot;, &quot;A&lt;1&gt;&quot;' in page
    assert "source_system_l,source_record_id_l,source_system_r,source_record_id_r,decision" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
