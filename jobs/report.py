"""spark-submit entry point: regenerate a run's HTML quality report from the tables.

    python jobs/report.py --run-id 20260101T120000Z-1a2b3c4d [--conf conf/local.yaml] [--out DIR]

Reads the run's rows in <database>.<run_quality>, a few sample edges of that run from <database>.<match_edges> (the
Delta version that holds it) and its row in <database>.<link_runs>; writes <report.directory>/<run_id>.html.
Personal values are never shown by a regenerated report (the standardised records are not stored).
"""
from __future__ import annotations

import sys
from pathlib import Path

from _common import parser, run

from bold_spark.quality.report import report_from_tables
from bold_spark.session import build_session


def main(args, config) -> int:
    spark = build_session(config.spark)
    path = report_from_tables(spark, config.output, config.report, args.run_id,
                              directory=Path(args.out).resolve() if args.out else None)
    print(f"report for run {args.run_id}: {path}")
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--run-id", required=True, help="the run to report on")
    p.add_argument("--out", help="folder for the HTML file (default: report.directory in the configuration)")
    sys.exit(run(main, p.parse_args()))
