"""bold.review_decisions: reviewers' must_link / cannot_link decisions, loaded from a CSV file (validated, all or
nothing) or inserted with SQL, and read back by every run.

A decision names a pair of records by both sides' source_system and source_record_id. The table is append-only:
a later decision on the same pair (by ``decided_at``) replaces the earlier one, which stays as history. The table
is created with the checks SQL INSERT must pass too (a known decision, two different records, no missing key).

Import (``jobs/review.py import FILE``) rejects, with the file's row number and the reason, and loads nothing:
- malformed rows: a required column or value missing, a decision other than must_link / cannot_link, the same
  record on both sides, an unreadable ``decided_at``, a source that is not configured;
- unknown records: a record not in the published crosswalk (record ids as the crosswalk holds them: pseudonyms
  under ``privacy.pseudonymise``);
- contradictions: the same pair decided both ways in one file, or a cannot_link pair that must_link decisions (the
  file's and the table's, a file's decision replacing the table's on the same pair) join through a chain (A must
  link B, B must link C, A cannot link C); found by connected components over the must_link pairs.
Messages carry row numbers and column names, never a record id or a reviewer's text.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window, functions as F, types as T

from bold_spark.config import OutputTables
from bold_spark.crosswalk.stable_ids import record_key
from bold_spark.errors import DataQualityError
from bold_spark.io.delta import ensure_database
from bold_spark.schemas import REVIEW_DECISIONS, conform

log = logging.getLogger(__name__)

MUST_LINK, CANNOT_LINK = "must_link", "cannot_link"
DECISIONS = (MUST_LINK, CANNOT_LINK)
PAIR = ["source_system_l", "source_record_id_l", "source_system_r", "source_record_id_r"]
REQUIRED = (*PAIR, "decision", "reviewer")
OPTIONAL = ("reason", "decided_at")
MAX_MESSAGES = 50  # errors listed in one message; the rest are counted
# The checks the table holds (Delta CHECK constraints), so an INSERT that breaks one fails as an import would.
TABLE_CHECKS = {
    "decision_known": "decision IN ('must_link', 'cannot_link')",
    "two_records": "NOT (source_system_l = source_system_r AND source_record_id_l = source_record_id_r)",
}


class DecisionImportError(DataQualityError):
    """A decisions file that cannot be loaded; nothing of it was."""


def ensure_decisions_table(spark: SparkSession, output: OutputTables) -> str:
    """Create <database>.<review_decisions> (empty, with its checks) unless it exists; returns its name."""
    name = output.qualified("review_decisions")
    if spark.catalog.tableExists(name):
        return name
    ensure_database(spark, output)
    columns = ", ".join(f"{f.name} {f.dataType.simpleString().upper()}{'' if f.nullable else ' NOT NULL'}"
                        for f in REVIEW_DECISIONS.fields)
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING DELTA")
    for check, condition in TABLE_CHECKS.items():
        spark.sql(f"ALTER TABLE {name} ADD CONSTRAINT {check} CHECK ({condition})")
    log.info("created %s", name)
    return name


def ordered_pair(df: DataFrame) -> DataFrame:
    """Decisions with each pair's sides in one order (the smaller (source_system, source_record_id) on the left), so
    a pair decided as (A, B) and as (B, A) is one pair."""
    swap = F.struct("source_system_l", "source_record_id_l") > F.struct("source_system_r", "source_record_id_r")
    return df.select(*[F.when(swap, F.col(f"{c[:-2]}_{'r' if c.endswith('_l') else 'l'}")).otherwise(F.col(c)).alias(c)
                       for c in PAIR], *[c for c in df.columns if c not in PAIR])


def current_decisions(decisions: DataFrame) -> DataFrame:
    """REVIEW_DECISIONS rows -> (PAIR..., decision, decided_at): the latest decision per pair (ties: cannot_link,
    the cautious one). Rows of an unknown decision (the table's check refuses them) are left out."""
    ordered = ordered_pair(decisions.where(F.col("decision").isin(*DECISIONS)))
    latest = Window.partitionBy(*PAIR).orderBy(F.col("decided_at").desc_nulls_last(),
                                               F.col("decision").asc())  # cannot_link < must_link
    return (ordered.withColumn("_r", F.row_number().over(latest)).where(F.col("_r") == 1)
            .select(*PAIR, "decision", "decided_at"))


def read_decisions(spark: SparkSession, output: OutputTables) -> DataFrame | None:
    """The decisions that hold now (``current_decisions`` of the table), or None when there is no table yet."""
    name = output.qualified("review_decisions")
    if not spark.catalog.tableExists(name):
        return None
    return current_decisions(spark.table(name))


def decisions_as_labels(decisions: DataFrame) -> DataFrame:
    """REVIEW_DECISIONS rows -> labelled pairs for evaluation (PAIR..., is_match): the latest decision per pair,
    must_link a match, cannot_link not; so ``make evaluate LABELS=bold.review_decisions`` scores a run on what the
    reviewers checked."""
    return current_decisions(decisions).select(*PAIR, (F.col("decision") == MUST_LINK).alias("is_match"))


# --- the file ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParsedFile:
    rows: list[dict[str, Any]]  # REVIEW_DECISIONS fields + "row" (the file's line number)
    errors: list[tuple[int, str]]  # (row, reason); row 1 is the header


def _timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_decisions_file(path: Path, *, sources: list[str], now: datetime | None = None) -> ParsedFile:
    """Read a decisions CSV (header row; columns REQUIRED, optionally OPTIONAL; ``decided_at`` ISO 8601, UTC unless
    it says otherwise, the import time when blank) and check each row on its own. A file of reviewers' decisions is
    small (people made every row), so it is read on the driver, keeping the row numbers of the file."""
    now = now or datetime.now(timezone.utc)
    rows: list[dict[str, Any]] = []
    errors: list[tuple[int, str]] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
        if missing or unknown:
            problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
                [f"unknown column(s) {', '.join(unknown)} (expected {', '.join(REQUIRED + OPTIONAL)})"]
                if unknown else [])
            return ParsedFile([], [(1, "; ".join(problems))])
        reader.fieldnames = header
        for raw in reader:
            line = reader.line_num
            if None in raw:
                errors.append((line, "more values than columns"))
                continue
            row = {k: (v or "").strip() for k, v in raw.items()}
            if not any(row.values()):
                continue  # a blank line
            blank = [c for c in REQUIRED if not row.get(c)]
            if blank:
                errors.append((line, f"no value in {', '.join(blank)}"))
                continue
            problems = []
            if row["decision"] not in DECISIONS:
                problems.append(f"decision must be {' or '.join(DECISIONS)}")
            for side in ("l", "r"):
                if row[f"source_system_{side}"] not in sources:
                    problems.append(f"source_system_{side} is not a configured source")
            if (row["source_system_l"], row["source_record_id_l"]) == (row["source_system_r"],
                                                                         row["source_record_id_r"]):
                problems.append("the same record on both sides")
            decided_at = _timestamp(row["decided_at"]) if row.get("decided_at") else now
            if decided_at is None:
                problems.append("decided_at is not an ISO 8601 date or time (2026-12-07 or 2026-12-07T09:30:00Z)")
            if problems:
                errors.append((line, "; ".join(problems)))
                continue
            rows.append({**{c: row[c] for c in REQUIRED}, "reason": row.get("reason") or None,
                         "decided_at": decided_at, "row": line})
    return ParsedFile(rows, errors)


