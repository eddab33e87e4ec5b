"""spark-submit entry point: estimate the linkage model on the configured sources and save it as JSON."""
from __future__ import annotations

import sys

from _common import parser, run

from bold_spark import pipeline
from bold_spark.session import build_session


def main(args, config) -> int:
    spark = build_session(config.spark)
    record = pipeline.train_model(spark, config)
    print(f"model {record.model_id} written to {config.linkage.model_path} "
          f"(trained on {sum(s['records_accepted'] for s in record.inputs):,} records; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in record.stage_seconds.items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, parser(__doc__).parse_args()))
