"""spark-submit entry point: score a run's crosswalk against a truth table or labelled pairs, record and print it.

    python jobs/evaluate.py --truth var/sample/truth                   # the current crosswalk
    python jobs/evaluate.py --run-id 20260101T120000Z-1a2b3c4d --labels review.labelled_pairs
    python jobs/evaluate.py --truth ref.people --truth-columns source_record_id=case_ref,person_id=person_key

A truth table has source_system, source_record_id and person_id; a labelled-pairs table has source_system_l,
source_record_id_l, source_system_r, source_record_id_r and is_match. Either is a Delta path or a catalog table.
Results replace the run's earlier rows for the same truth in <database>.<evaluations>.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from _common import parser, run

from bold_spark.config import TableRef
from bold_spark.errors import ConfigError
from bold_spark.io.delta import read_table
from bold_spark.quality.evaluate import Evaluation, conform_labels, conform_truth, evaluate_run
from bold_spark.session import build_session

_CATALOG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


def table_ref(value: str) -> TableRef:
    """A catalog name (db.table) unless it looks like a path; relative paths are taken from the current folder."""
    if "://" in value:
        return TableRef(path=value)
    if _CATALOG_NAME.match(value) and not Path(value).exists():
        return TableRef(name=value)
    return TableRef(path=str(Path(value).expanduser().resolve()))


def column_mapping(value: str | None) -> dict[str, str]:
    """``key=column,key=column`` -> {key: column}."""
    if not value:
        return {}
    mapping = {}
    for item in value.split(","):
        key, sep, column = (part.strip() for part in item.partition("="))
        if not sep or not key or not column:
            raise ConfigError(f"--truth-columns: expected key=column pairs separated by commas, found {item!r}")
        mapping[key] = column
    return mapping


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_evaluation(result: Evaluation, table: str) -> None:
    o = result.overall
    print(f"run {result.run_id} (crosswalk version {result.crosswalk_version}) against {result.truth}")
    if result.truth_kind == "records":
        print(f"  truth records {o['truth_records']:,} ({o['truth_records_missing']:,} not in the crosswalk)")
    else:
        print(f"  labelled pairs {o['labelled_pairs']:,} ({o['labelled_pairs_missing']:,} with a record not in "
              "the crosswalk)")
    print(f"  pairwise  precision {o['precision']:.4f}  recall {o['recall']:.4f}  F1 {o['f1']:.4f}  "
          f"(true positives {o['true_positive_pairs']:,.0f}; predicted {o['predicted_pairs']:,.0f}; "
          f"true {o['true_pairs']:,.0f})")
    if result.truth_kind == "records":
        print(f"  B-cubed   precision {_fmt(o['bcubed_precision'], '.4f')}  recall {_fmt(o['bcubed_recall'], '.4f')}")
        print(f"  clusters  predicted {o['predicted_clusters']:,}  true {o['true_clusters']:,}  "
              f"people split {_fmt(o['share_people_split'], '.2%')}  "
              f"clusters merging people {_fmt(o['share_clusters_merging'], '.2%')}")
    if result.by_source_pair:
        print("  by source pair:")
        print(f"    {'source_l':<24} {'source_r':<24} {'predicted':>12} {'true':>12} {'true pos.':>12} "
              f"{'precision':>9} {'recall':>9} {'F1':>9}")
        for r in result.by_source_pair:
            print(f"    {r['source_system_l']:<24} {r['source_system_r']:<24} {r['predicted_pairs']:>12,.0f} "
                  f"{r['true_pairs']:>12,.0f} {r['true_positive_pairs']:>12,.0f} {r['precision']:>9.4f} "
                  f"{r['recall']:>9.4f} {r['f1']:>9.4f}")
    print(f"  recorded in {table}")


def main(args, config) -> int:
    columns = column_mapping(args.truth_columns)
    ref = table_ref(args.truth or args.labels)
    description = ref.describe()
    spark = build_session(config.spark)
    df = read_table(spark, ref)
    if args.truth:
        inputs = {"truth": conform_truth(df, columns=columns, description=description)}
    else:
        inputs = {"labels": conform_labels(df, columns=columns, description=description)}
    result = evaluate_run(spark, config.output, truth_description=description, run_id=args.run_id,
                          max_versions=args.max_versions, **inputs)
    print_evaluation(result, config.output.qualified("evaluations"))
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' lines
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--truth", help="Delta path or catalog table: source_system, source_record_id, person_id")
    given.add_argument("--labels", help="Delta path or catalog table of labelled pairs: source_system_l, "
                                        "source_record_id_l, source_system_r, source_record_id_r, is_match")
    p.add_argument("--truth-columns", help="where the table's column names differ: key=column,... "
                                           "(e.g. person_id=person_key)")
    p.add_argument("--run-id", help="the run whose crosswalk to evaluate (default: the current crosswalk's)")
    p.add_argument("--max-versions", type=int, default=50,
                   help="how many recent crosswalk versions to search for --run-id (default: %(default)s)")
    sys.exit(run(main, p.parse_args()))
