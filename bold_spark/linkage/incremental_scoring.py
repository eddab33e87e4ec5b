"""Score only the pairs that touch changed records, with Splink 5's predict_between / predict_within.

The workspace's input is the whole current population, so term frequencies are computed on all of it (as a full
run's predict would) and registered before scoring the changed records against the rest and each other. Together
the two calls produce exactly the blocked pairs of a full predict that have at least one changed side. "The rest"
is cut first to the records sharing a block key with a changed record (the only ones a rule can pair with one).
"""
from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame

from bold_spark.broadcast import as_parquet
from bold_spark.linkage.model import SplinkWorkspace, blocking_candidates, edges_of, name_safe

log = logging.getLogger(__name__)


def predict_edges_touching(workspace: SplinkWorkspace, changed: DataFrame, unchanged: DataFrame, *,
                           changed_rows: int, blocking_rules: list[Any], threshold: float,
                           run_id: str) -> DataFrame:
    """Edges (as ``predict_edges``) at or above ``threshold`` with at least one side in ``changed`` (of
    ``changed_rows`` records).

    ``changed`` and ``unchanged`` partition the workspace's input (same columns); ``changed`` is read from files
    (``as_parquet``), so each blocking rule's join broadcasts it. Within-pair orientation follows Splink (left =
    changed for pairs between the two); consumers treat edges as unordered.
    """
    linker = workspace.linker
    for column in linker._settings_obj._term_frequency_columns:  # on the whole population, as predict() does
        linker.table_management.compute_tf_table(column.unquote().name)
    db_api = linker._db_api
    tag = name_safe(run_id)
    # Only the records that share a block with a changed one can pair with it: the rest of the population
    # (most of it) is left out of Splink's concatenated input, which it materialises with term frequencies.
    candidates = as_parquet(blocking_candidates(unchanged, changed, blocking_rules, changed_rows=changed_rows),
                            f"{workspace.scratch_path}/bold_candidates")
    log.info("incremental scoring: %d records share a block with a changed record", candidates.count())
    changed_sdf = db_api.register(changed, table_name=f"bold_changed_{tag}")
    unchanged_sdf = db_api.register(candidates, table_name=f"bold_unchanged_{tag}")
    between = linker.inference.predict_between(changed_sdf, unchanged_sdf, threshold_match_probability=threshold,
                                               warning_mode="never")
    within = linker.inference.predict_within(changed_sdf, threshold_match_probability=threshold,
                                             warning_mode="never")
    return edges_of(between.as_spark_dataframe()).unionByName(edges_of(within.as_spark_dataframe()))
