"""spark-submit entry point: score all sources with the saved model, cluster, measure, publish the crosswalk."""
from __future__ import annotations

import sys

from _common import log, parser, run

from bold_spark import pipeline
from bold_spark.session import build_session


def main(args, config) -> int:
    spark = build_session(config.spark)
    if args.train_if_missing and not config.linkage.model_path.is_file():
        log.info("no model at %s: training one first", config.linkage.model_path)
        pipeline.train_model(spark, config)
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
    p.add_argument("--train-if-missing", action="store_true", help="train and save a model first if none exists")
    p.add_argument("--incremental", action="store_true",
                   help="link only records changed since the last successful run and merge them into the crosswalk")
    p.add_argument("--as-of", help="latest plausible date of birth (yyyy-MM-dd); default today")
    sys.exit(run(main, p.parse_args()))
