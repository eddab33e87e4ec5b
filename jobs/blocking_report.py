"""spark-submit entry point: blocking recall before scoring, against a truth table or labelled pairs.

    python jobs/blocking_report.py --truth var/sample/truth
    python jobs/blocking_report.py --labels review.labelled_pairs --linkage conf/linkage/uk_person_national.yaml
    python jobs/blocking_report.py --truth var/sample/truth --json var/blocking_report.json

Reads and standardises the configured sources as a link run does, then prints, for each blocking rule of the
linkage file and for the rule set: the true pairs it generates (recall) and the pairs it generates over all records
(from block sizes, no join); for the pairs no rule generates, which fields are missing or disagree; and for each
rule under linkage.candidate_blocking_rules, the true pairs it would add per million pairs, alone and in the
greedy order. Nothing is scored or written to the catalog.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from _common import add_truth_arguments, column_mapping, parser, run, table_ref

from pyspark.sql import functions as F

from bold_spark.config import load_config
from bold_spark.io.delta import read_table
from bold_spark.linkage.model import add_linkage_columns, register_similarity_functions
from bold_spark.pipeline import prepare_input
from bold_spark.quality.blocking_recall import BlockingRecall, blocking_recall
from bold_spark.quality.evaluate import check_labels, check_truth, conform_labels, conform_truth
from bold_spark.quality.misses import true_pairs_of_labels, true_pairs_of_truth
from bold_spark.session import build_session


WIDTH = 58


def _label(rule: str, indent: str) -> str:
    """The rule in a column of WIDTH, or on a line of its own (then an empty column) when longer (SQL rules)."""
    return f"{rule:<{WIDTH}}" if len(rule) <= WIDTH else f"{rule}\n{indent}{'':<{WIDTH}}"


def print_report(result: BlockingRecall, truth: str) -> None:
    print(f"blocking recall against {truth}: {result.true_pairs:,} true pairs "
          f"({result.without_record:,} with a rejected record, which no rule can generate)")
    print(f"  {'rule':<58} {'pairs':>13} {'cumulative':>13} {'true pairs':>11} {'recall':>7} {'first':>9}")
    for r in result.rules:
        print(f"  {_label(r['rule'], '  ')} {r['comparisons']:>13,} {r['cumulative_comparisons']:>13,} "
              f"{r['true_pairs']:>11,} {r['recall']:>7.4f} {r['first']:>9,}")
    print(f"  {'the rule set':<58} {result.comparisons:>13,} {'':>13} {result.caught:>11,} {result.recall:>7.4f}")
    print("  (pairs: what a rule's keys generate over all records, from block sizes; cumulative: their sum, an upper "
          "bound of the distinct pairs; first: true pairs no earlier rule generates)")
    print("  by source pair:")
    for r in result.by_source_pair:
        print(f"    {r['source_system_l']:<24} {r['source_system_r']:<24} {r['true_pairs']:>9,} {r['caught']:>9,} "
              f"{r['recall']:>7.4f}")
    missed = result.true_pairs - result.caught - result.without_record
    if missed:
        print(f"  the {missed:,} true pairs no rule generates, by field (pairs missing it on a side / disagreeing):")
        for f, (missing, disagreeing) in result.missed_fields.items():
            print(f"    {f:<20} {missing:>9,} {disagreeing:>9,}")
    if result.candidates:
        print("  candidate rules, alone (added: true pairs no configured rule generates; per million pairs):")
        for r in result.candidates:
            print(f"    {_label(r['rule'], '    ')} {r['comparisons']:>13,} added {r['added']:>7,} "
                  f"(+{r['added_recall']:.4f}) {r['per_million']:>10,.1f} per million")
        print("  candidates in greedy order (each counting only what is still missed):")
        for r in result.greedy:
            print(f"    + {_label(r['rule'], '      ')} added {r['added']:>7,}  recall {r['recall']:.4f}  "
                  f"pairs {r['comparisons']:,}")


def main(args, config) -> int:
    if args.linkage:
        config = load_config(args.conf, overrides={"linkage": str(Path(args.linkage).resolve())})
    ref = table_ref(args.truth or args.labels)
    description = ref.describe()
    columns = column_mapping(args.truth_columns)
    spark = build_session(config.spark)
    df = read_table(spark, ref)
    if args.truth:
        truth = conform_truth(df, columns=columns, description=description)
        check_truth(truth, description=description)
        pairs = true_pairs_of_truth(truth)
    else:
        labels = conform_labels(df, columns=columns, description=description)
        check_labels(labels, description=description)
        pairs = true_pairs_of_labels(labels)
    prepared = prepare_input(spark, config)
    try:
        register_similarity_functions(spark)  # a SQL rule may call jaro_winkler
        records = prepared.standardised.where(F.col("reject_reason").isNull()).transform(add_linkage_columns)
        result = blocking_recall(pairs, records, rules=config.linkage.blocking_rules,
                                 candidates=config.linkage.candidate_blocking_rules)
    finally:
        prepared.release()
    print_report(result, description)
    if args.json:
        Path(args.json).write_text(json.dumps({**asdict(result), "recall": result.recall}, indent=2))
        print(f"  written to {args.json}")
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    add_truth_arguments(p)
    p.add_argument("--linkage", help="a linkage file to measure instead of the environment's (its rules and "
                                     "candidate_blocking_rules)")
    p.add_argument("--json", help="also write the figures to this file as JSON")
    sys.exit(run(main, p.parse_args()))