def _same_pair_both_ways(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    seen: dict[frozenset, tuple[str, int]] = {}
    errors = []
    for r in rows:
        pair = frozenset({(r["source_system_l"], r["source_record_id_l"]),
                          (r["source_system_r"], r["source_record_id_r"])})
        if pair in seen and seen[pair][0] != r["decision"]:
            errors.append((r["row"], f"{r['decision']} contradicts row {seen[pair][1]} on the same pair "
                                     f"({seen[pair][0]})"))
        seen.setdefault(pair, (r["decision"], r["row"]))
    return errors


# --- checks against the tables ---------------------------------------------------------------------------------------

def unknown_records(new: DataFrame, crosswalk: DataFrame) -> list[tuple[int, str]]:
    """new(PAIR..., row), crosswalk(source_system, source_record_id) -> (row, reason) per row naming a record the
    crosswalk does not hold (bounded: rows of the file)."""
    keys = crosswalk.select("source_system", "source_record_id").withColumn("_known", F.lit(True))
    checked = new
    for side in ("l", "r"):
        checked = checked.join(keys.toDF(f"source_system_{side}", f"source_record_id_{side}", f"_known_{side}"),
                               [f"source_system_{side}", f"source_record_id_{side}"], how="left")
    rows = checked.where(F.col("_known_l").isNull() | F.col("_known_r").isNull()) \
        .select("row", "_known_l", "_known_r").collect()  # bounded: rows of the decisions file
    return [(r["row"], "record " + " and ".join(f"source_record_id_{s}" for s in ("l", "r") if not r[f"_known_{s}"])
             + " not in the published crosswalk (unknown record)") for r in rows]


def contradictions(decisions: DataFrame) -> list[tuple[int | None, str]]:
    """decisions(PAIR..., decision, row: the file's line, null for the table's) that hold together -> (row,
    reason) for each cannot_link whose two records a chain of must_link decisions joins (components of the
    must_link pairs). Decisions are made one by one by people, so even years of them are a small list: they are
    brought to the driver, as keys only, and joined with a union-find (a Spark connected components on a few
    hundred pairs costs a minute of per-query overhead)."""
    keyed = decisions.select(record_key(F.col("source_system_l"), F.col("source_record_id_l")).alias("a"),
                             record_key(F.col("source_system_r"), F.col("source_record_id_r")).alias("b"),
                             "decision", "row").collect()  # bounded: decisions people made
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in keyed:
        if r["decision"] == MUST_LINK:
            parent[root(r["a"])] = root(r["b"])
    chains: dict[str, list[int | None]] = {}
    for r in keyed:
        if r["decision"] == MUST_LINK:
            chains.setdefault(root(r["a"]), []).append(r["row"])
    out = []
    for r in keyed:
        if r["decision"] == CANNOT_LINK and root(r["a"]) == root(r["b"]):
            rows = chains[root(r["a"])]
            in_file = sorted(x for x in rows if x is not None)
            earlier = len(rows) - len(in_file)
            by = ", ".join(filter(None, [f"row(s) {', '.join(map(str, in_file))}" if in_file else "",
                                         f"{earlier} decision(s) already in the table" if earlier else ""]))
            out.append((r["row"], f"cannot_link contradicts must_link decisions that make both records one person "
                                  f"({by})"))
    return out


def _message(errors: list[tuple[int | None, str]], file: Path) -> str:
    listed = sorted(errors, key=lambda e: (e[0] is None, e[0] or 0))
    lines = [f"  row {row}: {reason}" if row is not None else f"  (the table): {reason}"
             for row, reason in listed[:MAX_MESSAGES]]
    more = len(listed) - MAX_MESSAGES
    return (f"{file}: {len(listed)} problem(s), nothing was loaded:\n" + "\n".join(lines)
            + (f"\n  ... and {more} more" if more > 0 else ""))


def import_decisions(spark: SparkSession, output: OutputTables, path: Path, *, sources: list[str],
                     now: datetime | None = None) -> int:
    """Validate a decisions file against the published crosswalk and the decisions already made, then append it
    to <database>.<review_decisions> in one transaction; returns the rows loaded. Raises DecisionImportError
    listing every problem (row and reason) when any row is wrong: then nothing is loaded."""
    parsed = parse_decisions_file(path, sources=sources, now=now)
    errors: list[tuple[int | None, str]] = list(parsed.errors)
    if not parsed.rows and not errors:
        raise DecisionImportError(f"{path}: no decisions in the file")
    errors += _same_pair_both_ways(parsed.rows)
    crosswalk_name = output.qualified("crosswalk")
    if not spark.catalog.tableExists(crosswalk_name):
        raise DecisionImportError(f"{path}: {crosswalk_name} not found: decisions name records of a published run")
    if parsed.rows:
        schema = T.StructType([*REVIEW_DECISIONS.fields, T.StructField("row", T.IntegerType())])
        new = spark.createDataFrame([{f: r.get(f) for f in schema.fieldNames()} for r in parsed.rows], schema)
        errors += unknown_records(new, spark.table(crosswalk_name))
        if not errors:  # contradictions among decisions that are each well formed
            table = ensure_decisions_table(spark, output)
            incoming = ordered_pair(new)
            earlier = current_decisions(spark.table(table)).join(incoming.select(*PAIR), PAIR, how="left_anti")
            together = earlier.select(*PAIR, "decision", F.lit(None).cast("int").alias("row")).unionByName(
                incoming.select(*PAIR, "decision", "row"))
            errors += contradictions(together)
    if errors:
        raise DecisionImportError(_message(errors, path))
    table = ensure_decisions_table(spark, output)
    conform(new, REVIEW_DECISIONS).write.format("delta").mode("append").saveAsTable(table)  # one transaction
    counts = {d: sum(r["decision"] == d for r in parsed.rows) for d in DECISIONS}
    log.info("%s: %d decisions loaded (%s)", table, len(parsed.rows),
             ", ".join(f"{d}: {n}" for d, n in counts.items()))
    return len(parsed.rows)
