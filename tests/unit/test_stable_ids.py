"""assign_stable_ids on tiny inline frames: continue, new, merge, split, retire, delete, ties, no id reuse."""
from __future__ import annotations

import hashlib

import pytest

from pyspark.sql import functions as F

from bold_spark.crosswalk.stable_ids import assign_stable_ids, issued_ids, record_key

SRC = "s"


def _components(spark, groups: list[list[str]]):
    """Clusters of record ids (all in source 's') -> (source_system, source_record_id, component)."""
    rows = [(SRC, r, min(g)) for g in groups for r in g]
    df = spark.createDataFrame(rows, "source_system string, source_record_id string, smallest string")
    return df.select("source_system", "source_record_id",
                     record_key(F.lit(SRC), F.col("smallest")).alias("component"))


def _previous(spark, clusters: dict[str, list[str]]):
    rows = [(SRC, r, cid) for cid, members in clusters.items() for r in members]
    return spark.createDataFrame(rows, "source_system string, source_record_id string, cluster_id string")


def _ids(assignment) -> dict[str, str]:
    return {r["source_record_id"]: r["cluster_id"] for r in assignment.crosswalk_ids.collect()}  # tiny frame


def _events(assignment) -> set[tuple]:
    return {(r["event"], r["cluster_id"], r["related_cluster_id"], r["records"])
            for r in assignment.events.collect()}  # tiny frame


def _new_id(smallest: str, salt: int = 0) -> str:
    """The id the rules give a new cluster, computed independently of Spark."""
    key = f"{SRC}\u001f{smallest}" + (f"\u001f#{salt}" if salt else "")
    return "P" + hashlib.sha256(key.encode()).hexdigest()[:20]


# One run covering every case at once (the cases share no records), so the suite pays for one Spark plan.
PREVIOUS = {
    "C1": ["ca", "cb", "cc"], "C2": ["cd"],  # continue: ca deleted, ce joins C1; C2 unchanged
    "M1": ["ma", "mb"], "M2": ["mc", "md", "me"],  # merge: M2 has the larger overlap
    "TQ": ["ta", "tb"], "TK": ["tc", "td"],  # merge tie: the smaller id TK survives
    "S1": ["sa", "sb", "sc", "sd", "se"],  # split: the larger part keeps S1
    "U1": ["ua", "ub", "uc", "ud"],  # split tie: the part with the smallest member keeps U1
    "R1": ["ra", "rb"],  # retired: both records deleted
    "X1": ["xa", "xb", "xc", "xd"], "Y1": ["xe", "xf", "xg"], "Z1": ["xh"],  # X1 spread over three clusters
}
CURRENT = [
    ["cb", "cc", "ce"], ["cd"],
    ["ma", "mb", "mc", "md", "me"],
    ["ta", "tb", "tc", "td"],
    ["sa", "sb"], ["sc", "sd", "se"],
    ["uc", "ud"], ["ua", "ub"],
    ["nz", "ny"],  # new records only
    ["xa", "xe", "xf", "xg"], ["xb", "xc", "xh"], ["xd"],
]


@pytest.fixture(scope="module")
def scenario(spark):
    got = assign_stable_ids(_components(spark, CURRENT), _previous(spark, PREVIOUS), run_id="r2")
    return _ids(got), _events(got), {r["run_id"] for r in got.events.collect()}  # tiny frame


def test_continuing_clusters_keep_ids_even_when_their_smallest_member_changes(scenario):
    ids, events, _ = scenario
    assert {r: ids[r] for r in ("cb", "cc", "ce", "cd")} == {"cb": "C1", "cc": "C1", "ce": "C1", "cd": "C2"}
    assert not [e for e in events if {e[1], e[2]} & {"C1", "C2"}]


def test_merge_keeps_the_id_with_the_largest_overlap_and_retires_the_other(scenario):
    ids, events, _ = scenario
    assert {ids[r] for r in ("ma", "mb", "mc", "md", "me")} == {"M2"}
    assert ("merged", "M1", "M2", 2) in events


