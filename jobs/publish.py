"""spark-submit entry point: publish a run the publishing gate held, after review.

    python jobs/publish.py --run-id 20260101T120000Z-1a2b3c4d [--conf conf/local.yaml]

Copies <database>.<crosswalk_candidate> into <database>.<crosswalk> in one Delta transaction, only if the candidate
holds exactly that run; records a 'publish' row in <database>.<link_runs>.
"""
from __future__ import annotations

import sys

from _common import parser, run

from bold_spark import pipeline
from bold_spark.quality.gate import publish_candidate
from bold_spark.session import build_session


def main(args, config) -> int:
    spark = build_session(config.spark)
    record = pipeline.RunRecord(pipeline.new_run_id(), "publish", config.digest(), spark.sparkContext.master)
    with pipeline.recorded_run(spark, config, record):
        result = publish_candidate(spark, config.output, args.run_id)
        record.crosswalk_rows = result["rows"]
        record.message = f"published held run {args.run_id} to {result['table']} after review"
    print(f"run {args.run_id}: {result['rows']:,} rows published to {result['table']}")
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--run-id", required=True, help="the held run to publish (its crosswalk is the candidate)")
    sys.exit(run(main, p.parse_args()))
