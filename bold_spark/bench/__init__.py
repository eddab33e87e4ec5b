"""The benchmark harness behind ``make bench``: the project's job against Splink on DuckDB and default Splink on
Spark, on the same cached synthetic data with the same trained model, each system in its own process.

``runner`` orchestrates and samples memory, ``steps`` is what each subprocess runs, ``report`` builds the tables.
Unlike the rest of bold_spark this package does I/O (cached data, parquet exports, result files): it is a
measuring instrument that stands beside the job, not a stage of it.
"""
