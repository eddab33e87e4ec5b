"""Score a trained Splink model as one Spark plan: blocking, comparison vectors, match weights and the threshold.

Splink's own predict on Spark runs one join per blocking rule, materialises the blocked id pairs, then joins each
pair back to both records: a dozen large shuffles and as many Spark queries per run. Here each record emits one
row per blocking rule (a hash of that rule's key), one shuffle on the hash brings a block's records together, and
each pair row is built with both records' columns on it, so nothing joins back. A pair an earlier rule also
generates is dropped by checking on the row which rule holds first (Splink's own exclusion), not by a distinct.

Splink stays the model: the comparison vectors, match weights, term-frequency adjustments and probability are
Splink's own SQL (generated from the model by Splink), only run over these pair rows. That is why the engine
gives Splink's pairs and weights (tests/integration/test_scoring_engine.py checks it against
``linker.inference.predict``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, functions as F

from bold_spark.broadcast import small_side
from bold_spark.errors import ConfigError

PAIRS_SCORED = "pairs_scored"


@dataclass(frozen=True)
class ScoredPairs:
    """Splink's predict output over the blocked pairs at or above the threshold; ``observation`` holds the number
    of pairs scored (PAIRS_SCORED) once an action has run on ``predictions``."""

    predictions: DataFrame
    observation: Observation

    def pairs_scored(self) -> int:
        """Blocks until the plan has run: call it after an action on ``predictions``."""
        return int(self.observation.get.get(PAIRS_SCORED, 0))


def _unquoted(name: str) -> str:
    return name.strip("`").replace("``", "`")


def engine_limits(settings: Any) -> list[str]:
    """What in the model keeps the engine from scoring it exactly as Splink would (empty when nothing does).

    The engine pairs the records of a block, so each rule must be a plain equality of the same key on both sides
    (``l.x = r.x``, any number of them, with or without further conditions); the rest is Splink's SQL, unchanged.
    """
    reasons = []
    if settings._link_type not in ("link_and_dedupe", "dedupe_only"):
        reasons.append(f"link type {settings._link_type!r} (the engine scores link_and_dedupe and dedupe_only)")
    for i, rule in enumerate(settings._blocking_rules_to_generate_predictions):
        if type(rule).__name__ != "BlockingRule":
            reasons.append(f"linkage.blocking_rules[{i}] is a {type(rule).__name__}, not a plain rule")
            continue
        conditions = rule._equi_join_conditions
        if not conditions:
            reasons.append(f"linkage.blocking_rules[{i}] has no equality of a key on both sides")
        elif any(_unquoted(l_expr.strip()) != _unquoted(r_expr.strip()) for l_expr, r_expr in conditions):
            reasons.append(f"linkage.blocking_rules[{i}] compares different expressions on its two sides")
    return reasons


def _rule_hash(rule: int, conditions: list[tuple[str, str]]) -> Column:
    """A 64-bit hash of the rule's key values, null when any key is null (a null never equals anything)."""
    keys = [F.expr(l_expr) for l_expr, _ in conditions]
    present = keys[0].isNotNull()
    for key in keys[1:]:
        present = present & key.isNotNull()
    return F.when(present, F.xxhash64(F.lit(rule), *keys))


def _columns_used(persons: DataFrame, settings: Any) -> list[str]:
    """The columns of ``persons`` the model or a blocking rule names (a name appearing in their SQL), ids first:
    only these travel through the shuffle."""
    ids = [_unquoted(c.name) for c in settings.column_info_settings.unique_id_input_columns]
    sql = " ".join([*settings._columns_to_select_for_comparison_vector_values,
                    *(rule.blocking_rule_sql for rule in settings._blocking_rules_to_generate_predictions)])
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
    named = {name for name in persons.columns
             if name in words or f"{name}_l" in words or f"{name}_r" in words}
    return ids + [name for name in persons.columns if name in named and name not in ids]


def with_term_frequencies(persons: DataFrame, settings: Any) -> DataFrame:
    """``persons`` plus ``tf_<column>`` for each term-frequency column: the share of the column's non-null values
    equal to the record's value, as Splink computes it (on the whole input being scored)."""
    columns = [(_unquoted(c.name), _unquoted(c.tf_name)) for c in settings._term_frequency_columns]
    if not columns:
        return persons
    # Every column's count of non-null values in one aggregate (one row, broadcast), not one pass per column.
    totals = F.broadcast(persons.agg(*[F.count(F.col(name)).alias(f"_bold_total_{name}") for name, _ in columns]))
    out = persons
    for name, tf_name in columns:
        frequencies = (persons.where(F.col(name).isNotNull()).groupBy(name).agg(F.count(F.lit(1)).alias("_bold_n"))
                       .crossJoin(totals)
                       .select(name, (F.col("_bold_n").cast("double") / F.col(f"_bold_total_{name}")).alias(tf_name)))
        out = out.join(frequencies, on=name, how="left")
    return out


