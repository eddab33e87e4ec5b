"""Blocking recall before scoring: which true pairs each blocking rule generates, and which candidate rule would
win back the most of those the rules miss per million pairs it adds. Nothing is scored.

The true pairs (quality/misses.py: a self-join of the truth on person_id, or the labelled matches) are joined to
both records, and each rule's own SQL is evaluated on the pair row (``l`` and ``r`` structs), as the scoring
engine filters its pairs. The pairs a rule generates over all records come from block sizes (one aggregate, no
join: linkage/model.py's block_statistics), as the run's guardrail counts them. Aggregates only: one row overall,
one per source pair, and one per combination of candidate rules among the pairs the rules miss (at most
2**candidates rows).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, functions as F

from bold_spark.linkage.model import _rule_label, block_statistics, blocking_rule_sql
from bold_spark.quality.misses import (
    SOURCE_PAIR,
    _rule_columns,
    field_counts,
    fields_of,
    rule_holds,
    with_records,
)

log = logging.getLogger(__name__)

MAX_CANDIDATES = 30  # their combinations among the missed pairs are counted as a bit mask


@dataclass(frozen=True)
class BlockingRecall:
    """What blocking_recall measured. Recall is over all true pairs, those with a rejected record included (no
    rule can generate those)."""

    true_pairs: int
    without_record: int  # true pairs with a record not among the records (rejected): no rule generates them
    rules: list[dict[str, Any]]  # per rule, in order: rule, comparisons, true_pairs, recall, first (no earlier rule)
    caught: int  # true pairs some rule generates
    comparisons: int  # the rules' pairs from block sizes (an upper bound: a pair two rules find counts twice)
    by_source_pair: list[dict[str, Any]]  # source_system_l, source_system_r, true_pairs, caught, recall
    missed_fields: dict[str, tuple[int, int]]  # of the pairs no rule generates: field -> (missing, disagreeing)
    candidates: list[dict[str, Any]] = field(default_factory=list)  # alone: rule, comparisons, added, per_million
    greedy: list[dict[str, Any]] = field(default_factory=list)  # best first: rule, added, recall, comparisons

    @property
    def recall(self) -> float:
        return self.caught / self.true_pairs if self.true_pairs else 1.0


def blocking_recall(pairs: DataFrame, records: DataFrame, *, rules: Sequence[Any],
                    candidates: Sequence[Any] = ()) -> BlockingRecall:
    """``pairs``: true pairs (PAIR_KEYS, quality/misses.py); ``records``: accepted records with linkage columns
    (one row per record); ``rules`` / ``candidates``: configured blocking rules (column lists or SQL)."""
    if len(candidates) > MAX_CANDIDATES:
        raise ValueError(f"at most {MAX_CANDIDATES} candidate rules are measured at once")
    rule_sql, candidate_sql = blocking_rule_sql(rules), blocking_rule_sql(candidates)
    fields = fields_of(records)
    columns = sorted({*fields, *_rule_columns(records, [*rule_sql, *candidate_sql])})
    holds = [rule_holds(sql) for sql in rule_sql]
    caught = F.lit(False)
    for h in holds:
        caught = caught | h
    mask = F.lit(0).cast("long")
    for j, sql in enumerate(candidate_sql):
        mask = mask + F.when(rule_holds(sql), F.lit(1 << j)).otherwise(0)
    rows = with_records(pairs, records, columns).select(
        *SOURCE_PAIR, "l", "r", (F.col("l").isNotNull() & F.col("r").isNotNull()).alias("present"),
        *[h.alias(f"rule_{i}") for i, h in enumerate(holds)], caught.alias("caught"), mask.alias("mask"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        def count_if(condition: Any) -> Any:
            return F.sum(F.when(condition, 1).otherwise(0))

        earlier = F.lit(False)
        firsts = []
        for i in range(len(holds)):
            firsts.append(count_if(F.col(f"rule_{i}") & ~earlier).alias(f"first_{i}"))
            earlier = earlier | F.col(f"rule_{i}")
        missed = ~F.col("caught") & F.col("present")
        by_field = []
        for f, (missing, disagreeing) in field_counts(fields).items():
            by_field += [F.sum(F.when(missed, missing).otherwise(0)).alias(f"m__{f}"),
                         F.sum(F.when(missed, disagreeing).otherwise(0)).alias(f"d__{f}")]
        totals = rows.agg(F.count(F.lit(1)).alias("pairs"), count_if(~F.col("present")).alias("without_record"),
                          count_if(F.col("caught")).alias("caught"),
                          *[count_if(F.col(f"rule_{i}")).alias(f"rule_{i}") for i in range(len(holds))],
                          *firsts, *by_field).first()  # bounded: one row
        per_pair = rows.groupBy(*SOURCE_PAIR).agg(F.count(F.lit(1)).alias("true_pairs"),
                                                  count_if(F.col("caught")).alias("caught")) \
            .orderBy(*SOURCE_PAIR).collect()  # bounded: one row per source pair
        combinations = {int(r["mask"]): int(r["n"]) for r in rows.where(missed & (F.col("mask") > 0))
                        .groupBy("mask").agg(F.count(F.lit(1)).alias("n")).collect()}  # bounded: 2**candidates
    finally:
        rows.unpersist()
    n = int(totals["pairs"] or 0)
    stats = block_statistics(records, [*rules, *candidates])
    rule_rows, running = [], 0
    for i, (spec, blocks) in enumerate(zip(rules, stats)):
        running += blocks.pairs
        found = int(totals[f"rule_{i}"] or 0)
        rule_rows.append({"rule": _rule_label(spec), "comparisons": blocks.pairs, "cumulative_comparisons": running,
                          "true_pairs": found, "recall": found / n if n else 1.0,
                          "first": int(totals[f"first_{i}"] or 0)})
    caught_n = int(totals["caught"] or 0)
    cand_stats = stats[len(rules):]
    candidate_rows = []
    for j, (spec, blocks) in enumerate(zip(candidates, cand_stats)):
        added = sum(count for m, count in combinations.items() if m & (1 << j))
        candidate_rows.append(_candidate_row(spec, blocks.pairs, added, n))
    candidate_rows.sort(key=lambda r: (-r["per_million"], -r["added"]))
    result = BlockingRecall(
        true_pairs=n, without_record=int(totals["without_record"] or 0), rules=rule_rows, caught=caught_n,
        comparisons=running,
        by_source_pair=[{"source_system_l": r["source_system_l"], "source_system_r": r["source_system_r"],
                         "true_pairs": int(r["true_pairs"]), "caught": int(r["caught"]),
                         "recall": int(r["caught"]) / int(r["true_pairs"])} for r in per_pair],
        missed_fields={f: (int(totals[f"m__{f}"] or 0), int(totals[f"d__{f}"] or 0)) for f in fields},
        candidates=candidate_rows,
        greedy=_greedy(candidates, [b.pairs for b in cand_stats], combinations, n, caught_n, running))
    log.info("blocking recall %.4f (%d of %d true pairs) from %s comparisons", result.recall, caught_n, n,
             f"{running:,}")
    return result


def _candidate_row(spec: Any, comparisons: int, added: int, true_pairs: int) -> dict[str, Any]:
    return {"rule": _rule_label(spec), "comparisons": comparisons, "added": added,
            "added_recall": added / true_pairs if true_pairs else 0.0,
            "per_million": added / (max(comparisons, 1) / 1e6)}


def _greedy(candidates: Sequence[Any], comparisons: list[int], combinations: dict[int, int], true_pairs: int,
            caught: int, total: int) -> list[dict[str, Any]]:
    """Candidates in the order that adds the most true pairs per million comparisons at each step (each step
    counting only what the rules and the candidates already taken miss); candidates that add nothing are left out."""
    taken, chosen, out = 0, set(), []
    while True:
        best = None
        for j in range(len(candidates)):
            if j in chosen:
                continue
            added = sum(n for m, n in combinations.items() if m & (1 << j) and not m & taken)
            score = added / (max(comparisons[j], 1) / 1e6)
            if added and (best is None or score > best[0]):
                best = (score, j, added)
        if best is None:
            return out
        score, j, added = best
        chosen.add(j)
        taken |= 1 << j
        caught += added
        total += comparisons[j]
        out.append({"rule": _rule_label(candidates[j]), "added": added, "per_million": score,
                    "recall": caught / true_pairs if true_pairs else 1.0, "comparisons": total})
