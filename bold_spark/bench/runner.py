"""Run the benchmark: per scale, each step in its own subprocess with its memory sampled, then the report.

Steps per scale, in order (see steps.py): data (cached), project_train, export (the standardised records for the
baselines), project_link, project_incremental_base and project_incremental (a full link on 99%, then the 1%
appended and linked incrementally in a fresh process), duckdb, spark_default, evaluate. A failed step is recorded
with its exit code and log file (logs can hold Spark's messages, so only their path goes in the results) and the
steps that need it skipped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bold_spark.bench.memory import TreeSampler
from bold_spark.bench.report import build_report

log = logging.getLogger(__name__)

SYSTEMS = ("project", "incremental", "duckdb", "spark_default")
# Splink on DuckDB's clusters at the thresholds a careful user would try, with connected components and with
# single best links (one record of each one-per-person source per cluster): the accuracy baselines of issue 32.
BASELINE_THRESHOLDS = (0.8, 0.95, 0.99)
BASELINE_VARIANTS = tuple(f"duckdb {method} {t}" for method in ("components", "single best links")
                          for t in BASELINE_THRESHOLDS)


def rates_key(rates: str | None) -> str:
    """A short digest of the generator's rates and code version, so cached data never outlives a change of either."""
    from bold_spark.synthetic.rates import load_rates

    payload = json.dumps({"rates": load_rates(rates).as_dict(), "generator": GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:8]


GENERATOR_VERSION = 2  # raise when bold_spark/synthetic changes what it generates (2: households)
NEEDS = {"project_train": ["data"], "export": ["data"], "project_link": ["project_train"],
         "project_incremental_base": ["project_train"], "project_incremental": ["project_incremental_base"],
         "duckdb": ["project_train", "export"], "spark_default": ["project_train", "export"], "evaluate": ["data"]}


def run_step(step: str, params: dict[str, Any], *, run_dir: Path, sample_executors: bool) -> dict[str, Any]:
    """One step in a fresh Python process (and its own JVM); peak RSS of its process tree sampled every 0.5 s."""
    result_path, log_path = run_dir / f"{step}.json", run_dir / "logs" / f"{step}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bold_spark.bench.steps", step, json.dumps(params), str(result_path)]
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        with TreeSampler(process.pid, include_cluster_executors=sample_executors) as sampler:
            code = process.wait()
    outcome: dict[str, Any] = {"step": step, "exit_code": code, "memory": sampler.peak.as_dict(), "log": str(log_path),
                               "process_seconds": round(time.perf_counter() - start, 3)}
    if code == 0:
        outcome["result"] = json.loads(result_path.read_text(encoding="utf-8"))
    log.info("%s: exit %d after %.1f s (peak RSS %d MiB)", step, code, outcome["process_seconds"],
             outcome["memory"]["total_mib"])
    return outcome


