"""Per-department views of the crosswalk: a department is granted bold.crosswalk_<source> and sees only its rows.

Each view selects one source's rows (its record ids with their cluster ids), so a department can find which of its
records are the same person, and join to another department's view only if it has been granted that view too.
Views are catalog objects: this module issues DDL, so jobs/ call it after the crosswalk is published.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from pyspark.sql import SparkSession

from bold_spark.config import OutputTables, SourceConfig

log = logging.getLogger(__name__)

VIEW_COLUMNS = ("source_record_id", "cluster_id", "cluster_size", "match_probability", "run_id")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def department_view_name(output: OutputTables, source_system: str) -> str:
    return f"{output.database}.{output.crosswalk}_{source_system}"


def create_department_views(spark: SparkSession, output: OutputTables,
                            sources: Iterable[SourceConfig | str]) -> list[str]:
    """Create or replace one view per source over the crosswalk; returns the view names.

    A view reads the crosswalk's current version, so it follows each published run without being recreated.
    """
    names = []
    for source in sources:
        system = source if isinstance(source, str) else source.name
        if not _IDENTIFIER.match(system):  # config already guarantees this; the name goes into DDL
            raise ValueError(f"source name {system!r} is not an identifier")
        view = department_view_name(output, system)
        spark.sql(f"CREATE OR REPLACE VIEW {view} AS SELECT {', '.join(VIEW_COLUMNS)} "
                  f"FROM {output.qualified('crosswalk')} WHERE source_system = '{system}'")
        names.append(view)
    log.info("created %d department views over %s", len(names), output.qualified("crosswalk"))
    return names
