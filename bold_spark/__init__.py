"""bold_spark: link person records across departments with Splink on Spark and publish a Delta crosswalk."""
from __future__ import annotations

__version__ = "0.1.0"
