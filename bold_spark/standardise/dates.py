"""Dates from the formats a source declares; impossible or implausible dates become null (and are counted)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, functions as F

# Always tried after a source's own formats, so a column that is already a date or timestamp (whose string form
# is ISO, "2001-02-03" or "2001-02-03 04:05:06") still parses whatever formats the source declared.
ISO_FALLBACK = "yyyy-MM-dd"
_ISO_PREFIX = r"^\s*([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[ T][0-9:.]*)?\s*$"

MAX_AGE = 120


def parse_date(value: Column, *, formats: Sequence[str], earliest: str = "1900-01-01",
               latest: Column | None = None) -> Column:
    """A string, date or timestamp column -> date, or null when no pattern parses or it is out of range.

    Each Spark datetime pattern in ``formats`` (e.g. "dd/MM/yyyy", "yyyyMMdd") is tried in order, then
    ``yyyy-MM-dd`` on the ISO date at the start of the text, which is how a date/timestamp column casts to
    string. ``try_to_date`` returns null instead of raising under ANSI mode and rejects impossible dates
    (2001-02-30). The result is kept only within [``earliest``, ``latest``]; ``latest`` defaults to today.
    """
    if isinstance(formats, str) or not formats:
        raise ValueError(f"formats must be a non-empty sequence of Spark datetime patterns, got {formats!r}")
    try:
        dt.date.fromisoformat(earliest)
    except (TypeError, ValueError):
        raise ValueError(f"earliest must be an ISO date (yyyy-mm-dd), got {earliest!r}") from None

    text = F.trim(value.cast("string"))
    iso = F.regexp_extract(text, _ISO_PREFIX, 1)
    attempts = [F.try_to_date(text, f) for f in formats]
    attempts.append(F.try_to_date(iso, ISO_FALLBACK))
    parsed = F.coalesce(*attempts)
    upper = latest if latest is not None else F.current_date()
    return F.when(parsed.between(F.lit(earliest).cast("date"), upper), parsed)


def birth_year_from_age(age: Column, *, at: Column) -> Column:
    """Year of ``at`` minus ``age``, an approximate birth year (int); null if either is missing or age is not 0-120."""
    years = age.try_cast("int")
    return F.when(years.between(0, MAX_AGE) & at.isNotNull(), (F.year(at) - years).cast("int"))


def is_placeholder_date(date: Column, *, dates: Sequence[str]) -> Column:
    """True for a date a system records for "unknown" (1900-01-01 and the like), false otherwise and for null."""
    if not dates:
        return F.lit(False)
    return F.coalesce(date.isin(*[F.lit(d).cast("date") for d in dates]), F.lit(False))
