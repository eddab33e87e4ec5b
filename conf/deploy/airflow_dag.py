"""bold_spark in Airflow: train the model monthly, link incrementally after each department delivery.

Copy this file to the DAGs folder of an Airflow 2 installation with apache-airflow-providers-apache-spark, and the
project's jobs/ and dist/ (from `make package PACKAGE_CONF=/path/to/your/conf`) to BOLD_HOME on the Airflow
workers. The Airflow connection CONNECTION names the cluster (a YARN or Kubernetes master); the jobs run in cluster
mode from the environment archive, so nothing is installed on the cluster's nodes (docs/operations.md).

A delivery is an Airflow Dataset (Airflow 2.9 or later for DatasetAny): the process that writes a department's Delta
table marks it updated (an `outlets=` on its task, or the REST API), and the link DAG runs when any delivery has
arrived since its last run. The link is incremental: only what changed in the sources since the last successful run
is read again. An incremental run refuses to follow a model change, so the monthly train ends with a full link. Both
DAGs submit through one pool of one slot (create it: `airflow pools set bold_spark 1 "one bold_spark job at a time"`),
so two jobs never write the tables at once.
"""
from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.datasets import Dataset, DatasetAny
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

BOLD_HOME = "/opt/bold_spark"  # jobs/ and dist/ of the project on the Airflow workers
CONNECTION = "bold_spark_cluster"
POOL = "bold_spark"
ENVIRONMENT_FILE = "conf/local.yaml"  # inside dist/conf.tar.gz, unpacked as ./conf in the driver's container
ENV_ARCHIVE = "dist/bold_spark-0.1.0-env.tar.gz"  # the version in setup.cfg
JARS = ("io.delta_delta-spark_4.2_2.13-4.4.0.jar", "io.delta_delta-storage-4.4.0.jar",
        "scala-udf-similarity-0.2.1_spark4.x.jar")  # what `make package` copies to dist/jars
DELIVERIES = ("prison_releases", "probation", "drug_alcohol_treatment", "homelessness", "police_victims",
              "victim_support")  # the configured sources; their Delta tables' locations name the Datasets
JOBS = {  # task id: the job under jobs/ and its arguments
    "train": ("train.py", ["--conf", ENVIRONMENT_FILE]),
    "full_link": ("link.py", ["--conf", ENVIRONMENT_FILE]),
    "incremental_link": ("link.py", ["--conf", ENVIRONMENT_FILE, "--incremental"]),
}
SPARK_CONF = {
    "spark.submit.deployMode": "cluster",
    "spark.pyspark.python": "./environment/bin/python",
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
}


def submit(task_id: str) -> SparkSubmitOperator:
    """One job of JOBS, submitted from the packaged environment with the session's jars."""
    job, arguments = JOBS[task_id]
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=CONNECTION,
        pool=POOL,
        application=f"{BOLD_HOME}/jobs/{job}",
        application_args=arguments,
        py_files=f"{BOLD_HOME}/jobs/_common.py",
        archives=f"{BOLD_HOME}/{ENV_ARCHIVE}#environment,{BOLD_HOME}/dist/conf.tar.gz#conf",
        jars=",".join(f"{BOLD_HOME}/dist/jars/{jar}" for jar in JARS),
        conf=SPARK_CONF,
        driver_memory="6g",
        executor_memory="8g",
        name=f"bold_spark-{task_id}",
    )


with DAG(dag_id="bold_spark_train", schedule="@monthly", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, max_active_runs=1, tags=["bold_spark"]):
    submit("train") >> submit("full_link")

deliveries = DatasetAny(*(Dataset(f"bold_spark://delivery/{name}") for name in DELIVERIES))
with DAG(dag_id="bold_spark_link", schedule=deliveries, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, max_active_runs=1, tags=["bold_spark"]):
    submit("incremental_link")
