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


# What an NHS pseudo-postcode says about the address, as the canonical ``address_status``. Sources: the HES data
# dictionary, field "Postcode of patient" (homeadd): ZZ99 3CZ England/GB/UK not otherwise stated, ZZ99 3VZ no fixed
# abode, ZZ99 3WZ not known (and sundry categories), ZZ99 2WZ Northern Ireland, ZZ99 1WZ Scotland, ZZ99 3GZ Wales,
# other ZZ99 codes for patients normally resident abroad; and the NHS Data Dictionary, "Postcode of usual address":
# an overseas visitor's country pseudo-postcode is ZZ99, a digit, a letter and Z (ZZ99 6CZ is India), listed in the
# NHS Postcode Directory. The UK nations' codes say only "somewhere in the UK", so they share one status.
NO_FIXED_ABODE = "no_fixed_abode"
ADDRESS_NOT_KNOWN = "not_known"
UK_NOT_SPECIFIED = "uk_not_specified"
OVERSEAS = "overseas"
PSEUDO_POSTCODE_OTHER = "pseudo_postcode_other"  # a placeholder the lists above do not name (e.g. ZZ99 alone)
ADDRESS_STATUSES = (NO_FIXED_ABODE, ADDRESS_NOT_KNOWN, UK_NOT_SPECIFIED, OVERSEAS, PSEUDO_POSTCODE_OTHER)
PSEUDO_POSTCODES = {"ZZ993VZ": NO_FIXED_ABODE, "ZZ993WZ": ADDRESS_NOT_KNOWN, "ZZ993CZ": UK_NOT_SPECIFIED,
                    "ZZ991WZ": UK_NOT_SPECIFIED, "ZZ992WZ": UK_NOT_SPECIFIED, "ZZ993GZ": UK_NOT_SPECIFIED}
_COUNTRY_PSEUDO_POSTCODE = r"^ZZ99[0-9][A-Z]Z$"


def address_status(postcode: Column, *, placeholder: Column) -> Column:
    """For a placeholder postcode (``placeholder`` true), what it says about the address: one of ADDRESS_STATUSES;
    null for a real postcode or none. Matched on the upper-case form without spaces ('zz99 3vz' is no fixed abode)."""
    compact = _compact(postcode)
    status = F.when(F.lit(False), F.lit(None).cast("string"))
    for code, meaning in PSEUDO_POSTCODES.items():
        status = status.when(compact == code, meaning)
    status = status.when(compact.rlike(_COUNTRY_PSEUDO_POSTCODE), OVERSEAS).otherwise(PSEUDO_POSTCODE_OTHER)
    return F.when(placeholder, status)
