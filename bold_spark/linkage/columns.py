"""Columns the comparisons and blocking rules derive from the canonical person schema.

Derived here rather than stored by sources, so a source declaration only maps canonical columns.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

from pyspark.sql import DataFrame, functions as F, types as T

NAME_CONCAT = "name_concat"
FIRST_NAME_GROUPS = "first_name_groups"
SURNAME_PARTS = "surname_parts"
# What add_linkage_columns adds: comparisons and blocking rules may name these beside the canonical columns.
DERIVED_COLUMNS = (FIRST_NAME_GROUPS, NAME_CONCAT, "first_name_soundex", "surname_soundex", "first_name_initial",
                   "surname_initial", SURNAME_PARTS)

_ALIASES_SCHEMA = T.StructType([
    T.StructField("first_name", T.StringType(), False),
    T.StructField(FIRST_NAME_GROUPS, T.ArrayType(T.StringType(), False), False),
])


@lru_cache(maxsize=1)
def forename_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each forename in the alias list with the formal names it stands for (a formal name stands for itself)."""
    groups: dict[str, set[str]] = {}
    with resources.files("bold_spark.linkage").joinpath("data/forename_aliases.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            formal, alias = row["name"].strip(), row["alias"].strip()
            groups.setdefault(formal, set()).add(formal)
            groups.setdefault(alias, set()).add(formal)
    return tuple((name, tuple(sorted(formals))) for name, formals in sorted(groups.items()))


def linkage_column_names() -> tuple[str, ...]:
    """Every column a comparison or blocking rule may name: the canonical person schema and DERIVED_COLUMNS."""
    from bold_spark.schemas import CANONICAL_PERSON

    return (*CANONICAL_PERSON.fieldNames(), *DERIVED_COLUMNS)


def add_linkage_columns(persons: DataFrame) -> DataFrame:
    """Canonical persons plus phonetic codes, a full-name key and forename groups (null outside the alias list),
    exactly DERIVED_COLUMNS.

    The alias table is a few hundred rows, broadcast to every task.
    """
    aliases = persons.sparkSession.createDataFrame(list(forename_groups()), schema=_ALIASES_SCHEMA)
    return persons.join(F.broadcast(aliases), on="first_name", how="left").select(
        *persons.columns,
        F.col(FIRST_NAME_GROUPS),
        F.when(F.col("first_name").isNotNull() & F.col("surname").isNotNull(),
               F.concat_ws(" ", "first_name", "surname")).alias(NAME_CONCAT),
        F.soundex("first_name").alias("first_name_soundex"),
        F.soundex("surname").alias("surname_soundex"),
        # Initials split the date-of-birth block (hundreds of records per date nationally) by a name's first
        # letter, while still pairing a nickname or a changed surname with its record.
        F.substring("first_name", 1, 1).alias("first_name_initial"),
        F.substring("surname", 1, 1).alias("surname_initial"),
        F.split("surname", " ").alias(SURNAME_PARTS),  # standardised double-barrelled names have a space
    )
