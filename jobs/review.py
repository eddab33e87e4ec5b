"""spark-submit entry point: clerical review decisions.

    python jobs/review.py import decisions.csv [--conf conf/local.yaml]

Loads a CSV of decisions (source_system_l, source_record_id_l, source_system_r, source_record_id_r, decision,
reviewer[, reason][, decided_at]) into <database>.<review_decisions> after checking every row: a malformed row, a
record the published crosswalk does not hold, or a decision that contradicts another (A must_link B, B must_link C,
A cannot_link C) stops the import with each row number and reason, and nothing is loaded (exit 2). Every later
link run, full or incremental, applies the decisions (docs/review.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import parser, run

from bold_spark.review.decisions import import_decisions
from bold_spark.session import build_session


def main(args, config) -> int:
    spark = build_session(config.spark)
    loaded = import_decisions(spark, config.output, Path(args.file), sources=[s.name for s in config.sources])
    print(f"{loaded:,} decisions loaded into {config.output.qualified('review_decisions')}; "
          "the next link run (full or --incremental) applies them")
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    imported = commands.add_parser("import", help="validate a CSV of decisions and load it (all or nothing)")
    imported.add_argument("file", help="the decisions CSV")
    for option in ("--conf", "--log-level"):  # also accepted after the command
        imported.add_argument(option, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sys.exit(run(main, p.parse_args()))
