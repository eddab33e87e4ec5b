#!/usr/bin/env bash
# bold_spark on YARN in cluster mode, with nothing installed on the nodes: run from the project folder after
# `make package PACKAGE_CONF=/path/to/your/conf` (dist/ then holds the environment, the jars and your configuration).
#
#   conf/deploy/yarn-submit.sh      # an incremental link, as after each delivery
#
# Monthly: the same command with jobs/train.py, then with jobs/link.py without --incremental (an incremental run
# refuses to follow a model change). `--conf conf/local.yaml` names your environment file inside conf.tar.gz.
#
# The environment archive is unpacked as ./environment in every container, the configuration as ./conf; the driver
# and executors run ./environment/bin/python, which needs the Python the archive was built with (venv-pack keeps a
# link to it, it does not copy it) at the same path on every node. Paths in your environment file other than source
# tables (warehouse, checkpoints, scratch, state, model) are file paths: put them on storage every node mounts.
set -euo pipefail

spark-submit \
  --master yarn \
  --deploy-mode cluster \
  --name bold_spark-link \
  --archives dist/bold_spark-0.1.0-env.tar.gz#environment,dist/conf.tar.gz#conf \
  --conf spark.pyspark.python=./environment/bin/python \
  --jars dist/jars/io.delta_delta-spark_4.2_2.13-4.4.0.jar,dist/jars/io.delta_delta-storage-4.4.0.jar,dist/jars/scala-udf-similarity-0.2.1_spark4.x.jar \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  --conf spark.sql.session.timeZone=UTC \
  --driver-memory 6g \
  --executor-memory 8g \
  --executor-cores 4 \
  --num-executors 4 \
  --py-files jobs/_common.py \
  jobs/link.py --conf conf/local.yaml --incremental