def test_merge_tie_keeps_the_smallest_id(scenario):
    ids, events, _ = scenario
    assert {ids[r] for r in ("ta", "tb", "tc", "td")} == {"TK"}
    assert ("merged", "TQ", "TK", 2) in events


def test_split_largest_part_keeps_the_id_others_get_new_ids(scenario):
    ids, events, _ = scenario
    assert ids["sc"] == ids["sd"] == ids["se"] == "S1"
    assert ids["sa"] == ids["sb"] == _new_id("sa")
    assert ("split", _new_id("sa"), "S1", 2) in events


def test_split_tie_goes_to_the_part_with_the_smallest_member(scenario):
    ids, events, _ = scenario
    assert ids["ua"] == ids["ub"] == "U1" and ids["uc"] == ids["ud"] == _new_id("uc")
    assert ("split", _new_id("uc"), "U1", 2) in events


def test_new_records_get_new_ids_and_fully_deleted_clusters_are_retired(scenario):
    ids, events, _ = scenario
    assert ids["ny"] == ids["nz"] == _new_id("ny")
    assert ("new", _new_id("ny"), None, 2) in events
    assert ("retired", "R1", None, 2) in events
    assert not {"ca", "ra", "rb"} & set(ids)


def test_each_previous_id_goes_to_at_most_one_cluster_and_each_cluster_has_one_id(scenario):
    ids, events, run_ids = scenario
    groups: dict[str, set[str]] = {}
    for record, cid in ids.items():
        groups.setdefault(cid, set()).add(record)
    assert sorted(map(sorted, groups.values())) == sorted(sorted(g) for g in CURRENT)
    assert ids["xa"] == "Y1" and ids["xb"] == "X1" and ids["xd"] == _new_id("xd")
    assert ("merged", "Z1", "X1", 1) in events and ("split", _new_id("xd"), "X1", 1) in events
    assert len(events) == 8 and run_ids == {"r2"}  # nothing else: continuing clusters have no events


def test_first_run_ids_are_hashes_of_the_smallest_member_and_all_new(spark):
    got = assign_stable_ids(_components(spark, [["a", "b"], ["c"]]), None, run_id="r1")
    ids = _ids(got)
    assert ids == {"a": _new_id("a"), "b": _new_id("a"), "c": _new_id("c")}
    assert ids["a"].startswith("P") and len(ids["a"]) == 21
    assert _events(got) == {("new", ids["a"], None, 2), ("new", ids["c"], None, 1)}
    # unchanged inputs the next time: identical ids, no events
    again = assign_stable_ids(_components(spark, [["a", "b"], ["c"]]), got.crosswalk_ids, run_id="r2")
    assert _ids(again) == ids and _events(again) == set()


def test_an_id_issued_before_is_never_reissued(spark):
    # 'a' once started cluster hash(a), which continued without it; a new cluster led by 'a' needs another id.
    # hash(a, salt 1) is also taken: it is in the event history (a retired id), so salt 2 is used.
    history = spark.createDataFrame([("r0", "new", _new_id("a", 1))], "run_id string, event string, cluster_id string")
    prev = _previous(spark, {_new_id("a"): ["b", "c"]})
    got = assign_stable_ids(_components(spark, [["b", "c"], ["a"]]), prev, run_id="r3", issued=issued_ids(history))
    ids = _ids(got)
    assert ids["b"] == _new_id("a") and ids["a"] == _new_id("a", 2)


def test_frames_kept_for_reuse_give_the_same_assignment(spark, scenario):
    """Callers checkpoint the two frames both outputs read (``reuse``); the result must not depend on it."""
    kept = []

    def keep(frame):
        kept.append(frame)
        return frame.localCheckpoint()

    got = assign_stable_ids(_components(spark, CURRENT), _previous(spark, PREVIOUS), run_id="r2", reuse=keep)
    assert len(kept) == 2
    assert (_ids(got), _events(got)) == scenario[:2]
