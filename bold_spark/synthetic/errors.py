"""Corruptions as Column -> Column functions: the mistakes departments make when they record a person.

Each function takes the clean value and the uniform draws it needs (columns in [0, 1)) and always changes the value
when it applies, so an error's observed rate equals its configured rate. Names are handled in lower case; each
department renders its own case afterwards.
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# QWERTY neighbours: a slip hits a key next to the intended one.
KEYBOARD_NEIGHBOURS = {
    "q": "wa", "w": "qeas", "e": "wrds", "r": "etdf", "t": "ryfg", "y": "tugh", "u": "yihj", "i": "uojk",
    "o": "ipkl", "p": "ol", "a": "qwsz", "s": "awedxz", "d": "serfcx", "f": "drtgvc", "g": "ftyhbv", "h": "gyujnb",
    "j": "huikmn", "k": "jiolm", "l": "kop", "z": "asx", "x": "zsdc", "c": "xdfv", "v": "cfgb", "b": "vghn",
    "n": "bhjm", "m": "njk",
}
# Sound-alike spellings a clerk writes down from speech (Java regex, applied to lower-case names).
PHONETIC_RULES: tuple[tuple[str, str], ...] = (
    ("ph", "f"),
    ("(?<=[aeiou])f(?=[aeiou])", "ph"),
    ("([bdfglmnprt])\\1", "$1"),
    ("(?<=[aeiou])([lnrt])(?=[aeiouy])", "$1$1"),
    ("y$", "ie"),
    ("ie$", "y"),
    ("ey$", "y"),
    ("smith", "smyth"),
    ("(?<=[^aeiou])y(?=[^aeiou])", "i"),
    ("^mc", "mac"),
    ("^mac", "mc"),
    ("son$", "sen"),
    ("sen$", "son"),
    ("ck", "k"),
    ("c(?=[aou])", "k"),
    ("k(?=[aou])", "c"),
    ("th", "t"),
    ("mps", "ms"),
    ("ou", "ow"),
    ("ei", "ie"),
    ("ie(?!$)", "ei"),
    ("ai", "ay"),
    ("(?<=...[^aeiou])e$", ""),
    ("(?<=[kn])$", "e"),
    ("ee", "ea"),
    ("ea", "ee"),
    ("z", "s"),
    ("^h(?=[aeiou])", ""),
)
POSTCODE_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters Royal Mail uses in inward codes (no C I K M O V)


def _int(c: Column) -> Column:
    return c.cast("int")


def _pick(u: Column, n: Column | int) -> Column:
    """An index in [0, n) from a draw."""
    return _int(F.floor(u * (n if isinstance(n, Column) else F.lit(n))))


def keyboard_slip(name: Column, u_kind: Column, u_pos: Column, u_char: Column) -> Column:
    """One typing slip: a neighbouring key substituted, a letter dropped, a neighbour inserted, or two letters swapped.

    Deletion needs two letters and a swap two different letters; otherwise the slip is a substitution.
    """
    length = F.length(name)
    kind = _pick(u_kind, 4)
    pos = _int(F.lit(1) + _pick(u_pos, length))
    char = F.substring(name, pos, F.lit(1))
    keyboard = F.str_to_map(F.lit(",".join(f"{k}:{v}" for k, v in KEYBOARD_NEIGHBOURS.items())), F.lit(","), F.lit(":"))
    neighbours = F.coalesce(F.try_element_at(keyboard, char), F.lit("aeiou"))
    new_char = F.substring(neighbours, _int(F.lit(1) + _pick(u_char, F.length(neighbours))), F.lit(1))
    before = F.substring(name, F.lit(1), pos - F.lit(1))
    after = F.substring(name, pos + F.lit(1), length)
    substituted = F.concat(before, new_char, after)
    p2 = F.when(pos == length, pos - F.lit(1)).otherwise(pos)
    a, b = F.substring(name, p2, F.lit(1)), F.substring(name, p2 + F.lit(1), F.lit(1))
    swapped = F.concat(F.substring(name, F.lit(1), p2 - F.lit(1)), b, a, F.substring(name, p2 + F.lit(2), length))
    return (
        F.when(kind == 1, F.when(length > 1, F.concat(before, after)).otherwise(substituted))
        .when(kind == 2, F.concat(before, char, new_char, after))
        .when(kind == 3, F.when((length > 1) & (a != b), swapped).otherwise(substituted))
        .otherwise(substituted)
    )


def phonetic_candidates(name: Column) -> Column:
    """Every distinct sound-alike spelling of ``name`` that the rules produce (an empty array if none applies)."""
    variants = F.array(*[F.regexp_replace(name, F.lit(p), F.lit(r)) for p, r in PHONETIC_RULES])
    return F.array_distinct(F.filter(variants, lambda v: (v != name) & (F.length(v) > 0)))


def phonetic_variant(name: Column, u: Column) -> Column:
    """One of ``phonetic_candidates(name)`` chosen by ``u``; the name itself when no rule applies."""
    candidates = phonetic_candidates(name)
    n = F.size(candidates)
    return F.when(n > 0, F.try_element_at(candidates, _int(F.lit(1) + _pick(u, n)))).otherwise(name)


def short_form(aliases: Column, u: Column) -> Column:
    """One of a forename's short forms (``aliases``, an array) chosen by ``u``; null when it has none."""
    n = F.size(aliases)
    return F.when(n > 0, F.try_element_at(aliases, _int(F.lit(1) + _pick(u, n))))