def run_scale(*, conf: str, scale: int, seed: int, root: Path, run_dir: Path, systems: tuple[str, ...],
              master: str, default_driver_memory: str | None, event_log: bool,
              keep_intermediate: bool = False, executor_memory: str | None = None,
              linkage: str | None = None, rates: str | None = None) -> dict[str, dict[str, Any]]:
    run_dir.mkdir(parents=True, exist_ok=True)
    data_dir = root / "data" / f"{scale}-{seed}-{rates_key(rates)}"  # other rates or generator: other data
    data_dir.mkdir(parents=True, exist_ok=True)
    crosswalks = {s: str(run_dir / f"crosswalk_{s}") for s in systems}
    if "duckdb" in systems:  # the baseline at other thresholds and with single best links, for accuracy only
        crosswalks.update({name: str(run_dir / f"crosswalk_{name.replace(' ', '_')}") for name in BASELINE_VARIANTS})
    base = {"conf": conf, "scale": scale, "seed": seed, "data_dir": str(data_dir), "rates": rates,
            "model_path": str(run_dir / "model" / "uk_person.json"), "persons_path": str(run_dir / "persons"),
            "master": master, "executor_memory": executor_memory, "linkage": linkage}
    if event_log:
        base["event_log_dir"] = str(run_dir / "eventlog")
    plan = ["data", "project_train"]
    plan += ["export"] if {"duckdb", "spark_default"} & set(systems) else []
    plan += ["project_link"] if "project" in systems else []
    plan += ["project_incremental_base", "project_incremental"] if "incremental" in systems else []
    plan += [s for s in ("duckdb", "spark_default") if s in systems]
    plan += ["evaluate"]
    extra = {"project_link": {"crosswalk_path": crosswalks.get("project", "")},
             "duckdb": {"crosswalk_path": crosswalks.get("duckdb", ""),
                        "variant_paths": {k: v for k, v in crosswalks.items() if k in BASELINE_VARIANTS}},
             "spark_default": {"crosswalk_path": crosswalks.get("spark_default", ""), "master": master,
                               "driver_memory": default_driver_memory},
             "project_incremental_base": {"incremental_dir": str(run_dir / "work" / "incremental")},
             "project_incremental": {"incremental_dir": str(run_dir / "work" / "incremental"),
                                     "base_result": str(run_dir / "project_incremental_base.json")},
             "evaluate": {"crosswalks": crosswalks}}
    outcomes: dict[str, dict[str, Any]] = {}
    for step in plan:
        missing = [n for n in NEEDS.get(step, []) if outcomes.get(n, {}).get("exit_code") != 0]
        if missing:
            outcomes[step] = {"step": step, "skipped": f"needs {', '.join(missing)}"}
            continue
        # Each step its own warehouse and scratch: tables one process wrote are unknown to the next one's
        # in-memory catalog, and Delta refuses to create a table over a non-empty location.
        params = {**base, **extra.get(step, {}), "work_dir": str(run_dir / "work" / step)}
        outcomes[step] = run_step(step, params, run_dir=run_dir,
                                  sample_executors=not master.startswith("local"))
    if not keep_intermediate:  # tables, exports and crosswalks grow with the scale; the results say all we need
        for name in ("work", "persons", *[Path(c).name for c in crosswalks.values()]):
            shutil.rmtree(run_dir / name, ignore_errors=True)
    return outcomes


def run_bench(*, conf: str, scales: list[int], seed: int, root: Path, systems: tuple[str, ...] = SYSTEMS,
              default_driver_memory: str | None = None, event_log: bool = False,
              keep_intermediate: bool = False, master: str | None = None,
              executor_memory: str | None = None, linkage: str | None = None,
              rates: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Run every scale and write ``results/<timestamp>.md`` and ``.json`` under ``root``; returns the markdown path
    and the results. ``master`` (default the config's) is where every Spark step runs."""
    from bold_spark.config import load_config

    if linkage:  # a path given on the command line: relative to where the bench was started, not to conf's folder
        linkage = str(Path(linkage).resolve())
    config = load_config(conf, overrides={"linkage": linkage} if linkage else None)  # fail before any subprocess
    master = master or config.spark.master
    if default_driver_memory is None:  # the same memory as the project's job: compare settings, not heap size
        default_driver_memory = config.spark.conf.get("spark.driver.memory")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results_dir = root / "results"
    per_scale = {}
    for scale in scales:
        log.info("scale %s: starting", f"{scale:,}")
        per_scale[scale] = run_scale(conf=conf, scale=scale, seed=seed, root=root,
                                     run_dir=results_dir / stamp / str(scale), systems=systems, master=master,
                                     default_driver_memory=default_driver_memory, event_log=event_log,
                                     keep_intermediate=keep_intermediate, executor_memory=executor_memory,
                                     linkage=linkage, rates=rates)
    results = {"timestamp": stamp, "conf": str(conf), "linkage": linkage or "(the config's)", "seed": seed,
               "rates": rates or "conf/rates/default.yaml",
               "scales": scales, "systems": list(systems),
               "spark_master": master, "default_spark_driver_memory": default_driver_memory,
               "edge_threshold": config.linkage.edge_threshold, "cluster_threshold": config.linkage.cluster_threshold,
               "steps": {str(k): v for k, v in per_scale.items()}}
    markdown, summary = build_report(results)
    results["summary"] = summary
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{stamp}.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    md_path = results_dir / f"{stamp}.md"
    md_path.write_text(markdown, encoding="utf-8")
    return md_path, results
