"""spark-submit entry point: score all sources with the saved model, cluster, measure, publish the crosswalk."""
from __future__ import annotations

import sys

from _common import parser, run

from bold_spark import pipeline
from bold_spark.linkage.model import check_model_fits
from bold_spark.session import build_session


def main(args, config) -> int:
    if not args.train_if_missing:  # before Spark starts: a model trained with other comparisons stops the run
        check_model_fits(config.linkage)
    spark = build_session(config.spark)
    pipeline.ensure_model(spark, config, train_if_missing=args.train_if_missing)
    if args.incremental:
        from bold_spark.incremental import link_incremental  # imports the pipeline; only incremental runs need it

        record = link_incremental(spark, config, as_of=args.as_of)
    else:
        record = pipeline.link(spark, config, as_of=args.as_of)
    out = config.output
    print(f"run {record.run_id}: {record.crosswalk_rows:,} records in {record.clusters:,} clusters; "
          f"{record.edges_recorded:,} edges >= {config.linkage.edge_threshold}; model {record.model_id}")
    for source in record.inputs:
        print(f"  {source['source_system']:<24} read {source['records_read']:>9,}  accepted "
              f"{source['records_accepted']:>9,}  rejected {source['records_rejected']:>7,}  "
              f"(Delta version {source['delta_version']})")
    print("  seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in record.stage_seconds.items()))
    if record.message:
        print(f"  {record.status_on_success}: {record.message}")
    if record.report_path:
        print(f"  quality report: {record.report_path}")
    print(f"  query it: make sql Q=\"select * from {out.qualified('crosswalk')} limit 10\"")
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--train-if-missing", action="store_true",
                   help="train and save a model first if none exists or the saved one no longer fits the comparisons")
    p.add_argument("--incremental", action="store_true",
                   help="link only records changed since the last successful run and merge them into the crosswalk")
    p.add_argument("--as-of", help="latest plausible date of birth (yyyy-MM-dd); default today")
    sys.exit(run(main, p.parse_args()))
