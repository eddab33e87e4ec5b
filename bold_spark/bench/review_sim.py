"""The simulated review round of docs/review.md ("On demo data"): how many reviewed pairs it takes to raise the
crosswalk's F1 against the generator's truth (issue 26).

    python jobs/bench.py --review [--scales 20000] [--seed 7] [--review-n 100,1000]     (make bench-review)

1. ``data``: the six demo departments and their truth (cached under var/bench/data, as the other benches).
2. ``review_first``: a full link with the committed test model (tests/data/uk_person_model.json, nothing trained),
   default settings; its bold.review_queue kept (ranked: priority descending, then the pair's ids, the queue's
   own order) and its crosswalk evaluated against the truth.
3. ``review_round`` per N, ascending: reviewers simulated with the truth on items ``previous N + 1`` to ``N`` of
   that first queue (same person: must_link, else cannot_link), written as the CSV a reviewer writes, loaded with
   the real ``import_decisions``, then a full link, evaluated with the project's pairwise metrics.

The rounds are cumulative, in one database: N = 1,000 is the N = 100 decisions plus items 101 to 1,000 of the same
first queue. A full link reads every current decision and clusters from scratch (stable ids aside), so its clusters
are those a fresh database given the top 1,000 decisions at once would get. Each step is its own process (the bench
runner) with a Derby catalog under the work folder, as a review round runs: link, import, link. Results hold counts
and rates only; the decisions files (record ids, as the queue holds them) stay in the work folder, deleted at the
end unless kept.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Window, functions as F

from bold_spark.review.decisions import CANNOT_LINK, MUST_LINK, OPTIONAL, PAIR, REQUIRED

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEST_MODEL = PROJECT_ROOT / "tests" / "data" / "uk_person_model.json"
DEFAULT_NS = (100, 1000)
REVIEWER = "simulated"
REASON = "generator truth"
KEYS = ["source_system", "source_record_id"]


# --- the simulated reviewers (pure) -----------------------------------------------------------------------------------

def ranked_queue(queue: DataFrame) -> DataFrame:
    """REVIEW_QUEUE rows -> the same with ``rank`` (1 = first to review): priority descending, then the pair's ids,
    the order the queue is read in (``order by priority desc``). One window over the whole queue: a queue is
    bounded by the review band and the flagged clusters, not a table that grows with every pair scored."""
    order = Window.orderBy(F.col("priority").desc(), *[F.col(c).asc() for c in PAIR])
    return queue.withColumn("rank", F.row_number().over(order))


def simulated_decisions(ranked: DataFrame, truth: DataFrame, *, first: int, last: int) -> DataFrame:
    """``ranked_queue`` rows and the truth (source_system, source_record_id, person_id) -> (rank, PAIR..., decision,
    queue_reason) for the items ranked ``first`` to ``last`` (inclusive): must_link when the truth holds both records
    as one person, cannot_link otherwise. A pair with a record the truth lacks is left out (no reviewer could
    decide it); the caller counts those."""
    people = truth.select(*KEYS, "person_id")
    items = ranked.where(F.col("rank").between(first, last)).select("rank", *PAIR,
                                                                     F.col("reason").alias("queue_reason"))
    for side in ("l", "r"):
        items = items.join(people.toDF(f"source_system_{side}", f"source_record_id_{side}", f"person_{side}"),
                           [f"source_system_{side}", f"source_record_id_{side}"], how="inner")
    same = F.col("person_l") == F.col("person_r")
    return items.select("rank", *PAIR, F.when(same, F.lit(MUST_LINK)).otherwise(F.lit(CANNOT_LINK)).alias("decision"),
                        "queue_reason")


def write_decisions_csv(decisions: Iterable[Mapping[str, Any]], path: Path, *, reviewer: str = REVIEWER,
                        reason: str = REASON) -> int:
    """Decision rows (PAIR..., decision) -> the decisions CSV a reviewer writes (docs/review.md: REQUIRED then
    OPTIONAL columns; decided_at left blank, so the import time); returns the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*REQUIRED, *OPTIONAL])
        writer.writeheader()
        for d in decisions:
            writer.writerow({**{c: d[c] for c in PAIR}, "decision": d["decision"], "reviewer": reviewer,
                             "reason": reason, "decided_at": ""})
            written += 1
    return written


# --- steps (each in its own process: python -m bold_spark.bench.steps review_first|review_round ...) ---------------