def double_barrel_variant(surname: Column, u: Column) -> Column:
    """A hyphenated surname as its first part, its second part, or with a space for the hyphen."""
    parts = F.split(surname, "-", 2)
    return (F.when(u < 1 / 3, F.try_element_at(parts, F.lit(1)))
            .when(u < 2 / 3, F.try_element_at(parts, F.lit(2)))
            .otherwise(F.regexp_replace(surname, "-", " ")))


def can_swap_day_month(dob: Column) -> Column:
    return (F.dayofmonth(dob) <= 12) & (F.dayofmonth(dob) != F.month(dob))


def swap_day_month(dob: Column) -> Column:
    """Day and month transposed, where the day could be a month (else unchanged)."""
    return F.when(can_swap_day_month(dob), F.make_date(F.year(dob), F.dayofmonth(dob), F.month(dob))).otherwise(dob)


def first_of_january(dob: Column) -> Column:
    """The placeholder date systems use when only the year is known."""
    return F.make_date(F.year(dob), F.lit(1), F.lit(1))


def date_slip(dob: Column, u_kind: Column, u_dir: Column) -> Column:
    """A date one year out (half the time) or one day out."""
    year_out = F.add_months(dob, F.when(u_dir < 0.5, F.lit(-12)).otherwise(F.lit(12)))
    day_out = F.date_add(dob, F.when((u_dir < 0.5) & (F.dayofmonth(dob) > 1), F.lit(-1)).otherwise(F.lit(1)))
    return F.when(u_kind < 0.5, year_out).otherwise(day_out)


def _other_digit(digit: Column, u: Column) -> Column:
    return F.pmod(_int(digit) + F.lit(1) + _pick(u, 9), F.lit(10)).cast("string")


def postcode_slip(postcode: Column, u_pos: Column, u_char: Column) -> Column:
    """One character of the inward code (the last three characters) replaced by another valid one."""
    n = F.length(postcode)
    outward = F.substring(postcode, F.lit(1), n - F.lit(3))
    digit, l1, l2 = (F.substring(postcode, n - F.lit(k), F.lit(1)) for k in (2, 1, 0))
    letters = F.lit(POSTCODE_INWARD_LETTERS)

    def other_letter(letter: Column) -> Column:
        index = F.instr(letters, letter) - F.lit(1)
        return F.substring(letters, _int(F.pmod(index + F.lit(1) + _pick(u_char, 19), F.lit(20)) + F.lit(1)), F.lit(1))

    which = _pick(u_pos, 3)
    return (F.when(which == 0, F.concat(outward, _other_digit(digit, u_char), l1, l2))
            .when(which == 1, F.concat(outward, digit, other_letter(l1), l2))
            .otherwise(F.concat(outward, digit, l1, other_letter(l2))))


def nino_slip(nino: Column, u_pos: Column, u_digit: Column) -> Column:
    """One of the six digits of a National Insurance number (AB123456C) replaced by another digit."""
    pos = _int(F.lit(3) + _pick(u_pos, 6))
    return F.concat(F.substring(nino, F.lit(1), pos - F.lit(1)),
                    _other_digit(F.substring(nino, pos, F.lit(1)), u_digit),
                    F.substring(nino, pos + F.lit(1), F.lit(9)))


def blank(value: Column, u: Column, rate: float) -> Column:
    """``value``, or null with probability ``rate``."""
    return F.when(u >= F.lit(rate), value)