def blocked_pairs(records: DataFrame, settings: Any, *, changed: DataFrame | None = None,
                  changed_rows: int | None = None) -> DataFrame:
    """Every pair Splink's prediction blocking generates, once, as rows (match_key, l, r): ``l`` and ``r`` are
    structs of both records' columns, ``l`` the smaller Splink composite id. ``records`` holds the columns the
    model names (and tf_ columns).

    With ``changed`` (the ids of ``changed_rows`` records): only the pairs with a changed side. Those records'
    block rows (broadcast when few) probe everyone's, so the population is scanned but not shuffled.
    """
    from splink.internals.unique_id_concat import _composite_unique_id_from_nodes_sql

    rules = settings._blocking_rules_to_generate_predictions
    id_columns = settings.column_info_settings.unique_id_input_columns
    ids = [_unquoted(c.name) for c in id_columns]
    # Splink orders a pair by this composite id; computed once per record, not once per candidate pair.
    records = records.withColumn("_bold_uid", F.expr(_composite_unique_id_from_nodes_sql(id_columns)))
    if changed is not None:
        flag = changed.select(*ids, F.lit(True).alias("_bold_changed"))
        records = records.join(small_side(flag, changed_rows or 0), ids, how="left") \
            .withColumn("_bold_changed", F.coalesce("_bold_changed", F.lit(False)))
    keys = F.array(*[F.struct(F.lit(i).alias("match_key"), _rule_hash(i, rule._equi_join_conditions).alias("block"))
                     for i, rule in enumerate(rules)])
    keyed = (records.select(F.explode(keys).alias("key"), F.struct(*records.columns).alias("record"))
             .where(F.col("key.block").isNotNull())
             .select("key.match_key", "key.block", "record"))
    probes = keyed
    if changed is not None:
        probes = small_side(keyed.where(F.col("record._bold_changed")), (changed_rows or 0) * len(rules))
    a_first = F.col("a.record._bold_uid") < F.col("b.record._bold_uid")
    # A pair of two changed records meets twice (each probes the other): kept once, where a has the smaller id.
    once = a_first if changed is None else a_first | ~F.col("b.record._bold_changed")
    pairs = (keyed.alias("b").join(probes.alias("a"), on=[F.col("a.block") == F.col("b.block"),
                                                             F.col("a.match_key") == F.col("b.match_key")])
             .where(once)
             .select(F.col("a.match_key").alias("match_key"),
                     F.when(a_first, F.col("a.record")).otherwise(F.col("b.record")).alias("l"),
                     F.when(a_first, F.col("b.record")).otherwise(F.col("a.record")).alias("r")))
    # Kept where the rule that generated the row is the first rule whose full SQL holds on it: its own rule holds (a
    # hash collision or a further condition fails it) and no earlier one does, Splink's own exclusion (a null is
    # false), so each pair comes from exactly one rule. One CASE over the rules, not each rule against all before it.
    first_rule = " ".join(f"WHEN ({rule.blocking_rule_sql}) THEN {i}" for i, rule in enumerate(rules))
    return pairs.where(F.col("match_key") == F.expr(f"CASE {first_rule} END"))


def score(persons: DataFrame, settings: Any, *, threshold: float | None, changed: DataFrame | None = None,
          changed_rows: int | None = None) -> ScoredPairs:
    """Splink's predictions (the columns its predict returns) for ``persons`` at or above match probability
    ``threshold`` (all blocked pairs when None), as one lazy plan; ``settings`` is a Splink Settings object for the
    Spark dialect. With ``changed`` (ids of ``changed_rows`` records of ``persons``), only the pairs with a changed
    side; term frequencies are still those of all ``persons``, as in a full run."""
    from splink.internals.comparison_vector_values import compute_comparison_vector_values_sql
    from splink.internals.predict import predict_from_comparison_vectors_sqls_using_settings

    from bold_spark.linkage.model import register_similarity_functions

    limits = engine_limits(settings)
    if limits:
        raise ConfigError("linkage.scoring: engine cannot score this model: " + "; ".join(limits)
                          + "; set linkage.scoring: splink")
    spark = persons.sparkSession
    register_similarity_functions(spark)  # jaro_winkler and the like, as Splink's SparkAPI registers them
    records = with_term_frequencies(persons.select(*_columns_used(persons, settings)), settings)
    observation = Observation("bold_scoring")
    pairs = blocked_pairs(records, settings, changed=changed, changed_rows=changed_rows) \
        .observe(observation, F.count(F.lit(1)).alias(PAIRS_SCORED))
    # Splink's select of the blocked table (`l`.`x` AS `x_l` ...) reads the two structs as it would two tables.
    blocked = pairs.selectExpr(*settings._columns_to_select_for_blocking, "match_key")
    view = f"bold_blocked_{id(observation):x}"
    blocked.createOrReplaceTempView(view)
    steps = [("__splink__df_blocked", f"select * from {view}"),
             ("__splink__df_comparison_vectors",
              compute_comparison_vector_values_sql(settings._columns_to_select_for_comparison_vector_values))]
    steps += [(step["output_table_name"], step["sql"]) for step in
              predict_from_comparison_vectors_sqls_using_settings(settings, threshold_match_probability=threshold)]
    *ctes, (_, final) = steps
    sql = "WITH " + ",\n".join(f"{name} AS ({body})" for name, body in ctes) + "\n" + final
    try:
        predictions = spark.sql(_as_spark_sql(sql))
    finally:
        spark.catalog.dropTempView(view)  # the plan is resolved: the name is no longer needed
    return ScoredPairs(predictions, observation)


def _as_spark_sql(sql: str) -> str:
    """Splink's SQL in Spark's dialect, translated as Splink's SparkAPI does before it runs a query."""
    import sqlglot
    from splink.internals.spark.spark_helpers import custom_spark_dialect  # noqa: F401  (registers the dialect)

    return sqlglot.transpile(sql, read="spark", write="customspark")[0]
