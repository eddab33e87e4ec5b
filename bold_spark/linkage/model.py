"""Splink on Spark: train a model once, then score with the saved model on every run.

The only module (with settings.py, engine.py and incremental_scoring.py) that talks to Splink. Splink's
intermediate tables are written under a scratch folder per run (the session's checkpoint dir) and removed by
``SplinkWorkspace.close`` once outputs are written.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window, functions as F

from bold_spark.broadcast import as_parquet, small_side
from bold_spark.config import LinkageSettings
from bold_spark.errors import ConfigError, DataQualityError
from bold_spark.linkage.columns import add_linkage_columns  # noqa: F401  (part of this module's API)
from bold_spark.linkage.settings import build_blocking_rule, build_settings

log = logging.getLogger(__name__)


def delete_path(spark: SparkSession, path: str) -> None:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(hadoop_path, True)


@contextmanager
def checkpoints_under(spark: SparkSession, path: str) -> Iterator[None]:
    """Reliable checkpoints of the block go to ``path``, which is deleted after it; the previous folder is restored.

    A checkpoint cuts a plan to a file scan: a run that derives its input from many reads and joins would
    otherwise have Spark analyse that whole lineage again for every query built on it.
    """
    previous = _swap_checkpoint_dir(spark, path)
    try:
        yield
    finally:
        delete_path(spark, path)
        if previous:
            spark.sparkContext.setCheckpointDir(previous)


def checkpointed_in(df: DataFrame, path: str) -> DataFrame:
    """``df`` checkpointed (reliably, now) in ``path``, a folder the caller deletes (``delete_path``) once nothing
    reads the frame; later checkpoints of the session go where they went before."""
    previous = _swap_checkpoint_dir(df.sparkSession, path)
    try:
        return df.checkpoint()
    finally:
        if previous:
            df.sparkSession.sparkContext.setCheckpointDir(previous)


def _swap_checkpoint_dir(spark: SparkSession, path: str) -> str | None:
    """Send the session's checkpoints to ``path``; returns the folder they went to before (None if unset)."""
    sc = spark.sparkContext
    previous = sc._jsc.sc().getCheckpointDir()
    sc.setCheckpointDir(path)
    return previous.get() if not previous.isEmpty() else None


@dataclass
class SplinkWorkspace:
    """A Splink linker over one prepared input, with its own scratch folder for intermediate tables."""

    spark: SparkSession
    linker: Any
    scratch_path: str
    previous_checkpoint_dir: str | None
    input_view: str

    def close(self) -> None:
        """Drop Splink's temp views and delete its intermediate files (Splink never deletes them itself)."""
        try:
            self.linker.table_management.delete_tables_created_by_splink_from_db()
            self.spark.catalog.dropTempView(self.input_view)
        finally:
            delete_path(self.spark, self.scratch_path)
            if self.previous_checkpoint_dir:
                self.spark.sparkContext.setCheckpointDir(self.previous_checkpoint_dir)


def name_safe(run_id: str) -> str:
    """``run_id`` as part of a table or view name."""
    return "".join(ch if ch.isalnum() else "_" for ch in run_id)


def open_workspace(spark: SparkSession, persons: DataFrame, *, settings: Any, linkage: LinkageSettings,
                   scratch_dir: str, run_id: str) -> SplinkWorkspace:
    """Register ``persons`` (canonical + linkage columns) with Splink on Spark under a per-run scratch folder."""
    from splink import Linker, SparkAPI

    scratch_path = f"{str(scratch_dir).rstrip('/')}/{run_id}"
    previous_dir = _swap_checkpoint_dir(spark, scratch_path)
    db_api = SparkAPI(spark_session=spark, break_lineage_method=linkage.break_lineage_method,
                      num_partitions_on_repartition=max(2, int(spark.conf.get("spark.sql.shuffle.partitions"))))
    view = "bold_persons_" + name_safe(run_id)
    table = db_api.register(persons, dataset_display_name="persons", table_name=view)
    linker = Linker(table, settings, log_level=None)
    return SplinkWorkspace(spark, linker, scratch_path, previous_dir, view)


def settings_for_training(linkage: LinkageSettings, *, where: str) -> Any:
    return build_settings(comparisons=linkage.comparisons, blocking_rules=linkage.blocking_rules, where=where)


