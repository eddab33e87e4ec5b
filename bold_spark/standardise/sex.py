"""Sex and gender codes from every department's conventions onto M, F, X or null."""
from __future__ import annotations

from pyspark.sql import Column, functions as F

# Compared after lower-casing and removing everything but letters and digits ("Non-Binary" -> "nonbinary").
_MALE = ("m", "male", "man", "1", "boy")
_FEMALE = ("f", "female", "woman", "2", "girl")
_OTHER = ("x", "other", "nonbinary", "indeterminate")
# Everything else is unknown (null), including ISO 5218's 0 (not known) and 9 (not applicable), "u", "unknown".


def standardise_sex(sex: Column) -> Column:
    """'Male'/'m'/'1' -> 'M', 'Female'/'f'/'2' -> 'F', 'X'/'other'/'non-binary'/'indeterminate' -> 'X', else null."""
    code = F.regexp_replace(F.lower(sex.cast("string")), r"[^a-z0-9]", "")
    return (F.when(code.isin(*_MALE), F.lit("M"))
            .when(code.isin(*_FEMALE), F.lit("F"))
            .when(code.isin(*_OTHER), F.lit("X")))
