"""Create the programme's views in the catalog: persistent, over the published crosswalk and record groups.

Views are stored in the catalog (Hive metastore), so they reference only catalog tables by qualified name, never
temp views; each is ``CREATE OR REPLACE``d, so re-running after a link run is safe and the views always read the
latest published tables.
"""
from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from bold_spark.config import OutputTables
from bold_spark.errors import DataQualityError
from bold_spark.views.queries import VIEW_COMMENTS, view_queries
from bold_spark.views.settings import ViewSettings

log = logging.getLogger(__name__)


def create_views(spark: SparkSession, *, views: ViewSettings, output: OutputTables) -> list[str]:
    """CREATE OR REPLACE every view in ``output.database``; returns the qualified view names created."""
    crosswalk, groups = output.qualified("crosswalk"), output.qualified("record_groups")
    for table in (crosswalk, groups):
        if not spark.catalog.tableExists(table):
            raise DataQualityError(f"views ({views.file}): catalog table {table} not found; run the link job first")
    created = []
    for name, select in view_queries(views, crosswalk=crosswalk, record_groups=groups).items():
        qualified = f"{output.database}.{name}"
        spark.sql(f"CREATE OR REPLACE VIEW {qualified} COMMENT '{VIEW_COMMENTS[name]}' AS\n{select}")
        created.append(qualified)
    log.info("created %d views in %s", len(created), output.database)
    return created
