"""Spark SQL views of linked journeys over the crosswalk: settings, generated SQL, creation in the catalog."""
from bold_spark.views.catalog import create_views
from bold_spark.views.queries import VIEW_NAMES, truth_crosswalk, view_queries
from bold_spark.views.settings import ViewSettings, parse_views

__all__ = ["VIEW_NAMES", "ViewSettings", "create_views", "parse_views", "truth_crosswalk", "view_queries"]
