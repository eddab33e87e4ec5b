"""spark-submit entry point: clerical review decisions.

    python jobs/review.py import decisions.csv [--conf conf/local.yaml]
    python jobs/review.py page [--top 100] [--out DIR]      # make review-page: an HTML page for reviewers

Loads a CSV of decisions (source_system_l, source_record_id_l, source_system_r, source_record_id_r, decision,
reviewer[, reason][, decided_at]) into <database>.<review_decisions> after checking every row: a malformed row, a
record the published crosswalk does not hold, or a decision that contradicts another (A must_link B, B must_link C,
A cannot_link C) stops the import with each row number and reason, and nothing is loaded (exit 2). Every later
link run, full or incremental, applies the decisions (docs/review.md).

`page` writes <report.directory>/review-<run_id>.html: the top of <database>.<review_queue> with both records'
values side by side (from the stored standardised records), the waterfall of match weights and a form that downloads
the decisions file. It holds personal values: write it where only reviewers can read it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import parser, run

from delta.tables import DeltaTable
from pyspark.sql import functions as F

from bold_spark.review.decisions import import_decisions
from bold_spark.session import build_session


def page(args, config) -> int:
    from bold_spark.config import TableRef
    from bold_spark.errors import DataQualityError
    from bold_spark.io.delta import read_table
    from bold_spark.io.state import state_path
    from bold_spark.linkage.model import load_model_json
    from bold_spark.review.page import render_review_page, review_items, write_review_page

    model = load_model_json(config.linkage.model_path)
    spark = build_session(config.spark)
    queue_name = config.output.qualified("review_queue")
    if not spark.catalog.tableExists(queue_name):
        raise DataQualityError(f"{queue_name} not found: run a link first")
    stored = state_path(config)
    if not DeltaTable.isDeltaTable(spark, str(stored)):
        raise DataQualityError(f"no stored records at {stored} (state_dir) to show: a run under privacy.pseudonymise "
                               "stores none, and the page needs the records' values")
    queue = spark.table(queue_name)
    run_id = queue.agg(F.max("run_id")).first()[0]  # bounded: one row
    if run_id is None:
        print(f"{queue_name} is empty: nothing to review")
        return 0
    persons = read_table(spark, TableRef(path=str(stored))).where(F.col("reject_reason").isNull())
    items = review_items(queue, persons, n=args.top)
    path = write_review_page(render_review_page(items, model, run_id=run_id),
                             Path(args.out).resolve() if args.out else config.report.directory, run_id)
    print(f"{len(items)} pairs of run {run_id}: {path} (personal data: for reviewers only)")
    return 0


def main(args, config) -> int:
    if args.command == "page":
        return page(args, config)
    spark = build_session(config.spark)
    loaded = import_decisions(spark, config.output, Path(args.file), sources=[s.name for s in config.sources])
    print(f"{loaded:,} decisions loaded into {config.output.qualified('review_decisions')}; "
          "the next link run (full or --incremental) applies them")
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' lines
    commands = p.add_subparsers(dest="command", required=True)
    imported = commands.add_parser("import", help="validate a CSV of decisions and load it (all or nothing)")
    imported.add_argument("file", help="the decisions CSV")
    shown = commands.add_parser("page", help="an HTML page of the queue's top pairs for reviewers (personal data)")
    shown.add_argument("--top", type=int, default=100, help="how many pairs (default: %(default)s)")
    shown.add_argument("--out", help="folder for the page (default: report.directory)")
    for command in (imported, shown):
        for option in ("--conf", "--log-level"):  # also accepted after the command
            command.add_argument(option, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sys.exit(run(main, p.parse_args()))
