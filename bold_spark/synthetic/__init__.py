"""Synthetic cross-government person data: six department tables with realistic errors, and their truth.

Entry point: ``bold_spark.synthetic.generate.generate(spark, scale=..., seed=...)``; the job
``jobs/generate_sample.py`` writes its tables as Delta. Rates come from ``conf/rates/default.yaml``.
"""