RETRAIN = ("retrain it: `make train` (jobs/train.py), or jobs/link.py --train-if-missing, which also retrains a "
           "model that no longer fits its configuration")


def load_model_json(model_path: Path) -> dict[str, Any]:
    """The saved model as a dict, or a ConfigError that names the file and says to retrain."""
    if not model_path.is_file():
        raise ConfigError(f"linkage.model_path: no trained model at {model_path}; run jobs/train.py first "
                          "(or jobs/link.py --train-if-missing)")
    try:
        model = json.loads(model_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"linkage.model_path: {model_path} is not valid JSON (line {exc.lineno}, column "
                          f"{exc.colno}: {exc.msg}); {RETRAIN}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"linkage.model_path: {model_path} is not UTF-8 text; {RETRAIN}") from None
    if not isinstance(model, dict) or not isinstance(model.get("comparisons"), list):
        raise ConfigError(f"linkage.model_path: {model_path} is not a Splink model (it has no list of "
                          f"comparisons); {RETRAIN}")
    return model


def _level_signature(level: Mapping[str, Any]) -> tuple:
    """What decides a level's score apart from its trained m and u: its condition (spacing, quoting and case
    aside), whether it is the null level, its term-frequency column, and any m or u the configuration fixes."""
    condition = " ".join(str(level.get("sql_condition", "")).replace("`", "").split()).lower()
    fixed = tuple(round(float(level[p]), 12) if level.get(f"fix_{p}") and level.get(p) is not None else None
                  for p in ("m_probability", "u_probability"))
    return condition, bool(level.get("is_null_level", False)), level.get("tf_adjustment_column"), fixed


def model_misfit(linkage: LinkageSettings, model: Mapping[str, Any] | None = None) -> list[str]:
    """How the saved model's comparisons differ from the configured ones, in words (empty when it fits).
    ``model``: the model already loaded from ``linkage.model_path``.

    Pure Python (Splink builds the configured settings as SQL text): runs before Spark starts. Prediction blocking
    rules and thresholds may differ: they come from the configuration on every run.
    """
    model = model if model is not None else load_model_json(linkage.model_path)
    configured = build_settings(comparisons=linkage.comparisons, blocking_rules=linkage.blocking_rules,
                                where=str(linkage.file or "linkage")).create_settings_dict("spark")["comparisons"]
    trained = {c.get("output_column_name"): c for c in model["comparisons"] if isinstance(c, Mapping)}
    differences = []
    for i, comparison in enumerate(configured):
        name = comparison["output_column_name"]
        if name not in trained:
            differences.append(f"comparisons[{i}] ({name}) is not in the model")
            continue
        want = [_level_signature(level) for level in comparison["comparison_levels"]]
        have = [_level_signature(level) for level in trained[name].get("comparison_levels", [])]
        if len(want) != len(have):
            differences.append(f"comparisons[{i}] ({name}) has {len(want)} levels, the model's {len(have)}")
        elif changed := [str(j) for j, (a, b) in enumerate(zip(want, have)) if a != b]:
            differences.append(f"comparisons[{i}] ({name}): level {', '.join(changed)} differs (condition, "
                               "term frequencies or a fixed m/u)")
    names = {c["output_column_name"] for c in configured}
    if extra := sorted(str(n) for n in trained if n not in names):
        differences.append(f"the model has comparisons the configuration does not: {', '.join(extra)}")
    return differences


def reasons_to_train(linkage: LinkageSettings) -> list[str]:
    """Why ``--train-if-missing`` must train first: no model, a file that is not a model, or a model that does not
    fit the configured comparisons (empty when the saved model can be used)."""
    if not linkage.model_path.is_file():
        return [f"no model at {linkage.model_path}"]
    try:
        return model_misfit(linkage)
    except ConfigError as exc:
        return [str(exc)]


def check_model_fits(linkage: LinkageSettings, model: Mapping[str, Any] | None = None) -> None:
    """Stop (ConfigError, exit 2) when the saved model was trained with other comparisons than configured."""
    differences = model_misfit(linkage, model)
    if differences:
        raise ConfigError(f"{linkage.file or 'linkage'}: comparisons: the model at {linkage.model_path} does not fit "
                          f"this configuration: {'; '.join(differences)}; {RETRAIN}")


def agreement_conditions(model: Mapping[str, Any], comparisons: Sequence[str]) -> dict[str, str]:
    """Per named comparison, Spark SQL over ``<column>_l``/``<column>_r`` that is true when the pair agrees in any
    way the model knows (any level but the last, 'all other comparisons'; the null level counts as agreeing)."""
    trained = {c.get("output_column_name"): c for c in model["comparisons"] if isinstance(c, Mapping)}
    out = {}
    for name in comparisons:
        if name not in trained:
            raise ConfigError(f"constraints.must_agree: comparison {name!r} is not in the model; {RETRAIN}")
        levels = [str(level["sql_condition"]) for level in trained[name]["comparison_levels"]
                  if str(level.get("sql_condition", "")).strip().upper() != "ELSE"]
        out[name] = " OR ".join(f"({condition})" for condition in levels) or "false"
    return out


def register_similarity_functions(spark: SparkSession) -> None:
    """Splink's string-similarity functions (jaro_winkler...) as Spark SQL functions, as its SparkAPI does."""
    from splink import SparkAPI

    SparkAPI(spark_session=spark)


def settings_from_model(model_path: Path, linkage: LinkageSettings) -> Any:
    """Load a trained model that fits the configuration; prediction blocking rules come from the current config,
    parameters from the model."""
    from splink import SettingsCreator

    model = load_model_json(model_path)
    check_model_fits(replace(linkage, model_path=model_path), model)
    log.info("model %s: %s", model_path, training_provenance(model_path))
    creator = SettingsCreator.from_path_or_dict(model)
    creator.blocking_rules_to_generate_predictions = [build_blocking_rule(r) for r in linkage.blocking_rules]
    # Keep each pair's comparison levels (gamma_ columns): match_edges records why a pair scored as it did. Splink
    # keeps them only with the compared columns (retain_matching_columns); edges_of selects ids, weights and levels.
    creator.retain_matching_columns = True
    return creator


LARGEST_BLOCKS = 3  # how many of each rule's biggest blocks are measured and recorded (sizes only)


def _rule_label(spec: Any) -> str:
    """How a configured rule is named in messages and run records: its columns or its SQL, never data."""
    return spec if isinstance(spec, str) else "[" + ", ".join(spec) + "]"


@dataclass(frozen=True)
class RuleBlocks:
    """What one blocking rule's equality keys make: the pairs they generate and the biggest blocks' sizes."""

    pairs: int  # before removing pairs an earlier rule generates; an upper bound if the rule has other conditions
    largest: list[dict[str, int]]  # records on each side and pairs, biggest first


def _equi_join_conditions(specs: list[Any]) -> list[list[tuple[str, str]]]:
    from splink.internals.blocking_analysis import _as_blocking_rule

    return [_as_blocking_rule(build_blocking_rule(spec), "spark")._equi_join_conditions for spec in specs]


def blocking_rule_sql(specs: Sequence[Any]) -> list[str]:
    """Each configured rule as the Spark SQL Splink joins on (``l.<column>`` / ``r.<column>``): true on a pair row
    with structs ``l`` and ``r`` exactly when the rule generates that pair (engine.py filters its pairs so too)."""
    from splink.internals.blocking_analysis import _as_blocking_rule

    return [_as_blocking_rule(build_blocking_rule(spec), "spark").blocking_rule_sql for spec in specs]


def _same_on_both_sides(conds: list[tuple[str, str]]) -> bool:
    return bool(conds) and all(l_expr.strip() == r_expr.strip() for l_expr, r_expr in conds)


def _rule_keys(conds: list[tuple[str, str]]) -> tuple[list[Column], Column]:
    """A rule's key expressions (its two sides use the same ones) and whether all of them are present."""
    keys = [F.expr(l_expr) for l_expr, _ in conds]
    return keys, reduce(lambda a, b: a & b, [k.isNotNull() for k in keys])


def _block_key(rule: int, conds: list[tuple[str, str]]) -> Column:
    """(rule, key) of a record under a rule whose sides use the same key expressions; null if a key is null."""
    keys, present = _rule_keys(conds)
    # A separator no key contains keeps keys distinct.
    return F.when(present, F.struct(F.lit(rule).alias("rule"),
                                    F.concat_ws("\u241f", *[k.cast("string") for k in keys]).alias("key")))


def _block_hash(rule: int, conds: list[tuple[str, str]]) -> Column:
    """A 64-bit hash of a record's ``_block_key``, from the key values as they are (no text is built); null if a
    key is null. Two records in one block always share it; a collision only adds a record to look at."""
    keys, present = _rule_keys(conds)
    return F.when(present, F.xxhash64(F.lit(rule), *keys))


def blocking_candidates(others: DataFrame, changed: DataFrame, specs: list[Any], *, changed_rows: int) -> DataFrame:
    """The records of ``others`` that share a block with some record of ``changed`` (``changed_rows`` of them) under
    at least one rule: every pair the rules can generate between the two has its ``others`` side here. ``others``
    whole when a rule's equality keys differ between its sides or it has none (then every record may pair).

    Each record's keys probe the changed records' keys (broadcast when few); only the ids of the records that share
    one are shuffled, to list a record that shares several once, and the records are then taken by id (a second
    pass). Deduplicating whole records instead sorts every column of them: slower at a million records.
    """
    conditions = _equi_join_conditions(specs)
    if not all(_same_on_both_sides(conds) for conds in conditions):
        return others
    ids = ["source_system", "source_record_id"]
    keys = F.array(*[_block_hash(i, conds) for i, conds in enumerate(conditions)])
    changed_keys = changed.select(F.explode(keys).alias("_bold_block")).where(F.col("_bold_block").isNotNull())
    sharing = (others.select(*ids, F.explode(keys).alias("_bold_block"))
               .join(small_side(changed_keys.distinct(), changed_rows * len(conditions)), "_bold_block",
                     how="left_semi")
               .select(*ids).distinct().checkpoint())
    return others.join(small_side(sharing, sharing.count()), ids, how="left_semi")


def block_statistics(persons: DataFrame, specs: list[Any], *, n: int = LARGEST_BLOCKS) -> list[RuleBlocks]:
    """Per rule, from the sizes of the blocks its equality keys make in ``persons``: the pairs they generate and
    the ``n`` biggest blocks. Rules whose two sides use the same key expressions (the usual case) share one
    aggregate, so the cost does not grow with the number of rules; key values never leave the executors.

    No join is run, so this is safe to call before a rule that would explode. A record with a null key is in no
    block (null never equals null in the join).
    """
    conditions = _equi_join_conditions(specs)
    out: list[RuleBlocks] = [RuleBlocks(0, []) for _ in specs]
    keyed, shapes = [], []
    for i, conds in enumerate(conditions):
        if not conds:  # no equality: one block of everything
            total = persons.count()
            pairs = total * (total - 1) // 2
            out[i] = RuleBlocks(pairs, [{"records_l": total, "records_r": total, "pairs": pairs}])
        elif _same_on_both_sides(conds):
            keyed.append(_block_key(i, conds))
        else:  # l.a = r.b: a block is the records of each side that share the key
            def sizes(exprs: list[str], name: str) -> DataFrame:
                return persons.select(*[F.expr(e).alias(f"key_{j}") for j, e in enumerate(exprs)]).dropna() \
                    .groupBy(*[f"key_{j}" for j in range(len(exprs))]).agg(F.count(F.lit(1)).alias(name))
            blocks = sizes([c[0] for c in conds], "records_l").join(
                sizes([c[1] for c in conds], "records_r"), on=[f"key_{j}" for j in range(len(conds))], how="inner")
            shapes.append(blocks.select(F.lit(i).alias("rule"), "records_l", "records_r",
                                        (F.col("records_l") * F.col("records_r")).alias("pairs")))
    if keyed:
        sizes = persons.select(F.explode(F.array(*keyed)).alias("k")).where(F.col("k").isNotNull()) \
            .groupBy("k.rule", "k.key").agg(F.count(F.lit(1)).alias("records"))
        shapes.append(sizes.select("rule", F.col("records").alias("records_l"), F.col("records").alias("records_r"),
                                   F.expr("records * (records - 1) div 2").alias("pairs")))
    if shapes:
        for rule, blocks in _largest_blocks(reduce(DataFrame.unionByName, shapes), n).items():
            out[rule] = blocks
    return out


def _largest_blocks(blocks: DataFrame, n: int) -> dict[int, RuleBlocks]:
    """Each rule's pairs and ``n`` biggest blocks, from one row per block (rule, records_l, records_r, pairs).

    Ranked from a histogram of block shapes (how many blocks of each size), not the blocks themselves: a rule
    has millions of blocks nationally but few distinct sizes, and a window over all of one rule's blocks sorts
    them in one task (out of heap at 10,000,000 records with a 6 GiB driver).
    """
    histogram = blocks.groupBy("rule", "records_l", "records_r", "pairs").agg(F.count(F.lit(1)).alias("blocks"))
    by_rule = Window.partitionBy("rule")
    bigger_first = by_rule.orderBy(F.col("pairs").desc(), F.col("records_l").desc(), F.col("records_r").desc())
    ranked = histogram.select(
        "*", F.sum(F.col("pairs") * F.col("blocks")).over(by_rule).alias("rule_pairs"),
        F.coalesce(F.sum("blocks").over(bigger_first.rowsBetween(Window.unboundedPreceding, -1)), F.lit(0))
        .alias("bigger_blocks"))
    rows = ranked.where(F.col("bigger_blocks") < n).orderBy("rule", "bigger_blocks") \
        .collect()  # bounded: at most n rows per rule, counts only (each row is one block size or more)
    out: dict[int, RuleBlocks] = {}
    for row in rows:
        shape = {k: int(row[k]) for k in ("records_l", "records_r", "pairs")}
        rule = out.get(row["rule"], RuleBlocks(int(row["rule_pairs"]), []))
        out[row["rule"]] = RuleBlocks(rule.pairs, rule.largest + [shape] * min(row["blocks"], n - row["bigger_blocks"]))
    return out


def estimate_blocking(persons: DataFrame, linkage: LinkageSettings, *,
                      top_blocks: int = LARGEST_BLOCKS) -> list[dict[str, Any]]:
    """Per prediction blocking rule, in order: the comparisons its keys generate, the running total (an upper
    bound of the distinct pairs scored: a pair two rules find is counted by both) and its largest blocks' sizes.

    One aggregate over block sizes, no join: cheap at any scale and safe before a rule that would explode. Counts
    only, so the result can go in the run record.
    """
    stats = block_statistics(persons, list(linkage.blocking_rules), n=top_blocks)
    out, running = [], 0
    for spec, rule in zip(linkage.blocking_rules, stats):
        running += rule.pairs
        out.append({"rule": _rule_label(spec), "rule_comparisons": rule.pairs, "cumulative_comparisons": running,
                    "largest_blocks": rule.largest})
    return out


def enforce_comparison_budget(estimates: list[dict[str, Any]], linkage: LinkageSettings) -> int:
    """Stop before scoring when a rule adds more than ``max_comparisons_per_rule`` or brings the total over
    ``max_comparisons``; the error names the rule, its estimate and its biggest blocks' sizes. Returns the total."""
    for i, e in enumerate(estimates):
        over = []
        per_rule = linkage.max_comparisons_per_rule
        if per_rule is not None and e["rule_comparisons"] > per_rule:
            over.append(f"over linkage.max_comparisons_per_rule = {per_rule:,.0f}")
        if e["cumulative_comparisons"] > linkage.max_comparisons:
            over.append(f"bringing the total to {e['cumulative_comparisons']:,}, over linkage.max_comparisons = "
                        f"{linkage.max_comparisons:,.0f}")
        if over:
            raise _over_budget(f"linkage.blocking_rules[{i}]", e["rule"], e["rule_comparisons"], over,
                               e["largest_blocks"])
    total = estimates[-1]["cumulative_comparisons"] if estimates else 0
    log.info("blocking: at most %s comparisons from %d rules; per rule: %s", f"{total:,}", len(estimates),
             ", ".join(f"{e['rule']} {e['rule_comparisons']:,} (largest block "
                       f"{e['largest_blocks'][0]['records_l'] if e['largest_blocks'] else 0:,} records)"
                       for e in estimates))
    return total


def _over_budget(key: str, rule: str, pairs: int, over: list[str], largest: list[dict[str, int]]) -> DataQualityError:
    """The stop of a guardrail: the rule, its estimate, the caps it passes and its largest blocks (sizes only)."""
    blocks = ", ".join(f"{b['records_l']:,} records ({b['pairs']:,} pairs)" for b in largest)
    return DataQualityError(
        f"{key}: rule {rule} generates {pairs:,} comparisons, {' and '.join(over)}; its largest blocks: "
        f"{blocks or 'none'}. Tighten the rule (add a column to block on) or raise the cap; one very large block "
        "is often a placeholder value many records share (a date of birth such as 1900-01-01)")


def check_training_budget(persons: DataFrame, linkage: LinkageSettings) -> list[dict[str, Any]]:
    """Stop before training when an EM or deterministic rule would generate more than
    ``linkage.training.max_comparisons`` pairs (each rule runs on its own, so each is capped alone). The same one
    aggregate over block sizes as the prediction guardrail, no join: seconds, where the rule itself would run for
    hours. Returns per rule its key, label and estimate."""
    training = linkage.training
    keyed = [(f"linkage.training.{key}[{i}]", rule) for key, rules in
             (("deterministic_rules", training.deterministic_rules), ("em_blocking_rules", training.em_blocking_rules))
             for i, rule in enumerate(rules)]
    stats = block_statistics(persons, [rule for _, rule in keyed])
    cap = training.max_comparisons if training.max_comparisons is not None else linkage.max_comparisons
    for (key, rule), blocks in zip(keyed, stats):
        if blocks.pairs > cap:
            raise _over_budget(key, _rule_label(rule), blocks.pairs,
                               [f"over linkage.training.max_comparisons = {cap:,.0f}"], blocks.largest)
    log.info("training rules: %s", ", ".join(f"{_rule_label(rule)} {blocks.pairs:,}"
                                             for (_, rule), blocks in zip(keyed, stats)))
    return [{"key": key, "rule": _rule_label(rule), "rule_comparisons": blocks.pairs}
            for (key, rule), blocks in zip(keyed, stats)]


def check_comparison_budget(persons: DataFrame, linkage: LinkageSettings, *,
                            estimates: list[dict[str, Any]] | None = None) -> int:
    """Estimate (unless ``estimates`` from estimate_blocking are given) and enforce the comparison caps before
    scoring; returns the estimated total. Pass the estimates to keep them for the run record."""
    if estimates is None:
        estimates = estimate_blocking(persons, linkage)
    return enforce_comparison_budget(estimates, linkage)


def block_pairs(workspace: SplinkWorkspace) -> int:
    """Run the prediction blocking (the joins predict would run) and keep the pairs for predict; returns the
    exact number of distinct pairs that will be scored. Call after the budget check, never before."""
    blocked = workspace.linker.inference.compute_blocked_pairs_for_predict()
    return blocked.as_spark_dataframe().count()


def training_sample(persons: DataFrame, *, records: int, max_records: int | None) -> DataFrame:
    """At most about ``max_records`` of ``persons``, chosen by a hash of the record key (the same records every
    time). Both ends of a pair must be chosen, so matches and non-matches shrink alike and the estimated prior
    match probability stays that of the whole input."""
    if max_records is None or records <= max_records:
        return persons
    per_million = int(1_000_000 * max_records / records)
    log.info("training on a sample of about %d of %d records (linkage.training.max_records)", max_records, records)
    return persons.where(F.abs(F.xxhash64("source_system", "source_record_id")) % 1_000_000 < per_million)


def train(workspace: SplinkWorkspace, linkage: LinkageSettings) -> dict[str, Any]:
    """Estimate the model: prior from deterministic rules, u by random sampling, m by EM on several rules."""
    training = linkage.training
    check_training_budget(workspace.spark.table(workspace.input_view), linkage)
    linker = workspace.linker
    linker.training.estimate_probability_two_random_records_match(
        [build_blocking_rule(r) for r in training.deterministic_rules], recall=training.recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=training.u_max_pairs, seed=training.seed)
    for rule in training.em_blocking_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(build_blocking_rule(rule))
    return linker.misc.save_model_to_json()


def save_model(model: Mapping[str, Any], metadata: Mapping[str, Any], path: Path) -> str:
    """Write the model JSON and a sidecar describing what it was trained on; atomic per file. Returns its id."""
    body = json.dumps(model, indent=2, sort_keys=True)
    model_id = hashlib.sha256(body.encode()).hexdigest()[:16]
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in ((path, body), (metadata_path(path), json.dumps({**metadata, "model_id": model_id},
                                                                         indent=2, default=str))):
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    return model_id


def metadata_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".meta.json")


