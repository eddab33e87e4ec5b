"""Load a delimited text extract into a Delta table, so CSV deliveries enter the job like any department table."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, functions as F


def read_csv_as_strings(spark: SparkSession, path: str) -> DataFrame:
    """Every column as trimmed text (no type inference: ids such as 00123 keep their zeros), names trimmed."""
    df = (spark.read.option("header", True).option("inferSchema", False)
          .option("ignoreLeadingWhiteSpace", True).option("ignoreTrailingWhiteSpace", True).csv(path))
    return df.select(*[F.col(f"`{c}`").alias(c.strip()) for c in df.columns])


def import_csv_as_delta(spark: SparkSession, csv_path: str, delta_path: str) -> int:
    """Write the CSV at ``csv_path`` as a Delta table at ``delta_path`` (overwrite); returns the Delta version."""
    read_csv_as_strings(spark, csv_path).write.format("delta").mode("overwrite").save(delta_path)
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, delta_path).history(1).select("version").first()["version"])  # bounded
