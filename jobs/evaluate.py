"""spark-submit entry point: score a run's crosswalk against a truth table or labelled pairs, record and print it.

    python jobs/evaluate.py --truth var/sample/truth                   # the current crosswalk
    python jobs/evaluate.py --run-id 20260101T120000Z-1a2b3c4d --labels review.labelled_pairs
    python jobs/evaluate.py --truth ref.people --truth-columns source_record_id=case_ref,person_id=person_key
    python jobs/evaluate.py --truth var/sample/truth --sweep            # precision/recall/F1 by cluster_threshold
    python jobs/evaluate.py --labels bold.review_decisions              # against reviewers' decisions

A truth table has source_system, source_record_id and person_id; a labelled-pairs table has source_system_l,
source_record_id_l, source_system_r, source_record_id_r and is_match (or, as bold.review_decisions has, a decision:
the latest per pair counts, must_link a match). Either is a Delta path or a catalog table.
Results replace the run's earlier rows for the same truth in <database>.<evaluations>, with why each missed true
pair was missed (quality/misses.py; --no-breakdown leaves it out), and the run's HTML report is regenerated to show
them.
"""
from __future__ import annotations

import sys

from _common import add_truth_arguments, column_mapping, parser, run, table_ref

from delta.tables import DeltaTable
from pyspark.sql import functions as F

from bold_spark.config import TableRef
from bold_spark.io.delta import read_table
from bold_spark.io.state import state_path
from bold_spark.clustering.constrained import clustering_input, pair_rules, with_compared_columns
from bold_spark.linkage.model import load_model_json, register_similarity_functions
from bold_spark.quality.evaluate import Evaluation, conform_labels, conform_truth, evaluate_run, threshold_sweep
from bold_spark.review.decisions import decisions_as_labels
from bold_spark.quality.misses import CAUSES, run_miss_inputs
from bold_spark.quality.report import regenerate_with_evaluation
from bold_spark.session import build_session


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
    if o.get("missed_pairs") is not None:
        print_misses(result)
    print(f"  recorded in {table}")


def print_misses(result: Evaluation) -> None:
    """Why the true pairs missed were missed, overall and per source pair, and the fields of the unblocked ones."""
    names = {"rejected": "rejected", "split_by_clustering": "split", "between_thresholds": "between",
             "below_edge_threshold": "below edge", "not_blocked": "not blocked"}
    print("  missed true pairs by cause (split: above cluster_threshold but cut by clustering; between: recorded, "
          "below cluster_threshold; below edge: generated, scored below edge_threshold; not blocked: no rule "
          "generates it):")
    print(f"    {'source_l':<24} {'source_r':<24} {'missed':>9}" + "".join(f" {names[c]:>11}" for c in CAUSES))
    for r in [result.overall, *result.by_source_pair]:
        if r is not result.overall and not r["missed_pairs"]:
            continue
        print(f"    {r['source_system_l'] or 'all':<24} {r['source_system_r'] or '':<24} {r['missed_pairs']:>9,}"
              + "".join(f" {r[f'missed_{c}']:>11,}" for c in CAUSES))
    o = result.overall
    if o["missed_not_blocked"]:
        print(f"  the {o['missed_not_blocked']:,} pairs no blocking rule generates, by field (pairs):")
        print(f"    {'field':<20} {'missing':>9} {'disagree':>9}")
        for field, missing in o["not_blocked_field_missing"].items():
            print(f"    {field:<20} {missing:>9,} {o['not_blocked_field_disagreeing'][field]:>9,}")


def main(args, config) -> int:
    columns = column_mapping(args.truth_columns)
    ref = table_ref(args.truth or args.labels)
    description = ref.describe()
    spark = build_session(config.spark)
    df = read_table(spark, ref)
    if args.labels and not columns and "decision" in df.columns and "is_match" not in df.columns:
        df = decisions_as_labels(df)  # bold.review_decisions: the latest decision per pair, must_link a match
    if args.truth:
        inputs = {"truth": conform_truth(df, columns=columns, description=description)}
    else:
        inputs = {"labels": conform_labels(df, columns=columns, description=description)}
    misses = None if args.no_breakdown else (
        lambda run_id: run_miss_inputs(spark, config, run_id=run_id, max_versions=args.max_versions))
    result = evaluate_run(spark, config.output, truth_description=description, run_id=args.run_id,
                          max_versions=args.max_versions, misses=misses, **inputs)
    print_evaluation(result, config.output.qualified("evaluations"))
    report = regenerate_with_evaluation(spark, config.output, config.report, result.run_id)
    if report is not None:
        print(f"  report with the evaluation: {report}")
    if args.sweep:
        print_sweep(sweep(spark, config, inputs), config)
    return 0


def sweep(spark, config, inputs) -> list[dict]:
    """Cluster the current match_edges again at each threshold; constrained too when the standardised records
    are stored (state_dir), since the constraints read dates of birth and identifiers."""
    edges = spark.table(config.output.qualified("match_edges"))
    records = spark.table(config.output.qualified("crosswalk")).select("source_system", "source_record_id")
    constraints, rules = None, ()
    if config.constraints.any and DeltaTable.isDeltaTable(spark, str(state_path(config))):
        rules = pair_rules(config.constraints, load_model_json(config.linkage.model_path))
        register_similarity_functions(spark)  # the rules' SQL may call jaro_winkler
        stored = read_table(spark, TableRef(path=str(state_path(config)))).where(F.col("reject_reason").isNull())
        stored = with_compared_columns(stored.join(records, ["source_system", "source_record_id"], how="left_semi"),
                                       rules)
        records = clustering_input(stored, config.constraints, rules)
        constraints = config.constraints
    return threshold_sweep(records, edges, constraints=constraints, rules=rules,
                           best_link_only_below=config.linkage.best_link_only_below if constraints else None, **inputs)


def print_sweep(rows: list[dict], config) -> None:
    print("  by threshold (the recorded edges clustered again; linkage.cluster_threshold is "
          f"{config.linkage.cluster_threshold}):")
    print(f"    {'threshold':>9} {'clustering':<22} {'precision':>9} {'recall':>9} {'F1':>9}")
    for r in rows:
        print(f"    {r['threshold']:>9} {r['clustering']:<22} {r['precision']:>9.4f} {r['recall']:>9.4f} "
              f"{r['f1']:>9.4f}")


if __name__ == "__main__":
    p = parser(__doc__)
    add_truth_arguments(p)
    p.add_argument("--run-id", help="the run whose crosswalk to evaluate (default: the current crosswalk's)")
    p.add_argument("--sweep", action="store_true",
                   help="also cluster the current match_edges at a sweep of thresholds (connected components, and "
                        "constrained when constraints are declared) and print precision, recall and F1 for each")
    p.add_argument("--no-breakdown", action="store_true",
                   help="skip the breakdown of missed true pairs by cause (it reads the run's stored records and "
                        "match_edges)")
    p.add_argument("--max-versions", type=int, default=50,
                   help="how many recent crosswalk versions to search for --run-id (default: %(default)s)")
    sys.exit(run(main, p.parse_args()))