def _review_config(p: dict[str, Any]):
    """bench_config with a Derby catalog, warehouse, scratch, state and reports under ``review_dir``, so each step's
    fresh process finds the tables the previous one wrote; the committed test model."""
    from bold_spark.bench.steps import bench_config
    from bold_spark.config import CatalogSettings

    root = Path(p["review_dir"])
    config = bench_config(p["conf"], data_dir=p["data_dir"], work_dir=str(root), model_path=p["model_path"])
    return dataclasses.replace(
        config,
        spark=dataclasses.replace(config.spark, metastore_dir=root / "metastore", catalog=CatalogSettings()),
        report=dataclasses.replace(config.report, directory=root / "reports"))


def _run_crosswalk(spark, config, record) -> DataFrame:
    """The crosswalk the run wrote: published, or the candidate when the publishing gate held it."""
    table = "crosswalk_candidate" if record.status == "held" else "crosswalk"
    return spark.table(config.output.qualified(table))  # each run replaces it


def _link_and_measure(spark, config, truth: DataFrame) -> dict[str, Any]:
    from bold_spark import pipeline
    from bold_spark.quality.evaluate import pairwise_metrics

    start = time.perf_counter()
    record = pipeline.link(spark, config)
    seconds = time.perf_counter() - start
    metrics = pairwise_metrics(_run_crosswalk(spark, config, record), truth)
    queue = spark.table(config.output.qualified("review_queue"))
    by_reason = {r["reason"]: int(r["n"]) for r in queue.groupBy("reason").agg(F.count(F.lit(1)).alias("n"))
                 .collect()}  # bounded: a few reasons
    return {"run_id": record.run_id, "status": record.status, "link_seconds": round(seconds, 3),
            "stage_seconds": record.stage_seconds, "records": record.crosswalk_rows, "edges": record.edges_recorded,
            "clusters": record.clusters, "queue": sum(by_reason.values()), "queue_by_reason": by_reason,
            "review_decisions_applied": record.review_decisions_applied,
            "review_decisions_not_applicable": record.review_decisions_not_applicable,
            "review_edges_cut": record.review_edges_cut, "review_decisions_unmet": record.review_decisions_unmet,
            **{k: metrics[k] for k in ("precision", "recall", "f1", "predicted_pairs", "true_pairs",
                                       "true_positive_pairs")}}


def _truth(spark, p: dict[str, Any]) -> DataFrame:
    from bold_spark.quality.evaluate import conform_truth

    return conform_truth(spark.read.format("delta").load(str(Path(p["data_dir"]) / "truth")))


def step_review_first(p: dict[str, Any]) -> dict[str, Any]:
    """The first run: a full link, its queue kept ranked (``queue_path``), its crosswalk evaluated."""
    from bold_spark.session import build_session

    config = _review_config(p)
    spark = build_session(config.spark)
    result = _link_and_measure(spark, config, _truth(spark, p))
    ranked_queue(spark.table(config.output.qualified("review_queue"))).write.mode("overwrite").parquet(p["queue_path"])
    return result


def step_review_round(p: dict[str, Any]) -> dict[str, Any]:
    """Items ``first`` to ``last`` of the first queue decided from the truth, imported from a CSV with the real
    import, then a full link, evaluated."""
    from bold_spark.review.decisions import import_decisions
    from bold_spark.session import build_session

    config = _review_config(p)
    spark = build_session(config.spark)
    truth = _truth(spark, p)
    first, last = int(p["first"]), int(p["last"])
    decided = simulated_decisions(spark.read.parquet(p["queue_path"]), truth, first=first, last=last)
    rows = [r.asDict() for r in decided.orderBy("rank").collect()]  # bounded: last - first + 1 rows, a reviewer's day
    path = Path(p["review_dir"]) / f"decisions_{first}-{last}.csv"
    write_decisions_csv(rows, path)
    start = time.perf_counter()
    loaded = import_decisions(spark, config.output, path, sources=[s.name for s in config.sources])
    import_seconds = time.perf_counter() - start
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{r['queue_reason']} {r['decision']}"
        counts[key] = counts.get(key, 0) + 1
    return {"first": first, "last": last, "items": last - first + 1, "decided": len(rows), "loaded": loaded,
            "must_link": sum(r["decision"] == MUST_LINK for r in rows),
            "cannot_link": sum(r["decision"] == CANNOT_LINK for r in rows),
            "decided_by_queue_reason": dict(sorted(counts.items())), "import_seconds": round(import_seconds, 3),
            **_link_and_measure(spark, config, truth)}


# --- the bench --------------------------------------------------------------------------------------------------------

