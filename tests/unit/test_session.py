from __future__ import annotations


def test_session_writes_and_reads_delta_with_time_travel(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    spark.range(5).write.format("delta").mode("overwrite").save(path)
    assert spark.read.format("delta").load(path).count() == 5
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 3


def test_splink_similarity_functions_are_registered_through_the_jar(spark):
    from splink import SparkAPI

    SparkAPI(spark_session=spark)
    value = spark.sql("select jaro_winkler('martha', 'marhta') as s").first()["s"]
    assert 0.95 < value < 0.97


def test_python_udfs_run_in_the_job_s_own_interpreter_with_its_packages(spark):
    """In local mode the Python workers run the driver's interpreter, not `python3` from PATH (which lacks the
    environment's pyarrow: with pandas installed, PySpark 4.2 runs Python UDFs through Arrow)."""
    import sys

    from pyspark.sql import functions as F

    @F.udf("string")
    def interpreter(_):
        import sys as worker_sys

        import pyarrow  # noqa: F401  (the Arrow path needs it; fails in an interpreter without it)

        return worker_sys.executable

    ran_in = spark.range(1).select(interpreter(F.col("id")).alias("python")).first()["python"]
    assert ran_in == sys.executable


def test_a_setting_spark_rejects_names_the_environment_file_and_spark_conf(tmp_path):
    """A job whose spark.conf the JVM refuses (a heap size in the wrong unit): exit 2 naming the file and key."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    conf = yaml.safe_load((root / "conf" / "local.yaml").read_text())
    conf["base_dir"] = str(tmp_path)
    conf["spark"]["jars_dir"] = str(root / "var" / "ivy" / "jars")
    conf["spark"]["conf"]["spark.driver.memory"] = "2gb"
    conf.update(sources=[str(root / "conf" / "sources" / "demo" / "*.yaml")],
                linkage=str(root / "conf" / "linkage" / "uk_person.yaml"),
                views=str(root / "conf" / "views" / "programme.yaml"))
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(conf))
    (tmp_path / "var" / "models").mkdir(parents=True)  # a model that fits, so the job gets as far as Spark
    shutil.copy(root / "tests" / "data" / "uk_person_model.json", tmp_path / "var" / "models" / "uk_person.json")
    result = subprocess.run([sys.executable, "jobs/link.py", "--conf", str(tmp_path / "env.yaml")], cwd=root,
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert f"SetupError: {tmp_path / 'env.yaml'}: spark: Spark did not start" in output
    assert "'spark.driver.memory'" in output and "correct it under spark.conf in that file" in output
