"""Reference data shipped in ``data/``: name frequency tables, nicknames, postcode districts; weighted draws on Spark.

A weighted draw from a few thousand names is an equi-join, not a range join: the table is turned into Walker's alias
table (bucket i holds name i with probability ``prob`` and otherwise its ``alias``), the row picks a bucket with one
uniform draw and accepts with another, and the small table is broadcast.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

DATA_PACKAGE = "bold_spark.synthetic"

ALIAS_SCHEMA = T.StructType([
    T.StructField("bucket", T.IntegerType(), False),
    T.StructField("name", T.StringType(), False),
    T.StructField("prob", T.DoubleType(), False),
    T.StructField("alias", T.StringType(), False),
])
NICKNAME_SCHEMA = T.StructType([
    T.StructField("name", T.StringType(), False),
    T.StructField("aliases", T.ArrayType(T.StringType(), False), False),
])


def read_data_csv(file: str) -> list[dict[str, str]]:
    """Rows of one CSV file under ``bold_spark/synthetic/data`` as dicts."""
    text = resources.files(DATA_PACKAGE).joinpath("data", file).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@lru_cache(maxsize=None)
def surname_weights() -> tuple[tuple[str, float], ...]:
    """(surname in lower case, weight) in descending order of frequency."""
    return tuple((r["surname"].lower(), float(r["weight"])) for r in read_data_csv("surnames.csv"))


@lru_cache(maxsize=None)
def forename_weights(sex: str) -> tuple[tuple[str, float], ...]:
    """(forename in lower case, weight) for sex 'M' or 'F', in descending order of frequency."""
    return tuple((r["forename"].lower(), float(r["weight"])) for r in read_data_csv("forenames.csv") if r["sex"] == sex)


@lru_cache(maxsize=None)
def nickname_map() -> dict[str, tuple[str, ...]]:
    """Formal forename -> its short forms, all lower case (data/nicknames.csv)."""
    out: dict[str, list[str]] = {}
    for r in read_data_csv("nicknames.csv"):
        out.setdefault(r["name"], []).append(r["alias"])
    return {k: tuple(v) for k, v in out.items()}


@lru_cache(maxsize=None)
def postcode_districts() -> tuple[str, ...]:
    """UK outward codes, grouped by postcode area so that neighbouring entries are near each other."""
    return tuple(r["district"] for r in read_data_csv("postcode_districts.csv"))


def alias_table(weights: list[float]) -> tuple[list[float], list[int]]:
    """Walker's alias method (Vose's construction): per bucket, the probability of keeping it and its alias."""
    n = len(weights)
    total = float(sum(weights))
    scaled = [w * n / total for w in weights]
    prob, alias = [1.0] * n, list(range(n))
    small = [i for i, p in enumerate(scaled) if p < 1.0]
    large = [i for i, p in enumerate(scaled) if p >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return prob, alias


@dataclass(frozen=True)
class WeightedTable:
    """A broadcastable alias table: ``frame`` (bucket, name, prob, alias) and the bucket count of each group."""

    frame: DataFrame
    offsets: dict[str, int]
    sizes: dict[str, int]

    def bucket(self, u: Column, group: Column | None = None) -> Column:
        """The bucket for a uniform draw ``u``; with groups, ``group`` names which group's buckets to use."""
        if group is None:
            (only,) = self.sizes
            return F.floor(u * F.lit(self.sizes[only])).cast("int")
        expr = None
        for g, size in self.sizes.items():
            value = F.floor(u * F.lit(size)).cast("int") + F.lit(self.offsets[g])
            expr = F.when(group == F.lit(g), value) if expr is None else expr.when(group == F.lit(g), value)
        return expr


def weighted_table(spark: SparkSession, groups: dict[str, tuple[tuple[str, float], ...]]) -> WeightedTable:
    """An alias table over one or more weighted name lists (for example forenames by sex)."""
    rows, offsets, sizes, offset = [], {}, {}, 0
    for group, items in groups.items():
        names = [n for n, _ in items]
        prob, alias = alias_table([w for _, w in items])
        rows += [(offset + i, names[i], prob[i], names[alias[i]]) for i in range(len(names))]
        offsets[group], sizes[group] = offset, len(names)
        offset += len(names)
    return WeightedTable(spark.createDataFrame(rows, ALIAS_SCHEMA), offsets, sizes)


def draw_names(df: DataFrame, draws: list[tuple[str, WeightedTable, Column, Column]]) -> DataFrame:
    """Add one column per ``(out, table, bucket, accept)``: a name drawn from ``table``.

    ``bucket`` comes from ``table.bucket`` and ``accept`` is a second uniform draw; all lookups are broadcast joins.
    """
    keep = [F.col(c) for c in df.columns]
    out = df.select(*keep, *(c for out, _, bucket, accept in draws
                             for c in (bucket.alias(f"_{out}_key"), accept.alias(f"_{out}_u"))))
    for name, table, _, _ in draws:
        p = f"_{name}_"
        t = F.broadcast(table.frame.select(*(F.col(c).alias(p + c) for c in ("bucket", "name", "prob", "alias"))))
        out = out.join(t, F.col(p + "key") == F.col(p + "bucket"), how="left")
    picked = [F.when(F.col(f"_{n}_u") < F.col(f"_{n}_prob"), F.col(f"_{n}_name"))
              .otherwise(F.col(f"_{n}_alias")).alias(n) for n, *_ in draws]
    return out.select(*keep, *picked)


@dataclass(frozen=True)
class ReferenceTables:
    """The small tables every generation broadcasts."""

    forenames: WeightedTable
    surnames: WeightedTable
    nicknames: DataFrame


def reference_tables(spark: SparkSession) -> ReferenceTables:
    return ReferenceTables(
        forenames=weighted_table(spark, {"F": forename_weights("F"), "M": forename_weights("M")}),
        surnames=weighted_table(spark, {"all": surname_weights()}),
        nicknames=nicknames_frame(spark),
    )


def nicknames_frame(spark: SparkSession) -> DataFrame:
    """One row per formal forename: ``name`` and its short forms ``aliases`` (lower case)."""
    return spark.createDataFrame(sorted((k, list(v)) for k, v in nickname_map().items()), NICKNAME_SCHEMA)
