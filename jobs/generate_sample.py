"""Write the synthetic cross-government sample: six department Delta tables and a separate truth table.

    python jobs/generate_sample.py --conf conf/local.yaml --scale 20000 --seed 7 [--out DIR] [--rates FILE]

Each department goes to <out>/<source_system>, partitioned by extract_month ('yyyy-MM') the way monthly extracts
arrive; the truth (source_system, source_record_id, person_id) goes to <out>/truth. Same seed and scale, same rows.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # jobs/_common.py, also when a test loads this file

from _common import add_version  # noqa: E402

from bold_spark.config import SparkSettings, load_config  # noqa: E402
from bold_spark.errors import BoldSparkError, ConfigError  # noqa: E402
from bold_spark.session import build_session  # noqa: E402

log = logging.getLogger("generate_sample")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARTITION_COLUMN = "extract_month"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = add_version(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument("--conf", default="conf/local.yaml", help="environment config (default conf/local.yaml)")
    p.add_argument("--scale", type=int, default=20000, help="about this many records across the six departments")
    p.add_argument("--seed", type=int, default=7, help="one seed and scale always give the same tables")
    p.add_argument("--out", help="output folder (default var/sample under the config's base_dir)")
    p.add_argument("--rates", help="YAML file overriding some of conf/rates/default.yaml")
    return p.parse_args(argv)


def spark_settings(conf: str) -> tuple[SparkSettings, Path]:
    """The config's Spark settings and base_dir; local defaults when the environment config cannot be loaded yet."""
    try:
        config = load_config(conf)
        return config.spark, config.base_dir
    except ConfigError as exc:
        base = Path(conf).resolve().parents[1] if Path(conf).is_file() else PROJECT_ROOT
        log.warning("%s; generating with default local Spark settings under %s", exc, base)
        return SparkSettings(
            master="local[*]", app_name="bold_spark-generate", warehouse_dir=base / "var" / "warehouse",
            metastore_dir=None, checkpoint_dir=base / "var" / "checkpoints", jars_dir=base / "var" / "ivy" / "jars",
            conf={"spark.driver.memory": "6g", "spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"},
        ), base


def write_delta(df, path: str, *, partition_by: str | None = None) -> int:
    """Overwrite a Delta table at ``path``; return the rows written (from the commit's metrics, not a scan)."""
    from delta.tables import DeltaTable

    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        # One task per monthly extract: a file per month rather than one per month per task.
        writer = df.repartition(partition_by).write.format("delta").mode("overwrite") \
            .option("overwriteSchema", "true").partitionBy(partition_by)
    writer.save(path)
    metrics = DeltaTable.forPath(df.sparkSession, path).history(1).select("operationMetrics").first()[0]
    return int(metrics["numOutputRows"])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.scale < 1:
        print(f"generate_sample: --scale must be a positive number of records, got {args.scale}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        from bold_spark.synthetic.generate import generate
        from bold_spark.synthetic.rates import load_rates

        rates = load_rates(args.rates)
        settings, base_dir = spark_settings(args.conf)
        out = Path(args.out).resolve() if args.out else base_dir / "var" / "sample"
        spark = build_session(settings)
        sample = generate(spark, scale=args.scale, seed=args.seed, rates=rates)
        print(f"generating about {args.scale:,} records for {sample.n_people:,} people (seed {args.seed}) into {out}")
        total = 0
        for source, df in sample.departments.items():
            t0 = time.perf_counter()
            rows = write_delta(df, str(out / source), partition_by=PARTITION_COLUMN)
            total += rows
            print(f"  {source:<24} {rows:>12,} rows  {time.perf_counter() - t0:8.1f} s")
        t0 = time.perf_counter()
        truth_rows = write_delta(sample.truth, str(out / "truth"))
        print(f"  {'truth':<24} {truth_rows:>12,} rows  {time.perf_counter() - t0:8.1f} s")
    except (BoldSparkError, ValueError) as exc:
        print(f"generate_sample: {exc}", file=sys.stderr)
        return 2
    if truth_rows != total:
        print(f"generate_sample: truth has {truth_rows:,} rows for {total:,} department records", file=sys.stderr)
        return 1
    print(f"{total:,} department records in {time.perf_counter() - started:.1f} s wall-clock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
