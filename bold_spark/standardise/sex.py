"""Sex and gender codes from every department's conventions onto M, F, X or null."""
from __future__ import annotations

from pyspark.sql import Column, functions as F

# Compared after lower-casing and removing everything but letters and digits ("Non-Binary" -> "nonbinary").
_MALE = ("m", "male", "man", "1", "boy")
_FEMALE = ("f", "female", "woman", "2", "girl")
_OTHER = ("x", "other", "nonbinary", "indeterminate")
# Codes that say "not known" on purpose: null, but not counted as invalid values.
_STATED_UNKNOWN = ("0", "9", "u", "unknown", "notknown", "notstated", "prefernottosay", "unk")
# Everything else is unknown (null) too, and counted as an unusable value.


def _code(sex: Column) -> Column:
    return F.regexp_replace(F.lower(sex.cast("string")), r"[^a-z0-9]", "")


def sex_is_stated_unknown(sex: Column) -> Column:
    """True for codes that record "not known" deliberately (ISO 5218's 0 and 9, U, Unknown, Not stated)."""
    return _code(sex).isin(*_STATED_UNKNOWN)


def standardise_sex(sex: Column) -> Column:
    """'Male'/'m'/'1' -> 'M', 'Female'/'f'/'2' -> 'F', 'X'/'other'/'non-binary'/'indeterminate' -> 'X', else null."""
    code = _code(sex)
    return (F.when(code.isin(*_MALE), F.lit("M"))
            .when(code.isin(*_FEMALE), F.lit("F"))
            .when(code.isin(*_OTHER), F.lit("X")))
