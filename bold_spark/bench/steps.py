"""What each benchmark subprocess runs: one step, one fresh process, timings and counts back as JSON.

    python -m bold_spark.bench.steps STEP PARAMS_JSON RESULT_JSON

Each system runs in its own process so that its memory is measured alone and so that Splink's default
SparkSession (what a user without this project gets) never shares a JVM with the project's tuned one. Only the
work inside each system's timers is counted; JVM start-up, exports and evaluation are timed apart or not at all.
Results hold timings, counts and column names only, never record values.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KEYS = ["source_system", "source_record_id"]
DATA_MARKER = "_BENCH_COMPLETE.json"  # written last: a data folder without it is incomplete and regenerated
PARTITION_COLUMN = "extract_month"


class Timer:
    """Named wall-clock stages, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)


# --- configuration --------------------------------------------------------------------------------------------

def bench_config(conf: str, *, data_dir: str, work_dir: str, model_path: str, event_log_dir: str | None = None,
                 master: str | None = None, executor_memory: str | None = None, linkage: str | None = None):
    """The environment config with its sources pointed at the cached data and everything it writes (warehouse,
    checkpoints, scratch, state, model) under ``work_dir``, in an in-memory catalog (database ``bench``), so a bench run
    neither touches the persistent catalog nor needs its Derby lock. Spark and linkage settings stay as tuned;
    ``master`` (with ``executor_memory``) runs the project's steps on a cluster instead of the config's master;
    ``linkage`` replaces the config's linkage file (the same model with other blocking rules, say)."""
    from bold_spark.config import CatalogSettings, TableRef, load_config
    from bold_spark.errors import ConfigError

    config = load_config(conf, overrides={"linkage": linkage} if linkage else None)
    work = Path(work_dir)
    spark_conf = dict(config.spark.conf)
    if event_log_dir:
        Path(event_log_dir).mkdir(parents=True, exist_ok=True)
        spark_conf.update({"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(event_log_dir)})
    if executor_memory:
        spark_conf["spark.executor.memory"] = executor_memory
    sources = []
    for s in config.sources:
        path = Path(data_dir) / s.name
        if not path.is_dir():
            raise ConfigError(f"{s.file}: name: source {s.name!r} has no generated table in {data_dir} (the bench "
                              "needs sources named like the synthetic departments)")
        sources.append(dataclasses.replace(s, table=TableRef(path=str(path))))
    return dataclasses.replace(
        config,
        spark=dataclasses.replace(config.spark, metastore_dir=None, catalog=CatalogSettings(),
                                  warehouse_dir=work / "warehouse",
                                  checkpoint_dir=work / "checkpoints", conf=spark_conf,
                                  master=master or config.spark.master),
        output=dataclasses.replace(config.output, database="bench"),
        sources=tuple(sources),
        linkage=dataclasses.replace(config.linkage, model_path=Path(model_path)),
        scratch_dir=work / "scratch",
        state_dir=work / "state",
    )


def _config(p: dict[str, Any]):
    return bench_config(p["conf"], data_dir=p["data_dir"], work_dir=p["work_dir"], model_path=p["model_path"],
                        event_log_dir=p.get("event_log_dir"), master=p.get("master"),
                        executor_memory=p.get("executor_memory"), linkage=p.get("linkage"))


# --- data ------------------------------------------------------------------------------------------------------

def step_data(p: dict[str, Any]) -> dict[str, Any]:
    """Generate the six departments and the truth as Delta under ``data_dir`` unless a complete copy is there."""
    marker = Path(p["data_dir"]) / DATA_MARKER
    if marker.is_file():
        return {**json.loads(marker.read_text(encoding="utf-8")), "cached": True}
    from bold_spark.config import CatalogSettings, load_config
    from bold_spark.session import build_session
    from bold_spark.synthetic.generate import generate
    from bold_spark.synthetic.rates import load_rates

    config = load_config(p["conf"])
    spark = build_session(dataclasses.replace(
        config.spark, metastore_dir=None, catalog=CatalogSettings(), warehouse_dir=Path(p["work_dir"]) / "warehouse",
        checkpoint_dir=Path(p["work_dir"]) / "checkpoints"))
    timer = Timer()
    sample = generate(spark, scale=int(p["scale"]), seed=int(p["seed"]), rates=load_rates(p.get("rates")))
    rows: dict[str, int] = {}
    for source, df in {**sample.departments, "truth": sample.truth}.items():
        with timer.stage(source):
            writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
            if PARTITION_COLUMN in df.columns:  # one file per monthly extract, as departments deliver them
                writer = df.repartition(PARTITION_COLUMN).write.format("delta").mode("overwrite") \
                    .option("overwriteSchema", "true").partitionBy(PARTITION_COLUMN)
            writer.save(str(Path(p["data_dir"]) / source))
            rows[source] = spark.read.format("delta").load(str(Path(p["data_dir"]) / source)).count()
    result = {"scale": int(p["scale"]), "seed": int(p["seed"]), "people": sample.n_people, "rows": rows,
              "department_records": sum(v for k, v in rows.items() if k != "truth"),
              "generate_seconds": round(sum(timer.seconds.values()), 3)}
    marker.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return {**result, "cached": False}


# --- (a) the project's job -------------------------------------------------------------------------------------

def step_project_train(p: dict[str, Any]) -> dict[str, Any]:
    from bold_spark import pipeline
    from bold_spark.session import build_session

    config = _config(p)
    spark = build_session(config.spark)
    start = time.perf_counter()
    record = pipeline.train_model(spark, config)
    wall = time.perf_counter() - start
    return {"wall_seconds": round(wall, 3), "stage_seconds": record.stage_seconds, "model_id": record.model_id,
            "records": sum(s["records_accepted"] for s in record.inputs), "spark_master": record.spark_master}


def step_export(p: dict[str, Any]) -> dict[str, Any]:
    """The accepted, standardised records with the linkage columns, as parquet, for the two baselines: both then
    score exactly the records the project scores. Timed apart; not part of any system's time."""
    from bold_spark import pipeline
    from bold_spark.linkage.model import add_linkage_columns
    from bold_spark.session import build_session
    from bold_spark.standardise.person import accepted_records

    config = _config(p)
    spark = build_session(config.spark)
    timer = Timer()
    with timer.stage("export"):
        prepared = pipeline.prepare_input(spark, config)
        persons = accepted_records(prepared.standardised).transform(add_linkage_columns)
        persons.write.mode("overwrite").parquet(p["persons_path"])
        prepared.release()
    rows = spark.read.parquet(p["persons_path"]).count()
    return {"export_seconds": timer.seconds["export"], "records": rows, "columns": persons.columns}


def step_project_link(p: dict[str, Any]) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from bold_spark import pipeline
    from bold_spark.session import build_session

    config = _config(p)
    spark = build_session(config.spark)
    start = time.perf_counter()
    record = pipeline.link(spark, config)
    wall = time.perf_counter() - start
    # Untimed: the crosswalk in the shape every system's clusters are evaluated in.
    spark.table(config.output.qualified("crosswalk")).select(*KEYS, F.col("cluster_id").cast("string")) \
        .write.mode("overwrite").parquet(p["crosswalk_path"])
    return {"wall_seconds": round(wall, 3), "stage_seconds": record.stage_seconds,
            "records": record.crosswalk_rows, "edges": record.edges_recorded, "clusters": record.clusters,
            "comparisons_scored_by_job": record.comparisons_scored, "spark_master": record.spark_master,
            "spark_sql_executions": record.spark_sql_executions, "spark_jobs": record.spark_jobs,
            "stage_queries": record.stage_queries}


INCREMENT_BUCKETS = 100  # the increment is the records whose id hashes to bucket 0 of 100: 1%


def _incremental_config(p: dict[str, Any]):
    """The config of both incremental steps: sources copied under ``incremental_dir`` and a Derby catalog there,
    so the second step's fresh process finds the tables the first one wrote."""
    from bold_spark.config import CatalogSettings

    config = _config(p)
    root = Path(p["incremental_dir"])
    return dataclasses.replace(
        config,
        spark=dataclasses.replace(config.spark, metastore_dir=root / "metastore", catalog=CatalogSettings(),
                                  warehouse_dir=root / "warehouse",
                                  checkpoint_dir=root / "checkpoints"),
        scratch_dir=root / "scratch",
        sources=tuple(dataclasses.replace(s, table=dataclasses.replace(s.table, path=str(root / "sources" / s.name)))
                      for s in config.sources),
        state_dir=root / "state")


def step_project_incremental_base(p: dict[str, Any]) -> dict[str, Any]:
    """Issue 5's monthly delivery at scale, part 1 (untimed): a full link on 99% of every source, then 1% more
    records appended to each source. The sources are copied (the cached data is never modified)."""
    from pyspark.sql import functions as F

    from bold_spark import pipeline
    from bold_spark.session import build_session

    cached = _config(p)
    config = _incremental_config(p)
    spark = build_session(config.spark)
    increments = []
    for source, copy in zip(cached.sources, config.sources):
        raw = spark.read.format("delta").load(source.table.path)
        in_increment = F.abs(F.xxhash64(F.col(f"`{source.record_id}`").cast("string"))) % INCREMENT_BUCKETS == 0
        writer = raw.where(~in_increment).write.format("delta").mode("overwrite")
        (writer.partitionBy(PARTITION_COLUMN) if PARTITION_COLUMN in raw.columns else writer).save(copy.table.path)
        increments.append((raw.where(in_increment), copy.table.path))
    base = pipeline.link(spark, config)
    appended = 0
    for df, target in increments:
        writer = df.write.format("delta").mode("append")
        (writer.partitionBy(PARTITION_COLUMN) if PARTITION_COLUMN in df.columns else writer).save(target)
        appended += df.count()
    return {"records_appended": appended, "base_full_link_seconds": base.stage_seconds,
            "base_records": base.crosswalk_rows}


def step_project_incremental(p: dict[str, Any]) -> dict[str, Any]:
    """Part 2 (timed): ``jobs/link.py --incremental`` in a fresh process, as a scheduled run starts."""
    from bold_spark.incremental import link_incremental
    from bold_spark.session import build_session

    config = _incremental_config(p)
    spark = build_session(config.spark)
    start = time.perf_counter()
    record = link_incremental(spark, config)
    wall = time.perf_counter() - start
    base = json.loads(Path(p["base_result"]).read_text(encoding="utf-8"))
    return {"wall_seconds": round(wall, 3), "stage_seconds": record.stage_seconds, "records": record.crosswalk_rows,
            "edges": record.edges_recorded, "clusters": record.clusters, "message": record.message,
            "spark_sql_executions": record.spark_sql_executions, "spark_jobs": record.spark_jobs,
            "stage_queries": record.stage_queries, **base}


# --- the same model for the baselines ---------------------------------------------------------------------------

def _prediction_rules_sql(linkage) -> list[str]:
    """The configured prediction blocking rules as Spark SQL, as the project's job uses them."""
    from splink.internals.blocking_analysis import _as_blocking_rule

    from bold_spark.linkage.settings import build_blocking_rule

    return [_as_blocking_rule(build_blocking_rule(r), "spark").blocking_rule_sql for r in linkage.blocking_rules]


def _spark_to_duckdb(sql: str) -> str:
    import sqlglot

    out = sqlglot.transpile(sql, read="spark", write="duckdb")[0]
    # Functions sqlglot leaves with their Spark names: Splink's Spark jar registers jaro_winkler (DuckDB's built-in
    # is jaro_winkler_similarity, which Splink's own DuckDB dialect uses); Spark's arrays_overlap is list_has_any.
    return out.replace("JARO_WINKLER(", "jaro_winkler_similarity(").replace("ARRAYS_OVERLAP(", "list_has_any(")


def duckdb_model(model: dict[str, Any], rules_sql: list[str]) -> dict[str, Any]:
    """The trained Spark model's parameters unchanged, its SQL (levels, blocking rules) translated to DuckDB."""
    out = json.loads(json.dumps(model))
    out["sql_dialect"] = "duckdb"
    out["blocking_rules_to_generate_predictions"] = [
        {"blocking_rule": _spark_to_duckdb(r), "sql_dialect": "duckdb"} for r in rules_sql]
    for comparison in out["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level["sql_condition"].strip().upper() != "ELSE":
                level["sql_condition"] = _spark_to_duckdb(level["sql_condition"])
            if "sql_dialect" in level:
                level["sql_dialect"] = "duckdb"
    return out


def _load_model_and_rules(p: dict[str, Any]) -> tuple[dict[str, Any], list[str], Any]:
    config = _config(p)
    model = json.loads(Path(p["model_path"]).read_text(encoding="utf-8"))
    return model, _prediction_rules_sql(config.linkage), config.linkage


# --- (b) Splink on DuckDB ---------------------------------------------------------------------------------------

def step_duckdb(p: dict[str, Any]) -> dict[str, Any]:
    import duckdb
    from splink import DuckDBAPI, Linker

    model, rules_sql, linkage = _load_model_and_rules(p)
    settings = duckdb_model(model, rules_sql)
    timer = Timer()
    con = duckdb.connect()  # in memory, DuckDB's defaults (all cores, 80% of RAM)
    with timer.stage("load"):
        con.execute(f"create table persons as select * from read_parquet('{p['persons_path']}/*.parquet')").fetchall()
    db_api = DuckDBAPI(connection=con)
    with timer.stage("predict"):
        linker = Linker(db_api.register("persons"), settings, log_level=None)  # the loaded table
        predictions = linker.inference.predict(threshold_match_probability=linkage.edge_threshold)
    with timer.stage("cluster"):
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=linkage.cluster_threshold)
        clusters_n = con.execute(f"select count(distinct cluster_id) from {clusters.physical_name}").fetchall()[0][0]
    # Untimed: counts, the exact comparison count, and the clusters as a crosswalk for the evaluation.
    edges = con.execute(f"select count(*) from {predictions.physical_name}").fetchall()[0][0]
    records = con.execute("select count(*) from persons").fetchall()[0][0]
    comparisons = _count_comparisons(linker, rules_sql, _spark_to_duckdb)
    _copy_clusters(con, clusters, p["crosswalk_path"])
    variants = _baseline_variants(linker, con, predictions, p.get("variant_paths") or {}, p)
    return {"stage_seconds": timer.seconds, "wall_seconds": round(sum(timer.seconds.values()), 3),
            "records": records, "edges": edges, "clusters": clusters_n, "comparisons": comparisons,
            "duckdb_version": duckdb.__version__, "variants": variants}


def _copy_clusters(con, clusters, path: str) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    con.execute(f"copy (select source_system, cast(source_record_id as varchar) as source_record_id, "
                f"cast(cluster_id as varchar) as cluster_id from {clusters.physical_name}) "
                f"to '{path}/part-0.parquet' (format parquet)").fetchall()


def _baseline_variants(linker, con, predictions, paths: dict[str, str], p: dict[str, Any]) -> dict[str, str]:
    """The same predictions clustered as a careful Splink user would try (untimed): connected components and
    single best links (the config's one_record_per_person sources without a period declared duplicate-free) at
    each of the bench's thresholds. Returns each variant's status."""
    config = _config(p)
    duplicate_free = [e.source for e in config.constraints.one_record_per_person if e.per is None]
    status = {}
    for name, path in paths.items():
        head, _, threshold_text = name.rpartition(" ")  # "duckdb <method> <threshold>"
        method, threshold = head.partition(" ")[2], float(threshold_text)
        if method == "components":
            clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
                predictions, threshold_match_probability=threshold)
        elif duplicate_free:
            clusters = linker.clustering.cluster_using_single_best_links(
                predictions, duplicate_free_datasets=duplicate_free, threshold_match_probability=threshold)
        else:
            status[name] = "not run: no one_record_per_person source (without a period) is declared"
            continue
        _copy_clusters(con, clusters, path)
        status[name] = "ok"
    return status


def _count_comparisons(linker, rules_sql: list[str], translate: Callable[[str], str]) -> dict[str, Any]:
    """Splink's exact blocking count (pairs generated by the prediction rules, no sampling): the one definition
    of 'comparisons scored' used for every system."""
    start = time.perf_counter()
    counted = linker.blocking_analysis.count_comparisons_from_blocking_rules(
        [translate(r) for r in rules_sql], record_sample_proportion=1.0)
    return {"total": int(counted[-1]["cumulative_comparison_count"]),
            "per_rule": [int(c["marginal_comparison_count"]) for c in counted],
            "count_seconds": round(time.perf_counter() - start, 3)}


# --- (c) Splink on Spark with default settings ------------------------------------------------------------------

def step_spark_default(p: dict[str, Any]) -> dict[str, Any]:
    """What a user without this project writes: a plain session with Splink's jar, SparkAPI's defaults."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from splink import Linker, SparkAPI
    from splink.backends.spark import similarity_jar_location

    model, rules_sql, linkage = _load_model_and_rules(p)
    settings = {**model, "blocking_rules_to_generate_predictions": [
        {"blocking_rule": r, "sql_dialect": "spark"} for r in rules_sql]}
    builder = SparkSession.builder.master(p["master"]).appName("splink-default") \
        .config("spark.jars", similarity_jar_location()).config("spark.ui.enabled", "false")
    if p.get("driver_memory"):
        builder = builder.config("spark.driver.memory", p["driver_memory"])
    spark = builder.getOrCreate()
    spark.sparkContext.setCheckpointDir(str(Path(p["work_dir"]) / "default_checkpoints"))  # Splink requires one
    spark.sparkContext.setLogLevel("ERROR")
    timer = Timer()
    with timer.stage("load"):
        persons = spark.read.parquet(p["persons_path"])
    with timer.stage("predict"):
        db_api = SparkAPI(spark_session=spark)
        linker = Linker(db_api.register(persons), settings, log_level=None)
        predictions = linker.inference.predict(threshold_match_probability=linkage.edge_threshold)
    with timer.stage("cluster"):
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=linkage.cluster_threshold)
        clusters_n = clusters.as_spark_dataframe().agg(F.countDistinct("cluster_id")).first()[0]  # bounded
    edges = predictions.as_spark_dataframe().count()
    records = persons.count()
    clusters.as_spark_dataframe().select(*KEYS, F.col("cluster_id").cast("string")) \
        .write.mode("overwrite").parquet(p["crosswalk_path"])
    return {"stage_seconds": timer.seconds, "wall_seconds": round(sum(timer.seconds.values()), 3),
            "records": records, "edges": edges, "clusters": clusters_n,
            "spark_conf": {"master": spark.sparkContext.master,
                           "spark.driver.memory": spark.conf.get("spark.driver.memory", "1g (default)"),
                           "spark.sql.shuffle.partitions": spark.conf.get("spark.sql.shuffle.partitions"),
                           "break_lineage_method": db_api.break_lineage_method,
                           "num_partitions_on_repartition": db_api.num_partitions_on_repartition}}


# --- accuracy --------------------------------------------------------------------------------------------------

def step_evaluate(p: dict[str, Any]) -> dict[str, Any]:
    """Pairwise precision, recall and F1 of each system's clusters against the generator's truth (same records,
    same thresholds), with the project's own evaluation code."""
    from bold_spark.quality.evaluate import conform_truth, pairwise_metrics
    from bold_spark.session import build_session

    config = _config(p)
    spark = build_session(config.spark)
    truth = conform_truth(spark.read.format("delta").load(str(Path(p["data_dir"]) / "truth")))
    out = {}
    for system, path in p["crosswalks"].items():
        if Path(path).is_dir():
            out[system] = pairwise_metrics(spark.read.parquet(path), truth)
    return out


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "data": step_data, "project_train": step_project_train, "export": step_export,
    "project_link": step_project_link, "project_incremental_base": step_project_incremental_base,
    "project_incremental": step_project_incremental, "duckdb": step_duckdb,
    "spark_default": step_spark_default,
    "evaluate": step_evaluate,
}


def _deferred(module: str, name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A step of another bench module, imported when the step runs (those modules import this one)."""
    def step(p: dict[str, Any]) -> dict[str, Any]:
        import importlib

        return getattr(importlib.import_module(module), name)(p)
    return step


STEPS.update({
    "placeholder_data": _deferred("bold_spark.bench.placeholders", "step_placeholder_data"),  # issue 33
    "review_first": _deferred("bold_spark.bench.review_sim", "step_review_first"),  # the simulated review (issue 26)
    "review_round": _deferred("bold_spark.bench.review_sim", "step_review_round"),
})


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "splink"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    step, params, result_path = argv[0], json.loads(argv[1]), argv[2]
    result = STEPS[step](params)
    Path(result_path).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
