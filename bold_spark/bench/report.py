"""Turn the steps' raw results into the benchmark tables (markdown) and a summary (JSON). Pure: dicts in, text out.

Definitions, the same for every system:
* total seconds: the project's ``pipeline.link`` wall time (stages plus run recording); for the baselines, load +
  predict + cluster. JVM start-up is in no one's total. Training is the project's only (the baselines reuse its
  model), so it has its own row.
* comparisons: Splink's exact blocking count of the prediction rules (``record_sample_proportion=1.0``, on DuckDB
  over the same records), i.e. the pairs every system scores; comparisons per second divide it by each total.
* records: accepted records linked (every system gets the same, exported once from the project's standardisation).
"""
from __future__ import annotations

from typing import Any

PROJECT_STAGES = ("read_standardise", "blocking", "scoring", "clustering", "writing")
LABELS = {"project": "bold_spark (link)", "project_train": "bold_spark (train)",
          "incremental": "bold_spark (incremental link, 1% new records)", "duckdb": "Splink on DuckDB",
          "spark_default": "Splink on Spark, defaults"}
STEP_OF = {"project": "project_link", "project_train": "project_train", "incremental": "project_incremental",
           "duckdb": "duckdb",
           "spark_default": "spark_default"}


def _ok(outcome: dict[str, Any] | None) -> dict[str, Any] | None:
    return outcome["result"] if outcome and outcome.get("exit_code") == 0 else None


def _status(outcome: dict[str, Any] | None) -> str:
    if outcome is None:
        return "not run"
    if "skipped" in outcome:
        return f"skipped ({outcome['skipped']})"
    return f"failed (exit {outcome['exit_code']}, see {outcome['log']})"


