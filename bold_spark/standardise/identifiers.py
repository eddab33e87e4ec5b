"""National identifiers, format-checked so a mistyped or placeholder id cannot make two people agree."""
from __future__ import annotations

from pyspark.sql import Column, functions as F

# HMRC: first letter not D F I Q U V; second not D F I O Q U V; some prefixes never issued (TN is the
# temporary-number prefix); suffix A-D and required.
_NINO = r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$"
_NINO_INVALID_PREFIXES = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")

_NHS = r"^[0-9]{10}$"
_NHS_PLACEHOLDER = r"^([0-9])\1{9}$"  # 0000000000, 1111111111, ...: every repeated digit passes modulus 11

_PNC = r"^([0-9]{2}|[0-9]{4})/([0-9]{1,7})([A-Z])$"
# Two-digit PNC years 00-30 are read as 20xx and 31-99 as 19xx; move the pivot before 2031.
PNC_CENTURY_PIVOT = 30


def _alphanumeric_upper(value: Column) -> Column:
    return F.regexp_replace(F.upper(value.cast("string")), r"[^A-Z0-9]", "")


def standardise_nino(nino: Column) -> Column:
    """'ab 12 34 56 c' -> 'AB123456C'; invalid letters or prefixes, a missing suffix, or TN numbers -> null."""
    compact = _alphanumeric_upper(nino)
    valid = compact.rlike(_NINO) & ~F.substring(compact, 1, 2).isin(*_NINO_INVALID_PREFIXES)
    return F.when(valid, compact)


def standardise_nhs_number(nhs: Column) -> Column:
    """Digits only; valid when ten digits with a correct modulus-11 check digit, else null.

    Numbers made of one repeated digit pass the check arithmetically but are placeholders, so they are null too.
    """
    digits = F.regexp_replace(nhs.cast("string"), r"[^0-9]", "")
    ten = F.when(digits.rlike(_NHS) & ~digits.rlike(_NHS_PLACEHOLDER), digits)  # null before any arithmetic
    weighted = sum(F.substring(ten, i, 1).try_cast("int") * (11 - i) for i in range(1, 10))
    check = F.lit(11) - weighted % 11
    check = F.when(check == 11, 0).otherwise(check)  # 10 cannot match a single digit, so it is invalid
    return F.when(check == F.substring(ten, 10, 1).try_cast("int"), ten)


def standardise_pnc_id(pnc: Column) -> Column:
    """'01/12345a' -> '2001/0012345A': four-digit year (pivot PNC_CENTURY_PIVOT), seven-digit serial, letter.

    The check letter is required but not verified.
    """
    compact = F.regexp_replace(F.upper(pnc.cast("string")), r"\s", "")
    valid = compact.rlike(_PNC)
    year = F.regexp_extract(compact, _PNC, 1)
    serial = F.regexp_extract(compact, _PNC, 2)
    letter = F.regexp_extract(compact, _PNC, 3)
    century = F.when(year.try_cast("int") <= PNC_CENTURY_PIVOT, F.lit("20")).otherwise(F.lit("19"))
    year4 = F.when(F.length(year) == 4, year).otherwise(F.concat(century, year))
    return F.when(valid, F.concat(year4, F.lit("/"), F.lpad(serial, 7, "0"), letter))


def standardise_identifier(value: Column) -> Column:
    """Any other identifier: upper-case letters and digits only; blank -> null."""
    compact = _alphanumeric_upper(value)
    return F.when(compact != "", compact)