def prediction_settings(linkage: LinkageSettings) -> dict[str, Any]:
    """What a run may change without retraining (scoring does not depend on it), as the model's sidecar records it
    at training and ``allowed_differences`` compares it on every run."""
    return {"blocking_rules": [_rule_label(rule) for rule in linkage.blocking_rules],
            "edge_threshold": linkage.edge_threshold, "cluster_threshold": linkage.cluster_threshold}


def _training_record(model_path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(metadata_path(model_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def allowed_differences(linkage: LinkageSettings, meta: Mapping[str, Any] | None) -> list[str]:
    """How this run's prediction rules and thresholds differ from those the model was trained with, in words
    (rules by their columns or SQL, never data). Allowed, since they do not change a pair's score, but recorded in
    bold.link_runs so a changed result can be traced to them. Empty when the sidecar does not say."""
    trained = (meta or {}).get("prediction_settings")
    if not isinstance(trained, Mapping):
        return []
    now = prediction_settings(linkage)
    differences = []
    before, after = list(trained.get("blocking_rules") or []), now["blocking_rules"]
    if added := [rule for rule in after if rule not in before]:
        differences.append(f"blocking_rules added since training: {', '.join(added)}")
    if removed := [rule for rule in before if rule not in after]:
        differences.append(f"blocking_rules removed since training: {', '.join(removed)}")
    for key in ("edge_threshold", "cluster_threshold"):
        if trained.get(key) is not None and float(trained[key]) != now[key]:
            differences.append(f"{key} {now[key]} (trained with {trained[key]})")
    return differences


@dataclass(frozen=True)
class ModelInUse:
    """The model a link or incremental run scores with, and what bold.link_runs records about it."""

    settings: Any  # Splink's SettingsCreator: the model's parameters, this configuration's prediction rules
    model_id: str
    trained_by_run: str | None  # the training run (bold.link_runs job "train"), from the sidecar
    training_inputs: list[dict[str, Any]]  # the sources it was trained on: table, Delta version, records read
    differences: list[str]  # allowed_differences


def model_in_use(linkage: LinkageSettings) -> ModelInUse:
    """Load the saved model (stopping when it does not fit the comparisons) and say what differs, allowed, from its
    training: other prediction rules or thresholds; other sources or Delta versions are logged (the scheduled-run
    pattern trains monthly and links every delivery)."""
    settings = settings_from_model(linkage.model_path, linkage)
    meta = _training_record(linkage.model_path)
    differences = allowed_differences(linkage, meta)
    if differences:
        log.info("model %s: allowed differences from its training: %s", linkage.model_path, "; ".join(differences))
    inputs = [{key: item.get(key) for key in ("source_system", "table", "delta_version", "records_read")}
              for item in (meta or {}).get("inputs", []) if isinstance(item, Mapping)]
    return ModelInUse(settings, model_id_of(linkage.model_path), (meta or {}).get("run_id"), inputs, differences)


def training_provenance(model_path: Path) -> str:
    """What the model was trained on, from its sidecar: run, time, and each source's table, Delta version and
    records read (no values). A model trained on other sources or older versions is allowed: the scheduled-run
    pattern trains monthly and links every delivery."""
    try:
        meta = json.loads(metadata_path(model_path).read_text(encoding="utf-8"))
        sources = ", ".join(f"{i['source_system']} (version {i['delta_version']}, {i['records_read']:,} records)"
                            for i in meta.get("inputs", []))
        return f"trained by run {meta.get('run_id')} at {meta.get('trained_at')} on {sources or 'no recorded sources'}"
    except (OSError, ValueError, KeyError, TypeError):
        return "no readable training record beside it (.meta.json)"


def model_id_of(model_path: Path) -> str:
    body = json.dumps(json.loads(model_path.read_text(encoding="utf-8")), indent=2, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def predict_edges(workspace: SplinkWorkspace, *, threshold: float | None) -> DataFrame:
    """Scored pairs at or above ``threshold``, as ``edges_of``."""
    return edges_of(workspace.linker.inference.predict(threshold_match_probability=threshold).as_spark_dataframe())


def edges_of(predictions: DataFrame) -> DataFrame:
    """Splink's scored pairs as edges: ids of both sides, weight, probability, comparison levels (gamma_ columns)."""
    gammas = [c for c in predictions.columns if c.startswith("gamma_")]
    levels = (F.create_map(*[x for g in gammas for x in (F.lit(g[len("gamma_"):]), F.col(g).cast("int"))])
              if gammas else F.lit(None).cast("map<string,int>"))
    return predictions.select(
        F.col("source_system_l"), F.col("source_record_id_l"),
        F.col("source_system_r"), F.col("source_record_id_r"),
        F.col("match_weight").cast("double").alias("match_weight"),
        F.col("match_probability").cast("double").alias("match_probability"),
        levels.alias("comparison_levels"),
    )


class Scoring:
    """Scores one run's records with the saved model, as ``linkage.scoring`` says: by the engine (one Spark plan,
    engine.py) or by Splink's own predict on a workspace (the reference). Either way the run's checkpoints go to
    its scratch folder until ``close``, which deletes it: call it once the run's outputs are written."""

    def __init__(self, spark: SparkSession, persons: DataFrame, *, settings: Any, linkage: LinkageSettings,
                 scratch_dir: str, run_id: str) -> None:
        self.spark, self.persons, self.settings, self.linkage, self.run_id = spark, persons, settings, linkage, run_id
        self.workspace: SplinkWorkspace | None = None
        self._scored: Any = None  # engine.ScoredPairs once edges are asked for
        self._blocked_pairs: int | None = None
        self.scratch_path = f"{str(scratch_dir).rstrip('/')}/{run_id}"
        self.by_engine = linkage.scoring == "engine"
        if self.by_engine:
            from bold_spark.linkage.engine import engine_limits

            self._engine_settings = settings.get_settings("spark")  # Splink's Settings object, built once
            limits = engine_limits(self._engine_settings)
            if limits:
                log.warning("linkage.scoring: engine cannot score this model (%s); scoring with Splink's predict "
                            "instead", "; ".join(limits))
                self.by_engine = False
        if self.by_engine:
            self._previous_checkpoint_dir = _swap_checkpoint_dir(spark, self.scratch_path)
        else:
            self.workspace = open_workspace(spark, persons, settings=settings, linkage=linkage,
                                            scratch_dir=scratch_dir, run_id=run_id)

    def edges(self, *, threshold: float | None, changed: DataFrame | None = None, changed_rows: int = 0
              ) -> DataFrame:
        """Scored pairs at or above ``threshold`` (every blocked pair when None), as ``edges_of``; with ``changed``
        (ids of ``changed_rows`` records), only the pairs with a changed side."""
        if self.by_engine:
            from bold_spark.linkage import engine

            self._scored = engine.score(self.persons, self._engine_settings, threshold=threshold,
                                        changed=changed, changed_rows=changed_rows)
            # Written once and read back, as Splink's predict does with its output: every later query of the run
            # (clustering, quality, writing, report) then plans a file scan, not the scoring plan's thousands of
            # expressions again (minutes of driver time at 20,000 records, although the rows were cached).
            return as_parquet(edges_of(self._scored.predictions), f"{self.scratch_path}/bold_edges")
        workspace = self.workspace
        assert workspace is not None
        if changed is None:
            self._blocked_pairs = block_pairs(workspace)
            return predict_edges(workspace, threshold=threshold)
        from bold_spark.linkage.incremental_scoring import predict_edges_touching

        keys = ["source_system", "source_record_id"]
        changed_persons = as_parquet(self.persons.join(changed, keys, how="left_semi"),
                                     f"{workspace.scratch_path}/bold_changed")
        unchanged = self.persons.join(changed, keys, how="left_anti")
        return predict_edges_touching(workspace, changed_persons, unchanged, changed_rows=changed_rows,
                                      blocking_rules=list(self.linkage.blocking_rules), threshold=threshold,
                                      run_id=self.run_id)

    def pairs_scored(self) -> int | None:
        """The distinct pairs the blocking rules generated (and the model scored); known once an action has run
        on the edges. None for Splink's scoring of changed records, which does not count them."""
        return self._scored.pairs_scored() if self._scored is not None else self._blocked_pairs

    def close(self) -> None:
        if self.workspace is not None:
            self.workspace.close()
            return
        delete_path(self.spark, self.scratch_path)
        if self._previous_checkpoint_dir:
            self.spark.sparkContext.setCheckpointDir(self._previous_checkpoint_dir)
