"""UK postcodes: one spacing-free upper-case form, strictly validated, with the outward code (district) beside it."""
from __future__ import annotations

from pyspark.sql import Column, functions as F

# Full UK postcode without its space, plus the Girobank special case. No OCR-style repairs (O -> 0 etc.):
# a guessed postcode could make two different people agree.
_FULL = r"^(?:[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][ABD-HJLNP-UW-Z]{2}|GIR0AA)$"
_DISTRICT = r"^[A-Z]{1,2}[0-9][A-Z0-9]?$"
_OUTWARD = r"^(.+)...$"  # everything but the three-character inward code


def _compact(value: Column) -> Column:
    return F.regexp_replace(F.upper(value.cast("string")), r"[^A-Z0-9]", "")


def standardise_postcode(postcode: Column) -> Column:
    """'sw1a 1aa' -> 'SW1A1AA'; anything that is not a full UK postcode -> null."""
    compact = _compact(postcode)
    return F.when(compact.rlike(_FULL), compact)


def postcode_district(postcode: Column) -> Column:
    """The outward code of a standardised full postcode ('SW1A1AA' -> 'SW1A'); null for null or short input."""
    return F.when(F.length(postcode) > 3, F.regexp_extract(postcode, _OUTWARD, 1))


def standardise_postcode_district(district: Column) -> Column:
    """For sources that hold only the outward code: 'sw1a' -> 'SW1A'; a full postcode yields its district."""
    compact = _compact(district)
    return (F.when(compact.rlike(_DISTRICT), compact)
            .when(compact.rlike(_FULL), F.regexp_extract(compact, _OUTWARD, 1)))


def standardise_free_postcode(postcode: Column) -> Column:
    """Non-UK postcodes: upper-case letters and digits only, no validation; blank -> null."""
    compact = _compact(postcode)
    return F.when(compact != "", compact)


def is_placeholder_postcode(postcode: Column, *, pattern: str) -> Column:
    """True for a value recorded for "no fixed abode" or "not known" (``pattern`` on the upper-case form without
    spaces: the NHS's ZZ99 codes by default), false otherwise and for null."""
    return F.coalesce(_compact(postcode).rlike(pattern), F.lit(False))