def summarise_scale(steps: dict[str, Any]) -> dict[str, Any]:
    """One scale's rows (per system) and ratios."""
    duck = _ok(steps.get("duckdb"))
    link = _ok(steps.get("project_link"))
    comparisons = duck["comparisons"]["total"] if duck else None
    comparisons_source = "exact blocking count" if duck else None
    if comparisons is None and link and link.get("comparisons_scored_by_job") is not None:
        comparisons, comparisons_source = link["comparisons_scored_by_job"], "the job's exact count of blocked pairs"
    accuracy = _ok(steps.get("evaluate")) or {}
    rows: dict[str, dict[str, Any]] = {}
    for system, step in STEP_OF.items():
        outcome = steps.get(step)
        result = _ok(outcome)
        if outcome is None:
            continue
        row: dict[str, Any] = {"system": LABELS[system], "status": "ok" if result else _status(outcome)}
        if result:
            total = result["wall_seconds"]
            records = result.get("records")
            row.update({"stage_seconds": result["stage_seconds"], "total_seconds": total, "records": records,
                        # the incremental run's records are the whole crosswalk; its work is the 1% appended
                        "records_per_second": records / total if records and total and system != "incremental"
                        else None,
                        "memory": outcome["memory"]})
            row["queries"] = result.get("spark_sql_executions")
            row["jobs"] = result.get("spark_jobs")
            if system not in ("project_train", "incremental"):
                row["comparisons_per_second"] = comparisons / total if comparisons is not None and total else None
                scoring = result["stage_seconds"].get("scoring") or result["stage_seconds"].get("predict")
                row["scoring_pairs_per_second"] = (comparisons / scoring if comparisons is not None and scoring
                                                   else None)
                row["edges"] = result.get("edges")
                row["clusters"] = result.get("clusters")
            if system in accuracy:
                row.update({k: accuracy[system][k] for k in ("precision", "recall", "f1")})
        rows[system] = row

    def total(system: str) -> float | None:
        return rows.get(system, {}).get("total_seconds")

    ratios = {}
    if total("project") and total("duckdb"):
        ratios["project_over_duckdb"] = total("project") / total("duckdb")
    if total("project") and total("incremental"):
        ratios["incremental_over_full"] = total("incremental") / total("project")
    if total("project") and total("spark_default"):
        ratios["spark_default_over_project"] = total("spark_default") / total("project")
    # Like for like: the project's blocking + scoring + clustering against the baselines' predict + cluster (the
    # project's total also reads and standardises raw Delta tables and writes its outputs; the baselines' do not).
    core = {"project": ("blocking", "scoring", "clustering"), "duckdb": ("predict", "cluster"),
            "spark_default": ("predict", "cluster")}
    core_seconds = {s: sum(rows[s]["stage_seconds"].get(k, 0.0) for k in ks) for s, ks in core.items()
                    if rows.get(s, {}).get("stage_seconds")}
    if core_seconds.get("project") and core_seconds.get("duckdb"):
        ratios["project_core_over_duckdb_core"] = core_seconds["project"] / core_seconds["duckdb"]
    if core_seconds.get("project") and core_seconds.get("spark_default"):
        ratios["spark_default_core_over_project_core"] = core_seconds["spark_default"] / core_seconds["project"]
    if "f1" in rows.get("project", {}) and "f1" in rows.get("duckdb", {}):
        ratios["f1_project_minus_duckdb"] = rows["project"]["f1"] - rows["duckdb"]["f1"]
    # Splink on DuckDB at the thresholds a careful user would try (issue 32): the best of them is the bar.
    baselines = {name: {k: accuracy[name][k] for k in ("precision", "recall", "f1")}
                 for name in accuracy if name.startswith("duckdb ")}
    variant_status = (duck or {}).get("variants") or {}
    if baselines and "f1" in rows.get("project", {}):
        best = max(baselines, key=lambda n: baselines[n]["f1"])
        ratios["best_baseline"] = best
        ratios["f1_project_minus_best_baseline"] = rows["project"]["f1"] - baselines[best]["f1"]
    records = {s: r.get("records") for s, r in rows.items() if r.get("records") is not None}
    return {"rows": rows, "ratios": ratios, "comparisons": comparisons, "comparisons_source": comparisons_source,
            "baselines": baselines, "baseline_status": {k: v for k, v in variant_status.items() if v != "ok"},
            "comparisons_per_rule": duck["comparisons"]["per_rule"] if duck else None,
            "same_records": len(set(records.values())) <= 1, "records": records,
            "data": _ok(steps.get("data")), "export_seconds": (_ok(steps.get("export")) or {}).get("export_seconds")}


def scaling(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[int, float]]:
    """Per system: time per record at each scale over time per record at the smallest scale it ran at."""
    out: dict[str, dict[int, float]] = {}
    for system in STEP_OF:
        if system == "incremental":  # its records are the whole crosswalk, its work the 1%: no per-record figure
            continue
        per_record = {}
        for scale in sorted(summaries):
            row = summaries[scale]["rows"].get(system, {})
            if row.get("total_seconds") and row.get("records"):
                per_record[scale] = row["total_seconds"] / row["records"]
        if len(per_record) > 1:
            first = per_record[min(per_record)]
            out[system] = {scale: value / first for scale, value in per_record.items()}
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _stages(row: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in row.get("stage_seconds", {}).items())