def run_review_bench(*, conf: str, scale: int, seed: int, root: Path, ns: tuple[int, ...] = DEFAULT_NS,
                     rates: str | None = None, keep_intermediate: bool = False) -> dict[str, Any]:
    """Data (cached), the first link, then one round per N (ascending, cumulative); writes
    ``results/review-<timestamp>/summary.json`` under ``root`` and returns the summary."""
    from bold_spark.bench.runner import rates_key, run_step
    from bold_spark.config import load_config

    load_config(conf)  # a configuration error stops the bench before any process starts
    ns = tuple(sorted(set(ns)))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = root / "results" / f"review-{stamp}"
    data_dir = root / "data" / f"{scale}-{seed}-{rates_key(rates)}"
    data_dir.mkdir(parents=True, exist_ok=True)
    work = run_dir / "work"
    base = {"conf": conf, "scale": scale, "seed": seed, "rates": rates, "data_dir": str(data_dir),
            "model_path": str(TEST_MODEL), "review_dir": str(work / "review"), "queue_path": str(work / "queue_first")}

    def step(name: str, label: str, **params: Any) -> dict[str, Any]:
        outcome = run_step(name, {**base, **params, "work_dir": str(work / label)}, run_dir=run_dir / label,
                           sample_executors=False)
        if outcome["exit_code"] != 0:
            raise RuntimeError(f"bench step {label} failed (exit {outcome['exit_code']}); log: {outcome['log']}")
        return {**outcome["result"], "process_seconds": outcome["process_seconds"],
                "peak_rss_mib": outcome["memory"]["total_mib"]}

    data = step("data", "data")
    first_run = step("review_first", "review_first")
    rounds, previous = [], 0
    for n in ns:
        last = min(n, first_run["queue"])
        if last <= previous:
            rounds.append({"n": n, "skipped": f"the first queue holds {first_run['queue']} items, all decided"})
            continue
        rounds.append({"n": n, **step("review_round", f"review_{n}", first=previous + 1, last=last)})
        previous = last
    summary = {"scale": scale, "seed": seed, "rates": rates or "conf/rates/default.yaml", "conf": conf,
               "model": str(TEST_MODEL.relative_to(PROJECT_ROOT)), "records": data.get("department_records"),
               "people": data.get("people"), "mode": "cumulative: one database; each N imports the items after the "
               "previous N of the first run's queue, then a full link", "first_run": first_run, "rounds": rounds}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    if not keep_intermediate:  # catalog, tables and the decisions files (record ids): the summary says what counts
        shutil.rmtree(work, ignore_errors=True)
    summary["written"] = str(run_dir / "summary.json")
    return summary


def render(summary: dict[str, Any]) -> str:
    """The figures as a markdown table and a few lines (counts and rates only)."""
    f = summary["first_run"]
    reasons = ", ".join(f"{n:,} {r}" for r, n in sorted(f["queue_by_reason"].items()))
    lines = [f"{summary['records']:,} generated records (scale {summary['scale']:,}, seed {summary['seed']}), "
             f"model {summary['model']}; first run's queue: {f['queue']:,} items ({reasons})",
             f"mode: {summary['mode']}",
             "| N | queue before | decided (must / cannot) | decisions applied | edges cut | precision | recall | "
             "F1 | queue after | import (s) | link (s) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
             f"| 0 | — | — | — | — | {f['precision']:.4f} | {f['recall']:.4f} | {f['f1']:.4f} | "
             f"{f['queue']:,} | — | "
             f"{f['link_seconds']:.1f} |"]
    for r in summary["rounds"]:
        if "skipped" in r:
            lines.append(f"| {r['n']:,} | skipped: {r['skipped']} |")
            continue
        label = f"{r['n']:,}" if r["last"] == r["n"] else f"{r['n']:,} (queue: {r['last']:,})"
        lines.append(f"| {label} | {f['queue']:,} | {r['decided']:,} ({r['must_link']:,} / {r['cannot_link']:,}, "
                     f"items {r['first']:,}-{r['last']:,}) | {r['review_decisions_applied'] or 0:,} | "
                     f"{r['review_edges_cut'] or 0:,} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} | "
                     f"{r['queue']:,} | {r['import_seconds']:.1f} | {r['link_seconds']:.1f} |")
    held = [r["n"] for r in summary["rounds"] if r.get("status") == "held"]
    if held:
        lines.append(f"held by the publishing gate (evaluated on the candidate crosswalk): N = {held}")
    return "\n".join(lines)