def _machine_memory_mib() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            return next(int(line.split()[1]) // 1024 for line in meminfo if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        return None


def checks(summaries: dict[int, dict[str, Any]], scale_ratio: dict[str, dict[int, float]]) -> list[str]:
    """The issue's targets, evaluated on whatever scales ran (a target whose scale did not run is not shown)."""
    lines = []

    def target(label: str, value: float | None, bound: float, *, at_most: bool, fmt: str = ".2f") -> None:
        if value is not None:
            met = value <= bound if at_most else value >= bound
            lines.append(f"- {label} = {value:{fmt}} (issue 23 target {'<=' if at_most else '>='} {bound:{fmt}}): "
                         f"{'met' if met else 'NOT met'}")

    for scale, s in sorted(summaries.items()):
        r, project = s["ratios"], s["rows"].get("project", {})
        if scale >= 1_000_000:
            target(f"{scale:,}: bold_spark blocking + scoring + clustering / DuckDB predict + cluster",
                   r.get("project_core_over_duckdb_core"), 4, at_most=True)
            target(f"{scale:,}: bold_spark link / DuckDB predict + cluster", r.get("project_over_duckdb"), 8,
                   at_most=True)
            target(f"{scale:,}: pairs scored per second in bold_spark's scoring stage",
                   project.get("scoring_pairs_per_second"), 500_000, at_most=False, fmt=",.0f")
            target(f"{scale:,}: incremental link of 1% new records / full link", r.get("incremental_over_full"), 0.2,
                   at_most=True)
        target(f"{scale:,}: default Splink-on-Spark predict + cluster / bold_spark link",
               r.get("spark_default_over_project"), 2 if scale >= 1_000_000 else 1, at_most=False)
        target(f"{scale:,}: Spark SQL queries of a full link", project.get("queries"), 40, at_most=True, fmt=",.0f")
    s10m = summaries.get(10_000_000)
    if s10m and "project" in s10m["rows"]:
        row, machine = s10m["rows"]["project"], _machine_memory_mib()
        peak = (row.get("memory") or {}).get("total_mib")
        lines.append(f"- 10M: bold_spark link {row['status']}, peak RSS {peak or '?'} MiB of the machine's "
                     f"{machine or '?'} MiB: {'met' if row['status'] == 'ok' else 'NOT met'}")
    for scale, s in sorted(summaries.items()):
        project = s["rows"].get("project", {})
        if "precision" in project:
            lines.append(f"- {scale:,}: bold_spark precision {project['precision']:.4f} (issue 32 target >= 0.995): "
                         f"{'met' if project['precision'] >= 0.995 else 'NOT met'}")
        if "f1_project_minus_best_baseline" in s["ratios"]:
            d = s["ratios"]["f1_project_minus_best_baseline"]
            lines.append(f"- {scale:,}: F1 bold_spark − best Splink-on-DuckDB baseline "
                         f"({s['ratios']['best_baseline']}) = {d:+.4f} (issue 32 target >= 0): "
                         f"{'met' if d >= 0 else 'NOT met'}")
        if "f1_project_minus_duckdb" in s["ratios"]:
            d = s["ratios"]["f1_project_minus_duckdb"]
            lines.append(f"- {scale:,}: F1 bold_spark − DuckDB = {d:+.4f} (target within 0.002): "
                         f"{'met' if abs(d) <= 0.002 else 'NOT met'}")
    return lines


def build_report(results: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    summaries = {int(scale): summarise_scale(steps) for scale, steps in results["steps"].items()}
    scale_ratio = scaling(summaries)
    linkage = results.get("linkage") or "(the config's)"
    out = [f"# Benchmark {results['timestamp']}", "",
           f"Config {results['conf']}, linkage {linkage}, "
           f"Spark master {results['spark_master']}, seed {results['seed']}; pairs kept at "
           f"match probability >= {results['edge_threshold']}, clustered at >= {results['cluster_threshold']} "
           "(the same for all three systems). The baselines link with the model bold_spark trained in the same run "
           "(no training of their own); each system ran in its own process. In local mode the driver JVM is "
           "also the executor (executor JVMs 0), so 'driver JVM' is all of Spark's memory. Default Spark: plain "
           f"session, Splink's jar, SparkAPI defaults, spark.driver.memory {results['default_spark_driver_memory'] or '1g (default)'}.",
           ""]
    for scale, s in sorted(summaries.items()):
        data = s["data"] or {}
        out += [f"## {scale:,} records (generated {_fmt(data.get('department_records'))} department records for "
                f"{_fmt(data.get('people'))} people; {'cached' if data.get('cached') else 'generated this run'})", "",
                f"Comparisons scored: {_fmt(s['comparisons'])} ({s['comparisons_source'] or 'unknown'}"
                + (f"; per rule {s['comparisons_per_rule']}" if s["comparisons_per_rule"] else "")
                + f"). Same records for every system: {s['same_records']} {s['records']}."
                + (f" Export of standardised records for the baselines: {_fmt(s['export_seconds'])} s (not counted)."
                   if s["export_seconds"] is not None else ""), "",
                "| system | status | seconds per stage | total s | records/s | comparisons/s | pairs/s in scoring | "
                "Spark SQL queries / jobs | peak RSS driver JVM MiB | peak RSS executor JVMs MiB | peak RSS python MiB "
                "| precision | recall | F1 |",
                "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in s["rows"].values():
            mem = row.get("memory", {})
            out.append(f"| {row['system']} | {row['status']} | {_stages(row)} | {_fmt(row.get('total_seconds'))} | "
                       f"{_fmt(row.get('records_per_second'), 0)} | {_fmt(row.get('comparisons_per_second'), 0)} | "
                       f"{_fmt(row.get('scoring_pairs_per_second'), 0)} | "
                       f"{_fmt(row.get('queries'))} / {_fmt(row.get('jobs'))} | "
                       f"{_fmt(mem.get('driver_jvm_mib'))} | {_fmt(mem.get('executor_jvm_mib'))} | "
                       f"{_fmt(mem.get('python_mib'))} | "
                       f"{_fmt(row.get('precision'), 4)} | {_fmt(row.get('recall'), 4)} | {_fmt(row.get('f1'), 4)} |")
        if s["baselines"]:
            out += ["", "Splink on DuckDB's predictions clustered again (untimed; the accuracy baselines):", "",
                    "| clustering | precision | recall | F1 |", "| --- | ---: | ---: | ---: |"]
            out += [f"| {name} | {_fmt(m['precision'], 4)} | {_fmt(m['recall'], 4)} | {_fmt(m['f1'], 4)} |"
                    for name, m in sorted(s["baselines"].items())]
            out += [f"| {name} | {status} | | |" for name, status in sorted(s["baseline_status"].items())]
        r = s["ratios"]
        out += ["", f"Ratios: bold_spark link / DuckDB {_fmt(r.get('project_over_duckdb'), 2)}; default Spark / "
                    f"bold_spark link {_fmt(r.get('spark_default_over_project'), 2)}; F1 bold_spark − DuckDB "
                    f"{_fmt(r.get('f1_project_minus_duckdb'), 4)}. Scoring core only (bold_spark blocking + scoring "
                    f"+ clustering against predict + cluster): bold_spark / DuckDB "
                    f"{_fmt(r.get('project_core_over_duckdb_core'), 2)}, default Spark / bold_spark "
                    f"{_fmt(r.get('spark_default_core_over_project_core'), 2)}. Incremental link of 1% new records / full "
                    f"link {_fmt(r.get('incremental_over_full'), 2)}.", ""]
    if scale_ratio:
        out += ["## Time per record relative to the smallest scale", "",
                "| system | " + " | ".join(f"{s:,}" for s in sorted(summaries)) + " |",
                "| --- |" + " ---: |" * len(summaries)]
        for system, ratios in scale_ratio.items():
            out.append(f"| {LABELS[system]} | " + " | ".join(_fmt(ratios.get(s), 2) for s in sorted(summaries)) + " |")
        out.append("")
    target_lines = checks(summaries, scale_ratio)
    if target_lines:
        out += ["## Targets", "", *target_lines, ""]
    summary = {"per_scale": {str(k): v for k, v in summaries.items()},
               "time_per_record_vs_smallest": {k: {str(s): v for s, v in d.items()} for k, d in scale_ratio.items()},
               "targets": target_lines}
    return "\n".join(out), summary
